//! `/proc/self/mountinfo` and `/proc/self/cgroup`: where the cgroup
//! hierarchies are mounted and where this process sits in them. One parser
//! for [`crate::probe`] and [`crate::sandbox::cgroup`]; it reads nothing but
//! the two files, and an unreadable file or a malformed line means absent.

use std::fs;

/// One line of `/proc/self/mountinfo`, the fields confine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    /// The root of the mount within its filesystem (field 4).
    pub root: String,
    /// Where it is mounted (field 5).
    pub mount_point: String,
    pub fstype: String,
    /// Per-superblock options (the last field), split on commas.
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// For a cgroup v1 mount: the controllers bound to it, in the order its
    /// options list them (`rw`, `xattr`, `name=...` are not controllers).
    pub(crate) fn v1_controllers(&self) -> Vec<String> {
        self.super_options
            .iter()
            .filter(|o| V1_CONTROLLERS.contains(&o.as_str()))
            .cloned()
            .collect()
    }

    /// For a named cgroup v1 hierarchy: its `name=` (e.g. `systemd`).
    pub(crate) fn v1_name(&self) -> Option<String> {
        self.super_options
            .iter()
            .find_map(|o| o.strip_prefix("name="))
            .map(str::to_string)
    }
}

/// The controllers cgroup v1 has. v1 is frozen, so a fixed list is complete;
/// it separates controllers from the other super options.
const V1_CONTROLLERS: [&str; 14] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The mounts of `/proc/self/mountinfo`; none when it can't be read.
pub(crate) fn self_mountinfo() -> Vec<MountInfo> {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|s| s.lines().filter_map(parse_mountinfo_line).collect())
        .unwrap_or_default()
}

/// Parse one mountinfo line:
/// `36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
pub(crate) fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let fields: Vec<&str> = line.split(' ').collect();
    // Fields 7.. are optional tags, ended by a lone "-".
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    Some(MountInfo {
        root: unescape_mountinfo(fields.get(3)?),
        mount_point: unescape_mountinfo(fields.get(4)?),
        fstype: (*fields.get(sep + 1)?).to_string(),
        super_options: fields
            .get(sep + 3)
            .copied()
            .unwrap_or("")
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// Undo the octal escapes of mountinfo paths (`\040` space, `\011` tab,
/// `\012` newline, `\134` backslash). A malformed escape stays as written.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/self/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupLine {
    /// 0 for the v2 line (`0::/path`).
    pub hierarchy: u32,
    /// The v1 controllers, as the line lists them; empty for the v2 line
    /// and for a named hierarchy without controllers.
    pub controllers: Vec<String>,
    /// A named v1 hierarchy's name: `systemd` for `1:name=systemd:/`.
    pub name: Option<String>,
    pub path: String,
}

/// The lines of `/proc/self/cgroup`; none when it can't be read.
pub(crate) fn self_cgroup() -> Vec<CgroupLine> {
    fs::read_to_string("/proc/self/cgroup")
        .map(|s| s.lines().filter_map(parse_cgroup_line).collect())
        .unwrap_or_default()
}

/// Parse one `/proc/self/cgroup` line; the path may itself hold colons.
pub(crate) fn parse_cgroup_line(line: &str) -> Option<CgroupLine> {
    let mut parts = line.splitn(3, ':');
    let hierarchy = parts.next()?.parse().ok()?;
    let list = parts.next()?;
    let path = parts.next()?.to_string();
    if !path.starts_with('/') {
        return None;
    }
    let entries = || list.split(',').filter(|c| !c.is_empty());
    Some(CgroupLine {
        hierarchy,
        controllers: entries()
            .filter(|c| !c.starts_with("name="))
            .map(str::to_string)
            .collect(),
        name: entries()
            .find_map(|c| c.strip_prefix("name="))
            .map(str::to_string),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_cgroup2_line() {
        let m = parse_mountinfo_line(
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate",
        )
        .expect("parses");
        assert_eq!(m.root, "/");
        assert_eq!(m.mount_point, "/sys/fs/cgroup/unified");
        assert_eq!(m.fstype, "cgroup2");
        assert_eq!(m.super_options, vec!["rw", "nsdelegate"]);
    }

    #[test]
    fn mountinfo_v1_line_without_optional_fields() {
        let m = parse_mountinfo_line(
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct",
        )
        .expect("parses");
        assert_eq!(m.mount_point, "/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(m.fstype, "cgroup");
        assert_eq!(m.super_options, vec!["rw", "cpu", "cpuacct"]);
        assert_eq!(m.v1_controllers(), ["cpu", "cpuacct"]);
        assert_eq!(m.v1_name(), None);
    }

    #[test]
    fn mountinfo_named_v1_hierarchy() {
        let m = parse_mountinfo_line(
            "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd",
        )
        .expect("parses");
        assert!(m.v1_controllers().is_empty());
        assert_eq!(m.v1_name().as_deref(), Some("systemd"));
    }

    #[test]
    fn mountinfo_escaped_spaces_and_several_optional_fields() {
        let m = parse_mountinfo_line(
            "99 30 0:50 /sub\\040dir /mnt/my\\040cgroup\\011x\\134y\\012z rw shared:3 master:1 - cgroup2 none rw",
        )
        .expect("parses");
        assert_eq!(m.root, "/sub dir");
        assert_eq!(m.mount_point, "/mnt/my cgroup\tx\\y\nz");
        assert_eq!(m.fstype, "cgroup2");
    }

    #[test]
    fn mountinfo_malformed_lines() {
        assert_eq!(parse_mountinfo_line(""), None);
        assert_eq!(parse_mountinfo_line("1 2 3:4 / /x rw"), None);
        // A trailing backslash, a short escape or one above 0o377 stays as
        // written.
        assert_eq!(unescape_mountinfo("/a\\04"), "/a\\04");
        assert_eq!(unescape_mountinfo("/a\\"), "/a\\");
        assert_eq!(unescape_mountinfo("/a\\999"), "/a\\999");
        assert_eq!(unescape_mountinfo("/a\\777"), "/a\\777");
    }

    #[test]
    fn cgroup_lines_v1_v2_and_named() {
        assert_eq!(
            parse_cgroup_line("0::/user.slice/user-1000.slice/session-2.scope"),
            Some(CgroupLine {
                hierarchy: 0,
                controllers: vec![],
                name: None,
                path: "/user.slice/user-1000.slice/session-2.scope".to_string(),
            })
        );
        assert_eq!(
            parse_cgroup_line("4:memory:/process_api/a5e3"),
            Some(CgroupLine {
                hierarchy: 4,
                controllers: vec!["memory".to_string()],
                name: None,
                path: "/process_api/a5e3".to_string(),
            })
        );
        let l = parse_cgroup_line("2:cpu,cpuacct:/a:b").expect("parses");
        assert_eq!(l.controllers, ["cpu", "cpuacct"]);
        assert_eq!(l.path, "/a:b");
        let named = parse_cgroup_line("9:name=systemd:/").expect("parses");
        assert!(named.controllers.is_empty());
        assert_eq!(named.name.as_deref(), Some("systemd"));
        assert_eq!(named.path, "/");
        assert_eq!(parse_cgroup_line("garbage"), None);
        assert_eq!(parse_cgroup_line("x::/"), None);
        assert_eq!(parse_cgroup_line("1:cpu:relative"), None);
    }
}
