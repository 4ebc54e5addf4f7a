//! What was blocked (DESIGN.md §7 `denied`, §13): the denials of a run,
//! from every source the host has, as records joined to the sandbox.
//!
//! Sources:
//! - seccomp: under `on_violation: errno` the denylist answers
//!   SECCOMP_RET_USER_NOTIF and the supervisor answers EPERM ([`seccomp`]);
//! - the egress proxy's refusals (proxy mode), from its connection events;
//! - Landlock, when the kernel logs its denials to audit and confine may
//!   read them ([`landlock`]).
//!
//! Each distinct denial (kind and object: the syscall, the path and
//! access, the host) is written once, when first seen, as a `denied`
//! record, to the audit log and to the run's directory in confine's state
//! ([`runs`]), which `confine why` reads; repeats are counted. At most
//! [`MAX_DISTINCT`] are written per run; the rest are counted too, and the
//! `denials` record at the end of the run has the totals. So a flood of
//! denials costs the supervisor a counter increment each, never a write.
//!
//! The first distinct denials (up to [`MAX_HINTS`]) also print one line on
//! stderr naming the profile key that would allow them ([`fix`]), unless
//! `run --quiet` said not to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::audit::Audit;

pub mod fix;
pub mod landlock;
pub mod runs;
pub(crate) mod seccomp;
pub mod why;

/// Distinct denials written per run.
pub const MAX_DISTINCT: usize = 1000;
/// First-denial lines on stderr per run.
pub const MAX_HINTS: usize = 8;

static QUIET: AtomicBool = AtomicBool::new(false);

/// `run --quiet`: no first-denial lines on stderr (records are still
/// written).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// What refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Seccomp,
    Landlock,
    Network,
}

/// One denial: a `denied` record's own fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub kind: Kind,
    /// seccomp: the call's name (or its number, unknown to our table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
    /// seccomp, a call denied by an argument rule: the arguments, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// landlock: the object, as the kernel names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// landlock: the rights that were missing (`fs.read_file`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Vec<String>>,
    /// network: the host asked for, and its port (none for DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// network: why the proxy refused, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The denied process, in the host's PID namespace (the record's
    /// `pid` is the supervisor's), where the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_pid: Option<u32>,
    /// Its executable, where the source says and confine could read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
}

impl Denial {
    pub(crate) fn new(kind: Kind) -> Denial {
        Denial {
            kind,
            syscall: None,
            args: None,
            path: None,
            access: None,
            host: None,
            port: None,
            reason: None,
            agent_pid: None,
            exe: None,
        }
    }

    /// What makes two denials the same one: kind and object.
    pub fn key(&self) -> String {
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        match self.kind {
            Kind::Seccomp => format!("seccomp {}", o(&self.syscall)),
            Kind::Landlock => format!(
                "landlock {} {}",
                o(&self.path),
                self.access.clone().unwrap_or_default().join(",")
            ),
            Kind::Network => format!("network {}", o(&self.host)),
        }
    }
}

/// The `denials` record at the end of a run that had any: totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Every denial seen, repeats included.
    pub total: u64,
    /// Distinct denials (each written once as a `denied` record).
    pub distinct: u64,
    /// Distinct denials beyond [`MAX_DISTINCT`]: counted, not written.
    pub unrecorded: u64,
    /// Denials per kind, repeats included.
    #[serde(default)]
    pub by_kind: HashMap<Kind, u64>,
    /// Audit records the kernel dropped before confine read them (its
    /// socket's buffer was full): Landlock denials not counted above.
    #[serde(default)]
    pub lost: u64,
}

/// The run's book of denials, kept by the supervisor.
pub(crate) struct Book {
    seen: HashMap<String, usize>,
    /// Each distinct denial with its count, in order of first sight.
    entries: Vec<(Denial, u64)>,
    totals: Totals,
    hints: usize,
    run: runs::Writer,
}

impl Book {
    pub(crate) fn new(run: runs::Writer) -> Book {
        Book {
            seen: HashMap::new(),
            entries: Vec::new(),
            totals: Totals::default(),
            hints: 0,
            run,
        }
    }

    /// `n` records of a source were lost.
    pub(crate) fn lost(&mut self, n: u64) {
        self.totals.lost += n;
    }

    /// Whether this denial (by key) was seen before; counts it if so.
    /// Lets a source skip the work of describing a repeat (reading the
    /// caller's executable).
    pub(crate) fn repeat(&mut self, key: &str, kind: Kind) -> bool {
        match self.seen.get(key) {
            Some(&i) => {
                self.totals.total += 1;
                *self.totals.by_kind.entry(kind).or_default() += 1;
                if i != usize::MAX {
                    self.entries[i].1 += 1;
                }
                true
            }
            None => false,
        }
    }

    /// Counts `d`; the first of its kind and object is written and maybe
    /// told on stderr. `raw_tty`: the caller's terminal is in raw mode (a
    /// relayed pty), so lines end in CR LF.
    pub(crate) fn add(&mut self, d: Denial, audit: &Audit, raw_tty: bool) {
        let key = d.key();
        if self.repeat(&key, d.kind) {
            return;
        }
        self.totals.total += 1;
        *self.totals.by_kind.entry(d.kind).or_default() += 1;
        self.totals.distinct += 1;
        if self.entries.len() >= MAX_DISTINCT {
            self.totals.unrecorded += 1;
            self.seen.insert(key, usize::MAX);
            return;
        }
        if let Err(e) = audit.record(&crate::audit::Denied(&d)) {
            crate::say!("confine: audit log (writing a denied record): {e}");
        }
        self.run.denial(&d);
        if self.hints < MAX_HINTS && !QUIET.load(Ordering::Relaxed) {
            self.hints += 1;
            let line = format!(
                "confine: {} {} ({})",
                fix::verb(&d),
                fix::what(&d),
                fix::hint(&d, &self.run.context)
            );
            hint_line(&line, raw_tty);
        }
        self.seen.insert(key, self.entries.len());
        self.entries.push((d, 1));
    }

    /// The end of the run: the totals record, and the run's summary.
    pub(crate) fn finish(&mut self, audit: &Audit, exit: Option<&runs::ExitSummary>) {
        if self.totals.total == 0 && self.totals.lost == 0 {
            return;
        }
        if let Err(e) = audit.record(&crate::audit::DenialTotals(&self.totals)) {
            crate::say!("confine: audit log (writing the denials record): {e}");
        }
        self.run.finish(&self.entries, &self.totals, exit);
        if self.hints > 0 && !QUIET.load(Ordering::Relaxed) {
            let why = match (&self.run.context.audit_log, self.run.kept()) {
                (_, true) => format!("confine why {}", audit.sandbox),
                (Some(log), false) => format!(
                    "confine why --audit-log {} {}",
                    fix::printable(&log.display().to_string()),
                    audit.sandbox
                ),
                (None, false) => {
                    crate::say!("confine: {} denial(s)", self.totals.total);
                    return;
                }
            };
            crate::say!(
                "confine: {} denial(s); `{why}` shows each with the profile change that would allow it",
                self.totals.total,
            );
        }
    }
}

/// One line on stderr; on a terminal in raw mode (the supervisor relays
/// the sandbox's pty) between CR LFs: the terminal doesn't translate LF
/// there, and the line must neither overwrite nor continue whatever the
/// agent left on the current line.
fn hint_line(line: &str, raw_tty: bool) {
    if raw_tty {
        let text = format!("\r\n{line}\r\n");
        // SAFETY: write of a valid buffer to fd 2; a short or failed write
        // of a hint is dropped.
        unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
    } else {
        crate::say!("{line}");
    }
}

/// The supervisor's hook: every source of denials of one run, and its
/// book. One more set of fds in the loop's poll; never blocks.
pub(crate) struct Watch {
    seccomp: Option<seccomp::Source>,
    landlock: Option<landlock::Source>,
    book: Book,
}

impl Watch {
    /// For the run of `plan` with id `sandbox`: `listener`, where the init
    /// sends the denylist's listener; `landlock`, the audit reader when
    /// the host offers one.
    pub(crate) fn new(
        plan: &crate::plan::Plan,
        sandbox: &str,
        listener: Option<crate::launch::channel::ListenerReceiver>,
        landlock: Option<landlock::Source>,
    ) -> Watch {
        let arch = crate::syscalls::Arch::native();
        let denied = plan
            .seccomp
            .deny
            .iter()
            .filter_map(|n| crate::syscalls::number(arch, n))
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let context = runs::Context {
            sandbox: sandbox.to_string(),
            started: crate::audit::rfc3339_now(),
            started_ms: now.as_millis() as u64,
            profile: plan.profile.name.clone(),
            workspace: plan.workspace.clone(),
            argv: plan.command.clone(),
            protect: plan.filesystem.protect.clone(),
            audit_log: plan.audit_log.clone(),
        };
        // The kept runs must be out of the agent's reach: inside a grant it
        // could read other runs' denials, or forge what `why` suggests.
        let exposed = crate::state::base().ok().and_then(|base| {
            plan.filesystem
                .grants
                .iter()
                .filter(|g| !g.implicit)
                .find(|g| base.starts_with(&g.path) || base.starts_with(&g.written))
                .map(|g| {
                    format!(
                        "{} is inside the grant {}, within the agent's reach; this run is not kept there",
                        base.display(),
                        g.written.display()
                    )
                })
        });
        let run = match exposed {
            Some(why) => runs::Writer::refused(context, &why),
            None => runs::Writer::new(context),
        };
        Watch {
            seccomp: listener.map(|rx| {
                let s = seccomp::Source::new(rx, denied);
                if plan.seccomp.learning {
                    s.learning(crate::learn::observe::Observer::new(plan))
                } else {
                    s
                }
            }),
            landlock,
            book: Book::new(run),
        }
    }

    pub(crate) fn fds(&self, out: &mut Vec<libc::pollfd>) {
        if let Some(s) = &self.seccomp {
            s.fds(out);
        }
        if let Some(l) = &self.landlock {
            l.fds(out);
        }
    }

    /// Whatever the sources have, bounded per call.
    pub(crate) fn ready(&mut self, fds: &[libc::pollfd], audit: &Audit, raw_tty: bool) {
        if let Some(s) = &mut self.seccomp {
            s.ready(fds, &mut self.book, audit, raw_tty);
        }
        if let Some(l) = &mut self.landlock {
            l.ready(fds, &mut self.book, audit, raw_tty);
        }
    }

    /// A connection record of the egress proxy: a refusal is a denial.
    pub(crate) fn connection(
        &mut self,
        c: &crate::egress::events::Connection,
        audit: &Audit,
        raw_tty: bool,
    ) {
        if let Some(s) = &mut self.seccomp {
            s.connection(c);
        }
        // Policy decisions only: a connection that failed isn't a denial.
        let policy = c.reason.as_deref().and_then(fix::net_cause).is_some();
        if c.verdict != crate::egress::events::Verdict::Refused || c.host.is_empty() || !policy {
            return;
        }
        let mut d = Denial::new(Kind::Network);
        d.host = Some(c.host.clone());
        d.port = c.port;
        d.reason = c.reason.clone();
        self.book.add(d, audit, raw_tty);
    }

    /// The run has ended: late Landlock records, then the totals.
    pub(crate) fn finish(&mut self, audit: &Audit, exit: Option<&runs::ExitSummary>) {
        if let Some(l) = &mut self.landlock {
            l.drain(&mut self.book, audit);
        }
        if let Some(s) = &mut self.seccomp {
            s.finish();
        }
        self.book.finish(audit, exit);
    }
}
