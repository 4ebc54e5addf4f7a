//! The argument rules of filter B, as one table: which calls, with which
//! arguments, get which answer, and what each rule refuses in words. The
//! compiler turns the table into the leaves of filter B (`Rules::leaves`);
//! `explain` prints it ([`describe_rules`]), so the two can't disagree.

use std::fmt::Write as _;

/// Every CLONE_NEW* flag: NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
/// NEWPID, NEWNET. (Through `clone`, CLONE_NEWTIME's bit lies in the exit
/// signal byte, where it only makes an invalid signal; it is kept in the mask
/// to be thorough.)
const CLONE_NEW_ANY: u32 = 0x0000_0080 // CLONE_NEWTIME
    | 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000; // CLONE_NEWNET

const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541c;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const SOCK_TYPE_MASK: u32 = 0xf;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_RAW: u32 = 3;
const IPPROTO_TCP: u32 = 6;
const MSG_FASTOPEN: u32 = 0x2000_0000;
const MFD_EXEC: u32 = 0x10;
/// FALLOC_FL_*: the modes that don't allocate past RLIMIT_FSIZE unchecked.
/// The filesystems check the new size against the limit whenever a mode
/// grows the file (`inode_newsize_ok`), which KEEP_SIZE never does.
const FALLOCATE_MODES: [u32; 6] = [
    0x00, // allocate (and grow): checked against RLIMIT_FSIZE
    0x03, // PUNCH_HOLE | KEEP_SIZE: frees blocks
    0x08, // COLLAPSE_RANGE: shrinks
    0x10, // ZERO_RANGE (growing is checked)
    0x40, // UNSHARE_RANGE (growing is checked)
    0x80, // WRITE_ZEROES (growing is checked)
];

/// The socket families a sandbox may open when its profile adds none:
/// AF_UNIX, AF_INET, AF_INET6, AF_NETLINK.
pub(super) const DEFAULT_SOCKET_FAMILIES: [u32; 4] = [1, 2, 10, 16];

/// What `memfd_create` may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Memfd {
    /// No rule (the profile's exec grants cover everything anyway).
    #[default]
    Unrestricted,
    /// The sandbox's `vm.memfd_noexec` makes every memfd non-executable
    /// unless MFD_EXEC asks otherwise: MFD_EXEC gets EACCES, as the kernel
    /// answers it under `vm.memfd_noexec=2`.
    NoExecFlag,
    /// No memfds at all: ENOSYS, so programs fall back to files.
    Unavailable,
}

/// The argument rules of filter B that depend on the plan. The fixed ones
/// (keystroke injection, namespaces, personality) are always there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The families `socket` and `socketpair` may open; any other gets the
    /// violation action.
    pub socket_families: Vec<u32>,
    /// TCP port rules are in force (host network): refuse what Landlock's
    /// port checks don't see. `sendto`/`sendmsg`/`sendmmsg` with
    /// MSG_FASTOPEN connect without the connect hook (EOPNOTSUPP, as with
    /// Fast Open turned off), and an AF_INET/AF_INET6 stream socket of any
    /// protocol but TCP (MPTCP, SCTP, SMC) or a socket type other than
    /// stream, datagram and raw (SCTP's seqpacket, DCCP) isn't a TCP socket
    /// to Landlock (EPROTONOSUPPORT, as if not built in). These rules take
    /// `sendto` and `sendmsg` off the action cache, which is why they exist
    /// only where port rules do.
    pub tcp_port_rules: bool,
    /// `limits.file_size` is set: `fallocate` may only use the modes that
    /// RLIMIT_FSIZE limits or that free space; FALLOC_FL_KEEP_SIZE
    /// (allocating past the end of the file without growing it) and
    /// INSERT_RANGE get EOPNOTSUPP, as on a filesystem without them.
    pub file_size_limit: bool,
    pub memfd: Memfd,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            socket_families: DEFAULT_SOCKET_FAMILIES.to_vec(),
            tcp_port_rules: false,
            file_size_limit: false,
            memfd: Memfd::Unrestricted,
        }
    }
}

/// What the calls a rule matches get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// The profile's `on_violation` action.
    Violation,
    /// A fixed errno (and its name): what a kernel without the feature, or
    /// with it turned off, would say, so programs take their fallbacks
    /// whatever `on_violation` is.
    Errno(i32, &'static str),
}

impl Answer {
    fn action(self, violation: u32) -> u32 {
        match self {
            Answer::Violation => violation,
            Answer::Errno(errno, _) => libc::SECCOMP_RET_ERRNO | errno as u32,
        }
    }
}

const EACCES: Answer = Answer::Errno(libc::EACCES, "EACCES");
const ENOSYS: Answer = Answer::Errno(libc::ENOSYS, "ENOSYS");
const EOPNOTSUPP: Answer = Answer::Errno(libc::EOPNOTSUPP, "EOPNOTSUPP");
const EPROTONOSUPPORT: Answer = Answer::Errno(libc::EPROTONOSUPPORT, "EPROTONOSUPPORT");

/// One argument rule of filter B.
#[derive(Clone, Debug)]
pub(super) struct ArgRule {
    /// The calls it applies to.
    pub syscalls: &'static [&'static str],
    /// The conditions on their arguments, all of which must hold; `None`:
    /// every call gets the answer.
    pub when: Option<Vec<Cond>>,
    pub answer: Answer,
    /// What it refuses, in words, after the names of the calls.
    pub refuses: String,
    /// Why, in words, when the answer is a fixed errno.
    pub why: Option<&'static str>,
}

impl Rules {
    /// Every argument rule that applies, in the order filter B tries them
    /// for a call that several rules cover.
    pub(super) fn table(&self) -> Vec<ArgRule> {
        let rule = |syscalls, when, answer, refuses: &str, why| ArgRule {
            syscalls,
            when: Some(when),
            answer,
            refuses: refuses.to_string(),
            why,
        };
        let mut families = self.socket_families.clone();
        families.sort_unstable();
        families.dedup();
        let family_names: Vec<String> = families
            .iter()
            .map(|&nr| match crate::families::name(nr) {
                Some(name) => name.to_string(),
                None => nr.to_string(),
            })
            .collect();
        let mut t = vec![
            // Keystroke injection into a terminal (TIOCSTI) and the
            // console (TIOCLINUX's selection paste).
            rule(
                &["ioctl"],
                vec![Cond::is(1, Test::In(vec![TIOCSTI, TIOCLINUX]))],
                Answer::Violation,
                "with request TIOCSTI or TIOCLINUX (the low 32 bits of the request)",
                None,
            ),
            // New namespaces (a user namespace gives back every capability
            // inside it). Flags are argument 0 on x86_64 and aarch64 alike.
            rule(
                &["clone"],
                vec![Cond::is(0, Test::AnyBit(CLONE_NEW_ANY))],
                Answer::Violation,
                "with any CLONE_NEW* flag",
                None,
            ),
            // Socket families that reach rarely audited kernel code (AF_ALG,
            // AF_TIPC, AF_KCM, AF_XDP...), raw link-layer sockets, sockets to
            // the hypervisor: only those the plan allows.
            rule(
                &["socket", "socketpair"],
                vec![Cond::is(0, Test::NotIn(families))],
                Answer::Violation,
                &format!("of any family but {}", family_names.join(", ")),
                None,
            ),
            // Only query (0xffffffff) or set PER_LINUX (0): no
            // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC and the like.
            rule(
                &["personality"],
                vec![Cond::is(0, Test::NotIn(vec![0, 0xffff_ffff]))],
                Answer::Violation,
                "other than 0 and 0xffffffff",
                None,
            ),
        ];
        if self.tcp_port_rules {
            let inet = || Cond::is(0, Test::In(vec![AF_INET, AF_INET6]));
            let kind = |t| Cond::masked(1, SOCK_TYPE_MASK, t);
            let unseen = Some("Landlock's port rules see only TCP");
            // Sent with MSG_FASTOPEN (flags: argument 3 of sendto and
            // sendmmsg, 2 of sendmsg), a send connects without the connect
            // hook. One rule per argument position.
            t.push(rule(
                &["sendto", "sendmmsg"],
                vec![Cond::is(3, Test::AnyBit(MSG_FASTOPEN))],
                EOPNOTSUPP,
                "with MSG_FASTOPEN",
                Some("TCP Fast Open connects around the port rules"),
            ));
            t.push(rule(
                &["sendmsg"],
                vec![Cond::is(2, Test::AnyBit(MSG_FASTOPEN))],
                EOPNOTSUPP,
                "with MSG_FASTOPEN",
                Some("TCP Fast Open connects around the port rules"),
            ));
            t.push(rule(
                &["socket"],
                vec![
                    inet(),
                    kind(Test::In(vec![SOCK_STREAM])),
                    Cond::is(2, Test::NotIn(vec![0, IPPROTO_TCP])),
                ],
                EPROTONOSUPPORT,
                "of AF_INET or AF_INET6, a stream of a protocol other than TCP (MPTCP, SCTP, SMC)",
                unseen,
            ));
            t.push(rule(
                &["socket"],
                vec![
                    inet(),
                    kind(Test::NotIn(vec![SOCK_STREAM, SOCK_DGRAM, SOCK_RAW])),
                ],
                EPROTONOSUPPORT,
                "of AF_INET or AF_INET6 of a type other than stream, datagram, raw (SCTP's seqpacket, DCCP)",
                unseen,
            ));
        }
        if self.file_size_limit {
            t.push(rule(
                &["fallocate"],
                vec![Cond::is(1, Test::NotIn(FALLOCATE_MODES.to_vec()))],
                EOPNOTSUPP,
                "with FALLOC_FL_KEEP_SIZE (other than punching a hole) or INSERT_RANGE",
                Some("limits.file_size doesn't count them"),
            ));
        }
        match self.memfd {
            Memfd::Unrestricted => {}
            Memfd::NoExecFlag => t.push(rule(
                &["memfd_create"],
                vec![Cond::is(1, Test::AnyBit(MFD_EXEC))],
                EACCES,
                "with MFD_EXEC",
                None,
            )),
            Memfd::Unavailable => t.push(ArgRule {
                syscalls: &["memfd_create"],
                when: None,
                answer: ENOSYS,
                refuses: String::new(),
                why: Some("memfds could be executed"),
            }),
        }
        t
    }

    /// Every argument rule, by syscall name, with `violation` as the
    /// violation action: a call's checks in the order of the table.
    pub(super) fn leaves(&self, violation: u32) -> Vec<(&'static str, Leaf)> {
        let mut out: Vec<(&'static str, Leaf)> = Vec::new();
        for r in self.table() {
            let action = r.answer.action(violation);
            for &name in r.syscalls {
                let i = match out.iter().position(|(n, _)| *n == name) {
                    Some(i) => i,
                    None => {
                        out.push((name, Leaf::Checks(Vec::new())));
                        out.len() - 1
                    }
                };
                match (&r.when, &mut out[i].1) {
                    (Some(when), Leaf::Checks(checks)) => checks.push(Check {
                        when: when.clone(),
                        action,
                    }),
                    // An unconditional answer is the call's whole leaf.
                    (None, leaf) => *leaf = Leaf::Ret(action),
                    // An unconditional answer already decides the call.
                    (Some(_), Leaf::Ret(_)) => {}
                }
            }
        }
        out
    }
}

/// The argument rules `rules` puts in filter B, one line each, for
/// `explain`: the calls, what they may not do, and the fixed errno they get
/// instead of the violation action, with why.
pub fn describe_rules(rules: &Rules) -> Vec<String> {
    rules
        .table()
        .iter()
        .map(|r| {
            let mut line = r.syscalls.join(", ");
            if !r.refuses.is_empty() {
                line.push(' ');
                line.push_str(&r.refuses);
            }
            if let Answer::Errno(_, name) = r.answer {
                let _ = write!(line, " -> {name}");
            }
            if let Some(why) = r.why {
                let _ = write!(line, " ({why})");
            }
            line
        })
        .collect()
}

/// A test of one syscall argument. Every test reads the low 32 bits of the
/// argument only, because that is all the kernel reads: `ioctl`'s request,
/// `personality`'s argument, `fallocate`'s mode and `memfd_create`'s flags
/// are `unsigned int` or `int`, so are `socket`'s three arguments and the
/// send calls' flags, and `clone` truncates its flags with
/// `lower_32_bits()`. Comparing all 64 bits would let `ioctl(fd,
/// 0xdead_0000_5412)` through as a TIOCSTI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Cond {
    pub arg: u8,
    /// ANDed into the value before the test.
    pub mask: Option<u32>,
    pub test: Test,
}

impl Cond {
    pub(super) fn is(arg: u8, test: Test) -> Cond {
        Cond {
            arg,
            mask: None,
            test,
        }
    }

    pub(super) fn masked(arg: u8, mask: u32, test: Test) -> Cond {
        Cond {
            arg,
            mask: Some(mask),
            test,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Test {
    /// The value is one of these.
    In(Vec<u32>),
    /// The value is none of these.
    NotIn(Vec<u32>),
    /// The value has any of these bits set.
    AnyBit(u32),
}

/// When every condition holds, the call gets `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Check {
    pub when: Vec<Cond>,
    pub action: u32,
}

/// What a range of syscall numbers leads to: a fixed action, or checks of
/// the arguments tried in order, the first that holds deciding (ALLOW when
/// none does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Leaf {
    Ret(u32),
    Checks(Vec<Check>),
}
