/**
 * The LRU's nodes and lists in shared memory (kernel: struct bpf_lru_node,
 * struct bpf_lru_list and the list primitives of bpf_lru_list.c). BpfLru
 * (bpf-lru.ts) builds the rotation, shrinking and free-list algorithm on
 * top. Layout: layout.ts LRU_*.
 */

import { type Geometry, lruPlace } from "../layout/geometry.js";
import {
  LRU_COMMON,
  LRU_LIST_BYTES,
  LRU_LIST_COUNT_ACTIVE_I32,
  LRU_LIST_COUNT_INACTIVE_I32,
  LRU_LIST_NEXT_INACTIVE_ROT_I32,
  LRU_LOCAL_BYTES,
  LRU_LOCAL_FREE_TARGET,
  LRU_NODE_BYTES,
  LRU_NODE_META_I32,
  LRU_NODE_NEXT_I32,
  LRU_NODE_PREV_I32,
  LRU_NODE_REF_I32,
  LRU_SENTINELS_PER_LIST,
} from "../layout/layout.js";
import { JsWords, type Words } from "../wasm/words.js";

/** Node types (kernel: enum bpf_lru_list_type), then htab's own LIMBO. */
export const LRU_T_ACTIVE = 0;
export const LRU_T_INACTIVE = 1;
export const LRU_T_FREE = 2;
export const LRU_T_LOCAL_FREE = 3;
export const LRU_T_LOCAL_PENDING = 4;
/** Unlinked while program sections might hold it: on no list until its grace period ends. */
export const LRU_T_LIMBO = 5;

/** Kernel LOCAL_NR_SCANS: nodes a rotation or shrink looks at (common LRU). */
const LOCAL_NR_SCANS = LRU_LOCAL_FREE_TARGET;
/** Kernel PERCPU_FREE_TARGET / PERCPU_NR_SCANS: per-CPU lists are small, so refill and scan few. */
export const PERCPU_FREE_TARGET = 4;
const PERCPU_NR_SCANS = PERCPU_FREE_TARGET;

/** delFromHtab() results. */
export const DEL_NOT_FOUND = 0;
/** Unlinked from its bucket: the node may be reused now. */
export const DEL_FREED = 1;
/** Unlinked, but program sections may hold it: it went to limbo instead. */
export const DEL_DEFERRED = 2;

/** rebuild() classes, one per node. */
export const CLASS_FREE = -1;
export const CLASS_HASH = -2;
export const CLASS_LIMBO = -3;
// >= 0: popped by that CPU and not yet linked or freed (pending on it).

/**
 * A link, a list head or a node's CPU that lies outside the map's LRU (thrown
 * under an LRU lock and caught by BpfLru's entry points, which release every
 * LRU lock this slot holds and answer LRU_CORRUPT). Never leaves alloc/.
 */
export class LruDamage extends Error {}

/**
 * Unlink element node `n` from its bucket if it is still linked there.
 * Kernel: htab_lru_map_delete_node(). Called with an LRU lock held.
 */
export type DelFromHtab = (n: number) => number;

/**
 * The LRU's storage: node and list addressing, node metadata, and the list
 * primitives (kernel: __bpf_lru_node_move(), __bpf_lru_node_move_in(),
 * __bpf_lru_node_move_to_free()). Every write here needs the lock of the list
 * the node is on (see bpf-lru.ts).
 */
export class LruNodes {
  /** BPF_F_NO_COMMON_LRU. */
  readonly percpu: boolean;
  /** Kernel lru->target_free: nodes a common-LRU refill aims for. */
  readonly targetFree: number;
  protected readonly nrScans: number;
  protected readonly listsBase: number;
  protected readonly localsBase: number;
  protected readonly nodesBase: number;
  protected readonly numElems: number;
  protected readonly nrCpus: number;
  protected readonly lists: number;
  /**
   * Nodes in the LRU: the elements' nodes, then every sentinel. A link a
   * list operation follows must be below it (containment: node n is at
   * NODES + 16 n, so a larger link would reach past the map's LRU).
   */
  protected readonly nodeCount: number;
  /** Nodes moved off the common lists by a refill, before they reach the local FREE stack. */
  protected readonly tmp: Int32Array;
  protected tmpLen = 0;

  constructor(
    protected readonly i32: Int32Array,
    g: Geometry,
    /** Header word that is non-zero while a repair is pending. */
    protected readonly repairIdx: number,
    /** The calling thread's CPU slot: lock owner tag and "smp_processor_id()". */
    protected readonly cpu: number,
    protected readonly delFromHtab: DelFromHtab,
    /** Runs under the lock that hands node `n` out: the caller records it as its own (crash safety). */
    protected readonly onClaim: (n: number) => void,
    /** Runs under the lock that files node `n` as free: the caller stops recording it. */
    protected readonly onFiled: (n: number) => void,
    /** The lock words' atomic operations (the view's: wasm or JS). */
    protected readonly words: Words = new JsWords(i32),
  ) {
    this.percpu = g.lru !== LRU_COMMON;
    this.nrCpus = g.nrCpus;
    this.numElems = g.num_elems;
    this.lists = g.lruLists;
    this.nodeCount = g.num_elems + this.lists * LRU_SENTINELS_PER_LIST + (this.percpu ? 0 : g.nrCpus);
    const at = lruPlace(g);
    this.listsBase = at.lists;
    this.localsBase = at.locals;
    this.nodesBase = at.nodes;
    this.nrScans = this.percpu ? PERCPU_NR_SCANS : LOCAL_NR_SCANS;
    this.targetFree = at.targetFree;
    this.tmp = new Int32Array(LRU_LOCAL_FREE_TARGET);
  }

  // ------------------------------------------------------------ addressing

  protected w(n: number): number {
    return this.nodesBase + n * (LRU_NODE_BYTES >> 2);
  }
  protected listAt(l: number): number {
    return this.listsBase + l * (LRU_LIST_BYTES >> 2);
  }
  protected localAt(c: number): number {
    return this.localsBase + c * (LRU_LOCAL_BYTES >> 2);
  }
  /** Sentinel node of list set `l`'s list `type` (ACTIVE, INACTIVE or FREE). */
  protected head(l: number, type: number): number {
    return this.numElems + l * LRU_SENTINELS_PER_LIST + type;
  }
  protected pendingHead(c: number): number {
    return this.numElems + this.lists * LRU_SENTINELS_PER_LIST + c;
  }
  /** Node `n`'s list type (LRU_T_*). */
  type(n: number): number {
    return this.i32[this.w(n) + LRU_NODE_META_I32] & 0xff;
  }
  /** Node `n`'s CPU (its local lists, or with NO_COMMON_LRU its list set), checked. */
  protected nodeCpu(n: number): number {
    const c = this.i32[this.w(n) + LRU_NODE_META_I32] >>> 8;
    if (c >= this.nrCpus) this.damaged(`node ${n} names CPU ${c} of ${this.nrCpus}`);
    return c;
  }
  protected setMeta(n: number, type: number, cpu: number): void {
    this.i32[this.w(n) + LRU_NODE_META_I32] = type | (cpu << 8);
  }
  protected setType(n: number, type: number): void {
    const i = this.w(n) + LRU_NODE_META_I32;
    this.i32[i] = (this.i32[i] & ~0xff) | type;
  }
  /** Node `n`'s NEXT link, checked before anyone follows it (every list walk reads links through here). */
  protected next(n: number): number {
    const x = this.i32[this.w(n) + LRU_NODE_NEXT_I32];
    if (x >>> 0 >= this.nodeCount) this.damaged(`node ${n}'s next link is ${x}`);
    return x;
  }
  protected prev(n: number): number {
    const x = this.i32[this.w(n) + LRU_NODE_PREV_I32];
    if (x >>> 0 >= this.nodeCount) this.damaged(`node ${n}'s prev link is ${x}`);
    return x;
  }
  /** Links as stored, unchecked (fsck's check(), the local FREE stack's -1 end). */
  protected rawNext(n: number): number {
    return this.i32[this.w(n) + LRU_NODE_NEXT_I32];
  }
  protected rawPrev(n: number): number {
    return this.i32[this.w(n) + LRU_NODE_PREV_I32];
  }
  /**
   * A node a walk of list `type` reached, other than its sentinel: an
   * element's node of that type (a link into another list, or onto another
   * sentinel, is damage; following it would walk, move or evict the wrong nodes).
   */
  protected walked(n: number, type: number): void {
    if (n >>> 0 >= this.numElems) this.damaged(`a list of type ${type} links to node ${n}, not an element's`);
    if (this.type(n) !== type) this.damaged(`node ${n} has type ${this.type(n)} on a list of type ${type}`);
  }
  /** Answer damage: the entry points catch this, release this slot's LRU locks and answer LRU_CORRUPT. */
  protected damaged(what: string): never {
    throw new LruDamage(what);
  }
  protected isRef(n: number): boolean {
    return this.i32[this.w(n) + LRU_NODE_REF_I32] !== 0;
  }
  protected clearRef(n: number): void {
    this.i32[this.w(n) + LRU_NODE_REF_I32] = 0;
  }

  /** A program looked the element up (kernel: bpf_lru_node_set_ref()); written only if clear, to spare the cache line. */
  setRef(n: number): void {
    const i = this.w(n) + LRU_NODE_REF_I32;
    if (this.i32[i] === 0) this.i32[i] = 1;
  }

  // ------------------------------------------------- circular list helpers

  protected initHead(h: number): void {
    const i32 = this.i32;
    i32[this.w(h) + LRU_NODE_PREV_I32] = h;
    i32[this.w(h) + LRU_NODE_NEXT_I32] = h;
  }
  protected del(n: number): void {
    const i32 = this.i32;
    const p = this.prev(n);
    const x = this.next(n);
    i32[this.w(p) + LRU_NODE_NEXT_I32] = x;
    i32[this.w(x) + LRU_NODE_PREV_I32] = p;
    i32[this.w(n) + LRU_NODE_PREV_I32] = n;
    i32[this.w(n) + LRU_NODE_NEXT_I32] = n;
  }
  /** Insert `n` right after sentinel `h` (kernel: list_add()). */
  protected add(n: number, h: number): void {
    const i32 = this.i32;
    const x = this.next(h);
    i32[this.w(n) + LRU_NODE_PREV_I32] = h;
    i32[this.w(n) + LRU_NODE_NEXT_I32] = x;
    i32[this.w(x) + LRU_NODE_PREV_I32] = n;
    i32[this.w(h) + LRU_NODE_NEXT_I32] = n;
  }
  /**
   * del() then add(), each link read checked once, before the first write (a
   * damaged head leaves `n` where it was). After the del, h's next is either
   * the one checked here or n's old next (checked too): read unchecked.
   */
  protected move(n: number, h: number): void {
    const i32 = this.i32;
    this.next(h);
    const p = this.prev(n);
    const x = this.next(n);
    const wn = this.w(n);
    i32[this.w(p) + LRU_NODE_NEXT_I32] = x;
    i32[this.w(x) + LRU_NODE_PREV_I32] = p;
    const hx = this.rawNext(h);
    i32[wn + LRU_NODE_PREV_I32] = h;
    i32[wn + LRU_NODE_NEXT_I32] = hx;
    i32[this.w(hx) + LRU_NODE_PREV_I32] = n;
    i32[this.w(h) + LRU_NODE_NEXT_I32] = n;
  }
  /** Check the links a move of `n` after sentinel `h` follows, before a caller writes anything about `n`. */
  protected movable(n: number, h: number): void {
    this.prev(n);
    this.next(n);
    this.next(h);
  }
  protected empty(h: number): boolean {
    return this.next(h) === h;
  }

  // ------------------------------------------------- list-set operations
  // Requires (all of them): list set `l`'s lock held.

  protected countAdd(l: number, type: number, d: number): void {
    if (type === LRU_T_ACTIVE) this.i32[this.listAt(l) + LRU_LIST_COUNT_ACTIVE_I32] += d;
    else if (type === LRU_T_INACTIVE) this.i32[this.listAt(l) + LRU_LIST_COUNT_INACTIVE_I32] += d;
  }
  /** Keep the rotation cursor off a node that leaves its place. */
  protected skipCursor(l: number, n: number): void {
    const i = this.listAt(l) + LRU_LIST_NEXT_INACTIVE_ROT_I32;
    if (this.i32[i] === n) this.i32[i] = this.prev(n);
  }

  /**
   * Take `n` off the lists towards a free list: sentinel `dest`, or (dest -1)
   * the refill buffer. Kernel: __bpf_lru_node_move_to_free().
   */
  protected moveToFree(l: number, n: number, dest: number, tgtType: number): void {
    const t = this.type(n);
    this.skipCursor(l, n);
    // The move first: it checks its links before writing, so damage leaves counts and type as they were.
    if (dest >= 0) this.move(n, dest);
    else {
      this.del(n);
      this.tmp[this.tmpLen++] = n;
    }
    this.countAdd(l, t, -1);
    this.setType(n, tgtType);
  }

  /** A pending node joins the common lists. Kernel: __bpf_lru_node_move_in(). */
  protected moveIn(l: number, n: number, tgtType: number): void {
    this.move(n, this.head(l, tgtType));
    this.countAdd(l, tgtType, 1);
    this.setType(n, tgtType);
    this.clearRef(n);
  }

  /** Kernel: __bpf_lru_node_move(). */
  protected moveTo(l: number, n: number, tgtType: number): void {
    const t = this.type(n);
    this.skipCursor(l, n);
    this.move(n, this.head(l, tgtType));
    if (t !== tgtType) {
      this.countAdd(l, t, -1);
      this.countAdd(l, tgtType, 1);
      this.setType(n, tgtType);
    }
    this.clearRef(n);
  }
}
