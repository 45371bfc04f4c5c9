/**
 * docs/api/ is the API reference TypeDoc generates from the TSDoc
 * (`npm run docs:api`, typedoc.json). Every runtime export of every entry
 * point of package.json's `exports` must be in it, and the committed pages
 * must be what the sources generate now: that check regenerates the
 * reference into a temporary directory (about 20 s here) and runs only
 * where TypeDoc is installed (a devDependency; `HTAB_TYPEDOC` may name its
 * CLI instead), otherwise it is skipped with the reason.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  name: string;
  exports: Record<string, string | { default: string }>;
};
const API = join(root, "docs", "api");

/** The entry points: import specifier, built file, and its page of the reference. */
const entries = Object.entries(pkg.exports)
  .filter(([sub]) => sub !== "./package.json")
  .map(([sub, target]) => {
    const name = sub === "." ? pkg.name : `${pkg.name}/${sub.slice(2)}`;
    const file = typeof target === "string" ? target : target.default;
    const page = name === pkg.name ? join(API, pkg.name, "README.md") : join(API, `${name}.md`);
    return { name, file: join(root, file), page };
  });

/** A heading of `name` in a page (TypeDoc escapes `_` and adds `()` to functions). */
function hasHeading(page: string, name: string): boolean {
  const esc = name.replaceAll("_", "\\_");
  return new RegExp(`^#{2,4} ${esc.replace(/[$\\]/g, "\\$&")}(\\(\\))?$`, "m").test(page);
}

test("package.json has entry points, and the reference's index links each one's page", () => {
  assert.ok(entries.length >= 2);
  const index = readFileSync(join(API, "README.md"), "utf8");
  for (const e of entries) {
    assert.ok(existsSync(e.page), `${e.name}: no page ${relative(root, e.page)} (run npm run docs:api)`);
    assert.ok(index.includes(`(${relative(API, e.page)})`), `docs/api/README.md does not link ${e.name}`);
  }
});

for (const e of entries)
  test(`every runtime export of ${e.name} is in the API reference`, async () => {
    const mod = (await import(pathToFileURL(e.file).href)) as Record<string, unknown>;
    const page = readFileSync(e.page, "utf8");
    const names = Object.keys(mod);
    assert.ok(names.length > 5, `${e.name} exports ${names.length} names`);
    const missing: string[] = [];
    for (const n of names) {
      const v = mod[n];
      // A namespace (codecs): a link to its own page, which has each of its members.
      if (v !== null && typeof v === "object" && Object.prototype.toString.call(v) === "[object Module]") {
        const sub = join(API, e.name, "namespaces", `${n}.md`);
        assert.ok(page.includes(`[${n}](namespaces/${n}.md)`), `${e.name}: namespace ${n} is not linked`);
        assert.ok(existsSync(sub), `${e.name}: namespace ${n} has no page`);
        const text = readFileSync(sub, "utf8");
        for (const m of Object.keys(v)) if (!hasHeading(text, m)) missing.push(`${n}.${m}`);
      } else if (!hasHeading(page, n)) missing.push(n);
    }
    assert.deepEqual(missing, [], `${e.name}: not in ${relative(root, e.page)}; run npm run docs:api`);
  });

/** TypeDoc's CLI: HTAB_TYPEDOC, or the installed devDependency; undefined when neither is here. */
function typedocCli(): string | undefined {
  if (process.env.HTAB_TYPEDOC) return process.env.HTAB_TYPEDOC;
  try {
    const req = createRequire(join(root, "package.json"));
    const dir = join(req.resolve("typedoc/package.json"), "..");
    req.resolve("typedoc-plugin-markdown"); // its package.json is not exported
    return join(dir, "bin", "typedoc");
  } catch {
    return undefined;
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
}

const cli = typedocCli();
test("the committed reference is what the sources generate now (not stale)", {
  skip: cli === undefined ? "typedoc is not installed here (npm install, or HTAB_TYPEDOC=<its CLI>)" : false,
}, () => {
  const out = mkdtempSync(join(tmpdir(), "htab-api-"));
  try {
    const r = spawnSync(process.execPath, [cli as string, "--out", out, "--logLevel", "Error"], {
      cwd: root,
      encoding: "utf8",
      timeout: 300_000,
    });
    assert.equal(r.status, 0, `typedoc failed:\n${r.stdout}\n${r.stderr}`);
    const fresh = filesUnder(out);
    assert.deepEqual(filesUnder(API), fresh, "the reference's pages differ: run npm run docs:api");
    for (const f of fresh)
      assert.equal(
        readFileSync(join(API, f), "utf8"),
        readFileSync(join(out, f), "utf8"),
        `docs/api/${f} is stale: run npm run docs:api`,
      );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
