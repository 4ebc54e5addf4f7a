//! The network part of the plan, and what it does and doesn't stop in words
//! (`explain`).

use serde::Serialize;

use super::egress::{Budget, Egress, HostPattern, HostRule, OnExhausted};
use super::LandlockPlan;
use crate::profile::{self, NetworkMode, PortRule, Profile};
use crate::sandbox::landlock as ll;

#[derive(Clone, Debug, Serialize)]
pub struct NetPlan {
    pub mode: NetworkMode,
    /// Ports, or `any`.
    pub connect_tcp: Vec<PortRule>,
    pub bind_tcp: Vec<PortRule>,
    /// What `socket` and `socketpair` may open.
    pub socket_families: Vec<&'static str>,
    /// What confine enforces on the network beyond the namespace, in words.
    pub enforced: Vec<String>,
    /// What it doesn't, in `host` and `proxy` mode.
    pub not_restricted: Vec<String>,
    /// `proxy` mode: the policy the egress proxy and its DNS stub enforce.
    pub egress: Option<Egress>,
}

/// The network part of the plan, with what it does and doesn't stop
/// spelled out (`explain`).
pub(super) fn plan(p: &Profile, ll: &LandlockPlan) -> NetPlan {
    let n = &p.network;
    let handled = ll.spec.net.as_ref().map_or(0, |r| r.handled);
    let mut enforced = Vec::new();
    let mut not_restricted = Vec::new();
    if n.mode.value == NetworkMode::Host {
        let ports = |rules: &[PortRule]| {
            let v = profile::ports(rules);
            v.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        };
        for (verb, rules, any, right) in [
            (
                "connect",
                &n.connect_tcp,
                n.connect_any(),
                ll::NET_CONNECT_TCP,
            ),
            ("bind", &n.bind_tcp, n.bind_any(), ll::NET_BIND_TCP),
        ] {
            let line = if any {
                format!("TCP {verb}: any port")
            } else if handled & right == 0 {
                format!("TCP {verb}: any port (port rules need Landlock ABI 4; not enforced here)")
            } else if profile::ports(rules).is_empty() {
                format!("TCP {verb}: no port (Landlock)")
            } else {
                format!("TCP {verb}: only ports {} (Landlock)", ports(rules))
            };
            enforced.push(line);
        }
        if tcp_ports_restricted(p) {
            enforced.push(
                "TCP Fast Open refused (EOPNOTSUPP), and stream sockets of other protocols (MPTCP, SCTP, SMC) (EPROTONOSUPPORT): seccomp, as Landlock's port rules don't see them".into(),
            );
        }
        not_restricted
            .push("UDP and ICMP, to any address and port: Landlock has no rules for them".into());
        if !n.bind_any() {
            not_restricted.push(
                "listen() on a TCP socket that was never bound: it takes an ephemeral port, which no Landlock rule checks, and accepts connections from wherever the host's firewall lets them come".into(),
            );
        }
        not_restricted.push(
            "which hosts: port rules don't look at addresses, so the host's own services on a listed port (127.0.0.1 included) are reachable too".into(),
        );
    }
    let egress = (n.mode.value == NetworkMode::Proxy).then(|| egress(p));
    if let Some(e) = &egress {
        describe(e, &mut enforced, &mut not_restricted);
    }
    NetPlan {
        mode: n.mode.value,
        connect_tcp: n.connect_tcp.clone(),
        bind_tcp: n.bind_tcp.clone(),
        socket_families: n.socket_families.iter().map(|f| f.value.name()).collect(),
        enforced,
        not_restricted,
        egress,
    }
}

/// The egress policy of a proxy-mode profile: its entries in profile
/// order, each once (a plain list in a profile may repeat one).
pub(super) fn egress(p: &Profile) -> Egress {
    let n = &p.network;
    let rule = |e: &profile::egress::HostEntry| HostRule {
        pattern: e.pattern.clone(),
        port: e.port,
        text: e.text.clone(),
    };
    let mut allow: Vec<HostRule> = Vec::new();
    for a in &n.allow {
        let r = rule(&a.value.0);
        if !allow
            .iter()
            .any(|x| x.pattern == r.pattern && x.port == r.port)
        {
            allow.push(r);
        }
    }
    let mut ask: Vec<HostRule> = Vec::new();
    for a in &n.ask {
        let r = rule(&a.value.0);
        if !ask
            .iter()
            .any(|x| x.pattern == r.pattern && x.port == r.port)
        {
            ask.push(r);
        }
    }
    let mut deny: Vec<HostRule> = Vec::new();
    for d in &n.deny {
        let r = rule(&d.value.0);
        if !deny
            .iter()
            .any(|x| x.pattern == r.pattern && x.port == r.port)
        {
            deny.push(r);
        }
    }
    let b = n
        .budget
        .as_ref()
        .map(|b| b.value.clone())
        .unwrap_or_default();
    Egress {
        allow,
        ask,
        deny,
        hosts: n.hosts.iter().map(|h| h.value.clone()).collect(),
        budget: Budget {
            connections: b.connections.map(|c| c.0),
            per_minute: b.per_minute.map(|c| c.0),
            bytes_out: b.bytes_out.map(|s| s.0),
            bytes_in: b.bytes_in.map(|s| s.0),
            on_exhausted: b.on_exhausted.unwrap_or_default(),
        },
    }
}

/// `HOST:PORT` (`[V6]:PORT`, `*.DOMAIN:PORT`), or `HOST` without a port.
fn host_port(pattern: &HostPattern, port: Option<u16>) -> String {
    let host = match pattern {
        HostPattern::Exact(h) if h.contains(':') => format!("[{h}]"),
        HostPattern::Exact(h) => h.clone(),
        HostPattern::Beneath(d) => format!("*.{d}"),
    };
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// `line`, with the entry as the profile wrote it where that differs.
fn written(mut line: String, rule: &HostRule) -> String {
    // An `allow` entry without a port was given the default one.
    let shown = [
        host_port(&rule.pattern, rule.port),
        host_port(&rule.pattern, None),
    ];
    if !shown.contains(&rule.text) {
        line.push_str(&format!("   (written `{}`)", rule.text));
    }
    line
}

/// The address the proxy listens on inside the sandbox (DESIGN.md §9).
const PROXY_ADDR: &str = "127.0.0.1:3128";
/// The DNS stub's address inside the sandbox.
const STUB_ADDR: &str = "127.0.0.1:53";

/// The egress policy in words, for `explain`: what is enforced and what
/// an allowed host still lets through.
fn describe(e: &Egress, enforced: &mut Vec<String>, not_restricted: &mut Vec<String>) {
    enforced.push(format!(
        "out only through confine's egress proxy: no route leaves the namespace; inside, an HTTP proxy on {PROXY_ADDR} (CONNECT and absolute-form) and a DNS stub on {STUB_ADDR}"
    ));
    if e.allow.is_empty() {
        enforced.push("allow: nothing (no host is reachable)".into());
    }
    for a in &e.allow {
        let port = a.port.unwrap_or(super::egress::DEFAULT_PORT);
        let mut line = format!("allow {}", host_port(&a.pattern, Some(port)));
        if let HostPattern::Beneath(d) = &a.pattern {
            line.push_str(&format!(" (names beneath {d}, not {d} itself)"));
        }
        enforced.push(written(line, a));
    }
    for d in &e.deny {
        let line = format!(
            "deny  {}{}, wins over allow",
            host_port(&d.pattern, d.port),
            if d.port.is_none() {
                " (every port)"
            } else {
                ""
            }
        );
        enforced.push(written(line, d));
    }
    for a in &e.ask {
        let port = a.port.unwrap_or(super::egress::DEFAULT_PORT);
        let line = format!(
            "ask   {}: the first connection waits until approved (approval:, confine approve); approved, it stays allowed for the run; denied, refused",
            host_port(&a.pattern, Some(port))
        );
        enforced.push(written(line, a));
    }
    for (name, addr) in &e.hosts {
        enforced.push(format!(
            "pin   {name} -> {addr} (the proxy connects there without resolving; the only way to a non-public address)"
        ));
    }
    let names: Vec<String> = e
        .allow
        .iter()
        .chain(&e.ask)
        .filter(|a| match &a.pattern {
            HostPattern::Exact(h) => e.resolves(h),
            HostPattern::Beneath(_) => true,
        })
        .filter(|a| !matches!(&a.pattern, HostPattern::Exact(h) if h.parse::<std::net::IpAddr>().is_ok()))
        .map(|a| match &a.pattern {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Beneath(d) => format!("*.{d}"),
        })
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    enforced.push(if names.is_empty() {
        "DNS stub: answers no name; every query fails at once (NXDOMAIN or REFUSED), none goes upstream".into()
    } else {
        format!(
            "DNS stub: answers {} with fake addresses of this sandbox, except names deny refuses on every port; every other name fails at once (NXDOMAIN or REFUSED), none goes upstream",
            names.join(", ")
        )
    });
    let ports = e.ports();
    if !ports.is_empty() {
        enforced.push(format!(
            "transparent listeners on the fake addresses, port{} {}: a tool that ignores the proxy variables reaches an allowed host by name on an allowed port",
            if ports.len() == 1 { "" } else { "s" },
            ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    enforced.push(
        "the proxy resolves names itself and refuses loopback, private, link-local (cloud metadata), CGNAT, unique-local, multicast and reserved addresses unless pinned; raw IP destinations only where pinned; it connects to the address it checked".into(),
    );
    enforced.push(
        "on port 443 the TLS server name (SNI) must be the admitted host, on port 80 the HTTP Host header".into(),
    );
    enforced.push("UDP other than DNS to the stub, ICMP and IPv6: no route".into());
    let b = &e.budget;
    let mut budget = Vec::new();
    if let Some(c) = b.connections {
        budget.push(format!("{c} connections"));
    }
    if let Some(c) = b.per_minute {
        budget.push(format!("{c} connections per minute"));
    }
    if let Some(s) = b.bytes_out {
        budget.push(format!("{} out", profile::Size(s)));
    }
    if let Some(s) = b.bytes_in {
        budget.push(format!("{} in", profile::Size(s)));
    }
    if budget.is_empty() {
        enforced.push("budget: none (no limit on connections or bytes)".into());
    } else {
        let then = match b.on_exhausted {
            OnExhausted::Refuse => "new connections are refused, with the reason",
            OnExhausted::Stop => "the sandbox is stopped (exit 124, reason budget)",
        };
        enforced.push(format!(
            "budget: {} for the whole sandbox, counted at the TCP level; when one is used up {then}",
            budget.join(", ")
        ));
    }
    if !e.allow.is_empty() {
        not_restricted.push(
            "what the agent sends to an allowed host: each one is a channel out (uploads, request bodies, headers), as far as the budget lets it".into(),
        );
        not_restricted.push(
            "other sites behind the same CDN or front as an allowed host: SNI and Host are checked, but without TLS inspection the request inside the tunnel isn't (domain fronting)".into(),
        );
    }
    if e.allow
        .iter()
        .any(|a| matches!(a.pattern, HostPattern::Beneath(_)))
    {
        not_restricted.push(
            "the names under an allowed wildcard: the proxy's resolver asks that domain's name servers for any name the agent makes up there, which carries data out".into(),
        );
    }
}

/// Host network with TCP port rules in force: Landlock's connect or bind
/// rules, and filter B's rules for what they don't see.
pub(super) fn tcp_ports_restricted(p: &Profile) -> bool {
    let n = &p.network;
    n.mode.value == NetworkMode::Host && !(n.connect_any() && n.bind_any())
}
