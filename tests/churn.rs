//! Churn: many sandboxes at once on one workspace, for a bounded time, their
//! supervisors ended at random moments (normal ends, SIGTERM, SIGINT,
//! SIGHUP, SIGKILL). Afterwards nothing of them may be left: no process, no
//! mount, no cgroup, nothing in the workspace, and every line of the shared
//! audit log is one whole JSON record.
mod common;
use common::*;
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKERS: usize = 20;
const RUN_FOR: Duration = Duration::from_secs(20);

fn mount_count() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// Whether process `pid` has SIGTERM blocked (or is gone).
fn blocked(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
}

/// A cheap, per-thread pseudo-random sequence (no crate for this).
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn twenty_sandboxes_killed_at_random_leave_nothing_behind() {
    if !can_run("twenty_sandboxes_killed_at_random_leave_nothing_behind") {
        return;
    }
    let f = Fixture::new("churn");
    let log = f.root.join("audit.jsonl");
    let profile = f.profile(
        "churn",
        "version: 1\nextends: default\nlimits: {pids: 64}\n\
         filesystem:\n  protect: [\"{workspace}/.git/hooks/\", \"{workspace}/.env\"]\n",
    );
    let mounts_before = mount_count();
    let cgroups_before = confine_cgroups();
    let tokens = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let launched = Arc::new(AtomicUsize::new(0));
    let unexpected = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let end = Instant::now() + RUN_FOR;

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (ws, log, profile) = (f.ws.clone(), log.clone(), profile.clone());
            let (tokens, launched, unexpected, stop) = (
                tokens.clone(),
                launched.clone(),
                unexpected.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(unique() | 1 | (w as u64) << 32);
                while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                    // `sleep 0.NNNNNNNNN`: under a second, and a token no
                    // other process has in its argv.
                    let t = token(0);
                    tokens.lock().unwrap().push(t.clone());
                    let mut child = std::process::Command::new(bin())
                        .args(["run", "-p"])
                        .arg(&profile)
                        .arg("-w")
                        .arg(&ws)
                        .arg("--audit-log")
                        .arg(&log)
                        .args(["--", "/bin/sleep", &t])
                        .env("PATH", PATH)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .unwrap();
                    launched.fetch_add(1, Ordering::Relaxed);
                    let action = rng.next(5);
                    if action > 0 {
                        // From confine's first instruction its signals are
                        // blocked; before that (the exec itself, the C
                        // runtime) the kernel's default applies to any
                        // program. Wait until it runs, then pick a moment.
                        let pid = child.id();
                        poll(Duration::from_secs(5), || blocked(pid));
                        std::thread::sleep(Duration::from_micros(rng.next(60_000)));
                        let sig = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGKILL]
                            [(action - 1) as usize];
                        // SAFETY: kill of our own unreaped child.
                        unsafe { libc::kill(child.id() as i32, sig) };
                    }
                    let status = child.wait().unwrap();
                    // A normal end is the command's 0; a signal is
                    // forwarded (the command's 128+N), or it lands before
                    // the sandbox runs (125), or ends confine itself
                    // (SIGKILL only).
                    let ok = match status.code() {
                        Some(0 | 125 | 129 | 130 | 143) => true,
                        None => action == 4,
                        _ => false,
                    };
                    if !ok {
                        unexpected
                            .lock()
                            .unwrap()
                            .push(format!("action {action}: {status:?}"));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let n = launched.load(Ordering::Relaxed);
    eprintln!("{n} sandboxes launched by {WORKERS} workers");
    assert!(n >= WORKERS, "too few launches: {n}");

    // No process of any sandbox survives (a SIGKILLed supervisor's sandbox
    // dies with it, by PDEATHSIG).
    let tokens = tokens.lock().unwrap().clone();
    let survivors = poll_for(Duration::from_secs(10), || {
        let left: Vec<_> = tokens.iter().flat_map(|t| processes_with_arg(t)).collect();
        left.is_empty().then_some(())
    });
    assert!(survivors.is_some(), "sandbox processes survived");

    // What killed supervisors left is removed by the next launch there and
    // by `confine gc`.
    let settled = poll(Duration::from_secs(15), || {
        let o = f.run("default", &["/bin/true"]);
        assert_status(&o, 0);
        let gc = std::process::Command::new(bin())
            .arg("gc")
            .output()
            .unwrap();
        assert_status(&gc, 0);
        let ws: Vec<_> = fs::read_dir(&f.ws).unwrap().collect();
        let cg: Vec<_> = confine_cgroups()
            .difference(&cgroups_before)
            .cloned()
            .collect();
        ws.is_empty() && cg.is_empty()
    });
    let ws: Vec<_> = fs::read_dir(&f.ws)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let cg: Vec<_> = confine_cgroups()
        .difference(&cgroups_before)
        .cloned()
        .collect();
    assert!(settled, "left in the workspace: {ws:?}; cgroups: {cg:?}");
    assert_eq!(
        mount_count(),
        mounts_before,
        "a mount was leaked on the host"
    );

    let unexpected = unexpected.lock().unwrap();
    assert!(unexpected.is_empty(), "unexpected exits: {unexpected:#?}");

    // Every line of the shared log is one whole record.
    let text = fs::read_to_string(&log).unwrap();
    let mut records = 0;
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} is not one JSON record ({e}): {line}", i + 1));
        assert!(v.get("event").is_some(), "line {}: {line}", i + 1);
        records += 1;
    }
    assert!(records >= n, "{records} records for {n} launches");
}
