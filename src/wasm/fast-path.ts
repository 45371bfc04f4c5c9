/**
 * The wasm fast path: htab's hottest loops (lookup, the bucket-lock CAS, the
 * atomic words of the write path) compiled from fast-path.wat and run over
 * the map's own memory.
 *
 * Why: in V8 11 (Node 20) every JS `Atomics.*` call is a builtin call of
 * ~5 ns that also stops the CPU from overlapping the next lookup's cache
 * misses; a wasm `i32.atomic.load` is one instruction. A map whose buffer is
 * a shared `WebAssembly.Memory` gets the fast path in every thread that
 * attaches with that memory; a map on a plain SharedArrayBuffer (or a thread
 * without wasm) runs the JS path. The two paths speak the same protocol
 * word for word and may run on one map at once.
 */

import { WASM_PAGE_BYTES } from "../layout/layout.js";
import { FAST_PATH_WASM } from "./fast-path-bytes.js";

/** The exports of fast-path.wat. Addresses are byte offsets into the memory. */
export interface FastPath {
  /**
   * Lock-free lookup of the scratch key of the slot whose descriptor is at
   * `desc` (layout.ts SCRATCH_*). `mode`: LOOKUP_COPY copies the value to the
   * slot's scratch value; LOOKUP_HASH hashes the key here (jhash2), else
   * `hash` is used.
   * @returns the element, 0 when absent, -1 when a writer holds the bucket
   */
  lookup(desc: number, hash: number, mode: number): number;
  /**
   * lookup() of the first `n` (<= MANY_CHUNK) keys in the slot's many area
   * (layout.ts Geometry.manyBytes), their misses overlapped: values to the
   * area's value slots, and per key a result word: the element, 0 (absent)
   * or -1 (a writer holds the bucket: look that key up alone). `touch` 0
   * skips the passes that touch every bucket and first element ahead (a map
   * that lives in the caches has no misses to overlap).
   * @returns the number found
   */
  lookupMany(desc: number, n: number, touch: number): number;
  /**
   * pcpuFreelistPop() for `cpu` when no list lock is contended. `pcpu`: byte
   * address of CPU 0's per-CPU record; `stride`: record bytes.
   * `linkLo`, `linkSpan`: the links the map may hold (layout.ts SCRATCH_LINK_*).
   * @returns the element, 0 when every list is empty, -1 - c when list c's lock is held
   * or its head or the head's next link lies outside the map
   */
  freelistPop(
    base: number,
    pcpu: number,
    stride: number,
    cpu: number,
    nrCpus: number,
    linkLo: number,
    linkSpan: number,
  ): number;
  /**
   * pcpuFreelistClaim() of home element `h` for `cpu`, never waiting.
   * @returns h, or 0 when it is not on a list or its list's lock is held
   */
  freelistClaim(
    base: number,
    pcpu: number,
    stride: number,
    cpu: number,
    h: number,
    linkLo: number,
    linkSpan: number,
  ): number;
  /** pcpuFreelistPush() onto `cpu`'s own list. @returns 1, or 0 when its lock is held */
  freelistPush(
    base: number,
    pcpu: number,
    stride: number,
    cpu: number,
    e: number,
    linkLo: number,
    linkSpan: number,
  ): number;
  /**
   * htab_map_update_elem() of the slot's scratch key and value (a
   * preallocated HASH map without a spin lock). `mode`: LOOKUP_HASH as for lookup().
   * On an LRU_HASH map on the common LRU (descriptor LRU_NODES set) it is
   * htab_lru_map_update_elem(): pop (evicting), then insert.
   * @returns 0, -EEXIST, -ENOENT, or (sentinels.ts) WASM_RETRY (nothing changed), WASM_FROZEN,
   * WASM_REPLACED_IN_SECTION (the old element is INFLIGHT, the bucket still
   * locked), WASM_LRU_STEAL, WASM_LRU_POPPED or WASM_LRU_REPLACED
   */
  update(desc: number, hash: number, mode: number, flags: number): number;
  /**
   * htab_map_delete_elem() of the slot's scratch key.
   * @returns 0, -ENOENT, WASM_RETRY, WASM_FROZEN, or the unlinked element for the caller to free (bucket unlocked)
   */
  delete(desc: number, hash: number, mode: number): number;
  /** jhash2() over `words` u32 words at `addr`. */
  jhash2(addr: number, words: number, initval: number): number;
  /** @returns 1 when the bucket seqlock was taken, 0 when the caller must take the slow path */
  seqTryLock(addr: number): number;
  load(addr: number): number;
  store(addr: number, v: number): void;
  exchange(addr: number, v: number): number;
  compareExchange(addr: number, expected: number, v: number): number;
}

/** wasm32 addresses 4 GiB; htab's word-index links stop at 8 GiB anyway. */
const MAX_PAGES = 65536;

/**
 * A shared `WebAssembly.Memory` (typed here so that htab's declarations need
 * neither the DOM lib nor a wasm one).
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** Grow by `pages` 64 KiB pages; every thread's `buffer` then has the new length. */
  grow(pages: number): number;
}

/** The part of the WebAssembly namespace htab uses. */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  Memory: new (desc: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}

const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
// Its update()/delete() results other than errnos: src/sentinels.ts (WASM_*).

/** lookup() mode bits. */
export const LOOKUP_COPY = 1;
export const LOOKUP_HASH = 2;

let compiled: object | null | undefined;
const instances = new WeakMap<WasmMemory, FastPath>();

function fastPathModule(): object | null {
  if (compiled === undefined) {
    try {
      if (wasm === undefined) throw new Error("no WebAssembly");
      compiled = new wasm.Module(FAST_PATH_WASM);
    } catch {
      compiled = null; // no wasm threads here: the JS path serves
    }
  }
  return compiled;
}

/**
 * The two waits the wasm LRU eviction hands to JS (fast-path.wat imports
 * them): `bucketWait` takes a bucket seqlock the way sync/bucket-seqlock.ts
 * bucketLock() does (false after LOCK_TIMEOUT_MS), `limboPush` is
 * alloc/epoch.ts limboPush(). `i32` views the map's own words. The core
 * supplies them (this layer sits below both).
 */
export interface FastPathWaits {
  bucketWait(i32: Int32Array, idx: number): boolean;
  limboPush(i32: Int32Array, cpu: number, e: number): void;
}

/** Never called: the imports of an instance made without waits (the LRU export then must not run). */
const NO_WAITS: FastPathWaits = {
  bucketWait: () => false,
  limboPush: () => {
    throw new Error("htab: the wasm LRU ran without its waits");
  },
};

/**
 * This thread's instance over `memory` (one per memory per thread), or null
 * without wasm. `waits`: what the LRU export calls back for (the first
 * caller's are kept for the instance).
 */
export function fastPathFor(
  memory: WasmMemory | undefined,
  waits: FastPathWaits = NO_WAITS,
): FastPath | null {
  if (memory === undefined) return null;
  const hit = instances.get(memory);
  if (hit !== undefined) return hit;
  const mod = fastPathModule();
  if (mod === null) return null;
  // The map at byte address `base`, as the JS path views it (cold: only evictions that must wait).
  // `base` arrives as a wasm i32: a map placed past 2 GiB of the memory has it negative.
  const mapAt = (base: number) => new Int32Array(memory.buffer, base >>> 0);
  const env = {
    memory,
    bucketWait: (base: number, idx: number) => (waits.bucketWait(mapAt(base), idx) ? 1 : 0),
    limboPush: (base: number, cpu: number, e: number) => waits.limboPush(mapAt(base), cpu, e),
  };
  const fp = new (wasm as WasmApi).Instance(mod, { env }).exports as FastPath;
  instances.set(memory, fp);
  return fp;
}

/**
 * A shared wasm memory of at least `bytes` (rounded up to whole pages) that
 * can grow to `maxBytes` (default: fixed size), or null when the engine
 * cannot make one (no wasm, no threads, or over 4 GiB): the caller then uses
 * a plain SharedArrayBuffer.
 */
export function allocSharedMemory(bytes: number, maxBytes = bytes): WasmMemory | null {
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  const maximum = Math.ceil(maxBytes / WASM_PAGE_BYTES);
  if (maximum > MAX_PAGES || fastPathModule() === null) return null;
  try {
    const memory = new (wasm as WasmApi).Memory({ initial: pages, maximum, shared: true });
    return memory.buffer instanceof SharedArrayBuffer ? memory : null;
  } catch {
    return null;
  }
}
