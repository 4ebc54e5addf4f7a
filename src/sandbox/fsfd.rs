//! Paths opened once: the file-descriptor primitives behind DESIGN.md §4's
//! host-side rules.
//!
//! Whatever a workspace writer controls (a concurrent sandbox on the same
//! workspace, another agent, the user) can change between two system calls.
//! So confine's privileged steps never look a path up twice: they open it
//! once with `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (and
//! `RESOLVE_BENEATH` when relative to a directory already opened), check
//! what they got with `fstat` on that descriptor, and act on the descriptor
//! from then on: mounts are cloned from it (`open_tree`) and attached onto
//! another descriptor (`move_mount`), never by path.
//!
//! Every function here is a thin, checked wrapper around one system call.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

/// What an opened path is: enough to tell later that a descriptor opened
/// elsewhere (in another mount namespace) is the same object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Identity {
    pub dev: u64,
    pub ino: u64,
    /// `S_IFMT` bits of the mode.
    pub kind: u32,
}

impl Identity {
    pub(crate) fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Opens `path` as an `O_PATH` descriptor without following any symlink or
/// magic link on the way, the last component included (ELOOP). Relative to `dir` (and never escaping it) when
/// given, else `path` must be absolute.
///
/// # Errors
/// The errno of openat2: ELOOP when a symlink is on the way, ENOENT, EXDEV
/// when a relative path would leave `dir`.
pub(crate) fn open(dir: Option<BorrowedFd>, path: &Path) -> io::Result<OwnedFd> {
    open_with(dir, path, OFlag::O_PATH)
}

/// [`open`] with other open flags (`O_PATH` is not added): for a directory
/// whose entries will be created or removed through it, or a file to read.
pub(crate) fn open_with(dir: Option<BorrowedFd>, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let mut resolve = ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    let at = match dir {
        Some(d) => {
            resolve |= ResolveFlag::RESOLVE_BENEATH;
            d.as_raw_fd()
        }
        None => libc::AT_FDCWD,
    };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    // An empty relative path means the directory itself.
    let path = if dir.is_some() && path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let fd = nix::fcntl::openat2(at, path, how).map_err(io::Error::from)?;
    // SAFETY: openat2 just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens (creating it with `mode` if missing) the file `name` directly in
/// the directory `dir`, never through a symlink, as a plain descriptor
/// with `flags` (plus O_CLOEXEC and O_NOFOLLOW).
///
/// # Errors
/// The errno of openat2.
pub fn create_in(dir: BorrowedFd, name: &Path, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CREAT | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .mode(nix::sys::stat::Mode::from_bits_truncate(mode))
        .resolve(
            ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_BENEATH,
        );
    let fd = nix::fcntl::openat2(dir.as_raw_fd(), name, how).map_err(io::Error::from)?;
    // SAFETY: openat2 just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether a directory with this `stat` can only be changed by root or
/// the calling user: owned by one of them, and writable by no one else
/// unless sticky (then others can't rename or remove what isn't theirs).
pub fn trusted_dir(st: &libc::stat) -> bool {
    // SAFETY: geteuid has no arguments and can't fail.
    let me = unsafe { libc::geteuid() };
    (st.st_uid == 0 || st.st_uid == me)
        && (st.st_mode & 0o022 == 0 || st.st_mode & libc::S_ISVTX != 0)
}

/// Opens the directory `path` (absolute) without following symlinks,
/// creating each missing component (mode `mode`) beneath the one before:
/// nothing is ever created through a symlink. Every directory on the way
/// must be [`trusted_dir`]: one that another user could change could have
/// an entry swapped under confine.
///
/// # Errors
/// The errno of the open or mkdirat that failed; EPERM for a directory
/// another user could change.
pub fn make_trusted_dirs(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let check = |fd: &OwnedFd, at: &Path| -> io::Result<()> {
        if trusted_dir(&stat(fd.as_fd())?) {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} can be changed by another user (owner or mode), so what is in it can be swapped",
                at.display()
            ),
        ))
    };
    let mut dir = open_with(None, Path::new("/"), OFlag::O_DIRECTORY | OFlag::O_PATH)?;
    check(&dir, Path::new("/"))?;
    let mut at = PathBuf::from("/");
    for c in path.components().skip(1) {
        let name = Path::new(c.as_os_str());
        at.push(name);
        let next = match open_with(Some(dir.as_fd()), name, OFlag::O_DIRECTORY | OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let cname = cstr(name)?;
                // SAFETY: a valid directory fd and C string.
                let r = unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), mode) };
                if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    return Err(io::Error::last_os_error());
                }
                open_with(Some(dir.as_fd()), name, OFlag::O_DIRECTORY | OFlag::O_PATH)?
            }
            Err(e) => return Err(e),
        };
        check(&next, &at)?;
        dir = next;
    }
    Ok(dir)
}

/// The identity of what `fd` refers to.
///
/// # Errors
/// fstat's errno.
pub(crate) fn identity(fd: BorrowedFd) -> io::Result<Identity> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
    Ok(Identity {
        dev: st.st_dev,
        ino: st.st_ino,
        kind: st.st_mode & libc::S_IFMT,
    })
}

/// `fstat(2)` of `fd`.
///
/// # Errors
/// fstat's errno.
pub(crate) fn stat(fd: BorrowedFd) -> io::Result<libc::stat> {
    nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)
}

/// A detached copy of the mount tree at `fd` (with everything mounted
/// beneath it): `open_tree(fd, "", OPEN_TREE_CLONE | AT_RECURSIVE)`.
///
/// # Errors
/// open_tree's errno (EINVAL when `fd` is in another mount namespace).
pub(crate) fn clone_tree(fd: BorrowedFd) -> io::Result<OwnedFd> {
    // SAFETY: a valid fd, an empty C string with AT_EMPTY_PATH; the flags
    // make a detached copy and no memory is passed back.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::OPEN_TREE_CLONE
                | libc::OPEN_TREE_CLOEXEC
                | libc::AT_EMPTY_PATH as libc::c_uint
                | libc::AT_RECURSIVE as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Adds per-mount flags (`MOUNT_ATTR_*`) to the mount at `fd` and, when
/// `recursive`, to every mount beneath it (Linux 5.12). Flags are only
/// ever added: a mount never gets more than it had.
///
/// # Errors
/// mount_setattr's errno.
pub fn add_flags(fd: BorrowedFd, set: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: a valid fd with AT_EMPTY_PATH and a valid mount_attr of the
    // size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches the detached tree `tree` onto what `onto` refers to (a
/// descriptor, never a path: nothing is looked up again).
///
/// # Errors
/// move_mount's errno (ENOTDIR when a directory would cover a file or the
/// other way round).
pub(crate) fn attach(tree: &OwnedFd, onto: BorrowedFd) -> io::Result<()> {
    attach_at(tree, onto, Path::new(""))
}

/// Attaches `tree` onto the entry `name` of the directory `dir`, without
/// following `name` if it is a symlink (the mount then covers the link
/// itself). An empty `name` means `dir` itself.
///
/// # Errors
/// move_mount's errno.
pub(crate) fn attach_at(tree: &OwnedFd, dir: BorrowedFd, name: &Path) -> io::Result<()> {
    let c = cstr(name)?;
    let mut flags = libc::MOVE_MOUNT_F_EMPTY_PATH;
    if name.as_os_str().is_empty() {
        flags |= libc::MOVE_MOUNT_T_EMPTY_PATH;
    }
    // SAFETY: valid fds and a C string that outlives the call; without
    // MOVE_MOUNT_T_SYMLINKS a final symlink is not followed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_fd().as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            c.as_ptr(),
            flags,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fsconfig(2)` commands and `fsopen`/`fsmount` flags (linux/mount.h).
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

/// A new, detached mount of a `fstype` filesystem made with the new mount
/// API (`fsopen`, `fsconfig`, `fsmount`; Linux 5.2, and for every
/// filesystem through the kernel's legacy adapter before it was ported),
/// with the per-mount flags `attrs` (`MOUNT_ATTR_*`). Each option is a
/// flag (`None`) or a string. The kernel's own message about a refusal
/// (overlayfs says which option or layer it rejects) is added to the
/// error.
///
/// # Errors
/// The errno of the step that failed, with the filesystem's message.
pub(crate) fn mount_fs(
    fstype: &str,
    options: &[(&str, Option<String>)],
    attrs: u64,
) -> io::Result<OwnedFd> {
    let ty = CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid C string and integer flags.
    let r = unsafe { libc::syscall(libc::SYS_fsopen, ty.as_ptr(), FSOPEN_CLOEXEC) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsopen just returned this fd and nothing else owns it.
    let fsc = unsafe { OwnedFd::from_raw_fd(r as i32) };
    let config = |cmd: libc::c_uint, key: Option<&CString>, value: Option<&CString>| {
        let p = |c: Option<&CString>| c.map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: a valid fs context fd; key and value are NULL or C
        // strings that outlive the call, as `cmd` requires.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsc.as_raw_fd(),
                cmd,
                p(key),
                p(value).cast::<libc::c_void>(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(with_fs_message(&fsc, e));
        }
        Ok(())
    };
    for (key, value) in options {
        let k = CString::new(*key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        match value {
            None => config(FSCONFIG_SET_FLAG, Some(&k), None)?,
            Some(v) => {
                let v = CString::new(v.as_str())
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                config(FSCONFIG_SET_STRING, Some(&k), Some(&v))?;
            }
        }
    }
    config(FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: a valid fs context fd and integer flags.
    let r = unsafe { libc::syscall(libc::SYS_fsmount, fsc.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(with_fs_message(&fsc, e));
    }
    // SAFETY: fsmount just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// `e`, with the messages the filesystem left on its context (lines
/// read from the fs fd, e.g. `e overlayfs: failed to ...`).
fn with_fs_message(fsc: &OwnedFd, e: io::Error) -> io::Error {
    let mut said = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..8 {
        // SAFETY: reading into a buffer of the size passed.
        let n = unsafe { libc::read(fsc.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
        said.push(line.get(2..).unwrap_or(&line).trim().to_string());
    }
    if said.is_empty() {
        return e;
    }
    io::Error::new(e.kind(), format!("{e} ({})", said.join("; ")))
}

/// Whether the directory `at` has an entry `name`, of any kind (a symlink
/// itself, never followed).
pub fn exists_at(at: BorrowedFd, name: &std::ffi::CStr) -> bool {
    // SAFETY: an all-zero stat is valid and fstatat fills it; a valid
    // directory descriptor and C string; the entry itself looked at.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstatat(
            at.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
    }
}
