/**
 * KernelMap: a real kernel BPF map behind htab's RawMap interface. Each call
 * is one bpf() syscall over one preallocated native arena per map (attr,
 * key, value and next-key slots), so a call allocates nothing in JS.
 *
 * bpf_attr offsets are the uapi ones (include/uapi/linux/bpf.h).
 */

import { unlinkSync } from "node:fs";
import type { Codec } from "../api/codecs.js";
import { poisonClosed } from "../core/closed.js";
import { walkKeys } from "../core/key-walk.js";
import { LastError } from "../core/last-error.js";
import type { BatchArgs, BatchResult, MapInfo, RawMap } from "../core/raw-map.js";
import type { MapSpec } from "../core/spec.js";
import { BpfError, Errno, errnoName, invalid } from "../errors.js";
import { syscallValueBytes } from "../layout/layout.js";
import { BpfCmd, MapType } from "../uapi.js";
import {
  bpfFfi,
  fdinfoNumber,
  fdMemlock,
  isMapFd,
  type NativeBuf,
  possibleCpus,
  unprivilegedBpfDisabled,
} from "./bpf-syscall.js";
import { type Btf, type BtfDecl, mapCodecs, parseBtf, writeBtf } from "./btf.js";
import { kernelMapTypeName, kernelTypeIsPercpu, kernelTypeSupported } from "./map-types.js";

const ATTR_BYTES = 128;
// BPF_MAP_CREATE
const CREATE_MAP_TYPE = 0;
const CREATE_KEY_SIZE = 4;
const CREATE_VALUE_SIZE = 8;
const CREATE_MAX_ENTRIES = 12;
const CREATE_MAP_FLAGS = 16;
const CREATE_INNER_MAP_FD = 20;
const CREATE_NUMA_NODE = 24;
const CREATE_MAP_NAME = 28;
const CREATE_BTF_FD = 48;
const CREATE_BTF_KEY_TYPE_ID = 52;
const CREATE_BTF_VALUE_TYPE_ID = 56;
// BPF_BTF_LOAD, BPF_BTF_GET_FD_BY_ID, struct bpf_btf_info
const BTF_LOAD_BTF = 0;
const BTF_LOAD_LOG_BUF = 8;
const BTF_LOAD_SIZE = 16;
const BTF_LOAD_LOG_SIZE = 20;
const BTF_LOAD_LOG_LEVEL = 24;
const BTF_INFO_BYTES = 32;
const BTF_INFO_BTF = 0;
const BTF_INFO_BTF_SIZE = 8;
// BPF_MAP_*_ELEM
const ELEM_MAP_FD = 0;
const ELEM_KEY = 8;
const ELEM_VALUE = 16;
const ELEM_FLAGS = 24;
// BPF_MAP_*_BATCH
const BATCH_IN_BATCH = 0;
const BATCH_OUT_BATCH = 8;
const BATCH_KEYS = 16;
const BATCH_VALUES = 24;
const BATCH_COUNT = 32;
const BATCH_MAP_FD = 36;
const BATCH_ELEM_FLAGS = 40;
const BATCH_FLAGS = 48;
// BPF_OBJ_GET_INFO_BY_FD and struct bpf_map_info
const INFO_BPF_FD = 0;
const INFO_LEN = 4;
const INFO_PTR = 8;
const MAP_INFO_BYTES = 88;
const MAP_INFO_TYPE = 0;
const MAP_INFO_ID = 4;
const MAP_INFO_KEY_SIZE = 8;
const MAP_INFO_VALUE_SIZE = 12;
const MAP_INFO_MAX_ENTRIES = 16;
const MAP_INFO_MAP_FLAGS = 20;
const MAP_INFO_NAME = 24;
const MAP_INFO_NAME_BYTES = 16;
const MAP_INFO_BTF_ID = 64;
const MAP_INFO_BTF_KEY_TYPE_ID = 68;
const MAP_INFO_BTF_VALUE_TYPE_ID = 72;

/** What BPF_OBJ_GET_INFO_BY_FD says of a map (struct bpf_map_info). */
export interface KernelMapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

function decodeMapInfo(dv: DataView): KernelMapInfo {
  let name = "";
  for (let i = 0; i < MAP_INFO_NAME_BYTES; i++) {
    const c = dv.getUint8(MAP_INFO_NAME + i);
    if (c === 0) break;
    name += String.fromCharCode(c);
  }
  return {
    type: dv.getUint32(MAP_INFO_TYPE, true),
    id: dv.getUint32(MAP_INFO_ID, true),
    keySize: dv.getUint32(MAP_INFO_KEY_SIZE, true),
    valueSize: dv.getUint32(MAP_INFO_VALUE_SIZE, true),
    maxEntries: dv.getUint32(MAP_INFO_MAX_ENTRIES, true),
    flags: dv.getUint32(MAP_INFO_MAP_FLAGS, true),
    name,
    btfId: dv.getUint32(MAP_INFO_BTF_ID, true),
    btfKeyTypeId: dv.getUint32(MAP_INFO_BTF_KEY_TYPE_ID, true),
    btfValueTypeId: dv.getUint32(MAP_INFO_BTF_VALUE_TYPE_ID, true),
  };
}

/** "Not written by the kernel" marker for out_batch: no bucket index reaches it. */
const OUT_BATCH_UNSET = 0xffffffff;

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
  btf?: { blob: Uint8Array; keyTypeId: number; valueTypeId: number } | { key: BtfDecl; value: BtfDecl };
}

/** The element and batch commands, which KernelMap refuses on types it has no backend for. */
const ELEMENT_CMDS = new Set<number>([
  BpfCmd.MapLookupElem,
  BpfCmd.MapUpdateElem,
  BpfCmd.MapDeleteElem,
  BpfCmd.MapGetNextKey,
  BpfCmd.MapLookupAndDeleteElem,
  BpfCmd.MapLookupBatch,
  BpfCmd.MapLookupAndDeleteBatch,
  BpfCmd.MapUpdateBatch,
  BpfCmd.MapDeleteBatch,
]);

const CMD_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(BpfCmd).map(([name, n]) => [
    n,
    `BPF_${name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()}`,
  ]),
);

/**
 * What a bare errno from bpf() means for this command, as the SAB backend
 * would say it: "map full (max_entries 1024)" rather than "E2BIG".
 */
function explainErrno(cmd: number, e: number, info: MapInfo): string {
  const name = CMD_NAMES[cmd] ?? `command ${cmd}`;
  const update = cmd === BpfCmd.MapUpdateElem || cmd === BpfCmd.MapUpdateBatch;
  const lookup = cmd === BpfCmd.MapLookupElem || cmd === BpfCmd.MapLookupAndDeleteElem;
  switch (e) {
    case Errno.E2BIG:
      if (update) return `map full (max_entries ${info.maxEntries} reached)`;
      break;
    case Errno.EEXIST:
      if (update) return "key already exists (BPF_NOEXIST)";
      break;
    case Errno.ENOENT:
      if (update) return "key not found (BPF_EXIST)";
      if (lookup || cmd === BpfCmd.MapDeleteElem || cmd === BpfCmd.MapDeleteBatch) return "key not found";
      if (cmd === BpfCmd.MapGetNextKey) return "no more keys";
      if (cmd === BpfCmd.MapLookupBatch || cmd === BpfCmd.MapLookupAndDeleteBatch)
        return "reached the last bucket";
      break;
    case Errno.EPERM:
      return `${name} refused: the map is frozen or read-only for the control plane, or ${capabilityHint()}`;
    case Errno.EACCES:
      return `${name} refused: the map is BPF_F_RDONLY/BPF_F_WRONLY for this access, or ${capabilityHint()}`;
    case Errno.EINVAL:
      return `${name}: the kernel refused the flags or arguments (unknown flag bits, BPF_F_LOCK without a bpf_spin_lock, a bad cursor)`;
    case Errno.ENOSPC:
      return "a bucket holds more elements than count: call again with a larger count";
    case Errno.ENOMEM:
      return `${name}: the kernel could not allocate (memlock or memory cgroup limit)`;
    case Errno.EBUSY:
      return `${name}: busy (a program holds the map's lock on this CPU)`;
  }
  return `${name} failed: ${strerror(e)}`;
}

/** Say which capability is missing when bpf() refuses. */
function capabilityHint(): string {
  const uid = typeof process.getuid === "function" ? process.getuid() : -1;
  const d = unprivilegedBpfDisabled();
  if (uid === 0) return "bpf() refused even for root: a seccomp filter or LSM blocks it";
  return `needs CAP_BPF (CAP_SYS_ADMIN for BPF_F_ZERO_SEED) or root; uid=${uid}, kernel.unprivileged_bpf_disabled=${d}`;
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
      if (opts.btf !== undefined) {
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
    const ffi = bpfFfi();
    const attr = ffi.alloc(ATTR_BYTES);
    const info = ffi.alloc(MAP_INFO_BYTES);
    try {
      attr.dv.setUint32(INFO_BPF_FD, fd, true);
      attr.dv.setUint32(INFO_LEN, MAP_INFO_BYTES, true);
      attr.dv.setBigUint64(INFO_PTR, info.addr, true);
      if (ffi.call(BpfCmd.ObjGetInfoByFd, attr.ptr, ATTR_BYTES) < 0) {
        const e = ffi.errno();
        throw new BpfError(
          op,
          e,
          `BPF_OBJ_GET_INFO_BY_FD on fd ${fd} failed: ${e === Errno.EBADF || e === Errno.EBADFD ? "not an open fd" : e === Errno.EINVAL ? "not a BPF object" : errnoName(e)}`,
        );
      }
      return decodeMapInfo(info.dv);
    } finally {
      info.free();
      attr.free();
    }
  }

  /** BPF_OBJ_GET_INFO_BY_FD: id, max_entries and flags as the kernel reports them (infoOfFd() has every field). */
  objInfo(): { id: number; maxEntries: number; flags: number } {
    if (this.closed) invalid("objInfo", "map is closed");
    const { id, maxEntries, flags } = KernelMap.infoOfFd(this.fd, "objInfo");
    return { id, maxEntries, flags };
  }

  private lastErrno = 0;

  private attrClear(): DataView {
    this.arena.u8.fill(0, 0, ATTR_BYTES);
    return this.arena.dv;
  }

  /** Issue `cmd`; 0 or -errno. */
  private sys(cmd: number): number {
    if (this.closed) invalid("bpf", "map is closed");
    if (!this.elementCalls && ELEMENT_CMDS.has(cmd)) {
      this.lastErrno = Errno.EOPNOTSUPP;
      return this.err.fail(
        -Errno.EOPNOTSUPP,
        `htab drives element calls on hash maps only; this is a ${kernelMapTypeName(this.info.type)} map`,
      );
    }
    const r = this.ffi.call(cmd, this.arena.ptr, ATTR_BYTES);
    if (r >= 0) return 0;
    this.lastErrno = this.ffi.errno();
    return this.err.failWith(-this.lastErrno, cmd + 1, this.lastErrno);
  }

  private putKey(op: string, key: Uint8Array, off: number): void {
    if (!(key instanceof Uint8Array)) invalid(op, "key must be a Uint8Array");
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
      invalid(op, `flags must be a non-negative integer, got ${String(flags)}`);
  }

  private checkValue(op: string, value: unknown, exact: boolean): asserts value is Uint8Array {
    if (!(value instanceof Uint8Array)) invalid(op, "value must be a Uint8Array");
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
    poisonClosed(this);
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

/** glibc's strerror() text for the errnos bpf() returns (what bpftool prints). */
export function strerror(e: number): string {
  const TEXT: Record<number, string> = {
    1: "Operation not permitted",
    2: "No such file or directory",
    3: "No such process",
    4: "Interrupted system call",
    7: "Argument list too long",
    9: "Bad file descriptor",
    11: "Resource temporarily unavailable",
    12: "Cannot allocate memory",
    13: "Permission denied",
    14: "Bad address",
    16: "Device or resource busy",
    17: "File exists",
    19: "No such device",
    20: "Not a directory",
    22: "Invalid argument",
    24: "Too many open files",
    28: "No space left on device",
    34: "Numerical result out of range",
    38: "Function not implemented",
    40: "Too many levels of symbolic links",
    75: "Value too large for defined data type",
    77: "File descriptor in bad state",
    95: "Operation not supported",
    110: "Connection timed out",
  };
  return TEXT[e] ?? `Unknown error ${e}`;
}

/** The MapInfo of a map the kernel described (every size from BPF_OBJ_GET_INFO_BY_FD). */
function mapInfoOf(real: KernelMapInfo, nrCpus: number, valueBytes: number): MapInfo {
  return Object.freeze({
    type: real.type as MapType,
    keySize: real.keySize,
    valueSize: real.valueSize,
    valueBytes,
    maxEntries: real.maxEntries,
    flags: real.flags,
    nrCpus,
    id: real.id,
    name: real.name,
    btfId: real.btfId,
    btfKeyTypeId: real.btfKeyTypeId,
    btfValueTypeId: real.btfValueTypeId,
  });
}

/** A map as KernelMap.list() and `htab map show` report it (bpftool's fields). */
export interface KernelMapListing extends KernelMapInfo {
  /** bpftool's type name ("hash", "ringbuf", …). */
  typeName: string;
  /** bytes_memlock (from fdinfo). */
  memlock: number;
  /** 1 once BPF_MAP_FREEZE was called. */
  frozen: number;
}

function listing(fd: number): KernelMapListing {
  const info = KernelMap.infoOfFd(fd, "list");
  return {
    ...info,
    typeName: kernelMapTypeName(info.type),
    memlock: fdMemlock(fd),
    frozen: fdinfoNumber(fd, "frozen"),
  };
}

/** cilium/ebpf's MapSpec.Compatible: every given field must be what the kernel has. */
function checkCompatible(op: string, what: string, real: KernelMapInfo, want: Partial<MapSpec>): void {
  for (const [field, theirs] of [
    ["type", real.type],
    ["keySize", real.keySize],
    ["valueSize", real.valueSize],
    ["maxEntries", real.maxEntries],
    ["flags", real.flags],
  ] as const) {
    const mine = want[field];
    if (mine !== undefined && mine !== theirs)
      invalid(
        op,
        `${what} is not the map expected: ${field} is ${field === "type" ? `${theirs} (${kernelMapTypeName(theirs)})` : theirs}, expected ${String(mine)}`,
      );
  }
}

/** BPF_OBJ_GET (returns the fd) or BPF_OBJ_PIN (of `fd`) on `path`, with errors that say what happened. */
function objCall(op: string, cmd: number, path: string, fd: number): number {
  const ffi = bpfFfi();
  const bytes = Buffer.from(path, "utf8");
  if (bytes.includes(0)) invalid(op, "path must not contain a NUL byte");
  const str = ffi.alloc(bytes.length + 1);
  const attr = ffi.alloc(ATTR_BYTES);
  try {
    str.u8.set(bytes);
    attr.dv.setBigUint64(0, str.addr, true); // pathname
    attr.dv.setUint32(8, fd, true); // bpf_fd (pin)
    const r = ffi.call(cmd, attr.ptr, ATTR_BYTES);
    if (r >= 0) return r;
    const e = ffi.errno();
    const pin = cmd === BpfCmd.ObjPin;
    let detail: string;
    if (e === Errno.ENOENT) detail = pin ? `no such directory for ${path}` : `no such pin: ${path}`;
    else if (e === Errno.EEXIST) detail = `${path} already exists`;
    else if (e === Errno.EPERM || e === Errno.EACCES)
      detail =
        `${pin ? "pinning at" : "opening"} ${path} was refused (${strerror(e)}): ` +
        (process.getuid?.() === 0
          ? "it is not a BPF object on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)"
          : `the path must be on a bpffs mount, and ${capabilityHint()}`);
    else if (e === Errno.EINVAL) detail = `${path} is not a BPF object on a bpffs mount`;
    else detail = `${pin ? "BPF_OBJ_PIN" : "BPF_OBJ_GET"} of ${path} failed: ${strerror(e)}`;
    throw new BpfError(op, e, detail);
  } finally {
    attr.free();
    str.free();
  }
}

/**
 * One bpf() call whose attr holds a u32 at offset 0 (an id): `done` sees the
 * result and the attr (the kernel writes its answer there), or the errno.
 */
function idCall<T>(cmd: number, id: number, done: (r: number, attr: DataView, errno: number) => T): T {
  const ffi = bpfFfi();
  const attr = ffi.alloc(ATTR_BYTES);
  try {
    attr.dv.setUint32(0, id, true);
    const r = ffi.call(cmd, attr.ptr, ATTR_BYTES);
    return done(r, attr.dv, r < 0 ? ffi.errno() : 0);
  } finally {
    attr.free();
  }
}

/** BPF_MAP_GET_FD_BY_ID. */
function getFdById(op: string, id: number): number {
  return idCall(BpfCmd.MapGetFdById, id, (r, _attr, e) => {
    if (r >= 0) return r;
    throw new BpfError(
      op,
      e,
      e === Errno.ENOENT
        ? `no map with id ${id}`
        : e === Errno.EPERM
          ? `opening map id ${id} was refused: needs CAP_SYS_ADMIN (${capabilityHint()})`
          : `BPF_MAP_GET_FD_BY_ID ${id} failed: ${strerror(e)}`,
    );
  });
}

/** BPF_MAP_GET_NEXT_ID after `start`; 0 at the end. */
function nextMapId(op: string, start: number): number {
  return idCall(BpfCmd.MapGetNextId, start, (r, attr, e) => {
    if (r >= 0) return attr.getUint32(4, true);
    if (e === Errno.ENOENT) return 0;
    throw new BpfError(
      op,
      e,
      e === Errno.EPERM ? `listing maps needs CAP_SYS_ADMIN (${capabilityHint()})` : strerror(e),
    );
  });
}

/** A blob holding a key and a value declaration. */
function declBlob(
  key: BtfDecl,
  value: BtfDecl,
): { blob: Uint8Array; keyTypeId: number; valueTypeId: number } {
  const { blob, ids } = writeBtf([key, value]);
  return { blob, keyTypeId: ids[0], valueTypeId: ids[1] };
}

/** BPF_BTF_LOAD; the verifier's log is in the error when the kernel refuses the blob. */
export function loadBtf(blob: Uint8Array): number {
  const ffi = bpfFfi();
  const attr = ffi.alloc(ATTR_BYTES);
  const data = ffi.alloc(blob.length);
  const log = ffi.alloc(64 * 1024);
  try {
    data.u8.set(blob);
    const load = (level: number) => {
      attr.u8.fill(0);
      attr.dv.setBigUint64(BTF_LOAD_BTF, data.addr, true);
      attr.dv.setUint32(BTF_LOAD_SIZE, blob.length, true);
      if (level > 0) {
        attr.dv.setBigUint64(BTF_LOAD_LOG_BUF, log.addr, true);
        attr.dv.setUint32(BTF_LOAD_LOG_SIZE, log.u8.length, true);
        attr.dv.setUint32(BTF_LOAD_LOG_LEVEL, level, true);
      }
      return ffi.call(BpfCmd.BtfLoad, attr.ptr, ATTR_BYTES);
    };
    const fd = load(0);
    if (fd >= 0) return fd;
    const e = ffi.errno();
    load(1); // again with the log, for the message
    const end = log.u8.indexOf(0);
    const text = new TextDecoder().decode(log.u8.subarray(0, end < 0 ? log.u8.length : end)).trim();
    throw new BpfError(
      "btf",
      e,
      `BPF_BTF_LOAD refused the types: ${text.split("\n").slice(-4).join(" / ") || strerror(e)}`,
    );
  } finally {
    log.free();
    data.free();
    attr.free();
  }
}

/** The raw blob of BTF object `id`. */
function readBtfBlob(id: number): Uint8Array {
  const ffi = bpfFfi();
  const fd = idCall(BpfCmd.BtfGetFdById, id, (r, _a, e) => {
    if (r >= 0) return r;
    throw new BpfError("btf", e, `BPF_BTF_GET_FD_BY_ID ${id} failed: ${strerror(e)}`);
  });
  const attr = ffi.alloc(ATTR_BYTES);
  const info = ffi.alloc(BTF_INFO_BYTES);
  try {
    const get = (buf: { addr: bigint } | null, size: number) => {
      attr.u8.fill(0);
      info.u8.fill(0);
      attr.dv.setUint32(INFO_BPF_FD, fd, true);
      attr.dv.setUint32(INFO_LEN, BTF_INFO_BYTES, true);
      attr.dv.setBigUint64(INFO_PTR, info.addr, true);
      if (buf !== null) {
        info.dv.setBigUint64(BTF_INFO_BTF, buf.addr, true);
        info.dv.setUint32(BTF_INFO_BTF_SIZE, size, true);
      }
      if (ffi.call(BpfCmd.ObjGetInfoByFd, attr.ptr, ATTR_BYTES) < 0)
        throw new BpfError(
          "btf",
          ffi.errno(),
          `BPF_OBJ_GET_INFO_BY_FD on BTF ${id} failed: ${strerror(ffi.errno())}`,
        );
      return info.dv.getUint32(BTF_INFO_BTF_SIZE, true);
    };
    const size = get(null, 0);
    const out = ffi.alloc(size);
    try {
      get(out, size);
      return out.u8.slice(0, size);
    } finally {
      out.free();
    }
  } finally {
    info.free();
    attr.free();
    ffi.close(fd);
  }
}
