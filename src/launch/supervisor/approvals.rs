//! The supervisor loop's part in checkpoints and network asks (DESIGN.md
//! §12): the run-time clock, opening a checkpoint (freeze, request,
//! hook), an ask from the egress proxy, and what an answer does (thaw,
//! stop, or the proxy told). The requests themselves are
//! [`crate::control::checkpoint`].

use std::time::Instant;

use super::Loop;
use crate::control;
use crate::control::checkpoint::{self, Kind};

impl Loop<'_> {
    /// The run-time clock, checkpoints that are due, and requests whose
    /// hook ended or whose timeout passed.
    pub(super) fn approvals(&mut self) {
        let now = Instant::now();
        let frozen = self.w.control.as_ref().is_some_and(|c| c.frozen);
        self.requests.sync(frozen, now);
        let ending = self.controlled || self.timed_out || self.killed || self.denied;
        if !ending && self.requests.due(now) {
            self.open_checkpoint(now);
        }
        for a in self.requests.poll(now) {
            self.answered(a);
        }
        self.requests.sync(frozen, Instant::now());
    }

    /// A period of run time has passed: the sandbox is frozen and a
    /// checkpoint opens. Fails closed: a sandbox that can't be frozen is
    /// stopped.
    fn open_checkpoint(&mut self, now: Instant) {
        let frozen = match self.w.cgroup {
            Some(cg) => cg.freeze(true).map_err(|e| e.to_string()),
            None => Err("the sandbox has no cgroup".to_string()),
        };
        if let Err(why) = frozen {
            crate::say!(
                "confine: limits.checkpoint_every (freezing the sandbox): {why}; the sandbox is \
                 stopped"
            );
            self.denied = true;
            self.stop_now();
            return;
        }
        let usage = self
            .w
            .cgroup
            .map(|cg| serde_json::to_value(cg.usage()).unwrap_or_default());
        let network = self.w.proxy.is_some().then_some(self.net);
        let plan = self.w.plan;
        let sandbox = self.w.audit.sandbox.clone();
        let every = plan.limits.checkpoint_every_ms.unwrap_or_default();
        let (id, failed) = self.requests.open(
            Kind::Checkpoint,
            &sandbox,
            |id, run_ms| {
                serde_json::json!({
                    "version": 1,
                    "sandbox": sandbox,
                    "request": id,
                    "kind": "checkpoint",
                    "question": format!(
                        "checkpoint: the sandbox has run for {} (a checkpoint every {}); may it run on?",
                        crate::profile::Duration((run_ms + 500) / 1000 * 1000),
                        crate::profile::Duration(every)
                    ),
                    "profile": plan.profile.name,
                    "command": plan.command,
                    "workspace": plan.workspace,
                    "run_time_ms": run_ms,
                    "usage": usage,
                    "network": network,
                })
            },
            now,
        );
        let run_ms = self.requests.run_time(now).as_millis() as u64;
        self.record_request(&id, &Kind::Checkpoint, "opened", None, run_ms, None);
        crate::say!(
            "confine: checkpoint {id}: the sandbox is frozen until approved (confine approve {} \
             {id}, or confine deny)",
            sandbox
        );
        self.show_requests();
        if let Some(a) = failed {
            self.answered(a);
        }
    }

    /// The egress proxy holds a connection to a host of `network.ask`: a
    /// request opens (the sandbox runs on; only that connection waits).
    pub(super) fn ask_opened(&mut self, a: crate::egress::events::AskEvent) {
        let now = Instant::now();
        let ending = self.controlled || self.timed_out || self.killed || self.denied;
        // The proxy is told no without asking anyone when the sandbox is
        // ending, and when the event isn't one the policy can produce: a
        // host no `ask` entry covers (or that `allow` admits or `deny`
        // refuses), a second ask about one host, too many (the proxy runs
        // the agent's traffic and is not trusted with the operator's
        // attention).
        let policy = self.w.plan.network.egress.as_ref();
        let legit = policy.is_some_and(|p| {
            p.asks(&a.host, a.port).is_some()
                && p.admit(&a.host, a.port) == crate::plan::egress::Admission::NotAllowed
        });
        let refused = ending || !legit || self.requests.may_ask(&a.host, a.port).is_err();
        // Nothing is said on stderr: the agent could fill it. The proxy's
        // `connection` record says the connection was denied.
        if refused {
            if let Some(px) = &self.w.proxy {
                px.answer(a.id, false);
            }
            return;
        }
        let process = a
            .peer_port
            .and_then(|p| control::asker::socket_owner(self.w.pid, p));
        let kind = Kind::Ask {
            host: a.host.clone(),
            port: a.port,
            process: process.clone(),
            proxy_id: a.id,
        };
        let usage = self
            .w
            .cgroup
            .map(|cg| serde_json::to_value(cg.usage()).unwrap_or_default());
        let network = self.w.proxy.is_some().then_some(self.net);
        let plan = self.w.plan;
        let sandbox = self.w.audit.sandbox.clone();
        let who = process.clone().unwrap_or_else(|| "a process".to_string());
        let (id, failed) = self.requests.open(
            kind.clone(),
            &sandbox,
            |id, run_ms| {
                serde_json::json!({
                    "version": 1,
                    "sandbox": sandbox,
                    "request": id,
                    "kind": "ask",
                    "question": format!(
                        "{who} in the sandbox wants to connect to {}:{} (network.ask `{}`); may it?",
                        a.host, a.port, a.rule
                    ),
                    "host": a.host,
                    "port": a.port,
                    "rule": a.rule,
                    "process": process,
                    "profile": plan.profile.name,
                    "command": plan.command,
                    "workspace": plan.workspace,
                    "run_time_ms": run_ms,
                    "usage": usage,
                    "network": network,
                })
            },
            now,
        );
        let run_ms = self.requests.run_time(now).as_millis() as u64;
        self.record_request(&id, &kind, "opened", None, run_ms, None);
        crate::say!(
            "confine: ask {id}: {who} wants to connect to {}:{}; it waits until approved \
             (confine approve {sandbox} {id}, or confine deny)",
            a.host,
            a.port
        );
        self.show_requests();
        if let Some(f) = failed {
            self.answered(f);
        }
    }

    /// A request's answer: recorded; a checkpoint resumes the sandbox or,
    /// denied, stops it (exit 124, reason `checkpoint`).
    pub(super) fn answered(&mut self, a: checkpoint::Answer) {
        let now = Instant::now();
        let run_ms = self.requests.run_time(now).as_millis() as u64;
        let outcome = if a.approve { "approved" } else { "denied" };
        self.record_request(
            &a.id,
            &a.kind,
            outcome,
            Some(&a.by),
            run_ms,
            a.detail.as_deref(),
        );
        let detail = a
            .detail
            .as_ref()
            .map_or(String::new(), |d| format!(" ({d})"));
        if let Kind::Ask {
            host,
            port,
            proxy_id,
            ..
        } = &a.kind
        {
            if let Some(px) = &self.w.proxy {
                px.answer(*proxy_id, a.approve);
            }
            crate::say!(
                "confine: ask {}: {host}:{port} {} by {}{detail}",
                a.id,
                if a.approve { "approved" } else { "denied" },
                a.by
            );
        }
        if a.kind == Kind::Checkpoint {
            if let Some(cg) = self.w.cgroup {
                let _ = cg.freeze(false);
            }
            if a.approve {
                crate::say!("confine: checkpoint {}: approved by {}{detail}", a.id, a.by);
            } else {
                crate::say!(
                    "confine: checkpoint {}: denied by {}{detail}; the sandbox is stopped",
                    a.id,
                    a.by
                );
                self.denied = true;
                self.stop_now();
            }
        }
        self.show_requests();
    }

    /// The sandbox is ending another way: open requests are closed
    /// unanswered and a checkpoint's freeze lifted, so that what ends it
    /// (TERM) can act.
    pub(super) fn abandon(&mut self, why: &str) {
        let gone = self.requests.abandon(why);
        if gone.is_empty() {
            return;
        }
        let run_ms = self.requests.run_time(Instant::now()).as_millis() as u64;
        for a in &gone {
            self.record_request(
                &a.id,
                &a.kind,
                "abandoned",
                Some(&a.by),
                run_ms,
                a.detail.as_deref(),
            );
        }
        if gone.iter().any(|a| a.kind == Kind::Checkpoint) {
            if let Some(cg) = self.w.cgroup {
                let _ = cg.freeze(false);
            }
        }
        self.show_requests();
    }

    fn record_request(
        &self,
        id: &str,
        kind: &Kind,
        outcome: &str,
        by: Option<&str>,
        run_time_ms: u64,
        detail: Option<&str>,
    ) {
        let (host, port) = match kind {
            Kind::Ask { host, port, .. } => (Some(host.as_str()), Some(*port)),
            Kind::Checkpoint => (None, None),
        };
        let r = self.w.audit.record(&crate::audit::Checkpoint {
            request: id,
            kind: kind.name(),
            outcome,
            by,
            run_time_ms,
            host,
            port,
            detail,
        });
        if let Err(e) = r {
            crate::say!("confine: audit log (writing a checkpoint record): {e}");
        }
    }

    /// `requests.json` in the runtime directory: the open requests, or
    /// none.
    fn show_requests(&self) {
        let Some(dir) = self.w.rundir else {
            return;
        };
        let open = self.requests.describe();
        let text = (!open.is_empty()).then(|| {
            serde_json::to_vec_pretty(&serde_json::json!({
                "state": if self.requests.checkpoint_open() { "waiting for approval" } else { "running" },
                "requests": open,
            }))
            .unwrap_or_default()
        });
        if let Err(e) = dir.put_requests(text.as_deref()) {
            crate::say!("confine: runtime directory (requests.json): {e}");
        }
    }
}
