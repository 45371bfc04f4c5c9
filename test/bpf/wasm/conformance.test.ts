/**
 * The BPF conformance suite (test/fixtures/bpf/conformance, the 312 tests of
 * the default groups at cpu v4) through the compiler: each test's program
 * compiled to wasm and run with its input memory in the wasm memory; r0 must
 * be the suite's `result`, and a test that expects an error must stop with one.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { encodeInsns } from "../../../src/bpf/isa.js";
import { execRawCompiled } from "../../../src/bpf/wasm/exec.js";
import { BpfError } from "../../../src/errors.js";
import { inDefaultGroups, parseDataFile } from "../conformance-data.js";

const dir = fileURLToPath(new URL("../../../../test/fixtures/bpf/conformance/", import.meta.url));

/** Why the compiled run of `t` fails the suite's verdict, or undefined. */
function judge(t: NonNullable<ReturnType<typeof parseDataFile>>): string | undefined {
  let r0: bigint | undefined;
  try {
    r0 = execRawCompiled(encodeInsns(t.insns), Uint8Array.from(t.memory));
  } catch (e) {
    if (t.error !== "" && e instanceof BpfError) return undefined;
    return (e as Error).message;
  }
  if (t.error !== "") return `expected an error, got r0 0x${r0.toString(16)}`;
  return r0 === t.result ? undefined : `r0 0x${r0.toString(16)}, expected 0x${t.result.toString(16)}`;
}

test("the conformance suite, compiled to wasm: every test of the default groups passes", () => {
  const failed: string[] = [];
  let run = 0;
  let withMemory = 0;
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith(".data"))
    .sort()) {
    const t = parseDataFile(readFileSync(dir + f, "utf8"));
    if (t === undefined || !inDefaultGroups(t)) continue;
    run++;
    if (t.memory.length > 0) withMemory++;
    const why = judge(t);
    if (why !== undefined) failed.push(`${f}: ${why}`);
  }
  process.stdout.write(
    `# conformance compiled: ${run - failed.length} of ${run} passed (${withMemory} with input memory)\n`,
  );
  assert.equal(run, 312);
  assert.deepEqual(failed, []);
});
