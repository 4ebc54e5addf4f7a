//! `network.mode: proxy` from the outside, before the egress proxy runs
//! (DESIGN.md §9): `check` accepts a good policy and locates every bad one
//! on one line, `explain` and `--dry-run` show the policy, `probe` says
//! whether the host can do it, and `run` refuses it (125) without running
//! anything, next to a loopback control that does run.
mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `confine ARGS...` with a clean environment; RUST_BACKTRACE=1 so that a
/// panic anywhere would show.
fn confine(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn check(p: &Path) -> Output {
    confine(&["check", p.to_str().unwrap()])
}

/// A policy with every key, as DESIGN.md §2 shows them, plus a pinned
/// test name and its address.
const GOOD: &str = r#"version: 1
extends: default
network:
  mode: proxy
  allow: [api.anthropic.com, "*.pythonhosted.org", "github.com:22", "upstream.test:80", "10.0.0.5:80"]
  deny: [evil.pythonhosted.org, "*.pythonhosted.org:80"]
  hosts: {upstream.test: 10.0.0.5}
  budget: {connections: 2000, per_minute: 300, bytes_out: 200M, bytes_in: 10G, on_exhausted: stop}
"#;

#[test]
fn check_accepts_a_proxy_profile_without_warnings() {
    let f = Fixture::new("egress-check-good");
    let p = f.profile("good", GOOD);
    let o = check(&p);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), format!("{}: ok\n", p.display()));
    assert_eq!(stderr(&o), "", "{}", show(&o));
}

/// (name, network section after `network:\n  mode: proxy\n`, key, line,
/// column, fragment): each through `confine check`.
const BAD: &[(&str, &str, &str, usize, usize, &str)] = &[
    (
        "scheme",
        "  allow: [\"https://api.example.com\"]\n",
        "network.allow[0]",
        4,
        11,
        "without a scheme",
    ),
    (
        "path",
        "  allow: [api.example.com/v1]\n",
        "network.allow[0]",
        4,
        11,
        "without a path",
    ),
    (
        "userinfo",
        "  allow: [\"me@example.com\"]\n",
        "network.allow[0]",
        4,
        11,
        "without a user name",
    ),
    (
        "space",
        "  allow: [\"a b.example.com\"]\n",
        "network.allow[0]",
        4,
        11,
        "no spaces",
    ),
    (
        "idn",
        "  allow: [bücher.example]\n",
        "network.allow[0]",
        4,
        11,
        "punycode",
    ),
    (
        "port_0",
        "  allow: [\"example.com:0\"]\n",
        "network.allow[0]",
        4,
        11,
        "port `0` is out of range",
    ),
    (
        "port_high",
        "  deny:\n    - \"example.com:65536\"\n",
        "network.deny[0]",
        5,
        7,
        "port `65536` is out of range",
    ),
    (
        "port_word",
        "  allow: [\"example.com:https\"]\n",
        "network.allow[0]",
        4,
        11,
        "isn't a number",
    ),
    (
        "v6_bare",
        "  allow: [\"fd00::1\"]\n",
        "network.allow[0]",
        4,
        11,
        "in brackets",
    ),
    (
        "wild_middle",
        "  allow: [\"api.*.example.com\"]\n",
        "network.allow[0]",
        4,
        11,
        "the only wildcard is a leading `*.`",
    ),
    (
        "wild_star",
        "  allow: [\"*\"]\n",
        "network.allow[0]",
        4,
        11,
        "the only wildcard",
    ),
    (
        "wild_tld",
        "  allow: [\"*.com\"]\n",
        "network.allow[0]",
        4,
        11,
        "every name under a top-level domain",
    ),
    (
        "label_long",
        "  allow: [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example]\n",
        "network.allow[0]",
        4,
        11,
        "longer than 63 characters, so it could never match",
    ),
    (
        "underscore",
        "  allow: [my_host.example.com]\n",
        "network.allow[0]",
        4,
        11,
        "no `_`",
    ),
    (
        "short_ipv4",
        "  allow: [a.example, 127.1]\n",
        "network.allow[1]",
        4,
        22,
        "four decimal numbers",
    ),
    (
        "ip_unpinned",
        "  allow: [\"10.0.0.5:80\"]\n",
        "network.allow[0]",
        4,
        11,
        "is an IP address that hosts: doesn't pin",
    ),
    (
        "pin_twice",
        "  hosts:\n    a.test: 10.0.0.1\n    A.TEST: 10.0.0.2\n",
        "network.hosts.A.TEST",
        6,
        5,
        "pinned twice",
    ),
    (
        "pin_not_ip",
        "  hosts: {a.test: a.example}\n",
        "network.hosts.a.test",
        4,
        19,
        "isn't an IP address",
    ),
    (
        "pin_address_key",
        "  hosts:\n    10.0.0.1: 10.0.0.2\n",
        "network.hosts.10.0.0.1",
        5,
        5,
        "is an address",
    ),
    (
        "pin_unusable",
        "  hosts: {a.test: 0.0.0.0}\n",
        "network.hosts.a.test",
        4,
        19,
        "can't be connected to",
    ),
    (
        "budget_zero",
        "  budget: {connections: 0}\n",
        "network.budget.connections",
        4,
        25,
        "from 1 up",
    ),
    (
        "budget_bytes",
        "  budget: {bytes_in: 0}\n",
        "network.budget.bytes_in",
        4,
        22,
        "zero",
    ),
    (
        "budget_enum",
        "  budget: {on_exhausted: kill}\n",
        "network.budget.on_exhausted",
        4,
        26,
        "allowed: refuse, stop",
    ),
    (
        "budget_typo",
        "  budget: {bytes_uot: 1M}\n",
        "network.budget.bytes_uot",
        4,
        12,
        "did you mean `bytes_out`",
    ),
    (
        "ask",
        "  ask: [\"10.0.0.5:80\"]\n",
        "network.ask[0]",
        4,
        9,
        "is an IP address that hosts: doesn't pin",
    ),
];

#[test]
fn check_locates_every_bad_egress_key_on_one_line() {
    let f = Fixture::new("egress-check-bad");
    for (name, body, key, line, col, fragment) in BAD {
        let p = f.profile(
            name,
            &format!("version: 1\nnetwork:\n  mode: proxy\n{body}"),
        );
        let o = check(&p);
        assert_status(&o, 125);
        let err = stderr(&o);
        let want = format!("confine: {key} ({}:{line}:{col}): ", p.display());
        assert!(
            err.starts_with(&want),
            "{name}: want {want:?}\n{}",
            show(&o)
        );
        assert!(
            err.contains(fragment),
            "{name}: lacks {fragment:?}\n{}",
            show(&o)
        );
        assert_eq!(err.lines().count(), 1, "{name}: one line\n{}", show(&o));
        assert!(stdout(&o).is_empty(), "{name}: {}", show(&o));
    }
}

#[test]
fn egress_keys_in_another_mode_are_refused_naming_the_mode() {
    let f = Fixture::new("egress-check-mode");
    for (mode, body, key, at) in [
        (
            "loopback",
            "  allow: [a.example]\n",
            "network.allow[0]",
            "4:11",
        ),
        (
            "host",
            "  budget: {connections: 5}\n",
            "network.budget",
            "4:11",
        ),
        (
            "none",
            "  hosts: {a.example: 10.0.0.1}\n",
            "network.hosts.a.example",
            "4:22",
        ),
    ] {
        let p = f.profile(
            mode,
            &format!("version: 1\nnetwork:\n  mode: {mode}\n{body}"),
        );
        let o = check(&p);
        assert_status(&o, 125);
        let want = format!(
            "confine: {key} ({}:{at}): `{}` applies only with network.mode proxy, but network.mode is {mode} ({}:3:9)",
            p.display(),
            key.split(['.', '[']).take(2).collect::<Vec<_>>().join("."),
            p.display()
        );
        assert!(stderr(&o).starts_with(&want), "want {want:?}\n{}", show(&o));
    }
    // Without any mode: the default, none.
    let p = f.profile("nomode", "version: 1\nnetwork:\n  deny: [a.example]\n");
    let o = check(&p);
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("but network.mode is none (the default)"),
        "{}",
        show(&o)
    );
    // A child that picks another mode leaves its parent's policy behind.
    let base = f.profile("base", GOOD);
    let child = f.profile(
        "child",
        &format!(
            "version: 1\nextends: {}\nnetwork:\n  mode: loopback\n",
            base.display()
        ),
    );
    assert_status(&check(&child), 0);
}

#[test]
fn check_warns_about_a_policy_that_does_less_than_it_says() {
    let f = Fixture::new("egress-check-warn");
    let p = f.profile(
        "warn",
        "version: 1\nnetwork:\n  mode: proxy\n  allow: [a.example, \"x.b.example:8443\"]\n  deny: [a.example, \"*.b.example\"]\n  hosts: {c.example: 127.0.0.1}\n",
    );
    let o = check(&p);
    assert_status(&o, 0);
    let err = stderr(&o);
    let at = |l: usize, c: usize| format!("({}:{l}:{c})", p.display());
    for want in [
        format!("confine: warning: network.allow[0] {}: `a.example` is always refused by deny `a.example`", at(4, 11)),
        format!("confine: warning: network.allow[1] {}: `x.b.example:8443` is always refused by deny `*.b.example`", at(4, 22)),
        format!("confine: warning: network.hosts.c.example {}: `c.example` is pinned, but no allow entry admits it", at(6, 22)),
        format!("confine: warning: network.hosts.c.example {}: `c.example` is pinned to 127.0.0.1: the proxy runs on the host", at(6, 22)),
    ] {
        assert!(err.contains(&want), "want {want:?}\n{}", show(&o));
    }
    let p = f.profile("empty", "version: 1\nnetwork:\n  mode: proxy\n");
    let o = check(&p);
    assert_status(&o, 0);
    assert!(
        stderr(&o).contains("network.mode proxy with an empty allow: no host is reachable"),
        "{}",
        show(&o)
    );
}

#[test]
fn explain_and_dry_run_show_the_policy() {
    if !can_run("explain_and_dry_run_show_the_policy") {
        return;
    }
    let f = Fixture::new("egress-explain");
    let p = f.profile("good", GOOD);
    let ws = f.ws.to_str().unwrap();
    let o = confine(&["explain", "-p", p.to_str().unwrap(), "-w", ws]);
    assert_status(&o, 0);
    let out = stdout(&o);
    for want in [
        "network     proxy: own network namespace, lo up; out only through confine's egress proxy",
        "HTTP proxy on 127.0.0.1:3128",
        "DNS stub on 127.0.0.1:53",
        "allow api.anthropic.com:443\n",
        "allow *.pythonhosted.org:443 (names beneath pythonhosted.org, not pythonhosted.org itself)",
        "allow github.com:22\n",
        "allow 10.0.0.5:80\n",
        "deny  evil.pythonhosted.org (every port), wins over allow",
        "deny  *.pythonhosted.org:80, wins over allow",
        "pin   upstream.test -> 10.0.0.5",
        "DNS stub: answers api.anthropic.com, *.pythonhosted.org, github.com, upstream.test with fake addresses",
        "none goes upstream",
        "transparent listeners on the fake addresses, ports 22, 80, 443",
        "refuses loopback, private, link-local (cloud metadata)",
        "TLS server name (SNI) must be the admitted host",
        "budget: 2000 connections, 300 connections per minute, 200M out, 10G in",
        "the sandbox is stopped (exit 124, reason budget)",
        "NOT restricted: what the agent sends to an allowed host: each one is a channel out",
        "(domain fronting)",
        "NOT restricted: the names under an allowed wildcard",
    ] {
        assert!(out.contains(want), "lacks {want:?}\n{out}");
    }
    let ns = out
        .lines()
        .find(|l| l.starts_with("namespaces"))
        .unwrap_or_default();
    assert!(ns.split_whitespace().any(|w| w == "net"), "{ns}");

    // --dry-run prints the same and runs nothing.
    let marker = f.ws.join("dry");
    let o = confine(&[
        "run",
        "-p",
        p.to_str().unwrap(),
        "-w",
        ws,
        "--dry-run",
        "--",
        "/bin/touch",
        marker.to_str().unwrap(),
    ]);
    assert_status(&o, 0);
    assert!(
        stdout(&o).contains("pin   upstream.test -> 10.0.0.5"),
        "{}",
        show(&o)
    );
    assert!(!marker.exists());

    // --json: the policy as the proxy gets it.
    let o = confine(&["explain", "-p", p.to_str().unwrap(), "-w", ws, "--json"]);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = &v["network"];
    assert_eq!(n["mode"], "proxy");
    let e = &n["egress"];
    assert_eq!(e["allow"][0]["pattern"]["exact"], "api.anthropic.com");
    assert_eq!(e["allow"][0]["port"], 443);
    assert_eq!(e["allow"][1]["pattern"]["beneath"], "pythonhosted.org");
    assert_eq!(e["allow"][2]["text"], "github.com:22");
    assert_eq!(e["deny"][0]["port"], serde_json::Value::Null);
    assert_eq!(e["deny"][1]["port"], 80);
    assert_eq!(e["hosts"]["upstream.test"], "10.0.0.5");
    assert_eq!(e["budget"]["connections"], 2000);
    assert_eq!(e["budget"]["bytes_out"], 200u64 << 20);
    assert_eq!(e["budget"]["bytes_in"], 10u64 << 30);
    assert_eq!(e["budget"]["on_exhausted"], "stop");
    assert!(v["namespaces"].as_array().unwrap().contains(&"net".into()));

    // Other modes carry no policy.
    let lo = f.profile(
        "lo",
        "version: 1\nextends: default\nnetwork:\n  mode: loopback\n",
    );
    let o = confine(&["explain", "-p", lo.to_str().unwrap(), "-w", ws, "--json"]);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["network"]["egress"], serde_json::Value::Null);
}

#[test]
fn proxy_mode_runs_from_the_profile_extends_or_set_with_the_stub_and_proxy_variables() {
    let test = "proxy_mode_runs_from_the_profile_extends_or_set_with_the_stub_and_proxy_variables";
    if !can_run(test) {
        return;
    }
    let f = Fixture::new("egress-run");
    let script = "grep -h 'egress proxy' /etc/resolv.conf; echo \"proxy=$HTTPS_PROXY\"";

    // Control: under loopback, the host's resolver and no proxy variable.
    let lo = f.profile(
        "lo",
        "version: 1\nextends: default\nnetwork:\n  mode: loopback\n",
    );
    let o = f.sh(lo.to_str().unwrap(), script);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "proxy=\n", "{}", show(&o));

    let proxied = |o: &Output, how: &str| {
        assert_status(o, 0);
        let out = stdout(o);
        assert!(
            out.contains("egress proxy's DNS stub")
                && out.ends_with("proxy=http://127.0.0.1:3128\n"),
            "{how}: {}",
            show(o)
        );
    };
    // Written in the profile, ...
    let p = f.profile("proxy", GOOD);
    proxied(&f.sh(p.to_str().unwrap(), script), "profile");
    // ... inherited through extends, ...
    let child = f.profile(
        "child",
        &format!("version: 1\nextends: {}\nname: child\n", p.display()),
    );
    proxied(&f.sh(child.to_str().unwrap(), script), "extends");
    // ... or set on the command line over a loopback profile.
    let mut c = Command::new(bin());
    c.args([
        "run",
        "-p",
        lo.to_str().unwrap(),
        "-w",
        f.ws.to_str().unwrap(),
        "--set",
        "network.mode=proxy",
        "--",
        "/bin/sh",
        "-c",
        script,
    ])
    .env_clear()
    .env("PATH", PATH)
    .stdin(Stdio::null());
    proxied(&c.output().unwrap(), "--set");
}

#[test]
fn probe_says_whether_proxy_mode_is_possible() {
    let o = confine(&["probe", "--json"]);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let net = &v["namespaces"]["net"];
    let usable =
        net["can_create"] == true || net["inside_user_namespace"] == serde_json::Value::Bool(true);
    assert_eq!(v["egress_proxy"]["possible"], usable, "{v}");
    let o = confine(&["probe"]);
    assert_status(&o, 0);
    let want = if usable {
        "network.mode proxy: possible ("
    } else {
        "network.mode proxy: not possible (no network namespace"
    };
    assert!(stdout(&o).contains(want), "{}", show(&o));
    // As root a network namespace is expected; CI must not pass without.
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } == 0 && !usable {
        skip_or_fail(
            "probe_says_whether_proxy_mode_is_possible",
            "no network namespace even as root",
        );
    }
}

#[test]
fn the_documented_example_checks_without_warnings() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/PROFILE.md"))
            .unwrap();
    let start = doc
        .find("```yaml\nnetwork:\n  mode: proxy\n")
        .expect("docs/PROFILE.md has the proxy example");
    let body = &doc[start + "```yaml\n".len()..];
    let body = &body[..body.find("```").unwrap()];
    let f = Fixture::new("egress-doc");
    let p = f.profile("doc", &format!("version: 1\n{body}"));
    let o = check(&p);
    assert_status(&o, 0);
    // Its pin of db.internal is used by the address entry: no warning.
    assert_eq!(stderr(&o), "", "{}", show(&o));
}
