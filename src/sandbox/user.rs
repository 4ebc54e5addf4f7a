//! Who the agent runs as: the profile's `user:` resolved to numeric ids before
//! the fork, and the switch to them after it (DESIGN.md §4 step 10).
//!
//! The agent never runs as uid 0 unless the profile says `user: root` (§6).
//! Resolution is where that is enforced: a `workspace-owner` whose workspace
//! belongs to root, an `inherit` from a confine running as root, or a name or
//! number that turns out to be uid 0 is refused with a hint.
//!
//! Order:
//! 1. [`resolve`], in the plan, before the fork: reads the passwd and group
//!    databases (NSS may open files and sockets, so never after the fork) and
//!    stats the workspace.
//! 2. [`switch`], in the init after the securebits are locked (see
//!    [`crate::sandbox::caps`]): `setgroups` → `setresgid` → `setresuid`, then
//!    checks all three ids of each kind. Groups before the uid: with
//!    `NO_SETUID_FIXUP` the capabilities would survive the uid change anyway,
//!    but this order doesn't depend on it. [`switch`] makes syscalls only and
//!    allocates nothing; the ids were laid out by [`resolve`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};

/// The profile's `user:` value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum UserSpec {
    /// `workspace-owner`: the owner and group of the workspace directory.
    WorkspaceOwner,
    /// `inherit`: confine's own uid, gid and supplementary groups.
    Inherit,
    /// `root`: uid 0, gid 0. The only spelling that may run the agent as root.
    Root,
    /// `NAME`: a passwd entry, its primary group and its supplementary groups.
    Name(String),
    /// `UID` or `UID:GID`.
    Id { uid: u32, gid: Option<u32> },
}

impl FromStr for UserSpec {
    type Err = UserError;

    /// `workspace-owner`, `inherit`, `root`, `UID`, `UID:GID` or a user name
    /// (letters, digits, `_`, `.`, `-`, not starting with `-`, optionally ending
    /// in `$`). All-digit values are uids, as in chown(1).
    fn from_str(s: &str) -> Result<Self, UserError> {
        let bad = || UserError::Parse(s.to_string());
        match s {
            "workspace-owner" => return Ok(UserSpec::WorkspaceOwner),
            "inherit" => return Ok(UserSpec::Inherit),
            "root" => return Ok(UserSpec::Root),
            _ => {}
        }
        let numeric = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        // (uid_t)-1 is "leave unchanged" to setresuid/setresgid, never an id.
        let id = |t: &str| match t.parse::<u32>() {
            Ok(NO_ID) => Err(UserError::ReservedId(s.to_string())),
            Ok(n) => Ok(n),
            Err(_) => Err(bad()),
        };
        if let Some((uid, gid)) = s.split_once(':') {
            if !numeric(uid) || !numeric(gid) {
                return Err(bad());
            }
            return Ok(UserSpec::Id {
                uid: id(uid)?,
                gid: Some(id(gid)?),
            });
        }
        if numeric(s) {
            return Ok(UserSpec::Id {
                uid: id(s)?,
                gid: None,
            });
        }
        let body = s.strip_suffix('$').unwrap_or(s);
        let valid = !body.is_empty()
            && !body.starts_with('-')
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if valid {
            Ok(UserSpec::Name(s.to_string()))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSpec::WorkspaceOwner => f.write_str("workspace-owner"),
            UserSpec::Inherit => f.write_str("inherit"),
            UserSpec::Root => f.write_str("root"),
            UserSpec::Name(name) => f.write_str(name),
            UserSpec::Id { uid, gid: None } => write!(f, "{uid}"),
            UserSpec::Id {
                uid,
                gid: Some(gid),
            } => write!(f, "{uid}:{gid}"),
        }
    }
}

/// The resolved identity of the agent: plain numbers, ready for [`switch`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, sorted, without duplicates. Empty drops them all.
    pub groups: Vec<u32>,
    /// The passwd name of `uid`, when it has one (for `explain` and audit).
    pub name: Option<String>,
    /// Leave the supplementary groups as they are instead of calling
    /// `setgroups`. Only for an unprivileged user namespace whose
    /// `/proc/PID/setgroups` is `deny`, where the kernel refuses `setgroups`
    /// (and keeps the groups on purpose). [`resolve`] sets it to `false`.
    pub keep_groups: bool,
}

/// (uid_t)-1 and (gid_t)-1: "no change" to the set*id calls, never an id.
pub(crate) const NO_ID: u32 = u32::MAX;

const ROOT_HINT: &str = "write `user: root` to run the agent as root";
const ROOT_GROUP_HINT: &str =
    "name a group other than 0, or write `user: root` to run the agent as root";
const WORKSPACE_ROOT_GROUP_HINT: &str =
    "chgrp the workspace to the agent's group, or write `user: root` to run the agent as root";
const WORKSPACE_ROOT_HINT: &str =
    "write `user: root` to run the agent as root, or chown the workspace to the agent's user";
const INHERIT_ROOT_HINT: &str =
    "write `user: root` to run the agent as root, or name the agent's user";

/// Why the user couldn't be resolved or switched to.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "`{0}` is not a user: expected workspace-owner, inherit, root, a user name, UID or UID:GID"
    )]
    Parse(String),
    #[error("no user named `{0}`")]
    NoSuchUser(String),
    #[error("looking up {what}: {errno}")]
    Lookup { what: String, errno: Errno },
    #[error("stat {}: {errno}", .path.display())]
    Stat { path: PathBuf, errno: Errno },
    #[error("the agent would run as root: {why}")]
    Root { why: String, hint: &'static str },
    #[error("the agent would run with root's group (gid 0): {why}")]
    RootGroup { why: String, hint: &'static str },
    #[error("`{0}`: 4294967295 is not a uid or gid (it is (uid_t)-1, which the kernel reads as \"no change\")")]
    ReservedId(String),
    #[error("setgroups ({count} groups): {errno}")]
    SetGroups { count: usize, errno: Errno },
    #[error("setresgid({gid}): {errno}")]
    SetGid { gid: u32, errno: Errno },
    #[error("setresuid({uid}): {errno}")]
    SetUid { uid: u32, errno: Errno },
    #[error("{0}: {1}")]
    Check(&'static str, Errno),
    #[error("after the switch the real/effective/saved {what} are {found:?}, expected {expected}")]
    Mismatch {
        what: &'static str,
        found: [u32; 3],
        expected: u32,
    },
    #[error("after the switch the process has {found} supplementary groups, expected {expected}")]
    GroupCount { found: usize, expected: usize },
}

impl UserError {
    /// What to do about it, where there is something to say.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        match self {
            UserError::Root { hint, .. } | UserError::RootGroup { hint, .. } => Some(hint),
            _ => None,
        }
    }
}

/// Resolves `spec` to numeric ids. `workspace` is the workspace directory;
/// `allow_root` lets a spec other than `root` resolve to uid 0 (the profile's
/// `user: root` never needs it).
///
/// - `workspace-owner`: the workspace's owner uid and group gid (stat), no
///   supplementary groups: the agent gets the workspace's identity, not every
///   group its owner happens to be in (write `user: NAME` for those).
/// - `inherit`: confine's real uid and gid and its supplementary groups.
/// - `NAME`: the /etc/passwd entry's uid and primary gid, and the groups
///   /etc/group lists it in (see [`passwd_entry`] for why not NSS).
/// - `UID`: like `NAME` when the uid has a passwd entry; otherwise gid = uid
///   and no supplementary groups.
/// - `UID:GID`: exactly these, no supplementary groups.
/// - `root`: uid 0, gid 0, no supplementary groups.
///
/// # Errors
///
/// An unknown name, a failing lookup or stat, or uid 0 from anything but
/// `root` without `allow_root` (with a hint, see [`UserError::hint`]).
pub(crate) fn resolve(
    spec: &UserSpec,
    workspace: &Path,
    allow_root: bool,
) -> Result<Ids, UserError> {
    let ids = match spec {
        UserSpec::Root => {
            return Ok(Ids {
                uid: 0,
                gid: 0,
                groups: vec![],
                name: Some("root".into()),
                keep_groups: false,
            })
        }
        UserSpec::WorkspaceOwner => {
            let st = nix::sys::stat::stat(workspace).map_err(|errno| UserError::Stat {
                path: workspace.to_path_buf(),
                errno,
            })?;
            if st.st_uid == 0 && !allow_root {
                return Err(UserError::Root {
                    why: format!(
                        "the workspace {} is owned by uid 0 and `user: workspace-owner` was asked",
                        workspace.display()
                    ),
                    hint: WORKSPACE_ROOT_HINT,
                });
            }
            if st.st_gid == 0 && !allow_root {
                return Err(UserError::RootGroup {
                    why: format!(
                        "the workspace {} belongs to group 0 and `user: workspace-owner` was asked",
                        workspace.display()
                    ),
                    hint: WORKSPACE_ROOT_GROUP_HINT,
                });
            }
            Ids {
                uid: st.st_uid,
                gid: st.st_gid,
                groups: vec![],
                name: name_of(st.st_uid)?,
                keep_groups: false,
            }
        }
        UserSpec::Inherit => {
            let uid = nix::unistd::getuid().as_raw();
            if uid == 0 && !allow_root {
                return Err(UserError::Root {
                    why: "confine runs as uid 0 and `user: inherit` was asked".into(),
                    hint: INHERIT_ROOT_HINT,
                });
            }
            let groups = nix::unistd::getgroups().map_err(|errno| UserError::Lookup {
                what: "confine's groups".into(),
                errno,
            })?;
            Ids {
                uid,
                gid: nix::unistd::getgid().as_raw(),
                groups: groups.into_iter().map(Gid::as_raw).collect(),
                name: name_of(uid)?,
                keep_groups: false,
            }
        }
        UserSpec::Name(name) => {
            let user = passwd_entry(|e| e.name == name.as_str())
                .ok_or_else(|| UserError::NoSuchUser(name.clone()))?;
            from_passwd(user)
        }
        UserSpec::Id {
            uid,
            gid: Some(gid),
        } => Ids {
            uid: *uid,
            gid: *gid,
            groups: vec![],
            name: name_of(*uid)?,
            keep_groups: false,
        },
        UserSpec::Id { uid, gid: None } => match passwd_entry(|e| e.uid == *uid) {
            Some(user) => from_passwd(user),
            None => Ids {
                uid: *uid,
                gid: *uid,
                groups: vec![],
                name: None,
                keep_groups: false,
            },
        },
    };
    if ids.uid == 0 && !allow_root {
        return Err(UserError::Root {
            why: format!("`user: {spec}` is uid 0"),
            hint: ROOT_HINT,
        });
    }
    // Group 0 opens what root's group may read or write: only `root` gets it.
    if !allow_root && (ids.gid == 0 || ids.groups.contains(&0)) {
        return Err(UserError::RootGroup {
            why: if ids.gid == 0 {
                format!("`user: {spec}` has gid 0")
            } else {
                format!("`user: {spec}` is a member of group 0 in /etc/group")
            },
            hint: ROOT_GROUP_HINT,
        });
    }
    if ids.uid == NO_ID || ids.gid == NO_ID || ids.groups.contains(&NO_ID) {
        return Err(UserError::ReservedId(spec.to_string()));
    }
    Ok(ids.normalized())
}

/// The name of `uid`, only for `explain` and the audit log: read from
/// /etc/passwd, not through NSS, whose modules (systemd, LDAP...) cost
/// hundreds of microseconds and most of a megabyte on every launch for a
/// label. A uid without an entry there simply has no name.
fn name_of(uid: u32) -> Result<Option<String>, UserError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Ok(passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    }))
}

/// One line of /etc/passwd.
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// The first /etc/passwd entry `pick` accepts.
///
/// Users and groups come from /etc/passwd and /etc/group, not NSS: the
/// binary is linked statically, and a static glibc can only load NSS modules
/// (systemd, LDAP, sssd) built from the very same glibc version, which a
/// distribution update breaks. Users only NSS knows are written `UID:GID`.
fn passwd_entry(pick: impl Fn(&PasswdEntry) -> bool) -> Option<PasswdEntry> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f
            .next()
            .filter(|n| !n.is_empty() && !n.starts_with(['+', '-', '#']))?;
        let e = PasswdEntry {
            name: name.to_string(),
            uid: f.nth(1)?.parse().ok()?,
            gid: f.next()?.parse().ok()?,
        };
        pick(&e).then_some(e)
    })
}

/// The ids of `user`: its primary group and every /etc/group entry that
/// lists it as a member (what getgrouplist(3) finds in files).
fn from_passwd(user: PasswdEntry) -> Ids {
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let groups = groups_in(&group, &user.name, user.gid);
    Ids {
        uid: user.uid,
        gid: user.gid,
        groups,
        name: Some(user.name),
        keep_groups: false,
    }
}

/// `primary` and the gid of every line of `group` (/etc/group's format)
/// that lists `name` as a member.
fn groups_in(group: &str, name: &str, primary: u32) -> Vec<u32> {
    let mut groups = vec![primary];
    // As glibc's files backend reads it: comments and NIS `+`/`-` lines
    // aren't entries, and member names are taken exactly as written.
    groups.extend(group.lines().filter_map(|l| {
        if l.is_empty() || l.starts_with(['#', '+', '-']) {
            return None;
        }
        let f: Vec<&str> = l.split(':').collect();
        let gid: u32 = f.get(2)?.parse().ok()?;
        f.get(3)?.split(',').any(|m| m == name).then_some(gid)
    }));
    groups
}

impl Ids {
    fn normalized(mut self) -> Ids {
        self.groups.sort_unstable();
        self.groups.dedup();
        self
    }
}

/// Switches the calling process to `ids`: `setgroups` (unless
/// [`Ids::keep_groups`]) → `setresgid` → `setresuid`, then checks that the
/// real, effective and saved uid and gid all match and that the number of
/// supplementary groups is right. Needs `CAP_SETUID` and `CAP_SETGID`.
///
/// # Errors
///
/// Any of the calls failing, or an id that didn't end up where it should.
pub(crate) fn switch(ids: &Ids) -> Result<(), UserError> {
    if !ids.keep_groups {
        // SAFETY: pointer and length of a live slice of gid_t (u32 on Linux);
        // the kernel only reads it.
        let ret = unsafe { libc::setgroups(ids.groups.len(), ids.groups.as_ptr()) };
        if ret != 0 {
            return Err(UserError::SetGroups {
                count: ids.groups.len(),
                errno: Errno::last(),
            });
        }
    }
    let gid = Gid::from_raw(ids.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|errno| UserError::SetGid {
        gid: ids.gid,
        errno,
    })?;
    let uid = Uid::from_raw(ids.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|errno| UserError::SetUid {
        uid: ids.uid,
        errno,
    })?;

    let r = nix::unistd::getresgid().map_err(|e| UserError::Check("getresgid", e))?;
    let found = [r.real.as_raw(), r.effective.as_raw(), r.saved.as_raw()];
    if found != [ids.gid; 3] {
        return Err(UserError::Mismatch {
            what: "gids",
            found,
            expected: ids.gid,
        });
    }
    let r = nix::unistd::getresuid().map_err(|e| UserError::Check("getresuid", e))?;
    let found = [r.real.as_raw(), r.effective.as_raw(), r.saved.as_raw()];
    if found != [ids.uid; 3] {
        return Err(UserError::Mismatch {
            what: "uids",
            found,
            expected: ids.uid,
        });
    }
    if !ids.keep_groups {
        // SAFETY: size 0 asks only for the count; the NULL list isn't touched.
        let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        if count < 0 {
            return Err(UserError::Check("getgroups", Errno::last()));
        }
        if count as usize != ids.groups.len() {
            return Err(UserError::GroupCount {
                found: count as usize,
                expected: ids.groups.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{chown, MetadataExt};

    fn parse(s: &str) -> Result<UserSpec, UserError> {
        s.parse()
    }

    #[test]
    fn parsing() {
        assert_eq!(parse("workspace-owner").unwrap(), UserSpec::WorkspaceOwner);
        assert_eq!(parse("inherit").unwrap(), UserSpec::Inherit);
        assert_eq!(parse("root").unwrap(), UserSpec::Root);
        assert_eq!(
            parse("1000").unwrap(),
            UserSpec::Id {
                uid: 1000,
                gid: None
            }
        );
        assert_eq!(
            parse("1000:100").unwrap(),
            UserSpec::Id {
                uid: 1000,
                gid: Some(100)
            }
        );
        assert_eq!(parse("agent").unwrap(), UserSpec::Name("agent".into()));
        assert_eq!(
            parse("build-bot.1").unwrap(),
            UserSpec::Name("build-bot.1".into())
        );
        assert_eq!(
            parse("machine$").unwrap(),
            UserSpec::Name("machine$".into())
        );
        for bad in [
            "",
            "-x",
            "a b",
            "1000:",
            ":100",
            "1000:x",
            "x:100",
            "99999999999",
            "$",
            "a/b",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(parse("4294967295"), Err(UserError::ReservedId(_))));
        assert!(matches!(
            parse("1000:4294967295"),
            Err(UserError::ReservedId(_))
        ));
        assert_eq!(
            parse("4294967294").unwrap(),
            UserSpec::Id {
                uid: 4_294_967_294,
                gid: None
            }
        );
        for s in [
            "workspace-owner",
            "inherit",
            "root",
            "1000",
            "1000:100",
            "agent",
        ] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn numeric_ids() {
        let dir = tempfile::tempdir().unwrap();
        let ids = resolve(
            &UserSpec::Id {
                uid: 4242,
                gid: Some(77),
            },
            dir.path(),
            false,
        )
        .unwrap();
        assert_eq!(
            (ids.uid, ids.gid, ids.groups.as_slice()),
            (4242, 77, &[][..])
        );
        // No passwd entry (almost certainly): gid = uid, no groups.
        let ids = resolve(
            &UserSpec::Id {
                uid: 3_999_999,
                gid: None,
            },
            dir.path(),
            false,
        )
        .unwrap();
        assert_eq!(
            (ids.uid, ids.gid, ids.groups.len(), ids.name),
            (3_999_999, 3_999_999, 0, None)
        );
    }

    #[test]
    fn root_only_when_written_as_root() {
        let dir = tempfile::tempdir().unwrap();
        let ids = resolve(&UserSpec::Root, dir.path(), false).unwrap();
        assert_eq!((ids.uid, ids.gid), (0, 0));
        let err = resolve(
            &UserSpec::Id {
                uid: 0,
                gid: Some(0),
            },
            dir.path(),
            false,
        )
        .unwrap_err();
        assert_eq!(err.hint(), Some(ROOT_HINT));
        assert!(resolve(
            &UserSpec::Id {
                uid: 0,
                gid: Some(0)
            },
            dir.path(),
            true
        )
        .is_ok());
        // Group 0 only with `root` too.
        let gid0 = UserSpec::Id {
            uid: 65534,
            gid: Some(0),
        };
        let err = resolve(&gid0, dir.path(), false).unwrap_err();
        assert!(matches!(err, UserError::RootGroup { .. }), "{err}");
        assert_eq!(err.hint(), Some(ROOT_GROUP_HINT));
        assert!(resolve(&gid0, dir.path(), true).is_ok());
        if nix::unistd::User::from_uid(Uid::from_raw(0))
            .unwrap()
            .is_some()
        {
            assert!(resolve(&UserSpec::Id { uid: 0, gid: None }, dir.path(), false).is_err());
        }
    }

    #[test]
    fn supplementary_groups_from_etc_group() {
        let group = "root:x:0:\nadm:x:4:syslog,alice\n#docker:x:999:alice\n+nis:x:998:alice\nbad\ndev:x:1001:bob,alice\nspaced:x:1002:bob, alice\nalicex:x:7:alicex\n";
        assert_eq!(groups_in(group, "alice", 1000), [1000, 4, 1001]);
        assert_eq!(groups_in(group, "carol", 50), [50]);
    }

    #[test]
    fn workspace_owner() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        if meta.uid() == 0 {
            let err = resolve(&UserSpec::WorkspaceOwner, dir.path(), false).unwrap_err();
            assert!(err.to_string().contains("owned by uid 0"), "{err}");
            assert_eq!(
                err.hint(),
                Some("write `user: root` to run the agent as root, or chown the workspace to the agent's user")
            );
            // As root we can also check a workspace owned by someone else,
            // in group 0 (refused) and in a group of its own.
            chown(dir.path(), Some(4321), Some(0)).unwrap();
            let err = resolve(&UserSpec::WorkspaceOwner, dir.path(), false).unwrap_err();
            assert!(err.to_string().contains("belongs to group 0"), "{err}");
            assert_eq!(err.hint(), Some(WORKSPACE_ROOT_GROUP_HINT));
            chown(dir.path(), Some(4321), Some(4322)).unwrap();
        }
        let meta = std::fs::metadata(dir.path()).unwrap();
        let ids = resolve(&UserSpec::WorkspaceOwner, dir.path(), false).unwrap();
        assert_eq!((ids.uid, ids.gid), (meta.uid(), meta.gid()));
        assert!(ids.groups.is_empty());
        let missing = resolve(&UserSpec::WorkspaceOwner, &dir.path().join("nope"), false);
        assert!(matches!(
            missing,
            Err(UserError::Stat {
                errno: Errno::ENOENT,
                ..
            })
        ));
    }

    #[test]
    fn inherit() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::getuid().as_raw();
        match resolve(&UserSpec::Inherit, dir.path(), false) {
            Ok(ids) => assert_eq!(ids.uid, me),
            Err(err) => {
                assert_eq!(me, 0);
                assert!(err.hint().is_some());
            }
        }
        let ids = resolve(&UserSpec::Inherit, dir.path(), true).unwrap();
        assert_eq!((ids.uid, ids.gid), (me, nix::unistd::getgid().as_raw()));
    }

    #[test]
    fn names() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            resolve(
                &UserSpec::Name("no-such-user-here".into()),
                dir.path(),
                false
            ),
            Err(UserError::NoSuchUser(_))
        ));
        // `nobody` exists almost everywhere; skip quietly where it doesn't.
        if let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") {
            let ids = resolve(&UserSpec::Name("nobody".into()), dir.path(), false).unwrap();
            assert_eq!(ids.uid, nobody.uid.as_raw());
            assert_eq!(ids.gid, nobody.gid.as_raw());
            assert!(ids.groups.contains(&ids.gid));
            assert!(ids.groups.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(ids.name.as_deref(), Some("nobody"));
            let by_uid = resolve(
                &UserSpec::Id {
                    uid: ids.uid,
                    gid: None,
                },
                dir.path(),
                false,
            )
            .unwrap();
            assert_eq!(by_uid, ids);
        }
    }
}
