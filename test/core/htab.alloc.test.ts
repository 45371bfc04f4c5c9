/** The hot path allocates nothing: 10^5 lookups, updates and deletes with caller buffers. */
import assert from "node:assert/strict";
import { PerformanceObserver } from "node:perf_hooks";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Htab } from "../../src/core/htab.js";
import { MapType } from "../../src/uapi.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

test("lookupElem/updateElem/deleteElem allocate nothing per call", async () => {
  const m = Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 1024 }, { nrCpus: 1 });
  const k = new Uint8Array(4);
  const kv = new DataView(k.buffer);
  const v = new Uint8Array(8);
  for (let i = 0; i < 1000; i++) {
    kv.setUint32(0, i, true);
    m.updateElem(k, v, 0);
  }
  const run = (n: number) => {
    let hits = 0;
    for (let i = 0; i < n; i++) {
      kv.setUint32(0, i & 2047, true);
      if (m.lookupElem(k, v, 0) === 0) hits++;
      if ((i & 15) === 0) {
        m.deleteElem(k);
        m.updateElem(k, v, 0);
      }
    }
    return hits;
  };
  run(200_000); // warm up and let the JIT settle
  const N = 2_000_000;
  gc();
  let scavenges = 0;
  let t0 = 0;
  let t1 = Number.POSITIVE_INFINITY;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const minor = (e as unknown as { detail?: { kind?: number } }).detail?.kind === 1;
      if (minor && e.startTime >= t0 && e.startTime <= t1) scavenges++;
    }
  });
  obs.observe({ entryTypes: ["gc"] });
  const before = process.memoryUsage().heapUsed;
  t0 = performance.now();
  const hits = run(N);
  t1 = performance.now();
  const grown = process.memoryUsage().heapUsed - before;
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  console.log(
    `# alloc: ${N} lookups (+ ${N / 16} delete/insert pairs): ${scavenges} scavenges, heap grew ${grown} bytes`,
  );
  assert.ok(hits > 0);
  // Even 8 bytes per call would be 16 MB: several young-generation collections.
  assert.equal(scavenges, 0, "the hot path allocated enough to trigger a scavenge");
  assert.ok(grown < 4_000_000, `heap grew ${grown} bytes`);
});
