//! The egress tests' network (tests/common/net.rs) proves itself with real
//! tools run in the client namespace: curl by name over HTTP and HTTPS
//! through the harness's DNS, glibc's resolver over UDP and TCP against the
//! DNS table and its sequences, 100 MiB each way through the TCP sink,
//! private addresses reachable (the harness filters nothing), and nothing
//! left behind when a `Net` is dropped, also by a panicking test.
//!
//! No confine here: this is the ground the egress tests stand on, so each
//! check has a control that fails where it should (an unknown name, a
//! certificate without the test CA), or a passing check would prove little.
mod common;
use common::net::{Net, Query, CLIENT_ADDR};
use common::*;

use std::process::Output;
use std::time::Duration;

const PUBLIC: &str = "93.184.215.14";
const DNS: &str = "198.51.100.53";

fn run(net: &Net, cmd: &[&str]) -> Output {
    net.exec(cmd).output().unwrap()
}

fn curl(net: &Net, args: &[&str]) -> Output {
    let mut cmd = vec!["curl", "-sS", "--max-time", "10", "--noproxy", "*"];
    cmd.extend(args);
    run(net, &cmd)
}

fn have_tools(test: &str, tools: &[&str]) -> bool {
    tools.iter().all(|t| have(test, t))
}

#[test]
fn curl_reaches_http_and_https_by_name_through_the_harness_dns() {
    let test = "curl_reaches_http_and_https_by_name_through_the_harness_dns";
    if !can_run(test) || !have_tools(test, &["/usr/bin/curl", "/usr/bin/openssl"]) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    dns.set("example.com", &[PUBLIC]);
    let web = net.http(PUBLIC, "plain hello\n");
    let tls = net.https(PUBLIC, &["example.com", "www.example.com"], "tls hello\n");
    let ca = net.ca();
    let ca = ca.to_str().unwrap();

    // `ip netns exec` puts the harness's resolv.conf in place.
    let o = net
        .in_client(std::process::Command::new("cat").arg("/etc/resolv.conf"))
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains(&format!("nameserver {DNS}")),
        "{}",
        show(&o)
    );

    let o = curl(&net, &["http://example.com/some/path?q=1"]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "plain hello\n");
    let reqs = web.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].target, "/some/path?q=1");
    assert_eq!(reqs[0].host.as_deref(), Some("example.com"));
    assert_eq!(reqs[0].sni, None);
    assert_eq!(reqs[0].peer.ip().to_string(), CLIENT_ADDR);

    let o = curl(&net, &["--cacert", ca, "https://example.com/tls"]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "tls hello\n");
    let reqs = tls.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].target, "/tls");
    assert_eq!(reqs[0].host.as_deref(), Some("example.com"));
    assert_eq!(reqs[0].sni.as_deref(), Some("example.com"));

    // A POST body is read and counted (curl sends Expect: 100-continue
    // for this size).
    let upload = format!(
        "head -c 2000000 /dev/zero | curl -sS --max-time 10 --noproxy '*' --cacert {ca} \
         --data-binary @- https://example.com/up"
    );
    let o = run(&net, &["sh", "-c", &upload]);
    assert_status(&o, 0);
    let reqs = tls.requests();
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].body_len),
        ("POST", 2_000_000)
    );

    // Controls. Without the test CA the certificate is refused, and the
    // SNI of that failed handshake is still logged; the other name of the
    // certificate, pinned with --resolve (SNI and Host follow the URL).
    let o = curl(&net, &["https://example.com/"]);
    assert_eq!(o.status.code(), Some(60), "{}", show(&o));
    let o = curl(
        &net,
        &[
            "--cacert",
            ca,
            "--resolve",
            &format!("www.example.com:443:{PUBLIC}"),
            "https://www.example.com/",
        ],
    );
    assert_status(&o, 0);
    assert_eq!(
        tls.handshakes(),
        [
            Some("example.com"),
            Some("example.com"),
            Some("example.com"),
            Some("www.example.com")
        ]
        .map(|s| s.map(String::from))
    );
    // A ClientHello without a server name (an IP address in the URL).
    let o = curl(&net, &["--insecure", &format!("https://{PUBLIC}/ip")]);
    assert_status(&o, 0);
    let reqs = tls.requests();
    assert_eq!(reqs.last().unwrap().sni, None, "{reqs:?}");
    assert_eq!(tls.handshakes().last(), Some(&None));
    // A name not in the table doesn't resolve, and its query was seen.
    let o = curl(&net, &["http://unknown.example.net/"]);
    assert_eq!(o.status.code(), Some(6), "{}", show(&o));
    assert!(
        dns.queried("unknown.example.net") >= 1,
        "{:?}",
        dns.queries()
    );
    assert!(dns.queried("example.com") >= 1, "{:?}", dns.queries());
}

#[test]
fn dns_answers_from_its_table_in_sequence_and_logs_every_query() {
    let test = "dns_answers_from_its_table_in_sequence_and_logs_every_query";
    if !can_run(test) {
        return;
    }
    let net = Net::new();
    let dns = net.dns(DNS);
    // Rebinding: first a public address, then a private one, which stays.
    dns.sequence("rebind.example.com", &[&[PUBLIC], &["10.0.0.5"]]);
    dns.set("two.example.com", &["1.1.1.1", "1.0.0.1"]);
    // glibc's resolver, as every program uses it; A queries only.
    let lookup = |name: &str, tcp: bool| {
        let mut cmd = vec![];
        if tcp {
            // RES_OPTIONS overrides resolv.conf's options: queries over TCP.
            cmd.extend(["env", "RES_OPTIONS=use-vc"]);
        }
        cmd.extend(["getent", "ahostsv4", name]);
        let o = run(&net, &cmd);
        let mut addrs: Vec<String> = stdout(&o)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect();
        addrs.dedup();
        (o.status.code(), addrs)
    };
    assert_eq!(
        lookup("rebind.example.com", false),
        (Some(0), vec![PUBLIC.to_string()])
    );
    assert_eq!(
        lookup("rebind.example.com", true),
        (Some(0), vec!["10.0.0.5".to_string()])
    );
    assert_eq!(
        lookup("REBIND.example.com", false),
        (Some(0), vec!["10.0.0.5".to_string()])
    );
    let (code, mut two) = lookup("two.example.com", true);
    two.sort();
    assert_eq!(
        (code, two),
        (Some(0), vec!["1.0.0.1".to_string(), "1.1.1.1".to_string()])
    );
    // Not in the table: NXDOMAIN, getent's "not found".
    assert_eq!(lookup("nowhere.example.org", false), (Some(2), vec![]));

    let q = |name: &str, tcp| Query {
        name: name.to_string(),
        qtype: 1,
        tcp,
    };
    assert_eq!(
        dns.queries(),
        [
            q("rebind.example.com", false),
            q("rebind.example.com", true),
            q("rebind.example.com", false),
            q("two.example.com", true),
            q("nowhere.example.org", false),
        ]
    );
    assert_eq!(dns.queried("rebind.example.com."), 3);
    assert_eq!(dns.queried("never.example.com"), 0);
}

#[test]
fn sink_counts_100_mib_each_way() {
    let test = "sink_counts_100_mib_each_way";
    if !can_run(test) || !have(test, "/usr/bin/bash") {
        return;
    }
    const SIZE: u64 = 100 << 20;
    let net = Net::new();
    let up = net.sink(PUBLIC, 9000, 0);
    let down = net.sink(PUBLIC, 9001, SIZE);
    // bash's /dev/tcp: a plain TCP client with nothing in between.
    let o = run(
        &net,
        &[
            "bash",
            "-c",
            &format!("head -c {SIZE} /dev/zero > /dev/tcp/{PUBLIC}/9000"),
        ],
    );
    assert_status(&o, 0);
    assert!(up.wait_ended(1, Duration::from_secs(10)));
    assert_eq!((up.connections(), up.received(), up.sent()), (1, SIZE, 0));

    let o = run(
        &net,
        &[
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{PUBLIC}/9001; wc -c <&3"),
        ],
    );
    assert_status(&o, 0);
    assert_eq!(stdout(&o).trim(), SIZE.to_string());
    assert!(down.wait_ended(1, Duration::from_secs(10)));
    assert_eq!(
        (down.connections(), down.received(), down.sent()),
        (1, 0, SIZE)
    );
}

#[test]
fn private_and_metadata_addresses_are_reachable_the_harness_filters_nothing() {
    let test = "private_and_metadata_addresses_are_reachable_the_harness_filters_nothing";
    if !can_run(test) || !have(test, "/usr/bin/curl") {
        return;
    }
    let net = Net::new();
    let metadata = net.http("169.254.169.254", "metadata\n");
    let private = net.http_on("10.20.30.40", 8080, "private\n");
    let o = curl(&net, &["http://169.254.169.254/latest/meta-data/"]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "metadata\n");
    let o = curl(&net, &["http://10.20.30.40:8080/"]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "private\n");
    assert_eq!(
        (metadata.requests().len(), private.requests().len()),
        (1, 1)
    );
    // Control: an address nothing was added for leads nowhere (no route
    // out of the upstream namespace, nothing answers ARP for it).
    let o = curl(
        &net,
        &["--connect-timeout", "1", "http://10.20.30.41:8080/"],
    );
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
}

/// The namespaces, the client's /etc/netns directory and the veth ends of
/// a `Net`, as found on the machine now.
fn traces(client: &str, upstream: &str) -> Vec<String> {
    let mut found = Vec::new();
    let o = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    for ns in [client, upstream] {
        if stdout(&o)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(ns))
        {
            found.push(format!("netns {ns}"));
        }
    }
    if std::path::Path::new("/etc/netns").join(client).exists() {
        found.push(format!("/etc/netns/{client}"));
    }
    let o = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let tag = client.trim_end_matches("-c");
    if stdout(&o).contains(tag) {
        found.push(format!("a link named {tag}*: {}", stdout(&o)));
    }
    found
}

#[test]
fn drop_leaves_no_namespace_veth_directory_server_or_process() {
    let test = "drop_leaves_no_namespace_veth_directory_server_or_process";
    if !can_run(test) || !have_tools(test, &["/usr/bin/curl", "/usr/bin/openssl"]) {
        return;
    }
    let sleeper = token(300);
    let (client, upstream, ca, pid) = {
        let net = Net::new();
        let dns = net.dns(DNS);
        dns.set("example.com", &[PUBLIC]);
        net.https(PUBLIC, &["example.com"], "x");
        let sink = net.sink(PUBLIC, 9000, 1 << 40);
        // A server that forks: its child must go too.
        let pid = net.spawn_upstream(&["sh", "-c", &format!("sleep {sleeper} & wait")]);
        // A client that stays connected to the sink (which keeps sending)
        // when the Net is dropped: Drop must not wait for it.
        let mut hold = net
            .exec(&[
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{PUBLIC}/9000; exec sleep 30 <&3"),
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(poll(Duration::from_secs(10), || sink.connections() == 1));
        let names = (net.client().to_string(), net.upstream().to_string());
        let found = traces(&names.0, &names.1);
        assert_eq!(found.len(), 3, "the check must see a live Net: {found:?}");
        let forked = || processes_with_arg(&sleeper).len() == 1;
        assert!(poll(Duration::from_secs(10), forked));
        let ca = net.ca();
        drop(net);
        let _ = hold.kill();
        let _ = hold.wait();
        (names.0, names.1, ca, pid)
    };
    assert_eq!(traces(&client, &upstream), Vec::<String>::new());
    assert!(!ca.exists());
    assert!(
        processes_with_arg(&sleeper).is_empty(),
        "the child of upstream process {pid} survived"
    );
    assert_eq!(Net::leftovers(), Vec::<String>::new());

    // Unwinding from a panic drops the Net just the same.
    let names = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        let net = Net::new();
        net.dns(DNS);
        net.http(PUBLIC, "x");
        *names.lock().unwrap() = Some((net.client().to_string(), net.upstream().to_string()));
        panic!("a failing test");
    });
    assert!(r.is_err());
    let (client, upstream) = names.into_inner().unwrap().unwrap();
    assert_eq!(traces(&client, &upstream), Vec::<String>::new());
    assert_eq!(Net::leftovers(), Vec::<String>::new());
}
