/**
 * `htab conntrack`: the GC race of seed 001, live. Datapath workers insert and
 * refresh 5-tuple flows; a GC worker sweeps expired flows in batches. The same
 * traffic runs twice: with Cilium's snapshot-then-delete-by-key, and with
 * compareAndDelete. Live flows deleted by the GC are broken connections.
 */
import { Worker } from "node:worker_threads";
import cliProgress from "cli-progress";
import { Htab } from "../core/htab.js";
import type { RawMap } from "../core/raw-map.js";
import { KernelMap } from "../kernel/kernel-map.js";
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
  /** Print the progress bar and the table. */
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
  };
  if (o.kernel && mode === "compare")
    return { ...base, skipped: "the kernel has no atomic compare-and-delete (BPF_F_COMPARE was rejected)" };
  const spec = {
    type: o.lru ? MapType.LruHash : MapType.Hash,
    keySize: CT_KEY_SIZE,
    valueSize: CT_VALUE_SIZE,
    maxEntries: o.mapSize,
  };
  const map: RawMap & { memoryUsage(): number } = o.kernel
    ? KernelMap.create(spec, { name: "htab_ct" })
    : Htab.create(spec, { nrCpus: o.workers + 2 });
  // The whole handle: workers run the wasm fast path.
  const where = map instanceof Htab ? { handle: map.handle } : { kernel: (map as KernelMap).handle };
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
  const bar = o.quiet
    ? null
    : new cliProgress.SingleBar(
        {
          format: ` ${backend}/${mode === "delete" ? "delete by key " : "compareAndDelete"} {bar} {pps} pkts/s | GC sweeps {sweeps} | map {fill} | broken {broken}`,
          hideCursor: true,
          noTTYOutput: true,
          notTTYSchedule: 1000,
        },
        cliProgress.Presets.shades_classic,
      );
  const t0 = performance.now();
  bar?.start(100, 0, { pps: 0, sweeps: 0, fill: 0, broken: 0 });
  let lastP = 0;
  let lastT = t0;
  while (performance.now() - t0 < o.seconds * 1000) {
    await new Promise((r) => setTimeout(r, 250));
    const now = performance.now();
    const p = sum(CT_PACKETS);
    const fill = map instanceof Htab ? map.count() : sum(CT_NEW) - sum(CT_EXPIRED) - sum(CT_LIVE_DELETED);
    bar?.update(Math.min(100, (now - t0) / (o.seconds * 10)), {
      pps: Math.round(((p - lastP) * 1000) / (now - lastT)).toLocaleString("en-US"),
      sweeps: sum(CT_SWEEPS),
      fill: `${fill}/${o.mapSize}`,
      broken: sum(CT_BROKEN),
    });
    lastP = p;
    lastT = now;
  }
  Atomics.store(new Int32Array(stop), 0, 1);
  await Promise.all(done);
  const seconds = (performance.now() - t0) / 1000;
  bar?.update(100);
  bar?.stop();
  const memoryBytes = map.memoryUsage();
  map.close();
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
    const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
    console.table(
      results.map((r) =>
        r.skipped
          ? { "GC mode": r.mode, note: `skipped: ${r.skipped}` }
          : {
              "GC mode": r.mode === "delete" ? "lookup, then delete by key" : "compareAndDelete",
              "pkts/s": fmt(r.packets / r.seconds),
              "new flows": fmt(r.newFlows),
              sweeps: fmt(r.sweeps),
              "expired deleted": fmt(r.expiredDeleted),
              "live flows deleted (GC)": fmt(r.liveDeleted),
              "broken (datapath saw)": fmt(r.brokenSeen),
              "races caught (EBUSY)": fmt(r.racesAvoided),
              "map KiB": fmt(r.memoryBytes / 1024),
            },
      ),
    );
    const [a, b] = results;
    if (!b.skipped)
      console.log(
        `GC race: ${a.liveDeleted} live flows deleted with delete-by-key ` +
          `(${a.expiredDeleted ? ((a.liveDeleted / a.expiredDeleted) * 1e5).toFixed(1) : 0} per 10^5 deletions), ` +
          `${b.liveDeleted} with compareAndDelete (${b.racesAvoided} races caught).`,
      );
    if (o.lru)
      console.log(
        "LRU_HASH: a full map evicts, so 'broken (datapath saw)' also counts flows the LRU evicted; the GC column counts the GC's own deletions.",
      );
  }
  return results;
}
