//! HTTP/1 request heads, as the proxy sees them: on the proxy port a
//! `CONNECT host:port` or an absolute-form request (`GET http://host/...`),
//! and on port 80 (transparent or tunnelled) an origin-form request whose
//! `Host` must name the admitted host. Parsed with `httparse` from a
//! bounded buffer; nothing here panics on any input.

/// Bytes of request head accepted, at most.
pub const MAX_HEAD: usize = 8 * 1024;
/// Headers accepted, at most.
const MAX_HEADERS: usize = 64;

/// Where a request asks to go.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// `CONNECT host:port`.
    Connect { host: String, port: u16 },
    /// `METHOD http://host[:port]/path`: `path` is the origin-form rest.
    Absolute {
        host: String,
        port: u16,
        path: String,
    },
    /// `METHOD /path`: an ordinary request, not a proxy request.
    Origin,
}

/// One parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: Target,
    /// The `Host` header: host only (port stripped), lower case, no
    /// trailing dot; `None` when absent.
    pub host: Option<String>,
    /// Bytes of the head, including the blank line; what follows in the
    /// buffer is the body or the tunnel's first bytes.
    pub head_len: usize,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The headers in order, for rewriting an absolute-form request.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What the bytes read so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    Incomplete,
    Complete(Request),
    Invalid(&'static str),
}

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Head::Invalid("request head too large")
        }
        Ok(httparse::Status::Partial) => return Head::Incomplete,
        Err(httparse::Error::TooManyHeaders) => return Head::Invalid("too many headers"),
        Err(_) => return Head::Invalid("malformed request head"),
    };
    if head_len > MAX_HEAD {
        return Head::Invalid("request head too large");
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Head::Invalid("malformed request head");
    };
    let mut host = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Head::Invalid("two Host headers");
            }
            let Some(value) = std::str::from_utf8(h.value).ok().map(str::trim) else {
                return Head::Invalid("Host header is not text");
            };
            match split_authority(value) {
                Some((name, _)) => host = Some(name),
                None => return Head::Invalid("bad Host header"),
            }
        }
    }
    let target = if method.eq_ignore_ascii_case("CONNECT") {
        match split_authority(path) {
            Some((host, Some(port))) => Target::Connect { host, port },
            _ => return Head::Invalid("CONNECT needs host:port"),
        }
    } else if path.starts_with('/') {
        Target::Origin
    } else if let Some(rest) = strip_prefix_ci(path, "http://") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Head::Invalid("credentials in the request URL");
        }
        let Some((host, port)) = split_authority(authority) else {
            return Head::Invalid("bad host in the request URL");
        };
        let path = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Target::Absolute {
            host,
            port: port.unwrap_or(80),
            path,
        }
    } else if strip_prefix_ci(path, "https://").is_some() {
        return Head::Invalid("https:// URLs go through CONNECT");
    } else {
        return Head::Invalid("unsupported request target");
    };
    Head::Complete(Request {
        method: method.to_string(),
        target,
        host,
        head_len,
        version,
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` into a normalized host
/// (lower case, no trailing dot, no brackets) and the port if written.
/// `None` for anything else, including a host that is neither a DNS name
/// nor an IP literal.
pub fn split_authority(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let v6: std::net::Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':')?)?),
        };
        return Some((v6.to_string(), port));
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(parse_port(p)?)),
            None => (s, None),
        }
    };
    let host = crate::plan::egress::normalize(host);
    valid_host(&host).then_some((host, port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok().filter(|&n| n != 0)
}

/// A DNS name (letters, digits, `-`, `_`, non-empty labels of at most 63
/// bytes, 253 in all) or an IPv4 literal.
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && h.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

/// Headers not passed on when an absolute-form request is forwarded: the
/// proxy's own, and those about this connection (the forwarded request
/// gets `Connection: close`, one request per connection).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "upgrade",
];

/// The head to send upstream for an absolute-form request: origin-form
/// target, the hop-by-hop headers dropped, `Host` added when missing and
/// `Connection: close`.
pub fn origin_form(req: &Request, path: &str, authority: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(req.head_len + 64);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(if req.version == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    if req.host.is_none() {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &req.headers {
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// A complete response the proxy writes itself (refusals and errors):
/// plain text, closed after.
pub fn response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> Request {
        match parse(buf) {
            Head::Complete(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect() {
        let r = complete(
            b"CONNECT api.Example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n\x16\x03",
        );
        assert_eq!(
            r.target,
            Target::Connect {
                host: "api.example.com".into(),
                port: 443
            }
        );
        assert_eq!(r.host.as_deref(), Some("api.example.com"));
        assert_eq!(r.head_len, 67);
        let r = complete(b"CONNECT [2001:db8::1]:22 HTTP/1.1\r\n\r\n");
        assert_eq!(
            r.target,
            Target::Connect {
                host: "2001:db8::1".into(),
                port: 22
            }
        );
        assert_eq!(r.host, None);
        for bad in [
            &b"CONNECT example.com HTTP/1.1\r\n\r\n"[..],
            b"CONNECT example.com:0 HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:65536 HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:+1 HTTP/1.1\r\n\r\n",
            b"CONNECT exa mple.com:443 HTTP/1.1\r\n\r\n",
            b"CONNECT ex%61mple.com:443 HTTP/1.1\r\n\r\n",
            b"CONNECT a..b:443 HTTP/1.1\r\n\r\n",
            b"CONNECT [nope]:443 HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(parse(bad), Head::Invalid(_)), "{bad:?}");
        }
    }

    #[test]
    fn absolute_form() {
        let r = complete(
            b"GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        );
        assert_eq!(
            r.target,
            Target::Absolute {
                host: "example.com".into(),
                port: 8080,
                path: "/a/b?c=d".into()
            }
        );
        let fwd = origin_form(&r, "/a/b?c=d", "example.com:8080");
        assert_eq!(
            String::from_utf8(fwd).unwrap(),
            "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let r = complete(b"GET http://example.com HTTP/1.0\r\n\r\n");
        assert_eq!(
            r.target,
            Target::Absolute {
                host: "example.com".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert_eq!(
            String::from_utf8(origin_form(&r, "/", "example.com")).unwrap(),
            "GET / HTTP/1.0\r\nHost: example.com\r\nConnection: close\r\n\r\n"
        );
        let r = complete(b"GET http://example.com?q HTTP/1.1\r\n\r\n");
        assert!(matches!(r.target, Target::Absolute { ref path, .. } if path == "/?q"));
        for bad in [
            &b"GET http://allowed.com@evil.com/ HTTP/1.1\r\n\r\n"[..],
            b"GET https://example.com/ HTTP/1.1\r\n\r\n",
            b"GET ftp://example.com/ HTTP/1.1\r\n\r\n",
            b"GET * HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00",
        ] {
            assert!(matches!(parse(bad), Head::Invalid(_)), "{bad:?}");
        }
    }

    #[test]
    fn origin_and_host() {
        let r = complete(b"GET / HTTP/1.1\r\nhOsT: Example.COM.:80\r\n\r\nbody");
        assert_eq!(r.target, Target::Origin);
        assert_eq!(r.host.as_deref(), Some("example.com"));
        assert_eq!(
            &b"GET / HTTP/1.1\r\nhOsT: Example.COM.:80\r\n\r\nbody"[r.head_len..],
            b"body"
        );
    }

    #[test]
    fn incomplete_and_bounded() {
        let full = b"GET / HTTP/1.1\r\nHost: a.com\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n]), Head::Incomplete, "{n}");
        }
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() < MAX_HEAD {
            big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(matches!(parse(&big), Head::Invalid(_)));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Head::Invalid("too many headers"));
    }
}
