//! The runs that had denials, kept in confine's state ([`crate::state`])
//! so that `confine why --last` works without an audit log:
//! `<state>/runs/ID/` (0700), holding
//! - `run.json`: the run ([`Context`]), written with its first denial;
//! - `denials.jsonl`: each distinct denial, as it is seen;
//! - `summary.json`: at the end, every distinct denial with its count, the
//!   totals and how the run ended.
//!
//! A run without denials leaves nothing (nothing is added to its launch).
//! Bounded: at most [`super::MAX_DISTINCT`] denials of at most
//! [`MAX_FIELD`] bytes per field and [`MAX_RUN_BYTES`] in all per run, and
//! [`KEEP`] runs (older ones are
//! removed when a new one is made, and by `confine gc`). Everything is
//! opened beneath the directory's descriptor without following symlinks.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use super::{Denial, Totals};
use crate::sandbox::fsfd;

/// Runs kept.
pub const KEEP: usize = 50;
/// The longest text field of a kept denial (a path, an executable).
pub const MAX_FIELD: usize = 1024;
/// The most bytes of denials a run keeps, in `denials.jsonl` and again
/// in `summary.json` (what doesn't fit is counted, not kept).
pub const MAX_RUN_BYTES: usize = 1 << 20;
/// The largest file `why` reads back.
const MAX_FILE: u64 = 8 << 20;

/// The run, as `why` needs it to suggest changes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Context {
    pub sandbox: String,
    pub started: String,
    /// Milliseconds since the epoch, to order runs.
    pub started_ms: u64,
    pub profile: String,
    pub workspace: PathBuf,
    pub argv: Vec<String>,
    /// `filesystem.protect`: never to be granted.
    pub protect: Vec<PathBuf>,
    pub audit_log: Option<PathBuf>,
}

/// How the run ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExitSummary {
    pub status: u8,
    pub reason: String,
}

/// What `summary.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub run: Context,
    pub denials: Vec<Counted>,
    pub totals: Totals,
    pub exit: Option<ExitSummary>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Counted {
    #[serde(flatten)]
    pub denial: Denial,
    pub count: u64,
}

/// The supervisor's writer of one run's directory, made at the first
/// denial. A failure is said once and the run goes on unrecorded there.
pub(crate) struct Writer {
    pub context: Context,
    dir: Option<OwnedFd>,
    denials: Option<File>,
    failed: bool,
    /// Bytes written to `denials.jsonl`.
    written: usize,
    /// Why nothing is to be kept (said at the first denial).
    refused: Option<String>,
}

impl Writer {
    pub(crate) fn new(context: Context) -> Writer {
        Writer {
            context,
            dir: None,
            denials: None,
            failed: false,
            written: 0,
            refused: None,
        }
    }

    /// A writer that keeps nothing, saying why at the first denial.
    pub(crate) fn refused(context: Context, why: &str) -> Writer {
        Writer {
            refused: Some(why.to_string()),
            ..Writer::new(context)
        }
    }

    fn fail(&mut self, e: &io::Error) {
        if !self.failed {
            self.failed = true;
            crate::say!(
                "confine: state (runs/{}): {e}; `confine why` won't know this run's denials without an audit log",
                self.context.sandbox
            );
        }
    }

    fn dir(&mut self) -> Option<BorrowedFd<'_>> {
        if let Some(why) = self.refused.take() {
            self.fail(&io::Error::other(why));
        }
        if self.dir.is_none() && !self.failed {
            match make(&self.context) {
                Ok((dir, file)) => {
                    self.dir = Some(dir);
                    self.denials = Some(file);
                }
                Err(e) => self.fail(&e),
            }
        }
        self.dir.as_ref().map(AsFd::as_fd)
    }

    /// Whether this run is kept (its directory was made).
    pub(crate) fn kept(&self) -> bool {
        self.dir.is_some()
    }

    /// Appends one distinct denial.
    pub(crate) fn denial(&mut self, d: &Denial) {
        if self.dir().is_none() {
            return;
        }
        let mut line = serde_json::to_vec(&bounded(d)).unwrap_or_default();
        line.push(b'\n');
        if self.written + line.len() > MAX_RUN_BYTES {
            return;
        }
        self.written += line.len();
        if let Some(f) = &mut self.denials {
            if let Err(e) = f.write_all(&line) {
                self.denials = None;
                self.fail(&e);
            }
        }
    }

    /// Writes `summary.json` (whole: a temporary name, then renamed).
    pub(crate) fn finish(
        &mut self,
        entries: &[(Denial, u64)],
        totals: &Totals,
        exit: Option<&ExitSummary>,
    ) {
        let mut size = 0;
        let summary = Summary {
            run: self.context.clone(),
            denials: entries
                .iter()
                .map(|(d, n)| Counted {
                    denial: bounded(d),
                    count: *n,
                })
                .take_while(|c| {
                    size += serde_json::to_vec(c).map_or(0, |v| v.len());
                    size <= MAX_RUN_BYTES
                })
                .collect(),
            totals: totals.clone(),
            exit: exit.cloned(),
        };
        let Some(dir) = self.dir() else {
            return;
        };
        let r = write_whole(
            dir,
            "summary.json",
            &serde_json::to_vec_pretty(&summary).unwrap_or_default(),
        );
        if let Err(e) = r {
            self.fail(&e);
        }
    }
}

/// `d` with every text field cut to [`MAX_FIELD`] bytes.
fn bounded(d: &Denial) -> Denial {
    let cut = |s: &Option<String>| {
        s.as_ref().map(|s| {
            if s.len() <= MAX_FIELD {
                return s.clone();
            }
            let mut end = MAX_FIELD;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}...", &s[..end])
        })
    };
    Denial {
        path: cut(&d.path),
        exe: cut(&d.exe),
        host: cut(&d.host),
        reason: cut(&d.reason),
        syscall: cut(&d.syscall),
        ..d.clone()
    }
}

/// Makes `runs/ID/` with its `run.json`, pruning old runs first.
fn make(c: &Context) -> io::Result<(OwnedFd, File)> {
    let (runs, _) = crate::state::open("runs")?;
    let _ = prune(runs.as_fd(), KEEP.saturating_sub(1));
    let name = Path::new(&c.sandbox);
    let cname = std::ffi::CString::new(c.sandbox.as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid directory fd and C string.
    if unsafe {
        libc::mkdirat(
            std::os::fd::AsRawFd::as_raw_fd(&runs),
            cname.as_ptr(),
            0o700,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let dir = fsfd::open_with(Some(runs.as_fd()), name, OFlag::O_DIRECTORY | OFlag::O_PATH)?;
    write_whole(
        dir.as_fd(),
        "run.json",
        &serde_json::to_vec_pretty(c).unwrap_or_default(),
    )?;
    let file = File::from(fsfd::create_in(
        dir.as_fd(),
        Path::new("denials.jsonl"),
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_EXCL | OFlag::O_NOCTTY,
        0o600,
    )?);
    Ok((dir, file))
}

fn write_whole(dir: BorrowedFd, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!(".{name}.tmp");
    let _ = nix::unistd::unlinkat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
        tmp.as_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let mut f = File::from(fsfd::create_in(
        dir,
        Path::new(&tmp),
        OFlag::O_WRONLY | OFlag::O_EXCL | OFlag::O_NOCTTY,
        0o600,
    )?);
    f.write_all(bytes)?;
    drop(f);
    nix::fcntl::renameat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
        tmp.as_str(),
        Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
        name,
    )
    .map_err(io::Error::from)
}

/// One kept run, as read back.
#[derive(Debug)]
pub struct Run {
    pub context: Context,
    pub denials: Vec<Counted>,
    pub totals: Option<Totals>,
    pub exit: Option<ExitSummary>,
}

/// Reads a small file beneath `dir` without following symlinks.
fn read(dir: BorrowedFd, name: &Path) -> io::Result<Vec<u8>> {
    let f = File::from(fsfd::open_with(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
    )?);
    crate::files::require_regular(&f)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE).read_to_end(&mut buf)?;
    Ok(buf)
}

fn bad(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

/// The kept run `id` (a full id or a unique prefix).
///
/// # Errors
/// No state, no such run, more than one run with that prefix, or its
/// files unreadable.
pub fn load(id: &str) -> io::Result<Run> {
    let ids = list()?;
    let hits: Vec<&(String, u64)> = ids.iter().filter(|(i, _)| i.starts_with(id)).collect();
    match hits.as_slice() {
        [(one, _)] => load_exact(one),
        [] => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no kept run {id}"),
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{id} is the prefix of {} runs", hits.len()),
        )),
    }
}

/// The newest kept run.
///
/// # Errors
/// As [`load`]; NotFound when no run is kept.
pub fn last() -> io::Result<Run> {
    let ids = list()?;
    match ids.iter().max_by_key(|(_, t)| *t) {
        Some((id, _)) => load_exact(id),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no run with denials is kept",
        )),
    }
}

fn runs_dir() -> io::Result<OwnedFd> {
    match crate::state::existing("runs")? {
        Some((fd, _)) => Ok(fd),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no run with denials is kept",
        )),
    }
}

/// The kept runs' ids and start times (ms).
fn list() -> io::Result<Vec<(String, u64)>> {
    let dir = runs_dir()?;
    list_in(dir.as_fd())
}

fn list_in(dir: BorrowedFd) -> io::Result<Vec<(String, u64)>> {
    // Listed through our own descriptor (the magic link is ours).
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/self/fd/{fd}"))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let started = fsfd::open_with(
            Some(dir),
            Path::new(&name),
            OFlag::O_DIRECTORY | OFlag::O_PATH,
        )
        .and_then(|run| read(run.as_fd(), Path::new("run.json")))
        .ok()
        .and_then(|b| serde_json::from_slice::<Context>(&b).ok())
        .map_or(0, |c| c.started_ms);
        out.push((name, started));
    }
    Ok(out)
}

fn load_exact(id: &str) -> io::Result<Run> {
    let runs = runs_dir()?;
    let dir = fsfd::open_with(
        Some(runs.as_fd()),
        Path::new(id),
        OFlag::O_DIRECTORY | OFlag::O_PATH,
    )?;
    if let Ok(b) = read(dir.as_fd(), Path::new("summary.json")) {
        let s: Summary = serde_json::from_slice(&b).map_err(|e| bad("summary.json", e))?;
        return Ok(Run {
            context: s.run,
            denials: s.denials,
            totals: Some(s.totals),
            exit: s.exit,
        });
    }
    // Still running, or its supervisor was killed: what was written so far.
    let context: Context = serde_json::from_slice(&read(dir.as_fd(), Path::new("run.json"))?)
        .map_err(|e| bad("run.json", e))?;
    let lines = read(dir.as_fd(), Path::new("denials.jsonl"))?;
    let denials = lines
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Denial>(l).ok())
        .map(|denial| Counted { denial, count: 1 })
        .collect();
    Ok(Run {
        context,
        denials,
        totals: None,
        exit: None,
    })
}

/// Removes all but the newest `keep` runs beneath `dir`; how many went.
fn prune(dir: BorrowedFd, keep: usize) -> io::Result<usize> {
    let mut runs = list_in(dir)?;
    if runs.len() <= keep {
        return Ok(0);
    }
    runs.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    let mut gone = 0;
    for (id, _) in &runs[keep..] {
        if remove_run(dir, id).is_ok() {
            gone += 1;
        }
    }
    Ok(gone)
}

/// Removes one run's directory: its known files, then itself.
fn remove_run(dir: BorrowedFd, id: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let run = fsfd::open_with(Some(dir), Path::new(id), OFlag::O_DIRECTORY | OFlag::O_PATH)?;
    for f in [
        "run.json",
        "denials.jsonl",
        "summary.json",
        ".summary.json.tmp",
        ".run.json.tmp",
    ] {
        let _ = nix::unistd::unlinkat(
            Some(run.as_raw_fd()),
            f,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        id,
        nix::unistd::UnlinkatFlags::RemoveDir,
    )
    .map_err(io::Error::from)
}

/// `confine gc`: keeps the newest [`KEEP`] runs; a line for what it did.
pub fn gc() -> Option<String> {
    let dir = crate::state::existing("runs").ok().flatten()?;
    match prune(dir.0.as_fd(), KEEP) {
        Ok(0) => None,
        Ok(n) => Some(format!(
            "removed {n} old run record(s) from {}",
            dir.1.display()
        )),
        Err(e) => Some(format!("confine: gc ({}): {e}", dir.1.display())),
    }
}
