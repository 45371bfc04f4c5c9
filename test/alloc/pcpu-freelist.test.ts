/**
 * The per-CPU freelists word by word (alloc/pcpu-freelist.ts; layout.ts's
 * rows "pcpu FL_LOCK", "pcpu FL_HEAD", "elem FNEXT, TAG" and "record
 * HOME_STATE"): doubly linked lists (FNEXT, FPREV in the TAG word) under
 * each list's owner lock; a home element's HOME_STATE is c + 1 while on list
 * c and HOME_TAKEN once off; a popped or claimed element becomes its
 * taker's INFLIGHT and a push clears it. The buffer is a real preallocated
 * HASH map's (layout/geometry.ts) with home elements in the bucket records
 * and plain ones after them, so a stray write to a word that is not the
 * list's shows up in the neighbouring element.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  pcpuFreelistClaim,
  pcpuFreelistPop,
  pcpuFreelistPopulate,
  pcpuFreelistPush,
  pcpuFreelistRelink,
} from "../../src/alloc/pcpu-freelist.js";
import { computeGeometry, elemIndexToWord, type Geometry, writeHeader } from "../../src/layout/geometry.js";
import {
  ELEM_FNEXT_I32,
  ELEM_FPREV_I32,
  ELEM_HOME_STATE_I32,
  ELEM_KEY_I32,
  HDR_HOME_END_I32,
  HOME_TAKEN,
  LRU_NONE,
  PCPU_FL_HEAD_I32,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  pcpuBase,
} from "../../src/layout/layout.js";
import { FREELIST_TIMEDOUT } from "../../src/sentinels.js";
import { LOCK_WAITERS } from "../../src/sync/owner-lock.js";
import { setStallHandler } from "../../src/sync/spin.js";
import { MapType } from "../../src/uapi.js";

const NR_CPUS = 3;
/** The lowest link a list may hold: the geometry below puts its first bucket record at the same word. */
const LO = computeGeometry(4, 8, 8, NR_CPUS, false, true, LRU_NONE, true).bucketsBytes >> 2;
const head = (c: number) => pcpuBase(c) + PCPU_FL_HEAD_I32;
const lock = (c: number) => pcpuBase(c) + PCPU_FL_LOCK_I32;
const inflight = (c: number) => pcpuBase(c) + PCPU_INFLIGHT_I32;
/** The held lock word of CPU slot `cpu` (sync/owner-lock.ts). */
const held = (cpu: number) => (cpu + 1) << 1;

interface Lists {
  g: Geometry;
  i32: Int32Array;
  /** Word index of element n. */
  e: number[];
  homeEnd: number;
}

/** A preallocated HASH map with 8 home elements and 3 plain ones (num_elems = 8 + NR_CPUS). */
function freelists(populate: boolean): Lists {
  const g = computeGeometry(4, 8, 8, NR_CPUS, false, true, LRU_NONE, true);
  const i32 = new Int32Array(new SharedArrayBuffer(g.totalBytes));
  writeHeader(i32, g, MapType.Hash, 0, 0);
  const e = Array.from({ length: g.num_elems }, (_, n) => elemIndexToWord(g, n));
  // Mark every key and value word: the lists must never write them.
  for (let n = 0; n < g.num_elems; n++)
    for (let w = ELEM_KEY_I32; w < g.elem_size >> 2; w++) i32[e[n] + w] = 0x5a00_0000 | (n << 8) | w;
  if (populate) pcpuFreelistPopulate(i32, (n) => e[n], g.num_elems, NR_CPUS);
  return { g, i32, e, homeEnd: i32[HDR_HOME_END_I32] };
}

/** List c from its head along FNEXT, checking each FPREV and each home's HOME_STATE on the way. */
function walk(l: Lists, c: number): number[] {
  const out: number[] = [];
  let prev = 0;
  for (let x = l.i32[head(c)]; x !== 0; x = l.i32[x + ELEM_FNEXT_I32]) {
    assert.ok(out.length < l.g.num_elems, `list ${c} is a cycle`);
    assert.equal(l.i32[x + ELEM_FPREV_I32], prev, `FPREV of ${x} on list ${c}`);
    if (x < l.homeEnd) assert.equal(l.i32[x + ELEM_HOME_STATE_I32], c + 1, `HOME_STATE of ${x}`);
    out.push(x);
    prev = x;
  }
  return out;
}

/**
 * Every list is `expected` (element numbers, head first), every home off
 * the lists is HOME_TAKEN, every lock is free, and no key or value word moved.
 */
function check(l: Lists, expected: number[][]): void {
  const listed = new Set<number>();
  for (let c = 0; c < NR_CPUS; c++) {
    assert.deepEqual(
      walk(l, c),
      expected[c].map((n) => l.e[n]),
      `list ${c}`,
    );
    for (const n of expected[c]) listed.add(n);
    assert.equal(l.i32[lock(c)], 0, `lock ${c} free`);
  }
  for (let n = 0; n < l.g.num_elems; n++) {
    if (l.e[n] < l.homeEnd && !listed.has(n))
      assert.equal(l.i32[l.e[n] + ELEM_HOME_STATE_I32], HOME_TAKEN, `element ${n} is off every list`);
    for (let w = ELEM_KEY_I32; w < l.g.elem_size >> 2; w++)
      assert.equal(l.i32[l.e[n] + w], 0x5a00_0000 | (n << 8) | w, `element ${n}'s word ${w} untouched`);
  }
}

test("the map under test has home elements (HOME_STATE words) and plain ones (none)", () => {
  const l = freelists(false);
  assert.equal(l.g.homes, 8);
  assert.equal(l.g.num_elems, 8 + NR_CPUS);
  assert.equal(
    l.homeEnd > l.e[7] && l.homeEnd <= l.e[8],
    true,
    "HOME_END falls between the homes and the rest",
  );
  assert.equal(ELEM_FPREV_I32, 3, "FPREV is the TAG word");
});

test("populate spreads elements as pcpu_freelist_populate(): nr / nr_cpus + 1 per CPU, each list pushed in order", () => {
  const l = freelists(true);
  // 11 elements, 3 CPUs: 4 + 4 + 3, each list's head the last pushed.
  check(l, [
    [3, 2, 1, 0],
    [7, 6, 5, 4],
    [10, 9, 8],
  ]);
});

test("push links at the head: FNEXT = old head, FPREV = 0, the old head's FPREV = e, HOME_STATE = c + 1", () => {
  const l = freelists(false);
  const { i32, e } = l;
  pcpuFreelistPush(i32, 1, e[5], LO);
  assert.deepEqual([i32[head(1)], i32[e[5] + ELEM_FNEXT_I32], i32[e[5] + ELEM_FPREV_I32]], [e[5], 0, 0]);
  assert.equal(i32[e[5] + ELEM_HOME_STATE_I32], 2);
  pcpuFreelistPush(i32, 1, e[9], LO); // a plain element: no HOME_STATE word to write
  assert.deepEqual(
    [i32[head(1)], i32[e[9] + ELEM_FNEXT_I32], i32[e[9] + ELEM_FPREV_I32], i32[e[5] + ELEM_FPREV_I32]],
    [e[9], e[5], 0, e[9]],
  );
  // INFLIGHT: cleared when it names the pushed element, kept when it names another.
  i32[inflight(1)] = e[2];
  pcpuFreelistPush(i32, 1, e[2], LO);
  assert.equal(i32[inflight(1)], 0);
  i32[inflight(1)] = e[0];
  pcpuFreelistPush(i32, 1, e[3], LO);
  assert.equal(i32[inflight(1)], e[0], "another element's INFLIGHT stays");
  i32[inflight(1)] = 0;
  check(l, [[], [3, 2, 9, 5], []]);
});

test("pop takes its own list's head first, then steals from CPU + 1, CPU + 2, ... wrapping (for_each_cpu_wrap)", () => {
  const l = freelists(true);
  const { i32, e } = l;
  const order: number[] = [];
  for (let k = 0; k < 4; k++) order.push(pcpuFreelistPop(i32, 1, NR_CPUS, LO));
  assert.deepEqual(
    order,
    [7, 6, 5, 4].map((n) => e[n]),
    "CPU 1's own list, head first",
  );
  assert.equal(i32[inflight(1)], e[4], "the popped element is the popper's INFLIGHT");
  check(l, [[3, 2, 1, 0], [], [10, 9, 8]]);
  assert.equal(pcpuFreelistPop(i32, 1, NR_CPUS, LO), e[10], "then CPU 2's, not CPU 0's");
  check(l, [[3, 2, 1, 0], [], [9, 8]]);
  for (let k = 0; k < 2; k++) pcpuFreelistPop(i32, 1, NR_CPUS, LO);
  assert.equal(pcpuFreelistPop(i32, 1, NR_CPUS, LO), e[3], "CPU 2's drained: wrap to CPU 0");
  assert.equal(i32[e[3] + ELEM_FNEXT_I32], 0, "a popped element keeps no links");
  assert.equal(i32[e[3] + ELEM_FPREV_I32], 0);
  assert.equal(i32[e[3] + ELEM_HOME_STATE_I32], HOME_TAKEN);
  assert.equal(i32[e[2] + ELEM_FPREV_I32], 0, "the new head has no FPREV");
  for (let k = 0; k < 3; k++) pcpuFreelistPop(i32, 1, NR_CPUS, LO);
  const last = i32[inflight(1)];
  assert.equal(pcpuFreelistPop(i32, 1, NR_CPUS, LO), 0, "all empty: 0");
  assert.equal(i32[inflight(1)], last, "an empty pop leaves INFLIGHT alone");
  check(l, [[], [], []]);
});

test("claim takes a home out of the middle, head or tail of whichever list holds it, in O(1)", () => {
  const l = freelists(true);
  const { i32, e } = l;
  assert.equal(pcpuFreelistClaim(i32, 2, e[5], LO), e[5], "middle of list 1");
  assert.equal(i32[inflight(2)], e[5]);
  assert.deepEqual([i32[e[5] + ELEM_FNEXT_I32], i32[e[5] + ELEM_FPREV_I32]], [0, 0]);
  check(l, [
    [3, 2, 1, 0],
    [7, 6, 4],
    [10, 9, 8],
  ]);
  assert.equal(pcpuFreelistClaim(i32, 0, e[3], LO), e[3], "head of list 0");
  check(l, [
    [2, 1, 0],
    [7, 6, 4],
    [10, 9, 8],
  ]);
  assert.equal(pcpuFreelistClaim(i32, 0, e[4], LO), e[4], "tail of list 1");
  assert.equal(i32[inflight(0)], e[4]);
  check(l, [
    [2, 1, 0],
    [7, 6],
    [10, 9, 8],
  ]);
  // An element already off every list: nothing to claim, nothing changes.
  const before = Array.from(i32);
  assert.equal(pcpuFreelistClaim(i32, 1, e[5], LO), 0);
  assert.deepEqual(Array.from(i32), before);
});

test("claim never waits: a held list lock sends it back with 0, the word untouched (no waiters bit)", () => {
  const l = freelists(true);
  const { i32, e } = l;
  i32[lock(0)] = held(2);
  const before = Array.from(i32);
  let stalls = 0;
  setStallHandler(i32, () => stalls++);
  assert.equal(pcpuFreelistClaim(i32, 1, e[1], LO), 0);
  assert.deepEqual(Array.from(i32), before);
  assert.equal(stalls, 0, "it did not wait");
  i32[lock(0)] = 0;
  assert.equal(pcpuFreelistClaim(i32, 1, e[1], LO), e[1]);
  check(l, [
    [3, 2, 0],
    [7, 6, 5, 4],
    [10, 9, 8],
  ]);
});

test("pop: an empty list whose lock is held is skipped without waiting (the unlocked peek)", () => {
  const l = freelists(false);
  const { i32, e } = l;
  pcpuFreelistPush(i32, 2, e[6], LO);
  i32[lock(0)] = held(1);
  assert.equal(pcpuFreelistPop(i32, 0, NR_CPUS, LO), e[6], "CPU 0's list is empty: straight to CPU 2's");
  assert.equal(i32[lock(0)], held(1), "never contended: no waiters bit");
});

test("pop: the only list with elements stays locked past LOCK_TIMEOUT_MS: FREELIST_TIMEDOUT, and nothing is taken", () => {
  const l = freelists(false);
  const { i32, e } = l;
  pcpuFreelistPush(i32, 1, e[0], LO);
  pcpuFreelistPush(i32, 1, e[1], LO);
  i32[lock(1)] = held(2); // CPU 2 holds list 1 and never lets go
  const before = Array.from(i32);
  assert.equal(FREELIST_TIMEDOUT < 0, true, "no element's word index");
  assert.equal(pcpuFreelistPop(i32, 0, NR_CPUS, LO), FREELIST_TIMEDOUT);
  assert.equal(i32[lock(1)], held(2) | LOCK_WAITERS, "only the waiters bit was added");
  i32[lock(1)] = held(2);
  assert.deepEqual(Array.from(i32), before, "nothing taken, INFLIGHT untouched");
  i32[lock(1)] = 0;
  check(l, [[], [1, 0], []]);
});

test("pop: a locked list is skipped after the timeout for the next list that has elements", () => {
  const l = freelists(false);
  const { i32, e } = l;
  pcpuFreelistPush(i32, 0, e[2], LO);
  pcpuFreelistPush(i32, 1, e[3], LO);
  i32[lock(0)] = held(2);
  assert.equal(pcpuFreelistPop(i32, 0, NR_CPUS, LO), e[3], "list 0 timed out, list 1 gave one");
  assert.equal(i32[inflight(0)], e[3]);
  i32[lock(0)] = 0;
  check(l, [[2], [], []]);
});

test("push: a list locked past the timeout is skipped for the next CPU's, wrapping from the last to 0", () => {
  const l = freelists(false);
  const { i32, e } = l;
  i32[lock(1)] = held(0);
  i32[inflight(1)] = e[4];
  pcpuFreelistPush(i32, 1, e[4], LO);
  assert.equal(i32[e[4] + ELEM_HOME_STATE_I32], 3, "filed on list 2: HOME_STATE 2 + 1");
  assert.equal(i32[inflight(1)], 0, "filed, so no longer the pusher's INFLIGHT");
  assert.equal(i32[lock(1)], held(0) | LOCK_WAITERS);
  i32[lock(1)] = 0;
  i32[lock(2)] = held(0);
  pcpuFreelistPush(i32, 2, e[9], LO);
  i32[lock(2)] = 0;
  check(l, [[9], [], [4]]);
});

test("relink after a crash mid-push: the old head's stale FPREV is rebuilt from the forward links", () => {
  const l = freelists(true);
  const { i32, e } = l;
  // A push of e[5] onto list 0 died after its first three stores (FNEXT, FPREV, the old head's FPREV)
  // and before the head store: e[5] is its INFLIGHT, list 0 is whole but for FPREV of its head.
  pcpuFreelistClaim(i32, 1, e[5], LO);
  i32[e[5] + ELEM_FNEXT_I32] = e[3];
  i32[e[5] + ELEM_FPREV_I32] = 0;
  i32[e[3] + ELEM_FPREV_I32] = e[5];
  pcpuFreelistRelink(i32, 0, l.g.num_elems + 1);
  check(l, [
    [3, 2, 1, 0],
    [7, 6, 4],
    [10, 9, 8],
  ]);
});

test("relink after a crash mid-claim or mid-pop: back links and HOME_STATE of every listed element are re-derived", () => {
  const l = freelists(true);
  const { i32, e } = l;
  // A claim of e[6] from list 1 died after "e[7].FNEXT = e[5]": e[5].FPREV still names e[6].
  i32[e[7] + ELEM_FNEXT_I32] = e[5];
  // And a pop from list 0 died after the head store: e[2].FPREV still names e[3].
  i32[head(0)] = e[2];
  // Home states scribbled by the half-done operations.
  i32[e[5] + ELEM_HOME_STATE_I32] = HOME_TAKEN;
  i32[e[1] + ELEM_HOME_STATE_I32] = 3;
  pcpuFreelistRelink(i32, 1, l.g.num_elems + 1);
  pcpuFreelistRelink(i32, 0, l.g.num_elems + 1);
  // (e[6] and e[3] are their dead takers' INFLIGHT: recovery files them, not relink.)
  i32[e[6] + ELEM_HOME_STATE_I32] = HOME_TAKEN;
  i32[e[3] + ELEM_HOME_STATE_I32] = HOME_TAKEN;
  check(l, [
    [2, 1, 0],
    [7, 5, 4],
    [10, 9, 8],
  ]);
});

test("relink walks at most `bound` elements: a corrupt cycle ends the walk instead of hanging it", () => {
  const l = freelists(true);
  const { i32, e } = l;
  i32[e[0] + ELEM_FNEXT_I32] = e[3]; // list 0: 3 -> 2 -> 1 -> 0 -> 3 -> ...
  for (const n of [3, 2, 1, 0]) i32[e[n] + ELEM_FPREV_I32] = -7;
  pcpuFreelistRelink(i32, 0, 3);
  assert.deepEqual(
    [3, 2, 1, 0].map((n) => i32[e[n] + ELEM_FPREV_I32]),
    [0, e[3], e[2], -7],
    "three elements visited, the fourth not",
  );
});

// ---- model: the lists against arrays, over random push / pop / claim runs on every CPU ----

type Op =
  | { kind: "push"; cpu: number; pick: number }
  | { kind: "pop"; cpu: number }
  | { kind: "claim"; cpu: number; home: number };

interface Model {
  lists: number[][];
  inflight: number[];
  /** Elements off every list (popped or claimed), by element number. */
  taken: number[];
}

/** What the kernel's order says a pop by `cpu` returns: own list's head, else the next CPU's, wrapping. */
function modelPop(m: Model, cpu: number): number {
  for (let k = 0; k < NR_CPUS; k++) {
    const list = m.lists[(cpu + k) % NR_CPUS];
    if (list.length > 0) return list.shift() as number;
  }
  return -1;
}

function modelClaim(m: Model, home: number): number {
  for (const list of m.lists) {
    const at = list.indexOf(home);
    if (at >= 0) {
      list.splice(at, 1);
      return home;
    }
  }
  return -1;
}

function apply(l: Lists, m: Model, op: Op): void {
  const { i32, e } = l;
  if (op.kind === "push") {
    if (m.taken.length === 0) return;
    const n = m.taken.splice(op.pick % m.taken.length, 1)[0];
    pcpuFreelistPush(i32, op.cpu, e[n], LO);
    m.lists[op.cpu].unshift(n);
    if (m.inflight[op.cpu] === e[n]) m.inflight[op.cpu] = 0;
    return;
  }
  const n = op.kind === "pop" ? modelPop(m, op.cpu) : modelClaim(m, op.home);
  const got =
    op.kind === "pop"
      ? pcpuFreelistPop(i32, op.cpu, NR_CPUS, LO)
      : pcpuFreelistClaim(i32, op.cpu, e[op.home], LO);
  assert.equal(got, n < 0 ? 0 : e[n], `${op.kind} by CPU ${op.cpu}`);
  if (n >= 0) {
    m.taken.push(n);
    m.inflight[op.cpu] = e[n];
  }
}

test("model: any run of push / pop / claim on three CPUs matches per-CPU arrays, word for word", () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("push" as const), cpu: fc.nat(NR_CPUS - 1), pick: fc.nat(20) }),
    fc.record({ kind: fc.constant("pop" as const), cpu: fc.nat(NR_CPUS - 1) }),
    fc.record({ kind: fc.constant("claim" as const), cpu: fc.nat(NR_CPUS - 1), home: fc.nat(7) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const l = freelists(true);
      const m: Model = {
        lists: [
          [3, 2, 1, 0],
          [7, 6, 5, 4],
          [10, 9, 8],
        ],
        inflight: [0, 0, 0],
        taken: [],
      };
      for (const o of ops) {
        apply(l, m, o);
        check(l, m.lists);
        assert.deepEqual(
          [0, 1, 2].map((c) => l.i32[inflight(c)]),
          m.inflight,
          "INFLIGHT words",
        );
      }
    }),
    { numRuns: 200 },
  );
});
