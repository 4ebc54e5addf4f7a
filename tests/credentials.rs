//! Who the agent is (DESIGN.md §4 steps 9–10, §6): its uid and groups, no
//! capability it wasn't given and no way to regain one, a scrubbed
//! environment, no inherited file descriptors, default signal state.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ZERO_CAPS: &str = "0000000000000000";
/// An empty signal set as /proc/PID/status prints it.
const NO_SIGNALS: &str = "0000000000000000";

/// Prints the effective uid, then tries to become root for real.
const SUID_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    printf("ruid=%u\neuid=%u\n", (unsigned)getuid(), (unsigned)geteuid());
    if (setuid(0) == 0)
        printf("setuid0=OK\n");
    else
        printf("setuid0=%s\n", errno == EPERM ? "EPERM" : "other");
    printf("euid_after=%u\n", (unsigned)geteuid());
    return 0;
}
"#;

/// `Key:\tvalue` lines (of /proc/PID/status) or `key=value` lines.
fn fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':').or_else(|| l.split_once('=')))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[track_caller]
fn field<'a>(m: &'a BTreeMap<String, String>, key: &str, o: &Output) -> &'a str {
    m.get(key)
        .unwrap_or_else(|| panic!("no {key} in the output\n{}", show(o)))
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v, 16).unwrap()
}

/// /proc/self/status of `cat` run as the command.
fn status_inside(f: &Fixture, profile: &str) -> (Output, BTreeMap<String, String>) {
    let o = f.run(profile, &["/bin/cat", "/proc/self/status"]);
    assert_status(&o, 0);
    let m = fields(&stdout(&o));
    (o, m)
}

#[test]
fn agent_holds_no_capabilities_and_runs_as_the_workspace_owner() {
    if !can_run("agent_holds_no_capabilities_and_runs_as_the_workspace_owner") {
        return;
    }
    let f = Fixture::new("cred-status");
    // Control: the launcher is root with capabilities, so zeros inside are
    // confine's doing.
    let own = fields(&fs::read_to_string("/proc/self/status").unwrap());
    assert_ne!(
        own["CapEff"], ZERO_CAPS,
        "the test runs without capabilities"
    );

    let (o, m) = status_inside(&f, "default");
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&m, key, &o), ZERO_CAPS, "{key}\n{}", show(&o));
    }
    assert_eq!(field(&m, "NoNewPrivs", &o), "1", "{}", show(&o));
    assert_eq!(field(&m, "Seccomp", &o), "2", "{}", show(&o));
    let uid = AGENT_UID.to_string();
    let gid = AGENT_GID.to_string();
    let uids: Vec<&str> = field(&m, "Uid", &o).split_whitespace().collect();
    let gids: Vec<&str> = field(&m, "Gid", &o).split_whitespace().collect();
    assert_eq!(
        uids,
        [uid.as_str(); 4],
        "real, effective, saved, fs uid\n{}",
        show(&o)
    );
    assert_eq!(
        gids,
        [gid.as_str(); 4],
        "real, effective, saved, fs gid\n{}",
        show(&o)
    );
    let groups = field(&m, "Groups", &o);
    assert!(
        groups.is_empty() || groups == gid,
        "supplementary groups: {groups:?}\n{}",
        show(&o)
    );
}

#[test]
fn setuid_root_binary_gains_nothing() {
    if !can_run("setuid_root_binary_gains_nothing") {
        return;
    }
    let f = Fixture::new("cred-suid");
    let Some(bin) = compile(&f, "suid", SUID_C) else {
        return;
    };
    chown(&bin, Some(0), Some(0)).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o4755)).unwrap();

    // Control: outside the sandbox, as the agent's uid, the bit works on
    // this filesystem (otherwise the test would prove nothing).
    let c = Command::new(&bin)
        .env_clear()
        .stdin(Stdio::null())
        .uid(AGENT_UID)
        .gid(AGENT_GID)
        .output()
        .unwrap();
    assert_status(&c, 0);
    let cm = fields(&stdout(&c));
    if cm.get("euid").map(String::as_str) != Some("0") {
        eprintln!(
            "skipped: the fixture's filesystem ignores setuid bits here ({})",
            show(&c)
        );
        return;
    }
    assert_eq!(field(&cm, "setuid0", &c), "OK", "{}", show(&c));

    // Inside: the bit is ignored (nosuid view, no_new_privs).
    let o = f.run("default", &[bin.to_str().unwrap()]);
    assert_status(&o, 0);
    let m = fields(&stdout(&o));
    let uid = AGENT_UID.to_string();
    assert_eq!(field(&m, "ruid", &o), uid, "{}", show(&o));
    assert_eq!(field(&m, "euid", &o), uid, "{}", show(&o));
    assert_eq!(field(&m, "setuid0", &o), "EPERM", "{}", show(&o));
    assert_eq!(field(&m, "euid_after", &o), uid, "{}", show(&o));
}

#[test]
fn su_and_sudo_do_not_gain_root() {
    if !can_run("su_and_sudo_do_not_gain_root") {
        return;
    }
    let f = Fixture::new("cred-su");
    let mut tried = 0;
    for (tool, cmd) in [
        ("/usr/bin/su", "su root -c 'id -u' </dev/null"),
        ("/usr/bin/sudo", "sudo -n id -u </dev/null"),
    ] {
        if !Path::new(tool).exists() {
            eprintln!("{tool} is not installed: not tried");
            continue;
        }
        tried += 1;
        let o = f.sh("default", &format!("{cmd}; echo rc=$?; id -u"));
        assert_status(&o, 0);
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        // The last line is the control: `id -u` itself works, as the agent.
        assert_eq!(lines.last(), Some(&"60123"), "{tool}\n{}", show(&o));
        assert!(!lines.contains(&"0"), "{tool} gave root\n{}", show(&o));
        let rc = lines.iter().find_map(|l| l.strip_prefix("rc="));
        assert!(
            matches!(rc, Some(rc) if rc != "0"),
            "{tool} must fail\n{}",
            show(&o)
        );
    }
    if tried == 0 {
        eprintln!("skipped: neither su nor sudo is installed");
    }
}

#[test]
fn numeric_user_runs_as_that_uid_and_gid() {
    if !can_run("numeric_user_runs_as_that_uid_and_gid") {
        return;
    }
    let f = Fixture::new("cred-numeric");
    let p = f.profile(
        "u1234",
        "version: 1\nname: u1234\nextends: default\nuser: \"1234:1234\"\n",
    );
    let (o, m) = status_inside(&f, p.to_str().unwrap());
    let uids: Vec<&str> = field(&m, "Uid", &o).split_whitespace().collect();
    let gids: Vec<&str> = field(&m, "Gid", &o).split_whitespace().collect();
    assert_eq!(uids, ["1234"; 4], "{}", show(&o));
    assert_eq!(gids, ["1234"; 4], "{}", show(&o));
    let groups = field(&m, "Groups", &o);
    assert!(groups.is_empty() || groups == "1234", "{}", show(&o));
    assert_eq!(field(&m, "CapEff", &o), ZERO_CAPS, "{}", show(&o));
}

#[test]
fn user_root_is_uid_0_without_any_capability() {
    if !can_run("user_root_is_uid_0_without_any_capability") {
        return;
    }
    let f = Fixture::new("cred-root");
    chown(&f.ws, Some(0), Some(0)).unwrap();
    // A file of another user, private to it: only CAP_DAC_OVERRIDE (or
    // CAP_DAC_READ_SEARCH) would let root read it.
    let theirs = f.ws.join("theirs");
    fs::write(&theirs, "not for root\n").unwrap();
    chown(&theirs, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o600)).unwrap();
    // Control: root's own private file.
    let own = f.ws.join("own");
    fs::write(&own, "root's own\n").unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o600)).unwrap();

    let p = f.profile(
        "root",
        "version: 1\nname: root\nextends: default\nuser: root\n",
    );
    let p = p.to_str().unwrap();
    let (o, m) = status_inside(&f, p);
    let uids: Vec<&str> = field(&m, "Uid", &o).split_whitespace().collect();
    assert_eq!(uids, ["0"; 4], "{}", show(&o));
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&m, key, &o), ZERO_CAPS, "{key}\n{}", show(&o));
    }
    assert_eq!(field(&m, "NoNewPrivs", &o), "1", "{}", show(&o));

    let o = f.sh(
        p,
        &format!(
            "cd {ws} && cat own; cat theirs; echo read_theirs=$?; \
             echo x > mine && chmod 600 mine; echo chmod=$?; \
             chown {uid} mine; echo chown=$?",
            ws = f.ws.display(),
            uid = AGENT_UID
        ),
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("root's own\n"), "{}", show(&o));
    assert!(!out.contains("not for root"), "{}", show(&o));
    assert!(out.contains("read_theirs=1\n"), "{}", show(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", show(&o));
    // Control: an owner's chmod needs no capability; giving a file away does.
    assert!(out.contains("chmod=0\n"), "{}", show(&o));
    assert!(out.contains("chown=1\n"), "{}", show(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        show(&o)
    );
    let meta = fs::metadata(f.ws.join("mine")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
}

#[test]
fn root_owned_workspace_is_refused_without_user_root() {
    if !can_run("root_owned_workspace_is_refused_without_user_root") {
        return;
    }
    let f = Fixture::new("cred-rootws");
    chown(&f.ws, Some(0), Some(0)).unwrap();
    let marker = f.ws.join("marker");
    let script = format!("touch {}", marker.display());

    let o = f.sh("default", &script);
    assert_status(&o, 125);
    assert!(o.stdout.is_empty(), "{}", show(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one refusal line\n{}", show(&o));
    assert!(lines[0].starts_with("confine: "), "{}", show(&o));
    assert!(lines[0].contains("root"), "{}", show(&o));
    assert!(lines[0].contains("hint"), "{}", show(&o));
    assert!(!marker.exists(), "the command ran");

    // Control: asking for root explicitly runs it.
    let p = f.profile(
        "root",
        "version: 1\nname: root\nextends: default\nuser: root\n",
    );
    let o = f.sh(p.to_str().unwrap(), &script);
    assert_status(&o, 0);
    assert!(marker.exists(), "{}", show(&o));
}

const BIND_80_PY: &str = "import errno, socket\n\
s = socket.socket()\n\
try:\n    s.bind(('127.0.0.1', 80)); print('bind80=OK')\n\
except OSError as e:\n    print('bind80=' + errno.errorcode[e.errno])\n\
t = socket.socket(); t.bind(('127.0.0.1', 8080)); print('bind8080=OK')\n";

#[test]
fn kept_capability_is_exactly_net_bind_service() {
    if !can_run("kept_capability_is_exactly_net_bind_service")
        || !have(
            "kept_capability_is_exactly_net_bind_service",
            "/usr/bin/python3",
        )
    {
        return;
    }
    let f = Fixture::new("cred-cap");
    let with = f.profile(
        "cap",
        "version: 1\nname: cap\nextends: default\n\
         capabilities: [CAP_NET_BIND_SERVICE]\nnetwork: {mode: loopback}\n",
    );
    let without = f.profile(
        "nocap",
        "version: 1\nname: nocap\nextends: default\nnetwork: {mode: loopback}\n",
    );
    let with = with.to_str().unwrap();
    let without = without.to_str().unwrap();

    let (o, m) = status_inside(&f, with);
    let bit = 1u64 << 10; // CAP_NET_BIND_SERVICE
    for key in ["CapEff", "CapPrm", "CapAmb"] {
        assert_eq!(hex(field(&m, key, &o)), bit, "{key}\n{}", show(&o));
    }
    for key in ["CapInh", "CapBnd"] {
        assert_eq!(hex(field(&m, key, &o)) & !bit, 0, "{key}\n{}", show(&o));
    }
    assert_eq!(field(&m, "NoNewPrivs", &o), "1", "{}", show(&o));
    let uids: Vec<&str> = field(&m, "Uid", &o).split_whitespace().collect();
    assert_eq!(uids, ["60123"; 4], "{}", show(&o));

    let o = f.run(with, &["/usr/bin/python3", "-c", BIND_80_PY]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "bind80=OK\nbind8080=OK\n", "{}", show(&o));

    // Without the capability: the privileged port is refused, an
    // unprivileged one still works.
    let o = f.run(without, &["/usr/bin/python3", "-c", BIND_80_PY]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "bind80=EACCES\nbind8080=OK\n", "{}", show(&o));
}

#[test]
fn host_environment_does_not_leak() {
    if !can_run("host_environment_does_not_leak") {
        return;
    }
    let f = Fixture::new("cred-env");
    let secrets = [
        ("SECRET_TOKEN", "hunter2"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("LD_PRELOAD", "/nonexistent.so"),
    ];
    let mut c = f.command("default", &["/usr/bin/env"]);
    c.envs(secrets);
    let o = c.output().unwrap();
    assert_status(&o, 0);
    let env: BTreeMap<String, String> = stdout(&o)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (k, _) in secrets {
        assert!(!env.contains_key(k), "{k} leaked\n{}", show(&o));
    }
    assert!(!stdout(&o).contains("hunter2"), "{}", show(&o));
    let allowed = ["PATH", "LANG", "LC_ALL", "TERM", "TZ", "COLORTERM", "HOME"];
    for k in env.keys() {
        assert!(
            allowed.contains(&k.as_str()),
            "{k} reached the agent\n{}",
            show(&o)
        );
    }
    assert_eq!(
        env.get("HOME").map(PathBuf::from),
        Some(f.ws.clone()),
        "{}",
        show(&o)
    );
    assert_eq!(
        env.get("PATH").map(String::as_str),
        Some(PATH),
        "{}",
        show(&o)
    );

    // Nor through the init's /proc entries, or any other process's.
    let script = "cat /proc/1/environ >/dev/null 2>&1; echo init_environ=$?; \
             cat /proc/1/cmdline > cmdline; echo init_cmdline=$?; \
             echo init_cmdline_text=$(tr -d '\\000' < cmdline | wc -c); \
             echo secret_hits=$(cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null \
               | tr '\\000' '\\n' | grep -c 'hunter[2]'); \
             echo own_path=$(cat /proc/self/environ | tr '\\000' '\\n' | grep -c '^PATH=')";
    let mut c = f.command("default", &["/bin/sh", "-c", script]);
    c.envs(secrets);
    let o = c.output().unwrap();
    assert_status(&o, 0);
    let m = fields(&stdout(&o));
    assert_ne!(
        field(&m, "init_environ", &o),
        "0",
        "/proc/1/environ is readable\n{}",
        show(&o)
    );
    assert_eq!(field(&m, "init_cmdline", &o), "0", "{}", show(&o));
    assert_eq!(field(&m, "init_cmdline_text", &o), "0", "{}", show(&o));
    assert_eq!(field(&m, "secret_hits", &o), "0", "{}", show(&o));
    // Control: the agent's own environ is readable, so the check can see.
    assert_eq!(field(&m, "own_path", &o), "1", "{}", show(&o));

    // Control: the same search does find the marker in a variable that is
    // kept (TERM).
    let mut c = f.command("default", &["/bin/sh", "-c", script]);
    c.envs(secrets).env("TERM", "xterm-hunter2");
    let o = c.output().unwrap();
    assert_status(&o, 0);
    let m = fields(&stdout(&o));
    assert_ne!(field(&m, "secret_hits", &o), "0", "{}", show(&o));
}

#[test]
fn env_keep_and_set_are_exact() {
    if !can_run("env_keep_and_set_are_exact") {
        return;
    }
    let f = Fixture::new("cred-envexact");
    // Not extending a built-in: their `env.set` (HOME) would merge in.
    let p = f.profile(
        "envexact",
        "version: 1\nname: envexact\n\
         filesystem:\n  read: [/usr, /etc, /bin?, /lib?, /lib64?, \"{workspace}\"]\n  \
         exec: [/usr, /bin?, /lib?, /lib64?]\n  tmp: false\n\
         env:\n  keep: [PATH]\n  set: {FOO: bar}\n",
    );
    let mut c = f.command(p.to_str().unwrap(), &["/usr/bin/env"]);
    c.env("SECRET_TOKEN", "hunter2")
        .env("TERM", "xterm")
        .env("LANG", "C.UTF-8");
    let o = c.output().unwrap();
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("FOO=bar\nPATH={PATH}\n"),
        "{}",
        show(&o)
    );
}

#[test]
fn env_keep_globs_keep_a_prefix_and_nothing_else() {
    if !can_run("env_keep_globs_keep_a_prefix_and_nothing_else") {
        return;
    }
    let f = Fixture::new("cred-envglob");
    let p = f.profile(
        "envglob",
        "version: 1\nname: envglob\n\
         filesystem:\n  read: [/usr, /etc, /bin?, /lib?, /lib64?, \"{workspace}\"]\n  \
         exec: [/usr, /bin?, /lib?, /lib64?]\n  tmp: false\n\
         env:\n  keep: [PATH, \"ANTHROPIC_*\"]\n",
    );
    let mut c = f.command(p.to_str().unwrap(), &["/usr/bin/env"]);
    c.env("ANTHROPIC_MODEL", "m")
        .env("ANTHROPIC_", "e")
        .env("ANTHROPIC", "bare")
        .env("XANTHROPIC_Y", "x")
        .env("anthropic_lower", "l")
        .env("SECRET_TOKEN", "hunter2");
    let o = c.output().unwrap();
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("ANTHROPIC_=e\nANTHROPIC_MODEL=m\nPATH={PATH}\n"),
        "{}",
        show(&o)
    );

    // The default keeps COLORTERM (true colour) next to TERM.
    let mut c = f.command("default", &["/usr/bin/env"]);
    c.env("COLORTERM", "truecolor")
        .env("TERM", "xterm-256color");
    let o = c.output().unwrap();
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l == "COLORTERM=truecolor"),
        "{}",
        show(&o)
    );
    assert!(
        out.lines().any(|l| l == "TERM=xterm-256color"),
        "{}",
        show(&o)
    );
}

#[test]
fn env_keep_bad_globs_are_refused_and_dropped_basics_warned() {
    let f = Fixture::new("cred-envcheck");
    let check = |name: &str, keep: &str| {
        let p = f.profile(
            name,
            &format!("version: 1\nextends: default\nenv:\n  keep: {keep}\n"),
        );
        Command::new(bin())
            .arg("check")
            .arg(&p)
            .env("PATH", PATH)
            .output()
            .unwrap()
    };
    for (name, keep, why) in [
        ("star", "[\"*\"]", "whole environment"),
        ("inner", "[\"A*B\"]", "one `*` at the end"),
        ("lead", "[\"*_KEY\"]", "one `*` at the end"),
        ("two", "[\"A**\"]", "one `*` at the end"),
    ] {
        let o = check(name, keep);
        assert_status(&o, 125);
        assert!(stderr(&o).contains("env.keep[0]"), "{name}: {}", show(&o));
        assert!(stderr(&o).contains(why), "{name}: {}", show(&o));
    }
    // A plain list replaces the inherited one: dropping PATH, TERM and LANG
    // is worth a warning that says which and how to add instead.
    let o = check("plain", "[\"ANTHROPIC_*\"]");
    assert_status(&o, 0);
    assert!(
        stderr(&o).contains("warning: env.keep") && stderr(&o).contains("drops PATH, TERM, LANG"),
        "{}",
        show(&o)
    );
    assert!(stderr(&o).contains("{add: [...]}"), "{}", show(&o));
    // Controls: adding, or a plain list that lists them, warns about nothing.
    for (name, keep) in [
        ("add", "{add: [\"ANTHROPIC_*\"]}"),
        ("full", "[PATH, TERM, LANG, \"ANTHROPIC_*\"]"),
        ("remove", "{remove: [PATH]}"),
    ] {
        let o = check(name, keep);
        assert_status(&o, 0);
        assert!(
            !stderr(&o).contains("warning: env.keep"),
            "{name}: {}",
            show(&o)
        );
    }
    // A glob that covers a variable that loads code is warned about too.
    let o = check("ld", "{add: [\"LD_*\"]}");
    assert_status(&o, 0);
    assert!(stderr(&o).contains("keeping LD_*"), "{}", show(&o));
}

#[test]
fn inherited_fds_do_not_reach_the_agent() {
    if !can_run("inherited_fds_do_not_reach_the_agent") {
        return;
    }
    let f = Fixture::new("cred-fds");
    let secret = f.file(&f.outside.join("secret"), "fd-secret-contents\n");
    let file = fs::File::open(&secret).unwrap();
    let fd = file.as_raw_fd();
    let inherit9 = move || {
        // SAFETY: dup2 is async-signal-safe; the new fd 9 has no CLOEXEC.
        if unsafe { libc::dup2(fd, 9) } == 9 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let script = "ls /proc/self/fd | tr '\\n' ' '; echo; cat <&9";

    // Control: a child of the launcher does get fd 9 and reads through it.
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script]).stdin(Stdio::null());
    // SAFETY: the closure only calls dup2.
    unsafe { c.pre_exec(inherit9) };
    let o = c.output().unwrap();
    assert!(stdout(&o).contains("fd-secret-contents"), "{}", show(&o));

    let mut c = f.command("default", &["/bin/sh", "-c", script]);
    // SAFETY: as above.
    unsafe { c.pre_exec(inherit9) };
    let o = c.output().unwrap();
    let out = stdout(&o);
    assert!(!out.contains("fd-secret-contents"), "{}", show(&o));
    // 0, 1, 2, and the directory `ls` reads.
    assert_eq!(out.lines().next(), Some("0 1 2 3 "), "{}", show(&o));
    assert!(stderr(&o).contains("Bad file descriptor"), "{}", show(&o));
    drop(file);
}

#[test]
fn signal_mask_and_dispositions_are_reset() {
    if !can_run("signal_mask_and_dispositions_are_reset") {
        return;
    }
    if !Path::new("/bin/bash").exists() {
        eprintln!("skipped: needs /bin/bash");
        return;
    }
    let f = Fixture::new("cred-signals");
    let rtmax = libc::SIGRTMAX();
    // Signal 32 is reserved by glibc (its sigaction refuses it), so it is
    // ignored with the raw syscall: a launcher written without glibc, or one
    // that inherited it, can hand it over like that.
    let glibc_reserved = libc::SIGRTMIN() - 2;
    // A launcher that ignores SIGPIPE (as Rust programs do), SIGHUP (nohup),
    // SIGRTMAX and signal 32, and blocks SIGUSR1 and SIGUSR2.
    let pollute = move || {
        // SAFETY: signal, sigemptyset, sigaddset and sigprocmask are
        // async-signal-safe and get valid arguments.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(rtmax, libc::SIG_IGN);
            // The kernel's struct sigaction: handler, flags, restorer, mask.
            let ign: [libc::c_ulong; 4] = [libc::SIG_IGN as libc::c_ulong, 0, 0, 0];
            libc::syscall(
                libc::SYS_rt_sigaction,
                glibc_reserved as libc::c_long,
                ign.as_ptr(),
                std::ptr::null::<libc::c_ulong>(),
                8 as libc::c_long,
            );
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        Ok(())
    };
    let script = "grep -E '^Sig(Blk|Ign)' /proc/self/status; \
                  yes | head -1; echo \"yes=${PIPESTATUS[0]}\"";

    // Control: without confine the polluted state reaches the program, and
    // `yes` dies of EPIPE instead of SIGPIPE.
    let mut c = Command::new("/bin/bash");
    c.args(["-c", script])
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null());
    // SAFETY: the closure only calls async-signal-safe functions.
    unsafe { c.pre_exec(pollute) };
    let o = c.output().unwrap();
    let m = fields(&stdout(&o));
    assert_ne!(field(&m, "SigIgn", &o), NO_SIGNALS, "{}", show(&o));
    assert_ne!(field(&m, "SigBlk", &o), NO_SIGNALS, "{}", show(&o));
    assert_ne!(field(&m, "yes", &o), "141", "{}", show(&o));

    let mut c = f.command("default", &["/bin/bash", "-c", script]);
    // SAFETY: as above.
    unsafe { c.pre_exec(pollute) };
    let o = c.output().unwrap();
    assert_status(&o, 0);
    let m = fields(&stdout(&o));
    assert_eq!(field(&m, "SigIgn", &o), NO_SIGNALS, "{}", show(&o));
    assert_eq!(field(&m, "SigBlk", &o), NO_SIGNALS, "{}", show(&o));
    assert!(stdout(&o).contains("\ny\n"), "{}", show(&o));
    // `yes` was killed by SIGPIPE, the normal end of `yes | head -1`.
    assert_eq!(field(&m, "yes", &o), "141", "{}", show(&o));
    assert!(!stderr(&o).contains("Broken pipe"), "{}", show(&o));
}

/// Whether `dir`'s filesystem honours setuid and setgid bits (not mounted
/// nosuid), so a test that relies on them proves something.
fn honours_setuid(dir: &Path) -> bool {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: an all-zero statvfs is valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs fills `st`; `c` is a NUL-terminated path.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(r, 0);
    st.f_flag & libc::ST_NOSUID == 0
}

#[test]
fn setuid_or_setgid_copy_of_confine_refuses_to_run() {
    if !can_run("setuid_or_setgid_copy_of_confine_refuses_to_run") {
        return;
    }
    let f = Fixture::new("cred-suid-confine");
    // The copies live in a directory only root and the agent's group can
    // enter, so no other user can run them while the test does.
    let dir = f.root.join("privileged");
    fs::create_dir(&dir).unwrap();
    chown(&dir, Some(0), Some(AGENT_GID)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
    if !honours_setuid(&dir) {
        skip_or_fail(
            "setuid_or_setgid_copy_of_confine_refuses_to_run",
            &format!("{} is on a nosuid filesystem", dir.display()),
        );
        return;
    }
    let marker = f.ws.join("ran");
    let script = format!("id -u > {}", marker.display());

    // Control: the normal binary, run by root, runs the command (as the
    // workspace's owner).
    let o = f.sh("default", &script);
    assert_status(&o, 0);
    assert_eq!(
        fs::read_to_string(&marker).unwrap_or_default(),
        format!("{AGENT_UID}\n"),
        "{}",
        show(&o)
    );
    fs::remove_file(&marker).unwrap();

    let mut variants: Vec<(&str, PathBuf)> = Vec::new();
    for (name, mode) in [("setuid", 0o4755), ("setgid", 0o2755)] {
        let copy = dir.join(format!("confine-{name}"));
        fs::copy(bin(), &copy).unwrap();
        chown(&copy, Some(0), Some(0)).unwrap();
        // chown clears the bits: set them afterwards.
        fs::set_permissions(&copy, fs::Permissions::from_mode(mode)).unwrap();
        variants.push((name, copy));
    }
    // A copy with file capabilities is as privileged as a setuid one.
    if Path::new("/usr/sbin/setcap").exists() {
        let copy = dir.join("confine-filecaps");
        fs::copy(bin(), &copy).unwrap();
        let o = Command::new("/usr/sbin/setcap")
            .arg("cap_dac_override,cap_sys_admin+ep")
            .arg(&copy)
            .output()
            .unwrap();
        assert_status(&o, 0);
        variants.push(("file capabilities", copy));
    } else {
        // Fails under CONFINE_REQUIRE_KERNEL=1 (CI installs libcap2-bin).
        skip_or_fail(
            "setuid_or_setgid_copy_of_confine_refuses_to_run",
            "setcap (libcap2-bin) isn't installed: the file-capability copy is not tried",
        );
    }

    for (name, copy) in &variants {
        let o = setpriv_as_agent()
            .arg("--")
            .arg(copy)
            .args(["run", "-p", "default", "-w"])
            .arg(&f.ws)
            .args(["--", "/bin/sh", "-c", &script])
            .env("PATH", PATH)
            .current_dir(&f.ws)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_status(&o, 125);
        assert!(!marker.exists(), "the {name} copy ran the command");
        assert!(o.stdout.is_empty(), "{name}\n{}", show(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one refusal line ({name})\n{}", show(&o));
        assert!(lines[0].starts_with("confine: "), "{name}\n{}", show(&o));
        assert!(
            lines[0].contains("setuid") && lines[0].contains(&AGENT_UID.to_string()),
            "{name}\n{}",
            show(&o)
        );
    }
}
