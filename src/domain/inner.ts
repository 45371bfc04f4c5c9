/**
 * What ARRAY_OF_MAPS and HASH_OF_MAPS share (kernel: map_in_map.c): the inner
 * map template and its check, the sections that span inner maps, and the
 * program face both outer types have.
 */

import type { SyncOptions, SyncReport } from "../alloc/epoch.js";
import type { ArrayMap } from "../array/array-map.js";
import type { Htab } from "../core/htab.js";
import { Errno } from "../errors.js";
import {
  HDR_INNER_FLAGS_I32,
  HDR_INNER_KEY_SIZE_I32,
  HDR_INNER_MAX_ENTRIES_I32,
  HDR_INNER_TYPE_I32,
  HDR_INNER_VALUE_SIZE_I32,
} from "../layout/layout.js";
import type { LastError } from "../map/last-error.js";
import type { RawMap } from "../map/raw-map.js";
import { MapFlags, MapType } from "../uapi.js";

const EINVAL = -Errno.EINVAL;
const EBADF = -Errno.EBADF;

/** What an outer map needs from its domain. */
export interface InnerResolver {
  /** The map with this id as this thread sees it, or null when there is none. */
  mapById(id: number): RawMap | null;
}

/** The template an inner map must match (kernel: struct bpf_map inner_map_meta). */
export interface InnerMeta {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export function writeInnerMeta(i32: Int32Array, m: InnerMeta): void {
  i32[HDR_INNER_TYPE_I32] = m.type;
  i32[HDR_INNER_KEY_SIZE_I32] = m.keySize;
  i32[HDR_INNER_VALUE_SIZE_I32] = m.valueSize;
  i32[HDR_INNER_MAX_ENTRIES_I32] = m.maxEntries;
  i32[HDR_INNER_FLAGS_I32] = m.flags;
}

export function readInnerMeta(i32: Int32Array): InnerMeta {
  return {
    type: i32[HDR_INNER_TYPE_I32],
    keySize: i32[HDR_INNER_KEY_SIZE_I32],
    valueSize: i32[HDR_INNER_VALUE_SIZE_I32],
    maxEntries: i32[HDR_INNER_MAX_ENTRIES_I32] >>> 0,
    flags: i32[HDR_INNER_FLAGS_I32],
  };
}

/**
 * Resolve the id in `value` (u32, little-endian) to an inner map matching
 * `meta`. Returns the id, or -EBADF / -EINVAL with the reason recorded in `why`.
 */
export function checkInner(
  resolver: InnerResolver,
  meta: InnerMeta,
  value: Uint8Array,
  why: LastError,
): number {
  const id = u32At(value);
  const inner = id === 0 ? null : resolver.mapById(id);
  if (inner === null) {
    return why.fail(EBADF, `no map with id ${id} in this domain`);
  }
  const i = inner.info;
  if (i.type === MapType.ArrayOfMaps || i.type === MapType.HashOfMaps) {
    return why.fail(EINVAL, "an inner map cannot itself be a map-in-map");
  }
  // bpf_map_meta_equal(): max_entries is compared only for ARRAY and PERCPU_ARRAY inner
  // maps (array_map_meta_equal(), unless the template is BPF_F_INNER_MAP; probed on 6.18).
  const sizeDiffers =
    (meta.type === MapType.Array || meta.type === MapType.PercpuArray) &&
    (meta.flags & MapFlags.InnerMap) === 0 &&
    i.maxEntries !== meta.maxEntries;
  if (
    i.type !== meta.type ||
    i.keySize !== meta.keySize ||
    i.valueSize !== meta.valueSize ||
    i.flags !== meta.flags ||
    sizeDiffers
  ) {
    return why.fail(
      EINVAL,
      `map ${id} (type ${i.type}, key ${i.keySize}, value ${i.valueSize}, flags 0x${i.flags.toString(16)}) ` +
        `does not match the template (type ${meta.type}, key ${meta.keySize}, value ${meta.valueSize}, flags 0x${meta.flags.toString(16)})` +
        (sizeDiffers
          ? `: an array inner map must have the template's max_entries ${meta.maxEntries}, not ${i.maxEntries}`
          : ""),
    );
  }
  return id;
}

export function u32At(b: Uint8Array): number {
  return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
}

export function putU32(b: Uint8Array, v: number): void {
  b[0] = v;
  b[1] = v >>> 8;
  b[2] = v >>> 16;
  b[3] = v >>> 24;
}

/** An inner map a program section has entered (Htab has enter/exit). */
export interface Sectioned {
  enter(): void;
  exit(): void;
}

/**
 * One program section spans every map it touches, as one RCU read section
 * does in the kernel: an inner map looked up inside the outer map's section
 * is entered too, and left when the outer section ends.
 */
export class InnerSections {
  private readonly open: Sectioned[] = [];
  enterInner(m: RawMap | null): RawMap | null {
    const s = m as unknown as Partial<Sectioned> | null;
    if (s !== null && typeof s.enter === "function" && typeof s.exit === "function") {
      s.enter();
      this.open.push(s as Sectioned);
    }
    return m;
  }
  exitAll(): void {
    while (this.open.length > 0) this.open.pop()?.exit();
  }
}

/** run() for both outer map types: enter, call, exit even if `fn` throws. */
export function runIn<T>(m: { enter(): void; exit(): void }, fn: () => T): T {
  m.enter();
  try {
    return fn();
  } finally {
    m.exit();
  }
}

/** The program face both outer map types share. */
export interface OuterMap extends RawMap {
  /**
   * bpf_map_lookup_elem() on the outer map from a program: the inner map (a
   * hash map of the domain, entered into this section), or null. Inside a section only.
   */
  lookupInner(key: Uint8Array): Htab | ArrayMap | null;
  enter(): void;
  exit(): void;
  run<T>(fn: () => T): T;
  /**
   * Wait until every program section that began before this call has ended
   * (kernel: synchronize_rcu()). Bounded: ETIMEDOUT naming the slot of a
   * section still open after 1 s; with `{ timeoutMs }`, a report instead.
   */
  synchronize(): void;
  synchronize(opts: SyncOptions & { timeoutMs: number }): SyncReport;
}
