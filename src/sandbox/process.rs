//! The calling process's own state, where a sandbox could inherit or reach
//! what it mustn't: privileges confine was given by how it was exec'd
//! rather than by its caller, whether the process can be read and traced
//! through /proc (dumpable), which descriptors it holds, and which of the
//! standard descriptors may be handed to the agent.
//!
//! Plain system calls on the calling process; nothing here knows a plan.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

/// confine was exec'd with privileges its caller doesn't have: setuid,
/// setgid, or file capabilities. Every launch step would run with them, so
/// any local user who can run this copy would get them (a profile with
/// `user: root` gives the agent uid 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elevated {
    pub ruid: libc::uid_t,
    pub euid: libc::uid_t,
    pub rgid: libc::gid_t,
    pub egid: libc::gid_t,
}

impl fmt::Display for Elevated {
    /// Where the privilege comes from, e.g. `real uid 1000, effective uid 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ruid != self.euid {
            write!(f, "real uid {}, effective uid {}", self.ruid, self.euid)
        } else if self.rgid != self.egid {
            write!(f, "real gid {}, effective gid {}", self.rgid, self.egid)
        } else {
            write!(f, "uid {} with file capabilities", self.ruid)
        }
    }
}

/// Whether this process was exec'd with privileges its caller didn't have.
///
/// Real and effective ids that differ mean a setuid or setgid bit took
/// effect; the kernel's AT_SECURE flag also covers file capabilities
/// (which leave the ids alone) and is what the dynamic loader itself trusts.
/// Root running confine (or a user running it unprivileged) has neither.
pub fn elevated() -> Option<Elevated> {
    // SAFETY: these getters have no arguments and can't fail.
    let e = unsafe {
        Elevated {
            ruid: libc::getuid(),
            euid: libc::geteuid(),
            rgid: libc::getgid(),
            egid: libc::getegid(),
        }
    };
    // SAFETY: getauxval reads the auxiliary vector the kernel passed us; 0
    // when the entry is missing.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    (e.ruid != e.euid || e.rgid != e.egid || secure).then_some(e)
}

/// A new session with no controlling terminal (DESIGN.md §4 step 4): the
/// agent can't reach the launching terminal with TIOCSTI.
///
/// # Errors
/// The errno of `setsid`.
pub(crate) fn new_session() -> io::Result<()> {
    // SAFETY: setsid has no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SIGKILL when the parent dies (`PR_SET_PDEATHSIG`). Credential changes
/// reset it, so it is armed again after them; the caller checks afterwards
/// that the parent hadn't died already.
///
/// # Errors
/// The errno of `prctl`.
pub(crate) fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A cgroup namespace rooted at the cgroup the process is in now, which
/// hides the host's cgroup tree from it and its children.
///
/// # Errors
/// The errno of `unshare`.
pub(crate) fn enter_cgroup_namespace() -> io::Result<()> {
    // SAFETY: unshare with a flag only.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `PR_SET_NO_NEW_PRIVS`: no exec can grant privileges again (setuid bits,
/// file capabilities), and Landlock and seccomp may be applied unprivileged.
///
/// # Errors
/// The errno of `prctl`.
pub(crate) fn no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the process unreadable through /proc (not dumpable: environ,
/// mem, fd... need ptrace rights) and blanks the memory behind
/// /proc/PID/cmdline and /proc/PID/environ, which stay readable by anyone
/// of the same uid. For the sandbox's init, which shares the agent's uid:
/// nothing of the host environment or confine's command line may be
/// readable through /proc/1.
///
/// # Errors
/// prctl's errno; /proc/self/stat unreadable or without the argv and
/// environment bounds (then nothing could be blanked).
pub(crate) fn hide_identity() -> io::Result<()> {
    set_undumpable()?;
    // Into a buffer on the stack: the file is 52 numbers and a name of at
    // most 64 bytes, and read_to_string's size probe and growing reads cost
    // five more system calls.
    let mut buf = [0u8; 2048];
    let mut len = 0;
    let mut f = std::fs::File::open("/proc/self/stat")?;
    loop {
        match std::io::Read::read(&mut f, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if len == buf.len() {
            return Err(io::Error::other("/proc/self/stat is too long"));
        }
    }
    drop(f);
    // Fields after the command name, which may itself hold spaces or ')'.
    let rest = buf[..len]
        .iter()
        .rposition(|&b| b == b')')
        .map_or(&[][..], |i| &buf[i + 1..len]);
    let fields: Vec<usize> = rest
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .map(|f| {
            std::str::from_utf8(f)
                .ok()
                .and_then(|f| f.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    // arg_start..env_end are fields 48 to 51 (Linux 3.5); `rest` starts at
    // field 3. Without them nothing could be blanked: refuse.
    if fields.len() < 51 - 2 {
        return Err(io::Error::other(
            "no argv and environment bounds in /proc/self/stat",
        ));
    }
    let get = |n: usize| fields[n - 3];
    for (start, end) in [(get(48), get(49)), (get(50), get(51))] {
        if start != 0 && end > start && end - start < (1 << 24) {
            // SAFETY: [start, end) is this process's own argv or environment
            // block on its stack, as the kernel reports it; it is mapped and
            // writable, and nothing reads it after this point (the plan owns
            // copies of everything the agent needs).
            unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
        }
    }
    Ok(())
}

/// Makes the calling process not dumpable: /proc/PID/environ, mem, fd/...
/// and ptrace then need CAP_SYS_PTRACE, whatever the uid. A change of the
/// effective uid or gid resets this to `fs.suid_dumpable` (1 makes the
/// process dumpable again), so it is set again after every such change.
///
/// # Errors
/// The errno of `prctl`.
pub(crate) fn set_undumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every descriptor from `first` on close-on-exec, so none of them
/// reaches a program this process execs, while this process keeps using
/// the ones it still needs.
///
/// # Errors
/// The errno of `close_range` (Linux 5.11 for CLOSE_RANGE_CLOEXEC).
pub(crate) fn cloexec_from(first: RawFd) -> io::Result<()> {
    close_range(first as u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC)
}

/// Closes every descriptor except those in `keep`, with one `close_range`
/// per gap between them. Doesn't allocate.
///
/// # Errors
/// The errno of `close_range`; descriptors below the failing range are
/// closed already.
pub(crate) fn close_all_except(keep: &[RawFd]) -> io::Result<()> {
    // The smallest kept descriptor at or above `from`, again and again: no
    // allocation, and `keep` is a handful of descriptors.
    let mut from = 0u32;
    while let Some(k) = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&k| k >= from)
        .min()
    {
        if k > from {
            close_range(from, k - 1, 0)?;
        }
        match k.checked_add(1) {
            Some(next) => from = next,
            None => return Ok(()),
        }
    }
    close_range(from, u32::MAX, 0)
}

/// Makes `fd` the process's stdin, stdout and stderr where `which` says
/// (without O_CLOEXEC), closing whatever they were.
///
/// # Errors
/// The errno of `dup2`.
pub(crate) fn stdio_to(fd: &impl std::os::fd::AsRawFd, which: [bool; 3]) -> io::Result<()> {
    for std in (0..=2).filter(|&s| which[s as usize]) {
        // SAFETY: dup2 with integer arguments; `fd` is open.
        if unsafe { libc::dup2(fd.as_raw_fd(), std) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Closes 0, 1 and 2: what a process that has handed its standard streams
/// on (the init, once the agent runs) no longer needs.
pub(crate) fn close_stdio() {
    for fd in 0..=2 {
        // SAFETY: close with an integer argument; a descriptor that is
        // already closed gives EBADF, which changes nothing.
        unsafe { libc::close(fd) };
    }
}

fn close_range(first: u32, last: u32, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range with integer arguments only.
    if unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A standard descriptor the agent must not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnsafeStdio {
    pub fd: RawFd,
    /// `stdin`, `stdout` or `stderr`.
    pub name: &'static str,
    /// `fd 0`, `fd 1` or `fd 2`.
    pub at: &'static str,
    pub why: &'static str,
}

/// Checks that no standard descriptor would hand the agent a directory of
/// the host (an `O_PATH` descriptor included). Such a descriptor is a way
/// into the host's tree from outside the mount view, and the calls that
/// take a directory descriptor and a name (fchmodat, utimensat, fchownat,
/// setxattr through /proc/self/fd/N) aren't checked by Landlock: the
/// agent could change modes, times and extended attributes of the files
/// beneath it. `O_PATH` descriptors of other files are refused too: they
/// can't be read or written, so they serve only to reach their file.
///
/// A closed descriptor is fine (it stays closed).
///
/// # Errors
/// The first descriptor that may not be handed over, and why.
pub(crate) fn check_stdio() -> Result<(), UnsafeStdio> {
    for (fd, name, at) in [
        (0, "stdin", "fd 0"),
        (1, "stdout", "fd 1"),
        (2, "stderr", "fd 2"),
    ] {
        // SAFETY: an all-zero stat is valid and fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            continue;
        }
        let why = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            Some(
                "is a directory: the agent could change the modes, times and extended \
                 attributes of files beneath it, whatever the grants say; hint: redirect it \
                 from or to a file, or /dev/null",
            )
        } else {
            // SAFETY: fcntl F_GETFL only queries the descriptor.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            (flags != -1 && flags & libc::O_PATH != 0).then_some(
                "is an O_PATH descriptor, which can't be read or written and only lends \
                 the agent its file; hint: open it for reading or writing, or use /dev/null",
            )
        };
        if let Some(why) = why {
            return Err(UnsafeStdio { fd, name, at, why });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Runs `child` in a forked child (the test harness's other threads own
    /// descriptors too, and its stdio mustn't change) and asserts that it
    /// returned true. `child` must not allocate: another thread may hold
    /// the allocator's lock at the fork.
    fn in_child(child: impl FnOnce() -> bool) {
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = child();
            // SAFETY: ends the child without running the harness's code.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    fn is_open(fd: RawFd) -> bool {
        // SAFETY: F_GETFD only queries the descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags != -1
    }

    #[test]
    fn not_elevated_in_tests() {
        assert_eq!(elevated(), None);
    }

    #[test]
    fn elevation_says_where_it_comes_from() {
        let e = Elevated {
            ruid: 1000,
            euid: 0,
            rgid: 1000,
            egid: 1000,
        };
        assert_eq!(e.to_string(), "real uid 1000, effective uid 0");
        let g = Elevated {
            euid: 1000,
            egid: 0,
            ..e.clone()
        };
        assert_eq!(g.to_string(), "real gid 1000, effective gid 0");
        let c = Elevated { euid: 1000, ..e };
        assert_eq!(c.to_string(), "uid 1000 with file capabilities");
    }

    #[test]
    fn close_all_except_keeps_exactly_those() {
        let files: Vec<std::fs::File> = (0..3)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let [a, b, c] = [0, 1, 2].map(|i| files[i].as_raw_fd());
        in_child(|| {
            close_all_except(&[b, 0, b]).is_ok()
                && is_open(0)
                && is_open(b)
                && !is_open(1)
                && !is_open(a)
                && !is_open(c)
        });
        assert!(is_open(a) && is_open(c), "the parent's are untouched");
    }

    #[test]
    fn directories_and_o_path_are_not_stdio() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let dir = std::fs::File::open("/").unwrap();
        let path = std::ffi::CString::new("/dev/null").unwrap();
        // SAFETY: a NUL-terminated path.
        let opath = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        assert!(opath >= 0);
        let (null, dir) = (null.as_raw_fd(), dir.as_raw_fd());
        in_child(|| {
            let verdict = |fd: RawFd| {
                // SAFETY: dup2 with descriptors this child holds.
                unsafe { libc::dup2(fd, 1) };
                check_stdio().map_err(|e| (e.fd, e.name))
            };
            verdict(null).is_ok()
                && verdict(dir) == Err((1, "stdout"))
                && verdict(opath) == Err((1, "stdout"))
        });
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(opath) };
    }
}
