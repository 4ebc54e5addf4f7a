//! Landlock denials, from the kernel's audit.
//!
//! Landlock reports a denial only to audit (records 1423
//! `AUDIT_LANDLOCK_ACCESS` and 1424 `AUDIT_LANDLOCK_DOMAIN`, ABI 7, Linux
//! 6.15), only while audit is enabled, and for an exec'd program only when
//! its domain was made with LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON. The
//! supervisor reads a copy of every record from the multicast group
//! AUDIT_NLGRP_READLOG of NETLINK_AUDIT, which needs CAP_AUDIT_READ in the
//! initial user namespace: so only when confine runs as root. It opens the
//! socket before the sandbox exists, and the init asks for LOG_NEW_EXEC_ON
//! only when it is open.
//!
//! Joining: an access record names its domain by id; the domain record
//! that follows the first denial of a domain names the pid that made it,
//! and the sandbox's domain is the one its init made. Access records of
//! domains not known yet wait (a bounded number) for their domain record.
//! Other hosts' and sandboxes' records are dropped unparsed beyond the
//! domain id. What the kernel drops (a full socket buffer: ENOBUFS) is
//! counted as `lost`.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{Book, Denial, Kind};
use crate::audit::Audit;

/// What SECCOMP_FILTER_FLAG_LOG writes (`on_violation: log`).
const AUDIT_SECCOMP: u16 = 1326;
const AUDIT_LANDLOCK_ACCESS: u16 = 1423;
const AUDIT_LANDLOCK_DOMAIN: u16 = 1424;
/// The multicast group of every record (AUDIT_NLGRP_READLOG).
const AUDIT_NLGRP_READLOG: u32 = 1;
/// Datagrams read per turn of the supervisor's loop.
const PER_WAKEUP: usize = 256;
/// Access records of unknown domains kept waiting for their domain record.
const MAX_PENDING: usize = 256;
/// How long the end of a run waits for records still on their way.
const DRAIN: Duration = Duration::from_millis(1000);

/// The reader of the audit multicast group, for one sandbox.
pub(crate) struct Source {
    sock: OwnedFd,
    /// The init's pid (in the initial PID namespace, as audit has it).
    init: u32,
    /// The sandbox's domain, once its record was seen.
    domain: Option<u64>,
    /// The domain's deallocation was seen: no record of it can follow.
    ended: bool,
    pending: VecDeque<(u64, Denial)>,
    /// `on_violation: log`: the sandbox's PID namespace (`pid:[N]`), to
    /// join the kernel's seccomp records by their pid.
    seccomp_log: Option<std::path::PathBuf>,
}

impl Source {
    /// Opens the socket before the sandbox exists; `None` where audit
    /// can't be read (not root, ABI < 7, no CAP_AUDIT_READ, a container's
    /// user namespace): then nothing asks Landlock to log either.
    /// `seccomp_log`: also the kernel's seccomp records (`on_violation:
    /// log`), whatever the ABI.
    pub(crate) fn open(abi: u32, seccomp_log: bool) -> Option<OwnedFd> {
        // SAFETY: geteuid has no arguments and can't fail.
        if (abi < 7 && !seccomp_log) || unsafe { libc::geteuid() } != 0 || !initial_netns() {
            return None;
        }
        // SAFETY: socket with integer arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_AUDIT,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: socket just returned it; nothing else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_nl is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = 1 << (AUDIT_NLGRP_READLOG - 1);
        // SAFETY: a valid sockaddr_nl of the size passed.
        let r = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r != 0 {
            return None;
        }
        // Only Landlock's records reach the socket: on a host whose audit
        // is busy, the rest never wakes the supervisor.
        only_landlock(&sock, seccomp_log);
        // Room for bursts (root may exceed rmem_max); best effort.
        let size: libc::c_int = 4 << 20;
        // SAFETY: a valid int of the size passed.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        Some(sock)
    }

    /// `seccomp_log`: read the kernel's seccomp records of the sandbox
    /// too (the init's PID namespace is looked up now, while it lives).
    pub(crate) fn new(sock: OwnedFd, init: libc::pid_t, seccomp_log: bool) -> Source {
        Source {
            sock,
            init: init as u32,
            domain: None,
            ended: false,
            pending: VecDeque::new(),
            seccomp_log: seccomp_log
                .then(|| std::fs::read_link(format!("/proc/{init}/ns/pid")).ok())
                .flatten(),
        }
    }

    pub(crate) fn fds(&self, out: &mut Vec<libc::pollfd>) {
        out.push(libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
    }

    pub(crate) fn ready(
        &mut self,
        fds: &[libc::pollfd],
        book: &mut Book,
        audit: &Audit,
        raw_tty: bool,
    ) {
        let fd = self.sock.as_raw_fd();
        if fds.iter().any(|f| f.fd == fd && f.revents != 0) {
            self.read(book, audit, raw_tty);
        }
    }

    /// Reads what the socket holds, at most [`PER_WAKEUP`] datagrams;
    /// whether it is empty now.
    fn read(&mut self, book: &mut Book, audit: &Audit, raw_tty: bool) -> bool {
        let mut buf = vec![0u8; 9000];
        for _ in 0..PER_WAKEUP {
            // SAFETY: recv into a valid buffer of the size passed.
            let n = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENOBUFS) => {
                        book.lost(1);
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    _ => return true,
                }
            }
            if let Some((kind, text)) = messages(&buf[..n as usize]) {
                self.record(kind, text, book, audit, raw_tty);
            }
        }
        false
    }

    fn record(&mut self, kind: u16, text: &[u8], book: &mut Book, audit: &Audit, raw_tty: bool) {
        let Ok(text) = std::str::from_utf8(text) else {
            return;
        };
        // "audit(1733131200.123:456): domain=..."
        let body = text.split_once("): ").map_or(text, |(_, b)| b);
        if kind == AUDIT_SECCOMP {
            if let Some(d) = self.seccomp_record(body) {
                book.add(d, audit, raw_tty);
            }
            return;
        }
        let Some(domain) = field(body, "domain").and_then(|d| u64::from_str_radix(&d, 16).ok())
        else {
            return;
        };
        match kind {
            AUDIT_LANDLOCK_DOMAIN => {
                let status = field(body, "status").unwrap_or_default();
                if status == "allocated"
                    && self.domain.is_none()
                    && field(body, "pid").and_then(|p| p.parse::<u32>().ok()) == Some(self.init)
                {
                    self.domain = Some(domain);
                    let ours: Vec<Denial> = self
                        .pending
                        .iter()
                        .filter(|(d, _)| *d == domain)
                        .map(|(_, x)| x.clone())
                        .collect();
                    self.pending.clear();
                    for d in ours {
                        book.add(d, audit, raw_tty);
                    }
                } else if status == "deallocated" && self.domain == Some(domain) {
                    self.ended = true;
                }
            }
            AUDIT_LANDLOCK_ACCESS => {
                let d = denial(body);
                match self.domain {
                    Some(ours) if ours == domain => book.add(d, audit, raw_tty),
                    Some(_) => {}
                    None => {
                        if self.pending.len() == MAX_PENDING {
                            self.pending.pop_front();
                        }
                        self.pending.push_back((domain, d));
                    }
                }
            }
            _ => {}
        }
    }

    /// A seccomp record of a process in the sandbox (`on_violation: log`):
    /// a denylisted call the denylist let through, or one outside the
    /// allowlist (ENOSYS). Joined by the process's PID namespace, read
    /// while it lives; one already gone is not counted.
    fn seccomp_record(&self, body: &str) -> Option<Denial> {
        let ns = self.seccomp_log.as_ref()?;
        let pid: u32 = field(body, "pid")?.parse().ok()?;
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()? != *ns {
            return None;
        }
        let nr: u32 = field(body, "syscall")?.parse().ok()?;
        let code = u32::from_str_radix(field(body, "code")?.trim_start_matches("0x"), 16).ok()?;
        let mut d = Denial::new(Kind::Seccomp);
        d.syscall = Some(
            crate::syscalls::name_of(crate::syscalls::Arch::native(), nr)
                .map_or_else(|| format!("#{nr}"), str::to_string),
        );
        d.agent_pid = Some(pid);
        d.exe = path_field(body, "exe");
        d.reason = Some(
            if code & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_LOG {
                super::fix::LOGGED.to_string()
            } else {
                "not in the allowlist (ENOSYS)".to_string()
            },
        );
        Some(d)
    }

    /// The run has ended: reads what is still on its way. Records of a
    /// domain come before its deallocation record (emitted once its last
    /// process is gone), so where the domain had denials the wait ends
    /// there; else only what has already arrived is read. Bounded by
    /// [`DRAIN`].
    pub(crate) fn drain(&mut self, book: &mut Book, audit: &Audit) {
        let end = Instant::now() + DRAIN;
        loop {
            let empty = self.read(book, audit, false);
            let waiting = (self.domain.is_some() && !self.ended)
                || (self.domain.is_none() && !self.pending.is_empty());
            let left = end.saturating_duration_since(Instant::now());
            if !waiting || left.is_zero() {
                return;
            }
            if empty {
                let mut p = libc::pollfd {
                    fd: self.sock.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as libc::c_int + 1) };
            }
        }
    }
}

/// A socket filter keeping records 1423 and 1424 only (best effort: the
/// parser checks the type anyway). Classic BPF reads packet data big-endian,
/// and the netlink header is in host order, hence the byte swap.
fn only_landlock(sock: &OwnedFd, seccomp_log: bool) {
    let be = |t: u16| u32::from(u16::from_be_bytes(t.to_ne_bytes()));
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    // With seccomp's records too, the first comparison takes 1326 and
    // accepts; without, it can never match.
    let seccomp = if seccomp_log {
        be(AUDIT_SECCOMP)
    } else {
        be(AUDIT_LANDLOCK_ACCESS)
    };
    let prog = [
        // ld h [4]: nlmsg_type
        ins((libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16, 0, 0, 4),
        ins(
            (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            3,
            0,
            seccomp,
        ),
        ins(
            (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            2,
            0,
            be(AUDIT_LANDLOCK_ACCESS),
        ),
        ins(
            (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            1,
            0,
            be(AUDIT_LANDLOCK_DOMAIN),
        ),
        ins((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, 0),
        ins((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, u32::MAX),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: a valid sock_fprog pointing at `prog`, which outlives the
    // call; the kernel copies the program.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
}

/// Whether confine runs in the initial network namespace: the kernel
/// multicasts audit records only there, and a socket elsewhere binds but
/// never hears a thing. Known by the namespace's inode where the kernel
/// gives the initial one a fixed number (PROC_NET_INIT_INO), else by
/// comparing with PID 1's; unknown counts as no.
fn initial_netns() -> bool {
    const PROC_NET_INIT_INO: &str = "net:[4026531833]";
    let own = std::fs::read_link("/proc/self/ns/net");
    match own {
        Ok(own) if own.as_os_str() == PROC_NET_INIT_INO => true,
        Ok(own) => std::fs::read_link("/proc/1/ns/net").is_ok_and(|one| one == own),
        Err(_) => false,
    }
}

/// The record of one datagram: (type, payload). kauditd sends one record
/// per datagram, and its header's length counts the payload only (an
/// old quirk of audit), so the header's length isn't trusted.
fn messages(buf: &[u8]) -> Option<(u16, &[u8])> {
    if buf.len() < 16 {
        return None;
    }
    Some((u16::from_ne_bytes([buf[4], buf[5]]), trim(&buf[16..])))
}

fn trim(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// The value of `key=` in an audit record: a quoted string, hex (audit's
/// encoding of an untrusted string with odd bytes), or a bare word.
fn field(body: &str, key: &str) -> Option<String> {
    let at = body
        .match_indices(&format!("{key}="))
        .find(|(i, _)| *i == 0 || body.as_bytes()[i - 1] == b' ')?
        .0;
    let v = &body[at + key.len() + 1..];
    if let Some(q) = v.strip_prefix('"') {
        return q.split_once('"').map(|(s, _)| s.to_string());
    }
    let word = v.split(' ').next().unwrap_or_default();
    Some(word.to_string())
}

/// A path field: quoted as is, or hex-encoded.
fn path_field(body: &str, key: &str) -> Option<String> {
    let quoted = body.contains(&format!("{key}=\""));
    let v = field(body, key)?;
    if quoted || v.len() % 2 != 0 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(v);
    }
    let bytes: Option<Vec<u8>> = (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v[i..i + 2], 16).ok())
        .collect();
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// An access record as a denial.
fn denial(body: &str) -> Denial {
    let mut d = Denial::new(Kind::Landlock);
    d.access = field(body, "blockers").map(|b| b.split(',').map(str::to_string).collect());
    d.path = path_field(body, "path").or_else(|| path_field(body, "name"));
    if let Some(addr) = field(body, "daddr").or_else(|| field(body, "saddr")) {
        d.host = Some(addr);
        d.port = field(body, "dest")
            .or_else(|| field(body, "src"))
            .and_then(|p| p.parse().ok());
    }
    d
}

/// Whether this host could report Landlock denials, and if not, why.
pub fn status(abi: u32) -> Result<(), String> {
    if abi < 7 {
        return Err(format!(
            "Landlock ABI {abi}: denials are logged from ABI 7 (Linux 6.15)"
        ));
    }
    // SAFETY: geteuid has no arguments and can't fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("reading the kernel's audit records needs root (CAP_AUDIT_READ)".into());
    }
    if !initial_netns() {
        return Err(
            "confine runs outside the initial network namespace, where the kernel sends no audit records"
                .into(),
        );
    }
    if Source::open(abi, false).is_none() {
        return Err(
            "the audit multicast group can't be joined (CAP_AUDIT_READ in the initial user namespace)"
                .into(),
        );
    }
    match audit_enabled() {
        Ok(true) => {}
        Ok(false) => {
            return Err(
                "the kernel's audit is off (auditctl -e 1, or boot with audit=1), and Landlock logs nothing without it"
                    .into(),
            )
        }
        Err(e) => return Err(format!("the kernel's audit can't be queried: {e}")),
    }
    Ok(())
}

/// AUDIT_GET over NETLINK_AUDIT: whether audit is enabled.
fn audit_enabled() -> std::io::Result<bool> {
    const AUDIT_GET: u16 = 1000;
    // SAFETY: socket with integer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_AUDIT,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: socket just returned it; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: a valid timeval of the size passed.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let req: [u32; 4] = [
        16,
        u32::from(AUDIT_GET) | ((libc::NLM_F_REQUEST as u32) << 16),
        1,
        0,
    ];
    // SAFETY: send of a valid 16-byte buffer (an nlmsghdr) to the kernel.
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), 16, 0) } != 16 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = [0u32; 64];
    // SAFETY: recv into a valid buffer of the size passed.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 256, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    let kind = buf[1] & 0xffff;
    if kind == u32::from(AUDIT_GET) && n >= 16 + 8 {
        // struct audit_status: mask, enabled, ...
        return Ok(buf[5] != 0);
    }
    if kind == libc::NLMSG_ERROR as u32 && n >= 20 {
        let errno = -(buf[4] as i32);
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    Err(std::io::Error::other("an unexpected answer to AUDIT_GET"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_records_parse() {
        let d = denial(
            r#"domain=195ba459b blockers=fs.make_reg,fs.refer path="/usr/local" dev="vda2" ino=365"#,
        );
        assert_eq!(d.path.as_deref(), Some("/usr/local"));
        assert_eq!(
            d.access,
            Some(vec!["fs.make_reg".to_string(), "fs.refer".to_string()])
        );
        let d = denial("domain=1 blockers=fs.read_file path=2F746D702F612062 dev=\"vda\" ino=1");
        assert_eq!(d.path.as_deref(), Some("/tmp/a b"));
        let d = denial("domain=1 blockers=net.connect_tcp daddr=127.0.0.1 dest=80");
        assert_eq!((d.host.as_deref(), d.port), (Some("127.0.0.1"), Some(80)));
        assert_eq!(
            field(
                "domain=a status=allocated mode=enforcing pid=42 uid=0",
                "pid"
            )
            .as_deref(),
            Some("42")
        );
        assert_eq!(field("xpid=1 pid=2", "pid").as_deref(), Some("2"));
    }
}
