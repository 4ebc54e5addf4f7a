//! The agent: the last child, already confined exactly like the init it came
//! from. It only undoes what the launcher's own process state would leak
//! into the command (blocked signals, ignored SIGPIPE), moves to its working
//! directory and execs. Nothing here allocates (DESIGN.md §4 step 12).
//!
//! It is started the way posix_spawn starts a child: sharing the init's
//! memory, with the init suspended until the execve (or the exit after a
//! failed one). Copying the init's page tables only for the execve to
//! discard them is most of what a fork costs here. Everything the kernel
//! keeps per process (credentials, Landlock domain, seccomp filters,
//! no_new_privs, signal dispositions, descriptors, working directory) is
//! still the agent's own copy, so what it changes stays its own.

use std::ffi::CString;
use std::os::fd::RawFd;

use super::channel;

/// Pointers for execve, built by the supervisor before any fork.
pub(crate) struct ExecArgs {
    pub argv: Vec<*const libc::c_char>,
    pub envp: Vec<*const libc::c_char>,
    /// Where to try the command, in order (PATH search done in advance).
    pub candidates: Vec<CString>,
    pub argv0: CString,
    pub cwd: CString,
    /// This fd is the sandbox's pty, the init's controlling terminal: the
    /// agent takes its foreground in a process group of its own (job
    /// control inside works, and Ctrl-Z stops it).
    pub foreground: Option<RawFd>,
}

/// Exit status for "found but may not be executed".
pub(crate) const EXIT_CANNOT_EXEC: u8 = 126;
/// Exit status for "not found".
pub(crate) const EXIT_NOT_FOUND: u8 = 127;

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

/// Room for [`exec`]'s frames (a 4 KiB report record is the largest) in
/// the agent before its execve.
pub(crate) const STACK_SIZE: usize = 64 * 1024;

/// What the agent's entry point gets from [`spawn`].
struct Start<'a> {
    args: &'a ExecArgs,
    err: RawFd,
}

/// The agent's stack until its execve: a mapping of its own with an
/// inaccessible guard page below it, so that an overflow faults instead of
/// silently writing over the init's heap (the agent shares the init's
/// memory). Made before seccomp; never unmapped (the init never returns).
pub(crate) struct Stack {
    usable: *mut std::mem::MaybeUninit<u8>,
}

impl Stack {
    /// # Errors
    /// The errno of `mmap` or `mprotect`.
    pub(crate) fn new() -> std::io::Result<Stack> {
        // SAFETY: sysconf has no memory arguments.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|&p| p > 0)
            .unwrap_or(4096);
        // SAFETY: a fresh anonymous mapping at an address the kernel picks;
        // nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE + page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the lowest page of the mapping just made.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Stack {
            // SAFETY: `page` < the mapping's length.
            usable: unsafe { base.cast::<u8>().add(page) }.cast(),
        })
    }

    /// The [`STACK_SIZE`] bytes above the guard page.
    pub(crate) fn usable(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        // SAFETY: `usable` starts STACK_SIZE mapped, writable bytes that
        // only this value hands out.
        unsafe { std::slice::from_raw_parts_mut(self.usable, STACK_SIZE) }
    }
}

extern "C" fn entry(start: *mut libc::c_void) -> libc::c_int {
    // The agent runs on the init's memory: an allocation here would change
    // the init's heap under it (see `tests` below, which make it fatal).
    no_alloc::enter();
    // SAFETY: `spawn` passes a pointer to a `Start` in its own frame, which
    // outlives this call: the init is suspended until our execve or exit.
    let start = unsafe { &*start.cast::<Start>() };
    exec(start.args, start.err)
}

/// Marks the stretch between the agent's clone and its execve, where
/// nothing may allocate. Only the crate's own tests look at the mark: their
/// allocator ([`no_alloc::Guard`]) aborts an allocation made while it is
/// set, so the tests below fail if anything on that path ever allocates.
pub(crate) mod no_alloc {
    #[cfg(test)]
    thread_local! {
        // The agent shares the init's thread-local storage (no
        // CLONE_SETTLS), so the init sees the mark again once it resumes;
        // `spawn` clears it.
        static FORBIDDEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub(crate) fn enter() {
        #[cfg(test)]
        FORBIDDEN.with(|f| f.set(true));
    }

    pub(crate) fn leave() {
        #[cfg(test)]
        FORBIDDEN.with(|f| f.set(false));
    }

    /// The test build's allocator: the system's, unless the mark is set.
    #[cfg(test)]
    pub(crate) struct Guard;

    #[cfg(test)]
    // SAFETY: every call is passed on to the system allocator unchanged,
    // or the process aborts before anything is allocated.
    unsafe impl std::alloc::GlobalAlloc for Guard {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            if FORBIDDEN.with(|f| f.get()) {
                std::process::abort();
            }
            // SAFETY: the caller's contract is passed on.
            unsafe { std::alloc::System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            // SAFETY: the caller's contract is passed on.
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }
}

/// Starts the agent on `stack` (at least [`STACK_SIZE`] bytes the caller
/// doesn't touch until this returns) and returns its pid once it has exec'd
/// or exited. The caller must be single-threaded: the agent runs on the
/// caller's memory, so another thread's state (locks, the heap) would be
/// shared with it mid-change.
///
/// # Errors
/// The errno of `clone`.
pub(crate) fn spawn(
    args: &ExecArgs,
    err: RawFd,
    stack: &mut [std::mem::MaybeUninit<u8>],
) -> std::io::Result<libc::pid_t> {
    let start = Start { args, err };
    // The stack grows down from the end, which the ABI wants 16-aligned.
    let top = (stack.as_mut_ptr_range().end as usize) & !15;
    // SAFETY: CLONE_VM | CLONE_VFORK is how posix_spawn starts a child: the
    // child runs `entry` on its own stack in our memory while this thread
    // is suspended, so nothing here runs concurrently with it. `entry` only
    // makes system calls and writes to its own stack before its execve or
    // _exit, and `start` stays alive until clone returns. Without
    // CLONE_SIGHAND, CLONE_FILES or CLONE_FS, the agent's signal
    // dispositions, descriptors and working directory are its own copies.
    let pid = unsafe {
        libc::clone(
            entry,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::addr_of!(start) as *mut libc::c_void,
        )
    };
    no_alloc::leave();
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid)
}

/// Execs the command; never returns. On failure reports on `err` and exits
/// with 126 or 127.
pub(crate) fn exec(args: &ExecArgs, err: RawFd) -> ! {
    if let Some(fd) = args.foreground {
        if crate::sandbox::pty::take_foreground(fd).is_err() {
            channel::refused(
                err,
                "terminal",
                "can't take the foreground of the sandbox's pty",
            );
            // SAFETY: _exit ends the process without running anything else.
            unsafe { libc::_exit(i32::from(super::EXIT_REFUSED)) };
        }
    }
    reset_signals();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // SAFETY: cwd is a valid C string.
    if unsafe { libc::chdir(args.cwd.as_ptr()) } != 0 {
        channel::refused(err, "chdir", "can't enter the working directory");
        // SAFETY: _exit ends the process without running anything else.
        unsafe { libc::_exit(i32::from(super::EXIT_REFUSED)) };
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
    channel::exec_failed(err, code, args.argv0.as_bytes(), last);
    // SAFETY: as above.
    unsafe { libc::_exit(code as i32) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn args(candidates: &[&str], cwd: &str) -> (Vec<CString>, ExecArgs) {
        let argv0 = CString::new("true").unwrap();
        let keep = vec![argv0.clone()];
        let argv = vec![keep[0].as_ptr(), std::ptr::null()];
        let a = ExecArgs {
            argv,
            envp: vec![std::ptr::null()],
            candidates: candidates
                .iter()
                .map(|c| CString::new(*c).unwrap())
                .collect(),
            argv0,
            cwd: CString::new(cwd).unwrap(),
            foreground: None,
        };
        (keep, a)
    }

    /// Runs the agent's path from clone to execve or exit under the
    /// allocator that aborts on any allocation there; returns its raw wait
    /// status and what it reported.
    fn run(candidates: &[&str], cwd: &str) -> (libc::c_int, super::channel::Report) {
        let (_keep, a) = args(candidates, cwd);
        let (r, w) = super::channel::pipe().unwrap();
        let mut stack = Stack::new().unwrap();
        let pid = spawn(&a, w.as_raw_fd(), stack.usable()).unwrap();
        drop(w);
        let mut status = 0;
        // SAFETY: waiting for the child just started.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        let mut reader = super::channel::Reader::new(&r);
        reader.read_available(&r);
        (status, reader.finish())
    }

    #[test]
    fn nothing_allocates_between_clone_and_execve() {
        // Found after a miss, as execvp would.
        let (status, report) = run(&["/nonexistent/true", "/bin/true"], "/");
        assert!(libc::WIFEXITED(status), "{status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
        assert_eq!(report, super::channel::Report::Running);
        // Not found: the failure path reports without allocating.
        let (status, report) = run(&["/nonexistent/true"], "/");
        assert!(libc::WIFEXITED(status), "{status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), i32::from(EXIT_NOT_FOUND));
        assert!(matches!(
            report,
            super::channel::Report::ExecFailed { code: 127, .. }
        ));
        // No working directory.
        let (status, report) = run(&["/bin/true"], "/nonexistent");
        assert!(libc::WIFEXITED(status), "{status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 125);
        assert!(matches!(report, super::channel::Report::Refused { .. }));
    }

    #[test]
    fn the_terminals_foreground_is_taken_without_allocating() {
        let (_keep, mut a) = args(&["/bin/true"], "/");
        a.foreground = Some(0);
        let (r, w) = super::channel::pipe().unwrap();
        let mut stack = Stack::new().unwrap();
        // SAFETY: fork in a test; the child makes system calls only (a
        // session and a pty of its own as fd 0, as the init has them, then
        // the agent's path) and ends with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: setsid with no arguments, in the child; SIGHUP
            // ignored, as our master's close at the end hangs up the
            // session we lead (the agent resets it before its execve).
            let session = unsafe {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                libc::setsid() > 0
            };
            let code = match crate::sandbox::pty::open() {
                Ok((_m, s))
                    if session
                        && crate::sandbox::pty::make_controlling(&s).is_ok()
                        // SAFETY: dup2 with integer arguments, in the child.
                        && unsafe { libc::dup2(s.as_raw_fd(), 0) } == 0 =>
                {
                    match spawn(&a, w.as_raw_fd(), stack.usable()) {
                        Ok(agent) => {
                            let mut st = 0;
                            // SAFETY: waiting for the agent just started.
                            unsafe { libc::waitpid(agent, &mut st, 0) };
                            if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 {
                                0
                            } else {
                                1
                            }
                        }
                        Err(_) => 2,
                    }
                }
                _ => 3,
            };
            // SAFETY: ends the child.
            unsafe { libc::_exit(code) };
        }
        drop(w);
        let mut status = 0;
        // SAFETY: waiting for our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        let mut reader = super::channel::Reader::new(&r);
        reader.read_available(&r);
        assert_eq!(reader.finish(), super::channel::Report::Running);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
    }

    #[test]
    fn the_guard_catches_an_allocation() {
        // The control: the guard does abort a child that allocates.
        // SAFETY: fork in a test; the child only allocates and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            no_alloc::enter();
            let v: Vec<u8> = Vec::with_capacity(64);
            std::hint::black_box(v);
            // SAFETY: ends the child.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGABRT);
    }
}
