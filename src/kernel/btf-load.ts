import { type BtfDecl, writeBtf } from "../btf/write.js";
import { BpfError } from "../errors.js";
import { BpfCmd } from "../uapi.js";
import {
  ATTR_BYTES,
  BTF_INFO_BTF,
  BTF_INFO_BTF_SIZE,
  BTF_INFO_BYTES,
  BTF_LOAD_BTF,
  BTF_LOAD_LOG_BUF,
  BTF_LOAD_LOG_LEVEL,
  BTF_LOAD_LOG_SIZE,
  BTF_LOAD_SIZE,
  INFO_BPF_FD,
  INFO_LEN,
  INFO_PTR,
} from "./attr.js";
import { bpfFfi } from "./bpf-syscall.js";
import { strerror } from "./errno-text.js";
import { idCall } from "./map-objects.js";

/** A blob holding a key and a value declaration. */
export function declBlob(
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
export function readBtfBlob(id: number): Uint8Array {
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
