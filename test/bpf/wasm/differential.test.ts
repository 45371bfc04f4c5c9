/**
 * The compiler against the interpreter (the oracle) on random well-formed
 * programs (gen.ts): the same r0, the same input memory after the run, or
 * the same error (errno and instruction). HTAB_JIT_DIFF_PROGRAMS sets how
 * many (default 1500); a failure names the seed that reproduces it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { execRaw } from "../../../src/bpf/exec.js";
import { encodeInsns } from "../../../src/bpf/isa.js";
import { compileExec } from "../../../src/bpf/wasm/exec.js";
import { INPUT_BYTES, outcome, ProgramGen, rng } from "./gen.js";

const PROGRAMS = Number(process.env.HTAB_JIT_DIFF_PROGRAMS ?? 1500);

test(`compiled and interpreted runs agree on ${PROGRAMS} random programs (r0, memory, errors)`, () => {
  const diffs: string[] = [];
  const r0s = new Set<string>();
  let faults = 0;
  let insns = 0;
  for (let seed = 1; seed <= PROGRAMS; seed++) {
    const prog = new ProgramGen(seed).program();
    insns += prog.length;
    const rand = rng(seed ^ 0x5eed);
    const input = Uint8Array.from({ length: INPUT_BYTES }, () => Math.floor(rand() * 256));
    const mine = input.slice();
    const interp = outcome(() => execRaw(encodeInsns(prog), mine));
    const { vm, args, input: theirs } = compileExec(prog, input);
    const compiled = outcome(() => vm.run(args));
    if (!interp.startsWith("r0")) faults++;
    if (interp !== compiled) diffs.push(`seed ${seed}: interpreter ${interp}, compiled ${compiled}`);
    if (interp.startsWith("r0")) r0s.add(`${interp} ${Buffer.from(mine).toString("hex")}`);
    if (interp === compiled && interp.startsWith("r0") && Buffer.compare(mine, theirs) !== 0)
      diffs.push(
        `seed ${seed}: memory differs (${Buffer.from(mine).toString("hex")} vs ${Buffer.from(theirs).toString("hex")})`,
      );
  }
  process.stdout.write(
    `# ${PROGRAMS} programs, ${insns} instructions, ${faults} faulted, ${r0s.size} distinct results (r0 and memory), ${diffs.length} differences\n`,
  );
  assert.deepEqual(diffs.slice(0, 10), []);
  assert.ok(faults > 0, "some programs fault");
  assert.ok(r0s.size > PROGRAMS / 2, "the programs compute different things");
});
