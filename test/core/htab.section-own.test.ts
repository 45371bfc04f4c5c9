/**
 * Writes inside this thread's own program section, when the only free
 * elements are ones that section holds back: no grace wait (the section
 * cannot end while its own thread waits), and the kernel's answer where it
 * can be given. A preallocated HASH map answers E2BIG at once (its freed
 * elements wait in limbo for the section); an LRU map replaces a present key
 * in place (kernel: the update never fails while keys can be evicted) and
 * answers ENOMEM for a new key, and it never evicts keys into a limbo that
 * only its own section holds: before, every such update evicted up to a
 * whole scan of keys into limbo and then answered ENOMEM, so a full LRU map
 * lost its keys to its own failed updates.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const MAX = 16;

function keysOf(m: Htab): number[] {
  const out = new Uint8Array(8);
  const keys: number[] = [];
  for (let k = 0; k < 300; k++) if (m.lookupElem(u32(k), out) === 0) keys.push(k);
  return keys;
}

for (const fastPath of [true, false]) {
  const path = fastPath ? "wasm" : "JS";

  test(`LRU_HASH (${path} path), own section open, map full: replaces write in place, new keys get ENOMEM, no key is evicted`, () => {
    const m = Htab.create(
      { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: MAX },
      { nrCpus: 2, cpu: 0, fastPath, privileged: true },
    );
    for (let k = 0; k < MAX; k++) assert.equal(m.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
    const before = keysOf(m);
    assert.equal(before.length, MAX);
    m.enter();
    try {
      for (let round = 0; round < 3; round++)
        for (let k = 0; k < MAX; k++)
          assert.equal(
            m.updateElem(u32(k), new Uint8Array(8).fill(100 + round), 0),
            0,
            `replace of key ${k} in round ${round}: ${m.lastError}`,
          );
      assert.deepEqual(keysOf(m), before, "the replaces evicted keys");
      const r = m.updateElem(u32(200), new Uint8Array(8), 0);
      assert.equal(r, -12, "a new key: ENOMEM (every evicted element would wait for this section)");
      assert.match(m.lastError, /program section/);
      assert.deepEqual(keysOf(m), before, "the failed insert evicted keys");
      const out = new Uint8Array(8);
      for (const k of before) {
        assert.equal(m.lookupElem(u32(k), out), 0);
        assert.equal(out[0], 102, `key ${k}'s value`);
      }
    } finally {
      m.exit();
    }
    // After the section, inserts evict as before (a refill evicts target_free keys at once, as the kernel's).
    assert.equal(m.updateElem(u32(200), new Uint8Array(8), 0), 0);
    assert.ok(keysOf(m).includes(200));
    const f = m.fsck();
    assert.ok(f.ok, f.errors.join("; "));
  });

  test(`HASH (${path} path), own section open, freed elements held by it: E2BIG at once, nothing lost`, () => {
    const m = Htab.create(
      { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: MAX },
      { nrCpus: 2, cpu: 0, fastPath, privileged: true },
    );
    m.enter();
    try {
      for (let k = 0; k < MAX; k++) assert.equal(m.updateElem(u32(k), new Uint8Array(8), 0), 0);
      for (let k = 0; k < MAX / 2; k++) assert.equal(m.deleteElem(u32(k)), 0);
      assert.equal(m.updateElem(u32(200), new Uint8Array(8), 0), -7);
      assert.match(m.lastError, /CPU slot 0's program section is still open/);
      assert.deepEqual(
        keysOf(m),
        Array.from({ length: MAX / 2 }, (_, i) => MAX / 2 + i),
      );
    } finally {
      m.exit();
    }
    assert.equal(m.updateElem(u32(200), new Uint8Array(8), 0), 0);
  });
}
