/**
 * Many workers, one compiled object: the handle posted to N workers, each
 * attaching on its own CPU slot of the object's one memory and running the
 * seed-003 program R times while the main thread runs it too. The global
 * counter (__sync_fetch_and_add: a wasm atomic on shared memory) and the
 * map value's count (incremented under the value's bpf_spin_lock, taken in
 * wasm or waited for in JS) both end at exactly (N + 1) x R.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { LoadedObject } from "../../../src/bpf/object.js";
import { clangSkipReason, compileFixture } from "../kernel-object.js";

const skip = clangSkipReason();

test("seed 003 compiled on 4 CPU slots at once (3 workers and the main thread): counters are N x R exactly", {
  skip,
}, async () => {
  const R = 3000;
  const N = 3;
  const obj = LoadedObject.load(compileFixture("seed003"), {
    name: "seed003",
    nrCpus: N + 1,
    engine: "compiled",
  });
  const prog = obj.program("sys_enter_count");
  assert.equal(prog.engine, "compiled");
  const worker = new URL("../../fixtures/bpf/object-worker.js", import.meta.url);
  const runs = Array.from(
    { length: N },
    (_, i) =>
      new Promise<{ retval: number; cpu: number }>((resolve, reject) => {
        const w = new Worker(worker, {
          workerData: { handle: obj.handle(), cpu: i + 1, program: "sys_enter_count", repeat: R },
        });
        w.once("message", resolve);
        w.once("error", reject);
      }),
  );
  for (let i = 0; i < R / 100; i++) assert.equal(prog.run(new Uint8Array(64), { repeat: 100 }).retval, 2);
  const done = await Promise.all(runs);
  assert.deepEqual(
    done.map((d) => [d.retval, d.cpu]),
    Array.from({ length: N }, (_, i) => [2, i + 1]),
  );
  const bss = obj.global(".bss").bytes;
  assert.equal(new DataView(bss.buffer, bss.byteOffset, 8).getBigUint64(0, true), BigInt((N + 1) * R));
  const v = new Uint8Array(8);
  assert.equal(obj.map("concurrent_map").lookupElem(new Uint8Array(4), v), 0);
  assert.equal(new DataView(v.buffer).getInt32(4, true), (N + 1) * R);
  assert.equal(new DataView(v.buffer).getInt32(0, true), 0, "the spin lock is free");
});
