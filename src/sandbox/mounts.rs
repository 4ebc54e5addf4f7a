//! The sandbox's mount view: a fresh root that holds only what the plan
//! grants, built in the sandbox's own mount namespace and entered with
//! `pivot_root`, the way bubblewrap does it.
//!
//! Why a view and not only Landlock: Landlock (up to ABI 8) can't stop
//! `connect(2)` to a pathname unix socket, nor chmod, chown, utime or xattr
//! changes, nor `ld.so ./binary` mapping a file it may read. In this view a
//! path that isn't granted doesn't exist; a read or exec grant is a
//! read-only bind mount; only write grants are writable; exec is possible
//! only where exec is granted (noexec everywhere else); nothing is setuid or
//! a device but the few devices every program needs.
//!
//! Call [`build`] once, as root, in a new mount namespace and (for the fresh
//! /proc) a new PID namespace, before Landlock: Landlock forbids mount
//! changes once enforced, and its rules bind to what is mounted when they are
//! made.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// One granted path, bound from the host at the same place.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Bind {
    /// Absolute, canonical (no symlinks) host path.
    pub path: PathBuf,
    pub write: bool,
    pub exec: bool,
}

/// The whole view, as plain data from the plan.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct View {
    /// Sorted so that a parent comes before anything beneath it.
    pub binds: Vec<Bind>,
    /// Symlinks on the way to granted paths (`/bin -> usr/bin`), recreated
    /// as they are on the host so programs find what they expect.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// Directories between a write grant and a protected path: bound onto
    /// themselves so they are mount points, which can't be renamed or
    /// removed (else `mv .git x; mkdir .git` would sidestep the protection).
    pub pins: Vec<PathBuf>,
    /// Paths inside write grants that stay read-only (bound onto themselves
    /// read-only).
    pub protect: Vec<PathBuf>,
    /// Protected paths that are symlinks: an empty read-only file is mounted
    /// on the link itself, so it can be neither followed nor replaced.
    pub masks: Vec<PathBuf>,
    /// Directories the launcher creates on the host before the launch (and
    /// removes afterwards if still empty), parents first: mount points for
    /// protected paths that don't exist yet.
    pub create: Vec<PathBuf>,
    /// The private /tmp: (size in bytes, exec).
    pub tmp: Option<(u64, bool)>,
    /// Size of the private /dev/shm.
    pub shm_size: u64,
}

/// The devices every sandbox gets (DESIGN.md §2), bound from the host.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

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

fn check(r: libc::c_int) -> io::Result<()> {
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(CString::new).transpose()?;
    let data = data.map(CString::new).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives
    // the call.
    check(unsafe { libc::mount(p(&src), target.as_ptr(), p(&fstype), flags, p(&data).cast()) })
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets and clears per-mount flags on `path` and, recursively, on every
/// mount beneath it (Linux 5.12).
fn setattr(path: &Path, set: u64, clr: u64, recursive: bool) -> io::Result<()> {
    let c = cstr(path)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 } as libc::c_uint;
    // SAFETY: c is a valid path, attr a valid mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
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

const RDONLY: u64 = libc::MOUNT_ATTR_RDONLY;
const NOSUID: u64 = libc::MOUNT_ATTR_NOSUID;
const NODEV: u64 = libc::MOUNT_ATTR_NODEV;
const NOEXEC: u64 = libc::MOUNT_ATTR_NOEXEC;

/// Where the new root is assembled, in the staging tmpfs.
const NEWROOT: &str = "/newroot";
/// Where the host's root stays reachable while assembling.
const OLDROOT: &str = "/oldroot";

fn under(base: &str, p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    Path::new(base).join(rel)
}

/// What is known about the new root while it is built: the directories
/// this build created (on the new root's own tmpfs, which nothing else
/// writes to), so that later mount points beneath them need no lookups.
#[derive(Default)]
struct Tree {
    /// Directories created by [`Tree::mount_point`] and not since covered
    /// by a mount on a parent. (A mount on the directory itself keeps it:
    /// the path still reaches that mount's root without any symlink; what
    /// lies beneath it is looked up again.) All under [`NEWROOT`].
    made: Vec<PathBuf>,
}

impl Tree {
    /// Creates `path` (a directory, or an empty file when `dir` is false)
    /// and its parents inside the new root, refusing to walk through
    /// symlinks: a mount point must be exactly where the plan says.
    ///
    /// Creating first and looking only when that fails saves a lookup per
    /// component: mkdir and mknod never follow a final symlink (EEXIST), and
    /// every parent has been checked (or made) by then.
    fn mount_point(&mut self, path: &Path, dir: bool) -> Result<(), MountError> {
        let mut cur = PathBuf::from(NEWROOT);
        let rel = path.strip_prefix("/").unwrap_or(path);
        let n = rel.components().count();
        for (i, c) in rel.components().enumerate() {
            let Component::Normal(c) = c else { continue };
            cur.push(c);
            let last = i + 1 == n;
            if self.made.contains(&cur) {
                continue;
            }
            let made = if last && !dir {
                mknod_file(&cur)
            } else {
                mkdir(&cur)
            };
            match made {
                Ok(()) if last && !dir => {}
                Ok(()) => self.made.push(cur.clone()),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    match std::fs::symlink_metadata(&cur) {
                        Ok(m) if m.file_type().is_symlink() => {
                            return Err(
                                err("creating mount point (a symlink is in the way)", path)(
                                    io::Error::from_raw_os_error(libc::ELOOP),
                                ),
                            )
                        }
                        Ok(_) => {}
                        Err(e) => return Err(err("creating mount point", path)(e)),
                    }
                }
                Err(e) => return Err(err("creating mount point", path)(e)),
            }
        }
        Ok(())
    }

    /// What was made beneath `at` is hidden once something is mounted there.
    fn mounted(&mut self, at: &Path) {
        self.made.retain(|d| !(d.starts_with(at) && d != at));
    }

    /// Whether `dir` (in the new root) is the root or a directory made
    /// here: reached without any symlink on the way.
    fn checked(&self, dir: &Path) -> bool {
        dir == Path::new(NEWROOT) || self.made.iter().any(|d| d == dir)
    }

    /// Binds host `path` at the same place in the new root with the given
    /// flags, recursively.
    fn bind(&mut self, path: &Path, set: u64, clr: u64) -> Result<(), MountError> {
        let is_dir = std::fs::metadata(under(OLDROOT, path))
            .map_err(err("reading", path))?
            .is_dir();
        self.bind_as(path, is_dir, set, clr)
    }

    /// [`Tree::bind`] for a path already known to be a directory or not.
    fn bind_as(&mut self, path: &Path, dir: bool, set: u64, clr: u64) -> Result<(), MountError> {
        let src = under(OLDROOT, path);
        let dst = under(NEWROOT, path);
        self.mount_point(path, dir)?;
        mount(Some(&src), &dst, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(err("binding", path))?;
        self.mounted(&dst);
        setattr(&dst, set, clr, true).map_err(err("setting mount flags on", path))
    }
}

fn mkdir(p: &Path) -> io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: c is a valid C string.
    check(unsafe { libc::mkdir(c.as_ptr(), 0o755) })
}

/// An empty regular file, in one call (no descriptor to close).
fn mknod_file(p: &Path) -> io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: c is a valid C string; a regular file needs no device number.
    check(unsafe { libc::mknod(c.as_ptr(), libc::S_IFREG | 0o644, 0) })
}

/// Builds the view and enters it. Afterwards `/` is the new root and the
/// host's tree is gone from this mount namespace.
///
/// # Errors
/// The first mount step that fails, with its path.
pub fn build(view: &View) -> Result<(), MountError> {
    let root = Path::new("/");
    // Nothing done here may propagate back to the host.
    mount(None, root, None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(err("making mounts private at", root))?;

    // Stage on a tmpfs over /tmp (in this namespace only): pivot into it so
    // the host's tree is at /oldroot, complete, with nothing shadowed.
    let stage = Path::new("/tmp");
    mount(
        Some(Path::new("tmpfs")),
        stage,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(err("mounting the staging tmpfs on", stage))?;
    for d in ["/tmp/newroot", "/tmp/oldroot"] {
        std::fs::create_dir(d).map_err(err("creating", Path::new(d)))?;
    }
    pivot(stage, Path::new("/tmp/oldroot"))?;

    let newroot = Path::new(NEWROOT);
    mount(
        Some(Path::new("tmpfs")),
        newroot,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(err("mounting the new root on", newroot))?;

    let mut tree = Tree::default();
    proc_and_dev(&mut tree, view)?;

    for b in &view.binds {
        let mut set = NOSUID | NODEV;
        let mut clr = 0;
        if b.write {
            clr |= RDONLY;
        } else {
            set |= RDONLY;
        }
        if b.exec {
            clr |= NOEXEC;
        } else {
            set |= NOEXEC;
        }
        tree.bind(&b.path, set, clr)?;
    }
    for (link, target) in &view.links {
        let at = under(NEWROOT, link);
        // Under a checked parent, symlink's own EEXIST says that a grant is
        // there already; elsewhere look first, as the parent may be reached
        // through a symlink (and then the link is not ours to make).
        let checked = at.parent().is_some_and(|p| tree.checked(p));
        if !checked {
            if std::fs::symlink_metadata(&at).is_ok() {
                continue;
            }
            if let Some(parent) = link.parent() {
                tree.mount_point(parent, true)?;
            }
        }
        match std::os::unix::fs::symlink(target, &at) {
            Err(e) if checked && e.kind() == io::ErrorKind::AlreadyExists => {}
            r => r.map_err(err("creating symlink", link))?,
        }
    }
    for p in &view.pins {
        let at = under(NEWROOT, p);
        no_symlink_on(&at).map_err(err("pinning", p))?;
        mount(Some(&at), &at, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(err("pinning", p))?;
    }
    for p in &view.protect {
        let at = under(NEWROOT, p);
        no_symlink_on(&at).map_err(err("protecting", p))?;
        mount(Some(&at), &at, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(err("protecting", p))?;
        setattr(&at, RDONLY | NOSUID | NODEV, 0, true).map_err(err("making read-only", p))?;
    }
    if !view.masks.is_empty() {
        mask_symlinks(&view.masks)?;
    }

    // Enter the new root and drop the host's tree from this namespace.
    enter(newroot)?;
    // The root itself holds only mount points and symlinks.
    mount(
        None,
        root,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
    .map_err(err("making read-only", root))?;
    Ok(())
}

/// Fails if any component of `path` (in the new root) is a symlink: a
/// workspace is the agent's, and a mount must land exactly where planned.
fn no_symlink_on(path: &Path) -> io::Result<()> {
    let rel = path.strip_prefix(NEWROOT).unwrap_or(path);
    let mut cur = PathBuf::from(NEWROOT);
    for c in rel.components() {
        cur.push(c);
        if std::fs::symlink_metadata(&cur)?.file_type().is_symlink() {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
    }
    Ok(())
}

/// Mounts an empty read-only file on each symlink itself (the new mount API
/// doesn't follow a target's final symlink; mount(2) would).
fn mask_symlinks(links: &[PathBuf]) -> Result<(), MountError> {
    let empty = Path::new("/empty");
    std::fs::File::create(empty).map_err(err("creating", empty))?;
    let c = cstr(empty).map_err(err("opening", empty))?;
    // SAFETY: c is a valid C string; OPEN_TREE_CLONE makes a detached copy.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(err("cloning", empty)(io::Error::last_os_error()));
    }
    // SAFETY: the fd was just returned to us.
    let tree = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    setattr_fd(&tree, RDONLY | NOSUID | NODEV | NOEXEC).map_err(err("making read-only", empty))?;
    for link in links {
        let at = under(NEWROOT, link);
        let parent = at.parent().unwrap_or(Path::new(NEWROOT));
        no_symlink_on(parent).map_err(err("masking", link))?;
        let t = cstr(&at).map_err(err("masking", link))?;
        // Each symlink gets its own clone of the empty file.
        // SAFETY: an empty path with AT_EMPTY_PATH refers to the fd itself.
        let one = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                std::os::fd::AsRawFd::as_raw_fd(&tree),
                c"".as_ptr(),
                libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32,
            )
        };
        if one < 0 {
            return Err(err("cloning", empty)(io::Error::last_os_error()));
        }
        // SAFETY: the fd was just returned to us.
        let one =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(one as i32) };
        // SAFETY: valid fd and C strings; without MOVE_MOUNT_T_SYMLINKS the
        // target's final symlink is not followed: the mount covers the link.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                std::os::fd::AsRawFd::as_raw_fd(&one),
                c"".as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if r != 0 {
            return Err(err("masking symlink", link)(io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn setattr_fd(fd: &std::os::fd::OwnedFd, set: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid fd with AT_EMPTY_PATH and a valid mount_attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(fd),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Creates the placeholder directories of `view.create` on the host, owned
/// by the agent; returns those actually created, for [`remove_created`].
///
/// # Errors
/// A directory can't be created (or a symlink is in the way).
pub fn create_placeholders(view: &View, uid: u32, gid: u32) -> Result<Vec<PathBuf>, MountError> {
    let mut made = Vec::new();
    for d in &view.create {
        match std::fs::symlink_metadata(d) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(err("creating placeholder", d)(
                    io::Error::from_raw_os_error(libc::EEXIST),
                ));
            }
            Err(_) => {}
        }
        std::fs::create_dir(d).map_err(err("creating placeholder", d))?;
        made.push(d.clone());
        let c = cstr(d).map_err(err("creating placeholder", d))?;
        // SAFETY: c is a valid C string; lchown doesn't follow symlinks.
        if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
            let e = io::Error::last_os_error();
            // Unprivileged, the directory is the caller's already.
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(err("creating placeholder", d)(e));
            }
        }
    }
    Ok(made)
}

/// Removes placeholders left empty, deepest first.
pub fn remove_created(made: &[PathBuf]) {
    for d in made.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
}

/// /proc, /dev (the standard devices bound from the host, a private devpts
/// and /dev/shm) and the private /tmp.
fn proc_and_dev(tree: &mut Tree, view: &View) -> Result<(), MountError> {
    let proc_ = Path::new("/proc");
    tree.mount_point(proc_, true)?;
    mount(
        Some(Path::new("proc")),
        &under(NEWROOT, proc_),
        Some("proc"),
        // Read-only: Landlock grants /proc read access only, and this is the
        // second layer behind it.
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
        None,
    )
    .map_err(err("mounting procfs on", proc_))?;
    tree.mounted(&under(NEWROOT, proc_));

    let dev = Path::new("/dev");
    tree.mount_point(dev, true)?;
    let dev_at = under(NEWROOT, dev);
    mount(
        Some(Path::new("tmpfs")),
        &dev_at,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )
    .map_err(err("mounting tmpfs on", dev))?;
    tree.mounted(&dev_at);
    for d in DEVICES {
        let p = dev.join(d);
        // Devices are the one place nodev is lifted. They are not
        // directories: no need to look at the host's first.
        tree.bind_as(&p, false, NOSUID | NOEXEC, NODEV | RDONLY)?;
    }
    let pts = dev.join("pts");
    tree.mount_point(&pts, true)?;
    mount(
        Some(Path::new("devpts")),
        &under(NEWROOT, &pts),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(err("mounting devpts on", &pts))?;
    tree.mounted(&under(NEWROOT, &pts));
    let shm = dev.join("shm");
    tree.mount_point(&shm, true)?;
    mount(
        Some(Path::new("tmpfs")),
        &under(NEWROOT, &shm),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(&format!("mode=1777,size={}", view.shm_size)),
    )
    .map_err(err("mounting tmpfs on", &shm))?;
    tree.mounted(&under(NEWROOT, &shm));
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let at = dev_at.join(name);
        std::os::unix::fs::symlink(target, &at)
            .map_err(err("creating symlink", &dev.join(name)))?;
    }
    setattr(&dev_at, RDONLY, 0, false).map_err(err("making read-only", dev))?;

    if let Some((size, exec)) = view.tmp {
        let tmp = Path::new("/tmp");
        tree.mount_point(tmp, true)?;
        let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
        if !exec {
            flags |= libc::MS_NOEXEC;
        }
        mount(
            Some(Path::new("tmpfs")),
            &under(NEWROOT, tmp),
            Some("tmpfs"),
            flags,
            Some(&format!("mode=1777,size={size}")),
        )
        .map_err(err("mounting tmpfs on", tmp))?;
        tree.mounted(&under(NEWROOT, tmp));
    }
    Ok(())
}

fn pivot(new_root: &Path, put_old: &Path) -> Result<(), MountError> {
    let n = cstr(new_root).map_err(err("pivot_root to", new_root))?;
    let o = cstr(put_old).map_err(err("pivot_root to", new_root))?;
    // SAFETY: both are valid C strings.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    if r != 0 {
        return Err(err("pivot_root to", new_root)(explain_pivot(
            io::Error::last_os_error(),
        )));
    }
    std::env::set_current_dir("/").map_err(err("entering", Path::new("/")))
}

/// pivot_root(2) fails with EINVAL when the current root is the initramfs
/// itself (rootfs), which can never be unmounted: say so, since the errno
/// alone points nowhere. (A system that boots to a real root, a container,
/// or an initramfs after switch_root doesn't meet this.)
fn explain_pivot(e: io::Error) -> io::Error {
    let on_rootfs = e.raw_os_error() == Some(libc::EINVAL)
        && std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
            m.lines().any(|l| {
                let mut f = l.split(' ');
                f.nth(4) == Some("/")
                    && l.split(" - ")
                        .nth(1)
                        .is_some_and(|t| t.starts_with("rootfs "))
            })
        });
    if !on_rootfs {
        return e;
    }
    io::Error::new(
        e.kind(),
        format!(
            "{e}: the root filesystem is the initramfs (rootfs), which pivot_root can't \
             move; run confine from a system booted onto a real root filesystem, or after \
             switch_root"
        ),
    )
}

/// pivot_root(".", ".") then detach the old root: the idiom that needs no
/// directory for the old root inside the new one.
fn enter(new_root: &Path) -> Result<(), MountError> {
    std::env::set_current_dir(new_root).map_err(err("entering", new_root))?;
    let dot = c".";
    // SAFETY: "." is a valid C string.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if r != 0 {
        return Err(err("pivot_root to", new_root)(explain_pivot(
            io::Error::last_os_error(),
        )));
    }
    // SAFETY: "." is a valid C string; the old root is stacked on ".".
    check(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })
        .map_err(err("detaching the old root", new_root))?;
    std::env::set_current_dir("/").map_err(err("entering", Path::new("/")))
}
