/**
 * Lock-free reads (kernel: htab_map_lookup_elem() over
 * lookup_nulls_elem_raw()). A reader samples the bucket seq, walks the
 * chain, copies what it found, and keeps the result only if the seq is
 * unchanged and no write was in progress: an element freed and reused
 * meanwhile (into this or another bucket) cannot give a false-positive key
 * match or a torn value.
 */
import { JHASH_INITVAL, jhash2OneWord, jhashFinal } from "../hash/jhash.js";
import {
  BUCKET_HEAD_I32,
  BUCKET_HOME_I32,
  BUCKET_HOME_STATE_I32,
  BUCKET_SEQLOCK_I32,
  ELEM_HASH_I32,
  ELEM_KEY_I32,
  ELEM_NEXT_I32,
  HOME_LINKED,
  MANY_CHUNK,
} from "../layout/layout.js";
import { READ_TIMEDOUT } from "../sentinels.js";
import { SEQ_LOCKED, SEQ_WAITERS, SEQ_WRITING, seqReadable, seqUnchanged } from "../sync/bucket-seqlock.js";
import { SPIN_LIMIT } from "../sync/spin.js";
import { MapFlags } from "../uapi.js";
import { bucketOf } from "./bucket.js";
import { copyBytesOut, copyValueOut, hashKey, hashKeyAt, keyEquals, scratchHash } from "./elem.js";
import { hasWhole, lookupHashed } from "./fast.js";
import type { FastPlan } from "./fast-plan.js";
import { ENOENT, ETIMEDOUT, type HtabView, type ShapeReader } from "./htab-view.js";
import { enter, exit } from "./section.js";
import { copyValueOutLocked } from "./value-lock.js";
import { readStalled } from "./waits.js";

/**
 * Lock-free lookup of the scratch key; copies the value into `out` when found.
 * Returns the element, validated as linked while it was read, or 0.
 * Kernel: lookup_nulls_elem_raw(), with the bucket seq in place of the nulls check.
 */
export function lookupCopy(v: HtabView, hash: number, out: Uint8Array | null, outOff: number): number {
  const f = v.fast;
  if (f !== null && (out === null || f.values)) {
    const e = lookupHashed(v, f, hash, out, outOff);
    if (e >= 0) return e;
    // -1: a holder is writing the bucket; the JS walk below spins (bounded).
  }
  return lookupJs(v, hash, out, outOff);
}

/** lookupCopy() in JS. */
export function lookupJs(v: HtabView, hash: number, out: Uint8Array | null, outOff: number): number {
  const i32 = v.i32;
  const b = bucketOf(v, hash);
  const seqIdx = b + BUCKET_SEQLOCK_I32;
  for (let spins = 0; ; spins++) {
    const s = Atomics.load(i32, seqIdx);
    if (!seqReadable(s)) {
      // A holder is relinking the chain or rewriting a value in place: a few stores, spin.
      // (A holder that merely holds the lock, like a running compute() callback, blocks no reader.)
      if (spins > SPIN_LIMIT && readStalled(v, b, spins)) return READ_TIMEDOUT;
      continue;
    }
    let e = i32[b + BUCKET_HEAD_I32];
    let found = 0;
    for (let steps = 0; e !== 0 && steps < v.walkBound; steps++) {
      if (i32[e + ELEM_HASH_I32] === hash && keyEquals(v, e)) {
        if (out !== null) copyValueOut(v, e, out, outOff);
        found = e;
        break;
      }
      e = i32[e + ELEM_NEXT_I32];
    }
    // Validate: nothing we read was relinked or reused while we read it.
    if (seqUnchanged(s, Atomics.load(i32, seqIdx))) return found;
  }
}

/** Lock-free search for the scratch key; returns the element, validated as linked, or 0. */
export function findElem(v: HtabView, hash: number): number {
  return lookupCopy(v, hash, null, 0);
}

/**
 * BPF_F_LOCK lookup: find the element, then copy under its spin lock. A
 * section keeps the element from being reused while we hold its lock word.
 */
export function lookupLocked(v: HtabView, hash: number, out: Uint8Array): number {
  enter(v);
  try {
    const e = findElem(v, hash);
    if (e === READ_TIMEDOUT) return ETIMEDOUT;
    if (e === 0) return v.err.fail(ENOENT, "key not found");
    return copyValueOutLocked(v, e, out, 0) ? 0 : ETIMEDOUT;
  } finally {
    exit(v);
  }
}

/**
 * A control-plane lookup of `key` into `value` (kernel: map_lookup_elem()).
 * Requires: arguments checked, flags 0. @returns 0, -ENOENT, -ETIMEDOUT
 */
export function lookupElem(v: HtabView, key: Uint8Array, value: Uint8Array): number {
  // The facade already tried the whole lookup in wasm where it applies (Htab.lookupElem()).
  return lookupErrno(v, lookupCopy(v, hashKey(v, key), value, 0));
}

/** A lookupCopy() result as an errno: 0 when found, else -ETIMEDOUT (lastError set by the wait) or -ENOENT. */
function lookupErrno(v: HtabView, e: number): number {
  if (e > 0) return 0;
  if (e === READ_TIMEDOUT) return ETIMEDOUT;
  return v.err.fail(ENOENT, "key not found");
}

/** Whether `key` is present (a lookup that copies nothing). Requires: arguments checked. */
export function hasElem(v: HtabView, key: Uint8Array): boolean {
  const f = v.fast;
  const e = f?.wordKeys ? hasWhole(v, f, key) : -1;
  return e > 0 || (e < 0 && lookupCopy(v, hashKey(v, key), null, 0) > 0);
}

/**
 * Look up `results.length` keys (`keys`: count x key_size bytes) into
 * `values` (count x value bytes): `results[i]` is 0 or -ENOENT (or
 * -ETIMEDOUT). Each key's lookup is linearizable on its own, with the same
 * seq validation as a single lookup. On the fast path the keys go through
 * wasm MANY_CHUNK at a time, every key's bucket and first element touched
 * before any lookup depends on them, so that their cache misses overlap.
 * Requires: arguments checked. @returns the number found
 */
export function lookupMany(v: HtabView, keys: Uint8Array, values: Uint8Array, results: Int32Array): number {
  const f = v.fast;
  if (f !== null && f.manyBytes !== 0) {
    const count = results.length;
    const ks = v.keySize;
    const vb = v.valueBytes;
    let found = 0;
    let i = 0;
    const i32 = v.i32;
    const kw = ks >> 2;
    const keysW = (v.outOff + v.geometry.scratchValueBytes) >> 2;
    const outs = (keysW << 2) + MANY_CHUNK * ks;
    const resW = (outs + MANY_CHUNK * v.geometry.scratchValueBytes) >> 2;
    const step = v.geometry.scratchValueBytes;
    const touch = v.geometry.cached ? 0 : 1;
    for (; i < count; i += MANY_CHUNK) {
      const n = Math.min(MANY_CHUNK, count - i);
      for (let j = 0, o = i * ks, w = keysW; j < n * kw; j++, o += 4, w++)
        i32[w] = keys[o] | (keys[o + 1] << 8) | (keys[o + 2] << 16) | (keys[o + 3] << 24);
      f.lookupMany(n, touch);
      for (let j = 0; j < n; j++) {
        const r = i32[resW + j];
        const at = i + j;
        if (r > 0) {
          copyBytesOut(v, outs + j * step, values, at * vb);
          results[at] = 0;
          found++;
        } else if (r === 0) results[at] = ENOENT;
        else results[at] = lookupOne(v, keys, at, values); // a writer held the bucket
      }
    }
    return found;
  }
  return lookupEach(v, keys, values, results);
}

/** lookupMany() one key at a time: the inline reader where the map's shape has one, else lookupCopy(). */
function lookupEach(v: HtabView, keys: Uint8Array, values: Uint8Array, results: Int32Array): number {
  const rd = v.reader;
  const ks = v.keySize;
  const vb = v.valueBytes;
  let found = 0;
  for (let i = 0; i < results.length; i++) {
    // A bucket being written (-1) goes the long way.
    const e = rd !== null ? rd.lookup(keys, i * ks, values, i * vb) : -1;
    const r = e > 0 ? 0 : e === 0 ? ENOENT : lookupOne(v, keys, i, values);
    results[i] = r;
    if (r === 0) found++;
  }
  return found;
}

/** Key `i` of `keys` into value slot `i` of `values`. @returns 0, -ENOENT, -ETIMEDOUT */
function lookupOne(v: HtabView, keys: Uint8Array, i: number, values: Uint8Array): number {
  return lookupErrno(v, lookupCopy(v, hashKeyAt(v, keys, i * v.keySize), values, i * v.valueBytes));
}

/** lookupElem() of the key in this slot's scratch into its scratch value (Htab.keyScratch, valueScratch). */
export function lookupScratch(v: HtabView): number {
  const out = v.valueScratch;
  const f = v.fast;
  if (f?.wordKeys && f.values) {
    // wasm copies the value straight into the scratch value: no copy out.
    const e = f.lookupWhole();
    if (e > 0) {
      if (v.spinLockOff >= 0) out.fill(0, v.spinLockOff, v.spinLockOff + 4); // reads as zero
      return 0;
    }
    if (e === 0) return v.err.fail(ENOENT, "key not found");
  } else if (v.reader !== null) {
    // A JS-only view: the inline reader of the map's shape, from the scratch key's words.
    const e = v.reader.lookupWords(v.kw, out, 0);
    if (e > 0) return 0;
    if (e === 0) return v.err.fail(ENOENT, "key not found");
  }
  return lookupErrno(v, lookupCopy(v, scratchHash(v), out, 0));
}

// ---------------------------------------------------------------- the inline reader

/**
 * The lock-free read of one key, in JavaScript that V8 inlines into the
 * caller's loop (no wasm boundary, no scratch round trip), specialised per
 * map shape once at construction (readerFor()): one class per key width
 * (u32, u64, 16-byte keys; the key's words hashed by the kernel's jhash2
 * written out for that width) over values of 4, 8, 12 or 16 bytes.
 * Each lookup makes two Atomics calls, the bucket word before and after;
 * everything between is plain loads into locals (the home element's state,
 * hash, key and value; a chain walk bounded by the element count with every
 * link checked against the map's bounds), and the value reaches the
 * caller's buffer only after the second sample showed the bucket unchanged
 * (layout.ts, "Why a reader's plain loads are not torn").
 *
 * The lookups return the element, 0 when absent, or -1 when this path
 * cannot answer (the bucket was being written or changed meanwhile, a link
 * is outside the map, the walk reached its bound): the caller then runs
 * lookupCopy(), which spins (bounded) and reports. The hot function stays
 * under V8's inlining budget (the walk and the copy out are small calls of
 * their own), so that a caller's loop holds the whole read.
 */
export abstract class InlineReader implements ShapeReader {
  // Fields are `declare`d and set in the constructor only: an ES2022 class
  // field would first define each as undefined, and V8 then keeps a field's
  // representation general (a tagged load and check per use; measured 5 ns a
  // lookup at 1k).
  declare protected readonly i32: Int32Array;
  declare protected readonly mask: number;
  declare protected readonly buckets: number;
  declare protected readonly stride: number;
  declare protected readonly rnd: number;
  /** Whether bucket records hold home elements (checked first, in the bucket's line). */
  declare protected readonly homed: boolean;
  declare protected readonly bound: number;
  /** Lowest word a link may name (linkInMap()); the highest is i32.length - elemStride, read per walk (NO_PREALLOC grows). */
  declare protected readonly lo: number;
  declare protected readonly elemStride: number;
  /** Word offset of the value in an element. */
  declare protected readonly voff: number;
  /** Value words: 1..4 (an element's value area holds at least 2, and 4 when there are more than 2). */
  declare protected readonly vw: number;

  constructor(v: HtabView) {
    this.i32 = v.i32;
    this.mask = v.mask;
    this.buckets = v.bucketsBase;
    this.stride = v.bucketStrideI32;
    this.rnd = v.hashrnd;
    this.homed = v.homes > 0;
    this.bound = v.walkBound;
    this.lo = v.bucketsBase;
    this.elemStride = v.elemStrideI32;
    this.voff = v.valueOffBytes >> 2;
    this.vw = v.valueBytes >> 2;
  }

  /** Look up the key at byte `at` of `keys` (key_size bytes); the value goes to `out` at `off` once validated. */
  abstract lookup(keys: Uint8Array, at: number, out: Uint8Array, off: number): number;

  /** The same, of the scratch key's words (`kw`: this slot's scratch, Htab.keyScratchWords). */
  abstract lookupWords(kw: Int32Array, out: Uint8Array, off: number): number;

  /**
   * The end of a find for values of 12 or 16 bytes: words 2 and 3 of element
   * `e` read, the bucket word sampled again, and when it equals `s` all the
   * words (`x`, `y`: 0 and 1, read by the caller) go to `out` at `off`.
   */
  protected high(
    e: number,
    out: Uint8Array,
    off: number,
    s: number,
    b: number,
    x: number,
    y: number,
  ): number {
    const i32 = this.i32;
    const p = e + this.voff;
    const z = i32[p + 2];
    const w = i32[p + 3];
    if (((s ^ Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */)) & -4) !== 0) return -1;
    putWord(out, off, x);
    putWord(out, off + 4, y);
    putWord(out, off + 8, z);
    if (this.vw > 3) putWord(out, off + 12, w);
    return e;
  }
}

/**
 * The readers write the layout's offsets as literals: V8 loads an imported
 * binding from its module cell, with a TDZ check, at every use (about 2.5 ns
 * a lookup at 1k, measured). They are the layout's, checked here at load.
 */
if (
  BUCKET_HEAD_I32 !== 0 ||
  BUCKET_SEQLOCK_I32 !== 1 ||
  BUCKET_HOME_STATE_I32 !== 3 ||
  BUCKET_HOME_I32 !== 4 ||
  ELEM_NEXT_I32 !== 0 ||
  ELEM_HASH_I32 !== 1 ||
  ELEM_KEY_I32 !== 4 ||
  HOME_LINKED !== -1 ||
  SEQ_WRITING !== 4 ||
  SEQ_LOCKED !== 1 ||
  SEQ_WAITERS !== 2
)
  throw new Error("lookup.ts: the readers' literal offsets no longer match layout.ts");

/** Word `x` as 4 little-endian bytes at `out[off]`. */
function putWord(out: Uint8Array, off: number, x: number): void {
  out[off] = x;
  out[off + 1] = x >> 8;
  out[off + 2] = x >> 16;
  out[off + 3] = x >> 24;
}

/** u32 keys. */
class Reader1 extends InlineReader {
  lookup(keys: Uint8Array, at: number, out: Uint8Array, off: number): number {
    return this.find(u32At(keys, at), out, off);
  }

  lookupWords(kw: Int32Array, out: Uint8Array, off: number): number {
    return this.find(kw[0], out, off);
  }

  find(k0: number, out: Uint8Array, off: number): number {
    const i32 = this.i32;
    const hash = jhash2OneWord(k0, this.rnd);
    const b = this.buckets + (hash & this.mask) * this.stride;
    const s = Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */);
    const h = b + 4; // BUCKET_HOME_I32
    // The home element first (HOME_LINKED: it is on this chain), else the walk from the head.
    const e =
      this.homed &&
      i32[b + 3 /* BUCKET_HOME_STATE_I32 */] === -1 /* HOME_LINKED */ &&
      i32[h + 1 /* ELEM_HASH_I32 */] === hash &&
      i32[h + 4 /* ELEM_KEY_I32 */] === k0
        ? h
        : this.walk(b, hash, k0);
    const p = e + this.voff;
    const x = e > 0 ? i32[p] : 0;
    const y = e > 0 ? i32[p + 1] : 0;
    if (e > 0 && this.vw > 2) return (s & 4) /* WRITING */ !== 0 ? -1 : this.high(e, out, off, s, b, x, y);
    // Validate: WRITING clear in the first sample, the second equal to it (seqUnchanged()).
    if (
      ((s & 4) /* WRITING */ |
        ((s ^ Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */)) & -4)) /* the seq and WRITING */ !==
      0
    )
      return -1;
    if (e <= 0) return e;
    putWord(out, off, x);
    if (this.vw > 1) putWord(out, off + 4, y);
    return e;
  }

  /**
   * The chain of bucket `b` from its head: the element holding the key, 0 at
   * the end, -1 at a link outside the map or past the walk bound.
   */
  protected walk(b: number, hash: number, k0: number): number {
    const i32 = this.i32;
    const hi = i32.length - this.elemStride;
    let e = i32[b /* + BUCKET_HEAD_I32 */];
    for (let steps = 0; e !== 0; steps++) {
      if (steps >= this.bound || e < this.lo || e > hi) return -1;
      if (i32[e + 1 /* ELEM_HASH_I32 */] === hash && i32[e + 4 /* ELEM_KEY_I32 */] === k0) return e;
      e = i32[e /* + ELEM_NEXT_I32 */];
    }
    return 0;
  }
}

/** u64 (8-byte) keys. */
class Reader2 extends InlineReader {
  lookup(keys: Uint8Array, at: number, out: Uint8Array, off: number): number {
    return this.find(u32At(keys, at), u32At(keys, at + 4), out, off);
  }

  lookupWords(kw: Int32Array, out: Uint8Array, off: number): number {
    return this.find(kw[0], kw[1], out, off);
  }

  find(k0: number, k1: number, out: Uint8Array, off: number): number {
    const i32 = this.i32;
    const hash = jhash2Two(k0, k1, this.rnd);
    const b = this.buckets + (hash & this.mask) * this.stride;
    const s = Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */);
    const h = b + 4; // BUCKET_HOME_I32
    // The home element first (HOME_LINKED: it is on this chain), else the walk from the head.
    const e =
      this.homed &&
      i32[b + 3 /* BUCKET_HOME_STATE_I32 */] === -1 /* HOME_LINKED */ &&
      i32[h + 1 /* ELEM_HASH_I32 */] === hash &&
      i32[h + 4 /* ELEM_KEY_I32 */] === k0 &&
      i32[h + 4 /* ELEM_KEY_I32 */ + 1] === k1
        ? h
        : this.walk(b, hash, k0, k1);
    const p = e + this.voff;
    const x = e > 0 ? i32[p] : 0;
    const y = e > 0 ? i32[p + 1] : 0;
    if (e > 0 && this.vw > 2) return (s & 4) /* WRITING */ !== 0 ? -1 : this.high(e, out, off, s, b, x, y);
    // Validate: WRITING clear in the first sample, the second equal to it (seqUnchanged()).
    if (
      ((s & 4) /* WRITING */ |
        ((s ^ Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */)) & -4)) /* the seq and WRITING */ !==
      0
    )
      return -1;
    if (e <= 0) return e;
    putWord(out, off, x);
    if (this.vw > 1) putWord(out, off + 4, y);
    return e;
  }

  /**
   * The chain of bucket `b` from its head: the element holding the key, 0 at
   * the end, -1 at a link outside the map or past the walk bound.
   */
  protected walk(b: number, hash: number, k0: number, k1: number): number {
    const i32 = this.i32;
    const hi = i32.length - this.elemStride;
    let e = i32[b /* + BUCKET_HEAD_I32 */];
    for (let steps = 0; e !== 0; steps++) {
      if (steps >= this.bound || e < this.lo || e > hi) return -1;
      if (
        i32[e + 1 /* ELEM_HASH_I32 */] === hash &&
        i32[e + 4 /* ELEM_KEY_I32 */] === k0 &&
        i32[e + 4 /* ELEM_KEY_I32 */ + 1] === k1
      )
        return e;
      e = i32[e /* + ELEM_NEXT_I32 */];
    }
    return 0;
  }
}

/** 16-byte keys. */
class Reader4 extends InlineReader {
  lookup(keys: Uint8Array, at: number, out: Uint8Array, off: number): number {
    return this.find(
      u32At(keys, at),
      u32At(keys, at + 4),
      u32At(keys, at + 8),
      u32At(keys, at + 12),
      out,
      off,
    );
  }

  lookupWords(kw: Int32Array, out: Uint8Array, off: number): number {
    return this.find(kw[0], kw[1], kw[2], kw[3], out, off);
  }

  find(k0: number, k1: number, k2: number, k3: number, out: Uint8Array, off: number): number {
    const i32 = this.i32;
    const hash = jhash2Four(k0, k1, k2, k3, this.rnd);
    const b = this.buckets + (hash & this.mask) * this.stride;
    const s = Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */);
    const h = b + 4; // BUCKET_HOME_I32
    // The home element first (HOME_LINKED: it is on this chain), else the walk from the head.
    const e =
      this.homed &&
      i32[b + 3 /* BUCKET_HOME_STATE_I32 */] === -1 /* HOME_LINKED */ &&
      i32[h + 1 /* ELEM_HASH_I32 */] === hash &&
      i32[h + 4 /* ELEM_KEY_I32 */] === k0 &&
      i32[h + 4 /* ELEM_KEY_I32 */ + 1] === k1 &&
      i32[h + 4 /* ELEM_KEY_I32 */ + 2] === k2 &&
      i32[h + 4 /* ELEM_KEY_I32 */ + 3] === k3
        ? h
        : this.walk(b, hash, k0, k1, k2, k3);
    const p = e + this.voff;
    const x = e > 0 ? i32[p] : 0;
    const y = e > 0 ? i32[p + 1] : 0;
    if (e > 0 && this.vw > 2) return (s & 4) /* WRITING */ !== 0 ? -1 : this.high(e, out, off, s, b, x, y);
    // Validate: WRITING clear in the first sample, the second equal to it (seqUnchanged()).
    if (
      ((s & 4) /* WRITING */ |
        ((s ^ Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */)) & -4)) /* the seq and WRITING */ !==
      0
    )
      return -1;
    if (e <= 0) return e;
    putWord(out, off, x);
    if (this.vw > 1) putWord(out, off + 4, y);
    return e;
  }

  /**
   * The chain of bucket `b` from its head: the element holding the key, 0 at
   * the end, -1 at a link outside the map or past the walk bound.
   */
  protected walk(b: number, hash: number, k0: number, k1: number, k2: number, k3: number): number {
    const i32 = this.i32;
    const hi = i32.length - this.elemStride;
    let e = i32[b /* + BUCKET_HEAD_I32 */];
    for (let steps = 0; e !== 0; steps++) {
      if (steps >= this.bound || e < this.lo || e > hi) return -1;
      if (
        i32[e + 1 /* ELEM_HASH_I32 */] === hash &&
        i32[e + 4 /* ELEM_KEY_I32 */] === k0 &&
        i32[e + 4 /* ELEM_KEY_I32 */ + 1] === k1 &&
        i32[e + 4 /* ELEM_KEY_I32 */ + 2] === k2 &&
        i32[e + 4 /* ELEM_KEY_I32 */ + 3] === k3
      )
        return e;
      e = i32[e /* + ELEM_NEXT_I32 */];
    }
    return 0;
  }
}

/**
 * Reader1 for maps without home elements and values of 4 or 8 bytes: no
 * home check and no branch for wider values. V8 compiles this shape about a
 * quarter faster than Reader1.find() (28 against 36 ns a lookup at 1k, in
 * one process: the two branches together, not either alone, cost it).
 */
class Reader1Flat extends Reader1 {
  override find(k0: number, out: Uint8Array, off: number): number {
    const i32 = this.i32;
    const hash = jhash2OneWord(k0, this.rnd);
    const b = this.buckets + (hash & this.mask) * this.stride;
    const s = Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */);
    const e = this.walk(b, hash, k0);
    const p = e + this.voff;
    const x = e > 0 ? i32[p] : 0;
    const y = e > 0 ? i32[p + 1] : 0;
    if (((s & 4) /* WRITING */ | ((s ^ Atomics.load(i32, b + 1)) & -4)) !== 0) return -1;
    if (e <= 0) return e;
    putWord(out, off, x);
    if (this.vw > 1) putWord(out, off + 4, y);
    return e;
  }
}

/**
 * Reader2 for maps without home elements and values of 4 or 8 bytes: no
 * home check and no branch for wider values. V8 compiles this shape about a
 * quarter faster than Reader2.find() (28 against 36 ns a lookup at 1k, in
 * one process: the two branches together, not either alone, cost it).
 */
class Reader2Flat extends Reader2 {
  override find(k0: number, k1: number, out: Uint8Array, off: number): number {
    const i32 = this.i32;
    const hash = jhash2Two(k0, k1, this.rnd);
    const b = this.buckets + (hash & this.mask) * this.stride;
    const s = Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */);
    const e = this.walk(b, hash, k0, k1);
    const p = e + this.voff;
    const x = e > 0 ? i32[p] : 0;
    const y = e > 0 ? i32[p + 1] : 0;
    if (((s & 4) /* WRITING */ | ((s ^ Atomics.load(i32, b + 1)) & -4)) !== 0) return -1;
    if (e <= 0) return e;
    putWord(out, off, x);
    if (this.vw > 1) putWord(out, off + 4, y);
    return e;
  }
}

/**
 * Reader4 for maps without home elements and values of 4 or 8 bytes: no
 * home check and no branch for wider values. V8 compiles this shape about a
 * quarter faster than Reader4.find() (28 against 36 ns a lookup at 1k, in
 * one process: the two branches together, not either alone, cost it).
 */
class Reader4Flat extends Reader4 {
  override find(k0: number, k1: number, k2: number, k3: number, out: Uint8Array, off: number): number {
    const i32 = this.i32;
    const hash = jhash2Four(k0, k1, k2, k3, this.rnd);
    const b = this.buckets + (hash & this.mask) * this.stride;
    const s = Atomics.load(i32, b + 1 /* BUCKET_SEQLOCK_I32 */);
    const e = this.walk(b, hash, k0, k1, k2, k3);
    const p = e + this.voff;
    const x = e > 0 ? i32[p] : 0;
    const y = e > 0 ? i32[p + 1] : 0;
    if (((s & 4) /* WRITING */ | ((s ^ Atomics.load(i32, b + 1)) & -4)) !== 0) return -1;
    if (e <= 0) return e;
    putWord(out, off, x);
    if (this.vw > 1) putWord(out, off + 4, y);
    return e;
  }
}

/** The little-endian u32 at byte `i` of `b`. */
function u32At(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
}

/** jhash2() of two words (8-byte keys), as a signed int32; the same as jhash2Int(k, 0, 2, initval). */
export function jhash2Two(k0: number, k1: number, initval: number): number {
  const x = (JHASH_INITVAL + 8 + initval) | 0;
  return jhashFinal((x + k0) | 0, (x + k1) | 0, x);
}

/** jhash2() of four words (16-byte keys), as a signed int32: one __jhash_mix of the first three, then the fourth. */
export function jhash2Four(k0: number, k1: number, k2: number, k3: number, initval: number): number {
  const i = (JHASH_INITVAL + 16 + initval) | 0;
  let x = (i + k0) | 0;
  let y = (i + k1) | 0;
  let z = (i + k2) | 0;
  x = (x - z) | 0;
  x ^= (z << 4) | (z >>> 28);
  z = (z + y) | 0;
  y = (y - x) | 0;
  y ^= (x << 6) | (x >>> 26);
  x = (x + z) | 0;
  z = (z - y) | 0;
  z ^= (y << 8) | (y >>> 24);
  y = (y + x) | 0;
  x = (x - z) | 0;
  x ^= (z << 16) | (z >>> 16);
  z = (z + y) | 0;
  y = (y - x) | 0;
  y ^= (x << 19) | (x >>> 13);
  x = (x + z) | 0;
  z = (z - y) | 0;
  z ^= (y << 4) | (y >>> 28);
  y = (y + x) | 0;
  return jhashFinal((x + k3) | 0, y, z);
}

/**
 * The same lookups for a view with the wasm fast path: the key's words go
 * to the scratch key, one call of the wasm `lookup` export hashes, walks,
 * validates with the bucket seq and copies the value to the scratch value,
 * and the value's words come back to `out` (plain loads of this slot's own
 * scratch). No JS Atomics call: in V8 11 each is a builtin call of ~9 ns
 * and, at 1M entries, keeps lookups' cache misses from overlapping, where
 * the wasm atomics are plain instructions (docs/performance.md). Chosen over
 * InlineReader wherever the view has the wasm memory.
 */
class WasmReader implements ShapeReader {
  declare private readonly i32: Int32Array;
  /** Word index of the scratch key and of the scratch value. */
  declare private readonly key: number;
  declare private readonly val: number;
  declare private readonly keyWords: number;
  declare private readonly vw: number;

  constructor(
    v: HtabView,
    private readonly plan: FastPlan,
  ) {
    this.i32 = v.i32;
    this.key = (v.kw.byteOffset - v.i32.byteOffset) >> 2;
    this.val = v.outOff >> 2;
    this.keyWords = v.keyWords;
    this.vw = v.valueBytes >> 2;
  }

  lookup(keys: Uint8Array, at: number, out: Uint8Array, off: number): number {
    const i32 = this.i32;
    const k = this.key;
    i32[k] = u32At(keys, at);
    if (this.keyWords > 1) {
      i32[k + 1] = u32At(keys, at + 4);
      if (this.keyWords > 2) {
        i32[k + 2] = u32At(keys, at + 8);
        i32[k + 3] = u32At(keys, at + 12);
      }
    }
    return this.copy(this.plan.lookupWhole(), out, off);
  }

  /** `kw` must be this slot's scratch key (lookupScratch()), where wasm reads it. */
  lookupWords(_kw: Int32Array, out: Uint8Array, off: number): number {
    return this.copy(this.plan.lookupWhole(), out, off);
  }

  private copy(e: number, out: Uint8Array, off: number): number {
    if (e <= 0) return e;
    const i32 = this.i32;
    const p = this.val;
    putWord(out, off, i32[p]);
    const vw = this.vw;
    if (vw > 1) putWord(out, off + 4, i32[p + 1]);
    if (vw > 2) putWord(out, off + 8, i32[p + 2]);
    if (vw > 3) putWord(out, off + 12, i32[p + 3]);
    return e;
  }
}

/**
 * Whether view `v`'s shape has a ShapeReader: keys of 4, 8 or 16 bytes,
 * values (value bytes) of 4 to 16 bytes in whole words, no bpf_spin_lock in
 * the value (a copy must read it as zero), not per-CPU, not values replaced
 * in place (hash of maps), and a map the control plane may read (not
 * BPF_F_WRONLY). HASH (homed or not), LRU_HASH (a control-plane lookup marks
 * nothing) and NO_PREALLOC maps qualify.
 */
function hasReader(v: HtabView): boolean {
  const vb = v.valueBytes;
  const ks = v.keySize;
  if (v.percpu || v.inPlace || v.spinLockOff >= 0 || (v.mapFlags & MapFlags.Wronly) !== 0) return false;
  return (vb & 3) === 0 && vb >= 4 && vb <= 16 && (ks === 4 || ks === 8 || ks === 16);
}

/** The JS reader of view `v`'s shape (InlineReader), or null (hasReader()). */
export function inlineReaderFor(v: HtabView): InlineReader | null {
  if (!hasReader(v)) return null;
  // Maps without home elements and values of at most 8 bytes: the Flat variant (no home check, no wide branch).
  const flat = v.homes === 0 && v.valueBytes <= 8;
  if (v.keySize === 4) return flat ? new Reader1Flat(v) : new Reader1(v);
  if (v.keySize === 8) return flat ? new Reader2Flat(v) : new Reader2(v);
  return flat ? new Reader4Flat(v) : new Reader4(v);
}

/**
 * The reader of view `v`, chosen once at construction: one wasm call where
 * the view has the wasm fast path (WasmReader), else the JS InlineReader;
 * null where the shape has none (hasReader()).
 */
export function readerFor(v: HtabView): ShapeReader | null {
  if (!hasReader(v)) return null;
  const f = v.fast;
  return f?.wholeLookup ? new WasmReader(v, f) : inlineReaderFor(v);
}
