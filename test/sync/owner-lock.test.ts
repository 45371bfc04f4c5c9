/**
 * The owner-tagged lock word by word (sync/owner-lock.ts; layout.ts's rows
 * "pcpu FL_LOCK" and "lru LOCK words"): 0 is free, a held word is
 * (cpu + 1) << 1 so that recovery and a timed-out waiter can name the
 * holder, and bit 0 (LOCK_WAITERS) says someone sleeps on it. The words used
 * are a real map's per-CPU FL_LOCK words.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { computeGeometry, writeHeader } from "../../src/layout/geometry.js";
import { LRU_NONE, PCPU_FL_HEAD_I32, PCPU_FL_LOCK_I32, pcpuBase } from "../../src/layout/layout.js";
import {
  LOCK_WAITERS,
  lastTimeoutOwner,
  lockAcquire,
  lockAcquireMust,
  lockOwner,
  lockRelease,
  lockTry,
} from "../../src/sync/owner-lock.js";
import { setStallHandler } from "../../src/sync/spin.js";
import { MapType } from "../../src/uapi.js";

const NR_CPUS = 4;

function locks() {
  const g = computeGeometry(4, 8, 8, NR_CPUS, false, true, LRU_NONE);
  const i32 = new Int32Array(new SharedArrayBuffer(g.totalBytes));
  writeHeader(i32, g, MapType.Hash, 0, 0);
  return { i32, lock: (c: number) => pcpuBase(c) + PCPU_FL_LOCK_I32 };
}

/** The held word of CPU slot `cpu`, as the lock writes it. */
const held = (cpu: number) => (cpu + 1) << 1;

test("acquire on a free word stores (cpu + 1) << 1, release stores 0; lockOwner reads the slot back", () => {
  const { i32, lock } = locks();
  for (let cpu = 0; cpu < NR_CPUS; cpu++) {
    const w = lock(cpu);
    const others = Array.from(i32).filter((_, i) => i !== w);
    assert.equal(lockAcquire(i32, w, 3 - cpu), true);
    assert.equal(i32[w], held(3 - cpu));
    assert.equal(lockOwner(i32[w]), 3 - cpu);
    assert.equal(i32[w] & LOCK_WAITERS, 0, "an uncontended lock has no waiters bit");
    lockRelease(i32, w);
    assert.equal(i32[w], 0);
    assert.deepEqual(
      Array.from(i32).filter((_, i) => i !== w),
      others,
      "only the lock word moved",
    );
  }
  assert.equal(lockOwner(0), -1, "free");
  assert.equal(lockOwner(held(0)), 0, "CPU 0's word is not 0: a held lock is never mistaken for a free one");
  assert.equal(LOCK_WAITERS, 1);
});

test("lockOwner recovers every slot from its word, with or without the waiters bit", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: (1 << 29) - 1 }), fc.boolean(), (cpu, waiters) => {
      const w = held(cpu) | (waiters ? LOCK_WAITERS : 0);
      assert.notEqual(w, 0);
      assert.equal(lockOwner(w & ~LOCK_WAITERS), cpu);
    }),
  );
});

test("lockTry: takes a free word at once, refuses a held one without touching it (no waiters bit)", () => {
  const { i32, lock } = locks();
  const w = lock(1);
  assert.equal(lockTry(i32, w, 2), true);
  assert.equal(i32[w], held(2));
  assert.equal(lockTry(i32, w, 0), false);
  assert.equal(i32[w], held(2), "a refused try leaves the holder's word exactly");
  lockRelease(i32, w);
  assert.equal(lockTry(i32, w, 0), true);
  assert.equal(i32[w], held(0));
});

test("a held lock: the waiter sets the waiters bit, gives up after LOCK_TIMEOUT_MS, and names the holder", () => {
  const { i32, lock } = locks();
  const w = lock(2);
  i32[w] = held(3); // CPU 3 holds it and never lets go
  const head = pcpuBase(2) + PCPU_FL_HEAD_I32;
  i32[head] = 77;
  let stalls = 0;
  setStallHandler(i32, () => stalls++);
  assert.equal(lockAcquire(i32, w, 0), false);
  assert.equal(i32[w], held(3) | LOCK_WAITERS, "still CPU 3's, now with a sleeper recorded");
  assert.equal(lastTimeoutOwner(), 3, "the timed-out waiter can say who held it");
  assert.equal(i32[head], 77, "nothing guarded by the lock was touched");
  assert.ok(stalls > 0, "the waiter ran the stall handler (dead-slot recovery) while it waited");
  lockRelease(i32, w);
  assert.equal(i32[w], 0, "the release clears the waiters bit too");
});

test("a waiter takes the lock when its holder lets go mid-wait, and keeps the waiters bit (others may still sleep)", () => {
  const { i32, lock } = locks();
  const w = lock(0);
  i32[w] = held(1);
  let stalls = 0;
  setStallHandler(i32, () => {
    if (stalls++ === 0) lockRelease(i32, w); // the holder (or its recoverer) lets go
  });
  assert.equal(lockAcquire(i32, w, 2), true);
  assert.equal(stalls, 1);
  assert.equal(i32[w], held(2) | LOCK_WAITERS);
  assert.equal(lockOwner(i32[w] & ~LOCK_WAITERS), 2);
  lockRelease(i32, w);
  assert.equal(i32[w], 0);
});

test("lockAcquireMust outlasts a timeout: it keeps running the stall handler until the holder is recovered", () => {
  const { i32, lock } = locks();
  const w = lock(3);
  i32[w] = held(1); // a dead holder
  let stalls = 0;
  // Recovery frees the dead holder's lock only after a whole wait has timed out on it.
  setStallHandler(i32, () => {
    stalls++;
    if (lastTimeoutOwner() === 1) i32[w] = 0;
  });
  assert.notEqual(lastTimeoutOwner(), 1);
  lockAcquireMust(i32, w, 0);
  assert.equal(lastTimeoutOwner(), 1, "the first wait timed out on CPU 1's lock");
  assert.equal(i32[w], held(0), "then taken by the fast CAS on the freed word");
  assert.ok(stalls > 1);
  lockRelease(i32, w);
  assert.equal(i32[w], 0);
});
