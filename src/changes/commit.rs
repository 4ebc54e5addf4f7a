//! `confine commit`: applies the upper layer's changes to the real
//! workspace, as a privileged host-side step (DESIGN.md §4): the
//! workspace's writer (the agent's uid, outside the sandbox) may change it
//! at the same time, so
//! - everything is done beneath the workspace's descriptor, opened once,
//!   each directory opened with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`:
//!   a symlink planted on the way is refused (ELOOP), never followed;
//! - a file is never opened for writing: its new version is written to a
//!   new temporary file beside it (O_EXCL, never through a symlink),
//!   fsynced and renamed over the name, so a planted symlink or hard link
//!   is replaced, not written through, and readers see the old or the new
//!   file whole;
//! - what the real workspace was at launch ([`super::manifest`]) is
//!   checked first, for every path touched: one changed since is refused
//!   (nothing is applied) unless `--force`.
//!
//! Hard links: names that share an inode in the upper layer (linked
//! inside the sandbox) are committed as links of one file. A real file
//! that had other names and was changed inside the sandbox was copied up
//! (the overlay breaks the link, as the agent saw it): only the name it
//! changed gets the new version, the others keep the old one.
//!
//! Set-user-ID and set-group-ID bits are not committed.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use super::diff::{Change, What};
use super::fsops;
use super::manifest::{self, Manifest};
use super::state::Meta;
use crate::sandbox::fsfd;

/// A path whose real version changed since the launch.
#[derive(Debug)]
pub struct Conflict {
    pub path: PathBuf,
    pub why: &'static str,
}

/// Which changes a commit applies: all, or those at or beneath the named
/// paths, plus the renames and new directories those need.
pub fn select(changes: &[Change], named: &[PathBuf]) -> Result<Vec<bool>, PathBuf> {
    if named.is_empty() {
        return Ok(vec![true; changes.len()]);
    }
    let by = |c: &Change, n: &PathBuf| {
        c.rel.starts_with(n)
            || (n.starts_with(&c.rel)
                && c.kind == "dir"
                && matches!(c.change, What::Added | What::Renamed))
    };
    // Each path must take at least one change of its own.
    if let Some(n) = named
        .iter()
        .find(|n| !changes.iter().any(|c| c.rel.starts_with(n)))
    {
        return Err(n.clone());
    }
    Ok(changes
        .iter()
        .map(|c| named.iter().any(|n| by(c, n)))
        .collect())
}

/// Whether `c` was named itself (or beneath a named path), not only
/// needed by one.
pub fn direct(c: &Change, named: &[PathBuf]) -> bool {
    named.is_empty() || named.iter().any(|n| c.rel.starts_with(n))
}

/// The real paths a change touches, each to be as it was at launch (or
/// absent then and now).
fn touched(c: &Change) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(r) = &c.real {
        v.push(r.clone());
    }
    if matches!(c.change, What::Added | What::Renamed) && c.real.as_ref() != Some(&c.rel) {
        v.push(c.rel.clone());
    }
    v
}

/// The selected changes whose real paths changed since the launch.
///
/// # Errors
/// A lookup in the workspace failed.
pub fn conflicts(
    ws: BorrowedFd,
    changes: &[Change],
    selected: &[bool],
    m: &Manifest,
) -> io::Result<Vec<Conflict>> {
    let mut out = Vec::new();
    let added_here: Vec<&PathBuf> = changes
        .iter()
        .zip(selected)
        .filter(|(c, s)| **s && c.change == What::Deleted)
        .filter_map(|(c, _)| c.real.as_ref())
        .collect();
    for (c, _) in changes.iter().zip(selected).filter(|(_, s)| **s) {
        for p in touched(c) {
            let now = manifest::now(ws, &p)?;
            let then = m.get(&p);
            let why = match (then, now) {
                (Some(t), Some(n)) if t.same(&n) => continue,
                // What a selected deletion removes first may be there.
                (Some(_), Some(_)) if c.change == What::Added && added_here.contains(&&p) => {
                    continue
                }
                (None, None) => continue,
                (Some(_), Some(_)) => "it changed in the real workspace since the launch",
                (Some(_), None) => "it was removed from the real workspace since the launch",
                (None, Some(_)) => "it was created in the real workspace since the launch",
            };
            out.push(Conflict { path: p, why });
        }
    }
    Ok(out)
}

/// Applies changes to the workspace.
pub struct Applier<'a> {
    pub ws: BorrowedFd<'a>,
    pub upper: BorrowedFd<'a>,
    pub meta: &'a Meta,
    /// Upper inode -> (directory, name) it was committed as.
    links: HashMap<(u64, u64), (OwnedFd, OsString)>,
    /// Directories made or renamed, whose owner and mode are set last: a
    /// read-only one must first be filled.
    dirs: Vec<(OwnedFd, libc::stat)>,
    serial: u32,
}

fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl<'a> Applier<'a> {
    pub fn new(ws: BorrowedFd<'a>, upper: BorrowedFd<'a>, meta: &'a Meta) -> Self {
        Applier {
            ws,
            upper,
            meta,
            links: HashMap::new(),
            dirs: Vec::new(),
            serial: 0,
        }
    }

    /// Who owns what commit makes: as root, the agent (the owner the
    /// upper layer's entry has when root launched the sandbox); otherwise
    /// the caller, by creating it.
    fn owner(&self, st: &libc::stat) -> Option<(u32, u32)> {
        // SAFETY: geteuid has no arguments and can't fail.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        if self.meta.uid == 0 {
            Some((st.st_uid, st.st_gid))
        } else {
            Some((self.meta.uid, self.meta.agent_gid))
        }
    }

    /// The real directory `rel` (beneath the workspace, never through a
    /// symlink), made with the upper layer's mode where missing.
    fn real_dir(&mut self, rel: &Path) -> io::Result<OwnedFd> {
        let mut fd = fsops::dup(self.ws)?;
        let mut at = PathBuf::new();
        for c in rel.components() {
            let name = c.as_os_str();
            at.push(name);
            match fsops::open_dir(fd.as_fd(), name) {
                Ok(next) => fd = next,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let up = self.upper_stat(&at)?;
                    fsops::mkdir_new(fd.as_fd(), name, 0o700)?;
                    let next = fsops::open_dir(fd.as_fd(), name)?;
                    match up {
                        Some(st) => self.dirs.push((fsops::dup(next.as_fd())?, st)),
                        // SAFETY: a valid fd.
                        None => check(unsafe { libc::fchmod(next.as_raw_fd(), 0o755) })?,
                    }
                    fd = next;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(fd)
    }

    fn upper_stat(&self, rel: &Path) -> io::Result<Option<libc::stat>> {
        let (p, n) = split(rel)?;
        match fsops::open_rel_dir(self.upper, p) {
            Ok(Some(d)) => fsops::lstat_at(d.as_fd(), n),
            Ok(None) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets the owner and mode of the directories made or renamed, the
    /// deepest first. Call once every change is applied.
    ///
    /// # Errors
    /// The first fchown or fchmod that failed.
    pub fn finish(&mut self) -> io::Result<()> {
        while let Some((d, st)) = self.dirs.pop() {
            self.finish_dir(d.as_fd(), &st)?;
        }
        Ok(())
    }

    fn finish_dir(&self, d: BorrowedFd, st: &libc::stat) -> io::Result<()> {
        if let Some((u, g)) = self.owner(st) {
            // SAFETY: a valid fd.
            check(unsafe { libc::fchown(d.as_raw_fd(), u, g) })?;
        }
        // SAFETY: a valid fd.
        check(unsafe { libc::fchmod(d.as_raw_fd(), st.st_mode & 0o1777) })
    }

    fn temp_name(&mut self) -> OsString {
        self.serial += 1;
        OsString::from(format!(
            ".confine-commit-{}-{}",
            std::process::id(),
            self.serial
        ))
    }

    /// Applies one change.
    ///
    /// # Errors
    /// The step that failed.
    pub fn apply(&mut self, c: &Change) -> io::Result<()> {
        match c.change {
            What::Deleted => {
                let real = c.real.as_deref().unwrap_or(&c.rel);
                let (p, n) = split(real)?;
                match fsops::open_rel_dir(self.ws, p) {
                    Ok(Some(d)) => fsops::remove_tree(d.as_fd(), n),
                    // Gone with its directory already.
                    Ok(None) => Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            What::Renamed => {
                let from = c
                    .from_rel
                    .as_deref()
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
                let (fp, fname) = split(from)?;
                let (tp, tname) = split(&c.rel)?;
                let fd = self.real_dir(fp)?;
                let td = self.real_dir(tp)?;
                let (a, b) = (fsops::cname(fname)?, fsops::cname(tname)?);
                // The directory that will be renamed, held: only if that
                // very one is at the new name afterwards does it get the
                // upper layer's mode and owner.
                let moving = fsops::open_dir(fd.as_fd(), fname)?;
                // SAFETY: valid fds and C strings; renameat2 follows no
                // final symlink.
                check(unsafe {
                    libc::renameat2(
                        fd.as_raw_fd(),
                        a.as_ptr(),
                        td.as_raw_fd(),
                        b.as_ptr(),
                        libc::RENAME_NOREPLACE,
                    )
                })?;
                let there = fsops::open_dir(td.as_fd(), tname)?;
                let same = fsfd::identity(there.as_fd())? == fsfd::identity(moving.as_fd())?;
                match self.upper_stat(&c.rel)? {
                    Some(st) if same => self.dirs.push((moving, st)),
                    Some(_) => {
                        return Err(io::Error::other(
                            "the directory was replaced while it was renamed (another process is changing the workspace)",
                        ))
                    }
                    None => {}
                }
                Ok(())
            }
            What::Added | What::Modified => {
                let (p, n) = split(&c.rel)?;
                let Some(st) = self.upper_stat(&c.rel)? else {
                    return Err(io::Error::other("it is no longer in the upper layer"));
                };
                let dir = self.real_dir(p)?;
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFDIR => {
                        // Made now, or refused: what appeared there
                        // since the diff is not given an owner.
                        fsops::mkdir_new(dir.as_fd(), n, 0o700)?;
                        let d = fsops::open_dir(dir.as_fd(), n)?;
                        self.dirs.push((d, st));
                        Ok(())
                    }
                    libc::S_IFREG => self.file(dir, n, &c.rel, &st),
                    libc::S_IFLNK => self.symlink(dir.as_fd(), n, &c.rel, &st),
                    libc::S_IFIFO => {
                        let tmp = self.temp_name();
                        let t = fsops::cname(&tmp)?;
                        // SAFETY: a valid fd and C string.
                        check(unsafe {
                            libc::mkfifoat(dir.as_raw_fd(), t.as_ptr(), st.st_mode & 0o1777)
                        })?;
                        self.place(dir.as_fd(), &tmp, n, Some(&st))
                    }
                    _ => Err(io::Error::other(format!("a {} is not committed", c.kind))),
                }
            }
        }
    }

    /// Owner, then the rename over the real name.
    /// The owner (as root), then the rename over the real name. `chown`:
    /// the entry was made by name (a symlink, a FIFO), so it is opened
    /// without following and must still be what was made (that type, one
    /// link, ours) before it is given away: the directory's owner may have
    /// swapped the name for a hard link to someone else's file meanwhile.
    fn place(
        &self,
        dir: BorrowedFd,
        tmp: &OsStr,
        name: &OsStr,
        chown: Option<&libc::stat>,
    ) -> io::Result<()> {
        let t = fsops::cname(tmp)?;
        let n = fsops::cname(name)?;
        let r = (|| {
            if let Some((st, (u, g))) = chown.and_then(|st| Some((st, self.owner(st)?))) {
                let fd =
                    fsfd::open_with(Some(dir), Path::new(tmp), OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
                let now = fsfd::stat(fd.as_fd())?;
                // SAFETY: geteuid has no arguments and can't fail.
                let me = unsafe { libc::geteuid() };
                if now.st_mode & libc::S_IFMT != st.st_mode & libc::S_IFMT
                    || now.st_nlink != 1
                    || now.st_uid != me
                {
                    return Err(io::Error::other(
                        "the new entry was replaced before it was placed (another process is changing the directory)",
                    ));
                }
                // SAFETY: an O_PATH fd with AT_EMPTY_PATH: that very
                // entry, a symlink itself not followed.
                check(unsafe {
                    libc::fchownat(
                        fd.as_raw_fd(),
                        c"".as_ptr(),
                        u,
                        g,
                        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                    )
                })?;
            }
            // SAFETY: valid fds and C strings; renameat replaces the
            // name, whatever it is, and follows nothing.
            check(unsafe {
                libc::renameat(dir.as_raw_fd(), t.as_ptr(), dir.as_raw_fd(), n.as_ptr())
            })
        })();
        if r.is_err() {
            // SAFETY: a valid fd and C string; our own temporary entry.
            unsafe { libc::unlinkat(dir.as_raw_fd(), t.as_ptr(), 0) };
        }
        r
    }

    fn file(&mut self, dir: OwnedFd, name: &OsStr, rel: &Path, st: &libc::stat) -> io::Result<()> {
        let tmp = self.temp_name();
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            if let Some((ld, ln)) = self.links.get(&key) {
                let (a, b) = (fsops::cname(ln)?, fsops::cname(&tmp)?);
                // SAFETY: valid fds and C strings; flags 0: a symlink
                // isn't followed.
                check(unsafe {
                    libc::linkat(ld.as_raw_fd(), a.as_ptr(), dir.as_raw_fd(), b.as_ptr(), 0)
                })?;
                // The file it links to was given its owner already.
                return self.place(dir.as_fd(), &tmp, name, None);
            }
        }
        let (up, un) = split(rel)?;
        let updir = fsops::open_rel_dir(self.upper, up)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let mut src = fsops::open_file(updir.as_fd(), un)?;
        let out = fsfd::create_in(
            dir.as_fd(),
            Path::new(&tmp),
            OFlag::O_WRONLY | OFlag::O_EXCL,
            0o600,
        )?;
        let mut out = std::fs::File::from(out);
        let r = (|| {
            copy_sparse(&mut src, &mut out)?;
            // Through the descriptor of the file made: never a name that
            // could have been swapped meanwhile.
            if let Some((u, g)) = self.owner(st) {
                // SAFETY: a valid fd.
                check(unsafe { libc::fchown(out.as_raw_fd(), u, g) })?;
            }
            // After the chown, which clears set-id bits (there are none).
            // SAFETY: a valid fd.
            check(unsafe { libc::fchmod(out.as_raw_fd(), st.st_mode & 0o1777) })?;
            out.sync_all()
        })();
        if let Err(e) = r {
            let t = fsops::cname(&tmp)?;
            // SAFETY: a valid fd and C string; our own temporary file.
            unsafe { libc::unlinkat(dir.as_raw_fd(), t.as_ptr(), 0) };
            return Err(e);
        }
        drop(out);
        self.place(dir.as_fd(), &tmp, name, None)?;
        if st.st_nlink > 1 {
            self.links.insert(key, (dir, name.to_os_string()));
        }
        Ok(())
    }

    fn symlink(
        &mut self,
        dir: BorrowedFd,
        name: &OsStr,
        rel: &Path,
        st: &libc::stat,
    ) -> io::Result<()> {
        let (up, un) = split(rel)?;
        let updir = fsops::open_rel_dir(self.upper, up)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let target = fsops::readlink_at(updir.as_fd(), un)?;
        let tmp = self.temp_name();
        let (t, l) = (fsops::cname(&target)?, fsops::cname(&tmp)?);
        // SAFETY: valid C strings and fd.
        check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), l.as_ptr()) })?;
        self.place(dir, &tmp, name, Some(st))
    }
}

/// Copies `src` into the empty `dst` keeping holes: only the data
/// segments (`SEEK_DATA`/`SEEK_HOLE`) are copied, in the kernel
/// (`copy_file_range`), then the size is set. The upper layer keeps a
/// sparse file sparse (overlayfs copies up only data), and so does commit.
/// Where the filesystem can't say where data is, a plain copy.
fn copy_sparse(src: &mut std::fs::File, dst: &mut std::fs::File) -> io::Result<()> {
    let len = i64::try_from(src.metadata()?.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
    let mut at: i64 = 0;
    while at < len {
        // SAFETY: lseek on a valid fd.
        let data = unsafe { libc::lseek(s, at, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // No data after `at`: the rest is a hole.
                Some(libc::ENXIO) => break,
                Some(libc::EINVAL) if at == 0 => {
                    std::io::copy(src, dst)?;
                    return Ok(());
                }
                _ => return Err(e),
            }
        }
        // SAFETY: lseek on a valid fd.
        let hole = unsafe { libc::lseek(s, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let (mut from, mut to) = (data, data);
        while from < hole {
            let n = usize::try_from(hole - from)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            // SAFETY: valid fds and offsets that outlive the call.
            let r = unsafe { libc::copy_file_range(s, &mut from, d, &mut to, n, 0) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            if r == 0 {
                break;
            }
        }
        at = hole;
    }
    dst.set_len(len as u64)
}

/// After a commit of some paths: what was committed leaves the upper
/// layer (the real workspace has it now), so `diff` shows what is left.
///
/// # Errors
/// The first removal that failed.
pub fn forget(upper: BorrowedFd, meta: &Meta, c: &Change, whole: bool) -> io::Result<()> {
    let remove = |rel: &Path| -> io::Result<()> {
        let (p, n) = split(rel)?;
        match fsops::open_rel_dir(upper, p) {
            Ok(Some(d)) => fsops::remove_tree(d.as_fd(), n),
            Ok(None) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(()),
            Err(e) => Err(e),
        }
    };
    if c.change == What::Renamed {
        // The source's whiteout goes; the directory now is the real one.
        if let Some(from) = &c.from_rel {
            let (p, n) = split(from)?;
            if let Ok(Some(d)) = fsops::open_rel_dir(upper, p) {
                if fsops::lstat_at(d.as_fd(), n)?.is_some_and(|s| super::diff::is_whiteout(&s)) {
                    fsops::remove_tree(d.as_fd(), n)?;
                }
            }
        }
        if !whole {
            if let Some(d) = fsops::open_rel_dir(upper, &c.rel)? {
                fsops::remove_xattr(d.as_fd(), &meta.xattr("redirect"))?;
            }
            return Ok(());
        }
    }
    if !whole || c.within_deleted {
        return Ok(());
    }
    remove(&c.rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(path: &str, what: What, bits: u32) -> Change {
        Change::new(Path::new(path), what, bits)
    }

    #[test]
    fn a_path_takes_what_is_beneath_it_and_the_directories_it_needs() {
        let all = [
            c("new", What::Added, libc::S_IFDIR),
            c("new/sub", What::Added, libc::S_IFDIR),
            c("new/sub/f", What::Added, libc::S_IFREG),
            c("new/g", What::Added, libc::S_IFREG),
            c("moved", What::Renamed, libc::S_IFDIR),
            c("moved/x", What::Modified, libc::S_IFREG),
            c("old", What::Modified, libc::S_IFDIR),
            c("old/y", What::Deleted, libc::S_IFREG),
            c("z", What::Modified, libc::S_IFREG),
        ];
        let pick = |paths: &[&str]| {
            let named: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            select(&all, &named).map(|s| {
                all.iter()
                    .zip(s)
                    .filter(|(_, s)| *s)
                    .map(|(c, _)| c.path.clone())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(pick(&[]).unwrap().len(), all.len());
        assert_eq!(
            pick(&["new/sub/f"]).unwrap(),
            ["new", "new/sub", "new/sub/f"]
        );
        assert_eq!(
            pick(&["new"]).unwrap(),
            ["new", "new/sub", "new/sub/f", "new/g"]
        );
        assert_eq!(pick(&["moved/x"]).unwrap(), ["moved", "moved/x"]);
        // A directory whose mode changed is not needed by what is in it.
        assert_eq!(pick(&["old/y"]).unwrap(), ["old/y"]);
        assert_eq!(pick(&["z", "old/y"]).unwrap(), ["old/y", "z"]);
        // A path with no change of its own is refused, even above one.
        assert_eq!(pick(&["elsewhere"]), Err(PathBuf::from("elsewhere")));
        assert_eq!(
            pick(&["new/sub/f/deeper"]),
            Err(PathBuf::from("new/sub/f/deeper"))
        );
    }
}
