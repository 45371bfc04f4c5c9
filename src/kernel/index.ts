/**
 * htab/kernel: drive genuine kernel BPF maps through bpf() with the same
 * RawMap interface as the SharedArrayBuffer maps. Node on Linux only.
 */

export { possibleCpus } from "./bpf-syscall.js";
export {
  type Btf,
  type BtfDecl,
  BtfKind,
  type BtfMember,
  type BtfType,
  btfCodec,
  btfDeclOf,
  parseBtf,
  resolveType,
  writeBtf,
} from "./btf.js";
export {
  type KernelCreateOptions,
  KernelMap,
  type KernelMapInfo,
  type KernelMapListing,
  kernelAvailable,
  strerror,
} from "./kernel-map.js";
export { KERNEL_MAP_TYPE_NAMES, kernelMapTypeName } from "./map-types.js";
export {
  AluOp,
  asm,
  BpfProgram,
  Helper,
  type Insn,
  JmpOp,
  loadProgram,
  ProgType,
  program,
  R0,
  R1,
  R2,
  R3,
  R4,
  R5,
  R6,
  R7,
  R8,
  R9,
  R10,
} from "./program.js";
