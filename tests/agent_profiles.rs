//! The built-in agent profiles (`claude-code`, `codex`, `gemini-cli`,
//! `aider`, `python-agent`, `research`): each checks clean, explains what it
//! allows, is listed and shown by `confine profiles`, and, run as a copy
//! without its secret (tests/agent_clients.rs runs the clients with
//! theirs), gives the agent a private HOME, keeps the protected paths
//! read-only and leaves no config files in the workspace.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AGENTS: &[&str] = &[
    "research",
    "python-agent",
    "aider",
    "claude-code",
    "codex",
    "gemini-cli",
];

fn confine(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PATH", PATH)
        .output()
        .unwrap()
}

fn source(name: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("profiles/{name}.yaml")))
        .unwrap()
}

#[test]
fn agent_profiles_are_listed_shown_and_check_clean() {
    let o = confine(&["profiles"]);
    assert_status(&o, 0);
    let names: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    // The ladder: minimal, readonly, default, the agents, networked.
    assert_eq!(names[..3], ["minimal", "readonly", "default"]);
    assert_eq!(names[3..names.len() - 1], *AGENTS);
    assert_eq!(names.last().unwrap(), "networked");
    for name in AGENTS {
        let o = confine(&["profiles", "show", name]);
        assert_status(&o, 0);
        assert_eq!(stdout(&o), source(name), "{name}");
        // Each says what it allows and why, first thing.
        assert!(stdout(&o).starts_with(&format!("# {name}: ")), "{name}");
        assert!(stdout(&o).contains("\n# Allows: "), "{name}");
        let o = confine(&["check", name]);
        assert_status(&o, 0);
        assert_eq!(stdout(&o), format!("{name}: ok\n"));
        assert!(stderr(&o).is_empty(), "{name}: {}", show(&o));
    }
    let o = confine(&["profiles", "show", "no-such-profile"]);
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("the built-ins are minimal, readonly"),
        "{}",
        show(&o)
    );
}

/// What `explain` must say for each agent profile: its egress hosts, the
/// secret's route, the private home, the protected paths, the variables
/// that turn the client's own sandbox and updater off.
fn expected(name: &str) -> (Vec<&'static str>, Vec<&'static str>, &'static str) {
    match name {
        "claude-code" => (
            vec!["api.anthropic.com:443", "registry.npmjs.org:443"],
            vec![
                "DISABLE_AUTOUPDATER",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
                "ANTHROPIC_BASE_URL",
            ],
            ".claude",
        ),
        "codex" => (
            vec!["api.openai.com:443", "registry.npmjs.org:443"],
            vec!["OPENAI_BASE_URL", "CODEX_API_KEY"],
            ".codex",
        ),
        "gemini-cli" => (
            vec![
                "generativelanguage.googleapis.com:443",
                "registry.npmjs.org:443",
            ],
            vec!["GEMINI_SANDBOX", "GEMINI_API_KEY"],
            ".gemini",
        ),
        "aider" => (
            vec![
                "api.anthropic.com:443",
                "pypi.org:443",
                "files.pythonhosted.org:443",
            ],
            vec!["AIDER_CHECK_UPDATE", "AIDER_ANALYTICS", "ANTHROPIC_API_KEY"],
            // Not .aider.conf.yml: aider refuses the empty placeholder.
            ".idea",
        ),
        "python-agent" => (
            vec![
                "api.openai.com:443",
                "pypi.org:443",
                "files.pythonhosted.org:443",
            ],
            vec!["PIP_CACHE_DIR", "OPENAI_API_KEY"],
            ".envrc",
        ),
        "research" => (
            vec![
                "api.anthropic.com:443",
                "docs.python.org:443",
                "github.com:443",
            ],
            vec!["ANTHROPIC_BASE_URL"],
            "",
        ),
        _ => unreachable!(),
    }
}

#[test]
fn agent_profiles_explain_what_they_allow() {
    if !can_run("agent_profiles_explain_what_they_allow") {
        return;
    }
    let f = Fixture::new("agents-explain");
    for name in AGENTS {
        let o = Command::new(bin())
            .args(["explain", "-p", name, "-w"])
            .arg(&f.ws)
            .arg("--json")
            .env("PATH", PATH)
            .output()
            .unwrap();
        assert_status(&o, 0);
        let plan: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let text = plan.to_string();
        let (hosts, vars, protected) = expected(name);
        assert_eq!(plan["network"]["mode"], "proxy", "{name}");
        for h in hosts {
            assert!(text.contains(h), "{name}: no {h}: {text}");
        }
        let keys: Vec<&str> = plan["env_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        for v in vars {
            assert!(keys.contains(&v), "{name}: no {v} in {keys:?}");
        }
        assert!(keys.contains(&"HOME"), "{name}");
        assert_eq!(plan["home"]["kind"], "private", "{name}");
        let home = plan["home"]["path"].as_str().unwrap();
        assert!(
            home.ends_with(&format!("/confine/homes/{name}")),
            "{name}: {home}"
        );
        // The home is a write grant of its own.
        assert!(
            plan["filesystem"]["grants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["path"] == home && g["write"] == true),
            "{name}: {}",
            plan["filesystem"]["grants"]
        );
        if !protected.is_empty() {
            let p = plan["filesystem"]["protect"].to_string();
            for want in [
                ".git/hooks",
                ".git/config",
                ".env",
                ".vscode",
                ".idea",
                protected,
            ] {
                assert!(p.contains(want), "{name}: {want} not protected: {p}");
            }
        }
        if *name == "research" {
            // Nothing of the workspace is writable.
            let ws = fs::canonicalize(&f.ws).unwrap();
            assert!(
                !plan["filesystem"]["grants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    // The implicit private /tmp is a tmpfs of its own: a
                    // workspace beneath the host's /tmp (as in CI) is
                    // mounted read-only over it, not written through it.
                    .any(|g| g["write"] == true
                        && g["implicit"] != true
                        && ws.starts_with(g["path"].as_str().unwrap())),
                "research writes the workspace: {}",
                plan["filesystem"]["grants"]
            );
        }
    }
}

/// A private home under /var/lib/confine/homes, removed at the end.
struct Home(PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn agent_profiles_run_with_a_private_home_and_protected_config() {
    if !can_run("agent_profiles_run_with_a_private_home_and_protected_config") {
        return;
    }
    for name in AGENTS {
        let f = Fixture::new(&format!("agents-run-{name}"));
        let copy = format!("test-{name}-{}", unique());
        let home = Home(Path::new("/var/lib/confine/homes").join(&copy));
        // A copy without its secret (no key in the test's environment).
        let p = f.profile(
            &copy,
            &format!("version: 1\nname: {copy}\nextends: {name}\nsecrets: []\n"),
        );
        fs::create_dir_all(f.ws.join(".git/hooks")).unwrap();
        fs::write(f.ws.join(".git/config"), "[core]\n").unwrap();
        for d in [".git", ".git/hooks"] {
            std::os::unix::fs::chown(f.ws.join(d), Some(AGENT_UID), Some(AGENT_GID)).unwrap();
        }
        let victim = f.file(&f.outside.join("victim"), "original");
        let script = format!(
            "echo \"home=$HOME\"; echo s > \"$HOME/.agent-state\"; echo state=$?; \
             echo w > work.txt 2>/dev/null; echo work=$?; \
             echo x > .git/hooks/pre-commit 2>/dev/null; echo hook=$?; \
             echo x >> .git/config 2>/dev/null; echo gitconfig=$?; \
             echo x > .env 2>/dev/null; echo env=$?; \
             echo x > {} 2>/dev/null; echo outside=$?",
            victim.display()
        );
        let o = f.sh(p.to_str().unwrap(), &script);
        assert_status(&o, 0);
        let m = labelled(&stdout(&o).replace('=', " "));
        assert_eq!(
            m["home"],
            home.0.display().to_string(),
            "{name}: {}",
            show(&o)
        );
        assert_eq!(m["state"], "0", "{name}: {}", show(&o));
        assert_eq!(
            fs::read_to_string(home.0.join(".agent-state")).unwrap(),
            "s\n",
            "{name}"
        );
        // The client's own settings under confine are in its home, the
        // agent's, before it starts (`home.files`); none elsewhere.
        let settings: &[(&str, &str)] = match *name {
            "codex" => &[
                (
                    ".codex/config.toml",
                    "\nopenai_base_url = \"http://127.0.0.1:3128/openai\"\n",
                ),
                (
                    ".codex/config.toml",
                    "\nsandbox_mode = \"danger-full-access\"\n",
                ),
            ],
            "gemini-cli" => &[(
                ".gemini/settings.json",
                "\"selectedType\": \"gemini-api-key\"",
            )],
            _ => &[],
        };
        for (file, line) in settings {
            let at = home.0.join(file);
            let text = fs::read_to_string(&at).unwrap_or_default();
            assert!(text.contains(line), "{name}: {file} lacks {line}: {text:?}");
            let m = fs::metadata(&at).unwrap();
            assert_eq!((m.uid(), m.mode() & 0o777), (AGENT_UID, 0o600), "{name}");
        }
        // Control: the workspace is writable (but for research), and the
        // protected paths and everything outside are not.
        let writes = *name != "research";
        assert_eq!(m["work"] == "0", writes, "{name}: {}", show(&o));
        for k in ["hook", "gitconfig", "env", "outside"] {
            assert_ne!(m[k], "0", "{name}: {k} was writable: {}", show(&o));
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
        assert_eq!(
            fs::read_to_string(f.ws.join(".git/config")).unwrap(),
            "[core]\n"
        );
        // The workspace holds what the agent made there and nothing else:
        // no config files, no placeholders left.
        let mut left: Vec<String> = fs::read_dir(&f.ws)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let want: &[&str] = if writes {
            &[".git", "work.txt"]
        } else {
            &[".git"]
        };
        assert_eq!(left, want, "{name}: {}", show(&o));
    }
}

/// `npm install PACKAGE` into target/agents/PROFILE once.
fn npm_install(test: &str, profile: &str, package: &str, bin: &str) -> Option<PathBuf> {
    common::agents::npm(test, profile, package, bin)
}

fn claude_code_install(test: &str) -> Option<PathBuf> {
    npm_install(test, "claude-code", "@anthropic-ai/claude-code", "claude")
}

/// Runs `BIN --version` under a copy of the built-in `profile` without its
/// secret, with the installation granted; checks the output and that the
/// client's state went to the private home, not the workspace.
fn version_under_profile(
    test: &str,
    profile: &str,
    package: &str,
    bin: &str,
    want: &str,
    state: &str,
) {
    let Some(install) = npm_install(test, profile, package, bin) else {
        return;
    };
    let f = Fixture::new(&format!("agents-{profile}-version"));
    let copy = format!("test-{profile}-{}", unique());
    let home = Home(Path::new("/var/lib/confine/homes").join(&copy));
    let p = f.profile(
        &copy,
        &format!(
            "version: 1\nname: {copy}\nextends: {profile}\nsecrets: []\n\
             filesystem:\n  exec: {{add: [{}]}}\n",
            install.display()
        ),
    );
    let mut c = f.command(p.to_str().unwrap(), &[bin, "--version"]);
    c.env(
        "PATH",
        format!("{}:{PATH}", install.join("node_modules/.bin").display()),
    );
    let o = c.output().unwrap();
    assert_status(&o, 0);
    assert!(stdout(&o).contains(want), "{profile}: {}", show(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    for bad in [
        "EPERM",
        "EACCES",
        "ENOSYS",
        "Operation not permitted",
        "Permission denied",
    ] {
        assert!(!all.contains(bad), "{profile}: {bad}: {}", show(&o));
    }
    assert_eq!(
        fs::read_dir(&f.ws).unwrap().count(),
        0,
        "{profile}: {}",
        show(&o)
    );
    if !state.is_empty() {
        assert!(
            home.0.join(state).is_dir(),
            "{profile}: no {state} in the private home"
        );
    }
}

#[test]
fn codex_starts_under_its_profile() {
    let name = "codex_starts_under_its_profile";
    if can_run(name) {
        version_under_profile(
            name,
            "codex",
            "@openai/codex",
            "codex",
            "codex-cli ",
            ".codex",
        );
    }
}

#[test]
fn gemini_cli_starts_under_its_profile() {
    let name = "gemini_cli_starts_under_its_profile";
    if can_run(name) {
        version_under_profile(
            name,
            "gemini-cli",
            "@google/gemini-cli",
            "gemini",
            "0.",
            ".gemini",
        );
    }
}

#[test]
fn claude_code_starts_under_its_profile() {
    let name = "claude_code_starts_under_its_profile";
    if !can_run(name) {
        return;
    }
    let Some(install) = claude_code_install(name) else {
        return;
    };
    let f = Fixture::new("agents-claude");
    let copy = format!("test-claude-code-{}", unique());
    let home = Home(Path::new("/var/lib/confine/homes").join(&copy));
    // The built-in, without its secret (no key in the test's
    // environment), plus the installation outside /usr.
    let p = f.profile(
        &copy,
        &format!(
            "version: 1\nname: {copy}\nextends: claude-code\nsecrets: []\n\
             filesystem:\n  exec: {{add: [{}]}}\n",
            install.display()
        ),
    );
    let mut c = f.command(p.to_str().unwrap(), &["claude", "--version"]);
    c.env(
        "PATH",
        format!("{}:{PATH}", install.join("node_modules/.bin").display()),
    );
    let o = c.output().unwrap();
    assert_status(&o, 0);
    assert!(stdout(&o).contains("(Claude Code)"), "{}", show(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    for bad in [
        "EPERM",
        "EACCES",
        "ENOSYS",
        "Operation not permitted",
        "Permission denied",
    ] {
        assert!(!all.contains(bad), "{bad}: {}", show(&o));
    }
    // Nothing of it in the workspace (no .claude.json, no placeholders
    // left); HOME was its private one.
    assert_eq!(fs::read_dir(&f.ws).unwrap().count(), 0, "{}", show(&o));
    assert!(home.0.is_dir());

    // Control: without the grant for the installation it isn't there, and
    // confine says which directory to add.
    let bare = f.profile(
        "bare",
        &format!("version: 1\nname: {copy}\nextends: claude-code\nsecrets: []\n"),
    );
    let mut c = f.command(bare.to_str().unwrap(), &["claude", "--version"]);
    c.env(
        "PATH",
        format!("{}:{PATH}", install.join("node_modules/.bin").display()),
    );
    let o = c.output().unwrap();
    assert_status(&o, 127);
    assert!(
        stderr(&o).contains("exists outside the sandbox"),
        "{}",
        show(&o)
    );
    assert!(
        stderr(&o).contains(&install.join("node_modules/.bin").display().to_string()),
        "{}",
        show(&o)
    );
}
