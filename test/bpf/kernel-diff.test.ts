/**
 * The interpreter against the kernel: random well-formed programs (every
 * ALU op in both widths with register and immediate sources, signed
 * division and modulo, MOVSX, byte swaps, stack stores and loads of every
 * size with sign-extending loads, every atomic on the stack, forward
 * conditional jumps of both widths) run through BPF_PROG_TEST_RUN and the
 * interpreter. r0 is 64 bits but the kernel reports 32, so each program is
 * loaded twice behind a bpf-to-bpf call: once returning r0, once r0 >> 32.
 * The same two wrapped programs run in the interpreter. Every program the
 * kernel accepts must give identical results; the generator stays inside
 * what the verifier accepts (no constant division by zero, no constant
 * shift out of range, no uninitialised reads), so the kernel refusing one
 * is a failure too.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { baseHelpers } from "../../src/bpf/helpers.js";
import { Vm } from "../../src/bpf/interp.js";
import {
  AluOp,
  AtomicOp,
  asm,
  Class,
  decodeProgram,
  type Insn,
  insn,
  JmpOp,
  Mode,
  program,
  R0,
  R10,
  Size,
  Source,
} from "../../src/bpf/isa.js";
import { xorshift32 } from "../../src/check/xorshift.js";
import { loadProgram } from "../../src/kernel/program.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const skip = kernelSkipReason();
const PROGRAMS = Number(process.env.HTAB_BPF_DIFF_PROGRAMS ?? 300);
const BODY = 40;

const SPECIAL = [
  0n,
  1n,
  2n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  1n << 63n,
  (1n << 64n) - 1n,
  (1n << 63n) - 1n,
  0xffffffff80000000n,
];
const BIN_OPS = ["add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "mod", "xor", "mov", "arsh"] as const;
const CONDS = ["jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle"] as const;

function generator(seed: number) {
  const rnd = xorshift32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[rnd() % xs.length];
  const u64 = (): bigint =>
    rnd() % 3 === 0 ? pick(SPECIAL) : (BigInt(rnd() >>> 0) << 32n) | BigInt(rnd() >>> 0);
  const imm = (): number =>
    rnd() % 2 === 0 ? pick([0, 1, -1, 2, -2, 0x7fffffff, -0x80000000, 31, 32, 63]) : rnd() | 0;
  const reg = () => rnd() % 10;
  return { rnd, pick, u64, imm, reg };
}

/** One random body, ending with r0 folded from every register and stack slot, then exit. */
function randomBody(seed: number): Insn[] {
  const g = generator(seed);
  const out: Insn[] = [];
  for (let r = 0; r < 10; r++) out.push(...asm.ldImm64(r, g.u64()));
  for (let s = 1; s <= 8; s++) out.push(asm.store("dw", R10, -8 * s, g.reg()));
  const body: Insn[][] = [];
  for (let i = 0; i < BODY; i++) {
    const kind = g.rnd() % 16;
    const dst = g.reg();
    const src = g.reg();
    if (kind < 7) {
      const cls = g.rnd() % 2 === 0 ? Class.ALU64 : Class.ALU;
      const width = cls === Class.ALU64 ? 64 : 32;
      const o = g.pick(BIN_OPS);
      const signed = (o === "div" || o === "mod") && g.rnd() % 2 === 0 ? 1 : 0;
      if (g.rnd() % 2 === 0) body.push([insn(cls | AluOp[o] | Source.X, dst, src, signed, 0)]);
      else {
        let k = g.imm();
        if ((o === "div" || o === "mod") && k === 0) k = 3;
        if (o === "lsh" || o === "rsh" || o === "arsh") k = g.rnd() % width;
        body.push([insn(cls | AluOp[o] | Source.K, dst, 0, signed, k)]);
      }
    } else if (kind === 7) {
      const cls = g.rnd() % 2 === 0 ? Class.ALU64 : Class.ALU;
      body.push([insn(cls | AluOp.neg, dst, 0, 0, 0)]);
    } else if (kind === 8) {
      const w = g.pick([16, 32, 64]);
      const code = g.pick([
        Class.ALU | AluOp.end | Source.K,
        Class.ALU | AluOp.end | Source.X,
        Class.ALU64 | AluOp.end,
      ]);
      body.push([insn(code, dst, 0, 0, w)]);
    } else if (kind === 9) {
      const cls = g.rnd() % 2 === 0 ? Class.ALU64 : Class.ALU;
      const off = cls === Class.ALU64 ? g.pick([8, 16, 32]) : g.pick([8, 16]);
      body.push([insn(cls | AluOp.mov | Source.X, dst, src, off, 0)]);
    } else if (kind === 10) {
      const size = g.pick([Size.B, Size.H, Size.W, Size.DW]);
      const bytes = size === Size.DW ? 8 : size === Size.W ? 4 : size === Size.H ? 2 : 1;
      const off = -8 * (1 + (g.rnd() % 8)) + bytes * (g.rnd() % (8 / bytes));
      body.push([insn(Class.STX | size | Mode.MEM, R10, src, off, 0)]);
    } else if (kind === 11) {
      const size = g.pick([Size.B, Size.H, Size.W, Size.DW]);
      const bytes = size === Size.DW ? 8 : size === Size.W ? 4 : size === Size.H ? 2 : 1;
      const off = -8 * (1 + (g.rnd() % 8)) + bytes * (g.rnd() % (8 / bytes));
      const sx = size !== Size.DW && g.rnd() % 2 === 0 ? Mode.MEMSX : Mode.MEM;
      body.push([insn(Class.LDX | size | sx, dst, R10, off, 0)]);
    } else if (kind === 12) {
      const size = g.pick([Size.W, Size.DW]);
      const off = -8 * (1 + (g.rnd() % 8)) + (size === Size.W ? 4 * (g.rnd() % 2) : 0);
      const base = g.pick([AtomicOp.add, AtomicOp.or, AtomicOp.and, AtomicOp.xor]);
      const op = g.pick([base, base | AtomicOp.fetch, AtomicOp.xchg, AtomicOp.cmpxchg]);
      body.push([insn(Class.STX | size | Mode.ATOMIC, R10, src, off, op)]);
    } else if (kind === 13) {
      body.push([
        insn(
          Class.ST | g.pick([Size.B, Size.H, Size.W, Size.DW]) | Mode.MEM,
          R10,
          0,
          -8 * (1 + (g.rnd() % 8)),
          g.imm(),
        ),
      ]);
    } else {
      // A forward conditional jump over the next 1-3 body items (patched below).
      const cls = g.rnd() % 2 === 0 ? Class.JMP : Class.JMP32;
      const c = g.pick(CONDS);
      const x = g.rnd() % 2 === 0;
      body.push([
        insn(
          cls | JmpOp[c] | (x ? Source.X : Source.K),
          dst,
          x ? src : 0,
          -(1 + (g.rnd() % 3)),
          x ? 0 : g.imm(),
        ),
      ]);
    }
  }
  // Patch jumps: the offset field holds -(items to skip); each item is one instruction.
  const flat = body.map((b) => b[0]);
  flat.forEach((x, i) => {
    if ((x.code & 0x07) === Class.JMP || (x.code & 0x07) === Class.JMP32)
      x.off = Math.min(-x.off, flat.length - 1 - i);
  });
  out.push(...flat);
  for (let r = 1; r < 10; r++) out.push(asm.aluImm("mul", R0, 31), asm.alu("add", R0, r));
  for (let s = 1; s <= 8; s++)
    out.push(asm.load("dw", 1, R10, -8 * s), asm.aluImm("mul", R0, 37), asm.alu("xor", R0, 1));
  out.push(asm.exit());
  return out;
}

/** call body; r0 (>>= 32 when `high`); exit; body. */
function wrapped(body: Insn[], high: boolean): Insn[] {
  return program(
    asm.callLocal(2),
    high ? asm.aluImm("rsh", R0, 32) : asm.aluImm("add", R0, 0),
    asm.exit(),
    body,
  );
}

function interp(insns: Insn[]): bigint {
  const helpers = baseHelpers();
  return new Vm(decodeProgram(insns), { helpers }).run();
}

test("random programs: the interpreter's 64-bit r0 equals the kernel's, program by program", { skip }, () => {
  const packet = new Uint8Array(64);
  const diffs: string[] = [];
  let compared = 0;
  for (let p = 0; p < PROGRAMS; p++) {
    const seed = 0x5eed0000 + p;
    const body = randomBody(seed);
    const full = interp(body);
    const halves: bigint[] = [];
    for (const high of [false, true]) {
      const w = wrapped(body, high);
      const mine = interp(w);
      assert.equal(
        mine,
        high ? full >> 32n : full,
        `seed ${seed}: the wrapper changed the interpreter's result`,
      );
      const prog = loadProgram(w, { name: "htab_diff" });
      try {
        halves.push(BigInt(prog.testRun(packet).retval >>> 0));
      } finally {
        prog.close();
      }
    }
    const kernel = (halves[1] << 32n) | halves[0];
    compared++;
    if (kernel !== full)
      diffs.push(
        `seed 0x${seed.toString(16)}: interpreter 0x${full.toString(16)}, kernel 0x${kernel.toString(16)}`,
      );
  }
  process.stdout.write(
    `# interpreter vs kernel: ${compared} random programs of ${BODY} body instructions, ${diffs.length} differences\n`,
  );
  assert.deepEqual(diffs, []);
});
