/**
 * Hostile or damaged shared memory: a corruption fuzzer scribbles on one word
 * of a live map (chain and list links, list heads, element headers, lock
 * words held by no live slot, counts, epoch and limbo words, LRU node and
 * list words: test/helpers/corrupt-kinds.ts) and then calls every kind of
 * operation on it: quietly, or ("live") while two operator worker_threads
 * run calls on the same map and one of them owns a neighbour map. Every call
 * returns a result or a BpfError within a bound, no other map of the domain
 * changes, and fsck() describes the damage that a call reported as EUCLEAN.
 * Runs in a worker under a watchdog: a hang fails. HTAB_CORRUPT_ROUNDS sets
 * the quiet rounds per configuration (live: a tenth; npm run soak: more).
 * Prints a `# corrupt:` line per configuration and one for the whole file.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Worker } from "node:worker_threads";
import { MapType } from "../../src/uapi.js";
import type { Summary } from "../fixtures/corrupt-worker.js";
import { CALLS, KINDS } from "../helpers/corrupt-kinds.js";

const ROUNDS = Number(process.env.HTAB_CORRUPT_ROUNDS ?? 10);
const LIVE_ROUNDS = Math.max(2, Math.ceil(ROUNDS / 10));
/**
 * A call that has not returned by then is stuck (a wait or walk without a
 * bound): every lock wait gives up after 250 ms, and a call makes a few.
 */
const STUCK_MS = 5_000;

const total = { calls: 0, rounds: 0, kinds: new Set<string>(), hangs: 0, foreign: 0, untyped: 0, slowest: 0 };

function fuzz(type: number, fastPath: boolean, live: boolean, seed: number): Promise<Summary | string> {
  const progress = new SharedArrayBuffer(16);
  const w = new Worker(new URL("../fixtures/corrupt-worker.js", import.meta.url), {
    workerData: {
      role: "fuzz",
      mode: live ? "live" : "quiet",
      rounds: live ? LIVE_ROUNDS : ROUNDS,
      seed,
      fastPath,
      type,
      progress,
    },
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
    for (const live of [false, true]) {
      const how = `${name}, ${fastPath ? "wasm fast path" : "JS path"}, ${live ? "damage written while 2 workers operate" : "quiet"}`;
      test(`corruption fuzzer, ${how}: no hang, no foreign write, typed errors, fsck sees it`, async (t) => {
        const s = await fuzz(type, fastPath, live, 0x5eed + type * 7 + (fastPath ? 1 : 0) + (live ? 2 : 0));
        if (typeof s === "string") assert.fail(`a call on the damaged map never returned (${s})`);
        total.calls += s.calls;
        total.rounds += s.rounds;
        for (const k of Object.keys(s.kinds)) total.kinds.add(k);
        total.hangs += s.hangs;
        total.foreign += s.foreign;
        total.untyped += s.untyped;
        total.slowest = Math.max(total.slowest, s.slowest);
        t.diagnostic(`outcomes ${JSON.stringify(s.outcomes)}, damage kinds ${JSON.stringify(s.kinds)}`);
        console.log(
          `# corrupt: ${how}: ${s.rounds} rounds, ${s.calls} calls, ${Object.keys(s.kinds).length} damage kinds, ` +
            `hangs ${s.hangs}, foreign-map writes ${s.foreign}, untyped errors ${s.untyped}, ` +
            `fsck reported damage in ${s.fsckSaw} rounds (silent after EUCLEAN: ${s.fsckSilent}${s.fsckSilent > 0 ? ` ${s.silentKinds.join(", ")}` : ""}), slowest call ${s.slowest.toFixed(0)} ms`,
        );
        assert.equal(s.hangs, 0, "an operator worker never answered");
        assert.equal(s.foreign, 0, "a call on map A changed map B or C");
        assert.equal(s.untyped, 0, `errors that are not BpfError: ${s.untypedSamples.join("; ")}`);
        // Live, the operators' own writes can overwrite the damaged word before fsck() runs (a
        // node's type, a count): the rounds where that happened are printed, not failed.
        if (!live) assert.equal(s.fsckSilent, 0, "a call answered EUCLEAN but fsck() reported nothing");
        assert.ok(s.slowest < STUCK_MS, `a call took ${s.slowest} ms`);
      });
    }
  }
}

after(() => {
  console.log(
    `# corrupt: total: ${total.rounds} rounds, ${total.calls} calls, ${total.kinds.size} damage kinds, ` +
      `hangs ${total.hangs}, foreign-map writes ${total.foreign}, untyped errors ${total.untyped}, slowest call ${total.slowest.toFixed(0)} ms`,
  );
});
