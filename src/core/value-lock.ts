/**
 * A value's bpf_spin_lock (kernel: copy_map_value_locked() and the
 * BPF_F_LOCK update path). The lock word lives in the value; control-plane
 * copies take it, and it always reads as zero (elem.ts copyBytesOut()).
 */
import { lockAcquire, lockRelease } from "../sync/owner-lock.js";
import { markDirty } from "./bucket.js";
import { copyValueOut } from "./elem.js";
import { ETIMEDOUT, type HtabView } from "./htab-view.js";
import { listTimedOut } from "./waits.js";

/**
 * Copy a value out holding its spin lock (kernel: copy_map_value_locked()).
 * @returns false when the spin lock stayed held past LOCK_TIMEOUT_MS (nothing copied; lastError says whose)
 */
export function copyValueOutLocked(v: HtabView, e: number, out: Uint8Array, outOff: number): boolean {
  const lockIdx = e + ((v.valueOffBytes + v.spinLockOff) >> 2);
  if (!lockAcquire(v.i32, lockIdx, v.cpu)) {
    listTimedOut(v, "the value's bpf_spin_lock");
    return false;
  }
  copyValueOut(v, e, out, outOff);
  lockRelease(v.i32, lockIdx);
  return true;
}

/**
 * Write `value` into a live element in place, under its spin lock, leaving
 * the lock word alone. Requires: bucket lock held. @returns 0 or -ETIMEDOUT (nothing written)
 */
export function writeValueLocked(v: HtabView, e: number, value: Uint8Array, valueOff: number): number {
  const lockIdx = e + ((v.valueOffBytes + v.spinLockOff) >> 2);
  if (!lockAcquire(v.i32, lockIdx, v.cpu)) {
    listTimedOut(v, "the value's bpf_spin_lock");
    return ETIMEDOUT;
  }
  markDirty(v); // copying readers must not accept a half-written value
  const u8 = v.u8;
  const dst = e * 4 + v.valueOffBytes;
  const lo = v.spinLockOff;
  for (let i = 0; i < v.valueSize; i++) if (i < lo || i >= lo + 4) u8[dst + i] = value[valueOff + i];
  lockRelease(v.i32, lockIdx);
  return 0;
}
