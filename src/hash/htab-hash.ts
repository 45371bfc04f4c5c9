import { jhash2Int, jhashInt } from "./jhash.js";

/**
 * The key hash of a hash map. Kernel: htab_map_hash() uses jhash2() over u32
 * words when key_size is a multiple of 4, and byte-wise jhash() otherwise.
 *
 * `bytes` and `words` view the same 4-byte-aligned scratch copy of the key.
 * Returns a signed int32 (`>>> 0` gives the kernel's u32): unsigned values
 * above 2^31 would be boxed on every call.
 */
export function htabMapHash(bytes: Uint8Array, words: Int32Array, keySize: number, hashrnd: number): number {
  if ((keySize & 3) === 0) return jhash2Int(words, 0, keySize >>> 2, hashrnd);
  return jhashInt(bytes, 0, keySize, hashrnd);
}
