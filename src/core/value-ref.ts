/**
 * A live reference to an element's value in shared memory: what
 * bpf_map_lookup_elem() returns to a BPF program. Reads and writes go
 * straight to the map, visible to every worker at once.
 *
 * Validity: from the lookupRef() that made it until the section it was made
 * in ends (exit() / the end of run()). Inside that window the memory is never
 * handed to another key, even if the element is deleted or replaced (then the
 * reference still shows the old element, as an RCU reader in the kernel would);
 * use it after the section and it may read another key's data, so htab marks
 * a reference dead when its section ends and every access then throws.
 *
 * Offsets are byte offsets into the value. 32-bit atomics need offsets that
 * are multiples of 4, 64-bit ones multiples of 8 (values start 8-aligned).
 */

import { BpfError, Errno } from "../errors.js";
import { lastTimeoutOwner, lockAcquire, lockRelease } from "../sync/owner-lock.js";
import { lockTimeoutText } from "../sync/spin.js";

export class ValueRef {
  /** Byte offset of the value in the map's buffer. */
  private off = 0;
  /** Section generation this reference belongs to. */
  private gen = -1;

  constructor(
    private readonly i32: Int32Array,
    private readonly i64: BigInt64Array,
    private readonly u8: Uint8Array,
    /** value_size */
    readonly size: number,
    private readonly canRead: boolean,
    private readonly canWrite: boolean,
    private readonly spinLockOff: number,
    private readonly cpu: number,
    private readonly liveGen: Int32Array,
  ) {}

  /** @internal Point this reference at a value (byte offset) for section generation `gen`. */
  _bind(off: number, gen: number): this {
    this.off = off;
    this.gen = gen;
    return this;
  }

  /**
   * @internal The value's bytes in shared memory, for the BPF runtime to map
   * into a running program's address space (bpf/); valid while `valid` is.
   */
  _bytes(): Uint8Array {
    return this.u8.subarray(this.off, this.off + this.size);
  }

  /** @internal Whether programs may write the value (not BPF_F_RDONLY_PROG). */
  get _progWritable(): boolean {
    return this.canWrite;
  }

  /** False once the section it was made in has ended. */
  get valid(): boolean {
    return this.gen === this.liveGen[0];
  }

  private check(op: string, at: number, width: number, write: boolean): number {
    if (this.gen !== this.liveGen[0])
      throw new BpfError(op, Errno.EINVAL, "reference used after its program section ended");
    if (write ? !this.canWrite : !this.canRead)
      throw new BpfError(op, Errno.EACCES, write ? "map is BPF_F_RDONLY_PROG" : "map is BPF_F_WRONLY_PROG");
    if (!Number.isInteger(at) || at < 0 || at + width > this.size)
      throw new BpfError(op, Errno.EINVAL, `offset ${at} + ${width} is outside the ${this.size}-byte value`);
    if (width > 1 && at % width !== 0)
      throw new BpfError(op, Errno.EINVAL, `offset ${at} is not ${width}-byte aligned`);
    return this.off + at;
  }

  private w32(op: string, at: number, write: boolean): number {
    return this.check(op, at, 4, write) >>> 2; // byte offsets pass 2^31 in maps over 2 GiB (never 2^32)
  }

  private w64(op: string, at: number, write: boolean): number {
    return this.check(op, at, 8, write) >>> 3;
  }

  /** Copy the value (or `size` bytes from `at`) into `out`. Not atomic as a whole. */
  read(out: Uint8Array, at = 0, size = this.size - at): Uint8Array {
    const src = this.check("read", at, size, false);
    for (let i = 0; i < size; i++) out[i] = this.u8[src + i];
    return out;
  }

  /** Copy `src` into the value at `at`. Not atomic as a whole: use a spin lock for multi-field updates. */
  write(src: Uint8Array, at = 0): void {
    const dst = this.check("write", at, src.length, true);
    for (let i = 0; i < src.length; i++) this.u8[dst + i] = src[i];
  }

  getU8(at: number): number {
    return this.u8[this.check("getU8", at, 1, false)];
  }
  setU8(at: number, v: number): void {
    this.u8[this.check("setU8", at, 1, true)] = v;
  }
  /** Atomic 32-bit load (signed). */
  load32(at: number): number {
    return Atomics.load(this.i32, this.w32("load32", at, false));
  }
  /** Atomic 32-bit store. */
  store32(at: number, v: number): void {
    Atomics.store(this.i32, this.w32("store32", at, true), v | 0);
  }
  load64(at: number): bigint {
    return Atomics.load(this.i64, this.w64("load64", at, false));
  }
  store64(at: number, v: bigint): void {
    Atomics.store(this.i64, this.w64("store64", at, true), v);
  }

  // The __sync_* / __atomic_* family BPF programs use, on 32- and 64-bit fields.
  // Each returns the previous value, as the C builtins do.
  fetchAdd32(at: number, v: number): number {
    return Atomics.add(this.i32, this.w32("fetchAdd32", at, true), v | 0);
  }
  fetchAnd32(at: number, v: number): number {
    return Atomics.and(this.i32, this.w32("fetchAnd32", at, true), v | 0);
  }
  fetchOr32(at: number, v: number): number {
    return Atomics.or(this.i32, this.w32("fetchOr32", at, true), v | 0);
  }
  fetchXor32(at: number, v: number): number {
    return Atomics.xor(this.i32, this.w32("fetchXor32", at, true), v | 0);
  }
  xchg32(at: number, v: number): number {
    return Atomics.exchange(this.i32, this.w32("xchg32", at, true), v | 0);
  }
  /** Compare-and-exchange; returns the old value (equal to `expected` on success). */
  cmpxchg32(at: number, expected: number, v: number): number {
    return Atomics.compareExchange(this.i32, this.w32("cmpxchg32", at, true), expected | 0, v | 0);
  }
  fetchAdd64(at: number, v: bigint): bigint {
    return Atomics.add(this.i64, this.w64("fetchAdd64", at, true), v);
  }
  fetchAnd64(at: number, v: bigint): bigint {
    return Atomics.and(this.i64, this.w64("fetchAnd64", at, true), v);
  }
  fetchOr64(at: number, v: bigint): bigint {
    return Atomics.or(this.i64, this.w64("fetchOr64", at, true), v);
  }
  fetchXor64(at: number, v: bigint): bigint {
    return Atomics.xor(this.i64, this.w64("fetchXor64", at, true), v);
  }
  xchg64(at: number, v: bigint): bigint {
    return Atomics.exchange(this.i64, this.w64("xchg64", at, true), v);
  }
  cmpxchg64(at: number, expected: bigint, v: bigint): bigint {
    return Atomics.compareExchange(this.i64, this.w64("cmpxchg64", at, true), expected, v);
  }

  private lockIdx(op: string): number {
    if (this.spinLockOff < 0) throw new BpfError(op, Errno.EINVAL, "the map's value has no bpf_spin_lock");
    return this.w32(op, this.spinLockOff, true);
  }

  /**
   * bpf_spin_lock(): take the lock in this value. Keep the critical section short.
   * @throws BpfError ETIMEDOUT when another holder kept it past 250 ms (the
   * kernel's rqspinlock rule since 6.15); the lock is then not taken
   */
  lock(): void {
    if (!lockAcquire(this.i32, this.lockIdx("lock"), this.cpu))
      throw new BpfError(
        "lock",
        Errno.ETIMEDOUT,
        lockTimeoutText("the value's bpf_spin_lock", `held by CPU slot ${lastTimeoutOwner()}`),
      );
  }

  /** bpf_spin_unlock(). Requires: this thread holds the lock. */
  unlock(): void {
    lockRelease(this.i32, this.lockIdx("unlock"));
  }

  /** Run `fn` holding the value's spin lock. */
  withLock<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }
}
