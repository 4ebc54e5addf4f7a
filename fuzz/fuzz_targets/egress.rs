//! Fuzz target `egress`: what the egress proxy parses from the agent must
//! never panic, whatever the bytes: the TLS ClientHello's server name, HTTP
//! request heads, DNS queries to the stub (answered from a small
//! policy, with a bounded fake address table), and the usage fields of a
//! secret route's responses (JSON and event streams, from the upstream).
//!
//! Run with `FUZZ_TARGET=egress scripts/fuzz.sh [SECONDS]`.
#![no_main]

use std::sync::OnceLock;

use confine::egress::usage::{Reader, Spent};
use confine::egress::{dns, fake::FakeTable, http, sni};
use confine::plan::egress::{Egress, HostPattern, HostRule};
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static Egress {
    static P: OnceLock<Egress> = OnceLock::new();
    P.get_or_init(|| {
        let rule = |pattern, port, text: &str| HostRule {
            pattern,
            port,
            text: text.into(),
        };
        Egress {
            allow: vec![
                rule(HostPattern::Exact("api.example.com".into()), Some(443), "api.example.com"),
                rule(HostPattern::Beneath("example.org".into()), Some(443), "*.example.org"),
            ],
            deny: vec![rule(HostPattern::Exact("bad.example.org".into()), None, "bad.example.org")],
            ..Egress::default()
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = sni::parse(data);
    if let http::Head::Complete(req) = http::parse(data) {
        if let http::Target::Absolute { path, host, .. } = &req.target {
            let _ = http::origin_form(&req, path, host);
        }
    }
    let mut fake = FakeTable::new(4);
    let out = dns::answer(data, policy(), &mut fake);
    if let Some(reply) = out.reply {
        assert!(reply.len() >= 12);
    }
    for ct in ["application/json", "text/event-stream"] {
        let mut r = Reader::for_content_type(Some(ct));
        let mut s = Spent::default();
        for c in data.chunks(7) {
            r.feed(c, &mut s);
        }
        r.finish(&mut s);
        let _ = s.tokens();
    }
});
