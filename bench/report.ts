/** The bench report: its rows, the ratios computed from them, and the Markdown table. */
/** Suffix of a row measured in one plain loop, without the harness. */
export const TIGHT = " (tight loop)";

/** The floor peers (bench/peers/floor.ts): htab's layout with nothing around it, ordered and unordered. */
export const FLOOR_ORDERED = "floor-ordered";
export const FLOOR_PLAIN = "floor-plain";

/** The point and LRU workloads: the report lists their htab / peer ratios, the chart draws them. */
export const RATIO_WORKLOADS = [
  "lookup hit",
  "lookup miss",
  "update existing",
  "insert+delete",
  "LRU insert, evicting",
  "LRU lookup hit",
];

export interface Stat {
  median: number;
  mean: number;
  p75: number;
  p99: number;
  rme: number;
  samples: number;
}

export interface PointResult {
  workload: string;
  entries: number;
  peer: string;
  unit: "ns/op";
  stat: Stat;
}

/** The read-heavy mix's control peer: one private V8 Map per worker, nothing shared. */
export const PRIVATE_MAPS = "private V8 Map per worker (nothing shared)";

export interface ThroughputResult {
  workload: string;
  entries: number;
  peer: string;
  workers: number;
  unit: "ops/s";
  median: number;
  min: number;
  max: number;
  reps: number;
}

export interface MemoryResult {
  /** "hash", "percpu_hash" (2 possible CPUs' worth of values), "hash NO_PREALLOC (half full)" */
  type: string;
  entries: number;
  htabBytesPerEntry: number;
  kernelBytesPerEntry: number | null;
  ratio: number | null;
}

/** One of the performance targets (issue: lookup, lookupMany, update, LRU, scaling), met or missed. */
export interface Target {
  target: string;
  /** The figure measured: a ratio of medians from this run. */
  figure: number;
  /** The limit: figure <= limit ("at most"), or >= limit when `atLeast`. */
  limit: number;
  atLeast?: boolean;
  met: boolean;
}

export interface BenchReport {
  date: string;
  quick: boolean;
  /** htab ran the wasm fast path (false with --js-path). */
  fastPath: boolean;
  machine: { cpus: number; model: string; memoryBytes: number; os: string; arch: string };
  node: string;
  points: PointResult[];
  throughput: ThroughputResult[];
  memory: MemoryResult[];
  ratios: Record<string, number>;
  /** The performance targets, each met or missed, from the tight-loop rows and the mix. */
  targets?: Target[];
  skipped: string[];
}

/** Whether htab maps run the wasm fast path (`--js-path` measures the JS path, for before/after runs). */
/** A tinybench latency (ms per call of `perCall` operations) as ns per operation. */
export function stat(
  latencyMs: { p50: number; mean: number; p75: number; p99: number; rme: number; samplesCount: number },
  perCall: number,
): Stat {
  const k = 1e6 / perCall;
  return {
    median: latencyMs.p50 * k,
    mean: latencyMs.mean * k,
    p75: latencyMs.p75 * k,
    p99: latencyMs.p99 * k,
    rme: latencyMs.rme,
    samples: latencyMs.samplesCount,
  };
}

export function median(
  list: PointResult[],
  workload: string,
  entries: number,
  peer: string,
): number | undefined {
  return list.find((p) => p.workload === workload && p.entries === entries && p.peer === peer)?.stat.median;
}

export function computeRatios(rep: BenchReport): Record<string, number> {
  const r: Record<string, number> = {};
  const sizes = [...new Set(rep.points.map((p) => p.entries))];
  for (const n of sizes) {
    const tag = n >= 1_000_000 ? "1M" : n >= 1000 ? `${n / 1000}k` : `${n}`;
    for (const w of RATIO_WORKLOADS.flatMap((x) => [x, `${x}${TIGHT}`])) {
      const h = median(rep.points, w, n, "htab");
      if (h === undefined) continue;
      for (const peer of [
        "V8 Map",
        FLOOR_ORDERED,
        FLOOR_PLAIN,
        "kernel bpf()",
        "kernel BPF program",
        "lmdb-js",
        "naive SAB + global lock",
        "Atomics request slot",
        "postMessage owner",
        "htab lookupRef (program face)",
        "lru-cache",
      ]) {
        const p = median(rep.points, w, n, peer);
        if (p !== undefined) r[`${w} @${tag}: htab / ${peer}`] = h / p;
      }
    }
  }
  for (const n of sizes) {
    const tag = n >= 1_000_000 ? "1M" : n >= 1000 ? `${n / 1000}k` : `${n}`;
    for (const peer of ["htab", "naive SAB + global lock", PRIVATE_MAPS]) {
      const at = (w: number) =>
        rep.throughput.find((t) => t.peer === peer && t.workers === w && t.entries === n)?.median;
      const one = at(1);
      const two = at(2);
      if (one && two) r[`read-heavy mix @${tag}: ${peer} 2 workers / 1 worker`] = two / one;
    }
  }
  for (const m of rep.memory)
    if (m.ratio !== null) r[`memory ${m.type} @${m.entries}: htab / kernel bytes per entry`] = m.ratio;
  return r;
}

export function table(rep: BenchReport): string {
  const lines: string[] = [];
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  lines.push(
    "| workload | entries | peer | median ns/op | p99 | ±rme % | htab / peer |",
    "|---|---|---|---|---|---|---|",
  );
  for (const p of rep.points) {
    const h = median(rep.points, p.workload, p.entries, "htab");
    const ratio = h !== undefined && p.peer !== "htab" ? (h / p.stat.median).toFixed(3) : "";
    lines.push(
      `| ${p.workload} | ${p.entries} | ${p.peer} | ${fmt(p.stat.median)} | ${fmt(p.stat.p99)} | ${p.stat.rme.toFixed(1)} | ${ratio} |`,
    );
  }
  lines.push(
    "",
    "| workload | entries | peer | workers | median ops/s | min | max |",
    "|---|---|---|---|---|---|---|",
  );
  for (const t of rep.throughput)
    lines.push(
      `| ${t.workload} | ${t.entries} | ${t.peer} | ${t.workers} | ${Math.round(t.median).toLocaleString("en-US")} | ${Math.round(t.min).toLocaleString("en-US")} | ${Math.round(t.max).toLocaleString("en-US")} |`,
    );
  lines.push(
    "",
    "| map type | entries | htab bytes/entry | kernel memlock bytes/entry | ratio |",
    "|---|---|---|---|---|",
  );
  for (const m of rep.memory)
    lines.push(
      `| ${m.type} | ${m.entries} | ${m.htabBytesPerEntry.toFixed(1)} | ${m.kernelBytesPerEntry?.toFixed(1) ?? "n/a"} | ${m.ratio?.toFixed(3) ?? "n/a"} |`,
    );
  const floor = floorTable(rep);
  if (floor !== "") lines.push("", floor);
  if (rep.targets?.length) lines.push("", targetTable(rep.targets));
  lines.push("", "| ratio | value |", "|---|---|");
  for (const [k, v] of Object.entries(rep.ratios))
    lines.push(`| ${k} | ${v < 0.01 ? v.toExponential(2) : v.toFixed(3)} |`);
  return lines.join("\n");
}

/**
 * htab's lookup against V8 Map and against the floor of its own layout, side
 * by side (tight-loop rows where measured, else the harnessed ones); "" when
 * the run has no floor rows.
 */
export function floorTable(rep: BenchReport): string {
  const lines = [
    "| workload | entries | htab / V8 Map | htab / floor-ordered | htab / floor-plain | floor-ordered / floor-plain |",
    "|---|---|---|---|---|---|",
  ];
  const fmt = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined ? (a / b).toFixed(3) : "n/a";
  for (const p of rep.points) {
    if (p.peer !== "htab" || !p.workload.startsWith("lookup")) continue;
    const ordered = median(rep.points, p.workload, p.entries, FLOOR_ORDERED);
    const plain = median(rep.points, p.workload, p.entries, FLOOR_PLAIN);
    if (ordered === undefined && plain === undefined) continue;
    const h = p.stat.median;
    lines.push(
      `| ${p.workload} | ${p.entries} | ${fmt(h, median(rep.points, p.workload, p.entries, "V8 Map"))} | ${fmt(h, ordered)} | ${fmt(h, plain)} | ${fmt(ordered, plain)} |`,
    );
  }
  return lines.length > 2 ? lines.join("\n") : "";
}

/** The performance targets from this run's rows; a target whose rows are missing is left out. */
export function computeTargets(rep: BenchReport): Target[] {
  const out: Target[] = [];
  const t = (w: string) => `${w}${TIGHT}`;
  const at = (w: string, n: number, peer: string) => median(rep.points, w, n, peer);
  const add = (
    target: string,
    a: number | undefined,
    b: number | undefined,
    limit: number,
    atLeast = false,
  ) => {
    if (a === undefined || b === undefined) return;
    const figure = a / b;
    out.push({ target, figure, limit, atLeast, met: atLeast ? figure >= limit : figure <= limit });
  };
  const sizes: [number, string][] = [
    [1000, "1k"],
    [1_000_000, "1M"],
  ];
  for (const [n, tag] of sizes) {
    const map = at(t("lookup hit"), n, "V8 Map");
    add(
      `lookup hit @${tag}: htab / V8 Map.get (tight loop)`,
      at(t("lookup hit"), n, "htab"),
      map,
      n >= 1e6 ? 1 : 1.5,
    );
    add(
      `lookup hit @${tag}: htab / the ordered floor of its layout (tight loop)`,
      at(t("lookup hit"), n, "htab"),
      at(t("lookup hit"), n, FLOOR_ORDERED),
      1.2,
    );
    if (n >= 1e6)
      add(
        `lookup hit @${tag}: htab on huge pages / V8 Map.get (tight loop)`,
        at(t("lookup hit"), n, "htab, huge pages"),
        map,
        1,
      );
    add(
      `lookupMany per key @${tag}: htab / V8 Map.get (tight loop)`,
      at(t("lookup hit"), n, "htab lookupMany"),
      map,
      n >= 1e6 ? 0.35 : 0.5,
    );
    if (n >= 1e6)
      add(
        `lookup hit @${tag}: htab / the kernel's BPF-program lookup`,
        at(t("lookup hit"), n, "htab"),
        at("lookup hit", n, "kernel BPF program"),
        1.3,
      );
    add(
      `update existing @${tag}: htab / V8 Map.set (tight loop)`,
      at(t("update existing"), n, "htab"),
      at(t("update existing"), n, "V8 Map"),
      1.5,
    );
    for (const w of ["LRU lookup hit", "LRU insert, evicting"])
      add(`${w} @${tag}: htab / lru-cache (tight loop)`, at(t(w), n, "htab"), at(t(w), n, "lru-cache"), 1.5);
    const mix = (k: number) =>
      rep.throughput.find(
        (x) => x.peer === "htab" && x.workers === k && x.entries === n && x.workload.startsWith("read-heavy"),
      )?.median;
    add(`read-heavy mix @${tag}: htab 2 workers / 1 worker`, mix(2), mix(1), 1.85, true);
  }
  return out;
}

/** The targets as a Markdown table. */
export function targetTable(targets: Target[]): string {
  const lines = ["| target | figure | limit | met |", "|---|---|---|---|"];
  for (const x of targets)
    lines.push(
      `| ${x.target} | ${x.figure.toFixed(3)} | ${x.atLeast ? ">=" : "<="} ${x.limit} | ${x.met ? "met" : "missed"} |`,
    );
  return lines.join("\n");
}
