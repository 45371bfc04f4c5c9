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
 * - Except for what no open section can reach (the caller knows its own
 *   section's references: core/held-refs.ts): limboReclaim()'s `held` lets a
 *   view inside its own section reclaim an element only that section holds
 *   up and never referenced; core/elems/grace.ts reusableNow() frees an
 *   element at once when the only open section (ACTIVE 1) is the freeing
 *   view's own and it never referenced the element.
 *
 * Lock order: layout.ts (limbo lists share the freelist lock).
 */

import { BpfError, Errno, invalid } from "../errors.js";
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
  PCPU_OWNER_I32,
  PCPU_SECTION_I32,
  pcpuBase,
  SLOT_ALIVE,
  SLOT_DEAD,
} from "../layout/layout.js";
import { lockAcquire, lockRelease } from "../sync/owner-lock.js";
import { slotStateOf } from "../sync/slot-claim.js";
import { cpuRelax, nowMs, SPIN_LIMIT, STALL_WAITS, stalled, threadCanBlock } from "../sync/spin.js";
import { listLinkLocked, listLinkOk } from "./pcpu-freelist.js";

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

/** The oldest epoch an active section entered at (slot `skip`'s aside), or +Infinity when none is active. */
function oldestSection(i32: Int32Array, nrCpus: number, skip = -1): number {
  let min = Number.POSITIVE_INFINITY;
  for (let c = 0; c < nrCpus; c++) {
    const s = c === skip ? 0 : Atomics.load(i32, pcpuBase(c) + PCPU_SECTION_I32);
    if (s !== 0 && s - 1 < min) min = s - 1;
  }
  return min;
}

/** A limbo link to follow: not the end, and a link the freelists would follow (listLinkOk()). */
function limboLinkOk(i32: Int32Array, e: number): boolean {
  return e !== 0 && listLinkOk(i32, i32[HDR_BUCKETS_I32], e);
}

/**
 * Move every element of `victim`'s limbo whose grace period has passed onto
 * its freelist, or (with `sink`, for LRU maps) hand each to `sink` after the
 * lock is dropped: LRU lists rank above freelist locks (lock order), so they
 * cannot be taken under it. Returns how many. `self` is the caller's slot (for the lock word).
 *
 * `held`, given only by a caller inside its own section on slot `self`
 * (core/held-refs.ts): whether that section may hold a reference to an
 * element. An element whose grace period only `self`'s section holds up
 * (every other open section entered after its unlink) and that `held`
 * disowns is reclaimed too: no open section can reach it.
 */
export function limboReclaim(
  i32: Int32Array,
  victim: number,
  self: number,
  nrCpus: number,
  sink: ((e: number) => void) | null = null,
  held: ((e: number) => boolean) | null = null,
): number {
  const p = pcpuBase(victim);
  const mine = pcpuBase(self);
  if (Atomics.load(i32, p + PCPU_LIMBO_HEAD_I32) === 0) return 0;
  // A list whose lock stays held is left for a later reclaim (nothing is taken).
  if (!lockAcquire(i32, p + PCPU_FL_LOCK_I32, self)) return 0;
  // Under the lock: every listed element got its tag before this point, and a
  // section entering later enters at an epoch no smaller than any of those tags.
  const oldest = oldestSection(i32, nrCpus);
  const others = oldestOther(i32, nrCpus, self, held, oldest);
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
    if (graceOver(i32[e + ELEM_TAG_I32], e, oldest, others, held)) {
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

/** oldestSection() but for slot `self`'s section, when `held` says what that one can reach (else `oldest`). */
function oldestOther(
  i32: Int32Array,
  nrCpus: number,
  self: number,
  held: ((e: number) => boolean) | null,
  oldest: number,
): number {
  return held === null ? oldest : oldestSection(i32, nrCpus, self);
}

/**
 * Whether limbo element `e` (tagged `tag`) may be reused: every open section
 * entered after its unlink (`oldest`), or every one but the caller's own
 * (`others`) and that one never referenced it (`held`: limboReclaim()).
 */
function graceOver(
  tag: number,
  e: number,
  oldest: number,
  others: number,
  held: ((e: number) => boolean) | null,
): boolean {
  return tag <= oldest || (held !== null && tag <= others && !held(e));
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

/** How long synchronize() waits by default before it gives up: sections are meant to be short. */
export const SYNC_TIMEOUT_MS = 1000;

/** The slot whose open section entered first, among those that entered before epoch `target`; -1 when none. */
export function oldestSectionSlot(
  i32: Int32Array,
  nrCpus: number,
  target = Number.POSITIVE_INFINITY,
): number {
  let min = Number.POSITIVE_INFINITY;
  let slot = -1;
  for (let c = 0; c < nrCpus; c++) {
    const s = Atomics.load(i32, pcpuBase(c) + PCPU_SECTION_I32);
    if (s !== 0 && s - 1 < target && s - 1 < min) {
      min = s - 1;
      slot = c;
    }
  }
  return slot;
}

/**
 * Wait until every section that began before this call has ended (kernel:
 * synchronize_rcu()), at most `timeoutMs`. Sections entering later do not
 * hold it up. The stall hook runs between waits (a map recovers its dead
 * slots there: a reaped slot's section ends at once); a section is never
 * assumed over while its thread may live. Requires: the caller is not in a
 * section on this map, or `skip` is the slot of the one it is in (that
 * section is not waited for: the caller's reclaim then filters what its own
 * section references, limboReclaim()'s `held`).
 * @returns -1 when every such section ended; else the slot holding the oldest one still open
 *   (and `open`, if given, gets every slot whose section began before the call and is still open)
 */
export function synchronizeSections(
  i32: Int32Array,
  nrCpus: number,
  timeoutMs = SYNC_TIMEOUT_MS,
  open: number[] | null = null,
  skip = -1,
): number {
  const target = Atomics.add(i32, HDR_EPOCH_I32, 1) + 1;
  if (spinUntilEpoch(i32, nrCpus, target, skip)) return -1;
  const block = threadCanBlock();
  const deadline = nowMs() + timeoutMs;
  for (let waits = 1; ; waits++) {
    if (oldestSection(i32, nrCpus, skip) >= target) return -1;
    if (waits % STALL_WAITS === 0) {
      stalled(i32);
      if (nowMs() > deadline) {
        if (open !== null) openBefore(i32, nrCpus, target, open);
        return oldestSectionSlot(i32, nrCpus, target);
      }
    }
    pause(i32, block);
  }
}

/** One short wait for ACTIVE to change: 1 ms asleep where the thread may block, else a relax. */
function pause(i32: Int32Array, block: boolean): void {
  if (block) Atomics.wait(i32, HDR_ACTIVE_I32, Atomics.load(i32, HDR_ACTIVE_I32), 1);
  else cpuRelax(i32, HDR_ACTIVE_I32);
}

/** Spin a little for short sections: true when every section open before epoch `target` has ended. */
function spinUntilEpoch(i32: Int32Array, nrCpus: number, target: number, skip: number): boolean {
  for (let i = 0; i < SPIN_LIMIT; i++) {
    if (oldestSection(i32, nrCpus, skip) >= target) return true;
    cpuRelax(i32, HDR_ACTIVE_I32);
  }
  return false;
}

/** Push onto `open` every slot whose section began before epoch `target` and is still open. */
function openBefore(i32: Int32Array, nrCpus: number, target: number, open: number[]): void {
  for (let c = 0; c < nrCpus; c++) {
    const s = Atomics.load(i32, pcpuBase(c) + PCPU_SECTION_I32);
    if (s !== 0 && s - 1 < target) open.push(c);
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
  held: ((e: number) => boolean) | null = null,
): number {
  if (Atomics.load(i32, HDR_LIMBO_COUNT_I32) === 0) return 0;
  let moved = 0;
  for (let c = 0; c < nrCpus; c++) moved += limboReclaim(i32, c, self, nrCpus, sink, held);
  return moved;
}

/** What synchronize({ timeoutMs }) returns. */
export interface SyncReport {
  /** Every section that began before the call ended within the bound. */
  ok: boolean;
  /** Slots whose section began before the call and was still open at the bound, oldest first; its slot's state. */
  open: { slot: number; state: "alive" | "dead" | "free" }[];
}

/** Options of synchronize(). */
export interface SyncOptions {
  /** Wait at most this long (ms), and return a SyncReport instead of throwing ETIMEDOUT. */
  timeoutMs?: number;
}

function slotStateName(i32: Int32Array, c: number): "alive" | "dead" | "free" {
  const s = slotStateOf(Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32));
  return s === SLOT_ALIVE ? "alive" : s === SLOT_DEAD ? "dead" : "free";
}

/** What a message says about slot `c`'s open section: whose, and how to recover it. */
export function openSectionText(i32: Int32Array, c: number): string {
  const st = slotStateName(i32, c);
  return (
    `CPU slot ${c}'s program section is still open (its slot is ${st === "alive" ? "attached" : st}: ` +
    `a long section, or a worker that ended inside run() or enter() without exit()/close() and was never reaped; ` +
    `if that worker is gone, reap(${c}) recovers the slot, and watchWorker() does it at the worker's exit)`
  );
}

/**
 * synchronize() for a map or an ARRAY_OF_MAPS (`i32`: its header and per-CPU
 * records): bounded by SYNC_TIMEOUT_MS, or by opts.timeoutMs with a report.
 * @throws BpfError ETIMEDOUT naming the open section's slot (without opts.timeoutMs), EINVAL for a bad timeout
 */
export function synchronizeBounded(
  i32: Int32Array,
  nrCpus: number,
  opts?: SyncOptions,
): SyncReport | undefined {
  const t = opts?.timeoutMs;
  if (t !== undefined && (typeof t !== "number" || !(t >= 0) || !Number.isFinite(t)))
    invalid(
      "synchronize",
      `timeoutMs ${String(t)} (${typeof t}) is not a finite number of milliseconds >= 0`,
    );
  const open: number[] = [];
  const slot =
    Atomics.load(i32, HDR_ACTIVE_I32) === 0
      ? -1
      : synchronizeSections(i32, nrCpus, t ?? SYNC_TIMEOUT_MS, open);
  if (t !== undefined) {
    open.sort(
      (a, b) =>
        Atomics.load(i32, pcpuBase(a) + PCPU_SECTION_I32) - Atomics.load(i32, pcpuBase(b) + PCPU_SECTION_I32),
    );
    return { ok: slot < 0, open: open.map((c) => ({ slot: c, state: slotStateName(i32, c) })) };
  }
  if (slot >= 0)
    throw new BpfError(
      "synchronize",
      Errno.ETIMEDOUT,
      `gave up after ${SYNC_TIMEOUT_MS} ms: ${openSectionText(i32, slot)}. ` +
        "Pass { timeoutMs } for a report instead of this error",
    );
  return undefined;
}
