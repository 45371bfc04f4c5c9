/**
 * A loaded object's program, compiled: it runs over the object's one
 * memory (a MapDomain's shared WebAssembly.Memory) where its maps, its
 * globals and each CPU slot's run area live, so a pointer a helper returns
 * is the value's own address and programs pass stack pointers as keys.
 *
 * A CPU slot's area (CPU_AREA_BYTES, 512-aligned), after the run area of
 * runtime.ts (frames, region table):
 *
 * | offset      | what                                                   |
 * |-------------|--------------------------------------------------------|
 * | CPU_CTX     | the context: a syscall program's bytes (at most CTX_BYTES) or struct xdp_md (data, data_end, data_meta as the packet's 32-bit addresses) |
 * | CPU_FRAME   | the XDP frame: 256 bytes of headroom, then the packet (xdp.ts) |
 * | CPU_KEYS    | keys bpf_for_each_map_elem passes to its callback       |
 *
 * Helpers and their errors are the interpreter's (object.ts), the map ones
 * on the same htab program face (lookupRef inside the run's section: a
 * value stays put while the run holds it).
 */

import type { Htab } from "../../core/htab.js";
import type { ValueRef } from "../../core/value-ref.js";
import { BpfError, Errno } from "../../errors.js";
import { roundUp } from "../../layout/layout.js";
import type { WasmMemory } from "../../wasm/fast-path.js";
import { baseHelpers, errnoRet } from "../helpers.js";
import { BpfRunError } from "../interp.js";
import { decodeProgram, Helper, PseudoLd } from "../isa.js";
import { type ProgramDef, ProgType } from "../loader.js";
import { ETH_HLEN, FRAME_BYTES, FRAME_RESERVED, HEADROOM, MAX_LINEAR, XDP_MD_BYTES } from "../xdp.js";
import { areaBytes, type CompiledHelperFn, CompiledVm } from "./runtime.js";

export const CPU_CTX = roundUp(areaBytes(), 64);
/** The largest syscall context a compiled program takes. */
export const CTX_BYTES = 4096;
export const CPU_FRAME = CPU_CTX + CTX_BYTES;
export const CPU_KEYS = CPU_FRAME + roundUp(FRAME_BYTES, 64);
export const KEYS_BYTES = 4096;
/** Bytes of one CPU slot's area. */
export const CPU_AREA_BYTES = roundUp(CPU_KEYS + KEYS_BYTES, 512);

/** A global section as the compiled program sees it. */
export interface GlobalLike {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly readonly: boolean;
}

/** What a compiled program needs of its loaded object. */
export interface CompiledObject {
  readonly mapList: readonly (Htab | GlobalLike)[];
  readonly htabs: readonly Htab[];
  readonly cpu: number;
  readonly memory: WasmMemory;
  /** Byte address of CPU slot `cpu`'s area. */
  areaOf(cpu: number): number;
  isHtab(m: Htab | GlobalLike): m is Htab;
  spinLockOffset(m: Htab): number;
  mapName(m: Htab): string;
}

/** A value a helper returned in this run. */
interface Held {
  lo: number;
  size: number;
  ref: ValueRef;
  lock: number;
}

export interface CompiledRunResult {
  r0: bigint;
  data: Uint8Array;
  ctx: Uint8Array;
  duration: number;
}

/** One compiled program of a loaded object, on the object's CPU slot. */
export class CompiledProgram {
  private readonly vm: CompiledVm;
  private readonly area: number;
  private held: Held | null = null;
  private readonly values: Held[] = [];
  private keyTop = 0;
  /** This run's XDP packet: offsets of data and data_end in the frame, the fragments. */
  private xdp: { data: number; end: number; frags: Uint8Array } | null = null;

  constructor(
    private readonly obj: CompiledObject,
    readonly def: ProgramDef,
    budget: number,
  ) {
    const helpers = new Map<number, CompiledHelperFn>(baseHelpers());
    for (const [id, fn] of this.mapHelpers()) helpers.set(id, fn);
    const prog = decodeProgram(def.insns, {
      op: "load",
      helpers: (id) => helpers.has(id),
      pseudo: [PseudoLd.mapFd, PseudoLd.mapValue],
    });
    this.area = obj.areaOf(obj.cpu);
    const globals = obj.mapList.filter((m): m is GlobalLike => !obj.isHtab(m));
    this.vm = new CompiledVm(prog, {
      memory: obj.memory,
      area: this.area,
      fixed: globals.map((g) => ({
        name: g.name,
        lo: g.bytes.byteOffset,
        size: g.bytes.length,
        writable: !g.readonly,
      })),
      helpers,
      budget,
      cpu: obj.cpu,
      maps: obj.mapList,
      mapValue: (m, off) => {
        const g = obj.mapList[m];
        if (g === undefined || obj.isHtab(g))
          throw new BpfError("load", Errno.EINVAL, `map ${m} is not a global section`);
        if (off < 0 || off > g.bytes.length)
          throw new BpfError("load", Errno.EINVAL, `offset ${off} is outside ${g.name}`);
        return BigInt(g.bytes.byteOffset + off);
      },
    });
  }

  /** Lines bpf_trace_printk wrote. */
  get log(): readonly string[] {
    return this.vm.log;
  }

  private u8(at: number, n: number): Uint8Array {
    return new Uint8Array(this.obj.memory.buffer, at, n);
  }

  /** Runs as BPF_PROG_TEST_RUN: `repeat` times on fresh copies of `data` / `ctx`; the last run's results. */
  run(data: Uint8Array, ctxIn: Uint8Array | undefined, repeat: number): CompiledRunResult {
    const xdp = this.def.type === ProgType.Xdp;
    const ctxAt = this.area + CPU_CTX;
    const ctxLen = ctxIn?.length ?? 0;
    if (!xdp && ctxLen > CTX_BYTES)
      throw new BpfError("run", Errno.E2BIG, `a context of ${ctxLen} bytes, at most ${CTX_BYTES} here`);
    let r0 = 0n;
    let packet: Uint8Array = new Uint8Array(0);
    let ctx: Uint8Array = new Uint8Array(0);
    const t0 = performance.now();
    for (let i = 0; i < repeat; i++) {
      let r1 = 0n;
      if (xdp) r1 = this.xdpStart(data);
      else if (ctxIn !== undefined && ctxLen > 0) {
        this.u8(ctxAt, ctxLen).set(ctxIn);
        this.vm.setRunRegions([{ name: "ctx", lo: ctxAt, size: ctxLen, writable: true }]);
        r1 = BigInt(ctxAt);
      } else this.vm.setRunRegions([]);
      r0 = this.runOnce(r1);
      if (xdp) packet = this.xdpOutput();
      else if (ctxLen > 0) ctx = this.u8(ctxAt, ctxLen).slice();
    }
    const duration = Math.round(((performance.now() - t0) * 1e6) / repeat);
    this.xdp = null;
    return { r0, data: packet, ctx, duration };
  }

  private runOnce(r1: bigint): bigint {
    const maps = this.obj.htabs;
    let entered = 0;
    this.values.length = 0;
    this.keyTop = 0;
    try {
      for (const m of maps) {
        m.enter();
        entered++;
      }
      const r0 = this.vm.run([r1]);
      if (this.held !== null)
        throw new BpfRunError(
          Errno.EINVAL,
          this.def.insns.length - 1,
          "exit",
          "the program exited holding a bpf_spin_lock",
        );
      return r0;
    } finally {
      if (this.held !== null) {
        const h = this.held;
        this.held = null;
        h.ref.unlock();
      }
      this.values.length = 0;
      for (let i = entered - 1; i >= 0; i--) maps[i].exit();
    }
  }

  // ---- XDP: the frame in this slot's area, xdp_md's pointers as 32-bit addresses

  private xdpStart(input: Uint8Array): bigint {
    const frame = this.area + CPU_FRAME;
    const linear = Math.min(input.length, MAX_LINEAR);
    this.u8(frame, FRAME_BYTES).fill(0);
    this.u8(frame + HEADROOM, linear).set(input.subarray(0, linear));
    this.xdp = { data: HEADROOM, end: HEADROOM + linear, frags: input.subarray(linear) };
    this.xdpMap();
    return BigInt(this.area + CPU_CTX);
  }

  /** Point xdp_md at [data, data_end) and make that the packet region. */
  private xdpMap(): void {
    const x = this.xdp as { data: number; end: number };
    const frame = this.area + CPU_FRAME;
    const md = this.area + CPU_CTX;
    const dv = new DataView(this.obj.memory.buffer, md, XDP_MD_BYTES);
    dv.setUint32(0, frame + x.data, true);
    dv.setUint32(4, frame + x.end, true);
    dv.setUint32(8, frame + x.data, true);
    dv.setUint32(12, 1, true); // ingress_ifindex: lo
    dv.setUint32(16, 0, true);
    this.vm.setRunRegions([
      { name: "xdp_md", lo: md, size: XDP_MD_BYTES, writable: false },
      { name: "packet", lo: frame + x.data, size: x.end - x.data, writable: true },
    ]);
  }

  private xdpOutput(): Uint8Array {
    const x = this.xdp as { data: number; end: number; frags: Uint8Array };
    const out = new Uint8Array(x.end - x.data + x.frags.length);
    out.set(this.u8(this.area + CPU_FRAME + x.data, x.end - x.data));
    out.set(x.frags, x.end - x.data);
    return out;
  }

  private xdpOf(ctx: bigint, op: string): { data: number; end: number; frags: Uint8Array } {
    if (this.xdp === null || ctx !== BigInt(this.area + CPU_CTX))
      throw new BpfError(op, Errno.EFAULT, "r1 is not this XDP program's context");
    return this.xdp;
  }

  private adjustHead: CompiledHelperFn = (_vm, ctx, delta) => {
    const x = this.xdpOf(ctx, "xdp_adjust_head");
    const data = x.data + Number(BigInt.asIntN(32, delta));
    if (data < FRAME_RESERVED || data > x.end - ETH_HLEN) return errnoRet(Errno.EINVAL);
    x.data = data;
    this.xdpMap();
    return 0n;
  };

  private adjustTail: CompiledHelperFn = (_vm, ctx, d) => {
    const x = this.xdpOf(ctx, "xdp_adjust_tail");
    const delta = Number(BigInt.asIntN(32, d));
    if (delta === 0) return 0n;
    if (x.frags.length > 0)
      throw new BpfError(
        "xdp_adjust_tail",
        Errno.EOPNOTSUPP,
        "multi-buffer packets (over 3520 bytes) are not supported here",
      );
    const end = x.end + delta;
    if (end > FRAME_BYTES || end < x.data + ETH_HLEN) return errnoRet(Errno.EINVAL);
    if (end > x.end) this.u8(this.area + CPU_FRAME + x.end, end - x.end).fill(0);
    x.end = end;
    this.xdpMap();
    return 0n;
  };

  // ---- map helpers

  private mapArg(vm: CompiledVm, ptr: bigint, op: string): Htab | GlobalLike {
    const m = vm.mapAt(ptr) as Htab | GlobalLike | undefined;
    if (m === undefined)
      throw new BpfError(op, Errno.EFAULT, `r1 0x${ptr.toString(16)} is not a map of this object`);
    return m;
  }

  /** Map a value a helper found for the rest of the run; its address. */
  private give(vm: CompiledVm, m: Htab, ref: ValueRef): bigint {
    const bytes = ref._bytes();
    const lo = bytes.byteOffset;
    const lock = this.obj.spinLockOffset(m);
    if (!this.values.some((v) => v.lo === lo)) this.values.push({ lo, size: bytes.length, ref, lock });
    return vm.addRegion(lo, bytes.length, ref._progWritable);
  }

  private lockOf(p: bigint, op: string): Held {
    const a = Number(BigInt.asUintN(64, p));
    const v = this.values.find((x) => a >= x.lo && a + 4 <= x.lo + x.size);
    if (v === undefined) throw new BpfError(op, Errno.EFAULT, `0x${p.toString(16)} is not in a map value`);
    if (v.lock < 0 || a !== v.lo + v.lock)
      throw new BpfError(op, Errno.EINVAL, `0x${p.toString(16)} is not the value's struct bpf_spin_lock`);
    return v;
  }

  private mapHelpers(): [number, CompiledHelperFn][] {
    const obj = this.obj;
    const lookup: CompiledHelperFn = (vm, mp, kp) => {
      const m = this.mapArg(vm, mp, "map_lookup_elem");
      if (!obj.isHtab(m)) {
        const k = vm.bytes("map_lookup_elem", kp, 4, false);
        if (k[0] | k[1] | k[2] | k[3]) return 0n;
        return BigInt(m.bytes.byteOffset);
      }
      const key = vm.bytes("map_lookup_elem", kp, m.info.keySize, false);
      const ref = m.lookupRef(key.slice());
      return ref === null ? 0n : this.give(vm, m, ref);
    };
    const update: CompiledHelperFn = (vm, mp, kp, vp, flags) => {
      const m = this.mapArg(vm, mp, "map_update_elem");
      if (!obj.isHtab(m)) return errnoRet(Errno.EOPNOTSUPP);
      const key = vm.bytes("map_update_elem", kp, m.info.keySize, false).slice();
      const value = vm.bytes("map_update_elem", vp, m.info.valueSize, false).slice();
      return errnoRet(-m.updateElemFromProgram(key, value, Number(BigInt.asUintN(32, flags))));
    };
    const del: CompiledHelperFn = (vm, mp, kp) => {
      const m = this.mapArg(vm, mp, "map_delete_elem");
      if (!obj.isHtab(m)) return errnoRet(Errno.EINVAL);
      const key = vm.bytes("map_delete_elem", kp, m.info.keySize, false).slice();
      return errnoRet(-m.deleteElem(key));
    };
    const lock: CompiledHelperFn = (_vm, p) => {
      const v = this.lockOf(p, "spin_lock");
      if (this.held !== null)
        throw new BpfError("spin_lock", Errno.EINVAL, "a second bpf_spin_lock while one is held");
      v.ref.lock();
      this.held = v;
      return 0n;
    };
    const unlock: CompiledHelperFn = (_vm, p) => {
      const v = this.lockOf(p, "spin_unlock");
      if (this.held === null || this.held.lo !== v.lo)
        throw new BpfError("spin_unlock", Errno.EINVAL, "this bpf_spin_lock is not held");
      const h = this.held;
      this.held = null;
      h.ref.unlock();
      return 0n;
    };
    const percpuLookup: CompiledHelperFn = (vm, mp, kp, cpu) => {
      const m = this.mapArg(vm, mp, "map_lookup_percpu_elem");
      if (!obj.isHtab(m))
        throw new BpfError("map_lookup_percpu_elem", Errno.EINVAL, "a global is not a per-CPU map");
      const key = vm.bytes("map_lookup_percpu_elem", kp, m.info.keySize, false);
      const ref = m.lookupPercpuRef(key.slice(), Number(BigInt.asUintN(32, cpu)));
      return ref === null ? 0n : this.give(vm, m, ref);
    };
    const forEach: CompiledHelperFn = (vm, mp, fn, ctx, flags) => {
      const m = this.mapArg(vm, mp, "for_each_map_elem");
      if (!obj.isHtab(m)) return errnoRet(Errno.EOPNOTSUPP);
      if (flags !== 0n) return errnoRet(Errno.EINVAL);
      const pc = vm.functionAt(fn);
      if (pc < 0)
        throw new BpfError(
          "for_each_map_elem",
          Errno.EFAULT,
          `callback 0x${fn.toString(16)} is not a function of this program`,
        );
      const ks = m.info.keySize;
      const slot = roundUp(this.keyTop, 8);
      if (slot + ks > KEYS_BYTES)
        throw new BpfError("for_each_map_elem", Errno.E2BIG, "for_each calls nested too deep for their keys");
      const keyAt = this.area + CPU_KEYS + slot;
      this.keyTop = slot + ks;
      try {
        return BigInt(
          m.forEachElem((_m, key, ref) => {
            // The walk reuses `ref` for the next element: a value the callback may lock gets its own reference.
            const own = m.lookupRef(key.slice());
            this.u8(keyAt, ks).set(key);
            const k = vm.addRegion(keyAt, ks, false);
            const v =
              own !== null
                ? this.give(vm, m, own)
                : vm.addRegion(ref._bytes().byteOffset, ref.size, ref._progWritable);
            const r = vm.callback(pc, [mp, k, v, ctx]);
            if (r !== 0n && r !== 1n)
              throw new BpfError(
                "for_each_map_elem",
                Errno.EINVAL,
                `the callback returned ${r}, not 0 (go on) or 1 (stop)`,
              );
            return Number(r);
          }, undefined),
        );
      } finally {
        this.keyTop = slot;
      }
    };
    return [
      [Helper.xdpAdjustHead, this.adjustHead],
      [Helper.xdpAdjustTail, this.adjustTail],
      [Helper.mapLookupElem, lookup],
      [Helper.mapLookupPercpuElem, percpuLookup],
      [Helper.forEachMapElem, forEach],
      [Helper.mapUpdateElem, update],
      [Helper.mapDeleteElem, del],
      [Helper.spinLock, lock],
      [Helper.spinUnlock, unlock],
    ];
  }
}
