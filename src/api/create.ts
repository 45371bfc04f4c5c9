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
