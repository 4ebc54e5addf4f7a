//! Audit records (DESIGN.md §7): one JSON object per line, appended to a log
//! the sandbox can never reach.
//!
//! The supervisor opens the log O_APPEND|O_CLOEXEC before the fork and writes
//! each record with a single `write(2)`: appends of one write each don't
//! interleave, so concurrent sandboxes can share a log. The file is created
//! 0600 (its directory 0700) if missing. Environment values never appear,
//! only keys.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use serde_json::{json, Map, Value};

/// An open audit log (or none) and the id of this sandbox.
pub struct Audit {
    file: Option<File>,
    pub sandbox: String,
}

impl Audit {
    /// Opens `path` for appending, creating it (and its directory) if
    /// missing; `None` writes records nowhere.
    ///
    /// # Errors
    /// Creating the directory or opening the file fails.
    pub fn open(path: Option<&Path>) -> io::Result<Audit> {
        let file = match path {
            None => None,
            Some(p) => {
                if let Some(dir) = p.parent() {
                    if !dir.exists() {
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o700)
                            .create(dir)?;
                    }
                }
                Some(
                    OpenOptions::new()
                        .append(true)
                        .create(true)
                        .mode(0o600)
                        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                        .open(p)?,
                )
            }
        };
        Ok(Audit {
            file,
            sandbox: new_id(),
        })
    }

    /// Whether records go anywhere.
    pub fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Writes one record: `ts`, `event`, `sandbox`, `pid`, then `fields`.
    ///
    /// # Errors
    /// The write fails or is short.
    pub fn record(&self, event: &str, fields: Value) -> io::Result<()> {
        let Some(f) = &self.file else { return Ok(()) };
        let mut m = Map::new();
        m.insert("ts".into(), json!(rfc3339_now()));
        m.insert("event".into(), json!(event));
        m.insert("sandbox".into(), json!(self.sandbox));
        m.insert("pid".into(), json!(std::process::id()));
        if let Value::Object(extra) = fields {
            m.extend(extra);
        }
        let mut line = serde_json::to_vec(&Value::Object(m)).map_err(io::Error::other)?;
        line.push(b'\n');
        // One write(2) per record: appends don't interleave.
        let n = write_once(f, &line)?;
        if n != line.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to the audit log",
            ));
        }
        Ok(())
    }
}

fn write_once(f: &File, buf: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
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
        a.record("launch", json!({"argv": ["a"]})).unwrap();
        a.record("exit", json!({"status": 0})).unwrap();
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
}
