/**
 * Real BPF programs next to htab's maps: a small typed instruction builder
 * (include/uapi/linux/bpf.h's struct bpf_insn, no compiler needed),
 * BPF_PROG_LOAD with the verifier's log in its error, and
 * BPF_PROG_TEST_RUN. A program and TypeScript then share one kernel map.
 *
 * An instruction is 8 bytes: opcode (class | size/op | mode/source),
 * dst_reg (low nibble) and src_reg (high nibble), a signed 16-bit offset and
 * a signed 32-bit immediate; a 64-bit immediate load takes two.
 */

import { BpfError, Errno, invalid } from "../errors.js";
import { BpfCmd } from "../uapi.js";
import { bpfFfi, pinThreadToCpu } from "./bpf-syscall.js";
import { strerror } from "./errno-text.js";
import type { KernelMap } from "./kernel-map.js";

/** One struct bpf_insn. */
export interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

/** Registers: R0 (return value), R1-R5 (arguments), R6-R9 (callee-saved), R10 (frame pointer, read-only). */
export const R0 = 0;
export const R1 = 1;
export const R2 = 2;
export const R3 = 3;
export const R4 = 4;
export const R5 = 5;
export const R6 = 6;
export const R7 = 7;
export const R8 = 8;
export const R9 = 9;
export const R10 = 10;

// Instruction classes, sizes, modes, ALU and JMP operations (uapi bpf_common.h / bpf.h).
const LD = 0x00;
const LDX = 0x01;
const ST = 0x02;
const STX = 0x03;
const ALU64 = 0x07;
const JMP = 0x05;
const SIZE = { w: 0x00, h: 0x08, b: 0x10, dw: 0x18 } as const;
const IMM = 0x00;
const MEM = 0x60;
const ATOMIC = 0xc0;
const K = 0x00;
const X = 0x08;
/** ALU operations by name (BPF_ADD …). */
export const AluOp = {
  add: 0x00,
  sub: 0x10,
  mul: 0x20,
  div: 0x30,
  or: 0x40,
  and: 0x50,
  lsh: 0x60,
  rsh: 0x70,
  mod: 0x90,
  xor: 0xa0,
  mov: 0xb0,
  arsh: 0xc0,
} as const;
/** Conditional jumps by name (BPF_JEQ …). */
export const JmpOp = {
  jeq: 0x10,
  jgt: 0x20,
  jge: 0x30,
  jset: 0x40,
  jne: 0x50,
  jsgt: 0x60,
  jsge: 0x70,
  jlt: 0xa0,
  jle: 0xb0,
  jslt: 0xc0,
  jsle: 0xd0,
} as const;
/** Helper ids (enum bpf_func_id) htab's programs use. */
export const Helper = {
  mapLookupElem: 1,
  mapUpdateElem: 2,
  mapDeleteElem: 3,
  getPrandomU32: 7,
  getSmpProcessorId: 8,
  spinLock: 93,
  spinUnlock: 94,
} as const;
/** BPF_PSEUDO_MAP_FD: the 64-bit immediate of a map load is a map fd. */
const PSEUDO_MAP_FD = 1;

type Size = keyof typeof SIZE;

function reg(r: number): number {
  if (!Number.isInteger(r) || r < 0 || r > 10) invalid("insn", `register r${r} does not exist (r0..r10)`);
  return r;
}
function insn(code: number, dst: number, src: number, off: number, imm: number): Insn {
  if (!Number.isInteger(off) || off < -32768 || off > 32767)
    invalid("insn", `offset ${off} is not a signed 16-bit number`);
  if (!Number.isInteger(imm) || imm < -(2 ** 31) || imm > 2 ** 32 - 1)
    invalid("insn", `immediate ${imm} is not 32 bits`);
  return { code, dst: reg(dst), src: reg(src), off, imm: imm | 0 };
}

/** The instruction builder: each function is one BPF instruction (two for ldMapFd). */
export const asm = {
  /** dst = imm (64-bit move). */
  movImm: (dst: number, imm: number): Insn => insn(ALU64 | AluOp.mov | K, dst, 0, 0, imm),
  /** dst = src. */
  mov: (dst: number, src: number): Insn => insn(ALU64 | AluOp.mov | X, dst, src, 0, 0),
  /** dst op= imm (64-bit). */
  aluImm: (op: keyof typeof AluOp, dst: number, imm: number): Insn =>
    insn(ALU64 | AluOp[op] | K, dst, 0, 0, imm),
  /** dst op= src (64-bit). */
  alu: (op: keyof typeof AluOp, dst: number, src: number): Insn =>
    insn(ALU64 | AluOp[op] | X, dst, src, 0, 0),
  /** dst = *(size *)(src + off). */
  load: (size: Size, dst: number, src: number, off: number): Insn =>
    insn(LDX | SIZE[size] | MEM, dst, src, off, 0),
  /** *(size *)(dst + off) = src. */
  store: (size: Size, dst: number, off: number, src: number): Insn =>
    insn(STX | SIZE[size] | MEM, dst, src, off, 0),
  /** *(size *)(dst + off) = imm. */
  storeImm: (size: Size, dst: number, off: number, imm: number): Insn =>
    insn(ST | SIZE[size] | MEM, dst, 0, off, imm),
  /** Atomic *(u32|u64 *)(dst + off) += src (BPF_ATOMIC | BPF_ADD). */
  atomicAdd: (size: "w" | "dw", dst: number, off: number, src: number): Insn =>
    insn(STX | SIZE[size] | ATOMIC, dst, src, off, AluOp.add),
  /** The map's fd as a 64-bit immediate in `dst` (BPF_LD_MAP_FD: two instructions). */
  ldMapFd: (dst: number, map: KernelMap): Insn[] => [
    insn(LD | SIZE.dw | IMM, dst, PSEUDO_MAP_FD, 0, map.fd),
    insn(0, 0, 0, 0, 0),
  ],
  /** if (dst op imm) goto pc + 1 + off. */
  jmpImm: (op: keyof typeof JmpOp, dst: number, imm: number, off: number): Insn =>
    insn(JMP | JmpOp[op] | K, dst, 0, off, imm),
  /** if (dst op src) goto pc + 1 + off. */
  jmp: (op: keyof typeof JmpOp, dst: number, src: number, off: number): Insn =>
    insn(JMP | JmpOp[op] | X, dst, src, off, 0),
  /** goto pc + 1 + off. */
  ja: (off: number): Insn => insn(JMP, 0, 0, off, 0),
  /** Call helper `id` (arguments in r1-r5, result in r0; r1-r5 are clobbered). */
  call: (id: number): Insn => insn(JMP | 0x80, 0, 0, 0, id),
  /** Return r0. */
  exit: (): Insn => insn(JMP | 0x90, 0, 0, 0, 0),
};

/** Flatten a program written as instructions and ldMapFd pairs. */
export function program(...parts: (Insn | Insn[])[]): Insn[] {
  return parts.flat();
}

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
    insns.forEach((x, i) => {
      code.u8[i * 8] = x.code;
      code.u8[i * 8 + 1] = (x.dst & 0x0f) | ((x.src & 0x0f) << 4);
      code.dv.setInt16(i * 8 + 2, x.off, true);
      code.dv.setInt32(i * 8 + 4, x.imm, true);
    });
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
