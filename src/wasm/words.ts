/**
 * The atomic word operations of the lock and list code, chosen once per
 * view (kernel: the arch's atomic_t ops): wasm instructions over the map's
 * memory when the map has the fast path, JS `Atomics` otherwise. Callers
 * never ask which; a wasm `i32.atomic.*` is one instruction where a JS
 * `Atomics.*` call is a builtin call (see fast-path.ts).
 *
 * Indices are word indices into the map (the JS path's Int32Array view);
 * the wasm backend adds the map's byte address.
 */
import type { FastPath } from "./fast-path.js";

export interface Words {
  /** One CAS of a free bucket seqlock, no wait. @returns true when taken; false: take the waiting path */
  trySeqLock(idx: number): boolean;
  /** One CAS of an owner lock word from 0 to `tag`, no wait. @returns true when taken; false: take the waiting path */
  tryOwnerLock(idx: number, tag: number): boolean;
  exchange(idx: number, value: number): number;
  load(idx: number): number;
}

/** JS Atomics on the map's own Int32Array. The try* calls defer to the waiting paths, which CAS first. */
export class JsWords implements Words {
  constructor(private readonly i32: Int32Array) {}
  trySeqLock(_idx: number): boolean {
    return false;
  }
  tryOwnerLock(_idx: number, _tag: number): boolean {
    return false;
  }
  exchange(idx: number, value: number): number {
    return Atomics.exchange(this.i32, idx, value);
  }
  load(idx: number): number {
    return Atomics.load(this.i32, idx);
  }
}

/** The wasm instance's atomic exports over the map at byte address `base`. */
export class WasmWords implements Words {
  constructor(
    private readonly wasm: FastPath,
    private readonly base: number,
  ) {}
  trySeqLock(idx: number): boolean {
    return this.wasm.seqTryLock(this.base + idx * 4) !== 0;
  }
  tryOwnerLock(idx: number, tag: number): boolean {
    return this.wasm.compareExchange(this.base + idx * 4, 0, tag) === 0;
  }
  exchange(idx: number, value: number): number {
    return this.wasm.exchange(this.base + idx * 4, value);
  }
  load(idx: number): number {
    return this.wasm.load(this.base + idx * 4);
  }
}
