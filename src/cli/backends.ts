/** Map factories for the CLI: the SAB backend as root sees it, or the real kernel. */

import { availableParallelism } from "node:os";
import { ArrayMap } from "../array/array-map.js";
import { type BtfDecl, btfDeclOf } from "../btf/write.js";
import { Htab } from "../core/htab.js";
import { MapDomain } from "../domain/map-domain.js";
import { pinThreadToCpu, possibleCpus } from "../kernel/bpf-syscall.js";
import { KernelMap } from "../kernel/kernel-map.js";
import * as codecs from "../map/codecs.js";
import type { RawMap } from "../map/raw-map.js";
import type { MapSpec } from "../map/spec.js";
import { isArray } from "../map/traits.js";
import { MapType } from "../uapi.js";
import type { MapFactory } from "./replay.js";

/**
 * The BTF that gives a kernel map what `spinLockOffset` gives a SAB map: a
 * key of key_size bytes, and a value struct with a bpf_spin_lock at that
 * offset (bytes around it).
 */
function spinLockBtf(spec: MapSpec): { key: BtfDecl; value: BtfDecl } {
  const u8 = btfDeclOf(codecs.u8);
  const bytes = (n: number): BtfDecl => ({ kind: "array", elem: u8, nelems: n });
  const off = spec.spinLockOffset as number;
  const members: { name: string; type: BtfDecl; offset: number }[] = [];
  if (off > 0) members.push({ name: "pad0", type: bytes(off), offset: 0 });
  members.push({ name: "lock", type: btfDeclOf(codecs.bpfSpinLock), offset: off });
  if (spec.valueSize > off + 4)
    members.push({ name: "pad1", type: bytes(spec.valueSize - off - 4), offset: off + 4 });
  return {
    // An array's key must be a 4-byte int in BTF (array_map_check_btf()).
    key: isArray(spec.type) ? btfDeclOf(codecs.u32) : bytes(spec.keySize),
    value: { kind: "struct", name: "htab_value", size: spec.valueSize, members },
  };
}

/** Possible CPUs as the kernel counts them, so per-CPU shapes agree across backends. */
export function machineCpus(): number {
  try {
    return possibleCpus();
  } catch {
    return availableParallelism();
  }
}

export type BackendName = "sab" | "kernel";

/**
 * Replay acts as root: SAB maps are privileged and this process is CPU 0.
 * For LRU maps the kernel side pins this thread to CPU 0, so the kernel's
 * per-CPU LRU lists are the ones CPU slot 0 uses on the SAB side.
 */
export function factoryFor(
  backend: BackendName,
  opts: { standalone?: boolean; fastPath?: boolean } = {},
): MapFactory {
  if (backend === "kernel")
    return (spec: MapSpec, inner: RawMap | undefined) => {
      if (spec.type === MapType.LruHash || spec.type === MapType.LruPercpuHash) pinThreadToCpu(0);
      return KernelMap.create(spec, {
        innerMap: inner instanceof KernelMap ? inner : undefined,
        btf: spec.spinLockOffset === undefined ? undefined : spinLockBtf(spec),
      });
    };
  // One MapDomain per replay session: map-in-map needs every map reachable by id.
  // `standalone`: hash maps are created on their own instead, as createMap()
  // makes them; such maps cannot go into an outer map. `fastPath: false`: the
  // JS path (no wasm memory).
  const nrCpus = machineCpus();
  let domain: MapDomain | null = null;
  return (spec: MapSpec, inner: RawMap | undefined) => {
    if (opts.standalone && isArray(spec.type))
      return ArrayMap.create(spec, { nrCpus, privileged: true, cpu: 0 });
    if (opts.standalone && spec.type !== MapType.ArrayOfMaps && spec.type !== MapType.HashOfMaps)
      return Htab.create(spec, { nrCpus, privileged: true, cpu: 0, fastPath: opts.fastPath });
    domain ??= MapDomain.create({
      nrCpus,
      privileged: true,
      cpu: 0,
      maxMaps: 4096,
      maxBytes: 1 << 30,
      fastPath: opts.fastPath,
    });
    return domain.createMap({ ...spec, innerMap: inner });
  };
}
