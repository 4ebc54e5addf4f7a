//! The egress policy of `network.mode: proxy` (DESIGN.md §9): which hosts
//! and ports the agent may reach through confine's egress proxy, which
//! names are pinned to which addresses, and the budget. Plain data, built
//! from the profile at plan time and handed to the proxy process as it is;
//! the matching rules live here, once, for the plan, `explain`, the DNS
//! stub and the proxy alike.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The port an `allow` entry without one means.
pub const DEFAULT_PORT: u16 = 443;

/// A host pattern, lower case, without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostPattern {
    /// Exactly this name, or IP literal (only one that `hosts` pins;
    /// in `Ipv4Addr`/`Ipv6Addr` display form, IPv6 without brackets).
    Exact(String),
    /// `*.DOMAIN`: any name strictly beneath DOMAIN (not DOMAIN itself);
    /// holds DOMAIN.
    Beneath(String),
}

impl HostPattern {
    /// True when `host` (lower case, no trailing dot) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Beneath(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        }
    }
}

/// One `allow` or `deny` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRule {
    pub pattern: HostPattern,
    /// `allow`: always a port ([`DEFAULT_PORT`] when the entry names none).
    /// `deny`: `None` for every port.
    pub port: Option<u16>,
    /// The entry as the profile wrote it, for records and `explain`.
    pub text: String,
}

impl HostRule {
    pub(crate) fn matches(&self, host: &str, port: u16) -> bool {
        self.pattern.matches(host) && self.port.is_none_or(|p| p == port)
    }
}

/// What happens when a budget is used up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// New connections are refused, with the reason.
    #[default]
    Refuse,
    /// The sandbox is stopped like `wall_time` (exit 124, reason `budget`).
    Stop,
}

/// `network.budget`: counted by the proxy for the whole sandbox; `None` is
/// no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub connections: Option<u64>,
    pub per_minute: Option<u64>,
    pub bytes_out: Option<u64>,
    pub bytes_in: Option<u64>,
    pub on_exhausted: OnExhausted,
}

/// The verdict on one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Admitted by this `allow` entry (its text).
    Allowed(String),
    /// Refused by this `deny` entry (its text).
    Denied(String),
    /// No `allow` entry names it.
    NotAllowed,
}

/// The whole egress policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Egress {
    /// In profile order.
    pub allow: Vec<HostRule>,
    pub deny: Vec<HostRule>,
    /// `hosts:` pins, lower-case name → address: the only way to reach a
    /// non-public address, and the address used for that name.
    pub hosts: BTreeMap<String, IpAddr>,
    pub budget: Budget,
    /// `ask`: hosts (and ports) admitted once approved (DESIGN.md §12),
    /// when no `allow` entry admits them and no `deny` entry refuses them.
    #[serde(default)]
    pub ask: Vec<HostRule>,
}

impl Egress {
    /// Whether the agent may connect to `host` (a name or an IP literal,
    /// any case, a trailing dot allowed) on `port`: `deny` wins over
    /// `allow`.
    pub fn admit(&self, host: &str, port: u16) -> Admission {
        let host = normalize(host);
        if let Some(d) = self.deny.iter().find(|r| r.matches(&host, port)) {
            return Admission::Denied(d.text.clone());
        }
        match self.allow.iter().find(|r| r.matches(&host, port)) {
            Some(a) => Admission::Allowed(a.text.clone()),
            None => Admission::NotAllowed,
        }
    }

    /// The `ask` entry that covers `host` on `port` once `allow` hasn't
    /// admitted it (`deny` is checked first, by [`Egress::admit`]).
    pub fn asks(&self, host: &str, port: u16) -> Option<&HostRule> {
        let host = normalize(host);
        self.ask.iter().find(|r| r.matches(&host, port))
    }

    /// Whether the DNS stub answers for `host`: some `allow` (or `ask`)
    /// entry admits it on some port, and no `deny` entry refuses it on every port.
    pub fn resolves(&self, host: &str) -> bool {
        let host = normalize(host);
        self.allow
            .iter()
            .chain(&self.ask)
            .filter(|a| a.pattern.matches(&host))
            .filter_map(|a| a.port)
            .any(|p| !self.deny.iter().any(|d| d.matches(&host, p)))
    }

    /// The ports `allow` and `ask` name, sorted, each once: the stub's fake
    /// addresses answer on these (a listener per port inside the sandbox).
    pub fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .allow
            .iter()
            .chain(&self.ask)
            .filter_map(|r| r.port)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The address `hosts:` pins `host` to, if any. An IP literal (IPv6
    /// with or without brackets) is pinned when some name is pinned to
    /// that address: that is what admits a raw address in `allow`.
    pub fn pinned(&self, host: &str) -> Option<IpAddr> {
        let host = normalize(host);
        if let Some(a) = self.hosts.get(&host) {
            return Some(*a);
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        let ip: IpAddr = bare.parse().ok()?;
        self.hosts.values().any(|a| *a == ip).then_some(ip)
    }
}

/// Lower case, without a trailing dot.
pub fn normalize(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: HostPattern, port: Option<u16>, text: &str) -> HostRule {
        HostRule {
            pattern,
            port,
            text: text.into(),
        }
    }

    fn policy() -> Egress {
        Egress {
            allow: vec![
                rule(
                    HostPattern::Exact("api.anthropic.com".into()),
                    Some(443),
                    "api.anthropic.com",
                ),
                rule(
                    HostPattern::Beneath("pythonhosted.org".into()),
                    Some(443),
                    "*.pythonhosted.org",
                ),
                rule(
                    HostPattern::Exact("github.com".into()),
                    Some(22),
                    "github.com:22",
                ),
            ],
            deny: vec![rule(
                HostPattern::Exact("evil.pythonhosted.org".into()),
                None,
                "evil.pythonhosted.org",
            )],
            ..Egress::default()
        }
    }

    #[test]
    fn allow_names_host_and_port_and_deny_wins() {
        let p = policy();
        let allowed = |t: &str| Admission::Allowed(t.into());
        assert_eq!(
            p.admit("api.anthropic.com", 443),
            allowed("api.anthropic.com")
        );
        assert_eq!(
            p.admit("API.Anthropic.com.", 443),
            allowed("api.anthropic.com")
        );
        assert_eq!(p.admit("api.anthropic.com", 80), Admission::NotAllowed);
        assert_eq!(
            p.admit("files.pythonhosted.org", 443),
            allowed("*.pythonhosted.org")
        );
        assert_eq!(
            p.admit("a.b.pythonhosted.org", 443),
            allowed("*.pythonhosted.org")
        );
        // Subdomains only, not the apex, and not a name that merely ends alike.
        assert_eq!(p.admit("pythonhosted.org", 443), Admission::NotAllowed);
        assert_eq!(p.admit("evilpythonhosted.org", 443), Admission::NotAllowed);
        assert_eq!(
            p.admit("evil.pythonhosted.org", 443),
            Admission::Denied("evil.pythonhosted.org".into())
        );
        assert_eq!(p.admit("github.com", 22), allowed("github.com:22"));
        assert_eq!(p.admit("github.com", 443), Admission::NotAllowed);
        assert_eq!(p.admit("example.com", 443), Admission::NotAllowed);
    }

    #[test]
    fn the_stub_answers_only_admitted_names_and_the_ports_are_alloweds() {
        let p = policy();
        assert!(p.resolves("api.anthropic.com"));
        assert!(p.resolves("x.pythonhosted.org."));
        assert!(p.resolves("github.com"));
        assert!(!p.resolves("evil.pythonhosted.org"));
        assert!(!p.resolves("pythonhosted.org"));
        assert!(!p.resolves("example.com"));
        assert_eq!(p.ports(), vec![22, 443]);
    }

    #[test]
    fn pins_by_name_and_raw_addresses_only_where_a_name_is_pinned_to_them() {
        let mut p = policy();
        p.hosts
            .insert("upstream.test".into(), "10.0.0.5".parse().unwrap());
        p.hosts.insert("v6.test".into(), "fd00::5".parse().unwrap());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(p.pinned("Upstream.Test."), ip("10.0.0.5"));
        assert_eq!(p.pinned("10.0.0.5"), ip("10.0.0.5"));
        assert_eq!(p.pinned("[fd00::5]"), ip("fd00::5"));
        assert_eq!(p.pinned("fd00::5"), ip("fd00::5"));
        assert_eq!(p.pinned("10.0.0.6"), None);
        assert_eq!(p.pinned("api.anthropic.com"), None);
    }
}
