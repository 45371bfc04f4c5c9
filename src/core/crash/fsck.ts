/**
 * fsck(): check a quiet map's whole structure, for tests and for `htab`
 * users who suspect a bug: every element is on exactly one chain, freelist,
 * extra slot or limbo list (LRU maps: on the list its state says), chains
 * hold only keys of their bucket with no duplicates, no lock is held (bucket,
 * freelist, NO_PREALLOC grow, LRU and recovery locks: on a quiet map a held
 * one is stuck, and fsck names its owner slot and that slot's state), and
 * the element count matches. Freelists are doubly linked, and every home
 * element's HOME_STATE says where it is (layout.ts).
 */
import type { BpfLru } from "../../alloc/bpf-lru.js";
import { LRU_T_ACTIVE, LRU_T_INACTIVE, LRU_T_LIMBO, LRU_T_LOCAL_PENDING } from "../../alloc/lru-nodes.js";
import { elemWordToIndex } from "../../layout/geometry.js";
import {
  BUCKET_HEAD_I32,
  BUCKET_HOME_I32,
  BUCKET_OWNER_I32,
  BUCKET_SEQLOCK_I32,
  ELEM_FNEXT_I32,
  ELEM_FPREV_I32,
  ELEM_HASH_I32,
  ELEM_HEADER_BYTES,
  ELEM_HOME_STATE_I32,
  ELEM_NEXT_I32,
  HDR_CARVED_I32,
  HDR_GROW_LOCK_I32,
  HDR_LRU_REPAIR_I32,
  HDR_RECOVERY_LOCK_I32,
  HOME_LINKED,
  PCPU_EXTRA_I32,
  PCPU_FL_HEAD_I32,
  PCPU_FL_LOCK_I32,
  PCPU_LIMBO_HEAD_I32,
  PCPU_OWNER_I32,
  PCPU_SECTION_I32,
  pcpuBase,
  SLOT_ALIVE,
  SLOT_DEAD,
} from "../../layout/layout.js";
import { SEQ_LOCKED } from "../../sync/bucket-seqlock.js";
import { lockOwner } from "../../sync/owner-lock.js";
import { slotStateOf } from "../../sync/slot-claim.js";
import { bucketAt, count, elemOf, type HtabView } from "../htab-view.js";

/** Result of fsck(). */
export interface FsckReport {
  ok: boolean;
  errors: string[];
  elements: number;
  free: number;
  extra: number;
  /**
   * Slots whose program section is open, with their slot's state: a dead or
   * free slot's open section is an error (it holds back reclamation until
   * reap(slot)); an alive slot's may be a section running now, or a worker
   * that died inside one and was never reaped.
   */
  openSections: { slot: number; state: "alive" | "dead" | "free" }[];
}

/** Htab.fsck()'s body; the contract is its TSDoc. Requires: no concurrent writers. */
export function fsck(v: HtabView): FsckReport {
  const i32 = v.i32;
  const errors: string[] = [];
  const num = v.prealloc ? v.numElems : Atomics.load(i32, HDR_CARVED_I32);
  const where = new Int8Array(v.walkBound);
  const idxOf = (e: number): number => elemWordToIndex(v.geometry, e, num);
  const mark = (e: number, kind: number, what: string): boolean => {
    const i = idxOf(e);
    if (i < 0) {
      errors.push(`${what}: link ${e} is not an element`);
      return false;
    }
    if (where[i] !== 0) {
      errors.push(
        `${what}: element ${i} is also on ${["", "a chain", "a freelist", "an extra slot", "a limbo list"][where[i]]}`,
      );
      return false;
    }
    where[i] = kind;
    return true;
  };
  // Where each home element should be, by its HOME_STATE: its chain (HOME_LINKED), list c (c + 1), else 0.
  const homeAt = new Int32Array(v.homes);
  let elements = 0;
  for (let bi = 0; bi <= v.mask; bi++) {
    const b = bucketAt(v, bi);
    if ((i32[b + BUCKET_SEQLOCK_I32] & SEQ_LOCKED) !== 0 || i32[b + BUCKET_OWNER_I32] !== 0)
      errors.push(`bucket ${bi}: lock held (owner slot ${i32[b + BUCKET_OWNER_I32] - 1})`);
    const seen = new Set<string>();
    for (let e = i32[b + BUCKET_HEAD_I32]; e !== 0; e = i32[e + ELEM_NEXT_I32]) {
      if (!mark(e, 1, `bucket ${bi}`)) break;
      elements++;
      if (e === b + BUCKET_HOME_I32) homeAt[bi] = HOME_LINKED;
      if ((i32[e + ELEM_HASH_I32] & v.mask) !== bi)
        errors.push(`bucket ${bi}: element hash belongs elsewhere`);
      const k = Array.from(
        v.u8.subarray(e * 4 + ELEM_HEADER_BYTES, e * 4 + ELEM_HEADER_BYTES + v.keySize),
      ).join(",");
      if (seen.has(k)) errors.push(`bucket ${bi}: duplicate key ${k}`);
      seen.add(k);
    }
  }
  stuckLocks(v, errors);
  let free = 0;
  let extra = 0;
  const lists = v.elems.lruLists;
  if (lists !== null) free += fsckLru(v, lists, where, mark, errors);
  else
    for (let c = 0; c < v.nrCpus; c++) {
      const p = pcpuBase(c);
      for (let e = i32[p + PCPU_FL_HEAD_I32], prev = 0; e !== 0; prev = e, e = i32[e + ELEM_FNEXT_I32]) {
        if (!mark(e, 2, `freelist ${c}`)) break;
        free++;
        if (i32[e + ELEM_FPREV_I32] !== prev)
          errors.push(`freelist ${c}: back link of element ${idxOf(e)} is wrong`);
        if (e < v.homeEnd) homeAt[idxOf(e)] = c + 1;
      }
      const x = i32[p + PCPU_EXTRA_I32];
      if (x !== 0 && mark(x, 3, `extra ${c}`)) extra++;
      for (let e = i32[p + PCPU_LIMBO_HEAD_I32]; e !== 0; e = i32[e + ELEM_FNEXT_I32]) {
        if (!mark(e, 4, `limbo ${c}`)) break;
        free++;
      }
    }
  for (let n = 0; n < v.homes; n++) {
    const st = Atomics.load(i32, elemOf(v, n) + ELEM_HOME_STATE_I32);
    if (st !== homeAt[n]) errors.push(`home element ${n}: HOME_STATE is ${st}, its place says ${homeAt[n]}`);
  }
  if (elements + free + extra !== num) errors.push(`${num - elements - free - extra} elements are lost`);
  if (count(v) !== elements) errors.push(`count() is ${count(v)} but chains hold ${elements}`);
  const openSections = fsckSections(v, errors);
  return { ok: errors.length === 0, errors, elements, free, extra, openSections };
}

/** Open program sections (readers may enter and leave meanwhile): those of dead or free slots are errors. */
function fsckSections(v: HtabView, errors: string[]): FsckReport["openSections"] {
  const i32 = v.i32;
  const out: FsckReport["openSections"] = [];
  for (let c = 0; c < v.nrCpus; c++) {
    if (Atomics.load(i32, pcpuBase(c) + PCPU_SECTION_I32) === 0) continue;
    const st = slotStateOf(Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32));
    const state = st === SLOT_ALIVE ? "alive" : st === SLOT_DEAD ? "dead" : "free";
    out.push({ slot: c, state });
    if (state !== "alive")
      errors.push(
        `CPU slot ${c}: its program section is open but the slot is ${state}: elements freed since wait ` +
          `in limbo for it until reap(${c})`,
      );
  }
  return out;
}

/**
 * The owner-tagged locks outside buckets and LRU lists: every CPU's
 * freelist lock (guarding its freelist and limbo list), the NO_PREALLOC
 * grow lock and the recovery lock. None is held on a quiet map.
 */
function stuckLocks(v: HtabView, errors: string[]): void {
  const i32 = v.i32;
  // Owner-lock words are (cpu + 1) << 1 | waiters; the recovery lock is cpu + 1.
  const held = (idx: number, what: string, owner: (w: number) => number) => {
    const w = Atomics.load(i32, idx);
    if (w === 0) return;
    errors.push(`${what} held by slot ${owner(w)} (${slotText(v, owner(w))})`);
  };
  for (let c = 0; c < v.nrCpus; c++)
    held(pcpuBase(c) + PCPU_FL_LOCK_I32, `freelist lock of CPU ${c}`, lockOwner);
  if (!v.prealloc) held(HDR_GROW_LOCK_I32, "the NO_PREALLOC grow lock", lockOwner);
  held(HDR_RECOVERY_LOCK_I32, "the recovery lock", (w) => w - 1);
}

/** What a lock's owner slot is: alive, dead (waiting for reap()), free, or no slot of this map. */
function slotText(v: HtabView, slot: number): string {
  if (slot < 0 || slot >= v.nrCpus) return "no slot of this map";
  const st = slotStateOf(Atomics.load(v.i32, pcpuBase(slot) + PCPU_OWNER_I32));
  if (st === SLOT_DEAD) return "a dead slot: reap() it";
  if (st === SLOT_ALIVE) return slot === v.cpu ? "this thread's slot" : "a live slot";
  return "a free slot: its thread is gone";
}

/** fsck() for LRU maps: the lists are sound, linked elements are on in-use lists, the rest free or in limbo. */
function fsckLru(
  v: HtabView,
  lru: BpfLru,
  where: Int8Array,
  mark: (e: number, kind: number, what: string) => boolean,
  errors: string[],
): number {
  const i32 = v.i32;
  for (const k of lru.lockWords())
    if (i32[k] !== 0) errors.push(`LRU lock word ${k} held (owner slot ${lockOwner(i32[k])})`);
  if (Atomics.load(i32, HDR_LRU_REPAIR_I32) !== 0) errors.push("LRU lists are waiting for a repair");
  errors.push(...lru.check());
  for (let c = 0; c < v.nrCpus; c++)
    for (let e = i32[pcpuBase(c) + PCPU_LIMBO_HEAD_I32]; e !== 0; e = i32[e + ELEM_FNEXT_I32])
      if (!mark(e, 4, `limbo ${c}`)) break;
  let free = 0;
  for (let i = 0; i < where.length - 1; i++) {
    const t = lru.type(i);
    const listed = t === LRU_T_ACTIVE || t === LRU_T_INACTIVE || t === LRU_T_LOCAL_PENDING;
    if (where[i] === 1 && !listed) errors.push(`element ${i} is linked but its LRU node is free (type ${t})`);
    if (where[i] === 0 && listed) errors.push(`element ${i} is on an LRU list but linked nowhere (leaked)`);
    if (where[i] === 0 && t === LRU_T_LIMBO) errors.push(`element ${i} is in LRU limbo but on no limbo list`);
    if (where[i] !== 1) free++;
  }
  return free;
}
