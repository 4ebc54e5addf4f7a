//! The agent: the last fork, already confined exactly like the init it came
//! from. It only undoes what the launcher's own process state would leak
//! into the command (blocked signals, ignored SIGPIPE), moves to its working
//! directory and execs. Nothing here allocates (DESIGN.md §4 step 12).

use std::ffi::CString;
use std::os::fd::RawFd;

use super::report;

/// Pointers for execve, built by the supervisor before any fork.
pub struct ExecArgs {
    pub argv: Vec<*const libc::c_char>,
    pub envp: Vec<*const libc::c_char>,
    /// Where to try the command, in order (PATH search done in advance).
    pub candidates: Vec<CString>,
    pub argv0: CString,
    pub cwd: CString,
}

/// Exit status for "found but may not be executed".
pub const EXIT_CANNOT_EXEC: u8 = 126;
/// Exit status for "not found".
pub const EXIT_NOT_FOUND: u8 = 127;

/// Signal dispositions and the mask back to the defaults a freshly exec'd
/// program expects. The raw syscall, because glibc's sigaction refuses the
/// signals it reserves (32, 33), and an ignored one would still be inherited.
fn reset_signals() {
    // The kernel's struct sigaction: handler, flags, restorer, mask.
    #[repr(C)]
    struct KSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let dfl = KSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: dfl is a valid kernel sigaction of the size passed (8 is
        // the kernel's sigset size); a NULL old action is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KSigaction,
                std::ptr::null_mut::<KSigaction>(),
                8usize,
            )
        };
    }
    // SAFETY: an empty set, fully initialized by sigemptyset.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Execs the command; never returns. On failure reports on `err` and exits
/// with 126 or 127.
pub fn exec(args: &ExecArgs, err: RawFd) -> ! {
    reset_signals();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // SAFETY: cwd is a valid C string.
    if unsafe { libc::chdir(args.cwd.as_ptr()) } != 0 {
        report::refused(err, "chdir", "can't enter the working directory");
        // SAFETY: _exit ends the process without running anything else.
        unsafe { libc::_exit(125) };
    }
    let mut saw_eacces = 0;
    let mut last = libc::ENOENT;
    for path in &args.candidates {
        // SAFETY: path, argv and envp are NUL-terminated and argv/envp are
        // NULL-terminated arrays of pointers into CStrings the plan owns,
        // alive for as long as this process.
        unsafe { libc::execve(path.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr()) };
        let e = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOENT);
        // Like execvp: keep searching past directories where it isn't.
        match e {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => saw_eacces = e,
            _ => {
                last = e;
                break;
            }
        }
        last = e;
    }
    if saw_eacces != 0 && (last == libc::ENOENT || last == libc::ENOTDIR) {
        last = saw_eacces;
    }
    let code = if last == libc::ENOENT || last == libc::ENOTDIR {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXEC
    };
    report::exec_failed(err, code, args.argv0.as_bytes(), last);
    // SAFETY: as above.
    unsafe { libc::_exit(code as i32) }
}
