/**
 * The memory a running program may touch, checked on every access instead
 * of proven by a verifier. Addresses are 64-bit numbers in a sparse space of
 * 4 GiB slots: a pointer is `slot * 2^32 + offset`, and a slot holds at most
 * one region (bytes, writable or not). Slot 0 is never mapped, so NULL and
 * every small integer fault.
 *
 * | slots        | what                                                        |
 * |--------------|-------------------------------------------------------------|
 * | 1 .. 8       | the stack frames: frame k (0 = the main program) in slot 1+k, 512 bytes ending at offset 2^31 (r10); live only while that call is |
 * | 16, 17, 18   | the run's input memory (conformance), context, packet        |
 * | 32 .. 127    | the object's globals (.data, .bss, .rodata, one slot each)   |
 * | 128          | subprogram addresses (BPF_PSEUDO_FUNC): offset = instruction index; never readable |
 * | 256 .. 1023  | map handles (BPF_PSEUDO_MAP_FD): slot 256 + map index; never readable |
 * | 1024 ..      | values helpers returned during a run (a map value, exactly value_size bytes), one slot each, unmapped when the run ends |
 *
 * An access must lie wholly inside one region, so a pointer moved from one
 * map value to the next, past the end of a packet or below a stack frame
 * faults (EFAULT), as the verifier would have refused it.
 */

import { BpfError, Errno } from "../errors.js";
import { STACK_BYTES } from "./isa.js";

/** Bytes per slot of the address space. */
export const SLOT_BYTES = 2 ** 32;
/** Slot of stack frame 0. */
export const STACK_SLOT = 1;
/** Slot of the input memory of `htab prog exec`. */
export const INPUT_SLOT = 16;
/** Slot of a program's context (xdp_md, __sk_buff, a syscall program's struct). */
export const CTX_SLOT = 17;
/** Slot of the packet. */
export const PACKET_SLOT = 18;
/** First slot of the globals. */
export const GLOBAL_SLOT = 32;
/** Slot whose offsets are subprogram addresses. */
export const FUNC_SLOT = 128;
/** First slot of the map handles. */
export const MAP_SLOT = 256;
/** Offset of a stack frame's first byte inside its slot (r10 is at 2^31). */
export const STACK_ORIGIN = 2 ** 31 - STACK_BYTES;
/** First slot handed out to helper results. */
const DYNAMIC_FIRST = 1024;
/** Slots above this are unreachable (2^21 slots of 2^32 bytes: addresses below 2^53 stay exact numbers). */
const SLOT_LIMIT = 2 ** 21;

/** One mapped range of bytes. */
export class Region {
  readonly dv: DataView;
  private u32?: Uint32Array;
  private u64?: BigUint64Array;
  /**
   * @param origin where the region starts inside its slot: 0, except for
   * stack frames, which sit in the middle of theirs so that an access just
   * below or above a frame is reported as out of that frame's bounds
   * @param fields 32-bit loads at these offsets give these 64-bit values
   * instead of the bytes: a context's pointer fields (xdp_md's data and
   * data_end), which the kernel's verifier rewrites into pointer loads
   * @param check a context's access rules (the verifier's is_valid_access):
   * the reason an access at `off` of `size` bytes is refused, or undefined
   */
  constructor(
    readonly name: string,
    readonly bytes: Uint8Array,
    readonly writable: boolean,
    readonly origin = 0,
    readonly fields?: ReadonlyMap<number, bigint>,
    readonly check?: (off: number, size: number, write: boolean) => string | undefined,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get size(): number {
    return this.bytes.length;
  }
  /**
   * A 32-bit word view for Atomics at byte offset `off`, or undefined when the
   * underlying buffer is not 4-byte aligned there. Index into it with the returned index.
   */
  words32(off: number): { a: Uint32Array; i: number } | undefined {
    const abs = this.bytes.byteOffset + off;
    if (abs % 4 !== 0) return undefined;
    this.u32 ??= new Uint32Array(this.bytes.buffer, 0, this.bytes.buffer.byteLength >>> 2);
    return { a: this.u32, i: abs >>> 2 };
  }
  /** As words32, for 64-bit words. */
  words64(off: number): { a: BigUint64Array; i: number } | undefined {
    const abs = this.bytes.byteOffset + off;
    if (abs % 8 !== 0) return undefined;
    this.u64 ??= new BigUint64Array(this.bytes.buffer, 0, Math.floor(this.bytes.buffer.byteLength / 8));
    return { a: this.u64, i: abs / 8 };
  }
}

/** Why an access faulted, for the interpreter's error. */
export interface Fault {
  errno: number;
  what: string;
}

/** The address of offset `off` in slot `slot`. */
export function addressOf(slot: number, off = 0): bigint {
  return BigInt(slot) * 0x1_0000_0000n + BigInt(off);
}

const hex = (a: bigint) => `0x${a.toString(16)}`;

/** The regions of one program's runs. */
export class Memory {
  private readonly fixed: (Region | undefined)[] = new Array(DYNAMIC_FIRST);
  private readonly dynamic = new Map<number, Region>();
  private nextDynamic = DYNAMIC_FIRST;
  /** The deepest live stack frame (0: only the main program's). */
  depth = 0;
  /** Set by `resolve`: the offset of the access inside the region it returned. */
  off = 0;
  /** Set by `resolve` when it returns undefined. */
  fault: Fault = { errno: 0, what: "" };
  /** Slots of this run's helper results, by buffer and byte offset: the same value gets the same address. */
  private readonly dynamicIndex = new Map<ArrayBufferLike, Map<number, number>>();

  constructor() {
    for (let k = 0; k < 8; k++)
      this.fixed[STACK_SLOT + k] = new Region(
        `stack frame ${k}`,
        new Uint8Array(STACK_BYTES),
        true,
        STACK_ORIGIN,
      );
  }

  /** Map `region` at a fixed slot (input, context, packet, a global). */
  mapFixed(slot: number, region: Region): bigint {
    if (slot < INPUT_SLOT || slot >= FUNC_SLOT) throw new RangeError(`slot ${slot} is not for fixed regions`);
    this.fixed[slot] = region;
    return addressOf(slot);
  }
  unmapFixed(slot: number): void {
    if (slot >= INPUT_SLOT && slot < FUNC_SLOT) this.fixed[slot] = undefined;
  }

  /**
   * Map a helper's result (a map value) for the rest of the run; the same
   * bytes returned twice in a run get the same address.
   */
  mapDynamic(region: Region): bigint {
    let byOffset = this.dynamicIndex.get(region.bytes.buffer);
    const known = byOffset?.get(region.bytes.byteOffset);
    if (known !== undefined) {
      const r = this.dynamic.get(known) as Region;
      if (r.size === region.size && r.writable === region.writable) return addressOf(known);
    }
    if (this.dynamic.size >= SLOT_LIMIT - DYNAMIC_FIRST)
      throw new BpfError("run", Errno.E2BIG, "too many helper results mapped in one run");
    let slot = this.nextDynamic;
    while (this.dynamic.has(slot)) slot = slot + 1 >= SLOT_LIMIT ? DYNAMIC_FIRST : slot + 1;
    this.nextDynamic = slot + 1 >= SLOT_LIMIT ? DYNAMIC_FIRST : slot + 1;
    this.dynamic.set(slot, region);
    if (byOffset === undefined) this.dynamicIndex.set(region.bytes.buffer, (byOffset = new Map()));
    byOffset.set(region.bytes.byteOffset, slot);
    return addressOf(slot);
  }

  /**
   * End of a run: helper results become unreachable. Their slots are not
   * reused until the counter wraps after ~2 million, so a stale pointer kept
   * in a map faults instead of reaching another value.
   */
  endRun(): void {
    this.dynamic.clear();
    this.dynamicIndex.clear();
    this.depth = 0;
  }

  /** Stack frame `k`'s region (zeroed when a call enters it). */
  frame(k: number): Region {
    return this.fixed[STACK_SLOT + k] as Region;
  }

  /**
   * The region holding [addr, addr + size), with `this.off` set to the
   * offset inside it; undefined (with `this.fault` set) when the access is
   * outside every region the program may touch or writes a read-only one.
   */
  resolve(addr: bigint, size: number, write: boolean): Region | undefined {
    const a = Number(addr);
    const slot = Math.floor(a / SLOT_BYTES);
    let r: Region | undefined;
    if (slot < DYNAMIC_FIRST) {
      r = this.fixed[slot];
      if (r !== undefined && slot >= STACK_SLOT && slot < STACK_SLOT + 8 && slot - STACK_SLOT > this.depth) {
        this.fault = {
          errno: Errno.EFAULT,
          what: `${write ? "write" : "read"} of ${size} bytes at ${hex(addr)}: stack frame ${slot - STACK_SLOT} is not live (the deepest call is frame ${this.depth})`,
        };
        return undefined;
      }
    } else if (slot < SLOT_LIMIT) r = this.dynamic.get(slot);
    if (r === undefined) {
      this.fault = {
        errno: Errno.EFAULT,
        what: `${write ? "write" : "read"} of ${size} bytes at ${hex(addr)}: ${this.describe(slot)}`,
      };
      return undefined;
    }
    const off = a - slot * SLOT_BYTES - r.origin;
    if (off < 0 || off + size > r.size) {
      this.fault = {
        errno: Errno.EFAULT,
        what: `${write ? "write" : "read"} of ${size} bytes at offset ${r.origin === STACK_ORIGIN ? `${off - STACK_BYTES} from the top` : off} of ${r.name} (${r.size} bytes): out of bounds`,
      };
      return undefined;
    }
    if (!this.allowed(r, off, size, write)) return undefined;
    this.off = off;
    return r;
  }

  /**
   * A write to a read-only region (EFAULT) or an access a context's rules
   * refuse (EACCES): false, with `this.fault` set.
   */
  private allowed(r: Region, off: number, size: number, write: boolean): boolean {
    if (write && !r.writable) {
      this.fault = { errno: Errno.EFAULT, what: `write of ${size} bytes into ${r.name}, which is read-only` };
      return false;
    }
    const why = r.check?.(off, size, write);
    if (why === undefined) return true;
    this.fault = {
      errno: Errno.EACCES,
      what: `${write ? "write" : "read"} of ${size} bytes at offset ${off} of ${r.name}: ${why}`,
    };
    return false;
  }

  /**
   * Checked bytes for a helper's pointer argument.
   * @throws BpfError EFAULT when [addr, addr + size) is not inside one region (or not writable when `write`)
   */
  bytes(op: string, addr: bigint, size: number, write: boolean): Uint8Array {
    if (size === 0) return new Uint8Array(0);
    const r = this.resolve(addr, size, write);
    if (r === undefined) throw new BpfError(op, this.fault.errno, this.fault.what);
    return r.bytes.subarray(this.off, this.off + size);
  }

  private describe(slot: number): string {
    if (slot === 0) return "NULL or a small number, not a pointer";
    if (slot === FUNC_SLOT) return "a function address, which is not readable";
    if (slot >= MAP_SLOT && slot < DYNAMIC_FIRST) return "a map handle, which is not readable";
    if (slot >= DYNAMIC_FIRST && slot < SLOT_LIMIT) return "a helper result of another run, no longer mapped";
    return "not in any region the program may touch";
  }
}
