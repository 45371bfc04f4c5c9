/**
 * A small lock whose word names its owner (kernel: the raw spinlock of a
 * pcpu_freelist head, an rqspinlock since 6.15). Bucket locks are seqlocks
 * instead (bucket-seqlock.ts).
 *
 * Lock word: 0 = free; otherwise `(cpu + 1) << 1 | waiters`. Carrying the
 * owner's CPU slot lets a crash-recovery pass find whose lock it is, and a
 * timed-out waiter say who held it.
 * Waiters spin SPIN_LIMIT times, then set bit 0 and sleep on the word
 * (a futex-style mutex, as in Drepper's "Futexes Are Tricky"). A wait ends
 * after LOCK_TIMEOUT_MS: lockAcquire() then reports false and the caller
 * backs out (ETIMEDOUT), as the kernel's rqspinlock does.
 */

import {
  cpuRelax,
  LOCK_TIMEOUT_MS,
  nowMs,
  SPIN_LIMIT,
  STALL_WAITS,
  stalled,
  threadCanBlock,
} from "./spin.js";

/** Bit 0 of a held lock word: someone sleeps on it (the releaser must notify). */
export const LOCK_WAITERS = 1;
const WAITERS = LOCK_WAITERS;

/** The lock word seen by the last lockAcquire() of this thread that timed out (for its message). */
let timedOutWord = 0;

/** CPU slot that held the lock the last timed-out lockAcquire() of this thread waited for, or -1. */
export function lastTimeoutOwner(): number {
  return lockOwner(timedOutWord & ~WAITERS);
}

/**
 * Acquire the lock word at `lockIdx` for CPU slot `cpu`.
 * @returns true when taken; false after LOCK_TIMEOUT_MS (nothing taken)
 */
export function lockAcquire(i32: Int32Array, lockIdx: number, cpu: number): boolean {
  const me = (cpu + 1) << 1;
  if (Atomics.compareExchange(i32, lockIdx, 0, me) === 0) return true;
  return lockAcquireSlow(i32, lockIdx, me);
}

/** One attempt at the lock, no wait (a home claim that can fall back to a pop). */
export function lockTry(i32: Int32Array, lockIdx: number, cpu: number): boolean {
  return Atomics.compareExchange(i32, lockIdx, 0, (cpu + 1) << 1) === 0;
}

function lockAcquireSlow(i32: Int32Array, lockIdx: number, me: number): boolean {
  for (let i = 0; i < SPIN_LIMIT; i++) {
    cpuRelax(i32, lockIdx);
    if (Atomics.load(i32, lockIdx) === 0 && Atomics.compareExchange(i32, lockIdx, 0, me) === 0) return true;
  }
  const block = threadCanBlock();
  const deadline = nowMs() + LOCK_TIMEOUT_MS;
  for (let waits = 1; ; waits++) {
    // A holder that died (worker.terminate()) never releases: let the map recover it.
    if (waits % STALL_WAITS === 0) {
      stalled(i32);
      if (nowMs() > deadline) {
        timedOutWord = Atomics.load(i32, lockIdx);
        return false;
      }
    }
    const v = Atomics.load(i32, lockIdx);
    if (v === 0) {
      // Taken with the waiters bit: we cannot know whether others still sleep.
      if (Atomics.compareExchange(i32, lockIdx, 0, me | WAITERS) === 0) return true;
      continue;
    }
    if ((v & WAITERS) === 0 && Atomics.compareExchange(i32, lockIdx, v, v | WAITERS) !== v) continue;
    if (block) Atomics.wait(i32, lockIdx, v | WAITERS, 1);
    else cpuRelax(i32, lockIdx);
  }
}

/**
 * Acquire a lock that the caller cannot back out of: a change is already
 * made and must be filed (an unlinked element going back to a list), or a
 * repair must see every list. Each wait is bounded as in lockAcquire(); in
 * between, the stall handler recovers dead slots, which releases their locks.
 * Only a holder that died and is never reaped keeps it waiting.
 */
export function lockAcquireMust(i32: Int32Array, lockIdx: number, cpu: number): void {
  while (!lockAcquire(i32, lockIdx, cpu)) stalled(i32);
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
