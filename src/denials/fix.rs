//! For a denial: what it was in words, the profile key that would allow
//! it, the change to paste (YAML), and whether a careful user should make
//! it at all.

use std::path::Path;

use serde::Serialize;

use super::runs::Context;
use super::{Denial, Kind};
use crate::syscalls;

/// The change that would allow a denial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// The profile key (`filesystem.read`, `network.allow`, ...); `None`
    /// when no profile may allow it.
    pub key: Option<String>,
    /// The YAML to paste into the profile.
    pub yaml: Option<String>,
    /// Why a careful user should not allow it, if so.
    pub careful: Option<String>,
}

/// The reason of a seccomp record whose call `on_violation: log` let through.
pub const LOGGED: &str = "allowed and logged (on_violation: log)";

/// `s` safe to print on a terminal: what a process in the sandbox chose
/// (a path, a host name) must not reach the caller's terminal as control
/// sequences. Control characters (C0, DEL, C1) and backslashes are escaped.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The denial in a few words: `ptrace (syscall)`, `read of /etc/x`,
/// `connect to example.com:443`; safe to print ([`printable`]).
pub fn what(d: &Denial) -> String {
    let o = |s: &Option<String>| printable(s.as_deref().unwrap_or("?"));
    match d.kind {
        Kind::Seccomp => format!("syscall {}", o(&d.syscall)),
        Kind::Landlock => format!(
            "{} of {}",
            d.access.as_ref().map_or("access".into(), |a| a.join(",")),
            o(&d.path)
        ),
        Kind::Network => match d.port {
            Some(p) => format!("connect to {}:{p}", o(&d.host)),
            None => format!("name lookup of {}", o(&d.host)),
        },
    }
}

/// `denied`, or `allowed` for a call `on_violation: log` let through.
pub fn verb(d: &Denial) -> &'static str {
    if d.reason.as_deref() == Some(LOGGED) {
        "allowed (on_violation: log)"
    } else {
        "denied"
    }
}

/// The stderr hint: which key would allow it, or why none may.
pub fn hint(d: &Denial, c: &Context) -> String {
    let f = fix(d, c);
    if d.reason.as_deref() == Some(LOGGED) {
        return "it ran; `syscalls.on_violation: errno` would deny it".into();
    }
    match (&f.key, &f.careful) {
        (Some(k), None) => format!("{k} would allow it"),
        (Some(k), Some(why)) => format!("{k} would allow it, but {}", printable(why)),
        (None, Some(why)) => printable(why),
        (None, None) => "no profile key allows it".into(),
    }
}

/// What landlock access a blocker means for the profile.
fn fs_key(access: &[String]) -> &'static str {
    let execute = access.iter().any(|a| a == "fs.execute");
    let read_only = access
        .iter()
        .all(|a| a == "fs.read_file" || a == "fs.read_dir" || a == "fs.execute");
    if execute {
        "exec"
    } else if read_only {
        "read"
    } else {
        "write"
    }
}

/// Paths a careful user doesn't grant: the profile's protected paths, the
/// audit log, and the host's secrets and kernel interfaces.
fn sensitive(path: &str, c: &Context) -> Option<String> {
    let p = Path::new(path);
    if let Some(pr) = c.protect.iter().find(|pr| p.starts_with(pr)) {
        return Some(format!(
            "{} is protected by filesystem.protect",
            pr.display()
        ));
    }
    if c.audit_log.as_deref().is_some_and(|a| p == a) {
        return Some("it is the audit log".into());
    }
    const SECRETS: &[&str] = &[
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/root",
        "/proc",
        "/sys",
        "/boot",
        "/var/lib/confine",
    ];
    if let Some(s) = SECRETS.iter().find(|s| p.starts_with(s)) {
        return Some(format!("{s} is host state the agent should not reach"));
    }
    const HOME_SECRETS: &[&str] = &[
        ".ssh",
        ".gnupg",
        ".aws",
        ".config/gcloud",
        ".kube",
        ".netrc",
        ".docker",
    ];
    if p.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        HOME_SECRETS
            .iter()
            .any(|s| s.split('/').next() == Some(c.as_ref()))
    }) {
        return Some("it holds credentials".into());
    }
    None
}

/// The change that would allow `d`.
pub fn fix(d: &Denial, c: &Context) -> Fix {
    match d.kind {
        Kind::Landlock => {
            let path = d.path.clone().unwrap_or_default();
            let access = d.access.clone().unwrap_or_default();
            if let Some(f) = landlock_other(&access, d) {
                return f;
            }
            let key = fs_key(&access);
            Fix {
                key: Some(format!("filesystem.{key}")),
                yaml: Some(format!("filesystem:\n  {key}: [{}]\n", yaml_str(&path))),
                careful: sensitive(&path, c),
            }
        }
        Kind::Network => network(d),
        Kind::Seccomp => {
            let name = d.syscall.clone().unwrap_or_default();
            if d.reason.as_deref() == Some(LOGGED) {
                return Fix {
                    key: Some("syscalls.on_violation".into()),
                    yaml: Some("syscalls:\n  on_violation: errno\n".into()),
                    careful: Some(format!(
                        "it RAN: `on_violation: log` let {name} through; `errno` denies it"
                    )),
                };
            }
            if d.args.is_some() {
                return arg_rule(&name, d);
            }
            if syscalls::ALLOWABLE_DENY.contains(&name.as_str()) {
                return Fix {
                    key: Some("syscalls.allow".into()),
                    yaml: Some(format!("syscalls:\n  allow: [{name}]\n")),
                    careful: Some(
                        "it is denylisted: it reaches other processes' memory (of the sandbox only); allow it only for a debugger or profiler".into(),
                    ),
                };
            }
            if syscalls::BASELINE_DENY.contains(&name.as_str()) {
                return Fix {
                    key: None,
                    yaml: None,
                    careful: Some(format!(
                        "no profile may allow it: {}",
                        syscalls::deny_reason(&name)
                    )),
                };
            }
            Fix {
                key: Some("syscalls.deny".into()),
                yaml: Some(format!("# remove `{name}` from syscalls.deny\n")),
                careful: None,
            }
        }
    }
}

/// Landlock rights that no filesystem grant gives: device ioctls and
/// nodes, TCP ports (host mode), scopes.
fn landlock_other(access: &[String], d: &Denial) -> Option<Fix> {
    let none = |why: &str| {
        Some(Fix {
            key: None,
            yaml: None,
            careful: Some(format!("no profile may allow it: {why}")),
        })
    };
    let has = |a: &str| access.iter().any(|x| x == a);
    if has("fs.ioctl_dev") {
        return none("device ioctls are granted only on the sandbox's terminal");
    }
    if has("fs.make_char") || has("fs.make_block") {
        return none("device nodes are never made in the sandbox");
    }
    for (right, key) in [
        ("net.connect_tcp", "connect_tcp"),
        ("net.bind_tcp", "bind_tcp"),
    ] {
        if has(right) {
            let port = d.port.map_or_else(|| "PORT".to_string(), |p| p.to_string());
            return Some(Fix {
                key: Some(format!("network.{key}")),
                yaml: Some(format!("network:\n  {key}: [{port}]\n")),
                careful: None,
            });
        }
    }
    if access.iter().any(|a| !a.starts_with("fs.")) {
        return none("signals and abstract unix sockets stay within the sandbox (Landlock scopes)");
    }
    None
}

/// Why the egress proxy refused, as far as a profile is concerned: its
/// policy decisions. A connection that failed (no answer, a malformed
/// request) is not a denial and gets `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetCause {
    /// No `allow` entry names it.
    NotAllowed,
    /// A `deny` entry refuses it.
    Denied,
    /// An IP address, not pinned in `hosts`.
    Address,
    /// It resolves to a non-public address.
    Private,
    /// A budget is used up.
    Budget,
}

/// The cause of a proxy refusal, from its reason (the proxy's words).
pub fn net_cause(reason: &str) -> Option<NetCause> {
    if reason.ends_with("not in allow") {
        Some(NetCause::NotAllowed)
    } else if reason.contains("denied by `") || reason.contains("denied on every port") {
        Some(NetCause::Denied)
    } else if reason.contains("is an IP address, not a name") {
        Some(NetCause::Address)
    } else if reason.contains("not a public address") {
        Some(NetCause::Private)
    } else if reason.starts_with("budget ") && reason.ends_with(" used up") {
        Some(NetCause::Budget)
    } else {
        None
    }
}

fn network(d: &Denial) -> Fix {
    let host = d.host.clone().unwrap_or_default();
    let entry = match d.port {
        Some(443) | None => host.clone(),
        Some(p) => format!("{host}:{p}"),
    };
    let allow = format!("network:\n  allow: [{}]\n", yaml_str(&entry));
    let metadata = host.starts_with("169.254.")
        || host.starts_with("fd00:ec2")
        || host == "metadata.google.internal";
    let fix = |key: &str, yaml: Option<String>, careful: Option<&str>| Fix {
        key: Some(key.into()),
        yaml,
        careful: careful.map(str::to_string),
    };
    match d.reason.as_deref().and_then(net_cause) {
        Some(NetCause::Denied) => fix(
            "network.deny",
            Some("# remove the entry that denies it from network.deny\n".into()),
            Some("the profile denies it on purpose"),
        ),
        Some(NetCause::Address) => fix(
            "network.hosts",
            Some(format!(
                "network:\n  allow: [NAME]\n  hosts: {{NAME: {}}}\n",
                yaml_str(&host)
            )),
            metadata.then_some("it is a cloud metadata address (credentials)"),
        ),
        Some(NetCause::Private) => fix(
            "network.hosts",
            Some(format!(
                "network:\n  hosts: {{{}: ADDRESS}}\n",
                yaml_str(&host)
            )),
            Some("it resolves to a private address: pin it only to reach your own network on purpose"),
        ),
        Some(NetCause::Budget) => fix("network.budget", None, None),
        Some(NetCause::NotAllowed) | None => fix(
            "network.allow",
            Some(allow),
            metadata.then_some("it is a cloud metadata address (credentials)"),
        ),
    }
}

/// A call that an argument rule of filter B denied.
fn arg_rule(name: &str, d: &Denial) -> Fix {
    let arg0 = d
        .args
        .as_ref()
        .and_then(|a| a.first())
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    if name == "socket" || name == "socketpair" {
        if let Some(fam) = arg0.and_then(|f| crate::families::name(f as u32)) {
            return Fix {
                key: Some("network.socket_families".into()),
                yaml: Some(format!("network:\n  socket_families: {{add: [{fam}]}}\n")),
                careful: None,
            };
        }
    }
    let why = match name {
        "ioctl" => "terminal keystroke injection (TIOCSTI, TIOCLINUX) is always denied",
        "clone" => "new namespaces are always denied",
        "personality" => "personality flags other than the default are always denied",
        _ => "an argument rule of the denylist refused it",
    };
    Fix {
        key: None,
        yaml: None,
        careful: Some(format!("no profile may allow it: {why}")),
    }
}

/// `s` as a YAML flow scalar: quoted when anything in it could be read as
/// YAML syntax.
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@~".contains(c))
        && !s.starts_with(['-', '~', '@']);
    if plain {
        return s.to_string();
    }
    // A double-quoted YAML scalar: `\\`, `\"` and `\uXXXX` for every
    // control character (C1 too: it must not reach a terminal raw).
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            protect: vec!["/w/.git/hooks".into()],
            ..Context::default()
        }
    }

    #[test]
    fn each_kind_gets_its_key() {
        let mut d = Denial::new(Kind::Network);
        d.host = Some("example.com".into());
        d.port = Some(443);
        assert_eq!(hint(&d, &ctx()), "network.allow would allow it");
        assert_eq!(
            fix(&d, &ctx()).yaml.unwrap(),
            "network:\n  allow: [example.com]\n"
        );
        d.reason = Some("example.com:443 is denied by `example.com`".into());
        assert_eq!(fix(&d, &ctx()).key.as_deref(), Some("network.deny"));
        d.reason = Some("budget connections (10) used up".into());
        assert_eq!(fix(&d, &ctx()).key.as_deref(), Some("network.budget"));
        d.reason = Some("example.com resolves to 10.0.0.1, private: not a public address (pin it in hosts to reach it)".into());
        assert!(fix(&d, &ctx()).careful.is_some());
        assert_eq!(net_cause("example.com: connection refused"), None);
        let mut d = Denial::new(Kind::Seccomp);
        d.syscall = Some("keyctl".into());
        assert!(fix(&d, &ctx()).key.is_none());
        d.syscall = Some("ptrace".into());
        assert_eq!(fix(&d, &ctx()).key.as_deref(), Some("syscalls.allow"));
        let mut d = Denial::new(Kind::Landlock);
        d.path = Some("/w/.git/hooks/pre-commit".into());
        d.access = Some(vec!["fs.write_file".into()]);
        let f = fix(&d, &ctx());
        assert_eq!(f.key.as_deref(), Some("filesystem.write"));
        assert!(f.careful.unwrap().contains("filesystem.protect"));
        d.path = Some("/opt/tool: x".into());
        d.access = Some(vec!["fs.execute".into()]);
        assert_eq!(
            fix(&d, &ctx()).yaml.unwrap(),
            "filesystem:\n  exec: [\"/opt/tool: x\"]\n"
        );
    }
}
