/**
 * Writes inside this thread's own program section (run(), enter(), a BPF
 * program run): an element the write unlinks (evicted, deleted, replaced)
 * that no open section can hold a reference to is reused at once, as the
 * kernel reuses an evicted LRU node; one the section did take a reference
 * to (lookupRef(), forEachElem()) waits in limbo until the section ends,
 * and its value stays intact under the reference (core/held-refs.ts).
 *
 * Before: an LRU_HASH of 16 entries (nrCpus 2), full, answered ENOMEM to a
 * 17th key inserted inside a section (main: after evicting every key into
 * limbo, leaving the map empty; rel: without evicting), and a HASH map
 * answered E2BIG to an insert after a delete in the same section. Outside a
 * section the same operations succeed; here they now give the same
 * contents as outside.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HELD_MAX } from "../../src/core/held-refs.js";
import { Htab } from "../../src/core/htab.js";
import type { ValueRef } from "../../src/core/value-ref.js";
import { MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const MAX = 16;

function keysOf(m: Htab, upTo = 300): number[] {
  const out = new Uint8Array(8);
  const keys: number[] = [];
  for (let k = 0; k < upTo; k++) if (m.lookupElem(u32(k), out) === 0) keys.push(k);
  return keys;
}

function make(type: MapType, fastPath: boolean, maxEntries = MAX): Htab {
  return Htab.create(
    { type, keySize: 4, valueSize: 8, maxEntries },
    { nrCpus: 2, cpu: 0, fastPath, privileged: true },
  );
}

/** Every reference still reads the value its key was written with (`fill` of the key). */
function assertRefsIntact(refs: Map<number, ValueRef>, what: string): void {
  const out = new Uint8Array(8);
  for (const [k, r] of refs) {
    assert.equal(r.valid, true);
    r.read(out);
    assert.deepEqual(
      [...out],
      new Array(8).fill(k & 0xff),
      `${what}: key ${k}'s reference reads another value`,
    );
  }
}

for (const fastPath of [true, false]) {
  const path = fastPath ? "wasm" : "JS";

  test(`LRU_HASH (${path} path), 16 entries full, 32 new keys by updateElemFromProgram() inside a section: all inserted, same contents as outside a section`, () => {
    const inside = make(MapType.LruHash, fastPath);
    const outside = make(MapType.LruHash, fastPath);
    for (let k = 0; k < MAX; k++) {
      assert.equal(inside.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
      assert.equal(outside.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
    }
    inside.enter();
    try {
      for (let k = MAX; k < 3 * MAX; k++) {
        const r = inside.updateElemFromProgram(u32(k), new Uint8Array(8).fill(k), 0);
        assert.equal(r, 0, `key ${k} inside the section: ${inside.lastError}`);
        assert.equal(outside.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
        assert.deepEqual(keysOf(inside), keysOf(outside), `after key ${k}`);
      }
      assert.ok(keysOf(inside).length >= 13, `${keysOf(inside).length} keys left`);
      // Replaces of present keys too.
      for (const k of keysOf(outside)) {
        assert.equal(inside.updateElemFromProgram(u32(k), new Uint8Array(8).fill(7), 0), 0);
        assert.equal(outside.updateElem(u32(k), new Uint8Array(8).fill(7), 0), 0);
      }
      assert.deepEqual(keysOf(inside), keysOf(outside));
    } finally {
      inside.exit();
    }
    for (const m of [inside, outside]) {
      const f = m.fsck();
      assert.ok(f.ok, f.errors.join("; "));
    }
  });

  test(`LRU_HASH (${path} path), full, the section referenced every key: a new key gets ENOMEM, nothing evicted, every reference intact`, () => {
    const m = make(MapType.LruHash, fastPath);
    for (let k = 0; k < MAX; k++) assert.equal(m.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
    const before = keysOf(m);
    m.enter();
    try {
      const refs = new Map<number, ValueRef>();
      for (const k of before) refs.set(k, m.lookupRef(u32(k)) as ValueRef);
      const r = m.updateElem(u32(200), new Uint8Array(8).fill(200), 0);
      assert.equal(r, -12, "every evictable element is referenced by this section");
      assert.match(m.lastError, /program section/);
      assert.deepEqual(keysOf(m), before, "the failed insert evicted keys");
      assertRefsIntact(refs, "after the failed insert");
    } finally {
      m.exit();
    }
    assert.equal(m.updateElem(u32(200), new Uint8Array(8), 0), 0, "after the section: evicts as before");
    const f = m.fsck();
    assert.ok(f.ok, f.errors.join("; "));
  });

  test(`LRU_HASH (${path} path), full, the section referenced 4 keys: 40 new keys and replaces succeed, the 4 referenced elements are never reused under their references`, () => {
    const m = make(MapType.LruHash, fastPath);
    for (let k = 0; k < MAX; k++) assert.equal(m.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
    m.enter();
    try {
      const refs = new Map<number, ValueRef>();
      for (const k of [0, 1, 2, 3]) refs.set(k, m.lookupRef(u32(k)) as ValueRef);
      // Replacing a referenced key: its element keeps the key, the value written in place (this thread's
      // reference reads its own write; the element is not freed under it).
      assert.equal(m.updateElemFromProgram(u32(1), new Uint8Array(8).fill(1), 0), 0);
      for (let k = 100; k < 140; k++) {
        assert.equal(
          m.updateElemFromProgram(u32(k), new Uint8Array(8).fill(k), 0),
          0,
          `key ${k}: ${m.lastError}`,
        );
        assertRefsIntact(refs, `after key ${k}`);
      }
      assert.ok(keysOf(m).length >= 9, `${keysOf(m).length} keys left`);
    } finally {
      m.exit();
    }
    const f = m.fsck();
    assert.ok(f.ok, f.errors.join("; "));
  });

  test(`HASH (${path} path), delete + insert inside one section: the deleted elements are reused at once, same contents as outside`, () => {
    const inside = make(MapType.Hash, fastPath);
    const outside = make(MapType.Hash, fastPath);
    inside.enter();
    try {
      for (let round = 0; round < 4; round++) {
        const base = round * MAX;
        for (let k = base; k < base + MAX; k++) {
          assert.equal(
            inside.updateElem(u32(k), new Uint8Array(8).fill(k), 0),
            0,
            `insert ${k}: ${inside.lastError}`,
          );
          assert.equal(outside.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
        }
        // Replaces while full (extras), then deletes of every key.
        for (let k = base; k < base + MAX; k++) {
          assert.equal(inside.updateElem(u32(k), new Uint8Array(8).fill(1), 0), 0);
          assert.equal(outside.updateElem(u32(k), new Uint8Array(8).fill(1), 0), 0);
        }
        assert.deepEqual(keysOf(inside), keysOf(outside));
        for (let k = base; k < base + MAX; k++) {
          assert.equal(inside.deleteElem(u32(k)), 0);
          assert.equal(outside.deleteElem(u32(k)), 0);
        }
      }
    } finally {
      inside.exit();
    }
    for (const m of [inside, outside]) {
      const f = m.fsck();
      assert.ok(f.ok, f.errors.join("; "));
    }
  });

  test(`HASH (${path} path), the section referenced the deleted keys: E2BIG at once, references intact; unreferenced deletes are reused`, () => {
    const m = make(MapType.Hash, fastPath);
    m.enter();
    try {
      for (let k = 0; k < MAX; k++) assert.equal(m.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
      const refs = new Map<number, ValueRef>();
      for (let k = 0; k < MAX / 2; k++) refs.set(k, m.lookupRef(u32(k)) as ValueRef);
      for (let k = 0; k < MAX / 2; k++) assert.equal(m.deleteElem(u32(k)), 0);
      assert.equal(m.updateElem(u32(200), new Uint8Array(8).fill(200), 0), -7);
      assert.match(m.lastError, /CPU slot 0's program section is still open/);
      assertRefsIntact(refs, "after the failed insert");
      // Unreferenced keys: deleted, their elements go to new keys at once.
      for (let k = MAX / 2; k < MAX; k++) assert.equal(m.deleteElem(u32(k)), 0);
      for (let k = 200; k < 200 + MAX / 2; k++)
        assert.equal(m.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0, `insert ${k}: ${m.lastError}`);
      assert.equal(m.updateElem(u32(300), new Uint8Array(8), 0), -7, "only referenced elements are left");
      assertRefsIntact(refs, "after the inserts");
    } finally {
      m.exit();
    }
    assert.equal(m.updateElem(u32(300), new Uint8Array(8), 0), 0, "after the section");
    const f = m.fsck();
    assert.ok(f.ok, f.errors.join("; "));
  });

  test(`HASH (${path} path), more than ${HELD_MAX} references in one section: every freed element waits (the bound), none reused`, () => {
    const n = HELD_MAX + 8;
    const m = make(MapType.Hash, fastPath, n);
    for (let k = 0; k < n; k++) assert.equal(m.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
    m.enter();
    try {
      const refs = new Map<number, ValueRef>();
      for (let k = 0; k <= HELD_MAX; k++) refs.set(k, m.lookupRef(u32(k)) as ValueRef);
      // Key n - 1 was never referenced, but past the bound the section counts as holding everything.
      assert.equal(m.deleteElem(u32(n - 1)), 0);
      assert.equal(m.updateElem(u32(1000), new Uint8Array(8), 0), -7);
      assertRefsIntact(refs, "after the failed insert");
    } finally {
      m.exit();
    }
    assert.equal(m.updateElem(u32(1000), new Uint8Array(8), 0), 0);
  });

  test(`HASH (${path} path), forEachElem() callbacks' references count as taken`, () => {
    const m = make(MapType.Hash, fastPath, 4);
    for (let k = 0; k < 4; k++) assert.equal(m.updateElem(u32(k), new Uint8Array(8).fill(k), 0), 0);
    let result = 0;
    let after: number[] = [];
    const visited = m.forEachElem((map, key, value) => {
      assert.equal(map.deleteElem(key), 0);
      result = map.updateElem(u32(100), new Uint8Array(8).fill(100), 0);
      after = [...value.read(new Uint8Array(8))];
      assert.deepEqual(after, new Array(8).fill(key[0]), "the callback's reference reads another value");
      return 1;
    }, null);
    assert.equal(visited, 1);
    assert.equal(result, -7, "the deleted element is the callback's reference: not reused");
  });
}
