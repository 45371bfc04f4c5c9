/**
 * LRU workloads, written once for every LRU peer: inserting new keys into a
 * full map (every insert evicts) and lookup hits; htab LRU_HASH against
 * lru-cache and the kernel's LRU_HASH.
 *
 * The lookup hits run on maps of their own, filled once with the keys looked
 * up and sized so that nothing is evicted (htab's LRU, like the kernel's,
 * may evict before max_entries while free nodes sit in other CPUs' local
 * lists): every lookup of the row is a hit, as in a user's loop over present
 * keys, and the run checks it. The htab and lru-cache tight loops of that row
 * are paired: measured alternately in rounds, in one task, so that their
 * ratio is a same-moment ratio.
 */
import { LRU_LOCAL_FREE_TARGET } from "../../src/layout/layout.js";
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
  }
  tasks.push(...(await hitTasks(entries, present, ord, o, peers, cleanup)));
  return tasks;
}

/**
 * "LRU lookup hit": htab and lru-cache on maps of their own holding every key
 * looked up (max_entries = entries + NR_CPUS x LRU_LOCAL_FREE_TARGET, the most
 * htab's local lists can hold back); the kernel's map (no tight loop) as
 * filled by the evicting task's peer, its keys re-inserted first.
 */
async function hitTasks(
  entries: number,
  present: Uint32Array,
  ord: Uint32Array,
  o: BenchOptions,
  evictPeers: PointPeer[],
  cleanup: (() => unknown)[],
): Promise<Task[]> {
  const nrCpus = 4;
  const max = entries + nrCpus * LRU_LOCAL_FREE_TARGET;
  const spec = { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: max };
  const htab = htabPeer(htabMap(spec, present, !o.jsPath, nrCpus));
  const lc = await lruCachePeer(present, max);
  cleanup.push(() => htab.close());
  const hits = (p: PointPeer) => (s: number, n: number) => p.lookup(present, ord, s, n);
  // Every key must be there: a miss would make the row a mix of hits and misses.
  for (const p of [htab, lc]) {
    const h = p.lookup(present, ord, 0, ORDER_LEN);
    if (h !== ORDER_LEN)
      throw new Error(`bench LRU lookup hit @${entries}: ${p.name} found ${h} of ${ORDER_LEN} keys`);
  }
  const paired = pairedTight([hits(htab), hits(lc)], o.quick ? 3 : 7);
  const tasks: Task[] = [];
  let sink = 0;
  let hpos = 0;
  for (const [i, p] of [htab, lc].entries())
    tasks.push({
      workload: "LRU lookup hit",
      entries,
      peer: p.name,
      perCall: OPS,
      fn: () => {
        sink += hits(p)(hpos, OPS);
        hpos = (hpos + OPS) & ORDER_MASK;
      },
      tight: () => paired()[i],
    });
  const k = evictPeers.find((p) => p.name === "kernel bpf()");
  if (k !== undefined)
    tasks.push({
      workload: "LRU lookup hit",
      entries,
      peer: k.name,
      perCall: OPS,
      before: () => k.insertStream?.(present, 0, entries),
      fn: () => {
        sink += hits(k)(hpos, OPS);
        hpos = (hpos + OPS) & ORDER_MASK;
      },
    });
  cleanup.push(() => void sink);
  return tasks;
}

/**
 * Tight loops of several peers measured alternately: `rounds` rounds, each
 * timing every loop once (tightNs() of 3 loops); the result per peer is the
 * median over the rounds. Run once, on the first call; later calls return it.
 */
function pairedTight(runs: ((s: number, n: number) => unknown)[], rounds: number): () => number[] {
  let result: number[] | null = null;
  return () => {
    if (result !== null) return result;
    const ns: number[][] = runs.map(() => []);
    for (let r = 0; r < rounds; r++)
      for (let i = 0; i < runs.length; i++) ns[i].push(tightNs(runs[i], ORDER_LEN, 3));
    result = ns.map((a) => a.sort((x, y) => x - y)[a.length >> 1]);
    return result;
  };
}
