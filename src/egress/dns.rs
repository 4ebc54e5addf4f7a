//! The DNS stub the sandbox's `/etc/resolv.conf` names (DESIGN.md §9):
//! policy, not resolution. It answers from the policy alone and never asks
//! anyone upstream, so DNS can't carry data out of the sandbox.
//!
//! - A query for a name [`Egress::resolves`]: a fake address from the
//!   [`FakeTable`] (TTL [`TTL`] s; pinned names too: the agent never sees a
//!   real address).
//! - AAAA and every other type for such a name: NODATA (NOERROR, no
//!   answer), so clients use the IPv4 address at once.
//! - Any other name: NXDOMAIN.
//! - Not a standard query of one IN question, or not parseable: REFUSED
//!   (a message too short to carry a header, or a response, gets nothing).
//!
//! Parsing and building use hickory-proto; names are accepted only as
//! host names (letters, digits, `-`, `_`), anything else is NXDOMAIN.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::fake::FakeTable;
use crate::plan::egress::Egress;

/// Seconds a client may keep a fake address. Short, though the addresses
/// are stable for the run: nothing outside the run may rely on them.
pub const TTL: u32 = 5;

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The response to send, if any.
    pub reply: Option<Vec<u8>>,
    /// A refused query to report.
    pub refused: Option<Refused>,
}

/// A query the stub refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// The name (empty when the message was too malformed to have one).
    pub name: String,
    pub reason: String,
    /// The `deny` entry that refused it, if one did.
    pub rule: Option<String>,
}

fn refused(name: String, reason: impl Into<String>, rule: Option<String>) -> Option<Refused> {
    Some(Refused {
        name,
        reason: reason.into(),
        rule,
    })
}

/// Answers one query message (UDP payload or TCP message without its
/// length prefix).
pub fn answer(query: &[u8], policy: &Egress, fake: &mut FakeTable) -> Outcome {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        // No header to answer, or a response: nothing (no reflection).
        return Outcome {
            reply: None,
            refused: None,
        };
    }
    let refused_header = |why: &str| Outcome {
        reply: Some(header_only(query, 5)),
        refused: refused(String::new(), why, None),
    };
    let Ok(msg) = Message::from_vec(query) else {
        return refused_header("malformed DNS query");
    };
    if msg.metadata.op_code != OpCode::Query {
        return refused_header("DNS operation other than a standard query");
    }
    let [q] = msg.queries.as_slice() else {
        return refused_header("DNS query without exactly one question");
    };
    if q.query_class() != DNSClass::IN {
        return refused_header("DNS query of a class other than IN");
    }
    let mut resp = Message::response(msg.metadata.id, OpCode::Query);
    resp.metadata.message_type = MessageType::Response;
    resp.metadata.recursion_desired = msg.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_query(q.clone());

    let mut refusal = None;
    match host_name(q.name()) {
        Some(name) if policy.resolves(&name) => {
            if q.query_type() == RecordType::A {
                match fake.address(&name) {
                    Some(ip) => {
                        resp.add_answer(Record::from_rdata(
                            q.name().clone(),
                            TTL,
                            RData::A(ip.into()),
                        ));
                    }
                    None => {
                        resp.metadata.response_code = ResponseCode::ServFail;
                        refusal = refused(name, "no fake address left for a new name", None);
                    }
                }
            }
            // Other types: NODATA.
        }
        Some(name) => {
            resp.metadata.response_code = ResponseCode::NXDomain;
            let (why, rule) = why_not(policy, &name);
            refusal = refused(name, why, rule);
        }
        None => {
            resp.metadata.response_code = ResponseCode::NXDomain;
            refusal = refused(q.name().to_ascii(), "not a host name", None);
        }
    }
    Outcome {
        reply: Some(resp.to_vec().unwrap_or_else(|_| header_only(query, 2))),
        refused: refusal,
    }
}

/// Why the stub doesn't answer for `name`: the `deny` entry that refuses
/// it on every port, or that no `allow` entry names it.
fn why_not(policy: &Egress, name: &str) -> (String, Option<String>) {
    match policy
        .deny
        .iter()
        .find(|d| d.port.is_none() && d.pattern.matches(name))
    {
        Some(d) => (format!("denied by `{}`", d.text), Some(d.text.clone())),
        None if policy.allow.iter().any(|a| a.pattern.matches(name)) => {
            ("denied on every port it is allowed on".into(), None)
        }
        None => ("not in allow".into(), None),
    }
}

/// The name as the policy matches it (lower case, no trailing dot), if
/// every label is a host-name label.
fn host_name(name: &Name) -> Option<String> {
    let mut out = String::new();
    for label in name.iter() {
        if label.is_empty()
            || label.len() > 63
            || !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    (!out.is_empty() && out.len() <= 253).then_some(out)
}

/// A response of just the header: the query's id and opcode, `rcode`, no
/// sections.
fn header_only(query: &[u8], rcode: u8) -> Vec<u8> {
    let mut h = vec![0u8; 12];
    h[0] = query[0];
    h[1] = query[1];
    h[2] = 0x80 | (query[2] & 0x78) | (query[2] & 0x01);
    h[3] = 0x80 | rcode;
    h
}

/// A query message, for the proxy's own resolver and the tests.
pub fn query(id: u16, name: &Name, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name.clone(), rtype));
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::egress::{HostPattern, HostRule};
    use std::net::Ipv4Addr;

    fn policy() -> Egress {
        let rule = |p, port, t: &str| HostRule {
            pattern: p,
            port,
            text: t.into(),
        };
        Egress {
            allow: vec![
                rule(
                    HostPattern::Exact("api.example.com".into()),
                    Some(443),
                    "api.example.com",
                ),
                rule(
                    HostPattern::Beneath("example.org".into()),
                    Some(443),
                    "*.example.org",
                ),
                rule(
                    HostPattern::Exact("pinned.test".into()),
                    Some(80),
                    "pinned.test:80",
                ),
            ],
            deny: vec![rule(
                HostPattern::Exact("bad.example.org".into()),
                None,
                "bad.example.org",
            )],
            hosts: [("pinned.test".to_string(), "10.1.2.3".parse().unwrap())].into(),
            ..Egress::default()
        }
    }

    fn ask(fake: &mut FakeTable, name: &str, t: RecordType) -> (Message, Option<(String, String)>) {
        let q = query(0x1234, &Name::from_ascii(name).unwrap(), t);
        let out = answer(&q, &policy(), fake);
        (
            Message::from_vec(&out.reply.unwrap()).unwrap(),
            out.refused.map(|r| (r.name, r.reason)),
        )
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

    #[test]
    fn allowed_names_get_fake_addresses() {
        let mut fake = FakeTable::new(100);
        let (m, refused) = ask(&mut fake, "API.example.com.", RecordType::A);
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&m), [Ipv4Addr::new(127, 77, 0, 1)]);
        assert_eq!(m.answers[0].ttl, TTL);
        assert_eq!(refused, None);
        // Pinned names get a fake address too, never the pin.
        let (m, _) = ask(&mut fake, "pinned.test", RecordType::A);
        assert_eq!(a_records(&m), [Ipv4Addr::new(127, 77, 0, 2)]);
        let (m, _) = ask(&mut fake, "x.y.example.org", RecordType::A);
        assert_eq!(a_records(&m), [Ipv4Addr::new(127, 77, 0, 3)]);
        // Stable.
        let (m, _) = ask(&mut fake, "api.example.com", RecordType::A);
        assert_eq!(a_records(&m), [Ipv4Addr::new(127, 77, 0, 1)]);
        assert_eq!(
            fake.name(Ipv4Addr::new(127, 77, 0, 3)),
            Some("x.y.example.org")
        );
    }

    #[test]
    fn nodata_for_other_types() {
        let mut fake = FakeTable::new(100);
        for t in [
            RecordType::AAAA,
            RecordType::MX,
            RecordType::TXT,
            RecordType::ANY,
        ] {
            let (m, refused) = ask(&mut fake, "api.example.com", t);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.answers.is_empty());
            assert_eq!(refused, None);
        }
        assert!(fake.is_empty());
    }

    #[test]
    fn nxdomain_for_everything_else() {
        let mut fake = FakeTable::new(100);
        for (name, why) in [
            ("example.com", "not in allow"),
            ("example.org", "not in allow"),
            ("bad.example.org", "denied by `bad.example.org`"),
            ("evil.com", "not in allow"),
            ("api.example.com.evil.com", "not in allow"),
        ] {
            for t in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
                let (m, refused) = ask(&mut fake, name, t);
                assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
                assert!(m.answers.is_empty());
                assert_eq!(refused, Some((name.to_string(), why.to_string())));
            }
        }
        assert!(fake.is_empty());
    }

    #[test]
    fn odd_names_and_messages() {
        let mut fake = FakeTable::new(1);
        // A label that isn't a host-name label.
        let name = Name::from_labels(vec![&b"a b"[..], b"example", b"org"]).unwrap();
        let out = answer(&query(1, &name, RecordType::A), &policy(), &mut fake);
        let m = Message::from_vec(&out.reply.unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(out.refused.unwrap().reason, "not a host name");
        // The table full: SERVFAIL for a new name.
        ask(&mut fake, "api.example.com", RecordType::A);
        let (m, refused) = ask(&mut fake, "z.example.org", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(refused.is_some());
        // Garbage with a header: REFUSED with the id; too short or a
        // response: nothing.
        let out = answer(b"\xab\xcd\x01\x00garbage-garbage", &policy(), &mut fake);
        let r = out.reply.unwrap();
        assert_eq!(r, [0xab, 0xcd, 0x81, 0x85, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(answer(b"\x01\x02", &policy(), &mut fake).reply.is_none());
        let mut resp = query(
            7,
            &Name::from_ascii("api.example.com").unwrap(),
            RecordType::A,
        );
        resp[2] |= 0x80;
        assert!(answer(&resp, &policy(), &mut fake).reply.is_none());
        // Not a standard query: REFUSED.
        let mut notify = query(
            7,
            &Name::from_ascii("api.example.com").unwrap(),
            RecordType::A,
        );
        notify[2] |= 4 << 3;
        let r = answer(&notify, &policy(), &mut fake).reply.unwrap();
        assert_eq!(r[3] & 0x0f, 5);
    }

    #[test]
    fn no_panics_on_mutations() {
        let mut fake = FakeTable::new(10);
        let base = query(
            9,
            &Name::from_ascii("a.example.org").unwrap(),
            RecordType::A,
        );
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            let cut = (next() as usize) % (b.len() + 1);
            let _ = answer(&b[..cut], &policy(), &mut fake);
        }
    }
}
