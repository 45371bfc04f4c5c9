/**
 * The BPF instruction set (RFC 9669, up to cpu v4), defined once: the
 * instruction type, its 8-byte encoding, the opcode fields, a typed builder,
 * and the decoder that checks a whole program the way the kernel's verifier
 * checks each instruction's fields (reserved fields zero, known opcodes,
 * jumps inside the program, LD_IMM64 pairs whole). The interpreter, the
 * disassembler, the ELF loader and the kernel backend's BPF_PROG_LOAD all
 * stand on this file.
 *
 * An instruction is 8 bytes, little-endian: opcode (class | op/size |
 * source/mode), dst_reg (low nibble) and src_reg (high nibble) of one byte,
 * a signed 16-bit offset and a signed 32-bit immediate. A 64-bit immediate
 * load (LD_IMM64) takes two slots, the second carrying the upper 32 bits.
 */

import { BpfError, Errno, invalid } from "../errors.js";

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

/** Instruction classes (the low 3 bits of the opcode). */
export const Class = {
  LD: 0x00,
  LDX: 0x01,
  ST: 0x02,
  STX: 0x03,
  ALU: 0x04,
  JMP: 0x05,
  JMP32: 0x06,
  ALU64: 0x07,
} as const;
/** Load/store sizes (bits 3-4). */
export const Size = { W: 0x00, H: 0x08, B: 0x10, DW: 0x18 } as const;
/** Load/store modes (bits 5-7). ABS and IND are the legacy packet loads. */
export const Mode = { IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60, MEMSX: 0x80, ATOMIC: 0xc0 } as const;
/** ALU and JMP source bit: BPF_K (immediate) or BPF_X (register). For BPF_END: TO_LE / TO_BE. */
export const Source = { K: 0x00, X: 0x08 } as const;

/** ALU operations by name (BPF_ADD …); `neg` and `end` are the one-operand forms. */
export const AluOp = {
  add: 0x00,
  sub: 0x10,
  mul: 0x20,
  div: 0x30,
  or: 0x40,
  and: 0x50,
  lsh: 0x60,
  rsh: 0x70,
  neg: 0x80,
  mod: 0x90,
  xor: 0xa0,
  mov: 0xb0,
  arsh: 0xc0,
  end: 0xd0,
} as const;
/** JMP operations by name (BPF_JEQ …), including JA, CALL and EXIT. */
export const JmpOp = {
  ja: 0x00,
  jeq: 0x10,
  jgt: 0x20,
  jge: 0x30,
  jset: 0x40,
  jne: 0x50,
  jsgt: 0x60,
  jsge: 0x70,
  call: 0x80,
  exit: 0x90,
  jlt: 0xa0,
  jle: 0xb0,
  jslt: 0xc0,
  jsle: 0xd0,
  jcond: 0xe0,
} as const;
/** The conditional jumps (JmpOp minus ja, call, exit, jcond). */
export type CondJmp = Exclude<keyof typeof JmpOp, "ja" | "call" | "exit" | "jcond">;
/** The two-operand ALU operations (AluOp minus neg and end). */
export type BinAlu = Exclude<keyof typeof AluOp, "neg" | "end">;

/** The atomic operations: the `imm` of STX | ATOMIC. FETCH is a bit; XCHG and CMPXCHG always fetch. */
export const AtomicOp = {
  add: 0x00,
  or: 0x40,
  and: 0x50,
  xor: 0xa0,
  fetch: 0x01,
  xchg: 0xe1,
  cmpxchg: 0xf1,
  /** load-acquire and store-release (cpu v4 addition after RFC 9669): not supported here. */
  loadAcq: 0x100,
  storeRel: 0x110,
} as const;

/** src_reg of LD_IMM64 (BPF_PSEUDO_*): what the immediate means. */
export const PseudoLd = {
  /** A plain 64-bit number. */
  none: 0,
  /** imm is a map fd. */
  mapFd: 1,
  /** imm is a map fd, the second imm an offset into its value (a global). */
  mapValue: 2,
  /** imm is a kernel BTF id (ksym). */
  btfId: 3,
  /** imm is a pc-relative subprogram (a callback). */
  func: 4,
  /** imm is an index into the program's fd array. */
  mapIdx: 5,
  mapIdxValue: 6,
} as const;
/** src_reg of CALL: a helper, a bpf-to-bpf call, a kfunc. */
export const PseudoCall = { helper: 0, local: 1, kfunc: 2 } as const;

/** Helper ids (enum bpf_func_id) htab's programs use. */
export const Helper = {
  mapLookupElem: 1,
  mapUpdateElem: 2,
  mapDeleteElem: 3,
  ktimeGetNs: 5,
  tracePrintk: 6,
  getPrandomU32: 7,
  getSmpProcessorId: 8,
  tailCall: 12,
  skbLoadBytes: 26,
  csumDiff: 28,
  xdpAdjustHead: 44,
  xdpAdjustTail: 65,
  spinLock: 93,
  spinUnlock: 94,
  ringbufOutput: 130,
  ringbufReserve: 131,
  ringbufSubmit: 132,
  ringbufDiscard: 133,
  ringbufQuery: 134,
  forEachMapElem: 164,
  loop: 181,
  xdpLoadBytes: 189,
  mapLookupPercpuElem: 195,
} as const;

/** BPF's per-frame stack (MAX_BPF_STACK). */
export const STACK_BYTES = 512;
/** The kernel's MAX_CALL_FRAMES: the main program and seven nested calls. */
export const MAX_CALL_FRAMES = 8;
/** BPF_COMPLEXITY_LIMIT_INSNS: the largest program the kernel loads (privileged). */
export const MAX_INSNS = 1_000_000;

const SIZE_BYTES: Record<number, number> = { [Size.W]: 4, [Size.H]: 2, [Size.B]: 1, [Size.DW]: 8 };
/** Bytes moved by a load/store of this opcode's size field. */
export function sizeBytes(code: number): number {
  return SIZE_BYTES[code & 0x18];
}

export type SizeName = "w" | "h" | "b" | "dw";
const SIZE_OF: Record<SizeName, number> = { w: Size.W, h: Size.H, b: Size.B, dw: Size.DW };

function reg(r: number): number {
  if (!Number.isInteger(r) || r < 0 || r > 10) invalid("insn", `register r${r} does not exist (r0..r10)`);
  return r;
}
/** One instruction, fields range-checked (imm accepts signed or unsigned 32-bit and stores it signed). */
export function insn(code: number, dst: number, src: number, off: number, imm: number): Insn {
  if (!Number.isInteger(code) || code < 0 || code > 0xff) invalid("insn", `opcode ${code} is not a byte`);
  if (!Number.isInteger(off) || off < -32768 || off > 32767)
    invalid("insn", `offset ${off} is not a signed 16-bit number`);
  if (!Number.isInteger(imm) || imm < -(2 ** 31) || imm > 2 ** 32 - 1)
    invalid("insn", `immediate ${imm} is not 32 bits`);
  return { code, dst: reg(dst), src: reg(src), off, imm: imm | 0 };
}

/** The instruction builder: each function is one BPF instruction (two for the 64-bit immediate loads). */
export const asm = {
  /** dst = imm (64-bit move, imm sign-extended). */
  movImm: (dst: number, imm: number): Insn => insn(Class.ALU64 | AluOp.mov | Source.K, dst, 0, 0, imm),
  /** dst = src. */
  mov: (dst: number, src: number): Insn => insn(Class.ALU64 | AluOp.mov | Source.X, dst, src, 0, 0),
  /** dst op= imm (64-bit). */
  aluImm: (op: BinAlu, dst: number, imm: number): Insn =>
    insn(Class.ALU64 | AluOp[op] | Source.K, dst, 0, 0, imm),
  /** dst op= src (64-bit). */
  alu: (op: BinAlu, dst: number, src: number): Insn =>
    insn(Class.ALU64 | AluOp[op] | Source.X, dst, src, 0, 0),
  /** (u32)dst op= imm (32-bit: the result is zero-extended). */
  alu32Imm: (op: BinAlu, dst: number, imm: number): Insn =>
    insn(Class.ALU | AluOp[op] | Source.K, dst, 0, 0, imm),
  /** (u32)dst op= (u32)src. */
  alu32: (op: BinAlu, dst: number, src: number): Insn =>
    insn(Class.ALU | AluOp[op] | Source.X, dst, src, 0, 0),
  /** dst = *(size *)(src + off). */
  load: (size: SizeName, dst: number, src: number, off: number): Insn =>
    insn(Class.LDX | SIZE_OF[size] | Mode.MEM, dst, src, off, 0),
  /** *(size *)(dst + off) = src. */
  store: (size: SizeName, dst: number, off: number, src: number): Insn =>
    insn(Class.STX | SIZE_OF[size] | Mode.MEM, dst, src, off, 0),
  /** *(size *)(dst + off) = imm. */
  storeImm: (size: SizeName, dst: number, off: number, imm: number): Insn =>
    insn(Class.ST | SIZE_OF[size] | Mode.MEM, dst, 0, off, imm),
  /** Atomic *(u32|u64 *)(dst + off) += src (BPF_ATOMIC | BPF_ADD). */
  atomicAdd: (size: "w" | "dw", dst: number, off: number, src: number): Insn =>
    insn(Class.STX | SIZE_OF[size] | Mode.ATOMIC, dst, src, off, AtomicOp.add),
  /** Any atomic operation (imm is an AtomicOp value, FETCH or'ed in as wanted). */
  atomic: (size: "w" | "dw", dst: number, off: number, src: number, op: number): Insn =>
    insn(Class.STX | SIZE_OF[size] | Mode.ATOMIC, dst, src, off, op),
  /** dst = a 64-bit number (LD_IMM64: two instructions). */
  ldImm64: (dst: number, value: bigint): Insn[] => {
    const v = BigInt.asUintN(64, value);
    return [
      insn(Class.LD | Size.DW | Mode.IMM, dst, 0, 0, Number(v & 0xffffffffn)),
      insn(0, 0, 0, 0, Number(v >> 32n)),
    ];
  },
  /** The map's fd as a 64-bit immediate in `dst` (BPF_LD_MAP_FD: two instructions). */
  ldMapFd: (dst: number, map: { readonly fd: number }): Insn[] => [
    insn(Class.LD | Size.DW | Mode.IMM, dst, PseudoLd.mapFd, 0, map.fd),
    insn(0, 0, 0, 0, 0),
  ],
  /** if (dst op imm) goto pc + 1 + off. */
  jmpImm: (op: CondJmp, dst: number, imm: number, off: number): Insn =>
    insn(Class.JMP | JmpOp[op] | Source.K, dst, 0, off, imm),
  /** if (dst op src) goto pc + 1 + off. */
  jmp: (op: CondJmp, dst: number, src: number, off: number): Insn =>
    insn(Class.JMP | JmpOp[op] | Source.X, dst, src, off, 0),
  /** goto pc + 1 + off. */
  ja: (off: number): Insn => insn(Class.JMP, 0, 0, off, 0),
  /** Call helper `id` (arguments in r1-r5, result in r0; r1-r5 are clobbered). */
  call: (id: number): Insn => insn(Class.JMP | JmpOp.call, 0, 0, 0, id),
  /** Call the local function at pc + 1 + rel (bpf-to-bpf). */
  callLocal: (rel: number): Insn => insn(Class.JMP | JmpOp.call, 0, PseudoCall.local, 0, rel),
  /** Return r0. */
  exit: (): Insn => insn(Class.JMP | JmpOp.exit, 0, 0, 0, 0),
};

/** Flatten a program written as instructions and two-slot pairs. */
export function program(...parts: (Insn | Insn[])[]): Insn[] {
  return parts.flat();
}

/** The 8-byte encoding of each instruction, little-endian, as the kernel and ELF objects hold it. */
export function encodeInsns(insns: readonly Insn[]): Uint8Array {
  const out = new Uint8Array(insns.length * 8);
  const dv = new DataView(out.buffer);
  insns.forEach((x, i) => {
    out[i * 8] = x.code;
    out[i * 8 + 1] = (x.dst & 0x0f) | ((x.src & 0x0f) << 4);
    dv.setInt16(i * 8 + 2, x.off, true);
    dv.setInt32(i * 8 + 4, x.imm, true);
  });
  return out;
}

/** Instructions from their 8-byte encoding. */
export function decodeInsns(bytes: Uint8Array, op = "decode"): Insn[] {
  if (bytes.length % 8 !== 0)
    throw new BpfError(
      op,
      Errno.EINVAL,
      `${bytes.length} bytes are not a whole number of 8-byte instructions`,
    );
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Insn[] = [];
  for (let i = 0; i < bytes.length; i += 8)
    out.push({
      code: bytes[i],
      dst: bytes[i + 1] & 0x0f,
      src: bytes[i + 1] >> 4,
      off: dv.getInt16(i + 2, true),
      imm: dv.getInt32(i + 4, true),
    });
  return out;
}

/** The 64-bit immediate of the LD_IMM64 at `i` (unsigned). */
export function imm64(insns: readonly Insn[], i: number): bigint {
  return (BigInt(insns[i + 1].imm >>> 0) << 32n) | BigInt(insns[i].imm >>> 0);
}

/** What the decoder found at one instruction, for the interpreter's dispatch and the disassembler. */
export const Kind = {
  alu: 1,
  ldImm64: 2,
  /** The second slot of an LD_IMM64: never executed. */
  ldImm64Hi: 3,
  ldx: 4,
  st: 5,
  stx: 6,
  atomic: 7,
  ja: 8,
  jcond: 9,
  callHelper: 10,
  callLocal: 11,
  exit: 12,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** A decoded, checked program: the raw instructions plus each one's kind and (for jumps and calls) target. */
export interface DecodedProgram {
  readonly insns: readonly Insn[];
  readonly kind: Uint8Array;
  /** Jump or call target (an instruction index), -1 where none. */
  readonly target: Int32Array;
  /** The first instruction of each function: 0, then every bpf-to-bpf call and callback target. */
  readonly functions: readonly number[];
}

/** Which helpers exist, for the decoder's "unknown helper" check; undefined: any id is accepted. */
export interface DecodeOptions {
  helpers?: (id: number) => boolean;
  /** LD_IMM64 pseudo sources the caller resolves (default: none, only plain numbers). */
  pseudo?: readonly number[];
  /** Operation name for errors. */
  op?: string;
}

function fail(op: string, errno: number, i: number, what: string): never {
  throw new BpfError(op, errno, `insn ${i}: ${what}`);
}

/**
 * Check every instruction of a program as the kernel's verifier checks its
 * fields (check_alu_op, check_cond_jmp_op, the LD/LDX/ST/STX and JMP field
 * checks, resolve_pseudo_ldimm64's pair check, check_subprogs' jump ranges)
 * and classify each. What the verifier proves from values (division by a
 * constant zero, shifts by out-of-range constants) is not refused: those run
 * with the ISA's defined results, as RFC 9669 specifies them.
 * @throws BpfError EINVAL naming the instruction (E2BIG for a program over 1,000,000 instructions; EACCES for a write to r10)
 */
export function decodeProgram(insns: readonly Insn[], opts: DecodeOptions = {}): DecodedProgram {
  const op = opts.op ?? "load";
  const n = insns.length;
  if (n === 0) throw new BpfError(op, Errno.EINVAL, "the program has no instructions");
  if (n > MAX_INSNS)
    throw new BpfError(op, Errno.E2BIG, `${n} instructions, more than the kernel's ${MAX_INSNS}`);
  const kind = new Uint8Array(n);
  const target = new Int32Array(n).fill(-1);
  const functions = new Set<number>([0]);
  const pseudo = new Set(opts.pseudo ?? []);
  const regOk = (i: number, r: number, what: string) => {
    if (r > 10) fail(op, Errno.EINVAL, i, `${what} register r${r} does not exist`);
  };
  const writes = (i: number, r: number) => {
    regOk(i, r, "destination");
    if (r === 10) fail(op, Errno.EACCES, i, "frame pointer r10 is read only");
  };
  const reserved = (i: number, what: string): never =>
    fail(op, Errno.EINVAL, i, `${what} uses reserved fields`);
  const jumpTo = (i: number, t: number) => {
    if (t < 0 || t >= n) fail(op, Errno.EINVAL, i, `jump out of range to insn ${t} (the program has ${n})`);
    target[i] = t;
  };
  for (let i = 0; i < n; i++) {
    const x = insns[i];
    const code = x.code;
    const cls = code & 0x07;
    switch (cls) {
      case Class.ALU:
      case Class.ALU64: {
        const o = code & 0xf0;
        const isX = (code & Source.X) !== 0;
        const is64 = cls === Class.ALU64;
        if (o === AluOp.neg) {
          if (isX || x.src !== 0 || x.off !== 0 || x.imm !== 0) reserved(i, "BPF_NEG");
        } else if (o === AluOp.end) {
          if (x.src !== 0 || x.off !== 0 || (x.imm !== 16 && x.imm !== 32 && x.imm !== 64) || (is64 && isX))
            reserved(i, "BPF_END");
        } else if (o === AluOp.mov) {
          if (isX) {
            regOk(i, x.src, "source");
            if (is64 && x.off === 1) fail(op, Errno.EINVAL, i, "addr_space_cast (arena) is not supported");
            const offs = is64 ? [0, 8, 16, 32] : [0, 8, 16];
            if (!offs.includes(x.off) || x.imm !== 0) reserved(i, "BPF_MOV");
          } else if (x.src !== 0 || x.off !== 0) reserved(i, "BPF_MOV");
        } else if (o > AluOp.end) {
          fail(op, Errno.EINVAL, i, `invalid BPF_ALU opcode 0x${code.toString(16)}`);
        } else {
          if (isX) {
            regOk(i, x.src, "source");
            if (x.imm !== 0) reserved(i, "BPF_ALU");
          } else if (x.src !== 0) reserved(i, "BPF_ALU");
          if (x.off !== 0 && (x.off !== 1 || (o !== AluOp.div && o !== AluOp.mod))) reserved(i, "BPF_ALU");
        }
        writes(i, x.dst);
        kind[i] = Kind.alu;
        break;
      }
      case Class.LD: {
        if (code !== (Class.LD | Size.DW | Mode.IMM)) {
          const m = code & 0xe0;
          if (m === Mode.ABS || m === Mode.IND)
            fail(op, Errno.EINVAL, i, "legacy packet loads (BPF_ABS/BPF_IND) are not supported");
          fail(op, Errno.EINVAL, i, `invalid BPF_LD opcode 0x${code.toString(16)}`);
        }
        if (x.off !== 0) reserved(i, "BPF_LD_IMM64");
        if (i + 1 >= n) fail(op, Errno.EINVAL, i, "invalid bpf_ld_imm64 insn: the second half is missing");
        const hi = insns[i + 1];
        if (hi.code !== 0 || hi.dst !== 0 || hi.src !== 0 || hi.off !== 0)
          fail(op, Errno.EINVAL, i, "invalid bpf_ld_imm64 insn: the second half is not a bare immediate");
        writes(i, x.dst);
        if (x.src === PseudoLd.func) {
          jumpTo(i, i + 1 + x.imm);
          functions.add(i + 1 + x.imm);
        } else if (x.src !== 0 && !pseudo.has(x.src)) {
          const names = [
            "",
            "map fd",
            "map value",
            "kernel BTF id (ksym)",
            "function",
            "map index",
            "map index value",
          ];
          fail(
            op,
            Errno.EINVAL,
            i,
            x.src < names.length
              ? `ld_imm64 of a ${names[x.src]} (src ${x.src}) has nothing to resolve it here`
              : `invalid bpf_ld_imm64 src ${x.src}`,
          );
        }
        kind[i] = Kind.ldImm64;
        kind[++i] = Kind.ldImm64Hi;
        break;
      }
      case Class.LDX: {
        const m = code & 0xe0;
        if (m !== Mode.MEM && !(m === Mode.MEMSX && (code & 0x18) !== Size.DW))
          fail(op, Errno.EINVAL, i, `invalid BPF_LDX opcode 0x${code.toString(16)}`);
        if (x.imm !== 0) reserved(i, "BPF_LDX");
        regOk(i, x.src, "source");
        writes(i, x.dst);
        kind[i] = Kind.ldx;
        break;
      }
      case Class.ST: {
        if ((code & 0xe0) !== Mode.MEM)
          fail(op, Errno.EINVAL, i, `invalid BPF_ST opcode 0x${code.toString(16)}`);
        if (x.src !== 0) reserved(i, "BPF_ST");
        regOk(i, x.dst, "base");
        kind[i] = Kind.st;
        break;
      }
      case Class.STX: {
        const m = code & 0xe0;
        regOk(i, x.dst, "base");
        regOk(i, x.src, "source");
        if (m === Mode.MEM) {
          if (x.imm !== 0) reserved(i, "BPF_STX");
          kind[i] = Kind.stx;
        } else if (m === Mode.ATOMIC) {
          const sz = code & 0x18;
          if (sz !== Size.W && sz !== Size.DW)
            fail(op, Errno.EINVAL, i, "atomics are 32 or 64 bits (BPF_W or BPF_DW)");
          const a = x.imm;
          if (a === AtomicOp.loadAcq || a === AtomicOp.storeRel)
            fail(op, Errno.EINVAL, i, "load-acquire and store-release are not supported");
          const base = a & ~AtomicOp.fetch;
          if (
            a !== AtomicOp.xchg &&
            a !== AtomicOp.cmpxchg &&
            base !== AtomicOp.add &&
            base !== AtomicOp.or &&
            base !== AtomicOp.and &&
            base !== AtomicOp.xor
          )
            fail(op, Errno.EINVAL, i, `invalid atomic operation 0x${(a >>> 0).toString(16)}`);
          kind[i] = Kind.atomic;
        } else fail(op, Errno.EINVAL, i, `invalid BPF_STX opcode 0x${code.toString(16)}`);
        break;
      }
      case Class.JMP:
      case Class.JMP32: {
        const o = code & 0xf0;
        const isX = (code & Source.X) !== 0;
        if (o === JmpOp.ja) {
          if (isX) fail(op, Errno.EINVAL, i, "indirect jump (gotox, jump tables) is not supported");
          if (x.src !== 0 || x.dst !== 0 || (cls === Class.JMP ? x.imm !== 0 : x.off !== 0))
            reserved(i, "BPF_JA");
          jumpTo(i, i + 1 + (cls === Class.JMP ? x.off : x.imm));
          kind[i] = Kind.ja;
        } else if (o === JmpOp.call) {
          if (cls === Class.JMP32 || x.dst !== 0) reserved(i, "BPF_CALL");
          if (isX) fail(op, Errno.EINVAL, i, "call through a register (callx) is not supported");
          if (x.src === PseudoCall.kfunc)
            fail(op, Errno.EINVAL, i, `kfunc calls are not supported (btf id ${x.imm})`);
          if (x.off !== 0 || (x.src !== PseudoCall.helper && x.src !== PseudoCall.local))
            reserved(i, "BPF_CALL");
          if (x.src === PseudoCall.local) {
            jumpTo(i, i + 1 + x.imm);
            functions.add(i + 1 + x.imm);
            kind[i] = Kind.callLocal;
          } else {
            if (opts.helpers && !opts.helpers(x.imm >>> 0))
              fail(op, Errno.EINVAL, i, `invalid func unknown#${x.imm >>> 0} (no such helper here)`);
            kind[i] = Kind.callHelper;
          }
        } else if (o === JmpOp.exit) {
          if (cls === Class.JMP32 || isX || x.imm !== 0 || x.src !== 0 || x.dst !== 0 || x.off !== 0)
            reserved(i, "BPF_EXIT");
          kind[i] = Kind.exit;
        } else if (o === JmpOp.jcond) {
          fail(op, Errno.EINVAL, i, "may_goto (BPF_JCOND) is not supported");
        } else if (o > JmpOp.jsle) {
          fail(op, Errno.EINVAL, i, `invalid BPF_JMP opcode 0x${code.toString(16)}`);
        } else {
          regOk(i, x.dst, "destination");
          if (isX) {
            regOk(i, x.src, "source");
            if (x.imm !== 0) reserved(i, "BPF_JMP/JMP32");
          } else if (x.src !== 0) reserved(i, "BPF_JMP/JMP32");
          jumpTo(i, i + 1 + x.off);
          kind[i] = Kind.jcond;
        }
        break;
      }
    }
  }
  for (let i = 0; i < n; i++)
    if (target[i] >= 0 && kind[target[i]] === Kind.ldImm64Hi)
      fail(op, Errno.EINVAL, i, `jump into the middle of the ld_imm64 at insn ${target[i] - 1}`);
  return { insns, kind, target, functions: [...functions].sort((a, b) => a - b) };
}
