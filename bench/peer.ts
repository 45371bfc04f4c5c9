/**
 * What every point-operation peer exposes: the same workload functions,
 * each a tight loop over a key array, so that the measured code is the
 * peer's own operation and nothing else (no per-op closure of the harness).
 *
 * `keys[ord[(pos + i) & ORDER_MASK]]` for i < n is the key sequence: a
 * random visiting order over present (or absent) keys.
 */
export interface PointPeer {
  readonly name: string;
  /** Look each key up. @returns the number found */
  lookup(keys: Uint32Array, ord: Uint32Array, pos: number, n: number): number;
  /** Overwrite each (present) key's value. Absent: the peer has no such workload. */
  update?(keys: Uint32Array, ord: Uint32Array, pos: number, n: number): void;
  /** Insert each (absent) key, then delete it. */
  insertDelete?(keys: Uint32Array, ord: Uint32Array, pos: number, n: number): void;
  /** Insert `keys[(pos + i) % keys.length]` for i < n, in order (LRU maps: each evicts). */
  insertStream?(keys: Uint32Array, pos: number, n: number): void;
  close(): unknown;
}
