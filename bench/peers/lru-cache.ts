/** lru-cache: the LRU Node users pick (exact LRU; htab and the kernel evict approximately). */
import { ORDER_MASK } from "../keys.js";
import type { PointPeer } from "../peer.js";

export async function lruCachePeer(present: Uint32Array, max: number): Promise<PointPeer> {
  const { LRUCache } = await import("lru-cache");
  const lc = new LRUCache<number, bigint>({ max });
  for (let i = 0; i < present.length; i++) lc.set(present[i], 1n);
  return {
    name: "lru-cache",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) if (lc.get(keys[ord[(pos + i) & ORDER_MASK]]) !== undefined) hits++;
      return hits;
    },
    insertStream(keys, pos, n) {
      for (let i = 0, p = pos % keys.length; i < n; i++, p = p + 1 === keys.length ? 0 : p + 1)
        lc.set(keys[p], 7n);
    },
    close() {},
  };
}
