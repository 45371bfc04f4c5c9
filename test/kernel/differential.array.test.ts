/**
 * Differential conformance of ARRAY and PERCPU_ARRAY: fast-check writes
 * random `htab replay` scripts, each runs on the real kernel and on the SAB
 * backend (maps in a MapDomain, and standalone maps as createMap() makes
 * them), and any difference in any output line fails with the shrunk script.
 *
 * HTAB_CONFORMANCE_RUNS sets the number of scripts (default 150, as the hash suite).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { factoryFor, machineCpus } from "../../src/cli/backends.js";
import { Replayer } from "../../src/cli/replay.js";
import { syscallValueBytes } from "../../src/layout/layout.js";
import { MapFlags as F, MAP_TYPE_NAMES } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const skip = kernelSkipReason();
const RUNS = Number(process.env.HTAB_CONFORMANCE_RUNS ?? 150);

type Line = Record<string, unknown>;

function hexOf(n: number, size: number): string {
  let s = "";
  for (let i = 0; i < size; i++) {
    const byte = i < 4 ? (n >>> (8 * i)) & 0xff : (n * 31 + i) & 0xff;
    s += byte.toString(16).padStart(2, "0");
  }
  return s;
}

const CPUS = machineCpus();
const valueHexBytes = (type: string, vs: number) => syscallValueBytes(MAP_TYPE_NAMES[type], vs, CPUS);

function runOn(backend: "sab" | "kernel", script: Line[], opts: { standalone?: boolean } = {}): string[] {
  const r = new Replayer(factoryFor(backend, opts));
  try {
    return script.map((l) => JSON.stringify(r.run(JSON.stringify(l))));
  } finally {
    r.close();
  }
}

/** Run `script` on the kernel and on both SAB flavours; fail on the first differing line. */
function compare(script: Line[], standalone = true): void {
  const kern = runOn("kernel", script);
  const runs: [string, string[]][] = [["sab (domain)", runOn("sab", script)]];
  if (standalone) runs.push(["sab (standalone)", runOn("sab", script, { standalone: true })]);
  for (const [name, sab] of runs)
    for (let i = 0; i < script.length; i++)
      if (sab[i] !== kern[i])
        assert.fail(
          `line ${i + 1} differs\n  input:  ${JSON.stringify(script[i])}\n  ${name}: ${sab[i]}\n  kernel: ${kern[i]}\nscript:\n${script.map((l) => JSON.stringify(l)).join("\n")}`,
        );
}

function differential(label: string, arb: fc.Arbitrary<Line[]>, runs: number, standalone = true): void {
  test(`differential (arrays): ${runs} ${label} agree with the kernel`, { skip, timeout: 600_000 }, () => {
    let ops = 0;
    fc.assert(
      fc.property(arb, (script) => {
        compare(script, standalone);
        ops += script.length;
      }),
      { numRuns: runs, verbose: 1 },
    );
    console.log(`# differential arrays, ${label}: ${runs} scripts, ${ops} operations, 0 differences`);
  });
}

/** Operations on map `map` of an array with `maxEntries` elements and `vb` value bytes (hex). */
function opsArb(vb: number, maxEntries: number, map = 0, lockFlags = false): fc.Arbitrary<Line[]> {
  const idx = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: maxEntries + 2 }) },
    { weight: 1, arbitrary: fc.constantFrom(0xffffffff, 0x80000000, maxEntries - 1) },
  );
  const key = idx.map((k) => hexOf(k, 4));
  const value = fc.integer({ min: 0, max: 1 << 30 }).map((v) => hexOf(v, vb));
  const elemFlags = lockFlags ? fc.constantFrom(0, 4, 4, 1, 5) : fc.constantFrom(0, 0, 0, 1, 4);
  const updFlags = lockFlags ? fc.constantFrom(0, 4, 4, 6, 5, 1, 2) : fc.constantFrom(0, 0, 1, 2, 3, 4, 8);
  const lkFlags = lockFlags ? fc.constantFrom(0, 4, 4, 1) : fc.constantFrom(0, 0, 1, 4, 8);
  const cursor = fc.option(
    idx.map((c) => hexOf(c, 4)),
    { nil: null },
  );
  const op: fc.Arbitrary<Line> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant("update"), key, value, flags: updFlags }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("lookup"), key, flags: lkFlags }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("delete"), key }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("lookup_and_delete"), key, flags: lkFlags }) },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("get_next_key"), key: fc.option(key, { nil: null }) }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constantFrom("lookup_batch", "lookup_batch", "lookup_and_delete_batch"),
        in_batch: cursor,
        count: fc.integer({ min: 0, max: maxEntries + 2 }),
        elem_flags: elemFlags,
        flags: fc.constantFrom(0, 0, 1),
      }),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.array(fc.tuple(key, value), { maxLength: 6 }), elemFlags, fc.constantFrom(0, 0, 1))
        .map(([kv, ef, f]) => ({
          op: "update_batch",
          keys: kv.map((p) => p[0]),
          values: kv.map((p) => p[1]),
          elem_flags: ef,
          flags: f,
        })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.array(key, { maxLength: 3 }), fc.constantFrom(0, 1))
        .map(([keys, ef]) => ({ op: "delete_batch", keys, elem_flags: ef })),
    },
    { weight: 1, arbitrary: fc.constant({ op: "dump" }) },
    { weight: 1, arbitrary: fc.constant({ op: "count" }) },
    { weight: 1, arbitrary: fc.constant({ op: "freeze" }) },
  );
  return fc.array(
    op.map((o) => ({ ...o, map })),
    { minLength: 1, maxLength: 50, size: "max" },
  );
}

const scriptArb: fc.Arbitrary<Line[]> = fc
  .record({
    type: fc.constantFrom("array", "array", "percpu_array"),
    key_size: fc.constantFrom(4, 4, 4, 4, 4, 4, 8),
    value_size: fc.constantFrom(8, 8, 4, 1, 12, 40),
    max_entries: fc.integer({ min: 1, max: 12 }),
    flags: fc.constantFrom(
      0,
      0,
      0,
      F.Rdonly,
      F.Wronly,
      F.RdonlyProg,
      F.WronlyProg,
      F.NumaNode,
      F.Mmapable,
      F.InnerMap,
      F.Mmapable | F.RdonlyProg,
      F.NoPrealloc,
      F.ZeroSeed,
    ),
  })
  .chain((c) =>
    opsArb(valueHexBytes(c.type, c.value_size), c.max_entries).map((ops) => [{ ...c, op: "create" }, ...ops]),
  );

differential("random scripts", scriptArb, RUNS);

/** A bpf_spin_lock in the value (the kernel side made with BTF): BPF_F_LOCK copies, and the refusals. */
const spinLockArb: fc.Arbitrary<Line[]> = fc
  .record({
    type: fc.constantFrom("array", "array", "array", "array", "percpu_array"),
    key_size: fc.constant(4),
    value_size: fc.constantFrom(8, 12, 16, 40),
    spin_lock_offset: fc.constantFrom(0, 0, 4, 8),
    max_entries: fc.integer({ min: 1, max: 8 }),
    flags: fc.constantFrom(0, 0, 0, 0, F.RdonlyProg, F.WronlyProg, F.Rdonly, F.Mmapable),
  })
  .chain((c) =>
    opsArb(valueHexBytes(c.type, c.value_size), c.max_entries, 0, true).map((ops) => [
      { ...c, op: "create" },
      ...ops,
      { op: "freeze", map: 0 },
    ]),
  );
differential("bpf_spin_lock scripts", spinLockArb, Math.ceil(RUNS / 3), false);

/**
 * Arrays as inner maps: a template ARRAY (or PERCPU_ARRAY, or an ARRAY with
 * BPF_F_INNER_MAP), candidates that differ in max_entries, type, value size
 * or flags, then an ARRAY_OF_MAPS or HASH_OF_MAPS over them.
 */
const mapInMapArb: fc.Arbitrary<Line[]> = fc
  .record({
    outer: fc.constantFrom("array_of_maps", "hash_of_maps"),
    inner: fc.constantFrom("array", "array", "percpu_array"),
    innerFlags: fc.constantFrom(0, 0, F.InnerMap),
    max_entries: fc.integer({ min: 1, max: 5 }),
  })
  .chain((c) => {
    const key = fc.integer({ min: 0, max: c.max_entries + 2 }).map((k) => hexOf(k, 4));
    const value = fc.constantFrom(1, 2, 3, 4, 5, 0, 9).map((n) => hexOf(n, 4));
    const op: fc.Arbitrary<Line> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({ op: fc.constant("update"), key, value, flags: fc.constantFrom(0, 0, 1, 2) }),
      },
      { weight: 3, arbitrary: fc.record({ op: fc.constant("lookup"), key }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("delete"), key }) },
      { weight: 1, arbitrary: fc.constant({ op: "dump" }) },
    );
    const flags = c.inner === "array" ? c.innerFlags : 0;
    const arr = { op: "create", type: c.inner, key_size: 4, value_size: 8, max_entries: 4, flags };
    return fc
      .array(
        op.map((o) => ({ ...o, map: 6 })),
        { minLength: 1, maxLength: 30 },
      )
      .map((ops) => [
        arr,
        arr,
        { ...arr, max_entries: 8 },
        { ...arr, type: c.inner === "array" ? "percpu_array" : "array", flags: 0 },
        { ...arr, value_size: 16 },
        { op: "create", type: "hash", key_size: 4, value_size: 8, max_entries: 4, flags: F.ZeroSeed },
        {
          op: "create",
          type: c.outer,
          key_size: 4,
          value_size: 4,
          max_entries: c.max_entries,
          flags: c.outer === "hash_of_maps" ? F.ZeroSeed : 0,
          inner_map: 0,
        },
        ...ops,
      ]);
  });
differential("map-in-map scripts with array inner maps", mapInMapArb, Math.ceil(RUNS / 3), false);

test("differential (arrays): creation errno for random sizes and flags", { skip }, () => {
  const flagBits = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 2048, 4096, 1 << 20];
  let n = 0;
  fc.assert(
    fc.property(
      fc.constantFrom("array", "percpu_array"),
      fc.constantFrom(0, 1, 3, 4, 8),
      fc.constantFrom(0, 1, 8, 4096, 32760, 32768, 32769, 40000),
      fc.constantFrom(0, 1, 7, 64),
      fc.subarray(flagBits, { maxLength: 3 }),
      fc.constantFrom(0, 5),
      (type, ks, vs, me, bits, numa) => {
        const flags = bits.reduce((a, b) => a | b, 0);
        compare([
          { op: "create", type, key_size: ks, value_size: vs, max_entries: me, flags, numa_node: numa },
        ]);
        n++;
      },
    ),
    { numRuns: Math.max(80, RUNS), verbose: 1 },
  );
  console.log(`# differential arrays: ${n} create calls agree`);
});

/** Port of test_maps.c test_arraymap and test_arraymap_percpu: the selftest's expectations on both backends. */
test("differential (arrays): test_maps.c test_arraymap / test_arraymap_percpu give the selftest's results", {
  skip,
}, () => {
  for (const type of ["array", "percpu_array"]) {
    const vb = valueHexBytes(type, 8);
    const v = (n: number) => hexOf(n, 4) + "00".repeat(vb - 4);
    const k = (n: number) => hexOf(n, 4);
    const script: Line[] = [
      { op: "create", type, key_size: 4, value_size: 8, max_entries: 2, flags: 0 },
      { op: "update", map: 0, key: k(1), value: v(1234), flags: 0 },
      { op: "update", map: 0, key: k(1), value: v(1234), flags: 1 },
      { op: "update", map: 0, key: k(0), value: v(1234), flags: 2 },
      { op: "lookup", map: 0, key: k(0) },
      { op: "lookup", map: 0, key: k(1) },
      { op: "update", map: 0, key: k(2), value: v(1234), flags: 2 },
      { op: "lookup", map: 0, key: k(2) },
      { op: "get_next_key", map: 0, key: null },
      { op: "get_next_key", map: 0, key: k(0) },
      { op: "get_next_key", map: 0, key: k(1) },
      { op: "delete", map: 0, key: k(1) },
    ];
    const want = [
      { ok: true, map: 0 },
      { ok: true },
      { ok: false, errno: "EEXIST" },
      { ok: true },
      { ok: true, value: v(1234) },
      { ok: true, value: v(1234) },
      { ok: false, errno: "E2BIG" },
      { ok: false, errno: "ENOENT" },
      { ok: true, key: k(0) },
      { ok: true, key: k(1) },
      { ok: false, errno: "ENOENT" },
      { ok: false, errno: "EINVAL" },
    ];
    for (const backend of ["sab", "kernel"] as const)
      assert.deepEqual(
        runOn(backend, script).map((s) => JSON.parse(s)),
        want,
        `${type} on the ${backend} backend`,
      );
  }
});
