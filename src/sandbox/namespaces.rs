//! Namespaces: the sandbox's own PID, mount, network, IPC and UTS (and
//! cgroup) namespaces.
//!
//! The sandbox's first process is created with `clone(2)` and every
//! namespace flag at once, so it is PID 1 of the new PID namespace from its
//! first instruction: when it exits the kernel kills everything left inside,
//! which is what makes "nothing outlives the sandbox" hold even against a
//! process that double-forks and clears its own PDEATHSIG.
//!
//! Call order: [`clone_into`] in the supervisor (single-threaded), then, in
//! the child, [`loopback_up`] (network namespace only) and [`set_hostname`].

use std::io;

/// Which namespaces to create.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Namespaces {
    /// A user namespace, created first by the kernel so it owns the others:
    /// how an unprivileged caller gets the capabilities to build the rest.
    pub user: bool,
    pub mount: bool,
    pub net: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
}

impl Namespaces {
    fn flags(self) -> libc::c_int {
        let mut f = 0;
        for (on, flag) in [
            (self.user, libc::CLONE_NEWUSER),
            (self.mount, libc::CLONE_NEWNS),
            (self.net, libc::CLONE_NEWNET),
            (self.pid, libc::CLONE_NEWPID),
            (self.ipc, libc::CLONE_NEWIPC),
            (self.uts, libc::CLONE_NEWUTS),
            (self.cgroup, libc::CLONE_NEWCGROUP),
        ] {
            if on {
                f |= flag;
            }
        }
        f
    }

    /// Names, for `explain` and the audit log.
    pub(crate) fn names(self) -> Vec<&'static str> {
        [
            (self.user, "user"),
            (self.mount, "mount"),
            (self.net, "net"),
            (self.pid, "pid"),
            (self.ipc, "ipc"),
            (self.uts, "uts"),
            (self.cgroup, "cgroup"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n)
        .collect()
    }
}

/// Where the child of [`clone_into`] continues.
pub(crate) enum Cloned {
    Parent { pid: libc::pid_t },
    Child,
}

/// Forks into new namespaces (like `fork()`, sharing nothing but the
/// copy-on-write memory). The caller must be single-threaded.
///
/// # Errors
/// The errno of `clone`: EPERM without CAP_SYS_ADMIN, EINVAL for unsupported
/// namespaces, ENOSPC when a namespace limit is reached.
pub(crate) fn clone_into(ns: Namespaces) -> io::Result<Cloned> {
    let flags = ns.flags() | libc::SIGCHLD;
    // SAFETY: clone without CLONE_VM and with a NULL stack behaves like fork:
    // the child gets a copy-on-write copy of our single thread's memory and
    // continues here with a return value of 0. No other thread exists whose
    // locks the child could inherit held.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            pid: pid as libc::pid_t,
        }),
    }
}

/// Maps exactly one uid and one gid of the caller into the user namespace of
/// `pid`, identically (uid U inside is uid U outside), after denying
/// setgroups, which an unprivileged gid_map requires. Called by the parent:
/// a process can't map itself without privileges it doesn't have yet.
///
/// # Errors
/// Writing a /proc/PID file fails.
pub(crate) fn write_id_maps(pid: libc::pid_t, uid: u32, gid: u32) -> io::Result<()> {
    let base = format!("/proc/{pid}");
    let write = |file: &str, text: String| -> io::Result<()> {
        std::fs::write(format!("{base}/{file}"), text)
            .map_err(|e| io::Error::new(e.kind(), format!("writing {base}/{file}: {e}")))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1\n"))?;
    write("gid_map", format!("{gid} {gid} 1\n"))
}

/// Brings `lo` up in the current (new) network namespace with SIOCSIFFLAGS,
/// so `network: loopback` needs no netlink.
///
/// # Errors
/// Creating the socket or either ioctl failing.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket creation; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: fd is a socket we own and req a valid ifreq naming "lo"; the
    // kernel writes the flags into the union.
    let mut r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    if r == 0 {
        // SAFETY: the union's flags member was just set by SIOCGIFFLAGS.
        unsafe {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        }
        // SAFETY: as above, now setting the flags.
        r = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) };
    }
    let err = io::Error::last_os_error();
    // SAFETY: closing the socket we created.
    unsafe { libc::close(fd) };
    if r != 0 {
        return Err(err);
    }
    Ok(())
}

/// Sets the hostname of the current (new) UTS namespace, so the host's name
/// doesn't leak into the sandbox.
///
/// # Errors
/// The errno of `sethostname`.
/// The sandbox's hostname (its own UTS namespace, always).
pub const HOSTNAME: &str = "confine";

pub(crate) fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    let r = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
