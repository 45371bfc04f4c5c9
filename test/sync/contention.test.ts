/**
 * Two real threads on one lock word (fixture: lock-contention-worker.ts),
 * with a checked history rather than a count alone:
 * - the owner lock: N read-pause-write increments per worker give exactly
 *   2N, every value 0..2N-1 was read by exactly one critical section, and
 *   each holder found its own CPU slot in the word;
 * - the bucket seqlock: two writers move a pair of words (two stores apart)
 *   under the lock while reading it lock-free in between, and a third worker
 *   only reads (it is there when a writer is preempted mid-write); no
 *   validated read ever sees a torn pair, the pair ends at 2N and the sequence advanced by
 *   exactly one step per write.
 * The words are a real map's (a per-CPU FL_LOCK word and element 0's key
 * and value words for the owner lock; bucket 0's SEQLOCK and element 0's
 * key and value words for the seqlock).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { computeGeometry, elemIndexToWord, writeHeader } from "../../src/layout/geometry.js";
import {
  BUCKET_SEQLOCK_I32,
  ELEM_KEY_I32,
  LRU_NONE,
  PCPU_FL_LOCK_I32,
  pcpuBase,
  roundUp,
} from "../../src/layout/layout.js";
import { SEQ_STEP } from "../../src/sync/bucket-seqlock.js";
import { MapType } from "../../src/uapi.js";
import { runWorkers, startBarrier } from "../helpers/workers.js";

const WORKERS = 2;
const script = new URL("../fixtures/lock-contention-worker.js", import.meta.url);

function map() {
  const g = computeGeometry(4, 8, 8, WORKERS, false, true, LRU_NONE);
  const sab = new SharedArrayBuffer(g.totalBytes);
  const i32 = new Int32Array(sab);
  writeHeader(i32, g, MapType.Hash, 0, 0);
  const key = elemIndexToWord(g, 0) + ELEM_KEY_I32;
  const value = key + (roundUp(g.keySize, 8) >> 2);
  return { g, sab, i32, key, value };
}

test("owner lock, two workers: 2N increments under the lock give exactly 2N, each value read once", async () => {
  const N = 20_000;
  const { sab, i32, key } = map();
  const lock = pcpuBase(1) + PCPU_FL_LOCK_I32;
  const start = startBarrier(WORKERS);
  const results = await runWorkers<{
    history: number[];
    wrongOwner: number;
    timeouts: number;
    sawWaiters: number;
  }>(script, WORKERS, (cpu) => ({
    mode: "owner",
    sab,
    start,
    cpu,
    lock,
    a: key,
    b: key,
    iters: N,
    reads: 0,
    done: new SharedArrayBuffer(4),
    writers: WORKERS,
  }));
  assert.equal(i32[key], WORKERS * N, "no increment lost");
  assert.equal(i32[lock], 0, "released, no waiters bit left behind");
  for (const r of results) {
    assert.equal(r.wrongOwner, 0, "the word named its holder's CPU slot every time");
    // A history read under the lock only ever grows.
    for (let i = 1; i < r.history.length; i++) assert.ok(r.history[i] > r.history[i - 1]);
  }
  const seen = results.flatMap((r) => r.history).sort((x, y) => x - y);
  assert.deepEqual(
    seen,
    Array.from({ length: WORKERS * N }, (_, i) => i),
    "every value from 0 to 2N-1 read by exactly one critical section",
  );
  console.log(
    `owner lock: ${results.map((r) => `${r.sawWaiters} holds with a sleeper recorded, ${r.timeouts} timeouts`).join("; ")}`,
  );
});

test("bucket seqlock, two workers writing and reading, a third only reading: a validated read never sees a torn pair", async () => {
  const N = 5_000;
  const { g, sab, i32, key, value } = map();
  const lock = (g.bucketsBytes >> 2) + BUCKET_SEQLOCK_I32;
  const start = startBarrier(WORKERS + 1);
  const done = new SharedArrayBuffer(4);
  const results = await runWorkers<{
    validated: number;
    torn: number;
    rejected: number;
    rejectedTorn: number;
    notExclusive: number;
    timeouts: number;
  }>(script, WORKERS + 1, (cpu) => ({
    mode: cpu < WORKERS ? "seqlock" : "reader",
    sab,
    start,
    cpu,
    lock,
    a: key,
    b: value,
    iters: N,
    reads: 8,
    done,
    writers: WORKERS,
  }));
  assert.equal(i32[key], WORKERS * N, "no write lost");
  assert.equal(i32[value], WORKERS * N);
  assert.equal(i32[lock], (WORKERS * N * SEQ_STEP) | 0, "one seq step per write, every low bit clear");
  for (const r of results.slice(0, WORKERS)) {
    assert.equal(r.notExclusive, 0, "no writer found the pair half-written by the other");
    assert.equal(r.torn, 0, "no validated read saw a torn pair");
    assert.ok(r.validated > 0, "reads did validate");
  }
  assert.equal(results[WORKERS].torn, 0, "the pure reader never validated a torn pair either");
  console.log(
    `seqlock: ${results.map((r) => `${r.validated} validated, ${r.rejected} retried (${r.rejectedTorn} of them torn), ${r.timeouts} timeouts`).join("; ")}`,
  );
});
