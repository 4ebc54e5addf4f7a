//! Landlock: the filesystem grants of the plan (and its TCP ports and scopes),
//! enforced by the kernel on the agent and everything it starts.
//!
//! Landlock is why `filesystem.read/write/exec` mean something: every access
//! right the running ABI knows is *handled*, so whatever a rule doesn't grant is
//! denied, to root as much as to anyone. That includes rights no profile can
//! ask for: `MAKE_CHAR` and `MAKE_BLOCK` are handled and never granted.
//!
//! The module has two halves:
//!
//! - Pure helpers for `plan/` (no syscalls): the access mask of a grant for a
//!   given ABI ([`access_for`]), the handled set ([`handled_fs`]), what a lower
//!   ABI can't enforce ([`missing_features`]), and names for `explain`
//!   ([`fs_access_names`]). ABIs above [`MAX_ABI`] are treated as [`MAX_ABI`], so
//!   a newer kernel never makes confine handle a right nobody reviewed.
//! - Enforcement, from a plain-data [`Spec`], in two calls that must come in this
//!   order (DESIGN.md §4):
//!   1. [`prepare`] — step 8, in the init after the mounts (rules bind to what is
//!      mounted) and before the uid switch (paths must still be traversable):
//!      opens every path, creates the ruleset and adds every rule.
//!   2. [`Prepared::restrict_self`] — step 11, after the caller has set
//!      `PR_SET_NO_NEW_PRIVS` and before seccomp: enforces the ruleset on the
//!      calling thread and everything it execs.
//!
//! Everything is a hard requirement: the plan only hands over rights the
//! kernel's ABI supports (it refused or recorded the rest before the fork), so
//! any incompatibility found here is an error, and anything less than a fully
//! enforced ruleset is a refusal. Paths are opened with `RESOLVE_NO_SYMLINKS`:
//! the plan passes canonical paths, so a path that has become a symlink since is
//! an error, not something to follow.
//!
//! [`prepare`] and [`Prepared::restrict_self`] don't allocate on success (paths
//! shorter than 1024 bytes are converted on the stack), so they are fine to run
//! after `fork`.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, ABI,
};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use serde::{Deserialize, Serialize};

/// The highest Landlock ABI whose rights confine knows and handles. ABI 8
/// adds only a flag confine doesn't use (LANDLOCK_RESTRICT_SELF_TSYNC: the
/// init is single-threaded); ABI 9 adds [`RESOLVE_UNIX`].
pub(crate) const MAX_ABI: u32 = 9;

// Filesystem access rights (`LANDLOCK_ACCESS_FS_*`), taken from the crate's
// enum so they can't drift from the kernel's UAPI values.
/// Execute a file.
pub(crate) const EXECUTE: u64 = AccessFs::Execute as u64;
/// Open a file for writing.
pub(crate) const WRITE_FILE: u64 = AccessFs::WriteFile as u64;
/// Open a file for reading.
pub(crate) const READ_FILE: u64 = AccessFs::ReadFile as u64;
/// Open a directory or list its content.
pub(crate) const READ_DIR: u64 = AccessFs::ReadDir as u64;
/// Remove (or rename away) an empty directory.
pub(crate) const REMOVE_DIR: u64 = AccessFs::RemoveDir as u64;
/// Unlink (or rename away) a file.
pub(crate) const REMOVE_FILE: u64 = AccessFs::RemoveFile as u64;
/// Create a character device. Handled, never granted.
pub(crate) const MAKE_CHAR: u64 = AccessFs::MakeChar as u64;
/// Create a directory.
pub(crate) const MAKE_DIR: u64 = AccessFs::MakeDir as u64;
/// Create a regular file.
pub(crate) const MAKE_REG: u64 = AccessFs::MakeReg as u64;
/// Create a unix socket.
pub(crate) const MAKE_SOCK: u64 = AccessFs::MakeSock as u64;
/// Create a named pipe.
pub(crate) const MAKE_FIFO: u64 = AccessFs::MakeFifo as u64;
/// Create a block device. Handled, never granted.
pub(crate) const MAKE_BLOCK: u64 = AccessFs::MakeBlock as u64;
/// Create a symlink.
pub(crate) const MAKE_SYM: u64 = AccessFs::MakeSym as u64;
/// Link or rename a file across directories (ABI 2).
pub(crate) const REFER: u64 = AccessFs::Refer as u64;
/// Truncate a file (ABI 3).
pub(crate) const TRUNCATE: u64 = AccessFs::Truncate as u64;
/// Issue ioctls on a device file (ABI 5).
pub(crate) const IOCTL_DEV: u64 = AccessFs::IoctlDev as u64;
/// Connect (or send) to a pathname unix socket (ABI 9, Linux 7.1). Handled,
/// and granted only on a grant that names a socket itself: the agent then
/// reaches only the sockets its own sandbox created and those the profile
/// names, not a daemon's socket that happens to lie in a granted directory.
pub(crate) const RESOLVE_UNIX: u64 = AccessFs::ResolveUnix as u64;

/// Bind a TCP socket to a port (ABI 4).
pub(crate) const NET_BIND_TCP: u64 = AccessNet::BindTcp as u64;
/// Connect a TCP socket to a port (ABI 4).
pub(crate) const NET_CONNECT_TCP: u64 = AccessNet::ConnectTcp as u64;

/// Deny connecting to abstract unix sockets created outside the sandbox (ABI 6).
pub(crate) const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = Scope::AbstractUnixSocket as u64;
/// Deny sending signals to processes outside the sandbox (ABI 6).
pub(crate) const SCOPE_SIGNAL: u64 = Scope::Signal as u64;

const FS_NAMES: [(u64, &str); 17] = [
    (EXECUTE, "EXECUTE"),
    (WRITE_FILE, "WRITE_FILE"),
    (READ_FILE, "READ_FILE"),
    (READ_DIR, "READ_DIR"),
    (REMOVE_DIR, "REMOVE_DIR"),
    (REMOVE_FILE, "REMOVE_FILE"),
    (MAKE_CHAR, "MAKE_CHAR"),
    (MAKE_DIR, "MAKE_DIR"),
    (MAKE_REG, "MAKE_REG"),
    (MAKE_SOCK, "MAKE_SOCK"),
    (MAKE_FIFO, "MAKE_FIFO"),
    (MAKE_BLOCK, "MAKE_BLOCK"),
    (MAKE_SYM, "MAKE_SYM"),
    (REFER, "REFER"),
    (TRUNCATE, "TRUNCATE"),
    (IOCTL_DEV, "IOCTL_DEV"),
    (RESOLVE_UNIX, "RESOLVE_UNIX"),
];
const NET_NAMES: [(u64, &str); 2] = [(NET_BIND_TCP, "BIND_TCP"), (NET_CONNECT_TCP, "CONNECT_TCP")];
const SCOPE_NAMES: [(u64, &str); 2] = [
    (SCOPE_ABSTRACT_UNIX_SOCKET, "ABSTRACT_UNIX_SOCKET"),
    (SCOPE_SIGNAL, "SIGNAL"),
];

/// What a profile grants on one path. Kinds combine (`Grant::READ | Grant::EXEC`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grant {
    /// Read files and list directories.
    pub read: bool,
    /// Read, plus write, create (no devices), remove, rename and truncate.
    pub write: bool,
    /// Read, plus execute.
    pub exec: bool,
    /// Device ioctls (e.g. terminal ioctls on `/dev/tty`, `/dev/pts`). From
    /// ABI 5 they are denied unless granted; the plan decides where they are
    /// needed (device files and directories only).
    pub ioctl_dev: bool,
}

impl Grant {
    /// Nothing.
    pub(crate) const NONE: Grant = Grant {
        read: false,
        write: false,
        exec: false,
        ioctl_dev: false,
    };
    /// `filesystem.read`.
    pub(crate) const READ: Grant = Grant {
        read: true,
        ..Grant::NONE
    };
    /// `filesystem.write`.
    pub(crate) const WRITE: Grant = Grant {
        write: true,
        ..Grant::NONE
    };
    /// `filesystem.exec`.
    pub(crate) const EXEC: Grant = Grant {
        exec: true,
        ..Grant::NONE
    };
    /// Device ioctls, to be combined with another kind.
    pub(crate) const IOCTL_DEV: Grant = Grant {
        ioctl_dev: true,
        ..Grant::NONE
    };
}

impl std::ops::BitOr for Grant {
    type Output = Grant;
    fn bitor(self, rhs: Grant) -> Grant {
        Grant {
            read: self.read || rhs.read,
            write: self.write || rhs.write,
            exec: self.exec || rhs.exec,
            ioctl_dev: self.ioctl_dev || rhs.ioctl_dev,
        }
    }
}

impl std::ops::BitOrAssign for Grant {
    fn bitor_assign(&mut self, rhs: Grant) {
        *self = *self | rhs;
    }
}

fn clamp(abi: u32) -> u32 {
    abi.min(MAX_ABI)
}

/// The crate's ABI for `abi`, clamped to [`MAX_ABI`]: the sets of rights
/// each ABI adds come from the crate, the one list of them.
fn crate_abi(abi: u32) -> ABI {
    ABI::from(clamp(abi) as i32)
}

/// Every filesystem right Landlock ABI `abi` knows: the set to handle, so that
/// anything no rule grants is denied. 0 for ABI 0 (no Landlock).
pub(crate) fn handled_fs(abi: u32) -> u64 {
    AccessFs::from_all(crate_abi(abi)).bits()
}

/// Whether ABI `abi` restricts connecting to pathname unix sockets
/// ([`RESOLVE_UNIX`]). Below it, a socket the mount view shows (one inside
/// a grant) can be connected to, read-only bind or not.
pub(crate) fn restricts_unix_connect(abi: u32) -> bool {
    handled_fs(abi) & RESOLVE_UNIX != 0
}

/// What a grant that names a unix socket itself adds to its rights: the
/// right to connect to it, where ABI `abi` controls that (0 otherwise).
pub(crate) fn socket_access(abi: u32) -> u64 {
    handled_fs(abi) & RESOLVE_UNIX
}

/// The TCP rights ABI `abi` can handle (0 below ABI 4).
pub(crate) fn handled_net(abi: u32) -> u64 {
    AccessNet::from_all(crate_abi(abi)).bits()
}

/// The scopes ABI `abi` can enforce (0 below ABI 6).
pub(crate) fn supported_scopes(abi: u32) -> u64 {
    Scope::from_all(crate_abi(abi)).bits()
}

/// The access mask to put on a path for `grant` under ABI `abi`.
///
/// - read: `READ_FILE | READ_DIR`;
/// - write: read + `WRITE_FILE`, `REMOVE_DIR`, `REMOVE_FILE`, `MAKE_DIR`,
///   `MAKE_REG`, `MAKE_SOCK`, `MAKE_FIFO`, `MAKE_SYM`, `REFER` (ABI 2, so renames
///   across directories of the grant work) and `TRUNCATE` (ABI 3). Never
///   `MAKE_CHAR` or `MAKE_BLOCK`;
/// - exec: read + `EXECUTE`;
/// - ioctl_dev: `IOCTL_DEV` (ABI 5; below that device ioctls aren't handled).
///
/// The result is always a subset of [`handled_fs`]`(abi)`. For a path that isn't
/// a directory, [`prepare`] keeps only the [`file_access`] part.
pub(crate) fn access_for(abi: u32, grant: Grant) -> u64 {
    let abi = crate_abi(abi);
    // Writing is the crate's write set less what only the kinds that name
    // it grant: devices, device ioctls and unix connects.
    const NOT_BY_WRITE: u64 = MAKE_CHAR | MAKE_BLOCK | IOCTL_DEV | RESOLVE_UNIX;
    let mut mask = 0;
    if grant.read || grant.write || grant.exec {
        mask |= READ_FILE | READ_DIR;
    }
    if grant.write {
        mask |= AccessFs::from_write(abi).bits() & !NOT_BY_WRITE;
    }
    if grant.exec {
        mask |= EXECUTE;
    }
    if grant.ioctl_dev {
        mask |= IOCTL_DEV;
    }
    // Only what the ABI knows (nothing without Landlock).
    mask & AccessFs::from_all(abi).bits()
}

/// The part of `mask` that applies to a non-directory: the kernel rejects
/// any other right in a rule on such a file.
pub(crate) fn file_access(mask: u64) -> u64 {
    mask & AccessFs::from_file(crate_abi(MAX_ABI)).bits()
}

fn names(mask: u64, table: &[(u64, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The names of the filesystem rights in `mask` (`["READ_FILE", "READ_DIR"]`),
/// in bit order, for `explain`. Bits Landlock doesn't define are left out.
pub(crate) fn fs_access_names(mask: u64) -> Vec<&'static str> {
    names(mask, &FS_NAMES)
}

/// The names of the TCP rights in `mask` (`BIND_TCP`, `CONNECT_TCP`).
pub(crate) fn net_access_names(mask: u64) -> Vec<&'static str> {
    names(mask, &NET_NAMES)
}

/// The names of the scopes in `mask` (`ABSTRACT_UNIX_SOCKET`, `SIGNAL`).
pub(crate) fn scope_names(mask: u64) -> Vec<&'static str> {
    names(mask, &SCOPE_NAMES)
}

/// A part of the full plan that needs a newer Landlock ABI than the kernel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Feature {
    /// Landlock itself (ABI 1): without it no filesystem rule is enforced.
    Filesystem,
    /// `REFER` (ABI 2). Without it cross-directory rename/link is denied
    /// everywhere, even inside a write grant (safe, but breaks tools).
    Refer,
    /// `TRUNCATE` (ABI 3). Without it truncation isn't controlled: files outside
    /// the write grants can be truncated wherever the mounts allow writing.
    Truncate,
    /// TCP bind/connect rules (ABI 4). Without them `connect_tcp`/`bind_tcp`
    /// can't restrict ports.
    Tcp,
    /// `IOCTL_DEV` (ABI 5). Without it device ioctls aren't controlled.
    IoctlDev,
    /// Scoping of abstract unix sockets and signals (ABI 6). Without it only the
    /// namespaces keep them from reaching outside.
    Scopes,
}

impl Feature {
    /// Every feature, in ABI order.
    pub(crate) const ALL: [Feature; 6] = [
        Feature::Filesystem,
        Feature::Refer,
        Feature::Truncate,
        Feature::Tcp,
        Feature::IoctlDev,
        Feature::Scopes,
    ];

    /// The first ABI that has it.
    pub(crate) fn min_abi(self) -> u32 {
        match self {
            Feature::Filesystem => 1,
            Feature::Refer => 2,
            Feature::Truncate => 3,
            Feature::Tcp => 4,
            Feature::IoctlDev => 5,
            Feature::Scopes => 6,
        }
    }

    /// What it is, e.g. `"TRUNCATE (ABI 3)"`.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Feature::Filesystem => "filesystem rules (ABI 1)",
            Feature::Refer => "REFER (ABI 2)",
            Feature::Truncate => "TRUNCATE (ABI 3)",
            Feature::Tcp => "TCP bind/connect rules (ABI 4)",
            Feature::IoctlDev => "IOCTL_DEV (ABI 5)",
            Feature::Scopes => "scoping of abstract unix sockets and signals (ABI 6)",
        }
    }

    /// What is lost without it, for the best-effort warning and audit record.
    pub(crate) fn consequence(self) -> &'static str {
        match self {
            Feature::Filesystem => "no filesystem access is restricted by Landlock",
            Feature::Refer => "renaming or linking across directories is denied everywhere",
            Feature::Truncate => "truncating files is not restricted by Landlock",
            Feature::Tcp => "TCP ports are not restricted",
            Feature::IoctlDev => "ioctls on device files are not restricted",
            Feature::Scopes => {
                "abstract unix sockets and signals are limited by the namespaces only"
            }
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The features of a full plan that ABI `abi` lacks, in ABI order: the plan
/// refuses under `compat: strict` and records them under `best-effort`. Empty
/// from [`MAX_ABI`] on.
pub(crate) fn missing_features(abi: u32) -> Vec<Feature> {
    Feature::ALL
        .into_iter()
        .filter(|f| f.min_abi() > abi)
        .collect()
}

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The running kernel's Landlock ABI version (not clamped to [`MAX_ABI`]).
///
/// # Errors
///
/// `ENOSYS` when the kernel is built without Landlock, `EOPNOTSUPP` when it is
/// disabled at boot (not in `lsm=`).
pub(crate) fn kernel_abi() -> Result<u32, Errno> {
    // SAFETY: with a NULL attr, size 0 and the VERSION flag the syscall reads no
    // memory and only returns the ABI version (or -1 with errno).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret as u32)
    }
}

/// One rule: `access` beneath `path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    /// Absolute, canonical (symlink-free) path, resolved by the plan.
    pub path: PathBuf,
    /// `LANDLOCK_ACCESS_FS_*` bits, a subset of [`Spec::handled_fs`].
    pub access: u64,
}

/// TCP port rules (ABI 4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRules {
    /// `NET_BIND_TCP` and/or `NET_CONNECT_TCP`: what is denied unless a port
    /// below allows it.
    pub handled: u64,
    /// Ports that may be bound.
    pub bind_tcp: Vec<u16>,
    /// Ports that may be connected to.
    pub connect_tcp: Vec<u16>,
}

/// Everything Landlock enforces, as plain data computed by the plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Filesystem rights handled, normally [`handled_fs`]`(abi)`.
    pub handled_fs: u64,
    /// The filesystem rules.
    pub paths: Vec<PathRule>,
    /// TCP rules, `None` to leave TCP alone.
    pub net: Option<NetRules>,
    /// `SCOPE_*` bits (ABI 6), 0 for none.
    pub scopes: u64,
}

impl Spec {
    /// An empty spec handling every filesystem right of `abi`: everything denied
    /// until rules are added.
    pub(crate) fn deny_all(abi: u32) -> Spec {
        Spec {
            handled_fs: handled_fs(abi),
            ..Spec::default()
        }
    }

    /// The lowest ABI that can enforce this spec.
    pub(crate) fn required_abi(&self) -> u32 {
        let mut abi = u32::from(self.handled_fs != 0);
        if self.handled_fs & REFER != 0 {
            abi = abi.max(2);
        }
        if self.handled_fs & TRUNCATE != 0 {
            abi = abi.max(3);
        }
        if self.net.as_ref().is_some_and(|n| n.handled != 0) {
            abi = abi.max(4);
        }
        if self.handled_fs & IOCTL_DEV != 0 {
            abi = abi.max(5);
        }
        if self.scopes != 0 {
            abi = abi.max(6);
        }
        if self.handled_fs & RESOLVE_UNIX != 0 {
            abi = abi.max(9);
        }
        abi
    }

    /// Checks the spec without touching the kernel; [`prepare`] calls it too,
    /// the plan may call it to fail before the fork.
    ///
    /// # Errors
    ///
    /// Unknown bits, nothing handled at all, a rule on a relative path, a rule
    /// whose access is empty or not handled, a port rule for an unhandled right.
    pub(crate) fn validate(&self) -> Result<(), LandlockError> {
        let all_fs = handled_fs(MAX_ABI);
        if self.handled_fs & !all_fs != 0 {
            return Err(LandlockError::UnknownBits {
                what: "handled_fs",
                mask: self.handled_fs,
            });
        }
        if self.scopes & !supported_scopes(MAX_ABI) != 0 {
            return Err(LandlockError::UnknownBits {
                what: "scopes",
                mask: self.scopes,
            });
        }
        let net_handled = self.net.as_ref().map_or(0, |n| n.handled);
        if net_handled & !handled_net(MAX_ABI) != 0 {
            return Err(LandlockError::UnknownBits {
                what: "net.handled",
                mask: net_handled,
            });
        }
        if self.handled_fs == 0 && net_handled == 0 && self.scopes == 0 {
            return Err(LandlockError::NothingHandled);
        }
        for rule in &self.paths {
            let why = if !rule.path.is_absolute() {
                Some("the path is not absolute")
            } else if rule.access == 0 {
                Some("the access mask is empty")
            } else if rule.access & !self.handled_fs != 0 {
                Some("it grants rights the ruleset doesn't handle")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(LandlockError::BadRule {
                    path: rule.path.clone(),
                    access: rule.access,
                    why,
                });
            }
        }
        if let Some(net) = &self.net {
            for (ports, right, kind) in [
                (&net.bind_tcp, NET_BIND_TCP, "bind"),
                (&net.connect_tcp, NET_CONNECT_TCP, "connect"),
            ] {
                if let Some(&port) = ports.first() {
                    if net.handled & right == 0 {
                        return Err(LandlockError::UnhandledPort { port, kind });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why Landlock couldn't be set up; each names the path or the step.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LandlockError {
    #[error("Landlock is not available: {}", unavailable_why(*.0))]
    Unavailable(Errno),
    #[error("the plan needs Landlock ABI {required}, the kernel has ABI {kernel}")]
    AbiTooOld { required: u32, kernel: u32 },
    #[error("{what} {mask:#x} has bits that Landlock ABI {MAX_ABI} doesn't define")]
    UnknownBits { what: &'static str, mask: u64 },
    #[error("the ruleset handles no access right at all")]
    NothingHandled,
    #[error("rule for {} (access {access:#x}): {why}", .path.display())]
    BadRule {
        path: PathBuf,
        access: u64,
        why: &'static str,
    },
    #[error("TCP {kind} rule for port {port}, but the ruleset doesn't handle TCP {kind}")]
    UnhandledPort { port: u16, kind: &'static str },
    #[error("opening {}: {}", .path.display(), open_why(*.errno))]
    Open { path: PathBuf, errno: Errno },
    #[error("opening {}: fstat: {errno}", .path.display())]
    Stat { path: PathBuf, errno: Errno },
    #[error("creating the ruleset: {0}")]
    Create(#[source] RulesetError),
    #[error("adding the rule for {}: {source}", .path.display())]
    AddPath { path: PathBuf, source: RulesetError },
    #[error("adding the TCP {kind} rule for port {port}: {source}")]
    AddPort {
        port: u16,
        kind: &'static str,
        source: RulesetError,
    },
    #[error("no_new_privs is not set: PR_SET_NO_NEW_PRIVS must come before restrict_self")]
    NoNewPrivs,
    #[error("restrict_self: {0}")]
    Restrict(#[source] RulesetError),
    #[error("the ruleset is {0}, not fully enforced")]
    NotFullyEnforced(&'static str),
}

fn unavailable_why(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOSYS => "the kernel is built without it (ENOSYS)",
        Errno::EOPNOTSUPP => "it is disabled at boot: add landlock to lsm= (EOPNOTSUPP)",
        _ => "landlock_create_ruleset failed",
    }
}

fn open_why(errno: Errno) -> String {
    let why = match errno {
        Errno::ELOOP => "path is a symlink now, or goes through one",
        Errno::ENOENT => "it doesn't exist (any more)",
        Errno::ENOTDIR => "a parent is not a directory",
        Errno::EACCES => "permission denied",
        Errno::ENAMETOOLONG => "path too long",
        Errno::ENOSYS => "openat2 is not available",
        other => other.desc(),
    };
    format!("{why} ({errno:?})")
}

/// A created ruleset holding every rule, waiting for [`Prepared::restrict_self`].
#[derive(Debug)]
pub(crate) struct Prepared {
    ruleset: RulesetCreated,
}

/// Step 8: opens every path of `spec` and builds the ruleset (not yet enforced).
///
/// Each path is opened `O_PATH | O_CLOEXEC` with `RESOLVE_NO_SYMLINKS`; on a
/// path that isn't a directory only the [`file_access`] part of its rule is
/// kept (the kernel rejects directory rights there), and a rule left empty by
/// that is dropped (granting nothing). The rule fds are closed once added; the
/// ruleset fd is `O_CLOEXEC`.
///
/// # Errors
///
/// A [`Spec::validate`] error; Landlock missing or older than
/// [`Spec::required_abi`]; a path that can't be opened (gone, or a symlink now);
/// the kernel refusing the ruleset or a rule.
pub(crate) fn prepare(spec: &Spec) -> Result<Prepared, LandlockError> {
    spec.validate()?;
    let kernel = kernel_abi().map_err(LandlockError::Unavailable)?;
    let required = spec.required_abi();
    if kernel < required {
        return Err(LandlockError::AbiTooOld { required, kernel });
    }

    // validate() checked every mask against the rights of MAX_ABI, which the
    // crate knows, so the conversions below can't drop a bit.
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if spec.handled_fs != 0 {
        ruleset = ruleset
            .handle_access(BitFlags::<AccessFs>::from_bits_truncate(spec.handled_fs))
            .map_err(LandlockError::Create)?;
    }
    if let Some(net) = spec.net.as_ref().filter(|n| n.handled != 0) {
        ruleset = ruleset
            .handle_access(BitFlags::<AccessNet>::from_bits_truncate(net.handled))
            .map_err(LandlockError::Create)?;
    }
    if spec.scopes != 0 {
        ruleset = ruleset
            .scope(BitFlags::<Scope>::from_bits_truncate(spec.scopes))
            .map_err(LandlockError::Create)?;
    }
    // The caller sets no_new_privs itself (step 11), so the crate must not.
    let mut created = ruleset
        .create()
        .map_err(LandlockError::Create)?
        .no_new_privs(false);

    for rule in &spec.paths {
        let fd = open_path(&rule.path)?;
        let is_dir = is_dir(&fd).map_err(|errno| LandlockError::Stat {
            path: rule.path.clone(),
            errno,
        })?;
        let access = if is_dir {
            rule.access
        } else {
            file_access(rule.access)
        };
        if access == 0 {
            continue;
        }
        created = created
            .add_rule(PathBeneath::new(
                fd,
                BitFlags::<AccessFs>::from_bits_truncate(access),
            ))
            .map_err(|source| LandlockError::AddPath {
                path: rule.path.clone(),
                source,
            })?;
    }
    if let Some(net) = &spec.net {
        for (ports, access, kind) in [
            (&net.bind_tcp, AccessNet::BindTcp, "bind"),
            (&net.connect_tcp, AccessNet::ConnectTcp, "connect"),
        ] {
            for &port in ports {
                created = created
                    .add_rule(NetPort::new(port, access))
                    .map_err(|source| LandlockError::AddPort { port, kind, source })?;
            }
        }
    }
    Ok(Prepared { ruleset: created })
}

fn open_path(path: &Path) -> Result<OwnedFd, LandlockError> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    match nix::fcntl::openat2(libc::AT_FDCWD, path, how) {
        // SAFETY: openat2 just returned this fd and nothing else owns it.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(errno) => Err(LandlockError::Open {
            path: path.to_path_buf(),
            errno,
        }),
    }
}

fn is_dir(fd: &OwnedFd) -> Result<bool, Errno> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

impl Prepared {
    /// Step 11: enforces the ruleset on the calling thread and everything it
    /// execs from now on. `PR_SET_NO_NEW_PRIVS` must already be set (the crate
    /// is told not to set it); seccomp comes after.
    ///
    /// # Errors
    ///
    /// `no_new_privs` not set, the kernel refusing `landlock_restrict_self`, or
    /// a ruleset that is anything less than fully enforced.
    ///
    /// `log_new_exec`: LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON (ABI 7), so
    /// that the kernel's audit reports the denials of programs exec'd
    /// under the domain, which it doesn't by default.
    pub(crate) fn restrict_self(self, log_new_exec: bool) -> Result<(), LandlockError> {
        // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer and only returns 0 or 1.
        let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
        if nnp != 1 {
            return Err(LandlockError::NoNewPrivs);
        }
        let ruleset = if log_new_exec {
            self.ruleset
                .log_new_exec(true)
                .map_err(LandlockError::Create)?
        } else {
            self.ruleset
        };
        let status = ruleset.restrict_self().map_err(LandlockError::Restrict)?;
        match status.ruleset {
            RulesetStatus::FullyEnforced => Ok(()),
            RulesetStatus::PartiallyEnforced => {
                Err(LandlockError::NotFullyEnforced("only partially enforced"))
            }
            RulesetStatus::NotEnforced => Err(LandlockError::NotFullyEnforced("not enforced")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn newer_abis_are_clamped() {
        assert_eq!(handled_fs(0), 0);
        assert_eq!(handled_fs(10), handled_fs(MAX_ABI));
        assert_eq!(
            access_for(42, Grant::WRITE),
            access_for(MAX_ABI, Grant::WRITE)
        );
        assert!(missing_features(10).is_empty());
    }

    #[test]
    fn unix_connect_from_abi_9_and_only_on_named_sockets() {
        for abi in 0..=MAX_ABI {
            assert_eq!(restricts_unix_connect(abi), abi >= 9, "ABI {abi}");
            assert_eq!(socket_access(abi) != 0, abi >= 9, "ABI {abi}");
            // No grant kind brings it by itself: a directory grant never
            // lets the agent connect to a socket found beneath it.
            for g in [Grant::READ, Grant::WRITE, Grant::EXEC | Grant::WRITE] {
                assert_eq!(access_for(abi, g) & RESOLVE_UNIX, 0, "ABI {abi}");
            }
        }
        // A rule on the socket itself may carry it.
        assert_eq!(
            file_access(READ_FILE | RESOLVE_UNIX),
            READ_FILE | RESOLVE_UNIX
        );
        let spec = Spec {
            paths: vec![PathRule {
                path: "/run/x.sock".into(),
                access: READ_FILE | RESOLVE_UNIX,
            }],
            ..Spec::deny_all(9)
        };
        assert_eq!(spec.required_abi(), 9);
        spec.validate().unwrap();
        assert_eq!(fs_access_names(RESOLVE_UNIX), ["RESOLVE_UNIX"]);
    }

    #[test]
    fn read_grant() {
        for abi in 1..=MAX_ABI {
            assert_eq!(access_for(abi, Grant::READ), READ_FILE | READ_DIR);
        }
        assert_eq!(access_for(0, Grant::READ), 0);
    }

    #[test]
    fn write_grant_never_makes_devices() {
        for abi in 1..=MAX_ABI {
            let w = access_for(abi, Grant::WRITE);
            assert_eq!(w & (MAKE_CHAR | MAKE_BLOCK), 0, "ABI {abi}");
            assert_eq!(w & EXECUTE, 0);
            assert_ne!(w & READ_FILE, 0);
            assert_eq!(
                w & !handled_fs(abi),
                0,
                "ABI {abi}: grant outside handled set"
            );
            assert_eq!(w & REFER != 0, abi >= 2, "ABI {abi}");
            assert_eq!(w & TRUNCATE != 0, abi >= 3, "ABI {abi}");
            assert_eq!(w & IOCTL_DEV, 0);
        }
        assert_eq!(
            fs_access_names(access_for(3, Grant::WRITE)),
            [
                "WRITE_FILE",
                "READ_FILE",
                "READ_DIR",
                "REMOVE_DIR",
                "REMOVE_FILE",
                "MAKE_DIR",
                "MAKE_REG",
                "MAKE_SOCK",
                "MAKE_FIFO",
                "MAKE_SYM",
                "REFER",
                "TRUNCATE"
            ]
        );
    }

    #[test]
    fn exec_and_combinations() {
        assert_eq!(access_for(1, Grant::EXEC), EXECUTE | READ_FILE | READ_DIR);
        let rwx = access_for(3, Grant::WRITE | Grant::EXEC);
        assert_eq!(rwx, access_for(3, Grant::WRITE) | EXECUTE);
        let mut g = Grant::READ;
        g |= Grant::IOCTL_DEV;
        assert_eq!(access_for(4, g), READ_FILE | READ_DIR);
        assert_eq!(access_for(5, g), READ_FILE | READ_DIR | IOCTL_DEV);
        // ioctl_dev alone opens nothing for reading.
        assert_eq!(access_for(5, Grant::IOCTL_DEV), IOCTL_DEV);
        assert_eq!(access_for(5, Grant::NONE), 0);
    }

    #[test]
    fn file_rights() {
        let w = access_for(5, Grant::WRITE | Grant::EXEC | Grant::IOCTL_DEV);
        assert_eq!(
            file_access(w),
            EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
        );
        assert_eq!(file_access(READ_DIR | MAKE_REG), 0);
    }

    #[test]
    fn missing_features_by_abi() {
        assert_eq!(missing_features(0), Feature::ALL);
        assert_eq!(
            missing_features(3),
            [Feature::Tcp, Feature::IoctlDev, Feature::Scopes]
        );
        assert_eq!(missing_features(6), []);
        assert_eq!(missing_features(7), []);
        let names: Vec<String> = missing_features(1).iter().map(|f| f.to_string()).collect();
        assert_eq!(
            names,
            [
                "REFER (ABI 2)",
                "TRUNCATE (ABI 3)",
                "TCP bind/connect rules (ABI 4)",
                "IOCTL_DEV (ABI 5)",
                "scoping of abstract unix sockets and signals (ABI 6)"
            ]
        );
        for f in Feature::ALL {
            assert!(!f.consequence().is_empty());
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            fs_access_names(READ_FILE | EXECUTE),
            ["EXECUTE", "READ_FILE"]
        );
        assert_eq!(fs_access_names(1 << 40), Vec::<&str>::new());
        assert_eq!(net_access_names(NET_CONNECT_TCP), ["CONNECT_TCP"]);
        assert_eq!(
            scope_names(SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET),
            ["ABSTRACT_UNIX_SOCKET", "SIGNAL"]
        );
        assert_eq!(fs_access_names(handled_fs(7)).len(), 16);
        // Every right the crate knows has a name.
        let all = handled_fs(MAX_ABI);
        assert_eq!(fs_access_names(all).len(), all.count_ones() as usize);
        let all = handled_net(MAX_ABI);
        assert_eq!(net_access_names(all).len(), all.count_ones() as usize);
        let all = supported_scopes(MAX_ABI);
        assert_eq!(scope_names(all).len(), all.count_ones() as usize);
    }

    #[test]
    fn required_abi() {
        assert_eq!(Spec::deny_all(1).required_abi(), 1);
        assert_eq!(Spec::deny_all(2).required_abi(), 2);
        assert_eq!(Spec::deny_all(4).required_abi(), 3);
        assert_eq!(Spec::deny_all(7).required_abi(), 5);
        let mut spec = Spec::deny_all(3);
        spec.net = Some(NetRules {
            handled: NET_CONNECT_TCP,
            ..NetRules::default()
        });
        assert_eq!(spec.required_abi(), 4);
        spec.scopes = supported_scopes(6);
        assert_eq!(spec.required_abi(), 6);
    }

    #[test]
    fn validation() {
        let mut spec = Spec::deny_all(7);
        spec.paths.push(PathRule {
            path: "/usr".into(),
            access: access_for(7, Grant::READ),
        });
        spec.validate().unwrap();

        let mut bad = spec.clone();
        bad.paths[0].path = "usr".into();
        assert!(matches!(bad.validate(), Err(LandlockError::BadRule { .. })));

        let mut bad = spec.clone();
        bad.paths[0].access = 0;
        assert!(matches!(bad.validate(), Err(LandlockError::BadRule { .. })));

        let mut bad = Spec::deny_all(1);
        bad.paths.push(PathRule {
            path: "/w".into(),
            access: access_for(3, Grant::WRITE),
        });
        let err = bad.validate().unwrap_err();
        assert!(err.to_string().contains("doesn't handle"), "{err}");

        let mut bad = spec.clone();
        bad.handled_fs |= 1 << 40;
        assert!(matches!(
            bad.validate(),
            Err(LandlockError::UnknownBits { .. })
        ));

        assert!(matches!(
            Spec::default().validate(),
            Err(LandlockError::NothingHandled)
        ));

        let mut bad = spec.clone();
        bad.net = Some(NetRules {
            handled: NET_CONNECT_TCP,
            bind_tcp: vec![8080],
            connect_tcp: vec![443],
        });
        let err = bad.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "TCP bind rule for port 8080, but the ruleset doesn't handle TCP bind"
        );
    }

    #[test]
    fn open_errors_name_path_and_why() {
        let err = LandlockError::Open {
            path: "/usr/lib".into(),
            errno: Errno::ELOOP,
        };
        assert_eq!(
            err.to_string(),
            "opening /usr/lib: path is a symlink now, or goes through one (ELOOP)"
        );
    }

    /// The kernel's ABI, or `None` (skip) when Landlock is missing; with
    /// `CONFINE_REQUIRE_KERNEL=1` a missing Landlock fails the test instead.
    fn landlock_or_skip() -> Option<u32> {
        let require = std::env::var_os("CONFINE_REQUIRE_KERNEL").is_some_and(|v| v == "1");
        match kernel_abi() {
            Ok(abi) => Some(abi),
            Err(errno) if !require => {
                eprintln!("skipped: Landlock is not available ({errno})");
                None
            }
            Err(errno) => {
                panic!("CONFINE_REQUIRE_KERNEL=1 but Landlock is not available ({errno})")
            }
        }
    }

    #[test]
    fn prepare_refuses_symlinks() {
        if landlock_or_skip().is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut spec = Spec::deny_all(1);
        spec.paths.push(PathRule {
            path: link.clone(),
            access: READ_FILE,
        });
        match prepare(&spec) {
            Err(LandlockError::Open {
                path,
                errno: Errno::ELOOP,
            }) => assert_eq!(path, link),
            other => panic!("expected ELOOP, got {other:?}"),
        }
    }

    /// Exit codes of the child in `enforces_on_the_real_kernel`.
    mod check {
        pub(crate) const OK: i32 = 0;
        pub(crate) const PREPARE: i32 = 10;
        pub(crate) const NNP: i32 = 11;
        pub(crate) const RESTRICT: i32 = 12;
        pub(crate) const READ_A: i32 = 20;
        pub(crate) const WRITE_A_NOT_DENIED: i32 = 21;
        pub(crate) const CREATE_B: i32 = 22;
        pub(crate) const RENAME_B: i32 = 23;
        pub(crate) const TRUNCATE_B: i32 = 24;
        pub(crate) const OPEN_C_NOT_DENIED: i32 = 25;
        pub(crate) const MKNOD_B_NOT_DENIED: i32 = 26;
        pub(crate) const RENAME_OUT_NOT_DENIED: i32 = 27;
    }

    fn describe(code: i32) -> &'static str {
        match code {
            check::PREPARE => "prepare failed",
            check::NNP => "PR_SET_NO_NEW_PRIVS failed",
            check::RESTRICT => "restrict_self failed",
            check::READ_A => "reading a file in A (read grant) failed",
            check::WRITE_A_NOT_DENIED => {
                "opening a file in A for writing wasn't denied with EACCES"
            }
            check::CREATE_B => "creating a file in B (write grant) failed",
            check::RENAME_B => "renaming B/x to B/sub/y (REFER) failed",
            check::TRUNCATE_B => "truncating a file in B failed",
            check::OPEN_C_NOT_DENIED => "opening a file in C (no grant) wasn't denied",
            check::MKNOD_B_NOT_DENIED => "creating a char device in B wasn't denied with EACCES",
            check::RENAME_OUT_NOT_DENIED => "renaming a file from B into A wasn't denied",
            _ => "unknown exit code",
        }
    }

    fn cstr(p: &Path) -> std::ffi::CString {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
    }

    /// Real kernel: read on A, write on B, nothing on C. The child allocates
    /// nothing after the fork (the test harness is multithreaded).
    #[test]
    fn enforces_on_the_real_kernel() {
        let Some(kernel) = landlock_or_skip() else {
            return;
        };
        let abi = kernel.min(MAX_ABI);

        let root = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            root.path().join("a"),
            root.path().join("b"),
            root.path().join("c"),
        );
        for d in [&a, &b, &b.join("sub"), &c] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(a.join("f"), "a").unwrap();
        std::fs::write(b.join("x"), "x").unwrap();
        std::fs::write(b.join("t"), "truncate me").unwrap();
        std::fs::write(c.join("secret"), "s").unwrap();

        let mut spec = Spec::deny_all(abi);
        spec.paths.push(PathRule {
            path: a.clone(),
            access: access_for(abi, Grant::READ),
        });
        spec.paths.push(PathRule {
            path: b.clone(),
            access: access_for(abi, Grant::WRITE),
        });

        let a_f = cstr(&a.join("f"));
        let b_new = cstr(&b.join("new"));
        let b_x = cstr(&b.join("x"));
        let b_sub_y = cstr(&b.join("sub/y"));
        let b_t = cstr(&b.join("t"));
        let b_dev = cstr(&b.join("dev"));
        let a_moved = cstr(&a.join("moved"));
        let c_secret = cstr(&c.join("secret"));

        // SAFETY: the child only makes syscalls through prepare/restrict_self
        // (which don't allocate on success) and libc, then _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    let Ok(prepared) = prepare(&spec) else {
                        return check::PREPARE;
                    };
                    // SAFETY: plain prctl with integer arguments.
                    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                        return check::NNP;
                    }
                    if prepared.restrict_self(false).is_err() {
                        return check::RESTRICT;
                    }
                    // SAFETY: (all calls below) NUL-terminated paths built
                    // before the fork, fds closed right after use.
                    unsafe {
                        let errno = Errno::last_raw;
                        let fd = libc::open(a_f.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                        if fd < 0 {
                            return check::READ_A;
                        }
                        libc::close(fd);
                        let fd = libc::open(a_f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                        if fd >= 0 || errno() != libc::EACCES {
                            return check::WRITE_A_NOT_DENIED;
                        }
                        let fd = libc::open(
                            b_new.as_ptr(),
                            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                            0o600,
                        );
                        if fd < 0 {
                            return check::CREATE_B;
                        }
                        libc::close(fd);
                        if abi >= 2 && libc::rename(b_x.as_ptr(), b_sub_y.as_ptr()) != 0 {
                            return check::RENAME_B;
                        }
                        if abi >= 3 && libc::truncate(b_t.as_ptr(), 0) != 0 {
                            return check::TRUNCATE_B;
                        }
                        let fd = libc::open(c_secret.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                        if fd >= 0 || errno() != libc::EACCES {
                            return check::OPEN_C_NOT_DENIED;
                        }
                        // MAKE_CHAR is handled and never granted (root could
                        // otherwise create /dev/null-like nodes: 1,3).
                        let dev = libc::makedev(1, 3);
                        if libc::mknod(b_dev.as_ptr(), libc::S_IFCHR | 0o600, dev) == 0
                            || errno() != libc::EACCES
                        {
                            return check::MKNOD_B_NOT_DENIED;
                        }
                        if libc::rename(b_new.as_ptr(), a_moved.as_ptr()) == 0 {
                            return check::RENAME_OUT_NOT_DENIED;
                        }
                    }
                    check::OK
                })();
                // SAFETY: leave the forked child without running the harness.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                match status {
                    nix::sys::wait::WaitStatus::Exited(_, 0) => {}
                    nix::sys::wait::WaitStatus::Exited(_, code) => {
                        panic!("Landlock ABI {abi}: {} (exit {code})", describe(code))
                    }
                    other => panic!("child: {other:?}"),
                }
            }
        }
        // What the child did is visible outside.
        assert!(b.join("new").exists());
        if abi >= 2 {
            assert!(b.join("sub/y").exists());
        }
        if abi >= 3 {
            assert_eq!(std::fs::metadata(b.join("t")).unwrap().len(), 0);
        }
        assert!(!b.join("dev").exists());
    }
}
