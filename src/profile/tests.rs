//! Unit tests of profile parsing, merging and validation.
//!
//! Every error test checks the message, the key and where the error points
//! (layer, line and column, 1-based), because "errors name file:line:column
//! and the key" is part of the command-line contract (DESIGN.md §1, §2).
//! Checks that need the filesystem or the kernel (paths that must exist,
//! write grants over the binary or the audit log, the workspace owner) live
//! in `plan/` and are tested through the binary in `tests/cli.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use super::locate::Pos;
use super::*;

/// Parses `text` as a profile named `t.yaml`; it must fail.
#[track_caller]
fn err(text: &str) -> ProfileError {
    match from_text("t.yaml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts an error's layer, key, position and that its message contains
/// every fragment.
#[track_caller]
fn assert_err(
    e: &ProfileError,
    source: &str,
    key: &str,
    pos: Option<(usize, usize)>,
    fragments: &[&str],
) {
    assert_eq!(e.source_name, source, "source of {e:?}");
    assert_eq!(e.key, key, "key of {e:?}");
    assert_eq!(
        e.pos,
        pos.map(|(line, col)| Pos { line, col }),
        "position of {e:?}"
    );
    for f in fragments {
        assert!(e.message.contains(f), "message of {e:?} lacks {f:?}");
    }
    // What the user sees names all of it, in the order DESIGN.md gives.
    let shown = e.to_string();
    let key = if key.is_empty() { "profile" } else { key };
    match pos {
        Some((l, c)) => assert!(
            shown.starts_with(&format!("{key} ({source}:{l}:{c}): ")),
            "{shown}"
        ),
        None => assert!(shown.starts_with(&format!("{key} ({source}): ")), "{shown}"),
    }
    assert!(!shown.contains('\n'), "one line: {shown:?}");
}

/// `text` in `t.yaml` fails with `key` at `line`:`col`.
#[track_caller]
fn assert_text_err(text: &str, key: &str, line: usize, col: usize, fragments: &[&str]) {
    assert_err(&err(text), "t.yaml", key, Some((line, col)), fragments);
}

fn ok(text: &str) -> Profile {
    from_text("t.yaml", text).unwrap_or_else(|e| panic!("{e}\n--- for:\n{text}"))
}

fn paths(list: &[Sourced<PathSpec>]) -> Vec<String> {
    list.iter().map(|p| p.value.to_string()).collect()
}

fn keys(list: &[Sourced<EnvPattern>]) -> Vec<String> {
    list.iter().map(|k| k.value.0.clone()).collect()
}

/// A directory of profile files for tests that need `extends` by path.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.path().join(name);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(&p, text).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn load_path(p: &Path) -> Result<Profile, ProfileError> {
    load(p.to_str().unwrap(), &[])
}

fn name_of(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------- parsing

/// The example of DESIGN.md §2, field by field.
const FULL: &str = r#"version: 1
name: coding
description: read the system, write the workspace, run toolchains, no network
workspace: /workspace

filesystem:
  read:  [/usr, /etc, /lib, /lib64?, /bin, /sbin]
  write: ["{workspace}"]
  exec:  [/usr/bin, /bin, /usr/lib, /usr/libexec]
  tmp:   {size: 256M, exec: false}
  protect: ["{workspace}/.git/hooks", "{workspace}/.git/config", "{workspace}/.env"]

network:
  mode: host
  connect_tcp: [443]
  bind_tcp: []

syscalls:
  allow: [io_setup]
  deny:  [kcmp]
  on_violation: kill

capabilities: [CAP_NET_BIND_SERVICE]

user: workspace-owner

env:
  keep: [PATH, LANG, LC_ALL, TERM, TZ]
  set:  {HOME: "{workspace}"}

limits:
  wall_time: 1h
  grace: 10s
  memory: 2G
  pids: 512
  cpu: 1.5
  open_files: 1024
  file_size: 1G
  core_dumps: false

audit:
  log: /var/log/confine/audit.jsonl

compat: best-effort
"#;

#[test]
fn parses_the_design_example() {
    let p = ok(FULL);
    assert_eq!(p.name, "coding");
    assert!(p.description.starts_with("read the system"));
    assert_eq!(p.workspace.as_ref().unwrap().value.raw, "/workspace");
    assert_eq!(
        paths(&p.filesystem.read),
        ["/usr", "/etc", "/lib", "/lib64?", "/bin", "/sbin"]
    );
    assert!(p.filesystem.read[3].value.optional);
    assert_eq!(p.filesystem.read[3].value.raw, "/lib64");
    assert_eq!(paths(&p.filesystem.write), ["{workspace}"]);
    assert_eq!(
        paths(&p.filesystem.exec),
        ["/usr/bin", "/bin", "/usr/lib", "/usr/libexec"]
    );
    assert_eq!(
        p.filesystem.tmp,
        Some(TmpSettings {
            size: Some(Size(256 << 20)),
            exec: Some(false)
        })
    );
    assert_eq!(p.filesystem.protect.len(), 3);
    assert_eq!(p.network.mode.value, NetworkMode::Host);
    assert_eq!(p.network.connect_tcp, [PortRule::Port(443)]);
    assert!(p.network.bind_tcp.is_empty());
    assert_eq!(p.syscalls.allow[0].value.0, "io_setup");
    assert_eq!(p.syscalls.deny[0].value.0, "kcmp");
    assert_eq!(p.syscalls.on_violation, OnViolation::Kill);
    assert_eq!(
        p.capabilities[0].value.0,
        caps::Capability::CAP_NET_BIND_SERVICE
    );
    assert_eq!(p.user.value, UserSpec::WorkspaceOwner);
    assert_eq!(keys(&p.env.keep), ["PATH", "LANG", "LC_ALL", "TERM", "TZ"]);
    assert_eq!(
        p.env.set.get("HOME").map(String::as_str),
        Some("{workspace}")
    );
    let l = &p.limits;
    assert_eq!(l.wall_time, Some(Duration(3_600_000)));
    assert_eq!(l.grace, Some(Duration(10_000)));
    assert_eq!(l.memory, Some(Size(2 << 30)));
    assert_eq!(l.pids, Some(Count(512)));
    assert_eq!(l.cpu, Some(Cores(1.5)));
    assert_eq!(l.open_files, Some(Count(1024)));
    assert_eq!(l.file_size, Some(Size(1 << 30)));
    assert_eq!(l.core_dumps, Some(false));
    assert_eq!(
        p.audit_log.as_ref().unwrap().value.raw,
        "/var/log/confine/audit.jsonl"
    );
    assert_eq!(p.compat, Compat::BestEffort);
    assert_eq!(p.sources.len(), 1);
}

#[test]
fn defaults_fill_what_a_profile_leaves_out() {
    let p = ok("version: 1\n");
    assert_eq!(p.name, "t.yaml");
    assert!(p.workspace.is_none());
    assert!(
        p.filesystem.read.is_empty()
            && p.filesystem.write.is_empty()
            && p.filesystem.exec.is_empty()
    );
    assert_eq!(p.filesystem.tmp, Some(TmpSettings::default()));
    assert_eq!(p.network.mode.value, NetworkMode::None);
    assert!(p.network.mode.origin.is_none());
    assert_eq!(p.syscalls.on_violation, OnViolation::Errno);
    assert!(p.capabilities.is_empty());
    assert_eq!(p.user.value, UserSpec::WorkspaceOwner);
    assert_eq!(keys(&p.env.keep), DEFAULT_ENV_KEEP);
    assert!(p.env.set.is_empty());
    assert!(p.limits.memory.is_none() && p.limits.wall_time.is_none());
    assert!(p.audit_log.is_none());
    assert_eq!(p.compat, Compat::Strict);
}

#[test]
fn every_builtin_parses_the_same_from_json_as_from_yaml() {
    for (name, text) in builtin::ALL {
        let json = builtin::json(name).unwrap();
        let from_json: schema::RawProfile =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("built-in {name} as JSON: {e}"));
        let yaml_only = Arc::new(Source {
            name: format!("built-in profile {name}"),
            path: None,
            text: text.to_string(),
            json: None,
        });
        let from_yaml = parse(&yaml_only, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{from_json:?}"), format!("{from_yaml:?}"), "{name}");
    }
    // Every file under profiles/ is a built-in.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut files: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = builtin::ALL.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
}

#[test]
fn every_builtin_loads_and_the_chain_is_as_documented() {
    for (name, _) in builtin::ALL {
        let p = load(name, &[]).unwrap_or_else(|e| panic!("built-in {name}: {e}"));
        assert_eq!(p.name, *name);
        assert!(!p.description.is_empty(), "{name} has a description");
        assert_eq!(
            p.sources.last().unwrap().name,
            format!("built-in profile {name}")
        );
        // Built-ins must not depend on one distribution's layout.
        for item in p.filesystem.read.iter().chain(&p.filesystem.exec) {
            let raw = &item.value.raw;
            if ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"].contains(&raw.as_str()) {
                assert!(
                    item.value.optional,
                    "built-in {name}: {raw} must be optional"
                );
            }
        }
    }
    let d = load("default", &[]).unwrap();
    let chain: Vec<&str> = d.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        chain,
        [
            "built-in profile minimal",
            "built-in profile readonly",
            "built-in profile default"
        ]
    );
    // readonly adds the workspace to minimal's read list; default keeps it.
    assert_eq!(paths(&d.filesystem.read).last().unwrap(), "{workspace}");
    assert!(paths(&d.filesystem.read).contains(&"/usr".to_string()));
    assert_eq!(paths(&d.filesystem.write), ["{workspace}"]);
    assert_eq!(paths(&d.filesystem.exec).last().unwrap(), "{workspace}");
    // minimal says `tmp: false`; readonly and default turn it back on.
    assert!(load("minimal", &[]).unwrap().filesystem.tmp.is_none());
    assert_eq!(
        load("readonly", &[]).unwrap().filesystem.tmp.unwrap().size,
        Some(Size(64 << 20))
    );
    assert_eq!(
        d.filesystem.tmp.as_ref().unwrap().size,
        Some(Size(256 << 20))
    );
    // HOME is the workspace through `home`, so a profile that extends
    // these can choose another with `home: private`.
    assert!(!d.env.set.contains_key("HOME"));
    assert_eq!(
        d.home.as_ref().map(|h| &h.value),
        Some(&HomeSpec::Workspace)
    );
    let n = load("networked", &[]).unwrap();
    assert_eq!(n.network.mode.value, NetworkMode::Host);
    assert_eq!(
        n.network.connect_tcp,
        [PortRule::Port(80), PortRule::Port(443)]
    );
    assert_eq!(n.sources.len(), 4);
}

#[test]
fn workspace_expansion() {
    let p = ok("version: 1\nfilesystem:\n  write: [\"{workspace}\", \"{workspace}/build\", \"{workspace}/out?\"]\n  protect: [\"{workspace}/.git/hooks\"]\n");
    let ws = Path::new("/srv/ws");
    let w: Vec<Option<PathBuf>> = p
        .filesystem
        .write
        .iter()
        .map(|x| x.value.expand(Some(ws)))
        .collect();
    assert_eq!(
        w,
        [
            Some(PathBuf::from("/srv/ws")),
            Some(PathBuf::from("/srv/ws/build")),
            Some(PathBuf::from("/srv/ws/out"))
        ]
    );
    assert!(p.filesystem.write[2].value.optional);
    assert!(p.filesystem.write.iter().all(|x| x.value.uses_workspace()));
    assert_eq!(
        p.filesystem.protect[0].value.expand(Some(ws)),
        Some(PathBuf::from("/srv/ws/.git/hooks"))
    );
    // Without a workspace there is nothing to expand to.
    assert_eq!(p.filesystem.write[1].value.expand(None), None);
    // Absolute paths are left alone.
    let a: PathSpec = "/usr".parse().unwrap();
    assert_eq!(a.expand(Some(ws)), Some(PathBuf::from("/usr")));
    assert!(!a.uses_workspace());
}

#[test]
fn workspace_variable_only_at_the_start() {
    assert_text_err(
        "version: 1\nfilesystem:\n  read: [\"{workspace}x\"]\n",
        "filesystem.read[0]",
        3,
        10,
        &["{workspace} must be followed by `/` or nothing"],
    );
    assert_text_err(
        "version: 1\nfilesystem:\n  read: [\"/home/{user}\"]\n",
        "filesystem.read[0]",
        3,
        10,
        &["the only variable a path may use is {workspace}"],
    );
    assert_text_err(
        "version: 1\nfilesystem:\n  read: [\"{workspace}/../etc\"]\n",
        "filesystem.read[0]",
        3,
        10,
        &["`..` is not allowed"],
    );
}

#[test]
fn values_know_where_they_were_written() {
    let p = ok("version: 1\nfilesystem:\n  read:\n    - /usr\n    - /etc\nuser: inherit\n");
    let e = p.filesystem.read[1].error("filesystem.read[1]", "nope");
    assert_err(&e, "t.yaml", "filesystem.read[1]", Some((5, 7)), &["nope"]);
    let e = p.user.error("user", "nope");
    assert_err(&e, "t.yaml", "user", Some((6, 7)), &["nope"]);
    // A default was written nowhere: the error names the key and `defaults`.
    let e = p.network.mode.error("network.mode", "nope");
    assert_err(&e, "defaults", "network.mode", None, &["nope"]);
}

// --------------------------------------------------------- unknown keys

#[test]
fn unknown_top_level_key_suggests() {
    assert_text_err(
        "version: 1\nfilesytem:\n  read: [/usr]\n",
        "filesytem",
        2,
        1,
        &[
            "unknown key `filesytem` (did you mean `filesystem`?)",
            "allowed here: version, name",
        ],
    );
    assert_text_err(
        "version: 1\nextend: default\n",
        "extend",
        2,
        1,
        &["did you mean `extends`?"],
    );
    assert_text_err(
        "version: 1\ncapabilites: []\n",
        "capabilites",
        2,
        1,
        &["did you mean `capabilities`?"],
    );
}

#[test]
fn unknown_key_without_a_close_match() {
    let e = err("version: 1\nzzzzzzzz: 1\n");
    assert_err(
        &e,
        "t.yaml",
        "zzzzzzzz",
        Some((2, 1)),
        &["unknown key `zzzzzzzz`; allowed here: version"],
    );
    assert!(!e.message.contains("did you mean"), "{e}");
}

#[test]
fn unknown_key_in_every_section_suggests() {
    let cases: &[(&str, &str, usize, usize, &str)] = &[
        (
            "filesystem:\n  raed: [/usr]\n",
            "filesystem.raed",
            3,
            3,
            "read",
        ),
        (
            "filesystem:\n  protcet: []\n",
            "filesystem.protcet",
            3,
            3,
            "protect",
        ),
        ("network:\n  mdoe: none\n", "network.mdoe", 3, 3, "mode"),
        (
            "network:\n  connect_tpc: [443]\n",
            "network.connect_tpc",
            3,
            3,
            "connect_tcp",
        ),
        (
            "syscalls:\n  alow: [read]\n",
            "syscalls.alow",
            3,
            3,
            "allow",
        ),
        (
            "syscalls:\n  on_violaton: kill\n",
            "syscalls.on_violaton",
            3,
            3,
            "on_violation",
        ),
        ("env:\n  kep: [PATH]\n", "env.kep", 3, 3, "keep"),
        ("limits:\n  memroy: 1G\n", "limits.memroy", 3, 3, "memory"),
        (
            "limits:\n  walltime: 1h\n",
            "limits.walltime",
            3,
            3,
            "wall_time",
        ),
        ("audit:\n  lgo: /var/log/x\n", "audit.lgo", 3, 3, "log"),
    ];
    for (body, key, line, col, want) in cases {
        let text = format!("version: 1\n{body}");
        let e = err(&text);
        assert_err(
            &e,
            "t.yaml",
            key,
            Some((*line, *col)),
            &[&format!("(did you mean `{want}`?)"), "allowed here: "],
        );
        // The message is ours, not serde's.
        assert!(!e.message.contains("unknown field"), "{e}");
    }
}

#[test]
fn unknown_key_in_add_remove_suggests() {
    assert_text_err(
        "version: 1\nfilesystem:\n  read: {add: [/usr], remvoe: [/etc]}\n",
        "filesystem.read.remvoe",
        3,
        23,
        &["unknown key `remvoe` (did you mean `remove`?); allowed here: add, remove"],
    );
    assert_text_err(
        "version: 1\nenv:\n  keep:\n    ad: [HOME]\n",
        "env.keep.ad",
        4,
        5,
        &["unknown key `ad` (did you mean `add`?)"],
    );
    assert_text_err(
        "version: 1\ncapabilities: {rmove: [CAP_CHOWN]}\n",
        "capabilities.rmove",
        2,
        16,
        &["(did you mean `remove`?)"],
    );
}

#[test]
fn unknown_key_in_tmp_suggests() {
    assert_text_err(
        "version: 1\nfilesystem:\n  tmp: {size: 1M, exce: true}\n",
        "filesystem.tmp.exce",
        3,
        19,
        &["unknown key `exce` (did you mean `exec`?); allowed here: size, exec"],
    );
    assert_text_err(
        "version: 1\nfilesystem:\n  tmp:\n    szie: 1M\n",
        "filesystem.tmp.szie",
        4,
        5,
        &["(did you mean `size`?)"],
    );
}

// ------------------------------------------------------------ wrong types

#[test]
fn wrong_types() {
    assert_text_err(
        "version: 1\nfilesystem:\n  read: /usr\n",
        "filesystem.read",
        3,
        9,
        &[
            "invalid type: string \"/usr\"",
            "expected a list, or {add: [...]} / {remove: [...]}",
        ],
    );
    assert_text_err(
        "version: 1\nfilesystem: [/usr]\n",
        "filesystem",
        2,
        13,
        &["invalid type: sequence, expected a map (key: value)"],
    );
    assert_text_err(
        "version: 1\nlimits:\n  core_dumps: maybe\n",
        "limits.core_dumps",
        3,
        15,
        &["expected a boolean"],
    );
    assert_text_err(
        "version: 1\nenv:\n  set: {A: [1]}\n",
        "env.set.A",
        3,
        12,
        &["invalid type: sequence, expected a string"],
    );
    assert_text_err(
        "version: 1\nfilesystem:\n  tmp: yes\n",
        "filesystem.tmp",
        3,
        8,
        &["`false`, `true` or {size: SIZE, exec: BOOL}"],
    );
    assert_text_err(
        "version: 1\nname: [a]\n",
        "name",
        2,
        7,
        &["expected a string"],
    );
    assert_text_err(
        "version: 1\nlimits:\n  pids: many\n",
        "limits.pids",
        3,
        9,
        &["bad count `many`: write a whole number from 1 up"],
    );
    assert_text_err(
        "version: 1\nlimits:\n  cpu: 0\n",
        "limits.cpu",
        3,
        8,
        &["bad cpu limit `0`"],
    );
    assert_text_err(
        "version: 1\nenv:\n  keep: [\"A=B\"]\n",
        "env.keep[0]",
        3,
        10,
        &["bad environment variable name `A=B`"],
    );
}

#[test]
fn unknown_enum_values_list_the_allowed_ones() {
    assert_text_err(
        "version: 1\nnetwork:\n  mode: lan\n",
        "network.mode",
        3,
        9,
        &["unknown value `lan`; allowed: none, loopback, proxy, host"],
    );
    assert_text_err(
        "version: 1\nsyscalls:\n  on_violation: panic\n",
        "syscalls.on_violation",
        3,
        17,
        &["unknown value `panic`; allowed: errno, kill, log"],
    );
    assert_text_err(
        "version: 1\ncompat: loose\n",
        "compat",
        2,
        9,
        &["unknown value `loose`; allowed: strict, best-effort"],
    );
}

// ------------------------------------------------------------------ paths

#[test]
fn relative_paths_are_errors() {
    assert_text_err(
        "version: 1\nfilesystem:\n  read: [/usr, usr]\n",
        "filesystem.read[1]",
        3,
        16,
        &["relative path `usr`: paths must be absolute or start with {workspace}"],
    );
    assert_text_err(
        "version: 1\nfilesystem:\n  write: {add: [./out]}\n",
        "filesystem.write.add[0]",
        3,
        17,
        &["relative path `./out`"],
    );
    assert_text_err(
        "version: 1\nworkspace: ws\n",
        "workspace",
        2,
        12,
        &["relative path `ws`"],
    );
    assert_text_err(
        "version: 1\naudit:\n  log: audit.jsonl\n",
        "audit.log",
        3,
        8,
        &["relative path `audit.jsonl`"],
    );
    assert_text_err(
        "version: 1\nfilesystem:\n  exec: [\"~/bin\"]\n",
        "filesystem.exec[0]",
        3,
        10,
        &["relative path `~/bin`"],
    );
    assert_text_err(
        "version: 1\nfilesystem:\n  protect: [\"\"]\n",
        "filesystem.protect[0]",
        3,
        13,
        &["empty path"],
    );
}

#[test]
fn optional_paths_keep_their_marker() {
    let p = ok("version: 1\nfilesystem:\n  read: [\"/lib64?\", /usr]\n");
    assert!(p.filesystem.read[0].value.optional);
    assert!(!p.filesystem.read[1].value.optional);
    assert_eq!(p.filesystem.read[0].value.raw, "/lib64");
    assert_eq!(p.filesystem.read[0].value.to_string(), "/lib64?");
}

/// Path existence is checked by the plan (it needs the filesystem): a missing
/// path fails closed, an optional one is skipped.
#[test]
fn missing_path_fails_closed_optional_is_skipped() {
    let d = Dir::new();
    let missing = d.path("no-such-dir");
    let bad = d.write(
        "bad.yaml",
        &format!(
            "version: 1\nfilesystem:\n  read:\n    - {}\n",
            missing.display()
        ),
    );
    match crate::plan::check(bad.to_str().unwrap()) {
        Err(crate::plan::PlanError::Profile(e)) => assert_err(
            &e,
            &name_of(&bad),
            "filesystem.read[0]",
            Some((4, 7)),
            &[&format!(
                "path {} does not exist (write `{}?` to make it optional)",
                missing.display(),
                missing.display()
            )],
        ),
        other => panic!("expected a located profile error, got {other:?}"),
    }
    let good = d.write(
        "good.yaml",
        &format!(
            "version: 1\nfilesystem:\n  read: [\"{}?\", /usr]\n",
            missing.display()
        ),
    );
    crate::plan::check(good.to_str().unwrap()).unwrap();
}

// ------------------------------------------------------ sizes, durations

#[test]
fn bad_sizes() {
    for (v, fragment) in [
        (
            "12X",
            "bad size `12X`: write a positive number with an optional K, M, G or T suffix",
        ),
        ("-1G", "bad size `-1G`"),
        ("0", "size `0` is zero"),
        ("lots", "bad size `lots`"),
        ("99999999999T", "size `99999999999T` is too large"),
    ] {
        assert_text_err(
            &format!("version: 1\nlimits:\n  memory: {v}\n"),
            "limits.memory",
            3,
            11,
            &[fragment],
        );
    }
    assert_text_err(
        "version: 1\nlimits: {file_size: 1.5Q}\n",
        "limits.file_size",
        2,
        21,
        &["bad size `1.5Q`"],
    );
    assert_text_err(
        "version: 1\nfilesystem:\n  tmp: {size: 1Q}\n",
        "filesystem.tmp.size",
        3,
        15,
        &["bad size `1Q`"],
    );
}

#[test]
fn bad_durations() {
    for (v, fragment) in [
        (
            "10",
            "bad duration `10`: write a number with ms, s, m or h (e.g. 10s, 1h)",
        ),
        ("10d", "bad duration `10d`"),
        ("-1s", "bad duration `-1s`"),
        ("1 hour", "bad duration `1 hour`"),
        ("9999h", "duration `9999h` is longer than a year"),
    ] {
        assert_text_err(
            &format!("version: 1\nlimits:\n  wall_time: {v}\n"),
            "limits.wall_time",
            3,
            14,
            &[fragment],
        );
    }
    assert_text_err(
        "version: 1\nlimits: {grace: soon}\n",
        "limits.grace",
        2,
        17,
        &["bad duration `soon`"],
    );
}

// ---------------------------------------------- syscalls and capabilities

#[test]
fn unknown_syscall_suggests() {
    assert_text_err(
        "version: 1\nsyscalls:\n  allow: [ptrce]\n",
        "syscalls.allow[0]",
        3,
        11,
        &["unknown syscall `ptrce` (did you mean `ptrace`?)"],
    );
    assert_text_err(
        "version: 1\nsyscalls:\n  deny: [read, opnat]\n",
        "syscalls.deny[1]",
        3,
        16,
        &["unknown syscall `opnat` (did you mean `openat`?)"],
    );
    let e = err("version: 1\nsyscalls:\n  deny: {add: [not_a_syscall_at_all]}\n");
    assert_err(
        &e,
        "t.yaml",
        "syscalls.deny.add[0]",
        Some((3, 16)),
        &["unknown syscall `not_a_syscall_at_all`"],
    );
    assert!(!e.message.contains("did you mean"), "{e}");
}

/// `syscalls.allow` of a call the baseline always denies is refused by the
/// plan (the profile layer only knows names), with the reason and where to
/// read more; the four that debuggers and profilers need are allowed, with
/// a warning each.
#[test]
fn allowing_an_always_denied_syscall_is_an_error() {
    let d = Dir::new();
    let p = d.write("p.yaml", "version: 1\nsyscalls:\n  allow: [read, bpf]\n");
    match crate::plan::check(p.to_str().unwrap()) {
        Err(crate::plan::PlanError::Profile(e)) => {
            assert_err(
                &e,
                &name_of(&p),
                "syscalls.allow[1]",
                Some((3, 17)),
                &[
                    "`bpf` is always denied: it loads programs into the kernel",
                    "only perf_event_open, process_vm_readv, process_vm_writev, ptrace can be allowed",
                    "docs/PROFILE.md",
                ],
            );
            assert!(!e.message.contains("DESIGN"), "{e}");
        }
        other => panic!("expected a located profile error, got {other:?}"),
    }
    for name in crate::syscalls::BASELINE_DENY {
        let p = d.write(
            "r.yaml",
            &format!("version: 1\nsyscalls:\n  allow: [{name}]\n"),
        );
        let got = crate::plan::check(p.to_str().unwrap());
        if crate::syscalls::ALLOWABLE_DENY.contains(name) {
            let w = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(w.len(), 1, "{name}: {w:?}");
            assert_eq!(w[0].key, "syscalls.allow[0]");
            assert!(
                w[0].message
                    .starts_with(&format!("`{name}`: the agent may")),
                "{w:?}"
            );
        } else {
            let e = got.expect_err(name).to_string();
            assert!(e.contains(&format!("`{name}` is always denied: ")), "{e}");
        }
    }
    let p = d.write(
        "q.yaml",
        "version: 1\nsyscalls:\n  allow: {add: [clone3]}\n",
    );
    match crate::plan::check(p.to_str().unwrap()) {
        Err(crate::plan::PlanError::Profile(e)) => assert_err(
            &e,
            &name_of(&p),
            "syscalls.allow.add[0]",
            Some((3, 17)),
            &["`clone3` always fails with ENOSYS"],
        ),
        other => panic!("expected a located profile error, got {other:?}"),
    }
}

#[test]
fn unknown_capability() {
    assert_text_err(
        "version: 1\ncapabilities: [CAP_NET_BIND_SERVISE]\n",
        "capabilities[0]",
        2,
        16,
        &["unknown capability `CAP_NET_BIND_SERVISE` (did you mean `CAP_NET_BIND_SERVICE`?)"],
    );
    let e = err("version: 1\ncapabilities:\n  - CAP_CHOWN\n  - CAP_WHATEVER_YOU_WANT\n");
    assert_err(
        &e,
        "t.yaml",
        "capabilities[1]",
        Some((4, 5)),
        &["unknown capability `CAP_WHATEVER_YOU_WANT`"],
    );
    // Lower case and a missing prefix are accepted spellings.
    let p = ok("version: 1\ncapabilities: [net_raw, cap_chown]\n");
    assert_eq!(p.capabilities[0].value.0, caps::Capability::CAP_NET_RAW);
    assert_eq!(p.capabilities[1].value.0, caps::Capability::CAP_CHOWN);
}

// ------------------------------------------------------------------ ports

#[test]
fn ports_out_of_range() {
    for v in ["0", "65536", "-1", "http", "1.5", "\"\""] {
        let text = format!("version: 1\nnetwork:\n  connect_tcp: [{v}]\n");
        let e = err(&text);
        assert_err(
            &e,
            "t.yaml",
            "network.connect_tcp[0]",
            Some((3, 17)),
            &["out of range: ports are 1 to 65535"],
        );
    }
    assert_text_err(
        "version: 1\nnetwork:\n  bind_tcp: {add: [8080, 70000]}\n",
        "network.bind_tcp.add[1]",
        3,
        26,
        &["port `70000` is out of range"],
    );
    let p = ok("version: 1\nnetwork:\n  mode: host\n  connect_tcp: [1, 65535, \"443\"]\n");
    assert_eq!(
        p.network.connect_tcp,
        [
            PortRule::Port(1),
            PortRule::Port(65535),
            PortRule::Port(443)
        ]
    );
}

// ------------------------------------------------------------------- user

#[test]
fn numeric_root_user_is_refused() {
    for v in ["0", "0:0", "00", "\"0\""] {
        assert_text_err(
            &format!("version: 1\nuser: {v}\n"),
            "user",
            2,
            7,
            &["would run the agent as root: write `user: root` if that is really meant"],
        );
    }
    assert_eq!(ok("version: 1\nuser: root\n").user.value, UserSpec::Root);
    assert_eq!(
        ok("version: 1\nuser: 1000:100\n").user.value,
        UserSpec::Id {
            uid: 1000,
            gid: Some(100)
        }
    );
    assert_eq!(
        ok("version: 1\nuser: 1000\n").user.value,
        UserSpec::Id {
            uid: 1000,
            gid: None
        }
    );
    assert_text_err(
        "version: 1\nuser: 1000:x\n",
        "user",
        2,
        7,
        &["`1000:x` is not a user"],
    );
    assert_text_err(
        "version: 1\nuser: \"a b\"\n",
        "user",
        2,
        7,
        &["`a b` is not a user"],
    );
}

// ---------------------------------------------------------------- version

#[test]
fn version_must_be_1() {
    assert_text_err(
        "version: 2\n",
        "version",
        1,
        10,
        &["unsupported profile version 2: this confine reads version 1"],
    );
    assert_text_err(
        "name: x\nversion: 0\n",
        "version",
        2,
        10,
        &["unsupported profile version 0"],
    );
    assert_text_err(
        "version: -1\n",
        "version",
        1,
        10,
        &["invalid type: integer `-1`, expected `1`"],
    );
    assert_text_err(
        "version: one\n",
        "version",
        1,
        10,
        &["invalid type: string \"one\", expected `1`"],
    );
}

#[test]
fn missing_version() {
    assert_text_err(
        "name: x\nfilesystem: {read: [/usr]}\n",
        "version",
        1,
        1,
        &["missing `version: 1`"],
    );
}

#[test]
fn empty_file_lacks_a_version() {
    for text in ["", "\n", "# nothing but a comment\n", "---\n"] {
        assert_text_err(text, "version", 1, 1, &["missing `version: 1`"]);
    }
}

#[test]
fn yaml_syntax_errors_are_located() {
    let e = err("version: 1\nfilesystem: {read: [/usr}\n");
    assert_err(
        &e,
        "t.yaml",
        "filesystem.read",
        Some((2, 25)),
        &["did not find expected ',' or ']'"],
    );
    let e = err("version: 1\nfilesystem:\n\tread: [/usr]\n");
    assert_err(
        &e,
        "t.yaml",
        "filesystem",
        Some((3, 1)),
        &["found character that cannot start any token"],
    );
    let e = err("version: 1\nname: \"abc\n");
    assert_err(
        &e,
        "t.yaml",
        "name",
        Some((3, 1)),
        &["found unexpected end of stream"],
    );
}

#[test]
fn document_must_be_a_map() {
    let e = err("- version: 1\n- name: x\n");
    assert_err(
        &e,
        "t.yaml",
        "",
        Some((1, 1)),
        &["invalid type: sequence, expected a map (key: value)"],
    );
    assert!(e.to_string().starts_with("profile (t.yaml:1:1): "), "{e}");
    let e = err("42\n");
    assert_err(
        &e,
        "t.yaml",
        "",
        Some((1, 1)),
        &["invalid type: integer `42`, expected a map (key: value)"],
    );
    let e = err("just a string\n");
    assert_err(
        &e,
        "t.yaml",
        "",
        Some((1, 1)),
        &["expected a map (key: value)"],
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let e = err("version: 1\nuser: root\nuser: inherit\n");
    assert!(e.message.contains("duplicate field `user`"), "{e}");
    assert!(e.pos.is_some(), "{e}");
}

// ---------------------------------------------------------------- extends

#[test]
fn extends_cycle_is_located_at_the_extends_key() {
    let d = Dir::new();
    let a = d.write("a.yaml", "version: 1\nname: a\nextends: b.yaml\n");
    let b = d.write("b.yaml", "version: 1\n\nextends: ./a.yaml\n");
    let e = load_path(&a).unwrap_err();
    assert_err(
        &e,
        &name_of(&b),
        "extends",
        Some((3, 10)),
        &[&format!(
            "extends cycle: {} -> {} -> {}",
            name_of(&fs::canonicalize(&a).unwrap()),
            name_of(&fs::canonicalize(&b).unwrap()),
            name_of(&fs::canonicalize(&a).unwrap())
        )],
    );
    // A profile that extends itself.
    let s = d.write("self.yaml", "version: 1\nextends: self.yaml\n");
    let e = load_path(&s).unwrap_err();
    assert_err(
        &e,
        &name_of(&s),
        "extends",
        Some((2, 10)),
        &["extends cycle"],
    );
    // A three-file cycle, entered from outside it.
    d.write("x.yaml", "version: 1\nextends: y.yaml\n");
    let y = d.write("y.yaml", "version: 1\nextends: z.yaml\n");
    d.write("z.yaml", "version: 1\nextends:   x.yaml\n");
    let top = d.write("top.yaml", "version: 1\nextends: y.yaml\n");
    let e = load_path(&top).unwrap_err();
    assert_err(
        &e,
        &name_of(&d.path("x.yaml")),
        "extends",
        Some((2, 10)),
        &["extends cycle", &name_of(&fs::canonicalize(&y).unwrap())],
    );
}

#[test]
fn extends_chain_depth_is_bounded() {
    let d = Dir::new();
    for i in 0..20 {
        d.write(
            &format!("p{i}.yaml"),
            &format!("version: 1\nextends: p{}.yaml\n", i + 1),
        );
    }
    d.write("p20.yaml", "version: 1\n");
    let e = load_path(&d.path("p0.yaml")).unwrap_err();
    assert_err(
        &e,
        &name_of(&d.path("p15.yaml")),
        "extends",
        Some((2, 10)),
        &["extends chain is deeper than 16 profiles"],
    );
    // Sixteen layers are fine.
    load_path(&d.path("p5.yaml")).unwrap();
}

#[test]
fn extends_unknown_builtin_suggests() {
    assert_text_err(
        "version: 1\nextends: defualt\n",
        "extends",
        2,
        10,
        &[
            "no built-in profile `defualt` (did you mean `default`?)",
            "built-ins are minimal, readonly, default, research, python-agent, aider, claude-code, codex, gemini-cli, networked",
        ],
    );
    let d = Dir::new();
    let p = d.write("p.yaml", "version: 1\nname: p\nextends: readonyl\n");
    let e = load_path(&p).unwrap_err();
    assert_err(
        &e,
        &name_of(&p),
        "extends",
        Some((3, 10)),
        &["no built-in profile `readonyl` (did you mean `readonly`?)"],
    );
    let e = err("version: 1\nextends: something-else-entirely\n");
    assert_err(
        &e,
        "t.yaml",
        "extends",
        Some((2, 10)),
        &["no built-in profile `something-else-entirely`;"],
    );
    assert!(!e.message.contains("did you mean"), "{e}");
}

#[test]
fn unknown_profile_on_the_command_line() {
    let e = load("defualt", &[]).unwrap_err();
    assert_err(
        &e,
        "defualt",
        "",
        None,
        &["no built-in profile `defualt` (did you mean `default`?)"],
    );
    let e = load("/no/such/profile.yaml", &[]).unwrap_err();
    assert_err(
        &e,
        "/no/such/profile.yaml",
        "",
        None,
        &["can't read profile /no/such/profile.yaml"],
    );
}

#[test]
fn relative_extends_resolves_from_the_profiles_own_directory() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nname: base\nfilesystem:\n  read: [/usr]\n",
    );
    d.write(
        "lib/mid.yaml",
        "version: 1\nextends: ../base.yaml\nfilesystem:\n  read: {add: [/etc]}\n",
    );
    let child = d.write(
        "team/agents/child.yaml",
        "version: 1\nextends: ../../lib/mid.yaml\nname: child\n",
    );
    // The test's own working directory is the crate, where none of these exist.
    let p = load_path(&child).unwrap();
    assert_eq!(p.name, "child");
    assert_eq!(paths(&p.filesystem.read), ["/usr", "/etc"]);
    assert_eq!(p.sources.len(), 3);
    // Errors name the path as it was reached; the identity is the real file.
    assert_eq!(
        p.sources[0].name,
        name_of(
            &fs::canonicalize(d.path("lib"))
                .unwrap()
                .join("../base.yaml")
        )
    );
    assert_eq!(
        p.sources[0].path,
        Some(fs::canonicalize(d.path("base.yaml")).unwrap())
    );
    // A missing parent is an error at the extends key, naming the resolved path.
    let orphan = d.write("lib/orphan.yaml", "version: 1\nextends: ./nowhere.yaml\n");
    let e = load_path(&orphan).unwrap_err();
    assert_err(
        &e,
        &name_of(&orphan),
        "extends",
        Some((2, 10)),
        &[&format!(
            "can't read profile {}",
            name_of(&d.path("lib/nowhere.yaml"))
        )],
    );
}

#[test]
fn extends_of_a_builtin_from_a_file() {
    let d = Dir::new();
    let p = d.write(
        "p.yaml",
        "version: 1\nextends: default\nnetwork:\n  mode: loopback\n",
    );
    let p = load_path(&p).unwrap();
    // The name comes from the nearest layer that has one.
    assert_eq!(p.name, "default");
    assert_eq!(p.network.mode.value, NetworkMode::Loopback);
    assert_eq!(paths(&p.filesystem.write), ["{workspace}"]);
    assert_eq!(p.sources.len(), 4);
    let unnamed = d.write("unnamed.yaml", "version: 1\nextends: minimal\nname: mine\n");
    assert_eq!(load_path(&unnamed).unwrap().name, "mine");
    let stem = d.write("stem.yaml", "version: 1\n");
    assert_eq!(load_path(&stem).unwrap().name, "stem");
}

#[test]
fn errors_in_a_parent_point_into_the_parent() {
    let d = Dir::new();
    let parent = d.write("parent.yaml", "version: 1\nlimits:\n  memory: 12X\n");
    let child = d.write("child.yaml", "version: 1\nextends: parent.yaml\n");
    let e = load_path(&child).unwrap_err();
    assert_err(
        &e,
        &name_of(&parent),
        "limits.memory",
        Some((3, 11)),
        &["bad size `12X`"],
    );
    // A parent without `version` is as wrong as a child without it.
    let parent = d.write("parent2.yaml", "name: p\n");
    let child = d.write("child2.yaml", "version: 1\nextends: parent2.yaml\n");
    let e = load_path(&child).unwrap_err();
    assert_err(
        &e,
        &name_of(&parent),
        "version",
        Some((1, 1)),
        &["missing `version: 1`"],
    );
}

#[test]
fn from_text_extends_needs_a_builtin() {
    assert_text_err(
        "version: 1\nextends: ./base.yaml\n",
        "extends",
        2,
        10,
        &["extends of a file path needs a profile file; use load()"],
    );
    let p = ok("version: 1\nextends: readonly\nname: r2\n");
    assert_eq!(p.name, "r2");
    assert_eq!(paths(&p.filesystem.read).last().unwrap(), "{workspace}");
}

// ------------------------------------------------------------------ merge

#[test]
fn lists_are_replaced_unless_edited() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nfilesystem:\n  read: [/usr, /etc, /opt]\n  exec: [/usr]\nenv:\n  keep: [PATH, TERM]\ncapabilities: [CAP_CHOWN, CAP_KILL]\nsyscalls:\n  deny: [kcmp]\n",
    );
    d.write(
        "mid.yaml",
        "version: 1\nextends: base.yaml\nfilesystem:\n  read: {add: [/srv, /usr], remove: [/etc]}\n  exec: [/bin]\nenv:\n  keep: {add: [LANG]}\ncapabilities: {remove: [CAP_CHOWN]}\nsyscalls:\n  deny: {add: [io_setup]}\n",
    );
    let leaf = d.write(
        "leaf.yaml",
        "version: 1\nextends: mid.yaml\nfilesystem:\n  read: {remove: [/opt], add: [/var]}\n  exec: {add: [/usr]}\nenv:\n  keep: {remove: [PATH]}\ncapabilities: {add: [CAP_NET_RAW]}\nsyscalls:\n  deny: {remove: [kcmp]}\n",
    );
    let p = load_path(&leaf).unwrap();
    // Removed items go, added items come once (no duplicates), order kept.
    assert_eq!(paths(&p.filesystem.read), ["/usr", "/srv", "/var"]);
    assert_eq!(paths(&p.filesystem.exec), ["/bin", "/usr"]);
    assert_eq!(keys(&p.env.keep), ["TERM", "LANG"]);
    let caps: Vec<_> = p.capabilities.iter().map(|c| c.value.0).collect();
    assert_eq!(
        caps,
        [caps::Capability::CAP_KILL, caps::Capability::CAP_NET_RAW]
    );
    let deny: Vec<_> = p.syscalls.deny.iter().map(|s| s.value.0.as_str()).collect();
    assert_eq!(deny, ["io_setup"]);
    // Each item remembers the layer and key that wrote it.
    let srv = &p.filesystem.read[1];
    let e = srv.error("filesystem.read", "x");
    assert_err(
        &e,
        &name_of(&d.path("mid.yaml")),
        "filesystem.read.add[0]",
        Some((4, 16)),
        &["x"],
    );
    let var = &p.filesystem.read[2];
    let e = var.error("filesystem.read", "x");
    assert_err(
        &e,
        &name_of(&leaf),
        "filesystem.read.add[0]",
        Some((4, 32)),
        &["x"],
    );
    let usr = &p.filesystem.read[0];
    let e = usr.error("filesystem.read", "x");
    assert_err(
        &e,
        &name_of(&d.path("base.yaml")),
        "filesystem.read[0]",
        Some((3, 10)),
        &["x"],
    );
}

#[test]
fn plain_list_in_a_child_replaces_the_parents() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nfilesystem:\n  read: [/usr, /etc]\nnetwork:\n  connect_tcp: [80, 443]\n",
    );
    let c = d.write(
        "c.yaml",
        "version: 1\nextends: base.yaml\nfilesystem:\n  read: [/opt]\nnetwork:\n  connect_tcp: {add: [8443], remove: [80]}\n",
    );
    let p = load_path(&c).unwrap();
    assert_eq!(paths(&p.filesystem.read), ["/opt"]);
    assert_eq!(
        p.network.connect_tcp,
        [PortRule::Port(443), PortRule::Port(8443)]
    );
    let e = d.write(
        "e.yaml",
        "version: 1\nextends: base.yaml\nfilesystem:\n  read: []\n",
    );
    assert!(load_path(&e).unwrap().filesystem.read.is_empty());
}

#[test]
fn tmp_false_in_a_child_overrides_the_parent() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nfilesystem:\n  tmp: {size: 64M, exec: true}\n",
    );
    let off = d.write(
        "off.yaml",
        "version: 1\nextends: base.yaml\nfilesystem:\n  tmp: false\n",
    );
    assert!(load_path(&off).unwrap().filesystem.tmp.is_none());
    // And back on, one level further down, with defaults for what isn't said.
    let on = d.write(
        "on.yaml",
        "version: 1\nextends: off.yaml\nfilesystem:\n  tmp: {size: 8M}\n",
    );
    assert_eq!(
        load_path(&on).unwrap().filesystem.tmp,
        Some(TmpSettings {
            size: Some(Size(8 << 20)),
            exec: None
        })
    );
    // A partial map keeps what the parent said about the rest.
    let part = d.write(
        "part.yaml",
        "version: 1\nextends: base.yaml\nfilesystem:\n  tmp: {exec: false}\n",
    );
    assert_eq!(
        load_path(&part).unwrap().filesystem.tmp,
        Some(TmpSettings {
            size: Some(Size(64 << 20)),
            exec: Some(false)
        })
    );
    let t = d.write(
        "true.yaml",
        "version: 1\nextends: off.yaml\nfilesystem:\n  tmp: true\n",
    );
    assert_eq!(
        load_path(&t).unwrap().filesystem.tmp,
        Some(TmpSettings::default())
    );
    // The built-in `minimal` says `tmp: false`.
    let p = ok("version: 1\nextends: readonly\nfilesystem:\n  tmp: false\n");
    assert!(p.filesystem.tmp.is_none());
}

#[test]
fn env_set_merges_by_key() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nenv:\n  set: {HOME: /home/agent, LANG: C, EDITOR: vi}\n",
    );
    let c = d.write(
        "c.yaml",
        "version: 1\nextends: base.yaml\nenv:\n  set:\n    LANG: C.UTF-8\n    PAGER: cat\n",
    );
    let p = load_path(&c).unwrap();
    let set: Vec<(&str, &str)> = p
        .env
        .set
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        set,
        [
            ("EDITOR", "vi"),
            ("HOME", "/home/agent"),
            ("LANG", "C.UTF-8"),
            ("PAGER", "cat")
        ]
    );
    assert_text_err(
        "version: 1\nenv:\n  set: {\"A=B\": x}\n",
        "env.set.A=B",
        3,
        9,
        &["bad environment variable name `A=B`"],
    );
}

#[test]
fn scalars_override_and_limits_merge_field_by_field() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nname: base\ndescription: the base\nuser: inherit\nlimits: {memory: 1G, pids: 10}\nnetwork: {mode: loopback}\ncompat: best-effort\nsyscalls: {on_violation: kill}\naudit: {log: /var/log/a.jsonl}\n",
    );
    let c = d.write("c.yaml", "version: 1\nextends: base.yaml\nname: child\nlimits: {pids: 20, wall_time: 5m}\nuser: 1000\n");
    let p = load_path(&c).unwrap();
    assert_eq!(p.name, "child");
    assert_eq!(p.description, "the base");
    assert_eq!(
        p.user.value,
        UserSpec::Id {
            uid: 1000,
            gid: None
        }
    );
    assert_eq!(p.limits.memory, Some(Size(1 << 30)));
    assert_eq!(p.limits.pids, Some(Count(20)));
    assert_eq!(p.limits.wall_time, Some(Duration(300_000)));
    assert_eq!(p.network.mode.value, NetworkMode::Loopback);
    assert_eq!(p.compat, Compat::BestEffort);
    assert_eq!(p.syscalls.on_violation, OnViolation::Kill);
    assert_eq!(p.audit_log.unwrap().value.raw, "/var/log/a.jsonl");
}

#[test]
fn sha256_covers_every_layer() {
    let d = Dir::new();
    d.write("base.yaml", "version: 1\nlimits: {pids: 10}\n");
    let c = d.write("c.yaml", "version: 1\nextends: base.yaml\n");
    let before = load_path(&c).unwrap().sha256();
    assert_eq!(before.len(), 64);
    assert_eq!(load_path(&c).unwrap().sha256(), before);
    d.write("base.yaml", "version: 1\nlimits: {pids: 11}\n");
    assert_ne!(load_path(&c).unwrap().sha256(), before);
    assert_ne!(
        load("default", &[]).unwrap().sha256(),
        load("default", &["limits.pids=5".into()]).unwrap().sha256()
    );
}

// ------------------------------------------------------------------ --set

#[test]
fn set_overrides() {
    let p = load("default", &["limits.memory=1G".into()]).unwrap();
    assert_eq!(p.limits.memory, Some(Size(1 << 30)));
    assert_eq!(p.name, "default");
    assert_eq!(p.sources.last().unwrap().name, "--set #1");
    let p = load(
        "networked",
        &[
            "network.connect_tcp=[443]".into(),
            "filesystem.read={add: [/opt]}".into(),
            "limits.wall_time=30s".into(),
            "env.set.FOO=bar baz".into(),
            "filesystem.tmp=false".into(),
            "user=inherit".into(),
        ],
    )
    .unwrap();
    assert_eq!(p.network.connect_tcp, [PortRule::Port(443)]);
    assert_eq!(paths(&p.filesystem.read).last().unwrap(), "/opt");
    assert_eq!(p.limits.wall_time, Some(Duration(30_000)));
    assert_eq!(p.env.set.get("FOO").map(String::as_str), Some("bar baz"));
    assert!(p.filesystem.tmp.is_none());
    assert_eq!(p.user.value, UserSpec::Inherit);
    // Later --set wins over earlier.
    let p = load("minimal", &["limits.pids=1".into(), "limits.pids=2".into()]).unwrap();
    assert_eq!(p.limits.pids, Some(Count(2)));
    // An empty value is an empty string.
    let p = load("minimal", &["env.set.EMPTY=".into()]).unwrap();
    assert_eq!(p.env.set.get("EMPTY").map(String::as_str), Some(""));
}

#[test]
fn set_values_from_a_file_profile() {
    let d = Dir::new();
    let f = d.write("f.yaml", "version: 1\nlimits: {memory: 4G}\n");
    let p = load(f.to_str().unwrap(), &["limits.memory=512M".into()]).unwrap();
    assert_eq!(p.limits.memory, Some(Size(512 << 20)));
    assert_eq!(p.name, "f");
}

#[test]
fn bad_set_key() {
    // A typo: named as the --set it came from, with the key; no position,
    // since the user never saw the YAML we made of it.
    let e = load("default", &["limits.memroy=1G".into()]).unwrap_err();
    assert_err(
        &e,
        "--set #1",
        "limits.memroy",
        None,
        &["unknown key `memroy` (did you mean `memory`?)"],
    );
    let e = load(
        "default",
        &["limits.memory=1G".into(), "filesytem.read=[/usr]".into()],
    )
    .unwrap_err();
    assert_err(
        &e,
        "--set #2",
        "filesytem",
        None,
        &["(did you mean `filesystem`?)"],
    );
    let e = load("default", &["limits.memory=12X".into()]).unwrap_err();
    assert_err(&e, "--set #1", "limits.memory", None, &["bad size `12X`"]);
    let e = load("default", &["limits=1".into()]).unwrap_err();
    assert_err(
        &e,
        "--set #1",
        "limits",
        None,
        &["expected a map (key: value)"],
    );
    let e = load("default", &["user=0".into()]).unwrap_err();
    assert_err(
        &e,
        "--set #1",
        "user",
        None,
        &["would run the agent as root"],
    );
    let e = load("default", &["limits.memory".into()]).unwrap_err();
    assert_err(
        &e,
        "--set limits.memory",
        "limits.memory",
        None,
        &["expected KEY=VALUE"],
    );
    for bad in ["a..b=1", ".a=1", "a.=1", "a b=1", "limits.mem-ory=1"] {
        let e = load("default", &[bad.to_string()]).unwrap_err();
        let key = bad.split('=').next().unwrap();
        assert_err(
            &e,
            &format!("--set {bad}"),
            key,
            None,
            &[&format!("bad key `{key}`")],
        );
    }
    let e = load("default", &["=1".into()]).unwrap_err();
    assert_err(&e, "--set =1", "", None, &["bad key ``"]);
    let e = load("default", &["extends=minimal".into()]).unwrap_err();
    assert_err(
        &e,
        "--set #1",
        "extends",
        None,
        &["extends can't be set with --set"],
    );
    // `version` is no key to --set, but setting it to 1 is harmless.
    load("default", &["version=1".into()]).unwrap();
    let e = load("default", &["version=2".into()]).unwrap_err();
    assert_err(
        &e,
        "--set #1",
        "version",
        None,
        &["unsupported profile version 2"],
    );
}

#[test]
fn set_values_are_not_located_in_generated_text() {
    let p = load("minimal", &["filesystem.read=[/usr, /nonexistent]".into()]).unwrap();
    let e = p.filesystem.read[1].error("filesystem.read[1]", "x");
    assert_err(&e, "--set #1", "filesystem.read[1]", None, &["x"]);
}

// ------------------------------------------------- ports and socket families

#[test]
fn any_port() {
    let p = ok("version: 1\nnetwork:\n  mode: host\n  connect_tcp: any\n");
    assert_eq!(p.network.connect_tcp, [PortRule::Any]);
    assert!(p.network.connect_any());
    assert!(!p.network.bind_any());
    let p = ok("version: 1\nnetwork:\n  bind_tcp: [any, 8080]\n");
    assert!(p.network.bind_any());
    assert_eq!(ports(&p.network.bind_tcp), [8080]);
    // `any` is the only word a port list takes.
    assert_text_err(
        "version: 1\nnetwork:\n  connect_tcp: all\n",
        "network.connect_tcp",
        3,
        16,
        &["`all`: write `any`, or a list of ports such as [443]"],
    );
    assert_text_err(
        "version: 1\nnetwork:\n  connect_tcp: [443, anything]\n",
        "network.connect_tcp[1]",
        3,
        22,
        &["port `anything` is out of range: ports are 1 to 65535, or `any`"],
    );
}

#[test]
fn any_port_merges_like_a_list() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nnetwork:\n  mode: host\n  connect_tcp: any\n",
    );
    let c = d.write(
        "c.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  connect_tcp: {add: [443]}\n",
    );
    assert!(load_path(&c).unwrap().network.connect_any());
    let c = d.write(
        "d.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  connect_tcp: {remove: [any]}\n",
    );
    assert!(load_path(&c).unwrap().network.connect_tcp.is_empty());
    let c = d.write(
        "e.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  connect_tcp: [443]\n",
    );
    assert_eq!(
        load_path(&c).unwrap().network.connect_tcp,
        [PortRule::Port(443)]
    );
    // "Every port but 22" can't be expressed: an error, not a no-op.
    let c = d.write(
        "f.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  connect_tcp: {remove: [22]}\n",
    );
    let e = load_path(&c).unwrap_err();
    assert_err(
        &e,
        &name_of(&c),
        "network.connect_tcp.remove[0]",
        Some((4, 26)),
        &["can't remove port 22 from `any`"],
    );
}

#[test]
fn socket_families() {
    let names = |p: &Profile| -> Vec<&'static str> {
        p.network
            .socket_families
            .iter()
            .map(|f| f.value.name())
            .collect()
    };
    let p = ok("version: 1\n");
    assert_eq!(names(&p), ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]);
    let p = ok("version: 1\nnetwork:\n  socket_families: {add: [AF_PACKET, vsock], remove: [AF_NETLINK]}\n");
    assert_eq!(
        names(&p),
        ["AF_UNIX", "AF_INET", "AF_INET6", "AF_PACKET", "AF_VSOCK"]
    );
    let p = ok("version: 1\nnetwork:\n  socket_families: [AF_UNIX]\n");
    assert_eq!(names(&p), ["AF_UNIX"]);
    assert_text_err(
        "version: 1\nnetwork:\n  socket_families: {add: [AF_PAKCET]}\n",
        "network.socket_families.add[0]",
        3,
        27,
        &["unknown socket family `AF_PAKCET` (did you mean `AF_PACKET`?)"],
    );
    assert_text_err(
        "version: 1\nnetwork:\n  socket_families: [AF_UNSPEC]\n",
        "network.socket_families[0]",
        3,
        21,
        &["unknown socket family `AF_UNSPEC`"],
    );
    // Where an added family was written, for warnings.
    let f = &ok("version: 1\nnetwork:\n  socket_families: {add: [AF_ALG]}\n")
        .network
        .socket_families[4];
    let e = f.error("network.socket_families", "x");
    assert_eq!(e.key, "network.socket_families.add[0]");
    assert_eq!(e.pos, Some(Pos { line: 3, col: 27 }));
}

// ----------------------------------------------------------------- egress

use crate::plan::egress::{HostPattern, OnExhausted};

/// `network:` with `mode: proxy` and `body` (indented two spaces, one key
/// per line): the key of `body`'s first line is on line 4.
fn proxy(body: &str) -> String {
    format!("version: 1\nnetwork:\n  mode: proxy\n{body}")
}

fn allowed(p: &Profile) -> Vec<(HostPattern, Option<u16>)> {
    p.network
        .allow
        .iter()
        .map(|a| (a.value.0.pattern.clone(), a.value.0.port))
        .collect()
}

fn exact(h: &str) -> HostPattern {
    HostPattern::Exact(h.into())
}

#[test]
fn proxy_mode_parses_the_design_example() {
    let p = ok(&proxy(
        "  allow: [api.anthropic.com, \"*.pythonhosted.org\", \"github.com:22\"]\n  deny: [\"Evil.PythonHosted.org.\", \"*.pythonhosted.org:80\"]\n  hosts: {Upstream.Test: 10.0.0.5, v6.test: \"fd00::5\"}\n  budget: {connections: 2000, per_minute: 300, bytes_out: 200M, bytes_in: 10G, on_exhausted: refuse}\n",
    ));
    let n = &p.network;
    assert_eq!(n.mode.value, NetworkMode::Proxy);
    assert_eq!(
        allowed(&p),
        [
            (exact("api.anthropic.com"), Some(443)),
            (HostPattern::Beneath("pythonhosted.org".into()), Some(443)),
            (exact("github.com"), Some(22)),
        ]
    );
    assert_eq!(n.allow[2].value.0.text, "github.com:22");
    assert_eq!(n.deny[0].value.0.pattern, exact("evil.pythonhosted.org"));
    assert_eq!(n.deny[0].value.0.port, None, "no port in deny: every port");
    assert_eq!(n.deny[1].value.0.port, Some(80));
    assert_eq!(n.hosts[0].value.0, "upstream.test");
    assert_eq!(
        n.hosts[0].value.1,
        "10.0.0.5".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        n.hosts[1].value.1,
        "fd00::5".parse::<std::net::IpAddr>().unwrap()
    );
    let b = &n.budget.as_ref().unwrap().value;
    assert_eq!(b.connections, Some(Count(2000)));
    assert_eq!(b.per_minute, Some(Count(300)));
    assert_eq!(b.bytes_out, Some(Size(200 << 20)));
    assert_eq!(b.bytes_in, Some(Size(10 << 30)));
    assert_eq!(b.on_exhausted, Some(OnExhausted::Refuse));
    // Each value knows where it was written.
    let e = n.hosts[0].error("network.hosts", "x");
    assert_eq!(e.key, "network.hosts.Upstream.Test");
    assert_eq!(e.pos, Some(Pos { line: 6, col: 26 }));
    // Proxy mode with nothing allowed is valid (nothing is reachable).
    let p = ok(&proxy(""));
    assert!(p.network.allow.is_empty() && p.network.budget.is_none());
}

#[test]
fn bad_host_patterns_are_located_and_say_why() {
    // (entry as written in `allow: [...]` at line 4 column 11, fragment)
    for (entry, why) in [
        ("\"https://api.example.com\"", "without a scheme"),
        ("api.example.com/v1", "without a path"),
        ("\"me@example.com\"", "without a user name"),
        ("\"a b.example.com\"", "no spaces"),
        ("bücher.example", "punycode"),
        (
            "\"example.com:0\"",
            "port `0` is out of range: ports are 1 to 65535",
        ),
        ("\"example.com:65536\"", "port `65536` is out of range"),
        ("\"example.com:https\"", "isn't a number"),
        ("\"::1\"", "in brackets"),
        ("\"[::1\"", "without `]`"),
        ("\"*\"", "the only wildcard is a leading `*.`"),
        ("\"api.*.example.com\"", "the only wildcard"),
        ("\"*.*.example.com\"", "only one leading"),
        ("\"*.com\"", "every name under a top-level domain"),
        ("a..example.com", "empty label"),
        ("-a.example.com", "starts or ends with `-`"),
        ("my_host.example.com", "no `_`"),
        ("127.1", "four decimal numbers"),
        ("0x7f000001", "four decimal numbers"),
        ("443", "four decimal numbers"),
        ("\"\"", "empty host pattern"),
    ] {
        let text = proxy(&format!("  allow: [{entry}]\n"));
        assert_text_err(&text, "network.allow[0]", 4, 11, &[why]);
    }
    let long = format!("{}.example", "a".repeat(64));
    assert_text_err(
        &proxy(&format!("  deny: [x.example, {long}]\n")),
        "network.deny[1]",
        4,
        21,
        &["longer than 63 characters, so it could never match"],
    );
    assert_text_err(
        &proxy("  allow: {add: [\"example.com:99999\"]}\n"),
        "network.allow.add[0]",
        4,
        17,
        &["port `99999` is out of range"],
    );
    assert_text_err(
        &proxy("  allow: x.example\n"),
        "network.allow",
        4,
        10,
        &["expected a list, or {add: [...]} / {remove: [...]}"],
    );
    // `*.com` is refused in allow, but denying it narrows and is fine.
    let p = ok(&proxy(
        "  allow: [x.example]\n  deny: [\"*.com\", \"[::1]\"]\n",
    ));
    assert_eq!(p.network.deny.len(), 2);
}

#[test]
fn ip_literals_in_allow_must_be_pinned() {
    assert_text_err(
        &proxy("  allow: [a.example, \"10.0.0.5:80\"]\n"),
        "network.allow[1]",
        4,
        22,
        &[
            "`10.0.0.5:80` is an IP address that hosts: doesn't pin",
            "hosts: {NAME: 10.0.0.5}",
        ],
    );
    assert_text_err(
        &proxy("  allow: [\"[fd00::5]:443\"]\n  hosts: {up.test: 10.0.0.5}\n"),
        "network.allow[0]",
        4,
        11,
        &["`[fd00::5]:443` is an IP address that hosts: doesn't pin"],
    );
    let p = ok(&proxy(
        "  allow: [\"10.0.0.5:80\", \"[FD00::5]\"]\n  hosts: {up.test: 10.0.0.5, v6.test: \"[fd00::5]\"}\n",
    ));
    assert_eq!(
        allowed(&p),
        [(exact("10.0.0.5"), Some(80)), (exact("fd00::5"), Some(443))]
    );
    // deny takes any address: it only narrows.
    ok(&proxy("  allow: [a.example]\n  deny: [169.254.169.254]\n"));
}

#[test]
fn egress_keys_need_proxy_mode_and_say_which_mode_is_set() {
    for (mode, body, key, (line, col)) in [
        ("", "  allow: [a.example]\n", "network.allow[0]", (3, 11)),
        (
            "  mode: loopback\n",
            "  deny: [a.example]\n",
            "network.deny[0]",
            (4, 10),
        ),
        (
            "  mode: host\n",
            "  hosts: {a.example: 10.0.0.1}\n",
            "network.hosts.a.example",
            (4, 22),
        ),
        (
            "  mode: none\n",
            "  budget: {connections: 5}\n",
            "network.budget",
            (4, 11),
        ),
        (
            "  mode: loopback\n",
            "  ask: [a.example]\n",
            "network.ask[0]",
            (4, 9),
        ),
    ] {
        let text = format!("version: 1\nnetwork:\n{mode}{body}");
        let e = err(&text);
        let name = key.split(['[', '.']).take(2).collect::<Vec<_>>().join(".");
        let which = if mode.is_empty() {
            "network.mode is none (the default)".to_string()
        } else {
            format!(
                "network.mode is {} (t.yaml:3:9)",
                mode.trim().trim_start_matches("mode: ")
            )
        };
        assert_err(
            &e,
            "t.yaml",
            key,
            Some((line, col)),
            &[
                &format!("`{name}` applies only with network.mode proxy"),
                &which,
            ],
        );
    }
    // An empty list or map sets nothing.
    ok("version: 1\nnetwork:\n  mode: host\n  allow: []\n  deny: []\n  hosts: {}\n");
    // `ask` (DESIGN.md §12) takes `allow`'s entries, in proxy mode; an
    // address in it must be pinned, as in `allow`.
    let p = ok(&proxy("  ask: [a.example, \"*.b.example:80\"]\n"));
    assert_eq!(p.network.ask.len(), 2);
    assert_text_err(
        &proxy("  ask: [\"10.0.0.5:80\"]\n"),
        "network.ask[0]",
        4,
        9,
        &["is an IP address that hosts: doesn't pin"],
    );
}

#[test]
fn bad_pins_are_located_at_their_key() {
    assert_text_err(
        &proxy("  hosts:\n    a.test: 10.0.0.1\n    A.Test.: 10.0.0.2\n"),
        "network.hosts.A.Test.",
        6,
        5,
        &["`A.Test.` is pinned twice"],
    );
    assert_text_err(
        &proxy("  hosts:\n    10.1.1.1: 10.0.0.2\n"),
        "network.hosts.10.1.1.1",
        5,
        5,
        &["is an address: hosts: maps a NAME to an ADDRESS"],
    );
    assert_text_err(
        &proxy("  hosts:\n    \"*.a.test\": 10.0.0.2\n"),
        "network.hosts.*.a.test",
        5,
        5,
        &["a pin names one host, not a pattern"],
    );
    assert_text_err(
        &proxy("  hosts:\n    a.test: example.com\n"),
        "network.hosts.a.test",
        5,
        13,
        &["`example.com` isn't an IP address"],
    );
    assert_text_err(
        &proxy("  hosts:\n    a.test: 0.0.0.0\n"),
        "network.hosts.a.test",
        5,
        13,
        &["can't be connected to"],
    );
    assert_text_err(
        &proxy("  hosts: [a.test]\n"),
        "network.hosts",
        4,
        10,
        &["expected a map of NAME: ADDRESS"],
    );
}

#[test]
fn bad_budgets_are_located() {
    for (body, key, col, why) in [
        (
            "{connections: 0}",
            "network.budget.connections",
            25,
            "from 1 up",
        ),
        (
            "{per_minute: -3}",
            "network.budget.per_minute",
            24,
            "from 1 up",
        ),
        ("{bytes_out: 0}", "network.budget.bytes_out", 23, "zero"),
        (
            "{bytes_in: 12X}",
            "network.budget.bytes_in",
            22,
            "bad size `12X`",
        ),
        (
            "{on_exhausted: kill}",
            "network.budget.on_exhausted",
            26,
            "unknown value `kill`; allowed: refuse, stop",
        ),
        (
            "{conections: 1}",
            "network.budget.conections",
            12,
            "did you mean `connections`",
        ),
        ("[1]", "network.budget", 11, "expected a map"),
    ] {
        assert_text_err(&proxy(&format!("  budget: {body}\n")), key, 4, col, &[why]);
    }
}

#[test]
fn egress_keys_merge_through_extends() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nnetwork:\n  mode: proxy\n  allow: [a.example, b.example, \"c.example:22\"]\n  deny: [x.a.example]\n  hosts: {a.example: 10.0.0.1, b.example: 10.0.0.2}\n  budget: {connections: 10, bytes_out: 1M}\n",
    );
    // Edits: add and remove (equal however written), a pin replaced and
    // one added, the budget field by field.
    let c = d.write(
        "child.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  allow: {add: [d.example], remove: [\"B.Example.:443\", \"c.example\"]}\n  deny: {add: [y.example]}\n  hosts: {A.example: 10.0.0.9, d.example: 10.0.0.4}\n  budget: {per_minute: 5, on_exhausted: stop}\n",
    );
    let p = load_path(&c).unwrap();
    let n = &p.network;
    assert_eq!(n.mode.value, NetworkMode::Proxy);
    assert_eq!(
        allowed(&p),
        [
            (exact("a.example"), Some(443)),
            (exact("c.example"), Some(22)),
            (exact("d.example"), Some(443)),
        ],
        "`c.example` is c.example:443, not the :22 entry"
    );
    assert_eq!(n.deny.len(), 2);
    let pins: Vec<(String, String)> = n
        .hosts
        .iter()
        .map(|h| (h.value.0.clone(), h.value.1.to_string()))
        .collect();
    assert_eq!(
        pins,
        [
            ("a.example".into(), "10.0.0.9".into()),
            ("b.example".into(), "10.0.0.2".into()),
            ("d.example".into(), "10.0.0.4".into()),
        ]
    );
    assert_eq!(n.hosts[0].origin.as_ref().unwrap().source.name, name_of(&c));
    let b = &n.budget.as_ref().unwrap().value;
    assert_eq!(b.connections, Some(Count(10)));
    assert_eq!(b.per_minute, Some(Count(5)));
    assert_eq!(b.bytes_out, Some(Size(1 << 20)));
    assert_eq!(b.on_exhausted, Some(OnExhausted::Stop));

    // A plain list replaces; a child that says `mode: proxy` again keeps
    // what it doesn't rewrite.
    let c = d.write(
        "replace.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  mode: proxy\n  allow: [z.example]\n",
    );
    let p = load_path(&c).unwrap();
    assert_eq!(allowed(&p), [(exact("z.example"), Some(443))]);
    assert_eq!(p.network.deny.len(), 1);
    assert_eq!(p.network.hosts.len(), 2);

    // Choosing another mode leaves the parent's policy behind ...
    let c = d.write(
        "loopback.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  mode: loopback\n",
    );
    let p = load_path(&c).unwrap();
    assert_eq!(p.network.mode.value, NetworkMode::Loopback);
    assert!(p.network.allow.is_empty() && p.network.deny.is_empty());
    assert!(p.network.hosts.is_empty() && p.network.budget.is_none());
    let p = load(c.to_str().unwrap(), &["network.mode=host".into()]).unwrap();
    assert!(p.network.allow.is_empty());
    let p = load(
        d.path("base.yaml").to_str().unwrap(),
        &["network.mode=none".into()],
    )
    .unwrap();
    assert!(p.network.allow.is_empty() && p.network.budget.is_none());
    // ... but what the same layer writes is still checked against it.
    let c = d.write(
        "both.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  mode: host\n  allow: {add: [e.example]}\n",
    );
    let e = load_path(&c).unwrap_err();
    assert_err(
        &e,
        &name_of(&c),
        "network.allow.add[0]",
        Some((5, 17)),
        &["applies only with network.mode proxy, but network.mode is host"],
    );
    // A parent without the mode is fine once a child sets it.
    d.write("keys.yaml", "version: 1\nnetwork:\n  allow: [a.example]\n");
    let c = d.write(
        "sets.yaml",
        "version: 1\nextends: keys.yaml\nnetwork:\n  mode: proxy\n",
    );
    assert_eq!(allowed(&load_path(&c).unwrap()).len(), 1);
    // An IP literal pinned in the parent may be allowed in the child.
    let c = d.write(
        "ip.yaml",
        "version: 1\nextends: base.yaml\nnetwork:\n  allow: {add: [\"10.0.0.2:8080\"]}\n",
    );
    assert_eq!(allowed(&load_path(&c).unwrap()).len(), 4);
    // --set takes the same forms.
    let p = load(
        d.path("base.yaml").to_str().unwrap(),
        &[
            "network.allow={add: [\"f.example:8443\"]}".into(),
            "network.budget.connections=3".into(),
        ],
    )
    .unwrap();
    assert_eq!(p.network.allow.last().unwrap().value.0.port, Some(8443));
    assert_eq!(p.network.budget.unwrap().value.connections, Some(Count(3)));
    let e = load(
        d.path("base.yaml").to_str().unwrap(),
        &["network.allow=[\"https://x.example\"]".into()],
    )
    .unwrap_err();
    assert_err(
        &e,
        "--set #1",
        "network.allow[0]",
        None,
        &["without a scheme"],
    );
}

#[test]
fn home_values_and_merging() {
    assert_eq!(
        ok("version: 1\nhome: private\n").home.unwrap().value,
        HomeSpec::Private
    );
    assert_eq!(
        ok("version: 1\nhome: workspace\n").home.unwrap().value,
        HomeSpec::Workspace
    );
    match ok("version: 1\nhome: \"{workspace}/.home\"\n")
        .home
        .unwrap()
        .value
    {
        HomeSpec::Path(p) => assert_eq!(p.raw, "{workspace}/.home"),
        other => panic!("{other:?}"),
    }
    assert!(ok("version: 1\n").home.is_none());
    assert_text_err(
        "version: 1\nhome: privat\n",
        "home",
        2,
        7,
        &["bad home `privat`", "`private`"],
    );
    assert_text_err(
        "version: 1\nhome: /srv/h?\n",
        "home",
        2,
        7,
        &["can't be optional"],
    );
    assert_text_err(
        "version: 1\nhome: rel/dir\n",
        "home",
        2,
        7,
        &["absolute path"],
    );
    // A child's home replaces its parent's.
    let d = Dir::new();
    d.write("base.yaml", "version: 1\nhome: private\n");
    let p = load_path(&d.write(
        "child.yaml",
        "version: 1\nextends: base.yaml\nhome: workspace\n",
    ))
    .unwrap();
    assert_eq!(p.home.unwrap().value, HomeSpec::Workspace);
}

#[test]
fn home_files_parse_and_keep_the_scalar_forms() {
    let p = ok("version: 1\nhome:\n  path: private\n  files:\n    .codex/config.toml: |\n      a = 1\n    b: \"\"\n");
    assert_eq!(p.home.as_ref().unwrap().value, HomeSpec::Private);
    assert_eq!(
        p.home.as_ref().unwrap().origin.as_ref().unwrap().key,
        "home.path"
    );
    let names: Vec<&str> = p.home_files.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(names, [".codex/config.toml", "b"]);
    let cfg = p.home_files.values().next().unwrap();
    assert_eq!(cfg.value, "a = 1\n");
    assert_eq!(
        cfg.origin.as_ref().unwrap().key,
        "home.files..codex/config.toml"
    );
    // Each file is located where its text is written.
    let e = cfg.error("home.files..codex/config.toml", "x");
    assert_eq!(e.pos, Some(Pos { line: 6, col: 7 }));
    // The scalar forms are unchanged and write no files.
    let p = ok("version: 1\nhome: private\n");
    assert!(p.home_files.is_empty());
    assert_eq!(p.home.unwrap().origin.unwrap().key, "home");
    // A text that is the largest allowed is fine.
    let big = "x".repeat(home::MAX_HOME_FILE_BYTES);
    let p = ok(&format!(
        "version: 1\nhome: {{path: private, files: {{f: \"{big}\"}}}}\n"
    ));
    assert_eq!(p.home_files.values().next().unwrap().value.len(), 65536);
    // The built-ins that need a client's setting write it.
    let codex = load("codex", &[]).unwrap();
    let cfg = &codex.home_files.iter().next().unwrap();
    assert_eq!(cfg.0 .0, ".codex/config.toml");
    assert!(cfg
        .1
        .value
        .contains("\nopenai_base_url = \"http://127.0.0.1:3128/openai\"\n"));
    assert!(cfg
        .1
        .value
        .contains("\nsandbox_mode = \"danger-full-access\"\n"));
    let gemini = load("gemini-cli", &[]).unwrap();
    let (name, text) = gemini.home_files.iter().next().unwrap();
    assert_eq!(name.0, ".gemini/settings.json");
    let v: serde_json::Value = serde_json::from_str(&text.value).unwrap();
    assert_eq!(v["security"]["auth"]["selectedType"], "gemini-api-key");
}

#[test]
fn home_file_names_and_texts_are_bounded_and_located() {
    for (name, why) in [
        ("../escape", "`..` is not allowed"),
        ("a/../b", "`..` is not allowed"),
        ("./a", "`.` is not allowed"),
        ("a/.", "`.` is not allowed"),
        ("/etc/passwd", "relative to HOME"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        ("\"\"", "it is empty"),
        ("\"a\\0b\"", "NUL"),
    ] {
        let text = format!("version: 1\nhome:\n  path: private\n  files:\n    {name}: x\n");
        let e = err(&text);
        assert!(e.message.contains("bad home file name"), "{name}: {e}");
        assert!(e.message.contains(why), "{name}: {e}");
        assert!(e.key.starts_with("home.files"), "{name}: {e}");
        assert_eq!(e.pos.map(|p| p.line), Some(5), "{name}: {e}");
    }
    let long = "x".repeat(256);
    let e = err(&format!(
        "version: 1\nhome:\n  path: private\n  files:\n    {long}: x\n"
    ));
    assert!(e.message.contains("longer than 255"), "{e}");
    // Too big: one byte over 64 KiB, at the text.
    let big = "x".repeat(home::MAX_HOME_FILE_BYTES + 1);
    let e = err(&format!(
        "version: 1\nhome:\n  path: private\n  files:\n    f: \"{big}\"\n"
    ));
    assert!(e.message.contains("65537 bytes"), "{e}");
    assert!(e.message.contains("at most 65536"), "{e}");
    assert_eq!(e.pos.map(|p| p.line), Some(5), "{e}");
    // Too many in one layer: refused at the 33rd.
    let mut text = "version: 1\nhome:\n  path: private\n  files:\n".to_string();
    for i in 0..=home::MAX_HOME_FILES {
        text.push_str(&format!("    f{i}: x\n"));
    }
    let e = err(&text);
    assert!(e.message.contains("more than 32 home files"), "{e}");
    assert_eq!(e.pos.map(|p| p.line), Some(37), "{e}");
    // A text must be a string; a name is written once; no other keys.
    let e = err("version: 1\nhome:\n  path: private\n  files:\n    f: [1]\n");
    assert!(e.message.contains("a string"), "{e}");
    let e = err("version: 1\nhome:\n  path: private\n  files:\n    f: x\n    f: y\n");
    assert!(
        e.message.contains("twice") || e.message.contains("duplicate"),
        "{e}"
    );
    assert_text_err(
        "version: 1\nhome:\n  paht: private\n",
        "home.paht",
        3,
        3,
        &["unknown key `paht` (did you mean `path`?)"],
    );
    let e = err("version: 1\nhome:\n  path: privat\n");
    assert!(e.message.contains("bad home `privat`"), "{e}");
    assert_eq!(e.pos.map(|p| p.line), Some(3), "{e}");
}

#[test]
fn home_files_need_a_home_of_their_own() {
    assert_text_err(
        "version: 1\nhome:\n  path: workspace\n  files:\n    .x/y: t\n",
        "home.files..x/y",
        5,
        11,
        &["never writes into the project"],
    );
    assert_text_err(
        "version: 1\nhome:\n  files:\n    .x/y: t\n",
        "home.files..x/y",
        4,
        11,
        &["files need a home"],
    );
    // One file's name is another's directory.
    assert_text_err(
        "version: 1\nhome:\n  path: private\n  files:\n    a: t\n    a/b: u\n",
        "home.files.a",
        5,
        8,
        &["`a` is a file, but `a/b` needs it to be a directory"],
    );
    // Control: names that only share a prefix are fine.
    let p = ok("version: 1\nhome:\n  path: private\n  files:\n    a: t\n    a-b/c: u\n    ab: v\n");
    assert_eq!(p.home_files.len(), 3);
}

#[test]
fn home_files_merge_by_name() {
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nhome:\n  path: private\n  files:\n    a: parent-a\n    b: parent-b\n",
    );
    // A child's text for a name replaces its parent's; the others stay;
    // a child's scalar path keeps the parent's files.
    let child = d.write(
        "child.yaml",
        "version: 1\nextends: base.yaml\nhome:\n  files:\n    b: child-b\n    c: child-c\n",
    );
    let p = load_path(&child).unwrap();
    let got: Vec<(&str, &str)> = p
        .home_files
        .iter()
        .map(|(k, v)| (k.0.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(got, [("a", "parent-a"), ("b", "child-b"), ("c", "child-c")]);
    assert_eq!(p.home.as_ref().unwrap().value, HomeSpec::Private);
    let b = &p.home_files.iter().nth(1).unwrap().1;
    assert_eq!(b.origin.as_ref().unwrap().source.name, name_of(&child));
    let moved = d.write(
        "moved.yaml",
        "version: 1\nextends: base.yaml\nhome: /srv/agent\n",
    );
    let p = load_path(&moved).unwrap();
    assert_eq!(p.home_files.len(), 2);
    // A child that makes HOME the workspace leaves its parent's files behind.
    let ws = d.write(
        "ws.yaml",
        "version: 1\nextends: base.yaml\nhome: workspace\n",
    );
    let p = load_path(&ws).unwrap();
    assert!(p.home_files.is_empty());
    assert_eq!(p.home.unwrap().value, HomeSpec::Workspace);
    // ...but one that adds files to a workspace home is refused, at its file.
    let parent_ws = d.write("pws.yaml", "version: 1\nhome: workspace\n");
    let _ = parent_ws;
    let add = d.write(
        "add.yaml",
        "version: 1\nextends: pws.yaml\nhome:\n  files:\n    x: t\n",
    );
    let e = load_path(&add).unwrap_err();
    assert_err(
        &e,
        &name_of(&add),
        "home.files.x",
        Some((5, 8)),
        &["never writes into the project"],
    );
    // Too many once merged: located at the first past the limit.
    let many = |prefix: &str| {
        (0..20)
            .map(|i| format!("    {prefix}{i:02}: x\n"))
            .collect::<String>()
    };
    d.write(
        "p20.yaml",
        &format!(
            "version: 1\nhome:\n  path: private\n  files:\n{}",
            many("p")
        ),
    );
    let c20 = d.write(
        "c20.yaml",
        &format!(
            "version: 1\nextends: p20.yaml\nhome:\n  files:\n{}",
            many("q")
        ),
    );
    let e = load_path(&c20).unwrap_err();
    assert_eq!(e.key, "home.files.q12", "{e}");
    assert!(e.message.contains("40 files once merged"), "{e}");
    assert!(e.message.contains("at most 32"), "{e}");
}

#[test]
fn env_keep_patterns() {
    let p = ok("version: 1\nenv:\n  keep: [PATH, \"ANTHROPIC_*\"]\n");
    assert!(p.env.keeps("ANTHROPIC_MODEL"));
    assert!(p.env.keeps("PATH"));
    assert!(!p.env.keeps("ANTHROPIC"));
    assert!(!p.env.keeps("PATHX"));
    assert_text_err(
        "version: 1\nenv:\n  keep: [\"*\"]\n",
        "env.keep[0]",
        3,
        10,
        &["whole environment"],
    );
    assert_text_err(
        "version: 1\nenv:\n  keep: [\"A*B\"]\n",
        "env.keep[0]",
        3,
        10,
        &["one `*` at the end"],
    );
    // env.set names are names: no pattern there.
    assert!(ok("version: 1\nenv:\n  set: {A: b}\n")
        .env
        .set
        .contains_key("A"));
}

// ------------------------------------------------------ checkpoints (§12)

#[test]
fn checkpoints_and_approval_parse_merge_and_locate_their_errors() {
    use crate::profile::approval::{HookCommand, OnTimeout, Period};
    let d = Dir::new();
    d.write(
        "base.yaml",
        "version: 1\nlimits: {checkpoint_every: 30m}\napproval: {command: /usr/bin/ask, timeout: 10m}\n",
    );
    let c = d.write(
        "c.yaml",
        "version: 1\nextends: base.yaml\napproval:\n  command: [/usr/bin/ask, --fast]\n  default: allow\n",
    );
    let p = load_path(&c).unwrap();
    assert_eq!(p.limits.checkpoint_every, Some(Period(Duration(1_800_000))));
    assert_eq!(
        p.approval.command,
        Some(HookCommand(vec!["/usr/bin/ask".into(), "--fast".into()]))
    );
    assert_eq!(p.approval.timeout, Some(Duration(600_000)));
    assert_eq!(p.approval.default, Some(OnTimeout::Allow));

    assert_text_err(
        "version: 1\nlimits:\n  checkpoint_every: 10ms\n",
        "limits.checkpoint_every",
        3,
        21,
        &["shorter than 1s"],
    );
    assert_text_err(
        "version: 1\napproval:\n  command: ask-operator\n",
        "approval.command",
        3,
        12,
        &["not an absolute path"],
    );
    assert_text_err(
        "version: 1\napproval:\n  command: []\n",
        "approval.command",
        3,
        12,
        &["an empty command"],
    );
    assert_text_err(
        "version: 1\napproval:\n  default: maybe\n",
        "approval.default",
        3,
        12,
        &["allowed: deny, allow"],
    );
    assert_text_err(
        "version: 1\napproval:\n  timeuot: 1m\n",
        "approval.timeuot",
        3,
        3,
        &["did you mean `timeout`?"],
    );
}

#[test]
fn changes_is_direct_unless_a_layer_says_review() {
    let d = Dir::new();
    let base = d.write("base.yaml", "version: 1\nfilesystem:\n  changes: review\n");
    assert_eq!(
        load_path(&base).unwrap().filesystem.changes.value,
        Changes::Review
    );
    // A child that says nothing keeps it; one that says `direct` drops it.
    let keep = d.write("keep.yaml", "version: 1\nextends: base.yaml\n");
    assert_eq!(
        load_path(&keep).unwrap().filesystem.changes.value,
        Changes::Review
    );
    let direct = d.write(
        "direct.yaml",
        "version: 1\nextends: base.yaml\nfilesystem:\n  changes: direct\n",
    );
    assert_eq!(
        load_path(&direct).unwrap().filesystem.changes.value,
        Changes::Direct
    );
    assert_eq!(
        from_text("t.yaml", "version: 1\n")
            .unwrap()
            .filesystem
            .changes
            .value,
        Changes::Direct
    );
}

#[test]
fn a_bad_changes_value_names_the_allowed_ones() {
    let e = err("version: 1\nfilesystem:\n  changes: revew\n");
    assert_err(
        &e,
        "t.yaml",
        "filesystem.changes",
        Some((3, 12)),
        &["revew", "direct", "review"],
    );
}
