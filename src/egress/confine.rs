//! The proxy's own confinement (DESIGN.md §3: it parses what the agent
//! sends, so it must not hold the supervisor's privileges). Applied by
//! [`confine_self`] in the forked child before [`super::serve`], with the
//! same modules that confine the agent.
//!
//! Order, each step needing what a later one takes away:
//! 1. PR_SET_PDEATHSIG(SIGKILL): the proxy dies with the supervisor.
//! 2. rlimits: no core dumps, no file writes, a bounded number of fds.
//! 3. As root: bounding set cleared, securebits locked, then the agent's
//!    uid and gid with no supplementary groups, then every capability set
//!    cleared and verified. Unprivileged: the capability sets are cleared
//!    (the bounding set can't be, and execve is killed below anyway).
//! 4. Not dumpable (the uid change reset it), PDEATHSIG again (so did
//!    the credential change) and a check that the parent is still the one
//!    we started with.
//! 5. PR_SET_NO_NEW_PRIVS, then Landlock handling every filesystem right
//!    the kernel knows, TCP bind, and both scopes, granting nothing.
//! 6. Seccomp, last: filter A allows [`ALLOW`] (what tokio's current-thread
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
    // Memory.
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    // The event loop.
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd2",
    "futex",
    "sched_yield",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "getrandom",
    // Descriptors.
    "read",
    "write",
    "readv",
    "writev",
    "close",
    "fcntl",
    "ioctl",
    "pipe2",
    "splice",
    // Sockets.
    "socket",
    "connect",
    "accept4",
    "bind",
    "shutdown",
    "getsockname",
    "getpeername",
    "setsockopt",
    "getsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    // Signals: SIGPIPE ignored, std's and glibc's own masks.
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "getpid",
    "gettid",
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
    "seccomp",
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
        .and_then(landlock::Prepared::restrict_self)
        .map_err(|e| format!("Landlock: {e}"))
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The proxy's own confinement, applied in the forked child before
/// [`super::serve`] (it may be root when confine runs as root): the agent's
/// `uid`/`gid` with no supplementary groups when running as root (an
/// unprivileged caller must pass its own ids), no capability left in any
/// set, no_new_privs, not dumpable, PR_SET_PDEATHSIG(SIGKILL) and a check
/// that the parent is still the same, rlimits (no core, no file writes,
/// bounded open files), Landlock with nothing granted and the seccomp
/// allowlist. Call it right after the fork: the parent it checks for is
/// the one found on entry.
///
/// # Errors
///
/// The step that failed and why; the caller must not serve then.
pub fn confine_self(uid: u32, gid: u32) -> Result<(), String> {
    // SAFETY: getppid has no arguments and can't fail.
    let parent = unsafe { libc::getppid() };
    process::die_with_parent().map_err(io("PR_SET_PDEATHSIG"))?;
    limits::apply(&limits::Rlimits {
        open_files: Some(OPEN_FILES),
        file_size: Some(0),
        core_dumps: false,
    })
    .map_err(|e| format!("rlimits: {e}"))?;

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

    process::set_undumpable().map_err(io("PR_SET_DUMPABLE"))?;
    process::die_with_parent().map_err(io("PR_SET_PDEATHSIG"))?;
    // SAFETY: as above.
    if unsafe { libc::getppid() } != parent {
        return Err("the supervisor is gone".into());
    }
    process::no_new_privs().map_err(io("PR_SET_NO_NEW_PRIVS"))?;
    landlock_self()?;

    let f = filters(Arch::native())?;
    seccomp::install(&f.allowlist, false).map_err(io("seccomp allowlist"))?;
    seccomp::install(&f.denylist, false).map_err(io("seccomp denylist"))?;
    Ok(())
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
}
