//! `limits.checkpoint_every` and `approval:` (DESIGN.md §2, §12): when the
//! sandbox stops to ask, and who answers. Each value validates in its
//! `Deserialize`, so serde_yaml reports a bad one with its line and column.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::values::Duration;

/// The shortest `limits.checkpoint_every`: a sandbox that asks more often
/// than this would do little but wait.
pub const MIN_PERIOD_MS: u64 = 1000;
/// Bounds on `approval.command`.
const MAX_ARGS: usize = 64;
const MAX_ARG: usize = 4096;

/// `limits.checkpoint_every`: run time between checkpoints, at least 1s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period(pub Duration);

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d: Duration = s.parse()?;
        if d.0 < MIN_PERIOD_MS {
            return Err(format!(
                "checkpoint period `{s}` is shorter than {}: the sandbox would do little but wait",
                Duration(MIN_PERIOD_MS)
            ));
        }
        Ok(Period(d))
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Period;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration of at least 1s, such as 30m")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Period, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `approval.command`: the hook, a path or an argv whose first word is an
/// absolute path (no `PATH` search: the operator's command is the one the
/// profile names, whatever the environment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookCommand(pub Vec<String>);

fn check_argv(argv: Vec<String>) -> Result<HookCommand, String> {
    let Some(first) = argv.first() else {
        return Err("an empty command: write a path, or [PATH, ARG...]".to_string());
    };
    if !first.starts_with('/') {
        return Err(format!(
            "`{first}` is not an absolute path: the hook is run without a PATH search"
        ));
    }
    if argv.len() > MAX_ARGS {
        return Err(format!("more than {MAX_ARGS} words"));
    }
    if let Some(a) = argv.iter().find(|a| a.len() > MAX_ARG || a.contains('\0')) {
        return Err(format!(
            "a word longer than {MAX_ARG} bytes or holding a NUL: {:?}",
            a.get(..40).unwrap_or(a)
        ));
    }
    Ok(HookCommand(argv))
}

impl<'de> Deserialize<'de> for HookCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HookCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an absolute path, or a list [PATH, ARG...]")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HookCommand, E> {
                check_argv(vec![s.to_string()]).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HookCommand, A::Error> {
                let mut argv = Vec::new();
                while let Some(a) = seq.next_element::<String>()? {
                    if argv.len() == MAX_ARGS {
                        return Err(de::Error::custom(format!("more than {MAX_ARGS} words")));
                    }
                    argv.push(a);
                }
                check_argv(argv).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// What an unanswered request comes to at `approval.timeout`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Deny,
    Allow,
}

impl OnTimeout {
    pub fn name(self) -> &'static str {
        match self {
            OnTimeout::Deny => "deny",
            OnTimeout::Allow => "allow",
        }
    }
}

/// `approval:` as written; merged key by key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    pub command: Option<HookCommand>,
    pub timeout: Option<Duration>,
    pub default: Option<OnTimeout>,
}

impl RawApproval {
    /// A child's keys over its parent's.
    pub(crate) fn merge(&mut self, child: RawApproval) {
        self.command = child.command.or(self.command.take());
        self.timeout = child.timeout.or(self.timeout);
        self.default = child.default.or(self.default);
    }
}
