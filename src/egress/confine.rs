//! The proxy's own confinement (DESIGN.md §3: it parses what the agent
//! sends, so it must not hold the supervisor's privileges), with the same
//! modules that confine the agent. [`drop_privileges`] runs in the forked
//! child before it executes the proxy's own program (`confine-egress`),
//! [`lock_down`] in that program before it serves.
//!
//! Order, each step needing what a later one takes away. Before execve:
//! 1. PR_SET_PDEATHSIG(SIGKILL): the proxy dies with the supervisor.
//! 2. As root: bounding set cleared, securebits locked, then the agent's
//!    uid and gid with no supplementary groups, then every capability set
//!    cleared and verified (execve of a plain program gives none back).
//!    Unprivileged: the capability sets are cleared (the bounding set
//!    can't be, and execve is killed below anyway).
//! 3. PR_SET_NO_NEW_PRIVS: nothing executed gains a privilege.
//!
//! In `confine-egress`, before it reads a byte from the sandbox:
//! 4. PDEATHSIG again (the credential change reset it) and a check that
//!    the parent is still the supervisor.
//! 5. rlimits: no core dumps, no file writes, a bounded number of fds.
//! 6. Not dumpable (execve made it dumpable again), then Landlock handling
//!    every filesystem right the kernel knows, TCP bind, and both scopes,
//!    granting nothing.
//! 7. Seccomp, last: filter A allows [`ALLOW`] (what tokio's current-thread
//!    runtime and the proxy call, found with strace; anything else fails
//!    with ENOSYS), filter B kills the process on [`KILL`] (running
//!    programs, creating processes, signalling others, the baseline
//!    denylist) and on sockets of any family but IPv4 and IPv6.

use crate::sandbox::caps::{self, Caps};
use crate::sandbox::landlock::{self, NetRules, Spec};
use crate::sandbox::seccomp::{self, OnViolation, Rules};
use crate::sandbox::{limits, process, user};
use crate::syscalls::{self, Arch};

/// Descriptors the proxy may hold: per relayed connection two sockets and
/// two pipes (six), for [`super::Limits`]'s 256 connections, plus the
/// listeners, DNS and slack.
pub const OPEN_FILES: u64 = 2048;

/// What the proxy process calls after confinement. Names missing on an
/// architecture are skipped (aarch64 has no `epoll_wait`).
pub const ALLOW: &[&str] = &[
    // Memory (glibc's malloc: brk, and mmap for large blocks; no
    // mprotect: one thread, one arena, and no memory made executable).
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    // The event loop (epoll_pwait on aarch64, which has no epoll_wait).
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "eventfd2",
    "futex",
    "clock_gettime",
    "getrandom",
    // Descriptors.
    "read",
    "write",
    // Vectored writes: hyper's heads and bodies, on the secret routes.
    "writev",
    "readv",
    "close",
    // Once: /dev/null onto stderr when the proxy starts serving.
    "dup3",
    "fcntl",
    "ioctl",
    "pipe2",
    "splice",
    // Sockets: accepting on the sandbox's, dialling out, DNS over UDP.
    "socket",
    "connect",
    "accept4",
    "bind",
    "shutdown",
    "getsockname",
    "setsockopt",
    "getsockopt",
    "sendto",
    "recvfrom",
    // The listeners arrive from the init after confinement (SCM_RIGHTS).
    "recvmsg",
    // SIGPIPE ignored, and a return from any signal.
    "rt_sigaction",
    "rt_sigreturn",
    // Filter B is installed through filter A (a filter only ever adds
    // restrictions).
    "seccomp",
    // The end.
    "exit",
    "exit_group",
];

/// Killed at once: an exploited proxy's first moves.
pub const KILL: &[&str] = &[
    "execve",
    "execveat",
    "fork",
    "vfork",
    "clone",
    "kill",
    "tkill",
    "tgkill",
    "pidfd_open",
    "pidfd_send_signal",
    "pidfd_getfd",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "capset",
    "prctl",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
];

const AF_INET: u32 = libc::AF_INET as u32;
const AF_INET6: u32 = libc::AF_INET6 as u32;

fn numbers(arch: Arch, names: &[&str]) -> Vec<u32> {
    names
        .iter()
        .filter_map(|n| syscalls::number(arch, n))
        .collect()
}

/// The two seccomp programs of the proxy, for `arch`.
pub(crate) fn filters(arch: Arch) -> Result<seccomp::Filters, String> {
    let mut deny = numbers(arch, KILL);
    deny.extend(syscalls::baseline_deny(arch));
    let rules = Rules {
        socket_families: vec![AF_INET, AF_INET6],
        ..Rules::default()
    };
    seccomp::compile_with(
        arch,
        &numbers(arch, ALLOW),
        &deny,
        OnViolation::Kill,
        &rules,
    )
    .map_err(|e| e.to_string())
}

/// Landlock for the proxy: every filesystem right the kernel knows is
/// handled and none granted, TCP bind handled (the proxy only accepts on
/// sockets it was given and dials out), signals and abstract unix sockets
/// scoped.
pub(crate) fn landlock_self() -> Result<(), String> {
    let abi = landlock::kernel_abi()
        .map_err(|e| format!("Landlock is not available ({e}): the egress proxy needs it"))?;
    let abi = abi.min(landlock::MAX_ABI);
    let mut spec = Spec::deny_all(abi);
    spec.scopes = landlock::supported_scopes(abi);
    if abi >= 4 {
        spec.net = Some(NetRules {
            handled: landlock::NET_BIND_TCP,
            ..NetRules::default()
        });
    }
    landlock::prepare(&spec)
        .and_then(|p| p.restrict_self(false))
        .map_err(|e| format!("Landlock: {e}"))
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The first half of the proxy's confinement, in the forked child before
/// it executes the proxy's own program (it may be root when confine runs
/// as root): PR_SET_PDEATHSIG(SIGKILL), then, as root, the bounding set
/// cleared, securebits locked, the agent's `uid`/`gid` with no
/// supplementary groups and every capability set cleared and verified (an
/// unprivileged caller must pass its own ids; its sets are cleared), and
/// PR_SET_NO_NEW_PRIVS: the program runs with no privilege to gain or
/// keep.
///
/// # Errors
///
/// The step that failed and why; the caller must not go on then.
pub fn drop_privileges(uid: u32, gid: u32) -> Result<(), String> {
    process::die_with_parent().map_err(io("PR_SET_PDEATHSIG"))?;
    let last_cap = caps::read_last_cap().map_err(|e| format!("capabilities: {e}"))?;
    let caps = Caps::new(&[], last_cap).map_err(|e| format!("capabilities: {e}"))?;
    // SAFETY: geteuid/getuid/getgid have no arguments and can't fail.
    let (euid, ruid, rgid) = unsafe { (libc::geteuid(), libc::getuid(), libc::getgid()) };
    if euid == 0 {
        caps.drop_bounding()
            .map_err(|e| format!("capabilities: {e}"))?;
        caps.lock_securebits()
            .map_err(|e| format!("capabilities: {e}"))?;
        user::switch(&user::Ids {
            uid,
            gid,
            groups: Vec::new(),
            name: None,
            keep_groups: false,
        })
        .map_err(|e| format!("switching to uid {uid}, gid {gid}: {e}"))?;
        caps.clear().map_err(|e| format!("capabilities: {e}"))?;
        caps.verify().map_err(|e| format!("capabilities: {e}"))?;
    } else {
        if (ruid, rgid) != (uid, gid) {
            return Err(format!(
                "running as uid {ruid}, gid {rgid} without privileges: can't switch to uid {uid}, gid {gid}"
            ));
        }
        caps.clear().map_err(|e| format!("capabilities: {e}"))?;
        caps.verify_held()
            .map_err(|e| format!("capabilities: {e}"))?;
    }
    process::no_new_privs().map_err(io("PR_SET_NO_NEW_PRIVS"))
}

/// The second half, in the proxy's own program before it reads anything
/// the agent sends: PR_SET_PDEATHSIG(SIGKILL) again (execve keeps it, but
/// the credential change may have reset it) and a check that the parent
/// is still `supervisor`, rlimits (no core, no file writes, bounded open
/// files), not dumpable (execve made it dumpable again), no_new_privs,
/// Landlock with nothing granted, and the seccomp allowlist.
///
/// # Errors
///
/// The step that failed and why; the caller must not serve then.
pub fn lock_down(supervisor: libc::pid_t) -> Result<(), String> {
    process::die_with_parent().map_err(io("PR_SET_PDEATHSIG"))?;
    // SAFETY: getppid has no arguments and can't fail.
    if unsafe { libc::getppid() } != supervisor {
        return Err("the supervisor is gone".into());
    }
    limits::apply(&limits::Rlimits {
        open_files: Some(OPEN_FILES),
        file_size: Some(0),
        core_dumps: false,
    })
    .map_err(|e| format!("rlimits: {e}"))?;
    process::set_undumpable().map_err(io("PR_SET_DUMPABLE"))?;
    process::no_new_privs().map_err(io("PR_SET_NO_NEW_PRIVS"))?;
    landlock_self()?;

    let f = filters(Arch::native())?;
    seccomp::install(&f.allowlist, false).map_err(io("seccomp allowlist"))?;
    seccomp::install(&f.denylist, false).map_err(io("seccomp denylist"))?;
    Ok(())
}

/// Both halves at once, for a proxy that runs in the process that forked
/// it (the crate's own tests): the parent it checks for is the one found
/// on entry.
///
/// # Errors
///
/// The step that failed and why; the caller must not serve then.
pub fn confine_self(uid: u32, gid: u32) -> Result<(), String> {
    // SAFETY: getppid has no arguments and can't fail.
    let parent = unsafe { libc::getppid() };
    drop_privileges(uid, gid)?;
    lock_down(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_known_and_the_filters_compile() {
        for name in ALLOW.iter().chain(KILL) {
            assert!(
                Arch::ALL
                    .iter()
                    .any(|&a| syscalls::number(a, name).is_some()),
                "{name}"
            );
            assert!(
                !(ALLOW.contains(name) && KILL.contains(name)),
                "{name} in both"
            );
        }
        for arch in Arch::ALL {
            filters(arch).unwrap();
        }
    }

    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd};

    /// The agent's uid in tests (tests/common: AGENT_UID).
    const AGENT: u32 = 60123;

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: an array of two ints for the kernel to fill.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: two fresh descriptors nothing else owns.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    /// Forks; the child runs `f` and `_exit`s with its result.
    fn fork(f: impl FnOnce() -> i32) -> libc::pid_t {
        // SAFETY: the child only runs `f` (system calls, small allocations
        // that glibc's fork handlers make safe) and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = f();
            // SAFETY: ends the child without running the harness.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    fn wait(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: our own child; status is a valid int.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    fn is_root() -> bool {
        // SAFETY: no arguments.
        unsafe { libc::geteuid() == 0 }
    }

    fn open_errno(path: &std::ffi::CStr) -> i32 {
        // SAFETY: a valid C string; the descriptor, if any, is closed.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: our descriptor.
            unsafe { libc::close(fd) };
            return 0;
        }
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }

    /// Landlock alone, as root: no file opens, not even for root.
    #[test]
    fn landlock_leaves_no_file_open() {
        let (mut r, mut w) = pipe();
        let pid = fork(|| {
            drop(r.try_clone());
            if process::no_new_privs().is_err() || landlock_self().is_err() {
                return 2;
            }
            let e = open_errno(c"/etc/passwd");
            let _ = w.write_all(&e.to_ne_bytes());
            0
        });
        drop(w.try_clone());
        let status = wait(pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
        let mut b = [0u8; 4];
        r.read_exact(&mut b).unwrap();
        assert_eq!(i32::from_ne_bytes(b), libc::EACCES);
    }

    fn status_field(pid: libc::pid_t, field: &str) -> String {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(field).and_then(|v| v.strip_prefix(':')))
            .unwrap_or_else(|| panic!("no {field} in {text}"))
            .trim()
            .to_string()
    }

    /// As root (the case that matters): the agent's ids, no capability in
    /// any set, no_new_privs, two seccomp filters, no file, and killed on
    /// execve.
    #[test]
    fn confine_self_as_root() {
        if !is_root() {
            assert!(
                std::env::var_os("CONFINE_REQUIRE_KERNEL").is_none(),
                "needs root"
            );
            return;
        }
        let (mut report_r, mut report_w) = pipe();
        let (mut go_r, mut go_w) = pipe();
        let pid = fork(|| {
            let (code, why): (i32, String) = match confine_self(AGENT, AGENT) {
                Ok(()) => (0, String::new()),
                Err(e) => (3, e),
            };
            let e = open_errno(c"/etc/passwd");
            let mut why = why.into_bytes();
            why.resize(256, b' ');
            let _ = report_w.write_all(&[&code.to_ne_bytes()[..], &e.to_ne_bytes(), &why].concat());
            let mut b = [0u8; 1];
            let _ = go_r.read(&mut b);
            let path = c"/bin/true";
            let argv = [path.as_ptr(), std::ptr::null()];
            // SAFETY: a valid path and NULL-terminated argv, empty envp.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), [std::ptr::null()].as_ptr()) };
            4
        });
        let mut b = [0u8; 8 + 256];
        report_r.read_exact(&mut b).unwrap();
        let code = i32::from_ne_bytes(b[..4].try_into().unwrap());
        let open = i32::from_ne_bytes(b[4..8].try_into().unwrap());
        assert_eq!(
            code,
            0,
            "confine_self: {}",
            String::from_utf8_lossy(&b[8..]).trim_end()
        );
        assert_ne!(open, 0, "/etc/passwd opened");
        for (field, want) in [
            ("Uid", "60123\t60123\t60123\t60123"),
            ("Gid", "60123\t60123\t60123\t60123"),
            ("Groups", ""),
            ("CapInh", "0000000000000000"),
            ("CapPrm", "0000000000000000"),
            ("CapEff", "0000000000000000"),
            ("CapBnd", "0000000000000000"),
            ("CapAmb", "0000000000000000"),
            ("NoNewPrivs", "1"),
            ("Seccomp", "2"),
            ("Seccomp_filters", "2"),
        ] {
            assert_eq!(status_field(pid, field), want, "{field}");
        }
        go_w.write_all(b"g").unwrap();
        let status = wait(pid);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "execve after confine_self: status {status:#x}"
        );
    }

    /// Unprivileged, a uid other than its own is refused.
    #[test]
    fn unprivileged_callers_pass_their_own_ids() {
        let pid = fork(|| {
            // SAFETY: plain id changes in the child.
            if unsafe { libc::setgid(AGENT) } != 0 || unsafe { libc::setuid(AGENT) } != 0 {
                return 2;
            }
            match confine_self(AGENT + 1, AGENT + 1) {
                Err(e) if e.contains("can't switch") => 0,
                _ => 1,
            }
        });
        if is_root() {
            let status = wait(pid);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{status:#x}"
            );
        } else {
            wait(pid);
        }
    }

    /// The proxy works under its own confinement: the allowlist holds
    /// what tokio and the proxy call (a missing call would fail or kill
    /// it), and it exits 0 when the events pipe breaks.
    #[test]
    fn the_proxy_serves_under_its_own_confinement() {
        use std::net::{TcpListener, TcpStream, UdpSocket};
        if !is_root() {
            assert!(
                std::env::var_os("CONFINE_REQUIRE_KERNEL").is_none(),
                "needs root"
            );
            return;
        }
        // An echo upstream in this process.
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = up.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in up.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let dns_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dns_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (http_addr, dns_addr) = (http.local_addr().unwrap(), dns_udp.local_addr().unwrap());
        let (events_r, events_w) = pipe();
        let rule = |h: &str| crate::plan::egress::HostRule {
            pattern: crate::plan::egress::HostPattern::Exact(h.into()),
            port: Some(port),
            text: h.into(),
        };
        let policy = crate::plan::egress::Egress {
            allow: vec![rule("upstream.test"), rule("lookup.test")],
            hosts: [("upstream.test".to_string(), "127.0.0.1".parse().unwrap())].into(),
            ..Default::default()
        };
        // A name server that never answers: the proxy's resolver must get
        // as far as sending a query under its filter.
        let ns = UdpSocket::bind("127.0.0.1:0").unwrap();
        let setup = super::super::Setup {
            policy,
            http,
            dns_udp,
            dns_tcp,
            transparent: vec![],
            nameservers: vec![ns.local_addr().unwrap()],
            events: events_w.into(),
            shutdown: None,
            routes: None,
        };
        // The child must not hold the read end, or the pipe never breaks.
        let reader = events_r.as_raw_fd();
        let pid = fork(move || {
            // SAFETY: the child's copy of the read end, used by nothing.
            unsafe { libc::close(reader) };
            if confine_self(AGENT, AGENT).is_err() {
                return 3;
            }
            match super::super::run(setup) {
                Ok(()) => 0,
                Err(_) => 4,
            }
        });
        let mut s = TcpStream::connect(http_addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(s, "CONNECT upstream.test:{port} HTTP/1.1\r\n\r\n").unwrap();
        let mut head = [0u8; 39];
        s.read_exact(&mut head).unwrap();
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        s.write_all(b"through a confined proxy").unwrap();
        let mut back = [0u8; 24];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"through a confined proxy");
        // DNS over UDP.
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let q = super::super::dns::query(
            1,
            &hickory_proto::rr::Name::from_ascii("upstream.test.").unwrap(),
            hickory_proto::rr::RecordType::A,
        );
        c.send_to(&q, dns_addr).unwrap();
        let mut buf = [0u8; 512];
        let n = c.recv(&mut buf).unwrap();
        assert!(n > 12 && buf[3] & 0x0f == 0);
        // The resolver path: a name that isn't pinned is looked up (the
        // server never answers: 502 after the query timed out).
        let mut s2 = TcpStream::connect(http_addr).unwrap();
        s2.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(s2, "CONNECT lookup.test:{port} HTTP/1.1\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s2.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 502");
        let mut q = [0u8; 512];
        ns.set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        assert!(ns.recv(&mut q).is_ok(), "no query reached the name server");
        drop(s);
        drop(events_r);
        let status = wait(pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the confined proxy: status {status:#x}"
        );
    }
}
