//! Secret routes (DESIGN.md §10): plain-HTTP requests on the proxy's port
//! whose path starts with `/NAME/` (origin form, any `Host`; or absolute
//! form `http://127.0.0.1:3128/NAME/...`) are forwarded to that secret's
//! upstream only, over TLS verified against the launcher's CA bundle, with
//! the route prefix replaced by the upstream's path, `Host` rewritten,
//! every credential header the agent sent removed and the real one added.
//! Responses stream back frame by frame (server-sent events included);
//! their usage fields are read on the way ([`super::usage`]) for the
//! route's limits and `usage` records. Both ways, heads and bodies count
//! against `network.budget`'s byte budgets, bounded as the relay bounds
//! its reads (DESIGN-NOTES note 49).
//!
//! The upstream is reachable through its route only: it isn't in
//! `network.allow`, so a CONNECT to it is refused, and a placeholder sent
//! anywhere else stays a placeholder (tunnels are never opened).
//!
//! HTTP/1 on both sides with hyper (keep-alive both ways, bounded heads,
//! bodies streamed); one upstream connection per agent connection, kept
//! while the agent keeps using the same route.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::budget::{Dir, Exhausted};
use super::events::{Action, Event, LimitEvent, RouteRequest, Usage, Verdict, Via};
use super::http::{self, Target};
use super::usage::{self, Counter, Reached, Spent, Which};
use super::State;
use crate::profile::secrets::Provider;
use crate::sandbox::secrets::Secret;

/// The proxy's own port inside the sandbox (`plan::secrets::ROUTE_BASE`).
const PORT: u16 = 3128;
/// Largest request or response head, and the read buffer, each side.
const MAX_BUF: usize = 64 * 1024;
/// Requests in flight at once on a route with a spend limit (`tokens`,
/// `tokens_per_hour`, `cost`): limits are checked as a request is
/// admitted, before any of its usage is known, so this many responses is
/// the most a limit can be passed by. More wait for a slot (in the order
/// the proxy wakes them), rather than being refused.
pub const MAX_IN_FLIGHT: usize = 8;
/// Headers in a request or response head, at most.
const MAX_HEADERS: usize = 100;

/// One secret's route, without its value: what the proxy needs of the
/// plan's `Route` (handed over to the proxy's program as JSON).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RouteSpec {
    pub name: String,
    pub provider: Option<Provider>,
    pub upstream_host: String,
    pub upstream_port: u16,
    pub upstream_path: String,
    /// The credential header's name (lower case), and the text before and
    /// after the value.
    pub header: (String, String, String),
    pub limits: Option<usage::Limits>,
}

impl RouteSpec {
    pub fn from_plan(r: &crate::plan::secrets::Route) -> RouteSpec {
        RouteSpec {
            name: r.name.clone(),
            provider: r.provider,
            upstream_host: r.upstream_host.clone(),
            upstream_port: r.upstream_port,
            upstream_path: r.upstream_path.clone(),
            header: (
                r.header.name.clone(),
                r.header.prefix.clone(),
                r.header.suffix.clone(),
            ),
            limits: r.limits.as_ref().map(usage::Limits::from_plan),
        }
    }
}

/// One secret's route and its value.
pub struct RouteSetup {
    pub route: RouteSpec,
    pub secret: Secret,
}

/// The routes the proxy serves, built before it confines itself.
pub struct Routes {
    list: Vec<Route>,
    tls: tokio_rustls::TlsConnector,
}

struct Route {
    plan: RouteSpec,
    header: HeaderName,
    /// The credential header's whole value, built once; marked sensitive.
    credential: HeaderValue,
    counter: RefCell<Counter>,
    /// `on_exhausted: stop` was reached: every request is refused.
    stopped: Cell<bool>,
    /// The limits already reported (a `limit` event once each).
    reported: RefCell<Vec<Which>>,
    /// Requests admitted whose response hasn't ended ([`Slot`]), and the
    /// wake-up of one waiting for a slot.
    in_flight: Cell<usize>,
    freed: tokio::sync::Notify,
}

impl Routes {
    /// The routes of `setups`, trusting the certificates in `ca_pem`.
    /// Each value becomes its header's value here and the [`Secret`] is
    /// dropped (zeroed).
    ///
    /// # Errors
    /// The CA bundle has no certificate; a header can't hold a value.
    pub fn new(setups: Vec<RouteSetup>, ca_pem: &[u8]) -> Result<Routes, String> {
        let tls = tokio_rustls::TlsConnector::from(super::tls::client_config(ca_pem)?);
        let mut list = Vec::new();
        for s in setups {
            let (name, prefix, suffix) = &s.route.header;
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("secret {}: bad header name {name}", s.route.name))?;
            let mut v = Vec::with_capacity(prefix.len() + s.secret.expose().len() + suffix.len());
            v.extend_from_slice(prefix.as_bytes());
            v.extend_from_slice(s.secret.expose());
            v.extend_from_slice(suffix.as_bytes());
            let credential = HeaderValue::from_bytes(&v);
            wipe(&mut v);
            let mut credential = credential.map_err(|_| {
                format!(
                    "secret {}: the value can't be sent in an HTTP header",
                    s.route.name
                )
            })?;
            credential.set_sensitive(true);
            list.push(Route {
                plan: s.route,
                header,
                credential,
                counter: RefCell::new(Counter::default()),
                stopped: Cell::new(false),
                reported: RefCell::new(Vec::new()),
                in_flight: Cell::new(0),
                freed: tokio::sync::Notify::new(),
            });
        }
        Ok(Routes { list, tls })
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|r| r.plan.name == name)
    }

    fn names(&self) -> String {
        self.list
            .iter()
            .map(|r| format!("/{}", r.plan.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn wipe(v: &mut [u8]) {
    for b in v.iter_mut() {
        // SAFETY: a valid, exclusive reference to a byte.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// True when `req`, the first request on a connection to the proxy's port,
/// is for a route: origin form, or absolute form naming the proxy itself.
pub(crate) fn takes(st: &State, req: &http::Request) -> bool {
    if st.routes.is_none() {
        return false;
    }
    match &req.target {
        Target::Origin => true,
        Target::Absolute { host, port, .. } => is_self(host, *port),
        Target::Connect { .. } => false,
    }
}

fn is_self(host: &str, port: u16) -> bool {
    port == PORT && (host == "127.0.0.1" || host.eq_ignore_ascii_case("localhost"))
}

/// The agent's connection with what was read of it already in front.
struct Prefixed {
    pre: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.pre.len() {
            let n = (this.pre.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.pre[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.pre.len() {
                this.pre = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The body of a request sent upstream: the agent's, counted.
type UpBody = Counted;
/// What ends a body early: hyper's error, or a byte budget used up.
type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of a response to the agent (not `Send`: the proxy has one
/// thread, and the body holds its state).
type Out = Pin<Box<dyn Body<Data = Bytes, Error = BoxError>>>;

/// One agent connection serving routes.
struct Conn {
    st: Rc<State>,
    /// The upstream connection of the last request: its route, sender and
    /// address.
    upstream: RefCell<Option<(usize, SendRequest<UpBody>, IpAddr)>>,
}

/// Serves route requests on `client` until it closes; `buf` holds what was
/// read of it already (the first request's head, and maybe more).
pub(crate) async fn serve(st: Rc<State>, client: TcpStream, buf: Vec<u8>) {
    let head_timeout = st.limits.head_timeout;
    let conn = Rc::new(Conn {
        st,
        upstream: RefCell::new(None),
    });
    let svc = hyper::service::service_fn(move |req| {
        let c = conn.clone();
        async move { Ok::<_, Infallible>(handle(c, req).await) }
    });
    let io = TokioIo::new(Prefixed {
        pre: buf,
        pos: 0,
        inner: client,
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_BUF)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let _ = b.serve_connection(io, svc).await;
}

/// Splits `/NAME/REST` into `NAME` and `/REST` (`/NAME` alone: an empty
/// rest).
fn split_route(path: &str) -> (&str, &str) {
    let p = path.strip_prefix('/').unwrap_or(path);
    match p.find('/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, ""),
    }
}

/// The upstream's request target: its path, then the rest after the route,
/// then the query.
fn upstream_target(base: &str, rest: &str, query: Option<&str>) -> String {
    let mut t = format!("{base}{rest}");
    if t.is_empty() {
        t.push('/');
    }
    if let Some(q) = query {
        t.push('?');
        t.push_str(q);
    }
    t
}

/// `query` without the parameters named `name`.
fn without_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|p| p.split('=').next() != Some(name))
        .collect::<Vec<_>>()
        .join("&")
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded either way.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Credential headers the agent may send; all are dropped, whatever they
/// hold, and the route's own header is set by the proxy alone.
const AUTH: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
];

/// Removes hop-by-hop headers, and those the `Connection` header names.
fn strip_hop(h: &mut HeaderMap) {
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for n in HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        h.remove(n);
    }
}

/// The headers sent upstream: the agent's, without hop-by-hop or
/// credential headers, `Host` the upstream's, no compression (the usage
/// fields must be readable), and the credential.
fn upstream_headers(agent: &HeaderMap, route: &Route) -> HeaderMap {
    let mut h = agent.clone();
    strip_hop(&mut h);
    for n in AUTH {
        h.remove(*n);
    }
    h.remove(&route.header);
    h.remove(header::HOST);
    h.remove(header::EXPECT);
    h.remove(header::ACCEPT_ENCODING);
    let p = &route.plan;
    let authority = if p.upstream_port == 443 {
        p.upstream_host.clone()
    } else {
        format!("{}:{}", p.upstream_host, p.upstream_port)
    };
    if let Ok(v) = HeaderValue::from_str(&authority) {
        h.insert(header::HOST, v);
    }
    h.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    h.insert(route.header.clone(), route.credential.clone());
    h
}

/// A whole body the proxy writes itself.
fn full(text: String) -> Out {
    Box::pin(Full::new(Bytes::from(text)).map_err(|never| match never {}))
}

/// A `confine: ...` answer in plain text.
fn plain(status: u16, text: &str) -> Response<Out> {
    let mut r = Response::new(full(format!("confine: {text}\n")));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A 429 in the provider's own error shape, so its SDK reports it as a
/// rate limit, naming confine's rule. A limit that won't pass by waiting
/// says so (`x-should-retry: false`, which the Anthropic and OpenAI SDKs
/// honour); the per-minute one says when to retry.
fn rate_limited(provider: Option<Provider>, text: &str, per_minute: bool) -> Response<Out> {
    let message = format!("confine: {text}");
    let body = match provider {
        Some(Provider::Anthropic) => serde_json::json!({
            "type": "error",
            "error": {"type": "rate_limit_error", "message": message},
        }),
        Some(Provider::Openai) => serde_json::json!({
            "error": {
                "message": message,
                "type": if per_minute { "requests" } else { "tokens" },
                "param": null,
                "code": "rate_limit_exceeded",
            },
        }),
        Some(Provider::Gemini) => serde_json::json!({
            "error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"},
        }),
        Some(Provider::Github) | None => serde_json::json!({"message": message}),
    };
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if per_minute {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    } else {
        h.insert("x-should-retry", HeaderValue::from_static("false"));
    }
    r
}

/// One request's record: a `connection`-style `request` event written
/// when it is dropped (the response's end, an error, the agent leaving).
struct ReqRecord {
    st: Rc<State>,
    start: Instant,
    r: RouteRequest,
    out: Rc<Cell<u64>>,
}

impl ReqRecord {
    fn new(st: &Rc<State>, route: Option<&Route>, method: &str) -> ReqRecord {
        let (host, port, name) = match route {
            Some(r) => (
                r.plan.upstream_host.clone(),
                Some(r.plan.upstream_port),
                r.plan.name.clone(),
            ),
            None => (String::new(), None, String::new()),
        };
        ReqRecord {
            st: st.clone(),
            start: Instant::now(),
            r: RouteRequest {
                host,
                port,
                address: None,
                via: Via::Route,
                verdict: Verdict::Refused,
                rule: route.map(|r| format!("secrets.{}", r.plan.name)),
                reason: None,
                route: name,
                method: method.to_string(),
                status: None,
                bytes_out: 0,
                bytes_in: 0,
                duration_ms: 0,
            },
            out: Rc::new(Cell::new(0)),
        }
    }

    /// Answered by the proxy itself.
    fn answered(&mut self, status: u16, why: &str) {
        self.r.status = Some(status);
        self.r.reason = Some(why.to_string());
    }
}

impl Drop for ReqRecord {
    fn drop(&mut self) {
        self.r.bytes_out = self.out.get();
        self.r.duration_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.st.emit(Event::Request(self.r.clone()));
    }
}

async fn handle(conn: Rc<Conn>, req: Request<Incoming>) -> Response<Out> {
    let st = conn.st.clone();
    let Some(routes) = st.routes.as_ref() else {
        return plain(500, "no secret routes");
    };
    let method = req.method().as_str().to_string();
    if let Some(a) = req.uri().authority() {
        if !is_self(a.host(), a.port_u16().unwrap_or(80)) {
            let why = format!(
                "{} is not a secret route: this connection carries routes only (reach other hosts through a new proxy connection)",
                a.host()
            );
            let mut rec = ReqRecord::new(&st, None, &method);
            rec.r.host = a.host().chars().take(255).collect();
            rec.answered(400, &why);
            return plain(400, &why);
        }
    }
    let (name, rest) = split_route(req.uri().path());
    let Some(i) = routes.find(name) else {
        let why = format!(
            "no secret route /{} here (the routes are {})",
            name.chars().take(64).collect::<String>(),
            routes.names()
        );
        let mut rec = ReqRecord::new(&st, None, &method);
        rec.answered(404, &why);
        return plain(404, &why);
    };
    let route = &routes.list[i];
    let limits = route.plan.limits.as_ref();
    // A slot before anything is checked, so the checks see what the
    // responses that ended meanwhile spent.
    let slot = match limits.filter(|l| l.counts_spend()) {
        Some(_) => Some(Slot::take(&st, i).await),
        None => None,
    };
    let mut rec = ReqRecord::new(&st, Some(route), &method);
    if route.stopped.get() {
        let why = format!(
            "secrets.{}: a limit with on_exhausted: stop was reached; the sandbox is being stopped",
            route.plan.name
        );
        rec.answered(429, &why);
        return rate_limited(route.plan.provider, &why, false);
    }
    // `network.budget`'s bytes: the request's head and declared body must
    // fit before anything else is done for it (checked again, and the head
    // counted, right before it is sent).
    let head_out = request_head_len(&req);
    let declared = req.body().size_hint().exact().unwrap_or(0);
    if let Err((e, why)) = fits(&st, Dir::Out, head_out.saturating_add(declared)) {
        st.budget_refused(e);
        rec.answered(429, &why);
        return rate_limited(route.plan.provider, &why, false);
    }
    let admitted = route.counter.borrow_mut().admit(limits, Instant::now());
    if let Err(r) = admitted {
        let why = r.describe(&route.plan.name);
        limit_reached(&st, route, r);
        rec.answered(429, &why);
        return rate_limited(
            route.plan.provider,
            &why,
            r.which == Which::RequestsPerMinute,
        );
    }
    rec.r.verdict = Verdict::Allowed;

    // Gemini also takes its key as `?key=`: the agent's placeholder there
    // would be sent next to the real header.
    let query = match route.plan.provider {
        Some(Provider::Gemini) => req.uri().query().map(|q| without_param(q, "key")),
        _ => req.uri().query().map(str::to_string),
    };
    let target = upstream_target(
        &route.plan.upstream_path,
        rest,
        query.as_deref().filter(|q| !q.is_empty()),
    );
    let headers = upstream_headers(req.headers(), route);
    let (parts, body) = req.into_parts();
    let over = Rc::new(Cell::new(None));
    let mut up = Request::new(Counted {
        inner: body,
        st: st.clone(),
        count: rec.out.clone(),
        over: over.clone(),
    });
    *up.method_mut() = parts.method;
    *up.uri_mut() = match target.parse() {
        Ok(u) => u,
        Err(_) => {
            let why = "the request's path can't be sent upstream";
            rec.answered(400, why);
            return plain(400, why);
        }
    };
    *up.headers_mut() = headers;

    let (mut sender, addr) = match conn.sender(i, route, &mut rec.r.address).await {
        Ok(s) => s,
        Err((status, why)) => {
            let why = format!("secret route /{}: {why}", route.plan.name);
            rec.answered(status, &why);
            return plain(status, &why);
        }
    };
    rec.r.address = Some(addr);
    // Checked and counted with no await in between, as the relay does.
    if let Err((e, why)) = fits(&st, Dir::Out, head_out.saturating_add(declared)) {
        st.budget_refused(e);
        rec.answered(429, &why);
        return rate_limited(route.plan.provider, &why, false);
    }
    st.budgets.borrow_mut().add(Dir::Out, head_out);
    rec.out.set(rec.out.get().saturating_add(head_out));
    // From here the upstream may spend on the request: if the agent goes
    // away before the answer's head (hyper then drops this future), the
    // guard charges a spend no usage will show.
    let mut unanswered = Unanswered {
        st: st.clone(),
        route: i,
        rec: Some(rec),
    };
    let sent = sender.send_request(up).await;
    let Some(mut rec) = unanswered.rec.take() else {
        unreachable!("taken only here");
    };
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            if let Some(b) = over.get() {
                // The body ran into the budget (a chunked one, or the
                // budget spent meanwhile): refused like a request that
                // doesn't fit, the upstream's request cut.
                let why = b.describe();
                rec.answered(429, &why);
                return rate_limited(route.plan.provider, &why, false);
            }
            let why = format!(
                "secret route /{}: {}: {e}",
                route.plan.name, route.plan.upstream_host
            );
            rec.answered(502, &why);
            return plain(502, &why);
        }
    };
    *conn.upstream.borrow_mut() = Some((i, sender, addr));
    let status = resp.status();
    rec.r.status = Some(status.as_u16());
    let (mut parts, body) = resp.into_parts();
    strip_hop(&mut parts.headers);
    let reader = usage::Reader::for_content_type(
        parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let head_in = head_len(
        "HTTP/1.1 200 ".len() + status.canonical_reason().unwrap_or("").len(),
        &parts.headers,
    );
    let mut body = Metered {
        inner: body,
        st: st.clone(),
        _slot: slot,
        route: i,
        reader,
        spent: Spent::default(),
        upstream_ok: status.is_success(),
        over: None,
        rec: Some(rec),
    };
    if let Err((e, why)) = fits(&st, Dir::In, head_in) {
        // Not passed on: the response's spend is unknown (a route whose
        // limits need it closes).
        st.budget_refused(e);
        if let Some(rec) = &mut body.rec {
            rec.answered(429, &why);
        }
        body.finish(Some(format!("closed: {why}")));
        return rate_limited(route.plan.provider, &why, false);
    }
    st.budgets.borrow_mut().add(Dir::In, head_in);
    if let Some(rec) = &mut body.rec {
        rec.r.bytes_in = head_in;
    }
    Response::from_parts(parts, Box::pin(body))
}

/// The size of an HTTP/1 head whose first line is `first_line` bytes:
/// that line, each header as `name: value` and the line ends. The
/// request's is what the agent sent (give or take optional whitespace),
/// the response's what it is sent (without the framing headers hyper
/// adds).
fn head_len(first_line: usize, h: &HeaderMap) -> u64 {
    let fields: usize = h
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    (first_line + 2 + fields + 2) as u64
}

fn request_head_len(req: &Request<Incoming>) -> u64 {
    let line = req.method().as_str().len() + 1 + req.uri().to_string().len() + " HTTP/1.1".len();
    head_len(line, req.headers())
}

/// That `n` more bytes fit in `dir`'s byte budget of `network.budget`,
/// and no byte budget is used up; else the budget that refuses, and why.
fn fits(st: &State, dir: Dir, n: u64) -> Result<(), (Exhausted, String)> {
    let b = st.budgets.borrow();
    for d in [Dir::Out, Dir::In] {
        if b.allowance(d) == 0 {
            let e = b.bytes_exhausted(d);
            return Err((e, e.describe()));
        }
    }
    let left = b.allowance(dir);
    if n > left {
        let e = b.bytes_exhausted(dir);
        let what = match dir {
            Dir::Out => "the request's",
            Dir::In => "the response's head,",
        };
        let why = format!(
            "budget {} ({}): {what} {n} bytes don't fit in the {left} left",
            e.which.name(),
            e.limit
        );
        return Err((e, why));
    }
    Ok(())
}

/// `d` bounded by `dir`'s byte budget and counted, with no await in
/// between (as the relay bounds its reads): the part that fits, and the
/// budget, noted, when not all of it did.
fn bounded(st: &State, dir: Dir, mut d: Bytes) -> (Bytes, Option<Exhausted>) {
    let allowed = st.budgets.borrow().allowance(dir);
    let over = d.len() as u64 > allowed;
    if over {
        // Less than `d.len()`, so it fits a usize.
        d.truncate(allowed as usize);
    }
    st.budgets.borrow_mut().add(dir, d.len() as u64);
    let e = over.then(|| st.budgets.borrow().bytes_exhausted(dir));
    if let Some(e) = e {
        st.budget_refused(e);
    }
    (d, e)
}

/// A byte budget ended a body: the upstream's request, or the response
/// to the agent (whose connection then ends, as a relay's does).
#[derive(Debug)]
struct BudgetCut(Exhausted);

impl std::fmt::Display for BudgetCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "confine: {}", self.0.describe())
    }
}

impl std::error::Error for BudgetCut {}

impl Conn {
    /// The upstream connection for route `i`: the last one if it is the
    /// same route's and still usable, else a new one.
    async fn sender(
        &self,
        i: usize,
        route: &Route,
        address: &mut Option<IpAddr>,
    ) -> Result<(SendRequest<UpBody>, IpAddr), (u16, String)> {
        let last = self.upstream.borrow_mut().take();
        if let Some((j, mut s, addr)) = last {
            if j == i
                && matches!(
                    tokio::time::timeout(Duration::from_secs(1), s.ready()).await,
                    Ok(Ok(()))
                )
            {
                return Ok((s, addr));
            }
        }
        dial(&self.st, route, address).await
    }
}

/// Resolves (or takes the pin of) the route's upstream, checks the
/// address is public unless pinned, connects, verifies TLS and starts an
/// HTTP/1 connection.
async fn dial(
    st: &State,
    route: &Route,
    address: &mut Option<IpAddr>,
) -> Result<(SendRequest<UpBody>, IpAddr), (u16, String)> {
    let host = route.plan.upstream_host.as_str();
    let port = route.plan.upstream_port;
    let budget = st.budgets.borrow_mut().admit(Instant::now());
    if let Err(e) = budget {
        st.budget_refused(e);
        return Err((429, e.describe()));
    }
    let addrs = match st.policy.pinned(host) {
        Some(ip) => vec![ip],
        None => {
            let all = st
                .resolver
                .lookup(host)
                .await
                .map_err(|e| (502, format!("{host}: {e}")))?;
            super::addr::public_only(all, host).map_err(|(ip, why)| {
                *address = Some(ip);
                (403, why)
            })?
        }
    };
    let (tcp, ip) = super::proxy::connect_first(st, &addrs, port, |ip| *address = Some(ip))
        .await
        .map_err(|last| (502, last))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| (502, format!("{host} is not a TLS server name: {e}")))?;
    let routes = st.routes.as_ref().ok_or((500, "no routes".to_string()))?;
    let tls = match tokio::time::timeout(st.limits.connect_timeout, routes.tls.connect(name, tcp))
        .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return Err((
                502,
                format!("TLS with {host} ({ip}) failed: {e}; the credential was not sent"),
            ))
        }
        Err(_) => {
            return Err((
                502,
                format!("TLS with {host} ({ip}) timed out; the credential was not sent"),
            ))
        }
    };
    let mut b = hyper::client::conn::http1::Builder::new();
    b.max_buf_size(MAX_BUF);
    let (sender, connection) = b
        .handshake(TokioIo::new(tls))
        .await
        .map_err(|e| (502, format!("{host}: {e}")))?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok((sender, ip))
}

/// A limit refused a request or was reached: the `limit` event, once per
/// limit; with `on_exhausted: stop`, every later request is refused and
/// the supervisor stops the sandbox.
fn limit_reached(st: &State, route: &Route, r: Reached) {
    let stop = route.plan.limits.as_ref().is_some_and(|l| l.stop);
    if stop {
        route.stopped.set(true);
    }
    {
        let mut rep = route.reported.borrow_mut();
        if rep.contains(&r.which) {
            return;
        }
        rep.push(r.which);
    }
    st.emit(Event::Limit(LimitEvent {
        route: route.plan.name.clone(),
        which: r.which.name().to_string(),
        limit: r.limit,
        used: r.used,
        action: if stop { Action::Stop } else { Action::Refuse },
    }));
}

/// The agent's request body on its way upstream: bounded by
/// `network.budget`'s `bytes_out` and counted; past it, the body ends
/// with an error (hyper then abandons the upstream request).
struct Counted {
    inner: Incoming,
    st: Rc<State>,
    count: Rc<Cell<u64>>,
    /// The budget this body ran into.
    over: Rc<Cell<Option<Exhausted>>>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(e) = this.over.get() {
            return Poll::Ready(Some(Err(Box::new(BudgetCut(e)))));
        }
        let f = match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return Poll::Ready(Some(Err(Box::new(e)))),
            None => return Poll::Ready(None),
        };
        let d = match f.into_data() {
            Ok(d) => d,
            Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
        };
        let (d, over) = bounded(&this.st, Dir::Out, d);
        this.count
            .set(this.count.get().saturating_add(d.len() as u64));
        if let Some(e) = over {
            this.over.set(Some(e));
            if d.is_empty() {
                return Poll::Ready(Some(Err(Box::new(BudgetCut(e)))));
            }
        }
        Poll::Ready(Some(Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.over.get().is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's response body on its way to the agent, frame by frame:
/// counted, its usage read; at its end (or when the agent leaves) the
/// request's record and its `usage` record are written.
struct Metered {
    inner: Incoming,
    st: Rc<State>,
    /// Held until the response ends (or the agent leaves it).
    _slot: Option<Slot>,
    route: usize,
    reader: usage::Reader,
    spent: Spent,
    /// The upstream answered 2xx: a response whose spend is needed.
    upstream_ok: bool,
    /// The byte budget this response ran into: it ends at the next frame.
    over: Option<Exhausted>,
    rec: Option<ReqRecord>,
}

impl Metered {
    fn finish(&mut self, cut: Option<String>) {
        let Some(mut rec) = self.rec.take() else {
            return;
        };
        rec.r.reason = cut;
        self.reader.finish(&mut self.spent);
        drop(rec);
        charge(&self.st, self.route, &mut self.spent, self.upstream_ok);
    }
}

/// Counts what a response on route `i` `spent` (`ok`: the upstream
/// answered 2xx, or may have spent without answering), stops the sandbox
/// at a limit that stops, and writes the `usage` record.
fn charge(st: &State, i: usize, spent: &mut Spent, ok: bool) {
    let Some(routes) = st.routes.as_ref() else {
        return;
    };
    let route = &routes.list[i];
    let limits = route.plan.limits.as_ref();
    let now = Instant::now();
    let (cost, priced_as) = route.counter.borrow_mut().add(limits, spent, ok, now);
    let totals = route.counter.borrow().totals;
    // Past a limit that stops: now, not at the next request.
    if let Some(l) = limits.filter(|l| l.stop) {
        let reached = route.counter.borrow().reached(l, now, false);
        if let Some(r) = reached {
            limit_reached(st, route, r);
        }
    }
    st.emit(Event::Usage(Usage {
        route: route.plan.name.clone(),
        model: spent.model.take(),
        tokens_in: spent.tokens_in,
        tokens_out: spent.tokens_out,
        cost,
        priced_as,
        estimated: spent.estimated,
        totals,
    }));
}

/// One of a spend-limited route's [`MAX_IN_FLIGHT`] requests, from its
/// admission to its response's end; given back when dropped, however the
/// request ends (refused, failed, answered, or left by the agent).
struct Slot {
    st: Rc<State>,
    route: usize,
}

impl Slot {
    /// Waits until route `i` has a free slot, and takes it.
    async fn take(st: &Rc<State>, i: usize) -> Slot {
        if let Some(route) = st.routes.as_ref().map(|r| &r.list[i]) {
            while route.in_flight.get() >= MAX_IN_FLIGHT {
                route.freed.notified().await;
            }
            route.in_flight.set(route.in_flight.get() + 1);
        }
        Slot {
            st: st.clone(),
            route: i,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(route) = self.st.routes.as_ref().map(|r| &r.list[self.route]) {
            route.in_flight.set(route.in_flight.get().saturating_sub(1));
            route.freed.notify_one();
        }
    }
}

/// A request on its way upstream, or there, whose answer's head hasn't
/// come. Dropped holding the record, the agent went away meanwhile (hyper
/// drops the request's future when its connection ends): the upstream may
/// have computed the answer, and a real one bills it, but no usage will
/// show what it spent. Charged as a spend that can't be counted, as a
/// stream cut before any usage is: a route whose `tokens` or `cost` limit
/// needs it closes. Else hanging up before each answer would make every
/// request free, past any limit.
struct Unanswered {
    st: Rc<State>,
    route: usize,
    rec: Option<ReqRecord>,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        let Some(mut rec) = self.rec.take() else {
            return;
        };
        rec.r.reason = Some("the agent went away before the response's head".into());
        drop(rec);
        charge(&self.st, self.route, &mut Spent::default(), true);
    }
}

impl Metered {
    /// Ends the response at the budget `e`.
    fn cut(&mut self, e: Exhausted) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.finish(Some(format!("closed: {}", e.describe())));
        Poll::Ready(Some(Err(Box::new(BudgetCut(e)))))
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(e) = this.over {
            return this.cut(e);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                let d = match f.into_data() {
                    Ok(d) => d,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                };
                let (d, over) = bounded(&this.st, Dir::In, d);
                if let Some(rec) = &mut this.rec {
                    rec.r.bytes_in = rec.r.bytes_in.saturating_add(d.len() as u64);
                }
                this.reader.feed(&d, &mut this.spent);
                if let Some(e) = over {
                    this.over = Some(e);
                    if d.is_empty() {
                        return this.cut(e);
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(d))))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Some(format!("the upstream's response broke off: {e}")));
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.over.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        let cut = (!self.inner.is_end_stream())
            .then(|| "the agent went away before the response's end".to_string());
        self.finish(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_the_upstream() {
        assert_eq!(
            split_route("/anthropic/v1/messages"),
            ("anthropic", "/v1/messages")
        );
        assert_eq!(split_route("/anthropic"), ("anthropic", ""));
        assert_eq!(split_route("/"), ("", ""));
        assert_eq!(upstream_target("/v1", "/chat", Some("a=b")), "/v1/chat?a=b");
        assert_eq!(upstream_target("", "", None), "/");
        assert_eq!(upstream_target("", "/x", None), "/x");
        assert_eq!(without_param("key=AIza0&alt=sse&key=x", "key"), "alt=sse");
        assert_eq!(without_param("keys=1&key", "key"), "keys=1");
        assert_eq!(without_param("key=1", "key"), "");
    }

    #[test]
    fn heads_count_as_http1_spells_them() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:3128"));
        h.append("x-api-key", HeaderValue::from_static("k"));
        h.append("x-api-key", HeaderValue::from_static("again"));
        let line = "POST /anthropic/v1/messages HTTP/1.1";
        let text =
            format!("{line}\r\nhost: 127.0.0.1:3128\r\nx-api-key: k\r\nx-api-key: again\r\n\r\n");
        assert_eq!(head_len(line.len(), &h), text.len() as u64);
        assert_eq!(head_len(0, &HeaderMap::new()), 4);
    }

    #[test]
    fn hop_by_hop_and_named_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        strip_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("content-type"));
    }

    fn route(provider: Option<Provider>, header: &str) -> Route {
        Route {
            plan: RouteSpec {
                name: "r".into(),
                provider,
                upstream_host: "api.example.com".into(),
                upstream_port: 8443,
                upstream_path: "/v1".into(),
                header: (header.into(), "Bearer ".into(), String::new()),
                limits: None,
            },
            header: HeaderName::from_bytes(header.as_bytes()).unwrap(),
            credential: HeaderValue::from_static("Bearer real"),
            counter: RefCell::default(),
            stopped: Cell::new(false),
            reported: RefCell::default(),
            in_flight: Cell::new(0),
            freed: tokio::sync::Notify::new(),
        }
    }

    #[test]
    fn the_agents_credentials_are_replaced_by_the_routes() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer placeholder"),
            ("x-api-key", "placeholder"),
            ("x-goog-api-key", "placeholder"),
            ("api-key", "placeholder"),
            ("proxy-authorization", "Basic eA=="),
            ("x-llm-key", "placeholder"),
            ("host", "127.0.0.1:3128"),
            ("accept-encoding", "gzip, br"),
            ("expect", "100-continue"),
            ("content-type", "application/json"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let out = upstream_headers(&h, &route(None, "x-llm-key"));
        let got: Vec<(String, String)> = out
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let mut got = got;
        got.sort();
        assert_eq!(
            got,
            [
                ("accept-encoding".into(), "identity".into()),
                ("content-type".into(), "application/json".into()),
                ("host".into(), "api.example.com:8443".into()),
                ("x-llm-key".into(), "Bearer real".into()),
            ]
        );
    }

    #[test]
    fn rate_limits_answer_in_each_providers_shape() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (provider, pointer, want) in [
            (Some(Provider::Anthropic), "/error/type", "rate_limit_error"),
            (Some(Provider::Openai), "/error/code", "rate_limit_exceeded"),
            (
                Some(Provider::Gemini),
                "/error/status",
                "RESOURCE_EXHAUSTED",
            ),
            (Some(Provider::Github), "/message", "confine: the rule"),
            (None, "/message", "confine: the rule"),
        ] {
            for which in [Which::RequestsPerMinute, Which::Cost] {
                let r = rate_limited(provider, "the rule", which == Which::RequestsPerMinute);
                assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
                let retry = r.headers().contains_key(header::RETRY_AFTER);
                let no_retry = r.headers().get("x-should-retry").is_some();
                assert_eq!(retry, which == Which::RequestsPerMinute);
                assert_eq!(no_retry, which != Which::RequestsPerMinute);
                let body = rt.block_on(r.into_body().collect()).unwrap().to_bytes();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(
                    v.pointer(pointer).and_then(|x| x.as_str()),
                    Some(want),
                    "{v}"
                );
                assert!(v.to_string().contains("confine: the rule"), "{v}");
            }
        }
    }
}
