/**
 * `htab snapshot`: consistent reads of a map that writers keep changing
 * (the map-in-map swap pattern of docs/map-in-map.md). Writers add 1 packet and 100 bytes per
 * event, as two updates, to the inner map an ARRAY_OF_MAPS points at. The
 * reader takes snapshots two ways on the same traffic:
 * - plain walk: read both counters of the live map one after the other;
 * - swap: point the outer map at a fresh inner map, synchronize() (wait until
 *   no writer can still hold the old one), then read the old map, which is
 *   now quiet, and recycle it as the next fresh map.
 * A snapshot is inconsistent when bytes != 100 x packets. The swap mode also
 * proves nothing is lost: its snapshots add up to every event written.
 */
import { Worker } from "node:worker_threads";
import type { Htab } from "../core/htab.js";
import type { OuterMap } from "../domain/inner.js";
import { MapDomain } from "../domain/map-domain.js";
import { MapType } from "../uapi.js";
import { BYTES, PACKETS, SLOT, STOP_I32 } from "./snapshot-layout.js";
import { type Column, fmtNumber, renderTable } from "./term.js";

export interface SnapshotOptions {
  seconds: number;
  writers: number;
  /** Milliseconds between snapshots. */
  intervalMs: number;
  quiet?: boolean;
}

export interface SnapshotResult {
  mode: "plain walk" | "swap + synchronize";
  snapshots: number;
  inconsistent: number;
  /** Events the writers made, and (swap mode) the events the snapshots add up to. */
  written: number;
  counted: number | null;
}

const u64 = new Uint8Array(8);
const dv = new DataView(u64.buffer);

function read(m: Htab, key: Uint8Array): bigint {
  return m.lookupElem(key, u64, 0) === 0 ? dv.getBigUint64(0, true) : 0n;
}

function reset(m: Htab): void {
  dv.setBigUint64(0, 0n, true);
  m.updateElem(PACKETS, u64, 0);
  m.updateElem(BYTES, u64, 0);
}

async function runMode(mode: SnapshotResult["mode"], o: SnapshotOptions): Promise<SnapshotResult> {
  const domain = MapDomain.create({ nrCpus: o.writers + 1, cpu: 0, maxMaps: 8, maxBytes: 1 << 22 });
  const spec = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 };
  const template = domain.createMap(spec);
  const buffers = [domain.createMap(spec) as Htab, domain.createMap(spec) as Htab];
  for (const b of buffers) reset(b);
  const outer = domain.createMap({
    type: MapType.ArrayOfMaps,
    keySize: 4,
    valueSize: 4,
    maxEntries: 1,
    innerMap: template,
  }) as OuterMap;
  let live = 0;
  const idOf = (m: Htab) => new Uint8Array(new Uint32Array([m.info.id]).buffer);
  outer.updateElem(SLOT, idOf(buffers[live]), 0);
  const control = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from(
    { length: o.writers },
    (_, i) =>
      new Worker(new URL("./snapshot-worker.js", import.meta.url), {
        workerData: { domain: domain.handle, outerId: outer.info.id, cpu: i + 1, control: control.buffer },
      }),
  );
  const done = workers.map(
    (w) =>
      new Promise<number>((resolve, reject) => {
        w.once("message", resolve);
        w.once("error", reject);
      }),
  );
  let snapshots = 0;
  let inconsistent = 0;
  let counted = 0n;
  const until = Date.now() + o.seconds * 1000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, o.intervalMs));
    let p: bigint;
    let b: bigint;
    if (mode === "plain walk") {
      p = read(buffers[live], PACKETS);
      b = read(buffers[live], BYTES);
    } else {
      const old = buffers[live];
      live ^= 1;
      outer.updateElem(SLOT, idOf(buffers[live]), 0); // writers move to the fresh map
      outer.synchronize(); // no writer holds `old` any more
      p = read(old, PACKETS);
      b = read(old, BYTES);
      counted += p;
      reset(old); // recycled as the next fresh map
    }
    snapshots++;
    if (b !== p * 100n) inconsistent++;
  }
  Atomics.store(control, STOP_I32, 1);
  const written = (await Promise.all(done)).reduce((a, n) => a + n, 0);
  if (mode !== "plain walk") counted += read(buffers[live], PACKETS); // events after the last swap
  domain.close();
  return { mode, snapshots, inconsistent, written, counted: mode === "plain walk" ? null : Number(counted) };
}

export async function runSnapshot(o: SnapshotOptions): Promise<SnapshotResult[]> {
  const out: SnapshotResult[] = [];
  for (const mode of ["plain walk", "swap + synchronize"] as const) {
    if (!o.quiet) process.stderr.write(`snapshot: ${mode}, ${o.writers} writers, ${o.seconds} s ...\n`);
    out.push(await runMode(mode, o));
  }
  if (!o.quiet) process.stdout.write(`${snapshotTable(out)}\n`);
  return out;
}

/** The result table (fits 100 columns). */
export function snapshotTable(results: SnapshotResult[]): string {
  const cols: Column<SnapshotResult>[] = [
    { header: "mode", value: (r) => r.mode },
    { header: "snapshots", value: (r) => r.snapshots },
    { header: "inconsistent\n(bytes != 100 x packets)", value: (r) => r.inconsistent },
    { header: "events\nwritten", value: (r) => r.written },
    { header: "events in\nsnapshots", value: (r) => (r.counted === null ? "-" : fmtNumber(r.counted)) },
  ];
  return renderTable(results, cols, 100);
}

/** Inconsistent snapshots per mode, as a share of the snapshots taken (Vega-Lite). */
export function snapshotChartSpec(results: SnapshotResult[]): object {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "htab snapshot: inconsistent snapshots under writers",
    width: 360,
    height: 120,
    data: {
      values: results.map((r) => ({
        mode: r.mode,
        inconsistent: r.snapshots ? (100 * r.inconsistent) / r.snapshots : 0,
        label: `${r.inconsistent} of ${r.snapshots}`,
      })),
    },
    layer: [
      {
        mark: "bar",
        encoding: {
          y: { field: "mode", type: "nominal", title: null },
          x: {
            field: "inconsistent",
            type: "quantitative",
            title: "% of snapshots inconsistent",
            scale: { domain: [0, 100] },
          },
          color: { field: "mode", type: "nominal", legend: null },
        },
      },
      {
        mark: { type: "text", align: "left", dx: 4 },
        encoding: {
          y: { field: "mode", type: "nominal" },
          x: { field: "inconsistent", type: "quantitative" },
          text: { field: "label" },
        },
      },
    ],
  };
}
