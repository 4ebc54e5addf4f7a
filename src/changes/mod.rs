//! Review mode (`filesystem.changes: review`, DESIGN.md §14): the agent's
//! writes to the workspace land in an overlay's upper layer kept in the
//! sandbox's state directory ([`state`]); the real workspace doesn't change
//! during the run. Afterwards `confine diff` lists the changes ([`diff`]),
//! `confine commit` applies all or some of them ([`commit`]) and `confine
//! discard` drops them.
//!
//! The overlay itself is mounted by `sandbox::mounts` (as a `View`'s
//! `overlay`); this module is the host side: the state directory, the
//! manifest of the workspace at launch ([`manifest`]), and the commands.

pub mod commit;
pub mod diff;
pub(crate) mod fsops;
pub mod manifest;
pub mod state;

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::Serialize;

use crate::audit::{Audit, Record};
use crate::sandbox::{fsfd, mounts};
pub use state::{Meta, Pending, StateDir};

/// Bound on the manifest file, read whole.
const MANIFEST_MAX: u64 = 1 << 30;

/// A failed review step: what, where, why (`confine: WHAT (WHERE): WHY`).
#[derive(Debug, thiserror::Error)]
#[error("{what} ({at}): {why}")]
pub struct ChangesError {
    pub what: String,
    pub at: String,
    pub why: String,
    /// Exit status: 1 for a refusal of the request, 125 for a failure.
    pub code: u8,
}

fn fail(
    what: impl Into<String>,
    at: impl Into<String>,
    why: impl std::fmt::Display,
) -> ChangesError {
    ChangesError {
        what: what.into(),
        at: at.into(),
        why: why.to_string(),
        code: 125,
    }
}

/// `changes` audit record (DESIGN.md §7).
#[derive(Debug, Serialize)]
pub struct ChangesRecord<'a> {
    /// `run` (what the run changed), `commit` or `discard`.
    pub action: &'a str,
    /// Who did it.
    pub uid: u32,
    /// The changes: `added PATH`, `deleted PATH`, ...
    pub changes: Vec<String>,
    /// Commit: what was applied; refused paths and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub committed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

impl Record for ChangesRecord<'_> {
    const EVENT: &'static str = "changes";
}

fn summary(changes: &[diff::Change]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| !c.within_deleted)
        .map(|c| match &c.from {
            Some(f) => format!("renamed {f} -> {}", c.path),
            None => format!("{} {}", c.change.name(), c.path),
        })
        .collect()
}

fn me() -> u32 {
    // SAFETY: geteuid has no arguments and can't fail.
    unsafe { libc::geteuid() }
}

/// Appends a `changes` record to the sandbox's audit log, if it had one.
fn audit(meta: &Meta, rec: &ChangesRecord) -> Result<(), ChangesError> {
    let Some(log) = &meta.audit_log else {
        return Ok(());
    };
    let mut a =
        Audit::open(Some(log)).map_err(|e| fail("audit log", log.display().to_string(), e))?;
    a.sandbox = meta.id.clone();
    a.record(rec)
        .map_err(|e| fail("audit log", log.display().to_string(), e))
}

// ------------------------------------------------------------- the launch

/// What the supervisor holds of a review-mode run.
#[derive(Debug)]
pub struct Launch {
    pub state: StateDir,
    pub meta: Meta,
}

/// Makes the state directory of sandbox `id` (review mode's launch path):
/// `upper` given the workspace's owner and mode (it is the overlay's root
/// directory), `work`, the manifest of the workspace at `ws` and
/// `meta.json`. Returns what the init needs to find the layers again.
///
/// # Errors
/// A step that failed; nothing is left behind.
pub(crate) fn prepare(
    base: &Path,
    ws: BorrowedFd,
    meta: Meta,
) -> Result<(Launch, mounts::Layers), ChangesError> {
    let at = base.join(&meta.id).display().to_string();
    let state =
        StateDir::create(base, &meta.id).map_err(|e| fail("review state directory", &at, e))?;
    let r = (|| -> io::Result<mounts::Layers> {
        let ws_st = fsfd::stat(ws)?;
        let upper = state.sub("upper")?;
        // The overlay's root shows the upper directory's owner and mode:
        // the workspace's, so the agent may write where it could.
        if me() == 0 {
            // SAFETY: a valid fd.
            let r = unsafe {
                libc::fchown(
                    std::os::fd::AsRawFd::as_raw_fd(&upper),
                    ws_st.st_uid,
                    ws_st.st_gid,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: a valid fd.
        if unsafe {
            libc::fchmod(
                std::os::fd::AsRawFd::as_raw_fd(&upper),
                ws_st.st_mode & 0o7777,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let work = state.sub("work")?;
        let m = manifest::record(ws)?;
        state.write("manifest", &manifest::encode(&m))?;
        state.write(
            "meta.json",
            &serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?,
        )?;
        Ok(mounts::Layers {
            upper: state.path.join("upper"),
            work: state.path.join("work"),
            upper_id: fsfd::identity(upper.as_fd())?,
            work_id: fsfd::identity(work.as_fd())?,
        })
    })();
    match r {
        Ok(layers) => Ok((Launch { state, meta }, layers)),
        Err(e) => {
            let _ = state.remove();
            Err(fail("review state directory", at, e))
        }
    }
}

impl Launch {
    /// After the run: a `changes` record, and a line saying what waits.
    /// A run that changed nothing leaves nothing behind. Returns the line.
    pub fn finish(self) -> String {
        let id = self.meta.id.clone();
        let found = open_ws(&self.meta).and_then(|ws| {
            let upper = self
                .state
                .sub("upper")
                .map_err(|e| fail("reading", self.state.path.display().to_string(), e))?;
            diff::changes(&self.meta, upper.as_fd(), ws.as_fd(), false).map_err(|e| {
                fail(
                    "reading the changes",
                    self.state.path.display().to_string(),
                    e,
                )
            })
        });
        match found {
            Ok(c) if c.is_empty() => {
                let _ = audit(
                    &self.meta,
                    &ChangesRecord {
                        action: "run",
                        uid: me(),
                        changes: vec![],
                        committed: vec![],
                        refused: vec![],
                        forced: false,
                    },
                );
                if let Err(e) = self.state.remove() {
                    return format!("confine: review (sandbox {id}): the run changed nothing, but its state directory stays: {e}");
                }
                format!("confine: review (sandbox {id}): the run changed nothing in the workspace")
            }
            Ok(c) => {
                let s = summary(&c);
                let n = s.len();
                if let Err(e) = audit(
                    &self.meta,
                    &ChangesRecord {
                        action: "run",
                        uid: me(),
                        changes: s,
                        committed: vec![],
                        refused: vec![],
                        forced: false,
                    },
                ) {
                    crate::say!("confine: {e}");
                }
                format!(
                    "confine: review (sandbox {id}): {n} change(s) wait in {}; see `confine diff {id}`, then `confine commit {id} [PATH]...` or `confine discard {id}`",
                    self.state.path.display()
                )
            }
            Err(e) => format!(
                "confine: review (sandbox {id}): the changes wait in {} but can't be listed: {e}",
                self.state.path.display()
            ),
        }
    }

    /// The launch failed before the command ran: nothing to review.
    pub fn abandon(self) {
        let _ = self.state.remove();
    }
}

// ------------------------------------------------------------ the commands

/// The real workspace, opened once without following symlinks, and the
/// directory the launch saw.
fn open_ws(meta: &Meta) -> Result<OwnedFd, ChangesError> {
    let at = meta.workspace.display().to_string();
    let ws = fsfd::open_with(None, &meta.workspace, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .map_err(|e| fail("workspace", &at, e))?;
    let id = fsfd::identity(ws.as_fd()).map_err(|e| fail("workspace", &at, e))?;
    if id.dev != meta.workspace_dev || id.ino != meta.workspace_ino {
        return Err(fail(
            "workspace",
            at,
            "it is not the directory the sandbox was launched on (replaced since)",
        ));
    }
    Ok(ws)
}

fn open(id: &str) -> Result<(StateDir, Meta), ChangesError> {
    let s = StateDir::open(id).map_err(|e| ChangesError {
        what: "sandbox".into(),
        at: id.into(),
        why: e.to_string(),
        code: 1,
    })?;
    let m = s.meta().map_err(|e| fail("sandbox", id, e))?;
    Ok((s, m))
}

/// `confine diff ID [--json]`: read-only, also while the sandbox runs.
///
/// # Errors
/// No such sandbox, or its state can't be read.
pub fn diff(id: &str, json: bool) -> Result<String, ChangesError> {
    let (s, m) = open(id)?;
    let ws = open_ws(&m)?;
    let upper = s.sub("upper").map_err(|e| fail("sandbox", id, e))?;
    let c = diff::changes(&m, upper.as_fd(), ws.as_fd(), true)
        .map_err(|e| fail("reading the changes", s.path.display().to_string(), e))?;
    if json {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({
            "sandbox": m.id, "workspace": m.workspace, "running": !s.try_lock(), "changes": c,
        }))
        .expect("json")
            + "\n");
    }
    let mut out = diff::render(&c);
    if c.is_empty() {
        out.push_str("no changes\n");
    }
    Ok(out)
}

/// Takes the state's lock: refused while the sandbox runs.
fn exclusive(s: &StateDir, id: &str) -> Result<(), ChangesError> {
    if s.try_lock() {
        return Ok(());
    }
    Err(ChangesError {
        what: "sandbox".into(),
        at: id.into(),
        why:
            "it is still running (or another commit or discard is); stop it first: confine stop ID"
                .into(),
        code: 1,
    })
}

/// The named paths relative to the workspace (absolute ones must be in it).
fn relative(meta: &Meta, paths: &[PathBuf]) -> Result<Vec<PathBuf>, ChangesError> {
    paths
        .iter()
        .map(|p| {
            let rel = if p.is_absolute() {
                p.strip_prefix(&meta.workspace)
                    .map(Path::to_path_buf)
                    .map_err(|_| ChangesError {
                        what: "path".into(),
                        at: p.display().to_string(),
                        why: format!("it isn't inside the workspace {}", meta.workspace.display()),
                        code: 1,
                    })?
            } else {
                p.clone()
            };
            let clean: PathBuf = rel
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect();
            if clean.as_os_str().is_empty()
                || clean
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(ChangesError {
                    what: "path".into(),
                    at: p.display().to_string(),
                    why: "name a path inside the workspace (no `..`)".into(),
                    code: 1,
                });
            }
            Ok(clean)
        })
        .collect()
}

/// `confine commit ID [PATH]... [--force]`: returns what it says.
///
/// # Errors
/// A refusal (conflicts, a path with no change, a running sandbox) or a
/// failed step (the error says what was applied before it).
pub fn commit(id: &str, paths: &[PathBuf], force: bool) -> Result<String, ChangesError> {
    let (s, m) = open(id)?;
    exclusive(&s, id)?;
    let named = relative(&m, paths)?;
    let ws = open_ws(&m)?;
    let upper = s.sub("upper").map_err(|e| fail("sandbox", id, e))?;
    let at = s.path.display().to_string();
    let changes = diff::changes(&m, upper.as_fd(), ws.as_fd(), false)
        .map_err(|e| fail("reading the changes", &at, e))?;
    let selected = commit::select(&changes, &named).map_err(|p| ChangesError {
        what: "path".into(),
        at: p.display().to_string(),
        why: "the sandbox changed nothing there (see confine diff)".into(),
        code: 1,
    })?;
    let manifest = s
        .read("manifest", MANIFEST_MAX)
        .and_then(|t| manifest::decode(&t))
        .map_err(|e| fail("reading the manifest", &at, e))?;
    let conflicts = commit::conflicts(ws.as_fd(), &changes, &selected, &manifest).map_err(|e| {
        fail(
            "checking the workspace",
            m.workspace.display().to_string(),
            e,
        )
    })?;
    let refused: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                diff::visible(&c.path.to_string_lossy(), false),
                c.why
            )
        })
        .collect();
    if !conflicts.is_empty() && !force {
        let _ = audit(
            &m,
            &ChangesRecord {
                action: "commit",
                uid: me(),
                changes: summary(&changes),
                committed: vec![],
                refused: refused.clone(),
                forced: false,
            },
        );
        return Err(ChangesError {
            what: "commit".into(),
            at: m.workspace.display().to_string(),
            why: format!(
                "nothing was applied: {}; see confine diff {id}, or commit with --force to overwrite",
                refused.join("; ")
            ),
            code: 1,
        });
    }
    let mut applier = commit::Applier::new(ws.as_fd(), upper.as_fd(), &m);
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    for (c, _) in changes.iter().zip(&selected).filter(|(_, s)| **s) {
        if matches!(c.kind, "socket" | "device") && c.change != diff::What::Deleted {
            skipped.push(format!(
                "{} (a {}: not committed)",
                diff::visible(&c.path, false),
                c.kind
            ));
            continue;
        }
        if let Err(e) = applier.apply(c) {
            let _ = audit(
                &m,
                &ChangesRecord {
                    action: "commit",
                    uid: me(),
                    changes: summary(&changes),
                    committed: done.clone(),
                    refused: vec![format!("{}: {e}", c.path)],
                    forced: force,
                },
            );
            return Err(fail(
                format!("committing {}", diff::visible(&c.path, false)),
                m.workspace.display().to_string(),
                format!("{e}; {} change(s) were applied before it and the rest wait (confine diff {id})", done.len()),
            ));
        }
        if !c.within_deleted {
            done.push(format!("{} {}", c.change.name(), c.path));
        }
    }
    if let Err(e) = applier.finish() {
        return Err(fail(
            "committing directory modes",
            m.workspace.display().to_string(),
            format!("{e}; the changes were applied"),
        ));
    }
    let all = selected.iter().all(|s| *s) && skipped.is_empty();
    let _ = audit(
        &m,
        &ChangesRecord {
            action: "commit",
            uid: me(),
            changes: summary(&changes),
            committed: done.clone(),
            refused: if force { refused } else { vec![] },
            forced: force,
        },
    );
    let mut out = format!(
        "committed {} change(s) to {}\n",
        done.len(),
        m.workspace.display()
    );
    for sk in &skipped {
        out.push_str(&format!("not committed: {sk}\n"));
    }
    if all {
        s.remove()
            .map_err(|e| fail("removing the review state", &at, e))?;
        return Ok(out);
    }
    for (c, _) in changes.iter().zip(&selected).filter(|(_, s)| **s) {
        if matches!(c.kind, "socket" | "device") && c.change != diff::What::Deleted {
            continue;
        }
        commit::forget(upper.as_fd(), &m, c, commit::direct(c, &named))
            .map_err(|e| fail("updating the review state", &at, e))?;
    }
    out.push_str(&format!("the other changes wait: confine diff {}\n", m.id));
    Ok(out)
}

/// `confine discard ID`: the changes are dropped, the real workspace is
/// untouched.
///
/// # Errors
/// No such sandbox, a running one, or a removal that failed.
pub fn discard(id: &str) -> Result<String, ChangesError> {
    let (s, m) = open(id)?;
    exclusive(&s, id)?;
    let listed = open_ws(&m).ok().and_then(|ws| {
        let upper = s.sub("upper").ok()?;
        diff::changes(&m, upper.as_fd(), ws.as_fd(), false).ok()
    });
    let at = s.path.display().to_string();
    s.remove()
        .map_err(|e| fail("removing the review state", at, e))?;
    let _ = audit(
        &m,
        &ChangesRecord {
            action: "discard",
            uid: me(),
            changes: listed.as_deref().map(summary).unwrap_or_default(),
            committed: vec![],
            refused: vec![],
            forced: false,
        },
    );
    Ok(format!("discarded the changes of sandbox {}\n", m.id))
}

/// Lines for `confine ps` and `gc`: the sandboxes whose changes wait.
pub fn pending_lines() -> Vec<String> {
    state::list()
        .into_iter()
        .filter(|p| !p.running)
        .map(|p| {
            let ws = p
                .meta
                .as_ref()
                .map(|m| m.workspace.display().to_string())
                .unwrap_or_else(|| "?".into());
            format!(
                "changes of sandbox {} wait for review ({ws}): confine diff {} / commit / discard",
                p.id, p.id
            )
        })
        .collect()
}

/// Whether `base` (review state) would be reachable from a grant, or
/// holds the workspace: the agent must never see the upper layer.
pub(crate) fn outside(base: &Path, grants: &[PathBuf], ws: &Path) -> Result<(), String> {
    let real = real_prefix(base);
    for g in grants {
        if base.starts_with(g) || real.starts_with(g) {
            return Err(format!(
                "the review state directory {} is inside the grant {}: the agent could reach the upper layer; set XDG_STATE_HOME elsewhere",
                base.display(),
                g.display()
            ));
        }
    }
    if ws.starts_with(base) || ws.starts_with(&real) || base.starts_with(ws) {
        return Err(format!(
            "the workspace {} and the review state directory {} overlap",
            ws.display(),
            base.display()
        ));
    }
    Ok(())
}

/// `p` with its longest existing prefix resolved.
fn real_prefix(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(r) = std::fs::canonicalize(&cur) {
            let mut out = r;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return out;
        }
        match (cur.file_name().map(OsStr::to_os_string), cur.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                cur = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}
