/**
 * Helpers that need no map, with the kernel's ids and return conventions
 * (a negative errno in r0 for a refused call):
 * - 5 `bpf_ktime_get_ns`: nanoseconds from `performance.now()` (monotonic,
 *   but counted from this process's start, not from boot as CLOCK_MONOTONIC);
 * - 6 `bpf_trace_printk(fmt, fmt_size, a1, a2, a3)`: %d %i %u %x with l/ll,
 *   %s, %c, %%, at most three arguments, to `vm.log` (its last 10,000 lines);
 *   returns the bytes written, -EINVAL for a format the kernel refuses;
 * - 7 `bpf_get_prandom_u32`: a per-VM xorshift32 stream;
 * - 8 `bpf_get_smp_processor_id`: the VM's CPU slot;
 * - 181 `bpf_loop(nr, callback, ctx, flags)`: at most 2^23 iterations
 *   (above: -E2BIG as the kernel's inlined loop answers it, all 64 bits of
 *   `nr` compared, r0 zero-extended), flags must be 0 (-EINVAL); the callback
 *   returns 0 to continue, 1 to stop; returns the iterations run.
 * - 28 `bpf_csum_diff(from, from_size, to, to_size, seed)`: net/core/filter.c
 *   as of 6.18 (checked against it): any sizes (no multiple-of-4 rule any
 *   more); the ones' complement sum of `to` (with `seed`) minus that of
 *   `from`, folded to 16 bits (csum_from32to16, not complemented); `seed`
 *   alone when both are empty. The 32-bit partial sums are x86-64's
 *   csum_partial (little-endian words, a short tail zero-padded, end-around
 *   carry: zero only for all-zero input); after the fold only their value
 *   modulo 0xffff and whether they are zero matter.
 */

import { BpfError, Errno } from "../errors.js";
import { Helper } from "./isa.js";

/**
 * What the map-free helpers need of the machine running them: the
 * interpreter's Vm, or a compiled program's run (wasm/runtime.ts).
 */
export interface HelperVm {
  readonly mem: { bytes(op: string, addr: bigint, size: number, write: boolean): Uint8Array };
  readonly cpu: number;
  readonly log: string[];
  /** The instruction index a BPF_PSEUDO_FUNC pointer names, or -1. */
  functionAt(ptr: bigint): number;
  /** Call a function of the program from a helper (a callback), in a new frame. */
  callback(pc: number, args: readonly bigint[]): bigint;
}

/** A helper that needs no map: r1-r5 in, r0 out, on either machine. */
export type BaseHelperFn = (
  vm: HelperVm,
  r1: bigint,
  r2: bigint,
  r3: bigint,
  r4: bigint,
  r5: bigint,
) => bigint;

/** The kernel's BPF_MAX_LOOPS. */
export const MAX_LOOPS = 1 << 23;
const LOG_LINES = 10_000;

/** A negative errno as r0 holds it. */
export function errnoRet(errno: number): bigint {
  return BigInt.asUintN(64, BigInt(-errno));
}

/**
 * bpf_map_update_elem()'s flags register (u64) as the map layer takes it: a
 * value of 2^32 or more becomes 2^32, an unknown flag all the same (the
 * kernel's `(flags & ~BPF_F_LOCK) > BPF_EXIST`: EINVAL), never its low bits.
 */
export function updateFlagsArg(flags: bigint): number {
  const f = BigInt.asUintN(64, flags);
  return f >= 0x1_0000_0000n ? 2 ** 32 : Number(f);
}

let seedCounter = 0x9e3779b9;
const prandom = new WeakMap<HelperVm, { s: number }>();

function nextRandom(vm: HelperVm): number {
  let st = prandom.get(vm);
  if (st === undefined) {
    seedCounter = (seedCounter + 0x6d2b79f5) >>> 0;
    st = { s: ((Math.random() * 0x100000000) ^ seedCounter) >>> 0 || 1 };
    prandom.set(vm, st);
  }
  let x = st.s;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  st.s = x >>> 0;
  return st.s;
}

/** The C string at `addr` (checked, at most `max` bytes, NUL not included). */
function cString(vm: HelperVm, addr: bigint, max: number): string {
  let s = "";
  for (let i = 0; i < max; i++) {
    const b = vm.mem.bytes("trace_printk", addr + BigInt(i), 1, false)[0];
    if (b === 0) return s;
    s += String.fromCharCode(b);
  }
  return s;
}

function tracePrintk(vm: HelperVm, fmtPtr: bigint, size: bigint, a1: bigint, a2: bigint, a3: bigint): bigint {
  const n = Number(size & 0xffffffffn);
  if (n === 0) return errnoRet(Errno.EINVAL);
  const fmt = vm.mem.bytes("trace_printk", fmtPtr, n, false);
  const end = fmt.indexOf(0);
  if (end < 0) return errnoRet(Errno.EINVAL);
  const text = new TextDecoder().decode(fmt.subarray(0, end));
  const args = [a1, a2, a3];
  let used = 0;
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== "%") {
      out += c;
      continue;
    }
    if (text[i + 1] === "%") {
      out += "%";
      i++;
      continue;
    }
    let j = i + 1;
    let longs = 0;
    while (text[j] === "l" && longs < 2) {
      longs++;
      j++;
    }
    const conv = text[j];
    if (used >= 3 || conv === undefined || !"diuxsc".includes(conv)) return errnoRet(Errno.EINVAL);
    const v = args[used++];
    const bits = longs === 0 ? 32 : 64;
    switch (conv) {
      case "d":
      case "i":
        out += BigInt.asIntN(bits, v).toString();
        break;
      case "u":
        out += BigInt.asUintN(bits, v).toString();
        break;
      case "x":
        out += BigInt.asUintN(bits, v).toString(16);
        break;
      case "c":
        out += String.fromCharCode(Number(v & 0xffn));
        break;
      default:
        out += cString(vm, v, 256);
    }
    i = j;
  }
  vm.log.push(out);
  if (vm.log.length > LOG_LINES) vm.log.splice(0, vm.log.length - LOG_LINES);
  return BigInt(new TextEncoder().encode(out).length);
}

function loop(vm: HelperVm, nr: bigint, fn: bigint, ctx: bigint, flags: bigint): bigint {
  if (flags !== 0n) return errnoRet(Errno.EINVAL);
  // With flags 0 the verifier inlines the call (inline_bpf_loop): it compares
  // all 64 bits of `nr` with BPF_MAX_LOOPS and sets r0 with a 32-bit move, so
  // -E2BIG comes back zero-extended.
  if (nr > BigInt(MAX_LOOPS)) return BigInt(-Errno.E2BIG >>> 0);
  const count = Number(nr);
  const pc = vm.functionAt(fn);
  if (pc < 0)
    throw new BpfError(
      "loop",
      Errno.EFAULT,
      `callback 0x${fn.toString(16)} is not a function of this program`,
    );
  for (let i = 0; i < count; i++) {
    const ret = vm.callback(pc, [BigInt(i), ctx]);
    if (ret !== 0n) return BigInt(i + 1);
  }
  return BigInt(count);
}

const M32 = 0xffff_ffff;

/** A sum of 32-bit words with end-around carry, as csum_partial/csum_add leave it: zero only when `s` is. */
function endAround32(s: number): number {
  return s === 0 ? 0 : ((s - 1) % M32) + 1;
}

/** x86-64 csum_partial(buf, len, seed): little-endian 32-bit words (the tail zero-padded) and the seed, end-around. */
export function csumPartial(buf: Uint8Array, seed: number): number {
  let s = seed >>> 0;
  for (let i = 0; i < buf.length; i += 4) {
    const w =
      (buf[i] | ((buf[i + 1] ?? 0) << 8) | ((buf[i + 2] ?? 0) << 16) | ((buf[i + 3] ?? 0) << 24)) >>> 0;
    s = endAround32(s + w);
  }
  return s;
}

/** csum_from32to16: fold a 32-bit partial sum to 16 bits (not complemented). */
function from32to16(x: number): number {
  let s = (x & 0xffff) + (x >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return s;
}

function csumDiff(
  vm: HelperVm,
  from: bigint,
  fromSize: bigint,
  to: bigint,
  toSize: bigint,
  seed: bigint,
): bigint {
  const fs = Number(fromSize & 0xffffffffn);
  const ts = Number(toSize & 0xffffffffn);
  const sd = Number(seed & 0xffffffffn);
  const f = vm.mem.bytes("csum_diff", from, fs, false);
  const t = vm.mem.bytes("csum_diff", to, ts, false);
  if (fs !== 0 && ts !== 0) {
    const a = csumPartial(t, sd);
    const b = ~csumPartial(f, 0) >>> 0;
    return BigInt(from32to16(endAround32(a + b)));
  }
  if (ts !== 0) return BigInt(from32to16(csumPartial(t, sd)));
  if (fs !== 0) return BigInt(from32to16(~csumPartial(f, ~sd >>> 0) >>> 0));
  return BigInt(sd);
}

/** The helpers every program gets, whatever its maps. */
export function baseHelpers(): Map<number, BaseHelperFn> {
  return new Map<number, BaseHelperFn>([
    [Helper.ktimeGetNs, () => BigInt(Math.floor(performance.now() * 1e6))],
    [Helper.tracePrintk, tracePrintk],
    [Helper.getPrandomU32, (vm) => BigInt(nextRandom(vm))],
    [Helper.getSmpProcessorId, (vm) => BigInt(vm.cpu)],
    [Helper.loop, loop],
    [Helper.csumDiff, csumDiff],
  ]);
}
