/**
 * BPF programs per run on three engines, side by side: the reference
 * interpreter, the wasm compiler (src/bpf/wasm) and the kernel's
 * BPF_PROG_TEST_RUN (XDP programs without callbacks; needs root and
 * clang-19), for every clang fixture; then load-and-compile times for
 * random programs of about 1,000 instructions. Short runs: the machine may
 * be shared. `node dist/bench/bpf-engines.js [repeat]`.
 */
import { ProgType } from "../src/bpf/loader.js";
import { LoadedObject } from "../src/bpf/object.js";
import { compileExec } from "../src/bpf/wasm/exec.js";
import { compileFixture, KernelObject } from "../test/bpf/kernel-object.js";
import { ProgramGen } from "../test/bpf/wasm/gen.js";

const REPEAT = Number(process.argv[2] ?? 200_000);
const FIXTURES = [
  "seed003",
  "globals_calls",
  "map_flags",
  "percpu",
  "pcpu_count",
  "ct_lru",
  "xdp_adjust",
  "xdp_ctx",
  "foreach",
  "loop",
];

function input(type: number): { data: Uint8Array; ctx?: Uint8Array } {
  if (type === ProgType.Xdp) return { data: Uint8Array.from({ length: 64 }, (_, i) => i) };
  const ctx = new Uint8Array(40);
  new DataView(ctx.buffer).setUint32(0, 16, true);
  return { data: new Uint8Array(0), ctx };
}

/** The best of three timed batches, ns per run. */
function best(run: (repeat: number) => number, repeat: number): number {
  run(Math.max(1, repeat >> 4)); // warm up (and let V8 tier up the wasm)
  return Math.min(run(repeat), run(repeat), run(repeat));
}

console.log(`# repeat ${REPEAT}, best of 3 batches`);
const rows: string[][] = [["program", "interpreter ns", "compiled ns", "kernel ns", "compiled/kernel"]];
for (const name of FIXTURES) {
  const bytes = compileFixture(name);
  const interp = LoadedObject.load(bytes, { name, nrCpus: 2, engine: "interpreter" });
  const compiled = LoadedObject.load(bytes, { name, nrCpus: 2, engine: "compiled" });
  for (const p of interp.spec.programs) {
    const inp = input(p.type);
    const ti = best(
      (r) => interp.program(p.name).run(inp.data, { ctx: inp.ctx, repeat: r }).duration,
      REPEAT >> 6,
    );
    const tc = best(
      (r) => compiled.program(p.name).run(inp.data, { ctx: inp.ctx, repeat: r }).duration,
      REPEAT,
    );
    let tk = Number.NaN;
    if (p.type === ProgType.Xdp && process.getuid?.() === 0)
      try {
        const k = new KernelObject(interp.spec, p.name);
        try {
          tk = best((r) => k.prog.testRun(inp.data, { repeat: r }).duration, REPEAT);
        } finally {
          k.close();
        }
      } catch {
        // programs with callbacks need func info: not loaded by the test's minimal kernel side
      }
    rows.push([
      `${name}/${p.name}`,
      ti.toFixed(0),
      tc.toFixed(0),
      Number.isNaN(tk) ? "-" : tk.toFixed(0),
      Number.isNaN(tk) ? "-" : (tc / tk).toFixed(2),
    ]);
  }
}
for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(34) : c.padStart(16))).join(""));

// Load and compile: decode, compile to wasm, instantiate, for programs of ~1,000 instructions.
const times: number[] = [];
let insns = 0;
for (let seed = 1; seed <= 20; seed++) {
  const prog = new ProgramGen(seed, { length: 330, faultRate: 0 }).program();
  insns += prog.length;
  const t0 = performance.now();
  compileExec(prog, new Uint8Array(64));
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
console.log(
  `compile: ${times.length} programs of ${Math.round(insns / times.length)} instructions on average: median ${times[times.length >> 1].toFixed(2)} ms, max ${times[times.length - 1].toFixed(2)} ms`,
);
