import { jhash, jhash2 } from "./jhash.js";

/**
 * The key hash of a hash map. Kernel: htab_map_hash() uses jhash2() over u32
 * words when key_size is a multiple of 4, and byte-wise jhash() otherwise.
 *
 * `bytes` and `words` view the same 4-byte-aligned scratch copy of the key.
 */
export function htabMapHash(bytes: Uint8Array, words: Int32Array, keySize: number, hashrnd: number): number {
  if ((keySize & 3) === 0) return jhash2(words, 0, keySize >>> 2, hashrnd);
  return jhash(bytes, 0, keySize, hashrnd);
}
