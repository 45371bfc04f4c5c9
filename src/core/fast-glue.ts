/**
 * The wasm fast path's calls, and when they apply. Each function runs the
 * wasm export when this view has one (and, for list operations, when the
 * list lock is uncontended), else the same operation in JS: the two paths
 * produce identical bytes (test/wasm/fast-path.test.ts compares them).
 */
import { noActiveSections } from "../alloc/epoch.js";
import { pcpuFreelistClaim, pcpuFreelistPop, pcpuFreelistPush } from "../alloc/pcpu-freelist.js";
import { HDR_ACTIVE_I32, PCPU_BASE_BYTES, PCPU_RECORD_BYTES } from "../layout/layout.js";
import { type FastPath, LOOKUP_COPY, LOOKUP_HASH } from "../wasm/fast-path.js";
import { copyBytesOut, keyToScratch } from "./elem.js";
import type { HtabView } from "./htab-view.js";

/**
 * lookupCopy() in wasm: the value lands in this slot's scratch and is copied
 * out once validated. Kept apart from lookupJs() so that each path inlines
 * on its own. @returns as lookupCopy(), or -1 when a writer holds the bucket
 */
export function lookupFast(
  v: HtabView,
  fast: FastPath,
  hash: number,
  out: Uint8Array | null,
  outOff: number,
): number {
  const e = fast.lookup(v.desc, hash, out === null ? 0 : LOOKUP_COPY);
  if (e > 0 && out !== null) copyBytesOut(v, v.outOff, out, outOff);
  return e;
}

/**
 * The whole lookup in one wasm call (key of whole words: hashed there too).
 * @returns the element, 0 when absent, -1 when a writer holds the bucket
 */
export function lookupKeyFast(v: HtabView, key: Uint8Array, out: Uint8Array | null): number {
  keyToScratch(v, key);
  const e = (v.fast as FastPath).lookup(v.desc, 0, out === null ? LOOKUP_HASH : LOOKUP_HASH | LOOKUP_COPY);
  if (e > 0 && out !== null) copyBytesOut(v, v.outOff, out, 0);
  return e;
}

/** pcpuFreelistPop() for this slot, in wasm unless a list lock is contended. */
export function freelistPop(v: HtabView): number {
  const fast = v.fast;
  if (fast !== null) {
    const e = fast.freelistPop(v.baseAddr, v.baseAddr + PCPU_BASE_BYTES, PCPU_RECORD_BYTES, v.cpu, v.nrCpus);
    if (e >= 0) return e;
  }
  return pcpuFreelistPop(v.i32, v.cpu, v.nrCpus);
}

/** pcpuFreelistClaim() of home element `h` for this slot (0: not free, or its list is busy). */
export function freelistClaim(v: HtabView, h: number): number {
  const fast = v.fast;
  if (fast !== null)
    return fast.freelistClaim(v.baseAddr, v.baseAddr + PCPU_BASE_BYTES, PCPU_RECORD_BYTES, v.cpu, h);
  return pcpuFreelistClaim(v.i32, v.cpu, h);
}

/** pcpuFreelistPush() onto this slot's list, in wasm unless its lock is contended. */
export function freelistPush(v: HtabView, e: number): void {
  const fast = v.fast;
  if (
    fast === null ||
    fast.freelistPush(v.baseAddr, v.baseAddr + PCPU_BASE_BYTES, PCPU_RECORD_BYTES, v.cpu, e) === 0
  )
    pcpuFreelistPush(v.i32, v.cpu, e);
}

/** noActiveSections(): no thread is inside a program section (frees may reuse at once). */
export function noSections(v: HtabView): boolean {
  const fast = v.fast;
  return fast !== null ? fast.load(v.baseAddr + (HDR_ACTIVE_I32 << 2)) === 0 : noActiveSections(v.i32);
}
