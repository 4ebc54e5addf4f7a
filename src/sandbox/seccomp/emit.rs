//! The emitter: a filter as classic BPF. A prologue (arch, x32), then a
//! binary search over the syscall number whose leaves are a `ret` or a few
//! short argument checks.

use libc::sock_filter;

use super::bpf;
use super::rules::{Check, Cond, Leaf, Test};
use crate::syscalls::Arch;

/// The kernel's limit on a classic BPF program.
pub(super) const BPF_MAXINSNS: usize = 4096;

/// Set in the number of every x32 syscall (`__X32_SYSCALL_BIT`). Real syscall
/// numbers never reach it on any architecture.
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Cuts the number line into ranges `[start, next start)` with one leaf each:
/// the leaves of `verdicts` (ascending, one per number), `default` in
/// between, neighbours with the same leaf merged. The first range starts at 0.
pub(super) fn partition(
    verdicts: impl IntoIterator<Item = (u32, Leaf)>,
    default: Leaf,
) -> Vec<(u32, Leaf)> {
    fn push(ranges: &mut Vec<(u32, Leaf)>, start: u32, leaf: &Leaf) {
        match ranges.last_mut() {
            Some((_, last)) if last == leaf => {}
            Some((last_start, last)) if *last_start == start => *last = leaf.clone(),
            _ => ranges.push((start, leaf.clone())),
        }
    }
    let mut ranges = vec![(0, default.clone())];
    let mut next = 0;
    for (nr, leaf) in verdicts {
        if nr > next {
            push(&mut ranges, next, &default);
        }
        push(&mut ranges, nr, &leaf);
        next = nr + 1; // nr < X32_SYSCALL_BIT: no overflow
    }
    push(&mut ranges, next, &default);
    ranges
}

/// A whole filter: the prologue, then the search over `ranges`.
pub(super) fn program(arch: Arch, ranges: &[(u32, Leaf)]) -> Vec<sock_filter> {
    let mut prog = Vec::with_capacity(7 + search_len(ranges));
    prog.extend([
        bpf::load(bpf::OFFSET_ARCH),
        bpf::jump(bpf::JEQ, arch.audit_arch(), 1, 0),
        bpf::ret(libc::SECCOMP_RET_KILL_PROCESS),
        bpf::load(bpf::OFFSET_NR),
    ]);
    if arch == Arch::X86_64 {
        // x32 syscalls arrive with AUDIT_ARCH_X86_64 too, their numbers
        // marked by bit 30 (__X32_SYSCALL_BIT). Like libseccomp, kill every
        // number from that bit up, before any other comparison, except -1:
        // not a syscall (the kernel answers ENOSYS), but what a tracer writes
        // to skip one, which must not kill the tracee. -1 then meets the
        // search like any unknown number.
        prog.extend([
            bpf::jump(bpf::JGE, X32_SYSCALL_BIT, 0, 2),
            bpf::jump(bpf::JEQ, u32::MAX, 1, 0),
            bpf::ret(libc::SECCOMP_RET_KILL_PROCESS),
        ]);
    }
    search(ranges, &mut prog);
    prog
}

/// Appends a binary search over `ranges` (the accumulator holds the syscall
/// number), ending in each range's leaf. Each node costs one jump: `jge
/// start` of the upper half falls through into it, otherwise skips it into
/// the lower half. Past 255 instructions (the reach of a conditional jump)
/// the skip goes through an unconditional `ja`. Everything goes into one
/// buffer: the jump's distance comes from [`search_len`], not from emitting
/// the upper half on its own first.
fn search(ranges: &[(u32, Leaf)], out: &mut Vec<sock_filter>) {
    if let [(_, leaf)] = ranges {
        emit_leaf(leaf, out);
        return;
    }
    let (lower, upper) = ranges.split_at(ranges.len() / 2);
    let skip = search_len(upper);
    let start = upper[0].0;
    match u8::try_from(skip) {
        Ok(skip) => out.push(bpf::jump(bpf::JGE, start, 0, skip)),
        Err(_) => {
            out.push(bpf::jump(bpf::JGE, start, 1, 0));
            out.push(bpf::ja(skip as u32)); // <= BPF_MAXINSNS, checked later
        }
    }
    let before = out.len();
    search(upper, out);
    debug_assert_eq!(out.len() - before, skip, "search_len disagrees with search");
    search(lower, out);
}

/// How many instructions [`search`] emits for `ranges`.
fn search_len(ranges: &[(u32, Leaf)]) -> usize {
    if let [(_, leaf)] = ranges {
        return leaf_len(leaf);
    }
    let (lower, upper) = ranges.split_at(ranges.len() / 2);
    let upper = search_len(upper);
    let jump = if upper <= usize::from(u8::MAX) { 1 } else { 2 };
    jump + upper + search_len(lower)
}

/// A leaf: its `ret`, or each check in turn, then `ret ALLOW`. A check is
/// its conditions, each of which jumps to the next check when it fails,
/// then `ret action`.
fn emit_leaf(leaf: &Leaf, out: &mut Vec<sock_filter>) {
    let before = out.len();
    match leaf {
        Leaf::Ret(action) => out.push(bpf::ret(*action)),
        Leaf::Checks(checks) => {
            for c in checks {
                let mut rest = check_len(c);
                for cond in &c.when {
                    rest -= cond_len(cond);
                    emit_cond(cond, rest, out);
                }
                out.push(bpf::ret(c.action));
            }
            out.push(bpf::ret(libc::SECCOMP_RET_ALLOW));
        }
    }
    debug_assert_eq!(out.len() - before, leaf_len(leaf));
}

/// Appends `cond`: it falls through when it holds and otherwise skips the
/// `fail` instructions that follow it (the rest of its check).
fn emit_cond(cond: &Cond, fail: usize, out: &mut Vec<sock_filter>) {
    // compile_with refuses a check longer than a jump reaches.
    let reach = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    out.push(bpf::load(bpf::arg_low(cond.arg)));
    if let Some(mask) = cond.mask {
        out.push(bpf::stmt(bpf::ALU | bpf::AND | bpf::K, mask));
    }
    match &cond.test {
        Test::AnyBit(bits) => out.push(bpf::jump(bpf::JSET, *bits, 0, reach(fail))),
        // Nothing to match: the condition never holds.
        Test::In(values) if values.is_empty() => out.push(bpf::ja(fail as u32)),
        // A match skips the remaining jeqs; no match at the last one fails.
        Test::In(values) => {
            let n = values.len();
            for (i, &v) in values.iter().enumerate() {
                let (jt, jf) = if i + 1 == n {
                    (0, reach(fail))
                } else {
                    (reach(n - 1 - i), 0)
                };
                out.push(bpf::jump(bpf::JEQ, v, jt, jf));
            }
        }
        // A match fails: it skips the remaining jeqs and then `fail`.
        Test::NotIn(values) => {
            let n = values.len();
            for (i, &v) in values.iter().enumerate() {
                out.push(bpf::jump(bpf::JEQ, v, reach(n - 1 - i + fail), 0));
            }
        }
    }
}

fn cond_len(cond: &Cond) -> usize {
    let test = match &cond.test {
        Test::AnyBit(_) => 1,
        Test::In(v) => v.len().max(1),
        Test::NotIn(v) => v.len(),
    };
    1 + usize::from(cond.mask.is_some()) + test
}

/// A check's conditions and its `ret`.
pub(super) fn check_len(check: &Check) -> usize {
    check.when.iter().map(cond_len).sum::<usize>() + 1
}

/// How many instructions [`emit_leaf`] emits for `leaf`.
fn leaf_len(leaf: &Leaf) -> usize {
    match leaf {
        Leaf::Ret(_) => 1,
        Leaf::Checks(checks) => checks.iter().map(check_len).sum::<usize>() + 1,
    }
}
