import assert from "node:assert/strict";
import { test } from "node:test";
import { htabMapHash } from "../../src/hash/htab-hash.js";
import { jhash, jhash2 } from "../../src/hash/jhash.js";

function bucketOfU32(k: number, nBuckets: number, seed: number): number {
  const w = new Int32Array([k]);
  return htabMapHash(new Uint8Array(w.buffer), w, 4, seed) & (nBuckets - 1);
}

test("jhash2 puts keys 1..6 in the buckets the 6.18 kernel reported (n_buckets=8, seed 0)", () => {
  // docs/kernel-facts.md, t_batch.txt: "bucket of keys 1..6 (n_buckets=8): 1->3 2->2 3->7 4->1 5->6 6->6"
  const want = [3, 2, 7, 1, 6, 6];
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((k) => bucketOfU32(k, 8, 0)),
    want,
  );
});

test("jhash and jhash2 agree on whole words, as in include/linux/jhash.h", () => {
  const w = new Int32Array([0x01020304, 0x05060708]);
  const b = new Uint8Array(w.buffer);
  // Both seed with JHASH_INITVAL + length in bytes and mix 12 bytes per round.
  assert.equal(jhash(b, 0, 8, 0), jhash2(w, 0, 2, 0));
  assert.notEqual(jhash(b, 0, 7, 0), jhash(b, 0, 8, 0));
});

test("jhash is stable for every tail length and seed-sensitive", () => {
  const b = new Uint8Array(40).map((_, i) => (i * 37 + 11) & 0xff);
  const seen = new Set<number>();
  for (let len = 0; len <= 40; len++) seen.add(jhash(b, 0, len, 0));
  assert.ok(seen.size >= 40, "different lengths hash differently");
  assert.notEqual(jhash(b, 0, 13, 0), jhash(b, 0, 13, 1));
  // length 0 returns the initial value unchanged (kernel: case 0 skips __jhash_final)
  assert.equal(jhash(b, 0, 0, 0), (0xdeadbeef + 0) >>> 0);
});

test("jhash2OneWord equals jhash2 over one word", async () => {
  const { jhash2OneWord } = await import("../../src/hash/jhash.js");
  for (const w of [0, 1, -1, 0x7fffffff, 0x12345678, -0x80000000]) {
    for (const seed of [0, 1, 0xdeadbeef | 0])
      assert.equal(jhash2OneWord(w, seed) >>> 0, jhash2(new Int32Array([w]), 0, 1, seed));
  }
});
