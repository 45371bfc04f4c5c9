/** BPF_F_NO_PREALLOC: memory grows with use, not with max_entries, and every worker sees the growth. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { lockBucket } from "../../src/core/bucket.js";
import { Htab } from "../../src/core/htab.js";
import { bucketAt, type HtabView } from "../../src/core/htab-view.js";
import {
  HDR_CARVED_I32,
  HDR_GROW_LOCK_I32,
  PCPU_CLAIM_I32,
  PCPU_FL_HEAD_I32,
  PCPU_INFLIGHT_I32,
  pcpuBase,
} from "../../src/layout/layout.js";
import { lockAcquire } from "../../src/sync/owner-lock.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);

test("a NO_PREALLOC map starts small, grows as keys arrive, and reuses freed elements", () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 100_000, flags: MapFlags.NoPrealloc },
    { nrCpus: 2 },
  );
  const pre = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 100_000 },
    { nrCpus: 2 },
  );
  const empty = m.memoryUsage();
  assert.ok(empty < pre.memoryUsage() / 2, `empty: ${empty} bytes vs preallocated ${pre.memoryUsage()}`);
  const v = new Uint8Array(8);
  for (let i = 0; i < 20_000; i++) assert.equal(m.updateElem(u32(i), v, 0), 0);
  const grown = m.memoryUsage();
  assert.ok(grown > empty + 20_000 * 32, `grew to ${grown}`);
  for (let i = 0; i < 20_000; i++) m.deleteElem(u32(i));
  for (let i = 0; i < 20_000; i++) m.updateElem(u32(i + 1_000_000), v, 0);
  assert.equal(m.memoryUsage(), grown, "freed elements are reused before the buffer grows again");
  assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
});

test("NO_PREALLOC full map: E2BIG for a new key, a replace still works (kernel: is_map_full())", () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 2, flags: MapFlags.NoPrealloc },
    { nrCpus: 2 },
  );
  const v = new Uint8Array(8);
  assert.equal(m.updateElem(u32(1), v, 0), 0);
  assert.equal(m.updateElem(u32(2), v, 0), 0);
  assert.equal(m.updateElem(u32(3), v, 0), -7);
  assert.equal(m.updateElem(u32(3), v, 1), -7);
  assert.equal(m.updateElem(u32(3), v, 2), -2);
  assert.equal(m.updateElem(u32(1), new Uint8Array(8).fill(9), 0), 0);
  assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
});

test("a worker's inserts grow the buffer, and the creating thread reads them", async () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 50_000, flags: MapFlags.NoPrealloc },
    { nrCpus: 2 },
  );
  const before = m.memoryUsage();
  const src = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(${JSON.stringify(new URL("../../src/index.js", import.meta.url).href)}).then(({ attach }) => {
      const m = attach(workerData);
      const k = new Uint8Array(4), v = new Uint8Array(8);
      for (let i = 0; i < 30000; i++) { new DataView(k.buffer).setUint32(0, i, true); v[0] = i & 255; m.updateElem(k, v, 0); }
      m.close();
      parentPort.postMessage("done");
    });`;
  const w = new Worker(src, { eval: true, workerData: m.handle });
  await new Promise((r) => w.once("message", r));
  assert.ok(m.memoryUsage() > before);
  const out = new Uint8Array(8);
  for (let i = 0; i < 30_000; i += 997) {
    assert.equal(m.lookupElem(u32(i), out), 0);
    assert.equal(out[0], i & 255);
  }
  assert.equal(m.count(), 30_000);
  assert.ok(m.fsck().ok);
});

const viewOf = (m: Htab) => (m as unknown as { v: HtabView }).v;

/**
 * Leave `dead`'s slot as a worker killed inside carveElem() leaves it: it
 * holds a bucket lock (carving runs under one) and the grow lock, and its
 * INFLIGHT names the element it is carving, the next one; `published`: it
 * also stored CARVED (it died just before releasing the grow lock). Then
 * stamp the slot's claim word as another thread's, so that this thread may
 * reap it. @returns the element it was carving
 */
function dieMidCarve(dead: Htab, published: boolean): number {
  const v = viewOf(dead);
  const i32 = v.i32;
  assert.ok(lockBucket(v, bucketAt(v, 0)));
  assert.ok(lockAcquire(i32, HDR_GROW_LOCK_I32, dead.cpu));
  const n = Atomics.load(i32, HDR_CARVED_I32);
  const e = v.elemsBase + n * v.elemStrideI32;
  i32[pcpuBase(dead.cpu) + PCPU_INFLIGHT_I32] = e;
  if (published) Atomics.store(i32, HDR_CARVED_I32, n + 1);
  const claim = pcpuBase(dead.cpu) + PCPU_CLAIM_I32;
  i32[claim] = (i32[claim] ^ 0x5a5a5a5) & 0x7fff_ffff || 1;
  return e;
}

for (const published of [false, true])
  test(`NO_PREALLOC: a slot killed mid-carve (CARVED ${published ? "published" : "not yet published"}) is recovered while a live thread carves the next element: no element is both linked and free`, () => {
    const m = Htab.create(
      { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16, flags: MapFlags.NoPrealloc },
      { nrCpus: 3, cpu: 0 },
    );
    const dead = Htab.attach(m.handle, { cpu: 1 });
    const live = Htab.attach(m.handle, { cpu: 2 });
    const val = (n: number) => new Uint8Array(new Uint32Array([n, ~n]).buffer);
    for (let k = 0; k < 3; k++) assert.equal(dead.updateElem(u32(k), val(k), 0), 0);
    const e = dieMidCarve(dead, published);
    // A live thread waiting for the grow lock carves as soon as the recoverer
    // releases it: here, between that release and the recoverer's filing of
    // the dead slot's element (recovery.ts step 3), in the same thread.
    const elems = viewOf(m).elems;
    const recoverOwned = elems.recoverOwned;
    let liveInsert = Number.NaN;
    elems.recoverOwned = (v, d, lost) => {
      liveInsert = live.updateElem(u32(50), val(50), 0);
      recoverOwned.call(elems, v, d, lost);
    };
    m.reap(1);
    assert.equal(liveInsert, 0);
    assert.equal(m.slotState(1), "free");
    const f = m.fsck();
    assert.ok(f.ok, f.errors.join("; "));
    const i32 = viewOf(m).i32;
    // Unpublished: the live thread carved e itself; published: e was the dead slot's, now free.
    assert.equal(Atomics.load(i32, HDR_CARVED_I32), published ? 5 : 4);
    assert.equal(f.elements, 4);
    assert.equal(f.free, published ? 1 : 0);
    if (published)
      assert.equal(i32[pcpuBase(0) + PCPU_FL_HEAD_I32], e, "the dead slot's carved element is free");
    // Fill the map: no element is handed out twice, every key keeps its value.
    for (let k = 100; k < 112; k++) assert.equal(m.updateElem(u32(k), val(k), 0), 0);
    assert.equal(m.updateElem(u32(200), val(200), 0), -7, "full at max_entries");
    const out = new Uint8Array(8);
    for (const k of [0, 1, 2, 50, ...Array.from({ length: 12 }, (_, i) => 100 + i)]) {
      assert.equal(m.lookupElem(u32(k), out, 0), 0, `key ${k}`);
      assert.deepEqual(out, val(k), `key ${k}`);
    }
    const g = m.fsck();
    assert.ok(g.ok, g.errors.join("; "));
    live.close();
    m.close();
  });
