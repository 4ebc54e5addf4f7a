//! Landlock planning: the ABI the rules are written for, the filesystem and
//! network rules and scopes for it, and what an older ABI can't enforce.

use serde::Serialize;

use super::{net, refused, FsPlan, Gap, PlanError};
use crate::profile::{self, NetworkMode, PortRule, Profile};
use crate::sandbox::landlock as ll;

#[derive(Clone, Debug, Serialize)]
pub struct LandlockPlan {
    /// The ABI the rules are written for.
    pub abi: u32,
    /// What the kernel reports; `None` without Landlock.
    pub kernel_abi: Option<u32>,
    pub handled_fs: Vec<&'static str>,
    pub handled_net: Vec<&'static str>,
    pub scopes: Vec<&'static str>,
    #[serde(skip)]
    pub(crate) spec: ll::Spec,
}

/// Overrides the Landlock ABI the plan targets, downwards only, to see what a
/// profile would do on an older kernel (`CONFINE_LANDLOCK_ABI=3`).
const ABI_OVERRIDE_ENV: &str = "CONFINE_LANDLOCK_ABI";

/// The Landlock ABI to write rules for: the kernel's, capped at what confine
/// knows and, for testing older kernels, at `CONFINE_LANDLOCK_ABI`.
pub(super) fn target_abi(kernel: Option<u32>) -> Result<u32, PlanError> {
    let mut abi = kernel.unwrap_or(0).min(ll::MAX_ABI);
    if let Some(v) = std::env::var_os(ABI_OVERRIDE_ENV) {
        let cap: u32 = v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
            refused(
                ABI_OVERRIDE_ENV,
                "environment",
                "must be a number from 0 to 9",
            )
        })?;
        abi = abi.min(cap);
    }
    Ok(abi)
}

/// The Landlock rules for `abi`: one per grant, the TCP ports where the
/// profile restricts them, and the scopes.
pub(super) fn plan(p: &Profile, fs: &FsPlan, abi: u32, kernel_abi: Option<u32>) -> LandlockPlan {
    let mut spec = ll::Spec::deny_all(abi);
    spec.paths = fs
        .grants
        .iter()
        .map(|g| ll::PathRule {
            path: g.path.clone(),
            access: g.access,
        })
        .collect();
    let n = &p.network;
    let ports = !(n.connect_tcp.is_empty() && n.bind_tcp.is_empty());
    if n.mode.value == NetworkMode::Host || ports {
        // `any` leaves that direction unhandled: Landlock then allows it.
        let mut handled = ll::handled_net(abi);
        if n.connect_any() {
            handled &= !ll::NET_CONNECT_TCP;
        }
        if n.bind_any() {
            handled &= !ll::NET_BIND_TCP;
        }
        if handled != 0 {
            let listed = |rules: &[PortRule], right: u64| {
                if handled & right == 0 {
                    Vec::new()
                } else {
                    profile::ports(rules)
                }
            };
            spec.net = Some(ll::NetRules {
                handled,
                bind_tcp: listed(&n.bind_tcp, ll::NET_BIND_TCP),
                connect_tcp: listed(&n.connect_tcp, ll::NET_CONNECT_TCP),
            });
        }
    }
    spec.scopes = ll::supported_scopes(abi);
    LandlockPlan {
        abi,
        kernel_abi,
        handled_fs: ll::fs_access_names(spec.handled_fs),
        handled_net: ll::net_access_names(spec.net.as_ref().map(|n| n.handled).unwrap_or(0)),
        scopes: ll::scope_names(spec.scopes),
        spec,
    }
}

/// What `abi` lacks that this profile needs, as gaps.
pub(super) fn gaps(p: &Profile, abi: u32, kernel_abi: Option<u32>, gaps: &mut Vec<Gap>) {
    let ports = net::tcp_ports_restricted(p);
    for f in ll::missing_features(abi) {
        let relevant = match f {
            // Without REFER, cross-directory renames are denied: safe.
            ll::Feature::Refer => false,
            // The mount view is read-only outside the write grants, so
            // truncate(2) fails there with EROFS whatever Landlock does.
            ll::Feature::Truncate => false,
            // The view's /dev holds only null, zero, full, random,
            // urandom, tty and a private devpts, and seccomp refuses
            // TIOCSTI/TIOCLINUX: what IOCTL_DEV would add is covered.
            ll::Feature::IoctlDev => false,
            ll::Feature::Tcp => ports,
            // Abstract sockets are per network namespace and signals
            // can't leave a PID namespace; only host mode needs scoping.
            ll::Feature::Scopes => p.network.mode.value == NetworkMode::Host,
            _ => true,
        };
        if relevant {
            let why = match kernel_abi {
                None => format!("{} (this kernel has no Landlock)", f.consequence()),
                Some(k) if k < f.min_abi() => {
                    format!("{} (kernel's Landlock ABI is {k})", f.consequence())
                }
                Some(_) => format!(
                    "{} ({ABI_OVERRIDE_ENV} limits the ABI to {abi})",
                    f.consequence()
                ),
            };
            gaps.push(Gap {
                what: f.describe().to_string(),
                why,
            });
        }
    }
}
