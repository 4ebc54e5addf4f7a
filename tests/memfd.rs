//! Nothing runs that isn't under an `exec` grant, memfds included (DESIGN.md
//! §6, finding 4). Landlock doesn't cover a memfd (its inode is private to
//! the kernel), so code copied into one would run by `execveat(fd, "",
//! AT_EMPTY_PATH)` or `execve("/proc/self/fd/N")` under any profile. confine
//! makes every memfd of the sandbox non-executable (`vm.memfd_noexec` of its
//! PID namespace, and MFD_EXEC refused) or, where it can't, makes
//! `memfd_create` fail with ENOSYS.
//!
//! The payload is a program compiled into the workspace, which the profile
//! lets the agent read but not execute; the probe that copies it is the one
//! file the profile adds to the exec grants. Running the payload is
//! harmless: it exits 42.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The probe: `./memx OP...`, one `name=RESULT` line per OP. RESULT is `OK`,
/// an errno name, or `EXITn` when something was exec'd and exited with n.
const MEMX_C: &str = r##"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x1U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x2U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x8U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x10U
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

extern char **environ;

static const char *ename(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
    }
}

static void line(const char *name, const char *what) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s=%s\n", name, what);
    if (write(1, buf, n) < 0) _exit(3);
}

static int memfd(unsigned flags) {
    return (int)syscall(SYS_memfd_create, "confine-test", flags);
}

/* A memfd holding a copy of the file at `src`, or -1 (reported). */
static int copy_into_memfd(const char *name, const char *src, unsigned flags) {
    int fd = memfd(flags);
    if (fd < 0) { line(name, ename(errno)); return -1; }
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) { line(name, "cant-read-payload"); return -1; }
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(fd, buf, n) != n) { line(name, "short-write"); return -1; }
    }
    close(in);
    return fd;
}

/* Runs `how` in a child: 0 execveat(fd, ""), 1 execve("/proc/self/fd/N"),
   2 execve(path). Reports the exec's errno, or the exit status of what ran. */
static void run(const char *name, int how, int fd, const char *path) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    char *argv[] = {(char *)name, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        if (how == 0) syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
        else if (how == 1) execve(proc, argv, environ);
        else execve(path, argv, environ);
        line(name, ename(errno));
        _exit(99);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) != 99) {
        char buf[32];
        snprintf(buf, sizeof buf, "EXIT%d", WEXITSTATUS(st));
        line(name, buf);
    } else if (!WIFEXITED(st)) {
        line(name, "SIGNALED");
    }
}

/* A memfd used for data: write, read back. */
static void data(const char *name, unsigned flags) {
    int fd = memfd(flags);
    if (fd < 0) { line(name, ename(errno)); return; }
    char out[6] = {0};
    if (write(fd, "hello", 5) != 5 || pread(fd, out, 5, 0) != 5 || strcmp(out, "hello")) {
        line(name, "data-mismatch");
    } else {
        line(name, "OK");
    }
    close(fd);
}

int main(int argc, char **argv) {
    const char *payload = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *op = argv[i];
        int fd;
        if (!strcmp(op, "payload")) {
            run(op, 2, -1, payload);
        } else if (!strcmp(op, "true")) {
            run(op, 2, -1, "/bin/true");
        } else if (!strcmp(op, "execveat")) {
            if ((fd = copy_into_memfd(op, payload, MFD_CLOEXEC)) >= 0) { run(op, 0, fd, NULL); close(fd); }
        } else if (!strcmp(op, "procfd")) {
            if ((fd = copy_into_memfd(op, payload, 0)) >= 0) { run(op, 1, fd, NULL); close(fd); }
        } else if (!strcmp(op, "chmod")) {
            /* Make it executable first, then run it. */
            if ((fd = copy_into_memfd(op, payload, 0)) >= 0) {
                if (fchmod(fd, 0755) < 0) line("chmod_fchmod", ename(errno));
                else line("chmod_fchmod", "OK");
                run(op, 0, fd, NULL);
                close(fd);
            }
        } else if (!strcmp(op, "mfd_exec")) {
            if ((fd = copy_into_memfd(op, payload, MFD_EXEC | MFD_CLOEXEC)) >= 0) { run(op, 0, fd, NULL); close(fd); }
        } else if (!strcmp(op, "data")) {
            data(op, 0);
        } else if (!strcmp(op, "data_cloexec")) {
            data(op, MFD_CLOEXEC);
        } else if (!strcmp(op, "data_sealing")) {
            data(op, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        } else if (!strcmp(op, "data_noexec_seal")) {
            data(op, MFD_NOEXEC_SEAL);
        }
    }
    return 0;
}
"##;

const PAYLOAD_C: &str = "int main(void) { return 42; }\n";

/// `readonly` plus the probe, and nothing else of the workspace, as an
/// exec grant.
fn profile(f: &Fixture, probe: &Path) -> String {
    let p = f.profile(
        "memfd",
        &format!(
            "version: 1\nname: memfd\nextends: readonly\nfilesystem:\n  exec: {{add: [\"{}\"]}}\n",
            probe.display()
        ),
    );
    p.to_str().unwrap().to_owned()
}

/// The probe and the payload, compiled into the workspace and handed to the
/// agent (the payload readable by everyone, executable by permissions too:
/// only the sandbox may keep it from running).
fn build(f: &Fixture) -> Option<(PathBuf, PathBuf)> {
    let probe = compile(f, "memx", MEMX_C)?;
    let payload = compile(f, "payload", PAYLOAD_C)?;
    for p in [&probe, &payload] {
        chown(p, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    Some((probe, payload))
}

fn results(o: &Output) -> BTreeMap<String, String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[track_caller]
fn expect(r: &BTreeMap<String, String>, name: &str, want: &[&str], o: &Output) {
    let got = r.get(name).map(String::as_str);
    assert!(
        got.is_some_and(|g| want.contains(&g)),
        "{name}: expected one of {want:?}, got {got:?}\n{}",
        show(o)
    );
}

/// The probe outside any sandbox, as the agent's uid: the control that
/// shows this kernel would run the memfd.
fn unconfined(probe: &Path, args: &[&str]) -> Output {
    Command::new(probe)
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .uid(AGENT_UID)
        .gid(AGENT_GID)
        .output()
        .unwrap()
}

const ATTACKS: [&str; 4] = ["execveat", "procfd", "chmod", "mfd_exec"];

#[test]
fn code_in_a_memfd_never_runs() {
    if !can_run("code_in_a_memfd_never_runs") {
        return;
    }
    let f = Fixture::new("memfd-exec");
    let Some((probe, payload)) = build(&f) else {
        return;
    };
    let payload = payload.to_str().unwrap();

    // Control: unconfined, the memfd copy runs (this kernel has no
    // host-wide vm.memfd_noexec in the way).
    let o = unconfined(&probe, &[payload, "execveat", "procfd"]);
    let r = results(&o);
    expect(&r, "execveat", &["EXIT42"], &o);
    expect(&r, "procfd", &["EXIT42"], &o);

    let prof = profile(&f, &probe);
    let mut args = vec![payload, "true", "payload"];
    args.extend(ATTACKS);
    args.extend(["data", "data_cloexec", "data_sealing"]);
    let o = f.run(&prof, &[&[probe.to_str().unwrap()], &args[..]].concat());
    assert_status(&o, 0);
    let r = results(&o);
    // Controls: a granted program runs; the payload by its path doesn't
    // (Landlock: the workspace isn't an exec grant).
    expect(&r, "true", &["EXIT0"], &o);
    expect(&r, "payload", &["EACCES"], &o);
    // The memfd copy doesn't run, by any route: memfds are created without
    // the execute bit and sealed so it can't be added (vm.memfd_noexec),
    // MFD_EXEC is refused; or, where confine can't set the sysctl, there
    // are no memfds at all.
    for attack in ATTACKS {
        expect(&r, attack, &["EACCES", "ENOSYS"], &o);
    }
    if r.get("execveat").map(String::as_str) == Some("EACCES") {
        expect(&r, "chmod_fchmod", &["EPERM"], &o);
        // Memfds for data keep working.
        for op in ["data", "data_cloexec", "data_sealing"] {
            expect(&r, op, &["OK"], &o);
        }
    }
}

/// `explain` says which of the two ways this kernel gets, and `probe`
/// reports the sysctl it rests on.
#[test]
fn explain_and_probe_show_the_memfd_policy() {
    let f = Fixture::new("memfd-explain");
    let o = Command::new(bin())
        .args(["explain", "-p", "readonly", "-w"])
        .arg(&f.ws)
        .output()
        .unwrap();
    assert_status(&o, 0);
    let text = stdout(&o);
    assert!(
        text.lines().any(|l| l.starts_with("memfd ")),
        "no memfd line in explain:\n{text}"
    );
    let o = Command::new(bin())
        .args(["probe", "--json"])
        .output()
        .unwrap();
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &v["memfd"];
    assert!(m.is_object(), "no memfd in probe: {v}");
    let sysctl = std::fs::read_to_string("/proc/sys/vm/memfd_noexec")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    assert_eq!(m["noexec_sysctl"].as_i64(), sysctl, "{m}");
}

/// Without root, confine can't set the sandbox's `vm.memfd_noexec` (the
/// sysctl is root's), nor can it on kernels before 6.3: then there are no
/// memfds inside at all, so none can be executed.
#[test]
fn without_the_sysctl_there_are_no_memfds() {
    let name = "without_the_sysctl_there_are_no_memfds";
    if !can_run(name) || !require_landlock(name, 1) {
        return;
    }
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|s| s.trim() != "0");
    if !userns {
        skip_or_fail(name, "user namespaces are disabled on this host");
        return;
    }
    let f = Fixture::new("memfd-unpriv");
    let Some((probe, payload)) = build(&f) else {
        return;
    };
    let prof = profile(&f, &probe);
    let payload = payload.to_str().unwrap();
    let o = setpriv_as_agent()
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(bin())
        .args(["run", "-p", &prof, "-w"])
        .arg(&f.ws)
        .arg("--")
        .arg(&probe)
        .args([payload, "true", "execveat", "procfd", "data"])
        .env("PATH", PATH)
        .current_dir(&f.ws)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_status(&o, 0);
    let r = results(&o);
    expect(&r, "true", &["EXIT0"], &o);
    for op in ["execveat", "procfd", "data"] {
        expect(&r, op, &["ENOSYS"], &o);
    }
}
