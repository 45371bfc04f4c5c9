/**
 * What an LRU map promises once it is over capacity, checked on a recorded
 * history. Linearizability against a plain map does not apply (any key may
 * be evicted at any moment), but two things must still hold for every read:
 * - it returns a value some update or compare-and-swap wrote to that key
 *   (never another key's value: an evicted element reused elsewhere), where
 *   writers are update, compare-and-swap and a compute() that inserts;
 * - no operation that began after that write returned, and returned before
 *   the read began, overwrote or removed the value (eviction only takes keys
 *   away; it never brings an old value back).
 */
import { type Op, OpKind } from "./linearizability.js";

export interface EvictionReport {
  /** Reads that returned a value. */
  reads: number;
  /** Reads that returned a value never written to their key. */
  foreign: number;
  /** Reads that returned a value already overwritten or removed before they began. */
  stale: number;
}

interface Kill {
  call: number;
  ret: number;
}

export function checkEvictionHistory(ops: Op[]): EvictionReport {
  const writes = new Map<string, Op>(); // `${key}:${value}` -> the op that wrote it
  const kills = new Map<number, Kill[]>(); // key -> ops that removed or replaced its value
  const kill = (o: Op) => {
    let list = kills.get(o.key);
    if (list === undefined) kills.set(o.key, (list = []));
    list.push({ call: o.call, ret: o.ret });
  };
  for (const o of ops) {
    const wrote =
      ((o.kind === OpKind.Update || o.kind === OpKind.CompareAndSwap) && o.result === 0) ||
      (o.kind === OpKind.ComputeToggle && o.result === -1); // toggled in: inserted `arg`
    if (wrote) writes.set(`${o.key}:${o.arg}`, o);
    const removed =
      ((o.kind === OpKind.Delete || o.kind === OpKind.CompareAndDelete) && o.result === 0) ||
      (o.kind === OpKind.LookupAndDelete && o.result !== -1) ||
      (o.kind === OpKind.ComputeToggle && o.result >= 0); // toggled out: deleted what it saw
    if (wrote || removed) kill(o);
  }
  // Per key: kills sorted by return, with the latest call among the first i of them.
  const index = new Map<number, { rets: number[]; maxCall: number[] }>();
  for (const [k, list] of kills) {
    list.sort((a, b) => a.ret - b.ret);
    const maxCall: number[] = [];
    let m = -1;
    for (const x of list) maxCall.push((m = Math.max(m, x.call)));
    index.set(k, { rets: list.map((x) => x.ret), maxCall });
  }
  const report: EvictionReport = { reads: 0, foreign: 0, stale: 0 };
  for (const r of ops) {
    const read = r.kind === OpKind.Lookup || r.kind === OpKind.LookupAndDelete;
    if (!read || r.result === -1) continue;
    report.reads++;
    const w = writes.get(`${r.key}:${r.result}`);
    if (w === undefined || w.call > r.ret) {
      report.foreign++;
      continue;
    }
    // Stale: some kill began after w returned and returned before r began.
    const ix = index.get(r.key);
    if (ix === undefined) continue;
    let lo = 0;
    let hi = ix.rets.length; // count of kills with ret < r.call
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ix.rets[mid] < r.call) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0 && ix.maxCall[lo - 1] > w.ret) report.stale++;
  }
  return report;
}
