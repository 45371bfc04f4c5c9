/**
 * Replay's `{"op":"run","prog":P,"data_in":HEX,"repeat":R,"workers":N}`: N
 * worker_threads, each running the program once with `repeat` R, all at the
 * same time over the same maps. On the SAB backend each attaches to the
 * loaded object on a CPU slot of its own (the first free ones: replay's own
 * is slot 0, so slots 1..N); on the kernel backend worker i runs
 * BPF_PROG_TEST_RUN on the loader's fds with its thread pinned to CPU i
 * (N at most the kernel's possible CPUs). Replay is synchronous: the caller's
 * thread waits on a shared done-counter (bounded: WORKERS_TIMEOUT_MS) and
 * reads the workers' return values in worker order.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import { LoadedObject } from "../bpf/object.js";
import { BpfError, Errno, errnoName } from "../errors.js";
import { possibleCpus } from "../kernel/bpf-syscall.js";
import { KernelObject } from "../kernel/object.js";

/** How long replay waits for its workers, all of them together. */
export const WORKERS_TIMEOUT_MS = 120_000;

/**
 * Run program `prog` of `obj` in `n` workers at once; their return values, in worker order.
 * @throws BpfError EOPNOTSUPP for an object not on the SAB backend, EINVAL for n out of
 * 1..(free CPU slots), a worker's own error (naming the worker), ETIMEDOUT after WORKERS_TIMEOUT_MS
 */
export function runInWorkers(
  obj: unknown,
  prog: string,
  n: number,
  input: { data: Uint8Array; ctx?: Uint8Array; repeat: number },
): number[] {
  let handle: unknown;
  let kernel = false;
  if (obj instanceof LoadedObject) {
    const slots = obj.domain.nrCpus - 1;
    if (!Number.isInteger(n) || n < 1 || n > slots)
      throw new BpfError(
        "run",
        Errno.EINVAL,
        `"workers" must be 1..${slots} (one CPU slot each besides replay's own, of ${obj.domain.nrCpus}), got ${n}`,
      );
    handle = obj.handle();
  } else if (obj instanceof KernelObject) {
    const cpus = possibleCpus(); // the kernel backend runs here, where bpf() answers
    if (!Number.isInteger(n) || n < 1 || n > cpus)
      throw new BpfError("run", Errno.EINVAL, `"workers" must be 1..${cpus} (one CPU each), got ${n}`);
    handle = obj.handle();
    kernel = true;
  } else throw new BpfError("run", Errno.EOPNOTSUPP, "workers run objects loaded by replay's load op");
  const words = new SharedArrayBuffer(4 * (1 + 2 * n));
  const i32 = new Int32Array(words);
  const url = new URL("./replay-worker.js", import.meta.url);
  const workers: Worker[] = [];
  const messages = new Map<number, string>();
  const ports: MessagePort[] = [];
  try {
    for (let index = 0; index < n; index++) {
      const { port1, port2 } = new MessageChannel();
      ports.push(port1);
      const w = new Worker(url, {
        workerData: { kernel, handle, prog, ...input, index, words, port: port2 },
        transferList: [port2],
      });
      w.unref();
      workers.push(w);
    }
    waitDone(i32, n);
    drain(ports, messages);
  } catch (e) {
    for (const w of workers) void w.terminate();
    throw e;
  } finally {
    for (const port of ports) port.close();
  }
  return results(i32, n, messages);
}

/** The workers' return values in worker order, or the first worker's error. */
function results(i32: Int32Array, n: number, messages: Map<number, string>): number[] {
  const out: number[] = [];
  for (let index = 0; index < n; index++) {
    const status = i32[1 + 2 * index];
    if (status !== 0) {
      const errno = status > 0 ? status : Errno.EINVAL;
      throw new BpfError(
        "run",
        errno,
        `worker ${index} (${errnoName(errno)}): ${messages.get(index) ?? "failed"}`,
      );
    }
    out.push(i32[2 + 2 * index] >>> 0);
  }
  return out;
}

/** Wait until `n` workers counted themselves done in word 0, bounded by WORKERS_TIMEOUT_MS. */
function waitDone(i32: Int32Array, n: number): void {
  const deadline = performance.now() + WORKERS_TIMEOUT_MS;
  for (let done = Atomics.load(i32, 0); done < n; done = Atomics.load(i32, 0)) {
    const left = deadline - performance.now();
    if (left <= 0)
      throw new BpfError(
        "run",
        Errno.ETIMEDOUT,
        `${n - done} of ${n} workers not done after ${WORKERS_TIMEOUT_MS} ms`,
      );
    Atomics.wait(i32, 0, done, left);
  }
}

/** The workers' error messages (each port holds at most one). */
function drain(ports: readonly MessagePort[], messages: Map<number, string>): void {
  ports.forEach((port, index) => {
    const m = receiveMessageOnPort(port);
    if (m !== undefined) messages.set(index, (m.message as { message: string }).message);
  });
}
