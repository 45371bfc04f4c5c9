/**
 * CPU slots: a thread owns slot c while its owner word is ALIVE. A claim is
 * one CAS FREE -> ALIVE, so two threads never share a slot (a map's per-CPU
 * OWNER words, a MapDomain's owner words).
 */

import { BpfError, Errno, invalid } from "../errors.js";
import { SLOT_ALIVE, SLOT_FREE } from "../layout/layout.js";

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
    if (Atomics.compareExchange(i32, ownerIdx(want), SLOT_FREE, SLOT_ALIVE) !== SLOT_FREE)
      throw new BpfError("attach", Errno.EBUSY, `CPU slot ${want} of ${where} is already taken`);
    return want;
  }
  for (let c = 0; c < nrCpus; c++)
    if (Atomics.compareExchange(i32, ownerIdx(c), SLOT_FREE, SLOT_ALIVE) === SLOT_FREE) return c;
  throw new BpfError(
    "attach",
    Errno.EBUSY,
    `all ${nrCpus} CPU slots of ${where} are taken. Likely causes: workers that exited without close(), ` +
      "whose slots stay taken unless the creating thread watches them (watchWorker(map, worker)); " +
      "or more threads than nrCpus, which only a larger nrCpus fixes",
  );
}
