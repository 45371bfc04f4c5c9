/**
 * A MapDomain is many maps in one growable SharedArrayBuffer: what the kernel
 * is to BPF maps. Maps get ids (1, 2, …); any thread attached to the domain
 * reaches every map by id, which is what map-in-map needs: an outer map
 * stores inner map ids, and a program in any worker follows them without a
 * message. Maps live as long as the domain (a bump allocator: ids and memory
 * are never reused). Layout: src/layout/layout.ts ("MapDomain").
 *
 * Each attached thread claims one CPU slot in the domain and uses that slot
 * in every map of it (claimed in a map when the thread first touches it).
 */

import { ArrayMap, type ArrayType } from "../array/array-map.js";
import { validateArraySpec } from "../array/spec.js";
import { checkMemory, Htab, type MapHandle } from "../core/htab.js";
import {
  cpuOption,
  defaultNrCpus,
  type MapSpec,
  validateArrayOfMapsSpec,
  validateSpec,
} from "../core/spec.js";
import { BpfError, Errno, invalid, showInput } from "../errors.js";
import type { Geometry } from "../layout/geometry.js";
import {
  type ArrayGeometry,
  aomBytes,
  CACHE_LINE_BYTES,
  DOM_ALLOC_LOCK_I32,
  DOM_COUNT_I32,
  DOM_DIR_ENTRY_BYTES,
  DOM_DIR_LENGTH8_I32,
  DOM_DIR_OFFSET8_I32,
  DOM_DIR_TYPE_I32,
  DOM_MAGIC,
  DOM_MAGIC_I32,
  DOM_MAX_MAPS_I32,
  DOM_MAX8_I32,
  DOM_NR_CPUS_I32,
  DOM_OWNERS_I32,
  DOM_RAW_TYPE,
  DOM_USED8_I32,
  DOM_VERSION_I32,
  domClaimI32,
  domDataBytes,
  domDirI32,
  LAYOUT_VERSION,
  roundUp,
  SLOT_ALIVE,
  SLOT_DEAD,
  WASM_PAGE_BYTES,
} from "../layout/layout.js";
import { poisonClosed } from "../map/closed.js";
import type { RawMap } from "../map/raw-map.js";
import { lastTimeoutOwner, lockAcquire, lockRelease } from "../sync/owner-lock.js";
import {
  checkNotMine,
  claimSlot,
  markSlotDead,
  type Reservation,
  releaseSlot,
  reserveSlot as reserve,
  slotGenerationOf,
  slotStateOf,
  unreserveSlot as unreserve,
} from "../sync/slot-claim.js";
import { lockTimeoutText } from "../sync/spin.js";
import { MapType } from "../uapi.js";
import { allocSharedMemory, type WasmMemory } from "../wasm/fast-path.js";
import { ArrayOfMaps } from "./array-of-maps.js";
import { HashOfMaps } from "./hash-of-maps.js";
import { type InnerMeta, type InnerResolver, type OuterMap, writeInnerMeta } from "./inner.js";

/** The outer map types a MapDomain creates. */
export type OuterType = typeof MapType.ArrayOfMaps | typeof MapType.HashOfMaps;
/** What a domain map is in this thread: each kind can reap a dead slot. */
type DomainMap = Htab | HashOfMaps | ArrayOfMaps | ArrayMap;
/** The hash map types a MapDomain creates (as inner maps or on their own). */
export type HashType =
  | typeof MapType.Hash
  | typeof MapType.PercpuHash
  | typeof MapType.LruHash
  | typeof MapType.LruPercpuHash;

/** What a worker needs to attach to a domain: post it with postMessage. */
export interface DomainHandle {
  readonly sab: SharedArrayBuffer;
  /**
   * The shared wasm memory whose buffer `sab` is (the wasm fast path for
   * every hash map of the domain, in every thread attaching with it).
   */
  readonly memory?: WasmMemory;
}

export interface DomainOptions {
  /** Possible CPUs (worker slots) of every map in the domain. @default navigator.hardwareConcurrency */
  nrCpus?: number;
  /** Most maps the domain can hold (directory entries are 16 bytes each, reserved up front). @default 64 */
  maxMaps?: number;
  /**
   * Bytes of address space to reserve; the buffer grows into it as maps are
   * made. Reserving is cheap (virtual memory); 256 MiB fits a few million
   * small elements. @default 256 MiB
   */
  maxBytes?: number;
  /** Model CAP_SYS_ADMIN (BPF_F_ZERO_SEED). @default false */
  privileged?: boolean;
  /** CPU slot of the creating thread. @default the first free slot */
  cpu?: number;
  /** Put the domain in a shared WebAssembly.Memory: its hash maps run the wasm fast path. @default true where possible */
  fastPath?: boolean;
}

/** A map spec plus, for ARRAY_OF_MAPS / HASH_OF_MAPS, the template inner map. */
export interface DomainMapSpec extends MapSpec {
  /** Template for the inner maps (kernel: inner_map_fd): a map of this domain, or its id. */
  innerMap?: RawMap | number;
}

export class MapDomain implements InnerResolver {
  readonly handle: DomainHandle;
  readonly cpu: number;
  readonly nrCpus: number;
  private readonly i32: Int32Array;
  private readonly maxMaps: number;
  private readonly dir: number;
  private readonly privileged: boolean;
  /** This thread's views of the domain's maps, by id. */
  private readonly views = new Map<number, DomainMap>();
  /** The wasm memory the domain lives in, or null (a growable SharedArrayBuffer). */
  private readonly memory: WasmMemory | null;

  /** The buffer as long as it is now (a wasm memory's `buffer` is a new object after it grows). */
  private buffer(): SharedArrayBuffer {
    return this.memory !== null ? (this.memory.buffer as SharedArrayBuffer) : this.handle.sab;
  }
  private closed = false;

  private constructor(handle: DomainHandle, cpu: number, privileged: boolean) {
    // A growable SAB: a length-tracking view sees it grow. A wasm memory: this
    // view covers the header and directory; maps are viewed through buffer().
    this.i32 = new Int32Array(handle.sab);
    if (this.i32[DOM_MAGIC_I32] !== DOM_MAGIC || this.i32[DOM_VERSION_I32] !== LAYOUT_VERSION)
      invalid("attach", "not a MapDomain buffer of this layout version");
    this.handle = Object.freeze({ ...handle });
    this.memory = handle.memory ?? null;
    this.nrCpus = this.i32[DOM_NR_CPUS_I32];
    this.maxMaps = this.i32[DOM_MAX_MAPS_I32];
    this.dir = domDirI32(this.nrCpus);
    this.privileged = privileged;
    this.cpu = this.claim(cpu);
  }

  /** Create an empty domain; the calling thread takes a CPU slot. */
  static create(opts: DomainOptions = {}): MapDomain {
    const nrCpus = opts.nrCpus ?? defaultNrCpus();
    const maxMaps = opts.maxMaps ?? 64;
    const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
    if (!Number.isInteger(nrCpus) || nrCpus < 1 || nrCpus > 1024)
      invalid("create", `nrCpus must be an integer in [1, 1024], got ${showInput(nrCpus)}`);
    if (!Number.isInteger(maxMaps) || maxMaps < 1 || maxMaps > 1 << 20)
      invalid("create", `maxMaps must be an integer in [1, 2^20], got ${showInput(maxMaps)}`);
    const base = domDataBytes(nrCpus, maxMaps);
    if (!Number.isInteger(maxBytes) || maxBytes < base)
      invalid("create", `maxBytes must be at least ${base}`);
    let sab: SharedArrayBuffer;
    let memory: WasmMemory | null = null;
    try {
      if (opts.fastPath !== false) memory = allocSharedMemory(base, maxBytes);
      sab =
        memory !== null
          ? (memory.buffer as SharedArrayBuffer)
          : new SharedArrayBuffer(base, { maxByteLength: roundUp(maxBytes, 8) });
    } catch (e) {
      throw new BpfError("create", Errno.ENOMEM, `cannot reserve ${maxBytes} bytes: ${(e as Error).message}`);
    }
    const i32 = new Int32Array(sab);
    i32[DOM_MAGIC_I32] = DOM_MAGIC;
    i32[DOM_VERSION_I32] = LAYOUT_VERSION;
    i32[DOM_NR_CPUS_I32] = nrCpus;
    i32[DOM_MAX_MAPS_I32] = maxMaps;
    i32[DOM_USED8_I32] = base / 8;
    i32[DOM_MAX8_I32] = Math.floor(
      (memory !== null ? roundUp(maxBytes, WASM_PAGE_BYTES) : roundUp(maxBytes, 8)) / 8,
    );
    const handle = memory !== null ? { sab, memory } : { sab };
    return new MapDomain(handle, cpuOption("create", opts.cpu, nrCpus), opts.privileged === true);
  }

  /** Attach to a domain made elsewhere (typically in another worker). */
  static attach(handle: DomainHandle, opts: { cpu?: number; privileged?: boolean } = {}): MapDomain {
    if (!(handle?.sab instanceof SharedArrayBuffer)) invalid("attach", "handle is not a MapDomain handle");
    const cpu = cpuOption(
      "attach",
      opts.cpu,
      new Int32Array(handle.sab, 0, DOM_NR_CPUS_I32 + 1)[DOM_NR_CPUS_I32],
    );
    if (handle.memory !== undefined) checkMemory(handle.memory);
    return new MapDomain(handle, cpu, opts.privileged === true);
  }

  private claim(want: number): number {
    const n = this.nrCpus;
    return claimSlot(
      this.i32,
      n,
      (c) => DOM_OWNERS_I32 + c,
      (c) => domClaimI32(n, c),
      want,
      "the domain",
    );
  }

  /** Number of maps created so far (ids 1..count). */
  get count(): number {
    return Atomics.load(this.i32, DOM_COUNT_I32);
  }

  /** Bytes of the buffer in use. */
  memoryUsage(): number {
    return Atomics.load(this.i32, DOM_USED8_I32) * 8;
  }

  /**
   * Create a map in the domain (kernel: BPF_MAP_CREATE). Hash types as
   * Htab.create(); ARRAY_OF_MAPS and HASH_OF_MAPS need `innerMap`.
   * @throws BpfError as validateSpec(), EINVAL for a bad template, ENOSPC when the domain is full
   */
  createMap(spec: DomainMapSpec & { type: OuterType }): OuterMap;
  createMap(spec: DomainMapSpec & { type: HashType }): Htab;
  createMap(spec: DomainMapSpec & { type: ArrayType }): ArrayMap;
  createMap(spec: DomainMapSpec): RawMap;
  createMap(spec: DomainMapSpec): RawMap {
    if (this.closed) invalid("create", "the domain was closed");
    const outer = spec.type === MapType.ArrayOfMaps || spec.type === MapType.HashOfMaps;
    let meta: InnerMeta | null = null;
    if (outer) meta = this.template(spec);
    else if (spec.innerMap !== undefined)
      invalid("create", "inner_map is only for ARRAY_OF_MAPS and HASH_OF_MAPS");
    const { bytes, g, ag } = this.validate(spec);
    const { id, offset } = this.allocate(bytes, spec.type);
    const sab = this.buffer();
    let m: DomainMap;
    try {
      let made: Htab | ArrayMap | undefined;
      if (ag !== null) made = ArrayMap.createIn(this.mapHandle(sab, offset, bytes, id), spec, ag, this.cpu);
      else if (g === null)
        ArrayOfMaps.init(
          new Int32Array(sab, offset, bytes / 4),
          spec.maxEntries,
          spec.flags ?? 0,
          this.nrCpus,
          meta as InnerMeta,
        );
      else {
        made = Htab.createIn(this.mapHandle(sab, offset, bytes, id), spec, g, this.cpu);
        if (spec.type === MapType.HashOfMaps)
          writeInnerMeta(new Int32Array(sab, offset, 64), meta as InnerMeta);
      }
      m = this.view(spec.type, offset, bytes, id, made);
    } catch (err) {
      lockRelease(this.i32, DOM_ALLOC_LOCK_I32); // the region stays unused; the id is not published
      throw err;
    }
    this.publish(id);
    this.views.set(id, m);
    return m;
  }

  /**
   * Carve `bytes` of zeroed memory that is no map (layout.ts DOM_RAW_TYPE):
   * a loaded BPF object's globals and its programs' run areas, which must
   * live in the same memory as its maps. Lives as long as the domain.
   * @returns the region's id (which names no map) and its byte offset, 64-byte aligned
   * @throws BpfError ENOSPC when the directory is full, ENOMEM when the memory is
   */
  allocRaw(bytes: number): { id: number; offset: number } {
    if (this.closed) invalid("allocRaw", "the domain was closed");
    if (!Number.isInteger(bytes) || bytes < 1)
      invalid("allocRaw", `bytes must be a positive integer, got ${showInput(bytes)}`);
    const r = this.allocate(roundUp(bytes, 8), DOM_RAW_TYPE);
    this.publish(r.id);
    return r;
  }

  /** The byte offset of raw region `id` (allocRaw() in any thread), or -1 when `id` is not one. */
  rawOffset(id: number): number {
    if (!Number.isInteger(id) || id < 1 || id > Atomics.load(this.i32, DOM_COUNT_I32)) return -1;
    const e = this.dir + (id - 1) * (DOM_DIR_ENTRY_BYTES >> 2);
    return this.i32[e + DOM_DIR_TYPE_I32] === DOM_RAW_TYPE ? this.i32[e + DOM_DIR_OFFSET8_I32] * 8 : -1;
  }

  /** Validate `spec` as BPF_MAP_CREATE would, for its kind of map; its geometry and bytes. */
  private validate(spec: DomainMapSpec): { bytes: number; g: Geometry | null; ag: ArrayGeometry | null } {
    if (spec.type === MapType.Array || spec.type === MapType.PercpuArray) {
      const ag = validateArraySpec(spec, this.nrCpus);
      return { bytes: ag.totalBytes, g: null, ag };
    }
    if (spec.type === MapType.ArrayOfMaps) {
      validateArrayOfMapsSpec(spec);
      return { bytes: aomBytes(this.nrCpus, spec.maxEntries), g: null, ag: null };
    }
    const g = validateSpec(spec, this.nrCpus, this.privileged);
    if (spec.spinLockOffset !== undefined && spec.type === MapType.HashOfMaps)
      invalid("create", "a hash of maps has no bpf_spin_lock");
    return { bytes: g.totalBytes, g, ag: null };
  }

  private template(spec: DomainMapSpec): InnerMeta {
    const t = spec.innerMap;
    const inner = typeof t === "number" ? this.mapById(t) : t === undefined ? null : t;
    if (inner === null)
      invalid("create", "a map-in-map needs innerMap, a template map of this domain (kernel: inner_map_fd)");
    if (typeof t !== "number" && this.mapById(inner.info.id) !== inner)
      invalid("create", "the inner map template must be a map of this domain");
    const i = inner.info;
    if (i.type === MapType.ArrayOfMaps || i.type === MapType.HashOfMaps)
      invalid("create", "the inner map template cannot itself be a map-in-map");
    return {
      type: i.type,
      keySize: i.keySize,
      valueSize: i.valueSize,
      maxEntries: i.maxEntries,
      flags: i.flags,
    };
  }

  /** Carve `bytes` (a multiple of 8) for a new map. Its directory entry is published by publish(). */
  private allocate(bytes: number, type: number): { id: number; offset: number } {
    const i32 = this.i32;
    if (!lockAcquire(i32, DOM_ALLOC_LOCK_I32, this.cpu))
      throw new BpfError(
        "create",
        Errno.ETIMEDOUT,
        lockTimeoutText("the domain's allocation lock", `held by CPU slot ${lastTimeoutOwner()}`),
      );
    try {
      const n = i32[DOM_COUNT_I32];
      if (n >= this.maxMaps)
        throw new BpfError("create", Errno.ENOSPC, `the domain holds its maximum of ${this.maxMaps} maps`);
      const offset = i32[DOM_USED8_I32] * 8;
      const end = offset + roundUp(bytes, CACHE_LINE_BYTES); // the next map starts on a cache line
      const max = i32[DOM_MAX8_I32] * 8;
      if (end > max)
        throw new BpfError(
          "create",
          Errno.ENOMEM,
          `the domain has ${max - offset} bytes left, the map needs ${bytes}`,
        );
      // Grown under the alloc lock, so one thread grows at a time.
      const have = this.buffer().byteLength;
      if (have < end) {
        if (this.memory !== null) this.memory.grow(Math.ceil((end - have) / WASM_PAGE_BYTES));
        else this.handle.sab.grow(end);
      }
      const e = this.dir + n * (DOM_DIR_ENTRY_BYTES >> 2);
      i32[e + DOM_DIR_OFFSET8_I32] = offset / 8;
      i32[e + DOM_DIR_LENGTH8_I32] = bytes / 8;
      i32[e + DOM_DIR_TYPE_I32] = type;
      i32[DOM_USED8_I32] = end / 8;
      return { id: n + 1, offset };
    } catch (err) {
      lockRelease(i32, DOM_ALLOC_LOCK_I32);
      throw err;
    }
  }

  /** The map's region is initialised: make it visible to other threads, and drop the lock. */
  private publish(id: number): void {
    Atomics.store(this.i32, DOM_COUNT_I32, id);
    lockRelease(this.i32, DOM_ALLOC_LOCK_I32);
  }

  /** This thread's view of map `id`, or null if there is none. Kernel: bpf_map_get_fd_by_id(). */
  mapById(id: number): RawMap | null {
    return this.viewOf(id);
  }

  private viewOf(id: number): DomainMap | null {
    const seen = this.views.get(id);
    if (seen !== undefined) return seen;
    if (!Number.isInteger(id) || id < 1 || id > Atomics.load(this.i32, DOM_COUNT_I32)) return null;
    const e = this.dir + (id - 1) * (DOM_DIR_ENTRY_BYTES >> 2);
    if (this.i32[e + DOM_DIR_TYPE_I32] === DOM_RAW_TYPE) return null;
    const m = this.view(
      this.i32[e + DOM_DIR_TYPE_I32],
      this.i32[e + DOM_DIR_OFFSET8_I32] * 8,
      this.i32[e + DOM_DIR_LENGTH8_I32] * 8,
      id,
    );
    this.views.set(id, m);
    return m;
  }

  /**
   * This thread's object for the map of `type` at [offset, offset+length):
   * the hash map (`made`, or attached in this thread's slot), or the outer
   * map around its region.
   */
  private view(type: number, offset: number, length: number, id: number, made?: Htab | ArrayMap): DomainMap {
    const sab = this.buffer();
    if (type === MapType.ArrayOfMaps)
      return new ArrayOfMaps(new Int32Array(sab, offset, length / 4), this, id, this.cpu);
    if (made instanceof ArrayMap) return made;
    if (type === MapType.Array || type === MapType.PercpuArray)
      return ArrayMap.attach(this.mapHandle(sab, offset, length, id), { cpu: this.cpu });
    const h = made ?? Htab.attach(this.mapHandle(sab, offset, length, id), { cpu: this.cpu });
    return type === MapType.HashOfMaps ? new HashOfMaps(h, new Int32Array(sab, offset, 64), this) : h;
  }

  /** The handle of the map at [offset, offset + length) of `sab` (with the wasm memory, if any). */
  private mapHandle(sab: SharedArrayBuffer, offset: number, length: number, id: number): MapHandle {
    return this.memory !== null
      ? { sab, offset, length, id, memory: this.memory }
      : { sab, offset, length, id };
  }

  /** Whether domain slot `cpu` is taken by a live thread, being recovered, or free. Can be late. */
  slotState(cpu: number): "alive" | "dead" | "free" {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.nrCpus) invalid("slotState", `no CPU slot ${cpu}`);
    const s = slotStateOf(Atomics.load(this.i32, DOM_OWNERS_I32 + cpu));
    return s === SLOT_ALIVE ? "alive" : s === SLOT_DEAD ? "dead" : "free";
  }

  /** Reserve free domain slot `cpu` for a worker that attaches with `{ cpu }` (see Htab.reserveSlot()). */
  reserveSlot(cpu: number): Reservation {
    this.slotArg("reserveSlot", cpu);
    return reserve(this.i32, DOM_OWNERS_I32 + cpu, domClaimI32(this.nrCpus, cpu));
  }

  /** Drop this thread's reservation of domain slot `cpu` (see Htab.unreserveSlot()). */
  unreserveSlot(cpu: number): void {
    this.slotArg("unreserveSlot", cpu);
    unreserve(this.i32, domClaimI32(this.nrCpus, cpu));
  }

  /** Who claimed domain slot `cpu` last (see Htab.slotClaim()). */
  slotClaim(cpu: number): number {
    this.slotArg("slotClaim", cpu);
    return Atomics.load(this.i32, domClaimI32(this.nrCpus, cpu));
  }

  private slotArg(op: string, cpu: number): void {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.nrCpus) invalid(op, `no CPU slot ${cpu}`);
  }

  /** Domain slot `cpu`'s claim generation (see Htab.slotGeneration()). */
  slotGeneration(cpu: number): number {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.nrCpus)
      invalid("slotGeneration", `no CPU slot ${cpu}`);
    return slotGenerationOf(Atomics.load(this.i32, DOM_OWNERS_I32 + cpu));
  }

  /** Give back this thread's slot in every map it touched and in the domain. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const m of this.views.values()) m.close();
    this.views.clear();
    poisonClosed(this, "domain");
    releaseSlot(this.i32, DOM_OWNERS_I32 + this.cpu);
  }

  /**
   * The thread holding domain slot `cpu` is gone: recover its slot in every
   * hash map of the domain (see Htab.reap()) and free it.
   */
  reap(cpu: number, generation?: number, token?: number): void {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.nrCpus || cpu === this.cpu)
      invalid("reap", `cannot reap slot ${cpu}`);
    const idx = DOM_OWNERS_I32 + cpu;
    const claim = domClaimI32(this.nrCpus, cpu);
    checkNotMine("reap", this.i32, idx, claim, cpu);
    // With `token`: only a claim by that thread (a slot another thread claimed is left alone).
    if (token !== undefined && Atomics.load(this.i32, claim) !== token) return;
    // A later claim of the domain slot (another thread's) is not the one meant: leave it, and its maps, alone.
    if (!markSlotDead(this.i32, idx, generation) && generation !== undefined) return;
    for (let id = 1; id <= this.count; id++) this.viewOf(id)?.reap(cpu);
    releaseSlot(this.i32, idx);
  }
}
