/**
 * The program face of the SAB map (docs/program-face.md): what a BPF program
 * sees of it, as methods. Htab's base class, so that the facade stays one
 * concept a file: Htab has the control-plane calls, this the program's.
 */
import type { SyncOptions, SyncReport } from "../alloc/epoch.js";
import { invalid } from "../errors.js";
import { canWrite, checkFlagsArg, checkKey } from "./checks.js";
import { hashKey } from "./elem.js";
import type { HtabView } from "./htab-view.js";
import { forEachElem, refOf, updateElemFromProgram } from "./program.js";
import { enter, exit, synchronize } from "./section.js";
import type { ValueRef } from "./value-ref.js";

export abstract class ProgramFace {
  protected constructor(protected readonly v: HtabView) {}

  /**
   * Enter a program section (kernel: the RCU read-side section a BPF program
   * runs in). References from lookupRef() are valid until the matching exit().
   * Sections nest; keep them short: elements freed meanwhile wait for them.
   */
  enter(): void {
    enter(this.v);
  }

  /** Leave a program section; at the outermost exit its references die. */
  exit(): void {
    exit(this.v);
  }

  /** Control-plane writes are allowed: not BPF_F_RDONLY, not frozen. */
  get writable(): boolean {
    return canWrite(this.v);
  }

  /** True inside enter()/exit() (or run()). */
  get inSection(): boolean {
    return this.v.sectionDepth > 0;
  }

  /**
   * Wait until every program section that began before this call has ended
   * (kernel: synchronize_rcu()): after a map-in-map swap, the old inner map is quiet.
   * Bounded: a section still open after 1 s (a worker that died inside
   * run() and was never reaped) gives ETIMEDOUT naming its slot; with
   * `{ timeoutMs }` it waits that long and returns a report instead.
   * @throws BpfError EINVAL inside a section (it would wait for itself), ETIMEDOUT
   */
  synchronize(): void;
  synchronize(opts: SyncOptions & { timeoutMs: number }): SyncReport;
  synchronize(opts?: SyncOptions): SyncReport | undefined {
    return synchronize(this.v, opts);
  }

  /** The value an outer map stores for this map: its id in its MapDomain (0 outside one). */
  mapRef(): number {
    return this.v.info.id;
  }

  /** Run `fn` as a program: inside a section, so it may take references. */
  run<T>(fn: () => T): T {
    enter(this.v);
    try {
      return fn();
    } finally {
      exit(this.v);
    }
  }

  /**
   * bpf_map_lookup_elem() as a program sees it: a live reference to the value
   * in shared memory, or null. Pass `into` to reuse a reference object.
   * @throws BpfError EINVAL outside a section (see enter()/run())
   */
  lookupRef(key: Uint8Array, into?: ValueRef): ValueRef | null {
    const v = this.v;
    checkKey(v, "lookupRef", key);
    if (v.sectionDepth === 0)
      invalid("lookupRef", "references need a program section: call it inside run() or enter()/exit()");
    return refOf(v, hashKey(v, key), v.cpu, into);
  }

  /**
   * bpf_map_update_elem() called from a program: on a per-CPU map it writes
   * only the calling CPU's slot (`value` is value_size bytes), and a new key's
   * other slots are zero-filled. On other maps it is updateElem().
   * @returns 0, -EEXIST, -ENOENT, -E2BIG, -EINVAL, -EACCES (BPF_F_RDONLY_PROG), -ETIMEDOUT
   */
  updateElemFromProgram(key: Uint8Array, value: Uint8Array, flags = 0): number {
    checkKey(this.v, "updateElemFromProgram", key);
    checkFlagsArg(this.v, "updateElemFromProgram", flags);
    return updateElemFromProgram(this.v, key, value, flags);
  }

  /**
   * bpf_map_lookup_percpu_elem(): a reference to CPU `cpu`'s value of a per-CPU
   * map, or null when the key is absent or `cpu` is not a possible CPU.
   * @throws BpfError EINVAL on a map that is not per-CPU (the verifier rejects it), or outside a section
   */
  lookupPercpuRef(key: Uint8Array, cpu: number, into?: ValueRef): ValueRef | null {
    const v = this.v;
    checkKey(v, "lookupPercpuRef", key);
    if (!v.percpu) invalid("lookupPercpuRef", "the map is not per-CPU");
    if (v.sectionDepth === 0) invalid("lookupPercpuRef", "references need a program section");
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= v.nrCpus) return null;
    return refOf(v, hashKey(v, key), cpu, into);
  }

  /**
   * bpf_for_each_map_elem(): call `cb(map, key, value, ctx)` for every element,
   * bucket by bucket; it returns 0 to go on or 1 to stop. Returns the number
   * of elements visited. The key buffer and the reference are reused between
   * calls. The callback may delete the current element. Like the kernel's
   * walk, elements added or removed meanwhile may or may not be visited.
   * @throws BpfError EINVAL for flags other than 0 or a callback returning other than 0 or 1
   */
  forEachElem<C>(
    cb: (map: this, key: Uint8Array, value: ValueRef, ctx: C) => number,
    ctx: C,
    flags = 0,
  ): number {
    return forEachElem(this.v, this, cb, ctx, flags);
  }
}
