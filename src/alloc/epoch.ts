/**
 * Epoch-based reclamation for program-side references (the grace period
 * RCU gives BPF programs). A thread that holds references is "in a section";
 * an element freed while any section is active waits in its CPU's limbo list
 * until every section that could have seen it has ended.
 *
 * Invariants:
 * - A reference can only be taken inside a section, by a lookup that
 *   validated the element as linked.
 * - A writer reads ACTIVE after unlinking (both sides are SeqCst): either the
 *   section's lookup saw the element already unlinked, or the writer sees the
 *   section and sends the element to limbo instead of the freelist.
 * - An element in limbo carries TAG = the epoch after its unlink. A section
 *   that entered at epoch >= TAG started after the unlink and cannot hold it,
 *   so the element may be reused once every active section entered at >= TAG.
 *
 * Lock order: layout.ts (limbo lists share the freelist lock).
 */

import {
  ELEM_FNEXT_I32,
  ELEM_TAG_I32,
  HDR_ACTIVE_I32,
  HDR_BUCKETS_I32,
  HDR_EPOCH_I32,
  HDR_LIMBO_COUNT_I32,
  headerNrCpus,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  PCPU_LIMBO_HEAD_I32,
  PCPU_SECTION_I32,
  pcpuBase,
} from "../layout/layout.js";
import { lockAcquire, lockRelease } from "../sync/owner-lock.js";
import { stalled, threadCanBlock } from "../sync/spin.js";
import { listLinkLocked } from "./pcpu-freelist.js";

/** Enter a section on `cpu`'s slot. */
export function sectionEnter(i32: Int32Array, cpu: number): void {
  Atomics.add(i32, HDR_ACTIVE_I32, 1);
  // Publish: from here on, frees see ACTIVE > 0 and keep elements in limbo.
  Atomics.store(i32, pcpuBase(cpu) + PCPU_SECTION_I32, Atomics.load(i32, HDR_EPOCH_I32) + 1);
}

/** Leave the section on `cpu`'s slot. */
export function sectionExit(i32: Int32Array, cpu: number): void {
  Atomics.store(i32, pcpuBase(cpu) + PCPU_SECTION_I32, 0);
  Atomics.sub(i32, HDR_ACTIVE_I32, 1);
}

/** True when no thread is inside a section. Read after an unlink. */
export function noActiveSections(i32: Int32Array): boolean {
  return Atomics.load(i32, HDR_ACTIVE_I32) === 0;
}

/**
 * Put an unlinked element in `cpu`'s limbo. Requires: the element is off
 * every chain and owned by the caller. `chain`: INFLIGHT heads a chain of
 * owned elements linked by FNEXT (LRU maps), which moves on to the next.
 */
export function limboPush(i32: Int32Array, cpu: number, e: number, chain = false): void {
  i32[e + ELEM_TAG_I32] = Atomics.add(i32, HDR_EPOCH_I32, 1) + 1;
  // Counted before it is listed: the count may run high (harmless), never low.
  Atomics.add(i32, HDR_LIMBO_COUNT_I32, 1);
  const mine = pcpuBase(cpu);
  // Must file it (it is already unlinked): a list whose lock stays held past the
  // timeout is skipped for the next CPU's (any reclaimer walks every limbo list).
  let c = cpu;
  while (!lockAcquire(i32, pcpuBase(c) + PCPU_FL_LOCK_I32, cpu)) {
    stalled(i32);
    c = c + 1 >= headerNrCpus(i32) ? 0 : c + 1;
  }
  const p = pcpuBase(c);
  const next = chain ? i32[e + ELEM_FNEXT_I32] : 0;
  i32[e + ELEM_FNEXT_I32] = i32[p + PCPU_LIMBO_HEAD_I32];
  i32[p + PCPU_LIMBO_HEAD_I32] = e;
  if (i32[mine + PCPU_INFLIGHT_I32] === e) i32[mine + PCPU_INFLIGHT_I32] = next;
  lockRelease(i32, p + PCPU_FL_LOCK_I32);
}

/** The oldest epoch an active section entered at, or +Infinity when none is active. */
function oldestSection(i32: Int32Array, nrCpus: number): number {
  let min = Number.POSITIVE_INFINITY;
  for (let c = 0; c < nrCpus; c++) {
    const s = Atomics.load(i32, pcpuBase(c) + PCPU_SECTION_I32);
    if (s !== 0 && s - 1 < min) min = s - 1;
  }
  return min;
}

/** Words of an element header the limbo walk reads and writes (NEXT, HASH, FNEXT, TAG). */
const ELEM_HEADER_WORDS = 4;

/** A limbo link to follow: not the end, and an element header inside the map's elements. */
function limboLinkOk(i32: Int32Array, e: number): boolean {
  return e !== 0 && e >= i32[HDR_BUCKETS_I32] && e <= i32.length - ELEM_HEADER_WORDS;
}

/**
 * Move every element of `victim`'s limbo whose grace period has passed onto
 * its freelist, or (with `sink`, for LRU maps) hand each to `sink` after the
 * lock is dropped: LRU lists rank above freelist locks (lock order), so they
 * cannot be taken under it. Returns how many. `self` is the caller's slot (for the lock word).
 */
export function limboReclaim(
  i32: Int32Array,
  victim: number,
  self: number,
  nrCpus: number,
  sink: ((e: number) => void) | null = null,
): number {
  const p = pcpuBase(victim);
  const mine = pcpuBase(self);
  if (Atomics.load(i32, p + PCPU_LIMBO_HEAD_I32) === 0) return 0;
  // A list whose lock stays held is left for a later reclaim (nothing is taken).
  if (!lockAcquire(i32, p + PCPU_FL_LOCK_I32, self)) return 0;
  // Under the lock: every listed element got its tag before this point, and a
  // section entering later enters at an epoch no smaller than any of those tags.
  const oldest = oldestSection(i32, nrCpus);
  let moved = 0;
  let prev = 0;
  let out = 0;
  let e = i32[p + PCPU_LIMBO_HEAD_I32];
  // Damaged memory: the walk stops at a link outside the map's elements, and
  // after as many steps as the map has element headers (a cycle); the rest
  // of the list stays where it is, for fsck to report.
  const bound = i32.length >> 2;
  for (let steps = 0; limboLinkOk(i32, e) && steps <= bound; steps++) {
    const next = i32[e + ELEM_FNEXT_I32];
    if (i32[e + ELEM_TAG_I32] <= oldest) {
      i32[mine + PCPU_INFLIGHT_I32] = e; // between the two lists: ours if we die here
      if (prev === 0) i32[p + PCPU_LIMBO_HEAD_I32] = next;
      else i32[prev + ELEM_FNEXT_I32] = next;
      out = fileOrChain(i32, p, victim, mine, e, sink === null ? -1 : out);
      moved++;
    } else prev = e;
    e = next;
  }
  if (moved > 0) Atomics.sub(i32, HDR_LIMBO_COUNT_I32, moved);
  lockRelease(i32, p + PCPU_FL_LOCK_I32);
  if (sink !== null) fileReclaimed(i32, out, sink);
  return moved;
}

/**
 * A reclaimed element `e`, off its limbo list: onto the freelist at once
 * (`out` -1), or chained ahead of `out` for a sink after the unlock.
 * Requires: the list's lock held. @returns the chain's new head (or -1)
 */
function fileOrChain(
  i32: Int32Array,
  p: number,
  victim: number,
  mine: number,
  e: number,
  out: number,
): number {
  i32[e + ELEM_TAG_I32] = 0;
  if (out < 0) {
    listLinkLocked(i32, p, victim, e);
    i32[mine + PCPU_INFLIGHT_I32] = 0;
    return -1;
  }
  // INFLIGHT heads the chain of reclaimed elements until the sink has filed them all.
  i32[e + ELEM_FNEXT_I32] = out;
  i32[mine + PCPU_INFLIGHT_I32] = e;
  return e;
}

/** Hand each element of the reclaimed chain `out` (linked by FNEXT) to `sink`, after the list lock is dropped. */
function fileReclaimed(i32: Int32Array, out: number, sink: (e: number) => void): void {
  while (out !== 0) {
    const next = i32[out + ELEM_FNEXT_I32];
    sink(out); // filing it moves INFLIGHT on to `next`
    out = next;
  }
}

/**
 * Wait until every section that began before this call has ended (kernel:
 * synchronize_rcu()). Sections entering later do not hold it up. Requires:
 * the caller is not in a section on this map.
 */
export function synchronizeSections(i32: Int32Array, nrCpus: number): void {
  const target = Atomics.add(i32, HDR_EPOCH_I32, 1) + 1;
  const block = threadCanBlock();
  while (oldestSection(i32, nrCpus) < target) {
    if (block) Atomics.wait(i32, HDR_ACTIVE_I32, Atomics.load(i32, HDR_ACTIVE_I32), 1);
  }
}

/**
 * limboReclaim() over every CPU's limbo list; one load of LIMBO_COUNT skips
 * it all when no list can hold anything. Returns how many were reclaimed.
 */
export function limboReclaimAll(
  i32: Int32Array,
  self: number,
  nrCpus: number,
  sink: ((e: number) => void) | null = null,
): number {
  if (Atomics.load(i32, HDR_LIMBO_COUNT_I32) === 0) return 0;
  let moved = 0;
  for (let c = 0; c < nrCpus; c++) moved += limboReclaim(i32, c, self, nrCpus, sink);
  return moved;
}
