//! `network.ask` in the egress proxy (DESIGN.md §12): a connection to a
//! host that an `ask` entry covers (and `allow` doesn't admit, and `deny`
//! doesn't refuse) waits while the supervisor asks; the client just sees a
//! slow connect (or CONNECT). One request per host and port: other
//! connections to it wait on the same one, and the answer holds for the
//! rest of the run, approved or denied.
//!
//! The question goes out as an `ask` event on the events pipe; the answer
//! comes back on the shutdown pipe, which carries answer lines
//! (`{"ask": ID, "approve": BOOL}`) until its end of file, the shutdown
//! (`Control`). An ask that can't be sent (the pipe is full) and one
//! beyond `MAX_WAITING` are refused at once: nothing waits on a
//! question nobody got.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::events::{AskEvent, Event};
use super::State;
use crate::plan::egress::normalize;

/// Hosts (and ports) waiting for an answer at once.
pub(crate) const MAX_WAITING: usize = 16;
/// The longest answer line.
const MAX_LINE: usize = 256;

/// One answer, as the supervisor writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub ask: u64,
    pub approve: bool,
}

impl Answer {
    /// The line the supervisor writes.
    pub fn line(self) -> Vec<u8> {
        let mut l = serde_json::to_vec(&self).unwrap_or_default();
        l.push(b'\n');
        l
    }
}

type Key = (String, u16);

/// What the proxy knows of its asks.
#[derive(Default)]
pub(crate) struct Asks {
    seq: Cell<u64>,
    /// Answered, for the rest of the run: approved (`true`) or denied.
    decided: RefCell<HashMap<Key, bool>>,
    /// Asked and not answered yet, by the id the answer names.
    waiting: RefCell<HashMap<Key, u64>>,
    wakers: RefCell<Vec<Waker>>,
    /// No answer can come any more.
    closed: Cell<bool>,
}

impl Asks {
    fn decide(&self, id: u64, approve: bool) {
        let key = {
            let mut w = self.waiting.borrow_mut();
            let Some(key) = w.iter().find(|(_, &i)| i == id).map(|(k, _)| k.clone()) else {
                return;
            };
            w.remove(&key);
            key
        };
        self.decided.borrow_mut().insert(key, approve);
        self.wake();
    }

    fn wake(&self) {
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

/// Resolves once `key` is decided (or nobody can decide it any more:
/// denied).
struct Wait<'a> {
    asks: &'a Asks,
    key: &'a Key,
}

impl Future for Wait<'_> {
    type Output = bool;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        if let Some(&ok) = self.asks.decided.borrow().get(self.key) {
            return Poll::Ready(ok);
        }
        if self.asks.closed.get() {
            return Poll::Ready(false);
        }
        let mut wakers = self.asks.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// For a destination `allow` didn't admit: `None` when no `ask` entry
/// covers it either; else the entry (as written) and, once answered,
/// whether it is approved or why it is refused.
pub(crate) async fn check(
    st: &State,
    host: &str,
    port: u16,
    peer_port: Option<u16>,
) -> Option<(String, Result<(), String>)> {
    let rule = st.policy.asks(host, port)?.text.clone();
    let r = decide(st, host, port, peer_port, &rule).await;
    Some((rule, r))
}

async fn decide(
    st: &State,
    host: &str,
    port: u16,
    peer_port: Option<u16>,
    rule: &str,
) -> Result<(), String> {
    let key = (normalize(host), port);
    let asks = &st.asks;
    let denied = || format!("{host}:{port} needs approval (ask `{rule}`) and was denied");
    if let Some(&ok) = asks.decided.borrow().get(&key) {
        return if ok { Ok(()) } else { Err(denied()) };
    }
    if !asks.waiting.borrow().contains_key(&key) {
        if asks.closed.get() {
            return Err(format!(
                "{host}:{port} needs approval (ask `{rule}`), and nothing can answer any more"
            ));
        }
        if asks.waiting.borrow().len() >= MAX_WAITING {
            return Err(format!(
                "{host}:{port} needs approval (ask `{rule}`), and {MAX_WAITING} hosts already wait for it"
            ));
        }
        let id = asks.seq.get() + 1;
        asks.seq.set(id);
        let sent = st.sink.borrow_mut().try_emit(Event::Ask(AskEvent {
            id,
            host: key.0.clone(),
            port,
            rule: rule.to_string(),
            peer_port,
        }));
        if !sent {
            return Err(format!(
                "{host}:{port} needs approval (ask `{rule}`), and the supervisor couldn't be asked"
            ));
        }
        asks.waiting.borrow_mut().insert(key.clone(), id);
    }
    let approved = Wait { asks, key: &key }.await;
    if approved {
        Ok(())
    } else {
        Err(denied())
    }
}

/// The supervisor's end of the shutdown pipe: answers, then end of file.
pub(crate) struct Control(AsyncFd<OwnedFd>);

impl Control {
    /// Takes the pipe's read end (made non-blocking).
    pub fn new(fd: OwnedFd) -> std::io::Result<Control> {
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        // SAFETY: the AsyncFd owns the descriptor for its whole life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Control(fd))
    }

    /// Applies answers as they come; returns at end of file (the sandbox
    /// has ended, or the supervisor is gone), when whatever still waits is
    /// refused.
    pub async fn run(&self, st: &State) {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let Ok(mut ready) = self.0.readable().await else {
                break;
            };
            // SAFETY: chunk is a valid buffer of its length; the fd is ours.
            let n = unsafe {
                libc::read(
                    self.0.get_ref().as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    chunk.len(),
                )
            };
            if n == 0 {
                break;
            }
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        ready.clear_ready();
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    _ => break,
                }
            }
            buf.extend_from_slice(&chunk[..n as usize]);
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                if let Ok(a) = serde_json::from_slice::<Answer>(&line[..line.len() - 1]) {
                    st.asks.decide(a.ask, a.approve);
                }
            }
            if buf.len() > MAX_LINE {
                buf.clear();
            }
        }
        st.asks.closed.set(true);
        st.asks.wake();
    }
}
