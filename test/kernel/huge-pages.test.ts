/**
 * Huge pages: hugePageMemory() gives a shared wasm memory advised to be
 * backed by transparent huge pages, createMap(spec, { memory }) builds a map
 * in it, and the kernel really backs it with huge pages (AnonHugePages).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createMap } from "../../src/api/create.js";
import { Htab } from "../../src/core/htab.js";
import { anonHugePagesKiB, hugePageMemory, thpMode } from "../../src/kernel/huge-pages.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const spec = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 1 << 18 };

test("hugePageMemory(): a map in it is backed by huge pages where THP is madvise or always", () => {
  const mode = thpMode();
  const before = anonHugePagesKiB() ?? 0;
  const { memory, hugePages, reason } = hugePageMemory(24 << 20);
  assert.ok(memory.buffer instanceof SharedArrayBuffer);
  if (mode === null || mode === "never") {
    assert.equal(hugePages, false, "falls back quietly");
    assert.ok(reason.length > 0);
    return;
  }
  assert.equal(hugePages, true, reason);
  const m = createMap(spec, { memory, nrCpus: 2 });
  assert.ok(m.fastPath, "the caller's memory runs the wasm fast path");
  const k = new Uint8Array(4);
  const v = new Uint8Array(8);
  for (let i = 0; i < spec.maxEntries; i++) {
    new DataView(k.buffer).setUint32(0, i, true);
    assert.equal(m.updateElem(k, v, 0), 0);
  }
  const after = anonHugePagesKiB() ?? 0;
  console.log(
    `# THP ${mode}: AnonHugePages ${before} -> ${after} KiB for a ${m.memoryUsage() >> 20} MiB map`,
  );
  assert.ok(after - before >= 4096, `at least 4 MiB of the map is in huge pages (${before} -> ${after} KiB)`);
  assert.ok(m.fsck().ok);
  m.close();
});

test("createMap(spec, { memory }): the caller's memory, grown to fit, attachable; bad memories are refused", () => {
  const Memory = (globalThis as unknown as { WebAssembly: { Memory: new (d: object) => never } }).WebAssembly
    .Memory;
  const small = new Memory({ initial: 1, maximum: 4096, shared: true });
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 10_000 },
    { memory: small, nrCpus: 2 },
  );
  assert.ok(m.handle.sab.byteLength >= m.memoryUsage(), "grown to fit");
  const other = Htab.attach(m.handle, { cpu: 1 });
  const k = new Uint8Array([1, 0, 0, 0]);
  assert.equal(m.updateElem(k, new Uint8Array(8).fill(7), 0), 0);
  const out = new Uint8Array(8);
  assert.equal(other.lookupElem(k, out), 0);
  assert.deepEqual([...out], [7, 7, 7, 7, 7, 7, 7, 7]);
  assert.throws(() => Htab.create(spec, { memory: small }), {
    code: "EBUSY",
    message: /already holds a map/,
  });
  const plain = new Memory({ initial: 1, maximum: 1 });
  assert.throws(() => Htab.create(spec, { memory: plain }), { code: "EINVAL", message: /shared/ });
  assert.throws(() => Htab.create(spec, { memory: {} as never }), { code: "EINVAL", message: /shared/ });
  const fixed = new Memory({ initial: 1, maximum: 1, shared: true });
  assert.throws(() => Htab.create(spec, { memory: fixed }), { code: "ENOMEM", message: /cannot grow/ });
  const fresh = new Memory({ initial: 1, maximum: 1, shared: true });
  assert.throws(() => Htab.create({ ...spec, flags: MapFlags.NoPrealloc }, { memory: fresh }), {
    code: "EINVAL",
    message: /NO_PREALLOC/,
  });
  other.close();
  m.close();
});
