/**
 * The bucket seqlock word by word (sync/bucket-seqlock.ts; layout.ts's
 * ordering-table row "bucket SEQLOCK"): LOCKED is set by the taker's CAS,
 * WRITING by the holder before its first visible store, WAITERS by a
 * sleeper; the unlock's one exchange clears all three and adds a seq step
 * only when the holder wrote; readers ignore LOCKED and WAITERS and retry on
 * WRITING or a changed seq. The words are a real map's bucket records
 * (layout/geometry.ts), so the indices are the ones the map uses.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { computeGeometry, writeHeader } from "../../src/layout/geometry.js";
import { BUCKET_HEAD_I32, BUCKET_OWNER_I32, BUCKET_SEQLOCK_I32, LRU_NONE } from "../../src/layout/layout.js";
import {
  bucketBeginWrite,
  bucketLock,
  bucketUnlock,
  SEQ_LOCKED,
  SEQ_STEP,
  SEQ_WAITERS,
  SEQ_WRITING,
  seqReadable,
  seqUnchanged,
  unlockedWord,
} from "../../src/sync/bucket-seqlock.js";
import { setStallHandler } from "../../src/sync/spin.js";
import { MapType } from "../../src/uapi.js";

/** A 4-bucket map's words; `seq(b)` is the index of bucket b's SEQLOCK word. */
function buckets() {
  const g = computeGeometry(4, 8, 4, 2, false, true, LRU_NONE);
  const i32 = new Int32Array(new SharedArrayBuffer(g.totalBytes));
  writeHeader(i32, g, MapType.Hash, 0, 0);
  const rec = (b: number) => (g.bucketsBytes + b * g.bucketStride) >> 2;
  return { g, i32, rec, seq: (b: number) => rec(b) + BUCKET_SEQLOCK_I32 };
}

/** Every word of the buffer except `skip`: what a lock operation must leave alone. */
function wordsExcept(i32: Int32Array, skip: number): number[] {
  return Array.from(i32).filter((_, i) => i !== skip);
}

test("the word's bits: LOCKED 1, WAITERS 2, WRITING 4, the sequence from bit 3 up", () => {
  assert.equal(SEQ_LOCKED, 1);
  assert.equal(SEQ_WAITERS, 2);
  assert.equal(SEQ_WRITING, 4);
  assert.equal(SEQ_STEP, 8);
  const { g, seq, rec } = buckets();
  // The SEQLOCK word sits in struct bucket between HEAD and OWNER, in every record.
  assert.equal(BUCKET_SEQLOCK_I32, BUCKET_HEAD_I32 + 1);
  assert.equal(BUCKET_OWNER_I32, BUCKET_SEQLOCK_I32 + 1);
  assert.equal(seq(1) - seq(0), g.bucketStride >> 2);
  assert.equal(seq(0), rec(0) + BUCKET_SEQLOCK_I32);
});

test("lock then unlock without a write: LOCKED set and cleared, the sequence does not move", () => {
  const { i32, seq } = buckets();
  const s = seq(2);
  const others = wordsExcept(i32, s);
  assert.equal(bucketLock(i32, s), true);
  assert.equal(i32[s], SEQ_LOCKED);
  // A holder that has not begun to write blocks no reader.
  assert.equal(seqReadable(i32[s]), true);
  assert.equal(seqUnchanged(0, i32[s]), true);
  bucketUnlock(i32, s, false);
  assert.equal(i32[s], 0, "no write, no seq step");
  assert.deepEqual(wordsExcept(i32, s), others, "only the lock word changed");
});

test("a write: beginWrite sets WRITING (readers retry), the unlock clears it and adds one seq step", () => {
  const { i32, seq } = buckets();
  const s = seq(1);
  const before = i32[s];
  assert.equal(bucketLock(i32, s), true);
  bucketBeginWrite(i32, s);
  assert.equal(i32[s], SEQ_LOCKED | SEQ_WRITING);
  assert.equal(seqReadable(i32[s]), false, "a reader may not walk while WRITING is set");
  assert.equal(seqUnchanged(before, i32[s]), false);
  bucketBeginWrite(i32, s); // idempotent: an OR
  assert.equal(i32[s], SEQ_LOCKED | SEQ_WRITING);
  bucketUnlock(i32, s, true);
  assert.equal(i32[s], SEQ_STEP, "seq 1, every low bit clear");
  assert.equal(seqReadable(i32[s]), true);
  assert.equal(seqUnchanged(before, i32[s]), false, "a reader that sampled before the write retries");
  // A second write moves the seq again; a lock/unlock without a write does not.
  assert.equal(bucketLock(i32, s), true);
  assert.equal(i32[s], SEQ_STEP | SEQ_LOCKED, "the lock keeps the sequence");
  bucketBeginWrite(i32, s);
  bucketUnlock(i32, s, true);
  assert.equal(i32[s], 2 * SEQ_STEP);
  assert.equal(bucketLock(i32, s), true);
  bucketUnlock(i32, s, false);
  assert.equal(i32[s], 2 * SEQ_STEP);
});

test("buckets are independent: locking one leaves its neighbours' words alone", () => {
  const { i32, seq } = buckets();
  assert.equal(bucketLock(i32, seq(0)), true);
  assert.equal(bucketLock(i32, seq(1)), true, "bucket 1 is not held by bucket 0's lock");
  bucketBeginWrite(i32, seq(1));
  assert.deepEqual([i32[seq(0)], i32[seq(1)], i32[seq(2)]], [SEQ_LOCKED, SEQ_LOCKED | SEQ_WRITING, 0]);
  bucketUnlock(i32, seq(1), true);
  bucketUnlock(i32, seq(0), false);
  assert.deepEqual([i32[seq(0)], i32[seq(1)], i32[seq(2)]], [0, SEQ_STEP, 0]);
});

test("unlockedWord: clears LOCKED, WAITERS and WRITING, adds SEQ_STEP only when changed, wraps in 29 bits", () => {
  const seq5 = 5 * SEQ_STEP;
  for (const low of [0, 1, 2, 3, 4, 5, 6, 7]) {
    assert.equal(unlockedWord(seq5 | low, false), seq5);
    assert.equal(unlockedWord(seq5 | low, true), seq5 + SEQ_STEP);
  }
  // The highest sequence (every bit from 3 up set: -8 as an int32) wraps to 0.
  assert.equal(unlockedWord(-8 | SEQ_LOCKED | SEQ_WRITING, true), 0);
  assert.equal(unlockedWord(0x7fff_fff8 | SEQ_LOCKED, true), -0x8000_0000, "an int32, not 2^31");
});

test("seqUnchanged: equal samples pass whatever LOCKED and WAITERS do; WRITING or another seq fails", () => {
  const s = 7 * SEQ_STEP;
  assert.equal(seqUnchanged(s, s), true);
  assert.equal(seqUnchanged(s, s | SEQ_LOCKED), true, "locked meanwhile, no write");
  assert.equal(seqUnchanged(s | SEQ_LOCKED | SEQ_WAITERS, s), true);
  assert.equal(seqUnchanged(s | SEQ_WRITING, s | SEQ_WRITING), false, "sampled during a write");
  assert.equal(seqUnchanged(s, s | SEQ_LOCKED | SEQ_WRITING), false, "a write began meanwhile");
  assert.equal(seqUnchanged(s | SEQ_LOCKED | SEQ_WRITING, s + SEQ_STEP), false);
  assert.equal(seqUnchanged(s, s + SEQ_STEP), false, "a write finished meanwhile");
  // A reader that slept through exactly 2^29 writes would be fooled: the kernel's seqcount has the same limit.
  assert.equal(seqUnchanged(-8, 0), false, "the wrap is still a change");
  assert.equal(seqReadable(s | SEQ_LOCKED | SEQ_WAITERS), true);
  assert.equal(seqReadable(s | SEQ_WRITING), false);
});

test("a reader's two samples around a write in between do not validate; around a writeless lock they do", () => {
  const { i32, seq, rec } = buckets();
  const s = seq(3);
  const head = rec(3) + BUCKET_HEAD_I32;
  // The reader samples, reads HEAD, samples again; the writer links a new head in between.
  const before = Atomics.load(i32, s);
  const read = i32[head];
  assert.equal(bucketLock(i32, s), true);
  bucketBeginWrite(i32, s);
  const mid = Atomics.load(i32, s);
  i32[head] = 1234;
  const midAfter = Atomics.load(i32, s);
  assert.equal(seqUnchanged(mid, midAfter), false, "a reader inside the write window never validates");
  bucketUnlock(i32, s, true);
  assert.equal(seqUnchanged(before, Atomics.load(i32, s)), false, "the stale HEAD read is rejected");
  assert.notEqual(read, i32[head]);
  // A holder that never wrote (a compute() that changed its mind) does not fail readers.
  const again = Atomics.load(i32, s);
  assert.equal(bucketLock(i32, s), true);
  const during = Atomics.load(i32, s);
  assert.equal(seqUnchanged(again, during), true);
  bucketUnlock(i32, s, false);
  assert.equal(seqUnchanged(again, Atomics.load(i32, s)), true);
});

test("a held bucket: the waiter sets WAITERS, gives up after LOCK_TIMEOUT_MS with false, and changes nothing else", () => {
  const { i32, seq } = buckets();
  const s = seq(0);
  i32[s] = (3 * SEQ_STEP) | SEQ_LOCKED | SEQ_WRITING; // another thread holds it, mid-write
  const others = wordsExcept(i32, s);
  let stalls = 0;
  setStallHandler(i32, () => stalls++);
  assert.equal(bucketLock(i32, s), false);
  assert.equal(i32[s], (3 * SEQ_STEP) | SEQ_LOCKED | SEQ_WRITING | SEQ_WAITERS, "only WAITERS was added");
  assert.ok(stalls > 0, "the waiter let the map's stall handler (dead-slot recovery) run");
  assert.deepEqual(wordsExcept(i32, s), others);
  // The holder's unlock clears WAITERS with the rest (and would wake the sleeper).
  bucketUnlock(i32, s, true);
  assert.equal(i32[s], 4 * SEQ_STEP);
});

test("a waiter takes the bucket when its holder lets go mid-wait, with WAITERS set so its own unlock wakes the next", () => {
  const { i32, seq } = buckets();
  const s = seq(2);
  i32[s] = SEQ_LOCKED; // held by another thread
  let stalls = 0;
  // The stall handler stands in for the holder: it writes and unlocks while we wait.
  setStallHandler(i32, () => {
    if (stalls++ === 0) {
      bucketBeginWrite(i32, s);
      bucketUnlock(i32, s, true);
    }
  });
  assert.equal(bucketLock(i32, s), true);
  assert.equal(stalls, 1);
  assert.equal(
    i32[s],
    SEQ_STEP | SEQ_LOCKED | SEQ_WAITERS,
    "the holder's seq step kept, LOCKED and WAITERS ours",
  );
  bucketUnlock(i32, s, false);
  assert.equal(i32[s], SEQ_STEP, "the unlock clears WAITERS and, without a write, keeps the seq");
});

test("model: over any run of lock / beginWrite / unlock(changed), the word is the count of writing unlocks << 3 plus the held bits", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ write: fc.boolean(), changed: fc.boolean(), bucket: fc.nat(3) }), {
        maxLength: 60,
      }),
      fc.nat(0x1fff_ffff),
      (ops, start) => {
        const { i32, seq } = buckets();
        const steps = [0, 0, 0, 0];
        for (let b = 0; b < 4; b++) i32[seq(b)] = (start * SEQ_STEP) | 0;
        for (const op of ops) {
          const s = seq(op.bucket);
          const base = ((start + steps[op.bucket]) * SEQ_STEP) | 0;
          assert.equal(i32[s], base);
          assert.equal(bucketLock(i32, s), true);
          assert.equal(i32[s], base | SEQ_LOCKED);
          if (op.write) {
            bucketBeginWrite(i32, s);
            assert.equal(i32[s], base | SEQ_LOCKED | SEQ_WRITING);
          }
          bucketUnlock(i32, s, op.changed);
          if (op.changed) steps[op.bucket]++;
          assert.equal(i32[s], ((start + steps[op.bucket]) * SEQ_STEP) | 0);
        }
        for (let b = 0; b < 4; b++) assert.equal(i32[seq(b)], ((start + steps[b]) * SEQ_STEP) | 0);
      },
    ),
  );
});
