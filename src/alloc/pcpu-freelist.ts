/**
 * Per-CPU freelists of preallocated elements (kernel: percpu_freelist.c).
 * Each CPU slot has a list head guarded by its own small lock; a CPU pushes
 * to its own list and pops from its own first, then steals from the others
 * in CPU order.
 *
 * Lists are doubly linked (FNEXT, and FPREV in the TAG word) so that a home
 * claim (pcpuFreelistClaim()) can take a home element out of the middle of
 * whichever list holds it in O(1). A home element's HOME_STATE names its
 * list while it is on one (HOME_LISTED(c) = c + 1) and is HOME_TAKEN once it
 * is off; only the holder of that list's lock writes it (layout.ts).
 *
 * Lock order: layout.ts (a freelist lock ranks last: never held while
 * taking any other lock).
 *
 * Bounded waits: a pop skips a list whose lock it could not take within
 * LOCK_TIMEOUT_MS and reports FREELIST_TIMEDOUT when that left it with
 * nothing; a push (the element is already off its chain and must be filed)
 * goes to the next CPU's list instead, so a dead holder of one list's lock
 * delays it by one timeout, not for ever. A claim never waits: a held lock
 * sends it to the pop.
 *
 * Damaged memory: every link a list operation follows is checked first
 * (listLinkOk(): an element header wholly inside the map, at or past `lo`,
 * the map's first bucket record). A pop skips a list whose head or links
 * fail it and reports FREELIST_CORRUPT when that left it with nothing; a
 * push gives up after every list was tried once (the element stays this
 * slot's INFLIGHT, where fsck and recovery see it).
 *
 * Crash safety: an element between a list and a chain is recorded in its
 * owner's INFLIGHT word: set under the lock before a pop or claim unlinks
 * it, cleared under the lock after a push links it. A half-done push, pop
 * or claim therefore never loses an element, and recovery re-derives the
 * back links and home states of a list whose lock a dead slot held
 * (pcpuFreelistRelink()).
 */

import {
  ELEM_FNEXT_I32,
  ELEM_FPREV_I32,
  ELEM_HOME_STATE_I32,
  HDR_HOME_END_I32,
  HOME_TAKEN,
  headerNrCpus,
  PCPU_FL_HEAD_I32,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  pcpuBase,
} from "../layout/layout.js";
import { FREELIST_CORRUPT, FREELIST_TIMEDOUT } from "../sentinels.js";
import { lockAcquire, lockRelease, lockTry } from "../sync/owner-lock.js";
import { stalled } from "../sync/spin.js";

/** Words of an element header every list operation reads or writes (NEXT, HASH, FNEXT, FPREV). */
const ELEM_HEADER_WORDS = 4;

/**
 * Whether list link `e` may be followed: 0 (the end) or an element header
 * wholly inside the map at or past `lo` (its first bucket record).
 */
export function listLinkOk(i32: Int32Array, lo: number, e: number): boolean {
  return e === 0 || (e >= lo && e <= i32.length - ELEM_HEADER_WORDS);
}

/** Whether `e` can be taken off its list: it and both its list neighbours are links to follow. */
function unlinkable(i32: Int32Array, lo: number, e: number): boolean {
  return (
    e !== 0 &&
    listLinkOk(i32, lo, e) &&
    listLinkOk(i32, lo, i32[e + ELEM_FNEXT_I32]) &&
    listLinkOk(i32, lo, i32[e + ELEM_FPREV_I32])
  );
}

/**
 * Link `e` at the head of list `c` (record word index `p`). Requires: that
 * list's lock held (or the map not yet shared).
 */
export function listLinkLocked(i32: Int32Array, p: number, c: number, e: number): void {
  const head = i32[p + PCPU_FL_HEAD_I32];
  i32[e + ELEM_FNEXT_I32] = head;
  i32[e + ELEM_FPREV_I32] = 0;
  if (head !== 0) i32[head + ELEM_FPREV_I32] = e;
  i32[p + PCPU_FL_HEAD_I32] = e;
  if (e < i32[HDR_HOME_END_I32]) Atomics.store(i32, e + ELEM_HOME_STATE_I32, c + 1);
}

/** Take `e` off list `p`, wherever it is. Requires: that list's lock held; `e` on it. */
function listUnlinkLocked(i32: Int32Array, p: number, e: number): void {
  const prev = i32[e + ELEM_FPREV_I32];
  const next = i32[e + ELEM_FNEXT_I32];
  if (prev === 0) i32[p + PCPU_FL_HEAD_I32] = next;
  else i32[prev + ELEM_FNEXT_I32] = next;
  if (next !== 0) i32[next + ELEM_FPREV_I32] = prev;
  i32[e + ELEM_FNEXT_I32] = 0;
  i32[e + ELEM_FPREV_I32] = 0;
  if (e < i32[HDR_HOME_END_I32]) Atomics.store(i32, e + ELEM_HOME_STATE_I32, HOME_TAKEN);
}

/**
 * Push element `e` (word index) onto `cpu`'s list, or onto the next list
 * whose lock can be had. Kernel: __pcpu_freelist_push() (which, since the
 * rqspinlock conversion, also moves on to another CPU's list).
 */
export function pcpuFreelistPush(i32: Int32Array, cpu: number, e: number, lo: number): boolean {
  const mine = pcpuBase(cpu);
  const nrCpus = headerNrCpus(i32);
  for (let n = 0, c = cpu; n < nrCpus; n++, c = c + 1 >= nrCpus ? 0 : c + 1) {
    const p = pcpuBase(c);
    if (!lockAcquire(i32, p + PCPU_FL_LOCK_I32, cpu)) {
      stalled(i32);
      continue;
    }
    if (!listLinkOk(i32, lo, i32[p + PCPU_FL_HEAD_I32])) {
      lockRelease(i32, p + PCPU_FL_LOCK_I32);
      continue;
    }
    listLinkLocked(i32, p, c, e);
    if (i32[mine + PCPU_INFLIGHT_I32] === e) i32[mine + PCPU_INFLIGHT_I32] = 0;
    lockRelease(i32, p + PCPU_FL_LOCK_I32);
    return true;
  }
  // Every list stayed locked or is damaged: `e` stays our INFLIGHT (fsck and recovery see it there).
  return false;
}

/**
 * Pop a free element, own list first, then the others. 0 when all are empty,
 * FREELIST_TIMEDOUT when the only lists with elements stayed locked.
 * Kernel: __pcpu_freelist_pop().
 */
export function pcpuFreelistPop(i32: Int32Array, cpu: number, nrCpus: number, lo: number): number {
  let c = cpu;
  let timedOut = false;
  let corrupt = false;
  for (let n = 0; n < nrCpus; n++, c = c + 1 === nrCpus ? 0 : c + 1) {
    const p = pcpuBase(c);
    // Unlocked peek, as the kernel's READ_ONCE(head->first): skip empty lists cheaply.
    if (Atomics.load(i32, p + PCPU_FL_HEAD_I32) === 0) continue;
    if (!lockAcquire(i32, p + PCPU_FL_LOCK_I32, cpu)) {
      timedOut = true;
      continue;
    }
    const e = popHeadLocked(i32, p, cpu, lo);
    lockRelease(i32, p + PCPU_FL_LOCK_I32);
    if (e > 0) return e;
    if (e < 0) corrupt = true; // damaged: this list is skipped
  }
  return timedOut ? FREELIST_TIMEDOUT : corrupt ? FREELIST_CORRUPT : 0;
}

/**
 * Take list `p`'s head for slot `cpu` (its INFLIGHT first: ours even if we
 * die mid-pop). Requires: that list's lock held. @returns the element, 0 when
 * the list is empty, -1 when its head or links are damaged (nothing taken)
 */
function popHeadLocked(i32: Int32Array, p: number, cpu: number, lo: number): number {
  const e = i32[p + PCPU_FL_HEAD_I32];
  if (e === 0) return 0;
  if (!unlinkable(i32, lo, e)) return -1;
  i32[pcpuBase(cpu) + PCPU_INFLIGHT_I32] = e;
  listUnlinkLocked(i32, p, e);
  return e;
}

/**
 * Take home element `h` off whichever freelist holds it, for CPU slot `cpu`
 * (it becomes that slot's INFLIGHT element). Never waits: returns 0 when `h`
 * is not on a list or its list's lock is held, and the caller pops instead.
 * Requires: the lock of h's home bucket held (so no one else claims it).
 */
export function pcpuFreelistClaim(i32: Int32Array, cpu: number, h: number, lo: number): number {
  const st = Atomics.load(i32, h + ELEM_HOME_STATE_I32);
  if (st <= 0 || st > headerNrCpus(i32)) return 0; // not listed (or a damaged state: not claimed)
  const p = pcpuBase(st - 1);
  if (!lockTry(i32, p + PCPU_FL_LOCK_I32, cpu)) return 0;
  // Recheck under the lock: a pop may have taken it, and a push filed it elsewhere.
  const ok = Atomics.load(i32, h + ELEM_HOME_STATE_I32) === st && unlinkable(i32, lo, h);
  if (ok) {
    i32[pcpuBase(cpu) + PCPU_INFLIGHT_I32] = h;
    listUnlinkLocked(i32, p, h);
  }
  lockRelease(i32, p + PCPU_FL_LOCK_I32);
  return ok ? h : 0;
}

/**
 * Re-derive list `c`'s back links and home states from its forward links,
 * after a slot died holding its lock mid-push, mid-pop or mid-claim (the
 * forward links and the head are each one store, so they are whole).
 * Requires: the lock, or its dead holder's, held by the caller; `bound`
 * caps the walk.
 */
export function pcpuFreelistRelink(i32: Int32Array, c: number, bound: number): void {
  const p = pcpuBase(c);
  const homeEnd = i32[HDR_HOME_END_I32];
  let prev = 0;
  for (let e = i32[p + PCPU_FL_HEAD_I32], n = 0; e !== 0 && n < bound; n++, e = i32[e + ELEM_FNEXT_I32]) {
    i32[e + ELEM_FPREV_I32] = prev;
    if (e < homeEnd) Atomics.store(i32, e + ELEM_HOME_STATE_I32, c + 1);
    prev = e;
  }
}

/**
 * Spread `count` elements (word index of element n: `elemAt(n)`) over the
 * CPUs' lists. Called by the creator before the map is shared.
 * Kernel: pcpu_freelist_populate().
 */
export function pcpuFreelistPopulate(
  i32: Int32Array,
  elemAt: (n: number) => number,
  count: number,
  nrCpus: number,
): void {
  const perCpu = Math.floor(count / nrCpus) + 1;
  let cpu = 0;
  let onCpu = 0;
  for (let i = 0; i < count; i++) {
    if (onCpu === perCpu) {
      cpu++;
      onCpu = 0;
    }
    listLinkLocked(i32, pcpuBase(cpu), cpu, elemAt(i));
    onCpu++;
  }
}
