/**
 * One worker of replay's `{"op":"run",…,"workers":N}` (replay-workers.ts):
 * on the SAB backend it attaches the loaded object on the first free CPU
 * slot, runs the program once with `repeat` and gives the slot back; on the
 * kernel backend it runs it on the loader's fds pinned to CPU `index`. Then
 * it writes its outcome into the shared result words and counts itself done.
 */
import { type MessagePort, workerData } from "node:worker_threads";
import { LoadedObject, type ObjectHandle } from "../bpf/object.js";
import { BpfError } from "../errors.js";
import { KernelObject, type KernelObjectHandle } from "../kernel/object.js";

const w = workerData as {
  kernel: boolean;
  handle: ObjectHandle | KernelObjectHandle;
  prog: string;
  data: Uint8Array;
  ctx?: Uint8Array;
  repeat: number;
  index: number;
  words: SharedArrayBuffer;
  port: MessagePort;
};
const i32 = new Int32Array(w.words);
let status = 0;
let retval = 0;
try {
  if (w.kernel) {
    const obj = KernelObject.attach(w.handle as KernelObjectHandle);
    try {
      retval = obj.program(w.prog).run(w.data, { repeat: w.repeat, ctx: w.ctx, cpu: w.index }).retval;
    } finally {
      obj.close();
    }
  } else {
    const obj = LoadedObject.attach(w.handle as ObjectHandle);
    try {
      retval = obj.program(w.prog).run(w.data, { repeat: w.repeat, ctx: w.ctx }).retval;
    } finally {
      obj.close();
    }
  }
} catch (e) {
  status = e instanceof BpfError ? e.errno : -1;
  w.port.postMessage({ index: w.index, message: e instanceof Error ? e.message : String(e) });
}
w.port.close();
Atomics.store(i32, 1 + 2 * w.index, status);
Atomics.store(i32, 2 + 2 * w.index, retval | 0);
Atomics.add(i32, 0, 1);
Atomics.notify(i32, 0);
