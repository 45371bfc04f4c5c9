/** `npm run bench -- --quick` writes a complete, well-formed report. Timings are never asserted. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { BenchReport } from "../../bench/run.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const run = fileURLToPath(new URL("../../bench/run.js", import.meta.url));

/** The floor of htab's own layout beside htab: both variants, both lookups, harnessed and tight. */
function assertFloorRows(rep: BenchReport, stdout: string): void {
  for (const w of ["lookup hit", "lookup miss"])
    for (const p of ["floor-ordered", "floor-plain"]) {
      for (const x of [w, `${w} (tight loop)`])
        assert.ok(
          rep.points.some((y) => y.workload === x && y.peer === p && y.entries === 1000 && y.stat.median > 0),
          `missing ${x} / ${p}`,
        );
      assert.ok(rep.ratios[`${w} (tight loop) @1k: htab / ${p}`] > 0, `ratio ${w} htab / ${p}`);
      assert.ok(
        !rep.points.some((y) => y.peer === p && !y.workload.startsWith("lookup")),
        `${p} has lookups only`,
      );
    }
  assert.ok(rep.targets?.some((x) => x.target.includes("ordered floor") && x.figure > 0));
  // The Markdown (on stdout) lists htab / floor beside htab / Map.
  assert.match(stdout, /\| htab \/ V8 Map \| htab \/ floor-ordered \| htab \/ floor-plain \|/);
  assert.match(stdout, /\| lookup hit \(tight loop\) \| 1000 \| \d+\.\d{3} \| \d+\.\d{3} \| \d+\.\d{3} \|/);
}

test("bench --quick: the JSON report is well formed and complete", { timeout: 180_000 }, () => {
  const out = mkdtempSync(join(tmpdir(), "htab-bench-"));
  const r = spawnSync(process.execPath, [run, "--quick", "--out", out], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const files = readdirSync(out);
  const json = files.find((f) => f.endsWith(".json"));
  assert.ok(json, "a JSON report was written");
  assert.ok(
    files.some((f) => f.endsWith(".svg")) && files.some((f) => f.endsWith(".png")),
    "chart as SVG and PNG",
  );
  const rep = JSON.parse(readFileSync(join(out, json), "utf8")) as BenchReport;
  assert.equal(rep.quick, true);
  assert.equal(rep.fastPath, true);
  assert.ok(rep.machine.cpus > 0 && rep.node.startsWith("v"));
  const kernel = kernelSkipReason() === undefined;
  const peers = ["V8 Map", "htab", "naive SAB + global lock", "lmdb-js", ...(kernel ? ["kernel bpf()"] : [])];
  for (const w of ["lookup hit", "lookup miss", "update existing", "insert+delete"])
    for (const p of peers)
      assert.ok(
        rep.points.some((x) => x.workload === w && x.peer === p && x.entries === 1000),
        `missing ${w} / ${p}`,
      );
  // Tight-loop rows beside the harnessed ones: the same operations in one plain loop.
  for (const w of ["lookup hit", "update existing", "insert+delete"])
    for (const p of ["V8 Map", "htab"])
      assert.ok(
        rep.points.some((x) => x.workload === `${w} (tight loop)` && x.peer === p && x.stat.median > 0),
        `missing tight loop ${w} / ${p}`,
      );
  assert.ok(rep.ratios["lookup hit (tight loop) @1k: htab / V8 Map"] > 0);
  assertFloorRows(rep, r.stdout);
  for (const w of ["LRU insert, evicting", "LRU lookup hit"])
    for (const p of ["htab", "lru-cache"])
      assert.ok(
        rep.points.some((x) => x.workload === w && x.peer === p),
        `missing ${w} / ${p}`,
      );
  for (const p of ["Atomics request slot", "postMessage owner", "htab TypedMap"])
    assert.ok(
      rep.points.some((x) => x.peer === p),
      `missing peer ${p}`,
    );
  for (const x of rep.points) {
    for (const v of [x.stat.median, x.stat.mean, x.stat.p75, x.stat.p99])
      assert.ok(Number.isFinite(v) && v > 0, `${x.workload}/${x.peer}`);
    assert.ok(x.stat.samples > 0);
  }
  for (const w of [1, 2])
    for (const p of ["htab", "naive SAB + global lock"])
      assert.ok(
        rep.throughput.some((t) => t.peer === p && t.workers === w && t.median > 0),
        `mix ${p} x${w}`,
      );
  assert.ok(rep.throughput.some((t) => t.workload.startsWith("conntrack pattern")));
  assert.ok(rep.memory.length > 0 && rep.memory[0].htabBytesPerEntry > 0);
  if (kernel) {
    assert.ok(
      rep.memory[0].kernelBytesPerEntry! > 0 && rep.ratios["lookup hit @1k: htab / kernel bpf()"] > 0,
    );
    // The kernel's own datapath lookup, from a BPF program, as a peer row.
    assert.ok(
      rep.points.some(
        (x) => x.peer === "kernel BPF program" && x.workload === "lookup hit" && x.stat.median > 0,
      ),
    );
    assert.ok(rep.ratios["lookup hit @1k: htab / kernel BPF program"] > 0);
  }
  assert.ok(rep.ratios["lookup hit @1k: htab / V8 Map"] > 0);
});

test("bench --only lookup: the point lookup rows and nothing else; --only checks its word", {
  timeout: 60_000,
}, () => {
  const out = mkdtempSync(join(tmpdir(), "htab-bench-"));
  const r = spawnSync(process.execPath, [run, "--quick", "--only", "lookup", "--no-chart", "--out", out], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const files = readdirSync(out);
  assert.deepEqual(
    files.filter((f) => f.startsWith("latest")),
    [],
    "a subset run never writes latest.*",
  );
  const json = files.find((f) => f.endsWith("-only-lookup.json"));
  assert.ok(json, `the report is named for its subset: ${files.join(", ")}`);
  const rep = JSON.parse(readFileSync(join(out, json), "utf8")) as BenchReport;
  const workloads = new Set(rep.points.map((x) => x.workload));
  assert.deepEqual([...workloads].sort(), [
    "lookup hit",
    "lookup hit (tight loop)",
    "lookup miss",
    "lookup miss (tight loop)",
  ]);
  for (const p of ["htab", "V8 Map", "floor-ordered", "floor-plain"])
    assert.ok(
      rep.points.some((x) => x.workload === "lookup hit (tight loop)" && x.peer === p),
      `missing ${p}`,
    );
  assert.equal(rep.throughput.length, 0);
  assert.equal(rep.memory.length, 0);
  assert.ok(rep.ratios["lookup hit (tight loop) @1k: htab / floor-ordered"] > 0);
  const bad = spawnSync(process.execPath, [run, "--only", "everything"], { encoding: "utf8" });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--only everything: use one of lookup, lru/);
});

test("bench --only lru: the LRU lookup-hit row runs htab and lru-cache on maps holding every key, tight loops paired", {
  timeout: 60_000,
}, () => {
  const out = mkdtempSync(join(tmpdir(), "htab-bench-"));
  const r = spawnSync(process.execPath, [run, "--quick", "--only", "lru", "--no-chart", "--out", out], {
    encoding: "utf8",
  });
  // The row's maps are checked before timing: a miss stops the run (status != 0).
  assert.equal(r.status, 0, r.stderr);
  const json = readdirSync(out).find((f) => f.endsWith("-only-lru.json"));
  assert.ok(json);
  const rep = JSON.parse(readFileSync(join(out, json), "utf8")) as BenchReport;
  for (const p of ["htab", "lru-cache"])
    for (const w of ["LRU lookup hit", "LRU lookup hit (tight loop)", "LRU insert, evicting (tight loop)"])
      assert.ok(
        rep.points.some((x) => x.workload === w && x.peer === p && x.entries === 1000 && x.stat.median > 0),
        `missing ${w} / ${p}`,
      );
  assert.ok(rep.ratios["LRU lookup hit (tight loop) @1k: htab / lru-cache"] > 0);
});
