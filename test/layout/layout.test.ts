import assert from "node:assert/strict";
import { test } from "node:test";
import { computeGeometry, elemIndexToWord, elemWordToIndex } from "../../src/layout/geometry.js";
import { assertLayout, LRU_COMMON, LRU_NONE } from "../../src/layout/layout.js";

test("layout assertions hold", () => {
  assertLayout();
});

test("geometry uses the kernel's n_buckets and extra_elems and is smaller than the kernel's elements", () => {
  const g = computeGeometry(4, 8, 1000, 2);
  assert.equal(g.n_buckets, 1024);
  assert.equal(g.extra_elems, 2);
  assert.equal(g.num_elems, 1002);
  assert.equal(g.elem_size, 32); // kernel: 48 + 8 + 8 = 64
  assert.equal(computeGeometry(3, 5, 1, 1).n_buckets, 1);
});

test("home elements: preallocated HASH and PERCPU_HASH records hold them, padded only under the kernel's memlock (t_mem)", () => {
  // The kernel's memlock for these maps on a 2-CPU machine (docs/kernel-facts.md, t_mem).
  for (const [maxEntries, memlock] of [
    [16, 2320],
    [1000, 81424],
  ]) {
    const g = computeGeometry(4, 8, maxEntries, 2, false, true, LRU_NONE, true);
    assert.equal(g.homes, Math.min(g.num_elems, g.n_buckets));
    assert.equal(g.bucketStride, 64, "bucket (16 B) + element (32 B), padded to a cache line");
    assert.ok(g.totalBytes <= memlock, `${g.totalBytes} bytes for ${maxEntries} entries, kernel ${memlock}`);
  }
  // Half the records empty (max_entries just past a power of two): packed, not padded;
  // with a bigger value not even that fits the kernel's memlock, and there are no homes.
  const big = computeGeometry(4, 8, 1025, 2, false, true, LRU_NONE, true);
  assert.equal(big.bucketStride, 16 + big.elem_size);
  const none = computeGeometry(4, 40, 1025, 2, false, true, LRU_NONE, true);
  assert.equal(none.homes, 0);
  assert.equal(none.bucketStride, 16);
  // Unless asked, only maps past HOME_MIN_BYTES (out of the caches) get them.
  assert.equal(computeGeometry(4, 8, 1000, 2).homes, 0);
  assert.equal(computeGeometry(4, 8, 1_000_000, 2).bucketStride, 64);
  // LRU and NO_PREALLOC maps have none: their elements come from other lists.
  assert.equal(computeGeometry(4, 8, 1000, 2, false, false, LRU_NONE, true).homes, 0);
  assert.equal(computeGeometry(4, 8, 1000, 2, false, true, LRU_COMMON, true).homes, 0);
  assert.equal(computeGeometry(4, 8, 1000, 2, false, true, LRU_COMMON).bucketStride, 16);
  // Element numbers and word indices map both ways, homes and the rest alike.
  for (const g of [
    computeGeometry(4, 8, 1_000_000, 2),
    big,
    none,
    computeGeometry(8, 16, 100, 4, true, true, LRU_NONE, true),
  ]) {
    const seen = new Set<number>();
    for (let n = 0; n < g.num_elems; n++) {
      const e = elemIndexToWord(g, n);
      assert.equal(elemWordToIndex(g, e, g.num_elems), n);
      assert.ok(!seen.has(e));
      seen.add(e);
      assert.ok(e * 4 + g.elem_size <= g.totalBytes);
      if (n < g.homes) assert.equal(e, ((g.bucketsBytes + n * g.bucketStride) >> 2) + 4);
      assert.equal(elemWordToIndex(g, e + 1, g.num_elems), -1);
    }
  }
});
