/**
 * `htab demo` (npm start): several workers hammer one map with a
 * conntrack-like mix and a live progress line; then a shorter logged run on a
 * small key space whose history is checked for linearizability.
 */
import { Worker } from "node:worker_threads";
import { decodeHistory } from "../check/history.js";
import { checkHistory } from "../check/linearizability.js";
import { Htab } from "../core/htab.js";
import { MapType } from "../uapi.js";
import {
  STAT_EXPIRE,
  STAT_FULL,
  STAT_HIT,
  STAT_INSERT,
  STAT_LOOKUP,
  STAT_REFRESH,
  STAT_WORDS,
} from "./demo-stats.js";
import { type Column, fmtNumber, Progress, renderTable } from "./term.js";

export interface DemoOptions {
  workers: number;
  seconds: number;
  keys: number;
  /** Print nothing; the caller prints the result (--json). */
  quiet?: boolean;
}

/** One traffic worker's figures. */
export interface DemoWorkerRow {
  worker: number;
  opsPerSecond: number;
  lookups: number;
  hitPercent: number;
  refreshes: number;
  newFlows: number;
  mapFull: number;
  expired: number;
}

export interface DemoResult {
  ok: boolean;
  workers: DemoWorkerRow[];
  flows: number;
  memoryBytes: number;
  fsck: boolean;
  historyOps: number;
  violations: number;
  torn: number;
}

function spawn(data: Record<string, unknown>): { worker: Worker; done: Promise<unknown> } {
  const worker = new Worker(new URL("./demo-worker.js", import.meta.url), { workerData: data });
  const done = new Promise((resolve, reject) => {
    let msg: unknown;
    worker.once("message", (m) => {
      msg = m;
    });
    worker.once("error", reject);
    worker.once("exit", (code) =>
      code === 0 ? resolve(msg) : reject(new Error(`worker exited with ${code}`)),
    );
  });
  return { worker, done };
}

const fmt = (n: number) => fmtNumber(n);

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const say = o.quiet ? () => {} : (s: string) => console.log(s);
  if (!(o.workers >= 1 && o.workers <= 64 && o.seconds > 0 && o.keys >= 16))
    throw new Error("demo needs --workers 1..64, --seconds > 0 and --keys >= 16");
  const maxEntries = o.keys;
  const map = Htab.create(
    { type: MapType.Hash, keySize: 16, valueSize: 16, maxEntries },
    { nrCpus: o.workers + 1 },
  );
  const stats = new SharedArrayBuffer(o.workers * STAT_WORDS * 4);
  const stop = new SharedArrayBuffer(4);
  const s32 = new Int32Array(stats);
  say(
    `htab demo: ${o.workers} workers on one BPF_MAP_TYPE_HASH (${maxEntries} entries, 16-byte 5-tuple keys, ` +
      `${(map.memoryUsage() / 1024).toFixed(0)} KiB shared), ${o.seconds}s of conntrack-like traffic`,
  );
  const ws = Array.from({ length: o.workers }, (_, i) =>
    spawn({
      phase: "traffic",
      handle: map.handle,
      stats,
      stop,
      slot: i,
      flows: Math.floor(o.keys * 1.25),
      seed: 7 + i * 104729,
    }),
  );
  const total = () => {
    let n = 0;
    for (let w = 0; w < o.workers; w++)
      for (const s of [STAT_LOOKUP, STAT_INSERT, STAT_EXPIRE, STAT_REFRESH])
        n += Atomics.load(s32, w * STAT_WORDS + s);
    return n;
  };
  const bar = o.quiet ? null : new Progress("demo", process.stderr, 2000);
  const t0 = performance.now();
  let last = 0;
  let lastT = t0;
  while (performance.now() - t0 < o.seconds * 1000) {
    await new Promise((r) => setTimeout(r, 200));
    const now = performance.now();
    const n = total();
    bar?.update((now - t0) / (o.seconds * 1000), [
      { label: "ops/s", value: fmt(((n - last) * 1000) / (now - lastT)) },
      { label: "map", value: `${map.count()}/${maxEntries}` },
      { label: "", value: `${((now - t0) / 1000).toFixed(1)}s` },
    ]);
    last = n;
    lastT = now;
  }
  Atomics.store(new Int32Array(stop), 0, 1);
  await Promise.all(ws.map((w) => w.done));
  const secs = (performance.now() - t0) / 1000;
  bar?.update(1, [{ label: "", value: "done" }]);
  bar?.stop();

  const rows: DemoWorkerRow[] = Array.from({ length: o.workers }, (_, w) => {
    const g = (s: number) => s32[w * STAT_WORDS + s];
    const ops = g(STAT_LOOKUP) + g(STAT_INSERT) + g(STAT_FULL) + g(STAT_EXPIRE) + g(STAT_REFRESH);
    return {
      worker: w,
      opsPerSecond: ops / secs,
      lookups: g(STAT_LOOKUP),
      hitPercent: (100 * g(STAT_HIT)) / Math.max(1, g(STAT_LOOKUP)),
      refreshes: g(STAT_REFRESH),
      newFlows: g(STAT_INSERT),
      mapFull: g(STAT_FULL),
      expired: g(STAT_EXPIRE),
    };
  });
  const cols: Column<DemoWorkerRow>[] = [
    { header: "worker", value: (r) => r.worker },
    { header: "ops/s", value: (r) => r.opsPerSecond },
    { header: "lookups", value: (r) => r.lookups },
    { header: "hit %", value: (r) => r.hitPercent, digits: 1 },
    { header: "refreshes", value: (r) => r.refreshes },
    { header: "new flows", value: (r) => r.newFlows },
    { header: "map full", value: (r) => r.mapFull },
    { header: "expired", value: (r) => r.expired },
  ];
  say(renderTable(rows, cols, 100));
  const f = map.fsck();
  const flows = map.count();
  const memoryBytes = map.memoryUsage();
  say(
    `map: ${map.count()} flows, ${map.memoryUsage()} bytes; fsck ${f.ok ? "ok" : `FAILED: ${f.errors.join("; ")}`}`,
  );
  map.close();

  // History check: every worker logs random operations on 8 colliding keys.
  const hmap = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8 },
    { nrCpus: o.workers + 1 },
  );
  const clock = new SharedArrayBuffer(4);
  const per = 20_000;
  const logs = (await Promise.all(
    Array.from(
      { length: o.workers },
      (_, i) =>
        spawn({ phase: "history", handle: hmap.handle, clock, slot: i, ops: per, keys: 8, seed: 99 + i * 7 })
          .done,
    ),
  )) as Int32Array[];
  const { ops, torn } = decodeHistory(logs);
  const res = checkHistory(ops);
  const hf = hmap.fsck();
  const ok = res.ok && torn === 0 && f.ok && hf.ok;
  say(
    `history check: ${res.ops} operations from ${o.workers} workers on 8 keys, ` +
      `${res.badKeys.length} linearizability violations, ${torn} torn reads -> ${ok ? "PASS" : "FAIL"}`,
  );
  return {
    ok,
    workers: rows,
    flows,
    memoryBytes,
    fsck: f.ok && hf.ok,
    historyOps: res.ops,
    violations: res.badKeys.length,
    torn,
  };
}
