//! What was blocked (DESIGN.md §7 `denied`, §13): each denial of a run is
//! one `denied` record of the right kind and object, its first occurrence
//! is one line on stderr, `confine why` prints the change that would allow
//! it, and a flood of denials neither stops the supervisor from obeying
//! `wall_time` and SIGTERM nor grows the log.
//!
//! Landlock's denials come from the kernel's audit, which must be on. If it
//! is off, the test that needs it turns it on (AUDIT_SET, as root) for its
//! own duration and back off after: confine itself never changes it.
mod common;
use common::net::Net;
use common::*;

use std::process::{Command, Output};
use std::sync::Mutex;

/// Tests that read `confine why --last` (one state directory per user)
/// don't interleave their runs.
static LAST: Mutex<()> = Mutex::new(());

const PUBLIC: &str = "93.184.215.14";
const OTHER: &str = "93.184.215.15";
const DNS: &str = "198.51.100.53";

/// The attack: two denylisted calls (ptrace, keyctl), a device ioctl that
/// only Landlock refuses (TCGETS on a /dev/null opened inside: the view
/// grants it read-write, Landlock not IOCTL_DEV), then what the profile
/// does allow (getpid, a read of the workspace), with argv[1] repetitions.
const ATTACK: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1;
    setvbuf(stdout, 0, _IONBF, 0);
    for (long i = 0; n < 0 || i < n; i++) {
        long p = syscall(SYS_ptrace, 0, 0, 0, 0);
        int pe = errno;
        long k = syscall(SYS_keyctl, 0, 0, 0, 0);
        int ke = errno;
        if (i == 0)
            printf("ptrace %ld %s\nkeyctl %ld %s\n", p, strerror(pe), k, strerror(ke));
    }
    if (argc > 2) {
        int fd = open("/dev/null", O_RDWR);
        struct termios t;
        int r = ioctl(fd, TCGETS, &t);
        printf("ioctl %d %s\n", r, strerror(errno));
    }
    printf("getpid %s\n", getpid() > 0 ? "ok" : "failed");
    return 0;
}
"#;

fn records(log: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn denied<'a>(
    rs: &'a [serde_json::Value],
    kind: &str,
    key: &str,
    value: &str,
) -> Vec<&'a serde_json::Value> {
    rs.iter()
        .filter(|r| r["event"] == "denied" && r["kind"] == kind && r[key] == value)
        .collect()
}

/// How often `needle` occurs in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// AUDIT_GET / AUDIT_SET over NETLINK_AUDIT: audit on for the guard's
/// life, if it was off.
struct AuditOn {
    was_off: bool,
}

fn audit_request(kind: u16, enabled: Option<u32>) -> std::io::Result<u32> {
    // SAFETY: socket with integer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_AUDIT,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut msg = [0u32; 4 + 10];
    let len = if enabled.is_some() { 16 + 40 } else { 16 };
    msg[0] = len;
    msg[1] = u32::from(kind) | ((libc::NLM_F_REQUEST as u32) << 16);
    msg[2] = 1;
    if let Some(e) = enabled {
        msg[4] = 1; // AUDIT_STATUS_ENABLED
        msg[5] = e;
    }
    // SAFETY: a valid buffer of `len` bytes.
    let sent = unsafe { libc::send(fd, msg.as_ptr().cast(), len as usize, 0) };
    let mut buf = [0u32; 64];
    let n = if sent < 0 || enabled.is_some() {
        0
    } else {
        // SAFETY: a valid buffer of 256 bytes.
        unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), 256, 0) }
    };
    // SAFETY: closing our own socket.
    unsafe { libc::close(fd) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(if n >= 24 && buf[1] & 0xffff == 1000 {
        buf[5]
    } else {
        0
    })
}

impl AuditOn {
    fn new() -> std::io::Result<AuditOn> {
        let was_off = audit_request(1000, None)? == 0;
        if was_off {
            audit_request(1001, Some(1))?;
        }
        Ok(AuditOn { was_off })
    }
}

impl Drop for AuditOn {
    fn drop(&mut self) {
        if self.was_off {
            let _ = audit_request(1001, Some(0));
        }
    }
}

fn why(args: &[&str]) -> Output {
    Command::new(bin()).arg("why").args(args).output().unwrap()
}

#[test]
fn each_denial_is_one_record_with_its_fix_and_one_line() {
    let test = "each_denial_is_one_record_with_its_fix_and_one_line";
    if !can_run(test) || !have(test, "/usr/bin/curl") {
        return;
    }
    let _last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let f = Fixture::new("denials-each");
    let Some(prog) = compile(&f, "attack", ATTACK) else {
        return;
    };
    let prog = prog.display().to_string();
    let log = f.root.join("audit.jsonl");

    // On for as short a time as the first run needs (the whole host's
    // audit: other runs meanwhile would log their Landlock denials too).
    let audit = AuditOn::new();
    let probe = Command::new(bin())
        .args(["probe", "--json"])
        .output()
        .unwrap();
    let probe: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    assert_eq!(probe["denials"]["seccomp"]["available"], true, "{probe}");
    assert_eq!(probe["denials"]["network"]["available"], true, "{probe}");
    let landlock = probe["denials"]["landlock"]["available"] == true;
    if !landlock {
        skip_or_fail(
            test,
            &format!(
                "no Landlock denials here: {}",
                probe["denials"]["landlock"]["missing"]
            ),
        );
    }

    // Run 1, in the host's network namespace (the kernel's audit records
    // are only sent there): the denylisted calls and Landlock.
    let o = Command::new(bin())
        .args(["run", "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log)
        .args(["--", "/bin/sh", "-c", &format!("{prog} 3 ioctl; {prog} 1")])
        .env("PATH", PATH)
        .current_dir(&f.ws)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    drop(audit);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let (out, err) = (stdout(&o), stderr(&o));
    // What the agent saw: EPERM, as without reporting; the control ran.
    assert_eq!(
        count(&out, "ptrace -1 Operation not permitted"),
        2,
        "{}",
        show(&o)
    );
    assert_eq!(
        count(&out, "keyctl -1 Operation not permitted"),
        2,
        "{}",
        show(&o)
    );
    assert!(out.contains("ioctl -1 Permission denied"), "{}", show(&o));
    assert_eq!(count(&out, "getpid ok"), 2, "{}", show(&o));
    let rs = records(&log);
    let sandbox = rs[0]["sandbox"].as_str().unwrap().to_string();
    // One record per denial, however often it happened; none for what
    // was allowed.
    let ptrace = denied(&rs, "seccomp", "syscall", "ptrace");
    assert_eq!(ptrace.len(), 1, "{rs:#?}");
    assert_eq!(ptrace[0]["exe"], prog.as_str(), "{:?}", ptrace[0]);
    assert!(ptrace[0]["agent_pid"].as_u64().is_some_and(|p| p > 1));
    assert_eq!(ptrace[0]["sandbox"], sandbox.as_str());
    assert_eq!(
        denied(&rs, "seccomp", "syscall", "keyctl").len(),
        1,
        "{rs:#?}"
    );
    assert!(denied(&rs, "seccomp", "syscall", "getpid").is_empty());
    let landlock_records = denied(&rs, "landlock", "path", "/dev/null");
    if landlock {
        assert_eq!(landlock_records.len(), 1, "{rs:#?}");
        assert_eq!(landlock_records[0]["access"][0], "fs.ioctl_dev");
        assert_eq!(landlock_records[0]["sandbox"], sandbox.as_str());
    }
    let totals: Vec<_> = rs.iter().filter(|r| r["event"] == "denials").collect();
    assert_eq!(totals.len(), 1, "{rs:#?}");
    assert_eq!(
        totals[0]["total"],
        if landlock { 9 } else { 8 },
        "{:?}",
        totals[0]
    );
    // The first of each, once, on stderr, naming the key.
    assert_eq!(
        count(
            &err,
            "confine: denied syscall ptrace (syscalls.allow would allow it"
        ),
        1,
        "{err}"
    );
    assert_eq!(
        count(
            &err,
            "confine: denied syscall keyctl (no profile may allow it"
        ),
        1,
        "{err}"
    );
    if landlock {
        assert_eq!(
            count(
                &err,
                "confine: denied fs.ioctl_dev of /dev/null (no profile may allow it"
            ),
            1,
            "{err}"
        );
    }
    assert!(err.contains(&format!("confine why {sandbox}")), "{err}");
    for args in [
        vec![sandbox.as_str()],
        vec!["--last"],
        vec!["--audit-log", log.to_str().unwrap(), &sandbox[..8]],
    ] {
        let w = why(&args);
        assert_eq!(w.status.code(), Some(0), "{args:?}: {}", show(&w));
        let text = stdout(&w);
        assert!(text.contains(&format!("run {sandbox}")), "{text}");
        assert!(text.contains("allow: [ptrace]"), "{text}");
        assert!(text.contains("careful: it is denylisted"), "{text}");
        assert!(
            text.contains("keyctl") && text.contains("the kernel keyrings are not confined"),
            "{text}"
        );
        if landlock {
            assert!(text.contains("fs.ioctl_dev of /dev/null"), "{text}");
        }
    }

    // Run 2, in proxy mode: an allowed host (the control) and one that isn't.
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    dns.set("other.example", &[OTHER]);
    let _web = net.http(PUBLIC, "ok\n");
    let p = f.profile(
        "proxy",
        "version: 1\nextends: default\nnetwork:\n  mode: proxy\n  allow: [\"example.com:80\"]\n",
    );
    let log2 = f.root.join("audit2.jsonl");
    let curl = "curl -sS --fail --max-time 10";
    let mut cmd = Command::new(bin());
    cmd.args(["run", "-p"])
        .arg(&p)
        .arg("-w")
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log2)
        .args([
            "--",
            "/bin/sh",
            "-c",
            &format!("{curl} http://example.com/; {curl} http://other.example/; {curl} http://other.example/; true"),
        ])
        .env("PATH", PATH)
        .current_dir(&f.ws);
    let o = net
        .in_client(&cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stdout(&o).contains("ok\n"),
        "the allowed host: {}",
        show(&o)
    );
    let err = stderr(&o);
    let rs = records(&log2);
    let sandbox2 = rs[0]["sandbox"].as_str().unwrap().to_string();
    let host = denied(&rs, "network", "host", "other.example");
    assert_eq!(host.len(), 1, "{rs:#?}");
    assert_eq!(host[0]["port"], 80, "{rs:#?}");
    assert!(
        denied(&rs, "network", "host", "example.com").is_empty(),
        "{rs:#?}"
    );
    assert_eq!(
        count(
            &err,
            "confine: denied connect to other.example:80 (network.allow would allow it)"
        ),
        1,
        "{err}"
    );
    assert!(!err.contains("example.com:80"), "{err}");
    let w = why(&[&sandbox2]);
    assert!(
        stdout(&w).contains("allow: [\"other.example:80\"]"),
        "{}",
        show(&w)
    );

    let w = why(&[&sandbox, "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&w.stdout).unwrap();
    let items = j["denials"].as_array().unwrap();
    let ptrace = items.iter().find(|i| i["syscall"] == "ptrace").unwrap();
    assert_eq!(ptrace["count"], 4, "{j}");
    assert_eq!(ptrace["fix"]["key"], "syscalls.allow");
    assert_eq!(ptrace["fix"]["yaml"], "syscalls:\n  allow: [ptrace]\n");
    let keyctl = items.iter().find(|i| i["syscall"] == "keyctl").unwrap();
    assert!(keyctl["fix"]["key"].is_null(), "{j}");
    // The pasted change does what it says: ptrace allowed, no record.
    let allowing = f.profile(
        "allowing",
        "version: 1\nextends: default\nsyscalls:\n  allow: [ptrace]\n",
    );
    let o = f.run(allowing.to_str().unwrap(), &[&prog, "1"]);
    assert!(
        !stdout(&o).contains("ptrace -1 Operation not permitted"),
        "{}",
        show(&o)
    );
    assert!(
        !stderr(&o).contains("denied syscall ptrace"),
        "{}",
        show(&o)
    );
}

#[test]
fn a_flood_of_denials_is_counted_and_the_sandbox_still_obeys_wall_time_and_sigterm() {
    let test = "a_flood_of_denials_is_counted_and_the_sandbox_still_obeys_wall_time_and_sigterm";
    if !can_run(test) {
        return;
    }
    let _last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let f = Fixture::new("denials-flood");
    let Some(prog) = compile(&f, "flood", ATTACK) else {
        return;
    };
    let prog = prog.display().to_string();
    let log = f.root.join("audit.jsonl");
    // 100,000 rounds (200,000 denied calls): finishes, one record each,
    // the totals counted, one line each on stderr.
    let o = Command::new(bin())
        .args(["run", "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log)
        .args(["--", &prog, "100000"])
        .env("PATH", PATH)
        .current_dir(&f.ws)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let rs = records(&log);
    assert_eq!(denied(&rs, "seccomp", "syscall", "ptrace").len(), 1);
    assert_eq!(denied(&rs, "seccomp", "syscall", "keyctl").len(), 1);
    let totals = rs.iter().find(|r| r["event"] == "denials").unwrap();
    assert_eq!(totals["total"], 200_000, "{totals}");
    assert_eq!(totals["distinct"], 2, "{totals}");
    assert_eq!(rs.len(), 5, "launch, 2 denied, denials, exit: {rs:#?}");
    assert_eq!(
        count(&stderr(&o), "denied syscall ptrace"),
        1,
        "{}",
        show(&o)
    );

    // Forever, under wall_time: stopped in time (124).
    let timed = f.profile(
        "timed",
        "version: 1\nextends: default\nlimits:\n  wall_time: 2s\n  grace: 1s\n",
    );
    let o = f.run(timed.to_str().unwrap(), &[&prog, "-1"]);
    assert_eq!(o.status.code(), Some(124), "{}", show(&o));
    assert!(stderr(&o).contains("limits.wall_time"), "{}", show(&o));

    // Forever, then SIGTERM to confine: the agent gets it and ends.
    let mut sb = f.spawn("default", &[&prog, "-1"]);
    let started = || {
        std::fs::read_dir(&f.root).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("stdout-")
                && std::fs::read_to_string(e.path()).is_ok_and(|s| s.contains("ptrace -1"))
        })
    };
    assert!(poll(std::time::Duration::from_secs(10), started));
    sb.signal(libc::SIGTERM);
    let o = sb.finish();
    assert_eq!(o.status.code(), Some(128 + libc::SIGTERM), "{}", show(&o));
}

#[test]
fn quiet_silences_the_lines_not_the_records() {
    let test = "quiet_silences_the_lines_not_the_records";
    if !can_run(test) {
        return;
    }
    let _last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let f = Fixture::new("denials-quiet");
    let Some(prog) = compile(&f, "attack", ATTACK) else {
        return;
    };
    let log = f.root.join("audit.jsonl");
    let o = Command::new(bin())
        .args(["run", "--quiet", "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log)
        .arg("--")
        .arg(&prog)
        .env("PATH", PATH)
        .current_dir(&f.ws)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(!stderr(&o).contains("denied"), "{}", show(&o));
    assert_eq!(
        denied(&records(&log), "seccomp", "syscall", "ptrace").len(),
        1
    );
    // The control: without --quiet, the line.
    let o = f.run("default", &[prog.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("confine: denied syscall ptrace"),
        "{}",
        show(&o)
    );
}

#[test]
fn why_refuses_an_unknown_run_and_bad_usage() {
    let w = why(&["ffffffffffffffffffffffffffff0000"]);
    assert_eq!(w.status.code(), Some(1), "{}", show(&w));
    assert!(
        stderr(&w).starts_with("confine: why (ffffffffffffffffffffffffffff0000): "),
        "{}",
        show(&w)
    );
    let w = why(&[]);
    assert_eq!(w.status.code(), Some(125), "{}", show(&w));
    let w = why(&["--last", "--audit-log", "/nonexistent/audit.jsonl"]);
    assert_eq!(w.status.code(), Some(1), "{}", show(&w));
}

#[test]
fn on_violation_log_is_called_what_it_is() {
    let f = Fixture::new("denials-log");
    let log = f.profile(
        "log",
        "version: 1\nextends: default\nsyscalls: {on_violation: log}\n",
    );
    let o = Command::new(bin()).arg("check").arg(&log).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stderr(&o).contains("syscalls.on_violation")
            && stderr(&o).contains("`log` ALLOWS every denylisted call"),
        "{}",
        show(&o)
    );
    let o = Command::new(bin())
        .args(["explain", "-w"])
        .arg(&f.ws)
        .arg("-p")
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("on_violation log: these calls are ALLOWED"),
        "{}",
        show(&o)
    );
    assert!(stderr(&o).contains("`log` ALLOWS"), "{}", show(&o));
    // The control: the default says nothing of the kind.
    let o = Command::new(bin())
        .args(["check", "default"])
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("ALLOWS"), "{}", show(&o));
    let o = Command::new(bin())
        .args(["explain", "-w"])
        .arg(&f.ws)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("on_violation errno: EPERM, answered by the supervisor"),
        "{}",
        show(&o)
    );
}

/// Without root: the seccomp listener works the same (it needs no
/// privilege), the run is kept in the user's own state directory, and
/// `probe` says why Landlock's denials are missing.
#[test]
fn unprivileged_runs_report_seccomp_denials_and_probe_says_what_is_missing() {
    let test = "unprivileged_runs_report_seccomp_denials_and_probe_says_what_is_missing";
    if !can_run(test) || !have(test, "/usr/bin/unshare") {
        return;
    }
    if std::fs::read_to_string("/proc/sys/user/max_user_namespaces").is_ok_and(|s| s.trim() == "0")
    {
        skip_or_fail(test, "user namespaces are disabled on this host");
        return;
    }
    let f = Fixture::new("denials-unpriv");
    // Both outside every grant: the agent must not rewrite them.
    let state = f.outside.join("state");
    let log = f.outside.join("audit.jsonl");
    let as_agent = |args: &[&str]| {
        setpriv_as_agent()
            .args(["--inh-caps=-all", "--bounding-set=-all"])
            .arg(bin())
            .args(args)
            .env("PATH", PATH)
            .env("XDG_STATE_HOME", &state)
            .current_dir(&f.ws)
            .output()
            .unwrap()
    };
    let ws = f.ws.display().to_string();
    let o = as_agent(&[
        "run",
        "-w",
        &ws,
        "--audit-log",
        log.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "unshare -U true; echo unshare=$?",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("unshare=1"), "{}", show(&o));
    assert!(
        stderr(&o).contains("confine: denied syscall unshare"),
        "{}",
        show(&o)
    );
    let rs = records(&log);
    assert_eq!(
        denied(&rs, "seccomp", "syscall", "unshare").len(),
        1,
        "{rs:#?}"
    );
    // Kept in $XDG_STATE_HOME/confine/runs, 0700, for `why --last`.
    let runs = state.join("confine/runs");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&runs).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    let w = as_agent(&["why", "--last"]);
    assert_eq!(w.status.code(), Some(0), "{}", show(&w));
    assert!(
        stdout(&w).contains("denied syscall unshare"),
        "{}",
        show(&w)
    );
    // What no source reports is said where the user looks.
    assert!(
        stdout(&w).contains("not listed: a path the profile doesn't grant is absent inside")
            && stdout(&w).contains("confine learn -p default -- CMD"),
        "{}",
        show(&w)
    );
    // A state directory the agent could reach keeps nothing, and says so.
    let inside = f.ws.join("state");
    let o = setpriv_as_agent()
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(bin())
        .args(["run", "-w", &ws, "--", "/bin/sh", "-c", "unshare -U true"])
        .env("PATH", PATH)
        .env("XDG_STATE_HOME", &inside)
        .current_dir(&f.ws)
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("is inside the grant") && stderr(&o).contains("not kept"),
        "{}",
        show(&o)
    );
    assert!(!inside.exists(), "{}", show(&o));
    // probe: seccomp yes, Landlock no, and why.
    let p = as_agent(&["probe", "--json"]);
    let p: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(p["denials"]["seccomp"]["available"], true, "{p}");
    assert_eq!(p["denials"]["landlock"]["available"], false, "{p}");
    assert!(
        p["denials"]["landlock"]["missing"]
            .as_str()
            .is_some_and(|m| m.contains("root")),
        "{p}"
    );
}

/// The kept runs are bounded: `gc` keeps the newest 50, by their start,
/// and `why` reads a kept run that never finished (its supervisor was
/// killed) from what it had written. As the agent's uid, in a state
/// directory of the test's own.
#[test]
fn gc_keeps_the_newest_runs_and_why_reads_an_unfinished_one() {
    let test = "gc_keeps_the_newest_runs_and_why_reads_an_unfinished_one";
    if !can_run(test) {
        return;
    }
    let f = Fixture::new("denials-gc");
    let state = f.outside.join("state");
    let runs = state.join("confine/runs");
    std::fs::create_dir_all(&runs).unwrap();
    for d in [&state, &state.join("confine"), &runs] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(d, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    }
    for i in 0..55u64 {
        let id = format!("{i:032x}");
        let dir = runs.join(&id);
        std::fs::create_dir(&dir).unwrap();
        let run = serde_json::json!({
            "sandbox": id, "started": "2026-01-01T00:00:00.000Z", "started_ms": 1000 + i,
            "profile": "default", "workspace": "/w", "argv": ["x"], "protect": [], "audit_log": null,
        });
        std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
        let d = serde_json::json!({"kind": "seccomp", "syscall": format!("bpf{i}")});
        std::fs::write(dir.join("denials.jsonl"), format!("{d}\n")).unwrap();
        for p in [dir.clone(), dir.join("run.json"), dir.join("denials.jsonl")] {
            std::os::unix::fs::chown(&p, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
        }
    }
    let as_agent = |args: &[&str]| {
        setpriv_as_agent()
            .arg(bin())
            .args(args)
            .env("PATH", PATH)
            .env("XDG_STATE_HOME", &state)
            .current_dir("/")
            .output()
            .unwrap()
    };
    let w = as_agent(&["why", "--last"]);
    assert_eq!(w.status.code(), Some(0), "{}", show(&w));
    assert!(
        stdout(&w).contains(&format!("run {:032x}", 54)),
        "{}",
        show(&w)
    );
    assert!(stdout(&w).contains("denied syscall bpf54"), "{}", show(&w));
    let g = as_agent(&["gc"]);
    assert_eq!(g.status.code(), Some(0), "{}", show(&g));
    assert!(
        stdout(&g).contains("removed 5 old run record(s)"),
        "{}",
        show(&g)
    );
    let left: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 50);
    assert!(!left.contains(&format!("{:032x}", 4)) && left.contains(&format!("{:032x}", 5)));
    // A prefix that names several runs, and one that names one.
    let w = as_agent(&["why", &format!("{:032x}", 16)[..31]]);
    assert_eq!(w.status.code(), Some(1), "{}", show(&w));
    assert!(
        stderr(&w).contains("is the prefix of 16 runs"),
        "{}",
        show(&w)
    );
    let w = as_agent(&["why", &format!("{:032x}", 9)[..30]]);
    assert_eq!(w.status.code(), Some(1), "{}", show(&w));
    let w = as_agent(&["why", &format!("{:032x}", 53)]);
    assert_eq!(w.status.code(), Some(0), "{}", show(&w));
    assert!(stdout(&w).contains("bpf53"), "{}", show(&w));
    // A run directory that is a symlink is never followed.
    let evil = runs.join(format!("{:032x}", 99));
    std::os::unix::fs::symlink(runs.join(format!("{:032x}", 9)), &evil).unwrap();
    let w = as_agent(&["why", &format!("{:032x}", 99)]);
    assert_eq!(w.status.code(), Some(1), "{}", show(&w));
}

/// `on_violation: log` (root, audit on): the calls the denylist let
/// through are recorded as having run, joined to the sandbox by the
/// process's PID namespace while it lives (the program waits for its
/// stdin to close, which the test does once the record is there).
#[test]
fn on_violation_log_records_what_ran() {
    let test = "on_violation_log_records_what_ran";
    if !can_run(test) {
        return;
    }
    const WAITER: &str = r#"
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    long r = syscall(SYS_ptrace, 0, 0, 0, 0);
    printf("ptrace %ld\n", r);
    fflush(stdout);
    char b;
    while (read(0, &b, 1) > 0) {}
    return 0;
}
"#;
    let _last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let f = Fixture::new("denials-logged");
    let Some(prog) = compile(&f, "waiter", WAITER) else {
        return;
    };
    let p = f.profile(
        "log",
        "version: 1\nextends: default\nsyscalls: {on_violation: log}\n",
    );
    let log = f.root.join("audit.jsonl");
    let audit = AuditOn::new();
    let mut child = Command::new(bin())
        .args(["run", "-p"])
        .arg(&p)
        .arg("-w")
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log)
        .arg("--")
        .arg(&prog)
        .env("PATH", PATH)
        .current_dir(&f.ws)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seen = poll(std::time::Duration::from_secs(20), || {
        !denied(&records(&log), "seccomp", "syscall", "ptrace").is_empty()
    });
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    drop(audit);
    if !seen
        && !skip_or_fail(
            test,
            "no seccomp record arrived (is the kernel's audit available here?)",
        )
    {
        return;
    }
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // It ran (ptrace(PTRACE_TRACEME) succeeds), and the record says so.
    assert!(stdout(&o).contains("ptrace 0"), "{}", show(&o));
    let rs = records(&log);
    let r = denied(&rs, "seccomp", "syscall", "ptrace");
    assert_eq!(r.len(), 1, "{rs:#?}");
    assert_eq!(r[0]["reason"], "allowed and logged (on_violation: log)");
    assert!(
        stderr(&o).contains("confine: allowed (on_violation: log) syscall ptrace (it ran;"),
        "{}",
        show(&o)
    );
}
