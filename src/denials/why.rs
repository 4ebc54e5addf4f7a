//! `confine why [ID|--last] [--audit-log FILE] [--json]`: a run's denials,
//! grouped by kind, each with the profile change that would allow it (as
//! YAML to paste) and, where a careful user should not make it, why.
//!
//! From the run kept in confine's state ([`super::runs`]), or from an
//! audit log's `denied` records.

use std::io::{self, BufRead, Read};
use std::path::Path;

use serde::Serialize;

use super::fix::{self, Fix};
use super::runs::{self, Context, Counted, Run};
use super::{Denial, Kind, Totals};

/// Which run.
pub enum Which<'a> {
    Id(&'a str),
    Last,
}

/// The largest audit log `why` reads.
const MAX_LOG: u64 = 256 << 20;

#[derive(Serialize)]
struct Item<'a> {
    #[serde(flatten)]
    denial: &'a Denial,
    count: u64,
    fix: Fix,
}

#[derive(Serialize)]
struct Report<'a> {
    sandbox: &'a str,
    profile: &'a str,
    started: &'a str,
    argv: &'a [String],
    exit: Option<&'a runs::ExitSummary>,
    totals: Option<&'a Totals>,
    denials: Vec<Item<'a>>,
}

/// The report for `which`, as text or JSON.
///
/// # Errors
/// The run (or the log) can't be found or read.
pub fn report(which: Which, audit_log: Option<&Path>, json: bool) -> io::Result<String> {
    let run = match audit_log {
        Some(log) => from_log(log, &which)?,
        None => match which {
            Which::Id(id) => runs::load(id)?,
            Which::Last => runs::last()?,
        },
    };
    let mut items: Vec<Item> = run
        .denials
        .iter()
        .map(|c| Item {
            denial: &c.denial,
            count: c.count,
            fix: fix::fix(&c.denial, &run.context),
        })
        .collect();
    items.sort_by_key(|i| i.denial.kind as u8);
    let r = Report {
        sandbox: &run.context.sandbox,
        profile: &run.context.profile,
        started: &run.context.started,
        argv: &run.context.argv,
        exit: run.exit.as_ref(),
        totals: run.totals.as_ref(),
        denials: items,
    };
    if json {
        return serde_json::to_string_pretty(&r)
            .map(|s| s + "\n")
            .map_err(io::Error::other);
    }
    Ok(text(&r))
}

fn text(r: &Report) -> String {
    let mut out = format!("run {}", r.sandbox);
    if !r.profile.is_empty() {
        out += &format!(" (profile {}", r.profile);
        if !r.started.is_empty() {
            out += &format!(", started {}", r.started);
        }
        out += ")";
    }
    if !r.argv.is_empty() {
        out += &format!(": {}", fix::printable(&r.argv.join(" ")));
    }
    out += "\n";
    if let Some(e) = r.exit {
        out += &format!("ended: {} (status {})\n", e.reason, e.status);
    }
    if let Some(t) = r.totals {
        out += &format!("{} denial(s), {} distinct", t.total, t.distinct);
        if t.unrecorded > 0 {
            out += &format!(
                " ({} distinct ones beyond the first {} not kept)",
                t.unrecorded,
                super::MAX_DISTINCT
            );
        }
        out += "\n";
    }
    if r.denials.is_empty() {
        out += "no denials\n";
    }
    for (kind, title) in [
        (Kind::Seccomp, "system calls (seccomp)"),
        (Kind::Landlock, "files (Landlock)"),
        (Kind::Network, "network (egress proxy)"),
    ] {
        let group: Vec<&Item> = r.denials.iter().filter(|i| i.denial.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        out += &format!("\n{title}:\n");
        for i in group {
            out += &format!("- {} {}", fix::verb(i.denial), fix::what(i.denial));
            if i.count > 1 {
                out += &format!(" ({} times)", i.count);
            }
            if let Some(exe) = &i.denial.exe {
                out += &format!(" by {}", fix::printable(exe));
            }
            out += "\n";
            if let Some(reason) = &i.denial.reason {
                out += &format!("  why: {}\n", fix::printable(reason));
            }
            match (&i.fix.yaml, &i.fix.careful) {
                (Some(y), careful) => {
                    if let Some(c) = careful {
                        out += &format!(
                            "  careful: {}; think twice before allowing it\n",
                            fix::printable(c)
                        );
                    }
                    out += &format!("  to allow it ({}):\n", i.fix.key.as_deref().unwrap_or(""));
                    for l in y.lines() {
                        out += &format!("    {l}\n");
                    }
                }
                (None, Some(c)) => out += &format!("  {}\n", fix::printable(c)),
                (None, None) => {}
            }
        }
    }
    // What no source can report (DESIGN-NOTES 53, "What can't be
    // reported"), said where the user looks for it.
    let profile = if r.profile.is_empty() {
        "PROFILE"
    } else {
        r.profile
    };
    out += &format!(
        "\nnot listed: a path the profile doesn't grant is absent inside (\"No such file or \
         directory\"), which no kernel source reports; `confine learn -p {} -- CMD` shows \
         what CMD looked for there\n",
        fix::printable(profile)
    );
    out
}

/// The run's `denied` records from an audit log (bounded), counted by key.
fn from_log(log: &Path, which: &Which) -> io::Result<Run> {
    let f = std::fs::File::open(log)?;
    crate::files::require_regular(&f)?;
    let mut denials: Vec<Counted> = Vec::new();
    let mut context = Context::default();
    let mut totals = None;
    let mut exit = None;
    let mut last_with_denials = String::new();
    let lines: Vec<serde_json::Value> = io::BufReader::new(f.take(MAX_LOG))
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let wanted = match which {
        Which::Id(id) => {
            let ids: std::collections::BTreeSet<&str> = lines
                .iter()
                .filter_map(|v| v["sandbox"].as_str())
                .filter(|s| s.starts_with(id))
                .collect();
            match ids.len() {
                1 => ids.into_iter().next().unwrap_or_default().to_string(),
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no run {id} in {}", log.display()),
                    ))
                }
                n => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{id} is the prefix of {n} runs in {}", log.display()),
                    ))
                }
            }
        }
        Which::Last => {
            for v in &lines {
                if v["event"] == "denied" {
                    last_with_denials = v["sandbox"].as_str().unwrap_or_default().to_string();
                }
            }
            if last_with_denials.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no denied records in {}", log.display()),
                ));
            }
            last_with_denials
        }
    };
    context.sandbox = wanted.clone();
    for v in lines.iter().filter(|v| v["sandbox"] == wanted.as_str()) {
        match v["event"].as_str() {
            Some("launch") => {
                context.profile = v["profile"]["name"].as_str().unwrap_or_default().into();
                context.started = v["ts"].as_str().unwrap_or_default().into();
                context.argv = serde_json::from_value(v["argv"].clone()).unwrap_or_default();
                context.workspace = v["workspace"].as_str().unwrap_or_default().into();
                context.audit_log = Some(log.to_path_buf());
            }
            Some("denied") => {
                if let Ok(d) = serde_json::from_value::<Denial>(strip(v)) {
                    match denials.iter_mut().find(|c| c.denial.key() == d.key()) {
                        Some(c) => c.count += 1,
                        None => denials.push(Counted {
                            denial: d,
                            count: 1,
                        }),
                    }
                }
            }
            Some("denials") => totals = serde_json::from_value(strip(v)).ok(),
            Some("exit") => {
                exit = Some(runs::ExitSummary {
                    status: v["status"].as_u64().unwrap_or_default() as u8,
                    reason: v["reason"].as_str().unwrap_or_default().into(),
                });
            }
            _ => {}
        }
    }
    Ok(Run {
        context,
        denials,
        totals,
        exit,
    })
}

/// A record without the envelope's fields.
fn strip(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["ts", "event", "sandbox", "pid"] {
            m.remove(k);
        }
    }
    v
}
