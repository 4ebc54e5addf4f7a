//! Compiles and installs the two seccomp filters of DESIGN.md §5.
//!
//! Landlock decides which files a process may touch; seccomp decides which of
//! the kernel's entry points it may reach at all. The agent gets two stacked
//! classic-BPF filters, both compiled by [`compile`] in the supervisor before
//! the fork, and both installed by [`install`] as the very last step before
//! `execve`:
//!
//! 1. **A, the allowlist**: the syscall numbers of the plan's allowlist are
//!    allowed, every other one fails with ENOSYS, so libraries take their
//!    fallbacks (glibc only falls back from `clone3` to `clone` on ENOSYS).
//!    A never looks at an argument, so the kernel's seccomp action cache
//!    proves every allowed syscall constant and stops running the filter for
//!    it: allowed syscalls cost nothing.
//! 2. **B, the denylist**: the plan's denied numbers get the `on_violation`
//!    action, and allowed syscalls get argument rules ([`Rules`]): `ioctl`
//!    may not inject keystrokes (TIOCSTI, TIOCLINUX), `clone` may not create
//!    namespaces, `personality` may only query or set the default, `socket`
//!    and `socketpair` may open only the plan's families; where the plan
//!    asks, the send calls may not use TCP Fast Open and `socket` may not
//!    make non-TCP streams (host-mode port rules), `fallocate` may not
//!    allocate past `limits.file_size`, and `memfd_create` may not make
//!    executable memfds (or none at all). Rules that stand in for a missing
//!    feature answer with that feature's errno rather than `on_violation`.
//!
//! Install A first, then B. When several filters answer, the kernel runs the
//! newest first and keeps the most severe action; between two answers of the
//! same kind (two ERRNOs) the newest wins. So B, installed last, turns A's
//! ENOSYS into EPERM for a denied call, and a kill or an EPERM from B can
//! never be softened by A. Both filters kill the process outright when a
//! syscall arrives from a foreign architecture (i386 via `int 0x80` on
//! x86_64) or with an x32 number, whose numbers would otherwise mean
//! different syscalls than the ones the filter was written for.
//!
//! The caller sets PR_SET_NO_NEW_PRIVS before [`install`] (the kernel refuses
//! an unprivileged filter without it) and calls nothing that allocates between
//! [`install`] and `execve`.
//!
//! The module is split by job: `rules` holds the argument rules as one table
//! (what [`describe_rules`] prints for `explain`), `emit` turns numbers and
//! rules into classic BPF (with the encodings in `bpf`), and the unit tests
//! check every program with `interp`, which runs a program the way the
//! kernel would, without a kernel.
//!
//! # Why our own BPF and not seccompiler's
//!
//! seccompiler could express most of this (its `Dword` conditions compare the
//! low half of an argument only), but not all of it: a seccompiler filter has
//! one match action, and B needs two (the violation action, and ENOSYS for
//! `clone3`); it doesn't check the x32 bit, so its fixed arch prologue would
//! have to be cut open to splice the guard in; and it tests the syscalls one
//! after another. The two programs are small and regular, so they are emitted
//! directly: a prologue (arch, x32), then a binary search over the syscall
//! number whose leaves are a `ret` or, in B, a few short argument checks. A
//! call reaches its verdict in about log2(number of ranges) jumps (six or
//! seven for the baseline); only the leaves of B's argument rules load an
//! argument, so every other syscall stays on the kernel's action cache.

use std::collections::BTreeMap;
use std::io;

use libc::sock_filter;

use crate::syscalls::{self, Arch};

mod bpf;
mod emit;
#[cfg(test)]
mod interp;
pub(crate) mod notify;
mod rules;
#[cfg(test)]
mod tests;

use emit::{check_len, partition, program, BPF_MAXINSNS, X32_SYSCALL_BIT};
use rules::Leaf;
pub use rules::{describe_rules, Memfd, Rules};

/// What filter B does to a denied call: the profile's `syscalls.on_violation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnViolation {
    /// Fail with EPERM.
    #[default]
    Errno,
    /// Kill the whole process (SECCOMP_RET_KILL_PROCESS).
    Kill,
    /// Allow, and have the kernel log it (SECCOMP_RET_LOG).
    Log,
    /// Ask the supervisor (SECCOMP_RET_USER_NOTIF), which answers EPERM
    /// and records the denial: `errno` when denials are reported
    /// ([`notify`]).
    Notify,
}

impl OnViolation {
    /// The seccomp return value for a violation.
    pub(crate) const fn action(self) -> u32 {
        match self {
            OnViolation::Errno => libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            OnViolation::Kill => libc::SECCOMP_RET_KILL_PROCESS,
            OnViolation::Log => libc::SECCOMP_RET_LOG,
            OnViolation::Notify => libc::SECCOMP_RET_USER_NOTIF,
        }
    }
}

/// The two compiled programs, in install order: `allowlist` (A), then
/// `denylist` (B).
#[derive(Clone)]
pub struct Filters {
    pub allowlist: Vec<sock_filter>,
    pub denylist: Vec<sock_filter>,
}

impl std::fmt::Debug for Filters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filters")
            .field("allowlist_instructions", &self.allowlist.len())
            .field("denylist_instructions", &self.denylist.len())
            .finish()
    }
}

/// Why the filters could not be compiled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SeccompError {
    #[error(
        "seccomp: syscall number {nr:#x} is out of range on {arch} \
         (syscall numbers are below {:#x})",
        X32_SYSCALL_BIT
    )]
    NumberOutOfRange { arch: Arch, nr: u32 },
    #[error("seccomp: {name} has no syscall number on {arch}, needed for its argument rule")]
    MissingSyscall { arch: Arch, name: &'static str },
    #[error(
        "seccomp: the {filter} filter needs {len} BPF instructions, \
         more than the kernel's limit of {}",
        BPF_MAXINSNS
    )]
    TooLong { filter: &'static str, len: usize },
    #[error(
        "seccomp: a check of {syscall}'s arguments needs {len} BPF instructions, \
         more than a conditional jump reaches (255)"
    )]
    RuleTooLong { syscall: &'static str, len: usize },
}

/// ENOSYS, as filter A answers an unlisted syscall.
pub(crate) const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Compiles filter A from the `allow` numbers and filter B from the `deny`
/// numbers plus the built-in argument rules, for `arch`, with the baseline
/// [`Rules`] (`Rules::default()`).
///
/// # Errors
///
/// As [`compile_with`].
#[cfg(test)]
fn compile(
    arch: Arch,
    allow: &[u32],
    deny: &[u32],
    on_violation: OnViolation,
) -> Result<Filters, SeccompError> {
    compile_with(arch, allow, deny, on_violation, &Rules::default())
}

/// Compiles filter A from the `allow` numbers and filter B from the `deny`
/// numbers plus the argument rules that `rules` asks for, for `arch`.
///
/// Duplicates are harmless. A number in both `allow` and `deny` is denied (B
/// wins), and a `deny` entry replaces the argument rules of its syscall.
/// `clone3` always gets ENOSYS from B, even if `allow` lists it: its flags
/// are out of seccomp's reach, so only `clone`, whose flags B can check, may
/// create processes (a `deny` entry for it still takes the deny action).
///
/// # Errors
///
/// [`SeccompError::NumberOutOfRange`] for a number with bit 30 or higher set,
/// [`SeccompError::MissingSyscall`] if our table lacks a syscall that an
/// argument rule needs, [`SeccompError::TooLong`] if a program exceeds the
/// kernel's 4096 instructions or an argument rule the reach of a jump.
pub(crate) fn compile_with(
    arch: Arch,
    allow: &[u32],
    deny: &[u32],
    on_violation: OnViolation,
    rules: &Rules,
) -> Result<Filters, SeccompError> {
    for &nr in allow.iter().chain(deny) {
        if nr >= X32_SYSCALL_BIT {
            return Err(SeccompError::NumberOutOfRange { arch, nr });
        }
    }
    let violation = on_violation.action();

    let mut a: Vec<u32> = allow.to_vec();
    a.sort_unstable();
    a.dedup();
    let a = a
        .into_iter()
        .map(|nr| (nr, Leaf::Ret(libc::SECCOMP_RET_ALLOW)));
    let allowlist = program(arch, &partition(a, Leaf::Ret(RET_ENOSYS)));

    let mut b: BTreeMap<u32, Leaf> = BTreeMap::new();
    for (name, leaf) in rules.leaves(violation) {
        if let Leaf::Checks(checks) = &leaf {
            if let Some(len) = checks
                .iter()
                .map(check_len)
                .find(|&len| len > usize::from(u8::MAX))
            {
                return Err(SeccompError::RuleTooLong { syscall: name, len });
            }
        }
        b.insert(lookup(arch, name)?, leaf);
    }
    b.insert(lookup(arch, "clone3")?, Leaf::Ret(RET_ENOSYS));
    for &nr in deny {
        b.insert(nr, Leaf::Ret(violation));
    }
    let denylist = program(arch, &partition(b, Leaf::Ret(libc::SECCOMP_RET_ALLOW)));

    for (filter, prog) in [("allowlist", &allowlist), ("denylist", &denylist)] {
        if prog.len() > BPF_MAXINSNS {
            return Err(SeccompError::TooLong {
                filter,
                len: prog.len(),
            });
        }
    }
    Ok(Filters {
        allowlist,
        denylist,
    })
}

/// Installs one compiled program on the calling thread with
/// `seccomp(SECCOMP_SET_MODE_FILTER)`; with `log`, also
/// SECCOMP_FILTER_FLAG_LOG, so the kernel logs every action of this filter
/// other than ALLOW. Call it for `allowlist`, then for `denylist`.
///
/// It doesn't allocate: it runs in the forked child between Landlock and
/// `execve`. PR_SET_NO_NEW_PRIVS must already be set.
///
/// # Errors
///
/// The kernel's error: EACCES without NO_NEW_PRIVS (and without
/// CAP_SYS_ADMIN), EINVAL for a malformed program or an unknown flag, ENOMEM
/// when the stacked filters get too long, ENOSYS or EINVAL from a kernel
/// without seccomp filters (or with a filter that denies `seccomp` itself).
pub(crate) fn install(prog: &[sock_filter], log: bool) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    let flags: libc::c_ulong = if log {
        libc::SECCOMP_FILTER_FLAG_LOG
    } else {
        0
    };
    // SAFETY: `fprog` points at `prog.len()` valid instructions that outlive
    // the call; the kernel only reads them and copies the program before
    // returning. All arguments are passed at the width the kernel reads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(libc::SECCOMP_SET_MODE_FILTER),
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Installs `prog` as [`install`] does, with a listener
/// (SECCOMP_FILTER_FLAG_NEW_LISTENER): the descriptor on which its
/// SECCOMP_RET_USER_NOTIF calls wait for an answer.
///
/// # Errors
/// As [`install`]; EBUSY when a filter of this thread already has a
/// listener (the kernel allows one per chain: confine itself runs under a
/// runtime that notifies).
pub(crate) fn install_with_listener(prog: &[sock_filter]) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: as in `install`; the kernel returns a new descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(libc::SECCOMP_SET_MODE_FILTER),
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns
    // it (it is O_CLOEXEC).
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(rc as i32) })
}

fn lookup(arch: Arch, name: &'static str) -> Result<u32, SeccompError> {
    syscalls::number(arch, name).ok_or(SeccompError::MissingSyscall { arch, name })
}

/// The syscalls `confine learn` observes (DESIGN-NOTES 55): each names a
/// path (or an address) the learned profile may have to grant. Their
/// arguments are read by the supervisor, which then lets the call go on.
pub(crate) const LEARN_OBSERVED: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "execve",
    "execveat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
    "connect",
    "bind",
];

/// The filters of a learning run: A allows every call of our table (so
/// that calls outside the allowlist reach B instead of failing with
/// ENOSYS), and B notifies the supervisor of [`LEARN_OBSERVED`], of every
/// call outside `allow`, and of the denied calls (the supervisor answers
/// those EPERM, as `errno` would); the argument rules and `clone3`'s
/// ENOSYS stay as in [`compile_with`]. Never used outside `confine learn`.
///
/// # Errors
/// As [`compile_with`].
pub(crate) fn compile_learn(
    arch: Arch,
    allow: &[u32],
    deny: &[u32],
    rules: &Rules,
) -> Result<Filters, SeccompError> {
    let every: Vec<u32> = syscalls::table(arch).iter().map(|&(_, nr)| nr).collect();
    let mut a = every;
    a.sort_unstable();
    a.dedup();
    let allowlist = program(
        arch,
        &partition(
            a.into_iter()
                .map(|nr| (nr, Leaf::Ret(libc::SECCOMP_RET_ALLOW))),
            Leaf::Ret(RET_ENOSYS),
        ),
    );
    let notify = libc::SECCOMP_RET_USER_NOTIF;
    let mut b: BTreeMap<u32, Leaf> = BTreeMap::new();
    for &nr in allow {
        if nr >= X32_SYSCALL_BIT {
            return Err(SeccompError::NumberOutOfRange { arch, nr });
        }
        b.insert(nr, Leaf::Ret(libc::SECCOMP_RET_ALLOW));
    }
    for name in LEARN_OBSERVED {
        if let Some(nr) = syscalls::number(arch, name) {
            b.insert(nr, Leaf::Ret(notify));
        }
    }
    for (name, leaf) in rules.leaves(notify) {
        if let Leaf::Checks(checks) = &leaf {
            if let Some(len) = checks
                .iter()
                .map(check_len)
                .find(|&len| len > usize::from(u8::MAX))
            {
                return Err(SeccompError::RuleTooLong { syscall: name, len });
            }
        }
        let nr = lookup(arch, name)?;
        // An argument rule of a call outside the allowlist: the call is
        // learned, its rule applied when the learned profile runs.
        if b.contains_key(&nr) {
            b.insert(nr, leaf);
        }
    }
    b.insert(lookup(arch, "clone3")?, Leaf::Ret(RET_ENOSYS));
    for &nr in deny {
        if nr >= X32_SYSCALL_BIT {
            return Err(SeccompError::NumberOutOfRange { arch, nr });
        }
        b.insert(nr, Leaf::Ret(notify));
    }
    let denylist = program(arch, &partition(b, Leaf::Ret(notify)));
    for (filter, prog) in [("allowlist", &allowlist), ("denylist", &denylist)] {
        if prog.len() > BPF_MAXINSNS {
            return Err(SeccompError::TooLong {
                filter,
                len: prog.len(),
            });
        }
    }
    Ok(Filters {
        allowlist,
        denylist,
    })
}
