//! Seccomp planning: the profile's `syscalls` checked, the allowlist (filter
//! A) and denylist with argument rules (filter B) compiled, and the argument
//! rules described for `explain`.

use serde::Serialize;

use super::{net, refused, PlanError};
use crate::profile::{self, Profile, Sourced};
use crate::sandbox::{memfd, seccomp};
use crate::syscalls::{self, Arch};

#[derive(Clone, Debug, Serialize)]
pub struct SeccompPlan {
    pub arch: Arch,
    /// Allowlisted syscalls (filter A), by name in name order; anything
    /// else fails with ENOSYS.
    pub allow: Vec<&'static str>,
    /// Denied syscalls (filter B), by name in name order.
    pub deny: Vec<&'static str>,
    /// Denied by argument (filter B).
    pub argument_rules: Vec<String>,
    /// Denylisted calls the profile allows again (`syscalls.allow`).
    pub reallowed: Vec<&'static str>,
    pub on_violation: profile::OnViolation,
    pub allowlist_instructions: usize,
    pub denylist_instructions: usize,
    #[serde(skip)]
    pub(crate) filters: seccomp::Filters,
    /// Under `on_violation: errno`, the same two filters reporting their
    /// denials: A also allows the denylisted calls, so that B's
    /// SECCOMP_RET_USER_NOTIF (weaker than A's ENOSYS) is their verdict,
    /// and the supervisor answers EPERM (DESIGN-NOTES, "denials"). The
    /// init falls back to `filters` when the kernel refuses a listener.
    #[serde(skip)]
    pub(crate) notify: Option<seccomp::Filters>,
    /// `confine learn`: `notify` holds the learning filters
    /// ([`seccomp::compile_learn`]), and a run without a listener is
    /// refused rather than run unobserved.
    #[serde(skip)]
    pub(crate) learning: bool,
    #[serde(skip)]
    rules: seccomp::Rules,
    #[serde(skip)]
    numbers: (Vec<u32>, Vec<u32>),
}

impl SeccompPlan {
    /// Turns this plan into a learning one (`confine learn`, DESIGN-NOTES
    /// 54): the same allowlist, denylist and argument rules, with the
    /// observed calls and every call outside the allowlist reported to the
    /// supervisor.
    ///
    /// # Errors
    /// The compiler's, as for the plan itself.
    pub fn learn(&mut self) -> Result<(), PlanError> {
        let (allow, deny) = &self.numbers;
        self.notify = Some(
            seccomp::compile_learn(self.arch, allow, deny, &self.rules)
                .map_err(|e| refused("seccomp", "syscalls", e.to_string()))?,
        );
        self.learning = true;
        Ok(())
    }

    /// The allowlist's and the denylist's numbers (learning's supervisor
    /// tells a call outside the allowlist from a denied one).
    pub(crate) fn numbers(&self) -> &(Vec<u32>, Vec<u32>) {
        &self.numbers
    }
}

/// Refuses a `syscalls.allow` entry for a call that stays denied whatever
/// the profile says (`clone3`, the denylist but for `ALLOWABLE_DENY`).
pub(super) fn check_syscalls(p: &Profile) -> Result<(), PlanError> {
    for (i, s) in p.syscalls.allow.iter().enumerate() {
        if s.value.0 == "clone3" {
            return Err(s
                .error(
                    &format!("syscalls.allow[{i}]"),
                    "`clone3` always fails with ENOSYS: its flags live in memory seccomp can't read, so programs must fall back to clone, whose flags are checked",
                )
                .into());
        }
        let name = s.value.0.as_str();
        if syscalls::BASELINE_DENY.contains(&name) && !syscalls::ALLOWABLE_DENY.contains(&name) {
            return Err(s
                .error(
                    &format!("syscalls.allow[{i}]"),
                    format!(
                        "`{name}` is always denied: {}; of the denylist only {} can be allowed (see docs/PROFILE.md, Syscalls)",
                        syscalls::deny_reason(name),
                        syscalls::ALLOWABLE_DENY.join(", ")
                    ),
                )
                .into());
        }
    }
    Ok(())
}

/// Both filters for the profile on this architecture, and how `explain`
/// describes them.
pub(super) fn plan(p: &Profile, memfd: memfd::Policy) -> Result<SeccompPlan, PlanError> {
    let arch = Arch::native();
    // Numbers, not names: a name missing on this architecture has none
    // and is skipped, and the baseline comes resolved at compile time.
    let number = |s: &Sourced<profile::SyscallName>| syscalls::number(arch, &s.value.0);
    let mut allow = Numbers::default();
    let mut deny = Numbers::default();
    syscalls::baseline_allow(arch).for_each(|nr| allow.insert(nr));
    p.syscalls
        .allow
        .iter()
        .filter_map(number)
        .for_each(|nr| allow.insert(nr));
    for nr in p.syscalls.deny.iter().filter_map(number) {
        allow.remove(nr);
        deny.insert(nr);
    }
    // The denylisted calls the profile may, and does, allow again.
    let reallowed: Vec<&'static str> = syscalls::ALLOWABLE_DENY
        .iter()
        .copied()
        .filter(|name| p.syscalls.allow.iter().any(|s| s.value.0 == *name))
        .filter(|name| !p.syscalls.deny.iter().any(|s| s.value.0 == *name))
        .collect();
    let reallowed_nrs: Vec<u32> = reallowed
        .iter()
        .filter_map(|name| syscalls::number(arch, name))
        .collect();
    syscalls::baseline_deny(arch)
        .filter(|nr| !reallowed_nrs.contains(nr))
        .for_each(|nr| deny.insert(nr));
    // `log` means "allow, and have the kernel log it": the denylist's
    // SECCOMP_RET_LOG only lets a call through if the allowlist does too.
    if p.syscalls.on_violation == profile::OnViolation::Log {
        deny.iter().for_each(|nr| allow.insert(nr));
    }
    let on_violation = match p.syscalls.on_violation {
        profile::OnViolation::Errno => seccomp::OnViolation::Errno,
        profile::OnViolation::Kill => seccomp::OnViolation::Kill,
        profile::OnViolation::Log => seccomp::OnViolation::Log,
    };
    let allow_nrs: Vec<u32> = allow.iter().collect();
    let deny_nrs: Vec<u32> = deny.iter().collect();
    let n = &p.network;
    let rules = seccomp::Rules {
        socket_families: n.socket_families.iter().map(|f| f.value.0).collect(),
        tcp_port_rules: net::tcp_ports_restricted(p),
        file_size_limit: p.limits.file_size.is_some(),
        memfd: match memfd {
            memfd::Policy::NoExec => seccomp::Memfd::NoExecFlag,
            memfd::Policy::Unavailable => seccomp::Memfd::Unavailable,
            memfd::Policy::Unrestricted => seccomp::Memfd::Unrestricted,
        },
    };
    let filters = seccomp::compile_with(arch, &allow_nrs, &deny_nrs, on_violation, &rules)
        .map_err(|e| refused("seccomp", "syscalls", e.to_string()))?;
    let notify = if p.syscalls.on_violation == profile::OnViolation::Errno {
        let mut a = allow_nrs.clone();
        a.extend_from_slice(&deny_nrs);
        Some(
            seccomp::compile_with(arch, &a, &deny_nrs, seccomp::OnViolation::Notify, &rules)
                .map_err(|e| refused("seccomp", "syscalls", e.to_string()))?,
        )
    } else {
        None
    };
    // Described from the same table the compiler reads.
    let argument_rules = seccomp::describe_rules(&rules);
    Ok(SeccompPlan {
        arch,
        allowlist_instructions: filters.allowlist.len(),
        denylist_instructions: filters.denylist.len(),
        allow: allow.names(arch),
        deny: deny.names(arch),
        argument_rules,
        reallowed,
        on_violation: p.syscalls.on_violation,
        filters,
        notify,
        learning: false,
        rules,
        numbers: (allow_nrs, deny_nrs),
    })
}

/// A set of syscall numbers, as a table indexed by number: sorted and
/// without duplicates by construction, and a membership test per name when
/// listing them in name order. The numbers come from our own tables (the
/// highest is in the 400s), so the table stays small.
#[derive(Default)]
struct Numbers(Vec<bool>);

impl Numbers {
    fn insert(&mut self, nr: u32) {
        let i = nr as usize;
        if i >= self.0.len() {
            self.0.resize(i + 1, false);
        }
        self.0[i] = true;
    }

    fn remove(&mut self, nr: u32) {
        if let Some(member) = self.0.get_mut(nr as usize) {
            *member = false;
        }
    }

    fn contains(&self, nr: u32) -> bool {
        self.0.get(nr as usize).copied().unwrap_or(false)
    }

    /// Ascending.
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.0.len() as u32).filter(|&nr| self.0[nr as usize])
    }

    /// The names on `arch`, in name order, as `explain` lists them.
    fn names(&self, arch: Arch) -> Vec<&'static str> {
        syscalls::table_by_name(arch)
            .iter()
            .filter(|&&(_, nr)| self.contains(nr))
            .map(|&(name, _)| name)
            .collect()
    }
}
