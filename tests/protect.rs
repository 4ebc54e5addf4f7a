//! `filesystem.protect`: paths inside a write grant that stay read-only and
//! can be neither replaced nor removed, whether they exist, don't exist yet,
//! or are symlinks. Each attempt has a control: the rest of the workspace
//! stays writable.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::time::Duration;

const PROFILE: &str = "version: 1
extends: default
filesystem:
  protect:
    - \"{workspace}/.git/hooks/\"
    - \"{workspace}/.git/config\"
    - \"{workspace}/.git/linked\"
    - \"{workspace}/.env\"
";

/// Runs `script` and returns `name=status` pairs it printed.
fn attempts(f: &Fixture, script: &str) -> String {
    let p = f.profile("protect", PROFILE);
    let o = f.sh(
        p.to_str().unwrap(),
        &format!("cd {} && {script}", f.ws.display()),
    );
    assert_status(&o, 0);
    stdout(&o)
}

fn expect(out: &str, name: &str, ok: bool) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {out}"));
    let status: i32 = line.split('=').nth(1).unwrap().trim().parse().unwrap();
    assert_eq!(status == 0, ok, "{name}: {line}\n{out}");
}

#[test]
fn protected_paths_can_be_neither_written_nor_replaced() {
    if !can_run("protected_paths_can_be_neither_written_nor_replaced") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect");
    let git = f.ws.join(".git");
    f.file(&git.join("config"), "[core]\n");
    f.file(&f.ws.join("hooks-real/pre-commit"), "#!/bin/sh\n");
    symlink("../hooks-real", git.join("linked")).unwrap();
    std::os::unix::fs::lchown(git.join("linked"), Some(AGENT_UID), Some(AGENT_GID)).unwrap();

    let out = attempts(
        &f,
        "echo x >> .git/config; echo config=$?; \
         rm -f .git/config; echo rm_config=$?; \
         mkdir -p .git/hooks/x; echo hooks=$?; \
         echo evil > .git/hooks/pre-commit; echo hook_file=$?; \
         echo SECRET=1 > .env; echo env=$?; \
         rm -f .git/linked; echo rm_link=$?; \
         echo evil >> .git/linked/pre-commit; echo via_link=$?; \
         echo evil >> hooks-real/pre-commit; echo link_target=$?; \
         mv .git .git-old; echo mv_git=$?; \
         echo ok > .git/HEAD; echo git_writable=$?; \
         echo ok > notes.txt; echo ws_writable=$?",
    );
    for attack in [
        "config",
        "rm_config",
        "hooks",
        "hook_file",
        "env",
        "rm_link",
        "via_link",
        "link_target",
        "mv_git",
    ] {
        expect(&out, attack, false);
    }
    // Controls: the rest of .git and of the workspace stay writable.
    expect(&out, "git_writable", true);
    expect(&out, "ws_writable", true);

    // On the host: nothing changed, the placeholders are gone again.
    assert_eq!(fs::read_to_string(git.join("config")).unwrap(), "[core]\n");
    assert_eq!(
        fs::read_to_string(f.ws.join("hooks-real/pre-commit")).unwrap(),
        "#!/bin/sh\n"
    );
    assert_eq!(
        fs::read_link(git.join("linked")).unwrap().to_str(),
        Some("../hooks-real")
    );
    assert!(
        !git.join("hooks").exists(),
        "the placeholder for .git/hooks must be removed"
    );
    assert!(
        !f.ws.join(".env").exists(),
        "the placeholder for .env must be removed"
    );
    assert_eq!(fs::read_to_string(git.join("HEAD")).unwrap(), "ok\n");
}

#[test]
fn protect_of_a_path_whose_parents_are_missing_pins_them_too() {
    if !can_run("protect_of_a_path_whose_parents_are_missing_pins_them_too") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-missing");
    // No .git at all: .git is created (owned by the agent, writable), and
    // .git/hooks under it is protected; .git itself can't be moved away.
    let out = attempts(
        &f,
        "mkdir .git/hooks/x; echo hooks=$?; \
         mv .git elsewhere; echo mv_git=$?; \
         echo x > .git/description; echo git_writable=$?",
    );
    expect(&out, "hooks", false);
    expect(&out, "mv_git", false);
    expect(&out, "git_writable", true);
    // The agent's own file keeps .git on the host; the empty placeholder
    // .git/hooks is removed.
    assert!(f.ws.join(".git/description").exists());
    assert!(!f.ws.join(".git/hooks").exists());
}

#[test]
fn protect_through_a_symlinked_parent_is_refused_under_strict() {
    if !can_run("protect_through_a_symlinked_parent_is_refused_under_strict") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-through-link");
    fs::create_dir(f.ws.join("real")).unwrap();
    symlink("real", f.ws.join(".git")).unwrap();
    let marker = f.ws.join("ran");
    let p = f.profile("protect", PROFILE);
    let o = f.sh(p.to_str().unwrap(), &format!("touch {}", marker.display()));
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("is reached through a symlink"),
        "{}",
        show(&o)
    );
    assert!(!marker.exists(), "nothing may run");
}

const MISSING: &str = "version: 1
extends: default
filesystem:
  protect: [\"{workspace}/.git/hooks/\", \"{workspace}/.git/config\", \"{workspace}/.env\"]
";

#[test]
fn a_missing_path_is_held_by_a_file_unless_written_as_a_directory() {
    if !can_run("a_missing_path_is_held_by_a_file_unless_written_as_a_directory") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-types");
    let p = f.profile("missing", MISSING);
    let o = f.sh(
        p.to_str().unwrap(),
        &format!(
            "cd {} && for x in .env .git/config .git/hooks .git; do \
               if [ -L $x ]; then t=link; elif [ -d $x ]; then t=dir; \
               elif [ -f $x ] && [ ! -s $x ]; then t=empty-file; else t=other; fi; \
               echo \"$x=$t\"; done; \
             echo x > .git/description; echo git_writable=$?",
            f.ws.display()
        ),
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    for want in [
        ".env=empty-file",
        ".git/config=empty-file",
        ".git/hooks=dir",
        ".git=dir",
        "git_writable=0",
    ] {
        assert!(out.lines().any(|l| l == want), "{want}\n{}", show(&o));
    }
    // After the run: only what the agent made is left.
    assert!(!f.ws.join(".env").exists() && !f.ws.join(".git/config").exists());
    assert!(!f.ws.join(".git/hooks").exists());
    assert!(f.ws.join(".git/description").exists());
}

/// Every launch (and `confine gc`) removes the placeholders no live
/// sandbox relies on, whatever its workspace: the tests here, some of which
/// leave a killed sandbox's placeholders on purpose, take turns.
fn leftovers_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The placeholders of a sandbox whose confine was SIGKILLed, on the host.
fn killed_with_placeholders(f: &Fixture) {
    let p = f.profile("missing", MISSING);
    let mut s = f.spawn(p.to_str().unwrap(), &["/bin/sleep", "30"]);
    assert!(poll(Duration::from_secs(10), || f.ws.join(".env").exists()));
    s.signal(libc::SIGKILL);
    s.finish();
    // The sandbox dies with its supervisor (PDEATHSIG); its placeholders
    // stay until someone who can tell they're confine's removes them.
    assert!(f.ws.join(".env").exists() && f.ws.join(".git/hooks").is_dir());
}

#[test]
fn a_killed_supervisors_placeholders_go_with_the_next_launch_there() {
    if !can_run("a_killed_supervisors_placeholders_go_with_the_next_launch_there") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-killed");
    killed_with_placeholders(&f);
    // The sandbox's processes are gone (the live lock is released only
    // then): wait for that before the next launch.
    assert!(poll(Duration::from_secs(10), || {
        f.run("default", &["/bin/true"]);
        !f.ws.join(".env").exists()
    }));
    for p in [".env", ".git/config", ".git/hooks", ".git"] {
        assert!(!f.ws.join(p).exists(), "{p} was left behind");
    }
}

#[test]
fn confine_gc_removes_only_placeholders_that_are_still_confines() {
    if !can_run("confine_gc_removes_only_placeholders_that_are_still_confines") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-gc");
    killed_with_placeholders(&f);
    // The user replaces one placeholder with an empty file of their own
    // (same name, same type, same size): not confine's any more.
    fs::remove_file(f.ws.join(".env")).unwrap();
    fs::write(f.ws.join(".env"), "").unwrap();
    assert!(poll(Duration::from_secs(10), || {
        let o = std::process::Command::new(bin())
            .arg("gc")
            .output()
            .unwrap();
        assert_status(&o, 0);
        !f.ws.join(".git/hooks").exists()
    }));
    assert!(!f.ws.join(".git/config").exists());
    assert!(!f.ws.join(".git").exists());
    assert!(f.ws.join(".env").exists(), "the user's own .env must stay");
}

#[test]
fn a_missing_protected_path_outside_the_workspace_is_a_gap() {
    if !can_run("a_missing_protected_path_outside_the_workspace_is_a_gap") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-outside");
    let p = f.profile(
        "outside",
        &format!(
            "version: 1\nextends: default\nfilesystem:\n  write: {{add: [\"{o}\"]}}\n  protect: [\"{o}/.env\"]\n",
            o = f.outside.display()
        ),
    );
    let o = f.run(p.to_str().unwrap(), &["/bin/true"]);
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("only inside the workspace"),
        "{}",
        show(&o)
    );
    assert!(!f.outside.join(".env").exists());
    // Control: once it exists, it is protected.
    f.file(&f.outside.join(".env"), "A=1\n");
    let o = f.sh(
        p.to_str().unwrap(),
        &format!("echo B=2 >> {}/.env; echo wrote=$?", f.outside.display()),
    );
    assert_status(&o, 0);
    assert!(
        stdout(&o).contains("wrote=1") || stdout(&o).contains("wrote=2"),
        "{}",
        show(&o)
    );
    assert_eq!(fs::read_to_string(f.outside.join(".env")).unwrap(), "A=1\n");
}

/// Execs argv[1..] with SIGTERM blocked and pending: confine starts with a
/// stop already asked for.
const TERM_PENDING: &str = r#"
#include <signal.h>
#include <unistd.h>
int main(int argc, char **argv) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigprocmask(SIG_BLOCK, &s, 0);
    raise(SIGTERM);
    execv(argv[1], argv + 1);
    return 126;
}
"#;

#[test]
fn placeholders_go_when_the_command_never_runs() {
    if !can_run("placeholders_go_when_the_command_never_runs") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-refused");
    let p = f.profile("missing", MISSING);
    // Not found (127): the sandbox was set up, the command never ran.
    let o = f.run(p.to_str().unwrap(), &["/nonexistent/command"]);
    assert_status(&o, 127);
    assert_eq!(fs::read_dir(&f.ws).unwrap().count(), 0, "{}", show(&o));
    // Asked to stop before the sandbox exists, after the placeholders were
    // made: refused (125), and they are gone.
    let tools = Fixture::new("protect-refused-tools");
    let Some(wrapper) = compile(&tools, "term-pending", TERM_PENDING) else {
        skip_or_fail(
            "placeholders_go_when_the_command_never_runs",
            "no C compiler",
        );
        return;
    };
    let o = std::process::Command::new(&wrapper)
        .arg(bin())
        .args(["run", "-p"])
        .arg(&p)
        .arg("-w")
        .arg(&f.ws)
        .args(["--", "/bin/sh", "-c", "touch ran"])
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 125);
    assert!(stderr(&o).contains("SIGTERM"), "{}", show(&o));
    assert_eq!(fs::read_dir(&f.ws).unwrap().count(), 0, "{}", show(&o));
}

/// A placeholder made for one sandbox is relied on by another whose
/// workspace is nested in the first's: when the maker ends, the other's
/// protection must hold (removing the placeholder would detach its
/// read-only mount in every namespace).
#[test]
fn protection_holds_when_the_sandbox_that_made_its_placeholder_ends() {
    if !can_run("protection_holds_when_the_sandbox_that_made_its_placeholder_ends") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-nested");
    let sub = f.ws.join("sub");
    fs::create_dir(&sub).unwrap();
    std::os::unix::fs::chown(&sub, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let outer = f.profile(
        "outer",
        "version: 1\nextends: default\nfilesystem:\n  protect: [\"{workspace}/sub/.git/\"]\n",
    );
    let inner = f.profile(
        "inner",
        "version: 1\nextends: default\nfilesystem:\n  protect: [\"{workspace}/.git/\"]\n",
    );
    let mut first = f.spawn_sh(
        outer.to_str().unwrap(),
        &format!(
            "i=0; while [ ! -e {ws}/stop-outer ] && [ $i -lt 500 ]; do i=$((i+1)); sleep 0.02; done",
            ws = f.ws.display()
        ),
    );
    assert!(poll(Duration::from_secs(10), || sub.join(".git").is_dir()));
    let second = std::process::Command::new(bin())
        .args(["run", "-p"])
        .arg(&inner)
        .arg("-w")
        .arg(&sub)
        .args([
            "--",
            "/bin/sh",
            "-c",
            &format!(
                "cd {s}; touch started; i=0; while [ ! -e stop-inner ] && [ $i -lt 500 ]; do \
                   i=$((i+1)); echo evil > .git/pre-commit 2>/dev/null && echo WROTE; sleep 0.02; done",
                s = sub.display()
            ),
        ])
        .env("PATH", PATH)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(poll(Duration::from_secs(10), || sub
        .join("started")
        .exists()));
    fs::write(f.ws.join("stop-outer"), "").unwrap();
    assert_status(&first.finish(), 0);
    // The inner sandbox still relies on the placeholder: it stays, and so
    // does the read-only mount on it.
    assert!(
        sub.join(".git").is_dir(),
        "the placeholder went while relied on"
    );
    std::thread::sleep(Duration::from_millis(200));
    fs::write(sub.join("stop-inner"), "").unwrap();
    let o = second.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(!stdout(&o).contains("WROTE"), "{}", show(&o));
    assert!(!sub.join(".git/pre-commit").exists());
    // Now nobody relies on it.
    assert!(
        !sub.join(".git").exists(),
        "the placeholder was left behind"
    );
}

/// A protected file with another hard link can't be protected (the other
/// name would stay writable): refused under strict, nothing runs.
#[test]
fn a_protected_file_with_another_hard_link_is_refused() {
    if !can_run("a_protected_file_with_another_hard_link_is_refused") {
        return;
    }
    let _turn = leftovers_lock();
    let f = Fixture::new("protect-hardlink");
    f.file(&f.ws.join(".env"), "A=1\n");
    fs::hard_link(f.ws.join(".env"), f.ws.join("alias")).unwrap();
    let p = f.profile(
        "env",
        "version: 1\nextends: default\nfilesystem:\n  protect: [\"{workspace}/.env\"]\n",
    );
    let marker = f.ws.join("ran");
    let o = f.sh(p.to_str().unwrap(), &format!("touch {}", marker.display()));
    assert_status(&o, 125);
    assert!(stderr(&o).contains("hard links"), "{}", show(&o));
    assert!(!marker.exists());
    // Control: with the other name gone it is protected and the run goes on.
    fs::remove_file(f.ws.join("alias")).unwrap();
    let o = f.sh(
        p.to_str().unwrap(),
        &format!("echo B=2 >> {}/.env; echo wrote=$?", f.ws.display()),
    );
    assert_status(&o, 0);
    assert!(!stdout(&o).contains("wrote=0"), "{}", show(&o));
    assert_eq!(fs::read_to_string(f.ws.join(".env")).unwrap(), "A=1\n");
}
