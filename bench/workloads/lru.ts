/**
 * LRU workloads, written once for every LRU peer: inserting new keys into a
 * full map (every insert evicts) and lookup hits; htab LRU_HASH against
 * lru-cache and the kernel's LRU_HASH.
 */
import { MapType } from "../../src/uapi.js";
import { ORDER_LEN, ORDER_MASK, order, randomKeys } from "../keys.js";
import type { BenchOptions } from "../options.js";
import type { PointPeer } from "../peer.js";
import { htabMap, htabPeer } from "../peers/htab.js";
import { kernelMap, kernelPeer } from "../peers/kernel-syscall.js";
import { lruCachePeer } from "../peers/lru-cache.js";
import { OPS, type Task, tightNs } from "./task.js";

export async function lruTasks(
  entries: number,
  o: BenchOptions,
  cleanup: (() => unknown)[],
): Promise<Task[]> {
  // The stream cycles through 4x the map's size: every insert is of a key evicted long ago.
  const keys = randomKeys(entries * 4, 7 + entries);
  const present = keys.subarray(0, entries);
  const ord = order(entries, ORDER_LEN, 13);
  const spec = { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: entries };
  const peers: PointPeer[] = [
    htabPeer(htabMap(spec, present, !o.jsPath)),
    await lruCachePeer(present, entries),
  ];
  const km = await kernelMap(spec, present);
  if (km !== null) peers.push(kernelPeer(km));
  for (const p of peers) cleanup.push(() => p.close());
  const reps = o.quick ? 5 : 15;
  const tasks: Task[] = [];
  let sink = 0;
  for (const p of peers) {
    const tight = p.name !== "kernel bpf()";
    // One position for the harnessed and the tight loop: every insert is of a key not in the map.
    let pos = entries;
    const stream = (n: number) => {
      p.insertStream?.(keys, pos, n);
      pos = (pos + n) % keys.length;
    };
    tasks.push({
      workload: "LRU insert, evicting",
      entries,
      peer: p.name,
      perCall: OPS,
      fn: () => stream(OPS),
      tight: tight ? () => tightNs((_s, n) => stream(n), ORDER_LEN, reps) : undefined,
    });
    let hpos = 0;
    const hits = (s: number, n: number) => p.lookup(present, ord, s, n);
    tasks.push({
      workload: "LRU lookup hit",
      entries,
      peer: p.name,
      perCall: OPS,
      // The evicting task ran first: re-insert the hit keys, so that (nearly) every lookup hits.
      before: () => p.insertStream?.(keys, 0, entries),
      fn: () => {
        sink += hits(hpos, OPS);
        hpos = (hpos + OPS) & ORDER_MASK;
      },
      tight: tight ? () => tightNs(hits, ORDER_LEN, reps) : undefined,
    });
  }
  cleanup.push(() => void sink);
  return tasks;
}
