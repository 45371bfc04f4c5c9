/**
 * The core runs in Bun and Deno too (both installed from npm as dev
 * dependencies): the wasm fast path and the JS path give the same results
 * and bytes there, and two Web Workers share one map through the posted
 * handle (a shared WebAssembly.Memory) on the fast path.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const script = fileURLToPath(new URL("../fixtures/runtime-smoke.js", import.meta.url));

for (const [name, args] of [
  ["bun", [script]],
  ["deno", ["run", "--allow-read", script]],
] as const) {
  const bin = `${root}node_modules/.bin/${name}`;
  test(`${name}: fast path and JS path agree; two Web Workers share a map on the fast path`, {
    skip: existsSync(bin) ? false : `${name} is not installed (npm install)`,
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
