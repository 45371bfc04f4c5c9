/** Whole-map walks: get_next_key per key and lookup_batch per element (htab, kernel), and Map iteration. */
import type { RawMap } from "../../src/map/raw-map.js";
import { MapType } from "../../src/uapi.js";
import { randomKeys } from "../keys.js";
import type { BenchOptions } from "../options.js";
import { htabMap } from "../peers/htab.js";
import { kernelMap } from "../peers/kernel-syscall.js";
import type { Task } from "./task.js";

function walk(m: RawMap): () => number {
  // Two buffers, alternating: the key passed in must not be the one written.
  const bufs = [new Uint8Array(4), new Uint8Array(4)];
  return () => {
    let prev: Uint8Array | null = null;
    let n = 0;
    while (m.getNextKey(prev, bufs[n & 1]) === 0) {
      prev = bufs[n & 1];
      n++;
    }
    return n;
  };
}

function batch(m: RawMap): () => number {
  const keys = new Uint8Array(4096 * 4);
  const values = new Uint8Array(4096 * 8);
  return () => {
    let cursor: number | null = null;
    let n = 0;
    for (;;) {
      const r = m.lookupBatch({ inBatch: cursor, count: 4096, keys, values });
      n += r.count;
      if (r.err !== 0 || r.outBatch === null) return n;
      cursor = r.outBatch;
    }
  };
}

export async function walkTasks(
  entries: number,
  o: BenchOptions,
  cleanup: (() => unknown)[],
): Promise<Task[]> {
  const keys = randomKeys(entries, 99 + entries);
  const spec = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries };
  const vm = new Map<number, bigint>();
  for (let i = 0; i < entries; i++) vm.set(keys[i], 1n);
  const h = htabMap(spec, keys, !o.jsPath, 2);
  cleanup.push(() => h.close());
  // Whole-map walks are long calls: a few samples are enough.
  const iterations = entries >= 100_000 ? 4 : 32;
  const t = (workload: string, peer: string, fn: () => unknown): Task => ({
    workload,
    entries,
    peer,
    fn,
    perCall: entries,
    iterations,
  });
  const tasks = [
    t("full walk: get_next_key", "htab", walk(h)),
    t("full walk: lookup_batch", "htab", batch(h)),
    t("full walk: iterate", "V8 Map", () => {
      let n = 0;
      for (const _ of vm) n++;
      return n;
    }),
  ];
  const km = await kernelMap(spec, keys);
  if (km !== null) {
    cleanup.push(() => km.close());
    tasks.push(t("full walk: get_next_key", "kernel bpf()", walk(km)));
    tasks.push(t("full walk: lookup_batch", "kernel bpf()", batch(km)));
  }
  return tasks;
}
