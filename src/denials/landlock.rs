//! Landlock denials: what the host would need for confine to report them,
//! for `probe`.
//!
//! Landlock reports a denial only to the kernel's audit (records 1423
//! `AUDIT_LANDLOCK_ACCESS` and 1424 `AUDIT_LANDLOCK_DOMAIN`, ABI 7, Linux
//! 6.15), only while audit is enabled, and for an exec'd program only when
//! its domain was made with LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON. A
//! reader of the records needs CAP_AUDIT_READ (the multicast group
//! AUDIT_NLGRP_READLOG of NETLINK_AUDIT), in the initial user namespace.
//! This build checks those conditions but doesn't read the records yet, so
//! `probe` names what is missing and [`Source`] has no value.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A reader of the audit multicast group (none in this build).
pub(crate) enum Source {}

impl Source {
    pub(crate) fn fds(&self, _out: &mut Vec<libc::pollfd>) {
        match *self {}
    }

    pub(crate) fn ready(
        &mut self,
        _fds: &[libc::pollfd],
        _book: &mut super::Book,
        _audit: &crate::audit::Audit,
        _raw_tty: bool,
    ) {
        match *self {}
    }

    pub(crate) fn drain(&mut self, _book: &mut super::Book, _audit: &crate::audit::Audit) {
        match *self {}
    }
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
    Err("audit is on, but this build of confine doesn't read Landlock's audit records yet".into())
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
