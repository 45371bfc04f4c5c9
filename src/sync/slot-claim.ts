/**
 * CPU slots: a thread owns slot c while its owner word is ALIVE. A claim is
 * one CAS FREE -> ALIVE, so two threads never share a slot (a map's per-CPU
 * OWNER words, a MapDomain's owner words). The word is generation << 2 |
 * state, and a claim bumps the generation: a reap names the claim it means.
 *
 * Beside each owner word, a claim word (layout.ts PCPU_CLAIM, domClaimI32())
 * records who claimed the slot: the claiming thread's token, a random
 * 31-bit number each thread draws once (a module variable: every worker
 * has its own). While the slot is free, a negative claim word reserves it:
 * watchWorker(map, worker, cpu) reserves slot cpu for the worker that will
 * attach with { cpu }, so that a thread attaching without a cpu (the first
 * free slot) never takes it, and the reap at the worker's exit cannot hit
 * another thread's slot.
 *
 * Who writes an owner word: a claimer (CAS FREE -> ALIVE, next generation),
 * its owner (ALIVE -> FREE at close), a reaper (CAS ALIVE -> DEAD, same
 * generation), and the recoverer of a dead slot (DEAD -> FREE). A claim
 * word: its claimer (its token), a reserver (CAS to negative while free).
 * All Atomics.
 */

import { BpfError, Errno, invalid } from "../errors.js";
import { SLOT_ALIVE, SLOT_DEAD, SLOT_FREE, SLOT_STATE_MASK } from "../layout/layout.js";

/** The state (SLOT_FREE, SLOT_ALIVE, SLOT_DEAD) in owner word `w`. */
export function slotStateOf(w: number): number {
  return w & SLOT_STATE_MASK;
}

/** The claim generation of owner word `w` (30 bits, wrapping). */
export function slotGenerationOf(w: number): number {
  return w >>> 2;
}

let token = 0;

/** This thread's claim token: random, 31 bits, never 0, drawn once per thread. */
export function claimToken(): number {
  if (token === 0) {
    const c = (globalThis as { crypto?: { getRandomValues?(a: Uint32Array): Uint32Array } }).crypto;
    const r = new Uint32Array(1);
    if (typeof c?.getRandomValues === "function") c.getRandomValues(r);
    else r[0] = Math.floor(Math.random() * 2 ** 32);
    token = r[0] & 0x7fff_ffff || 1;
  }
  return token;
}

/** The reservation mark this thread writes into a free slot's claim word (negative). */
function reservationMark(): number {
  return claimToken() | 0x8000_0000 | 0;
}

/** Claim the slot whose owner word is at `idx` if it is free: one CAS, to the next generation. */
function tryClaim(i32: Int32Array, idx: number): boolean {
  const w = Atomics.load(i32, idx);
  if ((w & SLOT_STATE_MASK) !== SLOT_FREE) return false;
  const next = ((((w >>> 2) + 1) & 0x3fff_ffff) << 2) | SLOT_ALIVE;
  return Atomics.compareExchange(i32, idx, w, next) === w;
}

/** Give the slot back, keeping its generation. Requires: the caller owns it (or recovers it). */
export function releaseSlot(i32: Int32Array, idx: number): void {
  Atomics.store(i32, idx, (Atomics.load(i32, idx) & ~SLOT_STATE_MASK) | SLOT_FREE);
}

/**
 * Mark a live slot dead (its thread is gone), if it is still the claim of
 * `generation` (or any claim, when `generation` is undefined).
 * @returns true when this call marked it
 */
export function markSlotDead(i32: Int32Array, idx: number, generation?: number): boolean {
  const w = Atomics.load(i32, idx);
  if ((w & SLOT_STATE_MASK) !== SLOT_ALIVE) return false;
  if (generation !== undefined && w >>> 2 !== generation) return false;
  return Atomics.compareExchange(i32, idx, w, (w & ~SLOT_STATE_MASK) | SLOT_DEAD) === w;
}

/**
 * Refuse to reap a slot of the calling thread: its claim word holds this
 * thread's token (another object of this thread on the same map or domain).
 * @throws BpfError EINVAL
 */
export function checkNotMine(
  op: string,
  i32: Int32Array,
  ownerIdx: number,
  claimIdx: number,
  cpu: number,
): void {
  if (slotStateOf(Atomics.load(i32, ownerIdx)) === SLOT_ALIVE && Atomics.load(i32, claimIdx) === claimToken())
    invalid(
      op,
      `CPU slot ${cpu} belongs to this thread (another object of it attached there): close that object instead`,
    );
}

/** What reserveSlot() found: the slot reserved (free), or already taken, and its generation then. */
export interface Reservation {
  state: "reserved" | "alive" | "dead";
  generation: number;
  /** Taken: the token of the thread holding it. */
  token: number;
}

/**
 * Reserve free slot `c` for a thread that will claim it by number (see the
 * module comment). A slot already taken is reported as it is.
 */
export function reserveSlot(i32: Int32Array, ownerIdx: number, claimIdx: number): Reservation {
  const mark = reservationMark();
  for (;;) {
    const w = Atomics.load(i32, ownerIdx);
    const t = Atomics.load(i32, claimIdx);
    const st = slotStateOf(w);
    if (st !== SLOT_FREE)
      return { state: st === SLOT_DEAD ? "dead" : "alive", generation: slotGenerationOf(w), token: t };
    if (t === mark || Atomics.compareExchange(i32, claimIdx, t, mark) === t) {
      // A claim between the two loads: it either saw the mark (and backs out), or it is taken now.
      if (Atomics.load(i32, ownerIdx) === w)
        return { state: "reserved", generation: slotGenerationOf(w), token: 0 };
      if (t !== mark) Atomics.compareExchange(i32, claimIdx, mark, t);
    }
  }
}

/** Drop a reservation this thread made on a slot still free (the worker never came). */
export function unreserveSlot(i32: Int32Array, claimIdx: number): void {
  Atomics.compareExchange(i32, claimIdx, reservationMark(), 0);
}

/** Whether claim word value `t` reserves its free slot. */
export function isReservation(t: number): boolean {
  return t < 0;
}

/**
 * Claim slot `want`, or (want < 0) the first free one that no watcher
 * reserved, and record this thread's token in its claim word.
 * `ownerIdx(c)` / `claimIdx(c)` are the word indices of slot c's owner and
 * claim words; `where` names the owner in messages ("this map", "the domain").
 * @throws BpfError EINVAL for a slot that does not exist, EBUSY when it (or every slot) is taken
 */
export function claimSlot(
  i32: Int32Array,
  nrCpus: number,
  ownerIdx: (c: number) => number,
  claimIdx: (c: number) => number,
  want: number,
  where: string,
): number {
  if (want >= 0) {
    if (!Number.isInteger(want) || want >= nrCpus)
      invalid("attach", `cpu ${want} is not a slot of ${where} (it has ${nrCpus})`);
    if (!tryClaim(i32, ownerIdx(want)))
      throw new BpfError("attach", Errno.EBUSY, `CPU slot ${want} of ${where} is already taken`);
    Atomics.store(i32, claimIdx(want), claimToken()); // takes a reservation: it was for this claim
    return want;
  }
  let reserved = 0;
  for (let c = 0; c < nrCpus; c++) {
    const t = Atomics.load(i32, claimIdx(c));
    if (isReservation(t)) {
      reserved++;
      continue;
    }
    if (!tryClaim(i32, ownerIdx(c))) continue;
    if (Atomics.compareExchange(i32, claimIdx(c), t, claimToken()) === t) return c;
    // Reserved between the check and the claim: it is not ours to take.
    releaseSlot(i32, ownerIdx(c));
    reserved++;
  }
  if (reserved > 0)
    throw new BpfError(
      "attach",
      Errno.EBUSY,
      `no CPU slot of ${where} is free for an attach without a cpu: ${reserved} of the free slots ` +
        "are reserved by watchWorker(map, worker, cpu) for workers that attach with that slot. " +
        "Pass the slot the worker is watched as (attach(handle, { cpu })), or watch it without a slot " +
        "(watchWorker(map, worker)) and have it call announceSlot(map, parentPort)",
    );
  throw new BpfError(
    "attach",
    Errno.EBUSY,
    `all ${nrCpus} CPU slots of ${where} are taken. Likely causes: workers that exited without close(), ` +
      "whose slots stay taken unless the creating thread watches them (watchWorker(map, worker)); " +
      "or more threads than nrCpus, which only a larger nrCpus fixes",
  );
}
