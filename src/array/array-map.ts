/**
 * BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY in shared memory (kernel:
 * kernel/bpf/arraymap.c), with the kernel's flags, errno and order:
 *
 * - keys are u32 indices below max_entries; every element exists from
 *   create on, zeroed, and is never deleted (delete: EINVAL);
 * - update: BPF_ANY and BPF_EXIST write, BPF_NOEXIST is EEXIST, an index
 *   past the end E2BIG; lookup of such an index ENOENT;
 * - get_next_key: index + 1; NULL or an index past the end gives 0, the
 *   last index ENOENT;
 * - the generic batch calls (lookup_batch, update_batch: key cursors as
 *   generic_map_lookup_batch() keeps them); lookup_and_delete, its batch
 *   and delete_batch are ENOTSUPP (524);
 * - BPF_F_LOCK copies under the value's bpf_spin_lock; freeze; BPF_F_RDONLY
 *   / WRONLY for the syscall side, BPF_F_RDONLY_PROG / WRONLY_PROG for programs;
 * - PERCPU_ARRAY values move as nrCpus x round_up(value_size, 8) bytes, as
 *   the kernel's syscall side moves them (padding bytes included).
 *
 * Beyond the kernel: a lookup never returns a torn value while control-plane
 * writers (and program updates through updateElemFromProgram()) change the
 * element. Each element has a writer lock and a sequence word (layout.ts,
 * "ARRAY / PERCPU_ARRAY region"): a writer holds the lock and makes the
 * sequence odd while it copies; a lookup copies between two equal even reads,
 * and after SPIN_LIMIT tries (writers keeping the element busy) under the lock.
 * A sequence word was chosen over the value's bpf_spin_lock because most
 * values have none, and a reader that only validates never blocks a writer.
 *
 * One object per thread per map, bound to a CPU slot as a hash map's is:
 * post `map.handle` to a worker and `attach()` there.
 */

import {
  type SyncOptions,
  type SyncReport,
  sectionEnter,
  sectionExit,
  synchronizeBounded,
} from "../alloc/epoch.js";
import type { AttachOptions, MapHandle } from "../core/map-handle.js";
import { defaultNrCpus, type SabCreateOptions } from "../core/spec.js";
import { ValueRef } from "../core/value-ref.js";
import { BpfError, Errno, invalid, showInput } from "../errors.js";
import {
  ARR_ELEM_LOCK_I32,
  ARR_ELEM_SEQ_I32,
  ARR_PCPU_WRITING_I32,
  ARRAY_MAGIC,
  type ArrayGeometry,
  arrayElemI32,
  arrayGeometry,
  arrayValueOff,
  HDR_ACTIVE_I32,
  HDR_ELEM_SIZE_I32,
  HDR_ELEMS_I32,
  HDR_FROZEN_I32,
  HDR_KEY_SIZE_I32,
  HDR_MAGIC_I32,
  HDR_MAP_FLAGS_I32,
  HDR_MAP_TYPE_I32,
  HDR_MAX_ENTRIES_I32,
  HDR_NONCE_I32,
  HDR_NR_CPUS_I32,
  HDR_RECOVERED_I32,
  HDR_RECOVERY_LOCK_I32,
  HDR_SPIN_LOCK_OFF_I32,
  HDR_TOTAL_BYTES_I32,
  HDR_VALUE_SIZE_I32,
  HDR_VERSION_I32,
  HEADER_BYTES,
  LAYOUT_VERSION,
  PCPU_CLAIM_I32,
  PCPU_OWNER_I32,
  PCPU_SECTION_I32,
  pcpuBase,
  SLOT_ALIVE,
  SLOT_DEAD,
} from "../layout/layout.js";
import { poisonClosed } from "../map/closed.js";
import { LastError } from "../map/last-error.js";
import type { BatchArgs, BatchResult, MapInfo, RawMap } from "../map/raw-map.js";
import type { MapSpec } from "../map/spec.js";
import { lastTimeoutOwner, lockAcquire, lockOwner, lockRelease, lockTry } from "../sync/owner-lock.js";
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
import {
  cpuRelax,
  LOCK_TIMEOUT_MS,
  lockTimeoutText,
  nowMs,
  SPIN_LIMIT,
  setStallHandler,
} from "../sync/spin.js";
import { hasLockFlag, MapFlags, MapType, UpdateFlags, withoutLockFlag } from "../uapi.js";
import { cpuOption, validateArraySpec } from "./spec.js";

const ENOENT = -Errno.ENOENT;
const EINVAL = -Errno.EINVAL;
const EEXIST = -Errno.EEXIST;
const E2BIG = -Errno.E2BIG;
const EPERM = -Errno.EPERM;
const EACCES = -Errno.EACCES;
const ENOTSUPP = -Errno.ENOTSUPP;
const ETIMEDOUT = -Errno.ETIMEDOUT;

/** What fsck() found. Requires no concurrent writers to be exact. */
export interface ArrayFsckReport {
  ok: boolean;
  errors: string[];
  /** max_entries: every element of an array exists. */
  elements: number;
  /** Slots whose program section is open (as Htab.fsck() reports them). */
  openSections: { slot: number; state: "alive" | "dead" | "free" }[];
}

/** The map types an ArrayMap is. */
export type ArrayType = typeof MapType.Array | typeof MapType.PercpuArray;

/**
 * What a worker needs to attach to an array: post it with postMessage.
 * `array: true` tells attach() (api/create.ts) which map type to make.
 */
export interface ArrayHandle extends MapHandle {
  readonly array: true;
}

/**
 * An ARRAY or PERCPU_ARRAY map in a SharedArrayBuffer; every thread that
 * attaches gets its own object over the same memory and its own CPU slot.
 */
export class ArrayMap implements RawMap {
  readonly info: MapInfo;
  /** Post this to a worker; `attach(handle)` there gives the same map. */
  readonly handle: ArrayHandle;
  /** This object's CPU slot: a program update of a PERCPU_ARRAY writes its value slot. */
  readonly cpu: number;
  private readonly g: ArrayGeometry;
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;
  private readonly u8: Uint8Array;
  private readonly flags: number;
  private readonly spinLockOff: number;
  private readonly maxEntries: number;
  private readonly valueSize: number;
  /** Bytes a syscall lookup or update moves (info.valueBytes). */
  private readonly valueBytes: number;
  private readonly err = new LastError();
  private readonly liveGen = new Int32Array(1);
  private sectionDepth = 0;
  private closed = false;

  private constructor(handle: MapHandle, cpu: number) {
    const off = handle.offset ?? 0;
    const sab = handle.sab;
    if (!(sab instanceof SharedArrayBuffer)) invalid("attach", "handle.sab is not a SharedArrayBuffer");
    if (off % 8 !== 0 || sab.byteLength - off < HEADER_BYTES)
      invalid("attach", "the handle does not hold an array map");
    const head = new Int32Array(sab, off, HEADER_BYTES >> 2);
    if (head[HDR_MAGIC_I32] !== ARRAY_MAGIC || head[HDR_VERSION_I32] !== LAYOUT_VERSION)
      invalid("attach", "not an ARRAY or PERCPU_ARRAY map of this layout version");
    const type = head[HDR_MAP_TYPE_I32];
    const g = arrayGeometry(
      type === MapType.PercpuArray,
      head[HDR_VALUE_SIZE_I32],
      head[HDR_MAX_ENTRIES_I32] >>> 0,
      head[HDR_NR_CPUS_I32],
    );
    if (
      g.stride !== head[HDR_ELEM_SIZE_I32] ||
      g.elemsBytes !== head[HDR_ELEMS_I32] * 4 ||
      g.totalBytes / 64 !== head[HDR_TOTAL_BYTES_I32] >>> 0 ||
      sab.byteLength - off < g.totalBytes ||
      (handle.length !== undefined && handle.length < g.totalBytes)
    )
      invalid("attach", "the array's header does not match its buffer (corrupt, or not an array map)");
    this.g = g;
    this.i32 = new Int32Array(sab, off, g.totalBytes >> 2);
    this.i64 = new BigInt64Array(sab, off, g.totalBytes >> 3);
    this.u8 = new Uint8Array(sab, off, g.totalBytes);
    this.flags = head[HDR_MAP_FLAGS_I32];
    this.spinLockOff = head[HDR_SPIN_LOCK_OFF_I32];
    this.maxEntries = g.maxEntries;
    this.valueSize = g.valueSize;
    this.valueBytes = g.percpu ? g.valueBytesStored : g.valueSize;
    this.info = Object.freeze({
      type,
      keySize: 4,
      valueSize: g.valueSize,
      maxEntries: g.maxEntries,
      flags: this.flags,
      nrCpus: g.nrCpus,
      valueBytes: this.valueBytes,
      id: handle.id ?? 0,
    });
    this.handle = Object.freeze({ ...handle, array: true as const });
    const n = g.nrCpus;
    this.cpu = claimSlot(
      this.i32,
      n,
      (c) => pcpuBase(c) + PCPU_OWNER_I32,
      (c) => pcpuBase(c) + PCPU_CLAIM_I32,
      cpu,
      "this map",
    );
    setStallHandler(this.i32, () => {
      this.recoverDeadSlots();
    });
  }

  /**
   * Create an ARRAY or PERCPU_ARRAY map (kernel: BPF_MAP_CREATE) in a new
   * SharedArrayBuffer; the calling thread takes a CPU slot. Every element is
   * there, zeroed. (`fastPath`, `memory` and `homeElements` are for hash maps.)
   * @throws BpfError EINVAL, E2BIG, EACCES, EOPNOTSUPP, ENOMEM (validateArraySpec())
   */
  static create(spec: MapSpec, opts: SabCreateOptions = {}): ArrayMap {
    const nrCpus = opts.nrCpus ?? defaultNrCpus();
    const g = validateArraySpec(spec, nrCpus);
    const cpu = cpuOption("create", opts.cpu, nrCpus);
    let sab: SharedArrayBuffer;
    try {
      sab = new SharedArrayBuffer(g.totalBytes);
    } catch (e) {
      throw new BpfError(
        "create",
        Errno.ENOMEM,
        `cannot allocate ${g.totalBytes} bytes: ${(e as Error).message}`,
      );
    }
    ArrayMap.init(new Int32Array(sab), g, spec);
    return new ArrayMap({ sab }, cpu);
  }

  /**
   * Create an array inside a MapDomain's buffer at `handle.offset`
   * (`g.totalBytes` zeroed bytes). Requires: validateArraySpec() gave `g`.
   */
  static createIn(handle: MapHandle, spec: MapSpec, g: ArrayGeometry, cpu: number): ArrayMap {
    ArrayMap.init(new Int32Array(handle.sab, handle.offset ?? 0, g.totalBytes >> 2), g, spec);
    return new ArrayMap({ ...handle, length: g.totalBytes }, cpu);
  }

  /** Write the header of a fresh array into zeroed `i32`. */
  private static init(i32: Int32Array, g: ArrayGeometry, spec: MapSpec): void {
    i32[HDR_MAGIC_I32] = ARRAY_MAGIC;
    i32[HDR_VERSION_I32] = LAYOUT_VERSION;
    i32[HDR_MAP_TYPE_I32] = spec.type;
    i32[HDR_KEY_SIZE_I32] = 4;
    i32[HDR_VALUE_SIZE_I32] = spec.valueSize;
    i32[HDR_MAX_ENTRIES_I32] = spec.maxEntries;
    i32[HDR_MAP_FLAGS_I32] = spec.flags ?? 0;
    i32[HDR_NR_CPUS_I32] = g.nrCpus;
    i32[HDR_ELEM_SIZE_I32] = g.stride;
    i32[HDR_ELEMS_I32] = g.elemsBytes >> 2;
    i32[HDR_TOTAL_BYTES_I32] = g.totalBytes / 64;
    i32[HDR_SPIN_LOCK_OFF_I32] = spec.spinLockOffset ?? -1;
    i32[HDR_NONCE_I32] = (Math.random() * 0x7fffffff) | 1;
  }

  /**
   * Attach to an array created elsewhere (typically in another worker).
   * @throws BpfError EINVAL for a buffer that holds no array, EBUSY when every CPU slot is taken
   */
  static attach(handle: MapHandle | SharedArrayBuffer, opts: AttachOptions = {}): ArrayMap {
    const h: MapHandle =
      handle instanceof SharedArrayBuffer ? { sab: handle } : ((handle ?? {}) as MapHandle);
    if (!(h.sab instanceof SharedArrayBuffer)) invalid("attach", "handle is not a map handle");
    const nrCpus =
      h.sab.byteLength - (h.offset ?? 0) >= HEADER_BYTES
        ? new Int32Array(h.sab, h.offset ?? 0, HEADER_BYTES >> 2)[HDR_NR_CPUS_I32]
        : 1;
    return new ArrayMap(h, cpuOption("attach", opts?.cpu, Math.max(1, nrCpus)));
  }

  /** Whether `sab` (at `offset`) holds an array map: attach() of the api layer asks it. */
  static holdsArray(sab: SharedArrayBuffer, offset = 0): boolean {
    return (
      sab instanceof SharedArrayBuffer &&
      sab.byteLength - offset >= HEADER_BYTES &&
      new Int32Array(sab, offset, 1)[0] === ARRAY_MAGIC
    );
  }

  get lastError(): string {
    return this.err.message;
  }

  // ------------------------------------------------------------ arguments

  private index(op: string, key: unknown): number {
    if (!(key instanceof Uint8Array)) invalid(op, `key must be a Uint8Array, got ${showInput(key)}`);
    if (key.length !== 4) invalid(op, `key is ${key.length} bytes, an array's key_size is 4`);
    return (key[0] | (key[1] << 8) | (key[2] << 16) | (key[3] << 24)) >>> 0;
  }

  private valueIn(op: string, value: unknown): asserts value is Uint8Array {
    if (!(value instanceof Uint8Array)) invalid(op, `value must be a Uint8Array, got ${showInput(value)}`);
    if (value.length !== this.valueBytes)
      invalid(op, `value is ${value.length} bytes, the map takes ${this.valueBytes} per value`);
  }

  private valueOut(op: string, value: unknown): asserts value is Uint8Array {
    if (!(value instanceof Uint8Array))
      invalid(op, `value buffer must be a Uint8Array, got ${showInput(value)}`);
    if (value.length < this.valueBytes)
      invalid(op, `value buffer is ${value.length} bytes, the map moves ${this.valueBytes} per value`);
  }

  private flagsArg(op: string, flags: unknown): asserts flags is number {
    if (typeof flags !== "number" || !Number.isInteger(flags) || flags < 0 || flags > Number.MAX_SAFE_INTEGER)
      invalid(op, `flags must be a non-negative integer, got ${showInput(flags)}`);
  }

  private get canRead(): boolean {
    return (this.flags & MapFlags.Wronly) === 0;
  }

  /** Control-plane writes are allowed: not BPF_F_RDONLY, not frozen. */
  get writable(): boolean {
    return (this.flags & MapFlags.Rdonly) === 0 && Atomics.load(this.i32, HDR_FROZEN_I32) === 0;
  }

  private readDenied(): number {
    return this.err.fail(EPERM, "map is BPF_F_WRONLY for the control plane");
  }

  private writeDenied(): number {
    return this.err.fail(
      EPERM,
      (this.flags & MapFlags.Rdonly) !== 0 ? "map is BPF_F_RDONLY for the control plane" : "map is frozen",
    );
  }

  private noSpinLock(): number {
    return this.err.fail(EINVAL, "BPF_F_LOCK on a map whose value has no bpf_spin_lock");
  }

  // ------------------------------------------------------------ the element protocol

  /**
   * Copy element `i`'s value out (the syscall's bytes: value_size, or every
   * CPU's round_up(value_size, 8) slot) into `out` at `outOff`, untorn:
   * between two equal even sequence reads. Writers that keep the element
   * busy could starve such a reader, so after SPIN_LIMIT tries it takes the
   * element's writer lock and copies under it (bounded by LOCK_TIMEOUT_MS).
   * The spin lock word reads as zero.
   * @returns 0 or -ETIMEDOUT (a writer kept the element past LOCK_TIMEOUT_MS)
   */
  private copyOut(i: number, out: Uint8Array, outOff: number): number {
    const i32 = this.i32;
    const u8 = this.u8;
    const seq = arrayElemI32(this.g, i) + ARR_ELEM_SEQ_I32;
    const src = arrayValueOff(this.g, i);
    const n = this.valueBytes;
    for (let tries = 0; tries < SPIN_LIMIT; tries++) {
      const s = Atomics.load(i32, seq);
      if ((s & 1) === 0) {
        for (let k = 0; k < n; k++) out[outOff + k] = u8[src + k];
        if (Atomics.load(i32, seq) === s) {
          this.zeroLock(out, outOff);
          return 0;
        }
      }
      cpuRelax(i32, seq);
    }
    return this.copyOutWriterLocked(i, out, outOff);
  }

  /** copyOut() holding element `i`'s writer lock: no writer can be in it. @returns 0 or -ETIMEDOUT */
  private copyOutWriterLocked(i: number, out: Uint8Array, outOff: number): number {
    const e = this.lockElem(i);
    if (e < 0) return e;
    const u8 = this.u8;
    const src = arrayValueOff(this.g, i);
    const n = this.valueBytes;
    for (let k = 0; k < n; k++) out[outOff + k] = u8[src + k];
    this.unlockElem(e);
    this.zeroLock(out, outOff);
    return 0;
  }

  /** The bpf_spin_lock word of a copied-out value reads as zero (kernel: check_and_init_map_value()). */
  private zeroLock(out: Uint8Array, outOff: number): void {
    const lo = this.spinLockOff;
    if (lo >= 0) out.fill(0, outOff + lo, outOff + lo + 4);
  }

  /**
   * Take element `i`'s writer lock (recording it for a recoverer, should this
   * thread die holding it). @returns the element's word index, or -ETIMEDOUT
   */
  private lockElem(i: number): number {
    const i32 = this.i32;
    const e = arrayElemI32(this.g, i);
    const mine = pcpuBase(this.cpu) + ARR_PCPU_WRITING_I32;
    i32[mine] = i + 1;
    if (!lockAcquire(i32, e + ARR_ELEM_LOCK_I32, this.cpu)) {
      i32[mine] = 0;
      return this.err.fail(
        ETIMEDOUT,
        lockTimeoutText("the element's writer lock", `held by CPU slot ${lastTimeoutOwner()}`),
      );
    }
    return e;
  }

  private unlockElem(e: number): void {
    lockRelease(this.i32, e + ARR_ELEM_LOCK_I32);
    this.i32[pcpuBase(this.cpu) + ARR_PCPU_WRITING_I32] = 0;
  }

  /** Take element `i`'s writer lock and make its sequence odd. @returns the element's word index, or -ETIMEDOUT */
  private beginWrite(i: number): number {
    const e = this.lockElem(i);
    if (e >= 0) Atomics.add(this.i32, e + ARR_ELEM_SEQ_I32, 1);
    return e;
  }

  private endWrite(e: number): void {
    Atomics.add(this.i32, e + ARR_ELEM_SEQ_I32, 1);
    this.unlockElem(e);
  }

  /**
   * Write `value` (from `valOff`, `n` bytes) into element `i` at byte `at` of
   * its stored value, skipping the spin lock word; with `locked`, under the
   * value's bpf_spin_lock (kernel: copy_map_value_locked()).
   * @returns 0 or -ETIMEDOUT (nothing written)
   */
  private writeIn(
    i: number,
    at: number,
    value: Uint8Array,
    valOff: number,
    n: number,
    locked: boolean,
  ): number {
    const e = this.beginWrite(i);
    if (e < 0) return e;
    const dst = arrayValueOff(this.g, i) + at;
    const lockIdx = (arrayValueOff(this.g, i) + this.spinLockOff) >> 2;
    if (locked && !lockAcquire(this.i32, lockIdx, this.cpu)) {
      this.endWrite(e);
      return this.err.fail(
        ETIMEDOUT,
        lockTimeoutText("the value's bpf_spin_lock", `held by CPU slot ${lastTimeoutOwner()}`),
      );
    }
    const u8 = this.u8;
    const lo = this.spinLockOff >= 0 && !this.g.percpu ? this.spinLockOff - at : -8;
    for (let k = 0; k < n; k++) if (k < lo || k >= lo + 4) u8[dst + k] = value[valOff + k];
    if (locked) lockRelease(this.i32, lockIdx);
    this.endWrite(e);
    return 0;
  }

  /** Copy element `i` out under the value's bpf_spin_lock (BPF_F_LOCK lookups). @returns 0 or -ETIMEDOUT */
  private copyOutLocked(i: number, out: Uint8Array, outOff: number): number {
    const src = arrayValueOff(this.g, i);
    const lockIdx = (src + this.spinLockOff) >> 2;
    if (!lockAcquire(this.i32, lockIdx, this.cpu))
      return this.err.fail(
        ETIMEDOUT,
        lockTimeoutText("the value's bpf_spin_lock", `held by CPU slot ${lastTimeoutOwner()}`),
      );
    const u8 = this.u8;
    for (let k = 0; k < this.valueSize; k++) out[outOff + k] = u8[src + k];
    lockRelease(this.i32, lockIdx);
    this.zeroLock(out, outOff);
    return 0;
  }

  // ------------------------------------------------------------ element calls

  /**
   * Copy index `key`'s value into `value`.
   * @returns 0, -ENOENT (index past max_entries), -EINVAL (flags), -EPERM (BPF_F_WRONLY), -ETIMEDOUT
   * @remarks Kernel: map_lookup_elem() -> array_map_lookup_elem() / bpf_percpu_array_copy(). Untorn.
   */
  lookupElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    const i = this.index("lookup", key);
    this.valueOut("lookup", value);
    if (flags !== 0) {
      this.flagsArg("lookup", flags);
      if (withoutLockFlag(flags) !== 0)
        return this.err.fail(EINVAL, `unknown lookup flags 0x${flags.toString(16)}`);
      if (!this.canRead) return this.readDenied();
      if (this.spinLockOff < 0) return this.noSpinLock();
      if (i >= this.maxEntries) return this.outOfRange(i);
      return this.copyOutLocked(i, value, 0);
    }
    if (!this.canRead) return this.readDenied();
    if (i >= this.maxEntries) return this.outOfRange(i);
    return this.copyOut(i, value, 0);
  }

  private outOfRange(i: number): number {
    return this.err.fail(ENOENT, `index ${i} is past the last index ${this.maxEntries - 1}`);
  }

  /**
   * Write index `key`'s value. `flags`: BPF_ANY or BPF_EXIST (| BPF_F_LOCK);
   * BPF_NOEXIST is EEXIST (every element exists).
   * @returns 0, -EEXIST, -E2BIG (index past max_entries), -EINVAL, -EPERM, -ETIMEDOUT
   * @remarks Kernel: array_map_update_elem() / bpf_percpu_array_update().
   */
  updateElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    const i = this.index("update", key);
    this.valueIn("update", value);
    this.flagsArg("update", flags);
    if (!this.writable) return this.writeDenied();
    const fLock = hasLockFlag(flags);
    const fRest = withoutLockFlag(flags);
    if (fLock && this.spinLockOff < 0) return this.noSpinLock();
    return this.update(i, value, 0, fRest, fLock, this.valueBytes);
  }

  /** array_map_update_elem()'s checks, then the write of `n` bytes from `value[valOff]`. */
  private update(
    i: number,
    value: Uint8Array,
    valOff: number,
    mode: number,
    lock: boolean,
    n: number,
  ): number {
    if (mode > UpdateFlags.Exist) return this.err.fail(EINVAL, `unknown update flags 0x${mode.toString(16)}`);
    if (i >= this.maxEntries)
      return this.err.fail(E2BIG, `index ${i} is past max_entries ${this.maxEntries} (an array cannot grow)`);
    if (mode === UpdateFlags.NoExist)
      return this.err.fail(EEXIST, "every element of an array exists (BPF_NOEXIST)");
    return this.writeIn(i, 0, value, valOff, n, lock);
  }

  /**
   * Elements of an array cannot be deleted.
   * @returns -EINVAL (-EPERM first on a BPF_F_RDONLY or frozen map)
   * @remarks Kernel: array_map_delete_elem().
   */
  deleteElem(key: Uint8Array): number {
    this.index("delete", key);
    if (!this.writable) return this.writeDenied();
    return this.err.fail(EINVAL, "elements of an array cannot be deleted (write zeros instead)");
  }

  /**
   * Not offered by the kernel for arrays.
   * @returns -ENOTSUPP (524), after the kernel's checks: flags (EINVAL), read and write permission (EPERM)
   * @remarks Kernel: map_lookup_and_delete_elem().
   */
  lookupAndDeleteElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.index("lookupAndDelete", key);
    this.valueOut("lookupAndDelete", value);
    this.flagsArg("lookupAndDelete", flags);
    const fLock = hasLockFlag(flags);
    const fRest = withoutLockFlag(flags);
    if (fRest !== 0) return this.err.fail(EINVAL, `unknown flags 0x${flags.toString(16)}`);
    if (!this.canRead) return this.readDenied();
    if (!this.writable) return this.writeDenied();
    if (fLock && this.spinLockOff < 0) return this.noSpinLock();
    return this.err.fail(
      ENOTSUPP,
      "lookup_and_delete is not supported on an array (its elements are never deleted)",
    );
  }

  /**
   * The index after `key`: NULL or an index past the end gives 0, the last index ENOENT.
   * @returns 0, -ENOENT, -EPERM (BPF_F_WRONLY)
   * @remarks Kernel: array_map_get_next_key().
   */
  getNextKey(key: Uint8Array | null, nextKey: Uint8Array): number {
    const i = key === null || key === undefined ? 0xffffffff : this.index("getNextKey", key);
    if (!(nextKey instanceof Uint8Array) || nextKey.length < 4)
      invalid("getNextKey", `nextKey must be a Uint8Array of at least 4 bytes, got ${showInput(nextKey)}`);
    if (!this.canRead) return this.readDenied();
    const next = this.nextIndex(i);
    if (next < 0) return this.err.fail(ENOENT, "no index after the last one");
    nextKey[0] = next;
    nextKey[1] = next >>> 8;
    nextKey[2] = next >>> 16;
    nextKey[3] = next >>> 24;
    return 0;
  }

  private nextIndex(i: number): number {
    if (i >= this.maxEntries) return 0;
    if (i === this.maxEntries - 1) return -1;
    return i + 1;
  }

  // ------------------------------------------------------------ batches

  private batchArgs(op: string, args: BatchArgs): { count: number; elemFlags: number } {
    if (args === null || typeof args !== "object") invalid(op, "batch arguments must be an object");
    const { count } = args;
    if (!Number.isInteger(count) || count < 0 || count > 0xffffffff)
      invalid(op, `count must be a u32, got ${showInput(count)}`);
    const elemFlags = args.elemFlags ?? 0;
    this.flagsArg(op, elemFlags);
    if (args.flags !== undefined) this.flagsArg(op, args.flags);
    return { count, elemFlags };
  }

  private batchBuf(op: string, name: string, buf: unknown, bytes: number): asserts buf is Uint8Array {
    if (!(buf instanceof Uint8Array) || buf.length < bytes)
      invalid(op, `${name} must be a Uint8Array of at least ${bytes} bytes (count x its size)`);
  }

  private result(
    err: number,
    count: number,
    outBatch: number | null,
    keys: Uint8Array,
    values: Uint8Array,
  ): BatchResult {
    return { err, count, outBatch, keys, values };
  }

  /**
   * Up to `count` indices from the one after `inBatch` (from 0 without one),
   * with their values. `outBatch` is the last index returned (the next call's
   * `inBatch`); err is -ENOENT once the last index was returned (with the
   * entries of this call), 0 while more remain. `batch.flags` is not read,
   * as in the kernel's generic_map_lookup_batch().
   * @returns err 0, -ENOENT, -EINVAL (elem_flags), -EPERM (BPF_F_WRONLY), -ETIMEDOUT
   */
  lookupBatch(args: BatchArgs): BatchResult {
    const op = "lookupBatch";
    const { count, elemFlags } = this.batchArgs(op, args);
    const vb = this.valueBytes;
    const made = Math.min(count, this.maxEntries);
    const keys = args.keys ?? new Uint8Array(made * 4);
    const values = args.values ?? new Uint8Array(made * vb);
    if (args.keys !== undefined) this.batchBuf(op, "keys", keys, count * 4);
    if (args.values !== undefined) this.batchBuf(op, "values", values, count * vb);
    const inBatch = args.inBatch ?? null;
    if (inBatch !== null && (!Number.isInteger(inBatch) || inBatch < 0 || inBatch > 0xffffffff))
      invalid(op, `inBatch must be a u32 index or null, got ${showInput(inBatch)}`);
    if (!this.canRead) return this.result(this.readDenied(), count, null, keys, values);
    const fLock = hasLockFlag(elemFlags);
    const fRest = withoutLockFlag(elemFlags);
    if (fRest !== 0)
      return this.result(
        this.err.fail(EINVAL, `unknown elem_flags 0x${elemFlags.toString(16)}`),
        count,
        null,
        keys,
        values,
      );
    if (fLock && this.spinLockOff < 0) return this.result(this.noSpinLock(), count, null, keys, values);
    if (count === 0) return this.result(0, 0, null, keys, values);
    return this.copyBatch(inBatch === null ? 0xffffffff : inBatch, count, fLock, keys, values);
  }

  /** generic_map_lookup_batch()'s loop: get_next_key from `prev`, copy, until `count` or the end. */
  private copyBatch(
    prev: number,
    count: number,
    lock: boolean,
    keys: Uint8Array,
    values: Uint8Array,
  ): BatchResult {
    const vb = this.valueBytes;
    let cp = 0;
    let err = 0;
    while (cp < count) {
      const i = this.nextIndex(prev);
      if (i < 0) {
        err = this.err.fail(ENOENT, "the batch passed the last index");
        break;
      }
      const r = lock ? this.copyOutLocked(i, values, cp * vb) : this.copyOut(i, values, cp * vb);
      // The kernel stops without reporting a count when a copy fails (generic_map_lookup_batch()).
      if (r !== 0) return this.result(r, 0, null, keys, values);
      keys[cp * 4] = i;
      keys[cp * 4 + 1] = i >>> 8;
      keys[cp * 4 + 2] = i >>> 16;
      keys[cp * 4 + 3] = i >>> 24;
      cp++;
      prev = i;
    }
    return this.result(err, cp, cp > 0 ? prev : null, keys, values);
  }

  /** Not offered for arrays. @returns err -ENOTSUPP (524), -EPERM first without read or write permission */
  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    const { count } = this.batchArgs("lookupAndDeleteBatch", args);
    const keys = args.keys ?? new Uint8Array(0);
    const values = args.values ?? new Uint8Array(0);
    if (!this.canRead) return this.result(this.readDenied(), count, null, keys, values);
    if (!this.writable) return this.result(this.writeDenied(), count, null, keys, values);
    return this.result(
      this.err.fail(ENOTSUPP, "lookup_and_delete_batch is not supported on an array"),
      count,
      null,
      keys,
      values,
    );
  }

  /**
   * Write `count` index/value pairs with `elemFlags` (0 or BPF_F_LOCK), stopping
   * at the first error; `count` in the result is the pairs written.
   * @returns err 0, -E2BIG (an index past max_entries), -EINVAL, -EPERM, -ETIMEDOUT
   * @remarks Kernel: generic_map_update_batch() (batch.flags is not read).
   */
  updateBatch(args: BatchArgs): BatchResult {
    const op = "updateBatch";
    const { count, elemFlags } = this.batchArgs(op, args);
    const vb = this.valueBytes;
    this.batchBuf(op, "keys", args.keys, count * 4);
    this.batchBuf(op, "values", args.values, count * vb);
    const keys = args.keys;
    const values = args.values;
    if (!this.writable) return this.result(this.writeDenied(), count, null, keys, values);
    const fLock = hasLockFlag(elemFlags);
    const fRest = withoutLockFlag(elemFlags);
    if (fRest !== 0)
      return this.result(
        this.err.fail(EINVAL, `unknown elem_flags 0x${elemFlags.toString(16)}`),
        count,
        null,
        keys,
        values,
      );
    if (fLock && this.spinLockOff < 0) return this.result(this.noSpinLock(), count, null, keys, values);
    let cp = 0;
    for (; cp < count; cp++) {
      const o = cp * 4;
      const i = (keys[o] | (keys[o + 1] << 8) | (keys[o + 2] << 16) | (keys[o + 3] << 24)) >>> 0;
      const r = this.update(i, values, cp * vb, 0, fLock, vb);
      if (r !== 0) return this.result(r, cp, null, keys, values);
    }
    return this.result(0, cp, null, keys, values);
  }

  /** Not offered for arrays. @returns err -ENOTSUPP (524), -EPERM first on a BPF_F_RDONLY or frozen map */
  deleteBatch(args: BatchArgs): BatchResult {
    const { count } = this.batchArgs("deleteBatch", args);
    const keys = args.keys ?? new Uint8Array(0);
    const values = args.values ?? new Uint8Array(0);
    if (!this.writable) return this.result(this.writeDenied(), count, null, keys, values);
    return this.result(
      this.err.fail(ENOTSUPP, "delete_batch is not supported on an array (its elements are never deleted)"),
      count,
      null,
      keys,
      values,
    );
  }

  // ------------------------------------------------------------ map-wide

  /**
   * Kernel: BPF_MAP_FREEZE. Control-plane writes fail with EPERM afterwards
   * (a second freeze too); programs still write unless BPF_F_RDONLY_PROG.
   * @returns 0, -ENOTSUPP (a value with a bpf_spin_lock), -EPERM
   */
  freeze(): number {
    if (this.spinLockOff >= 0)
      return this.err.fail(ENOTSUPP, "a map whose value has a bpf_spin_lock cannot be frozen");
    if (!this.writable) return this.writeDenied();
    Atomics.store(this.i32, HDR_FROZEN_I32, 1);
    return 0;
  }

  /** The value an outer map stores for this map: its id in its MapDomain (0 outside one). */
  mapRef(): number {
    return this.info.id;
  }

  /** Bytes of shared memory the array occupies (all of it allocated at create). */
  memoryUsage(): number {
    return this.g.totalBytes;
  }

  /** Elements in the map: an array always holds max_entries. */
  count(): number {
    return this.maxEntries;
  }

  /** Arrays never run the wasm fast path (a lookup is an index, not a hash walk). */
  get fastPath(): boolean {
    return false;
  }

  /**
   * A copy of the map's bytes without the CPU slots' claim words and the
   * nonce: two equal copies mean equal map state (a failed call leaves it unchanged).
   */
  stateBytes(): Uint8Array {
    const copy = this.u8.slice();
    copy.fill(0, HDR_NONCE_I32 * 4, HDR_NONCE_I32 * 4 + 4);
    for (let c = 0; c < this.g.nrCpus; c++) {
      const at = (pcpuBase(c) + PCPU_CLAIM_I32) * 4;
      copy.fill(0, at, at + 4);
    }
    return copy;
  }

  /** Locks recovered from dead slots, the element count, the bytes. */
  stats(): { recovered: number; count: number; memoryBytes: number } {
    return {
      recovered: Atomics.load(this.i32, HDR_RECOVERED_I32),
      count: this.count(),
      memoryBytes: this.memoryUsage(),
    };
  }

  /**
   * Check every element: its writer lock free and its sequence even, no dead
   * slot left holding one, and the open program sections. Requires: no
   * concurrent writers.
   */
  fsck(): ArrayFsckReport {
    const i32 = this.i32;
    const errors: string[] = [];
    for (let i = 0; i < this.maxEntries; i++) {
      const e = arrayElemI32(this.g, i);
      const lock = Atomics.load(i32, e + ARR_ELEM_LOCK_I32);
      if (lock !== 0) errors.push(`element ${i}: writer lock held by CPU slot ${lockOwner(lock)}`);
      if ((Atomics.load(i32, e + ARR_ELEM_SEQ_I32) & 1) !== 0)
        errors.push(`element ${i}: sequence is odd (a write never ended)`);
    }
    const openSections: ArrayFsckReport["openSections"] = [];
    for (let c = 0; c < this.g.nrCpus; c++) {
      const state = this.slotState(c);
      const p = pcpuBase(c);
      if (i32[p + ARR_PCPU_WRITING_I32] !== 0 && state !== "alive")
        errors.push(
          `CPU slot ${c} (${state}) is still marked writing element ${i32[p + ARR_PCPU_WRITING_I32] - 1}`,
        );
      if (Atomics.load(i32, p + PCPU_SECTION_I32) !== 0) {
        openSections.push({ slot: c, state });
        if (state !== "alive")
          errors.push(`CPU slot ${c} (${state}) has an open program section: reap(${c}) ends it`);
      }
    }
    return { ok: errors.length === 0, errors, elements: this.maxEntries, openSections };
  }

  // ------------------------------------------------------------ CPU slots and crash recovery

  /**
   * Declare that the thread holding CPU slot `cpu` is gone and recover it: an
   * element write it left half-done gets its lock freed and its sequence even
   * (the value may hold part of that write, as a kernel array can), its open
   * section ends, and the slot is free again. See Htab.reap() for `generation` and `token`.
   */
  reap(cpu: number, generation?: number, token?: number): void {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.g.nrCpus)
      invalid("reap", `no CPU slot ${showInput(cpu)}`);
    if (cpu === this.cpu) invalid("reap", "a thread cannot reap its own slot");
    const i32 = this.i32;
    const idx = pcpuBase(cpu) + PCPU_OWNER_I32;
    checkNotMine("reap", i32, idx, pcpuBase(cpu) + PCPU_CLAIM_I32, cpu);
    if (token !== undefined && Atomics.load(i32, pcpuBase(cpu) + PCPU_CLAIM_I32) !== token) return;
    const marked = markSlotDead(i32, idx, generation);
    if (!marked && generation !== undefined && slotGenerationOf(Atomics.load(i32, idx)) !== generation)
      return;
    const deadline = nowMs() + 4 * LOCK_TIMEOUT_MS;
    while (slotStateOf(Atomics.load(i32, idx)) === SLOT_DEAD && nowMs() < deadline)
      if (this.recoverDeadSlots() === 0)
        Atomics.wait(i32, HDR_RECOVERY_LOCK_I32, Atomics.load(i32, HDR_RECOVERY_LOCK_I32), 1);
  }

  /** Recover every slot marked dead, unless another thread is recovering. @returns how many */
  recoverDeadSlots(): number {
    const i32 = this.i32;
    if (!lockTry(i32, HDR_RECOVERY_LOCK_I32, this.cpu)) return 0;
    let n = 0;
    try {
      for (let c = 0; c < this.g.nrCpus; c++) {
        if (slotStateOf(Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32)) !== SLOT_DEAD) continue;
        this.recoverSlot(c);
        n++;
      }
    } finally {
      lockRelease(i32, HDR_RECOVERY_LOCK_I32);
    }
    return n;
  }

  /**
   * Dead slot `c`: the element write it left (its lock, an odd sequence, the
   * value's spin lock taken under it), its open section, then the slot.
   * Requires: HDR_RECOVERY_LOCK held.
   */
  private recoverSlot(c: number): void {
    const i32 = this.i32;
    const p = pcpuBase(c);
    const w = i32[p + ARR_PCPU_WRITING_I32];
    const e = w !== 0 && w <= this.maxEntries ? arrayElemI32(this.g, w - 1) : -1;
    if (e >= 0 && lockOwner(Atomics.load(i32, e + ARR_ELEM_LOCK_I32) & ~1) === c) {
      if ((Atomics.load(i32, e + ARR_ELEM_SEQ_I32) & 1) !== 0) Atomics.add(i32, e + ARR_ELEM_SEQ_I32, 1);
      const li = this.spinLockOff >= 0 ? (arrayValueOff(this.g, w - 1) + this.spinLockOff) >> 2 : -1;
      if (li >= 0 && lockOwner(Atomics.load(i32, li) & ~1) === c) lockRelease(i32, li);
      lockRelease(i32, e + ARR_ELEM_LOCK_I32);
      Atomics.add(i32, HDR_RECOVERED_I32, 1);
    }
    i32[p + ARR_PCPU_WRITING_I32] = 0;
    if (Atomics.exchange(i32, p + PCPU_SECTION_I32, 0) !== 0) Atomics.sub(i32, HDR_ACTIVE_I32, 1);
    releaseSlot(i32, p + PCPU_OWNER_I32);
  }

  /** Reserve free CPU slot `cpu` for a worker that attaches with `{ cpu }` (see Htab.reserveSlot()). */
  reserveSlot(cpu: number): Reservation {
    this.slotArg("reserveSlot", cpu);
    return reserve(this.i32, pcpuBase(cpu) + PCPU_OWNER_I32, pcpuBase(cpu) + PCPU_CLAIM_I32);
  }

  /** Drop this thread's reservation of slot `cpu` (see Htab.unreserveSlot()). */
  unreserveSlot(cpu: number): void {
    this.slotArg("unreserveSlot", cpu);
    unreserve(this.i32, pcpuBase(cpu) + PCPU_CLAIM_I32);
  }

  /** Who claimed slot `cpu` last (see Htab.slotClaim()). */
  slotClaim(cpu: number): number {
    this.slotArg("slotClaim", cpu);
    return Atomics.load(this.i32, pcpuBase(cpu) + PCPU_CLAIM_I32);
  }

  /** Slot `cpu`'s claim generation (see Htab.slotGeneration()). */
  slotGeneration(cpu: number): number {
    this.slotArg("slotGeneration", cpu);
    return slotGenerationOf(Atomics.load(this.i32, pcpuBase(cpu) + PCPU_OWNER_I32));
  }

  /** Whether CPU slot `cpu` is taken by a live thread, being recovered, or free. Can be late. */
  slotState(cpu: number): "alive" | "dead" | "free" {
    this.slotArg("slotState", cpu);
    const s = slotStateOf(Atomics.load(this.i32, pcpuBase(cpu) + PCPU_OWNER_I32));
    return s === SLOT_ALIVE ? "alive" : s === SLOT_DEAD ? "dead" : "free";
  }

  private slotArg(op: string, cpu: unknown): void {
    if (!Number.isInteger(cpu) || (cpu as number) < 0 || (cpu as number) >= this.g.nrCpus)
      invalid(op, `no CPU slot ${showInput(cpu)}`);
  }

  /**
   * Give the CPU slot back. Every later call on this object throws BpfError
   * EINVAL ("map is closed"); calling close() again does nothing.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    while (this.sectionDepth > 0) this.exit();
    poisonClosed(this);
    releaseSlot(this.i32, pcpuBase(this.cpu) + PCPU_OWNER_I32);
  }

  // ------------------------------------------------------------ the program face

  /**
   * @internal A live view of element `index`'s value (CPU `cpu`'s slot of a
   * per-CPU value), for the BPF runtime's globals, which programs address
   * directly. Writes through it take no writer lock, as a program's stores don't.
   */
  _valueView(index: number, cpu = 0): Uint8Array {
    if (!Number.isInteger(index) || index < 0 || index >= this.maxEntries)
      invalid("_valueView", `no index ${showInput(index)}`);
    const at = arrayValueOff(this.g, index, cpu);
    return this.u8.subarray(at, at + this.valueSize);
  }

  /** Enter a program section: references from lookupRef() live until the matching exit(). */
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
    }
  }

  /** True inside enter()/exit() (or run()). */
  get inSection(): boolean {
    return this.sectionDepth > 0;
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

  /**
   * Wait until every program section that began before this call has ended
   * (kernel: synchronize_rcu()); see Htab.synchronize().
   */
  synchronize(): void;
  synchronize(opts: SyncOptions & { timeoutMs: number }): SyncReport;
  synchronize(opts?: SyncOptions): SyncReport | undefined {
    if (this.sectionDepth !== 0) invalid("synchronize", "called inside a section: it would wait for itself");
    if (Atomics.load(this.i32, HDR_ACTIVE_I32) === 0 && opts?.timeoutMs === undefined) return undefined;
    return synchronizeBounded(this.i32, this.g.nrCpus, opts);
  }

  private makeRef(): ValueRef {
    return new ValueRef(
      this.i32,
      this.i64,
      this.u8,
      this.valueSize,
      (this.flags & MapFlags.WronlyProg) === 0,
      (this.flags & MapFlags.RdonlyProg) === 0,
      this.g.percpu ? -1 : this.spinLockOff,
      this.cpu,
      this.liveGen,
    );
  }

  private refAt(i: number, cpu: number, into: ValueRef | undefined): ValueRef {
    return (into ?? this.makeRef())._bind(arrayValueOff(this.g, i, cpu), this.liveGen[0]);
  }

  /**
   * bpf_map_lookup_elem() as a program sees it: a live reference to the
   * element's value (this CPU's slot on a PERCPU_ARRAY), or null for an index
   * past the end. Array elements are never freed, so a reference points at
   * the same element for as long as its section lasts.
   * @throws BpfError EINVAL outside a section (see enter()/run())
   */
  lookupRef(key: Uint8Array, into?: ValueRef): ValueRef | null {
    const i = this.index("lookupRef", key);
    if (this.sectionDepth === 0)
      invalid("lookupRef", "references need a program section: call it inside run() or enter()/exit()");
    return i < this.maxEntries ? this.refAt(i, this.cpu, into) : null;
  }

  /**
   * bpf_map_lookup_percpu_elem(): CPU `cpu`'s value of a PERCPU_ARRAY, or
   * null for an index past the end or a CPU that is not possible.
   * @throws BpfError EINVAL on an ARRAY (the verifier refuses it), or outside a section
   */
  lookupPercpuRef(key: Uint8Array, cpu: number, into?: ValueRef): ValueRef | null {
    const i = this.index("lookupPercpuRef", key);
    if (!this.g.percpu) invalid("lookupPercpuRef", "the map is not per-CPU");
    if (this.sectionDepth === 0) invalid("lookupPercpuRef", "references need a program section");
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.g.nrCpus || i >= this.maxEntries) return null;
    return this.refAt(i, cpu, into);
  }

  /**
   * bpf_map_update_elem() called from a program: on a PERCPU_ARRAY only the
   * calling CPU's slot is written (`value` is value_size bytes). Untorn for
   * control-plane lookups, as a syscall update is.
   * @returns 0, -EEXIST (BPF_NOEXIST), -E2BIG, -EINVAL, -EACCES (BPF_F_RDONLY_PROG), -ETIMEDOUT
   * @remarks Kernel: array_map_update_elem() from a program.
   */
  updateElemFromProgram(key: Uint8Array, value: Uint8Array, flags = 0): number {
    const i = this.index("updateElemFromProgram", key);
    this.flagsArg("updateElemFromProgram", flags);
    if (!(value instanceof Uint8Array) || value.length !== this.valueSize)
      invalid(
        "updateElemFromProgram",
        `a program writes value_size = ${this.valueSize} bytes, got ${showInput(value)}`,
      );
    if ((this.flags & MapFlags.RdonlyProg) !== 0) return this.err.fail(EACCES, "map is BPF_F_RDONLY_PROG");
    const fLock = hasLockFlag(flags);
    const fRest = withoutLockFlag(flags);
    if (fRest > UpdateFlags.Exist)
      return this.err.fail(EINVAL, `unknown update flags 0x${flags.toString(16)}`);
    if (i >= this.maxEntries)
      return this.err.fail(E2BIG, `index ${i} is past max_entries ${this.maxEntries}`);
    if (fRest === UpdateFlags.NoExist)
      return this.err.fail(EEXIST, "every element of an array exists (BPF_NOEXIST)");
    if (fLock && this.spinLockOff < 0) return this.noSpinLock();
    const at = this.g.percpu ? this.cpu * this.g.slotBytes : 0;
    return this.writeIn(i, at, value, 0, this.valueSize, fLock);
  }

  /**
   * bpf_map_delete_elem() called from a program: no array element can be
   * deleted, frozen or not.
   * @returns -EINVAL, or -EACCES (BPF_F_RDONLY_PROG)
   * @remarks Kernel: array_map_delete_elem().
   */
  deleteElemFromProgram(key: Uint8Array): number {
    this.index("deleteElemFromProgram", key);
    if ((this.flags & MapFlags.RdonlyProg) !== 0) return this.err.fail(EACCES, "map is BPF_F_RDONLY_PROG");
    return this.err.fail(EINVAL, "elements of an array cannot be deleted (write zeros instead)");
  }

  /**
   * bpf_for_each_map_elem(): `cb(map, key, value, ctx)` for every index in
   * order (the value is this CPU's slot on a PERCPU_ARRAY); it returns 0 to
   * go on or 1 to stop. The key buffer and the reference are reused.
   * @returns the number of elements visited
   * @throws BpfError EINVAL for flags other than 0 or a callback returning other than 0 or 1
   */
  forEachElem<C>(
    cb: (map: this, key: Uint8Array, value: ValueRef, ctx: C) => number,
    ctx: C,
    flags = 0,
  ): number {
    if (typeof cb !== "function") invalid("forEachElem", "callback must be a function");
    if (flags !== 0) invalid("forEachElem", `flags must be 0, got ${showInput(flags)}`);
    const key = new Uint8Array(4);
    let visited = 0;
    this.enter();
    try {
      const ref = this.makeRef();
      for (let i = 0; i < this.maxEntries; i++) {
        key[0] = i;
        key[1] = i >>> 8;
        key[2] = i >>> 16;
        key[3] = i >>> 24;
        visited++;
        const r = cb(this, key, this.refAt(i, this.cpu, ref), ctx);
        if (r === 1) return visited;
        if (r !== 0)
          invalid(
            "forEachElem",
            `callback returned ${showInput(r)}; it must return 0 (continue) or 1 (stop)`,
          );
      }
      return visited;
    } finally {
      this.exit();
    }
  }
}
