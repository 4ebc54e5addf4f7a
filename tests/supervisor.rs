//! The supervisor and the init: signals reach the agent, the exit status is
//! the agent's, `limits.wall_time` ends everything with 124, and nothing of
//! the sandbox outlives it: neither the agent's exit, nor a timeout, nor the
//! supervisor being killed leaves a process behind (DESIGN.md §1, §4, §6).
//!
//! Processes started inside a PID namespace have pids of their own, so the
//! test finds them from the host by a unique token in their argv (a number
//! that `sleep` accepts, e.g. `sleep 1000.123456789`), scanning
//! /proc/*/cmdline. Every process found that way was started by this test;
//! a guard kills any survivor by pid when the test ends, pass or fail.
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

fn pid_ns(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// True when `pid` is PID 1 of its own PID namespace.
fn is_ns_init(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|ids| ids.split_whitespace().last() == Some("1"))
    })
}

/// Cleans up after a test, pass or fail: kills the init of every sandbox
/// (PID namespace) holding a process that mentions the token, which takes
/// the whole namespace with it, and every process carrying the token.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        let own = pid_ns(std::process::id() as i32);
        let sandboxes: Vec<PathBuf> = processes_mentioning(&self.0)
            .into_iter()
            .filter_map(|(pid, _)| pid_ns(pid))
            .filter(|ns| Some(ns) != own.as_ref())
            .collect();
        let inits = processes().into_iter().map(|(pid, _)| pid).filter(|pid| {
            pid_ns(*pid).is_some_and(|ns| sandboxes.contains(&ns)) && is_ns_init(*pid)
        });
        for pid in inits.chain(processes_with_arg(&self.0).into_iter().map(|(pid, _)| pid)) {
            // SAFETY: kill with integer arguments; the pid is a sandbox's
            // init or carries our token.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Waits for the agent to create `path` (it signals readiness that way).
#[track_caller]
fn wait_ready(sb: &mut Sandbox, path: &Path) {
    let ok = poll(Duration::from_secs(10), || path.exists() || !sb.running());
    assert!(
        ok && path.exists(),
        "the agent never created {}:\n{}",
        path.display(),
        if sb.running() {
            "still running".to_string()
        } else {
            show(&sb.output())
        }
    );
}

/// Asserts that no process carries `token` now, or within 5 s.
#[track_caller]
fn assert_none_left(token: &str, what: &str) {
    let gone = poll(Duration::from_secs(5), || {
        processes_with_arg(token).is_empty()
    });
    assert!(gone, "{what}: survivors {:?}", processes_with_arg(token));
}

/// Python run by the agent: double-forks, leaves the session, clears its
/// parent-death signal and sleeps; `sys.argv[1]` is the token (so it stays
/// in its argv), `sys.argv[2]` the file it creates once it is in place.
/// No single quotes: the agent's shell script quotes it with them.
const ESCAPER: &str = r#"
import ctypes, os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
assert ctypes.CDLL(None).prctl(1, 0, 0, 0, 0) == 0  # PR_SET_PDEATHSIG, 0
open(sys.argv[2], "w").close()
time.sleep(1000)
"#;

#[test]
fn killing_supervisor_leaves_no_sandbox_process() {
    if !can_run("killing_supervisor_leaves_no_sandbox_process") {
        return;
    }
    let f = Fixture::new("sup-sigkill");
    let tok = token(1000);
    let _reaper = Reaper(tok.clone());
    let ws = f.ws.display().to_string();
    let script = format!(
        "setsid sh -c 'sleep {tok}' </dev/null >/dev/null 2>&1 &
         python3 -c '{ESCAPER}' {tok} {ws}/py-ready </dev/null >/dev/null 2>&1 &
         while [ ! -e {ws}/py-ready ]; do sleep 0.05; done
         touch {ws}/ready
         while :; do sleep 1; done"
    );
    let mut sb = f.spawn_sh("default", &script);
    wait_ready(&mut sb, &f.ws.join("ready"));

    // Control: both escapees are running and visible from the host by
    // their token, so the check below can see survivors.
    let both = poll(Duration::from_secs(5), || {
        let found = processes_with_arg(&tok);
        let sleep = found.iter().any(|(_, a)| a[0].ends_with("sleep"));
        let python = found.iter().any(|(_, a)| a[0].contains("python"));
        sleep && python
    });
    assert!(
        both,
        "the background processes aren't visible from the host: {:?}",
        processes_with_arg(&tok)
    );
    assert!(sb.running(), "confine ended early:\n{}", show(&sb.output()));

    sb.signal(libc::SIGKILL);
    let o = sb.finish();
    assert_eq!(
        o.status.code(),
        None,
        "confine should have died of SIGKILL:\n{}",
        show(&o)
    );
    assert_none_left(&tok, "the sandbox outlived its SIGKILLed supervisor");
}

#[test]
fn background_processes_die_with_agent_and_status_is_agents() {
    if !can_run("background_processes_die_with_agent_and_status_is_agents") {
        return;
    }
    let f = Fixture::new("sup-bg");
    let tok = token(1000);
    let _reaper = Reaper(tok.clone());
    let ws = f.ws.display().to_string();
    let script = format!(
        "sleep {tok} </dev/null >/dev/null 2>&1 &
         setsid sh -c 'sleep {tok}' </dev/null >/dev/null 2>&1 &
         touch {ws}/ready
         while [ ! -e {ws}/go ]; do sleep 0.05; done
         exit 3"
    );
    let mut sb = f.spawn_sh("default", &script);
    wait_ready(&mut sb, &f.ws.join("ready"));
    // Control: the background sleepers are alive while the agent is.
    let both = poll(Duration::from_secs(5), || {
        processes_with_arg(&tok).len() == 2
    });
    assert!(
        both,
        "the background sleepers aren't running: {:?}",
        processes_with_arg(&tok)
    );

    std::fs::write(f.ws.join("go"), "").unwrap();
    let o = sb.finish();
    assert_status(&o, 3);
    assert_none_left(&tok, "background processes outlived the agent");
}

/// The agent traps `signame` and exits with `code`; confine, sent `sig`
/// once the agent is ready, must pass it on and return that code.
fn forwards(test: &str, sig: libc::c_int, signame: &str, code: i32) {
    if !can_run(test) {
        return;
    }
    let f = Fixture::new(test);
    let ws = f.ws.display().to_string();
    let script = format!(
        "trap 'exit {code}' {signame}
         touch {ws}/ready
         while :; do sleep 0.1; done"
    );
    let mut sb = f.spawn_sh("default", &script);
    wait_ready(&mut sb, &f.ws.join("ready"));
    // Control: the agent loops forever unless the signal arrives.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        sb.running(),
        "the agent ended on its own:\n{}",
        show(&sb.output())
    );
    sb.signal(sig);
    let o = sb.finish();
    assert_status(&o, code);
}

#[test]
fn sigterm_reaches_agent() {
    forwards("sigterm_reaches_agent", libc::SIGTERM, "TERM", 7);
}

#[test]
fn sigint_reaches_agent() {
    forwards("sigint_reaches_agent", libc::SIGINT, "INT", 8);
}

#[test]
fn sighup_reaches_agent() {
    forwards("sighup_reaches_agent", libc::SIGHUP, "HUP", 9);
}

#[test]
fn sigquit_reaches_agent() {
    forwards("sigquit_reaches_agent", libc::SIGQUIT, "QUIT", 10);
}

#[test]
fn sigwinch_reaches_agent() {
    forwards("sigwinch_reaches_agent", libc::SIGWINCH, "WINCH", 11);
}

const WALL_TIME: &str = "version: 1
name: wall-time
extends: default
limits:
  wall_time: 1s
  grace: 500ms
";

#[test]
fn wall_time_kills_agent_that_ignores_sigterm() {
    if !can_run("wall_time_kills_agent_that_ignores_sigterm") {
        return;
    }
    let f = Fixture::new("sup-wall-ignore");
    let profile = f.profile("wall", WALL_TIME);
    let tok = token(1000);
    let _reaper = Reaper(tok.clone());
    let ws = f.ws.display().to_string();
    // The shell notes SIGTERM and carries on; the sleeper ignores it (SIG_IGN
    // is inherited across exec): only the SIGKILL after `grace` ends them.
    let script = format!(
        "trap 'echo term >> {ws}/got' TERM
         (trap '' TERM; exec sleep {tok}) </dev/null >/dev/null 2>&1 &
         touch {ws}/ready
         while :; do sleep 0.1; done"
    );
    let mut sb = f.spawn_sh(profile.to_str().unwrap(), &script);
    wait_ready(&mut sb, &f.ws.join("ready"));
    // Control: the background sleeper is running (seen before confine ends).
    let seen = poll(Duration::from_secs(5), || {
        !processes_with_arg(&tok).is_empty() || !sb.running()
    });
    assert!(
        seen && !processes_with_arg(&tok).is_empty(),
        "the background sleeper never ran"
    );

    let o = sb.finish();
    assert_status(&o, 124);
    // SIGTERM came first and didn't end it; the SIGKILL after grace did.
    let got = std::fs::read_to_string(f.ws.join("got")).unwrap_or_default();
    assert!(got.contains("term"), "the agent never saw SIGTERM: {got:?}");
    assert_none_left(&tok, "processes outlived wall_time");
}

#[test]
fn wall_time_agent_honouring_sigterm_still_gives_124() {
    if !can_run("wall_time_agent_honouring_sigterm_still_gives_124") {
        return;
    }
    let f = Fixture::new("sup-wall-honour");
    let profile = f.profile("wall", WALL_TIME);
    let tok = token(1000);
    let _reaper = Reaper(tok.clone());
    let ws = f.ws.display().to_string();
    let script = format!(
        "trap 'touch {ws}/got-term; exit 0' TERM
         sleep {tok} </dev/null >/dev/null 2>&1 &
         touch {ws}/ready
         while :; do sleep 0.1; done"
    );
    let mut sb = f.spawn_sh(profile.to_str().unwrap(), &script);
    wait_ready(&mut sb, &f.ws.join("ready"));
    let o = sb.finish();
    assert_status(&o, 124);
    // The agent was asked to stop (SIGTERM first) and exited 0 by itself,
    // yet the status says the time ran out.
    assert!(
        f.ws.join("got-term").exists(),
        "the agent never got SIGTERM:\n{}",
        show(&o)
    );
    assert_none_left(&tok, "processes outlived wall_time");
}

#[test]
fn wall_time_not_reached_returns_agents_status() {
    if !can_run("wall_time_not_reached_returns_agents_status") {
        return;
    }
    let f = Fixture::new("sup-wall-control");
    let profile = f.profile("wall", WALL_TIME);
    let o = f.sh(profile.to_str().unwrap(), "exit 5");
    assert_status(&o, 5);
}

#[test]
fn exit_status_is_agents_not_an_orphans() {
    if !can_run("exit_status_is_agents_not_an_orphans") {
        return;
    }
    let f = Fixture::new("sup-orphan");
    let ws = f.ws.display().to_string();

    // Control: the background job does exit 9 when waited for.
    let o = f.sh("default", "(sleep 0.2; exit 9) & wait $!");
    assert_status(&o, 9);

    // It outlives the agent (and is killed): the status is the agent's.
    let o = f.sh("default", "(sleep 0.2; exit 9) & exit 4");
    assert_status(&o, 4);

    // A true orphan (reparented to the init) that exits 9 while the agent
    // is still running: the init reaps it and must not take its status.
    let script = format!(
        "( (touch {ws}/orphan-ran; exit 9) & )
         while [ ! -e {ws}/orphan-ran ]; do sleep 0.05; done
         sleep 0.2
         exit 4"
    );
    let o = f.sh("default", &script);
    assert_status(&o, 4);
    assert!(f.ws.join("orphan-ran").exists());
}

/// Finding 2 of the reliability review: the supervisor must enforce
/// `wall_time` while the sandbox is still being set up (a grant on a hung
/// network filesystem). The hang is made by stopping the init (SIGSTOP)
/// before it has started the agent; confine must still end by itself at
/// `wall_time` + `grace`, with 124, and the agent never runs.
#[test]
fn wall_time_runs_while_setup_hangs() {
    if !can_run("wall_time_runs_while_setup_hangs") {
        return;
    }
    let f = Fixture::new("setup-hang");
    let p = f.profile(
        "wall",
        "version: 1\nextends: default\nlimits: {wall_time: 1s, grace: 1s}\n",
    );
    let marker = f.ws.join("agent-ran");
    let script = format!("touch {}; sleep 30", marker.display());
    for _attempt in 0..20 {
        let mut sb = f.spawn_sh(p.to_str().unwrap(), &script);
        let sup = sb.pid();
        // Catch the init as soon as it exists (its setup takes milliseconds).
        let start = std::time::Instant::now();
        let mut init = None;
        while init.is_none() && start.elapsed() < Duration::from_secs(2) {
            init = std::fs::read_to_string(format!("/proc/{sup}/task/{sup}/children"))
                .ok()
                .and_then(|k| k.split_whitespace().next()?.parse::<i32>().ok());
        }
        let init = init.expect("the sandbox's init appears");
        // SAFETY: kill of a process this test started (the init is confine's
        // child, and confine is ours); not reaped while confine runs.
        unsafe { libc::kill(init, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(100));
        if marker.exists() {
            // Too late: the agent already ran. Try again.
            drop(sb);
            let _ = std::fs::remove_file(&marker);
            continue;
        }
        // The setup is stuck for good; wall_time must end it.
        let ended = poll(Duration::from_secs(15), || !sb.running());
        if !ended {
            // SAFETY: as above; let the test's guard reap it.
            unsafe { libc::kill(init, libc::SIGKILL) };
        }
        assert!(ended, "confine did not end while the setup hung");
        let o = sb.output();
        assert_status(&o, 124);
        assert!(!marker.exists(), "the agent must not run\n{}", show(&o));
        return;
    }
    panic!("could not stop the init during its setup in 20 attempts");
}
