//! The YAML schema of one profile file, as written (version 1). Every section
//! denies unknown keys: a typo must not silently widen or narrow a sandbox.
//! Everything is optional here; defaults and `extends` are applied when files
//! are merged into a [`super::Profile`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::values::*;

/// The schema version; only 1 exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version;

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d) {
            Ok(1) => Ok(Version),
            Ok(n) => Err(serde::de::Error::custom(format!(
                "unsupported profile version {n}: this confine reads version 1"
            ))),
            Err(e) => Err(e),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
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
    pub env: Option<RawEnv>,
    pub limits: Option<RawLimits>,
    pub audit: Option<RawAudit>,
    pub compat: Option<Compat>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    pub read: Option<ListSpec<PathSpec>>,
    pub write: Option<ListSpec<PathSpec>>,
    pub exec: Option<ListSpec<PathSpec>>,
    pub tmp: Option<TmpSpec>,
    pub protect: Option<ListSpec<PathSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub mode: Option<NetworkMode>,
    pub connect_tcp: Option<ListSpec<Port>>,
    pub bind_tcp: Option<ListSpec<Port>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyscalls {
    pub allow: Option<ListSpec<SyscallName>>,
    pub deny: Option<ListSpec<SyscallName>>,
    pub on_violation: Option<OnViolation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnv {
    pub keep: Option<ListSpec<EnvKey>>,
    pub set: Option<BTreeMap<EnvKey, String>>,
}

#[derive(Debug, Default, Deserialize)]
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub log: Option<PathSpec>,
}
