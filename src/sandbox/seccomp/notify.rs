//! The supervisor's side of a seccomp listener (SECCOMP_RET_USER_NOTIF):
//! receive a waiting call, check that it still waits, answer it.
//!
//! Outside `confine learn` nothing here ever lets a call run: the answer
//! is an errno ([`Listener::deny`]). Only a learning run's supervisor
//! sends SECCOMP_USER_NOTIF_FLAG_CONTINUE ([`Listener::proceed`]), for the
//! calls it observes; they then run under the base profile's Landlock.
//! A call that nobody answers waits; if the listener is closed it fails
//! with ENOSYS. Either way it never reaches the kernel's implementation.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// One waiting call, as the kernel reported it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    /// The cookie that names it to [`Listener::valid`] and [`Listener::deny`].
    pub id: u64,
    /// The calling thread, in the listener reader's PID namespace (0 when
    /// it has no pid there).
    pub pid: u32,
    pub nr: i32,
    pub args: [u64; 6],
}

/// The listener descriptor of a filter.
pub(crate) struct Listener(OwnedFd);

impl Listener {
    pub(crate) fn new(fd: OwnedFd) -> Listener {
        Listener(fd)
    }

    pub(crate) fn raw(&self) -> libc::c_int {
        self.0.as_raw_fd()
    }

    /// Whether a call waits now (a zero-timeout poll): `Ok(false)` when
    /// none does; `Err` once every task of the filter is gone (hang-up).
    pub(crate) fn waiting(&self) -> Result<bool, ()> {
        let mut p = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: p is one valid pollfd; zero timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n <= 0 {
            return Ok(false);
        }
        if p.revents & libc::POLLIN != 0 {
            return Ok(true);
        }
        if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(());
        }
        Ok(false)
    }

    /// Receives one waiting call. Call it only after [`Listener::waiting`]
    /// said one waits: the kernel's receive blocks otherwise. A call that
    /// was withdrawn in between (its thread got a signal) is ENOENT, not a
    /// wait: the kernel counts notifications posted, not withdrawn.
    ///
    /// # Errors
    /// The ioctl's errno (ENOENT: withdrawn).
    pub(crate) fn receive(&self) -> io::Result<Call> {
        // SAFETY: an all-zero seccomp_notif is valid, and the kernel
        // requires it zeroed.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: SECCOMP_IOCTL_NOTIF_RECV writes one seccomp_notif into `n`,
        // which is that size (the kernel's struct of this ABI).
        let rc = unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Call {
            id: n.id,
            pid: n.pid,
            nr: n.data.nr,
            args: n.data.args,
        })
    }

    /// Whether the call `id` still waits: its thread, hence the pid of
    /// [`Call`], is still the one that made it. Anything read about the
    /// caller through its pid is trusted only if this holds after reading.
    pub(crate) fn valid(&self, id: u64) -> bool {
        // SAFETY: SECCOMP_IOCTL_NOTIF_ID_VALID reads one u64 from the pointer.
        unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
    }

    /// Answers the call `id`: it fails with `errno`, never runs. ENOENT
    /// (the call was withdrawn meanwhile) is not an error to anyone.
    pub(crate) fn deny(&self, id: u64, errno: i32) {
        let resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error: -errno,
            flags: 0,
        };
        // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads one seccomp_notif_resp.
        unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }

    /// Lets the call `id` run as if no filter had stopped it
    /// (SECCOMP_USER_NOTIF_FLAG_CONTINUE): for `confine learn` only, whose
    /// filters stop calls to observe them, not to deny them.
    pub(crate) fn proceed(&self, id: u64) {
        let resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads one seccomp_notif_resp.
        unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
}
