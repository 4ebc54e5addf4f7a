//! `confine learn` (DESIGN.md §13, DESIGN-NOTES 55): run a command under a
//! base profile with its seccomp filters widened to observe, then write a
//! least-privilege profile that `extends` the base.
//!
//! - [`observe`]: the supervisor's side, reading each observed call's path
//!   or address and letting it run;
//! - [`generate`]: from what was seen to grants, grouped, with why;
//! - here: the command's flow, the YAML, `--diff`, and writing the file
//!   (checked, atomic, never over an existing file unless `--force`, never
//!   inside the workspace unless `--force`).

pub mod generate;
pub mod observe;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use generate::{Grant, Learned};

use crate::launch::{self, EXIT_REFUSED};
use crate::plan::{self, Plan, Request};
use crate::profile::NetworkMode;

/// What `confine learn` was asked.
pub struct Options {
    pub base: String,
    pub workspace: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub diff: Option<String>,
    pub force: bool,
    pub command: Vec<OsString>,
}

/// Runs `confine learn`; returns its exit status (errors are said here).
pub fn run(o: &Options) -> u8 {
    match learn(o) {
        Ok(code) => code,
        Err(e) => {
            crate::say!("confine: {e}");
            EXIT_REFUSED
        }
    }
}

fn err(what: &str, r#where: impl std::fmt::Display, why: impl std::fmt::Display) -> String {
    format!("{what} ({where}): {why}")
}

fn learn(o: &Options) -> Result<u8, String> {
    let req = |profile: &str, command: Vec<OsString>| Request {
        profile: profile.to_string(),
        workspace: o.workspace.clone(),
        overrides: Vec::new(),
        audit_log: None,
        command,
    };
    let mut plan = Plan::build(&req(&o.base, o.command.clone())).map_err(|e| e.to_string())?;
    // The output is checked before anything runs.
    let output = match &o.output {
        Some(out) => Some(target(out, &plan.workspace, o.force)?),
        None => None,
    };
    let against = match &o.diff {
        Some(d) => Some(Plan::build(&req(d, Vec::new())).map_err(|e| e.to_string())?),
        None => None,
    };
    plan.seccomp.learn().map_err(|e| e.to_string())?;
    let status = launch::run_with(&plan, launch::Terminal::Auto).map_err(|e| e.to_string())?;
    let seen = observe::take().ok_or_else(|| {
        err(
            "learn",
            "seccomp",
            "the sandbox's listener never reached the supervisor; nothing was observed",
        )
    })?;
    let mut seen = seen;
    command_itself(&plan, &mut seen);
    let learned = generate::learn(&plan, &seen);
    let yaml = render(&learned, &o.base, &o.command);
    if let Some(out) = &output {
        write(out, &yaml, o.force)?;
        crate::say!(
            "confine: learn: wrote {} ({} read, {} write, {} exec grant(s), {} syscall(s) beyond the baseline, {} path(s) seen and not granted)",
            out.display(),
            learned.read.len(),
            learned.write.len(),
            learned.exec.len(),
            learned.syscalls.len(),
            learned.refused.len()
        );
    }
    if let Some(other) = &against {
        let d = diff(&learned, other);
        crate::out::stdout(&d).map_err(|e| err("learn", "stdout", e))?;
    } else if output.is_none() {
        crate::out::stdout(&yaml).map_err(|e| err("learn", "stdout", e))?;
    }
    if status != 0 {
        crate::say!(
            "confine: learn: the command exited with status {status}; the profile has what it did until then"
        );
    }
    Ok(status)
}

/// The command's own executable, found as the launcher finds it: the run
/// may not show it, as its first execve comes from a process that is not
/// yet dumpable, whose memory an unprivileged supervisor can't read.
fn command_itself(plan: &Plan, seen: &mut observe::Observed) {
    let Some(argv0) = plan.exec.argv.first() else {
        return;
    };
    let argv0 = Path::new(std::ffi::OsStr::from_bytes(argv0.as_bytes()));
    let found = if argv0.as_os_str().as_bytes().contains(&b'/') {
        Some(plan.cwd.join(argv0))
    } else {
        let path = plan
            .exec
            .envp
            .iter()
            .find_map(|kv| kv.as_bytes().strip_prefix(b"PATH="))
            .unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
        path.split(|b| *b == b':')
            .map(|d| Path::new(std::ffi::OsStr::from_bytes(d)).join(argv0))
            .find(|p| p.is_absolute() && p.is_file())
    };
    if let Some(p) = found {
        seen.paths
            .entry(observe::normalize(&p))
            .or_default()
            .insert(observe::Use::Exec);
    }
}

/// Where the profile goes: an absolute path in an existing directory, not
/// an existing file (unless `force`), not inside the workspace (unless
/// `force`): a profile the agent can edit is no boundary.
fn target(out: &Path, workspace: &Path, force: bool) -> Result<PathBuf, String> {
    let shown = out.display();
    let abs = if out.is_absolute() {
        out.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| err("learn", format!("-o {shown}"), e))?
            .join(out)
    };
    let name = abs
        .file_name()
        .ok_or_else(|| err("learn", format!("-o {shown}"), "names no file"))?;
    let parent = abs.parent().unwrap_or(Path::new("/"));
    let dir = std::fs::canonicalize(parent).map_err(|e| {
        err(
            "learn",
            format!("-o {shown}"),
            format!("its directory {}: {e}", parent.display()),
        )
    })?;
    let abs = dir.join(name);
    if std::fs::symlink_metadata(&abs).is_ok_and(|m| !m.file_type().is_file()) {
        return Err(err(
            "learn",
            format!("-o {shown}"),
            "not a regular file (a directory, a symlink or a device); name a file",
        ));
    }
    if !force {
        if std::fs::symlink_metadata(&abs).is_ok() {
            return Err(err(
                "learn",
                format!("-o {shown}"),
                "the file exists; hint: --force to replace it",
            ));
        }
        let ws = std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        if dir.starts_with(&ws) {
            return Err(err(
                "learn",
                format!("-o {shown}"),
                format!(
                    "inside the workspace {}, where the agent could edit its own profile; hint: write it elsewhere, or --force",
                    ws.display()
                ),
            ));
        }
    }
    Ok(abs)
}

/// Writes the profile atomically: a new file beside the target, checked
/// as `confine check` would, then renamed over (with `force`) or into
/// place (never over a file that appeared meanwhile).
fn write(out: &Path, yaml: &str, force: bool) -> Result<(), String> {
    let dir = out.parent().unwrap_or(Path::new("/"));
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.learn-{}", std::process::id()));
    let shown = out.display();
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| err("learn", format!("-o {shown}"), e))?;
        f.write_all(yaml.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| err("learn", format!("-o {shown}"), e))?;
        plan::check(&tmp.to_string_lossy()).map_err(|e| {
            err(
                "learn",
                format!("-o {shown}"),
                format!("the learned profile doesn't check ({e}); nothing written"),
            )
        })?;
        rename(&tmp, out, force).map_err(|e| {
            err(
                "learn",
                format!("-o {shown}"),
                if e.raw_os_error() == Some(libc::EEXIST) {
                    "the file appeared meanwhile; hint: --force to replace it".to_string()
                } else {
                    e.to_string()
                },
            )
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn rename(from: &Path, to: &Path, replace: bool) -> std::io::Result<()> {
    if replace {
        return std::fs::rename(from, to);
    }
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: two valid C strings; renameat2 only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A path as the profile writes it: `{workspace}/...` beneath the
/// workspace, quoted as a YAML (JSON) string.
fn shown(l: &Learned, p: &Path) -> String {
    let s = match p.strip_prefix(&l.workspace) {
        Ok(rel) if rel.as_os_str().is_empty() => "{workspace}".to_string(),
        Ok(rel) => format!("{{workspace}}/{}", rel.display()),
        Err(_) => p.display().to_string(),
    };
    serde_json::to_string(&s).unwrap_or_default()
}

/// Text fit for a YAML comment: one line, printable.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn list(out: &mut String, l: &Learned, key: &str, grants: &[Grant], indent: &str, add: bool) {
    if grants.is_empty() {
        let _ = writeln!(
            out,
            "{indent}{key}: {}",
            if add { "{add: []}" } else { "[]" }
        );
        return;
    }
    if add {
        let _ = writeln!(out, "{indent}{key}:");
        let _ = writeln!(out, "{indent}  add:");
    } else {
        let _ = writeln!(out, "{indent}{key}:");
    }
    let inner = if add {
        format!("{indent}    ")
    } else {
        format!("{indent}  ")
    };
    for g in grants {
        let _ = writeln!(out, "{inner}# {}", comment(&g.why));
        let _ = writeln!(out, "{inner}- {}", shown(l, &g.written));
    }
}

/// `network.allow` of the hosts it reached; those refused as comments.
fn hosts(out: &mut String, l: &Learned, hosts: &[String], add: bool) {
    let list: Vec<String> = hosts
        .iter()
        .map(|h| serde_json::to_string(h).unwrap_or_default())
        .collect();
    let _ = writeln!(out, "  # the hosts it reached through the proxy");
    if add {
        let _ = writeln!(out, "  allow: {{add: [{}]}}", list.join(", "));
    } else {
        let _ = writeln!(out, "  allow: [{}]", list.join(", "));
    }
    if !l.hosts_refused.is_empty() {
        let r: Vec<String> = l.hosts_refused.iter().map(|h| comment(h)).collect();
        let _ = writeln!(
            out,
            "  # Refused by the base, not granted: {}",
            r.join(", ")
        );
    }
}

fn mode(m: NetworkMode) -> &'static str {
    m.name()
}

/// The learned profile's YAML.
pub fn render(l: &Learned, base: &str, command: &[OsString]) -> String {
    let cmd: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cmd = comment(&cmd.join(" "));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Learned by `confine learn -p {}` from: {cmd}",
        comment(base)
    );
    let _ = writeln!(
        out,
        "# Each grant says what the run did there. Review before use: a run shows what one run needed, not what the command may need."
    );
    for n in &l.notes {
        let _ = writeln!(out, "# Note: {}", comment(n));
    }
    let _ = writeln!(out, "version: 1");
    let _ = writeln!(out, "name: learned");
    let _ = writeln!(
        out,
        "description: {}",
        serde_json::to_string(&format!("learned from: {cmd}")).unwrap_or_default()
    );
    // A file is named absolutely: `extends` is relative to the learned
    // profile's own file, wherever it goes.
    let base_ref = if crate::profile::builtin::get(base).is_some() {
        base.to_string()
    } else {
        std::fs::canonicalize(base)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| base.to_string())
    };
    let _ = writeln!(
        out,
        "extends: {}",
        serde_json::to_string(&base_ref).unwrap_or_default()
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "filesystem:");
    list(&mut out, l, "read", &l.read, "  ", false);
    list(&mut out, l, "write", &l.write, "  ", false);
    list(&mut out, l, "exec", &l.exec, "  ", false);
    if !l.protect.is_empty() {
        let _ = writeln!(out, "  # kept read-only inside the write grants");
        let _ = writeln!(out, "  protect:");
        let _ = writeln!(out, "    add:");
        for p in &l.protect {
            let _ = writeln!(out, "      - \"{}?\"", shown(l, p).trim_matches('"'));
        }
    }
    if !l.refused.is_empty() {
        let _ = writeln!(out, "  # Seen, not granted:");
        for (p, why) in &l.refused {
            let _ = writeln!(
                out,
                "  #   {}: {}",
                comment(&p.display().to_string()),
                comment(why)
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "network:");
    let _ = writeln!(out, "  # {}", comment(&l.network.1));
    let _ = writeln!(out, "  mode: {}", mode(l.network.0));
    if l.network.0 == NetworkMode::Proxy {
        hosts(&mut out, l, &l.hosts, false);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "syscalls:");
    if !l.denied.is_empty() {
        let _ = writeln!(
            out,
            "  # Denied during the run, not granted: {}",
            comment(&l.denied.join(", "))
        );
    }
    if l.syscalls.is_empty() {
        let _ = writeln!(out, "  allow: []");
    } else {
        let _ = writeln!(out, "  # called beyond the baseline allowlist");
        let _ = writeln!(out, "  allow: [{}]", l.syscalls.join(", "));
    }
    let _ = writeln!(out, "  on_violation: errno");
    let _ = writeln!(out);
    let _ = writeln!(out, "compat: strict");
    out
}

/// What `other` lacks of the learned profile, as YAML to add to it.
pub fn diff(l: &Learned, other: &Plan) -> String {
    let lacks = |grants: &[Grant], pick: fn(&crate::plan::PathGrant) -> bool| -> Vec<Grant> {
        grants
            .iter()
            .filter(|g| {
                !other
                    .filesystem
                    .grants
                    .iter()
                    .any(|o| pick(o) && g.path.starts_with(&o.path))
            })
            .cloned()
            .collect()
    };
    let read = lacks(&l.read, |o| o.read);
    let write = lacks(&l.write, |o| o.write);
    let exec = lacks(&l.exec, |o| o.exec);
    let syscalls: Vec<&String> = l
        .syscalls
        .iter()
        .filter(|s| !other.seccomp.allow.contains(&s.as_str()))
        .collect();
    let net = other.network.mode == NetworkMode::None && l.network.0 != NetworkMode::None;
    // Proxy mode: the hosts `other`'s `allow` doesn't reach.
    let allows = |h: &str| {
        let (host, port) = match h.rsplit_once(':') {
            Some((host, p)) => (host, p.parse().unwrap_or(443)),
            None => (h, 443),
        };
        other.network.mode == NetworkMode::Proxy
            && other
                .network
                .egress
                .as_ref()
                .is_some_and(|e| e.allow.iter().any(|r| r.matches(host, port)))
    };
    let missing_hosts: Vec<String> = l.hosts.iter().filter(|h| !allows(h)).cloned().collect();
    let net = net || !missing_hosts.is_empty();
    let mut out = String::new();
    if read.is_empty() && write.is_empty() && exec.is_empty() && syscalls.is_empty() && !net {
        let _ = writeln!(
            out,
            "# {} lacks nothing the run used",
            comment(&other.profile.name)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "# What {} lacks of what the run used (add to it):",
        comment(&other.profile.name)
    );
    if !(read.is_empty() && write.is_empty() && exec.is_empty()) {
        let _ = writeln!(out, "filesystem:");
        for (k, g) in [("read", &read), ("write", &write), ("exec", &exec)] {
            if !g.is_empty() {
                list(&mut out, l, k, g, "  ", true);
            }
        }
    }
    if net {
        let _ = writeln!(out, "network:");
        let _ = writeln!(out, "  # {}", comment(&l.network.1));
        if other.network.mode != l.network.0 {
            let _ = writeln!(out, "  mode: {}", mode(l.network.0));
        }
        if !missing_hosts.is_empty() {
            hosts(
                &mut out,
                l,
                &missing_hosts,
                other.network.mode == NetworkMode::Proxy,
            );
        }
    }
    if !syscalls.is_empty() {
        let names: Vec<&str> = syscalls.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(out, "syscalls:");
        let _ = writeln!(out, "  allow: {{add: [{}]}}", names.join(", "));
    }
    out
}
