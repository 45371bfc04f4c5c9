/**
 * A replace inside a program section on a full preallocated map (found by the
 * BPF runtime's differential test): the kernel's replace never fails, and the
 * map never holds more than max_entries keys. htab's replaced element waits in
 * limbo while sections run, so the replace finds no extra element: it writes
 * in place instead, and the element that comes back refills the extra first.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { Errno } from "../../src/errors.js";
import { MapType, UpdateFlags } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const u64 = (n: number) => new Uint8Array(new BigUint64Array([BigInt(n)]).buffer);

for (const fastPath of [true, false]) {
  {
    const type = MapType.Hash;
    test(`replaces in a section on a full ${fastPath ? "wasm" : "JS"} HASH map: 0 each time, then E2BIG for a new key, never max_entries + 1 keys`, () => {
      const m = Htab.create(
        { type, keySize: 4, valueSize: 8, maxEntries: 4 },
        { nrCpus: 2, cpu: 0, fastPath },
      );
      for (let k = 0; k < 4; k++) assert.equal(m.updateElem(u32(k), u64(k), 0), 0);
      const rs = m.run(() =>
        [1, 2, 3, 4, 5].map((i) => m.updateElem(u32(0), u64(100 + i), UpdateFlags.Exist)),
      );
      assert.deepEqual(rs, [0, 0, 0, 0, 0], "the kernel's replace never fails");
      const out = new Uint8Array(8);
      assert.equal(m.lookupElem(u32(0), out), 0);
      assert.deepEqual(out, u64(105));
      // After the section, the replaced elements come back: the extra first, not a fifth key.
      assert.equal(m.updateElem(u32(9), u64(9), 0), -Errno.E2BIG);
      assert.equal(m.count(), 4);
      for (let i = 0; i < 3; i++)
        assert.equal(m.updateElem(u32(1), u64(i), 0), 0, "replaces outside sections");
      assert.equal(m.updateElem(u32(10), u64(10), UpdateFlags.NoExist), -Errno.E2BIG);
      assert.equal(m.deleteElem(u32(3)), 0);
      assert.equal(m.updateElem(u32(10), u64(10), UpdateFlags.NoExist), 0, "a delete makes room for one");
      assert.equal(m.updateElem(u32(11), u64(11), UpdateFlags.NoExist), -Errno.E2BIG);
      assert.deepEqual(m.fsck().errors, []);
      m.close();
    });
  }
}
