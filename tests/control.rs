//! Control of running sandboxes (DESIGN.md §12): `confine ps`, `stop`,
//! `kill`, `freeze`, `thaw`, `stats`, the control socket only root and the
//! launcher may use, stale runtime directories cleaned, and a supervisor
//! loop that misbehaving clients can't stall.
//!
//! `--all` acts on every sandbox the caller may control, and root may
//! control every sandbox on the machine: so `kill --all` is tested as the
//! agent's uid with a runtime directory of the test's own
//! (`XDG_RUNTIME_DIR` in the fixture), where only this test's sandboxes
//! are. Everything else acts on ids the test read from its own sandboxes'
//! audit logs. Processes are found on the host by a unique token in their
//! argv (`sleep TOKEN`); a guard kills survivors by pid.
mod common;
use common::*;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Kills, by pid, every process carrying the token when the test ends.
struct Reaper(Vec<String>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for t in &self.0 {
            for (pid, _) in processes_with_arg(t) {
                // SAFETY: kill with integer arguments; the pid carries our token.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn confine(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `confine ARGS` as the agent's uid with `XDG_RUNTIME_DIR=rt`.
fn confine_as_agent(rt: Option<&Path>, args: &[&str]) -> Output {
    let mut c = setpriv_as_agent();
    c.arg("--").arg(bin()).args(args).env("PATH", PATH);
    c.env_remove("XDG_RUNTIME_DIR");
    if let Some(rt) = rt {
        c.env("XDG_RUNTIME_DIR", rt);
    }
    c.current_dir("/").stdin(Stdio::null()).output().unwrap()
}

/// A profile writing its audit log to `log`, plus `extra` YAML lines.
fn profile(f: &Fixture, name: &str, log: &Path, extra: &str) -> String {
    f.profile(
        name,
        &format!(
            "version: 1\nextends: default\naudit: {{log: \"{}\"}}\n{extra}",
            log.display()
        ),
    )
    .display()
    .to_string()
}

/// The audit log's records.
fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The sandbox id, from the `launch` record.
fn id_of(log: &Path) -> String {
    poll_for(Duration::from_secs(10), || {
        records(log)
            .iter()
            .find(|r| r["event"] == "launch")
            .and_then(|r| r["sandbox"].as_str().map(str::to_string))
    })
    .expect("a launch record")
}

/// `confine ps --json` (as root): the rows.
fn ps() -> Vec<serde_json::Value> {
    let o = confine(&["ps", "--json"]);
    assert_status(&o, 0);
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
}

fn row(id: &str) -> Option<serde_json::Value> {
    ps().into_iter().find(|r| r["id"] == id)
}

/// Waits until `confine ps` lists `id` (its control socket is up).
#[track_caller]
fn wait_listed(id: &str, sb: &mut Sandbox) -> serde_json::Value {
    let r = poll_for(Duration::from_secs(10), || {
        row(id).or_else(|| (!sb.running()).then_some(serde_json::Value::Null))
    });
    match r {
        Some(r) if !r.is_null() => r,
        _ => panic!("{id} never listed by confine ps\n{}", show(&sb.finish())),
    }
}

fn runtime_dir(id: &str) -> PathBuf {
    PathBuf::from("/run/confine/sandboxes").join(id)
}

#[test]
fn ps_lists_sandboxes_and_only_root_and_the_launcher_control_them() {
    if !can_run("ps_lists_sandboxes_and_only_root_and_the_launcher_control_them") {
        return;
    }
    let f = Fixture::new("control-ps");
    let t = token(1000);
    let _reaper = Reaper(vec![t.clone()]);
    let (log1, log2) = (f.root.join("a.jsonl"), f.root.join("b.jsonl"));
    let p1 = profile(&f, "a", &log1, "");
    let p2 = profile(&f, "b", &log2, "limits: {pids: 1000}\n");
    let mut a = f.spawn(&p1, &["sleep", &t]);
    let mut b = f.spawn(&p2, &["sleep", &t]);
    let (ida, idb) = (id_of(&log1), id_of(&log2));
    let ra = wait_listed(&ida, &mut a);
    let rb = wait_listed(&idb, &mut b);
    assert_eq!(ra["pid"], a.pid(), "{ra}");
    assert_eq!(rb["pid"], b.pid(), "{rb}");
    assert_eq!((&ra["uid"], &ra["state"]), (&0.into(), &"running".into()));
    assert_eq!(ra["command"], serde_json::json!(["sleep", t]));
    // What each uses now: from /proc without a cgroup (a), from its cgroup
    // (b); no network use outside proxy mode.
    // (memory of a cgroup needs the memory controller, which a pids limit
    // alone doesn't bring).
    // The agent may not have started when the row first shows: wait for
    // the init and the agent.
    let both = |id: &str| {
        poll_for(Duration::from_secs(10), || {
            row(id).filter(|r| r["processes"] == 2 && r["pids"] != 1)
        })
        .unwrap_or_else(|| panic!("{id}: {:?}", row(id)))
    };
    let (ra, rb) = (both(&ida), both(&idb));
    for r in [&ra, &rb] {
        assert!(r["cpu_usage_usec"].as_u64().is_some(), "{r}");
        assert!(r["network"].is_null(), "{r}");
    }
    assert!(ra["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{ra}");
    assert_eq!(rb["pids"], 2, "{rb}");
    let text = stdout(&confine(&["ps"]));
    assert!(
        text.contains(&ida[..12]) && text.contains(&idb[..12]),
        "{text}"
    );

    // Another uid sees none of them, and can't stop them: with its own
    // runtime directory, or with none.
    let rt = f.root.join("agent-rt");
    std::fs::create_dir(&rt).unwrap();
    std::os::unix::fs::chown(&rt, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    for dir in [Some(rt.as_path()), None] {
        let o = confine_as_agent(dir, &["ps", "--json"]);
        assert_status(&o, 0);
        assert_eq!(stdout(&o).trim(), "[]", "{}", show(&o));
        let o = confine_as_agent(dir, &["stop", &ida]);
        assert_status(&o, 1);
        assert!(stderr(&o).contains("no such sandbox"), "{}", show(&o));
        let o = confine_as_agent(dir, &["kill", "--all"]);
        assert_status(&o, 0);
    }
    assert!(a.running() && b.running());

    // Even through the socket itself, opened up by mistake: the supervisor
    // checks who connects (SO_PEERCRED) and refuses.
    let o = {
        let _open = OpenedUp::new(&ida);
        let mut c = setpriv_as_agent()
            .arg("--")
            .args(["/usr/bin/socat", "-t5", "-"])
            .arg(format!(
                "UNIX-CONNECT:{}",
                runtime_dir(&ida).join("control").display()
            ))
            .env("PATH", PATH)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(b"{\"op\":\"kill\"}\n")
            .unwrap();
        c.wait_with_output().unwrap()
    };
    assert!(
        stdout(&o).contains("may not control"),
        "the agent's uid wasn't refused by the supervisor: {}",
        show(&o)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(a.running(), "a refused kill killed the sandbox");

    // The control: root (here also the launcher) may, by a unique prefix.
    let o = confine(&["kill", &ida[..8]]);
    assert_status(&o, 0);
    assert!(!a.running(), "kill returned before the supervisor ended");
    assert!(row(&ida).is_none() && !runtime_dir(&ida).exists());
    assert!(row(&idb).is_some());
    let o = confine(&["stop", &idb]);
    assert_status(&o, 0);
    assert!(!b.running());
    assert!(processes_with_arg(&t).is_empty());

    // Each action is a control record: who asked, and the outcome.
    let control: Vec<_> = records(&log1)
        .into_iter()
        .filter(|r| r["event"] == "control")
        .collect();
    assert_eq!(control.len(), 2, "{control:?}");
    assert_eq!(control[0]["uid"], AGENT_UID);
    assert!(control[0]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("refused"));
    assert_eq!(
        (&control[1]["uid"], &control[1]["action"]),
        (&0.into(), &"kill".into())
    );
    let exit = records(&log1)
        .into_iter()
        .find(|r| r["event"] == "exit")
        .unwrap();
    assert_eq!(exit["reason"], "killed", "{exit}");

    // No such sandbox: 1; a bad id: 125.
    assert_status(&confine(&["stop", &ida]), 1);
    assert_status(&confine(&["freeze", "not-an-id!"]), 125);
    assert_status(&confine(&["stop"]), 125);
}

/// Makes a sandbox's socket reachable by anyone for as long as it lives
/// (as a misconfiguration would), and restores the modes after.
/// One at a time: two tests opening up the shared directories at once
/// could each restore the other's modes.
struct OpenedUp(
    Vec<(PathBuf, u32)>,
    #[allow(dead_code)] std::sync::MutexGuard<'static, ()>,
);

static OPENING: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl OpenedUp {
    fn new(id: &str) -> OpenedUp {
        use std::os::unix::fs::PermissionsExt;
        let guard = OPENING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = runtime_dir(id);
        let paths = [
            PathBuf::from("/run/confine"),
            PathBuf::from("/run/confine/sandboxes"),
            dir.clone(),
            dir.join("control"),
        ];
        let mut saved = Vec::new();
        for (p, mode) in paths.iter().zip([0o711, 0o711, 0o711, 0o777]) {
            let old = std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
            saved.push((p.clone(), old));
        }
        OpenedUp(saved, guard)
    }
}

impl Drop for OpenedUp {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        for (p, mode) in self.0.iter().rev() {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(*mode));
        }
    }
}

#[test]
fn stop_of_200_processes_some_ignoring_term_leaves_none() {
    if !can_run("stop_of_200_processes_some_ignoring_term_leaves_none") {
        return;
    }
    let f = Fixture::new("control-stop");
    let (t, ti) = (token(1000), token(1000));
    let _reaper = Reaper(vec![t.clone(), ti.clone()]);
    let log = f.root.join("log.jsonl");
    let p = profile(&f, "p", &log, "limits: {pids: 2000}\n");
    let mut sb = f.spawn_sh(
        &p,
        &format!(
            "for i in $(seq 100); do sleep {t} & done; \
             for i in $(seq 100); do (trap '' TERM; exec sleep {ti}) & done; wait"
        ),
    );
    let id = id_of(&log);
    let count = || processes_with_arg(&t).len() + processes_with_arg(&ti).len();
    assert!(
        poll(Duration::from_secs(30), || count() == 200),
        "200 processes never ran: {}",
        count()
    );
    let cgroups: Vec<String> = confine_cgroups()
        .into_iter()
        .filter(|c| c.ends_with(&id))
        .collect();
    assert!(!cgroups.is_empty(), "the sandbox has no cgroup");
    let o = confine(&["stop", &id, "--grace", "1s"]);
    assert_status(&o, 0);
    // No waiting: when stop returns, nothing of the sandbox is left.
    assert_eq!(count(), 0, "processes left after stop returned");
    assert!(!sb.running(), "stop returned before the supervisor ended");
    for c in &cgroups {
        assert!(!Path::new(c).exists(), "{c} left after stop");
    }
    let exit = records(&log)
        .into_iter()
        .find(|r| r["event"] == "exit")
        .unwrap();
    assert_eq!(exit["reason"], "killed", "{exit}");
}

#[test]
fn kill_all_with_three_sandboxes_running_leaves_none() {
    if !can_run("kill_all_with_three_sandboxes_running_leaves_none") {
        return;
    }
    let f = Fixture::new("control-killall");
    let rt = f.root.join("rt");
    std::fs::create_dir(&rt).unwrap();
    std::os::unix::fs::chown(&rt, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    std::fs::set_permissions(&rt, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let tokens: Vec<String> = (0..3).map(|_| token(1000)).collect();
    let _reaper = Reaper(tokens.clone());
    // Launched by the agent's uid (user namespaces, no cgroup: signals
    // through the init's pidfd), each running a few processes.
    let mut children: Vec<std::process::Child> = tokens
        .iter()
        .map(|t| {
            let mut c = setpriv_as_agent();
            c.arg("--")
                .arg(bin())
                .args(["run", "-w"])
                .arg(&f.ws)
                .args(["--", "/bin/sh", "-c"])
                .arg(format!("sleep {t} & sleep {t} & sleep {t}"))
                .env("PATH", PATH)
                .env("XDG_RUNTIME_DIR", &rt)
                .current_dir(&f.ws)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let listed = || {
        let o = confine_as_agent(Some(&rt), &["ps", "--json"]);
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
            .map(|v| v.len())
            .unwrap_or(0)
    };
    let all_up = || tokens.iter().all(|t| processes_with_arg(t).len() == 3);
    assert!(
        poll(Duration::from_secs(20), || listed() == 3 && all_up()),
        "three sandboxes never ran"
    );
    let o = confine_as_agent(Some(&rt), &["kill", "--all"]);
    assert_status(&o, 0);
    for t in &tokens {
        assert!(
            processes_with_arg(t).is_empty(),
            "a process of {t} survived kill --all"
        );
    }
    for c in &mut children {
        assert!(
            c.try_wait().unwrap().is_some(),
            "a supervisor survived kill --all"
        );
    }
    assert_eq!(listed(), 0);
    // The control: the root's kill --all isn't needed, and nothing is left
    // in the test's runtime directory.
    assert_eq!(
        std::fs::read_dir(rt.join("confine/sandboxes"))
            .unwrap()
            .count(),
        0
    );
}

/// utime + stime (ticks) of every process in a v1 or v2 cgroup directory.
fn cpu_ticks(cgroup: &Path) -> u64 {
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
    procs
        .split_whitespace()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|s| {
            let rest = &s[s.rfind(')').unwrap() + 1..];
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|w| w.parse().unwrap_or(0))
                .collect();
            f[11] + f[12]
        })
        .sum()
}

#[test]
fn freeze_stops_cpu_use_and_thaw_resumes_without_a_gap() {
    if !can_run("freeze_stops_cpu_use_and_thaw_resumes_without_a_gap") {
        return;
    }
    let have_freezer = Path::new("/sys/fs/cgroup/freezer/freezer.state").exists()
        || Path::new("/sys/fs/cgroup/freezer/cgroup.procs").exists()
        || Path::new("/sys/fs/cgroup/cgroup.freeze").exists()
        || Path::new("/sys/fs/cgroup/cgroup.subtree_control").exists();
    if !have_freezer
        && !skip_or_fail(
            "freeze_stops_cpu_use_and_thaw_resumes_without_a_gap",
            "no cgroup v1 freezer hierarchy and no cgroup v2 at /sys/fs/cgroup",
        )
    {
        return;
    }
    let f = Fixture::new("control-freeze");
    let log = f.root.join("log.jsonl");
    let p = profile(&f, "p", &log, "limits: {pids: 100, wall_time: 60s}\n");
    // A counter: each line the next number, so a gap would show.
    let mut sb = f.spawn_sh(
        &p,
        "i=0; while :; do i=$((i+1)); [ $((i % 1000)) -eq 0 ] && echo $i >> count; done",
    );
    let id = id_of(&log);
    let r = wait_listed(&id, &mut sb);
    let dirs: Vec<PathBuf> = r["cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    let dir = dirs[0].clone();
    let counted = || {
        std::fs::read_to_string(f.ws.join("count"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(poll(Duration::from_secs(10), || counted() > 2));

    let o = confine(&["freeze", &id]);
    assert_status(&o, 0);
    assert_eq!(row(&id).unwrap()["state"], "frozen");
    let (ticks, lines) = (cpu_ticks(&dir), counted());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cpu_ticks(&dir), ticks, "a frozen sandbox used CPU");
    assert_eq!(counted(), lines, "a frozen sandbox wrote");
    let o = confine(&["stats", &id, "--json"]);
    assert_status(&o, 0);
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&stats["state"], &stats["source"]),
        (&"frozen".into(), &"cgroup".into())
    );
    assert!(stats["processes"].as_u64().unwrap() >= 2, "{stats}");

    let o = confine(&["thaw", &id]);
    assert_status(&o, 0);
    assert!(
        poll(Duration::from_secs(10), || counted() > lines + 2),
        "thaw didn't resume the counter"
    );
    assert!(
        poll(Duration::from_secs(10), || cpu_ticks(&dir) > ticks),
        "a thawed sandbox used no CPU"
    );
    // Nothing lost: the counter went on from where it stopped.
    let text = std::fs::read_to_string(f.ws.join("count")).unwrap();
    for (n, l) in text.lines().enumerate() {
        assert_eq!(
            l,
            ((n + 1) * 1000).to_string(),
            "a gap in the count at line {}",
            n + 1
        );
    }

    // A frozen sandbox is stopped too (it is thawed to die).
    assert_status(&confine(&["freeze", &id]), 0);
    let o = confine(&["stop", &id, "--grace", "1s"]);
    assert_status(&o, 0);
    assert!(!sb.running());
    let control: Vec<String> = records(&log)
        .into_iter()
        .filter(|r| r["event"] == "control")
        .map(|r| {
            format!(
                "{} {}",
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        control,
        ["freeze done", "thaw done", "freeze done", "stop stopping"]
    );
}

#[test]
fn freeze_without_a_cgroup_is_refused_saying_why() {
    if !can_run("freeze_without_a_cgroup_is_refused_saying_why") {
        return;
    }
    let f = Fixture::new("control-nocg");
    let t = token(1000);
    let _reaper = Reaper(vec![t.clone()]);
    let log = f.root.join("log.jsonl");
    let p = profile(&f, "p", &log, "");
    let mut sb = f.spawn(&p, &["sleep", &t]);
    let id = id_of(&log);
    wait_listed(&id, &mut sb);
    let o = confine(&["freeze", &id]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("has no cgroup"), "{}", show(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", show(&o));
    // What exists without one: /proc's view of the PID namespace.
    let o = confine(&["stats", &id, "--json"]);
    assert_status(&o, 0);
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&stats["source"], &stats["processes"]),
        (&"proc".into(), &2.into()),
        "{stats}"
    );
    assert_status(&confine(&["kill", &id]), 0);
    assert!(!sb.running());
    assert!(processes_with_arg(&t).is_empty());
}

#[test]
fn stale_runtime_dirs_of_killed_supervisors_are_cleaned() {
    if !can_run("stale_runtime_dirs_of_killed_supervisors_are_cleaned") {
        return;
    }
    let f = Fixture::new("control-stale");
    let t = token(1000);
    let _reaper = Reaper(vec![t.clone()]);
    for cleaner in ["ps", "gc"] {
        let log = f.root.join(format!("{cleaner}.jsonl"));
        let p = profile(&f, cleaner, &log, "");
        let mut sb = f.spawn(&p, &["sleep", &t]);
        let id = id_of(&log);
        wait_listed(&id, &mut sb);
        sb.signal(libc::SIGKILL);
        assert!(poll(Duration::from_secs(10), || !sb.running()));
        assert!(
            runtime_dir(&id).exists(),
            "the control: a SIGKILLed supervisor leaves it"
        );
        let o = confine(&[cleaner]);
        assert_status(&o, 0);
        assert!(
            !runtime_dir(&id).exists(),
            "{cleaner} left {id}'s directory"
        );
        if cleaner == "gc" {
            assert!(stdout(&o).contains(&id), "{}", show(&o));
        } else {
            assert!(!stdout(&o).contains(&id[..12]), "{}", show(&o));
        }
    }
    assert!(poll(Duration::from_secs(10), || processes_with_arg(&t)
        .is_empty()));
}

#[test]
fn misbehaving_control_clients_dont_stall_the_supervisor() {
    if !can_run("misbehaving_control_clients_dont_stall_the_supervisor") {
        return;
    }
    let f = Fixture::new("control-clients");
    let t = token(1000);
    let _reaper = Reaper(vec![t.clone()]);
    let log = f.root.join("log.jsonl");
    let p = profile(&f, "p", &log, "limits: {wall_time: 3s, grace: 1s}\n");
    let started = Instant::now();
    let mut sb = f.spawn(&p, &["sleep", &t]);
    let id = id_of(&log);
    wait_listed(&id, &mut sb);
    let sock = runtime_dir(&id).join("control");
    // More silent connections than the supervisor serves at once, held
    // open; garbage; a request of 10 MB; a request cut short.
    let silent: Vec<UnixStream> = (0..20)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    let mut garbage = UnixStream::connect(&sock).unwrap();
    let _ = garbage.write_all(b"\x00\xff{not json at all\n");
    let flood = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            if let Ok(mut s) = UnixStream::connect(&sock) {
                let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                let big = vec![b'{'; 10 << 20];
                let _ = s.write_all(&big);
            }
        })
    };
    let mut cut = UnixStream::connect(&sock).unwrap();
    let _ = cut.write_all(b"{\"op\":\"ki");
    let o = sb.finish();
    assert_status(&o, 124);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "wall_time was stalled"
    );
    let exit = records(&log)
        .into_iter()
        .find(|r| r["event"] == "exit")
        .unwrap();
    assert_eq!(exit["reason"], "timeout", "{exit}");
    // None of them was an action.
    assert!(!records(&log).iter().any(|r| r["event"] == "control"));
    let _ = flood.join();
    let mut reply = String::new();
    let _ = garbage.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = garbage.read_to_string(&mut reply);
    assert!(
        reply.contains("not a control request") || reply.is_empty(),
        "{reply}"
    );
    drop(silent);
    assert!(processes_with_arg(&t).is_empty());
}

// ------------------------------------------------------------ checkpoints

/// Lines of the counter's output in `ws/count` (one per 1000 steps).
fn counted(ws: &Path) -> usize {
    std::fs::read_to_string(ws.join("count"))
        .unwrap_or_default()
        .lines()
        .count()
}

const COUNTER: &str =
    "i=0; while :; do i=$((i+1)); [ $((i % 1000)) -eq 0 ] && echo $i >> count; done";

/// Waits until `ps` shows `id` in `state`.
#[track_caller]
fn wait_state(id: &str, state: &str, sb: &mut Sandbox) {
    let ok = poll(Duration::from_secs(20), || {
        row(id).is_some_and(|r| r["state"] == state) || !sb.running()
    });
    assert!(
        ok && sb.running(),
        "{id} never {state}\n{}",
        show(&sb.finish())
    );
}

/// Whether the kernel says every task of the sandbox's cgroup is frozen
/// (v2 `cgroup.events`, v1 `freezer.state`): freezing is asynchronous.
fn cgroup_frozen(row: &serde_json::Value) -> bool {
    row["cgroup"].as_array().into_iter().flatten().any(|d| {
        let d = Path::new(d.as_str().unwrap_or_default());
        std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || std::fs::read_to_string(d.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
    })
}

/// Shell lines for a hook: wait (bounded) until the sandbox's cgroup is
/// frozen.
const HOOK_WAITS_FROZEN: &str = "d=$(find /sys/fs/cgroup -maxdepth 3 -type d -name \"confine-$CONFINE_SANDBOX\")
     for i in $(seq 200); do for x in $d; do cat $x/freezer.state $x/cgroup.events 2>/dev/null; done      | grep -qxE 'FROZEN|frozen 1' && break; sleep 0.05; done
";

/// The `checkpoint` records as `REQUEST OUTCOME BY`.
fn checkpoints(log: &Path) -> Vec<String> {
    records(log)
        .into_iter()
        .filter(|r| r["event"] == "checkpoint")
        .map(|r| {
            format!(
                "{} {} {}",
                r["request"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["by"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn exit_record(log: &Path) -> serde_json::Value {
    records(log)
        .into_iter()
        .find(|r| r["event"] == "exit")
        .expect("an exit record")
}

#[test]
fn a_checkpoint_blocks_progress_until_approve_and_deny_stops_it() {
    if !can_run("a_checkpoint_blocks_progress_until_approve_and_deny_stops_it") {
        return;
    }
    let f = Fixture::new("checkpoint-cli");
    let log = f.root.join("log.jsonl");
    let p = profile(
        &f,
        "p",
        &log,
        "limits: {pids: 100, wall_time: 120s, checkpoint_every: 2s}\n",
    );
    let mut sb = f.spawn_sh(&p, COUNTER);
    let id = id_of(&log);
    wait_listed(&id, &mut sb);
    wait_state(&id, "waiting for approval", &mut sb);
    assert!(
        poll(Duration::from_secs(10), || row(&id)
            .is_some_and(|r| cgroup_frozen(&r))),
        "the cgroup never froze"
    );
    // Progress stops while it waits: the count is the same at two moments.
    let before = counted(&f.ws);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(counted(&f.ws), before, "the sandbox ran on while waiting");
    assert_eq!(row(&id).unwrap()["state"], "waiting for approval");
    let shown = std::fs::read_to_string(runtime_dir(&id).join("requests.json")).unwrap();
    assert!(
        shown.contains("\"c1\"") && shown.contains("checkpoint"),
        "{shown}"
    );

    // Another uid can't answer it, even through a socket opened up by
    // mistake: the supervisor checks SO_PEERCRED.
    let o = {
        let _open = OpenedUp::new(&id);
        let mut c = setpriv_as_agent()
            .arg("--")
            .args(["/usr/bin/socat", "-t5", "-"])
            .arg(format!(
                "UNIX-CONNECT:{}",
                runtime_dir(&id).join("control").display()
            ))
            .env("PATH", PATH)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(b"{\"op\":\"approve\"}\n")
            .unwrap();
        c.wait_with_output().unwrap()
    };
    assert!(stdout(&o).contains("may not control"), "{}", show(&o));
    assert_eq!(row(&id).unwrap()["state"], "waiting for approval");
    assert_eq!(counted(&f.ws), before, "a refused approval let it run");

    // A request that isn't open is refused; the open one is approved.
    let o = confine(&["approve", &id, "c9"]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("no open request"), "{}", show(&o));
    let o = confine(&["approve", &id]);
    assert_status(&o, 0);
    assert!(
        poll(Duration::from_secs(10), || counted(&f.ws) > before + 2),
        "approval didn't resume the counter"
    );
    assert!(!runtime_dir(&id).join("requests.json").exists());
    // The first answer won: there is nothing left to answer.
    let o = confine(&["deny", &id, "c1"]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("nothing is waiting"), "{}", show(&o));

    // The next one, denied, stops the sandbox: a limit ended it.
    wait_state(&id, "waiting for approval", &mut sb);
    let o = confine(&["deny", &id, "c2"]);
    assert_status(&o, 0);
    let o = sb.finish();
    assert_status(&o, 124);
    assert!(stderr(&o).contains("denied by uid 0"), "{}", show(&o));
    assert_eq!(exit_record(&log)["reason"], "checkpoint");
    assert_eq!(
        checkpoints(&log),
        [
            "c1 opened -",
            "c1 approved uid 0",
            "c2 opened -",
            "c2 denied uid 0"
        ]
    );
    let control: Vec<String> = records(&log)
        .into_iter()
        .filter(|r| r["event"] == "control")
        .map(|r| format!("{} {} {}", r["action"], r["uid"], r["outcome"]))
        .collect();
    assert_eq!(control.len(), 5, "{control:?}");
    assert!(control[0].starts_with(&format!("\"approve\" {AGENT_UID} \"refused")));
    assert!(control[1].contains("refused: no open request"));
    assert_eq!(control[2], "\"approve\" 0 \"approved c1\"");
    assert!(control[3].contains("refused: nothing is waiting"));
    assert_eq!(control[4], "\"deny\" 0 \"denied c2\"");
}

#[test]
fn checkpoints_are_answered_by_the_hook_outside_the_sandbox() {
    if !can_run("checkpoints_are_answered_by_the_hook_outside_the_sandbox") {
        return;
    }
    let f = Fixture::new("checkpoint-hook");
    let log = f.root.join("log.jsonl");
    let (r, ws) = (f.root.display(), f.ws.display());
    // Approves the first checkpoint, denies the second; each time it looks
    // at the count twice, a second apart, while the sandbox waits.
    let hook = f.root.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nn=$(cat {r}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > {r}/n\n\
             cat > {r}/req$n.json; env > {r}/env$n; ls /proc/self/fd > {r}/fds$n\n{HOOK_WAITS_FROZEN}\
             a=$(wc -l < {ws}/count); sleep 1; b=$(wc -l < {ws}/count); echo $a $b > {r}/seen$n\n\
             [ $n -lt 2 ]\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let p = profile(
        &f,
        "p",
        &log,
        &format!(
            "limits: {{pids: 100, wall_time: 120s, checkpoint_every: 2s}}\n\
             approval: {{command: [\"{}\"], timeout: 60s}}\n",
            hook.display()
        ),
    );
    let mut sb = f.spawn_sh(&p, COUNTER);
    let id = id_of(&log);
    let o = sb.finish();
    assert_status(&o, 124);
    assert_eq!(exit_record(&log)["reason"], "checkpoint", "{}", show(&o));
    assert_eq!(
        checkpoints(&log),
        [
            "c1 opened -",
            "c1 approved hook",
            "c2 opened -",
            "c2 denied hook"
        ]
    );
    for n in [1, 2] {
        let seen = std::fs::read_to_string(f.root.join(format!("seen{n}"))).unwrap();
        let (a, b) = seen.trim().split_once(' ').unwrap();
        assert_eq!(a, b, "the sandbox ran while hook {n} decided");
    }
    // The counter ran between the two: the first approval resumed it.
    let a1: usize = std::fs::read_to_string(f.root.join("seen1"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let a2: usize = std::fs::read_to_string(f.root.join("seen2"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(a2 > a1, "no progress between the checkpoints ({a1}, {a2})");
    // One JSON request on stdin; a scrubbed environment; fds 0-2 only
    // (and ls's own directory).
    let req: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.root.join("req2.json")).unwrap()).unwrap();
    assert_eq!(
        (&req["sandbox"], &req["request"], &req["kind"]),
        (&id.clone().into(), &"c2".into(), &"checkpoint".into())
    );
    assert!(req["run_time_ms"].as_u64().unwrap() >= 4000, "{req}");
    assert!(req["usage"]["processes"].as_u64().unwrap() >= 1, "{req}");
    let env = std::fs::read_to_string(f.root.join("env1")).unwrap();
    let keys: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| !["PWD", "SHLVL", "_", "OLDPWD"].contains(k))
        .collect();
    assert_eq!(keys.len(), 3, "{env}");
    assert!(env.contains(&format!("CONFINE_SANDBOX={id}")) && env.contains("CONFINE_REQUEST=c1"));
    let fds = std::fs::read_to_string(f.root.join("fds1")).unwrap();
    assert!(
        fds.split_whitespace().count() <= 4,
        "the hook inherited fds: {fds}"
    );
}

#[test]
fn unanswered_checkpoints_follow_the_default_and_wall_time_still_runs() {
    if !can_run("unanswered_checkpoints_follow_the_default_and_wall_time_still_runs") {
        return;
    }
    let f = Fixture::new("checkpoint-timeout");
    let t = token(1000);
    let _reaper = Reaper(vec![t.clone()]);
    // default deny, with a hook that never answers (and leaves a child in
    // its process group): stopped at the timeout, the hook's group killed.
    let hook = f.root.join("hook.sh");
    std::fs::write(&hook, format!("#!/bin/sh\nsleep {t} &\nexec sleep {t}\n")).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = f.root.join("deny.jsonl");
    let p = profile(
        &f,
        "deny",
        &log,
        &format!(
            "limits: {{pids: 100, wall_time: 120s, checkpoint_every: 1s}}\n\
             approval: {{command: \"{}\", timeout: 2s, default: deny}}\n",
            hook.display()
        ),
    );
    let mut sb = f.spawn_sh(&p, COUNTER);
    assert!(
        poll(Duration::from_secs(20), || processes_with_arg(&t).len()
            == 2),
        "the hook never ran"
    );
    let o = sb.finish();
    assert_status(&o, 124);
    assert_eq!(exit_record(&log)["reason"], "checkpoint", "{}", show(&o));
    assert_eq!(checkpoints(&log), ["c1 opened -", "c1 denied timeout"]);
    assert!(
        processes_with_arg(&t).is_empty(),
        "the hook's process group outlived its timeout"
    );

    // default allow: it runs on, one checkpoint after another, until
    // wall_time ends it.
    let log = f.root.join("allow.jsonl");
    let p = profile(
        &f,
        "allow",
        &log,
        "limits: {pids: 100, wall_time: 6s, grace: 1s, checkpoint_every: 1s}\n\
         approval: {timeout: 1s, default: allow}\n",
    );
    let mut sb = f.spawn_sh(&p, COUNTER);
    let o = sb.finish();
    assert_status(&o, 124);
    assert_eq!(exit_record(&log)["reason"], "timeout", "{}", show(&o));
    let cps = checkpoints(&log);
    assert!(cps.contains(&"c1 approved timeout".to_string()), "{cps:?}");
    assert!(!cps.iter().any(|c| c.contains("denied")), "{cps:?}");

    // No answer at all and no timeout: wall_time still ends it (it counts
    // wall-clock time, frozen or not), and the open checkpoint is closed.
    let log = f.root.join("wall.jsonl");
    let p = profile(
        &f,
        "wall",
        &log,
        "limits: {pids: 100, wall_time: 4s, grace: 1s, checkpoint_every: 1s}\n",
    );
    let mut sb = f.spawn_sh(&p, COUNTER);
    let o = sb.finish();
    assert_status(&o, 124);
    assert_eq!(exit_record(&log)["reason"], "timeout", "{}", show(&o));
    assert_eq!(checkpoints(&log), ["c1 opened -", "c1 abandoned wall_time"]);

    // While one waits, the caller's TERM and the kill switch still end it:
    // the frozen sandbox is thawed so that the signal can act.
    for how in ["signal", "kill"] {
        let log = f.root.join(format!("{how}.jsonl"));
        let p = profile(
            &f,
            how,
            &log,
            "limits: {pids: 100, wall_time: 120s, grace: 1s, checkpoint_every: 1s}\n",
        );
        let mut sb = f.spawn_sh(&p, COUNTER);
        let id = id_of(&log);
        wait_listed(&id, &mut sb);
        wait_state(&id, "waiting for approval", &mut sb);
        if how == "signal" {
            sb.signal(libc::SIGTERM);
        } else {
            assert_status(&confine(&["kill", &id]), 0);
        }
        let o = sb.finish();
        let reason = exit_record(&log)["reason"].clone();
        if how == "signal" {
            // The agent's shell died of the TERM it was sent.
            assert_status(&o, 143);
            assert_eq!(reason, "signaled", "{}", show(&o));
        } else {
            assert_eq!(reason, "killed", "{}", show(&o));
        }
        assert_eq!(
            checkpoints(&log),
            ["c1 opened -".to_string(), format!("c1 abandoned {how}")]
        );
    }
}

// ----------------------------------------------------------- network.ask

/// An address the egress proxy counts as public, in the test's own
/// network namespaces (tests/common/net.rs).
const ASK_PUBLIC: &str = "93.184.215.14";
const ASK_DNS: &str = "198.51.100.53";

#[test]
fn network_ask_holds_a_connection_until_approved_and_a_denied_one_fails() {
    let test = "network_ask_holds_a_connection_until_approved_and_a_denied_one_fails";
    if !can_run(test) || !have(test, "/usr/bin/curl") {
        return;
    }
    let net = common::net::Net::new();
    let dns = net.dns(ASK_DNS);
    dns.set("asked.example", &[ASK_PUBLIC]);
    dns.set("refused.example", &[ASK_PUBLIC]);
    let web = net.http(ASK_PUBLIC, "asked hello\n");
    let f = Fixture::new("control-ask");
    let t = token(1000);
    let _reaper = Reaper(vec![t.clone()]);
    let log = f.root.join("log.jsonl");
    let p = profile(
        &f,
        "ask",
        &log,
        "network:\n  mode: proxy\n  ask: [\"asked.example:80\", \"refused.example:80\"]\n",
    );
    let curl = "curl -sS --fail --max-time 100";
    let script = format!(
        "{curl} http://asked.example/a > got; echo $? > rc1; \
         {curl} http://refused.example/b; echo $? > rc2; \
         {curl} --noproxy '*' http://asked.example/c >> got; echo $? > rc3; exec sleep {t}"
    );
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["run", "-p", &p, "-w"])
        .arg(&f.ws)
        .args(["--", "/bin/sh", "-c", &script])
        .env("PATH", PATH)
        .current_dir(&f.ws);
    let mut child = net
        .in_client(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = id_of(&log);
    let opened = |host: &str| {
        poll(Duration::from_secs(20), || {
            records(&log).iter().any(|r| {
                r["event"] == "checkpoint" && r["outcome"] == "opened" && r["host"] == host
            })
        })
    };
    assert!(
        opened("asked.example"),
        "no ask opened: {:?}",
        records(&log)
    );
    // Held: the client waits, the upstream has seen nothing.
    std::thread::sleep(Duration::from_secs(1));
    assert!(!f.ws.join("rc1").exists(), "the connection wasn't held");
    assert!(web.requests().is_empty(), "{:?}", web.requests().len());
    let r = row(&id).unwrap();
    let asked = &r["requests"][0];
    assert_eq!(
        (&asked["request"], &asked["host"], &asked["port"]),
        (&"a1".into(), &"asked.example".into(), &80.into()),
        "{r}"
    );
    assert!(
        asked["process"]
            .as_str()
            .is_some_and(|p| p.starts_with("curl (pid ")),
        "{r}"
    );
    assert_eq!(r["state"], "running", "an ask doesn't freeze the sandbox");

    let o = confine(&["approve", &id, "a1"]);
    assert_status(&o, 0);
    let rc = |n: u32| {
        poll_for(Duration::from_secs(20), || {
            std::fs::read_to_string(f.ws.join(format!("rc{n}"))).ok()
        })
        .map(|s| s.trim().to_string())
    };
    assert_eq!(rc(1).as_deref(), Some("0"));
    assert!(opened("refused.example"));
    let o = confine(&["deny", &id, "a2"]);
    assert_status(&o, 0);
    assert_eq!(rc(2).as_deref(), Some("22"), "curl's exit for a 403");
    // Approved stays approved for the run, by either door: no new ask.
    assert_eq!(rc(3).as_deref(), Some("0"));
    assert_eq!(
        std::fs::read_to_string(f.ws.join("got")).unwrap(),
        "asked hello\nasked hello\n"
    );
    let targets: Vec<String> = web.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(!targets.iter().any(|t| t.ends_with("/b")), "{targets:?}");

    // ps shows the proxy's traffic per sandbox once the records are in.
    assert!(
        poll(Duration::from_secs(10), || row(&id).is_some_and(|r| {
            r["network"]["bytes_in"].as_u64().is_some_and(|b| b > 0) && r["network"]["refused"] == 1
        })),
        "{:?}",
        row(&id)
    );
    assert!(stdout(&confine(&["ps"])).contains(&id[..12]));

    assert_status(&confine(&["kill", &id]), 0);
    let _ = child.wait();
    assert_eq!(
        checkpoints(&log),
        [
            "a1 opened -",
            "a1 approved uid 0",
            "a2 opened -",
            "a2 denied uid 0"
        ]
    );
    let refused: Vec<serde_json::Value> = records(&log)
        .into_iter()
        .filter(|r| r["event"] == "connection" && r["host"] == "refused.example")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["verdict"], "refused");
    assert_eq!(refused[0]["rule"], "refused.example:80");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("was denied"),
        "{refused:?}"
    );

    // The hook answers asks too: it reads the host from the request.
    let hook = f.root.join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\ngrep -q '\"host\":\"asked.example\"'\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = f.root.join("hook.jsonl");
    let p = profile(
        &f,
        "hook",
        &log,
        &format!(
            "network:\n  mode: proxy\n  ask: [\"asked.example:80\", \"refused.example:80\"]\n\
             approval: {{command: \"{}\", timeout: 60s}}\n",
            hook.display()
        ),
    );
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["run", "-p", &p, "-w"])
        .arg(&f.ws)
        .args([
            "--",
            "/bin/sh",
            "-c",
            &format!(
                "{curl} http://asked.example/d >/dev/null; echo $?; \
                 {curl} http://refused.example/e; echo $?"
            ),
        ])
        .env("PATH", PATH)
        .current_dir(&f.ws);
    let o = net.in_client(&cmd).stdin(Stdio::null()).output().unwrap();
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "0\n22\n", "{}", show(&o));
    assert_eq!(
        checkpoints(&log),
        [
            "a1 opened -",
            "a1 approved hook",
            "a2 opened -",
            "a2 denied hook"
        ]
    );
}

#[test]
fn checkpoint_and_approval_keys_are_checked_where_they_are_written() {
    let f = Fixture::new("control-keys");
    let check = |name: &str, yaml: &str| {
        let p = f.profile(name, &format!("version: 1\nextends: default\n{yaml}"));
        (confine(&["check", &p.display().to_string()]), p)
    };
    // A checkpoint needs a cgroup, so one of its limits.
    let (o, p) = check("nocg", "limits:\n  checkpoint_every: 30m\n");
    assert_status(&o, 125);
    assert!(
        stderr(&o).starts_with(&format!(
            "confine: limits.checkpoint_every ({}:4:21): a checkpoint freezes the sandbox",
            p.display()
        )),
        "{}",
        show(&o)
    );
    // The hook must be there, executable, now.
    let (o, p) = check(
        "nohook",
        "limits: {pids: 100, checkpoint_every: 30m}\napproval:\n  command: [/nonexistent/ask, x]\n",
    );
    assert_status(&o, 125);
    assert!(
        stderr(&o).starts_with(&format!(
            "confine: approval.command ({}:5:12): /nonexistent/ask",
            p.display()
        )),
        "{}",
        show(&o)
    );
    // An approval with nothing to answer is a warning.
    let (o, p) = check("idle", "approval: {timeout: 1m}\n");
    assert_status(&o, 0);
    assert!(
        stderr(&o).contains(&format!(
            "confine: warning: approval ({}:3:11): approval without limits.checkpoint_every or network.ask",
            p.display()
        )),
        "{}",
        show(&o)
    );
    // The control: a whole one passes, and explain says what it does.
    let yaml = "limits: {pids: 100, checkpoint_every: 30m}\n\
                approval: {command: [/bin/true], timeout: 10m, default: allow}\n";
    let (o, p) = check("good", yaml);
    assert_status(&o, 0);
    assert!(stderr(&o).is_empty(), "{}", show(&o));
    let o = confine(&[
        "explain",
        "-p",
        &p.display().to_string(),
        "-w",
        &f.ws.display().to_string(),
    ]);
    assert_status(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("checkpoint  every 30m of run time"), "{text}");
    assert!(
        text.contains(
            "approval    hook /bin/true or confine approve/deny; unanswered after 10m: allow"
        ),
        "{text}"
    );
}
