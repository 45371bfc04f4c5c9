/** The real kernel map through bpf(): one syscall per operation (htab/kernel's KernelMap). */

import type { KernelMap } from "../../src/kernel/kernel-map.js";
import type { MapSpec } from "../../src/map/spec.js";
import { loadKernel, ORDER_MASK, putU32 } from "../keys.js";
import type { PointPeer } from "../peer.js";

/** A kernel map of `spec` holding `present`, or null when bpf() is not usable here. */
export async function kernelMap(spec: MapSpec, present: Uint32Array): Promise<KernelMap | null> {
  const kern = await loadKernel();
  if (kern === null) return null;
  const km = kern.KernelMap.create(spec);
  const k = new Uint8Array(4);
  const v = new Uint8Array(km.valueBytes);
  for (let i = 0; i < present.length; i++) {
    putU32(k, present[i]);
    km.updateElem(k, v, 0);
  }
  return km;
}

export function kernelPeer(km: KernelMap): PointPeer {
  const k = new Uint8Array(4);
  const v = new Uint8Array(km.valueBytes);
  return {
    name: "kernel bpf()",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        if (km.lookupElem(k, v, 0) === 0) hits++;
      }
      return hits;
    },
    update(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        km.updateElem(k, v, 0);
      }
    },
    insertDelete(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        km.updateElem(k, v, 0);
        km.deleteElem(k);
      }
    },
    insertStream(keys, pos, n) {
      for (let i = 0, p = pos % keys.length; i < n; i++, p = p + 1 === keys.length ? 0 : p + 1) {
        putU32(k, keys[p]);
        km.updateElem(k, v, 0);
      }
    },
    close: () => km.close(),
  };
}
