//! The seccomp baseline of DESIGN.md §5, attempted with raw syscalls.
//!
//! A small C program (compiled at test time into the workspace, which the
//! default profile lets the agent execute) makes each call through
//! `syscall(2)` and prints one `name=OK` or `name=ERRNO` line per call. Every
//! call has arguments that make it do nothing even if it were allowed (bad
//! magic, nonexistent paths, invalid fds or commands), so a failing filter
//! changes nothing on the machine.
//!
//! Each refusal is paired with a control: the same program unconfined (as the
//! agent's uid), or an allowed neighbour of the refused call, or the same call
//! under `on_violation: kill`, which proves that the filter, not the kernel's
//! own permission check, is what answered.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use confine::syscalls::{self, Arch, BASELINE_DENY};

/// 128 + SIGSYS: what a SECCOMP_RET_KILL_PROCESS leaves as exit status.
const KILLED_BY_SIGSYS: i32 = 128 + libc::SIGSYS;

/// The probe: `./sc OP...` runs each OP in order; see `one()`.
const PROBE_C: &str = r##"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/falloc.h>
#include <linux/perf_event.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Syscalls numbered from 424 on have the same number on every architecture;
   older C library headers may not name them yet. */
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_io_uring_enter
#define SYS_io_uring_enter 426
#endif
#ifndef SYS_io_uring_register
#define SYS_io_uring_register 427
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_fspick
#define SYS_fspick 433
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif
#ifndef SYS_open_tree_attr
#define SYS_open_tree_attr 467
#endif

#define NOPE "/nonexistent/confine-test"

static const char *ename(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case ENOSPC: return "ENOSPC";
    case ENOSYS: return "ENOSYS";
    case ENOEXEC: return "ENOEXEC";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case ENOPKG: return "ENOPKG";
    case EKEYREJECTED: return "EKEYREJECTED";
    case ENOKEY: return "ENOKEY";
    case ERANGE: return "ERANGE";
    case E2BIG: return "E2BIG";
    case EFBIG: return "EFBIG";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
    }
}

/* One `name=OK` or `name=ERRNO` line, written at once (the process may be
   killed by the next call). */
static void report(const char *name, long r, int e) {
    char line[256];
    int n = r < 0 ? snprintf(line, sizeof line, "%s=%s\n", name, ename(e))
                  : snprintf(line, sizeof line, "%s=OK\n", name);
    if (write(1, line, n) < 0) _exit(3);
}

static void say(const char *s) {
    if (write(1, s, strlen(s)) < 0) _exit(3);
}

#define TRY(name, expr) do { errno = 0; long r_ = (long)(expr); report(name, r_, errno); } while (0)

/* A fork-like call that may have created a child: the child leaves at once. */
static void reap(const char *name, long r, int e) {
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, NULL, __WALL);
    report(name, r, e);
}
#define CHILD(name, expr) do { errno = 0; long r_ = (long)(expr); reap(name, r_, errno); } while (0)

/* Each call has arguments that do nothing even if it were allowed. */
static int denied(const char *op) {
    char buf[64];
    (void)buf;
#define D(nm, ...) if (!strcmp(op, #nm) || !strcmp(op, "deny")) TRY(#nm, syscall(SYS_##nm, __VA_ARGS__));
    D(acct, NOPE)
    D(add_key, NULL, NULL, NULL, 0, 0)
    D(adjtimex, NULL)
    D(bpf, 0x7fff, NULL, 0)
    D(clock_adjtime, CLOCK_REALTIME, NULL)
    D(clock_settime, CLOCK_REALTIME, NULL)
    D(delete_module, "confine_no_such_module", O_NONBLOCK)
    D(finit_module, -1, "", 0)
    D(fsconfig, -1, 0x7fff, NULL, NULL, 0)
    D(fsmount, -1, 0, 0)
    D(fsopen, "confine-no-such-fs", 0)
    D(fspick, -1, NOPE, 0)
    D(init_module, NULL, 0, "")
    D(io_uring_enter, -1, 0, 0, 0, NULL, 0)
    D(io_uring_register, -1, 0, NULL, 0)
    D(io_uring_setup, 0, NULL)
    D(kexec_file_load, -1, -1, 0, NULL, 0xdead0000UL)
    D(kexec_load, 0, 0, NULL, 0xdead0000UL)
    D(keyctl, 0x7fff, 0, 0, 0, 0)
    D(mount, NOPE, NOPE, "none", 0, NULL)
    D(mount_setattr, -1, "", 0, NULL, 0)
    D(move_mount, -1, NOPE, -1, NOPE, 0)
    D(name_to_handle_at, AT_FDCWD, NOPE, NULL, NULL, 0)
    D(open_by_handle_at, -1, NULL, 0)
    D(open_tree, AT_FDCWD, NOPE, 0)
    D(open_tree_attr, AT_FDCWD, NOPE, 0, NULL, 0)
    D(perf_event_open, NULL, 0, -1, -1, 0)
    D(pivot_root, NOPE, NOPE)
    D(process_vm_readv, getpid(), NULL, 0, NULL, 0, 0)
    D(process_vm_writev, getpid(), NULL, 0, NULL, 0, 0)
    D(ptrace, PTRACE_PEEKDATA, 0x7ffffff0, NULL, NULL)
    D(quotactl, 0x7fffff, NULL, 0, NULL)
    D(quotactl_fd, -1, 0, 0, NULL)
    D(reboot, 0, 0, 0, NULL)
    D(request_key, NULL, NULL, NULL, 0)
    D(setns, -1, 0)
    D(settimeofday, (void *)1, NULL)
    D(swapoff, NOPE)
    D(swapon, NOPE, 0)
    D(syslog, 10, NULL, 0)
    D(umount2, NOPE, 0)
    D(unshare, 0)
    D(userfaultfd, 0x7fffffff)
#undef D
    return 0;
}

static void one(const char *op) {
    char c = 'Q';
    if (!strcmp(op, "nrs")) {
        /* The host headers' numbers, to compare with confine's own table. */
        char line[64];
#define N(nm) { int n = snprintf(line, sizeof line, "nr_%s=%ld\n", #nm, (long)SYS_##nm); if (write(1, line, n) < 0) _exit(3); }
        N(acct) N(add_key) N(adjtimex) N(bpf) N(clock_adjtime) N(clock_settime) N(delete_module)
        N(finit_module) N(fsconfig) N(fsmount) N(fsopen) N(fspick) N(init_module) N(io_uring_enter)
        N(io_uring_register) N(io_uring_setup) N(kexec_file_load) N(kexec_load) N(keyctl) N(mount)
        N(mount_setattr) N(move_mount) N(name_to_handle_at) N(open_by_handle_at) N(open_tree)
        N(open_tree_attr) N(perf_event_open) N(pivot_root) N(process_vm_readv) N(process_vm_writev)
        N(ptrace) N(quotactl) N(quotactl_fd) N(reboot) N(request_key) N(setns) N(settimeofday)
        N(swapoff) N(swapon) N(syslog) N(umount2) N(unshare) N(userfaultfd)
#undef N
    } else if (!strcmp(op, "getpid")) {
        TRY("getpid", syscall(SYS_getpid));
    } else if (!strcmp(op, "uname")) {
        struct utsname u;
        TRY("uname", syscall(SYS_uname, &u));
    } else if (!strncmp(op, "read:", 5)) {
        /* openat + read of a file, printing its first line's length */
        char buf[256];
        long fd = syscall(SYS_openat, AT_FDCWD, op + 5, O_RDONLY | O_CLOEXEC);
        report("openat", fd, errno);
        if (fd >= 0) {
            long n = syscall(SYS_read, fd, buf, sizeof buf);
            report("read", n, errno);
            close((int)fd);
        }
    } else if (!strcmp(op, "clone3")) {
        /* struct clone_args v0: flags, pidfd, child_tid, parent_tid,
           exit_signal, stack, stack_size, tls */
        unsigned long long args[8] = {0, 0, 0, 0, SIGCHLD, 0, 0, 0};
        CHILD("clone3", syscall(SYS_clone3, args, sizeof args));
    } else if (!strcmp(op, "nr1000")) {
        TRY("nr1000", syscall(1000));
    } else if (!strcmp(op, "int80")) {
#if defined(__x86_64__)
        long r;
        /* getpid is 20 in the i386 table */
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
        report("int80", r < 0 ? -1 : r, r < 0 ? (int)-r : 0);
#else
        say("int80=SKIP\n");
#endif
    } else if (!strcmp(op, "x32")) {
#if defined(__x86_64__)
        TRY("x32", syscall(SYS_getpid | 0x40000000L));
#else
        say("x32=SKIP\n");
#endif
    } else if (!strcmp(op, "tiocsti")) {
        TRY("tiocsti", syscall(SYS_ioctl, 0, (unsigned long)TIOCSTI, &c));
    } else if (!strcmp(op, "tiocsti_hi")) {
        TRY("tiocsti_hi", syscall(SYS_ioctl, 0, (unsigned long)TIOCSTI | (1UL << 32), &c));
    } else if (!strcmp(op, "tioclinux")) {
        char sub = 6; /* TIOCL_GETSHIFTSTATE: a query */
        TRY("tioclinux", syscall(SYS_ioctl, 0, (unsigned long)TIOCLINUX, &sub));
    } else if (!strcmp(op, "tcgets")) {
        struct termios t;
        TRY("tcgets", syscall(SYS_ioctl, 0, (unsigned long)TCGETS, &t));
    } else if (!strcmp(op, "winsz")) {
        struct winsize w;
        TRY("winsz", syscall(SYS_ioctl, 0, (unsigned long)TIOCGWINSZ, &w));
    } else if (!strcmp(op, "clone_newuser")) {
        CHILD("clone_newuser", syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0));
    } else if (!strcmp(op, "fork")) {
        CHILD("fork", syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0));
    } else if (!strcmp(op, "libc_fork")) {
        CHILD("libc_fork", fork());
    } else if (!strcmp(op, "unshare_newns")) {
        TRY("unshare_newns", syscall(SYS_unshare, CLONE_NEWNS));
    } else if (!strcmp(op, "unshare_newuser")) {
        TRY("unshare_newuser", syscall(SYS_unshare, CLONE_NEWUSER));
    } else if (!strcmp(op, "socket_packet")) {
        TRY("socket_packet", syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0));
    } else if (!strcmp(op, "socket_vsock")) {
        TRY("socket_vsock", syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0));
    } else if (!strcmp(op, "socket_unix")) {
        TRY("socket_unix", syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0));
    } else if (!strcmp(op, "socket_inet")) {
        TRY("socket_inet", syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
    } else if (!strcmp(op, "socket_inet6")) {
        TRY("socket_inet6", syscall(SYS_socket, AF_INET6, SOCK_DGRAM, 0));
    } else if (!strcmp(op, "socket_netlink")) {
        TRY("socket_netlink", syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0));
    } else if (!strcmp(op, "socket_alg")) {
        TRY("socket_alg", syscall(SYS_socket, 38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    } else if (!strcmp(op, "socket_tipc")) {
        TRY("socket_tipc", syscall(SYS_socket, 30 /* AF_TIPC */, SOCK_RDM, 0));
    } else if (!strcmp(op, "socket_kcm")) {
        TRY("socket_kcm", syscall(SYS_socket, 41 /* AF_KCM */, SOCK_DGRAM, 0));
    } else if (!strcmp(op, "socket_xdp")) {
        TRY("socket_xdp", syscall(SYS_socket, 44 /* AF_XDP */, SOCK_RAW, 0));
    } else if (!strcmp(op, "socketpair_unix")) {
        int sv[2];
        TRY("socketpair_unix", syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv));
    } else if (!strcmp(op, "socketpair_tipc")) {
        int sv[2];
        TRY("socketpair_tipc", syscall(SYS_socketpair, 30 /* AF_TIPC */, SOCK_STREAM, 0, sv));
    } else if (!strcmp(op, "ptrace_child")) {
        /* Attach to a child of our own, look at it, let it go. */
        pid_t pid = fork();
        if (pid == 0) { for (;;) pause(); }
        errno = 0;
        long r = syscall(SYS_ptrace, PTRACE_ATTACH, pid, 0, 0);
        int e = errno;
        if (r == 0) {
            waitpid(pid, NULL, __WALL);
            long word = 0;
            if (syscall(SYS_ptrace, PTRACE_PEEKUSER, pid, 0, &word) < 0) { r = -1; e = errno; }
            syscall(SYS_ptrace, PTRACE_DETACH, pid, 0, 0);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        report("ptrace_child", r, e);
    } else if (!strcmp(op, "ptrace_init")) {
        /* PTRACE_SEIZE doesn't stop PID 1 even if it were let through. */
        TRY("ptrace_init", syscall(SYS_ptrace, PTRACE_SEIZE, 1, 0, 0));
    } else if (!strcmp(op, "vmread_self") || !strcmp(op, "vmread_init")) {
        static char src[8] = "secret", dst[8];
        struct iovec local = {dst, sizeof dst}, remote = {src, sizeof src};
        pid_t pid = !strcmp(op, "vmread_self") ? getpid() : 1;
        TRY(op, syscall(SYS_process_vm_readv, pid, &local, 1, &remote, 1, 0));
    } else if (!strcmp(op, "perf_self")) {
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.type = PERF_TYPE_SOFTWARE;
        a.size = sizeof a;
        a.config = PERF_COUNT_SW_TASK_CLOCK;
        a.exclude_kernel = 1;
        a.exclude_hv = 1;
        TRY("perf_self", syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    } else if (!strcmp(op, "fsize1m")) {
        struct rlimit rl = {1 << 20, 1 << 20};
        TRY("fsize1m", setrlimit(RLIMIT_FSIZE, &rl));
    } else if (!strncmp(op, "falloc_", 7)) {
        /* falloc_MODE:PATH on a file of our own, 8 MiB past a 1 MiB limit. */
        const char *colon = strchr(op, ':');
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(colon - op), op);
        int fd = open(colon + 1, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        int mode = 0;
        long off = 0, len = 8 << 20;
        if (!strcmp(name, "falloc_keep")) mode = FALLOC_FL_KEEP_SIZE;
        else if (!strcmp(name, "falloc_zero_keep")) mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
        else if (!strcmp(name, "falloc_punch")) { mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE; len = 4096; }
        else if (!strcmp(name, "falloc_small")) len = 512 << 10;
        TRY(name, syscall(SYS_fallocate, fd, mode, off, len));
        struct stat st;
        fstat(fd, &st);
        char line[64];
        int n = snprintf(line, sizeof line, "%s_kib=%ld\n", name, (long)st.st_blocks / 2);
        if (write(1, line, n) < 0) _exit(3);
        close(fd);
    } else if (!strcmp(op, "personality_set")) {
        TRY("personality_set", syscall(SYS_personality, 0x0040000UL));
    } else if (!strcmp(op, "personality_query")) {
        TRY("personality_query", syscall(SYS_personality, 0xffffffffUL));
    } else if (!strcmp(op, "getcwd")) {
        char buf[4096];
        TRY("getcwd", syscall(SYS_getcwd, buf, sizeof buf));
    } else if (!strcmp(op, "done")) {
        say("done\n");
    } else {
        denied(op);
    }
}

int main(int argc, char **argv) {
    /* Past RLIMIT_FSIZE: EFBIG, not death by SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    for (int i = 1; i < argc; i++) one(argv[i]);
    return 0;
}
"##;

/// [`compile`]d, then handed to the agent, or None when there is no C
/// compiler here.
fn compile_for_agent(f: &Fixture, name: &str, src: &str) -> Option<PathBuf> {
    let bin = compile(f, name, src)?;
    chown(&bin, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    Some(bin)
}

/// A profile extending `default` whose violations kill the process.
fn kill_profile(f: &Fixture) -> String {
    let p = f.profile(
        "kill",
        "version: 1\nname: kill\nextends: default\nsyscalls: {on_violation: kill}\n",
    );
    p.to_str().unwrap().to_owned()
}

/// The `name=value` lines of the probe's output (a pty adds `\r`).
fn results(out: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[track_caller]
fn expect(r: &BTreeMap<String, String>, name: &str, want: &str, o: &Output) {
    assert_eq!(
        r.get(name).map(String::as_str),
        Some(want),
        "{name}: expected {want}\n{}",
        show(o)
    );
}

/// Under `kill_profile`, the probe's `op` must kill it with SIGSYS, right
/// after a `getpid` that went through (the control: the probe did run).
#[track_caller]
fn assert_kills(f: &Fixture, kill_profile: &str, probe: &str, op: &str) {
    let o = f.run(kill_profile, &[probe, "getpid", op, "done"]);
    assert_eq!(
        o.status.code(),
        Some(KILLED_BY_SIGSYS),
        "{op} must kill the process\n{}",
        show(&o)
    );
    assert_eq!(stdout(&o), "getpid=OK\n", "{op}\n{}", show(&o));
}

/// Runs the probe outside any sandbox as the agent's uid and gid (no groups),
/// the control for "the kernel itself would have let this through".
fn unconfined_as_agent(f: &Fixture, probe: &Path, ops: &[&str]) -> Output {
    Command::new(probe)
        .args(ops)
        .current_dir(&f.ws)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .uid(AGENT_UID)
        .gid(AGENT_GID)
        .output()
        .unwrap()
}

fn probe_path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn probe_numbers_match_confines_table() {
    if !can_run("probe_numbers_match_confines_table") {
        return;
    }
    let f = Fixture::new("sc-nrs");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    // Run unconfined: it only prints the C library's SYS_* numbers.
    let o = Command::new(&probe).arg("nrs").output().unwrap();
    assert_status(&o, 0);
    let r = results(&o.stdout);
    for name in BASELINE_DENY {
        let Some(nr) = r.get(&format!("nr_{name}")) else {
            panic!("the probe has no harmless call for {name}; add one to PROBE_C");
        };
        let nr: u32 = nr.parse().unwrap();
        assert_eq!(
            syscalls::number(Arch::native(), name),
            Some(nr),
            "{name}: confine's table disagrees with the C library's SYS_{name}"
        );
    }
}

#[test]
fn denylisted_syscalls_fail_with_eperm() {
    if !can_run("denylisted_syscalls_fail_with_eperm") {
        return;
    }
    let f = Fixture::new("sc-deny");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let data = f.file(&f.ws.join("data.txt"), "workspace data\n");
    let read = format!("read:{}", data.display());

    let o = f.run(
        "default",
        &[probe_path(&probe), "deny", "getpid", "uname", &read, "done"],
    );
    assert_status(&o, 0);
    let r = results(&o.stdout);
    for name in BASELINE_DENY {
        expect(&r, name, "EPERM", &o);
    }
    // Controls: ordinary syscalls in the same process still work.
    expect(&r, "getpid", "OK", &o);
    expect(&r, "uname", "OK", &o);
    expect(&r, "openat", "OK", &o);
    expect(&r, "read", "OK", &o);
    assert!(stdout(&o).ends_with("done\n"), "{}", show(&o));

    // Control: the same calls, unconfined as the same uid, reach the kernel,
    // which answers these with something other than EPERM. So the EPERMs
    // above are the filter's, not the kernel's permission checks.
    let u = unconfined_as_agent(&f, &probe, &["deny"]);
    assert_status(&u, 0);
    let ur = results(&u.stdout);
    for (name, want) in [
        ("process_vm_readv", "OK"),
        ("process_vm_writev", "OK"),
        ("unshare", "OK"),
        ("setns", "EBADF"),
        ("ptrace", "ESRCH"),
        ("settimeofday", "EFAULT"),
        ("clock_settime", "EFAULT"),
        ("adjtimex", "EFAULT"),
    ] {
        expect(&ur, name, want, &u);
    }
}

#[test]
fn ptrace_kills_with_sigsys_under_on_violation_kill() {
    if !can_run("ptrace_kills_with_sigsys_under_on_violation_kill") {
        return;
    }
    let f = Fixture::new("sc-kill-ptrace");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let kill = kill_profile(&f);
    let o = f.run(&kill, &[probe_path(&probe), "getpid", "ptrace", "done"]);
    assert_status(&o, KILLED_BY_SIGSYS);
    assert_eq!(stdout(&o), "getpid=OK\n", "{}", show(&o));
    // Control: the same program without the ptrace call runs to the end.
    let o = f.run(&kill, &[probe_path(&probe), "getpid", "done"]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "getpid=OK\ndone\n", "{}", show(&o));
}

#[test]
fn every_denylisted_syscall_kills_under_on_violation_kill() {
    if !can_run("every_denylisted_syscall_kills_under_on_violation_kill") {
        return;
    }
    let f = Fixture::new("sc-kill-all");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let kill = kill_profile(&f);
    for name in BASELINE_DENY {
        assert_kills(&f, &kill, probe_path(&probe), name);
    }
}

#[test]
fn clone3_and_unknown_syscalls_get_enosys() {
    if !can_run("clone3_and_unknown_syscalls_get_enosys") {
        return;
    }
    let f = Fixture::new("sc-enosys");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    // Control: on this kernel clone3 works, outside the sandbox.
    let u = unconfined_as_agent(&f, &probe, &["clone3", "done"]);
    assert_status(&u, 0);
    expect(&results(&u.stdout), "clone3", "OK", &u);

    let o = f.run("default", &[probe_path(&probe), "clone3", "nr1000", "done"]);
    assert_status(&o, 0);
    let r = results(&o.stdout);
    expect(&r, "clone3", "ENOSYS", &o);
    expect(&r, "nr1000", "ENOSYS", &o);

    // ENOSYS is not a violation: even `on_violation: kill` lets the process
    // live, so libc can take its fallback.
    let kill = kill_profile(&f);
    let o = f.run(&kill, &[probe_path(&probe), "clone3", "nr1000", "done"]);
    assert_status(&o, 0);
    let r = results(&o.stdout);
    expect(&r, "clone3", "ENOSYS", &o);
    expect(&r, "nr1000", "ENOSYS", &o);
    assert!(stdout(&o).ends_with("done\n"), "{}", show(&o));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn i386_and_x32_syscalls_kill_the_process() {
    if !can_run("i386_and_x32_syscalls_kill_the_process") {
        return;
    }
    let f = Fixture::new("sc-arch");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let p = probe_path(&probe);

    // Control, unconfined: x32 numbers get ENOSYS (or work, on an x32
    // kernel) and the process lives on.
    let u = unconfined_as_agent(&f, &probe, &["x32", "done"]);
    assert_status(&u, 0);
    assert!(stdout(&u).ends_with("done\n"), "{}", show(&u));
    // Control, inside: the program without the foreign calls exits 0, under
    // the errno profile and the kill profile alike.
    let o = f.run("default", &[p, "getpid", "done"]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "getpid=OK\ndone\n", "{}", show(&o));

    // x32: killed whatever on_violation says.
    let o = f.run("default", &[p, "getpid", "x32", "done"]);
    assert_status(&o, KILLED_BY_SIGSYS);
    assert_eq!(stdout(&o), "getpid=OK\n", "{}", show(&o));

    // i386 through int 0x80: only meaningful where the kernel runs 32-bit
    // syscalls at all (IA32 emulation); there, unconfined it works.
    let u = unconfined_as_agent(&f, &probe, &["int80", "done"]);
    if u.status.code() != Some(0) {
        eprintln!(
            "skipped the int 0x80 half: this kernel has no IA32 emulation ({})",
            show(&u)
        );
        return;
    }
    expect(&results(&u.stdout), "int80", "OK", &u);
    let o = f.run("default", &[p, "getpid", "int80", "done"]);
    assert_status(&o, KILLED_BY_SIGSYS);
    assert_eq!(stdout(&o), "getpid=OK\n", "{}", show(&o));
}

/// Runs `cmd` on a fresh pseudo-terminal (its stdin, stdout and stderr, and
/// its controlling terminal). After `cmd` exits, whatever is left in the
/// terminal's input queue (what an injected keystroke would leave for the
/// next program to read) is read back and printed as `leaked=HEX` (or
/// `leaked=none`), with `rc=STATUS`.
const ON_A_PTY_PY: &str = r#"
import os, pty, select, signal, subprocess, sys, termios, tty
signal.alarm(60)
pid, fd = pty.fork()
if pid == 0:
    rc = subprocess.call(sys.argv[1:])
    # Non-canonical mode makes a pending partial line readable; TCSANOW,
    # because the default TCSAFLUSH would discard it.
    tty.setraw(0, termios.TCSANOW)
    leaked = b""
    while select.select([0], [], [], 0.3)[0]:
        leaked += os.read(0, 1024)
    os.write(1, b"\nrc=%d\nleaked=%s\n" % (rc, leaked.hex().encode() or b"none"))
    os._exit(0)
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
"#;

fn on_a_pty(cmd: &[&str]) -> Output {
    Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(ON_A_PTY_PY)
        .args(cmd)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn tiocsti_and_tioclinux_are_refused_on_a_real_terminal() {
    if !can_run("tiocsti_and_tioclinux_are_refused_on_a_real_terminal") {
        return;
    }
    if !have(
        "tiocsti_and_tioclinux_are_refused_on_a_real_terminal",
        "/usr/bin/python3",
    ) {
        return;
    }
    let f = Fixture::new("sc-tty");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let p = probe_path(&probe);
    let ops = [
        "tiocsti",
        "tiocsti_hi",
        "tioclinux",
        "tcgets",
        "winsz",
        "done",
    ];

    // Control: unconfined (as root, which may always push input), the probe
    // does inject its 'Q' twice, and the detector reads it back.
    let mut cmd = vec![p];
    cmd.extend(ops);
    let c = on_a_pty(&cmd);
    assert_status(&c, 0);
    // The terminal echoes each injected 'Q' wherever the output stands.
    assert!(
        stdout(&c).contains('Q'),
        "no echo of the control's injection: {}",
        show(&c)
    );
    let cr = results(stdout(&c).replace('Q', "").as_bytes());
    expect(&cr, "tiocsti", "OK", &c);
    expect(&cr, "tiocsti_hi", "OK", &c);
    expect(&cr, "leaked", "5151", &c);

    // Inside: refused, with the high bits set too, and nothing arrives.
    let ws = f.ws.to_str().unwrap();
    let mut cmd = vec![bin(), "run", "-p", "default", "-w", ws, "--", p];
    cmd.extend(ops);
    let o = on_a_pty(&cmd);
    assert_status(&o, 0);
    let r = results(&o.stdout);
    expect(&r, "rc", "0", &o);
    expect(&r, "tiocsti", "EPERM", &o);
    expect(&r, "tiocsti_hi", "EPERM", &o);
    expect(&r, "tioclinux", "EPERM", &o);
    // Controls: other ioctls on the same terminal work.
    expect(&r, "tcgets", "OK", &o);
    expect(&r, "winsz", "OK", &o);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.trim_end_matches('\r') == "done"),
        "the probe didn't finish\n{}",
        show(&o)
    );
    expect(&r, "leaked", "none", &o);
    assert!(
        !stdout(&o).contains('Q'),
        "the injected character was echoed by the terminal: {}",
        show(&o)
    );
}

#[test]
fn argument_rules_refuse_with_eperm() {
    if !can_run("argument_rules_refuse_with_eperm") {
        return;
    }
    let f = Fixture::new("sc-args");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let o = f.run(
        "default",
        &[
            probe_path(&probe),
            "clone_newuser",
            "unshare_newns",
            "unshare_newuser",
            "fork",
            "libc_fork",
            "socket_packet",
            "socket_vsock",
            "socket_unix",
            "personality_set",
            "personality_query",
            "done",
        ],
    );
    assert_status(&o, 0);
    let r = results(&o.stdout);
    for name in [
        "clone_newuser",
        "unshare_newns",
        "unshare_newuser",
        "socket_packet",
        "socket_vsock",
        "personality_set",
    ] {
        expect(&r, name, "EPERM", &o);
    }
    // Controls: the same syscalls with allowed arguments.
    for name in ["fork", "libc_fork", "socket_unix", "personality_query"] {
        expect(&r, name, "OK", &o);
    }
}

#[test]
fn argument_rules_kill_under_on_violation_kill() {
    if !can_run("argument_rules_kill_under_on_violation_kill") {
        return;
    }
    let f = Fixture::new("sc-args-kill");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let kill = kill_profile(&f);
    let p = probe_path(&probe);
    // Controls first: allowed arguments of the same syscalls, and ioctls that
    // aren't keystroke injection (stdin is /dev/null, so TCGETS fails with
    // ENOTTY, from the kernel).
    let o = f.run(
        &kill,
        &[
            p,
            "fork",
            "socket_unix",
            "personality_query",
            "tcgets",
            "done",
        ],
    );
    assert_status(&o, 0);
    let r = results(&o.stdout);
    expect(&r, "fork", "OK", &o);
    expect(&r, "socket_unix", "OK", &o);
    expect(&r, "personality_query", "OK", &o);
    expect(&r, "tcgets", "ENOTTY", &o);
    assert!(stdout(&o).ends_with("done\n"), "{}", show(&o));
    // The filter matches these by argument, before the kernel looks at the
    // fd or the caller's privileges: each kills.
    for op in [
        "clone_newuser",
        "unshare_newns",
        "socket_packet",
        "socket_vsock",
        "personality_set",
        "tiocsti",
        "tiocsti_hi",
        "tioclinux",
    ] {
        assert_kills(&f, &kill, p, op);
    }
}

#[test]
fn profile_deny_takes_getcwd_away() {
    if !can_run("profile_deny_takes_getcwd_away") {
        return;
    }
    let f = Fixture::new("sc-getcwd");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let p = probe_path(&probe);
    let prof = f.profile(
        "nocwd",
        "version: 1\nname: nocwd\nextends: default\nsyscalls: {deny: [getcwd]}\n",
    );
    let o = f.run(prof.to_str().unwrap(), &[p, "getcwd", "getpid", "done"]);
    assert_status(&o, 0);
    let r = results(&o.stdout);
    expect(&r, "getcwd", "EPERM", &o);
    expect(&r, "getpid", "OK", &o);
    // Control: the default profile allows it.
    let o = f.run("default", &[p, "getcwd", "done"]);
    assert_status(&o, 0);
    expect(&results(&o.stdout), "getcwd", "OK", &o);
}

#[test]
fn python_threads_work_without_clone3() {
    if !can_run("python_threads_work_without_clone3") {
        return;
    }
    if !have("python_threads_work_without_clone3", "/usr/bin/python3") {
        return;
    }
    let f = Fixture::new("sc-pythreads");
    let o = f.run(
        "default",
        &[
            "/usr/bin/python3",
            "-c",
            "import threading\n\
             ids = set()\n\
             def work():\n    ids.add(threading.get_native_id())\n\
             ts = [threading.Thread(target=work) for _ in range(4)]\n\
             [t.start() for t in ts]\n[t.join() for t in ts]\n\
             print('threads', len(ts), 'main' if threading.get_native_id() not in ids else 'shared')\n",
        ],
    );
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "threads 4 main\n", "{}", show(&o));
}

/// Finding 8: only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK by default,
/// for `socket` and `socketpair`; everything else is EPERM from the filter.
/// A profile adds families by name.
#[test]
fn only_the_default_socket_families_open() {
    if !can_run("only_the_default_socket_families_open") {
        return;
    }
    let f = Fixture::new("sc-families");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let p = probe_path(&probe);
    let refused = [
        "socket_alg",
        "socket_tipc",
        "socket_kcm",
        "socket_xdp",
        "socket_packet",
        "socket_vsock",
        "socketpair_tipc",
    ];
    let allowed = [
        "socket_unix",
        "socket_inet",
        "socket_inet6",
        "socket_netlink",
        "socketpair_unix",
    ];
    let ops: Vec<&str> = refused.iter().chain(&allowed).copied().collect();
    let o = f.run("default", &[&[p][..], &ops, &["done"]].concat());
    assert_status(&o, 0);
    let r = results(&o.stdout);
    for name in refused {
        expect(&r, name, "EPERM", &o);
    }
    for name in allowed {
        expect(&r, name, "OK", &o);
    }
    // The filter answered, not the kernel: under on_violation: kill each of
    // them kills (AF_PACKET and AF_XDP would be EPERM from the kernel too,
    // for want of CAP_NET_RAW).
    let kill = kill_profile(&f);
    for op in refused {
        assert_kills(&f, &kill, p, op);
    }

    // A family the profile adds opens, if the kernel has it (unconfined,
    // as the agent's uid); the others stay refused.
    let o = unconfined_as_agent(
        &f,
        &probe,
        &["socket_vsock", "socket_alg", "socket_tipc", "socket_kcm"],
    );
    let host = results(&o.stdout);
    let Some((op, family)) = [
        ("socket_vsock", "AF_VSOCK"),
        ("socket_alg", "AF_ALG"),
        ("socket_kcm", "AF_KCM"),
        ("socket_tipc", "AF_TIPC"),
    ]
    .into_iter()
    .find(|(op, _)| host.get(*op).map(String::as_str) == Some("OK")) else {
        skip_or_fail(
            "only_the_default_socket_families_open",
            &format!("none of AF_VSOCK, AF_ALG, AF_KCM, AF_TIPC opens here unconfined: {host:?}"),
        );
        return;
    };
    let prof = f.profile(
        "family",
        &format!(
            "version: 1\nname: family\nextends: default\nnetwork:\n  socket_families: {{add: [{family}]}}\n"
        ),
    );
    let o = f.run(
        prof.to_str().unwrap(),
        &[p, op, "socket_xdp", "socket_unix", "done"],
    );
    assert_status(&o, 0);
    let r = results(&o.stdout);
    expect(&r, op, "OK", &o);
    expect(&r, "socket_xdp", "EPERM", &o);
    expect(&r, "socket_unix", "OK", &o);
}

/// A profile that lets the agent debug and profile its own processes.
fn debug_profile(f: &Fixture) -> String {
    let p = f.profile(
        "debug",
        "version: 1\nname: debug\nextends: default\nsyscalls:\n  allow: [ptrace, process_vm_readv, process_vm_writev, perf_event_open]\n",
    );
    p.to_str().unwrap().to_owned()
}

/// Finding 12: `syscalls.allow` re-enables ptrace and its kin, so
/// debuggers work inside; without it they are refused.
#[test]
fn allowed_ptrace_reaches_the_agents_own_children_only() {
    if !can_run("allowed_ptrace_reaches_the_agents_own_children_only") {
        return;
    }
    let f = Fixture::new("sc-ptrace");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let p = probe_path(&probe);
    let ops = [
        p,
        "ptrace_child",
        "vmread_self",
        "perf_self",
        "ptrace_init",
        "vmread_init",
        "done",
    ];
    // Without the allow: refused by the filter.
    let o = f.run("default", &ops);
    assert_status(&o, 0);
    let r = results(&o.stdout);
    for name in [
        "ptrace_child",
        "vmread_self",
        "perf_self",
        "ptrace_init",
        "vmread_init",
    ] {
        expect(&r, name, "EPERM", &o);
    }
    // With it: the agent's own processes, yes.
    let debug = debug_profile(&f);
    let o = f.run(&debug, &ops);
    assert_status(&o, 0);
    let r = results(&o.stdout);
    expect(&r, "ptrace_child", "OK", &o);
    expect(&r, "vmread_self", "OK", &o);
    // perf_event_open is up to the kernel's perf_event_paranoid then.
    let host = unconfined_as_agent(&f, &probe, &["perf_self"]);
    let host = results(&host.stdout);
    expect(
        &r,
        "perf_self",
        host.get("perf_self").map_or("?", String::as_str),
        &o,
    );
    // The init, PID 1, runs as the agent's uid but is not dumpable: neither
    // ptrace nor process_vm_readv reaches it.
    expect(&r, "ptrace_init", "EPERM", &o);
    expect(&r, "vmread_init", "EPERM", &o);
}

#[test]
fn strace_works_when_the_profile_allows_ptrace() {
    if !can_run("strace_works_when_the_profile_allows_ptrace")
        || !have(
            "strace_works_when_the_profile_allows_ptrace",
            "/usr/bin/strace",
        )
    {
        return;
    }
    let f = Fixture::new("sc-strace");
    let cmd = ["/usr/bin/strace", "-f", "-e", "trace=execve", "/bin/true"];
    let o = f.run(&debug_profile(&f), &cmd);
    assert_status(&o, 0);
    assert!(stderr(&o).contains("execve(\"/bin/true\""), "{}", show(&o));
    // Control: the default profile refuses it.
    let o = f.run("default", &cmd);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        show(&o)
    );
}

/// Finding 11: with `limits.file_size`, fallocate may not allocate past it
/// with FALLOC_FL_KEEP_SIZE (which RLIMIT_FSIZE doesn't count); the modes
/// that RLIMIT_FSIZE checks, and punching holes, still work.
#[test]
fn fallocate_keep_size_cant_pass_file_size() {
    if !can_run("fallocate_keep_size_cant_pass_file_size") {
        return;
    }
    let f = Fixture::new("sc-falloc");
    let Some(probe) = compile_for_agent(&f, "sc", PROBE_C) else {
        return;
    };
    let p = probe_path(&probe);
    let file = |n: &str| format!("{}:{}", n, f.ws.join(n).display());
    let ops = [
        file("falloc_keep"),
        file("falloc_zero_keep"),
        file("falloc_small"),
        file("falloc_big"),
        file("falloc_punch"),
    ];
    // Control: unconfined, under a 1 MiB RLIMIT_FSIZE, KEEP_SIZE allocates
    // 8 MiB while the plain allocation past the limit fails.
    let mut args = vec!["fsize1m"];
    args.extend(ops.iter().map(String::as_str));
    let o = unconfined_as_agent(&f, &probe, &args);
    let r = results(&o.stdout);
    expect(&r, "fsize1m", "OK", &o);
    expect(&r, "falloc_keep", "OK", &o);
    expect(&r, "falloc_keep_kib", "8192", &o);
    expect(&r, "falloc_big", "EFBIG", &o);
    for n in [
        "falloc_keep",
        "falloc_zero_keep",
        "falloc_small",
        "falloc_big",
        "falloc_punch",
    ] {
        let _ = fs::remove_file(f.ws.join(n));
    }

    let prof = f.profile(
        "fsize",
        "version: 1\nname: fsize\nextends: default\nlimits:\n  file_size: 1M\n",
    );
    let mut args = vec![p];
    args.extend(ops.iter().map(String::as_str));
    args.push("done");
    let o = f.run(prof.to_str().unwrap(), &args);
    assert_status(&o, 0);
    let r = results(&o.stdout);
    expect(&r, "falloc_keep", "EOPNOTSUPP", &o);
    expect(&r, "falloc_keep_kib", "0", &o);
    expect(&r, "falloc_zero_keep", "EOPNOTSUPP", &o);
    expect(&r, "falloc_small", "OK", &o);
    expect(&r, "falloc_big", "EFBIG", &o);
    expect(&r, "falloc_punch", "OK", &o);
    // Without file_size there is nothing to get past: KEEP_SIZE works.
    let o = f.run("default", &[p, &file("falloc_keep"), "done"]);
    let r = results(&o.stdout);
    expect(&r, "falloc_keep", "OK", &o);
}
