//! The sandbox's mount view, built in its own mount namespace before
//! Landlock (Landlock forbids mount changes once it is enforced, and its
//! rules bind to whatever is mounted when they are made).
//!
//! Call order, all as root in the new mount and PID namespaces:
//! [`make_private`] first (nothing we mount may propagate back to the host),
//! then [`Overlay::prepare`] for paths that a fresh mount would hide, then
//! [`mount_proc`], [`mount_tmpfs`] for `/tmp` and `/dev/shm`, and
//! [`Overlay::restore`] last.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A failed mount step: which one, on what path, why.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}: {source}")]
pub struct MountError {
    pub step: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MountError + 'a {
    move |source| MountError {
        step,
        path: path.to_path_buf(),
        source,
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(CString::new).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(CString::new).transpose()?;
    let data = data.map(CString::new).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either NULL or a NUL-terminated string that
    // outlives the call.
    let r = unsafe {
        libc::mount(
            p(&src),
            target.as_ptr(),
            p(&fstype),
            flags,
            p(&data).cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes every mount private, recursively, so nothing done in this
/// namespace reaches the host's.
///
/// # Errors
/// The `mount(2)` errno.
pub fn make_private() -> Result<(), MountError> {
    let root = Path::new("/");
    mount(None, root, None, libc::MS_REC | libc::MS_PRIVATE, None).map_err(err("making mounts private at", root))
}

/// Mounts a fresh procfs on /proc: it shows only the sandbox's PID namespace.
///
/// # Errors
/// The `mount(2)` errno.
pub fn mount_proc() -> Result<(), MountError> {
    let p = Path::new("/proc");
    mount(
        Some("proc"),
        p,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )
    .map_err(err("mounting procfs on", p))
}

/// Mounts a private tmpfs (mode 1777, nosuid, nodev, noexec unless `exec`).
///
/// # Errors
/// The `mount(2)` errno.
pub fn mount_tmpfs(path: &Path, size: u64, exec: bool) -> Result<(), MountError> {
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if !exec {
        flags |= libc::MS_NOEXEC;
    }
    let data = format!("size={size},mode=1777");
    mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some(&data)).map_err(err("mounting tmpfs on", path))
}

/// Grants that a fresh mount (the private /tmp) would hide: held open
/// before the mount and bound back on top of it afterwards, so `-w
/// /tmp/project` keeps working under a private /tmp.
pub struct Overlay {
    kept: Vec<(PathBuf, OwnedFd, bool)>,
}

impl Overlay {
    /// Opens every path in `paths` that lies beneath one of `covers`.
    ///
    /// # Errors
    /// Opening a path fails.
    pub fn prepare(paths: &[PathBuf], covers: &[&Path]) -> Result<Overlay, MountError> {
        let mut kept = Vec::new();
        for p in paths {
            if !covers.iter().any(|c| p.starts_with(c) && p != c) {
                continue;
            }
            let c = cstr(p).map_err(err("opening", p))?;
            // SAFETY: c is a valid C string; O_PATH opens no file contents.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(err("opening", p)(io::Error::last_os_error()));
            }
            // SAFETY: fd was just returned by open and is owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            kept.push((p.clone(), fd, p.is_dir()));
        }
        Ok(Overlay { kept })
    }

    /// Binds each kept path back at its place, creating the mount point.
    ///
    /// # Errors
    /// Creating the mount point or the bind mount fails.
    pub fn restore(self) -> Result<(), MountError> {
        for (path, fd, is_dir) in &self.kept {
            if *is_dir {
                std::fs::create_dir_all(path).map_err(err("creating mount point", path))?;
            } else {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(err("creating mount point", path))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(err("creating mount point", path))?;
            }
            let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
            mount(Some(&src), path, None, libc::MS_BIND | libc::MS_REC, None).map_err(err("binding back", path))?;
        }
        Ok(())
    }
}
