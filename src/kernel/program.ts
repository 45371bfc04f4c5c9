/**
 * Real BPF programs next to htab's maps: BPF_PROG_LOAD with the verifier's
 * log in its error, and BPF_PROG_TEST_RUN. A program and TypeScript then
 * share one kernel map. The instruction type, its encoding and the typed
 * builder (`asm`) live in bpf/isa.ts, the one definition of the ISA that the
 * userspace interpreter uses too; they are re-exported here.
 */

import { encodeInsns, type Insn } from "../bpf/isa.js";
import { BpfError, Errno, invalid } from "../errors.js";
import { BpfCmd } from "../uapi.js";
import { bpfFfi, pinThreadToCpu } from "./bpf-syscall.js";
import { strerror } from "./errno-text.js";

export {
  AluOp,
  asm,
  Helper,
  type Insn,
  JmpOp,
  program,
  R0,
  R1,
  R2,
  R3,
  R4,
  R5,
  R6,
  R7,
  R8,
  R9,
  R10,
} from "../bpf/isa.js";

/** BPF_PROG_TYPE_* htab's tests use. */
export const ProgType = { SocketFilter: 1, Xdp: 6 } as const;

const ATTR_BYTES = 128;

/** A loaded program. */
export class BpfProgram {
  private closed = false;
  constructor(
    readonly fd: number,
    readonly type: number,
  ) {}

  /**
   * BPF_PROG_TEST_RUN: run the program `repeat` times on `data` (a packet for
   * socket filters and XDP). `cpu`: pin this thread there first, so the run
   * (and its per-CPU map slots) is on that CPU.
   * @returns the program's return value and the kernel's average duration in ns
   */
  testRun(
    data: Uint8Array,
    opts: { repeat?: number; cpu?: number } = {},
  ): { retval: number; duration: number } {
    if (this.closed) invalid("testRun", "program is closed");
    if (!(data instanceof Uint8Array) || data.length < 14)
      invalid("testRun", "data must be a Uint8Array of at least 14 bytes (an Ethernet header)");
    const repeat = opts.repeat ?? 1;
    if (!Number.isInteger(repeat) || repeat < 1 || repeat > 0xffffffff)
      invalid("testRun", `repeat must be a u32 >= 1, got ${repeat}`);
    if (opts.cpu !== undefined && !pinThreadToCpu(opts.cpu))
      invalid("testRun", `cannot pin this thread to CPU ${opts.cpu}`);
    const ffi = bpfFfi();
    const attr = ffi.alloc(ATTR_BYTES);
    const buf = ffi.alloc(data.length);
    try {
      buf.u8.set(data);
      attr.dv.setUint32(0, this.fd, true);
      attr.dv.setUint32(8, data.length, true); // data_size_in
      attr.dv.setBigUint64(16, buf.addr, true); // data_in
      attr.dv.setUint32(32, repeat, true);
      if (ffi.call(BpfCmd.ProgTestRun, attr.ptr, ATTR_BYTES) < 0) {
        const e = ffi.errno();
        throw new BpfError("testRun", e, `BPF_PROG_TEST_RUN failed: ${strerror(e)}`);
      }
      return { retval: attr.dv.getUint32(4, true), duration: attr.dv.getUint32(36, true) };
    } finally {
      buf.free();
      attr.free();
    }
  }

  /**
   * A reusable test run for hot loops: `data` is native memory the caller
   * fills before each `run()` (one BPF_PROG_TEST_RUN, nothing allocated per
   * call), which returns the program's return value. `free()` when done.
   */
  runner(dataBytes: number): { data: Uint8Array; run(): number; free(): void } {
    if (this.closed) invalid("runner", "program is closed");
    if (!Number.isInteger(dataBytes) || dataBytes < 14) invalid("runner", "dataBytes must be at least 14");
    const ffi = bpfFfi();
    const attr = ffi.alloc(ATTR_BYTES);
    const buf = ffi.alloc(dataBytes);
    attr.dv.setUint32(0, this.fd, true);
    attr.dv.setUint32(8, dataBytes, true);
    attr.dv.setBigUint64(16, buf.addr, true);
    attr.dv.setUint32(32, 1, true);
    return {
      data: buf.u8,
      run: () => {
        if (ffi.call(BpfCmd.ProgTestRun, attr.ptr, ATTR_BYTES) < 0) {
          const e = ffi.errno();
          throw new BpfError("testRun", e, `BPF_PROG_TEST_RUN failed: ${strerror(e)}`);
        }
        return attr.dv.getUint32(4, true);
      },
      free: () => {
        buf.free();
        attr.free();
      },
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    bpfFfi().close(this.fd);
  }
}

/**
 * BPF_PROG_LOAD. The verifier's log comes back in the error when it refuses.
 * @throws BpfError with the kernel's errno (EACCES/EINVAL from the verifier, EPERM without CAP_BPF)
 */
export function loadProgram(
  insns: Insn[],
  opts: { type?: number; license?: string; name?: string } = {},
): BpfProgram {
  if (!Array.isArray(insns) || insns.length === 0)
    invalid("loadProgram", "a program needs at least one instruction");
  const type = opts.type ?? ProgType.SocketFilter;
  const ffi = bpfFfi();
  const attr = ffi.alloc(ATTR_BYTES);
  const code = ffi.alloc(insns.length * 8);
  const license = Buffer.from(`${opts.license ?? "GPL"}\0`);
  const lic = ffi.alloc(license.length);
  const log = ffi.alloc(1 << 20);
  try {
    code.u8.set(encodeInsns(insns));
    lic.u8.set(license);
    const load = (logLevel: number) => {
      attr.u8.fill(0);
      attr.dv.setUint32(0, type, true);
      attr.dv.setUint32(4, insns.length, true);
      attr.dv.setBigUint64(8, code.addr, true);
      attr.dv.setBigUint64(16, lic.addr, true);
      if (logLevel > 0) {
        attr.dv.setUint32(24, logLevel, true);
        attr.dv.setUint32(28, log.u8.length, true);
        attr.dv.setBigUint64(32, log.addr, true);
      }
      const name = (opts.name ?? "htab_prog").slice(0, 15);
      for (let i = 0; i < name.length; i++) attr.u8[48 + i] = name.charCodeAt(i) & 0x7f;
      return ffi.call(BpfCmd.ProgLoad, attr.ptr, ATTR_BYTES);
    };
    const fd = load(0);
    if (fd >= 0) return new BpfProgram(fd, type);
    const e = ffi.errno();
    load(1);
    const end = log.u8.indexOf(0);
    const text = new TextDecoder().decode(log.u8.subarray(0, end < 0 ? log.u8.length : end)).trim();
    throw new BpfError(
      "loadProgram",
      e,
      e === Errno.EPERM
        ? "BPF_PROG_LOAD refused: needs CAP_BPF (and CAP_NET_ADMIN for socket filters) or root"
        : `the verifier refused the program: ${text.split("\n").slice(-6).join(" / ") || strerror(e)}`,
    );
  } finally {
    log.free();
    lic.free();
    code.free();
    attr.free();
  }
}
