/**
 * An XDP program's context and packet, as BPF_PROG_TEST_RUN builds them
 * (measured on the kernel, 6.18): one page with 256 bytes of headroom
 * (XDP_PACKET_HEADROOM), of which bpf_xdp_adjust_head may use all but
 * struct xdp_frame's 40; at most 3520 bytes of packet in it (the rest of a
 * larger packet goes to fragments, not directly addressable, returned
 * unchanged), and data_end may grow to that same end. `struct xdp_md` is
 * read-only: data, data_end and data_meta load as pointers into the packet,
 * ingress_ifindex is 1 (the loopback device test_run uses), rx_queue_index 0;
 * egress_ifindex (for devmap programs only, which the verifier checks)
 * faults.
 */

import { BpfError, Errno } from "../errors.js";
import { errnoRet } from "./helpers.js";
import type { HelperFn } from "./interp.js";
import { Helper } from "./isa.js";
import { addressOf, CTX_SLOT, type Memory, PACKET_SLOT, Region } from "./memory.js";

export const HEADROOM = 256;
export const FRAME_RESERVED = 40;
export const MAX_LINEAR = 3520;
export const FRAME_BYTES = HEADROOM + MAX_LINEAR;
export const ETH_HLEN = 14;
/** struct xdp_md up to rx_queue_index. */
export const XDP_MD_BYTES = 20;

/** One XDP run's frame, mapped into a program's memory. */
export class XdpPacket {
  private readonly frame = new Uint8Array(FRAME_BYTES);
  /** Offsets of data and data_end in the frame. */
  private data = HEADROOM;
  private end: number;
  /** Bytes past the linear part (fragments). */
  private readonly frags: Uint8Array;
  /** xdp_md's pointer fields, updated when the packet moves. */
  private readonly fields = new Map<number, bigint>();
  /** The context's address (r1). */
  readonly ctx: bigint;

  /**
   * Map `input` (at least 14 bytes: the caller checks) and its xdp_md into `mem`.
   */
  constructor(
    private readonly mem: Memory,
    input: Uint8Array,
  ) {
    const linear = Math.min(input.length, MAX_LINEAR);
    this.frame.set(input.subarray(0, linear), HEADROOM);
    this.end = HEADROOM + linear;
    this.frags = input.subarray(linear);
    this.map();
    const md = new Uint8Array(XDP_MD_BYTES);
    new DataView(md.buffer).setUint32(12, 1, true); // ingress_ifindex: lo
    this.ctx = mem.mapFixed(CTX_SLOT, new Region("xdp_md", md, false, 0, this.fields));
  }

  /** (Re)map [data, data_end) and point xdp_md's fields at it. */
  private map(): void {
    const base = this.mem.mapFixed(
      PACKET_SLOT,
      new Region("packet", this.frame.subarray(this.data, this.end), true, this.data),
    );
    this.fields.set(0, base + BigInt(this.data)); // data
    this.fields.set(4, base + BigInt(this.end)); // data_end
    this.fields.set(8, base + BigInt(this.data)); // data_meta: no metadata
  }

  /** bpf_xdp_adjust_head(): 0, or -EINVAL outside the frame or leaving under 14 bytes. */
  adjustHead(delta: number): bigint {
    const data = this.data + delta;
    if (data < FRAME_RESERVED || data > this.end - ETH_HLEN) return errnoRet(Errno.EINVAL);
    this.data = data;
    this.map();
    return 0n;
  }

  /**
   * bpf_xdp_adjust_tail(): 0, or -EINVAL past the frame or under 14 bytes; grown bytes are zero.
   * @throws BpfError EOPNOTSUPP on a packet with fragments (over 3520 bytes) and a non-zero delta
   */
  adjustTail(delta: number): bigint {
    if (delta === 0) return 0n;
    if (this.frags.length > 0)
      throw new BpfError(
        "xdp_adjust_tail",
        Errno.EOPNOTSUPP,
        "multi-buffer packets (over 3520 bytes) are not supported here",
      );
    const end = this.end + delta;
    if (end > FRAME_BYTES || end < this.data + ETH_HLEN) return errnoRet(Errno.EINVAL);
    if (end > this.end) this.frame.fill(0, this.end, end);
    this.end = end;
    this.map();
    return 0n;
  }

  /**
   * bpf_xdp_load_bytes(): `len` bytes at `offset` of the packet (the linear
   * part, then the fragments), or the negative errno as r0 holds it: EFAULT
   * for an offset or length over 0xffff, EINVAL past the packet's end
   * (bpf_xdp_pointer). `out` is left as it was on an error.
   */
  loadBytes(offset: number, len: number, out: Uint8Array): bigint {
    if (offset > 0xffff || len > 0xffff) return errnoRet(Errno.EFAULT);
    const linear = this.end - this.data;
    if (offset + len > linear + this.frags.length) return errnoRet(Errno.EINVAL);
    for (let i = 0; i < len; i++) {
      const at = offset + i;
      out[i] = at < linear ? this.frame[this.data + at] : this.frags[at - linear];
    }
    return 0n;
  }

  /** The packet after the run (data_out): [data, data_end) and the fragments. */
  output(): Uint8Array {
    const out = new Uint8Array(this.end - this.data + this.frags.length);
    out.set(this.frame.subarray(this.data, this.end));
    out.set(this.frags, this.end - this.data);
    return out;
  }
}

/**
 * bpf_xdp_adjust_head (44), bpf_xdp_adjust_tail (65) and bpf_xdp_load_bytes (189) on the run's packet
 * (`current()`, null outside an XDP run: the helpers then fault).
 */
export function xdpHelpers(current: () => XdpPacket | null): [number, HelperFn][] {
  const packetOf = (ctx: bigint, op: string): XdpPacket => {
    const p = current();
    if (p === null || ctx !== addressOf(CTX_SLOT))
      throw new BpfError(op, Errno.EFAULT, "r1 is not this XDP program's context");
    return p;
  };
  return [
    [
      Helper.xdpAdjustHead,
      (_vm, ctx, delta) => packetOf(ctx, "xdp_adjust_head").adjustHead(Number(BigInt.asIntN(32, delta))),
    ],
    [
      Helper.xdpAdjustTail,
      (_vm, ctx, delta) => packetOf(ctx, "xdp_adjust_tail").adjustTail(Number(BigInt.asIntN(32, delta))),
    ],
    [
      Helper.xdpLoadBytes,
      (vm, ctx, off, buf, len) => {
        const p = packetOf(ctx, "xdp_load_bytes");
        const n = Number(len & 0xffffffffn);
        const o = Number(off & 0xffffffffn);
        if (o > 0xffff || n > 0xffff) return errnoRet(Errno.EFAULT);
        return p.loadBytes(o, n, vm.mem.bytes("xdp_load_bytes", buf, n, true));
      },
    ],
  ];
}
