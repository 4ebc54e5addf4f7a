//! Warnings about what a valid profile lets the agent do: `explain`, `run`
//! and `check` print them; none of them stops a launch.

use std::path::Path;

use super::egress::{HostPattern, DEFAULT_PORT};
use crate::profile::{NetworkMode, PathSpec, Profile, Sourced, Warning};
use crate::sandbox::landlock as ll;
use crate::syscalls;

/// Warnings about what the profile lets the agent do.
pub(super) fn lint(p: &Profile, warnings: &mut Vec<Warning>) {
    let n = &p.network;
    if n.mode.value == NetworkMode::Host && n.connect_tcp.is_empty() && n.bind_tcp.is_empty() {
        warnings.push(Warning::at(
            &n.mode,
            "network.mode",
            "host network without connect_tcp or bind_tcp: no TCP connection or bind is allowed \
             (UDP still is); list the ports, or write `connect_tcp: any` for every port",
        ));
    }
    if n.mode.value != NetworkMode::Host && !(n.connect_tcp.is_empty() && n.bind_tcp.is_empty()) {
        warnings.push(Warning::at(
            &n.mode,
            "network.mode",
            "connect_tcp/bind_tcp only matter with network.mode host: the sandbox has a network of its own",
        ));
    }
    if n.mode.value == NetworkMode::Proxy {
        egress_warnings(p, warnings);
    }
    approval_warnings(p, warnings);
    for f in &n.socket_families {
        if !crate::families::DEFAULT.contains(&f.value.name()) {
            let key = f
                .origin
                .as_ref()
                .map_or("network.socket_families".to_string(), |o| o.key.clone());
            warnings.push(Warning::at(
                f,
                &key,
                format!(
                    "the agent may open {} sockets, kernel code that sandboxes usually keep out of reach",
                    f.value
                ),
            ));
        }
    }
    for (i, s) in p.syscalls.allow.iter().enumerate() {
        if syscalls::ALLOWABLE_DENY.contains(&s.value.0.as_str()) {
            let key = s
                .origin
                .as_ref()
                .map_or(format!("syscalls.allow[{i}]"), |o| o.key.clone());
            let what = if s.value.0 == "perf_event_open" {
                "the agent may use the kernel's performance counters (as perf_event_paranoid allows)"
            } else {
                "the agent may read and change the memory of its own processes (debuggers); the init and everything outside stay out of reach"
            };
            warnings.push(Warning::at(s, &key, format!("`{}`: {what}", s.value.0)));
        }
    }
    if p.syscalls.on_violation == crate::profile::OnViolation::Log {
        // Which layer set it isn't kept; the last layer is what was asked for.
        let at = p.sources.last().map_or(String::new(), |s| s.name.clone());
        warnings.push(Warning {
            key: "syscalls.on_violation".into(),
            at,
            message: "`log` ALLOWS every denylisted call (ptrace, mount, bpf, keyctl, unshare, ...): \
                      the kernel only logs them, where its audit is on; the denylist protects nothing. \
                      Use `errno` (the default: denied, and reported in `denied` records) to keep it"
                .into(),
        });
    }
    for (i, k) in p.env.keep.iter().enumerate() {
        let name = &k.value.0;
        if let Some(why) = crate::sandbox::env::risk(name) {
            warnings.push(Warning::at(
                k,
                &format!("env.keep[{i}]"),
                format!("keeping {name} lets the caller's environment change what the agent's programs load or run: {why}"),
            ));
        }
    }
    if let Some((at, before)) = &p.env.keep_replaced {
        let dropped: Vec<&str> = ["PATH", "TERM", "LANG"]
            .into_iter()
            .filter(|v| before.iter().any(|k| k.matches(v.as_bytes())))
            .filter(|v| !p.env.keeps(v) && !p.env.set.contains_key(*v))
            .collect();
        if !dropped.is_empty() {
            warnings.push(Warning::at(
                at,
                "env.keep",
                format!(
                    "this list replaces the inherited one and drops {}, which it kept: write \
                     `keep: {{add: [...]}}` to add to it, or list them too",
                    dropped.join(", ")
                ),
            ));
        }
    }
    for (i, c) in p.capabilities.iter().enumerate() {
        warnings.push(Warning::at(
            c,
            &format!("capabilities[{i}]"),
            format!("the agent keeps {}", c.value),
        ));
    }
}

/// Warnings for the grants that put host unix sockets within the agent's
/// reach ([`crate::host_sockets`]); `grants` are (as written, resolved).
pub(super) fn socket_warnings<'a>(
    p: &Profile,
    ws: Option<&Path>,
    grants: impl IntoIterator<Item = (&'a Path, &'a Path)>,
    abi: u32,
) -> Vec<Warning> {
    let restricted = ll::restricts_unix_connect(abi);
    let private_tmp = p.filesystem.tmp.is_some();
    let mut out = Vec::new();
    for (written, real) in grants {
        let Some(why) = crate::host_sockets::exposure(real, restricted, private_tmp) else {
            continue;
        };
        let via = if written == real {
            real.display().to_string()
        } else {
            format!("{} -> {}", written.display(), real.display())
        };
        let message = if std::fs::symlink_metadata(real).is_ok_and(|m| m.is_dir()) {
            format!("{via} {why}: {}", crate::host_sockets::advice(abi))
        } else {
            format!("{via} {why}")
        };
        out.push(match grant_origin(p, ws, written) {
            Some((item, key)) => Warning::at(item, &key, message),
            None => Warning {
                key: "filesystem".into(),
                at: written.display().to_string(),
                message,
            },
        });
    }
    out
}

/// Warnings for write grants on single files: tools save a file by writing
/// a new one next to it and renaming it over (or take a lock file beside
/// it), and the directory isn't writable, so the save fails (`EROFS ...
/// .claude.json.lock`). confine doesn't widen such a grant by itself; the
/// warning names the directory to grant instead. `grants` are (as written,
/// resolved) of the write grants.
pub(super) fn file_write_warnings<'a>(
    p: &Profile,
    ws: Option<&Path>,
    grants: impl IntoIterator<Item = (&'a Path, &'a Path)>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    for (written, real) in grants {
        if !std::fs::symlink_metadata(real).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let dir = written.parent().unwrap_or(Path::new("/"));
        let message = format!(
            "a write grant on one file: the agent can change it in place, but tools that save \
             atomically (a temporary file renamed over it, or a lock file next to it) fail; \
             grant a directory of its own ({}), or keep the tool's state in the home (`home: private`)",
            dir.display()
        );
        out.push(match grant_origin(p, ws, written) {
            Some((item, key)) => Warning::at(item, &key, message),
            None => Warning {
                key: "filesystem.write".into(),
                at: written.display().to_string(),
                message,
            },
        });
    }
    out
}

/// The profile entry that grants `written` (a path as written, with
/// `{workspace}` expanded), and its key.
fn grant_origin<'a>(
    p: &'a Profile,
    ws: Option<&Path>,
    written: &Path,
) -> Option<(&'a Sourced<PathSpec>, String)> {
    let lists = [
        ("filesystem.read", &p.filesystem.read),
        ("filesystem.write", &p.filesystem.write),
        ("filesystem.exec", &p.filesystem.exec),
    ];
    for (key, list) in lists {
        for (i, item) in list.iter().enumerate() {
            if item.value.expand(ws).as_deref() == Some(written) {
                let key = item
                    .origin
                    .as_ref()
                    .map(|o| o.key.clone())
                    .unwrap_or_else(|| format!("{key}[{i}]"));
                return Some((item, key));
            }
        }
    }
    None
}

/// Proxy mode: a policy that can't do what it seems to say.
fn egress_warnings(p: &Profile, warnings: &mut Vec<Warning>) {
    let n = &p.network;
    // Secrets' routes are reachable without any `allow` entry.
    if n.allow.is_empty() && n.ask.is_empty() && p.secrets.is_empty() {
        warnings.push(Warning::at(
            &n.mode,
            "network.mode",
            "network.mode proxy with an empty allow: no host is reachable (network.mode loopback says the same more cheaply)",
        ));
    }
    let e = super::net::egress(p);
    for a in &n.allow {
        let entry = &a.value.0;
        let port = entry.port.unwrap_or(DEFAULT_PORT);
        let covered = e.deny.iter().find(|d| {
            d.port.is_none_or(|q| q == port)
                && match (&d.pattern, &entry.pattern) {
                    (HostPattern::Exact(x), HostPattern::Exact(y)) => x == y,
                    (HostPattern::Beneath(_), HostPattern::Exact(y)) => d.pattern.matches(y),
                    (HostPattern::Beneath(x), HostPattern::Beneath(y)) => {
                        x == y || d.pattern.matches(y)
                    }
                    (HostPattern::Exact(_), HostPattern::Beneath(_)) => false,
                }
        });
        if let Some(d) = covered {
            let key = a
                .origin
                .as_ref()
                .map_or("network.allow".into(), |o| o.key.clone());
            warnings.push(Warning::at(
                a,
                &key,
                format!("`{}` is always refused by deny `{}`", entry.text, d.text),
            ));
        }
    }
    for h in &n.hosts {
        let (name, addr) = &h.value;
        let key = h
            .origin
            .as_ref()
            .map_or("network.hosts".into(), |o| o.key.clone());
        // A pin is used by an entry of its name, or of its address, or by
        // a secret's upstream (reached through its route only).
        let used = e
            .allow
            .iter()
            .any(|a| a.pattern.matches(name) || a.pattern.matches(&addr.to_string()))
            || p.secrets
                .iter()
                .any(|s| crate::plan::secrets::resolve(&s.value).upstream.host == *name);
        if !used {
            warnings.push(Warning::at(
                h,
                &key,
                format!("`{name}` is pinned, but no allow entry admits it"),
            ));
        }
        if addr.is_loopback() {
            warnings.push(Warning::at(
                h,
                &key,
                format!(
                    "`{name}` is pinned to {addr}: the proxy runs on the host, so this reaches the host's own services on the allowed ports"
                ),
            ));
        }
    }
}

/// `approval:` with nothing to answer: no `limits.checkpoint_every` and
/// no `network.ask` (likely a key left behind, or one in the wrong place).
fn approval_warnings(p: &Profile, warnings: &mut Vec<Warning>) {
    let a = &p.approval;
    let set = a.command.is_some() || a.timeout.is_some() || a.default.is_some();
    if set && p.limits.checkpoint_every.is_none() && p.network.ask.is_empty() {
        let e = p.error_at("approval", "");
        let at = match e.pos {
            Some(pos) => format!("{}:{}:{}", e.source_name, pos.line, pos.col),
            None => e.source_name,
        };
        warnings.push(Warning {
            key: "approval".into(),
            at,
            message: "approval without limits.checkpoint_every or network.ask: nothing will ask"
                .into(),
        });
    }
}
