/**
 * Every code block of the README and of docs/ is extracted and run, so that
 * the examples cannot rot. A block's info string says how:
 *
 * - `js`: written into a project that has this package installed (and
 *   `"type": "module"`), run with node; every `// prints "…"` comment must
 *   match its output line, in order. A block that follows "`name.mjs`:" is
 *   written under that name; of those, only main.mjs is run (it starts the
 *   others).
 * - `js kernel`, `sh kernel`: the same, or a bash script with `htab` on the
 *   PATH, when bpf() works here; `/sys/fs/bpf/` is a private bpffs mount.
 * - `replay`: each line is `input  ->  output`; the inputs go through
 *   `htab replay` on each backend and its outputs must be the ones written.
 *   `replay sab`: the same on the SAB backend only (calls the kernel lacks).
 * - `sh`: the set-up commands. Running them here would run `npm test` inside
 *   itself, so they are checked instead: each names a script of package.json,
 *   `npm pack`, or installs a package htab is or declares, or the path of
 *   this version's tarball (`…/htab-<version>.tgz`, what `npm pack` writes).
 * - `js browser`: code for a page, a Web Worker or a bundler's config, which
 *   needs a browser to run (test/browser runs the same pattern in Chromium):
 *   here it must parse as an ES module (`node --check`).
 * - `c`: a BPF program, after "`name.c`:": written into the project and
 *   compiled there with clang-19 (-O2 -g -target bpf) into `name.o`, which
 *   the blocks after it load (skipped, with them, where clang-19 is missing).
 *   `replay` blocks run in the project too, so their "load" lines find it.
 * - `text`: output shown, not code; `mermaid`: a diagram (GitHub draws it).
 *   Any other info string fails.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { clangSkipReason } from "./bpf/kernel-object.js";
import { kernelSkipReason } from "./helpers/kernel.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const cli = join(root, "dist", "src", "cli", "main.js");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  name: string;
  version: string;
  scripts: Record<string, string>;
  peerDependencies?: Record<string, string>;
};

interface Block {
  file: string;
  line: number;
  info: string;
  code: string;
  /** The "`name.mjs`:" label right before the block, if any. */
  name?: string;
  /** The "`name.c`:" label right before a `c` block. */
  cFile?: string;
}

function blocks(file: string): Block[] {
  const text = readFileSync(join(root, file), "utf8");
  const out: Block[] = [];
  const re = /^```([^\n]*)\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const before = text.slice(0, m.index).trimEnd();
    const label = /`([\w.-]+\.mjs)`:$/.exec(before);
    const cLabel = /`([\w.-]+\.c)`:$/.exec(before);
    out.push({
      file,
      line: before.split("\n").length + 1,
      info: m[1].trim(),
      code: m[2],
      name: label?.[1],
      cFile: cLabel?.[1],
    });
  }
  return out;
}

const files = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const all = files.flatMap(blocks);

let project = "";
let bpffs = "";
const kernelSkip = kernelSkipReason();
const clangSkip = clangSkipReason();
/** A block that loads an object a `c` block compiles. */
const usesObject = (code: string) => /"[\w.-]+\.o"|\b[\w-]+\.o\b/.test(code);
const BPFTOOL = ["/usr/sbin/bpftool", "/usr/bin/bpftool"].find((p) => existsSync(p));
if (BPFTOOL === undefined && process.env.HTAB_REQUIRE_BPFTOOL === "1")
  throw new Error("HTAB_REQUIRE_BPFTOOL=1 but bpftool is not installed");

before(() => {
  project = mkdtempSync(join(tmpdir(), "htab-docs-"));
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({ name: "docs", private: true, type: "module" }),
  );
  mkdirSync(join(project, "node_modules"));
  symlinkSync(root, join(project, "node_modules", "htab"), "dir");
  // `htab` on the PATH for shell blocks.
  mkdirSync(join(project, "bin"));
  writeFileSync(join(project, "bin", "htab"), `#!/bin/sh\nexec "${process.execPath}" "${cli}" "$@"\n`);
  chmodSync(join(project, "bin", "htab"), 0o755);
  if (kernelSkip === undefined) {
    bpffs = mkdtempSync(join(tmpdir(), "htab-docs-bpffs-"));
    execFileSync("mount", ["-t", "bpf", "bpf", bpffs]);
  }
});

after(() => {
  if (bpffs !== "") spawnSync("umount", [bpffs]);
  rmSync(project, { recursive: true, force: true });
});

/** What the block says it prints: its `// prints "…"` comments, in order. */
function expectedLines(code: string): string[] {
  return [...code.matchAll(/\/\/ prints "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\"/g, '"'));
}

function runJs(b: Block, file: string, code: string): void {
  writeFileSync(join(project, file), code);
  const r = spawnSync(process.execPath, [file], { cwd: project, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, `${b.file}:${b.line} failed:\n${r.stderr}`);
  const want = expectedLines(code);
  if (want.length > 0) assert.deepEqual(r.stdout.trimEnd().split("\n"), want, `${b.file}:${b.line} printed`);
}

const inPrivateFs = (code: string) => code.replaceAll("/sys/fs/bpf/", `${bpffs}/`);

for (const [i, b] of all.entries()) {
  const where = `${b.file}:${b.line}`;
  const kernel = b.info.endsWith(" kernel");
  const needsClang = b.info === "c" || (b.info !== "text" && usesObject(b.code));
  const skip =
    kernel && kernelSkip !== undefined
      ? kernelSkip
      : needsClang && clangSkip !== undefined
        ? clangSkip
        : false;
  test(`${where}: the \`${b.info || "(none)"}\` block ${b.info === "text" ? "is output" : b.info === "mermaid" ? "is a diagram" : "runs"}`, {
    skip,
  }, () => {
    if (kernel && BPFTOOL === undefined && /bpftool/.test(b.code)) return; // HTAB_REQUIRE_BPFTOOL fails above
    switch (b.info) {
      case "js":
      case "js kernel": {
        if (b.name !== undefined && b.name !== "main.mjs") {
          // Run by main.mjs: the labelled files of one document are one project.
          assert.ok(
            all.some((o) => o.file === b.file && o.name === "main.mjs"),
            `${where}: no main.mjs runs it`,
          );
          return;
        }
        if (b.name === "main.mjs")
          for (const o of all)
            if (o.file === b.file && o.name !== undefined) writeFileSync(join(project, o.name), o.code);
        runJs(b, b.name ?? `block-${i}.mjs`, kernel ? inPrivateFs(b.code) : b.code);
        break;
      }
      case "c": {
        assert.ok(b.cFile !== undefined, `${where}: a c block follows its "\`name.c\`:" label`);
        writeFileSync(join(project, b.cFile), b.code);
        const multiarch =
          spawnSync("gcc", ["-print-multiarch"], { encoding: "utf8" }).stdout?.trim() || "x86_64-linux-gnu";
        const out = b.cFile.replace(/\.c$/, ".o");
        const r = spawnSync(
          "clang-19",
          ["-O2", "-g", "-target", "bpf", `-I/usr/include/${multiarch}`, "-c", b.cFile, "-o", out],
          { cwd: project, encoding: "utf8" },
        );
        assert.equal(r.status, 0, `${where} does not compile:\n${r.stderr}`);
        break;
      }
      case "js browser": {
        const file = join(project, `browser-${i}.mjs`);
        writeFileSync(file, b.code);
        const r = spawnSync(process.execPath, ["--check", file], { encoding: "utf8" });
        assert.equal(r.status, 0, `${where} does not parse:\n${r.stderr}`);
        break;
      }
      case "sh kernel": {
        const r = spawnSync("bash", ["-e", "-o", "pipefail", "-c", inPrivateFs(b.code)], {
          cwd: project,
          encoding: "utf8",
          env: { ...process.env, PATH: `${join(project, "bin")}:${process.env.PATH}` },
        });
        assert.equal(r.status, 0, `${where} failed:\n${r.stdout}\n${r.stderr}`);
        break;
      }
      case "replay":
      case "replay sab": {
        const lines = b.code
          .trimEnd()
          .split("\n")
          .map((l) => l.split(/\s+->\s+/));
        for (const l of lines)
          assert.equal(l.length, 2, `${where}: "${l.join(" -> ")}" is not input -> output`);
        const input = `${lines.map((l) => l[0]).join("\n")}\n`;
        const backends = kernelSkip === undefined && b.info === "replay" ? ["sab", "kernel"] : ["sab"];
        for (const backend of backends) {
          const r = spawnSync(process.execPath, [cli, "replay", "--backend", backend], {
            input,
            cwd: project,
            encoding: "utf8",
          });
          assert.equal(r.status, 0, r.stderr);
          assert.deepEqual(
            r.stdout.trimEnd().split("\n"),
            lines.map((l) => l[1]),
            `${where} on ${backend}`,
          );
        }
        break;
      }
      case "sh": {
        for (const line of b.code
          .split("\n")
          .map((l) => l.replace(/#.*/, "").trim())
          .filter(Boolean)) {
          for (const cmd of line.split("&&").map((c) => c.trim().split(/\s+/))) {
            assert.equal(
              cmd[0],
              "npm",
              `${where}: set-up blocks hold npm commands only, got ${cmd.join(" ")}`,
            );
            if (cmd[1] === "install" || cmd[1] === "i") {
              for (const p of cmd.slice(2))
                assert.ok(
                  p === pkg.name ||
                    pkg.peerDependencies?.[p] !== undefined ||
                    p.endsWith(`/${pkg.name}-${pkg.version}.tgz`),
                  `${where}: ${p} is neither htab, one of its peer dependencies, nor the path of this version's tarball`,
                );
            } else if (cmd[1] === "pack")
              assert.equal(cmd.length, 2, `${where}: npm pack takes no arguments here`);
            else if (cmd[1] === "test" || cmd[1] === "start" || cmd[1] === "run")
              assert.ok(
                pkg.scripts[cmd[1] === "run" ? cmd[2] : cmd[1]],
                `${where}: no script ${cmd.join(" ")}`,
              );
            else assert.fail(`${where}: unexpected npm command ${cmd.join(" ")}`);
          }
        }
        break;
      }
      case "text":
        break;
      case "mermaid":
        assert.match(b.code, /^(flowchart|graph|sequenceDiagram) /, `${where}: not a mermaid diagram`);
        break;
      default:
        assert.fail(
          `${where}: a code block must say how it is run (js, js kernel, js browser, sh, sh kernel, replay, replay sab, c, text, mermaid), got "${b.info}"`,
        );
    }
  });
}

test("the docs have code to run, and README's example is two files run as printed", () => {
  assert.ok(all.filter((b) => b.info.startsWith("js")).length >= 8);
  assert.deepEqual(
    all.filter((b) => b.file === "README.md" && b.name !== undefined).map((b) => b.name),
    ["main.mjs", "worker.mjs"],
  );
});

test("docs/cli.md's conntrack sample has the columns the command prints, and its legend is --help's", async () => {
  const { conntrackTable } = await import("../src/cli/conntrack.js");
  const { CONNTRACK_LEGEND } = await import("../src/cli/conntrack-legend.js");
  const texts = all.filter((b) => b.file === "docs/cli.md" && b.info === "text").map((b) => b.code);
  const sample = texts.find((t) => t.includes("GC mode") && t.includes("────"));
  assert.ok(sample !== undefined, "docs/cli.md shows a conntrack table");
  const result = {
    mode: "delete" as const,
    backend: "sab" as const,
    seconds: 1,
    packets: 1,
    newFlows: 1,
    refreshes: 0,
    mapFull: 0,
    sweeps: 1,
    expiredDeleted: 1,
    liveDeleted: 0,
    brokenSeen: 0,
    racesAvoided: 0,
    memoryBytes: 1 << 20,
    timeline: [],
  };
  // The header: its two lines, split into column titles (the widths follow the numbers).
  const headers = (table: string) =>
    table
      .split("\n")
      .slice(0, 2)
      .map((l) => l.trim().split(/\s{2,}/));
  assert.deepEqual(headers(sample), headers(conntrackTable([result])));
  assert.ok(
    texts.some((t) => t.trimEnd() === CONNTRACK_LEGEND),
    "docs/cli.md shows the legend exactly as htab conntrack --help prints it",
  );
});
