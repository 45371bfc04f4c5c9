/**
 * ARRAY and PERCPU_ARRAY on the shared-memory backend: what the kernel
 * differential cannot see (workers, the program face, untorn lookups under
 * concurrent writers, crash recovery, fsck, MapDomain and the typed layers).
 * The kernel's errno and order are proven in test/kernel/differential.array.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { BpfMap } from "../../src/api/bpf-map.js";
import { attach, createMap, watchWorker } from "../../src/api/create.js";
import { TypedMap } from "../../src/api/typed-map.js";
import { ArrayMap } from "../../src/array/array-map.js";
import { MapDomain } from "../../src/domain/map-domain.js";
import { BpfError } from "../../src/errors.js";
import {
  ARR_ELEM_LOCK_I32,
  ARR_ELEM_SEQ_I32,
  ARR_PCPU_WRITING_I32,
  arrayElemI32,
  arrayGeometry,
  pcpuBase,
} from "../../src/layout/layout.js";
import * as codecs from "../../src/map/codecs.js";
import { MapFlags, MapType, UpdateFlags } from "../../src/uapi.js";
import { runWorkers } from "../helpers/workers.js";

const WORKER = new URL("../fixtures/array-worker.js", import.meta.url);
const key = (i: number) => new Uint8Array([i, i >>> 8, i >>> 16, i >>> 24]);

test("createMap makes an ArrayMap for ARRAY and PERCPU_ARRAY, every element zero, and the kernel's element errnos", () => {
  const m = createMap(
    { type: MapType.Array, keySize: 4, valueSize: 12, maxEntries: 3 },
    { nrCpus: 2, cpu: 0 },
  );
  try {
    assert.ok(m instanceof ArrayMap);
    const v = new Uint8Array(12).fill(9);
    assert.equal(m.lookupElem(key(2), v), 0);
    assert.deepEqual(v, new Uint8Array(12), "zero at create");
    assert.equal(m.lookupElem(key(3), v), -2, "ENOENT past the end");
    assert.match(m.lastError, /index 3 is past the last index 2/);
    assert.equal(m.updateElem(key(3), v, 0), -7, "E2BIG past the end");
    assert.equal(m.updateElem(key(1), v, UpdateFlags.NoExist), -17, "EEXIST: every element exists");
    assert.equal(m.updateElem(key(1), new Uint8Array(12).fill(5), UpdateFlags.Exist), 0);
    assert.equal(m.deleteElem(key(1)), -22, "delete is EINVAL");
    assert.equal(m.lookupAndDeleteElem(key(1), v), -524, "ENOTSUPP");
    assert.equal(m.lookupElem(key(1), v), 0);
    assert.deepEqual(v, new Uint8Array(12).fill(5));
    assert.equal(m.count(), 3);
    const next = new Uint8Array(4);
    assert.equal(m.getNextKey(key(99), next), 0);
    assert.deepEqual(next, key(0), "an out-of-range key gives index 0");
    assert.equal(m.getNextKey(key(2), next), -2, "the last index gives ENOENT");
    assert.throws(() => m.lookupElem(new Uint8Array(8), v), {
      code: "EINVAL",
      message: /^lookup: key is 8 bytes/,
    });
  } finally {
    m.close();
  }
});

test("lookup_batch walks with the kernel's key cursor: out_batch is the last index, ENOENT with the last entries", () => {
  const m = ArrayMap.create({ type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 5 }, { nrCpus: 1 });
  try {
    const vals = new Uint8Array(20);
    for (let i = 0; i < 20; i++) vals[i] = i;
    const keys = new Uint8Array(20);
    for (let i = 0; i < 5; i++) keys.set(key(i), i * 4);
    assert.equal(m.updateBatch({ count: 5, keys, values: vals }).err, 0);
    const a = m.lookupBatch({ count: 2 });
    assert.deepEqual([a.err, a.count, a.outBatch], [0, 2, 1]);
    const b = m.lookupBatch({ count: 2, inBatch: a.outBatch });
    assert.deepEqual([b.err, b.count, b.outBatch], [0, 2, 3]);
    assert.deepEqual([...b.values.subarray(0, 8)], [8, 9, 10, 11, 12, 13, 14, 15]);
    const c = m.lookupBatch({ count: 2, inBatch: b.outBatch });
    assert.deepEqual([c.err, c.count, c.outBatch], [-2, 1, 4]);
    const d = m.lookupBatch({ count: 2, inBatch: c.outBatch });
    assert.deepEqual([d.err, d.count, d.outBatch], [-2, 0, null]);
    const bad = new Uint8Array(8);
    bad.set(key(0));
    bad.set(key(7), 4);
    const u = m.updateBatch({ count: 2, keys: bad, values: new Uint8Array(8) });
    assert.deepEqual([u.err, u.count], [-7, 1], "E2BIG at the second pair, the first written");
    assert.equal(m.deleteBatch({ count: 1, keys: key(0) }).err, -524);
    assert.equal(m.lookupAndDeleteBatch({ count: 1 }).err, -524);
  } finally {
    m.close();
  }
});

test("PERCPU_ARRAY: user space moves nrCpus x round_up(value_size, 8) bytes; a program update writes its own CPU's slot", async () => {
  const m = createMap(
    { type: MapType.PercpuArray, keySize: 4, valueSize: 4, maxEntries: 2 },
    { nrCpus: 3, cpu: 0 },
  );
  try {
    assert.equal(m.info.valueBytes, 24);
    const b = new BpfMap(m);
    b.updatePerCpu(key(0), [
      new Uint8Array([1, 1, 1, 1]),
      new Uint8Array([2, 2, 2, 2]),
      new Uint8Array([3, 3, 3, 3]),
    ]);
    assert.deepEqual(
      b.lookupPerCpu(key(0))?.map((x) => x[0]),
      [1, 2, 3],
    );
    await runWorkers(WORKER, 2, (i) => ({ handle: m.handle, cpu: i + 1, mode: "percpu" }));
    assert.deepEqual(
      b.lookupPerCpu(key(0))?.map((x) => x[0]),
      [1, 2, 3],
      "CPU 1 wrote 2, CPU 2 wrote 3",
    );
    assert.deepEqual(
      b.lookupPerCpu(key(1))?.map((x) => x[0]),
      [0, 2, 3],
      "CPU 0's slot untouched",
    );
    const t = TypedMap.perCpu(m, codecs.u32, codecs.u32);
    assert.deepEqual(t.get(1), [0, 0x02020202, 0x03030303]);
    m.run(() => {
      assert.equal(m.lookupPercpuRef(key(1), 2)?.getU8(0), 3);
      assert.equal(m.lookupPercpuRef(key(1), 3), null, "no CPU 3");
      assert.equal(m.lookupPercpuRef(key(2), 0), null, "no index 2");
    });
  } finally {
    m.close();
  }
});

test("a lookup never returns a torn value while three workers write 256-byte values (syscall and program updates)", async () => {
  const m = createMap(
    { type: MapType.Array, keySize: 4, valueSize: 256, maxEntries: 2 },
    { nrCpus: 4, cpu: 0 },
  );
  try {
    const out = new Uint8Array(256);
    const dv = new DataView(out.buffer);
    let reads = 0;
    let changes = 0;
    let last = -1n;
    const done = runWorkers<{ rounds: number }>(WORKER, 3, (i) => ({
      handle: m.handle,
      cpu: i + 1,
      mode: "write",
      rounds: 20_000,
      index: 1,
    }));
    let finished = false;
    done.then(
      () => {
        finished = true;
      },
      () => {
        finished = true;
      },
    );
    while (!finished) {
      for (let k = 0; k < 200; k++) {
        const r = m.lookupElem(key(1), out);
        assert.equal(r, 0, `lookup: ${m.lastError}`);
        const first = dv.getBigUint64(0, true);
        for (let o = 8; o < 256; o += 8)
          if (dv.getBigUint64(o, true) !== first)
            assert.fail(`torn value: word 0 is ${first}, word ${o / 8} is ${dv.getBigUint64(o, true)}`);
        if (first !== last) changes++;
        last = first;
        reads++;
      }
      await new Promise((r) => setImmediate(r));
    }
    await done;
    assert.ok(reads > 0);
    assert.ok(changes > 1, `the reader saw the writes (${changes} changes in ${reads} reads)`);
    assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
  } finally {
    m.close();
  }
});

test("the program face: lookupRef points into the element; BPF_F_RDONLY_PROG refuses program writes; forEachElem visits every index", () => {
  const m = createMap(
    { type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 4 },
    { nrCpus: 2, cpu: 0 },
  );
  try {
    assert.throws(() => m.lookupRef(key(0)), { code: "EINVAL" });
    m.run(() => {
      m.lookupRef(key(2))?.fetchAdd64(0, 41n);
      m.lookupRef(key(2))?.fetchAdd64(0, 1n);
      assert.equal(m.lookupRef(key(4)), null);
    });
    assert.deepEqual(new TypedMap(m, codecs.u32, codecs.u64).get(2), 42n);
    const seen: number[] = [];
    assert.equal(
      m.forEachElem((_m, k, v) => {
        seen.push(k[0] + Number(v.load64(0)));
        return k[0] === 2 ? 1 : 0;
      }, null),
      3,
    );
    assert.deepEqual(seen, [0, 1, 44]);
    const ro = createMap(
      { type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 1, flags: MapFlags.RdonlyProg },
      { nrCpus: 1 },
    );
    assert.equal(ro.updateElemFromProgram(key(0), new Uint8Array(8), 0), -13);
    ro.run(() => assert.throws(() => ro.lookupRef(key(0))?.store32(0, 1), { code: "EACCES" }));
    assert.equal(ro.updateElem(key(0), new Uint8Array(8).fill(1), 0), 0, "the syscall side still writes");
    ro.close();
  } finally {
    m.close();
  }
});

test("BPF_F_LOCK: copies under the value's bpf_spin_lock, which reads as zero; a map with one cannot be frozen", () => {
  const m = createMap(
    { type: MapType.Array, keySize: 4, valueSize: 12, maxEntries: 2, spinLockOffset: 4 },
    { nrCpus: 2, cpu: 0 },
  );
  try {
    const v = new Uint8Array(12).fill(7);
    assert.equal(m.updateElem(key(0), v, UpdateFlags.Lock), 0);
    const out = new Uint8Array(12);
    assert.equal(m.lookupElem(key(0), out, UpdateFlags.Lock), 0);
    assert.deepEqual([...out], [7, 7, 7, 7, 0, 0, 0, 0, 7, 7, 7, 7]);
    m.run(() => {
      const ref = m.lookupRef(key(0));
      ref?.lock();
      // Held by a program: a locked lookup waits up to 250 ms, then ETIMEDOUT; a plain one reads.
      assert.equal(m.lookupElem(key(0), out, UpdateFlags.Lock), -110);
      assert.equal(m.lookupElem(key(0), out, 0), 0);
      ref?.unlock();
    });
    assert.equal(m.freeze(), -524);
    assert.throws(
      () =>
        createMap({ type: MapType.PercpuArray, keySize: 4, valueSize: 8, maxEntries: 1, spinLockOffset: 0 }),
      { code: "EOPNOTSUPP" },
    );
  } finally {
    m.close();
  }
});

test("freeze: syscall writes are EPERM afterwards (a second freeze too); programs still write", () => {
  const m = createMap({ type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 1 }, { nrCpus: 1 });
  try {
    assert.equal(m.freeze(), 0);
    assert.equal(m.freeze(), -1);
    assert.equal(m.updateElem(key(0), new Uint8Array(4), 0), -1);
    assert.match(m.lastError, /frozen/);
    assert.equal(m.deleteElem(key(0)), -1);
    assert.equal(m.updateElemFromProgram(key(0), new Uint8Array([1, 2, 3, 4]), 0), 0);
    assert.deepEqual(new BpfMap(m).lookup(key(0)), new Uint8Array([1, 2, 3, 4]));
  } finally {
    m.close();
  }
});

test("reap: a writer that died holding an element's lock (odd sequence) is recovered; lookups and fsck then pass", async () => {
  const m = createMap(
    { type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 4 },
    { nrCpus: 3, cpu: 0 },
  );
  try {
    await runWorkers(WORKER, 1, () => ({ handle: m.handle, cpu: 1, mode: "stay" }));
    // The worker's slot is alive (no close()). Make it look as if it died inside a write of index 2.
    const i32 = new Int32Array(m.handle.sab);
    const g = arrayGeometry(false, 8, 4, 3);
    const e = arrayElemI32(g, 2);
    i32[pcpuBase(1) + ARR_PCPU_WRITING_I32] = 3;
    i32[e + ARR_ELEM_LOCK_I32] = (1 + 1) << 1;
    i32[e + ARR_ELEM_SEQ_I32] = 7;
    assert.equal(m.fsck().ok, false);
    const out = new Uint8Array(8);
    assert.equal(m.updateElem(key(2), out, 0), -110, "the writer lock is held by slot 1");
    assert.match(m.lastError, /CPU slot 1/);
    m.reap(1);
    assert.equal(m.slotState(1), "free");
    assert.equal(m.lookupElem(key(2), out), 0);
    assert.equal(m.updateElem(key(2), out, 0), 0);
    const f = m.fsck();
    assert.ok(f.ok, f.errors.join("; "));
    assert.equal(m.stats().recovered, 1);
  } finally {
    m.close();
  }
});

test("attach(handle) in another thread gives an ArrayMap on the same memory; closed objects throw", async () => {
  const m = createMap(
    { type: MapType.Array, keySize: 4, valueSize: 16, maxEntries: 2 },
    { nrCpus: 3, cpu: 0 },
  );
  try {
    await runWorkers(WORKER, 2, (i) => ({
      handle: m.handle,
      cpu: i + 1,
      mode: "write",
      rounds: 10,
      index: i,
    }));
    const t = new TypedMap(m, codecs.u32, codecs.bytes(16));
    assert.equal(new DataView(t.get(0)?.buffer as ArrayBuffer).getBigUint64(0, true), 1_000_010n);
    assert.equal(new DataView(t.get(1)?.buffer as ArrayBuffer).getBigUint64(0, true), 2_000_010n);
    const other = attach(m.handle, { cpu: 2 });
    assert.ok(other instanceof ArrayMap);
    other.close();
    assert.throws(() => other.lookupElem(key(0), new Uint8Array(16)), BpfError);
  } finally {
    m.close();
  }
});

test("MapDomain: arrays by id, and an ARRAY_OF_MAPS of arrays whose inner map a program section reaches", () => {
  const d = MapDomain.create({ nrCpus: 2, cpu: 0 });
  try {
    const a = d.createMap({ type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 4 });
    const b = d.createMap({ type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 4 });
    const big = d.createMap({ type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 8 });
    assert.ok(a instanceof ArrayMap && d.mapById(a.info.id) === a);
    const outer = d.createMap({
      type: MapType.ArrayOfMaps,
      keySize: 4,
      valueSize: 4,
      maxEntries: 2,
      innerMap: a,
    });
    assert.equal(outer.updateElem(key(0), key(b.info.id), 0), 0);
    assert.equal(outer.updateElem(key(1), key(big.info.id), 0), -22, "max_entries must match the template");
    assert.match(outer.lastError, /max_entries 4, not 8/);
    b.updateElem(key(3), new Uint8Array(8).fill(6), 0);
    outer.run(() => {
      const inner = outer.lookupInner(key(0));
      assert.ok(inner instanceof ArrayMap);
      assert.equal(inner.lookupRef(key(3))?.getU8(0), 6);
    });
  } finally {
    d.close();
  }
});

test("watchWorker reaps an array slot whose worker exited without close(); another worker can take it", async () => {
  const m = createMap(
    { type: MapType.PercpuArray, keySize: 4, valueSize: 8, maxEntries: 2 },
    { nrCpus: 2, cpu: 0 },
  );
  try {
    const w = new Worker(WORKER, { workerData: { handle: m.handle, cpu: 1, mode: "stay" } });
    const warnings: string[] = [];
    watchWorker(m, w, 1, { onWarning: (t) => warnings.push(t) });
    await new Promise((r) => w.once("exit", r));
    await new Promise((r) => setImmediate(r));
    assert.equal(m.slotState(1), "free", warnings.join("; "));
    await runWorkers(WORKER, 1, () => ({ handle: m.handle, cpu: 1, mode: "percpu" }));
    assert.deepEqual(
      new BpfMap(m).lookupPerCpu(key(1))?.map((x) => x[0]),
      [0, 2],
    );
    assert.deepEqual(warnings, []);
  } finally {
    m.close();
  }
});
