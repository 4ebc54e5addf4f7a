//! A running sandbox's runtime directory (DESIGN.md §12):
//! `/run/confine/sandboxes/ID/` for root, `$XDG_RUNTIME_DIR/confine/
//! sandboxes/ID/` otherwise, mode 0700, holding `info.json` (what `confine
//! ps` shows) and the `control` socket its supervisor serves.
//!
//! Which sandboxes are alive is kept by the kernel, as for cgroups and
//! placeholders: the supervisor holds an exclusive `flock` on the
//! directory for its whole run, so a directory whose lock can be taken is
//! a killed supervisor's leftover, and `confine ps` or `confine gc`
//! removes it. The directory is made under a hidden name (`.new-ID`),
//! locked and filled there, and only then renamed to its id: a visible
//! directory is always complete and locked while its supervisor lives.
//!
//! Nothing is trusted twice: every directory is opened once without
//! following symlinks and checked by `fstat` (owner, type, mode); files
//! are created and removed beneath those descriptors, and the socket is
//! bound and connected to through `/proc/self/fd/N/control`, never through
//! the path again.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use super::{fsfd, placeholders};

/// Bound on `info.json`, read whole.
const INFO_MAX: u64 = 64 << 10;
/// How old a hidden `.new-ID` directory must be before it is taken for the
/// leftover of a supervisor killed while making it: covers the moment
/// between its mkdir and its flock.
const STALE_AFTER: Duration = Duration::from_secs(2);
/// Connections waiting to be accepted.
const BACKLOG: libc::c_int = 16;

/// What `info.json` holds: one running sandbox as `confine ps` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Info {
    /// The audit log's `sandbox` id.
    pub id: String,
    /// The supervisor's pid, and its start time (clock ticks after boot,
    /// /proc/PID/stat field 22): together they name one process, never a
    /// later one that reused the pid.
    pub pid: i32,
    pub pid_start: u64,
    /// The uid that launched it: with root, the only one that may control it.
    pub uid: u32,
    pub profile: String,
    pub command: Vec<String>,
    pub workspace: PathBuf,
    /// RFC 3339, and seconds since the epoch for the age.
    pub started: String,
    pub started_unix: u64,
    /// The sandbox's cgroup directories; empty without one.
    pub cgroup: Vec<PathBuf>,
    /// `limits.grace`: how long `stop` waits between TERM and KILL.
    #[serde(default)]
    pub grace_ms: Option<u64>,
}

/// A failed step on a runtime directory, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {why}", path.display())]
pub struct RuntimeDirError {
    pub what: &'static str,
    pub path: PathBuf,
    pub why: String,
}

fn fail<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RuntimeDirError + 'a {
    move |e| RuntimeDirError {
        what,
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// Where the calling user's sandboxes' directories go.
pub fn base() -> Option<PathBuf> {
    Some(placeholders::runtime_dir()?.join("sandboxes"))
}

/// The start time of process `pid` (clock ticks after boot), from
/// /proc/PID/stat; `None` once it is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from
    // the last ')'. Field 22 (starttime) is the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// One running sandbox's directory, held (locked) by its supervisor.
#[derive(Debug)]
pub struct RuntimeDir {
    parent: OwnedFd,
    dir: OwnedFd,
    name: CString,
    path: PathBuf,
    owner: u32,
}

impl RuntimeDir {
    /// Makes the directory for `info.id`, writes `info.json` and binds the
    /// `control` socket (non-blocking, mode 0600), returning its listener.
    ///
    /// # Errors
    /// No runtime directory (not root and no `XDG_RUNTIME_DIR`), one that
    /// isn't the caller's own, or a step the kernel refused.
    pub fn create(info: &Info) -> Result<(RuntimeDir, OwnedFd), RuntimeDirError> {
        let base = base().ok_or_else(|| RuntimeDirError {
            what: "finding",
            path: PathBuf::from("$XDG_RUNTIME_DIR"),
            why: "confine has no runtime directory (run as root, or set XDG_RUNTIME_DIR)"
                .to_string(),
        })?;
        let rt = base.parent().unwrap_or(Path::new("/"));
        let parent = placeholders::make_dirs(rt, &base).map_err(|e| RuntimeDirError {
            what: "making",
            path: base.clone(),
            why: e.to_string(),
        })?;
        let hidden = format!(".new-{}", info.id);
        let hidden_path = base.join(&hidden);
        let hidden_c = cstr(&hidden).map_err(fail("making", &hidden_path))?;
        // SAFETY: a valid directory fd and C string.
        if unsafe { libc::mkdirat(parent.as_raw_fd(), hidden_c.as_ptr(), 0o700) } != 0 {
            return Err(fail("making", &hidden_path)(io::Error::last_os_error()));
        }
        let mut made = RuntimeDir {
            dir: fsfd::open_with(
                Some(parent.as_fd()),
                Path::new(&hidden),
                OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            )
            .map_err(fail("opening", &hidden_path))?,
            parent,
            name: hidden_c,
            path: hidden_path,
            owner: std::process::id(),
        };
        made.fill(info)?;
        // Visible under its id only now: complete, and locked.
        let id_c = cstr(&info.id).map_err(fail("naming", &base))?;
        let path = base.join(&info.id);
        // SAFETY: valid directory fds and C strings.
        let r = unsafe {
            libc::renameat2(
                made.parent.as_raw_fd(),
                made.name.as_ptr(),
                made.parent.as_raw_fd(),
                id_c.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r != 0 {
            return Err(fail("renaming into place", &path)(
                io::Error::last_os_error(),
            ));
        }
        made.name = id_c;
        made.path = path;
        let listener = made.listen()?;
        Ok((made, listener))
    }

    fn fill(&self, info: &Info) -> Result<(), RuntimeDirError> {
        let st = fsfd::stat(self.dir.as_fd()).map_err(fail("reading", &self.path))?;
        // SAFETY: geteuid has no arguments and can't fail.
        let me = unsafe { libc::geteuid() };
        if st.st_uid != me || st.st_mode & 0o7777 != 0o700 {
            return Err(RuntimeDirError {
                what: "using",
                path: self.path.clone(),
                why: format!(
                    "it belongs to uid {} or has mode {:o}, not 0700",
                    st.st_uid,
                    st.st_mode & 0o7777
                ),
            });
        }
        // Held for the supervisor's whole life; the kernel drops it when
        // the supervisor is gone, however it ends.
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(self.dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(fail("locking", &self.path)(io::Error::last_os_error()));
        }
        let text = serde_json::to_vec_pretty(info).expect("info serializes");
        let tmp = Path::new(".info.json.new");
        let mut f = File::from(
            fsfd::create_in(
                self.dir.as_fd(),
                tmp,
                OFlag::O_WRONLY | OFlag::O_EXCL,
                0o600,
            )
            .map_err(fail("writing", &self.path.join(tmp)))?,
        );
        f.write_all(&text)
            .and_then(|()| f.write_all(b"\n"))
            .map_err(fail("writing", &self.path.join(tmp)))?;
        // SAFETY: a valid directory fd and C strings.
        if unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                c".info.json.new".as_ptr(),
                self.dir.as_raw_fd(),
                c"info.json".as_ptr(),
            )
        } != 0
        {
            return Err(fail("writing", &self.path.join("info.json"))(
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Binds and listens on `control`, through the directory's descriptor.
    fn listen(&self) -> Result<OwnedFd, RuntimeDirError> {
        let at = self.path.join("control");
        // SAFETY: socket with integer arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(fail("making the socket", &at)(io::Error::last_os_error()));
        }
        // SAFETY: socket just returned this fd and nothing else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let (addr, len) = sockaddr(&self.dir, "control").map_err(fail("binding", &at))?;
        // SAFETY: addr is a valid sockaddr_un of length len.
        if unsafe { libc::bind(sock.as_raw_fd(), (&raw const addr).cast(), len) } != 0 {
            return Err(fail("binding", &at)(io::Error::last_os_error()));
        }
        // bind honours the umask; the directory (0700) already keeps
        // others out, the socket's own mode too.
        // SAFETY: a valid directory fd and C string; the socket was just
        // made by us in our own directory.
        if unsafe { libc::fchmodat(self.dir.as_raw_fd(), c"control".as_ptr(), 0o600, 0) } != 0 {
            return Err(fail("chmod", &at)(io::Error::last_os_error()));
        }
        // SAFETY: listen on a socket we own.
        if unsafe { libc::listen(sock.as_raw_fd(), BACKLOG) } != 0 {
            return Err(fail("listening on", &at)(io::Error::last_os_error()));
        }
        Ok(sock)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `requests.json` (the open checkpoints and asks, for whoever
    /// looks at the directory), replacing it whole; `None` removes it.
    ///
    /// # Errors
    /// The kernel refused a step; the file is then absent or the old one.
    pub fn put_requests(&self, text: Option<&[u8]>) -> Result<(), RuntimeDirError> {
        let at = self.path.join("requests.json");
        let Some(text) = text else {
            // SAFETY: a valid directory fd and C string.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), c"requests.json".as_ptr(), 0) };
            return Ok(());
        };
        let tmp = Path::new(".requests.json.new");
        // SAFETY: a valid directory fd and C string.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), c".requests.json.new".as_ptr(), 0) };
        let mut f = File::from(
            fsfd::create_in(
                self.dir.as_fd(),
                tmp,
                OFlag::O_WRONLY | OFlag::O_EXCL,
                0o600,
            )
            .map_err(fail("writing", &at))?,
        );
        f.write_all(text).map_err(fail("writing", &at))?;
        // SAFETY: a valid directory fd and C strings.
        if unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                c".requests.json.new".as_ptr(),
                self.dir.as_raw_fd(),
                c"requests.json".as_ptr(),
            )
        } != 0
        {
            return Err(fail("writing", &at)(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Removes the directory and what is in it (the supervisor's end).
    pub fn remove(self) {}
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if self.owner != std::process::id() {
            return;
        }
        clear(self.dir.as_fd());
        // SAFETY: a valid directory fd and C string.
        unsafe {
            libc::unlinkat(
                self.parent.as_raw_fd(),
                self.name.as_ptr(),
                libc::AT_REMOVEDIR,
            )
        };
    }
}

/// Removes the files confine puts in a runtime directory.
fn clear(dir: BorrowedFd) {
    for name in [
        c"control",
        c"info.json",
        c".info.json.new",
        c"requests.json",
        c".requests.json.new",
    ] {
        // SAFETY: a valid directory fd and C string; unlinkat never
        // follows a symlink.
        unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    }
}

/// A `sockaddr_un` naming `name` in the directory `dir` through
/// `/proc/self/fd`: short whatever the directory's path, and the very
/// directory that was opened and checked.
fn sockaddr(dir: &OwnedFd, name: &str) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    let path = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

// ------------------------------------------------------------ the callers

/// A running sandbox as a caller of `confine ps`, `stop`, ... sees it.
#[derive(Debug)]
pub struct Entry {
    pub info: Info,
    pub path: PathBuf,
    dir: OwnedFd,
}

impl Entry {
    /// A connected, blocking stream to its `control` socket.
    ///
    /// # Errors
    /// The socket is gone (the sandbox ended) or refused us.
    pub fn connect(&self) -> io::Result<std::os::unix::net::UnixStream> {
        // SAFETY: socket with integer arguments.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socket just returned this fd and nothing else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let (addr, len) = sockaddr(&self.dir, "control")?;
        // SAFETY: addr is a valid sockaddr_un of length len.
        if unsafe { libc::connect(sock.as_raw_fd(), (&raw const addr).cast(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(std::os::unix::net::UnixStream::from(sock))
    }
}

/// What a scan found: the live sandboxes the caller may control, and the
/// leftovers of killed supervisors it removed.
#[derive(Debug, Default)]
pub struct Scan {
    pub live: Vec<Entry>,
    pub removed: Vec<PathBuf>,
}

/// The directories a caller may look in, with the uid that must own each:
/// root, every user's (`/run/confine/sandboxes`, and
/// `/run/user/UID/confine/sandboxes`); anyone else, their own.
fn bases() -> Vec<(PathBuf, u32)> {
    // SAFETY: geteuid has no arguments and can't fail.
    let me = unsafe { libc::geteuid() };
    if me != 0 {
        return base().map(|b| vec![(b, me)]).unwrap_or_default();
    }
    let mut all = vec![(PathBuf::from("/run/confine/sandboxes"), 0)];
    if let Ok(users) = std::fs::read_dir("/run/user") {
        for u in users.flatten() {
            if let Some(uid) = u.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                all.push((u.path().join("confine/sandboxes"), uid));
            }
        }
    }
    all
}

/// Every live sandbox the caller may control, sorted by start; leftovers of
/// killed supervisors are removed on the way (`confine ps`, `confine gc`).
pub fn scan() -> Scan {
    let mut out = Scan::default();
    for (base, uid) in bases() {
        scan_one(&base, uid, &mut out);
    }
    out.live
        .sort_by(|a, b| (a.info.started_unix, &a.info.id).cmp(&(b.info.started_unix, &b.info.id)));
    out
}

fn scan_one(base: &Path, uid: u32, out: &mut Scan) {
    let Ok(parent) = fsfd::open_with(None, base, OFlag::O_DIRECTORY | OFlag::O_RDONLY) else {
        return;
    };
    // Another user's directory, or one others may change, is nobody's
    // sandboxes.
    match fsfd::stat(parent.as_fd()) {
        Ok(st) if st.st_uid == uid && st.st_mode & 0o022 == 0 => {}
        _ => return,
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let hidden = name.starts_with(".new-");
        if !valid_id(name.strip_prefix(".new-").unwrap_or(&name)) {
            continue;
        }
        let Ok(dir) = fsfd::open_with(
            Some(parent.as_fd()),
            Path::new(&name),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
        ) else {
            continue;
        };
        let Ok(st) = fsfd::stat(dir.as_fd()) else {
            continue;
        };
        if st.st_uid != uid {
            continue;
        }
        let path = base.join(&name);
        // SAFETY: flock on a descriptor we own.
        let free = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if free {
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < STALE_AFTER);
            if hidden && young {
                continue;
            }
            clear(dir.as_fd());
            let Ok(c) = cstr(&name) else { continue };
            // SAFETY: a valid directory fd and C string.
            if unsafe { libc::unlinkat(parent.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) } == 0 {
                out.removed.push(path);
            }
            continue;
        }
        if hidden {
            continue;
        }
        let Some(info) = read_info(&dir) else {
            continue;
        };
        if info.id != name || info.uid != uid {
            continue;
        }
        out.live.push(Entry { info, path, dir });
    }
}

/// A sandbox id as the audit log makes them (hex), or anything a
/// directory of ours could be named.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn read_info(dir: &OwnedFd) -> Option<Info> {
    let fd = fsfd::open_with(
        Some(dir.as_fd()),
        Path::new("info.json"),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW,
    )
    .ok()?;
    let st = fsfd::stat(fd.as_fd()).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let mut text = Vec::new();
    File::from(fd).take(INFO_MAX).read_to_end(&mut text).ok()?;
    serde_json::from_slice(&text).ok()
}
