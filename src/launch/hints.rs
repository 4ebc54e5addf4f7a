//! What to tell the caller when the command couldn't be executed inside
//! the sandbox but exists outside it: the grant that is missing, by key.
//! Runs in the supervisor after the agent reported the failure, on the
//! caller's own view of the filesystem; it only ever names paths that exist
//! there.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::plan::Plan;

/// A hint for a command that failed with `code` (127: not found, 126: not
/// executable) inside the sandbox, when the file it was looked up as is
/// there on the host.
pub(crate) fn exec_failed(plan: &Plan, code: u8, candidates: &[PathBuf]) -> Option<String> {
    // The first candidate that is an executable file on the host: the one
    // the caller meant.
    let found = candidates.iter().find(|c| {
        std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })?;
    let real = std::fs::canonicalize(found).ok()?;
    let covering = |want: fn(&crate::plan::PathGrant) -> bool| {
        plan.filesystem
            .grants
            .iter()
            .filter(|g| !g.implicit && want(g))
            .any(|g| real.starts_with(&g.path))
    };
    let dir = |p: &Path| p.parent().unwrap_or(Path::new("/")).display().to_string();
    let shown = if &real == found {
        found.display().to_string()
    } else {
        format!("{} (-> {})", found.display(), real.display())
    };
    // The directory holding the file, and the one its symlink leads to.
    let mut dirs = vec![dir(found)];
    if real != *found && dir(&real) != dirs[0] {
        dirs.push(dir(&real));
    }
    let add = format!("`filesystem: {{exec: {{add: [{}]}}}}`", dirs.join(", "));
    if !covering(|g| g.read) {
        return Some(format!(
            "{shown} exists outside the sandbox, but the profile doesn't grant it: add its directory to filesystem.exec, {add}"
        ));
    }
    if !covering(|g| g.exec) {
        return Some(format!(
            "{shown} is granted for reading only: add its directory to filesystem.exec, {add}"
        ));
    }
    if code != 127 {
        return None;
    }
    // Granted and executable, yet "not found": what it needs to start (its
    // #! interpreter, or its dynamic loader) isn't in the view.
    match interpreter(&real) {
        Some(i) if !i.exists() => Some(format!(
            "{shown} is a script for {}, which doesn't exist here either",
            i.display()
        )),
        Some(i) => {
            let i_real = std::fs::canonicalize(&i).unwrap_or(i.clone());
            let granted = plan
                .filesystem
                .grants
                .iter()
                .any(|g| !g.implicit && g.exec && i_real.starts_with(&g.path));
            (!granted).then(|| {
                format!(
                    "{shown} is granted, but its interpreter {} isn't: add {} to filesystem.exec",
                    i.display(),
                    dir(&i)
                )
            })
        }
        None => Some(format!(
            "{shown} is granted, but what it needs to start (its dynamic loader or libraries) isn't: \
             grant those with filesystem.exec"
        )),
    }
}

/// The interpreter a `#!` script names, if it is one. Opened without
/// blocking or following a symlink, and read only if it is a regular file:
/// whoever writes where the command lives could have swapped it for a FIFO
/// since it was looked at.
fn interpreter(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = [0u8; 256];
    let n = f.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let first = line
        .split(|b| *b == b' ' || *b == b'\t')
        .find(|w| !w.is_empty())?;
    Some(PathBuf::from(OsStr::from_bytes(first)))
}
