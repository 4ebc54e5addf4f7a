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
//!
//! `home.files` are not written here but by the sandbox's init, as the
//! agent, after its uid drop and Landlock ([`write_files`]): no privileged
//! write into a directory the agent controls exists.

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

/// Writes each of `files` into the home at `home` where nothing is at its
/// path yet; an entry already there (a file, a symlink, anything), at the
/// file's path or at a directory on its way, is left as it is: the user's
/// edits and the client's own writes win, and nothing is ever merged.
/// Missing directories on the way are made 0700, the file 0600. Run by the
/// sandbox's init as the agent, confined, so it can write nothing the agent
/// couldn't; still, every component is opened beneath the home's
/// descriptor without following a symlink, and the file is created with
/// `O_EXCL`.
///
/// # Errors
/// Anything but "already there", naming the file: the profile asked for a
/// setting that makes the client behave under confine, and a client
/// started without it may do what the profile meant to prevent (a nested
/// sandbox that can't work, a request that bypasses the secret's route).
pub(crate) fn write_files(
    home: &Path,
    files: &[crate::plan::home::HomeFile],
) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    let root = fsfd::open_with(None, home, OFlag::O_DIRECTORY | OFlag::O_PATH)
        .map_err(|e| format!("opening the home {}: {e}", home.display()))?;
    for f in files {
        write_one(root.as_fd(), &f.path, f.text.as_bytes()).map_err(|e| {
            format!(
                "writing home.files `{}` ({}): {e}",
                f.path,
                home.join(&f.path).display()
            )
        })?;
    }
    Ok(())
}

/// Whether [`write_files`] would find something at `rel` beneath `home`
/// and leave it: the same walk, creating nothing (`explain` looks with
/// it, so what it says is what the launch does; a symlink on the way is
/// "present", never followed to whatever is behind it).
pub(crate) fn present(home: &Path, rel: &str) -> bool {
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_PATH;
    let Ok(mut dir) = fsfd::open_with(None, home, dir_flags) else {
        return false;
    };
    let mut parts: Vec<&str> = rel.split('/').collect();
    let Some(name) = parts.pop() else {
        return false;
    };
    for c in parts {
        match fsfd::open_with(Some(dir.as_fd()), Path::new(c), dir_flags) {
            Ok(d) => dir = d,
            Err(e) => return matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)),
        }
    }
    let Ok(cname) = std::ffi::CString::new(name) else {
        return false;
    };
    fsfd::exists_at(dir.as_fd(), &cname)
}

/// Whether [`write_one`] wrote the file or found something there.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    Made,
    Present,
}

/// Writes `text` at `rel` (plain components, checked by the profile)
/// beneath `root`, unless something is there.
fn write_one(root: std::os::fd::BorrowedFd, rel: &str, text: &[u8]) -> io::Result<Written> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let Some(name) = parts.pop() else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let mut dir: Option<std::os::fd::OwnedFd> = None;
    for c in parts {
        let at = dir.as_ref().map_or(root, |d| d.as_fd());
        match open_dir(at, c)? {
            Some(d) => dir = Some(d),
            None => return Ok(Written::Present),
        }
    }
    let at = dir.as_ref().map_or(root, |d| d.as_fd());
    let cname =
        std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if fsfd::exists_at(at, &cname) {
        return Ok(Written::Present);
    }
    // Written under a name of its own, then published whole where nothing
    // is (another sandbox starting on this home must never see, and keep,
    // half a settings file): a name no other init picks (every init is
    // pid 1 of its own namespace, so the name is random).
    let tmp = std::ffi::CString::new(format!(".{name}.confine-{:016x}", random()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let tmp_path = Path::new(std::ffi::OsStr::from_bytes(tmp.as_bytes()));
    let fd = fsfd::create_in(at, tmp_path, OFlag::O_WRONLY | OFlag::O_EXCL, 0o600)?;
    let mut file = std::fs::File::from(fd);
    // The umask may have taken bits from 0600: the mode is the profile's.
    let r = io::Write::write_all(&mut file, text)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
        })
        .and_then(|()| publish(at, &tmp, &cname));
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the
    // temporary name is this call's (gone already when it was renamed).
    unsafe { libc::unlinkat(at.as_raw_fd(), tmp.as_ptr(), 0) };
    match r {
        Ok(()) => Ok(Written::Made),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(Written::Present),
        Err(e) => Err(e),
    }
}

/// Gives the file `tmp` of `at` the name `name`, only where nothing has
/// it (EEXIST otherwise): renameat2's RENAME_NOREPLACE, or a hard link
/// where the filesystem lacks it (both atomic; the caller removes `tmp`).
fn publish(
    at: std::os::fd::BorrowedFd,
    tmp: &std::ffi::CStr,
    name: &std::ffi::CStr,
) -> io::Result<()> {
    let fd = at.as_raw_fd();
    // SAFETY: valid directory descriptors and NUL-terminated names.
    if unsafe { libc::renameat2(fd, tmp.as_ptr(), fd, name.as_ptr(), libc::RENAME_NOREPLACE) } == 0
    {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    // SAFETY: as above; no flags: `tmp` itself, never followed.
    if unsafe { libc::linkat(fd, tmp.as_ptr(), fd, name.as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// 64 random bits (the kernel's; else time and pid).
fn random() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: b is a valid buffer of the length passed.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == b.len() as isize {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

/// The directory `name` of `at`, made (0700) when missing; `None` when
/// something else is there (a symlink, a file): left alone.
fn open_dir(at: std::os::fd::BorrowedFd, name: &str) -> io::Result<Option<std::os::fd::OwnedFd>> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // Twice at most: a directory made here and gone before the open (by
    // another sandbox on this home) is an error, not a loop.
    for _ in 0..2 {
        match fsfd::open_with(
            Some(at),
            Path::new(name),
            OFlag::O_DIRECTORY | OFlag::O_PATH,
        ) {
            Ok(d) => return Ok(Some(d)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Ok(None)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // SAFETY: a valid directory descriptor and a NUL-terminated
                // name.
                if unsafe { libc::mkdirat(at.as_raw_fd(), cname.as_ptr(), 0o700) } != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ENOENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn file(path: &str, text: &str) -> crate::plan::home::HomeFile {
        crate::plan::home::HomeFile {
            path: path.into(),
            text: text.into(),
        }
    }

    // The walk itself, as whoever runs the unit tests (the init runs it as
    // the agent; tests/home.rs proves that part with the binary).
    #[test]
    fn home_files_are_written_only_where_absent_and_never_through_a_symlink() {
        let base = tempfile::tempdir().unwrap();
        let home = base.path().join("home");
        let outside = base.path().join("outside");
        std::fs::create_dir(&home).unwrap();
        std::fs::create_dir(&outside).unwrap();
        let victim = outside.join("victim");
        std::fs::write(&victim, "original").unwrap();
        std::fs::write(home.join("kept"), "mine").unwrap();
        std::os::unix::fs::symlink(&victim, home.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, home.join("dirlink")).unwrap();
        std::fs::write(home.join("plain"), "").unwrap();
        write_files(
            &home,
            &[
                file("a/b/c.toml", "x = 1\n"),
                file("kept", "theirs"),
                file("link", "theirs"),
                file("dirlink/victim", "theirs"),
                file("dirlink/new", "theirs"),
                file("plain/sub", "theirs"),
            ],
        )
        .unwrap();
        let made = home.join("a/b/c.toml");
        assert_eq!(std::fs::read_to_string(&made).unwrap(), "x = 1\n");
        assert_eq!(std::fs::metadata(&made).unwrap().mode() & 0o7777, 0o600);
        for d in ["a", "a/b"] {
            let m = std::fs::metadata(home.join(d)).unwrap();
            assert_eq!(m.mode() & 0o777, 0o700 & !umask(), "{d}");
        }
        assert_eq!(std::fs::read_to_string(home.join("kept")).unwrap(), "mine");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original");
        assert!(!outside.join("new").exists());
        assert!(std::fs::symlink_metadata(home.join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(home.join("plain")).unwrap(), "");
        // Control: the same call again changes nothing, and fails nowhere.
        std::fs::write(&made, "edited").unwrap();
        write_files(&home, &[file("a/b/c.toml", "x = 1\n")]).unwrap();
        assert_eq!(std::fs::read_to_string(&made).unwrap(), "edited");
        // A home that is a symlink is refused, not followed.
        std::os::unix::fs::symlink(&outside, base.path().join("via")).unwrap();
        let e = write_files(&base.path().join("via"), &[file("f", "t")]).unwrap_err();
        assert!(e.contains("opening the home"), "{e}");
        assert!(!outside.join("f").exists());
    }

    /// The umask, read without changing it (other tests run alongside).
    fn umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
    }

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
