import { invalid } from "../errors.js";
import type { WasmMemory } from "../wasm/fast-path.js";

/** What a worker needs to attach: post it with postMessage. */
export interface MapHandle {
  readonly sab: SharedArrayBuffer;
  /**
   * The shared wasm memory whose buffer `sab` is, when the map was created
   * with the fast path: a thread attaching with it runs the wasm fast path.
   * (Pass the whole handle to workers; `sab` alone attaches on the JS path.)
   */
  readonly memory?: WasmMemory;
  /** A map inside a MapDomain: its byte offset and length in `sab`, and its id. */
  readonly offset?: number;
  readonly length?: number;
  readonly id?: number;
}

/** Options for attach(). */
export interface AttachOptions {
  /** CPU slot to claim. @default the first free slot */
  cpu?: number;
}

/**
 * Check that `memory` (a handle's) is a shared WebAssembly.Memory, before
 * anything is claimed: a fake one would fail inside the fast path's
 * instantiation (LinkError) with the CPU slot already taken.
 * @throws BpfError EINVAL naming what it is instead
 */
export function checkMemory(memory: unknown, op = "attach"): void {
  const Memory = (globalThis as { WebAssembly?: { Memory?: abstract new (...a: never[]) => object } })
    .WebAssembly?.Memory;
  const what =
    memory === null
      ? "null"
      : typeof memory === "object"
        ? `a ${(memory as object).constructor?.name ?? "null-prototype"} object`
        : `${String(memory)} (${typeof memory})`;
  if (Memory === undefined || !(memory instanceof Memory))
    invalid(
      op,
      `handle.memory is ${what}, not a WebAssembly.Memory: pass the map's own handle (map.handle), or a handle without memory for the JS path`,
    );
  if (!((memory as WasmMemory).buffer instanceof SharedArrayBuffer))
    invalid(op, "handle.memory is not a shared WebAssembly.Memory (it needs shared: true)");
}
