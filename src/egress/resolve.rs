//! The proxy's own resolver: A and AAAA queries to the host's name servers
//! (from its `/etc/resolv.conf`, read by the caller before confinement),
//! over UDP with a random id and source port, TCP when the answer is
//! truncated. No system resolver, no files, no NSS: the proxy's seccomp
//! filter and Landlock ruleset leave it nothing else.
//!
//! Answers are kept for their TTL (at most [`MAX_CACHE_TTL`]), which only
//! saves round trips: every connection checks the address it dials, so a
//! cached answer can't be used to reach what a fresh one couldn't.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Longest time an answer is reused.
pub const MAX_CACHE_TTL: u32 = 30;
/// Names kept, at most.
const CACHE_SIZE: usize = 256;
/// Bytes of a response accepted.
const MAX_RESPONSE: usize = 65535;

/// The host's name servers, from `/etc/resolv.conf`'s text: every
/// `nameserver` line's address (IPv4 or IPv6, a `%zone` suffix dropped with
/// the address: a scoped link-local server can't be reached without it),
/// port 53, at most three as glibc reads. Other lines are ignored.
pub fn nameservers_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let l = l.split(['#', ';']).next().unwrap_or("");
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next())?
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .take(3)
        .collect()
}

/// Why a name has no address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// NXDOMAIN, or no A/AAAA record.
    NoAddress,
    /// No server answered usefully.
    Failed(String),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NoAddress => f.write_str("the name has no address"),
            LookupError::Failed(why) => write!(f, "could not resolve the name: {why}"),
        }
    }
}

pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    cache: RefCell<HashMap<String, (Instant, Vec<IpAddr>)>>,
}

impl Resolver {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Resolver {
        Resolver {
            servers,
            timeout,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// The addresses of `name` (a validated host name), IPv4 first.
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let now = Instant::now();
        if let Some((until, addrs)) = self.cache.borrow().get(name) {
            if now < *until {
                return Ok(addrs.clone());
            }
        }
        let qname = Name::from_ascii(format!("{name}."))
            .map_err(|_| LookupError::Failed("not a host name".into()))?;
        let mut last = LookupError::Failed("no name server".into());
        for &server in &self.servers {
            let (a, aaaa) = tokio::join!(
                self.query(server, &qname, RecordType::A),
                self.query(server, &qname, RecordType::AAAA)
            );
            match (a, aaaa) {
                (Ok(a), Ok(aaaa)) => {
                    let ttl = a.1.min(aaaa.1).min(MAX_CACHE_TTL);
                    let addrs: Vec<IpAddr> = a.0.into_iter().chain(aaaa.0).collect();
                    if addrs.is_empty() {
                        return Err(LookupError::NoAddress);
                    }
                    self.remember(name, &addrs, now + Duration::from_secs(ttl.into()));
                    return Ok(addrs);
                }
                // One family answered: use it rather than fail.
                (Ok((addrs, _)), Err(e)) | (Err(e), Ok((addrs, _))) => {
                    if addrs.is_empty() {
                        last = e;
                        continue;
                    }
                    return Ok(addrs);
                }
                (Err(e), Err(_)) => last = e,
            }
        }
        Err(last)
    }

    fn remember(&self, name: &str, addrs: &[IpAddr], until: Instant) {
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_SIZE {
            let now = Instant::now();
            cache.retain(|_, (u, _)| *u > now);
            if cache.len() >= CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(name.to_string(), (until, addrs.to_vec()));
    }

    /// One question to one server: the addresses and the lowest TTL.
    async fn query(
        &self,
        server: SocketAddr,
        name: &Name,
        rtype: RecordType,
    ) -> Result<(Vec<IpAddr>, u32), LookupError> {
        let id = random_id();
        let q = super::dns::query(id, name, rtype);
        let fail =
            |what: &str, e: std::io::Error| LookupError::Failed(format!("{what} {server}: {e}"));
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|e| fail("UDP socket for", e))?;
        sock.connect(server)
            .await
            .map_err(|e| fail("connecting to", e))?;
        sock.send(&q).await.map_err(|e| fail("sending to", e))?;
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + self.timeout;
        let msg = loop {
            let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(fail("receiving from", e)),
                Err(_) => return Err(LookupError::Failed(format!("{server} did not answer"))),
            };
            // Anything that isn't the answer to this question (a late or
            // forged datagram) is skipped.
            if let Some(m) = matching(&buf[..n], id, name, rtype) {
                break m;
            }
        };
        let msg = if msg.metadata.truncation {
            self.query_tcp(server, &q, id, name, rtype, deadline)
                .await?
        } else {
            msg
        };
        addresses(&msg, name, rtype)
    }

    async fn query_tcp(
        &self,
        server: SocketAddr,
        q: &[u8],
        id: u16,
        name: &Name,
        rtype: RecordType,
        deadline: tokio::time::Instant,
    ) -> Result<Message, LookupError> {
        let work = async {
            let mut s = TcpStream::connect(server).await?;
            let len = u16::try_from(q.len()).map_err(std::io::Error::other)?;
            let mut out = len.to_be_bytes().to_vec();
            out.extend_from_slice(q);
            s.write_all(&out).await?;
            let n = usize::from(s.read_u16().await?);
            let mut buf = vec![0u8; n.min(MAX_RESPONSE)];
            s.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(buf)) => buf,
            Ok(Err(e)) => return Err(LookupError::Failed(format!("TCP to {server}: {e}"))),
            Err(_) => {
                return Err(LookupError::Failed(format!(
                    "{server} did not answer over TCP"
                )))
            }
        };
        matching(&buf, id, name, rtype)
            .ok_or_else(|| LookupError::Failed(format!("{server} sent a bad answer over TCP")))
    }
}

/// `buf` parsed, if it is the response to query `id` for `name`/`rtype`.
fn matching(buf: &[u8], id: u16, name: &Name, rtype: RecordType) -> Option<Message> {
    let m = Message::from_vec(buf).ok()?;
    let q = m.queries.first()?;
    (m.metadata.id == id
        && m.metadata.message_type == MessageType::Response
        && m.queries.len() == 1
        && q.name() == name
        && q.query_type() == rtype)
        .then_some(m)
}

/// The addresses of `rtype` for `name` in `msg`, following CNAMEs (a
/// bounded chain), and the lowest TTL among the records used.
fn addresses(
    msg: &Message,
    name: &Name,
    rtype: RecordType,
) -> Result<(Vec<IpAddr>, u32), LookupError> {
    match msg.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Err(LookupError::NoAddress),
        other => return Err(LookupError::Failed(format!("server answered {other}"))),
    }
    let mut names = vec![name.clone()];
    let mut ttl = MAX_CACHE_TTL;
    for _ in 0..8 {
        let mut grew = false;
        for r in &msg.answers {
            if let RData::CNAME(target) = &r.data {
                if names.contains(&r.name) && !names.contains(&target.0) {
                    names.push(target.0.clone());
                    ttl = ttl.min(r.ttl);
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }
    let mut out = Vec::new();
    for r in &msg.answers {
        if !names.contains(&r.name) {
            continue;
        }
        let ip = match (&r.data, rtype) {
            (RData::A(a), RecordType::A) => IpAddr::V4(a.0),
            (RData::AAAA(a), RecordType::AAAA) => IpAddr::V6(a.0),
            _ => continue,
        };
        if !out.contains(&ip) {
            out.push(ip);
            ttl = ttl.min(r.ttl);
        }
    }
    Ok((out, ttl))
}

/// A random 16-bit query id from the kernel.
fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: a 2-byte buffer valid for writes; flags 0.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, 0) };
    if n != 2 {
        // getrandom can't fail on a 2-byte request once the pool is up;
        // the source port is random anyway.
        let t = Instant::now().elapsed().subsec_nanos();
        return t as u16;
    }
    u16::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver  1.1.1.1 # cloudflare\noptions edns0\nnameserver fe80::1%eth0\nnameserver 2606:4700:4700::1111\nnameserver bogus\n;nameserver 9.9.9.9\nnameserver 8.8.8.8\n";
        let ns = nameservers_from_resolv_conf(text);
        assert_eq!(
            ns,
            [
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "1.1.1.1:53".parse().unwrap(),
                "[2606:4700:4700::1111]:53".parse().unwrap(),
            ]
        );
        assert!(nameservers_from_resolv_conf("").is_empty());
    }

    fn response(q: &[u8], f: impl FnOnce(&mut Message)) -> Message {
        let mut m = Message::from_vec(q).unwrap();
        m.metadata.message_type = MessageType::Response;
        f(&mut m);
        m
    }

    #[test]
    fn answers_follow_cnames() {
        let name = Name::from_ascii("www.example.com.").unwrap();
        let q = super::super::dns::query(5, &name, RecordType::A);
        let cname = Name::from_ascii("cdn.example.net.").unwrap();
        let m = response(&q, |m| {
            use hickory_proto::rr::{rdata, Record};
            m.add_answer(Record::from_rdata(
                name.clone(),
                300,
                RData::CNAME(rdata::CNAME(cname.clone())),
            ));
            m.add_answer(Record::from_rdata(
                cname.clone(),
                20,
                RData::A(Ipv4Addr::new(93, 184, 216, 34).into()),
            ));
            m.add_answer(Record::from_rdata(
                Name::from_ascii("other.example.").unwrap(),
                20,
                RData::A(Ipv4Addr::new(10, 0, 0, 1).into()),
            ));
        });
        let bytes = m.to_vec().unwrap();
        let m = matching(&bytes, 5, &name, RecordType::A).unwrap();
        assert_eq!(
            addresses(&m, &name, RecordType::A).unwrap(),
            (vec![IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34))], 20)
        );
        // Wrong id, type or name: not the answer.
        assert!(matching(&bytes, 6, &name, RecordType::A).is_none());
        assert!(matching(&bytes, 5, &name, RecordType::AAAA).is_none());
        assert!(matching(&bytes, 5, &cname, RecordType::A).is_none());
        assert!(
            matching(&q, 5, &name, RecordType::A).is_none(),
            "a query isn't an answer"
        );
        let nx = response(&q, |m| m.metadata.response_code = ResponseCode::NXDomain);
        assert_eq!(
            addresses(&nx, &name, RecordType::A),
            Err(LookupError::NoAddress)
        );
        let sf = response(&q, |m| m.metadata.response_code = ResponseCode::ServFail);
        assert!(matches!(
            addresses(&sf, &name, RecordType::A),
            Err(LookupError::Failed(_))
        ));
    }
}
