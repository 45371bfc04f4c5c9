/**
 * Multi-worker stress: random mixed operations on a small, colliding key space
 * from several real worker threads; every operation is logged with call/return
 * tickets and the history is checked for linearizability key by key.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeHistory } from "../../src/check/history.js";
import { checkHistory } from "../../src/check/linearizability.js";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";
import { runWorkers, startBarrier } from "../helpers/workers.js";

const WORKERS = Number(process.env.HTAB_STRESS_WORKERS ?? 3);
const OPS = Number(process.env.HTAB_STRESS_OPS ?? 40_000);

for (const [keys, maxEntries, type, extra] of [
  [6, 6, MapType.Hash, 0],
  [12, 16, MapType.Hash, 0],
  [6, 6, MapType.PercpuHash, 0],
  [6, 6, MapType.Hash, MapFlags.NoPrealloc],
]) {
  const kind = `${type === MapType.PercpuHash ? "PERCPU_HASH" : "HASH"}${extra ? " NO_PREALLOC" : ""}`;
  test(`stress ${kind}: ${WORKERS} workers x ${OPS} ops on ${keys} keys (max_entries ${maxEntries}) are linearizable`, async () => {
    const map = Htab.create(
      { type, keySize: 4, valueSize: 8, maxEntries, flags: MapFlags.ZeroSeed | extra },
      { privileged: true, nrCpus: WORKERS + 1 },
    );
    const clock = new SharedArrayBuffer(4);
    const start = startBarrier(WORKERS);
    const logs = await runWorkers<Int32Array>(
      new URL("../fixtures/stress-worker.js", import.meta.url),
      WORKERS,
      (i) => ({
        sab: map.handle.sab,
        clock,
        start,
        id: i + 1,
        ops: OPS,
        keys,
        seed: 0x9e3779b9 * (i + 1) + keys,
      }),
    );
    const { ops, torn } = decodeHistory(logs);
    const res = checkHistory(ops);
    const tally = (kind: number, result: number) =>
      ops.filter((o) => o.kind === kind && o.result === result).length;
    const cad = { ok: tally(4, 0), busy: tally(4, -16), absent: tally(4, -2) };
    const cas = { ok: tally(5, 0), busy: tally(5, -16), absent: tally(5, -2) };
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
  });
}
