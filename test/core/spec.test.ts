/**
 * Map creation errno, row by row from docs/kernel-facts.md (t_create.txt)
 * (the 6.18 kernel probed as root) for BPF_MAP_TYPE_HASH.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import type { MapSpec } from "../../src/map/spec.js";
import { MapFlags as F, MapType } from "../../src/uapi.js";

const base: MapSpec = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16, flags: 0 };
const MiB4 = 4 * 1024 * 1024;

// [description, spec overrides, expected code or "OK", privileged]
const rows: [string, Partial<MapSpec>, string, boolean?][] = [
  ["baseline", {}, "OK"],
  ["key_size=0", { keySize: 0 }, "EINVAL"],
  ["value_size=0", { valueSize: 0 }, "EINVAL"],
  ["max_entries=0", { maxEntries: 0 }, "EINVAL"],
  ["key_size=513", { keySize: 513 }, "OK"],
  ["key_size=65536", { keySize: 65536 }, "OK"],
  ["key+value = 4MiB-48-1", { keySize: 4, valueSize: MiB4 - 48 - 1 - 4 }, "OK"],
  ["key+value = 4MiB-48", { keySize: 4, valueSize: MiB4 - 48 - 4 }, "E2BIG"],
  ["value_size=32769", { valueSize: 32769 }, "OK"],
  ["max_entries=1<<31", { maxEntries: 2 ** 31 }, "E2BIG"],
  ["max_entries=(1<<31)+1", { maxEntries: 2 ** 31 + 1 }, "E2BIG"],
  ["max_entries=0xffffffff", { maxEntries: 0xffffffff }, "E2BIG"],
  ["max_entries=1<<31 NO_PREALLOC", { maxEntries: 2 ** 31, flags: F.NoPrealloc }, "E2BIG"],
  ["NO_PREALLOC max_entries=2^27+1", { maxEntries: 2 ** 27 + 1, flags: F.NoPrealloc }, "E2BIG"],
  ["NO_COMMON_LRU", { flags: F.NoCommonLru }, "EINVAL"],
  ["NO_COMMON_LRU|NO_PREALLOC", { flags: F.NoCommonLru | F.NoPrealloc }, "EINVAL"],
  ["ZERO_SEED (root)", { flags: F.ZeroSeed }, "OK", true],
  ["ZERO_SEED without CAP_SYS_ADMIN", { flags: F.ZeroSeed }, "EPERM"],
  ["ZERO_SEED + key_size=0 without CAP_SYS_ADMIN (order)", { flags: F.ZeroSeed, keySize: 0 }, "EPERM"],
  ["RDONLY", { flags: F.Rdonly }, "OK"],
  ["WRONLY", { flags: F.Wronly }, "OK"],
  ["RDONLY|WRONLY", { flags: F.Rdonly | F.Wronly }, "EINVAL"],
  ["RDONLY_PROG", { flags: F.RdonlyProg }, "OK"],
  ["WRONLY_PROG", { flags: F.WronlyProg }, "OK"],
  ["RDONLY_PROG|WRONLY_PROG", { flags: F.RdonlyProg | F.WronlyProg }, "EINVAL"],
  ["MMAPABLE", { flags: F.Mmapable }, "EINVAL"],
  ["PRESERVE_ELEMS", { flags: F.PreserveElems }, "EINVAL"],
  ["INNER_MAP", { flags: F.InnerMap }, "EINVAL"],
  ["STACK_BUILD_ID", { flags: F.StackBuildId }, "EINVAL"],
  ["1<<20 (unknown)", { flags: 1 << 20 }, "EINVAL"],
  ["NUMA_NODE numa=0", { flags: F.NumaNode, numaNode: 0 }, "OK"],
  ["NUMA_NODE numa_node=5 (offline)", { flags: F.NumaNode, numaNode: 5 }, "EINVAL"],
  ["numa_node=5 without flag", { numaNode: 5 }, "OK"],
  ["key_size=0 + MMAPABLE", { keySize: 0, flags: F.Mmapable }, "EINVAL"],
];

for (const [what, over, want, privileged] of rows) {
  test(`create HASH ${what} -> ${want}`, () => {
    const spec = { ...base, ...over };
    // Sizes that are valid but huge stay cheap: shrink max_entries where the row is about sizes.
    if (want === "OK" && spec.keySize + spec.valueSize > 1 << 16) spec.maxEntries = 1;
    let got = "OK";
    try {
      Htab.create(spec, { privileged: privileged === true, nrCpus: 2 }).close();
    } catch (e) {
      got = (e as { code: string }).code;
      assert.match((e as Error).message, /^create: .+\(E[A-Z0-9]+\)$/, "message names the op and the errno");
    }
    assert.equal(got, want);
  });
}

test("create rejects non-integer sizes with EINVAL, not a crash", () => {
  for (const bad of [-1, 1.5, Number.NaN, "4" as unknown as number, 2 ** 32]) {
    assert.throws(() => Htab.create({ ...base, keySize: bad }), { code: "EINVAL" });
  }
});

test("the E2BIG for a full map says map full, with the numbers", () => {
  const m = Htab.create({ ...base, maxEntries: 2 }, { nrCpus: 1 });
  const v = new Uint8Array(8);
  assert.equal(m.updateElem(new Uint8Array([1, 0, 0, 0]), v, 0), 0);
  assert.equal(m.updateElem(new Uint8Array([2, 0, 0, 0]), v, 0), 0);
  assert.equal(m.updateElem(new Uint8Array([3, 0, 0, 0]), v, 0), -7);
  assert.match(m.lastError, /map full \(2 of 2 entries in use\)/);
});

// LRU_HASH and LRU_PERCPU_HASH rows of t_create.txt: [description, overrides, LRU_HASH, LRU_PERCPU_HASH].
const lruRows: [string, Partial<MapSpec>, string, string][] = [
  ["baseline", {}, "OK", "OK"],
  ["key_size=0", { keySize: 0 }, "EINVAL", "EINVAL"],
  ["value_size=0", { valueSize: 0 }, "EINVAL", "EINVAL"],
  ["max_entries=0", { maxEntries: 0 }, "EINVAL", "EINVAL"],
  ["key_size=513", { keySize: 513 }, "OK", "OK"],
  ["key+value = 4MiB-48-1", { keySize: 4, valueSize: MiB4 - 48 - 1 - 4 }, "OK", "E2BIG"],
  ["key+value = 4MiB-48", { keySize: 4, valueSize: MiB4 - 48 - 4 }, "E2BIG", "E2BIG"],
  ["value_size=32768", { valueSize: 32768 }, "OK", "OK"],
  ["value_size=32769", { valueSize: 32769 }, "OK", "E2BIG"],
  ["max_entries=1<<31", { maxEntries: 2 ** 31 }, "E2BIG", "E2BIG"],
  ["max_entries=0xffffffff", { maxEntries: 0xffffffff }, "E2BIG", "E2BIG"],
  ["max_entries=1<<31 NO_PREALLOC", { maxEntries: 2 ** 31, flags: F.NoPrealloc }, "ENOTSUPP", "ENOTSUPP"],
  ["NO_PREALLOC", { flags: F.NoPrealloc }, "ENOTSUPP", "ENOTSUPP"],
  ["NO_COMMON_LRU", { flags: F.NoCommonLru }, "OK", "OK"],
  ["NO_COMMON_LRU|NO_PREALLOC", { flags: F.NoCommonLru | F.NoPrealloc }, "ENOTSUPP", "ENOTSUPP"],
  ["RDONLY|WRONLY", { flags: F.Rdonly | F.Wronly }, "EINVAL", "EINVAL"],
  ["RDONLY_PROG|WRONLY_PROG", { flags: F.RdonlyProg | F.WronlyProg }, "EINVAL", "EINVAL"],
  ["MMAPABLE", { flags: F.Mmapable }, "EINVAL", "EINVAL"],
  ["1<<20 (unknown)", { flags: 1 << 20 }, "EINVAL", "EINVAL"],
  ["NUMA_NODE numa=0", { flags: F.NumaNode, numaNode: 0 }, "OK", "EINVAL"],
  ["NUMA_NODE numa_node=5 (offline)", { flags: F.NumaNode, numaNode: 5 }, "EINVAL", "EINVAL"],
  ["value_size=32769 + NUMA flag", { valueSize: 32769, flags: F.NumaNode }, "OK", "EINVAL"],
];

for (const [type, name, col] of [
  [MapType.LruHash, "LRU_HASH", 2],
  [MapType.LruPercpuHash, "LRU_PERCPU_HASH", 3],
] as const) {
  for (const row of lruRows) {
    const [what, over] = row;
    const want = row[col];
    test(`create ${name} ${what} -> ${want}`, () => {
      const spec = { ...base, type, ...over };
      if (want === "OK" && spec.keySize + spec.valueSize > 1 << 16) spec.maxEntries = 1;
      let got = "OK";
      try {
        Htab.create(spec, { privileged: true, nrCpus: 2 }).close();
      } catch (e) {
        got = (e as { code: string }).code;
      }
      assert.equal(got, want);
    });
  }
}

/**
 * A bpf_spin_lock in the value with BPF_F_RDONLY_PROG or BPF_F_WRONLY_PROG is
 * EACCES whatever the map type: map_check_btf() checks program access before
 * the map types that allow a lock (6.18, probed with `htab replay --backend
 * kernel`; the differential's spin-lock scripts now include both flags).
 */
test("a bpf_spin_lock with RDONLY_PROG or WRONLY_PROG is EACCES before the type's EOPNOTSUPP", () => {
  for (const type of [MapType.Hash, MapType.PercpuHash, MapType.LruHash, MapType.LruPercpuHash])
    for (const flags of [F.RdonlyProg, F.WronlyProg])
      assert.throws(
        () => Htab.create({ ...base, type, valueSize: 12, spinLockOffset: 4, flags }, { nrCpus: 2 }),
        { code: "EACCES" },
        `type ${type} flags 0x${flags.toString(16)}`,
      );
  assert.throws(() => Htab.create({ ...base, type: MapType.PercpuHash, valueSize: 12, spinLockOffset: 4 }), {
    code: "EOPNOTSUPP",
  });
});
