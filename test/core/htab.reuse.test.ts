/**
 * Seed 000: lookups never return a false-positive key match or a torn value
 * while preallocated elements are freed and reused at once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";
import { runWorkers, startBarrier } from "../helpers/workers.js";

const LOOKUPS = Number(process.env.HTAB_REUSE_LOOKUPS ?? 1_200_000);

interface ReaderResult {
  lookups: number;
  fastPath: boolean;
  htab: { falsePos: number; torn: number; found: number };
  control: { falsePos: number; torn: number; found: number };
  many: { falsePos: number; torn: number; found: number; calls: number };
}

// The reader runs the wasm fast path or the JS path; of the writers one runs each, so the
// two paths' bucket locks and seq bumps interleave on one map.
for (const path of ["wasm fast path", "JS path"])
  test(`reuse (${path} reader): ${LOOKUPS} lookups under delete/re-insert see no false match and no torn value`, async () => {
    const map = Htab.create(
      { type: MapType.Hash, keySize: 16, valueSize: 64, maxEntries: 8 },
      { nrCpus: 4, homeElements: true },
    );
    assert.ok(map.handle.memory !== undefined, "the map has the wasm fast path");
    const stop = new SharedArrayBuffer(4);
    const start = startBarrier(3);
    const results = await runWorkers<ReaderResult | { writes: number }>(
      new URL("../fixtures/reuse-worker.js", import.meta.url),
      3,
      (i) => ({
        handle: (i === 0 ? path === "JS path" : i === 2) ? { sab: map.handle.sab } : map.handle,
        role: i === 0 ? "reader" : "writer",
        lookups: LOOKUPS,
        stop,
        start,
        seed: 17 + i * 7919,
        keys: 24,
      }),
    );
    const r = results[0] as ReaderResult;
    const writes = results.slice(1).reduce((a, w) => a + (w as { writes: number }).writes, 0);
    console.log(
      `# reuse (${path} reader): ${r.lookups} lookups checked (${r.htab.found} hits) during ${writes} re-inserts: ` +
        `htab ${r.htab.falsePos} false matches, ${r.htab.torn} torn; ` +
        `unvalidated kernel-style walk ${r.control.falsePos} false matches, ${r.control.torn} torn (of ${r.control.found} hits); ` +
        `lookupMany ${r.many.calls} calls, ${r.many.found} hits, ${r.many.falsePos} false matches, ${r.many.torn} torn`,
    );
    assert.ok(r.htab.found > 0 && writes > 0, "the race was exercised");
    assert.equal(r.fastPath, path === "wasm fast path", "the reader ran the path under test");
    assert.deepEqual(
      results.slice(1).map((w) => (w as { fastPath: boolean }).fastPath),
      [true, false],
      "one writer on each path",
    );
    assert.equal(r.htab.falsePos, 0, "false-positive key matches");
    assert.equal(r.htab.torn, 0, "torn values");
    assert.ok(r.many.found > 0, "lookupMany ran under the race");
    assert.equal(r.many.falsePos, 0, "lookupMany: false-positive key matches");
    assert.equal(r.many.torn, 0, "lookupMany: torn values");
    const f = map.fsck();
    assert.ok(f.ok, f.errors.join("; "));
  });

const INLINE_LOOKUPS = Number(process.env.HTAB_REUSE_INLINE_LOOKUPS ?? 400_000);

/**
 * The shape readers (lookup.ts readerFor()) on every shape and map type they
 * serve: each key width (u32, u64, 16 bytes), each value width (4, 8, 12,
 * 16 bytes), HASH with and without home elements, LRU_HASH and NO_PREALLOC;
 * read from a view with the wasm memory (WasmReader: one wasm call) and from
 * one without (the JS InlineReader of the key width), under writers on both
 * paths.
 */
const SHAPES = [
  {
    name: "u32 -> 8 B, HASH with homes",
    type: MapType.Hash,
    keyWords: 1,
    valueWords: 2,
    homes: true,
    flags: 0,
  },
  {
    name: "u64 -> 4 B, HASH without homes",
    type: MapType.Hash,
    keyWords: 2,
    valueWords: 1,
    homes: false,
    flags: 0,
  },
  {
    name: "16 B -> 16 B, LRU_HASH",
    type: MapType.LruHash,
    keyWords: 4,
    valueWords: 4,
    homes: false,
    flags: 0,
  },
  {
    name: "u32 -> 12 B, NO_PREALLOC",
    type: MapType.Hash,
    keyWords: 1,
    valueWords: 3,
    homes: false,
    flags: MapFlags.NoPrealloc,
  },
  {
    name: "16 B -> 8 B, HASH without homes",
    type: MapType.Hash,
    keyWords: 4,
    valueWords: 2,
    homes: false,
    flags: 0,
  },
  { name: "u32 -> 8 B, LRU_HASH", type: MapType.LruHash, keyWords: 1, valueWords: 2, homes: false, flags: 0 },
];
// A NO_PREALLOC map grows its buffer, so it has no wasm memory: one view.
for (const shape of SHAPES)
  for (const path of shape.flags === 0 ? ["wasm-memory view", "JS-only view"] : ["JS-only view"])
    test(`reuse, shape reader (${shape.name}, ${path}): ${INLINE_LOOKUPS} lookups see no false match and no torn value`, async () => {
      const map = Htab.create(
        {
          type: shape.type,
          keySize: shape.keyWords * 4,
          valueSize: shape.valueWords * 4,
          maxEntries: 8,
          flags: shape.flags,
        },
        { nrCpus: 4, homeElements: shape.homes },
      );
      const stop = new SharedArrayBuffer(4);
      const start = startBarrier(3);
      const results = await runWorkers<ReaderResult | { writes: number }>(
        new URL("../fixtures/reuse-worker.js", import.meta.url),
        3,
        (i) => ({
          handle: (i === 0 ? path === "JS-only view" : i === 2) ? { sab: map.handle.sab } : map.handle,
          role: i === 0 ? "reader" : "writer",
          lookups: INLINE_LOOKUPS,
          stop,
          start,
          seed: 29 + i * 7919,
          keys: 24,
          keyWords: shape.keyWords,
          valueWords: shape.valueWords,
        }),
      );
      const r = results[0] as ReaderResult & { inline: string };
      const writes = results.slice(1).reduce((a, w) => a + (w as { writes: number }).writes, 0);
      console.log(
        `# reuse, ${r.inline} (${shape.name}, ${path}): ${r.lookups} lookups (${r.htab.found} hits) during ${writes} writes: ` +
          `${r.htab.falsePos} false matches, ${r.htab.torn} torn; unvalidated walk ${r.control.falsePos} false matches, ` +
          `${r.control.torn} torn (of ${r.control.found}); lookupMany ${r.many.found} hits, ${r.many.falsePos} false, ${r.many.torn} torn`,
      );
      // JS-only views: Reader1/2/4, or its Flat variant on maps without homes and values of at most 8 bytes.
      const want =
        path === "wasm-memory view"
          ? "WasmReader"
          : `Reader${shape.keyWords}${!shape.homes && shape.valueWords <= 2 ? "Flat" : ""}`;
      assert.equal(r.inline, want, "the reader's view runs the shape reader under test");
      assert.equal(r.fastPath, path === "wasm-memory view", "the reader ran the view under test");
      assert.ok(r.htab.found > 0 && writes > 0, "the race was exercised");
      assert.equal(r.htab.falsePos, 0, "false-positive key matches");
      assert.equal(r.htab.torn, 0, "torn values");
      assert.equal(r.many.falsePos, 0, "lookupMany: false-positive key matches");
      assert.equal(r.many.torn, 0, "lookupMany: torn values");
      const f = map.fsck();
      assert.ok(f.ok, f.errors.join("; "));
    });
