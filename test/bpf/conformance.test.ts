/**
 * The BPF conformance suite (Alan-Jowett/bpf_conformance, tests/*.data)
 * through `htab prog exec`, judged as the suite's runner judges a plugin at
 * `--cpu_version v4` with the default groups: exit 0 and r0 (hex on stdout)
 * equal to `result`, or a non-zero exit whose stderr equals `error`. Every
 * file runs in-process through the command's function; a few also through
 * the real `htab` binary, to prove the wiring (stdin, argument, exit code).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { progExec } from "../../src/cli/prog-cmd.js";
import { base16, elfOf, inDefaultGroups, parseDataFile } from "./conformance-data.js";

const dir = fileURLToPath(new URL("../../../test/fixtures/bpf/conformance/", import.meta.url));
const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".data"))
  .sort();

/** The runner's verdict on one plugin run. */
function verdict(
  t: NonNullable<ReturnType<typeof parseDataFile>>,
  out: { stdout: string; stderr: string; code: number },
): string | undefined {
  const stdout = out.stdout.replace(/\n$/, "");
  if (out.code !== 0) {
    if (t.error === "") return `plugin exited ${out.code}: ${stdout || out.stderr.trim()}`;
    const got = (stdout || out.stderr).split("\r")[0].replace(/\s+$/, "");
    return got === t.error ? undefined : `error "${got}", expected "${t.error}"`;
  }
  if (!/^[0-9a-fA-F]+$/.test(stdout)) return `r0 "${stdout}" is not hex`;
  const r0 = BigInt(`0x${stdout}`);
  return r0 === t.result ? undefined : `r0 0x${r0.toString(16)}, expected 0x${t.result.toString(16)}`;
}

for (const elf of [false, true])
  test(`the conformance suite at --cpu_version v4, default groups${elf ? ", --elf" : ""}: every test passes`, () => {
    let run = 0;
    let skipped = 0;
    const failed: string[] = [];
    for (const f of files) {
      const t = parseDataFile(readFileSync(dir + f, "utf8"));
      if (t === undefined || !inDefaultGroups(t)) {
        skipped++;
        continue;
      }
      run++;
      const mem = t.memory.length > 0 ? base16(t.memory) : undefined;
      const out = progExec(mem, { elf }, base16(elf ? elfOf(t.code) : t.code));
      const why = verdict(t, out);
      if (why !== undefined) failed.push(`${f}: ${why}`);
    }
    process.stdout.write(
      `# conformance${elf ? " --elf" : ""}: ${run - failed.length} of ${run} passed (${files.length} files, ${skipped} skipped by the default groups)\n`,
    );
    assert.equal(files.length, 313);
    assert.equal(run, 312);
    assert.deepEqual(failed, []);
  });

test("the real htab binary speaks the plugin protocol (stdin, MEMORY argument, exit code)", () => {
  for (const f of ["mem-len.data", "subnet.data", "lock_cmpxchg.data", "rfc9669_call_local.data"]) {
    const t = parseDataFile(readFileSync(dir + f, "utf8"));
    assert.ok(t);
    const args = [cli, "prog", "exec", ...(t.memory.length > 0 ? [base16(t.memory)] : [])];
    const stdout = execFileSync(process.execPath, args, { input: base16(t.code), encoding: "utf8" });
    assert.equal(BigInt(`0x${stdout.trim()}`), t.result, f);
  }
  // The suite's runner puts MEMORY before its plugin options ("prog exec"), and --elf after them.
  const subnet = parseDataFile(readFileSync(`${dir}subnet.data`, "utf8"));
  assert.ok(subnet);
  for (const elf of [false, true]) {
    const argv: string[] = [cli, base16(subnet.memory), "prog", "exec", ...(elf ? ["--elf"] : [])];
    const printed: string = execFileSync(process.execPath, argv, {
      input: base16(elf ? elfOf(subnet.code) : subnet.code),
      encoding: "utf8",
    });
    assert.equal(printed, "1\n");
  }
  // A faulting program: non-zero exit, the error on stderr, nothing on stdout.
  const bad = spawnSync(process.execPath, [cli, "prog", "exec", "01 02"], {
    input: "61 10 08 00 00 00 00 00 95 00 00 00 00 00 00 00",
    encoding: "utf8",
  });
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, "");
  assert.match(bad.stderr, /insn 0 .*out of bounds \(EFAULT\)/);
});

test("the suite's unused-field programs (negative/unused-*.data) are all refused with EINVAL", () => {
  const neg = fileURLToPath(new URL("../../../test/fixtures/bpf/conformance-negative/", import.meta.url));
  const cases = readdirSync(neg).filter((f) => f.endsWith(".data"));
  assert.equal(cases.length, 45);
  const accepted: string[] = [];
  for (const f of cases) {
    const text = readFileSync(neg + f, "utf8");
    const raw = text.split("-- raw")[1].split("-- error")[0];
    const out = progExec(undefined, {}, raw);
    if (out.code === 0 || !/\(EINVAL\)/.test(out.stderr)) accepted.push(`${f}: ${out.stdout || out.stderr}`);
  }
  assert.deepEqual(accepted, []);
});
