//! Resource limits end to end: cgroup pids and memory limits hold against
//! the real binary, OOM kills are reported as such, and nothing (cgroup,
//! mount, process) outlives a sandbox. The fork bomb is bounded, so it is
//! harmless even if the limit didn't hold.
mod common;
use common::*;

fn mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// Skips unless a cgroup controller can enforce `key` here.
fn enforceable(test: &str, key: &str, limits: &confine::sandbox::cgroup::Limits) -> bool {
    let missing = confine::sandbox::cgroup::capability(limits);
    if let Some(u) = missing.iter().find(|u| u.key == key) {
        return skip_or_fail(test, &format!("{key} can't be enforced here: {}", u.why));
    }
    true
}

/// Forks up to `n` sleeping children; prints how many forks succeeded.
const FORKS: &str = r#"
import os, sys, time
n, ok = int(sys.argv[1]), 0
for _ in range(n):
    try:
        pid = os.fork()
    except OSError:
        continue
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    ok += 1
print("started=%d" % ok, flush=True)
"#;

fn started(o: &std::process::Output) -> usize {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("started="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", show(o)))
}

#[test]
fn fork_bomb_is_contained_by_pids() {
    let name = "fork_bomb_is_contained_by_pids";
    let l = confine::sandbox::cgroup::Limits {
        pids: Some(64),
        ..Default::default()
    };
    if !can_run(name) || !enforceable(name, "limits.pids", &l) {
        return;
    }
    let f = Fixture::new("limits-pids");
    let p = f.profile("pids", "version: 1\nextends: default\nlimits: {pids: 64}\n");
    // A bounded bomb: 300 forks, harmless even if nothing stopped it.
    let o = f.run(
        p.to_str().unwrap(),
        &["/usr/bin/python3", "-c", FORKS, "300"],
    );
    assert_status(&o, 0);
    let n = started(&o);
    // 64 tasks in all, python and the init among them.
    assert!(n <= 62, "{n} forks succeeded under pids: 64: {}", show(&o));
    assert!(n > 10, "some forks must succeed: {}", show(&o));
    // The host can still fork.
    assert!(std::process::Command::new("/bin/true")
        .status()
        .unwrap()
        .success());

    // Control: without the limit, more than 64 start.
    let o = f.run("default", &["/usr/bin/python3", "-c", FORKS, "100"]);
    assert_status(&o, 0);
    assert_eq!(started(&o), 100, "{}", show(&o));
}

#[test]
fn big_allocation_under_memory_limit_is_oom_killed_and_reported() {
    let name = "big_allocation_under_memory_limit_is_oom_killed_and_reported";
    let l = confine::sandbox::cgroup::Limits {
        memory_bytes: Some(256 << 20),
        ..Default::default()
    };
    if !can_run(name) || !enforceable(name, "limits.memory", &l) {
        return;
    }
    let f = Fixture::new("limits-mem");
    let log = f.root.join("audit.jsonl");
    let p = f.profile(
        "mem",
        "version: 1\nextends: default\nlimits: {memory: 256M}\n",
    );
    let o = f
        .command(
            p.to_str().unwrap(),
            &[
                "/usr/bin/python3",
                "-c",
                "b = bytearray(2 << 30); print('allocated', len(b))",
            ],
        )
        .env("CONFINE_AUDIT_LOG", &log)
        .output()
        .unwrap();
    assert!(!stdout(&o).contains("allocated"), "{}", show(&o));
    let code = o.status.code().unwrap();
    if code == 137 {
        assert!(stderr(&o).contains("memory limit"), "{}", show(&o));
        let records = std::fs::read_to_string(&log).unwrap();
        let exit: serde_json::Value =
            serde_json::from_str(records.lines().last().unwrap()).unwrap();
        assert_eq!(exit["reason"], "oom", "{records}");
    } else {
        // The allocation may fail cleanly instead (MemoryError).
        assert_eq!(code, 1, "{}", show(&o));
        assert!(stderr(&o).contains("MemoryError"), "{}", show(&o));
    }

    // Control: 64 MB fits.
    let o = f.run(
        p.to_str().unwrap(),
        &[
            "/usr/bin/python3",
            "-c",
            "b = bytearray(64 << 20); print('allocated', len(b))",
        ],
    );
    assert_status(&o, 0);
}

#[test]
fn nothing_is_left_behind_after_100_runs() {
    let name = "nothing_is_left_behind_after_100_runs";
    let l = confine::sandbox::cgroup::Limits {
        pids: Some(32),
        ..Default::default()
    };
    if !can_run(name) || !enforceable(name, "limits.pids", &l) {
        return;
    }
    let f = Fixture::new("limits-leftovers");
    let log = f.root.join("audit.jsonl");
    let p = f.profile(
        "lim",
        "version: 1\nextends: default\nlimits: {pids: 32}\nfilesystem: {protect: [\"{workspace}/.git/hooks\"]}\n",
    );
    let token = format!("60.{}{}", std::process::id(), line!());
    let mnt = mounts();
    for i in 0..100 {
        // Leave a background process behind each time.
        let o = f
            .command(
                p.to_str().unwrap(),
                &["/bin/sh", "-c", &format!("sleep {token} & exit 0")],
            )
            .env("CONFINE_AUDIT_LOG", &log)
            .output()
            .unwrap();
        assert_status(&o, 0);
        assert!(
            !f.ws.join(".git").exists(),
            "run {i}: placeholder left behind"
        );
    }
    // Every sandbox's cgroup is gone.
    let ids: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "launch")
        .map(|r| r["sandbox"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 100);
    let left = confine_cgroups().into_iter().collect::<Vec<_>>();
    for id in &ids {
        assert!(
            !left.iter().any(|d| d.ends_with(&format!("confine-{id}"))),
            "cgroup of {id} left behind"
        );
    }
    assert_eq!(mounts(), mnt, "mounts left behind on the host");
    assert_eq!(
        processes_mentioning(&token).len(),
        0,
        "a background process outlived its sandbox"
    );
}

#[test]
fn a_killed_supervisors_cgroup_is_swept_by_the_next_launch() {
    let name = "a_killed_supervisors_cgroup_is_swept_by_the_next_launch";
    let l = confine::sandbox::cgroup::Limits {
        pids: Some(32),
        ..Default::default()
    };
    if !can_run(name) || !enforceable(name, "limits.pids", &l) {
        return;
    }
    let f = Fixture::new("limits-sweep");
    let p = f.profile("lim", "version: 1\nextends: default\nlimits: {pids: 32}\n");
    // Where this host puts pids cgroups: ask a real sandbox.
    let o = f.sh(p.to_str().unwrap(), "true");
    assert_status(&o, 0);
    let Some(parent) = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
        .iter()
        .map(std::path::Path::new)
        .find(|d| d.join("pids.max").exists() || d.join("cgroup.procs").exists())
    else {
        panic!("no pids hierarchy found");
    };
    let stale = parent.join(format!("confine-test-stale-{}", std::process::id()));
    let fresh = parent.join(format!("confine-test-fresh-{}", std::process::id()));
    let held = parent.join(format!("confine-test-held-{}", std::process::id()));
    std::fs::create_dir(&stale).unwrap();
    std::fs::create_dir(&fresh).unwrap();
    std::fs::create_dir(&held).unwrap();
    // Ten seconds old, as a killed supervisor's would be a moment later.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
    for d in [&stale, &held] {
        std::fs::File::open(d).unwrap().set_modified(old).unwrap();
    }
    // A live supervisor holds its cgroup's lock, even while it is empty
    // (before the sandbox is moved in): as old, but held.
    let lock = std::fs::File::open(&held).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
    // SAFETY: flock on an fd we own.
    let locked = unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(locked, 0);

    let o = f.sh(p.to_str().unwrap(), "true");
    assert_status(&o, 0);
    let stale_left = stale.exists();
    let fresh_left = fresh.exists();
    let held_left = held.exists();
    drop(lock);
    let _ = std::fs::remove_dir(&stale);
    let _ = std::fs::remove_dir(&fresh);
    let _ = std::fs::remove_dir(&held);
    assert!(!stale_left, "a stale empty cgroup must be swept");
    assert!(
        fresh_left,
        "a fresh one (a concurrent launch's) must be left alone"
    );
    assert!(held_left, "one its supervisor holds must be left alone");
}

#[test]
fn a_sigkilled_supervisors_cgroup_goes_within_seconds() {
    let name = "a_sigkilled_supervisors_cgroup_goes_within_seconds";
    let l = confine::sandbox::cgroup::Limits {
        pids: Some(32),
        ..Default::default()
    };
    if !can_run(name) || !enforceable(name, "limits.pids", &l) {
        return;
    }
    let f = Fixture::new("limits-killed");
    let p = f.profile("lim", "version: 1\nextends: default\nlimits: {pids: 32}\n");
    let mut s = f.spawn(p.to_str().unwrap(), &["/bin/sleep", "30"]);
    // The sandbox's own cgroup directories, from its init's /proc entry.
    let sup = s.pid();
    let mine = poll_for(std::time::Duration::from_secs(10), || {
        let kids = std::fs::read_to_string(format!("/proc/{sup}/task/{sup}/children")).ok()?;
        let init = kids.split_whitespace().next()?.to_string();
        let text = std::fs::read_to_string(format!("/proc/{init}/cgroup")).ok()?;
        let dirs: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
                path.contains("confine-")
                    .then(|| (ctrls.to_string(), path.to_string()))
            })
            .flat_map(|(ctrls, path)| {
                let roots: Vec<String> = if ctrls.is_empty() {
                    vec!["unified".into(), String::new()]
                } else {
                    ctrls.split(',').map(String::from).collect()
                };
                roots
                    .into_iter()
                    .map(move |r| format!("/sys/fs/cgroup/{r}{path}").replace("//", "/"))
            })
            .filter(|d| std::path::Path::new(d).is_dir())
            .collect();
        (!dirs.is_empty()).then_some(dirs)
    })
    .expect("the sandbox's cgroup appears");
    s.signal(libc::SIGKILL);
    s.finish();
    // Launches with limits sweep; within a few seconds (no minute-long
    // grace) the killed one's cgroup is gone.
    let gone = poll(std::time::Duration::from_secs(15), || {
        assert_status(&f.sh(p.to_str().unwrap(), "true"), 0);
        mine.iter().all(|d| !std::path::Path::new(d).exists())
    });
    assert!(gone, "left: {mine:?}");
}
