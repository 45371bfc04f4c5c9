/**
 * htab: the Linux kernel's BPF hash maps in a SharedArrayBuffer.
 * This entry point has no runtime dependency and runs in Node, Bun, Deno and browsers.
 * The bpf() kernel backend is in `htab/kernel`.
 * @module htab
 */

export type { SyncOptions, SyncReport } from "./alloc/epoch.js";
export { BpfMap, type BpfMapOptions } from "./api/bpf-map.js";
export type { ArrayType, HashMapType, WatchOptions } from "./api/create.js";
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
export { TypedMap, type TypedMapOptions } from "./api/typed-map.js";
export { type ArrayFsckReport, type ArrayHandle, ArrayMap } from "./array/array-map.js";
export type { ComputeFn } from "./core/compare.js";
export { type AttachOptions, type FsckReport, Htab, type MapHandle } from "./core/htab.js";
export type { SabCreateOptions } from "./core/spec.js";
export { ValueRef } from "./core/value-ref.js";
export { ArrayOfMaps } from "./domain/array-of-maps.js";
export { HashOfMaps } from "./domain/hash-of-maps.js";
export type { InnerMeta, InnerResolver, OuterMap } from "./domain/inner.js";
export {
  type DomainHandle,
  type DomainMapSpec,
  type DomainOptions,
  type HashType as DomainHashType,
  MapDomain,
  type OuterType as DomainOuterType,
} from "./domain/map-domain.js";
export { BpfError, Errno, type ErrnoCode, type ErrnoName, errnoName } from "./errors.js";
export { htabMapHash } from "./hash/htab-hash.js";
export { jhash, jhash2 } from "./hash/jhash.js";
export type { Geometry } from "./layout/geometry.js";
export type { ArrayGeometry } from "./layout/layout.js";
export type { Codec, CodecValue, Field, StructValue } from "./map/codecs.js";
export * as codecs from "./map/codecs.js";
export type { BatchArgs, BatchResult, MapInfo, RawMap, ScratchMap } from "./map/raw-map.js";
export type { MapSpec } from "./map/spec.js";
export type { Reservation } from "./sync/slot-claim.js";
export { MAP_TYPE_NAMES, MapFlags, MapType, UpdateFlags } from "./uapi.js";
export type { WasmMemory } from "./wasm/fast-path.js";
