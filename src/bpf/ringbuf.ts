/**
 * BPF_MAP_TYPE_RINGBUF on shared memory (kernel/bpf/ringbuf.c): one
 * multi-producer ring of variable-length records, which programs in any
 * thread fill (bpf_ringbuf_output/reserve/submit/discard/query) and
 * TypeScript in any thread drains (`consume()`, `poll()`): one consumer at a
 * time, as with libbpf's ring_buffer.
 *
 * As the kernel: max_entries is the data size, a power of 2 and a multiple
 * of 4096 (else EINVAL; key and value sizes 0). A record is an 8-byte header
 * (u32 len with BUSY 1<<31 while reserved and DISCARD 1<<30 when
 * discarded, u32 pg_off) and its data, rounded up to 8 bytes; positions are
 * 64-bit and only grow. A reserve fails (NULL; output -EAGAIN) when the
 * record would put the producer more than size - 1 bytes ahead of the
 * consumer or of the oldest record still reserved (pending_pos), or when it
 * is bigger than the ring. Producers serialize on a lock word (bounded
 * wait: a reserve that cannot take it within 250 ms fails, as the kernel's
 * trylock in NMI context does). The kernel maps the data area twice so a
 * record can wrap; here the data area is 2 x size bytes and a submit copies
 * a wrapped record's tail to the start of the ring.
 *
 * Layout of the SharedArrayBuffer (this backend's own, not the kernel's
 * mmap pages): consumer_pos (u64), producer_pos (u64), pending_pos (u64),
 * the producer lock (i32), a wakeup counter (i32), then the data.
 */

import { BpfError, Errno } from "../errors.js";
import { lockAcquire, lockRelease } from "../sync/owner-lock.js";

export const RINGBUF_HDR = 8;
export const RB_BUSY = 0x8000_0000;
export const RB_DISCARD = 0x4000_0000;
/** bpf_ringbuf_output/submit/discard flags. */
export const RB_NO_WAKEUP = 1;
export const RB_FORCE_WAKEUP = 2;
/** bpf_ringbuf_query flags. */
export const RbQuery = { availData: 0, ringSize: 1, consPos: 2, prodPos: 3 } as const;

const CONS = 0; // u64 index
const PROD = 1;
const PEND = 2;
const LOCK_I32 = 6;
const WAKE_I32 = 7;
const DATA = 32;
const PAGE = 4096;

export interface RingBufHandle {
  readonly name: string;
  readonly sab: SharedArrayBuffer;
}

export class RingBuf {
  readonly size: number;
  private readonly pos: BigInt64Array;
  private readonly i32: Int32Array;
  private readonly dv: DataView;
  /** The data area (2 x size bytes). */
  readonly data: Uint8Array;

  private constructor(
    readonly name: string,
    readonly sab: SharedArrayBuffer,
  ) {
    this.size = (sab.byteLength - DATA) / 2;
    this.pos = new BigInt64Array(sab, 0, 3);
    this.i32 = new Int32Array(sab);
    this.dv = new DataView(sab, DATA);
    this.data = new Uint8Array(sab, DATA);
  }

  /**
   * A new ring of `maxEntries` data bytes.
   * @throws BpfError EINVAL unless maxEntries is a power of 2 and a multiple of 4096 and key/value sizes are 0
   */
  static create(name: string, maxEntries: number, keySize = 0, valueSize = 0): RingBuf {
    if (keySize !== 0 || valueSize !== 0)
      throw new BpfError("create", Errno.EINVAL, `RINGBUF '${name}': key and value sizes must be 0`);
    if (
      !Number.isInteger(maxEntries) ||
      maxEntries < PAGE ||
      maxEntries % PAGE !== 0 ||
      (maxEntries & (maxEntries - 1)) !== 0 ||
      maxEntries > 2 ** 30
    )
      throw new BpfError(
        "create",
        Errno.EINVAL,
        `RINGBUF '${name}': max_entries ${maxEntries} is not a power of 2 multiple of ${PAGE} (at most 2^30 here)`,
      );
    return new RingBuf(name, new SharedArrayBuffer(DATA + 2 * maxEntries));
  }

  /** The same ring in another thread. */
  static attach(h: RingBufHandle): RingBuf {
    if (!(h?.sab instanceof SharedArrayBuffer) || h.sab.byteLength <= DATA)
      throw new BpfError("attach", Errno.EINVAL, "not a RINGBUF handle");
    return new RingBuf(h.name, h.sab);
  }

  get handle(): RingBufHandle {
    return { name: this.name, sab: this.sab };
  }

  private get mask(): number {
    return this.size - 1;
  }

  /**
   * __bpf_ringbuf_reserve(): the data offset (in `data`) of a new BUSY
   * record of `size` bytes, or -1 when it does not fit (or the lock wait timed out).
   */
  reserve(size: number, cpu: number): number {
    const len = roundUp8(size + RINGBUF_HDR);
    if (size > 0x3fff_ffff || len > this.size) return -1;
    const cons = Atomics.load(this.pos, CONS);
    if (!lockAcquire(this.i32, LOCK_I32, cpu)) return -1;
    try {
      let pend = this.pos[PEND];
      const prod = this.pos[PROD];
      // Skip the records committed since (the oldest still reserved bounds the producer).
      while (pend < prod) {
        const l = this.lenAt(pend);
        if ((l & RB_BUSY) !== 0) break;
        pend += BigInt(roundUp8((l & ~RB_DISCARD) + RINGBUF_HDR));
      }
      this.pos[PEND] = pend;
      const next = prod + BigInt(len);
      const mask = BigInt(this.mask);
      if (next - cons > mask || next - pend > mask) return -1;
      const off = Number(prod & mask);
      this.dv.setUint32(off + 4, 3 + Math.floor(off / PAGE), true); // pg_off
      this.setLen(off, (size | RB_BUSY) >>> 0);
      Atomics.store(this.pos, PROD, next);
      return off + RINGBUF_HDR;
    } finally {
      lockRelease(this.i32, LOCK_I32);
    }
  }

  /** bpf_ringbuf_commit(): the record at data offset `at` is done (submitted, or discarded). */
  commit(at: number, discard: boolean, flags: number): void {
    const off = at - RINGBUF_HDR;
    const len = this.lenAt(BigInt(off)) & ~RB_BUSY;
    const end = off + roundUp8(len + RINGBUF_HDR);
    if (end > this.size) this.data.copyWithin(0, this.size, end); // the wrapped tail, where the kernel's second mapping has it
    this.setLen(off, ((len | (discard ? RB_DISCARD : 0)) & ~RB_BUSY) >>> 0);
    if ((flags & RB_NO_WAKEUP) === 0 || (flags & RB_FORCE_WAKEUP) !== 0) {
      Atomics.add(this.i32, WAKE_I32, 1);
      Atomics.notify(this.i32, WAKE_I32);
    }
  }

  /** bpf_ringbuf_query(). */
  query(flags: number): bigint {
    const cons = Atomics.load(this.pos, CONS);
    const prod = Atomics.load(this.pos, PROD);
    switch (flags) {
      case RbQuery.availData:
        return prod - cons;
      case RbQuery.ringSize:
        return BigInt(this.size);
      case RbQuery.consPos:
        return cons;
      case RbQuery.prodPos:
        return prod;
      default:
        return 0n;
    }
  }

  private lenAt(pos: bigint): number {
    return Atomics.load(this.i32, (DATA + Number(pos & BigInt(this.mask))) / 4) >>> 0;
  }

  private setLen(off: number, v: number): void {
    Atomics.store(this.i32, (DATA + off) / 4, v | 0);
  }

  /**
   * Consume committed records in order (ring_buffer__consume): `fn` gets a
   * copy of each record's data; discarded ones are skipped; a record still
   * reserved stops the walk. At most `max` records.
   * @returns the records passed to `fn`
   */
  consume(fn: (data: Uint8Array) => void, max = Number.POSITIVE_INFINITY): number {
    let n = 0;
    let cons = Atomics.load(this.pos, CONS);
    const mask = BigInt(this.mask);
    while (n < max) {
      const prod = Atomics.load(this.pos, PROD);
      if (cons >= prod) break;
      const l = this.lenAt(cons);
      if ((l & RB_BUSY) !== 0) break;
      const len = l & ~RB_DISCARD;
      const off = Number(cons & mask) + RINGBUF_HDR;
      cons += BigInt(roundUp8(len + RINGBUF_HDR));
      if ((l & RB_DISCARD) === 0) {
        fn(this.data.slice(off, off + len));
        n++;
      }
      Atomics.store(this.pos, CONS, cons);
    }
    return n;
  }

  /**
   * Wait up to `timeoutMs` for a record to be committed with a wakeup (or
   * return at once when records are waiting), then consume. Atomics.wait
   * where the thread may block, else a bounded spin on the clock.
   */
  poll(fn: (data: Uint8Array) => void, timeoutMs: number): number {
    const seen = Atomics.load(this.i32, WAKE_I32);
    const n = this.consume(fn);
    if (n > 0 || timeoutMs <= 0) return n;
    try {
      Atomics.wait(this.i32, WAKE_I32, seen, timeoutMs);
    } catch {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end && Atomics.load(this.i32, WAKE_I32) === seen) {}
    }
    return this.consume(fn);
  }
}

function roundUp8(n: number): number {
  return (n + 7) & ~7;
}
