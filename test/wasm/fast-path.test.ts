/**
 * The wasm fast path: its bytes are what fast-path.wat compiles to, its
 * jhash2 is the kernel's, and a map on it behaves byte for byte like the
 * same map on the JS path, alone or with both paths attached at once.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import * as N from "../../src/alloc/lru-nodes.js";
import { BpfMap } from "../../src/api/bpf-map.js";
import { Htab } from "../../src/core/htab.js";
import { jhash2Int } from "../../src/hash/jhash.js";
import * as G from "../../src/layout/geometry.js";
import * as L from "../../src/layout/layout.js";
import { MapFlags, MapType } from "../../src/uapi.js";
import { allocSharedMemory, type FastPath, fastPathFor } from "../../src/wasm/fast-path.js";
import { FAST_PATH_WASM } from "../../src/wasm/fast-path-bytes.js";

test("fast-path-bytes.ts is what fast-path.wat compiles to (npm run build:wasm)", async () => {
  const script = new URL("../../../scripts/build-wasm.mjs", import.meta.url).href;
  const { compileFastPath } = (await import(script)) as { compileFastPath(): Promise<Uint8Array> };
  assert.deepEqual(await compileFastPath(), FAST_PATH_WASM);
});

test("the byte offsets fast-path.wat is written with are the layout's (BUILD_BUG_ON in spirit)", () => {
  const off = (i32: number) => i32 * 4;
  assert.deepEqual(
    [L.BUCKET_HEAD_I32, L.BUCKET_SEQLOCK_I32, L.BUCKET_OWNER_I32].map(off),
    [0, 4, 8],
    "bucket: HEAD +0, SEQLOCK +4, OWNER +8",
  );
  assert.deepEqual(
    [L.ELEM_NEXT_I32, L.ELEM_HASH_I32, L.ELEM_FNEXT_I32, L.ELEM_KEY_I32].map(off),
    [0, 4, 8, 16],
    "element: NEXT +0, HASH +4, FNEXT +8, key +16",
  );
  assert.deepEqual(
    [
      L.PCPU_FL_LOCK_I32,
      L.PCPU_FL_HEAD_I32,
      L.PCPU_EXTRA_I32,
      L.PCPU_COUNT_I32,
      L.PCPU_INTENT_BUCKET_I32,
      L.PCPU_INTENT_OP_I32,
      L.PCPU_INTENT_ELEM_I32,
      L.PCPU_INTENT_OLD_I32,
      L.PCPU_INTENT_COUNT_I32,
      L.PCPU_INFLIGHT_I32,
      L.PCPU_LRU_SPARE_I32,
    ].map(off),
    [4, 8, 12, 16, 28, 32, 36, 40, 44, 48, 52],
    "per-CPU record",
  );
  assert.equal(L.PCPU_RECORD_BYTES, 64, "update() passes 64 as the record stride");
  assert.deepEqual(
    [
      L.SCRATCH_BASE_I32,
      L.SCRATCH_BUCKETS_I32,
      L.SCRATCH_MASK_I32,
      L.SCRATCH_HASHRND_I32,
      L.SCRATCH_KEY_I32,
      L.SCRATCH_KEY_WORDS_I32,
      L.SCRATCH_VALUE_OFF_I32,
      L.SCRATCH_VALUE_U64S_I32,
      L.SCRATCH_OUT_I32,
      L.SCRATCH_BOUND_I32,
      L.SCRATCH_PCPU0_I32,
      L.SCRATCH_CPU_I32,
      L.SCRATCH_NR_CPUS_I32,
      L.SCRATCH_ACTIVE_I32,
      L.SCRATCH_MY_PCPU_I32,
      L.SCRATCH_FROZEN_I32,
      L.SCRATCH_STRIDE_I32,
      L.SCRATCH_LRU_NODES_I32,
      L.SCRATCH_LRU_NUM_I32,
      L.SCRATCH_LRU_LIST_I32,
      L.SCRATCH_LRU_LOCALS_I32,
      L.SCRATCH_LRU_TARGET_I32,
      L.SCRATCH_ELEMS_I32,
      L.SCRATCH_ELEM_STRIDE_I32,
      L.SCRATCH_EVICT_TIMEDOUT_I32,
      L.SCRATCH_LINK_LO_I32,
      L.SCRATCH_LINK_SPAN_I32,
      L.SCRATCH_LRU_NODE_COUNT_I32,
    ].map(off),
    [
      0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 96, 100,
      104, 108,
    ],
    "descriptor",
  );
  // The wasm LRU's node, list and local-record words, and its header words (REPAIR +92, LIMBO_COUNT +116).
  assert.deepEqual(
    [L.LRU_NODE_PREV_I32, L.LRU_NODE_NEXT_I32, L.LRU_NODE_META_I32, L.LRU_NODE_REF_I32].map(off),
    [0, 4, 8, 12],
    "LRU node",
  );
  assert.equal(L.LRU_NODE_BYTES, 16, "node n at LRU_NODES + 16 n");
  assert.deepEqual(
    [
      L.LRU_LIST_LOCK_I32,
      L.LRU_LIST_COUNT_ACTIVE_I32,
      L.LRU_LIST_COUNT_INACTIVE_I32,
      L.LRU_LIST_NEXT_INACTIVE_ROT_I32,
    ].map(off),
    [0, 4, 8, 12],
    "LRU list record",
  );
  assert.deepEqual([L.LRU_LOCAL_LOCK_I32, L.LRU_LOCAL_FREE_HEAD_I32].map(off), [0, 4], "LRU local record");
  assert.equal(L.LRU_LOCAL_BYTES, 64, "CPU c's local record at LRU_LOCALS + 64 c");
  assert.equal(L.LRU_SENTINELS_PER_LIST, 3, "CPU c's PENDING sentinel is num_elems + 3 + c (one list set)");
  assert.deepEqual([L.HDR_LRU_REPAIR_I32, L.HDR_LIMBO_COUNT_I32].map(off), [92, 116], "header words");
  assert.deepEqual(
    [
      N.LRU_T_ACTIVE,
      N.LRU_T_INACTIVE,
      N.LRU_T_FREE,
      N.LRU_T_LOCAL_FREE,
      N.LRU_T_LOCAL_PENDING,
      N.LRU_T_LIMBO,
    ],
    [0, 1, 2, 3, 4, 5],
    "LRU node types",
  );
  assert.deepEqual([L.OP_INSERT, L.OP_REPLACE, L.OP_UNLINK], [1, 2, 3], "intent ops");
});

test("fast-path.wat lays out the many area with the layout's MANY_CHUNK (keys, values, result words)", () => {
  const wat = readFileSync(
    fileURLToPath(new URL("../../../src/wasm/fast-path.wat", import.meta.url)),
    "utf8",
  );
  const chunks = [...wat.matchAll(/\(i32\.mul \(local\.get \$(?:kw|vw)\) \(i32\.const (\d+)\)\)/g)].map((m) =>
    Number(m[1]),
  );
  assert.deepEqual(
    chunks,
    [L.MANY_CHUNK, L.MANY_CHUNK],
    "lookupMany's keys and values areas are MANY_CHUNK long",
  );
  const g = G.computeGeometry(4, 8, 100, 2);
  assert.equal(g.manyBytes, L.MANY_CHUNK * (4 + 8 + 4), "keys, values and one result word per key");
  assert.equal(G.computeGeometry(6, 8, 100, 2).manyBytes, 0, "keys that are not whole words: no many area");
  assert.equal(
    G.computeGeometry(4, 128, 100, 2).manyBytes,
    0,
    "values over MANY_VALUE_MAX_BYTES: no many area",
  );
});

test("scratch buffers hold values only where wasm copies them: not per-CPU values, not values over 1 KiB", () => {
  const g = (vs: number, percpu = false) => G.computeGeometry(4, vs, 1024, 64, percpu);
  assert.equal(g(8).scratchValueBytes, 8);
  assert.equal(g(1024).scratchValueBytes, 1024);
  assert.equal(g(1025).scratchValueBytes, 0);
  assert.equal(g(8, true).scratchValueBytes, 0, "64 CPUs x 8 B would be copied per lookup");
  // 64 slots of a 32 KiB per-CPU value would otherwise be 64 x 2 MiB of scratch.
  assert.equal(g(32768, true).scratchStride, L.SCRATCH_DESC_BYTES + 64);
});

test("wasm jhash2 equals the JS jhash2 (kernel jhash2) on random words", () => {
  const mem = allocSharedMemory(4096);
  assert.ok(mem !== null, "this Node has shared wasm memory");
  const fp = fastPathFor(mem) as FastPath;
  const words = new Int32Array(mem.buffer);
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 40 }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      (ws, initval) => {
        words.set(ws, 16);
        assert.equal(
          fp.jhash2(64, ws.length, initval),
          jhash2Int(Int32Array.from(ws), 0, ws.length, initval),
        );
      },
    ),
    { numRuns: 2000 },
  );
});

test("fastPath: default on for preallocated maps, off on request and for NO_PREALLOC", () => {
  const spec = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 };
  const on = Htab.create(spec, { nrCpus: 3 });
  assert.ok(on.fastPath && on.handle.memory !== undefined);
  assert.equal(on.handle.sab.byteLength % 65536, 0, "a wasm memory is whole pages");
  const off = Htab.create(spec, { nrCpus: 2, fastPath: false, privileged: true });
  assert.ok(!off.fastPath && off.handle.memory === undefined);
  const grow = Htab.create({ ...spec, flags: MapFlags.NoPrealloc }, { nrCpus: 2 });
  assert.ok(!grow.fastPath, "a growable map stays on a plain SharedArrayBuffer");
  // Attaching with the buffer alone runs the JS path on the same memory.
  const js = Htab.attach(on.handle.sab);
  assert.ok(!js.fastPath);
  const wasm = Htab.attach(on.handle);
  assert.ok(wasm.fastPath);
  // A memory that is not the buffer's would make the two paths work on different bytes.
  assert.throws(() => Htab.attach({ sab: off.handle.sab, memory: on.handle.memory }), {
    code: "EINVAL",
    message: /handle.memory/,
  });
  for (const m of [js, wasm, on, off, grow]) m.close();
});

type Op =
  | { op: "update"; key: number; value: number; flags: number }
  | { op: "delete"; key: number }
  | { op: "lookup"; key: number }
  | { op: "has"; key: number }
  | { op: "lookupAndDelete"; key: number }
  | { op: "lookupScratch"; key: number }
  | { op: "updateScratch"; key: number; value: number; flags: number }
  | { op: "deleteScratch"; key: number }
  | { op: "lookupMany"; keys: number[] }
  | { op: "programLookup"; key: number }
  | { op: "section" };

/** `updates`: how much more often than each other operation an update comes (a full LRU map evicts). */
const opArb = (keys: number, updates = 1): fc.Arbitrary<Op> =>
  fc.oneof(
    {
      weight: updates,
      arbitrary: fc.record({
        op: fc.constant("update" as const),
        key: fc.nat(keys - 1),
        value: fc.nat(),
        flags: fc.constantFrom(0, 0, 1, 2),
      }),
    },
    fc.record({ op: fc.constant("delete" as const), key: fc.nat(keys - 1) }),
    fc.record({ op: fc.constant("lookup" as const), key: fc.nat(keys - 1) }),
    fc.record({ op: fc.constant("has" as const), key: fc.nat(keys - 1) }),
    fc.record({ op: fc.constant("lookupAndDelete" as const), key: fc.nat(keys - 1) }),
    // The allocation-free path: the key and value in the slot's own scratch.
    fc.record({ op: fc.constant("lookupScratch" as const), key: fc.nat(keys - 1) }),
    fc.record({
      op: fc.constant("updateScratch" as const),
      key: fc.nat(keys - 1),
      value: fc.nat(),
      flags: fc.constantFrom(0, 1, 2),
    }),
    fc.record({ op: fc.constant("deleteScratch" as const), key: fc.nat(keys - 1) }),
    fc.record({
      op: fc.constant("lookupMany" as const),
      keys: fc.array(fc.nat(keys - 1), { maxLength: 20 }),
    }),
    // A program's lookup (sets an LRU key's ref bit), and a program section
    // opened or closed on the first view (freed elements wait in limbo meanwhile).
    fc.record({ op: fc.constant("programLookup" as const), key: fc.nat(keys - 1) }),
    fc.record({ op: fc.constant("section" as const) }),
  );

/** The key bytes of key number `k`: every word differs, the last (partial) one too. */
function keyOf(k: number, key: Uint8Array): Uint8Array {
  key.fill(0);
  new DataView(key.buffer, key.byteOffset, key.length).setUint32(0, k * 2654435761, true);
  key[key.length - 1] ^= k;
  return key;
}

/** Run `ops` on a map; `pick(i)` chooses which attached view does op i. Returns every result. */
function run(
  views: Htab[],
  pick: (i: number) => number,
  ops: Op[],
  keySize: number,
  valueBytes: number,
): unknown[] {
  const key = new Uint8Array(keySize);
  const value = new Uint8Array(valueBytes);
  const out = new Uint8Array(valueBytes);
  const results: unknown[] = [];
  ops.forEach((o, i) => {
    const m = views[pick(i)];
    if ("key" in o) keyOf(o.key, key);
    out.fill(0xee);
    switch (o.op) {
      case "update":
        for (let b = 0; b < valueBytes; b++) value[b] = (o.value >>> ((b % 4) * 8)) + b;
        results.push(m.updateElem(key, value, o.flags));
        break;
      case "delete":
        results.push(m.deleteElem(key));
        break;
      case "lookup":
        results.push([m.lookupElem(key, out, 0), Array.from(out)]);
        break;
      case "has":
        results.push(m.hasElem(key));
        break;
      case "lookupAndDelete":
        results.push([m.lookupAndDeleteElem(key, out, 0), Array.from(out)]);
        break;
      case "lookupScratch":
        m.keyScratch.set(key);
        results.push([m.lookupScratch(), m.lookupScratch() === 0 ? Array.from(m.valueScratch) : null]);
        break;
      case "updateScratch":
        m.keyScratch.set(key);
        for (let b = 0; b < valueBytes; b++) m.valueScratch[b] = (o.value >>> ((b % 4) * 8)) + b;
        results.push(m.updateScratch(o.flags));
        break;
      case "deleteScratch":
        m.keyScratch.set(key);
        results.push(m.deleteScratch());
        break;
      case "lookupMany": {
        const keys = new Uint8Array(o.keys.length * keySize);
        for (const [j, k] of o.keys.entries()) keys.set(keyOf(k, new Uint8Array(keySize)), j * keySize);
        const values = new Uint8Array(o.keys.length * valueBytes).fill(0xee);
        const res = new Int32Array(o.keys.length);
        // Each key as lookupElem() finds it, in order.
        const single = o.keys.map((k) => {
          const r = m.lookupElem(keyOf(k, new Uint8Array(keySize)), out.fill(0xee), 0);
          return [r, Array.from(out)];
        });
        const found = m.lookupMany(keys, values, res);
        assert.deepEqual(
          o.keys.map((_, j) => [res[j], Array.from(values.subarray(j * valueBytes, (j + 1) * valueBytes))]),
          single.map(([r, v]) => [r, r === 0 ? v : Array(valueBytes).fill(0xee)]),
          "lookupMany() equals single lookups",
        );
        results.push([found, Array.from(res), Array.from(values)]);
        break;
      }
      case "programLookup":
        results.push(m.run(() => m.lookupRef(key) !== null));
        break;
      case "section":
        if (views[0].inSection) views[0].exit();
        else views[0].enter();
        break;
    }
  });
  if (views[0].inSection) views[0].exit();
  results.push([...new BpfMap(views[0]).keys()].map((k) => Array.from(k)));
  return results;
}

const configs = [
  { name: "HASH u32 key / u64 value", type: MapType.Hash, keySize: 4, valueSize: 8 },
  {
    name: "HASH u32 key / u64 value, no home elements",
    type: MapType.Hash,
    keySize: 4,
    valueSize: 8,
    homeElements: false,
  },
  { name: "HASH 16 B key / 64 B value", type: MapType.Hash, keySize: 16, valueSize: 64 },
  { name: "HASH 6 B key (hashed in JS) / 12 B value", type: MapType.Hash, keySize: 6, valueSize: 12 },
  { name: "PERCPU_HASH u32 key / 4 B value", type: MapType.PercpuHash, keySize: 4, valueSize: 4 },
  {
    name: "HASH u32 key / 2 KiB value (values over 1 KiB copy in JS)",
    type: MapType.Hash,
    keySize: 4,
    valueSize: 2048,
  },
  { name: "LRU_HASH u32 key / u64 value", type: MapType.LruHash, keySize: 4, valueSize: 8 },
  // Refills of 8 nodes, rotations, evictions of referenced keys, steals between the two views' CPUs.
  {
    name: "LRU_HASH 64 entries, 160 keys, 4 CPUs",
    type: MapType.LruHash,
    keySize: 4,
    valueSize: 8,
    maxEntries: 64,
    keys: 160,
    nrCpus: 4,
    // (fast-check keeps arrays short unless told: at least 300 operations here.)
    minOps: 300,
    maxOps: 600,
    updates: 12,
    runs: 40,
  },
  { name: "LRU_HASH 8 B key / 24 B value", type: MapType.LruHash, keySize: 8, valueSize: 24 },
];

for (const c of configs) {
  test(`${c.name}: the wasm fast path, the JS path and both at once give the same results and bytes`, () => {
    fc.assert(
      fc.property(
        fc.array(opArb(c.keys ?? 12, c.updates), { minLength: c.minOps ?? 1, maxLength: c.maxOps ?? 120 }),
        fc.nat(),
        (ops, mix) => {
          const spec = {
            type: c.type,
            keySize: c.keySize,
            valueSize: c.valueSize,
            maxEntries: c.maxEntries ?? 8,
            flags: MapFlags.ZeroSeed,
          };
          const opts = { nrCpus: c.nrCpus ?? 2, privileged: true, homeElements: c.homeElements ?? true };
          const fast = Htab.create(spec, opts);
          const js = Htab.create(spec, { ...opts, fastPath: false });
          const both = Htab.create(spec, opts);
          const bothJs = Htab.attach(both.handle.sab, { cpu: 1 });
          // The same two CPUs on the JS path alone: which CPU runs an operation
          // decides which local list an LRU map pops from (and so what it evicts).
          const twin = Htab.create(spec, { ...opts, fastPath: false });
          const twin1 = Htab.attach(twin.handle.sab, { cpu: 1 });
          assert.ok(fast.fastPath && !js.fastPath && both.fastPath && !bothJs.fastPath && !twin.fastPath);
          const vb = G.readGeometry(fast.handle.sab).g.valueBytes;
          const a = run([fast], () => 0, ops, c.keySize, vb);
          const b = run([js], () => 0, ops, c.keySize, vb);
          const pick = (i: number) => (mix >>> (i % 30)) & 1;
          const m = run([both, bothJs], pick, ops, c.keySize, vb);
          const t = run([twin, twin1], pick, ops, c.keySize, vb);
          assert.deepEqual(a, b);
          assert.deepEqual(m, t);
          if (c.type !== MapType.LruHash) assert.deepEqual(a, m);
          assert.deepEqual(fast.stateBytes(), js.stateBytes(), "same bytes on either path");
          assert.deepEqual(
            both.stateBytes(),
            twin.stateBytes(),
            "same bytes with two CPUs, one of them on wasm",
          );
          for (const h of [fast, js, both, twin]) assert.ok(h.fsck().ok);
          for (const h of [fast, js, bothJs, both, twin1, twin]) h.close();
        },
      ),
      { numRuns: c.runs ?? 150 },
    );
  });
}

test("a frozen map refuses updates and deletes on the fast path as on the JS path (EPERM, nothing changed)", () => {
  for (const fastPath of [true, false]) {
    const m = Htab.create(
      { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8 },
      { nrCpus: 2, fastPath },
    );
    const k = new Uint8Array([1, 0, 0, 0]);
    assert.equal(m.updateElem(k, new Uint8Array(8).fill(3), 0), 0);
    assert.equal(m.freeze(), 0);
    const before = m.stateBytes();
    assert.equal(m.updateElem(k, new Uint8Array(8), 0), -1);
    assert.match(m.lastError, /frozen/);
    assert.equal(m.updateElem(new Uint8Array([2, 0, 0, 0]), new Uint8Array(8), 0), -1);
    assert.equal(m.deleteElem(k), -1);
    assert.match(m.lastError, /frozen/);
    assert.deepEqual(m.stateBytes(), before);
    const out = new Uint8Array(8);
    assert.equal(m.lookupElem(k, out, 0), 0, "lookups still work");
    assert.deepEqual(out, new Uint8Array(8).fill(3));
    m.close();
  }
});

test("LRU eviction whose victim's bucket is held past the timeout: wasm (through its JS wait) and JS both skip that victim, same bytes", () => {
  const spec = { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: 8, flags: MapFlags.ZeroSeed };
  const key = (k: number) => keyOf(k, new Uint8Array(4));
  const v = new Uint8Array(8);
  const present = (m: Htab) =>
    [...new BpfMap(m).keys()].map((k) => new DataView(k.buffer).getUint32(0, true));
  // Which key the first evicting insert takes, with nothing held.
  const probe = Htab.create(spec, { nrCpus: 2, fastPath: false, privileged: true });
  for (let k = 0; k < 8; k++) probe.updateElem(key(k), v, 0);
  const before = new Set(present(probe));
  probe.updateElem(key(100), v, 0);
  const victims = [...before].filter((k) => !present(probe).includes(k));
  assert.ok(victims.length > 0, "the insert into the full map evicted");
  const after = present(probe).length; // a refill evicts target_free (2) at once
  probe.close();
  const maps: Htab[] = [];
  for (const fastPath of [true, false]) {
    const m = Htab.create(spec, { nrCpus: 2, fastPath, privileged: true });
    assert.equal(m.fastPath, fastPath);
    const other = Htab.attach(fastPath ? m.handle : m.handle.sab, { cpu: 1 });
    for (let k = 0; k < 8; k++) m.updateElem(key(k), v, 0);
    // CPU 1 holds the first victim's bucket (inside compute()) while CPU 0 inserts.
    const word = (k: number) => new DataView(key(k).buffer).getUint32(0, true);
    const victim = key([0, 1, 2, 3, 4, 5, 6, 7].find((k) => word(k) === victims[0]) as number);
    let r = -1;
    other.compute(victim, (cur) => {
      r = m.updateElem(key(100), v, 0);
      return cur;
    });
    assert.equal(r, 0, "the insert still succeeds: another element was evicted");
    if (fastPath) {
      // The wasm eviction went through its JS wait and recorded the bucket it gave up on.
      const view = (m as unknown as { v: { scratchDesc: number } }).v;
      const desc = view.scratchDesc;
      const gaveUp = new Int32Array(m.handle.sab)[desc + L.SCRATCH_EVICT_TIMEDOUT_I32];
      assert.notEqual(gaveUp, 0, "EVICT_TIMEDOUT names the bucket the eviction gave up on");
    }
    assert.ok(present(m).includes(victims[0]), "the held victim was not evicted");
    assert.equal(present(m).length, after);
    assert.ok(m.fsck().ok);
    other.close();
    maps.push(m);
  }
  assert.deepEqual(maps[0].stateBytes(), maps[1].stateBytes(), "same bytes on either path");
  for (const m of maps) m.close();
});
