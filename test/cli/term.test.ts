/** Terminal output: tables within 100 columns, progress lines that never cut a number, --json, --version. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { conntrackTable, type ModeResult } from "../../src/cli/conntrack.js";
import { Progress, renderTable } from "../../src/cli/term.js";

const bin = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

function result(mode: "delete" | "compare", backend: "sab" | "kernel", big: number): ModeResult {
  return {
    mode,
    backend,
    seconds: 3,
    packets: big * 3,
    newFlows: big,
    refreshes: big,
    mapFull: 0,
    sweeps: 1234,
    expiredDeleted: big,
    liveDeleted: 12345,
    brokenSeen: 6789,
    racesAvoided: 4321,
    memoryBytes: 123456789,
    timeline: [],
  };
}

test("the conntrack table fits 100 columns, right-aligns numbers, has no index column and no quotes", () => {
  const t = conntrackTable([
    result("delete", "sab", 9_999_999),
    result("compare", "sab", 9_999_999),
    result("delete", "kernel", 9_999_999),
  ]);
  const lines = t.split("\n");
  for (const l of lines) assert.ok(l.length <= 100, `${l.length} columns: ${l}`);
  assert.ok(!/['"]/.test(t), "no quoted numbers");
  assert.ok(!/\(index\)/.test(t));
  // Numbers end at the same column as their header (right-aligned).
  const row = lines.find((l) => l.startsWith("delete by key")) as string;
  assert.match(row, /9,999,999/);
  const kernel = lines.find((l) => l.startsWith("kernel, by key "));
  assert.ok(kernel !== undefined, "the kernel row names its backend in the first column");
});

test("renderTable cuts a text column with an ellipsis rather than exceed the width", () => {
  const rows = [{ name: "x".repeat(200), n: 1234567 }];
  const t = renderTable(rows, [
    { header: "name", value: (r) => r.name },
    { header: "n", value: (r) => r.n },
  ]);
  for (const l of t.split("\n")) assert.ok(l.length <= 100);
  assert.match(t, /…/);
  assert.match(t, /1,234,567/);
});

test("a progress line drops labels, then whole fields, but never cuts a number", () => {
  const fields = [
    { label: "pkts/s", value: "1,234,567" },
    { label: "map", value: "32000/32768" },
    { label: "live deleted", value: "12,345" },
  ];
  const wide = Progress.layout("sab/delete-by-key", 0.5, fields, 200);
  assert.match(wide, /pkts\/s 1,234,567 {2}map 32000\/32768 {2}live deleted 12,345/);
  for (let cols = 20; cols < 120; cols++) {
    const line = Progress.layout("sab/delete-by-key", 0.5, fields, cols);
    assert.ok(line.length <= cols, `${cols}: ${line}`);
    for (const f of fields)
      if (line.includes(f.value.slice(0, 3)) && !line.includes("sab/delete-by-key".slice(0, cols)))
        assert.ok(line.includes(f.value), `${cols}: cut ${f.value}`);
    const shown = fields.filter((f) => line.includes(f.value)).length;
    const partial = fields.filter(
      (f) => !line.includes(f.value) && line.includes(f.value.slice(0, 4)),
    ).length;
    assert.equal(partial, 0, `${cols}: a number was cut: ${line}`);
    assert.ok(shown <= fields.length);
  }
});

test("htab --version, and --json results on stdout with nothing else there", { timeout: 60_000 }, () => {
  const v = spawnSync(process.execPath, [bin, "--version"], { encoding: "utf8" });
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+$/);
  const c = spawnSync(
    process.execPath,
    [bin, "conntrack", "--seconds", "0.3", "--workers", "1", "--json", "--no-chart"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(c.status, 0, c.stderr);
  const res = JSON.parse(c.stdout) as ModeResult[];
  assert.deepEqual(
    res.map((r) => r.mode),
    ["delete", "compare"],
  );
  assert.ok(res[0].timeline.length > 0);
  const d = spawnSync(process.execPath, [bin, "demo", "--seconds", "0.3", "--workers", "1", "--json"], {
    encoding: "utf8",
  });
  assert.equal(d.status, 0, d.stderr);
  assert.equal((JSON.parse(d.stdout) as { ok: boolean }).ok, true);
  for (const cmd of ["replay", "demo", "snapshot", "conntrack", "bench"]) {
    const h = spawnSync(process.execPath, [bin, cmd, "--help"], { encoding: "utf8" });
    assert.match(h.stdout, /Examples:\n {2}\S/, `${cmd} --help has an example`);
  }
});

test("piped (not a terminal), a progress line keeps every label, however long it is", () => {
  const written: string[] = [];
  const out = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
  const p = new Progress("sab/compareAndDelete", out, 1);
  const fields = [
    { label: "pkts/s", value: "1,234,567" },
    { label: "map", value: "32768/32768" },
    { label: "live deleted", value: "123,456" },
    { label: "broken", value: "98,765" },
    { label: "sweeps", value: "4,321" },
    { label: "races caught", value: "12,345" },
  ];
  p.update(0.5, fields);
  assert.equal(written.length, 1);
  const line = written[0];
  assert.ok(line.length > 100, "the line is longer than a terminal row");
  for (const f of fields) assert.ok(line.includes(`${f.label} ${f.value}`), `${f.label} lost in: ${line}`);
});

test("conntrack's --help explains every column of its table", () => {
  const r = spawnSync(process.execPath, [bin, "conntrack", "--help"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  for (const col of [
    "GC mode",
    "pkts/s",
    "new flows",
    "GC sweeps",
    "expired deleted",
    "LIVE flows deleted (GC)",
    "broken (datapath)",
    "races caught",
    "map MiB",
    "sab/",
  ])
    assert.ok(r.stdout.includes(col), `--help does not explain "${col}"`);
});
