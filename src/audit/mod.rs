//! Audit records (DESIGN.md §7): one JSON object per line, appended to a log
//! the sandbox can never reach.
//!
//! The supervisor opens the log before the fork. It must be a regular file
//! (opened without blocking, so a FIFO can't hang confine), created 0600
//! (its directory 0700) if missing. Environment values never appear, only
//! keys.
//!
//! Every line is one whole record (§6), also when the disk fills up:
//! - a record is written under an exclusive `flock` on the log, which every
//!   confine sharing the log takes, so its bytes are contiguous even when the
//!   kernel writes them in more than one piece;
//! - if the record can't be written whole (ENOSPC, EIO, EFBIG), what was
//!   written of it is cut off again (`ftruncate` to the size the log had
//!   under the lock), and the caller gets an error to report;
//! - where that cut isn't possible (an append-only file, `chattr +a`; a
//!   writer that died mid-write), the next record starts with a newline, so
//!   a fragment never glues onto a whole record;
//! - a log whose file was removed while the sandbox ran (its directory
//!   deleted, say) is an error too, not a record silently written into a
//!   file nobody can open any more.
//!
//! What each kind of record holds is a type in `records` (one per kind);
//! [`Audit::record`] takes only those.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

mod records;
pub(crate) use records::{
    Budget, Checkpoint, Connection, Control, DenialTotals, Denied, Dropped, Exit, Launch,
    LaunchProfile, PlanSummary, RouteLimit, RouteRequest, SeccompSummary, Usage,
};
pub use records::{ProfileId, Record, Refused, RefusedPlan};

/// An open audit log (or none) and the id of this sandbox.
pub struct Audit {
    log: Option<(File, PathBuf)>,
    pub sandbox: String,
}

impl Audit {
    /// Opens `path` for appending, creating it (and its directory) if
    /// missing; `None` writes records nowhere.
    ///
    /// # Errors
    /// Creating the directory or opening the file fails, or the file isn't a
    /// regular file.
    pub fn open(path: Option<&Path>) -> io::Result<Audit> {
        let log = match path {
            None => None,
            Some(p) => {
                // The plan resolved the path once; from here it is opened
                // without following any symlink, and what is missing is
                // created beneath descriptors (DESIGN.md §4 host-side
                // rules): a writer of one of its directories can't redirect
                // it.
                let (dir, name) = match (p.parent(), p.file_name()) {
                    (Some(d), Some(n)) => (d, n),
                    _ => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
                };
                let dir = crate::sandbox::fsfd::make_trusted_dirs(dir, 0o700)?;
                let file = File::from(crate::sandbox::fsfd::create_in(
                    std::os::fd::AsFd::as_fd(&dir),
                    Path::new(name),
                    // Read too: the last byte tells whether a fragment of a
                    // failed write is left (see `record`). O_NONBLOCK: a
                    // FIFO opens at once (and is then refused) instead of
                    // waiting for a reader.
                    nix::fcntl::OFlag::O_RDWR
                        | nix::fcntl::OFlag::O_APPEND
                        | nix::fcntl::OFlag::O_NONBLOCK
                        | nix::fcntl::OFlag::O_NOCTTY,
                    0o600,
                )?);
                crate::files::require_regular(&file)?;
                Some((file, p.to_path_buf()))
            }
        };
        Ok(Audit {
            log,
            sandbox: new_id(),
        })
    }

    /// Whether records go anywhere.
    pub fn enabled(&self) -> bool {
        self.log.is_some()
    }

    /// Writes one record: `ts`, `event`, `sandbox`, `pid` and the record's
    /// own fields, keys in name order, whole or not at all (see the
    /// module's comment).
    ///
    /// # Errors
    /// The record couldn't be written whole, or the log was removed.
    pub fn record<R: Record>(&self, record: &R) -> io::Result<()> {
        let Some((f, path)) = &self.log else {
            return Ok(());
        };
        let mut line = self.line(record)?;
        line.push(b'\n');
        let _lock = Lock::exclusive(f);
        append_whole(f, &line)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// A record as its line (without the newline). Through a
    /// `serde_json::Value`, whose maps sort their keys: records have always
    /// been written that way, and readers of old logs see the same shape.
    fn line<R: Record>(&self, record: &R) -> io::Result<Vec<u8>> {
        let envelope = Envelope {
            ts: rfc3339_now(),
            event: R::EVENT,
            sandbox: &self.sandbox,
            pid: std::process::id(),
            record,
        };
        let value = serde_json::to_value(&envelope).map_err(io::Error::other)?;
        serde_json::to_vec(&value).map_err(io::Error::other)
    }
}

/// The fields every record has (DESIGN.md §7), and the record's own.
#[derive(Serialize)]
struct Envelope<'a, R> {
    ts: String,
    event: &'static str,
    sandbox: &'a str,
    pid: u32,
    #[serde(flatten)]
    record: &'a R,
}

/// An exclusive `flock` on the log, released when dropped. Without one
/// (a filesystem that refuses it) records are still single writes, but a
/// fragment is left for the next record to step over instead of cut off.
struct Lock<'a>(Option<&'a File>);

impl<'a> Lock<'a> {
    fn exclusive(f: &'a File) -> Lock<'a> {
        loop {
            // SAFETY: flock on our open descriptor, no memory arguments.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Lock(Some(f));
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Lock(None);
            }
        }
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0 {
            // SAFETY: as in `exclusive`.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// Appends `line` to the log so that it ends up whole or not at all.
fn append_whole(f: &File, line: &[u8]) -> io::Result<()> {
    let meta = f.metadata()?;
    if meta.nlink() == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the log file was removed (or its directory) after confine opened it; \
             the record was not written",
        ));
    }
    let size = meta.len();
    // A fragment some earlier write left behind ends without a newline:
    // this record starts on a line of its own, in the same write.
    let healed;
    let line = if size > 0 && last_byte(f, size)? != Some(b'\n') {
        healed = [b"\n", line].concat();
        &healed[..]
    } else {
        line
    };
    let mut done = 0;
    let failure = loop {
        match write_once(f, &line[done..]) {
            Ok(0) => break io::Error::from(io::ErrorKind::WriteZero),
            Ok(n) => {
                done += n;
                if done == line.len() {
                    return Ok(());
                }
                // Short: the rest may still fit (a signal, a filesystem that
                // writes in pieces); only confine writes here, and each waits
                // for our lock.
            }
            Err(e) => break e,
        }
    };
    if done == 0 {
        return Err(failure);
    }
    // Part of it is in the log: cut it off again.
    // SAFETY: ftruncate on our open descriptor with an integer length.
    let cut = unsafe { libc::ftruncate(f.as_raw_fd(), size as libc::off_t) } == 0;
    Err(io::Error::new(
        failure.kind(),
        if cut {
            format!(
                "written only in part ({done} of {} bytes: {failure}), and removed again",
                line.len()
            )
        } else {
            format!(
                "written only in part ({done} of {} bytes: {failure}); the next record starts on a new line",
                line.len()
            )
        },
    ))
}

fn last_byte(f: &File, size: u64) -> io::Result<Option<u8>> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    match f.read_at(&mut b, size - 1)? {
        1 => Ok(Some(b[0])),
        _ => Ok(None),
    }
}

fn write_once(f: &File, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid slice; f an open file.
        let r = unsafe { libc::write(f.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// 128 random bits as hex.
fn new_id() -> String {
    let mut b = [0u8; 16];
    // SAFETY: b is a valid buffer of the length passed.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Unique enough without the kernel's randomness: time and pid.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t ^ ((std::process::id() as u128) << 64)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_millis())
}

fn rfc3339(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Gap, LimitsPlan};
    use crate::profile::{NetworkMode, OnViolation};
    use crate::sandbox::cgroup;
    use serde_json::Value;

    /// What a launch record borrows from a plan.
    struct Sample {
        argv: Vec<String>,
        sources: Vec<String>,
        env_keys: Vec<String>,
        capabilities: Vec<String>,
        limits: LimitsPlan,
        dropped: Vec<Gap>,
    }

    impl Sample {
        fn new() -> Sample {
            Sample {
                argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
                sources: vec!["built-in profile default".into(), "/etc/p.yaml".into()],
                env_keys: vec!["HOME".into(), "PATH".into()],
                capabilities: vec!["CAP_NET_BIND_SERVICE".into()],
                limits: LimitsPlan {
                    wall_time_ms: Some(30_000),
                    grace_ms: 10_000,
                    memory_bytes: Some(1 << 30),
                    open_files: Some(4096),
                    ..LimitsPlan::default()
                },
                dropped: vec![Gap {
                    what: "limits.pids".into(),
                    why: "no pids controller".into(),
                }],
            }
        }

        fn launch(&self) -> Launch<'_> {
            Launch {
                profile: LaunchProfile {
                    name: "default",
                    sha256: "ab12",
                    sources: &self.sources,
                },
                argv: &self.argv,
                workspace: Path::new("/work/ws"),
                uid: 60123,
                gid: 60124,
                env_keys: &self.env_keys,
                home: None,
                terminal: "pty (stdin, stdout, stderr)".into(),
                plan: PlanSummary {
                    landlock_abi: 7,
                    landlock_handled_fs: &["EXECUTE", "WRITE_FILE"],
                    landlock_handled_net: &["BIND_TCP"],
                    landlock_scopes: &["SIGNAL"],
                    seccomp: SeccompSummary {
                        allowed: 303,
                        denied: 43,
                        argument_rules: 5,
                        on_violation: OnViolation::Errno,
                    },
                    namespaces: &["mount", "pid"],
                    network: NetworkMode::Loopback,
                    limits: &self.limits,
                    capabilities: &self.capabilities,
                },
                dropped: &self.dropped,
            }
        }
    }

    fn exit(status: u8) -> Exit {
        Exit {
            status,
            signal: None,
            reason: "exited",
            duration_ms: 12,
            max_rss_kb: 3400,
            user_cpu_ms: 1,
            sys_cpu_ms: 2,
            cgroup: None,
            usage: None,
        }
    }

    /// A record's line with its time, sandbox id and pid replaced by
    /// placeholders, so it can be compared whole.
    fn line_of<R: Record>(a: &Audit, r: &R) -> String {
        let line = String::from_utf8(a.line(r).unwrap()).unwrap();
        let at = line.find("\"ts\":\"").unwrap() + 6;
        let ts = &line[at..at + 24];
        assert_eq!(ts.len(), "2026-11-18T11:06:40.999Z".len());
        assert!(ts.ends_with('Z'), "{line}");
        line.replace(ts, "TS")
            .replace(&a.sandbox, "ID")
            .replace(&format!("\"pid\":{}", std::process::id()), "\"pid\":1")
    }

    /// The records' shapes, byte for byte: keys in name order, nested ones
    /// too; absent values null; a refusal made before planning has only
    /// its reason.
    #[test]
    fn each_kind_of_record_is_written_as_it_always_was() {
        let a = Audit::open(None).unwrap();
        let sample = Sample::new();
        assert_eq!(
            line_of(&a, &sample.launch()),
            concat!(
                r#"{"argv":["/bin/sh","-c","true"],"#,
                r#""dropped":[{"what":"limits.pids","why":"no pids controller"}],"#,
                r#""env_keys":["HOME","PATH"],"event":"launch","gid":60124,"pid":1,"#,
                r#""plan":{"capabilities":["CAP_NET_BIND_SERVICE"],"landlock_abi":7,"#,
                r#""landlock_handled_fs":["EXECUTE","WRITE_FILE"],"#,
                r#""landlock_handled_net":["BIND_TCP"],"landlock_scopes":["SIGNAL"],"#,
                r#""limits":{"core_dumps":false,"cpu_millicores":null,"file_size_bytes":null,"#,
                r#""grace_ms":10000,"memory_bytes":1073741824,"open_files":4096,"pids":null,"#,
                r#""wall_time_ms":30000},"namespaces":["mount","pid"],"network":"loopback","#,
                r#""seccomp":{"allowed":303,"argument_rules":5,"denied":43,"on_violation":"errno"}},"#,
                r#""profile":{"name":"default","sha256":"ab12","#,
                r#""sources":["built-in profile default","/etc/p.yaml"]},"#,
                r#""sandbox":"ID","terminal":"pty (stdin, stdout, stderr)","#,
                r#""ts":"TS","uid":60123,"workspace":"/work/ws"}"#,
            )
        );

        assert_eq!(
            line_of(&a, &exit(0)),
            concat!(
                r#"{"cgroup":null,"duration_ms":12,"event":"exit","max_rss_kb":3400,"pid":1,"#,
                r#""reason":"exited","sandbox":"ID","signal":null,"status":0,"sys_cpu_ms":2,"#,
                r#""ts":"TS","user_cpu_ms":1}"#,
            )
        );
        let killed = Exit {
            status: 137,
            signal: Some(9),
            reason: "signaled",
            cgroup: Some(cgroup::Stats {
                memory_peak_bytes: Some(4096),
                oom_kills: Some(0),
                pids_peak: Some(2),
                cpu_usage_usec: Some(300),
                cpu_user_usec: Some(200),
                cpu_system_usec: None,
            }),
            ..exit(0)
        };
        assert_eq!(
            line_of(&a, &killed),
            concat!(
                r#"{"cgroup":{"cpu_system_usec":null,"cpu_usage_usec":300,"cpu_user_usec":200,"#,
                r#""memory_peak_bytes":4096,"oom_kills":0,"pids_peak":2},"duration_ms":12,"#,
                r#""event":"exit","max_rss_kb":3400,"pid":1,"reason":"signaled","sandbox":"ID","#,
                r#""signal":9,"status":137,"sys_cpu_ms":2,"ts":"TS","user_cpu_ms":1}"#,
            )
        );

        let refused = Refused {
            why: "rlimits (sandbox setup): no".into(),
            planned: None,
        };
        assert_eq!(
            line_of(&a, &refused),
            r#"{"event":"refused","pid":1,"sandbox":"ID","ts":"TS","why":"rlimits (sandbox setup): no"}"#
        );
        let refused = Refused {
            why: "plan (p.yaml): can't be fully enforced here: x: y".into(),
            planned: Some(RefusedPlan {
                not_enforceable: vec!["x: y".into()],
                profile: ProfileId {
                    name: "p".into(),
                    sha256: "cd34".into(),
                },
                argv: vec!["/bin/true".into()],
                workspace: "/work/ws".into(),
            }),
        };
        assert_eq!(
            line_of(&a, &refused),
            concat!(
                r#"{"argv":["/bin/true"],"event":"refused","not_enforceable":["x: y"],"pid":1,"#,
                r#""profile":{"name":"p","sha256":"cd34"},"sandbox":"ID","ts":"TS","#,
                r#""why":"plan (p.yaml): can't be fully enforced here: x: y","workspace":"/work/ws"}"#,
            )
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_000_000, 999), "2026-11-18T11:06:40.999Z");
    }

    #[test]
    fn records_are_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/audit.jsonl");
        let a = Audit::open(Some(&p)).unwrap();
        a.record(&Sample::new().launch()).unwrap();
        a.record(&exit(0)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "launch");
        assert_eq!(lines[1]["sandbox"], lines[0]["sandbox"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_fragment_left_behind_never_glues_onto_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        // What a writer that died mid-write, or a cut an append-only file
        // refused, leaves: no newline at the end.
        std::fs::write(&p, "{\"event\":\"launch\"}\n{\"ts\":\"20").unwrap();
        let a = Audit::open(Some(&p)).unwrap();
        a.record(&exit(0)).unwrap();
        a.record(&exit(1)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[1], "{\"ts\":\"20");
        for l in [lines[0], lines[2], lines[3]] {
            serde_json::from_str::<Value>(l).unwrap();
        }
    }

    #[test]
    fn a_removed_log_is_an_error_not_a_lost_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("logs/audit.jsonl");
        let a = Audit::open(Some(&p)).unwrap();
        a.record(&Sample::new().launch()).unwrap();
        std::fs::remove_dir_all(dir.path().join("logs")).unwrap();
        let e = a.record(&exit(0)).unwrap_err();
        assert!(e.to_string().contains("was removed"), "{e}");
    }

    #[test]
    fn only_regular_files_are_logs() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No reader: a blocking open would wait for ever.
        let e = Audit::open(Some(&fifo)).err().unwrap();
        assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        let e = Audit::open(Some(Path::new("/dev/null"))).err().unwrap();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
    }
}
