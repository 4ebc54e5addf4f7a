//! The real agent clients, installed from their registries once into
//! `target/agents` and shared by the tests that run them
//! (`tests/agent_profiles.rs`, `tests/agent_clients.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{show, skip_or_fail, PATH};

/// Where the clients are installed.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/agents")
}

/// Makes `dir` readable and searchable by everyone: the agent's uid runs
/// what root installed.
pub fn readable(dir: &Path) {
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
}

/// `npm install PACKAGE` into target/agents/NAME once (later runs reuse
/// it); the installation's directory (its executables are in
/// `node_modules/.bin`), or None when npm or the registry isn't there
/// (skipped, or failed under CONFINE_REQUIRE_KERNEL=1).
pub fn npm(test: &str, name: &str, package: &str, bin: &str) -> Option<PathBuf> {
    let at = dir().join(name);
    let exe = at.join("node_modules/.bin").join(bin);
    if !exe.exists() {
        if !Path::new("/usr/bin/npm").exists() {
            skip_or_fail(test, "npm is not installed at /usr/bin/npm");
            return None;
        }
        fs::create_dir_all(&at).unwrap();
        let o = Command::new("/usr/bin/npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&at)
            .arg(package)
            .env("PATH", PATH)
            .env("npm_config_cache", dir().join("npm-cache"))
            .output()
            .unwrap();
        if !o.status.success() || !exe.exists() {
            skip_or_fail(test, &format!("npm install {package} failed: {}", show(&o)));
            return None;
        }
    }
    readable(&at);
    Some(at)
}
