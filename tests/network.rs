//! The network modes (DESIGN.md §2 `network`, §6): `none` has no route
//! anywhere, loopback included, and no abstract or pathname unix socket
//! of the host reaches in; `loopback` talks to itself only; `host` connects
//! to the listed TCP ports and binds none that isn't listed (Landlock ABI 4).
//!
//! Every listener is the test's own, on 127.0.0.1 or a fixture path (never
//! the real /run), and is closed when the test ends. An attempt that gets
//! through is only a connection to that listener.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// Python run inside: each argument `LABEL=KIND:ADDRESS` is one attempt,
/// printed as `LABEL ok` or `LABEL ERRNO`. KIND is `tcp` (connect to
/// 127.0.0.1:PORT and send "hi"), `tcpbind` (bind 127.0.0.1:PORT), `udp`
/// (sendto 127.0.0.1:PORT), `tfo` (TCP Fast Open: sendto with MSG_FASTOPEN,
/// which connects), `mptcp` (connect an IPPROTO_MPTCP socket and send "hi"),
/// `sctp` (create an SCTP stream socket; ADDRESS is ignored), `unix`
/// (connect to a path and send "hi") or `abstract` (the same, to an abstract
/// name).
const ATTEMPTS: &str = r#"
import errno, socket, sys
for arg in sys.argv[1:]:
    label, spec = arg.split("=", 1)
    kind, addr = spec.split(":", 1)
    try:
        if kind == "tcp":
            with socket.create_connection(("127.0.0.1", int(addr)), timeout=5) as s:
                s.sendall(b"hi")
        elif kind == "tcpbind":
            with socket.socket() as s:
                s.bind(("127.0.0.1", int(addr)))
        elif kind == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"hi", ("127.0.0.1", int(addr)))
        elif kind == "tfo":
            # Blocking: on a non-blocking socket the connect it starts
            # reports EINPROGRESS.
            with socket.socket() as s:
                s.sendto(b"hi", socket.MSG_FASTOPEN, ("127.0.0.1", int(addr)))
        elif kind == "mptcp":
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as s:
                s.settimeout(5)
                s.connect(("127.0.0.1", int(addr)))
                s.sendall(b"hi")
        elif kind == "sctp":
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132) as s:
                pass
        else:
            path = "\0" + addr if kind == "abstract" else addr
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(path)
                s.sendall(b"hi")
        print(label, "ok")
    except OSError as e:
        print(label, errno.errorcode.get(e.errno, str(e.errno)))
"#;

/// Runs [`ATTEMPTS`] in the sandbox and returns label → result.
fn attempt(f: &Fixture, profile: &str, specs: &[String]) -> BTreeMap<String, String> {
    let mut cmd = vec!["python3", "-c", ATTEMPTS];
    cmd.extend(specs.iter().map(String::as_str));
    let o = f.run(profile, &cmd);
    assert_status(&o, 0);
    let got = labelled(&stdout(&o));
    assert_eq!(got.len(), specs.len(), "{}", show(&o));
    got
}

/// A non-blocking TCP listener on 127.0.0.1, on a port of its own.
fn tcp_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// A connection waiting in the listener's queue, if any. A connection whose
/// handshake completed stays queued even after the peer closed it, so this
/// also sees attempts that are long over.
fn pending_tcp(l: &TcpListener) -> Option<TcpStream> {
    queued(l.accept())
}

fn pending_unix(l: &UnixListener) -> Option<UnixStream> {
    queued(l.accept())
}

/// The stream of a non-blocking `accept`, or None when nothing is queued.
fn queued<S, A>(accepted: std::io::Result<(S, A)>) -> Option<S> {
    match accepted {
        Ok((s, _)) => Some(s),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(e) => panic!("accept: {e}"),
    }
}

/// What the peer sent before closing.
fn received(mut s: impl Read, set_blocking: impl FnOnce()) -> String {
    set_blocking();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf
}

/// Control for a TCP listener: the host itself can reach it, and the
/// connection shows up in its queue.
#[track_caller]
fn assert_tcp_reachable_from_host(l: &TcpListener, port: u16) {
    let _c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(
        poll_for(Duration::from_secs(5), || pending_tcp(l)).is_some(),
        "control connection never queued"
    );
}

/// Control for a unix listener, as the agent's uid outside any sandbox:
/// plain permissions let the agent's uid connect.
#[track_caller]
fn assert_unix_reachable_as_agent_uid(l: &UnixListener, path: &Path) {
    let py = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('ok')";
    let o = as_agent_unconfined(&["python3", "-c", py, path.to_str().unwrap()]);
    assert_status(&o, 0);
    assert!(
        poll_for(Duration::from_secs(5), || pending_unix(l)).is_some(),
        "control connection never queued"
    );
}

/// A pathname unix listener, mode 0777, in a directory the agent's uid can
/// traverse: only the sandbox can keep the agent out.
fn unix_listener(path: &Path) -> UnixListener {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).unwrap();
    l.set_nonblocking(true).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    l
}

fn one_of(got: Option<&String>, allowed: &[&str]) -> bool {
    got.is_some_and(|g| allowed.contains(&g.as_str()))
}

const NONE: &str = "version: 1
name: none
extends: default
network:
  mode: none
";

/// `default` with `network.mode: none` (the default profile has its own
/// loopback).
fn none(f: &Fixture) -> String {
    f.profile("none", NONE).display().to_string()
}

#[test]
fn none_blocks_tcp_to_host_loopback() {
    if !can_run("none_blocks_tcp_to_host_loopback") {
        return;
    }
    let f = Fixture::new("net-none-tcp");
    let (l, port) = tcp_listener();
    let got = attempt(&f, &none(&f), &[format!("tcp=tcp:{port}")]);
    assert!(
        one_of(got.get("tcp"), &["ENETUNREACH", "ECONNREFUSED"]),
        "{got:?}"
    );
    assert!(
        pending_tcp(&l).is_none(),
        "the host listener got a connection from the sandbox"
    );
    assert_tcp_reachable_from_host(&l, port);
}

#[test]
fn none_blocks_udp_to_host_loopback() {
    if !can_run("none_blocks_udp_to_host_loopback") {
        return;
    }
    let f = Fixture::new("net-none-udp");
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_nonblocking(true).unwrap();
    let port = rx.local_addr().unwrap().port();
    let got = attempt(&f, &none(&f), &[format!("udp=udp:{port}")]);
    // Refused outright, or at least delivered nowhere.
    assert!(one_of(got.get("udp"), &["ENETUNREACH", "ok"]), "{got:?}");
    let mut buf = [0u8; 16];
    match rx.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the host socket received from the sandbox: {other:?}"),
    }
    // Control: a datagram from the host does arrive.
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"host", ("127.0.0.1", port))
        .unwrap();
    let got = poll_for(Duration::from_secs(5), || {
        rx.recv_from(&mut buf).ok().map(|(n, _)| n)
    });
    assert_eq!(got.map(|n| &buf[..n]), Some(&b"host"[..]));
}

#[test]
fn none_blocks_host_abstract_unix_socket() {
    if !can_run("none_blocks_host_abstract_unix_socket") {
        return;
    }
    let f = Fixture::new("net-none-abstract");
    // A netns of its own has its own abstract namespace: nobody listens.
    assert_host_abstract_socket_unreachable(&f, &none(&f), "ECONNREFUSED");
}

/// The agent, under `profile`, connects to an abstract unix socket the host
/// listens on: it must fail with `errno` and the listener must see nothing.
/// Control: the name is reachable on the host.
#[track_caller]
fn assert_host_abstract_socket_unreachable(f: &Fixture, profile: &str, errno: &str) {
    let name = format!("confine-test-{}", unique());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = UnixListener::bind_addr(&addr).unwrap();
    l.set_nonblocking(true).unwrap();
    let got = attempt(f, profile, &[format!("abstract=abstract:{name}")]);
    assert_eq!(
        got.get("abstract").map(String::as_str),
        Some(errno),
        "{got:?}"
    );
    assert!(
        pending_unix(&l).is_none(),
        "the host listener got a connection from the sandbox"
    );
    let _c = UnixStream::connect_addr(&addr).unwrap();
    assert!(poll_for(Duration::from_secs(5), || pending_unix(&l)).is_some());
}

#[test]
fn pathname_unix_socket_outside_grants_is_unreachable() {
    if !can_run("pathname_unix_socket_outside_grants_is_unreachable") {
        return;
    }
    let f = Fixture::new("net-unix-path");
    let outside_path = f.outside.join("agent.sock");
    let outside = unix_listener(&outside_path);
    let inside_path = f.ws.join("ws.sock");
    let inside = unix_listener(&inside_path);
    let got = attempt(
        &f,
        "default",
        &[
            format!("outside=unix:{}", outside_path.display()),
            format!("workspace=unix:{}", inside_path.display()),
        ],
    );
    // Outside every grant: not even there (ENOENT: not in the mount view)
    // or denied.
    assert!(
        one_of(got.get("outside"), &["ENOENT", "EACCES", "EPERM"]),
        "{got:?}"
    );
    assert!(
        pending_unix(&outside).is_none(),
        "the agent connected to a socket outside its grants"
    );
    assert_unix_reachable_as_agent_uid(&outside, &outside_path);
    // Control: a socket in the workspace is reachable from inside.
    assert_eq!(
        got.get("workspace").map(String::as_str),
        Some("ok"),
        "{got:?}"
    );
    let s = pending_unix(&inside).expect("the workspace socket saw no connection");
    assert_eq!(received(&s, || s.set_nonblocking(false).unwrap()), "hi");
}

/// Interface names and flags as the agent sees them: `if NAME FLAGS` lines
/// (SIOCGIFFLAGS) and the names in /proc/net/dev.
const INTERFACES: &str = r#"
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _, name in socket.if_nameindex():
    req = struct.pack("16sH22x", name.encode(), 0)
    flags = struct.unpack("16sH22x", fcntl.ioctl(s, 0x8913, req))[1]  # SIOCGIFFLAGS
    print("if", name, flags)
with open("/proc/net/dev") as f:
    print("procnetdev", " ".join(l.split(":")[0].strip() for l in f.readlines()[2:]))
"#;

/// `name → flags` of the interfaces, and the names /proc/net/dev lists.
fn interfaces(f: &Fixture, profile: &str) -> (BTreeMap<String, u32>, String) {
    let o = f.run(profile, &["python3", "-c", INTERFACES]);
    assert_status(&o, 0);
    let out = stdout(&o);
    let ifs = out
        .lines()
        .filter_map(|l| l.strip_prefix("if "))
        .map(|l| {
            let (name, flags) = l.split_once(' ').unwrap();
            (name.to_string(), flags.parse().unwrap())
        })
        .collect();
    let dev = out
        .lines()
        .find_map(|l| l.strip_prefix("procnetdev "))
        .unwrap_or_default();
    (ifs, dev.to_string())
}

const IFF_UP: u32 = 1;

#[test]
fn none_has_only_lo_and_it_is_down() {
    if !can_run("none_has_only_lo_and_it_is_down") {
        return;
    }
    let f = Fixture::new("net-none-ifs");
    let (ifs, dev) = interfaces(&f, &none(&f));
    assert_eq!(ifs.keys().collect::<Vec<_>>(), ["lo"], "{ifs:?}");
    assert_eq!(ifs["lo"] & IFF_UP, 0, "lo is up: {ifs:?}");
    assert_eq!(dev, "lo");
}

const LOOPBACK: &str = "version: 1
name: loopback
extends: default
network:
  mode: loopback
";

#[test]
fn loopback_talks_to_itself_not_to_host() {
    if !can_run("loopback_talks_to_itself_not_to_host") {
        return;
    }
    let f = Fixture::new("net-loopback");
    let profile = f.profile("loopback", LOOPBACK);
    let profile = profile.to_str().unwrap();

    let (ifs, dev) = interfaces(&f, profile);
    assert_eq!(ifs.keys().collect::<Vec<_>>(), ["lo"], "{ifs:?}");
    assert_eq!(ifs["lo"] & IFF_UP, IFF_UP, "lo is down: {ifs:?}");
    assert_eq!(dev, "lo");

    // A server and a client, both inside, over 127.0.0.1.
    let py = r#"
import socket, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
def serve():
    c, _ = srv.accept()
    c.sendall(c.recv(16).upper())
    c.close()
t = threading.Thread(target=serve)
t.start()
with socket.create_connection(srv.getsockname(), timeout=5) as c:
    c.sendall(b"ping")
    print("echo", c.recv(16).decode())
t.join()
"#;
    let o = f.run(profile, &["python3", "-c", py]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "echo PING\n", "{}", show(&o));

    // The host's 127.0.0.1 is another one.
    let (l, port) = tcp_listener();
    let got = attempt(&f, profile, &[format!("tcp=tcp:{port}")]);
    assert_eq!(
        got.get("tcp").map(String::as_str),
        Some("ECONNREFUSED"),
        "{got:?}"
    );
    assert!(
        pending_tcp(&l).is_none(),
        "the host listener got a connection from the sandbox"
    );
    assert_tcp_reachable_from_host(&l, port);
}

#[test]
fn default_has_its_own_loopback_and_not_the_hosts() {
    if !can_run("default_has_its_own_loopback_and_not_the_hosts") {
        return;
    }
    let f = Fixture::new("net-default-lo");
    let (ifs, _) = interfaces(&f, "default");
    assert_eq!(ifs.keys().collect::<Vec<_>>(), ["lo"], "{ifs:?}");
    assert_eq!(ifs["lo"] & IFF_UP, IFF_UP, "lo is down: {ifs:?}");
    // Local servers work inside (the control)...
    let py = "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(1)\n\
              c = socket.create_connection(s.getsockname(), timeout=5)\nprint('inside', 'ok')\n";
    let o = f.run("default", &["python3", "-c", py]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "inside ok\n", "{}", show(&o));
    // ...and the host's own 127.0.0.1 stays out of reach.
    let (l, port) = tcp_listener();
    let got = attempt(&f, "default", &[format!("tcp=tcp:{port}")]);
    assert_eq!(
        got.get("tcp").map(String::as_str),
        Some("ECONNREFUSED"),
        "{got:?}"
    );
    assert!(
        pending_tcp(&l).is_none(),
        "the host listener got a connection from the sandbox"
    );
    assert_tcp_reachable_from_host(&l, port);
}

fn host_profile(connect: &[u16], bind: &[u16]) -> String {
    format!(
        "version: 1\nname: host-net\nextends: default\nnetwork:\n  mode: host\n  connect_tcp: {connect:?}\n  bind_tcp: {bind:?}\n"
    )
}

#[test]
fn host_mode_connects_only_to_listed_tcp_ports() {
    if !can_run("host_mode_connects_only_to_listed_tcp_ports") {
        return;
    }
    if !require_landlock("host_mode_connects_only_to_listed_tcp_ports", 4) {
        return;
    }
    let f = Fixture::new("net-host-connect");
    let (allowed, p) = tcp_listener();
    let (denied, q) = tcp_listener();
    let profile = f.profile("host", &host_profile(&[p], &[]));
    let got = attempt(
        &f,
        profile.to_str().unwrap(),
        &[format!("allowed=tcp:{p}"), format!("denied=tcp:{q}")],
    );
    // Control: the listed port is reached, and the data arrives.
    assert_eq!(
        got.get("allowed").map(String::as_str),
        Some("ok"),
        "{got:?}"
    );
    let s = pending_tcp(&allowed).expect("the allowed listener saw no connection");
    assert_eq!(received(&s, || s.set_nonblocking(false).unwrap()), "hi");
    // The other port: Landlock says no.
    assert_eq!(
        got.get("denied").map(String::as_str),
        Some("EACCES"),
        "{got:?}"
    );
    assert!(
        pending_tcp(&denied).is_none(),
        "the unlisted port got a connection"
    );
    assert_tcp_reachable_from_host(&denied, q);
}

#[test]
fn host_mode_binds_only_listed_tcp_ports() {
    if !can_run("host_mode_binds_only_listed_tcp_ports") {
        return;
    }
    if !require_landlock("host_mode_binds_only_listed_tcp_ports", 4) {
        return;
    }
    let f = Fixture::new("net-host-bind");
    // A port that was free a moment ago (Landlock decides before the
    // kernel would look whether it is in use).
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let specs = [format!("port=tcpbind:{free}"), "any=tcpbind:0".to_string()];

    let none = f.profile("host-none", &host_profile(&[], &[]));
    let got = attempt(&f, none.to_str().unwrap(), &specs);
    assert_eq!(
        got.get("port").map(String::as_str),
        Some("EACCES"),
        "{got:?}"
    );
    assert_eq!(
        got.get("any").map(String::as_str),
        Some("EACCES"),
        "{got:?}"
    );

    // Control: listed, the same bind works.
    let listed = f.profile("host-listed", &host_profile(&[], &[free]));
    let got = attempt(&f, listed.to_str().unwrap(), &specs[..1]);
    assert_eq!(got.get("port").map(String::as_str), Some("ok"), "{got:?}");
}

/// [`ATTEMPTS`] outside any sandbox, as the agent's uid: what the kernel
/// itself lets through.
fn attempt_unconfined(specs: &[String]) -> BTreeMap<String, String> {
    let mut cmd = vec!["python3", "-c", ATTEMPTS];
    cmd.extend(specs.iter().map(String::as_str));
    let o = as_agent_unconfined(&cmd);
    assert_status(&o, 0);
    labelled(&stdout(&o))
}

/// Finding 6: Landlock checks `connect(2)` and `bind(2)` of TCP sockets,
/// but TCP Fast Open connects from `sendto(MSG_FASTOPEN)` without that
/// check, and an MPTCP socket isn't a TCP socket to Landlock. Both reach an
/// unlisted port unconfined; inside, both are refused while the listed port
/// stays reachable.
#[test]
fn host_mode_port_rules_hold_for_fast_open_and_mptcp() {
    let test = "host_mode_port_rules_hold_for_fast_open_and_mptcp";
    if !can_run(test) || !require_landlock(test, 4) {
        return;
    }
    let f = Fixture::new("net-host-leaks");
    let (allowed, p) = tcp_listener();
    let (denied, q) = tcp_listener();

    // Control: unconfined, both routes reach the unlisted port.
    let specs = [format!("tfo=tfo:{q}"), format!("mptcp=mptcp:{q}")];
    let got = attempt_unconfined(&specs);
    for (label, kind) in [("tfo", "TCP Fast Open"), ("mptcp", "MPTCP")] {
        if got.get(label).map(String::as_str) != Some("ok") {
            skip_or_fail(
                test,
                &format!("{kind} doesn't connect here unconfined: {got:?}"),
            );
            return;
        }
        assert!(
            poll_for(std::time::Duration::from_secs(5), || pending_tcp(&denied)).is_some(),
            "{kind}: the control connection never queued"
        );
    }

    let profile = f.profile("host", &host_profile(&[p], &[]));
    let got = attempt(
        &f,
        profile.to_str().unwrap(),
        &[
            format!("tfo=tfo:{q}"),
            format!("mptcp=mptcp:{q}"),
            "sctp=sctp:0".to_string(),
            format!("allowed=tcp:{p}"),
            format!("allowed_tfo=tfo:{p}"),
        ],
    );
    // Fast Open answers as if the host had it turned off (EOPNOTSUPP, which
    // Python names ENOTSUP; programs fall back to connect); MPTCP and SCTP
    // as if they weren't built in.
    assert!(
        one_of(got.get("tfo"), &["ENOTSUP", "EOPNOTSUPP"]),
        "{got:?}"
    );
    assert_eq!(
        got.get("mptcp").map(String::as_str),
        Some("EPROTONOSUPPORT"),
        "{got:?}"
    );
    assert_eq!(
        got.get("sctp").map(String::as_str),
        Some("EPROTONOSUPPORT"),
        "{got:?}"
    );
    assert!(
        pending_tcp(&denied).is_none(),
        "the unlisted port got a connection"
    );
    // Control: the listed port, by connect; Fast Open is refused whatever
    // the port.
    assert_eq!(
        got.get("allowed").map(String::as_str),
        Some("ok"),
        "{got:?}"
    );
    assert!(
        one_of(got.get("allowed_tfo"), &["ENOTSUP", "EOPNOTSUPP"]),
        "{got:?}"
    );
    let s = pending_tcp(&allowed).expect("the allowed listener saw no connection");
    assert_eq!(received(&s, || s.set_nonblocking(false).unwrap()), "hi");
}

/// `connect_tcp: any` lifts the connect restriction (and only it): every
/// port is reachable, binding stays refused.
#[test]
fn host_mode_connect_any_reaches_every_port_and_binds_none() {
    let test = "host_mode_connect_any_reaches_every_port_and_binds_none";
    if !can_run(test) || !require_landlock(test, 4) {
        return;
    }
    let f = Fixture::new("net-host-any");
    let (l, q) = tcp_listener();
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let profile = f.profile(
        "host-any",
        "version: 1\nname: host-any\nextends: default\nnetwork:\n  mode: host\n  connect_tcp: any\n",
    );
    let got = attempt(
        &f,
        profile.to_str().unwrap(),
        &[format!("any=tcp:{q}"), format!("bind=tcpbind:{free}")],
    );
    assert_eq!(got.get("any").map(String::as_str), Some("ok"), "{got:?}");
    let s = pending_tcp(&l).expect("the listener saw no connection");
    assert_eq!(received(&s, || s.set_nonblocking(false).unwrap()), "hi");
    assert_eq!(
        got.get("bind").map(String::as_str),
        Some("EACCES"),
        "{got:?}"
    );
}

#[test]
fn host_mode_blocks_host_abstract_unix_socket() {
    if !can_run("host_mode_blocks_host_abstract_unix_socket") {
        return;
    }
    // Same network namespace as the host: only Landlock's scope (ABI 6)
    // stands between the agent and the host's abstract sockets.
    if !require_landlock("host_mode_blocks_host_abstract_unix_socket", 6) {
        return;
    }
    let f = Fixture::new("net-host-abstract");
    assert_host_abstract_socket_unreachable(&f, "networked", "EPERM");
}

#[test]
fn daemon_socket_outside_grants_is_unreachable() {
    if !can_run("daemon_socket_outside_grants_is_unreachable") {
        return;
    }
    let f = Fixture::new("net-daemon-sock");
    // A stand-in for /run/docker.sock, world-connectable.
    let run = f.outside.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = run.join("docker.sock");
    let l = unix_listener(&path);
    let spec = [format!("daemon=unix:{}", path.display())];
    // Whatever the network mode: pathname sockets don't care about netns.
    for profile in ["default", "networked"] {
        let got = attempt(&f, profile, &spec);
        assert!(
            one_of(got.get("daemon"), &["ENOENT", "EACCES", "EPERM"]),
            "{profile}: {got:?}"
        );
        assert!(
            pending_unix(&l).is_none(),
            "{profile}: the agent reached the daemon socket"
        );
    }
    assert_unix_reachable_as_agent_uid(&l, &path);
}

/// The sandbox's own name resolves in every network mode, without asking
/// DNS (the proxy's stub would refuse it; host mode would send the query
/// out), and host mode keeps the host's entries.
#[test]
fn the_sandbox_resolves_its_own_name() {
    if !can_run("the_sandbox_resolves_its_own_name") {
        return;
    }
    let f = Fixture::new("net-own-name");
    let py = "import socket\nn = socket.gethostname()\n\
              print(n, socket.gethostbyname(n), socket.gethostbyname('localhost'))\n";
    let proxy = f.profile(
        "own-name-proxy",
        "version: 1\nname: own-name-proxy\nextends: default\nnetwork:\n  mode: proxy\n  allow: [example.com]\n",
    );
    let none = f.profile(
        "own-name-none",
        "version: 1\nname: own-name-none\nextends: default\nnetwork:\n  mode: none\n",
    );
    let host = f.profile("host-net", &host_profile(&[], &[]));
    for profile in [Path::new("default"), &none, &proxy, &host] {
        let profile = profile.to_str().unwrap();
        let o = f.run(profile, &["python3", "-c", py]);
        assert_status(&o, 0);
        assert_eq!(
            stdout(&o),
            "confine 127.0.1.1 127.0.0.1\n",
            "{profile}: {}",
            show(&o)
        );
    }
    // Sharing the host's network, the host's entries come first, as they
    // are; elsewhere they would name addresses without a route.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let o = f.run(host.to_str().unwrap(), &["cat", "/etc/hosts"]);
    assert_status(&o, 0);
    assert!(stdout(&o).starts_with(&hosts), "{}", show(&o));
    assert!(stdout(&o).contains("127.0.1.1\tconfine\n"), "{}", show(&o));
    let o = f.run("default", &["cat", "/etc/hosts"]);
    assert_status(&o, 0);
    assert!(stdout(&o).starts_with("# confine: "), "{}", show(&o));
}

/// `confine run -p profile -w ws -- cmd` in a mount namespace of its own
/// where `hosts` is bound over `/etc/hosts` (in that namespace only: the
/// host's file is never touched), stopped after 60 s if it hangs.
fn with_hosts(f: &Fixture, hosts: &Path, profile: &str, cmd: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new("timeout");
    c.args([
        "-k",
        "5",
        "60",
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
    ])
    .arg("mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"")
    .arg("sh")
    .arg(hosts)
    .args([bin(), "run", "-p", profile, "-w"])
    .arg(&f.ws)
    .arg("--")
    .args(cmd)
    .env("PATH", PATH)
    .stdin(std::process::Stdio::null());
    c.output().unwrap()
}

#[test]
fn the_hosts_entries_are_read_once_safely_and_cant_be_changed_inside() {
    let test = "the_hosts_entries_are_read_once_safely_and_cant_be_changed_inside";
    if !can_run(test) || !have(test, "/usr/bin/unshare") || !have(test, "/usr/bin/mkfifo") {
        return;
    }
    let f = Fixture::new("net-hosts-file");
    let host = f.profile("host-net", &host_profile(&[], &[]));
    let host = host.to_str().unwrap();
    let ours = "127.0.1.1\tconfine\n";
    // A FIFO at /etc/hosts: reading it at plan time would block forever
    // (nothing writes to it); the sandbox starts with its own names only.
    let fifo = f.root.join("hosts-fifo");
    let r = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(r.success());
    let o = with_hosts(&f, &fifo, host, &["cat", "/etc/hosts"]);
    assert_status(&o, 0);
    assert!(stdout(&o).starts_with("# confine: "), "{}", show(&o));
    // Larger than the 1 MiB read: the line the limit cuts is left out
    // whole, not passed on as a shorter name ("10.9.9.9 cut-he..." would
    // name another host).
    let mut big = String::from("10.1.1.1 first-entry\n");
    while big.len() < (1 << 20) - 10 {
        big.push_str("# padding padding padding padding padding padding\n");
    }
    big.truncate((1 << 20) - 10);
    big.push_str("\n10.9.9.9 cut-here-and-longer\n");
    let bigf = f.file(&f.root.join("hosts-big"), &big);
    let o = with_hosts(&f, &bigf, host, &["cat", "/etc/hosts"]);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("10.1.1.1 first-entry\n"), "{}", &out[..200]);
    assert!(!out.contains("10.9.9"), "a cut line was passed on");
    assert!(out.ends_with(&format!(
        "{ours}::1\tlocalhost ip6-localhost ip6-loopback\n"
    )));
    // A byte that isn't UTF-8 (a Latin-1 comment) doesn't lose the host's
    // entries.
    let latin = f.root.join("hosts-latin1");
    std::fs::write(&latin, b"# caf\xe9\n10.2.2.2 latin-entry\n").unwrap();
    let o = with_hosts(&f, &latin, host, &["cat", "/etc/hosts"]);
    assert_status(&o, 0);
    assert!(
        stdout(&o).contains("10.2.2.2 latin-entry\n"),
        "{}",
        show(&o)
    );
    // Inside, the file is the sandbox's own and read-only, even to an agent
    // that is root in its namespace: not written, replaced, removed or
    // unmounted.
    let root = f.profile(
        "hosts-root",
        "version: 1\nname: hosts-root\nextends: default\nuser: root\n",
    );
    let o = f.sh(
        root.to_str().unwrap(),
        "id -u; echo x >> /etc/hosts; echo > /tmp/h && mv /tmp/h /etc/hosts; rm -f /etc/hosts; \
         umount /etc/hosts; umount -l /etc/hosts; chmod 666 /etc/hosts; cat /etc/hosts",
    );
    let out = stdout(&o);
    assert!(out.starts_with("0\n# confine: "), "{}", show(&o));
    assert!(
        out.ends_with("::1\tlocalhost ip6-localhost ip6-loopback\n"),
        "{}",
        show(&o)
    );
    assert!(!out.contains("x\n"), "{}", show(&o));
}
