//! Memfds that can't be executed (DESIGN.md §6: nothing runs that isn't
//! under an `exec` grant, a memfd included).
//!
//! Landlock doesn't see a memfd: its inode lives on the kernel's internal
//! shmem mount and is private, so `execveat(memfd, "", AT_EMPTY_PATH)` or
//! `execve("/proc/self/fd/N")` would run whatever the agent wrote into it.
//! Linux 6.3 added `vm.memfd_noexec`, a sysctl of each PID namespace: at 1,
//! a memfd created without MFD_EXEC is created without the execute bits and
//! sealed (F_SEAL_EXEC) so they can't be added; a child namespace can't go
//! below its parent's value. The sandbox's init is PID 1 of a fresh PID
//! namespace and still holds CAP_SYS_ADMIN over it when it runs
//! [`apply`], before the mount view makes `/proc` read-only; filter B then
//! refuses MFD_EXEC (EACCES, what the kernel answers at 2).
//!
//! Why 1 and not 2: from 6.6 on, 2 means exactly that (MFD_EXEC refused,
//! the rest sealed), but on 6.3 to 6.5 it refused every `memfd_create` that
//! doesn't pass MFD_NOEXEC_SEAL, which nearly every program that uses
//! memfds for data doesn't. 1 plus the seccomp rule is the same on every
//! kernel from 6.3.
//!
//! Where the sysctl is missing (before 6.3) or confine can't write it
//! (without root, /proc/sys is root's), the plan has filter B answer
//! `memfd_create` with ENOSYS instead, as a kernel built without it would;
//! programs fall back to files, which Landlock and the mount view cover.

use std::io::{self, Write as _};

/// The sysctl of the calling process's PID namespace.
pub(crate) const SYSCTL: &str = "/proc/sys/vm/memfd_noexec";

/// How the sandbox keeps memfds from being executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The init sets its PID namespace's `vm.memfd_noexec` to 1 and filter B
    /// refuses MFD_EXEC: memfds exist, none is executable.
    NoExec,
    /// `memfd_create` fails with ENOSYS (filter B).
    Unavailable,
    /// Nothing: the profile's exec grants cover `/` anyway.
    Unrestricted,
}

/// The value of [`SYSCTL`] in the caller's PID namespace, `None` when this
/// kernel has none (before 6.3) or it can't be read.
pub(crate) fn noexec_sysctl() -> Option<i64> {
    std::fs::read_to_string(SYSCTL)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Whether the caller could write [`SYSCTL`] (it exists, /proc/sys is
/// mounted writable and we are root on the host, whom alone its mode lets
/// write). One `access(2)`.
pub(crate) fn sysctl_writable() -> bool {
    nix::unistd::access(SYSCTL, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// Applies `policy` in the sandbox's init, before the mount view (which
/// mounts `/proc` read-only) and before Landlock and seccomp. Only
/// [`Policy::NoExec`] does anything: it raises the PID namespace's
/// `vm.memfd_noexec` to 1 unless it already is at least that (inherited
/// from an enclosing namespace that set it, which may not be lowered).
///
/// # Errors
///
/// Opening or writing the sysctl failed, or it doesn't hold at least 1
/// afterwards.
pub(crate) fn apply(policy: Policy) -> io::Result<()> {
    if policy != Policy::NoExec {
        return Ok(());
    }
    let err = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {SYSCTL}: {e}"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(SYSCTL)
        .map_err(|e| err("opening", e))?;
    match f.write_all(b"1") {
        Ok(()) => Ok(()),
        // Below the value of an enclosing namespace: that one already holds.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match noexec_sysctl() {
            Some(v) if v >= 1 => Ok(()),
            _ => Err(err("writing 1 to", e)),
        },
        Err(e) => Err(err("writing 1 to", e)),
    }
}
