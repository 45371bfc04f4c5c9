import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { assertLayout, computeGeometry } from "../../src/layout/layout.js";

test("layout assertions hold", () => {
  assertLayout();
});

test("geometry uses the kernel's n_buckets and extra_elems and is smaller than the kernel's elements", () => {
  const g = computeGeometry(4, 8, 1000, 2);
  assert.equal(g.n_buckets, 1024);
  assert.equal(g.extra_elems, 2);
  assert.equal(g.num_elems, 1002);
  assert.equal(g.elem_size, 32); // kernel: 48 + 8 + 8 = 64
  assert.equal(computeGeometry(3, 5, 1, 1).n_buckets, 1);
});

// The folder layout is the architecture: imports point one way only.
const ORDER = [
  "errors.ts",
  "uapi.ts",
  "traits.ts",
  "layout",
  "hash",
  "sync",
  "wasm",
  "alloc",
  "core",
  "check",
  "api",
  "index.ts",
  "kernel",
  "cli",
];
const src = fileURLToPath(new URL("../../../src", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

function rank(path: string): number {
  const top = path.slice(src.length + 1).split("/")[0];
  const r = ORDER.indexOf(top);
  assert.ok(r >= 0, `${top} has no place in the architecture order`);
  return r;
}

test("imports point down the layer order (layout -> hash -> sync -> wasm -> alloc -> core -> api -> kernel -> cli)", () => {
  const bad: string[] = [];
  for (const f of files(src)) {
    for (const m of readFileSync(f, "utf8").matchAll(/from "(\.[^"]+)"/g)) {
      const target = join(f, "..", m[1]).replace(/\.js$/, ".ts");
      if (rank(target) > rank(f)) bad.push(`${f.slice(src.length + 1)} -> ${m[1]}`);
    }
  }
  assert.deepEqual(bad, []);
});

test("the core entry point imports nothing outside the package (no runtime dependency)", () => {
  const core = files(src).filter((f) => !/\/(kernel|cli)\//.test(f));
  for (const f of core) {
    for (const m of readFileSync(f, "utf8").matchAll(/from "([^".][^"]*)"/g))
      assert.fail(`${f} imports ${m[1]}`);
  }
});
