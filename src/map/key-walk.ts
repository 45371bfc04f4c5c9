/**
 * The one get_next_key walk (kernel: the loop every BPF_MAP_GET_NEXT_KEY
 * user writes), used by BpfMap, TypedMap, KernelMap, replay, `htab map` and
 * the tests. It starts from the first key (a null key) and follows each key
 * to the next. Under concurrent deletes the kernel restarts a walk from the
 * first key when the current one vanished, so a walk of a map that keeps
 * changing may repeat keys and need not end: it is bounded.
 */

import { BpfError, Errno } from "../errors.js";
import type { RawMap } from "./raw-map.js";

const ENOENT = -Errno.ENOENT;

/** The two knobs the callers differ in. */
export interface WalkOptions {
  /** Most keys to yield. @default 2 x max_entries + 16 */
  limit?: number;
  /** At the limit: throw BpfError EBUSY (a walk that did not end), or just stop. @default "throw" */
  atLimit?: "throw" | "stop";
  /** The operation named in errors. @default "keys" */
  op?: string;
}

/**
 * Every key of `map` in get_next_key order, each yielded as a fresh copy.
 * @throws BpfError for a get_next_key error other than the end (ENOENT), and EBUSY at the limit unless `atLimit: "stop"`
 */
export function* walkKeys(map: RawMap, opts: WalkOptions = {}): Generator<Uint8Array> {
  const limit = opts.limit ?? map.info.maxEntries * 2 + 16;
  const op = opts.op ?? "keys";
  let prev: Uint8Array | null = null;
  for (let n = 0; ; n++) {
    const next = new Uint8Array(map.info.keySize);
    const err = map.getNextKey(prev, next);
    if (err === ENOENT) return;
    if (err !== 0) throw new BpfError(op, -err, map.lastError || undefined);
    if (n >= limit) {
      if (opts.atLimit === "stop") return;
      throw new BpfError(op, Errno.EBUSY, `walk did not end after ${limit} keys (map changing too fast)`);
    }
    yield next;
    prev = next;
  }
}
