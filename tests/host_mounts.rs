//! The host's own mount flags hold inside a grant: a read-only or noexec
//! mount beneath a write or exec grant stays read-only or noexec in the
//! sandbox (a grant never gives more than the host allows). The test makes
//! its bind mounts under its fixture and removes them, pass or fail.
mod common;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bind mounts made by the test, unmounted when dropped.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

fn bind(mounts: &mut Mounts, src: &Path, dst: &Path, opts: &str) {
    fs::create_dir_all(dst).unwrap();
    let ok = Command::new("mount")
        .arg("--bind")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount --bind");
    mounts.0.push(dst.to_path_buf());
    let ok = Command::new("mount")
        .args(["-o", &format!("remount,bind,{opts}")])
        .arg(dst)
        .status()
        .unwrap()
        .success();
    assert!(ok, "remount {opts}");
}

#[test]
fn read_only_and_noexec_host_mounts_stay_so_inside_grants() {
    if !can_run("read_only_and_noexec_host_mounts_stay_so_inside_grants") {
        return;
    }
    let f = Fixture::new("host-mounts");
    let victim = f.outside.join("victim");
    f.file(&victim.join("f"), "secret\n");
    // An executable the agent may read and run anywhere but on noexec.
    fs::copy("/bin/true", victim.join("t")).unwrap();
    fs::copy("/bin/true", f.ws.join("t")).unwrap();
    let mut mounts = Mounts(Vec::new());
    bind(&mut mounts, &victim, &f.ws.join("ro"), "ro");
    bind(&mut mounts, &victim, &f.ws.join("nx"), "noexec");
    let p = f.profile(
        "exec-ws",
        "version: 1\nextends: default\nfilesystem:\n  exec: {add: [\"{workspace}\"]}\n",
    );
    let o = f.sh(
        p.to_str().unwrap(),
        &format!(
            "cd {}; echo pwned > ro/f; echo ro_write=$?; ./nx/t; echo nx_exec=$?; \
             echo ok > note; echo ws_write=$?; ./t; echo ws_exec=$?",
            f.ws.display()
        ),
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    let status = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}\n{}", show(&o)))
            .to_string()
    };
    assert_ne!(
        status("ro_write"),
        "0",
        "a read-only host mount became writable\n{}",
        show(&o)
    );
    assert_ne!(
        status("nx_exec"),
        "0",
        "a noexec host mount became executable\n{}",
        show(&o)
    );
    // Controls: the rest of the workspace is writable and executable.
    assert_eq!(status("ws_write"), "0", "{}", show(&o));
    assert_eq!(status("ws_exec"), "0", "{}", show(&o));
    drop(mounts);
    assert_eq!(fs::read_to_string(victim.join("f")).unwrap(), "secret\n");
}
