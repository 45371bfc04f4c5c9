/**
 * One instruction as text, in the kernel verifier's notation (what
 * `bpftool prog dump xlated` prints): `r1 = *(u32 *)(r2 +4)`, `if r1 > 0x5 goto +3`,
 * `lock *(u64 *)(r10 -8) += r1`. Errors of the loader and the interpreter
 * quote it next to the instruction index.
 */

import { AluOp, AtomicOp, Class, type Insn, JmpOp, Mode, PseudoCall, PseudoLd, Size, Source } from "./isa.js";

const ALU_SIGN: Record<number, string> = {
  [AluOp.add]: "+=",
  [AluOp.sub]: "-=",
  [AluOp.mul]: "*=",
  [AluOp.div]: "/=",
  [AluOp.or]: "|=",
  [AluOp.and]: "&=",
  [AluOp.lsh]: "<<=",
  [AluOp.rsh]: ">>=",
  [AluOp.mod]: "%=",
  [AluOp.xor]: "^=",
  [AluOp.mov]: "=",
  [AluOp.arsh]: "s>>=",
};
const JMP_SIGN: Record<number, string> = {
  [JmpOp.jeq]: "==",
  [JmpOp.jgt]: ">",
  [JmpOp.jge]: ">=",
  [JmpOp.jset]: "&",
  [JmpOp.jne]: "!=",
  [JmpOp.jsgt]: "s>",
  [JmpOp.jsge]: "s>=",
  [JmpOp.jlt]: "<",
  [JmpOp.jle]: "<=",
  [JmpOp.jslt]: "s<",
  [JmpOp.jsle]: "s<=",
};
const SIZE_NAME: Record<number, string> = {
  [Size.W]: "u32",
  [Size.H]: "u16",
  [Size.B]: "u8",
  [Size.DW]: "u64",
};
const ATOMIC_SIGN: Record<number, string> = {
  [AtomicOp.add]: "+=",
  [AtomicOp.or]: "|=",
  [AtomicOp.and]: "&=",
  [AtomicOp.xor]: "^=",
};

const hex = (v: number) => (v < 0 ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);
const signed = (v: number) => (v < 0 ? `${v}` : `+${v}`);

/**
 * The text of instruction `i` of `insns` (an LD_IMM64 reads its second slot).
 * Opcodes the ISA does not define print as `.insn` with their raw fields.
 */
export function disasm(insns: readonly Insn[], i: number): string {
  const x = insns[i];
  const raw = `.insn 0x${x.code.toString(16).padStart(2, "0")} dst=r${x.dst} src=r${x.src} off=${x.off} imm=${x.imm}`;
  const cls = x.code & 0x07;
  const o = x.code & 0xf0;
  const isX = (x.code & Source.X) !== 0;
  switch (cls) {
    case Class.ALU:
    case Class.ALU64: {
      const w = cls === Class.ALU ? "w" : "r";
      if (o === AluOp.neg) return `${w}${x.dst} = -${w}${x.dst}`;
      if (o === AluOp.end) {
        if (cls === Class.ALU64) return `r${x.dst} = bswap${x.imm} r${x.dst}`;
        return `r${x.dst} = ${isX ? "be" : "le"}${x.imm} r${x.dst}`;
      }
      const sign = ALU_SIGN[o];
      if (sign === undefined) return raw;
      const s = isX ? `${w}${x.src}` : hex(x.imm);
      if (o === AluOp.mov && isX && x.off !== 0) return `${w}${x.dst} = (s${x.off})${w}${x.src}`;
      const sdiv = x.off === 1 && (o === AluOp.div || o === AluOp.mod) ? "s" : "";
      return `${w}${x.dst} ${sdiv}${sign} ${s}`;
    }
    case Class.LD: {
      if (x.code !== (Class.LD | Size.DW | Mode.IMM) || i + 1 >= insns.length) return raw;
      const v = (BigInt(insns[i + 1].imm >>> 0) << 32n) | BigInt(x.imm >>> 0);
      switch (x.src) {
        case PseudoLd.mapFd:
          return `r${x.dst} = map[fd:${x.imm}]`;
        case PseudoLd.mapValue:
          return `r${x.dst} = map[fd:${x.imm}][0]+${insns[i + 1].imm}`;
        case PseudoLd.func:
          return `r${x.dst} = func pc${signed(x.imm)}`;
        default:
          return `r${x.dst} = 0x${v.toString(16)} ll`;
      }
    }
    case Class.LDX: {
      const sz = SIZE_NAME[x.code & 0x18];
      const sx = (x.code & 0xe0) === Mode.MEMSX ? "s" : "u";
      return `r${x.dst} = *(${sx}${sz.slice(1)} *)(r${x.src} ${signed(x.off)})`;
    }
    case Class.ST:
      return `*(${SIZE_NAME[x.code & 0x18]} *)(r${x.dst} ${signed(x.off)}) = ${hex(x.imm)}`;
    case Class.STX: {
      const sz = SIZE_NAME[x.code & 0x18];
      const at = `*(${sz} *)(r${x.dst} ${signed(x.off)})`;
      if ((x.code & 0xe0) === Mode.MEM) return `${at} = r${x.src}`;
      if ((x.code & 0xe0) !== Mode.ATOMIC) return raw;
      const w = (x.code & 0x18) === Size.W ? "w" : "r";
      if (x.imm === AtomicOp.xchg) return `${w}${x.src} = xchg(${at}, ${w}${x.src})`;
      if (x.imm === AtomicOp.cmpxchg) return `${w}0 = cmpxchg(${at}, ${w}0, ${w}${x.src})`;
      const sign = ATOMIC_SIGN[x.imm & ~AtomicOp.fetch];
      if (sign === undefined) return raw;
      if (x.imm & AtomicOp.fetch)
        return `${w}${x.src} = atomic_fetch_${sign === "+=" ? "add" : sign === "|=" ? "or" : sign === "&=" ? "and" : "xor"}(${at}, ${w}${x.src})`;
      return `lock ${at} ${sign} ${w}${x.src}`;
    }
    default: {
      const w = cls === Class.JMP32 ? "w" : "r";
      if (o === JmpOp.ja) return cls === Class.JMP ? `goto pc${signed(x.off)}` : `gotol pc${signed(x.imm)}`;
      if (o === JmpOp.exit) return "exit";
      if (o === JmpOp.call) {
        if (isX) return `callx r${x.dst}`;
        if (x.src === PseudoCall.local) return `call pc${signed(x.imm)}`;
        if (x.src === PseudoCall.kfunc) return `call kfunc#${x.imm}`;
        return `call #${x.imm >>> 0}`;
      }
      const sign = JMP_SIGN[o];
      if (sign === undefined) return raw;
      return `if ${w}${x.dst} ${sign} ${isX ? `${w}${x.src}` : hex(x.imm)} goto pc${signed(x.off)}`;
    }
  }
}
