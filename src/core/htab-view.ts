/**
 * One thread's view of one SAB hash map (kernel: the `struct bpf_htab *`
 * every function in hashtab.c takes). The element, bucket, write, walk,
 * compare, program, recovery and fsck modules are free functions over it;
 * `Htab` is the facade that validates arguments and dispatches to them.
 *
 * A view belongs to the thread that attached it: its per-operation state
 * (below) is plain fields, never shared. What threads share lives in the
 * map's memory, laid out by layout.ts.
 */

import type { BpfLru } from "../alloc/bpf-lru.js";
import { limboPush } from "../alloc/epoch.js";
import { Errno, invalid } from "../errors.js";
import { type Geometry, lruPlace } from "../layout/geometry.js";
import {
  BUCKET_HOME_I32,
  ELEM_HEADER_BYTES,
  HDR_ACTIVE_I32,
  HDR_CARVED_I32,
  HDR_FROZEN_I32,
  HDR_HOME_END_I32,
  HDR_SPIN_LOCK_OFF_I32,
  LRU_SENTINELS_PER_LIST,
  PCPU_BASE_BYTES,
  PCPU_CLAIM_I32,
  PCPU_COUNT_I32,
  PCPU_OWNER_I32,
  pcpuBase,
  roundUp,
  SCRATCH_ACTIVE_I32,
  SCRATCH_BASE_I32,
  SCRATCH_BOUND_I32,
  SCRATCH_BUCKETS_I32,
  SCRATCH_CPU_I32,
  SCRATCH_DESC_BYTES,
  SCRATCH_ELEM_STRIDE_I32,
  SCRATCH_ELEMS_I32,
  SCRATCH_FROZEN_I32,
  SCRATCH_HASHRND_I32,
  SCRATCH_KEY_I32,
  SCRATCH_KEY_WORDS_I32,
  SCRATCH_LINK_LO_I32,
  SCRATCH_LINK_SPAN_I32,
  SCRATCH_LRU_LIST_I32,
  SCRATCH_LRU_LOCALS_I32,
  SCRATCH_LRU_NODE_COUNT_I32,
  SCRATCH_LRU_NODES_I32,
  SCRATCH_LRU_NUM_I32,
  SCRATCH_LRU_TARGET_I32,
  SCRATCH_MASK_I32,
  SCRATCH_MY_PCPU_I32,
  SCRATCH_NR_CPUS_I32,
  SCRATCH_OUT_I32,
  SCRATCH_PCPU0_I32,
  SCRATCH_STRIDE_I32,
  SCRATCH_VALUE_OFF_I32,
  SCRATCH_VALUE_U64S_I32,
} from "../layout/layout.js";
import { LastError } from "../map/last-error.js";
import type { MapInfo } from "../map/raw-map.js";
import { valuesInPlace } from "../map/traits.js";
import { bucketLock } from "../sync/bucket-seqlock.js";
import { claimSlot, releaseSlot } from "../sync/slot-claim.js";
import { type FastPath, type FastPathWaits, fastPathFor } from "../wasm/fast-path.js";
import { JsWords, WasmWords, type Words } from "../wasm/words.js";
import { type FastPlan, fastPlan } from "./fast-plan.js";
import { HeldRefs } from "./held-refs.js";
import type { MapHandle } from "./map-handle.js";

// Negative errno returns of the element functions.
export const ENOENT = -Errno.ENOENT;
export const EEXIST = -Errno.EEXIST;
export const E2BIG = -Errno.E2BIG;
export const EINVAL = -Errno.EINVAL;
export const EPERM = -Errno.EPERM;
export const EBUSY = -Errno.EBUSY;
export const ETIMEDOUT = -Errno.ETIMEDOUT;
export const ENOSPC = -Errno.ENOSPC;
export const EUCLEAN = -Errno.EUCLEAN;
export const ENOMEM = -Errno.ENOMEM;
/** LastError kinds formatted when read: the map is full; unknown flags (arg: the flags). */
export const ERR_MAP_FULL = 1;
export const ERR_FLAGS = 2;

/**
 * Where a map's elements come from and go back to: one object per view,
 * installed at construction (elems/prealloc.ts, elems/carve.ts,
 * elems/lru.ts). The write, walk and compare functions call it and never
 * ask which map type they are in.
 */
export interface ElemPolicy {
  /**
   * LRU: the element must be popped (which may evict) before the bucket lock
   * is taken (lock order LRU -> bucket); take() does it. Others: false.
   */
  readonly popsBeforeLock: boolean;
  /** LRU policies: the eviction lists (fsck and crash recovery read them); null for the others. */
  readonly lruLists: BpfLru | null;
  /**
   * Deleting batches file each element after the bucket unlock, last
   * unlinked first (LRU: its lists rank above bucket locks), not at once.
   */
  readonly freesAfterUnlock: boolean;
  /** Where limbo reclaim files an element whose grace period ended (null: the freelists). */
  readonly sink: ((e: number) => void) | null;
  /**
   * Whether an insert must take() its element before the bucket lock and has
   * not (LRU: no spare popped yet); a caller holding the lock drops it first.
   */
  mustTakeFirst(): boolean;
  /** Pop this operation's element before any bucket lock. @returns 0 or a negative errno (lastError set) */
  take(v: HtabView): number;
  /**
   * An element for a new key. Requires: bucket lock held.
   * @returns the element; 0 when the map is full; ALLOC_TIMEDOUT
   */
  alloc(v: HtabView): number;
  /**
   * Replace live element `old` of the bucket this thread holds (its
   * predecessor: `v.foundPrev`) by a new element holding `value`, at the
   * head. Requires: bucket lock held. @returns 0 or a negative errno (nothing changed)
   */
  replaceLocked(v: HtabView, old: number, value: Uint8Array, valueOff: number): number;
  /**
   * The wasm update (fast-path.wat) replaced `old`, this slot's INFLIGHT,
   * while program sections were active (WASM_REPLACED_IN_SECTION): file it
   * as replaceLocked() would have. Requires: bucket lock held.
   */
  replacedInWasm(v: HtabView, old: number): void;
  /**
   * The wasm LRU update popped (WASM_LRU_POPPED: this slot's LRU_SPARE is
   * the element) or refilled and found nothing (`steal`, WASM_LRU_STEAL):
   * finish take() in JS. @returns as take()
   */
  takeAfterWasm(v: HtabView, steal: boolean): number;
  /** File unlinked element `e` (kernel: free_htab_elem()). Requires: bucket lock released. */
  free(v: HtabView, e: number): void;
  /** After the bucket unlock: give back an unused take(), free a replaced element. */
  settle(v: HtabView): void;
  /** A lookup or an in-place write used element `e` (LRU: its reference bit). */
  touch(v: HtabView, e: number): void;
  /**
   * Crash recovery, step 3: file what dead slot `d` owned off every list and
   * chain; `lost` is its unfiled element (or 0). Requires: HDR_RECOVERY_LOCK held.
   */
  recoverOwned(v: HtabView, d: number, lost: number): void;
}

/**
 * A lock-free lookup specialised for one map shape, chosen once per view
 * (lookup.ts InlineReader, readerFor()). Each returns the element found
 * (its value copied to `out` at `off` once validated), 0 when absent, or -1
 * when it cannot answer (the caller falls back to lookupCopy()).
 */
export interface ShapeReader {
  /** The key at byte `at` of `keys`. */
  lookup(keys: Uint8Array, at: number, out: Uint8Array, off: number): number;
  /** The key in this slot's scratch words (`kw`). */
  lookupWords(kw: Int32Array, out: Uint8Array, off: number): number;
}

/** What the wasm LRU eviction calls back for (fast-path.ts FastPathWaits): the JS bucket wait and limbo. */
const FAST_WAITS: FastPathWaits = { bucketWait: bucketLock, limboPush };

/** One thread's view of one map: geometry, typed views, this slot's scratch, per-operation state. */
export class HtabView {
  readonly info: MapInfo;
  readonly handle: MapHandle;
  /** This view's CPU slot (kernel: smp_processor_id()). */
  readonly cpu: number;
  readonly err: LastError;

  // ---- views over the map's memory
  readonly i32: Int32Array;
  readonly u8: Uint8Array;
  readonly i64: BigInt64Array;
  readonly geometry: Geometry;
  /** Lives inside a MapDomain's buffer (fully reserved there: NO_PREALLOC never grows it). */
  readonly inDomain: boolean;

  // ---- geometry, in the units the hot paths use
  readonly keySize: number;
  readonly valueSize: number;
  /** Bytes of a value as the control plane moves it (per-CPU: nrCpus x round_up(value_size, 8)). */
  readonly valueBytes: number;
  readonly percpu: boolean;
  /** Replace an existing key's value where it is (per-CPU maps, hash of maps), not by a new element. */
  readonly inPlace: boolean;
  readonly prealloc: boolean;
  /** round_up(value_size, 8): one CPU's slot in a per-CPU value. */
  readonly slotBytes: number;
  readonly keyWords: number;
  readonly mask: number;
  readonly bucketsBase: number;
  /** Words per bucket record (4, or with a home element more: layout.ts). */
  readonly bucketStrideI32: number;
  /** Elements in bucket records (element n < homes is record n's home). */
  readonly homes: number;
  /** Word index where the home elements end (HDR_HOME_END; 0 without homes). */
  readonly homeEnd: number;
  /** Word index of element `homes` (the first outside the records). */
  readonly elemsBase: number;
  readonly elemStrideI32: number;
  readonly valueOffBytes: number;
  readonly hashrnd: number;
  readonly nrCpus: number;
  readonly maxEntries: number;
  readonly mapFlags: number;
  /** Elements the map has (kernel: htab->elem_count's bound; NO_PREALLOC: the most it may carve). */
  readonly numElems: number;
  /** Longest chain a walk may follow before it must have seen a seq change (numElems + 1). */
  readonly walkBound: number;
  /** Word index of this slot's per-CPU record. */
  readonly myPcpu: number;
  /** Byte offset of the bpf_spin_lock in the value, or -1. */
  readonly spinLockOff: number;

  // ---- this slot's scratch (layout.ts SCRATCH_*), where wasm reads the key and writes the value
  /** Word index of this slot's fast-path descriptor (layout.ts SCRATCH_*). */
  readonly scratchDesc: number;
  /** The scratch key, 4-byte aligned for jhash2 and word compares. */
  readonly kb: Uint8Array;
  readonly kw: Int32Array;
  /** Byte offset (in `u8`) of this slot's scratch value. */
  readonly outOff: number;
  /** The scratch key, exactly key_size bytes (Htab.keyScratch). */
  readonly keyScratch: Uint8Array;
  /**
   * The scratch value (Htab.valueScratch): in shared memory where the map has
   * one (wasm copies values straight into it), else a private buffer.
   */
  readonly valueScratch: Uint8Array;

  // ---- the wasm fast path (fast.ts), decided once here
  /** What runs in wasm for this view, or null (the JS path). */
  readonly fast: FastPlan | null;
  /** The lock and list words' atomic operations: wasm instructions with the fast path, else JS Atomics. */
  readonly words: Words;

  // ---- installed once, by the facade's constructor
  /** The lookup specialised for this map's shape (lookup.ts readerFor()), or null where none applies. */
  reader: ShapeReader | null = null;
  /** Where elements come from (see ElemPolicy). */
  elems!: ElemPolicy;
  /** Recover every dead slot (crash/recovery.ts): waits that stall call it. */
  recover: () => number = () => 0;

  // ---- per-operation state (one thread per view; reset at each unlock)
  /**
   * Out-parameter of lookupElemLocked(): the predecessor of the element it
   * found (0 = the bucket head), which replaceLocked() and unlinks read. A
   * caller that moved the element (HomedElems) sets it before replacing.
   */
  foundPrev = 0;
  /** The chain or a value changed under the lock held: the unlock advances the seq. */
  dirty = false;
  /** The bucket this thread holds (0 = none): markDirty() marks it as being written. */
  lockedB = 0;
  /** When a reader first saw its bucket being written (readStalled()). */
  readSince = 0;
  /** Inside a compute() callback: writes to this map throw EBUSY. */
  computing = false;
  /** compute()'s copy of the current value, and a program's per-CPU initial value. */
  computeBuf: Uint8Array | null = null;

  // ---- program sections (program.ts)
  /** Section generation: bumped when a section ends, which kills its references. */
  readonly liveGen = new Int32Array(1);
  sectionDepth = 0;
  /** Grace periods this view waited for inside its own section (awaitGrace()): a compiled batch reads it. */
  sectionGraceWaits = 0;
  /** Elements this view handed out references to in its current section (held-refs.ts). */
  readonly held = new HeldRefs();
  /** held.has() as a function, for limboReclaim() (made once: reclaims do not allocate). */
  readonly heldFn = (e: number): boolean => this.held.has(e);
  closed = false;

  constructor(
    handle: MapHandle,
    g: Geometry,
    mapType: number,
    mapFlags: number,
    hashrnd: number,
    cpu: number,
  ) {
    const { sab, offset, length } = handle;
    this.inDomain = offset !== undefined;
    if (offset === undefined) {
      this.i32 = new Int32Array(sab);
      this.u8 = new Uint8Array(sab);
      this.i64 = new BigInt64Array(sab); // length-tracking on a growable buffer
    } else {
      // A map inside a MapDomain: fixed views, so word indices stay relative to the map.
      const len = length ?? g.totalBytes;
      this.i32 = new Int32Array(sab, offset, Math.floor(len / 4));
      this.u8 = new Uint8Array(sab, offset, len);
      this.i64 = new BigInt64Array(sab, offset, Math.floor(len / 8));
    }
    this.err = new LastError((kind, arg) =>
      kind === ERR_MAP_FULL
        ? `map full (${count(this)} of ${this.maxEntries} entries in use)`
        : `unknown flags 0x${arg.toString(16)}`,
    );
    this.spinLockOff = this.i32[HDR_SPIN_LOCK_OFF_I32];
    this.keySize = g.keySize;
    this.valueSize = g.valueSize;
    this.valueBytes = g.valueBytes;
    this.percpu = g.percpu;
    this.inPlace = valuesInPlace(mapType);
    this.prealloc = g.prealloc;
    this.slotBytes = roundUp(g.valueSize, 8);
    this.keyWords = (g.keySize + 3) >>> 2;
    this.mask = g.n_buckets - 1;
    this.bucketsBase = g.bucketsBytes / 4;
    this.bucketStrideI32 = g.bucketStride >> 2;
    this.homes = g.homes;
    this.homeEnd = this.i32[HDR_HOME_END_I32];
    this.elemsBase = g.elemsBytes / 4; // past 2^29 words in a map over 2 GiB: no `>> 2`
    this.elemStrideI32 = g.elem_size >> 2;
    this.valueOffBytes = ELEM_HEADER_BYTES + roundUp(g.keySize, 8);
    this.hashrnd = hashrnd;
    this.nrCpus = g.nrCpus;
    this.maxEntries = g.maxEntries;
    this.mapFlags = mapFlags;
    this.numElems = g.num_elems;
    this.walkBound = g.num_elems + 1;
    this.geometry = g;
    this.handle = Object.freeze({ ...handle });
    this.info = Object.freeze({
      type: mapType,
      keySize: g.keySize,
      valueSize: g.valueSize,
      maxEntries: g.maxEntries,
      flags: mapFlags,
      nrCpus: g.nrCpus,
      valueBytes: g.valueBytes,
      id: handle.id ?? 0,
    });
    const owner = (c: number) => pcpuBase(c) + PCPU_OWNER_I32;
    this.cpu = claimSlot(this.i32, this.nrCpus, owner, (c) => pcpuBase(c) + PCPU_CLAIM_I32, cpu, "this map");
    this.myPcpu = pcpuBase(this.cpu);
    // The scratch key lives in this slot's scratch buffer, where wasm reads it too.
    const scratch = g.scratchBytes + this.cpu * g.scratchStride;
    this.scratchDesc = scratch >> 2;
    const key = scratch + SCRATCH_DESC_BYTES;
    this.kb = this.u8.subarray(key, key + this.keyWords * 4);
    this.kw = this.i32.subarray(key >> 2, (key >> 2) + this.keyWords);
    this.outOff = key + roundUp(g.keySize, 8);
    this.keyScratch = this.u8.subarray(key, key + g.keySize);
    this.valueScratch =
      g.scratchValueBytes > 0
        ? this.u8.subarray(this.outOff, this.outOff + g.valueBytes)
        : new Uint8Array(g.valueBytes);
    const base = offset ?? 0;
    let wasm: FastPath | null;
    try {
      wasm = fastPathFor(handle.memory, FAST_WAITS);
    } catch (e) {
      releaseSlot(this.i32, this.myPcpu + PCPU_OWNER_I32); // a failed attach keeps no slot
      invalid("attach", `handle.memory cannot back the fast path: ${(e as Error).message}`);
    }
    const links = { lo: this.bucketsBase, span: this.i32.length - this.elemStrideI32 - this.bucketsBase };
    this.fast = fastPlan(wasm, g, mapFlags, base, base + scratch, links, this.inPlace, this.spinLockOff);
    this.words = wasm !== null ? new WasmWords(wasm, base) : new JsWords(this.i32);
    this.writeDescriptor(scratch >> 2, base, base + key, g, this.fast?.lru === true);
  }

  /**
   * Fill this slot's fast-path descriptor (layout.ts SCRATCH_*; fast-path.wat
   * reads it instead of taking ten arguments). `d`: its word index; `key`: the
   * scratch key's byte address.
   */
  private writeDescriptor(d: number, base: number, key: number, g: Geometry, lru: boolean): void {
    const i32 = this.i32;
    i32[d + SCRATCH_BASE_I32] = base;
    i32[d + SCRATCH_BUCKETS_I32] = this.bucketsBase;
    i32[d + SCRATCH_MASK_I32] = this.mask;
    i32[d + SCRATCH_HASHRND_I32] = this.hashrnd;
    i32[d + SCRATCH_KEY_I32] = key;
    i32[d + SCRATCH_KEY_WORDS_I32] = this.keyWords;
    i32[d + SCRATCH_VALUE_OFF_I32] = this.valueOffBytes;
    i32[d + SCRATCH_VALUE_U64S_I32] = g.scratchValueBytes >> 3;
    i32[d + SCRATCH_OUT_I32] = base + this.outOff;
    i32[d + SCRATCH_BOUND_I32] = this.walkBound;
    i32[d + SCRATCH_PCPU0_I32] = base + PCPU_BASE_BYTES;
    i32[d + SCRATCH_CPU_I32] = this.cpu;
    i32[d + SCRATCH_NR_CPUS_I32] = this.nrCpus;
    i32[d + SCRATCH_ACTIVE_I32] = base + (HDR_ACTIVE_I32 << 2);
    i32[d + SCRATCH_MY_PCPU_I32] = base + (this.myPcpu << 2);
    i32[d + SCRATCH_FROZEN_I32] = base + (HDR_FROZEN_I32 << 2);
    i32[d + SCRATCH_STRIDE_I32] = this.bucketStrideI32;
    i32[d + SCRATCH_ELEMS_I32] = this.elemsBase;
    i32[d + SCRATCH_ELEM_STRIDE_I32] = this.elemStrideI32;
    i32[d + SCRATCH_LINK_LO_I32] = this.bucketsBase;
    i32[d + SCRATCH_LINK_SPAN_I32] = this.i32.length - this.elemStrideI32 - this.bucketsBase;
    // LRU_NODES 0: wasm takes the map for a HASH map (and only those, and common-LRU maps, get there).
    i32[d + SCRATCH_LRU_NODES_I32] = 0;
    if (!lru) return;
    const at = lruPlace(g);
    i32[d + SCRATCH_LRU_NUM_I32] = g.num_elems;
    i32[d + SCRATCH_LRU_LIST_I32] = base + at.lists * 4;
    i32[d + SCRATCH_LRU_LOCALS_I32] = base + at.locals * 4;
    i32[d + SCRATCH_LRU_TARGET_I32] = at.targetFree;
    i32[d + SCRATCH_LRU_NODE_COUNT_I32] = g.num_elems + LRU_SENTINELS_PER_LIST + g.nrCpus;
    i32[d + SCRATCH_LRU_NODES_I32] = base + at.nodes * 4;
  }
}

/** Htab.count()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function count(v: HtabView): number {
  let n = 0;
  for (let c = 0; c < v.nrCpus; c++) n += Atomics.load(v.i32, pcpuBase(c) + PCPU_COUNT_I32);
  return n;
}

/**
 * Whether element `e` was carved: CARVED counts it. A carver records the
 * element in its INFLIGHT before it publishes CARVED, so a carver that died
 * in between names an element nobody has carved. Decide it while that dead
 * carver's grow lock is still held (crash/recovery.ts step 1b; elems/carve.ts carves): once it is
 * free, a live carver takes that same element, and CARVED counts it as its own.
 */
export function carvedElem(v: HtabView, e: number): boolean {
  return (e - v.elemsBase) / v.elemStrideI32 < Atomics.load(v.i32, HDR_CARVED_I32);
}

/** Element number `n` (an LRU node) to its word index, and back (nodeOf: LRU maps, which have no homes). */
export function elemOf(v: HtabView, n: number): number {
  // geometry.ts elemIndexToWord(), on the view's own fields: LRU pops and frees call it.
  return n < v.homes
    ? v.bucketsBase + n * v.bucketStrideI32 + BUCKET_HOME_I32
    : v.elemsBase + (n - v.homes) * v.elemStrideI32;
}

export function nodeOf(v: HtabView, e: number): number {
  return (e - v.elemsBase) / v.elemStrideI32;
}

/** Bucket number `n`'s word index. */
export function bucketAt(v: HtabView, n: number): number {
  return v.bucketsBase + n * v.bucketStrideI32;
}

/** The bucket number of bucket word index `b`. */
export function bucketNumber(v: HtabView, b: number): number {
  return (b - v.bucketsBase) / v.bucketStrideI32;
}
