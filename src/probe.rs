//! What the running kernel supports: `confine probe`, `confine explain`, and
//! step 1 of `run` (DESIGN.md §1, §4).
//!
//! Why this exists: confine fails closed. A profile that asks for something
//! this kernel can't enforce (TCP port rules without Landlock ABI 4, a memory
//! limit without a memory cgroup controller, `network: none` where creating a
//! network namespace is denied) must be refused before the fork, with a line
//! that says what is missing and what to do about it. This module finds out. It
//! changes nothing: every probe reads a file or makes a syscall that leaves no
//! trace, and every failed read means "absent" (`None`, `false`, empty), never
//! a panic.
//!
//! What each probe costs:
//! - Landlock: one `landlock_create_ruleset(NULL, 0, VERSION)` syscall, which
//!   returns the ABI version and creates nothing. [`landlock_abi`] is this probe
//!   alone, cheap enough for every `run`.
//! - seccomp: `prctl(PR_GET_SECCOMP)`, then `prctl(PR_SET_SECCOMP,
//!   SECCOMP_MODE_FILTER, NULL)`: with filter support the kernel fails with
//!   EFAULT reading the NULL program, before installing anything. Plus one read
//!   of `/proc/sys/kernel/seccomp/actions_avail`.
//! - Namespaces: one short-lived child per namespace type, all forked before
//!   any is waited for; each child calls `unshare` and exits, and its namespace
//!   dies with it. This is the only probe that costs real time (a fork each),
//!   and the only honest one: sysctls, capabilities, AppArmor and a container's
//!   own seccomp filter all have a say, and only the kernel knows their sum.
//!   It runs in a child because a namespace can't be left once entered, and
//!   because `unshare(CLONE_NEWUSER)` refuses a multithreaded caller.
//! - cgroups: `/proc/self/mountinfo`, `/proc/self/cgroup`, a few
//!   `cgroup.controllers` files and `access(W_OK)` on our own cgroups.
//! - sysctls: one small `/proc/sys` read each.
//!
//! [`probe`] runs all of them (a few milliseconds); `implications` turns every
//! missing piece into what it means for a profile.

use std::fmt::Write as _;
use std::fs;

use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{access, fork, geteuid, AccessFlags, ForkResult, Pid};
use serde::Serialize;

use crate::procfs::{self_cgroup, self_mountinfo, CgroupLine, MountInfo};

/// Everything `confine probe` reports. Serializes to stable snake_case JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub kernel: Kernel,
    /// Effective uid of the probing process: namespace and cgroup answers
    /// depend on it.
    pub euid: u32,
    pub landlock: Landlock,
    pub seccomp: Seccomp,
    pub namespaces: Namespaces,
    pub cgroups: Cgroups,
    pub sysctls: Sysctls,
    pub memfd: Memfd,
    /// Whether `network.mode: proxy` can be set up here.
    pub egress_proxy: EgressProxy,
    /// Which sources of `denied` records this host offers (DESIGN.md §13).
    pub denials: DenialSources,
    /// For every missing piece, what it means for a profile. Empty when
    /// everything confine can enforce is available.
    pub implications: Vec<String>,
}

/// Where `denied` records can come from here, each with why not when not.
#[derive(Debug, Clone, Serialize)]
pub struct DenialSources {
    /// The seccomp denylist's calls (`on_violation: errno`), through a
    /// listener the supervisor answers.
    pub seccomp: Source,
    /// The egress proxy's refusals (`network.mode: proxy`).
    pub network: Source,
    /// Landlock's denials, through the kernel's audit.
    pub landlock: Source,
}

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

impl Source {
    fn of(r: Result<(), String>) -> Source {
        Source {
            available: r.is_ok(),
            missing: r.err(),
        }
    }
}

/// What `network.mode: proxy` needs of the host: a network namespace of
/// the sandbox's own (the proxy's sockets are made inside it and it dials
/// out from the host; no other kernel feature is involved).
#[derive(Debug, Clone, Serialize)]
pub struct EgressProxy {
    pub possible: bool,
    /// The deciding fact, in words.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kernel {
    /// `uname -r`; empty if uname failed.
    pub release: String,
    /// `uname -m`, e.g. `x86_64`.
    pub arch: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Landlock {
    /// The Landlock ABI version; `None` when Landlock is missing or disabled.
    pub abi: Option<u32>,
    /// Why `abi` is `None`.
    pub unavailable: Option<String>,
    /// What each ABI level above this kernel's would add, as consequences for
    /// a profile. Empty on ABI 7 and later.
    pub missing: Vec<LandlockGap>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LandlockGap {
    /// The ABI level that brings the feature.
    pub abi: u32,
    /// The feature, as the kernel names it.
    pub feature: &'static str,
    /// What its absence means for a profile.
    pub consequence: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Seccomp {
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` is supported.
    pub filter_available: bool,
    /// `prctl(PR_GET_SECCOMP)`: 0 = none, 2 = this process already runs under a
    /// filter (a container's, say; ours stack on top). `None` without seccomp.
    pub current_mode: Option<u32>,
    /// `/proc/sys/kernel/seccomp/actions_avail`; `None` when unreadable.
    pub actions_avail: Option<Vec<String>>,
    /// Actions confine uses that are not in `actions_avail`.
    pub missing_actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Namespaces {
    pub user: NamespaceCheck,
    pub mount: NamespaceCheck,
    pub net: NamespaceCheck,
    pub pid: NamespaceCheck,
    pub ipc: NamespaceCheck,
    pub uts: NamespaceCheck,
    pub cgroup: NamespaceCheck,
    /// Whether a user without privileges could create a user namespace, which
    /// is what confine needs when it is not run as root.
    pub unprivileged_userns: UnprivilegedUserns,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceCheck {
    /// A child of this process could `unshare` this namespace just now.
    pub can_create: bool,
    /// Why not, e.g. `EPERM: Operation not permitted`.
    pub error: Option<String>,
    /// Only when not root and `can_create` is false: whether it can be
    /// created together with a new user namespace, as confine does then.
    pub inside_user_namespace: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnprivilegedUserns {
    /// `/proc/sys/user/max_user_namespaces`; 0 blocks everyone.
    pub max_user_namespaces: Option<i64>,
    /// `/proc/sys/kernel/unprivileged_userns_clone` (Debian); 0 blocks.
    pub unprivileged_userns_clone: Option<i64>,
    /// `/proc/sys/kernel/apparmor_restrict_unprivileged_userns` (Ubuntu); 1
    /// strips every capability inside the namespace, so confine can't mount.
    pub apparmor_restrict_unprivileged_userns: Option<i64>,
    /// An unprivileged user could create a working user namespace.
    pub allowed: bool,
    /// true: tested as this (unprivileged) user; false: predicted from the
    /// sysctls above because the probe ran as root.
    pub tested: bool,
    /// The deciding fact, in words.
    pub reason: String,
    /// A command that would allow them, when a sysctl is what blocks them.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cgroups {
    /// The cgroup v2 (unified) mount, if any.
    pub v2: Option<CgroupV2>,
    /// Each mounted cgroup v1 hierarchy.
    pub v1: Vec<CgroupV1>,
    /// Which mechanism would enforce each cgroup limit of a profile.
    pub limits: CgroupLimits,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupV2 {
    pub mount_point: String,
    /// `cgroup.controllers` at the mount root: controllers bound to v2 (a
    /// controller bound to a v1 hierarchy is missing here).
    pub controllers: Option<Vec<String>>,
    /// Our cgroup, from the `0::` line of `/proc/self/cgroup`.
    pub own_path: Option<String>,
    /// Our cgroup's directory under `mount_point`.
    pub own_dir: Option<String>,
    /// `cgroup.controllers` of our own cgroup: what a child of it can get.
    pub own_controllers: Option<Vec<String>>,
    /// `access(own_dir, W_OK)`: we could create a child cgroup.
    pub writable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupV1 {
    /// Controllers bound to this hierarchy, e.g. `["cpu", "cpuacct"]`.
    pub controllers: Vec<String>,
    /// `name=` of a named hierarchy without controllers (e.g. `systemd`).
    pub name: Option<String>,
    pub mount_point: String,
    /// Our cgroup in this hierarchy, from `/proc/self/cgroup`.
    pub own_path: Option<String>,
    pub own_dir: Option<String>,
    pub writable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupLimits {
    /// `limits.memory`
    pub memory: LimitSupport,
    /// `limits.pids`
    pub pids: LimitSupport,
    /// `limits.cpu`
    pub cpu: LimitSupport,
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitSupport {
    pub mechanism: CgroupMechanism,
    /// The cgroup under which confine would create the sandbox's own.
    pub parent: Option<String>,
    /// cgroup v2: confine would first move itself from `parent` into a
    /// leaf cgroup, being alone there (the no-internal-processes rule).
    pub moves_aside: bool,
    /// Why `mechanism` is `none`.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CgroupMechanism {
    #[serde(rename = "v2")]
    V2,
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "none")]
    Missing,
}

/// How sandboxes started by this process keep memfds from being executed
/// (see `sandbox::memfd`).
#[derive(Debug, Clone, Serialize)]
pub struct Memfd {
    /// `vm.memfd_noexec` of this PID namespace (Linux 6.3); `None` without it.
    pub noexec_sysctl: Option<i64>,
    /// This process could set it in a sandbox's PID namespace.
    pub sysctl_writable: bool,
    /// What a sandbox gets (unless its exec grants cover `/`).
    pub policy: crate::sandbox::memfd::Policy,
}

/// Host sysctls that change what an agent could do or what confine can do.
/// Absent file = `None`.
#[derive(Debug, Clone, Serialize)]
pub struct Sysctls {
    pub kernel_unprivileged_userns_clone: Option<i64>,
    pub user_max_user_namespaces: Option<i64>,
    pub dev_tty_legacy_tiocsti: Option<i64>,
    pub kernel_io_uring_disabled: Option<i64>,
    pub kernel_yama_ptrace_scope: Option<i64>,
    pub kernel_unprivileged_bpf_disabled: Option<i64>,
    pub kernel_perf_event_paranoid: Option<i64>,
}

/// Probe everything: for `confine probe` and `confine explain`.
pub fn probe() -> Probe {
    let euid = geteuid().as_raw();
    let sysctls = probe_sysctls();
    let mut p = Probe {
        kernel: probe_kernel(),
        euid,
        landlock: probe_landlock(),
        seccomp: probe_seccomp(),
        namespaces: probe_namespaces(euid, &sysctls),
        cgroups: probe_cgroups(),
        sysctls,
        memfd: probe_memfd(euid),
        egress_proxy: EgressProxy {
            possible: false,
            reason: String::new(),
        },
        denials: DenialSources {
            seccomp: Source::of(Ok(())),
            network: Source::of(Ok(())),
            landlock: Source::of(Ok(())),
        },
        implications: Vec::new(),
    };
    p.egress_proxy = egress_proxy(&p.namespaces);
    p.denials = denial_sources(&p);
    p.implications = implications(&p);
    p
}

fn denial_sources(p: &Probe) -> DenialSources {
    let notif = p
        .seccomp
        .actions_avail
        .as_ref()
        .is_some_and(|a| a.iter().any(|x| x == "user_notif"));
    let seccomp = if !p.seccomp.filter_available {
        Err("seccomp filters are unavailable".to_string())
    } else if !notif {
        Err("the kernel lacks SECCOMP_RET_USER_NOTIF (actions_avail)".to_string())
    } else {
        Ok(())
    };
    let network = if p.egress_proxy.possible {
        Ok(())
    } else {
        Err(format!("no egress proxy here: {}", p.egress_proxy.reason))
    };
    let landlock = match p.landlock.abi {
        Some(abi) => crate::denials::landlock::status(abi),
        None => Err("Landlock is unavailable".to_string()),
    };
    DenialSources {
        seccomp: Source::of(seccomp),
        network: Source::of(network),
        landlock: Source::of(landlock),
    }
}

/// The Landlock ABI version, or `None` when Landlock is not built in
/// (ENOSYS) or not enabled at boot (EOPNOTSUPP). One syscall; creates nothing.
pub(crate) fn landlock_abi() -> Option<u32> {
    landlock_abi_raw().ok()
}

fn landlock_abi_raw() -> Result<u32, Errno> {
    crate::sandbox::landlock::kernel_abi()
}

fn egress_proxy(ns: &Namespaces) -> EgressProxy {
    let net = &ns.net;
    if net.can_create {
        EgressProxy {
            possible: true,
            reason: "network namespaces can be created".into(),
        }
    } else if net.inside_user_namespace == Some(true) {
        EgressProxy {
            possible: true,
            reason: "network namespaces can be created inside a new user namespace".into(),
        }
    } else {
        EgressProxy {
            possible: false,
            reason: format!(
                "no network namespace ({})",
                net.error.as_deref().unwrap_or("unknown")
            ),
        }
    }
}

fn probe_kernel() -> Kernel {
    match nix::sys::utsname::uname() {
        Ok(u) => Kernel {
            release: u.release().to_string_lossy().into_owned(),
            arch: u.machine().to_string_lossy().into_owned(),
        },
        Err(_) => Kernel {
            release: String::new(),
            arch: std::env::consts::ARCH.to_string(),
        },
    }
}

// ---------------------------------------------------------------- Landlock

/// What each ABI level adds, phrased as what its absence means for a profile.
const LANDLOCK_FEATURES: [(u32, &str, &str); 7] = [
    (
        1,
        "filesystem access rights",
        "filesystem.read/write/exec can't be enforced: no Landlock (ABI 1, Linux 5.13)",
    ),
    (
        2,
        "LANDLOCK_ACCESS_FS_REFER",
        "rename and link across directories always fail with EXDEV, even inside \
         filesystem.write: Landlock ABI < 2 can't allow reparenting (Linux 5.19)",
    ),
    (
        3,
        "LANDLOCK_ACCESS_FS_TRUNCATE",
        "truncate(2) isn't checked by Landlock (ABI < 3, Linux 6.2): outside \
         filesystem.write only the read-only mounts stop it",
    ),
    (
        4,
        "LANDLOCK_ACCESS_NET_BIND_TCP/CONNECT_TCP",
        "network.connect_tcp/bind_tcp can't be enforced: Landlock ABI < 4 has no TCP \
         rules (Linux 6.7); network: none and loopback still isolate through the \
         network namespace",
    ),
    (
        5,
        "LANDLOCK_ACCESS_FS_IOCTL_DEV",
        "ioctl on device files (/dev/tty, /dev/pts) isn't restricted by Landlock \
         (ABI < 5, Linux 6.10): only the seccomp ioctl rules (TIOCSTI, TIOCLINUX) \
         guard terminals",
    ),
    (
        6,
        "LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET/SIGNAL",
        "abstract unix sockets and signals can't be scoped by Landlock (ABI < 6, \
         Linux 6.12): with network: host, abstract sockets of host processes stay \
         reachable; signals are contained by the PID namespace alone",
    ),
    (
        7,
        "LANDLOCK_RESTRICT_SELF_LOG_* (audit)",
        "Landlock denials can't be sent to the kernel audit log (ABI < 7, Linux \
         6.15): they still fail, silently",
    ),
];

fn landlock_gaps(abi: Option<u32>) -> Vec<LandlockGap> {
    let have = abi.unwrap_or(0);
    LANDLOCK_FEATURES
        .iter()
        .filter(|(level, _, _)| *level > have)
        .map(|&(abi, feature, consequence)| LandlockGap {
            abi,
            feature,
            consequence,
        })
        .collect()
}

fn probe_landlock() -> Landlock {
    match landlock_abi_raw() {
        Ok(abi) => Landlock {
            abi: Some(abi),
            unavailable: None,
            missing: landlock_gaps(Some(abi)),
        },
        Err(e) => {
            let why = match e {
                Errno::ENOSYS => "not built into this kernel (ENOSYS)".to_string(),
                Errno::EOPNOTSUPP => "built in but not enabled at boot (EOPNOTSUPP): add \
                                      landlock to the lsm= kernel parameter"
                    .to_string(),
                other => format!("landlock_create_ruleset failed: {other}"),
            };
            Landlock {
                abi: None,
                unavailable: Some(why),
                missing: landlock_gaps(None),
            }
        }
    }
}

// ----------------------------------------------------------------- seccomp

/// Actions confine's filters use, and what needs each (DESIGN.md §5).
const SECCOMP_ACTIONS_USED: [(&str, &str); 3] = [
    ("errno", "the seccomp baseline (ENOSYS/EPERM verdicts)"),
    (
        "kill_process",
        "syscalls.on_violation: kill and the foreign-architecture check",
    ),
    ("log", "syscalls.on_violation: log"),
];

fn probe_seccomp() -> Seccomp {
    // SAFETY: PR_GET_SECCOMP takes no pointer and changes nothing.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    let current_mode = u32::try_from(mode).ok();
    // SAFETY: with a NULL program the kernel fails with EFAULT while copying
    // the program header, before any check or installation; nothing of ours is
    // read or written. Without filter support it fails with EINVAL instead.
    let set = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::c_ulong::from(libc::SECCOMP_MODE_FILTER),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    let filter_available = current_mode.is_some() && set < 0 && Errno::last() == Errno::EFAULT;
    let actions_avail = fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .ok()
        .map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>());
    let missing_actions = match &actions_avail {
        Some(list) => SECCOMP_ACTIONS_USED
            .iter()
            .filter(|(a, _)| !list.iter().any(|l| l == a))
            .map(|(a, _)| a.to_string())
            .collect(),
        None => Vec::new(),
    };
    Seccomp {
        filter_available,
        current_mode,
        actions_avail,
        missing_actions,
    }
}

// -------------------------------------------------------------- namespaces

/// The namespaces probed, in the order of the fields of [`Namespaces`]; the
/// user namespace comes first.
const NAMESPACE_KINDS: [CloneFlags; 7] = [
    CloneFlags::CLONE_NEWUSER,
    CloneFlags::CLONE_NEWNS,
    CloneFlags::CLONE_NEWNET,
    CloneFlags::CLONE_NEWPID,
    CloneFlags::CLONE_NEWIPC,
    CloneFlags::CLONE_NEWUTS,
    CloneFlags::CLONE_NEWCGROUP,
];

/// Fork a child that calls `unshare(flags)` and exits with 0 or the errno.
fn spawn_unshare_child(flags: CloneFlags) -> Result<Pid, Errno> {
    // SAFETY: the child only calls unshare(2) and _exit(2), both
    // async-signal-safe: no allocation, no locks, no stdio, so forking a
    // possibly multithreaded process is sound.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = match unshare(flags) {
                Ok(()) => 0,
                Err(e) if e as i32 > 0 && (e as i32) < 256 => e as i32,
                Err(_) => 255,
            };
            // SAFETY: _exit ends the child at once, without running atexit
            // handlers or flushing stdio buffers that belong to the parent.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

/// Wait for a child of [`spawn_unshare_child`] and turn its status into the
/// outcome of its `unshare`.
fn reap_unshare_child(child: Pid) -> Result<(), String> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(WaitStatus::Exited(_, 255)) => return Err("unshare failed".to_string()),
            Ok(WaitStatus::Exited(_, code)) => return Err(Errno::from_raw(code).to_string()),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Err(format!("probe child killed by {sig} (a seccomp filter?)"))
            }
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("could not reap the probe child: {e}")),
        }
    }
}

/// Test each set of flags in its own child; the children run concurrently.
fn try_unshare_all(flags: &[CloneFlags]) -> Vec<Result<(), String>> {
    let children: Vec<Result<Pid, Errno>> = flags.iter().map(|&f| spawn_unshare_child(f)).collect();
    children
        .into_iter()
        .map(|c| match c {
            Ok(pid) => reap_unshare_child(pid),
            Err(e) => Err(format!("fork failed: {e}")),
        })
        .collect()
}

fn probe_namespaces(euid: u32, sysctls: &Sysctls) -> Namespaces {
    let direct = try_unshare_all(&NAMESPACE_KINDS);
    let mut checks: Vec<NamespaceCheck> = direct
        .iter()
        .map(|r| NamespaceCheck {
            can_create: r.is_ok(),
            error: r.as_ref().err().cloned(),
            inside_user_namespace: None,
        })
        .collect();

    // Not root: confine creates the user namespace first and the others
    // inside it (DESIGN.md §4 step 5), so test that combination too.
    let user_ok = checks[0].can_create;
    if euid != 0 && user_ok {
        let retry: Vec<usize> = (1..checks.len())
            .filter(|&i| !checks[i].can_create)
            .collect();
        let combined: Vec<CloneFlags> = retry
            .iter()
            .map(|&i| CloneFlags::CLONE_NEWUSER | NAMESPACE_KINDS[i])
            .collect();
        for (i, r) in retry.iter().zip(try_unshare_all(&combined)) {
            checks[*i].inside_user_namespace = Some(r.is_ok());
        }
    }

    let apparmor = read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let unprivileged_userns = unprivileged_verdict(
        euid,
        &checks[0],
        sysctls.user_max_user_namespaces,
        sysctls.kernel_unprivileged_userns_clone,
        apparmor,
    );

    let mut it = checks.into_iter();
    let mut next = || {
        it.next().unwrap_or(NamespaceCheck {
            can_create: false,
            error: Some("not probed".to_string()),
            inside_user_namespace: None,
        })
    };
    Namespaces {
        user: next(),
        mount: next(),
        net: next(),
        pid: next(),
        ipc: next(),
        uts: next(),
        cgroup: next(),
        unprivileged_userns,
    }
}

/// Could a user without privileges create a usable user namespace? Tested
/// when we are that user; predicted from the sysctls when we are root.
fn unprivileged_verdict(
    euid: u32,
    user: &NamespaceCheck,
    max_user_namespaces: Option<i64>,
    unprivileged_userns_clone: Option<i64>,
    apparmor_restrict: Option<i64>,
) -> UnprivilegedUserns {
    let blocker: Option<(String, String)> = if max_user_namespaces == Some(0) {
        Some((
            "user.max_user_namespaces is 0".to_string(),
            "sysctl -w user.max_user_namespaces=15000".to_string(),
        ))
    } else if unprivileged_userns_clone == Some(0) {
        Some((
            "kernel.unprivileged_userns_clone is 0".to_string(),
            "sysctl -w kernel.unprivileged_userns_clone=1".to_string(),
        ))
    } else if apparmor_restrict == Some(1) {
        Some((
            "kernel.apparmor_restrict_unprivileged_userns is 1 (AppArmor strips \
             capabilities inside the namespace)"
                .to_string(),
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor \
             profile with `userns,` for confine"
                .to_string(),
        ))
    } else {
        None
    };
    let tested = euid != 0;
    let (allowed, reason, fix) = match (tested, user.can_create, blocker) {
        // Tested as an unprivileged user and it worked; only AppArmor can make
        // a namespace that unshare grants useless, and it was caught above.
        (true, true, None) => (true, "created one as this user".to_string(), None),
        (true, _, Some((why, fix))) => (false, why, Some(fix)),
        (true, false, None) => (
            false,
            format!(
                "unshare(CLONE_NEWUSER) failed: {}",
                user.error.as_deref().unwrap_or("unknown error")
            ),
            None,
        ),
        (false, _, Some((why, fix))) => (false, why, Some(fix)),
        (false, false, None) => (
            false,
            format!(
                "even root can't create one: {}",
                user.error.as_deref().unwrap_or("unknown error")
            ),
            None,
        ),
        (false, true, None) => (true, "no sysctl blocks them".to_string(), None),
    };
    UnprivilegedUserns {
        max_user_namespaces,
        unprivileged_userns_clone,
        apparmor_restrict_unprivileged_userns: apparmor_restrict,
        allowed,
        tested,
        reason,
        fix,
    }
}

// ----------------------------------------------------------------- cgroups

/// The directory of cgroup `path` in a hierarchy mounted at `mount_point`,
/// as the cgroup module finds it for `run` (one discovery: a path outside
/// the mount or with `..` in it is no directory of ours).
fn cgroup_dir(mount_point: &str, mount_root: &str, path: &str) -> Option<String> {
    crate::sandbox::cgroup::cgroup_dir(std::path::Path::new(mount_point), mount_root, path)
        .map(|d| d.display().to_string())
}

fn writable(dir: &str) -> bool {
    access(dir, AccessFlags::W_OK).is_ok()
}

fn read_list(path: &str) -> Option<Vec<String>> {
    let s = fs::read_to_string(path).ok()?;
    Some(s.split_whitespace().map(str::to_string).collect())
}

fn probe_cgroups() -> Cgroups {
    let (v2, v1) = cgroups_from(&self_mountinfo(), &self_cgroup(), &|dir| {
        let controllers = read_list(&format!("{dir}/cgroup.controllers"));
        (controllers, writable(dir))
    });
    // The same decision `run` makes, from the module that makes it.
    let placed = crate::sandbox::cgroup::placements();
    let get = |key: &str| {
        limit_support(
            placed
                .iter()
                .find(|(k, _)| *k == key)
                .map_or_else(|| Err(format!("{key}: not placed")), |(_, p)| p.clone()),
        )
    };
    let limits = CgroupLimits {
        memory: get("limits.memory"),
        pids: get("limits.pids"),
        cpu: get("limits.cpu"),
    };
    Cgroups { v2, v1, limits }
}

/// Reads a cgroup directory: its `cgroup.controllers` and whether it is
/// writable.
type InspectDir<'a> = dyn Fn(&str) -> (Option<Vec<String>>, bool) + 'a;

/// Assemble the v2 mount and v1 hierarchies from parsed mountinfo and
/// /proc/self/cgroup. `inspect(dir)` returns a directory's
/// `cgroup.controllers` (meaningful for v2 only) and whether it is writable;
/// tests pass a fake.
fn cgroups_from(
    mounts: &[MountInfo],
    own: &[CgroupLine],
    inspect: &InspectDir<'_>,
) -> (Option<CgroupV2>, Vec<CgroupV1>) {
    let v2 = mounts.iter().find(|m| m.fstype == "cgroup2").map(|m| {
        let own_path = own
            .iter()
            .find(|l| l.hierarchy == 0 && l.controllers.is_empty() && l.name.is_none())
            .map(|l| l.path.clone());
        let own_dir = own_path
            .as_deref()
            .and_then(|p| cgroup_dir(&m.mount_point, &m.root, p));
        let (controllers, _) = inspect(&m.mount_point);
        let (own_controllers, writable) = match &own_dir {
            Some(d) => inspect(d),
            None => (None, false),
        };
        CgroupV2 {
            mount_point: m.mount_point.clone(),
            controllers,
            own_path,
            own_dir,
            own_controllers,
            writable,
        }
    });

    let mut v1: Vec<CgroupV1> = Vec::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        let controllers = m.v1_controllers();
        let name = m.v1_name();
        // The same hierarchy mounted twice (a bind mount) is listed once.
        if v1
            .iter()
            .any(|h| h.controllers == controllers && h.name == name)
        {
            continue;
        }
        let own_path = own
            .iter()
            .find(|l| {
                l.hierarchy != 0
                    && (l.controllers.iter().any(|c| controllers.contains(c))
                        || (name.is_some() && l.name == name))
            })
            .map(|l| l.path.clone());
        let own_dir = own_path
            .as_deref()
            .and_then(|p| cgroup_dir(&m.mount_point, &m.root, p));
        let writable = own_dir.as_deref().map(|d| inspect(d).1).unwrap_or(false);
        v1.push(CgroupV1 {
            controllers,
            name,
            mount_point: m.mount_point.clone(),
            own_path,
            own_dir,
            writable,
        });
    }
    (v2, v1)
}

/// A placement from the cgroup module, as `probe` shows it.
fn limit_support(p: Result<crate::sandbox::cgroup::Placement, String>) -> LimitSupport {
    use crate::sandbox::cgroup::Mechanism;
    match p {
        Ok(p) => LimitSupport {
            mechanism: match p.mechanism {
                Mechanism::V2 => CgroupMechanism::V2,
                Mechanism::V1 => CgroupMechanism::V1,
            },
            parent: Some(p.parent.display().to_string()),
            moves_aside: p.leaf,
            reason: None,
        },
        Err(why) => LimitSupport {
            mechanism: CgroupMechanism::Missing,
            parent: None,
            moves_aside: false,
            reason: Some(why),
        },
    }
}

// ------------------------------------------------------------------- memfd

fn probe_memfd(euid: u32) -> Memfd {
    use crate::sandbox::memfd;
    let writable = memfd::sysctl_writable();
    Memfd {
        noexec_sysctl: memfd::noexec_sysctl(),
        sysctl_writable: writable,
        policy: if euid == 0 && writable {
            memfd::Policy::NoExec
        } else {
            memfd::Policy::Unavailable
        },
    }
}

// ----------------------------------------------------------------- sysctls

fn read_sysctl(path: &str) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn probe_sysctls() -> Sysctls {
    Sysctls {
        kernel_unprivileged_userns_clone: read_sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
        user_max_user_namespaces: read_sysctl("/proc/sys/user/max_user_namespaces"),
        dev_tty_legacy_tiocsti: read_sysctl("/proc/sys/dev/tty/legacy_tiocsti"),
        kernel_io_uring_disabled: read_sysctl("/proc/sys/kernel/io_uring_disabled"),
        kernel_yama_ptrace_scope: read_sysctl("/proc/sys/kernel/yama/ptrace_scope"),
        kernel_unprivileged_bpf_disabled: read_sysctl("/proc/sys/kernel/unprivileged_bpf_disabled"),
        kernel_perf_event_paranoid: read_sysctl("/proc/sys/kernel/perf_event_paranoid"),
    }
}

// ------------------------------------------------------------ implications

const STRICT: &str = "refused under compat: strict";

/// What each missing piece means for a profile.
fn implications(p: &Probe) -> Vec<String> {
    let mut out = Vec::new();

    match (&p.landlock.abi, &p.landlock.unavailable) {
        (None, why) => out.push(format!(
            "Landlock unavailable ({}): filesystem.read/write/exec and \
             network.connect_tcp/bind_tcp can't be enforced; every profile is {STRICT}",
            why.as_deref().unwrap_or("unknown")
        )),
        (Some(abi), _) => out.extend(
            p.landlock
                .missing
                .iter()
                .map(|g| format!("Landlock ABI {abi} < {}: {}", g.abi, g.consequence)),
        ),
    }

    let s = &p.seccomp;
    if !s.filter_available {
        out.push(format!(
            "seccomp filters unavailable: the syscall baseline can't be installed; every \
             profile is {STRICT}"
        ));
    } else if s.actions_avail.is_none() {
        out.push(
            "/proc/sys/kernel/seccomp/actions_avail unreadable: which seccomp actions work \
             is unknown"
                .to_string(),
        );
    }
    for a in &s.missing_actions {
        let needed_by = SECCOMP_ACTIONS_USED
            .iter()
            .find(|(name, _)| name == a)
            .map_or("", |(_, by)| by);
        out.push(format!(
            "seccomp action {a} unavailable: {needed_by} can't be enforced ({STRICT})"
        ));
    }

    let ns = &p.namespaces;
    let usable = |c: &NamespaceCheck| c.can_create || c.inside_user_namespace == Some(true);
    let ns_consequences: [(&str, &NamespaceCheck, &str); 6] = [
        (
            "mount",
            &ns.mount,
            "the read-only view, filesystem.tmp, filesystem.protect and the minimal /dev \
             can't be set up; every profile is",
        ),
        (
            "net",
            &ns.net,
            "network: none, loopback and proxy can't be enforced (only network: host \
             profiles can run); they are",
        ),
        (
            "pid",
            &ns.pid,
            "the agent would see host processes and confine's init couldn't take the whole \
             tree down with it; every profile is",
        ),
        (
            "ipc",
            &ns.ipc,
            "the agent would share System V IPC and POSIX message queues with the host; \
             profiles are",
        ),
        (
            "uts",
            &ns.uts,
            "the sandbox can't get its own hostname; profiles are",
        ),
        (
            "cgroup",
            &ns.cgroup,
            "the agent would see the host's cgroup paths; profiles are",
        ),
    ];
    // Not root: without a working user namespace nothing else can be set up.
    if p.euid != 0 && !ns.unprivileged_userns.allowed {
        out.push(format!(
            "no user namespace as uid {} ({}): confine can't sandbox without root here; run \
             it as root{}",
            p.euid,
            ns.unprivileged_userns.reason,
            ns.unprivileged_userns
                .fix
                .as_deref()
                .map(|f| format!(", or allow them: {f}"))
                .unwrap_or_default()
        ));
    } else {
        for (name, check, what) in ns_consequences {
            if !usable(check) {
                out.push(format!(
                    "no {name} namespace ({}): {what} {STRICT}",
                    check.error.as_deref().unwrap_or("unknown error")
                ));
            }
        }
    }
    if p.euid == 0 && !ns.unprivileged_userns.allowed {
        out.push(format!(
            "user namespaces blocked for unprivileged users ({}): run confine as root{}",
            ns.unprivileged_userns.reason,
            ns.unprivileged_userns
                .fix
                .as_deref()
                .map(|f| format!(", or allow them: {f}"))
                .unwrap_or_default()
        ));
    }

    if p.memfd.policy == crate::sandbox::memfd::Policy::Unavailable {
        out.push(format!(
            "vm.memfd_noexec {}: memfds can't be made non-executable, so memfd_create fails \
             with ENOSYS in every sandbox (programs fall back to files; the few that need \
             memfds fail)",
            match p.memfd.noexec_sysctl {
                None => "is missing (Linux < 6.3)",
                Some(_) if p.euid != 0 => "can only be set by root",
                Some(_) => "is not writable here (/proc/sys read-only?)",
            }
        ));
    }

    let l = &p.cgroups.limits;
    for (key, support) in [("memory", &l.memory), ("pids", &l.pids), ("cpu", &l.cpu)] {
        if support.mechanism == CgroupMechanism::Missing {
            out.push(format!(
                "no usable cgroup controller for {key} ({}): limits.{key} will be {STRICT}",
                support.reason.as_deref().unwrap_or("unknown")
            ));
        }
    }
    out
}

// ------------------------------------------------------------------- text

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn opt_num(v: Option<i64>) -> String {
    v.map_or_else(|| "absent".to_string(), |v| v.to_string())
}

fn opt_list(v: &Option<Vec<String>>) -> String {
    match v {
        None => "unreadable".to_string(),
        Some(l) if l.is_empty() => "(none)".to_string(),
        Some(l) => l.join(" "),
    }
}

impl Probe {
    /// The human report of `confine probe`.
    pub fn render_text(&self) -> String {
        let mut t = String::new();
        // Writing to a String can't fail; the results are ignored on purpose.
        let _ = writeln!(
            t,
            "kernel      {} ({}), probed as uid {}",
            if self.kernel.release.is_empty() {
                "unknown"
            } else {
                &self.kernel.release
            },
            self.kernel.arch,
            self.euid
        );

        let _ = match (&self.landlock.abi, &self.landlock.unavailable) {
            (Some(abi), _) if self.landlock.missing.is_empty() => {
                writeln!(t, "landlock    ABI {abi}: every feature confine uses")
            }
            (Some(abi), _) => writeln!(
                t,
                "landlock    ABI {abi}: lacks {}",
                self.landlock
                    .missing
                    .iter()
                    .map(|g| format!("{} (ABI {})", g.feature, g.abi))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, why) => writeln!(
                t,
                "landlock    unavailable: {}",
                why.as_deref().unwrap_or("unknown")
            ),
        };

        let s = &self.seccomp;
        let _ = writeln!(
            t,
            "seccomp     filter mode: {}{}; actions: {}",
            yes_no(s.filter_available),
            if s.current_mode == Some(2) {
                " (this process already runs under a filter)"
            } else {
                ""
            },
            opt_list(&s.actions_avail)
        );

        let d = &self.denials;
        let _ = writeln!(
            t,
            "denials     (what `denied` records and `confine why` can report)"
        );
        for (name, src, what) in [
            (
                "seccomp",
                &d.seccomp,
                "denylisted calls under on_violation: errno",
            ),
            ("network", &d.network, "the egress proxy's refusals"),
            ("landlock", &d.landlock, "files and ports Landlock refused"),
        ] {
            let _ = match &src.missing {
                None => writeln!(t, "  {name:<8}  yes: {what}"),
                Some(why) => writeln!(t, "  {name:<8}  no: {why}"),
            };
        }

        let ns = &self.namespaces;
        let _ = writeln!(t, "namespaces");
        for (name, c) in [
            ("user", &ns.user),
            ("mount", &ns.mount),
            ("net", &ns.net),
            ("pid", &ns.pid),
            ("ipc", &ns.ipc),
            ("uts", &ns.uts),
            ("cgroup", &ns.cgroup),
        ] {
            let detail = match (&c.error, c.inside_user_namespace) {
                (None, _) => String::new(),
                (Some(e), Some(true)) => format!(" ({e}; works inside a new user namespace)"),
                (Some(e), _) => format!(" ({e})"),
            };
            let _ = writeln!(t, "  {name:<8}  {}{detail}", yes_no(c.can_create));
        }
        let u = &ns.unprivileged_userns;
        let _ = writeln!(
            t,
            "  unprivileged user namespaces: {} ({}: {}{})",
            if u.allowed { "allowed" } else { "blocked" },
            if u.tested {
                "tested"
            } else {
                "predicted, probed as root"
            },
            u.reason,
            u.fix
                .as_deref()
                .map(|f| format!("; fix: {f}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            t,
            "    user.max_user_namespaces={} kernel.unprivileged_userns_clone={} \
             kernel.apparmor_restrict_unprivileged_userns={}",
            opt_num(u.max_user_namespaces),
            opt_num(u.unprivileged_userns_clone),
            opt_num(u.apparmor_restrict_unprivileged_userns)
        );

        let _ = writeln!(
            t,
            "  network.mode proxy: {} ({})",
            if self.egress_proxy.possible {
                "possible"
            } else {
                "not possible"
            },
            self.egress_proxy.reason
        );

        let cg = &self.cgroups;
        let _ = writeln!(t, "cgroups");
        match &cg.v2 {
            Some(v2) => {
                let _ = writeln!(
                    t,
                    "  v2  {}  controllers: {}",
                    v2.mount_point,
                    opt_list(&v2.controllers)
                );
                let _ = writeln!(
                    t,
                    "      own {} ({}writable), offers: {}",
                    v2.own_path.as_deref().unwrap_or("unknown"),
                    if v2.writable { "" } else { "not " },
                    opt_list(&v2.own_controllers)
                );
            }
            None => {
                let _ = writeln!(t, "  v2  not mounted");
            }
        }
        for h in &cg.v1 {
            let what = match (&h.name, h.controllers.is_empty()) {
                (Some(n), true) => format!("name={n}"),
                _ => h.controllers.join(","),
            };
            let _ = writeln!(
                t,
                "  v1  {:<14} {:<26} own {} ({}writable)",
                what,
                h.mount_point,
                h.own_path.as_deref().unwrap_or("unknown"),
                if h.writable { "" } else { "not " }
            );
        }
        for (key, l) in [
            ("memory", &cg.limits.memory),
            ("pids", &cg.limits.pids),
            ("cpu", &cg.limits.cpu),
        ] {
            let how = match l.mechanism {
                CgroupMechanism::V2 => format!(
                    "cgroup v2 under {}{}",
                    l.parent.as_deref().unwrap_or("?"),
                    if l.moves_aside {
                        " (confine first moves itself into a leaf cgroup there)"
                    } else {
                        ""
                    }
                ),
                CgroupMechanism::V1 => {
                    format!("cgroup v1 under {}", l.parent.as_deref().unwrap_or("?"))
                }
                CgroupMechanism::Missing => format!(
                    "not enforceable: {}",
                    l.reason.as_deref().unwrap_or("unknown")
                ),
            };
            let _ = writeln!(t, "  limits.{key:<7} {how}");
        }

        let sy = &self.sysctls;
        let _ = writeln!(t, "sysctls");
        for (name, v) in [
            (
                "kernel.unprivileged_userns_clone",
                sy.kernel_unprivileged_userns_clone,
            ),
            ("user.max_user_namespaces", sy.user_max_user_namespaces),
            ("dev.tty.legacy_tiocsti", sy.dev_tty_legacy_tiocsti),
            ("kernel.io_uring_disabled", sy.kernel_io_uring_disabled),
            ("kernel.yama.ptrace_scope", sy.kernel_yama_ptrace_scope),
            (
                "kernel.unprivileged_bpf_disabled",
                sy.kernel_unprivileged_bpf_disabled,
            ),
            ("kernel.perf_event_paranoid", sy.kernel_perf_event_paranoid),
        ] {
            let _ = writeln!(t, "  {name:<34} {}", opt_num(v));
        }

        let m = &self.memfd;
        let _ = writeln!(
            t,
            "memfd\n  vm.memfd_noexec {}{}\n  sandboxes: {}",
            opt_num(m.noexec_sysctl),
            if m.sysctl_writable { " (writable)" } else { "" },
            match m.policy {
                crate::sandbox::memfd::Policy::NoExec => {
                    "memfds not executable (vm.memfd_noexec=1 in each, MFD_EXEC refused)"
                }
                crate::sandbox::memfd::Policy::Unavailable => "memfd_create fails with ENOSYS",
                crate::sandbox::memfd::Policy::Unrestricted => "unrestricted",
            }
        );

        let _ = writeln!(t, "implications");
        if self.implications.is_empty() {
            let _ = writeln!(t, "  none: everything confine enforces is available");
        }
        for i in &self.implications {
            let _ = writeln!(t, "  - {i}");
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{parse_cgroup_line, parse_mountinfo_line};

    #[test]
    fn cgroup_dir_joins_mount_and_path() {
        let d = |m, r, p| cgroup_dir(m, r, p);
        assert_eq!(
            d("/sys/fs/cgroup", "/", "/").as_deref(),
            Some("/sys/fs/cgroup")
        );
        assert_eq!(
            d("/sys/fs/cgroup", "/", "/a/b").as_deref(),
            Some("/sys/fs/cgroup/a/b")
        );
        assert_eq!(
            d("/sys/fs/cgroup/", "/", "/a").as_deref(),
            Some("/sys/fs/cgroup/a")
        );
        assert_eq!(d("/cg", "/a", "/a/b").as_deref(), Some("/cg/b"));
        assert_eq!(d("/cg", "/a", "/a").as_deref(), Some("/cg"));
        // Not shown by a mount of /a, and never through `..`: the same
        // answer `run` gets from the cgroup module.
        assert_eq!(d("/cg", "/a", "/ab"), None);
        assert_eq!(d("/cg", "/", "/a/../b"), None);
    }

    fn mounts(lines: &[&str]) -> Vec<MountInfo> {
        lines
            .iter()
            .filter_map(|l| parse_mountinfo_line(l))
            .collect()
    }

    fn own(lines: &[&str]) -> Vec<CgroupLine> {
        lines.iter().filter_map(|l| parse_cgroup_line(l)).collect()
    }

    #[test]
    fn hybrid_v1_memory_pids_cpu_with_v2_mount() {
        let m = mounts(&[
            "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
            "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
            "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
            "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
        ]);
        let o = own(&[
            "9:name=systemd:/",
            "8:pids:/",
            "4:memory:/process_api/x",
            "1:cpu:/",
            "0::/",
        ]);
        let (v2, v1) = cgroups_from(&m, &o, &|_| (Some(vec!["hugetlb".to_string()]), true));
        let v2 = v2.expect("v2 mount");
        assert_eq!(v2.mount_point, "/sys/fs/cgroup/unified");
        assert_eq!(v2.own_dir.as_deref(), Some("/sys/fs/cgroup/unified"));
        assert_eq!(v1.len(), 4);
        let mem = v1
            .iter()
            .find(|h| h.controllers == ["memory"])
            .expect("memory");
        assert_eq!(
            mem.own_dir.as_deref(),
            Some("/sys/fs/cgroup/memory/process_api/x")
        );
        let sd = v1
            .iter()
            .find(|h| h.name.as_deref() == Some("systemd"))
            .expect("systemd");
        assert!(sd.controllers.is_empty());
        assert_eq!(sd.own_path.as_deref(), Some("/"));
    }

    #[test]
    fn pure_v2_under_systemd_not_writable() {
        let m = mounts(&[
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot",
        ]);
        let o = own(&["0::/user.slice/user-1000.slice/session-2.scope"]);
        let all = vec!["cpu".to_string(), "memory".to_string(), "pids".to_string()];
        let (v2, v1) = cgroups_from(&m, &o, &|d| (Some(all.clone()), d == "/sys/fs/cgroup"));
        assert!(v1.is_empty());
        let v2 = v2.expect("v2");
        assert_eq!(
            v2.own_dir.as_deref(),
            Some("/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope")
        );
        assert!(!v2.writable);
    }

    #[test]
    fn landlock_gaps_by_abi() {
        assert!(landlock_gaps(Some(7)).is_empty());
        let gaps: Vec<u32> = landlock_gaps(Some(3)).iter().map(|g| g.abi).collect();
        assert_eq!(gaps, vec![4, 5, 6, 7]);
        assert!(landlock_gaps(Some(3))[0]
            .consequence
            .contains("network.connect_tcp"));
        assert_eq!(landlock_gaps(None).len(), 7);
    }

    #[test]
    fn unprivileged_userns_verdicts() {
        let ok = NamespaceCheck {
            can_create: true,
            error: None,
            inside_user_namespace: None,
        };
        let v = unprivileged_verdict(0, &ok, Some(1000), None, None);
        assert!(v.allowed && !v.tested);
        let v = unprivileged_verdict(0, &ok, Some(0), None, None);
        assert!(!v.allowed);
        assert!(v
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("max_user_namespaces"));
        let v = unprivileged_verdict(0, &ok, Some(1000), Some(0), None);
        assert!(!v.allowed);
        let v = unprivileged_verdict(1000, &ok, Some(1000), None, Some(1));
        assert!(!v.allowed && v.tested);
        let denied = NamespaceCheck {
            can_create: false,
            error: Some("EPERM: Operation not permitted".to_string()),
            inside_user_namespace: None,
        };
        let v = unprivileged_verdict(1000, &denied, Some(1000), None, None);
        assert!(!v.allowed);
        assert!(v.reason.contains("EPERM"));
    }

    #[test]
    fn landlock_abi_on_this_kernel() {
        let require = std::env::var_os("CONFINE_REQUIRE_KERNEL").is_some_and(|v| v == "1");
        match landlock_abi() {
            Some(n) => assert!(n >= 1, "Landlock ABI {n}"),
            None if !require => {
                eprintln!("skipped: Landlock unavailable on this kernel (set CONFINE_REQUIRE_KERNEL=1 to fail)");
            }
            None => panic!("Landlock unavailable but CONFINE_REQUIRE_KERNEL=1"),
        }
    }

    #[test]
    fn full_probe_renders_and_serializes() {
        let p = probe();
        let text = p.render_text();
        assert!(text.contains("landlock"));
        let json = serde_json::to_value(&p).expect("serializes");
        assert!(json["namespaces"]["user"]["can_create"].is_boolean());
        assert!(json["cgroups"]["limits"]["memory"]["mechanism"].is_string());
    }
}
