/**
 * The control of the seed-000 tests: an htab map's words walked as the
 * kernel's htab_map_lookup_elem() walks its table (hash, bucket chain,
 * first element whose hash and key match), with neither htab's bucket seq
 * validation nor a hold on the element. A reader using it can see another
 * key's value or a torn one when elements are reused under it.
 */
import { htabMapHash } from "../../src/hash/htab-hash.js";
import { readGeometry } from "../../src/layout/geometry.js";
import {
  BUCKET_HEAD_I32,
  ELEM_HASH_I32,
  ELEM_KEY_I32,
  ELEM_NEXT_I32,
  HDR_BUCKETS_I32,
  HDR_HASHRND_I32,
  HDR_N_BUCKETS_I32,
} from "../../src/layout/layout.js";

export class KernelStyleWalk {
  /** The map's words; element indices returned by find() are into this view. */
  readonly i32: Int32Array;
  private readonly buckets: number;
  private readonly mask: number;
  private readonly strideI32: number;
  private readonly hashrnd: number;

  /**
   * The map at byte `offset` of `sab`, `length` bytes; without `length`, the rest of the buffer,
   * growing with it (a NO_PREALLOC map's growable buffer: a fixed view would end at its old size).
   */
  constructor(sab: SharedArrayBuffer, offset = 0, length?: number) {
    this.i32 = length === undefined ? new Int32Array(sab, offset) : new Int32Array(sab, offset, length >> 2);
    this.buckets = this.i32[HDR_BUCKETS_I32];
    this.mask = this.i32[HDR_N_BUCKETS_I32] - 1;
    this.hashrnd = this.i32[HDR_HASHRND_I32];
    this.strideI32 = readGeometry(sab, offset, length).g.bucketStride >> 2;
  }

  /** The element holding the key (`kb`, its bytes; `kw`, the same as words), or 0. */
  find(kb: Uint8Array, kw: Int32Array): number {
    const i32 = this.i32;
    const hash = htabMapHash(kb, kw, kb.length, this.hashrnd) | 0;
    for (
      let e = i32[this.buckets + (hash & this.mask) * this.strideI32 + BUCKET_HEAD_I32];
      e !== 0;
      e = i32[e + ELEM_NEXT_I32]
    ) {
      if (i32[e + ELEM_HASH_I32] !== hash) continue;
      let same = true;
      for (let j = 0; j < kw.length; j++) if (i32[e + ELEM_KEY_I32 + j] !== kw[j]) same = false;
      if (same) return e;
    }
    return 0;
  }
}
