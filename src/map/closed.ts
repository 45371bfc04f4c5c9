/**
 * Use after close(): once a map object gives its CPU slot back, another
 * thread may claim the slot, and with it the slot's scratch buffer and
 * per-CPU state. A closed object must never touch the map's memory again.
 *
 * Instead of a test at the top of every method (a cost on every hot call),
 * close() shadows each method and accessor of the object's class with one
 * that throws BpfError EINVAL "map is closed". Live objects are untouched;
 * methods added later are covered without anyone remembering to.
 */

import { BpfError, Errno } from "../errors.js";

/** Names never shadowed: close() stays a no-op when repeated. */
const KEEP = new Set(["constructor", "close"]);

/** What runs when an object is closed (watchWorker() stops watching). */
const closeHooks = new WeakMap<object, Set<() => void>>();

/**
 * Run `fn` when `obj` is closed (poisonClosed() runs it first). @returns a
 * function that unregisters it. `fn` must not throw.
 */
export function onClose(obj: object, fn: () => void): () => void {
  let hooks = closeHooks.get(obj);
  if (hooks === undefined) closeHooks.set(obj, (hooks = new Set()));
  hooks.add(fn);
  return () => {
    hooks.delete(fn);
  };
}

/**
 * Make every method and accessor of `obj` (its prototype chain up to
 * Object.prototype) throw BpfError EINVAL. `what` names the object in the
 * message ("map", "domain"), `why` says what close() gave up.
 */
export function poisonClosed(obj: object, what = "map", why = "this object gave its CPU slot back"): void {
  const hooks = closeHooks.get(obj);
  if (hooks !== undefined) {
    closeHooks.delete(obj);
    for (const fn of hooks) fn();
  }
  const shadowed = new Set<string>();
  for (
    let p = Object.getPrototypeOf(obj);
    p !== null && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (KEEP.has(name) || shadowed.has(name)) continue;
      const d = Object.getOwnPropertyDescriptor(p, name);
      if (d === undefined) continue;
      const fail = (): never => {
        throw new BpfError(name, Errno.EINVAL, `${what} is closed: ${why}`);
      };
      if (typeof d.value === "function")
        Object.defineProperty(obj, name, { value: fail, configurable: true });
      else if (d.get !== undefined) Object.defineProperty(obj, name, { get: fail, configurable: true });
      else continue;
      shadowed.add(name);
    }
  }
}
