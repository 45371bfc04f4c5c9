/** The program face: sections, live references, atomics, spin locks, forEach, and the kernel's BPF_F_LOCK rules. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const words = (...w: number[]) => new Uint8Array(new Uint32Array(w).buffer);

function map(
  opts: { flags?: number; spinLockOffset?: number; valueSize?: number; maxEntries?: number } = {},
): Htab {
  return Htab.create(
    {
      type: MapType.Hash,
      keySize: 4,
      valueSize: opts.valueSize ?? 16,
      maxEntries: opts.maxEntries ?? 8,
      flags: (opts.flags ?? 0) | MapFlags.ZeroSeed,
      spinLockOffset: opts.spinLockOffset,
    },
    { privileged: true, nrCpus: 2 },
  );
}

test("lookupRef needs a section, reads and writes live memory, and dies with its section", () => {
  const m = map();
  m.updateElem(u32(1), words(10, 0, 0, 0), 0);
  assert.throws(() => m.lookupRef(u32(1)), { code: "EINVAL", message: /section/ });
  let kept: ReturnType<Htab["lookupRef"]> = null;
  m.run(() => {
    const r = m.lookupRef(u32(1))!;
    assert.equal(r.load32(0), 10);
    r.store32(4, 7);
    assert.equal(r.fetchAdd32(0, 5), 10);
    assert.equal(r.fetchAdd64(8, 3n), 0n);
    assert.equal(m.lookupRef(u32(2)), null);
    kept = r;
  });
  const v = new Uint8Array(16);
  m.lookupElem(u32(1), v);
  assert.deepEqual(v, words(15, 7, 3, 0), "updates through the reference are visible to lookups");
  assert.equal(kept!.valid, false);
  assert.throws(() => kept!.load32(0), { code: "EINVAL", message: /section ended/ });
});

test("atomic field ops return the old value, and misaligned or out-of-range offsets are EINVAL", () => {
  const m = map();
  m.updateElem(u32(1), words(0b1100, 0, 0, 0), 0);
  m.run(() => {
    const r = m.lookupRef(u32(1))!;
    assert.equal(r.fetchAnd32(0, 0b0100), 0b1100);
    assert.equal(r.fetchOr32(0, 0b0001), 0b0100);
    assert.equal(r.fetchXor32(0, 0b0101), 0b0101);
    assert.equal(r.xchg32(0, 9), 0);
    assert.equal(r.cmpxchg32(0, 8, 1), 9, "failed cmpxchg returns the current value");
    assert.equal(r.cmpxchg32(0, 9, 1), 9);
    assert.equal(r.load32(0), 1);
    assert.equal(r.xchg64(8, 5n), 0n);
    assert.equal(r.cmpxchg64(8, 5n, 6n), 5n);
    assert.equal(r.fetchOr64(8, 1n), 6n);
    assert.equal(r.fetchXor64(8, 7n), 7n);
    assert.equal(r.fetchAnd64(8, 0n), 0n);
    assert.throws(() => r.fetchAdd32(2, 1), { code: "EINVAL", message: /aligned/ });
    assert.throws(() => r.fetchAdd64(4, 1n), { code: "EINVAL", message: /aligned/ });
    assert.throws(() => r.load32(16), { code: "EINVAL", message: /outside/ });
    assert.throws(() => r.lock(), { code: "EINVAL", message: /spin_lock/ });
  });
});

test("BPF_F_RDONLY_PROG refuses writes through references, BPF_F_WRONLY_PROG reads (EACCES)", () => {
  const ro = map({ flags: MapFlags.RdonlyProg });
  ro.updateElem(u32(1), words(1, 2, 3, 4), 0);
  ro.run(() => {
    const r = ro.lookupRef(u32(1))!;
    assert.equal(r.load32(0), 1);
    assert.throws(() => r.store32(0, 5), { code: "EACCES" });
  });
  const wo = map({ flags: MapFlags.WronlyProg });
  wo.updateElem(u32(1), words(1, 2, 3, 4), 0);
  wo.run(() => {
    const r = wo.lookupRef(u32(1))!;
    r.store32(0, 5);
    assert.throws(() => r.load32(0), { code: "EACCES" });
  });
});

test("a deleted element is not reused while a section may hold it; it is after the section", () => {
  const m = map({ maxEntries: 2 });
  m.updateElem(u32(1), words(111, 0, 0, 0), 0);
  m.enter();
  const r = m.lookupRef(u32(1))!;
  assert.equal(m.deleteElem(u32(1)), 0);
  // The freed element waits in limbo: the insert takes the other free element.
  assert.equal(m.updateElem(u32(2), words(222, 0, 0, 0), 0), 0);
  // Replacing key 2 while the section is open also keeps the old element out of reuse.
  assert.equal(m.updateElem(u32(2), words(333, 0, 0, 0), 0), 0);
  assert.equal(r.load32(0), 111, "the reference still sees the deleted element, never another key's data");
  // With both freed elements in limbo the map is full for a new key until the section ends.
  assert.equal(m.updateElem(u32(3), words(444, 0, 0, 0), 0), -7);
  assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
  m.exit();
  assert.equal(m.updateElem(u32(3), words(444, 0, 0, 0), 0), 0, "after the section the limbo is reclaimed");
  const f = m.fsck();
  assert.ok(f.ok, f.errors.join("; "));
  assert.equal(f.elements, 2);
});

test("forEachElem visits every element in bucket order, stops at 1, lets the callback delete, and checks its arguments", () => {
  const m = map();
  for (let i = 1; i <= 5; i++) m.updateElem(u32(i), words(i, 0, 0, 0), 0);
  const order: number[] = [];
  assert.equal(
    m.forEachElem((_m, k, v, ctx) => {
      ctx.push(k[0]);
      assert.equal(v.load32(0), k[0]);
      return 0;
    }, order),
    5,
  );
  const walk: number[] = [];
  let prev: Uint8Array | null = null;
  const k = new Uint8Array(4);
  while (m.getNextKey(prev, k) === 0) {
    walk.push(k[0]);
    prev = k.slice();
  }
  assert.deepEqual(order, walk, "the same order as get_next_key");
  assert.equal(
    m.forEachElem(() => 1, null),
    1,
  );
  assert.equal(
    m.forEachElem((map, key) => {
      map.deleteElem(key);
      return 0;
    }, null),
    5,
  );
  assert.equal(m.count(), 0);
});

test("forEachElem rejects bad returns and flags", () => {
  const m = map();
  m.updateElem(u32(1), words(1, 0, 0, 0), 0);
  assert.throws(() => m.forEachElem(() => 2, null), { code: "EINVAL" });
  assert.throws(() => m.forEachElem(() => 0, null, 1), { code: "EINVAL" });
  assert.ok(m.fsck().ok);
});

test("spin-lock maps: creation rules of t_lock.txt", () => {
  assert.throws(() => map({ spinLockOffset: 2 }), { code: "EINVAL" });
  assert.throws(() => map({ spinLockOffset: 16 }), { code: "EINVAL" });
  assert.throws(() => map({ spinLockOffset: 0, flags: MapFlags.RdonlyProg }), { code: "EACCES" });
  for (const type of [MapType.PercpuHash, MapType.LruHash, MapType.LruPercpuHash])
    assert.throws(
      () => Htab.create({ type, keySize: 4, valueSize: 8, maxEntries: 4, spinLockOffset: 0 }, { nrCpus: 2 }),
      { code: "EOPNOTSUPP" },
    );
});

for (const lockAt of [0, 4]) {
  test(`BPF_F_LOCK follows t_lock.txt (value {lock, cnt} with the lock at byte ${lockAt})`, () => {
    const m = map({ valueSize: 8, spinLockOffset: lockAt });
    const cntAt = lockAt === 0 ? 4 : 0;
    const val = (cnt: number) => {
      const v = new Uint8Array(8);
      new DataView(v.buffer).setUint32(cntAt, cnt, true);
      new DataView(v.buffer).setUint32(lockAt, 0xdeadbeef, true); // a caller's lock bytes are never stored
      return v;
    };
    const out = new Uint8Array(8);
    const dv = new DataView(out.buffer);
    const L = 4;
    assert.equal(m.updateElem(u32(1), val(42), L), 0);
    assert.equal(m.lookupElem(u32(1), out, 0), 0);
    assert.equal(dv.getUint32(lockAt, true), 0, "lock word reads as 0");
    assert.equal(dv.getUint32(cntAt, true), 42);
    assert.equal(m.lookupElem(u32(1), out, L), 0);
    assert.equal(dv.getUint32(lockAt, true), 0);
    assert.equal(m.updateElem(u32(1), val(43), L), 0, "in place");
    assert.equal(m.updateElem(u32(1), val(0), L | 1), -17);
    assert.equal(m.updateElem(u32(9), val(0), L | 2), -2);
    assert.equal(m.updateElem(u32(1), val(44), 0), 0);
    m.lookupElem(u32(1), out, 0);
    assert.equal(dv.getUint32(cntAt, true), 44);
    assert.equal(dv.getUint32(lockAt, true), 0);
    assert.equal(m.updateElem(u32(1), val(0), L | 8), -22);
    assert.equal(m.lookupElem(u32(1), out, L | 1), -22);
    const lb = m.lookupBatch({ count: 4, elemFlags: L });
    assert.deepEqual([lb.err, lb.count], [-2, 1]);
    assert.equal(m.updateBatch({ count: 1, keys: u32(1), values: val(44), elemFlags: L }).err, 0);
    assert.equal(m.freeze(), -524, "a map with a spin lock cannot be frozen (ENOTSUPP)");
    assert.equal(m.lookupAndDeleteElem(u32(1), out, L), 0);
    assert.equal(dv.getUint32(cntAt, true), 44);
    assert.equal(dv.getUint32(lockAt, true), 0);
    m.updateElem(u32(1), val(1), 0);
    assert.equal(m.deleteBatch({ count: 1, keys: u32(1), elemFlags: L }).err, 0);
    assert.ok(m.fsck().ok);
  });
}

test("BPF_F_LOCK with a flag above bit 31 (flags are the kernel's u64): EINVAL, the value unchanged", () => {
  const m = map({ spinLockOffset: 0 });
  assert.equal(m.updateElem(u32(1), words(0, 5, 0, 0), 0), 0);
  // (flags & ~BPF_F_LOCK) > BPF_EXIST in the kernel; 32-bit `&` would have read these as BPF_F_LOCK | BPF_ANY.
  for (const flags of [2 ** 32 + 4, 0x80000004, 2 ** 40 + 6])
    assert.equal(m.updateElem(u32(1), words(0, 9, 0, 0), flags), -22, `flags 0x${flags.toString(16)}`);
  const out = new Uint8Array(16);
  assert.equal(m.lookupElem(u32(1), out, 0), 0);
  assert.deepEqual([...new Uint32Array(out.buffer)], [0, 5, 0, 0]);
  assert.equal(m.updateElem(u32(1), words(0, 9, 0, 0), 4), 0, "BPF_F_LOCK alone still works");
});
