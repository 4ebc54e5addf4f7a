//! `secrets:` as written (DESIGN.md §10): where confine reads each
//! credential and where the egress proxy may use it. Each value type
//! rejects bad input in its `Deserialize`, so the error lands on the node;
//! what needs the whole entry or the merged profile (provider or upstream,
//! the network mode, variables named twice) is checked by [`check`].
//!
//! No secret value is ever in a profile: only where to find one. Errors may
//! name a source (`env:NAME`, a path), never what it holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::values::{deserialize_from_str, Count};
use super::{NetworkMode, Profile, ProfileError, Source, Sourced, Warning};
use crate::plan::egress::OnExhausted;

/// At most this many secrets: each is a route of the proxy.
pub const MAX_SECRETS: usize = 64;
/// At most this many models in one `prices` map.
const MAX_PRICES: usize = 1024;

/// A secret's name: also the path of its route (`/NAME`), so a short
/// identifier: a lower-case letter, then letters, digits, `-` or `_`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SecretName(pub String);

impl FromStr for SecretName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(SecretName(s.to_string()))
        } else {
            Err(format!(
                "bad secret name `{s}`: 1 to 32 lower-case letters, digits, `-` or `_`, starting with a letter (it is the route's path)"
            ))
        }
    }
}
deserialize_from_str!(SecretName, "a secret name such as `anthropic`");

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An environment variable name a secret's route sets or reads: a letter
/// or `_`, then letters, digits or `_` (what shells and SDKs accept).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EnvName(pub String);

impl FromStr for EnvName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(EnvName(s.to_string()))
        } else {
            Err(format!(
                "bad variable name `{s}`: letters, digits and `_`, not starting with a digit"
            ))
        }
    }
}
deserialize_from_str!(EnvName, "an environment variable name");

/// Where confine reads a secret at launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum SecretSource {
    /// A variable of confine's own environment.
    Env(String),
    /// A regular file readable only by the caller.
    File(PathBuf),
    /// A file in systemd's `$CREDENTIALS_DIRECTORY`.
    Credential(String),
}

impl FromStr for SecretSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const HOW: &str = "write env:NAME, file:/ABSOLUTE/PATH or credential:NAME";
        let Some((kind, rest)) = s.split_once(':') else {
            return Err(format!("`{s}`: {HOW}"));
        };
        match kind {
            "env" => rest
                .parse::<EnvName>()
                .map(|n| SecretSource::Env(n.0))
                .map_err(|e| format!("`{s}`: {e}")),
            "file" => {
                let p = Path::new(rest);
                if !p.is_absolute() {
                    return Err(format!(
                        "`{s}`: the path must be absolute (confine reads it, from wherever it runs)"
                    ));
                }
                if rest.contains('\0') || rest.ends_with('/') {
                    return Err(format!("`{s}`: not a file path"));
                }
                if p.components().any(|c| c == Component::ParentDir) {
                    return Err(format!("`{s}`: write the path without `..`"));
                }
                Ok(SecretSource::File(p.to_path_buf()))
            }
            "credential" => {
                let ok = !rest.is_empty()
                    && rest.len() <= 255
                    && rest != "."
                    && rest != ".."
                    && !rest.contains(['/', '\0']);
                if ok {
                    Ok(SecretSource::Credential(rest.to_string()))
                } else {
                    Err(format!(
                        "`{s}`: a credential is a file name in $CREDENTIALS_DIRECTORY, without `/`"
                    ))
                }
            }
            _ => Err(format!("`{s}`: unknown source `{kind}`; {HOW}")),
        }
    }
}
deserialize_from_str!(
    SecretSource,
    "env:NAME, file:/ABSOLUTE/PATH or credential:NAME"
);

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(n) => write!(f, "env:{n}"),
            SecretSource::File(p) => write!(f, "file:{}", p.display()),
            SecretSource::Credential(n) => write!(f, "credential:{n}"),
        }
    }
}

/// A provider preset (`crate::plan::secrets::preset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Anthropic,
    Openai,
    Gemini,
    Github,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Openai => "openai",
            Provider::Gemini => "gemini",
            Provider::Github => "github",
        }
    }
}

/// An explicit upstream: `https://HOST[:PORT][/PREFIX]`. Only https: the
/// proxy adds the credential, so it must never travel in the clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Upstream {
    /// Lower case, no trailing dot.
    pub host: String,
    pub port: u16,
    /// Empty, or `/...` without a trailing `/`.
    pub path: String,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.host)?;
        if self.port != 443 {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

impl FromStr for Upstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("upstream `{s}`: {why}"));
        let Some(rest) = s.strip_prefix("https://") else {
            return bad("write an https URL, e.g. https://api.example.com/v1 (the proxy sends the credential only over TLS)");
        };
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) || !s.is_ascii() {
            return bad(
                "a URL holds no spaces or control characters (internationalised names as punycode)",
            );
        }
        if rest.contains(['?', '#']) {
            return bad("no query or fragment: an upstream is a host and a path prefix");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return bad("no user name or password in the URL: the credential is the secret");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => {
                let port = match p.parse::<u16>() {
                    Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                    _ => return bad("the port must be a number from 1 to 65535"),
                };
                (h, port)
            }
            None => (authority, 443),
        };
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
            return bad("name the host: the proxy refuses raw addresses (pin one with network.hosts and name it here)");
        }
        super::egress::check_name(host, 253).map_err(|why| format!("upstream `{s}`: {why}"))?;
        let path = path.trim_end_matches('/');
        if path.split('/').any(|seg| seg == "." || seg == "..") {
            return bad("the path can't hold `.` or `..` segments");
        }
        if path.contains("//") || path.contains('%') || path.contains('\\') {
            return bad("write the path plainly: no `//`, `%` escapes or `\\`");
        }
        Ok(Upstream {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}
deserialize_from_str!(Upstream, "an https URL such as https://api.example.com/v1");

/// The header that carries the credential: `NAME: TEXT` with `{secret}`
/// exactly once in TEXT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderTemplate {
    /// Lower case.
    pub name: String,
    /// The text before and after `{secret}`.
    pub prefix: String,
    pub suffix: String,
}

/// The placeholder in a header template.
pub const SECRET_MARK: &str = "{secret}";

/// Headers the proxy owns for the request to be framed and routed right:
/// never the credential's.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "expect",
];

impl fmt::Display for HeaderTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}{SECRET_MARK}{}",
            self.name, self.prefix, self.suffix
        )
    }
}

impl Serialize for HeaderTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for HeaderTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("header `{s}`: {why}"));
        let Some((name, value)) = s.split_once(':') else {
            return bad(
                "write `NAME: TEXT` with {secret} in TEXT, e.g. `Authorization: Bearer {secret}`",
            );
        };
        // RFC 9110 token characters.
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return bad("the header name must be letters, digits or `-` (an HTTP token), with nothing before the `:`");
        }
        let name = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return bad(
                "the proxy sets that header itself; name the one that carries the credential",
            );
        }
        let value = value.trim_start_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') || !value.is_ascii() {
            return bad("the value holds a control or non-ASCII character");
        }
        if value.matches(SECRET_MARK).count() != 1 {
            return bad("the value must hold {secret} exactly once: where the credential goes");
        }
        let (prefix, suffix) = value.split_once(SECRET_MARK).expect("counted once");
        Ok(HeaderTemplate {
            name,
            prefix: prefix.to_string(),
            suffix: suffix.trim_end_matches([' ', '\t']).to_string(),
        })
    }
}
deserialize_from_str!(
    HeaderTemplate,
    "a header template such as `x-api-key: {secret}`"
);

/// A positive amount of money, as written (`5.00`), for `cost`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Cost {
    pub amount: f64,
    /// `None`: for the whole run.
    pub per: Option<Period>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Hour,
    Day,
}

impl FromStr for Cost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!("bad cost `{s}`: write an amount from above 0, for the whole run (`20.00`), per hour (`5.00/h`) or per day (`50/d`)")
        };
        let (amount, per) = match s.trim().split_once('/') {
            Some((a, "h")) => (a, Some(Period::Hour)),
            Some((a, "d")) => (a, Some(Period::Day)),
            Some(_) => return Err(err()),
            None => (s.trim(), None),
        };
        let amount = positive(amount).ok_or_else(err)?;
        Ok(Cost { amount, per })
    }
}
deserialize_from_str!(Cost, "an amount such as 20.00, 5.00/h or 50/d");

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.amount)?;
        match self.per {
            Some(Period::Hour) => f.write_str("/h"),
            Some(Period::Day) => f.write_str("/d"),
            None => Ok(()),
        }
    }
}

/// A decimal number above 0 (written in plain decimal: no exponent, no
/// sign, no `inf`).
fn positive(s: &str) -> Option<f64> {
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.matches('.').count() <= 1;
    let n: f64 = s.parse().ok().filter(|_| plain)?;
    (n.is_finite() && n > 0.0 && n < 1e12).then_some(n)
}

/// A price per million tokens: a plain decimal from 0 up (a local model
/// may cost nothing).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Price(pub f64);

impl FromStr for Price {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.bytes().all(|b| b == b'0' || b == b'.')
            && s.starts_with('0')
            && s.matches('.').count() <= 1
        {
            return Ok(Price(0.0));
        }
        positive(s).map(Price).ok_or_else(|| {
            format!("bad price `{s}`: write the price per million tokens as a number from 0 up, e.g. 3.00")
        })
    }
}
deserialize_from_str!(Price, "a price per million tokens such as 3.00");

/// One model's prices, per million tokens.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: Price,
    pub output: Price,
}

/// A route's spending limits (DESIGN.md §10), counted by the proxy from the
/// responses' usage.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretLimits {
    pub requests_per_minute: Option<Count>,
    pub tokens: Option<Count>,
    pub tokens_per_hour: Option<Count>,
    pub cost: Option<Cost>,
    pub prices: Option<Prices>,
    pub on_exhausted: Option<OnExhausted>,
}

/// `prices:`, model name to prices, bounded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prices(pub BTreeMap<String, ModelPrice>);

impl<'de> Deserialize<'de> for Prices {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Prices;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of MODEL: {input: PRICE, output: PRICE}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Prices, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(model) = map.next_key::<String>()? {
                    if out.len() == MAX_PRICES {
                        return Err(de::Error::custom(format!("more than {MAX_PRICES} models")));
                    }
                    if model.is_empty() || model.chars().any(|c| c.is_control()) {
                        return Err(de::Error::custom("a model name is non-empty text"));
                    }
                    let price: ModelPrice = map.next_value()?;
                    if out.insert(model.clone(), price).is_some() {
                        return Err(de::Error::custom(format!(
                            "model `{model}` is priced twice"
                        )));
                    }
                }
                Ok(Prices(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One `secrets:` entry as written.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub name: SecretName,
    pub from: SecretSource,
    pub provider: Option<Provider>,
    pub upstream: Option<Upstream>,
    pub header: Option<HeaderTemplate>,
    pub base_url_env: Option<EnvName>,
    pub key_env: Option<EnvName>,
    pub limits: Option<RawSecretLimits>,
}

/// `secrets:` in one layer: a list replaces the inherited one;
/// `{add: [...], remove: [NAME, ...]}` edits it by name.
#[derive(Debug)]
pub enum SecretList {
    Replace(Vec<RawSecret>),
    Edit {
        add: Vec<RawSecret>,
        remove: Vec<SecretName>,
    },
}

impl<'de> Deserialize<'de> for SecretList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of secrets, or {add: [...]} / {remove: [NAME, ...]}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SecretList, A::Error> {
                Ok(SecretList::Replace(
                    Bounded::deserialize(de::value::SeqAccessDeserializer::new(seq))?.0,
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretList, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Edit {
                    #[serde(default)]
                    add: Bounded<RawSecret>,
                    #[serde(default)]
                    remove: Bounded<SecretName>,
                }
                let e = Edit::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(SecretList::Edit {
                    add: e.add.0,
                    remove: e.remove.0,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of at most [`MAX_SECRETS`], refused at the entry past it.
struct Bounded<T>(Vec<T>);

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Bounded(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Bounded<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Bounded<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Bounded<T>, A::Error> {
                super::values::bounded_seq(seq, MAX_SECRETS, || {
                    format!("more than {MAX_SECRETS} secrets")
                })
                .map(Bounded)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

impl SecretList {
    /// Applies this layer over `base`: a list replaces it, `remove` drops
    /// entries by name, `add` appends, replacing an inherited entry of the
    /// same name (the child's definition wins, like `env.set`). A name
    /// written twice in one layer is an error, located at the second.
    pub(crate) fn merge_into(
        self,
        base: &mut Vec<Sourced<RawSecret>>,
        source: &Arc<Source>,
        key: &str,
    ) -> Result<(), ProfileError> {
        let (list, at) = match self {
            SecretList::Replace(v) => {
                base.clear();
                (v, key.to_string())
            }
            SecretList::Edit { add, remove } => {
                for (i, name) in remove.iter().enumerate() {
                    let before = base.len();
                    base.retain(|s| s.value.name != *name);
                    if base.len() == before {
                        let k = format!("{key}.remove[{i}]");
                        return Err(super::sourced(source, &k, ()).error(
                            &k,
                            format!("no inherited secret is named `{name}`, so there is nothing to remove"),
                        ));
                    }
                }
                (add, format!("{key}.add"))
            }
        };
        let mut seen = HashSet::new();
        for (i, s) in list.into_iter().enumerate() {
            let k = format!("{at}[{i}]");
            if !seen.insert(s.name.clone()) {
                let nk = format!("{k}.name");
                return Err(super::sourced(source, &nk, ()).error(
                    &nk,
                    format!(
                        "a secret named `{}` is already in this list: each name is one route",
                        s.name
                    ),
                ));
            }
            let entry = super::sourced(source, &k, s);
            match base.iter_mut().find(|b| b.value.name == entry.value.name) {
                Some(old) => *old = entry,
                None => base.push(entry),
            }
        }
        Ok(())
    }
}

/// An error about `sub` (`provider`, `from`, ...) of the entry `s`.
fn at(s: &Sourced<RawSecret>, sub: &str, message: String) -> ProfileError {
    match &s.origin {
        Some(o) => super::Origin {
            source: o.source.clone(),
            key: format!("{}.{sub}", o.key),
        }
        .error(message),
        None => s.error("secrets", message),
    }
}

/// Checks of the merged profile's secrets: they need the egress proxy; each
/// names a provider or an upstream with its header; no two routes set the
/// same variable; no variable the agent keeps from confine's own
/// environment is a secret's source (the agent would hold the value).
pub(crate) fn check(p: &Profile) -> Result<(), ProfileError> {
    let Some(first) = p.secrets.first() else {
        return Ok(());
    };
    let n = &p.network;
    if n.mode.value != NetworkMode::Proxy {
        let mode = if n.mode.origin.is_some() {
            let w = Warning::at(&n.mode, "network.mode", "");
            format!("network.mode is {} ({})", n.mode.value.name(), w.at)
        } else {
            format!("network.mode is {} (the default)", n.mode.value.name())
        };
        return Err(at(
            first,
            "name",
            format!("secrets are forwarded by the egress proxy, so they need network.mode proxy, but {mode}; write `mode: proxy`, or remove the secrets"),
        ));
    }
    if p.secrets.len() > MAX_SECRETS {
        return Err(at(
            &p.secrets[MAX_SECRETS],
            "name",
            format!("more than {MAX_SECRETS} secrets once merged with what this extends"),
        ));
    }
    let own: HashSet<String> = crate::sandbox::env::egress_proxy_vars()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut vars: HashMap<String, String> = HashMap::new();
    for s in &p.secrets {
        let v = &s.value;
        match (v.provider, &v.upstream) {
            (Some(_), Some(_)) => {
                return Err(at(s, "upstream", format!(
                    "secret `{}` names both a provider and an upstream: write one (a provider is a preset upstream, header and variables)",
                    v.name
                )))
            }
            (None, None) => {
                return Err(at(s, "name", format!(
                    "secret `{}` needs a provider (anthropic, openai, gemini, github) or an upstream with its header",
                    v.name
                )))
            }
            (None, Some(_)) if v.header.is_none() => {
                return Err(at(s, "upstream", format!(
                    "secret `{}`: an upstream needs the header that carries the credential, e.g. header: \"Authorization: Bearer {SECRET_MARK}\"",
                    v.name
                )))
            }
            _ => {}
        }
        let route = crate::plan::secrets::resolve(v);
        for (key, var) in route
            .base_url_env
            .iter()
            .map(|e| ("base_url_env", e))
            .chain(route.key_env.iter().map(|e| ("key_env", e)))
        {
            if own.contains(var) {
                return Err(at(s, key, format!(
                    "`{var}` is one of the variables that send the agent to the egress proxy; name the variable the client reads"
                )));
            }
            if let Some(other) = vars.insert(var.clone(), v.name.0.clone()) {
                return Err(at(s, key, format!(
                    "`{var}` is already set for secret `{other}`: one variable can point at one route"
                )));
            }
        }
        if let SecretSource::Env(name) = &v.from {
            if let Some(k) = p.env.keep.iter().find(|k| k.value.matches(name.as_bytes())) {
                let how = if k.value.is_glob() {
                    format!("narrow `{}` so it doesn't match", k.value)
                } else {
                    "remove it from env.keep".to_string()
                };
                return Err(at(s, "from", format!(
                    "env.keep passes `{name}` to the agent ({}), so the agent would hold this secret: {how}",
                    Warning::at(k, "env.keep", "").at
                )));
            }
        }
        if let Some(l) = &v.limits {
            if l.cost.is_some() && l.prices.as_ref().is_none_or(|p| p.0.is_empty()) {
                return Err(at(s, "limits.cost", format!(
                    "secret `{}`: a cost limit needs the models' prices (limits.prices: {{MODEL: {{input: X, output: Y}}}}, per million tokens)",
                    v.name
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::profile::{from_text, ProfileError};

    const HEAD: &str = "version: 1\nnetwork:\n  mode: proxy\n";

    fn load(body: &str) -> Result<crate::profile::Profile, ProfileError> {
        from_text("t.yaml", &format!("{HEAD}{body}"))
    }

    fn err(body: &str) -> String {
        load(body).expect_err(body).to_string()
    }

    #[test]
    fn a_good_entry_parses() {
        let p = load(
            "secrets:\n  - name: anthropic\n    from: env:K\n    provider: anthropic\n    limits: {requests_per_minute: 60, tokens: 100000, tokens_per_hour: 5000, cost: \"5.00/h\", prices: {m: {input: 3, output: 0.5}}, on_exhausted: stop}\n  - name: own\n    from: file:/etc/confine/key\n    upstream: https://llm.example.com:8443/v1/\n    header: \"x-key: {secret}\"\n    base_url_env: LLM_URL\n    key_env: LLM_KEY\n",
        )
        .unwrap();
        assert_eq!(p.secrets.len(), 2);
        let l = p.secrets[0].value.limits.as_ref().unwrap();
        assert_eq!(l.cost.unwrap().amount, 5.0);
        assert_eq!(p.secrets[1].value.upstream.as_ref().unwrap().path, "/v1");
    }

    #[test]
    fn bad_entries_are_located_and_say_why() {
        for (body, want) in [
            ("secrets:\n  - {name: a, from: env:K, provider: nope}\n", "allowed: anthropic, openai, gemini, github"),
            ("secrets:\n  - {name: a, from: env:K}\n", "needs a provider"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, upstream: \"https://x.example\"}\n", "both a provider and an upstream"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://x.example\"}\n", "needs the header"),
            ("secrets:\n  - {name: a, from: \"file:key.txt\", provider: openai}\n", "must be absolute"),
            ("secrets:\n  - {name: a, from: \"file:/a/../b\", provider: openai}\n", "without `..`"),
            ("secrets:\n  - {name: a, from: \"vault:x\", provider: openai}\n", "unknown source"),
            ("secrets:\n  - {name: a, from: \"credential:a/b\", provider: openai}\n", "without `/`"),
            ("secrets:\n  - {name: a, from: \"env:1X\", provider: openai}\n", "bad variable name"),
            ("secrets:\n  - {name: A, from: env:K, provider: openai}\n", "bad secret name"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai}\n  - {name: a, from: env:L, provider: gemini}\n", "already in this list"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai}\n  - {name: b, from: env:L, provider: openai}\n", "already set for secret `a`"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, key_env: HTTPS_PROXY}\n", "egress proxy"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"http://x.example\", header: \"x: {secret}\"}\n", "https URL"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://u:p@x.example\", header: \"x: {secret}\"}\n", "no user name"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://10.0.0.1\", header: \"x: {secret}\"}\n", "raw addresses"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://x.example/a?b\", header: \"x: {secret}\"}\n", "no query"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://x.example:0\", header: \"x: {secret}\"}\n", "port"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://x.example\", header: \"x: Bearer\"}\n", "exactly once"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://x.example\", header: \"x: {secret}{secret}\"}\n", "exactly once"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://x.example\", header: \"bad name: {secret}\"}\n", "HTTP token"),
            ("secrets:\n  - {name: a, from: env:K, upstream: \"https://x.example\", header: \"Host: {secret}\"}\n", "sets that header itself"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, limits: {cost: \"5/w\", prices: {m: {input: 1, output: 1}}}}\n", "bad cost"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, limits: {cost: \"-5\", prices: {m: {input: 1, output: 1}}}}\n", "bad cost"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, limits: {cost: \"5\"}}\n", "needs the models' prices"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, limits: {tokens: 0}}\n", "bad count"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, limits: {prices: {m: {input: -1, output: 1}}}}\n", "bad price"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, limits: {rpm: 1}}\n", "unknown key"),
            ("secrets:\n  - {name: a, from: env:K, provider: openai, extra: 1}\n", "unknown key"),
            ("env:\n  keep: [PATH, K]\nsecrets:\n  - {name: a, from: env:K, provider: openai}\n", "the agent would hold this secret"),
            ("env:\n  keep: [PATH, \"OPENAI_*\"]\nsecrets:\n  - {name: a, from: env:OPENAI_API_KEY, provider: openai}\n", "narrow `OPENAI_*`"),
        ] {
            let e = err(body);
            assert!(e.contains(want), "{body}\n=> {e}");
            assert!(e.contains("t.yaml:"), "not located: {e}");
            assert!(e.starts_with("secrets"), "not keyed: {e}");
        }
    }

    #[test]
    fn secrets_need_proxy_mode() {
        let e = from_text(
            "t.yaml",
            "version: 1\nnetwork:\n  mode: loopback\nsecrets:\n  - {name: a, from: env:K, provider: openai}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("network.mode is loopback (t.yaml:3:"), "{e}");
        assert!(e.starts_with("secrets[0].name (t.yaml:5:"), "{e}");
        let e = from_text(
            "t.yaml",
            "version: 1\nsecrets:\n  - {name: a, from: env:K, provider: openai}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("network.mode is none (the default)"), "{e}");
    }

    #[test]
    fn lists_merge_by_name() {
        use super::*;
        let src = |name: &str| {
            Arc::new(Source {
                name: name.into(),
                path: None,
                text: String::new(),
                json: None,
            })
        };
        let parse = |y: &str| serde_yaml::from_str::<SecretList>(y).unwrap();
        let mut base = Vec::new();
        parse(
            "[{name: a, from: env:A, provider: openai}, {name: b, from: env:B, provider: gemini}]",
        )
        .merge_into(&mut base, &src("p"), "secrets")
        .unwrap();
        parse("{remove: [a], add: [{name: b, from: env:C, provider: github}, {name: c, from: env:D, provider: anthropic}]}")
            .merge_into(&mut base, &src("c"), "secrets")
            .unwrap();
        let names: Vec<_> = base
            .iter()
            .map(|s| (s.value.name.0.as_str(), s.value.from.to_string()))
            .collect();
        assert_eq!(
            names,
            [("b", "env:C".to_string()), ("c", "env:D".to_string())]
        );
        let e = parse("{remove: [zz]}")
            .merge_into(&mut base, &src("c"), "secrets")
            .unwrap_err();
        assert!(e.message.contains("nothing to remove"), "{e}");
        parse("[]")
            .merge_into(&mut base, &src("c"), "secrets")
            .unwrap();
        assert!(base.is_empty());
    }
}
