//! `home:`: what HOME is inside the sandbox, and which directory that
//! takes (DESIGN.md §2; DESIGN-NOTES "home").
//!
//! - `workspace`: HOME is the workspace; nothing else is granted.
//! - `private`: a persistent directory of the profile's own, named after
//!   the profile, outside the workspace and outside the caller's home:
//!   `/var/lib/confine/homes/NAME` as root, else
//!   `$XDG_DATA_HOME/confine/homes/NAME` (`~/.local/share/confine/...`).
//!   It is write-granted; the launcher creates it (owned by the agent)
//!   when missing, see [`crate::sandbox::home`].
//! - `PATH`: an existing directory, write-granted; not `/`, not the
//!   caller's home nor anything that holds it.
//!
//! `env.set.HOME`, where written, still decides the variable.
//!
//! `home.files` travel in the plan to the sandbox's init, which writes each
//! one that is absent, as the agent ([`crate::sandbox::home::write_files`]).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{fs, PlanError};
use crate::profile::{HomeSpec, PathSpec, Profile, Sourced};

/// Where private homes live when confine runs as root.
pub const ROOT_HOMES: &str = "/var/lib/confine/homes";

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HomePlan {
    /// `workspace`, `private` or `path`.
    pub kind: &'static str,
    /// The directory, canonical.
    pub path: PathBuf,
    /// Created at launch (owned by the agent) where missing: `private`.
    pub created_at_launch: bool,
    /// `home.files`, by name: written at launch where absent.
    pub files: Vec<HomeFile>,
}

/// A file of `home.files`: written by the sandbox's init, as the agent,
/// where nothing is at its path yet (DESIGN-NOTES 48).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HomeFile {
    /// Relative to the home; plain components only (checked when the
    /// profile was read).
    pub path: String,
    pub text: String,
}

impl HomePlan {
    /// Whether the home is a grant of its own (not the workspace).
    pub(crate) fn granted(&self) -> bool {
        self.kind != "workspace"
    }
}

/// The home `p` asks for, if any.
///
/// # Errors
/// A located error: a path that can't be a home, a profile name that can't
/// name a directory, a private home that would land in the workspace.
pub(super) fn plan(p: &Profile, ws: &Path) -> Result<Option<HomePlan>, PlanError> {
    let Some(h) = &p.home else { return Ok(None) };
    let err = |why: String| -> PlanError { h.error("home", why).into() };
    let files = files(p)?;
    let mut home = match &h.value {
        HomeSpec::Workspace => HomePlan {
            kind: "workspace",
            path: ws.to_path_buf(),
            created_at_launch: false,
            files: Vec::new(),
        },
        HomeSpec::Private => {
            check(p)?;
            let name = &p.name;
            let base = homes_base().map_err(err)?;
            let path = resolve_existing_prefix(&base).join(name);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(err(format!(
                    "{} is a symlink; confine never follows one there: remove it",
                    path.display()
                )));
            }
            if path.starts_with(ws) {
                return Err(err(format!(
                    "the private home {} would be inside the workspace {}: use another workspace, or `home: workspace`",
                    path.display(),
                    ws.display()
                )));
            }
            HomePlan {
                kind: "private",
                path,
                created_at_launch: true,
                files: Vec::new(),
            }
        }
        HomeSpec::Path(spec) => {
            let item = Sourced {
                value: PathSpec {
                    raw: spec.raw.clone(),
                    optional: false,
                },
                origin: h.origin.clone(),
            };
            let Some((_, real)) = fs::resolve_path(&item, Some(ws), "home")? else {
                unreachable!("a home is never optional");
            };
            if !real.is_dir() {
                return Err(err(format!("{} is not a directory", real.display())));
            }
            if real == Path::new("/") {
                return Err(err(
                    "a home on / would let the agent write everywhere".into()
                ));
            }
            if let Some(mine) = caller_homes().into_iter().find(|m| m.starts_with(&real)) {
                return Err(err(format!(
                    "{} holds your own home {}: the agent could read and change your dotfiles, keys and \
                     credentials; use `private`, or a directory of its own",
                    real.display(),
                    mine.display()
                )));
            }
            if let Some(exe) = std::env::current_exe()
                .and_then(std::fs::canonicalize)
                .ok()
                .filter(|e| e.starts_with(&real))
            {
                return Err(err(format!(
                    "the home covers the confine binary ({}); the agent could replace it",
                    exe.display()
                )));
            }
            HomePlan {
                kind: "path",
                path: real,
                created_at_launch: false,
                files: Vec::new(),
            }
        }
    };
    // The profile refuses files with `home: workspace`; never into the
    // project, whatever let them through.
    if home.granted() {
        home.files = files;
    }
    Ok(Some(home))
}

/// `home.files` for the plan, checked against what the init can write: a
/// text longer than `limits.file_size` would end the init with SIGXFSZ.
///
/// # Errors
/// A located error at the file.
fn files(p: &Profile) -> Result<Vec<HomeFile>, PlanError> {
    let limit = p.limits.file_size.map(|s| s.0);
    p.home_files
        .iter()
        .map(|(name, text)| {
            if let Some(l) = limit.filter(|&l| text.value.len() as u64 > l) {
                return Err(text
                    .error(
                        &crate::profile::home::file_key(name),
                        format!(
                            "the text is {} bytes, more than limits.file_size ({l} bytes) lets the sandbox write",
                            text.value.len()
                        ),
                    )
                    .into());
            }
            Ok(HomeFile {
                path: name.0.clone(),
                text: text.value.clone(),
            })
        })
        .collect()
}

/// What can be checked of `home` without a workspace: a private home is
/// named after the profile, so the name must be able to name a directory;
/// `home.files` must fit `limits.file_size`.
///
/// # Errors
/// A located error naming the rule.
pub(super) fn check(p: &Profile) -> Result<(), PlanError> {
    files(p)?;
    let Some(h) = p.home.as_ref().filter(|h| h.value == HomeSpec::Private) else {
        return Ok(());
    };
    let name = &p.name;
    if valid_name(name) {
        return Ok(());
    }
    Err(h
        .error(
            "home",
            format!(
                "the private home is named after the profile, and `{name}` can't name a directory: \
                 give the profile a `name:` of letters, digits, `.`, `_` and `-` (at most 64, not starting with `.`)"
            ),
        )
        .into())
}

/// A profile name that is one plain path component.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Where private homes live: `/var/lib/confine/homes` as root, else
/// `$XDG_DATA_HOME/confine/homes` (an absolute `XDG_DATA_HOME` only, as
/// the XDG spec says), else `$HOME/.local/share/confine/homes`.
fn homes_base() -> Result<PathBuf, String> {
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from(ROOT_HOMES));
    }
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").and_then(abs) {
        return Ok(d.join("confine/homes"));
    }
    match std::env::var_os("HOME").and_then(abs) {
        Some(h) => Ok(h.join(".local/share/confine/homes")),
        None => Err(
            "neither XDG_DATA_HOME nor HOME is an absolute path, so there is no place for private homes: set one".into(),
        ),
    }
}

/// `path` with the part that exists resolved (symlinks the caller's own
/// setup has, such as `~/.local -> /data/local`, followed once, here); the
/// launcher then opens the result without following any symlink.
fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = path.to_path_buf();
    loop {
        if let Ok(real) = std::fs::canonicalize(&cur) {
            return rest.iter().rev().fold(real, |acc, c| acc.join(c));
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                cur = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The caller's own home: `$HOME`, and `/root` when run as root.
fn caller_homes() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .into_iter()
        .collect();
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } == 0 {
        v.extend(std::fs::canonicalize("/root").ok());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["claude-code", "a", "x.y_z-1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn existing_prefix_is_resolved() {
        let p = resolve_existing_prefix(Path::new("/proc/self/../definitely-missing/x"));
        assert_eq!(p, PathBuf::from("/proc/definitely-missing/x"));
    }
}
