//! What the real workspace was at launch, so that `commit` can tell a file
//! changed underneath (by the user, another sandbox, the agent's uid
//! outside) from one only the agent changed: for every path, (type, dev,
//! ino, size, mtime, ctime, mode). Any difference at commit means the real
//! version changed since the launch, and commit refuses it unless forced.
//!
//! Made by one walk of the workspace through descriptors (never following
//! a symlink), on review mode's launch path only. One line per path:
//! `TYPE DEV INO SIZE MTIME_NS CTIME_NS MODE HEXPATH`, the path in hex so
//! any byte is fine.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::fsops;

/// What one path was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `S_IFMT` bits.
    pub kind: u32,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub mode: u32,
}

impl Entry {
    pub(crate) fn of(st: &libc::stat) -> Entry {
        Entry {
            kind: st.st_mode & libc::S_IFMT,
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
            ctime_ns: i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec),
            mode: st.st_mode & 0o7777,
        }
    }

    /// Whether `now` is still this version. A directory is the same
    /// directory (its times change whenever an entry does, which the
    /// entries' own lines cover).
    pub fn same(&self, now: &Entry) -> bool {
        if self.kind == libc::S_IFDIR {
            return now.kind == self.kind && now.dev == self.dev && now.ino == self.ino;
        }
        self == now
    }
}

/// Relative path -> what it was.
pub type Manifest = HashMap<PathBuf, Entry>;

/// Walks the workspace at `root`.
///
/// # Errors
/// A directory that can't be read.
pub fn record(root: BorrowedFd) -> io::Result<Manifest> {
    let mut m = Manifest::new();
    walk(root, Path::new(""), &mut m)?;
    Ok(m)
}

fn walk(dir: BorrowedFd, at: &Path, m: &mut Manifest) -> io::Result<()> {
    for name in fsops::list(dir)? {
        let Some(st) = fsops::lstat_at(dir, &name)? else {
            continue;
        };
        let rel = at.join(&name);
        let e = Entry::of(&st);
        m.insert(rel.clone(), e);
        if e.kind == libc::S_IFDIR {
            match fsops::open_dir(dir, &name) {
                Ok(sub) => walk(sub.as_fd(), &rel, m)?,
                // A directory the supervisor may not read (not root): its
                // contents can't be checked; its own line still is.
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn hex(b: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &x in b {
        out.push(DIGITS[usize::from(x >> 4)] as char);
        out.push(DIGITS[usize::from(x & 15)] as char);
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The manifest as its file's text.
pub fn encode(m: &Manifest) -> Vec<u8> {
    let mut out = String::with_capacity(m.len() * 80);
    for (p, e) in m {
        let _ = write!(
            out,
            "{:o} {} {} {} {} {} {:o} ",
            e.kind, e.dev, e.ino, e.size, e.mtime_ns, e.ctime_ns, e.mode
        );
        hex(p.as_os_str().as_bytes(), &mut out);
        out.push('\n');
    }
    out.into_bytes()
}

/// Reads what [`encode`] wrote.
///
/// # Errors
/// A line that isn't one.
pub fn decode(text: &[u8]) -> io::Result<Manifest> {
    let text = std::str::from_utf8(text).map_err(|_| io::Error::other("manifest: not text"))?;
    let mut m = Manifest::new();
    for (i, line) in text.lines().enumerate() {
        let bad = || io::Error::other(format!("manifest line {}: malformed", i + 1));
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 8 {
            return Err(bad());
        }
        let e = Entry {
            kind: u32::from_str_radix(f[0], 8).map_err(|_| bad())?,
            dev: f[1].parse().map_err(|_| bad())?,
            ino: f[2].parse().map_err(|_| bad())?,
            size: f[3].parse().map_err(|_| bad())?,
            mtime_ns: f[4].parse().map_err(|_| bad())?,
            ctime_ns: f[5].parse().map_err(|_| bad())?,
            mode: u32::from_str_radix(f[6], 8).map_err(|_| bad())?,
        };
        let p = PathBuf::from(std::ffi::OsString::from_vec(unhex(f[7]).ok_or_else(bad)?));
        m.insert(p, e);
    }
    Ok(m)
}

/// What is at `rel` beneath `root` now (never through a symlink);
/// `None` when absent.
///
/// # Errors
/// A lookup failed other than by absence.
pub fn now(root: BorrowedFd, rel: &Path) -> io::Result<Option<Entry>> {
    let (parent, name) = match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => return Ok(fsops::lstat_at(root, OsStr::new("."))?.map(|s| Entry::of(&s))),
    };
    let dir = match fsops::open_rel_dir(root, parent) {
        Ok(Some(d)) => d,
        Ok(None) => return Ok(None),
        // A symlink or a file where a directory was: not what was there.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            return Ok(Some(Entry {
                kind: 0,
                dev: 0,
                ino: 0,
                size: 0,
                mtime_ns: 0,
                ctime_ns: 0,
                mode: 0,
            }))
        }
        Err(e) => return Err(e),
    };
    Ok(fsops::lstat_at(dir.as_fd(), name)?.map(|s| Entry::of(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_any_path() {
        let mut m = Manifest::new();
        let e = Entry {
            kind: libc::S_IFREG,
            dev: 2049,
            ino: 7,
            size: 12,
            mtime_ns: 1_700_000_000_123_456_789,
            ctime_ns: -5,
            mode: 0o644,
        };
        m.insert(
            PathBuf::from(std::ffi::OsString::from_vec(b"a b\n\xff/c".to_vec())),
            e,
        );
        m.insert(PathBuf::from("plain"), e);
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        assert!(decode(b"1 2 3\n").is_err());
    }
}
