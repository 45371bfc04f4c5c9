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
