//! Where confine keeps what outlives a run, per user: `/var/lib/confine`
//! for root, `$XDG_STATE_HOME/confine` otherwise (`~/.local/state/confine`
//! when XDG_STATE_HOME is unset or not absolute, as the XDG spec says).
//!
//! Each kind of state has a directory of its own beneath (`runs/`, for the
//! denials of each run that had some; `changes/` for review mode), made
//! 0700 with [`crate::sandbox::fsfd::make_trusted_dirs`]: never through a
//! symlink, and never in a directory another user could change.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The state directory of the calling user (not created).
///
/// # Errors
/// Not root, and neither XDG_STATE_HOME nor a home directory is known.
pub fn base() -> io::Result<PathBuf> {
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/lib/confine"));
    }
    let var = |k: &str| std::env::var_os(k).filter(|v| Path::new(v).is_absolute());
    if let Some(x) = var("XDG_STATE_HOME") {
        return Ok(Path::new(&x).join("confine"));
    }
    let home: OsString = var("HOME").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "neither XDG_STATE_HOME nor HOME is set to an absolute path",
        )
    })?;
    Ok(Path::new(&home).join(".local/state/confine"))
}

/// `<state>/<sub>`, opened as a directory (O_PATH) and created 0700 with
/// what is missing above it.
///
/// # Errors
/// As [`base`]; creating or opening a component failed, or one can be
/// changed by another user.
pub fn open(sub: &str) -> io::Result<(OwnedFd, PathBuf)> {
    let path = base()?.join(sub);
    let fd = crate::sandbox::fsfd::make_trusted_dirs(&path, 0o700)?;
    Ok((fd, path))
}

/// `<state>/<sub>` if it exists, else `None`; like [`open`], but creates
/// nothing (for readers: `confine why`, `gc`).
///
/// # Errors
/// As [`open`], but for a missing directory.
pub fn existing(sub: &str) -> io::Result<Option<(OwnedFd, PathBuf)>> {
    let path = base()?.join(sub);
    match crate::sandbox::fsfd::open_with(
        None,
        &path,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_PATH,
    ) {
        Ok(_) => open(sub).map(Some),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}
