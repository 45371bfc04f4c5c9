import type { SyncOptions, SyncReport } from "../alloc/epoch.js";
import { Errno, invalid, showInput } from "../errors.js";
import { type Geometry, mapStateBytes, readGeometry } from "../layout/geometry.js";
import {
  HDR_FROZEN_I32,
  HDR_NONCE_I32,
  HDR_RECOVERED_I32,
  LRU_NONE,
  PCPU_CLAIM_I32,
  PCPU_OWNER_I32,
  pcpuBase,
  SLOT_ALIVE,
  SLOT_DEAD,
} from "../layout/layout.js";
import { poisonClosed } from "../map/closed.js";
import type { BatchArgs, BatchResult, MapInfo, RawMap } from "../map/raw-map.js";
import { WASM_RETRY } from "../sentinels.js";
import {
  type Reservation,
  releaseSlot,
  reserveSlot as reserve,
  slotGenerationOf,
  slotStateOf,
  unreserveSlot as unreserve,
} from "../sync/slot-claim.js";
import { setStallHandler } from "../sync/spin.js";
import { MapType, UpdateFlags } from "../uapi.js";
import {
  canRead,
  canWrite,
  checkFlagsArg,
  checkKey,
  checkRegion,
  checkValueIn,
  checkValueOut,
  noSpinLock,
  permError,
} from "./checks.js";
import {
  type ComputeFn,
  compareAndDeleteBatch,
  compareAndDeleteRaw,
  compareAndSwapRaw,
  computeRaw,
} from "./compare.js";
import { type FsckReport, fsck } from "./crash/fsck.js";
import { reap, recoverDeadSlots } from "./crash/recovery.js";
import { copyBytesOut, hashKey, keyToScratch, valueToScratch } from "./elem.js";
import { CarvedElems } from "./elems/carve.js";
import { LruElems } from "./elems/lru.js";
import { HomedElems, PreallocElems } from "./elems/prealloc.js";
import { count, EINVAL, ENOENT, ERR_FLAGS, HtabView } from "./htab-view.js";
import { hasElem, lookupElem, lookupLocked, lookupMany, lookupScratch, readerFor } from "./lookup.js";
import { type AttachOptions, checkMemory, type MapHandle } from "./map-handle.js";
import { allocMapMemory, initMap } from "./map-init.js";
import { deleteElemFromProgram, forEachElem, refOf, updateElemFromProgram } from "./program.js";
import { enter, exit, synchronize } from "./section.js";
import { cpuOption, defaultNrCpus, type MapSpec, type SabCreateOptions, validateSpec } from "./spec.js";
import type { ValueRef } from "./value-ref.js";
import { deleteBatch, getNextKey, lookupBatchRaw, updateBatch } from "./walk.js";
import {
  deleteFast,
  deleteFastResult,
  deleteRaw,
  deleteScratch,
  updateFast,
  updateFastResult,
  updateRaw,
  updateScratch,
} from "./write.js";

export type { AttachOptions, FsckReport, MapHandle, Reservation };
export { checkMemory };

/**
 * A BPF hash map living in a SharedArrayBuffer. Every thread that attaches
 * gets its own instance over the same memory and its own CPU slot.
 */
export class Htab implements RawMap {
  /** This thread's view of the map (the `struct bpf_htab *` of hashtab.c's functions). */
  private readonly v: HtabView;
  readonly info: MapInfo;
  /** Post this to a worker; `attach(handle)` there gives a full map. */
  readonly handle: MapHandle;
  /** This instance's CPU slot (kernel: smp_processor_id()). */
  readonly cpu: number;

  private constructor(
    handle: MapHandle,
    g: Geometry,
    mapType: number,
    mapFlags: number,
    hashrnd: number,
    cpu: number,
  ) {
    const v = new HtabView(handle, g, mapType, mapFlags, hashrnd, cpu);
    this.v = v;
    this.info = v.info;
    this.handle = v.handle;
    this.cpu = v.cpu;
    // The element policy: the one place the map type decides where elements come from.
    v.elems =
      g.lru !== LRU_NONE
        ? new LruElems(v)
        : g.prealloc
          ? g.homes > 0
            ? new HomedElems()
            : new PreallocElems()
          : new CarvedElems();
    v.recover = () => recoverDeadSlots(v);
    v.reader = readerFor(v);
    // A waiter stuck behind a thread that was terminated recovers its slot.
    setStallHandler(v.i32, v.recover);
  }

  /**
   * Create a map (kernel: BPF_MAP_CREATE). The calling thread takes a CPU slot.
   * @throws BpfError EPERM, EINVAL, E2BIG, ENOTSUPP, EOPNOTSUPP, ENOMEM — see validateSpec()
   */
  static create(spec: MapSpec, opts: SabCreateOptions = {}): Htab {
    const nrCpus = opts.nrCpus ?? defaultNrCpus();
    const g = validateSpec(spec, nrCpus, opts.privileged === true, opts.homeElements);
    const cpu = cpuOption("create", opts.cpu, nrCpus);
    if (spec.type === MapType.HashOfMaps)
      invalid("create", "HASH_OF_MAPS lives in a MapDomain: create it with domain.createMap()");
    const { sab, memory } = allocMapMemory(g, opts.fastPath !== false, opts.memory);
    const hashrnd = initMap(new Int32Array(sab), g, spec);
    const handle = memory !== null ? { sab, memory } : { sab };
    return new Htab(handle, g, spec.type, spec.flags ?? 0, hashrnd, cpu);
  }

  /**
   * Create a map inside a MapDomain's buffer at `offset` (`g.totalBytes`
   * bytes, zeroed). Requires: validateSpec() gave `g`. Used by MapDomain.
   */
  static createIn(handle: MapHandle, spec: MapSpec, g: Geometry, cpu: number): Htab {
    const off = handle.offset ?? 0;
    const hashrnd = initMap(new Int32Array(handle.sab, off, g.totalBytes / 4), g, spec);
    return new Htab({ ...handle, length: g.totalBytes }, g, spec.type, spec.flags ?? 0, hashrnd, cpu);
  }

  /**
   * Attach to a map created elsewhere (typically in another worker).
   * @throws BpfError EINVAL for a foreign or corrupt buffer, EBUSY when every CPU slot is taken
   */
  static attach(handle: MapHandle | SharedArrayBuffer, opts: AttachOptions = {}): Htab {
    const h: MapHandle =
      handle instanceof SharedArrayBuffer ? { sab: handle } : ((handle ?? {}) as MapHandle);
    const { g, mapType, mapFlags, hashrnd } = readGeometry(h.sab, h.offset, h.length);
    const cpu = cpuOption("attach", opts?.cpu, g.nrCpus);
    // The fast path addresses the memory, the JS path the buffer: they must be one map.
    // (A buffer object posted to another thread need not be identical to memory.buffer there.)
    if (h.memory !== undefined) checkMemory(h.memory);
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
    return new Htab(h, g, mapType, mapFlags, hashrnd, cpu);
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
  reap(cpu: number, generation?: number, token?: number): void {
    reap(this.v, cpu, generation, token);
  }

  /**
   * Reserve free CPU slot `cpu` for a worker that will attach with `{ cpu }`
   * (watchWorker() does it): until then an attach without a cpu skips it.
   * A slot already taken is reported as it is, with its generation and the
   * token of the thread that claimed it.
   */
  reserveSlot(cpu: number): Reservation {
    this.slotArg("reserveSlot", cpu);
    return reserve(this.v.i32, pcpuBase(cpu) + PCPU_OWNER_I32, pcpuBase(cpu) + PCPU_CLAIM_I32);
  }

  /** Drop this thread's reservation of slot `cpu`, if the slot is still free and reserved. */
  unreserveSlot(cpu: number): void {
    this.slotArg("unreserveSlot", cpu);
    unreserve(this.v.i32, pcpuBase(cpu) + PCPU_CLAIM_I32);
  }

  /** Who claimed slot `cpu` last: that thread's token (announceSlot() sends it); 0 never; negative: reserved. */
  slotClaim(cpu: number): number {
    this.slotArg("slotClaim", cpu);
    return Atomics.load(this.v.i32, pcpuBase(cpu) + PCPU_CLAIM_I32);
  }

  private slotArg(op: string, cpu: number): void {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.v.nrCpus) invalid(op, `no CPU slot ${cpu}`);
  }

  /**
   * Slot `cpu`'s claim generation: it grows by one at every attach to that
   * slot. Pass it to reap() to reap that claim only (announceSlot() sends it).
   */
  slotGeneration(cpu: number): number {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.v.nrCpus)
      invalid("slotGeneration", `no CPU slot ${showInput(cpu)}`);
    return slotGenerationOf(Atomics.load(this.v.i32, pcpuBase(cpu) + PCPU_OWNER_I32));
  }

  /** Whether CPU slot `cpu` is taken by a live thread, being recovered, or free. Can be late. */
  slotState(cpu: number): "alive" | "dead" | "free" {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.v.nrCpus)
      invalid("slotState", `no CPU slot ${showInput(cpu)}`);
    const s = slotStateOf(Atomics.load(this.v.i32, pcpuBase(cpu) + PCPU_OWNER_I32));
    return s === SLOT_ALIVE ? "alive" : s === SLOT_DEAD ? "dead" : "free";
  }

  /** Recover every slot marked dead, unless another thread is recovering. Returns how many it recovered. */
  recoverDeadSlots(): number {
    return recoverDeadSlots(this.v);
  }

  /** Times a lock or a half-done operation was recovered from a dead slot. */
  stats(): { recovered: number; count: number; memoryBytes: number } {
    return {
      recovered: Atomics.load(this.v.i32, HDR_RECOVERED_I32),
      count: this.count(),
      memoryBytes: this.memoryUsage(),
    };
  }

  /**
   * Give the CPU slot back. Every later call on this object throws BpfError
   * EINVAL ("map is closed"); calling close() again does nothing. Other
   * threads' objects on the same map are unaffected.
   */
  close(): void {
    const v = this.v;
    if (v.closed) return;
    v.closed = true;
    while (v.sectionDepth > 0) exit(v);
    // Poisoned before the slot is free: from the store on, another thread may own it.
    poisonClosed(this);
    releaseSlot(v.i32, v.myPcpu + PCPU_OWNER_I32);
  }

  /**
   * A copy of the map's bytes with the CPU slots' scratch buffers zeroed
   * (working memory, not contents): two equal copies mean equal map state,
   * and a failed operation leaves it unchanged.
   */
  stateBytes(): Uint8Array {
    const u8 = this.v.u8;
    return mapStateBytes(u8.buffer as SharedArrayBuffer, this.v.geometry, u8.byteOffset);
  }

  /** True when this thread runs the wasm fast path on this map (see SabCreateOptions.fastPath). */
  get fastPath(): boolean {
    return this.v.fast !== null;
  }

  /** Human-readable reason for the last non-zero return. */
  get lastError(): string {
    return this.v.err.message;
  }

  // ------------------------------------------------------------ element ops

  /**
   * Look `key` up and copy its value into `value`.
   * @returns 0, -ENOENT (absent), -EINVAL (flags), -EPERM (BPF_F_WRONLY), -ETIMEDOUT
   * @remarks Kernel: map_lookup_elem() -> htab_map_lookup_elem(). Linearizable.
   */
  lookupElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    const v = this.v;
    const r = v.reader;
    // The hot path, small enough for V8 to inline into the caller's loop with
    // the reader of this map's shape (lookup.ts InlineReader: two Atomics.load).
    if (
      r !== null &&
      flags === 0 &&
      key instanceof Uint8Array &&
      key.length === v.keySize &&
      value instanceof Uint8Array &&
      value.length >= v.valueBytes
    ) {
      const e = r.lookup(key, 0, value, 0);
      if (e > 0) return 0;
      if (e === 0) return v.err.fail(ENOENT, "key not found");
    }
    return this.lookupChecked(key, value, flags);
  }

  /** lookupElem() with its checks: bad arguments, other shapes (one wasm call), a bucket being written. */
  private lookupChecked(key: Uint8Array, value: Uint8Array, flags: number): number {
    const v = this.v;
    checkKey(v, "lookup", key);
    checkValueOut(v, "lookup", value);
    // Key to scratch, one wasm call, one copy out.
    const f = v.fast;
    if (flags === 0 && v.reader === null && f?.wholeLookup) {
      keyToScratch(v, key);
      const e = f.lookupWhole();
      if (e > 0) {
        copyBytesOut(v, v.outOff, value, 0);
        return 0;
      }
      if (e === 0) return v.err.fail(ENOENT, "key not found");
    }
    return this.lookupSlow(key, value, flags);
  }

  /** lookupElem() off the hot path: flags, permissions, the JS path, a bucket being written. */
  private lookupSlow(key: Uint8Array, value: Uint8Array, flags: number): number {
    const v = this.v;
    if (flags !== 0) {
      checkFlagsArg(v, "lookup", flags);
      if (flags !== UpdateFlags.Lock) return v.err.failWith(EINVAL, ERR_FLAGS, flags);
    }
    if (!canRead(v)) return permError(v, false);
    if (flags === 0) return lookupElem(v, key, value);
    if (v.spinLockOff < 0) return noSpinLock(v);
    return lookupLocked(v, hashKey(v, key), value);
  }

  /** True when `key` is present (a lookup that copies nothing). */
  hasElem(key: Uint8Array): boolean {
    checkKey(this.v, "has", key);
    return canRead(this.v) && hasElem(this.v, key);
  }

  /**
   * Insert or replace `key`. `flags`: BPF_ANY, BPF_NOEXIST or BPF_EXIST (| BPF_F_LOCK).
   * @returns 0, -EEXIST, -ENOENT, -E2BIG (map full), -EINVAL, -EPERM, -ETIMEDOUT
   * @remarks Kernel: htab_map_update_elem(). A replaced key gets a new element at the
   * head of its bucket and the old one is unlinked, so iteration order is the kernel's.
   */
  updateElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    const v = this.v;
    checkKey(v, "update", key);
    checkValueIn(v, "update", value);
    const f = v.fast;
    if (f?.wholeWrites && (flags === 0 || flags === 1 || flags === 2) && !v.computing) {
      // The hot path, kept in one frame: key and value to scratch, one wasm call.
      keyToScratch(v, key);
      valueToScratch(v, value);
      const r = f.update(0, flags);
      if (r === 0) return 0;
      if (r !== WASM_RETRY) return updateFastResult(v, r, flags);
    } else {
      checkFlagsArg(v, "update", flags);
      if (f?.writes && flags <= UpdateFlags.Exist) {
        const r = updateFast(v, f, key, value, flags);
        if (r !== WASM_RETRY) return r;
      }
    }
    return updateRaw(v, value, 0, flags, hashKey(v, key));
  }

  /**
   * Delete `key`.
   * @returns 0, -ENOENT, -EPERM, -ETIMEDOUT
   * @remarks Kernel: htab_map_delete_elem(). The element goes back to this CPU's freelist.
   */
  deleteElem(key: Uint8Array): number {
    const v = this.v;
    checkKey(v, "delete", key);
    const f = v.fast;
    if (f?.wholeWrites && !v.computing) {
      keyToScratch(v, key);
      const r = f.delete(0);
      if (r === 0) return 0;
      if (r !== WASM_RETRY) return deleteFastResult(v, r);
    } else if (f?.writes) {
      const r = deleteFast(v, f, key);
      if (r !== WASM_RETRY) return r;
    }
    return deleteRaw(v, hashKey(v, key), null);
  }

  /**
   * Look `key` up, copy its value into `value` and delete it, atomically.
   * @returns 0, -ENOENT, -EINVAL, -EPERM, -ETIMEDOUT
   * @remarks Kernel: htab_map_lookup_and_delete_elem().
   */
  lookupAndDeleteElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    const v = this.v;
    checkKey(v, "lookupAndDelete", key);
    checkValueOut(v, "lookupAndDelete", value);
    checkFlagsArg(v, "lookupAndDelete", flags);
    if (flags !== 0 && flags !== UpdateFlags.Lock) return v.err.failWith(EINVAL, ERR_FLAGS, flags);
    if (!canRead(v)) return permError(v, false);
    if (!canWrite(v)) return permError(v, true);
    if (flags !== 0 && v.spinLockOff < 0) return noSpinLock(v);
    return deleteRaw(v, hashKey(v, key), value, flags !== 0);
  }

  // ------------------------------------------------- the allocation-free hot path

  /**
   * This CPU slot's scratch key (key_size bytes, in shared memory): write a
   * key here, then call lookupScratch(), updateScratch() or deleteScratch(),
   * which read it in place. Every other call on this object may overwrite
   * it; the view is this object's until close().
   */
  get keyScratch(): Uint8Array {
    return this.v.keyScratch;
  }

  /**
   * This slot's scratch value (value bytes): lookupScratch() copies the value
   * here (on the wasm fast path, straight from the element) and
   * updateScratch() stores it from here. Every other call on this object may
   * overwrite it; the view is this object's until close().
   */
  get valueScratch(): Uint8Array {
    return this.v.valueScratch;
  }

  /** The scratch key as u32 words (key_size / 4 of them; a u32 or u64 key is 1 or 2 words, little-endian). @internal */
  get keyScratchWords(): Int32Array {
    return this.v.kw;
  }

  /** How many grace periods this view has waited for inside its own sections (a count that only grows). @internal */
  get sectionGraceWaits(): number {
    return this.v.sectionGraceWaits;
  }

  /**
   * This view's open section runs programs one after another (a compiled batch), until it ends:
   * references die when their run ends, `clock[at]` naming the current run, and element `e` also
   * counts as referenced where `held(e)` says so (held-refs.ts `runs`, `external`): a compiled
   * program's lookups run in wasm, unseen by the view, so nothing it unlinks is reused under them.
   * Requires: inside a section. @internal
   */
  programRuns(clock: Int32Array, at: number, held: ((e: number) => boolean) | null): void {
    if (this.v.sectionDepth === 0) invalid("programRuns", "called outside a section");
    this.v.held.runs(clock, at);
    this.v.held.external = held;
  }

  /** lookupElem() of keyScratch into valueScratch. @returns 0, -ENOENT, -EPERM, -ETIMEDOUT */
  lookupScratch(): number {
    const v = this.v;
    if (!canRead(v)) return permError(v, false);
    return lookupScratch(v);
  }

  /** updateElem() of keyScratch with valueScratch. @returns as updateElem() */
  updateScratch(flags = 0): number {
    checkFlagsArg(this.v, "updateScratch", flags);
    return updateScratch(this.v, flags);
  }

  /** deleteElem() of keyScratch. @returns as deleteElem() */
  deleteScratch(): number {
    return deleteScratch(this.v);
  }

  /**
   * Look up `results.length` keys at once: `keys` holds count x key_size
   * bytes, `values` receives count x value bytes (info.valueBytes), and
   * `results[i]` is 0 or -ENOENT (-ETIMEDOUT) for key i. The value slot of
   * a key not found is left as it was. Each key's lookup
   * is linearizable on its own, as lookupElem(). On the wasm fast path the
   * keys' cache misses overlap (every key's bucket is touched before any
   * lookup depends on it), which is what makes it faster per key than
   * single lookups on a large map. The kernel has no such call.
   * @returns the number of keys found
   * @throws BpfError EINVAL when a buffer is too short or results is not an Int32Array
   */
  lookupMany(keys: Uint8Array, values: Uint8Array, results: Int32Array): number {
    const v = this.v;
    if (!(results instanceof Int32Array))
      invalid("lookupMany", "results must be an Int32Array (one per key)");
    const n = results.length;
    if (!(keys instanceof Uint8Array) || keys.length < n * v.keySize)
      invalid(
        "lookupMany",
        `keys must be a Uint8Array of at least count * key_size = ${n * v.keySize} bytes`,
      );
    if (!(values instanceof Uint8Array) || values.length < n * v.valueBytes)
      invalid(
        "lookupMany",
        `values must be a Uint8Array of at least count * value bytes = ${n * v.valueBytes}`,
      );
    if (!canRead(v)) {
      results.fill(permError(v, false));
      return 0;
    }
    return lookupMany(v, keys, values, results);
  }

  /**
   * Copy the key after `key` into `nextKey`: the rest of `key`'s chain, then
   * the following buckets in order. A null or absent `key` gives the first key.
   * @returns 0, -ENOENT (no more keys), -EPERM, -ETIMEDOUT
   * @remarks Kernel: htab_map_get_next_key(). Each bucket is read consistently;
   * a walk over a map that changes meanwhile may miss or repeat keys, as in the kernel.
   */
  getNextKey(key: Uint8Array | null, nextKey: Uint8Array): number {
    return getNextKey(this.v, key, nextKey);
  }

  // ------------------------------------------------- beyond the kernel (docs/compare-and-compute.md)

  /**
   * Delete `key` only if its value bytes [offset, offset+size) equal `expected`,
   * with the compare and the unlink under one bucket lock: a concurrent update
   * either lands before (and the compare fails) or after (and re-inserts).
   * @returns 0, -EBUSY (region differs), -ENOENT, -EINVAL (bad region), -EPERM, -ETIMEDOUT
   * @remarks Not in the kernel: the BPF_F_COMPARE RFC, which conntrack GC needs.
   */
  compareAndDeleteElem(
    key: Uint8Array,
    expected: Uint8Array,
    offset = 0,
    size = expected?.length ?? 0,
  ): number {
    const v = this.v;
    checkKey(v, "compareAndDelete", key);
    const bad = checkRegion(v, "compareAndDelete", expected, offset, size);
    if (bad !== 0) return bad;
    if (!canRead(v)) return permError(v, false);
    if (!canWrite(v)) return permError(v, true);
    return compareAndDeleteRaw(v, hashKey(v, key), expected, 0, offset, size);
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
    return compareAndDeleteBatch(this.v, keys, expected, count, offset, size, results);
  }

  /**
   * Replace `key`'s whole value with `value` only if its bytes [offset, offset+size)
   * equal `expected`; atomic under the bucket lock. The key keeps the kernel's
   * replace semantics (a new element at the head of its bucket), except on LRU
   * maps, where the value is rewritten in place: a new element would have to
   * be popped, and the pop may evict.
   * @returns 0, -EBUSY, -ENOENT, -EINVAL, -EPERM, -ETIMEDOUT
   */
  compareAndSwapElem(
    key: Uint8Array,
    expected: Uint8Array,
    value: Uint8Array,
    offset = 0,
    size = expected?.length ?? 0,
  ): number {
    const v = this.v;
    checkKey(v, "compareAndSwap", key);
    checkValueIn(v, "compareAndSwap", value);
    const bad = checkRegion(v, "compareAndSwap", expected, offset, size);
    if (bad !== 0) return bad;
    if (!canRead(v)) return permError(v, false);
    if (!canWrite(v)) return permError(v, true);
    return compareAndSwapRaw(v, hashKey(v, key), expected, value, offset, size);
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
  compute(key: Uint8Array, fn: ComputeFn): number {
    const v = this.v;
    checkKey(v, "compute", key);
    if (typeof fn !== "function") invalid("compute", "fn must be a function");
    if (!canRead(v)) return permError(v, false);
    if (!canWrite(v)) return permError(v, true);
    return computeRaw(v, hashKey(v, key), fn);
  }

  // ------------------------------------------------------------ batch ops

  /** Kernel: htab_map_lookup_batch(). See lookupAndDeleteBatch() for the cursor rules. */
  lookupBatch(args: BatchArgs): BatchResult {
    return lookupBatchRaw(this.v, args, false);
  }

  /**
   * Copy out (and delete) whole buckets from `inBatch` on, while they fit in `count`.
   * Returns -ENOSPC when the first non-empty bucket alone does not fit, and
   * -ENOENT with a partial count when the last bucket was passed.
   * @remarks Kernel: __htab_map_lookup_and_delete_batch().
   */
  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    return lookupBatchRaw(this.v, args, true);
  }

  /** Kernel: generic_map_update_batch(): update each pair with elem_flags; stop at the first error. */
  updateBatch(args: BatchArgs): BatchResult {
    return updateBatch(this.v, args);
  }

  /** Kernel: generic_map_delete_batch(): delete each key; stop at the first error. */
  deleteBatch(args: BatchArgs): BatchResult {
    return deleteBatch(this.v, args);
  }

  // ------------------------------------------------------------ map-wide

  /** Kernel: BPF_MAP_FREEZE. Control-plane writes fail with EPERM afterwards. */
  freeze(): number {
    const v = this.v;
    if (!canWrite(v)) return permError(v, true);
    if (v.spinLockOff >= 0)
      return v.err.fail(-Errno.ENOTSUPP, "a map whose value has a bpf_spin_lock cannot be frozen");
    Atomics.store(v.i32, HDR_FROZEN_I32, 1);
    return 0;
  }

  /**
   * Number of elements in the map (kernel: bpf_map_sum_elem_count()).
   * Summed over per-CPU counters without stopping writers: it can be late.
   */
  count(): number {
    return count(this.v);
  }

  /** Bytes of shared memory the map occupies (all of it is preallocated). */
  memoryUsage(): number {
    // The map's own bytes (a growable map's grown length). A fast-path map's
    // buffer is rounded up to whole 64 KiB pages; that tail is never written,
    // so the OS never commits it.
    return Math.min(this.v.u8.byteLength, this.v.geometry.totalBytes);
  }

  /** The hash seed (kernel: htab->hashrnd); 0 under BPF_F_ZERO_SEED. */
  get seed(): number {
    return this.v.hashrnd >>> 0;
  }

  /**
   * Check the whole structure: every element is on exactly one chain, freelist
   * or extra slot; chains hold only keys of their bucket with no duplicates;
   * the element count matches. Requires: no concurrent writers.
   */
  fsck(): FsckReport {
    return fsck(this.v);
  }

  // ------------------------------------------------ the program face (docs/program-face.md)

  /**
   * Enter a program section (kernel: the RCU read-side section a BPF program
   * runs in). References from lookupRef() are valid until the matching exit().
   * Sections nest; keep them short: elements freed meanwhile wait for them.
   */
  enter(): void {
    enter(this.v);
  }

  /** Leave a program section; at the outermost exit its references die. */
  exit(): void {
    exit(this.v);
  }

  /** Control-plane writes are allowed: not BPF_F_RDONLY, not frozen. */
  get writable(): boolean {
    return canWrite(this.v);
  }

  /** True inside enter()/exit() (or run()). */
  get inSection(): boolean {
    return this.v.sectionDepth > 0;
  }

  /**
   * Wait until every program section that began before this call has ended
   * (kernel: synchronize_rcu()): after a map-in-map swap, the old inner map is quiet.
   * Bounded: a section still open after 1 s (a worker that died inside
   * run() and was never reaped) gives ETIMEDOUT naming its slot; with
   * `{ timeoutMs }` it waits that long and returns a report instead.
   * @throws BpfError EINVAL inside a section (it would wait for itself), ETIMEDOUT
   */
  synchronize(): void;
  synchronize(opts: SyncOptions & { timeoutMs: number }): SyncReport;
  synchronize(opts?: SyncOptions): SyncReport | undefined {
    return synchronize(this.v, opts);
  }

  /** The value an outer map stores for this map: its id in its MapDomain (0 outside one). */
  mapRef(): number {
    return this.v.info.id;
  }

  /** Run `fn` as a program: inside a section, so it may take references. */
  run<T>(fn: () => T): T {
    enter(this.v);
    try {
      return fn();
    } finally {
      exit(this.v);
    }
  }

  /**
   * bpf_map_lookup_elem() as a program sees it: a live reference to the value
   * in shared memory, or null. Pass `into` to reuse a reference object.
   * @throws BpfError EINVAL outside a section (see enter()/run())
   */
  lookupRef(key: Uint8Array, into?: ValueRef): ValueRef | null {
    const v = this.v;
    checkKey(v, "lookupRef", key);
    if (v.sectionDepth === 0)
      invalid("lookupRef", "references need a program section: call it inside run() or enter()/exit()");
    return refOf(v, hashKey(v, key), v.cpu, into);
  }

  /**
   * bpf_map_update_elem() called from a program: on a per-CPU map it writes
   * only the calling CPU's slot (`value` is value_size bytes), and a new key's
   * other slots are zero-filled. On other maps it is updateElem(), except
   * that BPF_F_RDONLY and a frozen map do not stop it (they hold syscall
   * writes only, as in the kernel); BPF_F_RDONLY_PROG does.
   * @returns 0, -EEXIST, -ENOENT, -E2BIG, -EINVAL, -EACCES (BPF_F_RDONLY_PROG), -ETIMEDOUT
   */
  updateElemFromProgram(key: Uint8Array, value: Uint8Array, flags = 0): number {
    checkKey(this.v, "updateElemFromProgram", key);
    checkFlagsArg(this.v, "updateElemFromProgram", flags);
    return updateElemFromProgram(this.v, key, value, flags);
  }

  /**
   * bpf_map_delete_elem() called from a program: deleteElem(), except that
   * BPF_F_RDONLY and a frozen map do not stop it (kernel: map_freeze()
   * holds syscall writes only); BPF_F_RDONLY_PROG does.
   * @returns 0, -ENOENT, -EACCES (BPF_F_RDONLY_PROG), -ETIMEDOUT
   */
  deleteElemFromProgram(key: Uint8Array): number {
    checkKey(this.v, "deleteElemFromProgram", key);
    return deleteElemFromProgram(this.v, key);
  }

  /**
   * bpf_map_lookup_percpu_elem(): a reference to CPU `cpu`'s value of a per-CPU
   * map, or null when the key is absent or `cpu` is not a possible CPU.
   * @throws BpfError EINVAL on a map that is not per-CPU (the verifier rejects it), or outside a section
   */
  lookupPercpuRef(key: Uint8Array, cpu: number, into?: ValueRef): ValueRef | null {
    const v = this.v;
    checkKey(v, "lookupPercpuRef", key);
    if (!v.percpu) invalid("lookupPercpuRef", "the map is not per-CPU");
    if (v.sectionDepth === 0) invalid("lookupPercpuRef", "references need a program section");
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= v.nrCpus) return null;
    return refOf(v, hashKey(v, key), cpu, into);
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
    cb: (map: this, key: Uint8Array, value: ValueRef, ctx: C) => number,
    ctx: C,
    flags = 0,
  ): number {
    return forEachElem(this.v, this, cb, ctx, flags);
  }
}
