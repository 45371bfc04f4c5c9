/**
 * The bench's floor table (bench/peers/floor.ts): both lookups find exactly
 * what was filled, the ordered one keeps htab's reliability rules (no link
 * outside the table followed, a walk bounded by max_entries, a bounded wait
 * on an odd seq), and the table's geometry is the layout it claims.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ORDER_LEN, order, putU32, randomKeys } from "../../../bench/keys.js";
import {
  FLOOR_ENOENT,
  FLOOR_ETIMEDOUT,
  FloorTable,
  floorInsert,
  floorLookupOrdered,
  floorLookupPlain,
  floorOrderedPeer,
  floorPlainPeer,
  floorRecordOf,
  floorTable,
  HEAD,
  HOME,
  KEY,
  NEXT,
  SEQ,
} from "../../../bench/peers/floor.js";

const N = 5000;
const keys = randomKeys(2 * N, 99);
const present = keys.subarray(0, N);
const absent = keys.subarray(N);

/** The u64 value in `v` as a bigint. */
const u64 = (v: Uint8Array) => new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true);

test("floor: both lookups find every filled key with its value and miss every other", () => {
  const t = floorTable(present, N);
  assert.equal(t.count, N);
  assert.ok(t.used > 0 && t.used < N, `some keys overflow their home (${t.used})`);
  const k = new Uint8Array(4);
  const v = new Uint8Array(8);
  for (const look of [floorLookupOrdered, floorLookupPlain]) {
    for (let i = 0; i < N; i++) {
      putU32(k, present[i]);
      v.fill(0xee);
      assert.equal(look(t, k, v), 0, `${look.name}: key ${present[i]}`);
      assert.equal(u64(v), BigInt(i));
    }
    for (let i = 0; i < N; i++) {
      putU32(k, absent[i]);
      assert.equal(look(t, k, v), FLOOR_ENOENT, `${look.name}: absent key ${absent[i]}`);
    }
  }
  // An insert of a present key overwrites in place; one more key than max_entries is refused.
  floorInsert(t, present[7], 1, 2);
  putU32(k, present[7]);
  assert.equal(floorLookupOrdered(t, k, v), 0);
  assert.equal(u64(v), (2n << 32n) | 1n);
  assert.equal(t.count, N);
  assert.throws(() => floorInsert(t, absent[0], 0, 0), /all 5000 entries used/);
});

test("floor: n_buckets is the power of two >= max_entries, one 64-byte record each, plus the overflow area", () => {
  for (const [max, buckets] of [
    [1, 1],
    [1000, 1024],
    [1024, 1024],
    [1025, 2048],
  ]) {
    const t = new FloorTable(max);
    assert.equal(t.mask + 1, buckets);
    assert.equal(t.bytes, buckets * 64 + max * 32);
  }
  assert.throws(() => new FloorTable(0), RangeError);
});

test("floor-ordered: a link outside the table is not followed, a cyclic chain ends, an odd seq times out", () => {
  const t = floorTable(present, N);
  const k = new Uint8Array(4);
  const v = new Uint8Array(8);
  const key = absent[3];
  putU32(k, key);
  const rec = floorRecordOf(t, key);
  const i32 = t.i32;
  // The bucket's chain made to lead outside the table: the ordered lookup stops there.
  const saved = i32[rec + HEAD];
  for (const bad of [i32.length, 0x7fffffff, -8]) {
    i32[rec + HEAD] = bad;
    assert.equal(floorLookupOrdered(t, k, v), FLOOR_ENOENT, `HEAD ${bad}`);
  }
  // A chain that loops on its home element (whose key is not ours): the walk ends after max_entries steps.
  i32[rec + HEAD] = rec + HOME;
  i32[rec + HOME + NEXT] = rec + HOME;
  i32[rec + HOME + KEY] = key + 1;
  assert.equal(floorLookupOrdered(t, k, v), FLOOR_ENOENT);
  i32[rec + HEAD] = saved;
  // A writer that never finishes: the seq stays odd and the lookup gives up, bounded.
  Atomics.add(i32, rec + SEQ, 1);
  assert.equal(floorLookupOrdered(t, k, v), FLOOR_ETIMEDOUT);
  assert.equal(floorLookupPlain(t, k, v), FLOOR_ETIMEDOUT);
});

test("floor peers: the htab peer's loop over a visiting order, every present key a hit, every absent one a miss", () => {
  const t = floorTable(present, N + 16);
  const ord = order(N, ORDER_LEN, 7);
  for (const p of [floorOrderedPeer(t), floorPlainPeer(t)]) {
    assert.equal(p.lookup(present, ord, 0, 4096), 4096, p.name);
    assert.equal(p.lookup(absent, ord, 100, 4096), 0, p.name);
    assert.equal(p.update, undefined, "the floor has no writers");
  }
});
