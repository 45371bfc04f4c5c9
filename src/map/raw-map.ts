/**
 * The kernel-shaped interface both backends implement: every call returns
 * 0 or a negative errno, as the kernel's map ops do, and allocates nothing
 * when the caller passes its buffers. `lastError` explains the last failure.
 * JavaScript-level misuse (a key that is not a Uint8Array of key_size bytes)
 * throws BpfError EINVAL instead, since the kernel would read garbage.
 */

/** What a map is, as BPF_OBJ_GET_INFO_BY_FD reports it. */
export interface MapInfo {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** Possible CPUs: per-CPU values are nrCpus x round_up(value_size, 8) bytes. */
  nrCpus: number;
  /**
   * Bytes of one value as lookups and updates move it: value_size, or for
   * per-CPU maps nrCpus x round_up(value_size, 8) (one slot per possible CPU).
   * Computed once by the backend; no layer derives it again.
   */
  valueBytes: number;
  /** Kernel map id (0 on the SAB backend; the map's id in its MapDomain there). */
  id: number;
  /** Kernel maps: the name BPF_OBJ_GET_INFO_BY_FD reports (what bpftool shows). */
  name?: string;
  /** Kernel maps: the map's BTF object id and its key and value type ids (0 = none). */
  btfId?: number;
  btfKeyTypeId?: number;
  btfValueTypeId?: number;
}

/** Arguments of the four batch commands (kernel: attr->batch). */
export interface BatchArgs {
  /** Bucket cursor from a previous call's `outBatch`; null starts at the first bucket. */
  inBatch?: number | null;
  /** Capacity (lookup) or number of entries (update, delete). */
  count: number;
  elemFlags?: number;
  flags?: number;
  /** Lookup: output, `count * keySize` bytes (allocated if absent). Update/delete: input. */
  keys?: Uint8Array;
  /** Lookup: output, `count * valueSize` bytes. Update: input. */
  values?: Uint8Array;
}

/** Result of a batch command. `err` is 0 or a negative errno; `count` is valid in both cases. */
export interface BatchResult {
  err: number;
  /** Entries processed; on an error the kernel rejects up front, the count passed in, untouched. */
  count: number;
  /** Next bucket cursor, or null when the kernel did not write one. */
  outBatch: number | null;
  keys: Uint8Array;
  values: Uint8Array;
}

export interface RawMap {
  readonly info: MapInfo;
  /** Human-readable reason for the last non-zero return. */
  readonly lastError: string;
  /** Kernel: map_lookup_elem(). Copies the value into `value`. */
  lookupElem(key: Uint8Array, value: Uint8Array, flags?: number): number;
  /**
   * Look up `results.length` keys at once (`keys`: count x key_size bytes,
   * `values`: count x value bytes); `results[i]` is 0 or a negative errno.
   * Not in the kernel: a backend without it is looked up key by key
   * (lookupManyOf()). @returns the number found
   */
  lookupMany?(keys: Uint8Array, values: Uint8Array, results: Int32Array): number;
  /** Kernel: map_update_elem(). */
  updateElem(key: Uint8Array, value: Uint8Array, flags?: number): number;
  /** Kernel: map_delete_elem(). */
  deleteElem(key: Uint8Array): number;
  /** Kernel: map_lookup_and_delete_elem(). */
  lookupAndDeleteElem(key: Uint8Array, value: Uint8Array, flags?: number): number;
  /** Kernel: map_get_next_key(). `key` null (or absent from the map) gives the first key. */
  getNextKey(key: Uint8Array | null, nextKey: Uint8Array): number;
  lookupBatch(args: BatchArgs): BatchResult;
  lookupAndDeleteBatch(args: BatchArgs): BatchResult;
  updateBatch(args: BatchArgs): BatchResult;
  deleteBatch(args: BatchArgs): BatchResult;
  /**
   * Delete `key` only if value bytes [offset, offset+size) equal `expected`
   * (docs/compare-and-compute.md). Backends that cannot do it atomically do not have it: the
   * kernel backend, since the kernel rejected BPF_F_COMPARE.
   */
  compareAndDeleteElem?(key: Uint8Array, expected: Uint8Array, offset?: number, size?: number): number;
  /** Replace the whole value only if the region matches. Absent where compareAndDeleteElem is. */
  compareAndSwapElem?(
    key: Uint8Array,
    expected: Uint8Array,
    value: Uint8Array,
    offset?: number,
    size?: number,
  ): number;
  /** Run `fn(current)` under the key's bucket lock and store its result (or delete on undefined). SAB only. */
  compute?(key: Uint8Array, fn: (current: Uint8Array | undefined) => Uint8Array | undefined | null): number;
  /** Kernel: BPF_MAP_FREEZE. */
  freeze(): number;
  /**
   * What an outer map (ARRAY_OF_MAPS / HASH_OF_MAPS) is given to store this map:
   * the kernel takes a map fd, a MapDomain the map's id.
   */
  mapRef?(): number;
  /** Bytes the map occupies (SAB) or the kernel's memlock figure (kernel). */
  memoryUsage(): number;
  close(): void;
}

/**
 * `map.lookupMany()` where the backend has it, else one lookupElem() per key
 * (the same results). Requires: buffers of count x key_size and count x
 * value bytes, count = results.length.
 */
export function lookupManyOf(map: RawMap, keys: Uint8Array, values: Uint8Array, results: Int32Array): number {
  if (map.lookupMany !== undefined) return map.lookupMany(keys, values, results);
  const { keySize, valueBytes } = map.info;
  let found = 0;
  for (let i = 0; i < results.length; i++) {
    const r = map.lookupElem(
      keys.subarray(i * keySize, (i + 1) * keySize),
      values.subarray(i * valueBytes, (i + 1) * valueBytes),
      0,
    );
    results[i] = r;
    if (r === 0) found++;
  }
  return found;
}

/**
 * The allocation-free path of the SAB map (Htab): the key and value live in
 * the thread's own scratch in shared memory, and calls read them in place.
 */
export interface ScratchMap {
  readonly keyScratch: Uint8Array;
  readonly valueScratch: Uint8Array;
  /** The scratch key as u32 words (a u32 key is word 0; a u64 key words 0 and 1, little-endian). */
  readonly keyScratchWords: Int32Array;
  lookupScratch(): number;
  updateScratch(flags?: number): number;
  deleteScratch(): number;
}

/** `map` as a ScratchMap, or null for a backend without the scratch path. */
export function scratchOf(map: RawMap): ScratchMap | null {
  return typeof (map as Partial<ScratchMap>).lookupScratch === "function"
    ? (map as unknown as ScratchMap)
    : null;
}
