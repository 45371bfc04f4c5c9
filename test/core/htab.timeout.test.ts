/**
 * Bounded waits with real worker_threads (the kernel's rqspinlock rule since
 * 6.15: a lock not taken within 250 ms fails with ETIMEDOUT). A lookup never
 * waits for a lock holder; a writer of the same bucket gives up with
 * ETIMEDOUT and changes nothing; a holder that died and was never reaped
 * makes waiters time out instead of hanging.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { Htab } from "../../src/core/htab.js";
import { readGeometry } from "../../src/layout/geometry.js";
import { BUCKET_HEAD_I32, BUCKET_SEQLOCK_I32 } from "../../src/layout/layout.js";
import { SEQ_WRITING } from "../../src/sync/bucket-seqlock.js";
import { LOCK_TIMEOUT_MS } from "../../src/sync/spin.js";
import { MapType } from "../../src/uapi.js";

const script = new URL("../fixtures/stall-worker.js", import.meta.url);
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const HOLD_MS = 2000;

function startHolder(map: Htab, key: number, forever: boolean) {
  const ctl = new SharedArrayBuffer(16);
  const c = new Int32Array(ctl);
  const w = new Worker(script, { workerData: { handle: map.handle, ctl, key, holdMs: HOLD_MS, forever } });
  const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
  const cpu = new Promise<number>((resolve) => w.once("message", (m: { cpu: number }) => resolve(m.cpu)));
  return { w, c, exited, cpu };
}

/** Wait until the holder is inside its compute() callback (holding the bucket lock). */
async function inCallback(c: Int32Array): Promise<void> {
  while (Atomics.load(c, 0) === 0) await new Promise((r) => setTimeout(r, 5));
}

/** Map contents as hex pairs, for "unchanged" checks. */
function contents(map: Htab): string[] {
  const out: string[] = [];
  const k = new Uint8Array(map.info.keySize);
  const v = new Uint8Array(map.info.valueBytes);
  let prev: Uint8Array | null = null;
  while (map.getNextKey(prev, k) === 0) {
    assert.equal(map.lookupElem(k, v), 0);
    out.push(`${Buffer.from(k).toString("hex")}=${Buffer.from(v).toString("hex")}`);
    prev = k.slice();
  }
  return out;
}

for (const [name, fastPath] of [
  ["wasm fast path", true],
  ["JS path", false],
] as const)
  test(`a 2 s compute() in a worker: lookups of its bucket do not wait, an update of the key times out after ${LOCK_TIMEOUT_MS} ms with nothing changed (${name})`, {
    timeout: 20_000,
  }, async () => {
    // One bucket: every key shares the holder's bucket.
    const map = Htab.create(
      { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 1 },
      { nrCpus: 4, fastPath },
    );
    const v = new Uint8Array(8).fill(1);
    assert.equal(map.updateElem(u32(7), v), 0);
    const before = contents(map);
    const h = startHolder(map, 7, false);
    await inCallback(h.c);
    const out = new Uint8Array(8);
    let t = performance.now();
    for (let i = 0; i < 1000; i++) assert.equal(map.lookupElem(u32(7), out), 0);
    const lookupMs = (performance.now() - t) / 1000;
    assert.deepEqual(out, v, "the lookup sees the value before the callback's result");
    assert.equal(map.lookupElem(u32(8), out), -2);
    assert.equal(Atomics.load(h.c, 2), 0, "the lookups returned while the holder still held the lock");
    t = performance.now();
    const r = map.updateElem(u32(7), new Uint8Array(8).fill(2));
    const updateMs = performance.now() - t;
    assert.equal(r, -110, `update: ${map.lastError}`);
    assert.match(
      map.lastError,
      /timed out after 250 ms waiting for the lock of bucket 0, held by CPU slot \d/,
    );
    assert.equal(Atomics.load(h.c, 2), 0, "the update gave up while the holder still held the lock");
    assert.equal(map.deleteElem(u32(7)), -110);
    assert.equal(map.compareAndSwapElem(u32(7), v, v), -110);
    assert.deepEqual(contents(map), before, "a timed-out call changed the map");
    console.log(
      `# ${name}: lookup during a 2 s compute(): ${lookupMs.toFixed(4)} ms each; update gave up (ETIMEDOUT) after ${updateMs.toFixed(0)} ms`,
    );
    Atomics.store(h.c, 1, 1);
    Atomics.notify(h.c, 1);
    await h.exited;
    assert.equal(Atomics.load(h.c, 2), 1, "the holder's compute() succeeded");
    assert.equal(map.lookupElem(u32(7), out), 0);
    assert.deepEqual(out, new Uint8Array(8).fill(0xab));
    assert.ok(map.fsck().ok);
    map.close();
  });

test("a worker killed while holding a bucket lock, never reaped: waiters get ETIMEDOUT instead of hanging; reap() then recovers", {
  timeout: 20_000,
}, async () => {
  for (const type of [MapType.Hash, MapType.LruHash, MapType.PercpuHash]) {
    const map = Htab.create({ type, keySize: 4, valueSize: 8, maxEntries: 1 }, { nrCpus: 4 });
    const v = new Uint8Array(map.info.valueBytes).fill(3);
    assert.equal(map.updateElem(u32(5), v), 0);
    const h = startHolder(map, 5, true);
    const cpu = await h.cpu;
    await inCallback(h.c);
    await h.w.terminate();
    await h.exited;
    assert.equal(map.slotState(cpu), "alive", "nobody reaped it");
    const out = new Uint8Array(v.length);
    assert.equal(map.lookupElem(u32(5), out), 0, "a lookup does not wait for the dead holder");
    assert.deepEqual(out, v);
    assert.equal(map.updateElem(u32(5), v), -110, map.lastError);
    assert.match(map.lastError, /its slot is attached/);
    const k = new Uint8Array(4);
    assert.equal(map.getNextKey(null, k), 0, "a walk does not wait either");
    map.reap(cpu);
    assert.equal(map.updateElem(u32(5), new Uint8Array(v.length).fill(4)), 0, map.lastError);
    assert.ok(map.fsck().ok, map.fsck().errors.join("; "));
    map.close();
  }
});

test("a writer that died mid-write (WRITING left set) and was never reaped: readers give up with ETIMEDOUT, not hang", () => {
  const map = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 },
    { nrCpus: 2, fastPath: true },
  );
  assert.equal(map.updateElem(u32(1), new Uint8Array(8)), 0);
  const { g } = readGeometry(map.handle.sab);
  const i32 = new Int32Array(map.handle.sab);
  let seq = -1;
  for (let b = 0; b < g.n_buckets; b++) {
    const w = (g.bucketsBytes + b * g.bucketStride) >> 2;
    if (i32[w + BUCKET_HEAD_I32] !== 0) seq = w + BUCKET_SEQLOCK_I32;
  }
  assert.ok(seq > 0);
  Atomics.or(i32, seq, SEQ_WRITING);
  assert.equal(map.lookupElem(u32(1), new Uint8Array(8)), -110);
  assert.match(map.lastError, /timed out after 250 ms waiting for a write to finish in bucket/);
  assert.equal(map.getNextKey(null, new Uint8Array(4)), -110);
  Atomics.and(i32, seq, ~SEQ_WRITING);
  assert.equal(map.lookupElem(u32(1), new Uint8Array(8)), 0);
  map.close();
});
