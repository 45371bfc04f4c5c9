/**
 * Elements of a preallocated HASH or PERCPU_HASH map (kernel:
 * prealloc_init(), alloc_extra_elems(), pcpu_freelist_pop(),
 * free_htab_elem()): every element exists from creation and sits on a
 * per-CPU freelist, in a chain, in a CPU's extra slot, or in limbo.
 *
 * A replace takes this CPU's extra element and the replaced one becomes the
 * extra, so replacing never fails on a full map. While program sections are
 * active a freed or replaced element waits in limbo (alloc/epoch.ts).
 */
import { limboPush, limboReclaimAll } from "../../alloc/epoch.js";
import {
  BUCKET_HEAD_I32,
  BUCKET_HOME_I32,
  ELEM_TAG_I32,
  HDR_RECOVERED_I32,
  PCPU_EXTRA_I32,
  PCPU_INFLIGHT_I32,
} from "../../layout/layout.js";
import { ALLOC_CORRUPT, ALLOC_HELD, FREELIST_CORRUPT, FREELIST_TIMEDOUT } from "../../sentinels.js";
import { overwriteValueLocked, replaceLinkLocked } from "../bucket.js";
import { freelistClaim, freelistPop, freelistPush } from "../fast.js";
import { type ElemPolicy, EUCLEAN, type HtabView } from "../htab-view.js";
import { allocFailed, listTimedOut } from "../waits.js";
import { allocAfterGrace, ownHeld, reusableNow } from "./grace.js";

/**
 * A free element: this CPU's list, then the others', then whatever grace
 * periods released. 0 if none; ALLOC_TIMEDOUT when the lists that had
 * elements stayed locked (lastError says whose).
 */
export function allocElem(v: HtabView, grace = true): number {
  const e = freelistPop(v);
  if (e > 0) return e;
  if (limboReclaimAll(v.i32, v.cpu, v.nrCpus, null, ownHeld(v)) > 0) {
    const r = freelistPop(v);
    if (r > 0) return r;
  }
  if (e === FREELIST_TIMEDOUT) return listTimedOut(v, "a freelist");
  if (e === FREELIST_CORRUPT) {
    v.err.fail(EUCLEAN, "corrupt map: every freelist with elements has a link outside the map");
    return ALLOC_CORRUPT;
  }
  return grace ? allocAfterGrace(v) : 0; // only limbo left: wait for a grace period (grace.ts)
}

/**
 * A replaced element that program sections may still reference waits in
 * limbo; this CPU's extra slot is refilled from the freelist instead.
 * Requires: bucket lock held; `old` is this slot's INFLIGHT element.
 */
export function oldToLimbo(v: HtabView, old: number): void {
  const i32 = v.i32;
  const p = v.myPcpu;
  limboPush(i32, v.cpu, old);
  // A timed-out pop leaves EXTRA empty: the next replace allocates instead.
  i32[p + PCPU_EXTRA_I32] = Math.max(0, freelistPop(v));
  i32[p + PCPU_INFLIGHT_I32] = 0;
}

/** Refill this slot's empty EXTRA from the freelists (nothing when they are empty). Requires: bucket lock held. */
function refillExtra(v: HtabView): void {
  const x = freelistPop(v);
  if (x <= 0) return;
  v.i32[v.myPcpu + PCPU_EXTRA_I32] = x;
  v.i32[v.myPcpu + PCPU_INFLIGHT_I32] = 0;
}

/** Give element `x`, which nobody owns any more (a dead slot's), back to this slot's freelist (or limbo). */
function fileLost(v: HtabView, x: number): void {
  const i32 = v.i32;
  i32[x + ELEM_TAG_I32] = 0;
  i32[v.myPcpu + PCPU_INFLIGHT_I32] = x;
  v.elems.free(v, x);
  Atomics.add(i32, HDR_RECOVERED_I32, 1);
}

/** Preallocated elements: per-CPU freelists plus one extra element per CPU. */
export class PreallocElems implements ElemPolicy {
  readonly popsBeforeLock = false;
  readonly freesAfterUnlock = false;
  readonly sink = null;
  readonly lruLists = null;

  mustTakeFirst(): boolean {
    return false;
  }

  take(): number {
    return 0;
  }

  alloc(v: HtabView): number {
    // A replace inside a section left this slot's EXTRA empty (oldToLimbo()):
    // the first element free again is the extra's, not a new key's, so that
    // the map holds at most max_entries keys, as the kernel's.
    if (v.i32[v.myPcpu + PCPU_EXTRA_I32] === 0 && v.geometry.extra_elems > 0) refillExtra(v);
    return this.fresh(v);
  }

  /** An element off the freelists (or carved: carve.ts). */
  protected fresh(v: HtabView): number {
    return allocElem(v);
  }

  /**
   * This CPU's extra element goes in at the head and `old` becomes the extra
   * (kernel: the l_old branch of htab_map_update_elem() with extra_elems).
   */
  replaceLocked(v: HtabView, old: number, value: Uint8Array, valueOff: number): number {
    let e = v.i32[v.myPcpu + PCPU_EXTRA_I32];
    if (e === 0) e = this.spare(v);
    // Freed elements wait in limbo for other threads' sections, which may be reading `old`
    // through a reference: wait for a grace period (bounded, GRACE_WAIT_MS) rather than
    // write in place under them (seed 000's torn read, test/bpf/wasm/seed000.test.ts).
    if (e === 0) e = allocAfterGrace(v, true);
    if (e === 0 || e === ALLOC_HELD) {
      // Still none: this thread's own section holds them up, or sections never let up
      // within the bound. The kernel's replace never fails: write the value in place.
      overwriteValueLocked(v, old, value, valueOff);
      return 0;
    }
    if (e < 0) return allocFailed(v, e);
    replaceLinkLocked(v, e, old, value, valueOff);
    this.fileReplaced(v, old);
    return 0;
  }

  /** An element for a replace whose EXTRA is empty: a free one now, without a grace wait. */
  protected spare(v: HtabView): number {
    return allocElem(v, false);
  }

  /** File the element a replace unlinked (this slot's INFLIGHT). Requires: bucket lock held. */
  protected fileReplaced(v: HtabView, old: number): void {
    if (reusableNow(v, old)) {
      v.i32[v.myPcpu + PCPU_EXTRA_I32] = old;
      v.i32[v.myPcpu + PCPU_INFLIGHT_I32] = 0;
    } else oldToLimbo(v, old);
  }

  replacedInWasm(v: HtabView, old: number): void {
    // The wasm saw ACTIVE > 0 after the unlink; this view's own section alone, without a reference to `old`, lets it be the extra.
    if (reusableNow(v, old)) {
      v.i32[v.myPcpu + PCPU_EXTRA_I32] = old;
      v.i32[v.myPcpu + PCPU_INFLIGHT_I32] = 0;
    } else oldToLimbo(v, old);
  }

  takeAfterWasm(): number {
    throw new Error("htab: internal: the wasm LRU update ran on a map without LRU lists");
  }

  free(v: HtabView, e: number): void {
    // Read after the unlink: a section that could hold `e` is counted in ACTIVE
    // (this view's own section, when it never referenced `e`, cannot: grace.ts reusableNow()).
    if (!reusableNow(v, e)) limboPush(v.i32, v.cpu, e);
    else freelistPush(v, e);
  }

  settle(): void {}

  touch(): void {}

  /** `lost` exists: recovery cleared an element a dead NO_PREALLOC carver never carved (step 1b). */
  recoverOwned(v: HtabView, _d: number, lost: number): void {
    if (lost !== 0) fileLost(v, lost);
  }
}

/**
 * Preallocated elements of a map whose bucket records hold home elements
 * (layout.ts): a new key takes its bucket's home element when that is free,
 * so that a lookup of it touches one cache line; otherwise a freelist's.
 */
export class HomedElems extends PreallocElems {
  protected override fresh(v: HtabView): number {
    const h = v.lockedB + BUCKET_HOME_I32;
    if (h < v.homeEnd) {
      const e = freelistClaim(v, h);
      if (e > 0) return e;
    }
    return allocElem(v);
  }

  /**
   * A replace moves the key out of the element it was in; when that was the
   * bucket's home (now this CPU's free EXTRA, no section can hold it), a
   * second replace moves it back, so that updates keep keys at home.
   */
  override replaceLocked(v: HtabView, old: number, value: Uint8Array, valueOff: number): number {
    const b = v.lockedB;
    const r = super.replaceLocked(v, old, value, valueOff);
    if (r !== 0 || old !== b + BUCKET_HOME_I32 || v.i32[v.myPcpu + PCPU_EXTRA_I32] !== old) return r;
    v.foundPrev = 0; // the replace put the key at the head
    return super.replaceLocked(v, v.i32[b + BUCKET_HEAD_I32], value, valueOff);
  }
}
