//! `confine learn` (DESIGN.md §13, DESIGN-NOTES 55): for a python, a git
//! and a make workload, the learned profile runs the same command from the
//! same starting state under `compat: strict` with exit 0 (the control); an
//! access beyond what the run did is denied under it while `default`
//! allows it (the violation); it grants no more than `default`; what must
//! never be granted isn't, even where the command read it; `--diff`
//! prints only what a profile lacks. Also a call outside the baseline
//! allowlist, learned into `syscalls.allow`; and `-o`'s refusals.

mod common;

use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// `confine learn -w WS [ARGS] -- CMD...` from the workspace, clean PATH.
fn learn(f: &Fixture, args: &[&str], cmd: &[&str]) -> Output {
    Command::new(bin())
        .arg("learn")
        .arg("-w")
        .arg(&f.ws)
        .args(args)
        .arg("--")
        .args(cmd)
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .current_dir(&f.ws)
        .output()
        .unwrap()
}

/// The profile's own grants (confine's implicit ones left out), from
/// `explain --json`: (path, read, write, exec).
fn grants(f: &Fixture, profile: &str) -> Vec<(PathBuf, bool, bool, bool)> {
    let o = Command::new(bin())
        .args(["explain", "--json", "-p", profile, "-w"])
        .arg(&f.ws)
        .output()
        .unwrap();
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["filesystem"]["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| !g["implicit"].as_bool().unwrap())
        .map(|g| {
            (
                PathBuf::from(g["path"].as_str().unwrap()),
                g["read"].as_bool().unwrap(),
                g["write"].as_bool().unwrap(),
                g["exec"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Every grant of `learned` lies beneath a grant of `default` that has
/// each of its rights, and `default` has grants `learned` doesn't cover
/// (it grants less).
fn assert_narrower(f: &Fixture, learned: &str) {
    let l = grants(f, learned);
    let d = grants(f, "default");
    assert!(!l.is_empty(), "learned profile grants nothing");
    for (p, r, w, x) in &l {
        assert!(
            d.iter().any(|(dp, dr, dw, dx)| p.starts_with(dp)
                && (!r || *dr)
                && (!w || *dw)
                && (!x || *dx)),
            "learned grant {} ({r} {w} {x}) is not within default's {d:?}",
            p.display()
        );
    }
    for whole in ["/etc", "/usr"] {
        assert!(
            !l.iter().any(|(p, ..)| Path::new(whole).starts_with(p)),
            "learned grants all of {whole}: {l:?}"
        );
    }
}

/// Learns `cmd` from a workspace `setup` made, resets the workspace to
/// the same start, and runs `cmd` under the learned profile: exit 0.
/// Returns the learned profile's path and its text.
fn learn_and_rerun(f: &Fixture, setup: &dyn Fn(&Fixture), cmd: &[&str]) -> (String, String) {
    setup(f);
    let out = f.root.join("profiles").join("learned.yaml");
    let o = learn(f, &["-o", out.to_str().unwrap()], cmd);
    assert_status(&o, 0);
    let yaml = fs::read_to_string(&out).unwrap();
    assert!(yaml.contains("extends: \"default\""), "{yaml}");
    let check = Command::new(bin()).arg("check").arg(&out).output().unwrap();
    assert_status(&check, 0);
    // Same start again.
    reset(f);
    setup(f);
    let p = out.to_str().unwrap().to_string();
    let o = f.run(&p, cmd);
    assert!(
        o.status.success(),
        "the learned profile doesn't run the command:\n{}\n{yaml}",
        show(&o)
    );
    (p, yaml)
}

fn reset(f: &Fixture) {
    for e in fs::read_dir(&f.ws).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
}

fn chown_tree(p: &Path) {
    let _ = chown(p, Some(AGENT_UID), Some(AGENT_GID));
    if p.is_dir() && !p.is_symlink() {
        for e in fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path());
        }
    }
}

fn as_agent_in(dir: &Path, cmd: &[&str]) -> Output {
    setpriv_as_agent()
        .arg("--")
        .args(cmd)
        .env("PATH", PATH)
        .env("HOME", dir)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Reading a file of a directory the run never touched: allowed by
/// `default`, denied by the learned profile.
fn assert_unread_denied(f: &Fixture, learned: &str, reader: &[&str]) {
    let target = "/etc/hostname";
    if !Path::new(target).exists() {
        return;
    }
    let mut cmd: Vec<&str> = reader.to_vec();
    cmd.push(target);
    let control = f.run("default", &cmd);
    assert!(control.status.success(), "default: {}", show(&control));
    let o = f.run(learned, &cmd);
    assert!(
        !o.status.success(),
        "the learned profile let it read {target}: {}",
        show(&o)
    );
}

#[test]
fn python_venv_unittest() {
    if !can_run("python_venv_unittest") || !have("python_venv_unittest", "/usr/bin/python3") {
        return;
    }
    let f = Fixture::new("learn-python");
    let setup = |f: &Fixture| {
        f.file(&f.ws.join("data.txt"), "d\n");
        f.file(&f.ws.join("tests/__init__.py"), "");
        f.file(
            &f.ws.join("tests/test_data.py"),
            "import json, unittest\n\
             class T(unittest.TestCase):\n    \
                 def test_it(self):\n        \
                     self.assertEqual(json.loads('[1]'), [1])\n        \
                     with open('data.txt') as d:\n            \
                         self.assertEqual(d.read(), 'd\\n')\n        \
                     with open('out.txt', 'w') as o:\n            \
                         o.write('ok')\n",
        );
        let o = as_agent_in(&f.ws, &["python3", "-m", "venv", "--without-pip", ".venv"]);
        assert_status(&o, 0);
    };
    let cmd = [
        ".venv/bin/python",
        "-m",
        "unittest",
        "discover",
        "-s",
        "tests",
    ];
    let (learned, yaml) = learn_and_rerun(&f, &setup, &cmd);
    assert_eq!(fs::read_to_string(f.ws.join("out.txt")).unwrap(), "ok");
    assert!(yaml.contains("/usr/lib/python3"), "{yaml}");
    assert!(
        yaml.contains("network:\n  # it neither connected nor bound a port\n  mode: none"),
        "{yaml}"
    );
    assert_narrower(&f, &learned);
    assert_unread_denied(
        &f,
        &learned,
        &[
            ".venv/bin/python",
            "-c",
            "import sys; open(sys.argv[1]).read()",
        ],
    );
}

#[test]
fn git_add_commit_diff() {
    if !can_run("git_add_commit_diff") || !have("git_add_commit_diff", "/usr/bin/git") {
        return;
    }
    let f = Fixture::new("learn-git");
    let setup = |f: &Fixture| {
        f.file(&f.ws.join("a.txt"), "one\n");
        let o = as_agent_in(&f.ws, &["git", "init", "-q", "."]);
        assert_status(&o, 0);
    };
    let script =
        "git add a.txt && git -c user.name=t -c user.email=t@example.invalid commit -qm one \
                  && echo two >> a.txt && git diff --stat | grep -q '1 file changed'";
    let cmd = ["/bin/sh", "-c", script];
    let (learned, yaml) = learn_and_rerun(&f, &setup, &cmd);
    assert_narrower(&f, &learned);
    assert_unread_denied(&f, &learned, &["/bin/cat"]);
    // git read .git/config and wrote beside it: the write grant keeps the
    // protected paths read-only.
    assert!(yaml.contains("\"{workspace}/.git/config?\""), "{yaml}");
    assert!(yaml.contains("\"{workspace}/.git/hooks?\""), "{yaml}");
    let o = f.sh(
        &learned,
        "echo x > .git/objects/probe && echo learn-token >> .git/config",
    );
    assert!(!o.status.success(), "{}", show(&o));
    assert!(f.ws.join(".git/objects/probe").exists(), "{}", show(&o));
    assert!(!fs::read_to_string(f.ws.join(".git/config"))
        .unwrap()
        .contains("learn-token"));
    let o = f.sh(
        &learned,
        "mkdir -p .git/hooks && echo x > .git/hooks/pre-commit",
    );
    assert!(!o.status.success(), "{}", show(&o));
    assert!(!f.ws.join(".git/hooks/pre-commit").exists());
}

#[test]
fn make_cc_and_a_secret_it_read() {
    if !can_run("make_cc") || !have("make_cc", "/usr/bin/make") || !have("make_cc", "/usr/bin/cc") {
        return;
    }
    let f = Fixture::new("learn-make");
    let setup = |f: &Fixture| {
        f.file(
            &f.ws.join("src/Makefile"),
            "hello: hello.c\n\tcc -O1 -o hello hello.c\n",
        );
        f.file(
            &f.ws.join("src/hello.c"),
            "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n",
        );
        f.file(&f.ws.join(".env"), "TOKEN=learn-secret\n");
    };
    // It reads the .env (and goes on without it).
    let script = "cat .env > /dev/null 2>&1; make -C src && ./src/hello";
    let cmd = ["/bin/sh", "-c", script];
    let (learned, yaml) = learn_and_rerun(&f, &setup, &cmd);
    assert_narrower(&f, &learned);
    assert_unread_denied(&f, &learned, &["/bin/cat"]);
    // Seen, listed, never granted: not readable under the learned profile.
    let env = f.ws.join(".env");
    assert!(
        yaml.contains(&format!("#   {}: an environment file", env.display())),
        "{yaml}"
    );
    let control = f.sh("default", "cat .env");
    assert!(
        stdout(&control).contains("learn-secret"),
        "{}",
        show(&control)
    );
    let o = f.sh(&learned, "cat .env");
    assert!(!stdout(&o).contains("learn-secret"), "{}", show(&o));
    assert!(!o.status.success());
    // Nor granted through a directory: no grant covers the workspace root.
    assert!(
        !grants(&f, &learned)
            .iter()
            .any(|(p, ..)| env.starts_with(p)),
        "{yaml}"
    );
}

#[test]
fn diff_prints_only_what_a_profile_lacks() {
    if !can_run("diff_prints_only_what_a_profile_lacks") {
        return;
    }
    let f = Fixture::new("learn-diff");
    f.file(&f.ws.join("a.txt"), "a\n");
    // Against default: it lacks nothing the run used.
    let o = learn(&f, &["--diff", "default"], &["/bin/cat", "a.txt"]);
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o).trim(),
        "a\n# default lacks nothing the run used".trim(),
        "{}",
        show(&o)
    );
    // Against a profile that reads only /usr: what it read in /etc.
    let narrow = f.profile(
        "narrow",
        "version: 1\nname: narrow\nextends: default\nfilesystem:\n  read: [/usr]\n",
    );
    let o = learn(
        &f,
        &["--diff", narrow.to_str().unwrap()],
        &["/bin/cat", "/etc/hostname"],
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(out.contains("read:\n    add:"), "{out}");
    assert!(out.contains("\"/etc/hostname\""), "{out}");
    // What minimal has (the system's binaries and libraries) isn't repeated.
    assert!(
        !out.contains("/lib/x86_64-linux-gnu\"") && !out.contains("\"/bin\""),
        "{out}"
    );
    assert!(lines.len() < 12, "{out}");
}

#[test]
fn a_call_beyond_the_baseline_is_learned() {
    if !can_run("a_call_beyond_the_baseline_is_learned") {
        return;
    }
    let f = Fixture::new("learn-syscall");
    // sysfs(3): the number of filesystem types; on no allowlist.
    let Some(prog) = compile(
        &f,
        "sysfs",
        "#include <unistd.h>\n#include <sys/syscall.h>\n\
         int main(void){ return syscall(SYS_sysfs, 3) > 0 ? 0 : 3; }\n",
    ) else {
        return;
    };
    let prog = prog.to_str().unwrap().to_string();
    let control = f.run("default", &[&prog]);
    assert_status(&control, 3);
    let out = f.root.join("profiles").join("sysfs.yaml");
    let o = learn(&f, &["-o", out.to_str().unwrap()], &[&prog]);
    assert_status(&o, 0);
    let yaml = fs::read_to_string(&out).unwrap();
    assert!(yaml.contains("allow: [sysfs]"), "{yaml}");
    let o = f.run(out.to_str().unwrap(), &[&prog]);
    assert_status(&o, 0);
}

#[test]
fn output_is_never_clobbered_nor_in_the_workspace() {
    if !can_run("output_is_never_clobbered_nor_in_the_workspace") {
        return;
    }
    let f = Fixture::new("learn-output");
    let existing = f.root.join("profiles").join("existing.yaml");
    fs::write(&existing, "keep\n").unwrap();
    let marker = f.ws.join("ran");
    let touch = ["/bin/sh", "-c", "echo > ran"];
    let o = learn(&f, &["-o", existing.to_str().unwrap()], &touch);
    assert_status(&o, 125);
    assert!(stderr(&o).contains("the file exists"), "{}", show(&o));
    assert_eq!(fs::read_to_string(&existing).unwrap(), "keep\n");
    assert!(!marker.exists(), "the command ran before the refusal");
    let inside = f.ws.join("learned.yaml");
    let o = learn(&f, &["-o", inside.to_str().unwrap()], &touch);
    assert_status(&o, 125);
    assert!(stderr(&o).contains("inside the workspace"), "{}", show(&o));
    assert!(!inside.exists() && !marker.exists());
    // Not a file: refused, --force or not.
    let o = learn(
        &f,
        &["-o", f.root.join("profiles").to_str().unwrap(), "--force"],
        &touch,
    );
    assert_status(&o, 125);
    assert!(stderr(&o).contains("not a regular file"), "{}", show(&o));
    assert!(!marker.exists());
    // --force: replaced, atomically, by a checked profile.
    let o = learn(&f, &["-o", existing.to_str().unwrap(), "--force"], &touch);
    assert_status(&o, 0);
    assert!(fs::read_to_string(&existing)
        .unwrap()
        .contains("extends: \"default\""));
    let leftovers: Vec<_> = fs::read_dir(f.root.join("profiles"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".learn-"))
        .collect();
    assert!(leftovers.is_empty());
    chown_tree(&f.ws);
}

#[test]
fn node_npm_install_from_a_local_tarball() {
    if !can_run("node_npm_install")
        || !have("node_npm_install", "/usr/bin/node")
        || !have("node_npm_install", "/usr/bin/npm")
    {
        return;
    }
    let f = Fixture::new("learn-node");
    // The package, packed on the host outside the workspace.
    let dep = f.root.join("dep");
    fs::create_dir_all(&dep).unwrap();
    fs::write(
        dep.join("package.json"),
        "{\"name\":\"dep\",\"version\":\"1.0.0\",\"main\":\"index.js\"}\n",
    )
    .unwrap();
    fs::write(dep.join("index.js"), "module.exports = 42;\n").unwrap();
    let o = Command::new("/usr/bin/npm")
        .args(["pack", "--silent"])
        .env("PATH", PATH)
        .env("HOME", &f.root)
        .current_dir(&dep)
        .output()
        .unwrap();
    assert_status(&o, 0);
    let tgz = fs::read(dep.join("dep-1.0.0.tgz")).unwrap();
    let setup = |f: &Fixture| {
        f.file(
            &f.ws.join("package.json"),
            "{\"name\":\"app\",\"version\":\"1.0.0\"}\n",
        );
        let t = f.ws.join("dep-1.0.0.tgz");
        fs::write(&t, &tgz).unwrap();
        chown(&t, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
        f.file(
            &f.ws.join("main.js"),
            "process.exit(require('dep') === 42 ? 0 : 1);\n",
        );
    };
    let script = "npm install --offline --no-audit --no-fund --loglevel=error ./dep-1.0.0.tgz \
                  && node main.js";
    let cmd = ["/bin/sh", "-c", script];
    let (learned, _yaml) = learn_and_rerun(&f, &setup, &cmd);
    assert!(f.ws.join("node_modules/dep/index.js").exists());
    assert_narrower(&f, &learned);
    assert_unread_denied(&f, &learned, &["/bin/cat"]);
}

/// Proxy mode: the hosts come from the egress proxy's connection events.
/// Learned under a base that allows two hosts, from a run that reached
/// one: the learned profile reaches that one (control) and not the other
/// (violation). All addresses live in the test's own namespaces.
#[test]
fn proxy_mode_learns_the_hosts_it_reached() {
    use common::net::Net;
    let test = "proxy_mode_learns_the_hosts_it_reached";
    if !can_run(test) || !have(test, "/usr/bin/curl") {
        return;
    }
    let net = Net::new();
    let dns = net.dns("198.51.100.53");
    dns.set("example.com", &["93.184.215.14"]);
    dns.set("other.example", &["93.184.215.15"]);
    let _a = net.https("93.184.215.14", &["example.com"], "hello a\n");
    let _b = net.https("93.184.215.15", &["other.example"], "hello b\n");
    let f = Fixture::new("learn-proxy");
    std::fs::copy(net.ca(), f.ws.join("ca.pem")).unwrap();
    let base = f.profile(
        "base",
        "version: 1\nextends: default\nnetwork:\n  mode: proxy\n  allow: [example.com, other.example]\n",
    );
    let curl = "curl -sS --fail --max-time 10 --cacert ca.pem";
    let out = f.root.join("profiles").join("learned.yaml");
    let mut c = Command::new(bin());
    c.args(["learn", "-p", base.to_str().unwrap(), "-w"])
        .arg(&f.ws)
        .arg("-o")
        .arg(&out)
        .args([
            "--",
            "/bin/sh",
            "-c",
            &format!("{curl} https://example.com/"),
        ])
        .env("PATH", PATH)
        .current_dir(&f.ws);
    let o = net.in_client(&c).stdin(Stdio::null()).output().unwrap();
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "hello a\n");
    let yaml = fs::read_to_string(&out).unwrap();
    assert!(yaml.contains("mode: proxy"), "{yaml}");
    assert!(yaml.contains("allow: [\"example.com\"]"), "{yaml}");
    let learned = out.to_str().unwrap();
    let run = |script: &str| {
        let cmd = f.command(learned, &["/bin/sh", "-c", script]);
        net.in_client(&cmd).stdin(Stdio::null()).output().unwrap()
    };
    let o = run(&format!("{curl} https://example.com/"));
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "hello a\n");
    let o = run(&format!("{curl} https://other.example/"));
    assert!(!o.status.success(), "{}", show(&o));
    assert!(!stdout(&o).contains("hello b"));
    // The base reaches it: the learned profile is what refused it.
    let cmd = f.command(
        base.to_str().unwrap(),
        &["/bin/sh", "-c", &format!("{curl} https://other.example/")],
    );
    let o = net.in_client(&cmd).stdin(Stdio::null()).output().unwrap();
    assert_eq!(stdout(&o), "hello b\n", "{}", show(&o));
}

/// Without root (a user namespace): the command's own first execve comes
/// from a process whose memory the supervisor may not read; the learned
/// profile still has it, and runs it. The profile is written where the
/// agent's uid may write (as the caller), outside the workspace.
#[test]
fn learns_without_root() {
    if !can_run("learns_without_root") {
        return;
    }
    if !std::fs::read_to_string("/proc/sys/user/max_user_namespaces").is_ok_and(|s| s.trim() != "0")
    {
        skip_or_fail(
            "learns_without_root",
            "user namespaces are not allowed here",
        );
        return;
    }
    let f = Fixture::new("learn-unpriv");
    f.file(&f.ws.join("data.txt"), "unpriv\n");
    let out_dir = f.root.join("out");
    fs::create_dir(&out_dir).unwrap();
    chown(&out_dir, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let out = out_dir.join("learned.yaml");
    let as_caller = |args: &[&str]| {
        setpriv_as_agent()
            .args(["--inh-caps=-all", "--bounding-set=-all"])
            .arg(bin())
            .args(args)
            .env("PATH", PATH)
            .env("HOME", &out_dir)
            .env("XDG_STATE_HOME", out_dir.join("state"))
            .current_dir(&f.ws)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ws = f.ws.to_str().unwrap();
    let o = as_caller(&[
        "learn",
        "-w",
        ws,
        "-o",
        out.to_str().unwrap(),
        "--",
        "/bin/cat",
        "data.txt",
    ]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "unpriv\n");
    let yaml = fs::read_to_string(&out).unwrap();
    assert!(
        yaml.contains("\"/usr/bin/cat\"")
            || yaml.contains("\"/bin/cat\"")
            || yaml.contains("\"/bin\""),
        "{yaml}"
    );
    let p = out.to_str().unwrap();
    let o = as_caller(&["run", "-p", p, "-w", ws, "--", "/bin/cat", "data.txt"]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "unpriv\n");
    let o = as_caller(&["run", "-p", p, "-w", ws, "--", "/bin/cat", "/etc/hostname"]);
    assert!(!o.status.success(), "{}", show(&o));
}

/// What learned profiles rely on in the plan: a grant written through a
/// chain of symlinks has every link of the chain in the view (not only
/// the first), and the agent starts in the workspace when only a
/// directory beneath it is granted (the view has the way there).
#[test]
fn a_symlink_chain_is_in_the_view_and_the_start_is_on_the_way() {
    if !can_run("a_symlink_chain_is_in_the_view_and_the_start_is_on_the_way") {
        return;
    }
    let f = Fixture::new("learn-chain");
    let real = f.root.join("real");
    let links = f.root.join("links");
    fs::create_dir_all(&real).unwrap();
    fs::create_dir_all(&links).unwrap();
    fs::write(real.join("data"), "chained\n").unwrap();
    fs::write(real.join("other"), "other\n").unwrap();
    // links/one -> two -> ../real/data
    std::os::unix::fs::symlink("two", links.join("one")).unwrap();
    std::os::unix::fs::symlink("../real/data", links.join("two")).unwrap();
    f.file(&f.ws.join("src/x.txt"), "x\n");
    let p = f.profile(
        "chain",
        &format!(
            "version: 1\nextends: default\nfilesystem:\n  read: [\"{}\", /usr, /etc]\n  write: [\"{{workspace}}/src\"]\n  exec: [/usr, /bin, /lib, /lib64?]\n",
            links.join("one").display()
        ),
    );
    let p = p.to_str().unwrap();
    let o = f.sh(p, &format!("cat {}", links.join("one").display()));
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "chained\n");
    let o = f.sh(p, &format!("cat {}", real.join("other").display()));
    assert!(!o.status.success(), "{}", show(&o));
    let o = f.sh(p, "pwd && cat src/x.txt");
    assert_status(&o, 0);
    assert_eq!(stdout(&o), format!("{}\nx\n", f.ws.display()));
    // The workspace itself is only the way there: what else it holds on
    // the host isn't in the view.
    f.file(&f.ws.join("secret.txt"), "s\n");
    let o = f.sh(p, "ls -A .; cat secret.txt");
    // (Listing the way itself is refused, or, with a workspace beneath
    // the host's /tmp, shows only what is granted beneath it.)
    assert!(!stdout(&o).contains("secret"), "{}", show(&o));
    assert!(
        stderr(&o).contains("secret.txt: No such file"),
        "{}",
        show(&o)
    );
    // Control: the same profile with the workspace granted shows it.
    let o = f.sh("default", "cat secret.txt");
    assert_eq!(stdout(&o), "s\n", "{}", show(&o));
}

/// The caller's credentials: never granted, even where the base lets the
/// run read them (and it did). (The audit log can't be within a base's
/// grants: the plan refuses that.)
#[test]
fn credentials_are_never_learned() {
    if !can_run("credentials_are_never_learned") {
        return;
    }
    let f = Fixture::new("learn-creds");
    // The caller's home, with a key, readable under the base.
    let home = f.outside.clone();
    let key = f.file(&home.join(".ssh/id_learn"), "KEY-learn\n");
    f.file(&home.join("notes.txt"), "notes\n");
    let base = f.profile(
        "base",
        &format!(
            "version: 1\nextends: default\nfilesystem:\n  read: {{add: [\"{}\"]}}\n",
            home.display()
        ),
    );
    let out = f.root.join("profiles").join("learned.yaml");
    let script = format!(
        "cat {} {}/notes.txt > /dev/null",
        key.display(),
        home.display()
    );
    let o = Command::new(bin())
        .args(["learn", "-p", "../profiles/base.yaml", "-w"])
        .arg(&f.ws)
        .arg("-o")
        .arg(&out)
        .args(["--", "/bin/sh", "-c", &script])
        .env("PATH", PATH)
        .env("HOME", &home)
        .current_dir(&f.ws)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_status(&o, 0);
    let yaml = fs::read_to_string(&out).unwrap();
    assert!(
        yaml.contains(&format!("#   {}: the caller's credentials", key.display())),
        "{yaml}"
    );
    let abs = fs::canonicalize(&base).unwrap();
    assert!(
        yaml.contains(&format!("extends: \"{}\"", abs.display())),
        "{yaml}"
    );
    assert!(
        yaml.contains(&format!("\"{}/notes.txt\"", home.display())),
        "{yaml}"
    );
    let g = grants(&f, out.to_str().unwrap());
    assert!(!g.iter().any(|(gp, ..)| key.starts_with(gp)), "{yaml}");
    // Control: the base reads it.
    let o = f.run(base.to_str().unwrap(), &["/bin/cat", key.to_str().unwrap()]);
    assert_eq!(stdout(&o), "KEY-learn\n", "{}", show(&o));
    let o = f.run(out.to_str().unwrap(), &["/bin/cat", key.to_str().unwrap()]);
    assert!(!stdout(&o).contains("KEY-learn"), "{}", show(&o));
}
