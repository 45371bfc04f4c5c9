import { ORDER_MASK } from "../keys.js";
import type { PointPeer } from "../peer.js";

/**
 * The baseline a careful user might write first: a SharedArrayBuffer hash
 * table (u32 key -> u64 value, open addressing, linear probing, tombstones)
 * with one global spin/futex lock around every operation, reads included.
 * It shows what htab's per-bucket locks and lock-free reads buy.
 */
const LOCK = 0;
const COUNT = 1;
const HEADER_WORDS = 4;
const EMPTY = 0;
const FULL = 1;
const TOMB = 2;
/** slot() result when the table has no free slot. */
const NO_SLOT = -0x40000000;

export class NaiveLockMap {
  readonly sab: SharedArrayBuffer;
  private readonly i32: Int32Array;
  private readonly mask: number;
  private readonly base: number;

  constructor(capacityOrSab: number | SharedArrayBuffer) {
    if (typeof capacityOrSab === "number") {
      let n = 1;
      while (n < capacityOrSab * 2) n *= 2;
      // per slot: state, key, value lo, value hi
      this.sab = new SharedArrayBuffer((HEADER_WORDS + n * 4) * 4);
    } else this.sab = capacityOrSab;
    this.i32 = new Int32Array(this.sab);
    this.mask = (this.i32.length - HEADER_WORDS) / 4 - 1;
    this.base = HEADER_WORDS;
  }

  private lock(): void {
    const i32 = this.i32;
    if (Atomics.compareExchange(i32, LOCK, 0, 1) === 0) return;
    for (;;) {
      if (Atomics.exchange(i32, LOCK, 2) === 0) return;
      Atomics.wait(i32, LOCK, 2, 1);
    }
  }

  private unlock(): void {
    if (Atomics.exchange(this.i32, LOCK, 0) === 2) Atomics.notify(this.i32, LOCK, 1);
  }

  private slot(key: number): number {
    let h = Math.imul(key, 0x9e3779b1) >>> 0;
    const i32 = this.i32;
    let firstTomb = -1;
    for (let n = 0; n <= this.mask; n++, h++) {
      const s = this.base + (h & this.mask) * 4;
      const st = i32[s];
      if (st === EMPTY) return firstTomb >= 0 ? -firstTomb - 1 : -s - 1;
      if (st === TOMB) {
        if (firstTomb < 0) firstTomb = s;
      } else if (i32[s + 1] === key) return s;
    }
    return firstTomb >= 0 ? -firstTomb - 1 : NO_SLOT;
  }

  /** Copy the value into out[0..1]; false when absent. Slot results < 0 mean absent. */
  get(key: number, out: Int32Array): boolean {
    this.lock();
    const s = this.slot(key | 0);
    const hit = s >= 0;
    if (hit) {
      out[0] = this.i32[s + 2];
      out[1] = this.i32[s + 3];
    }
    this.unlock();
    return hit;
  }

  set(key: number, lo: number, hi: number): boolean {
    this.lock();
    let s = this.slot(key | 0);
    if (s < 0) {
      if (s === NO_SLOT || this.i32[COUNT] > this.mask >> 1) {
        this.unlock();
        return false;
      }
      s = -s - 1;
      this.i32[s] = FULL;
      this.i32[s + 1] = key;
      this.i32[COUNT]++;
    }
    this.i32[s + 2] = lo;
    this.i32[s + 3] = hi;
    this.unlock();
    return true;
  }

  delete(key: number): boolean {
    this.lock();
    const s = this.slot(key | 0);
    if (s >= 0) {
      this.i32[s] = TOMB;
      this.i32[COUNT]--;
    }
    this.unlock();
    return s >= 0;
  }
}

/** The naive map as a bench peer. */
export function naiveLockPeer(present: Uint32Array, capacity: number): PointPeer & { map: NaiveLockMap } {
  const m = new NaiveLockMap(capacity);
  const out = new Int32Array(2);
  for (let i = 0; i < present.length; i++) m.set(present[i], i, 0);
  return {
    name: "naive SAB + global lock",
    map: m,
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) if (m.get(keys[ord[(pos + i) & ORDER_MASK]], out)) hits++;
      return hits;
    },
    update(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) m.set(keys[ord[(pos + i) & ORDER_MASK]], 7, 0);
    },
    insertDelete(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) {
        const k = keys[ord[(pos + i) & ORDER_MASK]];
        m.set(k, 7, 0);
        m.delete(k);
      }
    },
    close() {},
  };
}
