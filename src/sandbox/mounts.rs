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
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::fsfd::{self, Identity};

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
    /// What `/etc/resolv.conf` says inside, when not the host's (proxy
    /// mode: the egress proxy's DNS stub). Mounted on the host's entry
    /// (a file or a symlink, not followed) where the view shows `/etc`;
    /// without one, resolvers ask 127.0.0.1 anyway.
    pub resolv_conf: Option<String>,
    /// What `/etc/hosts` says inside: the sandbox's own names (its UTS
    /// hostname is always [`super::namespaces::HOSTNAME`]), after the host's entries where the
    /// sandbox shares the host's network. Mounted like `resolv_conf`.
    pub hosts: Option<String>,
    /// The protected paths inside the workspace and the directories on the
    /// way to them, parents first: the launcher makes each that is missing
    /// at launch (see [`super::placeholders`], which shares them among the
    /// sandboxes on a workspace and removes them after the last).
    pub create: Vec<Placeholder>,
    /// Protected paths (and the directories on the way) in write grants
    /// outside the workspace: never made by this launch, but relied on
    /// while it runs if another sandbox made them.
    pub rely: Vec<PathBuf>,
    /// The private /tmp: (size in bytes, exec).
    pub tmp: Option<(u64, bool)>,
    /// Size of the private /dev/shm.
    pub shm_size: u64,
    /// How the standard devices get into /dev.
    pub devices: Devices,
    /// Review mode (DESIGN.md §14): this bind (the workspace) is an
    /// overlay whose lower layer is the host's directory and whose upper
    /// layer is the sandbox's state directory, not a bind.
    pub overlay: Option<Overlay>,
}

/// The workspace as an overlay (review mode).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Overlay {
    /// The bind it replaces: the workspace.
    pub path: PathBuf,
    /// Unprivileged: overlayfs in a user namespace keeps its metadata in
    /// `user.overlay.*` xattrs (Linux 5.11), which turns `redirect_dir`
    /// off: renaming a directory of the lower layer is EXDEV. As root,
    /// `trusted.overlay.*` with `redirect_dir=on`.
    pub userxattr: bool,
}

/// A path inside the workspace that holds the place of a protected path
/// which doesn't exist yet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Placeholder {
    pub path: PathBuf,
    /// An empty directory; else an empty regular file.
    pub dir: bool,
}

/// Where the sandbox's /dev/null, zero, ... come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Devices {
    /// Nodes of the sandbox's own, made with mknod on its /dev tmpfs (needs
    /// real root): a chmod inside changes nothing on the host.
    #[default]
    Own,
    /// Own nodes where mknod works, else the host's bound (only when the
    /// agent isn't uid 0: bound nodes belong to root, and only their owner
    /// could chmod them).
    OwnOrBind,
    /// The host's nodes, bound (an unprivileged user namespace can't mknod).
    Bind,
}

/// The devices every sandbox gets (DESIGN.md §2), with their fixed
/// character device numbers (the kernel's devices.txt).
pub(crate) const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// A failed mount step: which one, on what path, why.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}: {source}")]
pub(crate) struct MountError {
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
    /// The trees bound so far (host path, descriptor of the mounted tree's
    /// root), parents first: what lies beneath them is the host's, reached
    /// only through these descriptors.
    trees: Vec<(PathBuf, OwnedFd)>,
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

    /// Where a mount at `path` goes: onto the entry of an already mounted
    /// tree when one covers `path` (opened beneath that mount's descriptor,
    /// never created: it is the host's), else onto a mount point made in the
    /// new root's own tmpfs (a directory, or an empty file when `dir` is
    /// false).
    fn target(&mut self, path: &Path, dir: bool) -> Result<OwnedFd, MountError> {
        if let Some((base, fd)) = self.covering(path) {
            let rel = path.strip_prefix(base).unwrap_or(Path::new(""));
            return fsfd::open(Some(fd.as_fd()), rel).map_err(err("opening mount point", path));
        }
        self.mount_point(path, dir)?;
        fsfd::open(None, &under(NEWROOT, path)).map_err(err("opening mount point", path))
    }

    /// The deepest mounted tree at or above `path`.
    fn covering(&self, path: &Path) -> Option<(&Path, &OwnedFd)> {
        self.trees
            .iter()
            .rev()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.as_os_str().len())
            .map(|(p, fd)| (p.as_path(), fd))
    }

    /// Binds host `path` at the same place in the new root with the flags
    /// `set` added (recursively), from a descriptor opened once: the host path is
    /// opened without following symlinks and must still be the object the
    /// supervisor checked (`expect`), and the mount is cloned from that
    /// descriptor and attached onto another, so no later lookup can be
    /// redirected.
    fn bind(&mut self, path: &Path, expect: Option<Identity>, set: u64) -> Result<(), MountError> {
        let src = fsfd::open(None, &under(OLDROOT, path)).map_err(err("opening", path))?;
        let id = fsfd::identity(src.as_fd()).map_err(err("reading", path))?;
        if let Some(e) = expect {
            same(&e, &id, path)?;
        }
        let tree = fsfd::clone_tree(src.as_fd()).map_err(err("binding", path))?;
        fsfd::add_flags(tree.as_fd(), set, true).map_err(err("setting mount flags on", path))?;
        let onto = self.target(path, id.is_dir())?;
        fsfd::attach(&tree, onto.as_fd()).map_err(err("binding", path))?;
        self.mounted(&under(NEWROOT, path));
        self.trees.push((path.to_path_buf(), tree));
        Ok(())
    }

    /// Mounts an overlay at `path` (the workspace): the host's directory
    /// (opened without following symlinks, checked against `expect`) as
    /// the lower layer, the state directory's `upper` and `work` (checked
    /// against what the supervisor made) as the others. Layers are named
    /// to overlayfs as `/proc/self/fd/N` of descriptors opened once, so no
    /// path is looked up twice; the mount is made detached (`fsmount`) and
    /// attached by descriptor like a bind.
    fn overlay(
        &mut self,
        o: &Overlay,
        layers: &Layers,
        expect: Option<Identity>,
        set: u64,
    ) -> Result<(), MountError> {
        let path = &o.path;
        let lower = fsfd::open(None, &under(OLDROOT, path)).map_err(err("opening", path))?;
        let id = fsfd::identity(lower.as_fd()).map_err(err("reading", path))?;
        if let Some(e) = expect {
            same(&e, &id, path)?;
        }
        let open_layer = |p: &Path, want: &Identity| -> Result<OwnedFd, MountError> {
            let fd = fsfd::open(None, &under(OLDROOT, p)).map_err(err("opening", p))?;
            let got = fsfd::identity(fd.as_fd()).map_err(err("reading", p))?;
            same(want, &got, p)?;
            Ok(fd)
        };
        let upper = open_layer(&layers.upper, &layers.upper_id)?;
        let work = open_layer(&layers.work, &layers.work_id)?;
        let name = |fd: &OwnedFd| {
            format!(
                "{NEWROOT}/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            )
        };
        let mut options = vec![
            ("lowerdir", Some(name(&lower))),
            ("upperdir", Some(name(&upper))),
            ("workdir", Some(name(&work))),
        ];
        if o.userxattr {
            options.push(("userxattr", None));
        } else {
            // Renaming a lower directory works (recorded as a redirect
            // xattr, which `confine diff` reads), whatever the kernel's
            // default.
            options.push(("redirect_dir", Some("on".into())));
        }
        // A chmod or chown copies the whole file up: every regular file of
        // the upper layer holds its data, which `commit` copies.
        options.push(("metacopy", Some("off".into())));
        let tree = fsfd::mount_fs("overlay", &options, set)
            .map_err(err("mounting the review overlay on", path))?;
        let onto = self.target(path, true)?;
        fsfd::attach(&tree, onto.as_fd()).map_err(err("mounting the review overlay on", path))?;
        self.mounted(&under(NEWROOT, path));
        self.trees.push((path.to_path_buf(), tree));
        Ok(())
    }

    /// Mounts a copy of what is at `path` (inside an already mounted tree)
    /// onto itself, with `set` added to its flags: a pin (`set` empty: a
    /// mount point can be neither renamed nor removed) or a protection
    /// (read-only). Opened beneath the covering tree without following
    /// symlinks, checked against `expect`, mounted by descriptor.
    fn cover(&mut self, path: &Path, expect: Option<Identity>, set: u64) -> Result<(), MountError> {
        let Some((base, fd)) = self.covering(path) else {
            return Err(err("finding the grant of", path)(
                io::Error::from_raw_os_error(libc::ENOENT),
            ));
        };
        let rel = path.strip_prefix(base).unwrap_or(Path::new(""));
        let at = fsfd::open(Some(fd.as_fd()), rel).map_err(err("opening", path))?;
        if let Some(e) = expect {
            let id = fsfd::identity(at.as_fd()).map_err(err("reading", path))?;
            same(&e, &id, path)?;
        }
        let tree = fsfd::clone_tree(at.as_fd()).map_err(err("binding", path))?;
        if set != 0 {
            fsfd::add_flags(tree.as_fd(), set, true)
                .map_err(err("setting mount flags on", path))?;
        }
        fsfd::attach(&tree, at.as_fd()).map_err(err("binding", path))
    }
}

/// Refuses a path that is no longer the object the supervisor checked.
fn same(expect: &Identity, got: &Identity, path: &Path) -> Result<(), MountError> {
    if expect.dev == got.dev && expect.ino == got.ino && expect.kind == got.kind {
        return Ok(());
    }
    Err(MountError {
        step: "checking",
        path: path.to_path_buf(),
        source: io::Error::other(
            "it was replaced after confine checked it (another process is changing it)",
        ),
    })
}

/// What the supervisor found at each path of the view, to be found again by
/// the init in the sandbox's mount namespace (where the supervisor's
/// descriptors can't be mounted from: a mount can only be cloned within
/// its own namespace).
#[derive(Clone, Debug, Default)]
pub(crate) struct Expect {
    pub binds: Vec<Identity>,
    pub pins: Vec<Identity>,
    pub protect: Vec<Identity>,
    /// Review mode: the overlay's upper and work directories, made by the
    /// supervisor in the sandbox's state directory.
    pub layers: Option<Layers>,
}

/// An overlay's upper and work directories: host paths and what the
/// supervisor made there.
#[derive(Clone, Debug)]
pub(crate) struct Layers {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub upper_id: Identity,
    pub work_id: Identity,
}

/// Opens every bind, pin and protected path of `view` once, without
/// following symlinks, and records what each is (host-side, before the
/// sandbox exists; after the placeholders are made).
///
/// # Errors
/// A path that can't be opened that way: gone, or a symlink now.
pub(crate) fn identify(view: &View) -> Result<Expect, MountError> {
    let id = |p: &PathBuf| -> Result<Identity, MountError> {
        let fd = fsfd::open(None, p).map_err(err("opening", p))?;
        fsfd::identity(fd.as_fd()).map_err(err("reading", p))
    };
    Ok(Expect {
        binds: view
            .binds
            .iter()
            .map(|b| id(&b.path))
            .collect::<Result<_, _>>()?,
        pins: view.pins.iter().map(id).collect::<Result<_, _>>()?,
        protect: view.protect.iter().map(id).collect::<Result<_, _>>()?,
        layers: None,
    })
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
/// host's tree is gone from this mount namespace. `expect` is what the
/// supervisor found at each path ([`identify`]): a path that is something
/// else now is refused.
///
/// # Errors
/// The first mount step that fails, with its path.
pub(crate) fn build(view: &View, expect: &Expect) -> Result<(), MountError> {
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

    for (i, b) in view.binds.iter().enumerate() {
        // Flags are only ever added: a write or exec grant keeps whatever
        // the host's mounts beneath it have (a read-only or noexec bind
        // inside a workspace stays so), never more than the host allows.
        let mut set = NOSUID | NODEV;
        if !b.write {
            set |= RDONLY;
        }
        if !b.exec {
            set |= NOEXEC;
        }
        match (&view.overlay, &expect.layers) {
            (Some(o), Some(layers)) if o.path == b.path => {
                tree.overlay(o, layers, expect.binds.get(i).copied(), set)?;
            }
            (Some(o), None) if o.path == b.path => {
                return Err(err("mounting the review overlay on", &b.path)(
                    io::Error::other("no upper layer was prepared"),
                ));
            }
            _ => tree.bind(&b.path, expect.binds.get(i).copied(), set)?,
        }
    }
    // Inside the overlay, paths have the overlay's device and inode
    // numbers, not those the supervisor saw on the host: they are opened
    // beneath the overlay's descriptor without following symlinks, which
    // is what the check stands for.
    let in_overlay = |p: &Path| {
        view.overlay
            .as_ref()
            .is_some_and(|o| p.starts_with(&o.path))
    };
    for (link, target) in &view.links {
        // Beneath a bound tree the host's own entries show; nothing is
        // made there.
        if link.parent().is_some_and(|p| tree.covering(p).is_some()) {
            continue;
        }
        let at = under(NEWROOT, link);
        if let Some(parent) = link.parent() {
            tree.mount_point(parent, true)?;
        }
        // EEXIST: a grant's mount point is there already.
        match std::os::unix::fs::symlink(target, &at) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            r => r.map_err(err("creating symlink", link))?,
        }
    }
    // Parents first, each looked up through the mounts made before it, so
    // a protected path is reached through its pinned parents.
    for (i, p) in view.pins.iter().enumerate() {
        let e = expect.pins.get(i).copied().filter(|_| !in_overlay(p));
        tree.cover(p, e, 0)?;
    }
    for (i, p) in view.protect.iter().enumerate() {
        let e = expect.protect.get(i).copied().filter(|_| !in_overlay(p));
        tree.cover(p, e, RDONLY | NOSUID | NODEV)?;
    }
    if !view.masks.is_empty() {
        mask_symlinks(&tree, &view.masks)?;
    }
    if let Some(text) = &view.resolv_conf {
        etc_file(&tree, c"resolv.conf", text)?;
    }
    if let Some(text) = &view.hosts {
        etc_file(&tree, c"hosts", text)?;
    }

    // Enter the new root and drop the host's tree from this namespace.
    drop(tree);
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

/// Mounts an empty read-only file on each symlink itself: the link's
/// directory is opened beneath its grant without following symlinks, and
/// the mount is attached onto the link's name in it, which move_mount
/// doesn't follow.
fn mask_symlinks(tree: &Tree, links: &[PathBuf]) -> Result<(), MountError> {
    let empty = Path::new("/empty");
    std::fs::File::create(empty).map_err(err("creating", empty))?;
    let file = fsfd::open(None, empty).map_err(err("opening", empty))?;
    let master = fsfd::clone_tree(file.as_fd()).map_err(err("cloning", empty))?;
    fsfd::add_flags(master.as_fd(), RDONLY | NOSUID | NODEV | NOEXEC, true)
        .map_err(err("making read-only", empty))?;
    for link in links {
        let (Some(parent), Some(name)) = (link.parent(), link.file_name()) else {
            continue;
        };
        let Some((base, fd)) = tree.covering(parent) else {
            return Err(err("finding the grant of", link)(
                io::Error::from_raw_os_error(libc::ENOENT),
            ));
        };
        let rel = parent.strip_prefix(base).unwrap_or(Path::new(""));
        let dir = fsfd::open(Some(fd.as_fd()), rel).map_err(err("masking", link))?;
        // Each symlink gets its own clone of the empty file.
        let one = fsfd::clone_tree(master.as_fd()).map_err(err("cloning", empty))?;
        fsfd::attach_at(&one, dir.as_fd(), Path::new(name))
            .map_err(err("masking symlink", link))?;
    }
    Ok(())
}

/// A read-only file holding `text` mounted on `/etc/NAME` of the view, on
/// the entry itself (a symlink to `/run/...` isn't followed into what the
/// view masks). Nothing when the view has no `/etc` or no such entry.
fn etc_file(tree: &Tree, name: &std::ffi::CStr, text: &str) -> Result<(), MountError> {
    let shown = Path::new("/etc").join(name.to_string_lossy().as_ref());
    let staged = Path::new("/").join(name.to_string_lossy().as_ref());
    let Some((base, fd)) = tree.covering(Path::new("/etc")) else {
        return Ok(());
    };
    let rel = Path::new("/etc")
        .strip_prefix(base)
        .unwrap_or(Path::new(""));
    let etc = fsfd::open(Some(fd.as_fd()), rel).map_err(err("opening", Path::new("/etc")))?;
    if !fsfd::exists_at(etc.as_fd(), name) {
        return Ok(());
    }
    std::fs::write(&staged, text).map_err(err("writing", &staged))?;
    let file = fsfd::open(None, &staged).map_err(err("opening", &staged))?;
    let tree_fd = fsfd::clone_tree(file.as_fd()).map_err(err("cloning", &staged))?;
    fsfd::add_flags(tree_fd.as_fd(), RDONLY | NOSUID | NODEV | NOEXEC, true)
        .map_err(err("making read-only", &staged))?;
    fsfd::attach_at(
        &tree_fd,
        etc.as_fd(),
        Path::new(name.to_string_lossy().as_ref()),
    )
    .map_err(err("mounting the sandbox's own file on", &shown))
}

/// The standard devices: nodes of the sandbox's own where it can make them,
/// so that nothing done to them inside (chmod, utime, xattrs as `user:
/// root`) reaches the host's; else the host's, bound (the only place nodev
/// is lifted).
fn devices(tree: &mut Tree, how: Devices) -> Result<(), MountError> {
    let dev = Path::new("/dev");
    for (name, major, minor) in DEVICES {
        let p = dev.join(name);
        if how != Devices::Bind {
            let c = cstr(&under(NEWROOT, &p)).map_err(err("creating device", &p))?;
            // SAFETY: c is a valid C string; the device number names one of
            // the kernel's fixed memory/tty character devices.
            let r = unsafe {
                libc::mknod(
                    c.as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(major, minor),
                )
            };
            if r == 0 {
                // mknod applies the umask; the mode must be exact.
                // SAFETY: as above; chmod doesn't follow anything but c.
                check(unsafe { libc::chmod(c.as_ptr(), 0o666) })
                    .map_err(err("creating device", &p))?;
                continue;
            }
            let e = io::Error::last_os_error();
            // A device cgroup or a container may forbid mknod: bind the
            // host's node instead, when that is allowed.
            if how == Devices::Own || e.raw_os_error() != Some(libc::EPERM) {
                return Err(err("creating device", &p)(e));
            }
        }
        tree.bind(&p, None, NOSUID | NOEXEC)?;
    }
    Ok(())
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
    devices(tree, view.devices)?;
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
    // Only /dev itself: pts and shm beneath it stay writable.
    let dev_fd = fsfd::open(None, &dev_at).map_err(err("opening", dev))?;
    fsfd::add_flags(dev_fd.as_fd(), RDONLY, false).map_err(err("making read-only", dev))?;

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
