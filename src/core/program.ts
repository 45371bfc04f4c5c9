/**
 * The program face: what a BPF program sees of a map (kernel: the
 * bpf_map_lookup_elem(), bpf_map_update_elem(), bpf_map_lookup_percpu_elem()
 * and bpf_for_each_map_elem() helpers). References point into shared
 * memory and live until their section ends (section.ts).
 */
import { BpfError, Errno, invalid } from "../errors.js";
import { BUCKET_HEAD_I32, ELEM_NEXT_I32 } from "../layout/layout.js";
import { READ_TIMEDOUT } from "../sentinels.js";
import { MapFlags, UpdateFlags } from "../uapi.js";
import { bucketOf, lockBucket, lookupElemLocked, unlockBucket } from "./bucket.js";
import { checkFlags, checkNotComputing, checkValueIn } from "./checks.js";
import { copyKeyOut, hashKey, valueAt } from "./elem.js";
import { bucketAt, EINVAL, ERR_FLAGS, ETIMEDOUT, type HtabView } from "./htab-view.js";
import { findElem } from "./lookup.js";
import { enter, exit } from "./section.js";
import { ValueRef } from "./value-ref.js";
import { deleteAny, initPercpu, insertNewLocked, updateAny, updateLru, writeSlot } from "./write.js";

export function makeRef(v: HtabView): ValueRef {
  return new ValueRef(
    v.i32,
    v.i64,
    v.u8,
    v.valueSize,
    (v.mapFlags & MapFlags.WronlyProg) === 0,
    (v.mapFlags & MapFlags.RdonlyProg) === 0,
    v.spinLockOff,
    v.cpu,
    v.liveGen,
  );
}

/**
 * A reference to CPU `cpu`'s value of the scratch key (the only value of a
 * map that is not per-CPU), or null when absent. Requires: inside a section.
 * Kernel: htab_map_lookup_elem() from a program, and on LRU maps
 * htab_lru_map_lookup_elem(), which sets the reference bit.
 */
export function refOf(v: HtabView, hash: number, cpu: number, into: ValueRef | undefined): ValueRef | null {
  const e = findElem(v, hash);
  if (e === READ_TIMEDOUT) throw new BpfError("lookupRef", Errno.ETIMEDOUT, v.err.message);
  if (e === 0) return null;
  // The reference lives until the section ends: `e` is not reused under it (held-refs.ts).
  if (v.sectionDepth > 0) v.held.add(e);
  v.elems.touch(v, e);
  return (into ?? makeRef(v))._bind(valueAt(v, e, cpu), v.liveGen[0]);
}

/** Htab.forEachElem()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function forEachElem<M, C>(
  v: HtabView,
  map: M,
  cb: (map: M, key: Uint8Array, value: ValueRef, ctx: C) => number,
  ctx: C,
  flags = 0,
): number {
  if (typeof cb !== "function") invalid("forEachElem", "callback must be a function");
  if (flags !== 0) invalid("forEachElem", `flags must be 0, got ${flags}`);
  const i32 = v.i32;
  const key = new Uint8Array(v.keySize);
  let visited = 0;
  enter(v);
  try {
    const ref = makeRef(v);
    for (let bi = 0; bi <= v.mask; bi++) {
      const b = bucketAt(v, bi);
      let e = Atomics.load(i32, b + BUCKET_HEAD_I32);
      for (let steps = 0; e !== 0 && steps < v.walkBound; steps++) {
        // Read the link first: the callback may delete e (the section keeps e's memory intact).
        const next = i32[e + ELEM_NEXT_I32];
        copyKeyOut(v, e, key, 0);
        v.held.add(e); // the callback's reference lives until the section ends
        visited++;
        const r = cb(map, key, ref._bind(valueAt(v, e, v.cpu), v.liveGen[0]), ctx);
        if (r === 1) return visited;
        if (r !== 0)
          invalid("forEachElem", `callback returned ${String(r)}; it must return 0 (continue) or 1 (stop)`);
        e = next;
      }
    }
    return visited;
  } finally {
    exit(v);
  }
}

/** Htab.deleteElemFromProgram()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function deleteElemFromProgram(v: HtabView, key: Uint8Array): number {
  if ((v.mapFlags & MapFlags.RdonlyProg) !== 0) return v.err.fail(-Errno.EACCES, "map is BPF_F_RDONLY_PROG");
  return deleteAny(v, hashKey(v, key), null);
}

/** Htab.updateElemFromProgram()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function updateElemFromProgram(
  v: HtabView,
  key: Uint8Array,
  value: Uint8Array,
  flags: number,
): number {
  if ((v.mapFlags & MapFlags.RdonlyProg) !== 0) return v.err.fail(-Errno.EACCES, "map is BPF_F_RDONLY_PROG");
  if (!v.percpu) {
    checkValueIn(v, "updateElemFromProgram", value);
    return updateAny(v, value, 0, flags, hashKey(v, key));
  }
  if (!(value instanceof Uint8Array) || value.length !== v.valueSize)
    invalid("updateElemFromProgram", `a program writes one CPU's value: ${v.valueSize} bytes`);
  checkNotComputing(v, "updateElemFromProgram");
  const hash = hashKey(v, key);
  if (v.elems.popsBeforeLock) return updateLru(v, value, 0, flags, hash, true);
  if (flags > UpdateFlags.Exist) return v.err.failWith(EINVAL, ERR_FLAGS, flags);
  const b = bucketOf(v, hash);
  if (!lockBucket(v, b)) return ETIMEDOUT;
  const old = lookupElemLocked(v, b, hash);
  let err = checkFlags(v, old, flags);
  if (err === 0 && old !== 0) writeSlot(v, old, value);
  else if (err === 0) err = insertNewLocked(v, b, hash, initPercpu(v, value), 0);
  unlockBucket(v, b);
  return err;
}
