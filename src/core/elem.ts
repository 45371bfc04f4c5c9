/**
 * Bytes in and out of one element: the scratch key, key compares, value
 * copies. Nothing here takes a lock or reads a seq: callers either hold the
 * bucket lock or validate what they copied with the bucket seq.
 *
 * Element layout (layout.ts): header (NEXT, HASH, FNEXT, TAG), the key
 * rounded up to 8 bytes, then the value (per-CPU: nrCpus slots of
 * round_up(value_size, 8)).
 */
import { htabMapHash } from "../hash/htab-hash.js";
import { jhash2OneWord } from "../hash/jhash.js";
import { ELEM_HASH_I32, ELEM_HEADER_BYTES, ELEM_KEY_I32 } from "../layout/layout.js";
import type { HtabView } from "./htab-view.js";

/** Copy `key` into the scratch words and hash it. */
export function hashKey(v: HtabView, key: Uint8Array): number {
  keyToScratch(v, key);
  return scratchHash(v);
}

/** The hash of the key in this slot's scratch (kernel: htab_map_hash()). */
export function scratchHash(v: HtabView): number {
  // The common u32 key: one word, no loop (same value as jhash2 over one word).
  if (v.keySize === 4) return jhash2OneWord(v.kw[0], v.hashrnd) | 0;
  return htabMapHash(v.kb, v.kw, v.keySize, v.hashrnd) | 0;
}

/**
 * Put `key` in scratch for a wasm call. @returns the hash to pass, or 0
 * when wasm hashes the key itself (keys of whole words: `hashMode`).
 */
export function fastKey(v: HtabView, wordKeys: boolean, key: Uint8Array): number {
  if (!wordKeys) return hashKey(v, key);
  keyToScratch(v, key);
  return 0;
}

/** Copy `key` into this slot's scratch key (where the wasm fast path reads it). */
export function keyToScratch(v: HtabView, key: Uint8Array): void {
  if (v.keySize === 4) {
    v.kw[0] = key[0] | (key[1] << 8) | (key[2] << 16) | (key[3] << 24);
    return;
  }
  const kb = v.kb;
  for (let i = 0; i < v.keySize; i++) kb[i] = key[i];
}

export function hashKeyAt(v: HtabView, buf: Uint8Array, off: number): number {
  const kb = v.kb;
  for (let i = 0; i < v.keySize; i++) kb[i] = buf[off + i];
  return htabMapHash(kb, v.kw, v.keySize, v.hashrnd) | 0;
}

/** Element key equals the scratch key. Caller validates with the bucket seq or holds the lock. */
export function keyEquals(v: HtabView, e: number): boolean {
  const i32 = v.i32;
  const kw = v.kw;
  const k = e + ELEM_KEY_I32;
  if (i32[k] !== kw[0]) return false;
  for (let j = 1; j < v.keyWords; j++) if (i32[k + j] !== kw[j]) return false;
  return true;
}

export function copyValueOut(v: HtabView, e: number, out: Uint8Array, outOff: number): void {
  copyBytesOut(v, e * 4 + v.valueOffBytes, out, outOff);
}

/** Copy one value's bytes from `u8[src]` to `out`, its bpf_spin_lock reading as zero. */
export function copyBytesOut(v: HtabView, src: number, out: Uint8Array, outOff: number): void {
  const n = v.valueBytes;
  if (n <= 64 && (n & 3) === 0) {
    // Word loads: a quarter of the reads of the byte loop (`src` is 8-byte aligned).
    const i32 = v.i32;
    // `>>> 2`, not `/ 4`: byte offsets stay below 2^32 (maps over 4 GiB are refused at create),
    // and the unsigned shift keeps the index an integer (with `/ 4` a lookup at 1k took 1.3x as long).
    let w = src >>> 2;
    for (let i = outOff; i < outOff + n; i += 4) {
      const x = i32[w++];
      out[i] = x;
      out[i + 1] = x >> 8;
      out[i + 2] = x >> 16;
      out[i + 3] = x >> 24;
    }
  } else if (n <= 64) {
    const u8 = v.u8;
    for (let i = 0; i < n; i++) out[outOff + i] = u8[src + i];
  } else out.set(v.u8.subarray(src, src + n), outOff);
  // The bpf_spin_lock always reads as zero (kernel: check_and_init_map_value()).
  if (v.spinLockOff >= 0) out.fill(0, outOff + v.spinLockOff, outOff + v.spinLockOff + 4);
}

export function copyKeyOut(v: HtabView, e: number, out: Uint8Array, outOff: number): void {
  const u8 = v.u8;
  const src = e * 4 + ELEM_HEADER_BYTES;
  for (let i = 0; i < v.keySize; i++) out[outOff + i] = u8[src + i];
}

/** Fill a private element (off every chain) with the scratch key, `hash` and `value`. */
export function fillElem(v: HtabView, e: number, hash: number, value: Uint8Array, valueOff: number): void {
  const i32 = v.i32;
  i32[e + ELEM_HASH_I32] = hash;
  const k = e + ELEM_KEY_I32;
  for (let j = 0; j < v.keyWords; j++) i32[k + j] = v.kw[j];
  const dst = e * 4 + v.valueOffBytes;
  const n = v.valueBytes;
  if (n <= 64) {
    const u8 = v.u8;
    for (let i = 0; i < n; i++) u8[dst + i] = value[valueOff + i];
  } else v.u8.set(valueOff === 0 && value.length === n ? value : value.subarray(valueOff, valueOff + n), dst);
  // A private element's spin lock is free: the caller's bytes never land on it.
  if (v.spinLockOff >= 0) i32[(dst + v.spinLockOff) >>> 2] = 0;
}

/** Copy a value into this slot's scratch value, where the wasm fast path reads it. */
export function valueToScratch(v: HtabView, value: Uint8Array): void {
  const n = v.valueBytes;
  if ((n & 3) === 0) {
    const i32 = v.i32;
    let w = v.outOff >>> 2;
    for (let i = 0; i < n; i += 4)
      i32[w++] = value[i] | (value[i + 1] << 8) | (value[i + 2] << 16) | (value[i + 3] << 24);
  } else v.u8.set(value, v.outOff);
}

/** Byte offset of `cpu`'s value in element `e` (the only value for non-per-CPU maps). */
export function valueAt(v: HtabView, e: number, cpu: number): number {
  return e * 4 + v.valueOffBytes + (v.percpu ? cpu * v.slotBytes : 0);
}

/** Element value bytes [offset, offset+size) equal `expected` from `expOff`. Requires: bucket lock held. */
export function regionEquals(
  v: HtabView,
  e: number,
  expected: Uint8Array,
  expOff: number,
  offset: number,
  size: number,
): boolean {
  const u8 = v.u8;
  const src = e * 4 + v.valueOffBytes + offset;
  for (let i = 0; i < size; i++) if (u8[src + i] !== expected[expOff + i]) return false;
  return true;
}
