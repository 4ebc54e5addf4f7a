//! The plan as `explain` and `run --dry-run` print it for a person to read
//! (`explain --json` is the plan's `Serialize`).

use std::fmt::{self, Write as _};

use super::Plan;
use crate::profile::{self, NetworkMode};
use crate::sandbox::memfd;

impl Plan {
    /// The plan for a person to read.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = self.write_text(&mut o);
        o
    }

    fn write_text(&self, o: &mut String) -> fmt::Result {
        writeln!(
            o,
            "profile     {} ({})",
            self.profile.name,
            self.profile.sources.join(" <- ")
        )?;
        if !self.profile.description.is_empty() {
            writeln!(o, "            {}", self.profile.description)?;
        }
        writeln!(o, "sha256      {}", self.profile.sha256)?;
        writeln!(o, "workspace   {}", self.workspace.display())?;
        if !self.command.is_empty() {
            writeln!(o, "command     {}", self.command.join(" "))?;
        }
        writeln!(o, "cwd         {}", self.cwd.display())?;
        let u = &self.user;
        writeln!(
            o,
            "user        uid {} gid {}{}{} ({})",
            u.uid,
            u.gid,
            u.name
                .as_ref()
                .map(|n| format!(" [{n}]"))
                .unwrap_or_default(),
            if u.groups.is_empty() {
                String::new()
            } else {
                format!(" groups {:?}", u.groups)
            },
            u.spec
        )?;
        if let Some(h) = &self.home {
            let how = match h.kind {
                "private" => format!(
                    "private, persistent, read-write; {} at launch, owned by uid {}",
                    if h.path.exists() {
                        "checked"
                    } else {
                        "created"
                    },
                    u.uid
                ),
                "path" => "read-write".to_string(),
                _ => "the workspace".to_string(),
            };
            let overridden = if self.home_overridden {
                " (env.set.HOME sets the variable)"
            } else {
                ""
            };
            writeln!(o, "home        {} ({how}){overridden}", h.path.display())?;
            // A look now, for the reader: the init decides at launch.
            for f in &h.files {
                let now = if crate::sandbox::home::present(&h.path, &f.path) {
                    "present now: left as it is"
                } else {
                    "absent now: written at launch, mode 0600, as the agent"
                };
                writeln!(o, "  file      {} ({} bytes; {now})", f.path, f.text.len())?;
            }
        }
        let ll = &self.landlock;
        writeln!(
            o,
            "filesystem  Landlock ABI {} (kernel: {}); everything not listed is inaccessible",
            ll.abi,
            ll.kernel_abi
                .map(|a| a.to_string())
                .unwrap_or_else(|| "none".into())
        )?;
        for g in &self.filesystem.grants {
            let kind = if g.write {
                "write"
            } else if g.exec {
                "exec "
            } else {
                "read "
            };
            let via = if g.written != g.path {
                format!("{} -> {}", g.written.display(), g.path.display())
            } else {
                g.path.display().to_string()
            };
            writeln!(
                o,
                "  {kind} {via}{}",
                if g.implicit { "  (implicit)" } else { "" }
            )?;
            writeln!(o, "          {}", g.rights.join(" "))?;
        }
        if crate::sandbox::landlock::restricts_unix_connect(ll.abi) {
            writeln!(
                o,
                "  sockets the agent connects only to unix sockets its sandbox created and those a grant names (RESOLVE_UNIX)"
            )?;
        } else {
            writeln!(
                o,
                "  sockets unix sockets inside these grants can be connected to: Landlock ABI {} doesn't restrict connect(2) (ABI 9 does); sockets elsewhere aren't in the view",
                ll.abi
            )?;
        }
        match &self.filesystem.tmp {
            Some(t) => writeln!(
                o,
                "  tmp   private tmpfs on /tmp, {}, {}",
                profile::Size(t.size_bytes),
                if t.exec { "exec" } else { "noexec" }
            )?,
            None => writeln!(o, "  tmp   none")?,
        }
        for p in &self.filesystem.protect {
            writeln!(o, "  protect {} (read-only)", p.display())?;
        }
        let ch = &self.filesystem.changes;
        match &ch.state {
            None => writeln!(o, "  changes direct: writes to the workspace land at once")?,
            Some(base) => writeln!(
                o,
                "  changes review: the workspace is an overlay; writes wait in {}/ID/ for `confine commit`{}",
                base.display(),
                if ch.userxattr {
                    " (unprivileged: renaming a directory that existed before is EXDEV, tools copy instead)"
                } else {
                    ""
                }
            )?,
        }
        let n = &self.network;
        let mode = match n.mode {
            NetworkMode::None => "none: own network namespace, no interface up",
            NetworkMode::Loopback => "loopback: own network namespace, lo up",
            NetworkMode::Proxy => {
                "proxy: own network namespace, lo up; out only through confine's egress proxy"
            }
            NetworkMode::Host => "host: the host's network",
        };
        writeln!(o, "network     {mode}")?;
        for e in &n.enforced {
            writeln!(o, "            {e}")?;
        }
        for e in &n.not_restricted {
            writeln!(o, "            NOT restricted: {e}")?;
        }
        writeln!(
            o,
            "            socket families: {} (others EPERM)",
            n.socket_families.join(" ")
        )?;
        for r in &self.secrets {
            let provider = r
                .provider
                .map(|p| format!(", {} preset", p.name()))
                .unwrap_or_default();
            writeln!(
                o,
                "secret      {}: read from {} at launch{provider}; route {} -> {} (this route only, not in allow), header `{}`",
                r.name, r.source, r.route, r.upstream, r.header
            )?;
            let vars: Vec<String> = r
                .base_url_env
                .iter()
                .map(|v| format!("{v}=<route>"))
                .chain(r.key_env.iter().map(|v| format!("{v}=<placeholder>")))
                .collect();
            writeln!(
                o,
                "            agent gets {}; never the value",
                vars.join(" ")
            )?;
            if let Some(l) = &r.limits {
                let mut lim = Vec::new();
                if let Some(n) = l.requests_per_minute {
                    lim.push(format!("requests_per_minute {n}"));
                }
                if let Some(n) = l.tokens {
                    lim.push(format!("tokens {n}"));
                }
                if let Some(n) = l.tokens_per_hour {
                    lim.push(format!("tokens_per_hour {n}"));
                }
                if let Some(c) = &l.cost {
                    lim.push(format!("cost {c}"));
                }
                if !l.prices.is_empty() {
                    lim.push(format!("prices for {} models", l.prices.len()));
                }
                lim.push(format!("on_exhausted {:?}", l.on_exhausted).to_lowercase());
                writeln!(
                    o,
                    "            limits {} (counted by the proxy from the responses' usage)",
                    lim.join(", ")
                )?;
            }
        }
        let memfd = match self.memfd {
            memfd::Policy::NoExec => {
                "not executable: vm.memfd_noexec=1 in the sandbox's PID namespace, MFD_EXEC refused"
            }
            memfd::Policy::Unavailable => {
                "memfd_create fails with ENOSYS (vm.memfd_noexec can't be set here: Linux < 6.3, not root, or /proc/sys read-only)"
            }
            memfd::Policy::Unrestricted => "unrestricted (exec is granted on / anyway)",
        };
        writeln!(o, "memfd       {memfd}")?;
        let s = &self.seccomp;
        writeln!(
            o,
            "seccomp     {:?}: {} syscalls allowed (others ENOSYS, {} instructions); {} denied + argument rules -> {:?} ({} instructions)",
            s.arch,
            s.allow.len(),
            s.allowlist_instructions,
            s.deny.len(),
            s.on_violation,
            s.denylist_instructions
        )?;
        writeln!(o, "            denied: {}", s.deny.join(" "))?;
        match s.on_violation {
            crate::profile::OnViolation::Log => writeln!(
                o,
                "            on_violation log: these calls are ALLOWED (only logged, where the kernel's audit is on)"
            )?,
            crate::profile::OnViolation::Errno if s.notify.is_some() => writeln!(
                o,
                "            on_violation errno: EPERM, answered by the supervisor, which records each (`denied`)"
            )?,
            crate::profile::OnViolation::Kill => writeln!(
                o,
                "            on_violation kill: the kernel kills the process (SIGSYS); no `denied` record"
            )?,
            crate::profile::OnViolation::Errno => {}
        }
        for r in &s.argument_rules {
            writeln!(o, "            denied: {r}")?;
        }
        if !s.reallowed.is_empty() {
            writeln!(
                o,
                "            allowed by the profile: {}",
                s.reallowed.join(" ")
            )?;
        }
        writeln!(
            o,
            "caps        {}",
            if self.capabilities.is_empty() {
                "none".to_string()
            } else {
                self.capabilities.join(" ")
            }
        )?;
        writeln!(o, "namespaces  {}", self.namespaces.join(" "))?;
        writeln!(o, "env         {}", self.env_keys.join(" "))?;
        let l = &self.limits;
        let mut lim = Vec::new();
        if let Some(w) = l.wall_time_ms {
            lim.push(format!(
                "wall_time {} (grace {})",
                profile::Duration(w),
                profile::Duration(l.grace_ms)
            ));
        }
        if let Some(m) = l.memory_bytes {
            lim.push(format!("memory {}", profile::Size(m)));
        }
        if let Some(p) = l.pids {
            lim.push(format!("pids {p}"));
        }
        if let Some(c) = l.cpu_millicores {
            lim.push(format!("cpu {:.2} cores", c as f64 / 1000.0));
        }
        if let Some(f) = l.open_files {
            lim.push(format!("open_files {f}"));
        }
        if let Some(f) = l.file_size_bytes {
            lim.push(format!("file_size {}", profile::Size(f)));
        }
        lim.push(format!(
            "core_dumps {}",
            if l.core_dumps { "on" } else { "off" }
        ));
        writeln!(o, "limits      {}", lim.join(", "))?;
        if let Some(c) = l.checkpoint_every_ms {
            writeln!(
                o,
                "checkpoint  every {} of run time: frozen until approved",
                profile::Duration(c)
            )?;
        }
        let a = &self.approval;
        if l.checkpoint_every_ms.is_some() || a.command.is_some() || a.timeout_ms.is_some() {
            let by = match &a.command {
                Some(argv) => format!("hook {} or confine approve/deny", argv.join(" ")),
                None => "confine approve/deny".to_string(),
            };
            let until = match a.timeout_ms {
                Some(t) => format!(
                    "unanswered after {}: {}",
                    profile::Duration(t),
                    a.default.name()
                ),
                None => "waits until answered".to_string(),
            };
            writeln!(o, "approval    {by}; {until}")?;
        }
        writeln!(
            o,
            "audit       {}",
            self.audit_log
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into())
        )?;
        writeln!(o, "compat      {:?}", self.compat)?;
        for d in &self.dropped {
            writeln!(o, "DROPPED     {d}")?;
        }
        Ok(())
    }
}
