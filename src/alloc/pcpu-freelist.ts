/**
 * Per-CPU freelists of preallocated elements (kernel: percpu_freelist.c).
 * Each CPU slot has a list head guarded by its own small lock; a CPU pushes
 * to its own list and pops from its own first, then steals from the others
 * in CPU order.
 *
 * Lock order: bucket lock -> freelist lock. A freelist lock is never held
 * while taking any other lock.
 *
 * Bounded waits: a pop skips a list whose lock it could not take within
 * LOCK_TIMEOUT_MS and reports FREELIST_TIMEDOUT when that left it with
 * nothing; a push (the element is already off its chain and must be filed)
 * goes to the next CPU's list instead, so a dead holder of one list's lock
 * delays it by one timeout, not for ever.
 *
 * Crash safety: an element between a list and a chain is recorded in its
 * owner's INFLIGHT word: set under the lock before a pop unlinks it, cleared
 * under the lock after a push links it. A half-done push or pop therefore
 * never loses an element (see Htab.recover()).
 */

import {
  ELEM_FNEXT_I32,
  headerNrCpus,
  PCPU_FL_HEAD_I32,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  pcpuBase,
} from "../layout/layout.js";
import { lockAcquire, lockRelease } from "../sync/owner-lock.js";
import { stalled } from "../sync/spin.js";

/** pcpuFreelistPop(): every list with elements had its lock held past LOCK_TIMEOUT_MS. */
export const FREELIST_TIMEDOUT = -1;

/**
 * Push element `e` (word index) onto `cpu`'s list, or onto the next list
 * whose lock can be had. Kernel: __pcpu_freelist_push() (which, since the
 * rqspinlock conversion, also moves on to another CPU's list).
 */
export function pcpuFreelistPush(i32: Int32Array, cpu: number, e: number): void {
  const mine = pcpuBase(cpu);
  for (let c = cpu; ; c = c + 1 >= headerNrCpus(i32) ? 0 : c + 1) {
    const p = pcpuBase(c);
    if (!lockAcquire(i32, p + PCPU_FL_LOCK_I32, cpu)) {
      stalled(i32);
      continue;
    }
    i32[e + ELEM_FNEXT_I32] = i32[p + PCPU_FL_HEAD_I32];
    i32[p + PCPU_FL_HEAD_I32] = e;
    if (i32[mine + PCPU_INFLIGHT_I32] === e) i32[mine + PCPU_INFLIGHT_I32] = 0;
    lockRelease(i32, p + PCPU_FL_LOCK_I32);
    return;
  }
}

/**
 * Pop a free element, own list first, then the others. 0 when all are empty,
 * FREELIST_TIMEDOUT when the only lists with elements stayed locked.
 * Kernel: __pcpu_freelist_pop().
 */
export function pcpuFreelistPop(i32: Int32Array, cpu: number, nrCpus: number): number {
  let c = cpu;
  let timedOut = false;
  for (let n = 0; n < nrCpus; n++) {
    const p = pcpuBase(c);
    // Unlocked peek, as the kernel's READ_ONCE(head->first): skip empty lists cheaply.
    if (Atomics.load(i32, p + PCPU_FL_HEAD_I32) !== 0) {
      if (!lockAcquire(i32, p + PCPU_FL_LOCK_I32, cpu)) {
        timedOut = true;
        c = c + 1 === nrCpus ? 0 : c + 1;
        continue;
      }
      const e = i32[p + PCPU_FL_HEAD_I32];
      if (e !== 0) {
        i32[pcpuBase(cpu) + PCPU_INFLIGHT_I32] = e; // ours from here, even if we die mid-pop
        i32[p + PCPU_FL_HEAD_I32] = i32[e + ELEM_FNEXT_I32];
        i32[e + ELEM_FNEXT_I32] = 0;
        lockRelease(i32, p + PCPU_FL_LOCK_I32);
        return e;
      }
      lockRelease(i32, p + PCPU_FL_LOCK_I32);
    }
    c = c + 1 === nrCpus ? 0 : c + 1;
  }
  return timedOut ? FREELIST_TIMEDOUT : 0;
}

/**
 * Spread `count` elements starting at word index `first` (stride `strideI32`)
 * over the CPUs' lists. Called by the creator before the map is shared.
 * Kernel: pcpu_freelist_populate().
 */
export function pcpuFreelistPopulate(
  i32: Int32Array,
  first: number,
  strideI32: number,
  count: number,
  nrCpus: number,
): void {
  const perCpu = Math.floor(count / nrCpus) + 1;
  let cpu = 0;
  let onCpu = 0;
  for (let i = 0; i < count; i++) {
    if (onCpu === perCpu) {
      cpu++;
      onCpu = 0;
    }
    const e = first + i * strideI32;
    const p = pcpuBase(cpu);
    i32[e + ELEM_FNEXT_I32] = i32[p + PCPU_FL_HEAD_I32];
    i32[p + PCPU_FL_HEAD_I32] = e;
    onCpu++;
  }
}
