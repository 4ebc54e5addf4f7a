//! The keys of `network.mode: proxy` as written (DESIGN.md §9): `allow` and
//! `deny` entries, `hosts` pins and `budget`. Each value type rejects bad
//! input in its `Deserialize`, so the error lands on the node; what needs
//! the merged profile (the mode, whether an IP literal is pinned) is
//! checked by [`check`].
//!
//! Patterns, decided here once:
//! - `HOST`, `HOST:PORT`, `*.DOMAIN`, `*.DOMAIN:PORT`, an IPv4 address in
//!   dotted-quad form, or an IPv6 address in brackets (`[::1]:443`).
//! - Names are RFC 1123 host names: labels of 1 to 63 letters, digits and
//!   hyphens, not starting or ending with a hyphen, at most 253 characters
//!   in all; compared without case, a trailing dot ignored. No underscores
//!   (no host name has one); internationalised names only as punycode
//!   (`xn--...`), since the proxy compares bytes.
//! - The last label must start with a letter: no top-level domain starts
//!   with a digit, and `127.1` or `0x7f000001` would be read as addresses
//!   by some resolvers.
//! - The only wildcard is a leading `*.`, one or more whole labels in front
//!   of DOMAIN (never DOMAIN itself). In `allow`, DOMAIN needs two labels or
//!   more (`*.com` would admit most of the internet; this is a guard against
//!   an obvious slip, not a public suffix list: `*.co.uk` passes).
//! - No scheme, path, query, user info or spaces: the policy is per host and
//!   port, and a URL there would mean something it can't enforce.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::values::{deserialize_from_str, Count, Size, MAX_LIST_ENTRIES};
use super::{NetworkMode, Profile, ProfileError, Sourced, Warning};
use crate::plan::egress::{HostPattern, OnExhausted, DEFAULT_PORT};

/// The longest host name DNS can carry, without the trailing dot.
const MAX_NAME: usize = 253;
/// The longest label.
const MAX_LABEL: usize = 63;

/// One `allow` or `deny` entry, parsed: equal entries (case and a trailing
/// dot aside) compare equal, so `{remove: [...]}` finds them; `text` is
/// kept as written for `explain` and the records.
#[derive(Clone, Debug)]
pub struct HostEntry {
    pub pattern: HostPattern,
    /// As written; an `allow` entry gets [`DEFAULT_PORT`] when it names none.
    pub port: Option<u16>,
    /// The IP literal, when the entry is one.
    pub ip: Option<IpAddr>,
    pub text: String,
}

impl PartialEq for HostEntry {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.port == other.port
    }
}

impl Eq for HostEntry {}

impl Hash for HostEntry {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match &self.pattern {
            HostPattern::Exact(n) => (0u8, n).hash(h),
            HostPattern::Beneath(n) => (1u8, n).hash(h),
        }
        self.port.hash(h);
    }
}

impl fmt::Display for HostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An `allow` entry: the port is always set, 443 when not written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AllowEntry(pub HostEntry);

/// A `deny` entry: no port means every port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DenyEntry(pub HostEntry);

impl FromStr for AllowEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut e = parse_entry(s)?;
        if let HostPattern::Beneath(domain) = &e.pattern {
            if !domain.contains('.') {
                return Err(format!(
                    "`{s}` would admit every name under a top-level domain: name a domain beneath it, e.g. `*.example.{domain}`"
                ));
            }
        }
        let port = e.port.unwrap_or(DEFAULT_PORT);
        if let Some(whose) = reserved_port(port) {
            return Err(format!(
                "`{s}`: port {port} is {whose} inside the sandbox, so it can't also be a way out"
            ));
        }
        e.port = Some(port);
        Ok(AllowEntry(e))
    }
}
deserialize_from_str!(
    AllowEntry,
    "a host pattern: HOST, HOST:PORT, *.DOMAIN or *.DOMAIN:PORT"
);

impl FromStr for DenyEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_entry(s).map(DenyEntry)
    }
}
deserialize_from_str!(
    DenyEntry,
    "a host pattern: HOST, HOST:PORT, *.DOMAIN or *.DOMAIN:PORT"
);

/// Ports the sandbox's own listeners hold on its loopback (DESIGN-NOTES 43):
/// an `allow` entry can't name them.
fn reserved_port(port: u16) -> Option<&'static str> {
    match port {
        53 => Some("the DNS stub's"),
        3128 => Some("the egress proxy's"),
        _ => None,
    }
}

fn parse_entry(s: &str) -> Result<HostEntry, String> {
    let bad = |why: &str| Err(format!("`{s}`: {why}"));
    if s.is_empty() {
        return Err("empty host pattern: write HOST, HOST:PORT, *.DOMAIN or *.DOMAIN:PORT".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("a host pattern holds no spaces");
    }
    if s.contains("://") {
        return bad("write the host without a scheme, e.g. `api.example.com` or `example.com:80`");
    }
    if s.contains('@') {
        return bad("write the host alone, without a user name or password");
    }
    if s.contains(['/', '?', '#']) {
        return bad(
            "write the host alone, without a path: the policy is per host and port, not per URL",
        );
    }
    if !s.is_ascii() {
        return bad("write an internationalised name as punycode (`xn--...`)");
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return bad("`[` without `]`: write an IPv6 address as [ADDRESS] or [ADDRESS]:PORT");
        };
        let Ok(v6) = addr.parse::<Ipv6Addr>() else {
            return bad(
                "not an IPv6 address between the brackets (zone ids such as %eth0 aren't allowed)",
            );
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(parse_port(s, p)?),
                None => return bad("after `]` only `:PORT` may follow"),
            },
        };
        return Ok(HostEntry {
            pattern: HostPattern::Exact(v6.to_string()),
            port,
            ip: Some(IpAddr::V6(v6)),
            text: s.to_string(),
        });
    } else {
        match s.split_once(':') {
            None => (s, None),
            Some((h, p)) if !p.contains(':') => (h, Some(parse_port(s, p)?)),
            Some(_) if s.parse::<Ipv6Addr>().is_ok() => {
                return bad(
                    "an IPv6 address goes in brackets, so its port can be told apart: [ADDRESS] or [ADDRESS]:PORT",
                )
            }
            Some(_) => return bad("more than one `:`: write HOST or HOST:PORT"),
        }
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Ok(HostEntry {
            pattern: HostPattern::Exact(v4.to_string()),
            port,
            ip: Some(IpAddr::V4(v4)),
            text: s.to_string(),
        });
    }
    let pattern = if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            return bad("only one leading `*.` is allowed; it stands for one or more labels");
        }
        // `*` is at least one label and a dot.
        check_name(domain, MAX_NAME - 2).map_err(|why| format!("`{s}`: {why}"))?;
        HostPattern::Beneath(domain.to_string())
    } else if host.contains('*') {
        return bad(
            "the only wildcard is a leading `*.` (`*.example.com`: the names beneath example.com)",
        );
    } else {
        check_name(host, MAX_NAME).map_err(|why| format!("`{s}`: {why}"))?;
        HostPattern::Exact(host.to_string())
    };
    Ok(HostEntry {
        pattern,
        port,
        ip: None,
        text: s.to_string(),
    })
}

fn parse_port(entry: &str, p: &str) -> Result<u16, String> {
    if p.is_empty() {
        return Err(format!(
            "`{entry}`: nothing after `:`; write HOST:PORT, or HOST alone"
        ));
    }
    match p.parse::<u32>() {
        Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) && (1..=65535).contains(&n) => Ok(n as u16),
        _ if p.bytes().all(|b| b.is_ascii_digit()) => Err(format!(
            "`{entry}`: port `{p}` is out of range: ports are 1 to 65535"
        )),
        _ => Err(format!(
            "`{entry}`: port `{p}` isn't a number from 1 to 65535"
        )),
    }
}

/// An RFC 1123 host name, lower case, no trailing dot, at most `max`
/// characters.
pub(crate) fn check_name(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > max {
        return Err(format!(
            "{} characters: longer than any host name can be ({max} at most here), so it could never match",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (`..`, or a leading dot)".into());
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "label `{label}` is longer than {MAX_LABEL} characters, so it could never match"
            ));
        }
        if label.contains('_') {
            return Err(format!(
                "label `{label}`: host names have no `_` (RFC 1123)"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "label `{label}`: `{c}` isn't allowed; host names are letters, digits and `-`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "label `{label}` starts or ends with `-`, which no host name does"
            ));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!(
            "`{last}` can't end a host name (top-level domains start with a letter); write an IPv4 address as four decimal numbers, a.b.c.d"
        ));
    }
    Ok(())
}

/// A name in `hosts:`: one host, lower case, no trailing dot; `written` is
/// the key as in the file, which is where errors point.
#[derive(Clone, Debug)]
pub struct PinName {
    pub name: String,
    pub written: String,
}

impl FromStr for PinName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().parse::<IpAddr>().is_ok() {
            return Err(format!(
                "`{s}` is an address: hosts: maps a NAME to an ADDRESS (e.g. `api.internal: {s}`)"
            ));
        }
        if s.contains('*') {
            return Err(format!("`{s}`: a pin names one host, not a pattern"));
        }
        if s.contains(':') {
            return Err(format!(
                "`{s}`: a pin names a host without a port; ports belong in allow"
            ));
        }
        if !s.is_ascii() {
            return Err(format!(
                "`{s}`: write an internationalised name as punycode (`xn--...`)"
            ));
        }
        let lower = s.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        check_name(name, MAX_NAME).map_err(|why| format!("`{s}`: {why}"))?;
        Ok(PinName {
            name: name.to_string(),
            written: s.to_string(),
        })
    }
}

/// A pinned address: one the proxy can connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinAddr(pub IpAddr);

impl FromStr for PinAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(t);
        let ip: IpAddr = t.parse().map_err(|_| {
            format!("`{s}` isn't an IP address: a pin maps a name to an IPv4 or IPv6 address")
        })?;
        let unusable = match ip {
            IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
            IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
        };
        if unusable {
            return Err(format!(
                "`{s}` can't be connected to (unspecified, broadcast or multicast)"
            ));
        }
        Ok(PinAddr(ip))
    }
}
deserialize_from_str!(PinAddr, "an IPv4 or IPv6 address");

/// `hosts:` as written, in file order; a name written twice (case and a
/// trailing dot aside) is an error rather than one silently winning.
#[derive(Clone, Debug, Default)]
pub struct Pins(pub Vec<(PinName, PinAddr)>);

impl<'de> Deserialize<'de> for Pins {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pins;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of NAME: ADDRESS")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pins, A::Error> {
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                while let Some(name) = map.next_key_seed(Key(&mut seen))? {
                    if out.len() == MAX_LIST_ENTRIES {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_LIST_ENTRIES} pins"
                        )));
                    }
                    let addr: PinAddr = map.next_value()?;
                    out.push((name, addr));
                }
                Ok(Pins(out))
            }
        }
        /// A pin's name, checked (also against the names before it) while
        /// the key itself is read, so an error points at that key.
        struct Key<'a>(&'a mut HashSet<String>);
        impl<'de> de::DeserializeSeed<'de> for Key<'_> {
            type Value = PinName;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PinName, D::Error> {
                d.deserialize_str(self)
            }
        }
        impl Visitor<'_> for Key<'_> {
            type Value = PinName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host name")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<PinName, E> {
                let name: PinName = k.parse().map_err(E::custom)?;
                if !self.0.insert(name.name.clone()) {
                    return Err(E::custom(format!(
                        "`{k}` is pinned twice (names are compared without case and a trailing dot)"
                    )));
                }
                Ok(name)
            }
        }
        d.deserialize_map(V)
    }
}

/// `network.budget` as written; merged field by field.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub connections: Option<Count>,
    pub per_minute: Option<Count>,
    pub bytes_out: Option<Size>,
    pub bytes_in: Option<Size>,
    pub on_exhausted: Option<OnExhausted>,
}

impl RawBudget {
    /// `self` over `base`.
    pub(crate) fn over(self, base: &RawBudget) -> RawBudget {
        RawBudget {
            connections: self.connections.or(base.connections),
            per_minute: self.per_minute.or(base.per_minute),
            bytes_out: self.bytes_out.or(base.bytes_out),
            bytes_in: self.bytes_in.or(base.bytes_in),
            on_exhausted: self.on_exhausted.or(base.on_exhausted),
        }
    }
}

/// Checks of the merged profile's egress keys: they mean something only in
/// proxy mode, and an IP literal in `allow` must be an address `hosts:`
/// pins (DESIGN.md §9: raw addresses are refused unless pinned, so any
/// other could never be reached).
pub(crate) fn check(p: &Profile) -> Result<(), ProfileError> {
    let n = &p.network;
    if n.mode.value != NetworkMode::Proxy {
        let set: Option<(ProfileError, &str)> = if let Some(a) = n.allow.first() {
            Some((a.error("network.allow", ""), "network.allow"))
        } else if let Some(d) = n.deny.first() {
            Some((d.error("network.deny", ""), "network.deny"))
        } else if let Some(a) = n.ask.first() {
            Some((a.error("network.ask", ""), "network.ask"))
        } else if let Some(h) = n.hosts.first() {
            Some((h.error("network.hosts", ""), "network.hosts"))
        } else {
            n.budget
                .as_ref()
                .map(|b| (b.error("network.budget", ""), "network.budget"))
        };
        if let Some((e, key)) = set {
            let at = Warning::at(&n.mode, "network.mode", "").at;
            let mode = if n.mode.origin.is_some() {
                format!("network.mode is {} ({at})", n.mode.value.name())
            } else {
                format!("network.mode is {} (the default)", n.mode.value.name())
            };
            return Err(ProfileError {
                message: format!(
                    "`{key}` applies only with network.mode proxy, but {mode}; write `mode: proxy`, or remove it"
                ),
                ..e
            });
        }
        return Ok(());
    }
    for (a, key) in n
        .allow
        .iter()
        .map(|a| (a, "network.allow"))
        .chain(n.ask.iter().map(|a| (a, "network.ask")))
    {
        let Some(ip) = a.value.0.ip else { continue };
        if !n.hosts.iter().any(|h| h.value.1 == ip) {
            return Err(a.error(
                key,
                format!(
                    "`{}` is an IP address that hosts: doesn't pin, and the proxy refuses raw addresses that aren't pinned: pin a name to it (hosts: {{NAME: {ip}}}) and allow the name",
                    a.value.0.text
                ),
            ));
        }
    }
    Ok(())
}

/// `hosts:` merged: one pin per name, where it was written.
pub type Pin = Sourced<(String, IpAddr)>;

impl Pins {
    /// Applies this layer over `base`: a name pinned again takes the new
    /// address (like `env.set`).
    pub(crate) fn merge_into(
        self,
        base: &mut Vec<Pin>,
        source: &std::sync::Arc<super::Source>,
        key: &str,
    ) {
        for (name, addr) in self.0 {
            let pin = super::sourced(
                source,
                &format!("{key}.{}", name.written),
                (name.name.clone(), addr.0),
            );
            match base.iter_mut().find(|p| p.value.0 == name.name) {
                Some(old) => *old = pin,
                None => base.push(pin),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(s: &str) -> Result<AllowEntry, String> {
        s.parse()
    }

    fn deny(s: &str) -> Result<DenyEntry, String> {
        s.parse()
    }

    fn exact(s: &str) -> HostPattern {
        HostPattern::Exact(s.into())
    }

    #[test]
    fn the_sandboxs_own_ports_are_no_way_out() {
        for e in ["dns.example:53", "proxy.example:3128"] {
            let why = allow(e).unwrap_err();
            assert!(why.contains("inside the sandbox"), "{why}");
        }
        assert!(allow("dns.example:853").is_ok());
        // A deny may name them: it only narrows.
        assert!(deny("dns.example:53").is_ok());
    }

    #[test]
    fn patterns_parse_and_normalise() {
        let a = allow("API.Anthropic.com.").unwrap().0;
        assert_eq!(a.pattern, exact("api.anthropic.com"));
        assert_eq!(a.port, Some(443));
        assert_eq!(a.text, "API.Anthropic.com.");
        let a = allow("*.pythonhosted.org").unwrap().0;
        assert_eq!(a.pattern, HostPattern::Beneath("pythonhosted.org".into()));
        let a = allow("github.com:22").unwrap().0;
        assert_eq!((a.pattern, a.port), (exact("github.com"), Some(22)));
        let a = allow("localhost").unwrap().0;
        assert_eq!(a.pattern, exact("localhost"));
        let a = allow("xn--bcher-kva.example").unwrap().0;
        assert_eq!(a.pattern, exact("xn--bcher-kva.example"));
        let a = allow("10.0.0.5:8080").unwrap().0;
        assert_eq!(a.ip, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(a.pattern, exact("10.0.0.5"));
        let a = allow("[2001:DB8::1]:443").unwrap().0;
        assert_eq!(a.pattern, exact("2001:db8::1"));
        assert_eq!(a.port, Some(443));
        let a = allow("[::1]").unwrap().0;
        assert_eq!(a.port, Some(443));
        let d: DenyEntry = "evil.example.com".parse().unwrap();
        assert_eq!(d.0.port, None);
        let d: DenyEntry = "*.com".parse().unwrap();
        assert_eq!(d.0.pattern, HostPattern::Beneath("com".into()));
        // Equal entries compare equal however they were written.
        assert_eq!(
            allow("A.example").unwrap(),
            allow("a.example.:443").unwrap()
        );
        assert_ne!(allow("a.example").unwrap(), allow("a.example:80").unwrap());
        // 253 characters is the longest name; under a wildcard, 251.
        let long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(long.len(), 253);
        assert!(allow(&long).is_ok());
        assert!(allow(&format!("*.{long}")).is_err());
        assert!(allow(&format!("*.{}", &long[2..])).is_ok());
    }

    #[test]
    fn bad_patterns_say_why() {
        for (s, why) in [
            ("", "empty host pattern"),
            ("https://api.example.com", "without a scheme"),
            ("api.example.com/v1", "without a path"),
            ("user@example.com", "without a user name"),
            ("exa mple.com", "no spaces"),
            ("bücher.example", "punycode"),
            ("example.com:0", "out of range"),
            ("example.com:65536", "out of range"),
            ("example.com:http", "isn't a number"),
            ("example.com:", "nothing after"),
            ("example.com:-1", "isn't a number"),
            ("::1", "in brackets"),
            ("a:b:c", "more than one"),
            ("[::1", "without `]`"),
            ("[fe80::1%eth0]:443", "zone ids"),
            ("[::1]443", "only `:PORT`"),
            ("[example.com]:443", "not an IPv6"),
            ("*", "only wildcard"),
            ("api.*.example.com", "only wildcard"),
            ("*example.com", "only wildcard"),
            ("*.*.example.com", "only one leading"),
            ("*.", "only wildcard"),
            ("*..example.com", "empty label"),
            ("*.com", "top-level domain"),
            ("a..example.com", "empty label"),
            (".example.com", "empty label"),
            ("-a.example.com", "starts or ends with `-`"),
            ("a-.example.com", "starts or ends with `-`"),
            ("my_host.example.com", "no `_`"),
            ("a!.example.com", "`!` isn't allowed"),
            ("127.1", "four decimal numbers"),
            ("0x7f000001", "four decimal numbers"),
            ("1.2.3.4.5", "four decimal numbers"),
            ("010.0.0.1", "four decimal numbers"),
            ("example.123", "four decimal numbers"),
        ] {
            let e = allow(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
        }
        let e = allow(&format!("{}.com", "a".repeat(64))).unwrap_err();
        assert!(e.contains("longer than 63"), "{e}");
        let e = allow(&format!("{}.com", "a.".repeat(130))).unwrap_err();
        assert!(e.contains("could never match"), "{e}");
    }

    #[test]
    fn pins() {
        let n: PinName = "Upstream.Test.".parse().unwrap();
        assert_eq!(n.name, "upstream.test");
        for (s, why) in [
            ("10.0.0.1", "is an address"),
            ("*.x.test", "not a pattern"),
            ("a.test:443", "without a port"),
            ("a_b.test", "no `_`"),
        ] {
            let e = s.parse::<PinName>().unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
        assert_eq!(
            "[::1]".parse::<PinAddr>().unwrap().0,
            "::1".parse::<IpAddr>().unwrap()
        );
        for s in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
            let e = s.parse::<PinAddr>().unwrap_err();
            assert!(e.contains("can't be connected to"), "{s}: {e}");
        }
        assert!("example.com"
            .parse::<PinAddr>()
            .unwrap_err()
            .contains("isn't an IP"));
    }
}
