//! confine without root: the sandbox starts with a user namespace that maps
//! only the caller's uid and gid (DESIGN.md §4 step 5). Where user namespaces
//! are blocked, confine refuses and names the cause and the fix. Blocked
//! namespaces are simulated as DESIGN.md §8 says: an unprivileged uid inside
//! a user namespace of its own whose max_user_namespaces is 0, with every
//! capability dropped; host-wide settings stay untouched.
mod common;
use common::*;
use std::process::Command;

/// `confine run` as the agent's uid, with no capabilities.
fn as_agent(f: &Fixture, script: &str) -> std::process::Output {
    setpriv_as_agent()
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(bin())
        .args(["run", "-w"])
        .arg(&f.ws)
        .args(["--", "/bin/sh", "-c", script])
        .env("PATH", PATH)
        .current_dir(&f.ws)
        .output()
        .unwrap()
}

fn userns_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|s| s.trim() != "0")
        .unwrap_or(false)
}

#[test]
fn runs_unprivileged_where_user_namespaces_are_allowed() {
    let name = "runs_unprivileged_where_user_namespaces_are_allowed";
    if !can_run(name) || !require_landlock(name, 1) {
        return;
    }
    if !userns_allowed() {
        skip_or_fail(name, "user namespaces are disabled on this host");
        return;
    }
    let f = Fixture::new("unpriv");
    let victim = f.file(&f.outside.join("victim"), "original");
    let o = as_agent(
        &f,
        &format!(
            "id -u; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; \
             echo made > made && cat made; echo pwned > {v}; echo outside=$?; \
             ls /proc | grep -c '^[0-9]'",
            v = victim.display()
        ),
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with(&format!("{AGENT_UID}\n")), "{}", show(&o));
    for field in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert!(
            out.contains(&format!("{field}:\t0000000000000000")),
            "{field}: {}",
            show(&o)
        );
    }
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{}",
        show(&o)
    );
    assert!(
        out.contains("made\n"),
        "the workspace must be writable: {}",
        show(&o)
    );
    assert!(
        out.contains("outside=2"),
        "the write outside must fail: {}",
        show(&o)
    );
    // Its own PID namespace: the init and the shell (and ls, grep).
    let pids: u32 = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(pids <= 4, "host processes visible: {}", show(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original");
}

#[test]
fn unprivileged_agent_runs_only_as_the_caller() {
    if !can_run("unprivileged_agent_runs_only_as_the_caller") || !userns_allowed() {
        return;
    }
    let f = Fixture::new("unpriv-user");
    let marker = f.ws.join("ran");
    let p = f.profile(
        "other",
        "version: 1\nextends: default\nuser: \"1234:1234\"\n",
    );
    let o = setpriv_as_agent()
        .arg(bin())
        .args(["run", "-p"])
        .arg(&p)
        .arg("-w")
        .arg(&f.ws)
        .args(["--", "/bin/sh", "-c"])
        .arg(format!("touch {}", marker.display()))
        .output()
        .unwrap();
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("can only run the agent as you"),
        "{}",
        show(&o)
    );
    assert!(!marker.exists());
}

#[test]
fn blocked_user_namespaces_are_refused_with_cause_and_fix() {
    let name = "blocked_user_namespaces_are_refused_with_cause_and_fix";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("unpriv-blocked");
    // Inside `unshare -U --map-user=AGENT_UID`, files owned by root outside
    // appear as AGENT_UID: a root-owned workspace is the agent's there.
    let ws = f.root.join("rootws");
    std::fs::create_dir(&ws).unwrap();
    let marker = ws.join("ran");
    let run = |limit: &str| {
        let script = format!(
            "{limit} exec setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
             {bin} run -w {ws} -- /bin/sh -c 'touch {m}'",
            bin = bin(),
            ws = ws.display(),
            m = marker.display()
        );
        Command::new("unshare")
            .args([
                "-U",
                &format!("--map-user={AGENT_UID}"),
                &format!("--map-group={AGENT_GID}"),
                "--keep-caps",
            ])
            .args(["/bin/sh", "-c", &script])
            .env("PATH", PATH)
            .output()
            .unwrap()
    };
    let o = run("echo 0 > /proc/sys/user/max_user_namespaces &&");
    assert_status(&o, 125);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {}", show(&o));
    assert!(err.starts_with("confine: user namespace"), "{}", show(&o));
    assert!(
        err.contains("max_user_namespaces is 0"),
        "names the cause: {}",
        show(&o)
    );
    assert!(err.contains("fix:"), "names a fix: {}", show(&o));
    assert!(!marker.exists(), "nothing may run");

    // Control: the same, with user namespaces allowed, runs.
    if userns_allowed() {
        let o = run("");
        assert_status(&o, 0);
        assert!(marker.exists(), "{}", show(&o));
    }
}
