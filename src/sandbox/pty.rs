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

/// True when this process's group is the foreground of terminal `fd` (so
/// it may change its modes and read it without being stopped).
pub(crate) fn in_foreground(fd: RawFd) -> bool {
    // SAFETY: tcgetpgrp and getpgrp with integer arguments.
    unsafe { libc::tcgetpgrp(fd) == libc::getpgrp() }
}

/// The caller's terminal among `fds` (stdin first), if any.
pub(crate) fn caller_terminal(fds: &[RawFd]) -> Option<RawFd> {
    // SAFETY: isatty with an integer argument.
    fds.iter()
        .copied()
        .find(|&fd| unsafe { libc::isatty(fd) } == 1)
}

/// Gives the new pty the caller's window size and, when `modes`, its
/// settings (erase character, modes), as a terminal emulator would, so
/// that programs inside see the terminal the user has.
pub(crate) fn inherit(from: RawFd, slave: &OwnedFd, modes: bool) {
    if let Some(t) = termios(from).filter(|_| modes) {
        // SAFETY: t is a valid termios; failure keeps the pty's defaults.
        unsafe { libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t) };
    }
    if let Some(w) = winsize(from) {
        set_winsize(slave.as_raw_fd(), &w);
    }
}

/// Makes `slave` the controlling terminal of the calling process's session,
/// of which it must be the leader without a terminal yet (the init, after
/// its setsid). The agent then joins the session's foreground
/// ([`take_foreground`]) in a process group of its own, whose parent (the
/// init) is in the same session: the group isn't orphaned, so the kernel
/// stops it on Ctrl-Z (SIGTSTP) as it would any foreground job.
///
/// # Errors
/// The errno of the ioctl.
pub(crate) fn make_controlling(slave: &OwnedFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY with 0 never steals a terminal that is another
    // session's.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts the calling process in a process group of its own and makes that
/// the foreground of its controlling terminal `fd`. Runs in the agent
/// before its execve (which resets the mask): system calls only, no
/// allocation; the errno on failure. SIGTTOU is blocked first, so
/// tcsetpgrp from the background doesn't stop us.
pub(crate) fn take_foreground(fd: RawFd) -> Result<(), libc::c_int> {
    // SAFETY: sigset operations on a local set; setpgid, getpid and
    // tcsetpgrp with integer arguments.
    unsafe {
        let mut ttou: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut ttou);
        libc::sigaddset(&mut ttou, libc::SIGTTOU);
        libc::sigprocmask(libc::SIG_BLOCK, &ttou, std::ptr::null_mut());
        if libc::setpgid(0, 0) != 0 || libc::tcsetpgrp(fd, libc::getpid()) != 0 {
            return Err(*libc::__errno_location());
        }
    }
    Ok(())
}

/// Which of the agent's stdin, stdout and stderr are the sandbox's pty
/// (DESIGN.md §11): each one where the caller has a terminal, the others
/// stay what the caller gave (a pipe, a file: no terminal to protect, and
/// bytes pass exactly). Under `--tty` with no terminal at all, all three
/// are the pty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wiring {
    pub pty: [bool; 3],
    /// confine was started in the foreground of the caller's terminal, so
    /// its modes are the user's: the pty starts with them. (In the
    /// background, the shell already has its line editor's modes on the
    /// terminal again; the pty keeps its sane defaults then.)
    pub copy_modes: bool,
}

impl Wiring {
    /// The wiring for a caller whose fds 0–2 are terminals as `ttys` says;
    /// `forced` is `--tty`. `None`: no pty (no terminal, and not forced).
    pub fn of(ttys: [bool; 3], forced: bool) -> Option<Wiring> {
        let pty = if ttys.iter().any(|&t| t) {
            ttys
        } else if forced {
            [true; 3]
        } else {
            return None;
        };
        Some(Wiring {
            pty,
            copy_modes: true,
        })
    }

    /// The wiring for this process's fds 0–2.
    pub fn of_stdio(forced: bool) -> Option<Wiring> {
        // SAFETY: isatty with integer arguments.
        let tty = |fd| unsafe { libc::isatty(fd) } == 1;
        let mut w = Wiring::of([tty(0), tty(1), tty(2)], forced)?;
        w.copy_modes = caller_terminal(&[0, 1, 2]).is_some_and(in_foreground);
        Some(w)
    }

    /// The agent's fd that is the pty (the first), for tcsetpgrp.
    pub(crate) fn first(&self) -> RawFd {
        (0..3).find(|&fd| self.pty[fd as usize]).unwrap_or(0)
    }

    /// The caller's fd that shows what the pty prints (its echo, the
    /// agent's output, `/dev/tty`): stdout, else stderr, else stdin's
    /// terminal.
    pub(crate) fn output(&self) -> RawFd {
        [1, 2, 0]
            .into_iter()
            .find(|&fd| self.pty[fd as usize])
            .unwrap_or(1)
    }

    /// True when the agent's stdin is the pty: the caller's stdin is
    /// relayed to it.
    pub(crate) fn input(&self) -> bool {
        self.pty[0]
    }

    /// "pty" on each of stdin, stdout, stderr that is, for the record.
    pub fn describe(&self) -> String {
        let names = ["stdin", "stdout", "stderr"];
        let on: Vec<&str> = (0..3).filter(|&i| self.pty[i]).map(|i| names[i]).collect();
        format!("pty ({})", on.join(", "))
    }
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
    fn the_pty_replaces_exactly_the_callers_terminals() {
        assert_eq!(Wiring::of([false; 3], false), None);
        let all = Wiring::of([false; 3], true).unwrap();
        assert_eq!((all.pty, all.output(), all.first()), ([true; 3], 1, 0));
        // `cmd > file` at a terminal: stdout stays the file, the pty shows
        // on stderr; stdin is relayed.
        let w = Wiring::of([true, false, true], false).unwrap();
        assert_eq!((w.input(), w.output(), w.first()), (true, 2, 0));
        // Only stdin a terminal (`cmd > out 2> err`), with --tty too: the
        // pty is stdin alone, and its echo shows on stdin's terminal.
        let w = Wiring::of([true, false, false], true).unwrap();
        assert_eq!((w.pty, w.output(), w.first()), ([true, false, false], 0, 0));
        let w = Wiring::of([false, true, false], false).unwrap();
        assert_eq!((w.input(), w.output(), w.first()), (false, 1, 1));
        assert_eq!(w.describe(), "pty (stdout)");
    }

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
