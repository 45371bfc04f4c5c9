/**
 * Program sections (kernel: the RCU read-side section a BPF program runs
 * in, and synchronize_rcu()). While any section is active, freed elements
 * wait in limbo instead of going back to a freelist, so a reference taken
 * inside a section (program.ts) never sees its element reused.
 */
import {
  limboReclaim,
  type SyncOptions,
  type SyncReport,
  sectionEnter,
  sectionExit,
  synchronizeBounded,
} from "../alloc/epoch.js";
import { invalid } from "../errors.js";
import { noSections } from "./fast.js";
import type { HtabView } from "./htab-view.js";

/** Htab.enter()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function enter(v: HtabView): void {
  if (v.sectionDepth++ === 0) {
    sectionEnter(v.i32, v.cpu);
    v.liveGen[0]++;
  }
}

/** Leave a program section; at the outermost exit its references die. */
export function exit(v: HtabView): void {
  if (v.sectionDepth === 0) invalid("exit", "exit() without enter()");
  if (--v.sectionDepth === 0) {
    v.liveGen[0]++;
    v.held.clear(); // its references are dead
    sectionExit(v.i32, v.cpu);
    limboReclaim(v.i32, v.cpu, v.cpu, v.nrCpus, v.elems.sink);
  }
}

/** Htab.synchronize()'s body; the contract (errnos, kernel counterpart) is its TSDoc. */
export function synchronize(v: HtabView, opts?: SyncOptions): SyncReport | undefined {
  if (v.sectionDepth !== 0) invalid("synchronize", "called inside a section: it would wait for itself");
  if (noSections(v) && opts?.timeoutMs === undefined) return undefined;
  return synchronizeBounded(v.i32, v.nrCpus, opts);
}
