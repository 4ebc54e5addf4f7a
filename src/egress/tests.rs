//! In-process tests of the whole proxy: its sockets bound on loopback
//! (ephemeral ports; the transparent ones on the fake addresses
//! themselves), the runtime on a thread of its own, upstreams on
//! 127.0.0.1 pinned in `hosts`, and a test name server on 127.0.0.1 that
//! records every query it gets. They complement the end-to-end tests of
//! `confine run`, which put these sockets in a sandbox's namespace.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::events::{Action, Event, Verdict, Via, Which};
use super::{run_with, Limits, Setup};
use crate::plan::egress::{Budget, Egress, HostPattern, HostRule, OnExhausted};

const WAIT: Duration = Duration::from_secs(10);

fn rule(host: &str, port: Option<u16>) -> HostRule {
    let (pattern, text) = match host.strip_prefix("*.") {
        Some(d) => (HostPattern::Beneath(d.into()), host.to_string()),
        None => (HostPattern::Exact(host.into()), host.to_string()),
    };
    let text = match port {
        Some(p) => format!("{text}:{p}"),
        None => text,
    };
    HostRule {
        pattern,
        port,
        text,
    }
}

fn policy(allow: &[(&str, u16)], deny: &[&str], hosts: &[(&str, IpAddr)]) -> Egress {
    Egress {
        allow: allow.iter().map(|&(h, p)| rule(h, Some(p))).collect(),
        deny: deny.iter().map(|&h| rule(h, None)).collect(),
        hosts: hosts
            .iter()
            .map(|&(h, ip)| (h.to_string(), ip))
            .collect::<BTreeMap<_, _>>(),
        budget: Budget::default(),
        ask: Vec::new(),
    }
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A running proxy.
struct Proxy {
    http: SocketAddr,
    dns_udp: SocketAddr,
    dns_tcp: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

fn pipe() -> (std::fs::File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: an array of two ints for the kernel to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: two fresh descriptors nothing else owns.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

impl Proxy {
    fn start(
        policy: Egress,
        limits: Limits,
        transparent: Vec<TcpListener>,
        nameservers: Vec<SocketAddr>,
    ) -> Proxy {
        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let dns_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dns_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut r, w) = pipe();
        let addrs = (
            http.local_addr().unwrap(),
            dns_udp.local_addr().unwrap(),
            dns_tcp.local_addr().unwrap(),
        );
        let setup = Setup {
            policy,
            http,
            dns_udp,
            dns_tcp,
            transparent,
            nameservers,
            events: w,
            shutdown: None,
            routes: None,
        };
        let thread = std::thread::spawn(move || run_with(setup, limits));
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let events = events.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                let mut buf = [0u8; 8192];
                while !stop.load(Ordering::Relaxed) {
                    let mut pfd = libc::pollfd {
                        fd: r.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    if unsafe { libc::poll(&mut pfd, 1, 20) } <= 0 {
                        continue;
                    }
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=i).collect();
                        assert!(line.len() <= super::events::MAX_LINE);
                        let e = Event::parse(&line).unwrap();
                        events.lock().unwrap().push(e);
                    }
                }
                // Dropping `r` tells the proxy the supervisor is gone.
            })
        };
        Proxy {
            http: addrs.0,
            dns_udp: addrs.1,
            dns_tcp: addrs.2,
            events,
            stop,
            reader: Some(reader),
            thread: Some(thread),
        }
    }

    /// Waits for an event `f` picks and returns it.
    fn wait<T>(&self, what: &str, f: impl Fn(&Event) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(t) = self.events.lock().unwrap().iter().find_map(&f) {
                return t;
            }
            assert!(
                start.elapsed() < WAIT,
                "no {what} event in {:?}",
                self.events.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The `connection` event for `host` (the first one).
    fn connection(&self, host: &str) -> super::events::Connection {
        self.wait(host, |e| match e {
            Event::Connection(c) if c.host == host => Some(c.clone()),
            _ => None,
        })
    }

    fn budget(&self) -> super::events::BudgetEvent {
        self.wait("budget", |e| match e {
            Event::Budget(b) => Some(b.clone()),
            _ => None,
        })
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    }

    /// CONNECT to `target`, returning the stream and the response head.
    fn tunnel(&self, target: &str) -> (TcpStream, String) {
        let mut s = self.connect();
        write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
        let head = read_head(&mut s);
        (s, head)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        // The proxy ends once the events pipe has no reader.
        if let Some(t) = self.thread.take() {
            let result = t.join().unwrap();
            if !std::thread::panicking() {
                assert_eq!(result, Ok(()));
            }
        }
    }
}

/// Reads a response head (up to the blank line), byte by byte.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

/// Reads until EOF or an error: true if the peer closed (or reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

/// An upstream on 127.0.0.1 that echoes everything back, closing its
/// sending half when the client does; counts connections and bytes.
struct Echo {
    port: u16,
    accepted: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
}

impl Echo {
    fn start() -> Echo {
        Echo::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn on(l: TcpListener) -> Echo {
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let (a, r) = (accepted.clone(), received.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                a.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                r.fetch_add(n, Ordering::SeqCst);
                                if s.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = s.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Echo {
            port,
            accepted,
            received,
        }
    }
}

/// An HTTP upstream: reads one request head, remembers it, answers `ok`.
fn http_upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(WAIT)).unwrap();
            let head = read_head(&mut s);
            s2.lock().unwrap().push(head);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (port, seen)
}

/// A name server on 127.0.0.1 answering A/AAAA from `zone`, recording
/// every name it is asked.
fn name_server(zone: &[(&str, IpAddr)]) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let zone: Vec<(String, IpAddr)> = zone.iter().map(|(n, ip)| (format!("{n}."), *ip)).collect();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let a2 = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = q.queries.first().cloned() else {
                continue;
            };
            let name = question.name().to_ascii();
            a2.lock()
                .unwrap()
                .push(name.trim_end_matches('.').to_string());
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.message_type = MessageType::Response;
            r.add_query(question.clone());
            let matches: Vec<IpAddr> = zone
                .iter()
                .filter(|(z, _)| *z == name)
                .map(|(_, ip)| *ip)
                .collect();
            if matches.is_empty() {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            for ip in matches {
                let data = match (ip, question.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(v4.into()),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(v6.into()),
                    _ => continue,
                };
                r.add_answer(Record::from_rdata(question.name().clone(), 60, data));
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), peer);
        }
    });
    (addr, asked)
}

fn dns_ask_udp(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let q = super::dns::query(77, &Name::from_ascii(name).unwrap(), t);
    sock.send_to(&q, server).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn dns_ask_tcp(server: SocketAddr, names: &[&str]) -> Vec<Message> {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = Vec::new();
    for name in names {
        let q = super::dns::query(78, &Name::from_ascii(name).unwrap(), RecordType::A);
        s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&q).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).unwrap();
        out.push(Message::from_vec(&buf).unwrap());
    }
    out
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

#[test]
fn connect_to_an_allowed_pinned_host_relays_bytes_exactly() {
    let echo = Echo::start();
    let p = Proxy::start(
        policy(
            &[("upstream.test", echo.port)],
            &[],
            &[("upstream.test", LOCAL)],
        ),
        Limits::default(),
        vec![],
        vec![],
    );
    let (mut s, head) = p.tunnel(&format!("upstream.test:{}", echo.port));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let data = pattern(3 * 1024 * 1024 + 17);
    let mut w = s.try_clone().unwrap();
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&d2).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let back = read_all(&mut s);
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes differ");
    let c = p.connection("upstream.test");
    assert_eq!(c.verdict, Verdict::Allowed);
    assert_eq!(c.via, Via::Proxy);
    assert_eq!(c.port, Some(echo.port));
    assert_eq!(c.address, Some(LOCAL));
    assert_eq!(
        c.rule.as_deref(),
        Some(format!("upstream.test:{}", echo.port).as_str())
    );
    assert_eq!(c.reason, None);
    assert_eq!(
        (c.bytes_out, c.bytes_in),
        (data.len() as u64, data.len() as u64)
    );
    assert_eq!(echo.received.load(Ordering::SeqCst), data.len());
}

#[test]
fn hosts_not_allowed_or_denied_are_refused_with_403() {
    let echo = Echo::start();
    let port = echo.port;
    let p = Proxy::start(
        policy(
            &[("*.upstream.test", port)],
            &["bad.upstream.test"],
            &[
                ("ok.upstream.test", LOCAL),
                ("bad.upstream.test", LOCAL),
                ("other.test", LOCAL),
            ],
        ),
        Limits::default(),
        vec![],
        vec![],
    );
    let (mut s, head) = p.tunnel(&format!("other.test:{port}"));
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let body = String::from_utf8(read_all(&mut s)).unwrap();
    assert!(body.contains("is not in allow"), "{body}");
    let c = p.connection("other.test");
    assert_eq!(c.verdict, Verdict::Refused);
    assert_eq!(
        c.reason.as_deref(),
        Some(format!("other.test:{port} is not in allow").as_str())
    );
    assert_eq!(c.rule, None);

    let (mut s, head) = p.tunnel(&format!("bad.upstream.test:{port}"));
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(String::from_utf8(read_all(&mut s))
        .unwrap()
        .contains("denied by `bad.upstream.test`"));
    let c = p.connection("bad.upstream.test");
    assert_eq!(c.verdict, Verdict::Refused);
    assert_eq!(c.rule.as_deref(), Some("bad.upstream.test"));

    // The apex isn't beneath itself; the right port only.
    let (_, head) = p.tunnel(&format!("upstream.test:{port}"));
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (_, head) = p.tunnel(&format!("ok.upstream.test:{}", port.wrapping_add(1).max(1)));
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 0);
    // The control: allowed.
    let (_, head) = p.tunnel(&format!("ok.upstream.test:{port}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn raw_ip_only_when_pinned() {
    let echo = Echo::start();
    let port = echo.port;
    let p = Proxy::start(
        policy(&[("127.0.0.1", port)], &[], &[]),
        Limits::default(),
        vec![],
        vec![],
    );
    let (mut s, head) = p.tunnel(&format!("127.0.0.1:{port}"));
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(String::from_utf8(read_all(&mut s))
        .unwrap()
        .contains("is an IP address"));
    let c = p.connection("127.0.0.1");
    assert_eq!(c.verdict, Verdict::Refused);
    drop(p);
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 0);

    let p = Proxy::start(
        policy(&[("127.0.0.1", port)], &[], &[("127.0.0.1", LOCAL)]),
        Limits::default(),
        vec![],
        vec![],
    );
    let (mut s, head) = p.tunnel(&format!("127.0.0.1:{port}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
}

#[test]
fn names_resolving_to_non_public_addresses_are_refused_unless_pinned() {
    let echo = Echo::start();
    let port = echo.port;
    let (ns, asked) = name_server(&[
        ("private.test", "10.1.2.3".parse().unwrap()),
        ("loop.test", LOCAL),
        ("meta.test", "169.254.169.254".parse().unwrap()),
        ("six.test", "fd00::1".parse().unwrap()),
        ("pinned.test", "10.9.9.9".parse().unwrap()),
    ]);
    let p = Proxy::start(
        policy(
            &[
                ("private.test", port),
                ("loop.test", port),
                ("meta.test", port),
                ("six.test", port),
                ("pinned.test", port),
                ("nx.test", port),
            ],
            &[],
            &[("pinned.test", LOCAL)],
        ),
        Limits::default(),
        vec![],
        vec![ns],
    );
    for (host, addr, why) in [
        ("private.test", "10.1.2.3", "private 10.0.0.0/8"),
        ("loop.test", "127.0.0.1", "loopback"),
        ("meta.test", "169.254.169.254", "link-local"),
        ("six.test", "fd00::1", "unique-local"),
    ] {
        let (mut s, head) = p.tunnel(&format!("{host}:{port}"));
        assert!(head.starts_with("HTTP/1.1 403"), "{host}: {head}");
        let body = String::from_utf8(read_all(&mut s)).unwrap();
        assert!(
            body.contains("not a public address") && body.contains(why),
            "{body}"
        );
        let c = p.connection(host);
        assert_eq!(c.verdict, Verdict::Refused);
        assert_eq!(c.address, Some(addr.parse().unwrap()));
    }
    // A name without an address: 502, allowed by policy.
    let (_, head) = p.tunnel(&format!("nx.test:{port}"));
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert_eq!(p.connection("nx.test").verdict, Verdict::Allowed);
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 0);
    // Pinned: reached at the pin, and never asked upstream.
    let (mut s, head) = p.tunnel(&format!("pinned.test:{port}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert!(!asked.lock().unwrap().iter().any(|n| n == "pinned.test"));
    assert!(asked.lock().unwrap().iter().any(|n| n == "private.test"));
}

#[test]
fn tls_ports_need_the_admitted_server_name() {
    let echo = Echo::start();
    let port = echo.port;
    let limits = Limits {
        tls_ports: vec![port],
        ..Limits::default()
    };
    let p = Proxy::start(
        policy(&[("upstream.test", port)], &[], &[("upstream.test", LOCAL)]),
        limits,
        vec![],
        vec![],
    );
    for (sni, why) in [
        (
            Some("other.test"),
            "TLS server name other.test is not the admitted host upstream.test",
        ),
        (None, "TLS ClientHello without a server name"),
    ] {
        let (mut s, head) = p.tunnel(&format!("upstream.test:{port}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        s.write_all(&super::sni::test_hello(sni)).unwrap();
        assert!(closed(&mut s));
        let c = p.wait(why, |e| match e {
            Event::Connection(c) if c.reason.as_deref().is_some_and(|r| r.starts_with(why)) => {
                Some(c.clone())
            }
            _ => None,
        });
        assert_eq!(c.verdict, Verdict::Refused);
    }
    // Not TLS at all.
    let (mut s, _) = p.tunnel(&format!("upstream.test:{port}"));
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(closed(&mut s));
    assert_eq!(
        echo.accepted.load(Ordering::SeqCst),
        0,
        "nothing dialled before the check"
    );
    // The control: the right name, split over two writes, is forwarded
    // whole.
    let hello = super::sni::test_hello(Some("UPSTREAM.test"));
    let (mut s, _) = p.tunnel(&format!("upstream.test:{port}"));
    s.write_all(&hello[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&hello[10..]).unwrap();
    let mut back = vec![0u8; hello.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, hello);
}

#[test]
fn http_ports_need_the_admitted_host_header() {
    let (port, seen) = http_upstream();
    let limits = Limits {
        http_ports: vec![port],
        ..Limits::default()
    };
    let p = Proxy::start(
        policy(&[("web.test", port)], &[], &[("web.test", LOCAL)]),
        limits,
        vec![],
        vec![],
    );
    let (mut s, _) = p.tunnel(&format!("web.test:{port}"));
    s.write_all(b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
        .unwrap();
    assert!(closed(&mut s));
    p.wait("Host mismatch", |e| match e {
        Event::Connection(c)
            if c.reason.as_deref()
                == Some("Host header evil.test is not the admitted host web.test") =>
        {
            Some(())
        }
        _ => None,
    });
    // Absolute-form whose Host isn't the URL's: 403.
    let mut s = p.connect();
    write!(
        s,
        "GET http://web.test:{port}/x HTTP/1.1\r\nHost: evil.test\r\n\r\n"
    )
    .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 403"));
    assert!(seen.lock().unwrap().is_empty());

    // Controls: through the tunnel, and absolute-form rewritten to
    // origin-form with `Connection: close`.
    let (mut s, _) = p.tunnel(&format!("web.test:{port}"));
    write!(s, "GET /t HTTP/1.1\r\nHost: Web.Test:{port}\r\n\r\n").unwrap();
    assert!(String::from_utf8(read_all(&mut s)).unwrap().ends_with("ok"));
    let mut s = p.connect();
    write!(s, "GET http://web.test:{port}/a?b HTTP/1.1\r\nHost: web.test:{port}\r\nProxy-Connection: keep-alive\r\nX-Y: z\r\n\r\n").unwrap();
    let resp = String::from_utf8(read_all(&mut s)).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("ok"),
        "{resp}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].starts_with("GET /t HTTP/1.1\r\n"));
    assert_eq!(
        seen[1],
        format!(
            "GET /a?b HTTP/1.1\r\nHost: web.test:{port}\r\nX-Y: z\r\nConnection: close\r\n\r\n"
        )
    );
}

#[test]
fn the_dns_stub_answers_only_allowed_names_and_never_asks_upstream() {
    let (ns, asked) = name_server(&[("api.test", "93.184.216.34".parse().unwrap())]);
    let p = Proxy::start(
        policy(
            &[("api.test", 443), ("*.pkg.test", 443)],
            &["evil.pkg.test"],
            &[],
        ),
        Limits::default(),
        vec![],
        vec![ns],
    );
    let m = dns_ask_udp(p.dns_udp, "api.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), [Ipv4Addr::new(127, 77, 0, 1)]);
    let m = dns_ask_udp(p.dns_udp, "api.test.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    for name in [
        "example.com.",
        "evil.pkg.test.",
        "pkg.test.",
        "api.test.evil.com.",
    ] {
        let m = dns_ask_udp(p.dns_udp, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(m.answers.is_empty());
    }
    let ms = dns_ask_tcp(
        p.dns_tcp,
        &["a.pkg.test.", "exfil-data-here.example.com.", "api.test."],
    );
    assert_eq!(a_records(&ms[0]), [Ipv4Addr::new(127, 77, 0, 2)]);
    assert_eq!(ms[1].metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(a_records(&ms[2]), [Ipv4Addr::new(127, 77, 0, 1)]);
    // Refused names are reported (as `dns` connections), answered ones not.
    let c = p.connection("evil.pkg.test");
    assert_eq!(
        (c.via, c.verdict, c.port),
        (Via::Dns, Verdict::Refused, None)
    );
    assert_eq!(c.rule.as_deref(), Some("evil.pkg.test"));
    assert_eq!(
        p.connection("exfil-data-here.example.com")
            .reason
            .as_deref(),
        Some("not in allow")
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!p
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Connection(c) if c.host == "api.test")));
    assert!(
        asked.lock().unwrap().is_empty(),
        "{:?}",
        asked.lock().unwrap()
    );
}

#[test]
fn transparent_listeners_map_the_fake_address_back_to_the_name() {
    // The upstream and the transparent listener share the port: the fake
    // address 127.77.0.1 stands for `upstream.test`, pinned to 127.0.0.1.
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = up.local_addr().unwrap().port();
    let echo = Echo::on(up);
    let fake_side = TcpListener::bind(("127.77.0.1", port)).unwrap();
    let unknown = TcpListener::bind("127.0.0.1:0").unwrap();
    let unknown_addr = unknown.local_addr().unwrap();
    let p = Proxy::start(
        policy(&[("upstream.test", port)], &[], &[("upstream.test", LOCAL)]),
        Limits::default(),
        vec![fake_side, unknown],
        vec![],
    );
    // Before any DNS answer the address means nothing.
    let mut s = TcpStream::connect(("127.77.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    assert!(closed(&mut s));
    let m = dns_ask_udp(p.dns_udp, "upstream.test.", RecordType::A);
    assert_eq!(a_records(&m), [Ipv4Addr::new(127, 77, 0, 1)]);
    let mut s = TcpStream::connect(("127.77.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"hello through the fake address").unwrap();
    let mut back = [0u8; 30];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello through the fake address");
    drop(s);
    let c = p.connection("upstream.test");
    assert_eq!(
        (c.via, c.verdict, c.port),
        (Via::Transparent, Verdict::Allowed, Some(port))
    );
    assert_eq!((c.bytes_out, c.bytes_in), (30, 30));
    // A local address that isn't a fake one: closed and recorded.
    let mut s = TcpStream::connect(unknown_addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    assert!(closed(&mut s));
    let c = p.connection("127.0.0.1");
    assert_eq!((c.via, c.verdict), (Via::Transparent, Verdict::Refused));
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 1);
}

fn budgeted(echo: &Echo, f: impl FnOnce(&mut Budget)) -> Proxy {
    let mut pol = policy(
        &[("upstream.test", echo.port)],
        &[],
        &[("upstream.test", LOCAL)],
    );
    f(&mut pol.budget);
    Proxy::start(pol, Limits::default(), vec![], vec![])
}

#[test]
fn the_connection_after_the_budget_is_refused() {
    let echo = Echo::start();
    let target = format!("upstream.test:{}", echo.port);
    let p = budgeted(&echo, |b| b.connections = Some(2));
    let t1 = p.tunnel(&target);
    let t2 = p.tunnel(&target);
    assert!(t1.1.starts_with("HTTP/1.1 200") && t2.1.starts_with("HTTP/1.1 200"));
    let (mut s, head) = p.tunnel(&target);
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(String::from_utf8(read_all(&mut s))
        .unwrap()
        .contains("budget connections (2) used up"));
    let b = p.budget();
    assert_eq!(
        (b.which, b.limit, b.used, b.action),
        (Which::Connections, 2, 2, Action::Refuse)
    );
    drop(p);

    let p = budgeted(&echo, |b| b.per_minute = Some(1));
    assert!(p.tunnel(&target).1.starts_with("HTTP/1.1 200"));
    assert!(p.tunnel(&target).1.starts_with("HTTP/1.1 429"));
    assert_eq!(p.budget().which, Which::PerMinute);
    drop(p);

    let p = budgeted(&echo, |b| {
        b.connections = Some(1);
        b.on_exhausted = OnExhausted::Stop;
    });
    assert!(p.tunnel(&target).1.starts_with("HTTP/1.1 200"));
    assert!(p.tunnel(&target).1.starts_with("HTTP/1.1 429"));
    assert_eq!(p.budget().action, Action::Stop);
}

#[test]
fn a_byte_budget_closes_the_tunnel() {
    let echo = Echo::start();
    let target = format!("upstream.test:{}", echo.port);
    let p = budgeted(&echo, |b| b.bytes_out = Some(100_000));
    let (mut s, head) = p.tunnel(&target);
    assert!(head.starts_with("HTTP/1.1 200"));
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = pattern(16 * 1024);
        for _ in 0..64 {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    // Closed (what the echo sent back may be cut by the close).
    let back = read_all(&mut s);
    writer.join().unwrap();
    assert!(back.len() <= 100_000);
    let c = p.connection("upstream.test");
    assert_eq!(c.verdict, Verdict::Allowed);
    assert_eq!(c.bytes_out, 100_000, "{c:?}");
    assert_eq!(
        c.reason.as_deref(),
        Some("closed: budget bytes_out (100000) used up")
    );
    // Never more than the budget reaches the upstream. (Not always all of
    // it: the proxy closes a socket that still holds echoed bytes unread,
    // so the kernel resets it, and the echo may lose what it hadn't read.)
    assert!(echo.received.load(Ordering::SeqCst) <= 100_000);
    let b = p.budget();
    assert_eq!((b.which, b.used), (Which::BytesOut, 100_000));
    // And nothing new gets through.
    assert!(p.tunnel(&target).1.starts_with("HTTP/1.1 429"));
}

#[test]
fn misbehaving_clients_are_refused_and_the_proxy_goes_on() {
    let echo = Echo::start();
    let limits = Limits {
        head_timeout: Duration::from_millis(300),
        max_connections: 3,
        ..Limits::default()
    };
    let p = Proxy::start(
        policy(
            &[("upstream.test", echo.port)],
            &[],
            &[("upstream.test", LOCAL)],
        ),
        limits,
        vec![],
        vec![],
    );
    // Garbage, a head that never ends, a client that goes away, a huge
    // head, an origin-form request.
    let mut s = p.connect();
    s.write_all(b"\x00\x01\x02garbage\r\n\r\n").unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 400"));
    let mut s = p.connect();
    s.write_all(b"CONNECT upstream.test:1 HTTP/1.1\r\n")
        .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 400"));
    drop(p.connect());
    let mut s = p.connect();
    let _ = s.write_all(&vec![b'a'; 20_000]);
    assert!(read_head(&mut s).starts_with("HTTP/1.1 400"));
    let mut s = p.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: upstream.test\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 400"));
    for what in ["no complete request head", "the client closed before"] {
        p.wait(what, |e| match e {
            Event::Connection(c) if c.reason.as_deref().is_some_and(|r| r.contains(what)) => {
                Some(())
            }
            _ => None,
        });
    }
    // At the connection limit: 503 at once.
    let held: Vec<_> = (0..3)
        .map(|_| p.tunnel(&format!("upstream.test:{}", echo.port)))
        .collect();
    assert!(held.iter().all(|(_, h)| h.starts_with("HTTP/1.1 200")));
    let mut s = p.connect();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 503"));
    drop(held);
    // Still serving.
    let start = Instant::now();
    loop {
        let (mut s, head) = p.tunnel(&format!("upstream.test:{}", echo.port));
        if head.starts_with("HTTP/1.1 200") {
            s.write_all(b"ok").unwrap();
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            break;
        }
        assert!(start.elapsed() < WAIT, "{head}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_proxy_ends_when_the_events_pipe_breaks() {
    let p = Proxy::start(Egress::default(), Limits::default(), vec![], vec![]);
    let http = p.http;
    drop(p); // joins the proxy thread, which must return Ok
    assert!(TcpStream::connect(http).is_err());
}

#[test]
fn the_resolver_asks_a_and_aaaa_and_follows_the_answer() {
    let (ns, asked) = name_server(&[
        ("dual.test", "93.184.216.34".parse().unwrap()),
        ("dual.test", "2606:2800:220:1::1".parse().unwrap()),
    ]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = super::resolve::Resolver::new(vec![ns], Duration::from_secs(2));
    let addrs = rt.block_on(r.lookup("dual.test")).unwrap();
    assert_eq!(
        addrs,
        [
            "93.184.216.34".parse::<IpAddr>().unwrap(),
            "2606:2800:220:1::1".parse().unwrap()
        ]
    );
    // Cached: no new query.
    let n = asked.lock().unwrap().len();
    assert_eq!(rt.block_on(r.lookup("dual.test")).unwrap().len(), 2);
    assert_eq!(asked.lock().unwrap().len(), n);
    assert_eq!(
        rt.block_on(r.lookup("nx.test")),
        Err(super::resolve::LookupError::NoAddress)
    );
    // A server that doesn't answer: an error, not a hang.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = super::resolve::Resolver::new(
        vec![silent.local_addr().unwrap()],
        Duration::from_millis(200),
    );
    assert!(matches!(
        rt.block_on(r.lookup("x.test")),
        Err(super::resolve::LookupError::Failed(_))
    ));
}

/// Not a test: throughput and added latency through the proxy, side by
/// side with direct loopback connections (`cargo test --release --lib
/// egress::tests::bench -- --ignored --nocapture`). scripts/bench.sh
/// measures the whole of `confine run` instead.
#[test]
#[ignore]
fn bench() {
    const TOTAL: usize = 1 << 30;
    // A source that writes TOTAL bytes to every connection, and an echo.
    let src = TcpListener::bind("127.0.0.1:0").unwrap();
    let src_port = src.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in src.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let buf = vec![7u8; 256 * 1024];
                let mut left = TOTAL;
                while left > 0 {
                    let n = left.min(buf.len());
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    let echo = Echo::start();
    let p = Proxy::start(
        policy(
            &[("src.test", src_port), ("echo.test", echo.port)],
            &[],
            &[("src.test", LOCAL), ("echo.test", LOCAL)],
        ),
        Limits::default(),
        vec![],
        vec![],
    );
    let drain = |mut s: TcpStream| {
        let start = Instant::now();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, TOTAL);
        TOTAL as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
    };
    for _ in 0..2 {
        let direct = drain(TcpStream::connect(("127.0.0.1", src_port)).unwrap());
        let (s, head) = p.tunnel(&format!("src.test:{src_port}"));
        assert!(head.starts_with("HTTP/1.1 200"));
        let proxied = drain(s);
        eprintln!(
            "1 GiB: direct {direct:.0} MiB/s, through the proxy {proxied:.0} MiB/s ({:.0} %)",
            proxied / direct * 100.0
        );
    }
    // A new connection and one byte there and back, 300 times each way.
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut direct = Vec::new();
    let mut proxied = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", echo.port)).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(b"x").unwrap();
        s.read_exact(&mut [0u8; 1]).unwrap();
        direct.push(t.elapsed());
        let t = Instant::now();
        let mut s = TcpStream::connect(p.http).unwrap();
        s.set_nodelay(true).unwrap();
        write!(s, "CONNECT echo.test:{} HTTP/1.1\r\n\r\n", echo.port).unwrap();
        let mut head = [0u8; 39];
        s.read_exact(&mut head).unwrap();
        s.write_all(b"x").unwrap();
        s.read_exact(&mut [0u8; 1]).unwrap();
        proxied.push(t.elapsed());
    }
    let (d, pr) = (median(direct), median(proxied));
    eprintln!(
        "new connection + 1 byte echo: direct {d:?}, through the proxy {pr:?} (+{:?})",
        pr.saturating_sub(d)
    );
}

/// A peer that has its answer but never closes (here: an upstream that
/// neither sends nor closes after the client's end of stream) doesn't hold
/// the connection, and its record, for the whole idle time: once one
/// direction has ended, the other gets the short half-closed limit.
#[test]
fn a_half_closed_connection_ends_and_is_recorded() {
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mute.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in mute.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let p = Proxy::start(
        policy(&[("mute.test", port)], &[], &[("mute.test", LOCAL)]),
        Limits::default(),
        vec![],
        vec![],
    );
    let (mut s, head) = p.tunnel(&format!("mute.test:{port}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"request").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    // Within the tests' wait (10 s), not the idle time (30 min).
    let c = p.connection("mute.test");
    assert_eq!(c.verdict, Verdict::Allowed);
    assert_eq!(c.bytes_out, 7);
    assert!(
        c.reason.as_deref().is_some_and(|r| r.contains("idle")),
        "{c:?}"
    );
    assert_eq!(held.lock().unwrap().len(), 1);
}
