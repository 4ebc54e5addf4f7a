//! confine under the hardening of scripts/confine-agent@.service, without
//! systemd (the test machine doesn't boot it): the unit's
//! `CapabilityBoundingSet=` and `NoNewPrivileges=` through setpriv, as
//! systemd applies them (root exec's confine with that bounding set, so its
//! permitted and effective sets are that set), and `ProtectSystem=full`,
//! `PrivateTmp=` and `PrivateMounts=` through a mount namespace of the
//! test's own (unshare, slave propagation: nothing mounted in it reaches the
//! host, and it is gone with its last process). The unit's system call
//! filters are not emulated.
//!
//! Under all of it: the default profile's smoke test, a sandbox with a
//! cgroup limit, one with the egress proxy, SIGTERM reaching the agent; and
//! without CAP_KILL confine refuses (125) instead of starting a sandbox it
//! couldn't stop.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn unit() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/confine-agent@.service");
    std::fs::read_to_string(p).unwrap()
}

/// The unit's `KEY=` value (the last one, as systemd reads it).
fn directive(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

/// The unit's bounding set as setpriv spells it (`-all,+sys_admin,...`),
/// less `without`.
fn bounding_set(without: Option<&str>) -> String {
    let caps = directive(&unit(), "CapabilityBoundingSet").expect("the unit sets a bounding set");
    let mut s = String::from("-all");
    for c in caps.split_whitespace() {
        if Some(c) == without {
            continue;
        }
        s.push_str(",+");
        s.push_str(&c.trim_start_matches("CAP_").to_lowercase());
    }
    s
}

/// `confine ARGS` as the unit would run it: in a mount namespace with /usr,
/// /boot, /efi and /etc read-only (ProtectSystem=full) and /tmp, /var/tmp
/// of its own (PrivateTmp=), under the unit's bounding set and no_new_privs.
fn as_the_unit(without: Option<&str>, args: &[&str]) -> Command {
    let u = unit();
    assert_eq!(directive(&u, "ProtectSystem").as_deref(), Some("full"));
    assert_eq!(directive(&u, "PrivateTmp").as_deref(), Some("yes"));
    assert_eq!(directive(&u, "PrivateMounts").as_deref(), Some("yes"));
    assert_eq!(directive(&u, "NoNewPrivileges").as_deref(), Some("yes"));
    // Only in the new namespace: the mounts go with it.
    let setup = "set -e
        for d in /usr /boot /efi /etc; do
          if [ -d \"$d\" ]; then mount --bind \"$d\" \"$d\"; mount -o remount,bind,ro \"$d\"; fi
        done
        # A checkout beneath the host's /tmp (confine and the fixtures
        # live in its target/) stays reachable, as a unit's own
        # ReadWritePaths= would keep it.
        case \"$KEEP\" in /tmp/*) mount --bind /tmp /mnt;; *) KEEP=;; esac
        mount -t tmpfs -o mode=1777 tmpfs /tmp
        mount -t tmpfs -o mode=1777 tmpfs /var/tmp
        if [ -n \"$KEEP\" ]; then mkdir -p \"$KEEP\"; mount --bind \"/mnt/${KEEP#/tmp/}\" \"$KEEP\"; fi
        exec setpriv --bounding-set=\"$0\" --no-new-privs \"$@\"";
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "slave", "--", "sh", "-c", setup])
        .arg(bounding_set(without))
        .arg(bin())
        .args(args)
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", PATH)
        .env(
            "KEEP",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target/tmp has a parent"),
        );
    c
}

fn ready(test: &str) -> bool {
    can_run(test) && have(test, "/usr/bin/setpriv") && have(test, "/usr/bin/unshare")
}

#[test]
fn default_profile_smoke_test_under_the_units_hardening() {
    if !ready("default_profile_smoke_test_under_the_units_hardening") {
        return;
    }
    let f = Fixture::new("service-smoke");
    let target = f.outside.join("escaped");
    let ws = f.ws.to_str().unwrap();
    let script = format!(
        "echo hi > {ws}/f && cat {ws}/f && id -u && \
         if echo x > {} 2>/dev/null; then echo ESCAPED; else echo outside-refused; fi",
        target.display()
    );
    let o = as_the_unit(None, &["run", "-w", ws, "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("hi\n{AGENT_UID}\noutside-refused\n"),
        "{}",
        show(&o)
    );
    assert!(!target.exists());
    // The control: the agent's uid may write there outside the sandbox.
    let c = as_agent_unconfined(&["sh", "-c", &format!("echo x > {}", target.display())]);
    assert_status(&c, 0);
}

#[test]
fn a_cgroup_limit_and_the_egress_proxy_work_under_the_units_hardening() {
    if !ready("a_cgroup_limit_and_the_egress_proxy_work_under_the_units_hardening") {
        return;
    }
    let f = Fixture::new("service-features");
    let ws = f.ws.to_str().unwrap();
    // limits.pids: a cgroup of the sandbox's own, made and removed by
    // confine; network: proxy: the egress proxy (its uid switch, its
    // listeners on port 80 inside the sandbox).
    let p = f.profile(
        "features",
        "version: 1\nextends: default\nlimits:\n  pids: 64\nnetwork:\n  mode: proxy\n  allow: [\"example.com:80\"]\n",
    );
    let o = as_the_unit(
        None,
        &[
            "run",
            "-p",
            p.to_str().unwrap(),
            "-w",
            ws,
            "--",
            "sh",
            "-c",
            "echo ok",
        ],
    )
    .output()
    .unwrap();
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "ok\n", "{}", show(&o));
}

#[test]
fn sigterm_reaches_the_agent_under_the_units_hardening() {
    if !ready("sigterm_reaches_the_agent_under_the_units_hardening") {
        return;
    }
    let f = Fixture::new("service-term");
    let ws = f.ws.to_str().unwrap();
    let ready_file = f.ws.join("ready");
    let script = format!(
        "trap 'exit 7' TERM; touch {}; while :; do sleep 0.1; done",
        ready_file.display()
    );
    // unshare, sh and setpriv each exec the next: the child is confine.
    let mut child = as_the_unit(None, &["run", "-w", ws, "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        poll(Duration::from_secs(30), || ready_file.exists()),
        "the agent never started"
    );
    // SAFETY: kill with integer arguments, to the confine we started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let o = Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    assert_status(&o, 7);
}

#[test]
fn without_cap_kill_confine_refuses_rather_than_start_a_sandbox_it_cant_stop() {
    if !ready("without_cap_kill_confine_refuses_rather_than_start_a_sandbox_it_cant_stop") {
        return;
    }
    let f = Fixture::new("service-nokill");
    let ws = f.ws.to_str().unwrap();
    let marker = f.ws.join("ran");
    let o = as_the_unit(
        Some("CAP_KILL"),
        &["run", "-w", ws, "--", "touch", marker.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_status(&o, 125);
    assert!(!marker.exists(), "the command ran: {}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains("CAP_KILL") && err.contains("CapabilityBoundingSet="),
        "{}",
        show(&o)
    );
}
