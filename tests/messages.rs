//! Messages that tell the caller what to change: a command that exists on
//! the host but isn't granted, a refusal about a workspace that came from
//! the current directory, a write grant on one file. Each runs the real
//! binary and checks the message next to a control that succeeds.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// An executable outside every grant: `DIR/bin/tool` (a copy of /bin/true).
fn tool(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let t = bin.join("tool");
    fs::copy("/bin/true", &t).unwrap();
    fs::set_permissions(&t, fs::Permissions::from_mode(0o755)).unwrap();
    t
}

fn run_with_path(f: &Fixture, profile: &str, path: &str, cmd: &[&str]) -> Output {
    let mut c = f.command(profile, cmd);
    c.env("PATH", path);
    c.output().unwrap()
}

#[test]
fn a_command_on_the_host_but_not_granted_names_the_key() {
    if !can_run("a_command_on_the_host_but_not_granted_names_the_key") {
        return;
    }
    let f = Fixture::new("msg-notfound");
    let t = tool(&f.outside);
    let bin = t.parent().unwrap().display().to_string();
    let path = format!("{bin}:{PATH}");

    // Looked up through PATH: still 127, and the hint says where it is and
    // which key grants it.
    let o = run_with_path(&f, "default", &path, &["tool"]);
    assert_status(&o, 127);
    let err = stderr(&o);
    assert!(
        err.contains("confine: tool: No such file or directory"),
        "{}",
        show(&o)
    );
    assert!(
        err.contains(&format!("hint: {} exists outside the sandbox", t.display())),
        "{}",
        show(&o)
    );
    assert!(
        err.contains(&format!("filesystem: {{exec: {{add: [{bin}]}}}}")),
        "{}",
        show(&o)
    );

    // By its path: the same.
    let o = f.run("default", &[t.to_str().unwrap()]);
    assert_status(&o, 127);
    assert!(
        stderr(&o).contains("exists outside the sandbox"),
        "{}",
        show(&o)
    );

    // Granted for reading only: 126, and the hint says exec.
    let ro = f.profile(
        "ro",
        &format!("version: 1\nextends: default\nfilesystem:\n  read: {{add: [{bin}]}}\n"),
    );
    let o = run_with_path(&f, ro.to_str().unwrap(), &path, &["tool"]);
    assert_status(&o, 126);
    assert!(
        stderr(&o).contains("is granted for reading only"),
        "{}",
        show(&o)
    );
    assert!(stderr(&o).contains("filesystem.exec"), "{}", show(&o));

    // Control: with the exec grant the hint's fix works.
    let ok = f.profile(
        "ok",
        &format!("version: 1\nextends: default\nfilesystem:\n  exec: {{add: [{bin}]}}\n"),
    );
    let o = run_with_path(&f, ok.to_str().unwrap(), &path, &["tool"]);
    assert_status(&o, 0);

    // A granted script whose interpreter isn't granted: the hint names the
    // interpreter's directory.
    let interp = f.outside.join("bin/interp");
    fs::copy("/bin/sh", &interp).unwrap();
    fs::set_permissions(&interp, fs::Permissions::from_mode(0o755)).unwrap();
    let script = f.ws.join("script");
    fs::write(&script, format!("#!{}\necho ran\n", interp.display())).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let o = f.run("default", &[script.to_str().unwrap()]);
    assert_status(&o, 127);
    assert!(
        stderr(&o).contains(&format!(
            "its interpreter {} isn't: add {bin} to filesystem.exec",
            interp.display()
        )),
        "{}",
        show(&o)
    );
    // Control: granted, it runs.
    let o = f.run(ok.to_str().unwrap(), &[script.to_str().unwrap()]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "ran\n", "{}", show(&o));
    // One whose interpreter exists nowhere is named as such.
    fs::write(&script, "#!/nonexistent/interp\necho ran\n").unwrap();
    let o = f.run("default", &[script.to_str().unwrap()]);
    assert_status(&o, 127);
    assert!(
        stderr(&o).contains("which doesn't exist here either"),
        "{}",
        show(&o)
    );

    // A command that exists nowhere gets no hint: nothing to point at.
    let o = run_with_path(&f, "default", &path, &["no-such-tool-anywhere"]);
    assert_status(&o, 127);
    assert!(!stderr(&o).contains("hint"), "{}", show(&o));
}

#[test]
fn refusals_about_the_workspace_say_where_it_came_from() {
    if !can_run("refusals_about_the_workspace_say_where_it_came_from") {
        return;
    }
    let f = Fixture::new("msg-workspace");
    // f.root is root's: as a workspace the agent would run as root.
    let o = Command::new(bin())
        .args(["run", "--", "/bin/true"])
        .current_dir(&f.root)
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 125);
    let want = format!(
        "the workspace is the current directory {}, as neither -w nor the profile's `workspace` names one; pass -w DIR",
        f.root.display()
    );
    assert!(stderr(&o).contains(&want), "{}", show(&o));

    let o = Command::new(bin())
        .args(["run", "-w"])
        .arg(&f.root)
        .args(["--", "/bin/true"])
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 125);
    let want = format!("the workspace {} was given with -w", f.root.display());
    assert!(stderr(&o).contains(&want), "{}", show(&o));

    let p = f.profile(
        "ws",
        &format!(
            "version: 1\nextends: default\nworkspace: {}\n",
            f.root.display()
        ),
    );
    let o = Command::new(bin())
        .args(["run", "-p", p.to_str().unwrap(), "--", "/bin/true"])
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("is the profile's `workspace` ("),
        "{}",
        show(&o)
    );

    // Control: from the agent's workspace, no -w needed, it runs.
    let o = Command::new(bin())
        .args(["run", "--", "/bin/sh", "-c", "pwd"])
        .current_dir(&f.ws)
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", f.ws.display()), "{}", show(&o));
}

#[test]
fn minimal_runs_a_command_at_the_root() {
    if !can_run("minimal_runs_a_command_at_the_root") {
        return;
    }
    let f = Fixture::new("msg-minimal");
    // minimal doesn't show the workspace: the agent starts at /.
    let o = f.run(
        "minimal",
        &[
            "/bin/sh",
            "-c",
            "pwd; ls \"$0\" 2>/dev/null; echo ws=$?",
            &f.ws.display().to_string(),
        ],
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("/\n"), "{}", show(&o));
    assert!(
        !out.contains("ws=0"),
        "the workspace is visible: {}",
        show(&o)
    );
    let o = f.run("minimal", &["/bin/true"]);
    assert_status(&o, 0);
}

#[test]
fn a_write_grant_on_one_file_is_warned_about() {
    let f = Fixture::new("msg-onefile");
    let file = f.file(&f.outside.join(".agent.json"), "{}");
    let check = |name: &str, path: &Path| {
        let p = f.profile(
            name,
            &format!(
                "version: 1\nextends: default\nfilesystem:\n  write: {{add: [{}]}}\n",
                path.display()
            ),
        );
        Command::new(bin())
            .arg("check")
            .arg(&p)
            .env("PATH", PATH)
            .output()
            .unwrap()
    };
    let o = check("file", &file);
    assert_status(&o, 0);
    assert!(
        stderr(&o).contains("warning: filesystem.write.add[0]")
            && stderr(&o).contains("a write grant on one file")
            && stderr(&o).contains(&format!(
                "grant a directory of its own ({})",
                f.outside.display()
            )),
        "{}",
        show(&o)
    );
    // Control: the directory is fine.
    let o = check("dir", &f.outside);
    assert_status(&o, 0);
    assert!(!stderr(&o).contains("one file"), "{}", show(&o));
}
