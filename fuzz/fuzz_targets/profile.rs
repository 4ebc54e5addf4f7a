//! Fuzz target `profile`: profile parsing, merging and validation must never
//! panic, whatever the text.
//!
//! One input is used three ways:
//! - the whole text as a profile file (`profile::from_text`), formatting
//!   whatever comes back, and, when it parses, `plan::check` on the same text
//!   written to a file (validation against the filesystem, lints, syscalls);
//! - `profile::locate::locate` on the text, for the key paths errors use;
//! - its first line as one `--set KEY=VALUE` argument on top of `default`.
//!
//! Run with `scripts/fuzz.sh [SECONDS]`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use confine::profile::{self, locate, Profile};
use libfuzzer_sys::fuzz_target;

/// Key paths of the shapes that `Origin::error` and the checks in plan/
/// hand to `locate`.
const KEYS: &[&str] = &[
    "",
    "version",
    "extends",
    "workspace",
    "user",
    "network.mode",
    "audit.log",
    "filesystem.read[0]",
    "filesystem.write[1]",
    "filesystem.exec.add[0]",
    "filesystem.protect.remove[2]",
    "filesystem.tmp",
    "syscalls.allow[0]",
    "env.keep[3]",
    "env.keep.add[0]",
    "capabilities[0]",
    "network.socket_families.add[0]",
    "network.connect_tcp.remove[0]",
    "network.allow[0]",
    "network.deny.add[1]",
    "network.hosts.api.example.com",
    "network.budget",
    "limits.memory",
    "a.b.c.d[7]",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    match profile::from_text("fuzz.yaml", text) {
        Ok(p) => {
            exercise(&p);
            check_file(text);
        }
        Err(e) => {
            let _ = format!("{e}");
            let _ = format!("{e:?}");
        }
    }

    // `locate` walks the whole text whatever the key; two keys per input
    // (one picked by the input's length) and one taken from its last line
    // keep it from dominating the run time.
    let _ = locate::locate(text, "filesystem.read[0]");
    let _ = locate::locate(text, KEYS[text.len() % KEYS.len()]);
    if let Some(last) = text.lines().last() {
        let _ = locate::locate(text, last);
    }

    // The first line as a `--set` argument. Without a `=` it is refused
    // before anything is parsed, after `default` was loaded for nothing.
    let line = text.split('\n').next().unwrap_or("");
    if !line.contains('=') {
        return;
    }
    match profile::load("default", &[line.to_string()]) {
        Ok(p) => exercise(&p),
        Err(e) => {
            let _ = format!("{e}");
        }
    }
});

/// Formats every part of a merged profile, and checks that values print in
/// a form that parses back to the same value (`explain` prints them so).
fn exercise(p: &Profile) {
    let _ = format!("{p:?}");
    let _ = p.sha256();
    for list in [
        &p.filesystem.read,
        &p.filesystem.write,
        &p.filesystem.exec,
        &p.filesystem.protect,
    ] {
        for item in list {
            let s = item.value.to_string();
            assert_eq!(
                s.parse().ok().as_ref(),
                Some(&item.value),
                "PathSpec round-trip: {s}"
            );
            // Every written item can be located (this builds the error).
            let _ = format!("{}", item.error("filesystem", "x"));
            let _ = profile::Warning::at(item, "filesystem", "x").to_string();
        }
    }
    if let Some(t) = &p.filesystem.tmp {
        if let Some(size) = t.size {
            let s = size.to_string();
            assert_eq!(s.parse().ok(), Some(size), "Size round-trip: {s}");
        }
    }
    let u = p.user.value.to_string();
    assert_eq!(
        u.parse().ok().as_ref(),
        Some(&p.user.value),
        "UserSpec round-trip: {u}"
    );
    let _ = format!("{}", p.user.error("user", "x"));
    let _ = format!("{}", p.network.mode.error("network.mode", "x"));
    // Egress entries: what the plan keeps as written parses back to the
    // same entry, and every one can be located.
    let n = &p.network;
    for a in &n.allow {
        let e: profile::egress::AllowEntry =
            a.value.0.text.parse().expect("allow entry parses back");
        assert_eq!(e, a.value, "allow round-trip: {}", a.value.0.text);
        let _ = format!("{}", a.error("network.allow", "x"));
    }
    for d in &n.deny {
        let e: profile::egress::DenyEntry = d.value.0.text.parse().expect("deny entry parses back");
        assert_eq!(e, d.value, "deny round-trip: {}", d.value.0.text);
        let _ = format!("{}", d.error("network.deny", "x"));
    }
    for h in &n.hosts {
        let _ = format!("{}", h.error("network.hosts", "x"));
    }
    if let Some(b) = &n.budget {
        let _ = format!("{}", b.error("network.budget", "x"));
    }
    for c in &p.capabilities {
        let _ = c.value.to_string();
        let _ = format!("{}", c.error("capabilities", "x"));
    }
    for s in p.syscalls.allow.iter().chain(&p.syscalls.deny) {
        let _ = format!("{}", s.error("syscalls", "x"));
    }
    for k in &p.env.keep {
        let _ = format!("{}", k.error("env.keep", "x"));
    }
    let l = &p.limits;
    for d in [l.wall_time, l.grace].into_iter().flatten() {
        let s = d.to_string();
        assert_eq!(s.parse().ok(), Some(d), "Duration round-trip: {s}");
    }
    for size in [l.memory, l.file_size].into_iter().flatten() {
        let s = size.to_string();
        assert_eq!(s.parse().ok(), Some(size), "Size round-trip: {s}");
    }
    if let Some(w) = &p.workspace {
        let _ = format!("{}", w.error("workspace", "x"));
    }
    if let Some(a) = &p.audit_log {
        let _ = format!("{}", a.error("audit.log", "x"));
    }
}

/// `plan::check` reads a profile by path. The text parsed with `from_text`,
/// so its `extends` (if any) names a built-in, never another file: checking
/// it only stats the paths it lists.
fn check_file(text: &str) {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("confine-fuzz-{}.yaml", std::process::id()))
    });
    if std::fs::write(path, text).is_err() {
        return;
    }
    match confine::plan::check(path.to_str().expect("temp path is UTF-8")) {
        Ok(warnings) => {
            for w in warnings {
                let _ = w.to_string();
            }
        }
        Err(e) => {
            let _ = format!("{e}");
        }
    }
}
