/**
 * The bucket seqlock: one word that is both the bucket's lock and the
 * sequence counter that lets readers run without it (kernel: struct
 * bucket.raw_lock, plus what hlist_nulls gives RCU readers).
 *
 * Word layout: `seq << 2 | WAITERS << 1 | LOCKED`.
 * - LOCKED (bit 0) is set while a writer holds the bucket: "the word is odd
 *   while the chain, or an element being linked into it, is being written".
 * - WAITERS (bit 1) tells the holder that someone sleeps on the word.
 * - seq (bits 2..31) grows by one at every unlock that changed the chain.
 *
 * Writers take the lock with one CAS and drop it with one exchange: the lock
 * and the sequence bump cost two atomic instructions together. Readers sample
 * the word before and after their walk; equal samples (ignoring WAITERS) with
 * LOCKED clear mean nothing they read was being changed.
 */

import { cpuRelax, SPIN_LIMIT, STALL_WAITS, stalled, threadCanBlock } from "./spin.js";

export const SEQ_LOCKED = 1;
export const SEQ_WAITERS = 2;
export const SEQ_STEP = 4;

/** Take the bucket lock at word `idx`. */
export function bucketLock(i32: Int32Array, idx: number): void {
  const v = Atomics.load(i32, idx);
  if ((v & SEQ_LOCKED) === 0 && Atomics.compareExchange(i32, idx, v, v | SEQ_LOCKED) === v) return;
  bucketLockSlow(i32, idx);
}

function bucketLockSlow(i32: Int32Array, idx: number): void {
  for (let i = 0; i < SPIN_LIMIT; i++) {
    cpuRelax(i32, idx);
    const v = Atomics.load(i32, idx);
    if ((v & SEQ_LOCKED) === 0 && Atomics.compareExchange(i32, idx, v, v | SEQ_LOCKED) === v) return;
  }
  const block = threadCanBlock();
  for (let waits = 1; ; waits++) {
    // A holder that died (worker.terminate()) never releases: let the map recover it.
    if (waits % STALL_WAITS === 0) stalled(i32);
    const v = Atomics.load(i32, idx);
    if ((v & SEQ_LOCKED) === 0) {
      // Taken with WAITERS set: others may still sleep, so our unlock must wake one.
      if (Atomics.compareExchange(i32, idx, v, v | SEQ_LOCKED | SEQ_WAITERS) === v) return;
      continue;
    }
    if ((v & SEQ_WAITERS) === 0 && Atomics.compareExchange(i32, idx, v, v | SEQ_WAITERS) !== v) continue;
    if (block) Atomics.wait(i32, idx, v | SEQ_WAITERS, 1);
    else cpuRelax(i32, idx);
  }
}

/**
 * Drop the bucket lock. Requires: the caller holds it. When `changed`, the
 * sequence advances. Publish: everything written under the lock is visible
 * to a reader that samples the new word.
 */
export function bucketUnlock(i32: Int32Array, idx: number, changed: boolean): void {
  const v = i32[idx]; // only WAITERS can change under us, and the exchange below sees it
  const next = (v & ~(SEQ_LOCKED | SEQ_WAITERS)) + (changed ? SEQ_STEP : 0);
  const prev = Atomics.exchange(i32, idx, next | 0);
  if ((prev & SEQ_WAITERS) !== 0) Atomics.notify(i32, idx, 1);
}

/** Whether a reader's two samples of a bucket word show a stable, unchanged chain. */
export function seqUnchanged(before: number, after: number): boolean {
  return ((before | after) & SEQ_LOCKED) === 0 && ((before ^ after) & ~SEQ_WAITERS) === 0;
}
