//! Filesystem planning: the profile's grants resolved (symlinks followed,
//! none that the workspace controls), the paths confine grants itself, the
//! mount view (binds, the symlinks on the way, the resolver), `protect` with
//! its placeholders, and where the audit log may be.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::{refused, PlanError, Request};
use crate::profile::{self, NetworkMode, PathSpec, Profile, Sourced};
use crate::sandbox::landlock::{self as ll, Grant};
use crate::sandbox::mounts;

/// One path rule as `explain` shows it and Landlock applies it.
#[derive(Clone, Debug, Serialize)]
pub struct PathGrant {
    /// The path as the profile wrote it (`{workspace}` expanded).
    pub written: PathBuf,
    /// Where it resolves, symlinks followed; the rule binds to this.
    pub path: PathBuf,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// Granted by confine itself (e.g. `/dev/null`), not by the profile.
    pub implicit: bool,
    /// The Landlock rights on the path.
    pub rights: Vec<&'static str>,
    #[serde(skip)]
    pub(super) access: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TmpPlan {
    pub size_bytes: u64,
    pub exec: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FsPlan {
    pub grants: Vec<PathGrant>,
    /// Read-only inside write grants.
    pub protect: Vec<PathBuf>,
    pub tmp: Option<TmpPlan>,
    /// The mount view: what exists inside at all, and with which flags.
    pub mounts: mounts::View,
    /// Protected paths that can't be protected (they don't exist yet, or
    /// are symlinks): a gap under `compat`.
    #[serde(skip)]
    pub(super) unprotectable: Vec<(PathBuf, &'static str)>,
    /// `filesystem.changes` (DESIGN.md §14).
    pub changes: super::changes::ChangesPlan,
}

/// What protect planning has already put in the view, so that many
/// entries plan in linear time.
#[derive(Default)]
struct ProtectSeen {
    /// The write binds' paths.
    writes: std::collections::HashSet<PathBuf>,
    create: std::collections::HashSet<PathBuf>,
    rely: std::collections::HashSet<PathBuf>,
    pins: std::collections::HashSet<PathBuf>,
    protect: std::collections::HashSet<PathBuf>,
    masks: std::collections::HashSet<PathBuf>,
}

/// The filesystem part of the plan: the profile's grants and confine's
/// own, each with its Landlock rights for `abi`, and the mount view.
pub(super) fn plan(
    p: &Profile,
    ws: &Path,
    abi: u32,
    home: Option<&super::home::HomePlan>,
) -> Result<FsPlan, PlanError> {
    let mut by_path: BTreeMap<PathBuf, (PathBuf, Grant, bool)> = profile_grants(p, Some(ws))?
        .into_iter()
        .map(|(real, (written, g))| (real, (written, g, false)))
        .collect();
    // A home of its own is written to like the workspace (a private one
    // may not exist until the launch creates it).
    let home_dir = home.filter(|h| h.granted()).map(|h| h.path.clone());
    if let Some(h) = &home_dir {
        by_path
            .entry(h.clone())
            .or_insert((h.clone(), Grant::NONE, false))
            .1 |= Grant::WRITE;
    }
    let tmp = p.filesystem.tmp.as_ref().map(|t| TmpPlan {
        size_bytes: t.size.map(|s| s.0).unwrap_or(profile::DEFAULT_TMP_SIZE),
        exec: t.exec.unwrap_or(false),
    });
    // The mount view: only what is granted exists inside.
    let mut view = mounts::View {
        binds: {
            // Sorted, so a parent's bind is decided before anything
            // beneath it. The bind that shows a path is its nearest
            // ancestor's: looked up per ancestor, not scanned for, so
            // thousands of grants plan in linear time.
            let mut flags: HashMap<&Path, (bool, bool)> = HashMap::new();
            let mut binds = Vec::new();
            for (path, (_, g, _)) in &by_path {
                // A recursive bind of a parent with the same flags
                // already shows this path as it should be.
                let covered = path
                    .ancestors()
                    .skip(1)
                    .find_map(|a| flags.get(a))
                    .is_some_and(|&(write, exec)| write == g.write && exec == g.exec);
                if !covered {
                    flags.insert(path, (g.write, g.exec));
                    binds.push(mounts::Bind {
                        path: path.clone(),
                        write: g.write,
                        exec: g.exec,
                    });
                }
            }
            binds
        },
        tmp: tmp.as_ref().map(|t| (t.size_bytes, t.exec)),
        shm_size: tmp.as_ref().map_or(64 << 20, |t| t.size_bytes),
        ..Default::default()
    };
    for (written, _, _) in by_path.values() {
        for link in symlinks_on(written) {
            if !view.links.contains(&link) {
                view.links.push(link);
            }
        }
    }
    if p.network.mode.value == NetworkMode::Host {
        resolver(&mut by_path, &mut view);
    }
    if p.network.mode.value == NetworkMode::Proxy {
        // Names are the egress proxy's DNS stub's to answer.
        view.resolv_conf = Some(
            "# confine: the egress proxy's DNS stub (network.mode: proxy)\nnameserver 127.0.0.1\n"
                .into(),
        );
    }
    view.hosts = Some(hosts_file(p.network.mode.value == NetworkMode::Host));
    // These exist in every sandbox's own /proc, /dev and /tmp.
    for (path, grant) in implicit_grants(tmp.is_some()) {
        let path = PathBuf::from(path);
        let e = by_path
            .entry(path.clone())
            .or_insert((path, Grant::NONE, true));
        e.1 |= grant;
    }
    let grants = by_path
        .into_iter()
        .map(|(path, (written, grant, implicit))| {
            let mut access = ll::access_for(abi, grant);
            if implicit && path.starts_with("/dev") && path != Path::new("/dev/shm") {
                // Devices and the private devpts: open, read, write and
                // (where granted) ioctl; nothing is created or removed.
                access &=
                    ll::READ_FILE | ll::READ_DIR | ll::WRITE_FILE | ll::TRUNCATE | ll::IOCTL_DEV;
            }
            let kind = if implicit {
                None
            } else {
                std::fs::metadata(&path).ok().map(|m| m.file_type())
            };
            let is_dir = if implicit {
                matches!(
                    path.to_str(),
                    Some("/proc" | "/tmp" | "/dev/pts" | "/dev/shm")
                )
            } else {
                kind.is_some_and(|t| t.is_dir()) || home_dir.as_ref() == Some(&path)
            };
            let access = if is_dir {
                access
            } else if kind.is_some_and(|t| std::os::unix::fs::FileTypeExt::is_socket(&t)) {
                // The profile names this socket: the agent may connect
                // to it, where Landlock controls that (ABI 9).
                ll::file_access(access) | ll::socket_access(abi)
            } else {
                ll::file_access(access)
            };
            PathGrant {
                written,
                path,
                read: grant.read || grant.write || grant.exec,
                write: grant.write,
                exec: grant.exec,
                implicit,
                rights: ll::fs_access_names(access),
                access,
            }
        })
        .collect();
    let mut protect = Vec::new();
    for (i, item) in p.filesystem.protect.iter().enumerate() {
        let key = item
            .origin
            .as_ref()
            .map(|o| o.key.clone())
            .unwrap_or_else(|| format!("filesystem.protect[{i}]"));
        let path = item
            .value
            .expand(Some(ws))
            .ok_or_else(|| item.error(&key, "uses {workspace} but there is no workspace"))?;
        // A trailing `/` says the path is a directory: what holds its
        // place while it doesn't exist yet is then an empty directory,
        // else an empty file (a placeholder must not have a type that
        // breaks the tool that later creates the real path).
        protect.push((normalize(&path), item.value.raw.ends_with('/')));
    }
    let mut unprotectable = Vec::new();
    let mut seen = ProtectSeen {
        writes: view
            .binds
            .iter()
            .filter(|b| b.write)
            .map(|b| b.path.clone())
            .collect(),
        ..Default::default()
    };
    for (p, dir) in &protect {
        if let Err(why) = plan_protect(p, *dir, ws, &mut view, &mut seen) {
            unprotectable.push((p.clone(), why));
        }
    }
    // A read or exec grant inside a write grant is a mount point, which
    // can't be renamed away; the directories between it and the write
    // grant are pinned too, or `mv a c; mkdir -p a/b` would put a writable
    // a/b in its place.
    let nested: Vec<PathBuf> = view
        .binds
        .iter()
        .filter(|b| !b.write)
        .flat_map(|b| {
            let w = view
                .binds
                .iter()
                .filter(|w| w.write && b.path.starts_with(&w.path) && b.path != w.path)
                .max_by_key(|w| w.path.as_os_str().len());
            w.map(|w| {
                b.path
                    .ancestors()
                    .skip(1)
                    .take_while(|a| *a != w.path)
                    .map(Path::to_path_buf)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
        })
        .collect();
    for pin in nested {
        if seen.pins.insert(pin.clone()) {
            view.pins.push(pin);
        }
    }
    // Parents first: each is looked up through the mounts made before it.
    view.pins.sort_by_key(|p| p.components().count());
    let protect = protect.into_iter().map(|(p, _)| p).collect();
    Ok(FsPlan {
        grants,
        protect,
        tmp,
        mounts: view,
        unprotectable,
        changes: super::changes::ChangesPlan {
            mode: profile::Changes::Direct,
            state: None,
            userxattr: false,
        },
    })
}

/// The profile's own grants, validated, keyed by resolved path: (path as
/// written, grant). Without a workspace, paths under `{workspace}` are
/// skipped (`check` of a profile that doesn't name one).
pub(super) fn profile_grants(
    p: &Profile,
    ws: Option<&Path>,
) -> Result<BTreeMap<PathBuf, (PathBuf, Grant)>, PlanError> {
    let mut by_path: BTreeMap<PathBuf, (PathBuf, Grant)> = BTreeMap::new();
    let exe = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    for (key, list, grant) in [
        ("filesystem.read", &p.filesystem.read, Grant::READ),
        ("filesystem.write", &p.filesystem.write, Grant::WRITE),
        ("filesystem.exec", &p.filesystem.exec, Grant::EXEC),
    ] {
        for (i, item) in list.iter().enumerate() {
            if ws.is_none() && item.value.uses_workspace() {
                continue;
            }
            let key = item
                .origin
                .as_ref()
                .map(|o| o.key.clone())
                .unwrap_or_else(|| format!("{key}[{i}]"));
            let Some((written, real)) = resolve_path(item, ws, &key)? else {
                continue;
            };
            if grant.write && real == Path::new("/") {
                return Err(item
                    .error(
                        &key,
                        "a write grant on / would let the agent write everywhere",
                    )
                    .into());
            }
            if let Some(exe) = exe.as_ref().filter(|e| grant.write && e.starts_with(&real)) {
                return Err(item
                    .error(
                        &key,
                        format!(
                            "this write grant covers the confine binary ({}); the agent could replace it",
                            exe.display()
                        ),
                    )
                    .into());
            }
            by_path.entry(real).or_insert((written, Grant::NONE)).1 |= grant;
        }
    }
    Ok(by_path)
}

/// The workspace `w`, canonical; it must be an existing directory.
pub(super) fn check_workspace(
    w: &PathSpec,
    at: Option<&Sourced<PathSpec>>,
) -> Result<PathBuf, PlanError> {
    let err = |why: String| -> PlanError {
        match at {
            Some(s) => s.error("workspace", why).into(),
            None => refused("workspace", "-w", why),
        }
    };
    if w.uses_workspace() {
        return Err(err(
            "the workspace can't be defined in terms of itself".into()
        ));
    }
    let p = PathBuf::from(&w.raw);
    let canon = std::fs::canonicalize(&p).map_err(|e| err(format!("{}: {e}", p.display())))?;
    if !canon.is_dir() {
        return Err(err(format!("{} is not a directory", p.display())));
    }
    if let Some(link) = symlink_in_untrusted_dir(&std::path::absolute(&p).unwrap_or(p.clone())) {
        return Err(err(format!(
            "{} is a symlink in a directory another user can change, who could point it \
             anywhere (even at the moment confine resolves it); name the real directory",
            link.display()
        )));
    }
    Ok(canon)
}

/// The first symlink on the way to `path` (as written) that lies in a
/// directory someone other than root or the caller can change: whoever
/// can write there chooses where the path leads.
fn symlink_in_untrusted_dir(path: &Path) -> Option<PathBuf> {
    let mut cur = PathBuf::new();
    for c in path.components() {
        cur.push(c);
        let is_link = std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            continue;
        }
        let parent = cur.parent().and_then(|d| std::fs::canonicalize(d).ok())?;
        if untrusted(&parent).is_some() {
            return Some(cur);
        }
    }
    None
}

/// The owner and mode of directory `dir` when someone other than root or
/// the caller can change what is in it (the rule of
/// [`crate::sandbox::fsfd::trusted_dir`], by path: the plan's look).
fn untrusted(dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir).ok()?;
    // SAFETY: an all-zero stat is valid; only uid and mode are read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_uid = m.uid();
    st.st_mode = m.mode();
    (!crate::sandbox::fsfd::trusted_dir(&st)).then_some((m.uid(), m.mode()))
}

/// Resolves a profile path: `{workspace}` expanded, must exist unless
/// optional (`None` then), symlinks resolved. A symlink at or beneath the
/// workspace is refused: whoever controls the workspace (the agent, a cloned
/// repository) controls where it points.
pub(super) fn resolve_path(
    item: &Sourced<PathSpec>,
    workspace: Option<&Path>,
    key: &str,
) -> Result<Option<(PathBuf, PathBuf)>, PlanError> {
    let written = item.value.expand(workspace).ok_or_else(|| {
        item.error(
            key,
            "uses {workspace} but there is no workspace (give -w DIR)",
        )
    })?;
    match std::fs::symlink_metadata(&written) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && item.value.optional => {
            return Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(item
                .error(
                    key,
                    format!(
                        "path {} does not exist (write `{}?` to make it optional)",
                        written.display(),
                        item.value.raw
                    ),
                )
                .into())
        }
        Err(e) => {
            return Err(item
                .error(key, format!("{}: {e}", written.display()))
                .into())
        }
        Ok(_) => {}
    }
    let real = std::fs::canonicalize(&written)
        .map_err(|e| item.error(key, format!("resolving {}: {e}", written.display())))?;
    // Whoever writes in the workspace controls every name at or beneath it,
    // the workspace's own included: such a path must resolve to itself. Not
    // "no symlink found on a second look": a concurrent writer can flip a
    // name between that look and the resolution above.
    if let Some(ws) = workspace {
        if written.starts_with(ws) && real != normalize(&written) {
            let why = match first_symlink_below(&written, ws) {
                Some(link) => format!(
                    "{} is a symlink inside the workspace (to {})",
                    link.display(),
                    std::fs::read_link(&link)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                ),
                None => format!(
                    "{} resolved to {}: the workspace or a name in it was a symlink, or \
                     changed while confine resolved it",
                    written.display(),
                    real.display()
                ),
            };
            return Err(item
                .error(
                    key,
                    format!("{why}; confine doesn't follow symlinks the workspace controls"),
                )
                .into());
        }
    }
    Ok(Some((written, real)))
}

/// The paths confine itself grants, so ordinary programs run. Device
/// ioctls are granted only where a terminal needs them.
fn implicit_grants(tmp: bool) -> Vec<(&'static str, Grant)> {
    let rw = Grant::WRITE;
    let tty = Grant::WRITE | Grant::IOCTL_DEV;
    let mut v = vec![
        ("/proc", Grant::READ),
        ("/dev/null", rw),
        ("/dev/zero", rw),
        ("/dev/full", rw),
        ("/dev/random", rw),
        ("/dev/urandom", rw),
        ("/dev/tty", tty),
        // /dev/ptmx is a symlink to pts/ptmx in the sandbox's /dev.
        ("/dev/pts", tty),
        ("/dev/shm", rw),
    ];
    if tmp {
        v.push(("/tmp", rw));
    }
    v
}

/// Every symlink on the way to `path`, as (link, target as written), so the
/// sandbox's view can recreate them (`/lib64 -> usr/lib64`).
fn symlinks_on(path: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let mut next = Some(path.to_path_buf());
    // The whole chain (`/bin/sh` -> `/usr/bin/sh` -> `dash`): the path
    // beyond a link is reached through its target, which may hold links
    // of its own. Bounded like the kernel's (40 links).
    for _ in 0..40 {
        let Some(path) = next.take() else {
            break;
        };
        let mut cur = PathBuf::from("/");
        let mut comps = path.components().skip(1);
        for c in comps.by_ref() {
            cur.push(c);
            if let Ok(target) = std::fs::read_link(&cur) {
                let link = (cur.clone(), target.clone());
                if out.contains(&link) {
                    return out;
                }
                out.push(link);
                let mut beyond = cur.parent().unwrap_or(Path::new("/")).join(&target);
                beyond.extend(comps);
                next = Some(normalize(&beyond));
                break;
            }
        }
    }
    out
}

/// The first symlink at or below `base` on the way to `path`.
fn first_symlink_below(path: &Path, base: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(base).ok()?;
    let is_link = |p: &Path| {
        std::fs::symlink_metadata(p)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
    };
    if is_link(base) {
        return Some(base.to_path_buf());
    }
    let mut cur = base.to_path_buf();
    for c in rest.components() {
        cur.push(c);
        if is_link(&cur) {
            return Some(cur);
        }
    }
    None
}

/// Lexically normal absolute path (no `.`/`..`), for paths that need not exist.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Decides how `p` stays read-only inside its write grant (see
/// [`mounts::View`]): bound read-only if it exists; if it doesn't, a
/// placeholder (an empty file, or a directory when `dir`) holds its place,
/// created on the host before the launch, only inside the workspace `ws`;
/// an empty read-only file is mounted over it if it is a symlink (whose
/// target, when inside a write grant, is protected too). The directories
/// between the grant and `p` are pinned as mount points.
fn plan_protect(
    p: &Path,
    dir: bool,
    ws: &Path,
    view: &mut mounts::View,
    seen: &mut ProtectSeen,
) -> Result<(), &'static str> {
    // The innermost write grant strictly above `p`: looked up per
    // ancestor, not scanned for among all grants.
    let Some(w) = p
        .ancestors()
        .skip(1)
        .find(|a| seen.writes.contains(*a))
        .map(Path::to_path_buf)
    else {
        // Outside every write grant it is read-only, or absent, anyway.
        return Ok(());
    };
    let mut between: Vec<PathBuf> = p
        .ancestors()
        .skip(1)
        .take_while(|a| *a != w)
        .map(Path::to_path_buf)
        .collect();
    between.reverse();
    // Every path the protection rests on is listed for the launch to
    // make if it is missing then (a sandbox that ends may remove a
    // placeholder another one saw); what exists now only tells its type.
    let mut create = Vec::new();
    let mut missing = false;
    for a in &between {
        match std::fs::symlink_metadata(a) {
            Ok(m) if m.file_type().is_symlink() => return Err("is reached through a symlink"),
            Ok(m) if !m.is_dir() => return Err("is beneath something that isn't a directory"),
            Ok(_) => {}
            Err(_) => missing = true,
        }
        create.push(mounts::Placeholder {
            path: a.clone(),
            dir: true,
        });
    }
    let target = match std::fs::symlink_metadata(p) {
        Err(_) => {
            missing = true;
            create.push(mounts::Placeholder {
                path: p.to_path_buf(),
                dir,
            });
            None
        }
        Ok(m) if m.file_type().is_symlink() => {
            if seen.masks.insert(p.to_path_buf()) {
                view.masks.push(p.to_path_buf());
            }
            Some(std::fs::canonicalize(p).ok())
        }
        // Another name for the same file stays writable wherever it is
        // (a read-only bind covers one name, not the inode).
        Ok(m) if m.is_file() && std::os::unix::fs::MetadataExt::nlink(&m) > 1 => {
            return Err("has other hard links, names that would stay writable; remove them");
        }
        Ok(m) => {
            create.push(mounts::Placeholder {
                path: p.to_path_buf(),
                dir: m.is_dir(),
            });
            None
        }
    };
    // confine creates nothing outside the workspace (DESIGN.md §4); there
    // the sandbox only relies on what is (another sandbox's placeholder,
    // maybe).
    if !p.starts_with(ws) {
        if missing {
            return Err(
                "doesn't exist, and confine creates placeholders only inside the workspace",
            );
        }
        for c in create.drain(..) {
            if seen.rely.insert(c.path.clone()) {
                view.rely.push(c.path);
            }
        }
    }
    for c in create {
        if seen.create.insert(c.path.clone()) {
            view.create.push(c);
        }
    }
    for pin in between {
        if seen.pins.insert(pin.clone()) {
            view.pins.push(pin);
        }
    }
    match target {
        None => {
            if seen.protect.insert(p.to_path_buf()) {
                view.protect.push(p.to_path_buf());
            }
        }
        // What the link points to, if it is inside a write grant, must not
        // become writable through its own path either.
        Some(Some(t)) if t != p => {
            if t.ancestors().any(|a| seen.writes.contains(a)) {
                plan_protect(&t, dir, ws, view, seen)?;
            }
        }
        Some(_) => {}
    }
    Ok(())
}

/// In host network mode, name resolution must keep working: when
/// /etc/resolv.conf points elsewhere (systemd-resolved's stub under
/// /run), that file is granted read-only too, and nothing else of /run.
fn resolver(by_path: &mut BTreeMap<PathBuf, (PathBuf, Grant, bool)>, view: &mut mounts::View) {
    let conf = Path::new("/etc/resolv.conf");
    let Ok(real) = std::fs::canonicalize(conf) else {
        return;
    };
    if real == conf || by_path.keys().any(|k| real.starts_with(k)) {
        return;
    }
    for link in symlinks_on(conf) {
        if !view.links.contains(&link) {
            view.links.push(link);
        }
    }
    view.binds.push(mounts::Bind {
        path: real.clone(),
        write: false,
        exec: false,
    });
    by_path.insert(real, (conf.to_path_buf(), Grant::READ, true));
}

/// What `/etc/hosts` says inside: the sandbox's hostname resolves (tools
/// that look up their own name, e.g. Java's `getLocalHost`, Python's
/// `getfqdn`, would otherwise ask DNS: the proxy's stub refuses the name
/// and a host-mode sandbox would send the query out). Sharing the host's
/// network (`host`), the host's entries come first, as read at launch
/// ([`host_entries`]); in every other mode they would name addresses the
/// sandbox has no route to.
fn hosts_file(host_network: bool) -> String {
    let mut text = if host_network {
        host_entries(Path::new("/etc/hosts"))
    } else {
        String::new()
    };
    let name = crate::sandbox::namespaces::HOSTNAME;
    text.push_str(&format!(
        "# confine: the sandbox's own names\n127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    ));
    text
}

/// The most of the host's `/etc/hosts` the sandbox's file carries.
const HOST_ENTRIES_MAX: usize = 1 << 20;

/// The lines of the hosts file at `path` (symlinks followed, as the host's
/// resolver does): a regular file only, opened without blocking (a FIFO
/// there would hold the launch forever), at most [`HOST_ENTRIES_MAX`]
/// bytes of whole lines (a line the limit cuts would name another host:
/// `10.0.0.1 build` of `10.0.0.1 build-cache`), bytes that aren't UTF-8
/// replaced (a Latin-1 comment doesn't lose the entries); anything else
/// is none.
fn host_entries(path: &Path) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    else {
        return String::new();
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut buf = Vec::new();
    if f.take(HOST_ENTRIES_MAX as u64 + 1)
        .read_to_end(&mut buf)
        .is_err()
    {
        return String::new();
    }
    if buf.len() > HOST_ENTRIES_MAX {
        let whole = buf[..HOST_ENTRIES_MAX]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        buf.truncate(whole);
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Where the audit log goes (`--audit-log`, else the profile's, else
/// `CONFINE_AUDIT_LOG`), resolved; refused if a grant would reach it.
pub(super) fn audit_log(
    req: &Request,
    p: &Profile,
    ws: &Path,
    home: Option<&super::home::HomePlan>,
) -> Result<Option<PathBuf>, PlanError> {
    let (path, origin): (PathBuf, Option<&Sourced<PathSpec>>) = if let Some(a) = &req.audit_log {
        (std::path::absolute(a).unwrap_or_else(|_| a.clone()), None)
    } else if let Some(a) = &p.audit_log {
        let path = a
            .value
            .expand(Some(ws))
            .ok_or_else(|| a.error("audit.log", "needs a workspace"))?;
        (path, Some(a))
    } else if let Some(env) = std::env::var_os("CONFINE_AUDIT_LOG").filter(|v| !v.is_empty()) {
        (PathBuf::from(env), None)
    } else {
        return Ok(None);
    };
    if !path.is_absolute() {
        return Err(refused(
            "audit log",
            path.display().to_string(),
            "must be an absolute path",
        ));
    }
    let real = log_path(&path);
    let mut grants = profile_grants(p, Some(ws))?;
    // A home of its own is written to like any write grant.
    if let Some(h) = home.filter(|h| h.granted()) {
        grants
            .entry(h.path.clone())
            .or_insert((h.path.clone(), Grant::NONE))
            .1 |= Grant::WRITE;
    }
    let why = audit_inside_grant(&real, &grants).or_else(|| untrusted_on_the_way(&path));
    if let Some(why) = why {
        return Err(match origin {
            Some(o) => o.error("audit.log", why).into(),
            None => refused("audit log", "--audit-log", why),
        });
    }
    Ok(Some(real))
}

/// Why the log at `path` (as written) could be redirected, if it could: a
/// directory that holds an entry on the way to it, as written or through
/// any symlink on the way, that another user can change (owner, or
/// group/other write without the sticky bit). Such a user could swap that
/// entry for a symlink between the plan and the open, or already has.
fn untrusted_on_the_way(path: &Path) -> Option<String> {
    let mut checked = std::collections::HashSet::new();
    for existing in path.ancestors().skip(1) {
        let Ok(real) = std::fs::canonicalize(existing) else {
            continue;
        };
        for dir in real.ancestors() {
            if !checked.insert(dir.to_path_buf()) {
                continue;
            }
            if let Some((uid, mode)) = untrusted(dir) {
                return Some(format!(
                    "{} (on the way to the audit log) belongs to uid {uid} or others may write \
                     to it (mode {:o}), so the log could be redirected; keep the audit log in \
                     a directory only root or you can change",
                    dir.display(),
                    mode & 0o7777
                ));
            }
        }
    }
    None
}

/// An audit log's real path: the longest existing ancestor resolved (through
/// any symlinks), the rest appended. The log and its directories may not
/// exist yet, and a symlink on the way must not hide that it lands inside a
/// grant.
pub(super) fn log_path(path: &Path) -> PathBuf {
    let path = normalize(path);
    let mut missing = Vec::new();
    let mut cur = path.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            let mut out = real;
            out.extend(missing.iter().rev());
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                cur = parent;
            }
            _ => return path,
        }
    }
}

/// Why the audit log at `real` would be reachable through one of the
/// profile's grants, if it would.
pub(super) fn audit_inside_grant(
    real: &Path,
    grants: &BTreeMap<PathBuf, (PathBuf, Grant)>,
) -> Option<String> {
    let (path, (_, g)) = grants
        .iter()
        .rev()
        .find(|(path, _)| real.starts_with(path))?;
    Some(format!(
        "the audit log {} is inside the {} grant {}: the agent could {} it",
        real.display(),
        if g.write { "write" } else { "read" },
        path.display(),
        if g.write { "rewrite" } else { "read" }
    ))
}
