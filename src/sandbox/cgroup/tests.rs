use std::fs;
use std::time::Instant;

use super::layout::*;
use super::lifecycle::*;
use super::*;

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// This kind of host: v2 at /sys/fs/cgroup/unified with hugetlb only,
/// memory/pids/cpu/cpuacct on v1, our memory cgroup nested.
fn hybrid() -> Layout {
    let v1 = |c: &[&str], mp: &str, dir: &str| V1Parent {
        controllers: words(c),
        mount_point: PathBuf::from(mp),
        dir: Some(PathBuf::from(dir)),
        writable: true,
    };
    Layout {
        v2: Some(V2Parent {
            dir: PathBuf::from("/sys/fs/cgroup/unified"),
            is_root: true,
            controllers: words(&["hugetlb"]),
            subtree_control: Vec::new(),
            has_processes: true,
            alone: false,
            delegated: false,
            writable: true,
            up: None,
        }),
        v1: vec![
            v1(&["cpu"], "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu"),
            v1(
                &["cpuacct"],
                "/sys/fs/cgroup/cpuacct",
                "/sys/fs/cgroup/cpuacct",
            ),
            v1(
                &["memory"],
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/memory/process_api/x",
            ),
            v1(&["pids"], "/sys/fs/cgroup/pids", "/sys/fs/cgroup/pids"),
            v1(
                &["freezer"],
                "/sys/fs/cgroup/freezer",
                "/sys/fs/cgroup/freezer",
            ),
        ],
    }
}

/// A pure v2 host, confine in a non-root cgroup with other processes,
/// below a parent that isn't delegated.
fn pure_v2(subtree: &[&str], is_root: bool) -> Layout {
    Layout {
        v2: Some(V2Parent {
            dir: PathBuf::from("/sys/fs/cgroup/system.slice/agent.service"),
            is_root,
            controllers: words(&["cpuset", "cpu", "io", "memory", "pids"]),
            subtree_control: words(subtree),
            has_processes: true,
            alone: false,
            delegated: false,
            writable: true,
            up: Some(V2Up {
                dir: PathBuf::from("/sys/fs/cgroup/system.slice"),
                delegated: false,
                controllers: words(&["cpuset", "cpu", "io", "memory", "pids"]),
                subtree_control: words(&["cpu", "memory", "pids"]),
                has_processes: false,
                writable: true,
            }),
        }),
        v1: Vec::new(),
    }
}

/// Where `c` goes when a profile sets every limit.
fn place(l: &Layout, c: Controller) -> Result<Placement, String> {
    l.place_all(&ALL)
        .into_iter()
        .find(|(x, _)| *x == c)
        .map(|(_, p)| p)
        .expect("requested")
}

const ALL: Limits = Limits {
    memory_bytes: Some(64 << 20),
    pids: Some(16),
    cpu_millicores: Some(500),
};

#[test]
fn hybrid_host_falls_back_to_v1_per_controller() {
    let l = hybrid();
    let m = place(&l, Controller::Memory).expect("memory");
    assert_eq!(m.mechanism, Mechanism::V1);
    assert_eq!(m.parent, Path::new("/sys/fs/cgroup/memory/process_api/x"));
    assert_eq!(
        place(&l, Controller::Pids).expect("pids").parent,
        Path::new("/sys/fs/cgroup/pids")
    );
    assert_eq!(
        place(&l, Controller::Cpu).expect("cpu").mechanism,
        Mechanism::V1
    );
    assert!(capability_in(&l, &ALL).is_empty());
}

#[test]
fn v2_memory_below_a_cgroup_with_processes_is_unenforceable() {
    let l = pure_v2(&[], false);
    let gaps = capability_in(&l, &ALL);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].key, "limits.memory");
    assert!(
        gaps[0].why.contains("no-internal-processes"),
        "{}",
        gaps[0].why
    );
    assert!(gaps[0].why.contains("agent.service"));
    // Threaded controllers can still be enabled there.
    let p = place(&l, Controller::Pids).expect("pids");
    assert_eq!(
        (p.mechanism, p.enable),
        (Mechanism::V2, true),
        "pids needs +pids in subtree_control"
    );
    assert!(place(&l, Controller::Cpu).is_ok());
}

#[test]
fn v2_memory_next_to_our_cgroup_when_the_parent_is_delegated() {
    // systemd Delegate=yes + DelegateSubgroup=supervisor: confine runs
    // in <unit>/supervisor, the unit's cgroup is delegated and empty.
    let mut l = pure_v2(&[], false);
    let v2 = l.v2.as_mut().expect("v2");
    v2.dir = PathBuf::from("/sys/fs/cgroup/system.slice/agent.service/supervisor");
    v2.controllers = Vec::new();
    let up = v2.up.as_mut().expect("up");
    up.dir = PathBuf::from("/sys/fs/cgroup/system.slice/agent.service");
    up.delegated = true;
    up.subtree_control = words(&["pids"]);
    let m = place(&l, Controller::Memory).expect("memory");
    assert_eq!(
        m.parent,
        Path::new("/sys/fs/cgroup/system.slice/agent.service")
    );
    assert_eq!((m.enable, m.leaf), (true, false));
    // Every v2 controller of the sandbox shares that one cgroup.
    let p = place(&l, Controller::Pids).expect("pids");
    assert_eq!((p.parent, p.enable), (m.parent.clone(), false));
    assert_eq!(place(&l, Controller::Cpu).expect("cpu").parent, m.parent);

    // Not delegated, or with processes of its own: not ours to use.
    for spoil in [
        |u: &mut V2Up| u.delegated = false,
        |u: &mut V2Up| u.has_processes = true,
    ] {
        let mut l = l.clone();
        spoil(l.v2.as_mut().and_then(|v| v.up.as_mut()).expect("up"));
        assert!(place(&l, Controller::Memory).is_err());
    }
}

#[test]
fn v2_memory_by_stepping_aside_when_confine_is_alone() {
    let mut l = pure_v2(&[], false);
    let v2 = l.v2.as_mut().expect("v2");
    v2.alone = true;
    v2.delegated = true;
    let m = place(&l, Controller::Memory).expect("memory");
    assert_eq!(
        m.parent,
        Path::new("/sys/fs/cgroup/system.slice/agent.service")
    );
    assert_eq!((m.enable, m.leaf), (true, true));
    let p = place(&l, Controller::Pids).expect("pids");
    assert_eq!((p.enable, p.leaf), (true, true));

    // Not ours (no delegation mark): its manager may rewrite
    // subtree_control under a running sandbox. A controller enabled
    // already: not ours to disable afterwards.
    for spoil in [
        |v: &mut V2Parent| v.delegated = false,
        |v: &mut V2Parent| v.subtree_control = vec!["pids".into()],
    ] {
        let mut l = l.clone();
        spoil(l.v2.as_mut().expect("v2"));
        let why = place(&l, Controller::Memory).expect_err("not ours to rearrange");
        assert!(why.contains("no-internal-processes"), "{why}");
    }

    // Without memory nothing needs to move.
    let only_pids = Limits {
        pids: Some(8),
        ..Limits::default()
    };
    let placed = l.place_all(&only_pids);
    let p = placed[0].1.as_ref().expect("pids");
    assert!(!p.leaf, "{p:?}");

    // Alone but not allowed to write there: says so.
    l.v2.as_mut().expect("v2").writable = false;
    assert!(place(&l, Controller::Memory)
        .expect_err("unwritable")
        .contains("isn't writable"));
}

#[test]
fn v2_memory_already_enabled_or_at_the_root() {
    let l = pure_v2(&["memory"], false);
    let p = place(&l, Controller::Memory).expect("memory");
    assert_eq!((p.mechanism, p.enable), (Mechanism::V2, false));
    let l = pure_v2(&[], true);
    let p = place(&l, Controller::Memory).expect("memory at the root");
    assert_eq!((p.mechanism, p.enable), (Mechanism::V2, true));
}

#[test]
fn unwritable_or_missing_controllers_say_why() {
    let mut l = pure_v2(&[], true);
    if let Some(v2) = l.v2.as_mut() {
        v2.writable = false;
    }
    let why = place(&l, Controller::Pids).expect_err("not writable");
    assert!(why.contains("isn't writable"), "{why}");

    let mut l = hybrid();
    l.v1.retain(|h| h.controllers != ["pids"]);
    let why = place(&l, Controller::Pids).expect_err("no pids anywhere");
    assert!(why.contains("cgroup.controllers: hugetlb"), "{why}");

    let mut l = hybrid();
    l.v1[2].writable = false;
    let why = place(&l, Controller::Memory).expect_err("v1 not writable");
    assert!(why.contains("/sys/fs/cgroup/memory/process_api/x"), "{why}");

    let why = place(&Layout::default(), Controller::Cpu).expect_err("no cgroups");
    assert!(why.contains("no cgroup v2 or v1"), "{why}");
    assert!(capability_in(&Layout::default(), &Limits::default()).is_empty());
}

#[test]
fn one_directory_per_hierarchy_plus_cpuacct_for_usage() {
    let l = hybrid();
    let placed: Vec<_> = Controller::ALL
        .iter()
        .map(|&c| (c, place(&l, c).expect("placed")))
        .collect();
    let w = wanted_dirs(&l, &placed);
    let parents: Vec<_> = w.iter().map(|w| (w.parent.clone(), w.optional)).collect();
    assert_eq!(
        parents,
        [
            (PathBuf::from("/sys/fs/cgroup/memory/process_api/x"), false),
            (PathBuf::from("/sys/fs/cgroup/pids"), false),
            (PathBuf::from("/sys/fs/cgroup/cpu"), false),
            (PathBuf::from("/sys/fs/cgroup/freezer"), true),
            (PathBuf::from("/sys/fs/cgroup/cpuacct"), true),
        ]
    );

    // pids alone on v1: the freezer and cpuacct come along, optional.
    let l = hybrid();
    let placed = vec![(Controller::Pids, place(&l, Controller::Pids).expect("pids"))];
    let w = wanted_dirs(&l, &placed);
    let parents: Vec<_> = w.iter().map(|w| (w.parent.clone(), w.optional)).collect();
    assert_eq!(
        parents,
        [
            (PathBuf::from("/sys/fs/cgroup/pids"), false),
            (PathBuf::from("/sys/fs/cgroup/freezer"), true),
            (PathBuf::from("/sys/fs/cgroup/cpuacct"), true),
        ]
    );

    // cpu,cpuacct co-mounted: one directory serves both.
    let mut l = hybrid();
    l.v1.retain(|h| h.controllers != ["cpuacct"]);
    l.v1[0].controllers = words(&["cpu", "cpuacct"]);
    let placed = vec![(Controller::Cpu, place(&l, Controller::Cpu).expect("cpu"))];
    let w = wanted_dirs(&l, &placed);
    assert_eq!(w.len(), 2, "cpu,cpuacct and the freezer");
    assert_eq!(w[0].controllers, ["cpu", "cpuacct"]);
    assert_eq!(w[1].controllers, ["freezer"]);

    // v2: all controllers share our one v2 cgroup.
    let l = pure_v2(&[], true);
    let placed: Vec<_> = Controller::ALL
        .iter()
        .map(|&c| (c, place(&l, c).expect("placed")))
        .collect();
    let w = wanted_dirs(&l, &placed);
    assert_eq!(
        w.len(),
        1,
        "v2's cgroup.freeze and cpu.stat need no v1 directory"
    );
    assert_eq!(w[0].controllers, ["memory", "pids", "cpu"]);
}

#[test]
fn limit_files_and_values() {
    let v2: Vec<_> = Controller::ALL
        .iter()
        .flat_map(|&c| settings(c, Mechanism::V2, &ALL))
        .map(|(f, v, _)| format!("{f}={v}"))
        .collect();
    assert_eq!(
        v2,
        [
            "memory.max=67108864",
            "memory.swap.max=0",
            "pids.max=16",
            "cpu.max=50000 100000"
        ]
    );
    let v1: Vec<_> = Controller::ALL
        .iter()
        .flat_map(|&c| settings(c, Mechanism::V1, &ALL))
        .map(|(f, v, _)| format!("{f}={v}"))
        .collect();
    assert_eq!(
        v1,
        [
            "memory.limit_in_bytes=67108864",
            "memory.memsw.limit_in_bytes=67108864",
            "memory.swappiness=0",
            "pids.max=16",
            "cpu.cfs_period_us=100000",
            "cpu.cfs_quota_us=50000"
        ]
    );
    assert!(settings(Controller::Cpu, Mechanism::V2, &Limits::default()).is_empty());
    assert_eq!(cpu_quota_usec(1500), 150_000);
    assert_eq!(cpu_quota_usec(10), 1_000);
}

#[test]
fn ids_and_limits_are_checked() {
    let none = Limits::default();
    assert!(validate("0123abcd", &none).is_ok());
    for bad in ["", "../x", "a/b", "a b", "é", &"x".repeat(129)] {
        assert!(validate(bad, &none).is_err(), "{bad:?}");
    }
    let cpu = |mc| Limits {
        cpu_millicores: Some(mc),
        ..Limits::default()
    };
    assert!(validate("a", &cpu(9)).is_err());
    assert!(validate("a", &cpu(10)).is_ok());
    let zero = Limits {
        pids: Some(0),
        ..Limits::default()
    };
    assert!(validate("a", &zero).is_err());
}

#[test]
fn cgroup_dirs_and_keyed_files() {
    let mp = Path::new("/cg");
    assert_eq!(cgroup_dir(mp, "/", "/"), Some(PathBuf::from("/cg")));
    assert_eq!(cgroup_dir(mp, "/", "/a/b"), Some(PathBuf::from("/cg/a/b")));
    assert_eq!(cgroup_dir(mp, "/a", "/a/b"), Some(PathBuf::from("/cg/b")));
    assert_eq!(cgroup_dir(mp, "/a", "/ab"), None);
    assert_eq!(cgroup_dir(mp, "/", "/a/../b"), None);

    assert_eq!(keyed_in("low 0\noom 3\noom_kill 2\n", "oom_kill"), Some(2));
    assert_eq!(keyed_in("oom_kill_disable 0\n", "oom_kill"), None);
    assert_eq!(keyed_in("", "usage_usec"), None);
}

/// Skips (false) unless root with a writable cgroup v2; fails instead
/// with CONFINE_REQUIRE_KERNEL=1.
fn real_v2(test: &str) -> Option<V2Parent> {
    let why = if !nix::unistd::geteuid().is_root() {
        "needs root".to_string()
    } else {
        match Layout::discover().v2 {
            Some(v2) if v2.writable => return Some(v2),
            Some(v2) => format!("{} isn't writable", v2.dir.display()),
            None => "no cgroup v2 mounted".to_string(),
        }
    };
    if std::env::var_os("CONFINE_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("{test}: {why}, and CONFINE_REQUIRE_KERNEL=1");
    }
    eprintln!("skipped: {test}: {why}");
    None
}

/// The v2 mechanics without controllers (a hybrid host binds them all to
/// v1): mkdir, cgroup.procs, cpu.stat, cgroup.kill, rmdir, on the real
/// v2 hierarchy. A cgroup with no controllers changes nothing for its
/// processes.
#[test]
fn v2_membership_kill_and_removal() {
    let Some(v2) = real_v2("v2_membership_kill_and_removal") else {
        return;
    };
    let path = v2
        .dir
        .join(format!("confine-unit-v2-{}", std::process::id()));
    fs::create_dir(&path).expect("mkdir in v2");
    let cg = Cgroup {
        leaf: None,
        dirs: vec![Dir {
            path: path.clone(),
            _lock: None,
            mechanism: Mechanism::V2,
            controllers: Vec::new(),
            optional: false,
        }],
        enforced: Vec::new(),
        owner: std::process::id(),
    };
    // It waits on stdin until it has been moved in.
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "read x; (setsid sleep 60 &); exec sleep 60"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = i32::try_from(child.id()).expect("pid fits");
    cg.add(pid).expect("add to v2");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("release the child");
    }
    // The double-forked sleep started after the move, so it is inside.
    let start = Instant::now();
    while cg.pids().expect("pids").len() < 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let members = cg.pids().expect("pids");
    assert!(members.contains(&pid), "{members:?}");
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(cg.stats().cpu_usage_usec.is_some(), "v2 cpu.stat");
    assert!(cg.add(0).is_err() && cg.add(std::process::id() as i32).is_err());

    cg.kill_all().expect("kill_all");
    assert!(cg.pids().expect("pids").is_empty());
    let status = child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    cg.remove().expect("remove");
    assert!(!path.exists());
}

/// A controller v2 claims but doesn't deliver: the half-made cgroup is
/// removed again. (Here the parent "offers" pids, as if already in its
/// subtree_control; on a hybrid host the child won't get it.)
#[test]
fn v2_failure_after_mkdir_leaves_nothing() {
    let Some(mut v2) = real_v2("v2_failure_after_mkdir_leaves_nothing") else {
        return;
    };
    if v2.controllers.iter().any(|c| c == "pids") {
        eprintln!("skipped: v2 really has pids here");
        return;
    }
    v2.controllers.push("pids".to_string());
    v2.subtree_control.push("pids".to_string());
    let dir = v2.dir.clone();
    let layout = Layout {
        v2: Some(v2),
        v1: Vec::new(),
    };
    let id = format!("unit-fail-{}", std::process::id());
    let limits = Limits {
        pids: Some(8),
        ..Limits::default()
    };
    let e = Cgroup::create_in(&layout, &id, &limits).expect_err("pids not in v2");
    assert!(
        matches!(
            e,
            CgroupError::Unenforceable {
                key: "limits.pids",
                ..
            }
        ),
        "{e}"
    );
    assert!(!dir.join(format!("confine-{id}")).exists());
}
