//! Kernel enforcement, the filesystem part (DESIGN.md §6): no write,
//! create, remove, rename, truncate, chmod, chown, utime or xattr change
//! outside `filesystem.write`; no read outside `read`/`write`; no execute
//! outside `exec`, neither by execve nor through the dynamic loader;
//! rename/link can't move a file across a grant boundary.
//!
//! Every test runs the real binary, attempts the violation, and runs a
//! control that does the same thing where the profile allows it, so the
//! test can fail. The evidence is the errno seen inside (from a small
//! Python helper, [`OPS_PY`]) or the exit status and message of the
//! shell tool, and the files on the host, unchanged.
//!
//! Two layers stop a filesystem attack, and the errno says which one did:
//! - the mount view (src/sandbox/mounts.rs): a path that isn't granted
//!   doesn't exist in the sandbox (`ENOENT`), a read or exec grant is a
//!   read-only bind (`EROFS`), noexec wherever exec isn't granted (`EACCES`
//!   for execve, `EPERM` for `mmap(PROT_EXEC)`, which is what `ld.so` needs);
//!   a rename or link between two binds fails with `EXDEV`;
//! - Landlock: `EACCES` (`EXDEV` for a rename only REFER forbids).
//!
//! The mount view answers first wherever it applies; the sets of errnos
//! the tests accept are the mount view's and Landlock's for that
//! operation, nothing broader. Two tests show Landlock on its own: a
//! character device can't be made in the workspace (the view's binds are
//! writable there) and /proc is read-only (procfs is mounted read-write).
//!
//! Every attack is harmless if it succeeds: it targets files of the
//! test's own fixture, owned by the agent's uid (mode 0666 where it
//! matters), so that only the sandbox stops it.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{chown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

/// Landlock at all: the tests that show Landlock on its own need it, and
/// `run` refuses the built-in profiles without it.
const ABI: u32 = 1;
/// REFER (ABI 2): without it a rename across directories is denied even
/// inside a write grant, so the workspace controls that do one would fail.
const ABI_REFER: u32 = 2;

/// The path isn't in the sandbox's view (ENOENT); EACCES is Landlock's
/// answer where the path is visible but not granted.
const HIDDEN: &[&str] = &["ENOENT", "EACCES"];
/// A read-only grant: the read-only bind (EROFS) or Landlock (EACCES).
const READ_ONLY: &[&str] = &["EROFS", "EACCES"];
/// A rename or hard link between a write grant and a read-only grant:
/// two mounts (EXDEV), or Landlock (EXDEV when only REFER is missing,
/// EACCES when the destination may not be created).
const CROSS: &[&str] = &["EXDEV", "EACCES"];
const OK: &[&str] = &["OK"];

/// The attack helper, run as `python3 -c OPS_PY LABEL|OP|ARG[|ARG]...`.
/// For each argument it prints `LABEL => OK` or `LABEL => ERRNO`; `read`
/// prints `OK <first line of the content>`.
const OPS_PY: &str = r#"
import errno, mmap, os, sys

def run(op, a):
    p = a[0]
    if op == "read":
        with open(p, "rb") as f:
            return "OK " + f.read().decode(errors="replace").split("\n")[0]
    elif op == "list":
        os.listdir(p)
    elif op == "write":
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"pwned\n")
        os.close(fd)
    elif op == "create":
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    elif op == "otrunc":
        os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
    elif op == "truncate":
        os.truncate(p, 0)
    elif op == "mkdir":
        os.mkdir(p)
    elif op == "unlink":
        os.unlink(p)
    elif op == "rmdir":
        os.rmdir(p)
    elif op == "rename":
        os.rename(p, a[1])
    elif op == "link":
        os.link(p, a[1])
    elif op == "symlink":
        os.symlink(a[1], p)
    elif op == "mkfifo":
        os.mkfifo(p)
    elif op == "mknod_fifo":
        os.mknod(p, 0o600 | 0o010000)
    elif op == "mknod_chr":
        # /dev/null's numbers: harmless even if it were made.
        os.mknod(p, 0o600 | 0o020000, os.makedev(1, 3))
    elif op == "chmod":
        os.chmod(p, 0o600)
    elif op == "chown":
        os.chown(p, os.getuid(), os.getgid())
    elif op == "utime":
        os.utime(p, (946684800, 946684800))
    elif op == "setxattr":
        os.setxattr(p, "user.confine", b"pwned")
    elif op == "reopen_w":
        # A read-only fd re-opened for writing through its magic link.
        fd = os.open(p, os.O_RDONLY)
        w = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_APPEND)
        os.write(w, b"pwned\n")
        os.close(w)
        os.close(fd)
    elif op == "mmap_exec":
        # What ld.so does with a program it is asked to run.
        fd = os.open(p, os.O_RDONLY)
        try:
            m = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_EXEC)
            m.close()
        finally:
            os.close(fd)
    elif op == "open_w":
        os.close(os.open(p, os.O_WRONLY))
    else:
        raise SystemExit("unknown op " + op)
    return "OK"

for spec in sys.argv[1:]:
    label, op, *args = spec.split("|")
    try:
        r = run(op, args)
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    print(label + " => " + r, flush=True)
"#;

/// One operation for [`OPS_PY`]: `LABEL|OP|ARG...`.
fn op(label: &str, name: &str, args: &[&Path]) -> String {
    let mut s = format!("{label}|{name}");
    for a in args {
        let a = a.to_str().expect("fixture paths are UTF-8");
        assert!(!a.contains('|'), "{a}");
        s.push('|');
        s.push_str(a);
    }
    s
}

/// What [`OPS_PY`] reported, by label.
struct Results {
    out: Output,
    by_label: BTreeMap<String, String>,
}

impl Results {
    #[track_caller]
    fn expect(&self, label: &str, allowed: &[&str]) {
        let got = self
            .by_label
            .get(label)
            .unwrap_or_else(|| panic!("no result for {label}: {}", show(&self.out)));
        assert!(
            allowed.contains(&got.as_str()),
            "{label}: got {got}, expected one of {allowed:?}\n{}",
            show(&self.out)
        );
    }

    #[track_caller]
    fn expect_all(&self, labels: &[&str], allowed: &[&str]) {
        for l in labels {
            self.expect(l, allowed);
        }
    }
}

/// Runs the operations inside the sandbox, in order.
fn ops(f: &Fixture, profile: &str, specs: &[String]) -> Results {
    let mut cmd = vec!["/usr/bin/python3", "-c", OPS_PY];
    cmd.extend(specs.iter().map(String::as_str));
    let out = f.run(profile, &cmd);
    assert_status(&out, 0);
    let mut by_label = BTreeMap::new();
    for line in stdout(&out).lines() {
        if let Some((l, r)) = line.split_once(" => ") {
            by_label.insert(l.to_string(), r.to_string());
        }
    }
    assert_eq!(by_label.len(), specs.len(), "{}", show(&out));
    Results { out, by_label }
}

/// The labels of [`write_ops`], in order.
const WRITE_LABELS: &[&str] = &[
    "write", "create", "otrunc", "truncate", "mkdir", "unlink", "rmdir", "rename", "refer", "link",
    "symlink", "mkfifo", "chmod", "chown", "utime", "setxattr",
];

/// Every way of changing the tree under `t` (populated by [`populate`]),
/// labelled `PREFIX.NAME` with the names of [`WRITE_LABELS`].
fn write_ops(prefix: &str, t: &Path) -> Vec<String> {
    let l = |n: &str| format!("{prefix}.{n}");
    vec![
        op(&l("write"), "write", &[&t.join("victim")]),
        op(&l("create"), "create", &[&t.join("new")]),
        op(&l("otrunc"), "otrunc", &[&t.join("trunc1")]),
        op(&l("truncate"), "truncate", &[&t.join("trunc2")]),
        op(&l("mkdir"), "mkdir", &[&t.join("newdir")]),
        op(&l("unlink"), "unlink", &[&t.join("rmme")]),
        op(&l("rmdir"), "rmdir", &[&t.join("emptydir")]),
        op(&l("rename"), "rename", &[&t.join("mvme"), &t.join("moved")]),
        // Across directories of the same tree: Landlock's REFER right.
        op(&l("refer"), "rename", &[&t.join("a/x"), &t.join("b/x")]),
        op(
            &l("link"),
            "link",
            &[&t.join("victim"), &t.join("hardlink")],
        ),
        op(
            &l("symlink"),
            "symlink",
            &[&t.join("symlink"), Path::new("victim")],
        ),
        op(&l("mkfifo"), "mkfifo", &[&t.join("fifo")]),
        op(&l("chmod"), "chmod", &[&t.join("meta")]),
        op(&l("chown"), "chown", &[&t.join("meta")]),
        op(&l("utime"), "utime", &[&t.join("meta")]),
        op(&l("setxattr"), "setxattr", &[&t.join("meta")]),
    ]
}

fn labels(prefix: &str) -> Vec<String> {
    WRITE_LABELS
        .iter()
        .map(|n| format!("{prefix}.{n}"))
        .collect()
}

#[track_caller]
fn expect_writes(r: &Results, prefix: &str, allowed: &[&str]) {
    for l in labels(prefix) {
        r.expect(&l, allowed);
    }
}

/// Files and directories for [`write_ops`] and the shell attacks under
/// `t`, all owned by the agent.
fn populate(f: &Fixture, t: &Path) {
    for name in ["victim", "trunc1", "trunc2", "rmme", "mvme", "meta", "a/x"] {
        f.file(&t.join(name), "original\n");
    }
    for d in ["emptydir", "b"] {
        let d = t.join(d);
        fs::create_dir(&d).unwrap();
        chown(&d, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    }
}

/// Checks on the host that [`write_ops`] changed everything under `t`.
#[track_caller]
fn assert_writes_happened(t: &Path) {
    assert_eq!(
        fs::read_to_string(t.join("victim")).unwrap(),
        "original\npwned\n"
    );
    assert!(t.join("new").is_file());
    assert_eq!(fs::metadata(t.join("trunc1")).unwrap().len(), 0);
    assert_eq!(fs::metadata(t.join("trunc2")).unwrap().len(), 0);
    assert!(t.join("newdir").is_dir());
    assert!(!t.join("rmme").exists());
    assert!(!t.join("emptydir").exists());
    assert!(!t.join("mvme").exists() && t.join("moved").is_file());
    assert!(!t.join("a/x").exists() && t.join("b/x").is_file());
    assert_eq!(
        fs::metadata(t.join("hardlink")).unwrap().ino(),
        fs::metadata(t.join("victim")).unwrap().ino()
    );
    assert_eq!(
        fs::read_link(t.join("symlink")).unwrap(),
        Path::new("victim")
    );
    assert!(fs::symlink_metadata(t.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let meta = fs::metadata(t.join("meta")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.mtime(), 946684800);
    assert_eq!(xattr(&t.join("meta")).as_deref(), Some(&b"pwned"[..]));
}

/// The `user.confine` xattr of `p` (not following symlinks), if set.
fn xattr(p: &Path) -> Option<Vec<u8>> {
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = c"user.confine";
    let mut buf = [0u8; 256];
    // SAFETY: both strings are NUL-terminated and buf is writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// Everything about the tree under `dir` that an attack could change:
/// names, types, modes, owners, sizes, link counts, mtimes and ctimes,
/// contents, symlink targets and the `user.confine` xattr.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let m = fs::symlink_metadata(dir).unwrap();
        out.insert(dir.to_path_buf(), describe(dir, &m));
        if !m.is_dir() {
            return;
        }
        for e in fs::read_dir(dir).unwrap() {
            walk(&e.unwrap().path(), out);
        }
    }
    fn describe(p: &Path, m: &fs::Metadata) -> String {
        let body = if m.file_type().is_symlink() {
            format!("-> {}", fs::read_link(p).unwrap().display())
        } else if m.is_file() {
            format!("{:?}", fs::read(p).unwrap())
        } else {
            String::new()
        };
        format!(
            "mode {:o} owner {}:{} size {} nlink {} mtime {}.{} ctime {}.{} xattr {:?} {body}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            m.nlink(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            xattr(p)
        )
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

#[track_caller]
fn assert_unchanged(before: &BTreeMap<PathBuf, String>, dir: &Path, o: &Output) {
    let after = snapshot(dir);
    assert_eq!(
        before,
        &after,
        "{} changed on the host\n{}",
        dir.display(),
        show(o)
    );
}

/// A profile: `default` plus a read grant on `outside` (absolute, since
/// profile paths can't use `..`).
fn read_outside_profile(f: &Fixture) -> String {
    let yaml = format!(
        "version: 1\nname: read-outside\nextends: default\nfilesystem:\n  read: {{add: [\"{}\"]}}\n",
        f.outside.display()
    );
    f.profile("read-outside", &yaml).display().to_string()
}

/// A copy of /bin/true at `to`, mode 0755, owned by the agent.
fn copy_true(to: &Path) {
    fs::copy("/bin/true", to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    chown(to, Some(AGENT_UID), Some(AGENT_GID)).unwrap();
}

/// The dynamic loader of this architecture.
fn ld_so() -> Option<&'static str> {
    ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// `NAME=STATUS` lines of a shell script's stdout.
fn statuses(o: &Output) -> BTreeMap<String, String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[track_caller]
fn expect_status(st: &BTreeMap<String, String>, name: &str, want: &str, o: &Output) {
    assert_eq!(
        st.get(name).map(String::as_str),
        Some(want),
        "{name}\n{}",
        show(o)
    );
}

/// Shell attacks on the tree under `t` (populated by [`populate`]), each
/// followed by `NAME=STATUS`. Coreutils exit 1 on failure, a failed
/// redirection in sh exits 2.
fn shell_attacks(t: &Path) -> String {
    format!(
        r#"T='{t}'
try() {{ n=$1; shift; "$@"; echo "$n=$?"; }}
try append sh -c 'echo pwned >> "$1"' - "$T/victim"
try touch touch "$T/new"
try mkdir mkdir "$T/newdir"
try rm rm -- "$T/rmme"
try rmdir rmdir "$T/emptydir"
try mv mv "$T/mvme" "$T/moved"
try mv_refer mv "$T/a/x" "$T/b/x"
try ln ln "$T/victim" "$T/hardlink"
try truncate truncate -s 0 "$T/trunc1"
try mkfifo mkfifo "$T/fifo"
try symlink ln -s victim "$T/symlink"
try chmod chmod 600 "$T/meta"
try touch_d touch -d 2000-01-01T00:00:00Z "$T/meta"
"#,
        t = t.display()
    )
}

const SHELL_NAMES: &[&str] = &[
    "touch", "mkdir", "rm", "rmdir", "mv", "mv_refer", "ln", "truncate", "mkfifo", "symlink",
    "chmod", "touch_d",
];

/// Every stderr line ends with one of `why` (the strerror texts).
#[track_caller]
fn stderr_only(o: &Output, why: &[&str]) {
    let err = stderr(o);
    for line in err.lines().filter(|l| !l.is_empty()) {
        assert!(
            why.iter().any(|w| line.ends_with(w)),
            "unexpected error line {line:?}, expected one ending in {why:?}\n{}",
            show(o)
        );
    }
}

// ---------------------------------------------------------------------------
// Writes

/// `default`: nothing outside the workspace can be changed in any way;
/// the same operations all work in the workspace (incl. a rename across
/// directories, which needs Landlock's REFER).
#[test]
fn default_outside_unwritable_workspace_writable() {
    let name = "default_outside_unwritable_workspace_writable";
    if !can_run(name) || !require_landlock(name, ABI_REFER) {
        return;
    }
    let f = Fixture::new("fs-write");
    populate(&f, &f.outside);
    populate(&f, &f.ws);
    let before = snapshot(&f.outside);

    let mut specs = write_ops("out", &f.outside);
    // The fixture root is in the view only as an empty directory on the
    // way to the workspace; it is read-only there.
    specs.push(op("root.create", "create", &[&f.root.join("planted")]));
    specs.extend(write_ops("ws", &f.ws));
    let r = ops(&f, "default", &specs);

    expect_writes(&r, "out", HIDDEN);
    r.expect("root.create", &["EROFS", "EACCES"]);
    expect_writes(&r, "ws", OK);
    assert_unchanged(&before, &f.outside, &r.out);
    assert!(!f.root.join("planted").exists());
    assert_writes_happened(&f.ws);
}

/// A read grant (`read: [OUTSIDE]`) makes `outside` visible and readable,
/// and still nothing in it can be changed.
#[test]
fn read_grant_is_readable_not_writable() {
    let name = "read_grant_is_readable_not_writable";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-read-grant");
    populate(&f, &f.outside);
    let profile = read_outside_profile(&f);
    let before = snapshot(&f.outside);

    let mut specs = vec![
        op("read", "read", &[&f.outside.join("victim")]),
        op("list", "list", &[&f.outside]),
    ];
    specs.extend(write_ops("out", &f.outside));
    specs.push(op("out.mknod_chr", "mknod_chr", &[&f.outside.join("chr")]));
    let r = ops(&f, &profile, &specs);

    r.expect("read", &["OK original"]);
    r.expect("list", OK);
    expect_writes(&r, "out", READ_ONLY);
    r.expect("out.mknod_chr", READ_ONLY);
    assert_unchanged(&before, &f.outside, &r.out);
}

/// The built-in `readonly` profile: the workspace can be read, not changed.
#[test]
fn readonly_profile_workspace_is_readable_not_writable() {
    let name = "readonly_profile_workspace_is_readable_not_writable";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-readonly");
    populate(&f, &f.ws);
    let before = snapshot(&f.ws);

    let mut specs = vec![
        op("read", "read", &[&f.ws.join("victim")]),
        op("list", "list", &[&f.ws]),
    ];
    specs.extend(write_ops("ws", &f.ws));
    let r = ops(&f, "readonly", &specs);

    r.expect("read", &["OK original"]);
    r.expect("list", OK);
    expect_writes(&r, "ws", READ_ONLY);
    assert_unchanged(&before, &f.ws, &r.out);
}

/// The same attacks with the shell's tools (`truncate -s 0`, `mv`, `ln`,
/// `touch -d`, ...), on a hidden `outside` (default), on a read-only
/// `outside` (read grant), and the control in the workspace.
#[test]
fn shell_tools_cannot_modify_outside() {
    let name = "shell_tools_cannot_modify_outside";
    if !can_run(name) || !require_landlock(name, ABI_REFER) {
        return;
    }
    let f = Fixture::new("fs-shell");
    populate(&f, &f.outside);
    populate(&f, &f.ws);
    let before = snapshot(&f.outside);

    // Hidden: the paths don't exist in the sandbox.
    let o = f.sh("default", &shell_attacks(&f.outside));
    assert_status(&o, 0);
    let st = statuses(&o);
    expect_status(&st, "append", "2", &o);
    for n in SHELL_NAMES {
        expect_status(&st, n, "1", &o);
    }
    stderr_only(
        &o,
        &[
            "No such file or directory",
            "Directory nonexistent",
            "Permission denied",
        ],
    );
    assert_unchanged(&before, &f.outside, &o);

    // Visible and read-only.
    let o = f.sh(&read_outside_profile(&f), &shell_attacks(&f.outside));
    assert_status(&o, 0);
    let st = statuses(&o);
    expect_status(&st, "append", "2", &o);
    for n in SHELL_NAMES {
        expect_status(&st, n, "1", &o);
    }
    stderr_only(&o, &["Read-only file system", "Permission denied"]);
    assert_unchanged(&before, &f.outside, &o);

    // Control: the same script in the workspace.
    let o = f.sh("default", &shell_attacks(&f.ws));
    assert_status(&o, 0);
    let st = statuses(&o);
    expect_status(&st, "append", "0", &o);
    for n in SHELL_NAMES {
        expect_status(&st, n, "0", &o);
    }
    assert_eq!(stderr(&o), "", "{}", show(&o));
    assert_eq!(
        fs::read_to_string(f.ws.join("victim")).unwrap(),
        "original\npwned\n"
    );
    assert_eq!(fs::metadata(f.ws.join("trunc1")).unwrap().len(), 0);
    assert!(f.ws.join("b/x").is_file() && !f.ws.join("a/x").exists());
    assert!(f.ws.join("moved").is_file() && !f.ws.join("rmme").exists());
    let meta = fs::metadata(f.ws.join("meta")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o600, 946684800));
}

/// mknod of a character device fails even in the workspace: MAKE_CHAR is
/// never granted. The mount view doesn't stop it (the workspace is a
/// writable bind; nodev only keeps such a node from being opened) and the
/// agent has no CAP_MKNOD, but the kernel checks Landlock
/// (security_path_mknod, EACCES) before the capability (vfs_mknod, EPERM):
/// EACCES shows it is Landlock. Control: the same syscall making a FIFO,
/// which the workspace grants (MAKE_FIFO).
#[test]
fn mknod_char_device_fails_even_in_workspace() {
    let name = "mknod_char_device_fails_even_in_workspace";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-mknod");
    let r = ops(
        &f,
        "default",
        &[
            op("chr", "mknod_chr", &[&f.ws.join("chr")]),
            op("fifo", "mknod_fifo", &[&f.ws.join("fifo")]),
        ],
    );
    r.expect("chr", &["EACCES"]);
    r.expect("fifo", OK);
    assert!(fs::symlink_metadata(f.ws.join("chr")).is_err());
    assert!(fs::symlink_metadata(f.ws.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());

    let o = f.sh(
        "default",
        &format!("mknod '{}/chr2' c 1 3; echo mknod=$?", f.ws.display()),
    );
    assert_status(&o, 0);
    expect_status(&statuses(&o), "mknod", "1", &o);
    stderr_only(&o, &["Permission denied"]);
    assert!(fs::symlink_metadata(f.ws.join("chr2")).is_err());
}

/// /proc is read-only twice over: procfs is mounted read-only (EROFS, the
/// VFS checks that first) and Landlock grants it READ only (EACCES). Outside
/// the sandbox the same uid may write its own /proc/self/comm.
#[test]
fn proc_is_read_only() {
    let name = "proc_is_read_only";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-proc");
    let r = ops(
        &f,
        "default",
        &[
            op("read", "read", &[Path::new("/proc/self/comm")]),
            op("comm", "open_w", &[Path::new("/proc/self/comm")]),
            op("oom", "open_w", &[Path::new("/proc/self/oom_score_adj")]),
        ],
    );
    r.expect("read", &["OK python3"]);
    r.expect_all(&["comm", "oom"], &["EROFS", "EACCES"]);

    let host = as_agent_unconfined(&[
        "/bin/sh",
        "-c",
        "printf renamed > /proc/$$/comm && cat /proc/$$/comm",
    ]);
    assert_status(&host, 0);
    assert_eq!(stdout(&host), "renamed\n", "{}", show(&host));
}

// ---------------------------------------------------------------------------
// Reads

/// Nothing outside the grants can be read or listed: a 0666 file in
/// `outside`, the `outside` directory, /home (0755 on the host) and /root.
/// Controls: /etc/hostname (under the /etc grant) and a workspace file;
/// and on the host the agent's uid can read all of it but /root (0700,
/// which file permissions already keep from the agent).
#[test]
fn reads_outside_grants_fail() {
    let name = "reads_outside_grants_fail";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-read");
    let victim = f.file(&f.outside.join("victim"), "secret\n");
    f.file(&f.ws.join("mine"), "mine\n");
    let hostname = fs::read_to_string("/etc/hostname").expect("/etc/hostname exists on the host");
    let first_line = hostname.lines().next().unwrap_or_default().to_string();

    for (what, cmd) in [
        ("cat victim", vec!["cat", victim.to_str().unwrap()]),
        ("ls outside", vec!["ls", f.outside.to_str().unwrap()]),
        ("ls /home", vec!["ls", "/home"]),
    ] {
        let o = as_agent_unconfined(&cmd);
        assert_eq!(o.status.code(), Some(0), "unconfined {what}: {}", show(&o));
    }

    let r = ops(
        &f,
        "default",
        &[
            op("victim", "read", &[&victim]),
            op("outside", "list", &[&f.outside]),
            op("home", "list", &[Path::new("/home")]),
            op("root", "list", &[Path::new("/root")]),
            op("hostname", "read", &[Path::new("/etc/hostname")]),
            op("mine", "read", &[&f.ws.join("mine")]),
        ],
    );
    r.expect_all(&["victim", "outside", "home", "root"], HIDDEN);
    r.expect("hostname", &[&format!("OK {first_line}")]);
    r.expect("mine", &["OK mine"]);

    let o = f.sh(
        "default",
        &format!(
            "cat '{v}'; echo cat=$?; ls '{o}'; echo ls=$?; ls /home; echo home=$?; cat /etc/hostname; echo etc=$?",
            v = victim.display(),
            o = f.outside.display()
        ),
    );
    assert_status(&o, 0);
    let st = statuses(&o);
    expect_status(&st, "cat", "1", &o);
    // ls: 2 is "serious trouble", e.g. a command-line argument it can't access.
    expect_status(&st, "ls", "2", &o);
    expect_status(&st, "home", "2", &o);
    expect_status(&st, "etc", "0", &o);
    assert!(!stdout(&o).contains("secret"), "{}", show(&o));
    assert!(stdout(&o).contains(&hostname), "{}", show(&o));
    stderr_only(&o, &["No such file or directory", "Permission denied"]);
}

// ---------------------------------------------------------------------------
// Exec

/// A binary in a read-only grant can be read but not run (126, EACCES),
/// neither by confine itself nor from the shell; the same binary in the
/// workspace (exec granted) runs.
#[test]
fn exec_outside_exec_grants_fails() {
    let name = "exec_outside_exec_grants_fails";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-exec");
    let prog = f.outside.join("true");
    copy_true(&prog);
    copy_true(&f.ws.join("true"));
    let profile = read_outside_profile(&f);

    // confine's own execve: 126 and the reason (DESIGN §1).
    let o = f.run(&profile, &[prog.to_str().unwrap()]);
    assert_status(&o, 126);
    assert!(stderr(&o).contains("Permission denied"), "{}", show(&o));

    let o = f.sh(
        &profile,
        &format!(
            "cat '{p}' > /dev/null; echo read=$?; '{p}'; echo exec=$?; '{w}/true'; echo ws=$?",
            p = prog.display(),
            w = f.ws.display()
        ),
    );
    assert_status(&o, 0);
    let st = statuses(&o);
    expect_status(&st, "read", "0", &o);
    expect_status(&st, "exec", "126", &o);
    expect_status(&st, "ws", "0", &o);
    stderr_only(&o, &["Permission denied"]);

    // Control: the workspace copy, run by confine directly.
    let o = f.run(&profile, &[f.ws.join("true").to_str().unwrap()]);
    assert_status(&o, 0);
}

/// `readonly` has no exec grant on the workspace: a program there can't be
/// run; under `default` (exec on the workspace) it can.
#[test]
fn readonly_profile_cannot_exec_workspace_binary() {
    let name = "readonly_profile_cannot_exec_workspace_binary";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-exec-ro");
    let prog = f.ws.join("true");
    copy_true(&prog);
    let p = prog.to_str().unwrap();

    let o = f.run("readonly", &[p]);
    assert_status(&o, 126);
    assert!(stderr(&o).contains("Permission denied"), "{}", show(&o));
    let o = f.sh("readonly", &format!("'{p}'; echo exec=$?"));
    assert_status(&o, 0);
    expect_status(&statuses(&o), "exec", "126", &o);

    let o = f.run("default", &[p]);
    assert_status(&o, 0);
    let o = f.sh("default", &format!("'{p}'; echo exec=$?"));
    assert_status(&o, 0);
    expect_status(&statuses(&o), "exec", "0", &o);
}

/// `ld.so ./prog` can't stand in for execve where exec isn't granted: the
/// loader must map the program PROT_EXEC, which the noexec mount refuses
/// (EPERM; Landlock doesn't check mmap). Controls: the loader runs a
/// program where exec is granted (/usr under readonly, the workspace
/// under default), and mapping it executable works there.
#[test]
fn dynamic_loader_cannot_run_unexecutable_file() {
    let name = "dynamic_loader_cannot_run_unexecutable_file";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let Some(ld) = ld_so() else {
        eprintln!("skipped: {name}: no known dynamic loader on this architecture");
        return;
    };
    let f = Fixture::new("fs-ldso");
    let prog = f.ws.join("true");
    copy_true(&prog);
    let outside_prog = f.outside.join("true");
    copy_true(&outside_prog);
    let p = prog.to_str().unwrap();

    // readonly: the workspace is readable, not executable.
    let r = ops(
        &f,
        "readonly",
        &[
            op("ws", "mmap_exec", &[&prog]),
            op("usr", "mmap_exec", &[Path::new("/bin/true")]),
        ],
    );
    r.expect("ws", &["EPERM", "EACCES"]);
    r.expect("usr", OK);

    let o = f.run("readonly", &[ld, p]);
    assert_status(&o, 127);
    assert!(
        stderr(&o).contains("failed to map segment from shared object"),
        "{}",
        show(&o)
    );
    let o = f.run("readonly", &[ld, "/bin/true"]);
    assert_status(&o, 0);

    // A read grant outside: the same.
    let profile = read_outside_profile(&f);
    let o = f.run(&profile, &[ld, outside_prog.to_str().unwrap()]);
    assert_status(&o, 127);
    assert!(
        stderr(&o).contains("failed to map segment from shared object"),
        "{}",
        show(&o)
    );

    // default: exec granted on the workspace, the loader runs it.
    let r = ops(&f, "default", &[op("ws", "mmap_exec", &[&prog])]);
    r.expect("ws", OK);
    let o = f.run("default", &[ld, p]);
    assert_status(&o, 0);
}

// ---------------------------------------------------------------------------
// Symlinks, rename and link across the boundary

/// Symlinks in the workspace pointing outside, one planted by the host
/// before launch and one made inside: neither reads nor writes through
/// them, nor creates through a planted directory link. With a read grant on
/// `outside` the links read (control: they do resolve) but still don't write.
/// Control: a link to a workspace file writes.
#[test]
fn symlinks_in_workspace_do_not_reach_outside() {
    let name = "symlinks_in_workspace_do_not_reach_outside";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-symlink");
    let victim = f.file(&f.outside.join("victim"), "original\n");
    f.file(&f.ws.join("mine"), "mine\n");
    std::os::unix::fs::symlink(&victim, f.ws.join("planted")).unwrap();
    std::os::unix::fs::symlink(&f.outside, f.ws.join("planted_dir")).unwrap();
    let before = snapshot(&f.outside);

    let specs = |made: &str| {
        vec![
            op("make", "symlink", &[&f.ws.join(made), &victim]),
            op("made.read", "read", &[&f.ws.join(made)]),
            op("made.write", "write", &[&f.ws.join(made)]),
            op("made.trunc", "otrunc", &[&f.ws.join(made)]),
            op("planted.read", "read", &[&f.ws.join("planted")]),
            op("planted.write", "write", &[&f.ws.join("planted")]),
            op("planted_dir.list", "list", &[&f.ws.join("planted_dir")]),
            op(
                "planted_dir.create",
                "create",
                &[&f.ws.join("planted_dir/new")],
            ),
            op(
                "planted_dir.unlink",
                "unlink",
                &[&f.ws.join("planted_dir/victim")],
            ),
            op(
                "mine.link",
                "symlink",
                &[&f.ws.join(format!("{made}-mine")), &f.ws.join("mine")],
            ),
            op("mine.write", "write", &[&f.ws.join(format!("{made}-mine"))]),
        ]
    };

    let r = ops(&f, "default", &specs("link1"));
    r.expect("make", OK);
    r.expect_all(
        &[
            "made.read",
            "made.write",
            "made.trunc",
            "planted.read",
            "planted.write",
            "planted_dir.list",
            "planted_dir.create",
            "planted_dir.unlink",
        ],
        HIDDEN,
    );
    r.expect_all(&["mine.link", "mine.write"], OK);
    assert_unchanged(&before, &f.outside, &r.out);

    let r = ops(&f, &read_outside_profile(&f), &specs("link2"));
    r.expect("make", OK);
    r.expect_all(&["made.read", "planted.read"], &["OK original"]);
    r.expect("planted_dir.list", OK);
    r.expect_all(
        &[
            "made.write",
            "made.trunc",
            "planted.write",
            "planted_dir.create",
            "planted_dir.unlink",
        ],
        READ_ONLY,
    );
    r.expect_all(&["mine.link", "mine.write"], OK);
    assert_unchanged(&before, &f.outside, &r.out);
    assert_eq!(
        fs::read_to_string(f.ws.join("mine")).unwrap(),
        "mine\npwned\npwned\n"
    );
}

/// rename and link can't move a file across the grant boundary, in either
/// direction, with `outside` hidden (default) or read-only (read grant);
/// both files stay where they were. `mv` falls back to copy and delete:
/// the copy into the workspace of a readable file is allowed, the delete
/// isn't. Control: a rename across workspace directories.
#[test]
fn rename_and_link_cannot_cross_the_grant_boundary() {
    let name = "rename_and_link_cannot_cross_the_grant_boundary";
    if !can_run(name) || !require_landlock(name, ABI_REFER) {
        return;
    }
    let f = Fixture::new("fs-cross");
    let theirs = f.file(&f.outside.join("theirs"), "theirs\n");
    let mine = f.file(&f.ws.join("mine"), "mine\n");
    f.file(&f.ws.join("a/x"), "x\n");
    fs::create_dir(f.ws.join("b")).unwrap();
    chown(f.ws.join("b"), Some(AGENT_UID), Some(AGENT_GID)).unwrap();
    let before = snapshot(&f.outside);

    let specs = [
        op("out", "rename", &[&mine, &f.outside.join("mine")]),
        op("in", "rename", &[&theirs, &f.ws.join("theirs")]),
        op("link_in", "link", &[&theirs, &f.ws.join("theirs-link")]),
        op("link_out", "link", &[&mine, &f.outside.join("mine-link")]),
        op("refer", "rename", &[&f.ws.join("a/x"), &f.ws.join("b/x")]),
    ];
    let r = ops(&f, "default", &specs);
    r.expect_all(&["out", "link_out"], &["EXDEV", "ENOENT", "EACCES"]);
    r.expect_all(&["in", "link_in"], HIDDEN);
    r.expect("refer", OK);
    assert_unchanged(&before, &f.outside, &r.out);
    assert_eq!(fs::read_to_string(&mine).unwrap(), "mine\n");
    assert!(!f.ws.join("theirs").exists() && !f.ws.join("theirs-link").exists());
    assert!(f.ws.join("b/x").is_file());

    let r = ops(&f, &read_outside_profile(&f), &specs[..4]);
    r.expect_all(&["out", "in", "link_in"], CROSS);
    // link(2) makes the new name before it compares the mounts: the
    // read-only destination answers first.
    r.expect("link_out", &["EROFS", "EXDEV", "EACCES"]);
    assert_unchanged(&before, &f.outside, &r.out);
    assert_eq!(fs::read_to_string(&mine).unwrap(), "mine\n");
    assert!(!f.ws.join("theirs").exists() && !f.ws.join("theirs-link").exists());

    // The shell's tools, read grant: mv copies where rename can't.
    let o = f.sh(
        &read_outside_profile(&f),
        &format!(
            "mv '{m}' '{o}/'; echo out=$?; mv '{t}' '{w}/'; echo in=$?; ln '{t}' '{w}/theirs-link'; echo ln=$?",
            m = mine.display(),
            o = f.outside.display(),
            t = theirs.display(),
            w = f.ws.display()
        ),
    );
    assert_status(&o, 0);
    let st = statuses(&o);
    for n in ["out", "in", "ln"] {
        expect_status(&st, n, "1", &o);
    }
    stderr_only(
        &o,
        &[
            "Read-only file system",
            "Invalid cross-device link",
            "Permission denied",
        ],
    );
    assert_unchanged(&before, &f.outside, &o);
    assert_eq!(fs::read_to_string(&mine).unwrap(), "mine\n");
    assert!(!f.ws.join("theirs-link").exists());
}

/// A read-only fd can't be re-opened for writing through
/// /proc/self/fd/N: the magic link leads to the same file, with the same
/// checks. Control: the same trick on a workspace file writes.
#[test]
fn proc_fd_reopen_cannot_upgrade_read_only_fd() {
    let name = "proc_fd_reopen_cannot_upgrade_read_only_fd";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-reopen");
    let victim = f.file(&f.outside.join("victim"), "original\n");
    let mine = f.file(&f.ws.join("mine"), "mine\n");
    let before = snapshot(&f.outside);
    let profile = read_outside_profile(&f);

    let r = ops(
        &f,
        &profile,
        &[
            op("outside", "reopen_w", &[&victim]),
            op("ws", "reopen_w", &[&mine]),
        ],
    );
    r.expect("outside", READ_ONLY);
    r.expect("ws", OK);
    assert_eq!(fs::read_to_string(&mine).unwrap(), "mine\npwned\n");

    let o = f.sh(
        &profile,
        &format!(
            "exec 3< '{v}'; echo open=$?; cat <&3; echo x > /proc/self/fd/3; echo reopen=$?",
            v = victim.display()
        ),
    );
    assert_status(&o, 0);
    let st = statuses(&o);
    expect_status(&st, "open", "0", &o);
    expect_status(&st, "reopen", "2", &o);
    assert!(stdout(&o).contains("original\n"), "{}", show(&o));
    stderr_only(&o, &["Read-only file system", "Permission denied"]);
    assert_unchanged(&before, &f.outside, &o);

    // readonly profile, workspace file.
    let ws_before = snapshot(&f.ws);
    let r = ops(&f, "readonly", &[op("ws", "reopen_w", &[&mine])]);
    r.expect("ws", READ_ONLY);
    assert_unchanged(&ws_before, &f.ws, &r.out);

    // Control, shell: the same trick in the workspace under default.
    let o = f.sh(
        "default",
        &format!(
            "exec 3< '{m}'; echo x > /proc/self/fd/3; echo reopen=$?",
            m = mine.display()
        ),
    );
    assert_status(&o, 0);
    expect_status(&statuses(&o), "reopen", "0", &o);
    assert_eq!(fs::read_to_string(&mine).unwrap(), "x\n");
}

/// chmod, chown, utime and setxattr on a file outside the write grants
/// fail (Landlock doesn't cover them; the read-only bind does), from
/// Python and from chmod(1)/touch -d; the file's mode, times and xattrs on
/// the host are unchanged. Control: all of them work in the workspace.
#[test]
fn metadata_changes_outside_write_grants_fail() {
    let name = "metadata_changes_outside_write_grants_fail";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-meta");
    let victim = f.file(&f.outside.join("victim"), "original\n");
    let mine = f.file(&f.ws.join("mine"), "mine\n");
    let before = snapshot(&f.outside);
    let profile = read_outside_profile(&f);

    let mut specs = Vec::new();
    for (prefix, p) in [("out", &victim), ("ws", &mine)] {
        for o in ["chmod", "chown", "utime", "setxattr"] {
            specs.push(op(&format!("{prefix}.{o}"), o, &[p]));
        }
    }
    let r = ops(&f, &profile, &specs);
    r.expect_all(
        &["out.chmod", "out.chown", "out.utime", "out.setxattr"],
        READ_ONLY,
    );
    r.expect_all(&["ws.chmod", "ws.chown", "ws.utime", "ws.setxattr"], OK);
    assert_unchanged(&before, &f.outside, &r.out);
    let m = fs::metadata(&mine).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o600, 946684800));
    assert_eq!(xattr(&mine).as_deref(), Some(&b"pwned"[..]));

    // Hidden outside (default), Python.
    let r = ops(&f, "default", &specs[..4]);
    r.expect_all(
        &["out.chmod", "out.chown", "out.utime", "out.setxattr"],
        HIDDEN,
    );
    assert_unchanged(&before, &f.outside, &r.out);

    let o = f.sh(
        &profile,
        &format!(
            "chmod 600 '{v}'; echo chmod=$?; touch -d 2000-01-01T00:00:00Z '{v}'; echo touch=$?; \
             chmod 640 '{m}'; echo ws_chmod=$?",
            v = victim.display(),
            m = mine.display()
        ),
    );
    assert_status(&o, 0);
    let st = statuses(&o);
    expect_status(&st, "chmod", "1", &o);
    expect_status(&st, "touch", "1", &o);
    expect_status(&st, "ws_chmod", "0", &o);
    stderr_only(&o, &["Read-only file system", "Permission denied"]);
    assert_unchanged(&before, &f.outside, &o);
    assert_eq!(fs::metadata(&mine).unwrap().mode() & 0o7777, 0o640);
}

// ---------------------------------------------------------------------------
// /tmp

/// /tmp is private: writable inside (control), and what is written there
/// reaches neither the host's /tmp nor the next sandbox's.
#[test]
fn tmp_is_private() {
    let name = "tmp_is_private";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-tmp");
    let file_name = format!("confine-fs-enforcement-{}", unique());
    let host_path = Path::new("/tmp").join(&file_name);
    assert!(!host_path.exists());

    let o = f.sh(
        "default",
        &format!("echo inside > /tmp/{file_name}; echo write=$?; cat /tmp/{file_name}"),
    );
    let leaked = host_path.exists();
    if leaked {
        let _ = fs::remove_file(&host_path);
    }
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "write=0\ninside\n", "{}", show(&o));
    assert!(
        !leaked,
        "/tmp/{file_name} appeared in the host's /tmp\n{}",
        show(&o)
    );

    let o = f.sh(
        "default",
        &format!("test -e /tmp/{file_name}; echo exists=$?"),
    );
    assert_status(&o, 0);
    expect_status(&statuses(&o), "exists", "1", &o);
}

// ---------------------------------------------------------------------------
// Standard descriptors and host sockets

/// Changes the metadata of `file` beneath the directory open on the fd given
/// as argv[1] (fchmodat, utimensat, and setxattr through /proc/self/fd),
/// none of which Landlock checks; prints `op=OK|FAIL` on whichever of
/// stdout and stderr isn't that fd.
const STDIO_DIR_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
int main(int argc, char **argv) {
    int fd = atoi(argv[1]);
    int out = fd == 1 ? 2 : 1;
    struct timespec epoch[2] = {{0, 0}, {0, 0}};
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d/file", fd);
    dprintf(out, "chmod=%s\n", fchmodat(fd, "file", 0777, 0) == 0 ? "OK" : "FAIL");
    dprintf(out, "utime=%s\n", utimensat(fd, "file", epoch, 0) == 0 ? "OK" : "FAIL");
    dprintf(out, "setxattr=%s\n",
            setxattr(path, "user.pwned", "1", 1, 0) == 0 ? "OK" : "FAIL");
    return 0;
}
"#;

/// (mode, mtime, user.pwned) of `p`.
fn meta_of(p: &Path) -> (u32, i64, Option<Vec<u8>>) {
    let m = fs::metadata(p).unwrap();
    (m.mode() & 0o7777, m.mtime(), xattr(p))
}

/// A directory handed over as stdin, stdout or stderr would let the agent
/// change modes, times and xattrs beneath it: that fd reaches the host's
/// tree outside the mount view, and Landlock doesn't check those calls.
/// confine refuses it (finding 11).
#[test]
fn directory_as_stdio_is_refused() {
    let name = "directory_as_stdio_is_refused";
    if !can_run(name) || !require_landlock(name, ABI) {
        return;
    }
    let f = Fixture::new("fs-stdio-dir");
    let Some(attack) = compile(&f, "stdio_dir", STDIO_DIR_C) else {
        return;
    };
    let dir = f.outside.join("dir");
    let victim = f.file(&dir.join("file"), "victim\n");
    let before = meta_of(&victim);
    let attack_s = attack.to_str().unwrap();

    // Control: unconfined, as the agent's uid, the attack works.
    {
        use std::os::unix::process::CommandExt;
        let o = std::process::Command::new(&attack)
            .arg("0")
            .stdin(fs::File::open(&dir).unwrap())
            .uid(AGENT_UID)
            .gid(AGENT_GID)
            .output()
            .unwrap();
        assert_status(&o, 0);
        assert_eq!(
            stdout(&o),
            "chmod=OK\nutime=OK\nsetxattr=OK\n",
            "{}",
            show(&o)
        );
        assert_ne!(meta_of(&victim), before);
        fs::set_permissions(&victim, fs::Permissions::from_mode(before.0)).unwrap();
        let o = std::process::Command::new("touch")
            .arg("-d")
            .arg(format!("@{}", before.1))
            .arg(&victim)
            .output()
            .unwrap();
        assert_status(&o, 0);
        let c = CString::new(victim.as_os_str().as_bytes()).unwrap();
        // SAFETY: both strings are NUL-terminated.
        unsafe { libc::removexattr(c.as_ptr(), c"user.pwned".as_ptr()) };
        assert_eq!(meta_of(&victim), before);
    }

    // Control: a regular file as stdin still works.
    let o = f
        .command("default", &["/bin/cat"])
        .stdin(fs::File::open(&victim).unwrap())
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "victim\n", "{}", show(&o));

    for (fd, stream) in [(0, "stdin"), (1, "stdout"), (2, "stderr")] {
        let mut c = f.command("default", &[attack_s, &fd.to_string()]);
        let d = || fs::File::open(&dir).unwrap();
        match fd {
            0 => c.stdin(d()),
            1 => c.stdout(d()),
            _ => c.stderr(d()),
        };
        let o = c.output().unwrap();
        assert_status(&o, 125);
        assert_eq!(meta_of(&victim), before, "{stream}: the file changed");
        // The refusal goes to stderr, unless that is the directory.
        if fd != 2 {
            let err = stderr(&o);
            let lines: Vec<&str> = err.lines().collect();
            assert_eq!(lines.len(), 1, "one refusal line\n{}", show(&o));
            assert!(
                lines[0].starts_with(&format!("confine: {stream} (fd {fd}): ")),
                "{}",
                show(&o)
            );
            assert!(lines[0].contains("directory"), "{}", show(&o));
        }
        assert!(!stdout(&o).contains("chmod="), "{}", show(&o));
    }
}

/// Connects to each unix socket path given; prints `PATH OK|ERRNO`.
const CONNECT_PY: &str = r#"
import errno, socket, sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p)
        print(p, "OK")
    except OSError as e:
        print(p, errno.errorcode[e.errno])
"#;

/// A host unix socket inside a read grant (finding 7): Landlock before ABI
/// 9 doesn't restrict connect(2) to pathname sockets, nor does a read-only
/// bind, so the agent reaches it (even with `network: none`) and confine
/// says so; from ABI 9 the kernel refuses it. A socket outside every grant
/// isn't in the view at all.
#[test]
fn host_unix_socket_in_a_read_grant() {
    let name = "host_unix_socket_in_a_read_grant";
    if !can_run(name) || !require_landlock(name, ABI) || !have(name, "/usr/bin/python3") {
        return;
    }
    let f = Fixture::new("fs-sock");
    let dir = f.root.join("sockets");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let granted = dir.join("srv.sock");
    let hidden = f.outside.join("hidden.sock");
    let _listeners: Vec<std::os::unix::net::UnixListener> = [&granted, &hidden]
        .iter()
        .map(|p| {
            let l = std::os::unix::net::UnixListener::bind(p).unwrap();
            fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
            l
        })
        .collect();
    let (g, h) = (granted.to_str().unwrap(), hidden.to_str().unwrap());

    // Control: outside, as the agent's uid, both are connectable.
    let o = as_agent_unconfined(&["/usr/bin/python3", "-c", CONNECT_PY, g, h]);
    assert_status(&o, 0);
    let m = labelled(&stdout(&o));
    assert_eq!(m.get(g).map(String::as_str), Some("OK"), "{}", show(&o));
    assert_eq!(m.get(h).map(String::as_str), Some("OK"), "{}", show(&o));

    let profile = f.profile(
        "sockets",
        &format!(
            "version: 1\nname: sockets\nextends: default\nnetwork: {{mode: none}}\n\
             filesystem:\n  read: {{add: [\"{}\"]}}\n",
            dir.display()
        ),
    );
    let profile = profile.to_str().unwrap();
    let o = f.run(profile, &["/usr/bin/python3", "-c", CONNECT_PY, g, h]);
    assert_status(&o, 0);
    let m = labelled(&stdout(&o));
    // Not in the view: the mount view's answer.
    assert_eq!(m.get(h).map(String::as_str), Some("ENOENT"), "{}", show(&o));
    let warned = stderr(&o).lines().any(|l| {
        l.starts_with("confine: warning: ")
            && l.contains(&*dir.to_string_lossy())
            && l.contains("unix socket")
    });
    if landlock_abi() >= 9 {
        assert_eq!(m.get(g).map(String::as_str), Some("EACCES"), "{}", show(&o));
    } else {
        // The documented gap, and the warning that names it.
        assert_eq!(m.get(g).map(String::as_str), Some("OK"), "{}", show(&o));
        assert!(warned, "no warning about the socket\n{}", show(&o));
        let o = std::process::Command::new(bin())
            .args(["explain", "-p", profile, "-w"])
            .arg(&f.ws)
            .output()
            .unwrap();
        assert_status(&o, 0);
        assert!(stderr(&o).contains("unix socket"), "{}", show(&o));
        assert!(stdout(&o).contains("unix sockets"), "{}", show(&o));
        let o = std::process::Command::new(bin())
            .args(["check", profile])
            .output()
            .unwrap();
        assert_status(&o, 0);
        assert!(stderr(&o).contains("unix socket"), "{}", show(&o));
    }
}

/// A read grant nested in a write grant can't be replaced by moving its
/// parent away and making a new one (review finding F4): the directories
/// between are pinned like a protected path's.
#[test]
fn a_nested_read_grant_cant_be_moved_aside_and_replaced() {
    if !can_run("a_nested_read_grant_cant_be_moved_aside_and_replaced") {
        return;
    }
    let f = Fixture::new("nested-read");
    f.file(&f.ws.join("a/b/f"), "original\n");
    let p = f.profile(
        "nested",
        "version: 1\nextends: default\nfilesystem:\n  read: {add: [\"{workspace}/a/b\"]}\n",
    );
    let o = f.sh(
        p.to_str().unwrap(),
        &format!(
            "cd {}; echo x >> a/b/f; echo write=$?; mv a c; echo mv=$?; \
             mkdir -p a2/b && echo ok > a2/b/f; echo control=$?",
            f.ws.display()
        ),
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("write=1") || out.contains("write=2"),
        "{}",
        show(&o)
    );
    assert!(
        !out.contains("mv=0"),
        "the parent of a read grant was moved\n{}",
        show(&o)
    );
    assert!(out.contains("control=0"), "{}", show(&o));
    assert_eq!(
        fs::read_to_string(f.ws.join("a/b/f")).unwrap(),
        "original\n"
    );
}
