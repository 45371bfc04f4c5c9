/**
 * The reference interpreter: every instruction of RFC 9669 up to cpu v4,
 * with the kernel's answers where hardware differs, over the checked memory
 * of memory.ts. It is the oracle other execution modes are compared with,
 * so it is written for exactness, not speed: registers are 64-bit BigInts.
 *
 * Defined results (RFC 9669 §4.1, the kernel's interpreter and JITs):
 * - division by zero gives 0; modulo by zero leaves dst unchanged (its low
 *   32 bits, zero-extended, in the 32-bit forms); INT_MIN / -1 is INT_MIN
 *   and INT_MIN % -1 is 0 (signed forms, offset 1);
 * - every 32-bit ALU result is zero-extended into the 64-bit register;
 * - shift counts are masked (& 31, & 63);
 * - a 32-bit atomic's fetched value and cmpxchg's r0 are zero-extended.
 *
 * Calls: a helper gets r1-r5 and returns r0; a bpf-to-bpf call gets a fresh
 * 512-byte stack frame (zeroed) and r10 at its end, and the caller's r6-r9
 * and r10 are restored at its exit; at most 8 frames (the kernel's
 * MAX_CALL_FRAMES), else E2BIG.
 *
 * What stops a run (a BpfRunError naming the instruction):
 * - EFAULT: a load, store, atomic or helper argument outside every region
 *   the program may touch (memory.ts), a write to a read-only one, a
 *   misaligned atomic;
 * - E2BIG: the instruction budget (default 2^25 = 33,554,432 executed
 *   instructions per run, callbacks included; the nearest kernel answer is
 *   the verifier's "BPF program is too large", E2BIG), or a 9th call frame;
 * - EINVAL: falling off the end of the program. Unknown opcodes, reserved
 *   fields, jumps out of the program or into an LD_IMM64 are refused
 *   earlier, when the program is decoded (isa.ts).
 */

import { BpfError, Errno } from "../errors.js";
import { disasm } from "./disasm.js";
import {
  AluOp,
  AtomicOp,
  Class,
  type DecodedProgram,
  Kind,
  MAX_CALL_FRAMES,
  Mode,
  PseudoLd,
  Source,
  STACK_BYTES,
  sizeBytes,
} from "./isa.js";
import { addressOf, FUNC_SLOT, MAP_SLOT, Memory, SLOT_BYTES, STACK_ORIGIN, STACK_SLOT } from "./memory.js";
import { alu32, alu64, atomic, bswap16, bswap32, bswap64, cond32, cond64, load, store } from "./ops.js";

/**
 * A run stopped: `insn` is the instruction index (in the linked program)
 * where it stopped, `text` its disassembly, `reason` what was wrong, and
 * `source` the C source line when the object carried line info.
 */
export class BpfRunError extends BpfError {
  constructor(
    errno: number,
    readonly insn: number,
    readonly text: string,
    readonly reason: string,
    readonly source?: string,
  ) {
    super("run", errno, `insn ${insn} (${text})${source ? ` at ${source}` : ""}: ${reason}`);
  }
}

/** A helper: r1-r5 in, r0 out. Throw BpfError to stop the run (the interpreter names the call instruction). */
export type HelperFn = (vm: Vm, r1: bigint, r2: bigint, r3: bigint, r4: bigint, r5: bigint) => bigint;

/** Default instruction budget per run. */
export const DEFAULT_BUDGET = 2 ** 25;

export interface VmOptions {
  /** Helpers by id. */
  helpers?: ReadonlyMap<number, HelperFn>;
  /** Executed-instruction budget per run (callbacks included). */
  budget?: number;
  /** The CPU slot this VM runs on (bpf_get_smp_processor_id). */
  cpu?: number;
  /** Maps by index, for BPF_PSEUDO_MAP_FD immediates (imm = index); helpers read them back with `vm.mapAt()`. */
  maps?: readonly unknown[];
  /** Resolve BPF_PSEUDO_MAP_VALUE (imm = map index, second imm = offset) to an address. */
  mapValue?: (map: number, off: number) => bigint;
  /** The memory to run in (shared by the programs of one object, so that a tail call sees the same context). */
  mem?: Memory;
}

const M32 = 0xffffffffn;

interface CallFrame {
  ret: number;
  r6: bigint;
  r7: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
}

/** One program on one CPU slot: its memory, its helpers, and runs. */
export class Vm {
  readonly mem: Memory;
  readonly helpers: ReadonlyMap<number, HelperFn>;
  readonly budget: number;
  cpu: number;
  /** The instruction index of the helper call being run (for a helper's callbacks and errors). */
  callPc = -1;
  /** Lines written by bpf_trace_printk, oldest first (bounded by the caller). */
  readonly log: string[] = [];
  private left = 0;
  /** Set by tailCall(): the helper call that made it ends the current frame with the callee's r0. */
  private tailDone = false;
  /** 64-bit immediates of each instruction: imm sign-extended (LD_IMM64: the whole value). */
  private readonly imm64: BigUint64Array;
  private readonly offB: BigInt64Array;
  private readonly maps: readonly unknown[];

  constructor(
    readonly prog: DecodedProgram,
    opts: VmOptions = {},
  ) {
    this.mem = opts.mem ?? new Memory();
    this.helpers = opts.helpers ?? new Map();
    this.budget = opts.budget ?? DEFAULT_BUDGET;
    if (!Number.isInteger(this.budget) || this.budget < 1)
      throw new BpfError("run", Errno.EINVAL, `budget must be a positive integer, got ${this.budget}`);
    this.cpu = opts.cpu ?? 0;
    this.maps = opts.maps ?? [];
    const { insns, kind } = prog;
    const n = insns.length;
    this.imm64 = new BigUint64Array(n);
    this.offB = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      const x = insns[i];
      this.offB[i] = BigInt(x.off);
      if (kind[i] !== Kind.ldImm64) {
        this.imm64[i] = BigInt(x.imm);
        continue;
      }
      const hi = insns[i + 1].imm;
      switch (x.src) {
        case PseudoLd.none:
          this.imm64[i] = (BigInt(hi >>> 0) << 32n) | BigInt(x.imm >>> 0);
          break;
        case PseudoLd.mapFd:
        case PseudoLd.mapIdx:
          if (x.imm < 0 || x.imm >= this.maps.length)
            throw new BpfError("load", Errno.EINVAL, `insn ${i}: no map with index ${x.imm}`);
          this.imm64[i] = addressOf(MAP_SLOT + x.imm);
          break;
        case PseudoLd.mapValue:
        case PseudoLd.mapIdxValue:
          if (!opts.mapValue)
            throw new BpfError("load", Errno.EINVAL, `insn ${i}: no globals to resolve a map value against`);
          this.imm64[i] = opts.mapValue(x.imm, hi);
          break;
        case PseudoLd.func:
          this.imm64[i] = addressOf(FUNC_SLOT, prog.target[i]);
          break;
        default:
          throw new BpfError("load", Errno.EINVAL, `insn ${i}: ld_imm64 src ${x.src} is not supported`);
      }
    }
  }

  /** The map a BPF_PSEUDO_MAP_FD pointer names, or undefined. */
  mapAt(ptr: bigint): unknown {
    const a = Number(ptr);
    const slot = Math.floor(a / SLOT_BYTES);
    if (a !== slot * SLOT_BYTES || slot < MAP_SLOT || slot - MAP_SLOT >= this.maps.length) return undefined;
    return this.maps[slot - MAP_SLOT];
  }

  /** The instruction index a BPF_PSEUDO_FUNC pointer names, or -1 when it names no function of this program. */
  functionAt(ptr: bigint): number {
    const a = Number(ptr);
    if (Math.floor(a / SLOT_BYTES) !== FUNC_SLOT) return -1;
    const pc = a - FUNC_SLOT * SLOT_BYTES;
    return this.prog.functions.includes(pc) ? pc : -1;
  }

  /**
   * One run from instruction `entry` (default 0) with r1-r5 = `args`.
   * @returns r0 as an unsigned 64-bit number
   * @throws BpfRunError when the run faults or overruns its budget
   */
  run(args: readonly bigint[] = [], entry = 0): bigint {
    this.left = this.budget;
    this.mem.endRun();
    try {
      return this.exec(entry, 0, args);
    } finally {
      this.mem.endRun();
    }
  }

  /**
   * Call a function of the program from a helper (a callback of bpf_loop or
   * for_each): a new frame below the caller's, r1-r5 = args, within the same budget.
   */
  callback(pc: number, args: readonly bigint[]): bigint {
    const depth = this.mem.depth + 1;
    const callPc = this.callPc;
    if (depth >= MAX_CALL_FRAMES)
      throw this.error(
        Errno.E2BIG,
        callPc,
        `the call stack of ${depth + 1} frames is too deep (at most ${MAX_CALL_FRAMES})`,
      );
    const saved = this.mem.depth;
    try {
      return this.exec(pc, depth, args);
    } finally {
      this.mem.depth = saved;
      this.callPc = callPc;
    }
  }

  /**
   * bpf_tail_call's jump, from a helper: run `target` (a program sharing this
   * memory) from its first instruction in the current frame, which it
   * replaces (the kernel reuses the frame), with r1 = `ctx`, within this
   * run's budget. When the helper returns, the current frame exits with the
   * callee's r0, as if the callee's exit were its own.
   */
  tailCall(target: Vm, ctx: bigint): bigint {
    if (target.mem !== this.mem)
      throw new BpfError("tail_call", Errno.EINVAL, "the target program does not share this memory");
    const depth = this.mem.depth;
    const callPc = this.callPc;
    target.left = this.left;
    target.cpu = this.cpu;
    try {
      return target.exec(0, depth, [ctx]);
    } finally {
      this.left = target.left;
      this.mem.depth = depth;
      this.callPc = callPc;
      this.tailDone = true;
    }
  }

  private error(errno: number, pc: number, detail: string): BpfRunError {
    return new BpfRunError(errno, pc, disasm(this.prog.insns, pc), detail);
  }

  private enterFrame(depth: number): bigint {
    this.mem.depth = depth;
    this.mem.frame(depth).bytes.fill(0);
    return addressOf(STACK_SLOT + depth, STACK_ORIGIN + STACK_BYTES);
  }

  /** A function's exit: the caller's registers back and its return address, or -1 at the outermost frame. */
  private leave(frames: CallFrame[], r: BigUint64Array): number {
    const f = frames.pop();
    if (f === undefined) return -1;
    r[6] = f.r6;
    r[7] = f.r7;
    r[8] = f.r8;
    r[9] = f.r9;
    r[10] = f.r10;
    this.mem.depth--;
    return f.ret;
  }

  private exec(entry: number, base: number, args: readonly bigint[]): bigint {
    const { insns, kind, target } = this.prog;
    const n = insns.length;
    const mem = this.mem;
    const imm64 = this.imm64;
    const offB = this.offB;
    const r = new BigUint64Array(11);
    for (let i = 0; i < 5 && i < args.length; i++) r[1 + i] = args[i];
    r[10] = this.enterFrame(base);
    const frames: CallFrame[] = [];
    let pc = entry;
    for (;;) {
      if (pc >= n) throw this.error(Errno.EINVAL, n - 1, "the program ran past its last instruction");
      if (--this.left < 0)
        throw this.error(
          Errno.E2BIG,
          pc,
          `instruction budget of ${this.budget} exhausted (a loop that does not end?)`,
        );
      const x = insns[pc];
      const code = x.code;
      switch (kind[pc]) {
        case Kind.alu: {
          const o = code & 0xf0;
          const isX = (code & Source.X) !== 0;
          if ((code & 0x07) === Class.ALU64) {
            if (o === AluOp.end) {
              r[x.dst] =
                x.imm === 16
                  ? BigInt(bswap16(Number(r[x.dst] & 0xffffn)))
                  : x.imm === 32
                    ? BigInt(bswap32(Number(r[x.dst] & M32)))
                    : bswap64(r[x.dst]);
            } else r[x.dst] = alu64(o, r[x.dst], isX ? r[x.src] : imm64[pc], x.off);
          } else if (o === AluOp.end) {
            const v = r[x.dst];
            if (isX)
              r[x.dst] =
                x.imm === 16
                  ? BigInt(bswap16(Number(v & 0xffffn)))
                  : x.imm === 32
                    ? BigInt(bswap32(Number(v & M32)))
                    : bswap64(v);
            else r[x.dst] = x.imm === 16 ? v & 0xffffn : x.imm === 32 ? v & M32 : v;
          } else {
            const s = isX ? Number(r[x.src] & M32) : x.imm >>> 0;
            r[x.dst] = BigInt(alu32(o, Number(r[x.dst] & M32), s, x.off));
          }
          pc++;
          break;
        }
        case Kind.ldImm64:
          r[x.dst] = imm64[pc];
          pc += 2;
          break;
        case Kind.ldx: {
          const size = sizeBytes(code);
          const reg = mem.resolve(BigInt.asUintN(64, r[x.src] + offB[pc]), size, false);
          if (reg === undefined) throw this.error(mem.fault.errno, pc, mem.fault.what);
          const field = reg.fields === undefined || size !== 4 ? undefined : reg.fields.get(mem.off);
          r[x.dst] = field ?? load(reg, mem.off, size, (code & 0xe0) === Mode.MEMSX);
          pc++;
          break;
        }
        case Kind.st:
        case Kind.stx: {
          const size = sizeBytes(code);
          const reg = mem.resolve(BigInt.asUintN(64, r[x.dst] + offB[pc]), size, true);
          if (reg === undefined) throw this.error(mem.fault.errno, pc, mem.fault.what);
          store(reg, mem.off, size, kind[pc] === Kind.st ? imm64[pc] : r[x.src]);
          pc++;
          break;
        }
        case Kind.atomic: {
          const size = sizeBytes(code);
          const addr = BigInt.asUintN(64, r[x.dst] + offB[pc]);
          const reg = mem.resolve(addr, size, true);
          if (reg === undefined) throw this.error(mem.fault.errno, pc, mem.fault.what);
          if (mem.off % size !== 0)
            throw this.error(
              Errno.EFAULT,
              pc,
              `misaligned ${size * 8}-bit atomic at offset ${mem.off} of ${reg.name}`,
            );
          const old = atomic(reg, mem.off, size, x.imm, r[x.src], r[0]);
          if (x.imm === AtomicOp.cmpxchg) r[0] = old;
          else if (x.imm & AtomicOp.fetch) r[x.src] = old;
          pc++;
          break;
        }
        case Kind.ja:
          pc = target[pc];
          break;
        case Kind.jcond: {
          const o = code & 0xf0;
          const isX = (code & Source.X) !== 0;
          const taken =
            (code & 0x07) === Class.JMP
              ? cond64(o, r[x.dst], isX ? r[x.src] : imm64[pc])
              : cond32(o, Number(r[x.dst] & M32), isX ? Number(r[x.src] & M32) : x.imm >>> 0);
          pc = taken ? target[pc] : pc + 1;
          break;
        }
        case Kind.callHelper: {
          const id = x.imm >>> 0;
          const fn = this.helpers.get(id);
          if (fn === undefined) throw this.error(Errno.EINVAL, pc, `helper #${id} does not exist here`);
          this.callPc = pc;
          try {
            r[0] = fn(this, r[1], r[2], r[3], r[4], r[5]);
          } catch (e) {
            this.tailDone = false;
            if (e instanceof BpfRunError) throw e;
            if (e instanceof BpfError) throw this.error(e.errno, pc, `helper #${id}: ${e.detail}`);
            throw e;
          }
          if (this.tailDone) {
            // A tail call ran: this frame ends with its r0.
            this.tailDone = false;
            pc = this.leave(frames, r);
            if (pc < 0) return r[0];
            break;
          }
          pc++;
          break;
        }
        case Kind.callLocal: {
          const depth = mem.depth + 1;
          if (depth >= MAX_CALL_FRAMES)
            throw this.error(
              Errno.E2BIG,
              pc,
              `the call stack of ${depth + 1} frames is too deep (at most ${MAX_CALL_FRAMES})`,
            );
          frames.push({ ret: pc + 1, r6: r[6], r7: r[7], r8: r[8], r9: r[9], r10: r[10] });
          r[10] = this.enterFrame(depth);
          pc = target[pc];
          break;
        }
        case Kind.exit:
          pc = this.leave(frames, r);
          if (pc < 0) return r[0];
          break;
        default:
          // The second slot of an LD_IMM64 is reached only by falling into it, which decode refuses.
          throw this.error(Errno.EINVAL, pc, "not an instruction");
      }
    }
  }
}
