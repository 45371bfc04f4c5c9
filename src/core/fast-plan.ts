/**
 * What runs in wasm for one view of one map, decided once at construction
 * (fastPlan()), and the one place that calls the wasm exports. Callers hold
 * the plan (`v.fast`, null on the JS path), read its booleans and call its
 * methods; none of them casts or calls a FastPath export. The JS fallbacks
 * beside each call live in fast.ts.
 *
 * The wasm-level interface itself (exports, descriptor words, result codes)
 * is named in src/wasm/fast-path.ts, layout.ts SCRATCH_* and
 * src/sentinels.ts, for generated code to call directly.
 */
import type { Geometry } from "../layout/geometry.js";
import { LRU_COMMON, LRU_NONE, PCPU_BASE_BYTES, PCPU_RECORD_BYTES } from "../layout/layout.js";
import { WASM_RETRY } from "../sentinels.js";
import { MapFlags } from "../uapi.js";
import { type FastPath, LOOKUP_COPY, LOOKUP_HASH } from "../wasm/fast-path.js";

/** What runs in wasm for one view of one map (one slot of one thread), and the calls. */
export class FastPlan {
  /** Keys of whole u32 words: wasm hashes them too (jhash2). */
  readonly wordKeys: boolean;
  /** The wasm write calls' mode: LOOKUP_HASH for word keys, else 0 (the caller passes the hash). */
  readonly hashMode: number;
  /** Values move through the scratch buffer, so wasm lookups can copy them (Geometry.scratchValueBytes). */
  readonly values: boolean;
  /**
   * A plain lookup runs whole in wasm: word keys, values in scratch, and a
   * map the control plane may read (not BPF_F_WRONLY, which never changes).
   */
  readonly wholeLookup: boolean;
  /**
   * Updates and deletes run in wasm: a preallocated HASH map whose values
   * have no spin lock, or an LRU_HASH on the common LRU (not NO_PREALLOC,
   * which counts against max_entries in JS; not per-CPU or in-place values).
   */
  readonly writes: boolean;
  /** `writes`, word keys and not BPF_F_RDONLY: an update or delete is one wasm call. */
  readonly wholeWrites: boolean;
  /** The wasm LRU update runs (the descriptor's LRU words are set). */
  readonly lru: boolean;
  /** Bytes of this slot's many area (Geometry.manyBytes): lookupMany() batches keys through wasm. */
  readonly manyBytes: number;
  /**
   * Runs when a wasm write trapped (fast-path.wat traps on a damaged LRU
   * link, holding no bucket lock): releases the locks this slot holds, so
   * that the call is redone in JS (which answers EUCLEAN). Null: rethrow.
   */
  onTrap: (() => void) | null = null;
  private readonly pcpu0: number;
  private readonly linkLo: number;
  private readonly linkSpan: number;

  constructor(
    /** This thread's instance over the map's memory. */
    private readonly wasm: FastPath,
    g: Geometry,
    mapFlags: number,
    /** Byte address (wasm) of word 0 of the map. */
    readonly base: number,
    /** Byte address (wasm) of this slot's descriptor (layout.ts SCRATCH_*). */
    readonly desc: number,
    /** The links the map may hold (layout.ts SCRATCH_LINK_LO, LINK_SPAN): kept here, out of shared memory. */
    links: { lo: number; span: number },
    inPlace: boolean,
    spinLockOff: number,
  ) {
    this.wordKeys = (g.keySize & 3) === 0;
    this.hashMode = this.wordKeys ? LOOKUP_HASH : 0;
    this.values = g.scratchValueBytes > 0;
    // The wasm LRU update covers LRU_HASH on the common LRU (not per-CPU values, not NO_COMMON_LRU).
    this.lru = this.values && g.lru === LRU_COMMON && !g.percpu;
    this.writes =
      this.values && g.prealloc && (g.lru === LRU_NONE || this.lru) && !inPlace && spinLockOff < 0;
    this.wholeLookup = this.wordKeys && this.values && (mapFlags & MapFlags.Wronly) === 0;
    this.wholeWrites = this.writes && this.wordKeys && (mapFlags & MapFlags.Rdonly) === 0;
    this.manyBytes = g.manyBytes;
    this.pcpu0 = base + PCPU_BASE_BYTES;
    this.linkLo = links.lo;
    this.linkSpan = links.span;
  }

  // ---- lookups: the element, 0 when absent, -1 when a writer holds the bucket

  /** The whole lookup of the scratch key (hashed here); the value lands in the scratch value. */
  lookupWhole(): number {
    return this.wasm.lookup(this.desc, 0, LOOKUP_HASH | LOOKUP_COPY);
  }

  /** Whether the scratch key is present (hashed here), copying nothing. */
  hasWhole(): number {
    return this.wasm.lookup(this.desc, 0, LOOKUP_HASH);
  }

  /** Lookup of the scratch key with the caller's `hash`, copying the value to scratch when `copy`. */
  lookupHashed(hash: number, copy: boolean): number {
    return this.wasm.lookup(this.desc, hash, copy ? LOOKUP_COPY : 0);
  }

  /** lookupMany() of the first `n` keys of this slot's many area (see FastPath.lookupMany()). */
  lookupMany(n: number, touch: number): number {
    return this.wasm.lookupMany(this.desc, n, touch);
  }

  // ---- writes of the scratch key (and value): 0, an errno, or sentinels.ts WASM_*

  /** htab_map_update_elem(); `hash` as hashMode wants it (0 when wasm hashes). */
  update(hash: number, flags: number): number {
    try {
      return this.wasm.update(this.desc, hash, this.hashMode, flags);
    } catch (e) {
      return this.trapped(e);
    }
  }

  /** A wasm write trapped: release what this slot holds and answer WASM_RETRY (the JS path redoes it). */
  private trapped(e: unknown): number {
    if (!(e instanceof Error && e.name === "RuntimeError") || this.onTrap === null) throw e;
    this.onTrap();
    return WASM_RETRY;
  }

  /** htab_map_delete_elem(); `hash` as hashMode wants it (0 when wasm hashes). */
  delete(hash: number): number {
    try {
      return this.wasm.delete(this.desc, hash, this.hashMode);
    } catch (e) {
      return this.trapped(e);
    }
  }

  // ---- the per-CPU freelists, never waiting (see FastPath)

  freelistPop(cpu: number, nrCpus: number): number {
    return this.wasm.freelistPop(
      this.base,
      this.pcpu0,
      PCPU_RECORD_BYTES,
      cpu,
      nrCpus,
      this.linkLo,
      this.linkSpan,
    );
  }

  freelistClaim(cpu: number, h: number): number {
    return this.wasm.freelistClaim(
      this.base,
      this.pcpu0,
      PCPU_RECORD_BYTES,
      cpu,
      h,
      this.linkLo,
      this.linkSpan,
    );
  }

  freelistPush(cpu: number, e: number): number {
    return this.wasm.freelistPush(
      this.base,
      this.pcpu0,
      PCPU_RECORD_BYTES,
      cpu,
      e,
      this.linkLo,
      this.linkSpan,
    );
  }
}

/**
 * Decide what runs in wasm for a view over a map of geometry `g`: null (the
 * JS path) without a wasm instance over the map's memory.
 */
export function fastPlan(
  wasm: FastPath | null,
  g: Geometry,
  mapFlags: number,
  base: number,
  desc: number,
  links: { lo: number; span: number },
  inPlace: boolean,
  spinLockOff: number,
): FastPlan | null {
  return wasm === null ? null : new FastPlan(wasm, g, mapFlags, base, desc, links, inPlace, spinLockOff);
}
