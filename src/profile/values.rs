//! Value types of the profile schema. Each one rejects bad input in its
//! `Deserialize`, so serde_yaml reports the line and column of the offending
//! node by itself and nothing invalid ever reaches a `Profile`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Marker for a path relative to the workspace.
pub(crate) const WORKSPACE_VAR: &str = "{workspace}";

/// A profile path: absolute, or starting with `{workspace}`; a trailing `?`
/// makes it optional (skipped where missing).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PathSpec {
    /// The path as written, without the trailing `?`.
    pub raw: String,
    pub optional: bool,
}

impl PathSpec {
    /// Expands `{workspace}`; `None` when the path needs a workspace and there
    /// is none.
    pub(crate) fn expand(&self, workspace: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
        match self.raw.strip_prefix(WORKSPACE_VAR) {
            Some(rest) => {
                let ws = workspace?;
                let rest = rest.trim_start_matches('/');
                Some(if rest.is_empty() {
                    ws.to_path_buf()
                } else {
                    ws.join(rest)
                })
            }
            None => Some(std::path::PathBuf::from(&self.raw)),
        }
    }

    pub(crate) fn uses_workspace(&self) -> bool {
        self.raw.starts_with(WORKSPACE_VAR)
    }
}

impl fmt::Display for PathSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.raw, if self.optional { "?" } else { "" })
    }
}

impl FromStr for PathSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (raw, optional) = match s.strip_suffix('?') {
            Some(r) => (r, true),
            None => (s, false),
        };
        if raw.is_empty() {
            return Err("empty path".into());
        }
        if raw.contains('\0') {
            return Err("path contains a NUL byte".into());
        }
        if let Some(rest) = raw.strip_prefix(WORKSPACE_VAR) {
            if !(rest.is_empty() || rest.starts_with('/')) {
                return Err(format!(
                    "`{s}`: {WORKSPACE_VAR} must be followed by `/` or nothing"
                ));
            }
        } else if !raw.starts_with('/') {
            return Err(format!(
                "relative path `{s}`: paths must be absolute or start with {WORKSPACE_VAR}"
            ));
        }
        let body = raw.strip_prefix(WORKSPACE_VAR).unwrap_or(raw);
        if body.contains('{') || body.contains('}') {
            return Err(format!(
                "`{s}`: the only variable a path may use is {WORKSPACE_VAR}, at its start"
            ));
        }
        if body.split('/').any(|c| c == "..") {
            return Err(format!("`{s}`: `..` is not allowed in profile paths"));
        }
        Ok(PathSpec {
            raw: raw.to_string(),
            optional,
        })
    }
}

/// Deserializes through `FromStr`, so the error lands on the node's position.
macro_rules! deserialize_from_str {
    ($t:ty, $expecting:expr) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$t, E> {
                        s.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$t, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, n: i64) -> Result<$t, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                    fn visit_f64<E: de::Error>(self, n: f64) -> Result<$t, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

pub(crate) use deserialize_from_str;

deserialize_from_str!(
    PathSpec,
    "an absolute path or one starting with {workspace}"
);

/// A size in bytes, written as a number with an optional K/M/G/T suffix
/// (powers of 1024).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("bad size `{s}`: write a positive number with an optional K, M, G or T suffix (e.g. 256M)")
        };
        let t = s.trim();
        let (num, mult) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let m: u64 = match c.to_ascii_uppercase() {
                    'K' => 1 << 10,
                    'M' => 1 << 20,
                    'G' => 1 << 30,
                    'T' => 1 << 40,
                    'B' => 1,
                    _ => return Err(bad()),
                };
                (&t[..i], m)
            }
            _ => (t, 1),
        };
        let num = num.trim();
        if num.is_empty() || num.starts_with('-') || num.starts_with('+') {
            return Err(bad());
        }
        let bytes = if let Ok(n) = num.parse::<u64>() {
            n.checked_mul(mult)
                .ok_or_else(|| format!("size `{s}` is too large"))?
        } else {
            let f: f64 = num.parse().map_err(|_| bad())?;
            if !f.is_finite() || f < 0.0 {
                return Err(bad());
            }
            let b = f * mult as f64;
            if b >= u64::MAX as f64 {
                return Err(format!("size `{s}` is too large"));
            }
            b as u64
        };
        if bytes == 0 {
            return Err(format!("size `{s}` is zero: give a positive size"));
        }
        Ok(Size(bytes))
    }
}
deserialize_from_str!(Size, "a size such as 512K, 256M or 2G");

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, m) in [
            ("T", 1u64 << 40),
            ("G", 1 << 30),
            ("M", 1 << 20),
            ("K", 1 << 10),
        ] {
            if b >= m && b.is_multiple_of(m) {
                return write!(f, "{}{unit}", b / m);
            }
        }
        write!(f, "{b}")
    }
}

/// A duration in milliseconds, written with an `ms`, `s`, `m` or `h` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Duration(pub u64);

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("bad duration `{s}`: write a number with ms, s, m or h (e.g. 10s, 1h)");
        let t = s.trim();
        let split = t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
        let (num, unit) = t.split_at(split);
        let mult: f64 = match unit {
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return Err(bad()),
        };
        let num = num.trim();
        if num.is_empty() || num.starts_with('-') || num.starts_with('+') {
            return Err(bad());
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        let ms = n * mult;
        if !ms.is_finite() || ms < 0.0 {
            return Err(bad());
        }
        // A year is far beyond any sane limit and keeps arithmetic safe.
        if ms > 365.0 * 24.0 * 3600e3 {
            return Err(format!("duration `{s}` is longer than a year"));
        }
        Ok(Duration(ms.round() as u64))
    }
}
deserialize_from_str!(Duration, "a duration such as 500ms, 10s, 5m or 1h");

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, m) in [("h", 3_600_000u64), ("m", 60_000), ("s", 1000)] {
            if ms >= m && ms.is_multiple_of(m) {
                return write!(f, "{}{unit}", ms / m);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// A syscall name known on at least one supported architecture.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SyscallName(pub String);

impl FromStr for SyscallName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if crate::syscalls::is_known(s) {
            return Ok(SyscallName(s.to_string()));
        }
        Err(match crate::syscalls::suggest(s) {
            Some(g) => format!("unknown syscall `{s}` (did you mean `{g}`?)"),
            None => format!("unknown syscall `{s}`"),
        })
    }
}
deserialize_from_str!(SyscallName, "a syscall name such as `ptrace`");

/// A capability name in the kernel's spelling, e.g. `CAP_NET_BIND_SERVICE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CapName(pub caps::Capability);

impl FromStr for CapName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if let Ok(c) = full.parse::<caps::Capability>() {
            return Ok(CapName(c));
        }
        let names: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        Err(match closest(&full, names.iter().map(String::as_str)) {
            Some(g) => format!("unknown capability `{s}` (did you mean `{g}`?)"),
            None => format!("unknown capability `{s}`"),
        })
    }
}
deserialize_from_str!(CapName, "a capability name such as CAP_NET_BIND_SERVICE");

impl Serialize for CapName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl fmt::Display for CapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One entry of `connect_tcp` / `bind_tcp`: a port, or `any`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRule {
    /// Every port: this direction is not restricted at all.
    Any,
    Port(u16),
}

impl FromStr for PortRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "any" {
            return Ok(PortRule::Any);
        }
        match s.trim().parse::<u64>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(PortRule::Port(n as u16)),
            _ => Err(format!(
                "port `{s}` is out of range: ports are 1 to 65535, or `any` for every port"
            )),
        }
    }
}
deserialize_from_str!(PortRule, "a TCP port number (1 to 65535) or `any`");

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRule::Any => f.write_str("any"),
            PortRule::Port(p) => write!(f, "{p}"),
        }
    }
}

impl Serialize for PortRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PortRule::Any => s.serialize_str("any"),
            PortRule::Port(p) => s.serialize_u16(*p),
        }
    }
}

/// `connect_tcp` / `bind_tcp` as written: a list (or `{add: ...}` /
/// `{remove: ...}`) of ports and `any`, or plain `any`, which is `[any]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortList(pub ListSpec<PortRule>);

impl<'de> Deserialize<'de> for PortList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PortList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`any`, a list of TCP ports, or {add: [...]} / {remove: [...]}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortList, E> {
                if s == "any" {
                    Ok(PortList(ListSpec::Replace(vec![PortRule::Any])))
                } else {
                    Err(E::custom(format!(
                        "`{s}`: write `any`, or a list of ports such as [443]"
                    )))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PortList, A::Error> {
                ListSpec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(PortList)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PortList, A::Error> {
                ListSpec::deserialize(de::value::MapAccessDeserializer::new(map)).map(PortList)
            }
        }
        d.deserialize_any(V)
    }
}

/// A socket address family by name (`AF_PACKET`, or `packet`), for
/// `network.socket_families`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketFamily(pub u32);

impl SocketFamily {
    pub(crate) fn name(self) -> &'static str {
        crate::families::name(self.0).unwrap_or("AF_?")
    }
}

impl FromStr for SocketFamily {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(nr) = crate::families::number(s.trim()) {
            return Ok(SocketFamily(nr));
        }
        let upper = s.trim().to_ascii_uppercase();
        let full = if upper.starts_with("AF_") {
            upper
        } else {
            format!("AF_{upper}")
        };
        let names = crate::families::FAMILIES.iter().map(|&(n, _)| n);
        Err(match closest(&full, names) {
            Some(g) => format!("unknown socket family `{s}` (did you mean `{g}`?)"),
            None => format!("unknown socket family `{s}`: write a name such as AF_PACKET"),
        })
    }
}
deserialize_from_str!(SocketFamily, "a socket family such as AF_PACKET");

impl fmt::Display for SocketFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for SocketFamily {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// An environment variable name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EnvKey(pub String);

impl FromStr for EnvKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.contains('=') || s.contains('\0') {
            return Err(format!(
                "bad environment variable name `{s}`: it must be non-empty and hold no `=`"
            ));
        }
        Ok(EnvKey(s.to_string()))
    }
}
deserialize_from_str!(EnvKey, "an environment variable name");

/// `home:`: what HOME is inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HomeSpec {
    /// HOME is the workspace.
    Workspace,
    /// A persistent directory of the profile's own, outside the workspace
    /// and the caller's home, created at launch.
    Private,
    /// An existing directory, write-granted.
    Path(PathSpec),
}

impl FromStr for HomeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "workspace" => Ok(HomeSpec::Workspace),
            "private" => Ok(HomeSpec::Private),
            _ if s.starts_with('/') || s.starts_with(WORKSPACE_VAR) => {
                let p: PathSpec = s.parse()?;
                if p.optional {
                    return Err(format!(
                        "`{s}`: a home can't be optional: HOME must be somewhere"
                    ));
                }
                Ok(HomeSpec::Path(p))
            }
            _ => Err(format!(
                "bad home `{s}`: write `workspace`, `private` or an absolute path"
            )),
        }
    }
}
deserialize_from_str!(HomeSpec, "`workspace`, `private` or an absolute path");

impl fmt::Display for HomeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HomeSpec::Workspace => f.write_str("workspace"),
            HomeSpec::Private => f.write_str("private"),
            HomeSpec::Path(p) => write!(f, "{p}"),
        }
    }
}

/// An `env.keep` entry: a variable name, or a prefix glob (`ANTHROPIC_*`).
/// The only wildcard is one trailing `*`, after at least one character: a
/// prefix is easy to read and review, while `*` alone (or `*_KEY`) would keep
/// variables nobody looked at, secrets included.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EnvPattern(pub String);

impl EnvPattern {
    /// The fixed part: the whole name, or what comes before the `*`.
    pub fn prefix(&self) -> &str {
        self.0.strip_suffix('*').unwrap_or(&self.0)
    }

    /// Whether this is a glob rather than one name.
    pub fn is_glob(&self) -> bool {
        self.0.ends_with('*')
    }

    /// Whether the variable `name` is kept by this entry (case matters).
    pub fn matches(&self, name: &[u8]) -> bool {
        if self.is_glob() {
            name.starts_with(self.prefix().as_bytes())
        } else {
            name == self.0.as_bytes()
        }
    }
}

impl FromStr for EnvPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let key: EnvKey = s.parse()?;
        let star = key.0.find('*');
        if star.is_some_and(|i| i + 1 != key.0.len()) {
            return Err(format!(
                "bad environment variable pattern `{s}`: the only wildcard is one `*` at the end (`ANTHROPIC_*`)"
            ));
        }
        if key.0 == "*" {
            return Err(
                "`*` would keep the caller's whole environment, secrets included: name the variables, or a prefix such as `ANTHROPIC_*`"
                    .into(),
            );
        }
        Ok(EnvPattern(key.0))
    }
}
deserialize_from_str!(
    EnvPattern,
    "an environment variable name or a prefix glob such as `ANTHROPIC_*`"
);

impl fmt::Display for EnvPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// CPU quota in cores, e.g. 1.5.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Cores(pub f64);

impl FromStr for Cores {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(c) if c.is_finite() && (0.01..=4096.0).contains(&c) => Ok(Cores(c)),
            _ => Err(format!(
                "bad cpu limit `{s}`: write a number of cores from 0.01 up, e.g. 1.5"
            )),
        }
    }
}
deserialize_from_str!(Cores, "a number of cores such as 1.5");

/// A positive count (pids, open files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Count(pub u64);

impl FromStr for Count {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u64>() {
            Ok(n) if n > 0 && n <= (1 << 31) => Ok(Count(n)),
            _ => Err(format!("bad count `{s}`: write a whole number from 1 up")),
        }
    }
}
deserialize_from_str!(Count, "a positive whole number");

/// Who the agent runs as: the launcher's type, parsed by its own rules,
/// plus one the profile adds: uid 0 must be spelled `root`.
pub(crate) use crate::sandbox::user::UserSpec;

fn parse_user(s: &str) -> Result<UserSpec, String> {
    match s.parse::<UserSpec>().map_err(|e| e.to_string())? {
        UserSpec::Id { uid: 0, .. } => Err(format!(
            "user `{s}` would run the agent as root: write `user: root` if that is really meant"
        )),
        UserSpec::Id { gid: Some(0), .. } => Err(format!(
            "user `{s}` would give the agent root's group (gid 0): name another group, or write `user: root` if root is really meant"
        )),
        spec => Ok(spec),
    }
}

impl<'de> Deserialize<'de> for UserSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UserSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("workspace-owner, inherit, root, a user name or UID[:GID]")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<UserSpec, E> {
                parse_user(s).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<UserSpec, E> {
                parse_user(&n.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<UserSpec, E> {
                parse_user(&n.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `filesystem.tmp`: `false` for none, `true` for the defaults, or settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum TmpSpec {
    Off,
    On(TmpSettings),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TmpSettings {
    pub size: Option<Size>,
    pub exec: Option<bool>,
}

impl<'de> Deserialize<'de> for TmpSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TmpSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`false`, `true` or {size: SIZE, exec: BOOL}")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<TmpSpec, E> {
                Ok(if b {
                    TmpSpec::On(TmpSettings::default())
                } else {
                    TmpSpec::Off
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TmpSpec, A::Error> {
                TmpSettings::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(TmpSpec::On)
            }
        }
        d.deserialize_any(V)
    }
}

/// A list that a child profile either replaces (plain list) or edits
/// (`{add: [...]}` / `{remove: [...]}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum ListSpec<T> {
    Replace(Vec<T>),
    Edit { add: Vec<T>, remove: Vec<T> },
}

impl<T> Default for ListSpec<T> {
    fn default() -> Self {
        ListSpec::Replace(Vec::new())
    }
}

/// The most entries one list of a profile may have, in one layer or merged:
/// far more than any sandbox needs, few enough that checking, planning and
/// mounting them stays quick.
pub(crate) const MAX_LIST_ENTRIES: usize = 4096;

impl<T: Eq + std::hash::Hash + Clone> ListSpec<T> {
    /// Applies this list on top of `base`. Linear: the lists may be long.
    pub(crate) fn apply(&self, base: &[T]) -> Vec<T> {
        match self {
            ListSpec::Replace(v) => v.clone(),
            ListSpec::Edit { add, remove } => {
                let remove: std::collections::HashSet<&T> = remove.iter().collect();
                let mut out: Vec<T> = base
                    .iter()
                    .filter(|x| !remove.contains(x))
                    .cloned()
                    .collect();
                let mut seen: std::collections::HashSet<T> = out.iter().cloned().collect();
                for a in add {
                    if seen.insert(a.clone()) {
                        out.push(a.clone());
                    }
                }
                out
            }
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListSpec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ListSpec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list, or {add: [...]} / {remove: [...]}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ListSpec<T>, A::Error> {
                Ok(ListSpec::Replace(Bounded::visit(seq)?.0))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ListSpec<T>, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Edit<T> {
                    #[serde(default = "Bounded::empty")]
                    add: Bounded<T>,
                    #[serde(default = "Bounded::empty")]
                    remove: Bounded<T>,
                }
                let e: Edit<T> =
                    Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ListSpec::Edit {
                    add: e.add.0,
                    remove: e.remove.0,
                })
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A list of at most [`MAX_LIST_ENTRIES`], refused at the entry past the
/// limit, so the error lands there.
struct Bounded<T>(Vec<T>);

impl<T> Bounded<T> {
    fn empty() -> Self {
        Bounded(Vec::new())
    }

    fn visit<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        bounded_seq(seq, MAX_LIST_ENTRIES, || {
            format!("more than {MAX_LIST_ENTRIES} entries in one list")
        })
        .map(Bounded)
    }
}

/// The elements of `seq`, refused at the one past `max` (so the error
/// lands there) with the words `too_many` gives.
pub(crate) fn bounded_seq<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    mut seq: A,
    max: usize,
    too_many: impl Fn() -> String,
) -> Result<Vec<T>, A::Error> {
    let mut v = Vec::new();
    while let Some(x) = seq.next_element()? {
        if v.len() == max {
            return Err(de::Error::custom(too_many()));
        }
        v.push(x);
    }
    Ok(v)
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
                Bounded::visit(seq)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// `filesystem.changes`: whether the agent's writes to the workspace land
/// at once or wait for `confine commit` (DESIGN.md §14).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Changes {
    #[default]
    Direct,
    Review,
}

/// Network mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    None,
    Loopback,
    /// Own network namespace with `lo` up; out only through confine's
    /// egress proxy (DESIGN.md §9).
    Proxy,
    Host,
}

impl NetworkMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Loopback => "loopback",
            NetworkMode::Proxy => "proxy",
            NetworkMode::Host => "host",
        }
    }
}

/// What a seccomp violation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnViolation {
    Errno,
    Kill,
    Log,
}

/// Whether a plan the kernel can't fully enforce is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compat {
    Strict,
    BestEffort,
}

/// Closest candidate by edit distance, for "did you mean" hints.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let max = (word.len() / 3).max(1);
    candidates
        .map(|c| {
            (
                levenshtein(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance where swapping two neighbouring characters counts as one
/// edit (optimal string alignment): `raed` is one typo away from `read`.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("256M".parse::<Size>().unwrap().0, 256 << 20);
        assert_eq!("1.5G".parse::<Size>().unwrap().0, 3 << 29);
        assert_eq!("4096".parse::<Size>().unwrap().0, 4096);
        assert_eq!("2k".parse::<Size>().unwrap().0, 2048);
        for bad in [
            "",
            "M",
            "-1M",
            "12X",
            "0",
            "0M",
            "1.2.3G",
            "NaNG",
            "99999999999T",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
        assert_eq!(Size(256 << 20).to_string(), "256M");
    }

    #[test]
    fn durations() {
        assert_eq!("10s".parse::<Duration>().unwrap().0, 10_000);
        assert_eq!("1h".parse::<Duration>().unwrap().0, 3_600_000);
        assert_eq!("250ms".parse::<Duration>().unwrap().0, 250);
        assert_eq!("1.5m".parse::<Duration>().unwrap().0, 90_000);
        for bad in ["10", "s", "-1s", "10d", "1 hour", "", "9999h"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
        assert_eq!(Duration(90_000).to_string(), "90s");
    }

    #[test]
    fn paths() {
        let p: PathSpec = "/lib64?".parse().unwrap();
        assert!(p.optional);
        assert_eq!(p.raw, "/lib64");
        let w: PathSpec = "{workspace}/.git/hooks".parse().unwrap();
        assert_eq!(
            w.expand(Some(std::path::Path::new("/w"))).unwrap(),
            std::path::PathBuf::from("/w/.git/hooks")
        );
        assert_eq!(w.expand(None), None);
        for bad in [
            "usr",
            "",
            "?",
            "{workspace}x",
            "/a/{home}",
            "/a/../etc",
            "~/x",
        ] {
            assert!(bad.parse::<PathSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn users() {
        assert_eq!(
            "1000:1001".parse::<UserSpec>().unwrap(),
            UserSpec::Id {
                uid: 1000,
                gid: Some(1001)
            }
        );
        assert_eq!(
            "agent".parse::<UserSpec>().unwrap(),
            UserSpec::Name("agent".into())
        );
        assert!(parse_user("0").is_err());
        assert!(parse_user("0:0").is_err());
        assert!(parse_user("65534:0").unwrap_err().contains("gid 0"));
        assert!(parse_user("4294967295").unwrap_err().contains("(uid_t)-1"));
        assert!(parse_user("1000:4294967295").is_err());
        assert!(parse_user("4294967294:4294967294").is_ok());
        assert!(parse_user("1000").is_ok());
        assert!("1000:x".parse::<UserSpec>().is_err());
        assert!("a b".parse::<UserSpec>().is_err());
    }

    #[test]
    fn caps_and_ports() {
        assert_eq!(
            "CAP_NET_BIND_SERVICE".parse::<CapName>().unwrap().0,
            caps::Capability::CAP_NET_BIND_SERVICE
        );
        assert_eq!(
            "net_raw".parse::<CapName>().unwrap().0,
            caps::Capability::CAP_NET_RAW
        );
        let e = "CAP_NET_BIND_SERVISE".parse::<CapName>().unwrap_err();
        assert!(e.contains("did you mean `CAP_NET_BIND_SERVICE`"), "{e}");
        assert!("0".parse::<PortRule>().is_err());
        assert!("65536".parse::<PortRule>().is_err());
        assert!("all".parse::<PortRule>().is_err());
        assert_eq!("443".parse::<PortRule>().unwrap(), PortRule::Port(443));
        assert_eq!(" any".parse::<PortRule>().unwrap(), PortRule::Any);
        assert_eq!(PortRule::Any.to_string(), "any");
    }

    #[test]
    fn list_merge() {
        let base = vec![1, 2, 3];
        assert_eq!(ListSpec::Replace(vec![9]).apply(&base), vec![9]);
        let e = ListSpec::Edit {
            add: vec![4, 1],
            remove: vec![2],
        };
        assert_eq!(e.apply(&base), vec![1, 3, 4]);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("raed", ["read", "write", "exec"].into_iter()),
            Some("read")
        );
        assert_eq!(closest("zzzzzz", ["read", "write"].into_iter()), None);
    }
}
