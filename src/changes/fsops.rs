//! Descriptor-only file operations for review mode: listing a directory,
//! `fstatat` without following, xattrs, removing a tree. Everything acts
//! on an entry's name inside a directory descriptor opened without
//! following symlinks (DESIGN.md §4, host-side rules), so nothing a
//! concurrent writer renames or links can redirect it.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::fcntl::OFlag;

use crate::sandbox::fsfd;

pub(crate) fn cname(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The names in the directory `dir` (without `.` and `..`), sorted.
///
/// # Errors
/// Reading the directory failed.
pub(crate) fn list(dir: BorrowedFd) -> io::Result<Vec<OsString>> {
    // fdopendir takes its own descriptor (closed by closedir); it must be
    // readable, and start at the beginning.
    let own = fsfd::open_with(
        Some(dir),
        Path::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
    )?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(own);
    // SAFETY: raw is an open directory descriptor that fdopendir takes over.
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so raw is still ours to close.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut names = Vec::new();
    loop {
        // SAFETY: d is a valid DIR*; errno is reset to tell the end from
        // an error.
        let ent = unsafe {
            *libc::__errno_location() = 0;
            libc::readdir(d)
        };
        if ent.is_null() {
            // SAFETY: reading errno right after readdir.
            let errno = unsafe { *libc::__errno_location() };
            // SAFETY: d is valid and closed once.
            unsafe { libc::closedir(d) };
            if errno != 0 {
                return Err(io::Error::from_raw_os_error(errno));
            }
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is a C string.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            names.push(OsString::from_vec(b.to_vec()));
        }
    }
    names.sort();
    Ok(names)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` when it doesn't exist.
///
/// # Errors
/// fstatat's errno other than ENOENT.
pub(crate) fn lstat_at(dir: BorrowedFd, name: &OsStr) -> io::Result<Option<libc::stat>> {
    let c = cname(name)?;
    // SAFETY: an all-zero stat is valid; a valid fd and C string.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; fstatat fills st.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(st))
}

/// The directory `name` in `dir`, readable, never through a symlink.
///
/// # Errors
/// openat2's errno (ELOOP for a symlink, ENOTDIR).
pub(crate) fn open_dir(dir: BorrowedFd, name: &OsStr) -> io::Result<OwnedFd> {
    fsfd::open_with(
        Some(dir),
        Path::new(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
    )
}

/// The directory at the relative `path` beneath `root`, never through a
/// symlink nor out of `root`; `None` when a component is missing.
///
/// # Errors
/// openat2's errno other than ENOENT.
pub(crate) fn open_rel_dir(root: BorrowedFd, path: &Path) -> io::Result<Option<OwnedFd>> {
    match fsfd::open_with(Some(root), path, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The regular file `name` in `dir`, for reading, never through a symlink.
///
/// # Errors
/// openat2's errno.
pub(crate) fn open_file(dir: BorrowedFd, name: &OsStr) -> io::Result<std::fs::File> {
    let fd = fsfd::open_with(
        Some(dir),
        Path::new(name),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
    )?;
    Ok(std::fs::File::from(fd))
}

/// What the symlink `name` in `dir` points to.
///
/// # Errors
/// readlinkat's errno.
pub(crate) fn readlink_at(dir: BorrowedFd, name: &OsStr) -> io::Result<OsString> {
    let c = cname(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: a valid fd, C string and buffer of the size passed.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

/// The value of xattr `name` on the open file `fd`; `None` when it has none.
///
/// # Errors
/// fgetxattr's errno other than ENODATA / ENOTSUP.
pub(crate) fn xattr(fd: BorrowedFd, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: a valid fd, C string and buffer of the size passed.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::ENODATA) | Some(libc::ENOTSUP)) {
            return Ok(None);
        }
        return Err(e);
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

/// Removes xattr `name` from the open file `fd` (absent is fine).
///
/// # Errors
/// fremovexattr's errno other than ENODATA.
pub(crate) fn remove_xattr(fd: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: a valid fd and C string.
    let r = unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENODATA) {
            return Err(e);
        }
    }
    Ok(())
}

/// Removes the entry `name` of `dir` and, for a directory, everything in
/// it, never following a symlink (a link is removed, not what it points
/// to). Absent is fine.
///
/// # Errors
/// The first unlink or open that failed.
pub(crate) fn remove_tree(dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    let c = cname(name)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let sub = match open_dir(dir, name) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                // overlayfs leaves `work/work` with mode 000. Made
                // readable through a descriptor of that very directory
                // (fchmodat would follow a symlink swapped in meanwhile).
                let p = fsfd::open(Some(dir), Path::new(name))?;
                if fsfd::stat(std::os::fd::AsFd::as_fd(&p))?.st_mode & libc::S_IFMT != libc::S_IFDIR
                {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                let via = CString::new(format!("/proc/self/fd/{}", p.as_raw_fd()))
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                // SAFETY: a valid C string naming the directory opened.
                check(unsafe { libc::chmod(via.as_ptr(), 0o700) })?;
                open_dir(dir, name)?
            }
            Err(e) => return Err(e),
        };
        let mut opened = false;
        for n in list(std::os::fd::AsFd::as_fd(&sub))? {
            match remove_tree(std::os::fd::AsFd::as_fd(&sub), &n) {
                // A read-only directory (the agent's, or copied up) must
                // be writable to be emptied: made so only then.
                Err(e) if e.raw_os_error() == Some(libc::EACCES) && !opened => {
                    opened = true;
                    // SAFETY: a valid fd.
                    check(unsafe { libc::fchmod(sub.as_raw_fd(), 0o700) })?;
                    remove_tree(std::os::fd::AsFd::as_fd(&sub), &n)?;
                }
                r => r?,
            }
        }
        // SAFETY: a valid fd and C string.
        return check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) });
    }
    // SAFETY: a valid fd and C string; unlinkat never follows a symlink.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) })
}

/// `mkdirat(dir, name, mode)`; an existing directory is fine.
///
/// # Errors
/// mkdirat's errno other than EEXIST.
pub(crate) fn mkdir_at(dir: BorrowedFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: a valid fd and C string.
    let r = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

/// `mkdirat(dir, name, mode)`, which must make it: a directory that
/// appeared there meanwhile is someone else's, never adopted.
///
/// # Errors
/// mkdirat's errno, EEXIST included.
pub(crate) fn mkdir_new(dir: BorrowedFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: a valid fd and C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) })
}

/// A duplicate of `fd`.
///
/// # Errors
/// fcntl's errno.
pub(crate) fn dup(fd: BorrowedFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}
