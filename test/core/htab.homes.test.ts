/**
 * Home elements (layout.ts): a new key takes its bucket's home element when
 * it is free, a lookup finds it there, a delete gives it back to a freelist,
 * a replace keeps the key at home, and the map still fills to max_entries.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { htabMapHash } from "../../src/hash/htab-hash.js";
import { readGeometry } from "../../src/layout/geometry.js";
import {
  BUCKET_HEAD_I32,
  BUCKET_HOME_I32,
  BUCKET_HOME_STATE_I32,
  HDR_HASHRND_I32,
  HOME_LINKED,
  HOME_TAKEN,
} from "../../src/layout/layout.js";
import { MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);

/** The word index of the bucket record of key `n`. */
function recordOf(map: Htab, n: number): number {
  const { g } = readGeometry(map.handle.sab);
  const i32 = new Int32Array(map.handle.sab);
  const h = htabMapHash(u32(n), new Int32Array([n]), 4, i32[HDR_HASHRND_I32]);
  return (g.bucketsBytes + (h & (g.n_buckets - 1)) * g.bucketStride) >> 2;
}

for (const fastPath of [true, false])
  test(`home elements (${fastPath ? "wasm fast path" : "JS path"}): claimed, found, given back, kept by a replace, and the map fills to max_entries`, () => {
    const maxEntries = 64;
    const map = Htab.create(
      { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries },
      { nrCpus: 2, fastPath, homeElements: true },
    );
    assert.equal(map.fastPath, fastPath);
    const i32 = new Int32Array(map.handle.sab);
    const state = (n: number) => Atomics.load(i32, recordOf(map, n) + BUCKET_HOME_STATE_I32);
    const v = new Uint8Array(8).fill(7);
    const out = new Uint8Array(8);
    // A key in an empty bucket lands in the bucket's own record, when that
    // element is on a freelist: the hash seed is random, and each CPU's EXTRA
    // element (taken at creation) may be some bucket's home.
    let k1 = 1;
    while (state(k1) <= 0) k1++;
    // A key in an empty bucket lands in the bucket's own record.
    assert.equal(map.updateElem(u32(k1), v, 0), 0);
    const b = recordOf(map, k1);
    assert.equal(i32[b + BUCKET_HEAD_I32], b + BUCKET_HOME_I32, "the key is in its home element");
    assert.equal(state(k1), HOME_LINKED);
    // A second key of the same bucket goes to a freelist element, ahead of it in the chain.
    let other = k1 + 1;
    while (recordOf(map, other) !== b) other++;
    assert.equal(map.updateElem(u32(other), v, 0), 0);
    assert.notEqual(i32[b + BUCKET_HEAD_I32], b + BUCKET_HOME_I32);
    assert.equal(state(k1), HOME_LINKED);
    assert.equal(map.lookupElem(u32(k1), out), 0);
    assert.deepEqual(out, v);
    assert.equal(map.lookupElem(u32(other), out), 0);
    // An update moves the key out of its home element and, as it was home, back in.
    const v2 = new Uint8Array(8).fill(9);
    assert.equal(map.updateElem(u32(k1), v2, 2), 0);
    assert.equal(
      i32[b + BUCKET_HEAD_I32],
      b + BUCKET_HOME_I32,
      "a replace keeps the key at home (at the head, as a replace puts it)",
    );
    assert.equal(state(k1), HOME_LINKED);
    assert.equal(map.lookupElem(u32(k1), out), 0);
    assert.deepEqual(out, v2);
    // A delete files the home element on a freelist; the next key of the bucket claims it back.
    assert.equal(map.deleteElem(u32(k1)), 0);
    assert.ok(state(k1) > 0, `on freelist ${state(k1) - 1}`);
    assert.equal(map.lookupElem(u32(k1), out), -2);
    assert.ok(map.fsck().ok, map.fsck().errors.join("; "));
    assert.equal(map.updateElem(u32(k1), v, 0), 0);
    assert.equal(state(k1), HOME_LINKED);
    // The map fills to exactly max_entries, homes claimed or not, then E2BIG.
    const keys = [k1, other];
    for (let n = 1000; map.count() < maxEntries; n++) {
      assert.equal(map.updateElem(u32(n), v, 0), 0, map.lastError);
      keys.push(n);
    }
    assert.equal(map.updateElem(u32(999), v, 0), -7, "E2BIG at max_entries");
    assert.ok(map.fsck().ok, map.fsck().errors.join("; "));
    // Deleting every key gives every home element back: none stays taken by a chain.
    for (const k of keys) assert.equal(map.deleteElem(u32(k)), 0);
    const f = map.fsck();
    assert.ok(f.ok, f.errors.join("; "));
    assert.equal(f.elements, 0);
    assert.notEqual(state(k1), HOME_TAKEN, "back on a freelist");
    map.close();
  });
