/**
 * htab/bpf: real BPF programs on htab maps. A clang-built object
 * (`clang -O2 -g -target bpf -c`) loads onto the shared-memory backend
 * (`LoadedObject.load`), its `.maps` become htab maps and its globals byte
 * regions, and its programs run by name in the reference interpreter with
 * run-time memory checks, or compiled to WebAssembly (`engine: "compiled"`,
 * src/bpf/wasm) over one shared memory holding the object's maps;
 * `execRaw`/`execElf` are the conformance suite's plugin contract. Runs in browsers: nothing here needs Node.
 * @module htab/bpf
 */

export type { SourceLine } from "./btf-ext.js";
export { disasm } from "./disasm.js";
export { type ExecOptions, execElf, execRaw, parseBase16 } from "./exec.js";
export { type BaseHelperFn, baseHelpers, type HelperVm, MAX_LOOPS } from "./helpers.js";
export { BpfRunError, DEFAULT_BUDGET, type HelperFn, Vm, type VmOptions } from "./interp.js";
export {
  AluOp,
  AtomicOp,
  asm,
  Class,
  type DecodedProgram,
  type DecodeOptions,
  decodeInsns,
  decodeProgram,
  encodeInsns,
  Helper,
  type Insn,
  insn,
  JmpOp,
  Mode,
  PseudoCall,
  PseudoLd,
  program,
  Size,
  Source,
} from "./isa.js";
export {
  type BpfObjectSpec,
  type GlobalVar,
  globalMapName,
  type MapDef,
  type OpenOptions,
  openObject,
  type ProgramDef,
  ProgType,
} from "./loader.js";
export { type Fault, Memory, Region } from "./memory.js";
export {
  GlobalSection,
  LoadedObject,
  LoadedProgram,
  type LoadOptions,
  MAX_TAIL_CALLS,
  type ObjectHandle,
  type ObjMap,
  type RunOptions,
  type RunResult,
} from "./object.js";
export { ProgArray } from "./prog-array.js";
export { RbQuery, RingBuf, type RingBufHandle } from "./ringbuf.js";
export { SK_BUFF_BYTES, SkBuff, type SkbKind, skbAccess } from "./skb.js";
export { execRawCompiled } from "./wasm/exec.js";
export { compiledAvailable } from "./wasm/runtime.js";

import type { RawMap } from "../map/raw-map.js";
import type { BpfObjectSpec, GlobalVar, ProgramDef } from "./loader.js";
import type { RunOptions } from "./object.js";

/** What a program's run gives back, on either backend. */
export interface ObjectRunResult {
  /** r0's low 32 bits, unsigned, as BPF_PROG_TEST_RUN reports it. */
  retval: number;
  /** The packet after the run (XDP), or empty. */
  data: Uint8Array;
  /** The context after the run (syscall), or empty. */
  ctx: Uint8Array;
  /** Nanoseconds per run, averaged over `repeat`, the load excluded. */
  duration: number;
}

/** A program of a loaded object: `LoadedProgram` (shared memory) or the kernel backend's `KernelProgram`. */
export interface ObjectProgram {
  readonly name: string;
  readonly def: ProgramDef;
  /** Run on `data` as BPF_PROG_TEST_RUN does (`ctx`, `repeat`, `cpu` for this run only). */
  run(data: Uint8Array, opts?: RunOptions): ObjectRunResult;
}

/** A global section (`.data`, `.bss`, `.rodata`…): libbpf's single-element ARRAY map. */
export interface ObjectGlobal {
  /** libbpf's map name, `<object>.<section>` cut to 15 characters. */
  readonly name: string;
  readonly section: string;
  readonly readonly: boolean;
  readonly vars: readonly GlobalVar[];
  /** A copy of the section's bytes now. */
  read(): Uint8Array;
  /** Write `bytes` at byte `offset` (what the next run sees). */
  write(bytes: Uint8Array, offset?: number): void;
}

/**
 * One clang-built object loaded on a backend: `LoadedObject.load(bytes)`
 * (htab's shared-memory maps, the reference interpreter) or
 * `KernelObject.load(bytes)` from htab/kernel (real maps, the verifier,
 * BPF_PROG_TEST_RUN). The same calls on both.
 */
export interface BpfObject {
  readonly spec: BpfObjectSpec;
  /** The programs, in the order of the object's program symbols. */
  readonly programList: readonly ObjectProgram[];
  /** A `.maps` map by its C name. */
  map(name: string): RawMap;
  /** A global section by libbpf name (`obj.bss`) or section name (`.bss`). */
  global(name: string): ObjectGlobal;
  program(name: string): ObjectProgram;
  close(): void;
}
