//! Placeholders: what confine adds to a workspace, kept while any sandbox
//! relies on it and removed after (DESIGN.md §4, host-side rules).
//!
//! A protected path that doesn't exist yet needs something on the host to
//! mount over: an empty file (or directory) created in the workspace before
//! the launch. Many sandboxes may rely on one placeholder at once (several
//! on one workspace, nested workspaces, a protected path in another
//! sandbox's workspace), and removing it detaches every read-only mount on
//! it, in every mount namespace. So a placeholder is removed only when no
//! running sandbox relies on it; a sandbox whose supervisor was SIGKILLed
//! stops relying on anything at that moment, and the next launch, or
//! `confine gc`, removes what is left.
//!
//! What makes this safe without trusting the workspace:
//! - The state lives outside it, in confine's runtime directory
//!   (`/run/confine/placeholders`, or `$XDG_RUNTIME_DIR/confine/...`
//!   without root): a `record` of each placeholder confine made, by the
//!   workspace it was made beneath, its path there and its identity
//!   (device, inode, birth time or else change time), so an entry the agent
//!   made itself is never taken for one of confine's: only an empty file or
//!   directory that is still the very inode confine created is removed.
//! - Which sandboxes are alive is kept by the kernel, not by files: each
//!   that relies on protected paths has a file in `users/`, listing the
//!   identities it relies on, on which its supervisor holds an exclusive
//!   `flock` for its whole run; the lock goes when its process dies,
//!   however it dies. A file whose lock can be taken is a dead sandbox's.
//! - Every change happens under an exclusive `flock` on the state's `lock`
//!   file, so launches and ends never race each other ("File exists").
//! - Every file operation in a workspace goes through descriptors opened
//!   beneath the workspace's without following symlinks ([`fsfd`]), and a
//!   placeholder is recorded (and, for a directory, handed to the agent)
//!   only after its descriptor shows it is the entry confine just created.
//!
//! A launch that protects nothing only looks whether the state exists (one
//! failed open in the common case), to clean up after killed supervisors.
//! Root and non-root runs keep separate state (their runtime directories
//! differ): a placeholder one of them made isn't known to the other.

use std::collections::HashSet;
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

/// How long a launch waits for another confine working on the state (a
/// few system calls each, normally).
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// Bound on a state file, read whole.
const FILE_MAX: u64 = 4 << 20;

/// A failed step on the placeholders.
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
    /// The workspace it was made beneath, and that directory's identity:
    /// it is found again only there (opened without symlinks, checked).
    base: PathBuf,
    base_id: (u64, u64),
    /// Relative to `base`.
    path: PathBuf,
    dir: bool,
    dev: u64,
    ino: u64,
    /// Birth time where the filesystem keeps one, else the change time:
    /// with the inode number, tells a reused inode from ours.
    time: (i64, u32),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    made: Vec<Made>,
}

/// confine's runtime directory (DESIGN.md §12): `/run/confine` for root,
/// `$XDG_RUNTIME_DIR/confine` otherwise (the caller's own directory,
/// resolved once); `None` without either.
pub(crate) fn runtime_dir() -> Option<PathBuf> {
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/run/confine"));
    }
    let xdg = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    if !xdg.is_absolute() {
        return None;
    }
    Some(std::fs::canonicalize(&xdg).ok()?.join("confine"))
}

/// This sandbox's hold on the placeholders it relies on;
/// [`Lease::release`] at the end (a SIGKILLed supervisor releases it by
/// dying).
#[derive(Debug, Default)]
pub(crate) struct Lease {
    held: Option<Held>,
}

#[derive(Debug)]
struct Held {
    state: OwnedFd,
    state_path: PathBuf,
    /// This sandbox's file in `users/`, locked for the run.
    user: File,
    user_name: CString,
}

/// Makes those of `create` (absolute paths inside `ws_path`, parents first)
/// that don't exist yet, owned by `owner`, and registers sandbox `id` as
/// relying on every path of `create` and `rely` for as long as the lease is
/// held. First removes what no live sandbox relies on any more. `stop`
/// says the launch was asked to stop (while waiting for the lock).
///
/// # Errors
/// No runtime directory while placeholders are needed; a lock held too
/// long, or a stop; a placeholder that can't be made (something of another
/// type, or a symlink, in the way, or replaced while being made).
pub(crate) fn acquire(
    ws: BorrowedFd,
    ws_path: &Path,
    create: &[Placeholder],
    rely: &[PathBuf],
    owner: (u32, u32),
    id: &str,
    stop: &dyn Fn() -> bool,
) -> Result<Lease, PlaceholderError> {
    let needed = !create.is_empty() || !rely.is_empty();
    let Some(rt) = runtime_dir() else {
        if !needed {
            return Ok(Lease::default());
        }
        return Err(PlaceholderError {
            what: "tracking placeholders for",
            path: ws_path.to_path_buf(),
            why: "confine has no runtime directory (run as root, or set XDG_RUNTIME_DIR) to \
                  record the placeholders of protected paths"
                .into(),
        });
    };
    let state_path = rt.join("placeholders");
    loop {
        let state = if needed {
            make_dirs(&rt, &state_path)?
        } else {
            // The common launch: nothing relied on; clean up only if a
            // killed supervisor left state behind. A state that can't be
            // opened is not this launch's business.
            match fsfd::open_with(None, &state_path, OFlag::O_DIRECTORY | OFlag::O_RDONLY) {
                Ok(fd) => fd,
                Err(_) => return Ok(Lease::default()),
            }
        };
        let Some(lock) = lock_state(&state, &state_path, stop)? else {
            continue;
        };
        let mut record = read_record(&state, &state_path)?;
        sweep(&state, &state_path, &mut record);
        if !needed {
            finish(&state, &state_path, &record, &lock)?;
            return Ok(Lease::default());
        }
        let made = make(ws, ws_path, create, owner, &mut record);
        // Recorded even when a later one failed: what was made must be found.
        write_record(&state, &state_path, &record)?;
        let relied: Vec<(u64, u64)> = create
            .iter()
            .map(|p| &p.path)
            .chain(rely)
            .filter_map(|p| fsfd::open(None, p).ok())
            .filter_map(|fd| fsfd::identity(fd.as_fd()).ok())
            .map(|i| (i.dev, i.ino))
            .collect();
        let (user, user_name) = register(&state, &state_path, id, &relied)?;
        drop(lock);
        let lease = Lease {
            held: Some(Held {
                state,
                state_path,
                user,
                user_name,
            }),
        };
        if let Err(e) = made {
            lease.release();
            return Err(e);
        }
        return Ok(lease);
    }
}

impl Lease {
    /// This sandbox has ended: it relies on nothing any more, and what no
    /// other live sandbox relies on goes. Errors are reported on stderr:
    /// the run's outcome stands, and the next launch or `confine gc`
    /// retries.
    pub(crate) fn release(self) {
        let Some(h) = self.held else { return };
        let Ok(Some(lock)) = lock_state(&h.state, &h.state_path, &|| false) else {
            return;
        };
        // SAFETY: a valid directory fd and C string.
        unsafe { libc::unlinkat(h.state.as_raw_fd(), h.user_name.as_ptr(), 0) };
        drop(h.user);
        let Ok(mut record) = read_record(&h.state, &h.state_path) else {
            return;
        };
        sweep(&h.state, &h.state_path, &mut record);
        if let Err(e) = finish(&h.state, &h.state_path, &record, &lock) {
            crate::say!("confine: placeholders (cleanup): {e}; `confine gc` retries");
        }
    }
}

/// `confine gc`: removes the placeholders no running sandbox relies on.
/// Returns one line per placeholder removed.
///
/// # Errors
/// The state can't be read or locked.
pub fn gc() -> Result<Vec<String>, PlaceholderError> {
    let Some(rt) = runtime_dir() else {
        return Ok(Vec::new());
    };
    let state_path = rt.join("placeholders");
    loop {
        let state = match fsfd::open_with(None, &state_path, OFlag::O_DIRECTORY | OFlag::O_RDONLY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(fail("opening", &state_path)(e)),
        };
        let Some(lock) = lock_state(&state, &state_path, &|| false)? else {
            continue;
        };
        let mut record = read_record(&state, &state_path)?;
        let before = record.made.clone();
        sweep(&state, &state_path, &mut record);
        finish(&state, &state_path, &record, &lock)?;
        return Ok(before
            .iter()
            .filter(|m| !record.made.contains(m))
            .map(|m| format!("{}: placeholder removed", m.base.join(&m.path).display()))
            .collect());
    }
}

/// Creates the runtime directory's own part (mode 0700) and the state
/// directory, each checked to be ours and a real directory; returns the
/// state directory's descriptor. Above the runtime directory (/run, the
/// caller's `$XDG_RUNTIME_DIR`) nothing is created.
pub(crate) fn make_dirs(rt: &Path, state: &Path) -> Result<OwnedFd, PlaceholderError> {
    let top = rt.parent().unwrap_or(Path::new("/"));
    let mut fd = fsfd::open_with(None, top, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
        .map_err(fail("opening", top))?;
    let mut cur = top.to_path_buf();
    // SAFETY: geteuid has no arguments and can't fail.
    let me = unsafe { libc::geteuid() };
    let rest = state.strip_prefix(top).unwrap_or(state);
    for c in rest.components() {
        cur.push(c);
        let name = CString::new(c.as_os_str().as_bytes())
            .map_err(|_| fail("creating", &cur)(io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: a valid directory fd and C string.
        let r = unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o700) };
        if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
            return Err(fail("creating", &cur)(io::Error::last_os_error()));
        }
        let next = fsfd::open_with(
            Some(fd.as_fd()),
            Path::new(c.as_os_str()),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
        )
        .map_err(fail("opening", &cur))?;
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
        fd = next;
    }
    Ok(fd)
}

fn open_file(dir: &OwnedFd, name: &CString, flags: libc::c_int) -> io::Result<File> {
    // SAFETY: a valid directory fd and C string; O_NOFOLLOW.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0o600,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
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

/// The state's exclusive lock, taken within [`LOCK_WAIT`] unless `stop`
/// says to give up; `None` when the state directory was removed meanwhile
/// (its last user ended while we waited): the caller starts again.
///
/// The lock file is removed with the state, so a lock taken on a file that
/// is no longer the one named `lock` in a live state directory is no lock
/// at all: that is checked after taking it, and a stale one is dropped.
fn lock_state(
    state: &OwnedFd,
    state_path: &Path,
    stop: &dyn Fn() -> bool,
) -> Result<Option<File>, PlaceholderError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    let name = c"lock".to_owned();
    loop {
        let gone = fsfd::stat(state.as_fd())
            .map_err(fail("reading", state_path))?
            .st_nlink
            == 0;
        if gone {
            return Ok(None);
        }
        let f = match open_file(state, &name, libc::O_RDWR | libc::O_CREAT) {
            Ok(f) => f,
            // Removed between the look and the open: start again.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(fail("opening", &state_path.join("lock"))(e)),
        };
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
        if stop() {
            return Err(PlaceholderError {
                what: "locking",
                path: state_path.to_path_buf(),
                why: "asked to stop while waiting for another confine".into(),
            });
        }
        if start.elapsed() > LOCK_WAIT {
            return Err(PlaceholderError {
                what: "locking",
                path: state_path.to_path_buf(),
                why: format!(
                    "another confine has held the placeholder state for over {}s",
                    LOCK_WAIT.as_secs()
                ),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn read_bounded(f: File) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    f.take(FILE_MAX).read_to_end(&mut text)?;
    Ok(text)
}

fn read_record(state: &OwnedFd, state_path: &Path) -> Result<Record, PlaceholderError> {
    let path = state_path.join("record");
    let f = match open_file(state, &c"record".to_owned(), libc::O_RDONLY) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Record::default()),
        Err(e) => return Err(fail("opening", &path)(e)),
    };
    let text = read_bounded(f).map_err(fail("reading", &path))?;
    serde_json::from_slice(&text).map_err(|e| fail("reading", &path)(io::Error::other(e)))
}

/// Replaces the record whole (a new file renamed over the old one).
fn write_record(state: &OwnedFd, state_path: &Path, r: &Record) -> Result<(), PlaceholderError> {
    let path = state_path.join("record");
    let text = serde_json::to_vec(r).expect("a record serializes");
    let tmp = c"record.new";
    // SAFETY: a valid directory fd and C string.
    unsafe { libc::unlinkat(state.as_raw_fd(), tmp.as_ptr(), 0) };
    let mut f = open_file(
        state,
        &tmp.to_owned(),
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
    )
    .map_err(fail("writing", &path))?;
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

/// Writes the record back, or removes the whole state when nothing is
/// recorded and no sandbox relies on anything. The lock file goes last,
/// while still held: a launch waiting on it then sees the state gone and
/// starts again.
fn finish(
    state: &OwnedFd,
    state_path: &Path,
    record: &Record,
    _lock: &File,
) -> Result<(), PlaceholderError> {
    if !record.made.is_empty() {
        return write_record(state, state_path, record);
    }
    // SAFETY: a valid directory fd and C string.
    let users_gone =
        unsafe { libc::unlinkat(state.as_raw_fd(), c"users".as_ptr(), libc::AT_REMOVEDIR) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT);
    if !users_gone {
        // A live sandbox's file is there: keep the state.
        return write_record(state, state_path, record);
    }
    for name in [c"record", c"record.new", c"lock"] {
        // SAFETY: a valid directory fd and C string.
        unsafe { libc::unlinkat(state.as_raw_fd(), name.as_ptr(), 0) };
    }
    let _ = std::fs::remove_dir(state_path);
    Ok(())
}

/// Creates this sandbox's file in `users/`, locked for its run, listing
/// what it relies on.
fn register(
    state: &OwnedFd,
    state_path: &Path,
    id: &str,
    relied: &[(u64, u64)],
) -> Result<(File, CString), PlaceholderError> {
    let users = state_path.join("users");
    // SAFETY: a valid directory fd and C string.
    let r = unsafe { libc::mkdirat(state.as_raw_fd(), c"users".as_ptr(), 0o700) };
    if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
        return Err(fail("creating", &users)(io::Error::last_os_error()));
    }
    let name = format!("users/{}", id.replace('/', "_"));
    let cname = CString::new(name.clone())
        .map_err(|_| fail("creating", &users)(io::Error::from_raw_os_error(libc::EINVAL)))?;
    let path = state_path.join(&name);
    let mut f = open_file(state, &cname, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)
        .map_err(fail("creating", &path))?;
    flock(&f, libc::LOCK_EX | libc::LOCK_NB).map_err(fail("locking", &path))?;
    let text = serde_json::to_vec(relied).expect("identities serialize");
    f.write_all(&text).map_err(fail("writing", &path))?;
    Ok((f, cname))
}

/// The identities that sandboxes still alive rely on; the files of dead
/// ones are removed.
fn relied_on(state: &OwnedFd, state_path: &Path) -> HashSet<(u64, u64)> {
    let mut out = HashSet::new();
    let Ok(entries) = std::fs::read_dir(state_path.join("users")) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(name) = CString::new(format!("users/{}", e.file_name().to_string_lossy())) else {
            continue;
        };
        let Ok(f) = open_file(state, &name, libc::O_RDONLY) else {
            continue;
        };
        if flock(&f, libc::LOCK_SH | libc::LOCK_NB).is_ok() {
            // Nobody holds it: its sandbox is gone.
            // SAFETY: a valid directory fd and C string.
            unsafe { libc::unlinkat(state.as_raw_fd(), name.as_ptr(), 0) };
            continue;
        }
        if let Ok(text) = read_bounded(f) {
            if let Ok(ids) = serde_json::from_slice::<Vec<(u64, u64)>>(&text) {
                out.extend(ids);
            }
        }
    }
    out
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

/// The [`Stamp`] of `name` in `dir` (not following a symlink), or of `dir`
/// itself when `name` is empty.
fn stamp(dir: BorrowedFd, name: &CString) -> io::Result<Stamp> {
    // SAFETY: statx fills an all-zero struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let flags = if name.as_bytes().is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    // SAFETY: a valid fd, C string and out-pointer.
    let r = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
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
    Ok(Stamp {
        dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
        kind: u32::from(stx.stx_mode) & libc::S_IFMT,
        time: t,
        size: stx.stx_size,
    })
}

/// The directory holding `rel` (opened beneath `base`) and its name.
fn parent_of(base: BorrowedFd, rel: &Path) -> io::Result<(OwnedFd, CString)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir = fsfd::open_with(Some(base), parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let name =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok((dir, name))
}

fn make(
    ws: BorrowedFd,
    ws_path: &Path,
    create: &[Placeholder],
    owner: (u32, u32),
    record: &mut Record,
) -> Result<(), PlaceholderError> {
    let base_id = fsfd::identity(ws).map_err(fail("reading", ws_path))?;
    for p in create {
        let rel = p.path.strip_prefix(ws_path).map_err(|_| PlaceholderError {
            what: "creating placeholder",
            path: p.path.clone(),
            why: "it is outside the workspace".into(),
        })?;
        let (dir, name) = parent_of(ws, rel).map_err(fail("creating placeholder", &p.path))?;
        let Some(st) = create_one(dir.as_fd(), &name, p.dir, owner)
            .map_err(fail("creating placeholder", &p.path))?
        else {
            continue;
        };
        record.made.push(Made {
            base: ws_path.to_path_buf(),
            base_id: (base_id.dev, base_id.ino),
            path: rel.to_path_buf(),
            dir: p.dir,
            dev: st.dev,
            ino: st.ino,
            time: st.time,
        });
    }
    Ok(())
}

/// Whether the directory `fd` has no entries.
fn is_empty_dir(fd: BorrowedFd) -> io::Result<bool> {
    let mut buf = [0u8; 1024];
    // SAFETY: buf is a valid buffer of its length; the fd is a directory.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
    let mut at = 0usize;
    let mut entries = 0;
    while at + 19 < n as usize {
        let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
        let name = &buf[at + 19..(at + reclen).min(buf.len())];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            entries += 1;
        }
        if reclen == 0 {
            break;
        }
        at += reclen;
    }
    Ok(entries == 0)
}

/// Creates an empty directory or file `name` in `dir`, owned by `owner`,
/// and returns its stamp; `None` when the right type of thing is there
/// already (the user's, or a placeholder another sandbox made).
///
/// The entry is handed to `owner` only through a descriptor that shows it
/// is what this call created: a file by its O_EXCL descriptor; a directory,
/// made 0700, only if the descriptor opened on it afterwards shows an empty
/// 0700 directory of confine's own uid (anything renamed into its place in
/// between is refused, never chowned).
fn create_one(
    dir: BorrowedFd,
    name: &CString,
    is_dir: bool,
    owner: (u32, u32),
) -> io::Result<Option<Stamp>> {
    // SAFETY: geteuid has no arguments and can't fail.
    let me = unsafe { libc::geteuid() };
    let fd = if is_dir {
        // SAFETY: a valid directory fd and C string.
        if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o700) } != 0 {
            let e = io::Error::last_os_error();
            return exists_as(dir, name, is_dir, e).map(|()| None);
        }
        let fd = fsfd::open_with(
            Some(dir),
            Path::new(OsStr::from_bytes(name.as_bytes())),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
        )?;
        let st = fsfd::stat(fd.as_fd())?;
        if st.st_uid != me || st.st_mode & 0o7777 != 0o700 || !is_empty_dir(fd.as_fd())? {
            return Err(io::Error::other(
                "something else was put in its place while it was being made",
            ));
        }
        // SAFETY: fchmod on an fd we own.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o755) } != 0 {
            return Err(io::Error::last_os_error());
        }
        fd
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
            return exists_as(dir, name, is_dir, e).map(|()| None);
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
    stamp(fd.as_fd(), &CString::default()).map(Some)
}

fn exists_as(dir: BorrowedFd, name: &CString, is_dir: bool, e: io::Error) -> io::Result<()> {
    if e.raw_os_error() != Some(libc::EEXIST) {
        return Err(e);
    }
    match stamp(dir, name)?.kind {
        libc::S_IFDIR if is_dir => Ok(()),
        libc::S_IFREG if !is_dir => Ok(()),
        libc::S_IFLNK => Err(io::Error::other("a symlink is in the way")),
        _ if is_dir => Err(io::Error::other(
            "something that isn't a directory is in the way",
        )),
        _ => Err(io::Error::other(
            "something that isn't a file is in the way",
        )),
    }
}

/// Removes, deepest first, each recorded placeholder that no live sandbox
/// relies on and that is still the inode confine made and still empty;
/// forgets those that are gone or changed (they are someone else's now)
/// and keeps in the record those still relied on or not reachable just
/// now.
fn sweep(state: &OwnedFd, state_path: &Path, record: &mut Record) {
    let relied = relied_on(state, state_path);
    let mut keep = Vec::new();
    for m in record.made.drain(..).rev() {
        if relied.contains(&(m.dev, m.ino)) {
            keep.push(m);
            continue;
        }
        let gone = |e: &io::Error| e.raw_os_error() == Some(libc::ENOENT);
        // The workspace it was made in, found again without symlinks and
        // checked; moved or gone, its placeholders can't be found safely.
        let base = match fsfd::open_with(None, &m.base, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(b) if fsfd::identity(b.as_fd()).is_ok_and(|i| (i.dev, i.ino) == m.base_id) => b,
            Ok(_) => continue,
            Err(e) if gone(&e) => continue,
            Err(_) => {
                keep.push(m);
                continue;
            }
        };
        let (dir, name) = match parent_of(base.as_fd(), &m.path) {
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
                // Someone put something in it: it is theirs now.
                Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => {}
                _ => {
                    crate::say!(
                        "confine: placeholder {} (cleanup): {e}; `confine gc` retries",
                        m.base.join(&m.path).display()
                    );
                    keep.push(m);
                }
            }
        }
    }
    keep.reverse();
    record.made = keep;
}
