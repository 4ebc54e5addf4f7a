//! Where review mode keeps a sandbox's changes (DESIGN.md §14), outside
//! every grant: `/var/lib/confine/changes/ID/` for root,
//! `$XDG_STATE_HOME/confine/changes/ID/` (default `~/.local/state`)
//! otherwise, mode 0700, holding
//! - `upper/` and `work/`: the overlay's upper and work directories;
//! - `meta.json`: what `diff`, `commit`, `ps` need to know of the run;
//! - `manifest`: what the real workspace was at launch ([`super::manifest`]).
//!
//! The supervisor holds an exclusive `flock` on the directory while the
//! sandbox runs: a directory whose lock can be taken holds changes that
//! wait for `commit` or `discard` (never removed unasked). Every directory
//! is made and opened with the trusted-directory helpers: never through a
//! symlink, owner and mode checked with `fstat`.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use super::fsops;
use crate::sandbox::fsfd;

/// Bound on `meta.json`, read whole.
const META_MAX: u64 = 64 << 10;

/// What a review-mode run left for `diff` and `commit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    /// Who launched it: with root, the only one who may diff, commit or
    /// discard.
    pub uid: u32,
    pub workspace: PathBuf,
    /// The workspace directory's identity at launch: commit refuses
    /// another directory at that path.
    pub workspace_dev: u64,
    pub workspace_ino: u64,
    /// The agent's uid and gid: as root, what commit makes is theirs.
    pub agent_uid: u32,
    pub agent_gid: u32,
    pub profile: String,
    pub command: Vec<String>,
    pub started: String,
    pub started_unix: u64,
    /// Where `changes` records go; none without an audit log.
    pub audit_log: Option<PathBuf>,
    /// The overlay kept its metadata in `user.overlay.*` (unprivileged).
    pub userxattr: bool,
}

impl Meta {
    /// The overlay's xattr name for `what` (`opaque`, `redirect`).
    pub(crate) fn xattr(&self, what: &str) -> CString {
        let ns = if self.userxattr { "user" } else { "trusted" };
        CString::new(format!("{ns}.overlay.{what}")).expect("no NUL")
    }
}

/// Where the calling user's review states go (`changes/` beneath
/// [`crate::state::base`]); `None` without a home (not root, and neither
/// `XDG_STATE_HOME` nor `HOME` absolute).
pub fn base() -> Option<PathBuf> {
    crate::state::base().ok().map(|b| b.join("changes"))
}

/// A state directory, opened once.
#[derive(Debug)]
pub struct StateDir {
    pub(crate) parent: OwnedFd,
    pub(crate) dir: OwnedFd,
    pub path: PathBuf,
    pub id: String,
}

fn named(what: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Whether `id` could be a sandbox id (hex from the audit log).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl StateDir {
    /// Makes `BASE/ID/` (0700) with `upper/` and `work/`, and locks it for
    /// the run.
    ///
    /// # Errors
    /// A directory on the way that another user could change, one that
    /// exists already, or a step the kernel refused; the error names it.
    pub fn create(base: &Path, id: &str) -> io::Result<StateDir> {
        if !valid_id(id) {
            return Err(io::Error::other(format!("{id:?} is not a sandbox id")));
        }
        let parent = fsfd::make_trusted_dirs(base, 0o700).map_err(|e| named("making", base, e))?;
        let path = base.join(id);
        let c = fsops::cname(OsStr::new(id))?;
        // SAFETY: a valid directory fd and C string.
        if unsafe { libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o700) } != 0 {
            return Err(named("making", &path, io::Error::last_os_error()));
        }
        let dir = fsops::open_dir(parent.as_fd(), OsStr::new(id))
            .map_err(|e| named("opening", &path, e))?;
        let me = StateDir {
            parent,
            dir,
            path,
            id: id.to_string(),
        };
        me.check_own()?;
        if !me.try_lock() {
            return Err(named("locking", &me.path, io::Error::last_os_error()));
        }
        for sub in ["upper", "work"] {
            fsops::mkdir_at(me.dir.as_fd(), OsStr::new(sub), 0o700)
                .map_err(|e| named("making", &me.path.join(sub), e))?;
        }
        Ok(me)
    }

    /// Opens the caller's state directory of sandbox `id` (or of the one
    /// sandbox whose id starts with it).
    ///
    /// # Errors
    /// None such, more than one, or one that isn't the caller's own.
    pub fn open(id: &str) -> io::Result<StateDir> {
        let base = base().ok_or_else(|| {
            io::Error::other(
                "confine has no state directory (run as root, or set XDG_STATE_HOME or HOME)",
            )
        })?;
        if !valid_id(id) {
            return Err(io::Error::other(format!("{id:?} is not a sandbox id")));
        }
        let parent = open_base(&base).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    e.kind(),
                    format!(
                        "no sandbox {id} has changes waiting ({} doesn't exist)",
                        base.display()
                    ),
                )
            } else {
                e
            }
        })?;
        let names = fsops::list(parent.as_fd())?;
        let hits: Vec<String> = names
            .iter()
            .filter_map(|n| n.to_str())
            .filter(|n| valid_id(n) && n.starts_with(id))
            .map(str::to_string)
            .collect();
        let name = match hits.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no sandbox {id} has changes waiting in {}", base.display()),
                ))
            }
            _ if hits.iter().any(|h| h == id) => id.to_string(),
            _ => {
                return Err(io::Error::other(format!(
                    "{id} names more than one sandbox: {}",
                    hits.join(", ")
                )))
            }
        };
        let path = base.join(&name);
        let dir = fsops::open_dir(parent.as_fd(), OsStr::new(&name))
            .map_err(|e| named("opening", &path, e))?;
        let me = StateDir {
            parent,
            dir,
            path,
            id: name,
        };
        me.check_own()?;
        Ok(me)
    }

    /// Only root and the launching user may use it: owned by the caller
    /// (or the caller is root), mode 0700.
    fn check_own(&self) -> io::Result<()> {
        let st = fsfd::stat(self.dir.as_fd())?;
        // SAFETY: geteuid has no arguments and can't fail.
        let me = unsafe { libc::geteuid() };
        if (st.st_uid != me && me != 0) || st.st_mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} belongs to uid {} with mode {:o}: only root and the user who launched the sandbox may use it",
                    self.path.display(),
                    st.st_uid,
                    st.st_mode & 0o7777
                ),
            ));
        }
        Ok(())
    }

    /// Takes the exclusive lock (held by a running sandbox's supervisor).
    pub fn try_lock(&self) -> bool {
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(self.dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    }

    /// A subdirectory (`upper`, `work`), opened without following symlinks.
    ///
    /// # Errors
    /// It is missing or not a directory.
    pub(crate) fn sub(&self, name: &str) -> io::Result<OwnedFd> {
        fsops::open_dir(self.dir.as_fd(), OsStr::new(name))
            .map_err(|e| named("opening", &self.path.join(name), e))
    }

    /// Writes `name` whole (a temporary file renamed over it).
    ///
    /// # Errors
    /// Creating, writing or renaming failed.
    pub(crate) fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = format!(".{name}.new");
        let c_tmp = fsops::cname(OsStr::new(&tmp))?;
        // SAFETY: a valid fd and C string; a leftover is ours.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), c_tmp.as_ptr(), 0) };
        let mut f = File::from(fsfd::create_in(
            self.dir.as_fd(),
            Path::new(&tmp),
            OFlag::O_WRONLY | OFlag::O_EXCL,
            0o600,
        )?);
        // Not fsynced: the upper layer it describes isn't either (a crash
        // loses both alike), and a launch shouldn't wait for the disk.
        f.write_all(data)?;
        let c_name = fsops::cname(OsStr::new(name))?;
        // SAFETY: a valid fd and C strings.
        if unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                c_tmp.as_ptr(),
                self.dir.as_raw_fd(),
                c_name.as_ptr(),
            )
        } != 0
        {
            return Err(named(
                "writing",
                &self.path.join(name),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Reads `name` (a regular file, at most `max` bytes).
    ///
    /// # Errors
    /// Missing, not a regular file, or too large.
    pub(crate) fn read(&self, name: &str, max: u64) -> io::Result<Vec<u8>> {
        let f = fsops::open_file(self.dir.as_fd(), OsStr::new(name))
            .map_err(|e| named("reading", &self.path.join(name), e))?;
        if !f.metadata()?.file_type().is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                self.path.join(name).display()
            )));
        }
        let mut out = Vec::new();
        f.take(max + 1).read_to_end(&mut out)?;
        if out.len() as u64 > max {
            return Err(io::Error::other(format!(
                "{} is larger than {max} bytes",
                self.path.join(name).display()
            )));
        }
        Ok(out)
    }

    /// `meta.json`.
    ///
    /// # Errors
    /// Missing or unreadable.
    pub fn meta(&self) -> io::Result<Meta> {
        let text = self.read("meta.json", META_MAX)?;
        serde_json::from_slice(&text).map_err(|e| {
            io::Error::other(format!("{}: {e}", self.path.join("meta.json").display()))
        })
    }

    /// Removes the directory and everything in it.
    ///
    /// # Errors
    /// The first removal that failed.
    pub fn remove(self) -> io::Result<()> {
        fsops::remove_tree(self.parent.as_fd(), OsStr::new(&self.id))
            .map_err(|e| named("removing", &self.path, e))
    }
}

fn open_base(base: &Path) -> io::Result<OwnedFd> {
    let fd = fsfd::open_with(None, base, OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
    if !fsfd::trusted_dir(&fsfd::stat(fd.as_fd())?) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} can be changed by another user (owner or mode)",
                base.display()
            ),
        ));
    }
    Ok(fd)
}

/// How old a state directory without `meta.json` must be before `gc`
/// takes it for a launch killed while making it (between its mkdir and
/// its flock).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Removes the caller's state directories that hold no run: no
/// `meta.json` (written before the sandbox starts), unlocked, and not
/// brand new. Returns their paths. Directories with a run are never
/// removed here: their changes wait for commit or discard.
pub fn sweep() -> Vec<PathBuf> {
    let Some(base) = base() else {
        return Vec::new();
    };
    let Ok(parent) = open_base(&base) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in list() {
        if p.running || p.meta.is_some() {
            continue;
        }
        let old = std::fs::symlink_metadata(&p.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER);
        let Ok(dir) = fsops::open_dir(parent.as_fd(), OsStr::new(&p.id)) else {
            continue;
        };
        let s = StateDir {
            parent: match fsops::dup(parent.as_fd()) {
                Ok(fd) => fd,
                Err(_) => continue,
            },
            dir,
            path: p.path.clone(),
            id: p.id.clone(),
        };
        // Locked while removing: a launch can't be using it.
        if !old || s.check_own().is_err() || !s.try_lock() || s.meta().is_ok() {
            continue;
        }
        if s.remove().is_ok() {
            out.push(p.path);
        }
    }
    out
}

/// One sandbox's waiting changes, as `ps` and `gc` list them.
#[derive(Debug)]
pub struct Pending {
    pub id: String,
    pub path: PathBuf,
    pub meta: Option<Meta>,
    /// Its supervisor still runs (the lock is held).
    pub running: bool,
}

/// The caller's state directories.
pub fn list() -> Vec<Pending> {
    let Some(base) = base() else {
        return Vec::new();
    };
    let Ok(parent) = open_base(&base) else {
        return Vec::new();
    };
    let Ok(names) = fsops::list(parent.as_fd()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in names {
        let Some(id) = n.to_str().filter(|n| valid_id(n)) else {
            continue;
        };
        let Ok(dir) = fsops::open_dir(parent.as_fd(), &n) else {
            continue;
        };
        let s = StateDir {
            parent: match fsops::dup(parent.as_fd()) {
                Ok(p) => p,
                Err(_) => continue,
            },
            dir,
            path: base.join(id),
            id: id.to_string(),
        };
        if s.check_own().is_err() {
            continue;
        }
        let running = !s.try_lock();
        out.push(Pending {
            id: id.to_string(),
            path: s.path.clone(),
            meta: s.meta().ok(),
            running,
        });
    }
    out.sort_by_key(|p| p.meta.as_ref().map(|m| m.started_unix));
    out
}
