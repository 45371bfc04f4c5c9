/**
 * Insert, replace and delete under the bucket lock (kernel:
 * htab_map_update_elem(), htab_lru_map_update_elem(),
 * htab_map_delete_elem(), and their wasm versions in fast-path.wat).
 *
 * Every function here that changes a chain records its intent, marks the
 * bucket dirty before the first store a reader could see, and leaves the
 * element it took or freed where crash/recovery.ts can find it (INFLIGHT).
 */
import { PCPU_INFLIGHT_I32 } from "../layout/layout.js";
import { WASM_FROZEN, WASM_LRU_POPPED, WASM_LRU_REPLACED, WASM_LRU_STEAL, WASM_RETRY } from "../sentinels.js";
import { hasLockFlag, MapFlags, UpdateFlags, withoutLockFlag } from "../uapi.js";
import {
  bucketOf,
  insertLocked,
  lockBucket,
  lookupElemLocked,
  markDirty,
  overwriteValueLocked,
  unlinkLocked,
  unlockBucket,
} from "./bucket.js";
import { canWrite, checkFlags, checkNotComputing, noSpinLock, permError } from "./checks.js";
import { copyValueOut, fastKey, scratchHash, valueAt, valueToScratch } from "./elem.js";
import { ownSection } from "./elems/grace.js";
import type { FastPlan } from "./fast-plan.js";
import { EEXIST, EINVAL, ENOENT, ENOMEM, ERR_FLAGS, ETIMEDOUT, type HtabView } from "./htab-view.js";
import { copyValueOutLocked, writeValueLocked } from "./value-lock.js";
import { allocFailed } from "./waits.js";

/** updateRaw() in wasm. @returns as updateElem(), or WASM_RETRY when the JS path must run it */
export function updateFast(
  v: HtabView,
  f: FastPlan,
  key: Uint8Array,
  value: Uint8Array,
  flags: number,
): number {
  const hash = fastKey(v, f.wordKeys, key);
  valueToScratch(v, value);
  return updateFastScratch(v, f, hash, flags);
}

/**
 * The wasm update of the key and value already in this slot's scratch;
 * `hash`: as fastKey() gives it. @returns as updateFast()
 */
export function updateFastScratch(v: HtabView, f: FastPlan, hash: number, flags: number): number {
  checkNotComputing(v, "update");
  if ((v.mapFlags & MapFlags.Rdonly) !== 0) return permError(v, true); // FROZEN: checked in wasm
  const r = f.update(hash, flags);
  if (r === 0 || r === WASM_RETRY) return r;
  return updateFastResult(v, r, flags);
}

/** What a wasm update's result other than 0 and WASM_RETRY means (cold). @returns as updateElem() */
export function updateFastResult(v: HtabView, r: number, flags: number): number {
  if (r === WASM_FROZEN) return permError(v, true);
  if (r === WASM_LRU_REPLACED) {
    v.elems.free(v, v.i32[v.myPcpu + PCPU_INFLIGHT_I32]); // kernel: htab_lru_push_free() of the old element
    return 0;
  }
  if (r === WASM_LRU_STEAL || r === WASM_LRU_POPPED) {
    // The wasm LRU popped (or refilled and found nothing): the rest as in updateLru().
    const t = v.elems.takeAfterWasm(v, r === WASM_LRU_STEAL);
    if (t === ENOMEM) return lruHeldByOwnSection(v, v.valueScratch, 0, flags, scratchHash(v), false);
    if (t !== 0) return t;
    return updateLruLocked(v, v.valueScratch, 0, flags, scratchHash(v), false);
  }
  if (r === EEXIST) return v.err.fail(EEXIST, "key already exists (BPF_NOEXIST)");
  if (r === ENOENT) return v.err.fail(ENOENT, "key not found (BPF_EXIST)");
  // WASM_REPLACED_IN_SECTION: finish replaceLocked()'s section branch, then unlock.
  v.elems.replacedInWasm(v, v.i32[v.myPcpu + PCPU_INFLIGHT_I32]);
  v.dirty = true; // wasm set WRITING before it relinked
  unlockBucket(v, bucketOf(v, scratchHash(v)));
  return 0;
}

/** deleteRaw() in wasm. @returns as deleteElem(), or WASM_RETRY when the JS path must run it */
export function deleteFast(v: HtabView, f: FastPlan, key: Uint8Array): number {
  return deleteFastScratch(v, f, fastKey(v, f.wordKeys, key));
}

/** The wasm delete of the key already in this slot's scratch. @returns as deleteFast() */
export function deleteFastScratch(v: HtabView, f: FastPlan, hash: number): number {
  checkNotComputing(v, "delete");
  if ((v.mapFlags & MapFlags.Rdonly) !== 0) return permError(v, true); // FROZEN: checked in wasm
  const r = f.delete(hash);
  if (r === 0 || r === WASM_RETRY) return r;
  return deleteFastResult(v, r);
}

/** What a wasm delete's result other than 0 and WASM_RETRY means (cold). @returns as deleteElem() */
export function deleteFastResult(v: HtabView, r: number): number {
  if (r === WASM_FROZEN) return permError(v, true);
  if (r === ENOENT) return v.err.fail(ENOENT, "key not found");
  v.elems.free(v, r); // unlinked and unlocked; sections are active or our list's lock was held
  return 0;
}

/**
 * Update with the key already in scratch (kernel: htab_map_update_elem(),
 * htab_lru_map_update_elem()), from the control plane: update and
 * update_batch, which BPF_F_RDONLY and a frozen map refuse (EPERM).
 */
export function updateRaw(
  v: HtabView,
  value: Uint8Array,
  valueOff: number,
  flags: number,
  hash: number,
): number {
  if (!canWrite(v)) {
    checkNotComputing(v, "update"); // first, as updateAny() checks it
    return permError(v, true);
  }
  return updateAny(v, value, valueOff, flags, hash);
}

/**
 * updateRaw() without the control plane's permission: a program's update.
 * BPF_F_RDONLY and BPF_MAP_FREEZE hold syscall writes only (kernel:
 * map_freeze(), "write operations from eBPF programs are still possible").
 */
export function updateAny(
  v: HtabView,
  value: Uint8Array,
  valueOff: number,
  flags: number,
  hash: number,
): number {
  checkNotComputing(v, "update");
  return v.elems.popsBeforeLock
    ? updateLru(v, value, valueOff, flags, hash, false)
    : updateHash(v, value, valueOff, flags, hash);
}

/** Update on a HASH or PERCPU_HASH map, preallocated or not. */
function updateHash(v: HtabView, value: Uint8Array, valueOff: number, flags: number, hash: number): number {
  const lock = hasLockFlag(flags);
  if (lock && v.spinLockOff < 0) return noSpinLock(v);
  const mode = withoutLockFlag(flags);
  if (mode > UpdateFlags.Exist) return v.err.failWith(EINVAL, ERR_FLAGS, flags);
  const b = bucketOf(v, hash);
  if (!lockBucket(v, b)) return ETIMEDOUT;
  const old = lookupElemLocked(v, b, hash);
  const bad = checkFlags(v, old, mode);
  if (bad !== 0) {
    unlockBucket(v, b);
    return bad;
  }
  let err = 0;
  if (old !== 0 && lock) {
    // BPF_F_LOCK updates an existing value in place, under its spin lock.
    err = writeValueLocked(v, old, value, valueOff);
  } else if (old !== 0) err = replaceLocked(v, old, value, valueOff);
  else err = insertNewLocked(v, b, hash, value, valueOff);
  unlockBucket(v, b);
  return err;
}

/**
 * Update on an LRU map (kernel: htab_lru_map_update_elem() and
 * __htab_lru_percpu_map_update_elem()). The element is popped first, which
 * may evict another key even when the update then fails (EEXIST, ENOENT),
 * exactly as in the kernel. A per-CPU LRU map with BPF_EXIST pops nothing.
 * `oneCpu`: a program's update of a per-CPU map writes only its CPU's slot.
 */
export function updateLru(
  v: HtabView,
  value: Uint8Array,
  valueOff: number,
  flags: number,
  hash: number,
  oneCpu: boolean,
): number {
  if (flags > UpdateFlags.Exist)
    return hasLockFlag(flags)
      ? v.err.fail(EINVAL, "BPF_F_LOCK is not supported on LRU maps")
      : v.err.failWith(EINVAL, ERR_FLAGS, flags);
  if (!(v.percpu && flags === UpdateFlags.Exist)) {
    const t = v.elems.take(v);
    if (t !== 0) return t === ENOMEM ? lruHeldByOwnSection(v, value, valueOff, flags, hash, oneCpu) : t;
  }
  return updateLruLocked(v, value, valueOff, flags, hash, oneCpu);
}

/**
 * An LRU update found no element because every one it could evict would
 * wait for this thread's own open section (which cannot end meanwhile): a
 * present key's value is written in place, as the kernel's update would
 * succeed; a new key keeps ENOMEM (lastError names the section). Any other
 * ENOMEM is returned as it is. @returns 0 or a negative errno
 */
function lruHeldByOwnSection(
  v: HtabView,
  value: Uint8Array,
  valueOff: number,
  flags: number,
  hash: number,
  oneCpu: boolean,
): number {
  if (ownSection(v) < 0 || flags === UpdateFlags.NoExist) return ENOMEM;
  const b = bucketOf(v, hash);
  if (!lockBucket(v, b)) return ETIMEDOUT;
  const old = lookupElemLocked(v, b, hash);
  if (old !== 0) {
    v.elems.touch(v, old);
    if (oneCpu) writeSlot(v, old, value);
    else if (v.inPlace) writeInPlaceLocked(v, old, value, valueOff);
    else overwriteValueLocked(v, old, value, valueOff);
  }
  unlockBucket(v, b);
  return old !== 0 ? 0 : ENOMEM;
}

/** updateLru() after the pop (kernel: the part of htab_lru_map_update_elem() under the bucket lock). */
function updateLruLocked(
  v: HtabView,
  value: Uint8Array,
  valueOff: number,
  flags: number,
  hash: number,
  oneCpu: boolean,
): number {
  const b = bucketOf(v, hash);
  if (!lockBucket(v, b)) {
    v.elems.settle(v); // kernel: htab_lru_push_free() of the popped element on a lock failure
    return ETIMEDOUT;
  }
  const old = lookupElemLocked(v, b, hash);
  // On a refused update the popped element goes back in settle().
  const err = checkFlags(v, old, flags);
  if (err === 0) {
    if (old !== 0 && oneCpu) {
      v.elems.touch(v, old);
      writeSlot(v, old, value);
    } else if (old !== 0) replaceLocked(v, old, value, valueOff);
    else if (oneCpu) insertLocked(v, b, v.elems.alloc(v), hash, initPercpu(v, value), 0);
    else insertLocked(v, b, v.elems.alloc(v), hash, value, valueOff);
  }
  unlockBucket(v, b);
  v.elems.settle(v);
  return err;
}

/**
 * Replace live element `old` of the bucket this thread holds (predecessor
 * `v.foundPrev`, 0 = head) by `value`.
 * Requires: bucket lock held. The one value-mode branch: per-CPU values and
 * a hash of maps' inner map ids are overwritten where they are (kernel:
 * htab_map_update_elem_in_place()); other maps link a new element at the
 * head of the bucket and unlink `old` (the element policy says where the new
 * one comes from), so iteration order is the kernel's. @returns 0, -E2BIG, -ETIMEDOUT
 */
export function replaceLocked(v: HtabView, old: number, value: Uint8Array, valueOff: number): number {
  if (v.inPlace) return writeInPlaceLocked(v, old, value, valueOff);
  return v.elems.replaceLocked(v, old, value, valueOff);
}

/**
 * compareAndSwap() and compute() on a present key. A policy that pops
 * before the bucket lock (LRU) writes the value in place: a new element
 * would have to be popped, which may evict (even this key), so the swap
 * could fail by its own doing. Requires: bucket lock held.
 */
export function swapLocked(v: HtabView, old: number, value: Uint8Array, valueOff: number): number {
  if (v.elems.popsBeforeLock) return writeInPlaceLocked(v, old, value, valueOff);
  return replaceLocked(v, old, value, valueOff);
}

/**
 * Insert the scratch key with `value` (a new element from the policy).
 * Requires: bucket lock held; the key is absent. @returns 0, -E2BIG, -ETIMEDOUT
 */
export function insertNewLocked(
  v: HtabView,
  b: number,
  hash: number,
  value: Uint8Array,
  valueOff: number,
): number {
  const e = v.elems.alloc(v);
  if (e <= 0) return allocFailed(v, e);
  insertLocked(v, b, e, hash, value, valueOff);
  return 0;
}

/**
 * Overwrite live element `old`'s value where it is. Requires: bucket lock
 * held. Copying readers retry while it is written (WRITING); references
 * (lookupRef) see the new bytes, as a BPF program sees an in-place update.
 * @returns 0
 */
export function writeInPlaceLocked(v: HtabView, old: number, value: Uint8Array, valueOff: number): number {
  overwriteValueLocked(v, old, value, valueOff);
  v.elems.touch(v, old);
  return 0;
}

/** Overwrite this CPU's slot of per-CPU element `e` in place. Requires: bucket lock held. */
export function writeSlot(v: HtabView, e: number, value: Uint8Array): void {
  const dst = valueAt(v, e, v.cpu);
  markDirty(v);
  for (let i = 0; i < v.valueSize; i++) v.u8[dst + i] = value[i];
}

/** pcpu_init_value(): a new key's value, this CPU's slot from `value` and the others zero. */
export function initPercpu(v: HtabView, value: Uint8Array): Uint8Array {
  const scratch = (v.computeBuf ??= new Uint8Array(v.valueBytes));
  scratch.fill(0);
  scratch.set(value, v.cpu * v.slotBytes);
  return scratch;
}

/** Delete the scratch key, copying its value into `out` first when given. */
export function deleteRaw(v: HtabView, hash: number, out: Uint8Array | null, lock = false): number {
  if (!canWrite(v)) {
    checkNotComputing(v, "delete"); // first, as deleteAny() checks it
    return permError(v, true);
  }
  return deleteAny(v, hash, out, lock);
}

/** deleteRaw() without the control plane's permission (a program's delete: see updateAny()). */
export function deleteAny(v: HtabView, hash: number, out: Uint8Array | null, lock = false): number {
  checkNotComputing(v, "delete");
  const b = bucketOf(v, hash);
  if (!lockBucket(v, b)) return ETIMEDOUT;
  const e = lookupElemLocked(v, b, hash);
  if (e === 0) {
    unlockBucket(v, b);
    return v.err.fail(ENOENT, "key not found");
  }
  if (out !== null) {
    if (!lock) copyValueOut(v, e, out, 0);
    else if (!copyValueOutLocked(v, e, out, 0)) {
      unlockBucket(v, b);
      return ETIMEDOUT;
    }
  }
  unlinkLocked(v, b, e, v.foundPrev);
  unlockBucket(v, b);
  v.elems.free(v, e);
  return 0;
}

/** updateElem() of the key and value in this slot's scratch (Htab.keyScratch, valueScratch). */
export function updateScratch(v: HtabView, flags: number): number {
  const f = v.fast;
  if (f?.writes && flags <= UpdateFlags.Exist) {
    const r = updateFastScratch(v, f, f.wordKeys ? 0 : scratchHash(v), flags);
    if (r !== WASM_RETRY) return r;
  }
  return updateRaw(v, v.valueScratch, 0, flags, scratchHash(v));
}

/** deleteElem() of the key in this slot's scratch. */
export function deleteScratch(v: HtabView): number {
  const f = v.fast;
  if (f?.writes) {
    const r = deleteFastScratch(v, f, f.wordKeys ? 0 : scratchHash(v));
    if (r !== WASM_RETRY) return r;
  }
  return deleteRaw(v, scratchHash(v), null);
}
