//! The supervisor's side of the egress proxy (DESIGN.md §9): the proxy is
//! forked before the sandbox exists (its runtime starts while the sandbox
//! is set up, off the launch's critical path), drops its privileges,
//! executes its own program, `confine-egress` beside `confine`, confines
//! itself further and waits for the listeners the init makes in the
//! sandbox's network namespace, which reach it directly over the egress
//! channel. The supervisor reads its events (one JSON line each) in the
//! event loop: `connection` records for the audit log, and a budget that
//! stops the sandbox.
//!
//! The proxy parses what the agent sends, so it never holds the
//! supervisor's privileges: when confine runs as root it becomes the
//! agent's user (or nobody, when the agent is root), with no capability,
//! no file it may open, a seccomp allowlist, and PDEATHSIG.
//!
//! It is a program of its own so that its crates (an async runtime, DNS
//! wire format) are not in `confine`'s: every page of code the supervisor
//! and the init map counts in their memory and launch time, whatever mode
//! runs. The program is opened once, beside confine's own executable
//! (Cargo builds and installs both), checked (a regular file in a
//! directory, both owned by root or the caller and writable by nobody
//! else) and executed through that descriptor. What it needs comes in a
//! sealed memfd: the policy, the name servers, the supervisor's pid and
//! the numbers of its descriptors; with `secrets:`, the routes and the CA
//! bundle, and the values in a second sealed memfd that only the program
//! keeps (DESIGN.md §10).

use std::ffi::{CString, OsString};
use std::io;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::channel::{self, EgressReceiver};
use crate::egress;
use crate::plan::egress::Egress;
use crate::sandbox::listeners::Listeners;
use crate::sandbox::{fsfd, process};

/// The longest event line read; longer ones are dropped whole.
const MAX_LINE: usize = 4096;
/// Where the proxy resolves names: the host's resolver configuration.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The uid and gid the proxy runs as when the agent is root.
const NOBODY: u32 = 65534;
/// The proxy's program, in the directory of confine's own executable.
pub(crate) const PROGRAM: &str = "confine-egress";
/// The largest handover read; a policy is bounded far below it by the
/// profile's list limits.
const HANDOVER_MAX: u64 = 16 << 20;

/// Where the system's CA bundle is, by distribution (Debian and Ubuntu,
/// Fedora and RHEL, openSUSE, Alpine and Arch); `SSL_CERT_FILE` of
/// confine's environment comes first.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];
/// The largest CA bundle read (a full system bundle is about 200 KiB).
const MAX_CA_BUNDLE: u64 = 8 << 20;
/// The largest secrets memfd read: every value is at most
/// `MAX_SECRET_BYTES`, and a profile has at most `MAX_SECRETS`.
const SECRETS_MAX: u64 =
    crate::profile::secrets::MAX_SECRETS as u64 * (crate::sandbox::secrets::MAX_SECRET_BYTES + 4);

/// What the supervisor hands the proxy's program.
#[derive(Serialize, Deserialize)]
struct Handover {
    /// The supervisor's pid: the parent the program must still have.
    supervisor: libc::pid_t,
    policy: Egress,
    nameservers: Vec<std::net::SocketAddr>,
    /// Descriptor numbers in the program.
    listeners: RawFd,
    events: RawFd,
    shutdown: RawFd,
    /// The secret routes, without their values (DESIGN.md §10).
    #[serde(default)]
    routes: Vec<egress::route::RouteSpec>,
    /// The CA bundle (PEM) their upstreams are verified against.
    #[serde(default)]
    ca_pem: String,
    /// A sealed memfd holding the routes' values, in their order, each
    /// as a 4-byte little-endian length and the bytes.
    #[serde(default)]
    secrets: Option<RawFd>,
}

/// What the proxy needs for the secret routes (DESIGN.md §10): each
/// route with its value, and the CA bundle its upstreams are verified
/// against.
pub(crate) struct Secrets {
    pub routes: Vec<(crate::plan::secrets::Route, crate::sandbox::secrets::Secret)>,
    pub ca_pem: String,
}

/// Reads the CA bundle the secret routes' upstreams are verified against:
/// `SSL_CERT_FILE` of confine's environment when set, else the system's.
///
/// # Errors
/// Where it looked and why it couldn't read it.
pub(crate) fn read_ca_bundle() -> Result<String, String> {
    let read = |path: &Path| {
        crate::files::read_bounded(path, MAX_CA_BUNDLE)
            .map_err(|e| e.to_string())
            .and_then(|b| String::from_utf8(b).map_err(|_| "not a PEM file (not text)".to_string()))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    if let Some(f) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        return read(Path::new(&f)).map_err(|e| format!("SSL_CERT_FILE {e}"));
    }
    match CA_BUNDLES.iter().map(Path::new).find(|p| p.exists()) {
        Some(p) => read(p),
        None => Err(format!(
            "no CA bundle at {} (set SSL_CERT_FILE to one)",
            CA_BUNDLES.join(", ")
        )),
    }
}

/// The values of `secrets`, framed for the secrets memfd.
fn frame(secrets: &Secrets) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        secrets
            .routes
            .iter()
            .map(|(_, s)| s.expose().len() + 4)
            .sum(),
    );
    for (_, s) in &secrets.routes {
        let v = s.expose();
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The values of a secrets memfd's bytes, in order; `None` if the framing
/// is wrong or their number isn't `n`.
fn unframe(mut bytes: &[u8], n: usize) -> Option<Vec<crate::sandbox::secrets::Secret>> {
    let mut out = Vec::with_capacity(n);
    while !bytes.is_empty() {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let v = bytes.get(4..4 + len)?;
        out.push(crate::sandbox::secrets::Secret::new(v.to_vec()));
        bytes = &bytes[4 + len..];
    }
    (out.len() == n).then_some(out)
}

/// The running proxy, as the supervisor holds it.
pub(crate) struct Proxy {
    pub pid: libc::pid_t,
    pub pidfd: Option<OwnedFd>,
    /// Its events, non-blocking.
    pub events: OwnedFd,
    /// Closed to tell it the sandbox has ended: it ends its connections,
    /// which leave their records, and exits.
    shutdown: Option<OwnedFd>,
    /// A partial line.
    buf: Vec<u8>,
    /// The events pipe reached end of file.
    pub ended: bool,
    /// Reaped already.
    reaped: bool,
}

/// Forks the proxy for `policy`; its listeners come over `listeners` from
/// the init. Runs as `uid`/`gid` when confine is root (nobody for uid 0).
///
/// The secrets reach the program in a sealed memfd of their own, whose
/// descriptor this process closes right after the fork, as it drops
/// (zeroes) its copies of the values: before the sandbox is cloned, so
/// neither the init nor the agent ever holds them.
///
/// # Errors
/// The errno of pipe2 or fork.
pub(crate) fn spawn(
    policy: &Egress,
    listeners: EgressReceiver,
    uid: u32,
    gid: u32,
    secrets: Option<Secrets>,
) -> io::Result<Proxy> {
    let (uid, gid) = if uid == 0 {
        (NOBODY, NOBODY)
    } else {
        (uid, gid)
    };
    let program = open_program()?;
    let nameservers = crate::files::read_bounded(std::path::Path::new(RESOLV_CONF), 64 * 1024)
        .map(|b| egress::nameservers_from_resolv_conf(&String::from_utf8_lossy(&b)))
        .unwrap_or_default();
    let (events_r, events_w) = channel::pipe()?;
    let (shutdown_r, shutdown_w) = channel::pipe()?;
    let values = match &secrets {
        Some(s) => {
            let mut framed = frame(s);
            let fd = sealed_memfd(c"confine-egress-secrets", &framed);
            wipe(&mut framed);
            Some(fd?)
        }
        None => None,
    };
    let (routes, ca_pem) = match &secrets {
        Some(s) => (
            s.routes
                .iter()
                .map(|(r, _)| egress::route::RouteSpec::from_plan(r))
                .collect(),
            s.ca_pem.clone(),
        ),
        None => (Vec::new(), String::new()),
    };
    let handover = sealed_memfd(
        c"confine-egress-handover",
        &serde_json::to_vec(&Handover {
            // SAFETY: getpid has no arguments and can't fail.
            supervisor: unsafe { libc::getpid() },
            policy: policy.clone(),
            nameservers,
            listeners: listeners.raw(),
            events: events_w.as_raw_fd(),
            shutdown: shutdown_r.as_raw_fd(),
            routes,
            ca_pem,
            secrets: values.as_ref().map(AsRawFd::as_raw_fd),
        })
        .map_err(io::Error::other)?,
    )?;
    let mut keep = vec![
        2,
        listeners.raw(),
        events_w.as_raw_fd(),
        shutdown_r.as_raw_fd(),
        handover.as_raw_fd(),
        program.as_raw_fd(),
    ];
    keep.extend(values.as_ref().map(AsRawFd::as_raw_fd));
    let argv = [
        CString::new(PROGRAM).map_err(io::Error::other)?,
        CString::new(handover.as_raw_fd().to_string()).map_err(io::Error::other)?,
    ];
    // SAFETY: fork of the single-threaded supervisor; the child only runs
    // `child`, which never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        child(&keep, &program, &argv, uid, gid);
    }
    // The program has the values now; this process's copies go before
    // anything else is cloned from it.
    drop(values);
    drop(secrets);
    drop(handover);
    drop(listeners);
    drop(events_w);
    drop(shutdown_r);
    // SAFETY: fcntl flag change on our own pipe end.
    unsafe {
        let fl = libc::fcntl(events_r.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(events_r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        // Answers to asks go down the shutdown pipe: never block on it.
        let fl = libc::fcntl(shutdown_w.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(shutdown_w.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    // SAFETY: pidfd_open with integer arguments; our unreaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    Ok(Proxy {
        pid,
        // SAFETY: the fd was just returned to us and nobody else owns it.
        pidfd: (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) }),
        events: events_r,
        shutdown: Some(shutdown_w),
        buf: Vec::new(),
        ended: false,
        reaped: false,
    })
}

/// The forked child: only the descriptors in `keep`, its privileges
/// dropped, then the proxy's program. A failure is one line on stderr (the
/// supervisor's, still inherited) and exit 125; the supervisor then ends
/// the sandbox.
fn child(keep: &[RawFd], program: &OwnedFd, argv: &[CString; 2], uid: u32, gid: u32) -> ! {
    // Nothing of the supervisor's but these: not the audit log, not the
    // signalfd, not the caller's terminal (stderr only until it serves).
    if let Err(e) = process::close_all_except(keep) {
        fail(format!("closing descriptors: {e}"));
    }
    // The supervisor blocks its signals for its signalfd; the proxy takes
    // the defaults (it is ended with SIGKILL, or by its events pipe).
    let none = super::signals::set_of(&[]);
    // SAFETY: an initialized empty set.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) };
    if let Err(why) = egress::drop_privileges(uid, gid) {
        fail(format!("confining the egress proxy: {why}"));
    }
    // Every kept descriptor but the program's reaches the program.
    for &fd in keep
        .iter()
        .filter(|&&fd| fd > 2 && fd != program.as_raw_fd())
    {
        // SAFETY: fcntl with integer arguments on a descriptor we hold.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            fail(format!(
                "passing descriptor {fd}: {}",
                io::Error::last_os_error()
            ));
        }
    }
    let args = [argv[0].as_ptr(), argv[1].as_ptr(), std::ptr::null()];
    let env: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: execveat of the descriptor we opened, with NUL-terminated
    // argument and (empty) environment arrays that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            program.as_raw_fd(),
            c"".as_ptr(),
            args.as_ptr(),
            env.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    fail(format!(
        "executing {PROGRAM}: {}",
        io::Error::last_os_error()
    ))
}

/// A setup failure of the proxy, before it serves: one line on stderr and
/// exit 125.
fn fail(why: String) -> ! {
    crate::say!("confine: egress proxy (setup): {why}");
    // SAFETY: _exit ends the process.
    unsafe { libc::_exit(125) }
}

/// Opens [`PROGRAM`] beside confine's own executable, once and without
/// following a symlink, and checks that nobody but root or the caller could
/// have put it there: a regular file, in a directory, both owned by root or
/// the caller and not writable by group or others.
fn open_program() -> io::Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let named =
        |e: io::Error, what: &Path| io::Error::new(e.kind(), format!("{}: {e}", what.display()));
    let d = fsfd::open(None, dir).map_err(|e| named(e, dir))?;
    let path = dir.join(PROGRAM);
    let f = fsfd::open(Some(d.as_fd()), Path::new(PROGRAM)).map_err(|e| named(e, &path))?;
    // SAFETY: getuid has no arguments and can't fail.
    let me = unsafe { libc::getuid() };
    for (fd, what, want_dir) in [(&d, dir, true), (&f, path.as_path(), false)] {
        let st = fsfd::stat(fd.as_fd()).map_err(|e| named(e, what))?;
        let kind = st.st_mode & libc::S_IFMT;
        let why = if want_dir && kind != libc::S_IFDIR {
            Some("not a directory")
        } else if !want_dir && kind != libc::S_IFREG {
            Some("not a regular file")
        } else if st.st_uid != 0 && st.st_uid != me {
            Some("owned by another user")
        } else if st.st_mode & 0o022 != 0 {
            Some("writable by group or others")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: {why}, so it can't be trusted to be confine's egress proxy",
                    what.display()
                ),
            ));
        }
    }
    Ok(f)
}

/// A memfd holding `bytes`, sealed against any change, offset 0.
fn sealed_memfd(name: &std::ffi::CStr, bytes: &[u8]) -> io::Result<OwnedFd> {
    let create = |flags| {
        // SAFETY: memfd_create with a NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        }
    };
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Not executable, where the kernel knows the flag (6.3): with
    // `vm.memfd_noexec = 2` a memfd without it is refused.
    let fd = match create(flags | libc::MFD_NOEXEC_SEAL) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => create(flags)?,
        r => r?,
    };
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, bytes)?;
    // The program reads it from the start (the offset is shared).
    std::io::Seek::rewind(&mut file)?;
    // SAFETY: fcntl with integer arguments on our memfd.
    let sealed = unsafe {
        libc::fcntl(
            file.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE,
        )
    };
    if sealed != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(file))
}

/// Zeroes `v` with writes the optimiser can't drop.
fn wipe(v: &mut [u8]) {
    for b in v.iter_mut() {
        // SAFETY: a valid, exclusive reference to a byte.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The secret routes from the handover and the secrets memfd, read after
/// the program has confined itself; the memfd is closed.
fn secret_routes(h: &mut Handover) -> Result<Option<egress::route::Routes>, String> {
    let Some(fd) = h.secrets.take() else {
        return Ok(None);
    };
    // SAFETY: the supervisor handed this descriptor to this process, open
    // and for it alone (the handover names it).
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut bytes = Vec::with_capacity(SECRETS_MAX as usize + 1);
    let read = (&file).take(SECRETS_MAX + 1).read_to_end(&mut bytes);
    drop(file);
    let values = read
        .map_err(|e| e.to_string())
        .and_then(|_| unframe(&bytes, h.routes.len()).ok_or_else(|| "malformed".to_string()));
    wipe(&mut bytes);
    let values = values.map_err(|e| format!("reading the secrets: {e}"))?;
    let setups = std::mem::take(&mut h.routes)
        .into_iter()
        .zip(values)
        .map(|(route, secret)| egress::route::RouteSetup { route, secret })
        .collect();
    egress::route::Routes::new(setups, h.ca_pem.as_bytes()).map(Some)
}

/// `confine-egress`'s body: `args` are its argv (its name, then the
/// handover memfd's number). Never returns: serves until the sandbox
/// ends, or exits 125 (a setup failure, on stderr) or 2 (not started by
/// confine).
pub fn program_main(args: &[OsString]) -> ! {
    let fd = match args {
        [_, n] => n.to_str().and_then(|n| n.parse::<RawFd>().ok()),
        _ => None,
    }
    // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
    .filter(|&fd| fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
    let Some(fd) = fd else {
        crate::say!(
            "{PROGRAM}: this is confine's egress proxy: `confine run` starts it, with what it needs"
        );
        // SAFETY: _exit ends the process.
        unsafe { libc::_exit(2) }
    };
    // Not dumpable from the start (execve made it dumpable again): it may
    // hold secrets, and runs as the agent's uid.
    if let Err(e) = process::set_undumpable() {
        fail(format!("PR_SET_DUMPABLE: {e}"));
    }
    // Nothing the proxy accepts may become fd 0, 1 or 2 (a stray message
    // would reach an agent's connection): /dev/null holds them.
    // (/dev/null itself lands on 0 when 0 is closed, and then stays.)
    let null = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(f) => std::os::fd::IntoRawFd::into_raw_fd(f),
        Err(e) => fail(format!("/dev/null: {e}")),
    };
    for target in [0, 1].into_iter().filter(|&t| t != null) {
        // SAFETY: dup2 onto a standard descriptor number, ours.
        unsafe { libc::dup2(null, target) };
    }
    // SAFETY: the descriptor is open (checked above) and was handed to
    // this process for it alone.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut bytes = Vec::new();
    let mut h: Handover = match (&file)
        .take(HANDOVER_MAX)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(h) => h,
        Err(e) => fail(format!("reading the handover: {e}")),
    };
    drop(file);
    if let Err(why) = egress::lock_down(h.supervisor) {
        fail(format!("confining the egress proxy: {why}"));
    }
    let routes = match secret_routes(&mut h) {
        Ok(r) => r,
        Err(why) => fail(format!("the secret routes: {why}")),
    };
    // SAFETY: the supervisor handed these descriptors to this process,
    // open and for it alone (the handover names them).
    let (listeners, events, shutdown) = unsafe {
        (
            EgressReceiver::from_raw(h.listeners),
            OwnedFd::from_raw_fd(h.events),
            OwnedFd::from_raw_fd(h.shutdown),
        )
    };
    let fds = match listeners.receive() {
        Ok(fds) if !fds.is_empty() => fds,
        // The init ended before it made them: nothing to serve.
        // SAFETY: _exit ends the process.
        Ok(_) => unsafe { libc::_exit(0) },
        Err(e) => fail(format!("receiving the listeners: {e}")),
    };
    let Some(l) = Listeners::from_fds(fds) else {
        fail("the listeners that arrived aren't the sandbox's".into())
    };
    // stderr is no longer needed.
    // SAFETY: dup3 onto our own stderr (dup2 isn't in the allowlist), and
    // close of our own spare descriptor.
    unsafe {
        libc::dup3(null, 2, 0);
        if null > 2 {
            libc::close(null);
        }
    }
    egress::serve(egress::Setup {
        policy: h.policy,
        http: l.http,
        dns_udp: l.dns_udp,
        dns_tcp: l.dns_tcp,
        transparent: l.transparent,
        nameservers: h.nameservers,
        events,
        shutdown: Some(shutdown),
        routes,
    })
}

impl Proxy {
    /// The events the pipe holds now, parsed (partial lines wait; a line
    /// that isn't an event is skipped).
    pub(crate) fn read_events(&mut self) -> Vec<egress::events::Event> {
        let mut chunk = [0u8; 8192];
        loop {
            // SAFETY: chunk is a valid buffer of its length.
            let n = unsafe {
                libc::read(
                    self.events.as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    chunk.len(),
                )
            };
            if n == 0 {
                self.ended = true;
                break;
            }
            if n < 0 {
                break;
            }
            self.buf.extend_from_slice(&chunk[..n as usize]);
            if self.buf.len() > 64 * MAX_LINE {
                break;
            }
        }
        let mut out = Vec::new();
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            if line.len() <= MAX_LINE {
                if let Ok(e) = egress::events::Event::parse(&line[..line.len() - 1]) {
                    out.push(e);
                }
            }
        }
        if self.buf.len() > MAX_LINE {
            // Longer than any event: not one; dropped.
            self.buf.clear();
        }
        out
    }

    /// The answer to the proxy's ask `id` (`network.ask`), on the
    /// shutdown pipe, which the proxy reads until its end of file. Never
    /// blocks: a few short lines fit a pipe many times over.
    pub(crate) fn answer(&self, id: u64, approve: bool) {
        let Some(fd) = &self.shutdown else {
            return;
        };
        let line = egress::ask::Answer { ask: id, approve }.line();
        // SAFETY: a valid buffer of its length; the fd is ours.
        unsafe { libc::write(fd.as_raw_fd(), line.as_ptr().cast(), line.len()) };
    }

    /// The sandbox has ended: the proxy ends what is still open, writes
    /// those records and exits (its events pipe then reaches end of file).
    pub(crate) fn shut_down(&mut self) {
        self.shutdown = None;
    }

    /// True once the proxy has exited (and is reaped).
    pub(crate) fn exited(&mut self) -> bool {
        if !self.reaped {
            // SAFETY: waitpid on our own child, without blocking.
            let r = unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), libc::WNOHANG) };
            self.reaped = r == self.pid;
        }
        self.reaped
    }

    /// Ends the proxy now and reaps it.
    pub(crate) fn kill(&mut self) {
        if !self.reaped {
            super::supervisor::send(self.pid, self.pidfd.as_ref(), libc::SIGKILL);
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
            self.reaped = true;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::secrets::Secret;

    #[test]
    fn secrets_are_framed_in_order_and_malformed_framing_is_refused() {
        let bytes = {
            let mut b = Vec::new();
            for v in [&b"one"[..], b"", b"three"] {
                b.extend_from_slice(&(v.len() as u32).to_le_bytes());
                b.extend_from_slice(v);
            }
            b
        };
        let values = unframe(&bytes, 3).unwrap();
        let got: Vec<&[u8]> = values.iter().map(Secret::expose).collect();
        assert_eq!(got, [&b"one"[..], b"", b"three"]);
        assert!(unframe(&bytes, 2).is_none());
        assert!(unframe(&bytes[..bytes.len() - 1], 3).is_none());
        assert!(unframe(&[1, 0], 1).is_none());
        assert!(unframe(&[], 0).unwrap().is_empty());
    }
}
