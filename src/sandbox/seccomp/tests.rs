use super::emit::*;
use super::interp::*;
use super::rules::*;
use super::*;
use crate::syscalls::{BASELINE_ALLOW, BASELINE_DENY};
use libc::{SECCOMP_RET_ALLOW as ALLOW, SECCOMP_RET_KILL_PROCESS as KILL};

const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

fn numbers(arch: Arch, names: &[&str]) -> Vec<u32> {
    names
        .iter()
        .filter_map(|n| syscalls::number(arch, n))
        .collect()
}

fn baseline(arch: Arch, on_violation: OnViolation) -> Filters {
    compile(
        arch,
        &numbers(arch, BASELINE_ALLOW),
        &numbers(arch, BASELINE_DENY),
        on_violation,
    )
    .expect("baseline compiles")
}

fn nr(arch: Arch, name: &str) -> u32 {
    syscalls::number(arch, name).unwrap()
}

fn call(arch: Arch, name: &str, args: &[u64]) -> SeccompData {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    SeccompData::new(arch, nr(arch, name), a)
}

/// Arguments that would trip any rule that looked at them.
const NASTY_ARGS: [[u64; 6]; 4] = [
    [0; 6],
    [u64::MAX; 6],
    [0x5412, 0x5412, 0x5412, 0x5412, 0x5412, 0x5412],
    [0x1000_0000, 17, 40, 0x40_0000, 0xdead_0000_541c, 1],
];

/// Every program the compiler can make from the baseline (so every
/// built-in profile's), for every architecture, violation action and
/// combination of argument rules, digested: a refactoring of the
/// compiler must leave the programs byte for byte as they were. Change
/// the digest only with a change of the programs that is meant.
#[test]
fn compiled_programs_are_pinned() {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut programs = 0;
    for arch in Arch::ALL {
        for ov in [OnViolation::Errno, OnViolation::Kill, OnViolation::Log] {
            for families in [
                DEFAULT_SOCKET_FAMILIES.to_vec(),
                vec![38, 1, 17, 2, 10, 16, 2],
            ] {
                for tcp_port_rules in [false, true] {
                    for file_size_limit in [false, true] {
                        for memfd in [Memfd::Unrestricted, Memfd::NoExecFlag, Memfd::Unavailable] {
                            let rules = Rules {
                                socket_families: families.clone(),
                                tcp_port_rules,
                                file_size_limit,
                                memfd,
                            };
                            let f = with_rules(arch, ov, &rules);
                            for prog in [&f.allowlist, &f.denylist] {
                                programs += 1;
                                h.update((prog.len() as u32).to_le_bytes());
                                for i in prog.iter() {
                                    h.update(i.code.to_le_bytes());
                                    h.update([i.jt, i.jf]);
                                    h.update(i.k.to_le_bytes());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(programs, 288);
    assert_eq!(
        digest,
        "4120bb04cda91bbf9465a1941d20a2db54b51d907927c4ff46557b66f93eee26"
    );
}

#[test]
fn baseline_sizes() {
    for arch in Arch::ALL {
        let f = baseline(arch, OnViolation::Errno);
        println!(
            "{arch}: A has {} instructions, B has {}",
            f.allowlist.len(),
            f.denylist.len()
        );
        assert!(f.allowlist.len() < 400 && f.denylist.len() < 200, "{f:?}");
    }
}

#[test]
fn allowlist_allows_exactly_its_numbers_whatever_the_arguments() {
    for arch in Arch::ALL {
        let allow = numbers(arch, BASELINE_ALLOW);
        let f = baseline(arch, OnViolation::Errno);
        assert!(is_cache_friendly(&f.allowlist, arch));
        for nr in 0..1024 {
            let want = if allow.contains(&nr) {
                ALLOW
            } else {
                RET_ENOSYS
            };
            assert_eq!(
                constant_action(&f.allowlist, arch, nr),
                Some(want),
                "{arch} {nr}"
            );
            for args in NASTY_ARGS {
                let d = SeccompData::new(arch, nr, args);
                assert_eq!(simulate(&f.allowlist, &d), want, "{arch} {nr}");
            }
        }
    }
}

#[test]
fn clone3_and_unknown_numbers_get_enosys() {
    for arch in Arch::ALL {
        let f = baseline(arch, OnViolation::Kill);
        let stack = [&f.allowlist[..], &f.denylist[..]];
        for d in [
            call(arch, "clone3", &[]),
            SeccompData::new(arch, 1000, [0; 6]),
            SeccompData::new(arch, 0x3fff_ffff, [0; 6]),
        ] {
            assert_eq!(simulate(&f.allowlist, &d), RET_ENOSYS);
            assert_eq!(simulate_stack(&stack, &d), RET_ENOSYS, "{d:?}");
        }
        // B keeps clone3 at ENOSYS even when the allowlist lists it.
        let mut allow = numbers(arch, BASELINE_ALLOW);
        allow.push(nr(arch, "clone3"));
        let f = compile(arch, &allow, &[], OnViolation::Errno).unwrap();
        let d = call(arch, "clone3", &[]);
        assert_eq!(simulate(&f.allowlist, &d), ALLOW);
        assert_eq!(simulate(&f.denylist, &d), RET_ENOSYS);
    }
}

#[test]
fn denylist_answers_the_violation_action() {
    for arch in Arch::ALL {
        for ov in [OnViolation::Errno, OnViolation::Kill, OnViolation::Log] {
            let f = baseline(arch, ov);
            for name in BASELINE_DENY {
                let Some(n) = syscalls::number(arch, name) else {
                    continue;
                };
                for args in NASTY_ARGS {
                    let d = SeccompData::new(arch, n, args);
                    assert_eq!(simulate(&f.denylist, &d), ov.action(), "{arch} {name}");
                }
            }
        }
        // Stacked, B's EPERM overrides A's ENOSYS, and a kill stays a kill.
        let f = baseline(arch, OnViolation::Errno);
        let stack = [&f.allowlist[..], &f.denylist[..]];
        assert_eq!(simulate_stack(&stack, &call(arch, "ptrace", &[0])), EPERM);
        let f = baseline(arch, OnViolation::Kill);
        let stack = [&f.allowlist[..], &f.denylist[..]];
        assert_eq!(simulate_stack(&stack, &call(arch, "bpf", &[0])), KILL);
    }
}

#[test]
fn denylist_leaves_everything_else_to_the_cache() {
    // Only the syscalls with argument rules need the filter to run; the
    // hot ones (read, write, sendto, recvfrom, ...) stay with the cache
    // unless a plan's own rules take them (host mode's port rules).
    const BASE: [&str; 5] = ["ioctl", "clone", "socket", "socketpair", "personality"];
    let cases: [(Rules, &[&str]); 5] = [
        (Rules::default(), &BASE),
        (
            Rules {
                memfd: Memfd::NoExecFlag,
                ..Rules::default()
            },
            &["memfd_create"],
        ),
        (
            Rules {
                tcp_port_rules: true,
                ..Rules::default()
            },
            &["sendto", "sendmsg", "sendmmsg"],
        ),
        (
            Rules {
                file_size_limit: true,
                ..Rules::default()
            },
            &["fallocate"],
        ),
        (
            Rules {
                memfd: Memfd::Unavailable,
                ..Rules::default()
            },
            &[],
        ),
    ];
    for arch in Arch::ALL {
        for (rules, extra) in &cases {
            let f = compile_with(
                arch,
                &numbers(arch, BASELINE_ALLOW),
                &numbers(arch, BASELINE_DENY),
                OnViolation::Errno,
                rules,
            )
            .unwrap();
            let deny = numbers(arch, BASELINE_DENY);
            let mut with_args = numbers(arch, &BASE);
            with_args.extend(numbers(arch, extra));
            let clone3 = nr(arch, "clone3");
            let memfd = nr(arch, "memfd_create");
            assert!(!is_cache_friendly(&f.denylist, arch));
            for n in 0..1024 {
                let want = if with_args.contains(&n) {
                    None
                } else if deny.contains(&n) {
                    Some(EPERM)
                } else if n == clone3 || (n == memfd && rules.memfd == Memfd::Unavailable) {
                    Some(RET_ENOSYS)
                } else {
                    Some(ALLOW)
                };
                assert_eq!(
                    constant_action(&f.denylist, arch, n),
                    want,
                    "{arch} {n} {rules:?}"
                );
            }
            for hot in ["read", "write", "recvfrom", "openat", "futex", "mmap"] {
                assert_eq!(
                    constant_action(&f.denylist, arch, nr(arch, hot)),
                    Some(ALLOW),
                    "{hot}"
                );
            }
            if !rules.tcp_port_rules {
                for n in ["sendto", "sendmsg", "sendmmsg"] {
                    assert_eq!(constant_action(&f.denylist, arch, nr(arch, n)), Some(ALLOW));
                }
            }
        }
    }
}

fn with_rules(arch: Arch, ov: OnViolation, rules: &Rules) -> Filters {
    compile_with(
        arch,
        &numbers(arch, BASELINE_ALLOW),
        &numbers(arch, BASELINE_DENY),
        ov,
        rules,
    )
    .unwrap()
}

const EACCES: u32 = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
const EOPNOTSUPP: u32 = libc::SECCOMP_RET_ERRNO | libc::EOPNOTSUPP as u32;
const EPROTONOSUPPORT: u32 = libc::SECCOMP_RET_ERRNO | libc::EPROTONOSUPPORT as u32;

#[test]
fn socket_families_are_an_allowlist() {
    const SOCK_NONBLOCK_CLOEXEC: u64 = 0o4000 | 0o2000000;
    for arch in Arch::ALL {
        for ov in [OnViolation::Errno, OnViolation::Kill] {
            let deny = ov.action();
            let f = baseline(arch, ov);
            let b = |name: &str, args: &[u64]| simulate(&f.denylist, &call(arch, name, args));
            for family in [1, 2, 10, 16] {
                assert_eq!(b("socket", &[family, 1 | SOCK_NONBLOCK_CLOEXEC, 0]), ALLOW);
            }
            // Everything else, AF_UNSPEC and numbers past AF_MAX included.
            for family in (0..64).filter(|f| ![1, 2, 10, 16].contains(f)) {
                assert_eq!(b("socket", &[family, 1, 0]), deny, "{family}");
                assert_eq!(b("socketpair", &[family, 1, 0, 0]), deny, "{family}");
            }
            // Only the low 32 bits count, as for the kernel's int.
            assert_eq!(b("socket", &[0x1_0000_0001, 1, 0]), ALLOW);
            assert_eq!(b("socket", &[0x1_0000_0026, 5, 0]), deny); // AF_ALG
            assert_eq!(b("socketpair", &[1, 1, 0, 0]), ALLOW);
            // Outside socket and socketpair nothing changes.
            assert_eq!(b("connect", &[38, 0, 0]), ALLOW);
        }
        // Added families open; the list may be long.
        let all: Vec<u32> = (1..46).collect();
        let f = with_rules(
            arch,
            OnViolation::Errno,
            &Rules {
                socket_families: all,
                ..Rules::default()
            },
        );
        for family in 1..46 {
            let d = call(arch, "socket", &[family, 5, 0]);
            assert_eq!(simulate(&f.denylist, &d), ALLOW, "{family}");
        }
        assert_eq!(
            simulate(&f.denylist, &call(arch, "socket", &[46, 5, 0])),
            EPERM
        );
    }
}

#[test]
fn tcp_port_rules_refuse_what_landlock_doesnt_see() {
    const NB_CLOEXEC: u64 = 0o4000 | 0o2000000;
    let rules = Rules {
        tcp_port_rules: true,
        ..Rules::default()
    };
    for arch in Arch::ALL {
        for ov in [OnViolation::Errno, OnViolation::Kill, OnViolation::Log] {
            let f = with_rules(arch, ov, &rules);
            let b = |name: &str, args: &[u64]| simulate(&f.denylist, &call(arch, name, args));
            for family in [2, 10] {
                // TCP, UDP, ping, raw: the kernel's or Landlock's business.
                for (ty, proto) in [
                    (1, 0),
                    (1, 6),
                    (2, 0),
                    (2, 17),
                    (2, 1),
                    (2, 58),
                    (3, 1),
                    (3, 255),
                ] {
                    assert_eq!(
                        b("socket", &[family, ty | NB_CLOEXEC, proto]),
                        ALLOW,
                        "{ty} {proto}"
                    );
                }
                // MPTCP, SCTP, SMC over a stream socket; SCTP's
                // seqpacket, DCCP: not built in, as far as the agent sees.
                for (ty, proto) in [
                    (1, 262),
                    (1, 132),
                    (1, 256),
                    (5, 132),
                    (5, 0),
                    (6, 33),
                    (10, 0),
                ] {
                    assert_eq!(
                        b("socket", &[family, ty | NB_CLOEXEC, proto]),
                        EPROTONOSUPPORT,
                        "{family} {ty} {proto}"
                    );
                }
                assert_eq!(b("socket", &[family, 1, 0x1_0000_0006]), ALLOW);
            }
            // Other families keep their own protocols.
            assert_eq!(b("socket", &[16, 3, 262]), ALLOW);
            assert_eq!(b("socket", &[1, 5, 0]), ALLOW);
            assert_eq!(b("socket", &[17, 1, 262]), ov.action());
            // Fast Open, however the flags are combined.
            let fastopen = 0x2000_0000;
            for flags in [
                fastopen,
                fastopen | 0x4000,
                0xffff_ffff,
                0xdead_0000_2000_0000,
            ] {
                assert_eq!(
                    b("sendto", &[3, 0, 2, flags, 0, 0]),
                    EOPNOTSUPP,
                    "{flags:#x}"
                );
                assert_eq!(b("sendmsg", &[3, 0, flags]), EOPNOTSUPP);
                assert_eq!(b("sendmmsg", &[3, 0, 1, flags]), EOPNOTSUPP);
            }
            for flags in [0, 0x4000, 0x40, 0x1_0000_0000] {
                assert_eq!(b("sendto", &[3, 0, 2, flags, 0, 0]), ALLOW);
                assert_eq!(b("sendmsg", &[3, 0, flags]), ALLOW);
                assert_eq!(b("sendmmsg", &[3, 0, 1, flags]), ALLOW);
            }
            // Arguments in the other places don't matter.
            assert_eq!(b("sendto", &[fastopen, fastopen, fastopen, 0, 0, 0]), ALLOW);
        }
        // Without port rules none of this is there.
        let f = baseline(arch, OnViolation::Errno);
        let b = |name: &str, args: &[u64]| simulate(&f.denylist, &call(arch, name, args));
        assert_eq!(b("socket", &[2, 1, 262]), ALLOW);
        assert_eq!(b("sendto", &[3, 0, 2, 0x2000_0000, 0, 0]), ALLOW);
    }
}

#[test]
fn fallocate_keeps_within_the_file_size_limit() {
    let rules = Rules {
        file_size_limit: true,
        ..Rules::default()
    };
    for arch in Arch::ALL {
        let f = with_rules(arch, OnViolation::Kill, &rules);
        let b = |mode: u64| {
            simulate(
                &f.denylist,
                &call(arch, "fallocate", &[3, mode, 0, 1 << 30]),
            )
        };
        for mode in [0, 3, 8, 0x10, 0x40, 0x80, 0x1_0000_0000] {
            assert_eq!(b(mode), ALLOW, "{mode:#x}");
        }
        // KEEP_SIZE alone, with ZERO_RANGE or UNSHARE_RANGE; INSERT_RANGE;
        // unknown bits.
        for mode in [1, 0x11, 0x41, 0x20, 0x21, 0x100, 0xffff_ffff] {
            assert_eq!(b(mode), EOPNOTSUPP, "{mode:#x}");
        }
        let f = baseline(arch, OnViolation::Kill);
        let d = call(arch, "fallocate", &[3, 1, 0, 1 << 30]);
        assert_eq!(simulate(&f.denylist, &d), ALLOW);
    }
}

#[test]
fn memfd_rules() {
    for arch in Arch::ALL {
        let f = with_rules(
            arch,
            OnViolation::Kill,
            &Rules {
                memfd: Memfd::NoExecFlag,
                ..Rules::default()
            },
        );
        let b = |flags: u64| simulate(&f.denylist, &call(arch, "memfd_create", &[0, flags]));
        // MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB, MFD_NOEXEC_SEAL.
        for flags in [0, 1, 2, 3, 4, 8, 9, 0x1_0000_0000] {
            assert_eq!(b(flags), ALLOW, "{flags:#x}");
        }
        for flags in [0x10, 0x11, 0x13, 0xffff_ffff, 0x1_0000_0010] {
            assert_eq!(b(flags), EACCES, "{flags:#x}");
        }
        let f = with_rules(
            arch,
            OnViolation::Errno,
            &Rules {
                memfd: Memfd::Unavailable,
                ..Rules::default()
            },
        );
        let stack = [&f.allowlist[..], &f.denylist[..]];
        let d = call(arch, "memfd_create", &[0, 1]);
        assert_eq!(simulate_stack(&stack, &d), RET_ENOSYS);
        // Unrestricted: no rule.
        let f = baseline(arch, OnViolation::Errno);
        let d = call(arch, "memfd_create", &[0, 0x10]);
        assert_eq!(simulate(&f.denylist, &d), ALLOW);
    }
}

#[test]
fn empty_value_lists() {
    let arch = Arch::native();
    // No family at all: every socket is refused.
    let f = with_rules(
        arch,
        OnViolation::Errno,
        &Rules {
            socket_families: vec![],
            ..Rules::default()
        },
    );
    for family in [0, 1, 2, 10, 16, 17] {
        let d = call(arch, "socket", &[family, 1, 0]);
        assert_eq!(simulate(&f.denylist, &d), EPERM, "{family}");
    }
    // An `In` with nothing to match never holds.
    let leaf = Leaf::Checks(vec![Check {
        when: vec![Cond::is(0, Test::In(vec![]))],
        action: EPERM,
    }]);
    let prog = program(arch, &partition([(0, leaf)], Leaf::Ret(ALLOW)));
    for a in [0, 1, u64::MAX] {
        assert_eq!(simulate(&prog, &SeccompData::new(arch, 0, [a; 6])), ALLOW);
    }
}

#[test]
fn a_deny_entry_replaces_an_argument_rule() {
    let arch = Arch::native();
    let rules = Rules {
        memfd: Memfd::NoExecFlag,
        tcp_port_rules: true,
        ..Rules::default()
    };
    let deny = numbers(arch, &["memfd_create", "sendto"]);
    let f = compile_with(arch, &[], &deny, OnViolation::Errno, &rules).unwrap();
    assert_eq!(
        simulate(&f.denylist, &call(arch, "memfd_create", &[0, 0])),
        EPERM
    );
    assert_eq!(
        simulate(&f.denylist, &call(arch, "sendto", &[0, 0, 0, 0])),
        EPERM
    );
}

#[test]
fn argument_rules() {
    const CLONE_VM: u64 = 0x100;
    const CLONE_FS: u64 = 0x200;
    const CLONE_FILES: u64 = 0x400;
    const CLONE_SIGHAND: u64 = 0x800;
    const CLONE_THREAD: u64 = 0x10000;
    const CLONE_SYSVSEM: u64 = 0x40000;
    const CLONE_SETTLS: u64 = 0x80000;
    const CLONE_PARENT_SETTID: u64 = 0x100000;
    const CLONE_CHILD_CLEARTID: u64 = 0x200000;
    const CLONE_VFORK: u64 = 0x4000;
    const SIGCHLD: u64 = 17;
    const THREAD: u64 = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID;
    const TCGETS: u64 = 0x5401;
    const TIOCSWINSZ: u64 = 0x5414;
    const FIONREAD: u64 = 0x541b;

    for arch in Arch::ALL {
        for ov in [OnViolation::Errno, OnViolation::Kill, OnViolation::Log] {
            let f = baseline(arch, ov);
            let deny = ov.action();
            let b = |name: &str, args: &[u64]| simulate(&f.denylist, &call(arch, name, args));
            let a = |name: &str, args: &[u64]| simulate(&f.allowlist, &call(arch, name, args));

            assert_eq!(b("ioctl", &[0, 0x5412]), deny);
            assert_eq!(b("ioctl", &[0, 0xdead_0000_5412]), deny);
            assert_eq!(b("ioctl", &[7, 0x541c, 0]), deny);
            assert_eq!(b("ioctl", &[0, 0x1_0000_541c]), deny);
            for ok in [TCGETS, TIOCSWINSZ, FIONREAD, 0x5412_0000, 0x5413] {
                assert_eq!(b("ioctl", &[0, ok]), ALLOW, "{ok:#x}");
            }
            assert_eq!(a("ioctl", &[0, 0x5412]), ALLOW);

            assert_eq!(b("clone", &[0x1000_0000]), deny); // CLONE_NEWUSER
            assert_eq!(b("clone", &[0x2000_0000 | SIGCHLD]), deny); // CLONE_NEWPID
            assert_eq!(b("clone", &[0x4000_0000 | THREAD]), deny); // CLONE_NEWNET
            assert_eq!(b("clone", &[0x0002_0000]), deny); // CLONE_NEWNS
            assert_eq!(b("clone", &[0x0200_0000]), deny); // CLONE_NEWCGROUP
            assert_eq!(b("clone", &[0x0400_0000]), deny); // CLONE_NEWUTS
            assert_eq!(b("clone", &[0x0800_0000]), deny); // CLONE_NEWIPC
            assert_eq!(b("clone", &[0xffff_ffff_1000_0000]), deny);
            assert_eq!(b("clone", &[THREAD]), ALLOW);
            assert_eq!(b("clone", &[SIGCHLD]), ALLOW);
            assert_eq!(b("clone", &[CLONE_VM | CLONE_VFORK | SIGCHLD]), ALLOW);

            assert_eq!(b("socket", &[17, 3, 0]), deny); // AF_PACKET
            assert_eq!(b("socket", &[40, 1, 0]), deny); // AF_VSOCK
            assert_eq!(b("socket", &[0x1_0000_0011, 3, 0]), deny);
            for family in [1, 2, 10, 16] {
                // AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
                assert_eq!(b("socket", &[family, 1, 0]), ALLOW, "{family}");
            }

            assert_eq!(b("personality", &[0]), ALLOW);
            assert_eq!(b("personality", &[0xffff_ffff]), ALLOW);
            assert_eq!(b("personality", &[0x0040_0000]), deny); // ADDR_NO_RANDOMIZE
            assert_eq!(b("personality", &[0x0400_0000]), deny); // READ_IMPLIES_EXEC
            assert_eq!(b("personality", &[0x0008]), deny); // PER_LINUX32
        }
    }
}

#[test]
fn foreign_architectures_and_x32_are_killed() {
    for arch in Arch::ALL {
        let f = baseline(arch, OnViolation::Errno);
        let other = match arch {
            Arch::X86_64 => Arch::Aarch64,
            Arch::Aarch64 => Arch::X86_64,
        };
        for prog in [&f.allowlist, &f.denylist] {
            for n in [0, nr(arch, "read"), nr(arch, "ptrace"), 1000] {
                for foreign in [AUDIT_ARCH_I386, other.audit_arch(), 0] {
                    let d = SeccompData {
                        arch: foreign,
                        ..SeccompData::new(arch, n, [0; 6])
                    };
                    assert_eq!(simulate(prog, &d), KILL, "{arch} {foreign:#x} {n}");
                }
            }
        }
    }
    let x86 = Arch::X86_64;
    let f = baseline(x86, OnViolation::Errno);
    for prog in [&f.allowlist, &f.denylist] {
        for n in [
            0x4000_0000,
            0x4000_0000 | 1,
            0x4000_0000 | 514,
            0x7fff_ffff,
            0x8000_0000,
            u32::MAX - 1,
        ] {
            let d = SeccompData::new(x86, n, [0; 6]);
            assert_eq!(simulate(prog, &d), KILL, "{n:#x}");
            assert_eq!(constant_action(prog, x86, n), Some(KILL));
        }
        // -1 is not x32: what a tracer writes to skip a syscall.
        let skipped = SeccompData::new(x86, u32::MAX, [0; 6]);
        assert_ne!(simulate(prog, &skipped), KILL);
    }
    let skipped = SeccompData::new(x86, u32::MAX, [0; 6]);
    assert_eq!(simulate(&f.allowlist, &skipped), RET_ENOSYS);
    assert_eq!(simulate(&f.denylist, &skipped), ALLOW);
    // aarch64 has no x32: a large number is just unknown.
    let f = baseline(Arch::Aarch64, OnViolation::Errno);
    let d = SeccompData::new(Arch::Aarch64, 0x4000_0000, [0; 6]);
    assert_eq!(simulate(&f.allowlist, &d), RET_ENOSYS);
}

#[test]
fn the_x32_guard_comes_before_any_number_comparison() {
    use super::bpf::*;
    let f = baseline(Arch::X86_64, OnViolation::Errno);
    let prologue = [
        load(OFFSET_ARCH),
        jump(JEQ, 0xc000_003e, 1, 0),
        ret(KILL),
        load(OFFSET_NR),
        jump(JGE, 0x4000_0000, 0, 2),
        jump(JEQ, 0xffff_ffff, 1, 0),
        ret(KILL),
    ];
    for prog in [&f.allowlist, &f.denylist] {
        for (got, want) in prog.iter().zip(&prologue) {
            assert_eq!(got, want);
        }
    }
    // aarch64: the arch check, then straight to the search.
    let f = baseline(Arch::Aarch64, OnViolation::Errno);
    assert_eq!(f.allowlist[1], jump(JEQ, 0xc000_00b7, 1, 0));
    assert_eq!(f.allowlist[3], load(OFFSET_NR));
    assert_ne!(f.allowlist[4].k, 0x4000_0000);
}

#[test]
fn a_number_in_both_lists_is_denied() {
    let arch = Arch::native();
    let read = nr(arch, "read");
    let f = compile(arch, &[read], &[read], OnViolation::Errno).unwrap();
    let stack = [&f.allowlist[..], &f.denylist[..]];
    assert_eq!(simulate_stack(&stack, &call(arch, "read", &[])), EPERM);
}

#[test]
fn a_denied_ioctl_loses_its_argument_rule() {
    let arch = Arch::native();
    let ioctl = nr(arch, "ioctl");
    let f = compile(arch, &[ioctl], &[ioctl], OnViolation::Errno).unwrap();
    assert_eq!(
        simulate(&f.denylist, &call(arch, "ioctl", &[0, 0x5401])),
        EPERM
    );
}

#[test]
fn far_jumps_are_used_for_large_programs() {
    // Every other number: ~1000 ranges, a search tree far wider than a
    // conditional jump reaches.
    for arch in Arch::ALL {
        let allow: Vec<u32> = (0..1000).step_by(2).collect();
        let f = compile(arch, &allow, &[], OnViolation::Errno).unwrap();
        assert!(f.allowlist.iter().any(|i| i.code == bpf::JMP | bpf::JA));
        for n in 0..1100 {
            let want = if n < 1000 && n % 2 == 0 {
                ALLOW
            } else {
                RET_ENOSYS
            };
            let d = SeccompData::new(arch, n, [0; 6]);
            assert_eq!(simulate(&f.allowlist, &d), want, "{n}");
            assert_eq!(constant_action(&f.allowlist, arch, n), Some(want));
        }
    }
}

#[test]
fn bad_input_is_refused() {
    let arch = Arch::X86_64;
    assert!(matches!(
        compile(arch, &[0x4000_0001], &[], OnViolation::Errno),
        Err(SeccompError::NumberOutOfRange {
            nr: 0x4000_0001,
            ..
        })
    ));
    assert!(matches!(
        compile(arch, &[], &[u32::MAX], OnViolation::Errno),
        Err(SeccompError::NumberOutOfRange { .. })
    ));
    let too_many: Vec<u32> = (0..6000).step_by(2).collect();
    let err = compile(arch, &too_many, &[], OnViolation::Errno).unwrap_err();
    assert!(matches!(
        err,
        SeccompError::TooLong {
            filter: "allowlist",
            ..
        }
    ));
    assert!(err.to_string().contains("4096"), "{err}");
}

#[test]
fn empty_lists_still_guard_the_architecture() {
    let arch = Arch::native();
    let f = compile(arch, &[], &[], OnViolation::Errno).unwrap();
    let d = call(arch, "read", &[]);
    assert_eq!(simulate(&f.allowlist, &d), RET_ENOSYS);
    assert_eq!(simulate(&f.denylist, &d), ALLOW);
    assert_eq!(
        simulate(&f.denylist, &call(arch, "ioctl", &[0, 0x5412])),
        EPERM
    );
}

#[test]
fn simulator_follows_classic_bpf() {
    use super::bpf::*;
    let d = SeccompData {
        nr: 7,
        arch: 0xc000_003e,
        instruction_pointer: 0x1111_2222_3333_4444,
        args: [0xaaaa_bbbb_cccc_dddd, 0, 0, 0, 0, 0x0123_4567_89ab_cdef],
    };
    let run = |p: &[sock_filter]| simulate(p, &d);
    // Loads of each half; RET A.
    assert_eq!(run(&[load(16), stmt(RET | A, 0)]), 0xcccc_dddd);
    assert_eq!(run(&[load(20), stmt(RET | A, 0)]), 0xaaaa_bbbb);
    assert_eq!(run(&[load(12), stmt(RET | A, 0)]), 0x1111_2222);
    assert_eq!(run(&[load(60), stmt(RET | A, 0)]), 0x0123_4567);
    // Out of range or unaligned loads, falling off the end: refused.
    assert_eq!(run(&[load(64), ret(0)]), KILL);
    assert_eq!(run(&[load(2), ret(0)]), KILL);
    assert_eq!(run(&[load(0)]), KILL);
    // ALU, X register, scratch memory.
    let p = [
        load(0),                  // A = 7
        stmt(ALU | MUL | K, 6),   // A = 42
        stmt(MISC | TAX, 0),      // X = 42
        stmt(LD | IMM, 100),      // A = 100
        stmt(ALU | SUB | X, 0),   // A = 58
        stmt(ST, 3),              // M[3] = 58
        stmt(LD | IMM, 0),        // A = 0
        stmt(LD | MEM, 3),        // A = 58
        stmt(ALU | AND | K, 0xf), // A = 10
        stmt(RET | A, 0),
    ];
    assert_eq!(run(&p), 10);
    assert_eq!(run(&[stmt(LD | IMM, 1), stmt(ALU | DIV | X, 0), ret(5)]), 0);
    // Jumps: taken, not taken, JA.
    let p = [
        load(0),
        jump(JGT, 6, 0, 3),      // 7 > 6: falls through
        jump(JSET, 0b100, 0, 1), // 7 & 4: falls through
        ja(1),                   // skips ret(1)
        ret(1),
        ret(2),
    ];
    assert_eq!(run(&p), 2);
    assert_eq!(run(&[ja(5), ret(1)]), KILL);
    assert_eq!(run(&[stmt(0xff, 0), ret(1)]), KILL);
}

/// The filters, installed for real in a forked child, do what the
/// simulator says: clone3 gets ENOSYS, ptrace and a TIOCSTI with high
/// bits set get EPERM, an ordinary ioctl and getpid go through.
#[test]
fn installed_filters_hold_on_the_running_kernel() {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    // SAFETY: PR_GET_SECCOMP only reads the calling thread's mode.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } < 0 {
        assert!(
            std::env::var_os("CONFINE_REQUIRE_KERNEL").is_none(),
            "this kernel has no seccomp"
        );
        eprintln!("skipped: this kernel has no seccomp");
        return;
    }
    let arch = Arch::native();
    let filters = baseline(arch, OnViolation::Errno);

    // SAFETY: the test harness is multithreaded; the child only makes raw
    // syscalls on data prepared before the fork (no allocation, no locks)
    // and leaves with _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = confined_child(&filters);
            // SAFETY: _exit ends the child without running the parent's
            // atexit handlers or unwinding into the harness.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("waitpid");
            let why = match status {
                WaitStatus::Exited(_, 0) => return,
                WaitStatus::Exited(_, 10) => "PR_SET_NO_NEW_PRIVS failed",
                WaitStatus::Exited(_, 11) => "installing the allowlist failed",
                WaitStatus::Exited(_, 12) => "installing the denylist failed",
                WaitStatus::Exited(_, 13) => "clone3 did not fail with ENOSYS",
                WaitStatus::Exited(_, 14) => "ptrace did not fail with EPERM",
                WaitStatus::Exited(_, 15) => "ioctl(TIOCSTI | 1 << 32) did not fail with EPERM",
                WaitStatus::Exited(_, 16) => "ioctl(TCGETS) was not let through",
                WaitStatus::Exited(_, 17) => "getpid failed",
                WaitStatus::Exited(_, 18) => "an unknown syscall did not fail with ENOSYS",
                _ => "the child did not exit normally",
            };
            panic!("{why}: {status:?}");
        }
    }
}

/// Runs in the forked child: installs both filters and probes them. Every
/// probe is harmless whether or not the filter works: ioctl goes to fd -1
/// (without the filter, EBADF, never a keystroke; it also can't be
/// confused with the EPERM TIOCSTI gives for a foreign terminal), clone3
/// gets no arguments (EINVAL without the filter).
fn confined_child(f: &Filters) -> i32 {
    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }
    let fails_with = |rc: libc::c_long, e: i32| rc == -1 && errno() == e;
    const BAD_FD: libc::c_long = -1;
    const TIOCSTI_HIGH_BITS: libc::c_long = 0x5412 | 1 << 32;

    // SAFETY: sets a flag on this (child) process only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return 10;
    }
    if install(&f.allowlist, false).is_err() {
        return 11;
    }
    if install(&f.denylist, false).is_err() {
        return 12;
    }
    // SAFETY: clone3(NULL, 0) creates nothing: with the filter it never
    // reaches the kernel, without it the size 0 is EINVAL.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, 0 as libc::c_long, 0 as libc::c_long) };
    if !fails_with(rc, libc::ENOSYS) {
        return 13;
    }
    // SAFETY: PTRACE_TRACEME takes no pointers; the filter refuses it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ptrace,
            libc::PTRACE_TRACEME as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if !fails_with(rc, libc::EPERM) {
        return 14;
    }
    // A raw syscall, so that the request keeps its high bits.
    // SAFETY: fd -1 is never open; the argument pointer is never read.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            BAD_FD,
            TIOCSTI_HIGH_BITS,
            0 as libc::c_long,
        )
    };
    if !fails_with(rc, libc::EPERM) {
        return 15;
    }
    // SAFETY: as above; TCGETS on fd -1 fails with EBADF in the kernel.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            BAD_FD,
            libc::TCGETS as libc::c_long,
            0 as libc::c_long,
        )
    };
    if !fails_with(rc, libc::EBADF) {
        return 16;
    }
    // SAFETY: getpid has no arguments.
    if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
        return 17;
    }
    // SAFETY: no syscall has number 1000.
    let rc = unsafe { libc::syscall(1000) };
    if !fails_with(rc, libc::ENOSYS) {
        return 18;
    }
    0
}

/// `explain`'s lines come from the same table the compiler reads: one line
/// per rule, naming every call that gets a leaf, and a rule off in the plan
/// is off in both.
#[test]
fn the_rules_are_described_from_the_table() {
    let lines = describe_rules(&Rules::default());
    assert_eq!(
        lines,
        [
            "ioctl with request TIOCSTI or TIOCLINUX (the low 32 bits of the request)",
            "clone with any CLONE_NEW* flag",
            "socket, socketpair of any family but AF_UNIX, AF_INET, AF_INET6, AF_NETLINK",
            "personality other than 0 and 0xffffffff",
        ]
    );
    let all = Rules {
        socket_families: vec![17, 1, 1, 99],
        tcp_port_rules: true,
        file_size_limit: true,
        memfd: Memfd::Unavailable,
    };
    let lines = describe_rules(&all);
    assert_eq!(lines.len(), all.table().len());
    assert!(
        lines.contains(&"socket, socketpair of any family but AF_UNIX, AF_PACKET, 99".to_string())
    );
    assert!(lines.contains(&"memfd_create -> ENOSYS (memfds could be executed)".to_string()));
    assert!(lines.iter().any(
        |l| l.starts_with("fallocate with FALLOC_FL_KEEP_SIZE") && l.contains("-> EOPNOTSUPP")
    ));
    for (name, _) in all.leaves(EPERM) {
        assert!(
            lines.iter().any(|l| l.split([' ', ',']).any(|w| w == name)),
            "{name} has a leaf but no line: {lines:?}"
        );
    }
    let off = describe_rules(&Rules::default()).join("\n");
    assert!(!off.contains("MSG_FASTOPEN") && !off.contains("fallocate") && !off.contains("memfd"));
}

/// The reporting variant (`on_violation: errno` with a listener): A also
/// allows the denylisted calls, so B's USER_NOTIF decides them (the kernel
/// ranks ERRNO above USER_NOTIF: A's ENOSYS would win otherwise); every
/// other verdict of the stack is the plain variant's, and both programs
/// keep every allowed call constant (on the action cache).
#[test]
fn notify_variant_reports_only_the_denylist() {
    const NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;
    for arch in Arch::ALL {
        let deny = numbers(arch, BASELINE_DENY);
        let mut allow = numbers(arch, BASELINE_ALLOW);
        allow.extend(&deny);
        let n = compile_with(arch, &allow, &deny, OnViolation::Notify, &Rules::default()).unwrap();
        let p = baseline(arch, OnViolation::Errno);
        let notify = [&n.allowlist[..], &n.denylist[..]];
        let plain = [&p.allowlist[..], &p.denylist[..]];
        for name in BASELINE_DENY {
            if let Some(nr) = syscalls::number(arch, name) {
                let d = SeccompData::new(arch, nr, [0; 6]);
                assert_eq!(simulate_stack(&notify, &d), NOTIF, "{arch} {name}");
                assert_eq!(constant_action(&n.allowlist, arch, nr), Some(ALLOW));
                assert_eq!(constant_action(&n.denylist, arch, nr), Some(NOTIF));
            }
        }
        // Unlisted, clone3, allowed and argument rules: as without a listener
        // but for the violation (EPERM there, USER_NOTIF here).
        for d in [
            SeccompData::new(arch, 1000, [0; 6]),
            call(arch, "clone3", &[]),
            call(arch, "read", &[]),
            call(arch, "ioctl", &[0, 0x5412]),
            call(arch, "clone", &[0x1000_0000]),
        ] {
            let want = match simulate_stack(&plain, &d) {
                EPERM => NOTIF,
                v => v,
            };
            assert_eq!(simulate_stack(&notify, &d), want, "{d:?}");
        }
        assert!(is_cache_friendly(&n.allowlist, arch));
        for hot in ["read", "write", "openat", "futex", "mmap"] {
            assert_eq!(
                constant_action(&n.denylist, arch, nr(arch, hot)),
                Some(ALLOW)
            );
        }
    }
}

/// `confine learn`'s filters: the observed calls and every call outside
/// the allowlist reach the supervisor (USER_NOTIF), the other allowed
/// calls run without it (and stay on the action cache), the denylist and
/// an argument rule's refusal reach it too (it answers EPERM), clone3
/// still gets ENOSYS, and a foreign architecture is still killed.
#[test]
fn learning_filters_notify_what_is_observed_and_nothing_else() {
    const NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;
    for arch in Arch::ALL {
        let allow = numbers(arch, BASELINE_ALLOW);
        let deny = numbers(arch, BASELINE_DENY);
        let f = compile_learn(arch, &allow, &deny, &Rules::default()).expect("compiles");
        let stack = [f.allowlist.as_slice(), f.denylist.as_slice()];
        for name in LEARN_OBSERVED {
            if syscalls::number(arch, name).is_some() {
                assert_eq!(
                    simulate_stack(&stack, &call(arch, name, &[0])),
                    NOTIF,
                    "{arch} {name}"
                );
            }
        }
        assert_eq!(simulate_stack(&stack, &call(arch, "read", &[0])), ALLOW);
        assert_eq!(
            constant_action(&f.denylist, arch, nr(arch, "read")),
            Some(ALLOW)
        );
        assert_eq!(simulate_stack(&stack, &call(arch, "ptrace", &[0])), NOTIF);
        assert_eq!(simulate_stack(&stack, &call(arch, "vhangup", &[])), NOTIF);
        assert_eq!(
            simulate_stack(&stack, &call(arch, "clone3", &[0])),
            RET_ENOSYS
        );
        assert_eq!(
            simulate_stack(&stack, &call(arch, "ioctl", &[0, 0x5412])),
            NOTIF
        );
        assert_eq!(
            simulate_stack(&stack, &call(arch, "ioctl", &[0, 0x5401])),
            ALLOW
        );
        let mut foreign = call(arch, "read", &[0]);
        foreign.arch = AUDIT_ARCH_I386;
        assert_eq!(simulate_stack(&stack, &foreign), KILL);
    }
}
