/**
 * KernelMap: a real kernel BPF map behind htab's RawMap interface. Each call
 * is one bpf() syscall over one preallocated native arena per map (attr,
 * key, value and next-key slots), so a call allocates nothing in JS.
 *
 * bpf_attr offsets are the uapi ones (attr.ts).
 */

import { unlinkSync } from "node:fs";
import { type Btf, parseBtf } from "../btf/btf.js";
import { mapCodecs } from "../btf/codec.js";
import type { BtfDecl } from "../btf/write.js";
import { BpfError, Errno, invalid, showInput } from "../errors.js";
import { syscallValueBytes } from "../layout/layout.js";
import { poisonClosed } from "../map/closed.js";
import type { Codec } from "../map/codecs.js";
import { walkKeys } from "../map/key-walk.js";
import { LastError } from "../map/last-error.js";
import type { BatchArgs, BatchResult, MapInfo, RawMap } from "../map/raw-map.js";
import type { MapSpec } from "../map/spec.js";
import { BpfCmd, MapType } from "../uapi.js";
import {
  ATTR_BYTES,
  BATCH_COUNT,
  BATCH_ELEM_FLAGS,
  BATCH_FLAGS,
  BATCH_IN_BATCH,
  BATCH_KEYS,
  BATCH_MAP_FD,
  BATCH_OUT_BATCH,
  BATCH_VALUES,
  CREATE_BTF_FD,
  CREATE_BTF_KEY_TYPE_ID,
  CREATE_BTF_VALUE_TYPE_ID,
  CREATE_INNER_MAP_FD,
  CREATE_KEY_SIZE,
  CREATE_MAP_FLAGS,
  CREATE_MAP_NAME,
  CREATE_MAP_TYPE,
  CREATE_MAX_ENTRIES,
  CREATE_NUMA_NODE,
  CREATE_VALUE_SIZE,
  ELEM_FLAGS,
  ELEM_KEY,
  ELEM_MAP_FD,
  ELEM_VALUE,
  type KernelMapInfo,
  OUT_BATCH_UNSET,
} from "./attr.js";
import { bpfFfi, fdMemlock, isMapFd, type NativeBuf, possibleCpus } from "./bpf-syscall.js";
import { declBlob, loadBtf, readBtfBlob } from "./btf-load.js";
import { capabilityHint, explainErrno, strerror } from "./errno-text.js";
import {
  checkCompatible,
  getFdById,
  type KernelMapListing,
  listing,
  mapInfoOf,
  mapInfoOfFd,
  nextMapId,
  objCall,
} from "./map-objects.js";
import { ELEMENT_CMDS, kernelMapTypeName, kernelTypeIsPercpu, kernelTypeSupported } from "./map-types.js";

export interface KernelCreateOptions {
  /** Template inner map for ARRAY_OF_MAPS / HASH_OF_MAPS. */
  innerMap?: KernelMap;
  /** Map name (at most 15 characters). */
  name?: string;
  /**
   * The key and value types: a BTF blob with the type ids, or declarations
   * (btfDeclOf(codec) turns htab's codecs into them). A value struct with a
   * `bpf_spin_lock` member makes a spin-lock map.
   */
  btf?:
    | { blob: Uint8Array; keyTypeId: number; valueTypeId: number }
    | { key: BtfDecl; value: BtfDecl }
    /** A BTF object this process loaded (BPF_BTF_LOAD's fd, left open: the caller closes it). */
    | { fd: number; keyTypeId: number; valueTypeId: number };
}

/** A real kernel map driven through bpf(). Same RawMap interface as the SAB `Htab`. */
export class KernelMap implements RawMap {
  readonly info: MapInfo;
  readonly fd: number;
  /** Why the last call failed: the kernel's errno, explained for the command that got it (formatted when read). */
  get lastError(): string {
    return this.err.message;
  }
  private readonly err = new LastError((cmd, errno) => explainErrno(cmd - 1, errno, this.info));
  /** Bytes of one value as the syscall interface moves it (per-CPU: nrCpus x round_up(vs, 8)). */
  readonly valueBytes: number;

  private readonly ffi = bpfFfi();
  private readonly arena: NativeBuf;
  private readonly keyOff: number;
  private readonly valOff: number;
  private readonly nextOff: number;
  private readonly cursorOff: number;
  private batchBuf: NativeBuf | null = null;
  private closed = false;
  /** False for a view made by fromHandle(): closing it does not close the fd. */
  private owned = true;
  /** False for map types htab has no backend for: element calls answer EOPNOTSUPP. */
  private elementCalls = true;

  private constructor(fd: number, info: MapInfo, valueBytes: number) {
    this.fd = fd;
    this.info = info;
    this.valueBytes = valueBytes;
    const ks = Math.ceil(info.keySize / 8) * 8;
    const vs = Math.ceil(valueBytes / 8) * 8;
    this.keyOff = ATTR_BYTES;
    this.valOff = this.keyOff + ks;
    this.nextOff = this.valOff + vs;
    this.cursorOff = this.nextOff + ks;
    this.arena = this.ffi.alloc(this.cursorOff + 16);
    this.keyAddr = this.arena.addr + BigInt(this.keyOff);
    this.valAddr = this.arena.addr + BigInt(this.valOff);
    this.nextAddr = this.arena.addr + BigInt(this.nextOff);
    this.inCursorAddr = this.arena.addr + BigInt(this.cursorOff);
    this.outCursorAddr = this.arena.addr + BigInt(this.cursorOff + 8);
  }

  /**
   * BPF_MAP_CREATE.
   * @throws BpfError with the kernel's errno; EPERM says which capability is missing
   */
  static create(spec: MapSpec, opts: KernelCreateOptions = {}): KernelMap {
    // The attr fields are u32: a string or a fraction would be coerced silently ("16" >>> 0).
    for (const [name, v] of Object.entries({ ...spec, flags: spec.flags ?? 0 }))
      if (["type", "keySize", "valueSize", "maxEntries", "flags"].includes(name))
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
          invalid("create", `${name} must be an integer in [0, 2^32), got ${showInput(v)}`);
    const ffi = bpfFfi();
    const attr = ffi.alloc(ATTR_BYTES);
    try {
      const dv = attr.dv;
      dv.setUint32(CREATE_MAP_TYPE, spec.type >>> 0, true);
      dv.setUint32(CREATE_KEY_SIZE, spec.keySize >>> 0, true);
      dv.setUint32(CREATE_VALUE_SIZE, spec.valueSize >>> 0, true);
      dv.setUint32(CREATE_MAX_ENTRIES, spec.maxEntries >>> 0, true);
      dv.setUint32(CREATE_MAP_FLAGS, (spec.flags ?? 0) >>> 0, true);
      dv.setUint32(CREATE_INNER_MAP_FD, opts.innerMap ? opts.innerMap.fd : 0, true);
      dv.setUint32(CREATE_NUMA_NODE, (spec.numaNode ?? 0) >>> 0, true);
      const name = (opts.name ?? spec.name ?? "htab").slice(0, 15);
      for (let i = 0; i < name.length; i++) attr.u8[CREATE_MAP_NAME + i] = name.charCodeAt(i) & 0x7f;
      let btfFd = -1;
      if (opts.btf !== undefined && "fd" in opts.btf) {
        dv.setUint32(CREATE_BTF_FD, opts.btf.fd, true);
        dv.setUint32(CREATE_BTF_KEY_TYPE_ID, opts.btf.keyTypeId, true);
        dv.setUint32(CREATE_BTF_VALUE_TYPE_ID, opts.btf.valueTypeId, true);
      } else if (opts.btf !== undefined) {
        const b = "blob" in opts.btf ? opts.btf : declBlob(opts.btf.key, opts.btf.value);
        btfFd = loadBtf(b.blob);
        dv.setUint32(CREATE_BTF_FD, btfFd, true);
        dv.setUint32(CREATE_BTF_KEY_TYPE_ID, b.keyTypeId, true);
        dv.setUint32(CREATE_BTF_VALUE_TYPE_ID, b.valueTypeId, true);
      }
      const fd = ffi.call(BpfCmd.MapCreate, attr.ptr, ATTR_BYTES);
      const createErrno = fd < 0 ? ffi.errno() : 0;
      if (btfFd >= 0) ffi.close(btfFd); // the map holds its own reference to the BTF
      if (fd < 0) {
        const e = createErrno;
        const detail = e === Errno.EPERM ? `bpf(BPF_MAP_CREATE) refused: ${capabilityHint()}` : undefined;
        throw new BpfError("create", e, detail);
      }
      const nrCpus = possibleCpus();
      const km = new KernelMap(
        fd,
        {
          type: spec.type,
          keySize: spec.keySize,
          valueSize: spec.valueSize,
          maxEntries: spec.maxEntries,
          flags: spec.flags ?? 0,
          nrCpus,
          id: 0,
          valueBytes: syscallValueBytes(spec.type, spec.valueSize, nrCpus),
        },
        syscallValueBytes(spec.type, spec.valueSize, nrCpus),
      );
      const real = KernelMap.infoOfFd(fd, "create");
      Object.assign(km.info, {
        id: real.id,
        maxEntries: real.maxEntries,
        flags: real.flags,
        name: real.name,
        btfId: real.btfId,
        btfKeyTypeId: real.btfKeyTypeId,
        btfValueTypeId: real.btfValueTypeId,
      });
      Object.freeze(km.info);
      return km;
    } finally {
      attr.free();
    }
  }

  /** What another worker thread of this process needs to use the same kernel map. */
  get handle(): { fd: number; info: MapInfo } {
    return { fd: this.fd, info: { ...this.info } };
  }

  /**
   * Use a map created by another thread of this process (file descriptors are
   * per process, so workers share them). Closing the view leaves the fd open.
   */
  static fromHandle(h: { fd: number; info: MapInfo }): KernelMap {
    if (h === null || typeof h !== "object" || h.info === null || typeof h.info !== "object")
      invalid("fromHandle", "handle must be { fd, info } from KernelMap.handle");
    if (!Number.isInteger(h.fd) || h.fd < 0)
      invalid("fromHandle", `fd must be a file descriptor, got ${String(h.fd)}`);
    // The sizes the native buffers get come from the kernel, never from the handle:
    // a handle that under-states value_size would let the kernel write past them.
    const real = KernelMap.infoOfFd(h.fd, "fromHandle");
    const info = h.info;
    const nrCpus = possibleCpus();
    for (const [field, mine, theirs] of [
      ["type", info.type, real.type],
      ["keySize", info.keySize, real.keySize],
      ["valueSize", info.valueSize, real.valueSize],
      ["maxEntries", info.maxEntries, real.maxEntries],
      ["flags", info.flags, real.flags],
      ["nrCpus", info.nrCpus, nrCpus],
    ] as const)
      if (mine !== theirs)
        invalid(
          "fromHandle",
          `handle says ${field} ${String(mine)}, but fd ${h.fd} is a map with ${field} ${theirs} (a stale or foreign handle)`,
        );
    const bytes = syscallValueBytes(real.type, real.valueSize, nrCpus);
    const km = new KernelMap(h.fd, mapInfoOf(real, nrCpus, bytes), bytes);
    km.owned = false;
    return km;
  }

  /**
   * Open a map pinned in bpffs (BPF_OBJ_GET), as cilium/ebpf's LoadPinnedMap.
   * Every size and flag comes from the kernel (BPF_OBJ_GET_INFO_BY_FD);
   * `expected`, when given, is checked field by field.
   * @throws BpfError ENOENT (no such pin), EINVAL (not a map, or `expected` differs, naming the field), EPERM/EACCES (with the capability)
   */
  static fromPinned(path: string, expected?: Partial<MapSpec>): KernelMap {
    if (typeof path !== "string" || path.length === 0)
      invalid("fromPinned", "path must be a non-empty string");
    return KernelMap.adopt(
      objCall("fromPinned", BpfCmd.ObjGet, path, 0),
      "fromPinned",
      expected,
      `pin ${path}`,
    );
  }

  /**
   * Open the map with kernel id `id` (BPF_MAP_GET_FD_BY_ID), as cilium/ebpf's NewMapFromID.
   * @throws BpfError ENOENT (no map with that id), EPERM (needs CAP_SYS_ADMIN), EINVAL (`expected` differs)
   */
  static fromId(id: number, expected?: Partial<MapSpec>): KernelMap {
    if (!Number.isInteger(id) || id <= 0 || id > 0xffffffff)
      invalid("fromId", `id must be a map id (a u32 > 0), got ${String(id)}`);
    return KernelMap.adopt(getFdById("fromId", id), "fromId", expected, `map id ${id}`);
  }

  /**
   * Use a map fd this process already has (a loader's, say). The fd is
   * duplicated: closing the KernelMap leaves the caller's fd open.
   * @throws BpfError EBADF (not an open fd), EINVAL (not a map, or `expected` differs)
   */
  static fromFd(fd: number, expected?: Partial<MapSpec>): KernelMap {
    if (!Number.isInteger(fd) || fd < 0) invalid("fromFd", `fd must be a file descriptor, got ${String(fd)}`);
    const ffi = bpfFfi();
    const mine = ffi.dup(fd);
    if (mine < 0)
      throw new BpfError("fromFd", ffi.errno(), `cannot duplicate fd ${fd}: ${strerror(ffi.errno())}`);
    return KernelMap.adopt(mine, "fromFd", expected, `fd ${fd}`);
  }

  /** Wrap an fd this process owns, taking every size from the kernel. Closes the fd on failure. */
  private static adopt(
    fd: number,
    op: string,
    expected: Partial<MapSpec> | undefined,
    what: string,
  ): KernelMap {
    const ffi = bpfFfi();
    let real: KernelMapInfo;
    try {
      if (!isMapFd(fd)) invalid(op, `${what} is not a BPF map (a program, link or other BPF object)`);
      real = KernelMap.infoOfFd(fd, op);
      if (expected !== undefined) checkCompatible(op, what, real, expected);
    } catch (e) {
      ffi.close(fd);
      throw e;
    }
    const nrCpus = possibleCpus();
    const bytes = kernelTypeIsPercpu(real.type) ? Math.ceil(real.valueSize / 8) * 8 * nrCpus : real.valueSize;
    const km = new KernelMap(fd, mapInfoOf(real, nrCpus, bytes), bytes);
    km.elementCalls = kernelTypeSupported(real.type);
    return km;
  }

  /** Open a map of any type for element calls, as bpftool does (the CLI's `htab map`). */
  static fromAnyType(open: () => KernelMap): KernelMap {
    const km = open();
    km.elementCalls = true;
    return km;
  }

  /**
   * Pin this map at `path` in bpffs (BPF_OBJ_PIN).
   * @throws BpfError EEXIST (the path exists), ENOENT (no such directory), EPERM (not a bpffs mount, or no privilege)
   */
  pin(path: string): void {
    if (typeof path !== "string" || path.length === 0) invalid("pin", "path must be a non-empty string");
    objCall("pin", BpfCmd.ObjPin, path, this.fd);
  }

  /** Remove a pin (unlink; the map lives on while anything holds it). @throws BpfError ENOENT */
  static unpin(path: string): void {
    try {
      unlinkSync(path);
    } catch (e) {
      const code = (e as { code?: string }).code ?? "EINVAL";
      throw new BpfError(
        "unpin",
        (Errno as Record<string, number>)[code] ?? Errno.EINVAL,
        `cannot unpin ${path}: ${(e as Error).message}`,
      );
    }
  }

  /**
   * Every map on the system (BPF_MAP_GET_NEXT_ID, then each map's info), in
   * id order, as `bpftool map show` lists them. Maps freed during the walk
   * are skipped. @throws BpfError EPERM without CAP_SYS_ADMIN
   */
  static list(): KernelMapListing[] {
    const out: KernelMapListing[] = [];
    for (let id = nextMapId("list", 0); id !== 0; id = nextMapId("list", id)) {
      let fd: number;
      try {
        fd = getFdById("list", id);
      } catch (e) {
        if ((e as BpfError).code === "ENOENT") continue; // freed meanwhile
        throw e;
      }
      try {
        out.push(listing(fd));
      } finally {
        bpfFfi().close(fd);
      }
    }
    return out;
  }

  /**
   * The map's BTF (BPF_BTF_GET_FD_BY_ID, then BPF_OBJ_GET_INFO_BY_FD for the
   * raw blob), parsed. @throws BpfError ENOENT when the map was created without BTF
   */
  btf(): Btf {
    return parseBtf(this.btfBlob());
  }

  /** The raw BTF blob of the map. @throws BpfError ENOENT when the map has none */
  btfBlob(): Uint8Array {
    const id = this.info.btfId ?? 0;
    if (id === 0)
      throw new BpfError("btf", Errno.ENOENT, "the map has no BTF (it was created without type information)");
    return readBtfBlob(id);
  }

  /**
   * Codecs built from the map's key and value types: `new TypedMap(map, key,
   * value)` then reads and writes JS objects (numbers, bigint for 64-bit,
   * nested objects, arrays, bytes where there is no JS shape).
   * @throws BpfError ENOENT when the map has no BTF
   */
  btfCodecs(): { key: Codec<unknown>; value: Codec<unknown> } {
    return mapCodecs(this.btf(), this.info.btfKeyTypeId ?? 0, this.info.btfValueTypeId ?? 0);
  }

  /** This map as KernelMap.list() would list it (memlock and frozen read now). */
  describe(): KernelMapListing {
    return listing(this.fd);
  }

  /** BPF_OBJ_GET_INFO_BY_FD on any fd: the map's info, or BpfError (EINVAL for an fd that is not a map). */
  static infoOfFd(fd: number, op: string): KernelMapInfo {
    return mapInfoOfFd(fd, op);
  }

  /** BPF_OBJ_GET_INFO_BY_FD: id, max_entries and flags as the kernel reports them (infoOfFd() has every field). */
  objInfo(): { id: number; maxEntries: number; flags: number } {
    if (this.closed) invalid("objInfo", "map is closed");
    const { id, maxEntries, flags } = KernelMap.infoOfFd(this.fd, "objInfo");
    return { id, maxEntries, flags };
  }

  private attrClear(): DataView {
    this.arena.u8.fill(0, 0, ATTR_BYTES);
    return this.arena.dv;
  }

  /** Issue `cmd`; 0 or -errno. */
  private sys(cmd: number): number {
    if (this.closed) invalid("bpf", "map is closed");
    if (!this.elementCalls && ELEMENT_CMDS.has(cmd)) {
      return this.err.fail(
        -Errno.EOPNOTSUPP,
        `htab drives element calls on hash maps only; this is a ${kernelMapTypeName(this.info.type)} map`,
      );
    }
    const r = this.ffi.call(cmd, this.arena.ptr, ATTR_BYTES);
    if (r >= 0) return 0;
    const e = this.ffi.errno();
    return this.err.failWith(-e, cmd + 1, e);
  }

  private putKey(op: string, key: Uint8Array, off: number): void {
    if (!(key instanceof Uint8Array)) invalid(op, `key must be a Uint8Array, got ${showInput(key)}`);
    if (key.length !== this.info.keySize)
      invalid(op, `key is ${key.length} bytes, map key_size is ${this.info.keySize}`);
    this.arena.u8.set(key, off);
  }

  private elemAttr(keyAddr: bigint, valAddr: bigint, flags: number): void {
    const dv = this.attrClear();
    dv.setUint32(ELEM_MAP_FD, this.fd, true);
    dv.setBigUint64(ELEM_KEY, keyAddr, true);
    dv.setBigUint64(ELEM_VALUE, valAddr, true);
    // u64 flags without a BigInt: low and high words.
    dv.setUint32(ELEM_FLAGS, flags >>> 0, true);
    dv.setUint32(ELEM_FLAGS + 4, Math.floor(flags / 0x1_0000_0000) >>> 0, true);
  }

  private checkFlags(op: string, flags: unknown): asserts flags is number {
    if (typeof flags !== "number" || !Number.isInteger(flags) || flags < 0 || flags > Number.MAX_SAFE_INTEGER)
      invalid(op, `flags must be a non-negative integer, got ${showInput(flags)}`);
  }

  private checkValue(op: string, value: unknown, exact: boolean): asserts value is Uint8Array {
    if (!(value instanceof Uint8Array)) invalid(op, `value must be a Uint8Array, got ${showInput(value)}`);
    if (exact ? value.length !== this.valueBytes : value.length < this.valueBytes)
      invalid(op, `value is ${value.length} bytes, the map moves ${this.valueBytes} per value`);
  }

  // Addresses of the arena slots, computed once: a BigInt per call would allocate.
  private readonly keyAddr: bigint;
  private readonly valAddr: bigint;
  private readonly nextAddr: bigint;
  private readonly inCursorAddr: bigint;
  private readonly outCursorAddr: bigint;

  lookupElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.putKey("lookup", key, this.keyOff);
    this.checkValue("lookup", value, false);
    this.checkFlags("lookup", flags);
    this.elemAttr(this.keyAddr, this.valAddr, flags);
    const r = this.sys(BpfCmd.MapLookupElem);
    if (r === 0) value.set(this.arena.u8.subarray(this.valOff, this.valOff + this.valueBytes));
    return r;
  }

  updateElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.putKey("update", key, this.keyOff);
    this.checkValue("update", value, true);
    this.checkFlags("update", flags);
    this.arena.u8.set(value, this.valOff);
    this.elemAttr(this.keyAddr, this.valAddr, flags);
    return this.sys(BpfCmd.MapUpdateElem);
  }

  deleteElem(key: Uint8Array): number {
    this.putKey("delete", key, this.keyOff);
    this.elemAttr(this.keyAddr, 0n, 0);
    return this.sys(BpfCmd.MapDeleteElem);
  }

  lookupAndDeleteElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.putKey("lookupAndDelete", key, this.keyOff);
    this.checkValue("lookupAndDelete", value, false);
    this.checkFlags("lookupAndDelete", flags);
    this.elemAttr(this.keyAddr, this.valAddr, flags);
    const r = this.sys(BpfCmd.MapLookupAndDeleteElem);
    if (r === 0) value.set(this.arena.u8.subarray(this.valOff, this.valOff + this.valueBytes));
    return r;
  }

  getNextKey(key: Uint8Array | null, nextKey: Uint8Array): number {
    if (key !== null && key !== undefined) this.putKey("getNextKey", key, this.keyOff);
    if (!(nextKey instanceof Uint8Array) || nextKey.length < this.info.keySize)
      invalid("getNextKey", `nextKey must be a Uint8Array of at least ${this.info.keySize} bytes`);
    this.elemAttr(key == null ? 0n : this.keyAddr, this.nextAddr, 0);
    const r = this.sys(BpfCmd.MapGetNextKey);
    if (r === 0) nextKey.set(this.arena.u8.subarray(this.nextOff, this.nextOff + this.info.keySize));
    return r;
  }

  private scratch(bytes: number): NativeBuf {
    if (!this.batchBuf || this.batchBuf.u8.length < bytes) {
      this.batchBuf?.free();
      this.batchBuf = this.ffi.alloc(Math.max(bytes, 4096));
    }
    return this.batchBuf;
  }

  private doBatch(cmd: number, op: string, args: BatchArgs, lookup: boolean): BatchResult {
    if (args === null || typeof args !== "object") invalid(op, "batch arguments must be an object");
    const count = args.count;
    if (!Number.isInteger(count) || count < 0 || count > 0xffffffff)
      invalid(op, `count must be a u32, got ${count}`);
    const elemFlags = args.elemFlags ?? 0;
    const flags = args.flags ?? 0;
    this.checkFlags(op, elemFlags);
    this.checkFlags(op, flags);
    const ks = this.info.keySize;
    const vs = this.valueBytes;
    const keys = args.keys ?? (lookup ? new Uint8Array(count * ks) : undefined);
    const values = args.values ?? (lookup ? new Uint8Array(count * vs) : new Uint8Array(0));
    if (!(keys instanceof Uint8Array) || keys.length < count * ks)
      invalid(op, `keys must be a Uint8Array of at least count * key_size = ${count * ks} bytes`);
    if (
      !(values instanceof Uint8Array) ||
      ((lookup || cmd === BpfCmd.MapUpdateBatch) && values.length < count * vs)
    )
      invalid(op, `values must be a Uint8Array of at least count * value_size = ${count * vs} bytes`);
    const kOff = 0;
    const vOff = Math.ceil((count * ks) / 8) * 8;
    const buf = this.scratch(vOff + count * vs);
    if (!lookup) {
      buf.u8.set(keys.subarray(0, count * ks), kOff);
      if (cmd === BpfCmd.MapUpdateBatch) buf.u8.set(values.subarray(0, count * vs), vOff);
    }
    const cur = this.arena.dv;
    const inBatch = args.inBatch;
    if (inBatch != null) cur.setUint32(this.cursorOff, inBatch >>> 0, true);
    cur.setUint32(this.cursorOff + 8, OUT_BATCH_UNSET, true);
    const dv = this.attrClear();
    dv.setBigUint64(BATCH_IN_BATCH, inBatch == null ? 0n : this.inCursorAddr, true);
    dv.setBigUint64(BATCH_OUT_BATCH, this.outCursorAddr, true);
    dv.setBigUint64(BATCH_KEYS, buf.addr + BigInt(kOff), true);
    dv.setBigUint64(BATCH_VALUES, buf.addr + BigInt(vOff), true);
    dv.setUint32(BATCH_COUNT, count, true);
    dv.setUint32(BATCH_MAP_FD, this.fd, true);
    dv.setUint32(BATCH_ELEM_FLAGS, elemFlags >>> 0, true);
    dv.setUint32(BATCH_ELEM_FLAGS + 4, Math.floor(elemFlags / 0x1_0000_0000) >>> 0, true);
    dv.setUint32(BATCH_FLAGS, flags >>> 0, true);
    dv.setUint32(BATCH_FLAGS + 4, Math.floor(flags / 0x1_0000_0000) >>> 0, true);
    const err = this.sys(cmd);
    const n = this.arena.dv.getUint32(BATCH_COUNT, true);
    const ob = this.arena.dv.getUint32(this.cursorOff + 8, true);
    if (lookup) {
      const got = Math.min(n, count);
      keys.set(buf.u8.subarray(kOff, kOff + got * ks));
      values.set(buf.u8.subarray(vOff, vOff + got * vs));
    }
    return { err, count: n, outBatch: ob === OUT_BATCH_UNSET ? null : ob, keys, values };
  }

  lookupBatch(args: BatchArgs): BatchResult {
    return this.doBatch(BpfCmd.MapLookupBatch, "lookupBatch", args, true);
  }

  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    return this.doBatch(BpfCmd.MapLookupAndDeleteBatch, "lookupAndDeleteBatch", args, true);
  }

  updateBatch(args: BatchArgs): BatchResult {
    return this.doBatch(BpfCmd.MapUpdateBatch, "updateBatch", args, false);
  }

  deleteBatch(args: BatchArgs): BatchResult {
    return this.doBatch(BpfCmd.MapDeleteBatch, "deleteBatch", args, false);
  }

  /** What an outer map is given to store this map: its fd (the kernel stores the map, lookups return its id). */
  mapRef(): number {
    return this.fd;
  }

  freeze(): number {
    const dv = this.attrClear();
    dv.setUint32(0, this.fd, true);
    return this.sys(BpfCmd.MapFreeze);
  }

  /** The kernel's memlock figure for this map (/proc/self/fdinfo). */
  memoryUsage(): number {
    return fdMemlock(this.fd);
  }

  /** Number of elements, found by iterating get_next_key. */
  count(): number {
    let n = 0;
    for (const _ of walkKeys(this, { op: "count", atLimit: "stop" })) n++;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Before the fd is closed: a later open may reuse its number for another object.
    poisonClosed(this, "map", "close() closed this object's file descriptor");
    if (this.owned) this.ffi.close(this.fd);
    this.arena.free();
    this.batchBuf?.free();
  }
}

/** Whether bpf() works here, and if not, why. Never throws. */
export function kernelAvailable(): { ok: boolean; reason: string } {
  try {
    const m = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 1 });
    m.close();
    return { ok: true, reason: "bpf() works" };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}
