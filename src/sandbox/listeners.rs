//! The egress proxy's front doors inside the sandbox (DESIGN.md §9): the
//! listening sockets, created by the init in the sandbox's own network
//! namespace before the agent starts, and handed to the proxy outside. A
//! socket stays in the namespace it was made in, so the proxy accepts the
//! agent's connections there and dials out from the host's; no helper
//! process runs inside.
//!
//! Made while the init still holds CAP_NET_BIND_SERVICE in the namespace's
//! owner (53, 80, 443 and 22 are below 1024); all O_CLOEXEC, so none
//! reaches the agent.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The HTTP proxy's port on 127.0.0.1 (CONNECT and absolute-form).
pub const HTTP_PORT: u16 = 3128;
/// The DNS stub's port on 127.0.0.1 (UDP and TCP).
pub const DNS_PORT: u16 = 53;
/// How many connections may wait to be accepted, per listener.
const BACKLOG: libc::c_int = 1024;

/// The sockets, in the order [`Listeners::into_fds`] gives them.
#[derive(Debug)]
pub struct Listeners {
    pub http: TcpListener,
    pub dns_udp: UdpSocket,
    pub dns_tcp: TcpListener,
    /// 0.0.0.0:P for each port the policy allows, in `ports` order: the
    /// stub's fake addresses are on `lo`, so a connection to one of them
    /// lands here, and its local address says which host it was for.
    pub transparent: Vec<TcpListener>,
}

/// Why a listener couldn't be made: which, and the errno.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ListenError {
    pub what: String,
    #[source]
    pub source: io::Error,
}

impl Listeners {
    /// Makes them all in the calling process's network namespace; `ports`
    /// are the transparent listeners' (each once, none of them 53 or
    /// [`HTTP_PORT`], which the plan refuses).
    ///
    /// # Errors
    /// The first socket that couldn't be made, and why.
    pub fn open(ports: &[u16]) -> Result<Listeners, ListenError> {
        let lo = Ipv4Addr::LOCALHOST;
        Ok(Listeners {
            http: tcp(lo, HTTP_PORT)?,
            dns_udp: udp(lo, DNS_PORT)?,
            dns_tcp: tcp(lo, DNS_PORT)?,
            transparent: ports
                .iter()
                .map(|&p| tcp(Ipv4Addr::UNSPECIFIED, p))
                .collect::<Result<_, _>>()?,
        })
    }

    /// All of them as descriptors: http, dns_udp, dns_tcp, then the
    /// transparent ones in order.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        let mut v: Vec<OwnedFd> = vec![self.http.into(), self.dns_udp.into(), self.dns_tcp.into()];
        v.extend(self.transparent.into_iter().map(OwnedFd::from));
        v
    }

    /// The inverse of [`Listeners::into_fds`]: `None` unless there are at
    /// least three, each the kind of socket its place says.
    pub fn from_fds(fds: Vec<OwnedFd>) -> Option<Listeners> {
        let mut it = fds.into_iter();
        let (http, udp, dns) = (it.next()?, it.next()?, it.next()?);
        let ok = is_listening_tcp(&http)
            && sock_type(&udp) == Some(libc::SOCK_DGRAM)
            && is_listening_tcp(&dns);
        let transparent: Vec<OwnedFd> = it.collect();
        if !ok || !transparent.iter().all(is_listening_tcp) {
            return None;
        }
        Some(Listeners {
            http: http.into(),
            dns_udp: udp.into(),
            dns_tcp: dns.into(),
            transparent: transparent.into_iter().map(TcpListener::from).collect(),
        })
    }
}

fn socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket with integer arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, ip: Ipv4Addr, port: u16) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads an int of the size given.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let a = SocketAddrV4::new(ip, port);
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sa is a valid sockaddr_in of the size given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn tcp(ip: Ipv4Addr, port: u16) -> Result<TcpListener, ListenError> {
    let what = || format!("TCP {ip}:{port}");
    let wrap = |source| ListenError {
        what: what(),
        source,
    };
    let fd = socket(libc::SOCK_STREAM).map_err(wrap)?;
    bind(&fd, ip, port).map_err(wrap)?;
    // SAFETY: listen with integer arguments on our socket.
    if unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) } != 0 {
        return Err(wrap(io::Error::last_os_error()));
    }
    Ok(fd.into())
}

fn udp(ip: Ipv4Addr, port: u16) -> Result<UdpSocket, ListenError> {
    let wrap = |source| ListenError {
        what: format!("UDP {ip}:{port}"),
        source,
    };
    let fd = socket(libc::SOCK_DGRAM).map_err(wrap)?;
    bind(&fd, ip, port).map_err(wrap)?;
    Ok(fd.into())
}

fn int_opt(fd: &OwnedFd, opt: libc::c_int) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into v.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

fn sock_type(fd: &OwnedFd) -> Option<libc::c_int> {
    int_opt(fd, libc::SO_TYPE)
}

fn is_listening_tcp(fd: &OwnedFd) -> bool {
    sock_type(fd) == Some(libc::SOCK_STREAM) && int_opt(fd, libc::SO_ACCEPTCONN) == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fds_come_back_as_the_listeners_they_were() {
        // Ports above 1024 in the test's own namespace: 53 and 3128 are
        // the sandbox's, made where they are free.
        let l = Listeners {
            http: tcp(Ipv4Addr::LOCALHOST, 0).unwrap(),
            dns_udp: udp(Ipv4Addr::LOCALHOST, 0).unwrap(),
            dns_tcp: tcp(Ipv4Addr::LOCALHOST, 0).unwrap(),
            transparent: vec![tcp(Ipv4Addr::LOCALHOST, 0).unwrap()],
        };
        let port = l.transparent[0].local_addr().unwrap().port();
        let back = Listeners::from_fds(l.into_fds()).unwrap();
        assert_eq!(back.transparent[0].local_addr().unwrap().port(), port);
        // Out of order: refused.
        let mut fds = back.into_fds();
        fds.swap(0, 1);
        assert!(Listeners::from_fds(fds).is_none());
    }
}
