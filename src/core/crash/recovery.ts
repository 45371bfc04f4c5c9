/**
 * Crash recovery: a worker terminated mid-operation leaves its CPU slot
 * marked dead (reap(), or a waiter that stalls behind it), and one thread
 * at a time (HDR_RECOVERY_LOCK) recovers it while the others keep working:
 * the locks the slot held are released, a half-done chain change is
 * finished or undone from its recorded intent (PCPU_INTENT_*), the elements
 * it owned go back (the element policy's recoverOwned()), its value spin
 * locks and program section are released, and the slot is free again.
 * The kernel has nothing like it: a BPF program cannot die mid-operation.
 */
import { pcpuFreelistRelink } from "../../alloc/pcpu-freelist.js";
import { invalid, showInput } from "../../errors.js";
import {
  BUCKET_HEAD_I32,
  BUCKET_HOME_I32,
  BUCKET_HOME_STATE_I32,
  BUCKET_OWNER_I32,
  BUCKET_SEQLOCK_I32,
  ELEM_FNEXT_I32,
  ELEM_HOME_STATE_I32,
  ELEM_NEXT_I32,
  HDR_ACTIVE_I32,
  HDR_CARVED_I32,
  HDR_GROW_LOCK_I32,
  HDR_RECOVERED_I32,
  HDR_RECOVERY_LOCK_I32,
  HOME_LINKED,
  HOME_TAKEN,
  OP_INSERT,
  OP_NONE,
  OP_REPLACE,
  OP_UNLINK,
  PCPU_CLAIM_I32,
  PCPU_COUNT_I32,
  PCPU_EXTRA_I32,
  PCPU_FL_HEAD_I32,
  PCPU_FL_LOCK_I32,
  PCPU_INFLIGHT_I32,
  PCPU_INTENT_BUCKET_I32,
  PCPU_INTENT_COUNT_I32,
  PCPU_INTENT_ELEM_I32,
  PCPU_INTENT_OLD_I32,
  PCPU_INTENT_OP_I32,
  PCPU_LIMBO_HEAD_I32,
  PCPU_OWNER_I32,
  PCPU_SECTION_I32,
  pcpuBase,
  SLOT_ALIVE,
  SLOT_DEAD,
} from "../../layout/layout.js";
import { bucketBeginWrite, bucketUnlock, SEQ_LOCKED } from "../../sync/bucket-seqlock.js";
import { lockOwner } from "../../sync/owner-lock.js";
import {
  checkNotMine,
  markSlotDead,
  releaseSlot,
  slotGenerationOf,
  slotStateOf,
} from "../../sync/slot-claim.js";
import { chainPrev, homeLinked } from "../bucket.js";
import { carvedElem, elemOf, type HtabView } from "../htab-view.js";

/** How long an unowned locked bucket must stay unowned before recovery takes it from a dead slot. */
const RECOVERY_WAIT_MS = 100;

/** Recover every slot marked dead, unless another thread is recovering. Returns how many it recovered. */
export function recoverDeadSlots(v: HtabView): number {
  const i32 = v.i32;
  let n = 0;
  for (let c = 0; c < v.nrCpus; c++) {
    if (slotStateOf(Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32)) !== SLOT_DEAD) continue;
    if (Atomics.compareExchange(i32, HDR_RECOVERY_LOCK_I32, 0, v.cpu + 1) !== 0) return n;
    try {
      if (slotStateOf(Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32)) === SLOT_DEAD) {
        recoverSlot(v, c);
        n++;
      }
    } finally {
      Atomics.store(i32, HDR_RECOVERY_LOCK_I32, 0);
      Atomics.notify(i32, HDR_RECOVERY_LOCK_I32);
    }
  }
  return n;
}

/** Htab.reap()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function reap(v: HtabView, cpu: number, generation?: number, token?: number): void {
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= v.nrCpus) invalid("reap", `no CPU slot ${showInput(cpu)}`);
  if (cpu === v.cpu) invalid("reap", "a thread cannot reap its own slot");
  const idx = pcpuBase(cpu) + PCPU_OWNER_I32;
  checkNotMine("reap", v.i32, idx, pcpuBase(cpu) + PCPU_CLAIM_I32, cpu);
  // With `token`: only a claim by that thread (a slot another thread claimed is left alone).
  if (token !== undefined && Atomics.load(v.i32, pcpuBase(cpu) + PCPU_CLAIM_I32) !== token) return;
  // A later claim of the slot (another thread's) is not the one meant: leave it alone.
  const marked = markSlotDead(v.i32, idx, generation);
  if (!marked && generation !== undefined && slotGenerationOf(Atomics.load(v.i32, idx)) !== generation)
    return;
  while (slotStateOf(Atomics.load(v.i32, idx)) === SLOT_DEAD) {
    if (recoverDeadSlots(v) === 0)
      Atomics.wait(v.i32, HDR_RECOVERY_LOCK_I32, Atomics.load(v.i32, HDR_RECOVERY_LOCK_I32), 1);
  }
}

/** Is `x` on `cpu`'s freelist or limbo list? Requires: that list's lock held (or its owner dead). */
function onLists(v: HtabView, cpu: number, x: number): boolean {
  const i32 = v.i32;
  const p = pcpuBase(cpu);
  for (const head of [PCPU_FL_HEAD_I32, PCPU_LIMBO_HEAD_I32]) {
    let e = i32[p + head];
    for (let n = 0; e !== 0 && n < v.walkBound; n++, e = i32[e + ELEM_FNEXT_I32]) if (e === x) return true;
  }
  return false;
}

/**
 * Recover dead slot `d`. Requires: HDR_RECOVERY_LOCK held. Runs while other
 * threads keep working: it only touches what `d` held or owned.
 */
function recoverSlot(v: HtabView, d: number): void {
  const i32 = v.i32;
  const p = pcpuBase(d);
  const origLost = i32[p + PCPU_INFLIGHT_I32];
  let lost = origLost;
  // We may be recovering from inside our own operation (a stalled wait): keep our INFLIGHT.
  const mine = i32[v.myPcpu + PCPU_INFLIGHT_I32];
  // 1. Freelist locks `d` held: a push or pop was under way. Its INFLIGHT element is
  //    either on that list (filed) or not; nobody else could touch the list meanwhile.
  for (let c = 0; c < v.nrCpus; c++) {
    const lk = pcpuBase(c) + PCPU_FL_LOCK_I32;
    const w = Atomics.load(i32, lk);
    if (w !== 0 && lockOwner(w) === d) {
      if (lost !== 0 && onLists(v, c, lost)) lost = 0;
      pcpuFreelistRelink(i32, c, v.walkBound);
      Atomics.store(i32, lk, 0);
      Atomics.notify(i32, lk);
      Atomics.add(i32, HDR_RECOVERED_I32, 1);
    }
  }
  // A lost home element is off every list now (a list it was on kept it: lost = 0),
  // whatever its HOME_STATE said mid-way; step 2 marks it linked if its chain has it.
  if (lost !== 0 && lost < v.homeEnd) Atomics.store(i32, lost + ELEM_HOME_STATE_I32, HOME_TAKEN);
  // 1b. The NO_PREALLOC grow lock: `d` was carving. Its INFLIGHT names the element it
  //     carved (filed below as lost) only if it published CARVED (last, before the
  //     release); else nobody carved it. Decided before the release: from then on a live
  //     carver (one waits for this lock) carves that same element and links it, and CARVED
  //     counts it. A grown buffer is harmless.
  const g = Atomics.load(i32, HDR_GROW_LOCK_I32);
  if (g !== 0 && lockOwner(g) === d) {
    if (lost !== 0 && !carvedElem(v, lost)) lost = 0;
    Atomics.store(i32, HDR_GROW_LOCK_I32, 0);
    Atomics.notify(i32, HDR_GROW_LOCK_I32);
    Atomics.add(i32, HDR_RECOVERED_I32, 1);
  }
  // 2. A bucket lock `d` held: finish or undo its chain change, fix its count.
  const b = i32[p + PCPU_INTENT_BUCKET_I32];
  if (b !== 0 && deadHoldsBucket(v, d, b)) {
    i32[b + BUCKET_OWNER_I32] = v.cpu + 1; // ours now
    bucketBeginWrite(i32, b + BUCKET_SEQLOCK_I32); // readers retry until the unlock below
    const op = i32[p + PCPU_INTENT_OP_I32];
    const e = i32[p + PCPU_INTENT_ELEM_I32];
    const old = i32[p + PCPU_INTENT_OLD_I32];
    const before = i32[p + PCPU_INTENT_COUNT_I32];
    if (op === OP_INSERT) {
      const linked = chainPrev(v, b, e) >= 0;
      i32[p + PCPU_COUNT_I32] = before + (linked ? 1 : 0);
      if (linked && lost === e) lost = 0;
    } else if (op === OP_UNLINK) {
      const linked = chainPrev(v, b, e) >= 0;
      i32[p + PCPU_COUNT_I32] = before - (linked ? 0 : 1);
      if (linked && lost === e) lost = 0; // undone: still in the map
    } else if (op === OP_REPLACE) {
      // Steps: link e; INFLIGHT = old; unlink old; file old (EXTRA, or limbo then a
      // popped refill p in INFLIGHT until it is EXTRA). Undo nothing: finish it.
      i32[p + PCPU_COUNT_I32] = before;
      if (chainPrev(v, b, e) >= 0) {
        const prev = chainPrev(v, b, old);
        if (prev >= 0) {
          if (prev === 0) i32[b + BUCKET_HEAD_I32] = i32[old + ELEM_NEXT_I32];
          else i32[prev + ELEM_NEXT_I32] = i32[old + ELEM_NEXT_I32];
          lost = old; // never filed (INFLIGHT was e or 0, and e is linked)
        } else if (origLost !== old && lost === i32[p + PCPU_EXTRA_I32]) lost = 0; // old filed; refill p kept
        // (origLost === old: old unlinked but not filed, unless step 1 found it on a list.)
        if (lost === e) lost = 0;
        if (i32[p + PCPU_EXTRA_I32] === e) i32[p + PCPU_EXTRA_I32] = 0; // e is in the map now
      }
      // Else nothing changed in the chain; an allocated e is INFLIGHT (lost).
    }
    // The home element's state follows what the chain now holds.
    const home = b + BUCKET_HOME_I32;
    if (home < v.homeEnd) {
      if (chainPrev(v, b, home) >= 0) homeLinked(i32, b, home, true);
      else if (Atomics.load(i32, b + BUCKET_HOME_STATE_I32) === HOME_LINKED) homeLinked(i32, b, home, false);
    }
    i32[p + PCPU_INTENT_OP_I32] = OP_NONE;
    // Unlock directly: unlockBucket() would clear *our* intent and dirty flag.
    i32[b + BUCKET_OWNER_I32] = 0;
    bucketUnlock(i32, b + BUCKET_SEQLOCK_I32, true);
    Atomics.add(i32, HDR_RECOVERED_I32, 1);
  }
  // 3. Whatever `d` still owned off every list and chain goes back (LRU maps
  //    re-create their lists instead, which also files what `d` owned).
  v.elems.recoverOwned(v, d, lost);
  // 4. Value spin locks `d` held (the value may be half written).
  if (v.spinLockOff >= 0) {
    const lockAt = (v.valueOffBytes + v.spinLockOff) >> 2;
    const elems = v.prealloc ? v.numElems : Atomics.load(i32, HDR_CARVED_I32);
    for (let n = 0; n < elems; n++) {
      const e = elemOf(v, n);
      const w = Atomics.load(i32, e + lockAt);
      if (w !== 0 && lockOwner(w) === d) {
        Atomics.store(i32, e + lockAt, 0);
        Atomics.notify(i32, e + lockAt);
        Atomics.add(i32, HDR_RECOVERED_I32, 1);
      }
    }
  }
  // 5. Its program section, then the slot itself.
  if (Atomics.load(i32, p + PCPU_SECTION_I32) !== 0) {
    Atomics.store(i32, p + PCPU_SECTION_I32, 0);
    Atomics.sub(i32, HDR_ACTIVE_I32, 1);
  }
  i32[p + PCPU_INFLIGHT_I32] = 0;
  i32[p + PCPU_INTENT_BUCKET_I32] = 0;
  i32[v.myPcpu + PCPU_INFLIGHT_I32] = mine;
  releaseSlot(i32, p + PCPU_OWNER_I32);
}

/**
 * Whether dead slot `d` holds bucket `b`. Locked with OWNER naming `d`: yes.
 * Locked with OWNER 0: `d` died between its lock CAS and its OWNER store, or
 * between clearing OWNER and its unlock; or a live thread is in that same
 * window right now. Every claimant sets INTENT_BUCKET before its CAS, so with
 * no live claimant it is `d`'s; with one, a live holder stores OWNER within
 * instructions, so an OWNER still 0 after RECOVERY_WAIT_MS is `d`'s.
 */
function deadHoldsBucket(v: HtabView, d: number, b: number): boolean {
  const i32 = v.i32;
  const locked = () => (Atomics.load(i32, b + BUCKET_SEQLOCK_I32) & SEQ_LOCKED) !== 0;
  if (!locked()) return false;
  const owner = Atomics.load(i32, b + BUCKET_OWNER_I32);
  if (owner !== 0) return owner === d + 1;
  if (i32[pcpuBase(d) + PCPU_INTENT_BUCKET_I32] !== b) return false;
  let claimants = 0;
  for (let c = 0; c < v.nrCpus; c++)
    if (
      c !== d &&
      Atomics.load(i32, pcpuBase(c) + PCPU_OWNER_I32) === SLOT_ALIVE &&
      i32[pcpuBase(c) + PCPU_INTENT_BUCKET_I32] === b
    )
      claimants++;
  if (claimants === 0) return true;
  const until = Date.now() + RECOVERY_WAIT_MS;
  while (Date.now() < until) {
    if (!locked() || Atomics.load(i32, b + BUCKET_OWNER_I32) !== 0) return false;
    Atomics.wait(i32, HDR_RECOVERED_I32, -1, 1);
  }
  return locked() && Atomics.load(i32, b + BUCKET_OWNER_I32) === 0;
}
