//! A test network for the egress tests: two network namespaces of the
//! test's own, so no test ever touches the machine's real network, routes or
//! resolver.
//!
//! - **client**: where `confine` runs (`ip netns exec CLIENT confine run
//!   ...`, see [`Net::in_client`]). `lo` is up, one end of a veth pair is
//!   `198.18.0.2/30` and the default route goes through the other end. So
//!   every IPv4 address, "public" or private, leads to the upstream
//!   namespace and nowhere else. `/etc/netns/CLIENT/resolv.conf` names the
//!   harness's DNS server once one is started ([`Net::dns`]): `ip netns
//!   exec` bind-mounts it over `/etc/resolv.conf` for the command, so curl,
//!   getent and confine's proxy all resolve through the test's table.
//! - **upstream**: the servers. The other veth end is `198.18.0.1/30`; each
//!   address a server binds is added to its `lo` first ([`Net::address`]),
//!   and the kernel answers ARP for it on the veth. Addresses are the
//!   test's choice: `93.184.215.14` and `1.1.1.1` exist only here, as do
//!   `10.20.30.40` and `169.254.169.254` (a fake metadata server). The
//!   harness filters nothing: refusing private addresses is confine's job.
//!
//! Servers are threads of the test process. Each listening socket is made
//! by a short-lived thread that first `setns`es into the upstream namespace
//! (a socket stays in the namespace it was created in); accepting and
//! serving then happens on ordinary threads. No extra binaries are needed
//! beyond `ip` (iproute2) and, for TLS, the `openssl` command that makes
//! the throwaway CA.
//!
//! - [`Net::http`]: HTTP/1.1 on port 80, a fixed body, every request logged
//!   (method, target, `Host`).
//! - [`Net::https`]: the same over TLS on 443, with a certificate for the
//!   given names signed by the test CA ([`Net::ca`]: pass it to curl as
//!   `--cacert` or to confine as `SSL_CERT_FILE`); the SNI of every
//!   handshake is logged, also when the handshake then fails.
//! - [`Net::sink`]: TCP that counts the bytes it receives and sends N bytes
//!   on each connection (byte budgets).
//! - [`Net::dns`]: DNS on UDP and TCP port 53: A records from a table, a
//!   sequence of answers per name (rebinding: first public, then private),
//!   NXDOMAIN for names not in the table, every query logged (so a test can
//!   assert that no query for a name ever happened).
//! - [`Net::spawn_upstream`]: any other server as a child process in the
//!   upstream namespace (sshd, git daemon, a package index).
//! - [`Net::pip_index`]: a local pip index of one project, served by
//!   python's http.server as such a child.
//!
//! Dropping the [`Net`] (also while a test panics) stops every server,
//! kills and reaps upstream children, deletes both namespaces (the veth
//! pair goes with them: it never exists in the host's namespace) and
//! removes `/etc/netns/CLIENT` and the certificate directory.
//! [`Net::leftovers`] lists what a dropped `Net` of this process left.
//!
//! ```ignore
//! if !can_run("allowed_by_name") { return; }
//! let net = Net::new();
//! let dns = net.dns("198.18.0.1");
//! dns.set("example.com", &["93.184.215.14"]);
//! let web = net.https("93.184.215.14", &["example.com"], "hello");
//! let o = net.exec(&["curl", "-sS", "--cacert", net.ca().to_str().unwrap(),
//!                    "https://example.com/"]).output().unwrap();
//! assert_eq!(stdout(&o), "hello");
//! assert_eq!(web.requests()[0].sni.as_deref(), Some("example.com"));
//! // confine itself, in the client namespace, trusting the test CA:
//! let mut run = f.command(profile, &["curl", "-sS", "https://example.com/"]);
//! run.env("SSL_CERT_FILE", net.ca());
//! let o = net.in_client(&run).output().unwrap();
//! ```
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

/// The client's end of the veth pair.
pub const CLIENT_ADDR: &str = "198.18.0.2";
/// The upstream's end of the veth pair: the client's default gateway.
pub const GATEWAY_ADDR: &str = "198.18.0.1";

/// Prefix of every namespace, veth and directory the harness names.
const PREFIX: &str = "cfn";
/// Where `ip netns` keeps its named namespaces.
const RUN_NETNS: &str = "/run/netns";
/// What `ip netns exec NAME` bind-mounts over /etc (resolv.conf).
const ETC_NETNS: &str = "/etc/netns";
/// How long an idle server thread sleeps before it looks at the stop flag.
const TICK_MS: i32 = 50;

/// The tags of the `Net`s of this process that are alive now.
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A pair of network namespaces, its servers and children. See the module
/// comment.
pub struct Net {
    tag: String,
    client: String,
    upstream: String,
    /// Certificates, the CA, upstream children's output.
    dir: PathBuf,
    servers: Arc<Servers>,
    children: Mutex<Vec<Child>>,
    ca: Mutex<Option<PathBuf>>,
}

impl Net {
    /// Creates both namespaces, the veth pair and the routes. Panics with
    /// the failing command's output when anything can't be set up (the
    /// test needs root: check `can_run` first).
    pub fn new() -> Net {
        static N: AtomicU32 = AtomicU32::new(0);
        remove_stale();
        let n = N.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{PREFIX}{}-{n}", std::process::id());
        // Interface names are at most 15 bytes (IFNAMSIZ - 1).
        assert!(tag.len() < 15, "veth name {tag}c is too long");
        LIVE.lock().unwrap().insert(tag.clone());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&tag);
        let net = Net {
            client: format!("{tag}-c"),
            upstream: format!("{tag}-u"),
            dir,
            tag,
            servers: Arc::new(Servers::default()),
            children: Mutex::new(Vec::new()),
            ca: Mutex::new(None),
        };
        // From here on Drop cleans up whatever was made.
        let _ = fs::remove_dir_all(&net.dir);
        fs::create_dir_all(&net.dir).unwrap();
        let (c, u) = (net.client.as_str(), net.upstream.as_str());
        let (vc, vu) = (format!("{}c", net.tag), format!("{}u", net.tag));
        ip_cmd(&["netns", "add", c]);
        ip_cmd(&["netns", "add", u]);
        // Both ends are created inside their namespaces: the pair never
        // exists in the host's namespace, and goes when the namespaces go.
        ip_cmd(&[
            "link", "add", &vc, "netns", c, "type", "veth", "peer", "name", &vu, "netns", u,
        ]);
        for (ns, dev, addr) in [(c, &vc, CLIENT_ADDR), (u, &vu, GATEWAY_ADDR)] {
            ip_cmd(&["-n", ns, "link", "set", "lo", "up"]);
            ip_cmd(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev]);
            ip_cmd(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip_cmd(&["-n", c, "route", "add", "default", "via", GATEWAY_ADDR]);
        net
    }

    /// The client namespace's name (for `ip netns exec`).
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The upstream namespace's name.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// `ip netns exec CLIENT CMD...` with the tests' PATH.
    pub fn exec(&self, cmd: &[&str]) -> Command {
        netns_exec(&self.client, cmd)
    }

    /// `cmd` (program, arguments, environment changes, directory) run in
    /// the client namespace instead, e.g. a `Fixture::command(...)`.
    /// Standard streams are not carried over: set them on the result.
    pub fn in_client(&self, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client]);
        c.arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c
    }

    /// Adds `ip` to the upstream namespace (on its `lo`), so servers can
    /// bind it and the client reaches it through its default route. Adding
    /// an address twice is fine.
    pub fn address(&self, ip: &str) -> Ipv4Addr {
        let addr: Ipv4Addr = ip
            .parse()
            .unwrap_or_else(|_| panic!("{ip}: not an IPv4 address"));
        if addr.to_string() == GATEWAY_ADDR {
            return addr;
        }
        // `replace`: adding an address that is already there is fine.
        ip_cmd(&[
            "-n",
            &self.upstream,
            "addr",
            "replace",
            &format!("{addr}/32"),
            "dev",
            "lo",
        ]);
        addr
    }

    /// Runs `f` on a thread that has entered the upstream namespace: what
    /// sockets it creates stay there.
    pub fn in_upstream<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let path = Path::new(RUN_NETNS).join(&self.upstream);
        std::thread::spawn(move || {
            let ns = File::open(&path)?;
            setns(&ns, CloneFlags::CLONE_NEWNET)?;
            f()
        })
        .join()
        .expect("the thread in the upstream namespace panicked")
    }

    fn tcp_listener(&self, ip: &str, port: u16) -> TcpListener {
        let addr = SocketAddrV4::new(self.address(ip), port);
        let l = self
            .in_upstream(move || TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("bind {addr} in the upstream namespace: {e}"));
        l.set_nonblocking(true).unwrap();
        l
    }

    // ------------------------------------------------------------ HTTP

    /// HTTP on `ip:80` answering every request with 200 and `body`.
    pub fn http(&self, ip: &str, body: &str) -> Http {
        self.http_on(ip, 80, body)
    }

    /// HTTP on `ip:port`.
    pub fn http_on(&self, ip: &str, port: u16, body: &str) -> Http {
        let http = Http::new(body);
        let l = self.tcp_listener(ip, port);
        let h = http.clone();
        self.servers.serve(l, move |s, _| h.handle(s, None));
        http
    }

    /// HTTPS on `ip:443` with a certificate for `names` (DNS names, or IP
    /// addresses) signed by [`Net::ca`], answering 200 and `body`.
    pub fn https(&self, ip: &str, names: &[&str], body: &str) -> Http {
        self.https_on(ip, 443, names, body)
    }

    /// HTTPS on `ip:port`.
    pub fn https_on(&self, ip: &str, port: u16, names: &[&str], body: &str) -> Http {
        let config = Arc::new(self.tls_config(names));
        let http = Http::new(body);
        let l = self.tcp_listener(ip, port);
        let h = http.clone();
        self.servers
            .serve(l, move |s, _| h.handle(s, Some(&config)));
        http
    }

    // --------------------------------------------------------- model API

    /// A model API stand-in over TLS on `ip:443` (certificate for `names`
    /// from [`Net::ca`]): keep-alive, every request logged with all its
    /// headers and its body, answered as `reply` says (changeable with
    /// [`Api::set_reply`]).
    pub fn api(&self, ip: &str, names: &[&str], reply: Reply) -> Api {
        self.api_with(ip, Arc::new(self.tls_config(names)), reply)
    }

    /// [`Net::api`] with a certificate from a CA of its own, which nothing
    /// trusts (returned as PEM, for a test that trusts it on purpose).
    pub fn api_untrusted(&self, ip: &str, names: &[&str], reply: Reply) -> Api {
        let other = Net::other_ca_config(&self.dir, names);
        self.api_with(ip, Arc::new(other), reply)
    }

    fn api_with(&self, ip: &str, config: Arc<rustls::ServerConfig>, reply: Reply) -> Api {
        let api = Api {
            reply: Arc::new(Mutex::new(reply)),
            requests: Arc::default(),
            sent: Arc::default(),
            handshakes: Arc::default(),
            connections: Arc::default(),
            held: Arc::default(),
        };
        let l = self.tcp_listener(ip, 443);
        let a = api.clone();
        self.servers.serve(l, move |s, _| a.handle(s, &config));
        api
    }

    /// A self-signed certificate for `names`, from no CA the test trusts.
    fn other_ca_config(dir: &Path, names: &[&str]) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let (key, cert) = (
            dir.join(format!("untrusted-{n}.key")),
            dir.join(format!("untrusted-{n}.pem")),
        );
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={}", names[0]),
            "-addext",
            &format!("subjectAltName={}", san.join(",")),
            "-keyout",
            path(&key),
            "-out",
            path(&cert),
        ]);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap()
    }

    // ---------------------------------------------------------- TCP sink

    /// TCP on `ip:port` that counts what it receives on each connection
    /// until the client closes, and sends `send` bytes (zeros) on each,
    /// then closes its side for writing.
    pub fn sink(&self, ip: &str, port: u16, send: u64) -> Sink {
        let sink = Sink::default();
        let l = self.tcp_listener(ip, port);
        let k = sink.clone();
        self.servers
            .serve(l, move |s, servers| k.handle(s, send, servers));
        sink
    }

    // --------------------------------------------------------------- DNS

    /// A DNS server on `ip:53`, UDP and TCP, with an empty table; the
    /// client's resolv.conf now names it (the last one started wins).
    pub fn dns(&self, ip: &str) -> Dns {
        let addr = SocketAddrV4::new(self.address(ip), 53);
        let dns = Dns::default();
        let l = self.tcp_listener(ip, 53);
        let udp = self
            .in_upstream(move || UdpSocket::bind(addr))
            .unwrap_or_else(|e| panic!("bind udp {addr} in the upstream namespace: {e}"));
        let d = dns.clone();
        self.servers.serve(l, move |s, _| d.handle_tcp(s));
        let d = dns.clone();
        let servers = self.servers.clone();
        self.servers.thread(move || {
            udp.set_read_timeout(Some(Duration::from_millis(TICK_MS as u64)))
                .unwrap();
            let mut buf = [0u8; 1500];
            while !servers.stop.load(Ordering::SeqCst) {
                let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = d.answer(&buf[..n], false) {
                    let _ = udp.send_to(&reply, peer);
                }
            }
        });
        let dir = Path::new(ETC_NETNS).join(&self.client);
        // Another Net's Drop may remove an empty /etc/netns meanwhile.
        let _ = (0..3).find(|_| fs::create_dir_all(&dir).is_ok());
        // Short timeouts: a test that expects an answer gets it at once, and
        // one that expects none shouldn't wait long for nothing.
        let conf = format!("nameserver {}\noptions timeout:2 attempts:1\n", addr.ip());
        fs::write(dir.join("resolv.conf"), conf).unwrap();
        dns
    }

    // ------------------------------------------------- upstream children

    /// Starts `cmd` in the upstream namespace (`ip netns exec`), stdin
    /// closed, output to `upstream-N.out` and `.err` in the harness's
    /// directory, in a process group of its own. When the `Net` is dropped
    /// that group is killed (SIGKILL, by its id) and the child reaped; if
    /// the test process dies first, the child gets SIGKILL from the kernel
    /// (PR_SET_PDEATHSIG: when the thread that spawned it ends, so spawn it
    /// from the test's own thread). Returns its pid.
    pub fn spawn_upstream(&self, cmd: &[&str]) -> u32 {
        use std::os::unix::process::CommandExt;
        let mut children = self.children.lock().unwrap();
        let n = children.len();
        let out = File::create(self.dir.join(format!("upstream-{n}.out"))).unwrap();
        let err = File::create(self.dir.join(format!("upstream-{n}.err"))).unwrap();
        let mut c = netns_exec(&self.upstream, cmd);
        c.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent's; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("ip netns exec {} {cmd:?}: {e}", self.upstream));
        let pid = child.id();
        children.push(child);
        pid
    }

    /// A PEP 503 simple index with one project, `confine-probe` 1.0 (a
    /// wheel of one module, `confine_probe`, whose `VALUE` is `value`),
    /// as static files under `dir`, served over plain HTTP on port 80 of
    /// each of `ips` by `python3 -m http.server` in the upstream
    /// namespace: a local index, as a company mirror would be. Returns
    /// once each answers; panics if one doesn't. Needs /usr/bin/python3.
    pub fn pip_index(&self, dir: &Path, value: &str, ips: &[&str]) {
        let project = dir.join("simple/confine-probe");
        fs::create_dir_all(&project).unwrap();
        let wheel = "confine_probe-1.0-py3-none-any.whl";
        let built = Command::new("/usr/bin/python3")
            .args(["-c", WHEEL])
            .arg(project.join(wheel))
            .arg(value)
            .output()
            .unwrap();
        assert!(built.status.success(), "{}", super::show(&built));
        fs::write(
            project.join("index.html"),
            format!("<!DOCTYPE html><html><body><a href=\"{wheel}\">{wheel}</a></body></html>\n"),
        )
        .unwrap();
        for ip in ips {
            self.address(ip);
            self.spawn_upstream(&[
                "/usr/bin/python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                ip,
                "--directory",
                path(dir),
            ]);
        }
        let up = |ip: &str| {
            self.exec(&[
                "curl",
                "-sf",
                "--noproxy",
                "*",
                &format!("http://{ip}/simple/confine-probe/"),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
        };
        assert!(
            super::poll(Duration::from_secs(10), || ips.iter().all(|ip| up(ip))),
            "the index at {ips:?} didn't start"
        );
    }

    // --------------------------------------------------------------- TLS

    /// The PEM file of the throwaway CA that signs the HTTPS servers'
    /// certificates (made on first use, gone with the `Net`).
    pub fn ca(&self) -> PathBuf {
        let mut ca = self.ca.lock().unwrap();
        if let Some(p) = &*ca {
            return p.clone();
        }
        let (pem, key) = (self.dir.join("ca.pem"), self.dir.join("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=confine test CA {}", self.tag),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path(&key),
            "-out",
            path(&pem),
        ]);
        // Readable by the agent's uid and by a confined proxy alike.
        set_mode(&self.dir, 0o755);
        set_mode(&pem, 0o644);
        *ca = Some(pem.clone());
        pem
    }

    /// A server configuration with a certificate for `names`, signed by
    /// the CA. The ring provider is named explicitly: the process-wide
    /// default may be ambiguous once other crates enable another one.
    fn tls_config(&self, names: &[&str]) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        assert!(!names.is_empty(), "a certificate needs at least one name");
        let ca = self.ca();
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let base = self.dir.join(format!("leaf-{n}"));
        let (key, csr, cert, ext) = (
            base.with_extension("key"),
            base.with_extension("csr"),
            base.with_extension("pem"),
            base.with_extension("ext"),
        );
        let san: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
                 subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
                san.join(",")
            ),
        )
        .unwrap();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={}", names[0]),
            "-keyout",
            path(&key),
            "-out",
            path(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&ca),
            "-CAkey",
            path(&self.dir.join("ca.key")),
            "-set_serial",
            &format!("{}", super::unique() >> 2),
            "-days",
            "2",
            "-extfile",
            path(&ext),
            "-out",
            path(&cert),
        ]);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        // The server speaks HTTP/1.1 only; a client offering h2 falls back.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    // ------------------------------------------------------- leftovers

    /// What `Net`s of this process that are no longer alive left behind:
    /// namespaces, `/etc/netns` directories, interfaces in the host's
    /// namespace, certificate directories. Empty when every drop cleaned
    /// up.
    pub fn leftovers() -> Vec<String> {
        let mine = format!("{PREFIX}{}-", std::process::id());
        let live = LIVE.lock().unwrap().clone();
        // A tag names its directory; TAG-c, TAG-u its namespaces; TAGc,
        // TAGu its veth ends.
        let ours = |name: &str, tag: &str| {
            name.strip_prefix(tag)
                .is_some_and(|r| ["", "-c", "-u", "c", "u"].contains(&r))
        };
        let dead = |name: &str| name.starts_with(&mine) && !live.iter().any(|t| ours(name, t));
        let mut out = Vec::new();
        for dir in [RUN_NETNS, ETC_NETNS, env!("CARGO_TARGET_TMPDIR")] {
            for name in dir_names(Path::new(dir)) {
                if dead(&name) {
                    out.push(format!("{dir}/{name}"));
                }
            }
        }
        let links = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&links.stdout).lines() {
            // "7: NAME@PEER: <FLAGS> ..."
            let name = line.split(':').nth(1).unwrap_or("").trim();
            let name = name.split('@').next().unwrap_or("");
            if dead(name) {
                out.push(format!("link {name}"));
            }
        }
        out
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.servers.stop();
        for mut child in self.children.lock().unwrap().drain(..) {
            // Our own unreaped child leads the group: its id can't have
            // been reused, and the group holds only what it started.
            // SAFETY: kill with integer arguments.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
        for ns in [&self.client, &self.upstream] {
            if Path::new(RUN_NETNS).join(ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
        let _ = fs::remove_dir_all(Path::new(ETC_NETNS).join(&self.client));
        // /etc/netns itself only if nothing else is in it now.
        let _ = fs::remove_dir(ETC_NETNS);
        let _ = fs::remove_dir_all(&self.dir);
        LIVE.lock().unwrap().remove(&self.tag);
    }
}

/// `ip ARGS`, which must succeed.
fn ip_cmd(args: &[&str]) {
    let o = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        super::show(&o)
    );
}

/// `openssl ARGS`, which must succeed.
fn openssl(args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        o.status.success(),
        "openssl {}: {}",
        args.join(" "),
        super::show(&o)
    );
}

fn netns_exec(ns: &str, cmd: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .args(cmd)
        .env("PATH", super::PATH);
    c
}

fn path(p: &Path) -> &str {
    p.to_str().expect("harness paths are UTF-8")
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn dir_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the namespaces and directories of test processes that died
/// without dropping their `Net` (killed, say), so they don't pile up.
fn remove_stale() {
    for dir in [RUN_NETNS, ETC_NETNS, env!("CARGO_TARGET_TMPDIR")] {
        for name in dir_names(Path::new(dir)) {
            let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if dir == RUN_NETNS {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            } else {
                let _ = fs::remove_dir_all(Path::new(dir).join(&name));
            }
        }
    }
}

// ------------------------------------------------------------- threads

/// The server threads of one `Net` and the connections they serve, so
/// Drop can stop them all: a stop flag the accept loops poll, and a
/// shutdown of every connection, which wakes a thread blocked on it.
#[derive(Default)]
struct Servers {
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    conns: Mutex<Vec<TcpStream>>,
}

impl Servers {
    fn thread(&self, f: impl FnOnce() + Send + 'static) {
        self.threads.lock().unwrap().push(std::thread::spawn(f));
    }

    /// Accepts on `l` (non-blocking) until stopped; each connection is
    /// handled on a thread of its own.
    fn serve(
        self: &Arc<Self>,
        l: TcpListener,
        handle: impl Fn(TcpStream, &Arc<Servers>) + Send + Sync + 'static,
    ) {
        let servers = self.clone();
        let handle = Arc::new(handle);
        self.thread(move || {
            while !servers.stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let _ = s.set_nodelay(true);
                        servers.conns.lock().unwrap().push(s.try_clone().unwrap());
                        let (h, sv) = (handle.clone(), servers.clone());
                        servers.thread(move || h(s, &sv));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(&l),
                    Err(_) => {}
                }
            }
        });
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        loop {
            for c in self.conns.lock().unwrap().iter() {
                let _ = c.shutdown(Shutdown::Both);
            }
            let threads: Vec<_> = self.threads.lock().unwrap().drain(..).collect();
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
        self.conns.lock().unwrap().clear();
    }
}

/// Waits up to one tick for `l` to have a connection to accept.
fn wait_readable(l: &TcpListener) {
    let mut pfd = libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd that lives across the call, for an fd we own.
    unsafe { libc::poll(&mut pfd, 1, TICK_MS) };
}

// ---------------------------------------------------------------- HTTP

/// One request an [`Http`] server got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: `/path` or, through a proxy that
    /// forwards absolute-form, `http://host/path`.
    pub target: String,
    /// The `Host` header, if any.
    pub host: Option<String>,
    /// The TLS server name, on an HTTPS server when the client sent one.
    pub sni: Option<String>,
    /// The connection's source address (the proxy's, through confine).
    pub peer: SocketAddr,
    /// Length of the body received (Content-Length bodies only).
    pub body_len: usize,
}

/// Handle of an HTTP or HTTPS server: its logs.
#[derive(Clone)]
pub struct Http {
    body: Arc<Vec<u8>>,
    requests: Arc<Mutex<Vec<Request>>>,
    /// TLS handshakes: the SNI each carried (None: no SNI), complete or not.
    handshakes: Arc<Mutex<Vec<Option<String>>>>,
}

impl Http {
    fn new(body: &str) -> Http {
        Http {
            body: Arc::new(body.as_bytes().to_vec()),
            requests: Arc::default(),
            handshakes: Arc::default(),
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The SNI of every TLS handshake begun so far, including those that
    /// failed (a client that rejected the certificate, say).
    pub fn handshakes(&self) -> Vec<Option<String>> {
        self.handshakes.lock().unwrap().clone()
    }

    fn handle(&self, s: TcpStream, tls: Option<&Arc<rustls::ServerConfig>>) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let peer = s
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        match tls {
            None => {
                let _ = self.exchange(&s, None, peer);
                // Closed now, as `Connection: close` says (the handle kept
                // for Drop would keep the socket open otherwise).
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            Some(config) => {
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, s);
                // Until the handshake is done or fails. The ClientHello is
                // processed before anything can fail on our side, so the
                // SNI is known either way (a client that rejects the
                // certificate, say).
                let mut done = Ok(());
                while done.is_ok() && tls.conn.is_handshaking() {
                    done = tls.conn.complete_io(&mut tls.sock).map(|_| ());
                }
                let sni = tls.conn.server_name().map(str::to_string);
                self.handshakes.lock().unwrap().push(sni.clone());
                if done.is_ok() && self.exchange(&mut tls, sni, peer).is_ok() {
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
                let _ = tls.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Reads one request, logs it, answers and closes (`Connection: close`).
    fn exchange(
        &self,
        mut s: impl Read + Write,
        sni: Option<String>,
        peer: SocketAddr,
    ) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            if buf.len() > 64 * 1024 {
                return Err(io::Error::other("request head too long"));
            }
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let mut host = None;
        let mut length = 0usize;
        let mut expect = false;
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "host" => host = Some(v.to_string()),
                "content-length" => length = v.parse().unwrap_or(0),
                "expect" => expect = v.eq_ignore_ascii_case("100-continue"),
                _ => {}
            }
        }
        if expect {
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        // Read the whole body: closing with unread data would reset the
        // connection and could cut off the answer.
        let mut got = buf.len() - head_end - 4;
        while got < length {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.requests.lock().unwrap().push(Request {
            method,
            target,
            host,
            sni,
            peer,
            body_len: got,
        });
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(&self.body)?;
        s.flush()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------------------ TCP sink

/// Handle of a TCP sink: what it received and sent.
#[derive(Clone, Default)]
pub struct Sink {
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    accepted: Arc<AtomicUsize>,
    /// Connections whose client closed its side (all received).
    ended: Arc<AtomicUsize>,
}

impl Sink {
    /// Bytes received so far, all connections together.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Bytes sent so far (written into the socket), all connections.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose client has closed (or reset) its side.
    pub fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for `n` connections to have ended, so that
    /// [`Sink::received`] is final for them.
    pub fn wait_ended(&self, n: usize, limit: Duration) -> bool {
        super::poll(limit, || self.ended() >= n)
    }

    fn handle(&self, s: TcpStream, send: u64, servers: &Arc<Servers>) {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        if send > 0 {
            let mut w = s.try_clone().unwrap();
            let sent = self.sent.clone();
            servers.thread(move || {
                let zeros = vec![0u8; 64 * 1024];
                let mut left = send;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    let Ok(n) = w.write(&zeros[..n]) else { break };
                    sent.fetch_add(n as u64, Ordering::SeqCst);
                    left -= n as u64;
                }
                let _ = w.shutdown(Shutdown::Write);
            });
        }
        let mut r = &s;
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.received.fetch_add(n as u64, Ordering::SeqCst);
        }
        self.ended.fetch_add(1, Ordering::SeqCst);
    }
}

// ----------------------------------------------------------------- DNS

/// One query a [`Dns`] server got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Lower case, without the final dot.
    pub name: String,
    /// 1 = A, 28 = AAAA, ...
    pub qtype: u16,
    pub tcp: bool,
}

/// Handle of a DNS server: its table and its query log.
#[derive(Clone, Default)]
pub struct Dns {
    table: Arc<Mutex<BTreeMap<String, Entry>>>,
    log: Arc<Mutex<Vec<Query>>>,
}

/// What the table holds for one name.
struct Entry {
    /// The answers in order; the last repeats.
    answers: Vec<Vec<Ipv4Addr>>,
    /// A queries answered so far.
    served: usize,
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const NXDOMAIN: u8 = 3;
const FORMERR: u8 = 1;
const NOTIMP: u8 = 4;

impl Dns {
    /// `name` answers these A records to every query (an empty list: the
    /// name exists, with no address).
    pub fn set(&self, name: &str, addrs: &[&str]) {
        self.sequence(name, &[addrs]);
    }

    /// `name` answers the first A query with `answers[0]`, the second with
    /// `answers[1]` and so on; the last repeats. Queries of other types
    /// (AAAA) get an empty answer and don't advance the sequence.
    pub fn sequence(&self, name: &str, answers: &[&[&str]]) {
        assert!(!answers.is_empty(), "{name}: no answers");
        let answers = answers
            .iter()
            .map(|a| {
                a.iter()
                    .map(|ip| {
                        ip.parse()
                            .unwrap_or_else(|_| panic!("{ip}: not an IPv4 address"))
                    })
                    .collect()
            })
            .collect();
        self.table
            .lock()
            .unwrap()
            .insert(normal(name), Entry { answers, served: 0 });
    }

    /// Every query so far, in order.
    pub fn queries(&self) -> Vec<Query> {
        self.log.lock().unwrap().clone()
    }

    /// How many queries (of any type, over either transport) named `name`.
    pub fn queried(&self, name: &str) -> usize {
        let name = normal(name);
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|q| q.name == name)
            .count()
    }

    fn handle_tcp(&self, mut s: TcpStream) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        loop {
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                return;
            }
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            if s.read_exact(&mut msg).is_err() {
                return;
            }
            let Some(reply) = self.answer(&msg, true) else {
                return;
            };
            let mut out = (reply.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&reply);
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }

    /// The reply to one query message, or None for something that isn't
    /// a query at all (too short, or a response).
    fn answer(&self, msg: &[u8], tcp: bool) -> Option<Vec<u8>> {
        if msg.len() < 12 || msg[2] & 0x80 != 0 {
            return None;
        }
        let opcode = (msg[2] >> 3) & 0x0f;
        let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
        let mut reply = msg[..12].to_vec();
        // QR, the query's opcode and RD, AA; RA; counts set below.
        reply[2] = 0x80 | (msg[2] & 0x79) | 0x04;
        reply[3] = 0x80;
        reply[6..12].fill(0);
        if opcode != 0 || qdcount != 1 {
            reply[3] |= NOTIMP;
            reply[4..6].fill(0);
            return Some(reply);
        }
        let Some((name, end)) = parse_name(msg, 12) else {
            reply[3] |= FORMERR;
            reply[4..6].fill(0);
            return Some(reply);
        };
        if msg.len() < end + 4 {
            reply[3] |= FORMERR;
            reply[4..6].fill(0);
            return Some(reply);
        }
        let qtype = u16::from_be_bytes([msg[end], msg[end + 1]]);
        let qclass = u16::from_be_bytes([msg[end + 2], msg[end + 3]]);
        self.log.lock().unwrap().push(Query {
            name: name.clone(),
            qtype,
            tcp,
        });
        reply.extend_from_slice(&msg[12..end + 4]);
        let addrs = {
            let mut table = self.table.lock().unwrap();
            match table.get_mut(&name) {
                None => None,
                Some(e) if qtype == TYPE_A && qclass == CLASS_IN => {
                    let a = e.answers[e.served.min(e.answers.len() - 1)].clone();
                    e.served += 1;
                    Some(a)
                }
                Some(_) => Some(Vec::new()),
            }
        };
        match addrs {
            None => reply[3] |= NXDOMAIN,
            Some(addrs) => {
                reply[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
                for a in addrs {
                    // A pointer to the question's name, A, IN, TTL 0 (so
                    // nothing caches it: the sequence is the test's to
                    // play), 4 bytes of address.
                    reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
                    reply.extend_from_slice(&a.octets());
                }
            }
        }
        Some(reply)
    }
}

/// A name as the table keys it.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The uncompressed name at `at` (questions aren't compressed) and the
/// offset after it.
fn parse_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).into_owned());
        at += len;
    }
    Some((normal(&labels.join(".")), at))
}

/// Writes a wheel of one module, `confine_probe` (`VALUE = argv[2]`), to
/// argv[1], with python's zipfile (RECORD with hashes, as pip checks it).
const WHEEL: &str = r#"
import base64, hashlib, sys, zipfile
files = {
    "confine_probe/__init__.py": f"VALUE = {sys.argv[2]!r}\n".encode(),
    "confine_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: confine-probe\nVersion: 1.0\n",
    "confine_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: confine-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += f"{name},sha256={digest},{len(data)}\n"
record += "confine_probe-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
    z.writestr("confine_probe-1.0.dist-info/RECORD", record)
"#;

// ----------------------------------------------------------- model API

/// What an [`Api`] server answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200, `application/json`, this body (with a Content-Length).
    Json(String),
    /// 200, `text/event-stream`, chunked: each event (its `data:` lines;
    /// the blank line is added) sent `gap` after the one before, the first
    /// at once; the time each was sent is logged ([`Api::sent`]).
    Events { events: Vec<String>, gap: Duration },
    /// A model answering `text` in the shape of the API the request's
    /// path names, with usage: the Anthropic Messages API (`/v1/messages`,
    /// and any path no other API claims), the OpenAI Responses API
    /// (`.../responses`) and Chat Completions (`.../chat/completions`),
    /// Gemini's `:generateContent` and `:streamGenerateContent` (and
    /// `:countTokens`). A stream of server-sent events where the client
    /// asks for one (`"stream":true` in the body, the Responses API
    /// always, `:streamGenerateContent`), JSON otherwise. Other OpenAI
    /// and Gemini paths (model lists) get a 404 in the provider's shape,
    /// as a client meets from a gateway that has no such listing.
    Model { text: String },
    /// `status` with a JSON body (with a Content-Length).
    Status { status: u16, body: String },
    /// Like `Events` without gaps, but the connection is closed after the
    /// last one without the chunked body's end: a stream cut short.
    Cut { events: Vec<String> },
    /// A model that first has the client's own shell tool run `command`,
    /// in the shape of the API the request names: Claude Code's `Bash`
    /// (a `tool_use` of the Messages API), Codex's `exec_command` (a
    /// `function_call` of the Responses API; `shell_command` when the
    /// request offers that and no `exec_command`), Gemini CLI's
    /// `run_shell_command` (a `functionCall`, not to its model router);
    /// and answers `text` once the request carries the tool's result (a
    /// `tool_result`, `function_call_output` or `functionResponse`).
    Tool { command: String, text: String },
    /// A model of the Messages API answering aider with an edit in its
    /// SEARCH/REPLACE format that creates `path` holding `content`, until
    /// a request holds `done_when`; then `text`.
    Edit {
        path: String,
        content: String,
        text: String,
        done_when: String,
    },
}

impl Reply {
    /// What `Model` answers to a request for `target` with `body`.
    fn for_request(self, target: &str, body: &[u8]) -> Reply {
        // The body without blanks, to look for keys and values in it
        // however the client spaced its JSON.
        let compact = String::from_utf8_lossy(body).replace([' ', '\n'], "");
        // The text to answer, or the command to have the shell tool run.
        let (text, call) = match self {
            Reply::Model { text } => (text, None),
            Reply::Tool { command, text } => {
                let result = [
                    "\"type\":\"tool_result\"",
                    "\"type\":\"function_call_output\"",
                    "\"functionResponse\":",
                ]
                .iter()
                .any(|m| compact.contains(m));
                (text, (!result).then_some(command))
            }
            Reply::Edit {
                text, done_when, ..
            } if find(body, done_when.as_bytes()).is_some() => (text, None),
            Reply::Edit { path, content, .. } => (
                format!("{path}\n```\n<<<<<<< SEARCH\n=======\n{content}>>>>>>> REPLACE\n```\n"),
                None,
            ),
            other => return other,
        };
        let text = serde_json::Value::String(text).to_string();
        let streamed = compact.contains("\"stream\":true");
        let path = target.split('?').next().unwrap_or("");
        let ev = |name: &str, data: String| format!("event: {name}\ndata: {data}");
        let events = |events: Vec<String>| Reply::Events {
            events,
            gap: Duration::from_millis(5),
        };
        let not_found = |body: &str| Reply::Status {
            status: 404,
            body: body.into(),
        };
        if path.ends_with("/responses") && body.is_empty() {
            // Codex first asks for a WebSocket (a GET with `Upgrade`,
            // which confine's route doesn't carry); refused, it falls
            // back to a stream over HTTPS.
            return Reply::Status {
                status: 405,
                body:
                    r#"{"error":{"message":"method not allowed","type":"invalid_request_error"}}"#
                        .into(),
            };
        }
        if path.ends_with("/responses") {
            if let Some(command) = call {
                return events(Reply::function_call(&command, &compact));
            }
            // What Codex reads: the item when it is done, and the end with
            // the response's id and usage.
            let item = format!(
                r#"{{"type":"message","id":"msg_test","status":"completed","role":"assistant","content":[{{"type":"output_text","text":{text},"annotations":[]}}]}}"#
            );
            let response = |status: &str, usage: &str| {
                format!(
                    r#"{{"id":"resp_test","object":"response","created_at":1,"status":"{status}","model":"gpt-test","output":[],"usage":{usage}}}"#
                )
            };
            return events(vec![
                ev("response.created", format!(r#"{{"type":"response.created","sequence_number":0,"response":{}}}"#, response("in_progress", "null"))),
                ev("response.output_item.added", r#"{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"message","id":"msg_test","status":"in_progress","role":"assistant","content":[]}}"#.into()),
                ev("response.output_text.delta", format!(r#"{{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_test","output_index":0,"content_index":0,"delta":{text}}}"#)),
                ev("response.output_item.done", format!(r#"{{"type":"response.output_item.done","sequence_number":3,"output_index":0,"item":{item}}}"#)),
                ev("response.completed", format!(r#"{{"type":"response.completed","sequence_number":4,"response":{}}}"#, response("completed", r#"{"input_tokens":11,"input_tokens_details":{"cached_tokens":0},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}"#))),
            ]);
        }
        if path.ends_with("/chat/completions") {
            if !streamed {
                return Reply::Json(format!(
                    r#"{{"id":"chatcmpl-test","object":"chat.completion","created":1,"model":"gpt-test","choices":[{{"index":0,"message":{{"role":"assistant","content":{text}}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}}}"#
                ));
            }
            let chunk = |delta: &str, finish: &str, usage: &str| {
                format!(
                    r#"data: {{"id":"chatcmpl-test","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}],"usage":{usage}}}"#
                )
            };
            return events(vec![
                chunk(r#"{"role":"assistant","content":""}"#, "null", "null"),
                chunk(&format!(r#"{{"content":{text}}}"#), "null", "null"),
                chunk(
                    "{}",
                    r#""stop""#,
                    r#"{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}"#,
                ),
                "data: [DONE]".into(),
            ]);
        }
        if path.contains("/models/") && path.contains(':') {
            let method = path.rsplit(':').next().unwrap_or("");
            // A request for JSON is Gemini CLI's model router, which
            // retries until the text is the object it asked for.
            let wants_json = compact.contains("\"responseMimeType\":\"application/json\"");
            let part = match call {
                _ if wants_json => format!(
                    r#"{{"text":{}}}"#,
                    serde_json::Value::String(
                        r#"{"complexity_reasoning":"a greeting","complexity_score":5}"#.into(),
                    )
                ),
                Some(command) => serde_json::json!({
                    "functionCall": {"name": "run_shell_command", "args": {"command": command}}
                })
                .to_string(),
                None => format!(r#"{{"text":{text}}}"#),
            };
            let chunk = format!(
                r#"{{"candidates":[{{"content":{{"parts":[{part}],"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":8,"candidatesTokenCount":3,"totalTokenCount":11}},"modelVersion":"gemini-test"}}"#
            );
            return match method {
                "streamGenerateContent" => events(vec![format!("data: {chunk}")]),
                "generateContent" => Reply::Json(chunk),
                "countTokens" => Reply::Json(r#"{"totalTokens":8}"#.into()),
                _ => not_found(
                    r#"{"error":{"code":404,"message":"not served by the test upstream","status":"NOT_FOUND"}}"#,
                ),
            };
        }
        if path.ends_with("/models") || path.contains("/models/") {
            return not_found(
                r#"{"error":{"message":"not served by the test upstream","type":"invalid_request_error","code":"not_found"}}"#,
            );
        }
        if let Some(command) = call {
            return Reply::tool_use(&command, streamed);
        }
        if !streamed {
            return Reply::Json(format!(
                r#"{{"id":"msg_test","type":"message","role":"assistant","model":"claude-test","content":[{{"type":"text","text":{text}}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":7,"output_tokens":3}}}}"#
            ));
        }
        events(vec![
            ev("message_start", r#"{"type":"message_start","message":{"id":"msg_test","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":1}}}"#.into()),
            ev("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.into()),
            ev("content_block_delta", format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}}"#)),
            ev("content_block_stop", r#"{"type":"content_block_stop","index":0}"#.into()),
            ev("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}"#.into()),
            ev("message_stop", r#"{"type":"message_stop"}"#.into()),
        ])
    }
}

impl Reply {
    /// The events of a Responses API answer that calls Codex's shell tool
    /// with `command`: the one the request (`compact`, without blanks)
    /// offers, `exec_command` first.
    fn function_call(command: &str, compact: &str) -> Vec<String> {
        let offers = |name: &str| compact.contains(&format!("\"name\":\"{name}\""));
        // Codex's default model lists no shell tool of its own (it
        // reaches them from JavaScript) yet runs an `exec_command` call.
        let (name, args) = if offers("shell_command") && !offers("exec_command") {
            ("shell_command", serde_json::json!({ "command": command }))
        } else {
            ("exec_command", serde_json::json!({ "cmd": command }))
        };
        let item = serde_json::json!({
            "type": "function_call", "id": "fc_test", "call_id": "call_test",
            "name": name, "arguments": args.to_string(), "status": "completed",
        });
        let response = |status: &str, usage: serde_json::Value| {
            serde_json::json!({
                "id": "resp_tool", "object": "response", "created_at": 1, "status": status,
                "model": "gpt-test", "output": [], "usage": usage,
            })
        };
        let ev = |data: serde_json::Value| {
            format!(
                "event: {}\ndata: {data}",
                data["type"].as_str().unwrap_or("")
            )
        };
        vec![
            ev(serde_json::json!({
                "type": "response.created", "sequence_number": 0,
                "response": response("in_progress", serde_json::Value::Null),
            })),
            ev(serde_json::json!({
                "type": "response.output_item.done", "sequence_number": 1,
                "output_index": 0, "item": item,
            })),
            ev(serde_json::json!({
                "type": "response.completed", "sequence_number": 2,
                "response": response("completed", serde_json::json!({
                    "input_tokens": 11, "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 15,
                })),
            })),
        ]
    }

    /// An Anthropic answer calling the `Bash` tool with `command`,
    /// streamed or not.
    fn tool_use(command: &str, streamed: bool) -> Reply {
        let input = serde_json::json!({ "command": command }).to_string();
        if !streamed {
            return Reply::Json(format!(
                r#"{{"id":"msg_tool","type":"message","role":"assistant","model":"claude-test","content":[{{"type":"tool_use","id":"toolu_test","name":"Bash","input":{input}}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{{"input_tokens":7,"output_tokens":3}}}}"#
            ));
        }
        let partial = serde_json::Value::String(input).to_string();
        let ev = |name: &str, data: String| format!("event: {name}\ndata: {data}");
        Reply::Events {
            events: vec![
                ev("message_start", r#"{"type":"message_start","message":{"id":"msg_tool","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":1}}}"#.into()),
                ev("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_test","name":"Bash","input":{}}}"#.into()),
                ev("content_block_delta", format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"input_json_delta","partial_json":{partial}}}}}"#)),
                ev("content_block_stop", r#"{"type":"content_block_stop","index":0}"#.into()),
                ev("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":3}}"#.into()),
                ev("message_stop", r#"{"type":"message_stop"}"#.into()),
            ],
            gap: Duration::from_millis(5),
        }
    }
}

/// One request an [`Api`] server got, whole.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub method: String,
    pub target: String,
    /// Every header in order, names lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which connection (0, 1, ...) of the server it came on.
    pub connection: usize,
}

impl ApiRequest {
    /// The values of header `name` (lower case).
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The whole request as text, to search for a value anywhere in it.
    pub fn text(&self) -> String {
        let mut t = format!("{} {}\n", self.method, self.target);
        for (k, v) in &self.headers {
            t.push_str(&format!("{k}: {v}\n"));
        }
        t.push_str(&String::from_utf8_lossy(&self.body));
        t
    }
}

/// Handle of a model API stand-in: its log.
#[derive(Clone)]
pub struct Api {
    reply: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<ApiRequest>>>,
    sent: Arc<Mutex<Vec<std::time::SystemTime>>>,
    handshakes: Arc<Mutex<Vec<bool>>>,
    connections: Arc<AtomicUsize>,
    /// While true, each request is logged and then waits to be answered.
    held: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl Api {
    /// From now on, requests are logged as they come and answered only
    /// after [`Api::release`]: the client is alive and waiting while the
    /// test looks at it.
    pub fn hold(&self) {
        *self.held.0.lock().unwrap() = true;
    }

    /// Answers the held requests and every later one at once.
    pub fn release(&self) {
        *self.held.0.lock().unwrap() = false;
        self.held.1.notify_all();
    }

    pub fn set_reply(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    pub fn requests(&self) -> Vec<ApiRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// When each event of every stream so far was written.
    pub fn sent(&self) -> Vec<std::time::SystemTime> {
        self.sent.lock().unwrap().clone()
    }

    /// TLS handshakes begun, and whether each completed.
    pub fn handshakes(&self) -> Vec<bool> {
        self.handshakes.lock().unwrap().clone()
    }

    fn handle(&self, s: TcpStream, config: &Arc<rustls::ServerConfig>) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(90)));
        let conn_no = self.connections.fetch_add(1, Ordering::SeqCst);
        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, s);
        let mut done = Ok(());
        while done.is_ok() && tls.conn.is_handshaking() {
            done = tls.conn.complete_io(&mut tls.sock).map(|_| ());
        }
        self.handshakes.lock().unwrap().push(done.is_ok());
        if done.is_err() {
            let _ = tls.sock.shutdown(Shutdown::Both);
            return;
        }
        let mut buf = Vec::new();
        while let Ok(Some(close)) = self.exchange(&mut tls, &mut buf, conn_no) {
            if close {
                break;
            }
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
        let _ = tls.sock.shutdown(Shutdown::Both);
    }

    /// One request and its answer; `Ok(None)` at a clean end of the
    /// connection, `Ok(Some(close))` after an answer.
    fn exchange(
        &self,
        s: &mut (impl Read + Write),
        buf: &mut Vec<u8>,
        connection: usize,
    ) -> io::Result<Option<bool>> {
        let mut chunk = [0u8; 16384];
        let head_end = loop {
            if let Some(i) = find(buf, b"\r\n\r\n") {
                break i;
            }
            if buf.len() > 256 * 1024 {
                return Err(io::Error::other("request head too long"));
            }
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        let close = get("connection").is_some_and(|v| v.contains("close"));
        let mut fill = |buf: &mut Vec<u8>, s: &mut dyn Read, want: usize| -> io::Result<()> {
            while buf.len() < want {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok(())
        };
        let mut body = Vec::new();
        if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(i) = find(buf, b"\r\n") {
                        break i;
                    }
                    let want = buf.len() + 1;
                    fill(buf, s, want)?;
                };
                let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| io::Error::other("bad chunk size"))?;
                buf.drain(..line_end + 2);
                fill(buf, s, size + 2)?;
                body.extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            fill(buf, s, n)?;
            body.extend(buf.drain(..n));
        }
        let reply = self
            .reply
            .lock()
            .unwrap()
            .clone()
            .for_request(&target, &body);
        let head_only = method == "HEAD";
        self.requests.lock().unwrap().push(ApiRequest {
            method,
            target,
            headers,
            body,
            connection,
        });
        {
            // Bounded, so a test that fails while holding doesn't hang
            // the server's threads at its end.
            let (held, cv) = &*self.held;
            let h = held.lock().unwrap();
            let _ = cv
                .wait_timeout_while(h, Duration::from_secs(60), |h| *h)
                .unwrap();
        }
        if head_only {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
            s.flush()?;
            return Ok(Some(close));
        }
        match reply {
            Reply::Json(b) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                );
                s.write_all(head.as_bytes())?;
                s.write_all(b.as_bytes())?;
                s.flush()?;
            }
            Reply::Events { events, gap } => {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                s.flush()?;
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        std::thread::sleep(gap);
                    }
                    let data = format!("{e}\n\n");
                    s.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
                    s.flush()?;
                    self.sent.lock().unwrap().push(std::time::SystemTime::now());
                }
                s.write_all(b"0\r\n\r\n")?;
                s.flush()?;
            }
            Reply::Cut { events } => {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                for e in &events {
                    let data = format!("{e}\n\n");
                    s.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
                }
                s.flush()?;
                return Err(io::Error::other("the stream is cut here"));
            }
            Reply::Status { status, body } => {
                let head = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes())?;
                s.write_all(body.as_bytes())?;
                s.flush()?;
            }
            Reply::Model { .. } | Reply::Tool { .. } | Reply::Edit { .. } => {
                unreachable!("answered as JSON or events")
            }
        }
        Ok(Some(close))
    }
}
