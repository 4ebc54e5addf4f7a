//! A running sandbox's cgroup as `confine freeze`, `thaw` and `stats` see
//! it (DESIGN.md §12): the freezer (v2 `cgroup.freeze`, v1 `freezer.state`)
//! and what the sandbox uses right now.

use std::path::Path;

use serde::Serialize;

use super::lifecycle::{keyed, read_procs, single, write_file, Dir};
use super::*;

/// Where the freezer of a sandbox's cgroup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezeState {
    Thawed,
    /// Asked to freeze; some task hasn't stopped yet.
    Freezing,
    Frozen,
}

impl FreezeState {
    pub fn name(self) -> &'static str {
        match self {
            FreezeState::Thawed => "running",
            FreezeState::Freezing => "freezing",
            FreezeState::Frozen => "frozen",
        }
    }
}

/// What the sandbox uses now; `None` where this host's hierarchies don't
/// say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// v2 `memory.current`, v1 `memory.usage_in_bytes`.
    pub memory_bytes: Option<u64>,
    /// Tasks (threads included) now: `pids.current`.
    pub pids: Option<u64>,
    /// Processes now (`cgroup.procs`).
    pub processes: Option<u64>,
    /// v2 `io.stat`, summed over devices.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    /// Peaks and CPU time, as the exit record has them.
    #[serde(flatten)]
    pub stats: Stats,
}

impl Dir {
    /// This directory's freezer: v2 `cgroup.freeze` (5.2+) or the v1
    /// freezer hierarchy's `freezer.state`.
    fn freezer(&self) -> Option<(PathBuf, Mechanism)> {
        match self.mechanism {
            Mechanism::V2 => {
                let f = self.path.join("cgroup.freeze");
                f.exists().then_some((f, Mechanism::V2))
            }
            Mechanism::V1 if self.controllers.iter().any(|c| c == "freezer") => {
                Some((self.path.join("freezer.state"), Mechanism::V1))
            }
            Mechanism::V1 => None,
        }
    }
}

impl Cgroup {
    fn freezer(&self) -> Result<(PathBuf, Mechanism), CgroupError> {
        self.dirs
            .iter()
            .find_map(Dir::freezer)
            .ok_or_else(|| CgroupError::NoFreezer {
                dirs: self
                    .dirs
                    .iter()
                    .map(|d| d.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Freezes (`true`) or thaws the whole sandbox. Asynchronous in the
    /// kernel: [`Cgroup::freeze_state`] says when every task has stopped.
    ///
    /// # Errors
    /// [`CgroupError::NoFreezer`] when neither v2 `cgroup.freeze` nor a v1
    /// freezer directory exists for this sandbox; [`CgroupError::Io`] when
    /// the kernel refused the write.
    pub fn freeze(&self, on: bool) -> Result<(), CgroupError> {
        let (f, m) = self.freezer()?;
        let value = match (m, on) {
            (Mechanism::V2, true) => "1",
            (Mechanism::V2, false) => "0",
            (Mechanism::V1, true) => "FROZEN",
            (Mechanism::V1, false) => "THAWED",
        };
        write_file(&f, value).map_err(|e| io_err(format!("writing {value} to"), &f, e))
    }

    /// Where the freezer stands; `None` without one.
    pub fn freeze_state(&self) -> Option<FreezeState> {
        let (f, m) = self.freezer().ok()?;
        match m {
            Mechanism::V2 => {
                let dir = f.parent()?;
                if keyed(&dir.join("cgroup.events"), "frozen") == Some(1) {
                    Some(FreezeState::Frozen)
                } else if single(&f) == Some(1) {
                    Some(FreezeState::Freezing)
                } else {
                    Some(FreezeState::Thawed)
                }
            }
            Mechanism::V1 => match std::fs::read_to_string(&f).ok()?.trim() {
                "FROZEN" => Some(FreezeState::Frozen),
                "FREEZING" => Some(FreezeState::Freezing),
                _ => Some(FreezeState::Thawed),
            },
        }
    }

    /// What the sandbox uses now.
    pub fn usage(&self) -> Usage {
        let mut u = Usage {
            stats: self.stats(),
            ..Usage::default()
        };
        let mut procs: Vec<libc::pid_t> = Vec::new();
        for d in &self.dirs {
            let p = |f: &str| d.path.join(f);
            if let Ok(list) = read_procs(&d.path) {
                for pid in list {
                    if !procs.contains(&pid) {
                        procs.push(pid);
                    }
                }
            }
            match d.mechanism {
                Mechanism::V2 => {
                    u.memory_bytes = u.memory_bytes.or_else(|| single(&p("memory.current")));
                    u.pids = u.pids.or_else(|| single(&p("pids.current")));
                    if let Some((r, w)) = io_stat(&p("io.stat")) {
                        u.io_read_bytes = Some(r);
                        u.io_write_bytes = Some(w);
                    }
                }
                Mechanism::V1 => {
                    if d.controllers.iter().any(|c| c == "memory") {
                        u.memory_bytes = u
                            .memory_bytes
                            .or_else(|| single(&p("memory.usage_in_bytes")));
                    }
                    if d.controllers.iter().any(|c| c == "pids") {
                        u.pids = u.pids.or_else(|| single(&p("pids.current")));
                    }
                }
            }
        }
        u.processes = Some(procs.len() as u64);
        u
    }
}

/// Bytes read and written, summed over the devices of a v2 `io.stat`
/// (`MAJ:MIN rbytes=N wbytes=N ...` lines).
fn io_stat(path: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(io_stat_in(&text))
}

pub(super) fn io_stat_in(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for field in text.split_whitespace() {
        if let Some(n) = field.strip_prefix("rbytes=") {
            r = r.saturating_add(n.parse().unwrap_or(0));
        } else if let Some(n) = field.strip_prefix("wbytes=") {
            w = w.saturating_add(n.parse().unwrap_or(0));
        }
    }
    (r, w)
}
