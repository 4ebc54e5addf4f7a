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
//! [`simulate`], [`simulate_stack`] and [`constant_action`] run a program the
//! way the kernel would, without a kernel, for tests, `explain` and
//! benchmarks.
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

/// What filter B does to a denied call: the profile's `syscalls.on_violation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnViolation {
    /// Fail with EPERM.
    #[default]
    Errno,
    /// Kill the whole process (SECCOMP_RET_KILL_PROCESS).
    Kill,
    /// Allow, and have the kernel log it (SECCOMP_RET_LOG).
    Log,
}

impl OnViolation {
    /// The seccomp return value for a violation.
    pub const fn action(self) -> u32 {
        match self {
            OnViolation::Errno => libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            OnViolation::Kill => libc::SECCOMP_RET_KILL_PROCESS,
            OnViolation::Log => libc::SECCOMP_RET_LOG,
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
pub enum SeccompError {
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
pub const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Compiles filter A from the `allow` numbers and filter B from the `deny`
/// numbers plus the built-in argument rules, for `arch`, with the baseline
/// [`Rules`] (`Rules::default()`).
///
/// # Errors
///
/// As [`compile_with`].
pub fn compile(
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
pub fn compile_with(
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
pub fn install(prog: &[sock_filter], log: bool) -> io::Result<()> {
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

// ---------------------------------------------------------------------------
// The programs.

/// The kernel's limit on a classic BPF program.
const BPF_MAXINSNS: usize = 4096;

/// Set in the number of every x32 syscall (`__X32_SYSCALL_BIT`). Real syscall
/// numbers never reach it on any architecture.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Every CLONE_NEW* flag: NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
/// NEWPID, NEWNET. (Through `clone`, CLONE_NEWTIME's bit lies in the exit
/// signal byte, where it only makes an invalid signal; it is kept in the mask
/// to be thorough.)
const CLONE_NEW_ANY: u32 = 0x0000_0080 // CLONE_NEWTIME
    | 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000; // CLONE_NEWNET

const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541c;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const SOCK_TYPE_MASK: u32 = 0xf;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_RAW: u32 = 3;
const IPPROTO_TCP: u32 = 6;
const MSG_FASTOPEN: u32 = 0x2000_0000;
const MFD_EXEC: u32 = 0x10;
/// FALLOC_FL_*: the modes that don't allocate past RLIMIT_FSIZE unchecked.
/// The filesystems check the new size against the limit whenever a mode
/// grows the file (`inode_newsize_ok`), which KEEP_SIZE never does.
const FALLOCATE_MODES: [u32; 6] = [
    0x00, // allocate (and grow): checked against RLIMIT_FSIZE
    0x03, // PUNCH_HOLE | KEEP_SIZE: frees blocks
    0x08, // COLLAPSE_RANGE: shrinks
    0x10, // ZERO_RANGE (growing is checked)
    0x40, // UNSHARE_RANGE (growing is checked)
    0x80, // WRITE_ZEROES (growing is checked)
];

/// ENOSYS, EACCES, EOPNOTSUPP and EPROTONOSUPPORT as fixed answers: what a
/// kernel without the feature, or with it turned off, would say, so
/// programs take their fallbacks whatever `on_violation` is.
const RET_EACCES: u32 = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
const RET_EOPNOTSUPP: u32 = libc::SECCOMP_RET_ERRNO | libc::EOPNOTSUPP as u32;
const RET_EPROTONOSUPPORT: u32 = libc::SECCOMP_RET_ERRNO | libc::EPROTONOSUPPORT as u32;

/// The socket families a sandbox may open when its profile adds none:
/// AF_UNIX, AF_INET, AF_INET6, AF_NETLINK.
pub const DEFAULT_SOCKET_FAMILIES: [u32; 4] = [1, 2, 10, 16];

/// What `memfd_create` may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Memfd {
    /// No rule (the profile's exec grants cover everything anyway).
    #[default]
    Unrestricted,
    /// The sandbox's `vm.memfd_noexec` makes every memfd non-executable
    /// unless MFD_EXEC asks otherwise: MFD_EXEC gets EACCES, as the kernel
    /// answers it under `vm.memfd_noexec=2`.
    NoExecFlag,
    /// No memfds at all: ENOSYS, so programs fall back to files.
    Unavailable,
}

/// The argument rules of filter B that depend on the plan. The fixed ones
/// (keystroke injection, namespaces, personality) are always there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The families `socket` and `socketpair` may open; any other gets the
    /// violation action.
    pub socket_families: Vec<u32>,
    /// TCP port rules are in force (host network): refuse what Landlock's
    /// port checks don't see. `sendto`/`sendmsg`/`sendmmsg` with
    /// MSG_FASTOPEN connect without the connect hook (EOPNOTSUPP, as with
    /// Fast Open turned off), and an AF_INET/AF_INET6 stream socket of any
    /// protocol but TCP (MPTCP, SCTP, SMC) or a socket type other than
    /// stream, datagram and raw (SCTP's seqpacket, DCCP) isn't a TCP socket
    /// to Landlock (EPROTONOSUPPORT, as if not built in). These rules take
    /// `sendto` and `sendmsg` off the action cache, which is why they exist
    /// only where port rules do.
    pub tcp_port_rules: bool,
    /// `limits.file_size` is set: `fallocate` may only use the modes that
    /// RLIMIT_FSIZE limits or that free space; FALLOC_FL_KEEP_SIZE
    /// (allocating past the end of the file without growing it) and
    /// INSERT_RANGE get EOPNOTSUPP, as on a filesystem without them.
    pub file_size_limit: bool,
    pub memfd: Memfd,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            socket_families: DEFAULT_SOCKET_FAMILIES.to_vec(),
            tcp_port_rules: false,
            file_size_limit: false,
            memfd: Memfd::Unrestricted,
        }
    }
}

impl Rules {
    /// Every argument rule, by syscall name, with `violation` as the
    /// violation action.
    fn leaves(&self, violation: u32) -> Vec<(&'static str, Leaf)> {
        let check = |when: Vec<Cond>, action: u32| Check { when, action };
        let mut v = vec![
            // Keystroke injection into a terminal (TIOCSTI) and the
            // console (TIOCLINUX's selection paste).
            (
                "ioctl",
                vec![check(
                    vec![Cond::is(1, Test::In(vec![TIOCSTI, TIOCLINUX]))],
                    violation,
                )],
            ),
            // New namespaces (a user namespace gives back every capability
            // inside it). Flags are argument 0 on x86_64 and aarch64 alike.
            (
                "clone",
                vec![check(
                    vec![Cond::is(0, Test::AnyBit(CLONE_NEW_ANY))],
                    violation,
                )],
            ),
            // Only query (0xffffffff) or set PER_LINUX (0): no
            // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC and the like.
            (
                "personality",
                vec![check(
                    vec![Cond::is(0, Test::NotIn(vec![0, 0xffff_ffff]))],
                    violation,
                )],
            ),
        ];
        // Socket families that reach rarely audited kernel code (AF_ALG,
        // AF_TIPC, AF_KCM, AF_XDP...), raw link-layer sockets, sockets to
        // the hypervisor: only those the plan allows.
        let mut families = self.socket_families.clone();
        families.sort_unstable();
        families.dedup();
        let family = || check(vec![Cond::is(0, Test::NotIn(families.clone()))], violation);
        let mut socket = vec![family()];
        if self.tcp_port_rules {
            let inet = || Cond::is(0, Test::In(vec![AF_INET, AF_INET6]));
            let kind = |t| Cond::masked(1, SOCK_TYPE_MASK, t);
            socket.push(check(
                vec![
                    inet(),
                    kind(Test::In(vec![SOCK_STREAM])),
                    Cond::is(2, Test::NotIn(vec![0, IPPROTO_TCP])),
                ],
                RET_EPROTONOSUPPORT,
            ));
            socket.push(check(
                vec![
                    inet(),
                    kind(Test::NotIn(vec![SOCK_STREAM, SOCK_DGRAM, SOCK_RAW])),
                ],
                RET_EPROTONOSUPPORT,
            ));
            for (name, flags) in [("sendto", 3), ("sendmsg", 2), ("sendmmsg", 3)] {
                v.push((
                    name,
                    vec![check(
                        vec![Cond::is(flags, Test::AnyBit(MSG_FASTOPEN))],
                        RET_EOPNOTSUPP,
                    )],
                ));
            }
        }
        v.push(("socket", socket));
        v.push(("socketpair", vec![family()]));
        if self.file_size_limit {
            v.push((
                "fallocate",
                vec![check(
                    vec![Cond::is(1, Test::NotIn(FALLOCATE_MODES.to_vec()))],
                    RET_EOPNOTSUPP,
                )],
            ));
        }
        let mut out: Vec<(&'static str, Leaf)> = v
            .into_iter()
            .map(|(name, checks)| (name, Leaf::Checks(checks)))
            .collect();
        match self.memfd {
            Memfd::Unrestricted => {}
            Memfd::NoExecFlag => out.push((
                "memfd_create",
                Leaf::Checks(vec![check(
                    vec![Cond::is(1, Test::AnyBit(MFD_EXEC))],
                    RET_EACCES,
                )]),
            )),
            Memfd::Unavailable => out.push(("memfd_create", Leaf::Ret(RET_ENOSYS))),
        }
        out
    }
}

/// A test of one syscall argument. Every test reads the low 32 bits of the
/// argument only, because that is all the kernel reads: `ioctl`'s request,
/// `personality`'s argument, `fallocate`'s mode and `memfd_create`'s flags
/// are `unsigned int` or `int`, so are `socket`'s three arguments and the
/// send calls' flags, and `clone` truncates its flags with
/// `lower_32_bits()`. Comparing all 64 bits would let `ioctl(fd,
/// 0xdead_0000_5412)` through as a TIOCSTI.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cond {
    arg: u8,
    /// ANDed into the value before the test.
    mask: Option<u32>,
    test: Test,
}

impl Cond {
    fn is(arg: u8, test: Test) -> Cond {
        Cond {
            arg,
            mask: None,
            test,
        }
    }

    fn masked(arg: u8, mask: u32, test: Test) -> Cond {
        Cond {
            arg,
            mask: Some(mask),
            test,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Test {
    /// The value is one of these.
    In(Vec<u32>),
    /// The value is none of these.
    NotIn(Vec<u32>),
    /// The value has any of these bits set.
    AnyBit(u32),
}

/// When every condition holds, the call gets `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Check {
    when: Vec<Cond>,
    action: u32,
}

/// What a range of syscall numbers leads to: a fixed action, or checks of
/// the arguments tried in order, the first that holds deciding (ALLOW when
/// none does).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Leaf {
    Ret(u32),
    Checks(Vec<Check>),
}

fn lookup(arch: Arch, name: &'static str) -> Result<u32, SeccompError> {
    syscalls::number(arch, name).ok_or(SeccompError::MissingSyscall { arch, name })
}

/// Cuts the number line into ranges `[start, next start)` with one leaf each:
/// the leaves of `verdicts` (ascending, one per number), `default` in
/// between, neighbours with the same leaf merged. The first range starts at 0.
fn partition(verdicts: impl IntoIterator<Item = (u32, Leaf)>, default: Leaf) -> Vec<(u32, Leaf)> {
    fn push(ranges: &mut Vec<(u32, Leaf)>, start: u32, leaf: &Leaf) {
        match ranges.last_mut() {
            Some((_, last)) if last == leaf => {}
            Some((last_start, last)) if *last_start == start => *last = leaf.clone(),
            _ => ranges.push((start, leaf.clone())),
        }
    }
    let mut ranges = vec![(0, default.clone())];
    let mut next = 0;
    for (nr, leaf) in verdicts {
        if nr > next {
            push(&mut ranges, next, &default);
        }
        push(&mut ranges, nr, &leaf);
        next = nr + 1; // nr < X32_SYSCALL_BIT: no overflow
    }
    push(&mut ranges, next, &default);
    ranges
}

/// A whole filter: the prologue, then the search over `ranges`.
fn program(arch: Arch, ranges: &[(u32, Leaf)]) -> Vec<sock_filter> {
    let mut prog = Vec::with_capacity(7 + search_len(ranges));
    prog.extend([
        bpf::load(bpf::OFFSET_ARCH),
        bpf::jump(bpf::JEQ, arch.audit_arch(), 1, 0),
        bpf::ret(libc::SECCOMP_RET_KILL_PROCESS),
        bpf::load(bpf::OFFSET_NR),
    ]);
    if arch == Arch::X86_64 {
        // x32 syscalls arrive with AUDIT_ARCH_X86_64 too, their numbers
        // marked by bit 30 (__X32_SYSCALL_BIT). Like libseccomp, kill every
        // number from that bit up, before any other comparison, except -1:
        // not a syscall (the kernel answers ENOSYS), but what a tracer writes
        // to skip one, which must not kill the tracee. -1 then meets the
        // search like any unknown number.
        prog.extend([
            bpf::jump(bpf::JGE, X32_SYSCALL_BIT, 0, 2),
            bpf::jump(bpf::JEQ, u32::MAX, 1, 0),
            bpf::ret(libc::SECCOMP_RET_KILL_PROCESS),
        ]);
    }
    search(ranges, &mut prog);
    prog
}

/// Appends a binary search over `ranges` (the accumulator holds the syscall
/// number), ending in each range's leaf. Each node costs one jump: `jge
/// start` of the upper half falls through into it, otherwise skips it into
/// the lower half. Past 255 instructions (the reach of a conditional jump)
/// the skip goes through an unconditional `ja`. Everything goes into one
/// buffer: the jump's distance comes from [`search_len`], not from emitting
/// the upper half on its own first.
fn search(ranges: &[(u32, Leaf)], out: &mut Vec<sock_filter>) {
    if let [(_, leaf)] = ranges {
        emit_leaf(leaf, out);
        return;
    }
    let (lower, upper) = ranges.split_at(ranges.len() / 2);
    let skip = search_len(upper);
    let start = upper[0].0;
    match u8::try_from(skip) {
        Ok(skip) => out.push(bpf::jump(bpf::JGE, start, 0, skip)),
        Err(_) => {
            out.push(bpf::jump(bpf::JGE, start, 1, 0));
            out.push(bpf::ja(skip as u32)); // <= BPF_MAXINSNS, checked later
        }
    }
    let before = out.len();
    search(upper, out);
    debug_assert_eq!(out.len() - before, skip, "search_len disagrees with search");
    search(lower, out);
}

/// How many instructions [`search`] emits for `ranges`.
fn search_len(ranges: &[(u32, Leaf)]) -> usize {
    if let [(_, leaf)] = ranges {
        return leaf_len(leaf);
    }
    let (lower, upper) = ranges.split_at(ranges.len() / 2);
    let upper = search_len(upper);
    let jump = if upper <= usize::from(u8::MAX) { 1 } else { 2 };
    jump + upper + search_len(lower)
}

/// A leaf: its `ret`, or each check in turn, then `ret ALLOW`. A check is
/// its conditions, each of which jumps to the next check when it fails,
/// then `ret action`.
fn emit_leaf(leaf: &Leaf, out: &mut Vec<sock_filter>) {
    let before = out.len();
    match leaf {
        Leaf::Ret(action) => out.push(bpf::ret(*action)),
        Leaf::Checks(checks) => {
            for c in checks {
                let mut rest = check_len(c);
                for cond in &c.when {
                    rest -= cond_len(cond);
                    emit_cond(cond, rest, out);
                }
                out.push(bpf::ret(c.action));
            }
            out.push(bpf::ret(libc::SECCOMP_RET_ALLOW));
        }
    }
    debug_assert_eq!(out.len() - before, leaf_len(leaf));
}

/// Appends `cond`: it falls through when it holds and otherwise skips the
/// `fail` instructions that follow it (the rest of its check).
fn emit_cond(cond: &Cond, fail: usize, out: &mut Vec<sock_filter>) {
    // compile_with refuses a check longer than a jump reaches.
    let reach = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    out.push(bpf::load(bpf::arg_low(cond.arg)));
    if let Some(mask) = cond.mask {
        out.push(bpf::stmt(bpf::ALU | bpf::AND | bpf::K, mask));
    }
    match &cond.test {
        Test::AnyBit(bits) => out.push(bpf::jump(bpf::JSET, *bits, 0, reach(fail))),
        // Nothing to match: the condition never holds.
        Test::In(values) if values.is_empty() => out.push(bpf::ja(fail as u32)),
        // A match skips the remaining jeqs; no match at the last one fails.
        Test::In(values) => {
            let n = values.len();
            for (i, &v) in values.iter().enumerate() {
                let (jt, jf) = if i + 1 == n {
                    (0, reach(fail))
                } else {
                    (reach(n - 1 - i), 0)
                };
                out.push(bpf::jump(bpf::JEQ, v, jt, jf));
            }
        }
        // A match fails: it skips the remaining jeqs and then `fail`.
        Test::NotIn(values) => {
            let n = values.len();
            for (i, &v) in values.iter().enumerate() {
                out.push(bpf::jump(bpf::JEQ, v, reach(n - 1 - i + fail), 0));
            }
        }
    }
}

fn cond_len(cond: &Cond) -> usize {
    let test = match &cond.test {
        Test::AnyBit(_) => 1,
        Test::In(v) => v.len().max(1),
        Test::NotIn(v) => v.len(),
    };
    1 + usize::from(cond.mask.is_some()) + test
}

/// A check's conditions and its `ret`.
fn check_len(check: &Check) -> usize {
    check.when.iter().map(cond_len).sum::<usize>() + 1
}

/// How many instructions [`emit_leaf`] emits for `leaf`.
fn leaf_len(leaf: &Leaf) -> usize {
    match leaf {
        Leaf::Ret(_) => 1,
        Leaf::Checks(checks) => checks.iter().map(check_len).sum::<usize>() + 1,
    }
}

/// The few classic-BPF encodings used here (`linux/bpf_common.h`), and the
/// layout of `struct seccomp_data`.
mod bpf {
    use libc::sock_filter;

    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;

    pub const W: u16 = 0x00;
    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;

    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;
    pub const A: u16 = 0x10;

    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const MUL: u16 = 0x20;
    pub const DIV: u16 = 0x30;
    pub const OR: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const NEG: u16 = 0x80;
    pub const MOD: u16 = 0x90;
    pub const XOR: u16 = 0xa0;

    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;

    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;

    /// `struct seccomp_data`: `int nr; __u32 arch; __u64 instruction_pointer;
    /// __u64 args[6];`, 64 bytes, in the CPU's byte order. Both supported
    /// architectures are little-endian (big-endian aarch64 has another
    /// AUDIT_ARCH value and is killed), so an argument's low half comes first.
    pub const OFFSET_NR: u32 = 0;
    pub const OFFSET_ARCH: u32 = 4;
    pub const SECCOMP_DATA_LEN: u32 = 64;

    pub const fn arg_low(arg: u8) -> u32 {
        16 + 8 * arg as u32
    }

    pub const fn load(offset: u32) -> sock_filter {
        stmt(LD | W | ABS, offset)
    }

    pub const fn ret(action: u32) -> sock_filter {
        stmt(RET | K, action)
    }

    pub const fn ja(offset: u32) -> sock_filter {
        stmt(JMP | JA, offset)
    }

    /// A conditional jump on the accumulator against `k`.
    pub const fn jump(op: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
        sock_filter {
            code: JMP | op | K,
            jt,
            jf,
            k,
        }
    }

    pub const fn stmt(code: u16, k: u32) -> sock_filter {
        sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }
}

// ---------------------------------------------------------------------------
// Running a program without a kernel.

/// The input of a seccomp filter, as the kernel builds it for each syscall
/// (`struct seccomp_data`, with the number unsigned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// Syscall `nr` of `arch` with `args`.
    pub const fn new(arch: Arch, nr: u32, args: [u64; 6]) -> SeccompData {
        SeccompData {
            nr,
            arch: arch.audit_arch(),
            instruction_pointer: 0,
            args,
        }
    }

    /// The 32-bit word at byte `offset`, as `BPF_LD | BPF_W | BPF_ABS` reads it.
    fn word(&self, offset: u32) -> Option<u32> {
        let half = |v: u64, high: bool| if high { (v >> 32) as u32 } else { v as u32 };
        match offset {
            0 => Some(self.nr),
            4 => Some(self.arch),
            8 | 12 => Some(half(self.instruction_pointer, offset == 12)),
            16..=63 if offset.is_multiple_of(4) => {
                let i = (offset as usize - 16) / 8;
                Some(half(self.args[i], offset % 8 == 4))
            }
            _ => None,
        }
    }
}

/// Runs `prog` on `data` like the kernel's classic-BPF interpreter and
/// returns the seccomp action (e.g. `SECCOMP_RET_ERRNO | EPERM`).
///
/// A program the kernel would refuse to load (an unknown opcode, a load
/// outside `seccomp_data`, a jump past the end, no final `ret`) gets
/// SECCOMP_RET_KILL_PROCESS. Division by zero returns 0, as in the kernel.
pub fn simulate(prog: &[sock_filter], data: &SeccompData) -> u32 {
    use bpf::*;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    while let Some(insn) = prog.get(pc) {
        pc += 1;
        let k = insn.k;
        let class = insn.code & 0x07;
        match class {
            LD | LDX => {
                if insn.code & 0x18 != W {
                    return KILL; // only 32-bit loads are allowed in seccomp
                }
                let value = match insn.code & 0xe0 {
                    IMM => k,
                    LEN => SECCOMP_DATA_LEN,
                    ABS if class == LD => match data.word(k) {
                        Some(v) => v,
                        None => return KILL,
                    },
                    MEM => match mem.get(k as usize) {
                        Some(&v) => v,
                        None => return KILL,
                    },
                    _ => return KILL,
                };
                if class == LD {
                    a = value;
                } else {
                    x = value;
                }
            }
            ST | STX => match mem.get_mut(k as usize) {
                Some(slot) => *slot = if class == ST { a } else { x },
                None => return KILL,
            },
            ALU => {
                let operand = if insn.code & X != 0 { x } else { k };
                a = match insn.code & 0xf0 {
                    ADD => a.wrapping_add(operand),
                    SUB => a.wrapping_sub(operand),
                    MUL => a.wrapping_mul(operand),
                    DIV | MOD if operand == 0 => return 0,
                    DIV => a / operand,
                    MOD => a % operand,
                    OR => a | operand,
                    AND => a & operand,
                    XOR => a ^ operand,
                    LSH => a.checked_shl(operand).unwrap_or(0),
                    RSH => a.checked_shr(operand).unwrap_or(0),
                    NEG => a.wrapping_neg(),
                    _ => return KILL,
                };
            }
            JMP => {
                let operand = if insn.code & X != 0 { x } else { k };
                let taken = match insn.code & 0xf0 {
                    JA => {
                        pc += k as usize;
                        continue;
                    }
                    JEQ => a == operand,
                    JGT => a > operand,
                    JGE => a >= operand,
                    JSET => a & operand != 0,
                    _ => return KILL,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            RET => {
                return match insn.code & 0x18 {
                    K => k,
                    A => a,
                    _ => KILL,
                };
            }
            MISC => match insn.code & 0xf8 {
                TAX => x = a,
                TXA => a = x,
                _ => return KILL,
            },
            _ => return KILL,
        }
    }
    KILL
}

/// Runs filters stacked in install order (`filters[0]` installed first) the
/// way the kernel combines them: every filter runs, the most severe action
/// wins, and between equal actions the most recently installed filter's
/// answer (its errno, say) is the one returned.
pub fn simulate_stack(filters: &[&[sock_filter]], data: &SeccompData) -> u32 {
    let severity = |ret: u32| (ret & libc::SECCOMP_RET_ACTION_FULL) as i32;
    let mut ret = libc::SECCOMP_RET_ALLOW;
    for prog in filters.iter().rev() {
        let cur = simulate(prog, data);
        if severity(cur) < severity(ret) {
            ret = cur;
        }
    }
    ret
}

/// The action `prog` returns for syscall `nr` of `arch` if it doesn't depend
/// on the arguments or the instruction pointer, as the kernel's seccomp action
/// cache (`seccomp_is_const_allow()`) works it out when a filter is installed:
/// it follows the program with only the number and arch known, and gives up
/// (`None`) at the first instruction that reads anything else. The kernel then
/// skips the filter for every number whose constant action is ALLOW.
pub fn constant_action(prog: &[sock_filter], arch: Arch, nr: u32) -> Option<u32> {
    use bpf::*;
    let mut a = 0u32;
    let mut pc = 0usize;
    while let Some(insn) = prog.get(pc) {
        pc += 1;
        let k = insn.k;
        match insn.code {
            c if c == LD | W | ABS => match k {
                OFFSET_NR => a = nr,
                OFFSET_ARCH => a = arch.audit_arch(),
                _ => return None,
            },
            c if c == RET | K => return Some(k),
            c if c == JMP | JA => pc += k as usize,
            c if c == ALU | AND | K => a &= k,
            c if c & 0x07 == JMP && c & X == 0 => {
                let taken = match c & 0xf0 {
                    JEQ => a == k,
                    JGE => a >= k,
                    JGT => a > k,
                    JSET => a & k != 0,
                    _ => return None,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            _ => return None,
        }
    }
    None
}

/// Whether the kernel's action cache sees through `prog` completely: for every
/// syscall number it caches (we check 0..1024, beyond every table), the
/// verdict depends on the number alone. True for filter A by construction,
/// which makes every syscall it allows free; false for filter B, whose
/// argument rules need the arguments of a few syscalls.
pub fn is_cache_friendly(prog: &[sock_filter], arch: Arch) -> bool {
    (0..1024).all(|nr| constant_action(prog, arch, nr).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::{BASELINE_ALLOW, BASELINE_DENY};
    use libc::{SECCOMP_RET_ALLOW as ALLOW, SECCOMP_RET_KILL_PROCESS as KILL};

    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;

    fn numbers(arch: Arch, names: &[&str]) -> Vec<u32> {
        names
            .iter()
            .filter_map(|n| syscalls::number(arch, n))
            .collect()
    }

    fn baseline(arch: Arch, on_violation: OnViolation) -> Filters {
        compile(
            arch,
            &numbers(arch, BASELINE_ALLOW),
            &numbers(arch, BASELINE_DENY),
            on_violation,
        )
        .expect("baseline compiles")
    }

    fn nr(arch: Arch, name: &str) -> u32 {
        syscalls::number(arch, name).unwrap()
    }

    fn call(arch: Arch, name: &str, args: &[u64]) -> SeccompData {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        SeccompData::new(arch, nr(arch, name), a)
    }

    /// Arguments that would trip any rule that looked at them.
    const NASTY_ARGS: [[u64; 6]; 4] = [
        [0; 6],
        [u64::MAX; 6],
        [0x5412, 0x5412, 0x5412, 0x5412, 0x5412, 0x5412],
        [0x1000_0000, 17, 40, 0x40_0000, 0xdead_0000_541c, 1],
    ];

    /// Every program the compiler can make from the baseline (so every
    /// built-in profile's), for every architecture, violation action and
    /// combination of argument rules, digested: a refactoring of the
    /// compiler must leave the programs byte for byte as they were. Change
    /// the digest only with a change of the programs that is meant.
    #[test]
    fn compiled_programs_are_pinned() {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut programs = 0;
        for arch in Arch::ALL {
            for ov in [OnViolation::Errno, OnViolation::Kill, OnViolation::Log] {
                for families in [
                    DEFAULT_SOCKET_FAMILIES.to_vec(),
                    vec![38, 1, 17, 2, 10, 16, 2],
                ] {
                    for tcp_port_rules in [false, true] {
                        for file_size_limit in [false, true] {
                            for memfd in
                                [Memfd::Unrestricted, Memfd::NoExecFlag, Memfd::Unavailable]
                            {
                                let rules = Rules {
                                    socket_families: families.clone(),
                                    tcp_port_rules,
                                    file_size_limit,
                                    memfd,
                                };
                                let f = with_rules(arch, ov, &rules);
                                for prog in [&f.allowlist, &f.denylist] {
                                    programs += 1;
                                    h.update((prog.len() as u32).to_le_bytes());
                                    for i in prog.iter() {
                                        h.update(i.code.to_le_bytes());
                                        h.update([i.jt, i.jf]);
                                        h.update(i.k.to_le_bytes());
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(programs, 288);
        assert_eq!(
            digest,
            "4120bb04cda91bbf9465a1941d20a2db54b51d907927c4ff46557b66f93eee26"
        );
    }

    #[test]
    fn baseline_sizes() {
        for arch in Arch::ALL {
            let f = baseline(arch, OnViolation::Errno);
            println!(
                "{arch}: A has {} instructions, B has {}",
                f.allowlist.len(),
                f.denylist.len()
            );
            assert!(f.allowlist.len() < 400 && f.denylist.len() < 200, "{f:?}");
        }
    }

    #[test]
    fn allowlist_allows_exactly_its_numbers_whatever_the_arguments() {
        for arch in Arch::ALL {
            let allow = numbers(arch, BASELINE_ALLOW);
            let f = baseline(arch, OnViolation::Errno);
            assert!(is_cache_friendly(&f.allowlist, arch));
            for nr in 0..1024 {
                let want = if allow.contains(&nr) {
                    ALLOW
                } else {
                    RET_ENOSYS
                };
                assert_eq!(
                    constant_action(&f.allowlist, arch, nr),
                    Some(want),
                    "{arch} {nr}"
                );
                for args in NASTY_ARGS {
                    let d = SeccompData::new(arch, nr, args);
                    assert_eq!(simulate(&f.allowlist, &d), want, "{arch} {nr}");
                }
            }
        }
    }

    #[test]
    fn clone3_and_unknown_numbers_get_enosys() {
        for arch in Arch::ALL {
            let f = baseline(arch, OnViolation::Kill);
            let stack = [&f.allowlist[..], &f.denylist[..]];
            for d in [
                call(arch, "clone3", &[]),
                SeccompData::new(arch, 1000, [0; 6]),
                SeccompData::new(arch, 0x3fff_ffff, [0; 6]),
            ] {
                assert_eq!(simulate(&f.allowlist, &d), RET_ENOSYS);
                assert_eq!(simulate_stack(&stack, &d), RET_ENOSYS, "{d:?}");
            }
            // B keeps clone3 at ENOSYS even when the allowlist lists it.
            let mut allow = numbers(arch, BASELINE_ALLOW);
            allow.push(nr(arch, "clone3"));
            let f = compile(arch, &allow, &[], OnViolation::Errno).unwrap();
            let d = call(arch, "clone3", &[]);
            assert_eq!(simulate(&f.allowlist, &d), ALLOW);
            assert_eq!(simulate(&f.denylist, &d), RET_ENOSYS);
        }
    }

    #[test]
    fn denylist_answers_the_violation_action() {
        for arch in Arch::ALL {
            for ov in [OnViolation::Errno, OnViolation::Kill, OnViolation::Log] {
                let f = baseline(arch, ov);
                for name in BASELINE_DENY {
                    let Some(n) = syscalls::number(arch, name) else {
                        continue;
                    };
                    for args in NASTY_ARGS {
                        let d = SeccompData::new(arch, n, args);
                        assert_eq!(simulate(&f.denylist, &d), ov.action(), "{arch} {name}");
                    }
                }
            }
            // Stacked, B's EPERM overrides A's ENOSYS, and a kill stays a kill.
            let f = baseline(arch, OnViolation::Errno);
            let stack = [&f.allowlist[..], &f.denylist[..]];
            assert_eq!(simulate_stack(&stack, &call(arch, "ptrace", &[0])), EPERM);
            let f = baseline(arch, OnViolation::Kill);
            let stack = [&f.allowlist[..], &f.denylist[..]];
            assert_eq!(simulate_stack(&stack, &call(arch, "bpf", &[0])), KILL);
        }
    }

    #[test]
    fn denylist_leaves_everything_else_to_the_cache() {
        // Only the syscalls with argument rules need the filter to run; the
        // hot ones (read, write, sendto, recvfrom, ...) stay with the cache
        // unless a plan's own rules take them (host mode's port rules).
        const BASE: [&str; 5] = ["ioctl", "clone", "socket", "socketpair", "personality"];
        let cases: [(Rules, &[&str]); 5] = [
            (Rules::default(), &BASE),
            (
                Rules {
                    memfd: Memfd::NoExecFlag,
                    ..Rules::default()
                },
                &["memfd_create"],
            ),
            (
                Rules {
                    tcp_port_rules: true,
                    ..Rules::default()
                },
                &["sendto", "sendmsg", "sendmmsg"],
            ),
            (
                Rules {
                    file_size_limit: true,
                    ..Rules::default()
                },
                &["fallocate"],
            ),
            (
                Rules {
                    memfd: Memfd::Unavailable,
                    ..Rules::default()
                },
                &[],
            ),
        ];
        for arch in Arch::ALL {
            for (rules, extra) in &cases {
                let f = compile_with(
                    arch,
                    &numbers(arch, BASELINE_ALLOW),
                    &numbers(arch, BASELINE_DENY),
                    OnViolation::Errno,
                    rules,
                )
                .unwrap();
                let deny = numbers(arch, BASELINE_DENY);
                let mut with_args = numbers(arch, &BASE);
                with_args.extend(numbers(arch, extra));
                let clone3 = nr(arch, "clone3");
                let memfd = nr(arch, "memfd_create");
                assert!(!is_cache_friendly(&f.denylist, arch));
                for n in 0..1024 {
                    let want = if with_args.contains(&n) {
                        None
                    } else if deny.contains(&n) {
                        Some(EPERM)
                    } else if n == clone3 || (n == memfd && rules.memfd == Memfd::Unavailable) {
                        Some(RET_ENOSYS)
                    } else {
                        Some(ALLOW)
                    };
                    assert_eq!(
                        constant_action(&f.denylist, arch, n),
                        want,
                        "{arch} {n} {rules:?}"
                    );
                }
                for hot in ["read", "write", "recvfrom", "openat", "futex", "mmap"] {
                    assert_eq!(
                        constant_action(&f.denylist, arch, nr(arch, hot)),
                        Some(ALLOW),
                        "{hot}"
                    );
                }
                if !rules.tcp_port_rules {
                    for n in ["sendto", "sendmsg", "sendmmsg"] {
                        assert_eq!(constant_action(&f.denylist, arch, nr(arch, n)), Some(ALLOW));
                    }
                }
            }
        }
    }

    fn with_rules(arch: Arch, ov: OnViolation, rules: &Rules) -> Filters {
        compile_with(
            arch,
            &numbers(arch, BASELINE_ALLOW),
            &numbers(arch, BASELINE_DENY),
            ov,
            rules,
        )
        .unwrap()
    }

    const EACCES: u32 = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
    const EOPNOTSUPP: u32 = libc::SECCOMP_RET_ERRNO | libc::EOPNOTSUPP as u32;
    const EPROTONOSUPPORT: u32 = libc::SECCOMP_RET_ERRNO | libc::EPROTONOSUPPORT as u32;

    #[test]
    fn socket_families_are_an_allowlist() {
        const SOCK_NONBLOCK_CLOEXEC: u64 = 0o4000 | 0o2000000;
        for arch in Arch::ALL {
            for ov in [OnViolation::Errno, OnViolation::Kill] {
                let deny = ov.action();
                let f = baseline(arch, ov);
                let b = |name: &str, args: &[u64]| simulate(&f.denylist, &call(arch, name, args));
                for family in [1, 2, 10, 16] {
                    assert_eq!(b("socket", &[family, 1 | SOCK_NONBLOCK_CLOEXEC, 0]), ALLOW);
                }
                // Everything else, AF_UNSPEC and numbers past AF_MAX included.
                for family in (0..64).filter(|f| ![1, 2, 10, 16].contains(f)) {
                    assert_eq!(b("socket", &[family, 1, 0]), deny, "{family}");
                    assert_eq!(b("socketpair", &[family, 1, 0, 0]), deny, "{family}");
                }
                // Only the low 32 bits count, as for the kernel's int.
                assert_eq!(b("socket", &[0x1_0000_0001, 1, 0]), ALLOW);
                assert_eq!(b("socket", &[0x1_0000_0026, 5, 0]), deny); // AF_ALG
                assert_eq!(b("socketpair", &[1, 1, 0, 0]), ALLOW);
                // Outside socket and socketpair nothing changes.
                assert_eq!(b("connect", &[38, 0, 0]), ALLOW);
            }
            // Added families open; the list may be long.
            let all: Vec<u32> = (1..46).collect();
            let f = with_rules(
                arch,
                OnViolation::Errno,
                &Rules {
                    socket_families: all,
                    ..Rules::default()
                },
            );
            for family in 1..46 {
                let d = call(arch, "socket", &[family, 5, 0]);
                assert_eq!(simulate(&f.denylist, &d), ALLOW, "{family}");
            }
            assert_eq!(
                simulate(&f.denylist, &call(arch, "socket", &[46, 5, 0])),
                EPERM
            );
        }
    }

    #[test]
    fn tcp_port_rules_refuse_what_landlock_doesnt_see() {
        const NB_CLOEXEC: u64 = 0o4000 | 0o2000000;
        let rules = Rules {
            tcp_port_rules: true,
            ..Rules::default()
        };
        for arch in Arch::ALL {
            for ov in [OnViolation::Errno, OnViolation::Kill, OnViolation::Log] {
                let f = with_rules(arch, ov, &rules);
                let b = |name: &str, args: &[u64]| simulate(&f.denylist, &call(arch, name, args));
                for family in [2, 10] {
                    // TCP, UDP, ping, raw: the kernel's or Landlock's business.
                    for (ty, proto) in [
                        (1, 0),
                        (1, 6),
                        (2, 0),
                        (2, 17),
                        (2, 1),
                        (2, 58),
                        (3, 1),
                        (3, 255),
                    ] {
                        assert_eq!(
                            b("socket", &[family, ty | NB_CLOEXEC, proto]),
                            ALLOW,
                            "{ty} {proto}"
                        );
                    }
                    // MPTCP, SCTP, SMC over a stream socket; SCTP's
                    // seqpacket, DCCP: not built in, as far as the agent sees.
                    for (ty, proto) in [
                        (1, 262),
                        (1, 132),
                        (1, 256),
                        (5, 132),
                        (5, 0),
                        (6, 33),
                        (10, 0),
                    ] {
                        assert_eq!(
                            b("socket", &[family, ty | NB_CLOEXEC, proto]),
                            EPROTONOSUPPORT,
                            "{family} {ty} {proto}"
                        );
                    }
                    assert_eq!(b("socket", &[family, 1, 0x1_0000_0006]), ALLOW);
                }
                // Other families keep their own protocols.
                assert_eq!(b("socket", &[16, 3, 262]), ALLOW);
                assert_eq!(b("socket", &[1, 5, 0]), ALLOW);
                assert_eq!(b("socket", &[17, 1, 262]), ov.action());
                // Fast Open, however the flags are combined.
                let fastopen = 0x2000_0000;
                for flags in [
                    fastopen,
                    fastopen | 0x4000,
                    0xffff_ffff,
                    0xdead_0000_2000_0000,
                ] {
                    assert_eq!(
                        b("sendto", &[3, 0, 2, flags, 0, 0]),
                        EOPNOTSUPP,
                        "{flags:#x}"
                    );
                    assert_eq!(b("sendmsg", &[3, 0, flags]), EOPNOTSUPP);
                    assert_eq!(b("sendmmsg", &[3, 0, 1, flags]), EOPNOTSUPP);
                }
                for flags in [0, 0x4000, 0x40, 0x1_0000_0000] {
                    assert_eq!(b("sendto", &[3, 0, 2, flags, 0, 0]), ALLOW);
                    assert_eq!(b("sendmsg", &[3, 0, flags]), ALLOW);
                    assert_eq!(b("sendmmsg", &[3, 0, 1, flags]), ALLOW);
                }
                // Arguments in the other places don't matter.
                assert_eq!(b("sendto", &[fastopen, fastopen, fastopen, 0, 0, 0]), ALLOW);
            }
            // Without port rules none of this is there.
            let f = baseline(arch, OnViolation::Errno);
            let b = |name: &str, args: &[u64]| simulate(&f.denylist, &call(arch, name, args));
            assert_eq!(b("socket", &[2, 1, 262]), ALLOW);
            assert_eq!(b("sendto", &[3, 0, 2, 0x2000_0000, 0, 0]), ALLOW);
        }
    }

    #[test]
    fn fallocate_keeps_within_the_file_size_limit() {
        let rules = Rules {
            file_size_limit: true,
            ..Rules::default()
        };
        for arch in Arch::ALL {
            let f = with_rules(arch, OnViolation::Kill, &rules);
            let b = |mode: u64| {
                simulate(
                    &f.denylist,
                    &call(arch, "fallocate", &[3, mode, 0, 1 << 30]),
                )
            };
            for mode in [0, 3, 8, 0x10, 0x40, 0x80, 0x1_0000_0000] {
                assert_eq!(b(mode), ALLOW, "{mode:#x}");
            }
            // KEEP_SIZE alone, with ZERO_RANGE or UNSHARE_RANGE; INSERT_RANGE;
            // unknown bits.
            for mode in [1, 0x11, 0x41, 0x20, 0x21, 0x100, 0xffff_ffff] {
                assert_eq!(b(mode), EOPNOTSUPP, "{mode:#x}");
            }
            let f = baseline(arch, OnViolation::Kill);
            let d = call(arch, "fallocate", &[3, 1, 0, 1 << 30]);
            assert_eq!(simulate(&f.denylist, &d), ALLOW);
        }
    }

    #[test]
    fn memfd_rules() {
        for arch in Arch::ALL {
            let f = with_rules(
                arch,
                OnViolation::Kill,
                &Rules {
                    memfd: Memfd::NoExecFlag,
                    ..Rules::default()
                },
            );
            let b = |flags: u64| simulate(&f.denylist, &call(arch, "memfd_create", &[0, flags]));
            // MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB, MFD_NOEXEC_SEAL.
            for flags in [0, 1, 2, 3, 4, 8, 9, 0x1_0000_0000] {
                assert_eq!(b(flags), ALLOW, "{flags:#x}");
            }
            for flags in [0x10, 0x11, 0x13, 0xffff_ffff, 0x1_0000_0010] {
                assert_eq!(b(flags), EACCES, "{flags:#x}");
            }
            let f = with_rules(
                arch,
                OnViolation::Errno,
                &Rules {
                    memfd: Memfd::Unavailable,
                    ..Rules::default()
                },
            );
            let stack = [&f.allowlist[..], &f.denylist[..]];
            let d = call(arch, "memfd_create", &[0, 1]);
            assert_eq!(simulate_stack(&stack, &d), RET_ENOSYS);
            // Unrestricted: no rule.
            let f = baseline(arch, OnViolation::Errno);
            let d = call(arch, "memfd_create", &[0, 0x10]);
            assert_eq!(simulate(&f.denylist, &d), ALLOW);
        }
    }

    #[test]
    fn empty_value_lists() {
        let arch = Arch::native();
        // No family at all: every socket is refused.
        let f = with_rules(
            arch,
            OnViolation::Errno,
            &Rules {
                socket_families: vec![],
                ..Rules::default()
            },
        );
        for family in [0, 1, 2, 10, 16, 17] {
            let d = call(arch, "socket", &[family, 1, 0]);
            assert_eq!(simulate(&f.denylist, &d), EPERM, "{family}");
        }
        // An `In` with nothing to match never holds.
        let leaf = Leaf::Checks(vec![Check {
            when: vec![Cond::is(0, Test::In(vec![]))],
            action: EPERM,
        }]);
        let prog = program(arch, &partition([(0, leaf)], Leaf::Ret(ALLOW)));
        for a in [0, 1, u64::MAX] {
            assert_eq!(simulate(&prog, &SeccompData::new(arch, 0, [a; 6])), ALLOW);
        }
    }

    #[test]
    fn a_deny_entry_replaces_an_argument_rule() {
        let arch = Arch::native();
        let rules = Rules {
            memfd: Memfd::NoExecFlag,
            tcp_port_rules: true,
            ..Rules::default()
        };
        let deny = numbers(arch, &["memfd_create", "sendto"]);
        let f = compile_with(arch, &[], &deny, OnViolation::Errno, &rules).unwrap();
        assert_eq!(
            simulate(&f.denylist, &call(arch, "memfd_create", &[0, 0])),
            EPERM
        );
        assert_eq!(
            simulate(&f.denylist, &call(arch, "sendto", &[0, 0, 0, 0])),
            EPERM
        );
    }

    #[test]
    fn argument_rules() {
        const CLONE_VM: u64 = 0x100;
        const CLONE_FS: u64 = 0x200;
        const CLONE_FILES: u64 = 0x400;
        const CLONE_SIGHAND: u64 = 0x800;
        const CLONE_THREAD: u64 = 0x10000;
        const CLONE_SYSVSEM: u64 = 0x40000;
        const CLONE_SETTLS: u64 = 0x80000;
        const CLONE_PARENT_SETTID: u64 = 0x100000;
        const CLONE_CHILD_CLEARTID: u64 = 0x200000;
        const CLONE_VFORK: u64 = 0x4000;
        const SIGCHLD: u64 = 17;
        const THREAD: u64 = CLONE_VM
            | CLONE_FS
            | CLONE_FILES
            | CLONE_SIGHAND
            | CLONE_THREAD
            | CLONE_SYSVSEM
            | CLONE_SETTLS
            | CLONE_PARENT_SETTID
            | CLONE_CHILD_CLEARTID;
        const TCGETS: u64 = 0x5401;
        const TIOCSWINSZ: u64 = 0x5414;
        const FIONREAD: u64 = 0x541b;

        for arch in Arch::ALL {
            for ov in [OnViolation::Errno, OnViolation::Kill, OnViolation::Log] {
                let f = baseline(arch, ov);
                let deny = ov.action();
                let b = |name: &str, args: &[u64]| simulate(&f.denylist, &call(arch, name, args));
                let a = |name: &str, args: &[u64]| simulate(&f.allowlist, &call(arch, name, args));

                assert_eq!(b("ioctl", &[0, 0x5412]), deny);
                assert_eq!(b("ioctl", &[0, 0xdead_0000_5412]), deny);
                assert_eq!(b("ioctl", &[7, 0x541c, 0]), deny);
                assert_eq!(b("ioctl", &[0, 0x1_0000_541c]), deny);
                for ok in [TCGETS, TIOCSWINSZ, FIONREAD, 0x5412_0000, 0x5413] {
                    assert_eq!(b("ioctl", &[0, ok]), ALLOW, "{ok:#x}");
                }
                assert_eq!(a("ioctl", &[0, 0x5412]), ALLOW);

                assert_eq!(b("clone", &[0x1000_0000]), deny); // CLONE_NEWUSER
                assert_eq!(b("clone", &[0x2000_0000 | SIGCHLD]), deny); // CLONE_NEWPID
                assert_eq!(b("clone", &[0x4000_0000 | THREAD]), deny); // CLONE_NEWNET
                assert_eq!(b("clone", &[0x0002_0000]), deny); // CLONE_NEWNS
                assert_eq!(b("clone", &[0x0200_0000]), deny); // CLONE_NEWCGROUP
                assert_eq!(b("clone", &[0x0400_0000]), deny); // CLONE_NEWUTS
                assert_eq!(b("clone", &[0x0800_0000]), deny); // CLONE_NEWIPC
                assert_eq!(b("clone", &[0xffff_ffff_1000_0000]), deny);
                assert_eq!(b("clone", &[THREAD]), ALLOW);
                assert_eq!(b("clone", &[SIGCHLD]), ALLOW);
                assert_eq!(b("clone", &[CLONE_VM | CLONE_VFORK | SIGCHLD]), ALLOW);

                assert_eq!(b("socket", &[17, 3, 0]), deny); // AF_PACKET
                assert_eq!(b("socket", &[40, 1, 0]), deny); // AF_VSOCK
                assert_eq!(b("socket", &[0x1_0000_0011, 3, 0]), deny);
                for family in [1, 2, 10, 16] {
                    // AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
                    assert_eq!(b("socket", &[family, 1, 0]), ALLOW, "{family}");
                }

                assert_eq!(b("personality", &[0]), ALLOW);
                assert_eq!(b("personality", &[0xffff_ffff]), ALLOW);
                assert_eq!(b("personality", &[0x0040_0000]), deny); // ADDR_NO_RANDOMIZE
                assert_eq!(b("personality", &[0x0400_0000]), deny); // READ_IMPLIES_EXEC
                assert_eq!(b("personality", &[0x0008]), deny); // PER_LINUX32
            }
        }
    }

    #[test]
    fn foreign_architectures_and_x32_are_killed() {
        for arch in Arch::ALL {
            let f = baseline(arch, OnViolation::Errno);
            let other = match arch {
                Arch::X86_64 => Arch::Aarch64,
                Arch::Aarch64 => Arch::X86_64,
            };
            for prog in [&f.allowlist, &f.denylist] {
                for n in [0, nr(arch, "read"), nr(arch, "ptrace"), 1000] {
                    for foreign in [AUDIT_ARCH_I386, other.audit_arch(), 0] {
                        let d = SeccompData {
                            arch: foreign,
                            ..SeccompData::new(arch, n, [0; 6])
                        };
                        assert_eq!(simulate(prog, &d), KILL, "{arch} {foreign:#x} {n}");
                    }
                }
            }
        }
        let x86 = Arch::X86_64;
        let f = baseline(x86, OnViolation::Errno);
        for prog in [&f.allowlist, &f.denylist] {
            for n in [
                0x4000_0000,
                0x4000_0000 | 1,
                0x4000_0000 | 514,
                0x7fff_ffff,
                0x8000_0000,
                u32::MAX - 1,
            ] {
                let d = SeccompData::new(x86, n, [0; 6]);
                assert_eq!(simulate(prog, &d), KILL, "{n:#x}");
                assert_eq!(constant_action(prog, x86, n), Some(KILL));
            }
            // -1 is not x32: what a tracer writes to skip a syscall.
            let skipped = SeccompData::new(x86, u32::MAX, [0; 6]);
            assert_ne!(simulate(prog, &skipped), KILL);
        }
        let skipped = SeccompData::new(x86, u32::MAX, [0; 6]);
        assert_eq!(simulate(&f.allowlist, &skipped), RET_ENOSYS);
        assert_eq!(simulate(&f.denylist, &skipped), ALLOW);
        // aarch64 has no x32: a large number is just unknown.
        let f = baseline(Arch::Aarch64, OnViolation::Errno);
        let d = SeccompData::new(Arch::Aarch64, 0x4000_0000, [0; 6]);
        assert_eq!(simulate(&f.allowlist, &d), RET_ENOSYS);
    }

    #[test]
    fn the_x32_guard_comes_before_any_number_comparison() {
        use bpf::*;
        let f = baseline(Arch::X86_64, OnViolation::Errno);
        let prologue = [
            load(OFFSET_ARCH),
            jump(JEQ, 0xc000_003e, 1, 0),
            ret(KILL),
            load(OFFSET_NR),
            jump(JGE, 0x4000_0000, 0, 2),
            jump(JEQ, 0xffff_ffff, 1, 0),
            ret(KILL),
        ];
        for prog in [&f.allowlist, &f.denylist] {
            for (got, want) in prog.iter().zip(&prologue) {
                assert_eq!(got, want);
            }
        }
        // aarch64: the arch check, then straight to the search.
        let f = baseline(Arch::Aarch64, OnViolation::Errno);
        assert_eq!(f.allowlist[1], jump(JEQ, 0xc000_00b7, 1, 0));
        assert_eq!(f.allowlist[3], load(OFFSET_NR));
        assert_ne!(f.allowlist[4].k, 0x4000_0000);
    }

    #[test]
    fn a_number_in_both_lists_is_denied() {
        let arch = Arch::native();
        let read = nr(arch, "read");
        let f = compile(arch, &[read], &[read], OnViolation::Errno).unwrap();
        let stack = [&f.allowlist[..], &f.denylist[..]];
        assert_eq!(simulate_stack(&stack, &call(arch, "read", &[])), EPERM);
    }

    #[test]
    fn a_denied_ioctl_loses_its_argument_rule() {
        let arch = Arch::native();
        let ioctl = nr(arch, "ioctl");
        let f = compile(arch, &[ioctl], &[ioctl], OnViolation::Errno).unwrap();
        assert_eq!(
            simulate(&f.denylist, &call(arch, "ioctl", &[0, 0x5401])),
            EPERM
        );
    }

    #[test]
    fn far_jumps_are_used_for_large_programs() {
        // Every other number: ~1000 ranges, a search tree far wider than a
        // conditional jump reaches.
        for arch in Arch::ALL {
            let allow: Vec<u32> = (0..1000).step_by(2).collect();
            let f = compile(arch, &allow, &[], OnViolation::Errno).unwrap();
            assert!(f.allowlist.iter().any(|i| i.code == bpf::JMP | bpf::JA));
            for n in 0..1100 {
                let want = if n < 1000 && n % 2 == 0 {
                    ALLOW
                } else {
                    RET_ENOSYS
                };
                let d = SeccompData::new(arch, n, [0; 6]);
                assert_eq!(simulate(&f.allowlist, &d), want, "{n}");
                assert_eq!(constant_action(&f.allowlist, arch, n), Some(want));
            }
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let arch = Arch::X86_64;
        assert!(matches!(
            compile(arch, &[0x4000_0001], &[], OnViolation::Errno),
            Err(SeccompError::NumberOutOfRange {
                nr: 0x4000_0001,
                ..
            })
        ));
        assert!(matches!(
            compile(arch, &[], &[u32::MAX], OnViolation::Errno),
            Err(SeccompError::NumberOutOfRange { .. })
        ));
        let too_many: Vec<u32> = (0..6000).step_by(2).collect();
        let err = compile(arch, &too_many, &[], OnViolation::Errno).unwrap_err();
        assert!(matches!(
            err,
            SeccompError::TooLong {
                filter: "allowlist",
                ..
            }
        ));
        assert!(err.to_string().contains("4096"), "{err}");
    }

    #[test]
    fn empty_lists_still_guard_the_architecture() {
        let arch = Arch::native();
        let f = compile(arch, &[], &[], OnViolation::Errno).unwrap();
        let d = call(arch, "read", &[]);
        assert_eq!(simulate(&f.allowlist, &d), RET_ENOSYS);
        assert_eq!(simulate(&f.denylist, &d), ALLOW);
        assert_eq!(
            simulate(&f.denylist, &call(arch, "ioctl", &[0, 0x5412])),
            EPERM
        );
    }

    #[test]
    fn simulator_follows_classic_bpf() {
        use bpf::*;
        let d = SeccompData {
            nr: 7,
            arch: 0xc000_003e,
            instruction_pointer: 0x1111_2222_3333_4444,
            args: [0xaaaa_bbbb_cccc_dddd, 0, 0, 0, 0, 0x0123_4567_89ab_cdef],
        };
        let run = |p: &[sock_filter]| simulate(p, &d);
        // Loads of each half; RET A.
        assert_eq!(run(&[load(16), stmt(RET | A, 0)]), 0xcccc_dddd);
        assert_eq!(run(&[load(20), stmt(RET | A, 0)]), 0xaaaa_bbbb);
        assert_eq!(run(&[load(12), stmt(RET | A, 0)]), 0x1111_2222);
        assert_eq!(run(&[load(60), stmt(RET | A, 0)]), 0x0123_4567);
        // Out of range or unaligned loads, falling off the end: refused.
        assert_eq!(run(&[load(64), ret(0)]), KILL);
        assert_eq!(run(&[load(2), ret(0)]), KILL);
        assert_eq!(run(&[load(0)]), KILL);
        // ALU, X register, scratch memory.
        let p = [
            load(0),                  // A = 7
            stmt(ALU | MUL | K, 6),   // A = 42
            stmt(MISC | TAX, 0),      // X = 42
            stmt(LD | IMM, 100),      // A = 100
            stmt(ALU | SUB | X, 0),   // A = 58
            stmt(ST, 3),              // M[3] = 58
            stmt(LD | IMM, 0),        // A = 0
            stmt(LD | MEM, 3),        // A = 58
            stmt(ALU | AND | K, 0xf), // A = 10
            stmt(RET | A, 0),
        ];
        assert_eq!(run(&p), 10);
        assert_eq!(run(&[stmt(LD | IMM, 1), stmt(ALU | DIV | X, 0), ret(5)]), 0);
        // Jumps: taken, not taken, JA.
        let p = [
            load(0),
            jump(JGT, 6, 0, 3),      // 7 > 6: falls through
            jump(JSET, 0b100, 0, 1), // 7 & 4: falls through
            ja(1),                   // skips ret(1)
            ret(1),
            ret(2),
        ];
        assert_eq!(run(&p), 2);
        assert_eq!(run(&[ja(5), ret(1)]), KILL);
        assert_eq!(run(&[stmt(0xff, 0), ret(1)]), KILL);
    }

    /// The filters, installed for real in a forked child, do what the
    /// simulator says: clone3 gets ENOSYS, ptrace and a TIOCSTI with high
    /// bits set get EPERM, an ordinary ioctl and getpid go through.
    #[test]
    fn installed_filters_hold_on_the_running_kernel() {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};

        // SAFETY: PR_GET_SECCOMP only reads the calling thread's mode.
        if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } < 0 {
            assert!(
                std::env::var_os("CONFINE_REQUIRE_KERNEL").is_none(),
                "this kernel has no seccomp"
            );
            eprintln!("skipped: this kernel has no seccomp");
            return;
        }
        let arch = Arch::native();
        let filters = baseline(arch, OnViolation::Errno);

        // SAFETY: the test harness is multithreaded; the child only makes raw
        // syscalls on data prepared before the fork (no allocation, no locks)
        // and leaves with _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let code = confined_child(&filters);
                // SAFETY: _exit ends the child without running the parent's
                // atexit handlers or unwinding into the harness.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let status = waitpid(child, None).expect("waitpid");
                let why = match status {
                    WaitStatus::Exited(_, 0) => return,
                    WaitStatus::Exited(_, 10) => "PR_SET_NO_NEW_PRIVS failed",
                    WaitStatus::Exited(_, 11) => "installing the allowlist failed",
                    WaitStatus::Exited(_, 12) => "installing the denylist failed",
                    WaitStatus::Exited(_, 13) => "clone3 did not fail with ENOSYS",
                    WaitStatus::Exited(_, 14) => "ptrace did not fail with EPERM",
                    WaitStatus::Exited(_, 15) => "ioctl(TIOCSTI | 1 << 32) did not fail with EPERM",
                    WaitStatus::Exited(_, 16) => "ioctl(TCGETS) was not let through",
                    WaitStatus::Exited(_, 17) => "getpid failed",
                    WaitStatus::Exited(_, 18) => "an unknown syscall did not fail with ENOSYS",
                    _ => "the child did not exit normally",
                };
                panic!("{why}: {status:?}");
            }
        }
    }

    /// Runs in the forked child: installs both filters and probes them. Every
    /// probe is harmless whether or not the filter works: ioctl goes to fd -1
    /// (without the filter, EBADF, never a keystroke; it also can't be
    /// confused with the EPERM TIOCSTI gives for a foreign terminal), clone3
    /// gets no arguments (EINVAL without the filter).
    fn confined_child(f: &Filters) -> i32 {
        fn errno() -> i32 {
            io::Error::last_os_error().raw_os_error().unwrap_or(0)
        }
        let fails_with = |rc: libc::c_long, e: i32| rc == -1 && errno() == e;
        const BAD_FD: libc::c_long = -1;
        const TIOCSTI_HIGH_BITS: libc::c_long = 0x5412 | 1 << 32;

        // SAFETY: sets a flag on this (child) process only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return 10;
        }
        if install(&f.allowlist, false).is_err() {
            return 11;
        }
        if install(&f.denylist, false).is_err() {
            return 12;
        }
        // SAFETY: clone3(NULL, 0) creates nothing: with the filter it never
        // reaches the kernel, without it the size 0 is EINVAL.
        let rc = unsafe { libc::syscall(libc::SYS_clone3, 0 as libc::c_long, 0 as libc::c_long) };
        if !fails_with(rc, libc::ENOSYS) {
            return 13;
        }
        // SAFETY: PTRACE_TRACEME takes no pointers; the filter refuses it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_ptrace,
                libc::PTRACE_TRACEME as libc::c_long,
                0 as libc::c_long,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        };
        if !fails_with(rc, libc::EPERM) {
            return 14;
        }
        // A raw syscall, so that the request keeps its high bits.
        // SAFETY: fd -1 is never open; the argument pointer is never read.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_ioctl,
                BAD_FD,
                TIOCSTI_HIGH_BITS,
                0 as libc::c_long,
            )
        };
        if !fails_with(rc, libc::EPERM) {
            return 15;
        }
        // SAFETY: as above; TCGETS on fd -1 fails with EBADF in the kernel.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_ioctl,
                BAD_FD,
                libc::TCGETS as libc::c_long,
                0 as libc::c_long,
            )
        };
        if !fails_with(rc, libc::EBADF) {
            return 16;
        }
        // SAFETY: getpid has no arguments.
        if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
            return 17;
        }
        // SAFETY: no syscall has number 1000.
        let rc = unsafe { libc::syscall(1000) };
        if !fails_with(rc, libc::ENOSYS) {
            return 18;
        }
        0
    }
}
