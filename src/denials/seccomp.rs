//! Seccomp denials: the supervisor's end of the denylist's listener.
//!
//! The init installs filter B with a listener under `on_violation: errno`
//! and hands it over on the **denials** channel; each denylisted call then
//! waits in the kernel until the supervisor answers. The answer is EPERM
//! (never "continue"): the agent can make the supervisor do nothing but
//! count, at most read its executable's name, and say no. Only a
//! `confine learn` run, whose filters notify calls to observe them, lets
//! those continue ([`crate::learn::observe`]). Allowed
//! calls never reach the listener (filter A is argument-free and B's
//! verdict for them constant: both stay on the kernel's action cache).
//!
//! The supervisor never blocks here: the channel is read once readable
//! (MSG_DONTWAIT), a call is received only after a zero-timeout poll said
//! one waits, and at most [`PER_WAKEUP`] calls are answered per turn of
//! the loop, so signals, `wall_time` and the terminal are served between
//! turns however fast the agent is denied. Calls left waiting just wait.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Book, Denial, Kind};
use crate::audit::Audit;
use crate::launch::channel::{Listener as FromInit, ListenerReceiver};
use crate::sandbox::seccomp::notify::{Call, Listener};
use crate::syscalls::{self, Arch};

/// Calls answered per turn of the supervisor's loop.
pub(crate) const PER_WAKEUP: usize = 64;

pub(crate) struct Source {
    rx: Option<ListenerReceiver>,
    listener: Option<Listener>,
    /// The plain denylist's numbers: their arguments aren't the reason.
    denied: Vec<u32>,
    arch: Arch,
    /// `confine learn`: every notified call goes through it first.
    learn: Option<crate::learn::observe::Observer>,
}

impl Source {
    pub(crate) fn new(rx: ListenerReceiver, denied: Vec<u32>) -> Source {
        Source {
            rx: Some(rx),
            listener: None,
            denied,
            arch: Arch::native(),
            learn: None,
        }
    }

    /// A learning run's source: observed calls are recorded and let run.
    pub(crate) fn learning(mut self, o: crate::learn::observe::Observer) -> Source {
        self.learn = Some(o);
        self
    }

    /// A learning run's record of a proxy connection.
    pub(crate) fn connection(&mut self, c: &crate::egress::events::Connection) {
        if let Some(o) = &mut self.learn {
            o.connection(c);
        }
    }

    /// The end of the run: a learning run hands over what it saw.
    pub(crate) fn finish(&mut self) {
        if let Some(o) = &mut self.learn {
            o.finish();
        }
    }

    pub(crate) fn fds(&self, out: &mut Vec<libc::pollfd>) {
        let fd = match (&self.rx, &self.listener) {
            (Some(rx), _) => rx.raw(),
            (None, Some(l)) => l.raw(),
            (None, None) => return,
        };
        out.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
    }

    fn polled(fds: &[libc::pollfd], fd: libc::c_int) -> bool {
        fds.iter().any(|f| f.fd == fd && f.revents != 0)
    }

    pub(crate) fn ready(
        &mut self,
        fds: &[libc::pollfd],
        book: &mut Book,
        audit: &Audit,
        raw_tty: bool,
    ) {
        if let Some(rx) = &self.rx {
            if !Self::polled(fds, rx.raw()) {
                return;
            }
            match rx.receive() {
                FromInit::Fd(fd) => self.listener = Some(Listener::new(fd)),
                FromInit::Refused => crate::say!(
                    "confine: seccomp (denials): the kernel refused a listener for the denylist (confine runs under a filter that has one); its calls get EPERM, unreported"
                ),
                FromInit::Gone => {}
            }
            self.rx = None;
            return;
        }
        let Some(l) = &self.listener else {
            return;
        };
        if !Self::polled(fds, l.raw()) {
            return;
        }
        for _ in 0..PER_WAKEUP {
            match l.waiting() {
                Ok(true) => {}
                Ok(false) => return,
                Err(()) => {
                    // Every task of the filter is gone.
                    self.listener = None;
                    return;
                }
            }
            let Ok(call) = l.receive() else {
                continue;
            };
            if let Some(o) = &mut self.learn {
                if let crate::learn::observe::Verdict::Continue = o.call(l, &call) {
                    l.proceed(call.id);
                    continue;
                }
            }
            let name = self.name(&call);
            let key = format!("seccomp {name}");
            if book.repeat(&key, Kind::Seccomp) {
                l.deny(call.id, libc::EPERM);
                continue;
            }
            let d = self.describe(l, &call, name);
            l.deny(call.id, libc::EPERM);
            book.add(d, audit, raw_tty);
        }
    }

    fn name(&self, c: &Call) -> String {
        let nr = c.nr as u32;
        syscalls::name_of(self.arch, nr).map_or_else(|| format!("#{nr}"), str::to_string)
    }

    /// The denial, with the caller's executable read while the call still
    /// waits (so the pid is still the caller's).
    fn describe(&self, l: &Listener, c: &Call, name: String) -> Denial {
        let mut d = Denial::new(Kind::Seccomp);
        if !self.denied.contains(&(c.nr as u32)) {
            d.args = Some(c.args[..3].iter().map(|a| format!("{a:#x}")).collect());
        }
        d.syscall = Some(name);
        if c.pid != 0 {
            d.agent_pid = Some(c.pid);
            d.exe = exe(l, c);
        }
        d
    }
}

/// The caller's executable: /proc/PID opened first, then the call checked
/// to still wait (the descriptor is the caller's, not a recycled pid's),
/// then its `exe` link read through the descriptor.
fn exe(l: &Listener, c: &Call) -> Option<String> {
    let path = std::ffi::CString::new(format!("/proc/{}", c.pid)).ok()?;
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: open just returned it, and nothing else owns it.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    if !l.valid(c.id) {
        return None;
    }
    let mut buf = [0u8; 512];
    // SAFETY: readlinkat writes at most buf.len() bytes into buf.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c"exe".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    Some(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}
