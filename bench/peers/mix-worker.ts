/**
 * Read-heavy mix on a shared map: 98% lookup hits, 1% update of an existing
 * key, 1% delete followed by re-insert (so the key set stays fixed).
 * Runs until the stop flag is set and reports its operation count.
 */
import { parentPort, workerData } from "node:worker_threads";
import { xorshift32 } from "../../src/check/xorshift.js";
import { Htab, type MapHandle } from "../../src/core/htab.js";
import { NaiveLockMap } from "./naive-lock-map.js";

const d = workerData as {
  kind: "htab" | "naive" | "private";
  handle: MapHandle;
  keys: Uint32Array;
  n: number;
  ctl: SharedArrayBuffer;
  seed: number;
};
const ctl = new Int32Array(d.ctl); // [0] ready count, [1] go, [2] stop
const next = xorshift32(d.seed);
let ops = 0;
Atomics.add(ctl, 0, 1);
while (Atomics.load(ctl, 1) === 0) Atomics.wait(ctl, 1, 0, 5);
if (d.kind === "htab") {
  const m = Htab.attach(d.handle);
  const k = new Uint8Array(4);
  const kv = new DataView(k.buffer);
  const v = new Uint8Array(8);
  while (Atomics.load(ctl, 2) === 0) {
    for (let i = 0; i < 1024; i++) {
      const r = next() % 100;
      kv.setUint32(0, d.keys[next() % d.n], true);
      if (r < 98) m.lookupElem(k, v, 0);
      else if (r < 99) m.updateElem(k, v, 2);
      else {
        m.deleteElem(k);
        m.updateElem(k, v, 0);
      }
    }
    ops += 1024;
  }
  m.close();
} else if (d.kind === "private") {
  // The same mix on a Map of this worker's own: no memory shared with the other worker.
  const m = new Map<number, number>();
  for (let i = 0; i < d.n; i++) m.set(d.keys[i], 0);
  let sink = 0;
  while (Atomics.load(ctl, 2) === 0) {
    for (let i = 0; i < 1024; i++) {
      const r = next() % 100;
      const key = d.keys[next() % d.n];
      if (r < 98) sink += m.get(key) ?? 0;
      else if (r < 99) m.set(key, 1);
      else {
        m.delete(key);
        m.set(key, 1);
      }
    }
    ops += 1024;
  }
  if (sink < 0) ops = 0; // keeps the reads
} else {
  const m = new NaiveLockMap(d.handle.sab);
  const out = new Int32Array(2);
  while (Atomics.load(ctl, 2) === 0) {
    for (let i = 0; i < 1024; i++) {
      const r = next() % 100;
      const key = d.keys[next() % d.n];
      if (r < 98) m.get(key, out);
      else if (r < 99) m.set(key, 1, 0);
      else {
        m.delete(key);
        m.set(key, 1, 0);
      }
    }
    ops += 1024;
  }
}
parentPort!.postMessage(ops);
