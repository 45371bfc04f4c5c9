/**
 * BPF_MAP_TYPE_ARRAY_OF_MAPS and BPF_MAP_TYPE_HASH_OF_MAPS inside a MapDomain
 * (kernel: kernel/bpf/arraymap.c fd arrays, hashtab.c htab_of_maps, map_in_map.c).
 *
 * The control plane stores an inner map by its id (the kernel takes an fd and
 * stores the map; a syscall lookup returns the inner map's id, so does this).
 * An inner map must match the template given at creation (type, key and value
 * size, flags; max_entries only matters for array inner maps, which htab does
 * not have), as in bpf_map_meta_equal(): EINVAL otherwise, EBADF for an id
 * that is no map.
 *
 * Programs look an inner map up inside a section of the outer map
 * (`run()`/`enter()`), and use it. Replacing an inner map is one store, so a
 * program sees the old map or the new one; `synchronize()` then waits until
 * every section that could still hold the old one has ended (kernel:
 * synchronize_rcu()), after which the old map is quiet and can be read as a
 * consistent snapshot (the map-in-map swap pattern of docs/map-in-map.md).
 */

import {
  type SyncOptions,
  type SyncReport,
  sectionEnter,
  sectionExit,
  synchronizeBounded,
} from "../alloc/epoch.js";
import type { ArrayMap } from "../array/array-map.js";
import type { Htab } from "../core/htab.js";
import { Errno, invalid } from "../errors.js";
import {
  AOM_MAGIC,
  aomSlotsI32,
  HDR_ACTIVE_I32,
  HDR_FROZEN_I32,
  HDR_KEY_SIZE_I32,
  HDR_MAGIC_I32,
  HDR_MAP_FLAGS_I32,
  HDR_MAP_TYPE_I32,
  HDR_MAX_ENTRIES_I32,
  HDR_NR_CPUS_I32,
  HDR_VALUE_SIZE_I32,
  HDR_VERSION_I32,
  LAYOUT_VERSION,
  PCPU_CLAIM_I32,
  PCPU_OWNER_I32,
  PCPU_SECTION_I32,
  pcpuBase,
} from "../layout/layout.js";
import { poisonClosed } from "../map/closed.js";
import { LastError } from "../map/last-error.js";
import type { BatchArgs, BatchResult, MapInfo } from "../map/raw-map.js";
import { claimSlot, markSlotDead, releaseSlot } from "../sync/slot-claim.js";
import { MapFlags, MapType, UpdateFlags } from "../uapi.js";

import {
  checkInner,
  type InnerMeta,
  type InnerResolver,
  InnerSections,
  type OuterMap,
  putU32,
  readInnerMeta,
  runIn,
  u32At,
  writeInnerMeta,
} from "./inner.js";

const ENOENT = -Errno.ENOENT;
const EINVAL = -Errno.EINVAL;
const E2BIG = -Errno.E2BIG;
const ENOTSUPP = -Errno.ENOTSUPP;
const EPERM = -Errno.EPERM;

/**
 * BPF_MAP_TYPE_ARRAY_OF_MAPS: max_entries slots of u32 inner map ids, 0 = empty.
 * Layout: the hash map header (type, sizes, template, EPOCH/ACTIVE for
 * sections) and per-CPU records, then the slots (layout.ts aomSlotsI32()).
 */
export class ArrayOfMaps implements OuterMap {
  readonly info: MapInfo;
  readonly cpu: number;
  private readonly i32: Int32Array;
  private readonly slots: number;
  private readonly meta: InnerMeta;
  private readonly nrCpus: number;
  private sectionDepth = 0;
  private readonly why = new LastError();
  private closed = false;
  private readonly inner = new InnerSections();

  constructor(
    i32: Int32Array,
    private readonly resolver: InnerResolver,
    id: number,
    cpu: number,
  ) {
    if (i32[HDR_MAGIC_I32] !== AOM_MAGIC || i32[HDR_VERSION_I32] !== LAYOUT_VERSION)
      invalid("attach", "not an ARRAY_OF_MAPS region of this layout version");
    this.i32 = i32;
    this.nrCpus = i32[HDR_NR_CPUS_I32];
    this.slots = aomSlotsI32(this.nrCpus);
    this.meta = readInnerMeta(i32);
    this.info = Object.freeze({
      type: MapType.ArrayOfMaps,
      keySize: 4,
      valueSize: 4,
      maxEntries: i32[HDR_MAX_ENTRIES_I32] >>> 0,
      flags: i32[HDR_MAP_FLAGS_I32],
      nrCpus: this.nrCpus,
      valueBytes: 4,
      id,
    });
    // The domain gives every map its thread's slot; a negative one is a caller bug, not "any".
    if (cpu < 0) invalid("attach", `cpu ${cpu} is not a slot of this map`);
    const owner = (c: number) => pcpuBase(c) + PCPU_OWNER_I32;
    this.cpu = claimSlot(i32, this.nrCpus, owner, (c) => pcpuBase(c) + PCPU_CLAIM_I32, cpu, "this map");
  }

  /** Lay out a fresh ARRAY_OF_MAPS in zeroed `i32`. */
  static init(i32: Int32Array, maxEntries: number, flags: number, nrCpus: number, meta: InnerMeta): void {
    i32[HDR_MAGIC_I32] = AOM_MAGIC;
    i32[HDR_VERSION_I32] = LAYOUT_VERSION;
    i32[HDR_MAP_TYPE_I32] = MapType.ArrayOfMaps;
    i32[HDR_KEY_SIZE_I32] = 4;
    i32[HDR_VALUE_SIZE_I32] = 4;
    i32[HDR_MAX_ENTRIES_I32] = maxEntries;
    i32[HDR_MAP_FLAGS_I32] = flags;
    i32[HDR_NR_CPUS_I32] = nrCpus;
    writeInnerMeta(i32, meta);
  }

  get lastError(): string {
    return this.why.message;
  }

  private fail(err: number, why: string): number {
    return this.why.fail(err, why);
  }

  private index(key: Uint8Array): number {
    if (!(key instanceof Uint8Array) || key.length !== 4)
      invalid("lookup", "key must be a 4-byte Uint8Array");
    return u32At(key);
  }

  private checkValue(op: string, value: Uint8Array): void {
    if (!(value instanceof Uint8Array) || value.length !== 4)
      invalid(op, "value must be a 4-byte Uint8Array");
  }

  lookupElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    const i = this.index(key);
    this.checkValue("lookup", value);
    if ((this.info.flags & MapFlags.Wronly) !== 0) return this.fail(EPERM, "map is BPF_F_WRONLY");
    if (flags !== 0) return this.fail(EINVAL, `lookup flags must be 0 on a map-in-map, got ${flags}`);
    if (i >= this.info.maxEntries) return this.fail(ENOENT, `index ${i} is out of range`);
    const id = Atomics.load(this.i32, this.slots + i);
    if (id === 0) return this.fail(ENOENT, `slot ${i} is empty`);
    putU32(value, id);
    return 0;
  }

  /** Store inner map `value` (its id) at index `key`. Kernel: bpf_fd_array_map_update_elem(). */
  updateElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    const i = this.index(key);
    this.checkValue("update", value);
    if (!this.canWrite()) return this.writeDenied();
    if (flags !== UpdateFlags.Any) return this.fail(EINVAL, "an array of maps takes only BPF_ANY");
    if (i >= this.info.maxEntries)
      return this.fail(E2BIG, `index ${i} is past max_entries ${this.info.maxEntries}`);
    const id = checkInner(this.resolver, this.meta, value, this.why);
    if (id < 0) return id;
    Atomics.store(this.i32, this.slots + i, id); // the swap: programs see the old map or the new one
    return 0;
  }

  deleteElem(key: Uint8Array): number {
    const i = this.index(key);
    if (!this.canWrite()) return this.writeDenied();
    if (i >= this.info.maxEntries)
      return this.fail(E2BIG, `index ${i} is past max_entries ${this.info.maxEntries}`);
    if (Atomics.exchange(this.i32, this.slots + i, 0) === 0) return this.fail(ENOENT, `slot ${i} is empty`);
    return 0;
  }

  lookupAndDeleteElem(key: Uint8Array, _value: Uint8Array, _flags = 0): number {
    this.index(key);
    // Kernel order: read and write permission first (map_lookup_and_delete_elem()).
    if ((this.info.flags & MapFlags.Wronly) !== 0) return this.fail(EPERM, "map is BPF_F_WRONLY");
    if (!this.canWrite()) return this.writeDenied();
    return this.fail(ENOTSUPP, "lookup_and_delete is not supported on an array of maps");
  }

  /** Array order: index + 1; a missing or out-of-range key gives 0. Kernel: array_map_get_next_key(). */
  getNextKey(key: Uint8Array | null, nextKey: Uint8Array): number {
    if (!(nextKey instanceof Uint8Array) || nextKey.length !== 4)
      invalid("getNextKey", "nextKey must be 4 bytes");
    if ((this.info.flags & MapFlags.Wronly) !== 0) return this.fail(EPERM, "map is BPF_F_WRONLY");
    const i = key === null ? 0xffffffff : this.index(key);
    if (i >= this.info.maxEntries) {
      putU32(nextKey, 0);
      return 0;
    }
    if (i === this.info.maxEntries - 1) return this.fail(ENOENT, "last index");
    putU32(nextKey, i + 1);
    return 0;
  }

  private noBatch(args: BatchArgs): BatchResult {
    return {
      err: this.fail(EINVAL, "batch commands are not offered on an array of maps by htab"),
      count: args.count,
      outBatch: null,
      keys: args.keys ?? new Uint8Array(0),
      values: args.values ?? new Uint8Array(0),
    };
  }
  lookupBatch(args: BatchArgs): BatchResult {
    return this.noBatch(args);
  }
  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    return this.noBatch(args);
  }
  updateBatch(args: BatchArgs): BatchResult {
    return this.noBatch(args);
  }
  deleteBatch(args: BatchArgs): BatchResult {
    return this.noBatch(args);
  }

  /** Kernel: BPF_MAP_FREEZE: control-plane writes fail with EPERM afterwards (a second freeze too). */
  freeze(): number {
    if (!this.canWrite()) return this.writeDenied();
    Atomics.store(this.i32, HDR_FROZEN_I32, 1);
    return 0;
  }

  private canWrite(): boolean {
    return (this.info.flags & MapFlags.Rdonly) === 0 && Atomics.load(this.i32, HDR_FROZEN_I32) === 0;
  }

  private writeDenied(): number {
    return this.fail(
      EPERM,
      (this.info.flags & MapFlags.Rdonly) !== 0 ? "map is BPF_F_RDONLY" : "map is frozen",
    );
  }

  /** The value an outer map would store for this map (its id). */
  mapRef(): number {
    return this.info.id;
  }

  memoryUsage(): number {
    return this.i32.byteLength;
  }

  lookupInner(key: Uint8Array): Htab | ArrayMap | null {
    if (this.sectionDepth === 0) invalid("lookupInner", "needs a program section: call it inside run()");
    const i = this.index(key);
    if (i >= this.info.maxEntries) return null;
    const id = Atomics.load(this.i32, this.slots + i);
    return id === 0 ? null : (this.inner.enterInner(this.resolver.mapById(id)) as Htab | ArrayMap | null);
  }

  enter(): void {
    if (this.sectionDepth++ === 0) sectionEnter(this.i32, this.cpu);
  }

  exit(): void {
    if (this.sectionDepth === 0) invalid("exit", "exit() without enter()");
    if (--this.sectionDepth === 0) {
      this.inner.exitAll(); // inner sections first: the outer one guards the pointers to them
      sectionExit(this.i32, this.cpu);
    }
  }

  run<T>(fn: () => T): T {
    return runIn(this, fn);
  }

  synchronize(): void;
  synchronize(opts: SyncOptions & { timeoutMs: number }): SyncReport;
  synchronize(opts?: SyncOptions): SyncReport | undefined {
    if (this.sectionDepth !== 0) invalid("synchronize", "called inside a section: it would wait for itself");
    return synchronizeBounded(this.i32, this.nrCpus, opts);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    while (this.sectionDepth > 0) this.exit();
    poisonClosed(this);
    releaseSlot(this.i32, pcpuBase(this.cpu) + PCPU_OWNER_I32);
  }

  /** Slot `cpu`'s thread is gone: end its section, free its slot (the array has no locks). */
  reap(cpu: number, generation?: number): void {
    const p = pcpuBase(cpu);
    // Free, or a later claim (another thread's) than the one meant: nothing to reap.
    if (!markSlotDead(this.i32, p + PCPU_OWNER_I32, generation)) return;
    if (Atomics.exchange(this.i32, p + PCPU_SECTION_I32, 0) !== 0) Atomics.sub(this.i32, HDR_ACTIVE_I32, 1);
    releaseSlot(this.i32, p + PCPU_OWNER_I32);
  }
}
