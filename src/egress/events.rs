//! What the egress proxy tells the supervisor: one JSON object per line on
//! a pipe, each line at most [`MAX_LINE`] bytes so that it is written with
//! one `write` (atomic on a pipe, PIPE_BUF is 4096). The supervisor parses
//! them with these same types (unknown fields are errors) and writes the
//! audit records (DESIGN.md §7).
//!
//! - `connection`: one per connection, admitted or refused, written when
//!   it ends or is refused. `verdict` is the policy's decision; on an
//!   admitted connection `reason` says why it ended early if it did
//!   (upstream unreachable, idle, a byte budget used up).
//! - DNS: a query the stub refuses (a name `allow` doesn't admit) is a
//!   `connection` with `via: dns`, `verdict: refused`, no port and no
//!   address: the agent tried to reach that name. Each name is reported at
//!   most once a minute (resolvers retry and walk search domains).
//!   Answered queries write nothing: the connection that follows does.
//! - `budget`: a budget ran out; with `action: stop` the supervisor stops
//!   the sandbox (exit 124, reason `budget`).
//! - `dropped`: the pipe was full and this many events were lost before
//!   this one (the proxy never blocks on the supervisor).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

/// The longest line, newline included.
pub const MAX_LINE: usize = 4096;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Connection(Connection),
    Budget(BudgetEvent),
    Dropped(Dropped),
    /// One request forwarded on a secret route ([`super::route`]).
    Request(RouteRequest),
    /// What one routed request spent, from the response's usage fields.
    Usage(Usage),
    /// A secret route's limit refused a request, or stops the sandbox.
    Limit(LimitEvent),
    /// A connection to a host of `network.ask` waits for approval; the
    /// answer comes back on the shutdown pipe ([`super::ask`]).
    Ask(AskEvent),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskEvent {
    /// The proxy's number for it, which the answer names.
    pub id: u64,
    pub host: String,
    pub port: u16,
    /// The `ask` entry that matched, as the profile wrote it.
    pub rule: String,
    /// The connecting socket's port inside the sandbox (127.0.0.1:PORT),
    /// from which the supervisor finds the process.
    pub peer_port: Option<u16>,
}

/// Which front door a connection came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The HTTP proxy (CONNECT or absolute-form).
    Proxy,
    /// A transparent listener on a fake address.
    Transparent,
    /// The DNS stub.
    Dns,
    /// A secret route: a plain-HTTP request the proxy forwards to the
    /// route's upstream over TLS, with the credential added.
    Route,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    Refused,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The name asked for (or the IP literal, or the local address of an
    /// unknown transparent connection); empty when the request was too
    /// malformed to name one.
    pub host: String,
    /// `None` for DNS queries.
    pub port: Option<u16>,
    /// The address dialled (or the non-public one that was refused).
    pub address: Option<IpAddr>,
    pub via: Via,
    pub verdict: Verdict,
    /// The `allow` or `deny` entry that decided, as the profile wrote it.
    pub rule: Option<String>,
    /// Why it was refused or ended early, in words.
    pub reason: Option<String>,
    /// Agent to upstream, at the TCP level.
    pub bytes_out: u64,
    /// Upstream to agent.
    pub bytes_in: u64,
    pub duration_ms: u64,
}

/// Which budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    Connections,
    PerMinute,
    BytesOut,
    BytesIn,
}

impl Which {
    /// As the profile spells it.
    pub fn name(self) -> &'static str {
        match self {
            Which::Connections => "connections",
            Which::PerMinute => "per_minute",
            Which::BytesOut => "bytes_out",
            Which::BytesIn => "bytes_in",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// New connections are refused (and a tunnel crossing a byte budget
    /// is closed).
    Refuse,
    /// The supervisor stops the sandbox.
    Stop,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetEvent {
    pub which: Which,
    pub limit: u64,
    pub used: u64,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropped {
    pub count: u64,
}

/// One request on a secret route, written when its response has ended
/// (or failed): the audit log's `connection` record for it, with the
/// route, method and status. Never the credential, nor the path (which
/// may carry the agent's data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// The upstream's host.
    pub host: String,
    pub port: Option<u16>,
    pub address: Option<IpAddr>,
    pub via: Via,
    /// `refused` when the proxy answered itself (a limit, an unknown
    /// route); `allowed` when it forwarded the request.
    pub verdict: Verdict,
    /// `secrets.NAME`.
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// The secret's name.
    pub route: String,
    pub method: String,
    /// The status the agent got; `None` if it never got one.
    pub status: Option<u16>,
    /// The request's bytes sent upstream (its head as the agent sent
    /// it, and its body), as counted in `network.budget`'s `bytes_out`.
    pub bytes_out: u64,
    /// The response's bytes passed to the agent (head and body), as
    /// counted in `bytes_in`.
    pub bytes_in: u64,
    pub duration_ms: u64,
}

/// A route's totals so far (in the `usage` records and the exit record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageTotals {
    pub requests: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// In the currency of `prices`; `None` without prices.
    pub cost: Option<f64>,
}

/// `usage`: what one request on a route spent, as the response's usage
/// fields said, and the route's totals including it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    pub route: String,
    /// As the response named it.
    pub model: Option<String>,
    /// `None`: the response carried no usage confine understood.
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub cost: Option<f64>,
    /// The `prices` entry used, when it isn't the model's own name (a
    /// prefix of it, or the dearest one for an unpriced model).
    pub priced_as: Option<String>,
    /// `tokens_out` is an upper bound, not the provider's count: the
    /// stream ended before its last usage, and the bytes that came after
    /// the last count were charged as tokens ([`super::usage::Reader`]).
    #[serde(default)]
    pub estimated: bool,
    pub totals: UsageTotals,
}

/// A number in a limit: a count, or an amount of money.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Count(u64),
    Money(f64),
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Money(m) => write!(f, "{m:.4}"),
        }
    }
}

/// A secret route's limit was reached (the audit log's `budget` record,
/// with the route).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitEvent {
    pub route: String,
    /// `requests_per_minute`, `tokens`, `tokens_per_hour` or `cost`.
    pub which: String,
    pub limit: Amount,
    pub used: Amount,
    pub action: Action,
}

/// Longest text fields, in bytes: a host name is at most 253, so 255 keeps
/// every valid one whole and cuts what an agent made up; with the other
/// fields bounded too a line stays far below [`MAX_LINE`].
const MAX_HOST: usize = 255;
const MAX_TEXT: usize = 1024;

fn clip(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max.saturating_sub(3);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
}

impl Event {
    /// The line to write: JSON and a newline, at most [`MAX_LINE`] bytes
    /// (long text fields are cut).
    pub fn line(mut self) -> Vec<u8> {
        match &mut self {
            Event::Connection(c) => {
                clip(&mut c.host, MAX_HOST);
                for s in [&mut c.rule, &mut c.reason].into_iter().flatten() {
                    clip(s, MAX_TEXT);
                }
            }
            Event::Request(r) => {
                clip(&mut r.host, MAX_HOST);
                clip(&mut r.method, 32);
                for s in [&mut r.rule, &mut r.reason].into_iter().flatten() {
                    clip(s, MAX_TEXT);
                }
            }
            Event::Usage(u) => {
                for s in [&mut u.model, &mut u.priced_as].into_iter().flatten() {
                    clip(s, MAX_HOST);
                }
            }
            _ => {}
        }
        if let Event::Ask(a) = &mut self {
            clip(&mut a.host, MAX_HOST);
            clip(&mut a.rule, MAX_TEXT);
        }
        let mut line = serde_json::to_vec(&self).unwrap_or_default();
        line.push(b'\n');
        debug_assert!(line.len() <= MAX_LINE);
        line
    }

    /// Parses one line (without or with its newline), as the supervisor
    /// does.
    pub fn parse(line: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// Why the sink stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Broken {
    /// EPIPE: the supervisor is gone.
    Gone,
}

/// The proxy's end of the events pipe: non-blocking writes of whole lines;
/// an event that finds the pipe full is dropped and counted.
#[derive(Debug)]
pub struct Sink {
    fd: OwnedFd,
    dropped: u64,
    broken: bool,
}

impl Sink {
    /// Takes the write end and makes it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Sink> {
        let raw = fd.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own, integer arguments.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Sink {
            fd,
            dropped: 0,
            broken: false,
        })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Events lost so far to a full pipe and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes `event`, after a `dropped` event if some were lost. `Err`
    /// once the pipe is broken.
    pub fn emit(&mut self, event: Event) -> Result<(), Broken> {
        if self.broken {
            return Err(Broken::Gone);
        }
        if self.dropped > 0 {
            let count = self.dropped;
            match self.write(&Event::Dropped(Dropped { count }).line())? {
                true => self.dropped = 0,
                false => {
                    self.dropped += 1;
                    return Ok(());
                }
            }
        }
        if !self.write(&event.line())? {
            self.dropped += 1;
        }
        Ok(())
    }

    /// Writes `event` now or not at all (after a `dropped` event if some
    /// were lost): true when it went out. For an event something waits on.
    pub fn try_emit(&mut self, event: Event) -> bool {
        if self.broken {
            return false;
        }
        if self.dropped > 0 {
            let count = self.dropped;
            match self.write(&Event::Dropped(Dropped { count }).line()) {
                Ok(true) => self.dropped = 0,
                _ => return false,
            }
        }
        self.write(&event.line()).unwrap_or(false)
    }

    /// One `write`: `Ok(true)` written, `Ok(false)` the pipe is full.
    fn write(&mut self, line: &[u8]) -> Result<bool, Broken> {
        loop {
            // SAFETY: a valid buffer of `line.len()` bytes; the fd is ours.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), line.as_ptr().cast(), line.len()) };
            if n >= 0 {
                // A pipe writes up to PIPE_BUF bytes whole or not at all.
                return Ok(true);
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(false),
                _ => {
                    self.broken = true;
                    return Err(Broken::Gone);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    fn conn() -> Connection {
        Connection {
            host: "api.example.com".into(),
            port: Some(443),
            address: Some("93.184.216.34".parse().unwrap()),
            via: Via::Proxy,
            verdict: Verdict::Allowed,
            rule: Some("api.example.com".into()),
            reason: None,
            bytes_out: 517,
            bytes_in: 4096,
            duration_ms: 12,
        }
    }

    #[test]
    fn json_shape_and_round_trip() {
        let line = Event::Connection(conn()).line();
        let text = std::str::from_utf8(&line).unwrap();
        assert_eq!(
            text,
            "{\"event\":\"connection\",\"host\":\"api.example.com\",\"port\":443,\"address\":\"93.184.216.34\",\"via\":\"proxy\",\"verdict\":\"allowed\",\"rule\":\"api.example.com\",\"reason\":null,\"bytes_out\":517,\"bytes_in\":4096,\"duration_ms\":12}\n"
        );
        assert_eq!(Event::parse(&line).unwrap(), Event::Connection(conn()));
        let b = Event::Budget(BudgetEvent {
            which: Which::BytesOut,
            limit: 100,
            used: 100,
            action: Action::Stop,
        });
        assert_eq!(
            std::str::from_utf8(&b.clone().line()).unwrap(),
            "{\"event\":\"budget\",\"which\":\"bytes_out\",\"limit\":100,\"used\":100,\"action\":\"stop\"}\n"
        );
        assert_eq!(Event::parse(&b.clone().line()).unwrap(), b);
        let d = Event::Dropped(Dropped { count: 3 });
        assert_eq!(Event::parse(&d.clone().line()).unwrap(), d);
        // Unknown fields and events are errors.
        assert!(Event::parse(b"{\"event\":\"dropped\",\"count\":1,\"x\":2}").is_err());
        assert!(Event::parse(b"{\"event\":\"nope\"}").is_err());
    }

    #[test]
    fn long_fields_are_cut() {
        let mut c = conn();
        c.host = "h".repeat(10_000);
        c.reason = Some("é".repeat(5000));
        c.rule = Some("r".repeat(5000));
        let line = Event::Connection(c).line();
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        let Event::Connection(back) = Event::parse(&line).unwrap() else {
            panic!()
        };
        assert_eq!(back.host.len(), MAX_HOST);
        assert!(back.reason.unwrap().ends_with("..."));
    }

    fn pipe() -> (std::fs::File, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: fds is an array of two ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh descriptors owned by nothing else.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                OwnedFd::from_raw_fd(fds[1]),
            )
        }
    }

    #[test]
    fn full_pipe_drops_and_counts_broken_pipe_errs() {
        let (mut r, w) = pipe();
        let mut sink = Sink::new(w).unwrap();
        let mut emitted = 0u64;
        while sink.dropped() == 0 {
            sink.emit(Event::Connection(conn())).unwrap();
            emitted += 1;
            assert!(emitted < 100_000);
        }
        for _ in 0..5 {
            sink.emit(Event::Connection(conn())).unwrap();
            emitted += 1;
        }
        assert!(sink.dropped() > 0);
        // Drain; the next event goes out after a `dropped` record, and
        // every event is accounted for: written, or counted in one.
        let mut all = Vec::new();
        let mut buf = vec![0u8; 65536];
        let drain = |r: &mut std::fs::File, all: &mut Vec<u8>, buf: &mut [u8]| {
            // SAFETY: F_SETFL with an integer argument on our pipe.
            unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
            while let Ok(n) = r.read(buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
        };
        drain(&mut r, &mut all, &mut buf);
        sink.emit(Event::Connection(conn())).unwrap();
        emitted += 1;
        assert_eq!(sink.dropped(), 0);
        drain(&mut r, &mut all, &mut buf);
        let (mut written, mut counted) = (0u64, 0u64);
        for line in all.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match Event::parse(line).unwrap() {
                Event::Connection(_) => written += 1,
                Event::Dropped(d) => counted += d.count,
                e => panic!("{e:?}"),
            }
        }
        assert!(counted > 0);
        assert_eq!(written + counted, emitted);
        drop(r);
        assert_eq!(sink.emit(Event::Connection(conn())), Err(Broken::Gone));
        assert_eq!(sink.emit(Event::Connection(conn())), Err(Broken::Gone));
    }
}
