/**
 * CPU slots: a thread owns slot c while its owner word is ALIVE. A claim is
 * one CAS FREE -> ALIVE, so two threads never share a slot (a map's per-CPU
 * OWNER words, a MapDomain's owner words). The word is generation << 2 |
 * state, and a claim bumps the generation: a reap names the claim it means.
 *
 * Who writes an owner word: a claimer (CAS FREE -> ALIVE, next generation),
 * its owner (ALIVE -> FREE at close), a reaper (CAS ALIVE -> DEAD, same
 * generation), and the recoverer of a dead slot (DEAD -> FREE). All Atomics.
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

/** A value as a message shows it: `"1" (string)`, `NaN (number)`, `null`. */
function shown(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "string") return `${JSON.stringify(x)} (string)`;
  if (typeof x === "object") return `a ${(x as object).constructor?.name ?? "null-prototype"} object`;
  return `${String(x)} (${typeof x})`;
}

/**
 * The slot an options object asks for (`{ cpu }` of attach() and create()):
 * -1 (the first free one) when `cpu` is undefined, else `cpu` itself.
 * @throws BpfError EINVAL for anything but a non-negative integer (NaN, -5, "1", 1.5, null)
 */
export function slotOption(op: string, cpu: unknown): number {
  if (cpu === undefined) return -1;
  if (typeof cpu !== "number" || !Number.isInteger(cpu) || cpu < 0)
    invalid(
      op,
      `cpu ${shown(cpu)} is not a CPU slot: pass an integer from 0 to nrCpus - 1, or omit cpu for the first free slot`,
    );
  return cpu;
}

/**
 * Claim slot `want`, or (want < 0) the first free one. `ownerIdx(c)` is the
 * word index of slot c's owner word; `where` names the owner in messages
 * ("this map", "the domain").
 * @throws BpfError EINVAL for a slot that does not exist, EBUSY when it (or every slot) is taken
 */
export function claimSlot(
  i32: Int32Array,
  nrCpus: number,
  ownerIdx: (c: number) => number,
  want: number,
  where: string,
): number {
  if (want >= 0) {
    if (!Number.isInteger(want) || want >= nrCpus)
      invalid("attach", `cpu ${want} is not a slot of ${where} (it has ${nrCpus})`);
    if (!tryClaim(i32, ownerIdx(want)))
      throw new BpfError("attach", Errno.EBUSY, `CPU slot ${want} of ${where} is already taken`);
    return want;
  }
  for (let c = 0; c < nrCpus; c++) if (tryClaim(i32, ownerIdx(c))) return c;
  throw new BpfError(
    "attach",
    Errno.EBUSY,
    `all ${nrCpus} CPU slots of ${where} are taken. Likely causes: workers that exited without close(), ` +
      "whose slots stay taken unless the creating thread watches them (watchWorker(map, worker)); " +
      "or more threads than nrCpus, which only a larger nrCpus fixes",
  );
}
