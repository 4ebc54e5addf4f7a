//! The command line's side: `confine ps`, `stop`, `kill`, `freeze`,
//! `thaw`, `stats` and the runtime directories' part of `confine gc`.
//!
//! A sandbox is found in the runtime directories the caller may look in
//! (root: everyone's; anyone else: their own), by its id or a unique
//! prefix of it. `stop` and `kill` return only once the sandbox's
//! supervisor has ended, which it does only when no process of the
//! sandbox is left: the CLI holds a pidfd of the supervisor, opened (and
//! checked against the start time in `info.json`) before asking, and waits
//! on it. A supervisor that doesn't answer within [`ANSWER_WAIT`] is
//! killed through that pidfd: its init dies with it (PDEATHSIG), and with
//! the init the whole PID namespace.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::sandbox::runtime_dir::{self, Entry, Scan};

/// Exit status: no such sandbox, or the action was refused or failed.
pub const EXIT_NO: u8 = 1;
/// Exit status: bad usage.
pub const EXIT_USAGE: u8 = 125;

/// How long a supervisor has to answer a request.
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// Beyond the grace, how long `stop` waits for the supervisor to end (its
/// cgroup emptied and removed, its records written).
const END_WAIT: Duration = Duration::from_secs(15);
/// The longest reply read.
const REPLY_MAX: u64 = 1 << 20;

/// What the caller asked `stop` and `kill` to act on.
pub enum Target {
    One(String),
    All,
}

/// One request to `e`'s supervisor, and its reply.
///
/// # Errors
/// The socket refused us or the supervisor didn't answer in time, or the
/// reply isn't JSON.
pub fn ask(e: &Entry, req: &Value, wait: Duration) -> Result<Value, String> {
    let mut s = e
        .connect()
        .map_err(|err| format!("connecting to {}/control: {err}", e.path.display()))?;
    let _ = s.set_write_timeout(Some(wait));
    let _ = s.set_read_timeout(Some(wait));
    let mut text = req.to_string();
    text.push('\n');
    s.write_all(text.as_bytes())
        .map_err(|err| format!("sending the request: {err}"))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    (&mut s)
        .take(REPLY_MAX)
        .read_to_end(&mut reply)
        .map_err(|err| format!("no answer from the supervisor (pid {}): {err}", e.info.pid))?;
    serde_json::from_slice(&reply)
        .map_err(|err| format!("no answer from the supervisor (pid {}): {err}", e.info.pid))
}

/// The reply's error, when it says `ok: false`.
fn refused(reply: &Value) -> Option<String> {
    (reply["ok"] != Value::Bool(true)).then(|| {
        reply["error"]
            .as_str()
            .unwrap_or("refused without a reason")
            .to_string()
    })
}

/// The entry `id` names: an id or a unique prefix of one.
fn resolve<'a>(scan: &'a Scan, id: &str) -> Result<&'a Entry, (u8, String)> {
    if !runtime_dir::valid_id(id) {
        return Err((
            EXIT_USAGE,
            format!("confine: sandbox id ({id:?}): an id is letters and digits, as `confine ps` shows it"),
        ));
    }
    let found: Vec<&Entry> = scan
        .live
        .iter()
        .filter(|e| e.info.id.starts_with(id))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err((
            EXIT_NO,
            format!("confine: sandbox {id}: no such sandbox running that you may control (see confine ps)"),
        )),
        many => Err((
            EXIT_NO,
            format!(
                "confine: sandbox {id}: the prefix names {} sandboxes ({}); give more of the id",
                many.len(),
                many.iter()
                    .map(|e| short(&e.info.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn age(started: u64) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(started)
}

fn human_age(s: u64) -> String {
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m", s / 60),
        6000..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `confine ps [--json]`: the text to print. Each row is one `stats`
/// request: state, and what the sandbox uses now.
pub fn ps(json_out: bool) -> String {
    let scan = runtime_dir::scan();
    let rows: Vec<Value> = scan
        .live
        .iter()
        .map(|e| {
            let r = ask(e, &json!({"op": "stats"}), Duration::from_secs(1))
                .ok()
                .filter(|r| refused(r).is_none());
            let state = r
                .as_ref()
                .and_then(|r| r["state"].as_str().map(str::to_string))
                .unwrap_or_else(|| "unresponsive".to_string());
            let usage = |k: &str| r.as_ref().map_or(Value::Null, |r| r["usage"][k].clone());
            let i = &e.info;
            json!({
                "id": i.id, "pid": i.pid, "uid": i.uid, "profile": i.profile,
                "command": i.command, "workspace": i.workspace, "started": i.started,
                "age_s": age(i.started_unix), "state": state, "cgroup": i.cgroup,
                "cpu_usage_usec": usage("cpu_usage_usec"),
                "memory_bytes": usage("memory_bytes"),
                "processes": usage("processes"),
                "pids": usage("pids"),
                "network": r.as_ref().map_or(Value::Null, |r| r["network"].clone()),
                "requests": r.as_ref().map_or(Value::Null, |r| r["requests"].clone()),
            })
        })
        .collect();
    if json_out {
        return serde_json::to_string_pretty(&rows).expect("json") + "\n";
    }
    let mut out = format!(
        "{:<12}  {:>7}  {:>6}  {:<12}  {:<20}  {:>4}  {:>7}  {:>7}  {:>5}  {:>15}  COMMAND\n",
        "ID", "PID", "UID", "PROFILE", "STATE", "AGE", "CPU", "MEM", "PIDS", "NET IN/OUT"
    );
    for (r, e) in rows.iter().zip(&scan.live) {
        let cpu = r["cpu_usage_usec"]
            .as_u64()
            .map_or("-".to_string(), |u| format!("{:.1}s", u as f64 / 1e6));
        let mem = r["memory_bytes"]
            .as_u64()
            .map_or("-".to_string(), human_bytes);
        let pids = r["processes"]
            .as_u64()
            .or_else(|| r["pids"].as_u64())
            .map_or("-".to_string(), |n| n.to_string());
        let net = match (
            r["network"]["bytes_in"].as_u64(),
            r["network"]["bytes_out"].as_u64(),
        ) {
            (Some(i), Some(o)) => format!("{}/{}", human_bytes(i), human_bytes(o)),
            _ => "-".to_string(),
        };
        out.push_str(&format!(
            "{:<12}  {:>7}  {:>6}  {:<12}  {:<20}  {:>4}  {:>7}  {:>7}  {:>5}  {:>15}  {}\n",
            short(&e.info.id),
            e.info.pid,
            e.info.uid,
            e.info.profile,
            r["state"].as_str().unwrap_or(""),
            human_age(age(e.info.started_unix)),
            cpu,
            mem,
            pids,
            net,
            e.info.command.join(" ")
        ));
    }
    out
}

/// `1.5M`-style sizes for the table.
fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// `confine gc`'s part: the runtime directories of killed supervisors.
pub fn gc() -> Vec<String> {
    runtime_dir::scan()
        .removed
        .iter()
        .map(|p| {
            format!(
                "{}: runtime directory of a killed supervisor removed",
                p.display()
            )
        })
        .collect()
}

/// A pidfd of the supervisor, if it is still the process `info.json`
/// names (same pid, same start time); `None` once it has ended.
fn supervisor(e: &Entry) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, e.info.pid, 0u32) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the fd was just returned to us and nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Checked after the pidfd holds the pid: it can't be reused now.
    (runtime_dir::start_time(e.info.pid) == Some(e.info.pid_start)).then_some(fd)
}

/// Waits until the process behind `fd` ends or `until` passes.
fn wait_end(fd: &OwnedFd, until: Instant) -> bool {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: p is one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            return true;
        }
        if n == 0 || Instant::now() >= until {
            return false;
        }
    }
}

fn kill_by_pidfd(fd: &OwnedFd) {
    // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
}

/// `confine stop` (`grace: Some`) or `confine kill` (`None`): the messages
/// to print and the exit status.
pub fn stop(target: &Target, kill: bool, grace: Option<Duration>) -> (u8, Vec<String>) {
    let scan = runtime_dir::scan();
    let chosen: Vec<&Entry> = match target {
        Target::All => scan.live.iter().collect(),
        Target::One(id) => match resolve(&scan, id) {
            Ok(e) => vec![e],
            Err((code, msg)) => return (code, vec![msg]),
        },
    };
    let action = if kill { "kill" } else { "stop" };
    let req = if kill {
        json!({"op": "kill"})
    } else {
        match grace {
            Some(g) => json!({"op": "stop", "grace_ms": g.as_millis() as u64}),
            None => json!({"op": "stop"}),
        }
    };
    let mut msgs = Vec::new();
    let mut code = 0;
    // Every sandbox is asked first, then waited for: `--all` takes as long
    // as the slowest, not the sum.
    let mut waiting: Vec<(&Entry, OwnedFd, Instant)> = Vec::new();
    for e in chosen {
        let Some(fd) = supervisor(e) else {
            continue; // Ended meanwhile.
        };
        let grace_then = grace
            .or(e.info.grace_ms.map(Duration::from_millis))
            .unwrap_or_default();
        let until = Instant::now() + grace_then + END_WAIT;
        match ask(e, &req, ANSWER_WAIT) {
            Ok(reply) => {
                if let Some(why) = refused(&reply) {
                    msgs.push(format!("confine: {action} {}: {why}", short(&e.info.id)));
                    code = EXIT_NO;
                    continue;
                }
            }
            Err(why) => {
                // The emergency stop doesn't depend on a supervisor that
                // answers: killing it takes its sandbox along.
                kill_by_pidfd(&fd);
                msgs.push(format!(
                    "confine: {action} {}: {why}; its supervisor (pid {}) was killed instead",
                    short(&e.info.id),
                    e.info.pid
                ));
            }
        }
        waiting.push((e, fd, until));
    }
    for (e, fd, until) in waiting {
        if !wait_end(&fd, until) {
            msgs.push(format!(
                "confine: {action} {}: its supervisor (pid {}) hasn't ended after {}s",
                short(&e.info.id),
                e.info.pid,
                until.saturating_duration_since(Instant::now()).as_secs()
            ));
            code = EXIT_NO;
        }
    }
    (code, msgs)
}

/// `confine freeze` / `confine thaw`: returns once the freezer says so.
pub fn freeze(id: &str, on: bool) -> (u8, Vec<String>) {
    let scan = runtime_dir::scan();
    let e = match resolve(&scan, id) {
        Ok(e) => e,
        Err((code, msg)) => return (code, vec![msg]),
    };
    let (op, want) = if on {
        ("freeze", "frozen")
    } else {
        ("thaw", "running")
    };
    let fail = |why: String| {
        (
            EXIT_NO,
            vec![format!("confine: {op} {}: {why}", short(&e.info.id))],
        )
    };
    match ask(e, &json!({ "op": op }), ANSWER_WAIT) {
        Ok(r) => {
            if let Some(why) = refused(&r) {
                return fail(why);
            }
        }
        Err(why) => return fail(why),
    }
    // The kernel freezes asynchronously: wait until every task has.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let state = ask(e, &json!({"op": "status"}), ANSWER_WAIT)
            .ok()
            .and_then(|r| r["state"].as_str().map(str::to_string));
        match state.as_deref() {
            Some(s) if s == want => return (0, Vec::new()),
            Some("stopping") | None => {
                return fail("the sandbox ended or is being stopped".to_string())
            }
            _ => {}
        }
        if Instant::now() >= until {
            return fail(format!("not {want} after 10s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `confine approve ID [REQUEST]` / `confine deny ID [REQUEST]`: the
/// request answered, and the exit status.
pub fn answer(id: &str, request: Option<&str>, approve: bool) -> (u8, Vec<String>) {
    let scan = runtime_dir::scan();
    let e = match resolve(&scan, id) {
        Ok(e) => e,
        Err((code, msg)) => return (code, vec![msg]),
    };
    let op = if approve { "approve" } else { "deny" };
    let mut req = json!({ "op": op });
    if let Some(r) = request {
        req["request"] = r.into();
    }
    match ask(e, &req, ANSWER_WAIT) {
        Ok(r) => match refused(&r) {
            None => (0, Vec::new()),
            Some(why) => (
                EXIT_NO,
                vec![format!("confine: {op} {}: {why}", short(&e.info.id))],
            ),
        },
        Err(why) => (
            EXIT_NO,
            vec![format!("confine: {op} {}: {why}", short(&e.info.id))],
        ),
    }
}

/// `confine stats ID [--json]`.
pub fn stats(id: &str, json_out: bool) -> (u8, String) {
    let scan = runtime_dir::scan();
    let e = match resolve(&scan, id) {
        Ok(e) => e,
        Err((code, msg)) => return (code, msg),
    };
    let r = match ask(e, &json!({"op": "stats"}), ANSWER_WAIT) {
        Ok(r) => r,
        Err(why) => {
            return (
                EXIT_NO,
                format!("confine: stats {}: {why}", short(&e.info.id)),
            )
        }
    };
    if let Some(why) = refused(&r) {
        return (
            EXIT_NO,
            format!("confine: stats {}: {why}", short(&e.info.id)),
        );
    }
    let mut v = json!({
        "id": e.info.id, "state": r["state"], "source": r["source"],
        "age_s": age(e.info.started_unix), "run_time_ms": r["run_time_ms"],
    });
    if let (Some(obj), Some(usage)) = (v.as_object_mut(), r["usage"].as_object()) {
        for (k, x) in usage {
            obj.insert(k.clone(), x.clone());
        }
    }
    // Proxy mode: the egress proxy's traffic, as `network_*`.
    if let (Some(obj), Some(net)) = (v.as_object_mut(), r["network"].as_object()) {
        for (k, x) in net {
            let k = match k.as_str() {
                "bytes_out" => "network_out_bytes".to_string(),
                "bytes_in" => "network_in_bytes".to_string(),
                other => format!("network_{other}"),
            };
            obj.insert(k, x.clone());
        }
    }
    if json_out {
        return (0, serde_json::to_string_pretty(&v).expect("json") + "\n");
    }
    let mut out = String::new();
    for (k, x) in v.as_object().into_iter().flatten() {
        if x.is_null() {
            continue;
        }
        let shown = match (k.ends_with("_bytes"), x.as_u64()) {
            (true, Some(b)) => format!("{:.1} MiB", b as f64 / 1048576.0),
            _ => x.as_str().map_or_else(|| x.to_string(), str::to_string),
        };
        out.push_str(&format!("{k:<20} {shown}\n"));
    }
    (0, out)
}
