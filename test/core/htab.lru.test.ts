/**
 * LRU_HASH and LRU_PERCPU_HASH on one CPU: eviction must match the kernel's
 * sequences in docs/kernel-facts.md (t_lru.txt) (6.18, 2 possible CPUs,
 * pinned to cpu0). The probe ran with a random seed, so its key listings are
 * compared as sets; the order under a zero seed is checked against the live
 * kernel by test/kernel/differential.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BpfMap } from "../../src/api/bpf-map.js";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType, UpdateFlags } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const NR_CPUS = 2; // the probed machine's num_possible_cpus()

function lru(maxEntries: number, flags = 0, type: MapType = MapType.LruHash, valueSize = 8): Htab {
  return Htab.create(
    { type, keySize: 4, valueSize, maxEntries, flags: flags | MapFlags.ZeroSeed },
    { privileged: true, nrCpus: NR_CPUS, cpu: 0 },
  );
}

function keySet(m: Htab): number[] {
  return [...new BpfMap(m).keys()]
    .map((k) => new DataView(k.buffer).getUint32(0, true))
    .sort((a, b) => a - b);
}

// t_lru.txt, "insert N: OK n=… keys: …" for N = 1..20, keys sorted.
const COMMON: [number, number[]][] = [
  [1, [1]],
  [2, [1, 2]],
  [3, [1, 2, 3]],
  [4, [1, 2, 3, 4]],
  [5, [1, 2, 3, 4, 5]],
  [6, [1, 2, 3, 4, 5, 6]],
  [7, [1, 2, 3, 4, 5, 6, 7]],
  [8, [1, 2, 3, 4, 5, 6, 7, 8]],
  [7, [3, 4, 5, 6, 7, 8, 9]],
  [8, [3, 4, 5, 6, 7, 8, 9, 10]],
  [7, [5, 6, 7, 8, 9, 10, 11]],
  [8, [5, 6, 7, 8, 9, 10, 11, 12]],
  [7, [7, 8, 9, 10, 11, 12, 13]],
  [8, [7, 8, 9, 10, 11, 12, 13, 14]],
  [7, [9, 10, 11, 12, 13, 14, 15]],
  [8, [9, 10, 11, 12, 13, 14, 15, 16]],
  [7, [11, 12, 13, 14, 15, 16, 17]],
  [8, [11, 12, 13, 14, 15, 16, 17, 18]],
  [7, [13, 14, 15, 16, 17, 18, 19]],
  [8, [13, 14, 15, 16, 17, 18, 19, 20]],
];
const PERCPU_LISTS: [number, number[]][] = [];
for (let i = 1; i <= 20; i++) {
  const start = i - ((i - 1) % 4);
  const keys = [];
  for (let k = start; k <= i; k++) keys.push(k);
  PERCPU_LISTS.push([keys.length, keys]);
}

for (const [name, flags, want] of [
  ["common LRU", 0, COMMON],
  ["BPF_F_NO_COMMON_LRU", MapFlags.NoCommonLru, PERCPU_LISTS],
] as const) {
  test(`LRU_HASH max_entries=8 ${name}: 20 inserts evict exactly as the kernel (t_lru.txt)`, () => {
    const m = lru(8, flags);
    for (let i = 1; i <= 20; i++) {
      assert.equal(m.updateElem(u32(i), new Uint8Array(8), 0), 0, `insert ${i}`);
      assert.equal(m.count(), want[i - 1][0], `n after insert ${i}`);
      assert.deepEqual(keySet(m), want[i - 1][1], `keys after insert ${i}`);
    }
    const f = m.fsck();
    assert.ok(f.ok, f.errors.join("\n"));
    // The flag rules that follow in t_lru.txt, on the same full map.
    assert.equal(
      m.updateElem(u32(100), new Uint8Array(8), UpdateFlags.Exist),
      -2,
      "BPF_EXIST missing: ENOENT",
    );
    assert.equal(m.updateElem(u32(101), new Uint8Array(8), UpdateFlags.NoExist), 0, "BPF_NOEXIST new: OK");
    assert.equal(m.updateElem(u32(101), new Uint8Array(8), UpdateFlags.NoExist), -17, "existing: EEXIST");
    assert.equal(m.updateElem(u32(101), new Uint8Array(8), UpdateFlags.Lock), -22, "BPF_F_LOCK: EINVAL");
    assert.match(m.lastError, /BPF_F_LOCK is not supported on LRU maps/);
    assert.ok(m.fsck().ok);
  });
}

test("a syscall lookup or BPF_EXIST update does not protect a key from eviction; a program lookup does (t_lru.txt me=64)", () => {
  for (const touch of ["lookup", "update", "program"] as const) {
    const m = lru(64);
    for (let i = 1; i <= 64; i++) m.updateElem(u32(i), new Uint8Array(8), 0);
    const out = new Uint8Array(8);
    for (let i = 0; i < 32; i++) {
      if (touch === "lookup") m.lookupElem(u32(1), out);
      else if (touch === "update") m.updateElem(u32(1), new Uint8Array(8), UpdateFlags.Exist);
      else m.run(() => m.lookupRef(u32(1)));
      m.updateElem(u32(1000 + i), new Uint8Array(8), 0);
    }
    assert.equal(m.count(), 64);
    assert.equal(m.lookupElem(u32(1), out) === 0, touch === "program", `key 1 after ${touch}`);
    assert.ok(m.fsck().ok);
  }
});

test("steady-state fill: common me=1000 holds 880 after 5000 inserts, per-CPU lists 500 on one CPU (t_lru.txt)", () => {
  const fill = (flags: number, cpus: number[]) => {
    const m0 = lru(1000, flags);
    const ms = cpus.map((c) => (c === 0 ? m0 : Htab.attach(m0.handle, { cpu: c })));
    for (let i = 0; i < 5000; i++) ms[i % ms.length].updateElem(u32(i + 1), new Uint8Array(8), 0);
    const f = m0.fsck();
    assert.ok(f.ok, f.errors.join("\n"));
    return m0.count();
  };
  assert.equal(fill(0, [0]), 880);
  assert.equal(fill(MapFlags.NoCommonLru, [0]), 500);
  assert.equal(fill(0, [0, 1]), 880, "alternating CPUs");
});

test("LRU_PERCPU_HASH: full map evicts, BPF_EXIST missing is ENOENT, BPF_F_LOCK EINVAL (t_lru.txt)", () => {
  const m = lru(4, 0, MapType.LruPercpuHash);
  const v = new Uint8Array(8 * NR_CPUS);
  for (let i = 1; i <= 6; i++) assert.equal(m.updateElem(u32(i), v, 0), 0);
  assert.equal(m.count(), 4);
  assert.equal(m.updateElem(u32(77), v, UpdateFlags.Exist), -2);
  assert.equal(m.updateElem(u32(6), v, UpdateFlags.Lock), -22);
  assert.ok(m.fsck().ok);
});

test("delete frees an element for the next insert: me=4, 1..4, del 2, add 9 -> 1 3 4 9 (t_lru.txt)", () => {
  const m = lru(4);
  for (let i = 1; i <= 4; i++) m.updateElem(u32(i), new Uint8Array(8), 0);
  assert.equal(m.deleteElem(u32(2)), 0);
  assert.equal(m.updateElem(u32(9), new Uint8Array(8), 0), 0);
  assert.deepEqual(keySet(m), [1, 3, 4, 9]);
  assert.ok(m.fsck().ok);
});

test("NO_COMMON_LRU rounds max_entries to a multiple of the CPUs", () => {
  assert.equal(lru(5, MapFlags.NoCommonLru).info.maxEntries, 6);
  assert.equal(lru(8, MapFlags.NoCommonLru).info.maxEntries, 8);
  assert.equal(lru(5).info.maxEntries, 5);
});

test("a per-CPU LRU update from a program writes its slot in place and marks the key referenced", () => {
  const m0 = lru(4, 0, MapType.LruPercpuHash, 4);
  const m1 = Htab.attach(m0.handle, { cpu: 1 });
  assert.equal(m1.updateElemFromProgram(u32(5), u32(55), 0), 0);
  assert.equal(m0.updateElemFromProgram(u32(5), u32(66), UpdateFlags.Exist), 0);
  const out = new Uint8Array(16);
  assert.equal(m0.lookupElem(u32(5), out), 0);
  assert.deepEqual([...new Uint32Array(out.buffer)], [66, 0, 55, 0]);
  assert.ok(m0.fsck().ok);
});

test("an element evicted while a program section may hold it waits in limbo, then is reused", () => {
  const m = lru(8);
  const other = Htab.attach(m.handle, { cpu: 1 });
  for (let i = 1; i <= 8; i++) m.updateElem(u32(i), new Uint8Array(8).fill(i), 0);
  other.enter();
  const ref = other.lookupRef(u32(1));
  assert.ok(ref);
  // Enough inserts to evict key 1; its element must not be reused while the section lasts.
  for (let i = 100; i < 140; i++) m.updateElem(u32(i), new Uint8Array(8).fill(0xee), 0);
  assert.equal(ref.load32(0), 0x01010101, "the referenced element still holds key 1's value");
  other.exit();
  for (let i = 200; i < 240; i++) assert.equal(m.updateElem(u32(i), new Uint8Array(8), 0), 0);
  const f = m.fsck();
  assert.ok(f.ok, f.errors.join("\n"));
  assert.equal(m.count() <= 8, true);
});

test("compareAndDelete, compareAndSwap and compute work on LRU maps", () => {
  const m = lru(4);
  m.updateElem(u32(1), new Uint8Array(8).fill(1), 0);
  assert.equal(m.compareAndDeleteElem(u32(1), new Uint8Array(8).fill(2)), -16, "EBUSY on mismatch");
  assert.equal(m.compareAndSwapElem(u32(1), new Uint8Array(8).fill(1), new Uint8Array(8).fill(3)), 0);
  assert.equal(
    m.compute(u32(2), (cur) => (cur === undefined ? new Uint8Array(8).fill(9) : undefined)),
    0,
  );
  const out = new Uint8Array(8);
  assert.equal(m.lookupElem(u32(2), out), 0);
  assert.equal(out[0], 9);
  assert.equal(m.compareAndDeleteElem(u32(1), new Uint8Array(8).fill(3)), 0);
  for (let i = 10; i < 30; i++) m.compute(u32(i), () => new Uint8Array(8).fill(i));
  assert.equal(m.count(), 4, "compute inserts evict like updates");
  const f = m.fsck();
  assert.ok(f.ok, f.errors.join("\n"));
});
