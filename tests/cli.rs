//! The command line as a contract (DESIGN.md §1): exit statuses, and that
//! every refusal is one `confine:` line naming the file, line, column and
//! key, never a panic. Runs the real binary; only what needs a workspace
//! owned by someone else (or root-owned directories) needs root.
mod common;
use common::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use confine::plan::{self, Plan, PlanError, Request};
use confine::profile::locate::Pos;

const BUILTINS: &[&str] = &[
    "minimal",
    "readonly",
    "default",
    "research",
    "python-agent",
    "aider",
    "claude-code",
    "codex",
    "gemini-cli",
    "networked",
];

/// The built-ins for agents: egress through the proxy, a private home.
const AGENTS: &[&str] = &[
    "research",
    "python-agent",
    "aider",
    "claude-code",
    "codex",
    "gemini-cli",
];

/// `confine ARGS...` with a clean environment; RUST_BACKTRACE=1 so that a
/// panic anywhere would show.
fn confine(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts no panic, no backtrace, whatever the status.
#[track_caller]
fn assert_no_panic(o: &Output) {
    let err = stderr(o);
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!err.contains(bad), "{bad} on stderr: {}", show(o));
    }
    // A panic under `panic = "abort"` would be a signal, not a status.
    assert!(o.status.code().is_some(), "killed by a signal: {}", show(o));
}

/// Exit 125 and exactly one stderr line, `confine: ...`, holding every
/// fragment. Returns the line.
#[track_caller]
fn assert_refused(o: &Output, fragments: &[&str]) -> String {
    assert_no_panic(o);
    assert_status(o, 125);
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {}", show(o));
    assert!(err.ends_with('\n'), "{}", show(o));
    let line = lines[0];
    assert!(line.starts_with("confine: "), "{}", show(o));
    for f in fragments {
        assert!(line.contains(f), "stderr lacks {f:?}: {}", show(o));
    }
    line.to_string()
}

/// Refused with `KEY (FILE:LINE:COL): MESSAGE...`.
#[track_caller]
fn assert_located(o: &Output, file: &Path, key: &str, line: usize, col: usize, message: &str) {
    let want = format!("confine: {key} ({}:{line}:{col}): ", file.display());
    let got = assert_refused(o, &[message]);
    assert!(got.starts_with(&want), "expected {want:?}...\n{}", show(o));
}

/// A directory of profiles for tests that don't need root.
fn profiles_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write_profile(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(format!("{name}.yaml"));
    fs::write(&p, yaml).unwrap();
    p
}

fn check(p: &Path) -> Output {
    confine(&["check", p.to_str().unwrap()])
}

fn dry_run(profile: &str, ws: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "-p", profile, "-w", ws.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--dry-run", "--", "/bin/true"]);
    confine(&args)
}

// ------------------------------------------------ every validation error

/// Profile text, key, line, column, and a fragment of the message: every
/// error the schema itself catches, through `confine check`.
const BAD_PROFILES: &[(&str, &str, &str, usize, usize, &str)] = &[
    ("unknown_top", "version: 1\nfilesytem: {}\n", "filesytem", 2, 1, "unknown key `filesytem` (did you mean `filesystem`?)"),
    ("unknown_fs", "version: 1\nfilesystem:\n  raed: [/usr]\n", "filesystem.raed", 3, 3, "unknown key `raed` (did you mean `read`?)"),
    ("unknown_net", "version: 1\nnetwork:\n  mdoe: none\n", "network.mdoe", 3, 3, "(did you mean `mode`?)"),
    ("unknown_limits", "version: 1\nlimits:\n  memroy: 1G\n", "limits.memroy", 3, 3, "(did you mean `memory`?)"),
    ("unknown_syscalls", "version: 1\nsyscalls:\n  alow: [read]\n", "syscalls.alow", 3, 3, "(did you mean `allow`?)"),
    ("unknown_env", "version: 1\nenv:\n  kep: [PATH]\n", "env.kep", 3, 3, "(did you mean `keep`?)"),
    ("unknown_audit", "version: 1\naudit:\n  lgo: /var/log/x\n", "audit.lgo", 3, 3, "(did you mean `log`?)"),
    ("unknown_edit", "version: 1\nfilesystem:\n  read: {add: [/usr], remvoe: [/etc]}\n", "filesystem.read.remvoe", 3, 23, "unknown key `remvoe` (did you mean `remove`?)"),
    ("unknown_tmp", "version: 1\nfilesystem:\n  tmp: {size: 1M, exce: true}\n", "filesystem.tmp.exce", 3, 19, "unknown key `exce` (did you mean `exec`?)"),
    ("wrong_type", "version: 1\nfilesystem:\n  read: /usr\n", "filesystem.read", 3, 9, "invalid type: string \"/usr\""),
    ("wrong_type_bool", "version: 1\nlimits:\n  core_dumps: maybe\n", "limits.core_dumps", 3, 15, "expected a boolean"),
    ("bad_enum", "version: 1\nnetwork:\n  mode: lan\n", "network.mode", 3, 9, "unknown value `lan`; allowed: none, loopback, proxy, host"),
    ("relative_path", "version: 1\nfilesystem:\n  read: [/usr, usr]\n", "filesystem.read[1]", 3, 16, "relative path `usr`"),
    ("bad_size", "version: 1\nlimits:\n  memory: 12X\n", "limits.memory", 3, 11, "bad size `12X`"),
    ("bad_tmp_size", "version: 1\nfilesystem:\n  tmp: {size: 0}\n", "filesystem.tmp.size", 3, 15, "size `0` is zero"),
    ("bad_duration", "version: 1\nlimits:\n  wall_time: 10\n", "limits.wall_time", 3, 14, "bad duration `10`"),
    ("unknown_syscall", "version: 1\nsyscalls:\n  allow: [ptrce]\n", "syscalls.allow[0]", 3, 11, "unknown syscall `ptrce` (did you mean `ptrace`?)"),
    ("unknown_cap", "version: 1\ncapabilities: [CAP_NET_BIND_SERVISE]\n", "capabilities[0]", 2, 16, "unknown capability `CAP_NET_BIND_SERVISE` (did you mean `CAP_NET_BIND_SERVICE`?)"),
    ("port_0", "version: 1\nnetwork:\n  connect_tcp: [0]\n", "network.connect_tcp[0]", 3, 17, "port `0` is out of range"),
    ("port_65536", "version: 1\nnetwork:\n  connect_tcp: [65536]\n", "network.connect_tcp[0]", 3, 17, "port `65536` is out of range"),
    ("port_neg", "version: 1\nnetwork:\n  connect_tcp: [-1]\n", "network.connect_tcp[0]", 3, 17, "port `-1` is out of range"),
    ("port_http", "version: 1\nnetwork:\n  bind_tcp: [http]\n", "network.bind_tcp[0]", 3, 14, "port `http` is out of range"),
    ("user_0", "version: 1\nuser: 0\n", "user", 2, 7, "would run the agent as root: write `user: root`"),
    ("user_0_0", "version: 1\nuser: \"0:0\"\n", "user", 2, 7, "would run the agent as root"),
    ("user_gid_0", "version: 1\nuser: \"65534:0\"\n", "user", 2, 7, "would give the agent root's group (gid 0)"),
    ("user_uid_max", "version: 1\nuser: 4294967295\n", "user", 2, 7, "4294967295 is not a uid or gid (it is (uid_t)-1"),
    ("user_gid_max", "version: 1\nuser: \"1000:4294967295\"\n", "user", 2, 7, "4294967295 is not a uid or gid"),
    ("version_2", "version: 2\n", "version", 1, 10, "unsupported profile version 2"),
    ("no_version", "name: x\n", "version", 1, 1, "missing `version: 1`"),
    ("empty", "", "version", 1, 1, "missing `version: 1`"),
    ("syntax", "version: 1\nfilesystem: {read: [/usr}\n", "filesystem.read", 2, 25, "did not find expected ',' or ']'"),
    ("tab", "version: 1\nfilesystem:\n\tread: [/usr]\n", "filesystem", 3, 1, "found character that cannot start any token"),
    ("list_doc", "- version: 1\n", "profile", 1, 1, "invalid type: sequence, expected a map"),
    ("extends_unknown", "version: 1\nextends: defualt\n", "extends", 2, 10, "no built-in profile `defualt` (did you mean `default`?)"),
    ("extends_missing", "version: 1\nextends: ./nowhere.yaml\n", "extends", 2, 10, "can't read profile"),
    ("allow_bpf", "version: 1\nsyscalls:\n  allow: [read, bpf]\n", "syscalls.allow[1]", 3, 17, "`bpf` is always denied: it loads programs into the kernel; of the denylist only perf_event_open, process_vm_readv, process_vm_writev, ptrace can be allowed (see docs/PROFILE.md, Syscalls)"),
    ("port_word", "version: 1\nnetwork:\n  connect_tcp: every\n", "network.connect_tcp", 3, 16, "`every`: write `any`, or a list of ports such as [443]"),
    ("unknown_family", "version: 1\nnetwork:\n  socket_families: {add: [AF_PAKCET]}\n", "network.socket_families.add[0]", 3, 27, "unknown socket family `AF_PAKCET` (did you mean `AF_PACKET`?)"),
    ("allow_clone3", "version: 1\nsyscalls:\n  allow: [clone3]\n", "syscalls.allow[0]", 3, 11, "`clone3` always fails with ENOSYS"),
    ("missing_path", "version: 1\nfilesystem:\n  read:\n    - /usr\n    - /nonexistent/confine-test\n", "filesystem.read[1]", 5, 7, "path /nonexistent/confine-test does not exist (write `/nonexistent/confine-test?` to make it optional)"),
    ("missing_workspace", "version: 1\nworkspace: /nonexistent/confine-ws\n", "workspace", 2, 12, "/nonexistent/confine-ws: No such file or directory"),
];

#[test]
fn check_locates_every_bad_profile_on_one_line() {
    let dir = profiles_dir();
    for (name, yaml, key, line, col, message) in BAD_PROFILES {
        let p = write_profile(dir.path(), name, yaml);
        let o = check(&p);
        assert_located(&o, &p, key, *line, *col, message);
        assert!(stdout(&o).is_empty(), "{name}: {}", show(&o));
    }
}

/// `run --dry-run` and `explain` refuse the same profiles the same way.
#[test]
fn run_and_explain_refuse_bad_profiles_too() {
    let dir = profiles_dir();
    let ws = dir.path().join("ws");
    fs::create_dir(&ws).unwrap();
    for (name, yaml, key, line, col, message) in BAD_PROFILES {
        if *name == "missing_workspace" {
            continue; // -w wins over the profile's workspace
        }
        let p = write_profile(dir.path(), name, yaml);
        let o = dry_run(p.to_str().unwrap(), &ws, &[]);
        assert_located(&o, &p, key, *line, *col, message);
        let o = confine(&[
            "explain",
            "-p",
            p.to_str().unwrap(),
            "-w",
            ws.to_str().unwrap(),
            "--json",
        ]);
        assert_located(&o, &p, key, *line, *col, message);
        assert!(stdout(&o).is_empty(), "{name}: {}", show(&o));
    }
}

#[test]
fn optional_missing_path_is_skipped() {
    let dir = profiles_dir();
    let p = write_profile(
        dir.path(),
        "optional",
        "version: 1\nfilesystem:\n  read: [/usr, \"/nonexistent/confine-test?\"]\nuser: \"60123:60123\"\n",
    );
    let o = check(&p);
    assert_no_panic(&o);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), format!("{}: ok\n", p.display()));
    let o = confine(&[
        "explain",
        "-p",
        p.to_str().unwrap(),
        "-w",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert_no_panic(&o);
    assert_status(&o, 0);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let grants = plan["filesystem"]["grants"].as_array().unwrap();
    assert!(grants.iter().any(|g| g["path"] == "/usr"), "{}", show(&o));
    assert!(!stdout(&o).contains("confine-test"), "{}", show(&o));
}

#[test]
fn extends_cycle_is_located_at_extends() {
    let dir = profiles_dir();
    let a = write_profile(dir.path(), "a", "version: 1\nname: a\nextends: b.yaml\n");
    let b = write_profile(dir.path(), "b", "version: 1\n\nextends: ./a.yaml\n");
    let o = check(&a);
    assert_located(&o, &b, "extends", 3, 10, "extends cycle: ");
    let o = check(&b);
    assert_located(&o, &a, "extends", 3, 10, "extends cycle: ");
}

#[test]
fn relative_extends_is_resolved_from_the_profiles_directory() {
    let dir = profiles_dir();
    fs::create_dir(dir.path().join("sub")).unwrap();
    write_profile(
        dir.path(),
        "base",
        "version: 1\nfilesystem:\n  read: [/usr]\n",
    );
    let child = write_profile(
        &dir.path().join("sub"),
        "child",
        "version: 1\nextends: ../base.yaml\n",
    );
    // From a working directory where ../base.yaml means nothing.
    let o = Command::new(bin())
        .args(["check", child.to_str().unwrap()])
        .current_dir("/")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_no_panic(&o);
    assert_status(&o, 0);
    // And a bad value in the parent is reported in the parent.
    write_profile(
        dir.path(),
        "base",
        "version: 1\nfilesystem:\n  read: [usr]\n",
    );
    let o = check(&child);
    let parent = dir.path().join("sub/../base.yaml");
    assert_located(
        &o,
        &parent,
        "filesystem.read[0]",
        3,
        10,
        "relative path `usr`",
    );
}

#[test]
fn check_of_unknown_or_unreadable_profiles() {
    let o = confine(&["check", "defualt"]);
    assert_refused(
        &o,
        &["confine: profile (defualt): no built-in profile `defualt` (did you mean `default`?)"],
    );
    let o = confine(&["check", "/nonexistent/p.yaml"]);
    assert_refused(&o, &["/nonexistent/p.yaml", "can't read profile"]);
    let dir = profiles_dir();
    let o = confine(&["check", &format!("{}/", dir.path().display())]);
    assert_refused(&o, &["can't read profile"]);
    let bin_file = dir.path().join("latin1.yaml");
    fs::write(&bin_file, b"version: 1\nname: \xe9t\xe9\n").unwrap();
    let o = check(&bin_file);
    assert_refused(&o, &["is not UTF-8"]);
}

/// Several profiles: each bad one is one line, good ones say ok, and the
/// status is 125 if any failed.
#[test]
fn check_several() {
    let dir = profiles_dir();
    let bad = write_profile(dir.path(), "bad", "version: 1\nlimits: {memory: 12X}\n");
    let o = confine(&["check", "default", bad.to_str().unwrap(), "minimal"]);
    assert_refused(&o, &["limits.memory", "bad size"]);
    assert_eq!(stdout(&o), "default: ok\nminimal: ok\n");
}

#[test]
fn bad_set_is_refused_naming_the_key() {
    let dir = profiles_dir();
    let o = dry_run("minimal", dir.path(), &["--set", "limits.memroy=1G"]);
    assert_refused(
        &o,
        &["confine: limits.memroy (--set #1): unknown key `memroy` (did you mean `memory`?)"],
    );
    let o = dry_run(
        "minimal",
        dir.path(),
        &["--set", "limits.memory=1G", "--set", "limits.memory=12X"],
    );
    assert_refused(&o, &["confine: limits.memory (--set #2): bad size `12X`"]);
    let o = dry_run("minimal", dir.path(), &["--set", "limits.memory"]);
    assert_refused(&o, &["expected KEY=VALUE"]);
    let o = dry_run("minimal", dir.path(), &["--set", "a..b=1"]);
    assert_refused(&o, &["bad key `a..b`"]);
}

// ------------------------------------ checks that need the filesystem

/// A fixture's workspace with a profile written next to it; root only.
fn fixture(test: &str) -> Option<Fixture> {
    can_run(test).then(|| Fixture::new(test))
}

#[test]
fn write_grant_on_root_is_refused() {
    let Some(f) = fixture("write_root") else {
        return;
    };
    let p = f.profile("p", "version: 1\nfilesystem:\n  write: [/]\n");
    let o = dry_run(p.to_str().unwrap(), &f.ws, &[]);
    assert_located(
        &o,
        &p,
        "filesystem.write[0]",
        3,
        11,
        "a write grant on / would let the agent write everywhere",
    );
    let o = confine(&[
        "explain",
        "-p",
        p.to_str().unwrap(),
        "-w",
        f.ws.to_str().unwrap(),
    ]);
    assert_located(&o, &p, "filesystem.write[0]", 3, 11, "a write grant on /");
}

#[test]
fn check_refuses_what_run_refuses() {
    let dir = profiles_dir();
    let p = write_profile(
        dir.path(),
        "root",
        "version: 1\nfilesystem:\n  write: [/]\n",
    );
    assert_located(
        &check(&p),
        &p,
        "filesystem.write[0]",
        3,
        11,
        "a write grant on /",
    );
    let exe_dir = fs::canonicalize(bin())
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let p = write_profile(
        dir.path(),
        "exe",
        &format!(
            "version: 1\nfilesystem:\n  write: [{}]\n",
            exe_dir.display()
        ),
    );
    assert_located(
        &check(&p),
        &p,
        "filesystem.write[0]",
        3,
        11,
        "covers the confine binary",
    );
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let p = write_profile(
        dir.path(),
        "audit",
        &format!(
            "version: 1\nfilesystem:\n  write: [{l}]\naudit:\n  log: {l}/audit.jsonl\n",
            l = logs.display()
        ),
    );
    assert_located(
        &check(&p),
        &p,
        "audit.log",
        5,
        8,
        "is inside the write grant",
    );
}

#[test]
fn write_grant_over_the_confine_binary_is_refused() {
    let Some(f) = fixture("write_exe") else {
        return;
    };
    let exe = fs::canonicalize(bin()).unwrap();
    for dir in [
        exe.parent().unwrap(),
        exe.parent().unwrap().parent().unwrap(),
    ] {
        let p = f.profile(
            "p",
            &format!("version: 1\nfilesystem:\n  read: [/usr]\n  write:\n    - \"{{workspace}}\"\n    - {}\n", dir.display()),
        );
        let o = dry_run(p.to_str().unwrap(), &f.ws, &[]);
        assert_located(
            &o,
            &p,
            "filesystem.write[1]",
            6,
            7,
            &format!(
                "this write grant covers the confine binary ({})",
                exe.display()
            ),
        );
    }
}

#[test]
fn audit_log_inside_a_grant_is_refused() {
    let Some(f) = fixture("audit_in_grant") else {
        return;
    };
    // In a write grant: the agent could rewrite it.
    let p = f.profile(
        "w",
        "version: 1\nfilesystem:\n  write: [\"{workspace}\"]\naudit:\n  log: \"{workspace}/audit.jsonl\"\n",
    );
    let o = dry_run(p.to_str().unwrap(), &f.ws, &[]);
    let log = f.ws.join("audit.jsonl");
    assert_located(
        &o,
        &p,
        "audit.log",
        5,
        8,
        &format!(
            "the audit log {} is inside the write grant {}: the agent could rewrite it",
            log.display(),
            f.ws.display()
        ),
    );
    // In a read grant: the agent could read it.
    let p = f.profile("r", "version: 1\nfilesystem:\n  read: [\"{workspace}\"]\naudit:\n  log: \"{workspace}/audit.jsonl\"\n");
    let o = dry_run(p.to_str().unwrap(), &f.ws, &[]);
    assert_located(&o, &p, "audit.log", 5, 8, "is inside the read grant");
    // Given on the command line.
    let o = dry_run("default", &f.ws, &["--audit-log", log.to_str().unwrap()]);
    assert_refused(
        &o,
        &[
            "confine: audit log (--audit-log): ",
            "inside the write grant",
        ],
    );
    // In a directory the agent's user owns (outside every grant): it could
    // swap the log's name for a symlink while confine opens it.
    let agents = f.outside.join("audit.jsonl");
    let o = dry_run("default", &f.ws, &["--audit-log", agents.to_str().unwrap()]);
    assert_refused(
        &o,
        &[
            "confine: audit log (--audit-log): ",
            "so the log could be redirected",
        ],
    );
    // Outside every grant, in a directory only root can change, it is fine.
    let outside = f.root.join("logs").join("audit.jsonl");
    let o = dry_run(
        "default",
        &f.ws,
        &["--audit-log", outside.to_str().unwrap()],
    );
    assert_no_panic(&o);
    assert_status(&o, 0);
    assert!(
        stdout(&o).contains(&format!("audit       {}", outside.display())),
        "{}",
        show(&o)
    );
}

#[test]
fn missing_path_fails_closed_at_run() {
    let Some(f) = fixture("missing_path") else {
        return;
    };
    let p = f.profile(
        "p",
        "version: 1\nfilesystem:\n  write: [\"{workspace}/build\"]\n",
    );
    let o = dry_run(p.to_str().unwrap(), &f.ws, &[]);
    assert_located(
        &o,
        &p,
        "filesystem.write[0]",
        3,
        11,
        &format!(
            "path {} does not exist (write `{{workspace}}/build?` to make it optional)",
            f.ws.join("build").display()
        ),
    );
    let p = f.profile(
        "q",
        "version: 1\nfilesystem:\n  write: [\"{workspace}/build?\", \"{workspace}\"]\n",
    );
    let o = dry_run(p.to_str().unwrap(), &f.ws, &[]);
    assert_no_panic(&o);
    assert_status(&o, 0);
    assert!(!stdout(&o).contains("/build"), "{}", show(&o));
}

#[test]
fn workspace_owned_by_root_is_refused_for_workspace_owner() {
    let Some(f) = fixture("root_ws") else { return };
    let root_ws = f.root.join("root-ws");
    fs::create_dir(&root_ws).unwrap();
    for cmd in ["run", "explain"] {
        let mut args = vec![cmd, "-p", "default", "-w", root_ws.to_str().unwrap()];
        if cmd == "run" {
            args.extend_from_slice(&["--dry-run", "--", "/bin/true"]);
        }
        let o = confine(&args);
        let line = assert_refused(
            &o,
            &[
                "confine: user (built-in profile default:",
                "the agent would run as root",
                &root_ws.display().to_string(),
                "hint: write `user: root`",
            ],
        );
        assert!(line.contains("owned by uid 0"), "{line}");
    }
    // Also when the run is for real: refused before anything starts.
    let o = Command::new(bin())
        .args([
            "run",
            "-p",
            "default",
            "-w",
            root_ws.to_str().unwrap(),
            "--",
            "/bin/touch",
        ])
        .arg(root_ws.join("made"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_refused(&o, &["the agent would run as root"]);
    assert!(!root_ws.join("made").exists());
    // A profile of its own: located at its `user:`.
    let p = f.profile(
        "owner",
        "version: 1\nfilesystem:\n  read: [/usr]\nuser: workspace-owner\n",
    );
    let o = dry_run(p.to_str().unwrap(), &root_ws, &[]);
    assert_located(&o, &p, "user", 4, 7, "the agent would run as root");
    // Written as `root`, it is what was asked for.
    let p = f.profile(
        "root",
        "version: 1\nfilesystem:\n  read: [/usr]\nuser: root\n",
    );
    let o = dry_run(p.to_str().unwrap(), &root_ws, &[]);
    assert_no_panic(&o);
    assert_status(&o, 0);
    assert!(
        stdout(&o).contains("user        uid 0 gid 0"),
        "{}",
        show(&o)
    );
}

/// Root's group is root's privilege too: `workspace-owner` of a workspace
/// in group 0 is refused, as for uid 0, at `explain` and at a real run.
#[test]
fn workspace_in_group_0_is_refused_for_workspace_owner() {
    let Some(f) = fixture("gid0_ws") else { return };
    std::os::unix::fs::chown(&f.ws, Some(AGENT_UID), Some(0)).unwrap();
    let ws = f.ws.to_str().unwrap();
    let o = confine(&["explain", "-p", "default", "-w", ws]);
    assert_refused(
        &o,
        &[
            "confine: user (built-in profile default:",
            "the agent would run with root's group (gid 0)",
            "belongs to group 0",
            "hint: chgrp the workspace",
        ],
    );
    let marker = f.ws.join("made");
    let run = |ws: &Path| {
        Command::new(bin())
            .args(["run", "-p", "default", "-w"])
            .arg(ws)
            .args(["--", "/bin/sh", "-c"])
            .arg(format!("id -g; touch {}", marker.display()))
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run(&f.ws);
    assert_refused(&o, &["root's group (gid 0)"]);
    assert!(!marker.exists(), "the command ran");
    // Control: in a group of its own, the agent runs in that group.
    std::os::unix::fs::chown(&f.ws, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let o = run(&f.ws);
    assert_no_panic(&o);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), format!("{AGENT_GID}\n"), "{}", show(&o));
    assert!(marker.exists());
}

#[test]
fn missing_workspace_is_refused_naming_it() {
    for args in [
        &["run", "-w", "/nonexistent/confine-ws", "--", "/bin/true"][..],
        &[
            "run",
            "-w",
            "/nonexistent/confine-ws",
            "--dry-run",
            "--",
            "/bin/true",
        ],
        &[
            "run",
            "-p",
            "minimal",
            "-w",
            "/nonexistent/confine-ws",
            "--",
            "/bin/true",
        ],
        &["explain", "-w", "/nonexistent/confine-ws"],
        &["explain", "-w", "/nonexistent/confine-ws", "--json"],
    ] {
        let o = confine(args);
        assert_refused(
            &o,
            &["confine: workspace (-w): /nonexistent/confine-ws: No such file or directory"],
        );
        assert!(stdout(&o).is_empty(), "{}", show(&o));
    }
    // A file is no workspace either.
    let dir = profiles_dir();
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let o = confine(&[
        "run",
        "-w",
        file.to_str().unwrap(),
        "--dry-run",
        "--",
        "/bin/true",
    ]);
    assert_refused(
        &o,
        &[
            "confine: workspace (-w): ",
            &file.display().to_string(),
            "not a directory",
        ],
    );
}

/// The same checks through the library: structured errors with positions.
#[test]
fn plan_build_reports_located_profile_errors() {
    let Some(f) = fixture("plan_build") else {
        return;
    };
    let p = f.profile(
        "p",
        "version: 1\nfilesystem:\n  read: [/usr]\n  write:\n    - /\n",
    );
    let req = Request {
        profile: p.to_str().unwrap().into(),
        workspace: Some(f.ws.clone()),
        ..Request::default()
    };
    match Plan::build(&req) {
        Err(PlanError::Profile(e)) => {
            assert_eq!(e.source_name, p.display().to_string());
            assert_eq!(e.key, "filesystem.write[0]");
            assert_eq!(e.pos, Some(Pos { line: 5, col: 7 }));
            assert!(e.message.contains("write grant on /"), "{e}");
        }
        other => panic!("expected a located profile error, got {other:?}"),
    }
    let p = f.profile(
        "q",
        "version: 1\nfilesystem:\n  read: [/nonexistent/confine-test]\n",
    );
    match plan::check(p.to_str().unwrap()) {
        Err(PlanError::Profile(e)) => {
            assert_eq!(e.key, "filesystem.read[0]");
            assert_eq!(e.pos, Some(Pos { line: 3, col: 10 }));
        }
        other => panic!("expected a located profile error, got {other:?}"),
    }
    let req = Request {
        profile: "default".into(),
        workspace: Some(f.ws.clone()),
        overrides: vec!["limits.memory=1G".into(), "compat=best-effort".into()],
        ..Request::default()
    };
    let plan = Plan::build(&req).unwrap();
    assert_eq!(plan.limits.memory_bytes, Some(1 << 30));
    assert_eq!(plan.user.uid, AGENT_UID);
}

// -------------------------------------------------------- the built-ins

#[test]
fn profiles_lists_the_builtins() {
    let o = confine(&["profiles"]);
    assert_no_panic(&o);
    assert_status(&o, 0);
    let names: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(names, BUILTINS);
    assert!(!stdout(&o).contains("broken"), "{}", show(&o));
}

#[test]
fn check_every_builtin() {
    for name in BUILTINS {
        let o = confine(&["check", name]);
        assert_no_panic(&o);
        assert_status(&o, 0);
        assert_eq!(stdout(&o), format!("{name}: ok\n"));
        assert!(stderr(&o).is_empty(), "{}", show(&o));
    }
    let mut args = vec!["check"];
    args.extend_from_slice(BUILTINS);
    assert_status(&confine(&args), 0);
}

#[test]
fn explain_json_for_every_builtin() {
    let Some(f) = fixture("explain_json") else {
        return;
    };
    let ws = fs::canonicalize(&f.ws).unwrap();
    for name in BUILTINS {
        let o = confine(&[
            "explain",
            "-p",
            name,
            "-w",
            f.ws.to_str().unwrap(),
            "--json",
        ]);
        assert_no_panic(&o);
        assert_status(&o, 0);
        let plan: serde_json::Value = serde_json::from_str(&stdout(&o))
            .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", show(&o)));
        assert_eq!(plan["profile"]["name"], *name, "{}", show(&o));
        assert_eq!(plan["workspace"], ws.to_str().unwrap(), "{}", show(&o));
        assert_eq!(plan["profile"]["sha256"].as_str().unwrap().len(), 64);
        assert!(
            plan["filesystem"]["grants"]
                .as_array()
                .is_some_and(|g| !g.is_empty()),
            "{name}"
        );
        assert!(
            plan["seccomp"]["deny"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "ptrace"),
            "{name}"
        );
        assert_eq!(plan["capabilities"], serde_json::json!([]), "{name}");
        if ["default", "networked"].contains(name) || AGENTS.contains(name) {
            assert_eq!(
                plan["user"]["uid"], AGENT_UID,
                "{name}: runs as the workspace owner"
            );
        }
        if *name == "networked" {
            assert_eq!(plan["network"]["mode"], "host");
            assert_eq!(plan["network"]["connect_tcp"], serde_json::json!([80, 443]));
            // What host mode does and doesn't stop, in so many words.
            let said = |k: &str| plan["network"][k].to_string();
            assert!(
                said("enforced").contains("TCP Fast Open refused"),
                "{}",
                said("enforced")
            );
            assert!(
                said("not_restricted").contains("UDP"),
                "{}",
                said("not_restricted")
            );
            assert!(
                said("not_restricted").contains("listen()"),
                "{}",
                said("not_restricted")
            );
        } else if *name == "default" {
            assert_eq!(plan["network"]["mode"], "loopback", "{name}");
        } else if AGENTS.contains(name) {
            assert_eq!(plan["network"]["mode"], "proxy", "{name}");
            assert_eq!(plan["home"]["kind"], "private", "{name}");
            assert!(
                plan["home"]["path"]
                    .as_str()
                    .is_some_and(|h| h.ends_with(&format!("/confine/homes/{name}"))),
                "{name}: {}",
                plan["home"]
            );
            assert_eq!(plan["secrets"].as_array().map(Vec::len), Some(1), "{name}");
        } else {
            assert_eq!(plan["network"]["mode"], "none", "{name}");
        }
    }
}

/// Finding 6: a host-mode profile without port rules gets no TCP at all
/// (Landlock handles TCP whenever it can), and `check` says so, with the
/// way to ask for every port; that way warns about nothing.
#[test]
fn host_mode_without_port_rules_is_explained() {
    let dir = profiles_dir();
    let none = write_profile(
        dir.path(),
        "host-none",
        "version: 1\nextends: default\nnetwork:\n  mode: host\n",
    );
    let o = check(&none);
    assert_status(&o, 0);
    let e = stderr(&o);
    assert!(
        e.contains("no TCP connection or bind is allowed"),
        "{}",
        show(&o)
    );
    assert!(e.contains("`connect_tcp: any`"), "{}", show(&o));
    assert!(!e.contains("can reach any TCP port"), "{}", show(&o));
    let any = write_profile(
        dir.path(),
        "host-any",
        "version: 1\nextends: default\nnetwork:\n  mode: host\n  connect_tcp: any\n",
    );
    let o = check(&any);
    assert_status(&o, 0);
    assert!(stderr(&o).is_empty(), "{}", show(&o));
}

/// `explain --json` of what a profile re-allows, adds and restricts:
/// `ptrace` leaves the denylist only when `allow` names it and `deny`
/// doesn't; added socket families and `file_size`'s fallocate rule show.
#[test]
fn explain_shows_reallowed_syscalls_families_and_rules() {
    let Some(f) = fixture("explain_rules") else {
        return;
    };
    let plan = |yaml: &str| -> serde_json::Value {
        let p = f.profile("p", yaml);
        let o = confine(&[
            "explain",
            "-p",
            p.to_str().unwrap(),
            "-w",
            f.ws.to_str().unwrap(),
            "--json",
        ]);
        assert_status(&o, 0);
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let denies = |v: &serde_json::Value, name: &str| {
        v["seccomp"]["deny"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == name)
    };
    let v = plan("version: 1\nextends: default\nsyscalls:\n  allow: [ptrace]\n");
    assert!(!denies(&v, "ptrace"), "{v}");
    assert!(denies(&v, "process_vm_readv"), "{v}");
    assert_eq!(v["seccomp"]["reallowed"], serde_json::json!(["ptrace"]));
    let v = plan("version: 1\nextends: default\nsyscalls:\n  allow: [ptrace]\n  deny: [ptrace]\n");
    assert!(denies(&v, "ptrace"), "{v}");
    assert_eq!(v["seccomp"]["reallowed"], serde_json::json!([]));
    let v = plan(
        "version: 1\nextends: default\nnetwork:\n  socket_families: {add: [AF_VSOCK]}\nlimits:\n  file_size: 1G\n",
    );
    assert_eq!(
        v["network"]["socket_families"],
        serde_json::json!(["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_VSOCK"])
    );
    let rules = v["seccomp"]["argument_rules"].to_string();
    assert!(rules.contains("AF_VSOCK"), "{rules}");
    assert!(
        rules.contains("fallocate with FALLOC_FL_KEEP_SIZE"),
        "{rules}"
    );
    assert!(!rules.contains("MSG_FASTOPEN"), "{rules}");
    assert!(v["memfd"].is_string(), "{v}");
}

#[test]
fn dry_run_for_every_builtin() {
    let Some(f) = fixture("dry_run") else { return };
    let ws = fs::canonicalize(&f.ws).unwrap();
    for name in BUILTINS {
        let o = dry_run(name, &f.ws, &[]);
        assert_no_panic(&o);
        assert_status(&o, 0);
        let out = stdout(&o);
        assert!(
            out.starts_with(&format!("profile     {name} (")),
            "{}",
            show(&o)
        );
        assert!(
            out.contains(&format!("workspace   {}\n", ws.display())),
            "{}",
            show(&o)
        );
        assert!(out.contains("command     /bin/true\n"), "{}", show(&o));
        for section in [
            "filesystem  Landlock ABI",
            "network     ",
            "seccomp     ",
            "caps        none",
            "limits      ",
        ] {
            assert!(
                out.contains(section),
                "{name}: no {section:?}: {}",
                show(&o)
            );
        }
        // --dry-run runs nothing.
        assert!(fs::read_dir(&f.ws).unwrap().next().is_none());
    }
}

// ---------------------------------------------------- the command line

#[test]
fn version_and_help_exit_0() {
    let o = confine(&["--version"]);
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("confine {}\n", env!("CARGO_PKG_VERSION"))
    );
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["run", "--help"],
        &["check", "--help"],
        &["explain", "--help"],
        &["probe", "--help"],
        &["profiles", "--help"],
        &["help", "run"],
    ] {
        let o = confine(args);
        assert_no_panic(&o);
        assert_status(&o, 0);
        assert!(
            stdout(&o).contains("Usage: confine"),
            "{args:?}: {}",
            show(&o)
        );
        assert!(stderr(&o).is_empty(), "{args:?}: {}", show(&o));
    }
    assert!(stdout(&confine(&["run", "--help"])).contains("125 when confine refused"));
}

#[test]
fn usage_errors_exit_125() {
    for args in [
        &["bogus"][..],
        &[],
        &["run"],
        &["run", "-w", "/tmp"],
        &["run", "-w", "/tmp", "/bin/true"],
        &["run", "--no-such-flag", "--", "/bin/true"],
        &["check"],
        &["explain", "--json", "extra"],
    ] {
        let o = confine(args);
        assert_no_panic(&o);
        assert_status(&o, 125);
        assert!(!stderr(&o).is_empty(), "{args:?}: {}", show(&o));
        assert!(stdout(&o).is_empty(), "{args:?}: {}", show(&o));
    }
}

/// Usage errors are one `confine:` line like every other refusal (§1).
#[test]
fn usage_errors_are_one_confine_line() {
    for args in [&["bogus"][..], &["run", "-w", "/tmp"]] {
        assert_refused(&confine(args), &[]);
    }
}

#[test]
fn probe_runs() {
    let o = confine(&["probe", "--json"]);
    assert_no_panic(&o);
    assert_status(&o, 0);
    serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap();
    let o = confine(&["probe"]);
    assert_no_panic(&o);
    assert_status(&o, 0);
}

#[test]
fn man_page_and_completions() {
    let o = confine(&["man"]);
    assert_no_panic(&o);
    assert_status(&o, 0);
    let page = stdout(&o);
    assert!(page.contains(".TH confine 1"), "{}", show(&o));
    for sub in ["run", "explain", "profiles", "completions"] {
        assert!(
            page.contains(&format!("confine\\-{sub}")) || page.contains(sub),
            "{sub}"
        );
    }
    // Control: a roff renderer, where there is one, reads it.
    if Path::new("/usr/bin/groff").exists() {
        let mut g = Command::new("/usr/bin/groff")
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut g.stdin.take().unwrap(), page.as_bytes()).unwrap();
        let r = g.wait_with_output().unwrap();
        assert!(r.status.success(), "{}", show(&r));
        assert!(String::from_utf8_lossy(&r.stdout).contains("SUBCOMMANDS"));
    }
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = confine(&["completions", shell]);
        assert_status(&o, 0);
        assert!(stdout(&o).contains("confine"), "{shell}: {}", show(&o));
        assert!(stdout(&o).contains("profiles"), "{shell}: {}", show(&o));
    }
    // bash parses what it is given.
    let o = confine(&["completions", "bash"]);
    let script =
        std::env::temp_dir().join(format!("confine-completion-{}.bash", std::process::id()));
    fs::write(&script, stdout(&o)).unwrap();
    let r = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    let _ = fs::remove_file(&script);
    assert!(r.status.success(), "{}", show(&r));
    let o = confine(&["completions", "tcsh"]);
    assert_status(&o, 125);
    assert!(stderr(&o).contains("possible values"), "{}", show(&o));
}
