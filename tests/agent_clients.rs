//! The real agent clients under their built-in profiles, with their
//! secrets: Claude Code (`claude -p`), Codex (`codex exec`), Gemini CLI
//! (`gemini -p`) from npm and aider (`aider --message`) from PyPI, each
//! installed once under target/agents (later runs and CI reuse it), each
//! run non-interactively for one turn against a model API stand-in over
//! TLS (tests/common/net.rs: the clients are real, only the upstream is a
//! test double) in a test network of the test's own.
//!
//! Each test profile `extends` the built-in agent profile and adds only
//! what the test network needs: `hosts:` pinning the provider's host to
//! the stand-in, the installation in `filesystem.exec`. The key comes
//! from confine's own environment (the built-in's `env:` source); the test
//! CA is trusted through confine's own SSL_CERT_FILE, so the proxy's
//! verification is as strict as ever and the client's isn't touched.
//!
//! Asserted for each: the stand-in got the real key in the provider's
//! header, on every request; while the client waited for its answer, no
//! process of the sandbox held the key in its environment or arguments
//! (and the client's held the placeholder: the control), nor anywhere in
//! its memory (read through /proc/PID/mem; the placeholder is found
//! there: the control); the workspace holds no key and none of the
//! client's state, which is in the private home; the client printed the
//! stand-in's answer, with no EPERM, EACCES or ENOSYS; a write outside the
//! workspace fails.
//!
//! And one turn of real work: the stand-in has the client run a probe
//! (Claude Code's `Bash`, Codex's `exec_command`, Gemini CLI's
//! `run_shell_command`; aider, which has no shell tool, writes it with a
//! SEARCH/REPLACE edit and runs it as its test command). The probe writes
//! what only the inside shows (the sandbox's hostname, its seccomp mode,
//! the agent's uid) into the workspace, where the test finds it, and tries
//! to write a fixture outside the workspace, which stays as it was; its
//! output reaches the stand-in in the client's next request.
//!
//! And the `python-agent` workload, without a model: a venv, pip from a
//! local index (pinned in `hosts:`), unittest, a git branch, commit and
//! diff, make.
mod common;
use common::agents::{self, readable};
use common::net::{Api, Net, Reply};
use common::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The stand-in's address (the provider's host is pinned to it).
const API_ADDR: &str = "93.184.215.14";
const DNS: &str = "198.51.100.53";
/// The real key, split so no command line of the test holds it whole.
const KEY_A: &str = "REALKEY-";
const KEY_B: &str = "5c1e8a7f03d94b26";
/// What every stand-in answers.
const ANSWER: &str = "hello from the test upstream";

fn key(prefix: &str) -> String {
    format!("{prefix}{KEY_A}{KEY_B}")
}

/// The client's executables, installed from npm once.
fn npm(test: &str, dir: &str, package: &str, bin: &str) -> Option<PathBuf> {
    agents::npm(test, dir, package, bin).map(|d| d.join("node_modules/.bin"))
}

/// `pip install aider-chat` into a venv under target/agents/aider once,
/// on the system's Python (the agent's uid can't read a Python under
/// /root); the venv's bin, or None.
fn aider(test: &str) -> Option<PathBuf> {
    let venv = agents::dir().join("aider/venv");
    let bins = venv.join("bin");
    if !bins.join("aider").exists() {
        if !Path::new("/usr/bin/python3").exists() {
            skip_or_fail(test, "no /usr/bin/python3");
            return None;
        }
        let _ = fs::remove_dir_all(&venv);
        fs::create_dir_all(venv.parent().unwrap()).unwrap();
        let o = Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .unwrap();
        if !o.status.success() {
            skip_or_fail(test, &format!("python3 -m venv failed: {}", show(&o)));
            return None;
        }
        let o = Command::new(bins.join("pip"))
            .args([
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "aider-chat",
            ])
            .env("PATH", PATH)
            .env("PIP_CACHE_DIR", agents::dir().join("pip-cache"))
            .output()
            .unwrap();
        if !o.status.success() || !bins.join("aider").exists() {
            skip_or_fail(
                test,
                &format!("pip install aider-chat failed: {}", show(&o)),
            );
            return None;
        }
    }
    readable(&venv);
    Some(bins)
}

/// A private home under /var/lib/confine/homes, removed at the end.
struct Home(PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One client's run.
struct Client<'a> {
    test: &'a str,
    /// The built-in profile.
    profile: &'a str,
    /// The provider's host, pinned to the stand-in.
    host: &'a str,
    /// confine's variable the built-in reads the key from (and the one
    /// the agent gets the placeholder in).
    key_env: &'a str,
    /// The real key's prefix (its shape).
    key_prefix: &'a str,
    /// The header the key must arrive in, and its value for key K.
    header: &'a str,
    value: fn(&str) -> String,
    /// The installation's bin directory (granted, put first on PATH).
    bins: PathBuf,
    /// What the sandbox's shell runs: the client's non-interactive turn.
    command: String,
    /// Files or directories of the client's state, in the private home.
    state: &'a [&'a str],
    /// More of the test profile.
    extra: &'a str,
    /// What the model has the client do before it answers.
    turn: Turn,
}

/// What the model has a client do before it answers [`ANSWER`].
#[derive(Clone, Copy, PartialEq)]
enum Turn {
    /// Nothing.
    Answer,
    /// Run [`probe`] with the client's own shell tool.
    Shell,
    /// Write [`probe`] into `probe.sh` with an edit (aider's
    /// SEARCH/REPLACE), which the client's test command then runs.
    Edit,
}

/// What the probe writes into the workspace, run inside the sandbox: the
/// sandbox's hostname (the host's is another), its seccomp mode (2: a
/// filter) and the agent's uid.
fn probe_report() -> String {
    format!("confine\nSeccomp:\t2\n{AGENT_UID}\n")
}

/// The probe the model has the client run: it writes [`probe_report`]
/// into `probe-out.txt` in the workspace and prints it, then tries to
/// write `victim`, outside the workspace, and prints the status. No
/// command substitution: Gemini CLI refuses `$(...)`.
fn probe(victim: &Path) -> String {
    format!(
        "hostname > probe-out.txt; grep Seccomp: /proc/self/status >> probe-out.txt; \
         id -u >> probe-out.txt; cat probe-out.txt; \
         echo attack 2>/dev/null > {}; echo outside=$?",
        victim.display()
    )
}

/// What a run left to look at.
struct Ran {
    out: Output,
    api: Api,
    home: Home,
    ws: PathBuf,
    victim: PathBuf,
    /// Pids looked at while the client waited, and what was found.
    scanned: usize,
    placeholder_in: Vec<String>,
    key_in: Vec<String>,
    /// The processes whose memory was read while the client waited,
    /// those that held the placeholder and those that held the key.
    memory: Vec<String>,
    placeholder_in_memory: Vec<String>,
    key_in_memory: Vec<String>,
    /// Whether the egress proxy's memory held the key, as it must.
    key_in_proxy: bool,
    _f: Fixture,
    _net: Net,
}

/// The supervisor and everything below it.
fn tree(root: i32) -> Vec<i32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let pid = all[i];
        if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                let kids = fs::read_to_string(t.path().join("children")).unwrap_or_default();
                all.extend(
                    kids.split_whitespace()
                        .filter_map(|c| c.parse::<i32>().ok()),
                );
            }
        }
        i += 1;
    }
    all.sort();
    all.dedup();
    all
}

fn run_client(c: &Client) -> Ran {
    let net = Net::new();
    let _dns = net.dns(DNS);
    let f = Fixture::new(&format!("clients-{}", c.profile));
    let victim = f.file(&f.outside.join("victim"), "original");
    let reply = match c.turn {
        Turn::Answer => Reply::Model {
            text: ANSWER.into(),
        },
        Turn::Shell => Reply::Tool {
            command: probe(&victim),
            text: ANSWER.into(),
        },
        Turn::Edit => Reply::Edit {
            path: "probe.sh".into(),
            content: format!("{}\nexit 1\n", probe(&victim)),
            text: ANSWER.into(),
            // The report as a JSON string holds it: the test command's
            // output came back.
            done_when: "Seccomp:\\t2".into(),
        },
    };
    let api = net.api(API_ADDR, &[c.host], reply);
    let name = format!("test-{}-{}", c.profile, unique());
    let home = Home(Path::new("/var/lib/confine/homes").join(&name));
    let yaml = format!(
        "version: 1\nname: {name}\nextends: {}\nnetwork:\n  hosts: {{{}: {API_ADDR}}}\n\
         filesystem:\n  exec: {{add: [\"{}\"]}}\n{}",
        c.profile,
        c.host,
        c.bins.parent().unwrap().display(),
        c.extra
    );
    let p = f.profile(&name, &yaml);
    let script = format!(
        "echo \"held=${}\"; {}; echo client=$?; echo x 2>/dev/null > {}; echo outside=$?",
        c.key_env,
        c.command,
        victim.display()
    );
    let mut cmd = Command::new(bin());
    cmd.args(["run", "-p"])
        .arg(&p)
        .arg("-w")
        .arg(&f.ws)
        .args(["--", "/bin/sh", "-c", &script])
        .env_clear()
        .env("PATH", format!("{}:{PATH}", c.bins.display()))
        .env("TERM", "dumb")
        .env(c.key_env, key(c.key_prefix))
        .env("SSL_CERT_FILE", net.ca())
        .current_dir(&f.ws);
    // Answers wait until the sandbox has been looked at.
    api.hold();
    let mut child = net
        .in_client(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `ip netns exec` execs confine: the child is the supervisor.
    let supervisor = child.id() as i32;
    let asked = poll(Duration::from_secs(90), || {
        !api.requests().is_empty() || child.try_wait().unwrap().is_some()
    });
    let needle = key(c.key_prefix);
    let (mut scanned, mut placeholder_in, mut key_in) = (0, Vec::new(), Vec::new());
    let (mut memory, mut placeholder_in_memory, mut key_in_memory) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut key_in_proxy = false;
    if asked && !api.requests().is_empty() {
        // The memory of every process of the sandbox: those in its pid
        // namespace, the supervisor's no more. The supervisor and the
        // egress proxy (forked before the sandbox) are outside it and
        // hold the key by design.
        // The proxy's memory is read too, for the control that the scan
        // finds the key where it is.
        let outside = pid_ns(supervisor);
        for pid in tree(supervisor) {
            let ns = pid_ns(pid);
            let argv0 = argv(pid).unwrap_or_default().join(" ");
            let argv0: String = argv0.chars().take(80).collect();
            let proxy = argv0.starts_with("confine-egress");
            if ns.is_none() || ns == outside && !proxy {
                continue;
            }
            let Some(scan) = memory_holding(pid, &[needle.as_bytes(), b"confine-placeholder"])
            else {
                continue;
            };
            if proxy {
                key_in_proxy |= scan.found[0];
                continue;
            }
            memory.push(format!("{pid} ({} MiB): {argv0}", scan.read >> 20));
            if scan.found[0] {
                key_in_memory.push(format!("{pid}: {argv0}"));
            }
            if scan.found[1] {
                placeholder_in_memory.push(format!("{pid}: {argv0}"));
            }
        }
        for pid in tree(supervisor) {
            for what in ["environ", "cmdline"] {
                let Ok(bytes) = fs::read(format!("/proc/{pid}/{what}")) else {
                    continue;
                };
                scanned += 1;
                let text = String::from_utf8_lossy(&bytes);
                let argv0 = fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .split('\0')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                if text.contains(&needle) {
                    key_in.push(format!("{pid} {what}: {argv0}"));
                }
                if what == "environ" && text.contains("confine-placeholder") {
                    placeholder_in.push(argv0);
                }
            }
        }
    }
    api.release();
    // Output is read on threads: a client that writes much can't block.
    let out = {
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        let t1 = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut so, &mut v).ok();
            v
        });
        let t2 = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut se, &mut v).ok();
            v
        });
        if !poll(Duration::from_secs(180), || {
            child.try_wait().unwrap().is_some()
        }) {
            child.kill().unwrap();
        }
        let status = child.wait().unwrap();
        Output {
            status,
            stdout: t1.join().unwrap(),
            stderr: t2.join().unwrap(),
        }
    };
    Ran {
        out,
        api,
        home,
        ws: f.ws.clone(),
        victim,
        scanned,
        placeholder_in,
        key_in,
        memory,
        placeholder_in_memory,
        key_in_memory,
        key_in_proxy,
        _f: f,
        _net: net,
    }
}

/// The pid namespace of `pid`, or None if it is gone.
fn pid_ns(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// The mappings read of [`memory_holding`]: larger ones are skipped (a
/// reservation, not data a client wrote).
const MAX_MAPPING: u64 = 512 << 20;

/// What [`memory_holding`] found.
struct MemoryScan {
    /// Bytes read.
    read: u64,
    /// Whether each needle was found.
    found: Vec<bool>,
}

/// Reads every readable mapping of `pid` (/proc/PID/maps, then
/// /proc/PID/mem: root's ptrace rights), each up to [`MAX_MAPPING`], and
/// says which of `needles` occur in it. Mappings that can't be read
/// ([vvar], pages gone) are skipped; None if the process is gone.
fn memory_holding(pid: i32, needles: &[&[u8]]) -> Option<MemoryScan> {
    use std::os::unix::fs::FileExt;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mem = fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let longest = needles.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut scan = MemoryScan {
        read: 0,
        found: vec![false; needles.len()],
    };
    let mut buf = vec![0u8; 4 << 20];
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        if !perms.starts_with('r') || end - start > MAX_MAPPING {
            continue;
        }
        // In chunks that overlap by a needle's length, so none is missed
        // at a chunk's edge.
        let mut at = start;
        while at < end {
            let want = ((end - at) as usize).min(buf.len());
            let Ok(n) = mem.read_at(&mut buf[..want], at) else {
                break;
            };
            if n == 0 {
                break;
            }
            scan.read += n as u64;
            for (i, needle) in needles.iter().enumerate() {
                scan.found[i] |= contains(&buf[..n], needle);
            }
            if at + (n as u64) >= end || n <= longest {
                break;
            }
            at += (n - longest) as u64;
        }
    }
    Some(scan)
}

/// Whether `hay` holds `needle`: each place of its first byte, compared
/// (fast enough unoptimized for a client's hundreds of MiB).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == first) {
        if hay[from + i..].starts_with(needle) {
            return true;
        }
        from += i + 1;
    }
    false
}

/// Every file under `dir`, relative, and whether any holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> (Vec<String>, Vec<String>) {
    let (mut all, mut holding) = (Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && fs::read(&p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
            {
                holding.push(rel.clone());
            }
            all.push(rel);
        }
    }
    all.sort();
    (all, holding)
}

/// Everything the tests assert of a run, and the run itself to assert
/// more.
fn check(c: &Client) -> Ran {
    let r = run_client(c);
    let o = &r.out;
    let out = stdout(o);
    let all = format!("{out}{}", stderr(o));
    let reqs = r.api.requests();
    let why = format!(
        "{}: {}\nrequests: {:?}",
        c.test,
        show(o),
        reqs.iter()
            .map(|q| format!("{} {}", q.method, q.target))
            .collect::<Vec<_>>()
    );
    assert_status(o, 0);
    // The client held the placeholder...
    let m = labelled(&out.replace('=', " "));
    assert!(m["held"].contains("confine-placeholder"), "{why}");
    // ...printed the answer and succeeded...
    assert!(out.contains(ANSWER), "{}: no answer: {why}", c.profile);
    assert_eq!(m["client"], "0", "{why}");
    for bad in [
        "EPERM",
        "EACCES",
        "ENOSYS",
        "Operation not permitted",
        "Permission denied",
    ] {
        assert!(!all.contains(bad), "{}: {bad}: {why}", c.profile);
    }
    // ...and every request it made reached the stand-in with the real
    // key in the provider's header and nowhere the placeholder.
    assert!(!reqs.is_empty(), "{why}");
    let real = key(c.key_prefix);
    for q in &reqs {
        assert_eq!(q.header(c.header), [(c.value)(&real)], "{}", q.text());
        assert!(!q.text().contains("confine-placeholder"), "{}", q.text());
        assert_eq!(q.header("host"), [c.host], "{}", q.text());
    }
    // While it waited for the answer: the key in no process's
    // environment or arguments; the placeholder in the client's (the
    // control, so the scan saw the client).
    assert!(r.scanned > 0, "nothing scanned: {why}");
    assert!(r.key_in.is_empty(), "the key in {:?}", r.key_in);
    assert!(
        !r.placeholder_in.is_empty(),
        "no process held the placeholder: {why}"
    );
    // Nor in the memory of any process of the sandbox, where the
    // placeholder is (the control: the scan read the client's data), and
    // the same scan finds the key in the egress proxy's (the control: it
    // can find the key).
    assert!(!r.memory.is_empty(), "no memory read: {why}");
    assert!(
        r.key_in_proxy,
        "the key not found in the proxy's memory: {why}"
    );
    assert!(
        r.key_in_memory.is_empty(),
        "the key in the memory of {:?}",
        r.key_in_memory
    );
    assert!(
        !r.placeholder_in_memory.is_empty(),
        "the placeholder in the memory of none of {:?}: {why}",
        r.memory
    );
    if c.turn != Turn::Answer {
        // The probe ran inside the sandbox and wrote its report into the
        // workspace; its write outside failed; both went back to the
        // model in a later request.
        let report = probe_report();
        assert_eq!(
            fs::read_to_string(r.ws.join("probe-out.txt"))
                .ok()
                .as_deref(),
            Some(report.as_str()),
            "{why}"
        );
        let quoted = serde_json::Value::String(report).to_string();
        let quoted = quoted.trim_matches('"');
        assert!(
            reqs.iter().any(|q| {
                let t = q.text();
                t.contains(quoted) && refused_outside(&t)
            }),
            "no request carried the probe's output: {why}\n{}",
            reqs.last().map(|q| q.text()).unwrap_or_default()
        );
    }
    // The workspace: no key, none of the client's state.
    let (files, holding) = files_holding(&r.ws, &real);
    assert!(holding.is_empty(), "the key in {holding:?}");
    for s in c.state {
        assert!(
            !files
                .iter()
                .any(|f| f == s || f.starts_with(&format!("{s}/"))),
            "{}: {s} in the workspace: {files:?}",
            c.profile
        );
    }
    // The state is in the private home.
    let (home_files, home_holding) = files_holding(&r.home.0, &real);
    assert!(
        c.state.iter().any(|s| r.home.0.join(s).exists()),
        "{}: none of {:?} in the private home: {home_files:?}",
        c.profile,
        c.state
    );
    assert!(
        home_holding.is_empty(),
        "the key in the home: {home_holding:?}"
    );
    eprintln!(
        "{why}\nscanned {} (placeholder in {:?}); memory of {:?} (placeholder in {:?})",
        r.scanned, r.placeholder_in, r.memory, r.placeholder_in_memory
    );
    // A write outside the workspace fails.
    assert_ne!(m["outside"], "0", "{why}");
    assert_eq!(fs::read_to_string(&r.victim).unwrap(), "original");
    r
}

/// Whether `text` holds the probe's `outside=N` with N not 0: its write
/// outside the workspace failed.
fn refused_outside(text: &str) -> bool {
    text.match_indices("outside=").any(|(i, m)| {
        text[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() && c != '0')
    })
}

fn bearer(k: &str) -> String {
    format!("Bearer {k}")
}

fn plain(k: &str) -> String {
    k.to_string()
}

fn ready(test: &str) -> bool {
    can_run(test) && have(test, "/usr/bin/openssl")
}

#[test]
fn claude_code_answers_through_its_profile_with_the_key_outside() {
    let test = "claude_code_answers_through_its_profile_with_the_key_outside";
    if !ready(test) {
        return;
    }
    let Some(bins) = npm(test, "claude-code", "@anthropic-ai/claude-code", "claude") else {
        return;
    };
    // The model has Claude Code's own shell tool (`Bash`) run the probe.
    let r = check(&Client {
        test,
        profile: "claude-code",
        host: "api.anthropic.com",
        key_env: "ANTHROPIC_API_KEY",
        key_prefix: "sk-ant-api03-",
        header: "x-api-key",
        value: plain,
        bins,
        command: "claude -p 'say hello' --allowedTools Bash </dev/null".into(),
        state: &[".claude.json", ".claude"],
        extra: "",
        turn: Turn::Shell,
    });
    let reqs = r.api.requests();
    assert!(
        reqs.iter().any(|q| q.text().contains("\"tool_result\"")),
        "no tool result: {reqs:?}"
    );
}

#[test]
fn codex_exec_answers_through_its_profile_with_the_key_outside() {
    let test = "codex_exec_answers_through_its_profile_with_the_key_outside";
    if !ready(test) {
        return;
    }
    let Some(bins) = npm(test, "codex", "@openai/codex", "codex") else {
        return;
    };
    let r = check(&Client {
        test,
        profile: "codex",
        host: "api.openai.com",
        key_env: "OPENAI_API_KEY",
        key_prefix: "sk-proj-",
        header: "authorization",
        value: bearer,
        bins,
        // As a user types it: the profile's `home.files` gives Codex its
        // `openai_base_url` (it ignores OPENAI_BASE_URL since April 2026)
        // and `sandbox_mode = "danger-full-access"` (its own bubblewrap
        // can't nest in confine's: its shell tool runs in confine's alone).
        command: "codex exec --skip-git-repo-check 'say hello' </dev/null".into(),
        state: &[".codex"],
        extra: "",
        // The model has its shell tool (`exec_command`) run the probe.
        turn: Turn::Shell,
    });
    assert!(
        r.api
            .requests()
            .iter()
            .any(|q| q.target.starts_with("/v1/responses")),
        "{:?}",
        r.api.requests()
    );
}

#[test]
fn gemini_cli_answers_through_its_profile_with_the_key_outside() {
    let test = "gemini_cli_answers_through_its_profile_with_the_key_outside";
    if !ready(test) {
        return;
    }
    let Some(bins) = npm(test, "gemini-cli", "@google/gemini-cli", "gemini") else {
        return;
    };
    let r = check(&Client {
        test,
        profile: "gemini-cli",
        host: "generativelanguage.googleapis.com",
        key_env: "GEMINI_API_KEY",
        key_prefix: "AIza",
        header: "x-goog-api-key",
        value: plain,
        bins,
        // Non-interactive, its shell tool is offered only in yolo mode.
        command: "gemini --skip-trust --approval-mode yolo -p 'say hello' </dev/null".into(),
        state: &[".gemini"],
        extra: "",
        // Its auth type is pinned to the API key by the profile's
        // `home.files` (`.gemini/settings.json`): with a gateway's base URL
        // and no such setting it refuses to start (exit 41).
        // The model has its shell tool (`run_shell_command`) run the probe.
        turn: Turn::Shell,
    });
    assert!(
        r.api
            .requests()
            .iter()
            .any(|q| q.target.contains("GenerateContent") || q.target.contains("generateContent")),
        "{:?}",
        r.api.requests()
    );
}

#[test]
fn aider_answers_through_its_profile_with_the_key_outside() {
    let test = "aider_answers_through_its_profile_with_the_key_outside";
    if !ready(test) {
        return;
    }
    let Some(bins) = aider(test) else {
        return;
    };
    let r = check(&Client {
        test,
        profile: "aider",
        host: "api.anthropic.com",
        key_env: "ANTHROPIC_API_KEY",
        key_prefix: "sk-ant-api03-",
        header: "x-api-key",
        value: plain,
        bins,
        // aider has no shell tool: the model writes the probe with an
        // edit, aider runs it as the test command after the edit, and a
        // failing test's output goes back to the model (`--yes-always`
        // says yes to fixing it; it doesn't run the model's own shell
        // commands, which always need a typed yes).
        command: "aider --model anthropic/claude-sonnet-4-5 --message 'write the probe' --yes-always --no-git --no-pretty --no-stream --no-auto-lint --auto-test --test-cmd 'sh probe.sh' </dev/null".into(),
        // Its chat and input history stay in the project, as aider
        // intends; its caches go to the home.
        state: &[".aider"],
        extra: "",
        turn: Turn::Edit,
    });
    assert!(
        r.api
            .requests()
            .iter()
            .any(|q| q.target.starts_with("/v1/messages")),
        "{:?}",
        r.api.requests()
    );
}

/// The index's address in the test network.
const INDEX_ADDR: &str = "93.184.215.20";

#[test]
fn a_python_agent_workload_runs_under_its_profile() {
    let test = "a_python_agent_workload_runs_under_its_profile";
    if !can_run(test)
        || !have(test, "/usr/bin/python3")
        || !have(test, "/usr/bin/make")
        || !have(test, "/usr/local/bin/git") && !have(test, "/usr/bin/git")
    {
        return;
    }
    let venv_ok = Command::new("/usr/bin/python3")
        .args(["-c", "import ensurepip, venv"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !venv_ok && !skip_or_fail(test, "python3's venv and ensurepip are not installed") {
        return;
    }
    let net = Net::new();
    let _dns = net.dns(DNS);
    let f = Fixture::new("clients-python-agent");
    net.pip_index(&f.root.join("site"), "from the local index", &[INDEX_ADDR]);

    // The project: a git repository (made before: `protect` holds
    // .git/config read-only), a test and a Makefile.
    let ws = &f.ws;
    fs::write(
        ws.join("test_probe.py"),
        "import unittest\nimport confine_probe\n\nclass T(unittest.TestCase):\n    def test_value(self):\n        self.assertEqual(confine_probe.VALUE, 'from the local index')\n\nif __name__ == '__main__':\n    unittest.main()\n",
    )
    .unwrap();
    fs::write(
        ws.join("Makefile"),
        "check:\n\t.venv/bin/python -m unittest -q test_probe\n\techo made > made.txt\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        // The workspace is the agent's: root's git wants it named safe.
        let o = Command::new("git")
            .args(["-c", "safe.directory=*"])
            .args(args)
            .current_dir(ws)
            .env("PATH", PATH)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", show(&o));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "start",
    ]);
    let _ = Command::new("chown")
        .args(["-R", &format!("{AGENT_UID}:{AGENT_GID}")])
        .arg(ws)
        .status();

    let name = format!("test-python-agent-{}", unique());
    let home = Home(Path::new("/var/lib/confine/homes").join(&name));
    // The built-in plus the test network's index: pinned, on port 80.
    let p = f.profile(
        &name,
        &format!(
            "version: 1\nname: {name}\nextends: python-agent\nsecrets: []\nnetwork:\n  allow: {{add: [\"pypi.internal.example:80\"]}}\n  hosts: {{pypi.internal.example: {INDEX_ADDR}}}\n"
        ),
    );
    let script = "set -e
python3 -m venv .venv
.venv/bin/pip install -q --index-url http://pypi.internal.example/simple/ --trusted-host pypi.internal.example confine-probe
.venv/bin/python -m unittest -q test_probe 2>&1 | tail -1
git checkout -q -b feature
echo 'print(1)' > new.py
git add new.py
git -c user.name=agent -c user.email=agent@example.com commit -q -m 'add new.py'
git diff --stat main feature
make -s check
cat made.txt
echo pip-cache=$PIP_CACHE_DIR
echo home=$HOME";
    let mut cmd = Command::new(bin());
    cmd.args(["run", "-p"])
        .arg(&p)
        .arg("-w")
        .arg(ws)
        .args(["--", "/bin/sh", "-c", script])
        .env_clear()
        .env("PATH", PATH)
        .current_dir(ws);
    let o = net.in_client(&cmd).stdin(Stdio::null()).output().unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_status(&o, 0);
    let out = stdout(&o);
    for want in [
        "OK\n",
        "new.py | 1 +",
        "made\n",
        &format!("pip-cache={}/.cache/pip\n", ws.display()),
        &format!("home={}\n", home.0.display()),
    ] {
        assert!(out.contains(want), "no {want:?}: {}", show(&o));
    }
    for bad in [
        "EPERM",
        "EACCES",
        "ENOSYS",
        "Operation not permitted",
        "Permission denied",
    ] {
        assert!(!all.contains(bad), "{bad}: {}", show(&o));
    }
    // The venv and the commit are the workspace's; HOME was the private one.
    assert!(ws.join(".venv/lib").is_dir());
    let log = Command::new("git")
        .args(["-c", "safe.directory=*", "log", "--format=%s", "feature"])
        .current_dir(ws)
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_eq!(stdout(&log), "add new.py\nstart\n", "{}", show(&log));
    assert!(home.0.is_dir());
}
