import { BpfError, Errno, errnoName, invalid } from "../errors.js";
import type { MapInfo } from "../map/raw-map.js";
import type { MapSpec } from "../map/spec.js";
import { BpfCmd, type MapType } from "../uapi.js";
import {
  ATTR_BYTES,
  decodeMapInfo,
  INFO_BPF_FD,
  INFO_LEN,
  INFO_PTR,
  type KernelMapInfo,
  MAP_INFO_BYTES,
} from "./attr.js";
import { bpfFfi, fdinfoNumber, fdMemlock } from "./bpf-syscall.js";
import { capabilityHint, strerror } from "./errno-text.js";
import { kernelMapTypeName } from "./map-types.js";

/** The MapInfo of a map the kernel described (every size from BPF_OBJ_GET_INFO_BY_FD). */
export function mapInfoOf(real: KernelMapInfo, nrCpus: number, valueBytes: number): MapInfo {
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

export function listing(fd: number): KernelMapListing {
  const info = mapInfoOfFd(fd, "list");
  return {
    ...info,
    typeName: kernelMapTypeName(info.type),
    memlock: fdMemlock(fd),
    frozen: fdinfoNumber(fd, "frozen"),
  };
}

/** cilium/ebpf's MapSpec.Compatible: every given field must be what the kernel has. */
export function checkCompatible(op: string, what: string, real: KernelMapInfo, want: Partial<MapSpec>): void {
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
export function objCall(op: string, cmd: number, path: string, fd: number): number {
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
export function idCall<T>(cmd: number, id: number, done: (r: number, attr: DataView, errno: number) => T): T {
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
export function getFdById(op: string, id: number): number {
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
export function nextMapId(op: string, start: number): number {
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

/** BPF_OBJ_GET_INFO_BY_FD on any fd: the map's info, or BpfError (EINVAL for an fd that is not a map). */
export function mapInfoOfFd(fd: number, op: string): KernelMapInfo {
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
