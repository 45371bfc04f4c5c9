/**
 * Per-CPU freelists of preallocated elements (kernel: percpu_freelist.c).
 * Each CPU slot has a list head guarded by its own small lock; a CPU pushes
 * to its own list and pops from its own first, then steals from the others
 * in CPU order.
 *
 * Lock order: bucket lock -> freelist lock. A freelist lock is never held
 * while taking any other lock.
 *
 * Crash safety: an element between a list and a chain is recorded in its
 * owner's INFLIGHT word: set under the lock before a pop unlinks it, cleared
 * under the lock after a push links it. A half-done push or pop therefore
 * never loses an element (see Htab.recover()).
 */

import {
  ELEM_FNEXT_I32,
  PCPU_FL_HEAD_I32,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  pcpuBase,
} from "../layout/layout.js";
import { lockAcquire, lockRelease } from "../sync/owner-lock.js";

/** Push element `e` (word index) onto `cpu`'s list. Kernel: __pcpu_freelist_push(). */
export function pcpuFreelistPush(i32: Int32Array, cpu: number, e: number): void {
  const p = pcpuBase(cpu);
  lockAcquire(i32, p + PCPU_FL_LOCK_I32, cpu);
  i32[e + ELEM_FNEXT_I32] = i32[p + PCPU_FL_HEAD_I32];
  i32[p + PCPU_FL_HEAD_I32] = e;
  if (i32[p + PCPU_INFLIGHT_I32] === e) i32[p + PCPU_INFLIGHT_I32] = 0;
  lockRelease(i32, p + PCPU_FL_LOCK_I32);
}

/** Pop a free element, own list first, then the others. 0 when all are empty. Kernel: __pcpu_freelist_pop(). */
export function pcpuFreelistPop(i32: Int32Array, cpu: number, nrCpus: number): number {
  let c = cpu;
  for (let n = 0; n < nrCpus; n++) {
    const p = pcpuBase(c);
    // Unlocked peek, as the kernel's READ_ONCE(head->first): skip empty lists cheaply.
    if (Atomics.load(i32, p + PCPU_FL_HEAD_I32) !== 0) {
      lockAcquire(i32, p + PCPU_FL_LOCK_I32, cpu);
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
  return 0;
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
