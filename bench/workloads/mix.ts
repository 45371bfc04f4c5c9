/** Read-heavy mix (98% lookups, 1% updates, 1% deletes) on 1 and 2 workers: htab against the global-lock map. */

import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { Htab, type MapHandle } from "../../src/core/htab.js";
import { MapType } from "../../src/uapi.js";
import { randomKeys } from "../keys.js";
import type { BenchOptions } from "../options.js";
import { NaiveLockMap } from "../peers/naive-lock-map.js";
import { PRIVATE_MAPS, type ThroughputResult } from "../report.js";

/** Read-heavy mix on 1 and 2 workers, htab versus the global-lock map and the unshared control. */
export async function mixThroughput(entries: number, o: BenchOptions): Promise<ThroughputResult[]> {
  const script = fileURLToPath(new URL("../peers/mix-worker.js", import.meta.url));
  const keys = randomKeys(entries, 5);
  const out: ThroughputResult[] = [];
  const seconds = o.quick ? 0.4 : 1.5;
  const reps = o.quick ? 2 : 3;
  // "private": each worker runs the same mix on its own V8 Map, sharing nothing: how
  // far two workers can scale on this machine at all (the control for htab's figure).
  for (const kind of ["htab", "naive", "private"] as const) {
    for (const workers of [1, 2]) {
      const rates: number[] = [];
      for (let r = 0; r < reps; r++) {
        let handle: MapHandle;
        let htab: Htab | null = null;
        if (kind === "htab") {
          htab = Htab.create(
            { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries },
            { nrCpus: 3, fastPath: !o.jsPath },
          );
          const k = new Uint8Array(4);
          const v = new Uint8Array(8);
          for (let i = 0; i < entries; i++) {
            new DataView(k.buffer).setUint32(0, keys[i], true);
            htab.updateElem(k, v, 0);
          }
          handle = htab.handle; // the whole handle: workers run the wasm fast path
        } else if (kind === "private") {
          handle = { sab: new SharedArrayBuffer(8) }; // unused: each worker builds its own Map
        } else {
          const nm = new NaiveLockMap(entries);
          for (let i = 0; i < entries; i++) nm.set(keys[i], 1, 0);
          handle = { sab: nm.sab };
        }
        const ctl = new SharedArrayBuffer(12);
        const c32 = new Int32Array(ctl);
        const done = Array.from(
          { length: workers },
          (_, i) =>
            new Promise<number>((resolve, reject) => {
              const w = new Worker(script, {
                workerData: { kind, handle, keys, n: entries, ctl, seed: 77 + i * 31 },
              });
              w.once("message", resolve);
              w.once("error", reject);
            }),
        );
        while (Atomics.load(c32, 0) < workers) await new Promise((res) => setTimeout(res, 2));
        const t0 = performance.now();
        Atomics.store(c32, 1, 1);
        Atomics.notify(c32, 1);
        await new Promise((res) => setTimeout(res, seconds * 1000));
        Atomics.store(c32, 2, 1);
        const ops = (await Promise.all(done)).reduce((a, b) => a + b, 0);
        rates.push(ops / ((performance.now() - t0) / 1000));
        htab?.close();
      }
      rates.sort((a, b) => a - b);
      out.push({
        workload: "read-heavy mix 98/1/1",
        entries,
        peer: kind === "htab" ? "htab" : kind === "naive" ? "naive SAB + global lock" : PRIVATE_MAPS,
        workers,
        unit: "ops/s",
        median: rates[rates.length >> 1],
        min: rates[0],
        max: rates[rates.length - 1],
        reps,
      });
    }
  }
  return out;
}
