/**
 * Elements of an LRU_HASH or LRU_PERCPU_HASH map (kernel: bpf_lru_list.c's
 * users in hashtab.c: prealloc_lru_pop(), htab_lru_map_delete_node(),
 * htab_lru_push_free()). Every element is on the LRU's lists
 * (alloc/bpf-lru.ts); an update pops its element before it takes the
 * bucket lock, evicting the least recently used key when none is free, so
 * an LRU map never answers E2BIG.
 *
 * The LRU lists rank above bucket locks (lock order: layout.ts), so nothing
 * here pops or pushes while a bucket lock is held: popped elements wait in `spare`, replaced ones in
 * `lruOld`, until settle().
 */
import { BpfLru } from "../../alloc/bpf-lru.js";
import { limboPush, limboReclaimAll } from "../../alloc/epoch.js";
import { DEL_DEFERRED, DEL_FREED, DEL_NOT_FOUND } from "../../alloc/lru-nodes.js";
import { Errno } from "../../errors.js";
import {
  BUCKET_OWNER_I32,
  ELEM_FNEXT_I32,
  ELEM_HASH_I32,
  HDR_ACTIVE_I32,
  HDR_LRU_REPAIR_I32,
  HDR_RECOVERED_I32,
  PCPU_INFLIGHT_I32,
  PCPU_INTENT_BUCKET_I32,
  PCPU_LRU_SPARE_I32,
  pcpuBase,
  SCRATCH_EVICT_TIMEDOUT_I32,
} from "../../layout/layout.js";
import { LRU_CORRUPT, LRU_RETRY } from "../../sentinels.js";
import { nowMs } from "../../sync/spin.js";
import {
  bucketOf,
  chainPrev,
  lockBucket,
  overwriteValueLocked,
  replaceLinkLocked,
  unlinkLocked,
  unlockBucket,
} from "../bucket.js";
import { noSections } from "../fast.js";
import { type ElemPolicy, ETIMEDOUT, EUCLEAN, elemOf, type HtabView, nodeOf } from "../htab-view.js";
import { bucketTimedOut, listTimedOut } from "../waits.js";
import { awaitGrace, GRACE_WAIT_MS, heldText, ownHeld, ownSection, pause, reusableNow } from "./grace.js";
import { lruRepair } from "./lru-repair.js";

/**
 * Evict node `n`'s element if it is still linked (kernel: htab_lru_map_delete_node()).
 * Called by the LRU with one of its locks held; takes the element's bucket lock.
 */
function lruDelFromHtab(v: HtabView, p: LruElems, n: number): number {
  const i32 = v.i32;
  const e = elemOf(v, n);
  // Evicted now, the element would wait in limbo for this thread's own open section, which cannot
  // end before this allocation does: the eviction would only lose the key. Leave it linked, unless
  // that section is the only one open and never referenced it (then it is reused at once, below).
  if (!noSections(v) && ownSection(v) >= 0 && !reusableNow(v, e)) return DEL_NOT_FOUND;
  // HASH may be stale for a node popped but not yet linked: then the walk misses it, as it should.
  const b = bucketOf(v, i32[e + ELEM_HASH_I32]);
  const inflight = v.myPcpu + PCPU_INFLIGHT_I32;
  const saved = i32[inflight];
  // A bucket held past the timeout: not evicted, the LRU moves on (kernel: the same).
  if (!lockBucket(v, b)) {
    p.evictTimedOut = true;
    return DEL_NOT_FOUND;
  }
  const prev = chainPrev(v, b, e);
  if (prev < 0) {
    unlockBucket(v, b);
    return DEL_NOT_FOUND;
  }
  unlinkLocked(v, b, e, prev);
  unlockBucket(v, b);
  // The LRU files e under the lock it holds, so e is never ours alone: restore INFLIGHT.
  // (Read after the unlink: no section, or only this view's own, which never referenced e.)
  if (reusableNow(v, e)) {
    i32[inflight] = saved;
    return DEL_FREED;
  }
  limboPush(i32, v.cpu, e);
  i32[inflight] = saved;
  return DEL_DEFERRED;
}

/**
 * Whether this view's section is the only one open and holds a reference to
 * element `e` (held-refs.ts). Read under `e`'s bucket lock.
 */
function heldByOwnSectionOnly(v: HtabView, e: number): boolean {
  return v.sectionDepth > 0 && v.held.has(e) && v.words.load(HDR_ACTIVE_I32) === 1;
}

/**
 * Pop this operation's element before any bucket lock is taken, evicting if
 * the map is full. Elements waiting in limbo are reclaimed if nothing else
 * is free. @returns false when no element could be had (ENOMEM)
 */
function lruTake(v: HtabView, p: LruElems): number {
  // Elements whose grace period has passed go back first: evicting a live key
  // while freed ones wait in limbo would evict more than the kernel does.
  limboReclaimAll(v.i32, v.cpu, v.nrCpus, v.elems.sink as (e: number) => void, ownHeld(v));
  p.evictTimedOut = false;
  return lruTaken(v, p, p.lruLists.popFree());
}

/**
 * lruTake() from its first popFree() result `n` on. `open`: undefined until
 * a grace period was waited for, then awaitGrace()'s result.
 */
function lruTaken(v: HtabView, p: LruElems, n: number, open?: number): number {
  const lru = p.lruLists;
  while (n === LRU_RETRY) {
    if (lru.timedOut) {
      lru.timedOut = false;
      listTimedOut(v, "an LRU list");
      return ETIMEDOUT;
    }
    // A repair that timed out leaves its flag raised for a later attempt: back out.
    if (!lruRepair(v, p.lruLists, -1)) return ETIMEDOUT;
    n = lru.popFree();
  }
  if (n === LRU_CORRUPT) return lruCorrupt(v, lru);
  // Nothing evictable: a candidate's bucket stayed locked (lastError says whose), or sections hold them all:
  // then wait (bounded) for those sections to end and try once more (grace.ts).
  // (Elements another thread unlinked and is about to file are not in limbo yet: retry for the same bound.)
  if (n < 0 && !p.evictTimedOut && open === undefined) {
    const until = nowMs() + GRACE_WAIT_MS;
    let o = -2;
    do {
      o = awaitGrace(v, Math.max(0, until - nowMs()));
      n = p.lruLists.popFree();
      if (n !== -1) return lruTaken(v, p, n, o);
      if (ownSection(v) >= 0) break; // this thread's own section: no wait helps
      pause(v.i32);
    } while (nowMs() < until);
    return lruTaken(v, p, n, o);
  }
  if (n < 0) return p.evictTimedOut ? ETIMEDOUT : v.err.fail(-Errno.ENOMEM, heldText(v, open ?? -1));
  p.spare = elemOf(v, n);
  return 0;
}

/** The LRU's lists are damaged (BpfLru.damage says where): EUCLEAN, every LRU lock released, nothing taken. */
function lruCorrupt(v: HtabView, lru: BpfLru): number {
  const what = lru.damage;
  lru.damage = "";
  return v.err.fail(EUCLEAN, `corrupt map: LRU: ${what}; nothing changed (fsck() describes the damage)`);
}

/**
 * File unlinked element `e` as free, repairing first if a repair is pending.
 * Bounded: when its list stays locked past the timeout, or a pending repair
 * times out, `e` is left to the repair instead: the repair flag is raised,
 * and `e` leaves this slot's INFLIGHT chain, so that the repair (which files
 * every element linked nowhere and owned by nobody as free) files it.
 */
function lruPush(v: HtabView, p: LruElems, e: number): void {
  // A repair leaves our INFLIGHT chain off every list, so pushing again is safe.
  const lru = p.lruLists;
  while (!lru.pushFree(nodeOf(v, e))) {
    if (lru.damage !== "") {
      // Damaged lists: `e` stays this slot's INFLIGHT, lost to the map (fsck reports the lists and it).
      lru.damage = "";
      return;
    }
    if (lru.timedOut) {
      lru.timedOut = false;
      v.recover(); // a dead holder's lock is released by its recovery
      if (lru.pushFree(nodeOf(v, e))) return;
      if (lru.timedOut) lru.timedOut = false;
    } else if (lruRepair(v, p.lruLists, -1)) continue;
    leaveToRepair(v, e);
    return;
  }
}

/** lruPush() gave up on `e`: raise the repair flag and disown `e` (the repair files it as free). */
function leaveToRepair(v: HtabView, e: number): void {
  const i32 = v.i32;
  Atomics.store(i32, HDR_LRU_REPAIR_I32, 1);
  const inflight = v.myPcpu + PCPU_INFLIGHT_I32;
  if (i32[inflight] === e) {
    i32[inflight] = i32[e + ELEM_FNEXT_I32];
    return;
  }
  // Further down the chain (bounded by the element count): unlink it from there.
  for (let p = i32[inflight], k = 0; p !== 0 && k < v.walkBound; p = i32[p + ELEM_FNEXT_I32], k++)
    if (i32[p + ELEM_FNEXT_I32] === e) {
      i32[p + ELEM_FNEXT_I32] = i32[e + ELEM_FNEXT_I32];
      return;
    }
}

/**
 * The wasm LRU trapped on damage: release every LRU lock this slot holds
 * and, should it hold a bucket (the wasm path traps holding none), that
 * too, with a seq step (readers retry), so the JS path can redo the call.
 */
function lruTrapped(v: HtabView, lru: BpfLru): void {
  lru.releaseDead(v.cpu);
  const b = v.i32[v.myPcpu + PCPU_INTENT_BUCKET_I32];
  if (b !== 0 && v.i32[b + BUCKET_OWNER_I32] === v.cpu + 1) {
    v.lockedB = b;
    v.dirty = true;
    unlockBucket(v, b);
  }
}

/** After the bucket lock is dropped: return an unused element, free a replaced one. */
function lruSettle(v: HtabView, p: LruElems): void {
  if (p.swapOld !== 0) {
    // The popped element leaves from the replaced one's place (see replaceLocked()); on a busy lock or a
    // repair it leaves from its own (only the LRU order differs from the kernel's).
    if (p.spare !== 0 && !p.lruLists.swapPlaces(nodeOf(v, p.swapOld), nodeOf(v, p.spare)))
      p.lruLists.damage = "";
    p.swapOld = 0;
  }
  if (p.spare !== 0) {
    v.i32[v.myPcpu + PCPU_LRU_SPARE_I32] = 0; // no longer "about to be linked": a repair may file it
    lruPush(v, p, p.spare);
    p.spare = 0;
  }
  if (p.old !== 0) {
    v.elems.free(v, p.old);
    p.old = 0;
  }
}

/** The LRU policy: one per view, with the view's BpfLru and this operation's LRU state. */
export class LruElems implements ElemPolicy {
  readonly popsBeforeLock = true;
  readonly freesAfterUnlock = true;
  readonly sink: (e: number) => void;
  /** The LRU's lists as this view sees them (alloc/bpf-lru.ts). */
  readonly lruLists: BpfLru;
  /** The element popped for this operation before its bucket lock (kernel: prealloc_lru_pop()), or 0. */
  spare = 0;
  /** The element a replace took out, freed after the bucket lock is dropped, or 0. */
  old = 0;
  /** An eviction this operation tried gave up on a bucket lock (take() answers ETIMEDOUT). */
  evictTimedOut = false;
  /** A replace wrote in place into this element (a reference of this view's section holds it), or 0: settle() swaps it with `spare`. */
  swapOld = 0;

  constructor(v: HtabView) {
    this.sink = (e) => lruPush(v, this, e);
    const i32 = v.i32;
    const inflight = v.myPcpu + PCPU_INFLIGHT_I32;
    const spare = v.myPcpu + PCPU_LRU_SPARE_I32;
    this.lruLists = new BpfLru(
      i32,
      v.geometry,
      HDR_LRU_REPAIR_I32,
      v.cpu,
      (n) => lruDelFromHtab(v, this, n),
      (n) => {
        // Popped: ours, and about to be linked (a repair leaves it pending on us).
        const e = elemOf(v, n);
        i32[e + ELEM_FNEXT_I32] = 0;
        i32[inflight] = e;
        i32[spare] = e;
      },
      (n) => {
        const e = elemOf(v, n);
        if (i32[inflight] === e) i32[inflight] = i32[e + ELEM_FNEXT_I32]; // next of an unlinked chain, or 0
      },
      v.words,
    );
    // A damaged LRU link traps the wasm LRU update (no bucket lock held): free our LRU locks, JS redoes it.
    if (v.fast !== null) v.fast.onTrap = () => lruTrapped(v, this.lruLists);
  }

  mustTakeFirst(): boolean {
    return this.spare === 0;
  }

  take(v: HtabView): number {
    return lruTake(v, this);
  }

  /** The element take() popped (kernel: prealloc_lru_pop() before the bucket lock). */
  alloc(): number {
    const e = this.spare;
    this.spare = 0;
    return e;
  }

  /**
   * After the wasm update popped (POPPED: this slot's LRU_SPARE is the
   * element) or refilled and found nothing (`steal`: the steal is left to
   * JS, with any bucket an eviction gave up on). @returns as take()
   */
  takeAfterWasm(v: HtabView, steal: boolean): number {
    if (!steal) {
      this.spare = v.i32[v.myPcpu + PCPU_LRU_SPARE_I32];
      return 0;
    }
    const b = v.i32[v.scratchDesc + SCRATCH_EVICT_TIMEDOUT_I32];
    this.evictTimedOut = b !== 0;
    if (b !== 0) bucketTimedOut(v, b, "the lock of");
    return lruTaken(v, this, this.lruLists.steal());
  }

  /** The popped element goes in, referenced (it replaces a live key); `old` is freed after the unlock. */
  replaceLocked(v: HtabView, old: number, value: Uint8Array, valueOff: number): number {
    if (this.spare !== 0 && heldByOwnSectionOnly(v, old)) {
      // This view's section, the only one open, holds a reference into `old`: freed, it would wait in limbo
      // until the section ends and the run would evict one key more than the kernel. `old` keeps the key
      // (the value written in place: only this thread can read it through a reference, between its own
      // calls) and takes the popped node's place in the LRU after the unlock (settle()), and the popped
      // element is freed from `old`'s place: the lists end as the kernel's.
      overwriteValueLocked(v, old, value, valueOff);
      this.lruLists.setRef(nodeOf(v, this.spare)); // kernel: bpf_lru_node_set_ref() of the new node
      this.swapOld = old;
      return 0;
    }
    const e = this.alloc();
    v.i32[old + ELEM_FNEXT_I32] = 0; // it will head this slot's INFLIGHT chain
    replaceLinkLocked(v, e, old, value, valueOff);
    v.i32[v.myPcpu + PCPU_LRU_SPARE_I32] = 0; // linked: a repair finds it in its chain
    this.touch(v, e);
    this.old = old;
    return 0;
  }

  replacedInWasm(): void {
    throw new Error("htab: internal: the wasm LRU update reports a replace as WASM_LRU_REPLACED");
  }

  free(v: HtabView, e: number): void {
    // Read after the unlink: a section that could hold `e` is counted in ACTIVE
    // (this view's own section, when it never referenced `e`, cannot: grace.ts reusableNow()).
    if (!reusableNow(v, e)) limboPush(v.i32, v.cpu, e, true);
    else lruPush(v, this, e); // kernel: htab_lru_push_free()
  }

  settle(v: HtabView): void {
    lruSettle(v, this);
  }

  touch(v: HtabView, e: number): void {
    this.lruLists.setRef(nodeOf(v, e));
  }

  /** The lists are re-created (which also files what `d` owned), now if this thread holds nothing. */
  recoverOwned(v: HtabView, d: number, lost: number): void {
    const i32 = v.i32;
    const lru = this.lruLists;
    const p = pcpuBase(d);
    // A repair an earlier recovery backed out of (a lock another dead slot held) is retried too.
    const pending = Atomics.load(i32, HDR_LRU_REPAIR_I32) !== 0;
    if (!pending && !lru.holdsAny(d) && lost === 0 && i32[p + PCPU_LRU_SPARE_I32] === 0) return;
    // Raised before `d`'s LRU locks are freed: whoever takes one next backs out and repairs.
    Atomics.store(i32, HDR_LRU_REPAIR_I32, 1);
    i32[p + PCPU_LRU_SPARE_I32] = 0;
    Atomics.add(i32, HDR_RECOVERED_I32, lru.releaseDead(d));
    // Repair now if we hold nothing; otherwise the next thread to take an LRU lock does.
    if (i32[v.myPcpu + PCPU_INTENT_BUCKET_I32] === 0 && !lru.holdsAny(v.cpu)) lruRepair(v, lru, d);
  }
}
