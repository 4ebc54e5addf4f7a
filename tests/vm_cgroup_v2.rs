//! Pure cgroup v2, as on most users' machines, in a virtual machine: this
//! host binds memory, pids and cpu to cgroup v1, so the v2 code paths for
//! `limits.memory` can only meet a real kernel in a guest where v2 has every
//! controller. The guest is the distribution's own kernel (Debian 12: Linux
//! 6.1, Landlock ABI 2), booted by qemu into an initramfs holding busybox,
//! the confine binary under test and a script; no disk, no network.
//!
//! In the guest, systemd's delegation is laid out by hand (the kernel's
//! no-internal-processes rule is what matters, and that is real):
//! - `alone.service`: Delegate=yes (the cgroup marked `trusted.delegate`,
//!   as systemd marks it), confine the only process in the unit's cgroup.
//!   confine must step aside into a leaf, enforce the limit, and leave the
//!   cgroup exactly as it found it. `plain.service`, the same without the
//!   mark, isn't confine's to rearrange: strict refuses.
//! - `sub.service`: Delegate=yes with DelegateSubgroup=supervisor. confine
//!   runs in `sub.service/supervisor` and must create the sandbox's cgroup
//!   next to it, under the delegated unit cgroup.
//! - `crowded.service`: another process shares confine's cgroup and nothing
//!   is delegated above it: `limits.memory` can't be enforced, so strict
//!   refuses with 125 and best-effort runs without it, saying so.
//!
//! - Before the guest leaves its initramfs: confine on the initramfs root
//!   itself (which pivot_root can't move) must refuse, saying why.
//!
//! Each attempt (a 200 MiB allocation under `limits.memory: 64M`, which
//! must end as an OOM kill, exit 137) has a control (8 MiB, exit 0). The
//! guest also checks `limits.pids` (40 forks under 16, next to 40 without)
//! and `wall_time` on v2, `confine freeze`, `thaw` and `stop` through
//! cgroup.freeze and cgroup.kill, and, on kernel 6.1, that the built-in default
//! profile lets the agent write its workspace and nothing else.
//!
//! Needs qemu-system-x86_64, busybox (static) and a kernel image:
//! `CONFINE_VM_KERNEL`, else the newest readable /boot/vmlinuz-*. `.ci/run`
//! installs all three. Skips without them, fails under
//! CONFINE_REQUIRE_KERNEL=1.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, skip_or_fail};

/// Runs as /init in the guest. Every result is one `CHECK <name> ok` or
/// `CHECK <name> FAIL <detail>` line on the serial console.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
# pivot_root(2) can't move the initramfs (rootfs) itself, and neither
# confine nor any other pivot_root sandbox runs there: move to a tmpfs
# root first, as a distribution's initramfs does.
if [ "$1" != switched ]; then
    # On the initramfs itself confine must refuse with a reason.
    mount -t proc proc /proc
    mount -t devtmpfs dev /dev
    /bin/confine run -w /ws -- true 2>/rootfs.err
    echo $? >/rootfs.rc
    umount /proc /dev
    mkdir /newroot
    mount -t tmpfs -o mode=755 root /newroot
    for d in bin etc lib lib64 usr ws init mem.yaml rootfs.err rootfs.rc; do cp -a /$d /newroot/; done
    mkdir /newroot/dev /newroot/proc /newroot/sys /newroot/tmp
    exec switch_root /newroot /init switched
fi
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
CG=/sys/fs/cgroup

check() { # name, status of the test, detail on failure
    if [ "$2" = 0 ]; then echo "CHECK $1 ok"; else echo "CHECK $1 FAIL $3" | tr '\n' ' '; echo; fi
}
# `sh -c "$IN" DIR CMD...` runs CMD as a process of cgroup DIR, as
# systemd does for ExecStart=; with `&`, $! is CMD's pid.
IN='echo $$ > "$0/cgroup.procs" && exec "$@"'
run_in() { sh -c "$IN" "$@"; }
subdirs() { find "$1" -mindepth 1 -type d | sort | tr '\n' ' '; }
# Waits up to 60 s for a command to succeed: emulation on a busy host is slow.
until_ok() { i=0; until "$@" || [ $i -ge 600 ]; do sleep 0.1; i=$((i+1)); done; }
hog() { # where, log name, size
    run_in "$1" /bin/confine run -p /mem.yaml -w /ws --audit-log "/tmp/$2.jsonl" -- \
        dd if=/dev/zero of=/dev/null bs="$3" count=1 2>"/tmp/$2.err"
}

echo "+memory +pids +cpu" > $CG/cgroup.subtree_control
mkdir $CG/system.slice
echo "+memory +pids +cpu" > $CG/system.slice/cgroup.subtree_control
echo "CONTROLLERS $(cat $CG/system.slice/cgroup.controllers)"
echo "KERNEL $(uname -r)"
/bin/confine probe 2>&1 | grep -i -E 'landlock|memory' | sed 's/^/PROBE /'

[ "$(cat /rootfs.rc)" = 125 ] && grep -q 'initramfs (rootfs)' /rootfs.err
check initramfs_root_refused_with_reason $? "rc=$(cat /rootfs.rc) $(cat /rootfs.err)"

# --- Delegate=yes, confine alone in the unit's cgroup.
S=$CG/system.slice/alone.service
mkdir $S
setfattr -n trusted.delegate -v 1 $S
rm -f /ws/started
sh -c "$IN" $S /bin/confine run -p /mem.yaml -w /ws -- sh -c 'echo > /ws/started; sleep 5' &
bg=$!
until_ok test -e /ws/started
leaf=$(find $S -mindepth 1 -maxdepth 1 -type d -name 'confine-*-supervisor')
box=$(find $S -mindepth 1 -maxdepth 1 -type d -name 'confine-*' ! -name '*-supervisor')
[ -n "$leaf" ] && [ "$(cat $leaf/cgroup.procs)" = "$bg" ]
check alone_supervisor_in_leaf $? "leaf=$leaf procs=$(cat $leaf/cgroup.procs 2>&1) confine=$bg dirs=$(subdirs $S)"
[ -n "$box" ] && [ "$(cat $box/memory.max)" = 67108864 ] && [ -n "$(cat $box/cgroup.procs)" ]
check alone_sandbox_cgroup_has_the_limit $? "box=$box max=$(cat $box/memory.max 2>&1) procs=$(cat $box/cgroup.procs 2>&1)"
[ -z "$(cat $S/cgroup.procs)" ]
check alone_unit_cgroup_emptied $? "procs=$(cat $S/cgroup.procs)"
wait $bg
check alone_agent_exits_0 $? ""

hog $S alone_hog 200M; rc=$?
[ $rc = 137 ]; check alone_hog_oom_137 $? "rc=$rc $(cat /tmp/alone_hog.err)"
grep -q '"reason":"oom"' /tmp/alone_hog.jsonl; check alone_hog_audit_oom $? "$(cat /tmp/alone_hog.jsonl)"
grep -q 'memory limit' /tmp/alone_hog.err; check alone_hog_stderr_says_so $? "$(cat /tmp/alone_hog.err)"
hog $S alone_ctl 8M; rc=$?
[ $rc = 0 ]; check alone_control_exits_0 $? "rc=$rc $(cat /tmp/alone_ctl.err)"
[ -z "$(subdirs $S)" ] && [ -z "$(cat $S/cgroup.subtree_control)" ] && [ -z "$(cat $S/cgroup.procs)" ]
check alone_left_as_found $? "dirs=$(subdirs $S) subtree=$(cat $S/cgroup.subtree_control) procs=$(cat $S/cgroup.procs)"

# --- Alone, but in a cgroup nobody delegated: its manager may rewrite
# subtree_control under a running sandbox, so confine doesn't rearrange it.
S=$CG/system.slice/plain.service
mkdir $S
hog $S plain_strict 8M; rc=$?
[ $rc = 125 ] && grep -q 'no-internal-processes' /tmp/plain_strict.err
check plain_not_delegated_refuses $? "rc=$rc $(cat /tmp/plain_strict.err)"
[ -z "$(subdirs $S)" ] && [ -z "$(cat $S/cgroup.subtree_control)" ]
check plain_left_as_found $? "dirs=$(subdirs $S) subtree=$(cat $S/cgroup.subtree_control)"

# --- Delegate=yes + DelegateSubgroup=supervisor.
S=$CG/system.slice/sub.service
mkdir $S $S/supervisor
setfattr -n trusted.delegate -v 1 $S
rm -f /ws/started
sh -c "$IN" $S/supervisor /bin/confine run -p /mem.yaml -w /ws -- sh -c 'echo > /ws/started; sleep 5' &
bg=$!
until_ok test -e /ws/started
box=$(find $S -mindepth 1 -maxdepth 1 -type d -name 'confine-*')
[ -n "$box" ] && [ "$(cat $box/memory.max)" = 67108864 ] && [ "$(cat $S/supervisor/cgroup.procs)" = "$bg" ]
check sub_sandbox_next_to_supervisor $? "dirs=$(subdirs $S) supervisor=$(cat $S/supervisor/cgroup.procs) confine=$bg"
wait $bg
hog $S/supervisor sub_hog 200M; rc=$?
[ $rc = 137 ]; check sub_hog_oom_137 $? "rc=$rc $(cat /tmp/sub_hog.err)"
grep -q '"reason":"oom"' /tmp/sub_hog.jsonl; check sub_hog_audit_oom $? "$(cat /tmp/sub_hog.jsonl)"
hog $S/supervisor sub_ctl 8M; rc=$?
[ $rc = 0 ]; check sub_control_exits_0 $? "rc=$rc $(cat /tmp/sub_ctl.err)"
[ "$(subdirs $S)" = "$S/supervisor " ]
check sub_left_as_found $? "dirs=$(subdirs $S)"

# --- Another process in confine's cgroup, nothing delegated above.
S=$CG/system.slice/crowded.service
mkdir $S
sh -c "$IN" $S sleep 60 &
other=$!
until_ok grep -q . $S/cgroup.procs
hog $S crowded_strict 8M; rc=$?
[ $rc = 125 ] && grep -q 'no-internal-processes' /tmp/crowded_strict.err && grep -q 'DelegateSubgroup' /tmp/crowded_strict.err
check crowded_strict_refuses $? "rc=$rc $(cat /tmp/crowded_strict.err)"
run_in $S /bin/confine run -p /mem.yaml --set compat=best-effort -w /ws -- true 2>/tmp/crowded_be.err; rc=$?
[ $rc = 0 ] && grep -q 'limits.memory' /tmp/crowded_be.err
check crowded_best_effort_runs_and_says_so $? "rc=$rc $(cat /tmp/crowded_be.err)"
[ "$(cat $S/cgroup.procs)" = "$other" ] && [ -z "$(subdirs $S)" ]
check crowded_left_as_found $? "procs=$(cat $S/cgroup.procs) dirs=$(subdirs $S)"
kill $other

# --- limits.pids on v2 (a threaded controller) and wall_time with cgroup.kill.
S=$CG/system.slice/pids.service
mkdir $S
setfattr -n trusted.delegate -v 1 $S
# One line per fork that worked; the shell gives up at the first refusal.
forks='i=0; while [ $i -lt 40 ]; do sleep 3 & echo forked; i=$((i+1)); done'
n=$(run_in $S /bin/confine run -p /mem.yaml --set limits.pids=16 -w /ws -- sh -c "$forks" 2>/tmp/pids.err | grep -c forked)
[ "$n" -le 16 ] && grep -q "can't fork" /tmp/pids.err; check pids_16_contains_40_forks $? "n=$n $(cat /tmp/pids.err)"
n=$(run_in $S /bin/confine run -p /mem.yaml -w /ws -- sh -c "$forks" 2>/tmp/pids.err | grep -c forked)
[ "$n" = 40 ]; check pids_control_forks_40 $? "n=$n $(cat /tmp/pids.err)"
run_in $S /bin/confine run -p /mem.yaml --set limits.wall_time=1s --set limits.grace=1s -w /ws \
    -- sh -c 'trap "" TERM; sleep 30 & sleep 30' 2>/tmp/wt.err; rc=$?
[ $rc = 124 ]; check wall_time_124 $? "rc=$rc $(cat /tmp/wt.err)"
[ -z "$(subdirs $S)" ] && [ -z "$(cat $S/cgroup.procs)" ]
check pids_left_as_found $? "dirs=$(subdirs $S) procs=$(cat $S/cgroup.procs)"

# --- The kill switch on v2: freeze and thaw by cgroup.freeze, stop by
# TERM then cgroup.kill, with a counting loop to show what each did.
S=$CG/system.slice/control.service
mkdir -p /run $S
setfattr -n trusted.delegate -v 1 $S
rm -f /ws/count
run_in $S /bin/confine run -p /mem.yaml -w /ws -- \
    sh -c 'trap "" TERM; i=0; while :; do i=$((i+1)); echo $i > /ws/count; sleep 0.1; done' 2>/tmp/ctl.err &
bg=$!
until_ok test -s /ws/count
box=$(find $S -mindepth 1 -maxdepth 1 -type d -name 'confine-*' ! -name '*-supervisor')
id=${box##*/confine-}
/bin/confine freeze "$id" >/tmp/freeze.out 2>&1; rc=$?
a=$(cat /ws/count); sleep 1; b=$(cat /ws/count)
[ $rc = 0 ] && [ -n "$box" ] && [ "$(cat $box/cgroup.freeze)" = 1 ] && grep -q 'frozen 1' $box/cgroup.events && [ "$a" = "$b" ]
check v2_freeze_stops_the_loop $? "rc=$rc $(cat /tmp/freeze.out) box=$box freeze=$(cat $box/cgroup.freeze 2>&1) a=$a b=$b"
/bin/confine thaw "$id" >/tmp/thaw.out 2>&1; rc=$?
until_ok test "$(cat /ws/count)" != "$b"
[ $rc = 0 ] && [ "$(cat $box/cgroup.freeze)" = 0 ] && [ "$(cat /ws/count)" != "$b" ]
check v2_thaw_resumes_the_loop $? "rc=$rc $(cat /tmp/thaw.out) count=$(cat /ws/count) b=$b"
# The loop ignores TERM: only the kill after the grace ends it.
/bin/confine stop "$id" --grace 1s >/tmp/stop.out 2>&1; rc=$?
left=$(cat $box/cgroup.procs 2>/dev/null)
wait $bg; st=$?
[ $rc = 0 ] && [ -z "$left" ] && [ $st = 137 ]
check v2_stop_leaves_nothing $? "rc=$rc $(cat /tmp/stop.out) left=$left status=$st $(cat /tmp/ctl.err)"
[ -z "$(subdirs $S)" ] && [ -z "$(cat $S/cgroup.procs)" ]
check v2_control_left_as_found $? "dirs=$(subdirs $S) procs=$(cat $S/cgroup.procs)"

# --- Kernel 6.1: the built-in default profile, workspace writable, rest not.
/bin/confine run -w /ws -- sh -c 'echo in > /ws/inside' 2>/tmp/ws.err
[ "$(cat /ws/inside 2>/dev/null)" = in ]; check default_writes_workspace $? "$(cat /tmp/ws.err)"
/bin/confine run -w /ws -- sh -c 'echo out > /etc/outside' 2>/tmp/out.err; rc=$?
[ $rc != 0 ] && [ ! -e /etc/outside ]; check default_cant_write_etc $? "rc=$rc $(cat /tmp/out.err)"

echo "CHECKS DONE"
poweroff -f
"#;

/// The profile of the memory checks: the built-in default plus the limit.
const MEM_PROFILE: &str =
    "version: 1\nname: vm-mem\nextends: default\nlimits:\n  memory: 64M\n  wall_time: 60s\n";

/// The checks the guest must report, all `ok`.
const EXPECTED: &[&str] = &[
    "initramfs_root_refused_with_reason",
    "alone_supervisor_in_leaf",
    "alone_sandbox_cgroup_has_the_limit",
    "alone_unit_cgroup_emptied",
    "alone_agent_exits_0",
    "alone_hog_oom_137",
    "alone_hog_audit_oom",
    "alone_hog_stderr_says_so",
    "alone_control_exits_0",
    "alone_left_as_found",
    "plain_not_delegated_refuses",
    "plain_left_as_found",
    "sub_sandbox_next_to_supervisor",
    "sub_hog_oom_137",
    "sub_hog_audit_oom",
    "sub_control_exits_0",
    "sub_left_as_found",
    "crowded_strict_refuses",
    "crowded_best_effort_runs_and_says_so",
    "crowded_left_as_found",
    "pids_16_contains_40_forks",
    "pids_control_forks_40",
    "wall_time_124",
    "pids_left_as_found",
    "v2_freeze_stops_the_loop",
    "v2_thaw_resumes_the_loop",
    "v2_stop_leaves_nothing",
    "v2_control_left_as_found",
    "default_writes_workspace",
    "default_cant_write_etc",
];

/// The owner of the guest's workspace, so the agent runs as this uid.
const WS_UID: u32 = 1000;

#[test]
fn pure_cgroup_v2_memory_limits_in_a_vm() {
    let test = "pure_cgroup_v2_memory_limits_in_a_vm";
    let Some(qemu) = which("qemu-system-x86_64") else {
        skip_or_fail(test, "qemu-system-x86_64 isn't installed");
        return;
    };
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        skip_or_fail(test, "busybox isn't installed");
        return;
    };
    let Some(kernel) = kernel_image() else {
        skip_or_fail(
            test,
            "no kernel image: set CONFINE_VM_KERNEL or install one in /boot",
        );
        return;
    };
    let Some(setfattr) = which("setfattr") else {
        skip_or_fail(test, "setfattr (package attr) isn't installed");
        return;
    };

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("vm-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("vm dir");
    let initrd = dir.join("initrd.cpio");
    let mut cpio = Cpio::default();
    for d in [
        "/bin", "/dev", "/proc", "/sys", "/tmp", "/etc", "/usr", "/lib", "/lib64",
    ] {
        cpio.dir(d, 0o755, 0);
    }
    cpio.dir("/ws", 0o755, WS_UID);
    cpio.file("/init", INIT.as_bytes(), 0o755);
    cpio.file("/mem.yaml", MEM_PROFILE.as_bytes(), 0o644);
    cpio.file("/etc/passwd", b"root:x:0:0::/:/bin/sh\n", 0o644);
    cpio.binary(&busybox, "/bin/busybox");
    cpio.binary(Path::new(bin()), "/bin/confine");
    cpio.binary(&setfattr, "/bin/setfattr");
    fs::write(&initrd, cpio.finish()).expect("write initrd");

    // Software emulation: KVM isn't always usable (nested virtualisation),
    // and this guest boots in about 15 s without it.
    let mut cmd = Command::new(qemu);
    cmd.args(["-m", "1024", "-smp", "2", "-no-reboot", "-nodefaults"])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 quiet rdinit=/init lsm=landlock,yama cgroup_no_v1=all",
        ]);
    cmd.args(["-cpu", "max"]);
    let limit = Duration::from_secs(600);
    let console = run_with_timeout(cmd, limit);

    let results: BTreeMap<String, String> = console
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CHECK "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, rest)| (name.to_string(), rest.to_string()))
        .collect();
    let failed: Vec<String> = EXPECTED
        .iter()
        .filter(|name| results.get(**name).map(String::as_str) != Some("ok"))
        .map(|name| format!("{name}: {}", results.get(*name).map_or("missing", |s| s)))
        .collect();
    assert!(
        failed.is_empty() && console.contains("CHECKS DONE"),
        "guest checks failed:\n  {}\n--- console (kernel {}):\n{console}",
        failed.join("\n  "),
        kernel.display()
    );
    let _ = fs::remove_dir_all(&dir);
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// `CONFINE_VM_KERNEL`, else the newest readable /boot/vmlinuz-*.
fn kernel_image() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("CONFINE_VM_KERNEL") {
        return Some(PathBuf::from(k));
    }
    let mut found: Vec<PathBuf> = fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                && fs::File::open(p).is_ok()
        })
        .collect();
    found.sort();
    found.pop()
}

/// Runs qemu, returns everything it printed; kills it (by its pid) if the
/// guest hasn't powered off within `limit`.
fn run_with_timeout(mut cmd: Command, limit: Duration) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu");
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait qemu") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let console = String::from_utf8_lossy(&reader.join().expect("reader")).into_owned();
    match status {
        Some(_) => format!("{console}\n--- qemu stderr:\n{err}"),
        None => panic!(
            "the guest didn't finish within {}s\n--- console:\n{console}\n--- qemu stderr:\n{err}",
            limit.as_secs()
        ),
    }
}

/// An uncompressed initramfs in the kernel's `newc` cpio format.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
    have: Vec<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, uid: u32, data: &[u8]) {
        if self.have.iter().any(|h| h == name) {
            return;
        }
        self.have.push(name.to_string());
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [
            self.ino,
            mode,
            uid,
            uid,
            1,
            0,
            u32::try_from(data.len()).expect("file under 4 GiB"),
            0,
            0,
            0,
            0,
            u32::try_from(name.len() + 1).expect("short name"),
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str, perm: u32, uid: u32) {
        self.entry(name, 0o040_000 | perm, uid, &[]);
    }

    fn file(&mut self, name: &str, data: &[u8], perm: u32) {
        self.entry(name, 0o100_000 | perm, 0, data);
    }

    /// Parent directories of `path`, which the kernel won't create itself.
    fn parents(&mut self, path: &str) {
        let mut p = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for part in &parts[..parts.len() - 1] {
            p.push('/');
            p.push_str(part);
            self.dir(&p.clone(), 0o755, 0);
        }
    }

    /// The program at `host` as `guest`, with the shared libraries `ldd`
    /// names at their own paths.
    fn binary(&mut self, host: &Path, guest: &str) {
        let data = fs::read(host).unwrap_or_else(|e| panic!("{}: {e}", host.display()));
        let perm = fs::metadata(host).expect("stat").permissions().mode() & 0o7777;
        self.parents(guest);
        self.file(guest, &data, perm | 0o555);
        let ldd = Command::new("ldd").arg(host).output().expect("run ldd");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = match line.split_once("=>") {
                Some((_, right)) => right.trim().split(' ').next().unwrap_or(""),
                None => line.trim().split(' ').next().unwrap_or(""),
            };
            if path.starts_with('/') {
                let real = fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
                let lib = fs::read(&real).unwrap_or_else(|e| panic!("{path}: {e}"));
                self.parents(path);
                self.file(path, &lib, 0o755);
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, &[]);
        self.out
    }
}
