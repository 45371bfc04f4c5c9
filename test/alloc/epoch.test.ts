/**
 * Epoch-based reclamation word by word (alloc/epoch.ts; layout.ts's rows
 * "hdr EPOCH", "hdr ACTIVE", "pcpu SECTION", "pcpu LIMBO_HEAD", "hdr
 * LIMBO_COUNT"): a section is ACTIVE + 1 and SECTION = epoch + 1; a retired
 * element gets TAG = the epoch after its retire and waits in a limbo list
 * (FNEXT-linked, under the freelist lock) until no section that began
 * before the retire is still active; then it goes back to its freelist (or
 * to a sink, after the lock is dropped). The buffer is a real preallocated
 * HASH map's, with home elements.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import {
  limboPush,
  limboReclaim,
  limboReclaimAll,
  noActiveSections,
  sectionEnter,
  sectionExit,
  synchronizeSections,
} from "../../src/alloc/epoch.js";
import { computeGeometry, elemIndexToWord, type Geometry, writeHeader } from "../../src/layout/geometry.js";
import {
  ELEM_FNEXT_I32,
  ELEM_FPREV_I32,
  ELEM_HOME_STATE_I32,
  ELEM_TAG_I32,
  HDR_ACTIVE_I32,
  HDR_EPOCH_I32,
  HDR_HOME_END_I32,
  HDR_LIMBO_COUNT_I32,
  LRU_NONE,
  PCPU_FL_HEAD_I32,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  PCPU_LIMBO_HEAD_I32,
  PCPU_SECTION_I32,
  pcpuBase,
} from "../../src/layout/layout.js";
import { LOCK_WAITERS } from "../../src/sync/owner-lock.js";
import { MapType } from "../../src/uapi.js";

const NR_CPUS = 3;
const section = (c: number) => pcpuBase(c) + PCPU_SECTION_I32;
const limboHead = (c: number) => pcpuBase(c) + PCPU_LIMBO_HEAD_I32;
const flHead = (c: number) => pcpuBase(c) + PCPU_FL_HEAD_I32;
const lock = (c: number) => pcpuBase(c) + PCPU_FL_LOCK_I32;
const inflight = (c: number) => pcpuBase(c) + PCPU_INFLIGHT_I32;
const held = (cpu: number) => (cpu + 1) << 1;

interface MapWords {
  g: Geometry;
  i32: Int32Array;
  e: number[];
}

/** A preallocated HASH map with homes, its freelists empty: every element is the test's to retire. */
function map(): MapWords {
  const g = computeGeometry(4, 8, 8, NR_CPUS, false, true, LRU_NONE, true);
  const i32 = new Int32Array(new SharedArrayBuffer(g.totalBytes));
  writeHeader(i32, g, MapType.Hash, 0, 0);
  return { g, i32, e: Array.from({ length: g.num_elems }, (_, n) => elemIndexToWord(g, n)) };
}

/** The element numbers on a list linked by FNEXT from `headIdx`, head first (bounded). */
function chain(m: MapWords, headIdx: number): number[] {
  const out: number[] = [];
  for (let x = m.i32[headIdx]; x !== 0 && out.length <= m.g.num_elems; x = m.i32[x + ELEM_FNEXT_I32])
    out.push(m.e.indexOf(x));
  return out;
}

/** Freelist c, checking FPREV and HOME_STATE (c + 1) as it walks. */
function freelist(m: MapWords, c: number): number[] {
  const out = chain(m, flHead(c));
  let prev = 0;
  for (const n of out) {
    assert.equal(m.i32[m.e[n] + ELEM_FPREV_I32], prev, `FPREV of element ${n}`);
    if (m.e[n] < m.i32[HDR_HOME_END_I32]) assert.equal(m.i32[m.e[n] + ELEM_HOME_STATE_I32], c + 1);
    prev = m.e[n];
  }
  return out;
}

test("a section: ACTIVE + 1 and SECTION = epoch + 1 on entry, both undone on exit", () => {
  const { i32 } = map();
  assert.equal(noActiveSections(i32), true);
  i32[HDR_EPOCH_I32] = 41;
  sectionEnter(i32, 1);
  assert.deepEqual([i32[HDR_ACTIVE_I32], i32[section(1)]], [1, 42]);
  assert.equal(noActiveSections(i32), false);
  i32[HDR_EPOCH_I32] = 50;
  sectionEnter(i32, 2);
  assert.deepEqual([i32[HDR_ACTIVE_I32], i32[section(1)], i32[section(2)]], [2, 42, 51]);
  assert.equal(i32[section(0)], 0, "CPU 0 is outside");
  sectionExit(i32, 1);
  assert.deepEqual([i32[HDR_ACTIVE_I32], i32[section(1)], i32[section(2)]], [1, 0, 51]);
  sectionExit(i32, 2);
  assert.deepEqual([i32[HDR_ACTIVE_I32], i32[section(2)]], [0, 0]);
  assert.equal(noActiveSections(i32), true);
  assert.equal(i32[HDR_EPOCH_I32], 50, "sections never move the epoch");
});

test("limboPush: TAG = the new epoch, LIMBO_COUNT + 1, linked at the head of the pusher's limbo; INFLIGHT filed", () => {
  const m = map();
  const { i32, e } = m;
  i32[inflight(1)] = e[4];
  limboPush(i32, 1, e[4]);
  assert.deepEqual([i32[HDR_EPOCH_I32], i32[e[4] + ELEM_TAG_I32], i32[HDR_LIMBO_COUNT_I32]], [1, 1, 1]);
  assert.deepEqual(chain(m, limboHead(1)), [4]);
  assert.equal(i32[inflight(1)], 0, "filed: no longer the pusher's own");
  assert.equal(i32[lock(1)], 0);
  limboPush(i32, 1, e[9]);
  assert.deepEqual([i32[HDR_EPOCH_I32], i32[e[9] + ELEM_TAG_I32], i32[HDR_LIMBO_COUNT_I32]], [2, 2, 2]);
  assert.deepEqual(chain(m, limboHead(1)), [9, 4]);
  assert.deepEqual(chain(m, limboHead(0)), [], "other CPUs' limbo untouched");
  assert.equal(i32[flHead(1)], 0, "limbo is not the freelist");
});

test("limboPush with `chain`: INFLIGHT moves on to the next owned element of the chain", () => {
  const m = map();
  const { i32, e } = m;
  // INFLIGHT heads the chain e[1] -> e[2] (an LRU reclaim's hand-off).
  i32[inflight(0)] = e[1];
  i32[e[1] + ELEM_FNEXT_I32] = e[2];
  limboPush(i32, 0, e[1], true);
  assert.equal(i32[inflight(0)], e[2]);
  limboPush(i32, 0, e[2], true);
  assert.equal(i32[inflight(0)], 0);
  assert.deepEqual(chain(m, limboHead(0)), [2, 1]);
});

test("reclaim waits for every section that began before the retire, and only for those", () => {
  const m = map();
  const { i32, e } = m;
  sectionEnter(i32, 0); // began before the retire
  limboPush(i32, 1, e[5]); // TAG 1
  sectionEnter(i32, 2); // began after it: entered at epoch 1 = TAG
  const before = Array.from(i32);
  assert.equal(limboReclaim(i32, 1, 1, NR_CPUS), 0, "CPU 0's section may still hold it");
  assert.deepEqual(Array.from(i32), before, "a reclaim that moves nothing changes nothing");
  sectionExit(i32, 0);
  assert.equal(limboReclaim(i32, 1, 1, NR_CPUS), 1, "CPU 2's later section does not hold it up");
  assert.deepEqual(chain(m, limboHead(1)), []);
  assert.deepEqual(freelist(m, 1), [5], "back on the freelist of the limbo it was in");
  assert.equal(i32[e[5] + ELEM_TAG_I32], 0, "TAG is FPREV again, and the head's is 0");
  assert.deepEqual([i32[HDR_LIMBO_COUNT_I32], i32[inflight(1)], i32[lock(1)]], [0, 0, 0]);
  sectionExit(i32, 2);
});

test("reclaim takes the ripe elements out of the middle of a limbo list and leaves the rest linked", () => {
  const m = map();
  const { i32, e } = m;
  limboPush(i32, 2, e[0]); // TAG 1: ripe
  sectionEnter(i32, 1); // enters at 1
  limboPush(i32, 2, e[1]); // TAG 2: CPU 1's section began before it
  sectionEnter(i32, 0); // enters at 2
  limboPush(i32, 2, e[2]); // TAG 3
  sectionExit(i32, 0);
  limboPush(i32, 2, e[3]); // TAG 4
  assert.deepEqual(chain(m, limboHead(2)), [3, 2, 1, 0]);
  assert.equal(limboReclaim(i32, 2, 0, NR_CPUS), 1, "only TAG 1 is older than CPU 1's section");
  assert.deepEqual(chain(m, limboHead(2)), [3, 2, 1]);
  assert.deepEqual(freelist(m, 2), [0]);
  assert.equal(i32[HDR_LIMBO_COUNT_I32], 3);
  sectionExit(i32, 1);
  assert.equal(limboReclaim(i32, 2, 0, NR_CPUS), 3);
  assert.deepEqual(chain(m, limboHead(2)), []);
  assert.deepEqual(freelist(m, 2), [1, 2, 3, 0], "each moved to the freelist's head as the walk meets it");
  assert.equal(i32[HDR_LIMBO_COUNT_I32], 0);
});

test("reclaim with a sink: the elements are handed over after the list lock is dropped, INFLIGHT heading the chain", () => {
  const m = map();
  const { i32, e } = m;
  limboPush(i32, 0, e[6]);
  limboPush(i32, 0, e[7]);
  const seen: [number, number, number][] = [];
  const moved = limboReclaim(i32, 0, 2, NR_CPUS, (x) => {
    seen.push([m.e.indexOf(x), m.e.indexOf(i32[inflight(2)]), i32[lock(0)]]);
    i32[inflight(2)] = i32[x + ELEM_FNEXT_I32]; // what a real sink does as it files x
  });
  assert.equal(moved, 2);
  // The walk meets 7 then 6; the chain it builds is 6 -> 7, handed over from its head.
  assert.deepEqual(seen, [
    [6, 6, 0],
    [7, 7, 0],
  ]);
  assert.equal(i32[inflight(2)], 0);
  assert.deepEqual(freelist(m, 0), [], "a sink's elements do not go to the freelist");
  assert.equal(i32[HDR_LIMBO_COUNT_I32], 0);
});

test("reclaim: an empty limbo is not locked; a limbo whose lock is held is left for later, untouched", () => {
  const m = map();
  const { i32, e } = m;
  i32[lock(1)] = held(2);
  assert.equal(limboReclaim(i32, 1, 0, NR_CPUS), 0);
  assert.equal(i32[lock(1)], held(2), "empty: no wait, no waiters bit");
  i32[lock(1)] = 0;
  limboPush(i32, 1, e[3]);
  i32[lock(1)] = held(2);
  assert.equal(limboReclaim(i32, 1, 0, NR_CPUS), 0, "timed out: nothing taken");
  assert.equal(i32[lock(1)], held(2) | LOCK_WAITERS);
  i32[lock(1)] = 0;
  assert.deepEqual(chain(m, limboHead(1)), [3]);
  assert.equal(i32[HDR_LIMBO_COUNT_I32], 1);
});

test("limboPush: a limbo whose lock stays held past the timeout is skipped for the next CPU's", () => {
  const m = map();
  const { i32, e } = m;
  i32[lock(2)] = held(0);
  i32[inflight(2)] = e[8];
  limboPush(i32, 2, e[8]);
  i32[lock(2)] = 0;
  assert.deepEqual(chain(m, limboHead(0)), [8], "wrapped from the last CPU to CPU 0");
  assert.equal(i32[inflight(2)], 0);
  assert.equal(limboReclaimAll(i32, 1, NR_CPUS), 1, "a reclaim of every limbo finds it there");
  assert.deepEqual(freelist(m, 0), [8]);
});

test("limboReclaimAll: LIMBO_COUNT 0 skips every list (the count runs high, never low); else each limbo to its freelist", () => {
  const m = map();
  const { i32, e } = m;
  limboPush(i32, 0, e[1]);
  limboPush(i32, 2, e[2]);
  i32[HDR_LIMBO_COUNT_I32] = 0;
  assert.equal(limboReclaimAll(i32, 1, NR_CPUS), 0);
  assert.deepEqual([chain(m, limboHead(0)), chain(m, limboHead(2))], [[1], [2]]);
  i32[HDR_LIMBO_COUNT_I32] = 2;
  assert.equal(limboReclaimAll(i32, 1, NR_CPUS), 2);
  assert.deepEqual([freelist(m, 0), freelist(m, 1), freelist(m, 2)], [[1], [], [2]]);
  assert.equal(i32[HDR_LIMBO_COUNT_I32], 0);
});

test("synchronizeSections with no section: moves the epoch and returns", () => {
  const { i32 } = map();
  synchronizeSections(i32, NR_CPUS);
  synchronizeSections(i32, NR_CPUS);
  assert.equal(i32[HDR_EPOCH_I32], 2);
});

test("synchronizeSections waits for a section another thread began before it, not for one begun after", async () => {
  const m = map();
  const ctl = new Int32Array(new SharedArrayBuffer(16));
  const w = new Worker(new URL("../fixtures/section-worker.js", import.meta.url), {
    workerData: { sab: m.i32.buffer, ctl: ctl.buffer, cpu: 1, later: 2 },
  });
  const messages: unknown[] = [];
  const exited = new Promise<number>((resolve, reject) => {
    w.on("message", (x) => messages.push(x));
    w.once("error", reject);
    w.once("exit", resolve);
  });
  await new Promise((resolve) => w.once("message", resolve)); // "in": CPU 1's section has begun
  synchronizeSections(m.i32, NR_CPUS);
  const after = [Atomics.load(ctl, 1), m.i32[section(1)], m.i32[HDR_ACTIVE_I32]];
  const laterSection = m.i32[section(2)];
  Atomics.store(ctl, 2, 1);
  Atomics.notify(ctl, 2);
  assert.equal(await exited, 0);
  assert.deepEqual(after, [1, 0, 1], "returned after CPU 1's section ended, CPU 2's still active");
  assert.equal(laterSection, 2, "the later section entered at the epoch synchronizeSections moved to");
  assert.deepEqual(messages.at(-1), { began: true, released: true });
  assert.equal(noActiveSections(m.i32), true);
});

// ---- model: reclaim frees exactly what no earlier section can still hold ----

type Op =
  | { kind: "enter"; cpu: number }
  | { kind: "exit"; cpu: number }
  | { kind: "retire"; cpu: number }
  | { kind: "reclaim"; victim: number };

interface Model {
  /** Per CPU: the serial of its active section, or 0. */
  sections: number[];
  serial: number;
  /** Per CPU: its limbo (head first), each element with the sections active at its retire. */
  limbo: { n: number; holders: [number, number][] }[][];
  free: number[][];
  next: number;
}

function step(m: MapWords, s: Model, op: Op): void {
  const { i32, e } = m;
  if (op.kind === "enter" && s.sections[op.cpu] === 0) {
    sectionEnter(i32, op.cpu);
    s.sections[op.cpu] = ++s.serial;
  } else if (op.kind === "exit" && s.sections[op.cpu] !== 0) {
    sectionExit(i32, op.cpu);
    s.sections[op.cpu] = 0;
  } else if (op.kind === "retire" && s.next < m.g.num_elems) {
    const holders = s.sections.flatMap((serial, c): [number, number][] => (serial ? [[c, serial]] : []));
    limboPush(i32, op.cpu, e[s.next]);
    s.limbo[op.cpu].unshift({ n: s.next++, holders });
  } else if (op.kind === "reclaim") {
    const ripe = s.limbo[op.victim].filter((x) => x.holders.every(([c, serial]) => s.sections[c] !== serial));
    assert.equal(limboReclaim(i32, op.victim, 0, NR_CPUS), ripe.length);
    s.limbo[op.victim] = s.limbo[op.victim].filter((x) => !ripe.includes(x));
    for (const x of ripe) s.free[op.victim].unshift(x.n);
  }
}

test("model: over any run of enters, exits, retires and reclaims, reclaim frees exactly the elements no earlier section still holds", () => {
  const cpu = fc.nat(NR_CPUS - 1);
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("enter" as const), cpu }),
    fc.record({ kind: fc.constant("exit" as const), cpu }),
    fc.record({ kind: fc.constant("retire" as const), cpu }),
    fc.record({ kind: fc.constant("reclaim" as const), victim: cpu }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const m = map();
      const s: Model = {
        sections: [0, 0, 0],
        serial: 0,
        limbo: [[], [], []],
        free: [[], [], []],
        next: 0,
      };
      for (const o of ops) {
        step(m, s, o);
        for (let c = 0; c < NR_CPUS; c++) {
          assert.deepEqual(
            chain(m, limboHead(c)),
            s.limbo[c].map((x) => x.n),
            `limbo ${c}`,
          );
          assert.deepEqual(freelist(m, c), s.free[c], `freelist ${c}`);
          assert.equal(m.i32[section(c)] !== 0, s.sections[c] !== 0);
        }
        assert.equal(m.i32[HDR_ACTIVE_I32], s.sections.filter((x) => x !== 0).length);
        assert.equal(m.i32[HDR_LIMBO_COUNT_I32], s.limbo.flat().length);
      }
    }),
    { numRuns: 200 },
  );
});
