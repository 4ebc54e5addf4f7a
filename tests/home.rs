//! `home:` (DESIGN.md §2): what HOME is. `private` is a persistent
//! directory of the profile's own outside the workspace, created by confine
//! without following symlinks and owned by the agent; `PATH` an existing
//! directory; `workspace` the workspace. Each test runs the real binary.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private home under /var/lib/confine/homes named for this test alone,
/// removed at the end whatever happens.
struct PrivateHome {
    name: String,
    path: PathBuf,
}

impl PrivateHome {
    fn new(test: &str) -> PrivateHome {
        let name = format!("test-{test}-{}-{}", std::process::id(), unique());
        let path = Path::new("/var/lib/confine/homes").join(&name);
        PrivateHome { name, path }
    }
}

impl Drop for PrivateHome {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir_all(&self.path);
            }
            Ok(_) => {
                let _ = fs::remove_file(&self.path);
            }
            Err(_) => {}
        }
    }
}

fn private_profile(f: &Fixture, h: &PrivateHome) -> String {
    f.profile(
        &h.name,
        &format!(
            "version: 1\nname: {}\nextends: default\nhome: private\n",
            h.name
        ),
    )
    .display()
    .to_string()
}

#[test]
fn private_home_keeps_state_outside_the_workspace_across_runs() {
    if !can_run("private_home_keeps_state_outside_the_workspace_across_runs") {
        return;
    }
    let f = Fixture::new("home-private");
    let h = PrivateHome::new("persist");
    let p = private_profile(&f, &h);
    let victim = f.file(&f.outside.join("victim"), "original");
    let o = f.sh(
        &p,
        &format!(
            "echo \"home=$HOME\"; mkdir -p \"$HOME/.config/agent\" && echo first > \"$HOME/.config/agent/state\"; \
             echo state=$?; echo pwned > {}; echo outside=$?",
            victim.display()
        ),
    );
    assert_status(&o, 0);
    let m = labelled(&stdout(&o).replace('=', " "));
    assert_eq!(m["home"], h.path.display().to_string(), "{}", show(&o));
    assert_eq!(m["state"], "0", "{}", show(&o));
    // Control: the sandbox still keeps the agent out of what isn't granted.
    assert_ne!(m["outside"], "0", "{}", show(&o));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
    // The state is in the private home, owned by the agent; not in the
    // workspace.
    let state = h.path.join(".config/agent/state");
    assert_eq!(fs::read_to_string(&state).unwrap(), "first\n");
    let meta = fs::metadata(&h.path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (AGENT_UID, AGENT_GID));
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(
        fs::read_dir(&f.ws).unwrap().count(),
        0,
        "the workspace got files"
    );

    // The second run finds it.
    let o = f.sh(&p, "cat \"$HOME/.config/agent/state\"");
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "first\n", "{}", show(&o));

    // explain says where it is and what it is.
    let o = Command::new(bin())
        .args(["explain", "-p", &p, "-w"])
        .arg(&f.ws)
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 0);
    let line = format!(
        "home        {} (private, persistent, read-write; checked",
        h.path.display()
    );
    assert!(stdout(&o).contains(&line), "{}", show(&o));

    // The launch record says where the agent's state went.
    let log = f.root.join("audit.jsonl");
    let o = Command::new(bin())
        .args(["run", "-p", &p, "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log)
        .args(["--", "/bin/true"])
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 0);
    let launch: serde_json::Value = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "launch")
        .unwrap();
    assert_eq!(launch["home"], h.path.display().to_string(), "{launch}");

    // The home is a write grant like any other: no audit log in it.
    let o = Command::new(bin())
        .args(["run", "-p", &p, "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(h.path.join("audit.jsonl"))
        .args(["--", "/bin/true"])
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("the agent could rewrite it"),
        "{}",
        show(&o)
    );
    assert!(!h.path.join("audit.jsonl").exists());
}

#[test]
fn private_home_through_a_symlink_or_not_the_agents_is_refused() {
    if !can_run("private_home_through_a_symlink_or_not_the_agents_is_refused") {
        return;
    }
    let f = Fixture::new("home-symlink");
    let h = PrivateHome::new("symlink");
    let p = private_profile(&f, &h);
    fs::create_dir_all(h.path.parent().unwrap()).unwrap();
    symlink(&f.outside, &h.path).unwrap();
    let o = f.sh(&p, "echo pwned > \"$HOME/planted\"; echo ran");
    assert_status(&o, 125);
    assert!(!stdout(&o).contains("ran"), "{}", show(&o));
    assert!(stderr(&o).contains("is a symlink"), "{}", show(&o));
    assert!(!f.outside.join("planted").exists());
    // Also at launch, when the link appears after the plan: the launcher
    // opens the path without following it (the same refusal).

    // A directory another uid owns is not taken over.
    fs::remove_file(&h.path).unwrap();
    fs::create_dir(&h.path).unwrap();
    fs::set_permissions(&h.path, fs::Permissions::from_mode(0o700)).unwrap();
    let o = f.sh(&p, "echo ran");
    assert_status(&o, 125);
    assert!(stderr(&o).contains("belongs to uid 0"), "{}", show(&o));
    // One the agent owns but others may write to is refused too.
    std::os::unix::fs::chown(&h.path, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    fs::set_permissions(&h.path, fs::Permissions::from_mode(0o777)).unwrap();
    let o = f.sh(&p, "echo ran");
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("writable by group or others"),
        "{}",
        show(&o)
    );
    // Control: the same directory, mode 0700, is used.
    fs::set_permissions(&h.path, fs::Permissions::from_mode(0o700)).unwrap();
    let o = f.sh(&p, "echo ran; echo \"$HOME\"");
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("ran\n{}\n", h.path.display()),
        "{}",
        show(&o)
    );
}

#[test]
fn home_path_workspace_and_env_set() {
    if !can_run("home_path_workspace_and_env_set") {
        return;
    }
    let f = Fixture::new("home-path");
    let dir = f.root.join("agent-home");
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let p = f.profile(
        "path",
        &format!("version: 1\nextends: default\nhome: {}\n", dir.display()),
    );
    let o = f.sh(
        p.to_str().unwrap(),
        "echo \"$HOME\"; echo x > \"$HOME/f\" && echo wrote",
    );
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}\nwrote\n", dir.display()),
        "{}",
        show(&o)
    );
    assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "x\n");

    // env.set.HOME still wins over `home`.
    let p = f.profile(
        "setwins",
        &format!(
            "version: 1\nextends: default\nhome: {}\nenv:\n  set: {{HOME: /nowhere}}\n",
            dir.display()
        ),
    );
    let o = f.sh(p.to_str().unwrap(), "echo \"$HOME\"");
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "/nowhere\n", "{}", show(&o));

    // The built-ins keep HOME in the workspace.
    let o = f.sh("default", "echo \"$HOME\"");
    assert_status(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", f.ws.display()), "{}", show(&o));

    // Refused: /, the caller's own home (or what holds it), a file, a
    // relative path, a missing directory.
    let file = f.file(&f.root.join("a-file"), "");
    for (name, home, why) in [
        ("root", "/".to_string(), "write everywhere"),
        ("mine", "/root".to_string(), "holds your own home"),
        ("file", file.display().to_string(), "is not a directory"),
        ("rel", "agent-home".to_string(), "bad home"),
        ("missing", "/nonexistent-home".to_string(), "does not exist"),
    ] {
        let p = f.profile(
            name,
            &format!("version: 1\nextends: default\nhome: {home}\n"),
        );
        let o = Command::new(bin())
            .args(["explain", "-p", p.to_str().unwrap(), "-w"])
            .arg(&f.ws)
            .env("PATH", PATH)
            .env("HOME", "/root")
            .output()
            .unwrap();
        assert_status(&o, 125);
        assert!(stderr(&o).contains("home"), "{name}: {}", show(&o));
        assert!(stderr(&o).contains(why), "{name}: {}", show(&o));
    }
}

#[test]
fn a_private_home_needs_a_profile_name_that_names_a_directory() {
    let f = Fixture::new("home-name");
    for (file, name) in [
        ("spaced", "\"my agent\""),
        ("dots", "\"..\""),
        ("slash", "\"a/b\""),
    ] {
        let p = f.profile(
            file,
            &format!("version: 1\nname: {name}\nextends: default\nhome: private\n"),
        );
        let o = Command::new(bin())
            .arg("check")
            .arg(&p)
            .env("PATH", PATH)
            .output()
            .unwrap();
        assert_status(&o, 125);
        assert!(stderr(&o).contains("home ("), "{file}: {}", show(&o));
        assert!(
            stderr(&o).contains("can't name a directory"),
            "{file}: {}",
            show(&o)
        );
    }
    // Control: a plain name checks clean, and so does the same profile
    // with `home: workspace`.
    let p = f.profile(
        "fine",
        "version: 1\nname: fine-1.x\nextends: default\nhome: private\n",
    );
    let o = Command::new(bin())
        .arg("check")
        .arg(&p)
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 0);
    let p = f.profile(
        "ws",
        "version: 1\nname: \"my agent\"\nextends: default\nhome: workspace\n",
    );
    let o = Command::new(bin())
        .arg("check")
        .arg(&p)
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 0);
}

#[test]
fn private_home_without_root_is_under_xdg_data_home() {
    let name = "private_home_without_root_is_under_xdg_data_home";
    if !can_run(name) || !require_landlock(name, 1) {
        return;
    }
    if !std::fs::read_to_string("/proc/sys/user/max_user_namespaces").is_ok_and(|s| s.trim() != "0")
    {
        skip_or_fail(name, "user namespaces are disabled on this host");
        return;
    }
    let f = Fixture::new("home-xdg");
    let xdg = f.root.join("xdg");
    fs::create_dir(&xdg).unwrap();
    std::os::unix::fs::chown(&xdg, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
    let p = f.profile(
        "xdgagent",
        "version: 1\nname: xdgagent\nextends: default\nhome: private\n",
    );
    let o = setpriv_as_agent()
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(bin())
        .args(["run", "-p", p.to_str().unwrap(), "-w"])
        .arg(&f.ws)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo \"$HOME\"; echo s > \"$HOME/s\"",
        ])
        .env("PATH", PATH)
        .env("XDG_DATA_HOME", &xdg)
        .current_dir(&f.ws)
        .output()
        .unwrap();
    assert_status(&o, 0);
    let home = xdg.join("confine/homes/xdgagent");
    assert_eq!(stdout(&o), format!("{}\n", home.display()), "{}", show(&o));
    assert_eq!(fs::read_to_string(home.join("s")).unwrap(), "s\n");
    assert_eq!(fs::metadata(&home).unwrap().uid(), AGENT_UID);
}
