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
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The agent's uid and gid in tests: no passwd entry, owns only fixtures.
pub const AGENT_UID: u32 = 60123;
pub const AGENT_GID: u32 = 60123;

/// A PATH that reaches the system's tools and nothing of the caller's.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The built binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_confine")
}

/// Skips (returns false) or, with CONFINE_REQUIRE_KERNEL=1, fails when the
/// test can't run here: it needs root for namespaces and the uid switch.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no arguments and can't fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    let why = format!("{test}: needs root (namespaces, uid switch)");
    if std::env::var_os("CONFINE_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("{why}, and CONFINE_REQUIRE_KERNEL=1");
    }
    eprintln!("skipped: {why}");
    false
}

/// Fails or skips unless the kernel's Landlock ABI is at least `abi`.
pub fn require_landlock(test: &str, abi: u32) -> bool {
    // SAFETY: the version query reads no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if v >= abi as i64 {
        return true;
    }
    let why = format!("{test}: needs Landlock ABI {abi}, kernel has {v}");
    if std::env::var_os("CONFINE_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("{why}, and CONFINE_REQUIRE_KERNEL=1");
    }
    eprintln!("skipped: {why}");
    false
}

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
