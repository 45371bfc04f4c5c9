/**
 * Differential conformance: fast-check writes random `htab replay` scripts,
 * each runs on the SharedArrayBuffer backend and on the real kernel, and any
 * difference in any output line fails with the shrunk script.
 *
 * HTAB_CONFORMANCE_RUNS sets the number of scripts (default 150 in `npm test`).
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

const createArb = fc.record({
  type: fc.constantFrom("hash", "hash", "hash", "percpu_hash", "lru_hash", "lru_hash", "lru_percpu_hash"),
  key_size: fc.constantFrom(4, 4, 8, 3, 6, 16),
  value_size: fc.constantFrom(8, 8, 4, 1, 12, 40),
  max_entries: fc.integer({ min: 1, max: 12 }),
  flags: fc.constantFrom(
    F.ZeroSeed,
    F.ZeroSeed,
    F.ZeroSeed,
    F.ZeroSeed | F.NumaNode,
    F.ZeroSeed | F.Rdonly,
    F.ZeroSeed | F.Wronly,
    F.ZeroSeed | F.RdonlyProg,
    F.ZeroSeed | F.NoPrealloc,
    F.ZeroSeed | F.NoCommonLru,
  ),
});

/** Operations on map 0, whose key size is `ks` and value size `vs`. */
function opsArb(ks: number, vs: number, maxEntries: number): fc.Arbitrary<Line[]> {
  const key = fc.integer({ min: 0, max: maxEntries + 5 }).map((k) => hexOf(k, ks));
  const value = fc.integer({ min: 0, max: 1 << 30 }).map((v) => hexOf(v, vs));
  const flags = fc.constantFrom(0, 0, 0, 1, 2, 3, 4, 8);
  const cursor = fc.option(
    fc.integer({ min: 0, max: 20 }).map((c) => hexOf(c, 4)),
    { nil: null },
  );
  const op: fc.Arbitrary<Line> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant("update"), key, value, flags }) },
    {
      weight: 3,
      arbitrary: fc.record({ op: fc.constant("lookup"), key, flags: fc.constantFrom(0, 0, 1, 4) }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("delete"), key }) },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant("lookup_and_delete"), key, flags: fc.constantFrom(0, 0, 1, 4) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("get_next_key"), key: fc.option(key, { nil: null }) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constantFrom("lookup_batch", "lookup_and_delete_batch"),
        in_batch: cursor,
        count: fc.integer({ min: 0, max: 8 }),
        elem_flags: fc.constantFrom(0, 0, 0, 1, 4),
        flags: fc.constantFrom(0, 0, 0, 1),
      }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.array(fc.tuple(key, value), { maxLength: 6, size: "max" }),
          fc.constantFrom(0, 0, 1, 2, 4),
          fc.constantFrom(0, 0, 1),
        )
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
        .tuple(fc.array(key, { maxLength: 5 }), fc.constantFrom(0, 0, 1))
        .map(([keys, ef]) => ({ op: "delete_batch", keys, elem_flags: ef })),
    },
    { weight: 1, arbitrary: fc.constant({ op: "dump" }) },
    { weight: 1, arbitrary: fc.constant({ op: "count" }) },
  );
  return fc.array(
    op.map((o) => ({ ...o, map: 0 })),
    { minLength: 1, maxLength: 60, size: "max" },
  );
}

/** Bytes a value takes in replay: per-CPU values are possible CPUs x round_up(value_size, 8). */
const CPUS = machineCpus();
const valueHexBytes = (type: string, vs: number) => syscallValueBytes(MAP_TYPE_NAMES[type], vs, CPUS);

const scriptArb: fc.Arbitrary<Line[]> = createArb.chain((c) =>
  opsArb(c.key_size, valueHexBytes(c.type, c.value_size), c.max_entries).map((ops) => [
    { ...c, op: "create" },
    ...ops,
  ]),
);

function runOn(
  backend: "sab" | "kernel",
  script: Line[],
  opts: { standalone?: boolean; fastPath?: boolean } = {},
): string[] {
  const r = new Replayer(factoryFor(backend, opts));
  try {
    return script.map((l) => JSON.stringify(r.run(JSON.stringify(l))));
  } finally {
    r.close();
  }
}

/**
 * Run `script` on the kernel and on SAB maps in a MapDomain on both paths
 * (the wasm fast path and the JS path); with `standalone`, also on
 * standalone SAB maps (as createMap() makes them: the fast path).
 */
function compare(script: Line[], standalone = false): boolean {
  const kern = runOn("kernel", script);
  const runs: [string, string[]][] = [
    ["sab (JS path)", runOn("sab", script, { fastPath: false })],
    ["sab (wasm fast path)", runOn("sab", script)],
  ];
  if (standalone) runs.push(["sab (standalone maps)", runOn("sab", script, { standalone: true })]);
  for (const [name, sab] of runs)
    for (let i = 0; i < script.length; i++) {
      if (sab[i] !== kern[i]) {
        const text = script.map((l) => JSON.stringify(l)).join("\n");
        assert.fail(
          `line ${i + 1} differs\n  input:  ${JSON.stringify(script[i])}\n  ${name}:    ${sab[i]}\n  kernel: ${kern[i]}\nscript:\n${text}`,
        );
      }
    }
  return true;
}

/** Run `runs` scripts from `arb` on both backends; any differing line fails with the shrunk script. */
function differential(
  label: string,
  what: string,
  arb: fc.Arbitrary<Line[]>,
  runs: number,
  standalone = true,
): void {
  const paths = standalone ? " (JS path, wasm fast path, standalone maps)" : " (JS path and wasm fast path)";
  test(`differential: ${runs} ${what} agree with the kernel${paths}`, { skip, timeout: 600_000 }, () => {
    let ops = 0;
    fc.assert(
      fc.property(arb, (script) => {
        compare(script, standalone);
        ops += script.length;
      }),
      { numRuns: runs, verbose: 1 },
    );
    console.log(`# differential${label}: ${runs} scripts, ${ops} operations, 0 differences`);
  });
}

differential("", "random scripts", scriptArb, RUNS);

/**
 * Maps with a bpf_spin_lock in the value (the kernel side made with BTF):
 * BPF_F_LOCK lookups, updates, lookup-and-delete and batches, and the
 * kernel's refusals (per-CPU and LRU maps, a lock outside the value, freeze).
 */
const spinLockArb: fc.Arbitrary<Line[]> = fc
  .record({
    type: fc.constantFrom("hash", "hash", "hash", "hash", "percpu_hash", "lru_hash"),
    key_size: fc.constantFrom(4, 8),
    value_size: fc.constantFrom(8, 12, 16, 40),
    spin_lock_offset: fc.constantFrom(0, 0, 4, 8),
    max_entries: fc.integer({ min: 1, max: 10 }),
    flags: fc.constantFrom(
      F.ZeroSeed,
      F.ZeroSeed,
      F.ZeroSeed,
      F.ZeroSeed | F.NoPrealloc,
      F.ZeroSeed | F.RdonlyProg,
      F.ZeroSeed | F.WronlyProg,
    ),
  })
  .chain((c) =>
    opsArb(c.key_size, valueHexBytes(c.type, c.value_size), c.max_entries).map((ops) => [
      { ...c, op: "create" },
      ...ops,
      { op: "freeze", map: 0 },
    ]),
  );
differential(" (bpf_spin_lock maps)", "bpf_spin_lock scripts", spinLockArb, Math.ceil(RUNS / 3), false);

/**
 * LRU-heavy scripts: bigger maps, mostly updates over twice as many keys as
 * fit, so that eviction, rotation (re-updates set the ref bit) and the
 * per-CPU lists are exercised. The kernel side runs pinned to CPU 0.
 */
const lruScriptArb: fc.Arbitrary<Line[]> = fc
  .record({
    type: fc.constantFrom("lru_hash", "lru_percpu_hash"),
    max_entries: fc.integer({ min: 1, max: 48 }),
    flags: fc.constantFrom(F.ZeroSeed, F.ZeroSeed | F.NoCommonLru),
  })
  .chain((c) => {
    const vb = valueHexBytes(c.type, 8);
    const key = fc.integer({ min: 0, max: 2 * c.max_entries + 2 }).map((k) => hexOf(k, 4));
    const value = fc.integer({ min: 0, max: 1 << 30 }).map((v) => hexOf(v, vb));
    const op: fc.Arbitrary<Line> = fc.oneof(
      {
        weight: 12,
        arbitrary: fc.record({ op: fc.constant("update"), key, value, flags: fc.constantFrom(0, 0, 1, 2) }),
      },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("delete"), key }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("lookup"), key }) },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant("lookup_and_delete_batch"),
          in_batch: fc.constant(null),
          count: fc.integer({ min: 1, max: 6 }),
        }),
      },
      { weight: 1, arbitrary: fc.constant({ op: "count" }) },
    );
    return fc
      .array(
        op.map((o) => ({ ...o, map: 0 })),
        { minLength: 10, maxLength: 150, size: "max" },
      )
      .map((ops) => [{ op: "create", key_size: 4, value_size: 8, ...c }, ...ops, { op: "dump", map: 0 }]);
  });

differential(" LRU", "LRU eviction scripts (kernel side pinned to CPU 0)", lruScriptArb, Math.ceil(RUNS / 2));

/**
 * Map-in-map: a template and four candidate inner maps (two match, one is
 * bigger, two do not match), then an ARRAY_OF_MAPS or HASH_OF_MAPS and random
 * operations on it. Values name inner maps by replay map number; the replayer
 * hands the kernel their fds and the SAB domain their ids, and maps lookups
 * (inner map ids) back to numbers.
 */
const mapInMapArb: fc.Arbitrary<Line[]> = fc
  .record({
    type: fc.constantFrom("array_of_maps", "hash_of_maps"),
    max_entries: fc.integer({ min: 1, max: 6 }),
  })
  .chain((c) => {
    const keyMax = c.type === "array_of_maps" ? c.max_entries + 1 : c.max_entries + 4;
    const key = fc.integer({ min: 0, max: keyMax }).map((k) => hexOf(k, 4));
    const value = fc.constantFrom(1, 1, 2, 2, 0, 3, 4, 5, 9).map((n) => hexOf(n, 4));
    const op: fc.Arbitrary<Line> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          op: fc.constant("update"),
          key,
          value,
          flags: fc.constantFrom(0, 0, 1, 2, 4),
        }),
      },
      { weight: 3, arbitrary: fc.record({ op: fc.constant("lookup"), key }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("delete"), key }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant("lookup_and_delete"), key }) },
      {
        weight: 2,
        arbitrary: fc.record({ op: fc.constant("get_next_key"), key: fc.option(key, { nil: null }) }),
      },
      { weight: 1, arbitrary: fc.constant({ op: "count" }) },
      { weight: 1, arbitrary: fc.constant({ op: "dump" }) },
      { weight: 1, arbitrary: fc.constant({ op: "freeze" }) },
    );
    // Batches on the hash of maps only (htab offers none on an array of maps).
    const batch: fc.Arbitrary<Line> = fc.oneof(
      fc.record({
        op: fc.constantFrom("lookup_batch", "lookup_and_delete_batch"),
        in_batch: fc.constant(null),
        count: fc.integer({ min: 0, max: 6 }),
      }),
      fc
        .array(fc.tuple(key, value), { maxLength: 4 })
        .map((kv) => ({ op: "update_batch", keys: kv.map((p) => p[0]), values: kv.map((p) => p[1]) })),
      fc.array(key, { maxLength: 4 }).map((keys) => ({ op: "delete_batch", keys })),
    );
    const anyOp =
      c.type === "hash_of_maps"
        ? fc.oneof({ weight: 6, arbitrary: op }, { weight: 1, arbitrary: batch })
        : op;
    const hashSpec = {
      op: "create",
      type: "hash",
      key_size: 4,
      value_size: 8,
      max_entries: 4,
      flags: F.ZeroSeed,
    };
    return fc
      .array(
        anyOp.map((o) => ({ ...o, map: 5 })),
        { minLength: 1, maxLength: 40, size: "max" },
      )
      .map((ops) => [
        hashSpec,
        hashSpec,
        { ...hashSpec, max_entries: 8 },
        { ...hashSpec, type: "percpu_hash" },
        { ...hashSpec, value_size: 16 },
        {
          op: "create",
          type: c.type,
          key_size: 4,
          value_size: 4,
          max_entries: c.max_entries,
          flags: c.type === "hash_of_maps" ? F.ZeroSeed : 0,
          inner_map: 0,
        },
        ...ops,
      ]);
  });

differential(" map-in-map", "map-in-map scripts", mapInMapArb, Math.ceil(RUNS / 3), false);

test("differential: creation errno for random sizes and flags", { skip }, () => {
  const flagBits = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 2048, 4096, 1 << 20];
  let n = 0;
  let calls = 0;
  fc.assert(
    fc.property(
      fc.constantFrom(0, 1, 3, 4, 8, 4096),
      fc.constantFrom(0, 1, 8, 32768, 32769),
      fc.constantFrom(0, 1, 7, 64),
      fc.subarray(flagBits, { maxLength: 3 }),
      fc.constantFrom(0, 5),
      (ks, vs, me, bits, numa) => {
        const flags = bits.reduce((a, b) => a | b, 0);
        calls++;
        const pick = calls;
        if (
          compare([
            {
              op: "create",
              type: ["hash", "percpu_hash", "lru_hash", "lru_percpu_hash"][pick % 4],
              key_size: ks,
              value_size: vs,
              max_entries: me,
              flags,
              numa_node: numa,
            },
          ])
        )
          n++;
      },
    ),
    { numRuns: Math.max(60, RUNS / 2), verbose: 1 },
  );
  console.log(`# differential: ${n} create calls agree`);
});

/** Port of the hashmap checks of tools/testing/selftests/bpf/test_maps.c (test_hashmap). */
test("differential: test_maps.c test_hashmap sequence gives the selftest's results on both backends", {
  skip,
}, () => {
  const k = (n: number) => `${hexOf(n, 8).slice(0, 8)}00000000`;
  const v = (n: number) => `${hexOf(n, 8).slice(0, 8)}00000000`;
  const script: Line[] = [
    { op: "create", type: "hash", key_size: 8, value_size: 8, max_entries: 2, flags: 0 },
    { op: "update", map: 0, key: k(1), value: v(1234), flags: 0 },
    { op: "update", map: 0, key: k(1), value: v(1234), flags: 1 },
    { op: "update", map: 0, key: k(1), value: v(1235), flags: 2 },
    { op: "lookup", map: 0, key: k(1) },
    { op: "update", map: 0, key: k(2), value: v(1234), flags: 2 },
    { op: "lookup", map: 0, key: k(2) },
    { op: "update", map: 0, key: k(2), value: v(1234), flags: 1 },
    { op: "update", map: 0, key: k(0), value: v(1234), flags: 1 },
    { op: "update", map: 0, key: k(0), value: v(1234), flags: 0 },
    { op: "update", map: 0, key: k(1), value: v(1236), flags: 0 },
    { op: "update", map: 0, key: k(2), value: v(1236), flags: 2 },
    { op: "update", map: 0, key: k(1), value: v(1236), flags: 2 },
    { op: "delete", map: 0, key: k(0) },
    { op: "count", map: 0 },
    { op: "delete", map: 0, key: k(1) },
    { op: "delete", map: 0, key: k(2) },
    { op: "delete", map: 0, key: k(1) },
    { op: "get_next_key", map: 0, key: null },
    { op: "get_next_key", map: 0, key: k(1) },
  ];
  const want = [
    { ok: true, map: 0 },
    { ok: true },
    { ok: false, errno: "EEXIST" },
    { ok: true },
    { ok: true, value: v(1235) },
    { ok: false, errno: "ENOENT" },
    { ok: false, errno: "ENOENT" },
    { ok: true },
    { ok: false, errno: "E2BIG" },
    { ok: false, errno: "E2BIG" },
    { ok: true },
    { ok: true },
    { ok: true },
    { ok: false, errno: "ENOENT" },
    { ok: true, count: 2 },
    { ok: true },
    { ok: true },
    { ok: false, errno: "ENOENT" },
    { ok: false, errno: "ENOENT" },
    { ok: false, errno: "ENOENT" },
  ];
  for (const backend of ["sab", "kernel"] as const) {
    const got = runOn(backend, script).map((s) => JSON.parse(s));
    assert.deepEqual(got, want, `${backend} backend`);
  }
});

/**
 * Port of map_tests/htab_map_batch_ops.c: fill the map with update_batch, then
 * walk it with lookup(_and_delete)_batch for every step size; every key comes
 * back exactly once with its value, and both backends return the same batches.
 */
test("differential: htab_map_batch_ops.c walks for every step size", { skip }, () => {
  const max = 10;
  const keys = Array.from({ length: max }, (_, i) => hexOf(i + 1, 4));
  const values = Array.from({ length: max }, (_, i) => hexOf((i + 1) * 1000, 8));
  for (const del of [false, true]) {
    for (let step = 1; step < max; step++) {
      const script: Line[] = [
        { op: "create", type: "hash", key_size: 4, value_size: 8, max_entries: max, flags: F.ZeroSeed },
        { op: "update_batch", map: 0, keys, values, elem_flags: 0, flags: 0 },
      ];
      // Enough calls to finish any walk; later ones just return ENOENT.
      let cursor: string | null = null;
      const outs: Record<string, unknown>[] = [];
      const r = new Replayer(factoryFor("sab"));
      for (const l of script) r.run(JSON.stringify(l));
      for (let i = 0; i < 2 * max; i++) {
        let count = step;
        let res = r.run(
          JSON.stringify({
            op: del ? "lookup_and_delete_batch" : "lookup_batch",
            map: 0,
            in_batch: cursor,
            count,
          }),
        );
        while (res.errno === "ENOSPC") {
          count *= 2;
          res = r.run(
            JSON.stringify({
              op: del ? "lookup_and_delete_batch" : "lookup_batch",
              map: 0,
              in_batch: cursor,
              count,
            }),
          );
        }
        script.push({
          op: del ? "lookup_and_delete_batch" : "lookup_batch",
          map: 0,
          in_batch: cursor,
          count,
        });
        outs.push(res);
        if (res.errno === "ENOENT") break;
        cursor = res.out_batch as string;
      }
      r.close();
      const seen = outs.flatMap((o) => (o.keys as string[]) ?? []);
      assert.deepEqual([...seen].sort(), [...keys].sort(), `step ${step}: every key exactly once`);
      const vals = outs.flatMap((o) => (o.values as string[]) ?? []);
      for (let i = 0; i < seen.length; i++) assert.equal(vals[i], values[keys.indexOf(seen[i])]);
      if (del) script.push({ op: "count", map: 0 });
      compare(script, true);
    }
  }
});
