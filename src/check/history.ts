/**
 * Recording operation histories for the linearizability checker: random
 * lookups, updates (ANY/NOEXIST/EXIST), deletes and lookup-and-deletes on a
 * small u32 key space, each stamped with call/return tickets from a shared
 * clock. Used by the stress tests and by `htab demo`.
 */

import { syscallValueBytes } from "../layout/layout.js";
import type { RawMap } from "../map/raw-map.js";
import type { Op } from "./linearizability.js";
import { xorshift32 } from "./xorshift.js";

/** Int32s per logged operation: kind, key, flags, arg, result, call, ret. */
export const REC = 7;
/** A lookup whose two value halves disagree is logged with this result. */
export const TORN = -99;

export interface RecordOptions {
  /** Operations to run. */
  ops: number;
  /** Keys are 0 .. keys-1 (u32, little-endian). */
  keys: number;
  /** Worker id, 1..127: written values are (id << 24 | i). */
  id: number;
  seed: number;
  /** Shared Int32Array word 0 is the clock. */
  clock: Int32Array;
}

/**
 * Run random operations on `map` (key_size 4, values of at least 8 bytes) and log them.
 * Values carry their own complement in the second half, so a torn copy shows.
 * On maps that have them, compare-and-delete and compare-and-swap are mixed in,
 * expecting the value this worker last saw for the key, and a quarter of the
 * lookups go through lookupMany() with three other keys.
 */
export function recordRandomOps(map: RawMap, o: RecordOptions): Int32Array {
  // Compare-and-delete/swap exist on the SAB backend only (the kernel has none).
  const cmp = map.compareAndDeleteElem && map.compareAndSwapElem ? map : null;
  const lastSeen = new Int32Array(o.keys).fill(-1);
  const exp = new Uint8Array(4);
  const ev = new DataView(exp.buffer);
  const log = new Int32Array(o.ops * REC);
  const key = new Uint8Array(4);
  const kv = new DataView(key.buffer);
  // Per-CPU maps move every CPU's slot; the logged value sits in the first 8 bytes.
  const bytes = syscallValueBytes(map.info.type, map.info.valueSize, map.info.nrCpus);
  const val = new Uint8Array(bytes);
  const vv = new DataView(val.buffer);
  const out = new Uint8Array(bytes);
  const ov = new DataView(out.buffer);
  const next = xorshift32(o.seed);
  // lookupMany() (SAB maps): every fourth lookup goes with 3 other keys in one call; only its own result is logged.
  const many = map.lookupMany !== undefined ? map : null;
  const mk = new Uint8Array(16);
  const mkv = new DataView(mk.buffer);
  const mout = new Uint8Array(bytes * 4);
  const mres = new Int32Array(4);
  for (let i = 0; i < o.ops; i++) {
    const r = next() % 100;
    const k = next() % o.keys;
    kv.setUint32(0, k, true);
    let kind: number;
    let flags = 0;
    let arg = 0;
    let result: number;
    const call = Atomics.add(o.clock, 0, 1);
    if (r < 40 && many !== null && (i & 3) === 0) {
      kind = 0;
      mkv.setUint32(0, k, true);
      for (let j = 1; j < 4; j++) mkv.setUint32(j * 4, next() % o.keys, true);
      many.lookupMany!(mk, mout, mres);
      out.set(mout.subarray(0, bytes));
      result = mres[0] === 0 ? ov.getInt32(0, true) : -1;
    } else if (r < 40) {
      kind = 0;
      result = map.lookupElem(key, out) === 0 ? ov.getInt32(0, true) : -1;
    } else if (cmp !== null && r >= 92 && r < 95) {
      kind = 4;
      arg = lastSeen[k];
      ev.setInt32(0, arg, true);
      result = cmp.compareAndDeleteElem!(key, exp, 0, 4);
    } else if (cmp?.compute && r >= 98) {
      // compute(): read and toggle atomically under the bucket lock.
      kind = 6;
      arg = (o.id << 24) | i;
      vv.setInt32(0, arg, true);
      vv.setInt32(4, ~arg, true);
      let seen = -1;
      const err = cmp.compute(key, (cur) => {
        if (cur === undefined) return val;
        seen = new DataView(cur.buffer, cur.byteOffset).getInt32(0, true);
        return undefined;
      });
      result = err === 0 ? seen : err;
    } else if (cmp !== null && r >= 95 && r < 98) {
      kind = 5;
      flags = lastSeen[k];
      arg = (o.id << 24) | i;
      ev.setInt32(0, flags, true);
      vv.setInt32(0, arg, true);
      vv.setInt32(4, ~arg, true);
      result = cmp.compareAndSwapElem!(key, exp, val, 0, 4);
    } else if (r < 75) {
      kind = 1;
      flags = r < 55 ? 0 : r < 65 ? 1 : 2;
      arg = (o.id << 24) | i;
      vv.setInt32(0, arg, true);
      vv.setInt32(4, ~arg, true);
      result = map.updateElem(key, val, flags);
    } else if (r < 92) {
      kind = 2;
      result = map.deleteElem(key);
    } else {
      kind = 3;
      result = map.lookupAndDeleteElem(key, out) === 0 ? ov.getInt32(0, true) : -1;
    }
    const ret = Atomics.add(o.clock, 0, 1);
    if ((kind === 0 || kind === 3) && result !== -1 && ov.getInt32(4, true) !== ~result) result = TORN;
    if ((kind === 0 || kind === 3) && result !== TORN) lastSeen[k] = result;
    const at = i * REC;
    log[at] = kind;
    log[at + 1] = k;
    log[at + 2] = flags;
    log[at + 3] = arg;
    log[at + 4] = result;
    log[at + 5] = call;
    log[at + 6] = ret;
  }
  return log;
}

/** Decode logs into operations, counting torn reads. */
export function decodeHistory(logs: Int32Array[]): { ops: Op[]; torn: number } {
  const ops: Op[] = [];
  let torn = 0;
  for (const log of logs) {
    for (let o = 0; o < log.length; o += REC) {
      if (log[o + 4] === TORN) torn++;
      ops.push({
        kind: log[o],
        key: log[o + 1],
        flags: log[o + 2],
        arg: log[o + 3],
        result: log[o + 4],
        call: log[o + 5],
        ret: log[o + 6],
      });
    }
  }
  return { ops, torn };
}
