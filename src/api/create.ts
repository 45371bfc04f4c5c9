import { type AttachOptions, Htab, type MapHandle } from "../core/htab.js";
import type { MapSpec, SabCreateOptions } from "../core/spec.js";

/**
 * Create a BPF hash map in a new SharedArrayBuffer. Post `map.handle` to
 * workers and call `attach()` there.
 * @throws BpfError with the kernel's errno for an invalid spec
 */
export function createMap(spec: MapSpec, opts?: SabCreateOptions): Htab {
  return Htab.create(spec, opts);
}

/** Attach this thread to a map created elsewhere; takes a CPU slot. */
export function attach(handle: MapHandle | SharedArrayBuffer, opts?: AttachOptions): Htab {
  return Htab.attach(handle, opts);
}

/** The part of node:worker_threads' Worker that watchWorker() needs. */
export interface ExitingWorker {
  once(event: "exit", listener: (code: number) => void): unknown;
}

/** A map or a MapDomain: anything whose dead CPU slots can be reaped. */
export interface Reapable {
  reap(cpu: number): void;
}

/**
 * Reap `cpu`'s slot when `worker` exits, however it exits (terminate(), a
 * crash, or a normal end without close()). Call it in the thread that made
 * the worker, with the map (or the MapDomain) attached there.
 */
export function watchWorker(map: Reapable, worker: ExitingWorker, cpu: number): void {
  worker.once("exit", () => map.reap(cpu));
}
