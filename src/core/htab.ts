/**
 * BPF_MAP_TYPE_HASH in a SharedArrayBuffer (kernel: kernel/bpf/hashtab.c).
 *
 * Concurrency scheme (why htab has no seed-000 hole):
 * - Writers take the bucket lock, and change a chain's links only inside a
 *   bucket seq write section (seq odd). New elements are filled in *before*
 *   the section opens, while no chain links to them.
 * - Readers take no lock: they sample the bucket seq, walk the chain, copy
 *   what they found, and keep the result only if the seq is unchanged and even.
 *   A reader that wandered onto an element that was freed and reused (into
 *   this or another bucket) started from a bucket whose seq changed when the
 *   element left it, so it retries: no false-positive key match, no torn value.
 * - Freed elements go straight back to a per-CPU freelist, as in the kernel;
 *   the seq check, not deferred reuse, makes that safe for copying readers.
 *
 * Lock order: bucket lock -> freelist lock. No operation holds two bucket locks.
 */

import {
  BpfLru,
  CLASS_FREE,
  CLASS_HASH,
  CLASS_LIMBO,
  DEL_DEFERRED,
  DEL_FREED,
  DEL_NOT_FOUND,
  LRU_T_ACTIVE,
  LRU_T_INACTIVE,
  LRU_T_LIMBO,
  LRU_T_LOCAL_PENDING,
  RETRY,
} from "../alloc/bpf-lru.js";
import {
  limboPush,
  limboReclaim,
  limboReclaimAll,
  noActiveSections,
  sectionEnter,
  sectionExit,
  synchronizeSections,
} from "../alloc/epoch.js";
import {
  FREELIST_TIMEDOUT,
  pcpuFreelistPop,
  pcpuFreelistPopulate,
  pcpuFreelistPush,
} from "../alloc/pcpu-freelist.js";
import { BpfError, Errno, invalid } from "../errors.js";
import { htabMapHash } from "../hash/htab-hash.js";
import { jhash2OneWord } from "../hash/jhash.js";
import {
  BUCKET_HEAD_I32,
  BUCKET_OWNER_I32,
  BUCKET_SEQLOCK_I32,
  ELEM_FNEXT_I32,
  ELEM_HASH_I32,
  ELEM_HEADER_BYTES,
  ELEM_KEY_I32,
  ELEM_NEXT_I32,
  ELEM_TAG_I32,
  type Geometry,
  HDR_ACTIVE_I32,
  HDR_CARVED_I32,
  HDR_FROZEN_I32,
  HDR_GROW_LOCK_I32,
  HDR_LRU_REPAIR_I32,
  HDR_NONCE_I32,
  HDR_RECOVERED_I32,
  HDR_RECOVERY_LOCK_I32,
  HDR_SPIN_LOCK_OFF_I32,
  LRU_NONE,
  mapStateBytes,
  OP_INSERT,
  OP_NONE,
  OP_REPLACE,
  OP_UNLINK,
  PCPU_BASE_BYTES,
  PCPU_COUNT_I32,
  PCPU_EXTRA_I32,
  PCPU_FL_HEAD_I32,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  PCPU_INTENT_BUCKET_I32,
  PCPU_INTENT_COUNT_I32,
  PCPU_INTENT_ELEM_I32,
  PCPU_INTENT_OLD_I32,
  PCPU_INTENT_OP_I32,
  PCPU_LIMBO_HEAD_I32,
  PCPU_LRU_SPARE_I32,
  PCPU_OWNER_I32,
  PCPU_RECORD_BYTES,
  PCPU_SECTION_I32,
  pcpuBase,
  readGeometry,
  roundUp,
  SCRATCH_ACTIVE_I32,
  SCRATCH_BASE_I32,
  SCRATCH_BOUND_I32,
  SCRATCH_BUCKETS_I32,
  SCRATCH_CPU_I32,
  SCRATCH_DESC_BYTES,
  SCRATCH_FROZEN_I32,
  SCRATCH_HASHRND_I32,
  SCRATCH_KEY_I32,
  SCRATCH_KEY_WORDS_I32,
  SCRATCH_MASK_I32,
  SCRATCH_MY_PCPU_I32,
  SCRATCH_NR_CPUS_I32,
  SCRATCH_OUT_I32,
  SCRATCH_PCPU0_I32,
  SCRATCH_VALUE_OFF_I32,
  SCRATCH_VALUE_U64S_I32,
  SLOT_ALIVE,
  SLOT_DEAD,
  SLOT_FREE,
  writeHeader,
} from "../layout/layout.js";
import {
  bucketBeginWrite,
  bucketLock,
  bucketUnlock,
  SEQ_LOCKED,
  SEQ_WAITERS,
  seqReadable,
  seqUnchanged,
  unlockedWord,
} from "../sync/bucket-seqlock.js";
import {
  lastTimeoutOwner,
  lockAcquire,
  lockAcquireMust,
  lockOwner,
  lockRelease,
} from "../sync/owner-lock.js";
import { claimSlot } from "../sync/slot-claim.js";
import { LOCK_TIMEOUT_MS, lockTimeoutText, nowMs, SPIN_LIMIT, setStallHandler } from "../sync/spin.js";
import { valuesInPlace } from "../traits.js";
import { MapFlags, MapType, UpdateFlags } from "../uapi.js";
import {
  allocSharedMemory,
  type FastPath,
  fastPathFor,
  LOOKUP_COPY,
  LOOKUP_HASH,
  WASM_FROZEN,
  WASM_RETRY,
  type WasmMemory,
} from "../wasm/fast-path.js";
import { poisonClosed } from "./closed.js";
import type { BatchArgs, BatchResult, MapInfo, RawMap } from "./raw-map.js";
import { defaultNrCpus, type MapSpec, type SabCreateOptions, validateSpec } from "./spec.js";
import { ValueRef } from "./value-ref.js";

const ENOENT = -Errno.ENOENT;
const EEXIST = -Errno.EEXIST;
const E2BIG = -Errno.E2BIG;
const EINVAL = -Errno.EINVAL;
const EPERM = -Errno.EPERM;
const EBUSY = -Errno.EBUSY;
const ETIMEDOUT = -Errno.ETIMEDOUT;
/** lookupCopy(): the bucket stayed in a write past LOCK_TIMEOUT_MS (lastError says why). */
const READ_TIMEDOUT = -2;
/** allocElem(): the freelists with elements stayed locked past LOCK_TIMEOUT_MS. */
const ALLOC_TIMEDOUT = -1;
/** How long an unowned locked bucket must stay unowned before recovery takes it from a dead slot. */
const RECOVERY_WAIT_MS = 100;
const ERR_TEXT = 0;
const ERR_MAP_FULL = 1;
const ERR_FLAGS = 2;
const ENOSPC = -Errno.ENOSPC;

/** What a worker needs to attach: post it with postMessage. */
export interface MapHandle {
  readonly sab: SharedArrayBuffer;
  /**
   * The shared wasm memory whose buffer `sab` is, when the map was created
   * with the fast path: a thread attaching with it runs the wasm fast path.
   * (Pass the whole handle to workers; `sab` alone attaches on the JS path.)
   */
  readonly memory?: WasmMemory;
  /** A map inside a MapDomain: its byte offset and length in `sab`, and its id. */
  readonly offset?: number;
  readonly length?: number;
  readonly id?: number;
}

/** Options for attach(). */
export interface AttachOptions {
  /** CPU slot to claim. @default the first free slot */
  cpu?: number;
}

/** Result of fsck(). */
export interface FsckReport {
  ok: boolean;
  errors: string[];
  elements: number;
  free: number;
  extra: number;
}

function randomSeed(): number {
  const c = (globalThis as { crypto?: { getRandomValues(a: Uint32Array): Uint32Array } }).crypto;
  if (c) return c.getRandomValues(new Uint32Array(1))[0] | 0;
  return (Math.random() * 0x1_0000_0000) | 0;
}

/**
 * A BPF hash map living in a SharedArrayBuffer. Every thread that attaches
 * gets its own instance over the same memory and its own CPU slot.
 */
export class Htab implements RawMap {
  readonly info: MapInfo;
  /** Post this to a worker; `attach(handle)` there gives a full map. */
  readonly handle: MapHandle;
  /** This instance's CPU slot (kernel: smp_processor_id()). */
  readonly cpu: number;
  // Why the last call failed. Formatted lazily so that failing calls on hot paths
  // (a full map under load, bad flags in a loop) allocate nothing.
  private errText = "";
  private errKind = ERR_TEXT;
  private errArg = 0;

  private readonly i32: Int32Array;
  private readonly u8: Uint8Array;
  private readonly keySize: number;
  private readonly valueSize: number;
  /** Bytes of a value as the control plane moves it (per-CPU: nrCpus x round_up(value_size, 8)). */
  private readonly valueBytes: number;
  private readonly percpu: boolean;
  /** Replace an existing key's value where it is (per-CPU maps, hash of maps), not by a new element. */
  private readonly inPlace: boolean;
  private readonly prealloc: boolean;
  /** round_up(value_size, 8): one CPU's slot in a per-CPU value. */
  private readonly slotBytes: number;
  private readonly keyWords: number;
  private readonly mask: number;
  private readonly bucketsBase: number;
  private readonly elemsBase: number;
  private readonly elemStrideI32: number;
  private readonly valueOffBytes: number;
  private readonly hashrnd: number;
  private readonly nrCpus: number;
  private readonly maxEntries: number;
  private readonly mapFlags: number;
  /** Longest chain a walk may follow before it must have seen a seq change. */
  private readonly walkBound: number;
  private readonly myPcpu: number;
  // Scratch copy of the key, 4-byte aligned for jhash2 and word compares.
  private readonly kb: Uint8Array;
  private readonly kw: Int32Array;
  private readonly i64: BigInt64Array;
  /** Byte offset of the bpf_spin_lock in the value, or -1. */
  private readonly spinLockOff: number;
  /** Section generation: bumped when a section ends, which kills its references. */
  private readonly liveGen = new Int32Array(1);
  private sectionDepth = 0;
  private closed = false;
  /** Lives inside a MapDomain's buffer (fully reserved there: NO_PREALLOC never grows it). */
  private readonly inDomain: boolean;
  /** LRU_HASH / LRU_PERCPU_HASH: the eviction lists; null for other maps. */
  private readonly lru: BpfLru | null = null;
  /** The wasm fast path over this map's memory, or null (JS path). */
  private readonly fast: FastPath | null;
  /** Fast path and a key of whole u32 words: wasm hashes it too (jhash2). */
  private readonly wordKeys: boolean;
  /** The wasm write calls' mode: LOOKUP_HASH for word keys, else 0 (the caller passes the hash). */
  private readonly hashMode: number;
  /** Updates and deletes run in wasm too (see the constructor). */
  private readonly fastWrites: boolean;
  /** Values move through the scratch buffer, so wasm lookups can copy them (Geometry.scratchValueBytes). */
  private readonly fastValues: boolean;
  private readonly geometry: Geometry;
  /** Byte address (wasm) of word 0 of this map. */
  private readonly baseAddr: number;
  /** Byte address (wasm) of this slot's fast-path descriptor. */
  private readonly desc: number;
  /** Byte offset (in `u8`) of this slot's scratch value. */
  private readonly outOff: number;
  /** LRU: the element popped for this operation before its bucket lock (kernel: prealloc_lru_pop()). */
  private lruSpare = 0;
  /** LRU: the element a replace took out, freed after the bucket lock is dropped. */
  private lruOld = 0;
  // ---- per-operation state (one thread per instance; reset at each unlock)
  /** Predecessor of the element lookupElemLocked() found (0 = the bucket head). */
  private prev = 0;
  /** The chain or a value changed under the lock held: the unlock advances the seq. */
  private dirty = false;
  /** The bucket this thread holds (0 = none): markDirty() marks it as being written. */
  private lockedB = 0;
  /** When a reader first saw its bucket being written (readStalled()). */
  private readSince = 0;
  /** LRU: an eviction this operation tried gave up on a bucket lock (lruTake() answers ETIMEDOUT). */
  private evictTimedOut = false;

  private constructor(
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
      this.i32 = new Int32Array(sab, offset, len >> 2);
      this.u8 = new Uint8Array(sab, offset, len);
      this.i64 = new BigInt64Array(sab, offset, len >> 3);
    }
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
    this.bucketsBase = g.bucketsBytes >> 2;
    this.elemsBase = g.elemsBytes >> 2;
    this.elemStrideI32 = g.elem_size >> 2;
    this.valueOffBytes = ELEM_HEADER_BYTES + roundUp(g.keySize, 8);
    this.hashrnd = hashrnd;
    this.nrCpus = g.nrCpus;
    this.maxEntries = g.maxEntries;
    this.mapFlags = mapFlags;
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
    this.cpu = this.claimCpu(cpu);
    this.myPcpu = pcpuBase(this.cpu);
    // The scratch key lives in this slot's scratch buffer, where wasm reads it too.
    const scratch = g.scratchBytes + this.cpu * g.scratchStride;
    const key = scratch + SCRATCH_DESC_BYTES;
    this.kb = this.u8.subarray(key, key + this.keyWords * 4);
    this.kw = this.i32.subarray(key >> 2, (key >> 2) + this.keyWords);
    this.outOff = key + roundUp(g.keySize, 8);
    this.fast = fastPathFor(handle.memory);
    this.wordKeys = this.fast !== null && (g.keySize & 3) === 0;
    this.hashMode = this.wordKeys ? LOOKUP_HASH : 0;
    this.fastValues = this.fast !== null && g.scratchValueBytes > 0;
    const base = offset ?? 0;
    this.baseAddr = base;
    this.desc = base + scratch;
    this.writeDescriptor(scratch >> 2, base, base + key, hashrnd, g);
    // Writes in wasm too: a preallocated HASH map whose values have no spin lock.
    // (NO_PREALLOC maps, possible inside a domain, count against max_entries: the JS path.)
    this.fastWrites =
      this.fastValues && g.prealloc && g.lru === LRU_NONE && !this.inPlace && this.spinLockOff < 0;
    if (g.lru !== LRU_NONE) {
      const inflight = this.myPcpu + PCPU_INFLIGHT_I32;
      const spare = this.myPcpu + PCPU_LRU_SPARE_I32;
      const i32 = this.i32;
      this.lru = new BpfLru(
        i32,
        g,
        HDR_LRU_REPAIR_I32,
        this.cpu,
        (n) => this.lruDelFromHtab(n),
        (n) => {
          const e = this.elemOf(n);
          i32[e + ELEM_FNEXT_I32] = 0;
          i32[inflight] = e;
          i32[spare] = e;
        },
        (n) => {
          const e = this.elemOf(n);
          if (i32[inflight] === e) i32[inflight] = i32[e + ELEM_FNEXT_I32]; // next of an unlinked chain, or 0
        },
        this.fast,
        this.baseAddr,
      );
    }
    // A waiter stuck behind a thread that was terminated recovers its slot.
    setStallHandler(this.i32, () => {
      this.recoverDeadSlots();
    });
  }

  /**
   * Fill this slot's fast-path descriptor (layout.ts SCRATCH_*; fast-path.wat
   * reads it instead of taking ten arguments). `d`: its word index; `key`: the
   * scratch key's byte address.
   */
  private writeDescriptor(d: number, base: number, key: number, hashrnd: number, g: Geometry): void {
    const i32 = this.i32;
    i32[d + SCRATCH_BASE_I32] = base;
    i32[d + SCRATCH_BUCKETS_I32] = this.bucketsBase;
    i32[d + SCRATCH_MASK_I32] = this.mask;
    i32[d + SCRATCH_HASHRND_I32] = hashrnd;
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
  }

  /**
   * Create a map (kernel: BPF_MAP_CREATE). The calling thread takes a CPU slot.
   * @throws BpfError EPERM, EINVAL, E2BIG, ENOTSUPP, EOPNOTSUPP, ENOMEM — see validateSpec()
   */
  static create(spec: MapSpec, opts: SabCreateOptions = {}): Htab {
    const nrCpus = opts.nrCpus ?? defaultNrCpus();
    const g = validateSpec(spec, nrCpus, opts.privileged === true);
    if (spec.type === MapType.HashOfMaps)
      invalid("create", "HASH_OF_MAPS lives in a MapDomain: create it with domain.createMap()");
    let sab: SharedArrayBuffer;
    let memory: WasmMemory | null = null;
    try {
      if (g.prealloc && opts.fastPath !== false) memory = allocSharedMemory(g.totalBytes);
      // BPF_F_NO_PREALLOC: reserve the whole map, commit only header and buckets; grow on demand.
      sab =
        memory !== null
          ? (memory.buffer as SharedArrayBuffer)
          : g.prealloc
            ? new SharedArrayBuffer(g.totalBytes)
            : new SharedArrayBuffer(g.elemsBytes, { maxByteLength: g.totalBytes });
    } catch (e) {
      throw new BpfError(
        "create",
        Errno.ENOMEM,
        `cannot allocate ${g.totalBytes} bytes: ${(e as Error).message}`,
      );
    }
    const hashrnd = Htab.initRegion(new Int32Array(sab), g, spec);
    const handle = memory !== null ? { sab, memory } : { sab };
    return new Htab(handle, g, spec.type, spec.flags ?? 0, hashrnd, opts.cpu ?? -1);
  }

  /**
   * Create a map inside a MapDomain's buffer at `offset` (`g.totalBytes`
   * bytes, zeroed). Requires: validateSpec() gave `g`. Used by MapDomain.
   */
  static createIn(handle: MapHandle, spec: MapSpec, g: Geometry, cpu: number): Htab {
    const off = handle.offset ?? 0;
    const hashrnd = Htab.initRegion(new Int32Array(handle.sab, off, g.totalBytes >> 2), g, spec);
    return new Htab({ ...handle, length: g.totalBytes }, g, spec.type, spec.flags ?? 0, hashrnd, cpu);
  }

  /** Write the header and file every element (kernel: htab_map_alloc() + prealloc_init()). Returns hashrnd. */
  private static initRegion(i32: Int32Array, g: Geometry, spec: MapSpec): number {
    const flags = spec.flags ?? 0;
    const nrCpus = g.nrCpus;
    const hashrnd = (flags & MapFlags.ZeroSeed) !== 0 ? 0 : randomSeed();
    writeHeader(i32, g, spec.type, flags, hashrnd);
    i32[HDR_NONCE_I32] = randomSeed() | 1;
    if (spec.spinLockOffset !== undefined) i32[HDR_SPIN_LOCK_OFF_I32] = spec.spinLockOffset;
    // prealloc_init(): every element onto the LRU's free lists, or the per-CPU freelists ...
    const noop = () => 0;
    if (g.lru !== LRU_NONE) new BpfLru(i32, g, HDR_LRU_REPAIR_I32, 0, noop, noop, noop).populate();
    else if (g.prealloc) pcpuFreelistPopulate(i32, g.elemsBytes >> 2, g.elem_size >> 2, g.num_elems, nrCpus);
    // ... then alloc_extra_elems(): one element per CPU for replacing existing keys.
    for (let cpu = 0; cpu < g.extra_elems; cpu++) {
      const e = pcpuFreelistPop(i32, cpu, nrCpus);
      i32[pcpuBase(cpu) + PCPU_INFLIGHT_I32] = 0;
      i32[pcpuBase(cpu) + PCPU_EXTRA_I32] = e;
    }
    return hashrnd;
  }

  /**
   * Attach to a map created elsewhere (typically in another worker).
   * @throws BpfError EINVAL for a foreign or corrupt buffer, EBUSY when every CPU slot is taken
   */
  static attach(handle: MapHandle | SharedArrayBuffer, opts: AttachOptions = {}): Htab {
    const h: MapHandle =
      handle instanceof SharedArrayBuffer ? { sab: handle } : ((handle ?? {}) as MapHandle);
    const { g, mapType, mapFlags, hashrnd } = readGeometry(h.sab, h.offset, h.length);
    // The fast path addresses the memory, the JS path the buffer: they must be one map.
    // (A buffer object posted to another thread need not be identical to memory.buffer there.)
    if (h.memory !== undefined && h.offset === undefined) {
      const mine = h.memory.buffer;
      if (
        mine !== h.sab &&
        (mine.byteLength !== h.sab.byteLength ||
          new Int32Array(mine, 0, HDR_NONCE_I32 + 1)[HDR_NONCE_I32] !==
            new Int32Array(h.sab, 0, HDR_NONCE_I32 + 1)[HDR_NONCE_I32])
      )
        invalid("attach", "handle.memory is not the memory of handle.sab");
    }
    return new Htab(h, g, mapType, mapFlags, hashrnd, opts.cpu ?? -1);
  }

  private claimCpu(want: number): number {
    return claimSlot(this.i32, this.nrCpus, (c) => pcpuBase(c) + PCPU_OWNER_I32, want, "this map");
  }

  // ------------------------------------------------------- crash recovery

  /**
   * Declare that the thread holding CPU slot `cpu` is gone (its worker exited
   * or was terminated without close()) and recover the slot now: locks it
   * held are released, a half-done change is finished or undone, elements it
   * owned go back to a freelist, its count is corrected, and the slot is free
   * again. Call it from the worker's 'exit' event (see watchWorker()).
   * Waiters stuck behind a dead slot's lock also run recovery by themselves.
   */
  reap(cpu: number): void {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.nrCpus) invalid("reap", `no CPU slot ${cpu}`);
    if (cpu === this.cpu) invalid("reap", "a thread cannot reap its own slot");
    Atomics.compareExchange(this.i32, pcpuBase(cpu) + PCPU_OWNER_I32, SLOT_ALIVE, SLOT_DEAD);
    while (Atomics.load(this.i32, pcpuBase(cpu) + PCPU_OWNER_I32) === SLOT_DEAD) {
      if (this.recoverDeadSlots() === 0)
        Atomics.wait(this.i32, HDR_RECOVERY_LOCK_I32, Atomics.load(this.i32, HDR_RECOVERY_LOCK_I32), 1);
    }
  }

  /** Whether CPU slot `cpu` is taken by a live thread, being recovered, or free. Can be late. */
  slotState(cpu: number): "alive" | "dead" | "free" {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.nrCpus) invalid("slotState", `no CPU slot ${cpu}`);
    const s = Atomics.load(this.i32, pcpuBase(cpu) + PCPU_OWNER_I32);
    return s === SLOT_ALIVE ? "alive" : s === SLOT_DEAD ? "dead" : "free";
  }

  /** Recover every slot marked dead, unless another thread is recovering. Returns how many it recovered. */
  recoverDeadSlots(): number {
    const i32 = this.i32;
    let n = 0;
    for (let c = 0; c < this.nrCpus; c++) {
      if (Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32) !== SLOT_DEAD) continue;
      if (Atomics.compareExchange(i32, HDR_RECOVERY_LOCK_I32, 0, this.cpu + 1) !== 0) return n;
      try {
        if (Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32) === SLOT_DEAD) {
          this.recoverSlot(c);
          n++;
        }
      } finally {
        Atomics.store(i32, HDR_RECOVERY_LOCK_I32, 0);
        Atomics.notify(i32, HDR_RECOVERY_LOCK_I32);
      }
    }
    return n;
  }

  /** Times a lock or a half-done operation was recovered from a dead slot. */
  stats(): { recovered: number; count: number; memoryBytes: number } {
    return {
      recovered: Atomics.load(this.i32, HDR_RECOVERED_I32),
      count: this.count(),
      memoryBytes: this.memoryUsage(),
    };
  }

  /** Is `x` on `cpu`'s freelist or limbo list? Requires: that list's lock held (or its owner dead). */
  private onLists(cpu: number, x: number): boolean {
    const i32 = this.i32;
    const p = pcpuBase(cpu);
    for (const head of [PCPU_FL_HEAD_I32, PCPU_LIMBO_HEAD_I32]) {
      let e = i32[p + head];
      for (let n = 0; e !== 0 && n < this.walkBound; n++, e = i32[e + ELEM_FNEXT_I32])
        if (e === x) return true;
    }
    return false;
  }

  /** Predecessor of `x` in bucket `b`'s chain (0 = head), or -1 if absent. Requires: bucket lock held. */
  private chainPrev(b: number, x: number): number {
    const i32 = this.i32;
    let prev = 0;
    let e = i32[b + BUCKET_HEAD_I32];
    for (let n = 0; e !== 0 && n < this.walkBound; n++) {
      if (e === x) return prev;
      prev = e;
      e = i32[e + ELEM_NEXT_I32];
    }
    return -1;
  }

  /**
   * Whether element `e` exists: always on a preallocated map; under
   * NO_PREALLOC only below CARVED (a carver that died between recording
   * INFLIGHT and publishing CARVED named an element nobody has carved).
   */
  private carvedElem(e: number): boolean {
    return (
      this.prealloc || (e - this.elemsBase) / this.elemStrideI32 < Atomics.load(this.i32, HDR_CARVED_I32)
    );
  }

  /** Give an element nobody owns any more back to this slot's freelist (or limbo). */
  private fileLost(x: number): void {
    const i32 = this.i32;
    i32[x + ELEM_TAG_I32] = 0;
    i32[this.myPcpu + PCPU_INFLIGHT_I32] = x;
    this.freeElem(x);
    Atomics.add(i32, HDR_RECOVERED_I32, 1);
  }

  /**
   * Recover dead slot `d`. Requires: HDR_RECOVERY_LOCK held. Runs while other
   * threads keep working: it only touches what `d` held or owned.
   */
  private recoverSlot(d: number): void {
    const i32 = this.i32;
    const p = pcpuBase(d);
    const origLost = i32[p + PCPU_INFLIGHT_I32];
    let lost = origLost;
    // We may be recovering from inside our own operation (a stalled wait): keep our INFLIGHT.
    const mine = i32[this.myPcpu + PCPU_INFLIGHT_I32];
    // 1. Freelist locks `d` held: a push or pop was under way. Its INFLIGHT element is
    //    either on that list (filed) or not; nobody else could touch the list meanwhile.
    for (let c = 0; c < this.nrCpus; c++) {
      const lk = pcpuBase(c) + PCPU_FL_LOCK_I32;
      const v = Atomics.load(i32, lk);
      if (v !== 0 && lockOwner(v) === d) {
        if (lost !== 0 && this.onLists(c, lost)) lost = 0;
        Atomics.store(i32, lk, 0);
        Atomics.notify(i32, lk);
        Atomics.add(i32, HDR_RECOVERED_I32, 1);
      }
    }
    // 1b. The NO_PREALLOC grow lock: `d` was carving. CARVED is published last, so an
    //     element it counted is its INFLIGHT (filed below as lost); a grown buffer is harmless.
    const g = Atomics.load(i32, HDR_GROW_LOCK_I32);
    if (g !== 0 && lockOwner(g) === d) {
      Atomics.store(i32, HDR_GROW_LOCK_I32, 0);
      Atomics.notify(i32, HDR_GROW_LOCK_I32);
      Atomics.add(i32, HDR_RECOVERED_I32, 1);
    }
    // 2. A bucket lock `d` held: finish or undo its chain change, fix its count.
    const b = i32[p + PCPU_INTENT_BUCKET_I32];
    if (b !== 0 && this.deadHoldsBucket(d, b)) {
      i32[b + BUCKET_OWNER_I32] = this.cpu + 1; // ours now
      bucketBeginWrite(i32, b + BUCKET_SEQLOCK_I32); // readers retry until the unlock below
      const op = i32[p + PCPU_INTENT_OP_I32];
      const e = i32[p + PCPU_INTENT_ELEM_I32];
      const old = i32[p + PCPU_INTENT_OLD_I32];
      const before = i32[p + PCPU_INTENT_COUNT_I32];
      if (op === OP_INSERT) {
        const linked = this.chainPrev(b, e) >= 0;
        i32[p + PCPU_COUNT_I32] = before + (linked ? 1 : 0);
        if (linked && lost === e) lost = 0;
      } else if (op === OP_UNLINK) {
        const linked = this.chainPrev(b, e) >= 0;
        i32[p + PCPU_COUNT_I32] = before - (linked ? 0 : 1);
        if (linked && lost === e) lost = 0; // undone: still in the map
      } else if (op === OP_REPLACE) {
        // Steps: link e; INFLIGHT = old; unlink old; file old (EXTRA, or limbo then a
        // popped refill p in INFLIGHT until it is EXTRA). Undo nothing: finish it.
        i32[p + PCPU_COUNT_I32] = before;
        if (this.chainPrev(b, e) >= 0) {
          const prev = this.chainPrev(b, old);
          if (prev >= 0) {
            if (prev === 0) i32[b + BUCKET_HEAD_I32] = i32[old + ELEM_NEXT_I32];
            else i32[prev + ELEM_NEXT_I32] = i32[old + ELEM_NEXT_I32];
            lost = old; // never filed (INFLIGHT was e or 0, and e is linked)
          } else if (origLost !== old && lost === i32[p + PCPU_EXTRA_I32]) lost = 0; // old filed; refill p kept
          // (origLost === old: old unlinked but not filed, unless step 1 found it on a list.)
          if (lost === e) lost = 0;
          if (i32[p + PCPU_EXTRA_I32] === e) i32[p + PCPU_EXTRA_I32] = 0; // e is in the map now
        }
        // Else nothing changed in the chain; an allocated e is INFLIGHT (lost).
      }
      i32[p + PCPU_INTENT_OP_I32] = OP_NONE;
      // Unlock directly: unlockBucket() would clear *our* intent and dirty flag.
      i32[b + BUCKET_OWNER_I32] = 0;
      bucketUnlock(i32, b + BUCKET_SEQLOCK_I32, true);
      Atomics.add(i32, HDR_RECOVERED_I32, 1);
    }
    // 3. Whatever `d` still owned off every list and chain goes back. LRU maps
    //    re-create their lists instead, which also files what `d` owned.
    if (this.lru !== null) {
      if (this.lru.holdsAny(d) || lost !== 0 || i32[p + PCPU_LRU_SPARE_I32] !== 0) {
        // Raised before `d`'s LRU locks are freed: whoever takes one next backs out and repairs.
        Atomics.store(i32, HDR_LRU_REPAIR_I32, 1);
        i32[p + PCPU_LRU_SPARE_I32] = 0;
        Atomics.add(i32, HDR_RECOVERED_I32, this.lru.releaseDead(d));
        // Repair now if we hold nothing; otherwise the next thread to take an LRU lock does.
        if (i32[this.myPcpu + PCPU_INTENT_BUCKET_I32] === 0 && !this.lru.holdsAny(this.cpu))
          this.lruRepair(d);
      }
    } else if (lost !== 0 && this.carvedElem(lost)) this.fileLost(lost);
    // 4. Value spin locks `d` held (the value may be half written).
    if (this.spinLockOff >= 0) {
      const step = this.elemStrideI32;
      const lockAt = (this.valueOffBytes + this.spinLockOff) >> 2;
      const elems = this.prealloc ? this.walkBound - 1 : Atomics.load(i32, HDR_CARVED_I32);
      for (let e = this.elemsBase, n = 0; n < elems; n++, e += step) {
        const v = Atomics.load(i32, e + lockAt);
        if (v !== 0 && lockOwner(v) === d) {
          Atomics.store(i32, e + lockAt, 0);
          Atomics.notify(i32, e + lockAt);
          Atomics.add(i32, HDR_RECOVERED_I32, 1);
        }
      }
    }
    // 5. Its program section, then the slot itself.
    if (Atomics.load(i32, p + PCPU_SECTION_I32) !== 0) {
      Atomics.store(i32, p + PCPU_SECTION_I32, 0);
      Atomics.sub(i32, HDR_ACTIVE_I32, 1);
    }
    i32[p + PCPU_INFLIGHT_I32] = 0;
    i32[p + PCPU_INTENT_BUCKET_I32] = 0;
    i32[this.myPcpu + PCPU_INFLIGHT_I32] = mine;
    Atomics.store(i32, p + PCPU_OWNER_I32, SLOT_FREE);
  }

  /**
   * Whether dead slot `d` holds bucket `b`. Locked with OWNER naming `d`: yes.
   * Locked with OWNER 0: `d` died between its lock CAS and its OWNER store, or
   * between clearing OWNER and its unlock; or a live thread is in that same
   * window right now. Every claimant sets INTENT_BUCKET before its CAS, so with
   * no live claimant it is `d`'s; with one, a live holder stores OWNER within
   * instructions, so an OWNER still 0 after RECOVERY_WAIT_MS is `d`'s.
   */
  private deadHoldsBucket(d: number, b: number): boolean {
    const i32 = this.i32;
    const locked = () => (Atomics.load(i32, b + BUCKET_SEQLOCK_I32) & SEQ_LOCKED) !== 0;
    if (!locked()) return false;
    const owner = Atomics.load(i32, b + BUCKET_OWNER_I32);
    if (owner !== 0) return owner === d + 1;
    if (i32[pcpuBase(d) + PCPU_INTENT_BUCKET_I32] !== b) return false;
    let claimants = 0;
    for (let c = 0; c < this.nrCpus; c++)
      if (
        c !== d &&
        Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32) === SLOT_ALIVE &&
        i32[pcpuBase(c) + PCPU_INTENT_BUCKET_I32] === b
      )
        claimants++;
    if (claimants === 0) return true;
    const until = Date.now() + RECOVERY_WAIT_MS;
    while (Date.now() < until) {
      if (!locked() || Atomics.load(i32, b + BUCKET_OWNER_I32) !== 0) return false;
      Atomics.wait(i32, HDR_RECOVERED_I32, -1, 1);
    }
    return locked() && Atomics.load(i32, b + BUCKET_OWNER_I32) === 0;
  }

  /**
   * Give the CPU slot back. Every later call on this object throws BpfError
   * EINVAL ("map is closed"); calling close() again does nothing. Other
   * threads' objects on the same map are unaffected.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    while (this.sectionDepth > 0) this.exit();
    // Poisoned before the slot is free: from the store on, another thread may own it.
    poisonClosed(this);
    Atomics.store(this.i32, this.myPcpu + PCPU_OWNER_I32, SLOT_FREE);
  }

  // ---------------------------------------------------------------- helpers

  private fail(err: number, detail: string): number {
    this.errKind = ERR_TEXT;
    this.errText = detail;
    return err;
  }

  private failWith(err: number, kind: number, arg: number): number {
    this.errKind = kind;
    this.errArg = arg;
    return err;
  }

  /**
   * A copy of the map's bytes with the CPU slots' scratch buffers zeroed
   * (working memory, not contents): two equal copies mean equal map state,
   * and a failed operation leaves it unchanged.
   */
  stateBytes(): Uint8Array {
    return mapStateBytes(this.u8.buffer as SharedArrayBuffer, this.geometry, this.u8.byteOffset);
  }

  /** True when this thread runs the wasm fast path on this map (see SabCreateOptions.fastPath). */
  get fastPath(): boolean {
    return this.fast !== null;
  }

  /** Human-readable reason for the last non-zero return. */
  get lastError(): string {
    switch (this.errKind) {
      case ERR_MAP_FULL:
        return `map full (${this.count()} of ${this.maxEntries} entries in use)`;
      case ERR_FLAGS:
        return `unknown flags 0x${this.errArg.toString(16)}`;
      default:
        return this.errText;
    }
  }

  // The checks are one test each on the hot path; the messages are built in cold functions.
  private checkKey(op: string, key: unknown): asserts key is Uint8Array {
    if (!(key instanceof Uint8Array) || key.length !== this.keySize) this.badKey(op, key);
  }

  private badKey(op: string, key: unknown): never {
    if (!(key instanceof Uint8Array)) invalid(op, "key must be a Uint8Array");
    invalid(op, `key is ${key.length} bytes, map key_size is ${this.keySize}`);
  }

  private checkValueIn(op: string, value: unknown): asserts value is Uint8Array {
    if (!(value instanceof Uint8Array) || value.length !== this.valueBytes) this.badValue(op, value, true);
  }

  private checkValueOut(op: string, value: unknown): asserts value is Uint8Array {
    if (!(value instanceof Uint8Array) || value.length < this.valueBytes) this.badValue(op, value, false);
  }

  private badValue(op: string, value: unknown, input: boolean): never {
    if (!(value instanceof Uint8Array))
      invalid(op, input ? "value must be a Uint8Array" : "value buffer must be a Uint8Array");
    if (input) invalid(op, `value is ${value.length} bytes, the map takes ${this.valueBytes} per value`);
    invalid(op, `value buffer is ${value.length} bytes, the map moves ${this.valueBytes} per value`);
  }

  private checkFlagsArg(op: string, flags: unknown): asserts flags is number {
    if (typeof flags !== "number" || !Number.isInteger(flags) || flags < 0 || flags > Number.MAX_SAFE_INTEGER)
      invalid(op, `flags must be a non-negative integer, got ${String(flags)}`);
  }

  /** Copy `key` into the scratch words and hash it. */
  private hashKey(key: Uint8Array): number {
    this.keyToScratch(key);
    // The common u32 key: one word, no loop (same value as jhash2 over one word).
    if (this.keySize === 4) return jhash2OneWord(this.kw[0], this.hashrnd) | 0;
    return htabMapHash(this.kb, this.kw, this.keySize, this.hashrnd) | 0;
  }

  /**
   * Put `key` in scratch for a wasm call. @returns the hash to pass, or 0
   * when wasm hashes the key itself (keys of whole words: `hashMode`).
   */
  private fastKey(key: Uint8Array): number {
    if (!this.wordKeys) return this.hashKey(key);
    this.keyToScratch(key);
    return 0;
  }

  /** Copy `key` into this slot's scratch key (where the wasm fast path reads it). */
  private keyToScratch(key: Uint8Array): void {
    if (this.keySize === 4) {
      this.kw[0] = key[0] | (key[1] << 8) | (key[2] << 16) | (key[3] << 24);
      return;
    }
    const kb = this.kb;
    for (let i = 0; i < this.keySize; i++) kb[i] = key[i];
  }

  private bucketOf(hash: number): number {
    return this.bucketsBase + ((hash & this.mask) << 2);
  }

  /** Element key equals the scratch key. Caller validates with the bucket seq or holds the lock. */
  private keyEquals(e: number): boolean {
    const i32 = this.i32;
    const kw = this.kw;
    const k = e + ELEM_KEY_I32;
    if (i32[k] !== kw[0]) return false;
    for (let j = 1; j < this.keyWords; j++) if (i32[k + j] !== kw[j]) return false;
    return true;
  }

  private copyValueOut(e: number, out: Uint8Array, outOff: number): void {
    this.copyBytesOut((e << 2) + this.valueOffBytes, out, outOff);
  }

  /** Copy one value's bytes from `u8[src]` to `out`, its bpf_spin_lock reading as zero. */
  private copyBytesOut(src: number, out: Uint8Array, outOff: number): void {
    const n = this.valueBytes;
    if (n <= 64 && (n & 3) === 0) {
      // Word loads: a quarter of the reads of the byte loop (`src` is 8-byte aligned).
      const i32 = this.i32;
      let w = src >> 2;
      for (let i = outOff; i < outOff + n; i += 4) {
        const v = i32[w++];
        out[i] = v;
        out[i + 1] = v >> 8;
        out[i + 2] = v >> 16;
        out[i + 3] = v >> 24;
      }
    } else if (n <= 64) {
      const u8 = this.u8;
      for (let i = 0; i < n; i++) out[outOff + i] = u8[src + i];
    } else out.set(this.u8.subarray(src, src + n), outOff);
    // The bpf_spin_lock always reads as zero (kernel: check_and_init_map_value()).
    if (this.spinLockOff >= 0) out.fill(0, outOff + this.spinLockOff, outOff + this.spinLockOff + 4);
  }

  /**
   * Copy a value out holding its spin lock (kernel: copy_map_value_locked()).
   * @returns false when the spin lock stayed held past LOCK_TIMEOUT_MS (nothing copied; lastError says whose)
   */
  private copyValueOutLocked(e: number, out: Uint8Array, outOff: number): boolean {
    const lockIdx = e + ((this.valueOffBytes + this.spinLockOff) >> 2);
    if (!lockAcquire(this.i32, lockIdx, this.cpu)) {
      this.listTimedOut("the value's bpf_spin_lock");
      return false;
    }
    this.copyValueOut(e, out, outOff);
    lockRelease(this.i32, lockIdx);
    return true;
  }

  /**
   * Write `value` into a live element in place, under its spin lock, leaving
   * the lock word alone. Requires: bucket lock held. @returns 0 or -ETIMEDOUT (nothing written)
   */
  private writeValueLocked(e: number, value: Uint8Array, valueOff: number): number {
    const lockIdx = e + ((this.valueOffBytes + this.spinLockOff) >> 2);
    if (!lockAcquire(this.i32, lockIdx, this.cpu)) {
      this.listTimedOut("the value's bpf_spin_lock");
      return ETIMEDOUT;
    }
    this.markDirty(); // copying readers must not accept a half-written value
    const u8 = this.u8;
    const dst = (e << 2) + this.valueOffBytes;
    const lo = this.spinLockOff;
    for (let i = 0; i < this.valueSize; i++) if (i < lo || i >= lo + 4) u8[dst + i] = value[valueOff + i];
    lockRelease(this.i32, lockIdx);
    return 0;
  }

  private copyKeyOut(e: number, out: Uint8Array, outOff: number): void {
    const u8 = this.u8;
    const src = (e << 2) + ELEM_HEADER_BYTES;
    for (let i = 0; i < this.keySize; i++) out[outOff + i] = u8[src + i];
  }

  /** Fill a private element (off every chain) with the scratch key, `hash` and `value`. */
  private fillElem(e: number, hash: number, value: Uint8Array, valueOff: number): void {
    const i32 = this.i32;
    i32[e + ELEM_HASH_I32] = hash;
    const k = e + ELEM_KEY_I32;
    for (let j = 0; j < this.keyWords; j++) i32[k + j] = this.kw[j];
    const dst = (e << 2) + this.valueOffBytes;
    const n = this.valueBytes;
    if (n <= 64) {
      const u8 = this.u8;
      for (let i = 0; i < n; i++) u8[dst + i] = value[valueOff + i];
    } else
      this.u8.set(valueOff === 0 && value.length === n ? value : value.subarray(valueOff, valueOff + n), dst);
    // A private element's spin lock is free: the caller's bytes never land on it.
    if (this.spinLockOff >= 0) i32[(dst + this.spinLockOff) >> 2] = 0;
  }

  /**
   * Find the scratch key in bucket `b`. Requires: bucket lock held.
   * Kernel: lookup_elem_raw(). Sets `this.prev` to the predecessor (0 = head).
   */
  private lookupElemLocked(b: number, hash: number): number {
    const i32 = this.i32;
    let prev = 0;
    let e = i32[b + BUCKET_HEAD_I32];
    while (e !== 0) {
      if (i32[e + ELEM_HASH_I32] === hash && this.keyEquals(e)) {
        this.prev = prev;
        return e;
      }
      prev = e;
      e = i32[e + ELEM_NEXT_I32];
    }
    this.prev = 0;
    return 0;
  }

  /**
   * Lock-free lookup of the scratch key; copies the value into `out` when found.
   * Returns the element, validated as linked while it was read, or 0.
   * Kernel: lookup_nulls_elem_raw(), with the bucket seq in place of the nulls check.
   */
  private lookupCopy(hash: number, out: Uint8Array | null, outOff: number): number {
    if (this.fast !== null && (out === null || this.fastValues)) {
      const e = this.lookupFast(this.fast, hash, out, outOff);
      if (e >= 0) return e;
      // -1: a holder is writing the bucket; the JS walk below spins (bounded).
    }
    return this.lookupJs(hash, out, outOff);
  }

  /**
   * lookupCopy() in wasm: the value lands in this slot's scratch and is copied
   * out once validated. Kept apart from lookupJs() so that each path inlines
   * on its own. @returns as lookupCopy(), or -1 when a writer holds the bucket
   */
  private lookupFast(fast: FastPath, hash: number, out: Uint8Array | null, outOff: number): number {
    const e = fast.lookup(this.desc, hash, out === null ? 0 : LOOKUP_COPY);
    if (e > 0 && out !== null) this.copyBytesOut(this.outOff, out, outOff);
    return e;
  }

  /** lookupCopy() in JS. */
  private lookupJs(hash: number, out: Uint8Array | null, outOff: number): number {
    const i32 = this.i32;
    const b = this.bucketOf(hash);
    const seqIdx = b + BUCKET_SEQLOCK_I32;
    for (let spins = 0; ; spins++) {
      const s = Atomics.load(i32, seqIdx);
      if (!seqReadable(s)) {
        // A holder is relinking the chain or rewriting a value in place: a few stores, spin.
        // (A holder that merely holds the lock, like a running compute() callback, blocks no reader.)
        if (spins > SPIN_LIMIT && this.readStalled(b, spins)) return READ_TIMEDOUT;
        continue;
      }
      let e = i32[b + BUCKET_HEAD_I32];
      let found = 0;
      for (let steps = 0; e !== 0 && steps < this.walkBound; steps++) {
        if (i32[e + ELEM_HASH_I32] === hash && this.keyEquals(e)) {
          if (out !== null) this.copyValueOut(e, out, outOff);
          found = e;
          break;
        }
        e = i32[e + ELEM_NEXT_I32];
      }
      // Validate: nothing we read was relinked or reused while we read it.
      if (seqUnchanged(s, Atomics.load(i32, seqIdx))) return found;
    }
  }

  /**
   * A reader has seen bucket `b` being written for `spins` samples: past
   * LOCK_TIMEOUT_MS (a writer that died mid-write and was never reaped) it
   * gives up. Dead slots are recovered meanwhile. Cold.
   * @returns true to give up (lastError says why)
   */
  private readStalled(b: number, spins: number): boolean {
    if (spins === SPIN_LIMIT + 1) this.readSince = nowMs();
    if ((spins & 1023) !== 0) return false;
    this.recoverDeadSlots();
    if (nowMs() - this.readSince < LOCK_TIMEOUT_MS) return false;
    this.bucketTimedOut(b, "a write to finish in");
    return true;
  }

  /** Only this slot's owner writes its counter, so a plain store is enough; count() reads it atomically. */
  private addCount(delta: number): void {
    const i = this.myPcpu + PCPU_COUNT_I32;
    this.i32[i] = (this.i32[i] + delta) | 0;
  }

  private canRead(): boolean {
    return (this.mapFlags & MapFlags.Wronly) === 0;
  }

  private canWrite(): boolean {
    if ((this.mapFlags & MapFlags.Rdonly) !== 0) return false;
    const fast = this.fast;
    return (
      (fast !== null
        ? fast.load(this.baseAddr + (HDR_FROZEN_I32 << 2))
        : Atomics.load(this.i32, HDR_FROZEN_I32)) === 0
    );
  }

  private permError(write: boolean): number {
    if (write) {
      if ((this.mapFlags & MapFlags.Rdonly) !== 0)
        return this.fail(EPERM, "map is BPF_F_RDONLY for the control plane");
      return this.fail(EPERM, "map is frozen");
    }
    return this.fail(EPERM, "map is BPF_F_WRONLY for the control plane");
  }

  // ------------------------------------------------------------ element ops

  /**
   * Look `key` up and copy its value into `value`.
   * @returns 0, -ENOENT (absent), -EINVAL (flags), -EPERM (BPF_F_WRONLY)
   * @remarks Kernel: map_lookup_elem() -> htab_map_lookup_elem(). Linearizable.
   */
  lookupElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.checkKey("lookup", key);
    this.checkValueOut("lookup", value);
    if (flags !== 0) {
      this.checkFlagsArg("lookup", flags);
      if (flags !== UpdateFlags.Lock) return this.failWith(EINVAL, ERR_FLAGS, flags);
    }
    if (!this.canRead()) return this.permError(false);
    if (flags !== 0) {
      if (this.spinLockOff < 0)
        return this.fail(EINVAL, "BPF_F_LOCK on a map whose value has no bpf_spin_lock");
      return this.lookupLocked(this.hashKey(key), value);
    }
    const e = this.wordKeys && this.fastValues ? this.lookupKeyFast(key, value) : -1;
    if (e > 0) return 0;
    const r = e < 0 ? this.lookupCopy(this.hashKey(key), value, 0) : 0;
    if (r > 0) return 0;
    if (r === READ_TIMEDOUT) return ETIMEDOUT;
    return this.fail(ENOENT, "key not found");
  }

  /**
   * The whole lookup in one wasm call (key of whole words: hashed there too).
   * @returns the element, 0 when absent, -1 when a writer holds the bucket
   */
  private lookupKeyFast(key: Uint8Array, out: Uint8Array | null): number {
    this.keyToScratch(key);
    const e = (this.fast as FastPath).lookup(
      this.desc,
      0,
      out === null ? LOOKUP_HASH : LOOKUP_HASH | LOOKUP_COPY,
    );
    if (e > 0 && out !== null) this.copyBytesOut(this.outOff, out, 0);
    return e;
  }

  /**
   * BPF_F_LOCK lookup: find the element, then copy under its spin lock. A
   * section keeps the element from being reused while we hold its lock word.
   */
  private lookupLocked(hash: number, out: Uint8Array): number {
    this.enter();
    try {
      const e = this.findElem(hash);
      if (e === READ_TIMEDOUT) return ETIMEDOUT;
      if (e === 0) return this.fail(ENOENT, "key not found");
      return this.copyValueOutLocked(e, out, 0) ? 0 : ETIMEDOUT;
    } finally {
      this.exit();
    }
  }

  /** Lock-free search for the scratch key; returns the element, validated as linked, or 0. */
  private findElem(hash: number): number {
    return this.lookupCopy(hash, null, 0);
  }

  /** True when `key` is present (a lookup that copies nothing). */
  hasElem(key: Uint8Array): boolean {
    this.checkKey("has", key);
    if (!this.canRead()) return false;
    const e = this.wordKeys ? this.lookupKeyFast(key, null) : -1;
    return e > 0 || (e < 0 && this.lookupCopy(this.hashKey(key), null, 0) > 0);
  }

  /**
   * Insert or replace `key`. `flags`: BPF_ANY, BPF_NOEXIST or BPF_EXIST.
   * @returns 0, -EEXIST, -ENOENT, -E2BIG (map full), -EINVAL, -EPERM
   * @remarks Kernel: htab_map_update_elem(). A replaced key gets a new element at the
   * head of its bucket and the old one is unlinked, so iteration order is the kernel's.
   */
  updateElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.checkKey("update", key);
    this.checkValueIn("update", value);
    this.checkFlagsArg("update", flags);
    if (this.fastWrites && flags <= UpdateFlags.Exist) {
      const r = this.updateFast(key, value, flags);
      if (r !== WASM_RETRY) return r;
    }
    return this.updateRaw(value, 0, flags, this.hashKey(key));
  }

  /** updateRaw() in wasm. @returns as updateElem(), or WASM_RETRY when the JS path must run it */
  private updateFast(key: Uint8Array, value: Uint8Array, flags: number): number {
    this.checkNotComputing("update");
    if ((this.mapFlags & MapFlags.Rdonly) !== 0) return this.permError(true); // FROZEN: checked in wasm
    const hash = this.fastKey(key);
    this.valueToScratch(value);
    const r = (this.fast as FastPath).update(this.desc, hash, this.hashMode, flags);
    if (r === 0 || r === WASM_RETRY) return r;
    if (r === WASM_FROZEN) return this.permError(true);
    if (r === EEXIST) return this.fail(EEXIST, "key already exists (BPF_NOEXIST)");
    if (r === ENOENT) return this.fail(ENOENT, "key not found (BPF_EXIST)");
    // WASM_REPLACED_IN_SECTION: finish replaceLocked()'s section branch, then unlock.
    this.oldToLimbo(this.i32[this.myPcpu + PCPU_INFLIGHT_I32]);
    this.dirty = true; // wasm set WRITING before it relinked
    this.unlockBucket(this.bucketOf(this.hashKey(key)));
    return 0;
  }

  /** Copy a value into this slot's scratch value, where the wasm fast path reads it. */
  private valueToScratch(value: Uint8Array): void {
    const n = this.valueBytes;
    if ((n & 3) === 0) {
      const i32 = this.i32;
      let w = this.outOff >> 2;
      for (let i = 0; i < n; i += 4)
        i32[w++] = value[i] | (value[i + 1] << 8) | (value[i + 2] << 16) | (value[i + 3] << 24);
    } else this.u8.set(value, this.outOff);
  }

  /** Update with the key already in scratch. Shared by update and update_batch. */
  private updateRaw(value: Uint8Array, valueOff: number, flags: number, hash: number): number {
    this.checkNotComputing("update");
    if (!this.canWrite()) return this.permError(true);
    if (this.lru !== null) return this.lruUpdateRaw(value, valueOff, flags, hash, false);
    const lock = (flags & UpdateFlags.Lock) !== 0;
    if (lock && this.spinLockOff < 0)
      return this.fail(EINVAL, "BPF_F_LOCK on a map whose value has no bpf_spin_lock");
    const mode = lock ? flags & ~UpdateFlags.Lock : flags;
    if (mode > UpdateFlags.Exist) return this.failWith(EINVAL, ERR_FLAGS, flags);
    const b = this.bucketOf(hash);
    if (!this.lockBucket(b)) return ETIMEDOUT;
    const old = this.lookupElemLocked(b, hash);
    const bad = this.checkFlags(old, mode);
    if (bad !== 0) {
      this.unlockBucket(b);
      return bad;
    }
    let err = 0;
    if (old !== 0 && lock) {
      // BPF_F_LOCK updates an existing value in place, under its spin lock.
      err = this.writeValueLocked(old, value, valueOff);
    } else if (old !== 0) err = this.replaceLocked(b, hash, old, this.prev, value, valueOff);
    else {
      const e = this.allocNew();
      if (e <= 0) err = this.allocFailed(e);
      else this.insertLocked(b, e, hash, value, valueOff);
    }
    this.unlockBucket(b);
    return err;
  }

  /** BPF_NOEXIST on a present key, BPF_EXIST on an absent one (kernel: check_flags()). @returns 0, -EEXIST, -ENOENT */
  private checkFlags(old: number, mode: number): number {
    if (old !== 0 && mode === UpdateFlags.NoExist)
      return this.fail(EEXIST, "key already exists (BPF_NOEXIST)");
    if (old === 0 && mode === UpdateFlags.Exist) return this.fail(ENOENT, "key not found (BPF_EXIST)");
    return 0;
  }

  /**
   * A free element: this CPU's list, then the others', then whatever grace
   * periods released. 0 if none; ALLOC_TIMEDOUT when the lists that had
   * elements stayed locked (lastError says whose).
   */
  private allocElem(): number {
    const e = this.freelistPop();
    if (e > 0) return e;
    if (limboReclaimAll(this.i32, this.cpu, this.nrCpus) > 0) {
      const r = this.freelistPop();
      if (r > 0) return r;
    }
    if (e === FREELIST_TIMEDOUT) return this.listTimedOut("a freelist");
    return this.prealloc ? 0 : this.carveElem();
  }

  /** Record an owner-tagged lock wait that gave up (cold). @returns ALLOC_TIMEDOUT */
  private listTimedOut(what: string): number {
    this.fail(ETIMEDOUT, lockTimeoutText(`the lock of ${what}`, this.holderText(lastTimeoutOwner())));
    return ALLOC_TIMEDOUT;
  }

  /** The errno for an allocNew()/allocElem() result <= 0: E2BIG (map full), or ETIMEDOUT as recorded. */
  private allocFailed(e: number): number {
    return e === 0 ? this.failWith(E2BIG, ERR_MAP_FULL, 0) : ETIMEDOUT;
  }

  /** pcpuFreelistPop() for this slot, in wasm unless a list lock is contended. */
  private freelistPop(): number {
    const fast = this.fast;
    if (fast !== null) {
      const e = fast.freelistPop(
        this.baseAddr,
        this.baseAddr + PCPU_BASE_BYTES,
        PCPU_RECORD_BYTES,
        this.cpu,
        this.nrCpus,
      );
      if (e >= 0) return e;
    }
    return pcpuFreelistPop(this.i32, this.cpu, this.nrCpus);
  }

  /** pcpuFreelistPush() onto this slot's list, in wasm unless its lock is contended. */
  private freelistPush(e: number): void {
    const fast = this.fast;
    if (
      fast === null ||
      fast.freelistPush(this.baseAddr, this.baseAddr + PCPU_BASE_BYTES, PCPU_RECORD_BYTES, this.cpu, e) === 0
    )
      pcpuFreelistPush(this.i32, this.cpu, e);
  }

  /** noActiveSections(): no thread is inside a program section (frees may reuse at once). */
  private noSections(): boolean {
    const fast = this.fast;
    return fast !== null
      ? fast.load(this.baseAddr + (HDR_ACTIVE_I32 << 2)) === 0
      : noActiveSections(this.i32);
  }

  /**
   * An element for a new key. Preallocated maps are full when no element is
   * free; others when the count reaches max_entries (kernel: is_map_full()).
   */
  private allocNew(): number {
    if (this.lru !== null) {
      // Popped before the bucket lock (lruTake()); an LRU map never answers E2BIG.
      const e = this.lruSpare;
      this.lruSpare = 0;
      return e;
    }
    if (!this.prealloc && this.count() >= this.maxEntries) return 0;
    return this.allocElem();
  }

  /**
   * BPF_F_NO_PREALLOC: take a never-used element from the end of the buffer,
   * growing the (growable) SharedArrayBuffer first. Every view over it tracks
   * its length, so all attached threads see the new memory.
   */
  private carveElem(): number {
    const i32 = this.i32;
    if (!lockAcquire(i32, HDR_GROW_LOCK_I32, this.cpu)) return this.listTimedOut("the map's grow lock");
    try {
      const n = Atomics.load(i32, HDR_CARVED_I32);
      if (n >= this.walkBound - 1) return 0;
      const end = this.elemsBase * 4 + (n + 1) * this.elemStrideI32 * 4;
      const sab = this.handle.sab;
      if (!this.inDomain && sab.byteLength < end) {
        // Grow by at least an eighth of what is there, so growth is amortised.
        const want = Math.min(sab.maxByteLength, Math.max(end, sab.byteLength + (sab.byteLength >>> 3)));
        sab.grow(Math.ceil(want / 8) * 8);
      }
      const e = this.elemsBase + n * this.elemStrideI32;
      i32[this.myPcpu + PCPU_INFLIGHT_I32] = e;
      Atomics.store(i32, HDR_CARVED_I32, n + 1);
      return e;
    } finally {
      lockRelease(i32, HDR_GROW_LOCK_I32);
    }
  }

  /**
   * Fill the popped element `e` and publish it at the head of bucket `b`.
   * Requires: bucket lock held; `e` is this slot's INFLIGHT element.
   * Kernel: alloc_htab_elem() + hlist_nulls_add_head_rcu().
   */
  private insertLocked(b: number, e: number, hash: number, value: Uint8Array, valueOff: number): void {
    const i32 = this.i32;
    this.intent(OP_INSERT, e, 0);
    this.fillElem(e, hash, value, valueOff);
    this.markDirty();
    i32[e + ELEM_NEXT_I32] = i32[b + BUCKET_HEAD_I32];
    i32[b + BUCKET_HEAD_I32] = e; // Publish: the new element is reachable from here.
    this.addCount(1);
    i32[this.myPcpu + PCPU_INFLIGHT_I32] = 0;
    i32[this.myPcpu + PCPU_LRU_SPARE_I32] = 0; // linked: a repair finds it in its chain
  }

  /** Record what the next chain change is, for recovery if this thread dies mid-way. */
  private intent(op: number, e: number, old: number): void {
    const i32 = this.i32;
    const p = this.myPcpu;
    i32[p + PCPU_INTENT_ELEM_I32] = e;
    i32[p + PCPU_INTENT_OLD_I32] = old;
    i32[p + PCPU_INTENT_COUNT_I32] = i32[p + PCPU_COUNT_I32];
    i32[p + PCPU_INTENT_OP_I32] = op;
  }

  /**
   * Replace element `old` (predecessor `prevOld`, 0 = head) by a new element
   * holding `value`: this CPU's extra element goes in at the head and `old`
   * becomes the extra, in one seq write section. Requires: bucket lock held.
   * Kernel: the l_old branch of htab_map_update_elem() with extra_elems.
   * While program sections are active, `old` may still be referenced: it waits
   * in limbo and the extra slot is refilled from the freelist. @returns 0 or -E2BIG
   */
  private replaceLocked(
    b: number,
    hash: number,
    old: number,
    prevOld: number,
    value: Uint8Array,
    valueOff: number,
  ): number {
    const i32 = this.i32;
    const p = this.myPcpu;
    // Kernel: htab_map_update_elem_in_place(): per-CPU values (and a hash of
    // maps' inner map pointers) are overwritten where they are.
    if (this.inPlace) return this.writeInPlaceLocked(old, value, valueOff);
    if (this.lru !== null) {
      // The popped element goes in, referenced (it replaces a live key); old is freed after unlock.
      const e = this.allocNew();
      this.intent(OP_REPLACE, e, old);
      this.fillElem(e, hash, value, valueOff);
      this.markDirty();
      i32[e + ELEM_NEXT_I32] = i32[b + BUCKET_HEAD_I32];
      i32[b + BUCKET_HEAD_I32] = e;
      i32[old + ELEM_FNEXT_I32] = 0;
      i32[p + PCPU_INFLIGHT_I32] = old;
      i32[p + PCPU_LRU_SPARE_I32] = 0;
      i32[(prevOld === 0 ? e : prevOld) + ELEM_NEXT_I32] = i32[old + ELEM_NEXT_I32];
      this.lru.setRef(this.nodeOf(e));
      this.lruOld = old;
      return 0;
    }
    let e = i32[p + PCPU_EXTRA_I32];
    if (e === 0) e = this.allocElem();
    if (e <= 0) return this.allocFailed(e);
    this.intent(OP_REPLACE, e, old);
    this.fillElem(e, hash, value, valueOff);
    this.markDirty();
    i32[e + ELEM_NEXT_I32] = i32[b + BUCKET_HEAD_I32];
    i32[b + BUCKET_HEAD_I32] = e;
    // e is linked; from here until it is filed, `old` is ours (recovery reads INFLIGHT == old).
    i32[p + PCPU_INFLIGHT_I32] = old;
    i32[(prevOld === 0 ? e : prevOld) + ELEM_NEXT_I32] = i32[old + ELEM_NEXT_I32];
    if (!this.prealloc) {
      // No extra elements: the old element is freed (kernel: free_htab_elem() after unlock).
      if (this.noSections()) this.freelistPush(old);
      else limboPush(i32, this.cpu, old);
    } else if (this.noSections()) {
      i32[p + PCPU_EXTRA_I32] = old;
      i32[p + PCPU_INFLIGHT_I32] = 0;
    } else this.oldToLimbo(old);
    return 0;
  }

  /**
   * Overwrite live element `old`'s value where it is. Requires: bucket lock
   * held. Copying readers retry while it is written (WRITING); references
   * (lookupRef) see the new bytes, as a BPF program sees an in-place update.
   * @returns 0
   */
  private writeInPlaceLocked(old: number, value: Uint8Array, valueOff: number): number {
    const dst = (old << 2) + this.valueOffBytes;
    const u8 = this.u8;
    this.markDirty(); // readers must not accept a half-written value
    for (let i = 0; i < this.valueBytes; i++) u8[dst + i] = value[valueOff + i];
    this.lru?.setRef(this.nodeOf(old));
    return 0;
  }

  /**
   * Delete `key`.
   * @returns 0, -ENOENT, -EPERM
   * @remarks Kernel: htab_map_delete_elem(). The element goes back to this CPU's freelist.
   */
  deleteElem(key: Uint8Array): number {
    this.checkKey("delete", key);
    if (this.fastWrites) {
      const r = this.deleteFast(key);
      if (r !== WASM_RETRY) return r;
    }
    return this.deleteRaw(this.hashKey(key), null);
  }

  /** deleteRaw() in wasm. @returns as deleteElem(), or WASM_RETRY when the JS path must run it */
  private deleteFast(key: Uint8Array): number {
    this.checkNotComputing("delete");
    if ((this.mapFlags & MapFlags.Rdonly) !== 0) return this.permError(true); // FROZEN: checked in wasm
    const r = (this.fast as FastPath).delete(this.desc, this.fastKey(key), this.hashMode);
    if (r === 0 || r === WASM_RETRY) return r;
    if (r === WASM_FROZEN) return this.permError(true);
    if (r === ENOENT) return this.fail(ENOENT, "key not found");
    this.freeElem(r); // unlinked and unlocked; sections are active or our list's lock was held
    return 0;
  }

  /** Delete the scratch key, copying its value into `out` first when given. */
  private deleteRaw(hash: number, out: Uint8Array | null, lock = false): number {
    this.checkNotComputing("delete");
    if (!this.canWrite()) return this.permError(true);
    const b = this.bucketOf(hash);
    if (!this.lockBucket(b)) return ETIMEDOUT;
    const e = this.lookupElemLocked(b, hash);
    if (e === 0) {
      this.unlockBucket(b);
      return this.fail(ENOENT, "key not found");
    }
    if (out !== null) {
      if (!lock) this.copyValueOut(e, out, 0);
      else if (!this.copyValueOutLocked(e, out, 0)) {
        this.unlockBucket(b);
        return ETIMEDOUT;
      }
    }
    this.unlinkLocked(b, e, this.prev);
    this.unlockBucket(b);
    this.freeElem(e);
    return 0;
  }

  /** Requires: bucket lock held. Kernel: hlist_nulls_del_rcu(). */
  private unlinkLocked(b: number, e: number, prev: number, chain = 0): void {
    const i32 = this.i32;
    // Intent first: INFLIGHT == e with no intent would read as "e is lost" while still linked.
    this.intent(OP_UNLINK, e, 0);
    // LRU maps: INFLIGHT heads a chain (by FNEXT) of elements this slot unlinked and
    // has not filed yet; an LRU repair leaves them to us. Linked before published.
    if (this.lru !== null) i32[e + ELEM_FNEXT_I32] = chain;
    // From the unlink until freeElem() files it, e is ours alone.
    i32[this.myPcpu + PCPU_INFLIGHT_I32] = e;
    // e keeps its NEXT: a reader standing on it can still walk on (and will retry).
    this.markDirty();
    if (prev === 0) i32[b + BUCKET_HEAD_I32] = i32[e + ELEM_NEXT_I32];
    else i32[prev + ELEM_NEXT_I32] = i32[e + ELEM_NEXT_I32];
    this.addCount(-1);
  }

  /**
   * Take bucket `b`'s lock. Lock order: bucket -> freelist.
   * @returns false when another holder kept it past LOCK_TIMEOUT_MS: nothing
   * is taken, and lastError says whose it was (kernel: htab_lock_bucket()
   * failing with -ETIMEDOUT on its rqspinlock)
   */
  private lockBucket(b: number): boolean {
    const i32 = this.i32;
    i32[this.myPcpu + PCPU_INTENT_BUCKET_I32] = b; // before the CAS: a recoverer must see it
    const fast = this.fast;
    if (
      (fast === null || fast.seqTryLock(this.baseAddr + ((b + BUCKET_SEQLOCK_I32) << 2)) === 0) &&
      !bucketLock(i32, b + BUCKET_SEQLOCK_I32)
    ) {
      i32[this.myPcpu + PCPU_INTENT_BUCKET_I32] = 0;
      this.bucketTimedOut(b, "the lock of");
      return false;
    }
    i32[b + BUCKET_OWNER_I32] = this.cpu + 1; // who holds it, for fsck and crash recovery
    this.lockedB = b;
    return true;
  }

  /** lockBucket() for a caller that cannot back out (LRU repair): each wait is bounded, dead slots are recovered between. */
  private lockBucketMust(b: number): void {
    while (!this.lockBucket(b)) this.recoverDeadSlots();
  }

  /** Record why a wait on bucket `b` gave up (cold). */
  private bucketTimedOut(b: number, what: string): void {
    const owner = Atomics.load(this.i32, b + BUCKET_OWNER_I32) - 1;
    this.fail(
      ETIMEDOUT,
      lockTimeoutText(`${what} bucket ${(b - this.bucketsBase) >> 2}`, this.holderText(owner)),
    );
  }

  /** "held by CPU slot 3 (its thread is alive)" and the like, for ETIMEDOUT messages. */
  private holderText(owner: number): string {
    if (owner < 0 || owner >= this.nrCpus) return "held by a thread that had not yet recorded its slot";
    const state = Atomics.load(this.i32, pcpuBase(owner) + PCPU_OWNER_I32);
    const how =
      state === SLOT_ALIVE
        ? "its slot is attached: a long compute() callback, or a worker that died and was never reaped (watchWorker())"
        : state === SLOT_DEAD
          ? "its slot is dead and being recovered"
          : "its slot was given back";
    return `held by CPU slot ${owner} (${how})`;
  }

  /**
   * Mark the bucket this thread holds as being written, before the first
   * store a lock-free reader could see (a chain link, a value in place).
   * Requires: bucket lock held. Publish: readers retry from here to the unlock.
   */
  private markDirty(): void {
    if (this.dirty) return;
    this.dirty = true;
    bucketBeginWrite(this.i32, this.lockedB + BUCKET_SEQLOCK_I32);
  }

  /** Drop bucket `b`'s lock; readers retry only if the chain changed. */
  private unlockBucket(b: number): void {
    const i32 = this.i32;
    i32[b + BUCKET_OWNER_I32] = 0;
    // No call between the OWNER clear and the exchange (see deadHoldsBucket()).
    const idx = b + BUCKET_SEQLOCK_I32;
    const next = unlockedWord(i32[idx], this.dirty);
    const fast = this.fast;
    const prev =
      fast !== null ? fast.exchange(this.baseAddr + (idx << 2), next) : Atomics.exchange(i32, idx, next);
    if ((prev & SEQ_WAITERS) !== 0) Atomics.notify(i32, idx, 1);
    this.dirty = false;
    this.lockedB = 0;
    i32[this.myPcpu + PCPU_INTENT_OP_I32] = OP_NONE;
    i32[this.myPcpu + PCPU_INTENT_BUCKET_I32] = 0;
  }

  /**
   * A replaced element that program sections may still reference waits in
   * limbo; this CPU's extra slot is refilled from the freelist instead.
   * Requires: bucket lock held; `old` is this slot's INFLIGHT element.
   */
  private oldToLimbo(old: number): void {
    const i32 = this.i32;
    const p = this.myPcpu;
    limboPush(i32, this.cpu, old);
    // A timed-out pop leaves EXTRA empty: the next replace allocates instead.
    i32[p + PCPU_EXTRA_I32] = Math.max(0, this.freelistPop());
    i32[p + PCPU_INFLIGHT_I32] = 0;
  }

  /** Kernel: free_htab_elem() for a preallocated map. Requires: bucket lock released. */
  private freeElem(e: number): void {
    // Read after the unlink: a section that could hold `e` is counted in ACTIVE.
    if (!this.noSections()) limboPush(this.i32, this.cpu, e, this.lru !== null);
    else if (this.lru !== null)
      this.lruPush(e); // kernel: htab_lru_push_free()
    else this.freelistPush(e);
  }

  // ------------------------------------------------------------------- LRU

  private elemOf(n: number): number {
    return this.elemsBase + n * this.elemStrideI32;
  }

  private nodeOf(e: number): number {
    return (e - this.elemsBase) / this.elemStrideI32;
  }

  /**
   * Evict node `n`'s element if it is still linked (kernel: htab_lru_map_delete_node()).
   * Called by the LRU with one of its locks held; takes the element's bucket lock.
   */
  private lruDelFromHtab(n: number): number {
    const i32 = this.i32;
    const e = this.elemOf(n);
    // HASH may be stale for a node popped but not yet linked: then the walk misses it, as it should.
    const b = this.bucketOf(i32[e + ELEM_HASH_I32]);
    const inflight = this.myPcpu + PCPU_INFLIGHT_I32;
    const saved = i32[inflight];
    // A bucket held past the timeout: not evicted, the LRU moves on (kernel: the same).
    if (!this.lockBucket(b)) {
      this.evictTimedOut = true;
      return DEL_NOT_FOUND;
    }
    const prev = this.chainPrev(b, e);
    if (prev < 0) {
      this.unlockBucket(b);
      return DEL_NOT_FOUND;
    }
    this.unlinkLocked(b, e, prev);
    this.unlockBucket(b);
    // The LRU files e under the lock it holds, so e is never ours alone: restore INFLIGHT.
    if (this.noSections()) {
      i32[inflight] = saved;
      return DEL_FREED;
    }
    limboPush(i32, this.cpu, e);
    i32[inflight] = saved;
    return DEL_DEFERRED;
  }

  /**
   * Pop this operation's element before any bucket lock is taken, evicting if
   * the map is full. Elements waiting in limbo are reclaimed if nothing else
   * is free. @returns false when no element could be had (ENOMEM)
   */
  private lruTake(): number {
    const lru = this.lru as BpfLru;
    // Elements whose grace period has passed go back first: evicting a live key
    // while freed ones wait in limbo would evict more than the kernel does.
    limboReclaimAll(this.i32, this.cpu, this.nrCpus, this.lruSink);
    this.evictTimedOut = false;
    let n = lru.popFree();
    while (n === RETRY) {
      if (lru.timedOut) {
        lru.timedOut = false;
        this.listTimedOut("an LRU list");
        return ETIMEDOUT;
      }
      this.lruRepair(-1);
      n = lru.popFree();
    }
    // Nothing evictable: a candidate's bucket stayed locked (lastError says whose), or sections hold them all.
    if (n < 0) return this.evictTimedOut ? ETIMEDOUT : this.lruNoMem();
    this.lruSpare = this.elemOf(n);
    return 0;
  }

  /**
   * Re-create the LRU lists after a slot died holding an LRU lock or an
   * element (kernel: none; a BPF program cannot die mid-operation). Every
   * element is classified: linked in a chain; in limbo, or unlinked by a live
   * slot and not yet filed (its INFLIGHT chain; both stay off every list);
   * popped by a live slot for an update and not yet linked (its LRU_SPARE:
   * pending on it); else free. `dead` is the slot being recovered (ignored), or -1.
   * Requires: this thread holds no LRU, freelist or bucket lock.
   * Lock order: all LRU locks -> all freelist locks -> one bucket at a time
   * (on an LRU map nobody takes a freelist lock while holding a bucket).
   */
  private lruRepair(dead: number): void {
    const i32 = this.i32;
    const lru = this.lru as BpfLru;
    const lruLocks = lru.lockWords();
    // A repair must see every list: each wait is bounded, dead slots are recovered in between.
    for (const k of lruLocks) lockAcquireMust(i32, k, this.cpu);
    for (let c = 0; c < this.nrCpus; c++) lockAcquireMust(i32, pcpuBase(c) + PCPU_FL_LOCK_I32, this.cpu);
    try {
      if (Atomics.load(i32, HDR_LRU_REPAIR_I32) === 0) return; // another thread did it
      const num = this.walkBound - 1;
      const cls = new Int32Array(num).fill(CLASS_FREE);
      const live = (c: number) =>
        c !== dead && Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32) === SLOT_ALIVE;
      // What live slots own: elements they unlinked and have not filed (their
      // INFLIGHT chains: off every list until they file them) and the element
      // each popped for an update (its LRU_SPARE: pending on it). Read before
      // and after the chain walk, which holds one bucket at a time: a slot may
      // unlink or link meanwhile, and must find its elements where it left them.
      const owned = (after: boolean) => {
        for (let c = 0; c < this.nrCpus; c++)
          if (live(c))
            for (
              let e = i32[pcpuBase(c) + PCPU_INFLIGHT_I32], k = 0;
              e !== 0 && k < num;
              e = i32[e + ELEM_FNEXT_I32], k++
            ) {
              const n = this.nodeOf(e);
              if (!after || cls[n] === CLASS_FREE || cls[n] === CLASS_LIMBO) cls[n] = CLASS_LIMBO;
            }
        for (let c = 0; c < this.nrCpus; c++) {
          const x = live(c) ? i32[pcpuBase(c) + PCPU_LRU_SPARE_I32] : 0;
          if (x !== 0 && (!after || cls[this.nodeOf(x)] !== CLASS_HASH)) cls[this.nodeOf(x)] = c;
        }
      };
      owned(false);
      for (let c = 0; c < this.nrCpus; c++)
        for (
          let e = i32[pcpuBase(c) + PCPU_LIMBO_HEAD_I32], k = 0;
          e !== 0 && k < num;
          e = i32[e + ELEM_FNEXT_I32], k++
        )
          cls[this.nodeOf(e)] = CLASS_LIMBO;
      for (let bi = 0; bi <= this.mask; bi++) {
        const b = this.bucketsBase + (bi << 2);
        this.lockBucketMust(b);
        for (let e = i32[b + BUCKET_HEAD_I32], k = 0; e !== 0 && k < num; e = i32[e + ELEM_NEXT_I32], k++)
          cls[this.nodeOf(e)] = CLASS_HASH;
        this.unlockBucket(b);
      }
      owned(true);
      lru.rebuild(cls);
      Atomics.store(i32, HDR_LRU_REPAIR_I32, 0);
      Atomics.add(i32, HDR_RECOVERED_I32, 1);
    } finally {
      for (let c = this.nrCpus - 1; c >= 0; c--) lockRelease(i32, pcpuBase(c) + PCPU_FL_LOCK_I32);
      for (let k = lruLocks.length - 1; k >= 0; k--) lockRelease(i32, lruLocks[k]);
    }
  }

  private lruNoMem(): number {
    return this.fail(-Errno.ENOMEM, "no element could be evicted (all are held by program sections)");
  }

  private readonly lruSink = (e: number): void => {
    this.lruPush(e);
  };

  /** File unlinked element `e` as free, repairing first if a repair is pending. */
  private lruPush(e: number): void {
    // A repair leaves our INFLIGHT chain off every list, so pushing again is safe.
    // The element is already unlinked and must be filed: a timed-out list lock is waited for again.
    const lru = this.lru as BpfLru;
    while (!lru.pushFree(this.nodeOf(e))) {
      if (lru.timedOut) {
        lru.timedOut = false;
        this.recoverDeadSlots();
      } else this.lruRepair(-1);
    }
  }

  /** After the bucket lock is dropped: return an unused element, free a replaced one. */
  private lruSettle(): void {
    if (this.lruSpare !== 0) {
      this.i32[this.myPcpu + PCPU_LRU_SPARE_I32] = 0; // no longer "about to be linked": a repair may file it
      this.lruPush(this.lruSpare);
      this.lruSpare = 0;
    }
    if (this.lruOld !== 0) {
      this.freeElem(this.lruOld);
      this.lruOld = 0;
    }
  }

  /**
   * Update on an LRU map (kernel: htab_lru_map_update_elem() and
   * __htab_lru_percpu_map_update_elem()). The element is popped first, which
   * may evict another key even when the update then fails (EEXIST, ENOENT),
   * exactly as in the kernel. A per-CPU LRU map with BPF_EXIST pops nothing.
   * `oneCpu`: a program's update of a per-CPU map writes only its CPU's slot.
   */
  private lruUpdateRaw(
    value: Uint8Array,
    valueOff: number,
    flags: number,
    hash: number,
    oneCpu: boolean,
  ): number {
    if (flags > UpdateFlags.Exist)
      return (flags & UpdateFlags.Lock) !== 0
        ? this.fail(EINVAL, "BPF_F_LOCK is not supported on LRU maps")
        : this.failWith(EINVAL, ERR_FLAGS, flags);
    if (!(this.percpu && flags === UpdateFlags.Exist)) {
      const t = this.lruTake();
      if (t !== 0) return t;
    }
    const b = this.bucketOf(hash);
    if (!this.lockBucket(b)) {
      this.lruSettle(); // kernel: htab_lru_push_free() of the popped element on a lock failure
      return ETIMEDOUT;
    }
    const old = this.lookupElemLocked(b, hash);
    // On a refused update the popped element goes back in lruSettle().
    const err = this.checkFlags(old, flags);
    if (err === 0) {
      if (old !== 0 && oneCpu) {
        (this.lru as BpfLru).setRef(this.nodeOf(old));
        this.writeSlot(old, value);
      } else if (old !== 0) this.replaceLocked(b, hash, old, this.prev, value, valueOff);
      else if (oneCpu) this.insertLocked(b, this.allocNew(), hash, this.initPercpu(value), 0);
      else this.insertLocked(b, this.allocNew(), hash, value, valueOff);
    }
    this.unlockBucket(b);
    this.lruSettle();
    return err;
  }

  /**
   * Look `key` up, copy its value into `value` and delete it, atomically.
   * @returns 0, -ENOENT, -EINVAL, -EPERM
   * @remarks Kernel: htab_map_lookup_and_delete_elem().
   */
  lookupAndDeleteElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.checkKey("lookupAndDelete", key);
    this.checkValueOut("lookupAndDelete", value);
    this.checkFlagsArg("lookupAndDelete", flags);
    if (flags !== 0 && flags !== UpdateFlags.Lock) return this.failWith(EINVAL, ERR_FLAGS, flags);
    if (!this.canRead()) return this.permError(false);
    if (!this.canWrite()) return this.permError(true);
    if (flags !== 0 && this.spinLockOff < 0)
      return this.fail(EINVAL, "BPF_F_LOCK on a map whose value has no bpf_spin_lock");
    return this.deleteRaw(this.hashKey(key), value, flags !== 0);
  }

  /**
   * Copy the key after `key` into `nextKey`: the rest of `key`'s chain, then
   * the following buckets in order. A null or absent `key` gives the first key.
   * @returns 0, -ENOENT (no more keys), -EPERM
   * @remarks Kernel: htab_map_get_next_key(). Each bucket is read consistently;
   * a walk over a map that changes meanwhile may miss or repeat keys, as in the kernel.
   */
  getNextKey(key: Uint8Array | null, nextKey: Uint8Array): number {
    if (key !== null && key !== undefined) this.checkKey("getNextKey", key);
    if (!(nextKey instanceof Uint8Array) || nextKey.length < this.keySize)
      invalid("getNextKey", `nextKey must be a Uint8Array of at least ${this.keySize} bytes`);
    if (!this.canRead()) return this.permError(false);
    const i32 = this.i32;
    let i = 0;
    if (key !== null && key !== undefined) {
      const hash = this.hashKey(key);
      const b = this.bucketOf(hash);
      const seqIdx = b + BUCKET_SEQLOCK_I32;
      for (let spins = 0; ; spins++) {
        const s = Atomics.load(i32, seqIdx);
        if (!seqReadable(s)) {
          if (spins > SPIN_LIMIT && this.readStalled(b, spins)) return ETIMEDOUT;
          continue;
        }
        let e = i32[b + BUCKET_HEAD_I32];
        let found = false;
        let next = 0;
        for (let steps = 0; e !== 0 && steps < this.walkBound; steps++) {
          if (i32[e + ELEM_HASH_I32] === hash && this.keyEquals(e)) {
            found = true;
            next = i32[e + ELEM_NEXT_I32];
            if (next !== 0) this.copyKeyOut(next, nextKey, 0);
            break;
          }
          e = i32[e + ELEM_NEXT_I32];
        }
        if (!seqUnchanged(s, Atomics.load(i32, seqIdx))) continue;
        if (found && next !== 0) return 0;
        i = found ? (hash & this.mask) + 1 : 0;
        break;
      }
    }
    for (; i <= this.mask; i++) {
      const b = this.bucketsBase + (i << 2);
      const seqIdx = b + BUCKET_SEQLOCK_I32;
      for (let spins = 0; ; spins++) {
        const s = Atomics.load(i32, seqIdx);
        if (!seqReadable(s)) {
          if (spins > SPIN_LIMIT && this.readStalled(b, spins)) return ETIMEDOUT;
          continue;
        }
        const e = i32[b + BUCKET_HEAD_I32];
        if (e !== 0) this.copyKeyOut(e, nextKey, 0);
        if (!seqUnchanged(s, Atomics.load(i32, seqIdx))) continue;
        if (e !== 0) return 0;
        break;
      }
    }
    return this.fail(ENOENT, "no more keys");
  }

  // ------------------------------------------------- beyond the kernel (seed 001)

  /** A compared region [offset, offset+size) lies inside the value and is not empty. */
  private regionFits(offset: number, size: number): boolean {
    return (
      Number.isInteger(offset) &&
      Number.isInteger(size) &&
      offset >= 0 &&
      size > 0 &&
      offset + size <= this.valueBytes
    );
  }

  /** Why a compared region was refused (any argument types: the message must not throw). */
  private regionText(offset: unknown, size: unknown): string {
    if (typeof offset !== "number" || typeof size !== "number")
      return `offset and size must be integers, got ${typeof offset} ${String(offset)} and ${typeof size} ${String(size)}`;
    return `region [${offset}, ${offset + size}) is not inside the ${this.valueBytes}-byte value`;
  }

  /** Validate a compared region; returns 0 or -EINVAL with the reason recorded. */
  private checkRegion(op: string, expected: Uint8Array, offset: number, size: number): number {
    if (!(expected instanceof Uint8Array)) invalid(op, "expected must be a Uint8Array");
    if (!this.regionFits(offset, size)) return this.fail(EINVAL, this.regionText(offset, size));
    if (expected.length !== size)
      return this.fail(EINVAL, `expected is ${expected.length} bytes but the region is ${size}`);
    return 0;
  }

  /**
   * Lock bucket `b` and find the scratch key whose value region equals
   * `expected`. Returns the element with the lock held (predecessor in
   * `this.prev`), or -ENOENT / -EBUSY with the lock released.
   */
  private lockAndCompare(
    b: number,
    hash: number,
    expected: Uint8Array,
    expOff: number,
    offset: number,
    size: number,
  ): number {
    if (!this.lockBucket(b)) return ETIMEDOUT;
    const e = this.lookupElemLocked(b, hash);
    if (e === 0) {
      this.unlockBucket(b);
      return this.fail(ENOENT, "key not found");
    }
    if (!this.regionEquals(e, expected, expOff, offset, size)) {
      this.unlockBucket(b);
      return this.fail(EBUSY, "value changed since it was read (compared region differs)");
    }
    return e;
  }

  /** Element value bytes [offset, offset+size) equal `expected` from `expOff`. Requires: bucket lock held. */
  private regionEquals(
    e: number,
    expected: Uint8Array,
    expOff: number,
    offset: number,
    size: number,
  ): boolean {
    const u8 = this.u8;
    const src = (e << 2) + this.valueOffBytes + offset;
    for (let i = 0; i < size; i++) if (u8[src + i] !== expected[expOff + i]) return false;
    return true;
  }

  /**
   * Delete `key` only if its value bytes [offset, offset+size) equal `expected`,
   * with the compare and the unlink under one bucket lock: a concurrent update
   * either lands before (and the compare fails) or after (and re-inserts).
   * @returns 0, -EBUSY (region differs), -ENOENT, -EINVAL (bad region), -EPERM
   * @remarks Not in the kernel: the BPF_F_COMPARE RFC (seed 001), which conntrack GC needs.
   */
  compareAndDeleteElem(
    key: Uint8Array,
    expected: Uint8Array,
    offset = 0,
    size = expected?.length ?? 0,
  ): number {
    this.checkKey("compareAndDelete", key);
    const bad = this.checkRegion("compareAndDelete", expected, offset, size);
    if (bad !== 0) return bad;
    if (!this.canRead()) return this.permError(false);
    if (!this.canWrite()) return this.permError(true);
    return this.compareAndDeleteRaw(this.hashKey(key), expected, 0, offset, size);
  }

  private compareAndDeleteRaw(
    hash: number,
    expected: Uint8Array,
    expOff: number,
    offset: number,
    size: number,
  ): number {
    this.checkNotComputing("compareAndDelete");
    const b = this.bucketOf(hash);
    const e = this.lockAndCompare(b, hash, expected, expOff, offset, size);
    if (e < 0) return e;
    this.unlinkLocked(b, e, this.prev);
    this.unlockBucket(b);
    this.freeElem(e);
    return 0;
  }

  /**
   * Delete each of `count` keys whose region equals its own expected bytes
   * (`expected` holds count x size bytes). Unlike delete_batch it does not stop
   * at the first failure: `results[i]` is 0 (deleted), -EBUSY or -ENOENT.
   * @returns the number deleted
   */
  compareAndDeleteBatch(
    keys: Uint8Array,
    expected: Uint8Array,
    count: number,
    offset: number,
    size: number,
    results?: Int32Array,
  ): number {
    if (!Number.isInteger(count) || count < 0 || count > 0xffffffff)
      invalid("compareAndDeleteBatch", `count must be a u32, got ${String(count)}`);
    if (!this.regionFits(offset, size)) invalid("compareAndDeleteBatch", this.regionText(offset, size));
    results ??= new Int32Array(count);
    if (!(keys instanceof Uint8Array) || keys.length < count * this.keySize)
      invalid("compareAndDeleteBatch", `keys must hold count * key_size = ${count * this.keySize} bytes`);
    if (!(expected instanceof Uint8Array) || expected.length < count * size)
      invalid("compareAndDeleteBatch", `expected must hold count * size = ${count * size} bytes`);
    if (!(results instanceof Int32Array) || results.length < count)
      invalid("compareAndDeleteBatch", "results must be an Int32Array of at least count entries");
    if (!this.canRead() || !this.canWrite()) {
      results.fill(this.permError(!this.canWrite()), 0, count);
      return 0;
    }
    let deleted = 0;
    for (let i = 0; i < count; i++) {
      const r = this.compareAndDeleteRaw(
        this.hashKeyAt(keys, i * this.keySize),
        expected,
        i * size,
        offset,
        size,
      );
      results[i] = r;
      if (r === 0) deleted++;
    }
    return deleted;
  }

  /**
   * Replace `key`'s whole value with `value` only if its bytes [offset, offset+size)
   * equal `expected`; atomic under the bucket lock. The key keeps the kernel's
   * replace semantics (a new element at the head of its bucket), except on LRU
   * maps, where the value is rewritten in place: a new element would have to
   * be popped, and the pop may evict.
   * @returns 0, -EBUSY, -ENOENT, -EINVAL, -EPERM
   */
  compareAndSwapElem(
    key: Uint8Array,
    expected: Uint8Array,
    value: Uint8Array,
    offset = 0,
    size = expected?.length ?? 0,
  ): number {
    this.checkKey("compareAndSwap", key);
    this.checkValueIn("compareAndSwap", value);
    const bad = this.checkRegion("compareAndSwap", expected, offset, size);
    if (bad !== 0) return bad;
    if (!this.canRead()) return this.permError(false);
    if (!this.canWrite()) return this.permError(true);
    this.checkNotComputing("compareAndSwap");
    const hash = this.hashKey(key);
    const b = this.bucketOf(hash);
    const old = this.lockAndCompare(b, hash, expected, 0, offset, size);
    if (old < 0) return old; // nothing taken, nothing changed
    // An LRU map swaps the value in place: a new element would have to be popped,
    // which may evict (even this key), so a swap could fail by its own doing.
    const err =
      this.lru !== null
        ? this.writeInPlaceLocked(old, value, 0)
        : this.replaceLocked(b, hash, old, this.prev, value, 0);
    this.unlockBucket(b);
    return err;
  }

  private computing = false;
  private computeBuf: Uint8Array | null = null;

  private checkNotComputing(op: string): void {
    if (this.computing)
      throw new BpfError(
        op,
        Errno.EBUSY,
        "called from inside a compute() callback, which holds a bucket lock",
      );
  }

  /**
   * Run `fn(current)` under `key`'s bucket lock and store what it returns:
   * a value (inserted or replaced), or `undefined`/`null` (the key is deleted,
   * or stays absent). `current` is a copy, valid only during the call.
   *
   * Rules for `fn`: keep it short (other writers of the bucket wait, and give
   * up with ETIMEDOUT after 250 ms; lookups never wait for it); do not write
   * to this map from it (EBUSY is thrown), lookups are fine; if it throws or
   * returns a value of the wrong length, the map is unchanged and the error
   * propagates. On an LRU map a present key's new value is written in place;
   * inserting an absent key pops an element, for which the bucket lock is
   * dropped: if the bucket changed meanwhile, `fn` runs again on what is
   * there now, and only its last result is stored.
   * @returns 0, -E2BIG (inserting into a full map), -EPERM, -ETIMEDOUT
   */
  compute(key: Uint8Array, fn: (current: Uint8Array | undefined) => Uint8Array | undefined | null): number {
    this.checkKey("compute", key);
    if (typeof fn !== "function") invalid("compute", "fn must be a function");
    if (!this.canRead()) return this.permError(false);
    if (!this.canWrite()) return this.permError(true);
    this.checkNotComputing("compute");
    const hash = this.hashKey(key);
    const b = this.bucketOf(hash);
    if (!this.lockBucket(b)) return ETIMEDOUT;
    let locked = true;
    try {
      for (;;) {
        const old = this.lookupElemLocked(b, hash);
        const prevOld = this.prev;
        const next = this.runCompute(old, fn);
        if (next === undefined || next === null) {
          if (old === 0) return 0;
          this.unlinkLocked(b, old, prevOld);
          this.unlockBucket(b);
          locked = false;
          this.freeElem(old);
          return 0;
        }
        this.checkValueIn("compute", next);
        // An LRU map stores a result for a present key in place (no element to pop, nothing evicted).
        if (old !== 0 && this.lru !== null) return this.writeInPlaceLocked(old, next, 0);
        if (this.lru !== null && this.lruSpare === 0) {
          // An LRU map pops its element (which may evict) only for a result it
          // will store, so a callback that throws or returns junk evicts nothing.
          // The pop may not run under the bucket lock (lock order LRU -> bucket).
          const seq = Atomics.load(this.i32, b + BUCKET_SEQLOCK_I32);
          this.unlockBucket(b);
          locked = false;
          const t = this.lruTake();
          if (t !== 0) return t;
          if (!this.lockBucket(b)) return ETIMEDOUT;
          locked = true;
          // Another writer (or the eviction) changed the bucket meanwhile: fn sees the new value.
          if (
            !seqUnchanged(
              unlockedWord(seq, false),
              unlockedWord(Atomics.load(this.i32, b + BUCKET_SEQLOCK_I32), false),
            )
          )
            continue;
        }
        if (old !== 0) return this.replaceLocked(b, hash, old, prevOld, next, 0);
        const e = this.allocNew();
        if (e <= 0) return this.allocFailed(e);
        this.insertLocked(b, e, hash, next, 0);
        return 0;
      }
    } finally {
      if (locked) this.unlockBucket(b);
      if (this.lru !== null) this.lruSettle();
    }
  }

  /** Call a compute() callback with a copy of `old`'s value. Requires: bucket lock held. */
  private runCompute(
    old: number,
    fn: (current: Uint8Array | undefined) => Uint8Array | undefined | null,
  ): Uint8Array | undefined | null {
    let cur: Uint8Array | undefined;
    if (old !== 0) {
      this.computeBuf ??= new Uint8Array(this.valueBytes);
      cur = this.computeBuf;
      this.copyValueOut(old, cur, 0);
    }
    // The key words in scratch survive fn: fn may look keys up, which rewrites scratch.
    const keyCopy = this.kw.slice();
    this.computing = true;
    try {
      return fn(cur);
    } finally {
      this.computing = false;
      this.kw.set(keyCopy);
    }
  }

  // ------------------------------------------------ program face (seed 003)

  /**
   * Enter a program section (kernel: the RCU read-side section a BPF program
   * runs in). References from lookupRef() are valid until the matching exit().
   * Sections nest; keep them short: elements freed meanwhile wait for them.
   */
  enter(): void {
    if (this.sectionDepth++ === 0) {
      sectionEnter(this.i32, this.cpu);
      this.liveGen[0]++;
    }
  }

  /** Leave a program section; at the outermost exit its references die. */
  exit(): void {
    if (this.sectionDepth === 0) invalid("exit", "exit() without enter()");
    if (--this.sectionDepth === 0) {
      this.liveGen[0]++;
      sectionExit(this.i32, this.cpu);
      limboReclaim(this.i32, this.cpu, this.cpu, this.nrCpus, this.lru === null ? null : this.lruSink);
    }
  }

  /** Control-plane writes are allowed: not BPF_F_RDONLY, not frozen. */
  get writable(): boolean {
    return this.canWrite();
  }

  /** True inside enter()/exit() (or run()). */
  get inSection(): boolean {
    return this.sectionDepth > 0;
  }

  /**
   * Wait until every program section that began before this call has ended
   * (kernel: synchronize_rcu()): after a map-in-map swap, the old inner map is quiet.
   * @throws BpfError EINVAL inside a section (it would wait for itself)
   */
  synchronize(): void {
    if (this.sectionDepth !== 0) invalid("synchronize", "called inside a section: it would wait for itself");
    if (!this.noSections()) synchronizeSections(this.i32, this.nrCpus);
  }

  /** The value an outer map stores for this map: its id in its MapDomain (0 outside one). */
  mapRef(): number {
    return this.info.id;
  }

  /** Run `fn` as a program: inside a section, so it may take references. */
  run<T>(fn: () => T): T {
    this.enter();
    try {
      return fn();
    } finally {
      this.exit();
    }
  }

  private makeRef(): ValueRef {
    return new ValueRef(
      this.i32,
      this.i64,
      this.u8,
      this.valueSize,
      (this.mapFlags & MapFlags.WronlyProg) === 0,
      (this.mapFlags & MapFlags.RdonlyProg) === 0,
      this.spinLockOff,
      this.cpu,
      this.liveGen,
    );
  }

  /**
   * bpf_map_lookup_elem() as a program sees it: a live reference to the value
   * in shared memory, or null. Pass `into` to reuse a reference object.
   * @throws BpfError EINVAL outside a section (see enter()/run())
   */
  lookupRef(key: Uint8Array, into?: ValueRef): ValueRef | null {
    this.checkKey("lookupRef", key);
    if (this.sectionDepth === 0)
      invalid("lookupRef", "references need a program section: call it inside run() or enter()/exit()");
    const e = this.findElem(this.hashKey(key));
    if (e === READ_TIMEDOUT) throw new BpfError("lookupRef", Errno.ETIMEDOUT, this.lastError);
    if (e === 0) return null;
    this.lru?.setRef(this.nodeOf(e)); // kernel: htab_lru_map_lookup_elem()
    return (into ?? this.makeRef())._bind(this.valueAt(e, this.cpu), this.liveGen[0]);
  }

  /** Byte offset of `cpu`'s value in element `e` (the only value for non-per-CPU maps). */
  private valueAt(e: number, cpu: number): number {
    return (e << 2) + this.valueOffBytes + (this.percpu ? cpu * this.slotBytes : 0);
  }

  /**
   * bpf_map_update_elem() called from a program: on a per-CPU map it writes
   * only the calling CPU's slot (`value` is value_size bytes), and a new key's
   * other slots are zero-filled (../shared/kernel-facts/t_prog.txt). On other
   * maps it is updateElem().
   * @returns 0, -EEXIST, -ENOENT, -E2BIG, -EINVAL, -EACCES (BPF_F_RDONLY_PROG)
   */
  updateElemFromProgram(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.checkKey("updateElemFromProgram", key);
    this.checkFlagsArg("updateElemFromProgram", flags);
    if ((this.mapFlags & MapFlags.RdonlyProg) !== 0)
      return this.fail(-Errno.EACCES, "map is BPF_F_RDONLY_PROG");
    if (!this.percpu) {
      this.checkValueIn("updateElemFromProgram", value);
      return this.updateRaw(value, 0, flags, this.hashKey(key));
    }
    if (!(value instanceof Uint8Array) || value.length !== this.valueSize)
      invalid("updateElemFromProgram", `a program writes one CPU's value: ${this.valueSize} bytes`);
    this.checkNotComputing("updateElemFromProgram");
    const hash = this.hashKey(key);
    if (this.lru !== null) return this.lruUpdateRaw(value, 0, flags, hash, true);
    if (flags > UpdateFlags.Exist) return this.failWith(EINVAL, ERR_FLAGS, flags);
    const b = this.bucketOf(hash);
    if (!this.lockBucket(b)) return ETIMEDOUT;
    const old = this.lookupElemLocked(b, hash);
    let err = this.checkFlags(old, flags);
    if (err === 0 && old !== 0) this.writeSlot(old, value);
    else if (err === 0) {
      const e = this.allocNew();
      if (e <= 0) err = this.allocFailed(e);
      else this.insertLocked(b, e, hash, this.initPercpu(value), 0);
    }
    this.unlockBucket(b);
    return err;
  }

  /** Overwrite this CPU's slot of per-CPU element `e` in place. Requires: bucket lock held. */
  private writeSlot(e: number, value: Uint8Array): void {
    const dst = this.valueAt(e, this.cpu);
    this.markDirty();
    for (let i = 0; i < this.valueSize; i++) this.u8[dst + i] = value[i];
  }

  /** pcpu_init_value(): a new key's value, this CPU's slot from `value` and the others zero. */
  private initPercpu(value: Uint8Array): Uint8Array {
    const scratch = (this.computeBuf ??= new Uint8Array(this.valueBytes));
    scratch.fill(0);
    scratch.set(value, this.cpu * this.slotBytes);
    return scratch;
  }

  /**
   * bpf_map_lookup_percpu_elem(): a reference to CPU `cpu`'s value of a per-CPU
   * map, or null when the key is absent or `cpu` is not a possible CPU.
   * @throws BpfError EINVAL on a map that is not per-CPU (the verifier rejects it), or outside a section
   */
  lookupPercpuRef(key: Uint8Array, cpu: number, into?: ValueRef): ValueRef | null {
    this.checkKey("lookupPercpuRef", key);
    if (!this.percpu) invalid("lookupPercpuRef", "the map is not per-CPU");
    if (this.sectionDepth === 0) invalid("lookupPercpuRef", "references need a program section");
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.nrCpus) return null;
    const e = this.findElem(this.hashKey(key));
    if (e === READ_TIMEDOUT) throw new BpfError("lookupRef", Errno.ETIMEDOUT, this.lastError);
    if (e === 0) return null;
    this.lru?.setRef(this.nodeOf(e));
    return (into ?? this.makeRef())._bind(this.valueAt(e, cpu), this.liveGen[0]);
  }

  /**
   * bpf_for_each_map_elem(): call `cb(map, key, value, ctx)` for every element,
   * bucket by bucket; it returns 0 to go on or 1 to stop. Returns the number
   * of elements visited. The key buffer and the reference are reused between
   * calls. The callback may delete the current element. Like the kernel's
   * walk, elements added or removed meanwhile may or may not be visited.
   * @throws BpfError EINVAL for flags other than 0 or a callback returning other than 0 or 1
   */
  forEachElem<C>(
    cb: (map: Htab, key: Uint8Array, value: ValueRef, ctx: C) => number,
    ctx: C,
    flags = 0,
  ): number {
    if (typeof cb !== "function") invalid("forEachElem", "callback must be a function");
    if (flags !== 0) invalid("forEachElem", `flags must be 0, got ${flags}`);
    const i32 = this.i32;
    const key = new Uint8Array(this.keySize);
    let visited = 0;
    this.enter();
    try {
      const ref = this.makeRef();
      for (let bi = 0; bi <= this.mask; bi++) {
        const b = this.bucketsBase + (bi << 2);
        let e = Atomics.load(i32, b + BUCKET_HEAD_I32);
        for (let steps = 0; e !== 0 && steps < this.walkBound; steps++) {
          // Read the link first: the callback may delete e (the section keeps e's memory intact).
          const next = i32[e + ELEM_NEXT_I32];
          this.copyKeyOut(e, key, 0);
          visited++;
          const r = cb(this, key, ref._bind(this.valueAt(e, this.cpu), this.liveGen[0]), ctx);
          if (r === 1) return visited;
          if (r !== 0)
            invalid("forEachElem", `callback returned ${String(r)}; it must return 0 (continue) or 1 (stop)`);
          e = next;
        }
      }
      return visited;
    } finally {
      this.exit();
    }
  }

  // ------------------------------------------------------------ batch ops

  private batchBuffers(
    args: BatchArgs,
    mode: "lookup" | "update" | "delete",
  ): { keys: Uint8Array; values: Uint8Array } {
    const op = `${mode}Batch`;
    if (args === null || typeof args !== "object") invalid(op, "batch arguments must be an object");
    const { count } = args;
    if (!Number.isInteger(count) || count < 0 || count > 0xffffffff)
      invalid(op, `count must be a u32, got ${String(count)}`);
    const kb = count * this.keySize;
    const vb = count * this.valueBytes;
    const keys = args.keys ?? (mode === "lookup" ? new Uint8Array(kb) : undefined);
    const values = args.values ?? (mode === "lookup" ? new Uint8Array(vb) : new Uint8Array(0));
    if (!(keys instanceof Uint8Array) || keys.length < kb)
      invalid(op, `keys must be a Uint8Array of at least count * key_size = ${kb} bytes`);
    if (!(values instanceof Uint8Array) || (mode !== "delete" && values.length < vb))
      invalid(op, `values must be a Uint8Array of at least count * value_size = ${vb} bytes`);
    return { keys, values };
  }

  /** Kernel: htab_map_lookup_batch(). See lookupAndDeleteBatch() for the cursor rules. */
  lookupBatch(args: BatchArgs): BatchResult {
    return this.lookupBatchRaw(args, false);
  }

  /**
   * Copy out (and delete) whole buckets from `inBatch` on, while they fit in `count`.
   * Returns -ENOSPC when the first non-empty bucket alone does not fit, and
   * -ENOENT with a partial count when the last bucket was passed.
   * @remarks Kernel: __htab_map_lookup_and_delete_batch().
   */
  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    return this.lookupBatchRaw(args, true);
  }

  private lookupBatchRaw(args: BatchArgs, doDelete: boolean): BatchResult {
    this.checkNotComputing(doDelete ? "lookupAndDeleteBatch" : "lookupBatch");
    const { keys, values } = this.batchBuffers(args, "lookup");
    const count = args.count;
    const res: BatchResult = { err: 0, count, outBatch: null, keys, values };
    const elemFlags = args.elemFlags ?? 0;
    const flags = args.flags ?? 0;
    this.checkFlagsArg("lookupBatch", elemFlags);
    this.checkFlagsArg("lookupBatch", flags);
    if (!this.canRead()) return this.batchErr(res, this.permError(false));
    if (doDelete && !this.canWrite()) return this.batchErr(res, this.permError(true));
    if ((elemFlags & ~UpdateFlags.Lock) !== 0)
      return this.batchErr(res, this.fail(EINVAL, `unknown elem_flags 0x${elemFlags.toString(16)}`));
    if (elemFlags !== 0 && this.spinLockOff < 0)
      return this.batchErr(res, this.fail(EINVAL, "BPF_F_LOCK on a map whose value has no bpf_spin_lock"));
    if (flags !== 0)
      return this.batchErr(res, this.fail(EINVAL, `batch flags must be 0, got 0x${flags.toString(16)}`));
    if (count === 0) return res;
    res.count = 0;
    const inBatch = args.inBatch ?? 0;
    if (!Number.isInteger(inBatch) || inBatch < 0 || inBatch > 0xffffffff)
      invalid("lookupBatch", `inBatch must be a u32 bucket cursor, got ${String(inBatch)}`);
    if (inBatch > this.mask) return this.batchErr(res, this.fail(ENOENT, "cursor is past the last bucket"));
    const i32 = this.i32;
    let batch = inBatch;
    let total = 0;
    let err = 0;
    for (;;) {
      const b = this.bucketsBase + (batch << 2);
      let cnt = 0;
      if (Atomics.load(i32, b + BUCKET_HEAD_I32) !== 0) {
        if (!this.lockBucket(b)) {
          // Kernel: htab_lock_bucket() failing mid-batch. What was copied (and deleted)
          // stands; the cursor points at this bucket, so the caller can go on from it.
          err = ETIMEDOUT;
          break;
        }
        for (let e = i32[b + BUCKET_HEAD_I32]; e !== 0; e = i32[e + ELEM_NEXT_I32]) cnt++;
        if (cnt > count - total) {
          this.unlockBucket(b);
          if (total === 0)
            err = this.fail(ENOSPC, `bucket ${batch} holds ${cnt} elements but count is ${count}`);
          break;
        }
        // Copy the whole bucket first, so a spin lock that times out leaves it untouched.
        let e = i32[b + BUCKET_HEAD_I32];
        let copied = true;
        for (let n = 0; e !== 0 && copied; n++, e = i32[e + ELEM_NEXT_I32]) {
          this.copyKeyOut(e, keys, (total + n) * this.keySize);
          if (elemFlags !== 0) copied = this.copyValueOutLocked(e, values, (total + n) * this.valueBytes);
          else this.copyValueOut(e, values, (total + n) * this.valueBytes);
        }
        if (!copied) {
          this.unlockBucket(b);
          err = ETIMEDOUT;
          break;
        }
        let toFree = 0;
        e = doDelete ? i32[b + BUCKET_HEAD_I32] : 0;
        while (e !== 0) {
          const next = i32[e + ELEM_NEXT_I32];
          if (this.lru === null) {
            this.unlinkLocked(b, e, 0);
            // Filed at once (lock order bucket -> freelist): INFLIGHT holds one element only.
            this.freeElem(e);
          } else {
            // LRU lists rank above bucket locks: free after unlock, last unlinked first (kernel: node_to_free).
            this.unlinkLocked(b, e, 0, toFree);
            toFree = e;
          }
          e = next;
        }
        this.unlockBucket(b);
        while (toFree !== 0) {
          const next = i32[toFree + ELEM_FNEXT_I32];
          this.freeElem(toFree); // filing it moves INFLIGHT on to `next`
          toFree = next;
        }
      }
      total += cnt;
      batch++;
      if (batch > this.mask) {
        err = this.fail(ENOENT, "reached the last bucket");
        break;
      }
    }
    res.err = err;
    res.count = total;
    res.outBatch = batch;
    return res;
  }

  private batchErr(res: BatchResult, err: number): BatchResult {
    res.err = err;
    return res;
  }

  /** Kernel: generic_map_update_batch(): update each pair with elem_flags; stop at the first error. */
  updateBatch(args: BatchArgs): BatchResult {
    const { keys, values } = this.batchBuffers(args, "update");
    const elemFlags = args.elemFlags ?? 0;
    this.checkFlagsArg("updateBatch", elemFlags);
    const res: BatchResult = { err: 0, count: args.count, outBatch: null, keys, values };
    if (!this.canWrite()) return this.batchErr(res, this.permError(true));
    if ((elemFlags & ~UpdateFlags.Lock) !== 0)
      return this.batchErr(res, this.fail(EINVAL, `unknown elem_flags 0x${elemFlags.toString(16)}`));
    if (elemFlags !== 0 && this.spinLockOff < 0)
      return this.batchErr(res, this.fail(EINVAL, "BPF_F_LOCK on a map whose value has no bpf_spin_lock"));
    if (args.count === 0) return res;
    let cp = 0;
    for (; cp < args.count; cp++) {
      const err = this.updateRaw(
        values,
        cp * this.valueBytes,
        elemFlags,
        this.hashKeyAt(keys, cp * this.keySize),
      );
      if (err !== 0) {
        res.err = err;
        break;
      }
    }
    res.count = cp;
    return res;
  }

  /** Kernel: generic_map_delete_batch(): delete each key; stop at the first error. */
  deleteBatch(args: BatchArgs): BatchResult {
    const { keys, values } = this.batchBuffers(args, "delete");
    const elemFlags = args.elemFlags ?? 0;
    this.checkFlagsArg("deleteBatch", elemFlags);
    const res: BatchResult = { err: 0, count: args.count, outBatch: null, keys, values };
    if (!this.canWrite()) return this.batchErr(res, this.permError(true));
    if ((elemFlags & ~UpdateFlags.Lock) !== 0)
      return this.batchErr(res, this.fail(EINVAL, `unknown elem_flags 0x${elemFlags.toString(16)}`));
    if (elemFlags !== 0 && this.spinLockOff < 0)
      return this.batchErr(res, this.fail(EINVAL, "BPF_F_LOCK on a map whose value has no bpf_spin_lock"));
    if (args.count === 0) return res;
    let cp = 0;
    for (; cp < args.count; cp++) {
      const err = this.deleteRaw(this.hashKeyAt(keys, cp * this.keySize), null);
      if (err !== 0) {
        res.err = err;
        break;
      }
    }
    res.count = cp;
    return res;
  }

  private hashKeyAt(buf: Uint8Array, off: number): number {
    const kb = this.kb;
    for (let i = 0; i < this.keySize; i++) kb[i] = buf[off + i];
    return htabMapHash(kb, this.kw, this.keySize, this.hashrnd) | 0;
  }

  // ------------------------------------------------------------ map-wide

  /** Kernel: BPF_MAP_FREEZE. Control-plane writes fail with EPERM afterwards. */
  freeze(): number {
    if (!this.canWrite()) return this.permError(true);
    if (this.spinLockOff >= 0)
      return this.fail(-Errno.ENOTSUPP, "a map whose value has a bpf_spin_lock cannot be frozen");
    Atomics.store(this.i32, HDR_FROZEN_I32, 1);
    return 0;
  }

  /**
   * Number of elements in the map (kernel: bpf_map_sum_elem_count()).
   * Summed over per-CPU counters without stopping writers: it can be late.
   */
  count(): number {
    let n = 0;
    for (let c = 0; c < this.nrCpus; c++) n += Atomics.load(this.i32, pcpuBase(c) + PCPU_COUNT_I32);
    return n;
  }

  /** Bytes of shared memory the map occupies (all of it is preallocated). */
  memoryUsage(): number {
    // The map's own bytes (a growable map's grown length). A fast-path map's
    // buffer is rounded up to whole 64 KiB pages; that tail is never written,
    // so the OS never commits it.
    return Math.min(this.u8.byteLength, this.geometry.totalBytes);
  }

  /** The hash seed (kernel: htab->hashrnd); 0 under BPF_F_ZERO_SEED. */
  get seed(): number {
    return this.hashrnd >>> 0;
  }

  /**
   * Check the whole structure: every element is on exactly one chain, freelist
   * or extra slot; chains hold only keys of their bucket with no duplicates;
   * the element count matches. Requires: no concurrent writers.
   */
  fsck(): FsckReport {
    const i32 = this.i32;
    const errors: string[] = [];
    const num = this.prealloc ? this.walkBound - 1 : Atomics.load(i32, HDR_CARVED_I32);
    const where = new Int8Array(this.walkBound);
    const idxOf = (e: number): number => {
      const off = e - this.elemsBase;
      if (off < 0 || off % this.elemStrideI32 !== 0 || off / this.elemStrideI32 >= num) return -1;
      return off / this.elemStrideI32;
    };
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
    let elements = 0;
    for (let bi = 0; bi <= this.mask; bi++) {
      const b = this.bucketsBase + (bi << 2);
      if ((i32[b + BUCKET_SEQLOCK_I32] & SEQ_LOCKED) !== 0 || i32[b + BUCKET_OWNER_I32] !== 0)
        errors.push(`bucket ${bi}: lock held (owner slot ${i32[b + BUCKET_OWNER_I32] - 1})`);
      const seen = new Set<string>();
      for (let e = i32[b + BUCKET_HEAD_I32]; e !== 0; e = i32[e + ELEM_NEXT_I32]) {
        if (!mark(e, 1, `bucket ${bi}`)) break;
        elements++;
        if ((i32[e + ELEM_HASH_I32] & this.mask) !== bi)
          errors.push(`bucket ${bi}: element hash belongs elsewhere`);
        const k = Array.from(
          this.u8.subarray((e << 2) + ELEM_HEADER_BYTES, (e << 2) + ELEM_HEADER_BYTES + this.keySize),
        ).join(",");
        if (seen.has(k)) errors.push(`bucket ${bi}: duplicate key ${k}`);
        seen.add(k);
      }
    }
    let free = 0;
    let extra = 0;
    if (this.lru !== null) free += this.fsckLru(where, mark, errors);
    else
      for (let c = 0; c < this.nrCpus; c++) {
        const p = pcpuBase(c);
        for (let e = i32[p + PCPU_FL_HEAD_I32]; e !== 0; e = i32[e + ELEM_FNEXT_I32]) {
          if (!mark(e, 2, `freelist ${c}`)) break;
          free++;
        }
        const x = i32[p + PCPU_EXTRA_I32];
        if (x !== 0 && mark(x, 3, `extra ${c}`)) extra++;
        for (let e = i32[p + PCPU_LIMBO_HEAD_I32]; e !== 0; e = i32[e + ELEM_FNEXT_I32]) {
          if (!mark(e, 4, `limbo ${c}`)) break;
          free++;
        }
      }
    if (elements + free + extra !== num) errors.push(`${num - elements - free - extra} elements are lost`);
    if (this.count() !== elements) errors.push(`count() is ${this.count()} but chains hold ${elements}`);
    return { ok: errors.length === 0, errors, elements, free, extra };
  }

  /** fsck() for LRU maps: the lists are sound, linked elements are on in-use lists, the rest free or in limbo. */
  private fsckLru(
    where: Int8Array,
    mark: (e: number, kind: number, what: string) => boolean,
    errors: string[],
  ): number {
    const i32 = this.i32;
    const lru = this.lru as BpfLru;
    for (const k of lru.lockWords())
      if (i32[k] !== 0) errors.push(`LRU lock word ${k} held (owner slot ${lockOwner(i32[k])})`);
    if (Atomics.load(i32, HDR_LRU_REPAIR_I32) !== 0) errors.push("LRU lists are waiting for a repair");
    errors.push(...lru.check());
    for (let c = 0; c < this.nrCpus; c++)
      for (let e = i32[pcpuBase(c) + PCPU_LIMBO_HEAD_I32]; e !== 0; e = i32[e + ELEM_FNEXT_I32])
        if (!mark(e, 4, `limbo ${c}`)) break;
    let free = 0;
    for (let i = 0; i < where.length - 1; i++) {
      const t = lru.type(i);
      const listed = t === LRU_T_ACTIVE || t === LRU_T_INACTIVE || t === LRU_T_LOCAL_PENDING;
      if (where[i] === 1 && !listed)
        errors.push(`element ${i} is linked but its LRU node is free (type ${t})`);
      if (where[i] === 0 && listed) errors.push(`element ${i} is on an LRU list but linked nowhere (leaked)`);
      if (where[i] === 0 && t === LRU_T_LIMBO)
        errors.push(`element ${i} is in LRU limbo but on no limbo list`);
      if (where[i] !== 1) free++;
    }
    return free;
  }
}
