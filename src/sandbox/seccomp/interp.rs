//! Running a program without a kernel, for the unit tests: the kernel's
//! classic-BPF interpreter, the stacking of filters, and the seccomp action
//! cache's view of a program.

use libc::sock_filter;

use super::bpf::*;
use crate::syscalls::Arch;

// The rest of classic BPF's encodings, which only the interpreter meets.
pub(super) const LDX: u16 = 0x01;
pub(super) const ST: u16 = 0x02;
pub(super) const STX: u16 = 0x03;
pub(super) const MISC: u16 = 0x07;

pub(super) const IMM: u16 = 0x00;
pub(super) const MEM: u16 = 0x60;
pub(super) const LEN: u16 = 0x80;

pub(super) const X: u16 = 0x08;
pub(super) const A: u16 = 0x10;

pub(super) const ADD: u16 = 0x00;
pub(super) const SUB: u16 = 0x10;
pub(super) const MUL: u16 = 0x20;
pub(super) const DIV: u16 = 0x30;
pub(super) const OR: u16 = 0x40;
pub(super) const LSH: u16 = 0x60;
pub(super) const RSH: u16 = 0x70;
pub(super) const NEG: u16 = 0x80;
pub(super) const MOD: u16 = 0x90;
pub(super) const XOR: u16 = 0xa0;

pub(super) const JGT: u16 = 0x20;

pub(super) const TAX: u16 = 0x00;
pub(super) const TXA: u16 = 0x80;

pub(super) const SECCOMP_DATA_LEN: u32 = 64;

/// The input of a seccomp filter, as the kernel builds it for each syscall
/// (`struct seccomp_data`, with the number unsigned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// Syscall `nr` of `arch` with `args`.
    pub const fn new(arch: Arch, nr: u32, args: [u64; 6]) -> SeccompData {
        SeccompData {
            nr,
            arch: arch.audit_arch(),
            instruction_pointer: 0,
            args,
        }
    }

    /// The 32-bit word at byte `offset`, as `BPF_LD | BPF_W | BPF_ABS` reads it.
    fn word(&self, offset: u32) -> Option<u32> {
        let half = |v: u64, high: bool| if high { (v >> 32) as u32 } else { v as u32 };
        match offset {
            0 => Some(self.nr),
            4 => Some(self.arch),
            8 | 12 => Some(half(self.instruction_pointer, offset == 12)),
            16..=63 if offset.is_multiple_of(4) => {
                let i = (offset as usize - 16) / 8;
                Some(half(self.args[i], offset % 8 == 4))
            }
            _ => None,
        }
    }
}

/// Runs `prog` on `data` like the kernel's classic-BPF interpreter and
/// returns the seccomp action (e.g. `SECCOMP_RET_ERRNO | EPERM`).
///
/// A program the kernel would refuse to load (an unknown opcode, a load
/// outside `seccomp_data`, a jump past the end, no final `ret`) gets
/// SECCOMP_RET_KILL_PROCESS. Division by zero returns 0, as in the kernel.
pub fn simulate(prog: &[sock_filter], data: &SeccompData) -> u32 {
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    while let Some(insn) = prog.get(pc) {
        pc += 1;
        let k = insn.k;
        let class = insn.code & 0x07;
        match class {
            LD | LDX => {
                if insn.code & 0x18 != W {
                    return KILL; // only 32-bit loads are allowed in seccomp
                }
                let value = match insn.code & 0xe0 {
                    IMM => k,
                    LEN => SECCOMP_DATA_LEN,
                    ABS if class == LD => match data.word(k) {
                        Some(v) => v,
                        None => return KILL,
                    },
                    MEM => match mem.get(k as usize) {
                        Some(&v) => v,
                        None => return KILL,
                    },
                    _ => return KILL,
                };
                if class == LD {
                    a = value;
                } else {
                    x = value;
                }
            }
            ST | STX => match mem.get_mut(k as usize) {
                Some(slot) => *slot = if class == ST { a } else { x },
                None => return KILL,
            },
            ALU => {
                let operand = if insn.code & X != 0 { x } else { k };
                a = match insn.code & 0xf0 {
                    ADD => a.wrapping_add(operand),
                    SUB => a.wrapping_sub(operand),
                    MUL => a.wrapping_mul(operand),
                    DIV | MOD if operand == 0 => return 0,
                    DIV => a / operand,
                    MOD => a % operand,
                    OR => a | operand,
                    AND => a & operand,
                    XOR => a ^ operand,
                    LSH => a.checked_shl(operand).unwrap_or(0),
                    RSH => a.checked_shr(operand).unwrap_or(0),
                    NEG => a.wrapping_neg(),
                    _ => return KILL,
                };
            }
            JMP => {
                let operand = if insn.code & X != 0 { x } else { k };
                let taken = match insn.code & 0xf0 {
                    JA => {
                        pc += k as usize;
                        continue;
                    }
                    JEQ => a == operand,
                    JGT => a > operand,
                    JGE => a >= operand,
                    JSET => a & operand != 0,
                    _ => return KILL,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            RET => {
                return match insn.code & 0x18 {
                    K => k,
                    A => a,
                    _ => KILL,
                };
            }
            MISC => match insn.code & 0xf8 {
                TAX => x = a,
                TXA => a = x,
                _ => return KILL,
            },
            _ => return KILL,
        }
    }
    KILL
}

/// Runs filters stacked in install order (`filters[0]` installed first) the
/// way the kernel combines them: every filter runs, the most severe action
/// wins, and between equal actions the most recently installed filter's
/// answer (its errno, say) is the one returned.
pub fn simulate_stack(filters: &[&[sock_filter]], data: &SeccompData) -> u32 {
    let severity = |ret: u32| (ret & libc::SECCOMP_RET_ACTION_FULL) as i32;
    let mut ret = libc::SECCOMP_RET_ALLOW;
    for prog in filters.iter().rev() {
        let cur = simulate(prog, data);
        if severity(cur) < severity(ret) {
            ret = cur;
        }
    }
    ret
}

/// The action `prog` returns for syscall `nr` of `arch` if it doesn't depend
/// on the arguments or the instruction pointer, as the kernel's seccomp action
/// cache (`seccomp_is_const_allow()`) works it out when a filter is installed:
/// it follows the program with only the number and arch known, and gives up
/// (`None`) at the first instruction that reads anything else. The kernel then
/// skips the filter for every number whose constant action is ALLOW.
pub fn constant_action(prog: &[sock_filter], arch: Arch, nr: u32) -> Option<u32> {
    let mut a = 0u32;
    let mut pc = 0usize;
    while let Some(insn) = prog.get(pc) {
        pc += 1;
        let k = insn.k;
        match insn.code {
            c if c == LD | W | ABS => match k {
                OFFSET_NR => a = nr,
                OFFSET_ARCH => a = arch.audit_arch(),
                _ => return None,
            },
            c if c == RET | K => return Some(k),
            c if c == JMP | JA => pc += k as usize,
            c if c == ALU | AND | K => a &= k,
            c if c & 0x07 == JMP && c & X == 0 => {
                let taken = match c & 0xf0 {
                    JEQ => a == k,
                    JGE => a >= k,
                    JGT => a > k,
                    JSET => a & k != 0,
                    _ => return None,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            _ => return None,
        }
    }
    None
}

/// Whether the kernel's action cache sees through `prog` completely: for every
/// syscall number it caches (we check 0..1024, beyond every table), the
/// verdict depends on the number alone. True for filter A by construction,
/// which makes every syscall it allows free; false for filter B, whose
/// argument rules need the arguments of a few syscalls.
pub fn is_cache_friendly(prog: &[sock_filter], arch: Arch) -> bool {
    (0..1024).all(|nr| constant_action(prog, arch, nr).is_some())
}
