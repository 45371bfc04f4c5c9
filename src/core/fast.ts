/**
 * The fast path's calls that have a JS twin: each runs the FastPlan call
 * (fast-plan.ts) when the view has one and, for list operations, when the
 * list lock is uncontended, else the same operation in JS. The two paths
 * produce identical bytes (test/wasm/fast-path.test.ts compares them).
 */
import { pcpuFreelistClaim, pcpuFreelistPop, pcpuFreelistPush } from "../alloc/pcpu-freelist.js";
import { HDR_ACTIVE_I32 } from "../layout/layout.js";
import { copyBytesOut, keyToScratch } from "./elem.js";
import type { FastPlan } from "./fast-plan.js";
import type { HtabView } from "./htab-view.js";

/**
 * lookupCopy() in wasm with the caller's `hash`: the value lands in this
 * slot's scratch and is copied out once validated. Kept apart from the JS
 * walk so that each path inlines on its own.
 * @returns as lookupCopy(), or -1 when a writer holds the bucket
 */
export function lookupHashed(
  v: HtabView,
  f: FastPlan,
  hash: number,
  out: Uint8Array | null,
  outOff: number,
): number {
  const e = f.lookupHashed(hash, out !== null);
  if (e > 0 && out !== null) copyBytesOut(v, v.outOff, out, outOff);
  return e;
}

/** Whether `key` is present, in one wasm call (word keys). @returns as FastPlan.hasWhole() */
export function hasWhole(v: HtabView, f: FastPlan, key: Uint8Array): number {
  keyToScratch(v, key);
  return f.hasWhole();
}

/** pcpuFreelistPop() for this slot, in wasm unless a list lock is contended. */
export function freelistPop(v: HtabView): number {
  const f = v.fast;
  if (f !== null) {
    const e = f.freelistPop(v.cpu, v.nrCpus);
    if (e >= 0) return e;
  }
  return pcpuFreelistPop(v.i32, v.cpu, v.nrCpus, v.bucketsBase);
}

/** pcpuFreelistClaim() of home element `h` for this slot (0: not free, or its list is busy). */
export function freelistClaim(v: HtabView, h: number): number {
  const f = v.fast;
  if (f !== null) return f.freelistClaim(v.cpu, h);
  return pcpuFreelistClaim(v.i32, v.cpu, h, v.bucketsBase);
}

/**
 * pcpuFreelistPush() onto this slot's list, in wasm unless its lock is
 * contended. When every list stayed locked or is damaged, `e` stays this
 * slot's INFLIGHT (fsck and recovery find it there) and is lost to the map.
 */
export function freelistPush(v: HtabView, e: number): void {
  const f = v.fast;
  if (f === null || f.freelistPush(v.cpu, e) === 0) pcpuFreelistPush(v.i32, v.cpu, e, v.bucketsBase);
}

/** noActiveSections(): no thread is inside a program section (frees may reuse at once). */
export function noSections(v: HtabView): boolean {
  return v.words.load(HDR_ACTIVE_I32) === 0;
}
