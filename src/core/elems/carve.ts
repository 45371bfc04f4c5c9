/**
 * Elements of a BPF_F_NO_PREALLOC map: carved from the end of a growable
 * SharedArrayBuffer on first use, then recycled through the per-CPU
 * freelists like preallocated ones. The map is full when the count reaches
 * max_entries (kernel: is_map_full()); there are no extra elements, so a
 * replace allocates and frees.
 */
import { limboPush } from "../../alloc/epoch.js";
import { Errno } from "../../errors.js";
import { HDR_CARVED_I32, HDR_GROW_LOCK_I32, PCPU_INFLIGHT_I32 } from "../../layout/layout.js";
import { ALLOC_NOMEM } from "../../sentinels.js";
import { lockAcquire, lockRelease } from "../../sync/owner-lock.js";
import { freelistPush } from "../fast.js";
import { count, type HtabView } from "../htab-view.js";
import { listTimedOut } from "../waits.js";
import { reusableNow } from "./grace.js";
import { allocElem, PreallocElems } from "./prealloc.js";

/**
 * Take a never-used element from the end of the buffer, growing the
 * (growable) SharedArrayBuffer first. Every view over it tracks its length,
 * so all attached threads see the new memory. Runs under a bucket lock: a
 * buffer that cannot grow is ALLOC_NOMEM (nothing taken, nothing thrown).
 * @returns the element, 0 when all are carved, ALLOC_TIMEDOUT, ALLOC_NOMEM
 */
export function carveElem(v: HtabView): number {
  const i32 = v.i32;
  if (!lockAcquire(i32, HDR_GROW_LOCK_I32, v.cpu)) return listTimedOut(v, "the map's grow lock");
  try {
    const n = Atomics.load(i32, HDR_CARVED_I32);
    if (n >= v.numElems) return 0;
    // Byte offsets pass 2^31 in maps over 2 GiB: multiply, never shift.
    const end = v.elemsBase * 4 + (n + 1) * v.elemStrideI32 * 4;
    const sab = v.handle.sab;
    if (!v.inDomain && sab.byteLength < end) {
      // Grow by at least an eighth of what is there, so growth is amortised.
      const want = Math.min(
        sab.maxByteLength,
        Math.max(end, sab.byteLength + Math.floor(sab.byteLength / 8)),
      );
      try {
        sab.grow(Math.ceil(want / 8) * 8);
      } catch (e) {
        v.err.fail(
          -Errno.ENOMEM,
          `cannot grow the map's buffer from ${sab.byteLength} to ${want} bytes: ${(e as Error)?.message ?? String(e)}`,
        );
        return ALLOC_NOMEM;
      }
    }
    const e = v.elemsBase + n * v.elemStrideI32;
    i32[v.myPcpu + PCPU_INFLIGHT_I32] = e;
    Atomics.store(i32, HDR_CARVED_I32, n + 1);
    return e;
  } finally {
    lockRelease(i32, HDR_GROW_LOCK_I32);
  }
}

/** NO_PREALLOC elements: the freelists first, then a carved one; bounded by max_entries. */
export class CarvedElems extends PreallocElems {
  override alloc(v: HtabView): number {
    if (count(v) >= v.maxEntries) return 0;
    return this.fresh(v);
  }

  protected override fresh(v: HtabView): number {
    const e = allocElem(v, false); // no grace wait: carving a new element makes room
    return e === 0 ? carveElem(v) : e;
  }

  /** A replace carves its new element too (no extras here). */
  protected override spare(v: HtabView): number {
    return this.fresh(v);
  }

  /** No extra elements: the old element is freed (kernel: free_htab_elem() after unlock). */
  protected override fileReplaced(v: HtabView, old: number): void {
    if (reusableNow(v, old)) freelistPush(v, old);
    else limboPush(v.i32, v.cpu, old);
  }
}
