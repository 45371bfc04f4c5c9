/** Every invalid call throws or returns the documented errno, and leaves the map byte-identical. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";

function filledMap(flags = 0): Htab {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4, flags: flags | MapFlags.ZeroSeed },
    { privileged: true, nrCpus: 2 },
  );
  for (let i = 0; i < 3; i++)
    assert.equal(m.updateElem(new Uint8Array([i, 0, 0, 0]), new Uint8Array(8).fill(i), 0), 0);
  return m;
}

/** The map's bytes, its slots' scratch buffers (working memory, not contents) zeroed. */
function snapshot(m: Htab): Uint8Array {
  return m.stateBytes();
}

const k = new Uint8Array([1, 0, 0, 0]);
const v = new Uint8Array(8);

// [what, call, expected: thrown code or returned errno]
const cases: [string, (m: Htab) => unknown, string | number][] = [
  ["lookup with a 3-byte key", (m) => m.lookupElem(new Uint8Array(3), v), "EINVAL"],
  ["lookup with a 5-byte key", (m) => m.lookupElem(new Uint8Array(5), v), "EINVAL"],
  ["lookup with a string key", (m) => m.lookupElem("abcd" as unknown as Uint8Array, v), "EINVAL"],
  ["lookup with an array key", (m) => m.lookupElem([1, 0, 0, 0] as unknown as Uint8Array, v), "EINVAL"],
  ["lookup with null key", (m) => m.lookupElem(null as unknown as Uint8Array, v), "EINVAL"],
  ["lookup into a short value buffer", (m) => m.lookupElem(k, new Uint8Array(7)), "EINVAL"],
  ["lookup flags=1", (m) => m.lookupElem(k, v, 1), -22],
  ["lookup flags=BPF_F_LOCK without spin lock", (m) => m.lookupElem(k, v, 4), -22],
  ["lookup flags=-1", (m) => m.lookupElem(k, v, -1), "EINVAL"],
  ["update with a short value", (m) => m.updateElem(k, new Uint8Array(7), 0), "EINVAL"],
  ["update with a long value", (m) => m.updateElem(k, new Uint8Array(9), 0), "EINVAL"],
  ["update flags=3", (m) => m.updateElem(new Uint8Array([9, 0, 0, 0]), v, 3), -22],
  ["update flags=8", (m) => m.updateElem(new Uint8Array([9, 0, 0, 0]), v, 8), -22],
  ["update flags=2^32", (m) => m.updateElem(new Uint8Array([9, 0, 0, 0]), v, 2 ** 32), -22],
  ["update flags=BPF_F_LOCK without spin lock", (m) => m.updateElem(k, v, 4), -22],
  ["update flags=1.5", (m) => m.updateElem(k, v, 1.5), "EINVAL"],
  ["update NOEXIST of an existing key", (m) => m.updateElem(k, v, 1), -17],
  ["update EXIST of a missing key", (m) => m.updateElem(new Uint8Array([9, 0, 0, 0]), v, 2), -2],
  [
    "update of a new key in a full map",
    (m) => {
      m.updateElem(new Uint8Array([8, 0, 0, 0]), v, 0);
      return m.updateElem(new Uint8Array([9, 0, 0, 0]), v, 0);
    },
    -7,
  ],
  ["delete of a missing key", (m) => m.deleteElem(new Uint8Array([9, 0, 0, 0])), -2],
  [
    "delete with a Uint16Array key",
    (m) => m.deleteElem(new Uint16Array(2) as unknown as Uint8Array),
    "EINVAL",
  ],
  ["lookup_and_delete flags=1", (m) => m.lookupAndDeleteElem(k, v, 1), -22],
  ["lookup_and_delete into a short buffer", (m) => m.lookupAndDeleteElem(k, new Uint8Array(2)), "EINVAL"],
  ["get_next_key with a short out buffer", (m) => m.getNextKey(null, new Uint8Array(3)), "EINVAL"],
  ["get_next_key with a wrong-size key", (m) => m.getNextKey(new Uint8Array(2), new Uint8Array(4)), "EINVAL"],
  ["lookup_batch flags=1", (m) => m.lookupBatch({ count: 4, flags: 1 }).err, -22],
  ["lookup_batch elem_flags=1", (m) => m.lookupBatch({ count: 4, elemFlags: 1 }).err, -22],
  ["lookup_batch cursor past the end", (m) => m.lookupBatch({ count: 4, inBatch: 99 }).err, -2],
  [
    "lookup_and_delete_batch count=1 with a 2-element bucket or less",
    (m) => m.lookupAndDeleteBatch({ count: 0 }).err,
    0,
  ],
  ["lookup_batch negative count", (m) => m.lookupBatch({ count: -1 }), "EINVAL"],
  [
    "lookup_batch keys buffer too small",
    (m) => m.lookupBatch({ count: 4, keys: new Uint8Array(3) }),
    "EINVAL",
  ],
  [
    "update_batch elem_flags=BPF_EXIST",
    (m) => m.updateBatch({ count: 1, keys: k, values: v, elemFlags: 2 }).err,
    -22,
  ],
  [
    "update_batch values too short",
    (m) => m.updateBatch({ count: 2, keys: new Uint8Array(8), values: v }),
    "EINVAL",
  ],
  ["delete_batch elem_flags=1", (m) => m.deleteBatch({ count: 1, keys: k, elemFlags: 1 }).err, -22],
];

for (const [what, call, want] of cases) {
  test(`bad input: ${what}`, () => {
    const m = filledMap();
    const before = snapshot(m);
    let got: string | number;
    try {
      got = call(m) as number;
    } catch (e) {
      assert.equal((e as Error).name, "BpfError");
      got = (e as { code: string }).code;
    }
    assert.equal(got, want);
    const full = what.includes("full map");
    if (!full) assert.deepEqual(snapshot(m), before, "a failed call must leave the map byte-identical");
    else {
      // The first (successful) insert changed the map; the failing one must not have.
      const after1 = snapshot(m);
      assert.equal(m.updateElem(new Uint8Array([9, 0, 0, 0]), v, 0), -7);
      assert.deepEqual(snapshot(m), after1);
    }
    assert.ok(m.fsck().ok);
  });
}

test("attach refuses a foreign buffer, a too-small buffer and a non-buffer", () => {
  assert.throws(() => Htab.attach(new SharedArrayBuffer(4096)), { code: "EINVAL", message: /magic/ });
  assert.throws(() => Htab.attach(new SharedArrayBuffer(8)), { code: "EINVAL" });
  assert.throws(() => Htab.attach(new ArrayBuffer(4096) as unknown as SharedArrayBuffer), { code: "EINVAL" });
  assert.throws(() => Htab.attach({} as never), { code: "EINVAL" });
  const m = filledMap();
  const copy = new SharedArrayBuffer(m.handle.sab.byteLength + 8);
  new Uint8Array(copy).set(new Uint8Array(m.handle.sab));
  assert.throws(() => Htab.attach(copy), { code: "EINVAL", message: /size/ });
});

test("attach refuses a CPU slot that is taken, and EBUSY when all are", () => {
  const m = filledMap();
  assert.throws(() => Htab.attach(m.handle, { cpu: m.cpu }), { code: "EBUSY" });
  const other = Htab.attach(m.handle);
  assert.throws(() => Htab.attach(m.handle), { code: "EBUSY", message: /nrCpus/ });
  other.close();
  Htab.attach(m.handle).close();
});

test("access flags: RDONLY refuses writes with EPERM, WRONLY refuses reads; freeze", () => {
  const ro = filledMap(0);
  const rom = Htab.create({
    type: MapType.Hash,
    keySize: 4,
    valueSize: 8,
    maxEntries: 4,
    flags: MapFlags.Rdonly,
  });
  assert.equal(rom.updateElem(k, v, 0), -1);
  assert.equal(rom.deleteElem(k), -1);
  assert.equal(rom.lookupElem(k, v), -2);
  assert.equal(rom.lookupAndDeleteElem(k, v), -1);
  assert.equal(rom.updateBatch({ count: 1, keys: k, values: v }).err, -1);
  assert.equal(rom.lookupBatch({ count: 1 }).err, -2);
  const wo = Htab.create({
    type: MapType.Hash,
    keySize: 4,
    valueSize: 8,
    maxEntries: 4,
    flags: MapFlags.Wronly,
  });
  assert.equal(wo.updateElem(k, v, 0), 0);
  assert.equal(wo.lookupElem(k, v), -1);
  assert.equal(wo.getNextKey(null, new Uint8Array(4)), -1);
  assert.equal(wo.deleteElem(k), 0);
  assert.equal(ro.freeze(), 0);
  assert.equal(ro.freeze(), -1);
  assert.equal(ro.updateElem(k, v, 0), -1);
  assert.equal(ro.lookupElem(k, v), 0);
});
