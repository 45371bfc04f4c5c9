/**
 * A plain reference model of a preallocated BPF hash map for one thread:
 * an array of bucket chains (newest first) and a count. Deliberately naive.
 */

import { htabMapHash } from "../../src/hash/htab-hash.js";

export interface ModelBatch {
  err: number;
  count: number;
  outBatch: number | null;
  keys: string[];
  values: string[];
}

const ENOENT = -2;
const EEXIST = -17;
const E2BIG = -7;
const EINVAL = -22;
const ENOSPC = -28;

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

export class HashModel {
  readonly chains: { key: string; value: string }[][];
  count = 0;

  constructor(
    readonly keySize: number,
    readonly maxEntries: number,
    readonly seed: number,
    /** Per-CPU maps overwrite an existing key in place: its chain position stays. */
    readonly inPlace = false,
  ) {
    let n = 1;
    while (n < maxEntries) n *= 2;
    this.chains = Array.from({ length: n }, () => []);
  }

  bucket(key: Uint8Array): number {
    const words = new Int32Array(Math.ceil(this.keySize / 4));
    const bytes = new Uint8Array(words.buffer);
    bytes.set(key);
    return htabMapHash(bytes, words, this.keySize, this.seed) & (this.chains.length - 1);
  }

  private find(key: Uint8Array): { b: number; i: number } {
    const b = this.bucket(key);
    return { b, i: this.chains[b].findIndex((e) => e.key === hex(key)) };
  }

  lookup(key: Uint8Array, flags = 0): { err: number; value?: string } {
    if (flags !== 0) return { err: EINVAL };
    const { b, i } = this.find(key);
    return i < 0 ? { err: ENOENT } : { err: 0, value: this.chains[b][i].value };
  }

  update(key: Uint8Array, value: Uint8Array, flags: number): number {
    if (flags > 2) return EINVAL;
    const { b, i } = this.find(key);
    if (i >= 0 && flags === 1) return EEXIST;
    if (i < 0 && flags === 2) return ENOENT;
    if (i < 0 && this.count >= this.maxEntries) return E2BIG;
    if (i >= 0 && this.inPlace) {
      this.chains[b][i].value = hex(value);
      return 0;
    }
    if (i >= 0) this.chains[b].splice(i, 1);
    else this.count++;
    this.chains[b].unshift({ key: hex(key), value: hex(value) });
    return 0;
  }

  delete(key: Uint8Array): number {
    const { b, i } = this.find(key);
    if (i < 0) return ENOENT;
    this.chains[b].splice(i, 1);
    this.count--;
    return 0;
  }

  lookupAndDelete(key: Uint8Array, flags = 0): { err: number; value?: string } {
    if (flags !== 0) return { err: EINVAL };
    const r = this.lookup(key);
    if (r.err === 0) this.delete(key);
    return r;
  }

  getNextKey(key: Uint8Array | null): { err: number; key?: string } {
    let start = 0;
    if (key !== null) {
      const { b, i } = this.find(key);
      if (i >= 0) {
        if (i + 1 < this.chains[b].length) return { err: 0, key: this.chains[b][i + 1].key };
        start = b + 1;
      }
    }
    for (let b = start; b < this.chains.length; b++)
      if (this.chains[b].length > 0) return { err: 0, key: this.chains[b][0].key };
    return { err: ENOENT };
  }

  order(): string[] {
    return this.chains.flatMap((c) => c.map((e) => e.key));
  }

  lookupBatch(inBatch: number | null, count: number, del: boolean): ModelBatch {
    const res: ModelBatch = { err: 0, count, outBatch: null, keys: [], values: [] };
    if (count === 0) return res;
    res.count = 0;
    let batch = inBatch ?? 0;
    if (batch >= this.chains.length) return { ...res, err: ENOENT };
    for (;;) {
      const chain = this.chains[batch];
      if (chain.length > count - res.keys.length) {
        if (res.keys.length === 0) res.err = ENOSPC;
        break;
      }
      for (const e of chain) {
        res.keys.push(e.key);
        res.values.push(e.value);
      }
      if (del) {
        this.count -= chain.length;
        chain.length = 0;
      }
      batch++;
      if (batch >= this.chains.length) {
        res.err = ENOENT;
        break;
      }
    }
    res.count = res.keys.length;
    res.outBatch = batch;
    return res;
  }
}
