import { type ArrayHandle, ArrayMap, type ArrayType } from "../array/array-map.js";
import { type AttachOptions, Htab, type MapHandle } from "../core/htab.js";
import type { MapSpec, SabCreateOptions } from "../core/spec.js";
import { invalid } from "../errors.js";
import { onClose } from "../map/closed.js";
import { isArray } from "../map/traits.js";
import type { MapType } from "../uapi.js";

export type { ArrayType };
/** The map types createMap() makes as an Htab. */
export type HashMapType =
  | typeof MapType.Hash
  | typeof MapType.PercpuHash
  | typeof MapType.LruHash
  | typeof MapType.LruPercpuHash;

/**
 * Create a BPF map in a new SharedArrayBuffer: a hash map (Htab) or an
 * ARRAY / PERCPU_ARRAY (ArrayMap). Post `map.handle` to workers and call
 * `attach()` there.
 * @throws BpfError with the kernel's errno for an invalid spec
 */
export function createMap(spec: MapSpec & { type: ArrayType }, opts?: SabCreateOptions): ArrayMap;
export function createMap(spec: MapSpec & { type: HashMapType }, opts?: SabCreateOptions): Htab;
export function createMap(spec: MapSpec, opts?: SabCreateOptions): Htab | ArrayMap;
export function createMap(spec: MapSpec, opts?: SabCreateOptions): Htab | ArrayMap {
  if (spec !== null && typeof spec === "object" && isArray(spec.type)) return ArrayMap.create(spec, opts);
  return Htab.create(spec, opts);
}

/**
 * Attach this thread to a map created elsewhere; takes a CPU slot. An
 * array's handle (or its SharedArrayBuffer) gives an ArrayMap.
 */
export function attach(
  handle: (MapHandle & { readonly array?: undefined }) | SharedArrayBuffer,
  opts?: AttachOptions,
): Htab;
export function attach(handle: ArrayHandle, opts?: AttachOptions): ArrayMap;
export function attach(handle: MapHandle | SharedArrayBuffer, opts?: AttachOptions): Htab | ArrayMap;
export function attach(handle: MapHandle | SharedArrayBuffer, opts?: AttachOptions): Htab | ArrayMap {
  const sab = handle instanceof SharedArrayBuffer ? handle : handle?.sab;
  const offset = handle instanceof SharedArrayBuffer ? 0 : (handle?.offset ?? 0);
  if (sab instanceof SharedArrayBuffer && ArrayMap.holdsArray(sab, offset))
    return ArrayMap.attach(handle, opts);
  return Htab.attach(handle, opts);
}

/** The part of node:worker_threads' Worker (or a Web Worker wrapper) that watchWorker() needs. */
export interface ExitingWorker {
  once(event: "exit", listener: (code: number) => void): unknown;
  /** Needed only when watchWorker() is not told the slot: the worker announces it (announceSlot()). */
  on?(event: "message", listener: (msg: unknown) => void): unknown;
  /** Where available, the message listener is removed once the watch ends. */
  off?(event: "message", listener: (msg: unknown) => void): unknown;
}

/** A map or a MapDomain: anything whose dead CPU slots can be reaped. */
export interface Reapable {
  /**
   * Reap slot `cpu`; with `generation`, only that claim of it (a later
   * thread's claim is left alone); with `token`, only a claim by that thread.
   */
  reap(cpu: number, generation?: number, token?: number): void;
  /** Where available, lets watchWorker() warn about a slot that cannot be the worker's. */
  slotState?(cpu: number): "alive" | "dead" | "free";
  /** Where available: keep a free slot for the worker (Htab.reserveSlot()). */
  reserveSlot?(cpu: number): { state: "reserved" | "alive" | "dead"; generation: number; token: number };
  unreserveSlot?(cpu: number): void;
  slotGeneration?(cpu: number): number;
  /** The slot of the thread that watches (its own slot is never the worker's). */
  readonly cpu?: number;
}

/** The message announceSlot() posts: which CPU slot the posting thread attached with, and which claim of it. */
export interface SlotAnnouncement {
  htabSlot: number;
  /** The slot's claim generation (slotGeneration()), where the map has one. */
  htabGeneration?: number;
  /** The token of the claiming thread (slotClaim()), where the map has one. */
  htabToken?: number;
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
  map: { readonly cpu: number; slotGeneration?(cpu: number): number; slotClaim?(cpu: number): number },
  port: SlotPort,
): void {
  const msg: SlotAnnouncement = { htabSlot: map.cpu };
  if (typeof map.slotGeneration === "function") msg.htabGeneration = map.slotGeneration(map.cpu);
  if (typeof map.slotClaim === "function") msg.htabToken = map.slotClaim(map.cpu);
  port.postMessage(msg);
}

/** Options of watchWorker(). */
export interface WatchOptions {
  /**
   * Where a watch's warning goes (at most one per watchWorker() call).
   * @default process.emitWarning(text, "HtabWarning") where it exists, else console.warn
   */
  onWarning?: (text: string) => void;
}

function defaultWarn(text: string): void {
  const proc = (globalThis as { process?: { emitWarning?: (w: string, type: string) => void } }).process;
  if (typeof proc?.emitWarning === "function") proc.emitWarning(text, "HtabWarning");
  else console.warn(`HtabWarning: ${text}`);
}

const FIX =
  "Pass the slot the worker attaches with (attach(handle, { cpu })), " +
  "or omit the slot and have the worker call announceSlot(map, parentPort).";

/**
 * Reap the worker's slot when `worker` exits, however it exits (terminate(),
 * a crash, or a normal end without close()). Call it in the thread that made
 * the worker, right after making it, with the map (or the MapDomain)
 * attached there.
 *
 * `cpu`: the worker's slot, which it attaches with (`attach(handle, { cpu })`).
 * A free slot is reserved for it: until it is claimed, an attach without a
 * cpu skips it (a worker that forgot its `{ cpu }` gets EBUSY, or another
 * free slot, instead of a slot another worker is watched as), and only that
 * claim is reaped at the exit: a thread that claims the slot after the
 * worker closed its map is left alone. A slot already taken when watched
 * (by a thread that attached before the watch: likely not this worker) is
 * reaped only if the worker announces it, and is reported.
 *
 * Omit `cpu` when the worker attaches without one and calls
 * announceSlot(map, parentPort): every slot it announces is reaped at its
 * exit, only if it still holds the claim the worker announced (the same
 * generation, by the same thread). With `cpu`, the worker may announce too.
 *
 * Warnings (HtabWarning, or `opts.onWarning`; at most one per call): the slot
 * is the watching thread's own or being recovered; the worker exited without
 * ever claiming the slot (or, without `cpu`, without announcing one), so
 * its real slot, if any, leaks; a reap that failed.
 *
 * Once the map (or domain) is closed in this thread, the watch ends: its
 * listeners are removed where the worker has `off()`, and an exit after
 * that does nothing. htab keeps no timer; nothing of a watch keeps a process alive.
 */
export function watchWorker(
  map: Reapable,
  worker: ExitingWorker,
  cpu?: number,
  opts: WatchOptions = {},
): void {
  let warned = false;
  const warn = (text: string): void => {
    if (warned) return;
    warned = true;
    (opts.onWarning ?? defaultWarn)(`watchWorker(): ${text}`);
  };
  if (cpu === undefined && typeof worker.on !== "function")
    invalid("watchWorker", "without a slot, the worker must be able to post messages (announceSlot())");
  // Slot -> the claim announced (generation, token; undefined where the map has none).
  const announced = new Map<number, { generation?: number; token?: number }>();
  const heard = (msg: unknown): void => {
    const a = msg as Partial<SlotAnnouncement> | null;
    const s = a?.htabSlot;
    if (typeof s === "number" && Number.isInteger(s))
      announced.set(s, {
        generation: typeof a?.htabGeneration === "number" ? a.htabGeneration : undefined,
        token: typeof a?.htabToken === "number" ? a.htabToken : undefined,
      });
  };
  // The claim of `cpu` to reap at exit: the first after the reservation, or the one seen now.
  let expect: { generation: number; token?: number; reserved: boolean } | null = null;
  // (token: of a slot taken before the watch, for the docs of a warning; such a slot is reaped only if announced.)
  if (cpu !== undefined) {
    const state = typeof map.slotState === "function" ? map.slotState(cpu) : "alive";
    if (cpu === map.cpu || state === "dead") {
      warn(
        `CPU slot ${cpu} ${cpu === map.cpu ? "is this thread's own" : "is dead and being recovered"}, ` +
          "so it cannot be the worker's: reaping it when the worker exits would do nothing (or fail), and the " +
          `worker's real slot would leak. ${FIX}`,
      );
      if (cpu === map.cpu) return;
    }
    if (typeof map.reserveSlot === "function" && state !== "dead") {
      const r = map.reserveSlot(cpu);
      if (r.state === "reserved") expect = { generation: (r.generation + 1) & 0x3fff_ffff, reserved: true };
      else if (r.state === "alive") {
        // Taken before the watch: by this worker only if it attached at once, which a watch made right
        // after the worker cannot miss. Likelier another thread's: never reaped without an announcement.
        expect = { generation: r.generation, token: r.token, reserved: false };
        warn(
          `CPU slot ${cpu} is already taken (claim ${r.generation}), before the worker could attach: it is ` +
            "not reaped at the worker's exit unless the worker announces it (announceSlot(map, parentPort)), " +
            `since it may be another thread's. Watch the worker right after creating it. ${FIX}`,
        );
      }
    }
  }
  const onMessage = (msg: unknown): void => heard(msg);
  let watching = true;
  const onExit = (): void => {
    if (!watching) return;
    stop();
    try {
      reapAtExit();
    } catch (e) {
      warn(`reaping the worker's slot failed: ${(e as Error).message}`);
    }
  };
  const reapAtExit = (): void => {
    if (announced.size > 0) {
      if (cpu !== undefined && !announced.has(cpu)) {
        warn(
          `the worker was watched as CPU slot ${cpu} but announced slot ${[...announced.keys()].join(", ")}; that is reaped`,
        );
        map.unreserveSlot?.(cpu);
      }
      for (const [s, a] of announced) map.reap(s, a.generation, a.token);
      return;
    }
    if (cpu === undefined) {
      warn(
        "the worker exited without announcing a CPU slot (announceSlot(map, parentPort)), so no slot is reaped: " +
          "if it attached, its slot leaks. Have it announce, or pass its slot (watchWorker(map, worker, cpu)).",
      );
      return;
    }
    if (expect === null) {
      map.reap(cpu);
      return;
    }
    const gen = typeof map.slotGeneration === "function" ? map.slotGeneration(cpu) : expect.generation;
    const state = typeof map.slotState === "function" ? map.slotState(cpu) : "alive";
    if (expect.reserved && state === "free" && gen === ((expect.generation - 1) & 0x3fff_ffff)) {
      map.unreserveSlot?.(cpu);
      warn(
        `the worker exited without ever attaching to CPU slot ${cpu}, the slot it is watched as: if it attached ` +
          `without { cpu }, it took another slot, which leaks (or got EBUSY: free slots are kept for the workers watched as them). ${FIX}`,
      );
      return;
    }
    if (expect.reserved) map.reap(cpu, expect.generation);
  };
  const stop = (): void => {
    watching = false;
    unregister();
    worker.off?.("message", onMessage);
    // The exit listener stays: it is a once() listener, and after stop() it does nothing.
  };
  const unregister = onClose(map, () => {
    stop();
    if (cpu !== undefined && expect?.reserved === true) map.unreserveSlot?.(cpu);
  });
  worker.on?.("message", onMessage);
  worker.once("exit", onExit);
}
