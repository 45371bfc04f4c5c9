/**
 * Peers measured outside the harness: the kernel's own datapath lookup (a
 * BPF program under BPF_PROG_TEST_RUN), and postMessage round trips (about
 * 10^4 x slower than the rest: measured alone, with fewer samples).
 */
import { MapType } from "../../src/uapi.js";
import { randomKeys } from "../keys.js";
import type { BenchOptions } from "../options.js";
import { kernelMap } from "../peers/kernel-syscall.js";
import { OwnerMap } from "../peers/message-maps.js";
import type { PointResult } from "../report.js";

/** A point row from raw samples (ns/op). */
function fromSamples(peer: string, entries: number, samples: number[], median?: number): PointResult {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const mean = s.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return {
    workload: "lookup hit",
    entries,
    peer,
    unit: "ns/op",
    stat: {
      median: median ?? s[n >> 1],
      mean,
      p75: s[Math.floor(n * 0.75)],
      p99: s[Math.min(n - 1, Math.floor(n * 0.99))],
      rme: n > 1 ? ((1.96 * sd) / Math.sqrt(n) / mean) * 100 : 0,
      samples: n,
    },
  };
}

/** The kernel's own lookup from a BPF program (bench/peers/kernel-program.ts), net of its key generation. */
export async function kernelProgramPoint(entries: number, o: BenchOptions): Promise<PointResult | null> {
  const keys = new Uint32Array(entries).map((_, i) => i);
  const km = await kernelMap({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: entries }, keys);
  if (km === null) return null;
  const { kernelProgramLookupNs } = await import("../peers/kernel-program.js");
  try {
    const r = kernelProgramLookupNs(km, entries, {
      repeat: entries >= 1_000_000 ? 200 : 2000,
      samples: o.quick ? 5 : 15,
    });
    return fromSamples("kernel BPF program", entries, r.samples, r.median);
  } finally {
    km.close();
  }
}

/** One postMessage round trip to an owner worker's Map, per lookup. */
export async function postMessagePoint(entries: number, o: BenchOptions): Promise<PointResult> {
  const keys = randomKeys(entries, 42 + entries);
  const owner = await OwnerMap.start(keys, entries);
  const n = o.quick ? 500 : 3000;
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await owner.get(keys[i % entries]);
    times.push((performance.now() - t) * 1e6);
  }
  await owner.stop();
  return fromSamples("postMessage owner", entries, times);
}
