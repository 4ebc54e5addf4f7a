//! `confine diff`: what the upper layer holds, compared with the real
//! workspace as it is now. Overlay semantics, read from the upper layer
//! only (never from a mounted overlay, so it works during and after the
//! run):
//! - a character device 0/0 is a whiteout: the real path is deleted;
//! - a directory with `overlay.opaque = y` hides the real directory's
//!   entries: those the upper one lacks are deleted;
//! - a directory with `overlay.redirect` was renamed from that path (root
//!   only: `redirect_dir` is off with `userxattr`, and a renamed directory
//!   shows as what `mv` did instead: a copy and a deletion);
//! - anything else is added, or modified where the real path exists and
//!   differs (a copy-up that changed nothing is not a change).
//!
//! Deletions are always listed, each path beneath a deleted directory
//! too.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::fsops;
use super::state::Meta;

/// Text files larger than this are shown by size only.
const DIFF_MAX: u64 = 4 << 20;

/// What happened to one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum What {
    Added,
    Modified,
    Deleted,
    Renamed,
}

impl What {
    pub fn name(self) -> &'static str {
        match self {
            What::Added => "added",
            What::Modified => "modified",
            What::Deleted => "deleted",
            What::Renamed => "renamed",
        }
    }
}

/// One change, as `diff` shows it and `commit` applies it.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub path: String,
    pub change: What,
    /// `file`, `dir`, `symlink`, `fifo`, `socket` or `device`.
    pub kind: &'static str,
    /// Renamed: where it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_target: Option<String>,
    pub binary: bool,
    /// Unified diff of a text file (added or modified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Beneath a deleted directory: removed with it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub within_deleted: bool,
    /// Relative to the workspace.
    #[serde(skip)]
    pub(crate) rel: PathBuf,
    #[serde(skip)]
    pub(crate) from_rel: Option<PathBuf>,
    /// The real path this change replaces or removes (its version must
    /// be the launch's); for a child of a renamed directory, its path
    /// before the rename.
    #[serde(skip)]
    pub(crate) real: Option<PathBuf>,
    /// The upper layer's file (dev, ino) and link count: hard links.
    #[serde(skip)]
    pub(crate) upper: Option<(u64, u64, u64)>,
}

fn kind_name(bits: u32) -> &'static str {
    match bits {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        _ => "device",
    }
}

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Change {
    pub(crate) fn new(rel: &Path, change: What, bits: u32) -> Change {
        Change {
            path: display(rel),
            change,
            kind: kind_name(bits),
            from: None,
            size: None,
            old_size: None,
            mode: None,
            old_mode: None,
            target: None,
            old_target: None,
            binary: false,
            diff: None,
            within_deleted: false,
            rel: rel.to_path_buf(),
            from_rel: None,
            real: None,
            upper: None,
        }
    }
}

/// Whether an upper entry is a whiteout.
pub(crate) fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// Every change in `upper` against the real workspace `ws`, with unified
/// diffs of text files when `text` (only `confine diff` shows them).
///
/// # Errors
/// A directory or file that can't be read.
pub fn changes(
    meta: &Meta,
    upper: BorrowedFd,
    ws: BorrowedFd,
    text: bool,
) -> io::Result<Vec<Change>> {
    let mut w = Walk {
        meta,
        ws,
        text,
        out: Vec::new(),
    };
    w.dir(upper, Path::new(""), Some(Path::new("")), false)?;
    // A renamed directory's source is a whiteout, not a deletion.
    let sources: Vec<PathBuf> = w.out.iter().filter_map(|c| c.from_rel.clone()).collect();
    w.out
        .retain(|c| !(c.change == What::Deleted && sources.iter().any(|s| c.rel.starts_with(s))));
    Ok(w.out)
}

struct Walk<'a> {
    meta: &'a Meta,
    ws: BorrowedFd<'a>,
    text: bool,
    out: Vec<Change>,
}

/// A real directory beneath the workspace, when it is one.
fn real_dir(ws: BorrowedFd, rel: &Path) -> io::Result<Option<std::os::fd::OwnedFd>> {
    match fsops::open_rel_dir(ws, rel) {
        Ok(d) => Ok(d),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `lstat` of a real path, `None` when absent (or beneath a non-directory).
fn real_stat(ws: BorrowedFd, rel: &Path) -> io::Result<Option<libc::stat>> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(None);
    };
    match real_dir(ws, parent)? {
        Some(d) => fsops::lstat_at(d.as_fd(), name),
        None => Ok(None),
    }
}

fn octal(m: u32) -> String {
    format!("{:04o}", m & 0o7777)
}

impl Walk<'_> {
    /// The upper directory `upper` at `rel`; `lower` is the real directory
    /// it shows (its path before a rename), `hide_rest` whether real
    /// entries it lacks are hidden (opaque, or new).
    fn dir(
        &mut self,
        upper: BorrowedFd,
        rel: &Path,
        lower: Option<&Path>,
        hide_rest: bool,
    ) -> io::Result<()> {
        let names = fsops::list(upper)?;
        if hide_rest {
            if let Some(l) = lower {
                if let Some(real) = real_dir(self.ws, l)? {
                    for n in fsops::list(real.as_fd())? {
                        if !names.contains(&n) {
                            self.deleted(real.as_fd(), &n, &rel.join(&n), &l.join(&n), false)?;
                        }
                    }
                }
            }
        }
        for name in names {
            let Some(st) = fsops::lstat_at(upper, &name)? else {
                continue;
            };
            let crel = rel.join(&name);
            let clower = lower.map(|l| l.join(&name));
            let real = match &clower {
                Some(l) => real_stat(self.ws, l)?,
                None => None,
            };
            let bits = st.st_mode & libc::S_IFMT;
            if is_whiteout(&st) {
                if let (Some(r), Some(l)) = (real, &clower) {
                    let parent = real_dir(self.ws, l.parent().unwrap_or(Path::new("")))?;
                    if let Some(p) = parent {
                        let _ = r;
                        self.deleted(p.as_fd(), &name, &crel, l, false)?;
                    }
                }
                continue;
            }
            if bits == libc::S_IFDIR {
                let d = fsops::open_dir(upper, &name)?;
                let opaque =
                    fsops::xattr(d.as_fd(), &self.meta.xattr("opaque"))?.is_some_and(|v| v == b"y");
                let redirect = fsops::xattr(d.as_fd(), &self.meta.xattr("redirect"))?;
                if let Some(r) = redirect.and_then(|r| self.redirect(&r, lower)) {
                    let mut c = Change::new(&crel, What::Renamed, bits);
                    c.from = Some(display(&r));
                    c.from_rel = Some(r.clone());
                    c.real = Some(r.clone());
                    c.mode = Some(octal(st.st_mode));
                    self.out.push(c);
                    self.dir(d.as_fd(), &crel, Some(&r), opaque)?;
                    continue;
                }
                match real {
                    Some(r) if r.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                        if r.st_mode & 0o7777 != st.st_mode & 0o7777 {
                            let mut c = Change::new(&crel, What::Modified, bits);
                            c.mode = Some(octal(st.st_mode));
                            c.old_mode = Some(octal(r.st_mode));
                            c.real = clower.clone();
                            self.out.push(c);
                        }
                        self.dir(d.as_fd(), &crel, clower.as_deref(), opaque || hide_rest)?;
                    }
                    other => {
                        if other.is_some() {
                            self.replaced(&crel, clower.as_deref())?;
                        }
                        let mut c = Change::new(&crel, What::Added, bits);
                        c.mode = Some(octal(st.st_mode));
                        self.out.push(c);
                        self.dir(d.as_fd(), &crel, None, true)?;
                    }
                }
                continue;
            }
            // A file, symlink or special file.
            let same_kind = real.is_some_and(|r| r.st_mode & libc::S_IFMT == bits);
            if real.is_some() && !same_kind {
                self.replaced(&crel, clower.as_deref())?;
            }
            let what = if same_kind {
                What::Modified
            } else {
                What::Added
            };
            let mut c = Change::new(&crel, what, bits);
            c.mode = Some(octal(st.st_mode));
            c.upper = Some((st.st_dev, st.st_ino, st.st_nlink));
            if same_kind {
                c.real = clower.clone();
                let r = real.expect("same kind");
                c.old_mode = Some(octal(r.st_mode));
            }
            let unchanged = match bits {
                libc::S_IFREG => self.file(
                    &mut c,
                    upper,
                    &name,
                    &st,
                    clower.as_deref().filter(|_| same_kind),
                )?,
                libc::S_IFLNK => self.link(
                    &mut c,
                    upper,
                    &name,
                    clower.as_deref().filter(|_| same_kind),
                )?,
                _ => same_kind,
            };
            if unchanged && c.mode == c.old_mode {
                continue;
            }
            self.out.push(c);
        }
        Ok(())
    }

    /// Where a redirect points, as a path relative to the workspace.
    fn redirect(&self, r: &[u8], parent_lower: Option<&Path>) -> Option<PathBuf> {
        let p = Path::new(OsStr::from_bytes(r));
        let joined = if p.is_absolute() {
            p.strip_prefix("/").ok()?.to_path_buf()
        } else {
            parent_lower?.join(p)
        };
        // Only plain names: a redirect must not point out of the workspace.
        joined
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then_some(joined)
            .filter(|j| !j.as_os_str().is_empty())
    }

    /// The real path `lower` (shown at `rel`) is replaced by something of
    /// another type: a deletion first.
    fn replaced(&mut self, rel: &Path, lower: Option<&Path>) -> io::Result<()> {
        let Some(l) = lower else { return Ok(()) };
        let (Some(parent), Some(name)) = (l.parent(), l.file_name()) else {
            return Ok(());
        };
        if let Some(p) = real_dir(self.ws, parent)? {
            self.deleted(p.as_fd(), name, rel, l, false)?;
        }
        Ok(())
    }

    /// The real entry `name` of `parent` (at `real` in the workspace,
    /// shown at `rel`) is deleted, and everything beneath it.
    fn deleted(
        &mut self,
        parent: BorrowedFd,
        name: &OsStr,
        rel: &Path,
        real: &Path,
        within: bool,
    ) -> io::Result<()> {
        let Some(st) = fsops::lstat_at(parent, name)? else {
            return Ok(());
        };
        let bits = st.st_mode & libc::S_IFMT;
        let mut c = Change::new(rel, What::Deleted, bits);
        c.within_deleted = within;
        c.real = Some(real.to_path_buf());
        c.old_mode = Some(octal(st.st_mode));
        if bits == libc::S_IFREG {
            c.old_size = Some(st.st_size as u64);
        }
        if bits == libc::S_IFLNK {
            c.old_target = fsops::readlink_at(parent, name)
                .ok()
                .map(|t| t.to_string_lossy().into_owned());
        }
        self.out.push(c);
        if bits == libc::S_IFDIR {
            if let Ok(d) = fsops::open_dir(parent, name) {
                for n in fsops::list(d.as_fd())? {
                    self.deleted(d.as_fd(), &n, &rel.join(&n), &real.join(&n), true)?;
                }
            }
        }
        Ok(())
    }

    /// A regular file: sizes, and a unified diff for text. Returns whether
    /// its content is the real one's.
    fn file(
        &mut self,
        c: &mut Change,
        upper: BorrowedFd,
        name: &OsStr,
        st: &libc::stat,
        real: Option<&Path>,
    ) -> io::Result<bool> {
        c.size = Some(st.st_size as u64);
        let mut new = fsops::open_file(upper, name)?;
        let old = match real {
            Some(r) => {
                let (parent, n) = (
                    r.parent().unwrap_or(Path::new("")),
                    r.file_name().unwrap_or_default(),
                );
                match real_dir(self.ws, parent)? {
                    Some(p) => Some((fsops::open_file(p.as_fd(), n)?, p)),
                    None => None,
                }
            }
            None => None,
        };
        let old_size = old
            .as_ref()
            .map(|(f, _)| f.metadata().map(|m| m.len()))
            .transpose()?;
        c.old_size = old_size;
        let small = st.st_size as u64 <= DIFF_MAX && old_size.unwrap_or(0) <= DIFF_MAX;
        if !small {
            c.binary = true;
            return match old {
                Some((mut o, _)) if old_size == c.size => same_content(&mut o, &mut new),
                _ => Ok(false),
            };
        }
        let mut nb = Vec::new();
        (&mut new).take(DIFF_MAX).read_to_end(&mut nb)?;
        let mut ob = Vec::new();
        if let Some((mut o, _)) = old {
            o.by_ref().take(DIFF_MAX).read_to_end(&mut ob)?;
        }
        if real.is_some() && nb == ob {
            return Ok(true);
        }
        let text =
            |b: &[u8]| !b[..b.len().min(8000)].contains(&0) && std::str::from_utf8(b).is_ok();
        if !text(&nb) || !text(&ob) {
            c.binary = true;
        } else if self.text {
            let (o, n) = (String::from_utf8_lossy(&ob), String::from_utf8_lossy(&nb));
            let a = if real.is_some() {
                format!("a/{}", c.path)
            } else {
                "/dev/null".into()
            };
            // A bound on the time: past it the diff is correct but not
            // minimal.
            let d = similar::TextDiff::configure()
                .timeout(std::time::Duration::from_secs(2))
                .diff_lines(o.as_ref(), n.as_ref())
                .unified_diff()
                .context_radius(3)
                .header(&a, &format!("b/{}", c.path))
                .to_string();
            c.diff = Some(d);
        }
        Ok(false)
    }

    /// A symlink: its target. Returns whether it is the real one's.
    fn link(
        &mut self,
        c: &mut Change,
        upper: BorrowedFd,
        name: &OsStr,
        real: Option<&Path>,
    ) -> io::Result<bool> {
        let t = fsops::readlink_at(upper, name)?;
        c.target = Some(t.to_string_lossy().into_owned());
        let Some(r) = real else { return Ok(false) };
        let (parent, n) = (
            r.parent().unwrap_or(Path::new("")),
            r.file_name().unwrap_or_default(),
        );
        let old: Option<OsString> = match real_dir(self.ws, parent)? {
            Some(p) => fsops::readlink_at(p.as_fd(), n).ok(),
            None => None,
        };
        c.old_target = old.as_ref().map(|o| o.to_string_lossy().into_owned());
        Ok(old.as_deref() == Some(t.as_os_str()))
    }
}

fn same_content(a: &mut std::fs::File, b: &mut std::fs::File) -> io::Result<bool> {
    let mut x = vec![0u8; 1 << 16];
    let mut y = vec![0u8; 1 << 16];
    loop {
        let n = read_full(a, &mut x)?;
        let m = read_full(b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `s` with every control character but newline (when `lines`) shown as
/// `\xNN`: names and contents come from the agent, and a terminal must not
/// interpret them (an escape sequence could hide a line of the diff from
/// the person reviewing it).
pub(crate) fn visible(s: &str, lines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c.is_control() && !(lines && c == '\n')) || c == '\u{7f}' {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The text `confine diff` prints, control characters made visible.
pub fn render(changes: &[Change]) -> String {
    let mut o = String::new();
    for c in changes {
        let sign = match c.change {
            What::Added => "A",
            What::Modified => "M",
            What::Deleted => "D",
            What::Renamed => "R",
        };
        let path = visible(&c.path, false);
        let mut line = format!("{sign} {path}");
        if c.kind == "dir" {
            line.push('/');
        }
        if let Some(f) = &c.from {
            line = format!("{sign} {}/ -> {path}/", visible(f, false));
        }
        let mut notes = Vec::new();
        if c.kind != "file" && c.kind != "dir" {
            notes.push(c.kind.to_string());
        }
        if let Some(t) = &c.target {
            notes.push(format!("-> {}", visible(t, false)));
        }
        if c.change == What::Deleted {
            if let Some(s) = c.old_size {
                notes.push(format!("{s} bytes"));
            }
        } else if c.binary || c.diff.is_none() && c.kind == "file" {
            match (c.old_size, c.size) {
                (Some(a), Some(b)) => notes.push(format!("{a} -> {b} bytes")),
                (None, Some(b)) => notes.push(format!("{b} bytes")),
                _ => {}
            }
            if c.binary {
                notes.push("binary".into());
            }
        }
        if c.old_mode.is_some() && c.mode.is_some() && c.old_mode != c.mode {
            notes.push(format!(
                "mode {} -> {}",
                c.old_mode.as_deref().unwrap_or(""),
                c.mode.as_deref().unwrap_or("")
            ));
        }
        if !notes.is_empty() {
            line.push_str(&format!("  ({})", notes.join(", ")));
        }
        o.push_str(&line);
        o.push('\n');
    }
    for c in changes {
        if let Some(d) = &c.diff {
            o.push('\n');
            o.push_str(&visible(d, true));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(
            visible("a\x1b[2Kb\tc\nd\x7f", true),
            "a\\x1b[2Kb\\x09c\nd\\x7f"
        );
        assert_eq!(visible("x\ny", false), "x\\x0ay");
        assert_eq!(visible("plain é", false), "plain é");
    }
}
