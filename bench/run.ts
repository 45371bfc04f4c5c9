/**
 * `npm run bench` / `htab bench`: htab against the alternatives a user would
 * pick, side by side in one process run, reported as ratios. Absolute times
 * on a shared 2-core machine are noise; the ratios are the result.
 *
 * This file is the orchestration: which workloads run at which sizes, the
 * measurement loop, and the files written. Peers live in bench/peers/ (one
 * file each, the same workload functions), workloads in bench/workloads/
 * (each written once for every peer), the report in report.ts.
 *
 * Writes bench/results/<date>.json (+ .svg, .png; <date>-js-path.json with --js-path) and,
 * for a full fast-path run, latest.{json,svg,png,md}.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { arch, cpus, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Bench } from "tinybench";
import { runConntrack } from "../src/cli/conntrack.js";
import { Progress } from "../src/cli/term.js";
import { chart } from "./chart.js";
import { loadKernel } from "./keys.js";
import { type BenchOptions, parseBenchArgs } from "./options.js";
import { type BenchReport, computeRatios, computeTargets, stat, TIGHT, table } from "./report.js";
import { kernelProgramPoint, postMessagePoint } from "./workloads/latency.js";
import { lruTasks } from "./workloads/lru.js";
import { memory } from "./workloads/memory.js";
import { mixThroughput } from "./workloads/mix.js";
import { pointTasks } from "./workloads/point.js";
import type { Task } from "./workloads/task.js";
import { walkTasks } from "./workloads/walk.js";
import { wideTasks } from "./workloads/wide.js";

export type { BenchReport } from "./report.js";

/** Measure one task with tinybench (and its tight loop, if it has one); push its rows. */
async function measure(t: Task, o: BenchOptions, rep: BenchReport): Promise<void> {
  t.before?.();
  const b = new Bench({
    time: t.iterations ? 0 : o.quick ? 60 : 400,
    iterations: t.iterations ?? 16,
    warmup: true,
    warmupTime: o.quick ? 20 : 100,
    warmupIterations: t.iterations ? 1 : 16,
  });
  b.add(t.peer, t.fn);
  await b.run();
  const res = b.tasks[0].result;
  if (res.state !== "completed") throw new Error(`bench ${t.workload} ${t.peer}: ${res.state}`);
  const s = stat(res.latency, t.perCall);
  rep.points.push({ workload: t.workload, entries: t.entries, peer: t.peer, unit: "ns/op", stat: s });
  if (t.tight) {
    t.before?.();
    const ns = t.tight();
    rep.points.push({
      workload: `${t.workload}${TIGHT}`,
      entries: t.entries,
      peer: t.peer,
      unit: "ns/op",
      stat: { median: ns, mean: ns, p75: ns, p99: ns, rme: 0, samples: o.quick ? 5 : 15 },
    });
  }
}

/** The conntrack pattern (htab, and the kernel's map where bpf() works) as throughput rows. */
async function conntrackRows(
  o: BenchOptions,
  rep: BenchReport,
  step: (n: number, task: string) => void,
): Promise<void> {
  step(0, "conntrack pattern");
  const ct = await runConntrack({
    seconds: o.quick ? 0.8 : 2,
    workers: 1,
    flows: 20000,
    mapSize: 32768,
    timeoutMs: 20,
    kernel: false,
    quiet: true,
  });
  step(1, "");
  const kern = await loadKernel();
  const ctk = kern
    ? await runConntrack({
        seconds: o.quick ? 0.8 : 2,
        workers: 1,
        flows: 20000,
        mapSize: 32768,
        timeoutMs: 20,
        kernel: true,
        quiet: true,
      })
    : null;
  step(1, "");
  for (const r of [...ct, ...(ctk ?? [])].filter((x) => !x.skipped))
    rep.throughput.push({
      workload: `conntrack pattern (GC: ${r.mode === "delete" ? "delete by key" : "compareAndDelete"})`,
      entries: 32768,
      peer: r.backend === "sab" ? "htab" : "kernel bpf()",
      workers: 1,
      unit: "ops/s",
      median: r.packets / r.seconds,
      min: r.packets / r.seconds,
      max: r.packets / r.seconds,
      reps: 1,
    });
}

/** The measured tasks at `n` entries: every workload's, or those of the `--only` subset. */
async function tasksAt(
  n: number,
  o: BenchOptions,
  skipped: string[],
  cleanup: (() => unknown)[],
): Promise<Task[]> {
  const all = o.only === null;
  const tasks: Task[] = [];
  if (all || o.only === "lookup") tasks.push(...(await pointTasks(n, o, skipped, cleanup)));
  if (all && n <= 1000) tasks.push(...wideTasks(n, o, cleanup));
  if (all) tasks.push(...(await walkTasks(n, o, cleanup)));
  if (all || o.only === "lru") tasks.push(...(await lruTasks(n, o, cleanup)));
  return tasks;
}

/** Run the bench with options `o` (see options.ts); returns the report it wrote. */
export async function runBenchWith(o: BenchOptions): Promise<BenchReport> {
  const sizes = o.quick ? [1000] : [1000, 1_000_000];
  const rep: BenchReport = {
    date: new Date().toISOString(),
    quick: o.quick,
    fastPath: !o.jsPath,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? "unknown",
      memoryBytes: totalmem(),
      os: `${platform()} ${release()}`,
      arch: arch(),
    },
    node: process.version,
    points: [],
    throughput: [],
    memory: [],
    ratios: {},
    skipped: [],
  };
  const cleanup: (() => unknown)[] = [];
  const tasks: Task[] = [];
  const all = o.only === null;
  for (const n of sizes) tasks.push(...(await tasksAt(n, o, rep.skipped, cleanup)));
  const total = tasks.length + (all ? sizes.length * 2 + 2 : 0);
  // One progress line on stderr: the bench's own output (the report) stays clean.
  let doneTasks = 0;
  const progress = new Progress("bench", process.stderr, 10_000);
  const step = (n: number, task: string) => {
    doneTasks += n;
    progress.update(doneTasks / total, [
      { label: "", value: `${doneTasks}/${total}` },
      { label: "", value: task },
    ]);
  };
  for (const t of tasks) {
    step(0, `${t.workload} @${t.entries} ${t.peer}`);
    await measure(t, o, rep);
    step(1, "");
  }
  if (o.only === "mix")
    for (const n of sizes) {
      step(0, `read-heavy mix @${n}`);
      rep.throughput.push(...(await mixThroughput(n, o)));
    }
  for (const n of all ? sizes : []) {
    step(0, `kernel BPF program @${n}`);
    const kp = await kernelProgramPoint(n, o);
    if (kp) rep.points.push(kp);
    else rep.skipped.push("kernel BPF program: bpf() is not usable here");
    step(0, `postMessage @${n}`);
    rep.points.push(await postMessagePoint(n, o));
    step(1, `read-heavy mix @${n}`);
    rep.throughput.push(...(await mixThroughput(n, o)));
    step(1, "");
    rep.memory.push(...(await memory(n, o)));
  }
  if (all) await conntrackRows(o, rep, step);
  progress.stop();
  for (const c of cleanup.reverse()) await c();
  rep.ratios = computeRatios(rep);
  rep.targets = computeTargets(rep);
  mkdirSync(o.out, { recursive: true });
  const stamp = rep.date.replace(/[:]/g, "-").replace(/\..+/, "");
  const base = join(
    o.out,
    `${stamp}${o.quick ? "-quick" : ""}${o.jsPath ? "-js-path" : ""}${all ? "" : `-only-${o.only}`}`,
  );
  writeFileSync(`${base}.json`, `${JSON.stringify(rep, null, 2)}\n`);
  const md = table(rep);
  const log = o.json ? (s: string) => process.stderr.write(`${s}\n`) : (s: string) => console.log(s);
  log(`\n${md}\n`);
  const images = o.chart ? await chart(rep, base) : [];
  // latest.* is the full fast-path run the docs cite; a JS-path or subset run keeps its own file only.
  if (!o.quick && !o.jsPath && all) {
    writeFileSync(join(o.out, "latest.json"), `${JSON.stringify(rep, null, 2)}\n`);
    writeFileSync(join(o.out, "latest.md"), `${md}\n`);
    if (images.length) await chart(rep, join(o.out, "latest"));
  }
  if (rep.skipped.length) log(`skipped: ${rep.skipped.join("; ")}`);
  log(`wrote ${base}.json${images.length ? `, ${images.join(", ")}` : ""}`);
  if (o.json) process.stdout.write(`${JSON.stringify(rep)}\n`);
  return rep;
}

/** `npm run bench -- <args>`. */
export function runBench(argv: string[]): Promise<BenchReport> {
  return runBenchWith(parseBenchArgs(argv));
}

/**
 * Re-render a saved report with the current code: ratios, table (<file>.md)
 * and chart. `node dist/bench/run.js --chart-only report.json`. Measures nothing.
 */
async function chartOnly(file: string): Promise<void> {
  const { readFileSync } = await import("node:fs");
  const rep = JSON.parse(readFileSync(file, "utf8")) as BenchReport;
  rep.ratios = computeRatios(rep);
  rep.targets = computeTargets(rep);
  const base = file.replace(/\.json$/, "");
  writeFileSync(file, `${JSON.stringify(rep, null, 2)}\n`);
  writeFileSync(`${base}.md`, `${table(rep)}\n`);
  console.log((await chart(rep, base)).join(", "));
}

if (
  process.argv[1] &&
  fileURLToPath(import.meta.url) === process.argv[1] &&
  process.argv[2] === "--chart-only"
) {
  chartOnly(process.argv[3]).catch((e) => {
    console.error(`bench: ${(e as Error).message}`);
    process.exitCode = 1;
  });
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runBench(process.argv.slice(2)).catch((e) => {
    console.error(`bench: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  });
}
