//! The init: PID 1 of the sandbox's PID namespace.
//!
//! It applies DESIGN.md §4 steps 6–11 to itself, in that order, so it is
//! confined exactly like the agent; between Landlock and seccomp it writes
//! the profile's `home.files` as the agent would (DESIGN-NOTES 48); then it
//! forks the agent (step 12) and
//! stays behind to reap orphans, forward the supervisor's signals to every
//! process in the sandbox, and exit with the agent's status. When it exits
//! the kernel kills whatever is left in the namespace.
//!
//! It runs as a forked copy of the single-threaded supervisor, so it may use
//! the heap; every failure is reported on the error pipe and ends it with 125
//! before anything of the command runs.

use super::agent::{self, ExecArgs};
use super::channel::{InitEnds, LifelineWatch, ReportWriter, StatusWriter, TerminalSender};
use crate::plan::Plan;
use crate::profile::NetworkMode;
use crate::sandbox::listeners::Listeners;
use crate::sandbox::{
    caps::Caps, home, landlock, limits, memfd, mounts, namespaces, process, pty, seccomp, user,
};

/// Everything the init needs, prepared by the supervisor before the fork.
pub(crate) struct InitArgs<'a> {
    pub plan: &'a Plan,
    /// What the supervisor found at each path of the mount view.
    pub expect: &'a mounts::Expect,
    pub caps: Caps,
    pub rlimits: limits::Rlimits,
    pub exec: ExecArgs,
    /// Signals the supervisor forwards; blocked since before the fork.
    pub forwarded: &'a [libc::c_int],
    /// Which of the agent's stdio are the sandbox's pty, when it has one.
    pub wiring: Option<pty::Wiring>,
    /// Proxy mode: the ports of the transparent listeners.
    pub egress_ports: Vec<u16>,
    /// Where the denylist's seccomp listener goes, when denials are
    /// reported (`plan.seccomp.notify`).
    pub listener: Option<super::channel::ListenerSender>,
    /// The supervisor reads the kernel's audit: Landlock is to log the
    /// agent's denials (LOG_NEW_EXEC_ON).
    pub landlock_log: bool,
}

/// The value of a step that succeeded; else the reason reported on the
/// report channel, and the init ends with 125 before anything of the
/// command has run.
fn step<T, E: std::fmt::Display>(report: &ReportWriter, name: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(why) => {
            report.refused(name, &why.to_string());
            // SAFETY: _exit ends this process; nothing of the command has run.
            unsafe { libc::_exit(i32::from(super::EXIT_REFUSED)) }
        }
    }
}

/// Death with the supervisor: PDEATHSIG, then a check that it hadn't died
/// before that was armed.
fn die_with_supervisor(report: &ReportWriter, lifeline: &LifelineWatch) {
    step(report, "pdeathsig", process::die_with_parent());
    if !lifeline.supervisor_alive() {
        // SAFETY: as in `step`; nobody is left to report to.
        unsafe { libc::_exit(i32::from(super::EXIT_REFUSED)) };
    }
}

/// Runs the init: DESIGN.md §4 steps 4 and 6–12, one line each; never
/// returns.
pub(crate) fn run(a: InitArgs, ends: InitEnds) -> ! {
    let InitEnds {
        release,
        lifeline,
        report,
        status,
        terminal,
        egress,
    } = ends;
    let plan = a.plan;
    let r = &report;
    // Nothing inside runs before the supervisor has set us up from outside
    // (cgroup, uid/gid maps).
    release.wait();

    // Now inside the sandbox's cgroup: a cgroup namespace rooted here.
    step(r, "namespaces", process::enter_cgroup_namespace());
    // Step 4: our own session (TIOCSTI can't reach the caller's terminal),
    // death with the supervisor, nothing of the host readable via /proc/1.
    step(r, "setsid", process::new_session());
    die_with_supervisor(r, &lifeline);
    step(r, "init", process::hide_identity());

    // No executable memfds (through /proc/sys, before the view's /proc is
    // read-only).
    step(r, "memfd", memfd::apply(plan.memfd));

    // Step 6: the mount view, before Landlock forbids mount changes.
    step(
        r,
        "mounts",
        mounts::build(&plan.filesystem.mounts, a.expect),
    );

    // Step 7: network, hostname, rlimits.
    if matches!(
        plan.network.mode,
        NetworkMode::Loopback | NetworkMode::Proxy
    ) {
        step(r, "network", namespaces::loopback_up());
    }
    // The egress proxy's listeners (proxy mode), made here in the sandbox's
    // network namespace while we may still bind ports below 1024, and
    // handed to the proxy outside; we keep none.
    if let Some(tx) = egress {
        let l = step(r, "egress", Listeners::open(&a.egress_ports));
        step(
            r,
            "egress",
            tx.send(l.into_fds())
                .map_err(|e| format!("passing the listeners to the egress proxy: {e}")),
        );
    }
    step(
        r,
        "hostname",
        namespaces::set_hostname(namespaces::HOSTNAME),
    );
    step(r, "rlimits", limits::apply(&a.rlimits));

    // Step 8: Landlock rules bind to what is mounted now, and the paths are
    // still traversable as root. ABI 0 (no Landlock) only reaches here
    // under `compat: best-effort`.
    let ruleset = (plan.landlock.abi != 0)
        .then(|| step(r, "landlock", landlock::prepare(&plan.landlock.spec)));

    // Step 9: inherited descriptors never reach the agent. CLOEXEC rather
    // than close: the ruleset and the channels are still needed here.
    step(r, "close_range", process::cloexec_from(3));

    // Step 10: credentials, in the order that leaves nothing to regain.
    let c = &a.caps;
    step(r, "capabilities", c.drop_bounding());
    step(r, "capabilities", c.raise_ambient());
    step(r, "capabilities", c.lock_securebits());
    step(r, "user", user::switch(&plan.user.ids));
    step(r, "capabilities", c.clear().and_then(|_| c.verify()));
    // Credential changes reset PDEATHSIG, and dumpable (to
    // fs.suid_dumpable, which may be 1).
    die_with_supervisor(r, &lifeline);
    step(r, "dumpable", process::set_undumpable());

    // The sandbox's own terminal (DESIGN.md §11), opened as the agent's
    // user so that the slave is the agent's: its master to the supervisor,
    // the slave our session's controlling terminal and the agent's stdio
    // where the caller had a terminal. From here on nothing in the sandbox
    // holds the caller's terminal.
    if let (Some(terminal), Some(wiring)) = (&terminal, a.wiring) {
        let (master, slave) = step(
            r,
            "terminal",
            pty::open().map_err(|e| format!("opening /dev/ptmx: {e}")),
        );
        if let Some(caller) = pty::caller_terminal(&[0, 1, 2]) {
            pty::inherit(caller, &slave, wiring.copy_modes);
        }
        step(
            r,
            "terminal",
            pty::make_controlling(&slave)
                .map_err(|e| format!("making the pty the session's terminal: {e}")),
        );
        step(
            r,
            "terminal",
            terminal
                .send(master)
                .map_err(|e| format!("passing the pty to the supervisor: {e}")),
        );
        step(r, "terminal", process::stdio_to(&slave, wiring.pty));
    }

    // The agent's stack, while it shares our memory until its execve:
    // mapped before seccomp, after which nothing here allocates.
    let mut agent_stack = step(r, "agent stack", agent::Stack::new());

    // Step 11: no_new_privs, Landlock, seccomp last.
    step(r, "no_new_privs", process::no_new_privs());
    if let Some(ruleset) = ruleset {
        step(r, "landlock", ruleset.restrict_self(a.landlock_log));
    }
    // `home.files`: written by us as the agent, confined like it (its uid,
    // its Landlock rules, its mount view), before anything of it runs; the
    // host side never writes into the directory the agent controls.
    if let Some(h) = &plan.home {
        step(r, "home", home::write_files(&h.path, &h.files));
    }
    // The ruleset is used: from here on the init holds only the stdio it
    // hands to the agent and its channels. Not the audit log, not the
    // caller's other descriptors, for the whole run.
    let tty = terminal.as_ref().map_or(-1, |t| t.raw());
    let denials = a.listener.as_ref().map_or(-1, |l| l.raw());
    let keep = [0, 1, 2, r.raw(), lifeline.raw(), status.raw(), tty, denials];
    step(r, "close_range", process::close_all_except(&keep));
    let listener = install_seccomp(r, plan);
    if let Some(tx) = &a.listener {
        step(
            r,
            "seccomp",
            tx.send(listener.as_ref())
                .map_err(|e| format!("passing the listener to the supervisor: {e}")),
        );
    }
    // The supervisor holds it now; the agent must never.
    drop(listener);
    drop(a.listener);

    // Step 12 happens in the agent.
    let agent = step(
        r,
        "fork",
        agent::spawn(&a.exec, r.raw(), agent_stack.usable()),
    );
    // Only the agent may hold the report channel now: its execve closes it
    // and the supervisor sees end of file. Its stdio is its own from here on.
    drop(report);
    drop(lifeline);
    process::close_stdio();
    supervise(agent, a.forwarded, &status, terminal.as_ref())
}

/// Step 11's seccomp: filter A, then B, last. Under `on_violation: errno`
/// B reports its denials through a listener, which is returned; where the
/// kernel refuses one (EBUSY: confine itself runs under a filter that has
/// one) the plain B answers EPERM itself and nothing is reported.
fn install_seccomp(r: &ReportWriter, plan: &Plan) -> Option<std::os::fd::OwnedFd> {
    let log = plan.seccomp.on_violation == crate::profile::OnViolation::Log;
    let plain = &plan.seccomp.filters;
    let allowlist = plan.seccomp.notify.as_ref().unwrap_or(plain);
    step(
        r,
        "seccomp",
        seccomp::install(&allowlist.allowlist, log)
            .map_err(|e| format!("installing the allowlist: {e}")),
    );
    if let Some(notify) = &plan.seccomp.notify {
        match seccomp::install_with_listener(&notify.denylist) {
            Ok(fd) => return Some(fd),
            // Learning without a listener would learn nothing, and its
            // A lets every call through: refused.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && !plan.seccomp.learning => {}
            Err(e) => step(
                r,
                "seccomp",
                Err::<(), _>(format!("installing the denylist: {e}")),
            ),
        }
    }
    // A allows the denylisted calls only in the notifying variant; this
    // B's EPERM overrides it just the same.
    step(
        r,
        "seccomp",
        seccomp::install(&plain.denylist, log).map_err(|e| format!("installing the denylist: {e}")),
    );
    None
}

/// The init's life after the fork: wait for signals, forward the
/// supervisor's to every process in the sandbox, reap everything, and exit
/// with the agent's status once it is gone. With a pty, job control too:
/// the agent stopping is told to the supervisor, and SIGCONT from it
/// continues the agent's process group.
fn supervise(
    agent: libc::pid_t,
    forwarded: &[libc::c_int],
    status: &StatusWriter,
    terminal: Option<&TerminalSender>,
) -> ! {
    let mut all = forwarded.to_vec();
    all.push(libc::SIGCHLD);
    if terminal.is_some() {
        all.push(libc::SIGCONT);
    }
    let set = super::signals::set_of(&all);
    // SAFETY: set is initialized; the old mask isn't wanted. (The others
    // are blocked since the supervisor's main; SIGCONT only here.)
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let wait_flags = libc::WNOHANG
        | if terminal.is_some() {
            libc::WUNTRACED
        } else {
            0
        };
    loop {
        // SAFETY: set is initialized; a NULL info pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig < 0 {
            continue;
        }
        if sig == libc::SIGCONT {
            // The agent took setpgid(0, 0): its pid is its group's.
            // SAFETY: kill with integer arguments.
            unsafe { libc::kill(-agent, libc::SIGCONT) };
            continue;
        }
        if sig != libc::SIGCHLD {
            // kill(-1) from PID 1 reaches every other process of the
            // namespace: the whole sandbox gets what the supervisor got.
            // SAFETY: kill with integer arguments.
            unsafe { libc::kill(-1, sig) };
            continue;
        }
        loop {
            let mut wstatus = 0;
            // SAFETY: wstatus is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut wstatus, wait_flags) };
            if pid <= 0 {
                break;
            }
            if pid == agent && libc::WIFSTOPPED(wstatus) {
                if let Some(t) = terminal {
                    t.stopped();
                }
            } else if pid == agent {
                finish(wstatus, status);
            }
        }
    }
}

/// The agent is gone: end everything else and exit with its status.
fn finish(wstatus: libc::c_int, status: &StatusWriter) -> ! {
    // The raw wait status, for the supervisor's exit record.
    status.send(wstatus);
    // SAFETY: kill and waitpid with integer arguments / a valid pointer.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        let mut s = 0;
        while libc::waitpid(-1, &mut s, 0) > 0 {}
    }
    // SAFETY: _exit ends the init; the kernel then empties the namespace.
    unsafe { libc::_exit(i32::from(super::exit_code(wstatus))) }
}
