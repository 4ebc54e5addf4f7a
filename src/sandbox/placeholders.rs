//! Placeholders: what confine adds to a workspace, shared among the
//! sandboxes on it and gone after the last one (DESIGN.md §4, host-side
//! rules).
//!
//! A protected path that doesn't exist yet needs something on the host to
//! mount over: an empty file (or directory) created in the workspace before
//! the launch. Several sandboxes may run on one workspace at once, so a
//! placeholder belongs to all of them: it is removed only when the last
//! sandbox on that workspace ends (one ending early would otherwise detach
//! the others' read-only mounts), and a sandbox whose supervisor was
//! SIGKILLed leaves it for the next launch there, or `confine gc`, to
//! remove.
//!
//! What makes this safe without trusting the workspace:
//! - The state lives outside it, in confine's runtime directory
//!   (`/run/confine`, or `$XDG_RUNTIME_DIR/confine` without root), one
//!   directory per workspace named by the workspace's device and inode. It
//!   records each placeholder by path and identity (device, inode, birth or
//!   change time), so an entry the agent made itself is never taken for one
//!   of confine's: only an empty file or directory that is still the very
//!   inode confine created is removed.
//! - Which sandboxes are alive is kept by the kernel, not by files: each
//!   holds a shared `flock` on the state's `live` file for its whole run;
//!   the lock goes when its process dies, however it dies. Whoever can take
//!   it exclusively knows no sandbox on the workspace is running.
//! - Every change is made under an exclusive `flock` on the state's `lock`
//!   file, so launches and ends never race each other ("File exists").
//! - Every file operation in the workspace goes through descriptors opened
//!   beneath the workspace's descriptor without following symlinks
//!   ([`fsfd`]); nothing outside the workspace is touched.
//!
//! A launch without placeholders to make only looks whether the workspace
//! has state (one failed open in the common case), to clean up after a
//! killed supervisor.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use super::fsfd;
use super::mounts::Placeholder;

/// How long a launch waits for another confine working on the same
/// workspace's state (a few system calls each, normally).
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// Bound on the state's record file, read whole.
const RECORD_MAX: u64 = 4 << 20;

/// A failed step on the workspace's placeholders.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {why}", path.display())]
pub struct PlaceholderError {
    pub what: &'static str,
    pub path: PathBuf,
    pub why: String,
}

fn fail<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PlaceholderError + 'a {
    move |e| PlaceholderError {
        what,
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// One placeholder confine made, as recorded in the state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Made {
    /// Relative to the workspace.
    path: PathBuf,
    dir: bool,
    dev: u64,
    ino: u64,
    /// Birth time where the filesystem keeps one, else the change time:
    /// with the inode number, tells a reused inode from ours.
    time: (i64, u32),
}

/// The record kept in the state directory.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    /// Where the workspace was when the record was written (for `gc`,
    /// which has no workspace descriptor of its own).
    workspace: PathBuf,
    made: Vec<Made>,
}

/// confine's runtime directory (DESIGN.md §12): `/run/confine` for root,
/// `$XDG_RUNTIME_DIR/confine` otherwise; `None` without either.
pub(crate) fn runtime_dir() -> Option<PathBuf> {
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/run/confine"));
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")?;
    let xdg = PathBuf::from(xdg);
    xdg.is_absolute().then(|| xdg.join("confine"))
}

/// This sandbox's hold on its workspace's placeholders; [`Lease::release`]
/// at the end (a SIGKILLed supervisor releases it by dying).
#[derive(Debug, Default)]
pub(crate) struct Lease {
    held: Option<Held>,
}

#[derive(Debug)]
struct Held {
    state: OwnedFd,
    state_path: PathBuf,
    workspace: OwnedFd,
    /// The shared lock on `live`, held for the whole run.
    live: File,
}

/// Makes the placeholders `needed` (absolute paths inside `ws_path`, parents
/// first) that don't exist yet, owned by `owner`, and registers this sandbox
/// as alive on the workspace. First removes what sandboxes that are no
/// longer alive left behind.
///
/// # Errors
/// No runtime directory while placeholders are needed; a lock held too
/// long; a placeholder that can't be made (something of another type, or a
/// symlink, in the way).
pub(crate) fn acquire(
    ws: BorrowedFd,
    ws_path: &Path,
    needed: &[Placeholder],
    owner: (u32, u32),
) -> Result<Lease, PlaceholderError> {
    let Some(rt) = runtime_dir() else {
        if needed.is_empty() {
            return Ok(Lease::default());
        }
        return Err(PlaceholderError {
            what: "tracking placeholders for",
            path: ws_path.to_path_buf(),
            why: "confine has no runtime directory (run as root, or set XDG_RUNTIME_DIR) to \
                  record the placeholders of protected paths that don't exist yet"
                .into(),
        });
    };
    let id = fsfd::identity(ws).map_err(fail("reading", ws_path))?;
    let state_path = rt.join("workspaces").join(key(id.dev, id.ino));
    loop {
        let state = if needed.is_empty() {
            // The common launch: nothing to make; clean up only if a killed
            // supervisor left state behind.
            match fsfd::open_with(None, &state_path, OFlag::O_DIRECTORY | OFlag::O_RDONLY) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Lease::default()),
                Err(e) => return Err(fail("opening", &state_path)(e)),
            }
        } else {
            make_dirs(&state_path)?
        };
        let Some(lock) = lock_state(&state, &state_path)? else {
            continue;
        };
        return acquire_locked(ws, ws_path, needed, owner, state, state_path, lock);
    }
}

/// [`acquire`] once the state's lock is held.
fn acquire_locked(
    ws: BorrowedFd,
    ws_path: &Path,
    needed: &[Placeholder],
    owner: (u32, u32),
    state: OwnedFd,
    state_path: PathBuf,
    lock: File,
) -> Result<Lease, PlaceholderError> {
    let ws_fd = fsfd::open_with(Some(ws), Path::new(""), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(fail("opening", ws_path))?;
    let mut record = read_record(&state, &state_path)?;
    if nobody_alive(&state, &state_path)? {
        sweep(ws_fd.as_fd(), ws_path, &mut record);
    }
    if needed.is_empty() {
        if record.made.is_empty() {
            remove_state(&state, &state_path, &lock);
        } else {
            write_record(&state, &state_path, &record)?;
        }
        return Ok(Lease::default());
    }
    let live = open_file(&state, "live", &state_path)?;
    flock(&live, libc::LOCK_SH | libc::LOCK_NB).map_err(fail("locking", &state_path))?;
    record.workspace = ws_path.to_path_buf();
    let made = make(ws_fd.as_fd(), ws_path, needed, owner, &mut record);
    // Recorded even when a later one failed: what was made must be found.
    write_record(&state, &state_path, &record)?;
    drop(lock);
    let lease = Lease {
        held: Some(Held {
            state,
            state_path,
            workspace: ws_fd,
            live,
        }),
    };
    if let Err(e) = made {
        lease.release();
        return Err(e);
    }
    Ok(lease)
}

impl Lease {
    /// This sandbox has ended: if it was the last one alive on the
    /// workspace, the placeholders go. Errors are reported on stderr: the
    /// run's outcome stands, and the next launch or `confine gc` retries.
    pub(crate) fn release(self) {
        let Some(h) = self.held else { return };
        let Ok(Some(lock)) = lock_state(&h.state, &h.state_path) else {
            return;
        };
        // Our own shared lock must go first, or we'd count ourselves.
        let _ = flock(&h.live, libc::LOCK_UN);
        drop(h.live);
        match nobody_alive(&h.state, &h.state_path) {
            Ok(true) => {}
            _ => return,
        }
        let Ok(mut record) = read_record(&h.state, &h.state_path) else {
            return;
        };
        sweep(h.workspace.as_fd(), &record.workspace.clone(), &mut record);
        if record.made.is_empty() {
            remove_state(&h.state, &h.state_path, &lock);
        } else {
            let _ = write_record(&h.state, &h.state_path, &record);
        }
    }
}

/// `confine gc`: removes the placeholders of every workspace on which no
/// sandbox is alive, and their state. Returns one line per workspace
/// cleaned.
///
/// # Errors
/// The runtime directory can't be read.
pub fn gc() -> Result<Vec<String>, PlaceholderError> {
    let mut out = Vec::new();
    let Some(rt) = runtime_dir() else {
        return Ok(out);
    };
    let dir = rt.join("workspaces");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(fail("reading", &dir)(e)),
    };
    for entry in entries.flatten() {
        let state_path = entry.path();
        let Ok(state) = fsfd::open_with(None, &state_path, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
        else {
            continue;
        };
        let Ok(Some(lock)) = lock_state(&state, &state_path) else {
            continue;
        };
        if !nobody_alive(&state, &state_path).unwrap_or(false) {
            continue;
        }
        let Ok(mut record) = read_record(&state, &state_path) else {
            continue;
        };
        let before = record.made.len();
        // The workspace must still be the directory the state is named
        // after; if it moved or is gone, its placeholders can't be found.
        let ws = fsfd::open_with(None, &record.workspace, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .ok()
            .filter(|fd| {
                fsfd::identity(fd.as_fd()).is_ok_and(|id| {
                    Some(key(id.dev, id.ino).as_str())
                        == state_path.file_name().and_then(OsStr::to_str)
                })
            });
        match ws {
            Some(ws) => sweep(ws.as_fd(), &record.workspace.clone(), &mut record),
            None => record.made.clear(),
        }
        out.push(format!(
            "{}: removed {} placeholder(s){}",
            record.workspace.display(),
            before - record.made.len(),
            if record.made.is_empty() {
                String::new()
            } else {
                format!(", kept {} the agent changed", record.made.len())
            }
        ));
        remove_state(&state, &state_path, &lock);
    }
    Ok(out)
}

fn key(dev: u64, ino: u64) -> String {
    format!("{dev:x}-{ino:x}")
}

/// Creates the state directory and its parents (mode 0700), each checked to
/// be ours and a real directory; returns the state directory's descriptor.
fn make_dirs(state: &Path) -> Result<OwnedFd, PlaceholderError> {
    let mut cur = PathBuf::from("/");
    let mut fd = fsfd::open_with(None, &cur, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
        .map_err(fail("opening", &cur))?;
    // SAFETY: geteuid has no arguments and can't fail.
    let me = unsafe { libc::geteuid() };
    let rt = runtime_dir().unwrap_or_default();
    for c in state.components().skip(1) {
        cur.push(c);
        let name = CString::new(c.as_os_str().as_bytes())
            .map_err(|_| fail("creating", &cur)(io::Error::from_raw_os_error(libc::EINVAL)))?;
        // Only confine's own directories are created; the runtime
        // directory's parents (/run, $XDG_RUNTIME_DIR) must exist.
        if cur.starts_with(&rt) {
            // SAFETY: a valid directory fd and C string.
            let r = unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o700) };
            if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                return Err(fail("creating", &cur)(io::Error::last_os_error()));
            }
        }
        let next = fsfd::open_with(
            Some(fd.as_fd()),
            Path::new(c.as_os_str()),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
        )
        .map_err(fail("opening", &cur))?;
        if cur.starts_with(&rt) {
            let st = fsfd::stat(next.as_fd()).map_err(fail("reading", &cur))?;
            if st.st_uid != me || st.st_mode & 0o022 != 0 {
                return Err(PlaceholderError {
                    what: "using",
                    path: cur,
                    why: format!(
                        "it belongs to uid {} or others may write to it (mode {:o}); \
                         confine's runtime directory must be its own",
                        st.st_uid,
                        st.st_mode & 0o7777
                    ),
                });
            }
        }
        fd = next;
    }
    Ok(fd)
}

fn open_file(state: &OwnedFd, name: &str, state_path: &Path) -> Result<File, PlaceholderError> {
    let c = CString::new(name).expect("no NUL");
    // SAFETY: a valid directory fd and C string; O_NOFOLLOW.
    let fd = unsafe {
        libc::openat(
            state.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0o600,
        )
    };
    if fd < 0 {
        return Err(fail("opening", &state_path.join(name))(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn flock(f: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The state's exclusive lock, taken within [`LOCK_WAIT`]; `None` when
/// the state directory was removed meanwhile (its last sandbox ended while
/// we waited): the caller starts again.
///
/// The lock file is removed with the state, so a lock taken on a file that
/// is no longer the one named `lock` in a live state directory is no lock
/// at all: that is checked after taking it, and a stale one is dropped.
fn lock_state(state: &OwnedFd, state_path: &Path) -> Result<Option<File>, PlaceholderError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        if fsfd::stat(state.as_fd())
            .map_err(fail("reading", state_path))?
            .st_nlink
            == 0
        {
            return Ok(None);
        }
        let f = open_file(state, "lock", state_path)?;
        match flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => {
                let held = fsfd::identity(f.as_fd()).map_err(fail("reading", state_path))?;
                let named = fsfd::open(Some(state.as_fd()), Path::new("lock"))
                    .and_then(|fd| fsfd::identity(fd.as_fd()));
                if named.is_ok_and(|n| n == held) {
                    return Ok(Some(f));
                }
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
            Err(e) => return Err(fail("locking", state_path)(e)),
        }
        if start.elapsed() > LOCK_WAIT {
            return Err(PlaceholderError {
                what: "locking",
                path: state_path.to_path_buf(),
                why: format!(
                    "another confine has held the workspace's placeholder state for over {}s",
                    LOCK_WAIT.as_secs()
                ),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// True when no sandbox holds the shared lock on `live`.
fn nobody_alive(state: &OwnedFd, state_path: &Path) -> Result<bool, PlaceholderError> {
    let probe = open_file(state, "live", state_path)?;
    match flock(&probe, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(fail("locking", state_path)(e)),
    }
}

fn read_record(state: &OwnedFd, state_path: &Path) -> Result<Record, PlaceholderError> {
    let path = state_path.join("record");
    let f = match fsfd::open_with(Some(state.as_fd()), Path::new("record"), OFlag::O_RDONLY) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Record::default()),
        Err(e) => return Err(fail("opening", &path)(e)),
    };
    let mut text = Vec::new();
    File::from(f)
        .take(RECORD_MAX)
        .read_to_end(&mut text)
        .map_err(fail("reading", &path))?;
    serde_json::from_slice(&text).map_err(|e| fail("reading", &path)(io::Error::other(e)))
}

/// Replaces the record whole (a new file renamed over the old one).
fn write_record(state: &OwnedFd, state_path: &Path, r: &Record) -> Result<(), PlaceholderError> {
    let path = state_path.join("record");
    let text = serde_json::to_vec(r).expect("a record serializes");
    let tmp = c"record.new";
    // SAFETY: a valid directory fd and C string.
    unsafe { libc::unlinkat(state.as_raw_fd(), tmp.as_ptr(), 0) };
    let mut f = open_file(state, "record.new", state_path)?;
    f.write_all(&text).map_err(fail("writing", &path))?;
    // SAFETY: valid directory fd and C strings.
    let r = unsafe {
        libc::renameat(
            state.as_raw_fd(),
            tmp.as_ptr(),
            state.as_raw_fd(),
            c"record".as_ptr(),
        )
    };
    if r != 0 {
        return Err(fail("writing", &path)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Removes the state directory (its last sandbox ended and nothing is
/// left to remove). The lock file goes last, while still held: a launch
/// that was waiting on it then sees the directory gone and retries.
fn remove_state(state: &OwnedFd, state_path: &Path, _lock: &File) {
    for name in [c"record", c"record.new", c"live", c"lock"] {
        // SAFETY: a valid directory fd and C string.
        unsafe { libc::unlinkat(state.as_raw_fd(), name.as_ptr(), 0) };
    }
    let _ = std::fs::remove_dir(state_path);
}

/// What an entry is, as far as telling confine's placeholders from
/// anything else goes.
struct Stamp {
    dev: u64,
    ino: u64,
    /// `S_IFMT` bits.
    kind: u32,
    /// Birth time where the filesystem records one, else the change time.
    time: (i64, u32),
    size: u64,
}

/// The [`Stamp`] of `name` in `dir`, not following a symlink.
fn stamp(dir: BorrowedFd, name: &CString) -> io::Result<Stamp> {
    // SAFETY: statx fills an all-zero struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd, C string and out-pointer.
    let r = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut stx,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let t = if stx.stx_mask & libc::STATX_BTIME != 0 {
        (stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec)
    } else {
        (stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec)
    };
    let dev = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor);
    Ok(Stamp {
        dev,
        ino: stx.stx_ino,
        kind: u32::from(stx.stx_mode) & libc::S_IFMT,
        time: t,
        size: stx.stx_size,
    })
}

/// The directory holding `rel` (opened beneath the workspace) and its name.
fn parent_of(ws: BorrowedFd, rel: &Path) -> io::Result<(OwnedFd, CString)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir = fsfd::open_with(Some(ws), parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let name =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok((dir, name))
}

fn make(
    ws: BorrowedFd,
    ws_path: &Path,
    needed: &[Placeholder],
    owner: (u32, u32),
    record: &mut Record,
) -> Result<(), PlaceholderError> {
    for p in needed {
        let rel = p.path.strip_prefix(ws_path).map_err(|_| PlaceholderError {
            what: "creating placeholder",
            path: p.path.clone(),
            why: "it is outside the workspace".into(),
        })?;
        let (dir, name) = parent_of(ws, rel).map_err(fail("creating placeholder", &p.path))?;
        let created = create(dir.as_fd(), &name, p.dir, owner)
            .map_err(fail("creating placeholder", &p.path))?;
        if !created {
            continue;
        }
        let st = stamp(dir.as_fd(), &name).map_err(fail("creating placeholder", &p.path))?;
        record.made.push(Made {
            path: rel.to_path_buf(),
            dir: p.dir,
            dev: st.dev,
            ino: st.ino,
            time: st.time,
        });
    }
    Ok(())
}

/// Creates an empty directory or file `name` in `dir`, owned by `owner`;
/// false when the right type of thing is there already (the user's, or a
/// placeholder another sandbox made).
fn create(dir: BorrowedFd, name: &CString, is_dir: bool, owner: (u32, u32)) -> io::Result<bool> {
    let fd = if is_dir {
        // SAFETY: a valid directory fd and C string.
        if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
            let e = io::Error::last_os_error();
            return exists_as(dir, name, is_dir, e);
        }
        fsfd::open_with(
            Some(dir),
            Path::new(OsStr::from_bytes(name.as_bytes())),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
        )?
    } else {
        // SAFETY: a valid directory fd and C string; O_EXCL|O_NOFOLLOW never
        // opens anything that was there.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY
                    | libc::O_CREAT
                    | libc::O_EXCL
                    | libc::O_NOFOLLOW
                    | libc::O_CLOEXEC
                    | libc::O_NONBLOCK,
                0o644,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return exists_as(dir, name, is_dir, e);
        }
        // SAFETY: openat just returned this fd and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    // SAFETY: fchown on an fd we own.
    if unsafe { libc::fchown(fd.as_raw_fd(), owner.0, owner.1) } != 0 {
        let e = io::Error::last_os_error();
        // Unprivileged, the placeholder is the caller's (the agent's) already.
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e);
        }
    }
    Ok(true)
}

fn exists_as(dir: BorrowedFd, name: &CString, is_dir: bool, e: io::Error) -> io::Result<bool> {
    if e.raw_os_error() != Some(libc::EEXIST) {
        return Err(e);
    }
    match stamp(dir, name)?.kind {
        libc::S_IFDIR if is_dir => Ok(false),
        libc::S_IFREG if !is_dir => Ok(false),
        libc::S_IFLNK => Err(io::Error::other("a symlink is in the way")),
        _ if is_dir => Err(io::Error::other(
            "something that isn't a directory is in the way",
        )),
        _ => Err(io::Error::other(
            "something that isn't a file is in the way",
        )),
    }
}

/// Removes, deepest first, each recorded placeholder that is still the
/// inode confine made and still empty; forgets those that are gone or
/// changed (they are the agent's now) and keeps in the record those that
/// can't be reached just now.
fn sweep(ws: BorrowedFd, ws_path: &Path, record: &mut Record) {
    let mut keep = Vec::new();
    for m in record.made.drain(..).rev() {
        // Gone: nothing to do. Not reachable just now (a parent is a
        // symlink this instant, or unreadable): kept for the next sweep.
        let gone = |e: &io::Error| e.raw_os_error() == Some(libc::ENOENT);
        let (dir, name) = match parent_of(ws, &m.path) {
            Ok(d) => d,
            Err(e) if gone(&e) => continue,
            Err(_) => {
                keep.push(m);
                continue;
            }
        };
        let st = match stamp(dir.as_fd(), &name) {
            Ok(st) => st,
            Err(e) if gone(&e) => continue,
            Err(_) => {
                keep.push(m);
                continue;
            }
        };
        let ours = st.dev == m.dev
            && st.ino == m.ino
            && st.time == m.time
            && if m.dir {
                st.kind == libc::S_IFDIR
            } else {
                st.kind == libc::S_IFREG && st.size == 0
            };
        if !ours {
            continue;
        }
        let flags = if m.dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: a valid directory fd and C string.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) } != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // The agent put something in it: it is the agent's now.
                Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => {}
                _ => {
                    crate::say!(
                        "confine: placeholder {} (cleanup): {e}; `confine gc` retries",
                        ws_path.join(&m.path).display()
                    );
                    keep.push(m);
                }
            }
        }
    }
    keep.reverse();
    record.made = keep;
}
