/**
 * Lock-free reads (kernel: htab_map_lookup_elem() over
 * lookup_nulls_elem_raw()). A reader samples the bucket seq, walks the
 * chain, copies what it found, and keeps the result only if the seq is
 * unchanged and no write was in progress: an element freed and reused
 * meanwhile (into this or another bucket) cannot give a false-positive key
 * match or a torn value.
 */
import {
  BUCKET_HEAD_I32,
  BUCKET_SEQLOCK_I32,
  ELEM_HASH_I32,
  ELEM_NEXT_I32,
  MANY_CHUNK,
} from "../layout/layout.js";
import { READ_TIMEDOUT } from "../sentinels.js";
import { seqReadable, seqUnchanged } from "../sync/bucket-seqlock.js";
import { SPIN_LIMIT } from "../sync/spin.js";
import { bucketOf } from "./bucket.js";
import { copyBytesOut, copyValueOut, hashKey, hashKeyAt, keyEquals, scratchHash } from "./elem.js";
import { hasWhole, lookupHashed } from "./fast.js";
import { ENOENT, ETIMEDOUT, type HtabView } from "./htab-view.js";
import { enter, exit } from "./section.js";
import { copyValueOutLocked } from "./value-lock.js";
import { readStalled } from "./waits.js";

/**
 * Lock-free lookup of the scratch key; copies the value into `out` when found.
 * Returns the element, validated as linked while it was read, or 0.
 * Kernel: lookup_nulls_elem_raw(), with the bucket seq in place of the nulls check.
 */
export function lookupCopy(v: HtabView, hash: number, out: Uint8Array | null, outOff: number): number {
  const f = v.fast;
  if (f !== null && (out === null || f.values)) {
    const e = lookupHashed(v, f, hash, out, outOff);
    if (e >= 0) return e;
    // -1: a holder is writing the bucket; the JS walk below spins (bounded).
  }
  return lookupJs(v, hash, out, outOff);
}

/** lookupCopy() in JS. */
export function lookupJs(v: HtabView, hash: number, out: Uint8Array | null, outOff: number): number {
  const i32 = v.i32;
  const b = bucketOf(v, hash);
  const seqIdx = b + BUCKET_SEQLOCK_I32;
  for (let spins = 0; ; spins++) {
    const s = Atomics.load(i32, seqIdx);
    if (!seqReadable(s)) {
      // A holder is relinking the chain or rewriting a value in place: a few stores, spin.
      // (A holder that merely holds the lock, like a running compute() callback, blocks no reader.)
      if (spins > SPIN_LIMIT && readStalled(v, b, spins)) return READ_TIMEDOUT;
      continue;
    }
    let e = i32[b + BUCKET_HEAD_I32];
    let found = 0;
    for (let steps = 0; e !== 0 && steps < v.walkBound; steps++) {
      if (i32[e + ELEM_HASH_I32] === hash && keyEquals(v, e)) {
        if (out !== null) copyValueOut(v, e, out, outOff);
        found = e;
        break;
      }
      e = i32[e + ELEM_NEXT_I32];
    }
    // Validate: nothing we read was relinked or reused while we read it.
    if (seqUnchanged(s, Atomics.load(i32, seqIdx))) return found;
  }
}

/** Lock-free search for the scratch key; returns the element, validated as linked, or 0. */
export function findElem(v: HtabView, hash: number): number {
  return lookupCopy(v, hash, null, 0);
}

/**
 * BPF_F_LOCK lookup: find the element, then copy under its spin lock. A
 * section keeps the element from being reused while we hold its lock word.
 */
export function lookupLocked(v: HtabView, hash: number, out: Uint8Array): number {
  enter(v);
  try {
    const e = findElem(v, hash);
    if (e === READ_TIMEDOUT) return ETIMEDOUT;
    if (e === 0) return v.err.fail(ENOENT, "key not found");
    return copyValueOutLocked(v, e, out, 0) ? 0 : ETIMEDOUT;
  } finally {
    exit(v);
  }
}

/**
 * A control-plane lookup of `key` into `value` (kernel: map_lookup_elem()).
 * Requires: arguments checked, flags 0. @returns 0, -ENOENT, -ETIMEDOUT
 */
export function lookupElem(v: HtabView, key: Uint8Array, value: Uint8Array): number {
  // The facade already tried the whole lookup in wasm where it applies (Htab.lookupElem()).
  return lookupErrno(v, lookupCopy(v, hashKey(v, key), value, 0));
}

/** A lookupCopy() result as an errno: 0 when found, else -ETIMEDOUT (lastError set by the wait) or -ENOENT. */
function lookupErrno(v: HtabView, e: number): number {
  if (e > 0) return 0;
  if (e === READ_TIMEDOUT) return ETIMEDOUT;
  return v.err.fail(ENOENT, "key not found");
}

/** Whether `key` is present (a lookup that copies nothing). Requires: arguments checked. */
export function hasElem(v: HtabView, key: Uint8Array): boolean {
  const f = v.fast;
  const e = f?.wordKeys ? hasWhole(v, f, key) : -1;
  return e > 0 || (e < 0 && lookupCopy(v, hashKey(v, key), null, 0) > 0);
}

/**
 * Look up `results.length` keys (`keys`: count x key_size bytes) into
 * `values` (count x value bytes): `results[i]` is 0 or -ENOENT (or
 * -ETIMEDOUT). Each key's lookup is linearizable on its own, with the same
 * seq validation as a single lookup. On the fast path the keys go through
 * wasm MANY_CHUNK at a time, every key's bucket and first element touched
 * before any lookup depends on them, so that their cache misses overlap.
 * Requires: arguments checked. @returns the number found
 */
export function lookupMany(v: HtabView, keys: Uint8Array, values: Uint8Array, results: Int32Array): number {
  const count = results.length;
  const ks = v.keySize;
  const vb = v.valueBytes;
  let found = 0;
  let i = 0;
  const f = v.fast;
  if (f !== null && f.manyBytes !== 0) {
    const i32 = v.i32;
    const kw = ks >> 2;
    const keysW = (v.outOff + v.geometry.scratchValueBytes) >> 2;
    const outs = (keysW << 2) + MANY_CHUNK * ks;
    const resW = (outs + MANY_CHUNK * v.geometry.scratchValueBytes) >> 2;
    const step = v.geometry.scratchValueBytes;
    const touch = v.geometry.cached ? 0 : 1;
    for (; i < count; i += MANY_CHUNK) {
      const n = Math.min(MANY_CHUNK, count - i);
      for (let j = 0, o = i * ks, w = keysW; j < n * kw; j++, o += 4, w++)
        i32[w] = keys[o] | (keys[o + 1] << 8) | (keys[o + 2] << 16) | (keys[o + 3] << 24);
      f.lookupMany(n, touch);
      for (let j = 0; j < n; j++) {
        const r = i32[resW + j];
        const at = i + j;
        if (r > 0) {
          copyBytesOut(v, outs + j * step, values, at * vb);
          results[at] = 0;
          found++;
        } else if (r === 0) results[at] = ENOENT;
        else results[at] = lookupOne(v, keys, at, values); // a writer held the bucket
      }
    }
    return found;
  }
  for (; i < count; i++) {
    const r = lookupOne(v, keys, i, values);
    results[i] = r;
    if (r === 0) found++;
  }
  return found;
}

/** Key `i` of `keys` into value slot `i` of `values`. @returns 0, -ENOENT, -ETIMEDOUT */
function lookupOne(v: HtabView, keys: Uint8Array, i: number, values: Uint8Array): number {
  return lookupErrno(v, lookupCopy(v, hashKeyAt(v, keys, i * v.keySize), values, i * v.valueBytes));
}

/** lookupElem() of the key in this slot's scratch into its scratch value (Htab.keyScratch, valueScratch). */
export function lookupScratch(v: HtabView): number {
  const out = v.valueScratch;
  const f = v.fast;
  if (f?.wordKeys && f.values) {
    // wasm copies the value straight into the scratch value: no copy out.
    const e = f.lookupWhole();
    if (e > 0) {
      if (v.spinLockOff >= 0) out.fill(0, v.spinLockOff, v.spinLockOff + 4); // reads as zero
      return 0;
    }
    if (e === 0) return v.err.fail(ENOENT, "key not found");
  }
  return lookupErrno(v, lookupCopy(v, scratchHash(v), out, 0));
}
