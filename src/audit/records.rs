//! The records confine writes (DESIGN.md §7), one type per kind. The fields
//! here are a record's own; [`super::Audit::record`] adds `ts`, `event`,
//! `sandbox` and `pid`.
//!
//! A record's keys come out in name order, nested objects' too (the log
//! writes each record through a `serde_json` map, which sorts them), so a
//! field's place in a struct here doesn't change the log.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::plan::{Gap, LimitsPlan};
use crate::profile::{NetworkMode, OnViolation};
use crate::sandbox::cgroup;

/// A kind of audit record: its fields, and the `event` it is written as.
pub trait Record: Serialize {
    const EVENT: &'static str;
}

/// `launch`: what is about to run, and under which plan. Environment
/// values never appear, only keys.
#[derive(Debug, Serialize)]
pub(crate) struct Launch<'a> {
    pub profile: LaunchProfile<'a>,
    pub argv: &'a [String],
    pub workspace: &'a Path,
    pub uid: u32,
    pub gid: u32,
    pub env_keys: &'a [String],
    /// What HOME is, where the profile says (`home:`): the agent's state
    /// outside the workspace lives there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<&'a Path>,
    /// `inherited`, or `pty (stdin, stdout, stderr)` naming the streams
    /// that are the sandbox's own terminal (DESIGN.md §11).
    pub terminal: String,
    pub plan: PlanSummary<'a>,
    /// What best-effort dropped.
    pub dropped: &'a [Gap],
}

impl Record for Launch<'_> {
    const EVENT: &'static str = "launch";
}

#[derive(Debug, Serialize)]
pub(crate) struct LaunchProfile<'a> {
    pub name: &'a str,
    pub sha256: &'a str,
    pub sources: &'a [String],
}

/// The enforced plan, summed up.
#[derive(Debug, Serialize)]
pub(crate) struct PlanSummary<'a> {
    pub landlock_abi: u32,
    pub landlock_handled_fs: &'a [&'static str],
    pub landlock_handled_net: &'a [&'static str],
    pub landlock_scopes: &'a [&'static str],
    pub seccomp: SeccompSummary,
    pub namespaces: &'a [&'static str],
    pub network: NetworkMode,
    pub limits: &'a LimitsPlan,
    pub capabilities: &'a [String],
}

/// How many syscalls each filter lets through or stops.
#[derive(Debug, Serialize)]
pub(crate) struct SeccompSummary {
    pub allowed: usize,
    pub denied: usize,
    pub argument_rules: usize,
    pub on_violation: OnViolation,
}

/// `exit`: how the sandbox ended and what it used.
#[derive(Debug, Serialize)]
pub(crate) struct Exit {
    /// confine's exit status.
    pub status: u8,
    /// The signal that ended the agent, if one did.
    pub signal: Option<libc::c_int>,
    /// `exited`, `signaled`, `timeout`, `oom` or `killed` (the init was).
    pub reason: &'static str,
    pub duration_ms: u64,
    pub max_rss_kb: libc::c_long,
    pub user_cpu_ms: i64,
    pub sys_cpu_ms: i64,
    /// The sandbox's cgroup's measures, when it had one.
    pub cgroup: Option<cgroup::Stats>,
    /// Each secret route's totals (requests, tokens, cost), when the
    /// profile has secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<std::collections::BTreeMap<String, crate::egress::events::UsageTotals>>,
}

impl Record for Exit {
    const EVENT: &'static str = "exit";
}

/// `refused`: why the launch did not happen.
#[derive(Clone, Debug, Serialize)]
pub struct Refused {
    pub why: String,
    /// Known when the plan refused: the launch as asked.
    #[serde(flatten)]
    pub planned: Option<RefusedPlan>,
}

impl Record for Refused {
    const EVENT: &'static str = "refused";
}

/// What a refusal made while planning records besides its reason.
#[derive(Clone, Debug, Serialize)]
pub struct RefusedPlan {
    /// What this host can't enforce (under `compat: strict`).
    pub not_enforceable: Vec<String>,
    pub profile: ProfileId,
    pub argv: Vec<String>,
    pub workspace: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProfileId {
    pub name: String,
    pub sha256: String,
}

/// `control`: an action asked for on a running sandbox's control socket
/// (DESIGN.md §7, §12): what, who asked (the peer's uid and pid from
/// `SO_PEERCRED`), and the outcome.
#[derive(Debug, Serialize)]
pub(crate) struct Control<'a> {
    /// `stop`, `kill`, `freeze` or `thaw`.
    pub action: &'a str,
    pub uid: u32,
    pub peer_pid: i32,
    /// `done`, `stopping`, or `refused: WHY` / `failed: WHY`.
    pub outcome: &'a str,
}

impl Record for Control<'_> {
    const EVENT: &'static str = "control";
}

/// `checkpoint` (DESIGN.md §7, §12): a checkpoint or a network ask
/// opened, answered (by whom), timed out, or abandoned when the sandbox
/// ended first.
#[derive(Debug, Serialize)]
pub(crate) struct Checkpoint<'a> {
    /// The request's id, as `confine approve ID REQUEST` takes it.
    pub request: &'a str,
    /// `checkpoint` or `ask`.
    pub kind: &'a str,
    /// `opened`, `approved`, `denied` or `abandoned`.
    pub outcome: &'a str,
    /// Who answered: `hook`, `uid N` (`SO_PEERCRED` of `confine approve`
    /// or `deny`), `timeout`, or what ended it (`stop`, `kill`, `signal`,
    /// `wall_time`, `budget`); absent when opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<&'a str>,
    /// Run time so far (frozen time not counted).
    pub run_time_ms: u64,
    /// A network ask's host and port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The hook's exit, when it answered or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
}

impl Record for Checkpoint<'_> {
    const EVENT: &'static str = "checkpoint";
}

/// `connection` (proxy mode): one connection through the egress proxy,
/// admitted or not, as the proxy reported it (DESIGN.md §7).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Connection<'a>(pub &'a crate::egress::events::Connection);

impl Record for Connection<'_> {
    const EVENT: &'static str = "connection";
}

/// `budget` (proxy mode): an egress budget ran out, and what followed.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Budget<'a>(pub &'a crate::egress::events::BudgetEvent);

impl Record for Budget<'_> {
    const EVENT: &'static str = "budget";
}

/// `dropped` (proxy mode): events the proxy couldn't pass on (its pipe
/// was full), counted.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Dropped<'a>(pub &'a crate::egress::events::Dropped);

impl Record for Dropped<'_> {
    const EVENT: &'static str = "dropped";
}

/// `connection` (a secret route): one request forwarded on a route, as
/// the proxy reported it, with the route, method and status.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct RouteRequest<'a>(pub &'a crate::egress::events::RouteRequest);

impl Record for RouteRequest<'_> {
    const EVENT: &'static str = "connection";
}

/// `usage` (a secret route): what one request spent, and the totals.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Usage<'a>(pub &'a crate::egress::events::Usage);

impl Record for Usage<'_> {
    const EVENT: &'static str = "usage";
}

/// `budget` (a secret route): a route's limit was reached.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct RouteLimit<'a>(pub &'a crate::egress::events::LimitEvent);

impl Record for RouteLimit<'_> {
    const EVENT: &'static str = "budget";
}

/// `denied`: what the kernel or the proxy refused (DESIGN.md §7), the
/// first time in the run (see `crate::denials`).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Denied<'a>(pub &'a crate::denials::Denial);

impl Record for Denied<'_> {
    const EVENT: &'static str = "denied";
}

/// `denials`: at the end of a run that had denials, how many, repeats
/// included, and how many distinct ones weren't written.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct DenialTotals<'a>(pub &'a crate::denials::Totals);

impl Record for DenialTotals<'_> {
    const EVENT: &'static str = "denials";
}
