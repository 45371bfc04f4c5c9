/**
 * The edges a user meets: use after close(), failed htab operations on LRU
 * maps, stateBytes() on growable maps, the default CPU slot count, slot
 * announcements and watchWorker() warnings.
 */
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { test } from "node:test";
import { BpfMap } from "../../src/api/bpf-map.js";
import { announceSlot, watchWorker } from "../../src/api/create.js";
import { TypedMap } from "../../src/api/typed-map.js";
import { Htab } from "../../src/core/htab.js";
import { defaultNrCpus } from "../../src/core/spec.js";
import { MapDomain } from "../../src/domain/map-domain.js";
import { BpfError } from "../../src/errors.js";
import { PCPU_CLAIM_I32, pcpuBase } from "../../src/layout/layout.js";
import * as codecs from "../../src/map/codecs.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const typeName = (t: number) => Object.entries(MapType).find(([, v]) => v === t)?.[0] ?? String(t);
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const u64 = (n: number) => new Uint8Array(new BigUint64Array([BigInt(n)]).buffer);

function assertClosed(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BpfError, `${what}: threw ${String(e)}`);
    assert.equal(e.code, "EINVAL", what);
    assert.match(e.message, /closed/, what);
    return true;
  });
}

/** Every method and accessor an object's class has, called with junk: each must say "closed". */
function assertAllClosed(obj: object, what: string): number {
  let n = 0;
  for (let p = Object.getPrototypeOf(obj); p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p))
    for (const name of Object.getOwnPropertyNames(p)) {
      if (name === "constructor" || name === "close") continue;
      const d = Object.getOwnPropertyDescriptor(p, name);
      if (d?.get !== undefined) assertClosed(() => (obj as Record<string, unknown>)[name], `${what}.${name}`);
      else if (typeof d?.value === "function")
        assertClosed(
          () => (obj as Record<string, (...a: unknown[]) => unknown>)[name](u32(1), u64(1)),
          `${what}.${name}`,
        );
      else continue;
      n++;
    }
  return n;
}

test("use after close(): every method of a closed Htab throws EINVAL, and the reused slot is safe", () => {
  for (const spec of [
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 },
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16, flags: MapFlags.NoPrealloc },
    { type: MapType.PercpuHash, keySize: 4, valueSize: 8, maxEntries: 16 },
    { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: 16 },
    { type: MapType.LruPercpuHash, keySize: 4, valueSize: 8, maxEntries: 16 },
  ]) {
    const owner = Htab.create(spec, { nrCpus: 2, cpu: 0 });
    const a = Htab.attach(owner.handle);
    assert.equal(a.cpu, 1);
    const v = new Uint8Array(owner.info.valueBytes).fill(7);
    assert.equal(a.updateElem(u32(1), v), 0);
    a.close();
    a.close(); // a second close is a no-op
    const methods = assertAllClosed(a, `closed ${typeName(spec.type)}`);
    assert.ok(methods > 30, `only ${methods} methods checked`);
    // The slot it gave back is taken again; the closed object cannot disturb its new owner.
    const b = Htab.attach(owner.handle);
    assert.equal(b.cpu, 1);
    assertClosed(() => a.lookupElem(u32(1), new Uint8Array(v.length)), "lookup after re-attach");
    const out = new Uint8Array(v.length);
    assert.equal(b.lookupElem(u32(1), out), 0);
    assert.deepEqual(out, v);
    assert.ok(b.fsck().ok);
    // BpfMap and TypedMap over a closed map throw the same error.
    assertClosed(() => new BpfMap(a).lookup(u32(1)), "BpfMap.lookup");
    b.close();
    owner.close();
  }
});

test("use after close(): MapDomain, HASH_OF_MAPS and ARRAY_OF_MAPS objects throw EINVAL", () => {
  const d = MapDomain.create({ nrCpus: 2, maxMaps: 8, maxBytes: 1 << 20 });
  const inner = d.createMap({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 4 });
  const outerSpec = { keySize: 4, valueSize: 4, maxEntries: 4, innerMap: inner.info.id };
  const hom = d.createMap({ type: MapType.HashOfMaps, ...outerSpec });
  const aom = d.createMap({ type: MapType.ArrayOfMaps, ...outerSpec });
  const peer = MapDomain.attach(d.handle);
  d.close();
  for (const [obj, what] of [
    [d, "MapDomain"],
    [inner, "inner Htab"],
    [hom, "HashOfMaps"],
    [aom, "ArrayOfMaps"],
  ] as const)
    assert.ok(assertAllClosed(obj, what) > 3, what);
  // Another thread's view of the same domain is untouched.
  const m = peer.mapById(inner.info.id);
  assert.ok(m !== null);
  assert.equal(m.updateElem(u32(1), u32(2)), 0);
  peer.close();
});

test("LRU maps: a failed compareAndSwap or compute evicts nothing (the issue's example and every LRU shape)", () => {
  // LRU_HASH, max_entries 2, BPF_F_NO_COMMON_LRU, 2 CPU slots, holding key 2:
  // compareAndSwap on absent key 9 used to evict key 2.
  for (const [type, flags] of [
    [MapType.LruHash, MapFlags.NoCommonLru],
    [MapType.LruHash, 0],
    [MapType.LruPercpuHash, MapFlags.NoCommonLru],
    [MapType.LruPercpuHash, 0],
  ] as const) {
    const m = Htab.create({ type, keySize: 4, valueSize: 8, maxEntries: 2, flags }, { nrCpus: 2, cpu: 0 });
    const vb = m.info.valueBytes;
    const val = (n: number) => new Uint8Array(vb).fill(n);
    // Fill to capacity so that any pop would have to evict.
    for (let k = 1; k <= 2; k++) assert.equal(m.updateElem(u32(k), val(k)), 0);
    const full = m.count();
    const live = new Uint8Array(4);
    assert.equal(m.getNextKey(null, live), 0);
    const k = live[0]; // a present key (a per-CPU LRU list of one element keeps only the last)
    const before = m.stateBytes();
    const what = `${typeName(type)} flags ${flags}`;
    assert.equal(m.compareAndSwapElem(u32(9), val(0), val(1)), -2, what);
    assert.equal(m.compareAndSwapElem(u32(k), val(5), val(1)), -16, `${what}: region differs`);
    assert.throws(
      () =>
        m.compute(u32(9), () => {
          throw new Error("callback failed");
        }),
      /callback failed/,
    );
    assert.throws(
      () => m.compute(u32(9), () => new Uint8Array(3)),
      (e: unknown) => (e as BpfError).code === "EINVAL",
    );
    assert.throws(
      () => m.compute(u32(k), () => new Uint8Array(vb + 1)),
      (e: unknown) => (e as BpfError).code === "EINVAL",
    );
    assert.equal(m.compareAndDeleteElem(u32(9), val(0)), -2);
    assert.equal(m.compareAndDeleteElem(u32(k), val(0)), -16);
    assert.equal(m.count(), full, what);
    assert.deepEqual(m.stateBytes(), before, `${what}: failed operations changed the map's bytes`);
    // A successful swap still works, evicting as an update would.
    assert.equal(m.compareAndSwapElem(u32(k), val(k), val(8)), 0);
    const out = new Uint8Array(vb);
    assert.equal(m.lookupElem(u32(k), out), 0);
    assert.deepEqual(out, val(8));
    assert.equal(
      m.compute(u32(7), () => val(7)),
      0,
    );
    assert.equal(m.lookupElem(u32(7), out), 0);
    assert.deepEqual(out, val(7));
    assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
    m.close();
  }
});

test("stateBytes() works on BPF_F_NO_PREALLOC maps (growable buffers), empty and grown", () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 1024, flags: MapFlags.NoPrealloc },
    { nrCpus: 2 },
  );
  const empty = m.stateBytes();
  assert.ok(empty.length > 0);
  for (let k = 0; k < 300; k++) assert.equal(m.updateElem(u32(k), u64(k)), 0);
  const grown = m.stateBytes();
  assert.ok(grown.length > empty.length, "the copy follows the buffer as it grows");
  assert.equal(m.updateElem(u32(1), u64(1), 1), -17); // BPF_NOEXIST on a present key: nothing changes
  assert.deepEqual(m.stateBytes(), grown);
  m.close();
});

test("default nrCpus is the machine's parallelism on Node (os.availableParallelism())", () => {
  assert.equal(defaultNrCpus(), availableParallelism());
  const m = Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 4 });
  assert.equal(m.info.nrCpus, availableParallelism());
  m.close();
});

test("a full set of slots: the EBUSY message names workers that exited without close() and watchWorker()", () => {
  const m = Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 4 }, { nrCpus: 1 });
  assert.throws(
    () => Htab.attach(m.handle),
    (e: unknown) =>
      e instanceof BpfError &&
      e.code === "EBUSY" &&
      /without close\(\)/.test(e.message) &&
      /watchWorker/.test(e.message),
  );
  m.close();
});

test("watchWorker() warns when given a slot that cannot be the worker's; without a slot it reaps what the worker announced", async () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 4 },
    { nrCpus: 3, cpu: 0 },
  );
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on("warning", onWarning);
  const exits: Array<(code: number) => void> = [];
  const fakeWorker = (messages: unknown[]) => ({
    once(_e: "exit", l: (code: number) => void) {
      exits.push(l);
    },
    on(_e: "message", l: (msg: unknown) => void) {
      for (const msg of messages) l(msg);
    },
    off() {},
  });
  watchWorker(m, fakeWorker([]), 2); // slot 2 is free: the worker will attach to it, no warning
  watchWorker(m, fakeWorker([]), 0); // slot 0 is this thread's own: it cannot be the worker's
  await new Promise((r) => setImmediate(r));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /slot 0 is this thread's own/);
  // A worker attaches without a cpu and announces its slot; it "dies" without close().
  const w = Htab.attach(m.handle);
  assert.notEqual(w.cpu, 2, "slot 2 is reserved for the worker watched as it");
  foreignClaim(m, w.cpu);
  const posted: unknown[] = [];
  announceSlot(w, { postMessage: (msg) => posted.push(msg) });
  assert.deepEqual(posted, [
    { htabSlot: w.cpu, htabGeneration: m.slotGeneration(w.cpu), htabToken: m.slotClaim(w.cpu) },
  ]);
  watchWorker(m, fakeWorker(posted));
  assert.equal(m.slotState(w.cpu), "alive");
  for (const exit of exits) exit(0);
  assert.equal(m.slotState(w.cpu), "free", "the announced slot was reaped at exit");
  process.off("warning", onWarning);
  m.close();
});

test("TypedMap and BpfMap on per-CPU maps: one value per possible CPU, exact length or EINVAL", () => {
  for (const type of [MapType.PercpuHash, MapType.LruPercpuHash]) {
    const m = Htab.create({ type, keySize: 4, valueSize: 4, maxEntries: 8 }, { nrCpus: 3 });
    assert.equal(m.info.valueBytes, 24);
    assert.throws(() => new TypedMap(m, codecs.u32, codecs.u32), /TypedMap\.perCpu/);
    const t = TypedMap.perCpu(m, codecs.u32, codecs.u32);
    t.set(1, [10, 11, 12]);
    assert.deepEqual(t.get(1), [10, 11, 12]);
    assert.throws(
      () => t.set(2, [1, 2]),
      (e: unknown) => (e as BpfError).code === "EINVAL",
    );
    assert.throws(
      () => t.set(2, [1, 2, 3, 4]),
      (e: unknown) => (e as BpfError).code === "EINVAL",
    );
    assert.equal(t.has(2), false);
    assert.deepEqual([...t.entries()], [[1, [10, 11, 12]]]);
    const b = new BpfMap(m);
    assert.equal(b.lookup(u32(1))?.length, 24);
    assert.deepEqual(b.lookupPerCpu(u32(1)), [u32(10), u32(11), u32(12)]);
    b.updatePerCpu(u32(3), [u32(1), u32(2), u32(3)]);
    assert.deepEqual(t.get(3), [1, 2, 3]);
    assert.throws(
      () => b.updatePerCpu(u32(4), [u32(1)]),
      (e: unknown) => (e as BpfError).code === "EINVAL",
    );
    assert.throws(
      () => b.updatePerCpu(u32(4), [u32(1), u32(2), new Uint8Array(3)]),
      (e: unknown) => (e as BpfError).code === "EINVAL",
    );
    assert.equal(t.size, 2);
    m.close();
  }
  const plain = Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 8 }, { nrCpus: 2 });
  assert.throws(() => TypedMap.perCpu(plain, codecs.u32, codecs.u32), /PERCPU/);
  assert.throws(() => new BpfMap(plain).lookupPerCpu(u32(1)), /not per-CPU/);
  plain.close();
});

test("a slot closed normally and taken by another thread before the old worker's exit event is not reaped (claim generations)", async () => {
  const { Worker } = await import("node:worker_threads");
  for (const explicit of [false, true]) {
    const m = Htab.create(
      { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 },
      { nrCpus: 3, cpu: 0 },
    );
    // The worker attaches to slot 1, announces it, closes its map normally and lingers until told to exit.
    const code = `
      const { parentPort, workerData } = require("node:worker_threads");
      import(workerData.url).then(({ Htab, announceSlot }) => {
        const w = Htab.attach(workerData.handle, { cpu: 1 });
        announceSlot(w, parentPort);
        w.close();
        parentPort.postMessage("closed");
        parentPort.once("message", () => process.exit(0));
      });`;
    const url = new URL("../../src/index.js", import.meta.url).href;
    const worker = new Worker(code, { eval: true, workerData: { handle: m.handle, url } });
    if (explicit) watchWorker(m, worker, 1);
    else watchWorker(m, worker);
    await new Promise<void>((resolve) => worker.on("message", (msg) => msg === "closed" && resolve()));
    // Another thread (here: a second object of this one) takes slot 1 before the worker's exit event.
    const next = Htab.attach(m.handle, { cpu: 1 });
    const before = m.stats().recovered;
    const exited = new Promise((r) => worker.once("exit", r));
    worker.postMessage("exit");
    await exited;
    await new Promise((r) => setImmediate(r));
    assert.equal(
      m.slotState(1),
      "alive",
      `${explicit ? "explicit" : "announced"} slot: the new owner keeps it`,
    );
    assert.equal(m.stats().recovered, before, "nothing was recovered");
    const k = new Uint8Array([1, 0, 0, 0]);
    assert.equal(next.updateElem(k, new Uint8Array(8), 0), 0, "the new owner's slot works");
    next.close();
    assert.ok(m.fsck().ok);
    m.close();
  }
});

/**
 * Stand in for another thread: stamp slot `cpu`'s claim word (layout.ts
 * PCPU_CLAIM) with a token that is not this thread's, as if a worker had
 * claimed it, so that this thread may reap it (its own slots it may not).
 */
function foreignClaim(m: Htab, cpu: number): void {
  const i32 = new Int32Array(m.handle.sab);
  const idx = pcpuBase(cpu) + PCPU_CLAIM_I32;
  i32[idx] = (i32[idx] ^ 0x5a5a5a5) & 0x7fff_ffff || 1;
}

test("reap(cpu, generation) reaps that claim of the slot only; slotGeneration() grows at every attach", () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 },
    { nrCpus: 2, cpu: 0 },
  );
  const g0 = m.slotGeneration(1);
  const a = Htab.attach(m.handle, { cpu: 1 });
  assert.equal(m.slotGeneration(1), g0 + 1);
  a.close();
  const b = Htab.attach(m.handle, { cpu: 1 });
  assert.equal(m.slotGeneration(1), g0 + 2);
  assert.throws(() => m.reap(1), /belongs to this thread/, "a slot of this thread is never reaped");
  foreignClaim(m, 1);
  m.reap(1, g0 + 1); // the closed claim: b is not touched
  assert.equal(m.slotState(1), "alive");
  assert.equal(b.updateElem(new Uint8Array(4), new Uint8Array(8), 0), 0, "b's slot still works");
  m.reap(1, g0 + 2); // b's claim: b's thread is declared gone
  assert.equal(m.slotState(1), "free");
  assert.throws(() => m.slotGeneration(2), { code: "EINVAL" });
  m.close();
});
