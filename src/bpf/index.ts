/**
 * htab/bpf: real BPF programs on htab maps. A clang-built object
 * (`clang -O2 -g -target bpf -c`) loads onto the shared-memory backend
 * (`LoadedObject.load`), its `.maps` become htab maps and its globals byte
 * regions, and its programs run by name in the reference interpreter with
 * run-time memory checks, or compiled to WebAssembly (`engine: "compiled"`,
 * src/bpf/wasm) over one shared memory holding the object's maps;
 * `execRaw`/`execElf` are the conformance suite's plugin contract. Runs in browsers: nothing here needs Node.
 */

export { disasm } from "./disasm.js";
export { execElf, execRaw, parseBase16 } from "./exec.js";
export { baseHelpers, MAX_LOOPS } from "./helpers.js";
export { BpfRunError, DEFAULT_BUDGET, type HelperFn, Vm, type VmOptions } from "./interp.js";
export {
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
export {
  GlobalSection,
  LoadedObject,
  LoadedProgram,
  type LoadOptions,
  type ObjectHandle,
  type RunOptions,
  type RunResult,
} from "./object.js";
export { execRawCompiled } from "./wasm/exec.js";
export { compiledAvailable } from "./wasm/runtime.js";
