//! The supervisor's side of the sandbox's terminal (DESIGN.md §11): relays
//! bytes between the caller's streams and the pty master the init sent,
//! through two bounded buffers, without ever blocking the event loop on the
//! sandbox; keeps the caller's terminal in raw mode meanwhile, passes
//! window size changes on, and stops with the agent (job control).
//!
//! Which streams: the caller's stdin is relayed when the agent's stdin is
//! the pty; what the pty prints goes to the caller's stdout, or (when that
//! isn't a terminal and went to the agent as it is) to the caller's
//! terminal on stderr or stdin ([`pty::Wiring::output`]).
//!
//! The caller's descriptors are never made non-blocking (that flag belongs
//! to the open file description, which the caller's shell shares): stdin
//! is read only when poll says so; the output is written through a
//! description of its own, opened again non-blocking through
//! /proc/self/fd/N, so a terminal or pipe that stops reading can't stop the
//! loop (and with it signals and `wall_time`). Where that can't be opened
//! (a socket), fd N is written when poll says so, a chunk at a time. The
//! master is ours alone and is non-blocking.
//!
//! Job control: the caller's terminal is raw, so Ctrl-Z reaches the pty,
//! whose line discipline stops the agent; the init tells us, and we stop
//! too, as a foreground program does, with the caller's terminal restored
//! (the shell gets it back, and what the user types next is the shell's:
//! a stopped confine reads nothing). Continued, we take the terminal back
//! (raw mode from the background stops us again, with SIGTTOU, until
//! `fg`) and then have the agent continued.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::signals;
use crate::sandbox::pty;

const STDIN: RawFd = 0;
/// At most this much is written to a blocking output at once: a pipe that
/// polls writable takes it without blocking.
const CHUNK: usize = 4096;
/// After the pty's suspend character (Ctrl-Z) went in, the caller's input
/// is left unread this long, or until the agent is reported stopped: what
/// the user types next, once the agent has stopped, belongs to their shell.
const SUSPEND_HOLD: Duration = Duration::from_millis(100);
/// In the background, how often to look whether the shell has given us
/// the terminal: `fg` of a job that runs sends no signal.
const BACKGROUND_LOOK: Duration = Duration::from_millis(100);

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

/// True when `fd` is a terminal or a pipe: opened again, it is the same
/// stream (a file would get an offset of its own and be overwritten).
fn reopens(fd: RawFd) -> bool {
    // SAFETY: an all-zero stat is valid and fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer.
    let known = unsafe { libc::fstat(fd, &mut st) } == 0;
    // SAFETY: isatty with an integer argument.
    let tty = unsafe { libc::isatty(fd) } == 1;
    known && (st.st_mode & libc::S_IFMT == libc::S_IFIFO || tty)
}

/// The relay, from the moment the master arrives until the sandbox ends.
pub(crate) struct Relay {
    master: OwnedFd,
    /// The caller's fd that shows the pty's output.
    out_caller: RawFd,
    /// That fd, opened again non-blocking, when it could be.
    out: Option<OwnedFd>,
    /// The caller's terminal, for its window size (stdin's, else stdout's,
    /// else stderr's).
    caller: Option<RawFd>,
    /// The caller's stdin in raw mode, while relayed and in the foreground.
    raw: Option<pty::RawMode>,
    /// The caller's stdin is a terminal that is relayed: read (and raw)
    /// only while confine is its foreground.
    stdin_tty: bool,
    /// Input is left unread until then (a suspend character went in).
    hold: Option<Instant>,
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
    /// Starts relaying to `master` for the streams `wiring` gives the pty:
    /// the caller's terminal in raw mode when stdin is relayed, the window
    /// size passed on.
    pub(crate) fn start(master: OwnedFd, wiring: pty::Wiring) -> Relay {
        // SAFETY: fcntl flag changes on the master, which only we hold.
        unsafe {
            let fl = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let caller = pty::caller_terminal(&[STDIN, 1, 2]);
        let out_caller = wiring.output();
        let out = if reopens(out_caller) {
            let path = format!("/proc/self/fd/{out_caller}\0");
            // SAFETY: a NUL-terminated path; O_NOCTTY so a terminal opened
            // again never becomes ours.
            unsafe {
                libc::open(
                    path.as_ptr().cast(),
                    libc::O_WRONLY | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
                )
            }
        } else {
            -1
        };
        let mut r = Relay {
            master,
            out_caller,
            // SAFETY: open just returned this fd and nothing else owns it.
            out: (out >= 0).then(|| unsafe { OwnedFd::from_raw_fd(out) }),
            caller,
            // Only a terminal that is read is made raw: one that only shows
            // output keeps its Ctrl-C (confine forwards the SIGINT). The
            // pty's CRLF then meets the caller's own, which shows the same.
            raw: None,
            stdin_tty: wiring.input() && caller == Some(STDIN),
            hold: None,
            to_agent: Buf::new(4096),
            to_caller: Buf::new(16 * 1024),
            stdin_open: wiring.input(),
            owe_eof: false,
            stdout_open: true,
            master_open: true,
        };
        r.continued();
        r
    }

    /// confine may have just been given the caller's terminal (at start,
    /// on SIGCONT): in the foreground, its stdin goes raw and is read. In
    /// the background it is left alone, as a background job's terminal
    /// is: the agent runs, what it prints shows, and it reads nothing the
    /// user types until `fg`.
    pub(crate) fn continued(&mut self) {
        if self.stdin_tty && self.raw.is_none() && pty::in_foreground(STDIN) {
            self.raw = pty::RawMode::enter(STDIN);
        }
        self.resize();
    }

    /// The caller's window size onto the sandbox's pty (SIGWINCH).
    pub(crate) fn resize(&self) {
        if let Some(w) = self.caller.and_then(pty::winsize) {
            pty::set_winsize(self.master.as_raw_fd(), &w);
        }
    }

    /// The agent has stopped: when the caller is at a terminal whose
    /// input we relay, the terminal is restored and confine stops as a
    /// foreground program does, until continued; true then (the agent is
    /// to be continued). False otherwise: the agent stays stopped, as it
    /// would outside confine.
    pub(crate) fn suspend(&mut self) -> bool {
        let Some(mut raw) = self.raw.take() else {
            return false;
        };
        self.hold = None;
        self.flush_now();
        raw.restore();
        // SAFETY: kill of ourselves. SIGTSTP isn't blocked: the kernel stops
        // us here until SIGCONT; in an orphaned process group (nobody to
        // continue us) it discards it and we go on at once.
        unsafe { libc::kill(libc::getpid(), libc::SIGTSTP) };
        // Continued: by `fg` (the terminal is ours again, raw) or `bg`
        // (the agent runs on in the background, reading nothing typed).
        self.continued();
        true
    }

    /// When to look again (the loop's poll timeout): the end of a hold,
    /// or the next look for the foreground while in the background.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let hold = self.hold.filter(|&h| now < h).map(|h| h - now);
        match (hold, self.in_background()) {
            (Some(h), true) => Some(h.min(BACKGROUND_LOOK)),
            (h, bg) => h.or(bg.then_some(BACKGROUND_LOOK)),
        }
    }

    /// The caller's stdin is relayed and a terminal, and isn't ours (yet).
    fn in_background(&self) -> bool {
        self.stdin_tty && self.stdin_open && self.raw.is_none()
    }

    /// What the caller's output takes now, without waiting.
    fn flush_now(&mut self) {
        while self.stdout_open && !self.to_caller.is_empty() {
            let mut p = libc::pollfd {
                fd: self.out_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: p is one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, 0) } != 1 || p.revents & libc::POLLOUT == 0 {
                return;
            }
            let before = self.to_caller.start;
            self.write_caller();
            if self.to_caller.start == before {
                return;
            }
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
        let reading = !self.stdin_tty || self.raw.is_some();
        if reading && self.stdin_open && self.to_agent.has_room() && !self.holding() {
            add(STDIN, libc::POLLIN);
        }
        if self.stdout_open && !self.to_caller.is_empty() {
            add(self.out_fd(), libc::POLLOUT);
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
        if self.in_background() {
            self.continued();
        }
        let master = self.master.as_raw_fd();
        let out = self.out_fd();
        for p in polled.iter().filter(|p| p.revents != 0) {
            match p.fd {
                STDIN if p.events & libc::POLLIN != 0 => self.read_caller(),
                fd if fd == out && p.events & libc::POLLOUT != 0 => self.write_caller(),
                fd if fd == master => {
                    if p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                        && p.events & libc::POLLIN != 0
                    {
                        self.read_agent();
                    }
                    if p.revents & libc::POLLOUT != 0 {
                        self.write_agent();
                    } else if p.revents & (libc::POLLHUP | libc::POLLERR) != 0
                        && p.events & libc::POLLOUT != 0
                    {
                        // No slave is open: nobody to type to. Dropped, or
                        // the hangup would wake every poll until the end.
                        self.to_agent.clear();
                        self.owe_eof = false;
                    }
                }
                _ => {}
            }
        }
    }

    fn out_fd(&self) -> RawFd {
        self.out
            .as_ref()
            .map_or(self.out_caller, AsRawFd::as_raw_fd)
    }

    fn holding(&self) -> bool {
        self.hold.is_some_and(|h| Instant::now() < h)
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
            let from = self.to_agent.start;
            if self.to_agent.drain(self.master.as_raw_fd(), usize::MAX) < 0 && !transient() {
                self.to_agent.clear();
            } else if self.suspends(&self.to_agent.data[from..self.to_agent.start]) {
                self.hold = Some(Instant::now() + SUSPEND_HOLD);
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

    /// True when `typed` holds the pty's suspend character and its line
    /// discipline turns that into SIGTSTP (ISIG).
    fn suspends(&self, typed: &[u8]) -> bool {
        if self.raw.is_none() {
            return false;
        }
        pty::termios(self.master.as_raw_fd()).is_some_and(|t| {
            let c = t.c_cc[libc::VSUSP];
            t.c_lflag & libc::ISIG != 0 && c != 0 && typed.contains(&c)
        })
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
        let max = if self.out.is_some() {
            usize::MAX
        } else {
            CHUNK
        };
        if self.to_caller.drain(self.out_fd(), max) < 0 && !transient() {
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
    /// only add to it, not hold this up); a caller that doesn't read is
    /// waited for until a stopping signal (SIGINT, SIGTERM, SIGHUP,
    /// SIGQUIT) arrives on `signals`, and not at all when the sandbox was
    /// stopped (`patient` false: a signal or `wall_time` ended it), where
    /// only what the caller takes at once is written.
    pub(crate) fn finish(mut self, signals: &OwnedFd, patient: bool) {
        'drain: loop {
            while self.stdout_open && !self.to_caller.is_empty() {
                let mut p = [
                    libc::pollfd {
                        fd: self.out_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: signals.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                let wait = if patient { -1 } else { 0 };
                // SAFETY: p is a valid array of two pollfds.
                match unsafe { libc::poll(p.as_mut_ptr(), 2, wait) } {
                    0 => break 'drain,
                    n if n < 0 && !transient() => break 'drain,
                    n if n < 0 => continue,
                    _ => {}
                }
                if p[1].revents != 0 {
                    while let Some(sig) = signals::read(signals) {
                        if signals::is_stopping(sig) {
                            break 'drain;
                        }
                    }
                }
                if p[0].revents & libc::POLLOUT != 0 {
                    self.write_caller();
                } else if p[0].revents != 0 {
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
