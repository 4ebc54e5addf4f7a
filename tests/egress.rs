//! `network.mode: proxy` end to end (DESIGN.md §9): confine runs in the
//! client namespace of a test network (tests/common/net.rs), the agent
//! reaches the upstream namespace's servers only through confine's egress
//! proxy, and every refusal sits next to a control the same profile allows.
//! All addresses exist only in the test's own namespaces.
mod common;
use common::net::Net;
use common::*;

use std::process::Output;

/// An address the proxy counts as public (it is, outside these tests).
const PUBLIC: &str = "93.184.215.14";
/// A second public one, for a host the profile doesn't allow.
const OTHER: &str = "93.184.215.15";
/// The test network's resolver, named in the client's resolv.conf.
const DNS: &str = "198.51.100.53";
/// The cloud metadata address.
const METADATA: &str = "169.254.169.254";

/// `confine run -p PROFILE -w WS -- sh -c SCRIPT` in the client namespace,
/// with the test CA in the workspace as `ca.pem`.
fn run(net: &Net, f: &Fixture, profile: &str, script: &str) -> Output {
    std::fs::copy(net.ca(), f.ws.join("ca.pem")).unwrap();
    let cmd = f.command(profile, &["/bin/sh", "-c", script]);
    net.in_client(&cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// [`run`], with the audit log at `log`.
fn run_logged(
    net: &Net,
    f: &Fixture,
    profile: &str,
    log: &std::path::Path,
    script: &str,
) -> Output {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["run", "-p", profile, "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(log)
        .args(["--", "/bin/sh", "-c", script])
        .env("PATH", PATH)
        .current_dir(&f.ws);
    net.in_client(&cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ready(test: &str) -> bool {
    can_run(test) && have(test, "/usr/bin/curl")
}

/// A profile: the default one, in proxy mode, with `network` keys added.
fn profile(f: &Fixture, name: &str, network: &str) -> String {
    let yaml = format!("version: 1\nextends: default\nnetwork:\n  mode: proxy\n{network}");
    f.profile(name, &yaml).display().to_string()
}

/// `--fail`: the proxy refuses plain HTTP with a 403 that curl would
/// otherwise print and exit 0 on.
const CURL: &str = "curl -sS --fail --max-time 10 --cacert ca.pem";

#[test]
fn an_allowed_host_is_reached_by_name_with_and_without_proxy_variables() {
    let test = "an_allowed_host_is_reached_by_name_with_and_without_proxy_variables";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    dns.set("other.example", &[OTHER]);
    let tls = net.https(PUBLIC, &["example.com"], "tls hello\n");
    let web = net.http(PUBLIC, "plain hello\n");
    let _other = net.https(OTHER, &["other.example"], "other\n");
    let f = Fixture::new("egress-allowed");
    let p = profile(
        &f,
        "allowed",
        "  allow: [example.com, \"example.com:80\"]\n",
    );
    let o = run(
        &net,
        &f,
        &p,
        &format!(
            "{CURL} https://example.com/a && {CURL} http://example.com/b && \
             {CURL} --noproxy '*' https://example.com/c && {CURL} --noproxy '*' http://example.com/d"
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        stdout(&o),
        "tls hello\nplain hello\ntls hello\nplain hello\n"
    );
    let targets: Vec<String> = tls
        .requests()
        .into_iter()
        .chain(web.requests())
        .map(|r| r.target)
        .collect();
    for t in ["/a", "/b", "/c", "/d"] {
        assert!(targets.iter().any(|x| x.ends_with(t)), "{targets:?}");
    }

    // Not in `allow`: refused through the proxy (403) and unknown to the
    // stub, which never asked the network's resolver about it.
    let o = run(&net, &f, &p, &format!("{CURL} https://other.example/"));
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    let o = run(
        &net,
        &f,
        &p,
        &format!("{CURL} --noproxy '*' https://other.example/; echo curl=$?"),
    );
    assert!(stdout(&o).contains("curl=6"), "{}", show(&o));
    assert_eq!(dns.queried("other.example"), 0, "{:?}", dns.queries());
}

#[test]
fn raw_addresses_and_private_answers_are_refused_unless_pinned() {
    let test = "raw_addresses_and_private_answers_are_refused_unless_pinned";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    dns.set("meta.example", &[METADATA]);
    let _web = net.http(PUBLIC, "public\n");
    let meta = net.http(METADATA, "metadata secret\n");
    let f = Fixture::new("egress-private");
    let p = profile(
        &f,
        "private",
        "  allow: [\"example.com:80\", \"meta.example:80\"]\n",
    );
    // A raw address: no route without the proxy, refused through it.
    let o = run(
        &net,
        &f,
        &p,
        &format!(
            "{CURL} --noproxy '*' http://{PUBLIC}/; echo direct=$?; \
             {CURL} http://{PUBLIC}/; echo proxied=$?; {CURL} http://example.com/"
        ),
    );
    let out = stdout(&o);
    assert!(out.contains("direct=7"), "{}", show(&o));
    assert!(!out.contains("proxied=0"), "{}", show(&o));
    assert!(out.ends_with("public\n"), "{}", show(&o));
    // An allowed name that resolves to the metadata address: refused.
    let o = run(&net, &f, &p, &format!("{CURL} http://meta.example/"));
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(!stdout(&o).contains("secret"), "{}", show(&o));
    assert!(meta.requests().is_empty());
    // Pinned in `hosts`: that address, on purpose, is reachable.
    let p = profile(
        &f,
        "pinned",
        &format!("  allow: [\"meta.example:80\"]\n  hosts: {{meta.example: {METADATA}}}\n"),
    );
    let o = run(&net, &f, &p, &format!("{CURL} http://meta.example/"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o), "metadata secret\n");
}

#[test]
fn a_name_that_rebinds_to_a_private_address_is_refused_the_second_time() {
    let test = "a_name_that_rebinds_to_a_private_address_is_refused_the_second_time";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.sequence("rebind.example", &[&[PUBLIC], &["10.20.30.40"]]);
    let _public = net.http(PUBLIC, "public\n");
    let private = net.http("10.20.30.40", "private\n");
    let f = Fixture::new("egress-rebind");
    let p = profile(&f, "rebind", "  allow: [\"rebind.example:80\"]\n");
    let o = run(
        &net,
        &f,
        &p,
        &format!(
            "{CURL} http://rebind.example/; echo; {CURL} http://rebind.example/; echo second=$?"
        ),
    );
    let out = stdout(&o);
    assert!(out.starts_with("public\n"), "{}", show(&o));
    assert!(!out.contains("second=0"), "{}", show(&o));
    assert!(
        private.requests().is_empty(),
        "the private address was reached"
    );
}

#[test]
fn the_tls_server_name_and_the_host_header_must_be_the_admitted_host() {
    let test = "the_tls_server_name_and_the_host_header_must_be_the_admitted_host";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    let tls = net.https(PUBLIC, &["example.com", "fronted.example"], "tls\n");
    let web = net.http(PUBLIC, "plain\n");
    let f = Fixture::new("egress-fronting");
    let p = profile(
        &f,
        "fronting",
        "  allow: [example.com, \"example.com:80\"]\n",
    );
    // Through the proxy to example.com, but naming another host inside.
    let o = run(
        &net,
        &f,
        &p,
        &format!(
            "{CURL} --connect-to fronted.example:443:example.com:443 https://fronted.example/; echo sni=$?; \
             {CURL} -H 'Host: fronted.example' http://example.com/; echo host=$?; \
             {CURL} https://example.com/"
        ),
    );
    let out = stdout(&o);
    assert!(!out.contains("sni=0"), "{}", show(&o));
    assert!(!out.contains("host=0"), "{}", show(&o));
    assert!(out.ends_with("tls\n"), "{}", show(&o));
    assert!(
        tls.requests()
            .iter()
            .all(|r| r.sni.as_deref() == Some("example.com")),
        "{:?}",
        tls.requests()
    );
    assert!(web.requests().is_empty(), "{:?}", web.requests());
}

#[test]
fn udp_ipv6_and_unlisted_names_have_no_way_out() {
    let test = "udp_ipv6_and_unlisted_names_have_no_way_out";
    if !ready(test) || !have(test, "/usr/bin/python3") {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    dns.set("unlisted.example", &[PUBLIC]);
    let f = Fixture::new("egress-udp");
    let p = profile(&f, "udp", "  allow: [example.com]\n");
    let script = format!(
        r#"python3 - <<'PY'
import socket
def attempt(label, fn):
    try:
        fn(); print(label, "ok")
    except OSError as e:
        print(label, "refused", e.errno)
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("{DNS}", 53)))
attempt("ipv6", lambda: socket.create_connection(("2606:2800:220:1::1", 443), timeout=3))
attempt("stub-example", lambda: socket.getaddrinfo("example.com", 443, socket.AF_INET))
attempt("stub-unlisted", lambda: socket.getaddrinfo("unlisted.example", 443))
PY"#
    );
    let o = run(&net, &f, &p, &script);
    let out = stdout(&o);
    assert!(out.contains("udp refused"), "{}", show(&o));
    assert!(out.contains("ipv6 refused"), "{}", show(&o));
    assert!(out.contains("stub-example ok"), "{}", show(&o));
    assert!(!out.contains("stub-unlisted ok"), "{}", show(&o));
    assert_eq!(dns.queried("unlisted.example"), 0, "{:?}", dns.queries());
}

#[test]
fn a_connection_budget_refuses_the_next_and_a_byte_budget_can_stop_the_sandbox() {
    let test = "a_connection_budget_refuses_the_next_and_a_byte_budget_can_stop_the_sandbox";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    let web = net.http(PUBLIC, "ok\n");
    let sink = net.sink(PUBLIC, 9000, 0);
    let f = Fixture::new("egress-budget");
    let p = profile(
        &f,
        "count",
        "  allow: [\"example.com:80\"]\n  budget: {connections: 2}\n",
    );
    let o = run(
        &net,
        &f,
        &p,
        &format!("for i in 1 2 3; do {CURL} http://example.com/; echo \"n$i=$?\"; done"),
    );
    let out = stdout(&o);
    assert!(out.contains("n1=0") && out.contains("n2=0"), "{}", show(&o));
    assert!(!out.contains("n3=0"), "{}", show(&o));
    assert_eq!(web.requests().len(), 2);

    // 100 MB up against a 1 MB budget that stops the sandbox: exit 124.
    let log = f.root.join("audit.jsonl");
    let p = profile(
        &f,
        "bytes",
        "  allow: [\"example.com:9000\"]\n  budget: {bytes_out: 1M, on_exhausted: stop}\n",
    );
    let o = run_logged(
        &net,
        &f,
        &p,
        &log,
        "head -c 100000000 /dev/zero | curl -sS --max-time 20 -T - http://example.com:9000/; sleep 30",
    );
    assert_eq!(o.status.code(), Some(124), "{}", show(&o));
    assert!(sink.received() < 100_000_000, "{}", sink.received());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(r#""reason":"budget""#), "{text}");
}

#[test]
fn every_connection_admitted_or_not_is_a_connection_record() {
    let test = "every_connection_admitted_or_not_is_a_connection_record";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    dns.set("other.example", &[OTHER]);
    let _web = net.http(PUBLIC, "ok\n");
    let f = Fixture::new("egress-records");
    let p = profile(&f, "records", "  allow: [\"example.com:80\"]\n");
    let log = f.root.join("audit.jsonl");
    let o = run_logged(
        &net,
        &f,
        &p,
        &log,
        &format!("{CURL} http://example.com/; {CURL} http://other.example/; true"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let conns: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "connection")
        .collect();
    let sandbox = &records[0]["sandbox"];
    let allowed = conns
        .iter()
        .find(|r| r["host"] == "example.com")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(allowed["verdict"], "allowed", "{allowed}");
    assert_eq!(allowed["port"], 80);
    assert_eq!(allowed["address"], PUBLIC);
    assert_eq!(allowed["rule"], "example.com:80");
    assert!(allowed["bytes_out"].as_u64().unwrap() > 0, "{allowed}");
    assert!(allowed["bytes_in"].as_u64().unwrap() > 0, "{allowed}");
    assert_eq!(&allowed["sandbox"], sandbox);
    let refused = conns
        .iter()
        .find(|r| r["host"] == "other.example")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(refused["verdict"], "refused", "{refused}");
    assert!(refused["reason"].as_str().is_some_and(|r| !r.is_empty()));
}

/// The proxy's process: the supervisor's child that isn't the sandbox's
/// init (which is PID 1 of a namespace of its own).
fn proxy_of(supervisor: i32) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
        .find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/status")).is_ok_and(|s| {
                s.lines()
                    .find(|l| l.starts_with("NSpid:"))
                    .is_some_and(|l| l.split_whitespace().count() == 2)
            })
        })
}

fn status_field(pid: i32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

#[test]
fn the_proxy_holds_no_privilege_and_dies_with_the_supervisor() {
    let test = "the_proxy_holds_no_privilege_and_dies_with_the_supervisor";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let f = Fixture::new("egress-proxy-proc");
    let p = profile(&f, "proc", "  allow: [example.com]\n");
    let token = token(41);
    let mut child = net
        .in_client(&f.command(&p, &["/bin/sleep", &token]))
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // `ip netns exec` execs confine: the child is the supervisor.
    let supervisor = child.id() as i32;
    let proxy = poll_for(std::time::Duration::from_secs(10), || {
        proxy_of(supervisor).filter(|_| !processes_with_arg(&token).is_empty())
    })
    .expect("the proxy process");
    // Once it serves: the forked child drops its privileges, executes
    // confine-egress, confines itself and only then takes the listeners
    // (stderr is the caller's until then, /dev/null after).
    let serving = || {
        std::fs::read_link(format!("/proc/{proxy}/fd/2")).ok()
            == Some(std::path::PathBuf::from("/dev/null"))
    };
    assert!(
        poll(std::time::Duration::from_secs(10), serving),
        "the proxy never served"
    );
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(status_field(proxy, cap), "0000000000000000", "{cap}");
    }
    assert_eq!(status_field(proxy, "NoNewPrivs:"), "1");
    assert_eq!(status_field(proxy, "Seccomp:"), "2");
    let uid = status_field(proxy, "Uid:");
    assert!(
        uid.split_whitespace().all(|u| u == AGENT_UID.to_string()),
        "the proxy runs as {uid}"
    );
    // Control for the check above: the supervisor itself is root.
    assert!(status_field(supervisor, "Uid:").starts_with('0'));
    // Its own program, beside confine's, with nothing of the supervisor's
    // environment, and not dumpable: /proc/PID of a process that isn't is
    // owned by root whatever its uid (the agent's uid can't read its
    // memory).
    let exe = std::fs::read_link(format!("/proc/{proxy}/exe")).unwrap();
    assert_eq!(
        exe,
        std::path::Path::new(bin()).with_file_name("confine-egress")
    );
    assert_eq!(
        std::fs::read(format!("/proc/{proxy}/environ")).unwrap(),
        b""
    );
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(format!("/proc/{proxy}/mem"))
        .unwrap()
        .uid();
    assert_eq!(owner, 0, "the proxy is dumpable");
    for fd in 0..3 {
        let to = std::fs::read_link(format!("/proc/{proxy}/fd/{fd}")).unwrap();
        assert_eq!(to, std::path::Path::new("/dev/null"), "fd {fd}");
    }
    // SIGKILL of the supervisor takes the proxy with it.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        poll(
            std::time::Duration::from_secs(10),
            || !std::path::Path::new(&format!("/proc/{proxy}")).exists()
                || state_of(proxy) == Some('Z')
        ),
        "the proxy outlived its supervisor"
    );
}

#[test]
fn the_proxys_program_must_be_confines_own() {
    let test = "the_proxys_program_must_be_confines_own";
    if !can_run(test) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new("egress-program");
    let p = profile(&f, "program", "  allow: [example.com]\n");
    // A copy of confine in a directory of its own, with the proxy's
    // program beside it in the states under test.
    let dir = f.root.join("bin");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let confine = dir.join("confine");
    std::fs::copy(bin(), &confine).unwrap();
    let program = dir.join("confine-egress");
    let marker = f.ws.join("ran");
    let run = || {
        let _ = std::fs::remove_file(&marker);
        // ETXTBSY while another test's fork still holds the copy's
        // descriptor open for writing, until its exec: try again.
        let out = (0..50)
            .find_map(|_| {
                match std::process::Command::new(&confine)
                    .args(["run", "-p", &p, "-w"])
                    .arg(&f.ws)
                    .args(["--", "/bin/sh", "-c", "echo > ran"])
                    .env("PATH", PATH)
                    .stdin(std::process::Stdio::null())
                    .output()
                {
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        None
                    }
                    r => Some(r.unwrap()),
                }
            })
            .expect("confine's copy stayed busy");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            marker.exists(),
        )
    };
    // Missing.
    let (code, err, ran) = run();
    assert_eq!(code, Some(125), "{err}");
    assert!(!ran);
    assert!(
        err.contains("confine-egress") && err.contains("No such file"),
        "{err}"
    );
    // Writable by others: anyone could have replaced it.
    std::fs::copy(
        std::path::Path::new(bin()).with_file_name("confine-egress"),
        &program,
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o757)).unwrap();
    let (code, err, ran) = run();
    assert_eq!(code, Some(125), "{err}");
    assert!(!ran);
    assert!(err.contains("writable by group or others"), "{err}");
    // A symlink to the real one: not opened through.
    std::fs::remove_file(&program).unwrap();
    std::os::unix::fs::symlink(
        std::path::Path::new(bin()).with_file_name("confine-egress"),
        &program,
    )
    .unwrap();
    let (code, err, ran) = run();
    assert_eq!(code, Some(125), "{err}");
    assert!(!ran);
    // Control: the real program, root's and 0755, runs the command.
    std::fs::remove_file(&program).unwrap();
    std::fs::copy(
        std::path::Path::new(bin()).with_file_name("confine-egress"),
        &program,
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, err, ran) = run();
    assert_eq!(code, Some(0), "{err}");
    assert!(ran);
}

fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

#[test]
fn twenty_sandboxes_with_their_own_policies_dont_share_traffic_or_budgets() {
    let test = "twenty_sandboxes_with_their_own_policies_dont_share_traffic_or_budgets";
    if !ready(test) {
        return;
    }
    const N: usize = 20;
    let net = Net::new();
    let dns = net.dns(DNS);
    for i in 0..N {
        dns.set(&format!("h{i}.example"), &[PUBLIC]);
    }
    let web = net.http(PUBLIC, "ok\n");
    let f = Fixture::new("egress-twenty");
    std::fs::copy(net.ca(), f.ws.join("ca.pem")).unwrap();
    let children: Vec<_> = (0..N)
        .map(|i| {
            // Each may reach its own host once; the next sandbox's host never.
            let p = profile(
                &f,
                &format!("p{i}"),
                &format!("  allow: [\"h{i}.example:80\"]\n  budget: {{connections: 1}}\n"),
            );
            let next = (i + 1) % N;
            let script = format!(
                "{CURL} http://h{i}.example/; echo own=$?; {CURL} http://h{next}.example/; echo next=$?; \
                 {CURL} http://h{i}.example/; echo again=$?"
            );
            net.in_client(&f.command(&p, &["/bin/sh", "-c", &script]))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        let out = stdout(&o);
        assert!(out.contains("ok\nown=0"), "sandbox {i}: {}", show(&o));
        assert!(!out.contains("next=0"), "sandbox {i}: {}", show(&o));
        // Its budget of one connection is its own: spent by its first.
        assert!(!out.contains("again=0"), "sandbox {i}: {}", show(&o));
    }
    let hosts: Vec<String> = web.requests().into_iter().filter_map(|r| r.host).collect();
    assert_eq!(hosts.len(), N, "{hosts:?}");
    for i in 0..N {
        assert!(hosts.contains(&format!("h{i}.example")), "{hosts:?}");
    }
}

/// A third public address, for a static file server.
const FILES: &str = "93.184.215.16";

#[test]
fn git_and_python_reach_an_allowed_host_through_the_proxy() {
    let test = "git_and_python_reach_an_allowed_host_through_the_proxy";
    if !ready(test) || !have(test, "/usr/bin/git") || !have(test, "/usr/bin/python3") {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("git.example", &[FILES]);
    dns.set("other.example", &[OTHER]);
    let _other = net.http(OTHER, "other\n");
    let f = Fixture::new("egress-git");
    // A bare repository served as static files (git's dumb HTTP), and a
    // file for python, from the upstream namespace.
    let site = f.root.join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "hello from the index\n").unwrap();
    let src = f.root.join("src");
    let git = |dir: &std::path::Path, args: &[&str]| {
        let o = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", show(&o));
    };
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q"]);
    std::fs::write(src.join("README"), "cloned through the proxy\n").unwrap();
    git(&src, &["add", "README"]);
    git(&src, &["commit", "-qm", "first"]);
    git(&f.root, &["clone", "-q", "--bare", "src", "site/repo.git"]);
    git(&site.join("repo.git"), &["update-server-info"]);
    net.address(FILES);
    net.spawn_upstream(&[
        "python3",
        "-m",
        "http.server",
        "80",
        "--bind",
        FILES,
        "--directory",
        site.to_str().unwrap(),
    ]);
    // git's own protocol on port 22, as a forge's ssh is (`github.com:22`):
    // no proxy variable applies, so it goes by the stub's address to the
    // listener on 22.
    net.spawn_upstream(&[
        "git",
        "daemon",
        "--reuseaddr",
        "--export-all",
        &format!("--base-path={}", site.display()),
        &format!("--listen={FILES}"),
        "--port=22",
    ]);
    let up = |cmd: &[&str]| net.exec(cmd).output().is_ok_and(|o| o.status.success());
    let file = format!("http://{FILES}/hello.txt");
    let repo = format!("git://{FILES}:22/repo.git");
    assert!(
        poll(std::time::Duration::from_secs(10), || up(&[
            "curl",
            "-sf",
            "--noproxy",
            "*",
            &file
        ]) && up(&[
            "git",
            "ls-remote",
            &repo
        ])),
        "the file server or git daemon didn't start"
    );
    let p = profile(
        &f,
        "git",
        "  allow: [\"git.example:80\", \"git.example:22\"]\n",
    );
    let o = run(
        &net,
        &f,
        &p,
        "git clone -q http://git.example/repo.git cloned && cat cloned/README && \
         git ls-remote git://git.example:22/repo.git | grep -c refs/heads/main && \
         python3 -c \"import urllib.request as u; print(u.urlopen('http://git.example/hello.txt', timeout=10).read().decode(), end='')\" && \
         python3 -c \"import urllib.request as u; u.urlopen('http://other.example/', timeout=10)\" 2>/dev/null; echo other=$?",
    );
    assert_eq!(
        stdout(&o),
        "cloned through the proxy\n1\nhello from the index\nother=1\n",
        "{}",
        show(&o)
    );
}

#[test]
fn pip_installs_from_an_allowed_index_and_not_from_another() {
    let test = "pip_installs_from_an_allowed_index_and_not_from_another";
    if !ready(test) || !have(test, "/usr/bin/python3") {
        return;
    }
    // pip itself, as the distribution packages it (python3-pip).
    let pip = std::process::Command::new("/usr/bin/python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pip && skip_or_fail(test, "python3 -m pip (python3-pip) is not installed") {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("pypi.example", &[FILES]);
    dns.set("mirror.example", &[OTHER]);
    let f = Fixture::new("egress-pip");
    // The same index on a host the profile allows and on one it doesn't.
    net.pip_index(
        &f.root.join("site"),
        "installed through the proxy",
        &[FILES, OTHER],
    );
    let p = profile(&f, "pip", "  allow: [\"pypi.example:80\"]\n");
    let pip = |host: &str, target: &str| {
        format!(
            "python3 -m pip install -q --disable-pip-version-check --no-cache-dir --retries 0 \
             --timeout 10 --index-url http://{host}/simple/ --trusted-host {host} \
             --target {target} confine-probe"
        )
    };
    let o = run(
        &net,
        &f,
        &p,
        &format!(
            "{} && python3 -c 'import sys; sys.path.insert(0, \"pkgs\"); import confine_probe; print(confine_probe.VALUE)'; \
             {} 2>/dev/null; echo mirror=$?; test -e other || echo nothing-from-mirror",
            pip("pypi.example", "pkgs"),
            pip("mirror.example", "other")
        ),
    );
    assert_eq!(
        stdout(&o),
        "installed through the proxy\nmirror=1\nnothing-from-mirror\n",
        "{}",
        show(&o)
    );
}

#[test]
fn stats_show_the_egress_proxys_traffic_so_far() {
    let test = "stats_show_the_egress_proxys_traffic_so_far";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    let _web = net.http(PUBLIC, "ok\n");
    let f = Fixture::new("egress-stats");
    std::fs::copy(net.ca(), f.ws.join("ca.pem")).unwrap();
    let p = profile(&f, "stats", "  allow: [\"example.com:80\"]\n");
    let log = f.root.join("audit.jsonl");
    let mut cmd = std::process::Command::new(bin());
    let script = format!(
        "{CURL} http://example.com/ >/dev/null; {CURL} http://other.example/; touch done; sleep 30"
    );
    cmd.args(["run", "-p", &p, "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log)
        .args(["--", "/bin/sh", "-c", &script])
        .env("PATH", PATH)
        .current_dir(&f.ws);
    let mut child = net
        .in_client(&cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(poll(std::time::Duration::from_secs(20), || f
        .ws
        .join("done")
        .exists()));
    let id = std::fs::read_to_string(&log).unwrap();
    let launch: serde_json::Value = serde_json::from_str(id.lines().next().unwrap()).unwrap();
    let id = launch["sandbox"].as_str().unwrap().to_string();
    // The records arrive as connections end: poll for both.
    let mut stats = serde_json::Value::Null;
    let counted = poll(std::time::Duration::from_secs(10), || {
        let o = std::process::Command::new(bin())
            .args(["stats", &id, "--json"])
            .output()
            .unwrap();
        stats = serde_json::from_slice(&o.stdout).unwrap_or_default();
        stats["network_connections"] == 2
    });
    let o = std::process::Command::new(bin())
        .args(["kill", &id])
        .output()
        .unwrap();
    let _ = child.wait();
    assert!(counted, "{stats}");
    assert_eq!(stats["network_refused"], 1, "{stats}");
    assert!(stats["network_in_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}
