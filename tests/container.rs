//! confine inside a container, as docs/DEPLOYMENT.md tells users to run it:
//! Podman (Debian's package) runs an image built from the repository's
//! Containerfile, whose base is a Debian made by debootstrap from the
//! distribution's own archive (no container registry is reachable here).
//!
//! - privileged, and with exactly the capabilities DEPLOYMENT.md lists, the
//!   default profile's smoke test passes: the workspace is written, a write
//!   outside it fails while the same write without confine succeeds;
//! - without each of those capabilities, or in a container with Podman's
//!   defaults, confine refuses (125) with a line naming what is missing, and
//!   the command never runs;
//! - as a non-root user with no capability at all, confine's user-namespace
//!   mode needs /proc unmasked and sethostname allowed by the container's
//!   seccomp profile: refused with the fix named without them, working with
//!   them.
//!
//! The base image is cached in Podman's store (`localhost/confine-test-base`),
//! the confine image is rebuilt only when the binaries change; every
//! container is started with `--rm` under a name of this process's own and
//! removed by that name if it is left.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const BASE: &str = "localhost/confine-test-base:bookworm";
const IMAGE: &str = "localhost/confine-test:latest";
const PODMAN: &str = "/usr/bin/podman";

/// What DEPLOYMENT.md says a root confine needs in a container.
const CAPS: [&str; 6] = [
    "SYS_ADMIN",
    "NET_ADMIN",
    "SETUID",
    "SETGID",
    "SETPCAP",
    "KILL",
];

/// The smoke test: the workspace is written and read back, the uid is the
/// workspace owner's, and a write outside the workspace fails: to the
/// container's /var/tmp, which root and the agent's uid may both write.
const SMOKE: &str = "echo hi > /ws/f && cat /ws/f && id -u && \
     if echo x > /var/tmp/confine-escaped 2>/dev/null; then echo ESCAPED; else echo outside-refused; fi";

/// Runs inside the container: confine with the smoke test, its status, then
/// the control: the same write outside confine, which the container allows.
fn script() -> String {
    format!(
        "confine run -w /ws -- sh -c '{SMOKE}'; echo \"status $?\"; \
         test -e /var/tmp/confine-escaped && echo ESCAPED-FILE; \
         echo x > /var/tmp/confine-control && echo control-wrote"
    )
}

fn podman() -> Command {
    let mut c = Command::new(PODMAN);
    c.stdin(Stdio::null());
    c
}

/// The flags every container here gets. runc: Debian 12's crun refuses
/// hosts with cgroup v1 that have a controller on the v2 mount ("hybrid"),
/// as the test machine has. The rlimits: Podman's default raises the
/// container's to 1048576, which needs CAP_SYS_RESOURCE where the host's
/// hard limit is lower; these stay within it (and above the default
/// profile's open_files: 4096).
fn host_flags() -> Vec<String> {
    let mut f = Vec::new();
    if Path::new("/usr/sbin/runc").exists() || Path::new("/usr/bin/runc").exists() {
        f.extend(["--runtime".into(), "runc".into()]);
    }
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    let nofile = r.rlim_max.min(65536);
    f.push(format!("--ulimit=nofile={nofile}:{nofile}"));
    f.push("--ulimit=nproc=4096:4096".into());
    // No network of the container's own (no bridge, no firewall rules on
    // the host): the default profile's sandbox has only its own loopback.
    f.push("--network=none".into());
    f
}

fn check(o: &Output, what: &str) {
    assert!(o.status.success(), "{what}: {}", show(o));
}

/// The base image: Debian bookworm, minbase, from the distribution's archive
/// (debootstrap's default mirror), imported once and kept in Podman's store.
fn base_image() {
    if podman()
        .args(["image", "exists", BASE])
        .status()
        .unwrap()
        .success()
    {
        return;
    }
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("container-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let o = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    check(&o, "debootstrap");
    // The downloaded packages: not part of the system.
    if let Ok(d) = std::fs::read_dir(root.join("var/cache/apt/archives")) {
        for e in d.flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' -c . | {PODMAN} import - {BASE}",
            root.display()
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    check(&o, "podman import");
    std::fs::remove_dir_all(&root).unwrap();
}

/// The binaries' identity: the image is rebuilt when it changes.
fn binaries_key(bins: &[PathBuf]) -> String {
    bins.iter()
        .map(|b| {
            let m = std::fs::metadata(b).unwrap();
            format!("{}.{}.{}.{}", m.ino(), m.size(), m.mtime(), m.mtime_nsec())
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Builds the Containerfile on the base with this build's binaries, unless
/// the image already holds them.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        base_image();
        let dir = Path::new(bin()).parent().unwrap();
        let bins = [dir.join("confine"), dir.join("confine-egress")];
        let key = binaries_key(&bins);
        let label = podman()
            .args([
                "image",
                "inspect",
                "--format",
                "{{index .Labels \"confine.bins\"}}",
                IMAGE,
            ])
            .output()
            .unwrap();
        if label.status.success() && String::from_utf8_lossy(&label.stdout).trim() == key {
            return;
        }
        let old = podman()
            .args(["image", "inspect", "--format", "{{.Id}}", IMAGE])
            .output()
            .unwrap();
        let ctx = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("container-ctx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&ctx);
        std::fs::create_dir_all(&ctx).unwrap();
        // Without debug info: a tenth of the size, the same code.
        for b in &bins {
            let o = Command::new("strip")
                .arg("-o")
                .arg(ctx.join(b.file_name().unwrap()))
                .arg(b)
                .output()
                .unwrap();
            check(&o, "strip");
        }
        let containerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("Containerfile");
        let o = podman()
            .arg("build")
            .args(host_flags())
            .args(["--layers=false", "-q", "-f"])
            .arg(&containerfile)
            .args(["--build-arg", &format!("BASE={BASE}")])
            .args(["--build-arg", &format!("AGENT_UID={AGENT_UID}")])
            .args(["--label", &format!("confine.bins={key}"), "-t", IMAGE])
            .arg(&ctx)
            .output()
            .unwrap();
        check(&o, "podman build");
        std::fs::remove_dir_all(&ctx).unwrap();
        // The image it replaced, now untagged.
        let old = String::from_utf8_lossy(&old.stdout).trim().to_string();
        if !old.is_empty() {
            let _ = podman().args(["rmi", &old]).output();
        }
    });
    IMAGE
}

/// A container of this test's own: `--rm`, and removed by name if it is
/// still there when the run is over (a panic, a killed podman).
struct Container {
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", "--ignore", &self.name])
            .output();
    }
}

/// Runs `sh -c SCRIPT` in a fresh container of the image with `flags`.
fn run(flags: &[&str], script: &str) -> Output {
    let c = Container {
        name: format!("confine-test-{}", unique()),
    };
    let o = podman()
        .args(["run", "--rm", "--name", &c.name])
        .args(host_flags())
        .args(flags)
        .args(["--entrypoint", "/bin/sh", image(), "-c", script])
        .output()
        .unwrap();
    drop(c);
    o
}

/// Podman is there, or the test can't run (a failure under
/// CONFINE_REQUIRE_KERNEL=1: .ci/run installs it).
fn ready(test: &str) -> bool {
    if !can_run(test) {
        return false;
    }
    for tool in [PODMAN, "/usr/sbin/debootstrap"] {
        if !Path::new(tool).exists() {
            return skip_or_fail(
                test,
                &format!("{tool} is not installed (apt-get install podman debootstrap runc)"),
            );
        }
    }
    true
}

/// The smoke test passed: written, read back as the workspace owner, the
/// write outside refused by confine (the control outside confine wrote).
#[track_caller]
fn assert_smoke(o: &Output) {
    let out = stdout(o);
    assert!(o.status.success(), "{}", show(o));
    assert!(
        out.contains(&format!("hi\n{AGENT_UID}\noutside-refused\nstatus 0\n")),
        "{}",
        show(o)
    );
    assert!(!out.contains("ESCAPED"), "{}", show(o));
    assert!(out.contains("control-wrote"), "{}", show(o));
}

/// Refused before the command ran, with a line that says `names`.
#[track_caller]
fn assert_refused(o: &Output, names: &[&str]) {
    let out = stdout(o);
    assert!(out.contains("status 125\n"), "{}", show(o));
    assert!(!out.contains("hi\n"), "the command ran: {}", show(o));
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.starts_with("confine: ") && !l.starts_with("confine: warning"))
        .unwrap_or_else(|| panic!("no refusal line: {}", show(o)));
    for n in names {
        assert!(line.contains(n), "`{n}` not in the refusal: {}", show(o));
    }
}

#[test]
fn privileged_container_runs_the_default_profiles_smoke_test() {
    if !ready("privileged_container_runs_the_default_profiles_smoke_test") {
        return;
    }
    assert_smoke(&run(&["--privileged"], &script()));
}

#[test]
fn the_documented_capabilities_are_enough_and_each_is_needed() {
    if !ready("the_documented_capabilities_are_enough_and_each_is_needed") {
        return;
    }
    let all = CAPS.join(",");
    assert_smoke(&run(
        &["--cap-drop=ALL", &format!("--cap-add={all}")],
        &script(),
    ));
    for cap in CAPS {
        let rest: Vec<_> = CAPS.iter().filter(|c| **c != cap).copied().collect();
        let o = run(
            &["--cap-drop=ALL", &format!("--cap-add={}", rest.join(","))],
            &script(),
        );
        assert_refused(&o, &[&format!("CAP_{cap}"), &format!("--cap-add {cap}")]);
    }
}

#[test]
fn an_unprivileged_container_is_refused_naming_what_is_missing() {
    if !ready("an_unprivileged_container_is_refused_naming_what_is_missing") {
        return;
    }
    // Podman's defaults: root without CAP_SYS_ADMIN or CAP_NET_ADMIN.
    let o = run(&[], &script());
    assert_refused(
        &o,
        &["CAP_SYS_ADMIN", "--cap-add SYS_ADMIN", "--privileged"],
    );
    // The refusal is confine's: the container itself writes where the
    // sandbox would have.
    assert!(stdout(&o).contains("control-wrote"), "{}", show(&o));
}

/// The container's seccomp profile with sethostname allowed without
/// CAP_SYS_ADMIN (the sandbox's own UTS namespace), nothing else changed.
fn seccomp_with_sethostname(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/usr/share/containers/seccomp.json").ok()?;
    let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rules = j["syscalls"].as_array_mut().unwrap();
    for r in rules.iter_mut() {
        if r["action"] == "SCMP_ACT_ERRNO" {
            if let Some(names) = r["names"].as_array_mut() {
                names.retain(|n| n != "sethostname");
            }
        }
    }
    rules.push(serde_json::json!({"names": ["sethostname"], "action": "SCMP_ACT_ALLOW"}));
    let p = dir.join("seccomp.json");
    std::fs::write(&p, j.to_string()).unwrap();
    Some(p)
}

#[test]
fn a_non_root_user_without_capabilities_needs_proc_unmasked_and_sethostname() {
    let test = "a_non_root_user_without_capabilities_needs_proc_unmasked_and_sethostname";
    if !ready(test) {
        return;
    }
    let f = Fixture::new("container");
    let Some(seccomp) = seccomp_with_sethostname(&f.root) else {
        skip_or_fail(test, "no /usr/share/containers/seccomp.json to start from");
        return;
    };
    let user = format!("--user={AGENT_UID}:{AGENT_UID}");
    // Without a runtime directory confine warns that ps/stop won't see it.
    let env = "--env=XDG_RUNTIME_DIR=/tmp";
    let unmask = "--security-opt=unmask=/proc/*";
    let sc = format!("--security-opt=seccomp={}", seccomp.display());
    // Each missing piece is refused, naming it.
    let o = run(&["--cap-drop=ALL", &user, env, &sc], &script());
    assert_refused(&o, &["procfs", "unmask=/proc/*"]);
    let o = run(&["--cap-drop=ALL", &user, env, unmask], &script());
    assert_refused(&o, &["sethostname", "seccomp"]);
    // Both: the smoke test passes with no capability at all.
    assert_smoke(&run(
        &["--cap-drop=ALL", &user, env, unmask, &sc],
        &script(),
    ));
}
