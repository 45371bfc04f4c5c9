/**
 * htab/kernel: drive genuine kernel BPF maps through bpf() with the same
 * RawMap interface as the SharedArrayBuffer maps. Node on Linux only.
 */

export { possibleCpus } from "./bpf-syscall.js";
export { type KernelCreateOptions, KernelMap, type KernelMapInfo, kernelAvailable } from "./kernel-map.js";
