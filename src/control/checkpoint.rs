//! Requests that wait for approval (DESIGN.md §12): checkpoints, opened
//! after each `limits.checkpoint_every` of run time, and network asks. The
//! supervisor's loop holds one [`Requests`]: the run-time clock, the open
//! requests, and each one's hook and deadline, which are sources of that
//! loop like any other (a pidfd, a poll timeout). Nothing here blocks.
//!
//! A request is answered once: by its hook (`approval.command`; exit 0
//! approves, anything else denies), by `confine approve` / `deny` through
//! the control socket, or by `approval.default` at `approval.timeout`.
//! The first answer wins; the others find nothing open.
//!
//! The hook is the operator's own command, from the operator's profile: it
//! runs with the supervisor's credentials, outside the sandbox, in a
//! process group of its own, with a scrubbed environment, no descriptor
//! but 0-2 (its stdin the request, its stdout and stderr confine's
//! stderr), killed (with its group) at the timeout or when the request is
//! answered otherwise, and by PDEATHSIG when the supervisor dies.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::plan::ApprovalPlan;
use crate::profile::approval::OnTimeout;

/// Network asks one run may open; beyond, they are denied without
/// asking (an agent making up names under a wildcard must not be able to
/// start hooks or prompt the operator without end).
pub const MAX_ASKS: usize = 256;
/// Network asks open at once (the proxy holds at most as many).
pub const MAX_OPEN_ASKS: usize = 16;

/// The environment a hook gets, besides `CONFINE_SANDBOX` and
/// `CONFINE_REQUEST`.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// May the sandbox run on after this much run time?
    Checkpoint,
    /// May the sandbox connect to this host (and port)?
    Ask {
        host: String,
        port: u16,
        /// The connecting process, when it could be found.
        process: Option<String>,
        /// The egress proxy's number for it, which its answer names.
        proxy_id: u64,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Checkpoint => "checkpoint",
            Kind::Ask { .. } => "ask",
        }
    }
}

/// A running hook: the child and a pidfd to poll.
struct Hook {
    child: Child,
    pidfd: OwnedFd,
}

impl Hook {
    /// Kills the hook's whole process group, then reaps the hook. The
    /// group is signalled before the reap, while the leader's pid (the
    /// group's id) can't be reused.
    fn kill(mut self) -> String {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill with integer arguments; the group is the hook's
        // own (process_group(0)), and its leader is our unreaped child.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        match self.child.wait() {
            Ok(s) => describe(s),
            Err(e) => format!("not reaped: {e}"),
        }
    }
}

fn describe(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (_, Some(sig)) => format!("signal {sig}"),
        _ => "ended".to_string(),
    }
}

/// One open request.
pub struct Open {
    /// `c1`, `a2`, ...: what `confine approve ID REQUEST` names.
    pub id: String,
    pub kind: Kind,
    /// Run time when it opened.
    pub run_ms: u64,
    deadline: Option<Instant>,
    hook: Option<Hook>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: String,
    pub kind: Kind,
    pub approve: bool,
    /// `hook`, `uid N`, `timeout`.
    pub by: String,
    /// The hook's exit, or why it couldn't run.
    pub detail: Option<String>,
}

/// The open requests and the run-time clock.
pub struct Requests {
    plan: ApprovalPlan,
    every: Option<Duration>,
    /// Run time before `since`.
    ran: Duration,
    /// Running since; `None` while frozen (by `confine freeze` or a
    /// checkpoint).
    since: Option<Instant>,
    /// Run time at which the next checkpoint opens.
    next: Duration,
    seq: u64,
    pub open: Vec<Open>,
    /// Hosts and ports asked about this run, each once.
    asked: std::collections::HashSet<(String, u16)>,
}

impl Requests {
    /// The clock starts now, running.
    pub fn new(plan: ApprovalPlan, every: Option<Duration>, now: Instant) -> Requests {
        Requests {
            plan,
            every,
            ran: Duration::ZERO,
            since: Some(now),
            next: every.unwrap_or(Duration::MAX),
            seq: 0,
            open: Vec::new(),
            asked: std::collections::HashSet::new(),
        }
    }

    /// Run time so far: frozen time not counted.
    pub fn run_time(&self, now: Instant) -> Duration {
        self.ran
            + self
                .since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    /// A checkpoint is open (the sandbox is frozen for it).
    pub fn checkpoint_open(&self) -> bool {
        self.open.iter().any(|o| o.kind == Kind::Checkpoint)
    }

    /// Stops or restarts the clock: paused while `confine freeze` holds
    /// the sandbox or a checkpoint is open.
    pub fn sync(&mut self, user_frozen: bool, now: Instant) {
        let paused = user_frozen || self.checkpoint_open();
        match (paused, self.since) {
            (true, Some(s)) => {
                self.ran += now.saturating_duration_since(s);
                self.since = None;
            }
            (false, None) => self.since = Some(now),
            _ => {}
        }
    }

    /// Whether an ask for `host`:`port` may open: each host and port
    /// once per run (the proxy remembers the answer), at most
    /// [`MAX_OPEN_ASKS`] at once and [`MAX_ASKS`] in all. Counts it.
    ///
    /// # Errors
    /// Why it is denied without asking (for tests and debugging: the
    /// supervisor says nothing, since the agent drives it).
    pub fn may_ask(&mut self, host: &str, port: u16) -> Result<(), &'static str> {
        let open = self
            .open
            .iter()
            .filter(|o| matches!(o.kind, Kind::Ask { .. }))
            .count();
        if open >= MAX_OPEN_ASKS {
            return Err("too many asks are open");
        }
        if self.asked.len() >= MAX_ASKS {
            return Err("this run has asked about too many hosts");
        }
        if !self.asked.insert((host.to_string(), port)) {
            return Err("it was asked about already");
        }
        Ok(())
    }

    /// The run clock reached the next checkpoint.
    pub fn due(&self, now: Instant) -> bool {
        self.since.is_some() && self.run_time(now) >= self.next
    }

    /// Opens a request: its deadline set, its hook (if any) started with
    /// `request` (the JSON the hook reads, given the request's id) on its
    /// stdin. Returns its id, and why the hook couldn't start (the request
    /// is then denied at once: a hook that can't run can't approve).
    pub fn open(
        &mut self,
        kind: Kind,
        sandbox: &str,
        request: impl FnOnce(&str, u64) -> Value,
        now: Instant,
    ) -> (String, Option<Answer>) {
        self.seq += 1;
        let id = format!(
            "{}{}",
            if kind == Kind::Checkpoint { "c" } else { "a" },
            self.seq
        );
        let run_ms = self.run_time(now).as_millis() as u64;
        if kind == Kind::Checkpoint {
            if let Some(e) = self.every {
                // The next one after another period of run time.
                self.next = self.run_time(now) + e;
            }
        }
        let text = request(&id, run_ms);
        let mut failed = None;
        let hook = match &self.plan.command {
            Some(argv) => match spawn(argv, sandbox, &id, &text) {
                Ok(h) => Some(h),
                Err(e) => {
                    failed = Some(Answer {
                        id: id.clone(),
                        kind: kind.clone(),
                        approve: false,
                        by: "hook".to_string(),
                        detail: Some(format!("{} couldn't start: {e}", argv[0])),
                    });
                    None
                }
            },
            None => None,
        };
        if failed.is_none() {
            self.open.push(Open {
                id: id.clone(),
                kind,
                run_ms,
                deadline: self.plan.timeout_ms.map(|t| now + Duration::from_millis(t)),
                hook,
            });
        }
        (id, failed)
    }

    /// The hooks' pidfds.
    pub fn fds(&self, fds: &mut Vec<libc::pollfd>) {
        for o in &self.open {
            if let Some(h) = &o.hook {
                fds.push(libc::pollfd {
                    fd: h.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
    }

    /// Until the next deadline or checkpoint, for the poll timeout.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        let deadline = self
            .open
            .iter()
            .filter_map(|o| o.deadline)
            .map(|d| d.saturating_duration_since(now))
            .min();
        let due = self
            .since
            .filter(|_| self.every.is_some())
            .map(|_| self.next.saturating_sub(self.run_time(now)));
        match (deadline, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Hooks that ended and deadlines that passed: their answers.
    pub fn poll(&mut self, now: Instant) -> Vec<Answer> {
        let mut answers = Vec::new();
        let mut i = 0;
        while i < self.open.len() {
            let o = &mut self.open[i];
            let exited = o
                .hook
                .as_mut()
                .and_then(|h| h.child.try_wait().ok().flatten().map(|s| (h, s)));
            let answer = if let Some((_, status)) = exited {
                // Its group goes with it (a background child of the hook
                // must not outlive the request).
                let h = o.hook.take().expect("hook");
                let pgid = h.child.id() as libc::pid_t;
                // SAFETY: kill with integer arguments. The leader is
                // reaped, but its pid stays taken while the group has
                // members; with none left this is ESRCH.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                Some((status.success(), "hook".to_string(), Some(describe(status))))
            } else if o.deadline.is_some_and(|d| now >= d) {
                let detail = o.hook.take().map(|h| format!("hook killed, {}", h.kill()));
                Some((
                    self.plan.default == OnTimeout::Allow,
                    "timeout".to_string(),
                    detail,
                ))
            } else {
                None
            };
            match answer {
                Some((approve, by, detail)) => {
                    let o = self.open.remove(i);
                    answers.push(Answer {
                        id: o.id,
                        kind: o.kind,
                        approve,
                        by,
                        detail,
                    });
                }
                None => i += 1,
            }
        }
        answers
    }

    /// The request `id` answered through the control socket; `None` when it
    /// isn't open (another answer came first).
    pub fn answer(&mut self, id: &str, approve: bool, by: String) -> Option<Answer> {
        let i = self.open.iter().position(|o| o.id == id)?;
        let o = self.open.remove(i);
        let detail = o.hook.map(|h| format!("hook killed, {}", h.kill()));
        Some(Answer {
            id: o.id,
            kind: o.kind,
            approve,
            by,
            detail,
        })
    }

    /// Every open request, closed unanswered because the sandbox is ending
    /// (`why`: `stop`, `signal`, `wall_time`...).
    pub fn abandon(&mut self, why: &str) -> Vec<Answer> {
        std::mem::take(&mut self.open)
            .into_iter()
            .map(|o| Answer {
                detail: o.hook.map(|h| format!("hook killed, {}", h.kill())),
                id: o.id,
                kind: o.kind,
                approve: false,
                by: why.to_string(),
            })
            .collect()
    }

    /// The open requests, as the control socket and `requests.json` show
    /// them.
    pub fn describe(&self) -> Vec<Value> {
        self.open
            .iter()
            .map(|o| {
                let mut v = serde_json::json!({
                    "request": o.id, "kind": o.kind.name(), "run_time_ms": o.run_ms,
                    "hook": o.hook.is_some(),
                });
                if let Kind::Ask {
                    host,
                    port,
                    process,
                    ..
                } = &o.kind
                {
                    v["host"] = host.as_str().into();
                    v["port"] = (*port).into();
                    v["process"] = process.clone().into();
                }
                v
            })
            .collect()
    }
}

/// Starts the hook with the request on its stdin.
fn spawn(argv: &[String], sandbox: &str, id: &str, request: &Value) -> std::io::Result<Hook> {
    let out = std::io::stderr().as_fd().try_clone_to_owned()?;
    let err = std::io::stderr().as_fd().try_clone_to_owned()?;
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .env("PATH", HOOK_PATH)
        .env("CONFINE_SANDBOX", sandbox)
        .env("CONFINE_REQUEST", id)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            // Nothing of confine's but 0-2 reaches the hook: every other
            // descriptor is closed at the exec (std's own error pipe
            // included, which is what it wants).
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
    let mut child = c.spawn()?;
    // SAFETY: pidfd_open with integer arguments; the child is unreaped.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0u32) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: kill with integer arguments; the hook's own group, its
        // leader our unreaped child.
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = child.wait();
        return Err(e);
    }
    // SAFETY: the fd was just returned to us and nobody else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // The request is small next to a pipe's 64 KiB: one non-blocking
    // write, then the end of file. A hook that exits without reading it
    // makes it EPIPE (SIGPIPE is ignored in confine).
    if let Some(mut stdin) = child.stdin.take() {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(stdin.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(stdin.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let mut text = request.to_string();
        text.push('\n');
        let _ = stdin.write_all(text.as_bytes());
    }
    Ok(Hook { child, pidfd })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(timeout_ms: Option<u64>, default: OnTimeout) -> ApprovalPlan {
        ApprovalPlan {
            command: None,
            timeout_ms,
            default,
        }
    }

    #[test]
    fn the_clock_counts_run_time_only() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut r = Requests::new(plan(None, OnTimeout::Deny), Some(3 * s), t0);
        assert!(!r.due(t0 + 2 * s));
        // Frozen by `confine freeze` from 2s to 10s: not counted.
        r.sync(true, t0 + 2 * s);
        assert!(!r.due(t0 + 10 * s));
        r.sync(false, t0 + 10 * s);
        assert_eq!(r.run_time(t0 + 10 * s), 2 * s);
        assert_eq!(r.timeout(t0 + 10 * s), Some(s));
        assert!(r.due(t0 + 11 * s));
        let (id, failed) = r.open(Kind::Checkpoint, "x", |_, _| Value::Null, t0 + 11 * s);
        assert_eq!((id.as_str(), failed), ("c1", None));
        r.sync(false, t0 + 11 * s);
        assert!(r.checkpoint_open() && !r.due(t0 + 100 * s));
        // No timeout: it waits.
        assert!(r.poll(t0 + 1000 * s).is_empty());
        let a = r.answer("c1", true, "uid 0".into()).unwrap();
        assert!(a.approve && r.answer("c1", false, "uid 0".into()).is_none());
        r.sync(false, t0 + 1000 * s);
        assert!(!r.due(t0 + 1002 * s) && r.due(t0 + 1003 * s));
    }

    #[test]
    fn asks_are_bounded_and_each_host_asked_once() {
        let t0 = Instant::now();
        let mut r = Requests::new(plan(None, OnTimeout::Deny), None, t0);
        assert!(r.may_ask("a.example", 443).is_ok());
        assert!(r.may_ask("a.example", 443).is_err());
        assert!(r.may_ask("a.example", 80).is_ok());
        for i in 0..MAX_OPEN_ASKS {
            let kind = Kind::Ask {
                host: format!("h{i}.example"),
                port: 443,
                process: None,
                proxy_id: i as u64,
            };
            r.open(kind, "x", |_, _| Value::Null, t0);
        }
        assert_eq!(r.may_ask("b.example", 443), Err("too many asks are open"));
        r.abandon("stop");
        for i in 2..MAX_ASKS {
            assert!(r.may_ask(&format!("n{i}.example"), 443).is_ok());
        }
        assert!(r.may_ask("last.example", 443).is_err());
    }

    #[test]
    fn the_timeout_answers_with_the_default() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        for (default, approve) in [(OnTimeout::Deny, false), (OnTimeout::Allow, true)] {
            let mut r = Requests::new(plan(Some(5000), default), Some(s), t0);
            r.open(Kind::Checkpoint, "x", |_, _| Value::Null, t0);
            r.sync(false, t0);
            assert_eq!(r.timeout(t0), Some(5 * s));
            assert!(r.poll(t0 + 4 * s).is_empty());
            let a = r.poll(t0 + 5 * s);
            assert_eq!(
                (a.len(), a[0].approve, a[0].by.as_str()),
                (1, approve, "timeout")
            );
            assert!(r.open.is_empty());
        }
    }
}
