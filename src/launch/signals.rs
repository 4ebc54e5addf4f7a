//! The signals the supervisor passes on to the sandbox, and how it takes
//! them: blocked from `run`'s first instruction to its last (so none is lost
//! and none kills the supervisor by its default action), and read from a
//! signalfd in the event loop.
//!
//! The mask is inherited by the init, which takes them with sigwaitinfo;
//! the agent unblocks everything before its execve.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// The signals forwarded to the sandbox (DESIGN.md §4 step 3).
pub(crate) const FORWARDED: [libc::c_int; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGWINCH,
];

/// Those of [`FORWARDED`] that ask a program to end.
const STOPPING: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// True for the signals that ask a program to end.
pub(crate) fn is_stopping(sig: libc::c_int) -> bool {
    STOPPING.contains(&sig)
}

/// A signal set holding `signals`.
pub(crate) fn set_of(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset operations on a local set, initialized by sigemptyset.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        for &sig in signals {
            libc::sigaddset(&mut s, sig);
        }
        s
    }
}

/// The forwarded signals, SIGCHLD and SIGCONT. SIGCONT still continues a
/// stopped confine (blocking never stops that); queued, it tells the
/// terminal relay that the shell may have handed it the terminal (`fg`).
pub(crate) fn supervised() -> libc::sigset_t {
    let mut all = FORWARDED.to_vec();
    all.extend([libc::SIGCHLD, libc::SIGCONT]);
    set_of(&all)
}

/// Blocks the [`supervised`] signals in the calling thread. Called
/// first thing in `confine run` (before anything else can fail or wait),
/// and never undone: a signal that arrives while confine prepares the
/// launch stays pending for the event loop, one that arrives while it
/// writes the exit record is simply never delivered.
pub fn block() {
    let set = supervised();
    // SAFETY: set is initialized; the old mask isn't wanted.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// A stopping signal already pending (it arrived while confine was still
/// preparing the launch), if any: the launch is then abandoned rather than
/// started only to be stopped.
pub(crate) fn pending_stop() -> Option<libc::c_int> {
    // SAFETY: sigpending fills an initialized set.
    let pending = unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigpending(&mut s);
        s
    };
    STOPPING
        .into_iter()
        // SAFETY: sigismember reads an initialized set.
        .find(|&sig| unsafe { libc::sigismember(&pending, sig) } == 1)
}

/// A non-blocking signalfd for the supervised signals (which must be
/// blocked already).
///
/// # Errors
/// The errno of signalfd.
pub(crate) fn signalfd() -> io::Result<OwnedFd> {
    let set = supervised();
    // SAFETY: a valid set; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one signal from a signalfd; `None` when none is queued.
pub(crate) fn read(fd: &OwnedFd) -> Option<libc::c_int> {
    // SAFETY: an all-zero signalfd_siginfo is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: info is a valid buffer of `size` bytes.
    let n = unsafe {
        libc::read(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    (n == size as isize).then_some(info.ssi_signo as libc::c_int)
}

/// The name of a signal, for messages.
pub(crate) fn name(sig: libc::c_int) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        other => format!("signal {other}"),
    }
}
