//! The channels between the supervisor and the sandbox's init (and agent):
//! four pipes made before the clone, each end a type of its own that can
//! only be used the way its protocol says.
//!
//! - **release** (supervisor → init): the init waits for end of file before
//!   doing anything, so the supervisor can set it up from outside first
//!   (cgroup, uid/gid maps).
//! - **lifeline** (supervisor → init): the supervisor holds the write end
//!   for its whole life; the init checks it after arming PDEATHSIG, in case
//!   the supervisor died before.
//! - **report** (init or agent → supervisor): why the command never ran, as
//!   one record, or end of file once it runs. The write end closes by
//!   itself at the agent's successful execve (O_CLOEXEC); before that, any
//!   failure writes exactly one record and exits. A record is one
//!   `write(2)` of at most PIPE_BUF bytes, so it arrives whole, and is built
//!   in a fixed buffer, so reporting allocates nothing (the agent may fail
//!   between seccomp and execve, on the init's memory).
//! - **status** (init → supervisor): the agent's raw wait status, once, at
//!   the end (confine's exit code alone can't tell `exit 130` from death by
//!   SIGINT).
//! - **terminal** (init → supervisor, only when the sandbox has a pty): a
//!   unix socket pair (SOCK_SEQPACKET) carrying first the master of the pty
//!   the init opened from the sandbox's devpts (SCM_RIGHTS), then one
//!   message each time the agent stops (job control: the supervisor stops
//!   too, and on `fg` has the init continue it); end of file when the init
//!   is gone.
//! - **egress** (init → egress proxy, only in `network.mode: proxy`): a
//!   unix socket pair carrying the listening sockets the init made in the
//!   sandbox's network namespace, all in one message (SCM_RIGHTS), in
//!   [`crate::sandbox::listeners::Listeners::into_fds`] order; end of file
//!   if setup failed before. The supervisor only hands its end to the
//!   proxy: it never touches what the agent can reach.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What the supervisor learns from the pipe.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// The command is running (execve succeeded).
    Running,
    /// Setup failed at `step`: confine refuses, exit 125.
    Refused { step: String, why: String },
    /// execve failed: 126 (may not be executed) or 127 (not found).
    ExecFailed { code: u8, why: String },
}

/// Tag bytes of a record.
const REFUSED: u8 = b'R';
const EXEC_FAILED: u8 = b'X';

/// Largest record: PIPE_BUF, so one write is atomic.
const MAX: usize = 4096;

/// The supervisor's ends.
pub(crate) struct SupervisorEnds {
    pub release: Release,
    pub lifeline: Lifeline,
    /// Read by the event loop ([`Reader`]).
    pub report: OwnedFd,
    pub status: StatusReader,
    pub terminal: Option<TerminalReceiver>,
    /// For the egress proxy, which the supervisor forks.
    pub egress: Option<EgressReceiver>,
}

/// The init's ends.
pub(crate) struct InitEnds {
    pub release: AwaitRelease,
    pub lifeline: LifelineWatch,
    pub report: ReportWriter,
    pub status: StatusWriter,
    pub terminal: Option<TerminalSender>,
    pub egress: Option<EgressSender>,
}

/// Makes the channels of one launch (all O_CLOEXEC): the four pipes, the
/// terminal's socket pair when the sandbox gets a pty, and the egress
/// pair in proxy mode.
///
/// # Errors
/// The errno of `pipe2` or `socketpair`.
pub(crate) fn open(terminal: bool, egress: bool) -> io::Result<(SupervisorEnds, InitEnds)> {
    let (eg_r, eg_w) = if egress {
        let (r, w) = socketpair()?;
        (Some(EgressReceiver(r)), Some(EgressSender(w)))
    } else {
        (None, None)
    };
    let (tty_r, tty_w) = if terminal {
        let (r, w) = socketpair()?;
        (Some(TerminalReceiver(r)), Some(TerminalSender(w)))
    } else {
        (None, None)
    };
    let (go_r, go_w) = pipe()?;
    let (alive_r, alive_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    Ok((
        SupervisorEnds {
            release: Release(go_w),
            lifeline: Lifeline(alive_w),
            report: err_r,
            status: StatusReader(status_r),
            terminal: tty_r,
            egress: eg_r,
        },
        InitEnds {
            release: AwaitRelease(go_r),
            lifeline: LifelineWatch(alive_r),
            report: ReportWriter(err_w),
            status: StatusWriter(status_w),
            terminal: tty_w,
            egress: eg_w,
        },
    ))
}

/// The init's end of **terminal**.
pub(crate) struct TerminalSender(OwnedFd);

/// The message that carries the master.
const MASTER: u8 = b'M';
/// The message saying the agent has stopped.
const STOPPED: u8 = b'S';

impl TerminalSender {
    /// Hands the pty's master to the supervisor; the init keeps no copy.
    ///
    /// # Errors
    /// The errno of `sendmsg`.
    pub(crate) fn send(&self, master: OwnedFd) -> io::Result<()> {
        send_fds(self.0.as_raw_fd(), MASTER, &[master])
    }

    /// Tells the supervisor that the agent has stopped (without blocking:
    /// the init never waits on the supervisor).
    pub(crate) fn stopped(&self) {
        // SAFETY: a valid one-byte buffer; a lost notice only leaves the
        // agent stopped, as it would be outside.
        unsafe {
            libc::send(
                self.0.as_raw_fd(),
                [STOPPED].as_ptr().cast(),
                1,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What the init said on **terminal**.
#[derive(Debug)]
pub(crate) enum FromInit {
    /// The pty's master (checked to be one).
    Master(OwnedFd),
    /// The agent has stopped.
    Stopped,
    /// Nothing yet.
    Nothing,
    /// The init is gone, or broke the protocol: the channel is done.
    End,
}

/// The supervisor's end of **terminal**, polled by its event loop.
pub(crate) struct TerminalReceiver(OwnedFd);

impl TerminalReceiver {
    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// The next message, without blocking.
    pub(crate) fn receive(&self) -> FromInit {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut space = [0u64; 4];
        // SAFETY: as in `send`; the kernel writes at most msg_controllen
        // bytes of control data into `space`, and a descriptor it passes
        // is new in this process and owned by nothing else.
        let fd = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = space.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&space);
            let n = libc::recvmsg(
                self.0.as_raw_fd(),
                &mut msg,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
            );
            if n < 0 {
                let e = io::Error::last_os_error().raw_os_error();
                if matches!(e, Some(libc::EAGAIN | libc::EINTR)) {
                    return FromInit::Nothing;
                }
                return FromInit::End;
            }
            let c = libc::CMSG_FIRSTHDR(&msg);
            let fd = (!c.is_null()
                && (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SCM_RIGHTS
                && (*c).cmsg_len == libc::CMSG_LEN(4) as usize)
                .then(|| {
                    OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                        libc::CMSG_DATA(c).cast::<RawFd>(),
                    ))
                });
            match (n, byte[0], fd) {
                (1, STOPPED, None) => return FromInit::Stopped,
                (1, MASTER, Some(fd)) => fd,
                // Anything else (end of file included) ends the channel;
                // a descriptor that came with it is closed on drop.
                _ => return FromInit::End,
            }
        };
        if crate::sandbox::pty::is_master(fd.as_raw_fd()) {
            FromInit::Master(fd)
        } else {
            FromInit::End
        }
    }
}

/// Most descriptors one message may carry (the kernel's SCM_MAX_FD).
pub(crate) const MAX_FDS: usize = 253;

/// Sends `fds` in one message on the socket `sock` (blocking), its one
/// byte of data `tag`.
fn send_fds(sock: RawFd, tag: u8, fds: &[OwnedFd]) -> io::Result<()> {
    if fds.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let bytes = std::mem::size_of_val(raw.as_slice()) as u32;
    // SAFETY: CMSG_SPACE computes a size from an integer.
    let space_len = unsafe { libc::CMSG_SPACE(bytes) } as usize;
    let mut space = vec![0u64; space_len.div_ceil(8)];
    let mut byte = [tag];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is valid; the pointers set below point to
    // locals that outlive the sendmsg call; `space` is 8-aligned and at
    // least CMSG_SPACE(bytes) long, so the header and `raw` fit.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = space_len;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
        std::ptr::copy_nonoverlapping(raw.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), raw.len());
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives one message of descriptors from `sock` (blocking); empty at
/// end of file. Descriptors beyond what fits are closed by the kernel
/// (MSG_CTRUNC), and then none is returned.
fn recv_fds(sock: RawFd) -> io::Result<Vec<OwnedFd>> {
    // SAFETY: CMSG_SPACE computes a size from an integer.
    let space_len = unsafe { libc::CMSG_SPACE((MAX_FDS * 4) as u32) } as usize;
    let mut space = vec![0u64; space_len.div_ceil(8)];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut fds = Vec::new();
    // SAFETY: as in `send_fds`; the kernel writes at most msg_controllen
    // bytes into `space`, and each descriptor it passes is new in this
    // process and owned by nothing else.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = space_len;
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || *libc::__errno_location() != libc::EINTR {
                break n;
            }
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let len = (*c).cmsg_len - libc::CMSG_LEN(0) as usize;
                for i in 0..len / 4 {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        if n != 1 || byte[0] != b'E' || msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Ok(Vec::new());
        }
    }
    Ok(fds)
}

/// The init's end of **egress**.
pub(crate) struct EgressSender(OwnedFd);

impl EgressSender {
    /// Hands the listeners to the proxy; the init keeps no copy.
    ///
    /// # Errors
    /// The errno of `sendmsg`.
    pub(crate) fn send(self, fds: Vec<OwnedFd>) -> io::Result<()> {
        send_fds(self.0.as_raw_fd(), b'E', &fds)
    }
}

/// The egress proxy's end of **egress**.
pub(crate) struct EgressReceiver(OwnedFd);

impl EgressReceiver {
    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// The end the proxy's program was handed, by number.
    ///
    /// # Safety
    /// `fd` is an open descriptor of this end that nothing else owns.
    pub(crate) unsafe fn from_raw(fd: RawFd) -> EgressReceiver {
        // SAFETY: the caller's promise.
        EgressReceiver(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The listeners, once the init has sent them (blocks); empty when the
    /// init ended without sending them.
    ///
    /// # Errors
    /// The errno of `recvmsg`.
    pub(crate) fn receive(self) -> io::Result<Vec<OwnedFd>> {
        recv_fds(self.0.as_raw_fd())
    }
}

/// **denials**: the init hands the seccomp listener of its denylist to
/// the supervisor, or says it has none.
pub(crate) fn listener_pair() -> io::Result<(ListenerReceiver, ListenerSender)> {
    let (r, w) = socketpair()?;
    Ok((ListenerReceiver(r), ListenerSender(w)))
}

/// The message carrying the listener.
const LISTENER: u8 = b'L';
/// The message saying the denylist has no listener (the kernel refused one).
const NO_LISTENER: u8 = b'N';

/// The init's end of **denials**.
pub(crate) struct ListenerSender(OwnedFd);

impl ListenerSender {
    /// Hands the listener over (or says there is none). It allocates
    /// nothing: it runs after seccomp, next to the agent's stack.
    ///
    /// # Errors
    /// The errno of `sendmsg`.
    pub(crate) fn send(&self, listener: Option<&OwnedFd>) -> io::Result<()> {
        let mut space = [0u64; 4]; // >= CMSG_SPACE(4)
        let mut byte = [if listener.is_some() {
            LISTENER
        } else {
            NO_LISTENER
        }];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: as in `send_fds`: an all-zero msghdr is valid, its pointers
        // point at locals that outlive the call, and `space` (8-aligned,
        // 32 bytes) holds a header and one descriptor.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if let Some(fd) = listener {
                let bytes = std::mem::size_of::<RawFd>() as u32;
                msg.msg_control = space.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd.as_raw_fd());
            }
            if libc::sendmsg(self.0.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What the init said on **denials**.
pub(crate) enum Listener {
    /// The denylist's listener.
    Fd(OwnedFd),
    /// The kernel refused one: the denylist answers EPERM itself.
    Refused,
    /// The init ended without saying (it was refused before seccomp).
    Gone,
}

/// The supervisor's end of **denials**.
pub(crate) struct ListenerReceiver(OwnedFd);

impl ListenerReceiver {
    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// The message, once the socket is readable (it doesn't wait).
    pub(crate) fn receive(&self) -> Listener {
        let mut space = [0u64; 4];
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut fd = None;
        // SAFETY: as in `recv_fds`; the kernel writes at most 32 control
        // bytes, and a descriptor it passes is new and ours.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = space.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&space);
            let n = libc::recvmsg(
                self.0.as_raw_fd(),
                &mut msg,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
            );
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while n > 0 && !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c).cast::<RawFd>();
                    let len = (*c).cmsg_len - libc::CMSG_LEN(0) as usize;
                    for i in 0..len / 4 {
                        let f = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                        fd.get_or_insert(f);
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
            n
        };
        match (n, byte[0], fd) {
            (1, LISTENER, Some(fd)) => Listener::Fd(fd),
            (1, NO_LISTENER, None) => Listener::Refused,
            _ => Listener::Gone,
        }
    }
}

/// A connected pair of unix sockets (SOCK_SEQPACKET, O_CLOEXEC).
fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors socketpair writes.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The supervisor's end of **release**.
pub(crate) struct Release(OwnedFd);

impl Release {
    /// Lets the init go on: it sees end of file.
    pub(crate) fn release(self) {
        drop(self.0);
    }
}

/// The init's end of **release**.
pub(crate) struct AwaitRelease(OwnedFd);

impl AwaitRelease {
    /// Waits until the supervisor releases the init (or dies).
    pub(crate) fn wait(self) {
        let mut b = [0u8; 1];
        // SAFETY: b is a valid buffer; the fd is our pipe's read end.
        while unsafe { libc::read(self.0.as_raw_fd(), b.as_mut_ptr().cast(), 1) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

/// The supervisor's end of **lifeline**: held until it exits.
pub(crate) struct Lifeline(OwnedFd);

impl Lifeline {
    /// The supervisor is done: the init may see it gone.
    pub(crate) fn cut(self) {
        drop(self.0);
    }
}

/// The init's end of **lifeline**.
pub(crate) struct LifelineWatch(OwnedFd);

impl LifelineWatch {
    /// True while the supervisor lives (holds the write end).
    pub(crate) fn supervisor_alive(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: p is a valid pollfd; timeout 0 doesn't block.
        unsafe { libc::poll(&mut p, 1, 0) == 0 }
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The init's end of **report** (the agent inherits it).
pub(crate) struct ReportWriter(OwnedFd);

impl ReportWriter {
    /// Reports a setup failure at `step`.
    pub(crate) fn refused(&self, step: &str, why: &str) {
        refused(self.0.as_raw_fd(), step, why);
    }

    /// For the agent, which reports with [`exec_failed`] and [`refused`]
    /// on the raw fd (it must not touch anything it shares with the init).
    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The init's end of **status**.
pub(crate) struct StatusWriter(OwnedFd);

impl StatusWriter {
    /// Sends the agent's raw wait status (once, at the end).
    pub(crate) fn send(&self, status: libc::c_int) {
        let raw = status.to_ne_bytes();
        // SAFETY: raw is a valid buffer; a failed write only loses detail
        // in the exit record.
        unsafe { libc::write(self.0.as_raw_fd(), raw.as_ptr().cast(), raw.len()) };
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The supervisor's end of **status**.
pub(crate) struct StatusReader(OwnedFd);

impl StatusReader {
    /// The agent's raw wait status as the init reported it, if it did.
    /// Every writer has exited by now, so this doesn't block.
    pub(crate) fn read(self) -> Option<libc::c_int> {
        let mut b = [0u8; 4];
        // SAFETY: b is a valid buffer of its length.
        let n = unsafe { libc::read(self.0.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
        (n == 4).then(|| libc::c_int::from_ne_bytes(b))
    }
}

/// Creates a pipe: (read end, write end), both O_CLOEXEC.
///
/// # Errors
/// The errno of `pipe2`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A fixed buffer, so reporting needs no allocation after the fork (the
/// agent may fail between seccomp and execve, where nothing may allocate).
struct Record {
    buf: [u8; MAX],
    len: usize,
}

impl Record {
    fn new(tag: u8) -> Record {
        let mut r = Record {
            buf: [0; MAX],
            len: 0,
        };
        r.push(&[tag]);
        r
    }

    fn push(&mut self, b: &[u8]) {
        let n = b.len().min(MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }

    fn send(&self, fd: RawFd) {
        // SAFETY: buf[..len] is initialized; a short or failed write only
        // loses the reason, and the exit status still says we failed.
        unsafe { libc::write(fd, self.buf.as_ptr().cast(), self.len) };
    }
}

/// Reports a setup failure at `step`. Doesn't allocate when `why` is static.
pub(crate) fn refused(fd: RawFd, step: &str, why: &str) {
    let mut r = Record::new(REFUSED);
    r.push(step.as_bytes());
    r.push(&[0]);
    r.push(why.as_bytes());
    r.send(fd);
}

/// Reports a failed execve, with the exit code it maps to. The errno goes
/// as a number: the agent shares the init's memory until its execve, and
/// strerror may allocate or take a lock; the supervisor words it.
pub(crate) fn exec_failed(fd: RawFd, code: u8, path: &[u8], errno: i32) {
    let mut r = Record::new(EXEC_FAILED);
    r.push(&[code]);
    r.push(&errno.to_le_bytes());
    r.push(path);
    r.send(fd);
}

/// The supervisor's side: reads the one record, or end of file, as it
/// arrives, without blocking (the event loop polls the pipe).
pub(crate) struct Reader {
    buf: Vec<u8>,
    eof: bool,
}

impl Reader {
    /// Makes `fd` non-blocking for [`Reader::read_available`].
    pub(crate) fn new(fd: &OwnedFd) -> Reader {
        // SAFETY: fcntl flag changes on an fd we own.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        Reader {
            buf: Vec::with_capacity(MAX),
            eof: false,
        }
    }

    /// Reads what the pipe holds now. A read error counts as the end: the
    /// report is then whatever arrived.
    pub(crate) fn read_available(&mut self, fd: &OwnedFd) {
        let mut chunk = [0u8; MAX];
        while !self.eof {
            // SAFETY: chunk is a valid buffer of its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            match n {
                0 => self.eof = true,
                n if n > 0 => {
                    // A record is at most MAX bytes; more is not a report.
                    let room = (MAX + 1).saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..(n as usize).min(room)]);
                }
                _ => match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) => return,
                    _ => self.eof = true,
                },
            }
        }
    }

    /// End of file was seen: nothing more will come.
    pub(crate) fn at_end(&self) -> bool {
        self.eof
    }

    /// The report, from what arrived.
    pub(crate) fn finish(&self) -> Report {
        parse(&self.buf)
    }
}

/// Reads the one record, or end of file, from the read end (blocking).
///
/// # Errors
/// A read error on the pipe.
#[cfg(test)]
fn read(fd: OwnedFd) -> io::Result<Report> {
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::with_capacity(MAX);
    std::io::Read::read_to_end(&mut f, &mut buf)?;
    Ok(parse(&buf))
}

fn parse(buf: &[u8]) -> Report {
    match buf.split_first() {
        None => Report::Running,
        Some((&REFUSED, rest)) => {
            let mut parts = rest.splitn(2, |b| *b == 0);
            let step = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let why = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            Report::Refused { step, why }
        }
        Some((&EXEC_FAILED, rest)) if rest.len() >= 5 => {
            let errno = i32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]);
            // SAFETY: strerror returns a pointer to a NUL-terminated string
            // that stays valid until the next strerror call on this thread;
            // it is copied at once.
            let msg = unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) };
            Report::ExecFailed {
                code: rest[0],
                why: format!(
                    "{}: {}",
                    String::from_utf8_lossy(&rest[5..]),
                    msg.to_string_lossy()
                ),
            }
        }
        Some(_) => Report::Refused {
            step: "report".into(),
            why: format!("unreadable report from the sandbox ({} bytes)", buf.len()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_pass_in_one_message_in_order() {
        let (a, b) = socketpair().unwrap();
        let pipes: Vec<(OwnedFd, OwnedFd)> = (0..5).map(|_| pipe().unwrap()).collect();
        let writes: Vec<OwnedFd> = pipes.iter().map(|(_, w)| w.try_clone().unwrap()).collect();
        EgressSender(a).send(writes).unwrap();
        let got = EgressReceiver(b).receive().unwrap();
        assert_eq!(got.len(), 5);
        for (i, (fd, (r, _))) in got.iter().zip(&pipes).enumerate() {
            let byte = [i as u8];
            // SAFETY: valid one-byte buffers on our own pipe ends.
            unsafe {
                assert_eq!(libc::write(fd.as_raw_fd(), byte.as_ptr().cast(), 1), 1);
                let mut back = [0u8];
                assert_eq!(libc::read(r.as_raw_fd(), back.as_mut_ptr().cast(), 1), 1);
                assert_eq!(back[0], i as u8);
            }
        }
        // End of file: nothing.
        let (a, b) = socketpair().unwrap();
        drop(a);
        assert!(EgressReceiver(b).receive().unwrap().is_empty());
    }

    #[test]
    fn round_trip() {
        let (r, w) = pipe().unwrap();
        refused(w.as_raw_fd(), "landlock", "opening /usr: ELOOP");
        drop(w);
        assert_eq!(
            read(r).unwrap(),
            Report::Refused {
                step: "landlock".into(),
                why: "opening /usr: ELOOP".into()
            }
        );
        let (r, w) = pipe().unwrap();
        exec_failed(w.as_raw_fd(), 127, b"nope", libc::ENOENT);
        drop(w);
        assert_eq!(
            read(r).unwrap(),
            Report::ExecFailed {
                code: 127,
                why: "nope: No such file or directory".into()
            }
        );
        let (r, w) = pipe().unwrap();
        drop(w);
        assert_eq!(read(r).unwrap(), Report::Running);
    }
}
