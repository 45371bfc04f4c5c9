/**
 * The reference interpreter, instruction by instruction, with the answers
 * RFC 9669 and the kernel give where hardware differs, and every way a run
 * or a load is refused (errno and instruction index). Expected values are
 * written out by hand from the RFC's definitions.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { disasm } from "../../src/bpf/disasm.js";
import { baseHelpers, MAX_LOOPS } from "../../src/bpf/helpers.js";
import { BpfRunError, type HelperFn, Vm } from "../../src/bpf/interp.js";
import {
  AluOp,
  AtomicOp,
  asm,
  Class,
  decodeInsns,
  decodeProgram,
  encodeInsns,
  Helper,
  type Insn,
  insn,
  JmpOp,
  Mode,
  PseudoLd,
  program,
  R0,
  R1,
  R2,
  R3,
  R6,
  R7,
  R8,
  R9,
  R10,
  Size,
  Source,
} from "../../src/bpf/isa.js";
import { INPUT_SLOT, Region } from "../../src/bpf/memory.js";
import { BpfError } from "../../src/errors.js";

const U64 = (v: bigint) => BigInt.asUintN(64, v);

function vmOf(insns: Insn[], helpers: Map<number, HelperFn> = baseHelpers(), budget?: number): Vm {
  return new Vm(decodeProgram(insns, { helpers: (id) => helpers.has(id) }), { helpers, budget });
}
function run(insns: Insn[], memory?: Uint8Array): bigint {
  const vm = vmOf(insns);
  if (memory === undefined) return vm.run();
  const r1 = vm.mem.mapFixed(INPUT_SLOT, new Region("input memory", memory, true));
  return vm.run([r1, BigInt(memory.length)]);
}
/** r0 after: r0 = a (64-bit), r1 = b, then `op`. */
function bin(op: Insn, a: bigint, b: bigint): bigint {
  return run(program(asm.ldImm64(R0, a), asm.ldImm64(R1, b), op, asm.exit()));
}
const alu64 = (o: keyof typeof AluOp, off = 0) => insn(Class.ALU64 | AluOp[o] | Source.X, R0, R1, off, 0);
const alu32 = (o: keyof typeof AluOp, off = 0) => insn(Class.ALU | AluOp[o] | Source.X, R0, R1, off, 0);
const k64 = (o: keyof typeof AluOp, imm: number, off = 0) => insn(Class.ALU64 | AluOp[o], R0, 0, off, imm);
const k32 = (o: keyof typeof AluOp, imm: number, off = 0) => insn(Class.ALU | AluOp[o], R0, 0, off, imm);
const MIN64 = 1n << 63n;

function throwsRun(f: () => unknown, code: string, insnIndex: number, re?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof BpfRunError, `expected BpfRunError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.insn, insnIndex, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}
function throwsLoad(f: () => unknown, code: string, re: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof BpfError, `expected BpfError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test("encode and decode are inverse, field by field", () => {
  const insns = program(
    asm.ldImm64(R3, 0x1122334455667788n),
    insn(0xdb, R10, R9, -8, AtomicOp.cmpxchg),
    asm.jmpImm("jsle", R1, -5, -3),
  );
  const bytes = encodeInsns(insns);
  assert.deepEqual([...bytes.subarray(0, 8)], [0x18, 0x03, 0, 0, 0x88, 0x77, 0x66, 0x55]);
  assert.deepEqual(decodeInsns(bytes), insns);
  throwsLoad(() => decodeInsns(new Uint8Array(12)), "EINVAL", /not a whole number/);
});

test("ALU64: wraparound, unsigned and signed division, modulo, shifts masked, neg, movsx", () => {
  assert.equal(bin(alu64("add"), (1n << 64n) - 1n, 2n), 1n);
  assert.equal(bin(alu64("sub"), 0n, 1n), U64(-1n));
  assert.equal(bin(alu64("mul"), 1n << 63n, 2n), 0n);
  assert.equal(bin(alu64("div"), U64(-8n), 2n), U64(-8n) / 2n); // unsigned
  assert.equal(bin(alu64("div"), 7n, 0n), 0n); // by zero: 0
  assert.equal(bin(alu64("mod"), 7n, 0n), 7n); // by zero: unchanged
  assert.equal(bin(alu64("mod"), U64(-7n), 2n), U64(-7n) % 2n);
  assert.equal(bin(alu64("div", 1), U64(-8n), 2n), U64(-4n)); // sdiv
  assert.equal(bin(alu64("div", 1), MIN64, U64(-1n)), MIN64); // INT64_MIN / -1
  assert.equal(bin(alu64("mod", 1), MIN64, U64(-1n)), 0n); // INT64_MIN % -1
  assert.equal(bin(alu64("mod", 1), U64(-7n), 2n), U64(-1n)); // sign of the dividend
  assert.equal(bin(alu64("mod", 1), 7n, U64(-2n)), 1n);
  assert.equal(bin(alu64("div", 1), 5n, 0n), 0n);
  assert.equal(bin(alu64("mod", 1), U64(-5n), 0n), U64(-5n));
  assert.equal(bin(alu64("lsh"), 1n, 65n), 2n); // count & 63
  assert.equal(bin(alu64("rsh"), MIN64, 127n), 1n);
  assert.equal(bin(alu64("arsh"), MIN64, 63n), U64(-1n));
  assert.equal(bin(alu64("or"), 0xf0n, 0x0fn), 0xffn);
  assert.equal(bin(alu64("and"), 0xf0n, 0x3cn), 0x30n);
  assert.equal(bin(alu64("xor"), 0xf0n, 0xffn), 0x0fn);
  assert.equal(bin(alu64("mov"), 5n, 9n), 9n);
  assert.equal(bin(k64("neg", 0), 5n, 0n), U64(-5n));
  assert.equal(bin(alu64("mov", 8), 0n, 0x180n), U64(-128n));
  assert.equal(bin(alu64("mov", 16), 0n, 0x8001n), U64(-32767n));
  assert.equal(bin(alu64("mov", 32), 0n, 0xffffffffn), U64(-1n));
  // Immediates are sign-extended to 64 bits, also for the unsigned operations.
  assert.equal(bin(k64("div", -1), U64(-1n), 0n), 1n);
  assert.equal(bin(k64("mov", -2), 0n, 0n), U64(-2n));
  assert.equal(bin(k64("add", -1), 0n, 0n), U64(-1n));
  // What the verifier refuses as constants runs with the ISA's answers.
  assert.equal(bin(k64("div", 0), 9n, 0n), 0n);
  assert.equal(bin(k64("mod", 0), 9n, 0n), 9n);
  assert.equal(bin(k64("lsh", 64), 3n, 0n), 3n);
});

test("ALU32: results zero-extended, division by zero, INT_MIN / -1, shifts & 31", () => {
  const HI = 0xdead_beef_0000_0000n;
  assert.equal(bin(alu32("add"), HI | 0xffffffffn, 2n), 1n);
  assert.equal(bin(alu32("sub"), HI, 1n), 0xffffffffn);
  assert.equal(bin(alu32("mul"), HI | 0x10000n, 0x10000n), 0n);
  assert.equal(bin(alu32("div"), HI | 7n, 0n), 0n);
  assert.equal(bin(alu32("mod"), HI | 7n, 0n), 7n); // dst unchanged, but zero-extended
  assert.equal(bin(alu32("mod"), HI | 7n, 1n << 32n), 7n); // the divisor's low 32 bits are 0
  assert.equal(bin(alu32("div"), 0xfffffff8n, 2n), 0x7ffffffcn);
  assert.equal(bin(alu32("div", 1), 0xfffffff8n, 2n), 0xfffffffcn);
  assert.equal(bin(alu32("div", 1), 0x80000000n, 0xffffffffn), 0x80000000n);
  assert.equal(bin(alu32("mod", 1), 0x80000000n, 0xffffffffn), 0n);
  assert.equal(bin(alu32("mod", 1), 0xfffffff9n, 2n), 0xffffffffn); // -7 % 2 = -1
  assert.equal(bin(alu32("mod", 1), HI | 0xfffffff9n, 0n), 0xfffffff9n);
  assert.equal(bin(alu32("lsh"), 1n, 33n), 2n);
  assert.equal(bin(alu32("rsh"), HI | 0x80000000n, 63n), 1n);
  assert.equal(bin(alu32("arsh"), 0x80000000n, 31n), 0xffffffffn);
  assert.equal(bin(alu32("arsh"), HI, 1n), 0n);
  assert.equal(bin(alu32("mov"), 5n, HI | 9n), 9n);
  assert.equal(bin(alu32("mov", 8), 0n, 0x80n), 0xffffff80n);
  assert.equal(bin(alu32("mov", 16), 0n, 0x8000n), 0xffff8000n);
  assert.equal(bin(k32("mov", -1), HI, 0n), 0xffffffffn);
  assert.equal(bin(k32("neg", 0), 1n, 0n), 0xffffffffn);
  assert.equal(bin(k32("or", 0), HI | 5n, 0n), 5n);
  assert.equal(bin(k32("div", -1), 0xffffffffn, 0n), 1n); // imm as u32
});

test("byte swaps: le truncates, be and bswap swap, every width", () => {
  const v = 0x1122334455667788n;
  const end = (code: number, w: number) => bin(insn(code, R0, 0, 0, w), v, 0n);
  const LE = Class.ALU | AluOp.end | Source.K;
  const BE = Class.ALU | AluOp.end | Source.X;
  const SW = Class.ALU64 | AluOp.end;
  assert.equal(end(LE, 16), 0x7788n);
  assert.equal(end(LE, 32), 0x55667788n);
  assert.equal(end(LE, 64), v);
  assert.equal(end(BE, 16), 0x8877n);
  assert.equal(end(BE, 32), 0x88776655n);
  assert.equal(end(BE, 64), 0x8877665544332211n);
  assert.equal(end(SW, 16), 0x8877n);
  assert.equal(end(SW, 32), 0x88776655n);
  assert.equal(end(SW, 64), 0x8877665544332211n);
});

test("conditional jumps, 64 and 32 bit, signed and unsigned; ja and gotol", () => {
  const ops = ["jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle"] as const;
  const pairs: [bigint, bigint][] = [
    [1n, 1n],
    [U64(-1n), 1n],
    [1n, U64(-1n)],
    [0x1_0000_0002n, 3n],
    [0x8000_0000n, 1n],
  ];
  const expect = (o: (typeof ops)[number], a: bigint, b: bigint, bits: 32 | 64): boolean => {
    const ua = BigInt.asUintN(bits, a);
    const ub = BigInt.asUintN(bits, b);
    const sa = BigInt.asIntN(bits, a);
    const sb = BigInt.asIntN(bits, b);
    return {
      jeq: ua === ub,
      jne: ua !== ub,
      jgt: ua > ub,
      jge: ua >= ub,
      jlt: ua < ub,
      jle: ua <= ub,
      jset: (ua & ub) !== 0n,
      jsgt: sa > sb,
      jsge: sa >= sb,
      jslt: sa < sb,
      jsle: sa <= sb,
    }[o];
  };
  for (const o of ops)
    for (const [a, b] of pairs)
      for (const cls of [Class.JMP, Class.JMP32]) {
        const prog = program(
          asm.ldImm64(R1, a),
          asm.ldImm64(R2, b),
          asm.movImm(R0, 0),
          insn(cls | JmpOp[o] | Source.X, R1, R2, 1, 0),
          asm.exit(),
          asm.movImm(R0, 1),
          asm.exit(),
        );
        const bits = cls === Class.JMP ? 64 : 32;
        assert.equal(run(prog), expect(o, a, b, bits) ? 1n : 0n, `${o}${bits} ${a} ${b}`);
      }
  // Immediate: sign-extended for 64-bit compares.
  const k = program(
    asm.ldImm64(R1, U64(-1n)),
    asm.movImm(R0, 0),
    asm.jmpImm("jeq", R1, -1, 1),
    asm.exit(),
    asm.movImm(R0, 1),
    asm.exit(),
  );
  assert.equal(run(k), 1n);
  // gotol: JMP32 | JA with a 32-bit immediate offset.
  const gotol = program(
    asm.movImm(R0, 1),
    insn(Class.JMP32 | JmpOp.ja, 0, 0, 0, 1),
    asm.exit(),
    asm.movImm(R0, 2),
    asm.exit(),
  );
  assert.equal(run(gotol), 2n);
});

test("loads and stores of every size, sign-extending loads, the 64-bit immediate", () => {
  const mem = Uint8Array.from([0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88]);
  const ld = (code: number) => run(program(insn(code, R0, R1, 0, 0), asm.exit()), mem.slice());
  assert.equal(ld(Class.LDX | Size.B | Mode.MEM), 0x81n);
  assert.equal(ld(Class.LDX | Size.H | Mode.MEM), 0x8281n);
  assert.equal(ld(Class.LDX | Size.W | Mode.MEM), 0x84838281n);
  assert.equal(ld(Class.LDX | Size.DW | Mode.MEM), 0x8887868584838281n);
  assert.equal(ld(Class.LDX | Size.B | Mode.MEMSX), U64(-127n));
  assert.equal(ld(Class.LDX | Size.H | Mode.MEMSX), U64(BigInt.asIntN(16, 0x8281n)));
  assert.equal(ld(Class.LDX | Size.W | Mode.MEMSX), U64(BigInt.asIntN(32, 0x84838281n)));
  const m = new Uint8Array(16);
  run(
    program(
      asm.ldImm64(R2, 0x1122334455667788n),
      asm.store("b", R1, 0, R2),
      asm.store("h", R1, 1, R2),
      asm.store("w", R1, 3, R2),
      asm.storeImm("dw", R1, 8, -2),
      asm.exit(),
    ),
    m,
  );
  assert.deepEqual(
    [...m],
    [0x88, 0x88, 0x77, 0x88, 0x77, 0x66, 0x55, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  );
  assert.equal(run(program(asm.ldImm64(R0, 0xfedcba9876543210n), asm.exit())), 0xfedcba9876543210n);
});

test("atomics: add/or/and/xor with and without fetch, xchg, cmpxchg; 32-bit results zero-extended", () => {
  const A = (imm: number, size: "w" | "dw", init: bigint, src: bigint, r0 = 0n) => {
    const m = new Uint8Array(8);
    new DataView(m.buffer).setBigUint64(0, init, true);
    const vm = vmOf(
      program(
        asm.ldImm64(R2, src),
        asm.ldImm64(R0, r0),
        asm.atomic(size, R1, 0, R2, imm),
        asm.mov(R3, R0),
        asm.mov(R0, R2),
        asm.exit(),
      ),
    );
    const p = vm.mem.mapFixed(INPUT_SLOT, new Region("m", m, true));
    const r2 = vm.run([p]);
    return { mem: new DataView(m.buffer).getBigUint64(0, true), r2 };
  };
  const init = 0xffff_0000_0000_00f0n;
  assert.deepEqual(A(AtomicOp.add, "dw", init, 0x10n), { mem: init + 0x10n, r2: 0x10n });
  assert.deepEqual(A(AtomicOp.add | AtomicOp.fetch, "dw", init, 0x10n), { mem: init + 0x10n, r2: init });
  assert.deepEqual(A(AtomicOp.or | AtomicOp.fetch, "dw", init, 0x0fn), { mem: init | 0x0fn, r2: init });
  assert.deepEqual(A(AtomicOp.and | AtomicOp.fetch, "dw", init, 0xf0n), { mem: 0xf0n, r2: init });
  assert.deepEqual(A(AtomicOp.xor | AtomicOp.fetch, "dw", init, 0xffn), { mem: init ^ 0xffn, r2: init });
  assert.deepEqual(A(AtomicOp.xchg, "dw", init, 5n), { mem: 5n, r2: init });
  // 32-bit: only the low word changes; the fetched value is zero-extended.
  assert.deepEqual(A(AtomicOp.add | AtomicOp.fetch, "w", 0x1_ffff_ffffn, 0x1_0000_0001n), {
    mem: 0x1_0000_0000n,
    r2: 0xffffffffn,
  });
  assert.deepEqual(A(AtomicOp.xchg, "w", 0x2_0000_0007n, U64(-1n)), { mem: 0x2_ffff_ffffn, r2: 7n });
  // cmpxchg: r0 gets the old value; the store happens when it matched r0.
  const C = (size: "w" | "dw", init: bigint, r0: bigint) => {
    const m = new Uint8Array(8);
    new DataView(m.buffer).setBigUint64(0, init, true);
    const vm = vmOf(
      program(
        asm.ldImm64(R2, 0x99n),
        asm.ldImm64(R0, r0),
        asm.atomic(size, R1, 0, R2, AtomicOp.cmpxchg),
        asm.exit(),
      ),
    );
    const r = vm.run([vm.mem.mapFixed(INPUT_SLOT, new Region("m", m, true))]);
    return { mem: new DataView(m.buffer).getBigUint64(0, true), r0: r };
  };
  assert.deepEqual(C("dw", 7n, 7n), { mem: 0x99n, r0: 7n });
  assert.deepEqual(C("dw", 7n, 8n), { mem: 7n, r0: 7n });
  assert.deepEqual(C("w", 0x5_0000_0007n, 0xffff_ffff_0000_0007n), { mem: 0x5_0000_0099n, r0: 7n });
  assert.deepEqual(C("w", 0x5_0000_0007n, 6n), { mem: 0x5_0000_0007n, r0: 7n });
});

test("bpf-to-bpf calls: r1-r5 in, r0 out, r6-r9 and r10 restored, a fresh zeroed frame, the caller's stack reachable", () => {
  const prog = program(
    asm.storeImm("dw", R10, -8, 41), // caller's stack slot
    asm.movImm(R6, 6),
    asm.movImm(R7, 7),
    asm.movImm(R8, 8),
    asm.movImm(R9, 9),
    asm.mov(R1, R10),
    asm.aluImm("add", R1, -8),
    asm.callLocal(9), // -> insn 17
    // back: r0 = callee's value + r6 + r7 + r8 + r9 + what the callee left in its own frame (0)
    asm.alu("add", R0, R6),
    asm.alu("add", R0, R7),
    asm.alu("add", R0, R8),
    asm.alu("add", R0, R9),
    asm.load("dw", R2, R10, -8),
    asm.alu("add", R0, R2),
    asm.load("dw", R2, R10, -16),
    asm.alu("add", R0, R2),
    asm.exit(),
    // callee (insn 17): *(r1) += 1 through the caller's pointer; its own slot at -16 reads 0; clobber r6-r9.
    asm.load("dw", R2, R1, 0),
    asm.aluImm("add", R2, 1),
    asm.store("dw", R1, 0, R2),
    asm.load("dw", R0, R10, -8),
    asm.storeImm("dw", R10, -16, 1000),
    asm.movImm(R6, 0),
    asm.movImm(R7, 0),
    asm.movImm(R8, 0),
    asm.movImm(R9, 0),
    asm.exit(),
  );
  // callee r0 = 0 (fresh frame), r6..r9 = 30, caller's slot = 42, caller's -16 = 0.
  assert.equal(run(prog), 0n + 30n + 42n);
});

test("call depth: 8 frames run, a 9th is E2BIG naming the call", () => {
  // f(n): if n == 0 return 0; return f(n - 1) + 1. Frames = n + 1.
  const rec = (n: number) =>
    program(
      asm.movImm(R1, n),
      asm.callLocal(1),
      asm.exit(),
      asm.movImm(R0, 0),
      asm.jmpImm("jeq", R1, 0, 4),
      asm.aluImm("sub", R1, 1),
      asm.callLocal(-4),
      asm.aluImm("add", R0, 1),
      asm.ja(0),
      asm.exit(),
    );
  assert.equal(run(rec(6)), 6n); // main + 7 = 8 frames
  throwsRun(() => run(rec(7)), "E2BIG", 6, /9 frames is too deep/);
});

test("helpers: r1-r5 in, r0 out; an unknown helper is refused at load; get_smp_processor_id is the VM's CPU", () => {
  const helpers = new Map<number, HelperFn>([
    [1000, (_vm, a, b, c, d, e) => a * 10000n + b * 1000n + c * 100n + d * 10n + e],
  ]);
  const prog = program(
    asm.movImm(R1, 1),
    asm.movImm(R2, 2),
    asm.movImm(R3, 3),
    asm.movImm(4, 4),
    asm.movImm(5, 5),
    asm.call(1000),
    asm.exit(),
  );
  assert.equal(vmOf(prog, helpers).run(), 12345n);
  throwsLoad(
    () => vmOf(program(asm.call(1001), asm.exit()), helpers),
    "EINVAL",
    /insn 0: invalid func unknown#1001/,
  );
  const h = baseHelpers();
  const vm = new Vm(decodeProgram(program(asm.call(Helper.getSmpProcessorId), asm.exit())), {
    helpers: h,
    cpu: 3,
  });
  assert.equal(vm.run(), 3n);
});

test("bpf_loop: the callback runs nr times with its index and ctx, 1 stops it, over 2^23 is -E2BIG, flags -EINVAL", () => {
  const loop = (nr: number, stopAt: number, flags = 0) =>
    program(
      asm.storeImm("dw", R10, -8, 0),
      asm.movImm(R1, nr),
      insn(Class.LD | Size.DW | Mode.IMM, R2, PseudoLd.func, 0, 9), // -> insn 12
      insn(0, 0, 0, 0, 0),
      asm.mov(R3, R10),
      asm.aluImm("add", R3, -8),
      asm.movImm(4, flags),
      asm.call(Helper.loop),
      asm.load("dw", R1, R10, -8),
      asm.aluImm("lsh", R0, 32),
      asm.alu("or", R0, R1), // r0 = iterations << 32 | sum of indexes
      asm.exit(),
      // callback(index r1, ctx r2): *ctx += index; return index == stopAt
      asm.load("dw", R3, R2, 0),
      asm.alu("add", R3, R1),
      asm.store("dw", R2, 0, R3),
      asm.movImm(R0, 0),
      asm.jmpImm("jne", R1, stopAt, 1),
      asm.movImm(R0, 1),
      asm.exit(),
    );
  assert.equal(run(loop(10, -1)), (10n << 32n) | 45n);
  assert.equal(run(loop(10, 3)), (4n << 32n) | 6n);
  assert.equal(run(loop(MAX_LOOPS + 1, -1)) >> 32n, U64(-7n) & 0xffffffffn); // -E2BIG, truncated by the shift
  assert.equal(run(loop(1, -1, 1)) >> 32n, U64(-22n) & 0xffffffffn);
  // As the kernel's inlined bpf_loop (flags 0): all 64 bits of nr are compared
  // (2^32 + 5 is not 5 loops), and -E2BIG comes back zero-extended.
  const wide = program(
    asm.movImm(R1, 1),
    asm.aluImm("lsh", R1, 32),
    asm.aluImm("add", R1, 5),
    insn(Class.LD | Size.DW | Mode.IMM, R2, PseudoLd.func, 0, 5), // -> insn 9
    insn(0, 0, 0, 0, 0),
    asm.movImm(R3, 0),
    asm.movImm(4, 0),
    asm.call(Helper.loop),
    asm.exit(),
    asm.movImm(R0, 0),
    asm.exit(),
  );
  assert.equal(run(wide), 0xfffffff9n);
});

test("trace_printk formats into the VM's log and returns the length", () => {
  const fmt = new TextEncoder().encode("x=%d u=%u h=%llx %%\0");
  const vm = vmOf(
    program(
      asm.mov(R6, R1),
      asm.movImm(R2, fmt.length),
      asm.movImm(R3, -5),
      asm.movImm(4, -1),
      asm.movImm(5, 255),
      asm.call(Helper.tracePrintk),
      asm.exit(),
    ),
  );
  const p = vm.mem.mapFixed(INPUT_SLOT, new Region("fmt", fmt, false));
  assert.equal(vm.run([p]), BigInt("x=-5 u=4294967295 h=ff %".length));
  assert.deepEqual(vm.log, ["x=-5 u=4294967295 h=ff %"]);
});

test("memory faults stop the run with EFAULT naming the instruction", () => {
  throwsRun(() => run(program(asm.movImm(R1, 0), asm.load("w", R0, R1, 0), asm.exit())), "EFAULT", 1, /NULL/);
  throwsRun(() => run(program(asm.load("dw", R0, R10, -520), asm.exit())), "EFAULT", 0, /stack frame 0/);
  throwsRun(() => run(program(asm.load("dw", R0, R10, 0), asm.exit())), "EFAULT", 0, /out of bounds/);
  throwsRun(
    () => run(program(asm.movImm(R0, 0), asm.store("dw", R1, 4, R0), asm.exit()), new Uint8Array(8)),
    "EFAULT",
    1,
    /input memory/,
  );
  // A read-only region refuses writes; an atomic must be aligned.
  const vm = vmOf(program(asm.storeImm("b", R1, 0, 1), asm.exit()));
  const ro = vm.mem.mapFixed(INPUT_SLOT, new Region("rodata", new Uint8Array(4), false));
  throwsRun(() => vm.run([ro]), "EFAULT", 0, /read-only/);
  throwsRun(
    () => run(program(asm.movImm(R2, 1), asm.atomicAdd("dw", R10, -12, R2), asm.exit())),
    "EFAULT",
    1,
    /misaligned/,
  );
  // A pointer into a callee's frame is dead once the callee returned.
  const dead = program(
    asm.callLocal(2),
    asm.load("dw", R0, R0, -8),
    asm.exit(),
    asm.mov(R0, R10),
    asm.exit(),
  );
  throwsRun(() => run(dead), "EFAULT", 1, /stack frame 1 is not live/);
  // A map handle is not memory.
  const mapProg = program(asm.ldMapFd(R1, { fd: 0 }), asm.load("w", R0, R1, 0), asm.exit());
  const mvm = new Vm(decodeProgram(mapProg, { pseudo: [PseudoLd.mapFd] }), { maps: [{}] });
  throwsRun(() => mvm.run(), "EFAULT", 2, /map handle/);
});

test("a run over its instruction budget stops with E2BIG; one that falls off the end with EINVAL", () => {
  const spin = program(asm.movImm(R0, 0), asm.aluImm("add", R0, 1), asm.ja(-2), asm.exit());
  throwsRun(() => vmOf(spin, baseHelpers(), 1000).run(), "E2BIG", 2, /budget of 1000/);
  throwsRun(
    () => run(program(asm.movImm(R0, 0), asm.jmpImm("jeq", R0, 0, 1), asm.exit(), asm.movImm(R0, 1))),
    "EINVAL",
    3,
    /past its last/,
  );
});

test("decode refuses what the kernel refuses: unknown opcodes, reserved fields, bad jumps, r10 writes, half an ld_imm64", () => {
  throwsLoad(() => decodeProgram([]), "EINVAL", /no instructions/);
  throwsLoad(
    () => decodeProgram(program(insn(0xf5, 0, 0, 0, 0), asm.exit())),
    "EINVAL",
    /insn 0: invalid BPF_JMP opcode 0xf5/,
  );
  throwsLoad(
    () => decodeProgram(program(insn(Class.ALU64 | 0xe0, 0, 0, 0, 0), asm.exit())),
    "EINVAL",
    /invalid BPF_ALU opcode/,
  );
  throwsLoad(
    () => decodeProgram(program(asm.movImm(R0, 0), insn(0x20, 0, 0, 0, 0), asm.exit())),
    "EINVAL",
    /insn 1: legacy packet loads/,
  );
  throwsLoad(
    () => decodeProgram(program(insn(Class.ALU64 | AluOp.add | Source.X, 0, 1, 0, 7), asm.exit())),
    "EINVAL",
    /BPF_ALU uses reserved fields/,
  );
  throwsLoad(
    () => decodeProgram(program(insn(Class.ALU64 | AluOp.add | Source.K, 0, 0, 1, 7), asm.exit())),
    "EINVAL",
    /reserved/,
  ); // offset 1 only on div/mod
  throwsLoad(() => decodeProgram(program(asm.ja(5), asm.exit())), "EINVAL", /insn 0: jump out of range/);
  throwsLoad(() => decodeProgram(program(asm.ja(-2), asm.exit())), "EINVAL", /jump out of range/);
  throwsLoad(
    () => decodeProgram(program(asm.ja(1), asm.ldImm64(R0, 1n), asm.exit())),
    "EINVAL",
    /middle of the ld_imm64 at insn 1/,
  );
  throwsLoad(() => decodeProgram(program(asm.movImm(R10, 0), asm.exit())), "EACCES", /frame pointer/);
  throwsLoad(
    () => decodeProgram([insn(Class.LD | Size.DW | Mode.IMM, R0, 0, 0, 1)]),
    "EINVAL",
    /second half is missing/,
  );
  throwsLoad(
    () => decodeProgram(program(insn(0x18, 0, 0, 0, 0), insn(0x07, 0, 0, 0, 0), asm.exit())),
    "EINVAL",
    /not a bare immediate/,
  );
  throwsLoad(
    () => decodeProgram(program(asm.ldMapFd(R1, { fd: 3 }), asm.exit())),
    "EINVAL",
    /map fd .* nothing to resolve/,
  );
  throwsLoad(() => decodeProgram(program(insn(0x8d, 0, 0, 0, 0), asm.exit())), "EINVAL", /callx/);
  throwsLoad(() => decodeProgram(program(insn(0x85, 0, 2, 0, 9), asm.exit())), "EINVAL", /kfunc/);
  throwsLoad(() => decodeProgram(program(insn(0xe5, 0, 0, 1, 0), asm.exit())), "EINVAL", /may_goto/);
  throwsLoad(
    () => decodeProgram(program(insn(0xdb, R10, R1, -8, 0x100), asm.exit())),
    "EINVAL",
    /load-acquire/,
  );
  throwsLoad(
    () => decodeProgram(program(insn(0xdb, R10, R1, -8, 0x20), asm.exit())),
    "EINVAL",
    /invalid atomic operation 0x20/,
  );
  throwsLoad(() => decodeProgram(program(insn(0xd3, R10, R1, -8, 0), asm.exit())), "EINVAL", /32 or 64 bits/);
  throwsLoad(
    () => decodeProgram(program(insn(Class.LDX | Size.DW | Mode.MEMSX, 0, 1, 0, 0), asm.exit())),
    "EINVAL",
    /invalid BPF_LDX/,
  );
  throwsLoad(
    () => decodeProgram(program(insn(0xd7, 0, 0, 0, 16), insn(0xdf, 0, 0, 0, 16), asm.exit())),
    "EINVAL",
    /insn 1: BPF_END/,
  );
  throwsLoad(
    () => decodeProgram(program(insn(0xbf, 0, 12, 0, 0), asm.exit())),
    "EINVAL",
    /r12 does not exist/,
  );
});

test("the disassembler prints the kernel verifier's notation", () => {
  const p = program(
    asm.load("w", R1, R2, 4),
    asm.jmpImm("jgt", R1, 5, 3),
    insn(0xdb, R10, R1, -8, AtomicOp.add),
    insn(0xc3, R10, R1, -8, AtomicOp.add | AtomicOp.fetch),
    asm.ldImm64(R0, 0x1234n),
    asm.alu32("mov", R0, R1),
    insn(Class.ALU64 | AluOp.div | Source.X, R0, R1, 1, 0),
    insn(Class.ALU64 | AluOp.mov | Source.X, R0, R1, 16, 0),
    asm.callLocal(-3),
    asm.exit(),
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 6, 7, 8, 9, 10].map((i) => disasm(p, i)),
    [
      "r1 = *(u32 *)(r2 +4)",
      "if r1 > 0x5 goto pc+3",
      "lock *(u64 *)(r10 -8) += r1",
      "w1 = atomic_fetch_add(*(u32 *)(r10 -8), w1)",
      "r0 = 0x1234 ll",
      "w0 = w1",
      "r0 s/= r1",
      "r0 = (s16)r1",
      "call pc-3",
      "exit",
    ],
  );
});
