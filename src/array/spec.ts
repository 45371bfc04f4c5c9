/**
 * ARRAY and PERCPU_ARRAY creation checks in the kernel's order (kernel:
 * map_create(), then array_map_alloc_check(), array_map_alloc() and
 * map_check_btf()), so the first failing check gives the kernel's errno
 * (probed on 6.18: test/kernel/differential.array.test.ts).
 */

import { cpuOption, SAB_ONLINE_NUMA_NODES } from "../core/spec.js";
import { BpfError, Errno, showInput } from "../errors.js";
import { type ArrayGeometry, arrayGeometry, MAX_TOTAL_BYTES } from "../layout/layout.js";
import type { MapSpec } from "../map/spec.js";
import { ARRAY_CREATE_FLAG_MASK, MapFlags, MapType } from "../uapi.js";

export { cpuOption };

/** PCPU_MIN_UNIT_SIZE: the per-CPU value size limit. */
const PCPU_MIN_UNIT_SIZE = 32768;
const INT_MAX = 0x7fffffff;
const NUMA_NO_NODE = -1;

function fail(errno: number, detail: string): never {
  throw new BpfError("create", errno, detail);
}

function isU32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

/**
 * Validate an ARRAY or PERCPU_ARRAY spec as BPF_MAP_CREATE would and return
 * its geometry for `nrCpus` CPU slots.
 * @throws BpfError EINVAL, E2BIG, EACCES, EOPNOTSUPP (a bpf_spin_lock where the kernel refuses one), ENOMEM
 */
export function validateArraySpec(spec: MapSpec, nrCpus: number): ArrayGeometry {
  if (spec === null || typeof spec !== "object") fail(Errno.EINVAL, "spec must be an object");
  // A bpf_spin_lock outside the value is a BTF the kernel refuses at BPF_BTF_LOAD, before map_create().
  const lockAt = spec.spinLockOffset;
  if (lockAt !== undefined && (!Number.isInteger(lockAt) || lockAt < 0 || lockAt + 4 > spec.valueSize))
    fail(
      Errno.EINVAL,
      `bpf_spin_lock at offset ${showInput(lockAt)} is not inside the ${spec.valueSize}-byte value`,
    );
  const flags = spec.flags ?? 0;
  for (const [name, v] of [
    ["type", spec.type],
    ["keySize", spec.keySize],
    ["valueSize", spec.valueSize],
    ["maxEntries", spec.maxEntries],
    ["flags", flags],
  ] as const)
    if (!isU32(v)) fail(Errno.EINVAL, `${name} must be an integer in [0, 2^32), got ${showInput(v)}`);
  if (!Number.isInteger(nrCpus) || nrCpus < 1 || nrCpus > 1024)
    fail(Errno.EINVAL, `nrCpus must be an integer in [1, 1024], got ${showInput(nrCpus)}`);
  // map_create(): the access mode, then the NUMA node.
  if ((flags & MapFlags.Rdonly) !== 0 && (flags & MapFlags.Wronly) !== 0)
    fail(Errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY are mutually exclusive");
  const numaNode = (flags & MapFlags.NumaNode) !== 0 ? (spec.numaNode ?? 0) | 0 : NUMA_NO_NODE;
  if (numaNode !== NUMA_NO_NODE && (numaNode < 0 || numaNode >= SAB_ONLINE_NUMA_NODES))
    fail(Errno.EINVAL, `NUMA node ${numaNode} is not online (the SAB backend has node 0 only)`);
  const percpu = spec.type === MapType.PercpuArray;
  if (!percpu && spec.type !== MapType.Array)
    fail(Errno.EINVAL, `map type ${spec.type} is not ARRAY or PERCPU_ARRAY`);
  // array_map_alloc_check()
  if (spec.maxEntries === 0) fail(Errno.EINVAL, "max_entries must be > 0");
  if (spec.keySize !== 4) fail(Errno.EINVAL, `an array has 4-byte (u32 index) keys, not ${spec.keySize}`);
  if (spec.valueSize === 0) fail(Errno.EINVAL, "value_size must be > 0");
  if ((flags & ~ARRAY_CREATE_FLAG_MASK) !== 0)
    fail(
      Errno.EINVAL,
      `flags 0x${(flags & ~ARRAY_CREATE_FLAG_MASK).toString(16)} are not valid for an array`,
    );
  if ((flags & MapFlags.RdonlyProg) !== 0 && (flags & MapFlags.WronlyProg) !== 0)
    fail(Errno.EINVAL, "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG are mutually exclusive");
  if (percpu && numaNode !== NUMA_NO_NODE)
    fail(Errno.EINVAL, "BPF_F_NUMA_NODE is not allowed for a per-CPU array");
  if (percpu && (flags & (MapFlags.Mmapable | MapFlags.InnerMap)) !== 0)
    fail(Errno.EINVAL, "BPF_F_MMAPABLE and BPF_F_INNER_MAP are for ARRAY only");
  if ((flags & MapFlags.PreserveElems) !== 0)
    fail(Errno.EINVAL, "BPF_F_PRESERVE_ELEMS is for PERF_EVENT_ARRAY only");
  if (spec.valueSize > INT_MAX) fail(Errno.E2BIG, `value_size ${spec.valueSize} is over INT_MAX`);
  if (percpu && Math.ceil(spec.valueSize / 8) * 8 > PCPU_MIN_UNIT_SIZE)
    fail(Errno.E2BIG, `per-CPU value_size ${spec.valueSize} is over ${PCPU_MIN_UNIT_SIZE}`);
  // array_map_alloc(): every element now, zeroed.
  const g = arrayGeometry(percpu, spec.valueSize, spec.maxEntries, nrCpus);
  if (g.totalBytes > MAX_TOTAL_BYTES)
    fail(Errno.ENOMEM, `the array needs ${g.totalBytes} bytes, over htab's ${MAX_TOTAL_BYTES}-byte limit`);
  // map_check_btf(): a bpf_spin_lock needs program access both ways, and a map type that allows one.
  if (lockAt !== undefined) {
    if (lockAt % 4 !== 0) fail(Errno.EINVAL, `bpf_spin_lock at offset ${lockAt} must be 4-byte aligned`);
    if ((flags & (MapFlags.RdonlyProg | MapFlags.WronlyProg)) !== 0)
      fail(Errno.EACCES, "a value with a bpf_spin_lock needs program read and write access");
    if (percpu) fail(Errno.EOPNOTSUPP, "bpf_spin_lock is not allowed in PERCPU_ARRAY values");
  }
  return g;
}
