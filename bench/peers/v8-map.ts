/** V8's Map<number, bigint>: the single-thread ceiling, what a user would use without sharing. */
import { ORDER_MASK } from "../keys.js";
import type { PointPeer } from "../peer.js";

export function v8MapPeer(present: Uint32Array): PointPeer {
  const m = new Map<number, bigint>();
  for (let i = 0; i < present.length; i++) m.set(present[i], BigInt(i));
  return {
    name: "V8 Map",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) if (m.get(keys[ord[(pos + i) & ORDER_MASK]]) !== undefined) hits++;
      return hits;
    },
    update(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) m.set(keys[ord[(pos + i) & ORDER_MASK]], 7n);
    },
    insertDelete(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) {
        const k = keys[ord[(pos + i) & ORDER_MASK]];
        m.set(k, 7n);
        m.delete(k);
      }
    },
    close() {},
  };
}
