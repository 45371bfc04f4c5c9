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
  /** Reap slot `cpu`; with `generation`, only that claim of it (a later thread's claim is left alone). */
  reap(cpu: number, generation?: number): void;
  /** Where available, lets watchWorker() warn about a slot that cannot be the worker's. */
  slotState?(cpu: number): "alive" | "dead" | "free";
  /** The slot of the thread that watches (its own slot is never the worker's). */
  readonly cpu?: number;
}

/** The message announceSlot() posts: which CPU slot the posting thread attached with, and which claim of it. */
export interface SlotAnnouncement {
  htabSlot: number;
  /** The slot's claim generation (slotGeneration()), where the map has one. */
  htabGeneration?: number;
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
export function announceSlot(
  map: { readonly cpu: number; slotGeneration?(cpu: number): number },
  port: SlotPort,
): void {
  const msg: SlotAnnouncement = { htabSlot: map.cpu };
  if (typeof map.slotGeneration === "function") msg.htabGeneration = map.slotGeneration(map.cpu);
  port.postMessage(msg);
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
 * announces is reaped at its exit. An announced slot is reaped only if it
 * still holds the claim the worker announced: when the worker closed its map
 * and another thread took the slot before the exit event ran, that thread is
 * left alone. With an explicit `cpu`, the worker may announce too (for the
 * same exactness); without an announcement the slot is reaped as it is. A slot that cannot be the worker's (the
 * watching thread's own, or one being recovered) is reported with a process
 * warning (HtabWarning): reaping it at exit would do nothing, so the
 * worker's real slot would leak. A free slot is fine: the worker attaches to
 * it after it starts.
 */
export function watchWorker(map: Reapable, worker: ExitingWorker, cpu?: number): void {
  if (cpu !== undefined) {
    // A free slot is the normal case (the worker has not attached yet); the watching
    // thread's own slot, or one being recovered, cannot be the worker's.
    const state = typeof map.slotState === "function" ? map.slotState(cpu) : "alive";
    if (cpu === map.cpu || state === "dead")
      warn(
        `watchWorker(): CPU slot ${cpu} ${cpu === map.cpu ? "is this thread's own" : "is dead and being recovered"}, ` +
          "so it cannot be the worker's: reaping it when the worker exits would do nothing (or fail), and the " +
          "worker's real slot would leak. Pass the slot the worker attaches with (attach(handle, { cpu })), " +
          "or omit the slot and have the worker call announceSlot(map, parentPort).",
      );
    if (cpu === map.cpu) return;
    // An announcement, where the worker makes one, names the claim to reap.
    let generation: number | undefined;
    const heard = (msg: unknown): void => {
      const a = msg as Partial<SlotAnnouncement> | null;
      if (a?.htabSlot === cpu && typeof a.htabGeneration === "number") generation = a.htabGeneration;
    };
    worker.on?.("message", heard);
    worker.once("exit", () => {
      worker.off?.("message", heard);
      map.reap(cpu, generation);
    });
    return;
  }
  if (typeof worker.on !== "function")
    invalid("watchWorker", "without a slot, the worker must be able to post messages (announceSlot())");
  // Slot -> the claim generation announced (undefined: the map has none).
  const slots = new Map<number, number | undefined>();
  const listener = (msg: unknown): void => {
    const a = msg as Partial<SlotAnnouncement> | null;
    const s = a?.htabSlot;
    if (typeof s === "number" && Number.isInteger(s))
      slots.set(s, typeof a?.htabGeneration === "number" ? a.htabGeneration : undefined);
  };
  worker.on("message", listener);
  worker.once("exit", () => {
    worker.off?.("message", listener);
    for (const [s, generation] of slots) map.reap(s, generation);
  });
}
