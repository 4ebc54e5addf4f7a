//! The sandbox's own terminal (DESIGN.md §11): a pseudo-terminal from the
//! sandbox's devpts, made the agent's controlling terminal, and the
//! caller's terminal in raw mode while the supervisor relays between them.
//!
//! The agent holds only the pty's slave; the caller's terminal stays with
//! the supervisor, so TIOCSTI, TIOCSETD or a read of the user's keystrokes
//! reach only the sandbox's pty.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Opens a new pty from the devpts at /dev/pts (through /dev/ptmx):
/// (master, slave), both O_CLOEXEC, neither a controlling terminal yet.
/// The slave is reached through the master (TIOCGPTPEER), never by path.
///
/// # Errors
/// The errno of the open or ioctl that failed.
pub(crate) fn open() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: a constant NUL-terminated path.
    let m = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if m < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open just returned this fd and nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int through the pointer.
    if unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TIOCGPTPEER takes open flags as an integer argument.
    let s = unsafe {
        libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok((master, unsafe { OwnedFd::from_raw_fd(s) }))
}

/// True when `fd` is a pty master (what the supervisor expects to receive).
pub(crate) fn is_master(fd: RawFd) -> bool {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int; it fails on anything but a
    // pty master.
    unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut n) == 0 }
}

/// The terminal settings of `fd`, if it is a terminal.
pub(crate) fn termios(fd: RawFd) -> Option<libc::termios> {
    // SAFETY: an all-zero termios is valid and tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: t is a valid out-pointer.
    (unsafe { libc::tcgetattr(fd, &mut t) } == 0).then_some(t)
}

/// The window size of `fd`, if it is a terminal.
pub(crate) fn winsize(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: an all-zero winsize is valid and TIOCGWINSZ fills it.
    let mut w: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: w is a valid out-pointer.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut w) } == 0).then_some(w)
}

/// Sets the window size of `fd` (the kernel signals the foreground group).
pub(crate) fn set_winsize(fd: RawFd, w: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads a winsize; failure leaves the size as it was.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, w) };
}

/// The caller's terminal among `fds` (stdin first), if any.
pub(crate) fn caller_terminal(fds: &[RawFd]) -> Option<RawFd> {
    // SAFETY: isatty with an integer argument.
    fds.iter()
        .copied()
        .find(|&fd| unsafe { libc::isatty(fd) } == 1)
}

/// Gives the new pty the caller's settings (erase character, modes) and
/// window size, as a terminal emulator would, so that programs inside see
/// the terminal the user has.
pub(crate) fn inherit(from: RawFd, slave: &OwnedFd) {
    if let Some(t) = termios(from) {
        // SAFETY: t is a valid termios; failure keeps the pty's defaults.
        unsafe { libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t) };
    }
    if let Some(w) = winsize(from) {
        set_winsize(slave.as_raw_fd(), &w);
    }
}

/// Makes fd 0 the calling process's controlling terminal in a new session
/// of its own. Runs in the agent before its execve: system calls only, no
/// allocation; the errno on failure.
pub(crate) fn take_as_controlling() -> Result<(), libc::c_int> {
    // SAFETY: setsid and ioctl(TIOCSCTTY, 0) with integer arguments; 0
    // never steals a terminal that is another session's.
    unsafe {
        if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(*libc::__errno_location());
        }
    }
    Ok(())
}

/// The caller's terminal in raw mode until [`RawMode::restore`] or drop:
/// every key goes to the sandbox's pty as it is typed, and its line
/// discipline (echo, Ctrl-C, Ctrl-Z) acts inside.
pub(crate) struct RawMode {
    fd: RawFd,
    saved: libc::termios,
    restored: bool,
}

impl RawMode {
    /// Puts `fd` in raw mode; `None` when it isn't a terminal.
    pub(crate) fn enter(fd: RawFd) -> Option<RawMode> {
        let saved = termios(fd)?;
        let mut raw = saved;
        // SAFETY: raw is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: raw is a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawMode {
            fd,
            saved,
            restored: false,
        })
    }

    /// The caller's settings back, exactly as they were. TCSANOW: what was
    /// written is already processed, and a stuck terminal can't hang us.
    pub(crate) fn restore(&mut self) {
        if !self.restored {
            self.restored = true;
            // SAFETY: saved is the termios tcgetattr returned.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mode_is_restored_exactly() {
        let Ok((master, slave)) = open() else {
            return; // No /dev/ptmx here (no devpts).
        };
        assert!(is_master(master.as_raw_fd()) && !is_master(slave.as_raw_fd()));
        let before = termios(slave.as_raw_fd()).unwrap();
        let mut raw = RawMode::enter(slave.as_raw_fd()).unwrap();
        let during = termios(slave.as_raw_fd()).unwrap();
        assert_eq!(during.c_lflag & libc::ICANON, 0);
        raw.restore();
        let after = termios(slave.as_raw_fd()).unwrap();
        assert_eq!(
            (before.c_iflag, before.c_oflag, before.c_lflag, before.c_cc),
            (after.c_iflag, after.c_oflag, after.c_lflag, after.c_cc)
        );
    }
}
