/**
 * A small lock whose word names its owner (kernel: the raw spinlock of a
 * pcpu_freelist head). Bucket locks are seqlocks instead (bucket-seqlock.ts).
 *
 * Lock word: 0 = free; otherwise `(cpu + 1) << 1 | waiters`. Carrying the
 * owner's CPU slot lets a crash-recovery pass find whose lock it is.
 * Waiters spin SPIN_LIMIT times, then set bit 0 and sleep on the word
 * (a futex-style mutex, as in Drepper's "Futexes Are Tricky").
 */

import { cpuRelax, SPIN_LIMIT, STALL_WAITS, stalled, threadCanBlock } from "./spin.js";

/** Bit 0 of a held lock word: someone sleeps on it (the releaser must notify). */
export const LOCK_WAITERS = 1;
const WAITERS = LOCK_WAITERS;

/** Acquire the lock word at `lockIdx` for CPU slot `cpu`. */
export function lockAcquire(i32: Int32Array, lockIdx: number, cpu: number): void {
  const me = (cpu + 1) << 1;
  if (Atomics.compareExchange(i32, lockIdx, 0, me) === 0) return;
  lockAcquireSlow(i32, lockIdx, me);
}

function lockAcquireSlow(i32: Int32Array, lockIdx: number, me: number): void {
  for (let i = 0; i < SPIN_LIMIT; i++) {
    cpuRelax(i32, lockIdx);
    if (Atomics.load(i32, lockIdx) === 0 && Atomics.compareExchange(i32, lockIdx, 0, me) === 0) return;
  }
  const block = threadCanBlock();
  for (let waits = 1; ; waits++) {
    // A holder that died (worker.terminate()) never releases: let the map recover it.
    if (waits % STALL_WAITS === 0) stalled(i32);
    const v = Atomics.load(i32, lockIdx);
    if (v === 0) {
      // Taken with the waiters bit: we cannot know whether others still sleep.
      if (Atomics.compareExchange(i32, lockIdx, 0, me | WAITERS) === 0) return;
      continue;
    }
    if ((v & WAITERS) === 0 && Atomics.compareExchange(i32, lockIdx, v, v | WAITERS) !== v) continue;
    if (block) Atomics.wait(i32, lockIdx, v | WAITERS, 1);
    else cpuRelax(i32, lockIdx);
  }
}

/** Release a lock taken by lockAcquire(). Requires: caller holds it. */
export function lockRelease(i32: Int32Array, lockIdx: number): void {
  const prev = Atomics.exchange(i32, lockIdx, 0);
  if (prev & WAITERS) Atomics.notify(i32, lockIdx, 1);
}

/** CPU slot that holds the lock word value `v`, or -1 when free. */
export function lockOwner(v: number): number {
  return v === 0 ? -1 : (v >>> 1) - 1;
}
