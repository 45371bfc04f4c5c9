/**
 * Replay's stand-in for a map a loaded object holds on the SAB backend in a
 * form with no RawMap calls (wt-progsem's PROG_ARRAY, say), so that "load"
 * can still list it. Isolated: a map type that gains RawMap calls drops it.
 */

import { Errno } from "../errors.js";

const BPF_MAP_TYPE_RINGBUF = 27;

import type { BatchArgs, BatchResult, MapInfo, RawMap } from "../map/raw-map.js";

/** An OpaqueMap for a map definition of a loaded object. */
export function opaqueMapOf(
  d: { name: string; type: number; keySize: number; valueSize: number; maxEntries: number; flags: number },
  nrCpus: number,
): OpaqueMap {
  // The kernel's element calls on a RINGBUF answer ENOTSUPP (ringbuf_map_*_elem); others EOPNOTSUPP.
  const errno = d.type === BPF_MAP_TYPE_RINGBUF ? Errno.ENOTSUPP : Errno.EOPNOTSUPP;
  return new OpaqueMap(errno, {
    type: d.type,
    keySize: d.keySize,
    valueSize: d.valueSize,
    maxEntries: d.maxEntries,
    flags: d.flags,
    nrCpus,
    valueBytes: d.valueSize,
    id: 0,
    name: d.name,
  });
}

/**
 * A map of a loaded object that the SAB backend holds in a form with no
 * RawMap calls (a PROG_ARRAY, say): listed among the object's maps, every
 * map op on it answers EOPNOTSUPP.
 */
export class OpaqueMap implements RawMap {
  readonly lastError = "this map has no map calls on the SAB backend";
  constructor(
    private readonly errno: number,
    readonly info: MapInfo,
  ) {}
  lookupElem(): number {
    return -this.errno;
  }
  updateElem(): number {
    return -this.errno;
  }
  deleteElem(): number {
    return -this.errno;
  }
  lookupAndDeleteElem(): number {
    return -this.errno;
  }
  getNextKey(): number {
    return -this.errno;
  }
  private none(args: BatchArgs): BatchResult {
    return {
      err: -this.errno,
      count: 0,
      outBatch: null,
      keys: args.keys ?? new Uint8Array(0),
      values: args.values ?? new Uint8Array(0),
    };
  }
  lookupBatch(args: BatchArgs): BatchResult {
    return this.none(args);
  }
  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    return this.none(args);
  }
  updateBatch(args: BatchArgs): BatchResult {
    return this.none(args);
  }
  deleteBatch(args: BatchArgs): BatchResult {
    return this.none(args);
  }
  freeze(): number {
    return -this.errno;
  }
  memoryUsage(): number {
    return 0;
  }
  close(): void {}
}
