import assert from "node:assert/strict";
import { test } from "node:test";
import { BpfMap } from "../../src/api/bpf-map.js";
import { TypedMap } from "../../src/api/typed-map.js";
import { Htab } from "../../src/core/htab.js";
import type { BpfError } from "../../src/errors.js";
import * as codecs from "../../src/map/codecs.js";
import type { RawMap } from "../../src/map/raw-map.js";
import { MapFlags, MapType } from "../../src/uapi.js";

test("TypedMap behaves like a Map over u32 -> u64", () => {
  const m = new TypedMap(
    Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 }, { nrCpus: 1 }),
    codecs.u32,
    codecs.u64,
  );
  assert.equal(m.get(1), undefined);
  m.set(1, 10n).set(2, 20n);
  assert.equal(m.get(1), 10n);
  assert.equal(m.has(2), true);
  assert.equal(m.size, 2);
  assert.deepEqual(
    new Map(m),
    new Map([
      [1, 10n],
      [2, 20n],
    ]),
  );
  assert.equal(m.delete(1), true);
  assert.equal(m.delete(1), false);
  assert.throws(() => m.set(2, 1n, 1), { code: "EEXIST" });
  m.clear();
  assert.equal(m.size, 0);
  assert.throws(() => m.set(4294967296, 1n), { code: "EINVAL" });
});

test("TypedMap refuses codecs whose size does not match the map", () => {
  const raw = Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 }, { nrCpus: 1 });
  assert.throws(() => new TypedMap(raw, codecs.u64, codecs.u64), { code: "EINVAL" });
});

test("struct codec lays fields out as C does and round-trips", () => {
  const tuple = codecs.struct([
    { name: "saddr", codec: codecs.u32 },
    { name: "daddr", codec: codecs.u32 },
    { name: "sport", codec: codecs.u16 },
    { name: "dport", codec: codecs.u16 },
    { name: "proto", codec: codecs.u8 },
  ]);
  assert.equal(tuple.size, 16);
  assert.deepEqual(tuple.offsets, { saddr: 0, daddr: 4, sport: 8, dport: 10, proto: 12 });
  const ct = codecs.struct([
    { name: "last_seen", codec: codecs.u64 },
    { name: "packets", codec: codecs.u32 },
  ]);
  assert.equal(ct.size, 16);
  const m = new TypedMap(
    Htab.create({ type: MapType.Hash, keySize: 16, valueSize: 16, maxEntries: 4 }, { nrCpus: 1 }),
    tuple,
    ct,
  );
  const k = { saddr: 1, daddr: 2, sport: 3, dport: 443, proto: 6 };
  m.set(k, { last_seen: 5n, packets: 9 });
  assert.deepEqual(m.get({ ...k }), { last_seen: 5n, packets: 9 });
  assert.throws(() => m.set({ saddr: 1 } as never, { last_seen: 1n, packets: 1 }), { code: "EINVAL" });
});

test("BpfMap: throwing layer, keys/entries in zero-seed order, and batches that grow on ENOSPC", async () => {
  const raw = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8, flags: MapFlags.ZeroSeed },
    { privileged: true, nrCpus: 1 },
  );
  const m = new BpfMap(raw);
  const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
  for (let i = 1; i <= 6; i++) m.update(u32(i), new Uint8Array(8).fill(i));
  // t_batch.txt: buckets 1->3 2->2 3->7 4->1 5->6 6->6 give the order 4 2 1 6 5 3
  assert.deepEqual(
    [...m.keys()].map((k) => k[0]),
    [4, 2, 1, 6, 5, 3],
  );
  assert.throws(() => m.update(u32(9), new Uint8Array(8), 2), { code: "ENOENT", op: "update" });
  assert.throws(() => m.lookupBatch({ count: 1, inBatch: 6 }), { code: "ENOSPC" });
  const seen: number[] = [];
  for await (const b of m.batches({ count: 1 })) for (let i = 0; i < b.count; i++) seen.push(b.keys[i * 4]);
  assert.deepEqual(seen, [4, 2, 1, 6, 5, 3]);
  const drained: number[] = [];
  for await (const b of m.batches({ count: 2, delete: true }))
    for (let i = 0; i < b.count; i++) drained.push(b.keys[i * 4]);
  assert.deepEqual(drained, [4, 2, 1, 6, 5, 3]);
  assert.equal(raw.count(), 0);
});

test("workers: a map posted to a worker is the same map", async () => {
  const { Worker } = await import("node:worker_threads");
  const raw = Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8 }, { nrCpus: 2 });
  const src = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(${JSON.stringify(new URL("../../src/index.js", import.meta.url).href)}).then(({ attach, TypedMap, codecs }) => {
      const m = new TypedMap(attach(workerData), codecs.u32, codecs.u64);
      m.set(7, m.get(7) + 1n);
      parentPort.postMessage(m.raw.cpu);
    });`;
  const t = new TypedMap(raw, codecs.u32, codecs.u64);
  t.set(7, 41n);
  const w = new Worker(src, { eval: true, workerData: raw.handle });
  const cpu = await new Promise((r) => w.once("message", r));
  await new Promise((r) => w.once("exit", r));
  assert.equal(cpu, 1);
  assert.equal(t.get(7), 42n);
});

test("watchWorker reaps the slot of a worker that was terminated without close()", async () => {
  const { Worker } = await import("node:worker_threads");
  const { watchWorker } = await import("../../src/api/create.js");
  const raw = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8 },
    { nrCpus: 2, cpu: 0 },
  );
  const src = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(${JSON.stringify(new URL("../../src/index.js", import.meta.url).href)}).then(({ attach }) => {
      attach(workerData, { cpu: 1 });
      parentPort.postMessage("attached");
      setInterval(() => {}, 1000);
    });`;
  const w = new Worker(src, { eval: true, workerData: raw.handle });
  watchWorker(raw, w, 1);
  await new Promise((r) => w.once("message", r));
  assert.throws(() => Htab.attach(raw.handle, { cpu: 1 }), { code: "EBUSY" });
  await w.terminate();
  await new Promise((r) => setTimeout(r, 10));
  Htab.attach(raw.handle, { cpu: 1 }).close(); // the slot is free again
});

test("TypedMap's scratch path (keys written as words, values decoded in place) equals the codec path, keys and errors alike", async () => {
  const fc = (await import("fast-check")).default;
  const keyArb = {
    u32: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(-1, 1.5, 2 ** 32, Number.NaN)),
    u64: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(-1n, 2n ** 64n)),
  } as const;
  for (const [name, codec, keySize] of [
    ["u32", codecs.u32, 4],
    ["u64", codecs.u64, 8],
  ] as const) {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom("set", "get", "has", "delete", "getMany"),
            keyArb[name],
            fc.bigInt({ min: 0n, max: 99n }),
          ),
          {
            maxLength: 60,
          },
        ),
        (ops) => {
          const spec = {
            type: MapType.Hash,
            keySize,
            valueSize: 8,
            maxEntries: 16,
            flags: MapFlags.ZeroSeed,
          };
          const a = Htab.create(spec, { nrCpus: 1, privileged: true });
          const b = Htab.create(spec, { nrCpus: 1, privileged: true });
          // The same map behind a RawMap without the scratch path: TypedMap takes the codec path.
          const plain = {
            info: b.info,
            get lastError() {
              return b.lastError;
            },
            lookupElem: b.lookupElem.bind(b),
            updateElem: b.updateElem.bind(b),
            deleteElem: b.deleteElem.bind(b),
            lookupAndDeleteElem: b.lookupAndDeleteElem.bind(b),
            getNextKey: b.getNextKey.bind(b),
            lookupBatch: b.lookupBatch.bind(b),
            lookupAndDeleteBatch: b.lookupAndDeleteBatch.bind(b),
            updateBatch: b.updateBatch.bind(b),
            deleteBatch: b.deleteBatch.bind(b),
            freeze: b.freeze.bind(b),
            count: b.count.bind(b),
            memoryUsage: b.memoryUsage.bind(b),
            mapRef: b.mapRef.bind(b),
            close: b.close.bind(b),
          };
          const ta = new TypedMap(a, codec as codecs.Codec<unknown>, codecs.u64);
          const tb = new TypedMap(plain as never, codec as codecs.Codec<unknown>, codecs.u64);
          const run = (t: TypedMap<unknown, bigint>, op: string, k: unknown, v: bigint) => {
            try {
              if (op === "set") return t.set(k, v) === t;
              if (op === "get") return t.get(k);
              if (op === "has") return t.has(k);
              if (op === "delete") return t.delete(k);
              return t.getMany([k, k]);
            } catch (e) {
              return `${(e as { code?: string }).code}: ${(e as Error).message}`;
            }
          };
          for (const [op, k, v] of ops)
            assert.deepEqual(run(ta, op, k, v), run(tb, op, k, v), `${op} ${String(k)}`);
          assert.deepEqual(a.stateBytes(), b.stateBytes(), "the same map bytes");
          a.close();
          b.close();
        },
      ),
      { numRuns: 200 },
    );
  }
});

/** A codec of your own that writes only the string's bytes and does not declare writesAll (issue 25). */
const shortWriter: codecs.Codec<string> = {
  size: 16,
  encode(v, buf, off) {
    buf.set(new TextEncoder().encode(v), off);
  },
  decode(buf, off) {
    const b = buf.slice(off, off + 16);
    const end = b.indexOf(0);
    return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
  },
};

test("a codec that writes fewer than its bytes leaks no stale bytes: 'short' is not 'shortg-key-name'", () => {
  for (const [name, raw] of [
    [
      "htab (scratch path)",
      Htab.create({ type: MapType.Hash, keySize: 16, valueSize: 16, maxEntries: 8 }, { nrCpus: 1 }),
    ],
    [
      "another backend (key and value buffers)",
      (() => {
        const h = Htab.create(
          { type: MapType.Hash, keySize: 16, valueSize: 16, maxEntries: 8 },
          { nrCpus: 1 },
        );
        // Only the RawMap calls: no scratch path.
        return {
          info: h.info,
          get lastError() {
            return h.lastError;
          },
          lookupElem: h.lookupElem.bind(h),
          updateElem: h.updateElem.bind(h),
          deleteElem: h.deleteElem.bind(h),
          getNextKey: h.getNextKey.bind(h),
        } as unknown as RawMap;
      })(),
    ],
  ] as const) {
    const t = new TypedMap(raw, shortWriter, shortWriter);
    t.set("strong-key-name", "a-long-value-xyz");
    t.set("short", "v");
    assert.deepEqual([...t.keys()].sort(), ["short", "strong-key-name"], name);
    assert.equal(t.get("short"), "v", name);
    assert.equal(t.get("s"), undefined, name);
    assert.equal(t.has("strong"), false, name);
  }
});

test("touch: reads through the view mark LRU recency as a program lookup does, and plain reads do not", () => {
  const survivors = (touch: boolean): number => {
    const map = Htab.create(
      { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: 64 },
      { nrCpus: 1 },
    );
    const t = new TypedMap(map, codecs.u32, codecs.u64, { touch });
    for (let k = 0; k < 64; k++) t.set(k, BigInt(k));
    let kept = 0;
    // A hot set of 8 keys read between every insert of 192 new keys: a cache keeps it.
    for (let k = 64; k < 256; k++) {
      for (let h = 0; h < 8; h++) t.get(h);
      t.set(k, BigInt(k));
    }
    for (let h = 0; h < 8; h++)
      if (map.lookupElem(new Uint8Array(new Uint32Array([h]).buffer), new Uint8Array(8)) === 0) kept++;
    map.close();
    return kept;
  };
  assert.equal(survivors(true), 8, "every hot key survives when reads touch");
  assert.equal(
    survivors(false),
    0,
    "control-plane reads do not keep a key (kernel: bpf() lookups never mark)",
  );
});

test("touch: getMany and BpfMap.lookup mark too; a miss is undefined; a kernel-like map without program lookups is EOPNOTSUPP", () => {
  const map = Htab.create({ type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: 32 }, { nrCpus: 1 });
  const t = new TypedMap(map, codecs.u32, codecs.u64, { touch: true });
  const b = new BpfMap(map, { touch: true });
  for (let k = 0; k < 32; k++) t.set(k, BigInt(k));
  for (let k = 32; k < 128; k++) {
    assert.deepEqual(t.getMany([0, 1, 1000]), [0n, 1n, undefined]);
    assert.notEqual(b.lookup(new Uint8Array([2, 0, 0, 0])), undefined);
    t.set(k, BigInt(k));
  }
  assert.deepEqual(t.getMany([0, 1, 2]), [0n, 1n, 2n]);
  assert.equal(t.get(5000), undefined);
  assert.equal(b.lookup(new Uint8Array([0x88, 0x13, 0, 0])), undefined);
  assert.throws(() => b.lookup(new Uint8Array(3)), { code: "EINVAL", message: /^lookup: / });
  const bare = { info: map.info, lastError: "", lookupElem: () => 0 } as unknown as RawMap;
  assert.throws(() => new TypedMap(bare, codecs.u32, codecs.u64, { touch: true }), {
    code: "EOPNOTSUPP",
    message: /^TypedMap: \{ touch: true \} needs a map with program lookups/,
  });
  assert.throws(() => new BpfMap(bare, { touch: true }), { code: "EOPNOTSUPP" });
  map.close();
});

test("a closed map's error names the user's call, not an internal one", () => {
  const map = Htab.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 }, { nrCpus: 1 });
  const t = new TypedMap(map, codecs.u32, codecs.u64);
  map.close();
  for (const [op, call] of [
    ["get", () => t.get(1)],
    ["has", () => t.has(1)],
    ["set", () => t.set(1, 1n)],
    ["delete", () => t.delete(1)],
  ] as const)
    assert.throws(
      call,
      (e: BpfError) => e.code === "EINVAL" && e.op === op && /map is closed/.test(e.message),
    );
});
