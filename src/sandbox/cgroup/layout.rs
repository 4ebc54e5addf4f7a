//! Where a sandbox's cgroup goes: the hierarchies and our place in them as
//! the kernel shows them now, and for each controller the directory that
//! can carry it, or why none can. It only reads files.

use std::fs;
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

use super::*;

/// Our own cgroup in the v2 hierarchy, as the kernel shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct V2Parent {
    pub(super) dir: PathBuf,
    /// The hierarchy's real root, which the no-internal-processes rule
    /// exempts. A cgroup namespace's root looks like `/` from inside but
    /// is an ordinary cgroup: only the real root lacks `cgroup.type`.
    pub(super) is_root: bool,
    /// `cgroup.controllers`: what children of it can get.
    pub(super) controllers: Vec<String>,
    /// `cgroup.subtree_control`: what children of it have now.
    pub(super) subtree_control: Vec<String>,
    /// `cgroup.procs` is not empty (confine itself is usually there).
    pub(super) has_processes: bool,
    /// confine is the only process in it: it may step aside into a leaf.
    pub(super) alone: bool,
    /// Ours to manage: marked delegated (systemd `Delegate=yes` sets the
    /// `trusted.delegate`/`user.delegate` xattr), or the root of a cgroup
    /// namespace (a container's). A manager that didn't delegate a cgroup
    /// may rewrite its `subtree_control` at any time and so drop a running
    /// sandbox's controllers.
    pub(super) delegated: bool,
    pub(super) writable: bool,
    /// The parent cgroup, unless ours is the top of what this mount shows.
    pub(super) up: Option<V2Up>,
}

/// The parent of our v2 cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct V2Up {
    pub(super) dir: PathBuf,
    /// Its manager delegated it (systemd's `Delegate=yes` marks the unit's
    /// cgroup with the `trusted.delegate` or `user.delegate` xattr; with
    /// `DelegateSubgroup=` confine runs one level below it).
    pub(super) delegated: bool,
    pub(super) controllers: Vec<String>,
    pub(super) subtree_control: Vec<String>,
    pub(super) has_processes: bool,
    pub(super) writable: bool,
}

/// Our own cgroup in one v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct V1Parent {
    pub(super) controllers: Vec<String>,
    pub(super) mount_point: PathBuf,
    /// `None` when `/proc/self/cgroup` doesn't place us in this mount.
    pub(super) dir: Option<PathBuf>,
    pub(super) writable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) v2: Option<V2Parent>,
    pub(super) v1: Vec<V1Parent>,
}

/// Where a controller's child cgroup goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub mechanism: Mechanism,
    /// The cgroup under which the sandbox's own is created.
    pub parent: PathBuf,
    /// v2: `+controller` must be written to the parent's subtree_control.
    pub enable: bool,
    /// v2: confine first moves itself from `parent` into a leaf cgroup of
    /// its own, so that `parent` has no processes and may hand a domain
    /// controller to children (and moves back when the sandbox is gone).
    pub leaf: bool,
}

/// Where the sandbox's one v2 cgroup goes. A process is in exactly one v2
/// cgroup, so every v2 controller of a sandbox must share it.
#[derive(Debug, Clone)]
pub(super) struct V2Home {
    pub(super) dir: PathBuf,
    pub(super) controllers: Vec<String>,
    pub(super) subtree_control: Vec<String>,
    pub(super) writable: bool,
    pub(super) leaf: bool,
    /// A domain controller can't be enabled there: this cgroup has
    /// processes besides confine.
    pub(super) blocked: Option<PathBuf>,
}

impl V2Parent {
    /// The parent, when confine may create sandbox cgroups in it as
    /// siblings of its own: delegated to us and free of processes.
    fn usable_up(&self) -> Option<&V2Up> {
        self.up
            .as_ref()
            .filter(|u| u.delegated && u.writable && !u.has_processes)
    }

    /// Picks the home for the v2 controllers in `requested` (the ones v2
    /// doesn't offer are ignored here and fall back to v1).
    fn home(&self, requested: &[Controller]) -> V2Home {
        let has = |list: &[String], c: Controller| list.iter().any(|x| x == c.name());
        let own = V2Home {
            dir: self.dir.clone(),
            controllers: self.controllers.clone(),
            subtree_control: self.subtree_control.clone(),
            writable: self.writable,
            leaf: false,
            blocked: None,
        };
        // Only a domain controller not enabled yet meets the
        // no-internal-processes rule; threaded ones (pids, cpu) don't.
        let up_offers = |c: Controller| self.usable_up().is_some_and(|u| has(&u.controllers, c));
        let domain_needed = requested.iter().any(|&c| {
            !c.threaded()
                && !has(&self.subtree_control, c)
                && (has(&self.controllers, c) || up_offers(c))
        });
        if !domain_needed || self.is_root || !self.has_processes {
            return own;
        }
        if let Some(up) = self.usable_up() {
            return V2Home {
                dir: up.dir.clone(),
                controllers: up.controllers.clone(),
                subtree_control: up.subtree_control.clone(),
                writable: up.writable,
                leaf: false,
                blocked: None,
            };
        }
        // Stepping aside is safe only in a cgroup that is ours (see
        // `delegated`) and whose subtree_control is empty: then every
        // controller enabled afterwards is ours to disable again, and while
        // one is enabled no other process can enter the cgroup (the kernel
        // refuses with EBUSY), so no one else's sandbox can depend on it.
        if self.alone && self.delegated && self.writable && self.subtree_control.is_empty() {
            return V2Home { leaf: true, ..own };
        }
        V2Home {
            blocked: Some(self.dir.clone()),
            ..own
        }
    }
}

impl Layout {
    /// Reads `/proc/self/mountinfo`, `/proc/self/cgroup` and a few files of
    /// our own cgroups. Unreadable means absent.
    pub(super) fn discover() -> Layout {
        let mounts = procfs::self_mountinfo();
        let own = procfs::self_cgroup();
        let me = std::process::id().to_string();

        let v2 = mounts.iter().find(|m| m.fstype == "cgroup2").and_then(|m| {
            let own_path = own.iter().find(|l| l.hierarchy == 0)?.path.as_str();
            let mount_point = Path::new(&m.mount_point);
            let dir = cgroup_dir(mount_point, &m.root, own_path)?;
            let list = |d: &Path, f: &str| read_words(&d.join(f)).unwrap_or_default();
            let procs = |d: &Path| fs::read_to_string(d.join("cgroup.procs")).ok();
            let own_procs = procs(&dir);
            let up = (dir != mount_point)
                .then(|| dir.parent().map(Path::to_path_buf))
                .flatten()
                .map(|up| V2Up {
                    delegated: delegated(&up),
                    controllers: list(&up, "cgroup.controllers"),
                    subtree_control: list(&up, "cgroup.subtree_control"),
                    has_processes: procs(&up).is_none_or(|p| !p.trim().is_empty()),
                    writable: writable(&up),
                    dir: up,
                });
            Some(V2Parent {
                is_root: own_path == "/" && m.root == "/" && !dir.join("cgroup.type").exists(),
                controllers: list(&dir, "cgroup.controllers"),
                subtree_control: list(&dir, "cgroup.subtree_control"),
                has_processes: own_procs.as_ref().is_none_or(|p| !p.trim().is_empty()),
                alone: own_procs.is_some_and(|p| p.split_whitespace().eq([me.as_str()])),
                delegated: delegated(&dir)
                    || (dir == mount_point && dir.join("cgroup.type").exists()),
                writable: writable(&dir),
                up,
                dir,
            })
        });

        let mut v1: Vec<V1Parent> = Vec::new();
        for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
            let controllers = m.v1_controllers();
            // Named hierarchies (name=systemd) carry no controller; a
            // hierarchy mounted twice is listed once.
            if controllers.is_empty() || v1.iter().any(|h| h.controllers == controllers) {
                continue;
            }
            let dir = own
                .iter()
                .find(|l| l.hierarchy != 0 && l.controllers.iter().any(|c| controllers.contains(c)))
                .and_then(|l| cgroup_dir(Path::new(&m.mount_point), &m.root, &l.path));
            v1.push(V1Parent {
                writable: dir.as_deref().is_some_and(writable),
                controllers,
                mount_point: PathBuf::from(&m.mount_point),
                dir,
            });
        }
        Layout { v2, v1 }
    }

    /// Where each limit in `limits` would be enforced, or why it can't be.
    pub(super) fn place_all(
        &self,
        limits: &Limits,
    ) -> Vec<(Controller, Result<Placement, String>)> {
        let requested: Vec<Controller> = Controller::ALL
            .into_iter()
            .filter(|c| c.requested(limits))
            .collect();
        let home = self.v2.as_ref().map(|v2| v2.home(&requested));
        requested
            .into_iter()
            .map(|c| (c, self.place(c, home.as_ref())))
            .collect()
    }

    /// Where `c` would be enforced given the v2 `home`, or why it can't be.
    pub(super) fn place(&self, c: Controller, home: Option<&V2Home>) -> Result<Placement, String> {
        let name = c.name();
        if let Some(h) = home.filter(|h| h.controllers.iter().any(|x| x == name)) {
            // A controller lives in one hierarchy only: v1 can't have it too.
            let dir = h.dir.display();
            if !h.writable {
                return Err(format!(
                    "cgroup v2 offers {name} but {dir} isn't writable by this user (run confine as \
                     root, or in a cgroup delegated to its user: systemd-run --user --scope -p \
                     Delegate=yes)"
                ));
            }
            let enabled = h.subtree_control.iter().any(|x| x == name);
            if let (false, false, Some(busy)) = (enabled, c.threaded(), &h.blocked) {
                return Err(no_internal_processes(name, busy));
            }
            return Ok(Placement {
                mechanism: Mechanism::V2,
                parent: h.dir.clone(),
                enable: !enabled,
                leaf: h.leaf,
            });
        }
        if let Some(h) = self
            .v1
            .iter()
            .find(|h| h.controllers.iter().any(|x| x == name))
        {
            return match (&h.dir, h.writable) {
                (Some(dir), true) => Ok(Placement {
                    mechanism: Mechanism::V1,
                    parent: dir.clone(),
                    enable: false,
                    leaf: false,
                }),
                (Some(dir), false) => Err(format!(
                    "cgroup v1 has {name} at {} but our cgroup there, {}, isn't writable by this \
                     user (run confine as root)",
                    h.mount_point.display(),
                    dir.display()
                )),
                (None, _) => Err(format!(
                    "cgroup v1 has {name} at {} but this process's cgroup isn't visible in that \
                     mount",
                    h.mount_point.display()
                )),
            };
        }
        Err(match &self.v2 {
            Some(v2) => format!(
                "no cgroup v1 hierarchy has {name}, and our cgroup v2 {} doesn't offer it (its \
                 cgroup.controllers: {})",
                v2.dir.display(),
                if v2.controllers.is_empty() {
                    "none".to_string()
                } else {
                    v2.controllers.join(" ")
                }
            ),
            None => format!("no cgroup v2 or v1 hierarchy is mounted with the {name} controller"),
        })
    }
}

/// Why cgroup v2 can't give a child of `dir` a domain controller, and what
/// would let it.
pub(super) fn no_internal_processes(controller: &str, dir: &Path) -> String {
    format!(
        "cgroup v2 won't enable {controller} below {}: confine runs in that cgroup, which isn't \
         the root, and a cgroup with processes can't hand a domain controller to children (the \
         no-internal-processes rule, EBUSY). confine creates the sandbox's cgroup next to its \
         own only when the parent is delegated (systemd Delegate=yes) and has no processes, \
         and moves itself into a leaf only when it is alone in a delegated cgroup (or a cgroup \
         namespace's root) that enables no controller yet. Hint: under systemd set Delegate=yes \
         and DelegateSubgroup=supervisor on the unit, or start confine alone in a delegated \
         scope (systemd-run --scope -p Delegate=yes confine run ...)",
        dir.display()
    )
}

/// Whether `dir` carries systemd's delegation mark. Reading `trusted.*`
/// needs CAP_SYS_ADMIN; user managers set `user.delegate` instead.
pub(super) fn delegated(dir: &Path) -> bool {
    ["trusted.delegate", "user.delegate"]
        .iter()
        .any(|name| xattr_is_one(dir, name))
}

fn xattr_is_one(path: &Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let (Ok(p), Ok(n)) = (
        std::ffi::CString::new(path.as_os_str().as_bytes()),
        std::ffi::CString::new(name),
    ) else {
        return false;
    };
    let mut buf = [0u8; 8];
    // SAFETY: both strings are NUL-terminated and outlive the call, and the
    // kernel writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).is_ok_and(|n| buf.get(..n) == Some(b"1".as_slice()))
}

/// The directory of cgroup `path` in a mount of the hierarchy whose root is
/// `mount_root`; `None` when the mount doesn't show that cgroup.
pub(crate) fn cgroup_dir(mount_point: &Path, mount_root: &str, path: &str) -> Option<PathBuf> {
    let rel = if mount_root == "/" {
        path
    } else {
        let r = path.strip_prefix(mount_root.trim_end_matches('/'))?;
        if !(r.is_empty() || r.starts_with('/')) {
            return None;
        }
        r
    };
    let rel = rel.trim_matches('/');
    if rel.split('/').any(|c| c == ".." || c == ".") {
        return None;
    }
    Some(if rel.is_empty() {
        mount_point.to_path_buf()
    } else {
        mount_point.join(rel)
    })
}

pub(super) fn writable(dir: &Path) -> bool {
    access(dir, AccessFlags::W_OK).is_ok()
}

pub(super) fn read_words(path: &Path) -> Option<Vec<String>> {
    let s = fs::read_to_string(path).ok()?;
    Some(s.split_whitespace().map(str::to_string).collect())
}

// ------------------------------------------------------------- capability

/// Which of `limits` this host can't enforce, and why. Reads the current
/// cgroup layout and creates nothing, so the plan can ask before the fork.
/// An empty answer is a prediction, not a promise: [`Cgroup::create`] still
/// fails if the kernel refuses.
pub fn capability(limits: &Limits) -> Vec<Unenforceable> {
    capability_in(&Layout::discover(), limits)
}

pub(super) fn capability_in(layout: &Layout, limits: &Limits) -> Vec<Unenforceable> {
    layout
        .place_all(limits)
        .into_iter()
        .filter_map(|(c, p)| p.err().map(|why| Unenforceable { key: c.key(), why }))
        .collect()
}

/// Where `limits.memory`, `limits.pids` and `limits.cpu` would be enforced
/// if a profile set all three (for `confine probe`): the profile key and
/// the placement, or why it can't be.
pub fn placements() -> Vec<(&'static str, Result<Placement, String>)> {
    let all = Limits {
        memory_bytes: Some(1),
        pids: Some(1),
        cpu_millicores: Some(1000),
    };
    Layout::discover()
        .place_all(&all)
        .into_iter()
        .map(|(c, p)| (c.key(), p))
        .collect()
}
