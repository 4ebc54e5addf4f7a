//! Profile + command line + kernel features -> [`Plan`]: plain data with
//! absolute, symlink-resolved paths, the Landlock rules for the ABI in use,
//! both seccomp programs compiled, the environment the agent will get, limits
//! in canonical units and what this kernel can't enforce.
//!
//! Building a plan has no side effects: `explain` and `run --dry-run` print
//! one, `run` hands it to the launcher, which only applies it. Everything a
//! launch needs is decided here, before any fork.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsString};
use std::fmt::{self, Write as _};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::profile::{
    self, NetworkMode, PathSpec, PortRule, Profile, ProfileError, Sourced, Warning,
};
use crate::sandbox::landlock::{self as ll, Grant};
use crate::sandbox::seccomp;
use crate::sandbox::{cgroup, mounts};
use crate::sandbox::{memfd, user};
use crate::syscalls::{self, Arch};

/// What `run`, `explain` and `--dry-run` were asked for.
#[derive(Debug, Default)]
pub struct Request {
    pub profile: String,
    pub workspace: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub audit_log: Option<PathBuf>,
    pub command: Vec<OsString>,
}

/// Why no plan could be made.
#[derive(Debug)]
pub enum PlanError {
    /// Something the profile says, with where it says it.
    Profile(ProfileError),
    /// Something outside the profile: a missing workspace, the kernel.
    Refused {
        what: String,
        at: String,
        why: String,
        hint: Option<String>,
    },
    /// A refusal made once the audit log was known and checked (a valid
    /// profile this host can't fully enforce under `compat: strict`, a user
    /// or environment that can't be resolved): `run` writes it there as a
    /// `refused` record (DESIGN.md §7).
    Audited {
        refusal: Box<PlanError>,
        audit: Option<RefusedLaunch>,
    },
}

/// Where and what to audit about a launch the plan refused.
#[derive(Debug, Clone)]
pub struct RefusedLaunch {
    pub log: PathBuf,
    /// The `refused` record's fields (`ts`, `event`, `sandbox` and `pid`
    /// are the audit log's own).
    pub fields: serde_json::Value,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Profile(e) => write!(f, "{e}"),
            PlanError::Audited { refusal, .. } => write!(f, "{refusal}"),
            PlanError::Refused {
                what,
                at,
                why,
                hint,
            } => {
                write!(f, "{what} ({at}): {why}")?;
                if let Some(h) = hint {
                    write!(f, "; hint: {h}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PlanError {}

impl From<ProfileError> for PlanError {
    fn from(e: ProfileError) -> Self {
        PlanError::Profile(e)
    }
}

fn refused(what: impl Into<String>, at: impl Into<String>, why: impl Into<String>) -> PlanError {
    PlanError::Refused {
        what: what.into(),
        at: at.into(),
        why: why.into(),
        hint: None,
    }
}

/// What protect planning has already put in the view, so that many
/// entries plan in linear time.
#[derive(Default)]
struct ProtectSeen {
    /// The write binds' paths.
    writes: std::collections::HashSet<PathBuf>,
    create: std::collections::HashSet<PathBuf>,
    rely: std::collections::HashSet<PathBuf>,
    pins: std::collections::HashSet<PathBuf>,
    protect: std::collections::HashSet<PathBuf>,
    masks: std::collections::HashSet<PathBuf>,
}

/// One path rule as `explain` shows it and Landlock applies it.
#[derive(Clone, Debug, Serialize)]
pub struct PathGrant {
    /// The path as the profile wrote it (`{workspace}` expanded).
    pub written: PathBuf,
    /// Where it resolves, symlinks followed; the rule binds to this.
    pub path: PathBuf,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// Granted by confine itself (e.g. `/dev/null`), not by the profile.
    pub implicit: bool,
    /// The Landlock rights on the path.
    pub rights: Vec<&'static str>,
    #[serde(skip)]
    pub access: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TmpPlan {
    pub size_bytes: u64,
    pub exec: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FsPlan {
    pub grants: Vec<PathGrant>,
    /// Read-only inside write grants.
    pub protect: Vec<PathBuf>,
    pub tmp: Option<TmpPlan>,
    /// The mount view: what exists inside at all, and with which flags.
    pub mounts: mounts::View,
    /// Protected paths that can't be protected (they don't exist yet, or
    /// are symlinks): a gap under `compat`.
    #[serde(skip)]
    pub unprotectable: Vec<(PathBuf, &'static str)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LandlockPlan {
    /// The ABI the rules are written for.
    pub abi: u32,
    /// What the kernel reports; `None` without Landlock.
    pub kernel_abi: Option<u32>,
    pub handled_fs: Vec<&'static str>,
    pub handled_net: Vec<&'static str>,
    pub scopes: Vec<&'static str>,
    #[serde(skip)]
    pub spec: ll::Spec,
}

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

#[derive(Clone, Debug, Serialize)]
pub struct SeccompPlan {
    pub arch: Arch,
    /// Allowlisted syscalls (filter A), by name in name order; anything
    /// else fails with ENOSYS.
    pub allow: Vec<&'static str>,
    /// Denied syscalls (filter B), by name in name order.
    pub deny: Vec<&'static str>,
    /// Denied by argument (filter B).
    pub argument_rules: Vec<String>,
    /// Denylisted calls the profile allows again (`syscalls.allow`).
    pub reallowed: Vec<&'static str>,
    pub on_violation: profile::OnViolation,
    pub allowlist_instructions: usize,
    pub denylist_instructions: usize,
    #[serde(skip)]
    pub filters: seccomp::Filters,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserPlan {
    pub spec: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub name: Option<String>,
    #[serde(skip)]
    pub ids: user::Ids,
}

impl LimitsPlan {
    /// The limits a cgroup enforces.
    pub fn cgroup(&self) -> cgroup::Limits {
        cgroup::Limits {
            memory_bytes: self.memory_bytes,
            pids: self.pids,
            cpu_millicores: self.cpu_millicores,
        }
    }

    /// Whether any limit needs a cgroup.
    pub fn needs_cgroup(&self) -> bool {
        self.memory_bytes.is_some() || self.pids.is_some() || self.cpu_millicores.is_some()
    }
}

/// Limits in canonical units: milliseconds, bytes, millicores.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LimitsPlan {
    pub wall_time_ms: Option<u64>,
    pub grace_ms: u64,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub cpu_millicores: Option<u64>,
    pub open_files: Option<u64>,
    pub file_size_bytes: Option<u64>,
    pub core_dumps: bool,
}

/// Something the plan asks for that this kernel or this build can't
/// enforce: refused under `compat: strict`, dropped and reported under
/// `best-effort`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub what: String,
    pub why: String,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProfileInfo {
    pub name: String,
    pub description: String,
    pub sha256: String,
    pub sources: Vec<String>,
}

/// Everything a launch needs, decided before any fork.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub profile: ProfileInfo,
    pub workspace: PathBuf,
    /// The agent's working directory.
    pub cwd: PathBuf,
    pub command: Vec<String>,
    pub filesystem: FsPlan,
    pub landlock: LandlockPlan,
    pub network: NetPlan,
    pub seccomp: SeccompPlan,
    /// How memfds are kept from being executed.
    pub memfd: memfd::Policy,
    pub capabilities: Vec<String>,
    pub user: UserPlan,
    /// Keys of the agent's environment; values are not shown.
    pub env_keys: Vec<String>,
    pub limits: LimitsPlan,
    pub audit_log: Option<PathBuf>,
    pub compat: profile::Compat,
    pub namespaces: Vec<&'static str>,
    /// confine runs without root: the sandbox starts with a user namespace
    /// that maps only the caller's uid and gid.
    pub unprivileged: bool,
    /// What can't be enforced here. Non-empty only under best-effort.
    pub dropped: Vec<Gap>,
    pub warnings: Vec<Warning>,
    #[serde(skip)]
    pub exec: ExecPlan,
}

/// Prepared C strings for the exec, so the child allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct ExecPlan {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    pub caps: Vec<caps::Capability>,
}

/// Overrides the Landlock ABI the plan targets, downwards only, to see what a
/// profile would do on an older kernel (`CONFINE_LANDLOCK_ABI=3`).
pub const ABI_OVERRIDE_ENV: &str = "CONFINE_LANDLOCK_ABI";

/// Validates a profile as far as it can be without a workspace: the schema,
/// `extends`, and every path that doesn't depend on `{workspace}`.
///
/// # Errors
/// The first problem, located.
pub fn check(spec: &str) -> Result<Vec<Warning>, PlanError> {
    let p = profile::load(spec, &[])?;
    check_syscalls(&p)?;
    // Paths under the workspace are checked when there is one (run/explain).
    let ws = match &p.workspace {
        Some(w) => Some(check_workspace(&w.value, Some(w))?),
        None => None,
    };
    let grants = profile_grants(&p, ws.as_deref())?;
    if let Some(a) = &p.audit_log {
        if let Some(path) = a.value.expand(ws.as_deref()) {
            if let Some(why) = audit_inside_grant(&log_path(&path), &grants) {
                return Err(a.error("audit.log", why).into());
            }
        }
    }
    let mut warnings = Vec::new();
    lint(&p, &mut warnings);
    let abi = target_abi(crate::probe::landlock_abi()).unwrap_or(0);
    let resolved = grants
        .iter()
        .map(|(real, (written, _))| (written.as_path(), real.as_path()));
    warnings.extend(socket_warnings(&p, ws.as_deref(), resolved, abi));
    Ok(warnings)
}

/// The profile's own grants, validated, keyed by resolved path: (path as
/// written, grant). Without a workspace, paths under `{workspace}` are
/// skipped (`check` of a profile that doesn't name one).
fn profile_grants(
    p: &Profile,
    ws: Option<&Path>,
) -> Result<BTreeMap<PathBuf, (PathBuf, Grant)>, PlanError> {
    let mut by_path: BTreeMap<PathBuf, (PathBuf, Grant)> = BTreeMap::new();
    let exe = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    for (key, list, grant) in [
        ("filesystem.read", &p.filesystem.read, Grant::READ),
        ("filesystem.write", &p.filesystem.write, Grant::WRITE),
        ("filesystem.exec", &p.filesystem.exec, Grant::EXEC),
    ] {
        for (i, item) in list.iter().enumerate() {
            if ws.is_none() && item.value.uses_workspace() {
                continue;
            }
            let key = item
                .origin
                .as_ref()
                .map(|o| o.key.clone())
                .unwrap_or_else(|| format!("{key}[{i}]"));
            let Some((written, real)) = resolve_path(item, ws, &key)? else {
                continue;
            };
            if grant.write && real == Path::new("/") {
                return Err(item
                    .error(
                        &key,
                        "a write grant on / would let the agent write everywhere",
                    )
                    .into());
            }
            if let Some(exe) = exe.as_ref().filter(|e| grant.write && e.starts_with(&real)) {
                return Err(item
                    .error(
                        &key,
                        format!(
                            "this write grant covers the confine binary ({}); the agent could replace it",
                            exe.display()
                        ),
                    )
                    .into());
            }
            by_path.entry(real).or_insert((written, Grant::NONE)).1 |= grant;
        }
    }
    Ok(by_path)
}

/// An audit log's real path: the longest existing ancestor resolved (through
/// any symlinks), the rest appended. The log and its directories may not
/// exist yet, and a symlink on the way must not hide that it lands inside a
/// grant.
fn log_path(path: &Path) -> PathBuf {
    let path = normalize(path);
    let mut missing = Vec::new();
    let mut cur = path.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            let mut out = real;
            out.extend(missing.iter().rev());
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                cur = parent;
            }
            _ => return path,
        }
    }
}

/// Why the audit log at `real` would be reachable through one of the
/// profile's grants, if it would.
fn audit_inside_grant(real: &Path, grants: &BTreeMap<PathBuf, (PathBuf, Grant)>) -> Option<String> {
    let (path, (_, g)) = grants
        .iter()
        .rev()
        .find(|(path, _)| real.starts_with(path))?;
    Some(format!(
        "the audit log {} is inside the {} grant {}: the agent could {} it",
        real.display(),
        if g.write { "write" } else { "read" },
        path.display(),
        if g.write { "rewrite" } else { "read" }
    ))
}

fn check_workspace(w: &PathSpec, at: Option<&Sourced<PathSpec>>) -> Result<PathBuf, PlanError> {
    let err = |why: String| -> PlanError {
        match at {
            Some(s) => s.error("workspace", why).into(),
            None => refused("workspace", "-w", why),
        }
    };
    if w.uses_workspace() {
        return Err(err(
            "the workspace can't be defined in terms of itself".into()
        ));
    }
    let p = PathBuf::from(&w.raw);
    let canon = std::fs::canonicalize(&p).map_err(|e| err(format!("{}: {e}", p.display())))?;
    if !canon.is_dir() {
        return Err(err(format!("{} is not a directory", p.display())));
    }
    Ok(canon)
}

/// Resolves a profile path: `{workspace}` expanded, must exist unless
/// optional (`None` then), symlinks resolved. A symlink at or beneath the
/// workspace is refused: whoever controls the workspace (the agent, a cloned
/// repository) controls where it points.
fn resolve_path(
    item: &Sourced<PathSpec>,
    workspace: Option<&Path>,
    key: &str,
) -> Result<Option<(PathBuf, PathBuf)>, PlanError> {
    let written = item.value.expand(workspace).ok_or_else(|| {
        item.error(
            key,
            "uses {workspace} but there is no workspace (give -w DIR)",
        )
    })?;
    match std::fs::symlink_metadata(&written) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && item.value.optional => {
            return Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(item
                .error(
                    key,
                    format!(
                        "path {} does not exist (write `{}?` to make it optional)",
                        written.display(),
                        item.value.raw
                    ),
                )
                .into())
        }
        Err(e) => {
            return Err(item
                .error(key, format!("{}: {e}", written.display()))
                .into())
        }
        Ok(_) => {}
    }
    let real = std::fs::canonicalize(&written)
        .map_err(|e| item.error(key, format!("resolving {}: {e}", written.display())))?;
    // Whoever writes in the workspace controls every name at or beneath it,
    // the workspace's own included: such a path must resolve to itself. Not
    // "no symlink found on a second look": a concurrent writer can flip a
    // name between that look and the resolution above.
    if let Some(ws) = workspace {
        if written.starts_with(ws) && real != normalize(&written) {
            let why = match first_symlink_below(&written, ws) {
                Some(link) => format!(
                    "{} is a symlink inside the workspace (to {})",
                    link.display(),
                    std::fs::read_link(&link)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                ),
                None => format!(
                    "{} resolved to {}: the workspace or a name in it was a symlink, or \
                     changed while confine resolved it",
                    written.display(),
                    real.display()
                ),
            };
            return Err(item
                .error(
                    key,
                    format!("{why}; confine doesn't follow symlinks the workspace controls"),
                )
                .into());
        }
    }
    Ok(Some((written, real)))
}

/// Every symlink on the way to `path`, as (link, target as written), so the
/// sandbox's view can recreate them (`/lib64 -> usr/lib64`).
fn symlinks_on(path: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let mut cur = PathBuf::from("/");
    for c in path.components().skip(1) {
        cur.push(c);
        if let Ok(target) = std::fs::read_link(&cur) {
            out.push((cur.clone(), target));
            // What lies beyond is reached through the target: stop here.
            break;
        }
    }
    out
}

/// The first symlink at or below `base` on the way to `path`.
fn first_symlink_below(path: &Path, base: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(base).ok()?;
    let is_link = |p: &Path| {
        std::fs::symlink_metadata(p)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
    };
    if is_link(base) {
        return Some(base.to_path_buf());
    }
    let mut cur = base.to_path_buf();
    for c in rest.components() {
        cur.push(c);
        if is_link(&cur) {
            return Some(cur);
        }
    }
    None
}

/// Lexically normal absolute path (no `.`/`..`), for paths that need not exist.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Host network with TCP port rules in force: Landlock's connect or bind
/// rules, and filter B's rules for what they don't see.
fn tcp_ports_restricted(p: &Profile) -> bool {
    let n = &p.network;
    n.mode.value == NetworkMode::Host && !(n.connect_any() && n.bind_any())
}

fn lint(p: &Profile, warnings: &mut Vec<Warning>) {
    let n = &p.network;
    if n.mode.value == NetworkMode::Host && n.connect_tcp.is_empty() && n.bind_tcp.is_empty() {
        warnings.push(Warning::at(
            &n.mode,
            "network.mode",
            "host network without connect_tcp or bind_tcp: no TCP connection or bind is allowed \
             (UDP still is); list the ports, or write `connect_tcp: any` for every port",
        ));
    }
    if n.mode.value != NetworkMode::Host && !(n.connect_tcp.is_empty() && n.bind_tcp.is_empty()) {
        warnings.push(Warning::at(
            &n.mode,
            "network.mode",
            "connect_tcp/bind_tcp only matter with network.mode host: the sandbox has a network of its own",
        ));
    }
    for f in &n.socket_families {
        if !crate::families::DEFAULT.contains(&f.value.name()) {
            let key = f
                .origin
                .as_ref()
                .map_or("network.socket_families".to_string(), |o| o.key.clone());
            warnings.push(Warning::at(
                f,
                &key,
                format!(
                    "the agent may open {} sockets, kernel code that sandboxes usually keep out of reach",
                    f.value
                ),
            ));
        }
    }
    for (i, s) in p.syscalls.allow.iter().enumerate() {
        if syscalls::ALLOWABLE_DENY.contains(&s.value.0.as_str()) {
            let key = s
                .origin
                .as_ref()
                .map_or(format!("syscalls.allow[{i}]"), |o| o.key.clone());
            let what = if s.value.0 == "perf_event_open" {
                "the agent may use the kernel's performance counters (as perf_event_paranoid allows)"
            } else {
                "the agent may read and change the memory of its own processes (debuggers); the init and everything outside stay out of reach"
            };
            warnings.push(Warning::at(s, &key, format!("`{}`: {what}", s.value.0)));
        }
    }
    for (i, k) in p.env.keep.iter().enumerate() {
        let name = &k.value.0;
        if let Some(why) = crate::sandbox::env::risk(name) {
            warnings.push(Warning::at(
                k,
                &format!("env.keep[{i}]"),
                format!("keeping {name} lets the caller's environment change what the agent's programs load or run: {why}"),
            ));
        }
    }
    for (i, c) in p.capabilities.iter().enumerate() {
        warnings.push(Warning::at(
            c,
            &format!("capabilities[{i}]"),
            format!("the agent keeps {}", c.value),
        ));
    }
}

/// Warnings for the grants that put host unix sockets within the agent's
/// reach ([`crate::host_sockets`]); `grants` are (as written, resolved).
fn socket_warnings<'a>(
    p: &Profile,
    ws: Option<&Path>,
    grants: impl IntoIterator<Item = (&'a Path, &'a Path)>,
    abi: u32,
) -> Vec<Warning> {
    let restricted = ll::restricts_unix_connect(abi);
    let private_tmp = p.filesystem.tmp.is_some();
    let mut out = Vec::new();
    for (written, real) in grants {
        let Some(why) = crate::host_sockets::exposure(real, restricted, private_tmp) else {
            continue;
        };
        let via = if written == real {
            real.display().to_string()
        } else {
            format!("{} -> {}", written.display(), real.display())
        };
        let message = if std::fs::symlink_metadata(real).is_ok_and(|m| m.is_dir()) {
            format!("{via} {why}: {}", crate::host_sockets::advice(abi))
        } else {
            format!("{via} {why}")
        };
        out.push(match grant_origin(p, ws, written) {
            Some((item, key)) => Warning::at(item, &key, message),
            None => Warning {
                key: "filesystem".into(),
                at: written.display().to_string(),
                message,
            },
        });
    }
    out
}

/// The profile entry that grants `written` (a path as written, with
/// `{workspace}` expanded), and its key.
fn grant_origin<'a>(
    p: &'a Profile,
    ws: Option<&Path>,
    written: &Path,
) -> Option<(&'a Sourced<PathSpec>, String)> {
    let lists = [
        ("filesystem.read", &p.filesystem.read),
        ("filesystem.write", &p.filesystem.write),
        ("filesystem.exec", &p.filesystem.exec),
    ];
    for (key, list) in lists {
        for (i, item) in list.iter().enumerate() {
            if item.value.expand(ws).as_deref() == Some(written) {
                let key = item
                    .origin
                    .as_ref()
                    .map(|o| o.key.clone())
                    .unwrap_or_else(|| format!("{key}[{i}]"));
                return Some((item, key));
            }
        }
    }
    None
}

fn check_syscalls(p: &Profile) -> Result<(), PlanError> {
    for (i, s) in p.syscalls.allow.iter().enumerate() {
        if s.value.0 == "clone3" {
            return Err(s
                .error(
                    &format!("syscalls.allow[{i}]"),
                    "`clone3` always fails with ENOSYS: its flags live in memory seccomp can't read, so programs must fall back to clone, whose flags are checked",
                )
                .into());
        }
        let name = s.value.0.as_str();
        if syscalls::BASELINE_DENY.contains(&name) && !syscalls::ALLOWABLE_DENY.contains(&name) {
            return Err(s
                .error(
                    &format!("syscalls.allow[{i}]"),
                    format!(
                        "`{name}` is always denied: {}; of the denylist only {} can be allowed (see docs/PROFILE.md, Syscalls)",
                        syscalls::deny_reason(name),
                        syscalls::ALLOWABLE_DENY.join(", ")
                    ),
                )
                .into());
        }
    }
    Ok(())
}

/// The paths confine itself grants, so ordinary programs run. Device
/// ioctls are granted only where a terminal needs them.
fn implicit_grants(tmp: bool) -> Vec<(&'static str, Grant)> {
    let rw = Grant::WRITE;
    let tty = Grant::WRITE | Grant::IOCTL_DEV;
    let mut v = vec![
        ("/proc", Grant::READ),
        ("/dev/null", rw),
        ("/dev/zero", rw),
        ("/dev/full", rw),
        ("/dev/random", rw),
        ("/dev/urandom", rw),
        ("/dev/tty", tty),
        // /dev/ptmx is a symlink to pts/ptmx in the sandbox's /dev.
        ("/dev/pts", tty),
        ("/dev/shm", rw),
    ];
    if tmp {
        v.push(("/tmp", rw));
    }
    v
}

/// A set of syscall numbers, as a table indexed by number: sorted and
/// without duplicates by construction, and a membership test per name when
/// listing them in name order. The numbers come from our own tables (the
/// highest is in the 400s), so the table stays small.
#[derive(Default)]
struct Numbers(Vec<bool>);

impl Numbers {
    fn insert(&mut self, nr: u32) {
        let i = nr as usize;
        if i >= self.0.len() {
            self.0.resize(i + 1, false);
        }
        self.0[i] = true;
    }

    fn remove(&mut self, nr: u32) {
        if let Some(member) = self.0.get_mut(nr as usize) {
            *member = false;
        }
    }

    fn contains(&self, nr: u32) -> bool {
        self.0.get(nr as usize).copied().unwrap_or(false)
    }

    /// Ascending.
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.0.len() as u32).filter(|&nr| self.0[nr as usize])
    }

    /// The names on `arch`, in name order, as `explain` lists them.
    fn names(&self, arch: Arch) -> Vec<&'static str> {
        syscalls::table_by_name(arch)
            .iter()
            .filter(|&&(_, nr)| self.contains(nr))
            .map(|&(name, _)| name)
            .collect()
    }
}

impl Plan {
    /// Builds the plan for `req` on this kernel.
    ///
    /// # Errors
    /// A located profile error, or a refusal naming what, where and why.
    pub fn build(req: &Request) -> Result<Plan, PlanError> {
        let p = profile::load(&req.profile, &req.overrides)?;
        let mut warnings = Vec::new();
        lint(&p, &mut warnings);
        check_syscalls(&p)?;

        // The workspace: -w, else the profile's, else the current directory.
        let workspace = match (&req.workspace, &p.workspace) {
            (Some(w), _) => {
                let spec = PathSpec {
                    raw: std::path::absolute(w)
                        .unwrap_or_else(|_| w.clone())
                        .display()
                        .to_string(),
                    optional: false,
                };
                check_workspace(&spec, None)?
            }
            (None, Some(w)) => check_workspace(&w.value, Some(w))?,
            (None, None) => std::env::current_dir()
                .map_err(|e| refused("workspace", "current directory", e.to_string()))?,
        };

        let kernel_abi = crate::probe::landlock_abi();
        let abi = target_abi(kernel_abi)?;
        let fs = Self::filesystem(&p, &workspace, abi)?;
        let resolved = fs
            .grants
            .iter()
            .filter(|g| !g.implicit)
            .map(|g| (g.written.as_path(), g.path.as_path()));
        warnings.extend(socket_warnings(&p, Some(&workspace), resolved, abi));
        let audit_log = Self::audit_log(req, &p, &workspace)?;
        // From here on a refusal is also written to the audit log.
        let audited = |refusal: PlanError, not_enforceable: &[String]| PlanError::Audited {
            audit: audit_log.clone().map(|log| RefusedLaunch {
                log,
                fields: serde_json::json!({
                    "why": refusal.to_string(),
                    "not_enforceable": not_enforceable,
                    "profile": {"name": p.name, "sha256": p.sha256()},
                    "argv": req.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
                    "workspace": workspace,
                }),
            }),
            refusal: Box::new(refusal),
        };
        let landlock = Self::landlock(&p, &fs, abi, kernel_abi);
        let network = Self::network(&p, &landlock);

        let mut gaps = Vec::new();
        Self::landlock_gaps(&p, abi, kernel_abi, &mut gaps);
        Self::build_gaps(&p, &fs, &mut gaps);

        // SAFETY: geteuid has no arguments and can't fail.
        let unprivileged = unsafe { libc::geteuid() } != 0;
        let memfd = Self::memfd(&fs, unprivileged);
        let seccomp = Self::seccomp(&p, memfd).map_err(|e| audited(e, &[]))?;
        let user = Self::user(&p, &workspace, unprivileged).map_err(|e| audited(e, &[]))?;
        let mut fs = fs;
        // The sandbox's own device nodes need real root (mknod); the host's
        // bound ones are safe only from an agent that isn't their owner.
        fs.mounts.devices = if unprivileged {
            mounts::Devices::Bind
        } else if user.uid == 0 {
            mounts::Devices::Own
        } else {
            mounts::Devices::OwnOrBind
        };
        let (env_keys, envp) = Self::env(&p, &workspace).map_err(|e| audited(e, &[]))?;
        let mut limits = Self::limits(&p);
        // Under best-effort, what no cgroup controller can enforce is
        // dropped (and reported); under strict we never get here with any.
        for g in &gaps {
            match g.what.as_str() {
                "limits.memory" => limits.memory_bytes = None,
                "limits.pids" => limits.pids = None,
                "limits.cpu" => limits.cpu_millicores = None,
                _ => {}
            }
        }
        let caps: Vec<caps::Capability> = p.capabilities.iter().map(|c| c.value.0).collect();

        let cwd = std::env::current_dir()
            .ok()
            .and_then(|d| std::fs::canonicalize(d).ok())
            .filter(|d| {
                fs.grants
                    .iter()
                    .any(|g| !g.implicit && d.starts_with(&g.path))
            })
            .unwrap_or_else(|| workspace.clone());

        let mut namespaces = if unprivileged { vec!["user"] } else { vec![] };
        namespaces.extend(["mount", "pid", "ipc", "uts", "cgroup"]);
        if p.network.mode.value != NetworkMode::Host {
            namespaces.push("net");
        }

        if !gaps.is_empty() && p.compat == profile::Compat::Strict {
            let list: Vec<String> = gaps.iter().map(|g| g.to_string()).collect();
            let refusal = PlanError::Refused {
                what: "plan".into(),
                at: p
                    .sources
                    .iter()
                    .rev()
                    .find(|s| !s.name.starts_with("--set"))
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                why: format!("can't be fully enforced here: {}", list.join("; ")),
                hint: Some(
                    "fix the cause, or write `compat: best-effort` to run with these dropped"
                        .into(),
                ),
            };
            return Err(audited(refusal, &list));
        }

        let argv: Vec<CString> = req
            .command
            .iter()
            .map(|a| CString::new(a.clone().into_vec()))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                let e = refused("command", "argv", "an argument contains a NUL byte");
                audited(e, &[])
            })?;
        let exec = ExecPlan {
            argv,
            envp,
            cwd: CString::new(cwd.as_os_str().as_bytes()).map_err(|_| {
                audited(
                    refused("cwd", "working directory", "contains a NUL byte"),
                    &[],
                )
            })?,
            caps,
        };

        Ok(Plan {
            profile: ProfileInfo {
                name: p.name.clone(),
                description: p.description.clone(),
                sha256: p.sha256(),
                sources: p.sources.iter().map(|s| s.name.clone()).collect(),
            },
            workspace,
            cwd,
            command: req
                .command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            filesystem: fs,
            landlock,
            network,
            seccomp,
            memfd,
            capabilities: p.capabilities.iter().map(|c| c.value.to_string()).collect(),
            user,
            env_keys,
            limits,
            audit_log,
            compat: p.compat,
            namespaces,
            unprivileged,
            dropped: gaps,
            warnings,
            exec,
        })
    }

    fn filesystem(p: &Profile, ws: &Path, abi: u32) -> Result<FsPlan, PlanError> {
        let mut by_path: BTreeMap<PathBuf, (PathBuf, Grant, bool)> = profile_grants(p, Some(ws))?
            .into_iter()
            .map(|(real, (written, g))| (real, (written, g, false)))
            .collect();
        let tmp = p.filesystem.tmp.as_ref().map(|t| TmpPlan {
            size_bytes: t.size.map(|s| s.0).unwrap_or(profile::DEFAULT_TMP_SIZE),
            exec: t.exec.unwrap_or(false),
        });
        // The mount view: only what is granted exists inside.
        let mut view = mounts::View {
            binds: {
                // Sorted, so a parent's bind is decided before anything
                // beneath it. The bind that shows a path is its nearest
                // ancestor's: looked up per ancestor, not scanned for, so
                // thousands of grants plan in linear time.
                let mut flags: HashMap<&Path, (bool, bool)> = HashMap::new();
                let mut binds = Vec::new();
                for (path, (_, g, _)) in &by_path {
                    // A recursive bind of a parent with the same flags
                    // already shows this path as it should be.
                    let covered = path
                        .ancestors()
                        .skip(1)
                        .find_map(|a| flags.get(a))
                        .is_some_and(|&(write, exec)| write == g.write && exec == g.exec);
                    if !covered {
                        flags.insert(path, (g.write, g.exec));
                        binds.push(mounts::Bind {
                            path: path.clone(),
                            write: g.write,
                            exec: g.exec,
                        });
                    }
                }
                binds
            },
            tmp: tmp.as_ref().map(|t| (t.size_bytes, t.exec)),
            shm_size: tmp.as_ref().map_or(64 << 20, |t| t.size_bytes),
            ..Default::default()
        };
        for (written, _, _) in by_path.values() {
            for link in symlinks_on(written) {
                if !view.links.contains(&link) {
                    view.links.push(link);
                }
            }
        }
        if p.network.mode.value == NetworkMode::Host {
            Self::resolver(&mut by_path, &mut view);
        }
        // These exist in every sandbox's own /proc, /dev and /tmp.
        for (path, grant) in implicit_grants(tmp.is_some()) {
            let path = PathBuf::from(path);
            let e = by_path
                .entry(path.clone())
                .or_insert((path, Grant::NONE, true));
            e.1 |= grant;
        }
        let grants = by_path
            .into_iter()
            .map(|(path, (written, grant, implicit))| {
                let mut access = ll::access_for(abi, grant);
                if implicit && path.starts_with("/dev") && path != Path::new("/dev/shm") {
                    // Devices and the private devpts: open, read, write and
                    // (where granted) ioctl; nothing is created or removed.
                    access &= ll::READ_FILE
                        | ll::READ_DIR
                        | ll::WRITE_FILE
                        | ll::TRUNCATE
                        | ll::IOCTL_DEV;
                }
                let kind = if implicit {
                    None
                } else {
                    std::fs::metadata(&path).ok().map(|m| m.file_type())
                };
                let is_dir = if implicit {
                    matches!(
                        path.to_str(),
                        Some("/proc" | "/tmp" | "/dev/pts" | "/dev/shm")
                    )
                } else {
                    kind.is_some_and(|t| t.is_dir())
                };
                let access = if is_dir {
                    access
                } else if kind.is_some_and(|t| std::os::unix::fs::FileTypeExt::is_socket(&t)) {
                    // The profile names this socket: the agent may connect
                    // to it, where Landlock controls that (ABI 9).
                    ll::file_access(access) | ll::socket_access(abi)
                } else {
                    ll::file_access(access)
                };
                PathGrant {
                    written,
                    path,
                    read: grant.read || grant.write || grant.exec,
                    write: grant.write,
                    exec: grant.exec,
                    implicit,
                    rights: ll::fs_access_names(access),
                    access,
                }
            })
            .collect();
        let mut protect = Vec::new();
        for (i, item) in p.filesystem.protect.iter().enumerate() {
            let key = item
                .origin
                .as_ref()
                .map(|o| o.key.clone())
                .unwrap_or_else(|| format!("filesystem.protect[{i}]"));
            let path = item
                .value
                .expand(Some(ws))
                .ok_or_else(|| item.error(&key, "uses {workspace} but there is no workspace"))?;
            // A trailing `/` says the path is a directory: what holds its
            // place while it doesn't exist yet is then an empty directory,
            // else an empty file (a placeholder must not have a type that
            // breaks the tool that later creates the real path).
            protect.push((normalize(&path), item.value.raw.ends_with('/')));
        }
        let mut unprotectable = Vec::new();
        let mut seen = ProtectSeen {
            writes: view
                .binds
                .iter()
                .filter(|b| b.write)
                .map(|b| b.path.clone())
                .collect(),
            ..Default::default()
        };
        for (p, dir) in &protect {
            if let Err(why) = Self::plan_protect(p, *dir, ws, &mut view, &mut seen) {
                unprotectable.push((p.clone(), why));
            }
        }
        let protect = protect.into_iter().map(|(p, _)| p).collect();
        Ok(FsPlan {
            grants,
            protect,
            tmp,
            mounts: view,
            unprotectable,
        })
    }

    /// Decides how `p` stays read-only inside its write grant (see
    /// [`mounts::View`]): bound read-only if it exists; if it doesn't, a
    /// placeholder (an empty file, or a directory when `dir`) holds its place,
    /// created on the host before the launch, only inside the workspace `ws`;
    /// an empty read-only file is mounted over it if it is a symlink (whose
    /// target, when inside a write grant, is protected too). The directories
    /// between the grant and `p` are pinned as mount points.
    fn plan_protect(
        p: &Path,
        dir: bool,
        ws: &Path,
        view: &mut mounts::View,
        seen: &mut ProtectSeen,
    ) -> Result<(), &'static str> {
        // The innermost write grant strictly above `p`: looked up per
        // ancestor, not scanned for among all grants.
        let Some(w) = p
            .ancestors()
            .skip(1)
            .find(|a| seen.writes.contains(*a))
            .map(Path::to_path_buf)
        else {
            // Outside every write grant it is read-only, or absent, anyway.
            return Ok(());
        };
        let mut between: Vec<PathBuf> = p
            .ancestors()
            .skip(1)
            .take_while(|a| *a != w)
            .map(Path::to_path_buf)
            .collect();
        between.reverse();
        // Every path the protection rests on is listed for the launch to
        // make if it is missing then (a sandbox that ends may remove a
        // placeholder another one saw); what exists now only tells its type.
        let mut create = Vec::new();
        let mut missing = false;
        for a in &between {
            match std::fs::symlink_metadata(a) {
                Ok(m) if m.file_type().is_symlink() => return Err("is reached through a symlink"),
                Ok(m) if !m.is_dir() => return Err("is beneath something that isn't a directory"),
                Ok(_) => {}
                Err(_) => missing = true,
            }
            create.push(mounts::Placeholder {
                path: a.clone(),
                dir: true,
            });
        }
        let target = match std::fs::symlink_metadata(p) {
            Err(_) => {
                missing = true;
                create.push(mounts::Placeholder {
                    path: p.to_path_buf(),
                    dir,
                });
                None
            }
            Ok(m) if m.file_type().is_symlink() => {
                if seen.masks.insert(p.to_path_buf()) {
                    view.masks.push(p.to_path_buf());
                }
                Some(std::fs::canonicalize(p).ok())
            }
            Ok(m) => {
                create.push(mounts::Placeholder {
                    path: p.to_path_buf(),
                    dir: m.is_dir(),
                });
                None
            }
        };
        // confine creates nothing outside the workspace (DESIGN.md §4); there
        // the sandbox only relies on what is (another sandbox's placeholder,
        // maybe).
        if !p.starts_with(ws) {
            if missing {
                return Err(
                    "doesn't exist, and confine creates placeholders only inside the workspace",
                );
            }
            for c in create.drain(..) {
                if seen.rely.insert(c.path.clone()) {
                    view.rely.push(c.path);
                }
            }
        }
        for c in create {
            if seen.create.insert(c.path.clone()) {
                view.create.push(c);
            }
        }
        for pin in between {
            if seen.pins.insert(pin.clone()) {
                view.pins.push(pin);
            }
        }
        match target {
            None => {
                if seen.protect.insert(p.to_path_buf()) {
                    view.protect.push(p.to_path_buf());
                }
            }
            // What the link points to, if it is inside a write grant, must not
            // become writable through its own path either.
            Some(Some(t)) if t != p => {
                if t.ancestors().any(|a| seen.writes.contains(a)) {
                    Self::plan_protect(&t, dir, ws, view, seen)?;
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// In host network mode, name resolution must keep working: when
    /// /etc/resolv.conf points elsewhere (systemd-resolved's stub under
    /// /run), that file is granted read-only too, and nothing else of /run.
    fn resolver(by_path: &mut BTreeMap<PathBuf, (PathBuf, Grant, bool)>, view: &mut mounts::View) {
        let conf = Path::new("/etc/resolv.conf");
        let Ok(real) = std::fs::canonicalize(conf) else {
            return;
        };
        if real == conf || by_path.keys().any(|k| real.starts_with(k)) {
            return;
        }
        for link in symlinks_on(conf) {
            if !view.links.contains(&link) {
                view.links.push(link);
            }
        }
        view.binds.push(mounts::Bind {
            path: real.clone(),
            write: false,
            exec: false,
        });
        by_path.insert(real, (conf.to_path_buf(), Grant::READ, true));
    }

    fn audit_log(req: &Request, p: &Profile, ws: &Path) -> Result<Option<PathBuf>, PlanError> {
        let (path, origin): (PathBuf, Option<&Sourced<PathSpec>>) = if let Some(a) = &req.audit_log
        {
            (std::path::absolute(a).unwrap_or_else(|_| a.clone()), None)
        } else if let Some(a) = &p.audit_log {
            let path = a
                .value
                .expand(Some(ws))
                .ok_or_else(|| a.error("audit.log", "needs a workspace"))?;
            (path, Some(a))
        } else if let Some(env) = std::env::var_os("CONFINE_AUDIT_LOG").filter(|v| !v.is_empty()) {
            (PathBuf::from(env), None)
        } else {
            return Ok(None);
        };
        if !path.is_absolute() {
            return Err(refused(
                "audit log",
                path.display().to_string(),
                "must be an absolute path",
            ));
        }
        let real = log_path(&path);
        let grants = profile_grants(p, Some(ws))?;
        if let Some(why) = audit_inside_grant(&real, &grants) {
            return Err(match origin {
                Some(o) => o.error("audit.log", why).into(),
                None => refused("audit log", "--audit-log", why),
            });
        }
        Ok(Some(real))
    }

    fn landlock(p: &Profile, fs: &FsPlan, abi: u32, kernel_abi: Option<u32>) -> LandlockPlan {
        let mut spec = ll::Spec::deny_all(abi);
        spec.paths = fs
            .grants
            .iter()
            .map(|g| ll::PathRule {
                path: g.path.clone(),
                access: g.access,
            })
            .collect();
        let n = &p.network;
        let ports = !(n.connect_tcp.is_empty() && n.bind_tcp.is_empty());
        if n.mode.value == NetworkMode::Host || ports {
            // `any` leaves that direction unhandled: Landlock then allows it.
            let mut handled = ll::handled_net(abi);
            if n.connect_any() {
                handled &= !ll::NET_CONNECT_TCP;
            }
            if n.bind_any() {
                handled &= !ll::NET_BIND_TCP;
            }
            if handled != 0 {
                let listed = |rules: &[PortRule], right: u64| {
                    if handled & right == 0 {
                        Vec::new()
                    } else {
                        profile::ports(rules)
                    }
                };
                spec.net = Some(ll::NetRules {
                    handled,
                    bind_tcp: listed(&n.bind_tcp, ll::NET_BIND_TCP),
                    connect_tcp: listed(&n.connect_tcp, ll::NET_CONNECT_TCP),
                });
            }
        }
        spec.scopes = ll::supported_scopes(abi);
        LandlockPlan {
            abi,
            kernel_abi,
            handled_fs: ll::fs_access_names(spec.handled_fs),
            handled_net: ll::net_access_names(spec.net.as_ref().map(|n| n.handled).unwrap_or(0)),
            scopes: ll::scope_names(spec.scopes),
            spec,
        }
    }

    /// The network part of the plan, with what it does and doesn't stop
    /// spelled out (`explain`).
    fn network(p: &Profile, ll: &LandlockPlan) -> NetPlan {
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
                    format!(
                        "TCP {verb}: any port (port rules need Landlock ABI 4; not enforced here)"
                    )
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
            not_restricted.push(
                "UDP and ICMP, to any address and port: Landlock has no rules for them".into(),
            );
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

    fn landlock_gaps(p: &Profile, abi: u32, kernel_abi: Option<u32>, gaps: &mut Vec<Gap>) {
        let ports = tcp_ports_restricted(p);
        for f in ll::missing_features(abi) {
            let relevant = match f {
                // Without REFER, cross-directory renames are denied: safe.
                ll::Feature::Refer => false,
                // The mount view is read-only outside the write grants, so
                // truncate(2) fails there with EROFS whatever Landlock does.
                ll::Feature::Truncate => false,
                // The view's /dev holds only null, zero, full, random,
                // urandom, tty and a private devpts, and seccomp refuses
                // TIOCSTI/TIOCLINUX: what IOCTL_DEV would add is covered.
                ll::Feature::IoctlDev => false,
                ll::Feature::Tcp => ports,
                // Abstract sockets are per network namespace and signals
                // can't leave a PID namespace; only host mode needs scoping.
                ll::Feature::Scopes => p.network.mode.value == NetworkMode::Host,
                _ => true,
            };
            if relevant {
                let why = match kernel_abi {
                    None => format!("{} (this kernel has no Landlock)", f.consequence()),
                    Some(k) if k < f.min_abi() => {
                        format!("{} (kernel's Landlock ABI is {k})", f.consequence())
                    }
                    Some(_) => format!(
                        "{} ({ABI_OVERRIDE_ENV} limits the ABI to {abi})",
                        f.consequence()
                    ),
                };
                gaps.push(Gap {
                    what: f.describe().to_string(),
                    why,
                });
            }
        }
    }

    /// What this build of confine can't enforce yet, whatever the kernel.
    fn build_gaps(p: &Profile, fs: &FsPlan, gaps: &mut Vec<Gap>) {
        for (path, why) in &fs.unprotectable {
            gaps.push(Gap {
                what: format!("filesystem.protect {}", path.display()),
                why: why.to_string(),
            });
        }
        let l = Self::limits(p);
        // Finding the cgroup hierarchies reads /proc and /sys: only when a
        // limit needs them.
        let missing = if l.needs_cgroup() {
            cgroup::capability(&l.cgroup())
        } else {
            Vec::new()
        };
        for u in missing {
            gaps.push(Gap {
                what: u.key.to_string(),
                why: u.why,
            });
        }
    }

    /// How this sandbox keeps memfds from running (see [`memfd`]): with the
    /// PID namespace's sysctl where confine can set it, else without
    /// memfds; not at all when everything may be executed anyway.
    fn memfd(fs: &FsPlan, unprivileged: bool) -> memfd::Policy {
        if fs
            .grants
            .iter()
            .any(|g| g.exec && !g.implicit && g.path == Path::new("/"))
        {
            memfd::Policy::Unrestricted
        } else if !unprivileged && memfd::sysctl_writable() {
            memfd::Policy::NoExec
        } else {
            memfd::Policy::Unavailable
        }
    }

    fn seccomp(p: &Profile, memfd: memfd::Policy) -> Result<SeccompPlan, PlanError> {
        let arch = Arch::native();
        // Numbers, not names: a name missing on this architecture has none
        // and is skipped, and the baseline comes resolved at compile time.
        let number = |s: &Sourced<profile::SyscallName>| syscalls::number(arch, &s.value.0);
        let mut allow = Numbers::default();
        let mut deny = Numbers::default();
        syscalls::baseline_allow(arch).for_each(|nr| allow.insert(nr));
        p.syscalls
            .allow
            .iter()
            .filter_map(number)
            .for_each(|nr| allow.insert(nr));
        for nr in p.syscalls.deny.iter().filter_map(number) {
            allow.remove(nr);
            deny.insert(nr);
        }
        // The denylisted calls the profile may, and does, allow again.
        let reallowed: Vec<&'static str> = syscalls::ALLOWABLE_DENY
            .iter()
            .copied()
            .filter(|name| p.syscalls.allow.iter().any(|s| s.value.0 == *name))
            .filter(|name| !p.syscalls.deny.iter().any(|s| s.value.0 == *name))
            .collect();
        let reallowed_nrs: Vec<u32> = reallowed
            .iter()
            .filter_map(|name| syscalls::number(arch, name))
            .collect();
        syscalls::baseline_deny(arch)
            .filter(|nr| !reallowed_nrs.contains(nr))
            .for_each(|nr| deny.insert(nr));
        // `log` means "allow, and have the kernel log it": the denylist's
        // SECCOMP_RET_LOG only lets a call through if the allowlist does too.
        if p.syscalls.on_violation == profile::OnViolation::Log {
            deny.iter().for_each(|nr| allow.insert(nr));
        }
        let on_violation = match p.syscalls.on_violation {
            profile::OnViolation::Errno => seccomp::OnViolation::Errno,
            profile::OnViolation::Kill => seccomp::OnViolation::Kill,
            profile::OnViolation::Log => seccomp::OnViolation::Log,
        };
        let allow_nrs: Vec<u32> = allow.iter().collect();
        let deny_nrs: Vec<u32> = deny.iter().collect();
        let n = &p.network;
        let rules = seccomp::Rules {
            socket_families: n.socket_families.iter().map(|f| f.value.0).collect(),
            tcp_port_rules: tcp_ports_restricted(p),
            file_size_limit: p.limits.file_size.is_some(),
            memfd: match memfd {
                memfd::Policy::NoExec => seccomp::Memfd::NoExecFlag,
                memfd::Policy::Unavailable => seccomp::Memfd::Unavailable,
                memfd::Policy::Unrestricted => seccomp::Memfd::Unrestricted,
            },
        };
        let filters = seccomp::compile_with(arch, &allow_nrs, &deny_nrs, on_violation, &rules)
            .map_err(|e| refused("seccomp", "syscalls", e.to_string()))?;
        let mut argument_rules: Vec<String> = vec![
            "ioctl(TIOCSTI, TIOCLINUX), low 32 bits of the request".into(),
            "clone with any CLONE_NEW* flag".into(),
            format!(
                "socket and socketpair of any family but {}",
                n.socket_families
                    .iter()
                    .map(|f| f.value.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "personality other than 0 and 0xffffffff".into(),
        ];
        if rules.tcp_port_rules {
            argument_rules.push(
                "sendto, sendmsg, sendmmsg with MSG_FASTOPEN -> EOPNOTSUPP (TCP Fast Open connects around the port rules)".into(),
            );
            argument_rules.push(
                "socket(AF_INET/AF_INET6) of a stream protocol other than TCP (MPTCP, SCTP, SMC) or a type other than stream, datagram, raw -> EPROTONOSUPPORT".into(),
            );
        }
        if rules.file_size_limit {
            argument_rules.push(
                "fallocate with FALLOC_FL_KEEP_SIZE (other than punching a hole) or INSERT_RANGE -> EOPNOTSUPP (limits.file_size doesn't count them)".into(),
            );
        }
        match rules.memfd {
            seccomp::Memfd::NoExecFlag => {
                argument_rules.push("memfd_create with MFD_EXEC -> EACCES".into())
            }
            seccomp::Memfd::Unavailable => {
                argument_rules.push("memfd_create -> ENOSYS (memfds could be executed)".into())
            }
            seccomp::Memfd::Unrestricted => {}
        }
        Ok(SeccompPlan {
            arch,
            allowlist_instructions: filters.allowlist.len(),
            denylist_instructions: filters.denylist.len(),
            allow: allow.names(arch),
            deny: deny.names(arch),
            argument_rules,
            reallowed,
            on_violation: p.syscalls.on_violation,
            filters,
        })
    }

    fn user(p: &Profile, ws: &Path, unprivileged: bool) -> Result<UserPlan, PlanError> {
        let spec = &p.user.value;
        // Only `user: root` may yield uid 0; nothing else is taken to mean it.
        let mut ids = user::resolve(spec, ws, false).map_err(|e| {
            let why = match e.hint() {
                Some(h) => format!("{e}; hint: {h}"),
                None => e.to_string(),
            };
            p.user.error("user", why)
        })?;
        if unprivileged {
            // The user namespace maps only the caller's own uid and gid.
            // SAFETY: geteuid/getegid have no arguments and can't fail.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            if ids.uid != uid {
                return Err(p
                    .user
                    .error(
                        "user",
                        format!(
                            "resolves to uid {}, but without root confine can only run the agent as you (uid {uid}); run confine as root, or use a workspace you own",
                            ids.uid
                        ),
                    )
                    .into());
            }
            ids.gid = gid;
            // setgroups is denied in an unprivileged user namespace: the
            // caller's supplementary groups stay (unmapped, as nobody).
            ids.groups.clear();
            ids.keep_groups = true;
        }
        Ok(UserPlan {
            spec: spec.to_string(),
            uid: ids.uid,
            gid: ids.gid,
            groups: ids.groups.clone(),
            name: ids.name.clone(),
            ids,
        })
    }

    fn env(p: &Profile, ws: &Path) -> Result<(Vec<String>, Vec<CString>), PlanError> {
        let keep: Vec<String> = p.env.keep.iter().map(|k| k.value.0.clone()).collect();
        let ws_str = ws.display().to_string();
        let set: Vec<(String, String)> = p
            .env
            .set
            .iter()
            .map(|(k, v)| (k.clone(), v.replace(profile::WORKSPACE_VAR, &ws_str)))
            .collect();
        let envp = crate::sandbox::env::build(&keep, &set, std::env::vars_os())
            .map_err(|e| refused("env", "env.set", e.to_string()))?;
        let keys = envp
            .iter()
            .map(|kv| {
                let b = kv.as_bytes();
                let k = b.split(|c| *c == b'=').next().unwrap_or(b);
                String::from_utf8_lossy(k).into_owned()
            })
            .collect();
        Ok((keys, envp))
    }

    fn limits(p: &Profile) -> LimitsPlan {
        let l = &p.limits;
        LimitsPlan {
            wall_time_ms: l.wall_time.map(|d| d.0),
            grace_ms: l.grace.map(|d| d.0).unwrap_or(10_000),
            memory_bytes: l.memory.map(|s| s.0),
            pids: l.pids.map(|c| c.0),
            cpu_millicores: l.cpu.map(|c| (c.0 * 1000.0).round() as u64),
            open_files: l.open_files.map(|c| c.0),
            file_size_bytes: l.file_size.map(|s| s.0),
            core_dumps: l.core_dumps.unwrap_or(false),
        }
    }

    /// The plan for a person to read.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = self.write_text(&mut o);
        o
    }

    fn write_text(&self, o: &mut String) -> fmt::Result {
        writeln!(
            o,
            "profile     {} ({})",
            self.profile.name,
            self.profile.sources.join(" <- ")
        )?;
        if !self.profile.description.is_empty() {
            writeln!(o, "            {}", self.profile.description)?;
        }
        writeln!(o, "sha256      {}", self.profile.sha256)?;
        writeln!(o, "workspace   {}", self.workspace.display())?;
        if !self.command.is_empty() {
            writeln!(o, "command     {}", self.command.join(" "))?;
        }
        writeln!(o, "cwd         {}", self.cwd.display())?;
        let u = &self.user;
        writeln!(
            o,
            "user        uid {} gid {}{}{} ({})",
            u.uid,
            u.gid,
            u.name
                .as_ref()
                .map(|n| format!(" [{n}]"))
                .unwrap_or_default(),
            if u.groups.is_empty() {
                String::new()
            } else {
                format!(" groups {:?}", u.groups)
            },
            u.spec
        )?;
        let ll = &self.landlock;
        writeln!(
            o,
            "filesystem  Landlock ABI {} (kernel: {}); everything not listed is inaccessible",
            ll.abi,
            ll.kernel_abi
                .map(|a| a.to_string())
                .unwrap_or_else(|| "none".into())
        )?;
        for g in &self.filesystem.grants {
            let kind = if g.write {
                "write"
            } else if g.exec {
                "exec "
            } else {
                "read "
            };
            let via = if g.written != g.path {
                format!("{} -> {}", g.written.display(), g.path.display())
            } else {
                g.path.display().to_string()
            };
            writeln!(
                o,
                "  {kind} {via}{}",
                if g.implicit { "  (implicit)" } else { "" }
            )?;
            writeln!(o, "          {}", g.rights.join(" "))?;
        }
        if crate::sandbox::landlock::restricts_unix_connect(ll.abi) {
            writeln!(
                o,
                "  sockets the agent connects only to unix sockets its sandbox created and those a grant names (RESOLVE_UNIX)"
            )?;
        } else {
            writeln!(
                o,
                "  sockets unix sockets inside these grants can be connected to: Landlock ABI {} doesn't restrict connect(2) (ABI 9 does); sockets elsewhere aren't in the view",
                ll.abi
            )?;
        }
        match &self.filesystem.tmp {
            Some(t) => writeln!(
                o,
                "  tmp   private tmpfs on /tmp, {}, {}",
                profile::Size(t.size_bytes),
                if t.exec { "exec" } else { "noexec" }
            )?,
            None => writeln!(o, "  tmp   none")?,
        }
        for p in &self.filesystem.protect {
            writeln!(o, "  protect {} (read-only)", p.display())?;
        }
        let n = &self.network;
        let mode = match n.mode {
            NetworkMode::None => "none: own network namespace, no interface up",
            NetworkMode::Loopback => "loopback: own network namespace, lo up",
            NetworkMode::Host => "host: the host's network",
        };
        writeln!(o, "network     {mode}")?;
        for e in &n.enforced {
            writeln!(o, "            {e}")?;
        }
        for e in &n.not_restricted {
            writeln!(o, "            NOT restricted: {e}")?;
        }
        writeln!(
            o,
            "            socket families: {} (others EPERM)",
            n.socket_families.join(" ")
        )?;
        let memfd = match self.memfd {
            memfd::Policy::NoExec => {
                "not executable: vm.memfd_noexec=1 in the sandbox's PID namespace, MFD_EXEC refused"
            }
            memfd::Policy::Unavailable => {
                "memfd_create fails with ENOSYS (vm.memfd_noexec can't be set here: Linux < 6.3, not root, or /proc/sys read-only)"
            }
            memfd::Policy::Unrestricted => "unrestricted (exec is granted on / anyway)",
        };
        writeln!(o, "memfd       {memfd}")?;
        let s = &self.seccomp;
        writeln!(
            o,
            "seccomp     {:?}: {} syscalls allowed (others ENOSYS, {} instructions); {} denied + argument rules -> {:?} ({} instructions)",
            s.arch,
            s.allow.len(),
            s.allowlist_instructions,
            s.deny.len(),
            s.on_violation,
            s.denylist_instructions
        )?;
        writeln!(o, "            denied: {}", s.deny.join(" "))?;
        for r in &s.argument_rules {
            writeln!(o, "            denied: {r}")?;
        }
        if !s.reallowed.is_empty() {
            writeln!(
                o,
                "            allowed by the profile: {}",
                s.reallowed.join(" ")
            )?;
        }
        writeln!(
            o,
            "caps        {}",
            if self.capabilities.is_empty() {
                "none".to_string()
            } else {
                self.capabilities.join(" ")
            }
        )?;
        writeln!(o, "namespaces  {}", self.namespaces.join(" "))?;
        writeln!(o, "env         {}", self.env_keys.join(" "))?;
        let l = &self.limits;
        let mut lim = Vec::new();
        if let Some(w) = l.wall_time_ms {
            lim.push(format!(
                "wall_time {} (grace {})",
                profile::Duration(w),
                profile::Duration(l.grace_ms)
            ));
        }
        if let Some(m) = l.memory_bytes {
            lim.push(format!("memory {}", profile::Size(m)));
        }
        if let Some(p) = l.pids {
            lim.push(format!("pids {p}"));
        }
        if let Some(c) = l.cpu_millicores {
            lim.push(format!("cpu {:.2} cores", c as f64 / 1000.0));
        }
        if let Some(f) = l.open_files {
            lim.push(format!("open_files {f}"));
        }
        if let Some(f) = l.file_size_bytes {
            lim.push(format!("file_size {}", profile::Size(f)));
        }
        lim.push(format!(
            "core_dumps {}",
            if l.core_dumps { "on" } else { "off" }
        ));
        writeln!(o, "limits      {}", lim.join(", "))?;
        writeln!(
            o,
            "audit       {}",
            self.audit_log
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into())
        )?;
        writeln!(o, "compat      {:?}", self.compat)?;
        for d in &self.dropped {
            writeln!(o, "DROPPED     {d}")?;
        }
        Ok(())
    }
}

/// The Landlock ABI to write rules for: the kernel's, capped at what confine
/// knows and, for testing older kernels, at `CONFINE_LANDLOCK_ABI`.
fn target_abi(kernel: Option<u32>) -> Result<u32, PlanError> {
    let mut abi = kernel.unwrap_or(0).min(ll::MAX_ABI);
    if let Some(v) = std::env::var_os(ABI_OVERRIDE_ENV) {
        let cap: u32 = v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
            refused(
                ABI_OVERRIDE_ENV,
                "environment",
                "must be a number from 0 to 9",
            )
        })?;
        abi = abi.min(cap);
    }
    Ok(abi)
}
