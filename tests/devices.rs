//! The sandbox's /dev (finding 9): run by root, its device nodes are its
//! own (mknod on its /dev tmpfs), so nothing done to them inside, even as
//! `user: root`, reaches the host's nodes. The attempt is harmless if it
//! succeeds: it sets the mode /dev/null already has.
mod common;
use common::*;
use std::os::unix::fs::MetadataExt;

const ROOT: &str = "version: 1\nextends: default\nuser: root\n";

#[test]
fn device_nodes_are_the_sandboxs_own_even_for_root() {
    if !can_run("device_nodes_are_the_sandboxs_own_even_for_root") {
        return;
    }
    let f = Fixture::new("devices");
    let p = f.profile("root", ROOT);
    let before = std::fs::metadata("/dev/null").unwrap();
    let o = f.sh(
        p.to_str().unwrap(),
        "for d in null zero full random urandom tty; do stat -c \"$d=%d:%i:%t:%T:%a\" /dev/$d; done; \
         chmod 666 /dev/null; echo chmod=$?; \
         touch /dev/null; echo touch=$?; \
         echo data > /dev/null; echo write=$?; \
         head -c 4 /dev/zero | od -An -tx1 | tr -d ' \\n'; echo; \
         head -c 8 /dev/urandom | wc -c",
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    let seen: std::collections::BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let host = |d: &str| {
        let m = std::fs::metadata(format!("/dev/{d}")).unwrap();
        (format!("{}:{}", m.dev(), m.ino()), m.rdev())
    };
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let inside = seen
            .get(d)
            .unwrap_or_else(|| panic!("no {d}\n{}", show(&o)));
        let (host_id, rdev) = host(d);
        let parts: Vec<&str> = inside.split(':').collect();
        assert_ne!(
            format!("{}:{}", parts[0], parts[1]),
            host_id,
            "/dev/{d} inside is the host's node\n{}",
            show(&o)
        );
        // The same device: major and minor (hex from stat) match the host's.
        let major = u64::from_str_radix(parts[2], 16).unwrap();
        let minor = u64::from_str_radix(parts[3], 16).unwrap();
        assert_eq!(
            (major, minor),
            (libc::major(rdev) as u64, libc::minor(rdev) as u64),
            "{d}"
        );
        assert_eq!(parts[4], "666", "/dev/{d} mode\n{}", show(&o));
    }
    // The attempts fail (read-only /dev), the controls work.
    assert_ne!(
        seen.get("chmod").map(String::as_str),
        Some("0"),
        "{}",
        show(&o)
    );
    assert_ne!(
        seen.get("touch").map(String::as_str),
        Some("0"),
        "{}",
        show(&o)
    );
    assert_eq!(
        seen.get("write").map(String::as_str),
        Some("0"),
        "{}",
        show(&o)
    );
    assert!(out.contains("00000000"), "{}", show(&o));
    assert!(out.lines().any(|l| l.trim() == "8"), "{}", show(&o));
    // And the host's node is untouched.
    let after = std::fs::metadata("/dev/null").unwrap();
    assert_eq!(
        (before.mode(), before.ctime(), before.ctime_nsec()),
        (after.mode(), after.ctime(), after.ctime_nsec())
    );
}
