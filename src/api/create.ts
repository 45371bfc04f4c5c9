import { type AttachOptions, Htab, type MapHandle } from "../core/htab.js";
import type { MapSpec, SabCreateOptions } from "../core/spec.js";
import { invalid } from "../errors.js";

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

/** The part of node:worker_threads' Worker (or a Web Worker wrapper) that watchWorker() needs. */
export interface ExitingWorker {
  once(event: "exit", listener: (code: number) => void): unknown;
  /** Needed only when watchWorker() is not told the slot: the worker announces it (announceSlot()). */
  on?(event: "message", listener: (msg: unknown) => void): unknown;
  off?(event: "message", listener: (msg: unknown) => void): unknown;
}

/** A map or a MapDomain: anything whose dead CPU slots can be reaped. */
export interface Reapable {
  reap(cpu: number): void;
  /** Where available, lets watchWorker() warn about a slot nobody holds. */
  slotState?(cpu: number): "alive" | "dead" | "free";
}

/** The message announceSlot() posts: which CPU slot the posting thread attached with. */
export interface SlotAnnouncement {
  htabSlot: number;
}

/** Anything with postMessage (node:worker_threads' parentPort, a Web Worker's `self`). */
export interface SlotPort {
  postMessage(msg: SlotAnnouncement): void;
}

/**
 * Tell the parent thread which CPU slot `map` took, for a worker that
 * attached without an explicit `cpu`. The parent's watchWorker(map, worker)
 * (called without a slot) picks the message up.
 */
export function announceSlot(map: { readonly cpu: number }, port: SlotPort): void {
  port.postMessage({ htabSlot: map.cpu });
}

function warn(text: string): void {
  const proc = (globalThis as { process?: { emitWarning?: (w: string, type: string) => void } }).process;
  if (typeof proc?.emitWarning === "function") proc.emitWarning(text, "HtabWarning");
  else console.warn(`HtabWarning: ${text}`);
}

/**
 * Reap the worker's slot when `worker` exits, however it exits (terminate(),
 * a crash, or a normal end without close()). Call it in the thread that made
 * the worker, with the map (or the MapDomain) attached there.
 *
 * `cpu`: the worker's slot. Omit it when the worker attaches without an
 * explicit `cpu` and calls announceSlot(map, parentPort): every slot it
 * announces is reaped at its exit. A slot given here that no live thread
 * holds is reported with a process warning (HtabWarning): reaping it at exit
 * would do nothing, so the worker's real slot would leak.
 */
export function watchWorker(map: Reapable, worker: ExitingWorker, cpu?: number): void {
  if (cpu !== undefined) {
    if (typeof map.slotState === "function") {
      const state = map.slotState(cpu);
      if (state !== "alive")
        warn(
          `watchWorker(): CPU slot ${cpu} is ${state}: no live thread holds it, so reaping it when this ` +
            "worker exits does nothing. Pass the slot the worker attached with (its map.cpu), or omit the " +
            "slot and have the worker call announceSlot(map, parentPort).",
        );
    }
    worker.once("exit", () => map.reap(cpu));
    return;
  }
  if (typeof worker.on !== "function")
    invalid("watchWorker", "without a slot, the worker must be able to post messages (announceSlot())");
  const slots = new Set<number>();
  const listener = (msg: unknown): void => {
    const s = (msg as Partial<SlotAnnouncement> | null)?.htabSlot;
    if (typeof s === "number" && Number.isInteger(s)) slots.add(s);
  };
  worker.on("message", listener);
  worker.once("exit", () => {
    worker.off?.("message", listener);
    for (const s of slots) map.reap(s);
  });
}
