//! `limits.memory`, `limits.pids` and `limits.cpu`: one cgroup per sandbox
//! (DESIGN.md §2 limits, §4 step 2, §7 exit record).
//!
//! Why this exists: rlimits bound one process, and an agent forks. Only a
//! cgroup bounds the whole tree, including what double-forks, calls `setsid`
//! or reparents itself to the sandbox's init; and only a cgroup lets the
//! supervisor find and kill all of it from outside.
//!
//! Where: a child cgroup named `confine-<sandbox id>` under the cgroup
//! confine itself runs in, one per hierarchy that carries a controller we
//! need. Each controller comes from cgroup v2 when our v2 cgroup offers it,
//! else from the cgroup v1 hierarchy it is bound to (hybrid hosts have v2
//! mounted with few or no controllers and memory, pids and cpu on v1).
//!
//! cgroup v2 has one more rule: a cgroup with processes of its own (other
//! than the root) can't hand a domain controller (memory) to children. confine
//! always has a process in its own cgroup (itself), so for `limits.memory`:
//! - when the parent of our cgroup is delegated to us (systemd `Delegate=yes`
//!   marks it with the `trusted.delegate`/`user.delegate` xattr; with
//!   `DelegateSubgroup=supervisor` confine runs one level below it) and has
//!   no processes, the sandbox's cgroup goes there, next to ours;
//! - else, when confine is the only process in a cgroup that is ours (marked
//!   delegated, as systemd does for `Delegate=yes` units and
//!   `systemd-run --scope -p Delegate=yes`, or a container's cgroup
//!   namespace root) and that enables no controller yet, it moves itself
//!   into a leaf `confine-<id>-supervisor` first, and back once the
//!   sandbox's cgroup is removed, leaving the cgroup as it was. Meanwhile
//!   no other process can be moved into that cgroup (EBUSY);
//! - else the limit is unenforceable: refused under strict.
//!
//! Call order, all in the supervisor, outside the sandbox:
//! 1. plan time: [`capability`] says which limits can't be enforced here
//!    (refused under `compat: strict`, dropped under best-effort). It only
//!    reads files.
//! 2. before the fork: [`Cgroup::create`] makes the directories and writes
//!    the limits. It enforces every limit it is given or fails; pass it only
//!    what the plan kept.
//! 3. right after clone, while the child still waits on a pipe:
//!    [`Cgroup::add`] with the child's pid. Everything the child forks later
//!    inherits the cgroup, so nothing of the sandbox runs outside it.
//! 4. on `wall_time` (after the grace) and on any supervisor failure:
//!    [`Cgroup::kill_all`].
//! 5. after reaping, for the exit record: [`Cgroup::oom_killed`] and
//!    [`Cgroup::stats`].
//! 6. [`Cgroup::remove`]; dropping a `Cgroup` does the same as a last resort.
//!
//! What it can't do:
//! - `limits.memory` on cgroup v2 when other processes share confine's
//!   cgroup and nothing above it is delegated (see above). pids and cpu are
//!   threaded controllers and usually still work there, unless the cgroup
//!   already has a populated domain child (the kernel then says EBUSY too).
//! - On v1 without swap accounting (no `memory.memsw.*`), swap isn't
//!   counted; `memory.swappiness` 0 is the fallback.
//! - A supervisor killed by SIGKILL leaves its (empty) directories behind;
//!   the sandbox itself dies with it (PID namespace).
//!
//! Here: the limits and the controllers that carry them; `layout` finds
//! where each controller can go (reading files only), `lifecycle` creates,
//! fills, kills, measures, removes and sweeps.
//!
//! Harmless by construction: it only creates and removes directories named
//! `confine-*` that it created itself (an existing one is never adopted), and
//! writes only to files inside them, with two exceptions on cgroup v2: it
//! may enable a controller in the parent's `cgroup.subtree_control`, which is
//! what lets a child have it, and it may move confine itself (never another
//! process) into its leaf and back, disabling again what it enabled.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::procfs;

mod layout;
mod lifecycle;
mod running;
#[cfg(test)]
mod tests;

pub(crate) use layout::cgroup_dir;
pub use layout::{capability, placements, Placement};
pub use lifecycle::{sweep_all, sweep_stale, Cgroup};
pub use running::{FreezeState, Usage};

/// The cgroup limits of one sandbox, in canonical units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// 1000 = one core.
    pub cpu_millicores: Option<u64>,
}

/// Which cgroup version enforces a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mechanism {
    #[serde(rename = "v2")]
    V2,
    #[serde(rename = "v1")]
    V1,
}

/// A limit this host can't enforce, and why (with a hint where one helps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unenforceable {
    /// The profile key, e.g. `limits.memory`.
    pub key: &'static str,
    pub why: String,
}

/// A limit as enforced: for `explain`-like output and the launch record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enforced {
    pub key: &'static str,
    pub mechanism: Mechanism,
    /// The sandbox's cgroup directory that holds the limit.
    pub dir: PathBuf,
}

/// What the cgroup measured, for the exit record. `None` where this kernel or
/// this host's hierarchies don't provide it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// v2 `memory.peak` (5.19+), v1 `memory.max_usage_in_bytes`.
    pub memory_peak_bytes: Option<u64>,
    /// Times the OOM killer killed a process in the sandbox.
    pub oom_kills: Option<u64>,
    /// Most tasks at once (`pids.peak`, recent kernels).
    pub pids_peak: Option<u64>,
    /// v2 `cpu.stat`, v1 `cpuacct.usage*` (converted from ns).
    pub cpu_usage_usec: Option<u64>,
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
}

/// Why a cgroup operation failed. Every variant names the path or the key.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("sandbox id {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("{key}: {why}")]
    InvalidLimit { key: &'static str, why: String },
    #[error("{key}: can't be enforced: {why}")]
    Unenforceable { key: &'static str, why: String },
    #[error("{}: exists already (another sandbox's, or left over); refusing to use it", path.display())]
    Exists { path: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: processes {pids:?} survived SIGKILL for {}ms", path.display(), waited.as_millis())]
    Survivors {
        path: PathBuf,
        pids: Vec<libc::pid_t>,
        waited: Duration,
    },
    #[error("pid {pid}: {why}")]
    BadPid { pid: libc::pid_t, why: &'static str },
    #[error(
        "the sandbox's cgroup ({dirs}) has no freezer: no cgroup v2 directory with \
         cgroup.freeze (Linux 5.2+) and no cgroup v1 freezer hierarchy mounted"
    )]
    NoFreezer { dirs: String },
}

fn io_err(op: impl Into<String>, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        op: op.into(),
        path: path.to_path_buf(),
        source,
    }
}

/// cgroup v2 `cpu.max` / v1 `cpu.cfs_period_us`: 100 ms, the kernel default.
const CPU_PERIOD_USEC: u64 = 100_000;
/// The kernel refuses quotas under 1 ms, so 10 millicores is the least.
const CPU_MIN_MILLICORES: u64 = 10;
/// How long [`Cgroup::kill_all`] keeps killing before giving up (processes
/// in uninterruptible sleep die only when their I/O ends).
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `rmdir` is retried while exiting processes leave.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest sandbox id: a directory name must stay well under NAME_MAX.
const MAX_ID_LEN: usize = 128;

// ------------------------------------------------------------ controllers

/// The controllers a limit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Controller::Memory => "limits.memory",
            Controller::Pids => "limits.pids",
            Controller::Cpu => "limits.cpu",
        }
    }

    /// cgroup v2 "threaded" controllers may be enabled below a cgroup that
    /// has processes of its own; domain controllers (memory) may not.
    fn threaded(self) -> bool {
        matches!(self, Controller::Pids | Controller::Cpu)
    }

    fn requested(self, l: &Limits) -> bool {
        match self {
            Controller::Memory => l.memory_bytes.is_some(),
            Controller::Pids => l.pids.is_some(),
            Controller::Cpu => l.cpu_millicores.is_some(),
        }
    }
}

/// When a limit file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Always; failing fails the limit.
    Required,
    /// Only where the file exists (swap accounting); failing fails the limit.
    IfPresent,
    /// Where it exists; a failure is ignored.
    BestEffort,
}

/// The files and values that enforce `c`'s limit under `m`, in write order.
fn settings(c: Controller, m: Mechanism, l: &Limits) -> Vec<(&'static str, String, Need)> {
    use Need::{BestEffort, IfPresent, Required};
    match (c, m) {
        (Controller::Memory, _) => {
            let Some(bytes) = l.memory_bytes else {
                return Vec::new();
            };
            match m {
                // Swap would let the sandbox exceed memory.max unnoticed.
                Mechanism::V2 => vec![
                    ("memory.max", bytes.to_string(), Required),
                    ("memory.swap.max", "0".to_string(), IfPresent),
                ],
                // memsw (memory + swap) must be written after the plain
                // limit: the kernel keeps memsw >= limit_in_bytes. Without
                // swap accounting, swappiness 0 is the next best thing.
                Mechanism::V1 => vec![
                    ("memory.limit_in_bytes", bytes.to_string(), Required),
                    ("memory.memsw.limit_in_bytes", bytes.to_string(), IfPresent),
                    ("memory.swappiness", "0".to_string(), BestEffort),
                ],
            }
        }
        (Controller::Pids, _) => match l.pids {
            Some(n) => vec![("pids.max", n.to_string(), Required)],
            None => Vec::new(),
        },
        (Controller::Cpu, _) => {
            let Some(mc) = l.cpu_millicores else {
                return Vec::new();
            };
            let quota = cpu_quota_usec(mc);
            match m {
                Mechanism::V2 => vec![("cpu.max", format!("{quota} {CPU_PERIOD_USEC}"), Required)],
                // The period first: the kernel checks quota against it.
                Mechanism::V1 => vec![
                    ("cpu.cfs_period_us", CPU_PERIOD_USEC.to_string(), Required),
                    ("cpu.cfs_quota_us", quota.to_string(), Required),
                ],
            }
        }
    }
}

/// CPU time per period for `millicores`: 1000 millicores is one period.
fn cpu_quota_usec(millicores: u64) -> u64 {
    millicores.saturating_mul(CPU_PERIOD_USEC) / 1000
}

fn validate(id: &str, l: &Limits) -> Result<(), CgroupError> {
    let bad = |why| {
        Err(CgroupError::InvalidId {
            id: id.to_string(),
            why,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > MAX_ID_LEN {
        return bad("longer than 128 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return bad("only ASCII letters, digits, '-', '_' and '.' may name a cgroup");
    }
    if l.memory_bytes == Some(0) {
        return Err(CgroupError::InvalidLimit {
            key: Controller::Memory.key(),
            why: "0 bytes leaves nothing to run in".to_string(),
        });
    }
    if l.pids == Some(0) {
        return Err(CgroupError::InvalidLimit {
            key: Controller::Pids.key(),
            why: "0 tasks leaves nothing to run".to_string(),
        });
    }
    if let Some(mc) = l.cpu_millicores {
        if mc < CPU_MIN_MILLICORES {
            return Err(CgroupError::InvalidLimit {
                key: Controller::Cpu.key(),
                why: format!(
                    "{mc} millicores is below the kernel's least CPU quota \
                     (1 ms per 100 ms: 0.01 cores)"
                ),
            });
        }
    }
    Ok(())
}
