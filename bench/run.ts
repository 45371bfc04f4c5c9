/**
 * `npm run bench` / `htab bench`: htab against the alternatives a user would
 * pick, side by side in one process run, reported as ratios. Absolute times
 * on a shared 2-core machine are noise; the ratios are the result.
 *
 * Writes bench/results/<date>.json (+ .svg, .png) and latest.{json,svg,png,md}.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { arch, cpus, platform, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { Bench } from "tinybench";
import * as codecs from "../src/api/codecs.js";
import { TypedMap } from "../src/api/typed-map.js";
import { machineCpus } from "../src/cli/backends.js";
import { renderChart } from "../src/cli/chart.js";
import { runConntrack } from "../src/cli/conntrack.js";
import { Progress } from "../src/cli/term.js";
import { Htab, type MapHandle } from "../src/core/htab.js";
import type { RawMap } from "../src/core/raw-map.js";
import type { MapSpec } from "../src/core/spec.js";
import { syscallValueBytes } from "../src/layout/layout.js";
import { MapFlags, MapType } from "../src/uapi.js";
import { OwnerMap } from "./peers/message-maps.js";
import { NaiveLockMap } from "./peers/naive-lock-map.js";

/** Operations per benchmark call, so the harness overhead is amortised. */
const OPS = 256;

export interface Stat {
  median: number;
  mean: number;
  p75: number;
  p99: number;
  rme: number;
  samples: number;
}

export interface PointResult {
  workload: string;
  entries: number;
  peer: string;
  unit: "ns/op";
  stat: Stat;
}

export interface ThroughputResult {
  workload: string;
  entries: number;
  peer: string;
  workers: number;
  unit: "ops/s";
  median: number;
  min: number;
  max: number;
  reps: number;
}

export interface MemoryResult {
  /** "hash", "percpu_hash" (2 possible CPUs' worth of values), "hash NO_PREALLOC (half full)" */
  type: string;
  entries: number;
  htabBytesPerEntry: number;
  kernelBytesPerEntry: number | null;
  ratio: number | null;
}

export interface BenchReport {
  date: string;
  quick: boolean;
  /** htab ran the wasm fast path (false with --js-path). */
  fastPath: boolean;
  machine: { cpus: number; model: string; memoryBytes: number; os: string; arch: string };
  node: string;
  points: PointResult[];
  throughput: ThroughputResult[];
  memory: MemoryResult[];
  ratios: Record<string, number>;
  skipped: string[];
}

/** Whether htab maps run the wasm fast path (`--js-path` measures the JS path, for before/after runs). */
let FAST_PATH = true;

interface Opts {
  jsPath: boolean;
  quick: boolean;
  out: string;
  chart: boolean;
  /** The report as JSON on stdout; everything else goes to stderr. */
  json: boolean;
}

type Task = { workload: string; entries: number; peer: string; fn: () => unknown; iterations?: number };

function parseArgs(argv: string[]): Opts {
  const here = dirname(fileURLToPath(import.meta.url));
  const o: Opts = {
    jsPath: false,
    quick: false,
    out: join(here, "..", "..", "bench", "results"),
    chart: true,
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--quick") o.quick = true;
    else if (argv[i] === "--js-path") o.jsPath = true;
    else if (argv[i] === "--out") o.out = argv[++i];
    else if (argv[i] === "--no-chart") o.chart = false;
    else if (argv[i] === "--json") o.json = true;
    else
      throw new Error(
        `bench: unknown argument ${argv[i]} (use --quick, --js-path, --out DIR, --no-chart, --json)`,
      );
  }
  return o;
}

/** Store `x` as a little-endian u32 key, without a DataView per call. */
function putU32(b: Uint8Array, x: number): void {
  b[0] = x;
  b[1] = x >>> 8;
  b[2] = x >>> 16;
  b[3] = x >>> 24;
}

function randomKeys(n: number, seed: number): Uint32Array {
  const keys = new Uint32Array(n);
  const seen = new Set<number>();
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; ) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const k = (x >>> 0) & 0x7fffffff;
    if (!seen.has(k)) {
      seen.add(k);
      keys[i++] = k;
    }
  }
  return keys;
}

/** A random visiting order over `n` indices, long enough to defeat caching at 1M. */
function order(n: number, len: number, seed: number): Uint32Array {
  const o = new Uint32Array(len);
  let x = seed >>> 0 || 3;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    o[i] = (x >>> 0) % n;
  }
  return o;
}

async function loadKernel(): Promise<typeof import("../src/kernel/kernel-map.js") | null> {
  try {
    const k = await import("../src/kernel/kernel-map.js");
    return k.kernelAvailable().ok ? k : null;
  } catch {
    return null;
  }
}

async function loadLmdb(): Promise<typeof import("lmdb") | null> {
  try {
    return await import("lmdb");
  } catch {
    return null;
  }
}

function stat(latencyMs: {
  p50: number;
  mean: number;
  p75: number;
  p99: number;
  rme: number;
  samplesCount: number;
}): Stat {
  const k = 1e6 / OPS;
  return {
    median: latencyMs.p50 * k,
    mean: latencyMs.mean * k,
    p75: latencyMs.p75 * k,
    p99: latencyMs.p99 * k,
    rme: latencyMs.rme,
    samples: latencyMs.samplesCount,
  };
}

/** Point-operation tasks for one size: every peer, every workload. */
async function pointTasks(entries: number, skipped: string[], cleanup: (() => unknown)[]): Promise<Task[]> {
  const tasks: Task[] = [];
  const keys = randomKeys(entries * 2, 42 + entries);
  const present = keys.subarray(0, entries);
  const absent = keys.subarray(entries);
  const ord = order(entries, 1 << 16, 7);
  let pos = 0;
  const nextIdx = () => {
    const i = ord[pos];
    pos = (pos + 1) & 0xffff;
    return i;
  };
  let sink = 0;
  const add = (workload: string, peer: string, fn: () => unknown) =>
    tasks.push({ workload, entries, peer, fn });

  // V8 Map<number, bigint>: the single-thread ceiling.
  const vm = new Map<number, bigint>();
  for (let i = 0; i < entries; i++) vm.set(present[i], BigInt(i));
  add("lookup hit", "V8 Map", () => {
    for (let i = 0; i < OPS; i++) if (vm.get(present[nextIdx()]) !== undefined) sink++;
  });
  add("lookup miss", "V8 Map", () => {
    for (let i = 0; i < OPS; i++) if (vm.get(absent[nextIdx()]) !== undefined) sink++;
  });
  add("update existing", "V8 Map", () => {
    for (let i = 0; i < OPS; i++) vm.set(present[nextIdx()], 7n);
  });
  add("insert+delete", "V8 Map", () => {
    for (let i = 0; i < OPS; i++) {
      const k = absent[nextIdx()];
      vm.set(k, 7n);
      vm.delete(k);
    }
  });

  // htab, kernel-shaped API with caller buffers (no allocation).
  const hk = new Uint8Array(4);
  const hv = new Uint8Array(8);
  const setK = (k: number) => putU32(hk, k);
  const h = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries + 16 },
    { nrCpus: 4, fastPath: FAST_PATH },
  );
  cleanup.push(() => h.close());
  for (let i = 0; i < entries; i++) {
    setK(present[i]);
    h.updateElem(hk, hv, 0);
  }
  add("lookup hit", "htab", () => {
    for (let i = 0; i < OPS; i++) {
      setK(present[nextIdx()]);
      if (h.lookupElem(hk, hv, 0) === 0) sink++;
    }
  });
  add("lookup miss", "htab", () => {
    for (let i = 0; i < OPS; i++) {
      setK(absent[nextIdx()]);
      if (h.lookupElem(hk, hv, 0) === 0) sink++;
    }
  });
  add("update existing", "htab", () => {
    for (let i = 0; i < OPS; i++) {
      setK(present[nextIdx()]);
      h.updateElem(hk, hv, 0);
    }
  });
  add("insert+delete", "htab", () => {
    for (let i = 0; i < OPS; i++) {
      setK(absent[nextIdx()]);
      h.updateElem(hk, hv, 0);
      h.deleteElem(hk);
    }
  });
  // The program face: a live reference instead of a copy (inside one open section).
  const ref = h.run(() => {
    setK(present[0]);
    return h.lookupRef(hk);
  });
  add("lookup hit", "htab lookupRef (program face)", () => {
    h.enter();
    for (let i = 0; i < OPS; i++) {
      setK(present[nextIdx()]);
      const r = h.lookupRef(hk, ref ?? undefined);
      if (r !== null && r.load32(0) >= 0) sink++;
    }
    h.exit();
  });
  // The typed Map-like layer: numbers in, bigint out (a bigint per hit, like Map's values).
  const tm = new TypedMap(h, codecs.u32, codecs.u64);
  add("lookup hit", "htab TypedMap", () => {
    for (let i = 0; i < OPS; i++) if (tm.get(present[nextIdx()]) !== undefined) sink++;
  });

  // Naive SAB map, one global lock.
  const nm = new NaiveLockMap(entries + 16);
  const nout = new Int32Array(2);
  for (let i = 0; i < entries; i++) nm.set(present[i], i, 0);
  add("lookup hit", "naive SAB + global lock", () => {
    for (let i = 0; i < OPS; i++) if (nm.get(present[nextIdx()], nout)) sink++;
  });
  add("lookup miss", "naive SAB + global lock", () => {
    for (let i = 0; i < OPS; i++) if (nm.get(absent[nextIdx()], nout)) sink++;
  });
  add("update existing", "naive SAB + global lock", () => {
    for (let i = 0; i < OPS; i++) nm.set(present[nextIdx()], 7, 0);
  });
  add("insert+delete", "naive SAB + global lock", () => {
    for (let i = 0; i < OPS; i++) {
      const k = absent[nextIdx()];
      nm.set(k, 7, 0);
      nm.delete(k);
    }
  });

  // The real kernel map through bpf().
  const kern = await loadKernel();
  if (kern) {
    const km = kern.KernelMap.create({
      type: MapType.Hash,
      keySize: 4,
      valueSize: 8,
      maxEntries: entries + 16,
    });
    cleanup.push(() => km.close());
    for (let i = 0; i < entries; i++) {
      setK(present[i]);
      km.updateElem(hk, hv, 0);
    }
    add("lookup hit", "kernel bpf()", () => {
      for (let i = 0; i < OPS; i++) {
        setK(present[nextIdx()]);
        if (km.lookupElem(hk, hv, 0) === 0) sink++;
      }
    });
    add("lookup miss", "kernel bpf()", () => {
      for (let i = 0; i < OPS; i++) {
        setK(absent[nextIdx()]);
        if (km.lookupElem(hk, hv, 0) === 0) sink++;
      }
    });
    add("update existing", "kernel bpf()", () => {
      for (let i = 0; i < OPS; i++) {
        setK(present[nextIdx()]);
        km.updateElem(hk, hv, 0);
      }
    });
    add("insert+delete", "kernel bpf()", () => {
      for (let i = 0; i < OPS; i++) {
        setK(absent[nextIdx()]);
        km.updateElem(hk, hv, 0);
        km.deleteElem(hk);
      }
    });
  } else skipped.push("kernel bpf(): bpf() is not usable here");

  // lmdb-js, what Node users reach for when threads must share data.
  const lmdb = await loadLmdb();
  if (lmdb) {
    const path = join(process.env.TMPDIR ?? "/tmp", `htab-bench-lmdb-${process.pid}-${entries}`);
    const db = lmdb.open({ path, keyEncoding: "uint32", encoding: "binary", noSync: true, cache: false });
    cleanup.push(async () => {
      await db.close();
      const { rmSync } = await import("node:fs");
      rmSync(path, { recursive: true, force: true });
    });
    const val = Buffer.alloc(8);
    db.transactionSync(() => {
      for (let i = 0; i < entries; i++) db.putSync(present[i], val);
    });
    add("lookup hit", "lmdb-js", () => {
      for (let i = 0; i < OPS; i++) if (db.getBinaryFast(present[nextIdx()]) !== undefined) sink++;
    });
    add("lookup miss", "lmdb-js", () => {
      for (let i = 0; i < OPS; i++) if (db.getBinaryFast(absent[nextIdx()]) !== undefined) sink++;
    });
    add("update existing", "lmdb-js", () => {
      for (let i = 0; i < OPS; i++) db.putSync(present[nextIdx()], val);
    });
    add("insert+delete", "lmdb-js", () => {
      for (let i = 0; i < OPS; i++) {
        const k = absent[nextIdx()];
        db.putSync(k, val);
        db.removeSync(k);
      }
    });
  } else skipped.push("lmdb-js: not installed (npm install -D lmdb)");

  // One owner worker with a Map: an Atomics request slot, then postMessage.
  const owner = await OwnerMap.start(present, entries);
  cleanup.push(() => owner.stop());
  add("lookup hit", "Atomics request slot", () => {
    owner.serveSlot();
    for (let i = 0; i < OPS; i++) if (owner.slotGet(present[nextIdx()])) sink++;
  });

  void sink;
  return tasks;
}

/** postMessage round trips are ~10^4 x slower: measured alone with fewer samples. */
/**
 * The kernel's own datapath lookup (bench/peers/kernel-program.ts): a BPF
 * program's lookups of random present keys, net of its key generation.
 */
async function kernelProgramPoint(entries: number, quick: boolean): Promise<PointResult | null> {
  const kern = await loadKernel();
  if (!kern) return null;
  const { kernelProgramLookupNs } = await import("./peers/kernel-program.js");
  const km = kern.KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries });
  try {
    const k = new Uint8Array(4);
    const v = new Uint8Array(8);
    for (let i = 0; i < entries; i++) {
      putU32(k, i);
      km.updateElem(k, v, 0);
    }
    const r = kernelProgramLookupNs(km, entries, {
      repeat: entries >= 1_000_000 ? 200 : 2000,
      samples: quick ? 5 : 15,
    });
    const sorted = [...r.samples].sort((a, b) => a - b);
    const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
    return {
      workload: "lookup hit",
      entries,
      peer: "kernel BPF program",
      unit: "ns/op",
      stat: {
        median: r.median,
        mean,
        p75: sorted[Math.floor(sorted.length * 0.75)],
        p99: sorted[sorted.length - 1],
        rme: 0,
        samples: sorted.length,
      },
    };
  } finally {
    km.close();
  }
}

async function postMessageLatency(entries: number, quick: boolean): Promise<PointResult> {
  const keys = randomKeys(entries, 42 + entries);
  const owner = await OwnerMap.start(keys, entries);
  const n = quick ? 500 : 3000;
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await owner.get(keys[i % entries]);
    times.push((performance.now() - t) * 1e6);
  }
  await owner.stop();
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(times.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  return {
    workload: "lookup hit",
    entries,
    peer: "postMessage owner",
    unit: "ns/op",
    stat: {
      median: times[n >> 1],
      mean,
      p75: times[Math.floor(n * 0.75)],
      p99: times[Math.floor(n * 0.99)],
      rme: ((1.96 * sd) / Math.sqrt(n) / mean) * 100,
      samples: n,
    },
  };
}

/**
 * LRU: inserting new keys into a full map (every insert evicts) and lookup
 * hits, htab LRU_HASH against lru-cache (the LRU Node users pick) and the
 * kernel's LRU_HASH. htab and the kernel evict approximately; lru-cache exactly.
 */
async function lruTasks(entries: number, cleanup: (() => unknown)[]): Promise<Task[]> {
  const tasks: Task[] = [];
  const add = (workload: string, peer: string, fn: () => unknown) =>
    tasks.push({ workload, entries, peer, fn });
  const keys = randomKeys(entries * 4, 7 + entries);
  let pos = 0;
  let sink = 0;
  const k = new Uint8Array(4);
  const v = new Uint8Array(8);
  const setK = (x: number) => putU32(k, x);
  const fill = (m: RawMap) => {
    for (let i = 0; i < entries; i++) {
      setK(keys[i]);
      m.updateElem(k, v, 0);
    }
  };
  const evicting = (m: RawMap) => () => {
    for (let i = 0; i < OPS; i++) {
      setK(keys[pos]);
      pos = pos + 1 === keys.length ? 0 : pos + 1;
      m.updateElem(k, v, 0);
    }
  };
  const hits = (m: RawMap) => () => {
    for (let i = 0; i < OPS; i++) {
      setK(keys[(i * 7919) % entries]);
      if (m.lookupElem(k, v, 0) === 0) sink++;
    }
  };
  const h = Htab.create(
    { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: entries },
    { nrCpus: 4, fastPath: FAST_PATH },
  );
  cleanup.push(() => h.close());
  fill(h);
  add("LRU insert, evicting", "htab", evicting(h));
  fill(h);
  add("LRU lookup hit", "htab", hits(h));
  const { LRUCache } = await import("lru-cache");
  const lc = new LRUCache<number, bigint>({ max: entries });
  for (let i = 0; i < entries; i++) lc.set(keys[i], 1n);
  add("LRU insert, evicting", "lru-cache", () => {
    for (let i = 0; i < OPS; i++) {
      lc.set(keys[pos], 7n);
      pos = pos + 1 === keys.length ? 0 : pos + 1;
    }
  });
  add("LRU lookup hit", "lru-cache", () => {
    for (let i = 0; i < OPS; i++) if (lc.get(keys[(i * 7919) % entries]) !== undefined) sink++;
  });
  const kern = await loadKernel();
  if (kern) {
    const km = kern.KernelMap.create({
      type: MapType.LruHash,
      keySize: 4,
      valueSize: 8,
      maxEntries: entries,
    });
    cleanup.push(() => km.close());
    fill(km);
    add("LRU insert, evicting", "kernel bpf()", evicting(km));
    add("LRU lookup hit", "kernel bpf()", hits(km));
  }
  cleanup.push(() => void sink);
  return tasks;
}

/** Walks: get_next_key per key and lookup_batch per element, htab and kernel; Map iteration. */
async function iterationTasks(
  entries: number,
  cleanup: (() => unknown)[],
): Promise<{ tasks: Task[]; perCall: number }> {
  const keys = randomKeys(entries, 99 + entries);
  const tasks: Task[] = [];
  const vm = new Map<number, bigint>();
  for (let i = 0; i < entries; i++) vm.set(keys[i], 1n);
  const h = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries },
    { nrCpus: 2, fastPath: FAST_PATH },
  );
  cleanup.push(() => h.close());
  const k = new Uint8Array(4);
  const v = new Uint8Array(8);
  for (let i = 0; i < entries; i++) {
    new DataView(k.buffer).setUint32(0, keys[i], true);
    h.updateElem(k, v, 0);
  }
  const walk = (m: RawMap) => () => {
    // Two buffers, alternating: the key passed in must not be the one written.
    const bufs = [new Uint8Array(4), new Uint8Array(4)];
    let prev: Uint8Array | null = null;
    let n = 0;
    while (m.getNextKey(prev, bufs[n & 1]) === 0) {
      prev = bufs[n & 1];
      n++;
    }
    return n;
  };
  const batchKeys = new Uint8Array(4096 * 4);
  const batchVals = new Uint8Array(4096 * 8);
  const batch = (m: RawMap) => () => {
    let cursor: number | null = null;
    let n = 0;
    for (;;) {
      const r = m.lookupBatch({ inBatch: cursor, count: 4096, keys: batchKeys, values: batchVals });
      n += r.count;
      if (r.err !== 0 || r.outBatch === null) return n;
      cursor = r.outBatch;
    }
  };
  tasks.push({ workload: "full walk: get_next_key", entries, peer: "htab", fn: walk(h) });
  tasks.push({ workload: "full walk: lookup_batch", entries, peer: "htab", fn: batch(h) });
  tasks.push({
    workload: "full walk: iterate",
    entries,
    peer: "V8 Map",
    fn: () => {
      let n = 0;
      for (const _ of vm) n++;
      return n;
    },
  });
  const kern = await loadKernel();
  if (kern) {
    const km = kern.KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries });
    cleanup.push(() => km.close());
    for (let i = 0; i < entries; i++) {
      new DataView(k.buffer).setUint32(0, keys[i], true);
      km.updateElem(k, v, 0);
    }
    tasks.push({ workload: "full walk: get_next_key", entries, peer: "kernel bpf()", fn: walk(km) });
    tasks.push({ workload: "full walk: lookup_batch", entries, peer: "kernel bpf()", fn: batch(km) });
  }
  // Whole-map walks are long calls: a few samples are enough.
  for (const t of tasks) t.iterations = entries >= 100_000 ? 4 : 32;
  return { tasks, perCall: entries };
}

/** 5-tuple-like keys: 16-byte key, 64-byte value. Map needs a string key. */
function wideTasks(entries: number, cleanup: (() => unknown)[]): Task[] {
  const h = Htab.create(
    { type: MapType.Hash, keySize: 16, valueSize: 64, maxEntries: entries },
    { nrCpus: 2, fastPath: FAST_PATH },
  );
  cleanup.push(() => h.close());
  const vm = new Map<string, Uint8Array>();
  const keys: Uint8Array[] = [];
  let x = 12345;
  for (let i = 0; i < entries; i++) {
    const kk = new Uint8Array(16);
    for (let j = 0; j < 16; j++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      kk[j] = x & 0xff;
    }
    keys.push(kk);
    const val = new Uint8Array(64).fill(i & 0xff);
    h.updateElem(kk, val, 0);
    vm.set(Buffer.from(kk).toString("latin1"), val);
  }
  const ord = order(entries, 1 << 16, 11);
  let pos = 0;
  const out = new Uint8Array(64);
  let sink = 0;
  return [
    {
      workload: "lookup hit, 16 B key / 64 B value",
      entries,
      peer: "htab",
      fn: () => {
        for (let i = 0; i < OPS; i++) {
          if (h.lookupElem(keys[ord[pos]], out, 0) === 0) sink++;
          pos = (pos + 1) & 0xffff;
        }
      },
    },
    {
      workload: "lookup hit, 16 B key / 64 B value",
      entries,
      peer: "V8 Map",
      fn: () => {
        for (let i = 0; i < OPS; i++) {
          const v = vm.get(Buffer.from(keys[ord[pos]].buffer, 0, 16).toString("latin1"));
          if (v !== undefined) {
            out.set(v);
            sink++;
          }
          pos = (pos + 1) & 0xffff;
        }
        return sink;
      },
    },
  ];
}

/** Read-heavy mix on 1 and 2 workers, htab versus the global-lock map. */
async function mixThroughput(entries: number, quick: boolean): Promise<ThroughputResult[]> {
  const here = dirname(fileURLToPath(import.meta.url));
  const script = join(here, "peers", "mix-worker.js");
  const keys = randomKeys(entries, 5);
  const out: ThroughputResult[] = [];
  const seconds = quick ? 0.4 : 1.5;
  const reps = quick ? 2 : 3;
  for (const kind of ["htab", "naive"] as const) {
    for (const workers of [1, 2]) {
      const rates: number[] = [];
      for (let r = 0; r < reps; r++) {
        let handle: MapHandle;
        let htab: Htab | null = null;
        if (kind === "htab") {
          htab = Htab.create(
            { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries },
            { nrCpus: 3, fastPath: FAST_PATH },
          );
          const k = new Uint8Array(4);
          const v = new Uint8Array(8);
          for (let i = 0; i < entries; i++) {
            new DataView(k.buffer).setUint32(0, keys[i], true);
            htab.updateElem(k, v, 0);
          }
          handle = htab.handle; // the whole handle: workers run the wasm fast path
        } else {
          const nm = new NaiveLockMap(entries);
          for (let i = 0; i < entries; i++) nm.set(keys[i], 1, 0);
          handle = { sab: nm.sab };
        }
        const ctl = new SharedArrayBuffer(12);
        const c32 = new Int32Array(ctl);
        const done = Array.from(
          { length: workers },
          (_, i) =>
            new Promise<number>((resolve, reject) => {
              const w = new Worker(script, {
                workerData: { kind, handle, keys, n: entries, ctl, seed: 77 + i * 31 },
              });
              w.once("message", resolve);
              w.once("error", reject);
            }),
        );
        while (Atomics.load(c32, 0) < workers) await new Promise((res) => setTimeout(res, 2));
        const t0 = performance.now();
        Atomics.store(c32, 1, 1);
        Atomics.notify(c32, 1);
        await new Promise((res) => setTimeout(res, seconds * 1000));
        Atomics.store(c32, 2, 1);
        const ops = (await Promise.all(done)).reduce((a, b) => a + b, 0);
        rates.push(ops / ((performance.now() - t0) / 1000));
        htab?.close();
      }
      rates.sort((a, b) => a - b);
      out.push({
        workload: "read-heavy mix 98/1/1",
        entries,
        peer: kind === "htab" ? "htab" : "naive SAB + global lock",
        workers,
        unit: "ops/s",
        median: rates[rates.length >> 1],
        min: rates[0],
        max: rates[rates.length - 1],
        reps,
      });
    }
  }
  return out;
}

function median(list: PointResult[], workload: string, entries: number, peer: string): number | undefined {
  return list.find((p) => p.workload === workload && p.entries === entries && p.peer === peer)?.stat.median;
}

function computeRatios(rep: BenchReport): Record<string, number> {
  const r: Record<string, number> = {};
  const sizes = [...new Set(rep.points.map((p) => p.entries))];
  for (const n of sizes) {
    const tag = n >= 1_000_000 ? "1M" : n >= 1000 ? `${n / 1000}k` : `${n}`;
    for (const w of [
      "lookup hit",
      "lookup miss",
      "update existing",
      "insert+delete",
      "LRU insert, evicting",
      "LRU lookup hit",
    ]) {
      const h = median(rep.points, w, n, "htab");
      if (h === undefined) continue;
      for (const peer of [
        "V8 Map",
        "kernel bpf()",
        "kernel BPF program",
        "lmdb-js",
        "naive SAB + global lock",
        "Atomics request slot",
        "postMessage owner",
        "htab lookupRef (program face)",
        "lru-cache",
      ]) {
        const p = median(rep.points, w, n, peer);
        if (p !== undefined) r[`${w} @${tag}: htab / ${peer}`] = h / p;
      }
    }
  }
  for (const n of sizes) {
    const tag = n >= 1_000_000 ? "1M" : n >= 1000 ? `${n / 1000}k` : `${n}`;
    for (const peer of ["htab", "naive SAB + global lock"]) {
      const at = (w: number) =>
        rep.throughput.find((t) => t.peer === peer && t.workers === w && t.entries === n)?.median;
      const one = at(1);
      const two = at(2);
      if (one && two) r[`read-heavy mix @${tag}: ${peer} 2 workers / 1 worker`] = two / one;
    }
  }
  for (const m of rep.memory)
    if (m.ratio !== null) r[`memory ${m.type} @${m.entries}: htab / kernel bytes per entry`] = m.ratio;
  return r;
}

/** Bytes per entry for each map type, htab and the kernel's memlock for the same map. */
async function memory(entries: number): Promise<MemoryResult[]> {
  const kern = await loadKernel();
  const cases: { type: string; spec: MapSpec; fill: number }[] = [
    { type: "hash", spec: { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries }, fill: 0 },
    {
      type: "percpu_hash",
      spec: { type: MapType.PercpuHash, keySize: 4, valueSize: 8, maxEntries: entries },
      fill: 0,
    },
    {
      type: "lru_hash",
      spec: { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: entries },
      fill: 0,
    },
    {
      type: "lru_hash NO_COMMON_LRU",
      spec: {
        type: MapType.LruHash,
        keySize: 4,
        valueSize: 8,
        maxEntries: entries,
        flags: MapFlags.NoCommonLru,
      },
      fill: 0,
    },
    {
      type: "lru_percpu_hash",
      spec: { type: MapType.LruPercpuHash, keySize: 4, valueSize: 8, maxEntries: entries },
      fill: 0,
    },
    {
      type: "hash NO_PREALLOC (half full)",
      spec: { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries, flags: MapFlags.NoPrealloc },
      fill: entries >> 1,
    },
  ];
  const cpus = machineCpus();
  const out: MemoryResult[] = [];
  for (const c of cases) {
    const k = new Uint8Array(4);
    const v = new Uint8Array(syscallValueBytes(c.spec.type, c.spec.valueSize, cpus));
    const fillUp = (m: RawMap) => {
      for (let i = 0; i < c.fill; i++) {
        new DataView(k.buffer).setUint32(0, i, true);
        m.updateElem(k, v, 0);
      }
    };
    const h = Htab.create(c.spec, { nrCpus: cpus, fastPath: FAST_PATH });
    fillUp(h);
    const htabBytesPerEntry = h.memoryUsage() / entries;
    h.close();
    let kernelBytesPerEntry: number | null = null;
    if (kern) {
      const km = kern.KernelMap.create(c.spec);
      fillUp(km);
      kernelBytesPerEntry = km.memoryUsage() / entries;
      km.close();
    }
    out.push({
      type: c.type,
      entries,
      htabBytesPerEntry,
      kernelBytesPerEntry,
      ratio: kernelBytesPerEntry ? htabBytesPerEntry / kernelBytesPerEntry : null,
    });
  }
  return out;
}

function table(rep: BenchReport): string {
  const lines: string[] = [];
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  lines.push(
    "| workload | entries | peer | median ns/op | p99 | ±rme % | htab / peer |",
    "|---|---|---|---|---|---|---|",
  );
  for (const p of rep.points) {
    const h = median(rep.points, p.workload, p.entries, "htab");
    const ratio = h !== undefined && p.peer !== "htab" ? (h / p.stat.median).toFixed(3) : "";
    lines.push(
      `| ${p.workload} | ${p.entries} | ${p.peer} | ${fmt(p.stat.median)} | ${fmt(p.stat.p99)} | ${p.stat.rme.toFixed(1)} | ${ratio} |`,
    );
  }
  lines.push(
    "",
    "| workload | entries | peer | workers | median ops/s | min | max |",
    "|---|---|---|---|---|---|---|",
  );
  for (const t of rep.throughput)
    lines.push(
      `| ${t.workload} | ${t.entries} | ${t.peer} | ${t.workers} | ${Math.round(t.median).toLocaleString("en-US")} | ${Math.round(t.min).toLocaleString("en-US")} | ${Math.round(t.max).toLocaleString("en-US")} |`,
    );
  lines.push(
    "",
    "| map type | entries | htab bytes/entry | kernel memlock bytes/entry | ratio |",
    "|---|---|---|---|---|",
  );
  for (const m of rep.memory)
    lines.push(
      `| ${m.type} | ${m.entries} | ${m.htabBytesPerEntry.toFixed(1)} | ${m.kernelBytesPerEntry?.toFixed(1) ?? "n/a"} | ${m.ratio?.toFixed(3) ?? "n/a"} |`,
    );
  lines.push("", "| ratio | value |", "|---|---|");
  for (const [k, v] of Object.entries(rep.ratios))
    lines.push(`| ${k} | ${v < 0.01 ? v.toExponential(2) : v.toFixed(3)} |`);
  return lines.join("\n");
}

async function chart(rep: BenchReport, base: string): Promise<string[]> {
  const data = rep.points
    .filter((p) => ["lookup hit", "lookup miss", "update existing", "insert+delete"].includes(p.workload))
    .map((p) => ({ workload: p.workload, size: `${p.entries} entries`, peer: p.peer, ns: p.stat.median }));
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `htab vs alternatives: median ns per operation (log scale), ${rep.machine.model}, Node ${rep.node}`,
    data: { values: data },
    facet: {
      row: { field: "size", type: "nominal", title: null },
      column: { field: "workload", type: "nominal", title: null },
    },
    spec: {
      width: 180,
      height: 160,
      mark: "bar",
      encoding: {
        y: { field: "peer", type: "nominal", title: null, sort: "x" },
        // Log bars need an explicit base: they grow from 1 ns.
        x: {
          field: "ns",
          type: "quantitative",
          scale: { type: "log", domain: [1, 100000] },
          title: "ns/op (log)",
        },
        x2: { datum: 1 },
        color: { field: "peer", type: "nominal", legend: null },
      },
    },
  };
  try {
    const r = await renderChart(spec, base);
    if (r.skipped) rep.skipped.push(`chart: ${r.skipped}`);
    return r.files;
  } catch (e) {
    rep.skipped.push(`chart: ${(e as Error).message}`);
    return [];
  }
}

export async function runBench(argv: string[]): Promise<BenchReport> {
  const o = parseArgs(argv);
  FAST_PATH = !o.jsPath;
  const sizes = o.quick ? [1000] : [1000, 1_000_000];
  const rep: BenchReport = {
    date: new Date().toISOString(),
    quick: o.quick,
    fastPath: FAST_PATH,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? "unknown",
      memoryBytes: totalmem(),
      os: `${platform()} ${release()}`,
      arch: arch(),
    },
    node: process.version,
    points: [],
    throughput: [],
    memory: [],
    ratios: {},
    skipped: [],
  };
  const cleanup: (() => unknown)[] = [];
  const groups: { tasks: Task[]; perCall: number }[] = [];
  for (const n of sizes) {
    groups.push({ tasks: await pointTasks(n, rep.skipped, cleanup), perCall: OPS });
    if (n <= 1000) groups.push({ tasks: wideTasks(n, cleanup), perCall: OPS });
    groups.push(await iterationTasks(n, cleanup));
    groups.push({ tasks: await lruTasks(n, cleanup), perCall: OPS });
  }
  const total = groups.reduce((a, g) => a + g.tasks.length, 0) + sizes.length * 2 + 2;
  // One progress line on stderr: the bench's own output (the report) stays clean.
  let doneTasks = 0;
  const progress = new Progress("bench", process.stderr, 10_000);
  const step = (n: number, task: string) => {
    doneTasks += n;
    progress.update(doneTasks / total, [
      { label: "", value: `${doneTasks}/${total}` },
      { label: "", value: task },
    ]);
  };
  const time = o.quick ? 60 : 400;
  for (const g of groups) {
    for (const t of g.tasks) {
      step(0, `${t.workload} @${t.entries} ${t.peer}`);
      const b = new Bench({
        time: t.iterations ? 0 : time,
        iterations: t.iterations ?? 16,
        warmup: true,
        warmupTime: o.quick ? 20 : 100,
        warmupIterations: t.iterations ? 1 : 16,
      });
      b.add(t.peer, t.fn);
      await b.run();
      const res = b.tasks[0].result;
      if (res.state !== "completed") throw new Error(`bench ${t.workload} ${t.peer}: ${res.state}`);
      const k = g.perCall === OPS ? 1 : OPS / g.perCall;
      const s = stat(res.latency);
      rep.points.push({
        workload: t.workload,
        entries: t.entries,
        peer: t.peer,
        unit: "ns/op",
        stat: { ...s, median: s.median * k, mean: s.mean * k, p75: s.p75 * k, p99: s.p99 * k },
      });
      step(1, "");
    }
  }
  for (const n of sizes) {
    step(0, `kernel BPF program @${n}`);
    const kp = await kernelProgramPoint(n, o.quick);
    if (kp) rep.points.push(kp);
    else rep.skipped.push("kernel BPF program: bpf() is not usable here");
    step(0, `postMessage @${n}`);
    rep.points.push(await postMessageLatency(n, o.quick));
    step(1, `read-heavy mix @${n}`);
    rep.throughput.push(...(await mixThroughput(n, o.quick)));
    step(1, "");
    rep.memory.push(...(await memory(n)));
  }
  step(0, "conntrack pattern");
  const ct = await runConntrack({
    seconds: o.quick ? 0.8 : 2,
    workers: 1,
    flows: 20000,
    mapSize: 32768,
    timeoutMs: 20,
    kernel: false,
    quiet: true,
  });
  step(1, "");
  const kern = await loadKernel();
  const ctk = kern
    ? await runConntrack({
        seconds: o.quick ? 0.8 : 2,
        workers: 1,
        flows: 20000,
        mapSize: 32768,
        timeoutMs: 20,
        kernel: true,
        quiet: true,
      })
    : null;
  step(1, "");
  progress.stop();
  for (const r of [...ct, ...(ctk ?? [])].filter((x) => !x.skipped))
    rep.throughput.push({
      workload: `conntrack pattern (GC: ${r.mode === "delete" ? "delete by key" : "compareAndDelete"})`,
      entries: 32768,
      peer: r.backend === "sab" ? "htab" : "kernel bpf()",
      workers: 1,
      unit: "ops/s",
      median: r.packets / r.seconds,
      min: r.packets / r.seconds,
      max: r.packets / r.seconds,
      reps: 1,
    });
  for (const c of cleanup.reverse()) await c();
  rep.ratios = computeRatios(rep);
  mkdirSync(o.out, { recursive: true });
  const stamp = rep.date.replace(/[:]/g, "-").replace(/\..+/, "");
  const base = join(o.out, `${stamp}${o.quick ? "-quick" : ""}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(rep, null, 2)}\n`);
  const md = table(rep);
  const log = o.json ? (s: string) => process.stderr.write(`${s}\n`) : (s: string) => console.log(s);
  log(`\n${md}\n`);
  const images = o.chart ? await chart(rep, base) : [];
  if (!o.quick) {
    writeFileSync(join(o.out, "latest.json"), `${JSON.stringify(rep, null, 2)}\n`);
    writeFileSync(join(o.out, "latest.md"), `${md}\n`);
    if (images.length) await chart(rep, join(o.out, "latest"));
  }
  if (rep.skipped.length) log(`skipped: ${rep.skipped.join("; ")}`);
  log(`wrote ${base}.json${images.length ? `, ${images.join(", ")}` : ""}`);
  if (o.json) process.stdout.write(`${JSON.stringify(rep)}\n`);
  return rep;
}

/**
 * Re-render a saved report with the current code: ratios, table (<file>.md)
 * and chart. `node dist/bench/run.js --chart-only report.json`. Measures nothing.
 */
async function chartOnly(file: string): Promise<void> {
  const { readFileSync } = await import("node:fs");
  const rep = JSON.parse(readFileSync(file, "utf8")) as BenchReport;
  rep.ratios = computeRatios(rep);
  const base = file.replace(/\.json$/, "");
  writeFileSync(file, `${JSON.stringify(rep, null, 2)}\n`);
  writeFileSync(`${base}.md`, `${table(rep)}\n`);
  console.log((await chart(rep, base)).join(", "));
}

if (
  process.argv[1] &&
  fileURLToPath(import.meta.url) === process.argv[1] &&
  process.argv[2] === "--chart-only"
) {
  chartOnly(process.argv[3]).catch((e) => {
    console.error(`bench: ${(e as Error).message}`);
    process.exitCode = 1;
  });
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runBench(process.argv.slice(2)).catch((e) => {
    console.error(`bench: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  });
}
