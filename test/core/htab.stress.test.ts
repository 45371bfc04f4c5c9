/**
 * Multi-worker stress: random mixed operations on a small, colliding key space
 * from several real worker threads; every operation is logged with call/return
 * tickets and the history is checked for linearizability key by key.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { checkEvictionHistory } from "../../src/check/eviction.js";
import { decodeHistory } from "../../src/check/history.js";
import { checkHistory } from "../../src/check/linearizability.js";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";
import { runWorkers, startBarrier } from "../helpers/workers.js";

const WORKERS = Number(process.env.HTAB_STRESS_WORKERS ?? 3);
/** Run WORKERS stress workers on `map` (keys 0..keys-1), released together; returns their logs. */
function stress(map: Htab, keys: number, seed: (i: number) => number): Promise<Int32Array[]> {
  const clock = new SharedArrayBuffer(4);
  const start = startBarrier(WORKERS);
  return runWorkers<Int32Array>(new URL("../fixtures/stress-worker.js", import.meta.url), WORKERS, (i) => ({
    // Odd workers run the wasm fast path (when the map has it), even ones the JS path: both on one map.
    handle: i % 2 === 0 ? map.handle : { sab: map.handle.sab },
    clock,
    start,
    id: i + 1,
    ops: OPS,
    keys,
    seed: seed(i),
  }));
}

const NAMES: Record<number, string> = {
  [MapType.Hash]: "HASH",
  [MapType.PercpuHash]: "PERCPU_HASH",
  [MapType.LruHash]: "LRU_HASH",
  [MapType.LruPercpuHash]: "LRU_PERCPU_HASH",
};
/** 3 workers x 60 000 x 6 maps: 1.08 million operations checked per `npm test` (npm run soak: 10.8 million). */
const OPS = Number(process.env.HTAB_STRESS_OPS ?? 60_000);
let linearizableOps = 0;
after(() => {
  if (linearizableOps > 0)
    console.log(
      `# linearizability: ${linearizableOps} operations of multi-worker histories checked (HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH, NO_PREALLOC), 0 violations`,
    );
});

for (const [keys, maxEntries, type, extra] of [
  [6, 6, MapType.Hash, 0],
  [12, 16, MapType.Hash, 0],
  [6, 6, MapType.PercpuHash, 0],
  [6, 6, MapType.Hash, MapFlags.NoPrealloc],
  // LRU maps far below capacity never evict, so they must be as linearizable as HASH.
  [6, 64, MapType.LruHash, 0],
  [6, 64, MapType.LruPercpuHash, MapFlags.NoCommonLru],
] as const) {
  const kind = `${NAMES[type]}${extra === MapFlags.NoPrealloc ? " NO_PREALLOC" : extra ? " NO_COMMON_LRU" : ""}`;
  test(`stress ${kind}: ${WORKERS} workers x ${OPS} ops on ${keys} keys (max_entries ${maxEntries}) are linearizable`, async () => {
    const map = Htab.create(
      { type, keySize: 4, valueSize: 8, maxEntries, flags: MapFlags.ZeroSeed | extra },
      { privileged: true, nrCpus: WORKERS + 1, homeElements: true },
    );
    const logs = await stress(map, keys, (i) => 0x9e3779b9 * (i + 1) + keys);
    const { ops, torn } = decodeHistory(logs);
    const res = checkHistory(ops);
    const tally = (kind: number, result: number) =>
      ops.filter((o) => o.kind === kind && o.result === result).length;
    const cad = { ok: tally(4, 0), busy: tally(4, -16), absent: tally(4, -2) };
    const cas = { ok: tally(5, 0), busy: tally(5, -16), absent: tally(5, -2) };
    const computes = ops.filter((o) => o.kind === 6);
    const toggles = {
      inserted: computes.filter((o) => o.result === -1).length,
      deleted: computes.filter((o) => o.result >= 0 || o.result < -99).length,
    };
    console.log(`# stress keys=${keys}: compute toggles ${JSON.stringify(toggles)}`);
    assert.ok(toggles.inserted > 0 && toggles.deleted > 0, "compute was exercised both ways");
    console.log(
      `# stress keys=${keys}: compareAndDelete ${JSON.stringify(cad)}, compareAndSwap ${JSON.stringify(cas)}`,
    );
    assert.ok(
      cad.ok > 0 && cad.busy > 0 && cas.ok > 0 && cas.busy > 0,
      "compare ops were exercised both ways",
    );
    console.log(
      `# stress ${kind} keys=${keys}: ${res.ops} operations checked, ${res.badKeys.length} keys with violations, ${res.inconclusive.length} inconclusive, ${torn} torn reads`,
    );
    assert.equal(torn, 0);
    assert.deepEqual(res.badKeys, [], "linearizability violations");
    assert.deepEqual(res.inconclusive, []);
    const f = map.fsck();
    assert.ok(f.ok, f.errors.join("; "));
    assert.equal(res.ops, WORKERS * OPS);
    linearizableOps += res.ops;
  });
}

/**
 * LRU maps over capacity (40 keys, 8 entries): evictions are legal at any
 * moment, so the check is what LRU still promises (src/check/eviction.ts):
 * no read returns another key's value or a value already overwritten or
 * removed, no torn value, the map never holds more than max_entries, and
 * the lists and chains are sound afterwards.
 */
for (const [type, extra] of [
  [MapType.LruHash, 0],
  [MapType.LruHash, MapFlags.NoCommonLru],
  [MapType.LruPercpuHash, 0],
] as const) {
  const kind = `${NAMES[type]}${extra ? " NO_COMMON_LRU" : ""}`;
  test(`stress ${kind} over capacity: ${WORKERS} workers x ${OPS} ops on 40 keys in 8 entries evict soundly`, async () => {
    const map = Htab.create(
      { type, keySize: 4, valueSize: 8, maxEntries: 8, flags: MapFlags.ZeroSeed | extra },
      { privileged: true, nrCpus: WORKERS + 1 },
    );
    const logs = await stress(map, 40, (i) => 0x51ed27 * (i + 1));
    const { ops, torn } = decodeHistory(logs);
    const r = checkEvictionHistory(ops);
    const misses = ops.filter((o) => o.kind === 0 && o.result === -1).length;
    console.log(
      `# stress ${kind} over capacity: ${ops.length} operations, ${r.reads} reads with a value, ${misses} misses, ${r.foreign} foreign, ${r.stale} stale, ${torn} torn, count ${map.count()}`,
    );
    assert.equal(torn, 0);
    assert.equal(r.foreign, 0);
    assert.equal(r.stale, 0);
    assert.ok(r.reads > 100 && misses > 100, "both hits and evictions happened");
    assert.ok(map.count() <= map.info.maxEntries);
    const f = map.fsck();
    assert.ok(f.ok, f.errors.join("; "));
  });
}
