//! Host unix sockets that a grant puts within the agent's reach.
//!
//! The mount view shows only what the profile grants, so a daemon's socket
//! elsewhere doesn't exist inside. But a socket inside a grant does, and
//! connect(2) to a pathname socket isn't restricted by a read-only bind nor
//! by Landlock before ABI 9 (LANDLOCK_ACCESS_FS_RESOLVE_UNIX, Linux 7.1):
//! `network: none` doesn't stop it either, as the socket lives in the
//! filesystem, not in the network namespace. Whoever serves the socket
//! (a container engine, the user's session bus, an ssh or gpg agent, a
//! terminal multiplexer) then decides what the agent may do, and some of
//! them run commands for it outside the sandbox.
//!
//! This module finds such grants so that `check`, `explain` and `run` can
//! say so. It looks only where it is cheap: the grant itself, the
//! directories where daemons keep their sockets, and the entries directly
//! inside a granted directory other than /usr and /etc (one directory
//! read, no recursion). A socket deeper inside a grant isn't found;
//! docs/SECURITY.md says so.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// At most this many entries of a granted directory are looked at.
const SCAN_LIMIT: usize = 4096;
/// Directories of the installed system, not scanned for sockets.
const SYSTEM_TREES: [&str; 2] = ["/usr", "/etc"];
/// At most this many socket names are quoted in a warning.
const QUOTED: usize = 3;

/// Where host daemons and sessions keep their sockets: anything inside one
/// of these, or a grant that contains one, is suspect.
fn socket_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/run", "/var/run", "/tmp/.X11-unix", "/tmp/.ICE-unix"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if xdg.is_absolute() && !dirs.iter().any(|d| xdg.starts_with(d)) {
            dirs.push(xdg);
        }
    }
    dirs
}

/// Why the grant on `path` (as resolved, symlinks followed) puts host unix
/// sockets within the agent's reach, or `None`.
///
/// - `connect_restricted`: the kernel's Landlock restricts connect(2) to
///   pathname sockets (ABI 9). Then only a grant that names a socket is
///   reported: the agent may connect to exactly that one.
/// - `private_tmp`: the sandbox has its own /tmp, which hides the host's
///   (and its X11 and ICE sockets) under a grant of `/`.
pub(crate) fn exposure(path: &Path, connect_restricted: bool, private_tmp: bool) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.file_type().is_socket() {
        return Some("is a unix socket: the agent can connect to it, and whatever serves it decides what the agent may do".into());
    }
    if connect_restricted || !meta.is_dir() {
        return None;
    }
    for d in socket_dirs() {
        let hidden_by_tmp = private_tmp && d.starts_with("/tmp") && !path.starts_with("/tmp");
        if path.starts_with(&d) {
            let rel = if path == d { "is" } else { "is inside" };
            return Some(format!(
                "{rel} {}, where host daemons keep their unix sockets",
                d.display()
            ));
        }
        if d.starts_with(path) && !hidden_by_tmp && d.exists() {
            return Some(format!(
                "contains {}, where host daemons keep their unix sockets",
                d.display()
            ));
        }
    }
    // Packages install files there, daemons don't put sockets there, and
    // reading /usr/bin alone (a thousand entries) would cost a launch more
    // than the rest of this module.
    if SYSTEM_TREES.iter().any(|t| path.starts_with(t)) {
        return None;
    }
    let found = sockets_in(path);
    if found.is_empty() {
        return None;
    }
    let more = if found.len() > QUOTED { ", ..." } else { "" };
    let names: Vec<&str> = found.iter().take(QUOTED).map(String::as_str).collect();
    Some(format!("holds unix sockets ({}{more})", names.join(", ")))
}

/// The names of the unix sockets directly in `dir` (not recursing).
fn sockets_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .take(SCAN_LIMIT)
        .flatten()
        // The entry's type comes with the directory read (d_type), with no
        // stat per entry on the filesystems that report it.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The end of every warning about a grant that exposes sockets: why it
/// matters on this kernel and what to do.
pub(crate) fn advice(abi: u32) -> String {
    format!(
        "Landlock ABI {abi} doesn't restrict connect(2) to unix sockets (ABI 9, Linux 7.1, does), \
         nor does a read-only view or `network: none`; grant only the files the agent needs"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn finds_a_socket_in_a_directory_or_named() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(exposure(d.path(), false, true), None);
        let sock = d.path().join("srv.sock");
        let _l = UnixListener::bind(&sock).unwrap();
        std::fs::write(d.path().join("plain"), "x").unwrap();
        let why = exposure(d.path(), false, true).unwrap();
        assert_eq!(why, "holds unix sockets (srv.sock)");
        // The kernel restricts connect: a directory is no longer a concern,
        // a named socket still is (the agent may use exactly that one).
        assert_eq!(exposure(d.path(), true, true), None);
        assert!(exposure(&sock, true, true)
            .unwrap()
            .starts_with("is a unix socket"));
        assert!(exposure(&sock, false, true)
            .unwrap()
            .starts_with("is a unix socket"));
        assert_eq!(exposure(&d.path().join("plain"), false, true), None);
        assert_eq!(exposure(&d.path().join("missing"), false, true), None);
    }

    #[test]
    fn daemon_directories() {
        if !Path::new("/run").is_dir() {
            return;
        }
        assert!(exposure(Path::new("/run"), false, true)
            .unwrap()
            .starts_with("is /run, where host daemons"));
        assert!(exposure(Path::new("/"), false, true)
            .unwrap()
            .starts_with("contains /run"));
        assert_eq!(exposure(Path::new("/run"), true, true), None);
    }
}
