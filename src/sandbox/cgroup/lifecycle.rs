//! One sandbox's cgroup from creation to removal: create, add, kill, stats,
//! remove, and the sweep of what killed supervisors left.

use std::fs;
use std::io::{self, Write as _};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::layout::*;
use super::*;

/// One directory of the sandbox's cgroup: one per hierarchy used.
#[derive(Debug)]
pub(super) struct Dir {
    pub(super) path: PathBuf,
    /// The directory, locked for as long as this sandbox lives
    /// ([`lock_dir`]).
    pub(super) _lock: Option<OwnedFd>,
    pub(super) mechanism: Mechanism,
    /// v1: every controller bound to the hierarchy; v2: those we need.
    pub(super) controllers: Vec<String>,
    /// Not needed for any limit (v1 `cpuacct` for statistics, the v1
    /// `freezer` for `confine freeze`): failing to create or join it is
    /// ignored.
    pub(super) optional: bool,
}

impl Dir {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// How old a `confine-*` cgroup must be before a later launch may take it
/// for the leftover of a killed supervisor: covers only the moment between
/// its creator's mkdir and its flock.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens a sandbox cgroup's directory and takes the exclusive `flock` its
/// supervisor holds for the whole run: the kernel drops it when the
/// supervisor is gone, however it ends (the sandbox's init closes its
/// inherited copy, and dies with the supervisor), so whoever can take it
/// knows the cgroup is a leftover.
fn lock_dir(path: &Path) -> io::Result<OwnedFd> {
    let fd = crate::sandbox::fsfd::open_with(
        None,
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
    )?;
    // SAFETY: flock on an fd we own.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Removes the `confine-*` cgroups under `parent` that no supervisor holds
/// (see [`lock_dir`]). rmdir of a cgroup that still has processes fails, so
/// nothing alive loses its cgroup; a cgroup younger than [`STALE_AFTER`]
/// is left to its creator, which may not have locked it yet.
pub fn sweep_stale(parent: &Path) -> usize {
    let Ok(entries) = fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("confine-") {
            continue;
        }
        let path = e.path();
        let young = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < STALE_AFTER);
        if young {
            continue;
        }
        // Held: its supervisor is alive. The lock is dropped with the fd,
        // after the rmdir.
        let Ok(_held) = lock_dir(&path) else {
            continue;
        };
        if fs::remove_dir(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// `confine gc`: sweeps every place this confine would create sandbox
/// cgroups in (its own cgroup in each hierarchy, and a delegated v2
/// parent); returns how many leftovers were removed.
pub fn sweep_all() -> usize {
    let layout = Layout::discover();
    let mut parents: Vec<PathBuf> = layout.v1.iter().filter_map(|h| h.dir.clone()).collect();
    if let Some(v2) = &layout.v2 {
        parents.push(v2.dir.clone());
        if let Some(up) = &v2.up {
            parents.push(up.dir.clone());
        }
    }
    parents.sort();
    parents.dedup();
    parents.iter().map(|p| sweep_stale(p)).sum()
}

/// The cgroup of one sandbox: a directory `confine-<id>` in each hierarchy
/// that enforces one of its limits.
#[derive(Debug)]
pub struct Cgroup {
    /// Created by us, in creation order; removed in reverse.
    pub(super) dirs: Vec<Dir>,
    pub(super) enforced: Vec<Enforced>,
    /// Where confine stepped aside to, to be undone after the sandbox's
    /// directories are gone.
    pub(super) leaf: Option<Leaf>,
    /// The process that created the directories. A forked copy of this
    /// value (the sandbox's side of the fork) never kills or removes.
    pub(super) owner: u32,
}

/// confine's own move into a leaf of its v2 cgroup (see [`Placement::leaf`]).
#[derive(Debug)]
pub(super) struct Leaf {
    /// The cgroup confine was in, now the sandbox cgroup's parent.
    pub(super) parent: PathBuf,
    /// `<parent>/confine-<id>-supervisor`, holding confine alone.
    pub(super) dir: PathBuf,
    /// Controllers we enabled in `parent`'s subtree_control, in order.
    pub(super) enabled: Vec<&'static str>,
}

impl Leaf {
    fn enter(parent: &Path, name: &str) -> Result<Leaf, CgroupError> {
        let dir = parent.join(format!("{name}-supervisor"));
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(CgroupError::Exists { path: dir });
            }
            Err(e) => return Err(io_err("creating", &dir, e)),
        }
        let procs = dir.join("cgroup.procs");
        if let Err(e) = write_file(&procs, &std::process::id().to_string()) {
            let _ = fs::remove_dir(&dir);
            return Err(io_err("moving confine itself into", &procs, e));
        }
        Ok(Leaf {
            parent: parent.to_path_buf(),
            dir,
            enabled: Vec::new(),
        })
    }

    /// Leaves `parent` as we found it: the controllers we enabled disabled
    /// again (which the kernel allows only once no child uses them below),
    /// confine back in it, the leaf removed.
    fn leave(self) -> Result<(), CgroupError> {
        let ctl = self.parent.join("cgroup.subtree_control");
        for c in self.enabled.iter().rev() {
            write_file(&ctl, &format!("-{c}"))
                .map_err(|e| io_err(format!("disabling -{c} in"), &ctl, e))?;
        }
        let procs = self.parent.join("cgroup.procs");
        write_file(&procs, &std::process::id().to_string())
            .map_err(|e| io_err("moving confine itself back into", &procs, e))?;
        rmdir_retrying(&self.dir, Instant::now() + RMDIR_TIMEOUT)
    }
}

impl Cgroup {
    /// Creates `confine-<id>` under our own cgroup in each hierarchy needed
    /// and writes the limits. Call it in the supervisor before the fork.
    /// With no limits at all it creates nothing (and the other methods do
    /// nothing).
    ///
    /// # Errors
    /// [`CgroupError::InvalidId`] or [`CgroupError::InvalidLimit`] for bad
    /// input; [`CgroupError::Unenforceable`] when a requested limit can't be
    /// enforced here (what [`capability`] predicts, or the kernel refused to
    /// enable a v2 controller); [`CgroupError::Exists`] when a directory of
    /// that name is already there; [`CgroupError::Io`] naming the file that
    /// couldn't be created or written. On any error, whatever was created is
    /// removed again.
    pub fn create(id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        validate(id, limits)?;
        Self::create_in(&Layout::discover(), id, limits)
    }

    pub(super) fn create_in(
        layout: &Layout,
        id: &str,
        limits: &Limits,
    ) -> Result<Cgroup, CgroupError> {
        let name = format!("confine-{id}");
        let mut cg = Cgroup {
            dirs: Vec::new(),
            enforced: Vec::new(),
            leaf: None,
            owner: std::process::id(),
        };

        // Where each limit goes; refuse before creating anything.
        let mut placed: Vec<(Controller, Placement)> = Vec::new();
        for (c, p) in layout.place_all(limits) {
            let p = p.map_err(|why| CgroupError::Unenforceable { key: c.key(), why })?;
            placed.push((c, p));
        }

        // v2, confine alone in its cgroup: step aside into a leaf so the
        // cgroup may enable a domain controller for the sandbox's.
        if let Some((_, p)) = placed.iter().find(|(_, p)| p.leaf) {
            cg.leaf = Some(Leaf::enter(&p.parent, &name)?);
        }

        // v2: children get a controller only once the parent's
        // subtree_control enables it. One write per controller, so a
        // refusal names it.
        for (c, p) in placed.iter().filter(|(_, p)| p.enable) {
            let file = p.parent.join("cgroup.subtree_control");
            if let Err(e) = write_file(&file, &format!("+{}", c.name())) {
                return Err(match e.raw_os_error() {
                    Some(libc::EBUSY) => CgroupError::Unenforceable {
                        key: c.key(),
                        why: no_internal_processes(c.name(), &p.parent),
                    },
                    _ => io_err(format!("enabling +{} in", c.name()), &file, e),
                });
            }
            if let Some(leaf) = cg.leaf.as_mut() {
                leaf.enabled.push(c.name());
            }
        }

        for w in wanted_dirs(layout, &placed) {
            sweep_stale(&w.parent);
            let path = w.parent.join(&name);
            match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(CgroupError::Exists { path });
                }
                Err(_) if w.optional => continue,
                Err(e) => return Err(io_err("creating", &path, e)),
            }
            // Locked at once: a sweeping launch treats unlocked ones
            // older than STALE_AFTER as leftovers.
            let lock = match lock_dir(&path) {
                Ok(fd) => Some(fd),
                Err(_) if w.optional => None,
                Err(e) => {
                    let _ = fs::remove_dir(&path);
                    return Err(io_err("locking", &path, e));
                }
            };
            cg.dirs.push(Dir {
                path: path.clone(),
                _lock: lock,
                mechanism: w.mechanism,
                controllers: w.controllers,
                optional: w.optional,
            });
            for (c, p) in placed.iter().filter(|(_, p)| p.parent == w.parent) {
                write_limit(*c, p, &path, limits)?;
                cg.enforced.push(Enforced {
                    key: c.key(),
                    mechanism: p.mechanism,
                    dir: path.clone(),
                });
            }
        }
        Ok(cg)
    }

    /// The limits as enforced, one entry per requested limit.
    pub fn enforced(&self) -> &[Enforced] {
        &self.enforced
    }

    /// The sandbox's cgroup directories (for the launch record).
    pub fn paths(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }

    /// Moves process `pid` (with all its threads) into every directory.
    /// Call it in the supervisor with the child's pid right after the clone,
    /// before the child proceeds: what it forks afterwards starts inside.
    ///
    /// # Errors
    /// [`CgroupError::BadPid`] for pid ≤ 0 or confine's own pid (writing 0
    /// would move the caller); [`CgroupError::Io`] naming the `cgroup.procs`
    /// that refused it (ESRCH: the process is gone). The caller must then
    /// kill the child: it may be in some hierarchies and not others.
    pub fn add(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::BadPid {
                pid,
                why: "not a process id (0 would move the caller itself)",
            });
        }
        if u32::try_from(pid).ok() == Some(std::process::id()) {
            return Err(CgroupError::BadPid {
                pid,
                why: "confine never moves itself into the sandbox's cgroup",
            });
        }
        for d in &self.dirs {
            let f = d.path.join("cgroup.procs");
            match write_file(&f, &pid.to_string()) {
                Ok(()) => {}
                Err(_) if d.optional => {}
                Err(e) => return Err(io_err(format!("adding pid {pid} to"), &f, e)),
            }
        }
        Ok(())
    }

    /// The processes in the cgroup now (thread-group leaders, no zombies).
    ///
    /// # Errors
    /// [`CgroupError::Io`] when a `cgroup.procs` can't be read.
    pub fn pids(&self) -> Result<Vec<libc::pid_t>, CgroupError> {
        let mut all: Vec<libc::pid_t> = Vec::new();
        for d in &self.dirs {
            for p in read_procs(&d.path)? {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
        }
        Ok(all)
    }

    /// SIGKILLs every process in the cgroup and waits until it is empty.
    /// v2 with `cgroup.kill` (5.14+) kills atomically; otherwise (and as a
    /// check afterwards) every listed pid is killed, again and again, until
    /// none is left: a fork racing the first pass is caught by the next.
    /// A pid is signalled through a pidfd opened before re-checking that the
    /// pid is still listed, so a recycled pid outside the cgroup is never hit.
    ///
    /// Killing the sandbox's init makes it a zombie until the supervisor
    /// reaps it; zombies aren't listed, so this doesn't wait for that.
    ///
    /// # Errors
    /// [`CgroupError::Io`] when a `cgroup.procs` can't be read;
    /// [`CgroupError::Survivors`] when processes are still there after
    /// 5 s (uninterruptible sleep).
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        if !self.owned() {
            return Ok(());
        }
        for d in self.dirs.iter().filter(|d| d.mechanism == Mechanism::V2) {
            let f = d.path.join("cgroup.kill");
            if f.exists() {
                // A failure leaves the loop below to do the work.
                let _ = write_file(&f, "1");
            }
        }
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut thawed = false;
        loop {
            let mut left: Option<(&Path, Vec<libc::pid_t>)> = None;
            for d in &self.dirs {
                let listed = read_procs(&d.path)?;
                if listed.is_empty() {
                    continue;
                }
                kill_listed(&d.path, &listed)?;
                left = Some((&d.path, listed));
            }
            // A frozen task dies only once thawed (v1 freezer): thawed
            // after the SIGKILLs are queued, so nothing runs on.
            if !thawed && left.is_some() {
                thawed = true;
                let _ = self.freeze(false);
            }
            let Some((path, pids)) = left else {
                return Ok(());
            };
            let waited = start.elapsed();
            if waited > KILL_TIMEOUT {
                return Err(CgroupError::Survivors {
                    path: path.to_path_buf(),
                    pids,
                    waited,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Whether the OOM killer killed a process here because of
    /// `limits.memory`: v2 `memory.events` `oom_kill`, v1 `memory.oom_control`
    /// `oom_kill` (4.13+), on older v1 kernels `memory.failcnt` (the limit was
    /// hit at least once). False without a memory limit.
    pub fn oom_killed(&self) -> bool {
        self.oom_kills().is_some_and(|n| n > 0)
    }

    fn oom_kills(&self) -> Option<u64> {
        let d = self.dirs.iter().find(|d| d.has("memory"))?;
        match d.mechanism {
            Mechanism::V2 => keyed(&d.path.join("memory.events"), "oom_kill"),
            Mechanism::V1 => keyed(&d.path.join("memory.oom_control"), "oom_kill")
                .or_else(|| single(&d.path.join("memory.failcnt"))),
        }
    }

    /// Peak memory, OOM kills, peak tasks and CPU time, where available.
    /// Read it after the sandbox ended and before [`Cgroup::remove`].
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            oom_kills: self.oom_kills(),
            ..Stats::default()
        };
        for d in &self.dirs {
            let p = |f: &str| d.path.join(f);
            match d.mechanism {
                Mechanism::V2 => {
                    s.memory_peak_bytes = s.memory_peak_bytes.or_else(|| single(&p("memory.peak")));
                    s.pids_peak = s.pids_peak.or_else(|| single(&p("pids.peak")));
                    // cpu.stat's usage is core accounting: there even
                    // without the cpu controller.
                    let stat = p("cpu.stat");
                    s.cpu_usage_usec = s.cpu_usage_usec.or_else(|| keyed(&stat, "usage_usec"));
                    s.cpu_user_usec = s.cpu_user_usec.or_else(|| keyed(&stat, "user_usec"));
                    s.cpu_system_usec = s.cpu_system_usec.or_else(|| keyed(&stat, "system_usec"));
                }
                Mechanism::V1 => {
                    if d.has("memory") {
                        s.memory_peak_bytes = s
                            .memory_peak_bytes
                            .or_else(|| single(&p("memory.max_usage_in_bytes")));
                    }
                    if d.has("pids") {
                        s.pids_peak = s.pids_peak.or_else(|| single(&p("pids.peak")));
                    }
                    if d.has("cpuacct") {
                        let us = |f: &str| single(&p(f)).map(|ns| ns / 1000);
                        s.cpu_usage_usec = s.cpu_usage_usec.or_else(|| us("cpuacct.usage"));
                        s.cpu_user_usec = s.cpu_user_usec.or_else(|| us("cpuacct.usage_user"));
                        s.cpu_system_usec = s.cpu_system_usec.or_else(|| us("cpuacct.usage_sys"));
                    }
                }
            }
        }
        s
    }

    /// Kills whatever is left ([`Cgroup::kill_all`]) and removes every
    /// directory, retrying `rmdir` briefly while processes finish exiting.
    ///
    /// # Errors
    /// [`CgroupError::Survivors`] or [`CgroupError::Io`] (EBUSY after
    /// 2 s); every directory is still attempted, the first
    /// error is returned, and `Drop` won't retry.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.cleanup()
    }

    fn owned(&self) -> bool {
        self.owner == std::process::id()
    }

    fn cleanup(&mut self) -> Result<(), CgroupError> {
        if !self.owned() {
            self.dirs.clear();
            self.leaf = None;
            return Ok(());
        }
        let mut first = self.kill_all().err();
        let deadline = Instant::now() + RMDIR_TIMEOUT;
        for d in self.dirs.drain(..).rev() {
            if let Err(e) = rmdir_retrying(&d.path, deadline) {
                first.get_or_insert(e);
            }
        }
        // Only once the sandbox's cgroup is gone may its controllers be
        // disabled and confine re-enter the parent. If that fails, the leaf
        // stays with confine in it; once confine exits it is empty, and a
        // later launch sweeps it (its name starts with confine-).
        if let Some(leaf) = self.leaf.take() {
            if first.is_none() {
                if let Err(e) = leaf.leave() {
                    first = Some(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

/// A directory to create under `parent`.
pub(super) struct Want {
    pub(super) parent: PathBuf,
    pub(super) mechanism: Mechanism,
    pub(super) controllers: Vec<String>,
    pub(super) optional: bool,
}

/// One directory per parent: controllers co-mounted in one v1 hierarchy
/// (`cpu,cpuacct`), or all of v2, share it. Plus, optional, when v1 alone
/// carries the sandbox: the `freezer` hierarchy (`confine freeze`) and the
/// `cpuacct` one (CPU time for `confine stats` and the exit record).
pub(super) fn wanted_dirs(layout: &Layout, placed: &[(Controller, Placement)]) -> Vec<Want> {
    let mut wanted: Vec<Want> = Vec::new();
    for (c, p) in placed {
        let controllers = match p.mechanism {
            Mechanism::V2 => vec![c.name().to_string()],
            Mechanism::V1 => layout
                .v1
                .iter()
                .find(|h| h.dir.as_ref() == Some(&p.parent))
                .map(|h| h.controllers.clone())
                .unwrap_or_else(|| vec![c.name().to_string()]),
        };
        match wanted.iter_mut().find(|w| w.parent == p.parent) {
            Some(w) => {
                for x in controllers {
                    if !w.controllers.contains(&x) {
                        w.controllers.push(x);
                    }
                }
            }
            None => wanted.push(Want {
                parent: p.parent.clone(),
                mechanism: p.mechanism,
                controllers,
                optional: false,
            }),
        }
    }
    let cpu_v1 = placed
        .iter()
        .any(|(c, p)| *c == Controller::Cpu && p.mechanism == Mechanism::V1);
    let have_cpuacct = wanted
        .iter()
        .any(|w| w.controllers.iter().any(|x| x == "cpuacct"));
    // `confine freeze` (DESIGN.md §12): v2's cgroup.freeze is in every
    // non-root cgroup; without a v2 directory the v1 freezer hierarchy,
    // where one is mounted.
    let v2 = wanted.iter().any(|w| w.mechanism == Mechanism::V2);
    let have_freezer = wanted
        .iter()
        .any(|w| w.controllers.iter().any(|x| x == "freezer"));
    if !wanted.is_empty() && !v2 && !have_freezer {
        let freezer = layout
            .v1
            .iter()
            .find(|h| h.writable && h.controllers.iter().any(|x| x == "freezer"));
        if let Some((h, dir)) = freezer.and_then(|h| Some((h, h.dir.clone()?))) {
            if !wanted.iter().any(|w| w.parent == dir) {
                wanted.push(Want {
                    parent: dir,
                    mechanism: Mechanism::V1,
                    controllers: h.controllers.clone(),
                    optional: true,
                });
            }
        }
    }
    // CPU time for `confine stats` and the exit record: with the v1 CPU
    // limit, or whenever v1 alone carries the sandbox's cgroup.
    if (cpu_v1 || (!wanted.is_empty() && !v2)) && !have_cpuacct {
        let acct = layout
            .v1
            .iter()
            .find(|h| h.writable && h.controllers.iter().any(|x| x == "cpuacct"));
        if let Some((h, dir)) = acct.and_then(|h| Some((h, h.dir.clone()?))) {
            wanted.push(Want {
                parent: dir,
                mechanism: Mechanism::V1,
                controllers: h.controllers.clone(),
                optional: true,
            });
        }
    }
    wanted
}

/// Writes `c`'s limit into the new cgroup `dir`.
fn write_limit(
    c: Controller,
    p: &Placement,
    dir: &Path,
    limits: &Limits,
) -> Result<(), CgroupError> {
    if p.mechanism == Mechanism::V2 {
        // The kernel hands a child what the parent's subtree_control
        // enables; make sure this one got it.
        let have = read_words(&dir.join("cgroup.controllers")).unwrap_or_default();
        if !have.iter().any(|x| x == c.name()) {
            return Err(CgroupError::Unenforceable {
                key: c.key(),
                why: format!(
                    "{} didn't get the {} controller from {}",
                    dir.display(),
                    c.name(),
                    p.parent.display()
                ),
            });
        }
    }
    for (file, value, need) in settings(c, p.mechanism, limits) {
        let f = dir.join(file);
        if need != Need::Required && !f.exists() {
            continue;
        }
        match write_file(&f, &value) {
            Ok(()) => {}
            Err(_) if need == Need::BestEffort => {}
            Err(e) => return Err(io_err(format!("writing {value:?} to"), &f, e)),
        }
    }
    Ok(())
}

fn rmdir_retrying(path: &Path, deadline: Instant) -> Result<(), CgroupError> {
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(io_err("removing", path, e)),
        }
    }
}

/// One write(2) of `value`; cgroup files take a value per write. Never
/// creates a file.
pub(super) fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

pub(super) fn read_procs(dir: &Path) -> Result<Vec<libc::pid_t>, CgroupError> {
    let f = dir.join("cgroup.procs");
    match fs::read_to_string(&f) {
        Ok(s) => Ok(s
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()),
        // Removed under us: nothing in it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("reading", &f, e)),
    }
}

/// SIGKILLs those of `listed` that are still in `dir` once a pidfd holds
/// them: a pid that exited and was reused outside the cgroup between the
/// listing and the kill is not in the second listing, and a process that
/// exits after it can't be hit through its pidfd.
fn kill_listed(dir: &Path, listed: &[libc::pid_t]) -> Result<(), CgroupError> {
    let me = std::process::id();
    let fds: Vec<(libc::pid_t, Option<OwnedFd>)> = listed
        .iter()
        .filter(|&&p| p > 0 && u32::try_from(p).ok() != Some(me))
        .map(|&p| (p, pidfd_open(p)))
        .collect();
    let still = read_procs(dir)?;
    for (pid, fd) in fds.iter().filter(|(p, _)| still.contains(p)) {
        match fd {
            Some(fd) => {
                use std::os::fd::AsRawFd;
                // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0u32,
                    )
                };
            }
            // No pidfds (before 5.3): the listing was just re-checked.
            // SAFETY: kill with integer arguments.
            None => unsafe {
                libc::kill(*pid, libc::SIGKILL);
            },
        }
    }
    Ok(())
}

fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with integer arguments; the fd returned is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: fd was just returned by the kernel and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A file holding one number.
pub(super) fn single(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a file of `key value` lines.
pub(super) fn keyed(path: &Path, key: &str) -> Option<u64> {
    keyed_in(&fs::read_to_string(path).ok()?, key)
}

pub(super) fn keyed_in(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some(key)).then(|| w.next()?.parse().ok())?
    })
}
