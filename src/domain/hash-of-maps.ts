/**
 * BPF_MAP_TYPE_HASH_OF_MAPS inside a MapDomain (kernel: hashtab.c htab_of_maps); see array-of-maps.ts for the model both outer types share.
 */

import type { SyncOptions, SyncReport } from "../alloc/epoch.js";
import type { ArrayMap } from "../array/array-map.js";
import type { Htab } from "../core/htab.js";
import { Errno, invalid } from "../errors.js";
import { poisonClosed } from "../map/closed.js";
import { LastError } from "../map/last-error.js";
import type { BatchArgs, BatchResult, MapInfo } from "../map/raw-map.js";
import { hasLockFlag, MapFlags } from "../uapi.js";

import {
  checkInner,
  type InnerMeta,
  type InnerResolver,
  InnerSections,
  type OuterMap,
  readInnerMeta,
  runIn,
  u32At,
} from "./inner.js";

const EINVAL = -Errno.EINVAL;
const ENOTSUPP = -Errno.ENOTSUPP;
const EPERM = -Errno.EPERM;

/**
 * BPF_MAP_TYPE_HASH_OF_MAPS: a hash map whose 4-byte values are inner map
 * ids, checked against the template on update. Everything else is the hash
 * map's (flags, errno, order, batches that read).
 */
export class HashOfMaps implements OuterMap {
  readonly info: MapInfo;
  private readonly meta: InnerMeta;
  private readonly why = new LastError();
  private useWhy = false;
  private readonly scratch = new Uint8Array(4);
  private readonly inner = new InnerSections();
  private depth = 0;
  private closed = false;

  constructor(
    private readonly h: Htab,
    i32: Int32Array,
    private readonly resolver: InnerResolver,
  ) {
    this.meta = readInnerMeta(i32);
    this.info = h.info;
  }

  get lastError(): string {
    return this.useWhy ? this.why.message : this.h.lastError;
  }

  private mine(err: number): number {
    this.useWhy = err !== 0;
    return err;
  }

  lookupElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    this.useWhy = false;
    if (flags !== 0)
      return this.mine(this.fail(EINVAL, `lookup flags must be 0 on a map-in-map, got ${flags}`));
    return this.h.lookupElem(key, value, 0);
  }

  private fail(err: number, why: string): number {
    return this.why.fail(err, why);
  }

  /** Kernel: htab_map_update_elem() after bpf_map_fd_get_ptr() resolved and checked the inner map. */
  updateElem(key: Uint8Array, value: Uint8Array, flags = 0): number {
    if (!(value instanceof Uint8Array) || value.length !== 4)
      invalid("update", "value must be a 4-byte Uint8Array");
    // Kernel order (map_update_elem()): write permission, BPF_F_LOCK without a
    // bpf_spin_lock, then the fd, then the hash map's own flag checks.
    if (!this.h.writable) return this.mine(this.fail(EPERM, "map is BPF_F_RDONLY or frozen"));
    if (hasLockFlag(flags)) return this.mine(this.fail(EINVAL, "BPF_F_LOCK on a map-in-map"));
    const id = checkInner(this.resolver, this.meta, value, this.why);
    if (id < 0) return this.mine(id);
    this.useWhy = false;
    return this.h.updateElem(key, value, flags);
  }

  deleteElem(key: Uint8Array): number {
    this.useWhy = false;
    return this.h.deleteElem(key);
  }

  lookupAndDeleteElem(_key: Uint8Array, _value: Uint8Array, _flags = 0): number {
    // Kernel order: read and write permission first (map_lookup_and_delete_elem()).
    if ((this.info.flags & MapFlags.Wronly) !== 0 || !this.h.writable)
      return this.mine(this.fail(EPERM, "map is BPF_F_WRONLY, BPF_F_RDONLY or frozen"));
    return this.mine(this.fail(ENOTSUPP, "lookup_and_delete is not supported on a hash of maps"));
  }

  getNextKey(key: Uint8Array | null, nextKey: Uint8Array): number {
    this.useWhy = false;
    return this.h.getNextKey(key, nextKey);
  }

  lookupBatch(args: BatchArgs): BatchResult {
    this.useWhy = false;
    return this.h.lookupBatch(args);
  }

  lookupAndDeleteBatch(args: BatchArgs): BatchResult {
    this.useWhy = false;
    return this.h.lookupAndDeleteBatch(args);
  }

  /**
   * Each value is an inner map id, checked like update(); stops at the first
   * error. Kernel: generic_map_update_batch(): permission and elem_flags are
   * checked up front (count comes back as passed), then pair by pair.
   */
  updateBatch(args: BatchArgs): BatchResult {
    const values = args.values ?? new Uint8Array(0);
    const keys = args.keys ?? new Uint8Array(0);
    const elemFlags = args.elemFlags ?? 0;
    const upFront = (err: number): BatchResult => ({
      err: this.mine(err),
      count: args.count,
      outBatch: null,
      keys,
      values,
    });
    if (!this.h.writable) return upFront(this.fail(EPERM, "map is BPF_F_RDONLY or frozen"));
    if (elemFlags !== 0)
      return upFront(this.fail(EINVAL, `elem_flags 0x${elemFlags.toString(16)} on a map-in-map`));
    const ks = this.info.keySize;
    for (let i = 0; i < args.count; i++) {
      const err = this.updateElem(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * 4, i * 4 + 4), 0);
      if (err !== 0) return { err, count: i, outBatch: null, keys, values };
    }
    return { err: 0, count: args.count, outBatch: null, keys, values };
  }

  deleteBatch(args: BatchArgs): BatchResult {
    this.useWhy = false;
    return this.h.deleteBatch(args);
  }

  freeze(): number {
    return this.h.freeze();
  }

  memoryUsage(): number {
    return this.h.memoryUsage();
  }

  mapRef(): number {
    return this.info.id;
  }

  lookupInner(key: Uint8Array): Htab | ArrayMap | null {
    if (!this.h.inSection) invalid("lookupInner", "needs a program section: call it inside run()");
    const e = this.h.lookupElem(key, this.scratch, 0);
    return e === 0
      ? (this.inner.enterInner(this.resolver.mapById(u32At(this.scratch))) as Htab | ArrayMap | null)
      : null;
  }

  enter(): void {
    this.h.enter();
    this.depth++;
  }

  exit(): void {
    if (this.depth === 0) invalid("exit", "exit() without enter()");
    if (--this.depth === 0) this.inner.exitAll();
    this.h.exit();
  }

  run<T>(fn: () => T): T {
    return runIn(this, fn);
  }

  synchronize(): void;
  synchronize(opts: SyncOptions & { timeoutMs: number }): SyncReport;
  synchronize(opts?: SyncOptions): SyncReport | undefined {
    if (opts?.timeoutMs !== undefined) return this.h.synchronize(opts as SyncOptions & { timeoutMs: number });
    this.h.synchronize();
    return undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.h.close();
    poisonClosed(this);
  }

  reap(cpu: number, generation?: number): void {
    this.h.reap(cpu, generation);
  }
}
