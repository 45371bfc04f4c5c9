/**
 * Waiting primitives. Atomics.wait blocks a thread, which browsers forbid on
 * their main thread; there htab falls back to spinning.
 *
 * Every wait is bounded: a lock that cannot be taken within LOCK_TIMEOUT_MS
 * fails, as the kernel's resilient queued spinlocks (rqspinlock, 6.15+) fail
 * with ETIMEDOUT after 250 ms. The caller then backs out with nothing changed.
 */

let canBlock: boolean | undefined;
const probe = new Int32Array(new SharedArrayBuffer(4));

/** True when this thread may call Atomics.wait. Decided once per thread. */
export function threadCanBlock(): boolean {
  if (canBlock === undefined) {
    try {
      Atomics.wait(probe, 0, 1, 0);
      canBlock = true;
    } catch {
      canBlock = false;
    }
  }
  return canBlock;
}

/** Spins before a waiter sleeps: long enough to ride out a short critical section. */
export const SPIN_LIMIT = 64;

/**
 * How long a lock waiter waits before it gives up with ETIMEDOUT: the
 * kernel's RES_DEF_TIMEOUT (kernel/bpf/rqspinlock.c, 250 ms since 6.15).
 */
export const LOCK_TIMEOUT_MS = 250;

/** The one ETIMEDOUT message: "timed out after 250 ms waiting for <what>, <holder>". */
export function lockTimeoutText(what: string, holder: string): string {
  return `timed out after ${LOCK_TIMEOUT_MS} ms waiting for ${what}, ${holder}`;
}

/** A monotonic clock in milliseconds (performance.now where it exists). */
export const nowMs: () => number =
  typeof performance !== "undefined" && typeof performance.now === "function"
    ? () => performance.now()
    : () => Date.now();

/** A CPU-friendly pause inside spin loops (JS has no PAUSE; a cheap no-op load will do). */
export function cpuRelax(i32: Int32Array, index: number): void {
  Atomics.load(i32, index);
}

/**
 * What a thread does when a lock it waits for stays taken: the map registers
 * a handler (recover dead slots) for its view. Slow path only.
 */
const stallHandlers = new WeakMap<Int32Array, () => void>();

/** Register `fn` to run when a waiter on `i32` stalls. */
export function setStallHandler(i32: Int32Array, fn: () => void): void {
  stallHandlers.set(i32, fn);
}

/** Waits between stall checks (each up to 1 ms). */
export const STALL_WAITS = 16;

/** Called by waiters every STALL_WAITS waits. */
export function stalled(i32: Int32Array): void {
  stallHandlers.get(i32)?.();
}
