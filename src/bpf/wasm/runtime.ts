/**
 * A compiled program on one CPU slot: its wasm instance over the shared
 * memory, its run area (stack frames and region table), its helpers, and
 * runs. The machine the compiled code runs on, as the interpreter's Vm is
 * for interpreted code; helpers see both through HelperVm.
 *
 * The run area of a CPU slot (`areaBytes()`, 1024-aligned):
 *
 * | offset | what                                                          |
 * |--------|---------------------------------------------------------------|
 * | 0      | 8 stack frames of 512 bytes, 1024 apart: frame k ends at 8192 - 1024k (r10), an unmapped gap above each |
 * | 8192   | region table: u32 count, u32 first helper-result entry, 8 bytes unused, then 16-byte entries (u32 lo, u32 hi, u32 writable, u32 spin lock offset + 1 or 0) |
 *
 * The table holds, in order: the regions fixed for the program's life (its
 * globals, the conformance input), the run's own (context, packet) and what
 * helpers returned during the run (map values: `addRegion`), dropped when
 * the run ends. An access outside the live frames and the table faults.
 *
 * Pointers a program holds that are not memory keep the interpreter's
 * values, above 2^32 so they never address the memory: map handles
 * (slot 256 + index) and function addresses (slot 128, offset = pc).
 */

import { BpfError, Errno } from "../../errors.js";
import type { WasmMemory } from "../../wasm/fast-path.js";
import { disasm } from "../disasm.js";
import type { BaseHelperFn, HelperVm } from "../helpers.js";
import { BpfRunError, DEFAULT_BUDGET } from "../interp.js";
import { type DecodedProgram, type Insn, MAX_CALL_FRAMES, PseudoLd, STACK_BYTES } from "../isa.js";
import { addressOf, FUNC_SLOT, MAP_SLOT, SLOT_BYTES } from "../memory.js";
import { XDP_MD_BYTES } from "../xdp.js";
import {
  type CompileEnv,
  compileProgram,
  type FastMap,
  Fault,
  type FixedRegion,
  FRAME_STRIDE,
  type RunLoop,
  TAB_RUN,
  TABLE_CAP,
} from "./compile.js";

interface WasmGlobal {
  value: number | bigint;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (desc: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

/** Whether this engine runs compiled programs (wasm with shared memory). */
export function compiledAvailable(): boolean {
  if (wasm === undefined) return false;
  try {
    return new wasm.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/** Bytes of the stack frames at the start of a run area. */
export const AREA_STACK_BYTES = MAX_CALL_FRAMES * FRAME_STRIDE;
/** Regions a run's table holds at most (fixed, per-run and helper results together). */
export const TABLE_ENTRIES = TABLE_CAP;
const TABLE_HEADER = 16;
const ENTRY = 16;

/** Bytes of one CPU slot's run area. */
export function areaBytes(): number {
  return AREA_STACK_BYTES + TABLE_HEADER + TABLE_ENTRIES * ENTRY;
}

/** A named region of the memory. */
export interface Region32 {
  name: string;
  lo: number;
  size: number;
  writable: boolean;
}

/** A helper of a compiled program: base helpers, and those that need the run (map values). */
export type CompiledHelperFn = (
  vm: CompiledVm,
  r1: bigint,
  r2: bigint,
  r3: bigint,
  r4: bigint,
  r5: bigint,
) => bigint;

/** A map helper called with numbers (compile.ts mapShims): (map index or address, then 32-bit arguments) → i32. */
export type MapShim = (vm: CompiledVm, a: number, b: number, c: number, d: number) => number;

export interface CompiledOptions {
  memory: WasmMemory;
  /** Byte address of this CPU slot's run area (areaBytes(), a multiple of 1024). */
  area: number;
  /** Regions fixed for the program's life (globals, an exec's input). */
  fixed?: readonly Region32[];
  /**
   * The name of the region at table entry `entry` starting at `lo`, for a
   * fault's message (the interpreter's wording: `… at offset k of NAME (n
   * bytes): out of bounds`), or undefined (the message names no region).
   */
  regionName?: (lo: number, entry: number) => string | undefined;
  helpers?: ReadonlyMap<number, BaseHelperFn | CompiledHelperFn>;
  /** Maps by index, for BPF_PSEUDO_MAP_FD immediates; helpers read them back with mapAt(). */
  maps?: readonly unknown[];
  /** The address of BPF_PSEUDO_MAP_VALUE (map index, offset): a global. */
  mapValue?: (map: number, off: number) => bigint;
  budget?: number;
  cpu?: number;
  /** Numeric map helpers by id (1, 2, 3, 93, 94): every one, or none. */
  shims?: Readonly<Record<number, MapShim>>;
  /** Maps whose lookups run in wasm (compile.ts FastMap), with fast-path.wat's lookup export. */
  fastMaps?: ReadonlyMap<number, FastMap>;
  fpLookup?: (desc: number, hash: number, mode: number) => number;
  /** This slot's bpf_spin_lock owner word. */
  lockOwner?: number;
  /** Export the run loop (compile.ts RunLoop; its budget is this VM's). */
  loop?: Omit<RunLoop, "budget" | "packetEntry">;
}

const hex = (a: bigint) => `0x${BigInt.asUintN(64, a).toString(16)}`;

/** One compiled program on one CPU slot. */
export class CompiledVm implements HelperVm {
  readonly mem: { bytes(op: string, addr: bigint, size: number, write: boolean): Uint8Array };
  readonly log: string[] = [];
  readonly budget: number;
  private readonly budgetBig: bigint;
  readonly cpu: number;
  /** The instruction index of the helper call being run. */
  callPc = -1;
  private readonly memory: WasmMemory;
  private readonly stackTop: number;
  private readonly table: number;
  private readonly fixedCount: number;
  private readonly regionName: CompiledOptions["regionName"];
  private runCount = 0;
  private readonly helpers: ReadonlyMap<number, BaseHelperFn | CompiledHelperFn>;
  private readonly maps: readonly unknown[];
  private readonly exports: Record<string, unknown>;
  private readonly depth: WasmGlobal;
  private readonly budgetG: WasmGlobal;
  private readonly heldG: WasmGlobal;
  private readonly r0G: WasmGlobal;
  /** compile.ts G_SPAN, G_WSPAN (undefined until the instance exists). */
  private hintSpan: WasmGlobal | undefined = undefined;
  private hintWSpan: WasmGlobal | undefined = undefined;
  private readonly loopFn: ((r1: bigint, n: number, len: number) => number) | null;
  private readonly entry: (...a: bigint[]) => bigint;
  private u32: Uint32Array;
  private u8all: Uint8Array;
  private i32all: Int32Array;

  constructor(
    readonly prog: DecodedProgram,
    opts: CompiledOptions,
  ) {
    if (wasm === undefined) throw new BpfError("load", Errno.EOPNOTSUPP, "no WebAssembly here");
    this.memory = opts.memory;
    this.budget = opts.budget ?? DEFAULT_BUDGET;
    if (!Number.isInteger(this.budget) || this.budget < 1)
      throw new BpfError("run", Errno.EINVAL, `budget must be a positive integer, got ${this.budget}`);
    this.budgetBig = BigInt(this.budget);
    this.cpu = opts.cpu ?? 0;
    this.helpers = opts.helpers ?? new Map();
    this.maps = opts.maps ?? [];
    if (opts.area % FRAME_STRIDE !== 0) throw new RangeError("the run area must be 1024-aligned");
    this.stackTop = opts.area + AREA_STACK_BYTES;
    this.table = opts.area + AREA_STACK_BYTES;
    this.u8all = new Uint8Array(this.memory.buffer);
    this.u32 = new Uint32Array(this.u8all.buffer);
    this.i32all = new Int32Array(this.u8all.buffer);
    const fixed = opts.fixed ?? [];
    if (fixed.length > TABLE_ENTRIES / 2)
      throw new BpfError("load", Errno.E2BIG, `${fixed.length} fixed regions, at most ${TABLE_ENTRIES / 2}`);
    this.fixedCount = fixed.length;
    this.regionName = opts.regionName;
    fixed.forEach((r, i) => {
      this.writeEntry(i, r.lo, r.size, r.writable);
    });
    this.setRunCount(0);
    const mod = compileProgram(prog, this.compileEnv(prog, opts, fixed));
    const inst = new wasm.Instance(new wasm.Module(mod.bytes), { env: this.imports(opts) });
    this.exports = inst.exports;
    this.depth = inst.exports.depth as WasmGlobal;
    this.budgetG = inst.exports.budget as WasmGlobal;
    this.heldG = inst.exports.held as WasmGlobal;
    this.r0G = inst.exports.r0 as WasmGlobal;
    this.hintSpan = inst.exports.hintSpan as WasmGlobal;
    this.hintWSpan = inst.exports.hintWSpan as WasmGlobal;
    this.loopFn = (inst.exports.loop as ((r1: bigint, n: number, len: number) => number) | undefined) ?? null;
    this.entry = inst.exports.f0 as (...a: bigint[]) => bigint;
    const self = this;
    this.mem = {
      bytes(op, addr, size, write) {
        return self.bytes(op, addr, size, write);
      },
    };
  }

  /**
   * The memory's words. Everything a program touches (its object's maps,
   * globals and run areas) was allocated before it was compiled, so the view
   * taken then covers it; `memory.buffer` (costly on a shared memory) is
   * read again only for an address past it.
   */
  private view(): Uint32Array {
    return this.u32;
  }
  /** The memory's bytes, covering [at, at + n) (a fresh view only if the memory grew past the cached one). */
  u8(at: number, n: number): Uint8Array {
    if (at + n > this.u8all.length) {
      this.u8all = new Uint8Array(this.memory.buffer);
      this.u32 = new Uint32Array(this.u8all.buffer);
      this.i32all = new Int32Array(this.u8all.buffer);
    }
    // A constructor, not subarray(): V8 looks up the species for every subarray().
    return new Uint8Array(this.u8all.buffer, at, n);
  }
  private setCount(n: number): void {
    this.view()[this.table >>> 2] = n;
    this.forgetHint();
  }
  /** The table changed: the entry the compiled code checks inline (compile.ts G_SPAN) is no longer known. */
  private forgetHint(): void {
    if (this.hintSpan === undefined || this.hintWSpan === undefined) return;
    this.hintSpan.value = 0n;
    this.hintWSpan.value = 0n;
  }
  private count(): number {
    return this.view()[this.table >>> 2];
  }
  private writeEntry(i: number, lo: number, size: number, writable: boolean, tag = 0): void {
    const u = this.view();
    const w = (this.table + TABLE_HEADER + i * ENTRY) >>> 2;
    u[w] = lo;
    u[w + 1] = lo + size;
    u[w + 2] = writable ? 1 : 0;
    u[w + 3] = tag;
    this.forgetHint();
  }

  /** The word index (in the memory's words) of the run clock `loop` advances before each run (compile.ts TAB_RUN). */
  get runClockWord(): number {
    return (this.table + TAB_RUN) >>> 2;
  }

  /** Whether this run was given the region that starts at `lo` (a map value, say): its region table holds it. */
  gaveValueAt(lo: number): boolean {
    const u = this.view();
    const n = Math.min(this.count(), TABLE_ENTRIES);
    for (let i = 0, w = (this.table + TABLE_HEADER) >>> 2; i < n; i++, w += ENTRY >>> 2)
      if (u[w] === lo) return true;
    return false;
  }

  /** The address of the bpf_spin_lock held in this run, or 0 (a wasm global, set by either side). */
  get held(): number {
    return Number(this.heldG.value);
  }
  set held(addr: number) {
    this.heldG.value = addr;
  }

  /** Table entry `i`'s region start and tag (compile.ts valueTag(): 0 for what is no map value). */
  tableEntry(i: number): { lo: number; tag: number } {
    const w = (this.table + TABLE_HEADER + i * ENTRY) >>> 2;
    return { lo: this.u32[w], tag: this.u32[w + 3] | 0 };
  }

  /** The memory as i32 words, for the lock protocol's Atomics. */
  get i32(): Int32Array {
    return this.i32all;
  }

  /** The regions of this run (a context, a packet): replace the previous run's. */
  setRunRegions(regions: readonly Region32[]): void {
    regions.forEach((r, i) => {
      this.setRunRegion(i, r.lo, r.size, r.writable);
    });
    this.setRunCount(regions.length);
  }
  /** Run region `i` (set the count with setRunCount()). */
  setRunRegion(i: number, lo: number, size: number, writable: boolean): void {
    this.writeEntry(this.fixedCount + i, lo, size, writable);
  }
  setRunCount(n: number): void {
    this.runCount = n;
    this.setCount(this.fixedCount + n);
    this.u32[(this.table >>> 2) + 1] = this.fixedCount + n;
  }

  /**
   * Make [lo, lo + size) reachable for the rest of the run (a map value a
   * helper returned); the same region twice is one entry.
   * @returns lo, as the pointer the program gets
   */
  addRegion(lo: number, size: number, writable: boolean, tag = 0): bigint {
    const u = this.view();
    const n = this.count();
    const first = this.fixedCount + this.runCount;
    for (let i = first; i < n; i++) {
      const w = (this.table + TABLE_HEADER + i * ENTRY) >>> 2;
      if (u[w] === lo && u[w + 1] === lo + size && u[w + 2] === (writable ? 1 : 0)) return BigInt(lo);
    }
    if (n >= TABLE_ENTRIES)
      throw new BpfError("run", Errno.E2BIG, `more than ${TABLE_ENTRIES} regions mapped in one run`);
    this.writeEntry(n, lo, size, writable, tag);
    this.setCount(n + 1);
    return BigInt(lo);
  }

  /** The map a BPF_PSEUDO_MAP_FD pointer names, or undefined. */
  mapAt(ptr: bigint): unknown {
    const a = Number(BigInt.asUintN(64, ptr));
    const slot = Math.floor(a / SLOT_BYTES);
    if (a !== slot * SLOT_BYTES || slot < MAP_SLOT || slot - MAP_SLOT >= this.maps.length) return undefined;
    return this.maps[slot - MAP_SLOT];
  }

  functionAt(ptr: bigint): number {
    const a = Number(BigInt.asUintN(64, ptr));
    if (Math.floor(a / SLOT_BYTES) !== FUNC_SLOT) return -1;
    const pc = a - FUNC_SLOT * SLOT_BYTES;
    return this.prog.functions.includes(pc) ? pc : -1;
  }

  /**
   * Where [addr, addr + size) lies, as chk() decides: the byte offset, or -1.
   * `region` gets the table entry's index (-1 for a stack frame).
   */
  resolve(addr: bigint, size: number, write: boolean): { at: number; entry: number } | null {
    const a = BigInt.asUintN(64, addr);
    if (a >= 0x1_0000_0000n) return null;
    const n = Number(a);
    const entry = this.entryOf(n, size, write);
    return entry === -2 ? null : { at: n, entry };
  }

  /** resolve() of a 32-bit address without allocating: the table entry's index, -1 for a live stack frame, -2 for nothing. */
  private entryOf(n: number, size: number, write: boolean): number {
    const depth = Number(this.depth.value);
    const low = this.stackTop - FRAME_STRIDE * depth - STACK_BYTES;
    if (
      n >= low &&
      n < this.stackTop &&
      (n & STACK_BYTES) !== 0 &&
      (n & (STACK_BYTES - 1)) + size <= STACK_BYTES
    )
      return -1;
    const u = this.view();
    const count = this.count();
    for (let i = 0; i < count; i++) {
      const w = (this.table + TABLE_HEADER + i * ENTRY) >>> 2;
      if (n >= u[w] && n + size <= u[w + 1] && (!write || u[w + 2] !== 0)) return i;
    }
    return -2;
  }

  /**
   * Checked bytes for a helper's pointer argument (a view of the memory).
   * @throws BpfError EFAULT when [addr, addr + size) is not inside one region (or not writable when `write`)
   */
  bytes(op: string, addr: bigint, size: number, write: boolean): Uint8Array {
    if (size === 0) return new Uint8Array(0);
    const r = this.resolve(addr, size, write);
    if (r === null)
      throw new BpfError(
        op,
        Errno.EFAULT,
        `${write ? "write" : "read"} of ${size} bytes at ${hex(addr)}: not in any region the program may touch`,
      );
    return this.u8(r.at, size);
  }

  /**
   * bytes() for a 32-bit address (the numeric helpers'). With `into` (of
   * `size` bytes), the bytes are copied there and `into` returned: a helper
   * that only reads its argument (a key, a value to store) takes no fresh
   * view (V8 spends 35-60 ns making one).
   */
  bytesAt(op: string, addr: number, size: number, write: boolean, into?: Uint8Array): Uint8Array {
    const n = addr >>> 0;
    if (size === 0 || this.entryOf(n, size, write) === -2) return this.bytes(op, BigInt(n), size, write);
    if (into === undefined) return this.u8(n, size);
    if (n + size > this.u8all.length) this.u8(n, size); // the cached view grows to cover it
    const src = this.u8all;
    for (let i = 0; i < size; i++) into[i] = src[n + i];
    return into;
  }

  private error(errno: number, pc: number, detail: string): BpfRunError {
    return new BpfRunError(errno, pc, disasm(this.prog.insns, pc), detail);
  }

  /**
   * An access past a region's end, named as the interpreter names it (its
   * regions sit in address slots of their own): the region starting
   * nearest below `addr` (within 64 KiB) that has a name; or undefined.
   */
  private outOfBounds(addr: bigint, size: number, write: boolean): string | undefined {
    const name = this.regionName;
    const a = BigInt.asUintN(64, addr);
    if (name === undefined || a >= 0x1_0000_0000n) return undefined;
    const n = Number(a);
    const u = this.view();
    let best = -1;
    for (let i = 0, count = this.count(); i < count; i++) {
      const w = (this.table + TABLE_HEADER + i * ENTRY) >>> 2;
      if (
        u[w] <= n &&
        n - u[w] < 0x10000 &&
        (best < 0 || u[w] > u[(this.table + TABLE_HEADER + best * ENTRY) >>> 2])
      )
        best = i;
    }
    if (best < 0) return undefined;
    const w = (this.table + TABLE_HEADER + best * ENTRY) >>> 2;
    // Inside it: a write to a read-only region, not an overrun.
    if (n + size <= u[w + 1]) return undefined;
    const what = name(u[w], best);
    if (what === undefined) return undefined;
    return `${write ? "write" : "read"} of ${size} bytes at offset ${n - u[w]} of ${what} (${u[w + 1] - u[w]} bytes): out of bounds`;
  }

  private fault(kind: number, pc: number, addr: bigint, size: number): BpfRunError {
    const oob =
      kind === Fault.read || kind === Fault.write
        ? this.outOfBounds(addr, size, kind === Fault.write)
        : undefined;
    if (oob !== undefined) return this.error(Errno.EFAULT, pc, oob);
    switch (kind) {
      case Fault.read:
      case Fault.write:
        return this.error(
          Errno.EFAULT,
          pc,
          `${kind === Fault.write ? "write" : "read"} of ${size} bytes at ${hex(addr)}: not in any region the program may touch${kind === Fault.write && this.resolve(addr, size, false) ? " (read-only)" : ""}`,
        );
      case Fault.misaligned:
        return this.error(Errno.EFAULT, pc, `misaligned ${size * 8}-bit atomic at ${hex(addr)}`);
      case Fault.budget:
        return this.error(
          Errno.E2BIG,
          pc,
          `instruction budget of ${this.budget} exhausted (a loop that does not end?)`,
        );
      case Fault.depth:
        return this.error(
          Errno.E2BIG,
          pc,
          `the call stack of ${MAX_CALL_FRAMES + 1} frames is too deep (at most ${MAX_CALL_FRAMES})`,
        );
      case Fault.regions:
        return this.error(Errno.E2BIG, pc, `more than ${TABLE_ENTRIES} regions mapped in one run`);
      case Fault.pastEnd:
        return this.error(Errno.EINVAL, pc, "the program ran past its last instruction");
      default:
        return this.error(Errno.EINVAL, pc, "the function ran into the next function's code");
    }
  }

  private callHelper(id: number, pc: number, a: bigint, b: bigint, c: bigint, d: bigint, e: bigint): bigint {
    const fn = this.helpers.get(id);
    if (fn === undefined) throw this.error(Errno.EINVAL, pc, `helper #${id} does not exist here`);
    const saved = this.callPc;
    this.callPc = pc;
    try {
      return (fn as CompiledHelperFn)(
        this,
        BigInt.asUintN(64, a),
        BigInt.asUintN(64, b),
        BigInt.asUintN(64, c),
        BigInt.asUintN(64, d),
        BigInt.asUintN(64, e),
      );
    } catch (err) {
      if (err instanceof BpfRunError) throw err;
      if (err instanceof BpfError) throw this.error(err.errno, pc, `helper #${id}: ${err.detail}`);
      throw err;
    } finally {
      this.callPc = saved;
    }
  }

  /** What the compiler needs to know of this VM's memory, maps and helpers. */
  private compileEnv(prog: DecodedProgram, opts: CompiledOptions, fixed: readonly Region32[]): CompileEnv {
    const nMaps = this.maps.length;
    return {
      stackTop: this.stackTop,
      table: this.table,
      fixed: fixed.map((r): FixedRegion => ({ lo: r.lo, hi: r.lo + r.size, writable: r.writable })),
      shared: this.memory.buffer instanceof SharedArrayBuffer,
      mapShims: opts.shims !== undefined ? { maps: nMaps } : undefined,
      fastMaps: opts.fpLookup !== undefined ? opts.fastMaps : undefined,
      lockOwner: opts.lockOwner,
      cpu: this.helpers.has(8) ? this.cpu : undefined,
      loop:
        opts.loop !== undefined
          ? { ...opts.loop, budget: this.budget, packetEntry: fixed.length + 1 }
          : undefined,
      entryContext:
        opts.loop?.kind === "xdp"
          ? { lo: opts.loop.md, hi: opts.loop.md + XDP_MD_BYTES, writable: false }
          : undefined,
      pseudo: pseudoResolver(prog, nMaps, opts.mapValue),
    };
  }

  /** The module's imports: memory, the generic helper, fault, the map shims, fast-path.wat's lookup. */
  private imports(opts: CompiledOptions): Record<string, unknown> {
    const env: Record<string, unknown> = {
      memory: this.memory,
      helper: (id: number, pc: number, a: bigint, b: bigint, c: bigint, d: bigint, e: bigint) =>
        this.callHelper(id >>> 0, pc, a, b, c, d, e),
      fault: (kind: number, pc: number, addr: bigint, size: number) => {
        throw this.fault(kind, pc, addr, size);
      },
    };
    for (const [id, fn] of Object.entries(opts.shims ?? {}))
      env[`m${id}`] = (pc: number, a: number, b: number, c: number, d: number) =>
        this.callShim(Number(id), fn, pc, a, b, c, d);
    if (opts.fpLookup !== undefined) env.fpLookup = opts.fpLookup;
    return env;
  }

  private callShim(id: number, fn: MapShim, pc: number, a: number, b: number, c: number, d: number): number {
    const saved = this.callPc;
    this.callPc = pc;
    try {
      return fn(this, a, b, c, d);
    } catch (err) {
      if (err instanceof BpfRunError) throw err;
      if (err instanceof BpfError) throw this.error(err.errno, pc, `helper #${id}: ${err.detail}`);
      throw err;
    } finally {
      this.callPc = saved;
    }
  }

  /**
   * Call a function of the program from a helper (bpf_loop's and for_each's
   * callbacks): a new frame below the caller's, r1-r5 = args, within the same budget.
   */
  callback(pc: number, args: readonly bigint[]): bigint {
    const depth = Number(this.depth.value) + 1;
    const callPc = this.callPc;
    if (depth >= MAX_CALL_FRAMES)
      throw this.error(
        Errno.E2BIG,
        callPc,
        `the call stack of ${depth + 1} frames is too deep (at most ${MAX_CALL_FRAMES})`,
      );
    const f = this.exports[`f${pc}`] as ((...a: bigint[]) => bigint) | undefined;
    if (f === undefined) throw this.error(Errno.EFAULT, callPc, `insn ${pc} is not a function`);
    const saved = this.depth.value;
    this.depth.value = depth;
    try {
      return BigInt.asUintN(64, f(args[0] ?? 0n, args[1] ?? 0n, args[2] ?? 0n, args[3] ?? 0n, args[4] ?? 0n));
    } finally {
      this.depth.value = saved;
      this.callPc = callPc;
    }
  }

  /**
   * `n` runs in wasm (compile.ts RunLoop), each from the saved input of
   * `len` bytes; stops after a run that exits holding a lock.
   * @returns the runs made; r0 of the last is `lastR0`
   */
  runLoop(r1: bigint, n: number, len: number): number {
    if (this.loopFn === null) throw new Error("compiled without a run loop");
    return this.loopFn(r1, n, len);
  }

  /** r0 of runLoop()'s last run, unsigned. */
  get lastR0(): bigint {
    return BigInt.asUintN(64, this.r0G.value as bigint);
  }

  /**
   * One run from the program's first instruction with r1-r5 = `args`.
   * @returns r0 as an unsigned 64-bit number
   * @throws BpfRunError when the run faults or overruns its budget
   */
  run(args: readonly bigint[] = []): bigint {
    this.depth.value = 0;
    this.heldG.value = 0;
    this.budgetG.value = this.budgetBig;
    this.setCount(this.fixedCount + this.runCount);
    try {
      return BigInt.asUintN(
        64,
        this.entry(args[0] ?? 0n, args[1] ?? 0n, args[2] ?? 0n, args[3] ?? 0n, args[4] ?? 0n),
      );
    } finally {
      this.setCount(this.fixedCount + this.runCount);
    }
  }
}

/** The value of a pseudo LD_IMM64 (compile.ts CompileEnv.pseudo), as the interpreter resolves it. */
function pseudoResolver(
  prog: DecodedProgram,
  nMaps: number,
  mapValue: ((map: number, off: number) => bigint) | undefined,
): (i: number, x: Insn) => bigint {
  return (i, x) => {
    switch (x.src) {
      case PseudoLd.mapFd:
      case PseudoLd.mapIdx:
        if (x.imm < 0 || x.imm >= nMaps)
          throw new BpfError("load", Errno.EINVAL, `insn ${i}: no map with index ${x.imm}`);
        return addressOf(MAP_SLOT + x.imm);
      case PseudoLd.mapValue:
      case PseudoLd.mapIdxValue:
        if (!mapValue)
          throw new BpfError("load", Errno.EINVAL, `insn ${i}: no globals to resolve a map value against`);
        return mapValue(x.imm, prog.insns[i + 1].imm);
      case PseudoLd.func:
        return addressOf(FUNC_SLOT, prog.target[i]);
      default:
        throw new BpfError("load", Errno.EINVAL, `insn ${i}: ld_imm64 src ${x.src} is not supported`);
    }
  };
}
