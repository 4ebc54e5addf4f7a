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
        "version: 1\nname: xdgagent\nextends: default\nhome:\n  path: private\n  files: {.cfg/s: from-profile}\n",
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
    // home.files too, written by the init as the (only) user there is.
    let cfg = home.join(".cfg/s");
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "from-profile");
    let m = fs::metadata(&cfg).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (AGENT_UID, 0o600));
}

// ------------------------------------------------------------ home.files

/// A profile of `h`'s name whose home is private and writes `files`
/// (YAML lines under `files:`, indented by the caller).
fn files_profile(f: &Fixture, h: &PrivateHome, file: &str, files: &str) -> String {
    f.profile(
        file,
        &format!(
            "version: 1\nname: {}\nextends: default\nhome:\n  path: private\n  files:\n{files}",
            h.name
        ),
    )
    .display()
    .to_string()
}

/// The private home, made as the launcher would (the agent's, 0700), so a
/// test can put things in it before the first run.
fn make_home(h: &PrivateHome) {
    fs::create_dir_all(h.path.parent().unwrap()).unwrap();
    fs::create_dir(&h.path).unwrap();
    std::os::unix::fs::chown(&h.path, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    fs::set_permissions(&h.path, fs::Permissions::from_mode(0o700)).unwrap();
}

fn explain(p: &str, ws: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["explain", "-p", p, "-w"])
        .arg(ws)
        .env("PATH", PATH)
        .output()
        .unwrap()
}

#[test]
fn home_files_are_written_by_the_agent_where_absent_and_never_changed() {
    if !can_run("home_files_are_written_by_the_agent_where_absent_and_never_changed") {
        return;
    }
    let f = Fixture::new("home-files");
    let h = PrivateHome::new("files");
    make_home(&h);
    // The user's own file: never changed.
    let kept = h.path.join("kept.txt");
    fs::write(&kept, "the user's\n").unwrap();
    std::os::unix::fs::chown(&kept, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let p = files_profile(
        &f,
        &h,
        "files",
        "    .cfg/app/config.toml: |\n      a = 1\n      b = \"two\"\n    top.json: \"{}\"\n    kept.txt: from the profile\n",
    );
    let o = explain(&p, &f.ws);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("  file      .cfg/app/config.toml (16 bytes; absent now: written at launch"),
        "{}",
        show(&o)
    );
    assert!(
        out.contains("  file      kept.txt (16 bytes; present now: left as it is)"),
        "{}",
        show(&o)
    );
    // The agent finds them when it starts.
    let o = f.sh(
        &p,
        "cat \"$HOME/.cfg/app/config.toml\" \"$HOME/top.json\"; echo; cat \"$HOME/kept.txt\"",
    );
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        "a = 1\nb = \"two\"\n{}\nthe user's\n",
        "{}",
        show(&o)
    );
    let cfg = h.path.join(".cfg/app/config.toml");
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "a = 1\nb = \"two\"\n");
    for (path, mode) in [
        (cfg.clone(), 0o600),
        (h.path.join("top.json"), 0o600),
        (h.path.join(".cfg"), 0o700),
        (h.path.join(".cfg/app"), 0o700),
    ] {
        let m = fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (AGENT_UID, AGENT_GID, mode),
            "{}",
            path.display()
        );
    }
    // Control: the file that was there is as the user left it.
    assert_eq!(fs::read_to_string(&kept).unwrap(), "the user's\n");
    // The agent's own edit (and the client's later writes) win: the next
    // run leaves it, and a removed file comes back.
    let o = f.sh(
        &p,
        "echo edited > \"$HOME/.cfg/app/config.toml\" && rm \"$HOME/top.json\" && echo ok",
    );
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "ok\n", "{}", show(&o));
    let o = f.sh(&p, "cat \"$HOME/.cfg/app/config.toml\" \"$HOME/top.json\"");
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "edited\n{}", "{}", show(&o));
    // Nothing went into the workspace.
    assert_eq!(fs::read_dir(&f.ws).unwrap().count(), 0);
}

#[test]
fn home_files_never_follow_a_planted_symlink() {
    if !can_run("home_files_never_follow_a_planted_symlink") {
        return;
    }
    let f = Fixture::new("home-files-symlink");
    let h = PrivateHome::new("fsym");
    make_home(&h);
    // Targets outside HOME: one the agent can't write at all (root's,
    // 0644), one plain permissions let it write (the agent's, 0666; only
    // the sandbox keeps it out), and two inside the write-granted
    // workspace, which even the confined agent may write: following a link
    // there would change them.
    let root_file = f.root.join("root-file");
    fs::write(&root_file, "original").unwrap();
    fs::set_permissions(&root_file, fs::Permissions::from_mode(0o644)).unwrap();
    let root_dir = f.root.join("root-dir");
    fs::create_dir(&root_dir).unwrap();
    fs::set_permissions(&root_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let agent_file = f.file(&f.outside.join("agent-file"), "original");
    let ws_file = f.file(&f.ws.join("ws-file"), "original");
    let ws_dir = f.ws.join("ws-dir");
    fs::create_dir(&ws_dir).unwrap();
    std::os::unix::fs::chown(&ws_dir, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let missing = f.ws.join("created-through-the-link");
    // The agent's planted links, at a file's path and on its way.
    let links: [(&str, &Path); 7] = [
        ("root.toml", &root_file),
        ("agent.toml", &agent_file),
        ("ws.toml", &ws_file),
        ("dangling.toml", &missing),
        (".rootdir", &root_dir),
        (".outdir", &f.outside),
        (".wsdir", &ws_dir),
    ];
    for (name, target) in links {
        let at = h.path.join(name);
        symlink(target, &at).unwrap();
        std::os::unix::fs::lchown(&at, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    }
    let p = files_profile(
        &f,
        &h,
        "fsym",
        "    root.toml: pwned\n    agent.toml: pwned\n    ws.toml: pwned\n    dangling.toml: pwned\n    \
         .rootdir/x: pwned\n    .outdir/x: pwned\n    .wsdir/x: pwned\n    .wsdir/sub/x: pwned\n    \
         .ok/written: control\n",
    );
    // `explain` says what the launch will do: a link on the way is
    // something there, not followed to what is behind it (a missing `x`).
    let o = explain(&p, &f.ws);
    assert_status(&o, 0);
    let out = stdout(&o);
    for name in [
        ".rootdir/x",
        ".outdir/x",
        ".wsdir/x",
        ".wsdir/sub/x",
        "dangling.toml",
    ] {
        let line = format!("  file      {name} (5 bytes; present now: left as it is)");
        assert!(out.contains(&line), "{name}: {}", show(&o));
    }
    assert!(
        out.contains("  file      .ok/written (7 bytes; absent now"),
        "{}",
        show(&o)
    );
    let o = f.sh(&p, "echo ran; cat \"$HOME/.ok/written\"");
    assert_status(&o, 0);
    // Control: the run wrote the file that had nothing in its way.
    assert_eq!(stdout(&o), "ran\ncontrol", "{}", show(&o));
    for t in [&root_file, &agent_file, &ws_file] {
        assert_eq!(
            fs::read_to_string(t).unwrap(),
            "original",
            "{}",
            t.display()
        );
    }
    assert!(!missing.exists(), "created through a dangling link");
    for d in [&root_dir, &f.outside, &ws_dir] {
        assert!(!d.join("x").exists(), "{}", d.display());
    }
    assert!(!ws_dir.join("sub").exists());
    for (name, target) in links {
        let at = h.path.join(name);
        assert!(
            fs::symlink_metadata(&at).unwrap().file_type().is_symlink(),
            "{name}"
        );
        assert_eq!(fs::read_link(&at).unwrap(), target, "{name}");
    }
}

#[test]
fn home_files_that_cant_be_written_refuse_the_launch() {
    if !can_run("home_files_that_cant_be_written_refuse_the_launch") {
        return;
    }
    let f = Fixture::new("home-files-refused");
    // A home the agent can't write into (root's, 0755): the profile's
    // setting can't be put in place, so the client doesn't start without it.
    let dir = f.root.join("roots-home");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let profile = |name: &str| {
        f.profile(
            name,
            &format!(
                "version: 1\nextends: default\nhome:\n  path: {}\n  files:\n    .cfg/settings: x\n",
                dir.display()
            ),
        )
        .display()
        .to_string()
    };
    let p = profile("unwritable");
    let o = f.sh(&p, "echo ran");
    assert_status(&o, 125);
    assert!(!stdout(&o).contains("ran"), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("home.files `.cfg/settings`"), "{}", show(&o));
    assert!(
        err.contains(&dir.join(".cfg/settings").display().to_string()),
        "{}",
        show(&o)
    );
    assert!(err.contains("Permission denied"), "{}", show(&o));
    assert!(!dir.join(".cfg").exists());
    // Control: the same directory, the agent's, is written into.
    std::os::unix::fs::chown(&dir, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let o = f.sh(&p, "echo ran");
    assert_status(&o, 0);
    assert_eq!(fs::read_to_string(dir.join(".cfg/settings")).unwrap(), "x");
}

#[test]
fn home_files_are_checked_with_located_errors() {
    let f = Fixture::new("home-files-check");
    let check = |name: &str, yaml: &str| {
        let p = f.profile(name, yaml);
        let o = Command::new(bin())
            .arg("check")
            .arg(&p)
            .env("PATH", PATH)
            .output()
            .unwrap();
        (p, o)
    };
    let head = "version: 1\nname: hf\nextends: default\nhome:\n  path: private\n  files:\n";
    let many: String = (0..33).map(|i| format!("    f{i}: x\n")).collect();
    let big = format!("    f: \"{}\"\n", "x".repeat(64 * 1024 + 1));
    for (name, yaml, key, line, why) in [
        (
            "dotdot",
            format!("{head}    ../x: t\n"),
            "home.files.../x",
            7,
            "`..` is not allowed",
        ),
        (
            "abs",
            format!("{head}    /etc/x: t\n"),
            "home.files./etc/x",
            7,
            "relative to HOME",
        ),
        (
            "many",
            format!("{head}{many}"),
            "home.files.f32",
            39,
            "more than 32 home files",
        ),
        (
            "big",
            format!("{head}{big}"),
            "home.files.f",
            7,
            "at most 65536",
        ),
        (
            "ws",
            "version: 1\nextends: default\nhome:\n  path: workspace\n  files:\n    .x: t\n"
                .to_string(),
            "home.files..x",
            6,
            "never writes into the project",
        ),
        (
            "fsize",
            format!(
                "{head}    f: \"{}\"\nlimits: {{file_size: 1K}}\n",
                "x".repeat(2000)
            ),
            "home.files.f",
            7,
            "more than limits.file_size",
        ),
    ] {
        let (p, o) = check(name, &yaml);
        assert_status(&o, 125);
        let err = stderr(&o);
        let at = format!("{key} ({}:{line}:", p.display());
        assert!(err.contains(&at), "{name}: want {at}: {}", show(&o));
        assert!(err.contains(why), "{name}: {}", show(&o));
    }
    // Control: a valid one checks clean, and so do the built-ins that use it.
    let (_, o) = check("fine", &format!("{head}    .cfg/a.toml: \"x = 1\"\n"));
    assert_status(&o, 0);
    for b in ["codex", "gemini-cli"] {
        let o = Command::new(bin())
            .args(["check", b])
            .env("PATH", PATH)
            .output()
            .unwrap();
        assert_status(&o, 0);
    }
}

#[test]
fn home_files_leave_what_an_earlier_agent_planted_and_never_block() {
    let test = "home_files_leave_what_an_earlier_agent_planted_and_never_block";
    if !can_run(test) {
        return;
    }
    let f = Fixture::new("home-files-planted");
    let h = PrivateHome::new("fplant");
    // An earlier run's agent, in the same private home, plants a FIFO at
    // a file's path and where a directory goes (opening either would
    // block the init, and with it the launch), a directory where a file
    // goes, a hard link to a file of its own, and a directory on the
    // way it made unsearchable.
    let planted = f.sh(
        &private_profile(&f, &h),
        "cd \"$HOME\" && mkfifo fifo.toml .fifodir && mkdir -p dir.toml/sub && echo mine > own && \
         ln own hard.toml && mkdir -m 0 .locked && echo planted",
    );
    assert_status(&planted, 0);
    assert_eq!(stdout(&planted), "planted\n", "{}", show(&planted));
    let run = |p: &str| {
        Command::new("timeout")
            .args(["-k", "5", "60", bin(), "run", "-p", p, "-w"])
            .arg(&f.ws)
            .args(["--", "/bin/sh", "-c", "echo ran; cat \"$HOME/.ok/written\""])
            .env("PATH", PATH)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let p = files_profile(
        &f,
        &h,
        "fplant",
        "    fifo.toml: pwned\n    .fifodir/x: pwned\n    dir.toml/sub: pwned\n    \
         hard.toml: pwned\n    .ok/written: control\n",
    );
    let o = run(&p);
    assert_status(&o, 0);
    // Control: the file with nothing in its way is written.
    assert_eq!(stdout(&o), "ran\ncontrol", "{}", show(&o));
    let kind = |name: &str| fs::symlink_metadata(h.path.join(name)).unwrap().file_type();
    use std::os::unix::fs::FileTypeExt;
    assert!(kind("fifo.toml").is_fifo());
    assert!(kind(".fifodir").is_fifo());
    assert!(kind("dir.toml").is_dir() && kind("dir.toml/sub").is_dir());
    assert_eq!(
        fs::read_dir(h.path.join("dir.toml/sub")).unwrap().count(),
        0
    );
    for name in ["own", "hard.toml"] {
        assert_eq!(fs::read_to_string(h.path.join(name)).unwrap(), "mine\n");
    }
    // The unsearchable directory can't be looked into: the launch is
    // refused naming the file, not run without its setting, and nothing
    // was followed or changed.
    let p = files_profile(&f, &h, "flocked", "    .locked/x: pwned\n");
    let o = run(&p);
    assert_status(&o, 125);
    assert!(!stdout(&o).contains("ran"), "{}", show(&o));
    assert!(
        stderr(&o).contains("home.files `.locked/x`"),
        "{}",
        show(&o)
    );
    let m = fs::symlink_metadata(h.path.join(".locked")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0, "{}", show(&o));
}

/// Sandboxes starting together on one new home: each agent finds the
/// whole file, one init's, and the losers leave nothing of their writing
/// behind (each writes under a name of its own and publishes it where
/// nothing is; a leaked temporary file or a publish that replaced
/// another's shows here). Rounds of eight launches at once, bounded. The
/// window in which a reader could once have met a half-written file (a
/// single write) is too short for a test to hit at will.
#[test]
fn home_files_are_whole_for_sandboxes_starting_together() {
    if !can_run("home_files_are_whole_for_sandboxes_starting_together") {
        return;
    }
    let f = Fixture::new("home-files-together");
    // 60 000 bytes: many writes' worth for a reader to catch half of.
    let line = "x".repeat(99);
    let text: String = (0..600).map(|_| format!("{line}\n")).collect();
    let yaml: String = text.lines().map(|l| format!("      {l}\n")).collect();
    for round in 0..4 {
        let h = PrivateHome::new(&format!("together{round}"));
        make_home(&h);
        let p = files_profile(
            &f,
            &h,
            &format!("together{round}"),
            &format!("    big.txt: |\n{yaml}"),
        );
        let launches: Vec<_> = (0..8)
            .map(|_| {
                f.command(&p, &["/bin/sh", "-c", "wc -c < \"$HOME/big.txt\""])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in launches {
            let o = c.wait_with_output().unwrap();
            assert_status(&o, 0);
            assert_eq!(
                stdout(&o).trim(),
                text.len().to_string(),
                "round {round}: {}",
                show(&o)
            );
        }
        let mut names: Vec<String> = fs::read_dir(&h.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["big.txt"], "round {round}");
        assert_eq!(fs::read_to_string(h.path.join("big.txt")).unwrap(), text);
    }
}
