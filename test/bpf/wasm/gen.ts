/**
 * A generator of random, well-formed BPF programs for the differential test
 * of the compiler against the interpreter: every ALU/ALU64 operation and
 * operand form (sdiv/smod, movsx, bswap/end, neg), loads (MEMSX included),
 * stores and atomics on the input memory and the stack at constant and
 * computed offsets, forward conditional jumps (JMP and JMP32, every
 * condition), counted loops (nested two deep), bpf-to-bpf calls and
 * bpf_loop callbacks; sometimes one access out of bounds (EFAULT).
 *
 * Registers keep to roles so that no pointer's value reaches r0 or memory
 * (pointers are numbered differently by the two machines): r9 the input
 * (64 bytes), r10 the stack, r6 a computed pointer, r7 and r8 loop
 * counters, r0-r5 data. A call clobbers r1-r5: they are set again after it.
 */

import { BpfRunError } from "../../../src/bpf/interp.js";
import {
  AluOp,
  AtomicOp,
  asm,
  Class,
  Helper,
  type Insn,
  insn,
  JmpOp,
  Mode,
  PseudoCall,
  PseudoLd,
  Size,
  Source,
} from "../../../src/bpf/isa.js";

/** Bytes of input memory the programs expect at r1. */
/** r0, or the run's errno and instruction, through `run`: how the engine tests compare two runs. */
export function outcome(run: () => bigint): string {
  try {
    return `r0=0x${run().toString(16)}`;
  } catch (e) {
    if (e instanceof BpfRunError) return `${e.code} at insn ${e.insn}`;
    throw e;
  }
}

export const INPUT_BYTES = 64;

/** A seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Unit =
  | { insn: Insn }
  | { pair: Insn[] }
  | { jmp: Insn; to: number } // forward, to label `to`
  | { back: Insn; to: number } // backward, to label `to`
  | { call: string } // bpf-to-bpf call of function `name`
  | { funcAddr: number; name: string } // ld_imm64 dst = &function
  | { label: number };

const ALU_OPS = [
  AluOp.add,
  AluOp.sub,
  AluOp.mul,
  AluOp.div,
  AluOp.or,
  AluOp.and,
  AluOp.lsh,
  AluOp.rsh,
  AluOp.neg,
  AluOp.mod,
  AluOp.xor,
  AluOp.mov,
  AluOp.arsh,
  AluOp.end,
];
const CONDS = [
  JmpOp.jeq,
  JmpOp.jgt,
  JmpOp.jge,
  JmpOp.jset,
  JmpOp.jne,
  JmpOp.jsgt,
  JmpOp.jsge,
  JmpOp.jlt,
  JmpOp.jle,
  JmpOp.jslt,
  JmpOp.jsle,
];
const SIZES = [Size.B, Size.H, Size.W, Size.DW];
const BYTES: Record<number, number> = { [Size.B]: 1, [Size.H]: 2, [Size.W]: 4, [Size.DW]: 8 };

export interface GenOptions {
  /** Probability that the program makes one bad access. */
  faultRate?: number;
  /** Steps of the main body (default 20 to 80). */
  length?: number;
}

export class ProgramGen {
  private label = 0;
  private readonly r: () => number;
  /** Data registers this function may use. */
  private data: number[] = [0, 1, 2, 3, 4, 5];
  private inMain = true;
  private readonly funcs = new Map<string, Unit[]>();
  private faults = 0;

  constructor(
    seed: number,
    private readonly opts: GenOptions = {},
  ) {
    this.r = rng(seed);
  }

  private int(n: number): number {
    return Math.floor(this.r() * n);
  }
  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  private imm(): number {
    const k = this.int(6);
    if (k === 0) return 0;
    if (k === 1) return -1;
    if (k === 2) return this.pick([-2147483648, 2147483647, 1, 31, 32, 63, 64, 16]);
    if (k === 3) return this.int(256) - 128;
    return (this.r() * 2 ** 32) | 0;
  }
  private reg(): number {
    return this.pick(this.data);
  }

  private alu(): Unit[] {
    const is64 = this.r() < 0.6;
    const o = this.pick(ALU_OPS);
    const cls = is64 ? Class.ALU64 : Class.ALU;
    const dst = this.reg();
    if (o === AluOp.neg) return [{ insn: insn(cls | o, dst, 0, 0, 0) }];
    if (o === AluOp.end) {
      const width = this.pick([16, 32, 64]);
      const x = is64 ? Source.K : this.pick([Source.K, Source.X]);
      return [{ insn: insn(cls | o | x, dst, 0, 0, width) }];
    }
    const useX = this.r() < 0.5;
    let off = 0;
    if ((o === AluOp.div || o === AluOp.mod) && this.r() < 0.5) off = 1;
    if (o === AluOp.mov && useX && this.r() < 0.4) off = this.pick(is64 ? [8, 16, 32] : [8, 16]);
    if (useX) return [{ insn: insn(cls | o | Source.X, dst, this.reg(), off, 0) }];
    return [{ insn: insn(cls | o | Source.K, dst, 0, off, this.imm()) }];
  }

  /** Set r6 to a computed pointer into the input (`stack` false) or this frame, aligned to 8. */
  private computed(stack: boolean): Unit[] {
    const s = this.reg();
    const out: Unit[] = [{ insn: asm.mov(6, s) }];
    if (stack) {
      out.push({ insn: asm.aluImm("and", 6, 0x1f8 - 8) }, { insn: asm.aluImm("sub", 6, 512) });
      out.push({ insn: asm.alu("add", 6, 10) });
    } else {
      out.push({ insn: asm.aluImm("and", 6, INPUT_BYTES - 8 - 8) }, { insn: asm.alu("add", 6, 9) });
    }
    return out;
  }

  /** A base register and an in-bounds offset for `size` bytes (aligned when `align`). */
  private place(size: number, align: boolean): { pre: Unit[]; base: number; off: number } {
    const k = this.int(this.inMain ? 5 : 3);
    // r6 as it stands: always a pointer with 16 bytes after it, set on some paths and not others.
    if (k === 4 || (k === 2 && !this.inMain))
      return { pre: [], base: 6, off: align ? size * this.int(16 / size) : this.int(16 - size + 1) };
    if (k === 0)
      return {
        pre: [],
        base: 10,
        off: align ? -size * (1 + this.int(512 / size)) : -size - this.int(513 - size),
      };
    const al = (v: number) => (align ? v - (v % size) : v);
    if (k === 1) {
      const pre = this.computed(true);
      return { pre, base: 6, off: al(this.int(8 - size + 1)) };
    }
    if (k === 2) return { pre: [], base: 9, off: al(this.int(INPUT_BYTES - size + 1)) };
    return { pre: this.computed(false), base: 6, off: al(this.int(16 - size + 1)) };
  }

  private memOp(): Unit[] {
    const kind = this.int(4);
    const sz = kind === 3 ? this.pick([Size.W, Size.DW]) : this.pick(SIZES);
    const size = BYTES[sz];
    const { pre, base, off } = this.place(size, kind === 3);
    let fixedOff = off;
    if (base === 10 && !(fixedOff >= -512 && fixedOff + size <= 0)) fixedOff = -size;
    const out = [...pre];
    if (kind === 0) {
      const sx = size < 8 && this.r() < 0.3 ? Mode.MEMSX : Mode.MEM;
      out.push({ insn: insn(Class.LDX | sz | sx, this.reg(), base, fixedOff, 0) });
    } else if (kind === 1) out.push({ insn: insn(Class.STX | sz | Mode.MEM, base, this.reg(), fixedOff, 0) });
    else if (kind === 2) out.push({ insn: insn(Class.ST | sz | Mode.MEM, base, 0, fixedOff, this.imm()) });
    else {
      const op = this.pick([
        AtomicOp.add,
        AtomicOp.or,
        AtomicOp.and,
        AtomicOp.xor,
        AtomicOp.add | AtomicOp.fetch,
        AtomicOp.or | AtomicOp.fetch,
        AtomicOp.and | AtomicOp.fetch,
        AtomicOp.xor | AtomicOp.fetch,
        AtomicOp.xchg,
        AtomicOp.cmpxchg,
      ]);
      out.push({ insn: insn(Class.STX | sz | Mode.ATOMIC, base, this.reg(), fixedOff, op) });
    }
    return out;
  }

  private cond(): Insn {
    const o = this.pick(CONDS);
    const cls = this.r() < 0.6 ? Class.JMP : Class.JMP32;
    if (this.r() < 0.5) return insn(cls | o | Source.X, this.reg(), this.reg(), 0, 0);
    return insn(cls | o | Source.K, this.reg(), 0, 0, this.imm());
  }

  /** A straight list of units of about `len`, with forward jumps inside it and loops `depth` deep. */
  private body(len: number, depth: number): Unit[] {
    const out: Unit[] = [];
    const end = this.label++;
    const labels: number[] = [];
    for (let n = 0; n < len; n++) {
      out.push(...this.step(depth, labels));
      // Place pending labels at random later points.
      for (let i = labels.length - 1; i >= 0; i--)
        if (this.r() < 0.3) {
          out.push({ label: labels[i] });
          labels.splice(i, 1);
        }
    }
    for (const l of labels) out.push({ label: l });
    out.push({ label: end });
    return out;
  }

  /** One random unit (or a few): an ALU op, a memory op, a forward jump, a loop, a call. */
  private step(depth: number, labels: number[]): Unit[] {
    const k = this.r();
    if (k < 0.45) return this.alu();
    if (k < 0.7) return this.memOp();
    if (k < 0.82) {
      const to = this.label++;
      labels.push(to);
      return [{ jmp: this.cond(), to }];
    }
    if (k < 0.86 && depth < 2 && this.inMain) return this.loop(depth);
    if (k < 0.89 && this.inMain) return this.call();
    if (k < 0.91 && this.inMain) return this.bpfLoop();
    if (k < 0.93)
      return [{ pair: asm.ldImm64(this.reg(), BigInt.asUintN(64, BigInt(this.imm()) * 0x1_0000_0001n)) }];
    if (k < 0.96) return this.pointer6();
    return this.alu();
  }

  /** r6 = another pointer: into this frame, or (main) into the input. */
  private pointer6(): Unit[] {
    if (!this.inMain || this.r() < 0.5)
      return [{ insn: asm.mov(6, 10) }, { insn: asm.aluImm("add", 6, -16 * (1 + this.int(31))) }];
    return [{ insn: asm.mov(6, 9) }, { insn: asm.aluImm("add", 6, 16 * this.int(4)) }];
  }

  private loop(depth: number): Unit[] {
    const counter = depth === 0 ? 8 : 7;
    const head = this.label++;
    return [
      { insn: asm.movImm(counter, 1 + this.int(6)) },
      { label: head },
      ...this.body(3 + this.int(8), depth + 1),
      { insn: asm.aluImm("sub", counter, 1) },
      { back: asm.jmpImm("jne", counter, 0, 0), to: head },
    ];
  }

  private resetArgs(): Unit[] {
    return [1, 2, 3, 4, 5].map((r) => ({ insn: asm.movImm(r, this.imm()) }));
  }

  private subFunction(name: string, args: number, callback: boolean): void {
    if (this.funcs.has(name)) return;
    this.funcs.set(name, []);
    const savedData = this.data;
    const savedMain = this.inMain;
    this.inMain = false;
    this.data = [0, 1, 2, 3, 4, 5].filter((r) => r === 0 || r <= args || !callback);
    const units: Unit[] = [{ insn: asm.movImm(0, this.imm()) }, ...this.pointer6()];
    // Registers beyond the arguments are set before use.
    for (let r = args + 1; r <= 5; r++) units.push({ insn: asm.movImm(r, this.imm()) });
    if (callback) {
      this.data = [0, 1, 3, 4, 5];
      // r2 is the ctx (the input): write the index there, then compute.
      units.push({ insn: asm.store("b", 2, this.int(INPUT_BYTES), 1) });
      units.push({ insn: asm.atomic("dw", 2, 8 * this.int(INPUT_BYTES / 8), 1, AtomicOp.add) });
    }
    units.push(...this.body(4 + this.int(12), 2));
    if (callback) units.push({ insn: asm.aluImm("and", 0, 1) });
    units.push({ insn: asm.exit() });
    this.funcs.set(name, units);
    this.data = savedData;
    this.inMain = savedMain;
  }

  private call(): Unit[] {
    const name = `f${this.int(2)}`;
    this.subFunction(name, 5, false);
    return [{ call: name }, ...this.resetArgs()];
  }

  private bpfLoop(): Unit[] {
    const name = "cb";
    this.subFunction(name, 2, true);
    return [
      { insn: asm.movImm(1, this.int(5)) },
      { funcAddr: 2, name },
      { insn: asm.mov(3, 9) },
      { insn: asm.movImm(4, 0) },
      { insn: asm.call(Helper.loop) },
      ...this.resetArgs(),
    ];
  }

  /** One program: r1 = input (64 bytes), r2 = its length. */
  program(): Insn[] {
    const main: Unit[] = [{ insn: asm.mov(9, 1) }, { insn: asm.movImm(1, 7) }, ...this.pointer6()];
    main.push(...this.body(this.opts.length ?? 20 + this.int(60), 0));
    if (this.r() < (this.opts.faultRate ?? 0.05)) {
      this.faults++;
      const bad = this.int(3);
      if (bad === 0) main.push({ insn: asm.load("w", 0, 9, INPUT_BYTES - 2 + this.int(8)) });
      else if (bad === 1) main.push({ insn: asm.store("dw", 10, -4 + this.int(8), 0) });
      else main.push({ insn: asm.movImm(0, 0) }, { insn: asm.load("b", 0, 0, 0) });
    }
    main.push({ insn: asm.exit() });
    return this.layout(main);
  }

  /** Programs so far that end in a bad access. */
  get faulting(): number {
    return this.faults;
  }

  private layout(main: Unit[]): Insn[] {
    const all: Unit[][] = [main, ...this.funcs.values()];
    const names = ["main", ...this.funcs.keys()];
    const pcOfLabel = new Map<number, number>();
    const pcOfFunc = new Map<string, number>();
    let pc = 0;
    all.forEach((units, k) => {
      pcOfFunc.set(names[k], pc);
      for (const u of units) {
        if ("label" in u) pcOfLabel.set(u.label, pc);
        else pc += "pair" in u || "funcAddr" in u ? 2 : 1;
      }
    });
    const out: Insn[] = [];
    for (const units of all)
      for (const u of units) out.push(...this.emit(u, out.length, pcOfLabel, pcOfFunc));
    return out;
  }

  private emit(u: Unit, here: number, pcOfLabel: Map<number, number>, pcOfFunc: Map<string, number>): Insn[] {
    if ("insn" in u) return [u.insn];
    if ("pair" in u) return u.pair;
    if ("jmp" in u || "back" in u) {
      const x = "jmp" in u ? u.jmp : u.back;
      return [{ ...x, off: (pcOfLabel.get(u.to) as number) - here - 1 }];
    }
    if ("call" in u)
      return [
        insn(Class.JMP | JmpOp.call, 0, PseudoCall.local, 0, (pcOfFunc.get(u.call) as number) - here - 1),
      ];
    if ("funcAddr" in u) {
      const t = pcOfFunc.get(u.name) as number;
      return [
        insn(Class.LD | Size.DW | Mode.IMM, u.funcAddr, PseudoLd.func, 0, t - here - 1),
        insn(0, 0, 0, 0, 0),
      ];
    }
    return [];
  }
}
