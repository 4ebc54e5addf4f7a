//! Review mode in the plan (`filesystem.changes: review`, DESIGN.md §14):
//! the workspace's bind becomes an overlay whose upper layer lives in the
//! sandbox's state directory, which must be outside every grant. Refused
//! (always: review can't be dropped, the run would write the real
//! workspace) where this kernel can't mount an overlay unprivileged.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fs::FsPlan;
use super::PlanError;
use crate::profile::{Changes, Profile};
use crate::sandbox::mounts;

/// What `explain` shows of `filesystem.changes`.
#[derive(Clone, Debug, Serialize)]
pub struct ChangesPlan {
    /// `direct` or `review`.
    pub mode: Changes,
    /// Review: where the sandbox's state directory goes (`ID/` beneath).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<PathBuf>,
    /// Review, unprivileged: the overlay keeps its metadata in user xattrs
    /// and can't rename a directory that existed before the run (EXDEV;
    /// `mv` copies and deletes instead).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub userxattr: bool,
}

/// Linux 5.11: overlayfs in a user namespace (`userxattr`).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(u) = nix::sys::utsname::uname() else {
        return false;
    };
    let r = u.release().to_string_lossy().into_owned();
    let mut it = r
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let (Some(a), Some(b)) = (it.next(), it.next()) else {
        return false;
    };
    let (a, b) = (a.parse().unwrap_or(0u32), b.parse().unwrap_or(0u32));
    (a, b) >= (major, minor)
}

/// Plans `filesystem.changes` into `fs`.
///
/// # Errors
/// Review mode that can't work here: no state directory, one inside a
/// grant, no write grant of the workspace, a grant beneath it (it would
/// bypass the overlay), or no unprivileged overlay in this kernel.
pub(super) fn plan(
    p: &Profile,
    ws: &Path,
    fs: &mut FsPlan,
    unprivileged: bool,
) -> Result<ChangesPlan, PlanError> {
    let c = &p.filesystem.changes;
    if c.value == Changes::Direct {
        return Ok(ChangesPlan {
            mode: Changes::Direct,
            state: None,
            userxattr: false,
        });
    }
    let key = "filesystem.changes";
    let err = |why: String| PlanError::from(c.error(key, why));
    if unprivileged && !kernel_at_least(5, 11) {
        return Err(err(
            "review needs overlayfs in a user namespace (Linux 5.11), which this kernel lacks; the agent would write the real workspace, so nothing runs: run confine as root, or use `changes: direct`".into(),
        ));
    }
    let view = &mut fs.mounts;
    let covering = view
        .binds
        .iter()
        .filter(|b| ws.starts_with(&b.path))
        .max_by_key(|b| b.path.as_os_str().len())
        .cloned();
    let Some(cover) = covering.filter(|b| b.write) else {
        return Err(err(format!(
            "review needs the workspace {} in filesystem.write (there is nothing to review otherwise)",
            ws.display()
        )));
    };
    if let Some(b) = view
        .binds
        .iter()
        .find(|b| b.path.starts_with(ws) && b.path != ws)
    {
        return Err(err(format!(
            "{} is granted on its own inside the workspace: it would be the real directory, not the overlay's; remove that grant for review mode",
            b.path.display()
        )));
    }
    if cover.path != ws {
        // The workspace gets a mount of its own: the overlay.
        let at = view.binds.partition_point(|b| b.path.as_path() < ws);
        view.binds.insert(
            at,
            mounts::Bind {
                path: ws.to_path_buf(),
                write: true,
                exec: cover.exec,
            },
        );
    }
    let base = crate::changes::state::base().ok_or_else(|| {
        err("review needs a state directory: run as root, or set XDG_STATE_HOME or HOME".into())
    })?;
    let grants: Vec<PathBuf> = fs
        .grants
        .iter()
        .filter(|g| !g.implicit)
        .map(|g| g.path.clone())
        .collect();
    crate::changes::outside(&base, &grants, ws).map_err(err)?;
    fs.mounts.overlay = Some(mounts::Overlay {
        path: ws.to_path_buf(),
        userxattr: unprivileged,
    });
    Ok(ChangesPlan {
        mode: Changes::Review,
        state: Some(base),
        userxattr: unprivileged,
    })
}
