/**
 * The kernel's own datapath lookup, as a bench peer: a BPF program (raw
 * instructions, loaded with BPF_PROG_LOAD) does 256 lookups of random present
 * keys per run, `key = bpf_get_prandom_u32() % n`, summing what it finds;
 * BPF_PROG_TEST_RUN repeats it. The same loop without the lookup measures the
 * random-number helper, and the peer reports the difference per lookup: the
 * kernel's hash-map lookup cost from a program, net of its key generation.
 */
import type { KernelMap } from "../../src/kernel/kernel-map.js";
import { asm, Helper, loadProgram, program, R0, R1, R2, R8, R9, R10 } from "../../src/kernel/program.js";

const LOOKUPS_PER_RUN = 256;

/** The loop; with `lookup` false only the helper and the key store (the baseline). */
function loop(map: KernelMap, entries: number, lookup: boolean) {
  const body = [
    asm.call(Helper.getPrandomU32),
    asm.aluImm("mod", R0, entries),
    asm.store("w", R10, -4, R0),
    ...(lookup
      ? [
          asm.mov(R2, R10),
          asm.aluImm("add", R2, -4),
          ...asm.ldMapFd(R1, map),
          asm.call(Helper.mapLookupElem),
          asm.jmpImm("jeq", R0, 0, 2),
          asm.load("dw", R1, R0, 0),
          asm.alu("add", R8, R1),
        ]
      : []),
    asm.aluImm("add", R9, 1),
  ];
  return program(
    asm.movImm(R9, 0),
    asm.movImm(R8, 0),
    body,
    asm.jmpImm("jlt", R9, LOOKUPS_PER_RUN, -(body.length + 1)),
    asm.mov(R0, R8),
    asm.exit(),
  );
}

/**
 * Median ns per lookup over `samples` test runs of `repeat` repetitions, net of
 * the helper loop. `map` must hold keys 0..entries-1 (u32 -> u64).
 */
export function kernelProgramLookupNs(
  map: KernelMap,
  entries: number,
  opts: { repeat: number; samples: number },
): { median: number; samples: number[]; helperNs: number } {
  const withLookup = loadProgram(loop(map, entries, true), { name: "htab_bench_lk" });
  const helperOnly = loadProgram(loop(map, entries, false), { name: "htab_bench_rnd" });
  const packet = new Uint8Array(64);
  try {
    const net: number[] = [];
    const helper: number[] = [];
    for (let i = 0; i < opts.samples; i++) {
      const a = withLookup.testRun(packet, { repeat: opts.repeat }).duration / LOOKUPS_PER_RUN;
      const b = helperOnly.testRun(packet, { repeat: opts.repeat }).duration / LOOKUPS_PER_RUN;
      net.push(Math.max(0, a - b));
      helper.push(b);
    }
    const mid = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
    return { median: mid(net), samples: net, helperNs: mid(helper) };
  } finally {
    withLookup.close();
    helperOnly.close();
  }
}
