/** Model-based test: random command sequences on Htab and on a plain model must agree. */

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";
import { HashModel, hex } from "../helpers/model.js";

interface Real {
  map: Htab;
}

function keyBytes(k: number, ks: number): Uint8Array {
  const b = new Uint8Array(ks);
  for (let i = 0; i < ks; i++) b[i] = (k * (i + 7)) & 0xff;
  b[0] = k;
  return b;
}

function valueBytes(v: number, vs: number): Uint8Array {
  const b = new Uint8Array(vs);
  for (let i = 0; i < vs; i++) b[i] = (v + i * 31) & 0xff;
  return b;
}

type Cmd = fc.Command<HashModel, Real>;

function commands(ks: number, vs: number, keySpace: number): fc.Arbitrary<Cmd>[] {
  const key = fc.integer({ min: 0, max: keySpace - 1 });
  const flags = fc.constantFrom(0, 0, 1, 2, 3, 4);
  const check = (m: HashModel, r: Real) => {
    assert.deepEqual(
      orderOf(r.map, ks),
      m.order(),
      "get_next_key walk must follow the zero-seed bucket/chain order",
    );
    assert.equal(r.map.count(), m.count);
  };
  return [
    fc.tuple(key, fc.integer({ min: 0, max: 255 }), flags).map(
      ([k, v, f]): Cmd => ({
        check: () => true,
        run(m, r) {
          const kb = keyBytes(k, ks);
          const vb = valueBytes(v, vs);
          assert.equal(r.map.updateElem(kb, vb, f), m.update(kb, vb, f), `update(${k}, ${v}, ${f})`);
          check(m, r);
        },
        toString: () => `update(${k},${v},${f})`,
      }),
    ),
    fc.tuple(key, fc.constantFrom(0, 0, 1, 4)).map(
      ([k, f]): Cmd => ({
        check: () => true,
        run(m, r) {
          const out = new Uint8Array(vs);
          const want = m.lookup(keyBytes(k, ks), f);
          assert.equal(r.map.lookupElem(keyBytes(k, ks), out, f), want.err);
          if (want.err === 0) assert.equal(hex(out), want.value);
        },
        toString: () => `lookup(${k},${f})`,
      }),
    ),
    key.map(
      (k): Cmd => ({
        check: () => true,
        run(m, r) {
          assert.equal(r.map.deleteElem(keyBytes(k, ks)), m.delete(keyBytes(k, ks)));
          check(m, r);
        },
        toString: () => `delete(${k})`,
      }),
    ),
    key.map(
      (k): Cmd => ({
        check: () => true,
        run(m, r) {
          const out = new Uint8Array(vs);
          const want = m.lookupAndDelete(keyBytes(k, ks));
          assert.equal(r.map.lookupAndDeleteElem(keyBytes(k, ks), out), want.err);
          if (want.err === 0) assert.equal(hex(out), want.value);
          check(m, r);
        },
        toString: () => `lookupAndDelete(${k})`,
      }),
    ),
    fc.option(key, { nil: null }).map(
      (k): Cmd => ({
        check: () => true,
        run(m, r) {
          const kb = k === null ? null : keyBytes(k, ks);
          const out = new Uint8Array(ks);
          const want = m.getNextKey(kb);
          assert.equal(r.map.getNextKey(kb, out), want.err);
          if (want.err === 0) assert.equal(hex(out), want.key);
        },
        toString: () => `getNextKey(${k})`,
      }),
    ),
    fc
      .tuple(
        fc.option(fc.integer({ min: 0, max: 20 }), { nil: null }),
        fc.integer({ min: 0, max: 6 }),
        fc.boolean(),
      )
      .map(
        ([inBatch, count, del]): Cmd => ({
          check: () => true,
          run(m, r) {
            const want = m.lookupBatch(inBatch, count, del);
            const got = del
              ? r.map.lookupAndDeleteBatch({ inBatch, count })
              : r.map.lookupBatch({ inBatch, count });
            assert.equal(got.err, want.err, "batch errno");
            assert.equal(got.count, want.count, "batch count");
            assert.equal(got.outBatch, want.outBatch, "out_batch");
            const keys = Array.from({ length: got.err === 0 || got.err === -2 ? got.count : 0 }, (_, i) =>
              hex(got.keys.subarray(i * ks, (i + 1) * ks)),
            );
            assert.deepEqual(keys, want.keys);
            check(m, r);
          },
          toString: () => `${del ? "lookupAndDeleteBatch" : "lookupBatch"}(${inBatch},${count})`,
        }),
      ),
  ];
}

function orderOf(map: Htab, ks: number): string[] {
  const out: string[] = [];
  let prev: Uint8Array | null = null;
  const k = new Uint8Array(ks);
  while (map.getNextKey(prev, k) === 0) {
    out.push(hex(k));
    prev = k.slice();
    if (out.length > 1000) throw new Error("walk does not end");
  }
  return out;
}

const PERCPU_CPUS = 2;

for (const [ks, vs, extraFlags, type] of [
  [4, 8, 0, MapType.Hash],
  [3, 5, 0, MapType.Hash],
  [16, 64, 0, MapType.Hash],
  [4, 8, MapFlags.NoPrealloc, MapType.Hash],
  // Per-CPU: the control plane moves PERCPU_CPUS x round_up(4, 8) = 16 bytes per value.
  [4, 16, 0, MapType.PercpuHash],
  // LRU maps far below capacity (15 keys, 120 entries, one thread) never evict: the HASH model applies.
  [4, 8, 0, MapType.LruHash],
  [4, 8, MapFlags.NoCommonLru, MapType.LruHash],
  [4, 16, 0, MapType.LruPercpuHash],
] as const) {
  const percpu = type === MapType.PercpuHash || type === MapType.LruPercpuHash;
  const lru = type === MapType.LruHash || type === MapType.LruPercpuHash;
  const what = `${extraFlags === MapFlags.NoPrealloc ? ", BPF_F_NO_PREALLOC" : ""}${extraFlags === MapFlags.NoCommonLru ? ", BPF_F_NO_COMMON_LRU" : ""}${percpu ? ", per-CPU" : ""}${lru ? ", LRU" : ""}`;
  test(`Htab agrees with the reference model (key_size ${ks}, value_size ${vs}${what})`, () => {
    let ops = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 4 }),
        fc.commands(commands(ks, vs, 14), { maxCommands: 80, size: "max" }),
        (small, nrCpus, cmds) => {
          // 120 is a multiple of every nrCpus drawn (1..4): NO_COMMON_LRU does not round it.
          const maxEntries = lru ? 120 : small;
          const map = Htab.create(
            {
              type,
              keySize: ks,
              valueSize: percpu ? 4 : vs,
              maxEntries,
              flags: MapFlags.ZeroSeed | extraFlags,
            },
            { privileged: true, nrCpus: percpu ? PERCPU_CPUS : nrCpus, homeElements: small % 2 === 1 },
          );
          const model = new HashModel(ks, maxEntries, 0, percpu);
          fc.modelRun(() => ({ model, real: { map } }), cmds);
          const f = map.fsck();
          assert.ok(f.ok, f.errors.join("; "));
          ops += [...cmds].length;
        },
      ),
      { numRuns: 300 },
    );
    console.log(`model-based (ks=${ks}): ${ops} commands checked`);
  });
}
