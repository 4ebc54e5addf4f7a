//! What to add to a setup step's EPERM when the cause is what confine itself
//! may do, not the profile: a capability missing from confine's effective
//! set (a container that doesn't grant it, a unit's
//! `CapabilityBoundingSet=`), or a seccomp filter, masked `/proc` or
//! security module that whatever runs confine put it under (a container's
//! defaults). Runs in the supervisor, after the step was refused; the launch
//! never branches on any of it.

use caps::Capability;

/// A capability the launch needs as root, and what it is for.
struct Need {
    cap: Capability,
    name: &'static str,
    what: &'static str,
}

/// What `step` needed that the kernel may have refused for lack of a
/// capability, from the step and the message it failed with.
fn need(step: &str, why: &str) -> Option<Need> {
    let n = |cap, name, what| Some(Need { cap, name, what });
    match step {
        "clone" => n(
            Capability::CAP_SYS_ADMIN,
            "CAP_SYS_ADMIN",
            "creating the sandbox's namespaces",
        ),
        "mounts" => n(
            Capability::CAP_SYS_ADMIN,
            "CAP_SYS_ADMIN",
            "building the sandbox's mount view",
        ),
        "hostname" => n(
            Capability::CAP_SYS_ADMIN,
            "CAP_SYS_ADMIN",
            "naming the sandbox's own UTS namespace (sethostname)",
        ),
        "network" => n(
            Capability::CAP_NET_ADMIN,
            "CAP_NET_ADMIN",
            "bringing up the sandbox's loopback",
        ),
        "user" if why.contains("setresuid") => n(
            Capability::CAP_SETUID,
            "CAP_SETUID",
            "switching to the agent's uid",
        ),
        "user" if why.contains("setgroups") || why.contains("setresgid") => n(
            Capability::CAP_SETGID,
            "CAP_SETGID",
            "switching to the agent's gid and groups",
        ),
        "capabilities" if why.contains("bounding set") => n(
            Capability::CAP_SETPCAP,
            "CAP_SETPCAP",
            "emptying the agent's bounding set",
        ),
        // Binding a port below 1024 is EACCES, not EPERM.
        "egress" => n(
            Capability::CAP_NET_BIND_SERVICE,
            "CAP_NET_BIND_SERVICE",
            "binding the egress proxy's listeners inside the sandbox (its DNS on port 53, ports below 1024)",
        ),
        "rlimits" => n(
            Capability::CAP_SYS_RESOURCE,
            "CAP_SYS_RESOURCE",
            "raising a limit above confine's own hard limit",
        ),
        _ => None,
    }
}

/// How confine itself is confined, as far as it can tell.
#[derive(Debug, Default, PartialEq, Eq)]
struct Confinement {
    /// It runs under a seccomp filter (`Seccomp: 2`).
    seccomp: bool,
    /// Its security module label, unless unconfined (AppArmor's
    /// `docker-default (enforce)`, an SELinux context, ...).
    label: Option<String>,
}

fn own_confinement() -> Confinement {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let seccomp = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .is_some_and(|v| v.trim() == "2");
    let label = [
        "/proc/self/attr/apparmor/current",
        "/proc/self/attr/current",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .map(|l| l.trim_end_matches(['\0', '\n']).trim().to_string())
    .filter(|l| !l.is_empty() && l != "unconfined");
    Confinement { seccomp, label }
}

/// The text to add to a refusal of `step` with `why`, when it helps:
/// `unprivileged` is confine's user-namespace mode, where capabilities are
/// the namespace's own and a missing one is never the cause.
pub(crate) fn explain(step: &str, why: &str, unprivileged: bool) -> Option<String> {
    let effective = crate::sandbox::caps::effective();
    explain_with(step, why, unprivileged, effective, &own_confinement())
}

fn explain_with(
    step: &str,
    why: &str,
    unprivileged: bool,
    effective: Option<u64>,
    own: &Confinement,
) -> Option<String> {
    let eperm = why.contains("Operation not permitted") || why.contains("EPERM");
    if !(eperm || step == "egress" && why.contains("Permission denied")) {
        return None;
    }
    if unprivileged && step == "mounts" && why.contains("procfs") {
        return Some(
            "the kernel mounts a new /proc in a user namespace only where the /proc confine \
             sees has nothing mounted over parts of it, and a container masks some \
             (podman: --security-opt unmask=/proc/*; docker: --security-opt \
             systempaths=unconfined), or run confine as root"
                .into(),
        );
    }
    let need = need(step, why)?;
    let held = effective.is_some_and(|e| e & (1u64 << need.cap.index()) != 0);
    if !unprivileged && !held {
        let short = need.name.trim_start_matches("CAP_");
        return Some(format!(
            "{} needs {}, which confine doesn't have (a container: --cap-add {short}, or \
             --privileged; a systemd unit: keep it in CapabilityBoundingSet=)",
            need.what, need.name
        ));
    }
    let mut under = Vec::new();
    if own.seccomp {
        under.push("a seccomp filter".to_string());
    }
    if let Some(l) = &own.label {
        under.push(format!("the security label `{l}`"));
    }
    if under.is_empty() {
        return None;
    }
    let holds = if unprivileged {
        "in its user namespace".to_string()
    } else {
        format!("although confine holds {}", need.name)
    };
    Some(format!(
        "{} was refused {holds}: confine itself runs under {}, which forbids it (a container's \
         default seccomp or AppArmor profile: allow it there, or --privileged)",
        need.what,
        under.join(" and ")
    ))
}

/// Refuses a launch whose sandbox confine couldn't signal: as root with the
/// agent on another uid, SIGTERM, `wall_time`, `confine stop` and the final
/// SIGKILL reach the init only with CAP_KILL, and a kill that fails is
/// otherwise silent (a container or unit that drops CAP_KILL).
pub(crate) fn can_signal(agent_uid: u32, unprivileged: bool) -> Result<(), String> {
    // SAFETY: geteuid has no arguments and can't fail.
    let euid = unsafe { libc::geteuid() };
    if unprivileged || euid == agent_uid {
        return Ok(());
    }
    can_signal_with(crate::sandbox::caps::effective(), agent_uid)
}

fn can_signal_with(effective: Option<u64>, agent_uid: u32) -> Result<(), String> {
    match effective {
        Some(e) if e & (1u64 << Capability::CAP_KILL.index()) == 0 => Err(format!(
            "the agent runs as uid {agent_uid}, and without CAP_KILL confine couldn't stop it \
             (SIGTERM, wall_time, confine stop): give confine CAP_KILL (a container: --cap-add \
             KILL; a systemd unit: keep it in CapabilityBoundingSet=)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPERM: &str = "Operation not permitted (os error 1)";

    fn bit(c: Capability) -> u64 {
        1u64 << c.index()
    }

    #[test]
    fn a_missing_capability_is_named_with_its_container_flag() {
        let none = Confinement::default();
        let h = explain_with(
            "network",
            EPERM,
            false,
            Some(bit(Capability::CAP_SYS_ADMIN)),
            &none,
        )
        .unwrap();
        assert!(h.contains("needs CAP_NET_ADMIN"), "{h}");
        assert!(h.contains("--cap-add NET_ADMIN"), "{h}");
        let h = explain_with(
            "user",
            "setresuid(1000): EPERM: Operation not permitted",
            false,
            Some(0),
            &none,
        )
        .unwrap();
        assert!(h.contains("CAP_SETUID"), "{h}");
        let h = explain_with(
            "capabilities",
            "clearing the bounding set: dropping CAP_CHOWN: EPERM: Operation not permitted",
            false,
            Some(0),
            &none,
        )
        .unwrap();
        assert!(h.contains("CAP_SETPCAP"), "{h}");
        let h = explain_with(
            "egress",
            "UDP 127.0.0.1:53: Permission denied (os error 13)",
            false,
            Some(0),
            &none,
        )
        .unwrap();
        assert!(h.contains("CAP_NET_BIND_SERVICE"), "{h}");
    }

    #[test]
    fn a_held_capability_blames_what_confine_runs_under() {
        let own = Confinement {
            seccomp: true,
            label: Some("docker-default (enforce)".into()),
        };
        let all = Some(u64::MAX);
        let h = explain_with("mounts", EPERM, false, all, &own).unwrap();
        assert!(h.contains("although confine holds CAP_SYS_ADMIN"), "{h}");
        assert!(h.contains("seccomp filter"), "{h}");
        assert!(h.contains("`docker-default (enforce)`"), "{h}");
        // Nothing to blame: no guess.
        assert_eq!(
            explain_with("mounts", EPERM, false, all, &Confinement::default()),
            None
        );
    }

    #[test]
    fn user_namespace_mode_never_blames_the_host_capabilities() {
        let own = Confinement {
            seccomp: true,
            label: None,
        };
        let h = explain_with("hostname", EPERM, true, Some(0), &own).unwrap();
        assert!(h.contains("in its user namespace"), "{h}");
        assert!(!h.contains("--cap-add"), "{h}");
        let h = explain_with(
            "mounts",
            "mounting procfs on /proc: EPERM",
            true,
            Some(0),
            &own,
        )
        .unwrap();
        assert!(h.contains("unmask"), "{h}");
    }

    #[test]
    fn a_sandbox_confine_couldnt_signal_is_refused() {
        let e = can_signal_with(Some(0), 60123).unwrap_err();
        assert!(
            e.contains("CAP_KILL") && e.contains("--cap-add KILL"),
            "{e}"
        );
        assert!(can_signal_with(Some(bit(Capability::CAP_KILL)), 60123).is_ok());
        // Can't tell: no refusal on a guess.
        assert!(can_signal_with(None, 60123).is_ok());
    }

    #[test]
    fn other_errors_get_nothing() {
        assert_eq!(
            explain_with(
                "network",
                "No such device",
                false,
                Some(0),
                &Confinement::default()
            ),
            None
        );
        assert_eq!(
            explain_with("seccomp", EPERM, false, Some(0), &Confinement::default()),
            None
        );
    }
}
