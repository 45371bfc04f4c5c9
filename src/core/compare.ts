/**
 * Beyond the kernel (the BPF_F_COMPARE RFC): compare-and-delete,
 * compare-and-swap and compute, each a compare (or a callback) and a change
 * under one bucket lock, so a concurrent update lands either before (and
 * the compare fails) or after. Conntrack GC needs the first: delete an
 * entry only if it is still the one that was judged stale.
 */
import { invalid, showInput } from "../errors.js";
import { BUCKET_SEQLOCK_I32 } from "../layout/layout.js";
import { seqUnchanged, unlockedWord } from "../sync/bucket-seqlock.js";
import { bucketOf, lockBucket, lookupElemLocked, unlinkLocked, unlockBucket } from "./bucket.js";
import {
  canRead,
  canWrite,
  checkNotComputing,
  checkValueIn,
  permError,
  regionFits,
  regionText,
} from "./checks.js";
import { copyValueOut, hashKeyAt, regionEquals } from "./elem.js";
import { EBUSY, ENOENT, ETIMEDOUT, type HtabView } from "./htab-view.js";
import { insertNewLocked, swapLocked } from "./write.js";

/** A compute() callback: the current value (a copy) or undefined; the new value, or undefined/null to delete. */
export type ComputeFn = (current: Uint8Array | undefined) => Uint8Array | undefined | null;

/**
 * Lock bucket `b` and find the scratch key whose value region equals
 * `expected`. Returns the element with the lock held (predecessor in
 * `v.foundPrev`), or -ENOENT / -EBUSY with the lock released.
 */
export function lockAndCompare(
  v: HtabView,
  b: number,
  hash: number,
  expected: Uint8Array,
  expOff: number,
  offset: number,
  size: number,
): number {
  if (!lockBucket(v, b)) return ETIMEDOUT;
  const e = lookupElemLocked(v, b, hash);
  if (e === 0) {
    unlockBucket(v, b);
    return v.err.fail(ENOENT, "key not found");
  }
  if (!regionEquals(v, e, expected, expOff, offset, size)) {
    unlockBucket(v, b);
    return v.err.fail(EBUSY, "value changed since it was read (compared region differs)");
  }
  return e;
}

export function compareAndDeleteRaw(
  v: HtabView,
  hash: number,
  expected: Uint8Array,
  expOff: number,
  offset: number,
  size: number,
): number {
  checkNotComputing(v, "compareAndDelete");
  const b = bucketOf(v, hash);
  const e = lockAndCompare(v, b, hash, expected, expOff, offset, size);
  if (e < 0) return e;
  unlinkLocked(v, b, e, v.foundPrev);
  unlockBucket(v, b);
  v.elems.free(v, e);
  return 0;
}

/** Htab.compareAndDeleteBatch()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function compareAndDeleteBatch(
  v: HtabView,
  keys: Uint8Array,
  expected: Uint8Array,
  count: number,
  offset: number,
  size: number,
  results?: Int32Array,
): number {
  if (!Number.isInteger(count) || count < 0 || count > 0xffffffff)
    invalid("compareAndDeleteBatch", `count must be a u32, got ${showInput(count)}`);
  if (!regionFits(v, offset, size)) invalid("compareAndDeleteBatch", regionText(v, offset, size));
  results ??= new Int32Array(count);
  if (!(keys instanceof Uint8Array) || keys.length < count * v.keySize)
    invalid("compareAndDeleteBatch", `keys must hold count * key_size = ${count * v.keySize} bytes`);
  if (!(expected instanceof Uint8Array) || expected.length < count * size)
    invalid("compareAndDeleteBatch", `expected must hold count * size = ${count * size} bytes`);
  if (!(results instanceof Int32Array) || results.length < count)
    invalid("compareAndDeleteBatch", "results must be an Int32Array of at least count entries");
  if (!canRead(v) || !canWrite(v)) {
    results.fill(permError(v, !canWrite(v)), 0, count);
    return 0;
  }
  let deleted = 0;
  for (let i = 0; i < count; i++) {
    const r = compareAndDeleteRaw(v, hashKeyAt(v, keys, i * v.keySize), expected, i * size, offset, size);
    results[i] = r;
    if (r === 0) deleted++;
  }
  return deleted;
}

/**
 * Replace the scratch key's whole value with `value` if its bytes
 * [offset, offset+size) equal `expected`, under the bucket lock.
 * Requires: arguments checked (see Htab.compareAndSwapElem()). @returns 0, -EBUSY, -ENOENT, -ETIMEDOUT
 */
export function compareAndSwapRaw(
  v: HtabView,
  hash: number,
  expected: Uint8Array,
  value: Uint8Array,
  offset: number,
  size: number,
): number {
  checkNotComputing(v, "compareAndSwap");
  const b = bucketOf(v, hash);
  const old = lockAndCompare(v, b, hash, expected, 0, offset, size);
  if (old < 0) return old; // nothing taken, nothing changed
  const err = swapLocked(v, old, value, 0);
  unlockBucket(v, b);
  return err;
}

/**
 * compute() on the scratch key: run `fn(current)` under the bucket lock and
 * store what it returns (see Htab.compute() for the rules). A policy that
 * pops before the bucket lock (LRU) pops only for a result it will store, so
 * a callback that throws or returns junk evicts nothing; the pop may not run
 * under the bucket lock (lock order LRU -> bucket), so the lock is dropped
 * for it and `fn` runs again if the bucket changed meanwhile.
 * Requires: arguments checked. @returns 0, -E2BIG, -ETIMEDOUT
 */
export function computeRaw(v: HtabView, hash: number, fn: ComputeFn): number {
  checkNotComputing(v, "compute");
  const b = bucketOf(v, hash);
  if (!lockBucket(v, b)) return ETIMEDOUT;
  let locked = true;
  try {
    for (;;) {
      const old = lookupElemLocked(v, b, hash);
      const prevOld = v.foundPrev;
      const next = runCompute(v, old, fn);
      if (next === undefined || next === null) {
        if (old === 0) return 0;
        unlinkLocked(v, b, old, prevOld);
        unlockBucket(v, b);
        locked = false;
        v.elems.free(v, old);
        return 0;
      }
      checkValueIn(v, "compute", next);
      if (old !== 0) {
        v.foundPrev = prevOld; // the callback may have looked up other keys
        return swapLocked(v, old, next, 0);
      }
      if (v.elems.mustTakeFirst()) {
        const seq = Atomics.load(v.i32, b + BUCKET_SEQLOCK_I32);
        unlockBucket(v, b);
        locked = false;
        const t = v.elems.take(v);
        if (t !== 0) return t;
        if (!lockBucket(v, b)) return ETIMEDOUT;
        locked = true;
        // Another writer (or the eviction) changed the bucket meanwhile: fn sees the new value.
        if (
          !seqUnchanged(
            unlockedWord(seq, false),
            unlockedWord(Atomics.load(v.i32, b + BUCKET_SEQLOCK_I32), false),
          )
        )
          continue;
      }
      return insertNewLocked(v, b, hash, next, 0);
    }
  } finally {
    if (locked && v.lockedB === b) unlockBucket(v, b);
    v.elems.settle(v);
  }
}

/** Call a compute() callback with a copy of `old`'s value. Requires: bucket lock held. */
export function runCompute(v: HtabView, old: number, fn: ComputeFn): Uint8Array | undefined | null {
  let cur: Uint8Array | undefined;
  if (old !== 0) {
    v.computeBuf ??= new Uint8Array(v.valueBytes);
    cur = v.computeBuf;
    copyValueOut(v, old, cur, 0);
  }
  // The key words in scratch survive fn: fn may look keys up, which rewrites scratch.
  const keyCopy = v.kw.slice();
  v.computing = true;
  try {
    return fn(cur);
  } finally {
    v.computing = false;
    v.kw.set(keyCopy);
  }
}
