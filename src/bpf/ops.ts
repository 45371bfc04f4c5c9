/**
 * The semantics of each operation, as the interpreter executes it: ALU
 * results (kernel answers for division by zero, INT_MIN / -1, masked
 * shifts, zero-extended 32-bit results), conditional jumps, loads, stores
 * and atomics on a checked region.
 */

import { AluOp, AtomicOp, JmpOp } from "./isa.js";
import type { Region } from "./memory.js";

const M32 = 0xffffffffn;
const INT32_MIN = -2147483648;

export function bswap16(v: number): number {
  return ((v & 0xff) << 8) | ((v >>> 8) & 0xff);
}
export function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}
export function bswap64(v: bigint): bigint {
  return (BigInt(bswap32(Number(v & M32))) << 32n) | BigInt(bswap32(Number((v >> 32n) & M32)));
}

export function alu64(o: number, d: bigint, s: bigint, off: number): bigint {
  switch (o) {
    case AluOp.add:
      return d + s;
    case AluOp.sub:
      return d - s;
    case AluOp.mul:
      return d * s;
    case AluOp.div: {
      if (s === 0n) return 0n;
      if (off === 0) return BigInt.asUintN(64, d) / BigInt.asUintN(64, s);
      return BigInt.asIntN(64, d) / BigInt.asIntN(64, s);
    }
    case AluOp.mod: {
      if (s === 0n) return d;
      if (off === 0) return BigInt.asUintN(64, d) % BigInt.asUintN(64, s);
      return BigInt.asIntN(64, d) % BigInt.asIntN(64, s);
    }
    case AluOp.or:
      return d | s;
    case AluOp.and:
      return d & s;
    case AluOp.xor:
      return d ^ s;
    case AluOp.lsh:
      return d << (s & 63n);
    case AluOp.rsh:
      return BigInt.asUintN(64, d) >> (s & 63n);
    case AluOp.arsh:
      return BigInt.asIntN(64, d) >> (s & 63n);
    case AluOp.neg:
      return -d;
    case AluOp.mov:
      return off === 0 ? s : BigInt.asIntN(off, s);
    default:
      throw new Error(`unreachable ALU64 op 0x${o.toString(16)}`);
  }
}

/** A 32-bit ALU operation on u32 operands; the result as a u32. */
export function alu32(o: number, d: number, s: number, off: number): number {
  switch (o) {
    case AluOp.add:
      return (d + s) >>> 0;
    case AluOp.sub:
      return (d - s) >>> 0;
    case AluOp.mul:
      return Math.imul(d, s) >>> 0;
    case AluOp.div: {
      if (s === 0) return 0;
      if (off === 0) return Math.floor(d / s) >>> 0;
      const sd = d | 0;
      const ss = s | 0;
      if (sd === INT32_MIN && ss === -1) return 0x80000000;
      return Math.trunc(sd / ss) >>> 0;
    }
    case AluOp.mod: {
      if (s === 0) return d;
      if (off === 0) return d % s;
      return ((d | 0) % (s | 0)) >>> 0;
    }
    case AluOp.or:
      return (d | s) >>> 0;
    case AluOp.and:
      return (d & s) >>> 0;
    case AluOp.xor:
      return (d ^ s) >>> 0;
    case AluOp.lsh:
      return (d << (s & 31)) >>> 0;
    case AluOp.rsh:
      return d >>> (s & 31);
    case AluOp.arsh:
      return ((d | 0) >> (s & 31)) >>> 0;
    case AluOp.neg:
      return -d >>> 0;
    case AluOp.mov:
      return off === 8 ? ((s << 24) >> 24) >>> 0 : off === 16 ? ((s << 16) >> 16) >>> 0 : s;
    default:
      throw new Error(`unreachable ALU op 0x${o.toString(16)}`);
  }
}

export function cond64(o: number, d: bigint, s: bigint): boolean {
  switch (o) {
    case JmpOp.jeq:
      return d === s;
    case JmpOp.jne:
      return d !== s;
    case JmpOp.jgt:
      return d > s;
    case JmpOp.jge:
      return d >= s;
    case JmpOp.jlt:
      return d < s;
    case JmpOp.jle:
      return d <= s;
    case JmpOp.jset:
      return (d & s) !== 0n;
    case JmpOp.jsgt:
      return BigInt.asIntN(64, d) > BigInt.asIntN(64, s);
    case JmpOp.jsge:
      return BigInt.asIntN(64, d) >= BigInt.asIntN(64, s);
    case JmpOp.jslt:
      return BigInt.asIntN(64, d) < BigInt.asIntN(64, s);
    case JmpOp.jsle:
      return BigInt.asIntN(64, d) <= BigInt.asIntN(64, s);
    default:
      throw new Error(`unreachable JMP op 0x${o.toString(16)}`);
  }
}

export function cond32(o: number, d: number, s: number): boolean {
  switch (o) {
    case JmpOp.jeq:
      return d === s;
    case JmpOp.jne:
      return d !== s;
    case JmpOp.jgt:
      return d > s;
    case JmpOp.jge:
      return d >= s;
    case JmpOp.jlt:
      return d < s;
    case JmpOp.jle:
      return d <= s;
    case JmpOp.jset:
      return (d & s) !== 0;
    case JmpOp.jsgt:
      return (d | 0) > (s | 0);
    case JmpOp.jsge:
      return (d | 0) >= (s | 0);
    case JmpOp.jslt:
      return (d | 0) < (s | 0);
    case JmpOp.jsle:
      return (d | 0) <= (s | 0);
    default:
      throw new Error(`unreachable JMP32 op 0x${o.toString(16)}`);
  }
}

export function load(reg: Region, off: number, size: number, signed: boolean): bigint {
  const dv = reg.dv;
  switch (size) {
    case 1:
      return BigInt(signed ? dv.getInt8(off) : dv.getUint8(off));
    case 2:
      return BigInt(signed ? dv.getInt16(off, true) : dv.getUint16(off, true));
    case 4:
      return BigInt(signed ? dv.getInt32(off, true) : dv.getUint32(off, true));
    default:
      return dv.getBigUint64(off, true);
  }
}

export function store(reg: Region, off: number, size: number, v: bigint): void {
  const dv = reg.dv;
  switch (size) {
    case 1:
      dv.setUint8(off, Number(v & 0xffn));
      break;
    case 2:
      dv.setUint16(off, Number(v & 0xffffn), true);
      break;
    case 4:
      dv.setUint32(off, Number(v & M32), true);
      break;
    default:
      dv.setBigUint64(off, BigInt.asUintN(64, v), true);
  }
}

/**
 * One atomic operation; returns the old value (zero-extended for 32 bits).
 * Atomics on the underlying buffer where it is aligned (shared map memory is
 * seen by other workers), a plain read-modify-write otherwise.
 */
export function atomic(reg: Region, off: number, size: number, op: number, src: bigint, r0: bigint): bigint {
  const base = op === AtomicOp.xchg || op === AtomicOp.cmpxchg ? op : op & ~AtomicOp.fetch;
  if (size === 4) {
    const s = Number(src & M32);
    const w = reg.words32(off);
    if (w !== undefined) {
      switch (base) {
        case AtomicOp.add:
          return BigInt(Atomics.add(w.a, w.i, s));
        case AtomicOp.or:
          return BigInt(Atomics.or(w.a, w.i, s));
        case AtomicOp.and:
          return BigInt(Atomics.and(w.a, w.i, s));
        case AtomicOp.xor:
          return BigInt(Atomics.xor(w.a, w.i, s));
        case AtomicOp.xchg:
          return BigInt(Atomics.exchange(w.a, w.i, s));
        default:
          return BigInt(Atomics.compareExchange(w.a, w.i, Number(r0 & M32), s));
      }
    }
    const old = reg.dv.getUint32(off, true);
    const next =
      base === AtomicOp.add
        ? (old + s) >>> 0
        : base === AtomicOp.or
          ? (old | s) >>> 0
          : base === AtomicOp.and
            ? (old & s) >>> 0
            : base === AtomicOp.xor
              ? (old ^ s) >>> 0
              : base === AtomicOp.xchg
                ? s
                : old === Number(r0 & M32)
                  ? s
                  : old;
    reg.dv.setUint32(off, next, true);
    return BigInt(old);
  }
  const w = reg.words64(off);
  if (w !== undefined) {
    switch (base) {
      case AtomicOp.add:
        return Atomics.add(w.a, w.i, src);
      case AtomicOp.or:
        return Atomics.or(w.a, w.i, src);
      case AtomicOp.and:
        return Atomics.and(w.a, w.i, src);
      case AtomicOp.xor:
        return Atomics.xor(w.a, w.i, src);
      case AtomicOp.xchg:
        return Atomics.exchange(w.a, w.i, src);
      default:
        return Atomics.compareExchange(w.a, w.i, r0, src);
    }
  }
  const old = reg.dv.getBigUint64(off, true);
  const next =
    base === AtomicOp.add
      ? old + src
      : base === AtomicOp.or
        ? old | src
        : base === AtomicOp.and
          ? old & src
          : base === AtomicOp.xor
            ? old ^ src
            : base === AtomicOp.xchg
              ? src
              : old === r0
                ? src
                : old;
  reg.dv.setBigUint64(off, BigInt.asUintN(64, next), true);
  return old;
}
