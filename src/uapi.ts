/**
 * Constants named 1:1 after include/uapi/linux/bpf.h, so that a kernel reader
 * finds what they expect. Values are the kernel's ABI values.
 */

/** `enum bpf_map_type` (the subset htab implements or reaches through bpf()). */
export const MapType = {
  Hash: 1,
  Array: 2,
  PercpuHash: 5,
  PercpuArray: 6,
  LruHash: 9,
  LruPercpuHash: 10,
  ArrayOfMaps: 12,
  HashOfMaps: 13,
} as const;
export type MapType = (typeof MapType)[keyof typeof MapType];

/** Map creation flags (`BPF_F_*` accepted by BPF_MAP_CREATE). */
export const MapFlags = {
  NoPrealloc: 1 << 0,
  NoCommonLru: 1 << 1,
  NumaNode: 1 << 2,
  Rdonly: 1 << 3,
  Wronly: 1 << 4,
  StackBuildId: 1 << 5,
  ZeroSeed: 1 << 6,
  RdonlyProg: 1 << 7,
  WronlyProg: 1 << 8,
  Clone: 1 << 9,
  Mmapable: 1 << 10,
  PreserveElems: 1 << 11,
  InnerMap: 1 << 12,
  Link: 1 << 13,
  PathFd: 1 << 14,
  VtypeBtfObjFd: 1 << 15,
  TokenFd: 1 << 16,
  SegvOnFault: 1 << 17,
  NoUserConv: 1 << 18,
} as const;

/** Element update flags (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`, `BPF_F_LOCK`). */
export const UpdateFlags = {
  Any: 0,
  NoExist: 1,
  Exist: 2,
  Lock: 4,
} as const;

/**
 * Whether update `flags` has BPF_F_LOCK. Flags are the kernel's u64, here any
 * integer up to 2^53: arithmetic, not `&` (which keeps only the low 32 bits).
 */
export function hasLockFlag(flags: number): boolean {
  return Math.floor(flags / UpdateFlags.Lock) % 2 === 1;
}

/** Update `flags` without BPF_F_LOCK, every higher bit kept: above BPF_EXIST means unknown flags (EINVAL). */
export function withoutLockFlag(flags: number): number {
  return hasLockFlag(flags) ? flags - UpdateFlags.Lock : flags;
}

/** `enum bpf_cmd` values used by the kernel backend. */
export const BpfCmd = {
  MapCreate: 0,
  MapLookupElem: 1,
  MapUpdateElem: 2,
  MapDeleteElem: 3,
  MapGetNextKey: 4,
  ProgLoad: 5,
  ObjPin: 6,
  ObjGet: 7,
  ProgTestRun: 10,
  MapGetNextId: 12,
  MapGetFdById: 14,
  ObjGetInfoByFd: 15,
  BtfLoad: 18,
  BtfGetFdById: 19,
  MapLookupAndDeleteElem: 21,
  MapFreeze: 22,
  MapLookupBatch: 24,
  MapLookupAndDeleteBatch: 25,
  MapUpdateBatch: 26,
  MapDeleteBatch: 27,
} as const;

/** Flags valid at map creation for the hash family (kernel: HTAB_CREATE_FLAG_MASK). */
export const HTAB_CREATE_FLAG_MASK =
  MapFlags.NoPrealloc |
  MapFlags.NoCommonLru |
  MapFlags.NumaNode |
  MapFlags.Rdonly |
  MapFlags.Wronly |
  MapFlags.ZeroSeed |
  MapFlags.RdonlyProg |
  MapFlags.WronlyProg;

/**
 * Flags valid at map creation for ARRAY and PERCPU_ARRAY (kernel:
 * ARRAY_CREATE_FLAG_MASK; array_map_alloc_check() then refuses BPF_F_MMAPABLE
 * and BPF_F_INNER_MAP on PERCPU_ARRAY, and BPF_F_PRESERVE_ELEMS on both).
 */
export const ARRAY_CREATE_FLAG_MASK =
  MapFlags.NumaNode |
  MapFlags.Mmapable |
  MapFlags.Rdonly |
  MapFlags.Wronly |
  MapFlags.RdonlyProg |
  MapFlags.WronlyProg |
  MapFlags.PreserveElems |
  MapFlags.InnerMap;

/** Lower-case kernel type names without the BPF_MAP_TYPE_ prefix (the `htab replay` names). */
export const MAP_TYPE_NAMES: Record<string, MapType> = {
  hash: MapType.Hash,
  array: MapType.Array,
  percpu_array: MapType.PercpuArray,
  percpu_hash: MapType.PercpuHash,
  lru_hash: MapType.LruHash,
  lru_percpu_hash: MapType.LruPercpuHash,
  array_of_maps: MapType.ArrayOfMaps,
  hash_of_maps: MapType.HashOfMaps,
};

/** KMALLOC_MAX_SIZE on x86-64 (4 MiB), which bounds key_size + value_size. */
export const KMALLOC_MAX_SIZE = 4 * 1024 * 1024;
/** sizeof(struct htab_elem) in the kernel (BTF of 6.18), used by the E2BIG size check. */
export const KERNEL_HTAB_ELEM_SIZE = 48;
