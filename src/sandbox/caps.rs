//! Capabilities and securebits: the agent holds exactly the capabilities the
//! profile keeps (none by default), can't regain any, and doesn't get root's
//! capabilities back by being or becoming uid 0 (DESIGN.md §4 step 10, §6).
//!
//! [`Caps::new`] runs before the fork (it reads nothing and validates the kept
//! set against `cap_last_cap`, which [`read_last_cap`] reads from /proc, also
//! before the fork). After the fork the launcher calls, in this order:
//!
//! 1. [`Caps::drop_bounding`]: every capability up to `cap_last_cap` that isn't
//!    kept leaves the bounding set, so no execve (setuid or file capabilities)
//!    can bring it back.
//! 2. [`Caps::raise_ambient`]: kept capabilities go into the inheritable and
//!    ambient sets, the only way they survive execve for a process that isn't
//!    root. This comes *before* the securebits lock, one reordering against the
//!    list in DESIGN.md §4 step 10: once `SECBIT_NO_CAP_AMBIENT_RAISE` is set
//!    and locked nothing can be raised into the ambient set any more.
//! 3. [`Caps::lock_securebits`]: `NOROOT` (uid 0 gets no capabilities at
//!    execve), `NO_SETUID_FIXUP` (uid changes leave the capability sets alone),
//!    `KEEP_CAPS` and `NO_CAP_AMBIENT_RAISE`, each with its `_LOCKED` bit, so the
//!    agent can't undo them.
//! 4. the uid/gid switch, [`crate::sandbox::user::switch`]. Because of
//!    `NO_SETUID_FIXUP` it doesn't touch the capability sets, hence step 5.
//! 5. [`Caps::clear`]: permitted, effective and inheritable become exactly the
//!    kept set, the ambient set loses everything else.
//! 6. [`Caps::verify`]: every capability that isn't kept is absent from the
//!    bounding, ambient, permitted, effective and inheritable sets, and every
//!    kept one is in the ambient set (else it would be lost at execve).
//!
//! After execve, with `NOROOT` and no file capabilities, the agent's permitted
//! and effective sets are its ambient set: the kept capabilities, nothing else,
//! whatever its uid.
//!
//! The post-fork steps are raw `prctl`/`capget`/`capset` calls on fixed-size
//! data: nothing allocates (the `caps` crate's set operations build `HashSet`s
//! and format error strings, so only its [`Capability`] type is used here).
//! Capabilities newer than that type (above `CAP_CHECKPOINT_RESTORE`) are still
//! dropped, by number.

use std::fmt;

use ::caps::Capability;
use nix::errno::Errno;

/// The capabilities known by name, with their canonical spelling.
pub(crate) const CAPABILITIES: [(&str, Capability); 41] = [
    ("CAP_CHOWN", Capability::CAP_CHOWN),
    ("CAP_DAC_OVERRIDE", Capability::CAP_DAC_OVERRIDE),
    ("CAP_DAC_READ_SEARCH", Capability::CAP_DAC_READ_SEARCH),
    ("CAP_FOWNER", Capability::CAP_FOWNER),
    ("CAP_FSETID", Capability::CAP_FSETID),
    ("CAP_KILL", Capability::CAP_KILL),
    ("CAP_SETGID", Capability::CAP_SETGID),
    ("CAP_SETUID", Capability::CAP_SETUID),
    ("CAP_SETPCAP", Capability::CAP_SETPCAP),
    ("CAP_LINUX_IMMUTABLE", Capability::CAP_LINUX_IMMUTABLE),
    ("CAP_NET_BIND_SERVICE", Capability::CAP_NET_BIND_SERVICE),
    ("CAP_NET_BROADCAST", Capability::CAP_NET_BROADCAST),
    ("CAP_NET_ADMIN", Capability::CAP_NET_ADMIN),
    ("CAP_NET_RAW", Capability::CAP_NET_RAW),
    ("CAP_IPC_LOCK", Capability::CAP_IPC_LOCK),
    ("CAP_IPC_OWNER", Capability::CAP_IPC_OWNER),
    ("CAP_SYS_MODULE", Capability::CAP_SYS_MODULE),
    ("CAP_SYS_RAWIO", Capability::CAP_SYS_RAWIO),
    ("CAP_SYS_CHROOT", Capability::CAP_SYS_CHROOT),
    ("CAP_SYS_PTRACE", Capability::CAP_SYS_PTRACE),
    ("CAP_SYS_PACCT", Capability::CAP_SYS_PACCT),
    ("CAP_SYS_ADMIN", Capability::CAP_SYS_ADMIN),
    ("CAP_SYS_BOOT", Capability::CAP_SYS_BOOT),
    ("CAP_SYS_NICE", Capability::CAP_SYS_NICE),
    ("CAP_SYS_RESOURCE", Capability::CAP_SYS_RESOURCE),
    ("CAP_SYS_TIME", Capability::CAP_SYS_TIME),
    ("CAP_SYS_TTY_CONFIG", Capability::CAP_SYS_TTY_CONFIG),
    ("CAP_MKNOD", Capability::CAP_MKNOD),
    ("CAP_LEASE", Capability::CAP_LEASE),
    ("CAP_AUDIT_WRITE", Capability::CAP_AUDIT_WRITE),
    ("CAP_AUDIT_CONTROL", Capability::CAP_AUDIT_CONTROL),
    ("CAP_SETFCAP", Capability::CAP_SETFCAP),
    ("CAP_MAC_OVERRIDE", Capability::CAP_MAC_OVERRIDE),
    ("CAP_MAC_ADMIN", Capability::CAP_MAC_ADMIN),
    ("CAP_SYSLOG", Capability::CAP_SYSLOG),
    ("CAP_WAKE_ALARM", Capability::CAP_WAKE_ALARM),
    ("CAP_BLOCK_SUSPEND", Capability::CAP_BLOCK_SUSPEND),
    ("CAP_AUDIT_READ", Capability::CAP_AUDIT_READ),
    ("CAP_PERFMON", Capability::CAP_PERFMON),
    ("CAP_BPF", Capability::CAP_BPF),
    ("CAP_CHECKPOINT_RESTORE", Capability::CAP_CHECKPOINT_RESTORE),
];

/// A capability by number, shown by name where it has one (`CAP_SYS_ADMIN`,
/// or `capability 41` for one newer than the names this crate knows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cap(pub u8);

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match CAPABILITIES.iter().find(|(_, c)| c.index() == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "capability {}", self.0),
        }
    }
}

/// The step of the sequence an error happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// 1: clearing the bounding set.
    Bounding,
    /// 2: raising kept capabilities into the ambient set.
    Ambient,
    /// 3: locking the securebits.
    Securebits,
    /// 5: clearing the capability sets after the uid switch.
    Clear,
    /// 6: verifying.
    Verify,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Bounding => "clearing the bounding set",
            Step::Ambient => "raising kept capabilities into the ambient set",
            Step::Securebits => "locking securebits",
            Step::Clear => "clearing the capability sets",
            Step::Verify => "verifying capabilities",
        })
    }
}

/// What went wrong, naming the step and the capability.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CapError {
    #[error("reading /proc/sys/kernel/cap_last_cap: {0}")]
    LastCap(String),
    #[error("{cap} is not known to this kernel (cap_last_cap is {last_cap})")]
    UnknownToKernel { cap: Cap, last_cap: u8 },
    #[error("{step}: {what} {cap}: {errno}")]
    Cap {
        step: Step,
        what: &'static str,
        cap: Cap,
        errno: Errno,
    },
    #[error("{step}: {what}: {errno}")]
    Call {
        step: Step,
        what: &'static str,
        errno: Errno,
    },
    #[error("{step}: {cap} is not in the permitted set, so it can't be kept")]
    NotPermitted { step: Step, cap: Cap },
    #[error("{step}: {cap} is still in the {set} set")]
    Left {
        step: Step,
        cap: Cap,
        set: &'static str,
    },
    #[error("{step}: kept {cap} is not in the ambient set, execve would lose it")]
    KeptNotAmbient { step: Step, cap: Cap },
    #[error("{step}: securebits are {found:#x}, {wanted:#x} must all be set")]
    Securebits { step: Step, found: u32, wanted: u32 },
}

/// The securebits [`Caps::lock_securebits`] sets, each with its lock.
pub(crate) const SECUREBITS: u32 = (libc::SECBIT_NOROOT
    | libc::SECBIT_NOROOT_LOCKED
    | libc::SECBIT_NO_SETUID_FIXUP
    | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
    | libc::SECBIT_KEEP_CAPS
    | libc::SECBIT_KEEP_CAPS_LOCKED
    | libc::SECBIT_NO_CAP_AMBIENT_RAISE
    | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) as u32;

/// Reads `/proc/sys/kernel/cap_last_cap`, the highest capability number the
/// running kernel knows. Call it before the fork (the init's /proc is its own).
///
/// # Errors
///
/// The file can't be read or parsed, or names a capability above 63 (the
/// capability sets are 64 bits wide).
pub(crate) fn read_last_cap() -> Result<u8, CapError> {
    let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .map_err(|e| CapError::LastCap(e.to_string()))?;
    match text.trim().parse::<u8>() {
        Ok(n) if n < 64 => Ok(n),
        _ => Err(CapError::LastCap(format!(
            "unexpected value {:?}",
            text.trim()
        ))),
    }
}

/// The kept capabilities and the kernel's `cap_last_cap`: everything the
/// post-fork steps need, as two integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caps {
    keep: u64,
    last_cap: u8,
}

const CAP_HEADER_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three POSIX sets, 64 bits each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sets {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

fn capget() -> Result<Sets, Errno> {
    let mut header = CapHeader {
        version: CAP_HEADER_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 takes a header and an array of two data structs, both
    // valid for writes for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if ret != 0 {
        return Err(Errno::last());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Sets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// This process's effective capability set, as a bit mask by number; for
/// explaining a refusal (the launch itself never branches on it).
pub(crate) fn effective() -> Option<u64> {
    capget().ok().map(|s| s.effective)
}

fn capset(sets: Sets) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAP_HEADER_VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    let (i0, i1) = split(sets.inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: version 3 header and two data structs, valid for the call; the
    // kernel only reads the data.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if ret != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> Result<i32, Errno> {
    // SAFETY: only used with options whose arguments are plain integers
    // (PR_CAPBSET_*, PR_CAP_AMBIENT, PR_{GET,SET}_SECUREBITS).
    let ret = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// 1 when `cap` is in the ambient set, 0 when not.
fn ambient_is_set(step: Step, cap: u8) -> Result<i32, CapError> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
        cap.into(),
    )
    .map_err(|errno| CapError::Cap {
        step,
        what: "PR_CAP_AMBIENT_IS_SET",
        cap: Cap(cap),
        errno,
    })
}

impl Caps {
    /// The plan for keeping `keep` (usually empty) on a kernel whose highest
    /// capability is `last_cap` (from [`read_last_cap`]). Pure; call it before
    /// the fork.
    ///
    /// # Errors
    ///
    /// A kept capability the kernel doesn't know, or a `last_cap` above 63.
    pub(crate) fn new(keep: &[Capability], last_cap: u8) -> Result<Caps, CapError> {
        if last_cap > 63 {
            return Err(CapError::LastCap(format!("{last_cap} is above 63")));
        }
        let mut mask = 0u64;
        for cap in keep {
            if cap.index() > last_cap {
                return Err(CapError::UnknownToKernel {
                    cap: Cap(cap.index()),
                    last_cap,
                });
            }
            mask |= cap.bitmask();
        }
        Ok(Caps {
            keep: mask,
            last_cap,
        })
    }

    /// The kept capabilities as a bit mask (bit n = capability n).
    #[cfg(test)]
    fn keep_mask(&self) -> u64 {
        self.keep
    }

    fn kept(&self, cap: u8) -> bool {
        self.keep & (1u64 << cap) != 0
    }

    /// Step 1: drops every capability up to `cap_last_cap` that isn't kept
    /// from the bounding set. Needs `CAP_SETPCAP` in the effective set.
    ///
    /// # Errors
    ///
    /// `PR_CAPBSET_DROP` failing, naming the capability.
    pub(crate) fn drop_bounding(&self) -> Result<(), CapError> {
        for cap in 0..=self.last_cap {
            if !self.kept(cap) {
                prctl(libc::PR_CAPBSET_DROP, cap.into(), 0).map_err(|errno| CapError::Cap {
                    step: Step::Bounding,
                    what: "dropping",
                    cap: Cap(cap),
                    errno,
                })?;
            }
        }
        Ok(())
    }

    /// Step 2: sets the inheritable set to the kept capabilities and raises
    /// each into the ambient set. Does nothing when nothing is kept. Must come
    /// before [`Caps::lock_securebits`].
    ///
    /// # Errors
    ///
    /// A kept capability this process doesn't hold (permitted), or `capset` /
    /// `PR_CAP_AMBIENT_RAISE` failing.
    pub(crate) fn raise_ambient(&self) -> Result<(), CapError> {
        if self.keep == 0 {
            return Ok(());
        }
        let step = Step::Ambient;
        let sets = capget().map_err(|errno| CapError::Call {
            step,
            what: "capget",
            errno,
        })?;
        let missing = self.keep & !sets.permitted;
        if missing != 0 {
            return Err(CapError::NotPermitted {
                step,
                cap: Cap(missing.trailing_zeros() as u8),
            });
        }
        capset(Sets {
            inheritable: self.keep,
            ..sets
        })
        .map_err(|errno| CapError::Call {
            step,
            what: "setting the inheritable set",
            errno,
        })?;
        for cap in 0..=self.last_cap {
            if self.kept(cap) {
                prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap.into(),
                )
                .map_err(|errno| CapError::Cap {
                    step,
                    what: "raising",
                    cap: Cap(cap),
                    errno,
                })?;
            }
        }
        Ok(())
    }

    /// Step 3: sets and locks [`SECUREBITS`] (bits already set stay set).
    /// Needs `CAP_SETPCAP` in the effective set.
    ///
    /// # Errors
    ///
    /// `PR_SET_SECUREBITS` failing, or the bits not all set afterwards.
    pub(crate) fn lock_securebits(&self) -> Result<(), CapError> {
        let step = Step::Securebits;
        let current = prctl(libc::PR_GET_SECUREBITS, 0, 0).map_err(|errno| CapError::Call {
            step,
            what: "PR_GET_SECUREBITS",
            errno,
        })? as u32;
        prctl(libc::PR_SET_SECUREBITS, (current | SECUREBITS).into(), 0).map_err(|errno| {
            CapError::Call {
                step,
                what: "PR_SET_SECUREBITS",
                errno,
            }
        })?;
        check_securebits(step)
    }

    /// Step 5, after the uid switch: permitted, effective and inheritable
    /// become exactly the kept set; the ambient set loses everything else
    /// (lowering is allowed under `NO_CAP_AMBIENT_RAISE`).
    ///
    /// # Errors
    ///
    /// `capset` or a `PR_CAP_AMBIENT` call failing.
    pub(crate) fn clear(&self) -> Result<(), CapError> {
        let step = Step::Clear;
        let sets = Sets {
            effective: self.keep,
            permitted: self.keep,
            inheritable: self.keep,
        };
        capset(sets).map_err(|errno| CapError::Call {
            step,
            what: "capset",
            errno,
        })?;
        if self.keep == 0 {
            prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
            )
            .map_err(|errno| CapError::Call {
                step,
                what: "PR_CAP_AMBIENT_CLEAR_ALL",
                errno,
            })?;
            return Ok(());
        }
        for cap in 0..=self.last_cap {
            if !self.kept(cap) {
                prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_LOWER as libc::c_ulong,
                    cap.into(),
                )
                .map_err(|errno| CapError::Cap {
                    step,
                    what: "lowering",
                    cap: Cap(cap),
                    errno,
                })?;
            }
        }
        Ok(())
    }

    /// Step 6: checks that no capability that isn't kept is left in the
    /// bounding, ambient, permitted, effective or inheritable set, that every
    /// kept one is ambient, and that the securebits are locked.
    ///
    /// # Errors
    ///
    /// The first capability (or securebit) found where it mustn't be.
    pub(crate) fn verify(&self) -> Result<(), CapError> {
        let step = Step::Verify;
        check_securebits(step)?;
        for cap in 0..=self.last_cap {
            let bounding =
                prctl(libc::PR_CAPBSET_READ, cap.into(), 0).map_err(|errno| CapError::Cap {
                    step,
                    what: "PR_CAPBSET_READ",
                    cap: Cap(cap),
                    errno,
                })?;
            let ambient = ambient_is_set(step, cap)?;
            if self.kept(cap) {
                if ambient != 1 {
                    return Err(CapError::KeptNotAmbient {
                        step,
                        cap: Cap(cap),
                    });
                }
            } else if bounding != 0 {
                return Err(CapError::Left {
                    step,
                    cap: Cap(cap),
                    set: "bounding",
                });
            } else if ambient != 0 {
                return Err(CapError::Left {
                    step,
                    cap: Cap(cap),
                    set: "ambient",
                });
            }
        }
        self.verify_sets(step)
    }

    /// For a process that can't clear its bounding set or lock securebits
    /// (no `CAP_SETPCAP`, e.g. the egress proxy of an unprivileged
    /// caller): step 6 without those two, every capability that isn't
    /// kept is absent from the ambient, permitted, effective and
    /// inheritable sets.
    ///
    /// # Errors
    ///
    /// The first capability found where it mustn't be.
    pub(crate) fn verify_held(&self) -> Result<(), CapError> {
        let step = Step::Verify;
        for cap in 0..=self.last_cap {
            let ambient = ambient_is_set(step, cap)?;
            if !self.kept(cap) && ambient != 0 {
                return Err(CapError::Left {
                    step,
                    cap: Cap(cap),
                    set: "ambient",
                });
            }
        }
        self.verify_sets(step)
    }

    fn verify_sets(&self, step: Step) -> Result<(), CapError> {
        let sets = capget().map_err(|errno| CapError::Call {
            step,
            what: "capget",
            errno,
        })?;
        for (set, bits) in [
            ("permitted", sets.permitted),
            ("effective", sets.effective),
            ("inheritable", sets.inheritable),
        ] {
            let extra = bits & !self.keep;
            if extra != 0 {
                return Err(CapError::Left {
                    step,
                    cap: Cap(extra.trailing_zeros() as u8),
                    set,
                });
            }
        }
        Ok(())
    }
}

fn check_securebits(step: Step) -> Result<(), CapError> {
    let found = prctl(libc::PR_GET_SECUREBITS, 0, 0).map_err(|errno| CapError::Call {
        step,
        what: "PR_GET_SECUREBITS",
        errno,
    })? as u32;
    if found & SECUREBITS != SECUREBITS {
        return Err(CapError::Securebits {
            step,
            found,
            wanted: SECUREBITS,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::user::{self, Ids};
    use std::ffi::CString;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn table_matches_the_caps_crate() {
        assert_eq!(CAPABILITIES.len(), ::caps::all().len());
        for (i, (name, cap)) in CAPABILITIES.iter().enumerate() {
            assert_eq!(cap.index() as usize, i);
            assert_eq!(cap.to_string(), *name);
        }
    }

    #[test]
    fn cap_names() {
        assert_eq!(Cap(21).to_string(), "CAP_SYS_ADMIN");
        assert_eq!(Cap(41).to_string(), "capability 41");
        let err = CapError::Left {
            step: Step::Verify,
            cap: Cap(21),
            set: "bounding",
        };
        assert_eq!(
            err.to_string(),
            "verifying capabilities: CAP_SYS_ADMIN is still in the bounding set"
        );
    }

    #[test]
    fn new_validates_against_the_kernel() {
        let caps = Caps::new(
            &[Capability::CAP_NET_BIND_SERVICE, Capability::CAP_KILL],
            40,
        )
        .unwrap();
        assert_eq!(caps.keep_mask(), (1 << 10) | (1 << 5));
        assert!(matches!(
            Caps::new(&[Capability::CAP_CHECKPOINT_RESTORE], 37),
            Err(CapError::UnknownToKernel { last_cap: 37, .. })
        ));
        assert!(Caps::new(&[], 64).is_err());
        let last = read_last_cap().unwrap();
        assert!(last >= 36, "cap_last_cap {last}");
    }

    /// Runs steps 1–6 (with a switch to nobody) in a forked child, then execs
    /// `cat /proc/self/status` and returns its output. The child allocates
    /// nothing after the fork.
    fn run_sequence(keep: &[Capability]) -> Result<String, String> {
        let caps = Caps::new(keep, read_last_cap().unwrap()).unwrap();
        let ids = Ids {
            uid: 65534,
            gid: 65534,
            groups: vec![],
            name: None,
            keep_groups: false,
        };
        let cat = CString::new("/bin/cat").unwrap();
        let status = CString::new("/proc/self/status").unwrap();
        let argv = [cat.as_ptr(), status.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        let (read_end, write_end) = nix::unistd::pipe().unwrap();

        // SAFETY: the child only makes raw syscalls on data built above, then
        // execs or _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    if caps.drop_bounding().is_err() {
                        return 11;
                    }
                    if caps.raise_ambient().is_err() {
                        return 12;
                    }
                    if caps.lock_securebits().is_err() {
                        return 13;
                    }
                    if user::switch(&ids).is_err() {
                        return 14;
                    }
                    if caps.clear().is_err() {
                        return 15;
                    }
                    if caps.verify().is_err() {
                        return 16;
                    }
                    // SAFETY: dup2 onto stdout, then execve with NULL-terminated
                    // arrays of pointers into CStrings that outlive the call.
                    unsafe {
                        if libc::dup2(write_end.as_raw_fd(), 1) < 0 {
                            return 17;
                        }
                        libc::execve(cat.as_ptr(), argv.as_ptr(), envp.as_ptr());
                    }
                    18
                })();
                // SAFETY: leave the forked child without running the harness.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(write_end);
                let mut out = String::new();
                std::fs::File::from(read_end)
                    .read_to_string(&mut out)
                    .unwrap();
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(out),
                    nix::sys::wait::WaitStatus::Exited(_, code) => Err(format!(
                        "child failed at: {}",
                        match code {
                            11 => "1, drop_bounding",
                            12 => "2, raise_ambient",
                            13 => "3, lock_securebits",
                            14 => "4, user::switch",
                            15 => "5, clear",
                            16 => "6, verify",
                            17 => "dup2",
                            _ => "execve",
                        }
                    )),
                    other => Err(format!("child: {other:?}")),
                }
            }
        }
    }

    fn field<'a>(status: &'a str, key: &str) -> &'a str {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim))
            .unwrap_or_else(|| panic!("no {key} in {status}"))
    }

    fn privileged() -> bool {
        let require = std::env::var_os("CONFINE_REQUIRE_KERNEL").is_some_and(|v| v == "1");
        let root = nix::unistd::geteuid().is_root();
        let have_cat = std::path::Path::new("/bin/cat").exists();
        if root && have_cat {
            return true;
        }
        let why = if root {
            "/bin/cat is missing"
        } else {
            "needs root"
        };
        assert!(!require, "CONFINE_REQUIRE_KERNEL=1 but this test {why}");
        eprintln!("skipped: {why}");
        false
    }

    #[test]
    fn nothing_kept_survives_execve_as_nothing() {
        if !privileged() {
            return;
        }
        let out = run_sequence(&[]).unwrap();
        for key in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(field(&out, key), "0000000000000000", "{key}\n{out}");
        }
        assert_eq!(
            field(&out, "Uid:").split_whitespace().collect::<Vec<_>>(),
            ["65534"; 4]
        );
        assert_eq!(
            field(&out, "Gid:").split_whitespace().collect::<Vec<_>>(),
            ["65534"; 4]
        );
        assert_eq!(field(&out, "Groups:"), "");
    }

    #[test]
    fn a_kept_capability_survives_execve_for_a_non_root_uid() {
        if !privileged() {
            return;
        }
        let out = run_sequence(&[Capability::CAP_NET_BIND_SERVICE]).unwrap();
        for key in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(field(&out, key), "0000000000000400", "{key}\n{out}");
        }
    }
}
