//! Our own table of syscall numbers, and the baseline seccomp policy as data.
//!
//! Profiles name syscalls; the kernel filters numbers. This module is where
//! one becomes the other, for every architecture confine supports. It does not
//! lean on seccompiler's table or on libc's `SYS_*` constants: both lag the
//! kernel, and a profile naming a syscall newer than them (`mseal`,
//! `setxattrat`, `file_setattr`, ...) must still work. The tables below are
//! transcribed from the kernel (Linux 6.18, plus `listns` from 6.19):
//!
//! - x86_64: `arch/x86/entry/syscalls/syscall_64.tbl`, the `common` and `64`
//!   entries (not the `x32` ones, numbered from 512 and only reachable with the
//!   x32 bit set, which the filters kill);
//! - aarch64: the generic table (`include/uapi/asm-generic/unistd.h`, now
//!   `scripts/syscall.tbl`) with the ABIs arm64 selects: `common`, `64`,
//!   `renameat`, `rlimit` and `memfd_secret`.
//!
//! A unit test checks every number against libc's `SYS_*` on the host
//! architecture wherever libc has the name.
//!
//! The baseline policy ([`BASELINE_ALLOW`], [`BASELINE_DENY`]) is plain data
//! here, by name; `plan/seccomp.rs` resolves it for the target architecture and
//! `sandbox::seccomp` compiles it. DESIGN.md §5 is the contract.

use std::cmp::Ordering;
use std::fmt;

/// A CPU architecture confine can build seccomp filters for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "aarch64")]
    Aarch64,
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("confine supports x86_64 and aarch64 only");

impl Arch {
    /// The architecture this binary was built for, which is the one the
    /// sandboxed program's syscalls arrive as (a foreign one is killed).
    pub const fn native() -> Arch {
        #[cfg(target_arch = "x86_64")]
        {
            Arch::X86_64
        }
        #[cfg(target_arch = "aarch64")]
        {
            Arch::Aarch64
        }
    }

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch` for a
    /// native syscall of this architecture.
    pub(crate) const fn audit_arch(self) -> u32 {
        match self {
            // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
            Arch::X86_64 => 0xc000_003e,
            // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
            Arch::Aarch64 => 0xc000_00b7,
        }
    }

    /// The name used in messages and in `explain`.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Every supported architecture.
    pub(crate) const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `(name, number)` table of `arch`, sorted by number.
pub(crate) fn table(arch: Arch) -> &'static [(&'static str, u32)] {
    match arch {
        Arch::X86_64 => X86_64,
        Arch::Aarch64 => AARCH64,
    }
}

/// The same table sorted by name, for lookups by name and for listing
/// syscalls in name order without sorting at run time.
pub(crate) fn table_by_name(arch: Arch) -> &'static [(&'static str, u32)] {
    match arch {
        Arch::X86_64 => &X86_64_BY_NAME,
        Arch::Aarch64 => &AARCH64_BY_NAME,
    }
}

// Sorted by the compiler, so the tables above stay the single, number-ordered
// transcription of the kernel's and a launch pays nothing to index them.
static X86_64_BY_NAME: [(&str, u32); X86_64.len()] = sorted_by_name(X86_64);
static AARCH64_BY_NAME: [(&str, u32); AARCH64.len()] = sorted_by_name(AARCH64);

/// The number of syscall `name` on `arch`, or `None` when `arch` has no such
/// syscall (e.g. `open` or `fork` on aarch64) or the name is unknown.
pub fn number(arch: Arch, name: &str) -> Option<u32> {
    let t = table_by_name(arch);
    t.binary_search_by(|&(n, _)| n.cmp(name))
        .ok()
        .map(|i| t[i].1)
}

/// [`number`] at compile time, for policy resolved into the binary.
const fn const_number(arch: Arch, name: &str) -> Option<u32> {
    let t: &[(&str, u32)] = match arch {
        Arch::X86_64 => &X86_64_BY_NAME,
        Arch::Aarch64 => &AARCH64_BY_NAME,
    };
    let (mut lo, mut hi) = (0, t.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match str_cmp(t[mid].0, name) {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Some(t[mid].1),
        }
    }
    None
}

/// `str`'s `Ord` (bytewise), which isn't callable in a `const fn`.
const fn str_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return if a[i] < b[i] {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        i += 1;
    }
    if a.len() < b.len() {
        Ordering::Less
    } else if a.len() > b.len() {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// `t` sorted by name: a bottom-up merge sort, because an insertion sort of a
/// few hundred entries runs into the compiler's limit on const evaluation.
const fn sorted_by_name<const N: usize>(t: &[(&'static str, u32)]) -> [(&'static str, u32); N] {
    let mut a = [("", 0); N];
    let mut i = 0;
    while i < N {
        a[i] = t[i];
        i += 1;
    }
    let mut b = a;
    let mut width = 1;
    while width < N {
        let mut start = 0;
        while start < N {
            let mid = min(start + width, N);
            let end = min(start + 2 * width, N);
            let (mut l, mut r, mut o) = (start, mid, start);
            while o < end {
                if r >= end || (l < mid && !str_cmp(a[r].0, a[l].0).is_lt()) {
                    b[o] = a[l];
                    l += 1;
                } else {
                    b[o] = a[r];
                    r += 1;
                }
                o += 1;
            }
            start = end;
        }
        a = b;
        width *= 2;
    }
    a
}

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

/// The name of syscall number `nr` on `arch`.
pub(crate) fn name_of(arch: Arch, nr: u32) -> Option<&'static str> {
    let t = table(arch);
    t.binary_search_by_key(&nr, |&(_, n)| n)
        .ok()
        .map(|i| t[i].0)
}

/// Whether `name` is a syscall on any supported architecture. This is what a
/// profile's `syscalls.allow` / `syscalls.deny` entries are checked against:
/// a name that only exists on another architecture is valid and skipped there.
pub(crate) fn is_known(name: &str) -> bool {
    Arch::ALL.iter().any(|&a| number(a, name).is_some())
}

/// The known syscall name closest to `name` (edit distance), for a "did you
/// mean" hint; `None` when nothing is close enough to be a plausible typo.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    let wanted = name.to_ascii_lowercase();
    let limit = match wanted.chars().count() {
        0..=3 => 1,
        4..=5 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &'static str)> = None;
    for arch in Arch::ALL {
        for &(candidate, _) in table(arch) {
            let d = edit_distance(&wanted, candidate);
            if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, candidate));
            }
        }
    }
    best.map(|(_, n)| n)
}

/// Levenshtein distance (insertions, deletions, substitutions), by chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Filter A of DESIGN.md §5: every syscall an ordinary program (shells,
/// Python, Node, git, compilers and linkers, make, cargo, package managers)
/// needs, by name. Anything else fails with ENOSYS. Names missing on an
/// architecture are skipped there.
///
/// The rule of thumb: generous where the kernel already confines the call
/// (files go through Landlock and read-only mounts, sockets through the network
/// namespace, signals and `prlimit64` through the PID namespace, set*id and
/// capset through an empty capability set plus NO_NEW_PRIVS), strict where a
/// call reaches into other processes or kernel-global state.
///
/// Deliberately absent (ENOSYS, so libraries take their fallbacks):
/// - `clone3`: its flags live in memory seccomp can't read, so the CLONE_NEW*
///   rule of filter B couldn't see them; on ENOSYS glibc falls back to `clone`,
///   whose flags are a register (with EPERM it would not fall back).
/// - `pidfd_getfd`, `process_madvise`, `kcmp`, `process_mrelease`,
///   `migrate_pages`, `move_pages`: act on another process, with
///   ptrace-level access (`pidfd_getfd` copies a descriptor out of it); `ptrace`
///   itself is denied, so these would be side doors.
/// - `chroot`, `sethostname`, `setdomainname`, `vhangup`, `iopl`, `ioperm`,
///   `fanotify_init`/`fanotify_mark`, `lsm_set_self_attr`: need a capability
///   or change system or security state; no ordinary program calls them.
/// - `modify_ldt`: 16-bit segment support for Wine and DOSEMU, a long history
///   of kernel bugs.
/// - `memfd_secret`: memory hidden from the kernel itself; nothing here uses it.
/// - obsolete or unimplemented numbers (`uselib`, `ustat`, `sysfs`, `_sysctl`,
///   `nfsservctl`, `lookup_dcookie`, `create_module`, ...) and `listns`.
/// - everything of [`BASELINE_DENY`].
pub(crate) const BASELINE_ALLOW: &[&str] = &[
    // Processes and threads. `clone` and `personality` get argument rules in
    // filter B (no CLONE_NEW*, no personality flags).
    "arch_prctl",
    "clone",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "get_robust_list",
    "getcpu",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getsid",
    "gettid",
    "ioprio_get",
    "ioprio_set",
    "membarrier",
    "personality",
    "prctl",
    "restart_syscall",
    "rseq",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "set_robust_list",
    "set_tid_address",
    "setpgid",
    "setpriority",
    "setsid",
    "vfork",
    "wait4",
    "waitid",
    // Futexes.
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    // An agent may confine itself further.
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "seccomp",
    // Only work when called from the kernel's own uprobe trampolines; denying
    // them would crash the sandbox whenever the host traces it with uprobes.
    "uprobe",
    "uretprobe",
    // Memory. `map_shadow_stack` is how glibc gives threads a shadow stack
    // when CET is on; V8 uses the pkey_* calls.
    "brk",
    "get_mempolicy",
    "madvise",
    "map_shadow_stack",
    "mbind",
    "memfd_create",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mremap",
    "mseal",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
    "set_mempolicy",
    "set_mempolicy_home_node",
    // Signals. The PID namespace keeps them inside the sandbox.
    "alarm",
    "getitimer",
    "kill",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "setitimer",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "tgkill",
    "tkill",
    // Clocks and timers (reading and sleeping; setting a clock is in B).
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "gettimeofday",
    "nanosleep",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    // Descriptors and I/O, including POSIX AIO (`io_*`, not io_uring).
    // `ioctl` gets an argument rule in filter B (no TIOCSTI, TIOCLINUX).
    "cachestat",
    "close",
    "close_range",
    "copy_file_range",
    "dup",
    "dup2",
    "dup3",
    "eventfd",
    "eventfd2",
    "fadvise64",
    "fallocate",
    "fcntl",
    "fdatasync",
    "flock",
    "fsync",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "ioctl",
    "lseek",
    "pipe",
    "pipe2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readv",
    "sendfile",
    "splice",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "vmsplice",
    "write",
    "writev",
    // Waiting for events.
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "poll",
    "ppoll",
    "pselect6",
    "select",
    // Files. Landlock and the read-only mounts decide where these work;
    // `mknod*` is for FIFOs (device nodes need CAP_MKNOD, and mounts are nodev).
    "access",
    "chdir",
    "chmod",
    "chown",
    "creat",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fgetxattr",
    "file_getattr",
    "file_setattr",
    "flistxattr",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "ftruncate",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "getxattr",
    "getxattrat",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "lremovexattr",
    "lsetxattr",
    "lstat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "readlink",
    "readlinkat",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "setxattr",
    "setxattrat",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "truncate",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    // Reading the sandbox's own mount table (newer libmount uses these);
    // /proc/self/mountinfo shows the same.
    "listmount",
    "statmount",
    // Sockets. The network namespace and Landlock decide what they reach;
    // `socket` gets an argument rule in filter B (no AF_PACKET, AF_VSOCK).
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socket",
    "socketpair",
    // SysV and POSIX IPC, private to the sandbox's IPC namespace.
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    // Credentials. With no capabilities and NO_NEW_PRIVS these can only drop
    // or shuffle what the process already has.
    "capget",
    "capset",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getresgid",
    "getresuid",
    "getuid",
    "lsm_get_self_attr",
    "lsm_list_modules",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setuid",
    // System information and resource limits.
    "getrandom",
    "getrlimit",
    "getrusage",
    "prlimit64",
    "setrlimit",
    "sysinfo",
    "uname",
];

/// Filter B of DESIGN.md §5: denied outright (EPERM, or kill or log per
/// `on_violation`) even if a profile adds them to the allowlist. Each reaches
/// the kernel's most exposed code or state that isn't the sandbox's own:
/// other processes' memory (`ptrace`, `process_vm_*`), kernel code
/// (`kexec_*`, `*_module`, `bpf`), large attack surfaces (`perf_event_open`,
/// `userfaultfd`, `io_uring_*`, the keyring), the mount tree and namespaces,
/// file handles (which bypass path checks), and host-wide state (swap, reboot,
/// accounting, quotas, the kernel log, the clocks).
///
/// Sorted; argument rules (ioctl, clone, socket, socketpair, personality and
/// the plan's own) are not here but built into filter B by
/// `sandbox::seccomp`. A profile may re-enable [`ALLOWABLE_DENY`] only.
pub const BASELINE_DENY: &[&str] = &[
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "open_tree_attr",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
];

/// The denylisted calls a profile's `syscalls.allow` may re-enable: no
/// invariant of the sandbox rests on denying them. `ptrace` and
/// `process_vm_*` reach only processes of the sandbox's own PID namespace,
/// and not its init (not dumpable); `perf_event_open` is then up to the
/// kernel's `perf_event_paranoid`. Debuggers, `strace` and profilers need
/// them.
pub(crate) const ALLOWABLE_DENY: &[&str] = &[
    "perf_event_open",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// Why a call of [`BASELINE_DENY`] that [`ALLOWABLE_DENY`] doesn't list can
/// never be allowed, for the error a profile that tries gets.
pub(crate) fn deny_reason(name: &str) -> &'static str {
    match name {
        "kexec_load" | "kexec_file_load" | "init_module" | "finit_module" | "delete_module" => {
            "it loads or unloads kernel code"
        }
        "bpf" => "it loads programs into the kernel",
        "userfaultfd" => "it can stall the kernel in the middle of a copy, a classic exploit primitive",
        "io_uring_setup" | "io_uring_enter" | "io_uring_register" => {
            "io_uring performs I/O that seccomp never sees, and has a long record of kernel bugs"
        }
        "keyctl" | "add_key" | "request_key" => "the kernel keyrings are not confined to the sandbox",
        "mount" | "umount2" | "pivot_root" | "move_mount" | "open_tree" | "open_tree_attr"
        | "fsopen" | "fsmount" | "fsconfig" | "fspick" | "mount_setattr" => {
            "the sandbox's filesystem view rests on the agent not changing its mounts"
        }
        "unshare" | "setns" => {
            "new or other namespaces would give the agent capabilities or a way out of its own"
        }
        "open_by_handle_at" | "name_to_handle_at" => {
            "file handles reach files without a path, around Landlock's rules"
        }
        _ => "it changes or reads state of the whole host (clocks, swap, reboot, accounting, quotas, the kernel log)",
    }
}

/// The numbers of [`BASELINE_ALLOW`] on `arch`, in its order, skipping names
/// `arch` doesn't have.
pub(crate) fn baseline_allow(arch: Arch) -> impl Iterator<Item = u32> {
    let resolved: &[Option<u32>] = match arch {
        Arch::X86_64 => &BASELINE_ALLOW_NR.0,
        Arch::Aarch64 => &BASELINE_ALLOW_NR.1,
    };
    resolved.iter().filter_map(|&n| n)
}

/// The numbers of [`BASELINE_DENY`] on `arch`, as [`baseline_allow`].
pub(crate) fn baseline_deny(arch: Arch) -> impl Iterator<Item = u32> {
    let resolved: &[Option<u32>] = match arch {
        Arch::X86_64 => &BASELINE_DENY_NR.0,
        Arch::Aarch64 => &BASELINE_DENY_NR.1,
    };
    resolved.iter().filter_map(|&n| n)
}

type Resolved<const N: usize> = ([Option<u32>; N], [Option<u32>; N]);

// The baseline is resolved by the compiler: every plan needs all of it.
static BASELINE_ALLOW_NR: Resolved<{ BASELINE_ALLOW.len() }> = (
    resolve(Arch::X86_64, BASELINE_ALLOW),
    resolve(Arch::Aarch64, BASELINE_ALLOW),
);
static BASELINE_DENY_NR: Resolved<{ BASELINE_DENY.len() }> = (
    resolve(Arch::X86_64, BASELINE_DENY),
    resolve(Arch::Aarch64, BASELINE_DENY),
);

const fn resolve<const N: usize>(arch: Arch, names: &[&str]) -> [Option<u32>; N] {
    let mut out = [None; N];
    let mut i = 0;
    while i < N {
        out[i] = const_number(arch, names[i]);
        i += 1;
    }
    out
}

/// x86_64: `arch/x86/entry/syscalls/syscall_64.tbl`, `common` and `64` ABIs.
/// Numbers without an entry point (`uselib`, `tuxcall`, ...) are kept: they
/// are real numbers that return ENOSYS, and libc names them.
#[rustfmt::skip]
const X86_64: &[(&str, u32)] = &[
    ("read", 0),
    ("write", 1),
    ("open", 2),
    ("close", 3),
    ("stat", 4),
    ("fstat", 5),
    ("lstat", 6),
    ("poll", 7),
    ("lseek", 8),
    ("mmap", 9),
    ("mprotect", 10),
    ("munmap", 11),
    ("brk", 12),
    ("rt_sigaction", 13),
    ("rt_sigprocmask", 14),
    ("rt_sigreturn", 15),
    ("ioctl", 16),
    ("pread64", 17),
    ("pwrite64", 18),
    ("readv", 19),
    ("writev", 20),
    ("access", 21),
    ("pipe", 22),
    ("select", 23),
    ("sched_yield", 24),
    ("mremap", 25),
    ("msync", 26),
    ("mincore", 27),
    ("madvise", 28),
    ("shmget", 29),
    ("shmat", 30),
    ("shmctl", 31),
    ("dup", 32),
    ("dup2", 33),
    ("pause", 34),
    ("nanosleep", 35),
    ("getitimer", 36),
    ("alarm", 37),
    ("setitimer", 38),
    ("getpid", 39),
    ("sendfile", 40),
    ("socket", 41),
    ("connect", 42),
    ("accept", 43),
    ("sendto", 44),
    ("recvfrom", 45),
    ("sendmsg", 46),
    ("recvmsg", 47),
    ("shutdown", 48),
    ("bind", 49),
    ("listen", 50),
    ("getsockname", 51),
    ("getpeername", 52),
    ("socketpair", 53),
    ("setsockopt", 54),
    ("getsockopt", 55),
    ("clone", 56),
    ("fork", 57),
    ("vfork", 58),
    ("execve", 59),
    ("exit", 60),
    ("wait4", 61),
    ("kill", 62),
    ("uname", 63),
    ("semget", 64),
    ("semop", 65),
    ("semctl", 66),
    ("shmdt", 67),
    ("msgget", 68),
    ("msgsnd", 69),
    ("msgrcv", 70),
    ("msgctl", 71),
    ("fcntl", 72),
    ("flock", 73),
    ("fsync", 74),
    ("fdatasync", 75),
    ("truncate", 76),
    ("ftruncate", 77),
    ("getdents", 78),
    ("getcwd", 79),
    ("chdir", 80),
    ("fchdir", 81),
    ("rename", 82),
    ("mkdir", 83),
    ("rmdir", 84),
    ("creat", 85),
    ("link", 86),
    ("unlink", 87),
    ("symlink", 88),
    ("readlink", 89),
    ("chmod", 90),
    ("fchmod", 91),
    ("chown", 92),
    ("fchown", 93),
    ("lchown", 94),
    ("umask", 95),
    ("gettimeofday", 96),
    ("getrlimit", 97),
    ("getrusage", 98),
    ("sysinfo", 99),
    ("times", 100),
    ("ptrace", 101),
    ("getuid", 102),
    ("syslog", 103),
    ("getgid", 104),
    ("setuid", 105),
    ("setgid", 106),
    ("geteuid", 107),
    ("getegid", 108),
    ("setpgid", 109),
    ("getppid", 110),
    ("getpgrp", 111),
    ("setsid", 112),
    ("setreuid", 113),
    ("setregid", 114),
    ("getgroups", 115),
    ("setgroups", 116),
    ("setresuid", 117),
    ("getresuid", 118),
    ("setresgid", 119),
    ("getresgid", 120),
    ("getpgid", 121),
    ("setfsuid", 122),
    ("setfsgid", 123),
    ("getsid", 124),
    ("capget", 125),
    ("capset", 126),
    ("rt_sigpending", 127),
    ("rt_sigtimedwait", 128),
    ("rt_sigqueueinfo", 129),
    ("rt_sigsuspend", 130),
    ("sigaltstack", 131),
    ("utime", 132),
    ("mknod", 133),
    ("uselib", 134),
    ("personality", 135),
    ("ustat", 136),
    ("statfs", 137),
    ("fstatfs", 138),
    ("sysfs", 139),
    ("getpriority", 140),
    ("setpriority", 141),
    ("sched_setparam", 142),
    ("sched_getparam", 143),
    ("sched_setscheduler", 144),
    ("sched_getscheduler", 145),
    ("sched_get_priority_max", 146),
    ("sched_get_priority_min", 147),
    ("sched_rr_get_interval", 148),
    ("mlock", 149),
    ("munlock", 150),
    ("mlockall", 151),
    ("munlockall", 152),
    ("vhangup", 153),
    ("modify_ldt", 154),
    ("pivot_root", 155),
    ("_sysctl", 156),
    ("prctl", 157),
    ("arch_prctl", 158),
    ("adjtimex", 159),
    ("setrlimit", 160),
    ("chroot", 161),
    ("sync", 162),
    ("acct", 163),
    ("settimeofday", 164),
    ("mount", 165),
    ("umount2", 166),
    ("swapon", 167),
    ("swapoff", 168),
    ("reboot", 169),
    ("sethostname", 170),
    ("setdomainname", 171),
    ("iopl", 172),
    ("ioperm", 173),
    ("create_module", 174),
    ("init_module", 175),
    ("delete_module", 176),
    ("get_kernel_syms", 177),
    ("query_module", 178),
    ("quotactl", 179),
    ("nfsservctl", 180),
    ("getpmsg", 181),
    ("putpmsg", 182),
    ("afs_syscall", 183),
    ("tuxcall", 184),
    ("security", 185),
    ("gettid", 186),
    ("readahead", 187),
    ("setxattr", 188),
    ("lsetxattr", 189),
    ("fsetxattr", 190),
    ("getxattr", 191),
    ("lgetxattr", 192),
    ("fgetxattr", 193),
    ("listxattr", 194),
    ("llistxattr", 195),
    ("flistxattr", 196),
    ("removexattr", 197),
    ("lremovexattr", 198),
    ("fremovexattr", 199),
    ("tkill", 200),
    ("time", 201),
    ("futex", 202),
    ("sched_setaffinity", 203),
    ("sched_getaffinity", 204),
    ("set_thread_area", 205),
    ("io_setup", 206),
    ("io_destroy", 207),
    ("io_getevents", 208),
    ("io_submit", 209),
    ("io_cancel", 210),
    ("get_thread_area", 211),
    ("lookup_dcookie", 212),
    ("epoll_create", 213),
    ("epoll_ctl_old", 214),
    ("epoll_wait_old", 215),
    ("remap_file_pages", 216),
    ("getdents64", 217),
    ("set_tid_address", 218),
    ("restart_syscall", 219),
    ("semtimedop", 220),
    ("fadvise64", 221),
    ("timer_create", 222),
    ("timer_settime", 223),
    ("timer_gettime", 224),
    ("timer_getoverrun", 225),
    ("timer_delete", 226),
    ("clock_settime", 227),
    ("clock_gettime", 228),
    ("clock_getres", 229),
    ("clock_nanosleep", 230),
    ("exit_group", 231),
    ("epoll_wait", 232),
    ("epoll_ctl", 233),
    ("tgkill", 234),
    ("utimes", 235),
    ("vserver", 236),
    ("mbind", 237),
    ("set_mempolicy", 238),
    ("get_mempolicy", 239),
    ("mq_open", 240),
    ("mq_unlink", 241),
    ("mq_timedsend", 242),
    ("mq_timedreceive", 243),
    ("mq_notify", 244),
    ("mq_getsetattr", 245),
    ("kexec_load", 246),
    ("waitid", 247),
    ("add_key", 248),
    ("request_key", 249),
    ("keyctl", 250),
    ("ioprio_set", 251),
    ("ioprio_get", 252),
    ("inotify_init", 253),
    ("inotify_add_watch", 254),
    ("inotify_rm_watch", 255),
    ("migrate_pages", 256),
    ("openat", 257),
    ("mkdirat", 258),
    ("mknodat", 259),
    ("fchownat", 260),
    ("futimesat", 261),
    ("newfstatat", 262),
    ("unlinkat", 263),
    ("renameat", 264),
    ("linkat", 265),
    ("symlinkat", 266),
    ("readlinkat", 267),
    ("fchmodat", 268),
    ("faccessat", 269),
    ("pselect6", 270),
    ("ppoll", 271),
    ("unshare", 272),
    ("set_robust_list", 273),
    ("get_robust_list", 274),
    ("splice", 275),
    ("tee", 276),
    ("sync_file_range", 277),
    ("vmsplice", 278),
    ("move_pages", 279),
    ("utimensat", 280),
    ("epoll_pwait", 281),
    ("signalfd", 282),
    ("timerfd_create", 283),
    ("eventfd", 284),
    ("fallocate", 285),
    ("timerfd_settime", 286),
    ("timerfd_gettime", 287),
    ("accept4", 288),
    ("signalfd4", 289),
    ("eventfd2", 290),
    ("epoll_create1", 291),
    ("dup3", 292),
    ("pipe2", 293),
    ("inotify_init1", 294),
    ("preadv", 295),
    ("pwritev", 296),
    ("rt_tgsigqueueinfo", 297),
    ("perf_event_open", 298),
    ("recvmmsg", 299),
    ("fanotify_init", 300),
    ("fanotify_mark", 301),
    ("prlimit64", 302),
    ("name_to_handle_at", 303),
    ("open_by_handle_at", 304),
    ("clock_adjtime", 305),
    ("syncfs", 306),
    ("sendmmsg", 307),
    ("setns", 308),
    ("getcpu", 309),
    ("process_vm_readv", 310),
    ("process_vm_writev", 311),
    ("kcmp", 312),
    ("finit_module", 313),
    ("sched_setattr", 314),
    ("sched_getattr", 315),
    ("renameat2", 316),
    ("seccomp", 317),
    ("getrandom", 318),
    ("memfd_create", 319),
    ("kexec_file_load", 320),
    ("bpf", 321),
    ("execveat", 322),
    ("userfaultfd", 323),
    ("membarrier", 324),
    ("mlock2", 325),
    ("copy_file_range", 326),
    ("preadv2", 327),
    ("pwritev2", 328),
    ("pkey_mprotect", 329),
    ("pkey_alloc", 330),
    ("pkey_free", 331),
    ("statx", 332),
    ("io_pgetevents", 333),
    ("rseq", 334),
    ("uretprobe", 335),
    ("uprobe", 336),
    // 337..=423 are unused on x86_64: from 424 on, every architecture
    // shares the same numbers.
    ("pidfd_send_signal", 424),
    ("io_uring_setup", 425),
    ("io_uring_enter", 426),
    ("io_uring_register", 427),
    ("open_tree", 428),
    ("move_mount", 429),
    ("fsopen", 430),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fspick", 433),
    ("pidfd_open", 434),
    ("clone3", 435),
    ("close_range", 436),
    ("openat2", 437),
    ("pidfd_getfd", 438),
    ("faccessat2", 439),
    ("process_madvise", 440),
    ("epoll_pwait2", 441),
    ("mount_setattr", 442),
    ("quotactl_fd", 443),
    ("landlock_create_ruleset", 444),
    ("landlock_add_rule", 445),
    ("landlock_restrict_self", 446),
    ("memfd_secret", 447),
    ("process_mrelease", 448),
    ("futex_waitv", 449),
    ("set_mempolicy_home_node", 450),
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("mseal", 462),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
    ("listns", 470), // Linux 6.19
];

/// aarch64: the generic table with arm64's ABIs (`common`, `64`, `renameat`,
/// `rlimit`, `memfd_secret`). 64-bit names: `fcntl`, `statfs`, `lseek`,
/// `sendfile`, `newfstatat`, `fstat`, `mmap`, `fadvise64`, not the `*64` ones
/// of 32-bit architectures.
#[rustfmt::skip]
const AARCH64: &[(&str, u32)] = &[
    ("io_setup", 0),
    ("io_destroy", 1),
    ("io_submit", 2),
    ("io_cancel", 3),
    ("io_getevents", 4),
    ("setxattr", 5),
    ("lsetxattr", 6),
    ("fsetxattr", 7),
    ("getxattr", 8),
    ("lgetxattr", 9),
    ("fgetxattr", 10),
    ("listxattr", 11),
    ("llistxattr", 12),
    ("flistxattr", 13),
    ("removexattr", 14),
    ("lremovexattr", 15),
    ("fremovexattr", 16),
    ("getcwd", 17),
    ("lookup_dcookie", 18),
    ("eventfd2", 19),
    ("epoll_create1", 20),
    ("epoll_ctl", 21),
    ("epoll_pwait", 22),
    ("dup", 23),
    ("dup3", 24),
    ("fcntl", 25),
    ("inotify_init1", 26),
    ("inotify_add_watch", 27),
    ("inotify_rm_watch", 28),
    ("ioctl", 29),
    ("ioprio_set", 30),
    ("ioprio_get", 31),
    ("flock", 32),
    ("mknodat", 33),
    ("mkdirat", 34),
    ("unlinkat", 35),
    ("symlinkat", 36),
    ("linkat", 37),
    ("renameat", 38),
    ("umount2", 39),
    ("mount", 40),
    ("pivot_root", 41),
    ("nfsservctl", 42),
    ("statfs", 43),
    ("fstatfs", 44),
    ("truncate", 45),
    ("ftruncate", 46),
    ("fallocate", 47),
    ("faccessat", 48),
    ("chdir", 49),
    ("fchdir", 50),
    ("chroot", 51),
    ("fchmod", 52),
    ("fchmodat", 53),
    ("fchownat", 54),
    ("fchown", 55),
    ("openat", 56),
    ("close", 57),
    ("vhangup", 58),
    ("pipe2", 59),
    ("quotactl", 60),
    ("getdents64", 61),
    ("lseek", 62),
    ("read", 63),
    ("write", 64),
    ("readv", 65),
    ("writev", 66),
    ("pread64", 67),
    ("pwrite64", 68),
    ("preadv", 69),
    ("pwritev", 70),
    ("sendfile", 71),
    ("pselect6", 72),
    ("ppoll", 73),
    ("signalfd4", 74),
    ("vmsplice", 75),
    ("splice", 76),
    ("tee", 77),
    ("readlinkat", 78),
    ("newfstatat", 79),
    ("fstat", 80),
    ("sync", 81),
    ("fsync", 82),
    ("fdatasync", 83),
    ("sync_file_range", 84),
    ("timerfd_create", 85),
    ("timerfd_settime", 86),
    ("timerfd_gettime", 87),
    ("utimensat", 88),
    ("acct", 89),
    ("capget", 90),
    ("capset", 91),
    ("personality", 92),
    ("exit", 93),
    ("exit_group", 94),
    ("waitid", 95),
    ("set_tid_address", 96),
    ("unshare", 97),
    ("futex", 98),
    ("set_robust_list", 99),
    ("get_robust_list", 100),
    ("nanosleep", 101),
    ("getitimer", 102),
    ("setitimer", 103),
    ("kexec_load", 104),
    ("init_module", 105),
    ("delete_module", 106),
    ("timer_create", 107),
    ("timer_gettime", 108),
    ("timer_getoverrun", 109),
    ("timer_settime", 110),
    ("timer_delete", 111),
    ("clock_settime", 112),
    ("clock_gettime", 113),
    ("clock_getres", 114),
    ("clock_nanosleep", 115),
    ("syslog", 116),
    ("ptrace", 117),
    ("sched_setparam", 118),
    ("sched_setscheduler", 119),
    ("sched_getscheduler", 120),
    ("sched_getparam", 121),
    ("sched_setaffinity", 122),
    ("sched_getaffinity", 123),
    ("sched_yield", 124),
    ("sched_get_priority_max", 125),
    ("sched_get_priority_min", 126),
    ("sched_rr_get_interval", 127),
    ("restart_syscall", 128),
    ("kill", 129),
    ("tkill", 130),
    ("tgkill", 131),
    ("sigaltstack", 132),
    ("rt_sigsuspend", 133),
    ("rt_sigaction", 134),
    ("rt_sigprocmask", 135),
    ("rt_sigpending", 136),
    ("rt_sigtimedwait", 137),
    ("rt_sigqueueinfo", 138),
    ("rt_sigreturn", 139),
    ("setpriority", 140),
    ("getpriority", 141),
    ("reboot", 142),
    ("setregid", 143),
    ("setgid", 144),
    ("setreuid", 145),
    ("setuid", 146),
    ("setresuid", 147),
    ("getresuid", 148),
    ("setresgid", 149),
    ("getresgid", 150),
    ("setfsuid", 151),
    ("setfsgid", 152),
    ("times", 153),
    ("setpgid", 154),
    ("getpgid", 155),
    ("getsid", 156),
    ("setsid", 157),
    ("getgroups", 158),
    ("setgroups", 159),
    ("uname", 160),
    ("sethostname", 161),
    ("setdomainname", 162),
    ("getrlimit", 163),
    ("setrlimit", 164),
    ("getrusage", 165),
    ("umask", 166),
    ("prctl", 167),
    ("getcpu", 168),
    ("gettimeofday", 169),
    ("settimeofday", 170),
    ("adjtimex", 171),
    ("getpid", 172),
    ("getppid", 173),
    ("getuid", 174),
    ("geteuid", 175),
    ("getgid", 176),
    ("getegid", 177),
    ("gettid", 178),
    ("sysinfo", 179),
    ("mq_open", 180),
    ("mq_unlink", 181),
    ("mq_timedsend", 182),
    ("mq_timedreceive", 183),
    ("mq_notify", 184),
    ("mq_getsetattr", 185),
    ("msgget", 186),
    ("msgctl", 187),
    ("msgrcv", 188),
    ("msgsnd", 189),
    ("semget", 190),
    ("semctl", 191),
    ("semtimedop", 192),
    ("semop", 193),
    ("shmget", 194),
    ("shmctl", 195),
    ("shmat", 196),
    ("shmdt", 197),
    ("socket", 198),
    ("socketpair", 199),
    ("bind", 200),
    ("listen", 201),
    ("accept", 202),
    ("connect", 203),
    ("getsockname", 204),
    ("getpeername", 205),
    ("sendto", 206),
    ("recvfrom", 207),
    ("setsockopt", 208),
    ("getsockopt", 209),
    ("shutdown", 210),
    ("sendmsg", 211),
    ("recvmsg", 212),
    ("readahead", 213),
    ("brk", 214),
    ("munmap", 215),
    ("mremap", 216),
    ("add_key", 217),
    ("request_key", 218),
    ("keyctl", 219),
    ("clone", 220),
    ("execve", 221),
    ("mmap", 222),
    ("fadvise64", 223),
    ("swapon", 224),
    ("swapoff", 225),
    ("mprotect", 226),
    ("msync", 227),
    ("mlock", 228),
    ("munlock", 229),
    ("mlockall", 230),
    ("munlockall", 231),
    ("mincore", 232),
    ("madvise", 233),
    ("remap_file_pages", 234),
    ("mbind", 235),
    ("get_mempolicy", 236),
    ("set_mempolicy", 237),
    ("migrate_pages", 238),
    ("move_pages", 239),
    ("rt_tgsigqueueinfo", 240),
    ("perf_event_open", 241),
    ("accept4", 242),
    ("recvmmsg", 243),
    ("wait4", 260),
    ("prlimit64", 261),
    ("fanotify_init", 262),
    ("fanotify_mark", 263),
    ("name_to_handle_at", 264),
    ("open_by_handle_at", 265),
    ("clock_adjtime", 266),
    ("syncfs", 267),
    ("setns", 268),
    ("sendmmsg", 269),
    ("process_vm_readv", 270),
    ("process_vm_writev", 271),
    ("kcmp", 272),
    ("finit_module", 273),
    ("sched_setattr", 274),
    ("sched_getattr", 275),
    ("renameat2", 276),
    ("seccomp", 277),
    ("getrandom", 278),
    ("memfd_create", 279),
    ("bpf", 280),
    ("execveat", 281),
    ("userfaultfd", 282),
    ("membarrier", 283),
    ("mlock2", 284),
    ("copy_file_range", 285),
    ("preadv2", 286),
    ("pwritev2", 287),
    ("pkey_mprotect", 288),
    ("pkey_alloc", 289),
    ("pkey_free", 290),
    ("statx", 291),
    ("io_pgetevents", 292),
    ("rseq", 293),
    ("kexec_file_load", 294),
    // 295..=423 are unused here (244..=259 are reserved for architecture
    // specific calls, arm64 has none); from 424 on, every architecture shares
    // the same numbers.
    ("pidfd_send_signal", 424),
    ("io_uring_setup", 425),
    ("io_uring_enter", 426),
    ("io_uring_register", 427),
    ("open_tree", 428),
    ("move_mount", 429),
    ("fsopen", 430),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fspick", 433),
    ("pidfd_open", 434),
    ("clone3", 435),
    ("close_range", 436),
    ("openat2", 437),
    ("pidfd_getfd", 438),
    ("faccessat2", 439),
    ("process_madvise", 440),
    ("epoll_pwait2", 441),
    ("mount_setattr", 442),
    ("quotactl_fd", 443),
    ("landlock_create_ruleset", 444),
    ("landlock_add_rule", 445),
    ("landlock_restrict_self", 446),
    ("memfd_secret", 447),
    ("process_mrelease", 448),
    ("futex_waitv", 449),
    ("set_mempolicy_home_node", 450),
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("mseal", 462),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
    ("listns", 470), // Linux 6.19
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// `(name, libc::SYS_name)` for every name libc knows on the host.
    macro_rules! libc_numbers {
        ($($name:ident)*) => {
            &[$((stringify!($name), libc::$name as i64)),*]
        };
    }

    #[cfg(target_arch = "x86_64")]
    fn libc_table() -> &'static [(&'static str, i64)] {
        #[rustfmt::skip]
        let t: &[(&str, i64)] = libc_numbers!(
            SYS_read SYS_write SYS_open SYS_close SYS_stat SYS_fstat SYS_lstat
            SYS_poll SYS_lseek SYS_mmap SYS_mprotect SYS_munmap SYS_brk
            SYS_rt_sigaction SYS_rt_sigprocmask SYS_rt_sigreturn SYS_ioctl
            SYS_pread64 SYS_pwrite64 SYS_readv SYS_writev SYS_access SYS_pipe
            SYS_select SYS_sched_yield SYS_mremap SYS_msync SYS_mincore
            SYS_madvise SYS_shmget SYS_shmat SYS_shmctl SYS_dup SYS_dup2
            SYS_pause SYS_nanosleep SYS_getitimer SYS_alarm SYS_setitimer
            SYS_getpid SYS_sendfile SYS_socket SYS_connect SYS_accept
            SYS_sendto SYS_recvfrom SYS_sendmsg SYS_recvmsg SYS_shutdown
            SYS_bind SYS_listen SYS_getsockname SYS_getpeername SYS_socketpair
            SYS_setsockopt SYS_getsockopt SYS_clone SYS_fork SYS_vfork
            SYS_execve SYS_exit SYS_wait4 SYS_kill SYS_uname SYS_semget
            SYS_semop SYS_semctl SYS_shmdt SYS_msgget SYS_msgsnd SYS_msgrcv
            SYS_msgctl SYS_fcntl SYS_flock SYS_fsync SYS_fdatasync SYS_truncate
            SYS_ftruncate SYS_getdents SYS_getcwd SYS_chdir SYS_fchdir
            SYS_rename SYS_mkdir SYS_rmdir SYS_creat SYS_link SYS_unlink
            SYS_symlink SYS_readlink SYS_chmod SYS_fchmod SYS_chown SYS_fchown
            SYS_lchown SYS_umask SYS_gettimeofday SYS_getrlimit SYS_getrusage
            SYS_sysinfo SYS_times SYS_ptrace SYS_getuid SYS_syslog SYS_getgid
            SYS_setuid SYS_setgid SYS_geteuid SYS_getegid SYS_setpgid
            SYS_getppid SYS_getpgrp SYS_setsid SYS_setreuid SYS_setregid
            SYS_getgroups SYS_setgroups SYS_setresuid SYS_getresuid
            SYS_setresgid SYS_getresgid SYS_getpgid SYS_setfsuid SYS_setfsgid
            SYS_getsid SYS_capget SYS_capset SYS_rt_sigpending
            SYS_rt_sigtimedwait SYS_rt_sigqueueinfo SYS_rt_sigsuspend
            SYS_sigaltstack SYS_utime SYS_mknod SYS_uselib SYS_personality
            SYS_ustat SYS_statfs SYS_fstatfs SYS_sysfs SYS_getpriority
            SYS_setpriority SYS_sched_setparam SYS_sched_getparam
            SYS_sched_setscheduler SYS_sched_getscheduler
            SYS_sched_get_priority_max SYS_sched_get_priority_min
            SYS_sched_rr_get_interval SYS_mlock SYS_munlock SYS_mlockall
            SYS_munlockall SYS_vhangup SYS_modify_ldt SYS_pivot_root
            SYS__sysctl SYS_prctl SYS_arch_prctl SYS_adjtimex SYS_setrlimit
            SYS_chroot SYS_sync SYS_acct SYS_settimeofday SYS_mount SYS_umount2
            SYS_swapon SYS_swapoff SYS_reboot SYS_sethostname SYS_setdomainname
            SYS_iopl SYS_ioperm SYS_init_module SYS_delete_module SYS_quotactl
            SYS_nfsservctl SYS_getpmsg SYS_putpmsg SYS_afs_syscall SYS_tuxcall
            SYS_security SYS_gettid SYS_readahead SYS_setxattr SYS_lsetxattr
            SYS_fsetxattr SYS_getxattr SYS_lgetxattr SYS_fgetxattr
            SYS_listxattr SYS_llistxattr SYS_flistxattr SYS_removexattr
            SYS_lremovexattr SYS_fremovexattr SYS_tkill SYS_time SYS_futex
            SYS_sched_setaffinity SYS_sched_getaffinity SYS_set_thread_area
            SYS_io_setup SYS_io_destroy SYS_io_getevents SYS_io_submit
            SYS_io_cancel SYS_get_thread_area SYS_lookup_dcookie
            SYS_epoll_create SYS_epoll_ctl_old SYS_epoll_wait_old
            SYS_remap_file_pages SYS_getdents64 SYS_set_tid_address
            SYS_restart_syscall SYS_semtimedop SYS_fadvise64 SYS_timer_create
            SYS_timer_settime SYS_timer_gettime SYS_timer_getoverrun
            SYS_timer_delete SYS_clock_settime SYS_clock_gettime
            SYS_clock_getres SYS_clock_nanosleep SYS_exit_group SYS_epoll_wait
            SYS_epoll_ctl SYS_tgkill SYS_utimes SYS_vserver SYS_mbind
            SYS_set_mempolicy SYS_get_mempolicy SYS_mq_open SYS_mq_unlink
            SYS_mq_timedsend SYS_mq_timedreceive SYS_mq_notify
            SYS_mq_getsetattr SYS_kexec_load SYS_waitid SYS_add_key
            SYS_request_key SYS_keyctl SYS_ioprio_set SYS_ioprio_get
            SYS_inotify_init SYS_inotify_add_watch SYS_inotify_rm_watch
            SYS_migrate_pages SYS_openat SYS_mkdirat SYS_mknodat SYS_fchownat
            SYS_futimesat SYS_newfstatat SYS_unlinkat SYS_renameat SYS_linkat
            SYS_symlinkat SYS_readlinkat SYS_fchmodat SYS_faccessat
            SYS_pselect6 SYS_ppoll SYS_unshare SYS_set_robust_list
            SYS_get_robust_list SYS_splice SYS_tee SYS_sync_file_range
            SYS_vmsplice SYS_move_pages SYS_utimensat SYS_epoll_pwait
            SYS_signalfd SYS_timerfd_create SYS_eventfd SYS_fallocate
            SYS_timerfd_settime SYS_timerfd_gettime SYS_accept4 SYS_signalfd4
            SYS_eventfd2 SYS_epoll_create1 SYS_dup3 SYS_pipe2 SYS_inotify_init1
            SYS_preadv SYS_pwritev SYS_rt_tgsigqueueinfo SYS_perf_event_open
            SYS_recvmmsg SYS_fanotify_init SYS_fanotify_mark SYS_prlimit64
            SYS_name_to_handle_at SYS_open_by_handle_at SYS_clock_adjtime
            SYS_syncfs SYS_sendmmsg SYS_setns SYS_getcpu SYS_process_vm_readv
            SYS_process_vm_writev SYS_kcmp SYS_finit_module SYS_sched_setattr
            SYS_sched_getattr SYS_renameat2 SYS_seccomp SYS_getrandom
            SYS_memfd_create SYS_kexec_file_load SYS_bpf SYS_execveat
            SYS_userfaultfd SYS_membarrier SYS_mlock2 SYS_copy_file_range
            SYS_preadv2 SYS_pwritev2 SYS_pkey_mprotect SYS_pkey_alloc
            SYS_pkey_free SYS_statx SYS_rseq SYS_pidfd_send_signal
            SYS_io_uring_setup SYS_io_uring_enter SYS_io_uring_register
            SYS_open_tree SYS_move_mount SYS_fsopen SYS_fsconfig SYS_fsmount
            SYS_fspick SYS_pidfd_open SYS_clone3 SYS_close_range SYS_openat2
            SYS_pidfd_getfd SYS_faccessat2 SYS_process_madvise SYS_epoll_pwait2
            SYS_mount_setattr SYS_quotactl_fd SYS_landlock_create_ruleset
            SYS_landlock_add_rule SYS_landlock_restrict_self SYS_memfd_secret
            SYS_process_mrelease SYS_futex_waitv SYS_set_mempolicy_home_node
            SYS_fchmodat2 SYS_mseal
        );
        t
    }

    #[cfg(target_arch = "aarch64")]
    fn libc_table() -> &'static [(&'static str, i64)] {
        #[rustfmt::skip]
        let t: &[(&str, i64)] = libc_numbers!(
            SYS_io_setup SYS_io_destroy SYS_io_submit SYS_io_cancel
            SYS_io_getevents SYS_setxattr SYS_lsetxattr SYS_fsetxattr
            SYS_getxattr SYS_lgetxattr SYS_fgetxattr SYS_listxattr
            SYS_llistxattr SYS_flistxattr SYS_removexattr SYS_lremovexattr
            SYS_fremovexattr SYS_getcwd SYS_lookup_dcookie SYS_eventfd2
            SYS_epoll_create1 SYS_epoll_ctl SYS_epoll_pwait SYS_dup SYS_dup3
            SYS_fcntl SYS_inotify_init1 SYS_inotify_add_watch
            SYS_inotify_rm_watch SYS_ioctl SYS_ioprio_set SYS_ioprio_get
            SYS_flock SYS_mknodat SYS_mkdirat SYS_unlinkat SYS_symlinkat
            SYS_linkat SYS_umount2 SYS_mount SYS_pivot_root SYS_nfsservctl
            SYS_statfs SYS_fstatfs SYS_truncate SYS_ftruncate SYS_fallocate
            SYS_faccessat SYS_chdir SYS_fchdir SYS_chroot SYS_fchmod
            SYS_fchmodat SYS_fchownat SYS_fchown SYS_openat SYS_close
            SYS_vhangup SYS_pipe2 SYS_quotactl SYS_getdents64 SYS_lseek
            SYS_read SYS_write SYS_readv SYS_writev SYS_pread64 SYS_pwrite64
            SYS_preadv SYS_pwritev SYS_sendfile SYS_pselect6 SYS_ppoll
            SYS_signalfd4 SYS_vmsplice SYS_splice SYS_tee SYS_readlinkat
            SYS_newfstatat SYS_fstat SYS_sync SYS_fsync SYS_fdatasync
            SYS_timerfd_create SYS_timerfd_settime SYS_timerfd_gettime
            SYS_utimensat SYS_acct SYS_capget SYS_capset SYS_personality
            SYS_exit SYS_exit_group SYS_waitid SYS_set_tid_address SYS_unshare
            SYS_futex SYS_set_robust_list SYS_get_robust_list SYS_nanosleep
            SYS_getitimer SYS_setitimer SYS_kexec_load SYS_init_module
            SYS_delete_module SYS_timer_create SYS_timer_gettime
            SYS_timer_getoverrun SYS_timer_settime SYS_timer_delete
            SYS_clock_settime SYS_clock_gettime SYS_clock_getres
            SYS_clock_nanosleep SYS_syslog SYS_ptrace SYS_sched_setparam
            SYS_sched_setscheduler SYS_sched_getscheduler SYS_sched_getparam
            SYS_sched_setaffinity SYS_sched_getaffinity SYS_sched_yield
            SYS_sched_get_priority_max SYS_sched_get_priority_min
            SYS_sched_rr_get_interval SYS_restart_syscall SYS_kill SYS_tkill
            SYS_tgkill SYS_sigaltstack SYS_rt_sigsuspend SYS_rt_sigaction
            SYS_rt_sigprocmask SYS_rt_sigpending SYS_rt_sigtimedwait
            SYS_rt_sigqueueinfo SYS_rt_sigreturn SYS_setpriority
            SYS_getpriority SYS_reboot SYS_setregid SYS_setgid SYS_setreuid
            SYS_setuid SYS_setresuid SYS_getresuid SYS_setresgid SYS_getresgid
            SYS_setfsuid SYS_setfsgid SYS_times SYS_setpgid SYS_getpgid
            SYS_getsid SYS_setsid SYS_getgroups SYS_setgroups SYS_uname
            SYS_sethostname SYS_setdomainname SYS_getrusage SYS_umask SYS_prctl
            SYS_getcpu SYS_gettimeofday SYS_settimeofday SYS_adjtimex
            SYS_getpid SYS_getppid SYS_getuid SYS_geteuid SYS_getgid
            SYS_getegid SYS_gettid SYS_sysinfo SYS_mq_open SYS_mq_unlink
            SYS_mq_timedsend SYS_mq_timedreceive SYS_mq_notify
            SYS_mq_getsetattr SYS_msgget SYS_msgctl SYS_msgrcv SYS_msgsnd
            SYS_semget SYS_semctl SYS_semtimedop SYS_semop SYS_shmget
            SYS_shmctl SYS_shmat SYS_shmdt SYS_socket SYS_socketpair SYS_bind
            SYS_listen SYS_accept SYS_connect SYS_getsockname SYS_getpeername
            SYS_sendto SYS_recvfrom SYS_setsockopt SYS_getsockopt SYS_shutdown
            SYS_sendmsg SYS_recvmsg SYS_readahead SYS_brk SYS_munmap SYS_mremap
            SYS_add_key SYS_request_key SYS_keyctl SYS_clone SYS_execve
            SYS_mmap SYS_fadvise64 SYS_swapon SYS_swapoff SYS_mprotect
            SYS_msync SYS_mlock SYS_munlock SYS_mlockall SYS_munlockall
            SYS_mincore SYS_madvise SYS_remap_file_pages SYS_mbind
            SYS_get_mempolicy SYS_set_mempolicy SYS_migrate_pages
            SYS_move_pages SYS_rt_tgsigqueueinfo SYS_perf_event_open
            SYS_accept4 SYS_recvmmsg SYS_wait4 SYS_prlimit64 SYS_fanotify_init
            SYS_fanotify_mark SYS_name_to_handle_at SYS_open_by_handle_at
            SYS_clock_adjtime SYS_syncfs SYS_setns SYS_sendmmsg
            SYS_process_vm_readv SYS_process_vm_writev SYS_kcmp
            SYS_finit_module SYS_sched_setattr SYS_sched_getattr SYS_renameat2
            SYS_seccomp SYS_getrandom SYS_memfd_create SYS_bpf SYS_execveat
            SYS_userfaultfd SYS_membarrier SYS_mlock2 SYS_copy_file_range
            SYS_preadv2 SYS_pwritev2 SYS_pkey_mprotect SYS_pkey_alloc
            SYS_pkey_free SYS_statx SYS_rseq SYS_kexec_file_load
            SYS_pidfd_send_signal SYS_io_uring_setup SYS_io_uring_enter
            SYS_io_uring_register SYS_open_tree SYS_move_mount SYS_fsopen
            SYS_fsconfig SYS_fsmount SYS_fspick SYS_pidfd_open SYS_clone3
            SYS_close_range SYS_openat2 SYS_pidfd_getfd SYS_faccessat2
            SYS_process_madvise SYS_epoll_pwait2 SYS_mount_setattr
            SYS_quotactl_fd SYS_landlock_create_ruleset SYS_landlock_add_rule
            SYS_landlock_restrict_self SYS_memfd_secret SYS_process_mrelease
            SYS_futex_waitv SYS_set_mempolicy_home_node SYS_mseal
        );
        t
    }

    #[test]
    fn tables_are_sorted_by_number_and_unique() {
        for arch in Arch::ALL {
            let t = table(arch);
            assert!(t.len() > 300, "{arch}: only {} entries", t.len());
            for w in t.windows(2) {
                assert!(w[0].1 < w[1].1, "{arch}: {:?} then {:?}", w[0], w[1]);
            }
            let names: HashSet<_> = t.iter().map(|&(n, _)| n).collect();
            assert_eq!(names.len(), t.len(), "{arch}: duplicate names");
        }
    }

    #[test]
    fn tables_by_name_hold_the_same_entries_sorted_by_name() {
        for arch in Arch::ALL {
            let by_name = table_by_name(arch);
            assert!(by_name.windows(2).all(|w| w[0].0 < w[1].0), "{arch}");
            let mut t = table(arch).to_vec();
            t.sort_unstable();
            let mut b = by_name.to_vec();
            b.sort_unstable();
            assert_eq!(t, b, "{arch}");
            for &(name, nr) in table(arch) {
                assert_eq!(number(arch, name), Some(nr), "{arch}: {name}");
                assert_eq!(const_number(arch, name), Some(nr), "{arch}: {name}");
            }
            assert_eq!(number(arch, "no_such_call"), None);
            assert_eq!(number(arch, ""), None);
        }
    }

    #[test]
    fn baseline_numbers_are_the_baseline_names_resolved() {
        for arch in Arch::ALL {
            let resolve = |names: &[&str]| -> Vec<u32> {
                names.iter().filter_map(|n| number(arch, n)).collect()
            };
            assert_eq!(
                baseline_allow(arch).collect::<Vec<_>>(),
                resolve(BASELINE_ALLOW)
            );
            assert_eq!(
                baseline_deny(arch).collect::<Vec<_>>(),
                resolve(BASELINE_DENY)
            );
        }
    }

    #[test]
    fn numbers_match_libc_on_the_host() {
        let arch = Arch::native();
        let libc = libc_table();
        assert!(libc.len() > 250);
        for &(sys_name, libc_nr) in libc {
            let name = sys_name.strip_prefix("SYS_").unwrap();
            assert_eq!(
                number(arch, name).map(i64::from),
                Some(libc_nr),
                "{arch}: {name}"
            );
        }
    }

    #[test]
    fn newest_syscalls_are_known() {
        for arch in Arch::ALL {
            for (name, nr) in [
                ("mseal", 462),
                ("setxattrat", 463),
                ("getxattrat", 464),
                ("listxattrat", 465),
                ("removexattrat", 466),
                ("open_tree_attr", 467),
                ("file_getattr", 468),
                ("file_setattr", 469),
                ("lsm_list_modules", 461),
                ("statmount", 457),
                ("listmount", 458),
                ("clone3", 435),
            ] {
                assert_eq!(number(arch, name), Some(nr), "{arch}: {name}");
                assert_eq!(name_of(arch, nr), Some(name));
            }
        }
        assert_eq!(number(Arch::X86_64, "uretprobe"), Some(335));
        assert_eq!(number(Arch::Aarch64, "uretprobe"), None);
        assert_eq!(number(Arch::Aarch64, "open"), None);
        assert_eq!(number(Arch::Aarch64, "openat"), Some(56));
        assert_eq!(number(Arch::Aarch64, "renameat"), Some(38));
        assert_eq!(number(Arch::Aarch64, "getrlimit"), Some(163));
        assert!(is_known("open"));
        assert!(is_known("fork"));
        assert!(!is_known("fstatat64"));
        assert!(!is_known("clone4"));
    }

    #[test]
    fn baseline_names_are_known_on_x86_64_and_unique() {
        for list in [BASELINE_ALLOW, BASELINE_DENY] {
            let mut seen = HashSet::new();
            for name in list {
                assert!(number(Arch::X86_64, name).is_some(), "unknown {name}");
                assert!(seen.insert(name), "{name} listed twice");
            }
        }
        assert!(BASELINE_DENY.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn allowable_deny_is_part_of_the_denylist() {
        for name in ALLOWABLE_DENY {
            assert!(BASELINE_DENY.contains(name), "{name}");
        }
        // The ones that stay denied each have a specific reason, except the
        // host-wide ones, which share the last.
        let host_wide = [
            "acct",
            "adjtimex",
            "clock_adjtime",
            "clock_settime",
            "quotactl",
            "quotactl_fd",
            "reboot",
            "settimeofday",
            "swapoff",
            "swapon",
            "syslog",
        ];
        for name in BASELINE_DENY.iter().filter(|n| !ALLOWABLE_DENY.contains(n)) {
            let generic = deny_reason("") == deny_reason(name);
            assert_eq!(generic, host_wide.contains(name), "{name}");
        }
    }

    #[test]
    fn baseline_allow_and_deny_are_disjoint() {
        let allow: HashSet<_> = BASELINE_ALLOW.iter().collect();
        for name in BASELINE_DENY {
            assert!(!allow.contains(name), "{name} is both allowed and denied");
        }
        // clone3 must get ENOSYS from filter A, so glibc falls back to clone.
        assert!(!allow.contains(&"clone3"));
        assert!(!allow.contains(&"pidfd_getfd"));
    }

    #[test]
    fn the_essentials_resolve_on_aarch64() {
        // The *at and generic replacements that programs fall back to there.
        for name in [
            "openat",
            "newfstatat",
            "fstat",
            "statx",
            "clone",
            "execve",
            "wait4",
            "ppoll",
            "pselect6",
            "epoll_pwait",
            "pipe2",
            "dup3",
            "mkdirat",
            "unlinkat",
            "renameat2",
            "faccessat2",
            "getdents64",
            "rt_sigreturn",
        ] {
            assert!(BASELINE_ALLOW.contains(&name), "{name}");
            assert!(number(Arch::Aarch64, name).is_some(), "{name}");
        }
    }

    #[test]
    fn suggest_finds_plausible_typos_only() {
        assert_eq!(suggest("ptrce"), Some("ptrace"));
        assert_eq!(suggest("PTRACE"), Some("ptrace"));
        assert_eq!(suggest("mmap2"), Some("mmap"));
        assert_eq!(
            suggest("landlock_restrict_slef"),
            Some("landlock_restrict_self")
        );
        assert_eq!(suggest("frobnicate_everything"), None);
        assert_eq!(suggest("xyz"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
