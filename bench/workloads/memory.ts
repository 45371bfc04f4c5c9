/** Bytes per entry for each map type: htab's shared memory against the kernel's memlock for the same map. */
import { machineCpus } from "../../src/cli/backends.js";
import { Htab } from "../../src/core/htab.js";
import { syscallValueBytes } from "../../src/layout/layout.js";
import type { RawMap } from "../../src/map/raw-map.js";
import type { MapSpec } from "../../src/map/spec.js";
import { MapFlags, MapType } from "../../src/uapi.js";
import { loadKernel } from "../keys.js";
import type { BenchOptions } from "../options.js";
import type { MemoryResult } from "../report.js";

/** Bytes per entry for each map type, htab and the kernel's memlock for the same map. */
export async function memory(entries: number, o: BenchOptions): Promise<MemoryResult[]> {
  const kern = await loadKernel();
  const cases: { type: string; spec: MapSpec; fill: number }[] = [
    { type: "hash", spec: { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries }, fill: 0 },
    {
      type: "percpu_hash",
      spec: { type: MapType.PercpuHash, keySize: 4, valueSize: 8, maxEntries: entries },
      fill: 0,
    },
    {
      type: "lru_hash",
      spec: { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: entries },
      fill: 0,
    },
    {
      type: "lru_hash NO_COMMON_LRU",
      spec: {
        type: MapType.LruHash,
        keySize: 4,
        valueSize: 8,
        maxEntries: entries,
        flags: MapFlags.NoCommonLru,
      },
      fill: 0,
    },
    {
      type: "lru_percpu_hash",
      spec: { type: MapType.LruPercpuHash, keySize: 4, valueSize: 8, maxEntries: entries },
      fill: 0,
    },
    {
      type: "hash NO_PREALLOC (half full)",
      spec: { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries, flags: MapFlags.NoPrealloc },
      fill: entries >> 1,
    },
  ];
  const cpus = machineCpus();
  const out: MemoryResult[] = [];
  for (const c of cases) {
    const k = new Uint8Array(4);
    const v = new Uint8Array(syscallValueBytes(c.spec.type, c.spec.valueSize, cpus));
    const fillUp = (m: RawMap) => {
      for (let i = 0; i < c.fill; i++) {
        new DataView(k.buffer).setUint32(0, i, true);
        m.updateElem(k, v, 0);
      }
    };
    const h = Htab.create(c.spec, { nrCpus: cpus, fastPath: !o.jsPath });
    fillUp(h);
    const htabBytesPerEntry = h.memoryUsage() / entries;
    h.close();
    let kernelBytesPerEntry: number | null = null;
    if (kern) {
      const km = kern.KernelMap.create(c.spec);
      fillUp(km);
      kernelBytesPerEntry = km.memoryUsage() / entries;
      km.close();
    }
    out.push({
      type: c.type,
      entries,
      htabBytesPerEntry,
      kernelBytesPerEntry,
      ratio: kernelBytesPerEntry ? htabBytesPerEntry / kernelBytesPerEntry : null,
    });
  }
  return out;
}
