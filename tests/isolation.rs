//! The sandbox's own namespaces: it sees only its own processes, can't
//! signal or trace anything outside (same uid included, the supervisor
//! included), and has its own hostname, System V IPC and /tmp
//! (DESIGN.md §4 steps 5–7, §6).
//!
//! Host-side objects the tests create (a sleeper, a shared memory segment,
//! a file in /tmp) carry a unique token and are removed by a guard when the
//! test ends, pass or fail.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A host process this test started; killed by pid and reaped when dropped.
struct HostProcess(Child);

impl HostProcess {
    fn spawn(cmd: &mut Command) -> HostProcess {
        HostProcess(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // Child::kill signals only a child that hasn't been reaped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn host_processes_are_invisible() {
    if !can_run("host_processes_are_invisible") {
        return;
    }
    let f = Fixture::new("iso-pids");
    let tok = token(1000);
    let mut sleeper = HostProcess::spawn(Command::new("sleep").arg(&tok));
    // Control: the host sees the sleeper by its token.
    assert!(poll(Duration::from_secs(5), || argv(sleeper.pid())
        .is_some_and(|a| a.contains(&tok))));

    // One line per /proc entry the agent can see: `PID<TAB>argv`, with
    // the arguments separated by \x01 (and their newlines made \x02). The glob is expanded by the shell
    // itself, before `tr` runs: it lists the processes that exist then.
    let o = f.sh(
        "default",
        r#"echo "self $$"
           for d in /proc/[0-9]*; do
             printf '%s\t' "${d#/proc/}"; tr '\0\n' '\001\002' < "$d/cmdline"; echo
           done"#,
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(
        out.starts_with("self 2\n"),
        "the agent's shell should be pid 2:\n{}",
        show(&o)
    );
    let procs: BTreeMap<i32, Vec<String>> = out
        .lines()
        .skip(1)
        .map(|l| {
            let (pid, args) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let args = args
                .split('\x01')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect();
            (pid.parse().unwrap(), args)
        })
        .collect();
    // Control: the scan works inside (it sees the agent's own shell).
    assert_eq!(
        procs.get(&2).and_then(|a| a.first()).map(String::as_str),
        Some("/bin/sh"),
        "{}",
        show(&o)
    );
    // Only the init and the agent exist: no host process, not even a pid.
    assert_eq!(
        procs.keys().copied().collect::<Vec<_>>(),
        [1, 2],
        "{}",
        show(&o)
    );
    assert!(
        !out.contains(&tok),
        "the host sleeper is visible inside:\n{}",
        show(&o)
    );
    assert!(sleeper.alive());
}

#[test]
fn kill_all_inside_spares_same_uid_host_process() {
    if !can_run("kill_all_inside_spares_same_uid_host_process") {
        return;
    }
    let f = Fixture::new("iso-kill-all");
    let tok = token(1000);
    // A host process of the agent's own uid: plain permissions would let
    // the agent kill it.
    let mut victim = HostProcess::spawn(
        Command::new("sleep")
            .arg(&tok)
            .uid(AGENT_UID)
            .gid(AGENT_GID),
    );
    let uid_line = format!("Uid:\t{AGENT_UID}\t{AGENT_UID}\t{AGENT_UID}\t{AGENT_UID}");
    let same_uid = poll(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{}/status", victim.pid()))
            .is_ok_and(|s| s.contains(&uid_line))
    });
    assert!(same_uid, "the host sleeper doesn't run as uid {AGENT_UID}");

    // Control inside: kill -9 -1 does kill the agent's own background job.
    let o = f.sh(
        "default",
        "sleep 1000 & kill -9 -1; echo kill=$?; wait $!; echo bg=$?",
    );
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "kill=0\nbg=137\n", "{}", show(&o));

    // Generous: a SIGKILL would have landed long before this.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        victim.alive(),
        "kill -9 -1 inside killed a host process of the same uid"
    );
    assert!(argv(victim.pid()).is_some_and(|a| a.contains(&tok)));
}

#[test]
fn supervisor_cannot_be_signalled_or_traced() {
    if !can_run("supervisor_cannot_be_signalled_or_traced") {
        return;
    }
    let f = Fixture::new("iso-supervisor");
    // The agent waits for the supervisor's host pid, then tries it.
    let py = r#"
import ctypes, errno, os, signal, sys, time
path = sys.argv[1] + "/supervisor-pid"
while not os.path.exists(path):
    time.sleep(0.05)
sup = int(open(path).read())
def attempt(call):
    try:
        call()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
print("visible", os.path.exists("/proc/%d" % sup))
print("kill-term", attempt(lambda: os.kill(sup, signal.SIGTERM)))
print("kill-zero", attempt(lambda: os.kill(sup, 0)))
print("kill-self", attempt(lambda: os.kill(os.getpid(), 0)))
libc = ctypes.CDLL(None, use_errno=True)
for name, pid in (("init", 1), ("supervisor", sup), ("parent", os.getppid())):
    ctypes.set_errno(0)
    r = libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH
    print("ptrace-" + name, r, errno.errorcode.get(ctypes.get_errno(), "none"))
sys.stdout.flush()
sys.exit(5)
"#;
    let ws = f.ws.display().to_string();
    let mut confine = f.spawn("default", &["python3", "-c", py, &ws]);
    let sup = confine.pid();
    // Control: on the host, the supervisor is there under that pid.
    let exe = std::fs::read_link(format!("/proc/{sup}/exe")).unwrap();
    assert_eq!(exe, PathBuf::from(bin()).canonicalize().unwrap());
    assert!(
        sup > 2,
        "a supervisor pid the sandbox's own pids could shadow"
    );
    let tmp = f.ws.join("supervisor-pid.tmp");
    std::fs::write(&tmp, sup.to_string()).unwrap();
    std::fs::rename(&tmp, f.ws.join("supervisor-pid")).unwrap();

    let ended = poll(Duration::from_secs(30), || !confine.running());
    assert!(ended, "confine did not end");
    // Reaped already: take the output without signalling anything.
    let o = confine.output();
    // The agent's own status: no SIGTERM reached the supervisor (it would
    // have forwarded it, and python would have died of it: 143).
    assert_status(&o, 5);
    let got = labelled(&stdout(&o));
    let expect = |k: &str, v: &str| {
        assert_eq!(
            got.get(k).map(String::as_str),
            Some(v),
            "{k}:\n{}",
            show(&o)
        )
    };
    expect("visible", "False");
    expect("kill-term", "ESRCH");
    expect("kill-zero", "ESRCH");
    expect("kill-self", "ok");
    expect("ptrace-init", "-1 EPERM");
    expect("ptrace-supervisor", "-1 EPERM");
    expect("ptrace-parent", "-1 EPERM");
}

/// Puts the host's hostname back when dropped, if it was changed.
struct RestoreHostname(String);

impl Drop for RestoreHostname {
    fn drop(&mut self) {
        let path = "/proc/sys/kernel/hostname";
        if std::fs::read_to_string(path).is_ok_and(|now| now != self.0) {
            let _ = std::fs::write(path, &self.0);
        }
    }
}

#[test]
fn hostname_is_private_and_fixed() {
    if !can_run("hostname_is_private_and_fixed") {
        return;
    }
    let f = Fixture::new("iso-uts");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    // Should the sandbox share the host's UTS namespace after all, its
    // `confine` (or the agent's `pwned`) must not stay the host's name.
    let _restore = RestoreHostname(host.clone());
    assert_ne!(
        host.trim(),
        "confine",
        "the host's own name hides the UTS namespace"
    );
    let py = r#"
import errno, socket
print("before", socket.gethostname())
try:
    socket.sethostname("pwned")
    print("set ok")
except OSError as e:
    print("set", errno.errorcode[e.errno])
print("after", open("/proc/sys/kernel/hostname").read().strip())
"#;
    let o = f.run("default", &["python3", "-c", py]);
    assert_status(&o, 0);
    let got = labelled(&stdout(&o));
    assert_eq!(
        got.get("before").map(String::as_str),
        Some("confine"),
        "{}",
        show(&o)
    );
    let set = got.get("set").map(String::as_str);
    assert!(
        matches!(set, Some("EPERM" | "ENOSYS")),
        "sethostname: {set:?}\n{}",
        show(&o)
    );
    assert_eq!(
        got.get("after").map(String::as_str),
        Some("confine"),
        "{}",
        show(&o)
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
}

/// Keys of the System V shared memory segments in this IPC namespace.
fn shm_keys() -> Vec<i32> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Removes the host's segment with this key, if any, when dropped.
struct Segment(i32);

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: shmget/shmctl with integer arguments and a NULL buffer.
        unsafe {
            let id = libc::shmget(self.0, 0, 0);
            if id >= 0 {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
}

#[test]
fn sysv_ipc_is_private() {
    if !can_run("sysv_ipc_is_private") {
        return;
    }
    let f = Fixture::new("iso-ipc");
    let host_key = (unique() % 0x3fff_ffff) as i32 + 0x4000_0000;
    let inside_key = host_key ^ 0x1555_5555;
    let _host_guard = Segment(host_key);
    let _inside_guard = Segment(inside_key);
    // SAFETY: shmget with integer arguments.
    let id = unsafe { libc::shmget(host_key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o666) };
    assert!(
        id >= 0,
        "shmget on the host: {}",
        std::io::Error::last_os_error()
    );
    assert!(shm_keys().contains(&host_key));

    let py = r#"
import ctypes, sys
def keys():
    with open("/proc/sysvipc/shm") as f:
        return [int(l.split()[0]) for l in f.readlines()[1:]]
print("before", keys())
libc = ctypes.CDLL(None, use_errno=True)
print("shmget", libc.shmget(int(sys.argv[1]), 4096, 0o1000 | 0o600) >= 0, ctypes.get_errno())
print("after", keys())
"#;
    let o = f.run("default", &["python3", "-c", py, &inside_key.to_string()]);
    assert_status(&o, 0);
    let got = labelled(&stdout(&o));
    // The host's segment isn't there; the agent's own one is (control).
    assert_eq!(
        got.get("before").map(String::as_str),
        Some("[]"),
        "{}",
        show(&o)
    );
    assert_eq!(
        got.get("shmget").map(String::as_str),
        Some("True 0"),
        "{}",
        show(&o)
    );
    assert_eq!(
        got.get("after"),
        Some(&format!("[{inside_key}]")),
        "{}",
        show(&o)
    );
    // And it never reached the host's namespace.
    let host = shm_keys();
    assert!(
        !host.contains(&inside_key),
        "the agent's segment is on the host: {host:?}"
    );
    assert!(host.contains(&host_key));
}

/// Removes a host file when dropped.
struct HostFile(PathBuf);

impl Drop for HostFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn tmp_is_a_private_tmpfs() {
    if !can_run("tmp_is_a_private_tmpfs") {
        return;
    }
    let f = Fixture::new("iso-tmp");
    let tok = token(1);
    let host_file = HostFile(PathBuf::from(format!("/tmp/confine-test-host-{tok}")));
    let inside_file = HostFile(PathBuf::from(format!("/tmp/confine-test-inside-{tok}")));
    std::fs::write(&host_file.0, "host").unwrap();
    let script = format!(
        "grep ' /tmp ' /proc/self/mountinfo | sed 's/^/mount /'
         [ -e {host} ] && echo 'host-file visible' || echo 'host-file absent'
         echo inside > {inside} && echo \"inside-file $(cat {inside})\"",
        host = host_file.0.display(),
        inside = inside_file.0.display(),
    );
    let o = f.sh("default", &script);
    assert_status(&o, 0);
    let got = labelled(&stdout(&o));
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE ...
    let mount = got
        .get("mount")
        .unwrap_or_else(|| panic!("no mount on /tmp:\n{}", show(&o)));
    let fstype = mount
        .split_once(" - ")
        .and_then(|(_, r)| r.split_whitespace().next());
    assert_eq!(fstype, Some("tmpfs"), "{}", show(&o));
    assert_eq!(
        got.get("host-file").map(String::as_str),
        Some("absent"),
        "{}",
        show(&o)
    );
    // Control: the agent can use its /tmp.
    assert_eq!(
        got.get("inside-file").map(String::as_str),
        Some("inside"),
        "{}",
        show(&o)
    );
    assert!(
        !inside_file.0.exists(),
        "the agent's /tmp file reached the host's /tmp"
    );
    assert_eq!(std::fs::read_to_string(&host_file.0).unwrap(), "host");
}

/// `Key:\tvalue` of /proc/PID/status.
fn status_field(pid: i32, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// `key=status` lines, as the probes below print them.
fn exits(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What each of `pid`'s descriptors refers to, by number.
fn fd_targets(pid: i32) -> BTreeMap<i32, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let t = std::fs::read_link(e.path()).ok()?;
            Some((n, t.display().to_string()))
        })
        .collect()
}

#[test]
fn init_holds_only_its_pipes_and_is_not_dumpable() {
    if !can_run("init_holds_only_its_pipes_and_is_not_dumpable") {
        return;
    }
    let f = Fixture::new("iso-init");
    let log = f.root.join("audit.log");
    let stray = f.file(&f.outside.join("stray"), "stray descriptor\n");
    let stray_file = std::fs::File::open(&stray).unwrap();
    let stray_fd = std::os::fd::AsRawFd::as_raw_fd(&stray_file);
    let tok = token(1000);
    // Inside: the init's environment and memory can't be opened; the
    // control opens the agent's own shell's memory, which the same checks
    // allow (same uid, dumpable).
    let script = format!(
        "cat /proc/1/environ >/dev/null 2>&1; echo in_environ=$?; \
         (exec 3</proc/1/mem) 2>/dev/null; echo in_mem=$?; \
         (exec 3</proc/$$/mem) 2>/dev/null; echo own_mem=$?; \
         exec sleep {tok}"
    );
    let out = f.root.join("stdout");
    let mut c = Command::new(bin());
    c.args(["run", "-p", "default", "-w"])
        .arg(&f.ws)
        .arg("--audit-log")
        .arg(&log)
        .args(["--", "/bin/sh", "-c", &script])
        .env("PATH", PATH)
        .current_dir(&f.ws)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(f.root.join("stderr")).unwrap());
    // A stray descriptor of the caller's, without CLOEXEC, on fd 7.
    // SAFETY: the closure only calls dup2, which is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(stray_fd, 7) == 7 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    };
    let mut confine = HostProcess(c.spawn().unwrap());
    let sup = confine.pid();
    let agent = poll_for(Duration::from_secs(30), || {
        processes_with_arg(&tok).first().map(|(pid, _)| *pid)
    })
    .expect("the agent never started");
    let init: i32 = status_field(agent, "PPid").unwrap().parse().unwrap();
    // Control: that is the sandbox's init, the supervisor's child.
    assert_eq!(
        status_field(init, "PPid").unwrap(),
        sup.to_string(),
        "{agent}'s parent {init} is not the supervisor's child"
    );
    let log_s = log.display().to_string();
    let stray_s = stray.display().to_string();
    // Control: the supervisor holds both the audit log and the stray fd,
    // so the listing below would show them.
    let held = fd_targets(sup);
    assert!(held.values().any(|t| *t == log_s), "{held:?}");
    assert_eq!(held.get(&7), Some(&stray_s), "{held:?}");

    // Once the agent runs, the init needs one descriptor: the pipe that
    // tells the supervisor the agent's status. Not the audit log, not the
    // caller's stray fd, not the caller's stdio (the agent has its own).
    let init_fds = fd_targets(init);
    assert!(
        init_fds.len() == 1 && init_fds.values().all(|t| t.starts_with("pipe:")),
        "the init holds more than its status pipe: {init_fds:?}"
    );

    // Outside, as the agent's uid: the agent is dumpable and readable, the
    // init, of the same uid, is neither.
    let probe = format!(
        "cat /proc/{init}/environ >/dev/null 2>&1; echo init_environ=$?; \
         (exec 3</proc/{init}/mem) 2>/dev/null; echo init_mem=$?; \
         cat /proc/{agent}/environ >/dev/null 2>&1; echo agent_environ=$?; \
         (exec 3</proc/{agent}/mem) 2>/dev/null; echo agent_mem=$?"
    );
    let o = as_agent_unconfined(&["/bin/sh", "-c", &probe]);
    assert_status(&o, 0);
    let got = exits(&stdout(&o));
    for (key, zero) in [
        ("init_environ", false),
        ("init_mem", false),
        ("agent_environ", true),
        ("agent_mem", true),
    ] {
        let v = got
            .get(key)
            .unwrap_or_else(|| panic!("no {key}\n{}", show(&o)));
        assert_eq!(v == "0", zero, "{key}\n{}", show(&o));
    }

    // SAFETY: kill with integer arguments; the supervisor is our unreaped child.
    assert_eq!(unsafe { libc::kill(sup, libc::SIGTERM) }, 0);
    assert!(poll(Duration::from_secs(30), || !confine.alive()));
    let inside = std::fs::read_to_string(&out).unwrap();
    let got = exits(&inside);
    for (key, zero) in [("in_environ", false), ("in_mem", false), ("own_mem", true)] {
        let v = got.get(key).unwrap_or_else(|| panic!("no {key}\n{inside}"));
        assert_eq!(v == "0", zero, "{key}\n{inside}");
    }
    drop(stray_file);
}
