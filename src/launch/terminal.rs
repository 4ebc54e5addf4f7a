//! The supervisor's side of the sandbox's terminal (DESIGN.md §11): relays
//! bytes between the caller's stdin/stdout and the pty master the init
//! sent, through two bounded buffers, without ever blocking the event loop
//! on the sandbox; keeps the caller's terminal in raw mode meanwhile and
//! passes window size changes on.
//!
//! The caller's descriptors are never made non-blocking (that flag belongs
//! to the open file description, which the caller's shell shares): they
//! are read and written only when poll says so, a chunk at a time. The
//! master is ours alone and is non-blocking.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sandbox::pty;

const STDIN: RawFd = 0;
const STDOUT: RawFd = 1;
/// At most this much is written to the caller's stdout at once: a pipe
/// that polls writable takes it without blocking.
const CHUNK: usize = 4096;

/// A bounded byte queue.
struct Buf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buf {
    fn new(size: usize) -> Buf {
        Buf {
            data: vec![0; size].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn has_room(&self) -> bool {
        self.end < self.data.len() || self.start > 0
    }

    /// Reads from `fd` into the free room; the result of `read(2)`.
    fn fill(&mut self, fd: RawFd) -> isize {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = &mut self.data[self.end..];
        // SAFETY: room is a valid buffer of its length.
        let n = unsafe { libc::read(fd, room.as_mut_ptr().cast(), room.len()) };
        if n > 0 {
            self.end += n as usize;
        }
        n
    }

    /// Writes at most `max` queued bytes to `fd`; the result of `write(2)`.
    fn drain(&mut self, fd: RawFd, max: usize) -> isize {
        let len = (self.end - self.start).min(max);
        let out = &self.data[self.start..self.start + len];
        // SAFETY: out is a valid buffer of its length.
        let n = unsafe { libc::write(fd, out.as_ptr().cast(), out.len()) };
        if n > 0 {
            self.start += n as usize;
        }
        n
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn transient() -> bool {
    matches!(errno(), libc::EAGAIN | libc::EINTR)
}

/// The relay, from the moment the master arrives until the sandbox ends.
pub(crate) struct Relay {
    master: OwnedFd,
    /// The caller's terminal, for its window size and raw mode (stdin's,
    /// else stdout's).
    caller: Option<RawFd>,
    raw: Option<pty::RawMode>,
    to_agent: Buf,
    to_caller: Buf,
    stdin_open: bool,
    /// The caller's stdin isn't a terminal and ended: the pty's end-of-file
    /// character is owed to the agent.
    owe_eof: bool,
    stdout_open: bool,
    /// False once the master reports that no slave is open (reading it
    /// again is for the final drain).
    master_open: bool,
}

impl Relay {
    /// Starts relaying to `master`: the caller's terminal in raw mode,
    /// the window size passed on.
    pub(crate) fn start(master: OwnedFd) -> Relay {
        // SAFETY: fcntl flag changes on the master, which only we hold.
        unsafe {
            let fl = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let caller = pty::caller_terminal(&[STDIN, STDOUT]);
        let r = Relay {
            master,
            caller,
            // Raw on stdout's terminal too when only it is one: the pty
            // inside already did the output processing (CRLF) once.
            raw: caller.and_then(pty::RawMode::enter),
            to_agent: Buf::new(4096),
            to_caller: Buf::new(16 * 1024),
            stdin_open: true,
            owe_eof: false,
            stdout_open: true,
            master_open: true,
        };
        r.resize();
        r
    }

    /// The caller's window size onto the sandbox's pty (SIGWINCH).
    pub(crate) fn resize(&self) {
        if let Some(w) = self.caller.and_then(pty::winsize) {
            pty::set_winsize(self.master.as_raw_fd(), &w);
        }
    }

    /// The descriptors to poll, and for what.
    pub(crate) fn fds(&self, out: &mut Vec<libc::pollfd>) {
        let mut add = |fd, events| {
            out.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            })
        };
        if self.stdin_open && self.to_agent.has_room() {
            add(STDIN, libc::POLLIN);
        }
        if self.stdout_open && !self.to_caller.is_empty() {
            add(STDOUT, libc::POLLOUT);
        }
        let mut m = 0;
        if self.master_open && self.to_caller.has_room() {
            m |= libc::POLLIN;
        }
        if !self.to_agent.is_empty() || self.owe_eof {
            m |= libc::POLLOUT;
        }
        if m != 0 {
            add(self.master.as_raw_fd(), m);
        }
    }

    /// Moves what `polled` says can move.
    pub(crate) fn ready(&mut self, polled: &[libc::pollfd]) {
        let master = self.master.as_raw_fd();
        for p in polled.iter().filter(|p| p.revents != 0) {
            match p.fd {
                STDIN if p.events & libc::POLLIN != 0 => self.read_caller(),
                STDOUT if p.events & libc::POLLOUT != 0 => self.write_caller(),
                fd if fd == master => {
                    if p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                        && p.events & libc::POLLIN != 0
                    {
                        self.read_agent();
                    }
                    if p.revents & libc::POLLOUT != 0 {
                        self.write_agent();
                    }
                }
                _ => {}
            }
        }
    }

    fn read_caller(&mut self) {
        let n = self.to_agent.fill(STDIN);
        if n == 0 || (n < 0 && !transient()) {
            self.stdin_open = false;
            // A pipe or file ended: the agent reads end of file too. A
            // terminal in raw mode never reads 0; the user types Ctrl-D.
            // SAFETY: isatty with an integer argument.
            self.owe_eof = unsafe { libc::isatty(STDIN) } != 1;
        }
    }

    fn write_agent(&mut self) {
        if !self.to_agent.is_empty() {
            if self.to_agent.drain(self.master.as_raw_fd(), usize::MAX) < 0 && !transient() {
                self.to_agent.clear();
            }
        } else if self.owe_eof {
            self.owe_eof = false;
            if let Some(t) = pty::termios(self.master.as_raw_fd()) {
                if t.c_lflag & libc::ICANON != 0 {
                    let eof = [t.c_cc[libc::VEOF]];
                    // SAFETY: eof is a valid one-byte buffer.
                    unsafe { libc::write(self.master.as_raw_fd(), eof.as_ptr().cast(), 1) };
                }
            }
        }
    }

    fn read_agent(&mut self) {
        let n = self.to_caller.fill(self.master.as_raw_fd());
        // EIO: no slave is open any more (0 is never returned by a master).
        if n == 0 || (n < 0 && !transient()) {
            self.master_open = false;
        }
        if !self.stdout_open {
            self.to_caller.clear();
        }
    }

    fn write_caller(&mut self) {
        if self.to_caller.drain(STDOUT, CHUNK) < 0 && !transient() {
            // The caller stopped listening (EPIPE): the agent's output is
            // still read, and dropped, so the agent never blocks on it.
            self.stdout_open = false;
            self.to_caller.clear();
        }
    }

    /// The sandbox has ended: everything it wrote goes to the caller, then
    /// the caller's terminal gets its settings back. Bounded: with every
    /// process of the sandbox gone nothing writes to the pty any more, so
    /// reading stops at the first empty read (a slave passed outside could
    /// only add to it, not hold this up).
    pub(crate) fn finish(mut self) {
        loop {
            while self.stdout_open && !self.to_caller.is_empty() {
                let mut p = libc::pollfd {
                    fd: STDOUT,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: p is a valid pollfd.
                if unsafe { libc::poll(&mut p, 1, -1) } < 0 && !transient() {
                    self.stdout_open = false;
                } else if p.revents & libc::POLLOUT != 0 || p.revents == 0 {
                    self.write_caller();
                } else {
                    self.stdout_open = false;
                }
            }
            self.to_caller.clear();
            let n = self.to_caller.fill(self.master.as_raw_fd());
            if n <= 0 && !(n < 0 && errno() == libc::EINTR) {
                break;
            }
        }
        if let Some(raw) = &mut self.raw {
            raw.restore();
        }
    }
}
