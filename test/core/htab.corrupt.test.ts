/**
 * Hostile or damaged shared memory: a corruption fuzzer scribbles on one word
 * of a live map (chain links, bucket heads, freelist heads and links, EXTRA,
 * INFLIGHT, lock words, counts, home states) and then calls every kind of
 * operation on it. Every call returns a result or a BpfError within a bound,
 * no other map of the domain changes, and fsck() describes the damage that a
 * call reported as EUCLEAN. Runs in a worker under a watchdog: a hang fails.
 * HTAB_CORRUPT_ROUNDS sets the rounds per configuration (npm run soak: more).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { MapType } from "../../src/uapi.js";
import { CALLS, KINDS } from "../helpers/corrupt-kinds.js";

const ROUNDS = Number(process.env.HTAB_CORRUPT_ROUNDS ?? 30);
/**
 * A call that has not returned by then is stuck (a wait or walk without a
 * bound): every lock wait gives up after 250 ms, and a call makes a few.
 */
const STUCK_MS = 5_000;

interface Summary {
  rounds: number;
  calls: number;
  outcomes: Record<string, number>;
  foreign: number;
  untyped: number;
  untypedSamples: string[];
  slowest: number;
  fsckSilent: number;
  kinds: Record<string, number>;
}

function fuzz(type: number, fastPath: boolean, seed: number): Promise<Summary | string> {
  const progress = new SharedArrayBuffer(16);
  const w = new Worker(new URL("../fixtures/corrupt-worker.js", import.meta.url), {
    workerData: { rounds: ROUNDS, seed, fastPath, type, progress },
  });
  const where = new Int32Array(progress);
  return new Promise((resolve, reject) => {
    let seen = -1;
    let since = Date.now();
    const dog = setInterval(() => {
      const calls = Atomics.load(where, 3);
      if (calls !== seen) {
        seen = calls;
        since = Date.now();
      } else if (Date.now() - since > STUCK_MS) {
        clearInterval(dog);
        void w.terminate();
        resolve(`hang: round ${where[0]}, damage ${KINDS[where[1]]}, call ${CALLS[where[2]]}`);
      }
    }, 250);
    w.once("message", (m: Summary) => {
      clearInterval(dog);
      void w.terminate();
      resolve(m);
    });
    w.once("error", (e) => {
      clearInterval(dog);
      reject(e);
    });
  });
}

for (const [name, type] of [
  ["HASH", MapType.Hash],
  ["LRU_HASH", MapType.LruHash],
] as const) {
  for (const fastPath of [true, false]) {
    test(`corruption fuzzer, ${name}, ${fastPath ? "wasm fast path" : "JS path"}: no hang, no foreign write, typed errors, fsck sees it`, async (t) => {
      const s = await fuzz(type, fastPath, 0x5eed + type * 7 + (fastPath ? 1 : 0));
      if (typeof s === "string") assert.fail(`a call on the damaged map never returned (${s})`);
      t.diagnostic(
        `${s.rounds} rounds, ${s.calls} calls, outcomes ${JSON.stringify(s.outcomes)}, damage kinds ${JSON.stringify(s.kinds)}, slowest call ${s.slowest.toFixed(0)} ms`,
      );
      assert.equal(s.foreign, 0, "a call on map A changed map B");
      assert.equal(s.untyped, 0, `errors that are not BpfError: ${s.untypedSamples.join("; ")}`);
      assert.equal(s.fsckSilent, 0, "a call answered EUCLEAN but fsck() reported nothing");
      assert.ok(s.slowest < 5000, `a call took ${s.slowest} ms`);
    });
  }
}
