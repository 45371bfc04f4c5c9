/**
 * The bad-input fuzzer: random calls, valid and invalid mixed, over every
 * hash map type and flag combination, through every public method of the
 * raw layer (Htab), BpfMap and TypedMap, and through `htab replay` lines.
 *
 * Every call must succeed, return a negative errno, or throw BpfError (or
 * the error a user's own callback threw, which compute() and forEachElem()
 * pass on). Nothing else may be thrown, nothing may hang (the test's
 * timeout), and a failed call leaves the map byte-identical (stateBytes()).
 * Two kinds of failure are allowed to change what they already did, as in
 * the kernel: a batch that fails part-way keeps the entries it processed,
 * and on LRU maps an update refused for its flags may have evicted a key
 * (the kernel's own htab_lru_map_update_elem() pops before its flag check):
 * there the map may only lose keys, never gain or alter one.
 *
 * fast-check drives it (and shrinks a failing run to a short call list).
 * HTAB_FUZZ_CALLS sets the number of calls (default 100 000 per `npm test`).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { BpfMap } from "../../src/api/bpf-map.js";
import { createMap } from "../../src/api/create.js";
import { TypedMap } from "../../src/api/typed-map.js";
import { ArrayMap } from "../../src/array/array-map.js";
import { Replayer } from "../../src/cli/replay.js";
import { Htab } from "../../src/core/htab.js";
import { BpfError } from "../../src/errors.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import * as codecs from "../../src/map/codecs.js";
import { walkKeys } from "../../src/map/key-walk.js";
import type { RawMap } from "../../src/map/raw-map.js";
import type { MapSpec } from "../../src/map/spec.js";
import { MapFlags, MapType } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const TOTAL_CALLS = Number(process.env.HTAB_FUZZ_CALLS ?? 100_000);
const CALLS_PER_RUN = 100;

/** Every map shape the fuzzer builds: type x flags x spin lock x path. */
interface Shape {
  spec: MapSpec;
  fastPath: boolean;
}
const SHAPES: Shape[] = [];
for (const fastPath of [true, false]) {
  const base = { keySize: 4, valueSize: 8, maxEntries: 8 };
  for (const flags of [
    0,
    MapFlags.NoPrealloc,
    MapFlags.ZeroSeed,
    MapFlags.Rdonly,
    MapFlags.Wronly,
    MapFlags.RdonlyProg,
    MapFlags.WronlyProg,
  ]) {
    SHAPES.push({ spec: { type: MapType.Hash, ...base, flags }, fastPath });
    SHAPES.push({ spec: { type: MapType.PercpuHash, ...base, flags }, fastPath });
  }
  SHAPES.push({ spec: { type: MapType.Hash, ...base, spinLockOffset: 0 }, fastPath });
  SHAPES.push({ spec: { type: MapType.Hash, keySize: 6, valueSize: 12, maxEntries: 8 }, fastPath });
  for (const flags of [0, MapFlags.NoCommonLru, MapFlags.Rdonly, MapFlags.ZeroSeed]) {
    SHAPES.push({ spec: { type: MapType.LruHash, ...base, flags }, fastPath });
    SHAPES.push({ spec: { type: MapType.LruPercpuHash, ...base, flags }, fastPath });
  }
}

/** The error a junk callback throws: passed on untouched, and allowed. */
class CallbackError extends Error {}

/** A value that is not what the argument should be, or a valid one: `pick` chooses. */
function bytesArg(pick: number, size: number, seed: number): unknown {
  const fill = (b: Uint8Array) => {
    for (let i = 0; i < b.length; i++) b[i] = (seed * 31 + i * 7) & (seed % 3 === 0 ? 7 : 0xff);
    return b;
  };
  switch (pick % 16) {
    case 0:
    case 1:
    case 2:
    case 3:
      return fill(new Uint8Array(size));
    case 4:
      return fill(Buffer.alloc(size)); // a Node Buffer is a Uint8Array: valid
    case 5: {
      const big = fill(new Uint8Array(size + 5));
      return big.subarray(3, 3 + size); // an offset view: valid
    }
    case 6:
      return new Uint8Array(Math.max(0, size - 1));
    case 7:
      return new Uint8Array(size + 1);
    case 8: {
      const b = new Uint8Array(size);
      structuredClone(b.buffer, { transfer: [b.buffer] }); // detached: length 0
      return b;
    }
    case 9:
      return new Uint16Array(Math.ceil(size / 2));
    case 10:
      return new DataView(new ArrayBuffer(size));
    case 11:
      return Array.from({ length: size }, () => 1);
    case 12:
      return "abcdefgh".slice(0, size);
    case 13:
      return null;
    case 14:
      return undefined;
    default:
      return size;
  }
}

const NUMBERS: unknown[] = [
  0,
  0,
  0,
  1,
  2,
  3,
  4,
  5,
  6,
  8,
  -1,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  2 ** 32,
  2 ** 53,
  2 ** 64,
  "0",
  null,
  undefined,
  1n,
  {},
];
function numArg(pick: number): unknown {
  return NUMBERS[pick % NUMBERS.length];
}

function callback(pick: number, valueBytes: number, map: Htab): (cur?: Uint8Array) => unknown {
  switch (pick % 9) {
    case 0:
      return () => new Uint8Array(valueBytes).fill(pick & 0xff);
    case 1:
      return () => undefined;
    case 2:
      return () => null;
    case 3:
      return () => {
        throw new CallbackError("callback failed");
      };
    case 4:
      return () => new Uint8Array(valueBytes + 1);
    case 5:
      return () => "junk";
    case 6:
      return () => 42;
    case 7:
      // Writing from inside compute() is refused (EBUSY), and so the outer call changes nothing.
      return () => map.updateElem(new Uint8Array(4), new Uint8Array(valueBytes));
    default:
      return (cur) => cur;
  }
}

function batchArgs(p: number[], map: RawMap): unknown {
  const ks = map.info.keySize;
  const vb = map.info.valueBytes;
  const count = [0, 1, 2, 4, 8, 16, -1, 1.5, Number.NaN, 2 ** 32, "4", undefined][p[1] % 12];
  const n = typeof count === "number" && Number.isInteger(count) && count > 0 && count < 64 ? count : 2;
  switch (p[0] % 8) {
    case 0:
      return null;
    case 1:
      return "args";
    default:
      return {
        count,
        inBatch: [undefined, null, 0, 1, 7, 8, 1000, -1, 0.5, Number.NaN][p[2] % 10],
        keys: p[3] % 4 === 0 ? undefined : bytesArg(p[3], n * ks, p[4]),
        values: p[5] % 4 === 0 ? undefined : bytesArg(p[5], n * vb, p[6]),
        elemFlags: numArg(p[7]),
        flags: p[8] % 3 === 0 ? numArg(p[8]) : 0,
      };
  }
}

/** One call on one layer: returns what it returned. */
type Call = (p: number[]) => unknown;

interface Outcome {
  /** The call failed (negative errno, thrown error): the map must be unchanged. */
  failed: boolean;
  /** A failed LRU update: keys may be lost (kernel semantics), nothing gained or altered. */
  mayEvict: boolean;
  /** A batch that processed entries before failing: those stand. */
  partial: boolean;
}

const RAW_CALLS: Array<[string, (m: Htab, p: number[]) => unknown]> = [
  [
    "lookupElem",
    (m, p) =>
      m.lookupElem(
        bytesArg(p[0], 4, p[1]) as Uint8Array,
        bytesArg(p[2], m.info.valueBytes, 0) as Uint8Array,
        numArg(p[3]) as number,
      ),
  ],
  ["hasElem", (m, p) => m.hasElem(bytesArg(p[0], 4, p[1]) as Uint8Array)],
  [
    "updateElem",
    (m, p) =>
      m.updateElem(
        bytesArg(p[0], 4, p[1]) as Uint8Array,
        bytesArg(p[2], m.info.valueBytes, p[3]) as Uint8Array,
        numArg(p[4]) as number,
      ),
  ],
  ["deleteElem", (m, p) => m.deleteElem(bytesArg(p[0], 4, p[1]) as Uint8Array)],
  [
    "lookupAndDeleteElem",
    (m, p) =>
      m.lookupAndDeleteElem(
        bytesArg(p[0], 4, p[1]) as Uint8Array,
        bytesArg(p[2], m.info.valueBytes, 0) as Uint8Array,
        numArg(p[3]) as number,
      ),
  ],
  [
    "getNextKey",
    (m, p) =>
      m.getNextKey(
        p[0] % 3 === 0 ? null : (bytesArg(p[0], 4, p[1]) as Uint8Array),
        bytesArg(p[2], 4, 0) as Uint8Array,
      ),
  ],
  [
    "lookupMany",
    (m, p) => {
      const n = [0, 1, 3, 8, 17][p[0] % 5];
      const results = [new Int32Array(n), new Int32Array(n), new Uint32Array(n), Array(n).fill(0), null][
        p[1] % 5
      ] as Int32Array;
      return m.lookupMany(
        bytesArg(p[2], n * 4, p[3]) as Uint8Array,
        bytesArg(p[4], n * m.info.valueBytes, 0) as Uint8Array,
        results,
      );
    },
  ],
  [
    "updateScratch",
    (m, p) => {
      const k = bytesArg(p[0], 4, p[1]);
      if (k instanceof Uint8Array && k.length === 4) m.keyScratch.set(k);
      m.valueScratch.fill(p[2] & 0xff);
      return m.updateScratch(numArg(p[3]) as number);
    },
  ],
  [
    "lookupScratch/deleteScratch",
    (m, p) => {
      m.keyScratch.fill(p[0] & 3);
      return p[1] % 2 === 0 ? m.lookupScratch() : m.deleteScratch();
    },
  ],
  ["lookupBatch", (m, p) => m.lookupBatch(batchArgs(p, m) as never)],
  ["lookupAndDeleteBatch", (m, p) => m.lookupAndDeleteBatch(batchArgs(p, m) as never)],
  ["updateBatch", (m, p) => m.updateBatch(batchArgs(p, m) as never)],
  ["deleteBatch", (m, p) => m.deleteBatch(batchArgs(p, m) as never)],
  [
    "compareAndDeleteElem",
    (m, p) =>
      m.compareAndDeleteElem(
        bytesArg(p[0], 4, p[1]) as Uint8Array,
        bytesArg(p[2], [1, 4, 8, 9][p[3] % 4], p[4]) as Uint8Array,
        numArg(p[5]) as number,
        numArg(p[6]) as number,
      ),
  ],
  [
    "compareAndDeleteBatch",
    (m, p) =>
      m.compareAndDeleteBatch(
        bytesArg(p[0], 8, p[1]) as Uint8Array,
        bytesArg(p[2], 8, p[3]) as Uint8Array,
        numArg(p[4]) as number,
        numArg(p[5]) as number,
        numArg(p[6]) as number,
      ),
  ],
  [
    "compareAndSwapElem",
    (m, p) =>
      m.compareAndSwapElem(
        bytesArg(p[0], 4, p[1]) as Uint8Array,
        bytesArg(p[2], [1, 4, 8][p[3] % 3], p[4]) as Uint8Array,
        bytesArg(p[5], m.info.valueBytes, p[6]) as Uint8Array,
        numArg(p[7]) as number,
        p[8] % 2 === 0 ? undefined : (numArg(p[8]) as number),
      ),
  ],
  [
    "compute",
    (m, p) =>
      m.compute(
        bytesArg(p[0], 4, p[1]) as Uint8Array,
        (p[2] % 10 === 0 ? "fn" : callback(p[3], m.info.valueBytes, m)) as never,
      ),
  ],
  [
    "updateElemFromProgram",
    (m, p) =>
      m.updateElemFromProgram(
        bytesArg(p[0], 4, p[1]) as Uint8Array,
        bytesArg(p[2], p[3] % 2 === 0 ? m.info.valueSize : m.info.valueBytes, p[4]) as Uint8Array,
        numArg(p[5]) as number,
      ),
  ],
  [
    "lookupRef",
    (m, p) =>
      p[0] % 2 === 0
        ? m.lookupRef(bytesArg(p[1], 4, p[2]) as Uint8Array)
        : m.run(() => void m.lookupRef(bytesArg(p[1], 4, p[2]) as Uint8Array)?.load32(0)),
  ],
  [
    "lookupPercpuRef",
    (m, p) =>
      m.run(
        () =>
          void m
            .lookupPercpuRef(bytesArg(p[0], 4, p[1]) as Uint8Array, numArg(p[2]) as number)
            ?.load32(numArg(p[3]) as number),
      ),
  ],
  [
    "forEachElem",
    (m, p) =>
      m.forEachElem(
        (p[0] % 5 === 0 ? "cb" : () => [0, 1, 2, -1, undefined][p[1] % 5]) as never,
        null,
        numArg(p[2]) as number,
      ),
  ],
  ["exit", (m) => m.exit()],
  ["synchronize", (m) => m.synchronize()],
  ["freeze", (m, p) => (p[0] % 20 === 0 ? m.freeze() : 0)],
  ["count", (m) => m.count()],
  ["memoryUsage", (m) => m.memoryUsage()],
  ["stats", (m) => m.stats()],
  ["fsck", (m) => assert.ok(m.fsck().ok, m.fsck().errors.join("; "))],
  ["reap", (m, p) => m.reap(numArg(p[0]) as number)],
  ["slotState", (m, p) => m.slotState(numArg(p[0]) as number)],
];

function bpfCalls(b: BpfMap): Array<[string, Call]> {
  const vb = b.info.valueBytes;
  return [
    [
      "BpfMap.lookup",
      (p) =>
        b.lookup(
          bytesArg(p[0], 4, p[1]) as Uint8Array,
          p[2] % 2 ? undefined : (bytesArg(p[2], vb, 0) as Uint8Array),
          numArg(p[3]) as number,
        ),
    ],
    [
      "BpfMap.update",
      (p) =>
        b.update(
          bytesArg(p[0], 4, p[1]) as Uint8Array,
          bytesArg(p[2], vb, p[3]) as Uint8Array,
          numArg(p[4]) as number,
        ),
    ],
    ["BpfMap.delete", (p) => b.delete(bytesArg(p[0], 4, p[1]) as Uint8Array)],
    [
      "BpfMap.lookupAndDelete",
      (p) => b.lookupAndDelete(bytesArg(p[0], 4, p[1]) as Uint8Array, undefined, numArg(p[2]) as number),
    ],
    ["BpfMap.nextKey", (p) => b.nextKey(p[0] % 2 ? null : (bytesArg(p[0], 4, p[1]) as Uint8Array))],
    ["BpfMap.keys", (p) => [...b.keys(numArg(p[0]) as number)]],
    ["BpfMap.entries", () => [...b.entries()]],
    ["BpfMap.lookupBatch", (p) => b.lookupBatch(batchArgs(p, b.raw) as never)],
    ["BpfMap.getMany", (p) => b.getMany(bytesArg(p[0], [0, 4, 8, 6][p[1] % 4], p[2]) as Uint8Array)],
    ["BpfMap.updateBatch", (p) => b.updateBatch(batchArgs(p, b.raw) as never)],
    ["BpfMap.deleteBatch", (p) => b.deleteBatch(batchArgs(p, b.raw) as never)],
    ["BpfMap.lookupPerCpu", (p) => b.lookupPerCpu(bytesArg(p[0], 4, p[1]) as Uint8Array)],
    [
      "BpfMap.updatePerCpu",
      (p) =>
        b.updatePerCpu(
          bytesArg(p[0], 4, p[1]) as Uint8Array,
          Array.from({ length: [b.info.nrCpus, 1, 0, b.info.nrCpus + 1][p[2] % 4] }, (_, i) =>
            bytesArg(p[3] + i, b.info.valueSize, i),
          ) as Uint8Array[],
          numArg(p[4]) as number,
        ),
    ],
    ["BpfMap.freeze", (p) => (p[0] % 20 === 0 ? b.freeze() : 0)],
  ];
}

const TYPED_KEYS: unknown[] = [0, 1, 2, 3, 7, 9, -1, 1.5, Number.NaN, "1", 2 ** 32, null, 1n];
function typedValue(p: number, percpu: boolean, nrCpus: number): unknown {
  const one = [0n, 1n, 5n, 2n ** 64n, -1n, 3, "4", null, 1.5][p % 9];
  if (!percpu) return one;
  return [
    Array.from({ length: nrCpus }, () => one),
    [one],
    one,
    Array.from({ length: nrCpus + 1 }, () => 1n),
  ][(p >> 3) % 4];
}

function typedCalls(t: TypedMap<number, unknown>, percpu: boolean, nrCpus: number): Array<[string, Call]> {
  const key = (p: number) => TYPED_KEYS[p % TYPED_KEYS.length] as number;
  return [
    ["TypedMap.get", (p) => t.get(key(p[0]))],
    ["TypedMap.has", (p) => t.has(key(p[0]))],
    ["TypedMap.set", (p) => t.set(key(p[0]), typedValue(p[1], percpu, nrCpus), numArg(p[2]) as number)],
    ["TypedMap.delete", (p) => t.delete(key(p[0]))],
    ["TypedMap.getMany", (p) => t.getMany([key(p[0]), key(p[1]), key(p[2])])],
    ["TypedMap.size", () => t.size],
    ["TypedMap.entries", () => [...t.entries()]],
    ["TypedMap.keys", () => [...t.keys()]],
    [
      "TypedMap.forEach",
      (p) =>
        t.forEach(() => {
          if (p[0] % 4 === 0) throw new CallbackError("forEach callback failed");
        }),
    ],
  ];
}

/** The last error a call threw, for violation messages. */
let lastThrown = "";

/** Classify what a call did. Throws (an assertion) on anything a call must never do. */
function outcome(name: string, lru: boolean, run: () => unknown): Outcome {
  let r: unknown;
  lastThrown = "";
  try {
    r = run();
  } catch (e) {
    lastThrown = String(e);
    if (e instanceof CallbackError) return { failed: true, mayEvict: false, partial: false };
    if (e instanceof assert.AssertionError) throw e;
    if (!(e instanceof BpfError))
      throw new assert.AssertionError({
        message: `${name} threw ${(e as Error)?.constructor?.name}: ${String(e)}`,
      });
    // Batch errors from BpfMap carry how far they got.
    const count = (e as { count?: number }).count;
    const partial = typeof count === "number" && count > 0 && /Batch/.test(name);
    return { failed: true, mayEvict: lru && /update|set|compute/i.test(name), partial };
  }
  if (typeof r === "number") {
    if (!Number.isInteger(r)) throw new assert.AssertionError({ message: `${name} returned ${r}` });
    const failed = r < 0 && !/count|memoryUsage|compareAndDeleteBatch/.test(name);
    return { failed, mayEvict: failed && lru && /update/i.test(name), partial: false };
  }
  if (r !== null && typeof r === "object" && "err" in r && "count" in r) {
    const b = r as { err: number; count: number };
    const failed = b.err !== 0 && !(b.err === -2 && /lookup/.test(name));
    return {
      failed,
      mayEvict: failed && lru && /update/i.test(name),
      partial: failed && b.count > 0 && !/^lookupBatch|BpfMap.lookupBatch/.test(name),
    };
  }
  return { failed: false, mayEvict: false, partial: false };
}

/** key -> value (hex) of every element, for the LRU "may only lose keys" rule. */
function contents(m: Htab): Map<string, string> {
  const out = new Map<string, string>();
  const v = new Uint8Array(m.info.valueBytes);
  try {
    for (const k of walkKeys(m, { op: "contents", limit: 1000, atLimit: "stop" }))
      out.set(
        Buffer.from(k).toString("hex"),
        m.lookupElem(k, v) === 0 ? Buffer.from(v).toString("hex") : "?",
      );
  } catch (e) {
    if (!(e instanceof BpfError)) throw e; // a map the control plane may not read (BPF_F_WRONLY): no contents
  }
  return out;
}

const stats = { calls: 0, failed: 0, threw: 0, violations: [] as string[] };

function fuzzRun(shapeIdx: number, layer: number, calls: number[][]): void {
  const shape = SHAPES[shapeIdx % SHAPES.length];
  const map = Htab.create(shape.spec, { nrCpus: 2, fastPath: shape.fastPath, privileged: true });
  const lru = shape.spec.type === MapType.LruHash || shape.spec.type === MapType.LruPercpuHash;
  const percpu = shape.spec.type === MapType.PercpuHash || shape.spec.type === MapType.LruPercpuHash;
  try {
    // Some keys to find, compare and walk (unless the map refuses control-plane writes).
    for (let k = 0; k < 5; k++)
      map.updateElem(
        new Uint8Array([k, 0, 0, 0, 0, 0].slice(0, map.info.keySize)),
        new Uint8Array(map.info.valueBytes).fill(k),
      );
    let table: Array<[string, Call]>;
    if (layer % 3 === 0) table = RAW_CALLS.map(([n, f]) => [n, (p: number[]) => f(map, p)]);
    else if (layer % 3 === 1) table = bpfCalls(new BpfMap(map));
    else {
      const vc = map.info.keySize !== 4 ? null : shape.spec.valueSize === 8 ? codecs.u64 : null;
      if (vc === null) table = RAW_CALLS.map(([n, f]) => [n, (p: number[]) => f(map, p)]);
      else {
        const t = percpu ? TypedMap.perCpu(map, codecs.u32, vc) : new TypedMap(map, codecs.u32, vc);
        table = typedCalls(t as TypedMap<number, unknown>, percpu, map.info.nrCpus);
      }
    }
    for (const p of calls) {
      const [name, f] = table[p[0] % table.length];
      const before = map.stateBytes();
      const seen = lru ? contents(map) : null;
      const o = outcome(name, lru, () => f(p.slice(1)));
      stats.calls++;
      if (!o.failed || o.partial) continue;
      stats.failed++;
      const after = map.stateBytes();
      if (Buffer.compare(before, after) === 0) continue;
      if (o.mayEvict && seen !== null) {
        const now = contents(map);
        const bad = [...now].filter(([k, v]) => seen.get(k) !== v);
        if (bad.length === 0) continue; // lost keys only: the kernel's own LRU update
      }
      const msg = `${name}(${JSON.stringify(p.slice(1))}) on ${JSON.stringify(shape)} failed (${lastThrown}) but changed the map`;
      stats.violations.push(msg);
      throw new assert.AssertionError({ message: msg });
    }
    const f = map.fsck();
    assert.ok(f.ok, f.errors.join("; "));
  } finally {
    while (map.inSection) map.exit();
    map.close();
  }
}

test(`bad-input fuzzer: ${TOTAL_CALLS} random calls over every hash map type, flag combination and layer; nothing but BpfError, no failed call changes the map`, {
  timeout: 600_000,
}, () => {
  const args = fc.array(fc.nat({ max: 1 << 20 }), { minLength: 12, maxLength: 12 });
  fc.assert(
    fc.property(
      fc.nat(),
      fc.nat(),
      fc.array(args, { minLength: CALLS_PER_RUN, maxLength: CALLS_PER_RUN }),
      (s, l, calls) => fuzzRun(s, l, calls),
    ),
    { numRuns: Math.ceil(TOTAL_CALLS / CALLS_PER_RUN), seed: Number(process.env.HTAB_FUZZ_SEED ?? 13) },
  );
  console.log(
    `# fuzz: ${stats.calls} calls over ${SHAPES.length} map shapes x 3 layers, ${stats.failed} failed calls checked byte-identical, ${stats.violations.length} violations`,
  );
  assert.equal(stats.violations.length, 0);
});

/** ARRAY and PERCPU_ARRAY shapes: flags x spin lock. */
const ARRAY_SHAPES: MapSpec[] = [];
for (const type of [MapType.Array, MapType.PercpuArray]) {
  const base = { type, keySize: 4, valueSize: 8, maxEntries: 8 };
  for (const flags of [0, MapFlags.Rdonly, MapFlags.Wronly, MapFlags.RdonlyProg, MapFlags.WronlyProg])
    ARRAY_SHAPES.push({ ...base, flags });
  ARRAY_SHAPES.push({ ...base, valueSize: 12 });
}
ARRAY_SHAPES.push({ type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 8, spinLockOffset: 0 });
ARRAY_SHAPES.push({ type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 8, flags: MapFlags.Mmapable });

/** The raw calls an ArrayMap has (the rest of RAW_CALLS are hash-only: compare, compute, scratch). */
const ARRAY_CALLS = RAW_CALLS.filter(
  ([n]) => typeof (ArrayMap.prototype as never)[n.split("/")[0]] === "function",
);

function fuzzArrayRun(shapeIdx: number, layer: number, calls: number[][]): void {
  const spec = ARRAY_SHAPES[shapeIdx % ARRAY_SHAPES.length];
  const map = ArrayMap.create(spec, { nrCpus: 2 });
  const percpu = spec.type === MapType.PercpuArray;
  try {
    for (let k = 0; k < 5; k++)
      map.updateElem(new Uint8Array([k, 0, 0, 0]), new Uint8Array(map.info.valueBytes).fill(k + 1));
    const raw = ARRAY_CALLS.map(([n, f]) => [n, (p: number[]) => f(map as never, p)] as [string, Call]);
    let table: Array<[string, Call]> = raw;
    if (layer % 3 === 1) table = bpfCalls(new BpfMap(map));
    else if (layer % 3 === 2 && spec.valueSize === 8) {
      const t = percpu
        ? TypedMap.perCpu(map, codecs.u32, codecs.u64)
        : new TypedMap(map, codecs.u32, codecs.u64);
      table = typedCalls(t as TypedMap<number, unknown>, percpu, map.info.nrCpus);
    }
    for (const p of calls) {
      const [name, f] = table[p[0] % table.length];
      const before = map.stateBytes();
      const o = outcome(name, false, () => f(p.slice(1)));
      stats.calls++;
      if (!o.failed || o.partial) continue;
      stats.failed++;
      if (Buffer.compare(before, map.stateBytes()) === 0) continue;
      const msg = `${name}(${JSON.stringify(p.slice(1))}) on ${JSON.stringify(spec)} failed (${lastThrown}) but changed the map`;
      stats.violations.push(msg);
      throw new assert.AssertionError({ message: msg });
    }
    const f = map.fsck();
    assert.ok(f.ok, f.errors.join("; "));
  } finally {
    while (map.inSection) map.exit();
    map.close();
  }
}

test(`bad-input fuzzer: ${Math.ceil(TOTAL_CALLS / 4)} random calls over ARRAY and PERCPU_ARRAY (flags, spin lock) and every layer; nothing but BpfError, no failed call changes the map`, {
  timeout: 600_000,
}, () => {
  const before = { calls: stats.calls, failed: stats.failed };
  const args = fc.array(fc.nat({ max: 1 << 20 }), { minLength: 12, maxLength: 12 });
  fc.assert(
    fc.property(
      fc.nat(),
      fc.nat(),
      fc.array(args, { minLength: CALLS_PER_RUN, maxLength: CALLS_PER_RUN }),
      (s, l, calls) => fuzzArrayRun(s, l, calls),
    ),
    { numRuns: Math.ceil(TOTAL_CALLS / 4 / CALLS_PER_RUN), seed: Number(process.env.HTAB_FUZZ_SEED ?? 17) },
  );
  console.log(
    `# fuzz arrays: ${stats.calls - before.calls} calls over ${ARRAY_SHAPES.length} array shapes x 3 layers, ${stats.failed - before.failed} failed calls checked byte-identical, ${stats.violations.length} violations`,
  );
  assert.equal(stats.violations.length, 0);
});

test(`bad-input fuzzer: htab replay lines, valid and junk, never throw and a refused line changes nothing`, () => {
  const maps: (Htab | ArrayMap)[] = [];
  const r = new Replayer((spec) => {
    const m = createMap(spec, { nrCpus: 2, privileged: true });
    maps.push(m);
    return m;
  });
  const types = ["hash", "percpu_hash", "lru_hash", "lru_percpu_hash", "array", "percpu_array", "nope"];
  const ops = [
    "create",
    "update",
    "lookup",
    "delete",
    "lookup_and_delete",
    "get_next_key",
    "lookup_batch",
    "lookup_and_delete_batch",
    "update_batch",
    "delete_batch",
    "count",
    "dump",
    "freeze",
    "compare_and_delete",
    "bogus",
  ];
  const hexOf = fc.oneof(
    fc.constant("01000000"),
    fc.constant("0200000000000000"),
    fc.string({ unit: fc.constantFrom(..."0123456789abcdef") }),
    fc.constant("zz"),
    fc.integer(),
  );
  const field = fc.oneof(
    fc.nat(20),
    fc.constant(-1),
    fc.constant(1.5),
    fc.constant("x"),
    fc.constant(null),
    fc.constant(18446744073709551615n),
    fc.constant(2 ** 64),
  );
  const line = fc.oneof(
    {
      weight: 8,
      arbitrary: fc
        .record(
          {
            op: fc.constantFrom(...ops),
            map: fc.oneof(fc.nat(3), field),
            key: hexOf,
            value: hexOf,
            flags: field,
            type: fc.constantFrom(...types),
            key_size: fc.oneof(fc.constant(4), field),
            value_size: fc.oneof(fc.constant(8), field),
            max_entries: fc.oneof(fc.constant(8), field),
            count: field,
            keys: fc.array(hexOf, { maxLength: 3 }),
            values: fc.array(hexOf, { maxLength: 3 }),
            in_batch: field,
            elem_flags: field,
            expected: hexOf,
            offset: field,
            size: field,
          },
          { requiredKeys: ["op"] },
        )
        .map((o) =>
          JSON.stringify(o, (_k, v) => (typeof v === "bigint" ? `__big${v}__` : v)).replace(
            /"__big(\d+)__"/g,
            "$1",
          ),
        ),
    },
    { weight: 1, arbitrary: fc.string() },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "[]",
        "null",
        "1",
        '{"op":',
        '{"op":"create","type":"hash","key_size":4,"value_size":8,"max_entries":4}',
      ),
    },
  );
  let lines = 0;
  let refused = 0;
  fc.assert(
    fc.property(fc.array(line, { minLength: 1, maxLength: 20 }), (script) => {
      for (const l of script) {
        const before = maps.map((m) => m.stateBytes());
        let out: Record<string, unknown>;
        try {
          out = r.run(l);
        } catch (e) {
          throw new assert.AssertionError({ message: `replay threw on ${l}: ${String(e)}` });
        }
        lines++;
        assert.equal(typeof out.ok, "boolean", l);
        if (out.ok === true || "count" in out) continue; // a batch keeps what it processed
        refused++;
        // An LRU update refused for its flags may have evicted (the kernel's own semantics).
        if (
          /"op":"update/.test(l) &&
          maps.some((m) => m.info.type === MapType.LruHash || m.info.type === MapType.LruPercpuHash)
        )
          continue;
        const after = maps.map((m) => m.stateBytes());
        for (let i = 0; i < before.length; i++)
          assert.equal(
            Buffer.compare(before[i], after[i]),
            0,
            `refused line changed map ${i}: ${l} -> ${JSON.stringify(out)}`,
          );
      }
    }),
    { numRuns: 500, seed: 7 },
  );
  r.close();
  console.log(`# fuzz replay: ${lines} lines, ${refused} refused lines checked byte-identical`);
});

/** The RawMap calls both backends have, for the kernel run. */
const KERNEL_CALLS: Array<[string, (m: RawMap, p: number[]) => unknown]> = RAW_CALLS.filter(([n]) =>
  [
    "lookupElem",
    "updateElem",
    "deleteElem",
    "lookupAndDeleteElem",
    "getNextKey",
    "lookupBatch",
    "lookupAndDeleteBatch",
    "updateBatch",
    "deleteBatch",
    "memoryUsage",
  ].includes(n),
) as never;

/** A kernel map's contents through get_next_key (the kernel has no stateBytes()). */
function rawContents(m: RawMap): string {
  const k = new Uint8Array(m.info.keySize);
  const v = new Uint8Array(m.info.valueBytes);
  const out: string[] = [];
  let prev: Uint8Array | null = null;
  for (let n = 0; n < 1000 && m.getNextKey(prev, k) === 0; n++) {
    out.push(
      `${Buffer.from(k).toString("hex")}=${m.lookupElem(k, v) === 0 ? Buffer.from(v).toString("hex") : "?"}`,
    );
    prev = k.slice();
  }
  return out.sort().join(",");
}

test("bad-input fuzzer on the kernel backend: junk through KernelMap and BpfMap never crashes the process, only BpfError or -errno, failed calls change nothing", {
  skip: kernelSkipReason(),
}, () => {
  const calls = Number(process.env.HTAB_FUZZ_KERNEL_CALLS ?? 10_000);
  let done = 0;
  let failed = 0;
  const specs: MapSpec[] = [
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8 },
    { type: MapType.PercpuHash, keySize: 4, valueSize: 8, maxEntries: 8 },
    { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: 8 },
    { type: MapType.LruPercpuHash, keySize: 4, valueSize: 8, maxEntries: 8 },
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8, flags: MapFlags.NoPrealloc },
    { type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 8 },
    { type: MapType.PercpuArray, keySize: 4, valueSize: 8, maxEntries: 8 },
  ];
  fc.assert(
    fc.property(
      fc.nat(),
      fc.array(fc.array(fc.nat({ max: 1 << 20 }), { minLength: 12, maxLength: 12 }), {
        minLength: 50,
        maxLength: 50,
      }),
      (s, list) => {
        const spec = specs[s % specs.length];
        const m = KernelMap.create(spec);
        const lru = spec.type === MapType.LruHash || spec.type === MapType.LruPercpuHash;
        try {
          for (let k = 0; k < 5; k++)
            m.updateElem(new Uint8Array([k, 0, 0, 0]), new Uint8Array(m.info.valueBytes).fill(k), 0);
          const b = new BpfMap(m);
          const table: Array<[string, Call]> = [
            ...KERNEL_CALLS.map(([n, f]) => [n, (p: number[]) => f(m, p)] as [string, Call]),
            ...bpfCalls(b).filter(([n]) => !/freeze/.test(n)),
          ];
          for (const p of list) {
            const [name, f] = table[p[0] % table.length];
            const before = rawContents(m);
            const o = outcome(name, lru, () => f(p.slice(1)));
            done++;
            if (!o.failed || o.partial) continue;
            failed++;
            const after = rawContents(m);
            if (after === before) continue;
            if (o.mayEvict && after.split(",").every((e) => e === "" || before.split(",").includes(e)))
              continue;
            throw new assert.AssertionError({
              message: `${name}(${JSON.stringify(p.slice(1))}) on kernel ${JSON.stringify(spec)} failed (${lastThrown}) but changed the map`,
            });
          }
        } finally {
          m.close();
        }
      },
    ),
    { numRuns: Math.ceil(calls / 50), seed: 21 },
  );
  console.log(
    `# fuzz kernel: ${done} calls on real kernel maps, ${failed} failed calls checked unchanged, 0 violations, no crash`,
  );
});
