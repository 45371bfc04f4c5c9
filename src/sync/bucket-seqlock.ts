/**
 * The bucket seqlock: one word that is both the bucket's lock and the
 * sequence counter that lets readers run without it (kernel: struct
 * bucket.raw_lock, an rqspinlock since 6.15, plus what hlist_nulls gives
 * RCU readers).
 *
 * Word layout: `seq << 3 | WRITING << 2 | WAITERS << 1 | LOCKED`.
 * - LOCKED (bit 0) is set while a writer holds the bucket. Readers ignore it:
 *   a holder that has not begun to write (a compute() callback still running,
 *   a stalled or dead holder) blocks no reader.
 * - WAITERS (bit 1) tells the holder that someone sleeps on the word.
 * - WRITING (bit 2) is set by the holder (bucketBeginWrite()) before its first
 *   store a reader could see (a chain link, a value rewritten in place), or
 *   by the locking CAS itself where the write follows at once (the wasm
 *   write path), and cleared by the unlock. Readers retry while it is set: "the word has bit 2
 *   set while the chain, or a value in it, is being written". It is set only
 *   for the few stores of a write.
 * - seq (bits 3..31) grows by one at every unlock that wrote.
 *
 * Writers take the lock with one CAS, set WRITING with one atomic OR when
 * they write, and drop both with one exchange that also bumps the sequence.
 * Readers sample the word before and after their walk; equal samples
 * (ignoring WAITERS and LOCKED) with WRITING clear mean nothing they read was
 * being changed.
 *
 * Waits are bounded (LOCK_TIMEOUT_MS): bucketLock() gives up and reports
 * false, and the caller answers ETIMEDOUT with nothing changed.
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

export const SEQ_LOCKED = 1;
export const SEQ_WAITERS = 2;
export const SEQ_WRITING = 4;
export const SEQ_STEP = 8;
/** Bits a reader compares: the sequence and WRITING. */
const SEQ_READER_MASK = ~(SEQ_LOCKED | SEQ_WAITERS);

/**
 * Take the bucket lock at word `idx`.
 * @returns true when taken, false after LOCK_TIMEOUT_MS (nothing taken)
 */
export function bucketLock(i32: Int32Array, idx: number): boolean {
  const v = Atomics.load(i32, idx);
  if ((v & SEQ_LOCKED) === 0 && Atomics.compareExchange(i32, idx, v, v | SEQ_LOCKED) === v) return true;
  return bucketLockSlow(i32, idx);
}

function bucketLockSlow(i32: Int32Array, idx: number): boolean {
  for (let i = 0; i < SPIN_LIMIT; i++) {
    cpuRelax(i32, idx);
    const v = Atomics.load(i32, idx);
    if ((v & SEQ_LOCKED) === 0 && Atomics.compareExchange(i32, idx, v, v | SEQ_LOCKED) === v) return true;
  }
  const block = threadCanBlock();
  const deadline = nowMs() + LOCK_TIMEOUT_MS;
  for (let waits = 1; ; waits++) {
    // A holder that died (worker.terminate()) never releases: let the map recover it.
    if (waits % STALL_WAITS === 0) {
      stalled(i32);
      if (nowMs() > deadline) return false;
    }
    const v = Atomics.load(i32, idx);
    if ((v & SEQ_LOCKED) === 0) {
      // Taken with WAITERS set: others may still sleep, so our unlock must wake one.
      if (Atomics.compareExchange(i32, idx, v, v | SEQ_LOCKED | SEQ_WAITERS) === v) return true;
      continue;
    }
    if ((v & SEQ_WAITERS) === 0 && Atomics.compareExchange(i32, idx, v, v | SEQ_WAITERS) !== v) continue;
    if (block) Atomics.wait(i32, idx, v | SEQ_WAITERS, 1);
    else cpuRelax(i32, idx);
  }
}

/**
 * Mark the bucket as being written. Requires: the caller holds it.
 * Publish: readers that sample the word from here on retry until the unlock.
 */
export function bucketBeginWrite(i32: Int32Array, idx: number): void {
  Atomics.or(i32, idx, SEQ_WRITING);
}

/**
 * The word a holder stores to drop the lock: LOCKED, WAITERS and WRITING
 * cleared, the sequence bumped when it wrote.
 */
export function unlockedWord(v: number, changed: boolean): number {
  return ((v & ~(SEQ_LOCKED | SEQ_WAITERS | SEQ_WRITING)) + (changed ? SEQ_STEP : 0)) | 0;
}

/**
 * Drop the bucket lock. Requires: the caller holds it. When `changed`, the
 * sequence advances. Publish: everything written under the lock is visible
 * to a reader that samples the new word.
 */
export function bucketUnlock(i32: Int32Array, idx: number, changed: boolean): void {
  const v = i32[idx]; // only WAITERS can change under us, and the exchange below sees it
  const prev = Atomics.exchange(i32, idx, unlockedWord(v, changed));
  if ((prev & SEQ_WAITERS) !== 0) Atomics.notify(i32, idx, 1);
}

/** Whether a reader may walk the bucket now: no holder is writing it. */
export function seqReadable(s: number): boolean {
  return (s & SEQ_WRITING) === 0;
}

/** Whether a reader's two samples of a bucket word show a stable, unchanged chain. */
export function seqUnchanged(before: number, after: number): boolean {
  return ((before | after) & SEQ_WRITING) === 0 && ((before ^ after) & SEQ_READER_MASK) === 0;
}
