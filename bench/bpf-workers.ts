/**
 * N workers, one program: the per-CPU counter (test/fixtures/bpf/pcpu_count.c)
 * run `repeat` times on each of 1 and 2 workers at once, compiled on htab
 * (workers on CPU slots 1..N of one loaded object) and in the kernel
 * (BPF_PROG_TEST_RUN on one loaded object, worker i pinned to CPU i - 1).
 * Throughput is all runs over the span from the first start to the last
 * end (the workers wait at a barrier after warming up); every run's count
 * is checked afterwards: each CPU's slot holds exactly warm-up + repeat.
 * `node dist/bench/bpf-workers.js [repeat]` (needs clang-19; the kernel
 * rows need root and 2 CPUs).
 */
import { Worker } from "node:worker_threads";
import { LoadedObject } from "../src/bpf/object.js";
import { possibleCpus } from "../src/kernel/bpf-syscall.js";
import { KernelObject } from "../src/kernel/object.js";
import { compileFixture } from "../test/bpf/kernel-object.js";

const REPEAT = Number(process.argv[2] ?? 2_000_000);
const WARM = 10_000;
const PROG = "pcpu_count";
const data = Uint8Array.from({ length: 64 }, (_, i) => i);
const bytes = compileFixture(PROG);

interface Done {
  t0: number;
  t1: number;
  retval: number;
}

/** Runs of all `cpus` workers together, per second. */
async function throughput(kernel: boolean, handle: unknown, cpus: number[]): Promise<number> {
  const barrier = new SharedArrayBuffer(8);
  const bar = new Int32Array(barrier);
  const url = new URL("./bpf-worker.js", import.meta.url);
  const done = cpus.map(
    (cpu) =>
      new Promise<Done>((resolve, reject) => {
        const w = new Worker(url, {
          workerData: { kernel, handle, prog: PROG, data, repeat: REPEAT, warm: WARM, cpu, barrier },
        });
        w.once("message", resolve);
        w.once("error", reject);
      }),
  );
  while (Atomics.load(bar, 0) < cpus.length) await new Promise((r) => setTimeout(r, 5));
  Atomics.store(bar, 1, 1);
  Atomics.notify(bar, 1);
  const r = await Promise.all(done);
  for (const d of r)
    if (d.retval !== 2) throw new Error(`a worker's last run answered ${d.retval}, not XDP_PASS`);
  const span = Math.max(...r.map((d) => d.t1)) - Math.min(...r.map((d) => d.t0));
  return (cpus.length * REPEAT) / (span / 1000);
}

/** Every CPU's count: the per-CPU value of key 0, as `lookup` fills it (nr CPUs u64 slots). */
function counts(lookup: (key: Uint8Array, value: Uint8Array) => number, nrCpus: number): bigint[] {
  const v = new Uint8Array(8 * nrCpus);
  if (lookup(new Uint8Array(4), v) !== 0) throw new Error("no counter after the runs");
  const dv = new DataView(v.buffer);
  return Array.from({ length: nrCpus }, (_, c) => dv.getBigUint64(8 * c, true));
}

const rows: string[][] = [["engine", "1 worker (runs/s)", "2 workers (runs/s)", "2 / 1"]];
const expect = (runs: number) => BigInt(runs * (WARM + REPEAT));

// htab: slot 0 is this thread's; one worker on slot 1, then two on slots 1 and 2 (on fresh objects).
const h: number[] = [];
for (const n of [1, 2]) {
  const obj = LoadedObject.load(bytes, { name: PROG, nrCpus: 3 });
  try {
    const cpus = Array.from({ length: n }, (_, i) => i + 1);
    h.push(await throughput(false, obj.handle(), cpus));
    const c = counts((k, v) => obj.map("counts").lookupElem(k, v), 3);
    for (const cpu of cpus)
      if (c[cpu] !== expect(1)) throw new Error(`htab: CPU slot ${cpu} counted ${c[cpu]}, not ${expect(1)}`);
  } finally {
    obj.close();
  }
}
rows.push(["htab compiled", h[0].toFixed(0), h[1].toFixed(0), (h[1] / h[0]).toFixed(2)]);

if (process.getuid?.() === 0 && possibleCpus() >= 2) {
  const k: number[] = [];
  for (const n of [1, 2]) {
    const obj = KernelObject.load(bytes, { name: PROG });
    try {
      const cpus = Array.from({ length: n }, (_, i) => i);
      k.push(await throughput(true, obj.handle(), cpus));
      const nr = possibleCpus();
      const c = counts((key, v) => obj.mapList[0].lookupElem(key, v), nr);
      for (const cpu of cpus)
        if (c[cpu] !== expect(1)) throw new Error(`kernel: CPU ${cpu} counted ${c[cpu]}, not ${expect(1)}`);
    } finally {
      obj.close();
    }
  }
  rows.push(["kernel test_run", k[0].toFixed(0), k[1].toFixed(0), (k[1] / k[0]).toFixed(2)]);
  rows.push(["htab / kernel", (h[0] / k[0]).toFixed(2), (h[1] / k[1]).toFixed(2), ""]);
}
console.log(`# ${PROG}: ${REPEAT} runs per worker after ${WARM} warm-up runs`);
for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(18) : c.padStart(20))).join(""));
