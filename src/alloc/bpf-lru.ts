/**
 * The kernel's approximate LRU for LRU_HASH and LRU_PERCPU_HASH
 * (kernel: kernel/bpf/bpf_lru_list.c), on nodes in shared memory.
 *
 * Two shapes, as in the kernel:
 * - common LRU: one set of ACTIVE / INACTIVE / FREE lists shared by every
 *   CPU, plus per-CPU local lists: a FREE stack that a CPU refills
 *   `target_free` nodes at a time, and a PENDING list of nodes it handed out
 *   since the last refill (flushed into the common lists on the next refill).
 *   A CPU that finds nothing steals from the other CPUs' local lists.
 * - BPF_F_NO_COMMON_LRU: one ACTIVE / INACTIVE / FREE set per CPU; a node
 *   stays on its home CPU's lists for life.
 *
 * Aging: a node enters INACTIVE with its ref bit clear; program lookups set
 * the bit. Rotation moves referenced INACTIVE nodes to ACTIVE and, when
 * INACTIVE is shorter than ACTIVE, unreferenced ACTIVE tail nodes to
 * INACTIVE. Shrinking evicts unreferenced nodes from the INACTIVE tail; if
 * that frees nothing, the tail of INACTIVE (else ACTIVE) is evicted
 * regardless of its bit. Eviction calls back into the map (`delFromHtab`),
 * which unlinks the element under its bucket lock.
 *
 * Lock order: layout.ts (local list, then common list, then bucket, then
 * freelist). Every wait is bounded (LOCK_TIMEOUT_MS): a lock that stays
 * held makes the operation back out as for a repair, with `timedOut` set. No two local or two list locks are held at once (except by
 * rebuild(), which takes all of them in index order while nothing else holds two).
 * Every node field and list head is written only under the lock of the list
 * the node is on; REF is the exception (see the layout's ordering table).
 *
 * Damaged memory: every link a list operation follows is checked first
 * (LruNodes.next()/prev(): a node of this map's LRU; walked(): an element's
 * node of the walked list's type; nodeCpu(): a CPU of the map), every walk
 * is bounded by the node count, and each list primitive checks all it reads
 * before its first write. Damage throws LruDamage, which popFree(),
 * pushFree() and steal() catch: they release every LRU lock this slot holds
 * and answer LRU_CORRUPT (pushFree(): false), with `damage` saying where.
 * Moves a walk made before it met the damage are recency moves between
 * well-formed lists; nothing is claimed or filed.
 */
import {
  LRU_LIST_COUNT_ACTIVE_I32,
  LRU_LIST_COUNT_INACTIVE_I32,
  LRU_LIST_LOCK_I32,
  LRU_LIST_NEXT_INACTIVE_ROT_I32,
  LRU_LOCAL_FREE_HEAD_I32,
  LRU_LOCAL_LOCK_I32,
  LRU_LOCAL_NEXT_STEAL_I32,
  LRU_NODE_META_I32,
  LRU_NODE_NEXT_I32,
  LRU_NODE_PREV_I32,
  LRU_NODE_REF_I32,
  LRU_SENTINELS_PER_LIST,
} from "../layout/layout.js";
import { LRU_CORRUPT, LRU_RETRY } from "../sentinels.js";
import { LOCK_WAITERS, lockAcquire, lockOwner } from "../sync/owner-lock.js";
import {
  CLASS_FREE,
  CLASS_LIMBO,
  DEL_DEFERRED,
  DEL_FREED,
  LRU_T_ACTIVE,
  LRU_T_FREE,
  LRU_T_INACTIVE,
  LRU_T_LIMBO,
  LRU_T_LOCAL_FREE,
  LRU_T_LOCAL_PENDING,
  LruDamage,
  LruNodes,
  PERCPU_FREE_TARGET,
} from "./lru-nodes.js";

/** The kernel's LRU algorithm over LruNodes. */
export class BpfLru extends LruNodes {
  /** Evicted but not reusable yet: off every list until its grace period ends. */
  private toLimbo(l: number, n: number): void {
    this.skipCursor(l, n);
    this.countAdd(l, this.type(n), -1);
    this.setType(n, LRU_T_LIMBO);
    this.del(n);
  }

  private rotateActive(l: number): void {
    const h = this.head(l, LRU_T_ACTIVE);
    const first = this.next(h);
    let i = 0;
    for (let n = this.prev(h); n !== h; ) {
      this.walked(n, LRU_T_ACTIVE);
      const p = this.prev(n);
      this.moveTo(l, n, this.isRef(n) ? LRU_T_ACTIVE : LRU_T_INACTIVE);
      if (++i === this.nrScans || n === first) break;
      n = p;
    }
  }

  /** Kernel: __bpf_lru_list_rotate_inactive(): promote referenced nodes, leave the rest in place. */
  private rotateInactive(l: number): void {
    const h = this.head(l, LRU_T_INACTIVE);
    if (this.empty(h)) return;
    const cursor = this.listAt(l) + LRU_LIST_NEXT_INACTIVE_ROT_I32;
    const at = this.i32[cursor];
    if (at >>> 0 >= this.nodeCount) this.damaged(`list ${l}'s rotation cursor is ${at}`);
    let last = this.next(at);
    if (last === h) last = this.next(last);
    let cur = at;
    let next = h;
    let i = 0;
    // Every step moves to the previous node, at most once round the list: more is a cycle.
    for (let steps = 0; i < this.nrScans; steps++) {
      if (steps > this.nodeCount) this.damaged(`list ${l} INACTIVE does not come back to its head`);
      if (cur === h) {
        cur = this.prev(cur);
        continue;
      }
      this.walked(cur, LRU_T_INACTIVE);
      next = this.prev(cur);
      if (this.isRef(cur)) this.moveTo(l, cur, LRU_T_ACTIVE);
      if (cur === last) break;
      cur = next;
      i++;
    }
    this.i32[cursor] = next;
  }

  private rotate(l: number): void {
    const L = this.listAt(l);
    if (this.i32[L + LRU_LIST_COUNT_INACTIVE_I32] < this.i32[L + LRU_LIST_COUNT_ACTIVE_I32])
      this.rotateActive(l);
    this.rotateInactive(l);
  }

  /** Evict via the map; false if the element was not linked. Deferred nodes leave the lists. */
  private evict(l: number, n: number, dest: number): boolean {
    this.movable(n, dest >= 0 ? dest : n); // checked before the element leaves its bucket
    const r = this.delFromHtab(n);
    if (r === DEL_DEFERRED) this.toLimbo(l, n);
    return r === DEL_FREED;
  }

  /** Kernel: __bpf_lru_list_shrink_inactive(). */
  private shrinkInactive(l: number, want: number, dest: number, tgtType: number): number {
    const h = this.head(l, LRU_T_INACTIVE);
    let got = 0;
    let i = 0;
    for (let n = this.prev(h); n !== h; ) {
      this.walked(n, LRU_T_INACTIVE);
      const p = this.prev(n);
      if (this.isRef(n)) this.moveTo(l, n, LRU_T_ACTIVE);
      else if (this.evict(l, n, dest)) {
        this.moveToFree(l, n, dest, tgtType);
        if (++got === want) break;
      }
      if (++i === this.nrScans) break;
      n = p;
    }
    return got;
  }

  /** Kernel: __bpf_lru_list_shrink(): polite shrink, else evict one node whatever its ref bit. */
  private shrink(l: number, want: number, dest: number, tgtType: number): number {
    const got = this.shrinkInactive(l, want, dest, tgtType);
    if (got !== 0) return got;
    const inactive = this.head(l, LRU_T_INACTIVE);
    const h = this.empty(inactive) ? this.head(l, LRU_T_ACTIVE) : inactive;
    const type = h === inactive ? LRU_T_INACTIVE : LRU_T_ACTIVE;
    for (let n = this.prev(h), steps = 0; n !== h; steps++) {
      if (steps >= this.numElems) this.damaged(`list ${l} type ${type} does not come back to its head`);
      this.walked(n, type);
      const p = this.prev(n);
      if (this.evict(l, n, dest)) {
        this.moveToFree(l, n, dest, tgtType);
        return 1;
      }
      n = p;
    }
    return 0;
  }

  // ------------------------------------------------------- common LRU

  /** Kernel: __local_list_flush(). Requires: list 0 and local `c` locks held. */
  private flushPending(c: number): void {
    const h = this.pendingHead(c);
    for (let n = this.prev(h), steps = 0; n !== h; steps++) {
      if (steps >= this.numElems) this.damaged(`CPU ${c}'s PENDING list does not come back to its head`);
      this.walked(n, LRU_T_LOCAL_PENDING);
      const p = this.prev(n);
      this.moveIn(0, n, this.isRef(n) ? LRU_T_ACTIVE : LRU_T_INACTIVE);
      n = p;
    }
  }

  private localPush(c: number, n: number): void {
    const i = this.localAt(c) + LRU_LOCAL_FREE_HEAD_I32;
    this.setMeta(n, LRU_T_LOCAL_FREE, c);
    this.i32[this.w(n) + LRU_NODE_NEXT_I32] = this.i32[i];
    this.i32[this.w(n) + LRU_NODE_PREV_I32] = n;
    this.i32[i] = n;
  }

  /** Requires: local `c` lock held. The stack's head and its next are checked before anything moves. */
  private localPop(c: number): number {
    const i = this.localAt(c) + LRU_LOCAL_FREE_HEAD_I32;
    const n = this.i32[i];
    if (n === -1) return -1;
    const x = n >>> 0 < this.numElems ? this.rawNext(n) : n;
    if (n >>> 0 >= this.numElems || (x !== -1 && x >>> 0 >= this.numElems))
      this.damaged(`CPU ${c}'s local FREE stack links to node ${x}, not an element's`);
    if (this.type(n) !== LRU_T_LOCAL_FREE)
      this.damaged(`node ${n} on CPU ${c}'s local FREE stack has type ${this.type(n)}`);
    this.next(this.pendingHead(c)); // where the caller puts it next: checked before it leaves the stack
    this.i32[i] = x;
    this.initHead(n);
    return n;
  }

  /**
   * Take an LRU lock, unless a repair is pending: then give it straight back
   * and report false, so the operation backs out and the caller repairs.
   * A dead slot's lists may be half-linked; nobody may walk them until the
   * repair (the flag is raised before the dead slot's locks are released).
   */
  private lock(idx: number): boolean {
    // The uncontended CAS in wasm (a JS Atomics call is a builtin call); contended, the JS lock waits.
    if (!this.words.tryOwnerLock(idx, (this.cpu + 1) << 1) && !lockAcquire(this.i32, idx, this.cpu)) {
      // Held past LOCK_TIMEOUT_MS: back out as for a repair; the caller sees timedOut.
      this.timedOut = true;
      return false;
    }
    if (this.words.load(this.repairIdx) === 0) return true;
    this.unlock(idx);
    return false;
  }

  /** lockRelease() of an LRU lock (the exchange in wasm when the map has the fast path). */
  private unlock(idx: number): void {
    if ((this.words.exchange(idx, 0) & LOCK_WAITERS) !== 0) Atomics.notify(this.i32, idx, 1);
  }

  /**
   * Refill local `c` from the common lists. Kernel: bpf_lru_list_pop_free_to_local().
   * Requires: local `c` lock held. @returns false to back out for a repair
   */
  private refillLocal(c: number): boolean {
    const L = this.listAt(0);
    if (!this.lock(L + LRU_LIST_LOCK_I32)) return false;
    this.flushPending(c);
    this.rotate(0);
    this.tmpLen = 0;
    const free = this.head(0, LRU_T_FREE);
    for (let n = this.next(free); n !== free && this.tmpLen < this.targetFree; ) {
      const x = this.next(n);
      this.moveToFree(0, n, -1, LRU_T_LOCAL_FREE);
      n = x;
    }
    if (this.tmpLen < this.targetFree) this.shrink(0, this.targetFree - this.tmpLen, -1, LRU_T_LOCAL_FREE);
    this.unlock(L + LRU_LIST_LOCK_I32);
    // Pushed in reverse so the first node harvested is the first handed out.
    for (let k = this.tmpLen - 1; k >= 0; k--) this.localPush(c, this.tmp[k]);
    this.tmpLen = 0;
    return true;
  }

  /** Requires: local `c` lock held. Kernel: __local_list_add_pending(). */
  private addPending(c: number, n: number): void {
    this.setMeta(n, LRU_T_LOCAL_PENDING, c);
    this.clearRef(n);
    this.move(n, this.pendingHead(c)); // move, not add: after a repair it may be listed already
  }

  /** Steal an element from `c`'s pending list, oldest first, unreferenced first. Requires: local `c` lock held. */
  private popPending(c: number): number {
    const h = this.pendingHead(c);
    for (let force = 0; force < 2; force++) {
      for (let n = this.prev(h), steps = 0; n !== h; steps++) {
        if (steps >= this.numElems) this.damaged(`CPU ${c}'s PENDING list does not come back to its head`);
        this.walked(n, LRU_T_LOCAL_PENDING);
        const p = this.prev(n);
        if (force === 1 || !this.isRef(n)) {
          this.next(n); // checked before the element leaves its bucket
          const r = this.delFromHtab(n);
          if (r === DEL_FREED) {
            this.del(n);
            return n;
          }
          if (r === DEL_DEFERRED) {
            this.setType(n, LRU_T_LIMBO);
            this.del(n);
          }
        }
        n = p;
      }
    }
    return -1;
  }

  /**
   * Set when an operation backed out because an LRU lock stayed held past
   * LOCK_TIMEOUT_MS (not for a repair). The caller clears it and answers
   * ETIMEDOUT, or tries again.
   */
  timedOut = false;

  /** A node stolen from another CPU, held across a back-out (it is our spare, so a repair keeps it pending on us). */
  private held = -1;

  private commonPopFree(): number {
    const c = this.cpu;
    const loc = this.localAt(c);
    let n = this.held;
    if (n < 0) {
      if (!this.lock(loc + LRU_LOCAL_LOCK_I32)) return LRU_RETRY;
      n = this.localPop(c);
      if (n < 0) {
        if (!this.refillLocal(c)) {
          this.unlock(loc + LRU_LOCAL_LOCK_I32);
          return LRU_RETRY;
        }
        n = this.localPop(c);
      }
      if (n >= 0) {
        this.addPending(c, n);
        this.onClaim(n);
      }
      this.unlock(loc + LRU_LOCAL_LOCK_I32);
      if (n >= 0) return n;
      return this.steal();
    }
    return this.claimHeld(n);
  }

  /**
   * Nothing locally or in the common lists (a refill found nothing): steal
   * round-robin from every CPU's local lists. Also where the wasm pop hands
   * over (fast-path.wat lruPop()). -1 when nothing could be had, LRU_RETRY as popFree().
   */
  steal(): number {
    try {
      return this.stealFrom();
    } catch (e) {
      return this.backOut(e);
    }
  }

  private stealFrom(): number {
    const i32 = this.i32;
    const loc = this.localAt(this.cpu);
    let first = i32[loc + LRU_LOCAL_NEXT_STEAL_I32];
    if (first >>> 0 >= this.nrCpus) first = 0; // only a cursor: a damaged one starts the round at CPU 0
    let n = -1;
    let steal = first;
    do {
      const v = this.localAt(steal);
      if (!this.lock(v + LRU_LOCAL_LOCK_I32)) return LRU_RETRY;
      n = this.localPop(steal);
      if (n < 0) n = this.popPending(steal);
      if (n >= 0) this.onClaim(n); // ours alone until it is pending on us
      this.unlock(v + LRU_LOCAL_LOCK_I32);
      steal = steal + 1 === this.nrCpus ? 0 : steal + 1;
    } while (n < 0 && steal !== first);
    i32[loc + LRU_LOCAL_NEXT_STEAL_I32] = steal; // only this CPU reads or writes it
    if (n < 0) return -1;
    return this.claimHeld(n);
  }

  /** A stolen node `n` becomes pending on us (it is `held` until then, across a back-out). */
  private claimHeld(n: number): number {
    const loc = this.localAt(this.cpu);
    this.held = n;
    if (!this.lock(loc + LRU_LOCAL_LOCK_I32)) return LRU_RETRY;
    this.held = -1;
    this.addPending(this.cpu, n);
    this.unlock(loc + LRU_LOCAL_LOCK_I32);
    return n;
  }

  // ---------------------------------------------------- per-CPU LRU lists

  private percpuPopFree(): number {
    const l = this.cpu;
    const L = this.listAt(l);
    if (!this.lock(L + LRU_LIST_LOCK_I32)) return LRU_RETRY;
    this.rotate(l);
    const free = this.head(l, LRU_T_FREE);
    if (this.empty(free)) this.shrink(l, PERCPU_FREE_TARGET, free, LRU_T_FREE);
    let n = -1;
    if (!this.empty(free)) {
      n = this.next(free);
      this.clearRef(n);
      this.moveTo(l, n, LRU_T_INACTIVE);
      this.onClaim(n);
    }
    this.unlock(L + LRU_LIST_LOCK_I32);
    return n;
  }

  // ---------------------------------------------------------------- API

  /**
   * A node for a new element, evicting if needed (kernel: bpf_lru_pop_free()).
   * -1 when nothing could be freed; LRU_RETRY when the caller must repair first
   * (then call again). Requires: no bucket lock held.
   */
  popFree(): number {
    try {
      return this.percpu ? this.percpuPopFree() : this.commonPopFree();
    } catch (e) {
      return this.backOut(e);
    }
  }

  /**
   * Where `LRU_CORRUPT` (or a false pushFree()) found the damage: "LRU list
   * …" or "CPU c's …" naming the node and link. Cleared by the caller.
   */
  damage = "";

  /**
   * An operation threw under an LRU lock: release every LRU lock this slot
   * holds (nothing may throw past a lock), then answer LRU_CORRUPT for
   * damage, or rethrow anything else.
   */
  private backOut(e: unknown): number {
    this.releaseDead(this.cpu);
    this.tmpLen = 0;
    if (!(e instanceof LruDamage)) throw e;
    this.damage = e.message;
    return LRU_CORRUPT;
  }

  /**
   * Give node `n` back (kernel: bpf_lru_push_free()). Returns false when a
   * repair is pending: the caller repairs, which files `n` as free (it is
   * linked nowhere and nobody's spare). Requires: no bucket lock held; `n` is unlinked.
   */
  pushFree(n: number): boolean {
    try {
      return this.pushFreeLocked(n);
    } catch (e) {
      this.backOut(e);
      return false;
    }
  }

  private pushFreeLocked(n: number): boolean {
    if (this.percpu) {
      const L = this.listAt(this.nodeCpu(n));
      if (!this.lock(L + LRU_LIST_LOCK_I32)) return false;
      if (this.type(n) === LRU_T_LIMBO) this.setType(n, LRU_T_FREE);
      this.moveTo(this.nodeCpu(n), n, LRU_T_FREE);
      this.onFiled(n);
      this.unlock(L + LRU_LIST_LOCK_I32);
      return true;
    }
    if (this.type(n) === LRU_T_LOCAL_PENDING) {
      const c = this.nodeCpu(n);
      const loc = this.localAt(c);
      if (!this.lock(loc + LRU_LOCAL_LOCK_I32)) return false;
      // Re-checked under the lock: a refill may have flushed it meanwhile.
      if (this.type(n) === LRU_T_LOCAL_PENDING) {
        this.prev(n);
        this.next(n);
        this.setType(n, LRU_T_LOCAL_FREE);
        this.clearRef(n);
        this.del(n);
        this.localPush(c, n);
        this.onFiled(n);
        this.unlock(loc + LRU_LOCAL_LOCK_I32);
        return true;
      }
      this.unlock(loc + LRU_LOCAL_LOCK_I32);
    }
    const L = this.listAt(0);
    if (!this.lock(L + LRU_LIST_LOCK_I32)) return false;
    if (this.type(n) === LRU_T_LIMBO) this.setType(n, LRU_T_FREE);
    this.moveTo(0, n, LRU_T_FREE);
    this.onFiled(n);
    this.unlock(L + LRU_LIST_LOCK_I32);
    return true;
  }

  /** Put every node on a FREE list. Kernel: bpf_lru_init() + bpf_lru_populate(). Creator only. */
  populate(): void {
    const i32 = this.i32;
    for (let l = 0; l < this.lists; l++) {
      for (let t = 0; t < LRU_SENTINELS_PER_LIST; t++) this.initHead(this.head(l, t));
      i32[this.listAt(l) + LRU_LIST_NEXT_INACTIVE_ROT_I32] = this.head(l, LRU_T_INACTIVE);
    }
    if (!this.percpu) {
      for (let c = 0; c < this.nrCpus; c++) {
        this.initHead(this.pendingHead(c));
        i32[this.localAt(c) + LRU_LOCAL_FREE_HEAD_I32] = -1;
        i32[this.localAt(c) + LRU_LOCAL_NEXT_STEAL_I32] = c;
      }
      for (let n = 0; n < this.numElems; n++) {
        this.setMeta(n, LRU_T_FREE, 0);
        this.add(n, this.head(0, LRU_T_FREE));
      }
      return;
    }
    // Each CPU's list gets num_elems / nrCpus consecutive elements (max_entries was rounded for it).
    const per = Math.floor(this.numElems / this.nrCpus);
    for (let n = 0; n < this.numElems; n++) {
      const c = Math.min(this.nrCpus - 1, Math.floor(n / per));
      this.setMeta(n, LRU_T_FREE, c);
      this.add(n, this.head(c, LRU_T_FREE));
    }
  }

  /**
   * Node `a` takes node `b`'s place and `b` takes `a`'s: their links, types
   * and CPUs (META), reference bits and the rotation cursor, each under the
   * lock of the list it is on (locals, then lists, in index order). Both must
   * be on an ACTIVE, INACTIVE or PENDING list. An LRU replace whose old
   * element must stay intact under a reference (core/elems/lru.ts) writes the
   * value in place in it and swaps it with the popped node, which is then
   * freed: the lists end as the kernel's, whose replace frees the old node.
   * Requires: no bucket lock held. @returns false when a lock could not be
   * had, a repair is pending, a node is on no such list or the lists are
   * damaged (nothing changed; `damage` says where)
   */
  swapPlaces(a: number, b: number): boolean {
    try {
      return this.swapTry(a, b);
    } catch (e) {
      this.backOut(e); // every LRU lock this slot holds is released
      return false;
    }
  }

  private swapTry(a: number, b: number): boolean {
    const la = this.placeLock(a);
    const lb = this.placeLock(b);
    if (la < 0 || lb < 0) return false;
    const first = this.placeRank(a) <= this.placeRank(b) ? la : lb;
    const second = first === la ? lb : la;
    if (!this.lock(first)) return this.swapGaveUp();
    if (second !== first && !this.lock(second)) {
      this.unlock(first);
      return this.swapGaveUp();
    }
    // Re-checked under the locks: a refill may have flushed a PENDING node meanwhile.
    const ok = this.placeLock(a) === la && this.placeLock(b) === lb;
    if (ok) this.swapLocked(a, b);
    if (second !== first) this.unlock(second);
    this.unlock(first);
    return ok;
  }

  private swapGaveUp(): boolean {
    this.timedOut = false;
    return false;
  }

  /** The lock word of the list node `n` is on (ACTIVE, INACTIVE, PENDING), else -1. */
  private placeLock(n: number): number {
    const t = this.type(n);
    if (t === LRU_T_LOCAL_PENDING && !this.percpu) return this.localAt(this.nodeCpu(n)) + LRU_LOCAL_LOCK_I32;
    if (t === LRU_T_ACTIVE || t === LRU_T_INACTIVE)
      return this.listAt(this.percpu ? this.nodeCpu(n) : 0) + LRU_LIST_LOCK_I32;
    return -1;
  }

  /** Where placeLock(n) comes in the acquisition order (lockWords(): locals by CPU, then lists). */
  private placeRank(n: number): number {
    if (this.type(n) === LRU_T_LOCAL_PENDING && !this.percpu) return this.nodeCpu(n);
    return this.nrCpus + (this.percpu ? this.nodeCpu(n) : 0);
  }

  /** swapPlaces() under the locks: every link it follows is checked before the first write. */
  private swapLocked(a: number, b: number): void {
    const i32 = this.i32;
    const pa = this.prev(a);
    const xa = this.next(a);
    const pb = this.prev(b);
    this.next(b);
    if (xa === b) {
      this.del(a);
      this.add(a, b);
    } else if (pa === b) {
      this.del(b);
      this.add(b, a);
    } else {
      this.del(a);
      this.del(b);
      this.add(a, pb);
      this.add(b, pa);
    }
    const ma = this.w(a) + LRU_NODE_META_I32;
    const mb = this.w(b) + LRU_NODE_META_I32;
    const meta = i32[ma];
    i32[ma] = i32[mb];
    i32[mb] = meta;
    const ra = this.w(a) + LRU_NODE_REF_I32;
    const rb = this.w(b) + LRU_NODE_REF_I32;
    const ref = i32[ra];
    i32[ra] = i32[rb];
    i32[rb] = ref;
    for (let l = 0; l < this.lists; l++) {
      const c = this.listAt(l) + LRU_LIST_NEXT_INACTIVE_ROT_I32;
      if (i32[c] === a) i32[c] = b;
      else if (i32[c] === b) i32[c] = a;
    }
  }

  /** NO_COMMON_LRU: node `n`'s list set, from its META, or where populate() put it when META is damaged. */
  private homeCpu(n: number): number {
    const c = this.i32[this.w(n) + LRU_NODE_META_I32] >>> 8;
    return c < this.nrCpus
      ? c
      : Math.min(this.nrCpus - 1, Math.floor(n / Math.floor(this.numElems / this.nrCpus)));
  }

  /** Every LRU lock word, in acquisition order: locals, then lists. */
  lockWords(): number[] {
    const out: number[] = [];
    if (!this.percpu) for (let c = 0; c < this.nrCpus; c++) out.push(this.localAt(c) + LRU_LOCAL_LOCK_I32);
    for (let l = 0; l < this.lists; l++) out.push(this.listAt(l) + LRU_LIST_LOCK_I32);
    return out;
  }

  /** Whether slot `c` holds any LRU lock. */
  holdsAny(c: number): boolean {
    for (const k of this.lockWords()) if (lockOwner(Atomics.load(this.i32, k)) === c) return true;
    return false;
  }

  /** Release every LRU lock slot `d` holds (it died). Returns how many. */
  releaseDead(d: number): number {
    let n = 0;
    for (const k of this.lockWords()) {
      const v = Atomics.load(this.i32, k);
      if (v !== 0 && lockOwner(v) === d) {
        Atomics.store(this.i32, k, 0);
        Atomics.notify(this.i32, k);
        n++;
      }
    }
    return n;
  }

  /**
   * Re-create every list from `cls` (one class per element node), for crash
   * recovery: a thread killed mid-operation may have left a list half-linked.
   * Linked elements start over on INACTIVE (recency is lost, membership is
   * not). Requires: every LRU lock held.
   */
  rebuild(cls: Int32Array): void {
    const i32 = this.i32;
    for (let l = 0; l < this.lists; l++) {
      for (let t = 0; t < LRU_SENTINELS_PER_LIST; t++) this.initHead(this.head(l, t));
      const L = this.listAt(l);
      i32[L + LRU_LIST_COUNT_ACTIVE_I32] = 0;
      i32[L + LRU_LIST_COUNT_INACTIVE_I32] = 0;
      i32[L + LRU_LIST_NEXT_INACTIVE_ROT_I32] = this.head(l, LRU_T_INACTIVE);
    }
    if (!this.percpu)
      for (let c = 0; c < this.nrCpus; c++) {
        this.initHead(this.pendingHead(c));
        i32[this.localAt(c) + LRU_LOCAL_FREE_HEAD_I32] = -1;
      }
    for (let n = 0; n < this.numElems; n++) {
      const k = cls[n];
      this.clearRef(n);
      this.initHead(n);
      const l = this.percpu ? this.homeCpu(n) : 0;
      if (k === CLASS_LIMBO) this.setType(n, LRU_T_LIMBO);
      else if (k === CLASS_FREE) {
        this.setType(n, LRU_T_FREE);
        this.add(n, this.head(l, LRU_T_FREE));
      } else if (k >= 0 && !this.percpu) this.addPending(k, n);
      else {
        this.setType(n, LRU_T_INACTIVE);
        this.countAdd(l, LRU_T_INACTIVE, 1);
        this.add(n, this.head(l, LRU_T_INACTIVE));
      }
    }
  }

  /**
   * Check that the lists are well formed and hold every node exactly once
   * with the right type and counts. Returns problems (empty when sound).
   * Requires: quiescent map (fsck).
   */
  check(): string[] {
    const bad: string[] = [];
    const seen = new Uint8Array(this.numElems);
    const walk = (h: number, type: number, l: number, what: string) => {
      let count = 0;
      let p = h;
      for (let n = this.rawNext(h), k = 0; n !== h; p = n, n = this.rawNext(n), k++) {
        if (k > this.numElems || n < 0 || n >= this.numElems) {
          bad.push(`${what}: broken link (${k > this.numElems ? "a cycle" : `to node ${n}`})`);
          return count;
        }
        if (this.rawPrev(n) !== p) bad.push(`${what}: node ${n} prev link wrong`);
        if (seen[n]++) bad.push(`node ${n} on two lists`);
        if (this.type(n) !== type) bad.push(`${what}: node ${n} has type ${this.type(n)}`);
        if ((this.percpu || type === LRU_T_LOCAL_PENDING) && this.homeCpu(n) !== l)
          bad.push(`${what}: node ${n} belongs to CPU ${this.homeCpu(n)}`);
        count++;
      }
      if (this.rawPrev(h) !== p)
        bad.push(`${what}: its head's prev link is ${this.rawPrev(h)}, not node ${p}`);
      return count;
    };
    for (let l = 0; l < this.lists; l++) {
      const L = this.listAt(l);
      const a = walk(this.head(l, LRU_T_ACTIVE), LRU_T_ACTIVE, l, `list ${l} ACTIVE`);
      const i = walk(this.head(l, LRU_T_INACTIVE), LRU_T_INACTIVE, l, `list ${l} INACTIVE`);
      walk(this.head(l, LRU_T_FREE), LRU_T_FREE, l, `list ${l} FREE`);
      if (a !== this.i32[L + LRU_LIST_COUNT_ACTIVE_I32]) bad.push(`list ${l}: active count wrong`);
      if (i !== this.i32[L + LRU_LIST_COUNT_INACTIVE_I32]) bad.push(`list ${l}: inactive count wrong`);
      const cur = this.i32[L + LRU_LIST_NEXT_INACTIVE_ROT_I32];
      const h = this.head(l, LRU_T_INACTIVE);
      if (cur !== h && (cur >>> 0 >= this.numElems || this.type(cur) !== LRU_T_INACTIVE))
        bad.push(`list ${l}: its rotation cursor is ${cur}, not a node of INACTIVE`);
    }
    if (!this.percpu)
      for (let c = 0; c < this.nrCpus; c++) {
        walk(this.pendingHead(c), LRU_T_LOCAL_PENDING, c, `CPU ${c} PENDING`);
        this.checkLocalFree(c, seen, bad);
      }
    for (let n = 0; n < this.numElems; n++)
      if (seen[n] === 0 && this.type(n) !== LRU_T_LIMBO) bad.push(`node ${n} is on no list`);
    return bad;
  }

  /** check() of CPU `c`'s local FREE stack (linked by NEXT, -1 ends it). */
  private checkLocalFree(c: number, seen: Uint8Array, bad: string[]): void {
    let k = 0;
    for (let n = this.i32[this.localAt(c) + LRU_LOCAL_FREE_HEAD_I32]; n !== -1; n = this.rawNext(n)) {
      if (k++ > this.numElems || n >>> 0 >= this.numElems) {
        bad.push(`CPU ${c} local FREE: broken link (to node ${n})`);
        return;
      }
      if (seen[n]++) bad.push(`node ${n} on two lists`);
      if (this.type(n) !== LRU_T_LOCAL_FREE)
        bad.push(`CPU ${c} local FREE: node ${n} has type ${this.type(n)}`);
      if (this.homeCpu(n) !== c) bad.push(`CPU ${c} local FREE: node ${n} belongs to CPU ${this.homeCpu(n)}`);
    }
  }
}
