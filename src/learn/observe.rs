//! The supervisor's side of learning: each observed call is read (its
//! path or address, from the caller's memory), recorded, and let go on;
//! a denied call is answered EPERM as `on_violation: errno` would.
//!
//! Reading a caller's memory is bounded (a path is at most PATH_MAX bytes,
//! read page by page with process_vm_readv) and never waits: a page the
//! caller unmapped meanwhile is an error, and the call is let go on
//! unrecorded. What was read is trusted only if the call still waits
//! afterwards (SECCOMP_IOCTL_NOTIF_ID_VALID): its pid is still the
//! caller's. The record itself is bounded too ([`MAX_PATHS`]).
//!
//! None of this is a security boundary: the call runs under the base
//! profile's Landlock and namespaces whatever was read, and a caller that
//! changes its path between our read and the kernel's only misleads the
//! learned profile, which is then too narrow or names a path it never
//! used (it still never grants what [`super::generate`] refuses).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use crate::sandbox::seccomp::notify::{Call, Listener};
use crate::syscalls::{self, Arch};

/// Distinct paths recorded per run; beyond, counted only.
pub const MAX_PATHS: usize = 200_000;

/// How a path was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Use {
    /// Opened for reading (a file, or a directory to list).
    Read,
    /// Opened for writing or truncated.
    Write,
    /// Created, removed or renamed: its directory is written.
    Entry,
    /// Executed.
    Exec,
}

/// What a learning run did.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Each path (as the caller resolved it, not yet canonical) and how.
    pub paths: BTreeMap<PathBuf, BTreeSet<Use>>,
    /// Calls outside the allowlist that it made (and that were let run).
    pub syscalls: BTreeSet<String>,
    /// Denylisted calls, or calls an argument rule refused: EPERM.
    pub denied: BTreeSet<String>,
    /// `connect` to an internet address: `ADDRESS:PORT`.
    pub connected: BTreeSet<String>,
    /// `bind` to an internet port.
    pub bound: BTreeSet<u16>,
    /// Proxy mode: the hosts the proxy let it reach (`HOST` for port 443,
    /// else `HOST:PORT`), from the proxy's connection events.
    pub hosts: BTreeSet<String>,
    /// Proxy mode: the hosts the proxy refused it.
    pub hosts_refused: BTreeSet<String>,
    /// Calls whose arguments couldn't be read (or the caller was gone).
    pub unread: u64,
    /// Paths beyond [`MAX_PATHS`].
    pub dropped: u64,
}

/// Where a finished learning run leaves what it saw, for `confine learn`
/// in the same process.
static LEARNED: Mutex<Option<Observed>> = Mutex::new(None);

/// Takes what the last learning run of this process observed.
pub fn take() -> Option<Observed> {
    LEARNED.lock().ok()?.take()
}

/// What the supervisor does with a call.
pub(crate) enum Verdict {
    /// Let it run (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
    Continue,
    /// EPERM, and it is a denial.
    Deny,
}

pub(crate) struct Observer {
    arch: Arch,
    allow: HashSet<u32>,
    deny: HashSet<u32>,
    seen: Observed,
}

impl Observer {
    pub(crate) fn new(plan: &crate::plan::Plan) -> Observer {
        let (allow, deny) = plan.seccomp.numbers();
        Observer {
            arch: Arch::native(),
            allow: allow.iter().copied().collect(),
            deny: deny.iter().copied().collect(),
            seen: Observed::default(),
        }
    }

    /// A connection event of the egress proxy (proxy mode).
    pub(crate) fn connection(&mut self, c: &crate::egress::events::Connection) {
        // DNS answers (no port) follow from the hosts; empty: unnamed.
        let Some(port) = c.port else {
            return;
        };
        if c.host.is_empty() {
            return;
        }
        let host = if port == 443 {
            c.host.clone()
        } else {
            format!("{}:{port}", c.host)
        };
        let set = match c.verdict {
            crate::egress::events::Verdict::Allowed => &mut self.seen.hosts,
            crate::egress::events::Verdict::Refused => &mut self.seen.hosts_refused,
        };
        if set.len() < 1000 {
            set.insert(host);
        }
    }

    /// Hands what was seen to [`take`].
    pub(crate) fn finish(&mut self) {
        if let Ok(mut l) = LEARNED.lock() {
            *l = Some(std::mem::take(&mut self.seen));
        }
    }

    /// Reads and records `c`, and says how to answer it.
    pub(crate) fn call(&mut self, l: &Listener, c: &Call) -> Verdict {
        let nr = c.nr as u32;
        let name = syscalls::name_of(self.arch, nr);
        let observed = name.is_some_and(|n| crate::sandbox::seccomp::LEARN_OBSERVED.contains(&n));
        if self.deny.contains(&nr) || (self.allow.contains(&nr) && !observed) {
            // The denylist, or an argument rule of an allowed call.
            self.seen
                .denied
                .insert(name.map_or_else(|| format!("#{nr}"), str::to_string));
            return Verdict::Deny;
        }
        if !observed {
            if let Some(n) = name {
                self.seen.syscalls.insert(n.to_string());
            }
            return Verdict::Continue;
        }
        if !self.allow.contains(&nr) {
            if let Some(n) = name {
                self.seen.syscalls.insert(n.to_string());
            }
        }
        let name = name.unwrap_or_default();
        let read = self.read(c, name);
        // Trusted only if the caller still waits: its pid was its own.
        match read {
            Some(found) if l.valid(c.id) => {
                for f in found {
                    self.record(f);
                }
            }
            _ => self.seen.unread += 1,
        }
        Verdict::Continue
    }

    fn record(&mut self, f: Found) {
        match f {
            Found::Path(p, u) => {
                if let Some(set) = self.seen.paths.get_mut(&p) {
                    set.insert(u);
                } else if self.seen.paths.len() >= MAX_PATHS {
                    self.seen.dropped += 1;
                } else {
                    self.seen.paths.insert(p, BTreeSet::from([u]));
                }
            }
            Found::Connect(a) => {
                if self.seen.connected.len() < 1000 {
                    self.seen.connected.insert(a);
                }
            }
            Found::Bind(port) => {
                self.seen.bound.insert(port);
            }
        }
    }

    /// What the call names, by its arguments.
    fn read(&self, c: &Call, name: &str) -> Option<Vec<Found>> {
        let pid = c.pid;
        let a = c.args;
        let cwd = libc::AT_FDCWD as u64;
        let at = |dfd: u64, ptr: u64| path_at(pid, dfd, ptr);
        let one = |p: Option<PathBuf>, u: Use| Some(vec![Found::Path(p?, u)]);
        match name {
            "open" => open(at(cwd, a[0])?, a[1]),
            "openat" => open(at(a[0], a[1])?, a[2]),
            "openat2" => {
                // struct open_how starts with the u64 flags.
                let mut how = [0u8; 8];
                read_mem(pid, a[2], &mut how).ok()?;
                open(at(a[0], a[1])?, u64::from_ne_bytes(how))
            }
            "creat" => one(at(cwd, a[0]), Use::Entry),
            "execve" => one(at(cwd, a[0]), Use::Exec),
            "execveat" => one(at(a[0], a[1]), Use::Exec),
            "mkdir" | "mknod" | "unlink" | "rmdir" => one(at(cwd, a[0]), Use::Entry),
            "mkdirat" | "mknodat" | "unlinkat" => one(at(a[0], a[1]), Use::Entry),
            "rename" | "link" => Some(vec![
                Found::Path(at(cwd, a[0])?, Use::Entry),
                Found::Path(at(cwd, a[1])?, Use::Entry),
            ]),
            "renameat" | "renameat2" | "linkat" => Some(vec![
                Found::Path(at(a[0], a[1])?, Use::Entry),
                Found::Path(at(a[2], a[3])?, Use::Entry),
            ]),
            "symlink" => one(at(cwd, a[1]), Use::Entry),
            "symlinkat" => one(at(a[1], a[2]), Use::Entry),
            "truncate" => one(at(cwd, a[0]), Use::Write),
            "connect" | "bind" => {
                let (addr, port) = sockaddr(pid, a[1], a[2])?;
                Some(vec![if name == "connect" {
                    Found::Connect(addr)
                } else {
                    Found::Bind(port)
                }])
            }
            _ => None,
        }
    }
}

enum Found {
    Path(PathBuf, Use),
    Connect(String),
    Bind(u16),
}

/// An open's use, by its flags: O_PATH opens reach no content (Landlock
/// doesn't check them), so they aren't recorded.
fn open(p: PathBuf, flags: u64) -> Option<Vec<Found>> {
    let flags = flags as i32;
    if flags & libc::O_PATH != 0 {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    if flags & libc::O_CREAT != 0 && std::fs::symlink_metadata(&p).is_err() {
        out.push(Found::Path(p.clone(), Use::Entry));
    }
    let acc = flags & libc::O_ACCMODE;
    let u = if acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
        Use::Write
    } else {
        Use::Read
    };
    out.push(Found::Path(p, u));
    Some(out)
}

/// The path the caller named at `ptr`, relative to `dfd` (its cwd for
/// AT_FDCWD), lexically normalized.
fn path_at(pid: u32, dfd: u64, ptr: u64) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let raw = read_cstr(pid, ptr)?;
    let p = Path::new(std::ffi::OsStr::from_bytes(&raw));
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        let dfd = dfd as i32;
        let link = if dfd == libc::AT_FDCWD {
            format!("/proc/{pid}/cwd")
        } else if dfd >= 0 {
            format!("/proc/{pid}/fd/{dfd}")
        } else {
            return None;
        };
        let base = std::fs::read_link(link).ok()?;
        if !base.is_absolute() {
            // "pipe:[...]", "anon_inode:..." : no directory.
            return None;
        }
        if raw.is_empty() {
            base
        } else {
            base.join(p)
        }
    };
    Some(normalize(&full))
}

/// `.` and `..` resolved lexically (symlinks are resolved later, on the
/// host, when the profile is written).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// A NUL-terminated string of the caller's, at most PATH_MAX bytes, read
/// page by page (a string may end just before an unmapped page).
fn read_cstr(pid: u32, mut addr: u64) -> Option<Vec<u8>> {
    const PAGE: u64 = 4096;
    let mut out = Vec::new();
    while out.len() < libc::PATH_MAX as usize {
        let n = (PAGE - addr % PAGE) as usize;
        let mut buf = vec![0u8; n];
        read_mem(pid, addr, &mut buf).ok()?;
        if let Some(end) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(out);
        }
        out.extend_from_slice(&buf);
        addr += n as u64;
    }
    None
}

/// Reads `buf.len()` bytes of the caller's memory at `addr`.
fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> Result<(), ()> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which is writable for its length;
    // the remote iovec is only read by the kernel, in the other process.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n == buf.len() as isize {
        Ok(())
    } else {
        Err(())
    }
}

/// An internet socket address of the caller's: `ADDRESS:PORT` and the
/// port; none for other families.
fn sockaddr(pid: u32, ptr: u64, len: u64) -> Option<(String, u16)> {
    let len = (len as usize).min(128);
    if len < 2 {
        return None;
    }
    let mut b = vec![0u8; len];
    read_mem(pid, ptr, &mut b).ok()?;
    let family = i32::from(u16::from_ne_bytes([b[0], b[1]]));
    match family {
        libc::AF_INET if len >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = std::net::Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Some((format!("{ip}:{port}"), port))
        }
        libc::AF_INET6 if len >= 24 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[8..24]);
            let ip = std::net::Ipv6Addr::from(o);
            Some((format!("[{ip}]:{port}"), port))
        }
        _ => None,
    }
}
