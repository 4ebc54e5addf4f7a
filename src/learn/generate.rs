//! From what a learning run did to a profile (DESIGN-NOTES 55): grants
//! grouped into directories where the run used many entries of one, each
//! with a comment saying why; nothing that must never be granted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::observe::{Observed, Use};
use crate::plan::Plan;
use crate::profile::NetworkMode;

/// A directory with at least this many used entries is granted whole.
pub const GROUP: usize = 4;

/// Roots granted whole however few of their files were used: a package
/// tree is used as one.
const PACKAGE_DIRS: &[&str] = &["site-packages", "dist-packages", "node_modules"];

/// One grant of the learned profile.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// Where it binds (canonical).
    pub path: PathBuf,
    /// How the profile writes it: the way the run reached it, symlinks
    /// and all, so that the sandbox's view recreates them (`/bin ->
    /// usr/bin`, `/lib64/ld-linux-x86-64.so.2`).
    pub written: PathBuf,
    /// Why: what the run did beneath.
    pub why: String,
}

/// The learned profile, before it is written.
#[derive(Clone, Debug)]
pub struct Learned {
    pub read: Vec<Grant>,
    pub write: Vec<Grant>,
    pub exec: Vec<Grant>,
    /// Protected paths beneath a write grant, kept read-only.
    pub protect: Vec<PathBuf>,
    pub syscalls: Vec<String>,
    /// The network mode the run needed, and why.
    pub network: (NetworkMode, String),
    /// Used but never granted, with why.
    pub refused: BTreeMap<PathBuf, String>,
    /// Calls denied during the run (the denylist).
    pub denied: Vec<String>,
    /// Proxy mode: the hosts it reached (`network.allow`), and those the
    /// base refused it.
    pub hosts: Vec<String>,
    pub hosts_refused: Vec<String>,
    pub workspace: PathBuf,
    pub notes: Vec<String>,
}

/// Why a path is never granted, if it is one of those.
fn never(path: &Path, never: &[(PathBuf, &'static str)]) -> Option<&'static str> {
    for (p, why) in never {
        if path.starts_with(p) {
            return Some(why);
        }
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with(".env") {
        return Some("an environment file (.env*) holds secrets");
    }
    let s = path.to_string_lossy();
    if s.contains("/.git/hooks/") || s.ends_with("/.git/hooks") {
        return Some("git hooks run as the user outside the sandbox");
    }
    None
}

/// What must never be granted, by path: the base's protected paths (for
/// writing: see [`Learned::protect`]), the audit log, confine's state, the
/// caller's credentials, the secrets' files.
fn never_list(plan: &Plan) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    if let Some(a) = &plan.audit_log {
        out.push((a.clone(), "the audit log"));
    }
    if let Ok(s) = crate::state::base() {
        out.push((s, "confine's state"));
    }
    out.push((PathBuf::from("/var/lib/confine"), "confine's state"));
    out.push((PathBuf::from("/run/confine"), "confine's state"));
    for r in &plan.secrets {
        if let crate::profile::secrets::SecretSource::File(p) = &r.source {
            out.push((p.clone(), "a secret's file"));
        }
    }
    let mut homes: Vec<PathBuf> = std::env::var_os("HOME")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    homes.push(PathBuf::from("/root"));
    for h in homes {
        for c in [
            ".ssh",
            ".aws",
            ".config/gcloud",
            ".gnupg",
            ".netrc",
            ".docker",
            ".kube",
            ".git-credentials",
            ".pypirc",
            ".npmrc",
            ".azure",
            ".config/gh",
        ] {
            out.push((h.join(c), "the caller's credentials"));
        }
    }
    for p in ["/etc/shadow", "/etc/gshadow", "/etc/sudoers"] {
        out.push((PathBuf::from(p), "the host's credentials"));
    }
    out.into_iter()
        .map(|(p, w)| (std::fs::canonicalize(&p).unwrap_or(p), w))
        .collect()
}

/// The protected paths of the workspace, kept read-only beneath a learned
/// write grant (like `filesystem.protect` in the built-ins' docs).
fn protected_in(ws: &Path) -> [PathBuf; 3] {
    [
        ws.join(".git/hooks"),
        ws.join(".git/config"),
        ws.join(".env"),
    ]
}

/// The canonical path of `p`; for one that is gone (or, with `entry`, its
/// directory): the nearest existing ancestor's, which is where a grant
/// for it would bind.
fn canonical(p: &Path, entry: bool) -> Option<PathBuf> {
    if entry {
        let parent = p.parent()?;
        return canonical_or_ancestor(parent);
    }
    std::fs::canonicalize(p).ok()
}

fn canonical_or_ancestor(p: &Path) -> Option<PathBuf> {
    let mut q = p;
    loop {
        if let Ok(c) = std::fs::canonicalize(q) {
            return Some(c);
        }
        q = q.parent()?;
    }
}

/// The interpreter the kernel opens to run `path`: a script's `#!` line,
/// an ELF's PT_INTERP. Bounded reads of the first page and the header.
fn interpreter(path: &Path) -> Option<PathBuf> {
    let f = File::open(path).ok()?;
    let mut head = [0u8; 256];
    let n = f.read_at(&mut head, 0).ok()?;
    let head = &head[..n];
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next()?;
        let line = String::from_utf8_lossy(line);
        let prog = line.split_whitespace().next()?;
        return Some(PathBuf::from(prog));
    }
    // ELF64, little-endian (x86_64, aarch64).
    if n < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let phoff = u64::from_le_bytes(head[0x20..0x28].try_into().ok()?);
    let phentsize = u64::from(u16_at(0x36));
    let phnum = u64::from(u16_at(0x38)).min(64);
    for i in 0..phnum {
        let mut ph = [0u8; 56];
        if f.read_at(&mut ph, phoff + i * phentsize).ok()? < 56 {
            return None;
        }
        if u32::from_le_bytes(ph[0..4].try_into().ok()?) != 3 {
            continue;
        }
        let off = u64::from_le_bytes(ph[8..16].try_into().ok()?);
        let size = u64::from_le_bytes(ph[32..40].try_into().ok()?).min(4096) as usize;
        let mut s = vec![0u8; size];
        let got = f.read_at(&mut s, off).ok()?;
        s.truncate(got);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        return Some(PathBuf::from(
            String::from_utf8_lossy(&s[..end]).into_owned(),
        ));
    }
    None
}

#[derive(Clone, Copy)]
enum Right {
    Read,
    Write,
    Exec,
}

/// Whether the base grants `right` on `path` (not counting confine's own
/// implicit grants).
fn base_grants(plan: &Plan, path: &Path, right: Right) -> bool {
    plan.filesystem.grants.iter().any(|g| {
        !g.implicit
            && path.starts_with(&g.path)
            && match right {
                Right::Read => g.read,
                Right::Write => g.write,
                Right::Exec => g.exec,
            }
    })
}

/// Whether `path` is one of confine's implicit grants (/proc, /dev's
/// devices, the private /tmp): nothing to learn there. The nearest grant
/// decides: a host directory granted beneath /tmp (a workspace, a home
/// under the host's /tmp) is mounted over the private /tmp, and is learned.
fn implicit(plan: &Plan, path: &Path) -> bool {
    plan.filesystem
        .grants
        .iter()
        .filter(|g| path.starts_with(&g.path))
        .max_by_key(|g| g.path.components().count())
        .is_some_and(|g| g.implicit)
}

/// Learns the profile from what the run did under `plan`.
pub fn learn(plan: &Plan, seen: &Observed) -> Learned {
    let ws = std::fs::canonicalize(&plan.workspace).unwrap_or_else(|_| plan.workspace.clone());
    let never_paths = never_list(plan);
    let mut l = Learned {
        read: Vec::new(),
        write: Vec::new(),
        exec: Vec::new(),
        protect: Vec::new(),
        syscalls: Vec::new(),
        network: (NetworkMode::None, String::new()),
        refused: BTreeMap::new(),
        denied: Vec::new(),
        hosts: Vec::new(),
        hosts_refused: Vec::new(),
        workspace: ws.clone(),
        notes: Vec::new(),
    };
    let mut reads: BTreeSet<PathBuf> = BTreeSet::new();
    let mut writes: BTreeSet<PathBuf> = BTreeSet::new();
    let mut execs: BTreeSet<PathBuf> = BTreeSet::new();
    // canonical -> the paths the run named it by.
    let mut lex: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let refuse = |l: &mut Learned, p: &Path, why: &str| {
        if l.refused.len() < 200 {
            l.refused.insert(p.to_path_buf(), why.to_string());
        }
    };
    // What the run created (canonical): a grant can't name it, as it
    // won't exist when the next run starts; its directory is granted.
    let created: BTreeSet<PathBuf> = seen
        .paths
        .iter()
        .filter(|(_, u)| u.contains(&Use::Entry))
        .filter_map(|(p, _)| Some(canonical(p, true)?.join(p.file_name()?)))
        .collect();
    for (p, uses) in &seen.paths {
        for &u in uses {
            let named = if u == Use::Entry {
                p.parent().map(Path::to_path_buf)
            } else {
                Some(p.clone())
            };
            let Some(mut c) = canonical(p, u == Use::Entry) else {
                // Gone, or never there (a probe that failed): nothing
                // to grant.
                continue;
            };
            if u != Use::Entry && created.contains(&c) {
                match c.parent() {
                    Some(d) => c = d.to_path_buf(),
                    None => continue,
                }
            }
            if let Some(why) = never(&c, &never_paths) {
                refuse(&mut l, &c, why);
                continue;
            }
            let in_ws = c.starts_with(&ws);
            if !in_ws && implicit(plan, &c) {
                continue;
            }
            let (set, right) = match u {
                Use::Read => (&mut reads, Right::Read),
                Use::Write | Use::Entry => (&mut writes, Right::Write),
                Use::Exec => (&mut execs, Right::Exec),
            };
            if !base_grants(plan, &c, right) {
                refuse(
                    &mut l,
                    &c,
                    "outside the base profile's grants: the run was denied it",
                );
                continue;
            }
            if let Some(n) = named.filter(|n| *n != c) {
                lex.entry(c.clone()).or_default().extend(chain(&n));
            }
            set.insert(c);
        }
    }
    // Shared objects the run opened are mapped executable: the view
    // mounts noexec wherever exec isn't granted.
    for r in &reads {
        if is_elf(r) && base_grants(plan, r, Right::Exec) {
            execs.insert(r.clone());
            if let Some(n) = lex.get(r).cloned() {
                lex.entry(r.clone()).or_default().extend(n);
            }
        }
    }
    // The kernel opens an executable's interpreter (ld.so, a script's
    // #! program) with the execute right too.
    let mut interps = BTreeSet::new();
    for e in &execs {
        let mut cur = e.clone();
        for _ in 0..4 {
            let Some(named) = interpreter(&cur) else {
                break;
            };
            let Ok(i) = std::fs::canonicalize(&named) else {
                break;
            };
            if named != i {
                lex.entry(i.clone()).or_default().extend(chain(&named));
            }
            if execs.contains(&i) || !interps.insert(i.clone()) {
                break;
            }
            cur = i;
        }
    }
    for i in interps {
        if base_grants(plan, &i, Right::Exec) && never(&i, &never_paths).is_none() {
            execs.insert(i);
        }
    }
    // Executing needs reading too.
    reads.extend(execs.iter().cloned());
    let seen_refused: Vec<PathBuf> = l.refused.keys().cloned().collect();
    // Entries all the searches for `.env` files may read together.
    let budget = std::cell::Cell::new(200_000usize);
    let ok_dir = |d: &Path, right: Right| -> bool {
        d.components().count() > 2
            && base_grants(plan, d, right)
            && !never_paths.iter().any(|(p, _)| p.starts_with(d))
            && !seen_refused.iter().any(|p| p.starts_with(d))
            && !holds_env(d, d.starts_with(&ws) && !in_package(d), &budget)
    };
    let mut wide = Vec::new();
    l.read = group(&reads, "read", |d| ok_dir(d, Right::Read), &mut wide);
    l.write = group(&writes, "wrote", |d| ok_dir(d, Right::Write), &mut wide);
    l.exec = group(&execs, "executed", |d| ok_dir(d, Right::Exec), &mut wide);
    for g in [&mut l.read, &mut l.write, &mut l.exec] {
        route(g, &lex, &ws);
    }
    for d in wide {
        refuse(
            &mut l,
            &d,
            "a directory it listed or wrote in, too wide to grant (the root or a top-level directory, or it holds something never granted)",
        );
    }
    // A write grant over a protected path of the workspace keeps it
    // read-only.
    let inherited: Vec<PathBuf> = plan.filesystem.protect.clone();
    for p in protected_in(&ws) {
        if l.write.iter().any(|g| p.starts_with(&g.path)) && !inherited.contains(&p) {
            l.protect.push(p);
        }
    }
    // Syscalls: what may be allowed at all.
    for s in &seen.syscalls {
        if s == "clone3"
            || (crate::syscalls::BASELINE_DENY.contains(&s.as_str())
                && !crate::syscalls::ALLOWABLE_DENY.contains(&s.as_str()))
        {
            continue;
        }
        l.syscalls.push(s.clone());
    }
    l.denied = seen.denied.iter().cloned().collect();
    l.network = if plan.network.mode == NetworkMode::Proxy {
        // Every connection goes to the proxy on loopback: the hosts are
        // the proxy's to say.
        l.hosts = seen.hosts.iter().cloned().collect();
        l.hosts_refused = seen.hosts_refused.iter().cloned().collect();
        (
            NetworkMode::Proxy,
            if l.hosts.is_empty() {
                "the base's mode; it reached no host through the proxy".into()
            } else {
                format!(
                    "it reached {} host(s) through the egress proxy",
                    l.hosts.len()
                )
            },
        )
    } else if seen.connected.is_empty() && seen.bound.is_empty() {
        (
            NetworkMode::None,
            "it neither connected nor bound a port".into(),
        )
    } else {
        let all_loopback = seen
            .connected
            .iter()
            .all(|a| a.starts_with("127.") || a.starts_with("[::1]"));
        let list: Vec<&str> = seen.connected.iter().map(String::as_str).take(5).collect();
        if all_loopback {
            (
                NetworkMode::Loopback,
                if list.is_empty() {
                    "it bound a port".into()
                } else {
                    format!("it connected to {} (loopback)", list.join(", "))
                },
            )
        } else {
            l.notes.push(format!(
                "it connected to {}: the base's network is kept; for the hosts, use `network.mode: proxy` with `network.allow`",
                list.join(", ")
            ));
            (plan.network.mode, "the base's".into())
        }
    };
    if seen.unread > 0 {
        l.notes.push(format!(
            "{} call(s) whose arguments couldn't be read (the caller was gone)",
            seen.unread
        ));
    }
    if seen.dropped > 0 {
        l.notes.push(format!(
            "{} path(s) beyond the {} recorded",
            seen.dropped,
            super::observe::MAX_PATHS
        ));
    }
    l
}

/// Whether a directory holds an environment file (`.env*`): granting it
/// would grant that. With `deep` (a directory of the workspace, where they
/// live, not a package tree) its whole tree is searched, else its own
/// entries. All searches share `budget` entries; once it is spent, a
/// directory counts as holding one (it is not granted whole).
fn holds_env(d: &Path, deep: bool, budget: &std::cell::Cell<usize>) -> bool {
    let mut todo = vec![d.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let left = budget.get();
            if left == 0 {
                return true;
            }
            budget.set(left - 1);
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(".env"))
            {
                return true;
            }
            if deep && e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    false
}

/// Whether `d` lies in a package tree (`node_modules`, `site-packages`,
/// `dist-packages`): its `.env` files are the packages', not the user's.
fn in_package(d: &Path) -> bool {
    d.components()
        .any(|c| PACKAGE_DIRS.contains(&c.as_os_str().to_str().unwrap_or("")))
}

/// Groups used paths into grants: a package tree whole, a directory with
/// at least [`GROUP`] used entries whole (where `ok` allows), other paths
/// one by one; nothing beneath another grant.
fn group(
    paths: &BTreeSet<PathBuf>,
    verb: &str,
    ok: impl Fn(&Path) -> bool,
    wide: &mut Vec<PathBuf>,
) -> Vec<Grant> {
    let mut by_dir: BTreeMap<PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    let mut single: Vec<&PathBuf> = Vec::new();
    for p in paths {
        if let Some(root) = package_root(p).filter(|r| ok(r)) {
            by_dir.entry(root).or_default().push(p);
            continue;
        }
        single.push(p);
    }
    // Directories (not package trees) by their used entries.
    let mut parents: BTreeMap<PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for p in &single {
        if let Some(d) = p.parent() {
            parents.entry(d.to_path_buf()).or_default().push(p);
        }
    }
    let mut grants: Vec<Grant> = Vec::new();
    for (root, used) in &by_dir {
        grants.push(Grant {
            path: root.clone(),
            written: root.clone(),
            why: format!(
                "{verb} {} path(s) beneath (a package tree), e.g. {}",
                used.len(),
                used[0].display()
            ),
        });
    }
    for (d, used) in &parents {
        if used.len() >= GROUP && ok(d) {
            grants.push(Grant {
                path: d.clone(),
                written: d.clone(),
                why: format!(
                    "{verb} {} entries of it, e.g. {}",
                    used.len(),
                    used[0].display()
                ),
            });
        } else {
            for p in used {
                let dir = p.is_dir();
                if dir && !ok(p) {
                    wide.push((*p).clone());
                    continue;
                }
                grants.push(Grant {
                    path: (*p).clone(),
                    written: (*p).clone(),
                    why: if dir && verb == "read" {
                        "listed it".to_string()
                    } else if dir {
                        format!("{verb} entries in it")
                    } else {
                        verb.to_string()
                    },
                });
            }
        }
    }
    // Nothing beneath another grant.
    grants.sort();
    let mut out: Vec<Grant> = Vec::new();
    for g in grants {
        if let Some(last) = out.last_mut().filter(|o| o.path == g.path) {
            last.why = format!("{}; {}", last.why, g.why);
            continue;
        }
        if out.iter().any(|o| g.path.starts_with(&o.path)) {
            continue;
        }
        out.push(g);
    }
    out
}

/// The package tree a path lies in: up to `site-packages`,
/// `dist-packages`, `node_modules` (the outermost), or a Python's standard
/// library (`/usr/lib/pythonX.Y`).
fn package_root(p: &Path) -> Option<PathBuf> {
    let mut acc = PathBuf::new();
    for c in p.components() {
        acc.push(c);
        let name = c.as_os_str().to_str().unwrap_or("");
        if PACKAGE_DIRS.contains(&name) && acc != p {
            return Some(acc);
        }
        if name.starts_with("python3.") && acc.parent() == Some(Path::new("/usr/lib")) && acc != p {
            return Some(acc);
        }
    }
    None
}

/// Writes each grant the way the run reached it: where it went through
/// symlinks, the sandbox's view must have them (it recreates the symlinks
/// on a grant's written path), and the canonical path stays reachable
/// through the grant's bind either way. The route most used becomes the
/// grant's written path; paths reached by another route get a grant of
/// their own, as the run named them (at most [`MAX_ALIASES`]).
fn route(grants: &mut Vec<Grant>, lex: &BTreeMap<PathBuf, BTreeSet<PathBuf>>, ws: &Path) {
    // A plan refuses symlinks inside the workspace (the agent controls
    // them): no written path goes through one.
    let linked_in_ws = |n: &Path| {
        n.ancestors()
            .take_while(|a| a.starts_with(ws) && *a != ws)
            .any(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()))
    };
    const MAX_ALIASES: usize = 64;
    let mut extra: Vec<Grant> = Vec::new();
    let taken: BTreeSet<PathBuf> = grants.iter().map(|g| g.path.clone()).collect();
    for g in grants.iter_mut() {
        let mut routes: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        let mut strays: Vec<PathBuf> = Vec::new();
        for (c, names) in lex.range(g.path.clone()..) {
            if !c.starts_with(&g.path) {
                break;
            }
            for n in names {
                // The ancestor (or the path itself) of the name that
                // resolves to the grant.
                let via = n
                    .ancestors()
                    .find(|a| std::fs::canonicalize(a).is_ok_and(|r| r == g.path))
                    .filter(|a| !linked_in_ws(a));
                match via {
                    Some(a) => routes.entry(a.to_path_buf()).or_default().push(n.clone()),
                    None => strays.push(n.clone()),
                }
            }
        }
        // The canonical path is reachable anyway (the bind): a route
        // through symlinks is the one worth writing.
        let best = routes
            .iter()
            .filter(|(k, _)| **k != g.path)
            .max_by_key(|(k, v)| (v.len(), chain(k).len()))
            .map(|(k, _)| k.clone());
        if let Some(b) = &best {
            g.written = b.clone();
        }
        for (r, names) in routes {
            if Some(&r) == best.as_ref() {
                continue;
            }
            strays.extend(names);
        }
        for n in strays {
            if extra.len() >= MAX_ALIASES {
                break;
            }
            // A name that is itself a symlink (`/lib64/ld-linux-x86-64.so.2`,
            // `.venv/bin/python`) is best reached through its directory,
            // which holds the link: in the workspace (the plan refuses a
            // symlink there as a grant), or where that directory is small.
            let is_link = std::fs::symlink_metadata(&n).is_ok_and(|m| m.file_type().is_symlink());
            let small = |d: &Path| std::fs::read_dir(d).is_ok_and(|r| r.take(9).count() <= 8);
            let (n, why) = match n.parent() {
                Some(d) if is_link && !linked_in_ws(d) && (d.starts_with(ws) || small(d)) => (
                    d.to_path_buf(),
                    format!(
                        "holds the symlink {} the run named (to {})",
                        n.display(),
                        g.path.display()
                    ),
                ),
                _ => (
                    n.clone(),
                    format!(
                        "the same as {}, as the run named it (through a symlink)",
                        g.path.display()
                    ),
                ),
            };
            if linked_in_ws(&n) {
                continue;
            }
            let Ok(c) = std::fs::canonicalize(&n) else {
                continue;
            };
            // Needed only where the way leaves the grants (a link inside a
            // bound directory shows there anyway), and one per target
            // (the plan keys grants by their target).
            let leaves = chain(&n)
                .iter()
                .any(|p| !taken.iter().any(|t| p.starts_with(t)));
            if !leaves || taken.contains(&c) || extra.iter().any(|e| e.path == c) {
                continue;
            }
            extra.push(Grant {
                path: c,
                written: n,
                why,
            });
        }
    }
    grants.extend(extra);
}

/// Whether `p` is an ELF file (an executable or a shared object).
fn is_elf(p: &Path) -> bool {
    let Ok(f) = File::open(p) else {
        return false;
    };
    let mut m = [0u8; 4];
    f.read_at(&mut m, 0).is_ok_and(|n| n == 4) && &m == b"\x7fELF"
}

/// The names a path goes by on its way to its target, one symlink
/// resolved at a time (`.venv/bin/python`, `.venv/bin/python3`,
/// `/usr/bin/python3`): each is a link the sandbox's view must hold.
fn chain(n: &Path) -> Vec<PathBuf> {
    let mut out = vec![n.to_path_buf()];
    let mut cur = n.to_path_buf();
    for _ in 0..40 {
        // The first symlink on the way.
        let mut link = None;
        let mut acc = PathBuf::new();
        for c in cur.components() {
            acc.push(c);
            if std::fs::symlink_metadata(&acc).is_ok_and(|m| m.file_type().is_symlink()) {
                link = Some(acc.clone());
                break;
            }
        }
        let Some(l) = link else {
            break;
        };
        let Ok(target) = std::fs::read_link(&l) else {
            break;
        };
        let rest = cur
            .strip_prefix(&l)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let base = l.parent().unwrap_or(Path::new("/")).join(target);
        let next = super::observe::normalize(&if rest.as_os_str().is_empty() {
            base
        } else {
            base.join(rest)
        });
        if out.contains(&next) {
            break;
        }
        out.push(next.clone());
        cur = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_trees_and_the_standard_library_are_roots() {
        let r = |p: &str| package_root(Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(
            r("/w/.venv/lib/python3.11/site-packages/a/b.py").as_deref(),
            Some("/w/.venv/lib/python3.11/site-packages")
        );
        assert_eq!(
            r("/w/node_modules/x/node_modules/y/i.js").as_deref(),
            Some("/w/node_modules")
        );
        assert_eq!(
            r("/usr/lib/python3.11/os.py").as_deref(),
            Some("/usr/lib/python3.11")
        );
        assert_eq!(r("/usr/lib/python3.11"), None);
        assert_eq!(r("/usr/lib/x86_64-linux-gnu/libc.so.6"), None);
    }

    #[test]
    fn a_directory_is_granted_from_four_used_entries_where_allowed() {
        let paths: BTreeSet<PathBuf> = ["/a/b/1", "/a/b/2", "/a/b/3", "/a/b/4", "/a/c/1", "/a/d/1"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let mut wide = Vec::new();
        let g = group(&paths, "read", |_| true, &mut wide);
        let got: Vec<String> = g.iter().map(|g| g.path.display().to_string()).collect();
        assert_eq!(got, ["/a/b", "/a/c/1", "/a/d/1"]);
        assert!(
            g[0].why.starts_with("read 4 entries of it, e.g. /a/b/1"),
            "{}",
            g[0].why
        );
        // Where the directory may not be granted, the files are.
        let g = group(&paths, "read", |d| d != Path::new("/a/b"), &mut wide);
        assert_eq!(g.len(), 6);
    }

    #[test]
    fn environment_files_and_hooks_are_never_granted() {
        let list = vec![(PathBuf::from("/root/.ssh"), "the caller's credentials")];
        assert!(never(Path::new("/w/.env"), &list).is_some());
        assert!(never(Path::new("/w/conf/.env.local"), &list).is_some());
        assert!(never(Path::new("/w/.git/hooks/pre-commit"), &list).is_some());
        assert!(never(Path::new("/root/.ssh/id_ed25519"), &list).is_some());
        assert!(never(Path::new("/w/.git/config"), &list).is_none());
        assert!(never(Path::new("/w/environment.txt"), &list).is_none());
    }
}
