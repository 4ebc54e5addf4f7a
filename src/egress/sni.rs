//! The server name of a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3),
//! read from the first bytes a client sends on port 443, before anything is
//! dialled. Hand-written and small: every length is checked against what is
//! left, nothing indexes past a slice, nothing allocates beyond one bounded
//! buffer, so no input can make it panic (the fuzz target
//! `fuzz/fuzz_targets/client_hello.rs` runs it on arbitrary bytes).
//!
//! The ClientHello may span several TLS records (a large key share can push
//! it over one); the handshake bytes of consecutive handshake records are
//! joined until the whole message is there.

/// Bytes of handshake message accepted, at most: a ClientHello with
/// post-quantum key shares is under 2 KiB; 16 KiB leaves room for padding
/// and many extensions.
pub const MAX_HELLO: usize = 16 * 1024;

/// What the bytes read so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// A prefix of a plausible ClientHello: read more.
    Incomplete,
    /// A whole ClientHello, with its server name (lower case, no trailing
    /// dot), or `None` when it names none.
    Complete(Option<String>),
    /// Not a ClientHello, or a malformed one: why.
    Invalid(&'static str),
}

/// Looks at what the client has sent so far.
pub fn parse(buf: &[u8]) -> Hello {
    let mut handshake: Vec<u8> = Vec::new();
    let mut rest = buf;
    loop {
        if rest.is_empty() {
            return Hello::Incomplete;
        }
        // Record header: type (22 = handshake), version (3, x), length.
        if rest[0] != 22 {
            return Hello::Invalid("not a TLS handshake record");
        }
        if rest.len() >= 2 && rest[1] != 3 {
            return Hello::Invalid("not a TLS record version");
        }
        if rest.len() < 5 {
            return Hello::Incomplete;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > 16384 {
            return Hello::Invalid("bad TLS record length");
        }
        let Some(fragment) = rest.get(5..5 + len) else {
            // The record isn't all there; what is there may already show a
            // bad message header.
            return match check_header(&handshake, rest.get(5..).unwrap_or(&[])) {
                Err(why) => Hello::Invalid(why),
                Ok(_) => Hello::Incomplete,
            };
        };
        if handshake.len() + fragment.len() > MAX_HELLO + 4 {
            return Hello::Invalid("ClientHello too long");
        }
        handshake.extend_from_slice(fragment);
        rest = &rest[5 + len..];
        match check_header(&handshake, &[]) {
            Err(why) => return Hello::Invalid(why),
            Ok(Some(body_len)) if handshake.len() >= 4 + body_len => {
                return match client_hello(&handshake[4..4 + body_len]) {
                    Ok(name) => Hello::Complete(name),
                    Err(why) => Hello::Invalid(why),
                };
            }
            Ok(_) => {}
        }
    }
}

/// The length of the handshake message whose first bytes are `joined`
/// followed by `more`, once its 4-byte header is there; an error if the
/// message isn't a ClientHello or is too long.
fn check_header(joined: &[u8], more: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut h = [0u8; 4];
    let mut n = 0;
    for &b in joined.iter().chain(more).take(4) {
        h[n] = b;
        n += 1;
    }
    if n >= 1 && h[0] != 1 {
        return Err("not a ClientHello");
    }
    if n < 4 {
        return Ok(None);
    }
    let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
    if len > MAX_HELLO {
        return Err("ClientHello too long");
    }
    Ok(Some(len))
}

/// A bounds-checked reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated ClientHello");
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a 1- or 2-byte length prefix.
    fn vec8(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u8()?;
        self.take(n.into())
    }

    fn vec16(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u16()?;
        self.take(n.into())
    }
}

const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;

fn client_hello(body: &[u8]) -> Result<Option<String>, &'static str> {
    let mut r = Reader(body);
    let version = r.u16()?;
    if version >> 8 != 3 {
        return Err("not a TLS ClientHello version");
    }
    r.take(32)?; // random
    if r.vec8()?.len() > 32 {
        return Err("session id too long");
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err("bad cipher suite list");
    }
    if r.vec8()?.is_empty() {
        return Err("no compression methods");
    }
    if r.0.is_empty() {
        // No extensions at all (SSL 3 style): no server name.
        return Ok(None);
    }
    let mut exts = Reader(r.vec16()?);
    if !r.0.is_empty() {
        return Err("bytes after the extensions");
    }
    let mut name = None;
    let mut seen = false;
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        if seen {
            return Err("two server_name extensions");
        }
        seen = true;
        name = server_name(data)?;
    }
    Ok(name)
}

fn server_name(data: &[u8]) -> Result<Option<String>, &'static str> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16()?);
    if !outer.0.is_empty() {
        return Err("bytes after the server name list");
    }
    let mut host = None;
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind != NAME_TYPE_HOST {
            continue;
        }
        if host.is_some() {
            return Err("two host names in server_name");
        }
        host = Some(host_name(name)?);
    }
    Ok(host)
}

/// A DNS host name as RFC 6066 allows it: ASCII letters, digits, `-`, `_`
/// and dots, no empty label, at most 253 bytes (a trailing dot, which the
/// RFC forbids but some clients send, is dropped).
fn host_name(raw: &[u8]) -> Result<String, &'static str> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() || raw.len() > 253 {
        return Err("bad server name length");
    }
    if !raw
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || raw
            .split(|&b| b == b'.')
            .any(|l| l.is_empty() || l.len() > 63)
    {
        return Err("server name is not a host name");
    }
    Ok(String::from_utf8_lossy(raw).to_ascii_lowercase())
}

/// A minimal ClientHello naming `name` (or no name), for tests.
#[cfg(test)]
pub(crate) fn test_hello(name: Option<&str>) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(name) = name {
        let n = name.len() as u16;
        exts.extend_from_slice(&[0, 0]);
        exts.extend_from_slice(&(n + 5).to_be_bytes());
        exts.extend_from_slice(&(n + 3).to_be_bytes());
        exts.push(0);
        exts.extend_from_slice(&n.to_be_bytes());
        exts.extend_from_slice(name.as_bytes());
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    rec.extend_from_slice(&msg);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURL: &[u8] = include_bytes!("testdata/curl-hello.bin");
    const OPENSSL: &[u8] = include_bytes!("testdata/openssl-hello.bin");
    const OPENSSL_NOSNI: &[u8] = include_bytes!("testdata/openssl-nosni-hello.bin");
    const OPENSSL_TLS12: &[u8] = include_bytes!("testdata/openssl-tls12-hello.bin");

    #[test]
    fn real_client_hellos() {
        assert_eq!(parse(CURL), Hello::Complete(Some("api.example.com".into())));
        assert_eq!(
            parse(OPENSSL),
            Hello::Complete(Some("files.pythonhosted.org".into()))
        );
        assert_eq!(parse(OPENSSL_NOSNI), Hello::Complete(None));
        assert_eq!(
            parse(&test_hello(Some("a.test"))),
            Hello::Complete(Some("a.test".into()))
        );
        assert_eq!(parse(&test_hello(None)), Hello::Complete(None));
        assert_eq!(
            parse(OPENSSL_TLS12),
            Hello::Complete(Some("github.com".into()))
        );
    }

    #[test]
    fn every_prefix_is_incomplete_and_extra_bytes_dont_matter() {
        for hello in [CURL, OPENSSL, OPENSSL_NOSNI, OPENSSL_TLS12] {
            for n in 0..hello.len() {
                assert_eq!(parse(&hello[..n]), Hello::Incomplete, "prefix {n}");
            }
            let mut more = hello.to_vec();
            more.extend_from_slice(b"\x14\x03\x03\x00\x01\x01garbage");
            assert!(matches!(parse(&more), Hello::Complete(_)));
        }
    }

    /// The same handshake message split over several records.
    #[test]
    fn fragmented_over_records() {
        let msg = &CURL[5..];
        for size in [1, 7, 100, 300] {
            let mut buf = Vec::new();
            for chunk in msg.chunks(size) {
                buf.extend_from_slice(&[22, 3, 1]);
                buf.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
                buf.extend_from_slice(chunk);
            }
            assert_eq!(
                parse(&buf),
                Hello::Complete(Some("api.example.com".into())),
                "{size}"
            );
            assert_eq!(parse(&buf[..buf.len() - 1]), Hello::Incomplete);
        }
    }

    /// Builds a ClientHello with the given extensions block.
    fn hello_with(exts: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(exts);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        rec.extend_from_slice(&msg);
        rec
    }

    fn sni_ext(names: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (kind, name) in names {
            list.push(*kind);
            list.extend_from_slice(&(name.len() as u16).to_be_bytes());
            list.extend_from_slice(name);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(&data);
        ext
    }

    #[test]
    fn built_hellos() {
        let one = sni_ext(&[(0, b"Example.COM.")]);
        assert_eq!(
            parse(&hello_with(&one)),
            Hello::Complete(Some("example.com".into()))
        );
        // Another extension first, then the name.
        let mut exts = vec![0, 10, 0, 2, 0, 29];
        exts.extend_from_slice(&one);
        assert_eq!(
            parse(&hello_with(&exts)),
            Hello::Complete(Some("example.com".into()))
        );
        assert_eq!(parse(&hello_with(&[])), Hello::Complete(None));
        // Unknown name types are skipped.
        let other = sni_ext(&[(7, b"whatever"), (0, b"a.b")]);
        assert_eq!(
            parse(&hello_with(&other)),
            Hello::Complete(Some("a.b".into()))
        );
    }

    #[test]
    fn malformed_hellos() {
        let two_names = sni_ext(&[(0, b"a.com"), (0, b"b.com")]);
        let mut two_exts = sni_ext(&[(0, b"a.com")]);
        two_exts.extend_from_slice(&sni_ext(&[(0, b"b.com")]));
        for (exts, why) in [
            (two_names, "two host names in server_name"),
            (two_exts, "two server_name extensions"),
            (sni_ext(&[(0, b"")]), "bad server name length"),
            (sni_ext(&[(0, b"a..b")]), "server name is not a host name"),
            (sni_ext(&[(0, b"a b")]), "server name is not a host name"),
            (
                sni_ext(&[(0, b"a\0.com")]),
                "server name is not a host name",
            ),
            (sni_ext(&[(0, &[b'a'; 300])]), "bad server name length"),
            (vec![0, 0, 0, 5, 0, 3, 0, 0], "truncated ClientHello"),
        ] {
            assert_eq!(parse(&hello_with(&exts)), Hello::Invalid(why));
        }
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Hello::Invalid("not a TLS handshake record")
        );
        assert_eq!(
            parse(b"\x16\x02\x00"),
            Hello::Invalid("not a TLS record version")
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x00\x00"),
            Hello::Invalid("bad TLS record length")
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x00\x10\x02"),
            Hello::Invalid("not a ClientHello")
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x00\x10\x01\xff\xff\xff"),
            Hello::Invalid("ClientHello too long")
        );
    }

    /// Cheap deterministic fuzzing: flipped, cut and random bytes never
    /// panic.
    #[test]
    fn no_panics_on_mutations() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for hello in [CURL, OPENSSL, OPENSSL_NOSNI, OPENSSL_TLS12] {
            for _ in 0..3000 {
                let mut b = hello.to_vec();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
                let cut = (next() as usize) % (b.len() + 1);
                let _ = parse(&b[..cut]);
                let _ = parse(&b);
            }
        }
        for _ in 0..3000 {
            let len = (next() % 600) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if !b.is_empty() {
                b[0] = 22;
            }
            let _ = parse(&b);
        }
    }
}
