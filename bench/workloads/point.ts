/**
 * The point workloads, written once for every peer: lookup hit, lookup
 * miss, update existing, insert+delete, u32 keys and 8-byte values, keys
 * visited in a random order over present (or absent) keys.
 */

import { computeGeometry } from "../../src/layout/geometry.js";
import { LRU_NONE } from "../../src/layout/layout.js";
import type { MapSpec } from "../../src/map/spec.js";
import { MapType } from "../../src/uapi.js";
import { ORDER_LEN, ORDER_MASK, order, randomKeys } from "../keys.js";
import type { BenchOptions } from "../options.js";
import type { PointPeer } from "../peer.js";
import { floorOrderedPeer, floorPlainPeer, floorTable } from "../peers/floor.js";
import { htabManyPeer, htabMap, htabPeer, htabRefPeer, typedMapPeer } from "../peers/htab.js";
import { kernelMap, kernelPeer } from "../peers/kernel-syscall.js";
import { lmdbPeer } from "../peers/lmdb.js";
import { ownerSlotPeer } from "../peers/message-maps.js";
import { naiveLockPeer } from "../peers/naive-lock-map.js";
import { v8MapPeer } from "../peers/v8-map.js";
import { OPS, type Task, tightNs } from "./task.js";

type Run = (p: PointPeer, keys: Uint32Array, ord: Uint32Array, pos: number, n: number) => unknown;

/** Each workload: its name, which keys it visits, and the peer function it runs. */
const WORKLOADS: { name: string; absent: boolean; run: Run; has: (p: PointPeer) => boolean }[] = [
  { name: "lookup hit", absent: false, run: (p, k, o, s, n) => p.lookup(k, o, s, n), has: () => true },
  { name: "lookup miss", absent: true, run: (p, k, o, s, n) => p.lookup(k, o, s, n), has: () => true },
  {
    name: "update existing",
    absent: false,
    run: (p, k, o, s, n) => p.update?.(k, o, s, n),
    has: (p) => p.update !== undefined,
  },
  {
    name: "insert+delete",
    absent: true,
    run: (p, k, o, s, n) => p.insertDelete?.(k, o, s, n),
    has: (p) => p.insertDelete !== undefined,
  },
];

/** The workloads this run measures: all of them, or (`--only lookup`) the lookups. */
function workloadsOf(o: BenchOptions): typeof WORKLOADS {
  return o.only === "lookup" ? WORKLOADS.filter((w) => w.name.startsWith("lookup")) : WORKLOADS;
}

/** Peers measured on lookup hit only (they add nothing on the other workloads). */
const HIT_ONLY = new Set([
  "htab lookupRef (program face)",
  "htab TypedMap",
  "htab lookupMany",
  "Atomics request slot",
]);
/** Peers whose tight loop is measured too (a syscall or a round trip per op gains nothing from it). */
const TIGHT = new Set([
  "V8 Map",
  "htab",
  "floor-ordered",
  "floor-plain",
  "htab, huge pages",
  "htab lookupMany",
  "htab TypedMap",
  "naive SAB + global lock",
]);

/** At 1M entries and where THP works: the same htab map in a memory backed by huge pages. */
async function hugePagePeer(
  entries: number,
  spec: MapSpec,
  present: Uint32Array,
  o: BenchOptions,
  skipped: string[],
) {
  if (entries < 1_000_000 || o.jsPath) return null;
  try {
    const { hugePageMemory } = await import("../../src/kernel/huge-pages.js");
    const { memory, hugePages, reason } = hugePageMemory(mapBytes(spec));
    if (!hugePages) {
      skipped.push(`htab, huge pages: ${reason}`);
      return null;
    }
    return htabPeer(htabMap(spec, present, true, 4, memory), "htab, huge pages");
  } catch (e) {
    skipped.push(`htab, huge pages: ${(e as Error).message}`);
    return null;
  }
}

/** Bytes the map of `spec` needs (its geometry), for the memory made before it. */
function mapBytes(spec: MapSpec): number {
  return computeGeometry(spec.keySize, spec.valueSize, spec.maxEntries, 4, false, true, LRU_NONE).totalBytes;
}

/** The tasks of every point workload on every peer at `entries`. */
export async function pointTasks(
  entries: number,
  o: BenchOptions,
  skipped: string[],
  cleanup: (() => unknown)[],
): Promise<Task[]> {
  const keys = randomKeys(entries * 2, 42 + entries);
  const present = keys.subarray(0, entries);
  const absent = keys.subarray(entries);
  const ord = order(entries, ORDER_LEN, 7);
  const spec = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries + 16 };
  const h = htabMap(spec, present, !o.jsPath);
  // The floor of htab's own layout, filled with the same keys at the same max_entries.
  const floor = floorTable(present, spec.maxEntries);
  const peers: PointPeer[] = [
    v8MapPeer(present),
    htabPeer(h),
    floorOrderedPeer(floor),
    floorPlainPeer(floor),
    htabRefPeer(h),
    typedMapPeer(h),
    htabManyPeer(h),
  ];
  const huge = await hugePagePeer(entries, spec, present, o, skipped);
  if (huge !== null) peers.push(huge);
  peers.push(naiveLockPeer(present, entries + 16));
  const km = await kernelMap(spec, present);
  if (km !== null) peers.push(kernelPeer(km));
  else skipped.push("kernel bpf(): bpf() is not usable here");
  const lm = await lmdbPeer(present);
  if (lm !== null) peers.push(lm);
  else skipped.push("lmdb-js: not installed (npm install -D lmdb)");
  peers.push(await ownerSlotPeer(present));
  for (const p of peers) cleanup.push(() => p.close());
  const tasks: Task[] = [];
  let sink = 0;
  for (const w of workloadsOf(o))
    for (const p of peers) {
      if (!w.has(p) || (HIT_ONLY.has(p.name) && w.name !== "lookup hit")) continue;
      const ks = w.absent ? absent : present;
      let pos = 0;
      tasks.push({
        workload: w.name,
        entries,
        peer: p.name,
        perCall: OPS,
        fn: () => {
          sink += Number(w.run(p, ks, ord, pos, OPS) ?? 0);
          pos = (pos + OPS) & ORDER_MASK;
        },
        tight: TIGHT.has(p.name)
          ? () => tightNs((s, n) => w.run(p, ks, ord, s, n), ORDER_LEN, o.quick ? 5 : 15)
          : undefined,
      });
    }
  cleanup.push(() => void sink);
  return tasks;
}
