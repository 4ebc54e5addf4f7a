//! One connection from the agent, from accept to its record: the two front
//! doors (the HTTP proxy and the transparent listeners) share one decision
//! path, [`admit`], and one way out, [`dial`] then the relay.
//!
//! Order for each connection: name and port → policy (`deny` wins) → IP
//! literals only when pinned → budget → the address (the pin, or our own
//! resolution and the public-address check) → on TLS ports the
//! ClientHello's server name, on HTTP ports the `Host` header, must be the
//! admitted host → dial exactly the checked address → relay.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::budget::Dir;
use super::events::{Connection, Event, Verdict, Via};
use super::http::{self, Head, Target};
use super::relay::{self, End, Meter};
use super::sni::{self, Hello};
use super::State;
use crate::plan::egress::Admission;

/// A connection's record: written once, when it is dropped, so every path
/// out of a handler (including an early return or a cancelled task)
/// leaves one `connection` event.
pub(crate) struct Record {
    st: Rc<State>,
    start: Instant,
    pub c: Connection,
    /// The relay's byte counters (out, in), once it runs.
    counters: Option<(Counter, Counter)>,
    /// Handed to a secret route, which records each request instead.
    muted: bool,
    /// The client's port inside the sandbox (for `network.ask`).
    pub peer_port: Option<u16>,
}

/// A byte count the relay keeps and the record reads.
type Counter = Rc<std::cell::Cell<u64>>;

impl Record {
    pub fn new(st: &Rc<State>, via: Via) -> Record {
        Record {
            st: st.clone(),
            start: Instant::now(),
            c: Connection {
                host: String::new(),
                port: None,
                address: None,
                via,
                // Allowed only once the policy said so.
                verdict: Verdict::Refused,
                rule: None,
                reason: None,
                bytes_out: 0,
                bytes_in: 0,
                duration_ms: 0,
            },
            counters: None,
            muted: false,
            peer_port: None,
        }
    }

    pub fn refuse(&mut self, reason: impl Into<String>) {
        self.c.verdict = Verdict::Refused;
        self.c.reason = Some(reason.into());
    }

    /// Admitted, but it ended early or failed.
    pub fn ended(&mut self, reason: impl Into<String>) {
        self.c.reason = Some(reason.into());
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if self.muted {
            return;
        }
        if let Some((out, inn)) = &self.counters {
            self.c.bytes_out = out.get();
            self.c.bytes_in = inn.get();
        }
        self.c.duration_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.st.emit(Event::Connection(self.c.clone()));
    }
}

/// Why a connection isn't going anywhere: the HTTP status for the proxy
/// door and the words for the client and the record.
pub(crate) struct Refusal {
    pub status: u16,
    pub text: String,
    /// `Allowed` when the policy admitted it and something after failed.
    pub verdict: Verdict,
}

impl Refusal {
    fn policy(status: u16, text: String) -> Refusal {
        Refusal {
            status,
            text,
            verdict: Verdict::Refused,
        }
    }

    fn failed(status: u16, text: String) -> Refusal {
        Refusal {
            status,
            text,
            verdict: Verdict::Allowed,
        }
    }

    fn record(&self, rec: &mut Record) {
        rec.c.verdict = self.verdict;
        rec.c.reason = Some(self.text.clone());
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The policy decision and the addresses to try, in order.
pub(crate) async fn admit(
    st: &State,
    rec: &mut Record,
    host: &str,
    port: u16,
) -> Result<Vec<IpAddr>, Refusal> {
    match st.policy.admit(host, port) {
        Admission::Allowed(rule) => {
            rec.c.rule = Some(rule);
        }
        Admission::Denied(rule) => {
            rec.c.rule = Some(rule.clone());
            return Err(Refusal::policy(
                403,
                format!("{host}:{port} is denied by `{rule}`"),
            ));
        }
        Admission::NotAllowed => match super::ask::check(st, host, port, rec.peer_port).await {
            Some((rule, answer)) => {
                rec.c.rule = Some(rule);
                answer.map_err(|why| Refusal::policy(403, why))?;
            }
            None => {
                return Err(Refusal::policy(
                    403,
                    format!("{host}:{port} is not in allow"),
                ))
            }
        },
    }
    let pinned = st.policy.pinned(host);
    if host.parse::<IpAddr>().is_ok() && pinned.is_none() {
        return Err(Refusal::policy(
            403,
            format!(
                "{host} is an IP address, not a name: only addresses pinned in hosts are reachable"
            ),
        ));
    }
    let budget = st.budgets.borrow_mut().admit(Instant::now());
    if let Err(e) = budget {
        st.budget_refused(e);
        return Err(Refusal::policy(429, e.describe()));
    }
    if let Some(ip) = pinned {
        return Ok(vec![ip]);
    }
    let addrs = match st.resolver.lookup(host).await {
        Ok(a) => a,
        Err(e) => return Err(Refusal::failed(502, format!("{host}: {e}"))),
    };
    super::addr::public_only(addrs, host).map_err(|(ip, why)| {
        rec.c.address = Some(ip);
        Refusal::policy(403, why)
    })
}

/// Connects to the first of `addrs` that answers, with TCP_NODELAY.
pub(crate) async fn dial(
    st: &State,
    rec: &mut Record,
    addrs: &[IpAddr],
    port: u16,
) -> Result<TcpStream, Refusal> {
    connect_first(st, addrs, port, |ip| rec.c.address = Some(ip))
        .await
        .map(|(s, _)| s)
        .map_err(|last| Refusal::failed(502, last))
}

/// Connects to the first of `addrs` that answers within the connect
/// timeout, with TCP_NODELAY; `trying` is told each address first (the
/// record names the last one tried). `Err`: why the last one failed.
pub(crate) async fn connect_first(
    st: &State,
    addrs: &[IpAddr],
    port: u16,
    mut trying: impl FnMut(IpAddr),
) -> Result<(TcpStream, IpAddr), String> {
    let mut last = String::from("no address");
    for &ip in addrs {
        trying(ip);
        match tokio::time::timeout(
            st.limits.connect_timeout,
            TcpStream::connect(SocketAddr::new(ip, port)),
        )
        .await
        {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, ip));
            }
            Ok(Err(e)) => last = format!("connecting to {ip}:{port}: {e}"),
            Err(_) => last = format!("connecting to {ip}:{port}: timed out"),
        }
    }
    Err(last)
}

/// Reads from `client` into `buf` until `parse` decides, within the head
/// timeout and `max` bytes.
async fn read_until<T>(
    st: &State,
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
    what: &str,
    parse: impl Fn(&[u8]) -> Result<Option<T>, &'static str>,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + st.limits.head_timeout;
    loop {
        match parse(buf) {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => {}
            Err(why) => return Err(why.to_string()),
        }
        if buf.len() >= max {
            return Err(format!("{what} too long"));
        }
        let old = buf.len();
        buf.resize(max, 0);
        let read = tokio::time::timeout_at(deadline, client.read(&mut buf[old..])).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                buf.truncate(old);
                return Err(format!("reading the {what}: {e}"));
            }
            Err(_) => {
                buf.truncate(old);
                return Err(format!(
                    "no complete {what} within {:?}",
                    st.limits.head_timeout
                ));
            }
        };
        buf.truncate(old + n);
        if n == 0 {
            return Err(format!("the client closed before a complete {what}"));
        }
    }
}

async fn read_head(
    st: &State,
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<http::Request, String> {
    read_until(
        st,
        client,
        buf,
        http::MAX_HEAD,
        "request head",
        |b| match http::parse(b) {
            Head::Complete(r) => Ok(Some(r)),
            Head::Incomplete => Ok(None),
            Head::Invalid(why) => Err(why),
        },
    )
    .await
}

/// What the first bytes of a tunnel must show on this port.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Tls,
    Http,
    None,
}

fn check_for(st: &State, port: u16) -> Check {
    if st.limits.tls_ports.contains(&port) {
        Check::Tls
    } else if st.limits.http_ports.contains(&port) {
        Check::Http
    } else {
        Check::None
    }
}

/// Reads the ClientHello or request head at the start of a tunnel into
/// `buf` (which may hold some already) and checks it names `host`.
async fn check_first_bytes(
    st: &State,
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    host: &str,
    check: Check,
) -> Result<(), String> {
    match check {
        Check::None => Ok(()),
        Check::Tls => {
            let name = read_until(
                st,
                client,
                buf,
                sni::MAX_HELLO + 1024,
                "TLS ClientHello",
                |b| match sni::parse(b) {
                    Hello::Complete(n) => Ok(Some(n)),
                    Hello::Incomplete => Ok(None),
                    Hello::Invalid(why) => Err(why),
                },
            )
            .await?;
            match name {
                Some(n) if n == host => Ok(()),
                Some(n) => Err(format!(
                    "TLS server name {n} is not the admitted host {host}"
                )),
                // An IP literal can't be a server name (RFC 6066): a pinned
                // literal is reached without one.
                None if host.parse::<IpAddr>().is_ok() => Ok(()),
                None => Err(format!(
                    "TLS ClientHello without a server name (admitted host {host})"
                )),
            }
        }
        Check::Http => {
            let req = read_head(st, client, buf).await?;
            match req.host {
                Some(h) if h == host => Ok(()),
                Some(h) => Err(format!("Host header {h} is not the admitted host {host}")),
                None => Err(format!(
                    "request without a Host header (admitted host {host})"
                )),
            }
        }
    }
}

/// Relays and writes the outcome into the record.
async fn relay_and_record(
    st: &State,
    rec: &mut Record,
    client: TcpStream,
    upstream: TcpStream,
    first: &[u8],
) {
    let meter = Meter::new(&st.budgets);
    rec.counters = Some((meter.bytes_out.clone(), meter.bytes_in.clone()));
    let end = match relay::forward(&upstream, first, Dir::Out, &meter).await {
        Ok(()) => relay::relay(&client, &upstream, &meter, st.limits.idle_timeout).await,
        Err(e) => e,
    };
    match end {
        End::Done => {}
        End::Idle => {
            rec.ended("closed: nothing moved for the idle time (shorter once one side has closed)")
        }
        End::Budget(e) => {
            st.budget_refused(e);
            rec.ended(format!("closed: {}", e.describe()));
        }
        End::Error(e) => rec.ended(format!("closed: {e}")),
    }
}

async fn reply(client: &mut TcpStream, status: u16, text: &str) {
    let body = format!("confine: {text}\n");
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.write_all(&http::response(status, status_text(status), &body)),
    )
    .await;
    let _ = client.shutdown().await;
}

/// A connection to the HTTP proxy port.
pub(crate) async fn proxy_conn(st: Rc<State>, mut client: TcpStream, peer_port: u16) {
    let mut rec = Record::new(&st, Via::Proxy);
    rec.peer_port = Some(peer_port);
    let _ = client.set_nodelay(true);
    let mut buf = Vec::new();
    let req = match read_head(&st, &mut client, &mut buf).await {
        Ok(r) => r,
        Err(why) => {
            rec.refuse(format!("bad request: {why}"));
            reply(&mut client, 400, &format!("bad request: {why}")).await;
            return;
        }
    };
    if super::route::takes(&st, &req) {
        rec.muted = true;
        return super::route::serve(st, client, buf).await;
    }
    let early = buf.split_off(req.head_len.min(buf.len()));
    match &req.target {
        Target::Connect { host, port } => connect(&st, &mut rec, client, host, *port, early).await,
        Target::Absolute { host, port, path } => {
            rec.c.host = host.clone();
            rec.c.port = Some(*port);
            if let Some(h) = req.host.as_deref().filter(|h| h != host) {
                let r =
                    Refusal::policy(403, format!("Host header {h} is not the URL's host {host}"));
                r.record(&mut rec);
                return reply(&mut client, r.status, &r.text).await;
            }
            let upstream = match admit_and_dial(&st, &mut rec, host, *port).await {
                Ok(u) => u,
                Err(r) => {
                    r.record(&mut rec);
                    return reply(&mut client, r.status, &r.text).await;
                }
            };
            let authority = if *port == 80 {
                host.clone()
            } else {
                format!("{host}:{port}")
            };
            let mut first = http::origin_form(&req, path, &authority);
            first.extend_from_slice(&early);
            relay_and_record(&st, &mut rec, client, upstream, &first).await;
        }
        Target::Origin => {
            let why = "not a proxy request (use CONNECT or an absolute http:// URL)";
            rec.c.host = req.host.clone().unwrap_or_default();
            rec.refuse(why);
            reply(&mut client, 400, why).await;
        }
    }
}

async fn admit_and_dial(
    st: &State,
    rec: &mut Record,
    host: &str,
    port: u16,
) -> Result<TcpStream, Refusal> {
    let addrs = admit(st, rec, host, port).await?;
    rec.c.verdict = Verdict::Allowed;
    dial(st, rec, &addrs, port).await
}

async fn connect(
    st: &State,
    rec: &mut Record,
    mut client: TcpStream,
    host: &str,
    port: u16,
    mut buf: Vec<u8>,
) {
    rec.c.host = host.to_string();
    rec.c.port = Some(port);
    let addrs = match admit(st, rec, host, port).await {
        Ok(a) => a,
        Err(r) => {
            r.record(rec);
            return reply(&mut client, r.status, &r.text).await;
        }
    };
    rec.c.verdict = Verdict::Allowed;
    const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let check = check_for(st, port);
    let upstream = if check == Check::None {
        // Dial first, so a failure is still an HTTP answer.
        let up = match dial(st, rec, &addrs, port).await {
            Ok(u) => u,
            Err(r) => {
                r.record(rec);
                return reply(&mut client, r.status, &r.text).await;
            }
        };
        if client.write_all(ESTABLISHED).await.is_err() {
            return rec.ended("the client went away");
        }
        up
    } else {
        // The ClientHello or request comes only after our 200; a refusal
        // then can only close the tunnel.
        if client.write_all(ESTABLISHED).await.is_err() {
            return rec.ended("the client went away");
        }
        if let Err(why) = check_first_bytes(st, &mut client, &mut buf, host, check).await {
            return rec.refuse(why);
        }
        match dial(st, rec, &addrs, port).await {
            Ok(u) => u,
            Err(r) => return r.record(rec),
        }
    };
    relay_and_record(st, rec, client, upstream, &buf).await;
}

/// A connection to a transparent listener: its local address is a fake
/// address (and the port), which names the host.
pub(crate) async fn transparent_conn(st: Rc<State>, mut client: TcpStream, peer_port: u16) {
    let mut rec = Record::new(&st, Via::Transparent);
    rec.peer_port = Some(peer_port);
    let _ = client.set_nodelay(true);
    let local = match client.local_addr() {
        Ok(a) => a,
        Err(e) => return rec.refuse(format!("no local address: {e}")),
    };
    rec.c.port = Some(local.port());
    let name = match local.ip() {
        IpAddr::V4(v4) => st.fake.borrow().name(v4).map(str::to_string),
        IpAddr::V6(_) => None,
    };
    let Some(host) = name else {
        rec.c.host = local.ip().to_string();
        return rec.refuse(format!(
            "{} is not an address the DNS stub handed out",
            local.ip()
        ));
    };
    rec.c.host = host.clone();
    let port = local.port();
    let addrs = match admit(&st, &mut rec, &host, port).await {
        Ok(a) => a,
        Err(r) => return r.record(&mut rec),
    };
    rec.c.verdict = Verdict::Allowed;
    let mut buf = Vec::new();
    if let Err(why) =
        check_first_bytes(&st, &mut client, &mut buf, &host, check_for(&st, port)).await
    {
        return rec.refuse(why);
    }
    let upstream = match dial(&st, &mut rec, &addrs, port).await {
        Ok(u) => u,
        Err(r) => return r.record(&mut rec),
    };
    relay_and_record(&st, &mut rec, client, upstream, &buf).await;
}

/// Beyond the connection limit: answer at once without waiting on the
/// client, and record it.
pub(crate) fn too_many(st: &Rc<State>, client: TcpStream, via: Via) {
    let mut rec = Record::new(st, via);
    if let Ok(local) = client.local_addr() {
        rec.c.port = Some(local.port());
        if let IpAddr::V4(v4) = local.ip() {
            rec.c.host = st.fake.borrow().name(v4).unwrap_or_default().to_string();
        }
    }
    let why = format!(
        "too many connections at once ({})",
        st.limits.max_connections
    );
    if via == Via::Proxy {
        let _ = client.try_write(&http::response(
            503,
            status_text(503),
            &format!("confine: {why}\n"),
        ));
        rec.c.port = None;
    }
    rec.refuse(why);
}
