//! `filesystem.protect`: paths inside a write grant that stay read-only and
//! can be neither replaced nor removed, whether they exist, don't exist yet,
//! or are symlinks. Each attempt has a control: the rest of the workspace
//! stays writable.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::symlink;

const PROFILE: &str = "version: 1
extends: default
filesystem:
  protect:
    - \"{workspace}/.git/hooks\"
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
