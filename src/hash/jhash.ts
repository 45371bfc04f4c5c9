/**
 * Bob Jenkins' lookup3 hash exactly as include/linux/jhash.h computes it,
 * so that bucket choice (and so zero-seed iteration order) matches the kernel.
 * All arithmetic is u32: `| 0` / `>>> 0` keep V8 on the int32 fast path.
 */

/** JHASH_INITVAL: an arbitrary value from the original lookup3. */
export const JHASH_INITVAL = 0xdeadbeef | 0;

// Scratch state for mix/final: module-level so the hot path allocates nothing.
let a = 0;
let b = 0;
let c = 0;

function rol32(x: number, s: number): number {
  return (x << s) | (x >>> (32 - s));
}

function mix(): void {
  a = (a - c) | 0;
  a ^= rol32(c, 4);
  c = (c + b) | 0;
  b = (b - a) | 0;
  b ^= rol32(a, 6);
  a = (a + c) | 0;
  c = (c - b) | 0;
  c ^= rol32(b, 8);
  b = (b + a) | 0;
  a = (a - c) | 0;
  a ^= rol32(c, 16);
  c = (c + b) | 0;
  b = (b - a) | 0;
  b ^= rol32(a, 19);
  a = (a + c) | 0;
  c = (c - b) | 0;
  c ^= rol32(b, 4);
  b = (b + a) | 0;
}

function final(): void {
  c ^= b;
  c = (c - rol32(b, 14)) | 0;
  a ^= c;
  a = (a - rol32(c, 11)) | 0;
  b ^= a;
  b = (b - rol32(a, 25)) | 0;
  c ^= b;
  c = (c - rol32(b, 16)) | 0;
  a ^= c;
  a = (a - rol32(c, 4)) | 0;
  b ^= a;
  b = (b - rol32(a, 14)) | 0;
  c ^= b;
  c = (c - rol32(b, 24)) | 0;
}

/**
 * jhash2(): hash `words` u32 words of `k` starting at word index `off`.
 * Kernel: jhash2(). Returns the hash as a signed int32 (see jhashFinal()).
 * Mixing is written out with locals (not the shared scratch) so that V8 keeps
 * the state in registers: this is the map's hottest function.
 */
export function jhash2Int(k: Int32Array | Uint32Array, off: number, words: number, initval: number): number {
  let x = (JHASH_INITVAL + (words << 2) + initval) | 0;
  let y = x;
  let z = x;
  let i = off;
  let len = words;
  while (len > 3) {
    x = (x + k[i]) | 0;
    y = (y + k[i + 1]) | 0;
    z = (z + k[i + 2]) | 0;
    // __jhash_mix(x, y, z)
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
    len -= 3;
    i += 3;
  }
  if (len === 0) return z;
  if (len === 3) z = (z + k[i + 2]) | 0;
  if (len >= 2) y = (y + k[i + 1]) | 0;
  x = (x + k[i]) | 0;
  return jhashFinal(x, y, z);
}

/** jhash2() as the kernel returns it: an unsigned 32-bit number. */
export function jhash2(k: Int32Array | Uint32Array, off: number, words: number, initval: number): number {
  return jhash2Int(k, off, words, initval) >>> 0;
}

/**
 * __jhash_final(a, b, c), returning c as a *signed* int32: a u32 above 2^31
 * would be boxed as a heap number when returned from a call, so hot callers
 * take the int32 and convert at the edge.
 */
export function jhashFinal(x: number, y: number, z: number): number {
  z ^= y;
  z = (z - ((y << 14) | (y >>> 18))) | 0;
  x ^= z;
  x = (x - ((z << 11) | (z >>> 21))) | 0;
  y ^= x;
  y = (y - ((x << 25) | (x >>> 7))) | 0;
  z ^= y;
  z = (z - ((y << 16) | (y >>> 16))) | 0;
  x ^= z;
  x = (x - ((z << 4) | (z >>> 28))) | 0;
  y ^= x;
  y = (y - ((x << 14) | (x >>> 18))) | 0;
  z ^= y;
  z = (z - ((y << 24) | (y >>> 8))) | 0;
  return z;
}

/** jhash2() of a single u32 word (4-byte keys), as a signed int32 (see jhashFinal). */
export function jhash2OneWord(w: number, initval: number): number {
  const x = (JHASH_INITVAL + 4 + initval) | 0;
  return jhashFinal((x + w) | 0, x, x);
}

function u32le(k: Uint8Array, i: number): number {
  return k[i] | (k[i + 1] << 8) | (k[i + 2] << 16) | (k[i + 3] << 24);
}

/**
 * jhash(): hash `length` bytes of `k` from byte `off` (little-endian words,
 * as get_unaligned_cpu32() reads them on x86). Kernel: jhash().
 */
export function jhashInt(k: Uint8Array, off: number, length: number, initval: number): number {
  a = b = c = (JHASH_INITVAL + length + initval) | 0;
  let i = off;
  let len = length;
  while (len > 12) {
    a = (a + u32le(k, i)) | 0;
    b = (b + u32le(k, i + 4)) | 0;
    c = (c + u32le(k, i + 8)) | 0;
    mix();
    len -= 12;
    i += 12;
  }
  switch (len) {
    case 12:
      c = (c + (k[i + 11] << 24)) | 0;
    // falls through
    case 11:
      c = (c + (k[i + 10] << 16)) | 0;
    // falls through
    case 10:
      c = (c + (k[i + 9] << 8)) | 0;
    // falls through
    case 9:
      c = (c + k[i + 8]) | 0;
    // falls through
    case 8:
      b = (b + (k[i + 7] << 24)) | 0;
    // falls through
    case 7:
      b = (b + (k[i + 6] << 16)) | 0;
    // falls through
    case 6:
      b = (b + (k[i + 5] << 8)) | 0;
    // falls through
    case 5:
      b = (b + k[i + 4]) | 0;
    // falls through
    case 4:
      a = (a + (k[i + 3] << 24)) | 0;
    // falls through
    case 3:
      a = (a + (k[i + 2] << 16)) | 0;
    // falls through
    case 2:
      a = (a + (k[i + 1] << 8)) | 0;
    // falls through
    case 1:
      a = (a + k[i]) | 0;
      final();
      break;
    default:
      break;
  }
  return c;
}

/** jhash() as the kernel returns it: an unsigned 32-bit number. */
export function jhash(k: Uint8Array, off: number, length: number, initval: number): number {
  return jhashInt(k, off, length, initval) >>> 0;
}
