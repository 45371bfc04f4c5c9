/**
 * The throwing, kernel-named layer over any backend's RawMap: the same calls
 * on a SharedArrayBuffer map and on a real kernel map. Expected outcomes
 * (a missing key, the end of a walk) return undefined/false; everything
 * else throws BpfError with the kernel's errno.
 */

import { BpfError, Errno, showInput } from "../errors.js";
import { isPercpuType } from "../layout/layout.js";
import { walkKeys } from "../map/key-walk.js";
import { type BatchArgs, type BatchResult, lookupManyOf, type MapInfo, type RawMap } from "../map/raw-map.js";
import { checkRaw } from "./args.js";
import { type ProgramLookups, programLookupsOf, touchKey } from "./touch.js";

/** Options of a BpfMap. */
export interface BpfMapOptions {
  /**
   * `lookup` and `lookupPerCpu` mark a key they find as recently used on an
   * LRU map, as a BPF program's bpf_map_lookup_elem() does (docs/lru.md).
   * Default false: the kernel's control-plane lookup, which never marks.
   * Needs a map with program lookups (createMap()); a kernel map is EOPNOTSUPP.
   */
  touch?: boolean;
}

/** A per-CPU map's flat value (info.valueBytes) as one value_size-byte copy per CPU. */
export function splitPerCpu(flat: Uint8Array, info: MapInfo): Uint8Array[] {
  const slot = Math.ceil(info.valueSize / 8) * 8;
  const out: Uint8Array[] = new Array(info.nrCpus);
  for (let c = 0; c < info.nrCpus; c++) out[c] = flat.slice(c * slot, c * slot + info.valueSize);
  return out;
}

/** One value_size-byte array per CPU as a per-CPU map's flat value. @throws BpfError EINVAL for the wrong shape */
export function joinPerCpu(op: string, values: readonly Uint8Array[], info: MapInfo): Uint8Array {
  if (!Array.isArray(values) || values.length !== info.nrCpus)
    throw new BpfError(
      op,
      Errno.EINVAL,
      `a per-CPU value is ${info.nrCpus} arrays (one per possible CPU), got ${Array.isArray(values) ? `${values.length} arrays` : showInput(values)}`,
    );
  const slot = Math.ceil(info.valueSize / 8) * 8;
  const flat = new Uint8Array(info.valueBytes);
  for (let c = 0; c < values.length; c++) {
    const v = values[c];
    if (!(v instanceof Uint8Array) || v.length !== info.valueSize)
      throw new BpfError(
        op,
        Errno.EINVAL,
        `CPU ${c}'s value must be a Uint8Array of value_size ${info.valueSize} bytes, got ${showInput(v)}`,
      );
    flat.set(v, c * slot);
  }
  return flat;
}

/**
 * Throwing calls over any backend's RawMap (a map of createMap(), a
 * KernelMap): `BpfError` with the kernel's errno instead of a negative
 * return; a missing key is `undefined` or `false`.
 */
export class BpfMap<R extends RawMap = RawMap> {
  private readonly touch: ProgramLookups | null;

  /** @throws BpfError EOPNOTSUPP for `touch` on a map without program lookups (a kernel map) */
  constructor(
    readonly raw: R,
    opts: BpfMapOptions = {},
  ) {
    checkRaw("BpfMap", raw);
    this.touch = opts.touch === true ? programLookupsOf("BpfMap", raw) : null;
  }

  /** What the map is: type, sizes, max_entries, flags, nrCpus, valueBytes. */
  get info(): MapInfo {
    return this.raw.info;
  }

  private check(op: string, err: number): void {
    if (err !== 0) throw new BpfError(op, -err, this.raw.lastError || undefined);
  }

  /**
   * Copy `key`'s value into `out` (allocated when absent) and return it, or undefined.
   * On a per-CPU map it is the kernel's flat layout, `info.valueBytes` bytes
   * (see lookupPerCpu() for one value per CPU). With `touch`, a key found is
   * marked recently used on an LRU map.
   * @throws BpfError EINVAL, EPERM, ETIMEDOUT
   * @remarks Kernel: BPF_MAP_LOOKUP_ELEM (with `touch`: bpf_map_lookup_elem() from a program).
   */
  lookup(key: Uint8Array, out?: Uint8Array, flags = 0): Uint8Array | undefined {
    if (this.touch !== null && !touchKey(this.touch, key, "lookup")) return undefined;
    const v = out ?? new Uint8Array(this.raw.info.valueBytes);
    const err = this.raw.lookupElem(key, v, flags);
    if (err === -Errno.ENOENT) return undefined;
    this.check("lookup", err);
    return v;
  }

  /**
   * Look up many keys at once: `keys` holds count x key_size bytes (count =
   * keys.length / key_size); `values` (allocated when absent) receives
   * count x info.valueBytes bytes, and `results[i]` is 0 (found) or -ENOENT.
   * On an htab map the keys' cache misses overlap (Htab.lookupMany()); other
   * backends look them up one by one.
   * @throws BpfError EINVAL for buffers of the wrong size, EPERM, ETIMEDOUT
   */
  getMany(
    keys: Uint8Array,
    values?: Uint8Array,
    results?: Int32Array,
  ): { found: number; values: Uint8Array; results: Int32Array } {
    const { keySize, valueBytes } = this.raw.info;
    if (!(keys instanceof Uint8Array) || keys.length % keySize !== 0)
      throw new BpfError(
        "getMany",
        Errno.EINVAL,
        `keys must be a Uint8Array of a whole number of ${keySize}-byte keys`,
      );
    const count = keys.length / keySize;
    const out = values ?? new Uint8Array(count * valueBytes);
    const res = results ?? new Int32Array(count);
    if (!(out instanceof Uint8Array) || out.length < count * valueBytes)
      throw new BpfError(
        "getMany",
        Errno.EINVAL,
        `values must hold count * value bytes = ${count * valueBytes}`,
      );
    if (!(res instanceof Int32Array) || res.length !== count)
      throw new BpfError(
        "getMany",
        Errno.EINVAL,
        `results must be an Int32Array of exactly ${count} entries`,
      );
    const found = lookupManyOf(this.raw, keys, out, res);
    for (let i = 0; i < count; i++)
      if (res[i] !== 0 && res[i] !== -Errno.ENOENT) this.check("getMany", res[i]);
    return { found, values: out, results: res };
  }

  /**
   * Insert or replace `key`'s value (`flags`: UpdateFlags.Any, NoExist, Exist, Lock).
   * @throws BpfError EEXIST (BPF_NOEXIST), ENOENT (BPF_EXIST), E2BIG (map full), EINVAL, EPERM, ETIMEDOUT
   * @remarks Kernel: BPF_MAP_UPDATE_ELEM.
   */
  update(key: Uint8Array, value: Uint8Array, flags = 0): void {
    this.check("update", this.raw.updateElem(key, value, flags));
  }

  /**
   * A per-CPU map's value for `key`: one `value_size`-byte array per possible
   * CPU (`info.nrCpus` of them), or undefined when absent.
   * @throws BpfError EINVAL on a map that is not per-CPU
   */
  lookupPerCpu(key: Uint8Array, flags = 0): Uint8Array[] | undefined {
    this.requirePerCpu("lookupPerCpu");
    const flat = this.lookup(key, undefined, flags);
    return flat === undefined ? undefined : splitPerCpu(flat, this.raw.info);
  }

  /**
   * Update a per-CPU map's value for `key` from one `value_size`-byte array per
   * possible CPU. @throws BpfError EINVAL unless `values` has exactly `info.nrCpus` arrays of value_size bytes
   */
  updatePerCpu(key: Uint8Array, values: readonly Uint8Array[], flags = 0): void {
    this.requirePerCpu("updatePerCpu");
    this.update(key, joinPerCpu("updatePerCpu", values, this.raw.info), flags);
  }

  private requirePerCpu(op: string): void {
    if (!isPercpuType(this.raw.info.type))
      throw new BpfError(op, Errno.EINVAL, "the map is not per-CPU (PERCPU_HASH, LRU_PERCPU_HASH)");
  }

  /**
   * Delete `key`.
   * @returns false when the key was absent
   * @throws BpfError EINVAL, EPERM, ETIMEDOUT
   * @remarks Kernel: BPF_MAP_DELETE_ELEM.
   */
  delete(key: Uint8Array): boolean {
    const err = this.raw.deleteElem(key);
    if (err === -Errno.ENOENT) return false;
    this.check("delete", err);
    return true;
  }

  /**
   * Look `key` up and delete it in one step.
   * @returns the deleted value, or undefined when absent
   * @throws BpfError EINVAL, EPERM, ETIMEDOUT
   * @remarks Kernel: BPF_MAP_LOOKUP_AND_DELETE_ELEM.
   */
  lookupAndDelete(key: Uint8Array, out?: Uint8Array, flags = 0): Uint8Array | undefined {
    const v = out ?? new Uint8Array(this.raw.info.valueBytes);
    const err = this.raw.lookupAndDeleteElem(key, v, flags);
    if (err === -Errno.ENOENT) return undefined;
    this.check("lookupAndDelete", err);
    return v;
  }

  /**
   * The key after `key` (the first for null, or for a key no longer in the map), or undefined at the end.
   * @throws BpfError EINVAL, EPERM, ETIMEDOUT
   * @remarks Kernel: BPF_MAP_GET_NEXT_KEY.
   */
  nextKey(key: Uint8Array | null, out?: Uint8Array): Uint8Array | undefined {
    const k = out ?? new Uint8Array(this.raw.info.keySize);
    const err = this.raw.getNextKey(key, k);
    if (err === -Errno.ENOENT) return undefined;
    this.check("getNextKey", err);
    return k;
  }

  /**
   * Every key, in get_next_key order (bucket by bucket, each chain from its head).
   * Under concurrent deletes a walk may restart from the first key, as in the
   * kernel; it stops after `limit` keys (default: 2 x max_entries) and throws
   * EBUSY rather than loop forever.
   */
  *keys(limit = this.raw.info.maxEntries * 2): Generator<Uint8Array> {
    if (!Number.isInteger(limit) || limit < 0)
      throw new BpfError(
        "keys",
        Errno.EINVAL,
        `limit must be a non-negative integer, got ${showInput(limit)}`,
      );
    yield* walkKeys(this.raw, { limit });
  }

  /** Every [key, value] pair in get_next_key order; keys deleted mid-walk are skipped. */
  *entries(): Generator<[Uint8Array, Uint8Array]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v !== undefined) yield [k, v];
    }
  }

  private batch(op: string, r: BatchResult, endOk: boolean): BatchResult {
    if (r.err !== 0 && !(endOk && r.err === -Errno.ENOENT)) {
      const e = new BpfError(op, -r.err, this.raw.lastError || undefined);
      Object.assign(e, { count: r.count, outBatch: r.outBatch });
      throw e;
    }
    return r;
  }

  /** Kernel: BPF_MAP_LOOKUP_BATCH. ENOENT (the end) is returned in `err`, not thrown. */
  lookupBatch(args: BatchArgs): BatchResult {
    return this.batch("lookupBatch", this.raw.lookupBatch(args), true);
  }

  /** Kernel: BPF_MAP_LOOKUP_AND_DELETE_BATCH. */
  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    return this.batch("lookupAndDeleteBatch", this.raw.lookupAndDeleteBatch(args), true);
  }

  /** Kernel: BPF_MAP_UPDATE_BATCH. @throws BpfError with `count` = entries written */
  updateBatch(args: BatchArgs): BatchResult {
    return this.batch("updateBatch", this.raw.updateBatch(args), false);
  }

  /** Kernel: BPF_MAP_DELETE_BATCH. @throws BpfError with `count` = entries deleted */
  deleteBatch(args: BatchArgs): BatchResult {
    return this.batch("deleteBatch", this.raw.deleteBatch(args), false);
  }

  /**
   * Walk the whole map in batches of up to `count` entries. When one bucket
   * does not fit (ENOSPC) the batch grows to fit it instead of failing.
   * Each batch is `{keys, values, count}` with `count` entries.
   */
  async *batches(opts: { count?: number; delete?: boolean } = {}): AsyncGenerator<BatchResult> {
    let count = opts.count ?? 256;
    let inBatch: number | null = null;
    for (;;) {
      const args: BatchArgs = { inBatch, count };
      const r: BatchResult = opts.delete ? this.raw.lookupAndDeleteBatch(args) : this.raw.lookupBatch(args);
      if (r.err === -Errno.ENOSPC) {
        count *= 2;
        continue;
      }
      if (r.err !== 0 && r.err !== -Errno.ENOENT) this.batch("batches", r, true);
      if (r.count > 0) yield r;
      if (r.err === -Errno.ENOENT || r.outBatch === null) return;
      inBatch = r.outBatch;
    }
  }

  /**
   * Freeze the map: control-plane writes fail with EPERM from now on; programs still write.
   * @throws BpfError EBUSY, EPERM
   * @remarks Kernel: BPF_MAP_FREEZE.
   */
  freeze(): void {
    this.check("freeze", this.raw.freeze());
  }

  /** Bytes the map occupies (SAB), or the kernel's memlock figure for the map. */
  memoryUsage(): number {
    return this.raw.memoryUsage();
  }

  /** Close the map object (SAB: give its CPU slot back; kernel: close the fd). Later calls throw EINVAL. */
  close(): void {
    this.raw.close();
  }
}
