/** A measured unit: one call runs `perCall` operations of one workload on one peer. */
export interface Task {
  workload: string;
  entries: number;
  peer: string;
  fn: () => unknown;
  /** Operations per call (the report divides by it). */
  perCall: number;
  /** Fixed sample count for long calls (whole-map walks); else the time budget decides. */
  iterations?: number;
  /** Runs once before the task is measured (for example: refill a map another task emptied). */
  before?: () => void;
  /** The same operations timed in one plain loop, no harness: ns/op of `tightOps` operations. */
  tight?: () => number;
}

/** Operations per harnessed call, so that the harness's own cost is amortised. */
export const OPS = 256;

/** Run `ops` operations in one loop `reps` times; the median ns per operation. */
export function tightNs(run: (pos: number, n: number) => unknown, ops: number, reps: number): number {
  run(0, ops); // warm: compiled, caches filled
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    run((r * 977) & 0xffff, ops);
    t.push(((performance.now() - t0) * 1e6) / ops);
  }
  t.sort((a, b) => a - b);
  return t[t.length >> 1];
}
