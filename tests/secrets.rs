//! Secrets the agent never sees, end to end (DESIGN.md §10): confine runs
//! in the client namespace of a test network (tests/common/net.rs); the
//! secret's upstream is a model API stand-in over TLS in the upstream
//! namespace (`api.anthropic.com` pinned to it in `hosts:`, its
//! certificate from the test CA that confine trusts through
//! `SSL_CERT_FILE`). The agent holds a placeholder and the route; the
//! real value must arrive at that upstream, and nowhere else: not at
//! another host, not in the sandbox, not in the audit log or on stderr.
mod common;
use common::net::{Api, Net, Reply};
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

/// The route's upstream, as the test network has it.
const API_ADDR: &str = "93.184.215.14";
/// Another allowed host.
const OTHER_ADDR: &str = "93.184.215.15";
const DNS: &str = "198.51.100.53";
/// The secrets' values: nothing the agent sees may hold them. Split in
/// two where the agent searches for them, so the search itself doesn't.
const KEY_A: &str = "sk-ant-api03-REALKEY-";
const KEY_B: &str = "7f3a9c51e0d24b68";
const FILE_A: &str = "file-REALKEY-";
const FILE_B: &str = "2b8e41aa90c3";

fn key() -> String {
    format!("{KEY_A}{KEY_B}")
}

fn file_key() -> String {
    format!("{FILE_A}{FILE_B}")
}

/// What the agent holds in ANTHROPIC_API_KEY.
fn placeholder() -> String {
    let mut p = "sk-ant-api03-confine-placeholder-".to_string();
    while p.len() < 108 {
        p.push('0');
    }
    p
}

fn ready(test: &str) -> bool {
    can_run(test) && have(test, "/usr/bin/curl") && have(test, "/usr/bin/openssl")
}

/// An Anthropic Messages response with usage.
fn message(input: u64, output: u64) -> String {
    format!(
        r#"{{"id":"msg_1","type":"message","model":"claude-test","content":[{{"type":"text","text":"hi"}}],"usage":{{"input_tokens":{input},"output_tokens":{output}}}}}"#
    )
}

/// A streamed Anthropic response: `message_start` with the input tokens,
/// deltas, `message_delta` with the output tokens.
fn stream(input: u64, output: u64, gap: Duration) -> Reply {
    Reply::Events {
        events: vec![
            format!("event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"claude-test\",\"usage\":{{\"input_tokens\":{input},\"output_tokens\":1}}}}}}"),
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"one\"}}".into(),
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"two\"}}".into(),
            format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"usage\":{{\"output_tokens\":{output}}}}}"),
        ],
        gap,
    }
}

/// The test network: DNS for the other host, the API stand-in on the
/// pinned address and an echo of headers on the other host.
struct Setup {
    net: Net,
    api: Api,
    other: Api,
}

fn network(reply: Reply) -> Setup {
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[OTHER_ADDR]);
    let api = net.api(API_ADDR, &["api.anthropic.com"], reply);
    let other = net.api(
        OTHER_ADDR,
        &["example.com"],
        Reply::Json("{\"other\":true}".into()),
    );
    Setup { net, api, other }
}

/// A profile with the anthropic secret from `env:TEST_ANTHROPIC_KEY`, its
/// upstream pinned to the test network, example.com allowed, and `extra`
/// appended to the secret's entry (`limits:`...) or the profile.
fn profile(f: &Fixture, name: &str, secret_extra: &str, extra: &str) -> String {
    profile_in(f, name, "", secret_extra, extra)
}

/// [`profile`] with `network_extra` under `network:` (`  budget: ...`).
fn profile_in(
    f: &Fixture,
    name: &str,
    network_extra: &str,
    secret_extra: &str,
    extra: &str,
) -> String {
    let yaml = format!(
        r#"version: 1
extends: default
network:
  mode: proxy
  allow: [example.com]
  hosts: {{api.anthropic.com: {API_ADDR}}}
{network_extra}secrets:
  - name: anthropic
    from: "env:TEST_ANTHROPIC_KEY"
    provider: anthropic
{secret_extra}{extra}"#
    );
    f.profile(name, &yaml).display().to_string()
}

/// `confine run` in the client namespace with the key in its environment,
/// the test CA trusted (`SSL_CERT_FILE`) and copied into the workspace
/// for the agent's curl, and an audit log; returns the output and the log.
fn run(s: &Setup, f: &Fixture, profile: &str, script: &str) -> (Output, String) {
    let (mut cmd, log) = command(s, f, profile, script);
    let o = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    (o, log)
}

/// What [`run`] runs, and where its audit log goes.
fn command(
    s: &Setup,
    f: &Fixture,
    profile: &str,
    script: &str,
) -> (std::process::Command, std::path::PathBuf) {
    std::fs::copy(s.net.ca(), f.ws.join("ca.pem")).unwrap();
    let log = f.root.join(format!("audit-{}.jsonl", unique()));
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["run", "-p", profile, "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log)
        .args(["--", "/bin/sh", "-c", script])
        .env_clear()
        .env("PATH", PATH)
        .env("TEST_ANTHROPIC_KEY", key())
        .env("SSL_CERT_FILE", s.net.ca())
        .current_dir(&f.ws);
    (s.net.in_client(&cmd), log)
}

/// The audit log's records of `event`, parsed.
fn records(log: &str, event: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}

/// Nothing confine printed or logged holds a value.
fn nowhere(o: &Output, log: &str) {
    let all = format!("{}{}{log}", stdout(o), stderr(o));
    for v in [key(), file_key()] {
        assert!(!all.contains(&v), "a secret's value was shown:\n{all}");
    }
}

const CURL: &str = "curl -sS --fail --max-time 20";

#[test]
fn the_real_key_reaches_the_routes_upstream_and_nothing_else_does() {
    let test = "the_real_key_reaches_the_routes_upstream_and_nothing_else_does";
    if !ready(test) {
        return;
    }
    let s = network(Reply::Json(message(12, 5)));
    let f = Fixture::new("secrets-forward");
    let p = profile(&f, "forward", "", "");
    let script = format!(
        r#"set -e
{CURL} -H "x-api-key: $ANTHROPIC_API_KEY" -H "Authorization: Bearer agent-sent" -H "Api-Key: agent-sent" \
  -H 'content-type: application/json' -d '{{"model":"claude-test"}}' \
  "$ANTHROPIC_BASE_URL/v1/messages" "$ANTHROPIC_BASE_URL/v1/messages?beta=true"
echo
{CURL} --proxy http://127.0.0.1:3128 --noproxy '' -H "x-api-key: $ANTHROPIC_API_KEY" http://127.0.0.1:3128/anthropic/v1/models
echo
{CURL} --cacert ca.pem -H "x-api-key: $ANTHROPIC_API_KEY" -H "Authorization: Bearer $ANTHROPIC_API_KEY" https://example.com/echo
echo
{CURL} --cacert ca.pem https://api.anthropic.com/v1/models || echo connect=refused
"#
    );
    let (o, log) = run(&s, &f, &p, &script);
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("\"claude-test\"").count(), 3, "{}", show(&o));
    assert!(out.contains("{\"other\":true}"), "{}", show(&o));
    // The upstream itself is reachable through its route only.
    assert!(out.ends_with("connect=refused\n"), "{}", show(&o));

    // The route's upstream got the real key and nothing the agent sent
    // as a credential, with its own Host, on one kept-alive connection
    // for the first two requests.
    let reqs = s.api.requests();
    let targets: Vec<&str> = reqs.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        ["/v1/messages", "/v1/messages?beta=true", "/v1/models"],
        "{reqs:?}"
    );
    for r in &reqs {
        assert_eq!(r.header("x-api-key"), [key()], "{r:?}");
        assert!(r.header("authorization").is_empty(), "{r:?}");
        assert!(r.header("api-key").is_empty(), "{r:?}");
        assert_eq!(r.header("host"), ["api.anthropic.com"], "{r:?}");
        assert_eq!(r.header("accept-encoding"), ["identity"], "{r:?}");
        let text = r.text();
        assert!(!text.contains("confine-placeholder"), "{text}");
        assert!(!text.contains("agent-sent"), "{text}");
    }
    assert_eq!(reqs[0].body, b"{\"model\":\"claude-test\"}");
    assert_eq!(reqs[0].connection, reqs[1].connection, "{reqs:?}");
    // Another allowed host: the placeholder, never substituted.
    let other = s.other.requests();
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0].header("x-api-key"), [placeholder()]);
    assert_eq!(
        other[0].header("authorization"),
        [format!("Bearer {}", placeholder())]
    );
    assert!(!other[0].text().contains("REALKEY"));

    // One `connection` record per routed request, a `usage` record each,
    // and the totals in the exit record.
    let routed: Vec<_> = records(&log, "connection")
        .into_iter()
        .filter(|c| c["via"] == "route")
        .collect();
    assert_eq!(routed.len(), 3, "{log}");
    for c in &routed {
        assert_eq!(c["route"], "anthropic", "{c}");
        assert_eq!(c["status"], 200, "{c}");
        assert_eq!(c["host"], "api.anthropic.com", "{c}");
        assert_eq!(c["address"], API_ADDR, "{c}");
        assert!(c["bytes_in"].as_u64().unwrap() > 0, "{c}");
    }
    assert_eq!(routed[0]["method"], "POST");
    let usage = records(&log, "usage");
    assert_eq!(usage.len(), 3, "{log}");
    assert_eq!(usage[0]["tokens_in"], 12);
    assert_eq!(usage[0]["tokens_out"], 5);
    assert_eq!(usage[0]["model"], "claude-test");
    assert_eq!(usage[2]["totals"]["requests"], 3);
    assert_eq!(usage[2]["totals"]["tokens_out"], 15);
    let exit = records(&log, "exit");
    assert_eq!(exit[0]["usage"]["anthropic"]["tokens_in"], 36, "{log}");
    nowhere(&o, &log);
}

/// Scans this process's own memory (every readable mapping, through
/// /proc/self/mem) for argv[1] followed directly by argv[2], and prints
/// how often it is there: the needle is never whole in the scanner's own
/// memory (its halves are separate strings).
const SCAN: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    const char *a = argv[1], *b = argv[2];
    size_t la = strlen(a), lb = strlen(b);
    FILE *maps = fopen("/proc/self/maps", "r");
    int mem = open("/proc/self/mem", O_RDONLY);
    if (!maps || mem < 0) { perror("open"); return 3; }
    char line[512];
    long found = 0, regions = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi; char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3 || perms[0] != 'r') continue;
        if (strstr(line, "[vvar]") || strstr(line, "[vsyscall]")) continue;
        size_t len = hi - lo;
        char *buf = malloc(len);
        if (!buf) continue;
        ssize_t n = pread(mem, buf, len, (off_t)lo);
        if (n > 0) {
            regions++;
            for (ssize_t i = 0; i + (ssize_t)(la + lb) <= n; i++)
                if (buf[i] == a[0] && !memcmp(buf + i, a, la) && !memcmp(buf + i + la, b, lb)) found++;
        }
        free(buf);
    }
    printf("regions=%ld found=%ld\n", regions, found);
    return 0;
}
"#;

#[test]
fn the_value_is_nowhere_the_agent_can_look() {
    let test = "the_value_is_nowhere_the_agent_can_look";
    if !ready(test) {
        return;
    }
    let s = network(Reply::Json(message(1, 1)));
    let f = Fixture::new("secrets-nowhere");
    let Some(scan) = compile(&f, "scan", SCAN) else {
        skip_or_fail(test, "no C compiler");
        return;
    };
    // A second secret from a file, readable only by the caller.
    let file = f.outside.join("key");
    std::fs::write(&file, format!("{}\n", file_key())).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let p = profile(
        &f,
        "nowhere",
        "",
        &format!(
            "  - name: internal\n    from: \"file:{}\"\n    upstream: \"https://api.anthropic.com/internal\"\n    header: \"Authorization: Bearer {{secret}}\"\n    base_url_env: LLM_BASE_URL\n    key_env: LLM_API_KEY\n",
            file.display()
        ),
    );
    let scan = scan.display();
    // Each search reads its needle from stdin or halves, so no command
    // line holds one whole. The placeholder is the control: it is in the
    // agent's environment, so each search must find it.
    let script = format!(
        r#"
{CURL} -H "x-api-key: $ANTHROPIC_API_KEY" "$ANTHROPIC_BASE_URL/v1/messages" >/dev/null && echo routed=ok
{CURL} "$LLM_BASE_URL/x" >/dev/null && echo internal=ok
for pair in "{KEY_A} {KEY_B}" "{FILE_A} {FILE_B}" "sk-ant-api03-confine- placeholder-0000"; do
  set -- $pair
  printf '%s%s\n' "$1" "$2" > /tmp/needle
  n=$(grep -rlF -f /tmp/needle /proc/[0-9]*/environ /proc/[0-9]*/cmdline "$PWD" /tmp 2>/dev/null | grep -v '^/tmp/needle$' | wc -l)
  rm /tmp/needle
  echo "$1 files=$n $({scan} "$1" "$2")"
done
"#
    );
    let (o, log) = run(&s, &f, &p, &script);
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("routed=ok\ninternal=ok\n"), "{}", show(&o));
    let line = |prefix: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line for {prefix}: {}", show(&o)))
            .to_string()
    };
    // The controls: the placeholder is in the environment the agent
    // reads, and in its memory.
    let control = line("sk-ant-api03-confine-");
    assert!(!control.contains("files=0"), "{control}");
    assert!(!control.contains("found=0"), "{control}");
    assert!(!control.contains("regions=0"), "{control}");
    for prefix in [KEY_A, FILE_A] {
        let l = line(prefix);
        assert!(l.contains("files=0"), "{l}");
        assert!(l.contains("found=0"), "{l}");
    }
    // Both upstream requests carried their real values.
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].header("x-api-key"), [key()]);
    assert_eq!(reqs[1].target, "/internal/x");
    assert_eq!(
        reqs[1].header("authorization"),
        [format!("Bearer {}", file_key())]
    );
    nowhere(&o, &log);
}

#[test]
fn a_server_sent_event_stream_arrives_as_it_is_sent() {
    let test = "a_server_sent_event_stream_arrives_as_it_is_sent";
    if !ready(test) {
        return;
    }
    // Four events over 60 s.
    let s = network(stream(25, 15, Duration::from_secs(20)));
    let f = Fixture::new("secrets-stream");
    let p = profile(&f, "stream", "", "");
    // The agent stamps each event as it arrives (the clock is the host's,
    // the same as the upstream's).
    let script = r#"curl -sSN --fail --max-time 120 -H "x-api-key: $ANTHROPIC_API_KEY" -d '{"stream":true}' "$ANTHROPIC_BASE_URL/v1/messages" |
while IFS= read -r l; do case "$l" in data:*) echo "$(date +%s.%N) $l";; esac; done"#;
    let (o, log) = run(&s, &f, &p, script);
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let arrived: Vec<f64> = stdout(&o)
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let sent: Vec<f64> = s
        .api
        .sent()
        .iter()
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        })
        .collect();
    assert_eq!(arrived.len(), 4, "{}", show(&o));
    assert_eq!(sent.len(), 4);
    // Each event reached the agent before the upstream sent the next one:
    // nothing was held back until the end.
    for i in 0..3 {
        assert!(
            arrived[i] < sent[i + 1],
            "event {i} arrived at {} but event {} was sent at {}",
            arrived[i],
            i + 1,
            sent[i + 1]
        );
    }
    // The stream's usage was counted.
    let usage = records(&log, "usage");
    assert_eq!(usage.len(), 1, "{log}");
    assert_eq!(usage[0]["tokens_in"], 25);
    assert_eq!(usage[0]["tokens_out"], 15);
    nowhere(&o, &log);
}

#[test]
fn an_upstream_whose_certificate_isnt_trusted_never_gets_the_key() {
    let test = "an_upstream_whose_certificate_isnt_trusted_never_gets_the_key";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[OTHER_ADDR]);
    let api = net.api_untrusted(API_ADDR, &["api.anthropic.com"], Reply::Json(message(1, 1)));
    let other = net.api(OTHER_ADDR, &["example.com"], Reply::Json("{}".into()));
    let s = Setup { net, api, other };
    let f = Fixture::new("secrets-untrusted");
    let p = profile(&f, "untrusted", "", "");
    let script = r#"curl -sS --max-time 20 -w '\nstatus=%{http_code}\n' -H "x-api-key: $ANTHROPIC_API_KEY" "$ANTHROPIC_BASE_URL/v1/messages""#;
    let (o, log) = run(&s, &f, &p, script);
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("status=502"), "{}", show(&o));
    assert!(out.contains("TLS with api.anthropic.com"), "{}", show(&o));
    assert!(out.contains("the credential was not sent"), "{}", show(&o));
    // The handshake began and failed; no request was ever made.
    assert!(!s.api.handshakes().is_empty());
    assert!(s.api.handshakes().iter().all(|ok| !ok));
    assert!(s.api.requests().is_empty());
    let routed = records(&log, "connection");
    assert!(
        routed
            .iter()
            .any(|c| c["via"] == "route" && c["status"] == 502),
        "{log}"
    );
    // The exit record names the route, which spent nothing.
    let exit = records(&log, "exit");
    assert_eq!(exit[0]["usage"]["anthropic"]["tokens_in"], 0, "{log}");
    nowhere(&o, &log);
}

#[test]
fn route_limits_answer_429_in_the_providers_shape() {
    let test = "route_limits_answer_429_in_the_providers_shape";
    if !ready(test) {
        return;
    }
    let s = network(Reply::Json(message(10, 10)));
    let f = Fixture::new("secrets-limits");
    // Two requests a minute: the third is refused by confine.
    let p = profile(&f, "rpm", "    limits: {requests_per_minute: 2}\n", "");
    let script = r#"for i in 1 2 3; do curl -sS --max-time 20 -w '\nstatus=%{http_code}\n' -H "x-api-key: $ANTHROPIC_API_KEY" -d '{}' "$ANTHROPIC_BASE_URL/v1/messages"; done"#;
    let (o, log) = run(&s, &f, &p, script);
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("status=200").count(), 2, "{}", show(&o));
    assert_eq!(out.matches("status=429").count(), 1, "{}", show(&o));
    assert!(out.contains("\"type\":\"rate_limit_error\""), "{out}");
    assert!(
        out.contains("secrets.anthropic.limits.requests_per_minute"),
        "{out}"
    );
    assert_eq!(s.api.requests().len(), 2);
    let budget = records(&log, "budget");
    assert_eq!(budget.len(), 1, "{log}");
    assert_eq!(budget[0]["route"], "anthropic");
    assert_eq!(budget[0]["which"], "requests_per_minute");
    assert_eq!(budget[0]["action"], "refuse");

    // Tokens counted from a stream: 25 in and 15 out pass a limit of 30,
    // so the next request is refused.
    s.api.set_reply(stream(25, 15, Duration::from_millis(10)));
    let p = profile(&f, "tokens", "    limits: {tokens: 30}\n", "");
    let (o, log) = run(&s, &f, &p, script);
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("status=200").count(), 1, "{}", show(&o));
    assert_eq!(out.matches("status=429").count(), 2, "{}", show(&o));
    assert!(
        out.contains("secrets.anthropic.limits.tokens: 40 of 30"),
        "{out}"
    );
    assert_eq!(s.api.requests().len(), 3);
    let usage = records(&log, "usage");
    assert_eq!(usage[0]["tokens_in"], 25, "{log}");
    nowhere(&o, &log);
}

#[test]
fn a_cost_limit_that_stops_ends_the_sandbox_with_124() {
    let test = "a_cost_limit_that_stops_ends_the_sandbox_with_124";
    if !ready(test) {
        return;
    }
    // 1M tokens in at 3.00 per million: 3.00, past a cap of 2.50.
    let s = network(Reply::Json(message(1_000_000, 0)));
    let f = Fixture::new("secrets-stop");
    let p = profile(
        &f,
        "stop",
        "    limits: {cost: \"2.50\", prices: {claude-test: {input: 3, output: 15}}, on_exhausted: stop}\n",
        "",
    );
    let script = r#"curl -sS --max-time 20 -H "x-api-key: $ANTHROPIC_API_KEY" -d '{}' "$ANTHROPIC_BASE_URL/v1/messages"; echo; sleep 30; echo not-stopped"#;
    let (o, log) = run(&s, &f, &p, script);
    assert_eq!(o.status.code(), Some(124), "{}\n{log}", show(&o));
    assert!(!stdout(&o).contains("not-stopped"), "{}", show(&o));
    assert!(
        stderr(&o).contains("secrets.anthropic.limits.cost"),
        "{}",
        show(&o)
    );
    let exit = records(&log, "exit");
    assert_eq!(exit[0]["reason"], "budget", "{log}");
    let cost = exit[0]["usage"]["anthropic"]["cost"].as_f64().unwrap();
    assert!((cost - 3.0).abs() < 1e-9, "{log}");
    let budget = records(&log, "budget");
    assert_eq!(budget[0]["which"], "cost", "{log}");
    assert_eq!(budget[0]["action"], "stop", "{log}");
    nowhere(&o, &log);
}

/// Route requests of `bodies` (curl's `--data-binary` arguments), each
/// printing its status and curl's exit code.
fn requests(bodies: &[&str]) -> String {
    bodies
        .iter()
        .map(|b| {
            format!(
                "curl -sS --max-time 20 -H 'Expect: 100-continue' -w '\\nstatus=%{{http_code}}\\n' -H \"x-api-key: $ANTHROPIC_API_KEY\" --data-binary '{b}' \"$ANTHROPIC_BASE_URL/v1/messages\"; echo \"curl=$?\"\n"
            )
        })
        .collect()
}

/// The exit code the first of [`requests`] printed.
fn first_curl(out: &str) -> &str {
    out.lines().find(|l| l.starts_with("curl=")).unwrap_or("")
}

/// The routed requests' `connection` records.
fn routed(log: &str) -> Vec<serde_json::Value> {
    records(log, "connection")
        .into_iter()
        .filter(|c| c["via"] == "route")
        .collect()
}

#[test]
fn route_uploads_count_against_the_bytes_out_budget() {
    let test = "route_uploads_count_against_the_bytes_out_budget";
    if !ready(test) {
        return;
    }
    let s = network(Reply::Json(message(1, 1)));
    let f = Fixture::new("secrets-bytes-out");
    // 20000 bytes of upload against a budget of 4000: refused whole,
    // before anything goes upstream; the small requests around it pass.
    let big = "head -c 20000 /dev/zero | tr '\\0' x > big\n";
    // Last, a chunked upload (no length to check first) is cut at the
    // budget: never whole upstream.
    let chunked = requests(&["@big"]).replace("curl ", "curl -H 'Transfer-Encoding: chunked' ");
    let script = format!("{big}{}{chunked}", requests(&["{}", "@big", "{}"]));
    let p = profile_in(&f, "out", "  budget: {bytes_out: 4000}\n", "", "");
    let (o, log) = run(&s, &f, &p, &script);
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    let statuses: Vec<&str> = out.lines().filter(|l| l.starts_with("status=")).collect();
    assert_eq!(
        statuses,
        ["status=200", "status=429", "status=200", "status=429"],
        "{out}"
    );
    assert!(out.contains("\"type\":\"rate_limit_error\""), "{out}");
    assert!(
        out.contains("budget bytes_out (4000): the request's"),
        "{out}"
    );
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs.iter().all(|r| r.body == b"{}"), "{reqs:?}");
    let budget = records(&log, "budget");
    assert_eq!(budget.len(), 1, "{log}");
    assert_eq!(budget[0]["which"], "bytes_out", "{log}");
    assert_eq!(budget[0]["action"], "refuse", "{log}");
    assert!(out.contains("budget bytes_out (4000) used up"), "{out}");
    // The records show the bytes the route moved, heads included: the
    // refused request none, the chunked one what was left.
    let r = routed(&log);
    assert_eq!(r.len(), 4, "{log}");
    assert_eq!(r[1]["status"], 429, "{log}");
    assert_eq!(r[1]["bytes_out"], 0, "{log}");
    assert_eq!(r[3]["status"], 429, "{log}");
    assert_eq!(r[3]["reason"], "budget bytes_out (4000) used up", "{log}");
    assert!(r[0]["bytes_out"].as_u64().unwrap() > 100, "{log}");
    let sent: u64 = r.iter().map(|c| c["bytes_out"].as_u64().unwrap()).sum();
    assert_eq!(sent, 4000, "{log}");

    // With `on_exhausted: stop`, the upload stops the sandbox.
    let p = profile_in(
        &f,
        "out-stop",
        "  budget: {bytes_out: 4000, on_exhausted: stop}\n",
        "",
        "",
    );
    let script = format!(
        "{big}{}sleep 30; echo not-stopped",
        requests(&["{}", "@big"])
    );
    let (o, log) = run(&s, &f, &p, &script);
    assert_eq!(o.status.code(), Some(124), "{}\n{log}", show(&o));
    assert!(stdout(&o).contains("status=200"), "{}", show(&o));
    assert!(!stdout(&o).contains("not-stopped"), "{}", show(&o));
    let exit = records(&log, "exit");
    assert_eq!(exit[0]["reason"], "budget", "{log}");
    let budget = records(&log, "budget");
    assert_eq!(budget[0]["which"], "bytes_out", "{log}");
    assert_eq!(budget[0]["action"], "stop", "{log}");
    assert_eq!(s.api.requests().len(), 3);
    nowhere(&o, &log);
}

#[test]
fn route_responses_count_against_the_bytes_in_budget() {
    let test = "route_responses_count_against_the_bytes_in_budget";
    if !ready(test) {
        return;
    }
    // The control: small responses fit in 3000 bytes.
    let s = network(Reply::Json(message(1, 1)));
    let f = Fixture::new("secrets-bytes-in");
    let p = profile_in(&f, "in", "  budget: {bytes_in: 3000}\n", "", "");
    let (o, log) = run(&s, &f, &p, &requests(&["{}", "{}"]));
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    assert_eq!(stdout(&o).matches("status=200").count(), 2, "{}", show(&o));
    assert!(records(&log, "budget").is_empty(), "{log}");

    // A 20000-byte response is cut at the budget, and the next request
    // is refused naming it.
    let mut big = message(1, 1);
    big.insert_str(
        big.len() - 1,
        &format!(",\"pad\":\"{}\"", "x".repeat(20000)),
    );
    s.api.set_reply(Reply::Json(big));
    let (o, log) = run(&s, &f, &p, &requests(&["{}", "{}"]));
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    assert!(out.len() < 3000 + 1000, "{out}");
    assert_ne!(
        first_curl(&out),
        "curl=0",
        "the cut response was whole: {out}"
    );
    assert!(out.contains("status=429"), "{out}");
    assert!(out.contains("budget bytes_in (3000) used up"), "{out}");
    assert_eq!(s.api.requests().len(), 2 + 1);
    let r = routed(&log);
    assert_eq!(r.len(), 2, "{log}");
    assert_eq!(r[0]["bytes_in"], 3000, "{log}");
    assert_eq!(
        r[0]["reason"], "closed: budget bytes_in (3000) used up",
        "{log}"
    );
    let budget = records(&log, "budget");
    assert_eq!(budget[0]["which"], "bytes_in", "{log}");
    assert_eq!(budget[0]["action"], "refuse", "{log}");

    // With `on_exhausted: stop`, it stops the sandbox.
    let p = profile_in(
        &f,
        "in-stop",
        "  budget: {bytes_in: 3000, on_exhausted: stop}\n",
        "",
        "",
    );
    let script = format!("{}sleep 30; echo not-stopped", requests(&["{}"]));
    let (o, log) = run(&s, &f, &p, &script);
    assert_eq!(o.status.code(), Some(124), "{}\n{log}", show(&o));
    assert!(!stdout(&o).contains("not-stopped"), "{}", show(&o));
    let exit = records(&log, "exit");
    assert_eq!(exit[0]["reason"], "budget", "{log}");
    assert_eq!(records(&log, "budget")[0]["which"], "bytes_in", "{log}");
    nowhere(&o, &log);
}

#[test]
fn a_stream_cut_before_its_last_usage_is_charged_an_upper_bound() {
    let test = "a_stream_cut_before_its_last_usage_is_charged_an_upper_bound";
    if !ready(test) {
        return;
    }
    // 5 tokens in, 1 out at the start, then two deltas of 200 bytes of
    // text; whole, the stream ends with 10 out.
    let text = "y".repeat(200);
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-test\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}".to_string();
    let delta = format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}");
    let whole = vec![
        start.clone(),
        delta.clone(),
        delta.clone(),
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":10}}"
            .into(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}".into(),
    ];
    let s = network(Reply::Events {
        events: whole,
        gap: Duration::from_millis(1),
    });
    let f = Fixture::new("secrets-cut");
    let p = profile(&f, "cut", "    limits: {tokens: 300}\n", "");
    let body = r#"{"stream":true}"#;
    // The control: whole streams are charged what they say (15 each).
    let (o, log) = run(&s, &f, &p, &requests(&[body, body, body]));
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    assert_eq!(stdout(&o).matches("status=200").count(), 3, "{}", show(&o));
    let usage = records(&log, "usage");
    assert_eq!(usage.len(), 3, "{log}");
    for u in &usage {
        assert_eq!(u["tokens_out"], 10, "{log}");
        assert_eq!(u["estimated"], false, "{log}");
    }

    // Cut after the content, before `message_delta`: charged the bytes
    // since the first usage, which passes the limit: the next request is
    // refused.
    s.api.set_reply(Reply::Cut {
        events: vec![start, delta.clone(), delta],
    });
    let (o, log) = run(&s, &f, &p, &requests(&[body, body]));
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    assert!(out.contains(&text), "{out}");
    assert_ne!(
        first_curl(&out),
        "curl=0",
        "the cut stream ended well: {out}"
    );
    assert!(out.contains("status=429"), "{out}");
    assert!(out.contains("secrets.anthropic.limits.tokens"), "{out}");
    assert_eq!(s.api.requests().len(), 3 + 1);
    let usage = records(&log, "usage");
    assert_eq!(usage.len(), 1, "{log}");
    assert_eq!(usage[0]["tokens_in"], 5, "{log}");
    assert_eq!(usage[0]["estimated"], true, "{log}");
    assert!(usage[0]["tokens_out"].as_u64().unwrap() >= 400, "{log}");
    let budget = records(&log, "budget");
    assert_eq!(budget[0]["which"], "tokens", "{log}");
    nowhere(&o, &log);
}

#[test]
fn a_request_the_agent_leaves_before_its_answer_is_not_free() {
    let test = "a_request_the_agent_leaves_before_its_answer_is_not_free";
    if !ready(test) {
        return;
    }
    // Each answer spends 200 tokens; the limit is 30. The agent sends a
    // request, and hangs up once the upstream has it but before its
    // answer's head: the upstream spent what it spent (a real one bills a
    // non-streamed answer it computed), the proxy never saw a usage. Left
    // uncharged, the agent could do this forever past any `tokens` or
    // `cost` limit; its spend is unknown, so the route closes, as it
    // does for a stream cut before any usage.
    let s = network(Reply::Json(message(100, 100)));
    let f = Fixture::new("secrets-left");
    let p = profile(&f, "left", "    limits: {tokens: 30}\n", "");
    let wait = |file: &str| {
        format!("i=0; while [ ! -e {file} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n")
    };
    let req = r#"curl -sS --max-time 20 -w '\nstatus=%{http_code}\n' -H "x-api-key: $ANTHROPIC_API_KEY" -d '{}' "$ANTHROPIC_BASE_URL/v1/messages""#;
    let script = format!(
        "{req} > first.out 2>&1 &\necho $! > curl.pid\n{}kill $(cat curl.pid); wait; touch left\n{}{req}; echo \"curl=$?\"\n",
        wait("hang-up"),
        wait("go")
    );
    s.api.hold();
    let (mut cmd, log) = command(&s, &f, &p, &script);
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(60);
    // The upstream has the request: the agent hangs up.
    let arrived = poll(limit, || !s.api.requests().is_empty());
    std::fs::write(f.ws.join("hang-up"), "").unwrap();
    let left = poll(limit, || f.ws.join("left").exists());
    // The upstream answers (to no one); once the proxy has recorded the
    // request, the agent asks again.
    s.api.release();
    let recorded = poll(limit, || {
        !routed(&std::fs::read_to_string(&log).unwrap_or_default()).is_empty()
    });
    std::fs::write(f.ws.join("go"), "").unwrap();
    let o = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        arrived && left && recorded,
        "{arrived} {left} {recorded}: {}\n{log}",
        show(&o)
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let first = std::fs::read_to_string(f.ws.join("first.out")).unwrap_or_default();
    assert!(
        !first.contains("status="),
        "the first request was answered: {first}"
    );
    let out = stdout(&o);
    assert!(
        out.contains("status=429"),
        "the request after it was free: {out}\n{log}"
    );
    assert!(out.contains("secrets.anthropic.limits.tokens"), "{out}");
    assert!(out.contains("couldn't be counted"), "{out}");
    assert_eq!(s.api.requests().len(), 1, "{log}");
    let usage = records(&log, "usage");
    assert_eq!(usage.len(), 1, "{log}");
    assert!(usage[0]["tokens_in"].is_null(), "{log}");
    let r = routed(&log);
    assert!(
        r[0]["reason"]
            .as_str()
            .is_some_and(|w| w.contains("went away")),
        "{log}"
    );
    nowhere(&o, &log);
}

/// Twelve requests at once on a route, the upstream holding every answer:
/// how many reach it. `limits` is the route's.
fn in_flight(test: &str, limits: &str) -> (usize, Output, String) {
    let s = network(Reply::Json(message(1, 1)));
    let f = Fixture::new(test);
    let p = profile(&f, "flight", &format!("    limits: {limits}\n"), "");
    let req = r#"curl -sS --max-time 90 -o /dev/null -w '%{http_code}\n' -H "x-api-key: $ANTHROPIC_API_KEY" -d '{}' "$ANTHROPIC_BASE_URL/v1/messages""#;
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do {req} > out.$i 2>&1 & done; wait; cat out.*\n"
    );
    s.api.hold();
    let (mut cmd, log) = command(&s, &f, &p, &script);
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // At least eight arrive whatever the limits; then, a bounded look for
    // more (a route that bounds them never lets a ninth through while
    // they are held, however long one looks).
    poll(Duration::from_secs(60), || s.api.requests().len() >= 8);
    poll(Duration::from_secs(3), || s.api.requests().len() > 8);
    let held = s.api.requests().len();
    s.api.release();
    let o = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(s.api.requests().len(), 12, "{}\n{log}", show(&o));
    (held, o, log)
}

#[test]
fn a_spend_limited_route_has_at_most_eight_requests_in_flight() {
    let test = "a_spend_limited_route_has_at_most_eight_requests_in_flight";
    if !ready(test) {
        return;
    }
    // A `tokens` limit is checked as each request is admitted, before any
    // usage is known: the requests in flight are how far it can be passed.
    // The ninth waits for a slot, and is answered when one frees.
    let (held, o, log) = in_flight("secrets-flight", "{tokens: 100000}");
    assert_eq!(held, 8, "{}\n{log}", show(&o));
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "200\n".repeat(12), "{}\n{log}", show(&o));
    assert_eq!(records(&log, "usage").len(), 12, "{log}");
    // Control: a limit on requests alone (counted at admission) doesn't
    // bound them: all twelve reach the upstream while it holds them.
    let (held, o, _) = in_flight("secrets-flight-rpm", "{requests_per_minute: 1000}");
    assert_eq!(held, 12, "{}", show(&o));
    assert_eq!(stdout(&o), "200\n".repeat(12), "{}", show(&o));
}

/// `package` installed from npm once into the tests' temporary directory
/// (kept for later runs), and `file` in it; `None` without npm or the
/// registry.
fn from_npm(package: &str, file: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("npm-{}", package.replace(['@', '/'], "-")));
    let path = dir.join(file);
    if !path.exists() {
        if !std::path::Path::new("/usr/bin/npm").exists() {
            return None;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let o = std::process::Command::new("/usr/bin/npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(package)
            .output()
            .ok()?;
        if !o.status.success() || !path.exists() {
            eprintln!("npm install {package} failed: {}", show(&o));
            return None;
        }
    }
    // Readable (and runnable) by the agent's uid.
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&dir)
        .status();
    Some(path)
}

/// Claude Code's own binary, from npm (x86_64 Linux).
fn claude_code() -> Option<std::path::PathBuf> {
    if std::env::consts::ARCH != "x86_64" {
        return None;
    }
    from_npm(
        "@anthropic-ai/claude-code",
        "node_modules/@anthropic-ai/claude-code-linux-x64/claude",
    )
}

#[test]
fn claude_code_from_npm_sends_the_real_key_while_holding_the_placeholder() {
    let test = "claude_code_from_npm_sends_the_real_key_while_holding_the_placeholder";
    if !ready(test) {
        return;
    }
    let Some(claude) = claude_code() else {
        eprintln!("skipped: {test}: @anthropic-ai/claude-code couldn't be installed from npm here");
        return;
    };
    let s = network(Reply::Model {
        text: "hello from the test upstream".into(),
    });
    let f = Fixture::new("secrets-claude-code");
    let dir = claude.parent().unwrap().display().to_string();
    let p = profile(
        &f,
        "claude",
        "",
        &format!(
            "filesystem:\n  exec: {{add: [\"{dir}\"]}}\nenv:\n  set: {{HOME: \"{}\", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: \"1\"}}\n",
            f.ws.display()
        ),
    );
    let script = format!(
        "echo \"key=$ANTHROPIC_API_KEY\"; {} -p 'say hello' </dev/null; echo claude=$?",
        claude.display()
    );
    let (o, log) = run(&s, &f, &p, &script);
    let out = stdout(&o);
    // The client held the placeholder...
    assert!(
        out.contains(&format!("key={}", placeholder())),
        "{}",
        show(&o)
    );
    // ...printed what the upstream answered...
    assert!(
        out.contains("hello from the test upstream"),
        "{}\n{log}",
        show(&o)
    );
    assert!(out.contains("claude=0"), "{}\n{log}", show(&o));
    // ...whose every request carried the real key and never the
    // placeholder.
    let reqs = s.api.requests();
    assert!(
        reqs.iter().any(|r| r.target.starts_with("/v1/messages")),
        "{reqs:?}"
    );
    for r in &reqs {
        assert_eq!(r.header("x-api-key"), [key()], "{}", r.text());
        assert!(!r.text().contains("confine-placeholder"), "{}", r.text());
    }
    assert!(!records(&log, "usage").is_empty(), "{log}");
    nowhere(&o, &log);
}

/// How many times `needle` is in the memory of process `pid` (every
/// readable mapping, through /proc/PID/mem, read as root); `None` when
/// the process can't be read at all.
fn in_memory(pid: i32, needle: &[u8]) -> Option<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut found = 0;
    let mut read_any = false;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.contains("[vvar") || line.contains("[vsyscall]") {
            continue;
        }
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        let mut buf = vec![0u8; (hi - lo) as usize];
        if mem.seek(SeekFrom::Start(lo)).is_err() {
            continue;
        }
        let Ok(n) = mem.read(&mut buf) else {
            continue;
        };
        read_any |= n > 0;
        found += buf[..n]
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count();
    }
    read_any.then_some(found)
}

/// The children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// In another PID namespace than the test's (the sandbox's init), or not.
fn in_own_pid_ns(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .is_some_and(|l| l.split_whitespace().count() > 2)
}

#[test]
fn only_the_proxy_holds_the_value_while_the_sandbox_runs() {
    let test = "only_the_proxy_holds_the_value_while_the_sandbox_runs";
    if !ready(test) {
        return;
    }
    let s = network(Reply::Json(message(1, 1)));
    let f = Fixture::new("secrets-memory");
    let p = profile(&f, "memory", "", "");
    std::fs::copy(s.net.ca(), f.ws.join("ca.pem")).unwrap();
    let token = token(47);
    // One request on the route first, so the proxy has used the value.
    let script = format!(
        "{CURL} -o /dev/null -H \"x-api-key: $ANTHROPIC_API_KEY\" \"$ANTHROPIC_BASE_URL/v1/messages\" && exec /bin/sleep {token}"
    );
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["run", "-p", &p, "-w"])
        .arg(&f.ws)
        .args(["--", "/bin/sh", "-c", &script])
        .env_clear()
        .env("PATH", PATH)
        .env("TEST_ANTHROPIC_KEY", key())
        .env("SSL_CERT_FILE", s.net.ca())
        .current_dir(&f.ws);
    let mut child = s
        .net
        .in_client(&cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // `ip netns exec` execs confine: the child is the supervisor.
    let supervisor = child.id() as i32;
    let ready = poll(Duration::from_secs(15), || {
        !processes_with_arg(&token).is_empty() && children(supervisor).len() == 2
    });
    let kids = children(supervisor);
    let init = kids.iter().copied().find(|&c| in_own_pid_ns(c));
    let proxy = kids.iter().copied().find(|&c| !in_own_pid_ns(c));
    let agent = processes_with_arg(&token).first().map(|(pid, _)| *pid);
    let needle = key();
    let found = |pid: i32| in_memory(pid, needle.as_bytes());
    let env_of = |pid: i32| std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let results = (
        found(supervisor),
        init.map(found),
        agent.map(found),
        proxy.map(found),
        env_of(supervisor),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ready, "the sandbox didn't start");
    let (sup, init, agent, proxy, sup_env) = results;
    // The control: the proxy holds the value (it sent it).
    assert!(proxy.flatten().is_some_and(|n| n > 0), "proxy: {proxy:?}");
    assert_eq!(sup, Some(0), "the supervisor still holds the value");
    assert_eq!(init.flatten(), Some(0), "the init holds the value");
    assert_eq!(agent.flatten(), Some(0), "the agent holds the value");
    // The supervisor's own environment block no longer shows it; the
    // variable is still there, blanked.
    let sup_env = String::from_utf8_lossy(&sup_env).into_owned();
    assert!(sup_env.contains("TEST_ANTHROPIC_KEY="), "{sup_env}");
    assert!(!sup_env.contains(&needle), "{sup_env}");
    assert_eq!(s.api.requests()[0].header("x-api-key"), [needle]);
}

#[test]
fn the_openai_sdk_from_npm_sends_the_real_key_on_the_v1_route() {
    let test = "the_openai_sdk_from_npm_sends_the_real_key_on_the_v1_route";
    if !ready(test) || !have(test, "/usr/bin/node") {
        return;
    }
    let Some(sdk) = from_npm("openai", "node_modules/openai/package.json") else {
        eprintln!("skipped: {test}: the openai package couldn't be installed from npm here");
        return;
    };
    let modules = sdk
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .display()
        .to_string();
    let net = Net::new();
    let _dns = net.dns(DNS);
    let api = net.api(
        API_ADDR,
        &["api.openai.com"],
        Reply::Json(
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"hello from the openai stand-in"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#.into(),
        ),
    );
    let other = net.api(OTHER_ADDR, &["example.com"], Reply::Json("{}".into()));
    let s = Setup { net, api, other };
    let f = Fixture::new("secrets-openai");
    let yaml = format!(
        r#"version: 1
extends: default
network:
  mode: proxy
  hosts: {{api.openai.com: {API_ADDR}}}
secrets:
  - name: openai
    from: "env:TEST_ANTHROPIC_KEY"
    provider: openai
filesystem:
  read: {{add: ["{modules}"]}}
env:
  set: {{NODE_PATH: "{modules}"}}
"#
    );
    let p = f.profile("openai", &yaml).display().to_string();
    let script = r#"echo "key=$OPENAI_API_KEY"; /usr/bin/node -e '
const OpenAI = require("openai");
new OpenAI().chat.completions.create({model: "gpt-test", messages: [{role: "user", content: "hi"}]})
  .then(r => console.log(r.choices[0].message.content), e => { console.error(String(e)); process.exit(1); });'"#;
    let (o, log) = run(&s, &f, &p, script);
    assert_eq!(o.status.code(), Some(0), "{}\n{log}", show(&o));
    let out = stdout(&o);
    assert!(
        out.contains("key=sk-proj-confine-placeholder-"),
        "{}",
        show(&o)
    );
    assert!(
        out.contains("hello from the openai stand-in"),
        "{}",
        show(&o)
    );
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].target, "/v1/chat/completions");
    assert_eq!(
        reqs[0].header("authorization"),
        [format!("Bearer {}", key())]
    );
    assert_eq!(reqs[0].header("host"), ["api.openai.com"]);
    assert!(!reqs[0].text().contains("confine-placeholder"));
    let usage = records(&log, "usage");
    assert_eq!(usage[0]["tokens_in"], 9, "{log}");
    assert_eq!(usage[0]["model"], "gpt-test", "{log}");
    nowhere(&o, &log);
}
