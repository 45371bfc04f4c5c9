/**
 * A map's geometry: every size and offset its layout (layout.ts) depends
 * on, computed in one place from the map's parameters, and the header that
 * records them. Element n's place: its home bucket record when n < homes,
 * else the element array (elemIndexToWord()).
 */
import { invalid } from "../errors.js";
import { MapFlags } from "../uapi.js";
import {
  BUCKET_BYTES,
  BUCKET_HOME_I32,
  CACHE_LINE_BYTES,
  ELEM_HEADER_BYTES,
  FAST_VALUE_MAX_BYTES,
  HDR_BUCKETS_I32,
  HDR_ELEM_SIZE_I32,
  HDR_ELEMS_I32,
  HDR_HASHRND_I32,
  HDR_HOME_END_I32,
  HDR_KEY_SIZE_I32,
  HDR_MAGIC_I32,
  HDR_MAP_FLAGS_I32,
  HDR_MAP_TYPE_I32,
  HDR_MAX_ENTRIES_I32,
  HDR_N_BUCKETS_I32,
  HDR_NONCE_I32,
  HDR_NR_CPUS_I32,
  HDR_NUM_ELEMS_I32,
  HDR_SPIN_LOCK_OFF_I32,
  HDR_TOTAL_BYTES_I32,
  HDR_VALUE_SIZE_I32,
  HDR_VERSION_I32,
  HEADER_BYTES,
  HTAB_MAGIC,
  isPercpuType,
  LAYOUT_VERSION,
  LRU_COMMON,
  LRU_LIST_BYTES,
  LRU_LOCAL_BYTES,
  LRU_LOCAL_FREE_TARGET,
  LRU_NODE_BYTES,
  LRU_NONE,
  LRU_PERCPU,
  LRU_SENTINELS_PER_LIST,
  lruKind,
  MANY_CHUNK,
  MANY_VALUE_MAX_BYTES,
  PCPU_BASE_BYTES,
  PCPU_CLAIM_I32,
  PCPU_RECORD_BYTES,
  pcpuBase,
  roundUp,
  roundupPowOfTwo,
  SCRATCH_DESC_BYTES,
  WASM_PAGE_BYTES,
} from "./layout.js";

/** Every size a map's layout depends on, computed in one place. */
export interface Geometry {
  keySize: number;
  valueSize: number;
  maxEntries: number;
  nrCpus: number;
  n_buckets: number;
  /** bytes of one element: header + round_up(key) + value area */
  elem_size: number;
  /** Per-CPU values: one round_up(value, 8) slot per possible CPU, inline in the element. */
  percpu: boolean;
  /** False under BPF_F_NO_PREALLOC: elements are carved from a growable buffer on demand. */
  prealloc: boolean;
  /** Bytes of a value as the control plane moves it: value_size, or nrCpus x round_up(value_size, 8). */
  valueBytes: number;
  /** LRU_NONE, LRU_COMMON or LRU_PERCPU. */
  lru: number;
  /** extra_elems: one per CPU slot, for replacing an existing key in a full map */
  extra_elems: number;
  num_elems: number;
  /** Byte offset of CPU 0's scratch buffer; CPU c's is at scratchBytes + c * scratchStride. */
  scratchBytes: number;
  scratchStride: number;
  /**
   * Bytes of a scratch value: round_up(value bytes, 8), or 0 when values go
   * through the JS path only (per-CPU values, which are nrCpus x value_size,
   * and values over FAST_VALUE_MAX_BYTES: scratch would cost nrCpus copies).
   */
  scratchValueBytes: number;
  /**
   * Bytes of a slot's many area (after its scratch value): MANY_CHUNK keys,
   * values and result words; 0 when keys are not whole words or values are
   * not in scratch or over MANY_VALUE_MAX_BYTES (lookupMany() then looks
   * keys up one by one).
   */
  manyBytes: number;
  bucketsBytes: number;
  /** Bytes per bucket record: BUCKET_BYTES, or with a home element BUCKET_BYTES + elem_size (padded to a cache line where that fits). */
  bucketStride: number;
  /** Elements that live in bucket records: element i < homes is record i's. */
  homes: number;
  /**
   * Buckets and elements (plain layout) under HOME_MIN_BYTES: the map lives
   * in the caches, so lookupMany() does not touch every bucket ahead (there
   * are no misses to overlap, only loads to repeat).
   */
  cached: boolean;
  /** Byte offset of the LRU region (equal to elemsBytes when the map has none). */
  lruBytes: number;
  /** LRU lists: 1 (common), nrCpus (per-CPU) or 0. */
  lruLists: number;
  /** LRU nodes: one per element, then the sentinels. */
  lruNodes: number;
  elemsBytes: number;
  totalBytes: number;
}

/** The only function that computes sizes. Kernel: htab_map_alloc() + prealloc_init(). */
export function computeGeometry(
  keySize: number,
  valueSize: number,
  maxEntries: number,
  nrCpus: number,
  percpu = false,
  prealloc = true,
  lru = LRU_NONE,
  homed?: boolean,
): Geometry {
  const n_buckets = roundupPowOfTwo(maxEntries);
  // What the control plane copies: value_size, or every CPU's round_up(value_size, 8) slot.
  const valueBytes = percpu ? roundUp(valueSize, 8) * nrCpus : valueSize;
  const elem_size = ELEM_HEADER_BYTES + roundUp(keySize, 8) + roundUp(valueSize, 8) * (percpu ? nrCpus : 1);
  // Kernel: htab_has_extra_elems(): per-CPU maps update in place and need none.
  // Without preallocation there are no extra elements either, but a replace in a
  // full map allocates before it frees: room for one such element per CPU.
  // LRU maps evict instead: no extra elements either (kernel: htab_has_extra_elems()).
  const extra_elems = percpu || !prealloc || lru !== LRU_NONE ? 0 : nrCpus;
  const num_elems = maxEntries + (prealloc ? extra_elems : percpu ? 0 : nrCpus);
  const scratchBytes = roundUp(PCPU_BASE_BYTES + nrCpus * PCPU_RECORD_BYTES, CACHE_LINE_BYTES);
  const scratchValueBytes = !percpu && valueBytes <= FAST_VALUE_MAX_BYTES ? roundUp(valueBytes, 8) : 0;
  const manyBytes =
    (keySize & 3) === 0 && scratchValueBytes > 0 && scratchValueBytes <= MANY_VALUE_MAX_BYTES
      ? MANY_CHUNK * (keySize + scratchValueBytes + 4)
      : 0;
  const scratchStride =
    SCRATCH_DESC_BYTES + roundUp(roundUp(keySize, 8) + scratchValueBytes + manyBytes, CACHE_LINE_BYTES);
  const bucketsBytes = scratchBytes + nrCpus * scratchStride;
  const plainBytes = n_buckets * BUCKET_BYTES + num_elems * elem_size;
  const wanted = homed ?? plainBytes >= HOME_MIN_BYTES;
  const homeable = wanted && prealloc && lru === LRU_NONE ? Math.min(num_elems, n_buckets) : 0;
  const bucketStride =
    homeable === 0
      ? BUCKET_BYTES
      : homeStride(n_buckets, num_elems, homeable, elem_size, keySize, valueSize, percpu, nrCpus);
  // homeStride() may find the records too big for the kernel's memlock: then no homes.
  const homes = bucketStride === BUCKET_BYTES ? 0 : homeable;
  const lruBytes = roundUp(bucketsBytes + n_buckets * bucketStride, CACHE_LINE_BYTES);
  const lruLists = lru === LRU_COMMON ? 1 : lru === LRU_PERCPU ? nrCpus : 0;
  const lruLocals = lru === LRU_COMMON ? nrCpus : 0;
  const lruNodes = lru === LRU_NONE ? 0 : num_elems + lruLists * LRU_SENTINELS_PER_LIST + lruLocals;
  const elemsBytes =
    lruBytes +
    lruLists * LRU_LIST_BYTES +
    lruLocals * LRU_LOCAL_BYTES +
    roundUp(lruNodes * LRU_NODE_BYTES, CACHE_LINE_BYTES);
  const totalBytes = elemsBytes + (num_elems - homes) * elem_size;
  return {
    keySize,
    valueSize,
    maxEntries,
    nrCpus,
    n_buckets,
    elem_size,
    percpu,
    prealloc,
    valueBytes,
    lru,
    extra_elems,
    num_elems,
    scratchBytes,
    scratchStride,
    scratchValueBytes,
    manyBytes,
    bucketsBytes,
    bucketStride,
    homes,
    cached: plainBytes < HOME_MIN_BYTES,
    lruBytes,
    lruLists,
    lruNodes,
    elemsBytes,
    totalBytes,
  };
}

/**
 * Maps whose buckets and elements take less than this stay in the plain
 * layout unless asked (computeGeometry()'s `homed`): they live in the CPU's
 * caches, where a home element saves no miss and its checks cost time.
 */
export const HOME_MIN_BYTES = 1 << 20;

/**
 * A lower estimate of the kernel's memlock for a preallocated HASH or
 * PERCPU_HASH map (the t_mem probe: 16 B per bucket, and a struct htab_elem
 * of 48 B before the key, then the value or a per-CPU pointer and the per-CPU
 * values).
 */
function kernelPreallocBytes(
  n_buckets: number,
  num_elems: number,
  keySize: number,
  valueSize: number,
  percpu: boolean,
  nrCpus: number,
): number {
  const v = roundUp(valueSize, 8);
  const elem = 48 + roundUp(keySize, 8) + (percpu ? 8 + v * nrCpus : v);
  return n_buckets * BUCKET_BYTES + num_elems * elem;
}

/**
 * The record size of a homed map: bucket + home element, padded to a cache
 * line when the map still fits the kernel's memlock, else packed (8-byte
 * aligned), else no homes at all (BUCKET_BYTES: records empty past
 * num_elems would cost more than the kernel's map).
 */
function homeStride(
  n_buckets: number,
  num_elems: number,
  homes: number,
  elem_size: number,
  keySize: number,
  valueSize: number,
  percpu: boolean,
  nrCpus: number,
): number {
  const bound = kernelPreallocBytes(n_buckets, num_elems, keySize, valueSize, percpu, nrCpus);
  const bytes = (stride: number) => n_buckets * stride + (num_elems - homes) * elem_size;
  const packed = BUCKET_BYTES + elem_size;
  const padded = roundUp(packed, CACHE_LINE_BYTES);
  if (bytes(padded) <= bound) return padded;
  return bytes(packed) <= bound ? packed : BUCKET_BYTES;
}

/** Word index of element `n` (0 <= n < num_elems): its home record, or the element array. */
export function elemIndexToWord(g: Geometry, n: number): number {
  return n < g.homes
    ? (g.bucketsBytes + n * g.bucketStride) / 4 + BUCKET_HOME_I32
    : (g.elemsBytes + (n - g.homes) * g.elem_size) / 4;
}

/** Element number of word index `e`, or -1 if `e` is not where an element starts (fsck). */
export function elemWordToIndex(g: Geometry, e: number, num: number): number {
  const rec = e * 4 - g.bucketsBytes;
  if (g.homes > 0 && rec >= 0 && rec < g.homes * g.bucketStride)
    return rec % g.bucketStride === BUCKET_BYTES ? (rec - BUCKET_BYTES) / g.bucketStride : -1;
  const off = e * 4 - g.elemsBytes;
  if (off < 0 || off % g.elem_size !== 0) return -1;
  const n = g.homes + off / g.elem_size;
  return n < num ? n : -1;
}

/**
 * Map state as a byte array: a copy of the map's bytes with the per-CPU
 * scratch buffers zeroed (they are the slot owners' working memory, written
 * by every lookup, and no part of the map's contents) and the NONCE word.
 * A BPF_F_NO_PREALLOC map's growable buffer is copied as far as it has grown.
 */
export function mapStateBytes(buf: SharedArrayBuffer, g: Geometry, offset = 0): Uint8Array {
  const copy = new Uint8Array(buf, offset, Math.min(g.totalBytes, buf.byteLength - offset)).slice();
  copy.fill(0, g.scratchBytes, g.scratchBytes + g.nrCpus * g.scratchStride);
  copy.fill(0, HDR_NONCE_I32 * 4, HDR_NONCE_I32 * 4 + 4); // which map, not what it holds
  // Which threads claimed the slots, not what the map holds.
  for (let c = 0; c < g.nrCpus; c++)
    copy.fill(0, (pcpuBase(c) + PCPU_CLAIM_I32) * 4, (pcpuBase(c) + PCPU_CLAIM_I32) * 4 + 4);
  return copy;
}

/** Write a fresh header into `i32`. Called once by the creator. */
export function writeHeader(
  i32: Int32Array,
  g: Geometry,
  mapType: number,
  mapFlags: number,
  hashrnd: number,
): void {
  i32[HDR_MAGIC_I32] = HTAB_MAGIC;
  i32[HDR_VERSION_I32] = LAYOUT_VERSION;
  i32[HDR_MAP_TYPE_I32] = mapType;
  i32[HDR_KEY_SIZE_I32] = g.keySize;
  i32[HDR_VALUE_SIZE_I32] = g.valueSize;
  i32[HDR_MAX_ENTRIES_I32] = g.maxEntries;
  i32[HDR_MAP_FLAGS_I32] = mapFlags;
  i32[HDR_N_BUCKETS_I32] = g.n_buckets;
  i32[HDR_HASHRND_I32] = hashrnd | 0;
  i32[HDR_ELEM_SIZE_I32] = g.elem_size;
  i32[HDR_NUM_ELEMS_I32] = g.num_elems;
  i32[HDR_NR_CPUS_I32] = g.nrCpus;
  i32[HDR_BUCKETS_I32] = g.bucketsBytes / 4;
  i32[HDR_ELEMS_I32] = g.elemsBytes / 4;
  // Maps past 2 GiB: the low 32 bits (readGeometry() recomputes the size from the parameters).
  i32[HDR_TOTAL_BYTES_I32] = g.totalBytes | 0;
  i32[HDR_SPIN_LOCK_OFF_I32] = -1;
  i32[HDR_HOME_END_I32] = g.homes === 0 ? 0 : (g.bucketsBytes + g.homes * g.bucketStride) / 4;
}

/** Read and check the header of a buffer someone handed to `attach()`. */
export function readGeometry(
  buf: unknown,
  offset = 0,
  length?: number,
): {
  g: Geometry;
  mapType: number;
  mapFlags: number;
  hashrnd: number;
} {
  if (!(buf instanceof SharedArrayBuffer))
    invalid("attach", "handle is not a SharedArrayBuffer made by htab");
  if (!Number.isInteger(offset) || offset < 0 || offset % 8 !== 0 || buf.byteLength < offset + HEADER_BYTES)
    invalid("attach", `no map header at offset ${offset} of a ${buf.byteLength}-byte buffer`);
  const i32 = new Int32Array(buf, offset, HEADER_BYTES >> 2);
  if (i32[HDR_MAGIC_I32] !== HTAB_MAGIC) invalid("attach", "buffer has no htab magic word (foreign buffer)");
  if (i32[HDR_VERSION_I32] !== LAYOUT_VERSION)
    invalid("attach", `layout version ${i32[HDR_VERSION_I32]} is not ${LAYOUT_VERSION}`);
  const g = computeGeometry(
    i32[HDR_KEY_SIZE_I32],
    i32[HDR_VALUE_SIZE_I32],
    i32[HDR_MAX_ENTRIES_I32] >>> 0,
    i32[HDR_NR_CPUS_I32],
    isPercpuType(i32[HDR_MAP_TYPE_I32]),
    (i32[HDR_MAP_FLAGS_I32] & MapFlags.NoPrealloc) === 0,
    lruKind(i32[HDR_MAP_TYPE_I32], i32[HDR_MAP_FLAGS_I32]),
    i32[HDR_HOME_END_I32] !== 0,
  );
  const size = length ?? (buf.growable ? buf.maxByteLength : buf.byteLength);
  // A map in a wasm memory (the fast path) has its buffer rounded up to whole 64 KiB
  // pages, or is a caller's memory (createMap(spec, { memory })) at least that big.
  const fits =
    size === g.totalBytes ||
    (length === undefined && !buf.growable && size >= g.totalBytes && size % WASM_PAGE_BYTES === 0);
  if (!fits || g.elem_size !== i32[HDR_ELEM_SIZE_I32])
    invalid("attach", "buffer size does not match its header (corrupt or foreign buffer)");
  return {
    g,
    mapType: i32[HDR_MAP_TYPE_I32],
    mapFlags: i32[HDR_MAP_FLAGS_I32],
    hashrnd: i32[HDR_HASHRND_I32],
  };
}

/** Where an LRU map's LRU lives: word indices of its list records, its local records (common LRU) and node 0. */
export interface LruPlace {
  readonly lists: number;
  readonly locals: number;
  readonly nodes: number;
  /** Kernel lru->target_free: nodes a common-LRU refill aims for. */
  readonly targetFree: number;
}

export function lruPlace(g: Geometry): LruPlace {
  const lists = g.lruBytes / 4;
  const locals = lists + (g.lruLists * LRU_LIST_BYTES) / 4;
  const nodes = locals + (g.lru === LRU_COMMON ? g.nrCpus * LRU_LOCAL_BYTES : 0) / 4;
  // Kernel: clamp((nr_elems / num_possible_cpus()) / 2, 1, LOCAL_FREE_TARGET).
  const targetFree = Math.min(
    LRU_LOCAL_FREE_TARGET,
    Math.max(1, Math.floor(Math.floor(g.num_elems / g.nrCpus) / 2)),
  );
  return { lists, locals, nodes, targetFree };
}
