/**
 * LRU repair: re-create the LRU lists after a slot died holding an LRU lock
 * or an element (kernel: none; a BPF program cannot die mid-operation).
 * Beside lru.ts, which raises and runs it.
 */
import type { BpfLru } from "../../alloc/bpf-lru.js";
import { CLASS_FREE, CLASS_HASH, CLASS_LIMBO } from "../../alloc/lru-nodes.js";
import {
  BUCKET_HEAD_I32,
  ELEM_FNEXT_I32,
  ELEM_NEXT_I32,
  HDR_LRU_REPAIR_I32,
  HDR_RECOVERED_I32,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  PCPU_LIMBO_HEAD_I32,
  PCPU_LRU_SPARE_I32,
  PCPU_OWNER_I32,
  pcpuBase,
  SLOT_ALIVE,
} from "../../layout/layout.js";
import { lockAcquire, lockRelease } from "../../sync/owner-lock.js";
import { slotStateOf } from "../../sync/slot-claim.js";
import { lockBucket, unlockBucket } from "../bucket.js";
import { bucketAt, type HtabView, nodeOf } from "../htab-view.js";
import { listTimedOut } from "../waits.js";

/**
 * Re-create the LRU lists after a slot died holding an LRU lock or an
 * element (kernel: none; a BPF program cannot die mid-operation). Every
 * element is classified: linked in a chain; in limbo, or unlinked by a live
 * slot and not yet filed (its INFLIGHT chain; both stay off every list);
 * popped by a live slot for an update and not yet linked (its LRU_SPARE:
 * pending on it); else free. `dead` is the slot being recovered (ignored), or -1.
 * Requires: this thread holds no LRU, freelist or bucket lock.
 * Its lock order is the exception layout.ts names (every LRU lock, every
 * freelist lock, then one bucket at a time).
 *
 * Bounded: a lock that stays held past LOCK_TIMEOUT_MS (its holder died and
 * is not reaped yet, e.g. the next worker of a shutdown whose exit event
 * runs after this one's) makes the repair back out, releasing what it took,
 * with the repair flag still raised: a later repair (the next LRU operation,
 * or the reap of that holder) does it. Nothing is changed until every lock is
 * held except the classification walk, which only reads.
 * @returns true when the lists are repaired (or another thread did it); false
 *   when a lock wait timed out (lastError says whose)
 */
export function lruRepair(v: HtabView, lru: BpfLru, dead: number): boolean {
  const i32 = v.i32;
  const lruLocks = lru.lockWords();
  const taken: number[] = [];
  try {
    // A repair must see every list: each wait is bounded, dead slots are recovered in between.
    for (const k of lruLocks) {
      if (!lockAcquire(i32, k, v.cpu)) {
        listTimedOut(v, "an LRU list (for a repair)");
        return false;
      }
      taken.push(k);
    }
    for (let c = 0; c < v.nrCpus; c++) {
      const k = pcpuBase(c) + PCPU_FL_LOCK_I32;
      if (!lockAcquire(i32, k, v.cpu)) {
        listTimedOut(v, "a freelist (for an LRU repair)");
        return false;
      }
      taken.push(k);
    }
    if (Atomics.load(i32, HDR_LRU_REPAIR_I32) === 0) return true; // another thread did it
    const num = v.numElems;
    const cls = new Int32Array(num).fill(CLASS_FREE);
    const live = (c: number) =>
      c !== dead && slotStateOf(Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32)) === SLOT_ALIVE;
    // What live slots own: elements they unlinked and have not filed (their
    // INFLIGHT chains: off every list until they file them) and the element
    // each popped for an update (its LRU_SPARE: pending on it). Read before
    // and after the chain walk, which holds one bucket at a time: a slot may
    // unlink or link meanwhile, and must find its elements where it left them.
    const owned = (after: boolean) => {
      for (let c = 0; c < v.nrCpus; c++)
        if (live(c))
          for (
            let e = i32[pcpuBase(c) + PCPU_INFLIGHT_I32], k = 0;
            e !== 0 && k < num;
            e = i32[e + ELEM_FNEXT_I32], k++
          ) {
            const n = nodeOf(v, e);
            if (!after || cls[n] === CLASS_FREE || cls[n] === CLASS_LIMBO) cls[n] = CLASS_LIMBO;
          }
      for (let c = 0; c < v.nrCpus; c++) {
        const x = live(c) ? i32[pcpuBase(c) + PCPU_LRU_SPARE_I32] : 0;
        if (x !== 0 && (!after || cls[nodeOf(v, x)] !== CLASS_HASH)) cls[nodeOf(v, x)] = c;
      }
    };
    owned(false);
    for (let c = 0; c < v.nrCpus; c++)
      for (
        let e = i32[pcpuBase(c) + PCPU_LIMBO_HEAD_I32], k = 0;
        e !== 0 && k < num;
        e = i32[e + ELEM_FNEXT_I32], k++
      )
        cls[nodeOf(v, e)] = CLASS_LIMBO;
    for (let bi = 0; bi <= v.mask; bi++) {
      const b = bucketAt(v, bi);
      if (!lockBucket(v, b)) return false; // lastError names the bucket and its holder
      for (let e = i32[b + BUCKET_HEAD_I32], k = 0; e !== 0 && k < num; e = i32[e + ELEM_NEXT_I32], k++)
        cls[nodeOf(v, e)] = CLASS_HASH;
      unlockBucket(v, b);
    }
    owned(true);
    lru.rebuild(cls);
    Atomics.store(i32, HDR_LRU_REPAIR_I32, 0);
    Atomics.add(i32, HDR_RECOVERED_I32, 1);
    return true;
  } finally {
    for (let k = taken.length - 1; k >= 0; k--) lockRelease(i32, taken[k]);
  }
}
