/**
 * The README's main example runs as printed: its two files are extracted
 * from the README, written into a project that has this package installed,
 * and run; what they print is what the README says they print.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** The fenced block that follows "`name`:" in the README. */
function block(readme: string, name: string): string {
  const at = readme.indexOf(`\`${name}\`:\n`);
  assert.ok(at >= 0, `README has no ${name}`);
  const m = /```js\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, `README's ${name} has no js block`);
  return m[1];
}

test("the README's main example (main.mjs + worker.mjs) runs as printed and prints what it says", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const dir = mkdtempSync(join(tmpdir(), "htab-readme-"));
  try {
    writeFileSync(
      join(dir, "package.json"),
      JSON.stringify({ name: "example", private: true, type: "module" }),
    );
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(root, join(dir, "node_modules", "htab"), "dir");
    const main = block(readme, "main.mjs");
    writeFileSync(join(dir, "main.mjs"), main);
    writeFileSync(join(dir, "worker.mjs"), block(readme, "worker.mjs"));
    const out = execFileSync(process.execPath, ["main.mjs"], { cwd: dir, encoding: "utf8" })
      .trim()
      .split("\n");
    // Each console.log line says what it prints in a trailing comment: // prints "…".
    const expected = [...main.matchAll(/\/\/ prints "([^"]*)"/g)].map((m) => m[1]);
    assert.equal(expected.length, 3);
    assert.deepEqual(out, expected);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
