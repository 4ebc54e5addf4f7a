//! Control of running sandboxes (DESIGN.md §12): `confine ps`, `stop`,
//! `kill`, `freeze`, `thaw`, `stats`, `approve` and `deny`, and the
//! checkpoints and asks those answer ([`checkpoint`]).
//!
//! Each sandbox's supervisor serves a unix socket in the sandbox's runtime
//! directory ([`crate::sandbox::runtime_dir`]) from its event loop
//! ([`server`]); the command line ([`client`]) finds sandboxes there and
//! asks. The protocol is one JSON request and one JSON reply per
//! connection:
//!
//! ```text
//! {"op": "status" | "stats" | "kill" | "freeze" | "thaw"}
//! {"op": "stop", "grace_ms": 2000}            (grace_ms optional)
//! {"op": "approve" | "deny", "request": "c1"}  (request optional)
//! -> {"ok": true, ...} | {"ok": false, "error": "..."}
//! ```
//!
//! Only root and the uid that launched a sandbox may use its socket: the
//! directory is 0700 and the socket 0600, both the launcher's, and the
//! supervisor checks `SO_PEERCRED` of every connection.

pub mod asker;
pub mod checkpoint;
pub mod client;
pub mod server;

use serde::Deserialize;

/// The longest request read; longer ones are refused.
pub const REQUEST_MAX: usize = 4096;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Pid and state (running, freezing, frozen, stopping).
    Status,
    /// What the sandbox uses now.
    Stats,
    /// TERM to the whole sandbox, KILL after the grace (the profile's
    /// `limits.grace` unless given).
    Stop {
        #[serde(default)]
        grace_ms: Option<u64>,
    },
    /// KILL to the whole sandbox now.
    Kill,
    Freeze,
    Thaw,
    /// Answers an open checkpoint or ask: the one named, or the only one.
    Approve {
        #[serde(default)]
        request: Option<String>,
    },
    Deny {
        #[serde(default)]
        request: Option<String>,
    },
}

impl Request {
    /// The action's name, as the `control` record has it.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Stats => "stats",
            Request::Stop { .. } => "stop",
            Request::Kill => "kill",
            Request::Freeze => "freeze",
            Request::Thaw => "thaw",
            Request::Approve { .. } => "approve",
            Request::Deny { .. } => "deny",
        }
    }

    /// Whether it changes the sandbox (and so is recorded).
    pub fn acts(&self) -> bool {
        !matches!(self, Request::Status | Request::Stats)
    }
}

/// Makes the sandbox's runtime directory (`info.json`, the `control`
/// socket) for the supervisor's loop to serve. Without one the sandbox
/// still runs, and its supervisor still takes signals; `confine ps` and
/// `stop` just don't see it, which is said once on stderr.
pub(crate) fn start(
    plan: &crate::plan::Plan,
    id: &str,
    cgroup: Option<&crate::sandbox::cgroup::Cgroup>,
) -> Option<(crate::sandbox::runtime_dir::RuntimeDir, server::Server)> {
    use crate::sandbox::runtime_dir::{self, RuntimeDir};
    let pid = std::process::id() as i32;
    // SAFETY: geteuid has no arguments and can't fail.
    let uid = unsafe { libc::geteuid() };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let info = runtime_dir::Info {
        id: id.to_string(),
        pid,
        pid_start: runtime_dir::start_time(pid).unwrap_or(0),
        uid,
        profile: plan.profile.name.clone(),
        command: plan.command.clone(),
        workspace: plan.workspace.clone(),
        started: crate::audit::rfc3339_now(),
        started_unix: now,
        cgroup: cgroup.map_or_else(Vec::new, |c| {
            c.paths()
                .into_iter()
                .map(std::path::Path::to_path_buf)
                .collect()
        }),
        grace_ms: Some(plan.limits.grace_ms),
    };
    match RuntimeDir::create(&info) {
        Ok((dir, listener)) => Some((dir, server::Server::new(listener, uid))),
        Err(e) => {
            crate::say!(
                "confine: warning: control (runtime directory): {e}; confine ps, stop and kill \
                 won't see this sandbox"
            );
            None
        }
    }
}
