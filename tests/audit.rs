//! Audit records (DESIGN.md §7, §2 `audit`, §6 "can't read the audit log"):
//! one `launch` and one `exit` (or `refused`) record per sandbox, valid
//! JSON lines carrying what §7 lists and never an environment value; the
//! log is created 0600 in a 0700 directory, appended to, shared safely by
//! concurrent sandboxes, and out of the agent's reach.
//!
//! Every log lives under the fixture root, never in the workspace and
//! never at a shared path.
mod common;
use common::*;

use serde_json::Value;
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The log's records, each line parsed; panics (with the text) on a line
/// that isn't one JSON object.
#[track_caller]
fn records(log: &Path) -> Vec<Value> {
    let text = fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("reading the audit log {}: {e}", log.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "unterminated last line:\n{text}"
    );
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\nin:\n{text}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

/// The records of one event.
fn events<'a>(rs: &'a [Value], event: &str) -> Vec<&'a Value> {
    rs.iter().filter(|r| r["event"] == event).collect()
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 UTC timestamp (`YYYY-MM-DDTHH:MM:SS[.fff...]Z`) into
/// milliseconds since the epoch; `None` unless it is well formed and a real
/// date.
fn parse_ts(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || !s.ends_with('Z') || !s.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = &s[19..s.len() - 1];
    let millis = if frac.is_empty() {
        0
    } else {
        let digits = frac.strip_prefix('.')?;
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        format!("{digits:0<3}")[..3].parse::<i64>().ok()?
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > mdays[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + millis)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The fields every record has (§7), checked; returns its time in ms.
#[track_caller]
fn common_fields(r: &Value) -> i64 {
    let ts = r["ts"].as_str().unwrap_or_else(|| panic!("no ts: {r}"));
    let ms = parse_ts(ts).unwrap_or_else(|| panic!("ts is not RFC 3339 UTC: {ts:?}"));
    assert!(r["event"].is_string(), "{r}");
    let id = r["sandbox"].as_str().unwrap_or_else(|| panic!("{r}"));
    assert!(!id.is_empty(), "{r}");
    assert!(r["pid"].as_u64().is_some_and(|p| p > 0), "{r}");
    ms
}

fn is_hex64(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 64
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// The kernel's Landlock ABI (0 without Landlock).
fn kernel_landlock_abi() -> u64 {
    landlock_abi().max(0) as u64
}

/// `confine run -p PROFILE -w WS --audit-log LOG -- CMD...`, like the
/// harness's `command` (clean PATH, stdin from /dev/null, cwd in the
/// workspace) and without CONFINE_AUDIT_LOG.
fn logged(f: &Fixture, profile: &str, log: &Path, cmd: &[&str]) -> Command {
    logged_with(f, profile, log, &[], cmd)
}

/// [`logged`] with more `run` options (`--set ...`, `--dry-run`) before `--`.
fn logged_with(f: &Fixture, profile: &str, log: &Path, opts: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(["run", "-p", profile])
        .args(opts)
        .arg("-w")
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(log)
        .arg("--")
        .args(cmd)
        .env("PATH", PATH)
        .env_remove("CONFINE_AUDIT_LOG")
        .stdin(Stdio::null())
        .current_dir(&f.ws);
    c
}

/// Runs `sh -c SCRIPT` under `profile` with `--audit-log LOG`.
fn run_logged(f: &Fixture, profile: &str, log: &Path, script: &str) -> Output {
    logged(f, profile, log, &["/bin/sh", "-c", script])
        .output()
        .unwrap()
}

/// The last record of the log, which must be `event`, and its launch.
#[track_caller]
fn last_pair(log: &Path, event: &str) -> (Value, Value) {
    let rs = records(log);
    let last = rs.last().unwrap_or_else(|| panic!("empty log")).clone();
    assert_eq!(last["event"], event, "{last}");
    let launch = rs
        .iter()
        .find(|r| r["event"] == "launch" && r["sandbox"] == last["sandbox"])
        .unwrap_or_else(|| panic!("no launch record for {last}"))
        .clone();
    (launch, last)
}

#[test]
fn one_run_writes_one_launch_and_one_exit_record() {
    if !can_run("one_run_writes_one_launch_and_one_exit_record") {
        return;
    }
    let f = Fixture::new("audit-records");
    let log = f.root.join("log").join("audit.jsonl");
    let profile = f.profile(
        "keep-secret",
        "version: 1\nextends: default\nenv: {keep: [PATH, SECRET_TOKEN]}\n",
    );
    let script = "printf '%s\\n' \"${#SECRET_TOKEN}\"";
    let before = now_ms();
    let child: Child = logged(
        &f,
        profile.to_str().unwrap(),
        &log,
        &["/bin/sh", "-c", script],
    )
    .env("SECRET_TOKEN", "hunter2")
    .env("OTHER_SECRET", "swordfish")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let confine_pid = child.id();
    let o = child.wait_with_output().unwrap();
    let after = now_ms();
    assert_status(&o, 0);
    // Control: the kept secret did reach the agent (7 characters).
    assert_eq!(stdout(&o), "7\n", "{}", show(&o));

    let text = fs::read_to_string(&log).unwrap();
    assert!(!text.contains("hunter2"), "a kept value leaked:\n{text}");
    assert!(
        !text.contains("swordfish"),
        "a dropped value leaked:\n{text}"
    );
    let rs = records(&log);
    assert_eq!(rs.len(), 2, "{text}");
    let launch = &rs[0];
    let exit = &rs[1];
    assert_eq!(launch["event"], "launch", "{text}");
    assert_eq!(exit["event"], "exit", "{text}");
    let t0 = common_fields(launch);
    let t1 = common_fields(exit);
    assert_eq!(launch["sandbox"], exit["sandbox"], "{text}");
    assert_eq!(launch["pid"], u64::from(confine_pid), "{text}");
    assert_eq!(exit["pid"], u64::from(confine_pid), "{text}");
    // Clock consistency, not timing: both stamps are "now" in UTC (a
    // local-time stamp would be hours off where TZ isn't UTC).
    assert!(t0 <= t1, "{text}");
    assert!(
        t0 >= before - 60_000 && t1 <= after + 60_000,
        "{before}..{after}: {text}"
    );

    // launch
    assert_eq!(launch["profile"]["name"], "default", "{text}");
    assert!(is_hex64(&launch["profile"]["sha256"]), "{text}");
    assert_eq!(
        launch["argv"],
        serde_json::json!(["/bin/sh", "-c", script]),
        "{text}"
    );
    assert_eq!(
        launch["workspace"],
        fs::canonicalize(&f.ws).unwrap().to_str().unwrap(),
        "{text}"
    );
    assert_eq!(launch["uid"], AGENT_UID, "{text}");
    assert_eq!(launch["gid"], AGENT_GID, "{text}");
    let keys: Vec<&str> = launch["env_keys"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"))
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(keys.contains(&"SECRET_TOKEN"), "{keys:?}");
    assert!(keys.contains(&"PATH"), "{keys:?}");
    assert!(!keys.contains(&"OTHER_SECRET"), "not kept: {keys:?}");
    assert!(keys.iter().all(|k| !k.contains('=')), "keys only: {keys:?}");
    let plan = &launch["plan"];
    let abi = plan["landlock_abi"]
        .as_u64()
        .unwrap_or_else(|| panic!("{text}"));
    assert!(abi >= 1 && abi <= kernel_landlock_abi(), "{text}");
    for k in ["allowed", "denied", "argument_rules"] {
        assert!(
            plan["seccomp"][k].as_u64().is_some_and(|n| n > 0),
            "plan.seccomp.{k}: {text}"
        );
    }
    let ns: Vec<&str> = plan["namespaces"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"))
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for n in ["mount", "pid", "net", "ipc", "uts"] {
        assert!(ns.contains(&n), "namespace {n}: {ns:?}");
    }

    // exit
    assert_eq!(exit["status"], 0, "{text}");
    assert_eq!(exit["reason"], "exited", "{text}");
    assert!(exit["signal"].is_null(), "{text}");
    for k in ["duration_ms", "user_cpu_ms", "sys_cpu_ms"] {
        assert!(exit[k].is_u64(), "{k}: {text}");
    }
    assert!(exit["max_rss_kb"].as_u64().is_some_and(|n| n > 0), "{text}");
}

#[test]
fn exit_records_say_how_the_sandbox_ended() {
    if !can_run("exit_records_say_how_the_sandbox_ended") {
        return;
    }
    let f = Fixture::new("audit-exits");
    let log = f.root.join("audit.jsonl");

    let o = run_logged(&f, "default", &log, "exit 3");
    assert_status(&o, 3);
    let (_, e) = last_pair(&log, "exit");
    assert_eq!(
        (&e["status"], &e["reason"], &e["signal"]),
        (&Value::from(3), &Value::from("exited"), &Value::Null),
        "{e}"
    );

    let o = run_logged(&f, "default", &log, "kill -TERM $$");
    assert_status(&o, 143);
    let (_, e) = last_pair(&log, "exit");
    assert_eq!(
        (&e["status"], &e["reason"], &e["signal"]),
        (
            &Value::from(143),
            &Value::from("signaled"),
            &Value::from(15)
        ),
        "{e}"
    );

    // `exit 143` is not death by SIGTERM.
    let o = run_logged(&f, "default", &log, "exit 143");
    assert_status(&o, 143);
    let (_, e) = last_pair(&log, "exit");
    assert_eq!(
        (&e["status"], &e["reason"], &e["signal"]),
        (&Value::from(143), &Value::from("exited"), &Value::Null),
        "{e}"
    );

    let wall = f.profile(
        "wall",
        "version: 1\nextends: default\nlimits: {wall_time: 1s, grace: 200ms}\n",
    );
    let o = run_logged(&f, wall.to_str().unwrap(), &log, "sleep 30");
    assert_status(&o, 124);
    let (_, e) = last_pair(&log, "exit");
    assert_eq!(
        (&e["status"], &e["reason"]),
        (&Value::from(124), &Value::from("timeout")),
        "{e}"
    );

    // A command that doesn't exist: 127, still an exit (the sandbox was set
    // up), not a refusal.
    let missing = f.ws.join("no-such-command");
    let o = run_logged(&f, "default", &log, &format!("exec {}", missing.display()));
    assert_status(&o, 127);
    let (_, e) = last_pair(&log, "exit");
    assert_eq!(e["status"], 127, "{e}");
    let o = logged(&f, "default", &log, &[missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_status(&o, 127);
    assert!(stderr(&o).starts_with("confine: "), "{}", show(&o));
    let (_, e) = last_pair(&log, "exit");
    assert_eq!(e["status"], 127, "{e}");

    // Every record is paired: 6 launches, 6 exits.
    let rs = records(&log);
    assert_eq!(events(&rs, "launch").len(), 6, "{rs:?}");
    assert_eq!(events(&rs, "exit").len(), 6, "{rs:?}");
}

#[test]
fn log_is_private_and_appended_to() {
    if !can_run("log_is_private_and_appended_to") {
        return;
    }
    let f = Fixture::new("audit-modes");
    // Two missing levels, and confine started with umask 0: the modes are
    // confine's own, not the caller's umask's.
    let top = f.root.join("newdir");
    let dir = top.join("sub");
    let log = dir.join("audit.jsonl");
    assert!(!top.exists());
    let mut c = logged(&f, "default", &log, &["/bin/true"]);
    // SAFETY: umask is async-signal-safe and can't fail.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        })
    };
    let o = c.output().unwrap();
    assert_status(&o, 0);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&top), 0o700, "directory mode");
    assert_eq!(mode(&dir), 0o700, "directory mode");
    assert_eq!(mode(&log), 0o600, "file mode");
    let first = fs::read_to_string(&log).unwrap();
    assert_eq!(first.lines().count(), 2, "{first}");

    let o = run_logged(&f, "default", &log, "exit 1");
    assert_status(&o, 1);
    let second = fs::read_to_string(&log).unwrap();
    assert!(second.starts_with(&first), "old lines kept:\n{second}");
    let rs = records(&log);
    assert_eq!(rs.len(), 4, "{second}");
    assert_ne!(rs[0]["sandbox"], rs[2]["sandbox"], "a new id per run");
    assert_eq!(rs[3]["status"], 1, "{second}");
    // Appending didn't touch the modes.
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&log), 0o600);
}

#[test]
fn concurrent_sandboxes_share_one_log() {
    if !can_run("concurrent_sandboxes_share_one_log") {
        return;
    }
    const N: usize = 20;
    let f = Fixture::new("audit-concurrent");
    let log = f.root.join("audit.jsonl");
    let children: Vec<Child> = (0..N)
        .map(|i| {
            logged(
                &f,
                "default",
                &log,
                &["/bin/sh", "-c", &format!("exit {i}")],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert_status(&o, i as i32);
    }

    let rs = records(&log);
    assert_eq!(rs.len(), 2 * N);
    let launches = events(&rs, "launch");
    let exits = events(&rs, "exit");
    assert_eq!(launches.len(), N);
    assert_eq!(exits.len(), N);
    let mut ids: Vec<&str> = launches
        .iter()
        .map(|r| r["sandbox"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N, "distinct sandbox ids");
    let mut statuses = Vec::new();
    for l in &launches {
        common_fields(l);
        let matching: Vec<_> = exits
            .iter()
            .filter(|e| e["sandbox"] == l["sandbox"])
            .collect();
        assert_eq!(matching.len(), 1, "one exit for {l}");
        let e = matching[0];
        common_fields(e);
        assert_eq!(e["pid"], l["pid"], "{l}\n{e}");
        // The exit belongs to this launch's command: `exit i` → status i.
        let script = l["argv"][2].as_str().unwrap();
        assert_eq!(script, format!("exit {}", e["status"]), "{l}\n{e}");
        statuses.push(e["status"].as_u64().unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, (0..N as u64).collect::<Vec<_>>());
}

#[test]
fn agent_cannot_read_or_append_to_the_log() {
    if !can_run("agent_cannot_read_or_append_to_the_log") {
        return;
    }
    let f = Fixture::new("audit-reach");
    // Next to the workspace; the log itself owned by the agent's uid and
    // open to all, its directory readable by all, so only the sandbox's
    // view keeps the agent out. (The directory itself must be one only root
    // can change, or confine refuses the log: see tests/race.rs.)
    let dir = f.root.join("log");
    let log = f.file(&dir.join("audit.jsonl"), "");
    chown(&dir, Some(0), Some(0)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let own = f.file(&f.ws.join("own.jsonl"), "mine\n");

    let probe = |target: &Path, target_dir: &Path| {
        format!(
            "cat {t}; echo cat=$?; (echo x >> {t}); echo append=$?; ls {d}; echo ls=$?",
            t = target.display(),
            d = target_dir.display()
        )
    };
    let o = run_logged(&f, "default", &log, &probe(&log, &dir));
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "cat=1\nappend=2\nls=2\n", "{}", show(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 3, "{}", show(&o));
    // Not in the sandbox's view at all: ENOENT, not EACCES.
    for l in err.lines() {
        assert!(
            l.contains("No such file or directory") || l.contains("Directory nonexistent"),
            "{}",
            show(&o)
        );
    }
    let rs = records(&log);
    assert_eq!(rs.len(), 2, "only confine's records");
    assert_eq!(rs[0]["event"], "launch");
    assert_eq!(rs[1]["event"], "exit");
    assert!(!fs::read_to_string(&log).unwrap().contains("\nx\n"));

    // Control: the same commands on a file in the workspace succeed.
    let o = run_logged(&f, "default", &log, &probe(&own, &f.ws));
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        "mine\ncat=0\nappend=0\nown.jsonl\nls=0\n",
        "{}",
        show(&o)
    );
    assert_eq!(fs::read_to_string(&own).unwrap(), "mine\nx\n");
}

#[test]
fn audit_log_inside_the_workspace_is_refused() {
    if !can_run("audit_log_inside_the_workspace_is_refused") {
        return;
    }
    let f = Fixture::new("audit-in-ws");
    let marker = f.ws.join("ran");
    let touch = format!("touch {}", marker.display());
    let in_ws = f.ws.join("audit.jsonl");

    let o = run_logged(&f, "default", &in_ws, &touch);
    assert_status(&o, 125);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{}", show(&o));
    assert!(err.starts_with("confine: "), "{}", show(&o));
    assert!(err.contains("inside the write grant"), "{}", show(&o));
    assert!(!marker.exists(), "the command must never run");
    assert!(!in_ws.exists(), "no log in the workspace");

    let p = f.profile(
        "log-in-ws",
        "version: 1\nextends: default\naudit: {log: \"{workspace}/audit.jsonl\"}\n",
    );
    let o = f.sh(p.to_str().unwrap(), &touch);
    assert_status(&o, 125);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{}", show(&o));
    assert!(err.starts_with("confine: "), "{}", show(&o));
    assert!(err.contains("audit.log"), "{}", show(&o));
    assert!(!marker.exists(), "the command must never run");
    assert!(!in_ws.exists(), "no log in the workspace");

    // Control: the same profile shape with the log next to the workspace.
    let next = f.root.join("audit.jsonl");
    let p = f.profile(
        "log-next",
        &format!(
            "version: 1\nextends: default\naudit: {{log: \"{}\"}}\n",
            next.display()
        ),
    );
    let o = f.sh(p.to_str().unwrap(), &touch);
    assert_status(&o, 0);
    assert!(marker.exists());
    assert_eq!(records(&next).len(), 2);
}

#[test]
fn audit_log_through_a_symlink_into_the_workspace_is_refused() {
    if !can_run("audit_log_through_a_symlink_into_the_workspace_is_refused") {
        return;
    }
    let f = Fixture::new("audit-symlink");
    let marker = f.ws.join("ran");
    let touch = format!("touch {}", marker.display());
    // f.root/wslink -> f.root/ws: the path doesn't name the workspace, its
    // target is the workspace.
    let link = f.root.join("wslink");
    std::os::unix::fs::symlink(&f.ws, &link).unwrap();

    // The log's directory exists: resolved, refused.
    let o = run_logged(&f, "default", &link.join("audit.jsonl"), &touch);
    assert_status(&o, 125);
    assert!(stderr(&o).starts_with("confine: "), "{}", show(&o));
    assert!(!marker.exists(), "the command must never run");
    assert!(!f.ws.join("audit.jsonl").exists());

    // The log's directory doesn't exist yet: confine would create it
    // through the symlink, inside the workspace.
    let o = run_logged(&f, "default", &link.join("newdir/audit.jsonl"), &touch);
    let created = f.ws.join("newdir");
    assert!(
        !created.exists(),
        "the audit log was created in the workspace ({}): {}",
        created.join("audit.jsonl").display(),
        show(&o)
    );
    assert_status(&o, 125);
    assert!(stderr(&o).starts_with("confine: "), "{}", show(&o));
    assert!(!marker.exists(), "the command must never run");

    // Control: a missing directory next to the workspace is fine.
    let next = f.root.join("newdir/audit.jsonl");
    let o = run_logged(&f, "default", &next, &touch);
    assert_status(&o, 0);
    assert!(marker.exists());
    assert_eq!(records(&next).len(), 2);
}

#[test]
fn refused_setup_writes_a_refused_record() {
    if !can_run("refused_setup_writes_a_refused_record") {
        return;
    }
    let f = Fixture::new("audit-refused");
    let log = f.root.join("audit.jsonl");
    let marker = f.ws.join("ran");
    let touch = format!("touch {}", marker.display());
    // Above fs.nr_open, setrlimit(RLIMIT_NOFILE) fails with EPERM even for
    // root: the plan is fine, the sandbox setup (step 7) is not.
    let nr_open: u64 = fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let p = f.profile(
        "too-many-files",
        &format!(
            "version: 1\nextends: default\nlimits: {{open_files: {}}}\n",
            nr_open + 1
        ),
    );
    let o = run_logged(&f, p.to_str().unwrap(), &log, &touch);
    assert_status(&o, 125);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{}", show(&o));
    assert!(err.starts_with("confine: "), "{}", show(&o));
    assert!(err.contains("RLIMIT_NOFILE"), "{}", show(&o));
    assert!(!marker.exists(), "the command must never run");
    let rs = records(&log);
    assert_eq!(rs.len(), 2, "{rs:?}");
    assert_eq!(rs[0]["event"], "launch");
    assert_eq!(rs[1]["event"], "refused");
    common_fields(&rs[1]);
    assert_eq!(rs[0]["sandbox"], rs[1]["sandbox"]);
    let why = rs[1]["why"].as_str().unwrap_or_else(|| panic!("{}", rs[1]));
    assert!(why.contains("RLIMIT_NOFILE"), "{why}");
    assert!(events(&rs, "exit").is_empty());

    // Control: a limit the kernel accepts runs and ends with an exit record.
    let p = f.profile(
        "ok-files",
        "version: 1\nextends: default\nlimits: {open_files: 1024}\n",
    );
    let o = run_logged(&f, p.to_str().unwrap(), &log, &touch);
    assert_status(&o, 0);
    assert!(marker.exists());
    let (_, e) = last_pair(&log, "exit");
    assert_eq!(e["status"], 0);
}

#[test]
fn plan_refused_under_strict_writes_a_refused_record() {
    if !can_run("plan_refused_under_strict_writes_a_refused_record") {
        return;
    }
    let f = Fixture::new("audit-plan-refused");
    let log = f.root.join("audit.jsonl");
    let marker = f.ws.join("ran");
    let touch = format!("touch {}", marker.display());
    // Landlock capped to nothing: the profile is valid, this "kernel" can't
    // enforce it, and strict refuses before anything starts.
    let o = logged(&f, "default", &log, &["/bin/sh", "-c", &touch])
        .env("CONFINE_LANDLOCK_ABI", "0")
        .output()
        .unwrap();
    assert_status(&o, 125);
    assert!(!marker.exists(), "the command must never run");
    let rs = records(&log);
    assert_eq!(rs.len(), 1, "{rs:?}");
    let r = &rs[0];
    assert_eq!(r["event"], "refused", "{r}");
    common_fields(r);
    let why = r["why"].as_str().unwrap_or_else(|| panic!("{r}"));
    assert!(why.contains("Landlock"), "{why}");
    assert_eq!(r["profile"]["name"], "default", "{r}");
    assert!(is_hex64(&r["profile"]["sha256"]), "{r}");
    assert_eq!(r["argv"][0], "/bin/sh", "{r}");
    assert_eq!(r["workspace"], f.ws.to_str().unwrap(), "{r}");
    assert!(
        r["not_enforceable"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{r}"
    );

    // A user that doesn't exist is refused once the log is known: recorded.
    let o = logged_with(
        &f,
        "default",
        &log,
        &["--set", "user=no-such-user-confine"],
        &["/bin/sh", "-c", &touch],
    )
    .output()
    .unwrap();
    assert_status(&o, 125);
    assert!(!marker.exists(), "the command must never run");
    let rs = records(&log);
    assert_eq!(rs.len(), 2, "{rs:?}");
    assert_eq!(rs[1]["event"], "refused", "{}", rs[1]);
    let why = rs[1]["why"].as_str().unwrap_or_else(|| panic!("{}", rs[1]));
    assert!(why.contains("no-such-user-confine"), "{why}");

    // --dry-run launches nothing, so it records nothing.
    let o = logged_with(&f, "default", &log, &["--dry-run"], &["/bin/true"])
        .env("CONFINE_LANDLOCK_ABI", "0")
        .output()
        .unwrap();
    assert_status(&o, 125);
    assert_eq!(records(&log).len(), 2);

    // Control: the same launch where Landlock is there.
    let o = run_logged(&f, "default", &log, &touch);
    assert_status(&o, 0);
    assert!(marker.exists());
    let (_, e) = last_pair(&log, "exit");
    assert_eq!(e["status"], 0);
}

#[test]
fn no_audit_config_writes_nothing() {
    if !can_run("no_audit_config_writes_nothing") {
        return;
    }
    let f = Fixture::new("audit-none");
    let log = f.root.join("audit.jsonl");
    // Control: through CONFINE_AUDIT_LOG the log is written.
    let o = f
        .command("default", &["/bin/true"])
        .env("CONFINE_AUDIT_LOG", &log)
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert_eq!(records(&log).len(), 2);
    fs::remove_file(&log).unwrap();

    for env in [None, Some("")] {
        let mut c = f.command("default", &["/bin/true"]);
        match env {
            None => c.env_remove("CONFINE_AUDIT_LOG"),
            Some(v) => c.env("CONFINE_AUDIT_LOG", v),
        };
        let o = c.output().unwrap();
        assert_status(&o, 0);
        assert!(!log.exists(), "CONFINE_AUDIT_LOG={env:?}");
    }
}

#[test]
fn audit_log_option_beats_profile_beats_environment() {
    if !can_run("audit_log_option_beats_profile_beats_environment") {
        return;
    }
    let f = Fixture::new("audit-precedence");
    let (cli, prof, env) = (
        f.root.join("cli.jsonl"),
        f.root.join("profile.jsonl"),
        f.root.join("env.jsonl"),
    );
    let p = f.profile(
        "with-log",
        &format!(
            "version: 1\nextends: default\naudit: {{log: \"{}\"}}\n",
            prof.display()
        ),
    );
    let p = p.to_str().unwrap();
    let o = logged(&f, p, &cli, &["/bin/true"])
        .env("CONFINE_AUDIT_LOG", &env)
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert_eq!(records(&cli).len(), 2);
    assert!(!prof.exists() && !env.exists());

    let o = f
        .command(p, &["/bin/true"])
        .env("CONFINE_AUDIT_LOG", &env)
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert_eq!(records(&prof).len(), 2);
    assert!(!env.exists());
}
