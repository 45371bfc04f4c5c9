/**
 * The floor of htab's own layout: a minimal kernel-layout hash table for u32
 * keys → u64 values in a SharedArrayBuffer, written here from scratch (it
 * shares no code with src/core), so that every bench run shows htab's lookup
 * against what the same design costs with nothing around it: no descriptor,
 * no scratch, no wasm boundary, no home-state word, no map types.
 *
 * Layout (32-bit words):
 * - n_buckets records of 64 B (one cache line), n_buckets the power of two
 *   ≥ max_entries: +0 HEAD (word index of the first element, 0 = empty),
 *   +1 SEQ (even when stable; a writer would make it odd while it writes),
 *   +2, +3 spare (htab's OWNER and HOME_STATE), then the bucket's home
 *   element at +4 in the same line;
 * - an overflow area of max_entries 32-byte elements for chains.
 * An element: +0 NEXT (word index, 0 = end), +1 HASH, +4 KEY, +6 VALUE (u64,
 * 8-byte aligned). The first key of a bucket takes its home element, which
 * stays first in the chain; later keys of the bucket take overflow elements
 * linked after it. A key is hashed with the kernel's one-word jhash
 * (src/hash/jhash.ts) and a fixed seed; its bucket is hash & (n_buckets - 1).
 *
 * The floor has no writers: it is filled once by `floorInsert()` before it
 * is read, from the thread that reads it, so nothing here is a concurrent
 * update path and only lookups are measured. Two lookups, each one
 * monomorphic function over a `FloorTable`, with caller buffers as htab's
 * `lookupElem` gets them (the key read from a 4-byte Uint8Array, the value
 * written into an 8-byte one):
 * - `floorLookupOrdered()`: what a correct lock-free reader of this layout
 *   must do at least: `Atomics.load` of SEQ before and after, plain loads of
 *   links, hash, key and value in between, a retry while SEQ is odd or
 *   changed (bounded: -ETIMEDOUT after FLOOR_SPIN_LIMIT tries), a link
 *   followed only if it lies inside the table, a walk of at most
 *   max_entries steps (htab's reliability rules);
 * - `floorLookupPlain()`: the same walk with every load plain, SEQ read
 *   plainly before and after, and no link or walk-bound check. Not correct
 *   under concurrent writers (nothing orders the loads; a corrupt link would
 *   be followed): a floor, not a design.
 */
import { jhash2OneWord } from "../../src/hash/jhash.js";
import { ORDER_MASK, putU32 } from "../keys.js";
import type { PointPeer } from "../peer.js";

/** Record (bucket) fields, in words from the record's start. */
const REC_WORDS = 16;
const REC_SHIFT = 4;
export const HEAD = 0;
export const SEQ = 1;
/** The bucket's home element, in the bucket's own cache line. */
export const HOME = 4;
/** Element fields, in words from the element's start. */
const ELEM_WORDS = 8;
export const NEXT = 0;
export const HASH = 1;
export const KEY = 4;
export const VALUE = 6;
/** The hash seed (htab draws one per map; a fixed one keeps runs comparable). */
const SEED = 0x2545f491;
/** Seq samples before a lookup gives up (no writer exists, so never reached). */
export const FLOOR_SPIN_LIMIT = 1 << 16;
/** The kernel's errnos, as htab returns them. */
export const FLOOR_ENOENT = -2;
export const FLOOR_ETIMEDOUT = -110;

/** One floor table: its words and the few numbers a lookup needs (one hidden class). */
export class FloorTable {
  readonly i32: Int32Array;
  /** n_buckets - 1. */
  readonly mask: number;
  readonly maxEntries: number;
  /** The highest word index an element can start at: a link above it is outside the table. */
  readonly lastElem: number;
  /** First word of the overflow area. */
  readonly overflow: number;
  /** Overflow elements in use. */
  used = 0;
  /** Keys held (at most maxEntries, as in htab). */
  count = 0;

  constructor(maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 1 << 24)
      throw new RangeError(`floor table: max_entries ${maxEntries} is not in 1..2^24`);
    let nBuckets = 1;
    while (nBuckets < maxEntries) nBuckets *= 2;
    this.mask = nBuckets - 1;
    this.maxEntries = maxEntries;
    this.overflow = nBuckets * REC_WORDS;
    const words = this.overflow + maxEntries * ELEM_WORDS;
    this.i32 = new Int32Array(new SharedArrayBuffer(words * 4));
    this.lastElem = words - ELEM_WORDS;
  }

  /** Bytes of shared memory the table takes. */
  get bytes(): number {
    return this.i32.byteLength;
  }
}

/** The word index of the record (bucket) `key` hashes to. */
export function floorRecordOf(t: FloorTable, key: number): number {
  return (jhash2OneWord(key | 0, SEED) & t.mask) << REC_SHIFT;
}

/**
 * Insert or overwrite `key` with the value `hi:lo` (fill only: the floor has
 * no concurrent writers). Throws when all max_entries elements are used.
 */
export function floorInsert(t: FloorTable, key: number, lo: number, hi: number): void {
  const i32 = t.i32;
  const k = key | 0;
  const hash = jhash2OneWord(k, SEED);
  const rec = (hash & t.mask) << REC_SHIFT;
  for (let e = i32[rec + HEAD], steps = 0; e !== 0 && steps < t.maxEntries; e = i32[e + NEXT], steps++)
    if (i32[e + HASH] === hash && i32[e + KEY] === k) {
      writeElem(t, rec, e, -1, hash, k, lo, hi);
      return;
    }
  if (t.count >= t.maxEntries)
    throw new RangeError(`floor table: insert of key ${key >>> 0}: all ${t.maxEntries} entries used`);
  t.count++;
  const home = rec + HOME;
  if (i32[rec + HEAD] === 0) {
    writeElem(t, rec, home, 0, hash, k, lo, hi);
    i32[rec + HEAD] = home;
    return;
  }
  // The home is taken (it is the head): an overflow element goes right after it.
  const e = t.overflow + t.used * ELEM_WORDS;
  t.used++;
  writeElem(t, rec, e, i32[home + NEXT], hash, k, lo, hi);
  i32[home + NEXT] = e;
}

/** Write element `e` (`next` < 0: keep its link) inside a seq window, as a writer of this layout would. */
function writeElem(
  t: FloorTable,
  rec: number,
  e: number,
  next: number,
  hash: number,
  k: number,
  lo: number,
  hi: number,
) {
  const i32 = t.i32;
  Atomics.add(i32, rec + SEQ, 1); // odd: readers of this bucket retry
  if (next >= 0) i32[e + NEXT] = next;
  i32[e + HASH] = hash;
  i32[e + KEY] = k;
  i32[e + VALUE] = lo;
  i32[e + VALUE + 1] = hi;
  Atomics.add(i32, rec + SEQ, 1); // even again, one step on
}

/** Copy the value of element `e` into `out` (8 bytes, little-endian). */
function copyValue(i32: Int32Array, e: number, out: Uint8Array): void {
  const lo = i32[e + VALUE];
  const hi = i32[e + VALUE + 1];
  out[0] = lo;
  out[1] = lo >>> 8;
  out[2] = lo >>> 16;
  out[3] = lo >>> 24;
  out[4] = hi;
  out[5] = hi >>> 8;
  out[6] = hi >>> 16;
  out[7] = hi >>> 24;
}

/**
 * The correct floor: look `key` (4 bytes, little-endian) up and copy its
 * value into `out` (8 bytes). @returns 0, FLOOR_ENOENT or FLOOR_ETIMEDOUT
 */
export function floorLookupOrdered(t: FloorTable, key: Uint8Array, out: Uint8Array): number {
  const i32 = t.i32;
  const k = key[0] | (key[1] << 8) | (key[2] << 16) | (key[3] << 24);
  const hash = jhash2OneWord(k, SEED);
  const rec = (hash & t.mask) << REC_SHIFT;
  const lastElem = t.lastElem;
  const bound = t.maxEntries;
  for (let spins = 0; spins < FLOOR_SPIN_LIMIT; spins++) {
    const s = Atomics.load(i32, rec + SEQ);
    if ((s & 1) !== 0) continue; // a writer is inside the bucket
    let e = i32[rec + HEAD];
    let r = FLOOR_ENOENT;
    for (let steps = 0; e !== 0 && steps < bound; steps++) {
      if (e >>> 0 > lastElem) break; // a link outside the table (or negative) is never followed
      if (i32[e + HASH] === hash && i32[e + KEY] === k) {
        copyValue(i32, e, out);
        r = 0;
        break;
      }
      e = i32[e + NEXT];
    }
    if (Atomics.load(i32, rec + SEQ) === s) return r;
  }
  return FLOOR_ETIMEDOUT;
}

/**
 * The unordered floor: the same walk with plain loads only and no link or
 * walk-bound check (not correct under writers). @returns 0 or FLOOR_ENOENT
 */
export function floorLookupPlain(t: FloorTable, key: Uint8Array, out: Uint8Array): number {
  const i32 = t.i32;
  const k = key[0] | (key[1] << 8) | (key[2] << 16) | (key[3] << 24);
  const hash = jhash2OneWord(k, SEED);
  const rec = (hash & t.mask) << REC_SHIFT;
  for (let spins = 0; spins < FLOOR_SPIN_LIMIT; spins++) {
    const s = i32[rec + SEQ];
    if ((s & 1) !== 0) continue;
    let e = i32[rec + HEAD];
    let r = FLOOR_ENOENT;
    while (e !== 0) {
      if (i32[e + HASH] === hash && i32[e + KEY] === k) {
        copyValue(i32, e, out);
        r = 0;
        break;
      }
      e = i32[e + NEXT];
    }
    if (i32[rec + SEQ] === s) return r;
  }
  return FLOOR_ETIMEDOUT;
}

/** A floor table of `maxEntries` holding `present`, key i with the value i (as htabMap fills htab). */
export function floorTable(present: Uint32Array, maxEntries: number): FloorTable {
  const t = new FloorTable(maxEntries);
  for (let i = 0; i < present.length; i++) floorInsert(t, present[i], i, 0);
  return t;
}

/** The ordered floor as a peer: the htab peer's loop, caller buffers, floorLookupOrdered(). */
export function floorOrderedPeer(t: FloorTable): PointPeer {
  const k = new Uint8Array(4);
  const v = new Uint8Array(8);
  return {
    name: "floor-ordered",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        if (floorLookupOrdered(t, k, v) === 0) hits++;
      }
      return hits;
    },
    close() {},
  };
}

/** The unordered floor as a peer: the same loop, floorLookupPlain(). */
export function floorPlainPeer(t: FloorTable): PointPeer {
  const k = new Uint8Array(4);
  const v = new Uint8Array(8);
  return {
    name: "floor-plain",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        if (floorLookupPlain(t, k, v) === 0) hits++;
      }
      return hits;
    },
    close() {},
  };
}
