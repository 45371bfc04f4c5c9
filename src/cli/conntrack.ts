/**
 * `htab conntrack`: the conntrack GC race (delete-by-key deleting a flow refreshed meanwhile), live. Datapath workers insert and
 * refresh 5-tuple flows; a GC worker sweeps expired flows in batches. The same
 * traffic runs twice: with Cilium's snapshot-then-delete-by-key, and with
 * compareAndDelete. Live flows deleted by the GC are broken connections.
 */
import { Worker } from "node:worker_threads";
import { Htab } from "../core/htab.js";
import { KernelMap } from "../kernel/kernel-map.js";
import type { RawMap } from "../map/raw-map.js";
import { MapType } from "../uapi.js";
import {
  CT_AVOIDED,
  CT_BROKEN,
  CT_EXPIRED,
  CT_FULL,
  CT_KEY_SIZE,
  CT_LIVE_DELETED,
  CT_NEW,
  CT_PACKETS,
  CT_REFRESH,
  CT_SWEEPS,
  CT_VALUE_SIZE,
  CT_WORDS,
  type GcMode,
} from "./conntrack-layout.js";
import { loadConntrackObject } from "./conntrack-prog.js";
import { type Column, fmtNumber, Progress, renderTable } from "./term.js";

export interface ConntrackOptions {
  /** Seconds per mode. */
  seconds: number;
  /** Datapath workers (the GC is one more). */
  workers: number;
  /** Distinct flows in the traffic. */
  flows: number;
  /** map max_entries. */
  mapSize: number;
  /** A flow idle this long is expired. */
  timeoutMs: number;
  /** Run the maps in the kernel (control plane through bpf()). */
  kernel: boolean;
  /** BPF_MAP_TYPE_LRU_HASH instead of HASH (Cilium's CT maps are LRU): a full map evicts. @default false */
  lru?: boolean;
  /** Print nothing (the caller prints the results, or --json does). */
  quiet?: boolean;
  seed?: number;
}

export interface ModeResult {
  mode: GcMode;
  backend: "sab" | "kernel";
  seconds: number;
  packets: number;
  newFlows: number;
  refreshes: number;
  mapFull: number;
  sweeps: number;
  expiredDeleted: number;
  liveDeleted: number;
  brokenSeen: number;
  racesAvoided: number;
  memoryBytes: number;
  /** Live flows deleted by the GC so far, sampled every 250 ms: [seconds, count]. */
  timeline: [number, number][];
  skipped?: string;
}

function runWorker(data: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL("./conntrack-worker.js", import.meta.url), { workerData: data });
    w.once("error", reject);
    w.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`conntrack worker exited with ${code}`)),
    );
  });
}

/**
 * The CT map and what the workers attach: on SAB, a loaded object holding
 * the map and the datapath program (compiled where wasm threads exist),
 * whose handle each worker attaches on its own CPU slot (the main thread
 * holds slot 0); in the kernel, the map's fd.
 */
function openCtMap(o: ConntrackOptions): {
  map: RawMap & { memoryUsage(): number; count?(): number };
  where: Record<string, unknown>;
  close(): void;
} {
  if (!o.kernel) {
    const obj = loadConntrackObject({ maxEntries: o.mapSize, lru: o.lru ?? false, nrCpus: o.workers + 2 });
    return { map: obj.map("ct") as Htab, where: { object: obj.handle() }, close: () => obj.close() };
  }
  const spec = {
    type: o.lru ? MapType.LruHash : MapType.Hash,
    keySize: CT_KEY_SIZE,
    valueSize: CT_VALUE_SIZE,
    maxEntries: o.mapSize,
  };
  const map = KernelMap.create(spec, { name: "htab_ct" });
  return { map, where: { kernel: map.handle }, close: () => map.close() };
}

async function runMode(o: ConntrackOptions, mode: GcMode): Promise<ModeResult> {
  const backend = o.kernel ? "kernel" : "sab";
  const base: ModeResult = {
    mode,
    backend,
    seconds: 0,
    packets: 0,
    newFlows: 0,
    refreshes: 0,
    mapFull: 0,
    sweeps: 0,
    expiredDeleted: 0,
    liveDeleted: 0,
    brokenSeen: 0,
    racesAvoided: 0,
    memoryBytes: 0,
    timeline: [],
  };
  if (o.kernel && mode === "compare")
    return { ...base, skipped: "the kernel has no atomic compare-and-delete (BPF_F_COMPARE was rejected)" };
  const { map, where, close } = openCtMap(o);
  const n = o.workers + 1;
  const stats = new SharedArrayBuffer(n * CT_WORDS * 4);
  const s32 = new Int32Array(stats);
  const stop = new SharedArrayBuffer(4);
  const lastRefresh = new SharedArrayBuffer(o.flows * 4);
  const epoch = Date.now() - 1;
  const common = {
    ...where,
    stats,
    stop,
    lastRefresh,
    workers: o.workers,
    flows: o.flows,
    timeoutMs: o.timeoutMs,
    epoch,
    mode,
    batch: 256,
  };
  const seed = o.seed ?? 1;
  const done = [
    ...Array.from({ length: o.workers }, (_, i) =>
      runWorker({ ...common, role: "datapath", slot: i, seed: seed * 7919 + i * 104729 }),
    ),
    runWorker({ ...common, role: "gc", slot: o.workers, seed }),
  ];
  const sum = (w: number) => {
    let t = 0;
    for (let i = 0; i < n; i++) t += Atomics.load(s32, i * CT_WORDS + w);
    return t;
  };
  const progress = o.quiet
    ? null
    : new Progress(
        `${backend}/${mode === "delete" ? "delete-by-key" : "compareAndDelete"}`,
        process.stderr,
        2000,
      );
  const t0 = performance.now();
  const timeline: [number, number][] = [[0, 0]];
  let lastP = 0;
  let lastT = t0;
  while (performance.now() - t0 < o.seconds * 1000) {
    await new Promise((r) => setTimeout(r, 250));
    const now = performance.now();
    const p = sum(CT_PACKETS);
    timeline.push([(now - t0) / 1000, sum(CT_LIVE_DELETED)]);
    const fill = map instanceof Htab ? map.count() : sum(CT_NEW) - sum(CT_EXPIRED) - sum(CT_LIVE_DELETED);
    progress?.update((now - t0) / (o.seconds * 1000), [
      { label: "pkts/s", value: fmtNumber(((p - lastP) * 1000) / (now - lastT)) },
      { label: "map", value: `${fill}/${o.mapSize}` },
      { label: "live deleted", value: fmtNumber(sum(CT_LIVE_DELETED)) },
      { label: "broken", value: fmtNumber(sum(CT_BROKEN)) },
      { label: "sweeps", value: fmtNumber(sum(CT_SWEEPS)) },
    ]);
    lastP = p;
    lastT = now;
  }
  Atomics.store(new Int32Array(stop), 0, 1);
  await Promise.all(done);
  const seconds = (performance.now() - t0) / 1000;
  timeline.push([seconds, sum(CT_LIVE_DELETED)]);
  progress?.update(1, [{ label: "", value: "done" }]);
  progress?.stop();
  const memoryBytes = map.memoryUsage();
  close();
  return {
    ...base,
    seconds,
    packets: sum(CT_PACKETS),
    newFlows: sum(CT_NEW),
    refreshes: sum(CT_REFRESH),
    mapFull: sum(CT_FULL),
    sweeps: sum(CT_SWEEPS),
    expiredDeleted: sum(CT_EXPIRED),
    liveDeleted: sum(CT_LIVE_DELETED),
    brokenSeen: sum(CT_BROKEN),
    racesAvoided: sum(CT_AVOIDED),
    memoryBytes,
    timeline,
  };
}

const MODE_NAME: Record<GcMode, string> = { delete: "delete by key", compare: "compareAndDelete" };

/** The result table: fits 100 columns, numbers right-aligned, no index column. */
export function conntrackTable(results: ModeResult[]): string {
  const rows = results.filter((r) => !r.skipped);
  const cols: Column<ModeResult>[] = [
    // The kernel rows are named shortly so that the table keeps within 100 columns.
    {
      header: "GC mode",
      value: (r) =>
        r.backend === "kernel" ? `kernel, ${r.mode === "delete" ? "by key" : "compare"}` : MODE_NAME[r.mode],
    },
    { header: "pkts/s", value: (r) => r.packets / r.seconds },
    { header: "new\nflows", value: (r) => r.newFlows },
    { header: "GC\nsweeps", value: (r) => r.sweeps },
    { header: "expired\ndeleted", value: (r) => r.expiredDeleted },
    { header: "LIVE flows\ndeleted (GC)", value: (r) => r.liveDeleted },
    { header: "broken\n(datapath)", value: (r) => r.brokenSeen },
    { header: "races\ncaught", value: (r) => r.racesAvoided },
    { header: "map\nMiB", value: (r) => r.memoryBytes / 1048576, digits: 1 },
  ];
  return renderTable(rows, cols, 100);
}

/** Live flows wrongly deleted over time, one line per GC mode (Vega-Lite). */
export function conntrackChartSpec(results: ModeResult[]): object {
  const values = results
    .filter((r) => !r.skipped)
    .flatMap((r) =>
      r.timeline.map(([t, n]) => ({ seconds: t, live: n, mode: `${r.backend}: ${MODE_NAME[r.mode]}` })),
    );
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "htab conntrack: live flows wrongly deleted by the GC",
    width: 480,
    height: 240,
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "seconds", type: "quantitative", title: "seconds into the run" },
      y: { field: "live", type: "quantitative", title: "live flows deleted (cumulative)" },
      color: { field: "mode", type: "nominal", title: "GC", legend: { labelLimit: 320 } },
    },
  };
}

/** Run both GC modes on the same traffic; print and return the results. */
export async function runConntrack(o: ConntrackOptions): Promise<ModeResult[]> {
  if (!(o.workers >= 1 && o.seconds > 0 && o.flows >= 1 && o.mapSize >= 1 && o.timeoutMs >= 2))
    throw new Error(
      "conntrack needs --workers >= 1, --seconds > 0, --flows >= 1, --map-size >= 1, --timeout-ms >= 2",
    );
  if (!o.quiet)
    console.log(
      `htab conntrack: ${o.workers} datapath workers + 1 GC worker, ${o.flows} flows, ${o.mapSize}-entry map, ` +
        `${o.timeoutMs} ms timeout, ${o.seconds}s per GC mode${o.kernel ? ", kernel maps" : ""}`,
    );
  const results = [await runMode(o, "delete"), await runMode(o, "compare")];
  if (!o.quiet) {
    console.log(conntrackTable(results));
    const [a, b] = results;
    const per = (r: ModeResult) =>
      r.expiredDeleted ? ((r.liveDeleted / r.expiredDeleted) * 1e5).toFixed(1) : "0";
    console.log(
      `\nGC race: ${fmtNumber(a.liveDeleted)} live flows deleted with delete-by-key (${per(a)} per 10^5 deletions)` +
        (b.skipped
          ? "."
          : `, ${fmtNumber(b.liveDeleted)} with compareAndDelete (${fmtNumber(b.racesAvoided)} races caught).`),
    );
    console.log("Each column is explained by htab conntrack --help.");
    for (const r of results)
      if (r.skipped) console.log(`Note: ${r.backend} ${MODE_NAME[r.mode]} skipped: ${r.skipped}.`);
    if (o.lru)
      console.log(
        "Note: LRU_HASH evicts when full, so 'broken (datapath)' also counts evicted flows; the GC column counts only the GC's own deletions.",
      );
  }
  return results;
}
