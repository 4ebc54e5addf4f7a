//! The YAML schema of one profile file, as written (version 1). Every section
//! denies unknown keys: a typo must not silently widen or narrow a sandbox.
//! Everything is optional here; defaults and `extends` are applied when files
//! are merged into a [`super::Profile`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::values::*;

/// The schema version; only 1 exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version;

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Checked inside the visitor, so the error carries the value's
        // position (an error raised after deserializing lands on the map).
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Version;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`1`")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Version, E> {
                if n == 1 {
                    Ok(Version)
                } else {
                    Err(E::custom(format!(
                        "unsupported profile version {n}: this confine reads version 1"
                    )))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Version, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "unsupported profile version {n}: this confine reads version 1"
                    ))),
                }
            }
        }
        d.deserialize_u64(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProfile {
    pub version: Option<Version>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub extends: Option<String>,
    pub workspace: Option<PathSpec>,
    pub filesystem: Option<RawFilesystem>,
    pub network: Option<RawNetwork>,
    pub syscalls: Option<RawSyscalls>,
    pub capabilities: Option<ListSpec<CapName>>,
    pub user: Option<UserSpec>,
    pub home: Option<super::home::RawHome>,
    pub env: Option<RawEnv>,
    pub limits: Option<RawLimits>,
    pub approval: Option<super::approval::RawApproval>,
    pub audit: Option<RawAudit>,
    pub compat: Option<Compat>,
    pub secrets: Option<super::secrets::SecretList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilesystem {
    pub read: Option<ListSpec<PathSpec>>,
    pub write: Option<ListSpec<PathSpec>>,
    pub exec: Option<ListSpec<PathSpec>>,
    pub tmp: Option<TmpSpec>,
    pub protect: Option<ListSpec<PathSpec>>,
    pub changes: Option<Changes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetwork {
    pub mode: Option<NetworkMode>,
    pub connect_tcp: Option<PortList>,
    pub bind_tcp: Option<PortList>,
    pub socket_families: Option<ListSpec<SocketFamily>>,
    pub allow: Option<ListSpec<super::egress::AllowEntry>>,
    pub deny: Option<ListSpec<super::egress::DenyEntry>>,
    pub hosts: Option<super::egress::Pins>,
    pub budget: Option<super::egress::RawBudget>,
    pub ask: Option<ListSpec<super::egress::AllowEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyscalls {
    pub allow: Option<ListSpec<SyscallName>>,
    pub deny: Option<ListSpec<SyscallName>>,
    pub on_violation: Option<OnViolation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnv {
    pub keep: Option<ListSpec<EnvPattern>>,
    pub set: Option<BTreeMap<EnvKey, String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub wall_time: Option<Duration>,
    pub grace: Option<Duration>,
    pub memory: Option<Size>,
    pub pids: Option<Count>,
    pub cpu: Option<Cores>,
    pub open_files: Option<Count>,
    pub file_size: Option<Size>,
    pub core_dumps: Option<bool>,
    pub checkpoint_every: Option<super::approval::Period>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub log: Option<PathSpec>,
}
