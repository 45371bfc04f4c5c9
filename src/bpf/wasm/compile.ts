/**
 * The BPF-to-WebAssembly compiler: one wasm function per BPF function of a
 * decoded program, over one memory where BPF pointers are 32-bit offsets.
 *
 * Registers are i64 locals (r1-r5 the parameters, r0 the result); 32-bit
 * ALU results are zero-extended; division and modulo follow the kernel
 * (x/0 = 0, x%0 = x, INT_MIN/-1 = INT_MIN, INT_MIN%-1 = 0: wasm would trap,
 * so the divisor is tested first); shift counts are masked, as wasm's are.
 *
 * Control flow: the function's basic blocks are nested wasm blocks, block j
 * ending where block j's code starts, so a forward jump is one `br` out to
 * its target. Backward jumps (loops) set the target block's index and branch
 * to an outer `loop`, whose `br_table` dispatches into the nest; each one
 * also takes the span it jumps back from the run's budget (a wasm global),
 * so every run ends: straight-line code is bounded by the program's length.
 *
 * Memory: every load, store and atomic goes through `chk` (a wasm function
 * of the module: the live stack frames, the table entry that answered
 * last, then the run's region table in memory) unless a light pass proves
 * it safe: a forward dataflow over the function's blocks knows registers
 * that hold r10 + c or a fixed region's address + c (moves and constant
 * additions) on every path, and an access through one inside its frame or
 * region is a plain load or store. A failed check calls the `fault` import,
 * which throws the interpreter's BpfRunError (EFAULT naming the instruction).
 *
 * Calls: helpers through the `helper` import (id, pc, r1-r5) → r0; with
 * `mapShims`, the map helpers take numbers (`m<id>`), lookups on fast maps
 * run in wasm over fast-path.wat's lookup (a wasm-to-wasm call) and spin
 * locks are taken and released in wasm, the JS shims answering waits and
 * errors. bpf-to-bpf calls are wasm calls, the callee zeroing its own
 * 512-byte frame at stackTop - 1024 * depth - 512 (the depth a wasm global;
 * 8 frames at most, else E2BIG; a gap above each frame), r6-r9 and r10
 * being the caller's own locals. Repeated runs loop in wasm (`loop`).
 *
 * What differs from the interpreter, all in programs the verifier refuses:
 * pointers are addresses, not slot numbers (arithmetic on a pointer's bits
 * other than adding offsets gives other numbers); a callee that reads r0 or
 * r6-r9 before writing them reads zero, not its caller's values; a jump
 * between functions is refused at load (EINVAL); the budget charges each
 * backward jump the span it jumps over, not each instruction run.
 */

import { BpfError, Errno } from "../../errors.js";
import {
  AluOp,
  AtomicOp,
  Class,
  type DecodedProgram,
  Helper,
  type Insn,
  JmpOp,
  Kind,
  MAX_CALL_FRAMES,
  Mode,
  PseudoLd,
  Source,
  STACK_BYTES,
  sizeBytes,
} from "../isa.js";
import { ETH_HLEN, FRAME_BYTES, FRAME_RESERVED } from "../xdp.js";
import { FuncBody, I32, I64, ModuleBuilder, Op, OpFE, type ValType } from "./encoder.js";

/** Why `fault` was called (its first argument). */
export const Fault = {
  read: 1,
  write: 2,
  misaligned: 3,
  budget: 4,
  depth: 5,
  /** More helper results than the region table holds. */
  regions: 8,
  /** The last block of the program fell off its end. */
  pastEnd: 6,
  /** A function's last block fell into the next function's code. */
  intoNext: 7,
} as const;

/** A range of memory a program may touch, known when it is compiled. */
export interface FixedRegion {
  lo: number;
  hi: number;
  writable: boolean;
}

export interface CompileEnv {
  /** r10 of frame 0; frame k is the 512 bytes below stackTop - 512k. A multiple of 512. */
  stackTop: number;
  /** Address of the region table: u32 count, then 16-byte entries (u32 lo, u32 hi, u32 writable). */
  table: number;
  /** Regions that stay put for the module's life: accesses proven inside one are not checked. */
  fixed: readonly FixedRegion[];
  /** The value of the LD_IMM64 at `i` whose src is a pseudo source (a map, a global, a function). */
  pseudo(i: number, x: Insn): bigint;
  /** Whether the memory the module imports is shared. */
  shared: boolean;
  /**
   * Map helpers called with numbers instead of 64-bit registers: with
   * `maps` the object's map count, helpers 1, 2, 3 (lookup, update, delete:
   * r1 a map handle, pointers below 2^32) and 93, 94 (spin lock, unlock: r1
   * below 2^32) call `m<id>(pc, map index or r1, r2, r3, r4)` (all i32; r0 =
   * the i32 result, an address zero-extended, an errno sign-extended); any
   * other argument goes to `helper`, which answers it as the interpreter does.
   */
  mapShims?: { maps: number };
  /**
   * Maps whose lookups run in wasm (by map index): plain HASH maps with
   * word keys on the fast path; their lookup calls fast-path.wat's
   * `lookup` export (imported as `env.fpLookup`, a wasm-to-wasm call) and
   * maps the value in the region table itself. Needs mapShims.
   */
  fastMaps?: ReadonlyMap<number, FastMap>;
  /** This CPU slot's owner word for bpf_spin_lock (sync/owner-lock.ts: (cpu + 1) << 1). */
  lockOwner?: number;
  /** The CPU slot the module runs on: bpf_get_smp_processor_id() (8) compiles to it. */
  cpu?: number;
  /** Export `loop` (runs repeated in wasm, as BPF_PROG_TEST_RUN repeats them): its addresses. */
  loop?: RunLoop;
  /**
   * The region whose address r1 holds when the program starts (an XDP
   * program's struct xdp_md, which `loop` passes): accesses through r1 at
   * the entry are proven, unless the program calls or takes the address of
   * its first instruction (then r1 there may be anything).
   */
  entryContext?: FixedRegion;
}

/**
 * What `loop(r1, n, len) → runs` redoes before each of its `n` runs: for a
 * syscall program its context copied in from saved input bytes (`len` of
 * them at `input`); for XDP nothing: as bpf_test_run() repeats, every run
 * works on the frame, packet and struct xdp_md the previous run left (the
 * caller sets them up once). Each run starts at depth 0 with the full budget, no
 * lock held and the table's run entries only. It stops early after a run
 * that exits holding a lock (the `held` global says so); r0 of the last run
 * is the `r0` global.
 */
export interface RunLoop {
  kind: "xdp" | "ctx";
  input: number;
  /** XDP: the frame (headroom, then the packet) and struct xdp_md. Syscall: the context. */
  frame: number;
  md: number;
  headroom: number;
  /** The table entry of the packet region (fixed count + 1). */
  packetEntry: number;
  budget: number;
  /** XDP: a u32 that is not 0 while the packet has fragments past its linear part (adjust_tail refuses those, in JS). */
  frags: number;
}

/** A map whose lookups run in wasm: this slot's fast-path descriptor and the value's shape. */
export interface FastMap {
  /** Byte address of this slot's descriptor (layout.ts SCRATCH_*). */
  desc: number;
  /** Byte address of the scratch key, and its u32 words. */
  key: number;
  keyWords: number;
  /** Byte address of the map (element links are word indices from it) and the value's offset in an element. */
  base: number;
  valueOff: number;
  valueSize: number;
  writable: boolean;
  /** The value's bpf_spin_lock offset, or -1. */
  lock: number;
  /**
   * LRU_HASH on the common LRU: a hit sets its node's REF word as the JS
   * lookup does (bpf_lru_node_set_ref(): a plain store, only when clear).
   * Node n's REF word is at `ref + 16 n`, n = (e - elems) / elemStride for
   * element word index e, and n below `nodes` (else nothing is touched).
   */
  lru?: { ref: number; elems: number; elemStride: number; nodes: number };
}

/** Imports: `env.memory`, `env.helper`, `env.fault`, `env.h<id>`. Exports: `f<pc>` per function, globals `depth`, `budget`. */
export interface CompiledModule {
  bytes: Uint8Array;
  /** The first instruction of each function, as exported. */
  functions: readonly number[];
}

// Locals: parameters r1..r5 are 0..4.
const R0 = 5;
const T0 = 11;
const FB = 13; // i32: this frame's lowest byte
const A = 14; // i32 scratch
const PC = 15; // i32: the block a backward jump dispatches to
const AT = 16; // i64: an address being checked
/** i64: the run's budget while a function with backward jumps runs (budgetOut(), budgetIn()). */
const BUD = 17;
const LOCALS: [number, ValType][] = [
  [8, I64],
  [3, I32],
  [2, I64],
];
const local = (r: number) => (r === 0 ? R0 : r <= 5 ? r - 1 : r);

/** Helpers with a numeric shim (CompileEnv.mapShims): lookup, update, delete, spin lock, unlock. */
export const SHIM_IDS = [1, 2, 3, 93, 94] as const;

/**
 * Frame k's bytes are [stackTop - 1024k - 512, stackTop - 1024k): 512
 * unmapped bytes above each frame, so an access past a callee's frame top
 * faults (as in the interpreter, whose frames are apart) instead of
 * reaching its caller's frame. stackTop is a multiple of 1024.
 */
export const FRAME_STRIDE = 2 * STACK_BYTES;

const G_DEPTH = 0;
const G_BUDGET = 1;

const BPF_FN = { params: [I64, I64, I64, I64, I64] as ValType[], results: [I64] as ValType[] };

const JMP64: Record<number, number> = {
  [JmpOp.jeq]: Op.i64Eq,
  [JmpOp.jne]: Op.i64Ne,
  [JmpOp.jgt]: Op.i64GtU,
  [JmpOp.jge]: Op.i64GeU,
  [JmpOp.jlt]: Op.i64LtU,
  [JmpOp.jle]: Op.i64LeU,
  [JmpOp.jsgt]: Op.i64GtS,
  [JmpOp.jsge]: Op.i64GeS,
  [JmpOp.jslt]: Op.i64LtS,
  [JmpOp.jsle]: Op.i64LeS,
};
const JMP32: Record<number, number> = {
  [JmpOp.jeq]: Op.i32Eq,
  [JmpOp.jne]: Op.i32Ne,
  [JmpOp.jgt]: Op.i32GtU,
  [JmpOp.jge]: Op.i32GeU,
  [JmpOp.jlt]: Op.i32LtU,
  [JmpOp.jle]: Op.i32LeU,
  [JmpOp.jsgt]: Op.i32GtS,
  [JmpOp.jsge]: Op.i32GeS,
  [JmpOp.jslt]: Op.i32LtS,
  [JmpOp.jsle]: Op.i32LeS,
};
const SIMPLE64: Record<number, number> = {
  [AluOp.add]: Op.i64Add,
  [AluOp.sub]: Op.i64Sub,
  [AluOp.mul]: Op.i64Mul,
  [AluOp.or]: Op.i64Or,
  [AluOp.and]: Op.i64And,
  [AluOp.xor]: Op.i64Xor,
  [AluOp.lsh]: Op.i64Shl,
  [AluOp.rsh]: Op.i64ShrU,
  [AluOp.arsh]: Op.i64ShrS,
};
const SIMPLE32: Record<number, number> = {
  [AluOp.add]: Op.i32Add,
  [AluOp.sub]: Op.i32Sub,
  [AluOp.mul]: Op.i32Mul,
  [AluOp.or]: Op.i32Or,
  [AluOp.and]: Op.i32And,
  [AluOp.xor]: Op.i32Xor,
  [AluOp.lsh]: Op.i32Shl,
  [AluOp.rsh]: Op.i32ShrU,
  [AluOp.arsh]: Op.i32ShrS,
};
const LOAD: Record<number, number> = { 1: Op.i64Load8U, 2: Op.i64Load16U, 4: Op.i64Load32U, 8: Op.i64Load };
const LOAD_SX: Record<number, number> = { 1: Op.i64Load8S, 2: Op.i64Load16S, 4: Op.i64Load32S };
const STORE: Record<number, number> = { 1: Op.i64Store8, 2: Op.i64Store16, 4: Op.i64Store32, 8: Op.i64Store };
const LOG2: Record<number, number> = { 1: 0, 2: 1, 4: 2, 8: 3 };
const RMW32: Record<number, number> = {
  [AtomicOp.add]: OpFE.i32RmwAdd,
  [AtomicOp.or]: OpFE.i32RmwOr,
  [AtomicOp.and]: OpFE.i32RmwAnd,
  [AtomicOp.xor]: OpFE.i32RmwXor,
  [AtomicOp.xchg]: OpFE.i32RmwXchg,
};
const RMW64: Record<number, number> = {
  [AtomicOp.add]: OpFE.i64RmwAdd,
  [AtomicOp.or]: OpFE.i64RmwOr,
  [AtomicOp.and]: OpFE.i64RmwAnd,
  [AtomicOp.xor]: OpFE.i64RmwXor,
  [AtomicOp.xchg]: OpFE.i64RmwXchg,
};

/** What the light pass knows of a register inside a basic block. */
const UNKNOWN = 0;
const STACK = 1; // r10 + value
const ABS = 2; // the address `value`
const MAP = 3; // the handle of map `value`
/** What a wasm lookup of fast map `value` returned: its value's address, or 0. */
const VALUE_OR_NULL = 4;
/** The same after a test against 0 proved it not 0: the address of a whole value of fast map `value`. */
const VALUE = 5;
/** An XDP packet pointer: xdp_md's data plus `value`. */
const PKT = 6;
/** xdp_md's data_end plus `value`. */
const PKT_END = 7;
/**
 * Slot RANGE of the state (after r0-r10): how many bytes from data a
 * comparison with data_end has proved inside the packet (kind PROVEN, the
 * count in `value`), until a call, which may move the packet.
 */
const RANGE = 11;
const PROVEN = 8;
/** Entries of the dataflow state: r0-r10 and RANGE. */
const STATE = 12;
/** Kinds whose `value` is an offset that adding or subtracting a constant moves. */
const OFFSET_KINDS = new Set([STACK, ABS, PKT, PKT_END]);

/**
 * Compile a decoded program.
 * @throws BpfError EINVAL when a jump leaves its function (the verifier refuses that too)
 */
export function compileProgram(prog: DecodedProgram, env: CompileEnv): CompiledModule {
  const m = new ModuleBuilder();
  const fHelper = m.importFunc("env", "helper", {
    params: [I32, I32, I64, I64, I64, I64, I64],
    results: [I64],
  });
  const fFault = m.importFunc("env", "fault", { params: [I32, I32, I64, I32], results: [] });
  const own = new Map<number, number>();
  if (env.mapShims !== undefined)
    for (const id of SHIM_IDS)
      own.set(id, m.importFunc("env", `m${id}`, { params: [I32, I32, I32, I32, I32], results: [I32] }));
  const fast = env.fastMaps !== undefined && env.fastMaps.size > 0 && env.mapShims !== undefined;
  const fLookup = fast ? m.importFunc("env", "fpLookup", { params: [I32, I32, I32], results: [I32] }) : -1;
  m.importMemory("env", "memory", 1, 65536, env.shared);
  m.global(I32, 0n, "depth");
  m.global(I64, 0n, "budget");
  m.global(I32, 0n, "held");
  m.global(I64, 0n, "r0");
  m.global(I32, 0n);
  m.global(I64, 0n);
  m.global(I64, 0n, "hintSpan");
  m.global(I64, 0n, "hintWSpan");
  const fChk = m.func(
    { params: [I64, I32, I32, I32], results: [I32] },
    checkBody(env.stackTop, env.table, fFault),
  );
  const extra: ExtraFuncs = {
    give: -1,
    lock: -1,
    unlock: -1,
    lookup: fLookup,
    adjustHead: -1,
    adjustTail: -1,
  };
  if (env.loop?.kind === "xdp") {
    const sig = { params: [I64, I64, I32] as ValType[], results: [I64] as ValType[] };
    extra.adjustHead = m.func(sig, adjustBody(env, fHelper, false));
    extra.adjustTail = m.func(sig, adjustBody(env, fHelper, true));
  }
  if (env.mapShims !== undefined) {
    extra.give = m.func({ params: [I32, I32, I32, I32, I32], results: [I32] }, giveBody(env.table, fFault));
    const owner = env.lockOwner ?? 2;
    extra.lock = m.func(
      { params: [I64, I32], results: [I64] },
      lockBody(env.table, owner, own.get(93) as number, true),
    );
    extra.unlock = m.func(
      { params: [I64, I32], results: [I64] },
      lockBody(env.table, owner, own.get(94) as number, false),
    );
  }
  const starts = prog.functions;
  const index = new Map<number, number>();
  const first = m.nextFunc();
  starts.forEach((s, k) => {
    index.set(s, first + k);
  });
  starts.forEach((s, k) => {
    const end = k + 1 < starts.length ? starts[k + 1] : prog.insns.length;
    const body = new FunctionCompiler(prog, env, s, end, {
      helper: fHelper,
      fault: fFault,
      chk: fChk,
      own,
      funcs: index,
      extra,
    }).compile();
    m.func(BPF_FN, body, `f${s}`);
  });
  if (env.loop !== undefined)
    m.func({ params: [I64, I32, I32], results: [I32] }, loopBody(env, index.get(0) as number), "loop");
  return { bytes: m.encode(), functions: starts };
}

/** chk(addr i64, size i32, write i32, pc i32) → the i32 address, or a call to fault. */
function checkBody(stackTop: number, table: number, fFault: number): FuncBody {
  // params: 0 addr, 1 size, 2 write, 3 pc; locals: 4 n, 5 e
  const b = new FuncBody([[2, I32]]);
  // An address of 2^32 or more is nothing.
  b.get(0).i64(32).op(Op.i64ShrU).op(Op.i64Eqz).if();
  // The region table: the entry found last, if it is still below the count and holds the access.
  const holds = () => {
    b.get(0).get(5).mem(Op.i32Load, 2, 0).op(Op.i64ExtendI32U).op(Op.i64GeU);
    b.get(0)
      .get(1)
      .op(Op.i64ExtendI32U)
      .op(Op.i64Add)
      .get(5)
      .mem(Op.i32Load, 2, 4)
      .op(Op.i64ExtendI32U)
      .op(Op.i64LeU)
      .op(Op.i32And);
    b.get(2).op(Op.i32Eqz).get(5).mem(Op.i32Load, 2, 8).op(Op.i32Or).op(Op.i32And);
  };
  b.i32(table).mem(Op.i32Load, 2).set(4);
  b.gget(G_HINT).tee(5).if();
  b.get(5)
    .i32(table + 16)
    .op(Op.i32Sub)
    .i32(4)
    .op(Op.i32ShrU)
    .get(4)
    .op(Op.i32LtU);
  holds();
  b.op(Op.i32And).if();
  cacheHint(b);
  b.get(0).op(Op.i32WrapI64).op(Op.return).end();
  b.end();
  // The live frames: [stackTop - 1024 * depth - 512, stackTop), inside one frame (not its gap: bit 9 set).
  b.get(0).i64(stackTop).op(Op.i64LtU);
  b.get(0)
    .i32(stackTop - STACK_BYTES)
    .gget(G_DEPTH)
    .i32(10)
    .op(Op.i32Shl)
    .op(Op.i32Sub)
    .op(Op.i64ExtendI32U)
    .op(Op.i64GeU)
    .op(Op.i32And);
  b.get(0).op(Op.i32WrapI64).i32(STACK_BYTES).op(Op.i32And).op(Op.i32Eqz).op(Op.i32Eqz).op(Op.i32And);
  b.get(0)
    .op(Op.i32WrapI64)
    .i32(STACK_BYTES - 1)
    .op(Op.i32And)
    .get(1)
    .op(Op.i32Add)
    .i32(STACK_BYTES)
    .op(Op.i32LeU)
    .op(Op.i32And);
  b.if().get(0).op(Op.i32WrapI64).op(Op.return).end();
  b.i32(table + 16).set(5);
  b.block().loop();
  b.get(4).op(Op.i32Eqz).brIf(1);
  holds();
  b.if().get(5).gset(G_HINT);
  cacheHint(b);
  b.get(0).op(Op.i32WrapI64).op(Op.return).end();
  b.get(5).i32(16).op(Op.i32Add).set(5);
  b.get(4).i32(1).op(Op.i32Sub).set(4);
  b.br(0).end().end();
  b.end();
  b.i32(Fault.read).get(2).op(Op.i32Add).get(3).get(0).get(1).call(fFault);
  b.op(Op.unreachable);
  return b;
}

/** chk(): entry `e` (local 5) into G_LO, G_SPAN, G_WSPAN (local 4 is free by then). */
function cacheHint(b: FuncBody): void {
  b.get(5).mem(Op.i32Load, 2, 0).op(Op.i64ExtendI32U).gset(G_LO);
  // span = hi - lo - 7 when hi - lo >= 8, else 0 (u32 arithmetic: hi >= lo in every entry)
  b.get(5).mem(Op.i32Load, 2, 4).get(5).mem(Op.i32Load, 2, 0).op(Op.i32Sub).tee(4);
  b.i32(7).op(Op.i32Sub).i32(0).get(4).i32(8).op(Op.i32GeU).op(Op.select);
  b.op(Op.i64ExtendI32U).gset(G_SPAN);
  b.gget(G_SPAN).i64(0).get(5).mem(Op.i32Load, 2, 8).op(Op.select).gset(G_WSPAN);
}

interface ExtraFuncs {
  give: number;
  lock: number;
  unlock: number;
  lookup: number;
  /** bpf_xdp_adjust_head / _tail in wasm (adjustBody()), or -1. */
  adjustHead: number;
  adjustTail: number;
}

const G_HELD = 2;
const G_R0 = 3;
/** The table entry chk() found last (its address; 0: none): tried first, as a loop reads one region over and over. */
const G_HINT = 4;
/**
 * The entry chk() found last, for the check the compiler inlines before
 * calling chk: an access of at most 8 bytes at `a` is inside it when
 * a - G_LO <u G_SPAN (its size less 7, or 0 when smaller than 8), and
 * writable when a - G_LO <u G_WSPAN (0 for a read-only entry). One
 * subtraction and one compare: an address below G_LO wraps far above any
 * span. Whoever changes the table clears both spans (loop() when a run
 * drops the entry; runtime.ts for the entries JS writes); give() only
 * appends, which leaves them true.
 */
const G_LO = 5;
const G_SPAN = 6;
const G_WSPAN = 7;

/** loop(r1, n, len) → runs completed: see RunLoop. */
function loopBody(env: CompileEnv, f0: number): FuncBody {
  const L = env.loop as RunLoop;
  // params 0 r1, 1 n, 2 len; locals 3 i
  const b = new FuncBody([[1, I32]]);
  b.block().loop();
  b.get(3).get(1).op(Op.i32GeU).brIf(1);
  // XDP: every run on the frame the previous one left (the caller set it up once).
  if (L.kind === "ctx") b.i32(L.frame).i32(L.input).get(2).copy();
  dropResults(b, env.table);
  b.i32(env.table)
    .i32(env.table)
    .mem(Op.i32Load, 2, TAB_RUN)
    .i32(1)
    .op(Op.i32Add)
    .mem(Op.i32Store, 2, TAB_RUN);
  b.i32(0).gset(G_DEPTH).i32(0).gset(G_HELD).i64(L.budget).gset(G_BUDGET);
  b.get(0).i64(0).i64(0).i64(0).i64(0).call(f0).gset(G_R0);
  b.get(3).i32(1).op(Op.i32Add).set(3);
  b.gget(G_HELD).brIf(1);
  b.br(0).end().end();
  dropResults(b, env.table);
  b.get(3);
  return b;
}
/**
 * loop(): the entries helpers added during a run are dropped (the count
 * back to the first of them); the inline check forgets its entry if it was
 * one of them (the context, packet and fixed entries stay, and stay true).
 */
function dropResults(b: FuncBody, table: number): void {
  b.i32(table).i32(table).mem(Op.i32Load, 2, TAB_FIRST).mem(Op.i32Store, 2, TAB_COUNT);
  b.gget(G_HINT)
    .i32(table)
    .mem(Op.i32Load, 2, TAB_FIRST)
    .i32(4)
    .op(Op.i32Shl)
    .i32(table + 16)
    .op(Op.i32Add)
    .op(Op.i32GeU)
    .if();
  b.i64(0).gset(G_SPAN).i64(0).gset(G_WSPAN).end();
}

/**
 * adjust(r1, r2, pc) → r0: bpf_xdp_adjust_head (or _tail) as program.ts
 * answers it, in wasm: the new data (or data_end) checked against the
 * frame (-EINVAL), bytes a tail grows into zeroed, xdp_md's data, data_end
 * and data_meta and the packet's table entry moved, the inline check's
 * entry forgotten. r1 that is not the context, or a tail change of a
 * packet with fragments, goes to the generic helper (whose errors are the
 * interpreter's).
 */
function adjustBody(env: CompileEnv, fHelper: number, tail: boolean): FuncBody {
  const L = env.loop as RunLoop;
  // params 0 r1, 1 r2, 2 pc; locals 3 data, 4 end, 5 moved (i64: data or end + delta)
  const b = new FuncBody([
    [2, I32],
    [1, I64],
  ]);
  b.get(0).i64(L.md).op(Op.i64Ne);
  if (tail) {
    b.i32(L.frags).mem(Op.i32Load, 2, 0).op(Op.i32Eqz).op(Op.i32Eqz);
    b.get(1).op(Op.i32WrapI64).op(Op.i32Eqz).op(Op.i32Eqz).op(Op.i32And).op(Op.i32Or);
  }
  b.if();
  b.i32(tail ? Helper.xdpAdjustTail : Helper.xdpAdjustHead)
    .get(2)
    .get(0)
    .get(1)
    .i64(0)
    .i64(0)
    .i64(0)
    .call(fHelper)
    .op(Op.return);
  b.end();
  b.i32(L.md).mem(Op.i32Load, 2, 0).i32(L.frame).op(Op.i32Sub).set(3);
  b.i32(L.md).mem(Op.i32Load, 2, 4).i32(L.frame).op(Op.i32Sub).set(4);
  // The moved edge, in i64 so that no s32 delta wraps.
  b.get(tail ? 4 : 3)
    .op(Op.i64ExtendI32S)
    .get(1)
    .op(Op.i32WrapI64)
    .op(Op.i64ExtendI32S)
    .op(Op.i64Add)
    .set(5);
  if (tail) {
    b.get(1).op(Op.i32WrapI64).op(Op.i32Eqz).if().i64(0).op(Op.return).end();
    // end > FRAME_BYTES or end < data + ETH_HLEN
    b.get(5).i64(FRAME_BYTES).op(Op.i64GtS);
    b.get(5).get(3).op(Op.i64ExtendI32S).i64(ETH_HLEN).op(Op.i64Add).op(Op.i64LtS).op(Op.i32Or);
  } else {
    // data < FRAME_RESERVED or data > end - ETH_HLEN
    b.get(5).i64(FRAME_RESERVED).op(Op.i64LtS);
    b.get(5).get(4).op(Op.i64ExtendI32S).i64(ETH_HLEN).op(Op.i64Sub).op(Op.i64GtS).op(Op.i32Or);
  }
  b.if().i64(-Errno.EINVAL).op(Op.return).end();
  if (tail) {
    // Bytes the tail grows into read as zero.
    b.get(5).op(Op.i32WrapI64).get(4).op(Op.i32GtS).if();
    b.i32(L.frame).get(4).op(Op.i32Add).i32(0).get(5).op(Op.i32WrapI64).get(4).op(Op.i32Sub).fill();
    b.end();
    b.get(5).op(Op.i32WrapI64).set(4);
  } else b.get(5).op(Op.i32WrapI64).set(3);
  b.i32(L.md).i32(L.frame).get(3).op(Op.i32Add).mem(Op.i32Store, 2, 0);
  b.i32(L.md).i32(L.frame).get(4).op(Op.i32Add).mem(Op.i32Store, 2, 4);
  b.i32(L.md).i32(L.frame).get(3).op(Op.i32Add).mem(Op.i32Store, 2, 8);
  const e = env.table + 16 + 16 * L.packetEntry;
  b.i32(e).i32(L.frame).get(3).op(Op.i32Add).mem(Op.i32Store, 2, 0);
  b.i32(e).i32(L.frame).get(4).op(Op.i32Add).mem(Op.i32Store, 2, 4);
  b.i32(e).i32(1).mem(Op.i32Store, 2, 8);
  b.i32(e).i32(0).mem(Op.i32Store, 2, 12);
  b.i64(0).gset(G_SPAN).i64(0).gset(G_WSPAN);
  b.i64(0);
  return b;
}

/** Region table: header words (count, first helper-result entry, run clock), then 16-byte entries. */
const TAB_COUNT = 0;
const TAB_FIRST = 4;
/**
 * The run clock: `loop` adds one before each run (it wraps), so JS knows
 * when a run's references died (core/held-refs.ts `runs`).
 */
export const TAB_RUN = 8;

/**
 * give(lo, size, writable, lock + 1, pc) → lo: map [lo, lo + size) for the
 * rest of the run (runtime.ts addRegion(), in wasm): an entry already there
 * for the same region is kept; a full table faults (E2BIG).
 */
function giveBody(table: number, fFault: number): FuncBody {
  // params 0 lo, 1 size, 2 writable, 3 lock+1, 4 pc; locals 5 i, 6 n, 7 e
  const b = new FuncBody([[3, I32]]);
  b.i32(table).mem(Op.i32Load, 2, TAB_COUNT).set(6);
  b.i32(table).mem(Op.i32Load, 2, TAB_FIRST).set(5);
  b.block().loop();
  b.get(5).get(6).op(Op.i32GeU).brIf(1);
  b.get(5)
    .i32(4)
    .op(Op.i32Shl)
    .i32(table + 16)
    .op(Op.i32Add)
    .tee(7);
  b.mem(Op.i32Load, 2, 0).get(0).op(Op.i32Eq);
  b.get(7).mem(Op.i32Load, 2, 4).get(0).get(1).op(Op.i32Add).op(Op.i32Eq).op(Op.i32And);
  b.get(7).mem(Op.i32Load, 2, 8).get(2).op(Op.i32Eq).op(Op.i32And);
  b.if().get(0).op(Op.return).end();
  b.get(5).i32(1).op(Op.i32Add).set(5);
  b.br(0).end().end();
  b.get(6).i32(TABLE_CAP).op(Op.i32GeU).if();
  b.i32(Fault.regions).get(4).i64(0).get(6).call(fFault).op(Op.unreachable);
  b.end();
  b.get(6)
    .i32(4)
    .op(Op.i32Shl)
    .i32(table + 16)
    .op(Op.i32Add)
    .tee(7)
    .get(0)
    .mem(Op.i32Store, 2, 0);
  b.get(7).get(0).get(1).op(Op.i32Add).mem(Op.i32Store, 2, 4);
  b.get(7).get(2).mem(Op.i32Store, 2, 8);
  b.get(7).get(3).mem(Op.i32Store, 2, 12);
  b.i32(table).get(6).i32(1).op(Op.i32Add).mem(Op.i32Store, 2, TAB_COUNT);
  b.get(0);
  return b;
}

/**
 * lock(p, pc) / unlock(p, pc) → r0: bpf_spin_lock / unlock on the common
 * path in wasm (p the lock word of a value this run was given, a free lock
 * taken at once, the held lock released), else the JS shim (a wait, an error).
 */
function lockBody(table: number, owner: number, shim: number, lock: boolean): FuncBody {
  // params 0 p (i64), 1 pc; locals 2 i, 3 n, 4 e, 5 a
  const b = new FuncBody([[4, I32]]);
  b.block();
  b.get(0).i64(32).op(Op.i64ShrU).op(Op.i64Eqz).op(Op.i32Eqz).brIf(0);
  b.get(0).op(Op.i32WrapI64).set(5);
  if (lock) {
    b.gget(G_HELD).brIf(0);
    // The entry of a helper result whose lock word is at p.
    b.i32(table).mem(Op.i32Load, 2, TAB_COUNT).set(3);
    b.i32(table).mem(Op.i32Load, 2, TAB_FIRST).set(2);
    b.block().loop();
    b.get(2).get(3).op(Op.i32GeU).brIf(2);
    b.get(2)
      .i32(4)
      .op(Op.i32Shl)
      .i32(table + 16)
      .op(Op.i32Add)
      .tee(4)
      .mem(Op.i32Load, 2, 12);
    b.op(Op.i32Eqz).op(Op.i32Eqz).get(4).mem(Op.i32Load, 2, 8).op(Op.i32And);
    b.if();
    b.get(4)
      .mem(Op.i32Load, 2, 0)
      .get(4)
      .mem(Op.i32Load, 2, 12)
      .op(Op.i32Add)
      .i32(1)
      .op(Op.i32Sub)
      .get(5)
      .op(Op.i32Eq)
      .brIf(2);
    b.end();
    b.get(2).i32(1).op(Op.i32Add).set(2);
    b.br(0).end().end();
    // Found: take a free lock at once.
    b.get(5).i32(0).i32(owner).atomic(OpFE.i32RmwCmpxchg, 2).brIf(0);
    b.get(5).gset(G_HELD);
    b.i64(0).op(Op.return);
  } else {
    b.gget(G_HELD).get(5).op(Op.i32Ne).brIf(0);
    b.i32(0).gset(G_HELD);
    b.get(5).i32(0).atomic(OpFE.i32RmwXchg, 2).i32(1).op(Op.i32And).if();
    b.get(5).i32(1).atomic(OpFE.notify, 2).op(Op.drop);
    b.end();
    b.i64(0).op(Op.return);
  }
  b.end();
  // The shim answers the rest; an address of 2^32 or more goes as NULL (it faults all the same).
  b.get(1).get(0).op(Op.i32WrapI64).i32(0).get(0).i64(32).op(Op.i64ShrU).op(Op.i64Eqz).op(Op.select);
  b.i32(0).i32(0).i32(0).call(shim).op(Op.i64ExtendI32S);
  return b;
}

/** A table entry's fourth word for a map value without a bpf_spin_lock (with one: its offset + 1; not a value: 0). */
export const VALUE_NO_LOCK = 0x80000000 | 0;
/** The fourth word of a map value's table entry. */
export function valueTag(lockOff: number): number {
  return lockOff >= 0 ? lockOff + 1 : VALUE_NO_LOCK;
}

/** Entries the region table holds (runtime.ts TABLE_ENTRIES). */
export const TABLE_CAP = 1024;

interface Funcs {
  extra: ExtraFuncs;
  helper: number;
  fault: number;
  chk: number;
  own: Map<number, number>;
  funcs: Map<number, number>;
}

/** Whether a call or a function address (bpf_loop's callbacks) names instruction 0: r1 there is not only the context. */
function entryReentered(prog: DecodedProgram): boolean {
  for (let i = 0; i < prog.insns.length; i++)
    if (
      prog.target[i] === 0 &&
      (prog.kind[i] === Kind.callLocal ||
        (prog.kind[i] === Kind.ldImm64 && prog.insns[i].src === PseudoLd.func))
    )
      return true;
  return false;
}

/**
 * How many bytes below r10 the function at [start, end) can reach: the
 * prologue zeroes only those (the interpreter zeroes the whole frame, and
 * a program reads what it did not write as zero). When r10 is only ever
 * the base of loads and stores at constant offsets inside the frame, the
 * deepest of them; when its value goes anywhere else (a move, an ALU
 * operand, a stored value: a pointer that a helper, a callee or a later
 * access could use), the whole frame.
 */
export function frameReach(prog: DecodedProgram, start: number, end: number): number {
  let reach = 0;
  for (let i = start; i < end; i++) {
    const x = prog.insns[i];
    const k = prog.kind[i];
    if (k === Kind.ldImm64) {
      i++;
      continue;
    }
    let base = -1;
    let size = 0;
    if (k === Kind.ldx) {
      base = x.src;
      size = sizeBytes(x.code);
    } else if (k === Kind.st || k === Kind.stx || k === Kind.atomic) {
      if (k !== Kind.st && x.src === 10) return STACK_BYTES;
      base = x.dst;
      size = sizeBytes(x.code);
    } else if (k === Kind.alu) {
      if (x.dst === 10 || ((x.code & Source.X) !== 0 && x.src === 10)) return STACK_BYTES;
      continue;
    } else continue;
    if (base !== 10) continue;
    if (x.off >= 0 || x.off + size > 0 || x.off < -STACK_BYTES) return STACK_BYTES;
    reach = Math.max(reach, (-x.off + 7) & ~7);
  }
  return Math.min(reach, STACK_BYTES);
}

class FunctionCompiler {
  private readonly b = new FuncBody(LOCALS);
  private readonly insns: readonly Insn[];
  /** Block index of each leader instruction. */
  private readonly blockOf = new Map<number, number>();
  private readonly leaders: number[];
  /** Block being compiled, and how many structured constructs are open inside its code. */
  private cur = 0;
  private extra = 0;
  private readonly kk = new Uint8Array(STATE);
  private readonly kv = new Float64Array(STATE);
  /** The state before a conditional jump's edges are refined (walk()). */
  private readonly savedK = new Uint8Array(STATE);
  private readonly savedV = new Float64Array(STATE);
  private readonly hasBack: boolean;
  /** Known registers at each block's entry (dataflow()). */
  private inK: Uint8Array[] = [];
  private inV: Float64Array[] = [];

  constructor(
    private readonly prog: DecodedProgram,
    private readonly env: CompileEnv,
    private readonly start: number,
    private readonly end: number,
    private readonly f: Funcs,
  ) {
    this.insns = prog.insns;
    const { kind, target } = prog;
    const lead = new Set<number>([start]);
    let back = false;
    for (let i = start; i < end; i++) {
      const k = kind[i];
      if (k === Kind.ja || k === Kind.jcond) {
        const t = target[i];
        if (t < start || t >= end)
          throw new BpfError(
            "load",
            Errno.EINVAL,
            `insn ${i}: jump to insn ${t}, outside its function [${start}, ${end})`,
          );
        lead.add(t);
        if (t <= i) back = true;
        if (i + 1 < end) lead.add(i + 1);
      } else if (k === Kind.exit && i + 1 < end) lead.add(i + 1);
    }
    this.leaders = [...lead].sort((a, b) => a - b);
    this.leaders.forEach((l, j) => {
      this.blockOf.set(l, j);
    });
    this.hasBack = back;
  }

  compile(): FuncBody {
    this.dataflow();
    const b = this.b;
    const top = this.env.stackTop;
    // Prologue: this frame (depth from the caller), its reachable bytes zeroed; r10 at its top.
    b.i32(top - STACK_BYTES)
      .gget(G_DEPTH)
      .i32(10)
      .op(Op.i32Shl)
      .op(Op.i32Sub)
      .set(FB);
    const reach = frameReach(this.prog, this.start, this.end);
    if (reach > 64)
      b.get(FB)
        .i32(STACK_BYTES - reach)
        .op(Op.i32Add)
        .i32(0)
        .i32(reach)
        .fill();
    else for (let o = STACK_BYTES - reach; o < STACK_BYTES; o += 8) b.get(FB).i64(0).mem(Op.i64Store, 3, o);
    b.get(FB).op(Op.i64ExtendI32U).i64(STACK_BYTES).op(Op.i64Add).set(10);
    const m = this.leaders.length;
    // With loops: an outer block that a spent budget leaves (the fault is out of the loop's code).
    if (this.hasBack) b.gget(G_BUDGET).set(BUD).block().loop();
    for (let j = m - 1; j >= 0; j--) b.block();
    if (this.hasBack) {
      b.get(PC).brTable(
        Array.from({ length: m }, (_, j) => j),
        0,
      );
    }
    for (let j = 0; j < m; j++) {
      b.end();
      this.cur = j;
      this.extra = 0;
      this.block(this.leaders[j], j + 1 < m ? this.leaders[j + 1] : this.end);
    }
    if (this.hasBack) b.end();
    const last = this.end - 1;
    this.fault(this.end === this.insns.length ? Fault.pastEnd : Fault.intoNext, last);
    b.op(Op.unreachable);
    if (this.hasBack) {
      // The budget ran out at the backward jump at A.
      b.end();
      b.i32(Fault.budget).get(A).i64(0).i32(0).call(this.f.fault).op(Op.unreachable);
    }
    return b;
  }

  /** The budget local back to the global (before a call, which may charge it, and at exit). */
  private budgetOut(): void {
    if (this.hasBack) this.b.get(BUD).gset(G_BUDGET);
  }
  /** What a call left of the budget. */
  private budgetIn(): void {
    if (this.hasBack) this.b.gget(G_BUDGET).set(BUD);
  }

  /** Depth of the br that reaches block j's code from the current block (j > cur). */
  private fwd(j: number): number {
    return j - this.cur - 1 + this.extra;
  }
  private loopDepth(): number {
    return this.leaders.length - 1 - this.cur + this.extra;
  }

  private fault(kind: number, pc: number, addr?: () => void, size = 0): void {
    const b = this.b;
    b.i32(kind).i32(pc);
    if (addr) addr();
    else b.i64(0);
    b.i32(size).call(this.f.fault);
  }

  private block(from: number, to: number): void {
    const j = this.blockOf.get(from) as number;
    this.kk.set(this.inK[j]);
    this.kv.set(this.inV[j]);
    const { kind } = this.prog;
    for (let i = from; i < to; i++) {
      const x = this.insns[i];
      this.emit(i, x, kind[i]);
      this.transfer(i, x);
      if (kind[i] === Kind.ldImm64) i++;
    }
  }

  private emit(i: number, x: Insn, k: number): void {
    switch (k) {
      case Kind.alu:
        this.alu(x);
        break;
      case Kind.ldImm64:
        this.ldImm64(i, x);
        break;
      case Kind.ldx:
        this.ldx(i, x);
        break;
      case Kind.st:
      case Kind.stx:
        this.store(i, x, k === Kind.st);
        break;
      case Kind.atomic:
        this.atomic(i, x);
        break;
      case Kind.ja:
        this.jump(i, this.prog.target[i], null);
        break;
      case Kind.jcond:
        this.jump(i, this.prog.target[i], x);
        break;
      case Kind.callHelper:
        this.budgetOut();
        this.callHelper(i, x);
        this.budgetIn();
        break;
      case Kind.callLocal:
        this.budgetOut();
        this.callLocal(i);
        this.budgetIn();
        break;
      case Kind.exit:
        this.budgetOut();
        this.b.get(R0).op(Op.return);
        break;
      default:
        this.fault(Fault.pastEnd, i);
        this.b.op(Op.unreachable);
    }
  }

  private forget(r: number): void {
    this.kk[r] = UNKNOWN;
  }

  /**
   * The light pass's transfer: what instruction `i` does to the known
   * registers (r10 + c, a fixed region's address + c, a map handle). Helpers
   * and calls change r0 only (the callee's registers are its own locals).
   */
  private transfer(i: number, x: Insn): void {
    switch (this.prog.kind[i]) {
      case Kind.alu: {
        const o = x.code & 0xf0;
        if ((x.code & 0x07) === Class.ALU64 && o !== AluOp.end) this.track64(x, o, (x.code & Source.X) !== 0);
        else this.forget(x.dst);
        break;
      }
      case Kind.ldImm64: {
        const v = x.src === 0 ? 0n : this.env.pseudo(i, x);
        if ((x.src === 1 || x.src === 5) && this.env.mapShims !== undefined) {
          this.kk[x.dst] = MAP;
          this.kv[x.dst] = x.imm;
        } else if (x.src !== 0 && v < 0x1_0000_0000n && this.env.fixed.some((r) => v >= r.lo && v <= r.hi)) {
          // (entryContext is not here: an LD_IMM64 never names the context)
          this.kk[x.dst] = ABS;
          this.kv[x.dst] = Number(v);
        } else this.forget(x.dst);
        break;
      }
      case Kind.ldx:
        this.loaded(x);
        break;
      case Kind.atomic:
        if (x.imm === AtomicOp.cmpxchg) this.forget(0);
        else if (x.imm === AtomicOp.xchg || (x.imm & AtomicOp.fetch) !== 0) this.forget(x.src);
        break;
      case Kind.callHelper: {
        const m = this.fastLookup(x);
        this.forgetPacket();
        this.forget(0);
        if (m >= 0) {
          this.kk[0] = VALUE_OR_NULL;
          this.kv[0] = m;
        }
        break;
      }
      case Kind.callLocal:
        this.forgetPacket();
        this.forget(0);
        break;
    }
  }

  /** A load: data or data_end from the XDP context (32-bit loads at +0, +4) are packet pointers. */
  private loaded(x: Insn): void {
    const ctx = this.env.entryContext;
    const at = this.kk[x.src] === ABS ? this.kv[x.src] + x.off : -1;
    const w = (x.code & 0x18) === 0; // BPF_W
    if (ctx !== undefined && w && (at === ctx.lo || at === ctx.lo + 4)) {
      this.kk[x.dst] = at === ctx.lo ? PKT : PKT_END;
      this.kv[x.dst] = 0;
    } else this.forget(x.dst);
  }

  /** The fast map whose lookup (helper 1 on a known map handle, in wasm: callHelper()) call `x` makes, or -1. */
  private fastLookup(x: Insn): number {
    if (x.imm !== 1 || this.kk[1] !== MAP || this.f.extra.lookup < 0 || !this.f.own.has(1)) return -1;
    return this.env.fastMaps?.has(this.kv[1]) ? this.kv[1] : -1;
  }

  /**
   * Whether conditional jump `x` proves something on one of its edges: `if
   * r == 0` / `if r != 0` on a lookup's result (64-bit, against the
   * immediate 0), or a comparison of a packet pointer data + c (c > 0) with
   * data_end (64-bit, registers).
   */
  private refinable(x: Insn): boolean {
    if ((x.code & 0x07) !== Class.JMP) return false;
    if ((x.code & Source.X) === 0) {
      const o = x.code & 0xf0;
      return x.imm === 0 && (o === JmpOp.jeq || o === JmpOp.jne) && this.kk[x.dst] === VALUE_OR_NULL;
    }
    return this.packetTest(x) !== 0;
  }

  /**
   * The packet bytes comparison `x` proves, as +c on its fall-through edge
   * or -c on its taken edge; 0 when it is no such comparison.
   */
  private packetTest(x: Insn): number {
    const o = x.code & 0xf0;
    const kd = this.kk[x.dst];
    const ks = this.kk[x.src];
    const lt = o === JmpOp.jlt || o === JmpOp.jle;
    const gt = o === JmpOp.jgt || o === JmpOp.jge;
    if (!lt && !gt) return 0;
    // data + c > data_end (or >=): c bytes are inside where the jump is not taken; < or <=: where it is.
    if (kd === PKT && ks === PKT_END && this.kv[x.src] === 0 && this.kv[x.dst] > 0)
      return gt ? this.kv[x.dst] : -this.kv[x.dst];
    // data_end < data + c (or <=): inside where not taken; > or >=: where taken.
    if (kd === PKT_END && ks === PKT && this.kv[x.dst] === 0 && this.kv[x.src] > 0)
      return lt ? this.kv[x.src] : -this.kv[x.src];
    return 0;
  }

  /** What refinable jump `x` proves on its taken edge (`taken`) or its fall-through one, into the state. */
  private refine(x: Insn, taken: boolean): void {
    if ((x.code & Source.X) === 0) {
      const nonNull = ((x.code & 0xf0) === JmpOp.jne) === taken;
      this.kk[x.dst] = nonNull ? VALUE : UNKNOWN;
      return;
    }
    const c = this.packetTest(x);
    if (c > 0 === taken) return;
    const n = Math.abs(c);
    const had = this.kk[RANGE] === PROVEN ? this.kv[RANGE] : 0;
    this.kk[RANGE] = PROVEN;
    this.kv[RANGE] = Math.max(had, n);
  }

  /** A call may move the packet (bpf_xdp_adjust_head and its kin): packet pointers and the proven range go. */
  private forgetPacket(): void {
    for (let r = 0; r <= 10; r++) if (this.kk[r] === PKT || this.kk[r] === PKT_END) this.kk[r] = UNKNOWN;
    this.kk[RANGE] = UNKNOWN;
  }

  /**
   * The known registers at each block's entry: a forward pass to a fixed
   * point, a register known only where every path into the block agrees
   * (r10 at the function's entry; nothing else).
   */
  private dataflow(): void {
    const m = this.leaders.length;
    const seen = new Uint8Array(m);
    this.inK = Array.from({ length: m }, () => new Uint8Array(STATE));
    this.inV = Array.from({ length: m }, () => new Float64Array(STATE));
    this.inK[0][10] = STACK;
    const ctx = this.env.entryContext;
    if (this.start === 0 && ctx !== undefined && !entryReentered(this.prog)) {
      this.inK[0][1] = ABS;
      this.inV[0][1] = ctx.lo;
    }
    seen[0] = 1;
    const merge = (j: number): boolean => {
      if (j >= m) return false;
      if (!seen[j]) {
        seen[j] = 1;
        this.inK[j].set(this.kk);
        this.inV[j].set(this.kv);
        return true;
      }
      let changed = false;
      for (let r = 0; r < STATE; r++)
        if (this.inK[j][r] !== UNKNOWN && (this.inK[j][r] !== this.kk[r] || this.inV[j][r] !== this.kv[r])) {
          this.inK[j][r] = UNKNOWN;
          changed = true;
        }
      return changed;
    };
    for (let changed = true, rounds = 0; changed && rounds < 2 * m + 2; rounds++) {
      changed = false;
      for (let j = 0; j < m; j++) if (seen[j]) changed = this.walk(j, merge) || changed;
    }
    // Blocks no path reaches keep nothing known.
    for (let j = 0; j < m; j++) if (!seen[j]) this.inK[j].fill(UNKNOWN);
  }

  /** dataflow(): block j from its entry state, merging into its successors; whether any entry state changed. */
  private walk(j: number, merge: (j: number) => boolean): boolean {
    const { kind, target } = this.prog;
    this.kk.set(this.inK[j]);
    this.kv.set(this.inV[j]);
    const to = j + 1 < this.leaders.length ? this.leaders[j + 1] : this.end;
    let changed = false;
    let falls = true;
    for (let i = this.leaders[j]; i < to; i++) {
      const k = kind[i];
      this.transfer(i, this.insns[i]);
      if (k === Kind.jcond && this.refinable(this.insns[i])) {
        // Each edge with what the test proved (the next instruction starts the fall-through block).
        this.savedK.set(this.kk);
        this.savedV.set(this.kv);
        this.refine(this.insns[i], true);
        changed = merge(this.blockOf.get(target[i]) as number) || changed;
        this.kk.set(this.savedK);
        this.kv.set(this.savedV);
        this.refine(this.insns[i], false);
      } else if (k === Kind.ja || k === Kind.jcond)
        changed = merge(this.blockOf.get(target[i]) as number) || changed;
      if (k === Kind.ja || k === Kind.exit) falls = false;
      if (k === Kind.ldImm64) i++;
    }
    return falls ? merge(j + 1) || changed : changed;
  }

  // ---- ALU

  private alu(x: Insn): void {
    const b = this.b;
    const o = x.code & 0xf0;
    const isX = (x.code & Source.X) !== 0;
    const d = local(x.dst);
    const s = local(x.src);
    if ((x.code & 0x07) === Class.ALU64) {
      if (o === AluOp.end) {
        b.get(d);
        if (x.imm === 16) this.bswap16();
        else if (x.imm === 32) this.bswap32of64();
        else this.bswap64();
        b.set(d);
        return;
      }
      const src = () => (isX ? b.get(s) : b.i64(x.imm));
      const simple = SIMPLE64[o];
      if (simple !== undefined) {
        b.get(d);
        src();
        b.op(simple).set(d);
        return;
      }
      switch (o) {
        case AluOp.neg:
          b.i64(0).get(d).op(Op.i64Sub).set(d);
          return;
        case AluOp.mov:
          if (!isX) b.i64(x.imm);
          else {
            b.get(s);
            if (x.off === 8) b.op(Op.i64Extend8S);
            else if (x.off === 16) b.op(Op.i64Extend16S);
            else if (x.off === 32) b.op(Op.i64Extend32S);
          }
          b.set(d);
          return;
        case AluOp.div:
        case AluOp.mod:
          this.divmod(x, o === AluOp.div, false, d, s, isX);
          return;
      }
      throw new Error(`compile: ALU64 op 0x${o.toString(16)}`);
    }
    if (o === AluOp.end) {
      b.get(d);
      if (!isX) {
        if (x.imm === 16) b.i64(0xffff).op(Op.i64And);
        else if (x.imm === 32) b.i64(0xffffffffn).op(Op.i64And);
      } else if (x.imm === 16) this.bswap16();
      else if (x.imm === 32) this.bswap32of64();
      else this.bswap64();
      b.set(d);
      return;
    }
    const src32 = () => (isX ? b.get(s).op(Op.i32WrapI64) : b.i32(x.imm));
    const simple = SIMPLE32[o];
    if (simple !== undefined) {
      b.get(d).op(Op.i32WrapI64);
      src32();
      b.op(simple).op(Op.i64ExtendI32U).set(d);
      return;
    }
    switch (o) {
      case AluOp.neg:
        b.i32(0).get(d).op(Op.i32WrapI64).op(Op.i32Sub).op(Op.i64ExtendI32U).set(d);
        return;
      case AluOp.mov:
        src32();
        if (isX && x.off === 8) b.op(Op.i32Extend8S);
        else if (isX && x.off === 16) b.op(Op.i32Extend16S);
        b.op(Op.i64ExtendI32U).set(d);
        return;
      case AluOp.div:
      case AluOp.mod:
        this.divmod(x, o === AluOp.div, true, d, s, isX);
        return;
    }
    throw new Error(`compile: ALU op 0x${o.toString(16)}`);
  }

  /** The light pass: what a 64-bit ALU op does to a register's known address. */
  private track64(x: Insn, o: number, isX: boolean): void {
    const d = x.dst;
    if (o === AluOp.mov && isX && x.off === 0) {
      this.kk[d] = this.kk[x.src];
      this.kv[d] = this.kv[x.src];
    } else if ((o === AluOp.add || o === AluOp.sub) && !isX && OFFSET_KINDS.has(this.kk[d])) {
      this.kv[d] += o === AluOp.add ? x.imm : -x.imm;
    } else this.forget(d);
  }

  /** Division or modulo with the kernel's answers for 0 and -1 divisors. */
  private divmod(x: Insn, div: boolean, w32: boolean, d: number, s: number, isX: boolean): void {
    const b = this.b;
    const signed = x.off === 1;
    const T = w32 ? I32 : I64;
    const dv = () => (w32 ? b.get(d).op(Op.i32WrapI64) : b.get(d));
    const sv = () =>
      isX ? (w32 ? b.get(s).op(Op.i32WrapI64) : b.get(s)) : w32 ? b.i32(x.imm) : b.i64(x.imm);
    const zero = () => (w32 ? b.i32(0) : b.i64(0));
    const op = div
      ? signed
        ? w32
          ? Op.i32DivS
          : Op.i64DivS
        : w32
          ? Op.i32DivU
          : Op.i64DivU
      : signed
        ? w32
          ? Op.i32RemS
          : Op.i64RemS
        : w32
          ? Op.i32RemU
          : Op.i64RemU;
    const done = () => {
      if (w32) b.op(Op.i64ExtendI32U);
      b.set(d);
    };
    // A constant divisor: decided here.
    if (!isX && x.imm === 0) {
      if (div) zero();
      else dv();
      done();
      return;
    }
    if (!isX && signed && x.imm === -1) {
      if (div) {
        zero();
        dv();
        b.op(w32 ? Op.i32Sub : Op.i64Sub);
      } else zero();
      done();
      return;
    }
    if (!isX) {
      dv();
      sv();
      b.op(op);
      done();
      return;
    }
    // A register divisor: zero, then (signed) -1, then the wasm operation.
    sv();
    b.op(w32 ? Op.i32Eqz : Op.i64Eqz).if(T);
    this.extra++;
    if (div) zero();
    else dv();
    b.else();
    if (signed) {
      sv();
      if (w32) b.i32(-1).op(Op.i32Eq);
      else b.i64(-1).op(Op.i64Eq);
      b.if(T);
      this.extra++;
      if (div) {
        zero();
        dv();
        b.op(w32 ? Op.i32Sub : Op.i64Sub);
      } else zero();
      b.else();
      dv();
      sv();
      b.op(op);
      b.end();
      this.extra--;
    } else {
      dv();
      sv();
      b.op(op);
    }
    b.end();
    this.extra--;
    done();
  }

  /** i64 on the stack → its low 16 bits byte-swapped, zero-extended. */
  private bswap16(): void {
    const b = this.b;
    b.op(Op.i32WrapI64).tee(A).i32(0xff).op(Op.i32And).i32(8).op(Op.i32Shl);
    b.get(A).i32(8).op(Op.i32ShrU).i32(0xff).op(Op.i32And).op(Op.i32Or).op(Op.i64ExtendI32U);
  }
  /** i32 on the stack → byte-swapped. */
  private bswap32(): void {
    const b = this.b;
    b.tee(A)
      .i32(8)
      .op(Op.i32Rotr)
      .i32(0xff00ff00 | 0)
      .op(Op.i32And);
    b.get(A).i32(8).op(Op.i32Rotl).i32(0x00ff00ff).op(Op.i32And).op(Op.i32Or);
  }
  private bswap32of64(): void {
    this.b.op(Op.i32WrapI64);
    this.bswap32();
    this.b.op(Op.i64ExtendI32U);
  }
  private bswap64(): void {
    const b = this.b;
    b.tee(T0).op(Op.i32WrapI64);
    this.bswap32();
    b.op(Op.i64ExtendI32U).i64(32).op(Op.i64Shl);
    b.get(T0).i64(32).op(Op.i64ShrU).op(Op.i32WrapI64);
    this.bswap32();
    b.op(Op.i64ExtendI32U).op(Op.i64Or);
  }

  // ---- memory

  private ldImm64(i: number, x: Insn): void {
    const b = this.b;
    let v: bigint;
    if (x.src === 0) v = (BigInt(this.insns[i + 1].imm >>> 0) << 32n) | BigInt(x.imm >>> 0);
    else v = this.env.pseudo(i, x);
    b.i64(v).set(local(x.dst));
  }

  /**
   * Push the i32 address of [base + off, + size) and return the memarg
   * offset to add: unchecked where the light pass proves the access inside
   * this frame or a fixed region, else through chk. Atomics also check alignment.
   */
  private address(
    pc: number,
    base: number,
    off: number,
    size: number,
    write: boolean,
    atomic: boolean,
  ): number {
    const b = this.b;
    const k = this.kk[base];
    if (k === STACK) {
      const o = this.kv[base] + off;
      if (o >= -STACK_BYTES && o + size <= 0 && (!atomic || o % size === 0)) {
        b.get(FB);
        return STACK_BYTES + o;
      }
    } else if (k === PKT && !atomic) {
      // Inside what a comparison with data_end proved on every path here.
      const o = this.kv[base] + off;
      const proven = this.kk[RANGE] === PROVEN ? this.kv[RANGE] : 0;
      if (o >= 0 && o + size <= proven) {
        b.get(local(base)).op(Op.i32WrapI64);
        if (off >= 0) return off;
        b.i32(off).op(Op.i32Add);
        return 0;
      }
    } else if (k === VALUE) {
      // A whole value a lookup in this run gave (not 0): it stays put, mapped, for the run.
      const fm = this.env.fastMaps?.get(this.kv[base]) as FastMap;
      if (off >= 0 && off + size <= fm.valueSize && fm.lock < 0 && (fm.writable || !write)) {
        b.get(local(base)).op(Op.i32WrapI64);
        if (!atomic) return off;
        b.i32(off).op(Op.i32Add);
        this.aligned(pc, size);
        return 0;
      }
    } else if (k === ABS) {
      const a = this.kv[base] + off;
      const ctx = this.env.entryContext;
      const inside = (x: FixedRegion) => a >= x.lo && a + size <= x.hi;
      const r = this.env.fixed.find(inside) ?? (ctx !== undefined && inside(ctx) ? ctx : undefined);
      if (r !== undefined && (r.writable || !write) && (!atomic || a % size === 0)) {
        b.i32(0);
        return a;
      }
    }
    // The entry chk() found last, inline; else chk().
    b.get(local(base))
      .i64(off)
      .op(Op.i64Add)
      .tee(AT)
      .gget(G_LO)
      .op(Op.i64Sub)
      .gget(write ? G_WSPAN : G_SPAN)
      .op(Op.i64LtU);
    b.if(I32).get(AT).op(Op.i32WrapI64).else();
    b.get(AT)
      .i32(size)
      .i32(write ? 1 : 0)
      .i32(pc)
      .call(this.f.chk)
      .end();
    if (atomic) this.aligned(pc, size);
    return 0;
  }

  /** The i32 address on the stack is `size`-aligned, else a fault (wasm's atomics would trap). */
  private aligned(pc: number, size: number): void {
    const b = this.b;
    b.tee(A)
      .i32(size - 1)
      .op(Op.i32And)
      .if();
    this.fault(Fault.misaligned, pc, () => b.get(A).op(Op.i64ExtendI32U), size);
    b.op(Op.unreachable).end();
    b.get(A);
  }

  private ldx(pc: number, x: Insn): void {
    const size = sizeBytes(x.code);
    const off = this.address(pc, x.src, x.off, size, false, false);
    const op = (x.code & 0xe0) === Mode.MEMSX ? LOAD_SX[size] : LOAD[size];
    this.b.mem(op, 0, off).set(local(x.dst));
  }

  private store(pc: number, x: Insn, imm: boolean): void {
    const size = sizeBytes(x.code);
    const off = this.address(pc, x.dst, x.off, size, true, false);
    if (imm) this.b.i64(x.imm);
    else this.b.get(local(x.src));
    this.b.mem(STORE[size], 0, off);
  }

  private atomic(pc: number, x: Insn): void {
    const b = this.b;
    const size = sizeBytes(x.code);
    const w32 = size === 4;
    const off = this.address(pc, x.dst, x.off, size, true, true);
    const align = LOG2[size];
    const src = local(x.src);
    const val = (r: number) => (w32 ? b.get(r).op(Op.i32WrapI64) : b.get(r));
    const widen = () => {
      if (w32) b.op(Op.i64ExtendI32U);
    };
    if (x.imm === AtomicOp.cmpxchg) {
      val(R0);
      val(src);
      b.atomic(w32 ? OpFE.i32RmwCmpxchg : OpFE.i64RmwCmpxchg, align, off);
      widen();
      b.set(R0);
      return;
    }
    const base = x.imm === AtomicOp.xchg ? x.imm : x.imm & ~AtomicOp.fetch;
    val(src);
    b.atomic((w32 ? RMW32 : RMW64)[base], align, off);
    if (x.imm === AtomicOp.xchg || (x.imm & AtomicOp.fetch) !== 0) {
      widen();
      b.set(src);
    } else b.op(Op.drop);
  }

  // ---- jumps and calls

  private condition(x: Insn): void {
    const b = this.b;
    const o = x.code & 0xf0;
    const isX = (x.code & Source.X) !== 0;
    const d = local(x.dst);
    if ((x.code & 0x07) === Class.JMP) {
      b.get(d);
      if (isX) b.get(local(x.src));
      else b.i64(x.imm);
      if (o === JmpOp.jset) b.op(Op.i64And).op(Op.i64Eqz).op(Op.i32Eqz);
      else b.op(JMP64[o]);
    } else {
      b.get(d).op(Op.i32WrapI64);
      if (isX) b.get(local(x.src)).op(Op.i32WrapI64);
      else b.i32(x.imm);
      b.op(o === JmpOp.jset ? Op.i32And : JMP32[o]);
    }
  }

  /** A jump to `t` (always when `cond` is null). */
  private jump(pc: number, t: number, cond: Insn | null): void {
    const b = this.b;
    const j = this.blockOf.get(t) as number;
    if (j > this.cur) {
      if (cond === null) b.br(this.fwd(j));
      else {
        this.condition(cond);
        b.brIf(this.fwd(j));
      }
      return;
    }
    if (cond !== null) {
      this.condition(cond);
      b.if();
      this.extra++;
    }
    // Backward: charge the budget, then dispatch.
    b.get(BUD)
      .i64(pc - t + 1)
      .op(Op.i64Sub)
      .tee(BUD)
      .i64(0)
      .op(Op.i64LtS)
      .if();
    b.i32(pc)
      .set(A)
      .br(this.loopDepth() + 2);
    b.end();
    b.i32(j).set(PC).br(this.loopDepth());
    if (cond !== null) {
      b.end();
      this.extra--;
    }
  }

  private callHelper(pc: number, x: Insn): void {
    const b = this.b;
    const id = x.imm >>> 0;
    const shim = this.f.own.get(id);
    const generic = () => {
      b.i32(id).i32(pc);
      for (let r = 1; r <= 5; r++) b.get(local(r));
      b.call(this.f.helper);
    };
    if (id === 8 && this.env.cpu !== undefined) {
      b.i64(this.env.cpu).set(R0);
      return;
    }
    const adjust =
      id === Helper.xdpAdjustHead
        ? this.f.extra.adjustHead
        : id === Helper.xdpAdjustTail
          ? this.f.extra.adjustTail
          : -1;
    if (adjust >= 0) {
      b.get(local(1)).get(local(2)).i32(pc).call(adjust).set(R0);
      return;
    }
    if (shim === undefined) {
      generic();
      b.set(R0);
      return;
    }
    if (id === 93 || id === 94) {
      b.get(local(1))
        .i32(pc)
        .call(id === 93 ? this.f.extra.lock : this.f.extra.unlock)
        .set(R0);
      return;
    }
    const fm = this.kk[1] === MAP ? this.env.fastMaps?.get(this.kv[1]) : undefined;
    // An LRU update pops (and may evict for) its element before it checks the flags: no shortcut.
    if (fm !== undefined && this.f.extra.lookup >= 0 && (id === 1 || (id === 2 && fm.writable && !fm.lru))) {
      this.fastCall(pc, id, fm, shim, generic);
      return;
    }
    this.shimCall(pc, id, shim, generic);
  }

  /** The shim call, when r1 is a map handle and the pointers fit in 32 bits; else the generic helper. */
  private shimCall(pc: number, id: number, shim: number, generic: () => void): void {
    const b = this.b;
    const below32 = (r: number) => b.get(local(r)).i64(32).op(Op.i64ShrU).op(Op.i64Eqz);
    const isLock = id === 93 || id === 94;
    if (isLock) below32(1);
    else {
      // r1 is one of the object's map handles (slot 256 + index, offset 0); the pointers fit in 32 bits.
      b.get(local(1)).i64(0xffffffffn).op(Op.i64And).op(Op.i64Eqz);
      b.get(local(1))
        .i64(32)
        .op(Op.i64ShrU)
        .i64(256)
        .op(Op.i64Sub)
        .i64((this.env.mapShims as { maps: number }).maps)
        .op(Op.i64LtU)
        .op(Op.i32And);
      below32(2).op(Op.i32And);
      // An update's flags too: one of 2^32 or more goes to the generic helper (EINVAL, not its low bits).
      if (id === 2) {
        below32(3).op(Op.i32And);
        below32(4).op(Op.i32And);
      }
    }
    b.if(I64);
    b.i32(pc);
    if (isLock) b.get(local(1)).op(Op.i32WrapI64);
    else b.get(local(1)).i64(32).op(Op.i64ShrU).op(Op.i32WrapI64).i32(256).op(Op.i32Sub);
    for (let r = 2; r <= 4; r++) b.get(local(r)).op(Op.i32WrapI64);
    b.call(shim).op(id === 1 ? Op.i64ExtendI32U : Op.i64ExtendI32S);
    b.else();
    generic();
    b.end().set(R0);
  }

  /** Push the i32 address of [reg, reg + size), checked as a load or store there would be. */
  private pointer(pc: number, reg: number, size: number): void {
    const o = this.address(pc, reg, 0, size, false, false);
    if (o !== 0) this.b.i32(o).op(Op.i32Add);
  }

  /**
   * Lookup (1) on a fast map in wasm: the key (checked) into the slot's
   * scratch key, fast-path.wat's lookup, the value given to the run; a
   * bucket being written goes to the JS shim. Update (2) with BPF_NOEXIST
   * of a key that is there answers -EEXIST here (after the key and value
   * checks the helper makes); every other update goes to the shim.
   */
  private fastCall(pc: number, id: number, fm: FastMap, shim: number, generic: () => void): void {
    const b = this.b;
    const shimCall = () => {
      b.i32(pc).i32(this.kv[1]);
      for (let r = 2; r <= 4; r++) b.get(local(r)).op(Op.i32WrapI64);
      b.call(shim).op(id === 1 ? Op.i64ExtendI32U : Op.i64ExtendI32S);
    };
    const findKey = () => {
      this.pointer(pc, 2, fm.keyWords * 4);
      b.set(A);
      for (let j = 0; j < fm.keyWords; j++)
        b.i32(fm.key)
          .get(A)
          .mem(Op.i32Load, 0, 4 * j)
          .mem(Op.i32Store, 2, 4 * j);
      b.i32(fm.desc).i32(0).i32(2).call(this.f.extra.lookup).tee(A);
    };
    if (id === 1) {
      findKey();
      b.i32(-1).op(Op.i32Eq).if(I64);
      shimCall();
      b.else().get(A).op(Op.i32Eqz).if(I64).i64(0).else();
      if (fm.lru !== undefined) this.touchRef(fm.lru);
      b.get(A)
        .i32(2)
        .op(Op.i32Shl)
        .i32(fm.base + fm.valueOff)
        .op(Op.i32Add);
      b.i32(fm.valueSize)
        .i32(fm.writable ? 1 : 0)
        .i32(valueTag(fm.lock))
        .i32(pc)
        .call(this.f.extra.give);
      b.op(Op.i64ExtendI32U).end().end().set(R0);
      return;
    }
    // Update: BPF_NOEXIST (1) of a present key.
    b.get(local(4)).i64(1).op(Op.i64Eq).if(I32);
    this.pointer(pc, 3, fm.valueSize);
    b.op(Op.drop);
    findKey();
    b.i32(0).op(Op.i32GtS).if(I32).i64(-Errno.EEXIST).set(R0).i32(1).else().i32(0).end();
    b.else().i32(0).end();
    b.op(Op.i32Eqz).if();
    this.shimCall(pc, id, shim, generic);
    b.end();
  }

  /** LRU: set the REF word of element A's node when it is clear (FastMap.lru). PC is scratch here: it only carries a backward jump's target to the dispatch. */
  private touchRef(l: NonNullable<FastMap["lru"]>): void {
    const b = this.b;
    b.get(A)
      .i32(l.elems)
      .op(Op.i32Sub)
      .i32(l.elemStride)
      .op(Op.i32DivU)
      .tee(PC)
      .i32(l.nodes)
      .op(Op.i32LtU)
      .if();
    b.get(PC).i32(4).op(Op.i32Shl).i32(l.ref).op(Op.i32Add).tee(PC).mem(Op.i32Load, 2, 0).op(Op.i32Eqz).if();
    b.get(PC).i32(1).mem(Op.i32Store, 2, 0);
    b.end().end();
  }

  private callLocal(pc: number): void {
    const b = this.b;
    const callee = this.f.funcs.get(this.prog.target[pc]) as number;
    b.gget(G_DEPTH).i32(1).op(Op.i32Add).tee(A).i32(MAX_CALL_FRAMES).op(Op.i32GeU).if();
    this.fault(Fault.depth, pc, undefined, 0);
    b.op(Op.unreachable).end();
    b.get(A).gset(G_DEPTH);
    for (let r = 1; r <= 5; r++) b.get(local(r));
    b.call(callee).set(R0);
    b.gget(G_DEPTH).i32(1).op(Op.i32Sub).gset(G_DEPTH);
  }
}
