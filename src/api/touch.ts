/**
 * Reads that mark LRU recency, as a BPF program's bpf_map_lookup_elem() does
 * (the `touch` option of TypedMap and BpfMap). A control-plane lookup
 * (bpf(BPF_MAP_LOOKUP_ELEM), lookupElem()) leaves the LRU ref bit alone, in
 * the kernel and here; a program lookup sets it, so that the next shrink of
 * the LRU lists keeps the key. Only a backend with program lookups (the SAB
 * map: enter(), lookupRef(), exit()) can do it.
 */

import { BpfError, Errno } from "../errors.js";
import type { RawMap } from "../map/raw-map.js";

/** The program face a touching read needs: a section and a program lookup. */
export interface ProgramLookups {
  enter(): void;
  exit(): void;
  lookupRef(key: Uint8Array, into?: never): object | null;
}

/**
 * `raw` as a map with program lookups, for `{ touch: true }`.
 * @throws BpfError EOPNOTSUPP for a backend without them (a kernel map)
 */
export function programLookupsOf(op: string, raw: RawMap): ProgramLookups {
  const p = raw as Partial<ProgramLookups>;
  if (typeof p.lookupRef !== "function" || typeof p.enter !== "function" || typeof p.exit !== "function")
    throw new BpfError(
      op,
      Errno.EOPNOTSUPP,
      "{ touch: true } needs a map with program lookups (a map of createMap()); the kernel marks LRU " +
        "recency only for lookups made by a BPF program, and a bpf() lookup never does",
    );
  return p as ProgramLookups;
}

/**
 * A program lookup of `key` in its own section: marks it recently used.
 * An error is restated as the user's call `op`.
 * @returns whether it was found
 */
export function touchKey(p: ProgramLookups, key: Uint8Array, op: string): boolean {
  try {
    p.enter();
    try {
      return p.lookupRef(key) !== null;
    } finally {
      p.exit();
    }
  } catch (e) {
    throw e instanceof BpfError && e.op !== op ? new BpfError(op, e.errno, e.detail) : e;
  }
}
