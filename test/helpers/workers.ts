import { Worker } from "node:worker_threads";

/** Run `n` workers of `script` with per-worker data; resolve with their single message each. */
export async function runWorkers<T>(
  script: URL,
  n: number,
  data: (i: number) => Record<string, unknown>,
): Promise<T[]> {
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<T>((resolve, reject) => {
          const w = new Worker(script, { workerData: data(i) });
          let result: T | undefined;
          w.once("message", (m: T) => {
            result = m;
          });
          w.once("error", reject);
          w.once("exit", (code) => {
            if (code !== 0 || result === undefined)
              reject(new Error(`worker ${i} exited with ${code} without a result`));
            else resolve(result);
          });
        }),
    ),
  );
}

/** A start barrier: word 0 counts arrivals, word 1 holds how many must arrive. */
export function startBarrier(n: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(8);
  new Int32Array(sab)[1] = n;
  return sab;
}
