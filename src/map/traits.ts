/**
 * Map type traits, named once (kernel: htab_is_lru(), htab_is_percpu(),
 * htab_has_extra_elems(); cilium/ebpf: types.go's hasPerCPUValue()). Every
 * layer asks these instead of comparing type numbers.
 */

import { MapFlags, MapType } from "../uapi.js";

/**
 * PERCPU_HASH, LRU_PERCPU_HASH and PERCPU_ARRAY keep one value per possible
 * CPU (kernel: htab_is_percpu(), and bpftool's map_is_per_cpu()).
 */
export function isPercpu(type: number): boolean {
  return type === MapType.PercpuHash || type === MapType.LruPercpuHash || type === MapType.PercpuArray;
}

/** ARRAY and PERCPU_ARRAY: u32 index keys, every element preallocated and never deleted (kernel: arraymap.c). */
export function isArray(type: number): boolean {
  return type === MapType.Array || type === MapType.PercpuArray;
}

/** LRU_HASH and LRU_PERCPU_HASH evict instead of answering E2BIG (kernel: htab_is_lru()). */
export function isLru(type: number): boolean {
  return type === MapType.LruHash || type === MapType.LruPercpuHash;
}

/** ARRAY_OF_MAPS and HASH_OF_MAPS store maps (kernel: the map-in-map types). */
export function isOuter(type: number): boolean {
  return type === MapType.ArrayOfMaps || type === MapType.HashOfMaps;
}

/**
 * A preallocated map that replaces a key by a new element keeps one extra
 * element per CPU for it (kernel: htab_has_extra_elems(): not per-CPU, not LRU).
 */
export function hasExtraElems(type: number, flags: number): boolean {
  return (flags & MapFlags.NoPrealloc) === 0 && !isPercpu(type) && !isLru(type);
}

/**
 * Whether an update of a present key overwrites its value where it is
 * (kernel: htab_map_update_elem_in_place(): per-CPU values, and a hash of
 * maps' inner map pointers) instead of linking a new element.
 */
export function valuesInPlace(type: number): boolean {
  return isPercpu(type) || type === MapType.HashOfMaps;
}
