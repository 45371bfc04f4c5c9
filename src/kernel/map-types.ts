/**
 * Every `enum bpf_map_type` of the 6.18 uapi by number, named as bpftool
 * names them (`bpftool map show` prints these), for maps htab opens but did
 * not make. htab's own backends cover the hash family (src/uapi.ts MapType).
 */

import { BpfCmd } from "../uapi.js";
export const KERNEL_MAP_TYPE_NAMES: readonly string[] = [
  "unspec",
  "hash",
  "array",
  "prog_array",
  "perf_event_array",
  "percpu_hash",
  "percpu_array",
  "stack_trace",
  "cgroup_array",
  "lru_hash",
  "lru_percpu_hash",
  "lpm_trie",
  "array_of_maps",
  "hash_of_maps",
  "devmap",
  "sockmap",
  "cpumap",
  "xskmap",
  "sockhash",
  "cgroup_storage",
  "reuseport_sockarray",
  "percpu_cgroup_storage",
  "queue",
  "stack",
  "sk_storage",
  "devmap_hash",
  "struct_ops",
  "ringbuf",
  "inode_storage",
  "task_storage",
  "bloom_filter",
  "user_ringbuf",
  "cgrp_storage",
  "arena",
  "insn_array",
];

/** bpftool's name for map type `t` ("type 99" when the kernel has a newer one). */
export function kernelMapTypeName(t: number): string {
  return KERNEL_MAP_TYPE_NAMES[t] ?? `type ${t}`;
}

/** The map types whose values the control plane moves per CPU (bpftool's map_is_per_cpu()). */
export function kernelTypeIsPercpu(t: number): boolean {
  return t === 5 || t === 6 || t === 10 || t === 21;
}

/** The types KernelMap drives element calls on: the hash family and arrays htab implements, and the outer maps. */
export function kernelTypeSupported(t: number): boolean {
  return t === 1 || t === 2 || t === 5 || t === 6 || t === 9 || t === 10 || t === 12 || t === 13;
}

/** The element and batch commands, which KernelMap refuses on types it has no backend for. */
export const ELEMENT_CMDS = new Set<number>([
  BpfCmd.MapLookupElem,
  BpfCmd.MapUpdateElem,
  BpfCmd.MapDeleteElem,
  BpfCmd.MapGetNextKey,
  BpfCmd.MapLookupAndDeleteElem,
  BpfCmd.MapLookupBatch,
  BpfCmd.MapLookupAndDeleteBatch,
  BpfCmd.MapUpdateBatch,
  BpfCmd.MapDeleteBatch,
]);
