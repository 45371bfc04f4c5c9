/**
 * htab/kernel: drive genuine kernel BPF maps through bpf() with the same
 * RawMap interface as the SharedArrayBuffer maps. Node on Linux only.
 * @module htab/kernel
 */

/** The operand names asm.alu(), asm.jmp() and asm.load()/store() take. */
export type { BinAlu, CondJmp, SizeName } from "../bpf/isa.js";
export { type Btf, BtfKind, type BtfMember, type BtfType, parseBtf, resolveType } from "../btf/btf.js";
export { btfCodec } from "../btf/codec.js";
export { type BtfDecl, btfDeclOf, writeBtf } from "../btf/write.js";
export type { KernelMapInfo } from "./attr.js";
export { possibleCpus } from "./bpf-syscall.js";
export { strerror } from "./errno-text.js";
export { anonHugePagesKiB, type HugePageMemory, hugePageMemory, thpMode } from "./huge-pages.js";
export { type KernelCreateOptions, KernelMap, kernelAvailable } from "./kernel-map.js";
export type { KernelMapListing } from "./map-objects.js";
export { KERNEL_MAP_TYPE_NAMES, kernelMapTypeName } from "./map-types.js";
export {
  KernelGlobal,
  type KernelLoadOptions,
  KernelObject,
  type KernelObjectHandle,
  KernelProgram,
} from "./object.js";
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
  type TestRunResult,
  VerifierError,
} from "./program.js";
