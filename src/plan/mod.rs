//! Profile + command line + kernel features -> [`Plan`]: plain data with
//! absolute, symlink-resolved paths, the Landlock rules for the ABI in use,
//! both seccomp programs compiled, the environment the agent will get, limits
//! in canonical units and what this kernel can't enforce.
//!
//! Building a plan has no side effects: `explain` and `run --dry-run` print
//! one, `run` hands it to the launcher, which only applies it. Everything a
//! launch needs is decided here, before any fork.
//!
//! This file holds the plan's types and [`Plan::build`], which makes the
//! decisions in order; each part is planned in its own module:
//! - `fs`: the grants, the mount view, `protect` and its placeholders, where
//!   the audit log may be;
//! - `landlock`: the ABI to target, the rules for it, what it can't enforce;
//! - `net`: the network part and what it does and doesn't stop;
//! - `seccomp`: both filters, compiled;
//! - `lint`: warnings about what a profile allows;
//! - `render`: the text `explain` prints (`--json` is `Serialize`).

mod changes;
pub mod egress;
mod fs;
pub mod home;
mod landlock;
mod lint;
mod net;
mod render;
mod seccomp;
pub mod secrets;

use std::ffi::{CString, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audit;
use crate::profile::{self, NetworkMode, PathSpec, Profile, ProfileError, Warning};
use crate::sandbox::{cgroup, memfd, mounts, user};

pub use changes::ChangesPlan;
pub use fs::{FsPlan, PathGrant, TmpPlan};
pub use landlock::LandlockPlan;
pub use net::NetPlan;
pub use seccomp::SeccompPlan;

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
        audit: Option<Box<RefusedLaunch>>,
    },
}

/// Where and what to audit about a launch the plan refused.
#[derive(Debug, Clone)]
pub struct RefusedLaunch {
    pub log: PathBuf,
    pub record: audit::Refused,
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

/// Adds where the workspace came from to a refusal that is about it (a
/// workspace taken from the current directory by accident makes the most
/// confusing ones: "chown the workspace" from /root, "/bin is a symlink
/// inside the workspace" from /).
fn workspace_origin(e: PlanError, origin: &str) -> PlanError {
    let note = origin.to_string();
    match e {
        PlanError::Profile(mut pe) if pe.message.contains("workspace") => {
            pe.message = format!("{}; {note}", pe.message);
            PlanError::Profile(pe)
        }
        PlanError::Refused {
            what,
            at,
            why,
            hint,
        } if why.contains("workspace") || what.contains("workspace") => PlanError::Refused {
            what,
            at,
            why,
            hint: Some(match hint {
                Some(h) => format!("{h}; {note}"),
                None => note,
            }),
        },
        PlanError::Audited { refusal, audit } => PlanError::Audited {
            refusal: Box::new(workspace_origin(*refusal, origin)),
            audit,
        },
        other => other,
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
    /// What HOME is, when the profile says (`home:`).
    pub home: Option<home::HomePlan>,
    /// `env.set.HOME` is written: the variable says that, not `home`.
    pub home_overridden: bool,
    /// Keys of the agent's environment; values are not shown.
    pub env_keys: Vec<String>,
    pub limits: LimitsPlan,
    pub approval: ApprovalPlan,
    pub audit_log: Option<PathBuf>,
    pub compat: profile::Compat,
    /// Proxy mode: the routes of `secrets:`, where each value is read from
    /// at launch; never a value.
    pub secrets: Vec<secrets::Route>,
    pub namespaces: Vec<&'static str>,
    /// confine runs without root: the sandbox starts with a user namespace
    /// that maps only the caller's uid and gid.
    pub unprivileged: bool,
    /// What can't be enforced here. Non-empty only under best-effort.
    pub dropped: Vec<Gap>,
    pub warnings: Vec<Warning>,
    #[serde(skip)]
    pub(crate) exec: ExecPlan,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProfileInfo {
    pub name: String,
    pub description: String,
    pub sha256: String,
    pub sources: Vec<String>,
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
    /// `limits.checkpoint_every`: run time between checkpoints (§12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_every_ms: Option<u64>,
}

/// `approval:`: who answers checkpoints and asks (DESIGN.md §12).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApprovalPlan {
    /// The hook's argv (its first word an absolute path); `None`: only
    /// `confine approve` / `deny` answer.
    pub command: Option<Vec<String>>,
    /// How long a request waits; `None`: until answered (or `wall_time`).
    pub timeout_ms: Option<u64>,
    /// What an unanswered request comes to at the timeout.
    pub default: profile::approval::OnTimeout,
}

impl LimitsPlan {
    /// The limits a cgroup enforces.
    pub(crate) fn cgroup(&self) -> cgroup::Limits {
        cgroup::Limits {
            memory_bytes: self.memory_bytes,
            pids: self.pids,
            cpu_millicores: self.cpu_millicores,
        }
    }

    /// Whether any limit needs a cgroup.
    pub(crate) fn needs_cgroup(&self) -> bool {
        self.memory_bytes.is_some() || self.pids.is_some() || self.cpu_millicores.is_some()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct UserPlan {
    pub spec: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub name: Option<String>,
    #[serde(skip)]
    pub(crate) ids: user::Ids,
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

/// Prepared C strings for the exec, so the child allocates nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExecPlan {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    pub caps: Vec<caps::Capability>,
}

/// Validates a profile as far as it can be without a workspace: the schema,
/// `extends`, and every path that doesn't depend on `{workspace}`.
///
/// # Errors
/// The first problem, located.
pub fn check(spec: &str) -> Result<Vec<Warning>, PlanError> {
    let p = profile::load(spec, &[])?;
    seccomp::check_syscalls(&p)?;
    home::check(&p)?;
    // Paths under the workspace are checked when there is one (run/explain).
    let ws = match &p.workspace {
        Some(w) => Some(fs::check_workspace(&w.value, Some(w))?),
        None => None,
    };
    let grants = fs::profile_grants(&p, ws.as_deref())?;
    if let Some(a) = &p.audit_log {
        if let Some(path) = a.value.expand(ws.as_deref()) {
            if let Some(why) = fs::audit_inside_grant(&fs::log_path(&path), &grants) {
                return Err(a.error("audit.log", why).into());
            }
        }
    }
    Plan::approval(&p, &Plan::limits(&p))?;
    let mut warnings = Vec::new();
    lint::lint(&p, &mut warnings);
    let abi = landlock::target_abi(crate::probe::landlock_abi()).unwrap_or(0);
    let resolved = grants
        .iter()
        .map(|(real, (written, _))| (written.as_path(), real.as_path()));
    warnings.extend(lint::socket_warnings(&p, ws.as_deref(), resolved, abi));
    let written = grants
        .iter()
        .filter(|(_, (_, g))| g.write)
        .map(|(real, (written, _))| (written.as_path(), real.as_path()));
    warnings.extend(lint::file_write_warnings(&p, ws.as_deref(), written));
    Ok(warnings)
}

impl Plan {
    /// Builds the plan for `req` on this kernel.
    ///
    /// # Errors
    /// A located profile error, or a refusal naming what, where and why.
    pub fn build(req: &Request) -> Result<Plan, PlanError> {
        let p = profile::load(&req.profile, &req.overrides)?;
        let mut warnings = Vec::new();
        lint::lint(&p, &mut warnings);
        seccomp::check_syscalls(&p)?;

        // The workspace: -w, else the profile's, else the current directory.
        let (workspace, origin) = match (&req.workspace, &p.workspace) {
            (Some(w), _) => {
                let spec = PathSpec {
                    raw: std::path::absolute(w)
                        .unwrap_or_else(|_| w.clone())
                        .display()
                        .to_string(),
                    optional: false,
                };
                let ws = fs::check_workspace(&spec, None)?;
                let origin = format!("the workspace {} was given with -w", ws.display());
                (ws, origin)
            }
            (None, Some(w)) => {
                let ws = fs::check_workspace(&w.value, Some(w))?;
                let origin = format!(
                    "the workspace {} is the profile's `workspace` ({}); -w DIR chooses another",
                    ws.display(),
                    Warning::at(w, "workspace", "").at
                );
                (ws, origin)
            }
            (None, None) => {
                let cwd = std::env::current_dir()
                    .map_err(|e| refused("workspace", "current directory", e.to_string()))?;
                let origin = format!(
                    "the workspace is the current directory {}, as neither -w nor the profile's \
                     `workspace` names one; pass -w DIR to choose it",
                    cwd.display()
                );
                (cwd, origin)
            }
        };
        Self::build_in(req, p, warnings, workspace).map_err(|e| workspace_origin(e, &origin))
    }

    /// [`Plan::build`] once the profile is loaded and the workspace known.
    fn build_in(
        req: &Request,
        p: Profile,
        mut warnings: Vec<Warning>,
        workspace: PathBuf,
    ) -> Result<Plan, PlanError> {
        let kernel_abi = crate::probe::landlock_abi();
        let abi = landlock::target_abi(kernel_abi)?;
        let home = home::plan(&p, &workspace)?;
        let fs = fs::plan(&p, &workspace, abi, home.as_ref())?;
        let resolved = fs
            .grants
            .iter()
            .filter(|g| !g.implicit)
            .map(|g| (g.written.as_path(), g.path.as_path()));
        warnings.extend(lint::socket_warnings(&p, Some(&workspace), resolved, abi));
        let written = fs
            .grants
            .iter()
            .filter(|g| g.write && !g.implicit)
            .map(|g| (g.written.as_path(), g.path.as_path()));
        warnings.extend(lint::file_write_warnings(&p, Some(&workspace), written));
        let audit_log = fs::audit_log(req, &p, &workspace, home.as_ref())?;
        // From here on a refusal is also written to the audit log.
        let audited = |refusal: PlanError, not_enforceable: &[String]| PlanError::Audited {
            audit: audit_log.clone().map(|log| {
                Box::new(RefusedLaunch {
                    log,
                    record: audit::Refused {
                        why: refusal.to_string(),
                        planned: Some(audit::RefusedPlan {
                            not_enforceable: not_enforceable.to_vec(),
                            profile: audit::ProfileId {
                                name: p.name.clone(),
                                sha256: p.sha256(),
                            },
                            argv: req
                                .command
                                .iter()
                                .map(|a| a.to_string_lossy().into_owned())
                                .collect(),
                            workspace: workspace.clone(),
                        }),
                    },
                })
            }),
            refusal: Box::new(refusal),
        };
        let landlock = landlock::plan(&p, &fs, abi, kernel_abi);
        let network = net::plan(&p, &landlock);

        let mut gaps = Vec::new();
        landlock::gaps(&p, abi, kernel_abi, &mut gaps);
        Self::build_gaps(&p, &fs, &mut gaps);

        // SAFETY: geteuid has no arguments and can't fail.
        let unprivileged = unsafe { libc::geteuid() } != 0;
        let memfd = Self::memfd(&fs, unprivileged);
        let seccomp = seccomp::plan(&p, memfd).map_err(|e| audited(e, &[]))?;
        let user = Self::user(&p, &workspace, unprivileged).map_err(|e| audited(e, &[]))?;
        let mut fs = fs;
        fs.changes = changes::plan(&p, &workspace, &mut fs, unprivileged)?;
        // The sandbox's own device nodes need real root (mknod); the host's
        // bound ones are safe only from an agent that isn't their owner.
        fs.mounts.devices = if unprivileged {
            mounts::Devices::Bind
        } else if user.uid == 0 {
            mounts::Devices::Own
        } else {
            mounts::Devices::OwnOrBind
        };
        let secrets = secrets::plan(&p);
        secrets_outside_grants(&p, &fs)?;
        let (env_keys, envp) =
            Self::env(&p, &workspace, &secrets, home.as_ref()).map_err(|e| audited(e, &[]))?;
        let mut limits = Self::limits(&p);
        let approval = Self::approval(&p, &limits).map_err(|e| audited(e, &[]))?;
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
            .unwrap_or_else(|| {
                // Where the workspace isn't in the view (`minimal`), the
                // agent starts at the root, which always is. The workspace
                // is in the view also when only what is beneath it is
                // granted (a learned profile's `{workspace}/src`): empty
                // but for the way on, and entering it needs no right.
                let in_view = fs.grants.iter().any(|g| {
                    !g.implicit
                        && (workspace.starts_with(&g.path) || g.path.starts_with(&workspace))
                });
                if in_view {
                    workspace.clone()
                } else {
                    PathBuf::from("/")
                }
            });

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
            home_overridden: home.is_some() && p.env.set.contains_key("HOME"),
            home,
            env_keys,
            limits,
            approval,
            audit_log,
            compat: p.compat,
            secrets,
            namespaces,
            unprivileged,
            dropped: gaps,
            warnings,
            exec,
        })
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

    fn env(
        p: &Profile,
        ws: &Path,
        routes: &[secrets::Route],
        home: Option<&home::HomePlan>,
    ) -> Result<(Vec<String>, Vec<CString>), PlanError> {
        let keep: Vec<String> = p.env.keep.iter().map(|k| k.value.0.clone()).collect();
        let ws_str = ws.display().to_string();
        // Proxy mode: the variables that send tools to the egress proxy
        // first, so the profile's own `env.set` can still change them.
        let proxy = if p.network.mode.value == profile::NetworkMode::Proxy {
            crate::sandbox::env::egress_proxy_vars()
        } else {
            Vec::new()
        };
        // Then each secret's base-URL and key variables: its route and its
        // placeholder, never the value.
        let set: Vec<(String, String)> = proxy
            .into_iter()
            .chain(secrets::env_vars(routes))
            // `home:` before `env.set`, whose HOME still wins.
            .chain(home.map(|h| ("HOME".to_string(), h.path.display().to_string())))
            .chain(
                p.env
                    .set
                    .iter()
                    .map(|(k, v)| (k.clone(), v.replace(profile::WORKSPACE_VAR, &ws_str))),
            )
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
            checkpoint_every_ms: l.checkpoint_every.map(|d| d.0 .0),
        }
    }

    /// `approval:`, checked: a checkpoint needs the sandbox's freezer (so a
    /// cgroup, which confine makes only for a cgroup limit), and the hook
    /// must be an executable file now, not at the first checkpoint hours
    /// into a run.
    fn approval(p: &Profile, limits: &LimitsPlan) -> Result<ApprovalPlan, PlanError> {
        if limits.checkpoint_every_ms.is_some() && !limits.needs_cgroup() {
            return Err(p
                .error_at(
                    "limits.checkpoint_every",
                    "a checkpoint freezes the sandbox through its cgroup, which confine makes only \
                     for limits.pids, limits.memory or limits.cpu: set one of them too (e.g. \
                     limits.pids: 4096)",
                )
                .into());
        }
        let a = &p.approval;
        if let Some(cmd) = &a.command {
            use std::os::unix::fs::PermissionsExt;
            let path = Path::new(&cmd.0[0]);
            let why = match std::fs::metadata(path) {
                Err(e) => Some(format!("{}: {e}", path.display())),
                Ok(m) if !m.is_file() => Some(format!("{} is not a regular file", path.display())),
                Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                    Some(format!("{} is not executable", path.display()))
                }
                Ok(_) => None,
            };
            if let Some(why) = why {
                return Err(p.error_at("approval.command", why).into());
            }
        }
        Ok(ApprovalPlan {
            command: a.command.as_ref().map(|c| c.0.clone()),
            timeout_ms: a.timeout.map(|d| d.0),
            default: a.default.unwrap_or_default(),
        })
    }
}

/// A `file:` secret inside what the agent may read would be the agent's to
/// read: refused, naming the grant. Compared as written and, where the
/// file exists, as resolved.
fn secrets_outside_grants(p: &Profile, fs: &FsPlan) -> Result<(), PlanError> {
    for s in &p.secrets {
        let profile::secrets::SecretSource::File(path) = &s.value.from else {
            continue;
        };
        let real = std::fs::canonicalize(path).ok();
        // Implicit grants are the sandbox's own /proc, /dev and /tmp, not
        // the host's files.
        let inside = fs.grants.iter().filter(|g| !g.implicit).find(|g| {
            path.starts_with(&g.path) || real.as_ref().is_some_and(|r| r.starts_with(&g.path))
        });
        if let Some(g) = inside {
            let why = format!(
                "{} is inside {}, which the agent may read: keep the secret outside every grant",
                path.display(),
                g.path.display()
            );
            let e = match &s.origin {
                Some(o) => profile::Origin {
                    source: o.source.clone(),
                    key: format!("{}.from", o.key),
                }
                .error(why),
                None => s.error("secrets", why),
            };
            return Err(e.into());
        }
    }
    Ok(())
}
