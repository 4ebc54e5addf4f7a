//! The byte relay between the agent's connection and the upstream one,
//! once every check is done: `splice(2)` through a pipe per direction, so
//! the bytes move from socket to socket inside the kernel, with tokio's
//! readiness on both sockets; a buffered copy when a pipe can't be had.
//!
//! A direction reads into its pipe while the pipe has room and writes out
//! of it while the other socket takes bytes, in one loop, so neither side
//! waits for the other to finish a round: the pipe stays full on a fast
//! path. It waits only when nothing moved: for bytes when the pipe is
//! empty, for room when it isn't.
//!
//! Every read is first bounded by the byte budget of its direction and
//! counted right after, with no await in between, so concurrent relays
//! never move more than a budget allows; a relay whose budget is used up
//! ends. When one side stops sending, the other side's write half is shut
//! down (half-close) and the other direction goes on. A relay in which
//! nothing moves for the idle timeout ends.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::budget::{Budgets, Dir, Exhausted};

/// The pipe size asked for; the kernel's default (64 KiB) is kept when the
/// system's limits refuse it. 256 KiB is 64 pages: with a pipe per
/// direction, 128 relays fit in the 16384 pages a user may hold in pipes
/// before new pipes shrink to one page (`fs.pipe-user-pages-soft`; 1 MiB
/// pipes measured no faster on loopback).
const PIPE_SIZE: i32 = 256 * 1024;
/// Bytes per read of the buffered copy.
const COPY_BUF: usize = 64 * 1024;

/// What a relay counts, for the connection's record and the budgets.
pub struct Meter<'a> {
    pub budgets: &'a RefCell<Budgets>,
    /// Shared with the connection's record, which reads them when it is
    /// written: also when the relay is cut short (the sandbox ended).
    pub bytes_out: Rc<Cell<u64>>,
    pub bytes_in: Rc<Cell<u64>>,
    last: Cell<Instant>,
}

impl<'a> Meter<'a> {
    pub fn new(budgets: &'a RefCell<Budgets>) -> Meter<'a> {
        Meter {
            budgets,
            bytes_out: Rc::new(Cell::new(0)),
            bytes_in: Rc::new(Cell::new(0)),
            last: Cell::new(Instant::now()),
        }
    }

    /// Bytes `dir` may move now, or the budget that is used up.
    pub fn allowance(&self, dir: Dir) -> Result<u64, Exhausted> {
        let b = self.budgets.borrow();
        match b.allowance(dir) {
            0 => Err(b.bytes_exhausted(dir)),
            n => Ok(n),
        }
    }

    pub fn count(&self, dir: Dir, n: usize) {
        let n = n as u64;
        self.budgets.borrow_mut().add(dir, n);
        let c = match dir {
            Dir::Out => &*self.bytes_out,
            Dir::In => &*self.bytes_in,
        };
        c.set(c.get().saturating_add(n));
        self.last.set(Instant::now());
    }
}

/// How a relay ended.
#[derive(Debug)]
pub enum End {
    /// Both sides closed their sending half.
    Done,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A byte budget is used up.
    Budget(Exhausted),
    /// A socket error (reset, ...).
    Error(io::Error),
}

/// How long a relay waits, once one direction has ended, for the other
/// to move a byte: a peer that has sent its last byte and got its answer
/// but never closes (a keep-alive server after `Connection: close`) would
/// otherwise hold the connection, and its record, for the whole idle time.
const HALF_CLOSED: Duration = Duration::from_secs(5);

/// Relays between `agent` and `upstream` until both directions end, one
/// fails, a budget runs out or the relay is idle for `idle` (for
/// [`HALF_CLOSED`] once one direction has ended).
pub async fn relay(
    agent: &TcpStream,
    upstream: &TcpStream,
    meter: &Meter<'_>,
    idle: Duration,
) -> End {
    let half = Cell::new(false);
    let one = |src, dst, dir| {
        let half = &half;
        async move {
            let r = one_way(src, dst, dir, meter).await;
            half.set(true);
            r
        }
    };
    let both = async {
        tokio::try_join!(
            one(agent, upstream, Dir::Out),
            one(upstream, agent, Dir::In)
        )
    };
    let watch = async {
        loop {
            let limit = if half.get() {
                idle.min(HALF_CLOSED)
            } else {
                idle
            };
            let deadline = meter.last.get() + limit;
            if Instant::now() >= deadline {
                return;
            }
            // Woken at least every HALF_CLOSED, to see a direction end.
            tokio::time::sleep_until(deadline.min(Instant::now() + HALF_CLOSED)).await;
        }
    };
    tokio::select! {
        r = both => match r {
            Ok(_) => End::Done,
            Err(e) => e,
        },
        () = watch => End::Idle,
    }
}

/// Writes `bytes` (what the checks read from `src` already) to `dst`,
/// counted as `dir`.
pub async fn forward(
    dst: &TcpStream,
    bytes: &[u8],
    dir: Dir,
    meter: &Meter<'_>,
) -> Result<(), End> {
    if bytes.is_empty() {
        return Ok(());
    }
    if meter.allowance(dir).map_err(End::Budget)? < bytes.len() as u64 {
        return Err(End::Budget(meter.budgets.borrow().bytes_exhausted(dir)));
    }
    meter.count(dir, bytes.len());
    write_all(dst, bytes).await.map_err(End::Error)
}

async fn write_all(dst: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        dst.writable().await?;
        match dst.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn one_way(src: &TcpStream, dst: &TcpStream, dir: Dir, meter: &Meter<'_>) -> Result<(), End> {
    match Pipe::new() {
        Ok(pipe) => match splice_loop(src, dst, dir, meter, &pipe).await {
            Err(Spliced::Unsupported) => copy_loop(src, dst, dir, meter).await,
            Err(Spliced::End(e)) => Err(e),
            Ok(()) => Ok(()),
        },
        Err(_) => copy_loop(src, dst, dir, meter).await,
    }
}

enum Spliced {
    /// splice doesn't work on these sockets: nothing was moved yet.
    Unsupported,
    End(End),
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

async fn splice_loop(
    src: &TcpStream,
    dst: &TcpStream,
    dir: Dir,
    meter: &Meter<'_>,
    pipe: &Pipe,
) -> Result<(), Spliced> {
    let end = |e| Spliced::End(End::Error(e));
    let mut in_pipe = 0usize;
    let mut eof = false;
    let mut first = true;
    let mut turns = 0u32;
    loop {
        let mut moved = false;
        let mut write_blocked = false;
        if !eof && in_pipe < pipe.size {
            let allowed = match meter.allowance(dir) {
                Ok(n) => n,
                Err(e) if in_pipe == 0 => return Err(Spliced::End(End::Budget(e))),
                Err(_) => 0,
            };
            let len = allowed.min((pipe.size - in_pipe) as u64) as usize;
            if len > 0 {
                let r = if in_pipe == 0 {
                    // An empty pipe: EAGAIN can only mean the socket has
                    // nothing, which is what `try_io` takes it for.
                    src.try_io(Interest::READABLE, || {
                        splice(src.as_raw_fd(), pipe.w.as_raw_fd(), len)
                    })
                } else {
                    // EAGAIN may mean a full pipe: the socket's readiness
                    // is left as it is.
                    splice(src.as_raw_fd(), pipe.w.as_raw_fd(), len)
                };
                match r {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        meter.count(dir, n);
                        in_pipe += n;
                        moved = true;
                    }
                    Err(e) if is_would_block(&e) => {}
                    Err(e) if first && e.raw_os_error() == Some(libc::EINVAL) => {
                        return Err(Spliced::Unsupported)
                    }
                    Err(e) => return Err(end(e)),
                }
                first = false;
            }
        }
        if in_pipe > 0 {
            match dst.try_io(Interest::WRITABLE, || {
                splice(pipe.r.as_raw_fd(), dst.as_raw_fd(), in_pipe)
            }) {
                Ok(0) => return Err(end(io::ErrorKind::WriteZero.into())),
                Ok(k) => {
                    in_pipe -= k;
                    moved = true;
                }
                Err(e) if is_would_block(&e) => write_blocked = true,
                Err(e) => return Err(end(e)),
            }
        }
        if eof && in_pipe == 0 {
            shutdown_write(dst);
            return Ok(());
        }
        if moved {
            // Other connections get their turn now and then.
            turns += 1;
            if turns.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
            continue;
        }
        // Nothing moved. An empty pipe waits for the socket to have bytes
        // (its readiness was cleared by the EAGAIN); a pipe with bytes
        // waits for room on the other socket (cleared likewise), also
        // when the read was refused only because the pipe was full.
        if in_pipe == 0 {
            src.readable().await.map_err(end)?;
        } else {
            debug_assert!(write_blocked);
            dst.writable().await.map_err(end)?;
        }
    }
}

async fn copy_loop(
    src: &TcpStream,
    dst: &TcpStream,
    dir: Dir,
    meter: &Meter<'_>,
) -> Result<(), End> {
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        src.readable().await.map_err(End::Error)?;
        let allowed = meter.allowance(dir).map_err(End::Budget)?;
        let len = allowed.min(COPY_BUF as u64) as usize;
        let n = match src.try_read(&mut buf[..len]) {
            Ok(n) => n,
            Err(e) if is_would_block(&e) => continue,
            Err(e) => return Err(End::Error(e)),
        };
        if n == 0 {
            shutdown_write(dst);
            return Ok(());
        }
        meter.count(dir, n);
        write_all(dst, &buf[..n]).await.map_err(End::Error)?;
    }
}

/// Half-close: the peer sees the end of the stream, and can still send.
fn shutdown_write(s: &TcpStream) {
    // SAFETY: shutdown on a socket we hold; an error (already closed)
    // changes nothing we rely on.
    unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_WR) };
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are live for the call; null offsets (pipes
    // and sockets have none).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A non-blocking pipe, one per direction of a relay.
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    size: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: fds is an array of two ints for the kernel to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: two fresh descriptors nothing else owns.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl with integer arguments on our pipe.
        let mut size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        if size <= 0 {
            // SAFETY: as above.
            size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
        }
        Ok(Pipe {
            r,
            w,
            size: usize::try_from(size)
                .ok()
                .filter(|&s| s > 0)
                .unwrap_or(65536),
        })
    }
}
