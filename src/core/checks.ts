/**
 * Argument and permission checks of the SAB map's entry points. Each check
 * is one test on the hot path; the messages are built in cold functions.
 * A check either throws BpfError EINVAL (a malformed argument: a programming
 * error) or returns the kernel's errno with lastError set.
 */
import { BpfError, Errno, invalid, showInput } from "../errors.js";
import { HDR_FROZEN_I32 } from "../layout/layout.js";
import type { BatchArgs, BatchResult } from "../map/raw-map.js";
import { MapFlags, UpdateFlags } from "../uapi.js";
import { EEXIST, EINVAL, ENOENT, EPERM, type HtabView, count as mapCount } from "./htab-view.js";

export function checkKey(v: HtabView, op: string, key: unknown): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== v.keySize) badKey(v, op, key);
}

export function badKey(v: HtabView, op: string, key: unknown): never {
  if (!(key instanceof Uint8Array)) invalid(op, `key must be a Uint8Array, got ${showInput(key)}`);
  invalid(op, `key is ${key.length} bytes, map key_size is ${v.keySize}`);
}

export function checkValueIn(v: HtabView, op: string, value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== v.valueBytes) badValue(v, op, value, true);
}

export function checkValueOut(v: HtabView, op: string, value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length < v.valueBytes) badValue(v, op, value, false);
}

export function badValue(v: HtabView, op: string, value: unknown, input: boolean): never {
  if (!(value instanceof Uint8Array))
    invalid(op, `${input ? "value" : "value buffer"} must be a Uint8Array, got ${showInput(value)}`);
  if (input) invalid(op, `value is ${value.length} bytes, the map takes ${v.valueBytes} per value`);
  invalid(op, `value buffer is ${value.length} bytes, the map moves ${v.valueBytes} per value`);
}

export function checkFlagsArg(_v: HtabView, op: string, flags: unknown): asserts flags is number {
  if (typeof flags !== "number" || !Number.isInteger(flags) || flags < 0 || flags > Number.MAX_SAFE_INTEGER)
    invalid(op, `flags must be a non-negative integer, got ${showInput(flags)}`);
}

export function canRead(v: HtabView): boolean {
  return (v.mapFlags & MapFlags.Wronly) === 0;
}

export function canWrite(v: HtabView): boolean {
  if ((v.mapFlags & MapFlags.Rdonly) !== 0) return false;
  return v.words.load(HDR_FROZEN_I32) === 0;
}

export function permError(v: HtabView, write: boolean): number {
  if (write) {
    if ((v.mapFlags & MapFlags.Rdonly) !== 0)
      return v.err.fail(EPERM, "map is BPF_F_RDONLY for the control plane");
    return v.err.fail(EPERM, "map is frozen");
  }
  return v.err.fail(EPERM, "map is BPF_F_WRONLY for the control plane");
}

export function checkNotComputing(v: HtabView, op: string): void {
  if (v.computing)
    throw new BpfError(op, Errno.EBUSY, "called from inside a compute() callback, which holds a bucket lock");
}

/** A compared region [offset, offset+size) lies inside the value and is not empty. */
export function regionFits(v: HtabView, offset: number, size: number): boolean {
  return (
    Number.isInteger(offset) &&
    Number.isInteger(size) &&
    offset >= 0 &&
    size > 0 &&
    offset + size <= v.valueBytes
  );
}

/** Why a compared region was refused (any argument types: the message must not throw). */
export function regionText(v: HtabView, offset: unknown, size: unknown): string {
  if (typeof offset !== "number" || typeof size !== "number")
    return `offset and size must be integers, got ${showInput(offset)} and ${showInput(size)}`;
  return `region [${offset}, ${offset + size}) is not inside the ${v.valueBytes}-byte value`;
}

/** Validate a compared region; returns 0 or -EINVAL with the reason recorded. */
export function checkRegion(
  v: HtabView,
  op: string,
  expected: Uint8Array,
  offset: number,
  size: number,
): number {
  if (!(expected instanceof Uint8Array)) invalid(op, "expected must be a Uint8Array");
  if (!regionFits(v, offset, size)) return v.err.fail(EINVAL, regionText(v, offset, size));
  if (expected.length !== size)
    return v.err.fail(EINVAL, `expected is ${expected.length} bytes but the region is ${size}`);
  return 0;
}

function checkBatchBuffer(
  op: string,
  name: string,
  size: string,
  buf: Uint8Array | undefined,
  sized: boolean,
  bytes: number,
): asserts buf is Uint8Array {
  if (!(buf instanceof Uint8Array) || (sized && buf.length < bytes))
    invalid(op, `${name} must be a Uint8Array of at least count * ${size} = ${bytes} bytes`);
}

export function batchBuffers(
  v: HtabView,
  args: BatchArgs,
  mode: "lookup" | "update" | "delete",
): { keys: Uint8Array; values: Uint8Array } {
  const op = `${mode}Batch`;
  if (args === null || typeof args !== "object") invalid(op, "batch arguments must be an object");
  const { count } = args;
  if (!Number.isInteger(count) || count < 0 || count > 0xffffffff)
    invalid(op, `count must be a u32, got ${showInput(count)}`);
  const lookup = mode === "lookup";
  // Buffers htab makes are sized by what the map holds, not by count (a count of 2^30
  // must not allocate 2^30 entries): lookupBatchRaw() grows them when a batch needs more.
  const made = Math.min(count, batchStartEntries(v));
  const keys = args.keys ?? (lookup ? new Uint8Array(made * v.keySize) : undefined);
  const values = args.values ?? (lookup ? new Uint8Array(made * v.valueBytes) : new Uint8Array(0));
  // A caller's buffer (and every update or delete buffer) must hold count entries.
  checkBatchBuffer(op, "keys", "key_size", keys, args.keys !== undefined || !lookup, count * v.keySize);
  const valuesGiven = mode !== "delete" && (args.values !== undefined || !lookup);
  checkBatchBuffer(op, "values", "value_size", values, valuesGiven, count * v.valueBytes);
  return { keys, values };
}

/** Entries of a batch buffer htab makes at first: the elements in the map now, and some room. */
function batchStartEntries(v: HtabView): number {
  return Math.min(v.geometry.num_elems, mapCount(v) + 64);
}

export function batchErr(res: BatchResult, err: number): BatchResult {
  res.err = err;
  return res;
}

/** BPF_NOEXIST on a present key, BPF_EXIST on an absent one (kernel: check_flags()). @returns 0, -EEXIST, -ENOENT */
export function checkFlags(v: HtabView, old: number, mode: number): number {
  if (old !== 0 && mode === UpdateFlags.NoExist)
    return v.err.fail(EEXIST, "key already exists (BPF_NOEXIST)");
  if (old === 0 && mode === UpdateFlags.Exist) return v.err.fail(ENOENT, "key not found (BPF_EXIST)");
  return 0;
}

/** BPF_F_LOCK on a map without a bpf_spin_lock in its value. @returns -EINVAL */
export function noSpinLock(v: HtabView): number {
  return v.err.fail(EINVAL, "BPF_F_LOCK on a map whose value has no bpf_spin_lock");
}

/** A batch's elem_flags: 0 or BPF_F_LOCK (on a map with a spin lock). @returns 0 or -EINVAL */
export function checkElemFlags(v: HtabView, elemFlags: number): number {
  if ((elemFlags & ~UpdateFlags.Lock) !== 0)
    return v.err.fail(EINVAL, `unknown elem_flags 0x${elemFlags.toString(16)}`);
  if (elemFlags !== 0 && v.spinLockOff < 0) return noSpinLock(v);
  return 0;
}
