/**
 * BPF_MAP_TYPE_PROG_ARRAY on the shared-memory backend: max_entries slots in
 * a SharedArrayBuffer, each 0 (empty) or a program's index + 1 among its
 * object's programs, so every thread attached to the object sees the same
 * slots. Programs only tail-call through it (bpf_tail_call); TypeScript
 * fills and clears slots (LoadedObject.setTailCall), as user space does with
 * program fds.
 */

import { BpfError, Errno } from "../errors.js";

export class ProgArray {
  private readonly slots: Int32Array;

  constructor(
    readonly name: string,
    readonly maxEntries: number,
    /** The slots' buffer (shared with attached threads); a new one when omitted. */
    readonly sab: SharedArrayBuffer = new SharedArrayBuffer(Math.max(4, maxEntries * 4)),
  ) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 1 << 20)
      throw new BpfError(
        "create",
        Errno.EINVAL,
        `PROG_ARRAY '${name}': max_entries ${maxEntries} is not in [1, 2^20]`,
      );
    if (sab.byteLength < maxEntries * 4)
      throw new BpfError("attach", Errno.EINVAL, `PROG_ARRAY '${name}': the buffer is too small`);
    this.slots = new Int32Array(sab, 0, maxEntries);
  }

  /** The program index in slot `index`, or -1 (empty or out of range). */
  get(index: number): number {
    if (index < 0 || index >= this.maxEntries) return -1;
    return Atomics.load(this.slots, index) - 1;
  }

  /** Put program `program` (an index, or -1 to clear) in slot `index`. */
  set(index: number, program: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.maxEntries)
      throw new BpfError(
        "update",
        Errno.E2BIG,
        `PROG_ARRAY '${this.name}': index ${index} is not below max_entries ${this.maxEntries}`,
      );
    Atomics.store(this.slots, index, program + 1);
  }
}
