/**
 * One worker of bench/bpf-workers.ts: attach the object (htab: CPU slot
 * `cpu`; kernel: the loader's fds, each run pinned to CPU `cpu`), warm up,
 * wait at the barrier, run the program `repeat` times in one call, and post
 * when that call started and ended (ms since the epoch, comparable across
 * threads) and its retval.
 */
import { parentPort, workerData } from "node:worker_threads";
import { LoadedObject, type ObjectHandle } from "../src/bpf/object.js";
import { KernelObject, type KernelObjectHandle } from "../src/kernel/object.js";

const w = workerData as {
  kernel: boolean;
  handle: ObjectHandle | KernelObjectHandle;
  prog: string;
  data: Uint8Array;
  repeat: number;
  warm: number;
  cpu: number;
  barrier: SharedArrayBuffer;
};
const bar = new Int32Array(w.barrier);
const obj = w.kernel
  ? KernelObject.attach(w.handle as KernelObjectHandle)
  : LoadedObject.attach(w.handle as ObjectHandle, { cpu: w.cpu });
try {
  const prog = obj.program(w.prog);
  const run = (repeat: number) =>
    w.kernel ? prog.run(w.data, { repeat, cpu: w.cpu }) : prog.run(w.data, { repeat });
  run(w.warm);
  Atomics.add(bar, 0, 1);
  Atomics.notify(bar, 0);
  Atomics.wait(bar, 1, 0);
  const t0 = performance.timeOrigin + performance.now();
  const r = run(w.repeat);
  const t1 = performance.timeOrigin + performance.now();
  parentPort?.postMessage({ t0, t1, retval: r.retval });
} finally {
  obj.close();
}
