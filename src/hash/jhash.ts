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
 * Kernel: jhash2(). Returns the hash as an unsigned 32-bit number.
 */
export function jhash2(k: Int32Array | Uint32Array, off: number, words: number, initval: number): number {
  a = b = c = (JHASH_INITVAL + (words << 2) + initval) | 0;
  let i = off;
  let len = words;
  while (len > 3) {
    a = (a + k[i]) | 0;
    b = (b + k[i + 1]) | 0;
    c = (c + k[i + 2]) | 0;
    mix();
    len -= 3;
    i += 3;
  }
  switch (len) {
    case 3:
      c = (c + k[i + 2]) | 0;
    // falls through
    case 2:
      b = (b + k[i + 1]) | 0;
    // falls through
    case 1:
      a = (a + k[i]) | 0;
      final();
      break;
    default:
      break;
  }
  return c >>> 0;
}

function u32le(k: Uint8Array, i: number): number {
  return k[i] | (k[i + 1] << 8) | (k[i + 2] << 16) | (k[i + 3] << 24);
}

/**
 * jhash(): hash `length` bytes of `k` from byte `off` (little-endian words,
 * as get_unaligned_cpu32() reads them on x86). Kernel: jhash().
 */
export function jhash(k: Uint8Array, off: number, length: number, initval: number): number {
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
  return c >>> 0;
}
