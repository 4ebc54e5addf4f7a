//! `secrets:` from the outside (DESIGN.md §10): `check` accepts a good
//! profile and locates every bad one on one line; `explain` (text and
//! JSON) shows each secret's name, source and route and never its value;
//! `run` reads every secret first (a missing variable, an unreadable or
//! group/world-readable file is a refusal naming the entry, exit 125, no
//! value). Forwarding is tests/secrets.rs.
mod common;
use common::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What the secrets hold in these tests: nothing may ever print it.
const ENV_VALUE: &str = "sk-ant-api03-REALVALUE-env-7f3a9c";
const FILE_VALUE: &str = "sk-REALVALUE-file-2b8e41";

fn confine(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("RUST_BACKTRACE", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn no_value(o: &Output) {
    let all = format!("{}{}", stdout(o), stderr(o));
    for v in [ENV_VALUE, FILE_VALUE, "REALVALUE"] {
        assert!(!all.contains(v), "the secret's value was printed:\n{all}");
    }
}

/// A private secret file outside every grant.
fn secret_file(f: &Fixture, name: &str, mode: u32) -> PathBuf {
    let p = f.outside.join(name);
    fs::write(&p, format!("{FILE_VALUE}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn profile(f: &Fixture, name: &str, file: &Path) -> PathBuf {
    f.profile(
        name,
        &format!(
            r#"version: 1
extends: default
network:
  mode: proxy
  allow: [pypi.org]
secrets:
  - name: anthropic
    from: "env:TEST_ANTHROPIC_KEY"
    provider: anthropic
    limits: {{requests_per_minute: 60, cost: "5.00/h", prices: {{claude-test: {{input: 3, output: 15}}}}, on_exhausted: stop}}
  - name: internal
    from: "file:{}"
    upstream: "https://llm.example.com/api"
    header: "Authorization: Bearer {{secret}}"
    base_url_env: LLM_BASE_URL
    key_env: LLM_API_KEY
"#,
            file.display()
        ),
    )
}

#[test]
fn check_accepts_a_good_profile() {
    let f = Fixture::new("secrets-check-good");
    let p = profile(&f, "good", &secret_file(&f, "key", 0o600));
    let o = confine(&["check", p.to_str().unwrap()], &[]);
    assert_status(&o, 0);
    assert_eq!(stderr(&o), "", "{}", show(&o));
}

#[test]
fn check_locates_bad_entries() {
    let f = Fixture::new("secrets-check-bad");
    // (name, secrets section, key, line, fragment); the section starts on line 5.
    let bad: &[(&str, &str, &str, usize, &str)] = &[
        ("provider", "  - {name: a, from: \"env:K\", provider: mistral}\n", "secrets[0].provider", 5, "allowed: anthropic, openai, gemini, github"),
        ("both", "  - {name: a, from: \"env:K\", provider: openai, upstream: \"https://x.example\"}\n", "secrets[0].upstream", 5, "both a provider and an upstream"),
        ("neither", "  - {name: a, from: \"env:K\"}\n", "secrets[0].name", 5, "needs a provider"),
        ("relative", "  - {name: a, from: \"file:key\", provider: openai}\n", "secrets[0].from", 5, "must be absolute"),
        ("dup", "  - {name: a, from: \"env:K\", provider: openai}\n  - {name: a, from: \"env:L\", provider: gemini}\n", "secrets[1].name", 6, "already in this list"),
        ("header", "  - {name: a, from: \"env:K\", upstream: \"https://x.example\", header: \"x-key: Bearer\"}\n", "secrets[0].header", 5, "exactly once"),
        ("plain", "  - {name: a, from: \"env:K\", upstream: \"http://x.example\", header: \"x-key: {secret}\"}\n", "secrets[0].upstream", 5, "https URL"),
        ("cost", "  - {name: a, from: \"env:K\", provider: openai, limits: {cost: \"five\"}}\n", "secrets[0].limits.cost", 5, "bad cost"),
    ];
    for (name, section, key, line, why) in bad {
        let p = f.profile(
            name,
            &format!("version: 1\nnetwork:\n  mode: proxy\nsecrets:\n{section}"),
        );
        let o = confine(&["check", p.to_str().unwrap()], &[]);
        assert_status(&o, 125);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        let at = format!("confine: {key} ({}:{line}:", p.display());
        assert!(err.starts_with(&at), "{name}: want {at}…, got {err}");
        assert!(err.contains(why), "{name}: {err}");
    }
    // Without proxy mode: the mode is named.
    let p = f.profile(
        "mode",
        "version: 1\nnetwork:\n  mode: loopback\nsecrets:\n  - {name: a, from: \"env:K\", provider: openai}\n",
    );
    let o = confine(&["check", p.to_str().unwrap()], &[]);
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("network.mode is loopback"),
        "{}",
        show(&o)
    );
}

#[test]
fn explain_shows_name_source_and_route_never_the_value() {
    let f = Fixture::new("secrets-explain");
    let file = secret_file(&f, "key", 0o600);
    let p = profile(&f, "p", &file);
    let env = [("TEST_ANTHROPIC_KEY", ENV_VALUE)];
    let ws = f.ws.to_str().unwrap();
    let o = confine(&["explain", "-p", p.to_str().unwrap(), "-w", ws], &env);
    assert_status(&o, 0);
    no_value(&o);
    let out = stdout(&o);
    for want in [
        "secret      anthropic: read from env:TEST_ANTHROPIC_KEY",
        "route http://127.0.0.1:3128/anthropic -> https://api.anthropic.com",
        &format!("internal: read from file:{}", file.display()),
        "-> https://llm.example.com/api",
        "cost 5/h",
        "ANTHROPIC_BASE_URL=<route>",
    ] {
        assert!(out.contains(want), "missing {want}:\n{out}");
    }
    let o = confine(
        &["explain", "--json", "-p", p.to_str().unwrap(), "-w", ws],
        &env,
    );
    assert_status(&o, 0);
    no_value(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let s = &v["secrets"][0];
    assert_eq!(s["name"], "anthropic");
    assert_eq!(s["source"]["kind"], "env");
    assert_eq!(s["source"]["name"], "TEST_ANTHROPIC_KEY");
    assert_eq!(s["route"], "http://127.0.0.1:3128/anthropic");
    assert!(s["placeholder"]
        .as_str()
        .unwrap()
        .starts_with("sk-ant-api03-confine-placeholder-"));
    // The upstream is the route's only, not in allow.
    let allow = v["network"]["egress"]["allow"].to_string();
    assert!(!allow.contains("anthropic"), "{allow}");
    let o = confine(
        &[
            "run",
            "--dry-run",
            "-p",
            p.to_str().unwrap(),
            "-w",
            ws,
            "--",
            "/bin/true",
        ],
        &env,
    );
    assert_status(&o, 0);
    no_value(&o);
}

/// `run` with `profile`, in a clean environment plus `env`; the command
/// would create a marker in the workspace if it ever ran.
fn run(f: &Fixture, p: &Path, env: &[(&str, &str)]) -> Output {
    let marker = f.ws.join("ran");
    let o = f
        .command(
            p.to_str().unwrap(),
            &["/bin/touch", marker.to_str().unwrap()],
        )
        .env_clear()
        .env("PATH", PATH)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!marker.exists(), "the command ran: {}", show(&o));
    o
}

#[test]
fn run_refuses_secrets_it_cant_read_naming_the_entry() {
    let f = Fixture::new("secrets-run-refusals");
    let env = [("TEST_ANTHROPIC_KEY", ENV_VALUE)];
    // A missing variable.
    let good = profile(&f, "good", &secret_file(&f, "key", 0o600));
    let o = run(&f, &good, &[]);
    assert_status(&o, 125);
    no_value(&o);
    let e = stderr(&o);
    assert!(
        e.contains("secret anthropic (env:TEST_ANTHROPIC_KEY)") && e.contains("isn't set"),
        "{e}"
    );
    // A world-readable file, a group-readable one, one that doesn't exist.
    for (name, mode, why) in [
        ("world", Some(0o644), "mode 0644"),
        ("group", Some(0o640), "mode 0640"),
        ("missing", None, "can't open"),
    ] {
        let file = match mode {
            Some(m) => secret_file(&f, name, m),
            None => f.outside.join(name),
        };
        let p = profile(&f, name, &file);
        let o = run(&f, &p, &env);
        assert_status(&o, 125);
        no_value(&o);
        let e = stderr(&o);
        assert!(
            e.contains(&format!("secret internal (file:{})", file.display())),
            "{name}: {e}"
        );
        assert!(e.contains(why), "{name}: {e}");
    }
    // A symlink to a private file: not followed.
    let link = f.outside.join("link");
    std::os::unix::fs::symlink(f.outside.join("key"), &link).unwrap();
    let o = run(&f, &profile(&f, "link", &link), &env);
    assert_status(&o, 125);
    no_value(&o);
    assert!(stderr(&o).contains("symlink"), "{}", show(&o));
}
