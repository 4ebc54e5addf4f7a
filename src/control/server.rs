//! The supervisor's side of the control socket: a few more descriptors in
//! its event loop ([`Server::fds`], [`Server::ready`]), never blocking it.
//!
//! Everything is non-blocking. A connection is accepted, its peer's
//! credentials taken (`SO_PEERCRED`), and its bytes read as they come into
//! a buffer of its own, up to [`REQUEST_MAX`] and for at most
//! [`CONN_DEADLINE`]; once the request is whole (a newline, or the peer's
//! end of writing) it is answered with one write and closed. A peer that
//! sends nothing, garbage or too much gets an error or is dropped at its
//! deadline, and changes nothing. At most [`MAX_CONNS`] connections are
//! open at once; beyond that the listener isn't polled, and new ones wait
//! in its backlog.
//!
//! What the loop must do itself (stop, kill) comes back as an [`Act`];
//! freeze, thaw and the statistics are done here, on the sandbox's cgroup.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Request, REQUEST_MAX};
use crate::audit::{self, Audit};
use crate::sandbox::cgroup::{self, Cgroup};

/// How long a connection may take to send its request.
pub const CONN_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once.
pub const MAX_CONNS: usize = 8;

/// What the supervisor's loop must do for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// TERM now, KILL after the grace (this one, when given).
    Stop(Option<Duration>),
    /// KILL now.
    Kill,
    /// The open request `id` was approved (`true`) or denied by `uid`.
    Answer { id: String, approve: bool, uid: u32 },
}

/// What the server needs of the supervisor to answer.
pub struct Ctx<'a> {
    pub cgroup: Option<&'a Cgroup>,
    pub audit: &'a Audit,
    /// The sandbox's init (host pid).
    pub init: libc::pid_t,
    /// A stop or kill is under way.
    pub stopping: bool,
    /// Proxy mode: what went through the egress proxy so far.
    pub network: Option<NetUsage>,
    /// The open checkpoints and asks (ids, kinds, what each asks).
    pub requests: Vec<Value>,
    /// Run time so far (frozen time not counted).
    pub run_time_ms: u64,
}

/// The egress proxy's traffic so far, summed from its connection records.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct NetUsage {
    pub connections: u64,
    pub refused: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

struct Conn {
    fd: OwnedFd,
    uid: u32,
    pid: i32,
    buf: Vec<u8>,
    deadline: Instant,
}

/// The control socket's listener and its open connections.
pub struct Server {
    listener: OwnedFd,
    /// The launcher's uid: with root, the only one served.
    owner: u32,
    conns: Vec<Conn>,
    /// Frozen by `confine freeze` (not by a checkpoint): the run-time
    /// clock stops.
    pub frozen: bool,
}

impl Server {
    /// Serves `listener` (non-blocking, listening) for the sandbox
    /// launched by `owner`.
    pub fn new(listener: OwnedFd, owner: u32) -> Server {
        Server {
            listener,
            owner,
            conns: Vec::new(),
            frozen: false,
        }
    }

    /// The descriptors to poll: the listener while there is room, and
    /// every open connection.
    pub fn fds(&self, fds: &mut Vec<libc::pollfd>) {
        let p = |fd: &OwnedFd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        if self.conns.len() < MAX_CONNS {
            fds.push(p(&self.listener));
        }
        fds.extend(self.conns.iter().map(|c| p(&c.fd)));
    }

    /// Until the earliest connection's deadline, for the poll timeout.
    pub fn timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        self.conns
            .iter()
            .map(|c| c.deadline.saturating_duration_since(now))
            .min()
    }

    /// Accepts, reads and answers what is ready; drops connections past
    /// their deadline. Returns what the loop must do, in the order asked.
    pub fn ready(&mut self, fds: &[libc::pollfd], ctx: &Ctx) -> Vec<Act> {
        let polled = |fd: &OwnedFd| fds.iter().any(|f| f.fd == fd.as_raw_fd() && f.revents != 0);
        if polled(&self.listener) {
            self.accept();
        }
        let mut acts = Vec::new();
        // Requests answered by an earlier connection of this round: the
        // first answer wins.
        let mut answered: Vec<String> = Vec::new();
        let now = Instant::now();
        let mut i = 0;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            let done = if polled(&c.fd) {
                match read_more(c) {
                    Some(req) => {
                        let (reply, a) = answer(&req, c, self.owner, ctx, &answered);
                        send(&c.fd, &reply);
                        match &a {
                            Some(Act::Answer { id, .. }) => answered.push(id.clone()),
                            None if reply["ok"] == true => {
                                if let Ok(Request::Freeze | Request::Thaw) = &req {
                                    self.frozen = matches!(req, Ok(Request::Freeze));
                                }
                            }
                            _ => {}
                        }
                        acts.extend(a);
                        true
                    }
                    None => now >= c.deadline,
                }
            } else {
                now >= c.deadline
            };
            if done {
                self.conns.swap_remove(i);
            } else {
                i += 1;
            }
        }
        acts
    }

    fn accept(&mut self) {
        while self.conns.len() < MAX_CONNS {
            // SAFETY: accept4 on our listener; no address is asked for.
            let fd = unsafe {
                libc::accept4(
                    self.listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                // EAGAIN: none left; anything else: try again next time.
                return;
            }
            // SAFETY: accept4 just returned this fd and nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let Some((uid, pid)) = peer(&fd) else {
                continue;
            };
            self.conns.push(Conn {
                fd,
                uid,
                pid,
                buf: Vec::new(),
                deadline: Instant::now() + CONN_DEADLINE,
            });
        }
    }
}

/// The peer's uid and pid, as the kernel saw them at connect.
fn peer(fd: &OwnedFd) -> Option<(u32, i32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid out-pointers of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some((cred.uid, cred.pid))
}

/// What the request is, once it is whole: `Some(Ok)` parsed, `Some(Err)`
/// too long or not a request; `None` while more may come.
type Whole = Result<Request, String>;

/// Reads what is there; the request once whole.
fn read_more(c: &mut Conn) -> Option<Whole> {
    let mut chunk = [0u8; 1024];
    loop {
        // SAFETY: chunk is a valid buffer of its length.
        let n = unsafe { libc::read(c.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => None,
                _ => Some(Err(format!("reading the request: {e}"))),
            };
        }
        let n = n as usize;
        if n == 0 {
            return Some(parse(&c.buf));
        }
        c.buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = c.buf.iter().position(|&b| b == b'\n') {
            return Some(parse(&c.buf[..end]));
        }
        if c.buf.len() > REQUEST_MAX {
            return Some(Err(format!("request longer than {REQUEST_MAX} bytes")));
        }
    }
}

fn parse(bytes: &[u8]) -> Whole {
    if bytes.len() > REQUEST_MAX {
        return Err(format!("request longer than {REQUEST_MAX} bytes"));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("not a control request: {e}"))
}

/// One write of the reply; a peer that doesn't read it loses it.
fn send(fd: &OwnedFd, reply: &Value) {
    let mut text = reply.to_string();
    text.push('\n');
    // SAFETY: text is a valid buffer of its length; MSG_NOSIGNAL: a closed
    // peer is an error here, not a SIGPIPE.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            text.as_ptr().cast(),
            text.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
}

fn refusal(why: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": why.to_string()})
}

/// The reply to a whole request, and what the loop must do.
fn answer(
    req: &Whole,
    c: &Conn,
    owner: u32,
    ctx: &Ctx,
    answered: &[String],
) -> (Value, Option<Act>) {
    let req = match req {
        Ok(r) => r,
        Err(why) => return (refusal(why), None),
    };
    let record = |outcome: &str| {
        if !req.acts() {
            return;
        }
        let r = ctx.audit.record(&audit::Control {
            action: req.name(),
            uid: c.uid,
            peer_pid: c.pid,
            outcome,
        });
        if let Err(e) = r {
            crate::say!("confine: audit log (writing a control record): {e}");
        }
    };
    if c.uid != 0 && c.uid != owner {
        let why = format!(
            "uid {} may not control this sandbox (only root and its launcher, uid {owner})",
            c.uid
        );
        record(&format!("refused: {why}"));
        return (refusal(why), None);
    }
    let state = state(ctx);
    match req {
        Request::Status => (
            json!({"ok": true, "state": state, "init": ctx.init, "requests": ctx.requests,
                   "run_time_ms": ctx.run_time_ms}),
            None,
        ),
        Request::Stats => {
            let usage = match ctx.cgroup {
                Some(cg) => serde_json::to_value(cg.usage()).unwrap_or(Value::Null),
                None => proc_usage(ctx.init),
            };
            let source = if ctx.cgroup.is_some() {
                "cgroup"
            } else {
                "proc"
            };
            (
                json!({"ok": true, "state": state, "source": source, "usage": usage,
                       "network": ctx.network, "run_time_ms": ctx.run_time_ms,
                       "requests": ctx.requests}),
                None,
            )
        }
        Request::Stop { grace_ms } => {
            // A frozen sandbox can't act on TERM (nor die of KILL under the
            // v1 freezer) until thawed.
            if let Some(cg) = ctx.cgroup {
                let _ = cg.freeze(false);
            }
            record("stopping");
            (
                json!({"ok": true, "outcome": "stopping"}),
                Some(Act::Stop(grace_ms.map(Duration::from_millis))),
            )
        }
        Request::Kill => {
            record("killing");
            (json!({"ok": true, "outcome": "killing"}), Some(Act::Kill))
        }
        Request::Approve { request } | Request::Deny { request } => {
            let approve = matches!(req, Request::Approve { .. });
            match pick(request.as_deref(), ctx, answered) {
                Ok(id) => {
                    record(&format!(
                        "{} {id}",
                        if approve { "approved" } else { "denied" }
                    ));
                    (
                        json!({"ok": true, "request": id, "outcome": if approve { "approved" } else { "denied" }}),
                        Some(Act::Answer {
                            id,
                            approve,
                            uid: c.uid,
                        }),
                    )
                }
                Err(why) => {
                    record(&format!("refused: {why}"));
                    (refusal(why), None)
                }
            }
        }
        Request::Freeze | Request::Thaw => {
            let on = *req == Request::Freeze;
            let r = match ctx.cgroup {
                None => Err(no_cgroup(req.name())),
                Some(_) if ctx.stopping => Err("the sandbox is being stopped".to_string()),
                // A thaw would let it run on unapproved; a freeze would be
                // undone by the approval.
                Some(_) if waiting(ctx) => Err(
                    "a checkpoint is waiting for approval: answer it with confine approve or \
                     confine deny"
                        .to_string(),
                ),
                Some(cg) => cg.freeze(on).map_err(|e| e.to_string()),
            };
            match r {
                Ok(()) => {
                    record("done");
                    (json!({"ok": true, "state": state_of(ctx)}), None)
                }
                Err(why) => {
                    record(&format!("refused: {why}"));
                    (refusal(why), None)
                }
            }
        }
    }
}

/// A checkpoint is open.
fn waiting(ctx: &Ctx) -> bool {
    ctx.requests.iter().any(|r| r["kind"] == "checkpoint")
}

/// The open request an approve or deny answers: the one named, or the
/// only one open.
fn pick(named: Option<&str>, ctx: &Ctx, answered: &[String]) -> Result<String, String> {
    let open: Vec<&str> = ctx
        .requests
        .iter()
        .filter_map(|r| r["request"].as_str())
        .filter(|id| !answered.iter().any(|a| a == id))
        .collect();
    match (named, open.as_slice()) {
        (_, []) => Err("nothing is waiting for approval".to_string()),
        (Some(n), _) if open.contains(&n) => Ok(n.to_string()),
        (Some(n), _) => Err(format!(
            "no open request {n:?} (open: {}); it may have been answered already",
            open.join(", ")
        )),
        (None, [one]) => Ok((*one).to_string()),
        (None, many) => Err(format!(
            "{} requests are open ({}): name the one to answer",
            many.len(),
            many.join(", ")
        )),
    }
}

fn no_cgroup(action: &str) -> String {
    format!(
        "the sandbox has no cgroup, which {action} needs: confine makes one only for \
         limits.memory, limits.pids or limits.cpu (hint: run it with a limit, e.g. --set \
         limits.pids=4096)"
    )
}

fn state(ctx: &Ctx) -> &'static str {
    if ctx.stopping {
        return "stopping";
    }
    if waiting(ctx) {
        return "waiting for approval";
    }
    state_of(ctx)
}

fn state_of(ctx: &Ctx) -> &'static str {
    ctx.cgroup
        .and_then(Cgroup::freeze_state)
        .map_or("running", cgroup::FreezeState::name)
}

/// Without a cgroup: what /proc says of the processes in the init's PID
/// namespace (processes, resident memory, CPU time).
fn proc_usage(init: libc::pid_t) -> Value {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(own) = ns(&init.to_string()) else {
        return Value::Null;
    };
    // SAFETY: sysconf with a constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    // SAFETY: sysconf with a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let (mut n, mut cpu, mut rss) = (0u64, 0u64, 0u64);
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if ns(pid).as_ref() != Some(&own) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|w| w.parse().unwrap_or(0))
            .collect();
        // Fields 14, 15 (utime, stime) and 24 (rss), counted after ')'.
        n += 1;
        cpu += f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        rss += f.get(21).copied().unwrap_or(0);
    }
    json!({
        "processes": n,
        "cpu_usage_usec": cpu * 1_000_000 / tick,
        "memory_bytes": rss * page,
    })
}
