/**
 * A reference held by ANOTHER thread's program section is never reused
 * under it, whatever this thread's own section allows (core/held-refs.ts
 * lets a thread reuse at once only what no other open section can reach).
 * A worker on CPU slot 1 enters a section and holds lookupRef(key 3) while
 * reading it in a loop; the main thread deletes key 3 and other keys and
 * inserts new ones, inside its own section and outside, on HASH and
 * LRU_HASH maps, on the wasm and JS paths. The worker's reads must all see
 * key 3's value; the inserts that would need its element fail (E2BIG /
 * ENOMEM, naming the worker's section) until the worker's section ends,
 * then succeed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { Htab } from "../../src/core/htab.js";
import { MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const MAX = 8;
const KEY = 3;

interface Held {
  reads: number;
  wrong: number;
  found: boolean;
}

/** Start the holder and wait (bounded) until its reference is taken. */
async function holder(m: Htab, ctl: SharedArrayBuffer): Promise<{ done: Promise<Held> }> {
  const w = new Worker(new URL("../fixtures/ref-holder-worker.js", import.meta.url), {
    workerData: { handle: m.handle, cpu: 1, ctl, key: KEY, fill: KEY },
  });
  const done = new Promise<Held>((resolve, reject) => {
    w.once("message", resolve);
    w.once("error", reject);
  });
  const c = new Int32Array(ctl);
  const until = Date.now() + 10_000;
  while (Atomics.load(c, 0) === 0) {
    if (Date.now() > until) throw new Error("the holder did not take its reference within 10 s");
    await new Promise((r) => setTimeout(r, 5));
  }
  return { done };
}

for (const type of [MapType.Hash, MapType.LruHash])
  for (const fastPath of [true, false]) {
    const name = `${type === MapType.Hash ? "HASH" : "LRU_HASH"} (${fastPath ? "wasm" : "JS"} path)`;
    test(`${name}: a key another thread's section references, deleted here, is never reused under its reference`, {
      timeout: 60_000,
    }, async () => {
      const m = Htab.create(
        { type, keySize: 4, valueSize: 8, maxEntries: MAX },
        { nrCpus: 2, cpu: 0, fastPath, privileged: true },
      );
      for (let k = 0; k < MAX; k++) assert.equal(m.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
      const ctl = new SharedArrayBuffer(8);
      const { done } = await holder(m, ctl);
      let failed = 0;
      try {
        // Inside this thread's own section (which never referenced key 3): the other section is open,
        // so nothing it may reach is reused.
        m.enter();
        try {
          assert.equal(m.deleteElem(u32(KEY)), 0);
          for (let k = 100; k < 104; k++) {
            const r = m.updateElemFromProgram(u32(k), new Uint8Array(8).fill(k), 0);
            if (r !== 0) {
              failed++;
              assert.equal(r, type === MapType.Hash ? -7 : -12, m.lastError);
            }
            // Delete what went in (elements the holder never saw, but its section is open: they wait too).
            if (r === 0) assert.equal(m.deleteElem(u32(k)), 0);
          }
        } finally {
          m.exit();
        }
        // Outside a section: the grace wait (bounded) finds the holder's section still open.
        for (let k = 200; k < 203; k++) {
          const r = m.updateElem(u32(k), new Uint8Array(8).fill(k), 0);
          if (r !== 0) {
            failed++;
            assert.match(m.lastError, /CPU slot 1's program section is still open|program section/);
          }
        }
        assert.ok(failed > 0, "some insert needed the held element (else the test shows nothing)");
      } finally {
        Atomics.store(new Int32Array(ctl), 1, 1);
      }
      const held = await done;
      assert.equal(held.found, true);
      assert.ok(held.reads > 0);
      assert.equal(
        held.wrong,
        0,
        `${held.wrong} of ${held.reads} reads through the reference saw another value`,
      );
      // The holder's section ended: its element is reused.
      assert.equal(m.updateElem(u32(300), new Uint8Array(8).fill(1), 0), 0, m.lastError);
      const f = m.fsck();
      assert.ok(f.ok, f.errors.join("; "));
      m.close();
    });
  }
