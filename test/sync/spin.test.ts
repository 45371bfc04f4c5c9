/**
 * The waiting primitives every lock stands on (sync/spin.ts): the bound is
 * the kernel's rqspinlock RES_DEF_TIMEOUT, the stall handler is per map
 * buffer, a relax never writes, and Node threads (main and workers) may block.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import {
  cpuRelax,
  LOCK_TIMEOUT_MS,
  lockTimeoutText,
  nowMs,
  SPIN_LIMIT,
  STALL_WAITS,
  setStallHandler,
  stalled,
  threadCanBlock,
} from "../../src/sync/spin.js";

test("the wait bound is the kernel's 250 ms (rqspinlock RES_DEF_TIMEOUT) and the message says so", () => {
  assert.equal(LOCK_TIMEOUT_MS, 250);
  assert.equal(
    lockTimeoutText("the lock of bucket 3", "held by CPU slot 1"),
    "timed out after 250 ms waiting for the lock of bucket 3, held by CPU slot 1",
  );
  assert.ok(SPIN_LIMIT > 0 && STALL_WAITS > 0);
});

test("stalled() runs the handler registered for that very buffer view, and only it", () => {
  const a = new Int32Array(new SharedArrayBuffer(16));
  const b = new Int32Array(new SharedArrayBuffer(16));
  const aliasOfA = new Int32Array(a.buffer);
  const calls: string[] = [];
  stalled(a); // nothing registered: a no-op
  setStallHandler(a, () => calls.push("a"));
  setStallHandler(b, () => calls.push("b"));
  stalled(a);
  stalled(b);
  stalled(a);
  stalled(aliasOfA); // another view of the same buffer is another map handle
  assert.deepEqual(calls, ["a", "b", "a"]);
  setStallHandler(a, () => calls.push("a2"));
  stalled(a);
  assert.deepEqual(calls, ["a", "b", "a", "a2"], "a later registration replaces the earlier one");
});

test("cpuRelax reads and never writes", () => {
  const i32 = new Int32Array(new SharedArrayBuffer(16));
  i32.set([5, -1, 7, 9]);
  for (let i = 0; i < 4; i++) cpuRelax(i32, i);
  assert.deepEqual(Array.from(i32), [5, -1, 7, 9]);
});

test("nowMs never runs backwards", () => {
  let last = nowMs();
  for (let i = 0; i < 10_000; i++) {
    const t = nowMs();
    assert.ok(t >= last);
    last = t;
  }
});

test("Node's main thread and its workers may block (Atomics.wait), so waiters sleep instead of spinning", async () => {
  assert.equal(threadCanBlock(), true);
  assert.equal(threadCanBlock(), true, "decided once, the same answer");
  const url = new URL("../../src/sync/spin.js", import.meta.url).href;
  const w = new Worker(
    `import(${JSON.stringify(url)}).then((m) => require("node:worker_threads").parentPort.postMessage(m.threadCanBlock()));`,
    { eval: true },
  );
  const answer = await new Promise((resolve, reject) => {
    w.once("message", resolve);
    w.once("error", reject);
  });
  await w.terminate();
  assert.equal(answer, true);
});
