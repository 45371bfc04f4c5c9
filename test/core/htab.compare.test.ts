/** compareAndDelete, compareAndSwap and compute: semantics, errno, and no change on failure. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const val = (a: number, b: number) => new Uint8Array(new Uint32Array([a, b]).buffer);

function map(flags = 0): Htab {
  return Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 2, flags: flags | MapFlags.ZeroSeed },
    { privileged: true, nrCpus: 2 },
  );
}

/** The map's bytes, its slots' scratch buffers (working memory, not contents) zeroed. */
function snap(m: Htab): Uint8Array {
  return m.stateBytes();
}

test("compareAndDelete deletes only when the region matches", () => {
  const m = map();
  m.updateElem(u32(1), val(10, 20), 0);
  const before = snap(m);
  assert.equal(m.compareAndDeleteElem(u32(1), u32(11), 0, 4), -16);
  assert.match(m.lastError, /changed/);
  assert.deepEqual(snap(m), before, "EBUSY leaves the map byte-identical");
  assert.equal(m.compareAndDeleteElem(u32(1), u32(20), 4, 4), 0);
  assert.equal(m.compareAndDeleteElem(u32(1), u32(20), 4, 4), -2);
  assert.equal(m.count(), 0);
  assert.ok(m.fsck().ok);
});

test("compareAndDelete rejects a bad region with EINVAL and changes nothing", () => {
  const m = map();
  m.updateElem(u32(1), val(10, 20), 0);
  const before = snap(m);
  assert.equal(m.compareAndDeleteElem(u32(1), u32(10), 6, 4), -22);
  assert.equal(m.compareAndDeleteElem(u32(1), u32(10), -1, 4), -22);
  assert.equal(m.compareAndDeleteElem(u32(1), u32(10), 0, 2), -22);
  assert.equal(m.compareAndDeleteElem(u32(1), new Uint8Array(0), 0, 0), -22);
  assert.throws(() => m.compareAndDeleteElem(u32(1), [10, 0, 0, 0] as unknown as Uint8Array, 0, 4), {
    code: "EINVAL",
  });
  assert.deepEqual(snap(m), before);
});

test("compareAndDelete needs read and write access", () => {
  const ro = map(MapFlags.Rdonly);
  assert.equal(ro.compareAndDeleteElem(u32(1), u32(1), 0, 4), -1);
  const m = map();
  m.updateElem(u32(1), val(1, 1), 0);
  m.freeze();
  assert.equal(m.compareAndDeleteElem(u32(1), u32(1), 0, 4), -1);
});

test("compareAndDeleteBatch reports per key and does not stop at a failure", () => {
  const m = map();
  m.updateElem(u32(1), val(1, 0), 0);
  m.updateElem(u32(2), val(2, 0), 0);
  const keys = new Uint8Array([...u32(1), ...u32(3), ...u32(2)]);
  const exp = new Uint8Array([...u32(9), ...u32(3), ...u32(2)]);
  const res = new Int32Array(3);
  assert.equal(m.compareAndDeleteBatch(keys, exp, 3, 0, 4, res), 1);
  assert.deepEqual([...res], [-16, -2, 0]);
  assert.equal(m.count(), 1);
});

test("compareAndSwap replaces the whole value only on a match, with the kernel's replace order", () => {
  const m = map();
  // keys 0 and 2 share a bucket at n_buckets=2 under seed 0? Order is checked against a plain update instead.
  m.updateElem(u32(1), val(1, 1), 0);
  m.updateElem(u32(2), val(2, 2), 0);
  const twin = map();
  twin.updateElem(u32(1), val(1, 1), 0);
  twin.updateElem(u32(2), val(2, 2), 0);
  assert.equal(m.compareAndSwapElem(u32(1), u32(7), val(5, 5), 0, 4), -16);
  assert.equal(m.compareAndSwapElem(u32(1), u32(1), val(5, 5), 0, 4), 0);
  twin.updateElem(u32(1), val(5, 5), 2);
  const order = (x: Htab) => {
    const out: number[] = [];
    const k = new Uint8Array(4);
    let prev: Uint8Array | null = null;
    while (x.getNextKey(prev, k) === 0) {
      out.push(k[0]);
      prev = k.slice();
    }
    return out;
  };
  assert.deepEqual(order(m), order(twin));
  const v = new Uint8Array(8);
  m.lookupElem(u32(1), v);
  assert.deepEqual(v, val(5, 5));
  assert.equal(m.compareAndSwapElem(u32(9), u32(1), val(5, 5), 0, 4), -2);
  assert.ok(m.fsck().ok);
});

test("compute inserts, updates and deletes under the lock; a throwing fn changes nothing", () => {
  const m = map();
  assert.equal(
    m.compute(u32(1), (cur) => {
      assert.equal(cur, undefined);
      return val(1, 0);
    }),
    0,
  );
  for (let i = 0; i < 5; i++)
    m.compute(u32(1), (cur) => {
      const w = new Uint32Array(cur!.buffer.slice(0));
      return val(w[0], w[1] + 1);
    });
  const v = new Uint8Array(8);
  m.lookupElem(u32(1), v);
  assert.deepEqual(v, val(1, 5));
  const before = snap(m);
  assert.throws(
    () =>
      m.compute(u32(1), () => {
        throw new Error("boom");
      }),
    /boom/,
  );
  assert.deepEqual(snap(m), before);
  assert.throws(
    () =>
      m.compute(u32(1), () => {
        m.updateElem(u32(2), val(0, 0), 0);
        return undefined;
      }),
    { code: "EBUSY" },
  );
  assert.deepEqual(snap(m), before, "a compute whose fn misused the map changes nothing");
  assert.equal(
    m.compute(u32(1), () => {
      assert.equal(m.lookupElem(u32(1), new Uint8Array(8)), 0, "lookups inside fn are allowed");
      return null;
    }),
    0,
  );
  assert.equal(m.count(), 0);
  m.updateElem(u32(2), val(0, 0), 0);
  m.updateElem(u32(3), val(0, 0), 0);
  assert.equal(
    m.compute(u32(4), () => val(1, 1)),
    -7,
  );
  assert.match(m.lastError, /map full/);
  assert.ok(m.fsck().ok);
});
