//! Profiles: YAML text in, a merged [`Profile`] out. This module knows YAML
//! and nothing of syscalls; checks that need the filesystem or the kernel run
//! in `plan/`, which reports through the same [`ProfileError`] so every
//! error names the file, line, column and key.

pub mod approval;
pub mod builtin;
pub mod egress;
pub mod home;
pub mod locate;
pub mod nesting;
pub mod schema;
pub mod secrets;
pub mod values;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use schema::RawProfile;
pub(crate) use values::*;

/// The text of one profile layer: a built-in, a file, or `--set` overrides.
#[derive(Debug)]
pub struct Source {
    /// How errors name it: a path, `built-in profile default`, `--set`.
    pub name: String,
    /// The file, for resolving a relative `extends`.
    pub path: Option<PathBuf>,
    pub text: String,
    /// A built-in's `text` as JSON, parsed instead of the YAML.
    pub json: Option<&'static str>,
}

impl Source {
    /// Where `key` is written. A `--set` layer is YAML we generated, not text
    /// the user can look at: it has no position (its name says which `--set`).
    fn locate(&self, key: &str) -> Option<locate::Pos> {
        if self.is_override() {
            None
        } else {
            locate::locate(&self.text, key)
        }
    }

    fn is_override(&self) -> bool {
        self.path.is_none() && self.name.starts_with(OVERRIDE_PREFIX)
    }
}

/// How `--set` layers are named: `--set #1`, `--set #2`, ...
const OVERRIDE_PREFIX: &str = "--set #";

/// Where a value was written: its layer and key path.
#[derive(Clone, Debug)]
pub struct Origin {
    pub source: Arc<Source>,
    pub key: String,
}

impl Origin {
    pub(crate) fn error(&self, message: impl Into<String>) -> ProfileError {
        let pos = self.source.locate(&self.key);
        ProfileError {
            source_name: self.source.name.clone(),
            pos,
            key: self.key.clone(),
            message: message.into(),
        }
    }
}

/// A value together with where it was written; `origin` is `None` for a
/// default that no profile wrote.
#[derive(Clone, Debug)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Option<Origin>,
}

impl<T> Sourced<T> {
    fn default_value(value: T) -> Self {
        Sourced {
            value,
            origin: None,
        }
    }

    /// An error about this value, located where it was written (or naming
    /// the key and saying it is the default). Public for the fuzz target,
    /// which locates every value it parses.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ProfileError {
        match &self.origin {
            Some(o) => o.error(message),
            None => ProfileError {
                source_name: "defaults".into(),
                pos: None,
                key: key.to_string(),
                message: message.into(),
            },
        }
    }
}

// Lists merge by value; where an item was written doesn't make it different.
impl<T: PartialEq> PartialEq for Sourced<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// A profile error: what key, where, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub source_name: String,
    pub pos: Option<locate::Pos>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() {
            "profile"
        } else {
            &self.key
        };
        match self.pos {
            Some(p) => write!(
                f,
                "{key} ({}:{}:{}): {}",
                self.source_name, p.line, p.col, self.message
            ),
            None => write!(f, "{key} ({}): {}", self.source_name, self.message),
        }
    }
}

impl std::error::Error for ProfileError {}

/// A warning about a risky but legal choice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub key: String,
    pub at: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.key, self.at, self.message)
    }
}

impl Warning {
    pub fn at<T>(v: &Sourced<T>, key: &str, message: impl Into<String>) -> Warning {
        let e = v.error(key, "");
        let at = match e.pos {
            Some(p) => format!("{}:{}:{}", e.source_name, p.line, p.col),
            None => e.source_name,
        };
        Warning {
            key: e.key,
            at,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Filesystem {
    pub read: Vec<Sourced<PathSpec>>,
    pub write: Vec<Sourced<PathSpec>>,
    pub exec: Vec<Sourced<PathSpec>>,
    pub tmp: Option<TmpSettings>,
    pub protect: Vec<Sourced<PathSpec>>,
    /// `direct` or `review` (DESIGN.md §14), and where it was written.
    pub changes: Sourced<Changes>,
}

#[derive(Clone, Debug)]
pub struct Network {
    pub mode: Sourced<NetworkMode>,
    /// Ports and `any`; where `any` is listed, that direction isn't
    /// restricted.
    pub connect_tcp: Vec<PortRule>,
    pub bind_tcp: Vec<PortRule>,
    /// What `socket` and `socketpair` may open.
    pub socket_families: Vec<Sourced<SocketFamily>>,
    /// Proxy mode (DESIGN.md §9): the hosts the agent may reach, in order.
    pub allow: Vec<Sourced<egress::AllowEntry>>,
    /// Proxy mode: refused even where `allow` admits them.
    pub deny: Vec<Sourced<egress::DenyEntry>>,
    /// Proxy mode: `hosts:` pins, name (lower case) to address, in order.
    pub hosts: Vec<egress::Pin>,
    /// Proxy mode: `budget`, merged field by field; where it was last written.
    pub budget: Option<Sourced<egress::RawBudget>>,
    /// Proxy mode: hosts admitted only once approved (DESIGN.md §12), with
    /// `allow`'s syntax.
    pub ask: Vec<Sourced<egress::AllowEntry>>,
}

impl Network {
    /// `connect_tcp` allows every port.
    pub(crate) fn connect_any(&self) -> bool {
        self.connect_tcp.contains(&PortRule::Any)
    }

    /// `bind_tcp` allows every port.
    pub(crate) fn bind_any(&self) -> bool {
        self.bind_tcp.contains(&PortRule::Any)
    }
}

/// The listed ports of `rules`, without `any`.
pub(crate) fn ports(rules: &[PortRule]) -> Vec<u16> {
    rules
        .iter()
        .filter_map(|r| match r {
            PortRule::Port(p) => Some(*p),
            PortRule::Any => None,
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Syscalls {
    pub allow: Vec<Sourced<SyscallName>>,
    pub deny: Vec<Sourced<SyscallName>>,
    pub on_violation: OnViolation,
}

#[derive(Clone, Debug)]
pub struct Env {
    pub keep: Vec<Sourced<EnvPattern>>,
    pub set: BTreeMap<String, String>,
    /// The last layer that replaced `keep` with a plain list, and what the
    /// list it replaced kept: `check` warns when that drops PATH, TERM or
    /// LANG (a list is easy to write as a replacement when an addition was
    /// meant).
    pub keep_replaced: Option<(Sourced<()>, Vec<EnvPattern>)>,
}

impl Env {
    /// Whether the variable `name` reaches the agent from the caller's
    /// environment.
    pub fn keeps(&self, name: &str) -> bool {
        self.keep.iter().any(|k| k.value.matches(name.as_bytes()))
    }
}

/// Limits merge field by field; a layer's own are the same shape.
pub type Limits = schema::RawLimits;

/// A merged profile: every layer of `extends` applied, defaults filled in.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// The layers, root ancestor first.
    pub sources: Vec<Arc<Source>>,
    pub workspace: Option<Sourced<PathSpec>>,
    pub filesystem: Filesystem,
    pub network: Network,
    pub syscalls: Syscalls,
    pub capabilities: Vec<Sourced<CapName>>,
    pub user: Sourced<UserSpec>,
    /// What HOME is; `None`: the profile doesn't say (HOME isn't set,
    /// unless `env.set` sets it).
    pub home: Option<Sourced<HomeSpec>>,
    /// `home.files`: written into HOME at launch where absent, by name.
    pub home_files: home::Files,
    pub env: Env,
    pub limits: Limits,
    /// Who answers checkpoints and asks (DESIGN.md §12).
    pub approval: approval::RawApproval,
    pub audit_log: Option<Sourced<PathSpec>>,
    pub compat: Compat,
    /// Proxy mode: credentials the agent never sees (DESIGN.md §10), in
    /// order, one per name.
    pub secrets: Vec<Sourced<secrets::RawSecret>>,
}

/// The environment kept when no profile says otherwise: enough for programs
/// to find their tools and speak the user's language, nothing secret.
pub(crate) const DEFAULT_ENV_KEEP: &[&str] = &["PATH", "LANG", "LC_ALL", "TERM", "TZ", "COLORTERM"];

/// `/tmp`'s size when a profile doesn't say.
pub(crate) const DEFAULT_TMP_SIZE: u64 = 256 << 20;

impl Profile {
    /// An error about `key`, located in the last layer that writes it
    /// (for values merged without their origin, such as `limits`).
    pub(crate) fn error_at(&self, key: &str, message: impl Into<String>) -> ProfileError {
        let source = self
            .sources
            .iter()
            .rev()
            .find(|s| locate::locate(&s.text, key).is_some())
            .or(self.sources.last());
        match source {
            Some(s) => Origin {
                source: s.clone(),
                key: key.to_string(),
            }
            .error(message),
            None => ProfileError {
                source_name: "defaults".into(),
                pos: None,
                key: key.to_string(),
                message: message.into(),
            },
        }
    }

    fn base() -> Profile {
        Profile {
            name: String::new(),
            description: String::new(),
            sources: Vec::new(),
            workspace: None,
            filesystem: Filesystem {
                read: vec![],
                write: vec![],
                exec: vec![],
                tmp: Some(TmpSettings::default()),
                protect: vec![],
                changes: Sourced::default_value(Changes::Direct),
            },
            network: Network {
                mode: Sourced::default_value(NetworkMode::None),
                connect_tcp: vec![],
                bind_tcp: vec![],
                socket_families: crate::families::DEFAULT
                    .iter()
                    .filter_map(|n| crate::families::number(n))
                    .map(|nr| Sourced::default_value(SocketFamily(nr)))
                    .collect(),
                allow: vec![],
                ask: vec![],
                deny: vec![],
                hosts: vec![],
                budget: None,
            },
            syscalls: Syscalls {
                allow: vec![],
                deny: vec![],
                on_violation: OnViolation::Errno,
            },
            capabilities: vec![],
            user: Sourced::default_value(UserSpec::WorkspaceOwner),
            home: None,
            home_files: home::Files::new(),
            env: Env {
                keep: DEFAULT_ENV_KEEP
                    .iter()
                    .map(|k| Sourced::default_value(EnvPattern(k.to_string())))
                    .collect(),
                set: BTreeMap::new(),
                keep_replaced: None,
            },
            limits: Limits::default(),
            approval: approval::RawApproval::default(),
            audit_log: None,
            compat: Compat::Strict,
            secrets: vec![],
        }
    }

    /// sha256 over every layer's text, root first: it changes whenever
    /// anything that shaped this profile changes.
    pub fn sha256(&self) -> String {
        let mut h = Sha256::new();
        for s in &self.sources {
            h.update(s.name.as_bytes());
            h.update([0]);
            h.update(s.text.as_bytes());
            h.update([0]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// How deep `extends` may go; deeper chains are almost surely a mistake.
const MAX_DEPTH: usize = 16;

/// The largest profile file confine reads: a hundred times the biggest
/// sensible one, and small enough that parsing it is quick.
pub(crate) const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// Loads a profile by built-in name or path, follows `extends`, applies
/// `--set` overrides (each `KEY=VALUE`) and merges everything.
///
/// # Errors
/// A [`ProfileError`] naming the layer, position and key of the first problem.
pub fn load(spec: &str, overrides: &[String]) -> Result<Profile, ProfileError> {
    let mut chain: Vec<(Arc<Source>, RawProfile)> = Vec::new();
    let mut next = Some((spec.to_string(), None::<PathBuf>, None::<Origin>));
    let mut seen: Vec<String> = Vec::new();
    while let Some((name, base_dir, from)) = next.take() {
        let source = Arc::new(read_source(&name, base_dir.as_deref(), from.as_ref())?);
        let identity = source
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| source.name.clone());
        if seen.contains(&identity) {
            let o = from.expect("a repeated profile is always reached through extends");
            return Err(o.error(format!(
                "extends cycle: {} -> {identity}",
                seen.join(" -> ")
            )));
        }
        if seen.len() >= MAX_DEPTH {
            let o = from.expect("depth grows only through extends");
            return Err(o.error(format!("extends chain is deeper than {MAX_DEPTH} profiles")));
        }
        seen.push(identity);
        let raw = parse(&source, true)?;
        if let Some(parent) = &raw.extends {
            let dir = source
                .path
                .as_ref()
                .and_then(|p| p.parent().map(Path::to_path_buf));
            let origin = Origin {
                source: source.clone(),
                key: "extends".into(),
            };
            next = Some((parent.clone(), dir, Some(origin)));
        }
        chain.push((source, raw));
    }
    for (i, o) in overrides.iter().enumerate() {
        let source = Arc::new(override_source(o, i)?);
        let raw = parse(&source, false)?;
        if raw.extends.is_some() {
            return Err(ProfileError {
                source_name: source.name.clone(),
                pos: None,
                key: "extends".into(),
                message: "extends can't be set with --set; use -p".into(),
            });
        }
        chain.insert(0, (source, raw));
    }
    // Files were collected child first; merge from the root ancestor down.
    let mut profile = Profile::base();
    let top_name = chain
        .iter()
        .find(|(s, _)| !s.is_override())
        .map(|(s, _)| s.clone());
    for (source, raw) in chain.into_iter().rev() {
        merge(&mut profile, &source, raw)?;
        profile.sources.push(source);
    }
    check_list_sizes(&profile)?;
    egress::check(&profile)?;
    secrets::check(&profile)?;
    home::check(&profile)?;
    if profile.name.is_empty() {
        profile.name = top_name
            .and_then(|s| {
                s.path
                    .as_ref()
                    .and_then(|p| p.file_stem())
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "unnamed".into());
    }
    Ok(profile)
}

/// Parses and merges a profile given as text, named `name` in errors. Its
/// `extends` may name a built-in only: with no file, there is no directory
/// for a relative path to resolve from. For tools and fuzzing; `load` is what
/// the CLI uses.
///
/// # Errors
/// A [`ProfileError`] naming the position and key of the first problem.
pub fn from_text(name: &str, text: &str) -> Result<Profile, ProfileError> {
    let source = Arc::new(Source {
        name: name.to_string(),
        path: None,
        text: text.to_string(),
        json: None,
    });
    let raw = parse(&source, true)?;
    let mut profile = Profile::base();
    if let Some(parent) = &raw.extends {
        let origin = Origin {
            source: source.clone(),
            key: "extends".into(),
        };
        if looks_like_path(parent) {
            return Err(origin.error("extends of a file path needs a profile file; use load()"));
        }
        let base = load(parent, &[]).map_err(|e| origin.error(e.message))?;
        profile = base;
    }
    merge(&mut profile, &source, raw)?;
    profile.sources.push(source);
    check_list_sizes(&profile)?;
    egress::check(&profile)?;
    secrets::check(&profile)?;
    home::check(&profile)?;
    if profile.name.is_empty() {
        profile.name = name.to_string();
    }
    Ok(profile)
}

/// Each layer's lists are bounded as they are parsed; `{add: [...]}` in
/// every layer of an `extends` chain could still add up. Located at the
/// first entry past the limit.
fn check_list_sizes(p: &Profile) -> Result<(), ProfileError> {
    fn check<T>(list: &[Sourced<T>], key: &str) -> Result<(), ProfileError> {
        match list.get(MAX_LIST_ENTRIES) {
            Some(item) => Err(item.error(
                key,
                format!(
                    "{key} has {} entries once merged with what it extends; at most {MAX_LIST_ENTRIES} are allowed",
                    list.len()
                ),
            )),
            None => Ok(()),
        }
    }
    let fs = &p.filesystem;
    check(&fs.read, "filesystem.read")?;
    check(&fs.write, "filesystem.write")?;
    check(&fs.exec, "filesystem.exec")?;
    check(&fs.protect, "filesystem.protect")?;
    check(&p.syscalls.allow, "syscalls.allow")?;
    check(&p.syscalls.deny, "syscalls.deny")?;
    check(&p.capabilities, "capabilities")?;
    check(&p.network.allow, "network.allow")?;
    check(&p.network.deny, "network.deny")?;
    check(&p.network.ask, "network.ask")?;
    check(&p.network.hosts, "network.hosts")?;
    check(&p.env.keep, "env.keep")
}

fn looks_like_path(spec: &str) -> bool {
    spec.contains('/') || spec.ends_with(".yaml") || spec.ends_with(".yml")
}

fn read_source(
    spec: &str,
    base_dir: Option<&Path>,
    from: Option<&Origin>,
) -> Result<Source, ProfileError> {
    let fail = |message: String| match from {
        Some(o) => o.error(message),
        None => ProfileError {
            source_name: spec.to_string(),
            pos: None,
            key: String::new(),
            message,
        },
    };
    if !looks_like_path(spec) {
        return match builtin::get(spec) {
            Some(text) => Ok(Source {
                name: format!("built-in profile {spec}"),
                path: None,
                text: text.to_string(),
                json: builtin::json(spec),
            }),
            None => {
                let names: Vec<&str> = builtin::ALL.iter().map(|(n, _)| *n).collect();
                let hint = match closest(spec, names.iter().copied()) {
                    Some(g) => format!(" (did you mean `{g}`?)"),
                    None => String::new(),
                };
                Err(fail(format!(
                    "no built-in profile `{spec}`{hint}; built-ins are {}; a file path needs a `/` or a .yaml suffix",
                    names.join(", ")
                )))
            }
        };
    }
    let path = match base_dir {
        // `components()` drops the `.` of `./parent.yaml` from the name errors show.
        Some(d) if !Path::new(spec).is_absolute() => d.join(spec).components().collect(),
        _ => PathBuf::from(spec),
    };
    let text = crate::files::read_bounded(&path, MAX_PROFILE_BYTES)
        .map_err(|e| fail(format!("can't read profile {}: {e}", path.display())))?;
    let text = String::from_utf8(text)
        .map_err(|_| fail(format!("profile {} is not UTF-8", path.display())))?;
    let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    Ok(Source {
        name: path.display().to_string(),
        path: Some(canonical),
        text,
        json: None,
    })
}

/// `--set a.b=VALUE` as a one-key YAML layer; VALUE is read as YAML, so
/// lists (`[80,443]`) and maps work as they would in a file.
fn override_source(arg: &str, index: usize) -> Result<Source, ProfileError> {
    let err = |m: String| ProfileError {
        source_name: format!("--set {arg}"),
        pos: None,
        key: arg.split('=').next().unwrap_or("").to_string(),
        message: m,
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| err("expected KEY=VALUE, e.g. --set limits.memory=1G".into()))?;
    if key.is_empty()
        || key
            .split('.')
            .any(|k| k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(err(format!(
            "bad key `{key}`: write a dotted key such as limits.memory"
        )));
    }
    // A value that isn't YAML is taken as a string, but one nested too
    // deep is refused before serde_yaml spends seconds on it.
    let mut node: serde_yaml::Value = if value.is_empty() {
        serde_yaml::Value::String(String::new())
    } else if let Err(e) = nesting::check(value) {
        match e {
            // Named by number: the value itself may be a 100 KB of brackets.
            nesting::Refused::TooDeep(_) => {
                return Err(ProfileError {
                    source_name: format!("{OVERRIDE_PREFIX}{}", index + 1),
                    ..err(e.message())
                })
            }
            nesting::Refused::Unreadable(..) => serde_yaml::Value::String(value.to_string()),
        }
    } else {
        serde_yaml::from_str(value).unwrap_or_else(|_| serde_yaml::Value::String(value.to_string()))
    };
    for k in key.rsplit('.') {
        let mut m = serde_yaml::Mapping::new();
        m.insert(serde_yaml::Value::String(k.to_string()), node);
        node = serde_yaml::Value::Mapping(m);
    }
    let text = serde_yaml::to_string(&node).map_err(|e| err(e.to_string()))?;
    Ok(Source {
        name: format!("{OVERRIDE_PREFIX}{}", index + 1),
        path: None,
        text,
        json: None,
    })
}

/// Parses one layer. Files must say `version: 1`.
fn parse(source: &Arc<Source>, is_file: bool) -> Result<RawProfile, ProfileError> {
    // Should a built-in's JSON ever not parse, the YAML below says where.
    if let Some(raw) = source
        .json
        .and_then(|j| serde_json::from_str::<RawProfile>(j).ok())
    {
        if raw.version.is_some() {
            return Ok(raw);
        }
    }
    if let Err(e) = nesting::check(&source.text) {
        return Err(ProfileError {
            source_name: source.name.clone(),
            pos: (!source.is_override()).then(|| e.pos()),
            key: String::new(),
            message: e.message(),
        });
    }
    let de = serde_yaml::Deserializer::from_str(&source.text);
    let mut track = serde_path_to_error::Track::new();
    let result = RawProfile::deserialize_tracked(de, &mut track);
    let raw = match result {
        Ok(r) => r,
        Err(e) => {
            let path = track.path().to_string();
            return Err(yaml_error(source, &path, &e));
        }
    };
    if is_file && raw.version.is_none() {
        return Err(ProfileError {
            source_name: source.name.clone(),
            pos: Some(locate::Pos { line: 1, col: 1 }),
            key: "version".into(),
            message: "missing `version: 1` (the schema version this profile is written for)".into(),
        });
    }
    Ok(raw)
}

impl RawProfile {
    fn deserialize_tracked<'de>(
        de: serde_yaml::Deserializer<'de>,
        track: &mut serde_path_to_error::Track,
    ) -> Result<RawProfile, serde_yaml::Error> {
        use serde::Deserialize;
        let de = serde_path_to_error::Deserializer::new(de, track);
        // An empty document is an empty profile, which then lacks `version`.
        match RawProfile::deserialize(de) {
            Ok(r) => Ok(r),
            Err(e) if e.to_string().starts_with("EOF while parsing") => Ok(RawProfile::default()),
            Err(e) => Err(e),
        }
    }
}

/// Turns a serde_yaml error into one that names the key and suggests the
/// intended one for a typo.
fn yaml_error(source: &Source, tracked: &str, e: &serde_yaml::Error) -> ProfileError {
    let pos = e
        .location()
        .filter(|_| !source.is_override())
        .map(|l| locate::Pos {
            line: l.line(),
            col: l.column(),
        });
    let mut message = e.to_string();
    // serde_yaml appends the position and prefixes the path; we print both
    // ourselves, in the order DESIGN.md gives.
    if let Some(l) = e.location() {
        let suffix = format!(" at line {} column {}", l.line(), l.column());
        if let Some(m) = message.strip_suffix(&suffix) {
            message = m.to_string();
        }
    }
    let tracked = if tracked == "." { "" } else { tracked };
    let tracked = tracked.trim_end_matches(".?");
    // serde_yaml's path may stop short of ours: for an unknown key it names
    // the enclosing map (`filesystem: unknown field ...`), where ours already
    // ends with the key. Strip the longest ancestor it used.
    let ancestors = tracked
        .char_indices()
        .filter(|(_, c)| matches!(c, '.' | '['))
        .map(|(i, _)| &tracked[..i])
        .chain(std::iter::once(tracked))
        .filter(|p| !p.is_empty());
    let ancestors: Vec<&str> = ancestors.collect();
    for p in ancestors.iter().rev() {
        if let Some(m) = message.strip_prefix(&format!("{p}: ")) {
            message = m.to_string();
            break;
        }
    }
    // Name the shape a person writes, not our internal type.
    if let Some(i) = message.find("expected struct ") {
        message = format!("{}expected a map (key: value)", &message[..i]);
    }
    let mut key = tracked.to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            // The tracked path may already end with the unknown key.
            if !key.ends_with(field) {
                key = if key.is_empty() {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
            }
            message = match closest(field, candidates.iter().copied()) {
                Some(g) => format!(
                    "unknown key `{field}` (did you mean `{g}`?); allowed here: {}",
                    candidates.join(", ")
                ),
                None => format!(
                    "unknown key `{field}`; allowed here: {}",
                    candidates.join(", ")
                ),
            };
        }
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((v, expected)) = rest.split_once('`') {
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            message = format!("unknown value `{v}`; allowed: {}", candidates.join(", "));
        }
    }
    ProfileError {
        source_name: source.name.clone(),
        pos,
        key,
        message,
    }
}

fn sourced<T>(source: &Arc<Source>, key: &str, value: T) -> Sourced<T> {
    Sourced {
        value,
        origin: Some(Origin {
            source: source.clone(),
            key: key.to_string(),
        }),
    }
}

/// Applies one list layer, remembering where each written item came from.
/// Linear in the lists' lengths (a profile may have thousands of entries).
fn merge_list<T: Eq + std::hash::Hash + Clone>(
    base: &mut Vec<Sourced<T>>,
    spec: Option<ListSpec<T>>,
    source: &Arc<Source>,
    key: &str,
) {
    let Some(spec) = spec else { return };
    let at = |sub: &str, i: usize| {
        if sub.is_empty() {
            format!("{key}[{i}]")
        } else {
            format!("{key}.{sub}[{i}]")
        }
    };
    match spec {
        ListSpec::Replace(v) => {
            *base = v
                .into_iter()
                .enumerate()
                .map(|(i, x)| sourced(source, &at("", i), x))
                .collect();
        }
        ListSpec::Edit { add, remove } => {
            let remove: HashSet<T> = remove.into_iter().collect();
            base.retain(|x| !remove.contains(&x.value));
            let mut seen: HashSet<T> = base.iter().map(|x| x.value.clone()).collect();
            for (i, a) in add.into_iter().enumerate() {
                if seen.insert(a.clone()) {
                    base.push(sourced(source, &at("add", i), a));
                }
            }
        }
    }
}

/// Applies a `connect_tcp` / `bind_tcp` layer. Removing a port from `any`
/// can't be expressed (there is no "every port but"): an error, rather than
/// a removal that silently changes nothing.
fn merge_ports(
    base: &mut Vec<PortRule>,
    spec: Option<PortList>,
    source: &Arc<Source>,
    key: &str,
) -> Result<(), ProfileError> {
    let Some(PortList(spec)) = spec else {
        return Ok(());
    };
    if let ListSpec::Edit { remove, .. } = &spec {
        if base.contains(&PortRule::Any) {
            if let Some(i) = remove.iter().position(|r| *r != PortRule::Any) {
                let at = format!("{key}.remove[{i}]");
                return Err(sourced(source, &at, ()).error(&at, format!(
                    "can't remove port {} from `any` (the profile this extends allows every port): list the ports to allow instead",
                    remove[i]
                )));
            }
        }
    }
    *base = spec.apply(base);
    Ok(())
}

fn merge(p: &mut Profile, s: &Arc<Source>, raw: RawProfile) -> Result<(), ProfileError> {
    if let Some(n) = raw.name {
        p.name = n;
    }
    if let Some(d) = raw.description {
        p.description = d;
    }
    if let Some(w) = raw.workspace {
        p.workspace = Some(sourced(s, "workspace", w));
    }
    if let Some(fs) = raw.filesystem {
        merge_list(&mut p.filesystem.read, fs.read, s, "filesystem.read");
        merge_list(&mut p.filesystem.write, fs.write, s, "filesystem.write");
        merge_list(&mut p.filesystem.exec, fs.exec, s, "filesystem.exec");
        merge_list(
            &mut p.filesystem.protect,
            fs.protect,
            s,
            "filesystem.protect",
        );
        if let Some(c) = fs.changes {
            p.filesystem.changes = sourced(s, "filesystem.changes", c);
        }
        match fs.tmp {
            None => {}
            Some(TmpSpec::Off) => p.filesystem.tmp = None,
            Some(TmpSpec::On(t)) => {
                let base = p.filesystem.tmp.clone().unwrap_or_default();
                p.filesystem.tmp = Some(TmpSettings {
                    size: t.size.or(base.size),
                    exec: t.exec.or(base.exec),
                });
            }
        }
    }
    if let Some(n) = raw.network {
        if let Some(m) = n.mode {
            p.network.mode = sourced(s, "network.mode", m);
            // The egress policy means nothing in another mode: a layer that
            // chooses one leaves its parent's behind (what it writes itself
            // is still checked against the mode).
            if m != NetworkMode::Proxy {
                let net = &mut p.network;
                net.allow.clear();
                net.ask.clear();
                net.deny.clear();
                net.hosts.clear();
                net.budget = None;
                p.secrets.clear();
            }
        }
        merge_list(&mut p.network.allow, n.allow, s, "network.allow");
        merge_list(&mut p.network.deny, n.deny, s, "network.deny");
        merge_list(&mut p.network.ask, n.ask, s, "network.ask");
        if let Some(h) = n.hosts {
            h.merge_into(&mut p.network.hosts, s, "network.hosts");
        }
        if let Some(b) = n.budget {
            let base = p.network.budget.take().map(|b| b.value).unwrap_or_default();
            p.network.budget = Some(sourced(s, "network.budget", b.over(&base)));
        }
        merge_ports(
            &mut p.network.connect_tcp,
            n.connect_tcp,
            s,
            "network.connect_tcp",
        )?;
        merge_ports(&mut p.network.bind_tcp, n.bind_tcp, s, "network.bind_tcp")?;
        merge_list(
            &mut p.network.socket_families,
            n.socket_families,
            s,
            "network.socket_families",
        );
    }
    if let Some(sc) = raw.syscalls {
        merge_list(&mut p.syscalls.allow, sc.allow, s, "syscalls.allow");
        merge_list(&mut p.syscalls.deny, sc.deny, s, "syscalls.deny");
        if let Some(v) = sc.on_violation {
            p.syscalls.on_violation = v;
        }
    }
    merge_list(&mut p.capabilities, raw.capabilities, s, "capabilities");
    if let Some(u) = raw.user {
        p.user = sourced(s, "user", u);
    }
    if let Some(h) = raw.home {
        home::merge(p, s, h);
    }
    if let Some(e) = raw.env {
        match &e.keep {
            Some(ListSpec::Replace(_)) => {
                let before = p.env.keep.iter().map(|k| k.value.clone()).collect();
                p.env.keep_replaced = Some((sourced(s, "env.keep", ()), before));
            }
            // What a layer removes by name it meant to drop.
            Some(ListSpec::Edit { remove, .. }) => {
                if let Some((_, before)) = &mut p.env.keep_replaced {
                    before.retain(|b| !remove.contains(b));
                }
            }
            None => {}
        }
        merge_list(&mut p.env.keep, e.keep, s, "env.keep");
        if let Some(set) = e.set {
            for (k, v) in set {
                p.env.set.insert(k.0, v);
            }
        }
    }
    if let Some(l) = raw.limits {
        let t = &mut p.limits;
        t.wall_time = l.wall_time.or(t.wall_time);
        t.grace = l.grace.or(t.grace);
        t.memory = l.memory.or(t.memory);
        t.pids = l.pids.or(t.pids);
        t.cpu = l.cpu.or(t.cpu);
        t.open_files = l.open_files.or(t.open_files);
        t.file_size = l.file_size.or(t.file_size);
        t.core_dumps = l.core_dumps.or(t.core_dumps);
        t.checkpoint_every = l.checkpoint_every.or(t.checkpoint_every);
    }
    if let Some(a) = raw.approval {
        p.approval.merge(a);
    }
    if let Some(a) = raw.audit {
        if let Some(log) = a.log {
            p.audit_log = Some(sourced(s, "audit.log", log));
        }
    }
    if let Some(c) = raw.compat {
        p.compat = c;
    }
    if let Some(list) = raw.secrets {
        list.merge_into(&mut p.secrets, s, "secrets")?;
    }
    Ok(())
}
