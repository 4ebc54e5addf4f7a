//! The supervisor's event loop: from the moment the sandbox exists until
//! its init has been reaped, one `poll` over every source of events, so
//! that signals are forwarded and `wall_time` runs during setup too (a
//! grant on a hung network filesystem can't make confine unstoppable).
//!
//! Sources, each an fd:
//! - the signalfd of the forwarded signals and SIGCHLD ([`signals`]);
//! - the init's pidfd, readable once it has exited;
//! - the setup report pipe ([`report`]), until end of file;
//! - in proxy mode: the egress proxy's events (connection records, a
//!   budget that stops the sandbox) and its pidfd (it must not end first);
//! - with a pty: the terminal channel (the master, then the agent's job
//!   control stops), and once the master is here the caller's streams and
//!   the master ([`terminal::Relay`]);
//! - the control socket and its connections ([`control::server`]);
//! - the hooks of open checkpoints and asks ([`control::checkpoint`]; the
//!   loop's side is [`approvals`]).
//!
//! Timers (`wall_time`, then `grace`; the next checkpoint, counted in run
//! time; a request's `approval.timeout`) are the poll timeout. A new source
//! (a control socket, the egress proxy's pipe) is one more fd in
//! [`Loop::fds`] and one more arm in [`Loop::run`].

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

mod approvals;

use super::{channel, egress, signals, terminal};
use crate::control::checkpoint::Requests;
use crate::control::{self, server::Act};
use crate::sandbox::{cgroup, pty};

/// What the loop watches.
pub(crate) struct Watch<'a> {
    /// The init, our child.
    pub pid: libc::pid_t,
    pub pidfd: Option<OwnedFd>,
    /// The signalfd, created (with the signals blocked) before the clone.
    pub signals: OwnedFd,
    /// The setup report pipe's read end.
    pub report: OwnedFd,
    /// `limits.wall_time`, from `started`.
    pub wall_time: Option<Duration>,
    pub grace: Duration,
    pub started: Instant,
    pub cgroup: Option<&'a cgroup::Cgroup>,
    /// Where the pty master and the agent's stops come from, when the
    /// sandbox gets a terminal, and which of its streams the pty is.
    pub terminal: Option<(channel::TerminalReceiver, pty::Wiring)>,
    /// The egress proxy, in proxy mode.
    pub proxy: Option<egress::Proxy>,
    /// Where its connection records go.
    pub audit: &'a crate::audit::Audit,
    /// The control socket (`confine stop`, `freeze`, ...), when the
    /// sandbox has a runtime directory.
    pub control: Option<control::server::Server>,
    /// Its runtime directory, where open requests are shown.
    pub rundir: Option<&'a crate::sandbox::runtime_dir::RuntimeDir>,
    /// For checkpoints: `limits.checkpoint_every`, `approval`, and what a
    /// request tells the hook.
    pub plan: &'a crate::plan::Plan,
    /// The sources of `denied` records ([`crate::denials`]).
    pub denials: &'a mut crate::denials::Watch,
}

/// How the sandbox ended, as the supervisor saw it.
pub(crate) struct Ended {
    /// confine's exit status, from the init's wait status.
    pub code: u8,
    /// `exited`, `killed`, `timeout`, `budget` or `checkpoint`.
    pub reason: &'static str,
    /// What the setup report said.
    pub report: channel::Report,
    /// Each secret route's totals, from its last `usage` event.
    pub usage: std::collections::BTreeMap<String, crate::egress::events::UsageTotals>,
}

struct Loop<'a> {
    w: Watch<'a>,
    report: channel::Reader,
    deadline: Option<Instant>,
    timed_out: bool,
    killed: bool,
    /// The sandbox has a terminal of its own (SIGWINCH resizes it rather
    /// than being forwarded).
    tty: bool,
    relay: Option<terminal::Relay>,
    /// A stopping signal was passed on: the end was asked for, so the
    /// terminal's last output isn't waited for.
    stopped: bool,
    /// An egress budget with `on_exhausted: stop` ran out.
    budget: bool,
    /// The egress proxy's traffic so far (`confine stats`).
    net: control::server::NetUsage,
    /// The egress proxy ended while the sandbox ran: it was stopped.
    proxy_failed: bool,
    /// Stopped or killed through the control socket.
    controlled: bool,
    /// Each secret route's totals so far.
    usage: std::collections::BTreeMap<String, crate::egress::events::UsageTotals>,
    /// Open checkpoints and asks, and the run-time clock.
    requests: Requests,
    /// A checkpoint was denied (or couldn't be opened): it was stopped.
    denied: bool,
}

/// Runs the loop until the init has been reaped.
pub(crate) fn run(w: Watch) -> Ended {
    let deadline = w.wall_time.map(|t| w.started + t);
    let requests = Requests::new(
        w.plan.approval.clone(),
        w.plan.limits.checkpoint_every_ms.map(Duration::from_millis),
        Instant::now(),
    );
    let mut l = Loop {
        requests,
        denied: false,
        report: channel::Reader::new(&w.report),
        tty: w.terminal.is_some(),
        relay: None,
        stopped: false,
        budget: false,
        net: control::server::NetUsage::default(),
        proxy_failed: false,
        controlled: false,
        usage: Default::default(),
        w,
        deadline,
        timed_out: false,
        killed: false,
    };
    l.run()
}

impl Loop<'_> {
    fn fds(&self) -> Vec<libc::pollfd> {
        let p = |fd: &OwnedFd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = vec![p(&self.w.signals)];
        if let Some(fd) = &self.w.pidfd {
            fds.push(p(fd));
        }
        if !self.report.at_end() {
            fds.push(p(&self.w.report));
        }
        if let Some((t, _)) = &self.w.terminal {
            fds.push(libc::pollfd {
                fd: t.raw(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(r) = &self.relay {
            r.fds(&mut fds);
        }
        if let Some(c) = &self.w.control {
            c.fds(&mut fds);
        }
        self.requests.fds(&mut fds);
        self.w.denials.fds(&mut fds);
        if let Some(px) = &self.w.proxy {
            if !px.ended {
                fds.push(p(&px.events));
            }
            if let Some(fd) = &px.pidfd {
                if !self.proxy_failed {
                    fds.push(p(fd));
                }
            }
        }
        fds
    }

    /// True when `fd` was polled and has something to say.
    fn ready(fds: &[libc::pollfd], fd: libc::c_int) -> bool {
        fds.iter().any(|f| f.fd == fd && f.revents != 0)
    }

    fn run(&mut self) -> Ended {
        loop {
            if let Some(status) = self.reaped() {
                return self.ended(status);
            }
            let left = self
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()));
            let held = self.relay.as_ref().and_then(terminal::Relay::timeout);
            let held = match (held, self.w.control.as_ref().and_then(|c| c.timeout())) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let held = match (held, self.requests.timeout(Instant::now())) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = match (left, held) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            // Rounded up, so the deadline has passed when poll returns.
            .map_or(-1, |t| i32::try_from(t.as_millis() + 1).unwrap_or(i32::MAX));
            let mut fds = self.fds();
            // SAFETY: fds is a valid array of pollfds for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                // EINTR (a signal not in the signalfd's set): look again.
                continue;
            }
            if !self.report.at_end() && Self::ready(&fds, self.w.report.as_raw_fd()) {
                self.report.read_available(&self.w.report);
            }
            // Signals before the terminal's bytes: a resize the caller made
            // before typing reaches the pty before what was typed.
            while let Some(sig) = signals::read(&self.w.signals) {
                if sig == libc::SIGWINCH && self.tty {
                    // The pty's own SIGWINCH reaches its foreground group.
                    if let Some(r) = &self.relay {
                        r.resize();
                    }
                } else if sig == libc::SIGCONT {
                    // `fg` or `bg` from the caller's shell.
                    if let Some(r) = &mut self.relay {
                        r.continued();
                    }
                } else if sig != libc::SIGCHLD {
                    // SIGCHLD: the reap at the top of the loop looks.
                    self.stopped |= signals::is_stopping(sig);
                    if matches!(
                        sig,
                        libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGQUIT
                    ) {
                        // The caller ends it: a frozen sandbox must run to
                        // act on the signal.
                        self.abandon("signal");
                    }
                    send(self.w.pid, self.w.pidfd.as_ref(), sig);
                }
            }
            if let Some((t, _)) = &self.w.terminal {
                if Self::ready(&fds, t.raw()) {
                    self.terminal_channel();
                }
            }
            if let Some(r) = &mut self.relay {
                r.ready(&fds);
            }
            self.proxy_events();
            self.control_requests(&fds);
            self.approvals();
            // Bounded per turn: a flood of denials can't starve the rest.
            let raw_tty = self.relay.is_some();
            self.w.denials.ready(&fds, self.w.audit, raw_tty);
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.escalate();
            }
        }
    }
}

/// `wall_time` ran out: SIGTERM to the whole tree, then after `grace`
/// SIGKILL, to the init and through the cgroup.
impl Loop<'_> {
    /// The egress proxy's events: records written, a budget that stops the
    /// sandbox acted on; and the proxy ending before the sandbox, which
    /// stops it (its agent would be left without a way out, and its
    /// connections unrecorded).
    fn proxy_events(&mut self) {
        let Some(px) = &mut self.w.proxy else {
            return;
        };
        let events = px.read_events();
        let exited = !self.proxy_failed && px.exited();
        let mut asks = Vec::new();
        for e in events {
            self.tally(&e);
            if let crate::egress::events::Event::Ask(a) = &e {
                asks.push(a.clone());
                continue;
            }
            if let crate::egress::events::Event::Connection(c) = &e {
                self.w
                    .denials
                    .connection(c, self.w.audit, self.relay.is_some());
            }
            if record_event(self.w.audit, &e) == Some(true) && !self.budget {
                self.budget = true;
                crate::say!("confine: {}; the sandbox is stopped", stop_reason(&e));
                self.stop_now();
            }
        }
        for a in asks {
            self.ask_opened(a);
        }
        if exited {
            self.proxy_failed = true;
            crate::say!(
                "confine: egress proxy: it ended while the sandbox ran; the sandbox is stopped"
            );
            self.kill_now();
        }
    }

    /// Adds an event to the running totals (`confine stats`, the exit
    /// record).
    fn tally(&mut self, e: &crate::egress::events::Event) {
        use crate::egress::events::Event;
        match e {
            Event::Connection(c) => count(&mut self.net, c),
            Event::Request(r) => {
                self.net.connections += 1;
                self.net.bytes_out += r.bytes_out;
                self.net.bytes_in += r.bytes_in;
            }
            Event::Usage(u) => {
                self.usage.insert(u.route.clone(), u.totals);
            }
            _ => {}
        }
    }

    /// SIGTERM now, SIGKILL after `grace`: as `wall_time` does.
    fn stop_now(&mut self) {
        if !self.timed_out {
            self.deadline = Some(Instant::now());
        }
    }

    /// SIGKILL to the whole sandbox now.
    fn kill_now(&mut self) {
        self.abandon("kill");
        self.killed = true;
        send(self.w.pid, self.w.pidfd.as_ref(), libc::SIGKILL);
        if let Some(cg) = self.w.cgroup {
            let _ = cg.kill_all();
        }
        self.deadline = None;
    }

    /// What the init said on the terminal channel: the master (the relay
    /// starts), the agent's stops, or the end.
    fn terminal_channel(&mut self) {
        while let Some((t, wiring)) = &self.w.terminal {
            match t.receive() {
                channel::FromInit::Master(m) if self.relay.is_none() => {
                    self.relay = Some(terminal::Relay::start(m, *wiring));
                }
                channel::FromInit::Master(_) => {}
                channel::FromInit::Stopped => {
                    // Stopped with it; continued, the agent is too.
                    if self.relay.as_mut().is_some_and(terminal::Relay::suspend) {
                        send(self.w.pid, self.w.pidfd.as_ref(), libc::SIGCONT);
                    }
                }
                channel::FromInit::Nothing => return,
                channel::FromInit::End => self.w.terminal = None,
            }
        }
    }

    fn escalate(&mut self) {
        if !self.timed_out {
            // A frozen sandbox is thawed to act on the TERM.
            let why = if self.budget {
                "budget"
            } else if self.denied {
                "checkpoint"
            } else {
                "wall_time"
            };
            self.abandon(why);
            self.timed_out = true;
            send(self.w.pid, self.w.pidfd.as_ref(), libc::SIGTERM);
            self.deadline = Some(Instant::now() + self.w.grace);
        } else if !self.killed {
            self.killed = true;
            send(self.w.pid, self.w.pidfd.as_ref(), libc::SIGKILL);
            if let Some(cg) = self.w.cgroup {
                // The outside guarantee, next to the PID namespace's.
                let _ = cg.kill_all();
            }
            self.deadline = None;
        }
    }

    /// The init's wait status, once it has exited (and is reaped now).
    fn reaped(&self) -> Option<libc::c_int> {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer; the init is our child.
        let r = unsafe { libc::waitpid(self.w.pid, &mut status, libc::WNOHANG) };
        (r == self.w.pid).then_some(status)
    }

    fn ended(&mut self, status: libc::c_int) -> Ended {
        // Every writer of the report is gone with the init's namespace:
        // what is in the pipe now is all there is.
        self.report.read_available(&self.w.report);
        let report = self.report.finish();
        // A master sent just before the init ended still holds its output.
        if let Some((t, wiring)) = self.w.terminal.take() {
            if let (channel::FromInit::Master(m), None) = (t.receive(), &self.relay) {
                self.relay = Some(terminal::Relay::start(m, wiring));
            }
        }
        // Whatever the sandbox wrote, then the caller's terminal as it was.
        if let Some(r) = self.relay.take() {
            r.finish(&self.w.signals, !(self.stopped || self.timed_out));
        }
        self.finish_proxy();
        let (code, reason) = if self.proxy_failed {
            (super::EXIT_REFUSED, "killed")
        } else if self.budget {
            (super::EXIT_TIMEOUT, "budget")
        } else if self.denied {
            (super::EXIT_TIMEOUT, "checkpoint")
        } else if self.controlled {
            (super::exit_code(status), "killed")
        } else if self.timed_out {
            (super::EXIT_TIMEOUT, "timeout")
        } else if libc::WIFSIGNALED(status) {
            // The init never dies of a signal by itself: someone killed it.
            (super::exit_code(status), "killed")
        } else {
            (super::exit_code(status), "exited")
        };
        Ended {
            code,
            reason,
            report,
            usage: std::mem::take(&mut self.usage),
        }
    }
}

impl Loop<'_> {
    /// Requests on the control socket (DESIGN.md §12): freeze, thaw and
    /// statistics are answered by the server; a stop or kill is the
    /// loop's, as `wall_time`'s is.
    fn control_requests(&mut self, fds: &[libc::pollfd]) {
        let Some(c) = &mut self.w.control else {
            return;
        };
        let ctx = control::server::Ctx {
            cgroup: self.w.cgroup,
            audit: self.w.audit,
            init: self.w.pid,
            stopping: self.controlled || self.timed_out || self.killed,
            network: self.w.proxy.is_some().then_some(self.net),
            requests: self.requests.describe(),
            run_time_ms: self.requests.run_time(Instant::now()).as_millis() as u64,
        };
        let acts = c.ready(fds, &ctx);
        let mut end = None;
        for act in acts {
            match act {
                Act::Answer { id, approve, uid } => {
                    if let Some(a) = self.requests.answer(&id, approve, format!("uid {uid}")) {
                        self.answered(a);
                    }
                }
                Act::Kill => end = Some(Act::Kill),
                Act::Stop(g) => {
                    if end.is_none() {
                        end = Some(Act::Stop(g));
                    }
                }
            }
        }
        if end.is_some() {
            // Asked to end: the terminal's last output isn't waited for.
            self.controlled = true;
            self.stopped = true;
        }
        match end {
            Some(Act::Stop(grace)) => {
                if let Some(g) = grace {
                    self.w.grace = g;
                }
                self.abandon("stop");
                self.stop_now();
            }
            Some(Act::Kill) => self.kill_now(),
            _ => {}
        }
    }

    /// The sandbox has ended: the proxy is told, ends the connections
    /// still open (each leaves its record) and exits; its records are read
    /// to the end of its pipe. Bounded: a proxy that doesn't finish within
    /// a second is killed.
    fn finish_proxy(&mut self) {
        let Some(mut px) = self.w.proxy.take() else {
            return;
        };
        px.shut_down();
        let end = Instant::now() + std::time::Duration::from_secs(1);
        while !px.ended {
            let left = end.saturating_duration_since(Instant::now()).as_millis();
            if left == 0 {
                break;
            }
            let mut p = libc::pollfd {
                fd: px.events.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: p is one valid pollfd.
            unsafe { libc::poll(&mut p, 1, left.min(1000) as libc::c_int) };
            for e in px.read_events() {
                self.tally(&e);
                record_event(self.w.audit, &e);
                if let crate::egress::events::Event::Connection(c) = &e {
                    self.w.denials.connection(c, self.w.audit, false);
                }
            }
        }
        px.kill();
    }
}

/// Writes the audit record of `e`; `Some(true)` when it is a budget that
/// stops the sandbox.
fn record_event(audit: &crate::audit::Audit, e: &crate::egress::events::Event) -> Option<bool> {
    use crate::egress::events::{Action, Event};
    let r = match e {
        Event::Connection(c) => audit.record(&crate::audit::Connection(c)),
        Event::Budget(b) => audit.record(&crate::audit::Budget(b)),
        Event::Dropped(d) => audit.record(&crate::audit::Dropped(d)),
        Event::Request(r) => audit.record(&crate::audit::RouteRequest(r)),
        Event::Usage(u) => audit.record(&crate::audit::Usage(u)),
        Event::Limit(l) => audit.record(&crate::audit::RouteLimit(l)),
        // A `checkpoint` record, once the request is open.
        Event::Ask(_) => Ok(()),
    };
    if let Err(err) = r {
        crate::say!("confine: audit log (writing a connection record): {err}");
    }
    match e {
        Event::Budget(b) => Some(b.action == Action::Stop),
        Event::Limit(l) => Some(l.action == Action::Stop),
        _ => None,
    }
}

/// Adds one connection record to the running totals.
fn count(n: &mut control::server::NetUsage, c: &crate::egress::events::Connection) {
    use crate::egress::events::{Verdict, Via};
    if c.via != Via::Dns {
        n.connections += 1;
    }
    if c.verdict == Verdict::Refused {
        n.refused += 1;
    }
    n.bytes_out += c.bytes_out;
    n.bytes_in += c.bytes_in;
}

fn stop_reason(e: &crate::egress::events::Event) -> String {
    match e {
        crate::egress::events::Event::Budget(b) => {
            format!(
                "network.budget: {} used up ({} of {})",
                b.which.name(),
                b.used,
                b.limit
            )
        }
        crate::egress::events::Event::Limit(l) => format!(
            "secrets.{}.limits.{}: used up ({} of {})",
            l.route, l.which, l.used, l.limit
        ),
        _ => String::new(),
    }
}

/// Sends `sig` to the init: by pidfd, so it can't reach a recycled pid.
pub(crate) fn send(pid: libc::pid_t, pidfd: Option<&OwnedFd>, sig: libc::c_int) {
    match pidfd {
        // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
        Some(fd) => unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
        },
        // The init is our unreaped child, so its pid can't be reused yet.
        // SAFETY: kill with integer arguments.
        None => unsafe {
            libc::kill(pid, sig);
        },
    }
}
