/**
 * Waits that gave up: the ETIMEDOUT messages (whose lock, held by whom) and
 * the bounded spin of a lock-free reader behind a writer that stopped.
 * All cold: nothing here runs unless a wait passed LOCK_TIMEOUT_MS.
 */
import { BUCKET_OWNER_I32, PCPU_OWNER_I32, pcpuBase, SLOT_ALIVE, SLOT_DEAD } from "../layout/layout.js";
import { ALLOC_CORRUPT, ALLOC_HELD, ALLOC_NOMEM, ALLOC_TIMEDOUT } from "../sentinels.js";
import { lastTimeoutOwner } from "../sync/owner-lock.js";
import { slotStateOf } from "../sync/slot-claim.js";
import { LOCK_TIMEOUT_MS, lockTimeoutText, nowMs, SPIN_LIMIT } from "../sync/spin.js";
import { bucketNumber, E2BIG, ENOMEM, ERR_MAP_FULL, ETIMEDOUT, EUCLEAN, type HtabView } from "./htab-view.js";

/** "held by CPU slot 3 (its thread is alive)" and the like, for ETIMEDOUT messages. */
export function holderText(v: HtabView, owner: number): string {
  if (owner < 0 || owner >= v.nrCpus) return "held by a thread that had not yet recorded its slot";
  const state = slotStateOf(Atomics.load(v.i32, pcpuBase(owner) + PCPU_OWNER_I32));
  const how =
    state === SLOT_ALIVE
      ? "its slot is attached: a long compute() callback, or a worker that died and was never reaped (watchWorker())"
      : state === SLOT_DEAD
        ? "its slot is dead and being recovered"
        : "its slot was given back";
  return `held by CPU slot ${owner} (${how})`;
}

/** Record an owner-tagged lock wait that gave up (cold). @returns ALLOC_TIMEDOUT */
export function listTimedOut(v: HtabView, what: string): number {
  v.err.fail(ETIMEDOUT, lockTimeoutText(`the lock of ${what}`, holderText(v, lastTimeoutOwner())));
  return ALLOC_TIMEDOUT;
}

/** Record why a wait on bucket `b` gave up (cold). */
export function bucketTimedOut(v: HtabView, b: number, what: string): void {
  const owner = Atomics.load(v.i32, b + BUCKET_OWNER_I32) - 1;
  v.err.fail(ETIMEDOUT, lockTimeoutText(`${what} bucket ${bucketNumber(v, b)}`, holderText(v, owner)));
}

/**
 * A reader has seen bucket `b` being written for `spins` samples: past
 * LOCK_TIMEOUT_MS (a writer that died mid-write and was never reaped) it
 * gives up. Dead slots are recovered meanwhile. Cold.
 * @returns true to give up (lastError says why)
 */
export function readStalled(v: HtabView, b: number, spins: number): boolean {
  if (spins === SPIN_LIMIT + 1) v.readSince = nowMs();
  if ((spins & 1023) !== 0) return false;
  v.recover();
  if (nowMs() - v.readSince < LOCK_TIMEOUT_MS) return false;
  bucketTimedOut(v, b, "a write to finish in");
  return true;
}

/** The errno for an alloc() result <= 0: E2BIG (map full, or held by sections), or EUCLEAN, ENOMEM or ETIMEDOUT as recorded. */
export function allocFailed(v: HtabView, e: number): number {
  if (e === 0) return v.err.failWith(E2BIG, ERR_MAP_FULL, 0);
  if (e === ALLOC_HELD) return E2BIG; // held by sections past the grace bound: lastError names the slot
  return e === ALLOC_CORRUPT ? EUCLEAN : e === ALLOC_NOMEM ? ENOMEM : ETIMEDOUT;
}
