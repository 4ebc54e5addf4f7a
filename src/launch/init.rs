//! The init: PID 1 of the sandbox's PID namespace.
//!
//! It applies DESIGN.md §4 steps 6–11 to itself, in that order, so it is
//! confined exactly like the agent; then it forks the agent (step 12) and
//! stays behind to reap orphans, forward the supervisor's signals to every
//! process in the sandbox, and exit with the agent's status. When it exits
//! the kernel kills whatever is left in the namespace.
//!
//! It runs as a forked copy of the single-threaded supervisor, so it may use
//! the heap; every failure is reported on the error pipe and ends it with 125
//! before anything of the command runs.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::agent::{self, ExecArgs};
use super::report;
use crate::plan::Plan;
use crate::profile::NetworkMode;
use crate::sandbox::{caps::Caps, landlock, limits, mounts, namespaces, process, seccomp, user};

/// Everything the init needs, prepared by the supervisor before the fork.
pub struct InitArgs<'a> {
    pub plan: &'a Plan,
    /// What the supervisor found at each path of the mount view.
    pub expect: &'a mounts::Expect,
    pub caps: Caps,
    pub rlimits: limits::Rlimits,
    pub exec: ExecArgs,
    /// Signals the supervisor forwards; blocked since before the fork.
    pub forwarded: &'a [libc::c_int],
}

/// Reports `why` for `step` and ends the init with 125.
fn fail(err: RawFd, step: &str, why: impl std::fmt::Display) -> ! {
    report::refused(err, step, &why.to_string());
    // SAFETY: _exit ends this process; nothing of the command has run.
    unsafe { libc::_exit(125) }
}

/// True while the supervisor holds the write end of `alive`.
fn supervisor_alive(alive: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd: alive,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: p is a valid pollfd; timeout 0 doesn't block.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r == 0
}

fn die_with_supervisor(err: RawFd, alive: RawFd) {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        fail(err, "pdeathsig", std::io::Error::last_os_error());
    }
    // The supervisor may have died before PDEATHSIG was armed.
    if !supervisor_alive(alive) {
        // SAFETY: as in `fail`.
        unsafe { libc::_exit(125) };
    }
}

/// Runs the init; never returns.
/// The init's ends of the pipes to the supervisor.
pub struct Pipes {
    /// Why the command never ran ([`report`]).
    pub err: OwnedFd,
    /// Readable end of a pipe the supervisor holds open while it lives.
    pub alive: OwnedFd,
    /// The agent's raw wait status, written once at the end.
    pub status: OwnedFd,
    /// End of file here means the supervisor has finished setting us up
    /// from outside (uid/gid maps).
    pub go: OwnedFd,
}

pub fn run(a: InitArgs, pipes: Pipes) -> ! {
    let Pipes {
        err: err_fd,
        alive: alive_fd,
        status: status_fd,
        go,
    } = pipes;
    // Wait for the supervisor; if it died instead, the read also ends.
    let mut b = [0u8; 1];
    // SAFETY: b is a valid buffer; go is our pipe's read end.
    while unsafe { libc::read(go.as_raw_fd(), b.as_mut_ptr().cast(), 1) } < 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
    drop(go);
    let err = err_fd.as_raw_fd();
    // Now inside the sandbox's cgroup (the supervisor moved us before
    // releasing us): a cgroup namespace rooted here hides the host's tree.
    // SAFETY: unshare with a flag only.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        fail(
            err,
            "namespaces",
            format!("cgroup namespace: {}", std::io::Error::last_os_error()),
        );
    }
    let alive = alive_fd.as_raw_fd();
    let plan = a.plan;

    // Step 4: our own session (no controlling terminal: TIOCSTI can't reach
    // the caller's), and death with the supervisor.
    // SAFETY: setsid has no memory arguments.
    if unsafe { libc::setsid() } < 0 {
        fail(err, "setsid", std::io::Error::last_os_error());
    }
    die_with_supervisor(err, alive);
    // The init shares the agent's uid: nothing of the host environment or
    // confine's command line may be readable through /proc/1.
    if let Err(e) = hide_identity() {
        fail(
            err,
            "init",
            format!("scrubbing the init's argv and environment: {e}"),
        );
    }

    // No executable memfds (through /proc/sys, before the view's /proc is read-only).
    crate::sandbox::memfd::apply(plan.memfd).unwrap_or_else(|e| fail(err, "memfd", e));

    // Step 6: the mount view, before Landlock forbids mount changes.
    if let Err(e) = mounts::build(&plan.filesystem.mounts, a.expect) {
        fail(err, "mounts", e);
    }

    // Step 7: network, hostname, rlimits.
    if plan.network.mode == NetworkMode::Loopback {
        if let Err(e) = namespaces::loopback_up() {
            fail(err, "network", format!("bringing lo up: {e}"));
        }
    }
    if let Err(e) = namespaces::set_hostname("confine") {
        fail(err, "hostname", e);
    }
    if let Err(e) = limits::apply(&a.rlimits) {
        fail(err, "rlimits", e);
    }

    // Step 8: Landlock rules bind to what is mounted now, and the paths are
    // still traversable as root.
    // ABI 0 (no Landlock) only reaches here under `compat: best-effort`.
    let ruleset = if plan.landlock.abi == 0 {
        None
    } else {
        match landlock::prepare(&plan.landlock.spec) {
            Ok(r) => Some(r),
            Err(e) => fail(err, "landlock", e),
        }
    };

    // Step 9: inherited descriptors never reach the agent. CLOEXEC rather
    // than close: the ruleset and the error pipe are still needed here.
    if let Err(e) = process::cloexec_from(3) {
        fail(err, "close_range", e);
    }

    // Step 10: credentials, in the order that leaves nothing to regain.
    let c = &a.caps;
    let step = c
        .drop_bounding()
        .and_then(|_| c.raise_ambient())
        .and_then(|_| c.lock_securebits());
    if let Err(e) = step {
        fail(err, "capabilities", e);
    }
    if let Err(e) = user::switch(&plan.user.ids) {
        fail(err, "user", e);
    }
    if let Err(e) = c.clear().and_then(|_| c.verify()) {
        fail(err, "capabilities", e);
    }
    // Credential changes reset PDEATHSIG, and dumpable (to
    // fs.suid_dumpable, which may be 1).
    die_with_supervisor(err, alive);
    if let Err(e) = process::set_undumpable() {
        fail(err, "dumpable", e);
    }

    // The agent's stack, while it shares our memory until its execve:
    // mapped before seccomp, after which nothing here allocates.
    let mut agent_stack = agent::Stack::new().unwrap_or_else(|e| fail(err, "agent stack", e));

    // Step 11: no_new_privs, Landlock, seccomp last.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        fail(err, "no_new_privs", std::io::Error::last_os_error());
    }
    if let Some(Err(e)) = ruleset.map(|r| r.restrict_self()) {
        fail(err, "landlock", e);
    }
    // The ruleset is used: from here on the init holds only the stdio it
    // hands to the agent and its pipes to the supervisor. Not the audit
    // log, not the caller's other descriptors, for the whole run.
    if let Err(e) = process::close_all_except(&[0, 1, 2, err, alive, status_fd.as_raw_fd()]) {
        fail(err, "close_range", e);
    }
    let log = plan.seccomp.on_violation == crate::profile::OnViolation::Log;
    if let Err(e) = seccomp::install(&plan.seccomp.filters.allowlist, log) {
        fail(err, "seccomp", format!("installing the allowlist: {e}"));
    }
    if let Err(e) = seccomp::install(&plan.seccomp.filters.denylist, log) {
        fail(err, "seccomp", format!("installing the denylist: {e}"));
    }

    // Step 12 happens in the agent.
    let agent = match agent::spawn(&a.exec, err, agent_stack.usable()) {
        Ok(pid) => pid,
        Err(e) => fail(err, "fork", e),
    };
    // Only the agent may hold the error pipe now: its execve closes it and
    // the supervisor sees end of file. Its stdio is its own from here on.
    drop(err_fd);
    drop(alive_fd);
    process::close_stdio();
    supervise(agent, a.forwarded, status_fd.as_raw_fd())
}

/// Makes the init unreadable through /proc (not dumpable: /proc/1/environ,
/// mem, fd... need ptrace rights the agent doesn't have) and blanks the
/// memory behind /proc/1/cmdline and /proc/1/environ, which stays readable
/// by anyone. The plan holds copies of everything the agent needs.
fn hide_identity() -> std::io::Result<()> {
    // Again after the uid switch, which resets it.
    process::set_undumpable()?;
    // Into a buffer on the stack: the file is 52 numbers and a name of at
    // most 64 bytes, and read_to_string's size probe and growing reads cost
    // five more system calls.
    let mut buf = [0u8; 2048];
    let mut len = 0;
    let mut f = std::fs::File::open("/proc/self/stat")?;
    loop {
        match std::io::Read::read(&mut f, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if len == buf.len() {
            return Err(std::io::Error::other("/proc/self/stat is too long"));
        }
    }
    drop(f);
    // Fields after the command name, which may itself hold spaces or ')'.
    let rest = buf[..len]
        .iter()
        .rposition(|&b| b == b')')
        .map_or(&[][..], |i| &buf[i + 1..len]);
    let fields: Vec<usize> = rest
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .map(|f| {
            std::str::from_utf8(f)
                .ok()
                .and_then(|f| f.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    // arg_start..env_end are fields 48 to 51 (Linux 3.5); `rest` starts at
    // field 3. Without them nothing could be blanked: refuse.
    if fields.len() < 51 - 2 {
        return Err(std::io::Error::other(
            "no argv and environment bounds in /proc/self/stat",
        ));
    }
    let get = |n: usize| fields[n - 3];
    for (start, end) in [(get(48), get(49)), (get(50), get(51))] {
        if start != 0 && end > start && end - start < (1 << 24) {
            // SAFETY: [start, end) is this process's own argv or environment
            // block on its stack, as the kernel reports it; it is mapped and
            // writable, and nothing reads it after this point (the plan owns
            // copies of everything the agent needs).
            unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
        }
    }
    Ok(())
}

/// The init's life after the fork: wait for signals, forward the
/// supervisor's to every process in the sandbox, reap everything, and exit
/// with the agent's status once it is gone.
fn supervise(agent: libc::pid_t, forwarded: &[libc::c_int], status_fd: RawFd) -> ! {
    // SAFETY: sigset operations on a local, fully initialized set.
    let set = unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigaddset(&mut s, libc::SIGCHLD);
        for &sig in forwarded {
            libc::sigaddset(&mut s, sig);
        }
        s
    };
    loop {
        // SAFETY: set is initialized; a NULL info pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig < 0 {
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
            let mut status = 0;
            // SAFETY: status is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == agent {
                finish(status, status_fd);
            }
        }
    }
}

/// The agent is gone: end everything else and exit with its status.
fn finish(status: libc::c_int, status_fd: RawFd) -> ! {
    // The raw wait status, for the supervisor's exit record: our own exit
    // code can't tell `exit 130` from death by SIGINT.
    let raw = status.to_ne_bytes();
    // SAFETY: kill, waitpid and write with integer arguments / valid pointers.
    unsafe {
        libc::write(status_fd, raw.as_ptr().cast(), raw.len());
        libc::kill(-1, libc::SIGKILL);
        let mut s = 0;
        while libc::waitpid(-1, &mut s, 0) > 0 {}
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    };
    // SAFETY: _exit ends the init; the kernel then empties the namespace.
    unsafe { libc::_exit(code) }
}
