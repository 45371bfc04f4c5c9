/** Program-side references, atomics and spin locks across real worker threads. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { MapType } from "../../src/uapi.js";
import { runWorkers, startBarrier } from "../helpers/workers.js";

const script = new URL("../fixtures/program-worker.js", import.meta.url);
const READS = Number(process.env.HTAB_REF_READS ?? 1_200_000);

test(`references held during delete/re-insert churn never show another key's data (${READS} reads)`, async () => {
  const map = Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8 }, { nrCpus: 4 });
  const stop = new SharedArrayBuffer(4);
  const start = startBarrier(3);
  const res = await runWorkers<Record<string, number>>(script, 3, (i) => ({
    role: i === 0 ? "refs" : "churn",
    handle: map.handle,
    start,
    stop,
    keys: 12,
    iters: READS,
    seed: 3 + i * 101,
  }));
  const r = res[0];
  const writes = res[1].writes + res[2].writes;
  console.log(
    `# refs: ${r.reads} reads through references in ${r.sections} sections during ${writes} re-inserts: ${r.foreign} of another key`,
  );
  assert.ok(writes > 0 && r.reads >= READS);
  assert.equal(r.foreign, 0);
  const f = map.fsck();
  assert.ok(f.ok, f.errors.join("; "));
});

test("fetch_add from several workers on the same fields gives exact sums", async () => {
  const W = 3;
  const N = 200_000;
  const map = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 16, maxEntries: 4 },
    { nrCpus: W + 1 },
  );
  map.updateElem(new Uint8Array(4), new Uint8Array(16), 0);
  const start = startBarrier(W);
  await runWorkers(script, W, (i) => ({
    role: "count",
    handle: map.handle,
    start,
    stop: new SharedArrayBuffer(4),
    keys: 1,
    iters: N,
    seed: i + 1,
  }));
  const v = new Uint8Array(16);
  map.lookupElem(new Uint8Array(4), v);
  const dv = new DataView(v.buffer);
  console.log(
    `# atomics: ${W} workers x ${N}: u32 ${dv.getUint32(0, true)}, u64 ${dv.getBigUint64(8, true)}`,
  );
  assert.equal(dv.getUint32(0, true), W * N);
  assert.equal(dv.getBigUint64(8, true), BigInt(W * N * 3));
});

test("spin-locked multi-field updates keep a == b in every snapshot", async () => {
  const W = 3;
  const N = 50_000;
  const map = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 16, maxEntries: 4, spinLockOffset: 0 },
    { nrCpus: W + 1 },
  );
  map.updateElem(new Uint8Array(4), new Uint8Array(16), 0);
  const start = startBarrier(W);
  const res = await runWorkers<Record<string, number>>(script, W, (i) => ({
    role: "locked",
    handle: map.handle,
    start,
    stop: new SharedArrayBuffer(4),
    keys: 1,
    iters: N,
    seed: i + 1,
  }));
  const bad = res.reduce((a, r) => a + r.bad, 0);
  const checks = res.reduce((a, r) => a + r.checks, 0);
  const v = new Uint8Array(16);
  map.lookupElem(new Uint8Array(4), v, 4);
  const dv = new DataView(v.buffer);
  console.log(`# spin lock: ${checks} snapshots, ${bad} with a != b; a = ${dv.getUint32(4, true)}`);
  assert.equal(bad, 0);
  assert.equal(dv.getUint32(4, true), W * N);
  assert.equal(dv.getUint32(8, true), W * N);
  assert.equal(dv.getUint32(0, true), 0, "the lock word reads as 0");
});
