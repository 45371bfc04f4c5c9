/**
 * htab: the Linux kernel's BPF hash maps in a SharedArrayBuffer.
 * This entry point has no runtime dependency and runs in Node, Bun, Deno and browsers.
 * The bpf() kernel backend is in `htab/kernel`.
 */

export { BpfMap } from "./api/bpf-map.js";
export type { Codec, CodecValue, Field, StructValue } from "./api/codecs.js";
export * as codecs from "./api/codecs.js";
export {
  announceSlot,
  attach,
  createMap,
  type ExitingWorker,
  type Reapable,
  type SlotAnnouncement,
  type SlotPort,
  watchWorker,
} from "./api/create.js";
export { TypedMap } from "./api/typed-map.js";
export { type AttachOptions, type FsckReport, Htab, type MapHandle } from "./core/htab.js";
export { type DomainHandle, type DomainMapSpec, type DomainOptions, MapDomain } from "./core/map-domain.js";
export { ArrayOfMaps, HashOfMaps, type OuterMap } from "./core/map-of-maps.js";
export type { BatchArgs, BatchResult, MapInfo, RawMap, ScratchMap } from "./core/raw-map.js";
export type { MapSpec, SabCreateOptions } from "./core/spec.js";
export { ValueRef } from "./core/value-ref.js";
export { BpfError, Errno, type ErrnoCode, type ErrnoName, errnoName } from "./errors.js";
export { htabMapHash } from "./hash/htab-hash.js";
export { jhash, jhash2 } from "./hash/jhash.js";
export type { Geometry } from "./layout/geometry.js";
export { MAP_TYPE_NAMES, MapFlags, MapType, UpdateFlags } from "./uapi.js";
