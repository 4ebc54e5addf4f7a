//! `confine run`: the ordered launch of DESIGN.md §4.
//!
//! Three processes, one file each:
//! - the **supervisor** (this file) stays outside the sandbox, unconfined:
//!   it forks, forwards signals, enforces `wall_time`, reaps and returns the
//!   agent's status;
//! - the **init** ([`init`]) is PID 1 inside: it confines itself, forks the
//!   agent, reaps orphans and exits with the agent's status;
//! - the **agent** ([`agent`]) resets what the launcher's process state would
//!   leak and execs the command.
//!
//! They talk over one pipe ([`report`]): the reason the command never ran, or
//! end of file once it did.

pub mod agent;
pub mod channel;
mod egress;
pub use egress::program_main as egress_program_main;
mod hints;
pub mod init;
mod privilege;
pub mod signals;
pub mod supervisor;
pub mod terminal;

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::audit::{self, Audit};
use crate::plan::Plan;
use crate::profile::NetworkMode;
use std::os::fd::AsFd;

use crate::sandbox::{caps, cgroup, fsfd, limits, mounts, namespaces, placeholders, process, pty};

/// Exit status when `limits.wall_time` ran out.
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit status when confine refused or failed before the command started.
pub const EXIT_REFUSED: u8 = 125;

/// Why a launch failed before the command ran.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{what} ({step}): {why}")]
    Setup {
        step: &'static str,
        what: String,
        why: String,
    },
    #[error("{step} (sandbox setup): {why}")]
    Refused { step: String, why: String },
}

fn setup(step: &'static str, what: impl Into<String>, why: impl std::fmt::Display) -> LaunchError {
    LaunchError::Setup {
        step,
        what: what.into(),
        why: why.to_string(),
    }
}

/// At most this many ports in `network.allow` (a listener each).
const MAX_EGRESS_PORTS: usize = 64;

/// What the sandbox's standard streams are (DESIGN.md §11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Terminal {
    /// A pty of the sandbox's own wherever the caller's stdin, stdout or
    /// stderr is a terminal; the caller's streams as they are otherwise.
    #[default]
    Auto,
    /// The caller's stdin, stdout and stderr, as they are (`--no-tty`).
    Inherit,
    /// A pty of the sandbox's own, even when the caller has no terminal
    /// (`--tty`).
    Pty,
}

impl Terminal {
    /// Which of the agent's streams are the pty, for this process's stdio.
    fn wiring(self) -> Option<pty::Wiring> {
        match self {
            Terminal::Inherit => None,
            Terminal::Auto => pty::Wiring::of_stdio(false),
            Terminal::Pty => pty::Wiring::of_stdio(true),
        }
    }
}

/// Runs the plan's command in the sandbox with the caller's stdio (and a
/// pty of its own where that is a terminal); returns the exit status
/// confine should exit with.
///
/// # Errors
/// A [`LaunchError`] when the command was never started (exit 125).
pub fn run(plan: &Plan) -> Result<u8, LaunchError> {
    run_with(plan, Terminal::Auto)
}

/// [`run`], with the sandbox's terminal as `terminal` says.
///
/// # Errors
/// A [`LaunchError`] when the command was never started (exit 125).
pub fn run_with(plan: &Plan, terminal: Terminal) -> Result<u8, LaunchError> {
    let audit = Audit::open(plan.audit_log.as_deref()).map_err(|e| {
        setup(
            "audit",
            format!(
                "audit log {}",
                plan.audit_log.as_deref().unwrap_or(Path::new("")).display()
            ),
            e,
        )
    })?;
    let wiring = terminal.wiring();
    audit
        .record(&launch_record(plan, wiring))
        .map_err(|e| setup("audit", "writing the launch record", e))?;
    // A directory as stdin, stdout or stderr would be the agent's way into
    // the host's tree, around the mount view: refused before anything on
    // the host changes.
    let stdio = process::check_stdio().map_err(|e| setup(e.at, e.name, e.why));
    let result = stdio
        .and_then(|()| read_secrets(plan))
        .and_then(|secrets| Ok((secrets, prepare_host(plan, &audit.sandbox)?)))
        .and_then(|(secrets, host)| {
            let r = launch(plan, &audit, &host.expect, wiring, secrets);
            host.lease.release();
            // Review mode: what the run changed waits (and is recorded);
            // a launch that never ran leaves nothing to review.
            match (host.review, &r) {
                (Some(review), Ok(_)) => crate::say!("{}", review.finish()),
                (Some(review), Err(_)) => review.abandon(),
                (None, _) => {}
            }
            r
        });
    let record = match &result {
        Ok(o) => audit.record(&o.record()),
        Err(e) => audit.record(&audit::Refused {
            why: e.to_string(),
            planned: None,
        }),
    };
    if let Err(e) = record {
        crate::say!("confine: audit log (writing the exit record): {e}");
    }
    result.map(|o| o.code)
}

/// Reads every secret's value and the CA bundle their upstreams are
/// verified against (DESIGN.md §10), and blanks `env:` sources in this
/// process's own environment block, which the init would otherwise
/// inherit. `None` without secrets.
fn read_secrets(plan: &Plan) -> Result<Option<egress::Secrets>, LaunchError> {
    if plan.secrets.is_empty() {
        return Ok(None);
    }
    let mut routes = Vec::new();
    for r in &plan.secrets {
        let secret = crate::sandbox::secrets::read(&r.source)
            .map_err(|e| setup("secrets", format!("secret {} ({})", r.name, r.source), e))?;
        routes.push((r.clone(), secret));
    }
    for r in &plan.secrets {
        if let crate::profile::secrets::SecretSource::Env(name) = &r.source {
            crate::sandbox::secrets::blank_env(name);
        }
    }
    let ca_pem = egress::read_ca_bundle()
        .map_err(|e| setup("secrets", "the CA bundle for the secrets' upstreams", e))?;
    Ok(Some(egress::Secrets { routes, ca_pem }))
}

/// What the supervisor holds on the host for the run (DESIGN.md §4,
/// host-side rules).
struct Host {
    /// This sandbox's share of the workspace's placeholders.
    lease: placeholders::Lease,
    /// What each path of the mount view is, for the init to find again.
    expect: mounts::Expect,
    /// Review mode: the sandbox's state directory, locked for the run.
    review: Option<crate::changes::Launch>,
}

/// Opens the workspace once, makes the placeholders of protected paths
/// that don't exist yet (beneath the workspace's descriptor), and records
/// what every path of the view is.
fn prepare_host(plan: &Plan, id: &str) -> Result<Host, LaunchError> {
    let ws_what = || format!("workspace {}", plan.workspace.display());
    let ws = fsfd::open_with(
        None,
        &plan.workspace,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
    )
    .map_err(|e| setup("workspace", ws_what(), e))?;
    // The plan chose the agent's user from the workspace's owner, by path:
    // the directory opened now must be owned by the same user.
    if plan.user.spec == "workspace-owner" {
        let st = fsfd::stat(ws.as_fd()).map_err(|e| setup("workspace", ws_what(), e))?;
        if st.st_uid != plan.user.uid {
            return Err(setup(
                "workspace",
                ws_what(),
                "it was replaced after confine checked it (its owner changed)",
            ));
        }
    }
    if let Some(h) = plan.home.as_ref().filter(|h| h.created_at_launch) {
        crate::sandbox::home::prepare(&h.path, plan.user.uid, plan.user.gid)
            .map_err(|e| setup("home", "home: private", e))?;
    }
    let m = &plan.filesystem.mounts;
    let lease = placeholders::acquire(
        ws.as_fd(),
        &plan.workspace,
        &m.create,
        &m.rely,
        (plan.user.uid, plan.user.gid),
        id,
        &|| signals::pending_stop().is_some(),
    )
    .map_err(|e| setup("placeholders", "filesystem.protect", e))?;
    let expect = match mounts::identify(m) {
        Ok(expect) => expect,
        Err(e) => {
            lease.release();
            return Err(setup("mounts", "checking the granted paths", e));
        }
    };
    // What will be mounted as the workspace must be the directory whose
    // owner was checked and beneath which the placeholders were made.
    let ws_id = fsfd::identity(ws.as_fd()).map_err(|e| setup("workspace", ws_what(), e));
    let bound = m.binds.iter().position(|b| b.path == plan.workspace);
    if let (Ok(ws_id), Some(i)) = (&ws_id, bound) {
        if expect.binds.get(i) != Some(ws_id) {
            lease.release();
            return Err(setup(
                "workspace",
                ws_what(),
                "it was replaced after confine opened it (another process is changing it)",
            ));
        }
    }
    let ws_id = match ws_id {
        Ok(id) => id,
        Err(e) => {
            lease.release();
            return Err(e);
        }
    };
    let mut expect = expect;
    let review = match review(plan, id, &ws, ws_id) {
        Ok(Some((review, layers))) => {
            expect.layers = Some(layers);
            Some(review)
        }
        Ok(None) => None,
        Err(e) => {
            lease.release();
            return Err(e);
        }
    };
    Ok(Host {
        lease,
        expect,
        review,
    })
}

/// Review mode: the sandbox's state directory, with the overlay's upper
/// and work directories and the manifest of the workspace as it is now
/// (the directory opened once, `ws`).
fn review(
    plan: &Plan,
    id: &str,
    ws: &OwnedFd,
    ws_id: fsfd::Identity,
) -> Result<Option<(crate::changes::Launch, mounts::Layers)>, LaunchError> {
    let Some(base) = &plan.filesystem.changes.state else {
        return Ok(None);
    };
    // The manifest walks the workspace: a readable descriptor of the very
    // directory opened before.
    let dir = fsfd::open_with(
        Some(ws.as_fd()),
        Path::new(""),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
    )
    .map_err(|e| {
        setup(
            "review",
            format!("workspace {}", plan.workspace.display()),
            e,
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // SAFETY: geteuid has no arguments and can't fail.
    let uid = unsafe { libc::geteuid() };
    let meta = crate::changes::Meta {
        id: id.to_string(),
        uid,
        workspace: plan.workspace.clone(),
        workspace_dev: ws_id.dev,
        workspace_ino: ws_id.ino,
        agent_uid: plan.user.uid,
        agent_gid: plan.user.gid,
        profile: plan.profile.name.clone(),
        command: plan.command.clone(),
        started: crate::audit::rfc3339_now(),
        started_unix: now.as_secs(),
        audit_log: plan.audit_log.clone(),
        userxattr: plan.filesystem.changes.userxattr,
    };
    crate::changes::prepare(base, dir.as_fd(), meta)
        .map(Some)
        .map_err(|e| setup("review", e.at.clone(), format!("{}: {}", e.what, e.why)))
}

/// What the supervisor saw of the sandbox's end.
struct Outcome {
    /// Resource use of the sandbox's cgroup, when it had one.
    cgroup: Option<cgroup::Stats>,
    code: u8,
    /// The agent's raw wait status, when the init reported it.
    agent_status: Option<libc::c_int>,
    reason: &'static str,
    duration: Duration,
    rusage: libc::rusage,
    /// Each secret route's totals.
    usage: std::collections::BTreeMap<String, crate::egress::events::UsageTotals>,
}

impl Outcome {
    fn record(&self) -> audit::Exit {
        let signal = self
            .agent_status
            .filter(|s| libc::WIFSIGNALED(*s))
            .map(|s| libc::WTERMSIG(s));
        let ms = |t: libc::timeval| t.tv_sec * 1000 + t.tv_usec / 1000;
        audit::Exit {
            status: self.code,
            signal,
            reason: self.reason,
            duration_ms: self.duration.as_millis() as u64,
            max_rss_kb: self.rusage.ru_maxrss,
            user_cpu_ms: ms(self.rusage.ru_utime),
            sys_cpu_ms: ms(self.rusage.ru_stime),
            cgroup: self.cgroup,
            usage: (!self.usage.is_empty()).then(|| self.usage.clone()),
        }
    }
}

fn launch_record(plan: &Plan, wiring: Option<pty::Wiring>) -> audit::Launch<'_> {
    audit::Launch {
        terminal: wiring.map_or_else(|| "inherited".into(), |w| w.describe()),
        profile: audit::LaunchProfile {
            name: &plan.profile.name,
            sha256: &plan.profile.sha256,
            sources: &plan.profile.sources,
        },
        argv: &plan.command,
        workspace: &plan.workspace,
        uid: plan.user.uid,
        gid: plan.user.gid,
        env_keys: &plan.env_keys,
        home: plan.home.as_ref().map(|h| h.path.as_path()),
        plan: audit::PlanSummary {
            landlock_abi: plan.landlock.abi,
            landlock_handled_fs: &plan.landlock.handled_fs,
            landlock_handled_net: &plan.landlock.handled_net,
            landlock_scopes: &plan.landlock.scopes,
            seccomp: audit::SeccompSummary {
                allowed: plan.seccomp.allow.len(),
                denied: plan.seccomp.deny.len(),
                argument_rules: plan.seccomp.argument_rules.len(),
                on_violation: plan.seccomp.on_violation,
            },
            namespaces: &plan.namespaces,
            network: plan.network.mode,
            limits: &plan.limits,
            capabilities: &plan.capabilities,
        },
        dropped: &plan.dropped,
    }
}

fn launch(
    plan: &Plan,
    audit: &Audit,
    expect: &mounts::Expect,
    wiring: Option<pty::Wiring>,
    secrets: Option<egress::Secrets>,
) -> Result<Outcome, LaunchError> {
    let id = audit.sandbox.as_str();
    let policy = plan.network.egress.as_ref();
    let egress_ports = policy.map(|e| e.ports()).unwrap_or_default();
    if egress_ports.len() > MAX_EGRESS_PORTS {
        return Err(setup(
            "egress",
            "network.allow",
            format!(
                "{} different ports are allowed; at most {MAX_EGRESS_PORTS} (one listener each inside the sandbox)",
                egress_ports.len()
            ),
        ));
    }
    // Everything the sandbox needs is prepared before the fork.
    privilege::can_signal(plan.user.uid, plan.unprivileged)
        .map_err(|e| setup("prepare", "signals to the sandbox", e))?;
    let last_cap = caps::read_last_cap().map_err(|e| setup("prepare", "capabilities", e))?;
    let caps = caps::Caps::new(&plan.exec.caps, last_cap)
        .map_err(|e| setup("prepare", "capabilities", e))?;
    let mut exec = exec_args(plan)?;
    exec.foreground = wiring.map(|w| w.first());
    let rlimits = limits::Rlimits {
        open_files: plan.limits.open_files,
        file_size: plan.limits.file_size_bytes,
        core_dumps: plan.limits.core_dumps,
    };
    let ns = namespaces::Namespaces {
        user: plan.unprivileged,
        mount: true,
        net: plan.network.mode != NetworkMode::Host,
        pid: true,
        ipc: true,
        uts: true,
        // The init unshares it once inside its own cgroup, so the view is
        // rooted there.
        cgroup: false,
    };
    // The cgroup exists before the sandbox does, and the child joins it
    // before it is allowed to run.
    let cg = if plan.limits.needs_cgroup() {
        Some(
            cgroup::Cgroup::create(id, &plan.limits.cgroup())
                .map_err(|e| setup("cgroup", "limits", e))?,
        )
    } else {
        None
    };
    // A checkpoint freezes the sandbox: without a freezer it couldn't, and
    // the sandbox would run on unapproved.
    if plan.limits.checkpoint_every_ms.is_some()
        && cg.as_ref().and_then(cgroup::Cgroup::freeze_state).is_none()
    {
        return Err(setup(
            "cgroup",
            "limits.checkpoint_every",
            "the sandbox's cgroup has no freezer (no cgroup v2 directory with cgroup.freeze, \
             Linux 5.2+, and no cgroup v1 freezer hierarchy mounted), so a checkpoint couldn't \
             stop it",
        ));
    }

    let (mut ends, init_ends) = channel::open(wiring.is_some(), policy.is_some())
        .map_err(|e| setup("prepare", "channels", e))?;
    // Denials of the seccomp denylist reach the supervisor through a
    // listener the init sends (DESIGN.md §13).
    let (listener_rx, listener_tx) = match plan.seccomp.notify {
        Some(_) => channel::listener_pair()
            .map(|(r, w)| (Some(r), Some(w)))
            .map_err(|e| setup("prepare", "channels", e))?,
        None => (None, None),
    };
    // The egress proxy first: its runtime starts while the sandbox is set
    // up; the listeners reach it from the init.
    let proxy = match (policy, ends.egress.take()) {
        (Some(p), Some(rx)) => Some(
            egress::spawn(p, rx, plan.user.uid, plan.user.gid, secrets)
                .map_err(|e| setup("egress", "starting the egress proxy", e))?,
        ),
        _ => {
            drop(secrets);
            None
        }
    };
    // Blocked since main for `run`; again here for any other caller.
    signals::block();
    let sigfd = signals::signalfd().map_err(|e| setup("prepare", "signalfd", e))?;
    // Asked to stop while preparing: don't start what would only be stopped.
    if let Some(sig) = signals::pending_stop() {
        return Err(setup(
            "signal",
            "launch",
            format!("{} arrived before the command started", signals::name(sig)),
        ));
    }
    let started = Instant::now();
    // Landlock's denials, where the kernel's audit can be read (root):
    // joined before the sandbox exists, so none is missed.
    let seccomp_log = plan.seccomp.on_violation == crate::profile::OnViolation::Log;
    let audit_sock = crate::denials::landlock::Source::open(plan.landlock.abi, seccomp_log);

    let child = namespaces::clone_into(ns).map_err(|e| clone_error(ns, e))?;
    let pid = match child {
        namespaces::Cloned::Child => {
            // The sandbox's copy of the cgroup handle must never clean up
            // (its pid check alone fails when confine itself was PID 1).
            std::mem::forget(cg);
            // The proxy is the supervisor's to end, not the init's.
            std::mem::forget(proxy);
            drop(ends);
            let args = init::InitArgs {
                plan,
                expect,
                caps,
                rlimits,
                exec,
                forwarded: &signals::FORWARDED,
                wiring,
                egress_ports,
                listener: listener_tx,
                landlock_log: audit_sock.is_some() && plan.landlock.abi >= 7,
            };
            init::run(args, init_ends)
        }
        namespaces::Cloned::Parent { pid } => pid,
    };
    drop(init_ends);
    drop(listener_tx);
    let landlock = audit_sock.map(|s| crate::denials::landlock::Source::new(s, pid, seccomp_log));
    let mut denials = crate::denials::Watch::new(plan, id, listener_rx, landlock);
    let channel::SupervisorEnds {
        release,
        lifeline,
        report,
        status,
        terminal,
        egress: _,
    } = ends;
    let outside = || -> Result<(), LaunchError> {
        if let Some(cg) = &cg {
            cg.add(pid)
                .map_err(|e| setup("cgroup", "joining the sandbox's cgroup", e))?;
        }
        if plan.unprivileged {
            namespaces::write_id_maps(pid, plan.user.uid, plan.user.gid)
                .map_err(|e| setup("userns", "uid/gid maps", e))?;
        }
        Ok(())
    };
    if let Err(e) = outside() {
        // The child is still waiting: end it before it does anything.
        supervisor::send(pid, None, libc::SIGKILL);
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Err(e);
    }
    release.release();

    // A pidfd, so no signal can hit a recycled pid: the init is our unreaped
    // child until the very end.
    // SAFETY: pidfd_open with integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let pidfd = if pidfd < 0 {
        None
    } else {
        // SAFETY: the fd was just returned to us and nobody else owns it.
        Some(unsafe { OwnedFd::from_raw_fd(pidfd as i32) })
    };
    // `confine ps`, `stop`, ... (DESIGN.md §12): removed when this returns.
    let (rundir, control) = crate::control::start(plan, id, cg.as_ref()).unzip();

    let ended = supervisor::run(supervisor::Watch {
        pid,
        pidfd,
        signals: sigfd,
        report,
        wall_time: plan.limits.wall_time_ms.map(Duration::from_millis),
        grace: Duration::from_millis(plan.limits.grace_ms),
        started,
        cgroup: cg.as_ref(),
        terminal: terminal.zip(wiring),
        proxy,
        audit,
        control,
        rundir: rundir.as_ref(),
        plan,
        denials: &mut denials,
    });
    let (code, mut reason, report) = (ended.code, ended.reason, ended.report);
    // Every route is in the exit record, those that served nothing at 0.
    let mut usage = ended.usage;
    for r in &plan.secrets {
        usage.entry(r.name.clone()).or_default();
    }
    if reason == "timeout" {
        let limit = crate::profile::Duration(plan.limits.wall_time_ms.unwrap_or_default());
        crate::say!(
            "confine: limits.wall_time ({limit}): the sandbox ran for {:.3}s and was stopped",
            started.elapsed().as_secs_f64()
        );
    }
    let mut stats = None;
    if let Some(cg) = cg {
        if cg.oom_killed() && reason != "timeout" {
            reason = "oom";
            crate::say!("confine: limits.memory (cgroup): the sandbox hit its memory limit and was OOM-killed");
        }
        stats = Some(cg.stats());
        if let Err(e) = cg.remove() {
            crate::say!("confine: cgroup (cleanup): {e}");
        }
    }
    lifeline.cut();
    let mut outcome = Outcome {
        cgroup: stats,
        code,
        agent_status: status.read(),
        reason,
        duration: started.elapsed(),
        rusage: children_rusage(),
        usage,
    };
    if reason == "exited" && outcome.agent_status.is_some_and(|s| libc::WIFSIGNALED(s)) {
        outcome.reason = "signaled";
    }
    denials.finish(
        audit,
        Some(&crate::denials::runs::ExitSummary {
            status: outcome.code,
            reason: outcome.reason.to_string(),
        }),
    );
    match report {
        channel::Report::Running => Ok(outcome),
        channel::Report::Refused { step, why } => {
            let why = match privilege::explain(&step, &why, plan.unprivileged) {
                Some(h) => format!("{why}; {h}"),
                None => why,
            };
            Err(LaunchError::Refused { step, why })
        }
        channel::Report::ExecFailed { code, why } => {
            crate::say!("confine: {why}");
            let candidates = exec_args(plan)
                .map(|a| {
                    a.candidates
                        .iter()
                        .map(|c| PathBuf::from(std::ffi::OsStr::from_bytes(c.as_bytes())))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if let Some(h) = hints::exec_failed(plan, code, &candidates) {
                crate::say!("confine: hint: {h}");
            }
            outcome.code = code;
            Ok(outcome)
        }
    }
}

fn children_rusage() -> libc::rusage {
    // SAFETY: an all-zero rusage is valid and getrusage fills it.
    unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut r);
        r
    }
}

/// Explains a failed clone: most often, user namespaces are blocked.
fn clone_error(ns: namespaces::Namespaces, e: std::io::Error) -> LaunchError {
    let names = ns.names().join(" ");
    if !ns.user {
        let why = match privilege::explain("clone", &e.to_string(), false) {
            Some(h) => format!("{e}; {h}"),
            None => e.to_string(),
        };
        return setup("clone", format!("namespaces {names}"), why);
    }
    let userns = crate::probe::probe().namespaces.unprivileged_userns;
    let fix = userns
        .fix
        .map(|f| format!("; fix: {f}, or run confine as root"))
        .unwrap_or_else(|| "; fix: run confine as root".into());
    setup(
        "clone",
        "user namespace",
        format!(
            "{e}: unprivileged user namespaces are blocked here ({}){fix}",
            userns.reason
        ),
    )
}

fn exec_args(plan: &Plan) -> Result<agent::ExecArgs, LaunchError> {
    let e = &plan.exec;
    let argv0 = e
        .argv
        .first()
        .cloned()
        .ok_or_else(|| setup("prepare", "command", "no command given"))?;
    let candidates = if argv0.as_bytes().contains(&b'/') {
        vec![argv0.clone()]
    } else {
        // PATH search as the agent will see it: its own PATH, or the shell's
        // default when it has none.
        let path = e
            .envp
            .iter()
            .find_map(|kv| kv.as_bytes().strip_prefix(b"PATH="))
            .unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
        path.split(|b| *b == b':')
            .map(|dir| {
                let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
                let mut full = Path::new(std::ffi::OsStr::from_bytes(dir))
                    .join(std::ffi::OsStr::from_bytes(argv0.as_bytes()));
                if full.as_os_str().is_empty() {
                    full = ".".into();
                }
                CString::new(full.as_os_str().as_bytes()).expect("joined from NUL-free parts")
            })
            // Only where it exists: a PATH entry the sandbox can't read
            // would otherwise turn "not found" (127) into EACCES (126).
            .filter(|c| Path::new(std::ffi::OsStr::from_bytes(c.as_bytes())).exists())
            .collect()
    };
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    Ok(agent::ExecArgs {
        argv: ptrs(&e.argv),
        envp: ptrs(&e.envp),
        candidates,
        argv0,
        cwd: e.cwd.clone(),
        foreground: None,
    })
}

/// confine's exit status for a wait status: the exit code, or 128+N for
/// death by signal N (the init's exit for the agent's status, and the
/// supervisor's for the init's).
pub(crate) fn exit_code(status: libc::c_int) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status)) as u8
    } else {
        EXIT_REFUSED
    }
}
