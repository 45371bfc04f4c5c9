/**
 * Replay's stand-in, on the SAB backend, for a global section's map: the
 * kernel makes `.data`/`.bss`/`.rodata` single-element ARRAY maps, and
 * replay lists them among a loaded object's maps on both backends. Until
 * htab's core has ARRAY maps, this adapter answers the element calls on
 * the section's bytes as the kernel's ARRAY map answers them (key 0 only,
 * E2BIG past it on update, ENOENT on lookup, EINVAL on delete, EEXIST for
 * BPF_NOEXIST, EPERM on a frozen `.rodata`, get_next_key wrapping to 0).
 * The batch calls answer ENOTSUPP. Isolated: it goes when globals become
 * real ARRAY maps on the SAB backend.
 */

import type { GlobalSection } from "../bpf/object.js";
import { Errno } from "../errors.js";
import type { BatchArgs, BatchResult, MapInfo, RawMap } from "../map/raw-map.js";
import { MapType } from "../uapi.js";

const BPF_EXIST = 2;
const BPF_NOEXIST = 1;

export class GlobalMap implements RawMap {
  readonly info: MapInfo;
  lastError = "";
  private frozen: boolean;

  constructor(
    private readonly g: GlobalSection,
    flags: number,
    nrCpus: number,
  ) {
    const size = g.bytes.length;
    this.info = {
      type: MapType.Array,
      keySize: 4,
      valueSize: size,
      maxEntries: 1,
      flags,
      nrCpus,
      valueBytes: size,
      id: 0,
      name: g.name,
    };
    // libbpf freezes .rodata after writing its initial bytes.
    this.frozen = g.readonly;
  }

  private index(key: Uint8Array): number {
    return (key[0] | (key[1] << 8) | (key[2] << 16) | (key[3] << 24)) >>> 0;
  }

  private fail(errno: number, why: string): number {
    this.lastError = why;
    return -errno;
  }

  lookupElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    if (flags !== 0) return this.fail(Errno.EINVAL, "lookup: flags must be 0 on a map without a spin lock");
    if (this.index(key) >= 1) return this.fail(Errno.ENOENT, "lookup: index past max_entries");
    value.set(this.g.bytes);
    return 0;
  }

  updateElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    if (this.frozen) return this.fail(Errno.EPERM, "update: the map is frozen");
    if (flags > BPF_EXIST) return this.fail(Errno.EINVAL, "update: unknown flags");
    if (this.index(key) >= 1) return this.fail(Errno.E2BIG, "update: index past max_entries");
    if (flags === BPF_NOEXIST) return this.fail(Errno.EEXIST, "update: an ARRAY element always exists");
    this.g.bytes.set(value.subarray(0, this.g.bytes.length));
    return 0;
  }

  deleteElem(_key: Uint8Array): number {
    return this.fail(Errno.EINVAL, "delete: ARRAY elements cannot be deleted");
  }

  lookupAndDeleteElem(_key: Uint8Array, _value: Uint8Array, _flags = 0): number {
    return this.fail(Errno.ENOTSUPP, "lookup_and_delete: not supported by ARRAY maps");
  }

  getNextKey(key: Uint8Array | null, nextKey: Uint8Array): number {
    if (key !== null && this.index(key) < 1) return this.fail(Errno.ENOENT, "get_next_key: the last key");
    nextKey.fill(0);
    return 0;
  }

  private noBatch(args: BatchArgs): BatchResult {
    this.lastError = "batch calls on a global's map are not on the SAB backend yet";
    return {
      err: -Errno.ENOTSUPP,
      count: 0,
      outBatch: null,
      keys: args.keys ?? new Uint8Array(0),
      values: args.values ?? new Uint8Array(0),
    };
  }

  lookupBatch(args: BatchArgs): BatchResult {
    return this.noBatch(args);
  }
  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    return this.noBatch(args);
  }
  updateBatch(args: BatchArgs): BatchResult {
    return this.noBatch(args);
  }
  deleteBatch(args: BatchArgs): BatchResult {
    return this.noBatch(args);
  }

  freeze(): number {
    if (this.frozen) return this.fail(Errno.EBUSY, "freeze: already frozen");
    this.frozen = true;
    return 0;
  }

  memoryUsage(): number {
    return this.g.bytes.length;
  }

  close(): void {}
}
