//! The supervisor's side of the egress proxy (DESIGN.md §9): the proxy is
//! forked before the sandbox exists (its runtime starts while the sandbox
//! is set up, off the launch's critical path), confines itself, and waits
//! for the listeners the init makes in the sandbox's network namespace,
//! which reach it directly over the egress channel. The supervisor reads
//! its events (one JSON line each) in the event loop: `connection` records
//! for the audit log, and a budget that stops the sandbox.
//!
//! The proxy parses what the agent sends, so it never holds the
//! supervisor's privileges: when confine runs as root it becomes the
//! agent's user (or nobody, when the agent is root), with no capability,
//! no file it may open, a seccomp allowlist, and PDEATHSIG.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::channel::{self, EgressReceiver};
use crate::egress;
use crate::plan::egress::Egress;
use crate::sandbox::listeners::Listeners;
use crate::sandbox::process;

/// The longest event line read; longer ones are dropped whole.
const MAX_LINE: usize = 4096;
/// Where the proxy resolves names: the host's resolver configuration.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The uid and gid the proxy runs as when the agent is root.
const NOBODY: u32 = 65534;

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
/// # Errors
/// The errno of pipe2 or fork.
pub(crate) fn spawn(
    policy: &Egress,
    listeners: EgressReceiver,
    uid: u32,
    gid: u32,
) -> io::Result<Proxy> {
    let (uid, gid) = if uid == 0 {
        (NOBODY, NOBODY)
    } else {
        (uid, gid)
    };
    let nameservers = crate::files::read_bounded(std::path::Path::new(RESOLV_CONF), 64 * 1024)
        .map(|b| egress::nameservers_from_resolv_conf(&String::from_utf8_lossy(&b)))
        .unwrap_or_default();
    let (events_r, events_w) = channel::pipe()?;
    let (shutdown_r, shutdown_w) = channel::pipe()?;
    // SAFETY: fork of the single-threaded supervisor; the child only runs
    // `child`, which never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        drop(events_r);
        drop(shutdown_w);
        let ends = Ends {
            listeners,
            events: events_w,
            shutdown: shutdown_r,
        };
        child(policy.clone(), ends, nameservers, uid, gid);
    }
    drop(listeners);
    drop(events_w);
    drop(shutdown_r);
    // SAFETY: fcntl flag change on our own pipe end.
    unsafe {
        let fl = libc::fcntl(events_r.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(events_r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
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

/// The proxy process: confined, then serving; never returns. A failure
/// before it serves is one line on stderr (the supervisor's, still
/// inherited) and exit 125; the supervisor then ends the sandbox.
/// The proxy's descriptors.
struct Ends {
    listeners: EgressReceiver,
    events: OwnedFd,
    shutdown: OwnedFd,
}

fn child(
    policy: Egress,
    ends: Ends,
    nameservers: Vec<std::net::SocketAddr>,
    uid: u32,
    gid: u32,
) -> ! {
    let Ends {
        listeners,
        events,
        shutdown,
    } = ends;
    let fail = |why: String| -> ! {
        crate::say!("confine: egress proxy (setup): {why}");
        // SAFETY: _exit ends the process.
        unsafe { libc::_exit(125) }
    };
    // Nothing of the supervisor's but these: not the audit log, not the
    // signalfd, not the caller's terminal (stderr only until it serves).
    let keep = [2, listeners.raw(), events.as_raw_fd(), shutdown.as_raw_fd()];
    if let Err(e) = process::close_all_except(&keep) {
        fail(format!("closing descriptors: {e}"));
    }
    // The supervisor blocks its signals for its signalfd; the proxy takes
    // the defaults (it is ended with SIGKILL, or by its events pipe).
    let none = super::signals::set_of(&[]);
    // SAFETY: an initialized empty set.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) };
    if let Err(why) = egress::confine_self(uid, gid) {
        fail(format!("confining the egress proxy: {why}"));
    }
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
    // SAFETY: close with an integer argument: stderr is no longer needed.
    unsafe { libc::close(2) };
    egress::serve(egress::Setup {
        policy,
        http: l.http,
        dns_udp: l.dns_udp,
        dns_tcp: l.dns_tcp,
        transparent: l.transparent,
        nameservers,
        events,
        shutdown: Some(shutdown),
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
