//! Races against confine's privileged, host-side steps (DESIGN.md §4,
//! host-side rules): an attacker sandbox flips renames and symlinks in a
//! loop inside its own workspace while other sandboxes launch on paths in
//! it. Each attack is bounded in time and harmless if it succeeds (the
//! victim only looks, or the target is a fixture directory), and each has
//! a control: launches that meet the real directory run normally.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Exchanges `argv[1]` with `argv[2]` (and, alternately, `argv[4]`) and
/// back, over and over, for `argv[3]` seconds; with `--rename` as
/// `argv[4]`, renames `argv[2]` onto `argv[1]` and back instead. Each state is held for a
/// varying time, from none to a few hundred microseconds, so that two
/// lookups of the victim's launch some distance apart (the plan's, the
/// supervisor's, the init's) meet different states.
const FLIPPER: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
int main(int argc, char **argv) {
    time_t end = time(NULL) + atoi(argv[3]);
    long n = 0, ok = 0;
    while (time(NULL) < end) {
        if (argc > 4 && strcmp(argv[4], "--rename") == 0) {
            /* Plain renames: argv[2] moved onto argv[1] (replacing an empty
               directory there) and back. */
            for (int i = 0; i < 500; i++, n++) {
                if (rename(argv[2], argv[1]) == 0) {
                    ok++;
                    rename(argv[1], argv[2]);
                }
            }
            continue;
        }
        for (int i = 0; i < 500; i++, n++) {
            const char *other = (argc > 4 && (n & 1)) ? argv[4] : argv[2];
            struct timespec hold = {0, (n % 3) ? (long)(n * 7919 % 300) * 1000 : 0};
            if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, other, RENAME_EXCHANGE) == 0) {
                ok++;
                if (hold.tv_nsec) nanosleep(&hold, NULL);
                syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, other, RENAME_EXCHANGE);
                if (hold.tv_nsec) nanosleep(&hold, NULL);
            }
        }
    }
    printf("flips=%ld\n", ok);
    return ok > 0 ? 0 : 1;
}
"#;

/// How long each attacker flips.
const ATTACK_SECS: u64 = 12;
/// At most this many victim launches per attack.
const LAUNCHES: usize = 150;

/// Starts the attacker sandbox on the fixture's workspace (its write grant)
/// and waits until it is flipping.
fn attacker(f: &Fixture, a: &str, b: &str, c: Option<&str>) -> Sandbox {
    let bin = compile(f, "flipper", FLIPPER).expect("a C compiler (installed by .ci/run)");
    let secs = ATTACK_SECS.to_string();
    let mut cmd = vec![bin.to_str().unwrap(), a, b, secs.as_str()];
    cmd.extend(c);
    let mut s = f.spawn("default", &cmd);
    // It flips relative to its working directory, the workspace.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.running(),
        "the attacker must be running\n{}",
        show(&s.finish())
    );
    s
}

/// Launches with `launch` while the attacker flips (for at most `limit`
/// launches, within the attack's time), checking each with `check`; every
/// launch either runs (0) or is refused (125). Returns how many ran.
fn under_attack(
    limit: usize,
    mut launch: impl FnMut() -> std::process::Output,
    mut check: impl FnMut(usize, &std::process::Output),
) -> usize {
    let (mut ran, mut n) = (0, 0);
    let end = Instant::now() + Duration::from_secs(ATTACK_SECS - 1);
    while Instant::now() < end && n < limit {
        n += 1;
        let o = launch();
        match o.status.code() {
            Some(0) => ran += 1,
            Some(125) => {}
            _ => panic!("launch {n}: unexpected status\n{}", show(&o)),
        }
        check(n, &o);
    }
    eprintln!("{n} launches under attack, {ran} ran");
    ran
}

fn run_in(ws: &Path, profile: &str, script: &str) -> std::process::Output {
    std::process::Command::new(bin())
        .args(["run", "-p", profile, "-w"])
        .arg(ws)
        .args(["--", "/bin/sh", "-c", script])
        .env("PATH", PATH)
        .stdin(std::process::Stdio::null())
        .current_dir("/")
        .output()
        .unwrap()
}

/// Finding 1: a concurrent sandbox swaps the victim's workspace for a
/// symlink to the host's root (as the init sees it, `/oldroot`, and as a
/// relative link) while the victim launches. No launch may get anything but
/// its own workspace: either it runs on the real directory, or it is
/// refused.
#[test]
fn a_workspace_swapped_for_a_symlink_during_launch_is_never_bound() {
    if !can_run("a_workspace_swapped_for_a_symlink_during_launch_is_never_bound") {
        return;
    }
    let f = Fixture::new("race-ws");
    let sub = f.ws.join("sub");
    f.file(&sub.join("sub-marker"), "real\n");
    symlink("/oldroot", f.ws.join("sub.abs")).unwrap();
    // From the workspace up to `/` on the host, which is /oldroot in the
    // init's staging view.
    let depth = f.ws.components().count() - 1;
    symlink("../".repeat(depth), f.ws.join("sub.rel")).unwrap();
    for l in ["sub.abs", "sub.rel"] {
        std::os::unix::fs::lchown(f.ws.join(l), Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    }
    let mut a = attacker(&f, "sub", "sub.abs", Some("sub.rel"));

    let check = format!(
        "cd /; test -e '{s}/sub-marker' && echo REAL; \
         test -e '{s}/etc/passwd' && echo HOST; test -e '{s}/oldroot' && echo STAGE; true",
        s = sub.display()
    );
    let (mut real, mut refused, mut n) = (0, 0, 0);
    let end = Instant::now() + Duration::from_secs(ATTACK_SECS - 1);
    while Instant::now() < end && n < LAUNCHES {
        n += 1;
        let o = run_in(&sub, "default", &check);
        let out = stdout(&o);
        assert!(
            !out.contains("HOST") && !out.contains("STAGE"),
            "launch {n} got the host's root as its workspace\n{}",
            show(&o)
        );
        match o.status.code() {
            Some(0) => {
                assert!(out.contains("REAL"), "{}", show(&o));
                real += 1;
            }
            Some(125) => refused += 1,
            _ => panic!("unexpected status\n{}", show(&o)),
        }
    }
    let o = a.finish();
    assert!(stdout(&o).contains("flips="), "{}", show(&o));
    eprintln!("{n} launches under attack: {real} ran on the real workspace, {refused} refused");
    // Control: once the attacker has stopped, the launch runs.
    let o = run_in(&sub, "default", &check);
    assert_status(&o, 0);
    assert!(stdout(&o).contains("REAL"), "{}", show(&o));
}

const PROTECT_HOOKS: &str = "version: 1
extends: default
filesystem:
  protect: [\"{workspace}/.git/hooks/\", \"{workspace}/.git/keep/\", \"{workspace}/.env\"]
";

/// Finding 2: a concurrent sandbox flips `.git` between a directory and a
/// symlink to a root-owned directory outside the workspace while sandboxes
/// that protect paths under `.git` launch and end. confine must never
/// create, chown or remove anything there.
#[test]
fn placeholders_never_reach_outside_the_workspace_through_a_flipped_parent() {
    if !can_run("placeholders_never_reach_outside_the_workspace_through_a_flipped_parent") {
        return;
    }
    let f = Fixture::new("race-protect");
    let victim = f.root.join("victim");
    fs::create_dir(&victim).unwrap();
    // An empty directory the old cleanup would have removed, and nothing
    // named hooks.
    fs::create_dir(victim.join("keep")).unwrap();
    fs::create_dir(f.ws.join(".git")).unwrap();
    std::os::unix::fs::chown(f.ws.join(".git"), Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    symlink(&victim, f.ws.join(".git.lnk")).unwrap();
    std::os::unix::fs::lchown(f.ws.join(".git.lnk"), Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let profile = f.profile("protect", PROTECT_HOOKS);
    let mut a = attacker(&f, ".git", ".git.lnk", None);

    under_attack(
        LAUNCHES,
        || run_in(&f.ws, profile.to_str().unwrap(), "true"),
        |n, o| {
            let entries: Vec<_> = fs::read_dir(&victim)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                entries,
                vec![std::ffi::OsString::from("keep")],
                "launch {n} changed the directory outside the workspace\n{}",
                show(o)
            );
            let keep = fs::metadata(victim.join("keep")).unwrap();
            assert_eq!((keep.uid(), keep.gid()), (0, 0), "launch {n} chowned it");
        },
    );
    a.finish();
    // Control: with the attacker gone, the same profile runs and protects.
    let o = run_in(
        &f.ws,
        profile.to_str().unwrap(),
        &format!(
            "cd '{}' && {{ mkdir .git/hooks/x 2>/dev/null && echo WROTE; \
             test -f .env && echo ENV_IS_FILE; test -d .git/hooks && echo HOOKS_IS_DIR; true; }}",
            f.ws.display()
        ),
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(!out.contains("WROTE"), "{}", show(&o));
    assert!(
        out.contains("ENV_IS_FILE") && out.contains("HOOKS_IS_DIR"),
        "{}",
        show(&o)
    );
    // Nothing of confine's is left in the workspace.
    assert!(!f.ws.join(".git/hooks").exists() && !f.ws.join(".env").exists());
}

/// Finding 3: sandboxes come and go on a workspace while one long-running
/// sandbox keeps trying to write its protected paths. Protection holds for
/// its whole run, no launch fails because of another, and when the last
/// sandbox has ended nothing confine added is left.
#[test]
fn protection_holds_while_other_sandboxes_on_the_workspace_come_and_go() {
    if !can_run("protection_holds_while_other_sandboxes_on_the_workspace_come_and_go") {
        return;
    }
    let f = Fixture::new("race-shared");
    let profile = f.profile("protect", PROTECT_HOOKS);
    let stop = f.ws.join("stop");
    // The first sandbox makes the placeholders, and ends before the others.
    let mut first = f.spawn_sh(
        profile.to_str().unwrap(),
        &format!(
            "cd '{ws}'; i=0; while [ ! -e stop-first ] && [ $i -lt 600 ]; do \
               i=$((i+1)); sleep 0.02; done",
            ws = f.ws.display()
        ),
    );
    assert!(poll(Duration::from_secs(10), || f.ws.join(".env").exists()));
    // The long one: tries both protected paths until told to stop (bounded).
    let mut long = f.spawn_sh(
        profile.to_str().unwrap(),
        &format!(
            "cd '{ws}'; touch long-started; i=0; while [ ! -e stop ] && [ $i -lt 600 ]; do \
               i=$((i+1)); \
               echo evil > .git/hooks/pre-commit 2>/dev/null && echo WROTE_HOOK; \
               echo X=1 > .env 2>/dev/null && echo WROTE_ENV; \
               sleep 0.02; done; echo LOOPS=$i",
            ws = f.ws.display()
        ),
    );
    assert!(poll(Duration::from_secs(10), || f
        .ws
        .join("long-started")
        .exists()));
    fs::write(f.ws.join("stop-first"), "").unwrap();
    assert_status(&first.finish(), 0);

    let ws = f.ws.clone();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let ws = ws.clone();
            let profile = profile.clone();
            std::thread::spawn(move || {
                (0..8)
                    .map(|_| run_in(&ws, profile.to_str().unwrap(), "true"))
                    .filter(|o| o.status.code() != Some(0))
                    .map(|o| show(&o))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "concurrent launches failed:\n{failures:#?}"
    );
    // The long sandbox's placeholders are still there for it.
    assert!(f.ws.join(".env").exists() && f.ws.join(".git/hooks").is_dir());

    fs::write(&stop, "").unwrap();
    let o = long.finish();
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("LOOPS="), "{}", show(&o));
    assert!(
        !out.contains("WROTE"),
        "a protected path became writable while another sandbox ended\n{}",
        show(&o)
    );
    // The last sandbox has ended: the workspace is as the agent left it.
    for p in [".env", ".git/hooks", ".git/keep", ".git"] {
        assert!(!f.ws.join(p).exists(), "{p} was left behind");
    }
    let mut left: Vec<_> = fs::read_dir(&f.ws)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["long-started", "stop", "stop-first"]);
}

/// A concurrent sandbox swaps a root-owned, non-empty directory of its
/// workspace into the place of a placeholder directory confine has just
/// made: confine must never hand that directory to the agent (chown), nor
/// remove anything of it.
#[test]
fn a_directory_swapped_for_a_new_placeholder_is_never_chowned() {
    if !can_run("a_directory_swapped_for_a_new_placeholder_is_never_chowned") {
        return;
    }
    let f = Fixture::new("race-chown");
    let rootdir = f.ws.join("rootdir");
    fs::create_dir(&rootdir).unwrap();
    fs::write(rootdir.join("file"), "root's\n").unwrap();
    let profile = f.profile(
        "protect",
        "version: 1\nextends: default\nfilesystem:\n  protect: [\"{workspace}/.git/\"]\n",
    );
    // Held open from the start, so its owner is read from the directory
    // itself, wherever the attacker has moved it.
    let root_dir = fs::File::open(&rootdir).unwrap();
    let owner = || root_dir.metadata().unwrap().uid();
    let mut a = attacker(&f, ".git", "rootdir", Some("--rename"));
    under_attack(
        LAUNCHES * 2,
        || run_in(&f.ws, profile.to_str().unwrap(), "true"),
        |n, o| {
            assert_eq!(
                owner(),
                0,
                "launch {n} handed root's directory to the agent\n{}",
                show(o)
            )
        },
    );
    a.finish();
    // Root's directory and its file are intact, wherever the attacker left it.
    assert_eq!(owner(), 0);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&root_dir);
    assert_eq!(
        fs::read_to_string(format!("/proc/self/fd/{fd}/file")).unwrap(),
        "root's\n"
    );
    // Control: with the attacker gone, the placeholder is made and removed.
    let o = run_in(
        &f.ws,
        profile.to_str().unwrap(),
        &format!("test -d '{}/.git' && echo HELD", f.ws.display()),
    );
    assert_status(&o, 0);
    if !f.ws.join(".git").join("file").exists() {
        assert!(stdout(&o).contains("HELD"), "{}", show(&o));
    }
}

/// A concurrent sandbox flips the directory of another launch's audit log
/// between itself and a symlink to a root-owned directory outside: confine
/// must never create or write the log anywhere but where the plan resolved
/// it.
#[test]
fn an_audit_log_directory_flipped_to_a_symlink_is_never_followed() {
    if !can_run("an_audit_log_directory_flipped_to_a_symlink_is_never_followed") {
        return;
    }
    let f = Fixture::new("race-audit");
    let logs = f.ws.join("logs");
    fs::create_dir(&logs).unwrap();
    std::os::unix::fs::chown(&logs, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let victim = f.root.join("victim");
    fs::create_dir(&victim).unwrap();
    symlink(&victim, f.ws.join("logs.lnk")).unwrap();
    std::os::unix::fs::lchown(f.ws.join("logs.lnk"), Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    // The launches under attack run on a workspace of their own, so the log
    // is outside their grants.
    let other = Fixture::new("race-audit-other");
    let log = logs.join("audit.jsonl");
    let launch = || {
        std::process::Command::new(bin())
            .args(["run", "-w"])
            .arg(&other.ws)
            .arg("--audit-log")
            .arg(&log)
            .args(["--", "/bin/true"])
            .env("PATH", PATH)
            .output()
            .unwrap()
    };
    let mut a = attacker(&f, "logs", "logs.lnk", None);
    under_attack(LAUNCHES, &launch, |n, o| {
        assert_eq!(
            fs::read_dir(&victim).unwrap().count(),
            0,
            "launch {n} wrote its audit log through the symlink\n{}",
            show(o)
        )
    });
    a.finish();
    // With the attacker gone it is still refused, and says why: the log's
    // directory is the agent's to change. (A log in a directory only root
    // can change is written: tests/cli.rs, tests/audit.rs.)
    let o = launch();
    assert_status(&o, 125);
    assert!(stderr(&o).contains("could be redirected"), "{}", show(&o));
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
}

/// A workspace named through a symlink that lies in a directory another
/// user (here the agent's uid) can change is refused: whoever writes there
/// chooses the workspace, at the very moment confine resolves it. A
/// symlink in a directory only root can change is followed (the control).
#[test]
fn a_workspace_through_a_symlink_another_user_controls_is_refused() {
    if !can_run("a_workspace_through_a_symlink_another_user_controls_is_refused") {
        return;
    }
    let f = Fixture::new("ws-link");
    let target = f.ws.join("real");
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    // In the agent's own directory: the agent could repoint it.
    let theirs = f.ws.join("link");
    symlink(&target, &theirs).unwrap();
    let o = run_in(&theirs, "default", "true");
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("is a symlink in a directory another user can change"),
        "{}",
        show(&o)
    );
    // In a directory only root can change: followed.
    let ours = f.root.join("link");
    symlink(&target, &ours).unwrap();
    let o = run_in(&ours, "default", "true");
    assert_status(&o, 0);
}
