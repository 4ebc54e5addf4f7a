//! Shared harness for the integration tests: they run the real `confine`
//! binary, as root, against the real kernel.
//!
//! Every attack is harmless if it succeeds: it targets files in a fixture
//! directory of its own (under cargo's target/tmp, never /tmp itself), the
//! agent runs as a dedicated uid that owns nothing else on the machine, and
//! the fixture is removed when the test ends. The files an attack goes for
//! are owned by the agent's uid or world-writable, so when the attempt fails
//! it is Landlock, seccomp or the mount view that stopped it, not plain file
//! permissions.
//!
//! Besides the [`Fixture`]: skip-or-fail checks, unique tokens, polling with
//! a deadline, /proc scans for host processes, commands as the agent's uid
//! outside any sandbox, and `confine run` in the background ([`Sandbox`]).
//! [`net`] is the test network of the egress tests (two namespaces, servers
//! and a DNS server of the test's own).
#![allow(dead_code)]

pub mod agents;
pub mod net;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The agent's uid and gid in tests: no passwd entry, owns only fixtures.
pub const AGENT_UID: u32 = 60123;
pub const AGENT_GID: u32 = 60123;

/// A PATH that reaches the system's tools and nothing of the caller's.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The built binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_confine")
}

// ------------------------------------------------------------- skipping

/// For a test that can't run here: prints `skipped: TEST: WHY` and returns
/// false, or, with CONFINE_REQUIRE_KERNEL=1, fails the test instead.
pub fn skip_or_fail(test: &str, why: &str) -> bool {
    if std::env::var_os("CONFINE_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("{test}: {why}, and CONFINE_REQUIRE_KERNEL=1");
    }
    eprintln!("skipped: {test}: {why}");
    false
}

/// Skips (returns false) or, with CONFINE_REQUIRE_KERNEL=1, fails when the
/// test can't run here: it needs root for namespaces and the uid switch.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no arguments and can't fail.
    let root = unsafe { libc::geteuid() } == 0;
    root || skip_or_fail(test, "needs root (namespaces, uid switch)")
}

/// The kernel's Landlock ABI version, negative without Landlock.
pub fn landlock_abi() -> i64 {
    // SAFETY: the version query reads no memory.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    }
}

/// Fails or skips unless the kernel's Landlock ABI is at least `abi`.
pub fn require_landlock(test: &str, abi: u32) -> bool {
    let v = landlock_abi();
    v >= abi as i64 || skip_or_fail(test, &format!("needs Landlock ABI {abi}, kernel has {v}"))
}

/// Skips (returns false) when `tool` isn't installed. Never fails, not even
/// with CONFINE_REQUIRE_KERNEL=1: a missing tool isn't the kernel's doing.
pub fn have(test: &str, tool: &str) -> bool {
    if Path::new(tool).exists() {
        return true;
    }
    eprintln!("skipped: {test}: {tool} is not installed");
    false
}

// ------------------------------------------------------------- fixtures

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fixture: `root/ws` is the agent's workspace (owned by the agent uid),
/// `root/outside` a directory next to it that no grant covers (also owned by
/// the agent uid, so only the sandbox keeps the agent out), `root/profiles`
/// holds profiles written by the test.
pub struct Fixture {
    pub root: PathBuf,
    pub ws: PathBuf,
    pub outside: PathBuf,
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = base.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        // The agent must be able to traverse down to its workspace.
        for dir in root.ancestors() {
            if dir == Path::new("/") {
                break;
            }
            let meta = fs::metadata(dir).unwrap();
            if meta.permissions().mode() & 0o001 == 0 {
                panic!("{} is not traversable by other users", dir.display());
            }
        }
        let ws = root.join("ws");
        let outside = root.join("outside");
        let profiles = root.join("profiles");
        for d in [&ws, &outside, &profiles] {
            fs::create_dir(d).unwrap();
        }
        for d in [&ws, &outside] {
            chown(d, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
        }
        Fixture { root, ws, outside }
    }

    /// Writes a file owned by the agent, mode 0666 (so only the sandbox can
    /// stop a write).
    pub fn file(&self, path: &Path, content: &str) -> PathBuf {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
            let _ = chown(parent, Some(AGENT_UID), Some(AGENT_GID));
        }
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
        chown(path, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
        path.to_path_buf()
    }

    /// Writes a profile file (outside the workspace) and returns its path.
    pub fn profile(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.root.join("profiles").join(format!("{name}.yaml"));
        fs::write(&p, yaml).unwrap();
        p
    }

    /// `confine run -p PROFILE -w WS -- CMD...` with a clean PATH.
    pub fn run(&self, profile: &str, cmd: &[&str]) -> Output {
        self.command(profile, cmd).output().unwrap()
    }

    /// `confine run -p PROFILE -w WS -- sh -c SCRIPT`.
    pub fn sh(&self, profile: &str, script: &str) -> Output {
        self.run(profile, &["/bin/sh", "-c", script])
    }

    pub fn command(&self, profile: &str, cmd: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("run")
            .arg("-p")
            .arg(profile)
            .arg("-w")
            .arg(&self.ws)
            .arg("--");
        c.args(cmd);
        c.env("PATH", PATH)
            .stdin(Stdio::null())
            .current_dir(&self.ws);
        c
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// `cc` into the workspace, as root (so the binary is root's), or None when
/// there is no C compiler here.
pub fn compile(f: &Fixture, name: &str, src: &str) -> Option<PathBuf> {
    if !Path::new("/usr/bin/cc").exists() {
        eprintln!("skipped: no C compiler at /usr/bin/cc");
        return None;
    }
    let c = f.root.join(format!("{name}.c"));
    fs::write(&c, src).unwrap();
    let bin = f.ws.join(name);
    let o = Command::new("/usr/bin/cc")
        .args(["-O1", "-Wall", "-o"])
        .arg(&bin)
        .arg(&c)
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert!(o.status.success(), "cc failed: {}", show(&o));
    Some(bin)
}

// --------------------------------------------------------------- output

/// Output as text, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit status, printing everything on failure.
#[track_caller]
pub fn assert_status(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", show(o));
}

/// `LABEL rest` lines, as printed by the agent, as a map (first word → the
/// rest of the line).
pub fn labelled(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ------------------------------------------------- unique names, waiting

/// A number no other test or process uses now: the time, this process's
/// pid and a counter, mixed.
pub fn unique() -> u64 {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = u64::from(N.fetch_add(1, Ordering::SeqCst));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 24) ^ (n << 40)
}

/// A token no other process on the machine has in its argv:
/// `BASE.NNNNNNNNN`, which `sleep` reads as a number of seconds.
pub fn token(base: u32) -> String {
    format!("{base}.{:09}", unique() % 1_000_000_000)
}

/// Polls `cond` every 20 ms until it yields a value or `limit` has passed.
pub fn poll_for<T>(limit: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` has passed.
pub fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll_for(limit, || cond().then_some(())).is_some()
}

// ------------------------------------------------------ host processes

/// argv of host process `pid`, if it exists (a zombie's is empty).
pub fn argv(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Every process on the host with its argv, from /proc/*/cmdline.
pub fn processes() -> Vec<(i32, Vec<String>)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        // Gone meanwhile: not listed.
        .filter_map(|pid| Some((pid, argv(pid)?)))
        .collect()
}

/// The processes one of whose arguments is exactly `token`. Exact match: a
/// shell whose script merely mentions the token (confine's own command
/// line, the agent's `sh -c`) doesn't count.
pub fn processes_with_arg(token: &str) -> Vec<(i32, Vec<String>)> {
    processes()
        .into_iter()
        .filter(|(_, argv)| argv.iter().any(|a| a == token))
        .collect()
}

/// The processes one of whose arguments contains `token`.
pub fn processes_mentioning(token: &str) -> Vec<(i32, Vec<String>)> {
    processes()
        .into_iter()
        .filter(|(_, argv)| argv.iter().any(|a| a.contains(token)))
        .collect()
}

// ---------------------------------------------------- the agent's uid

/// `setpriv` as the agent's uid and gid with no supplementary groups,
/// outside any sandbox; the caller adds options and the command.
pub fn setpriv_as_agent() -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        &AGENT_UID.to_string(),
        "--regid",
        &AGENT_GID.to_string(),
        "--clear-groups",
    ]);
    c
}

/// `cmd` as the agent's uid on the host, unconfined: the control that shows
/// plain permissions would allow what the sandbox refuses.
pub fn as_agent_unconfined(cmd: &[&str]) -> Output {
    setpriv_as_agent()
        .arg("--")
        .args(cmd)
        .env("PATH", PATH)
        .current_dir("/")
        .output()
        .expect("setpriv (util-linux) runs")
}

// ------------------------------------------------ confine in the background

impl Fixture {
    /// `confine run -p PROFILE -w WS -- CMD...` started in the background.
    pub fn spawn(&self, profile: &str, cmd: &[&str]) -> Sandbox {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let out = self.root.join(format!("stdout-{n}"));
        let err = self.root.join(format!("stderr-{n}"));
        let child = self
            .command(profile, cmd)
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Sandbox {
            child,
            status: None,
            out,
            err,
        }
    }

    /// `confine run -p PROFILE -w WS -- sh -c SCRIPT` in the background.
    pub fn spawn_sh(&self, profile: &str, script: &str) -> Sandbox {
        self.spawn(profile, &["/bin/sh", "-c", script])
    }
}

/// A `confine run` in the background. Its output goes to files in the
/// fixture (not pipes), so a process that survives holding them can't hang
/// the test. Dropped while running, it is killed by pid and reaped.
pub struct Sandbox {
    child: Child,
    status: Option<ExitStatus>,
    out: PathBuf,
    err: PathBuf,
}

impl Sandbox {
    /// The supervisor's host pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_none()
    }

    /// Sends `sig` to the supervisor, which must not have been reaped yet
    /// (so the pid can't have been reused).
    pub fn signal(&mut self, sig: libc::c_int) {
        assert!(
            self.running(),
            "confine ended before it was sent signal {sig}"
        );
        // SAFETY: kill with integer arguments; the pid is our unreaped child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// What confine printed and its status; it must have ended.
    pub fn output(&self) -> Output {
        Output {
            status: self.status.expect("confine has ended"),
            stdout: fs::read(&self.out).unwrap_or_default(),
            stderr: fs::read(&self.err).unwrap_or_default(),
        }
    }

    /// Waits (generously) for confine to end and returns what it printed.
    pub fn finish(&mut self) -> Output {
        if !poll(Duration::from_secs(30), || !self.running()) {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().unwrap());
            panic!("confine did not end within 30 s\n{}", show(&self.output()));
        }
        self.output()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.running() {
            // Child::kill signals only a child that hasn't been reaped.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------- cgroups

/// Every `confine-*` cgroup directory on the host (a few levels deep).
pub fn confine_cgroups() -> std::collections::BTreeSet<String> {
    fn walk(dir: &Path, depth: usize, out: &mut std::collections::BTreeSet<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with("confine-") {
                out.insert(e.path().display().to_string());
            }
            if depth < 4 {
                walk(&e.path(), depth + 1, out);
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(Path::new("/sys/fs/cgroup"), 0, &mut out);
    out
}
