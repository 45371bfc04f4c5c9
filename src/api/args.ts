/** Argument checks of the api layer's constructors: what came, shown with its type. */

import { BpfError, Errno, showInput } from "../errors.js";
import type { Codec } from "../map/codecs.js";
import type { RawMap } from "../map/raw-map.js";

export function isCodec(c: unknown): c is Codec<unknown> {
  const o = c as Partial<Codec<unknown>> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    Number.isInteger(o.size) &&
    typeof o.encode === "function" &&
    typeof o.decode === "function"
  );
}

/** EINVAL unless `c` is a codec. */
export function checkCodec(op: string, what: string, c: unknown): void {
  if (!isCodec(c))
    throw new BpfError(
      op,
      Errno.EINVAL,
      `${what} codec must be a Codec ({ size, encode, decode }, such as codecs.u32), got ${showInput(c)}`,
    );
}

/**
 * EINVAL unless `raw` is a map object (createMap(), attach(), KernelMap...).
 * The usual mistake is a map's `handle`, which is what a worker attaches with.
 */
export function checkRaw(op: string, raw: unknown): asserts raw is RawMap {
  const r = raw as Partial<RawMap> | null;
  if (typeof r !== "object" || r === null || typeof r.info !== "object" || typeof r.lookupElem !== "function")
    throw new BpfError(
      op,
      Errno.EINVAL,
      `map must be a map object (createMap(), attach(handle), KernelMap), got ${showInput(raw)}` +
        (typeof r === "object" && r !== null && "sab" in r
          ? ": that is a map's handle; attach(handle) gives the map"
          : ""),
    );
}
