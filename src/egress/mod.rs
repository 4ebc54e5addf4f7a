//! The egress proxy of `network.mode: proxy` (DESIGN.md §9): a process of
//! its own outside the sandbox that accepts on sockets created inside the
//! sandbox's network namespace and dials out from the host, for exactly
//! the hosts, ports and addresses the policy admits.
//!
//! Front doors, all on sockets the caller hands over in [`Setup`]:
//! - the HTTP proxy (`CONNECT host:port` and absolute-form `http://`
//!   requests), for clients that honour the proxy variables;
//! - the DNS stub, which answers allowed names with fake addresses and
//!   everything else with NXDOMAIN, without ever asking upstream
//!   ([`dns`]);
//! - one transparent listener per allowed port: a connection to (fake
//!   address, port) maps back to the name ([`fake`]).
//!
//! Every connection goes through one decision path ([`proxy`]) and ends
//! in one `connection` event on the pipe to the supervisor ([`events`]).
//! Budgets ([`budget`]) are counted here for the whole sandbox.
//!
//! The process is confined by [`confine_self`] before [`serve`]: the
//! agent's uid, no capabilities, no files, a seccomp allowlist of what the
//! runtime needs. The supervisor and the init never call into this module,
//! so the launch of other modes doesn't pay for tokio or hickory.

pub mod addr;
pub mod ask;
pub mod budget;
mod confine;
pub mod dns;
pub mod events;
pub mod fake;
pub mod http;
mod proxy;
mod relay;
pub mod resolve;
pub mod route;
pub mod sni;
#[cfg(test)]
mod tests;
pub mod tls;
pub mod usage;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub use confine::{confine_self, drop_privileges, lock_down};
pub use resolve::nameservers_from_resolv_conf;

use budget::{Budgets, Exhausted};
use events::{Action, BudgetEvent, Connection, Event, Sink, Verdict, Via};
use fake::FakeTable;
use resolve::Resolver;

/// Everything the proxy runs with, handed over by the caller.
pub struct Setup {
    pub policy: crate::plan::egress::Egress,
    /// 127.0.0.1:3128 in the sandbox's netns: CONNECT and absolute-form.
    pub http: std::net::TcpListener,
    /// 127.0.0.1:53 in the sandbox's netns.
    pub dns_udp: std::net::UdpSocket,
    /// 127.0.0.1:53.
    pub dns_tcp: std::net::TcpListener,
    /// 0.0.0.0:P for each P in `policy.ports()`; an accepted socket's local
    /// address is a fake address and the port.
    pub transparent: Vec<std::net::TcpListener>,
    /// Where the proxy resolves real names ([`nameservers_from_resolv_conf`]
    /// on the host's /etc/resolv.conf, read before confinement).
    pub nameservers: Vec<std::net::SocketAddr>,
    /// The write end of a pipe to the supervisor. The proxy ends when the
    /// pipe has no reader left, so the proxy's process must not hold the
    /// read end (nor any other descriptor but these: close them after the
    /// fork).
    pub events: OwnedFd,
    /// The read end of a pipe whose writer the supervisor closes when the
    /// sandbox has ended: the proxy then ends every connection still open
    /// (each leaves its `connection` record) and exits.
    pub shutdown: Option<OwnedFd>,
    /// The secret routes (DESIGN.md §10), when the profile has secrets.
    pub routes: Option<route::Routes>,
}

/// Bounds and timeouts. [`Limits::default`] is what [`serve`] runs with;
/// tests shorten them or name other ports.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Agent connections relayed or being checked at once; more are
    /// refused at accept.
    pub max_connections: usize,
    /// DNS-over-TCP connections at once.
    pub max_dns_tcp: usize,
    /// For a request head or ClientHello to arrive whole.
    pub head_timeout: Duration,
    pub connect_timeout: Duration,
    /// Per upstream DNS query.
    pub dns_timeout: Duration,
    /// A relay in which nothing moves for this long is closed.
    pub idle_timeout: Duration,
    /// A DNS-over-TCP connection without a query for this long is closed.
    pub dns_idle: Duration,
    /// Ports whose connections must start with a ClientHello naming the
    /// admitted host.
    pub tls_ports: Vec<u16>,
    /// Ports whose connections must start with a request whose `Host` is
    /// the admitted host.
    pub http_ports: Vec<u16>,
    /// Names with a fake address, at most.
    pub fake_capacity: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            max_dns_tcp: 16,
            head_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            dns_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(30 * 60),
            dns_idle: Duration::from_secs(10),
            tls_ports: vec![443],
            http_ports: vec![80],
            fake_capacity: 16384,
        }
    }
}

/// The proxy's state, shared by every task on its one thread.
pub(crate) struct State {
    pub policy: crate::plan::egress::Egress,
    pub limits: Limits,
    pub fake: RefCell<FakeTable>,
    pub budgets: RefCell<Budgets>,
    pub resolver: Resolver,
    pub routes: Option<route::Routes>,
    sink: RefCell<Sink>,
    /// Agent connections open now.
    active: Cell<usize>,
    dns_tcp_active: Cell<usize>,
    /// Refused DNS names reported in the current minute.
    dns_reported: RefCell<(Instant, HashSet<String>)>,
    /// `network.ask`: hosts waiting for approval, and the answers.
    pub(crate) asks: ask::Asks,
}

impl State {
    pub fn emit(&self, event: Event) {
        // A broken pipe is noticed by `run`, which then ends.
        let _ = self.sink.borrow_mut().emit(event);
    }

    /// A budget refused something: the `budget` event, once per budget.
    pub fn budget_refused(&self, e: Exhausted) {
        let (first, on) = {
            let mut b = self.budgets.borrow_mut();
            (b.note(e), b.on_exhausted())
        };
        if first {
            self.emit(Event::Budget(BudgetEvent {
                which: e.which,
                limit: e.limit,
                used: e.used,
                action: match on {
                    crate::plan::egress::OnExhausted::Refuse => Action::Refuse,
                    crate::plan::egress::OnExhausted::Stop => Action::Stop,
                },
            }));
        }
    }

    fn dns_refused(&self, refused: dns::Refused) {
        {
            let mut r = self.dns_reported.borrow_mut();
            if r.0.elapsed() >= Duration::from_secs(60) || r.1.len() >= 1024 {
                r.0 = Instant::now();
                r.1.clear();
            }
            if !r.1.insert(refused.name.clone()) {
                return;
            }
        }
        self.emit(Event::Connection(Connection {
            host: refused.name,
            port: None,
            address: None,
            via: Via::Dns,
            verdict: Verdict::Refused,
            rule: refused.rule,
            reason: Some(refused.reason),
            bytes_out: 0,
            bytes_in: 0,
            duration_ms: 0,
        }));
    }
}

/// Runs the proxy until the events pipe breaks or the process is killed.
/// Called in a freshly forked, single-threaded child after
/// [`confine_self`]; builds a tokio current-thread runtime and never
/// returns: the process exits 0 when the supervisor is gone, 1 if the
/// proxy couldn't start.
pub fn serve(setup: Setup) -> ! {
    let code = match run(setup) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    // SAFETY: _exit ends the process at once; nothing is left to flush.
    unsafe { libc::_exit(code) }
}

/// [`serve`]'s body: returns when the events pipe breaks (the supervisor
/// closed its end or died), or with why the proxy couldn't start.
pub fn run(setup: Setup) -> Result<(), String> {
    run_with(setup, Limits::default())
}

pub(crate) fn run_with(setup: Setup, limits: Limits) -> Result<(), String> {
    // Writes to a socket whose peer is gone must fail with EPIPE, not kill
    // the proxy (confine's main doesn't go through std's runtime setup).
    // SAFETY: setting a signal's disposition to SIG_IGN.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("egress proxy: starting the runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, main(setup, limits))
}

async fn main(setup: Setup, limits: Limits) -> Result<(), String> {
    let err = |what: &str, e: std::io::Error| format!("egress proxy: {what}: {e}");
    let tcp = |l: std::net::TcpListener, what: &str| {
        l.set_nonblocking(true).map_err(|e| err(what, e))?;
        TcpListener::from_std(l).map_err(|e| err(what, e))
    };
    let http = tcp(setup.http, "the HTTP proxy socket")?;
    let dns_tcp = tcp(setup.dns_tcp, "the DNS TCP socket")?;
    let transparent = setup
        .transparent
        .into_iter()
        .map(|l| tcp(l, "a transparent listener"))
        .collect::<Result<Vec<_>, _>>()?;
    setup
        .dns_udp
        .set_nonblocking(true)
        .map_err(|e| err("the DNS UDP socket", e))?;
    let dns_udp = UdpSocket::from_std(setup.dns_udp).map_err(|e| err("the DNS UDP socket", e))?;
    let sink = Sink::new(setup.events).map_err(|e| err("the events pipe", e))?;
    // A second descriptor of the pipe's write end, only to learn when the
    // reader is gone (EPOLLERR); the sink writes through its own.
    let watched = sink
        .fd()
        .try_clone()
        .map_err(|e| err("watching the events pipe", e))?;
    // SAFETY: the AsyncFd owns `watched`, which stays open and the same
    // for the AsyncFd's whole life.
    let gone = unsafe { AsyncFd::register_with_interest(watched, Interest::ERROR) }
        .map_err(|e| err("watching the events pipe", e.into()))?;

    let st = Rc::new(State {
        fake: RefCell::new(FakeTable::new(limits.fake_capacity)),
        budgets: RefCell::new(Budgets::new(setup.policy.budget.clone())),
        resolver: Resolver::new(setup.nameservers, limits.dns_timeout),
        policy: setup.policy,
        routes: setup.routes,
        limits,
        sink: RefCell::new(sink),
        active: Cell::new(0),
        dns_tcp_active: Cell::new(0),
        dns_reported: RefCell::new((Instant::now(), HashSet::new())),
        asks: ask::Asks::default(),
    });

    tokio::task::spawn_local(accept_loop(st.clone(), http, Via::Proxy));
    for l in transparent {
        tokio::task::spawn_local(accept_loop(st.clone(), l, Via::Transparent));
    }
    tokio::task::spawn_local(dns_udp_loop(st.clone(), dns_udp));
    tokio::task::spawn_local(dns_tcp_loop(st.clone(), dns_tcp));

    // Until the supervisor's end of the pipe is closed, or it says the
    // sandbox has ended; then the connections are dropped with the
    // LocalSet, and their records written as they go.
    // It also carries the answers to `network.ask` ([`ask`]).
    let shutdown = match setup.shutdown {
        Some(fd) => Some(ask::Control::new(fd).map_err(|e| err("watching the shutdown pipe", e))?),
        None => None,
    };
    let ended = async {
        match &shutdown {
            Some(s) => s.run(&st).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = gone.ready(Interest::ERROR) => {}
        () = ended => {}
    }
    Ok(())
}

/// Counts an open agent connection for as long as it lives.
struct Slot(Rc<State>);

impl Slot {
    fn new(st: &Rc<State>) -> Slot {
        st.active.set(st.active.get() + 1);
        Slot(st.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get().saturating_sub(1));
    }
}

async fn accept_loop(st: Rc<State>, listener: TcpListener, via: Via) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok((c, peer)) => (c, peer.port()),
            Err(_) => {
                // Out of descriptors or memory: let connections end.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if st.active.get() >= st.limits.max_connections {
            proxy::too_many(&st, client, via);
            continue;
        }
        let slot = Slot::new(&st);
        let st = st.clone();
        tokio::task::spawn_local(async move {
            let _slot = slot;
            match via {
                Via::Proxy => proxy::proxy_conn(st, client, peer).await,
                _ => proxy::transparent_conn(st, client, peer).await,
            }
        });
    }
}

async fn dns_udp_loop(st: Rc<State>, sock: UdpSocket) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let out = dns::answer(&buf[..n], &st.policy, &mut st.fake.borrow_mut());
        if let Some(reply) = out.reply {
            // Never wait on a client: a full socket drops the answer, as
            // UDP may.
            let _ = sock.try_send_to(&reply, peer);
        }
        if let Some(r) = out.refused {
            st.dns_refused(r);
        }
    }
}

async fn dns_tcp_loop(st: Rc<State>, listener: TcpListener) {
    loop {
        let conn = match listener.accept().await {
            Ok((c, _)) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if st.dns_tcp_active.get() >= st.limits.max_dns_tcp {
            continue; // dropped: closed at once
        }
        st.dns_tcp_active.set(st.dns_tcp_active.get() + 1);
        let st = st.clone();
        tokio::task::spawn_local(async move {
            dns_tcp_conn(&st, conn).await;
            st.dns_tcp_active
                .set(st.dns_tcp_active.get().saturating_sub(1));
        });
    }
}

/// Queries on one DNS-over-TCP connection, each with its 2-byte length,
/// until the client stops or is idle.
async fn dns_tcp_conn(st: &State, mut conn: TcpStream) {
    let idle = st.limits.dns_idle;
    let mut buf = Vec::new();
    for _ in 0..1000 {
        let len = match tokio::time::timeout(idle, conn.read_u16()).await {
            Ok(Ok(n)) => usize::from(n),
            _ => return,
        };
        if !(12..=4096).contains(&len) {
            return;
        }
        buf.resize(len, 0);
        if !matches!(
            tokio::time::timeout(idle, conn.read_exact(&mut buf)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let out = dns::answer(&buf, &st.policy, &mut st.fake.borrow_mut());
        if let Some(r) = out.refused {
            st.dns_refused(r);
        }
        let Some(reply) = out.reply else { return };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        let mut msg = n.to_be_bytes().to_vec();
        msg.extend_from_slice(&reply);
        if !matches!(
            tokio::time::timeout(idle, conn.write_all(&msg)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}
