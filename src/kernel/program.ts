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
import { bpfFfi, onCpu, pinThreadToCpu } from "./bpf-syscall.js";
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
const PROG_TYPE_SYSCALL = 31;
// union bpf_attr, BPF_PROG_LOAD
const LOAD_PROG_BTF_FD = 72;
const LOAD_FUNC_INFO_REC_SIZE = 76;
const LOAD_FUNC_INFO = 80;
const LOAD_FUNC_INFO_CNT = 88;
const LOAD_LINE_INFO_REC_SIZE = 92;
const LOAD_LINE_INFO = 96;
const LOAD_LINE_INFO_CNT = 104;
// union bpf_attr, BPF_PROG_TEST_RUN
const RUN_PROG_FD = 0;
const RUN_RETVAL = 4;
const RUN_DATA_SIZE_IN = 8;
const RUN_DATA_SIZE_OUT = 12;
const RUN_DATA_IN = 16;
const RUN_DATA_OUT = 24;
const RUN_REPEAT = 32;
const RUN_DURATION = 36;
const RUN_CTX_SIZE_IN = 40;
const RUN_CTX_IN = 48;
/** Room for the packet after a run: XDP may grow it by up to a page (bpf_xdp_adjust_tail/head). */
const DATA_OUT_SLACK = 4096;

/** What BpfProgram.run() returns. */
export interface TestRunResult {
  /** r0's low 32 bits, unsigned. */
  retval: number;
  /** The packet after the run (data_out), or empty. */
  data: Uint8Array;
  /** The context after the run (a syscall program's ctx), or empty. */
  ctx: Uint8Array;
  /** Nanoseconds per run, averaged over `repeat` (the kernel's figure; measured here for syscall programs). */
  duration: number;
}

/** A verifier refusal: BpfError with the verifier's whole log. */
export class VerifierError extends BpfError {
  constructor(
    op: string,
    errno: number,
    detail: string,
    /** The verifier's log (log_level 1). */
    readonly log: string,
  ) {
    super(op, errno, detail);
  }
}

/** A loaded program. */
export class BpfProgram {
  private closed = false;
  /** False for a view of another thread's fd (openProgramFd): closing it leaves the fd open. */
  owned = true;
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
   * BPF_PROG_TEST_RUN with everything it returns: the packet after the run
   * (data_out) and, for a syscall program, its context after the run. A
   * syscall program takes no data and no repeat in the kernel: `repeat`
   * runs are made one by one here, each on the caller's `ctx` (the last
   * one's comes back), and timed here. `cpu`: this run only, on
   * that CPU (the thread's CPU mask is restored after it).
   * @throws BpfError with the kernel's errno (EINVAL for data the program type refuses)
   */
  run(data: Uint8Array, opts: { ctx?: Uint8Array; repeat?: number; cpu?: number } = {}): TestRunResult {
    if (this.closed) invalid("run", "program is closed");
    if (!(data instanceof Uint8Array)) invalid("run", "data must be a Uint8Array");
    const repeat = opts.repeat ?? 1;
    if (!Number.isInteger(repeat) || repeat < 1 || repeat > 0xffffffff)
      invalid("run", `repeat must be a u32 >= 1, got ${repeat}`);
    const go = () =>
      this.type === PROG_TYPE_SYSCALL
        ? this.runSyscall(data, opts.ctx, repeat)
        : this.runData(data, opts.ctx, repeat);
    return opts.cpu === undefined ? go() : onCpu("run", opts.cpu, go);
  }

  private runData(data: Uint8Array, ctx: Uint8Array | undefined, repeat: number): TestRunResult {
    const ffi = bpfFfi();
    const attr = ffi.alloc(ATTR_BYTES);
    const inBuf = ffi.alloc(data.length);
    const outBuf = ffi.alloc(data.length + DATA_OUT_SLACK);
    const ctxBuf = ctx !== undefined && ctx.length > 0 ? ffi.alloc(ctx.length) : null;
    try {
      inBuf.u8.set(data);
      attr.dv.setUint32(RUN_PROG_FD, this.fd, true);
      attr.dv.setUint32(RUN_DATA_SIZE_IN, data.length, true);
      attr.dv.setUint32(RUN_DATA_SIZE_OUT, outBuf.u8.length, true);
      if (data.length > 0) attr.dv.setBigUint64(RUN_DATA_IN, inBuf.addr, true);
      attr.dv.setBigUint64(RUN_DATA_OUT, outBuf.addr, true);
      attr.dv.setUint32(RUN_REPEAT, repeat, true);
      if (ctxBuf !== null && ctx !== undefined) {
        ctxBuf.u8.set(ctx);
        attr.dv.setUint32(RUN_CTX_SIZE_IN, ctx.length, true);
        attr.dv.setBigUint64(RUN_CTX_IN, ctxBuf.addr, true);
      }
      if (ffi.call(BpfCmd.ProgTestRun, attr.ptr, ATTR_BYTES) < 0) {
        const e = ffi.errno();
        throw new BpfError("run", e, `BPF_PROG_TEST_RUN failed: ${strerror(e)}`);
      }
      const n = Math.min(attr.dv.getUint32(RUN_DATA_SIZE_OUT, true), outBuf.u8.length);
      return {
        retval: attr.dv.getUint32(RUN_RETVAL, true),
        data: outBuf.u8.slice(0, n),
        ctx: new Uint8Array(0),
        duration: attr.dv.getUint32(RUN_DURATION, true),
      };
    } finally {
      ctxBuf?.free();
      outBuf.free();
      inBuf.free();
      attr.free();
    }
  }

  private runSyscall(data: Uint8Array, ctx: Uint8Array | undefined, repeat: number): TestRunResult {
    const ffi = bpfFfi();
    const attr = ffi.alloc(ATTR_BYTES);
    const size = ctx?.length ?? 0;
    const ctxBuf = ffi.alloc(size);
    const dataBuf = ffi.alloc(data.length);
    try {
      let retval = 0;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < repeat; i++) {
        attr.u8.fill(0);
        attr.dv.setUint32(RUN_PROG_FD, this.fd, true);
        if (data.length > 0) {
          // The kernel refuses data for a syscall program (EINVAL): pass it, as bpftool would, for its answer.
          dataBuf.u8.set(data);
          attr.dv.setUint32(RUN_DATA_SIZE_IN, data.length, true);
          attr.dv.setBigUint64(RUN_DATA_IN, dataBuf.addr, true);
        }
        if (ctx !== undefined && size > 0) {
          ctxBuf.u8.set(ctx); // each run on the caller's context, as the SAB backend runs it
          attr.dv.setUint32(RUN_CTX_SIZE_IN, size, true);
          attr.dv.setBigUint64(RUN_CTX_IN, ctxBuf.addr, true);
        }
        if (ffi.call(BpfCmd.ProgTestRun, attr.ptr, ATTR_BYTES) < 0) {
          const e = ffi.errno();
          throw new BpfError("run", e, `BPF_PROG_TEST_RUN failed: ${strerror(e)}`);
        }
        retval = attr.dv.getUint32(RUN_RETVAL, true);
      }
      const ns = Number(process.hrtime.bigint() - t0);
      return {
        retval,
        data: new Uint8Array(0),
        ctx: ctxBuf.u8.slice(0, size),
        duration: Math.round(ns / repeat),
      };
    } finally {
      dataBuf.free();
      ctxBuf.free();
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
    if (this.owned) bpfFfi().close(this.fd);
  }
}

/** A view of a program fd this process holds (a worker's view of its loader's program): close() leaves the fd open. */
export function openProgramFd(fd: number, type: number): BpfProgram {
  if (!Number.isInteger(fd) || fd < 0) invalid("attach", `fd must be a file descriptor, got ${String(fd)}`);
  const p = new BpfProgram(fd, type);
  p.owned = false;
  return p;
}

/**
 * BPF_PROG_LOAD. The verifier's log comes back in the error when it refuses.
 * @throws BpfError with the kernel's errno (EACCES/EINVAL from the verifier, EPERM without CAP_BPF)
 */
export function loadProgram(
  insns: Insn[],
  opts: {
    type?: number;
    license?: string;
    name?: string;
    /** prog_flags (BPF_F_SLEEPABLE = 16: syscall programs must be sleepable). */
    flags?: number;
    /** The object's BTF (BPF_BTF_LOAD fd) with func_info/line_info records (struct bpf_func_info, bpf_line_info). */
    btf?: { fd: number; funcInfo: Uint8Array; lineInfo: Uint8Array };
  } = {},
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
  const fi = ffi.alloc(opts.btf?.funcInfo.length ?? 0);
  const li = ffi.alloc(opts.btf?.lineInfo.length ?? 0);
  try {
    code.u8.set(encodeInsns(insns));
    if (opts.btf) {
      fi.u8.set(opts.btf.funcInfo);
      li.u8.set(opts.btf.lineInfo);
    }
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
      attr.dv.setUint32(44, opts.flags ?? 0, true); // prog_flags
      const btf = opts.btf;
      if (btf !== undefined) {
        attr.dv.setUint32(LOAD_PROG_BTF_FD, btf.fd, true);
        if (btf.funcInfo.length > 0) {
          attr.dv.setUint32(LOAD_FUNC_INFO_REC_SIZE, 8, true);
          attr.dv.setBigUint64(LOAD_FUNC_INFO, fi.addr, true);
          attr.dv.setUint32(LOAD_FUNC_INFO_CNT, btf.funcInfo.length / 8, true);
        }
        if (btf.lineInfo.length > 0) {
          attr.dv.setUint32(LOAD_LINE_INFO_REC_SIZE, 16, true);
          attr.dv.setBigUint64(LOAD_LINE_INFO, li.addr, true);
          attr.dv.setUint32(LOAD_LINE_INFO_CNT, btf.lineInfo.length / 16, true);
        }
      }
      return ffi.call(BpfCmd.ProgLoad, attr.ptr, ATTR_BYTES);
    };
    const fd = load(0);
    if (fd >= 0) return new BpfProgram(fd, type);
    const e = ffi.errno();
    load(1);
    const end = log.u8.indexOf(0);
    const text = new TextDecoder().decode(log.u8.subarray(0, end < 0 ? log.u8.length : end)).trim();
    if (e === Errno.EPERM)
      throw new BpfError(
        "loadProgram",
        e,
        "BPF_PROG_LOAD refused: needs CAP_BPF (and CAP_NET_ADMIN for socket filters) or root",
      );
    throw new VerifierError(
      "loadProgram",
      e,
      `the verifier refused the program: ${text.split("\n").slice(-6).join(" / ") || strerror(e)}`,
      text,
    );
  } finally {
    li.free();
    fi.free();
    log.free();
    lic.free();
    code.free();
    attr.free();
  }
}
