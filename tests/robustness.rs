//! confine under conditions nobody plans for: its output going to a pipe
//! nobody reads, its audit log on a full filesystem or deleted mid-run,
//! FIFOs and devices where files belong, and inputs built to be huge or
//! deep. It must neither die nor hang, keep every audit line whole, and
//! refuse bad input with a located message (DESIGN.md §1, §4 host-side
//! rules, §6 last invariant).
//!
//! Every run here is bounded: [`bounded`] kills confine (by pid) and fails
//! the test when it hasn't ended in time, so a hang is a failure, not a
//! stuck suite. The bounds are generous; nothing asserts on timing.
mod common;
use common::*;

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// More than anything here needs, even in a debug build on a busy machine.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` to its end, with stdout and stderr in files unless the caller
/// set them; kills it and fails if it hasn't ended within `limit`.
fn bounded(mut cmd: Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    let status = wait_bounded(&mut cmd, limit);
    Output {
        status,
        stdout: fs::read(&out).unwrap(),
        stderr: fs::read(&err).unwrap(),
    }
}

/// Spawns `cmd` and waits for it at most `limit`.
fn wait_bounded(cmd: &mut Command, limit: Duration) -> ExitStatus {
    let mut child = cmd.spawn().unwrap();
    match poll_for(limit, || child.try_wait().unwrap()) {
        Some(status) => status,
        None => {
            // Our unreaped child: its pid can't have been reused.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within {limit:?}: it hangs");
        }
    }
}

/// `confine ARGS...` with a clean environment.
fn confine(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    c
}

/// `confine run -p default OPTS... -w WS -- CMD...` in the fixture's
/// workspace, with a clean environment.
fn run_in(f: &Fixture, opts: &[&str], cmd: &[&str]) -> Command {
    let mut c = confine(&["run", "-p", "default"]);
    c.args(opts)
        .arg("-w")
        .arg(&f.ws)
        .arg("--")
        .args(cmd)
        .current_dir(&f.ws);
    c
}

/// The write end of a pipe whose read end is already closed: every write
/// to it fails with EPIPE (or raises SIGPIPE, where that isn't ignored).
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just created and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    Stdio::from(w)
}

/// Runs `cmd` with stdout and stderr both going to closed pipes; its status.
fn status_with_closed_output(mut cmd: Command) -> ExitStatus {
    cmd.stdout(closed_pipe()).stderr(closed_pipe());
    wait_bounded(&mut cmd, LIMIT)
}

#[track_caller]
fn assert_code(status: ExitStatus, code: i32, what: &str) {
    assert_eq!(
        status.code(),
        Some(code),
        "{what}: {status:?} (a signal means confine died writing a message)"
    );
}

/// Every line of the log, parsed; panics on one that isn't a JSON object.
#[track_caller]
fn records(log: &Path) -> Vec<Value> {
    let text = fs::read_to_string(log).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "unterminated last line in {}:\n{text}",
        log.display()
    );
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one whole JSON record ({e}): {l:?}\nin:\n{text}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

fn events(rs: &[Value], event: &str) -> usize {
    rs.iter().filter(|r| r["event"] == event).count()
}

#[track_caller]
fn assert_refused_with(o: &Output, fragments: &[&str]) {
    assert_status(o, 125);
    let err = stderr(o);
    assert!(err.starts_with("confine: "), "{}", show(o));
    for f in fragments {
        assert!(err.contains(f), "stderr lacks {f:?}: {}", show(o));
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

// ------------------------------------------- finding 3: closed pipes

/// What confine prints when nothing needs root: a refusal, `check`, a
/// usage error, all to pipes nobody reads. Exit statuses stay what they
/// are; std's print macros would have aborted confine (SIGABRT, 134).
#[test]
fn messages_to_a_closed_pipe_never_kill_confine() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let s = status_with_closed_output(confine(&[
        "run",
        "-p",
        missing.to_str().unwrap(),
        "--",
        "true",
    ]));
    assert_code(s, 125, "a refusal");
    let s = status_with_closed_output(confine(&["check", "default", "minimal"]));
    assert_code(s, 0, "check of good profiles");
    let s = status_with_closed_output(confine(&["check", missing.to_str().unwrap()]));
    assert_code(s, 125, "check of a missing profile");
    let s = status_with_closed_output(confine(&["run", "--no-such-flag"]));
    assert_code(s, 125, "a usage error");
    let s = status_with_closed_output(confine(&["--help"]));
    assert_code(s, 0, "--help");
    let s = status_with_closed_output(confine(&["profiles"]));
    assert_code(s, 0, "profiles");
    let s = status_with_closed_output(confine(&["probe"]));
    assert_code(s, 0, "probe");
}

/// A run whose output nobody reads: the command's status, and the exit
/// record written, also when confine has something to say (a failed exec,
/// a wall_time).
#[test]
fn a_run_with_closed_output_keeps_its_status_and_exit_record() {
    if !can_run("a_run_with_closed_output_keeps_its_status_and_exit_record") {
        return;
    }
    let f = Fixture::new("epipe");
    let log = f.root.join("logs/audit.jsonl");
    let ws = f.ws.to_str().unwrap();
    let run = |extra: &[&str], cmd: &[&str]| {
        let mut opts = vec!["--audit-log", log.to_str().unwrap()];
        opts.extend_from_slice(extra);
        status_with_closed_output(run_in(&f, &opts, cmd))
    };

    let s = status_with_closed_output(confine(&["explain", "-p", "default", "-w", ws]));
    assert_code(s, 0, "explain");
    let s = run(&["--dry-run"], &["/bin/true"]);
    assert_code(s, 0, "--dry-run");

    let s = run(&[], &["/bin/sh", "-c", "exit 3"]);
    assert_code(s, 3, "a run");
    // The agent itself gets SIGPIPE's default back: its write kills it.
    let s = run(&[], &["/bin/sh", "-c", "echo out; exit 3"]);
    assert_code(
        s,
        128 + libc::SIGPIPE,
        "an agent writing to the closed pipe",
    );
    // confine reports the failed exec on stderr: 127, not a death.
    let s = run(&[], &["/nonexistent/command"]);
    assert_code(s, 127, "a command that doesn't exist");
    // And says on stderr that wall_time stopped the sandbox.
    let s = run(
        &[
            "--set",
            "limits.wall_time=1s",
            "--set",
            "limits.grace=200ms",
        ],
        &["/bin/sleep", "30"],
    );
    assert_code(s, 124, "a run stopped by wall_time");

    let rs = records(&log);
    assert_eq!(events(&rs, "launch"), 4, "{rs:?}");
    let exits: Vec<&Value> = rs.iter().filter(|r| r["event"] == "exit").collect();
    let statuses: Vec<u64> = exits
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [3, 141, 127, 124], "{rs:?}");
    assert_eq!(exits[3]["reason"], "timeout");
}

// ------------------------------------- finding 4: the audit log's integrity

/// Set in the re-executed test binary, which runs in a private mount
/// namespace of its own.
const IN_PRIVATE_MOUNTS: &str = "CONFINE_TEST_IN_PRIVATE_MOUNTS";

/// Re-runs test `name` of this binary in a mount namespace of its own
/// (whatever it mounts disappears with it) and fails if it fails.
fn in_private_mount_namespace(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe);
    c.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_PRIVATE_MOUNTS, "1");
    // SAFETY: runs in the forked child before exec; unshare and mount are
    // async-signal-safe system calls on constant arguments.
    unsafe {
        c.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = bounded(c, Duration::from_secs(240));
    assert!(
        o.status.success(),
        "{name} in a private mount namespace:\n{}",
        show(&o)
    );
}

/// Appends a valid JSON line to the log that leaves exactly `room` bytes
/// free in the log's last page (tmpfs allocates whole pages).
fn pad_to_room(log: &Path, room: u64) {
    let size = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let frame = r#"{"event":"pad","x":""}"#.len() as u64 + 1;
    let mut target = (size / 4096 + 1) * 4096 - room;
    if target < size + frame {
        target += 4096;
    }
    let line = format!(
        "{{\"event\":\"pad\",\"x\":\"{}\"}}\n",
        "x".repeat((target - size - frame) as usize)
    );
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    assert_eq!(fs::metadata(log).unwrap().len(), target);
}

/// Fills the filesystem of `dir` until a write fails.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = fs::File::create(dir.join("filler")).unwrap();
    let block = [0u8; 4096];
    while f.write_all(&block).is_ok() {}
}

/// Detaches a mount when dropped.
struct Unmount(std::ffi::CString);

impl Drop for Unmount {
    fn drop(&mut self) {
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// On a full filesystem a record is either whole in the log or not in it at
/// all, and the next record starts a line of its own: a launch record that
/// can't be written refuses the launch (125); an exit record that can't be
/// written is reported, and the command's status stands.
#[test]
fn a_full_filesystem_never_leaves_a_torn_record() {
    if !can_run("a_full_filesystem_never_leaves_a_torn_record") {
        return;
    }
    if std::env::var_os(IN_PRIVATE_MOUNTS).is_none() {
        in_private_mount_namespace("a_full_filesystem_never_leaves_a_torn_record");
        return;
    }
    let f = Fixture::new("fullfs");
    let logfs = f.root.join("logfs");
    fs::create_dir(&logfs).unwrap();
    let target = std::ffi::CString::new(logfs.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated strings; in our own mount namespace.
    let r = unsafe {
        libc::mount(
            c"confine-test".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"size=64k,mode=0755".as_ptr().cast(),
        )
    };
    assert_eq!(r, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    // Unmounted before the fixture is removed, also when an assertion fails.
    let _unmount = Unmount(target);
    let log = logfs.join("audit.jsonl");
    let confine_logged = |extra: &[&str], cmd: &[&str]| {
        let mut opts = vec!["--audit-log", log.to_str().unwrap()];
        opts.extend_from_slice(extra);
        run_in(&f, &opts, cmd)
    };

    // 1. No room for the launch record: 40 bytes of it would fit.
    pad_to_room(&log, 40);
    fill(&logfs);
    let size = fs::metadata(&log).unwrap().len();
    let marker = f.ws.join("ran");
    let o = bounded(confine_logged(&[], &["/bin/touch", "ran"]), LIMIT);
    records(&log);
    assert_eq!(fs::metadata(&log).unwrap().len(), size, "a fragment stayed");
    assert!(
        !marker.exists(),
        "the command ran without its launch record"
    );
    assert_refused_with(&o, &["launch record", "No space left on device"]);

    // 2. Room for the launch record, none for the exit record: the agent
    // waits until the disk is full.
    fs::remove_file(logfs.join("filler")).unwrap();
    let go = f.ws.join("go");
    let mut c = confine_logged(
        &["--set", "limits.wall_time=60s"],
        &[
            "/bin/sh",
            "-c",
            "while [ ! -e go ]; do sleep 0.05; done; exit 7",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("err");
    c.stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).unwrap());
    let mut child = c.spawn().unwrap();
    let launched = poll(LIMIT, || events(&records(&log), "launch") == 1);
    if !launched {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no launch record within {LIMIT:?}");
    }
    pad_to_room(&log, 20);
    fill(&logfs);
    let size = fs::metadata(&log).unwrap().len();
    fs::write(&go, "").unwrap();
    let status = match poll_for(LIMIT, || child.try_wait().unwrap()) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("confine did not end within {LIMIT:?}");
        }
    };
    let err = fs::read_to_string(&err_path).unwrap();
    let rs = records(&log);
    assert_eq!(fs::metadata(&log).unwrap().len(), size, "a fragment stayed");
    assert_eq!(events(&rs, "exit"), 0, "{rs:?}");
    assert_eq!(status.code(), Some(7), "the command's status stands: {err}");
    assert!(
        err.contains("exit record") && err.contains("No space left on device"),
        "the lost exit record is reported: {err:?}"
    );

    // 3. With room again, records follow on lines of their own.
    fs::remove_file(logfs.join("filler")).unwrap();
    let o = bounded(confine_logged(&[], &["/bin/true"]), LIMIT);
    assert_status(&o, 0);
    let rs = records(&log);
    assert_eq!(
        (events(&rs, "launch"), events(&rs, "exit")),
        (2, 1),
        "{rs:?}"
    );
}

/// The log's directory removed while the sandbox runs: the exit record
/// has nowhere to go, which is said on stderr; the command's status stands.
#[test]
fn a_log_removed_mid_run_is_reported() {
    if !can_run("a_log_removed_mid_run_is_reported") {
        return;
    }
    let f = Fixture::new("logremoved");
    let logs = f.root.join("logs");
    let log = logs.join("audit.jsonl");
    let mut c = run_in(
        &f,
        &[
            "--audit-log",
            log.to_str().unwrap(),
            "--set",
            "limits.wall_time=60s",
        ],
        &["/bin/sh", "-c", "while [ ! -e go ]; do sleep 0.05; done"],
    );
    let err_path = f.root.join("stderr");
    c.stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).unwrap());
    let mut child = c.spawn().unwrap();
    let launched = poll(LIMIT, || events(&records(&log), "launch") == 1);
    if launched {
        fs::remove_dir_all(&logs).unwrap();
    }
    fs::write(f.ws.join("go"), "").unwrap();
    let status = poll_for(LIMIT, || child.try_wait().unwrap());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(launched, "no launch record within {LIMIT:?}");
    let status = status.expect("confine ended");
    let err = fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.code(), Some(0), "the command's status stands: {err}");
    assert!(
        err.contains("exit record") && err.contains("was removed"),
        "the lost exit record is reported: {err:?}"
    );
    assert!(!logs.exists(), "confine recreated the removed directory");
}

/// FIFOs and devices where a profile, an `extends:` target, a `check`
/// argument or the audit log belongs: refused at once (125), naming what
/// the path is, never waited on for ever.
#[test]
fn fifos_and_devices_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("profile.yaml");
    mkfifo(&fifo);
    let fifo_s = fifo.to_str().unwrap();
    let o = bounded(confine(&["check", fifo_s]), LIMIT);
    assert_refused_with(&o, &[fifo_s, "is a FIFO, not a regular file"]);
    let ws = dir.path().to_str().unwrap();
    let o = bounded(
        confine(&["run", "-p", fifo_s, "-w", ws, "--dry-run", "--", "true"]),
        LIMIT,
    );
    assert_refused_with(&o, &["is a FIFO, not a regular file"]);
    let o = bounded(confine(&["explain", "-p", fifo_s, "-w", ws]), LIMIT);
    assert_refused_with(&o, &["is a FIFO, not a regular file"]);

    let child = dir.path().join("child.yaml");
    fs::write(&child, "version: 1\nextends: ./profile.yaml\n").unwrap();
    let o = bounded(confine(&["check", child.to_str().unwrap()]), LIMIT);
    assert_refused_with(
        &o,
        &[
            &format!("extends ({}:2:10): ", child.display()),
            "is a FIFO, not a regular file",
        ],
    );
    let zero = dir.path().join("zero.yaml");
    fs::write(&zero, "version: 1\nextends: /dev/zero\n").unwrap();
    let o = bounded(confine(&["check", zero.to_str().unwrap()]), LIMIT);
    assert_refused_with(
        &o,
        &["extends (", "is a character device, not a regular file"],
    );
    let o = bounded(confine(&["check", "/dev/zero"]), LIMIT);
    assert_refused_with(&o, &["is a character device, not a regular file"]);
    // Control: the same profile as a file is fine.
    let file = dir.path().join("file.yaml");
    fs::write(&file, "version: 1\n").unwrap();
    let o = bounded(confine(&["check", file.to_str().unwrap()]), LIMIT);
    assert_status(&o, 0);
}

#[test]
fn a_fifo_as_audit_log_is_refused_without_blocking() {
    if !can_run("a_fifo_as_audit_log_is_refused_without_blocking") {
        return;
    }
    let f = Fixture::new("logfifo");
    let fifo = f.root.join("audit.jsonl");
    mkfifo(&fifo);
    let marker = f.ws.join("ran");
    let c = run_in(
        &f,
        &["--audit-log", fifo.to_str().unwrap()],
        &["/bin/touch", "ran"],
    );
    let o = bounded(c, LIMIT);
    assert_refused_with(
        &o,
        &[fifo.to_str().unwrap(), "is a FIFO, not a regular file"],
    );
    assert!(!marker.exists(), "the command ran");
    // A refusal the plan makes (uid 0) is audited: the FIFO is refused there
    // too, without waiting for a reader.
    let c = run_in(
        &f,
        &[
            "--set",
            "user=inherit",
            "--audit-log",
            fifo.to_str().unwrap(),
        ],
        &["/bin/true"],
    );
    let o = bounded(c, LIMIT);
    assert_refused_with(&o, &["is a FIFO, not a regular file"]);
}

// ---------------------------------------- finding 5: unbounded input

/// A profile file larger than confine reads (1 MiB): refused before it is
/// parsed, whatever it holds.
#[test]
fn huge_profiles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let mut text = String::from("version: 1\n");
    while text.len() <= 1 << 20 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    fs::write(&big, &text).unwrap();
    let o = bounded(confine(&["check", big.to_str().unwrap()]), LIMIT);
    assert_refused_with(&o, &["is larger than 1 MiB"]);
    let child = dir.path().join("child.yaml");
    fs::write(&child, "version: 1\nextends: ./big.yaml\n").unwrap();
    let o = bounded(confine(&["check", child.to_str().unwrap()]), LIMIT);
    assert_refused_with(&o, &["extends (", "is larger than 1 MiB"]);
    // Control: just under the bound it is read (and is a valid profile).
    text.truncate((1 << 20) - 100);
    text.truncate(text.rfind('\n').unwrap() + 1);
    fs::write(&big, &text).unwrap();
    let o = bounded(confine(&["check", big.to_str().unwrap()]), LIMIT);
    assert_status(&o, 0);
}

/// 64k nested flow collections took seconds (quadratic in libyaml's
/// scanner): refused before parsing, located, in a file or a `--set`.
#[test]
fn deep_nesting_fails_fast_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    for (name, open, close) in [("seq", "[", "]"), ("map", "{a: ", "}")] {
        let n = 64 * 1024;
        let p = dir.path().join(format!("{name}.yaml"));
        fs::write(
            &p,
            format!(
                "version: 1\ndescription: {}1{}\n",
                open.repeat(n),
                close.repeat(n)
            ),
        )
        .unwrap();
        let o = bounded(confine(&["check", p.to_str().unwrap()]), LIMIT);
        assert_refused_with(
            &o,
            &[
                &format!("profile ({}:2:", p.display()),
                "nested deeper than 32 levels",
            ],
        );
    }
    // Just deep enough to be refused, in a shape a profile has.
    let p = dir.path().join("read.yaml");
    fs::write(
        &p,
        format!(
            "version: 1\nfilesystem:\n  read: {}/usr{}\n",
            "[".repeat(40),
            "]".repeat(40)
        ),
    )
    .unwrap();
    let o = bounded(confine(&["check", p.to_str().unwrap()]), LIMIT);
    assert_refused_with(&o, &["nested deeper than 32 levels"]);
    let value = format!("description={}1{}", "[".repeat(60_000), "]".repeat(60_000));
    let ws = dir.path().to_str().unwrap();
    let o = bounded(
        confine(&["run", "--set", &value, "-w", ws, "--dry-run", "--", "true"]),
        LIMIT,
    );
    assert_refused_with(
        &o,
        &["description (--set #1)", "nested deeper than 32 levels"],
    );
}

fn protect_list(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|i| format!("    - \"{{workspace}}/{prefix}{i}/x\"\n"))
        .collect()
}

/// 16k `protect` entries took seconds to plan (quadratic): a list holds at
/// most 4096 entries, in one file or merged through `extends`.
#[test]
fn long_lists_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("protect.yaml");
    fs::write(
        &p,
        format!(
            "version: 1\nfilesystem:\n  protect:\n{}",
            protect_list(16 * 1024, "p")
        ),
    )
    .unwrap();
    let o = bounded(confine(&["check", p.to_str().unwrap()]), LIMIT);
    assert_refused_with(
        &o,
        &[
            &format!("filesystem.protect ({}:4:", p.display()),
            "more than 4096 entries",
        ],
    );
    // Two layers of 3000 each: fine alone, too many together.
    let parent = dir.path().join("parent.yaml");
    fs::write(
        &parent,
        format!(
            "version: 1\nfilesystem:\n  protect:\n{}",
            protect_list(3000, "a")
        ),
    )
    .unwrap();
    let child = dir.path().join("child.yaml");
    fs::write(
        &child,
        format!(
            "version: 1\nextends: ./parent.yaml\nfilesystem:\n  protect:\n    add:\n{}",
            protect_list(3000, "b").replace("    - ", "      - ")
        ),
    )
    .unwrap();
    let o = bounded(confine(&["check", parent.to_str().unwrap()]), LIMIT);
    assert_status(&o, 0);
    let o = bounded(confine(&["check", child.to_str().unwrap()]), LIMIT);
    assert_refused_with(
        &o,
        &[
            &format!("filesystem.protect.add[1096] ({}:", child.display()),
            "6000 entries once merged",
        ],
    );
}

/// The most a list may hold plans in reasonable time: 4096 protected paths
/// inside a write grant next to 4096 read grants.
#[test]
fn the_longest_lists_still_plan() {
    if !can_run("the_longest_lists_still_plan") {
        return;
    }
    let f = Fixture::new("longlists");
    let files = f.root.join("files");
    fs::create_dir(&files).unwrap();
    let mut reads = String::new();
    for i in 0..4096 {
        let p = files.join(format!("f{i}"));
        fs::write(&p, "").unwrap();
        reads.push_str(&format!("    - {}\n", p.display()));
    }
    let p = f.profile(
        "long",
        &format!(
            "version: 1\nfilesystem:\n  read:\n{reads}  write: [\"{{workspace}}\"]\n  protect:\n{}",
            protect_list(4096, "d")
        ),
    );
    let o = bounded(
        confine(&[
            "explain",
            "--json",
            "-p",
            p.to_str().unwrap(),
            "-w",
            f.ws.to_str().unwrap(),
        ]),
        LIMIT,
    );
    assert_status(&o, 0);
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        plan["filesystem"]["protect"].as_array().unwrap().len(),
        4096
    );
}

// ------------------------------------------------- finding 8: wall_time

/// A run that `limits.wall_time` ends says so on stderr, one line (as an
/// OOM kill does), and exits 124.
#[test]
fn wall_time_says_it_stopped_the_sandbox() {
    if !can_run("wall_time_says_it_stopped_the_sandbox") {
        return;
    }
    let f = Fixture::new("walltime-msg");
    let c = run_in(
        &f,
        &[
            "--set",
            "limits.wall_time=1s",
            "--set",
            "limits.grace=200ms",
        ],
        &["/bin/sleep", "30"],
    );
    let o = bounded(c, LIMIT);
    assert_status(&o, 124);
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", show(&o));
    assert!(
        lines[0].starts_with("confine: limits.wall_time (1s): the sandbox ran for ")
            && lines[0].ends_with("s and was stopped"),
        "{}",
        show(&o)
    );
    // Control: a run that ends in time says nothing.
    let o = f.run("default", &["/bin/true"]);
    assert_status(&o, 0);
    assert_eq!(stderr(&o), "", "{}", show(&o));
}
