/** BPF_F_NO_PREALLOC: memory grows with use, not with max_entries, and every worker sees the growth. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);

test("a NO_PREALLOC map starts small, grows as keys arrive, and reuses freed elements", () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 100_000, flags: MapFlags.NoPrealloc },
    { nrCpus: 2 },
  );
  const pre = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 100_000 },
    { nrCpus: 2 },
  );
  const empty = m.memoryUsage();
  assert.ok(empty < pre.memoryUsage() / 2, `empty: ${empty} bytes vs preallocated ${pre.memoryUsage()}`);
  const v = new Uint8Array(8);
  for (let i = 0; i < 20_000; i++) assert.equal(m.updateElem(u32(i), v, 0), 0);
  const grown = m.memoryUsage();
  assert.ok(grown > empty + 20_000 * 32, `grew to ${grown}`);
  for (let i = 0; i < 20_000; i++) m.deleteElem(u32(i));
  for (let i = 0; i < 20_000; i++) m.updateElem(u32(i + 1_000_000), v, 0);
  assert.equal(m.memoryUsage(), grown, "freed elements are reused before the buffer grows again");
  assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
});

test("NO_PREALLOC full map: E2BIG for a new key, a replace still works (kernel: is_map_full())", () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 2, flags: MapFlags.NoPrealloc },
    { nrCpus: 2 },
  );
  const v = new Uint8Array(8);
  assert.equal(m.updateElem(u32(1), v, 0), 0);
  assert.equal(m.updateElem(u32(2), v, 0), 0);
  assert.equal(m.updateElem(u32(3), v, 0), -7);
  assert.equal(m.updateElem(u32(3), v, 1), -7);
  assert.equal(m.updateElem(u32(3), v, 2), -2);
  assert.equal(m.updateElem(u32(1), new Uint8Array(8).fill(9), 0), 0);
  assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
});

test("a worker's inserts grow the buffer, and the creating thread reads them", async () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 50_000, flags: MapFlags.NoPrealloc },
    { nrCpus: 2 },
  );
  const before = m.memoryUsage();
  const src = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(${JSON.stringify(new URL("../../src/index.js", import.meta.url).href)}).then(({ attach }) => {
      const m = attach(workerData);
      const k = new Uint8Array(4), v = new Uint8Array(8);
      for (let i = 0; i < 30000; i++) { new DataView(k.buffer).setUint32(0, i, true); v[0] = i & 255; m.updateElem(k, v, 0); }
      m.close();
      parentPort.postMessage("done");
    });`;
  const w = new Worker(src, { eval: true, workerData: m.handle });
  await new Promise((r) => w.once("message", r));
  assert.ok(m.memoryUsage() > before);
  const out = new Uint8Array(8);
  for (let i = 0; i < 30_000; i += 997) {
    assert.equal(m.lookupElem(u32(i), out), 0);
    assert.equal(out[0], i & 255);
  }
  assert.equal(m.count(), 30_000);
  assert.ok(m.fsck().ok);
});
