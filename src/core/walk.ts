/**
 * Walks over the whole map (kernel: htab_map_get_next_key(),
 * __htab_map_lookup_and_delete_batch(), generic_map_update_batch(),
 * generic_map_delete_batch()): bucket by bucket, each chain in order, so
 * iteration order is the kernel's. get_next_key reads each bucket under its
 * seq; the batches hold one bucket lock at a time.
 */
import { Errno, invalid, showInput } from "../errors.js";
import {
  BUCKET_HEAD_I32,
  BUCKET_SEQLOCK_I32,
  ELEM_FNEXT_I32,
  ELEM_HASH_I32,
  ELEM_NEXT_I32,
} from "../layout/layout.js";
import type { BatchArgs, BatchResult } from "../map/raw-map.js";
import { seqReadable, seqUnchanged } from "../sync/bucket-seqlock.js";
import { SPIN_LIMIT } from "../sync/spin.js";
import { bucketOf, chainLength, lockBucket, unlinkLocked, unlockBucket } from "./bucket.js";
import {
  batchBuffers,
  batchErr,
  canRead,
  canWrite,
  checkElemFlags,
  checkFlagsArg,
  checkKey,
  checkNotComputing,
  permError,
} from "./checks.js";
import { copyKeyOut, copyValueOut, hashKey, hashKeyAt, keyEquals } from "./elem.js";
import { bucketAt, EINVAL, ENOENT, ENOSPC, ETIMEDOUT, EUCLEAN, type HtabView } from "./htab-view.js";
import { copyValueOutLocked } from "./value-lock.js";
import { readStalled } from "./waits.js";
import { deleteRaw, updateRaw } from "./write.js";

/** Htab.getNextKey()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function getNextKey(v: HtabView, key: Uint8Array | null, nextKey: Uint8Array): number {
  if (key !== null && key !== undefined) checkKey(v, "getNextKey", key);
  if (!(nextKey instanceof Uint8Array) || nextKey.length < v.keySize)
    invalid("getNextKey", `nextKey must be a Uint8Array of at least ${v.keySize} bytes`);
  if (!canRead(v)) return permError(v, false);
  const i32 = v.i32;
  let i = 0;
  if (key !== null && key !== undefined) {
    const hash = hashKey(v, key);
    const b = bucketOf(v, hash);
    const seqIdx = b + BUCKET_SEQLOCK_I32;
    for (let spins = 0; ; spins++) {
      const s = Atomics.load(i32, seqIdx);
      if (!seqReadable(s)) {
        if (spins > SPIN_LIMIT && readStalled(v, b, spins)) return ETIMEDOUT;
        continue;
      }
      let e = i32[b + BUCKET_HEAD_I32];
      let found = false;
      let next = 0;
      for (let steps = 0; e !== 0 && steps < v.walkBound; steps++) {
        if (i32[e + ELEM_HASH_I32] === hash && keyEquals(v, e)) {
          found = true;
          next = i32[e + ELEM_NEXT_I32];
          if (next !== 0) copyKeyOut(v, next, nextKey, 0);
          break;
        }
        e = i32[e + ELEM_NEXT_I32];
      }
      if (!seqUnchanged(s, Atomics.load(i32, seqIdx))) continue;
      if (found && next !== 0) return 0;
      i = found ? (hash & v.mask) + 1 : 0;
      break;
    }
  }
  for (; i <= v.mask; i++) {
    const b = bucketAt(v, i);
    const seqIdx = b + BUCKET_SEQLOCK_I32;
    for (let spins = 0; ; spins++) {
      const s = Atomics.load(i32, seqIdx);
      if (!seqReadable(s)) {
        if (spins > SPIN_LIMIT && readStalled(v, b, spins)) return ETIMEDOUT;
        continue;
      }
      const e = i32[b + BUCKET_HEAD_I32];
      if (e !== 0) copyKeyOut(v, e, nextKey, 0);
      if (!seqUnchanged(s, Atomics.load(i32, seqIdx))) continue;
      if (e !== 0) return 0;
      break;
    }
  }
  return v.err.fail(ENOENT, "no more keys");
}

export function lookupBatchRaw(v: HtabView, args: BatchArgs, doDelete: boolean): BatchResult {
  checkNotComputing(v, doDelete ? "lookupAndDeleteBatch" : "lookupBatch");
  let { keys, values } = batchBuffers(v, args, "lookup");
  // Buffers htab made (none given) hold what the map held at the start; they grow when a batch needs more.
  const grows = args.keys === undefined || args.values === undefined;
  const count = args.count;
  const res: BatchResult = { err: 0, count, outBatch: null, keys, values };
  const elemFlags = args.elemFlags ?? 0;
  const flags = args.flags ?? 0;
  checkFlagsArg(v, "lookupBatch", elemFlags);
  checkFlagsArg(v, "lookupBatch", flags);
  if (!canRead(v)) return batchErr(res, permError(v, false));
  if (doDelete && !canWrite(v)) return batchErr(res, permError(v, true));
  const badFlags = checkElemFlags(v, elemFlags);
  if (badFlags !== 0) return batchErr(res, badFlags);
  if (flags !== 0)
    return batchErr(res, v.err.fail(EINVAL, `batch flags must be 0, got 0x${flags.toString(16)}`));
  if (count === 0) return res;
  res.count = 0;
  const inBatch = args.inBatch ?? 0;
  if (!Number.isInteger(inBatch) || inBatch < 0 || inBatch > 0xffffffff)
    invalid("lookupBatch", `inBatch must be a u32 bucket cursor, got ${showInput(inBatch)}`);
  if (inBatch > v.mask) return batchErr(res, v.err.fail(ENOENT, "cursor is past the last bucket"));
  const i32 = v.i32;
  let batch = inBatch;
  let total = 0;
  let err = 0;
  for (;;) {
    const b = bucketAt(v, batch);
    let cnt = 0;
    if (Atomics.load(i32, b + BUCKET_HEAD_I32) !== 0) {
      if (!lockBucket(v, b)) {
        // Kernel: htab_lock_bucket() failing mid-batch. What was copied (and deleted)
        // stands; the cursor points at this bucket, so the caller can go on from it.
        err = ETIMEDOUT;
        break;
      }
      cnt = chainLength(v, b);
      if (cnt < 0) {
        // A damaged chain: what earlier buckets gave stands, as for ETIMEDOUT; this one is untouched.
        unlockBucket(v, b);
        err = v.err.fail(
          EUCLEAN,
          `corrupt map: bucket ${batch}'s chain has a cycle or a link outside the map`,
        );
        cnt = 0;
        break;
      }
      if (cnt > count - total) {
        unlockBucket(v, b);
        if (total === 0)
          err = v.err.fail(ENOSPC, `bucket ${batch} holds ${cnt} elements but count is ${count}`);
        break;
      }
      if (
        grows &&
        (keys.length < (total + cnt) * v.keySize || values.length < (total + cnt) * v.valueBytes)
      ) {
        // Allocate with no lock held, then take this bucket again.
        unlockBucket(v, b);
        const room = Math.min(count, Math.max(2 * (total + cnt), 64));
        try {
          if (args.keys === undefined) keys = grown(keys, room * v.keySize);
          if (args.values === undefined) values = grown(values, room * v.valueBytes);
        } catch (e) {
          err = v.err.fail(
            -Errno.ENOMEM,
            `cannot allocate a batch of ${room} entries: ${(e as Error)?.message}`,
          );
          break;
        }
        res.keys = keys;
        res.values = values;
        continue;
      }
      // Copy the whole bucket first, so a spin lock that times out leaves it untouched.
      let e = i32[b + BUCKET_HEAD_I32];
      let copied = true;
      for (let n = 0; e !== 0 && copied; n++, e = i32[e + ELEM_NEXT_I32]) {
        copyKeyOut(v, e, keys, (total + n) * v.keySize);
        if (elemFlags !== 0) copied = copyValueOutLocked(v, e, values, (total + n) * v.valueBytes);
        else copyValueOut(v, e, values, (total + n) * v.valueBytes);
      }
      if (!copied) {
        unlockBucket(v, b);
        err = ETIMEDOUT;
        break;
      }
      let toFree = 0;
      e = doDelete ? i32[b + BUCKET_HEAD_I32] : 0;
      const later = v.elems.freesAfterUnlock;
      while (e !== 0) {
        const next = i32[e + ELEM_NEXT_I32];
        if (!later) {
          unlinkLocked(v, b, e, 0);
          // Filed at once (lock order bucket -> freelist): INFLIGHT holds one element only.
          v.elems.free(v, e);
        } else {
          // LRU lists rank above bucket locks: free after unlock, last unlinked first (kernel: node_to_free).
          unlinkLocked(v, b, e, 0, toFree);
          toFree = e;
        }
        e = next;
      }
      unlockBucket(v, b);
      while (toFree !== 0) {
        const next = i32[toFree + ELEM_FNEXT_I32];
        v.elems.free(v, toFree); // filing it moves INFLIGHT on to `next`
        toFree = next;
      }
    }
    total += cnt;
    batch++;
    if (batch > v.mask) {
      err = v.err.fail(ENOENT, "reached the last bucket");
      break;
    }
  }
  res.err = err;
  res.count = total;
  res.outBatch = batch;
  return res;
}

/** Kernel: generic_map_update_batch(): update each pair with elem_flags; stop at the first error. */
export function updateBatch(v: HtabView, args: BatchArgs): BatchResult {
  return eachPair(v, args, "update", (keys, values, i, elemFlags) =>
    updateRaw(v, values, i * v.valueBytes, elemFlags, hashKeyAt(v, keys, i * v.keySize)),
  );
}

/** Kernel: generic_map_delete_batch(): delete each key; stop at the first error. */
export function deleteBatch(v: HtabView, args: BatchArgs): BatchResult {
  return eachPair(v, args, "delete", (keys, _values, i) =>
    deleteRaw(v, hashKeyAt(v, keys, i * v.keySize), null),
  );
}

/**
 * The generic_map_*_batch() loop: permission and elem_flags checked up front
 * (count comes back as passed), then `op` on each pair until one fails.
 */
function eachPair(
  v: HtabView,
  args: BatchArgs,
  mode: "update" | "delete",
  op: (keys: Uint8Array, values: Uint8Array, i: number, elemFlags: number) => number,
): BatchResult {
  const { keys, values } = batchBuffers(v, args, mode);
  const elemFlags = args.elemFlags ?? 0;
  checkFlagsArg(v, `${mode}Batch`, elemFlags);
  const res: BatchResult = { err: 0, count: args.count, outBatch: null, keys, values };
  if (!canWrite(v)) return batchErr(res, permError(v, true));
  const badFlags = checkElemFlags(v, elemFlags);
  if (badFlags !== 0) return batchErr(res, badFlags);
  if (args.count === 0) return res;
  let cp = 0;
  for (; cp < args.count; cp++) {
    const err = op(keys, values, cp, elemFlags);
    if (err !== 0) {
      res.err = err;
      break;
    }
  }
  res.count = cp;
  return res;
}

/** A copy of `buf` in a buffer of `bytes` (at least as long). */
function grown(buf: Uint8Array, bytes: number): Uint8Array {
  if (buf.length >= bytes) return buf;
  const out = new Uint8Array(bytes);
  out.set(buf);
  return out;
}
