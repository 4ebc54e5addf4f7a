//! The few classic-BPF encodings the emitter uses (`linux/bpf_common.h`),
//! and the layout of `struct seccomp_data`.

use libc::sock_filter;

pub const LD: u16 = 0x00;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;

pub const W: u16 = 0x00;
pub const ABS: u16 = 0x20;

pub const K: u16 = 0x00;

pub const AND: u16 = 0x50;

pub const JA: u16 = 0x00;
pub const JEQ: u16 = 0x10;
pub const JGE: u16 = 0x30;
pub const JSET: u16 = 0x40;

/// `struct seccomp_data`: `int nr; __u32 arch; __u64 instruction_pointer;
/// __u64 args[6];`, 64 bytes, in the CPU's byte order. Both supported
/// architectures are little-endian (big-endian aarch64 has another
/// AUDIT_ARCH value and is killed), so an argument's low half comes first.
pub const OFFSET_NR: u32 = 0;
pub const OFFSET_ARCH: u32 = 4;

pub const fn arg_low(arg: u8) -> u32 {
    16 + 8 * arg as u32
}

pub const fn load(offset: u32) -> sock_filter {
    stmt(LD | W | ABS, offset)
}

pub const fn ret(action: u32) -> sock_filter {
    stmt(RET | K, action)
}

pub const fn ja(offset: u32) -> sock_filter {
    stmt(JMP | JA, offset)
}

/// A conditional jump on the accumulator against `k`.
pub const fn jump(op: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: JMP | op | K,
        jt,
        jf,
        k,
    }
}

pub const fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
