/**
 * The chain and lock of one bucket (kernel: htab_lock_bucket(),
 * htab_unlock_bucket(), lookup_elem_raw(), hlist_nulls_add_head_rcu() and
 * hlist_nulls_del_rcu()).
 *
 * A bucket is four words (layout.ts BUCKET_*): the chain head, the seqlock
 * word, the owner slot + 1, and its home element's state. Writers hold the
 * lock and change links only after markDirty(); readers (lookup.ts) retry
 * while WRITING is set or the seq moved. Linking a bucket's home element
 * into its chain sets HOME_LINKED, unlinking it sets HOME_TAKEN, both inside
 * that write section (homeLinked()), so a reader that finds its key in the
 * home element under an unchanged seq has found a linked element.
 *
 * Lock order: layout.ts (no operation holds two bucket locks).
 * Every mutation of a chain records its intent first (PCPU_INTENT_*), so
 * that crash/recovery.ts can finish or undo it if this thread dies mid-way.
 */

import { BpfError, Errno } from "../errors.js";
import {
  BUCKET_HEAD_I32,
  BUCKET_HOME_I32,
  BUCKET_HOME_STATE_I32,
  BUCKET_OWNER_I32,
  BUCKET_SEQLOCK_I32,
  ELEM_FNEXT_I32,
  ELEM_HASH_I32,
  ELEM_NEXT_I32,
  HOME_LINKED,
  HOME_TAKEN,
  OP_INSERT,
  OP_NONE,
  OP_REPLACE,
  OP_UNLINK,
  PCPU_COUNT_I32,
  PCPU_INFLIGHT_I32,
  PCPU_INTENT_BUCKET_I32,
  PCPU_INTENT_COUNT_I32,
  PCPU_INTENT_ELEM_I32,
  PCPU_INTENT_OLD_I32,
  PCPU_INTENT_OP_I32,
  PCPU_LRU_SPARE_I32,
} from "../layout/layout.js";
import { bucketBeginWrite, bucketLock, SEQ_WAITERS, unlockedWord } from "../sync/bucket-seqlock.js";
import { fillElem, keyEquals } from "./elem.js";
import { bucketNumber, type HtabView } from "./htab-view.js";
import { bucketTimedOut } from "./waits.js";

export function bucketOf(v: HtabView, hash: number): number {
  return v.bucketsBase + (hash & v.mask) * v.bucketStrideI32;
}

/**
 * Take bucket `b`'s lock (lock order: layout.ts).
 * @returns false when another holder kept it past LOCK_TIMEOUT_MS: nothing
 * is taken, and lastError says whose it was (kernel: htab_lock_bucket()
 * failing with -ETIMEDOUT on its rqspinlock)
 */
export function lockBucket(v: HtabView, b: number): boolean {
  const i32 = v.i32;
  i32[v.myPcpu + PCPU_INTENT_BUCKET_I32] = b; // before the CAS: a recoverer must see it
  // The uncontended CAS through the view's words (one wasm instruction on the fast path); contended, the JS wait.
  if (!v.words.trySeqLock(b + BUCKET_SEQLOCK_I32) && !bucketLock(i32, b + BUCKET_SEQLOCK_I32)) {
    i32[v.myPcpu + PCPU_INTENT_BUCKET_I32] = 0;
    bucketTimedOut(v, b, "the lock of");
    return false;
  }
  i32[b + BUCKET_OWNER_I32] = v.cpu + 1; // who holds it, for fsck and crash recovery
  v.lockedB = b;
  return true;
}

/**
 * Mark the bucket this thread holds as being written, before the first
 * store a lock-free reader could see (a chain link, a value in place).
 * Requires: bucket lock held. Publish: readers retry from here to the unlock.
 */
export function markDirty(v: HtabView): void {
  if (v.dirty) return;
  v.dirty = true;
  bucketBeginWrite(v.i32, v.lockedB + BUCKET_SEQLOCK_I32);
}

/** Drop bucket `b`'s lock; readers retry only if the chain changed. */
export function unlockBucket(v: HtabView, b: number): void {
  const i32 = v.i32;
  i32[b + BUCKET_OWNER_I32] = 0;
  // No call between the OWNER clear and the exchange (see deadHoldsBucket()).
  const idx = b + BUCKET_SEQLOCK_I32;
  const next = unlockedWord(i32[idx], v.dirty);
  const prev = v.words.exchange(idx, next);
  if ((prev & SEQ_WAITERS) !== 0) Atomics.notify(i32, idx, 1);
  v.dirty = false;
  v.lockedB = 0;
  i32[v.myPcpu + PCPU_INTENT_OP_I32] = OP_NONE;
  i32[v.myPcpu + PCPU_INTENT_BUCKET_I32] = 0;
}

/**
 * Find the scratch key in bucket `b`. Requires: bucket lock held.
 * Kernel: lookup_elem_raw(). Out: `v.foundPrev`, the predecessor (0 = head).
 */
export function lookupElemLocked(v: HtabView, b: number, hash: number): number {
  const i32 = v.i32;
  // linkInMap()'s bounds and the walk bound, hoisted: one unsigned compare per link.
  const lo = v.bucketsBase;
  const span = i32.length - v.elemStrideI32 - lo;
  const bound = v.numElems;
  let prev = 0;
  let e = i32[b + BUCKET_HEAD_I32];
  for (let steps = 0; e !== 0; steps++) {
    // Bounded by the element count, each link inside the map: a damaged chain never holds the lock for ever.
    if (steps >= bound || (e - lo) >>> 0 > span) corruptChain(v, b, prev, e, steps);
    if (i32[e + ELEM_HASH_I32] === hash && keyEquals(v, e)) {
      v.foundPrev = prev;
      return e;
    }
    prev = e;
    e = i32[e + ELEM_NEXT_I32];
  }
  v.foundPrev = 0;
  return 0;
}

/**
 * Predecessor of `x` in bucket `b`'s chain (0 = head), or -1 if absent or
 * the chain is damaged (an eviction then leaves `x` alone, and fsck reports
 * the chain). Requires: bucket lock held.
 */
export function chainPrev(v: HtabView, b: number, x: number): number {
  const i32 = v.i32;
  let prev = 0;
  let e = i32[b + BUCKET_HEAD_I32];
  for (let n = 0; e !== 0; n++) {
    if (n >= v.numElems || !linkInMap(v, e)) return -1;
    if (e === x) return prev;
    prev = e;
    e = i32[e + ELEM_NEXT_I32];
  }
  return -1;
}

/** Record what the next chain change is, for recovery if this thread dies mid-way. */
export function intent(v: HtabView, op: number, e: number, old: number): void {
  const i32 = v.i32;
  const p = v.myPcpu;
  i32[p + PCPU_INTENT_ELEM_I32] = e;
  i32[p + PCPU_INTENT_OLD_I32] = old;
  i32[p + PCPU_INTENT_COUNT_I32] = i32[p + PCPU_COUNT_I32];
  i32[p + PCPU_INTENT_OP_I32] = op;
}

/** Only this slot's owner writes its counter, so a plain store is enough; count() reads it atomically. */
export function addCount(v: HtabView, delta: number): void {
  const i = v.myPcpu + PCPU_COUNT_I32;
  v.i32[i] = (v.i32[i] + delta) | 0;
}

/**
 * Record that `e` was linked into (true) or unlinked from bucket `b`'s chain,
 * if it is b's home element. Requires: bucket lock held, inside its write section.
 */
export function homeLinked(i32: Int32Array, b: number, e: number, linked: boolean): void {
  if (e === b + BUCKET_HOME_I32)
    Atomics.store(i32, b + BUCKET_HOME_STATE_I32, linked ? HOME_LINKED : HOME_TAKEN);
}

/** Requires: bucket lock held. Kernel: hlist_nulls_del_rcu(). */
export function unlinkLocked(v: HtabView, b: number, e: number, prev: number, chain = 0): void {
  const i32 = v.i32;
  // Intent first: INFLIGHT == e with no intent would read as "e is lost" while still linked.
  intent(v, OP_UNLINK, e, 0);
  // INFLIGHT heads a chain (by FNEXT) of elements this slot unlinked and has not
  // filed yet (LRU maps: an LRU repair leaves them to us; others file each at once,
  // so `chain` is 0). Linked before published; filing e rewrites its FNEXT.
  i32[e + ELEM_FNEXT_I32] = chain;
  // From the unlink until the policy's free() files it, e is ours alone.
  i32[v.myPcpu + PCPU_INFLIGHT_I32] = e;
  // e keeps its NEXT: a reader standing on it can still walk on (and will retry).
  markDirty(v);
  if (prev === 0) i32[b + BUCKET_HEAD_I32] = i32[e + ELEM_NEXT_I32];
  else i32[prev + ELEM_NEXT_I32] = i32[e + ELEM_NEXT_I32];
  homeLinked(i32, b, e, false);
  addCount(v, -1);
}

/**
 * Fill the popped element `e` and publish it at the head of bucket `b`.
 * Requires: bucket lock held; `e` is this slot's INFLIGHT element.
 * Kernel: alloc_htab_elem() + hlist_nulls_add_head_rcu().
 */
export function insertLocked(
  v: HtabView,
  b: number,
  e: number,
  hash: number,
  value: Uint8Array,
  valueOff: number,
): void {
  const i32 = v.i32;
  intent(v, OP_INSERT, e, 0);
  fillElem(v, e, hash, value, valueOff);
  markDirty(v);
  i32[e + ELEM_NEXT_I32] = i32[b + BUCKET_HEAD_I32];
  i32[b + BUCKET_HEAD_I32] = e; // Publish: the new element is reachable from here.
  homeLinked(i32, b, e, true);
  addCount(v, 1);
  i32[v.myPcpu + PCPU_INFLIGHT_I32] = 0;
  i32[v.myPcpu + PCPU_LRU_SPARE_I32] = 0; // linked: a repair finds it in its chain
}

/**
 * Link the private element `e`, filled with `value`, at the head of bucket
 * `b` in place of live element `old` (predecessor `prevOld`, 0 = head), in
 * one seq write section. From here until it is filed, `old` is this slot's
 * (recovery reads INFLIGHT == old). Requires: bucket lock held.
 */
export function replaceLinkLocked(
  v: HtabView,
  e: number,
  old: number,
  value: Uint8Array,
  valueOff: number,
): void {
  const i32 = v.i32;
  const b = v.lockedB;
  const prevOld = v.foundPrev;
  intent(v, OP_REPLACE, e, old);
  fillElem(v, e, i32[old + ELEM_HASH_I32], value, valueOff);
  markDirty(v);
  i32[e + ELEM_NEXT_I32] = i32[b + BUCKET_HEAD_I32];
  i32[b + BUCKET_HEAD_I32] = e;
  homeLinked(i32, b, e, true);
  i32[v.myPcpu + PCPU_INFLIGHT_I32] = old;
  i32[(prevOld === 0 ? e : prevOld) + ELEM_NEXT_I32] = i32[old + ELEM_NEXT_I32];
  homeLinked(i32, b, old, false);
}

/**
 * Whether link `e` may be followed: an element that lies wholly inside this
 * map, at or past its first bucket record (containment: a link into another
 * map of a domain, or past the end, is refused; fsck checks alignment).
 */
export function linkInMap(v: HtabView, e: number): boolean {
  return e >= v.bucketsBase && e <= v.i32.length - v.elemStrideI32;
}

/**
 * A chain under this thread's lock is damaged (a cycle, or a link outside
 * the map): release the lock without a seq step (nothing was written), give
 * back what the operation took, and answer EUCLEAN. The map is as it was;
 * the rest of it keeps serving, and fsck() describes the damage.
 * Requires: bucket lock held.
 */
export function corruptChain(v: HtabView, b: number, prev: number, e: number, steps: number): never {
  const what =
    steps >= v.numElems
      ? `its chain is longer than the map's ${v.numElems} elements (a cycle)`
      : `${prev === 0 ? "its head" : `element ${prev}'s next link`} is ${e}, outside the map`;
  const n = bucketNumber(v, b);
  if (v.lockedB === b) unlockBucket(v, b);
  v.elems.settle(v);
  throw new BpfError(
    "map",
    Errno.EUCLEAN,
    `corrupt map: bucket ${n}: ${what}; nothing changed (fsck() describes the damage)`,
  );
}

/**
 * The number of elements on bucket `b`'s chain, or -1 when it is damaged (a
 * cycle, or a link outside the map). Requires: bucket lock held.
 */
export function chainLength(v: HtabView, b: number): number {
  const i32 = v.i32;
  let n = 0;
  for (let e = i32[b + BUCKET_HEAD_I32]; e !== 0; e = i32[e + ELEM_NEXT_I32]) {
    if (n >= v.numElems || !linkInMap(v, e)) return -1;
    n++;
  }
  return n;
}

/**
 * Overwrite live element `e`'s value where it is (kernel: the in-place
 * branch of htab_map_update_elem()). Requires: bucket lock held. Copying
 * readers retry while it is written (WRITING); references (lookupRef) see
 * the new bytes, as a BPF program sees an in-place update.
 */
export function overwriteValueLocked(v: HtabView, e: number, value: Uint8Array, valueOff: number): void {
  const dst = e * 4 + v.valueOffBytes;
  const u8 = v.u8;
  markDirty(v); // readers must not accept a half-written value
  for (let i = 0; i < v.valueBytes; i++) u8[dst + i] = value[valueOff + i];
}
