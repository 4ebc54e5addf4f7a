//! The network part of the plan, and what it does and doesn't stop in words
//! (`explain`).

use serde::Serialize;

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
    /// What it doesn't, in `host` mode.
    pub not_restricted: Vec<String>,
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
    NetPlan {
        mode: n.mode.value,
        connect_tcp: n.connect_tcp.clone(),
        bind_tcp: n.bind_tcp.clone(),
        socket_families: n.socket_families.iter().map(|f| f.value.name()).collect(),
        enforced,
        not_restricted,
    }
}

/// Host network with TCP port rules in force: Landlock's connect or bind
/// rules, and filter B's rules for what they don't see.
pub(super) fn tcp_ports_restricted(p: &Profile) -> bool {
    let n = &p.network;
    n.mode.value == NetworkMode::Host && !(n.connect_any() && n.bind_any())
}
