/** Arrive at a start barrier made by startBarrier() and wait until everyone has. */
export function awaitStart(sab: SharedArrayBuffer): void {
  const start = new Int32Array(sab);
  Atomics.add(start, 0, 1);
  Atomics.notify(start, 0);
  for (;;) {
    const n = Atomics.load(start, 0);
    if (n >= Atomics.load(start, 1)) return;
    Atomics.wait(start, 0, n, 5);
  }
}
