/**
 * Map creation parameters and their validation, in the kernel's order
 * (kernel: map_create() then htab_map_alloc_check() then htab_map_alloc()),
 * so that the first failing check gives the same errno the kernel gives.
 */

import { BpfError, Errno, showInput } from "../errors.js";
import { computeGeometry, type Geometry } from "../layout/geometry.js";
import { lruKind, MAX_TOTAL_BYTES } from "../layout/layout.js";
import type { MapSpec } from "../map/spec.js";
import {
  HTAB_CREATE_FLAG_MASK,
  KERNEL_HTAB_ELEM_SIZE,
  KMALLOC_MAX_SIZE,
  MapFlags,
  MapType,
} from "../uapi.js";
import type { WasmMemory } from "../wasm/fast-path.js";

export type { MapSpec };

/** Options only the SharedArrayBuffer backend has. */
export interface SabCreateOptions {
  /**
   * Number of possible CPUs: the worker slots that per-CPU freelists, extra
   * elements and per-CPU values are indexed by. Each attached thread takes one.
   * @default os.availableParallelism() in Node, else navigator.hardwareConcurrency, else 4
   */
  nrCpus?: number;
  /** Model CAP_SYS_ADMIN: required for `MapFlags.ZeroSeed`, as in the kernel. @default false */
  privileged?: boolean;
  /** CPU slot for the creating thread. @default the first free slot (0) */
  cpu?: number;
  /**
   * Put a preallocated map in a shared `WebAssembly.Memory` so that lookups,
   * updates and deletes run the wasm fast path (src/wasm/fast-path.ts) in
   * every thread that attaches with `htab.handle`. The buffer is then rounded
   * up to 64 KiB. `false` keeps a plain SharedArrayBuffer and the JS path.
   * @default true where the engine has wasm threads
   */
  fastPath?: boolean;
  /**
   * A shared `WebAssembly.Memory` of your own for the map, which then
   * starts at its byte 0 (grown if it is too small): for example one backed
   * by transparent huge pages (`hugePageMemory()` of `htab/kernel`). It must
   * not already hold a map. Not for BPF_F_NO_PREALLOC maps, which grow a
   * SharedArrayBuffer of their own.
   */
  memory?: WasmMemory;
  /**
   * Lay a preallocated HASH or PERCPU_HASH map out with home elements: bucket
   * i's record holds element i, and a key that gets its bucket's home element
   * is found in one cache line (docs/performance.md). What the map does is
   * the same either way; only where elements live differs.
   * @default true when the map's buckets and elements take 1 MiB or more
   * (smaller maps live in the caches, where home elements only cost time)
   */
  homeElements?: boolean;
}

/** NUMA nodes the SAB backend treats as online. JS cannot see the topology, so node 0 only. */
export const SAB_ONLINE_NUMA_NODES = 1;
const NUMA_NO_NODE = -1;
/** PCPU_MIN_UNIT_SIZE: the per-CPU value size limit. */
const PCPU_MIN_UNIT_SIZE = 32768;
/** n_buckets * sizeof(struct bucket) must fit in u32. */
const MAX_N_BUCKETS = Math.floor(0xffffffff / 16);

export function defaultNrCpus(): number {
  // Node: os.availableParallelism() (Node 20 has no navigator). The core imports no
  // Node module, so it asks process.getBuiltinModule(), which browsers lack.
  const proc = (
    globalThis as {
      process?: { getBuiltinModule?: (id: string) => { availableParallelism?: () => number } | undefined };
    }
  ).process;
  const os = typeof proc?.getBuiltinModule === "function" ? proc.getBuiltinModule("node:os") : undefined;
  const fromOs = typeof os?.availableParallelism === "function" ? os.availableParallelism() : 0;
  if (Number.isInteger(fromOs) && fromOs > 0) return fromOs;
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const n = nav?.hardwareConcurrency;
  return typeof n === "number" && n > 0 ? n : 4;
}

/**
 * The `cpu` option of create and attach: -1 (the first free slot) when
 * absent, else a slot in [0, nrCpus).
 * @throws BpfError EINVAL naming `op` (the user's call) for anything else
 */
export function cpuOption(op: string, cpu: unknown, nrCpus: number): number {
  if (cpu === undefined) return -1;
  if (typeof cpu !== "number" || !Number.isInteger(cpu) || cpu < 0 || cpu >= nrCpus)
    throw new BpfError(
      op,
      Errno.EINVAL,
      `cpu must be one of the ${nrCpus} CPU slots, an integer in [0, ${nrCpus}), got ${showInput(cpu)}`,
    );
  return cpu;
}

function isU32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function fail(errno: number, detail: string): never {
  throw new BpfError("create", errno, detail);
}

/**
 * BPF_F_NO_COMMON_LRU: max_entries rounded up to a multiple of the CPUs (down
 * if that overflows u32), so every CPU's list starts with as many elements.
 */
export function percpuLruMaxEntries(maxEntries: number, nrCpus: number): number {
  const up = (Math.ceil(maxEntries / nrCpus) * nrCpus) >>> 0;
  return up < maxEntries ? Math.floor(maxEntries / nrCpus) * nrCpus : up;
}

/**
 * The checks map_create() makes for every map type, in its order: integer
 * fields, access mode, then the NUMA node. Returns the NUMA node (-1 for none).
 */
function validateMapCreate(spec: MapSpec): number {
  if (spec === null || typeof spec !== "object") fail(Errno.EINVAL, "spec must be an object");
  const flags = spec.flags ?? 0;
  for (const [name, v] of [
    ["type", spec.type],
    ["keySize", spec.keySize],
    ["valueSize", spec.valueSize],
    ["maxEntries", spec.maxEntries],
    ["flags", flags],
  ] as const) {
    if (!isU32(v)) fail(Errno.EINVAL, `${name} must be an integer in [0, 2^32), got ${showInput(v)}`);
  }
  if ((flags & MapFlags.Rdonly) !== 0 && (flags & MapFlags.Wronly) !== 0)
    fail(Errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY are mutually exclusive");
  // attr->numa_node is zero when the caller leaves it out, so the flag alone means node 0.
  const numaNode = (flags & MapFlags.NumaNode) !== 0 ? (spec.numaNode ?? 0) | 0 : NUMA_NO_NODE;
  if (numaNode !== NUMA_NO_NODE && (numaNode < 0 || numaNode >= SAB_ONLINE_NUMA_NODES))
    fail(Errno.EINVAL, `NUMA node ${numaNode} is not online (the SAB backend has node 0 only)`);
  return numaNode;
}

/**
 * Validate `spec` as BPF_MAP_CREATE would and return the geometry.
 * @throws BpfError EPERM, EINVAL, E2BIG, ENOTSUPP (524), ENOMEM
 */
export function validateSpec(
  spec: MapSpec,
  nrCpus: number,
  privileged: boolean,
  homeElements?: boolean,
): Geometry {
  // A bpf_spin_lock outside the value is a BTF the kernel refuses at BPF_BTF_LOAD,
  // before BPF_MAP_CREATE checks anything else.
  const lockAt = spec.spinLockOffset;
  if (lockAt !== undefined && (!Number.isInteger(lockAt) || lockAt < 0 || lockAt + 4 > spec.valueSize))
    fail(Errno.EINVAL, `bpf_spin_lock at offset ${lockAt} is not inside the ${spec.valueSize}-byte value`);
  const numaNode = validateMapCreate(spec);
  const flags = spec.flags ?? 0;
  if (!Number.isInteger(nrCpus) || nrCpus < 1 || nrCpus > 1024)
    fail(Errno.EINVAL, `nrCpus must be an integer in [1, 1024], got ${showInput(nrCpus)}`);

  const t = spec.type;
  const known =
    t === MapType.Hash ||
    t === MapType.PercpuHash ||
    t === MapType.LruHash ||
    t === MapType.LruPercpuHash ||
    t === MapType.HashOfMaps;
  if (!known)
    fail(
      Errno.EINVAL,
      t === MapType.ArrayOfMaps
        ? "ARRAY_OF_MAPS lives in a MapDomain: create it with domain.createMap()"
        : `map type ${t} is not a hash map type htab implements`,
    );
  // fd_htab_map_alloc_check(): a hash of maps stores a u32 per key.
  if (t === MapType.HashOfMaps && spec.valueSize !== 4)
    fail(Errno.EINVAL, `a hash of maps has 4-byte values (inner map ids), not ${spec.valueSize}`);

  // htab_map_alloc_check()
  const percpu = t === MapType.PercpuHash || t === MapType.LruPercpuHash;
  const lru = t === MapType.LruHash || t === MapType.LruPercpuHash;
  const percpuLru = (flags & MapFlags.NoCommonLru) !== 0;
  const prealloc = (flags & MapFlags.NoPrealloc) === 0;
  if ((flags & MapFlags.ZeroSeed) !== 0 && !privileged)
    fail(Errno.EPERM, "BPF_F_ZERO_SEED needs CAP_SYS_ADMIN (pass privileged: true)");
  if ((flags & ~HTAB_CREATE_FLAG_MASK) !== 0)
    fail(Errno.EINVAL, `unknown or unsupported flags 0x${(flags & ~HTAB_CREATE_FLAG_MASK).toString(16)}`);
  if ((flags & MapFlags.RdonlyProg) !== 0 && (flags & MapFlags.WronlyProg) !== 0)
    fail(Errno.EINVAL, "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG are mutually exclusive");
  if (!lru && percpuLru) fail(Errno.EINVAL, "BPF_F_NO_COMMON_LRU is only for LRU maps");
  if (lru && !prealloc) fail(Errno.ENOTSUPP, "LRU maps cannot be BPF_F_NO_PREALLOC");
  if (numaNode !== NUMA_NO_NODE && (percpu || percpuLru))
    fail(Errno.EINVAL, "BPF_F_NUMA_NODE is not allowed for per-CPU maps or per-CPU LRU lists");
  if (spec.maxEntries === 0) fail(Errno.EINVAL, "max_entries must be > 0");
  if (spec.keySize === 0) fail(Errno.EINVAL, "key_size must be > 0");
  if (spec.valueSize === 0) fail(Errno.EINVAL, "value_size must be > 0");
  if (spec.keySize + spec.valueSize >= KMALLOC_MAX_SIZE - KERNEL_HTAB_ELEM_SIZE)
    fail(Errno.E2BIG, `key_size + value_size = ${spec.keySize + spec.valueSize} is over the kernel's limit`);
  if (percpu && Math.ceil(spec.valueSize / 8) * 8 > PCPU_MIN_UNIT_SIZE)
    fail(Errno.E2BIG, `per-CPU value_size ${spec.valueSize} is over ${PCPU_MIN_UNIT_SIZE}`);

  // htab_map_alloc(): per-CPU LRU lists get the same number of elements each.
  const maxEntries = percpuLru ? percpuLruMaxEntries(spec.maxEntries, nrCpus) : spec.maxEntries;
  if (maxEntries > 2 ** 31) fail(Errno.E2BIG, `max_entries ${spec.maxEntries} is over 2^31`);
  const g = computeGeometry(
    spec.keySize,
    spec.valueSize,
    maxEntries,
    nrCpus,
    percpu,
    prealloc,
    lruKind(t, flags),
    homeElements,
  );
  if (g.n_buckets > MAX_N_BUCKETS)
    fail(Errno.E2BIG, `max_entries ${spec.maxEntries} needs ${g.n_buckets} buckets, over the kernel's limit`);
  if (g.totalBytes > MAX_TOTAL_BYTES)
    fail(Errno.ENOMEM, `map needs ${g.totalBytes} bytes, over htab's ${MAX_TOTAL_BYTES}-byte limit`);
  // map_check_btf(), after allocation as in the kernel (docs/kernel-facts.md, t_lock.txt).
  const off = spec.spinLockOffset;
  if (off !== undefined) {
    if (!Number.isInteger(off) || off < 0 || off % 4 !== 0 || off + 4 > spec.valueSize)
      fail(
        Errno.EINVAL,
        `bpf_spin_lock at offset ${off} must be 4-byte aligned and inside the ${spec.valueSize}-byte value`,
      );
    // map_check_btf(): program access (EACCES) before the map types that allow a lock.
    if ((flags & (MapFlags.RdonlyProg | MapFlags.WronlyProg)) !== 0)
      fail(
        Errno.EACCES,
        "a value with bpf_spin_lock needs program read and write access (BPF_F_RDONLY_PROG / BPF_F_WRONLY_PROG)",
      );
    if (t !== MapType.Hash)
      fail(Errno.EOPNOTSUPP, "bpf_spin_lock is only allowed in BPF_MAP_TYPE_HASH values");
  }
  return g;
}

/** ARRAY_OF_MAPS flags htab accepts (kernel: array_map_alloc_check() and fd_array_map_alloc_check()). */
const AOM_FLAG_MASK =
  MapFlags.NumaNode | MapFlags.Rdonly | MapFlags.Wronly | MapFlags.RdonlyProg | MapFlags.WronlyProg;

/**
 * Validate an ARRAY_OF_MAPS spec as BPF_MAP_CREATE would (t_aom.txt).
 * @throws BpfError EINVAL, E2BIG
 */
export function validateArrayOfMapsSpec(spec: MapSpec): void {
  validateMapCreate(spec);
  const flags = spec.flags ?? 0;
  if (spec.keySize !== 4) fail(Errno.EINVAL, `an array of maps has 4-byte keys, not ${spec.keySize}`);
  if (spec.valueSize !== 4) fail(Errno.EINVAL, `an array of maps has 4-byte values, not ${spec.valueSize}`);
  if (spec.maxEntries === 0) fail(Errno.EINVAL, "max_entries must be > 0");
  if ((flags & ~AOM_FLAG_MASK) !== 0 || (flags & MapFlags.RdonlyProg && flags & MapFlags.WronlyProg) !== 0)
    fail(Errno.EINVAL, `flags 0x${flags.toString(16)} are not valid for an array of maps`);
  if (spec.maxEntries > 1 << 28) fail(Errno.E2BIG, `max_entries ${spec.maxEntries} is too large for htab`);
}
