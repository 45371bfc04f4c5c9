/**
 * The core runs in Bun and Deno too: the wasm fast path and the JS path give
 * the same results and bytes there, and two Web Workers share one map
 * through the posted handle (a shared WebAssembly.Memory) on the fast path.
 *
 * Bun and Deno are not dependencies of the project (a plain `npm install`
 * does not fetch them, about 200 MB): this test uses the one on the PATH,
 * or installs it from npm into a cache directory of its own
 * (`$HTAB_RUNTIMES_DIR/<name>`, default `<tmpdir>/htab-runtimes/<name>`) with
 * `npm install --no-save`, once. Where neither works (no registry) it is
 * skipped with the reason.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../fixtures/runtime-smoke.js", import.meta.url));
/** The versions this test is known to pass with. */
const PACKAGES = { bun: "bun@^1.4.5", deno: "deno@^2.9.6" } as const;
const cache = process.env.HTAB_RUNTIMES_DIR ?? join(tmpdir(), "htab-runtimes");

/** The runtime's executable, or why there is none. */
function runtime(name: keyof typeof PACKAGES): { bin: string } | { skip: string } {
  if (spawnSync(name, ["--version"], { encoding: "utf8" }).status === 0) return { bin: name };
  // One directory per runtime: an install with --no-save prunes what it was not asked for.
  const dir = join(cache, name);
  const bin = join(dir, "node_modules", ".bin", name);
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const r = spawnSync(
      "npm",
      [
        "install",
        "--no-save",
        "--no-audit",
        "--no-fund",
        "--fetch-retries=1",
        "--fetch-timeout=30000",
        "--prefix",
        dir,
        PACKAGES[name],
      ],
      { encoding: "utf8", timeout: 300_000 },
    );
    if (r.status !== 0 || !existsSync(bin)) {
      const lines = `${r.stderr ?? ""}\n${r.error?.message ?? ""}`.split("\n").filter((l) => l.trim() !== "");
      const why =
        lines.find((l) => /npm error (code|errno|network|request)/.test(l)) ?? lines[0] ?? "no output";
      return { skip: `${name} is not on the PATH and npm could not install ${PACKAGES[name]} (${why})` };
    }
  }
  return spawnSync(bin, ["--version"], { encoding: "utf8" }).status === 0
    ? { bin }
    : { skip: `${bin} does not run` };
}

for (const [name, args] of [
  ["bun", [script]],
  ["deno", ["run", "--allow-read", script]],
] as const) {
  const found = runtime(name);
  const bin = "bin" in found ? found.bin : "";
  test(`${name}: fast path and JS path agree; two Web Workers share a map on the fast path`, {
    skip: "skip" in found ? found.skip : false,
    timeout: 120_000,
  }, () => {
    const out =
      execFileSync(bin, [...args], { encoding: "utf8", timeout: 110_000 })
        .trim()
        .split("\n")
        .pop() ?? "";
    const r = JSON.parse(out) as {
      runtime: string;
      single: { fastPath: boolean; count: number; sum: number; order: string; fsck: boolean }[];
      sameState: boolean;
      main: boolean;
      workers: { fastPath: boolean; fails: number; ops: number }[];
      count: number;
      fsck: boolean;
    };
    console.log(`# ${name}: ${JSON.stringify({ ...r, single: r.single.map(({ order: _o, ...s }) => s) })}`);
    assert.equal(r.runtime, name);
    assert.deepEqual(
      r.single.map((s) => s.fastPath),
      [true, false],
      "one map on each path",
    );
    for (const s of r.single) {
      assert.equal(s.count, 25);
      assert.equal(s.sum, 625); // the odd keys 1..49
      assert.ok(s.fsck);
    }
    assert.equal(r.single[0].order, r.single[1].order, "same get_next_key order");
    assert.ok(r.sameState, "same bytes on either path");
    assert.ok(r.main, "the shared map has the fast path");
    assert.equal(r.workers.length, 2);
    for (const w of r.workers) {
      assert.ok(w.fastPath, "the worker attached on the fast path");
      assert.equal(w.fails, 0);
    }
    assert.equal(r.count, 0, "every key was deleted in the last round");
    assert.ok(r.fsck);
  });
}
