/**
 * A linearizability checker for per-key register histories: Wing & Gong's
 * search with Lowe's memoization of (linearized set, state), as porcupine
 * does it. Histories are split by key first (linearizability is local).
 *
 * Each operation has a call and a return time from one shared logical clock:
 * if a.ret < b.call then a finished before b started.
 */

/** Operation kinds and the model they are checked against. */
export const OpKind = {
  Lookup: 0,
  Update: 1,
  Delete: 2,
  LookupAndDelete: 3,
  CompareAndDelete: 4,
  CompareAndSwap: 5,
  /** compute() toggling the key: delete it if present, else insert `arg`; `result` is the value seen (-1 absent) or E2BIG. */
  ComputeToggle: 6,
} as const;

export interface Op {
  kind: number;
  key: number;
  /** Update: flags. CompareAndSwap: the expected value. */
  flags: number;
  /** Update/CompareAndSwap: the value written (unique per write). CompareAndDelete: the expected value. */
  arg: number;
  /** Lookup/LookupAndDelete: value seen, or -1 for ENOENT. Update/Delete: 0 or -errno. */
  result: number;
  call: number;
  ret: number;
}

const ABSENT = -1;
const ENOENT = -2;
const EEXIST = -17;
const E2BIG = -7;
const EBUSY = -16;

/** Apply `op` to register state `s` (-1 = absent); returns the new state, or undefined when op's result is impossible. */
function step(s: number, op: Op): number | undefined {
  switch (op.kind) {
    case OpKind.Lookup:
      return op.result === s ? s : undefined;
    case OpKind.LookupAndDelete:
      return op.result === s ? ABSENT : undefined;
    case OpKind.Delete:
      if (s === ABSENT) return op.result === ENOENT ? s : undefined;
      return op.result === 0 ? ABSENT : undefined;
    case OpKind.CompareAndDelete:
      if (s === ABSENT) return op.result === ENOENT ? s : undefined;
      if (s === op.arg) return op.result === 0 ? ABSENT : undefined;
      return op.result === EBUSY ? s : undefined;
    case OpKind.CompareAndSwap:
      if (s === ABSENT) return op.result === ENOENT ? s : undefined;
      if (s === op.flags) return op.result === 0 ? op.arg : undefined;
      return op.result === EBUSY ? s : undefined;
    case OpKind.ComputeToggle:
      if (op.result === E2BIG) return s === ABSENT ? s : undefined;
      if (op.result !== s) return undefined;
      return s === ABSENT ? op.arg : ABSENT;
    case OpKind.Update: {
      const exists = s !== ABSENT;
      // A full map refuses a new key and changes nothing. Per-key histories cannot see
      // fullness (other keys decide it), so E2BIG is accepted wherever the key is absent.
      if (op.result === E2BIG) return !exists && op.flags !== 2 ? s : undefined;
      let want = 0;
      if (op.flags === 1 && exists) want = EEXIST;
      if (op.flags === 2 && !exists) want = ENOENT;
      if (op.result !== want) return undefined;
      return want === 0 ? op.arg : s;
    }
    default:
      return undefined;
  }
}

interface Entry {
  isCall: boolean;
  id: number;
  op: Op;
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

export interface CheckResult {
  ok: boolean;
  /** Operations checked. */
  ops: number;
  /** Keys whose history is not linearizable. */
  badKeys: number[];
  /** Keys whose search exceeded the step budget (counted as failures). */
  inconclusive: number[];
}

/**
 * Every register state in which some linearization of `ops` (one segment of
 * one key's history) can end, starting from `start`: empty when none exists,
 * undefined when the step budget ran out. Wing & Gong's search with Lowe's
 * memo of (linearized set, state), run to exhaustion instead of to the first
 * linearization.
 */
function searchSegment(ops: Op[], start: number, budget: { steps: number }): Set<number> | undefined {
  const events: { t: number; isCall: boolean; id: number }[] = [];
  ops.forEach((op, id) => {
    events.push({ t: op.call, isCall: true, id }, { t: op.ret, isCall: false, id });
  });
  events.sort((a, b) => a.t - b.t);
  const head: Entry = { isCall: false, id: -1, op: ops[0], match: null, prev: null, next: null };
  let last = head;
  const calls: Entry[] = new Array(ops.length);
  for (const ev of events) {
    const e: Entry = { isCall: ev.isCall, id: ev.id, op: ops[ev.id], match: null, prev: last, next: null };
    last.next = e;
    last = e;
    if (ev.isCall) calls[ev.id] = e;
    else calls[ev.id].match = e;
  }
  const lift = (e: Entry) => {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Entry) => {
    const m = e.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };
  // Linearized set: a bitset plus a Zobrist hash of it, so the cache key costs O(1).
  const bits = new Uint32Array((ops.length + 31) >>> 5);
  const z1 = new Uint32Array(ops.length);
  const z2 = new Uint32Array(ops.length);
  let seed = 0x2545f491;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  for (let i = 0; i < ops.length; i++) {
    z1[i] = rnd();
    z2[i] = rnd();
  }
  let h1 = 0;
  let h2 = 0;
  let state = start;
  const ends = new Set<number>();
  const cache = new Map<number, { h2: number; state: number; bits: Uint32Array }[]>();
  const seen = (nh1: number, nh2: number, ns: number, id: number): boolean => {
    const slot = (nh1 ^ Math.imul(ns, 0x9e3779b1)) >>> 0;
    let list = cache.get(slot);
    if (!list) cache.set(slot, (list = []));
    bits[id >>> 5] ^= 1 << (id & 31);
    try {
      for (const c of list) {
        if (c.h2 !== nh2 || c.state !== ns) continue;
        let same = true;
        for (let i = 0; i < bits.length && same; i++) same = c.bits[i] === bits[i];
        if (same) return true;
      }
      list.push({ h2: nh2, state: ns, bits: bits.slice() });
      return false;
    } finally {
      bits[id >>> 5] ^= 1 << (id & 31);
    }
  };
  const stack: { e: Entry; state: number }[] = [];
  let entry = head.next;
  const backtrack = (): boolean => {
    if (stack.length === 0) return false;
    const top = stack.pop() as { e: Entry; state: number };
    state = top.state;
    h1 = (h1 ^ z1[top.e.id]) >>> 0;
    h2 = (h2 ^ z2[top.e.id]) >>> 0;
    bits[top.e.id >>> 5] ^= 1 << (top.e.id & 31);
    unlift(top.e);
    entry = top.e.next;
    return true;
  };
  for (;;) {
    if (--budget.steps < 0) return undefined;
    if (head.next === null) {
      // Everything linearized: one possible end state. Look for others.
      ends.add(state);
      if (!backtrack()) return ends;
      continue;
    }
    const e = entry as Entry;
    if (e.isCall) {
      const ns = step(state, e.op);
      if (ns !== undefined) {
        const nh1 = (h1 ^ z1[e.id]) >>> 0;
        const nh2 = (h2 ^ z2[e.id]) >>> 0;
        if (!seen(nh1, nh2, ns, e.id)) {
          stack.push({ e, state });
          state = ns;
          h1 = nh1;
          h2 = nh2;
          bits[e.id >>> 5] ^= 1 << (e.id & 31);
          lift(e);
          entry = head.next;
          continue;
        }
      }
      entry = e.next;
    } else if (!backtrack()) return ends;
  }
}

/**
 * Check one key's history. Returns true, false, or undefined when the budget
 * ran out. The history is cut at its quiescent points (no operation pending:
 * every operation before the cut returned before any after it was called),
 * and the segments are searched one after another, each from every state
 * the previous one can end in (P-compositionality, as porcupine does): the
 * search stays linear in the history's length instead of carrying a set of
 * all operations through it.
 */
export function checkKey(ops: Op[], budget = 50_000_000): boolean | undefined {
  const sorted = [...ops].sort((a, b) => a.call - b.call);
  const left = { steps: budget };
  let states = new Set<number>([ABSENT]);
  let from = 0;
  let maxRet = Number.NEGATIVE_INFINITY;
  for (let i = 0; i <= sorted.length; i++) {
    if (i === sorted.length || (i > from && sorted[i].call > maxRet)) {
      const seg = sorted.slice(from, i);
      const next = new Set<number>();
      for (const s of states) {
        const ends = searchSegment(seg, s, left);
        if (ends === undefined) return undefined;
        for (const e of ends) next.add(e);
      }
      if (next.size === 0) return false;
      states = next;
      from = i;
    }
    if (i < sorted.length) maxRet = Math.max(maxRet, sorted[i].ret);
  }
  return true;
}

/** Split by key and check each key's history. */
export function checkHistory(ops: Op[]): CheckResult {
  const byKey = new Map<number, Op[]>();
  for (const op of ops) {
    let l = byKey.get(op.key);
    if (!l) byKey.set(op.key, (l = []));
    l.push(op);
  }
  const badKeys: number[] = [];
  const inconclusive: number[] = [];
  for (const [key, list] of byKey) {
    const r = checkKey(list);
    if (r === false) badKeys.push(key);
    if (r === undefined) inconclusive.push(key);
  }
  return { ok: badKeys.length === 0 && inconclusive.length === 0, ops: ops.length, badKeys, inconclusive };
}
