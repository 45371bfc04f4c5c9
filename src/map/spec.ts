/** The map description both backends accept (cilium/ebpf: MapSpec). */

import type { MapType } from "../uapi.js";

/** What both backends accept to create a map. A plain object, as cilium/ebpf's MapSpec. */
export interface MapSpec {
  /**
   * `MapType.Hash`, … A number outside `MapType` does not compile; the
   * kernel's answer to one (EINVAL) is reached with a cast (`99 as MapType`).
   */
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /**
   * The kernel map's name (at most 15 of [A-Za-z0-9_.]), as bpftool shows it.
   * The kernel backend's default is "htab"; the SAB backend keeps no name.
   */
  name?: string;
  /** `MapFlags.*` ORed together. @default 0 */
  flags?: number;
  /** Only read when `MapFlags.NumaNode` is set, as in the kernel. @default -1 (NUMA_NO_NODE) */
  numaNode?: number;
  /**
   * Byte offset of a `struct bpf_spin_lock` (4 bytes, 4-aligned) in the value:
   * what the kernel learns from the value's BTF. Enables BPF_F_LOCK and
   * ValueRef.lock(). Hash maps only (EOPNOTSUPP for per-CPU and LRU maps).
   */
  spinLockOffset?: number;
}
