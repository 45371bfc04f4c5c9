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
