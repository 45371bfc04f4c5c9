/**
 * Worker lifecycle (issue 24 findings 1-3): shutting down with every worker
 * terminated at once, on every map type and in a MapDomain; a watched
 * worker that forgot its `{ cpu }`, never attached, or closed before its
 * exit event ran.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { MapType } from "../../src/uapi.js";

const ROUNDS = Number(process.env.HTAB_LIFECYCLE_ROUNDS ?? 30);
const driver = new URL("../fixtures/lifecycle-driver.js", import.meta.url);

/** Run the driver; fail (and terminate it) when a round takes longer than `roundMs`: a hang. */
function runDriver(
  data: Record<string, unknown>,
  roundMs: number,
): Promise<{ rounds: number; fsckErrors: string[]; recovered: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(driver, { workerData: data });
    let last = "start";
    let timer: NodeJS.Timeout;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        void w.terminate();
        reject(new Error(`hung after ${last}: no round finished within ${roundMs} ms`));
      }, roundMs);
    };
    arm();
    w.on("message", (m) => {
      if (typeof m === "string") {
        last = m;
        arm();
      } else {
        clearTimeout(timer);
        resolve(m);
      }
    });
    w.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

for (const [name, type, domain] of [
  ["LRU_HASH", MapType.LruHash, false],
  ["LRU_PERCPU_HASH", MapType.LruPercpuHash, false],
  ["HASH", MapType.Hash, false],
  ["PERCPU_HASH", MapType.PercpuHash, false],
  ["LRU_HASH in a MapDomain", MapType.LruHash, true],
] as const)
  test(`${name}: two watched workers terminated at once, ${ROUNDS} rounds: every reap returns, slots free, fsck clean`, {
    timeout: 600_000,
  }, async () => {
    const r = await runDriver({ type, domain, rounds: ROUNDS, workers: 2, maxEntries: 256 }, 20_000);
    assert.deepEqual(r.fsckErrors, []);
    assert.equal(r.rounds, ROUNDS);
    console.log(`# ${name}: ${r.rounds} rounds, ${r.recovered} locks/operations recovered`);
  });
