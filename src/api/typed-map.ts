/**
 * A Map-like view of a BPF map with typed keys and values. Works over either
 * backend. `get` allocates nothing but the decoded value: on the SAB map the
 * key goes straight into the thread's scratch in shared memory (a u32 or u64
 * key as a number, with no byte encoding) and the value is decoded where
 * wasm copied it; on other backends through one reused key and value buffer.
 */

import { BpfError, Errno } from "../errors.js";

import { isPercpuType } from "../layout/layout.js";
import { type Codec, perCpu, u32, u64 } from "../map/codecs.js";
import { walkKeys } from "../map/key-walk.js";
import { lookupManyOf, type RawMap, type ScratchMap, scratchOf } from "../map/raw-map.js";
import { checkCodec, checkRaw } from "./args.js";
import { type ProgramLookups, programLookupsOf, touchKey } from "./touch.js";

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * An error a layer under the user's call threw, restated as that call's
 * (`get: map is closed ...`, not `keyScratchWords: map is closed ...`).
 */
function asCall(op: string, e: unknown): unknown {
  return e instanceof BpfError && e.op !== op ? new BpfError(op, e.errno, e.detail) : e;
}

/** A codec's EINVAL restated for the map operation: "set: value: packets: got "16" (string), expected u64 bigint". */
function codecError(op: string, what: "key" | "value", e: unknown): unknown {
  return e instanceof BpfError ? new BpfError(op, e.errno, `${what}: ${e.detail}`) : e;
}

/** Options of a TypedMap. */
export interface TypedMapOptions {
  /**
   * `get` and `getMany` mark a key they find as recently used on an LRU map,
   * as a BPF program's bpf_map_lookup_elem() does: the view then behaves as
   * a cache whose hits survive eviction (docs/lru.md). Default false: a read
   * is a control-plane lookup, which in the kernel never marks recency.
   * `has`, `entries()` and the other walks never mark. A hit costs a second
   * lookup (the program lookup that marks, then the copy); a miss costs one.
   * Needs a map with program lookups (createMap()); a kernel map is
   * EOPNOTSUPP, since bpf() has no lookup that marks.
   */
  touch?: boolean;
}

/**
 * A Map-like view of a BPF map with typed keys and values (codecs): `get`,
 * `set`, `has`, `delete`, `size`, iteration. Works over any backend (a map of
 * createMap() or attach(), a KernelMap). Expected outcomes (a missing key)
 * are `undefined`/`false`; everything else throws BpfError with the kernel's
 * errno. On an htab map `get` allocates nothing but the decoded value.
 *
 * @example
 * ```ts
 * const counts = new TypedMap(map, codecs.u32, codecs.u64);
 * counts.set(80, 0n);
 * counts.get(80); // 0n
 * ```
 */
export class TypedMap<K, V> implements Iterable<[K, V]> {
  private readonly kbuf: Uint8Array;
  private readonly vbuf: Uint8Array;
  /** The SAB map's scratch path, or null (another backend). */
  private readonly scratch: ScratchMap | null;
  /** 1: u32 keys, 2: u64 keys (written as words), 0: encoded by the codec. */
  private readonly keyWords: number;
  /** The codecs do not promise to write all their bytes: zero-fill before encoding (Codec.writesAll). */
  private readonly fillKey: boolean;
  private readonly fillValue: boolean;
  /** `touch`: the map's program lookups, or null. */
  private readonly touch: ProgramLookups | null;

  /**
   * A typed view of `raw`. On a per-CPU map the value codec must describe
   * every CPU's value (codecs.perCpu()); TypedMap.perCpu() builds that view.
   * A codec that does not declare `writesAll` has its bytes zero-filled
   * before each encode (see Codec).
   * @throws BpfError EINVAL when a codec's size does not match the map;
   * EOPNOTSUPP for `touch` on a map without program lookups (a kernel map)
   */
  constructor(
    readonly raw: RawMap,
    readonly keyCodec: Codec<K>,
    readonly valueCodec: Codec<V>,
    opts: TypedMapOptions = {},
  ) {
    checkRaw("TypedMap", raw);
    checkCodec("TypedMap", "key", keyCodec);
    checkCodec("TypedMap", "value", valueCodec);
    const { keySize, valueSize, valueBytes, type, nrCpus } = raw.info;
    if (keyCodec.size !== keySize)
      throw new BpfError(
        "TypedMap",
        Errno.EINVAL,
        `key codec is ${keyCodec.size} bytes, map key_size is ${keySize}`,
      );
    if (valueCodec.size !== valueBytes)
      throw new BpfError(
        "TypedMap",
        Errno.EINVAL,
        isPercpuType(type) && valueCodec.size === valueSize
          ? `the map is per-CPU: a value is ${nrCpus} CPUs' values (${valueBytes} bytes); ` +
              "use TypedMap.perCpu(map, keyCodec, valueCodec), or codecs.perCpu(valueCodec, nrCpus)"
          : `value codec is ${valueCodec.size} bytes, the map moves ${valueBytes} per value (value_size ${valueSize})`,
      );
    this.kbuf = new Uint8Array(keySize);
    this.vbuf = new Uint8Array(valueBytes);
    this.scratch = scratchOf(raw);
    this.keyWords = keyCodec === u32 ? 1 : keyCodec === (u64 as Codec<unknown>) ? 2 : 0;
    this.fillKey = keyCodec.writesAll !== true;
    this.fillValue = valueCodec.writesAll !== true;
    this.touch = opts.touch === true ? programLookupsOf("TypedMap", raw) : null;
  }

  /**
   * A typed view of a per-CPU map (PERCPU_HASH, LRU_PERCPU_HASH): `get`
   * returns one decoded value per possible CPU, `set` takes an array of
   * exactly `info.nrCpus` values, `entries()` yields `[key, perCpuValues]`.
   * @throws BpfError EINVAL when the map is not per-CPU or a codec's size does not match
   */
  static perCpu<K, V>(
    raw: RawMap,
    keyCodec: Codec<K>,
    valueCodec: Codec<V>,
    opts: TypedMapOptions = {},
  ): TypedMap<K, V[]> {
    checkRaw("TypedMap.perCpu", raw);
    checkCodec("TypedMap.perCpu", "key", keyCodec);
    checkCodec("TypedMap.perCpu", "value", valueCodec);
    if (!isPercpuType(raw.info.type))
      throw new BpfError(
        "TypedMap.perCpu",
        Errno.EINVAL,
        "TypedMap.perCpu() needs a PERCPU_HASH or LRU_PERCPU_HASH map",
      );
    if (valueCodec.size !== raw.info.valueSize)
      throw new BpfError(
        "TypedMap.perCpu",
        Errno.EINVAL,
        `value codec is ${valueCodec.size} bytes, map value_size (one CPU's value) is ${raw.info.valueSize}`,
      );
    return new TypedMap(raw, keyCodec, perCpu(valueCodec, raw.info.nrCpus), opts);
  }

  private key(op: string, k: K): Uint8Array {
    try {
      if (this.fillKey) this.kbuf.fill(0);
      this.keyCodec.encode(k, this.kbuf, 0);
    } catch (e) {
      throw codecError(op, "key", e);
    }
    return this.kbuf;
  }

  private fail(op: string, err: number): never {
    throw new BpfError(op, -err, this.raw.lastError || undefined);
  }

  /**
   * Put `k` in the SAB map's scratch key: a u32 or u64 key as words, others
   * through the codec. (The getter throws once the map is closed, before
   * anything is written.)
   */
  private keyToScratch(s: ScratchMap, op: string, k: K): void {
    if (this.keyWords === 1 && typeof k === "number" && k >>> 0 === k) s.keyScratchWords[0] = k;
    else if (this.keyWords === 2 && typeof k === "bigint" && k >= 0n && k <= U64_MAX) {
      const w = s.keyScratchWords;
      w[0] = Number(k & 0xffff_ffffn);
      w[1] = Number(k >> 32n);
    } else
      try {
        const buf = s.keyScratch;
        if (this.fillKey) buf.fill(0, 0, this.kbuf.length);
        this.keyCodec.encode(k, buf, 0);
      } catch (e) {
        throw codecError(op, "key", e);
      }
  }

  /**
   * The value for `key`, or undefined. With `touch`, a key found is marked
   * recently used on an LRU map (as a program's lookup marks it).
   * @throws BpfError EINVAL for a key the codec cannot encode, EPERM (BPF_F_WRONLY), ETIMEDOUT
   * @remarks Kernel: BPF_MAP_LOOKUP_ELEM (with `touch`: bpf_map_lookup_elem() from a program).
   */
  get(key: K): V | undefined {
    try {
      return this.getIn(key);
    } catch (e) {
      throw asCall("get", e);
    }
  }

  private getIn(key: K): V | undefined {
    const s = this.scratch;
    if (s !== null) {
      this.keyToScratch(s, "get", key);
      if (this.touch !== null && !touchKey(this.touch, s.keyScratch, "get")) return undefined;
      const err = s.lookupScratch();
      if (err === 0) return this.valueCodec.decode(s.valueScratch, 0);
      if (err === -Errno.ENOENT) return undefined;
      return this.fail("get", err);
    }
    const err = this.raw.lookupElem(this.key("get", key), this.vbuf, 0);
    if (err === 0) return this.valueCodec.decode(this.vbuf, 0);
    if (err === -Errno.ENOENT) return undefined;
    return this.fail("get", err);
  }

  /**
   * The values of many keys at once (undefined for an absent key), in their
   * order. On the SAB map their lookups overlap their cache misses
   * (Htab.lookupMany()); other backends look them up one by one. With
   * `touch`, every key found is marked recently used on an LRU map.
   * @throws BpfError EINVAL for a key the codec cannot encode, EPERM, ETIMEDOUT
   */
  getMany(keys: readonly K[]): (V | undefined)[] {
    try {
      return this.getManyIn(keys);
    } catch (e) {
      throw asCall("getMany", e);
    }
  }

  private getManyIn(keys: readonly K[]): (V | undefined)[] {
    const { keySize, valueBytes } = this.raw.info;
    const n = keys.length;
    const kb = new Uint8Array(n * keySize);
    for (let i = 0; i < n; i++)
      try {
        this.keyCodec.encode(keys[i], kb, i * keySize);
      } catch (e) {
        throw codecError("getMany", "key", e);
      }
    const vb = new Uint8Array(n * valueBytes);
    const res = new Int32Array(n);
    lookupManyOf(this.raw, kb, vb, res);
    const t = this.touch;
    if (t !== null)
      for (let i = 0; i < n; i++)
        if (res[i] === 0) touchKey(t, kb.subarray(i * keySize, (i + 1) * keySize), "getMany");
    const out: (V | undefined)[] = new Array(n);
    for (let i = 0; i < n; i++) {
      if (res[i] === 0) out[i] = this.valueCodec.decode(vb, i * valueBytes);
      else if (res[i] === -Errno.ENOENT) out[i] = undefined;
      else this.fail("getMany", res[i]);
    }
    return out;
  }

  /**
   * Whether `key` is in the map. Never marks LRU recency (not even with `touch`).
   * @throws BpfError EINVAL for a key the codec cannot encode, EPERM (BPF_F_WRONLY), ETIMEDOUT
   * @remarks Kernel: BPF_MAP_LOOKUP_ELEM.
   */
  has(key: K): boolean {
    try {
      return this.hasIn(key);
    } catch (e) {
      throw asCall("has", e);
    }
  }

  private hasIn(key: K): boolean {
    const s = this.scratch;
    let err: number;
    if (s !== null) {
      this.keyToScratch(s, "has", key);
      err = s.lookupScratch();
    } else err = this.raw.lookupElem(this.key("has", key), this.vbuf, 0);
    if (err === 0) return true;
    if (err === -Errno.ENOENT) return false;
    return this.fail("has", err);
  }

  /**
   * Insert or replace (BPF_ANY by default; UpdateFlags.NoExist, Exist, Lock).
   * An LRU map evicts instead of failing when full.
   * @returns this map, for chaining
   * @throws BpfError E2BIG when the map is full, EEXIST (NoExist) / ENOENT (Exist),
   * EINVAL for a key or value the codec cannot encode or bad flags, EPERM (BPF_F_RDONLY or frozen), ETIMEDOUT
   * @remarks Kernel: BPF_MAP_UPDATE_ELEM.
   */
  set(key: K, value: V, flags = 0): this {
    try {
      return this.setIn(key, value, flags);
    } catch (e) {
      throw asCall("set", e);
    }
  }

  private setIn(key: K, value: V, flags: number): this {
    const s = this.scratch;
    if (s !== null) {
      this.keyToScratch(s, "set", key);
      try {
        const buf = s.valueScratch;
        if (this.fillValue) buf.fill(0, 0, this.vbuf.length);
        this.valueCodec.encode(value, buf, 0);
      } catch (e) {
        throw codecError("set", "value", e);
      }
      const err = s.updateScratch(flags);
      if (err !== 0) this.fail("set", err);
      return this;
    }
    const k = this.key("set", key);
    try {
      if (this.fillValue) this.vbuf.fill(0);
      this.valueCodec.encode(value, this.vbuf, 0);
    } catch (e) {
      throw codecError("set", "value", e);
    }
    const err = this.raw.updateElem(k, this.vbuf, flags);
    if (err !== 0) this.fail("set", err);
    return this;
  }

  /**
   * Delete `key`.
   * @returns false when the key was absent
   * @throws BpfError EINVAL for a key the codec cannot encode, EPERM (BPF_F_RDONLY or frozen), ETIMEDOUT
   * @remarks Kernel: BPF_MAP_DELETE_ELEM.
   */
  delete(key: K): boolean {
    try {
      return this.deleteIn(key);
    } catch (e) {
      throw asCall("delete", e);
    }
  }

  private deleteIn(key: K): boolean {
    const s = this.scratch;
    let err: number;
    if (s !== null) {
      this.keyToScratch(s, "delete", key);
      err = s.deleteScratch();
    } else err = this.raw.deleteElem(this.key("delete", key));
    if (err === 0) return true;
    if (err === -Errno.ENOENT) return false;
    return this.fail("delete", err);
  }

  /** Number of elements, found by iterating (it can be late under concurrent writers). */
  get size(): number {
    let n = 0;
    for (const _ of this.rawKeys()) n++;
    return n;
  }

  /** Delete every element. Not atomic: concurrent inserts may survive. */
  clear(): void {
    const keys = [...this.rawKeys()];
    for (const k of keys) this.raw.deleteElem(k);
  }

  private rawKeys(): Generator<Uint8Array> {
    return walkKeys(this.raw);
  }

  /** Every key, decoded, in get_next_key order. @remarks Kernel: BPF_MAP_GET_NEXT_KEY. */
  *keys(): Generator<K> {
    for (const k of this.rawKeys()) yield this.keyCodec.decode(k, 0);
  }

  /**
   * Every `[key, value]`, decoded, in get_next_key order; a key deleted
   * during the walk is skipped. Never marks LRU recency.
   * @remarks Kernel: BPF_MAP_GET_NEXT_KEY, then BPF_MAP_LOOKUP_ELEM per key.
   */
  *entries(): Generator<[K, V]> {
    const v = new Uint8Array(this.raw.info.valueBytes);
    for (const k of this.rawKeys()) {
      if (this.raw.lookupElem(k, v, 0) === 0)
        yield [this.keyCodec.decode(k, 0), this.valueCodec.decode(v, 0)];
    }
  }

  /** Every value, decoded, in get_next_key order. */
  *values(): Generator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  /** Call `fn(value, key, map)` for every entry, as Map.prototype.forEach. */
  forEach(fn: (value: V, key: K, map: this) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }

  /** The same as entries(): `new Map(typedMap)` copies the map. */
  [Symbol.iterator](): Iterator<[K, V]> {
    return this.entries();
  }
}
