/**
 * A socket filter's or a tc classifier's context and packet, as
 * BPF_PROG_TEST_RUN builds them (net/bpf/test_run.c bpf_prog_test_run_skb,
 * checked against the kernel, 6.18, in test/bpf/skb.test.ts):
 *
 * - The input (14 to 3712 bytes, else EINVAL; an IPv4 packet needs its
 *   20-byte header and an IPv6 one its 40 bytes, else EINVAL) is one linear
 *   skb on the loopback device. eth_type_trans() sets `protocol` (the
 *   EtherType in network order; below 0x600, ETH_P_802_3 when the next two
 *   bytes are 0xffff, else ETH_P_802_2) and `pkt_type` (the destination
 *   against lo's all-zero address and all-zero broadcast address: 2
 *   multicast, ff:ff:ff:ff:ff:ff included, 0 host for 00:00:00:00:00:00, 3
 *   other host).
 * - A socket filter sees the packet after the Ethernet header (`len` is 14
 *   less, skb_load_bytes offsets start there) and no data pointers; the
 *   packet after the run comes back with those 14 bytes zeroed, as the
 *   kernel pushes them back with memset. A tc program sees the whole frame,
 *   with `data`, `data_end` and `data_meta` (= data) as pointers for direct
 *   access; its packet comes back as it left it.
 * - Fields filled: len, pkt_type, protocol, ifindex (1, lo); everything
 *   else reads 0 (mark, priority, queue_mapping, vlan_*, ingress_ifindex,
 *   tc_index, cb[], hash, tc_classid, napi_id, wire_len, gso_*, tstamp,
 *   hwtstamp: test_run leaves them so without a ctx_in).
 * - Which fields a program may read or write is the verifier's
 *   (sk_filter_is_valid_access, tc_cls_act_is_valid_access,
 *   bpf_skb_is_valid_access): `skbAccess()`, compared field by field with the
 *   kernel's verifier. A refused access stops the run (EACCES) where the
 *   kernel would have refused the program. The `sk` pointer (a kernel
 *   socket) is not modelled: reading it is refused (EOPNOTSUPP-like EACCES).
 * - A ctx_in (__sk_buff given by the caller) is not supported here.
 */

import { BpfError, Errno } from "../errors.js";
import { errnoRet } from "./helpers.js";
import type { HelperFn } from "./interp.js";
import { Helper } from "./isa.js";
import { addressOf, CTX_SLOT, type Memory, PACKET_SLOT, Region } from "./memory.js";

const ETH_HLEN = 14;
/** PAGE_SIZE - NET_SKB_PAD - SKB_DATA_ALIGN(sizeof(struct skb_shared_info)), measured. */
export const SKB_MAX_INPUT = 3712;
/** sizeof(struct __sk_buff). */
export const SK_BUFF_BYTES = 192;

/** Offsets of struct __sk_buff's fields. */
export const SkBuff = {
  len: 0,
  pktType: 4,
  mark: 8,
  queueMapping: 12,
  protocol: 16,
  vlanPresent: 20,
  vlanTci: 24,
  vlanProto: 28,
  priority: 32,
  ingressIfindex: 36,
  ifindex: 40,
  tcIndex: 44,
  cb: 48,
  hash: 68,
  tcClassid: 72,
  data: 76,
  dataEnd: 80,
  napiId: 84,
  family: 88,
  localPortEnd: 140,
  dataMeta: 140,
  flowKeys: 144,
  tstamp: 152,
  wireLen: 160,
  gsoSegs: 164,
  sk: 168,
  gsoSize: 176,
  tstampType: 180,
  hwtstamp: 184,
} as const;

/** Program types with an __sk_buff context. */
export type SkbKind = "socket" | "tc";

/**
 * The verifier's answer for an access to __sk_buff: undefined when allowed,
 * else why not. `off` and `size` are the access's; narrow reads of 32-bit
 * fields are allowed where the kernel allows them.
 */
export function skbAccess(kind: SkbKind, off: number, size: number, write: boolean): string | undefined {
  if (off < 0 || off + size > SK_BUFF_BYTES) return "outside struct __sk_buff";
  if (off % size !== 0) return "misaligned";
  return typeRule(kind, off, write) ?? fieldRule(kind, off, size, write);
}

const S = SkBuff;
const at = (off: number, from: number, bytes: number) => off >= from && off < from + bytes;
const inCb = (off: number) => at(off, S.cb, 20);
const isPacketPointer = (off: number) => at(off, S.data, 8) || at(off, S.dataMeta, 4);
/** The fields a tc program writes (tc_cls_act_is_valid_access). */
const tcWrites = (off: number) =>
  at(off, S.mark, 4) ||
  at(off, S.tcIndex, 4) ||
  at(off, S.priority, 4) ||
  at(off, S.tcClassid, 4) ||
  at(off, S.queueMapping, 4) ||
  at(off, S.tstamp, 8) ||
  inCb(off);

/** sk_filter_is_valid_access / tc_cls_act_is_valid_access: what the program type excludes. */
function typeRule(kind: SkbKind, off: number, write: boolean): string | undefined {
  if (at(off, S.family, S.localPortEnd - S.family)) return "family..local_port are for sk_skb programs";
  if (kind === "tc") return write && !tcWrites(off) ? "not a field tc programs write" : undefined;
  if (at(off, S.tcClassid, 4)) return "tc_classid is for tc programs";
  if (isPacketPointer(off)) return "a socket filter has no direct packet access";
  if (at(off, S.tstamp, 8) || at(off, S.wireLen, 4) || at(off, S.hwtstamp, 8))
    return "tstamp, wire_len and hwtstamp are not for socket filters";
  return write && !inCb(off) ? "a socket filter writes only cb[]" : undefined;
}

/** bpf_skb_is_valid_access: each field's sizes. */
function fieldRule(kind: SkbKind, off: number, size: number, write: boolean): string | undefined {
  if (inCb(off))
    return size === 8 && off > S.cb + 8 ? "cb[] holds two u64s at most, from cb[0] and cb[2]" : undefined;
  if (isPacketPointer(off)) {
    if (size !== 4) return "a packet pointer field is read whole (4 bytes)";
    return write ? "packet pointers are read-only" : undefined;
  }
  if (at(off, S.flowKeys, 8)) return "flow_keys is for flow dissector programs";
  if (at(off, S.sk, 8))
    return size === 8 ? "the sk pointer (a kernel socket) is not modelled here" : "sk is a pointer";
  if (at(off, S.tstamp, 8) || at(off, S.hwtstamp, 8)) {
    if (size !== 8) return "a u64 field is accessed whole";
    return write && off === S.hwtstamp ? "hwtstamp is read-only" : undefined;
  }
  if (at(off, S.tstampType, 4)) {
    if (kind === "socket" || off !== S.tstampType || size !== 1) return "tstamp_type is a u8 of tc programs";
    return write ? "tstamp_type is read-only" : undefined;
  }
  if (size > 4) return "a 32-bit field";
  return write && size !== 4 ? "a field is written whole (4 bytes)" : undefined;
}

/** eth_type_trans()'s protocol (host order) for a frame. */
function ethProtocol(frame: Uint8Array): number {
  const proto = (frame[12] << 8) | frame[13];
  if (proto >= 0x600) return proto;
  return frame.length >= ETH_HLEN + 2 && frame[14] === 0xff && frame[15] === 0xff ? 0x0001 : 0x0004;
}

/**
 * eth_type_trans()'s pkt_type on lo, whose address and broadcast address
 * are both all-zero: a multicast destination (ff:ff:ff:ff:ff:ff included) is
 * PACKET_MULTICAST, 00:00:00:00:00:00 PACKET_HOST, any other PACKET_OTHERHOST.
 */
function ethPktType(frame: Uint8Array): number {
  if ((frame[0] & 1) !== 0) return 2;
  return frame.subarray(0, 6).every((b) => b === 0) ? 0 : 3;
}

/**
 * Refuse input BPF_PROG_TEST_RUN refuses for an skb program.
 * @throws BpfError EINVAL
 */
export function checkSkbInput(data: Uint8Array): void {
  if (data.length < ETH_HLEN || data.length > SKB_MAX_INPUT)
    throw new BpfError(
      "run",
      Errno.EINVAL,
      `an skb test run takes ${ETH_HLEN} to ${SKB_MAX_INPUT} bytes of packet, got ${data.length}`,
    );
  const proto = ethProtocol(data);
  const l3 = data.length - ETH_HLEN;
  if ((proto === 0x0800 && l3 < 20) || (proto === 0x86dd && l3 < 40))
    throw new BpfError(
      "run",
      Errno.EINVAL,
      `an ${proto === 0x0800 ? "IPv4" : "IPv6"} packet needs its ${proto === 0x0800 ? 20 : 40}-byte header, got ${l3} bytes after the Ethernet header`,
    );
}

/** One skb run's context and packet, mapped into a program's memory. */
export class SkbPacket {
  private readonly frame: Uint8Array;
  /** Where skb->data is in the frame: 14 for a socket filter, 0 for tc. */
  private readonly dataOff: number;
  /** The context's address (r1). */
  readonly ctx: bigint;

  /** Map `input` (checked with checkSkbInput()) and its __sk_buff into `mem`. */
  constructor(mem: Memory, input: Uint8Array, kind: SkbKind) {
    this.frame = input.slice();
    this.dataOff = kind === "socket" ? ETH_HLEN : 0;
    const md = new Uint8Array(SK_BUFF_BYTES);
    const dv = new DataView(md.buffer);
    dv.setUint32(SkBuff.len, input.length - this.dataOff, true);
    dv.setUint32(SkBuff.pktType, ethPktType(input), true);
    dv.setUint16(SkBuff.protocol, ethProtocol(input), false); // network order in the low 16 bits
    dv.setUint32(SkBuff.ifindex, 1, true);
    let fields: Map<number, bigint> | undefined;
    if (kind === "tc") {
      const base = mem.mapFixed(PACKET_SLOT, new Region("packet", this.frame, true));
      fields = new Map([
        [SkBuff.data, base],
        [SkBuff.dataEnd, base + BigInt(this.frame.length)],
        [SkBuff.dataMeta, base],
      ]);
    } else mem.unmapFixed(PACKET_SLOT);
    this.ctx = mem.mapFixed(
      CTX_SLOT,
      new Region("__sk_buff", md, true, 0, fields, (off, size, write) => skbAccess(kind, off, size, write)),
    );
  }

  /**
   * bpf_skb_load_bytes(): `len` bytes at `offset` from skb->data into `out`,
   * or -EFAULT (with `out` zeroed) past the packet or for an offset over INT_MAX.
   */
  loadBytes(offset: number, out: Uint8Array): bigint {
    const len = out.length;
    const avail = this.frame.length - this.dataOff;
    if (offset > 0x7fffffff || offset + len > avail) {
      out.fill(0);
      return errnoRet(Errno.EFAULT);
    }
    out.set(this.frame.subarray(this.dataOff + offset, this.dataOff + offset + len));
    return 0n;
  }

  /** The packet after the run (data_out): a socket filter's Ethernet header comes back zeroed. */
  output(): Uint8Array {
    const out = this.frame.slice();
    out.fill(0, 0, this.dataOff);
    return out;
  }
}

/** bpf_skb_load_bytes (26) on the run's skb (`current()`, null outside an skb run: the helper then faults). */
export function skbHelpers(current: () => SkbPacket | null): [number, HelperFn][] {
  return [
    [
      Helper.skbLoadBytes,
      (vm, ctx, off, to, len) => {
        const p = current();
        if (p === null || ctx !== addressOf(CTX_SLOT))
          throw new BpfError("skb_load_bytes", Errno.EFAULT, "r1 is not this program's __sk_buff");
        const out = vm.mem.bytes("skb_load_bytes", to, Number(len & 0xffffffffn), true);
        return p.loadBytes(Number(off & 0xffffffffn), out);
      },
    ],
  ];
}
