//! `confine run --tty`: the sandbox gets a terminal of its own (DESIGN.md
//! §11, §6). Every test drives confine under a pty the test makes itself
//! (openpty), as its controlling terminal, so confine sees a real terminal
//! and the caller's terminal is never touched. The outer pty stands for the
//! user's terminal: what the agent can do to it, whether its modes come
//! back, whether its size and the bytes get through.
//!
//! Each property next to a control without `--tty`, where the same check
//! sees the caller's terminal (so the test can fail).
mod common;
use common::*;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A pty of the test's own: the master is the "user", the slave is what
/// confine gets as stdin, stdout and stderr.
struct Outer {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Outer {
    fn new(rows: u16, cols: u16) -> Outer {
        let (mut m, mut s) = (0, 0);
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: m and s are valid out-pointers; no name buffer; the
        // termios pointer may be NULL and ws is a valid winsize.
        let r =
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just made both descriptors; nothing else owns them.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        // SAFETY: fcntl flag changes on our own master.
        unsafe {
            libc::fcntl(
                m,
                libc::F_SETFL,
                libc::fcntl(m, libc::F_GETFL) | libc::O_NONBLOCK,
            );
            libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(s, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        Outer { master, slave }
    }

    /// The slave's settings, all of them, as bytes (`stty -g` compares less).
    fn modes(&self) -> Vec<u8> {
        let t = termios(self.slave.as_raw_fd());
        // SAFETY: a termios is plain data; its bytes are all initialized
        // (zeroed before tcgetattr filled it).
        unsafe {
            std::slice::from_raw_parts(
                (&t as *const libc::termios).cast::<u8>(),
                std::mem::size_of::<libc::termios>(),
            )
        }
        .to_vec()
    }

    fn canonical(&self) -> bool {
        termios(self.slave.as_raw_fd()).c_lflag & libc::ICANON != 0
    }

    fn ldisc(&self) -> libc::c_int {
        let mut d = -1;
        // SAFETY: TIOCGETD writes an int.
        unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TIOCGETD, &mut d) };
        d
    }

    fn set_ldisc(&self, d: libc::c_int) {
        // SAFETY: TIOCSETD reads an int; the test's own pty.
        unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TIOCSETD, &d) };
    }

    /// Bytes waiting to be read from the slave (what TIOCSTI would add).
    fn pending_input(&self) -> libc::c_int {
        let mut n = 0;
        // SAFETY: FIONREAD writes an int.
        unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::FIONREAD, &mut n) };
        n
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize; the kernel signals the
        // foreground group (confine) with SIGWINCH.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }

    /// Types `bytes` (all of them, however long the pty takes).
    fn type_in(&self, mut bytes: &[u8]) {
        let limit = Instant::now() + Duration::from_secs(20);
        while !bytes.is_empty() {
            assert!(Instant::now() < limit, "the sandbox stopped reading input");
            // SAFETY: bytes is a valid buffer of its length.
            let n =
                unsafe { libc::write(self.master.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
            if n > 0 {
                bytes = &bytes[n as usize..];
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// `confine run -w WS FLAGS -- CMD` with the slave as its stdio and
    /// controlling terminal, in a session of its own (a terminal's
    /// foreground program).
    fn spawn(&self, f: &Fixture, flags: &[&str], cmd: &[&str]) -> Child {
        let fd = |o: &OwnedFd| Stdio::from(o.try_clone().unwrap());
        let mut c = Command::new(bin());
        c.arg("run")
            .arg("-w")
            .arg(&f.ws)
            .args(flags)
            .arg("--")
            .args(cmd);
        c.env("PATH", PATH)
            .current_dir(&f.ws)
            .stdin(fd(&self.slave))
            .stdout(fd(&self.slave))
            .stderr(fd(&self.slave));
        in_own_session(&mut c, 0);
        c.spawn().unwrap()
    }

    /// Reads what confine writes until it exits (bounded: killed after
    /// `limit`), calling `step` with everything read so far after each read.
    fn drive(
        &self,
        mut child: Child,
        limit: Duration,
        mut step: impl FnMut(&Outer, &[u8]),
    ) -> (ExitStatus, Vec<u8>) {
        let start = Instant::now();
        let mut out = Vec::new();
        loop {
            let mut p = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: p is a valid pollfd.
            unsafe { libc::poll(&mut p, 1, 50) };
            let got = self.read_now(&mut out);
            if got {
                step(self, &out);
            }
            if let Some(status) = child.try_wait().unwrap() {
                // confine wrote everything before it exited.
                self.read_now(&mut out);
                return (status, out);
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "confine didn't end within {limit:?}; output so far: {}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }

    fn read_now(&self, out: &mut Vec<u8>) -> bool {
        let mut buf = [0u8; 65536];
        let mut any = false;
        loop {
            // SAFETY: buf is a valid buffer of its length.
            let n =
                unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return any;
            }
            out.extend_from_slice(&buf[..n as usize]);
            any = true;
        }
    }
}

/// Starts `c` in a session of its own whose controlling terminal is its
/// `fd` (a terminal's foreground program).
fn in_own_session(c: &mut Command, fd: RawFd) {
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn termios(fd: RawFd) -> libc::termios {
    // SAFETY: an all-zero termios is valid; tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: t is a valid out-pointer.
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
    t
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Line disciplines (linux/tty.h).
const N_TTY: libc::c_int = 0;
const N_NULL: libc::c_int = 27;

const LIMIT: Duration = Duration::from_secs(30);

/// What the agent's stdio is: the sandbox's devpts (the device of
/// /dev/pts/ptmx inside) or not, and whether bash gets job control.
const WHAT_TERMINAL: &str = r#"
tty; test -t 0 && echo STDIN_IS_A_TTY
pts=$(stat -c %d /dev/pts/ptmx)
for fd in 0 1 2; do
  [ "$(stat -L -c %d /proc/$$/fd/$fd)" = "$pts" ] && echo "FD$fd=SANDBOX_PTS" || echo "FD$fd=OTHER"
done
bash --norc -ic 'sleep 5 & jobs; kill %1; echo JOBS_OK'
"#;

#[test]
fn the_agent_gets_a_terminal_of_its_own_with_job_control() {
    if !can_run("the_agent_gets_a_terminal_of_its_own_with_job_control")
        || !have(
            "the_agent_gets_a_terminal_of_its_own_with_job_control",
            "/bin/bash",
        )
    {
        return;
    }
    let f = Fixture::new("tty-own");
    let outer = Outer::new(24, 80);
    let child = outer.spawn(&f, &["--tty"], &["/bin/sh", "-c", WHAT_TERMINAL]);
    let (status, out) = outer.drive(child, LIMIT, |_, _| {});
    let out = text(&out);
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("/dev/pts/")),
        "{out}"
    );
    assert!(out.contains("STDIN_IS_A_TTY"), "{out}");
    for fd in 0..3 {
        assert!(out.contains(&format!("FD{fd}=SANDBOX_PTS")), "{out}");
    }
    assert!(out.contains("JOBS_OK"), "{out}");
    assert!(!out.contains("no job control"), "{out}");
    assert!(!out.contains("cannot set terminal process group"), "{out}");

    // Control: without --tty the agent's stdio is the caller's terminal,
    // and bash has no job control in it.
    let outer = Outer::new(24, 80);
    let child = outer.spawn(&f, &["--no-tty"], &["/bin/sh", "-c", WHAT_TERMINAL]);
    let (status, out) = outer.drive(child, LIMIT, |_, _| {});
    let out = text(&out);
    assert_eq!(status.code(), Some(0), "{out}");
    for fd in 0..3 {
        assert!(out.contains(&format!("FD{fd}=OTHER")), "{out}");
    }
    assert!(out.contains("no job control"), "{out}");
}

/// TIOCSTI and TIOCSETD(N_NULL) on fds 0, 1 and 2, results to a file (the
/// terminal may no longer print once its line discipline is N_NULL).
const ATTACK: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <sys/ioctl.h>
int main(void) {
    FILE *f = fopen("attack.out", "w");
    if (!f) return 2;
    for (int fd = 0; fd < 3; fd++) {
        char c = 'X';
        int r = ioctl(fd, TIOCSTI, &c);
        fprintf(f, "STI%d=%d/%d\n", fd, r, r ? errno : 0);
        int d = 27; /* N_NULL */
        r = ioctl(fd, TIOCSETD, &d);
        fprintf(f, "SETD%d=%d/%d\n", fd, r, r ? errno : 0);
    }
    return fclose(f) ? 3 : 0;
}
"#;

#[test]
fn tiocsti_and_tiocsetd_reach_only_the_sandboxs_pty() {
    if !can_run("tiocsti_and_tiocsetd_reach_only_the_sandboxs_pty") {
        return;
    }
    let f = Fixture::new("tty-attack");
    let Some(attack) = compile(&f, "attack", ATTACK) else {
        return;
    };
    let attack = attack.to_str().unwrap();
    let results = f.ws.join("attack.out");

    let outer = Outer::new(24, 80);
    assert_eq!(outer.ldisc(), N_TTY);
    let screen_before = outer.modes();
    let child = outer.spawn(&f, &["--tty"], &[attack]);
    let (status, out) = outer.drive(child, LIMIT, |_, _| {});
    let res = std::fs::read_to_string(&results).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{}\n{res}", text(&out));
    // The attack ran, and did change the pty it holds: the sandbox's.
    for fd in 0..3 {
        assert!(res.contains(&format!("SETD{fd}=0/0")), "{res}");
        assert!(!res.contains(&format!("STI{fd}=0/")), "{res}");
    }
    assert_eq!(outer.ldisc(), N_TTY, "the caller's line discipline changed");
    assert_eq!(
        outer.pending_input(),
        0,
        "input was injected into the caller's terminal"
    );
    assert_eq!(outer.modes(), screen_before);

    // Control: without --tty the same attack reaches the caller's terminal
    // (the test's pty, set back right after).
    let outer = Outer::new(24, 80);
    let child = outer.spawn(&f, &["--no-tty"], &[attack]);
    let (status, _) = outer.drive(child, LIMIT, |_, _| {});
    let changed = outer.ldisc();
    outer.set_ldisc(N_TTY);
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        changed, N_NULL,
        "control: the attack should reach the caller's terminal"
    );
}

const WALL_TIME: &str = "version: 1
name: wall-time
extends: default
limits:
  wall_time: 1s
  grace: 500ms
";

/// Runs `cmd` under `--tty` (plus `flags`), checks that the caller's
/// terminal is in raw mode once the agent says READY (then types a line),
/// and that its modes are exactly what they were after confine exits.
fn modes_come_back(f: &Fixture, flags: &[&str], cmd: &str) -> ExitStatus {
    let outer = Outer::new(24, 80);
    let before = outer.modes();
    assert!(outer.canonical());
    let mut all = vec!["--tty"];
    all.extend_from_slice(flags);
    let child = outer.spawn(f, &all, &["/bin/sh", "-c", cmd]);
    let mut raw_seen = None;
    let (status, out) = outer.drive(child, LIMIT, |o, out| {
        if raw_seen.is_none() && text(out).contains("READY") {
            raw_seen = Some(!o.canonical());
            o.type_in(b"go\r");
        }
    });
    assert_eq!(
        raw_seen,
        Some(true),
        "raw mode while running: {}",
        text(&out)
    );
    assert_eq!(outer.modes(), before, "modes after {cmd}: {}", text(&out));
    status
}

#[test]
fn the_callers_terminal_modes_are_restored_on_every_way_out() {
    if !can_run("the_callers_terminal_modes_are_restored_on_every_way_out") {
        return;
    }
    let f = Fixture::new("tty-modes");
    // A normal exit.
    let s = modes_come_back(&f, &[], "echo READY; read x; exit 3");
    assert_eq!(s.code(), Some(3));
    // wall_time ends it.
    let wall = f.profile("wall", WALL_TIME);
    let s = modes_come_back(
        &f,
        &["-p", wall.to_str().unwrap()],
        "trap '' TERM; echo READY; read x; while :; do sleep 1; done",
    );
    assert_eq!(s.code(), Some(124));
    // The agent killed by SIGKILL.
    let s = modes_come_back(&f, &[], "echo READY; read x; kill -KILL $$");
    assert_eq!(s.code(), Some(128 + libc::SIGKILL));
    // The agent changes its own terminal's modes and dies: the caller's
    // are still the caller's.
    let s = modes_come_back(&f, &[], "echo READY; read x; stty raw -echo; kill -KILL $$");
    assert_eq!(s.code(), Some(128 + libc::SIGKILL));

    // Setup ends in a failure after the pty was made (not found, 127).
    let outer = Outer::new(24, 80);
    let before = outer.modes();
    let child = outer.spawn(&f, &["--tty"], &["/nonexistent/command"]);
    let (status, out) = outer.drive(child, LIMIT, |_, _| {});
    assert_eq!(status.code(), Some(127), "{}", text(&out));
    assert_eq!(outer.modes(), before);

    // Control: without --tty the caller's terminal stays as it is
    // (canonical) while the command runs.
    let outer = Outer::new(24, 80);
    let child = outer.spawn(&f, &["--no-tty"], &["/bin/sh", "-c", "echo READY; read x"]);
    let mut canonical = None;
    let (status, _) = outer.drive(child, LIMIT, |o, out| {
        if canonical.is_none() && text(out).contains("READY") {
            canonical = Some(o.canonical());
            o.type_in(b"go\n");
        }
    });
    assert_eq!(status.code(), Some(0));
    assert_eq!(canonical, Some(true));
}

#[test]
fn the_window_size_follows_the_callers() {
    if !can_run("the_window_size_follows_the_callers") {
        return;
    }
    let f = Fixture::new("tty-winsize");
    let outer = Outer::new(37, 101);
    let child = outer.spawn(
        &f,
        &["--tty"],
        &["/bin/sh", "-c", "stty size; echo READY; read x; stty size"],
    );
    let mut resized = false;
    let (status, out) = outer.drive(child, LIMIT, |o, out| {
        if !resized && text(out).contains("READY") {
            resized = true;
            // SIGWINCH to confine, then a line: the resize is passed on
            // before what was typed after it.
            o.resize(45, 120);
            o.type_in(b"\r");
        }
    });
    let out = text(&out);
    assert_eq!(status.code(), Some(0), "{out}");
    let sizes: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.split(' ').count() == 2 && l.split(' ').all(|n| n.parse::<u16>().is_ok()))
        .collect();
    assert_eq!(sizes, ["37 101", "45 120"], "{out}");
}

/// Pseudo-random base64-like text with newlines, `len` bytes.
fn data(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|i| {
            if i % 77 == 76 {
                return b'\n';
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize]
        })
        .collect()
}

#[test]
fn output_and_input_are_relayed_exactly() {
    if !can_run("output_and_input_are_relayed_exactly") {
        return;
    }
    let f = Fixture::new("tty-bytes");
    let sent = data(3_000_000);
    f.file(&f.ws.join("data"), std::str::from_utf8(&sent).unwrap());
    // Output: with the pty's output processing off (no CRLF), the bytes
    // arrive exactly.
    let outer = Outer::new(24, 80);
    let child = outer.spawn(
        &f,
        &["--tty"],
        &[
            "/bin/sh",
            "-c",
            "stty -opost && echo BEGIN && cat data && echo END",
        ],
    );
    let (status, out) = outer.drive(child, Duration::from_secs(120), |_, _| {});
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        text(&out[..out.len().min(300)])
    );
    let body = out
        .strip_prefix(b"BEGIN\n".as_slice())
        .and_then(|o| o.strip_suffix(b"END\n".as_slice()))
        .expect("BEGIN, the data, END");
    assert!(
        body == sent.as_slice(),
        "{} bytes relayed of {}",
        body.len(),
        sent.len()
    );

    // Input: every byte value, typed into a pty in raw mode inside.
    let typed: Vec<u8> = (0..64 * 1024).map(|i| (i % 256) as u8).collect();
    let outer = Outer::new(24, 80);
    let child = outer.spawn(
        &f,
        &["--tty"],
        &[
            "/bin/sh",
            "-c",
            "stty raw -echo && echo READY && head -c 65536 > got && echo GOT",
        ],
    );
    let mut typed_in = false;
    let (status, out) = outer.drive(child, LIMIT, |o, out| {
        if !typed_in && text(out).contains("READY") {
            typed_in = true;
            o.type_in(&typed);
        }
    });
    assert_eq!(status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("GOT"));
    assert!(
        std::fs::read(f.ws.join("got")).unwrap() == typed,
        "input changed on the way"
    );

    // Control: without --tty the caller's terminal does its own output
    // processing (the agent's \n arrives as \r\n), which --tty's -opost
    // above turned off inside.
    let outer = Outer::new(24, 80);
    let child = outer.spawn(
        &f,
        &["--no-tty"],
        &["/bin/sh", "-c", "stty -g >/dev/null; echo A; echo B"],
    );
    let (status, out) = outer.drive(child, LIMIT, |_, _| {});
    assert_eq!(status.code(), Some(0));
    assert_eq!(text(&out), "A\r\nB\r\n");
}

#[test]
fn a_caller_that_stops_reading_cant_make_confine_unstoppable() {
    if !can_run("a_caller_that_stops_reading_cant_make_confine_unstoppable") {
        return;
    }
    let f = Fixture::new("tty-stuck");
    // stdout a pipe nobody reads: the relay fills it, then the agent
    // blocks on its pty; SIGTERM must still end the run.
    let (r, w) = std::io::pipe().unwrap();
    let mut child = Command::new(bin())
        .args(["run", "-w"])
        .arg(&f.ws)
        .args(["--tty", "--", "/bin/sh", "-c"])
        .arg("touch started; head -c 3000000 /dev/zero | od -v")
        .env("PATH", PATH)
        .current_dir(&f.ws)
        .stdin(Stdio::null())
        .stdout(w)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = poll(LIMIT, || f.ws.join("started").exists());
    if started {
        // Whether or not the pipe is full yet, SIGTERM ends the run.
        // SAFETY: kill of our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let ended = poll(LIMIT, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    drop(r);
    assert!(started, "the agent never started");
    assert!(
        ended,
        "confine didn't end after SIGTERM with its stdout not read"
    );
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn the_last_of_tty_and_no_tty_wins_and_tty_needs_no_caller_terminal() {
    if !can_run("the_last_of_tty_and_no_tty_wins_and_tty_needs_no_caller_terminal") {
        return;
    }
    let f = Fixture::new("tty-flags");
    let run = |flags: &[&str]| {
        Command::new(bin())
            .args(["run", "-w"])
            .arg(&f.ws)
            .args(flags)
            .args(["--", "/bin/sh", "-c", "test -t 0 && echo TTY || echo NOTTY"])
            .env("PATH", PATH)
            .current_dir(&f.ws)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // stdin /dev/null, stdout a pipe: a pty all the same, output processed.
    let o = run(&["--no-tty", "--tty"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o), "TTY\r\n");
    let o = run(&["--tty", "--no-tty"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o), "NOTTY\n");
    let o = run(&[]);
    assert_eq!(stdout(&o), "NOTTY\n");
}

#[test]
fn ctrl_z_and_fg_work_inside() {
    if !can_run("ctrl_z_and_fg_work_inside") || !have("ctrl_z_and_fg_work_inside", "/bin/bash") {
        return;
    }
    let f = Fixture::new("tty-jobs");
    let outer = Outer::new(24, 80);
    let child = outer.spawn(&f, &["--tty"], &["/bin/bash", "--norc", "-i"]);
    // Markers are typed with quotes inside them, so the terminal's echo of
    // the typed line never matches; only the command's output does. What
    // is typed after `fg` waits in the pty until the resumed job, in the
    // foreground again, reads it (bash doesn't read while it waits). It
    // ends in LF, not CR: it may arrive before bash has given the job back
    // its cooked modes, while readline's raw ones (no ICRNL) are still
    // set, and a CR queued then never becomes the end of a line; the
    // kernel hands what is queued to the canonical reader as a line when
    // ICANON comes back, and LF ends it in either mode.
    let mut stage = 0;
    let (status, out) = outer.drive(child, LIMIT, |o, out| {
        let out = text(out);
        let typed: &[u8] = match stage {
            0 if out.contains("$ ") => b"sh -c 'echo READ\"\"ING; read x; echo GOT_$x'\r",
            1 if out.contains("READING") => b"\x1a", // Ctrl-Z
            2 if out.contains("Stopped") => b"fg\r",
            3 if out.contains("fg\r\n") => b"hello\n",
            4 if out.contains("GOT_hello") => b"exit 0\r",
            _ => return,
        };
        o.type_in(typed);
        stage += 1;
    });
    let out = text(&out);
    assert_eq!(status.code(), Some(0), "{out}");
    assert_eq!(stage, 5, "{out}");
    assert!(!out.contains("no job control"), "{out}");
    assert!(out.contains("Stopped"), "{out}");
    assert!(out.contains("GOT_hello"), "{out}");
}

/// An interactive bash with job control on a pty of the test's own: the
/// user's shell, from which confine runs as a job (so Ctrl-Z, `&` and
/// `fg` act on confine as they would at a real terminal).
struct Shell {
    outer: Outer,
    child: Child,
    out: Vec<u8>,
}

impl Shell {
    fn new(f: &Fixture) -> Shell {
        let outer = Outer::new(24, 80);
        let fd = |o: &OwnedFd| Stdio::from(o.try_clone().unwrap());
        let mut c = Command::new("/bin/bash");
        c.args(["--norc", "--noprofile", "-i"])
            .env_clear()
            .env("PATH", PATH)
            .env("PS1", "$ ")
            .env("HOME", &f.root)
            .env("HISTFILE", f.root.join("history"))
            .env("TERM", "dumb")
            .current_dir(&f.ws)
            .stdin(fd(&outer.slave))
            .stdout(fd(&outer.slave))
            .stderr(fd(&outer.slave));
        in_own_session(&mut c, 0);
        let child = c.spawn().unwrap();
        let mut s = Shell {
            outer,
            child,
            out: Vec::new(),
        };
        s.wait_for("the first prompt", |out| out.contains("$ "));
        s
    }

    /// Reads the terminal until `cond` holds for what it showed since
    /// `mark` (bounded).
    fn wait_since(&mut self, mark: usize, what: &str, cond: impl Fn(&str) -> bool) {
        let end = Instant::now() + LIMIT;
        loop {
            self.outer.read_now(&mut self.out);
            if cond(&text(&self.out[mark..])) {
                return;
            }
            assert!(
                Instant::now() < end,
                "waited {LIMIT:?} for {what}; the terminal showed: {}",
                text(&self.out)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for(&mut self, what: &str, cond: impl Fn(&str) -> bool) {
        self.wait_since(0, what, cond);
    }

    /// Types `line` and a return; the position in the output before it.
    fn type_line(&mut self, line: &str) -> usize {
        self.type_keys(format!("{line}\r").as_bytes())
    }

    /// Types `keys`; the position in the output before them.
    fn type_keys(&mut self, keys: &[u8]) -> usize {
        self.outer.read_now(&mut self.out);
        let mark = self.out.len();
        self.outer.type_in(keys);
        mark
    }

    /// Polls (bounded) until `cond` holds, reading the terminal meanwhile.
    fn until(&mut self, what: &str, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + LIMIT;
        while !cond() {
            self.outer.read_now(&mut self.out);
            assert!(
                Instant::now() < end,
                "waited {LIMIT:?} for {what}; the terminal showed: {}",
                text(&self.out)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the shell and whatever of `token`'s processes are left (ours:
    /// the confine it started, by pid).
    fn end(mut self, token: &str) {
        for (pid, _) in processes_with_arg(token) {
            // SAFETY: kill of a process this test started, by pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process state letter of `pid` (R, S, T, ...), from /proc/PID/stat.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// The agent (`sh -c SCRIPT TOKEN`) and confine, by their argv.
fn agent_and_confine(token: &str) -> (Option<i32>, Option<i32>) {
    let ps = processes_with_arg(token);
    let find = |want: &dyn Fn(&str) -> bool| ps.iter().find(|(_, a)| want(&a[0])).map(|p| p.0);
    (find(&|a| a == "sh"), find(&|a| a == bin()))
}

/// `confine run -w WS FLAGS -- sh -c SCRIPT TOKEN`, as typed at the shell.
fn confine_line(f: &Fixture, flags: &str, script: &str, token: &str) -> String {
    format!(
        "{} run -w {} {flags} -- sh -c '{script}' {token}",
        bin(),
        f.ws.display()
    )
}

/// Ctrl-Z on an agent with no shell inside it (DESIGN.md §11): the agent
/// stops, confine stops with it, the user's shell gets the terminal back
/// and what is typed next is the shell's; `fg` resumes the agent, which
/// then reads what the user types for it.
#[test]
fn ctrl_z_stops_the_whole_sandbox_and_fg_resumes_it() {
    let test = "ctrl_z_stops_the_whole_sandbox_and_fg_resumes_it";
    if !can_run(test) || !have(test, "/bin/bash") {
        return;
    }
    let f = Fixture::new("tty-suspend");
    let token = token(7);
    let script = r#"read x; echo "got:$x" > zout"#;
    let mut sh = Shell::new(&f);
    // No flag: the caller is at a terminal, so the sandbox gets a pty.
    sh.type_line(&confine_line(&f, "", script, &token));
    let mut agent = None;
    sh.until("the agent to wait for input", || {
        agent = agent_and_confine(&token).0;
        agent.is_some_and(|p| state(p) == Some('S'))
    });
    let agent = agent.unwrap();
    let mark = sh.type_keys(b"\x1a"); // Ctrl-Z
    sh.wait_since(mark, "the shell to say the job stopped", |o| {
        o.contains("Stopped") && o.ends_with("$ ")
    });
    assert_eq!(state(agent), Some('T'), "the agent wasn't stopped");
    assert_eq!(state(agent_and_confine(&token).1.unwrap()), Some('T'));
    // Typed at the shell's prompt: the shell runs it, the agent gets none.
    let mark = sh.type_line("echo typed-ahead-$((6*7))");
    sh.wait_since(mark, "the shell to run the typed line", |o| {
        o.contains("typed-ahead-42")
    });
    assert_eq!(state(agent), Some('T'));
    assert!(!f.ws.join("zout").exists());
    sh.type_line("fg");
    sh.until("the agent to be continued", || state(agent) == Some('S'));
    let mark = sh.type_line("agent-line");
    sh.wait_since(mark, "confine to end", |o| o.ends_with("$ "));
    assert_eq!(
        std::fs::read_to_string(f.ws.join("zout")).unwrap(),
        "got:agent-line\n"
    );
    sh.end(&token);

    // Control: with the caller's own terminal (--no-tty), Ctrl-Z stops
    // confine but not the agent, which keeps the user's terminal.
    let token = self::token(7);
    let mut sh = Shell::new(&f);
    sh.type_line(&confine_line(&f, "--no-tty", script, &token));
    let mut agent = None;
    sh.until("the agent to wait for input", || {
        agent = agent_and_confine(&token).0;
        agent.is_some_and(|p| state(p) == Some('S'))
    });
    let mark = sh.type_keys(b"\x1a");
    sh.wait_since(mark, "the shell to say the job stopped", |o| {
        o.contains("Stopped")
    });
    // Not stopped: still waiting in its read, or on a CPU for an instant
    // (under load, the terminal's job-control change can wake it).
    let st = state(agent.unwrap());
    assert!(
        matches!(st, Some('S' | 'R')),
        "the agent was stopped: {st:?}"
    );
    sh.end(&token);
}

/// `confine run ... &`: a sandbox started in the background runs, and
/// reads nothing the user types (here while a foreground `sleep` holds the
/// terminal) until it is brought to the foreground.
#[test]
fn a_sandbox_in_the_background_reads_nothing_the_user_types() {
    let test = "a_sandbox_in_the_background_reads_nothing_the_user_types";
    if !can_run(test) || !have(test, "/bin/bash") {
        return;
    }
    let f = Fixture::new("tty-background");
    // The agent reads only once `go` exists: while the shell reads its
    // command line, nothing else competes for the terminal.
    let script = r#"while [ ! -e go ]; do sleep 0.05; done; read x; echo "got:$x" > bout"#;
    let secret = "secret-from-the-user";
    let run = |flags: &str| {
        let token = token(7);
        let mut sh = Shell::new(&f);
        sh.type_line(&format!("{} &", confine_line(&f, flags, script, &token)));
        sh.until("the agent", || agent_and_confine(&token).0.is_some());
        // A foreground program that doesn't read, and the user types.
        let nap = self::token(3);
        let mark = sh.type_line(&format!("sleep {nap}; echo SL\"\"EPT"));
        sh.until("the foreground sleep", || {
            !processes_with_arg(&nap).is_empty()
        });
        std::fs::write(f.ws.join("go"), "").unwrap();
        sh.outer.type_in(format!("{secret}\r").as_bytes());
        sh.wait_since(mark, "the sleep to end", |o| o.contains("SLEPT"));
        (sh, token)
    };

    let (mut sh, token) = run("");
    sh.wait_for("the shell to run the typed line", |o| {
        o.contains(&format!("{secret}: command not found"))
    });
    assert!(
        !f.ws.join("bout").exists(),
        "the agent read the user's line"
    );
    let mark = sh.type_line("fg");
    sh.wait_since(mark, "confine in the foreground", |o| o.contains("fg\r\n"));
    let mark = sh.type_line("for-the-agent");
    sh.wait_since(mark, "confine to end", |o| o.ends_with("$ "));
    assert_eq!(
        std::fs::read_to_string(f.ws.join("bout")).unwrap(),
        "got:for-the-agent\n"
    );
    sh.end(&token);
    std::fs::remove_file(f.ws.join("bout")).unwrap();
    std::fs::remove_file(f.ws.join("go")).unwrap();

    // Control: with the caller's terminal (--no-tty), the backgrounded
    // agent reads the line typed while `sleep` had the foreground.
    let (mut sh, token) = run("--no-tty");
    sh.until("the agent to write what it read", || {
        f.ws.join("bout").exists()
    });
    assert_eq!(
        std::fs::read_to_string(f.ws.join("bout")).unwrap(),
        format!("got:{secret}\n")
    );
    sh.end(&token);
}

/// 50 MB of every byte value, from a file on stdin to a pipe on stdout,
/// both byte-exact: with `--no-tty`, and by default with only stderr a
/// terminal (the pty replaces that alone; the pipe and the file reach the
/// agent as they are).
#[test]
fn pipes_next_to_a_terminal_stay_byte_exact() {
    let test = "pipes_next_to_a_terminal_stay_byte_exact";
    if !can_run(test) {
        return;
    }
    let f = Fixture::new("tty-exact");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let sent: Vec<u8> = (0..50 << 20)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 56) as u8
        })
        .collect();
    let input = f.root.join("input");
    std::fs::write(&input, &sent).unwrap();
    for flags in [&["--no-tty"][..], &[]] {
        let outer = Outer::new(24, 80);
        let mut c = Command::new(bin());
        c.args(["run", "-w"])
            .arg(&f.ws)
            .args(flags)
            .args([
                "--",
                "/bin/sh",
                "-c",
                r#"test -t 2 && echo STDERR_IS_A_TTY >&2
                [ "$(stat -L -c %d /proc/$$/fd/2)" = "$(stat -c %d /dev/pts/ptmx)" ] && echo OWN_PTS >&2
                test -t 0 || test -t 1 || cat"#,
            ])
            .env("PATH", PATH)
            .current_dir(&f.ws)
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(outer.slave.try_clone().unwrap()));
        in_own_session(&mut c, 2);
        let mut child = c.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut got).unwrap();
            got
        });
        let mut shown = Vec::new();
        let end = Instant::now() + Duration::from_secs(120);
        let status = loop {
            outer.read_now(&mut shown);
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < end, "confine {flags:?} didn't end");
            std::thread::sleep(Duration::from_millis(20));
        };
        outer.read_now(&mut shown);
        let got = reader.join().unwrap();
        assert_eq!(status.code(), Some(0), "{flags:?}: {}", text(&shown));
        assert!(
            got == sent,
            "{flags:?}: {} bytes of {} arrived, or changed",
            got.len(),
            sent.len()
        );
        let shown = text(&shown);
        assert!(shown.contains("STDERR_IS_A_TTY"), "{shown}");
        // The sandbox's own pty by default; the caller's with --no-tty.
        assert_eq!(shown.contains("OWN_PTS"), flags.is_empty(), "{shown}");
    }
}

/// The first denial's line (DESIGN.md §13) while the supervisor relays the
/// sandbox's pty: the caller's terminal is in raw mode, so the line comes
/// between CR LFs (it neither continues nor overwrites what the agent left
/// on the current line), and the terminal's modes come back after.
#[test]
fn a_denial_line_on_a_relayed_terminal_starts_and_ends_a_line() {
    if !can_run("a_denial_line_on_a_relayed_terminal_starts_and_ends_a_line")
        || !have(
            "a_denial_line_on_a_relayed_terminal_starts_and_ends_a_line",
            "/usr/bin/unshare",
        )
    {
        return;
    }
    let f = Fixture::new("tty-denial");
    let outer = Outer::new(24, 80);
    let before = outer.modes();
    // unshare(CLONE_NEWUSER) is denylisted: EPERM, and a `denied` line.
    let child = outer.spawn(
        &f,
        &["--tty"],
        &[
            "/bin/sh",
            "-c",
            "printf 'abc'; unshare -U true 2>/dev/null; printf 'def\\n'",
        ],
    );
    let (status, out) = outer.drive(child, LIMIT, |_, _| {});
    assert!(status.success(), "{}", text(&out));
    let out = text(&out);
    // Where the line lands among the agent's output depends on when the
    // relay writes what it read; it always starts on a line of its own.
    assert!(
        out.contains("\r\nconfine: denied syscall unshare (no profile may allow it: "),
        "{out:?}"
    );
    assert!(out.contains("abc") && out.contains("def"), "{out:?}");
    let line = out.find("confine: denied syscall unshare").unwrap();
    let end = out[line..].find('\n').unwrap() + line;
    assert_eq!(&out[end - 1..=end], "\r\n", "{out:?}");
    assert_eq!(out.matches("denied syscall unshare").count(), 1, "{out:?}");
    assert_eq!(outer.modes(), before, "{out:?}");
}
