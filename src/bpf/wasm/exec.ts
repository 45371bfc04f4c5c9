/**
 * The conformance suite's plugin contract (exec.ts) for compiled programs:
 * raw instructions run with MEMORY copied into the wasm memory, its address
 * in r1 and length in r2, the map-free helpers, and the same errors as the
 * interpreter (a bad access is EFAULT naming the instruction).
 *
 * Memory of one exec (its own, shared when the engine allows): 0..64 KiB
 * unmapped (NULL and small numbers fault), the run area at 64 KiB, the input
 * after it.
 */

import { BpfError, Errno } from "../../errors.js";
import type { WasmMemory } from "../../wasm/fast-path.js";
import type { ExecOptions } from "../exec.js";
import { baseHelpers } from "../helpers.js";
import { decodeInsns, decodeProgram, type Insn } from "../isa.js";
import { areaBytes, CompiledVm } from "./runtime.js";

const PAGE = 65536;
const AREA = PAGE;

interface MemoryCtor {
  Memory: new (desc: { initial: number; maximum: number; shared?: boolean }) => WasmMemory;
}

/** A wasm memory of `bytes`, shared where the engine can. */
export function execMemory(bytes: number): WasmMemory {
  const api = (globalThis as { WebAssembly?: MemoryCtor }).WebAssembly;
  if (api === undefined) throw new BpfError("exec", Errno.EOPNOTSUPP, "no WebAssembly here");
  const pages = Math.ceil(bytes / PAGE);
  try {
    return new api.Memory({ initial: pages, maximum: pages, shared: true });
  } catch {
    return new api.Memory({ initial: pages, maximum: pages });
  }
}

/** The compiled program and its memory for one exec (reusable across runs of the same input). */
export function compileExec(
  insns: readonly Insn[],
  memory: Uint8Array,
  opts: ExecOptions = {},
): { vm: CompiledVm; args: bigint[]; input: Uint8Array } {
  const helpers = baseHelpers();
  const prog = decodeProgram(insns, { op: "exec", helpers: (id) => helpers.has(id) });
  const inputAt = AREA + Math.ceil(areaBytes() / PAGE) * PAGE;
  const mem = execMemory(inputAt + Math.max(memory.length, 1));
  const input = new Uint8Array(mem.buffer, inputAt, memory.length);
  input.set(memory);
  const vm = new CompiledVm(prog, {
    memory: mem,
    area: AREA,
    fixed:
      memory.length > 0 ? [{ name: "input memory", lo: inputAt, size: memory.length, writable: true }] : [],
    helpers,
    budget: opts.budget,
    cpu: opts.cpu,
  });
  const args = [memory.length > 0 ? BigInt(inputAt) : 0n, BigInt(memory.length)];
  return { vm, args, input };
}

/**
 * execRaw() compiled: run raw instructions (8 bytes each) with `memory` at r1.
 * @returns r0, all 64 bits, unsigned
 * @throws BpfError EINVAL at decode, BpfRunError when the run faults or overruns its budget or call depth
 */
export function execRawCompiled(code: Uint8Array, memory: Uint8Array, opts: ExecOptions = {}): bigint {
  const { vm, args } = compileExec(decodeInsns(code, "exec"), memory, opts);
  return vm.run(args);
}
