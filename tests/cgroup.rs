//! `sandbox::cgroup` against the real kernel, as root: each limit is shown by
//! a process that tries to exceed it, next to a control that stays within
//! it; `kill_all` by a process that double-forks out of its session; and
//! clean-up by counting directories.
//!
//! The cgroups are children of the test's own cgroups, named
//! `confine-it-<pid>-...`, and every test removes what it created (dropping
//! a `Cgroup` removes it too, so a failing assertion doesn't leave one).
//! Tests skip where they can't run (not root, no controller for the limit);
//! with CONFINE_REQUIRE_KERNEL=1 they fail instead.
mod common;
use common::skip_or_fail;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use confine::sandbox::cgroup::{self, Cgroup, Limits, Mechanism};

/// One test at a time: they measure CPU and memory, and the clean-up count
/// must not see another test's cgroups.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when `limits` can be enforced here by this (root) process.
fn can_run(test: &str, limits: &Limits) -> bool {
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } != 0 {
        return skip_or_fail(test, "needs root (creating cgroups)");
    }
    let gaps = cgroup::capability(limits);
    if !gaps.is_empty() {
        let why: Vec<String> = gaps
            .iter()
            .map(|g| format!("{}: {}", g.key, g.why))
            .collect();
        return skip_or_fail(test, &why.join("; "));
    }
    true
}

fn id(name: &str) -> String {
    format!("it-{}-{name}", std::process::id())
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The directory that enforces `key`.
fn dir_of(cg: &Cgroup, key: &str) -> (Mechanism, PathBuf) {
    let e = cg
        .enforced()
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("{key} not enforced: {:?}", cg.enforced()));
    (e.mechanism, e.dir.clone())
}

/// `sh -c script` (or another program) that first waits for a line on
/// stdin, so it can be moved into the cgroup before it does anything.
fn spawn_waiting(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {program}: {e}"))
}

fn pid_of(child: &Child) -> libc::pid_t {
    libc::pid_t::try_from(child.id()).expect("pid fits")
}

fn release(child: &mut Child) {
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(b"go\n").expect("releasing the child");
}

/// Waits for `child` and returns its status with its rusage.
fn wait_rusage(child: &Child) -> (libc::c_int, libc::rusage) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills status and rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointers; the pid is our unreaped child.
    let r = unsafe { libc::wait4(pid_of(child), &mut status, 0, &mut ru) };
    assert_eq!(
        r,
        pid_of(child),
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    (status, ru)
}

fn cpu_secs(ru: &libc::rusage) -> f64 {
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

fn python() -> Option<&'static str> {
    let p = "/usr/bin/python3";
    Path::new(p).exists().then_some(p)
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let _g = serial();
    let limits = Limits {
        pids: Some(16),
        ..Limits::default()
    };
    if !can_run("pids_limit_stops_a_fork_loop", &limits) {
        return;
    }
    let cg = Cgroup::create(&id("pids"), &limits).expect("create");
    let (mech, dir) = dir_of(&cg, "limits.pids");
    assert_eq!(read(&dir.join("pids.max")), "16");

    let mut child = spawn_waiting(
        "/bin/sh",
        &["-c", "read x; for i in $(seq 40); do sleep 5 & done; wait"],
    );
    cg.add(pid_of(&child)).expect("add");
    release(&mut child);

    // Watch the count while the loop runs into the limit.
    let tasks = |d: &Path| match mech {
        Mechanism::V1 => read(&d.join("tasks")).lines().count(),
        Mechanism::V2 => read(&d.join("cgroup.threads")).lines().count(),
    };
    let mut most = 0;
    let start = Instant::now();
    let mut refused = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        most = most.max(tasks(&dir));
        let current: usize = read(&dir.join("pids.current"))
            .parse()
            .expect("pids.current");
        assert!(current <= 16, "pids.current {current} > pids.max 16");
        refused = read(&dir.join("pids.events"))
            .lines()
            .find_map(|l| {
                l.strip_prefix("max ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        if refused > 0 && most >= 16 && start.elapsed() > Duration::from_millis(300) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(most <= 16, "{most} tasks in a cgroup with pids.max 16");
    assert!(
        most >= 10,
        "the fork loop never got going: at most {most} tasks"
    );
    assert!(refused > 0, "no fork was refused (pids.events max = 0)");

    cg.kill_all().expect("kill_all");
    assert!(cg.pids().expect("pids").is_empty());
    // dash gives up on "Cannot fork" by itself; otherwise kill_all ended it.
    let (status, _) = wait_rusage(&child);
    assert!(
        (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0)
            || (libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL),
        "status {status:#x}"
    );
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(
        err.to_lowercase().contains("fork"),
        "the shell didn't report a failed fork: {err:?}"
    );
    if let Some(peak) = cg.stats().pids_peak {
        assert!(peak <= 16, "pids.peak {peak}");
    }
    cg.remove().expect("remove");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn memory_limit_oom_kills_and_a_small_allocation_survives() {
    let _g = serial();
    let limits = Limits {
        memory_bytes: Some(64 << 20),
        ..Limits::default()
    };
    if !can_run("memory_limit_oom_kills", &limits) {
        return;
    }
    let Some(py) = python() else {
        skip_or_fail("memory_limit_oom_kills", "needs /usr/bin/python3");
        return;
    };
    // Touch every page, so the allocation is really charged.
    let alloc = |mb: u64| {
        format!(
            "import sys\nsys.stdin.readline()\nb = bytearray({mb} << 20)\n\
             for i in range(0, len(b), 4096): b[i] = 1\nprint('survived')"
        )
    };

    let cg = Cgroup::create(&id("mem-big"), &limits).expect("create");
    let (mech, dir) = dir_of(&cg, "limits.memory");
    let file = match mech {
        Mechanism::V1 => "memory.limit_in_bytes",
        Mechanism::V2 => "memory.max",
    };
    assert_eq!(read(&dir.join(file)), (64u64 << 20).to_string());
    let mut child = spawn_waiting(py, &["-c", &alloc(512)]);
    cg.add(pid_of(&child)).expect("add");
    release(&mut child);
    let (status, _) = wait_rusage(&child);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "512 MB under a 64 MB limit: status {status:#x}, not SIGKILL"
    );
    assert!(cg.oom_killed(), "oom_killed() is false after an OOM kill");
    let stats = cg.stats();
    assert!(stats.oom_kills.is_some_and(|n| n >= 1), "{stats:?}");
    if let Some(peak) = stats.memory_peak_bytes {
        assert!(peak <= 64 << 20, "peak {peak} above the limit");
        assert!(
            peak > 32 << 20,
            "peak {peak}: the allocation never ran into the limit"
        );
    }
    cg.remove().expect("remove");
    assert!(!dir.exists());

    // Control: 16 MB fits.
    let cg = Cgroup::create(&id("mem-small"), &limits).expect("create");
    let mut child = spawn_waiting(py, &["-c", &alloc(16)]);
    cg.add(pid_of(&child)).expect("add");
    release(&mut child);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "16 MB under a 64 MB limit failed: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "survived");
    assert!(!cg.oom_killed());
    cg.remove().expect("remove");
}

#[test]
fn cpu_quota_is_written_and_bounds_a_busy_loop() {
    let _g = serial();
    let limits = Limits {
        cpu_millicores: Some(500),
        ..Limits::default()
    };
    if !can_run("cpu_quota", &limits) {
        return;
    }
    let Some(py) = python() else {
        skip_or_fail("cpu_quota", "needs /usr/bin/python3");
        return;
    };
    let cg = Cgroup::create(&id("cpu"), &limits).expect("create");
    let (mech, dir) = dir_of(&cg, "limits.cpu");
    match mech {
        Mechanism::V2 => assert_eq!(read(&dir.join("cpu.max")), "50000 100000"),
        Mechanism::V1 => {
            assert_eq!(read(&dir.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(&dir.join("cpu.cfs_period_us")), "100000");
        }
    }
    let busy = "import sys, time\nsys.stdin.readline()\nt = time.monotonic()\n\
                while time.monotonic() - t < 1.0: pass";
    let mut child = spawn_waiting(py, &["-c", busy]);
    cg.add(pid_of(&child)).expect("add");
    release(&mut child);
    let (status, ru) = wait_rusage(&child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let used = cpu_secs(&ru);
    // Half a core for ~1 s of wall time is ~0.5 s; leave room for startup
    // and a period of slack, but a full core (1.0 s) must not fit.
    assert!(
        used <= 0.7,
        "busy loop used {used:.3}s of CPU under a 0.5-core quota"
    );
    let stats = cg.stats();
    if let Some(us) = stats.cpu_usage_usec {
        assert!(us <= 700_000, "cgroup says {us} µs of CPU: {stats:?}");
        assert!(us > 0, "{stats:?}");
    }
    eprintln!("cpu: rusage {used:.3}s, cgroup {stats:?}");
    cg.remove().expect("remove");
    assert!(!dir.exists());
}

#[test]
fn kill_all_kills_a_double_forked_setsid_process() {
    let _g = serial();
    let limits = Limits {
        pids: Some(64),
        ..Limits::default()
    };
    if !can_run("kill_all_double_fork", &limits) {
        return;
    }
    let cg = Cgroup::create(&id("kill"), &limits).expect("create");
    let mut child = spawn_waiting(
        "/bin/sh",
        &[
            "-c",
            r#"read x; (setsid sh -c "echo \$\$; exec sleep 300" &); exec sleep 300"#,
        ],
    );
    cg.add(pid_of(&child)).expect("add");
    release(&mut child);
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the escaped pid");
    let escaped: libc::pid_t = line.trim().parse().expect("a pid");
    // It left our process tree and its session, not the cgroup.
    let stat = read(Path::new(&format!("/proc/{escaped}/stat")));
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
    assert_ne!(fields[1], std::process::id().to_string(), "still our child");
    assert_eq!(fields[3], escaped.to_string(), "not a session leader");
    let members = cg.pids().expect("pids");
    assert!(
        members.contains(&escaped) && members.contains(&pid_of(&child)),
        "{members:?}"
    );

    cg.kill_all().expect("kill_all");
    assert!(cg.pids().expect("pids").is_empty());
    let (status, _) = wait_rusage(&child);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    // Gone, or a zombie waiting for whoever inherited it.
    let dead = match fs::read_to_string(format!("/proc/{escaped}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    };
    assert!(dead, "the setsid'd process {escaped} survived kill_all");
    let paths: Vec<PathBuf> = cg.paths().iter().map(|p| p.to_path_buf()).collect();
    cg.remove().expect("remove");
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn hundred_create_remove_cycles_leave_nothing_behind() {
    let _g = serial();
    // Every limit this host can enforce, so every hierarchy is exercised.
    let all = Limits {
        memory_bytes: Some(256 << 20),
        pids: Some(64),
        cpu_millicores: Some(1000),
    };
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } != 0 {
        skip_or_fail("hundred_cycles", "needs root (creating cgroups)");
        return;
    }
    let gaps = cgroup::capability(&all);
    let limits = Limits {
        memory_bytes: all
            .memory_bytes
            .filter(|_| !gaps.iter().any(|g| g.key == "limits.memory")),
        pids: all
            .pids
            .filter(|_| !gaps.iter().any(|g| g.key == "limits.pids")),
        cpu_millicores: all
            .cpu_millicores
            .filter(|_| !gaps.iter().any(|g| g.key == "limits.cpu")),
    };
    if limits == Limits::default() {
        skip_or_fail("hundred_cycles", "no cgroup controller for any limit");
        return;
    }

    let prefix = format!("confine-{}", id("cycle"));
    // The parents, from a first cgroup.
    let first = Cgroup::create(&id("cycle-first"), &limits).expect("create");
    let parents: Vec<PathBuf> = first
        .paths()
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    first.remove().expect("remove");
    let count = |pattern: &str| -> usize {
        parents
            .iter()
            .map(|p| {
                fs::read_dir(p)
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .filter(|e| e.file_name().to_string_lossy().starts_with(pattern))
                            .count()
                    })
                    .unwrap_or(0)
            })
            .sum()
    };
    let all_before = count("confine-");
    assert_eq!(count(&prefix), 0);

    for i in 0..100 {
        let cg = Cgroup::create(&id(&format!("cycle-{i}")), &limits)
            .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
        assert_eq!(cg.paths().len(), parents.len());
        // Every tenth one holds a process when it is removed.
        let child = (i % 10 == 0).then(|| {
            let c = spawn_waiting("/bin/sh", &["-c", "read x; exec sleep 30"]);
            cg.add(pid_of(&c)).expect("add");
            c
        });
        cg.remove().unwrap_or_else(|e| panic!("cycle {i}: {e}"));
        if let Some(c) = child {
            let (status, _) = wait_rusage(&c);
            assert!(
                libc::WIFSIGNALED(status),
                "cycle {i}: the child outlived remove()"
            );
        }
    }

    assert_eq!(
        count(&prefix),
        0,
        "confine-* directories of this test left behind"
    );
    let all_after = count("confine-");
    // Only this test's names are asserted on: other processes may create
    // and remove sandboxes of their own under the same parents meanwhile.
    eprintln!("confine-* under {parents:?}: {all_before} before, {all_after} after");
}

#[test]
fn an_existing_directory_is_never_adopted_or_removed() {
    let _g = serial();
    let limits = Limits {
        pids: Some(8),
        ..Limits::default()
    };
    if !can_run("existing_directory", &limits) {
        return;
    }
    let first = Cgroup::create(&id("twice"), &limits).expect("create");
    let paths: Vec<PathBuf> = first.paths().iter().map(|p| p.to_path_buf()).collect();
    match Cgroup::create(&id("twice"), &limits) {
        Err(cgroup::CgroupError::Exists { path }) => assert!(paths.contains(&path), "{path:?}"),
        other => panic!("second create with the same id: {other:?}"),
    }
    // The failed attempt removed nothing of the first.
    for p in &paths {
        assert!(
            p.exists(),
            "{} removed by someone who didn't create it",
            p.display()
        );
    }
    first.remove().expect("remove");
    for p in &paths {
        assert!(!p.exists());
    }
    // Bad input is refused before anything is created.
    for bad in ["", "../escape", "a/b"] {
        assert!(Cgroup::create(bad, &limits).is_err(), "{bad:?}");
    }
    let tiny_cpu = Limits {
        cpu_millicores: Some(1),
        ..Limits::default()
    };
    assert!(matches!(
        Cgroup::create(&id("tiny"), &tiny_cpu),
        Err(cgroup::CgroupError::InvalidLimit { .. })
    ));
}

#[test]
fn dropping_kills_and_removes() {
    let _g = serial();
    let limits = Limits {
        pids: Some(8),
        ..Limits::default()
    };
    if !can_run("dropping_kills_and_removes", &limits) {
        return;
    }
    let cg = Cgroup::create(&id("drop"), &limits).expect("create");
    let paths: Vec<PathBuf> = cg.paths().iter().map(|p| p.to_path_buf()).collect();
    let mut child = spawn_waiting("/bin/sh", &["-c", "read x; exec sleep 30"]);
    cg.add(pid_of(&child)).expect("add");
    release(&mut child);
    drop(cg);
    let (status, _) = wait_rusage(&child);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    for p in &paths {
        assert!(!p.exists(), "{} left behind by Drop", p.display());
    }
}
