/** lmdb-js: what Node users reach for when threads must share data (a memory-mapped B-tree). */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ORDER_MASK } from "../keys.js";
import type { PointPeer } from "../peer.js";

/** An lmdb-js database holding `present`, or null when lmdb is not installed. */
export async function lmdbPeer(present: Uint32Array): Promise<PointPeer | null> {
  let lmdb: typeof import("lmdb");
  try {
    lmdb = await import("lmdb");
  } catch {
    return null;
  }
  const path = join(process.env.TMPDIR ?? "/tmp", `htab-bench-lmdb-${process.pid}-${present.length}`);
  const db = lmdb.open({ path, keyEncoding: "uint32", encoding: "binary", noSync: true, cache: false });
  const val = Buffer.alloc(8);
  db.transactionSync(() => {
    for (let i = 0; i < present.length; i++) db.putSync(present[i], val);
  });
  return {
    name: "lmdb-js",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++)
        if (db.getBinaryFast(keys[ord[(pos + i) & ORDER_MASK]]) !== undefined) hits++;
      return hits;
    },
    update(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) db.putSync(keys[ord[(pos + i) & ORDER_MASK]], val);
    },
    insertDelete(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) {
        const k = keys[ord[(pos + i) & ORDER_MASK]];
        db.putSync(k, val);
        db.removeSync(k);
      }
    },
    async close() {
      await db.close();
      rmSync(path, { recursive: true, force: true });
    },
  };
}
