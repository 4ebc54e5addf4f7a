//! `home: private`: the agent's persistent HOME, a directory of the
//! profile's own that confine creates outside the workspace
//! (`/var/lib/confine/homes/NAME`, or under `$XDG_DATA_HOME/confine/homes`
//! without root) and the agent owns.
//!
//! This is the one place confine creates something outside the workspace,
//! so it follows the host-side rules strictly: every directory on the way
//! is opened without following a symlink and must be one only root or the
//! caller can change ([`fsfd::make_trusted_dirs`]); the home itself is
//! created beneath its parent's descriptor, opened without following a
//! symlink, and checked by `fstat` on that descriptor. An existing home
//! must already belong to the agent and be writable by no one else: confine
//! never takes over or repairs a directory it didn't make.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;

use super::fsfd;

/// Why the private home can't be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HomeError {
    #[error("{path}: {why}")]
    Io { path: String, why: io::Error },
    #[error("{0} is a symlink; confine never follows one there: remove it")]
    Symlink(String),
    #[error("{0} is not a directory")]
    NotDir(String),
    #[error("{path} belongs to uid {owner}, but the agent runs as uid {uid}: remove it, or chown -R {uid} it if it is this profile's")]
    Owner { path: String, owner: u32, uid: u32 },
    #[error("{path} is writable by group or others (mode {mode:o}), who could change what the agent finds there: chmod go-w it")]
    Mode { path: String, mode: u32 },
}

/// Makes sure `path` is the agent's private home: created (mode 0700,
/// owned by `uid`:`gid`) when missing, with its missing parents (mode
/// 0700, owned by the caller); when present, a directory owned by `uid`
/// and not writable by group or others.
///
/// # Errors
/// What is wrong, naming the path.
pub(crate) fn prepare(path: &Path, uid: u32, gid: u32) -> Result<(), HomeError> {
    let shown = || path.display().to_string();
    let io_err = |at: &Path| {
        let at = at.display().to_string();
        move |why: io::Error| HomeError::Io { path: at, why }
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(HomeError::NotDir(shown()));
    };
    let dir = fsfd::make_trusted_dirs(parent, 0o700).map_err(io_err(parent))?;
    let cname = std::ffi::CString::new(name.as_bytes()).map_err(|_| HomeError::NotDir(shown()))?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name.
    let made = unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o700) } == 0;
    if !made {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(io_err(path)(e));
        }
    }
    let home = fsfd::open_with(
        Some(dir.as_fd()),
        Path::new(name),
        OFlag::O_DIRECTORY | OFlag::O_PATH,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => HomeError::Symlink(shown()),
        Some(libc::ENOTDIR) => HomeError::NotDir(shown()),
        _ => io_err(path)(e),
    })?;
    let st = fsfd::stat(home.as_fd()).map_err(io_err(path))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(HomeError::NotDir(shown()));
    }
    if made {
        if st.st_uid != uid || st.st_gid != gid {
            // SAFETY: a valid descriptor; AT_EMPTY_PATH makes the call act
            // on it (an O_PATH descriptor), never on a name.
            let r = unsafe {
                libc::fchownat(
                    home.as_raw_fd(),
                    c"".as_ptr(),
                    uid,
                    gid,
                    libc::AT_EMPTY_PATH,
                )
            };
            if r != 0 {
                return Err(io_err(path)(io::Error::last_os_error()));
            }
        }
        return Ok(());
    }
    if st.st_uid != uid {
        return Err(HomeError::Owner {
            path: shown(),
            owner: st.st_uid,
            uid,
        });
    }
    if st.st_mode & 0o022 != 0 {
        return Err(HomeError::Mode {
            path: shown(),
            mode: st.st_mode & 0o7777,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    // The launcher's own check, without the plan's look before it: a
    // symlink planted between the two is refused here.
    #[test]
    fn symlink_refused_missing_created_owned() {
        // SAFETY: geteuid has no arguments and can't fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let base = std::env::temp_dir().join(format!("confine-home-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir(&base).unwrap();
        let target = base.join("target");
        std::fs::create_dir(&target).unwrap();
        let link = base.join("homes/link");
        std::fs::create_dir(base.join("homes")).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            prepare(&link, 60123, 60123),
            Err(HomeError::Symlink(_))
        ));
        // A symlink on the way is refused too (ELOOP from the trusted walk).
        std::os::unix::fs::symlink(base.join("homes"), base.join("via")).unwrap();
        assert!(prepare(&base.join("via/new"), 60123, 60123).is_err());
        assert!(!base.join("homes/new").exists());
        // Control: a missing home is made, the agent's, mode 0700.
        let home = base.join("homes/new");
        prepare(&home, 60123, 60124).unwrap();
        let m = std::fs::metadata(&home).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (60123, 60124, 0o700));
        prepare(&home, 60123, 60124).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }
}
