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
