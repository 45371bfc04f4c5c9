/**
 * Test helpers for the BPF object tests: compile the C fixtures with
 * clang-19. The kernel side of an object is the kernel backend's own
 * loader (src/kernel/object.ts: KernelObject).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const fixtures = fileURLToPath(new URL("../../../test/fixtures/bpf/", import.meta.url));

/** Why the C fixtures cannot be compiled here, or undefined. Throws under HTAB_REQUIRE_KERNEL=1. */
export function clangSkipReason(): string | undefined {
  const r = spawnSync("clang-19", ["--version"], { encoding: "utf8" });
  if (r.status === 0) return undefined;
  const why = "clang-19 is not installed (Debian: apt-get install clang-19 libbpf-dev)";
  if (process.env.HTAB_REQUIRE_KERNEL === "1") throw new Error(`HTAB_REQUIRE_KERNEL=1 but ${why}`);
  console.log(`# BPF C fixture tests skipped: ${why}`);
  return why;
}

let outDir: string | undefined;

/** Compile test/fixtures/bpf/<name>.c as `clang-19 -O2 -g -target bpf -mcpu=v4 -c` and return the object's bytes. */
export function compileFixture(name: string): Uint8Array {
  outDir ??= mkdtempSync(join(tmpdir(), "htab-bpf-"));
  const out = join(outDir, `${name}.o`);
  const multiarch =
    spawnSync("gcc", ["-print-multiarch"], { encoding: "utf8" }).stdout?.trim() || "x86_64-linux-gnu";
  execFileSync("clang-19", [
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-mcpu=v4",
    `-I/usr/include/${multiarch}`,
    "-c",
    join(fixtures, `${name}.c`),
    "-o",
    out,
  ]);
  return new Uint8Array(readFileSync(out));
}
