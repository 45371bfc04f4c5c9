/**
 * The shape readers (lookup.ts readerFor()): which views get which reader,
 * that their hashes are the kernel's jhash2, and that lookupElem through
 * them answers exactly as the general path does (values, absent keys, the
 * caller's buffer left alone on a miss, bad arguments, BPF_F_WRONLY).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { xorshift32 } from "../../src/check/xorshift.js";
import { Htab } from "../../src/core/htab.js";
import type { HtabView } from "../../src/core/htab-view.js";
import { jhash2Four, jhash2Two } from "../../src/core/lookup.js";
import { BpfError } from "../../src/errors.js";
import { jhash2Int } from "../../src/hash/jhash.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const viewOf = (h: Htab): HtabView => (h as unknown as { v: HtabView }).v;
const readerName = (h: Htab): string => viewOf(h).reader?.constructor.name ?? "";

test("jhash2Two and jhash2Four equal jhash2 over 2 and 4 words", () => {
  const next = xorshift32(99);
  const w = new Int32Array(4);
  for (let i = 0; i < 10_000; i++) {
    for (let j = 0; j < 4; j++) w[j] = next() | 0;
    const seed = next() | 0;
    assert.equal(jhash2Two(w[0], w[1], seed), jhash2Int(w, 0, 2, seed));
    assert.equal(jhash2Four(w[0], w[1], w[2], w[3], seed), jhash2Int(w, 0, 4, seed));
  }
});

test("readerFor: WasmReader with the wasm memory, Reader1/2/4 (Flat: no homes, values <= 8 B) without, none for other shapes", () => {
  const cases: [object, string, string][] = [
    [{ type: MapType.Hash, keySize: 4, valueSize: 8 }, "WasmReader", "Reader1Flat"],
    [{ type: MapType.Hash, keySize: 8, valueSize: 4 }, "WasmReader", "Reader2Flat"],
    [{ type: MapType.Hash, keySize: 16, valueSize: 8 }, "WasmReader", "Reader4Flat"],
    [{ type: MapType.LruHash, keySize: 16, valueSize: 16 }, "WasmReader", "Reader4"],
    [{ type: MapType.Hash, keySize: 4, valueSize: 12, flags: MapFlags.NoPrealloc }, "Reader1", "Reader1"],
    [{ type: MapType.Hash, keySize: 4, valueSize: 20 }, "", ""], // value over 16 bytes
    [{ type: MapType.Hash, keySize: 4, valueSize: 6 }, "", ""], // not whole words
    [{ type: MapType.Hash, keySize: 12, valueSize: 8 }, "", ""], // key width without a reader
    [{ type: MapType.PercpuHash, keySize: 4, valueSize: 8 }, "", ""],
    [{ type: MapType.Hash, keySize: 4, valueSize: 8, flags: MapFlags.Wronly }, "", ""],
  ];
  for (const [spec, withWasm, jsOnly] of cases) {
    const m = Htab.create({ maxEntries: 64, ...spec } as never, { nrCpus: 2 });
    const js = Htab.attach({ sab: m.handle.sab });
    assert.equal(readerName(m), withWasm, JSON.stringify(spec));
    assert.equal(readerName(js), jsOnly, JSON.stringify(spec));
    js.close();
    m.close();
  }
});

for (const [keySize, valueSize, homes] of [
  [4, 8, true],
  [4, 4, false],
  [8, 12, false],
  [16, 16, true],
] as const)
  test(`lookupElem through the readers equals the general path (key ${keySize} B, value ${valueSize} B, homes ${homes})`, () => {
    const m = Htab.create(
      { type: MapType.Hash, keySize, valueSize, maxEntries: 300 },
      { nrCpus: 3, homeElements: homes },
    );
    const js = Htab.attach({ sab: m.handle.sab });
    const general = Htab.attach({ sab: m.handle.sab });
    viewOf(general).reader = null;
    const next = xorshift32(keySize * 31 + valueSize);
    const key = new Uint8Array(keySize);
    const val = new Uint8Array(valueSize);
    const keys: Uint8Array[] = [];
    for (let i = 0; i < 250; i++) {
      for (let j = 0; j < keySize; j++) key[j] = next();
      for (let j = 0; j < valueSize; j++) val[j] = next();
      if (m.updateElem(key, val, 0) === 0) keys.push(key.slice());
    }
    // Absent keys too: random ones, almost surely not in the map.
    for (let i = 0; i < 100; i++) keys.push(Uint8Array.from({ length: keySize }, () => next()));
    const a = new Uint8Array(valueSize + 3);
    const b = new Uint8Array(valueSize + 3);
    const c = new Uint8Array(valueSize + 3);
    let hits = 0;
    for (const k of keys) {
      a.fill(0xee);
      b.fill(0xee);
      c.fill(0xee);
      const ra = m.lookupElem(k, a);
      const rb = js.lookupElem(k, b);
      const rc = general.lookupElem(k, c);
      assert.equal(ra, rc);
      assert.equal(rb, rc);
      assert.deepEqual(a, c, "the caller's buffer, byte for byte (untouched past the value and on a miss)");
      assert.deepEqual(b, c);
      if (rc === 0) hits++;
    }
    assert.ok(hits >= 200, `${hits} hits`);
    // Bad arguments still get the checked path's errors.
    assert.throws(() => m.lookupElem(new Uint8Array(keySize + 1), a), BpfError);
    assert.throws(() => js.lookupElem(keys[0], new Uint8Array(valueSize - 1)), BpfError);
    assert.throws(() => m.lookupElem([1, 2, 3, 4] as unknown as Uint8Array, a), BpfError);
    for (const x of [general, js, m]) x.close();
  });

test("lookupMany and lookupScratch on a JS-only view run the reader and equal lookupElem", () => {
  const m = Htab.create({ type: MapType.Hash, keySize: 8, valueSize: 8, maxEntries: 64 }, { nrCpus: 2 });
  const js = Htab.attach({ sab: m.handle.sab });
  const k = new Uint8Array(8);
  const v = new Uint8Array(8);
  const dv = new DataView(k.buffer);
  for (let i = 0; i < 40; i++) {
    dv.setUint32(0, i * 7, true);
    dv.setUint32(4, i, true);
    new DataView(v.buffer).setUint32(0, i * 1000 + 1, true);
    m.updateElem(k, v, 0);
  }
  const n = 60;
  const keys = new Uint8Array(n * 8);
  const kd = new DataView(keys.buffer);
  for (let i = 0; i < n; i++) {
    kd.setUint32(i * 8, i * 7, true);
    kd.setUint32(i * 8 + 4, i, true);
  }
  const values = new Uint8Array(n * 8).fill(0x55);
  const res = new Int32Array(n);
  assert.equal(js.lookupMany(keys, values, res), 40);
  const one = new Uint8Array(8);
  for (let i = 0; i < n; i++) {
    const r = js.lookupElem(keys.subarray(i * 8, i * 8 + 8), one.fill(0x55));
    assert.equal(res[i], r);
    assert.deepEqual(values.subarray(i * 8, i * 8 + 8), one);
    js.keyScratch.set(keys.subarray(i * 8, i * 8 + 8));
    assert.equal(js.lookupScratch(), r);
    if (r === 0) assert.deepEqual(js.valueScratch, one);
  }
  js.close();
  m.close();
});

test("BPF_F_WRONLY: lookupElem is EPERM, as before (no reader on such a map)", () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8, flags: MapFlags.Wronly },
    { nrCpus: 2 },
  );
  assert.equal(m.updateElem(new Uint8Array(4), new Uint8Array(8), 0), 0);
  assert.equal(m.lookupElem(new Uint8Array(4), new Uint8Array(8)), -1);
  m.close();
});
