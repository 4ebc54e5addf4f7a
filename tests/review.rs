//! Review mode (`filesystem.changes: review`, DESIGN.md §14): the agent's
//! writes wait in an overlay's upper layer; the real workspace is untouched
//! until `confine commit`, which applies exactly what was chosen, refuses a
//! path changed underneath unless `--force`, and never writes outside the
//! workspace however its owner races it. As root and unprivileged.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const REVIEW: &str = "version: 1\nextends: default\nfilesystem:\n  changes: review\n";

/// Every path beneath `dir`: type, mode, and content (sha256 of files,
/// target of links). What "byte-identical" means here.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg(
            "find . -mindepth 1 \\( -type f -printf '%p f %m %s\\n' \\) -o \\( -type d -printf '%p d %m\\n' \\) \
             -o \\( -type l -printf '%p l %l\\n' \\) -o -printf '%p %y\\n' | sort; \
             find . -type f -exec sha256sum {} + | sort",
        )
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    stdout(&o)
        .lines()
        .map(|l| (l.to_string(), String::new()))
        .collect()
}

/// The same listing, as the sandbox sees its workspace (printed by the
/// agent at the end of its script).
const LIST: &str = "find . -mindepth 1 \\( -type f -printf '%p f %m %s\\n' \\) -o \\( -type d -printf '%p d %m\\n' \\) \
     -o \\( -type l -printf '%p l %l\\n' \\) -o -printf '%p %y\\n' | sort; \
     find . -type f -exec sha256sum {} + | sort";

fn lines(s: &str) -> BTreeMap<String, String> {
    s.lines().map(|l| (l.to_string(), String::new())).collect()
}

/// The sandbox id from `run`'s review line.
fn sandbox_id(o: &Output) -> String {
    let e = stderr(o);
    let at = e
        .find("review (sandbox ")
        .unwrap_or_else(|| panic!("no review line: {}", show(o)));
    e[at + 16..].split(')').next().unwrap().to_string()
}

/// Removes a sandbox's state if a test ends before commit or discard.
struct State(PathBuf);

impl Drop for State {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn root_state(id: &str) -> State {
    State(Path::new("/var/lib/confine/changes").join(id))
}

/// `confine SUBCOMMAND ARGS...` as root.
fn confine(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn diff_json(id: &str) -> Vec<serde_json::Value> {
    let o = confine(&["diff", id, "--json"]);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["changes"].as_array().unwrap().clone()
}

fn has(changes: &[serde_json::Value], what: &str, path: &str) -> bool {
    changes
        .iter()
        .any(|c| c["change"] == what && c["path"] == path)
}

/// A workspace with files, a directory to rename, one to delete, a file
/// to rename, a pair of hard links, owned by the agent.
fn populate(f: &Fixture) {
    f.file(&f.ws.join("a.txt"), "hello\n");
    f.file(&f.ws.join("keep.txt"), "unchanged\n");
    f.file(&f.ws.join("gone.txt"), "to delete\n");
    f.file(&f.ws.join("olddir/x.txt"), "in a directory that existed\n");
    f.file(&f.ws.join("olddir/deep/y.txt"), "deeper\n");
    f.file(&f.ws.join("rmdir/z.txt"), "a directory to delete\n");
    f.file(&f.ws.join("r1.txt"), "renamed file\n");
    f.file(&f.ws.join("h1"), "hard linked\n");
    fs::hard_link(f.ws.join("h1"), f.ws.join("h2")).unwrap();
    f.file(&f.ws.join("opaque/old.txt"), "hidden by a new directory\n");
    f.file(
        &f.ws.join("typechange"),
        "a file that becomes a directory\n",
    );
    f.file(&f.ws.join("xdir/f.txt"), "moved to another directory\n");
}

/// Creates, modifies, deletes and renames files and directories, links
/// hard and soft, then prints the workspace as the sandbox sees it.
const SCRIPT: &str = "set -e; echo more >> a.txt; echo new > new.txt; mkdir -p newdir/sub; \
    printf 'bin\\0ary' > newdir/sub/b.bin; rm gone.txt; rm -r rmdir; mv olddir renamed || exit 9; \
    mv r1.txt r2.txt; ln new.txt new-link.txt; ln -s a.txt sym; chmod 0750 keep.txt; \
    echo changed > h1; rm -r opaque; mkdir opaque; echo fresh > opaque/new.txt; \
    rm typechange; mkdir typechange; mkdir locked; echo l > locked/f; chmod 0555 locked; \
    mkdir target; mv xdir target/xdir2 || exit 9; echo ===; ";

#[test]
fn root_run_leaves_workspace_until_commit_and_diff_lists_everything() {
    let name = "root_run_leaves_workspace_until_commit_and_diff_lists_everything";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-root");
    populate(&f);
    let p = f.profile("review", REVIEW);
    let before = tree(&f.ws);
    let o = f.sh(p.to_str().unwrap(), &format!("{SCRIPT}{LIST}"));
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    let inside = lines(stdout(&o).split("===\n").nth(1).unwrap());
    // The real workspace is byte-identical after the run.
    assert_eq!(tree(&f.ws), before, "the run changed the real workspace");
    assert!(f.ws.join("olddir/x.txt").exists() && !f.ws.join("renamed").exists());

    let c = diff_json(&id);
    for (what, path) in [
        ("modified", "a.txt"),
        ("added", "new.txt"),
        ("added", "newdir"),
        ("added", "newdir/sub/b.bin"),
        ("deleted", "gone.txt"),
        ("deleted", "rmdir"),
        ("deleted", "rmdir/z.txt"),
        ("renamed", "renamed"),
        ("deleted", "r1.txt"),
        ("added", "r2.txt"),
        ("added", "new-link.txt"),
        ("added", "sym"),
        ("modified", "keep.txt"),
        ("modified", "h1"),
        ("deleted", "opaque/old.txt"),
        ("added", "opaque/new.txt"),
        ("deleted", "typechange"),
        ("added", "typechange"),
        ("added", "target"),
        ("renamed", "target/xdir2"),
    ] {
        assert!(has(&c, what, path), "{what} {path} missing from {c:#?}");
    }
    let renamed = c.iter().find(|c| c["path"] == "renamed").unwrap();
    assert_eq!(renamed["from"], "olddir");
    let moved = c.iter().find(|c| c["path"] == "target/xdir2").unwrap();
    assert_eq!(moved["from"], "xdir");
    // The old directory is a rename's source, not a deletion.
    assert!(!has(&c, "deleted", "olddir"), "{c:#?}");
    let a = c.iter().find(|c| c["path"] == "a.txt").unwrap();
    assert!(a["diff"].as_str().unwrap().contains("+more"), "{a}");
    let b = c.iter().find(|c| c["path"] == "newdir/sub/b.bin").unwrap();
    assert_eq!(b["binary"], true);
    assert_eq!(b["size"], 7);
    let text = stdout(&confine(&["diff", &id]));
    assert!(
        text.contains("D gone.txt") && text.contains("R olddir/ -> renamed/"),
        "{text}"
    );

    // A subset (a new directory and a deletion): exactly that.
    let o = confine(&["commit", &id, "newdir", "gone.txt"]);
    assert_status(&o, 0);
    let mut expect = before.clone();
    let now = tree(&f.ws);
    assert!(!f.ws.join("gone.txt").exists());
    assert_eq!(
        fs::read(f.ws.join("newdir/sub/b.bin")).unwrap(),
        b"bin\0ary"
    );
    expect.retain(|l, _| !l.contains("gone.txt"));
    let extra: Vec<&String> = now.keys().filter(|k| !expect.contains_key(*k)).collect();
    assert!(
        extra.iter().all(|k| k.contains("./newdir")),
        "more than the subset landed: {extra:?}"
    );
    assert_eq!(now.len(), expect.len() + extra.len(), "something else went");
    let c = diff_json(&id);
    assert!(!has(&c, "added", "newdir/sub/b.bin") && !has(&c, "deleted", "gone.txt"));
    assert!(
        has(&c, "modified", "a.txt") && has(&c, "added", "new.txt"),
        "{c:#?}"
    );

    // The rest: the real workspace is what the sandbox saw.
    let o = confine(&["commit", &id]);
    assert_status(&o, 0);
    let after = tree(&f.ws);
    let differs: Vec<_> = inside
        .keys()
        .filter(|k| !after.contains_key(*k))
        .chain(after.keys().filter(|k| !inside.contains_key(*k)))
        .collect();
    assert!(
        differs.is_empty(),
        "real workspace after commit differs from the sandbox's view: {differs:#?}"
    );
    // Linked inside the sandbox: one file, two names. Owned by the agent.
    let (n, l) = (
        fs::metadata(f.ws.join("new.txt")).unwrap(),
        fs::metadata(f.ws.join("new-link.txt")).unwrap(),
    );
    assert_eq!(n.ino(), l.ino());
    assert_eq!((n.uid(), n.gid()), (AGENT_UID, AGENT_GID));
    assert!(fs::symlink_metadata(f.ws.join("sym"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::metadata(f.ws.join("keep.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    // h1 was copied up: h2 keeps the old content, as inside.
    assert_eq!(
        fs::read_to_string(f.ws.join("h2")).unwrap(),
        "hard linked\n"
    );
    assert!(!Path::new("/var/lib/confine/changes").join(&id).exists());
}

#[test]
fn discard_leaves_nothing_and_a_run_without_changes_keeps_no_state() {
    let name = "discard_leaves_nothing_and_a_run_without_changes_keeps_no_state";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-discard");
    populate(&f);
    let p = f.profile("review", REVIEW);
    let before = tree(&f.ws);
    let o = f.sh(p.to_str().unwrap(), SCRIPT);
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    assert!(
        stdout(&confine(&["ps"])).contains(&id),
        "ps lists the pending changes"
    );
    // What a launch killed before its run leaves (no meta.json) goes.
    let stale = Path::new("/var/lib/confine/changes").join(format!("{:x}", unique()));
    let _stale_guard = State(stale.clone());
    fs::create_dir_all(stale.join("upper/sub")).unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o700)).unwrap();
    let touched = Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(&stale)
        .status()
        .unwrap();
    assert!(touched.success());
    let gc = confine(&["gc"]);
    assert!(stdout(&gc).contains(&id), "{}", show(&gc));
    assert!(!stale.exists(), "{}", show(&gc));
    assert!(
        Path::new("/var/lib/confine/changes").join(&id).exists(),
        "gc kept them"
    );
    // Another user (the agent's uid, with a state directory of its own)
    // can neither see nor act on root's sandbox.
    let home = f.root.join("agent-home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    for cmd in ["diff", "commit", "discard"] {
        let o = setpriv_as_agent()
            .args(["--", bin(), cmd, &id])
            .env("PATH", PATH)
            .env("HOME", &home)
            .output()
            .unwrap();
        assert_status(&o, 1);
        assert!(stderr(&o).contains("no sandbox"), "{}", show(&o));
    }
    let o = setpriv_as_agent()
        .args(["--", "/bin/ls", "/var/lib/confine/changes"])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "another user lists root's changes: {}",
        show(&o)
    );
    assert_eq!(tree(&f.ws), before);
    let o = confine(&["discard", &id]);
    assert_status(&o, 0);
    assert!(!Path::new("/var/lib/confine/changes").join(&id).exists());
    assert_eq!(tree(&f.ws), before);
    assert_status(&confine(&["diff", &id]), 1);

    // Reading only: nothing to review, nothing kept.
    let o = f.sh(p.to_str().unwrap(), "cat a.txt >/dev/null");
    assert_status(&o, 0);
    let id = sandbox_id(&o);
    assert!(stderr(&o).contains("changed nothing"), "{}", show(&o));
    assert!(!Path::new("/var/lib/confine/changes").join(&id).exists());
}

#[test]
fn commit_refuses_a_path_changed_underneath_unless_forced() {
    let name = "commit_refuses_a_path_changed_underneath_unless_forced";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-conflict");
    populate(&f);
    let p = f.profile("review", REVIEW);
    let o = f.sh(
        p.to_str().unwrap(),
        "echo agent > a.txt; echo new > new.txt",
    );
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    // The user edits the same file meanwhile.
    f.file(&f.ws.join("a.txt"), "user\n");
    let o = confine(&["commit", &id]);
    assert_status(&o, 1);
    assert!(
        stderr(&o).contains("a.txt: it changed in the real workspace"),
        "{}",
        show(&o)
    );
    // Nothing at all was applied.
    assert_eq!(fs::read_to_string(f.ws.join("a.txt")).unwrap(), "user\n");
    assert!(!f.ws.join("new.txt").exists());
    // A path the sandbox didn't change can't be named.
    assert_status(&confine(&["commit", &id, "keep.txt"]), 1);
    let o = confine(&["commit", &id, "--force"]);
    assert_status(&o, 0);
    assert_eq!(fs::read_to_string(f.ws.join("a.txt")).unwrap(), "agent\n");
    assert_eq!(fs::read_to_string(f.ws.join("new.txt")).unwrap(), "new\n");
}

#[test]
fn diff_works_while_running_and_commit_waits_for_the_end() {
    let name = "diff_works_while_running_and_commit_waits_for_the_end";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-running");
    let p = f.profile("review", REVIEW);
    let mut sb = f.spawn_sh(p.to_str().unwrap(), "echo during > during.txt; sleep 30");
    let base = Path::new("/var/lib/confine/changes");
    // The sandbox's state appears with its upper layer.
    let id = poll_for(Duration::from_secs(10), || {
        let found = fs::read_dir(base).ok()?.flatten().find(|e| {
            let m = fs::read_to_string(e.path().join("meta.json")).unwrap_or_default();
            m.contains(f.ws.to_str().unwrap()) && e.path().join("upper/during.txt").exists()
        })?;
        Some(found.file_name().to_string_lossy().into_owned())
    })
    .expect("the sandbox's state directory");
    let _state = root_state(&id);
    // The real workspace doesn't change while the run goes on.
    assert!(!f.ws.join("during.txt").exists());
    let o = confine(&["diff", &id]);
    assert_status(&o, 0);
    assert!(stdout(&o).contains("A during.txt"), "{}", show(&o));
    let o = confine(&["commit", &id]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("still running"), "{}", show(&o));
    assert!(!f.ws.join("during.txt").exists());
    sb.signal(libc::SIGTERM);
    sb.finish();
    assert_status(&confine(&["commit", &id]), 0);
    assert_eq!(
        fs::read_to_string(f.ws.join("during.txt")).unwrap(),
        "during\n"
    );
}

/// A root-owned directory no sandbox and no agent may write: commit must
/// never put anything there.
fn target_dir(f: &Fixture) -> PathBuf {
    let t = f.root.join("target");
    fs::create_dir(&t).unwrap();
    fs::set_permissions(&t, fs::Permissions::from_mode(0o755)).unwrap();
    t
}

#[test]
fn commit_never_writes_through_a_symlink_planted_in_the_workspace() {
    let name = "commit_never_writes_through_a_symlink_planted_in_the_workspace";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-symlink");
    f.file(&f.ws.join("sub/old.txt"), "old\n");
    f.file(&f.ws.join("file.txt"), "old\n");
    let target = target_dir(&f);
    let p = f.profile("review", REVIEW);
    let o = f.sh(
        p.to_str().unwrap(),
        "echo evil > sub/planted.txt; mkdir fresh; echo x > fresh/y; echo new > file.txt",
    );
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    // The workspace's owner replaces the directory by a symlink to the
    // target, and the file by a symlink to a file in it.
    let plant = as_agent_unconfined(&[
        "/bin/sh",
        "-c",
        &format!(
            "cd {ws} && mv sub sub.real && ln -s {t} sub && ln -s {t} fresh && rm file.txt && ln -s {t}/f file.txt",
            ws = f.ws.display(),
            t = target.display()
        ),
    ]);
    assert_status(&plant, 0);
    let o = confine(&["commit", &id]);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("since the launch"), "{}", show(&o));
    // Forced, the links are replaced by what the sandbox saw; nothing is
    // written through them.
    let o = confine(&["commit", &id, "--force"]);
    assert_status(&o, 0);
    assert_eq!(
        fs::read_dir(&target).unwrap().count(),
        0,
        "commit wrote outside the workspace"
    );
    assert!(fs::symlink_metadata(f.ws.join("sub")).unwrap().is_dir());
    assert_eq!(
        fs::read_to_string(f.ws.join("sub/planted.txt")).unwrap(),
        "evil\n"
    );
    assert_eq!(fs::read_to_string(f.ws.join("fresh/y")).unwrap(), "x\n");
    assert!(fs::symlink_metadata(f.ws.join("file.txt"))
        .unwrap()
        .is_file());
    assert_eq!(
        fs::read_to_string(f.ws.join("sub.real/old.txt")).unwrap(),
        "old\n"
    );

    // Racing: the owner swaps a directory for a link to the target and
    // back while commit runs (bounded); whatever commit does, nothing
    // lands outside the workspace.
    let o = f.sh(p.to_str().unwrap(), "echo evil > sub/raced.txt");
    assert_status(&o, 0);
    let id = sandbox_id(&o);
    let _state2 = root_state(&id);
    let racing = format!(
        "cd {ws} && i=0; while [ $i -lt 2000 ]; do \
         mv sub sub.tmp; ln -s {t} sub; rm sub; mv sub.tmp sub; i=$((i+1)); done",
        ws = f.ws.display(),
        t = target.display()
    );
    let mut racer = setpriv_as_agent()
        .args(["--", "/bin/sh", "-c", &racing])
        .env("PATH", PATH)
        .spawn()
        .unwrap();
    let mut attempts = 0;
    while racer.try_wait().unwrap().is_none() && attempts < 200 {
        attempts += 1;
        let _ = confine(&["commit", &id, "--force"]);
        if !Path::new("/var/lib/confine/changes").join(&id).exists() {
            break;
        }
    }
    racer.wait().unwrap();
    assert_eq!(
        fs::read_dir(&target).unwrap().count(),
        0,
        "commit wrote outside the workspace"
    );
    // The control: with the directory left in place, commit writes it.
    if Path::new("/var/lib/confine/changes").join(&id).exists() {
        assert_status(&confine(&["commit", &id, "--force"]), 0);
    }
    let landed = [f.ws.join("sub/raced.txt"), f.ws.join("sub.tmp/raced.txt")];
    assert!(
        landed.iter().any(|p| p.exists()),
        "the control: commit applied it"
    );
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn a_large_file_is_copied_up_and_committed_whole() {
    let name = "a_large_file_is_copied_up_and_committed_whole";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-large");
    let big = f.ws.join("big");
    let file = fs::File::create(&big).unwrap();
    file.set_len(1 << 30).unwrap();
    drop(file);
    std::os::unix::fs::chown(&big, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let p = f.profile("review", REVIEW);
    let o = f.sh(p.to_str().unwrap(), "printf tail >> big");
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    assert_eq!(fs::metadata(&big).unwrap().len(), 1 << 30);
    let c = diff_json(&id);
    let b = c
        .iter()
        .find(|c| c["path"] == "big")
        .expect("big is listed");
    assert_eq!(b["change"], "modified");
    assert_eq!(b["size"], (1u64 << 30) + 4);
    assert_eq!(b["old_size"], 1u64 << 30);
    assert_status(&confine(&["commit", &id]), 0);
    let m = fs::metadata(&big).unwrap();
    assert_eq!(m.len(), (1 << 30) + 4);
    // Holes stay holes: the commit doesn't write a gigabyte of zeros.
    assert!(
        m.blocks() * 512 < 64 << 20,
        "{} bytes allocated",
        m.blocks() * 512
    );
    let tail = Command::new("tail")
        .args(["-c", "4"])
        .arg(&big)
        .output()
        .unwrap();
    assert_eq!(stdout(&tail), "tail");
}

#[test]
fn git_commit_inside_review_lands_whole_and_fsck_passes() {
    let name = "git_commit_inside_review_lands_whole_and_fsck_passes";
    if !can_run(name) || !have(name, "git") {
        return;
    }
    let f = Fixture::new("review-git");
    let git = |args: &str| {
        let o = setpriv_as_agent()
            .args([
                "--",
                "/bin/sh",
                "-c",
                &format!("git -c user.name=t -c user.email=t@t {args}"),
            ])
            .env("PATH", PATH)
            .env("HOME", &f.ws)
            .current_dir(&f.ws)
            .output()
            .unwrap();
        assert_status(&o, 0);
        stdout(&o)
    };
    git("init -q . && echo one > one.txt && git add . && git -c user.name=t -c user.email=t@t commit -qm first");
    let p = f.profile("review", REVIEW);
    let o = f.sh(
        p.to_str().unwrap(),
        "echo two > two.txt && echo more >> one.txt && git add . && \
         git -c user.name=t -c user.email=t@t commit -qm second && git gc -q",
    );
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    assert_eq!(
        git("rev-list --count HEAD").trim(),
        "1",
        "the real repository is untouched"
    );
    assert_status(&confine(&["commit", &id]), 0);
    assert_eq!(git("rev-list --count HEAD").trim(), "2");
    git("fsck --full --strict");
    assert_eq!(git("status --porcelain").trim(), "");
}

// ------------------------------------------------------------ unprivileged

#[test]
fn unprivileged_review_as_the_agent_uid() {
    let name = "unprivileged_review_as_the_agent_uid";
    if !can_run(name) {
        return;
    }
    if std::fs::read_to_string("/proc/sys/user/max_user_namespaces").is_ok_and(|s| s.trim() == "0")
    {
        skip_or_fail(name, "user namespaces are disabled on this host");
        return;
    }
    let f = Fixture::new("review-unpriv");
    populate(&f);
    let state = f.root.join("state");
    fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let p = f.profile("review", REVIEW);
    let as_agent = |args: &[&str]| {
        setpriv_as_agent()
            .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
            .arg(bin())
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .env("XDG_STATE_HOME", &state)
            .env("HOME", &f.root)
            .current_dir(&f.ws)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let before = tree(&f.ws);
    // A directory that existed can't be renamed in place (userxattr turns
    // redirect_dir off): rename(2) is EXDEV, and mv copies and deletes.
    let script = format!(
        "perl -e 'print rename(\"olddir\", \"viarename\") ? \"RENAMED\\n\" : \"ERRNO \".($!+0).\"\\n\"'; {SCRIPT}{LIST}"
    );
    let o = as_agent(&[
        "run",
        "-p",
        p.to_str().unwrap(),
        "-w",
        f.ws.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("ERRNO {}\n", libc::EXDEV)),
        "renaming a lower directory: {out}"
    );
    let id = sandbox_id(&o);
    assert!(state.join("confine/changes").join(&id).is_dir());
    let inside = lines(out.split("===\n").nth(1).unwrap());
    assert_eq!(tree(&f.ws), before, "the run changed the real workspace");
    let d = as_agent(&["diff", &id, "--json"]);
    assert_status(&d, 0);
    let v: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    let c = v["changes"].as_array().unwrap().clone();
    for (what, path) in [
        ("modified", "a.txt"),
        ("added", "renamed"),
        ("added", "renamed/x.txt"),
        ("deleted", "olddir"),
        ("deleted", "olddir/deep/y.txt"),
        ("deleted", "gone.txt"),
    ] {
        assert!(has(&c, what, path), "{what} {path} missing from {c:#?}");
    }
    // A subset first, then the rest.
    assert_status(&as_agent(&["commit", &id, "a.txt"]), 0);
    assert_eq!(
        fs::read_to_string(f.ws.join("a.txt")).unwrap(),
        "hello\nmore\n"
    );
    assert!(!f.ws.join("new.txt").exists());
    assert_status(&as_agent(&["commit", &id]), 0);
    let after = tree(&f.ws);
    let differs: Vec<_> = inside
        .keys()
        .filter(|k| !after.contains_key(*k))
        .chain(after.keys().filter(|k| !inside.contains_key(*k)))
        .collect();
    assert!(differs.is_empty(), "after commit: {differs:#?}");
    assert!(!state.join("confine/changes").join(&id).exists());
}

#[test]
fn review_that_cant_hold_is_refused_with_where_and_why() {
    let name = "review_that_cant_hold_is_refused_with_where_and_why";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-refused");
    f.file(&f.ws.join("sub/a"), "a\n");
    for (yaml, why) in [
        (
            "version: 1\nextends: readonly\nfilesystem:\n  changes: review\n",
            "in filesystem.write",
        ),
        (
            "version: 1\nextends: default\nfilesystem:\n  changes: review\n  write: {add: [\"{workspace}/sub\"]}\n",
            "granted on its own inside the workspace",
        ),
    ] {
        let p = f.profile("bad", yaml);
        let o = f.sh(p.to_str().unwrap(), "echo ran > ran.txt");
        assert_status(&o, 125);
        let e = stderr(&o);
        assert!(e.contains("filesystem.changes (") && e.contains("bad.yaml:4:12") && e.contains(why), "{e}");
        assert!(!f.ws.join("ran.txt").exists());
    }
    // The control: the same workspace in review mode runs.
    let p = f.profile("good", REVIEW);
    let o = f.sh(p.to_str().unwrap(), "echo ran > ran.txt");
    assert_status(&o, 0);
    let _state = root_state(&sandbox_id(&o));
    assert!(!f.ws.join("ran.txt").exists());
}

#[test]
fn changes_records_say_what_changed_and_who_committed_or_discarded() {
    let name = "changes_records_say_what_changed_and_who_committed_or_discarded";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-audit");
    f.file(&f.ws.join("a.txt"), "a\n");
    let log = f.root.join("audit/audit.jsonl");
    let p = f.profile(
        "review",
        &format!("{REVIEW}audit:\n  log: {}\n", log.display()),
    );
    let records = || -> Vec<serde_json::Value> {
        fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["event"] == "changes")
            .collect()
    };
    let o = f.sh(p.to_str().unwrap(), "echo b > b.txt; rm a.txt");
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    assert_status(&confine(&["commit", &id, "b.txt"]), 0);
    assert_status(&confine(&["discard", &id]), 0);
    let r = records();
    assert_eq!(r.len(), 3, "{r:#?}");
    assert!(r
        .iter()
        .all(|v| v["sandbox"] == id.as_str() && v["uid"] == 0));
    assert_eq!(r[0]["action"], "run");
    let changes: Vec<&str> = r[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(changes, ["deleted a.txt", "added b.txt"]);
    assert_eq!(r[1]["action"], "commit");
    assert_eq!(r[1]["committed"], serde_json::json!(["added b.txt"]));
    assert_eq!(r[2]["action"], "discard");
    assert_eq!(r[2]["changes"], serde_json::json!(["deleted a.txt"]));
    assert!(f.ws.join("a.txt").exists() && f.ws.join("b.txt").exists());
}

#[test]
fn review_keeps_protect_and_the_grants() {
    let name = "review_keeps_protect_and_the_grants";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-protect");
    f.file(&f.ws.join(".env"), "SECRET=1\n");
    f.file(&f.outside.join("o.txt"), "outside\n");
    let p = f.profile(
        "review",
        &format!("{REVIEW}  protect: [\"{{workspace}}/.env\"]\n"),
    );
    let o = f.sh(
        p.to_str().unwrap(),
        &format!(
            "echo x >> .env && echo ENV-WRITTEN; echo x >> {o}/o.txt && echo OUT-WRITTEN; \
             echo ok > control.txt && echo CONTROL",
            o = f.outside.display()
        ),
    );
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("CONTROL"), "{}", show(&o));
    assert!(
        !out.contains("ENV-WRITTEN") && !out.contains("OUT-WRITTEN"),
        "{}",
        show(&o)
    );
    assert_eq!(
        fs::read_to_string(f.outside.join("o.txt")).unwrap(),
        "outside\n"
    );
    let c = diff_json(&id);
    assert!(
        has(&c, "added", "control.txt") && !c.iter().any(|c| c["path"] == ".env"),
        "{c:#?}"
    );
}

#[test]
fn diff_text_never_sends_the_agents_control_characters_to_the_terminal() {
    let name = "diff_text_never_sends_the_agents_control_characters_to_the_terminal";
    if !can_run(name) {
        return;
    }
    let f = Fixture::new("review-escapes");
    f.file(&f.ws.join("a.txt"), "one\n");
    let p = f.profile("review", REVIEW);
    // A name and a line that would erase the line before them on a
    // terminal.
    let o = f.sh(
        p.to_str().unwrap(),
        "printf 'one\\n\\033[1A\\033[2Khidden\\n' > a.txt; printf x > \"$(printf 'n\\033[2Kame')\"",
    );
    let id = sandbox_id(&o);
    let _state = root_state(&id);
    assert_status(&o, 0);
    let o = confine(&["diff", &id]);
    assert_status(&o, 0);
    assert!(!o.stdout.contains(&0x1b), "{}", show(&o));
    let text = stdout(&o);
    assert!(
        text.contains("+\\x1b[1A\\x1b[2Khidden") && text.contains("A n\\x1b[2Kame"),
        "{text}"
    );
    // JSON carries them, escaped by JSON itself.
    let c = diff_json(&id);
    assert!(c.iter().any(|c| c["path"] == "n\u{1b}[2Kame"), "{c:#?}");
}
