/**
 * Allocations that find only elements waiting for a grace period. While
 * program sections run, freed and replaced elements wait in limbo
 * (alloc/epoch.ts); a burst of short overlapping sections can hold every
 * free element there at once, and the map would answer "full" below
 * max_entries (the kernel's E2BIG point). Before it answers E2BIG (or
 * ENOMEM, LRU), an allocation waits, bounded, for the sections open now to
 * end and reclaims what they held. A section that stays open past the bound
 * (a long one, or a worker that died inside one and was never reaped) makes
 * the answer name its slot and how to recover it (reap(cpu)). Cold.
 */
import {
  limboReclaimAll,
  oldestSectionSlot,
  openSectionText,
  synchronizeSections,
} from "../../alloc/epoch.js";
import {
  HDR_ACTIVE_I32,
  HDR_LIMBO_COUNT_I32,
  PCPU_CLAIM_I32,
  PCPU_SECTION_I32,
  pcpuBase,
} from "../../layout/layout.js";
import { ALLOC_HELD } from "../../sentinels.js";
import { claimToken } from "../../sync/slot-claim.js";
import { nowMs, threadCanBlock } from "../../sync/spin.js";
import { freelistPop } from "../fast.js";
import { count, E2BIG, type HtabView } from "../htab-view.js";

/**
 * How long an allocation waits for a grace period. Short sections end in
 * microseconds, but a thread preempted inside one holds it for a scheduler
 * slice or more (8 workers on 2 cores: 50 ms was not always enough). The
 * caller may hold a bucket lock, whose waiters give up at LOCK_TIMEOUT_MS
 * (250 ms): the wait stays below it.
 */
export const GRACE_WAIT_MS = 200;

/**
 * Wait (`ms` at most) until every section open now has ended,
 * then reclaim every limbo list. Nothing is waited for when no element is
 * in limbo, or when this thread is in a section on this map through another
 * object (it would wait for itself); inside this view's own section, only
 * the other slots' sections are waited for, and the reclaim passes over what
 * this section referenced (held-refs.ts).
 * @returns -1 when the grace period passed (reclaimed elements are on the lists), else the slot
 *   holding the oldest section still open (or -2 when nothing waits in limbo)
 */
export function awaitGrace(v: HtabView, ms = GRACE_WAIT_MS): number {
  const i32 = v.i32;
  if (Atomics.load(i32, HDR_LIMBO_COUNT_I32) === 0) return -2;
  // A section of this thread cannot end while it waits. This view's own: wait for the other
  // slots' sections, then reclaim what only it holds up and never referenced (ownHeld()).
  // Another object's section of this thread: no wait helps.
  const own = ownSection(v);
  if (v.sectionDepth > 0) v.sectionGraceWaits++;
  const open =
    own < 0
      ? synchronizeSections(i32, v.nrCpus, ms)
      : v.sectionDepth > 0
        ? synchronizeSections(i32, v.nrCpus, ms, null, v.cpu)
        : oldestSectionSlot(i32, v.nrCpus);
  limboReclaimAll(i32, v.cpu, v.nrCpus, v.elems.sink, ownHeld(v));
  return open;
}

/**
 * For limboReclaim(): inside this view's own section, the elements it may
 * hold references to (held-refs.ts), so that limbo elements only its
 * section holds up and it never referenced are reclaimed; else null.
 */
export function ownHeld(v: HtabView): ((e: number) => boolean) | null {
  return v.sectionDepth > 0 ? v.heldFn : null;
}

/**
 * Whether element `e`, just unlinked, may be reused at once: no section is
 * open, or the only one is this view's own (ACTIVE counts it: 1) and it got
 * no reference to `e` (held-refs.ts). Read after the unlink (SeqCst): a
 * section entering later cannot find `e` (epoch.ts invariants). Hot: one
 * atomic load when no section is open.
 */
export function reusableNow(v: HtabView, e: number): boolean {
  const active = v.words.load(HDR_ACTIVE_I32);
  return active === 0 || (active === 1 && v.sectionDepth > 0 && !v.held.has(e));
}

/** A slot of this thread (its claim word holds this thread's token) whose section is open, or -1. */
export function ownSection(v: HtabView): number {
  if (v.sectionDepth > 0) return v.cpu;
  const me = claimToken();
  for (let c = 0; c < v.nrCpus; c++) {
    const p = pcpuBase(c);
    if (Atomics.load(v.i32, p + PCPU_SECTION_I32) !== 0 && Atomics.load(v.i32, p + PCPU_CLAIM_I32) === me)
      return c;
  }
  return -1;
}

/**
 * A preallocated map's allocation after the freelists came up empty:
 * wait for a grace period and pop again. Requires: bucket lock held (the
 * wait is bounded by GRACE_WAIT_MS).
 * `replace`: for a replace's element (the kernel's extra_elems), which may be
 * taken in a full map; it answers an element or 0, never ALLOC_HELD.
 * @returns an element; 0 when the map is full (max_entries keys, or nothing
 *   turned up within the bound); ALLOC_HELD when the elements
 *   that would make room are held by an open section (lastError says whose)
 */
export function allocAfterGrace(v: HtabView, replace = false): number {
  // Full as the kernel counts (max_entries keys): nothing to wait for, unless a replace needs its extra element.
  if (!replace && count(v) >= v.maxEntries) return 0;
  // Below it, an element is free, in flight or in limbo somewhere: other threads pop what a reclaim
  // freed, and a pop's scan of the lists can miss one moving between them. Retry within one bound.
  const until = nowMs() + GRACE_WAIT_MS;
  let open = -2;
  for (let tries = 0; ; tries++) {
    open = awaitGrace(v, Math.max(0, until - nowMs()));
    const e = freelistPop(v);
    if (e > 0) return e;
    // The other slots' sections have passed: what is left in limbo this view's own section holds.
    if (open === -1 && v.sectionDepth > 0) {
      open = v.cpu;
      break;
    }
    if (giveUp(v, until, replace)) break;
    if (tries >= 3) pause(v.i32);
  }
  if (open < 0 || replace) return 0;
  v.err.fail(
    E2BIG,
    `map full (${count(v)} of ${v.maxEntries} entries in use; ${Atomics.load(v.i32, HDR_LIMBO_COUNT_I32)} freed ` +
      `elements wait for program sections to end, and ${openSectionText(v.i32, open)})`,
  );
  return ALLOC_HELD;
}

/** allocAfterGrace() stops retrying: the bound passed, no wait helps, or the map filled up. */
function giveUp(v: HtabView, until: number, replace: boolean): boolean {
  // (Another object's section of this thread: no wait helps.)
  return (
    nowMs() >= until || (v.sectionDepth === 0 && ownSection(v) >= 0) || (!replace && count(v) >= v.maxEntries)
  );
}

/** The LRU's ENOMEM text when sections hold every evictable element (`open`: from awaitGrace()). */
export function heldText(v: HtabView, open: number): string {
  return open >= 0
    ? `no element could be evicted: freed elements wait for program sections to end, and ${openSectionText(v.i32, open)}`
    : "no element could be evicted (all are held by program sections)";
}

/** A short pause between retries (1 ms where this thread may block). */
export function pause(i32: Int32Array): void {
  if (threadCanBlock()) Atomics.wait(i32, HDR_LIMBO_COUNT_I32, Atomics.load(i32, HDR_LIMBO_COUNT_I32), 1);
}
