/**
 * A loaded object's program, compiled: it runs over the object's one
 * memory (a MapDomain's shared WebAssembly.Memory) where its maps, its
 * globals and each CPU slot's run area live, so a pointer a helper returns
 * is the value's own address and programs pass stack pointers as keys.
 *
 * A CPU slot's area (CPU_AREA_BYTES, 1024-aligned), after the run area of
 * runtime.ts (frames, region table):
 *
 * | offset      | what                                                   |
 * |-------------|--------------------------------------------------------|
 * | CPU_CTX     | the context: a syscall program's bytes (at most CTX_BYTES) or struct xdp_md (data, data_end, data_meta as the packet's 32-bit addresses) |
 * | CPU_XDP_FRAGS | XDP: a u32, not 0 while the packet has fragments past its linear part (read by the compiled bpf_xdp_adjust_tail) |
 * | CPU_FRAME   | the XDP frame: 256 bytes of headroom, then the packet (xdp.ts) |
 * | CPU_INPUT   | a syscall run's context, copied in before each repeat      |
 * | CPU_KEYS    | keys bpf_for_each_map_elem passes to its callback       |
 *
 * Helpers and their errors are the interpreter's (object.ts), the map ones
 * on the same htab program face (lookupRef inside the run's section: a
 * value stays put while the run holds it).
 */

import type { Htab } from "../../core/htab.js";
import type { ValueRef } from "../../core/value-ref.js";
import { BpfError, Errno } from "../../errors.js";
import {
  LRU_NODE_REF_I32,
  roundUp,
  SCRATCH_BASE_I32,
  SCRATCH_CPU_I32,
  SCRATCH_DESC_BYTES,
  SCRATCH_ELEM_STRIDE_I32,
  SCRATCH_ELEMS_I32,
  SCRATCH_KEY_I32,
  SCRATCH_LRU_NODES_I32,
  SCRATCH_LRU_NUM_I32,
  SCRATCH_VALUE_OFF_I32,
} from "../../layout/layout.js";
import { lastTimeoutOwner, lockAcquire, lockRelease } from "../../sync/owner-lock.js";
import { lockTimeoutText } from "../../sync/spin.js";
import { MapFlags, MapType } from "../../uapi.js";
import type { WasmMemory } from "../../wasm/fast-path.js";
import { fastPathFor } from "../../wasm/fast-path.js";
import { baseHelpers, errnoRet, updateFlagsArg } from "../helpers.js";
import { BpfRunError } from "../interp.js";
import { decodeProgram, Helper, PseudoLd } from "../isa.js";
import { type ProgramDef, ProgType } from "../loader.js";
import { ETH_HLEN, FRAME_BYTES, FRAME_RESERVED, HEADROOM, MAX_LINEAR, XDP_MD_BYTES } from "../xdp.js";
import { type FastMap, VALUE_NO_LOCK, valueTag } from "./compile.js";
import { areaBytes, type CompiledHelperFn, CompiledVm, type MapShim } from "./runtime.js";

export const CPU_CTX = roundUp(areaBytes(), 64);
/** The largest syscall context a compiled program takes. */
export const CTX_BYTES = 4096;
/** XDP: not 0 while the packet has fragments (compile.ts RunLoop.frags), in the context's area after xdp_md. */
export const CPU_XDP_FRAGS = CPU_CTX + roundUp(XDP_MD_BYTES, 8);
export const CPU_FRAME = CPU_CTX + CTX_BYTES;
export const CPU_INPUT = CPU_FRAME + roundUp(FRAME_BYTES, 64);
export const CPU_KEYS = CPU_INPUT + roundUp(Math.max(FRAME_BYTES, CTX_BYTES), 64);
export const KEYS_BYTES = 4096;
/** Bytes of one CPU slot's area. */
export const CPU_AREA_BYTES = roundUp(CPU_KEYS + KEYS_BYTES, 1024);

/** A global section as the compiled program sees it. */
export interface GlobalLike {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly readonly: boolean;
}

/** What a compiled program needs of its loaded object. */
export interface CompiledObject {
  /** The object's maps by index (programs compiled reference only hash maps and globals). */
  readonly mapList: readonly (Htab | GlobalLike)[];
  /** The maps each run enters a program section of (object.ts `sectioned`). */
  readonly sectioned: readonly { enter(): void; exit(): void }[];
  readonly cpu: number;
  readonly memory: WasmMemory;
  /** Byte address of CPU slot `cpu`'s area. */
  areaOf(cpu: number): number;
  isHtab(m: Htab | GlobalLike): m is Htab;
  /** A global section (not a hash map, nor a map compiled programs do not reference). */
  isGlobal(m: Htab | GlobalLike): boolean;
  spinLockOffset(m: Htab): number;
  mapName(m: Htab): string;
}

const NO_BYTES = new Uint8Array(0);
/**
 * Runs per program section when a run repeats, as bpf_test_run() repeats
 * inside one RCU read-side section: the maps' reference records follow the
 * loop's run clock (programRuns()), so what a run deleted is reusable by the
 * next, as when the interpreter enters and leaves the sections around every
 * run (object.ts runOnce). Entering them around every run cost seed 003
 * about 100 ns a run (220 ns a run with 1, 80-100 with 16; the kernel 138).
 * 64, as a user measures it (`htab -j prog run … repeat 1000000`, fresh
 * process, three runs each): ct_lru 70-98 ns against 100-110 with 16,
 * seed 003 88-119 against 108-128 (the JS around each batch runs
 * unoptimized for the first ~150,000 runs, so fewer batches cost less).
 *
 * A program whose run once waited for a grace period inside its section
 * (an insert or replace that found only elements in limbo) gets one run per
 * section from then on: it holds its section open through such a wait, and
 * every thread that waits for a grace period waits for it in turn
 * (test/bpf/wasm/seed000.test.ts, whose writers wait so, took 36 s with 16
 * runs per section for every program, 5 s with 1).
 */
const SECTION_RUNS = 64;

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
  private keyTop = 0;
  /** struct xdp_md's words, in this slot's context (little-endian, as the host). */
  private readonly md: Uint32Array;
  /** An XDP run is on (the adjust helpers may act), and the packet's bytes past the linear part. */
  private xdpOn = false;
  private frags: Uint8Array = NO_BYTES;
  /**
   * The maps whose lookups run in wasm, with a test of whether this run was given element e's
   * value (its region table holds it): the view's reference record (held-refs.ts) cannot see them.
   */
  private readonly wasmGiven = new Map<Htab, (e: number) => boolean>();
  /** The object's hash maps, each with its wasm-lookup test or null: told of each batch (batch()). */
  private readonly runMaps: { m: Htab; given: ((e: number) => boolean) | null }[] = [];
  /** The memory's words, for the run clock (CompiledVm runClockWord). */
  private readonly clock: Int32Array;
  /** Runs per section: SECTION_RUNS until a run waited for a grace period in its section, then 1. */
  private sectionRuns = SECTION_RUNS;

  constructor(
    private readonly obj: CompiledObject,
    readonly def: ProgramDef,
    budget: number,
  ) {
    const calls = this.mapCalls();
    const helpers = new Map<number, CompiledHelperFn>(baseHelpers());
    for (const [id, fn] of this.mapHelpers(calls)) helpers.set(id, fn);
    const prog = decodeProgram(def.insns, {
      op: "load",
      helpers: (id) => helpers.has(id),
      pseudo: [PseudoLd.mapFd, PseudoLd.mapValue],
    });
    this.area = obj.areaOf(obj.cpu);
    this.md = new Uint32Array(obj.memory.buffer, this.area + CPU_CTX, XDP_MD_BYTES / 4);
    // The object's other maps (PROG_ARRAY, RINGBUF, ARRAY…) are only referenced by programs that run interpreted.
    const globals = obj.mapList.filter((m): m is GlobalLike => !obj.isHtab(m) && obj.isGlobal(m));
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
      shims: calls.shims,
      loop: {
        kind: def.type === ProgType.Xdp ? "xdp" : "ctx",
        input: this.area + CPU_INPUT,
        frame: def.type === ProgType.Xdp ? this.area + CPU_FRAME : this.area + CPU_CTX,
        md: this.area + CPU_CTX,
        headroom: HEADROOM,
        frags: this.area + CPU_XDP_FRAGS,
      },
      ...this.fastOptions(),
      regionName: (lo, entry) => this.regionName(globals, lo, entry),
      mapValue: (m, off) => {
        const g = obj.mapList[m];
        if (g === undefined || obj.isHtab(g))
          throw new BpfError("load", Errno.EINVAL, `map ${m} is not a global section`);
        if (off < 0 || off > g.bytes.length)
          throw new BpfError("load", Errno.EINVAL, `offset ${off} is outside ${g.name}`);
        return BigInt(g.bytes.byteOffset + off);
      },
    });
    this.clock = new Int32Array(obj.memory.buffer);
    for (const m of obj.mapList)
      if (obj.isHtab(m)) this.runMaps.push({ m, given: this.wasmGiven.get(m) ?? null });
  }

  /** `repeat` runs, `sectionRuns` per section (SECTION_RUNS: 1 from the first batch that waited for a grace period). */
  private repeatRuns(r1: bigint, repeat: number, len: number): void {
    for (let done = 0; done < repeat; ) {
      const n = Math.min(this.sectionRuns, repeat - done);
      const waits = this.graceWaits();
      try {
        this.batch(r1, n, len);
      } finally {
        if (this.sectionRuns > 1 && this.graceWaits() !== waits) this.sectionRuns = 1;
      }
      done += n;
    }
  }

  /** Grace periods the object's hash maps have waited for inside this thread's sections, so far. */
  private graceWaits(): number {
    // Indexed loops here and in batch(): a fresh process runs them unoptimized for its first
    // ~150,000 runs, where for-of makes an iterator each time.
    const rm = this.runMaps;
    let n = 0;
    for (let i = 0; i < rm.length; i++) n += rm[i].m.sectionGraceWaits;
    return n;
  }

  /**
   * The maps whose lookups run in wasm (HASH, PERCPU_HASH and LRU_HASH on
   * the common LRU, with word keys, on the fast path), with this slot's
   * descriptor read back from the memory, and fast-path.wat's lookup. A
   * PERCPU_HASH lookup gives the value of the CPU slot the map's view holds
   * (elem.ts valueAt(): CPU c's value c * roundUp(value_size, 8) bytes in);
   * an LRU_HASH hit sets its node's REF word, as ElemPolicy.touch() does.
   */
  private fastOptions(): {
    fastMaps?: Map<number, FastMap>;
    fpLookup?: (d: number, h: number, m: number) => number;
    lockOwner: number;
  } {
    const obj = this.obj;
    const lockOwner = (obj.cpu + 1) << 1;
    const fp = fastPathFor(obj.memory);
    if (fp === null) return { lockOwner };
    const u32 = new Uint32Array(obj.memory.buffer);
    const fastMaps = new Map<number, FastMap>();
    obj.mapList.forEach((m, i) => {
      if (!obj.isHtab(m) || m.info.keySize % 4 !== 0) return;
      const percpu = m.info.type === MapType.PercpuHash;
      const lru = m.info.type === MapType.LruHash;
      if (m.info.type !== MapType.Hash && !percpu && !lru) return;
      const key = m.keyScratchWords.byteOffset;
      const desc = key - SCRATCH_DESC_BYTES;
      const d = desc >>> 2;
      // The descriptor names this scratch key: the layout is the one read here.
      if (u32[d + SCRATCH_KEY_I32] !== key) return;
      // LRU_NODES is set for the common LRU only (BPF_F_NO_COMMON_LRU maps look up in JS).
      if (lru && u32[d + SCRATCH_LRU_NODES_I32] === 0) return;
      const valueOff =
        u32[(desc >>> 2) + SCRATCH_VALUE_OFF_I32] +
        (percpu ? u32[(desc >>> 2) + SCRATCH_CPU_I32] * roundUp(m.info.valueSize, 8) : 0);
      const values = u32[(desc >>> 2) + SCRATCH_BASE_I32] + valueOff;
      this.wasmGiven.set(m, (e) => this.vm.gaveValueAt(values + e * 4));
      fastMaps.set(i, {
        desc,
        key,
        keyWords: m.info.keySize / 4,
        base: u32[(desc >>> 2) + SCRATCH_BASE_I32],
        valueOff,
        valueSize: m.info.valueSize,
        writable: (m.info.flags & MapFlags.RdonlyProg) === 0,
        lock: obj.spinLockOffset(m),
        lru: lru
          ? {
              ref: u32[d + SCRATCH_LRU_NODES_I32] + LRU_NODE_REF_I32 * 4,
              elems: u32[d + SCRATCH_ELEMS_I32],
              elemStride: u32[d + SCRATCH_ELEM_STRIDE_I32],
              nodes: u32[d + SCRATCH_LRU_NUM_I32],
            }
          : undefined,
      });
    });
    return { fastMaps, fpLookup: fp.lookup, lockOwner };
  }

  /**
   * A region's name as the interpreter gives it (object.ts, xdp.ts): a
   * global's, the context's, the packet's, or a value of the map whose
   * bytes hold `lo`.
   */
  private regionName(globals: readonly GlobalLike[], lo: number, entry: number): string | undefined {
    if (entry < globals.length) return globals[entry].name;
    if (entry === globals.length) return this.def.type === ProgType.Xdp ? "xdp_md" : "ctx";
    if (entry === globals.length + 1 && this.def.type === ProgType.Xdp) return "packet";
    for (const m of this.obj.mapList) {
      if (!this.obj.isHtab(m)) continue;
      const at = m.handle.offset;
      const len = m.handle.length;
      if (at !== undefined && len !== undefined && lo >= at && lo < at + len)
        return `a value of map '${this.obj.mapName(m)}'`;
    }
    return undefined;
  }

  /** Lines bpf_trace_printk wrote. */
  get log(): readonly string[] {
    return this.vm.log;
  }

  private u8(at: number, n: number): Uint8Array {
    return this.vm.u8(at, n);
  }

  /**
   * Runs as BPF_PROG_TEST_RUN: `repeat` times, XDP on the packet the
   * previous repeat left, syscall on a fresh copy of `ctx`; the last run's results.
   */
  run(data: Uint8Array, ctxIn: Uint8Array | undefined, repeat: number): CompiledRunResult {
    const xdp = this.def.type === ProgType.Xdp;
    const ctxAt = this.area + CPU_CTX;
    const ctxLen = ctxIn?.length ?? 0;
    if (!xdp && ctxLen > CTX_BYTES)
      throw new BpfError("run", Errno.E2BIG, `a context of ${ctxLen} bytes, at most ${CTX_BYTES} here`);
    let packet: Uint8Array = new Uint8Array(0);
    let ctx: Uint8Array = new Uint8Array(0);
    // The input once; the loop copies it in before every run.
    let r1 = 0n;
    let len = 0;
    if (xdp) {
      // The frame once: every repeat runs on what the previous one left (bpf_test_run()).
      len = Math.min(data.length, MAX_LINEAR);
      this.u8(this.area + CPU_FRAME, HEADROOM).fill(0);
      this.u8(this.area + CPU_FRAME + HEADROOM, len).set(data.subarray(0, len));
      this.frags = len < data.length ? data.subarray(len) : NO_BYTES;
      this.vm.i32[(this.area + CPU_XDP_FRAGS) >>> 2] = this.frags.length > 0 ? 1 : 0;
      this.xdpOn = true;
      this.md[3] = 1; // ingress_ifindex: lo
      this.md[4] = 0;
      this.vm.setRunRegion(0, ctxAt, XDP_MD_BYTES, false);
      this.xdpMap(HEADROOM, HEADROOM + len);
      this.vm.setRunCount(2);
      r1 = BigInt(ctxAt);
    } else if (ctxIn !== undefined && ctxLen > 0) {
      len = ctxLen;
      this.vm.u8(this.area + CPU_INPUT, len).set(ctxIn);
      this.vm.setRunRegion(0, ctxAt, ctxLen, true);
      this.vm.setRunCount(1);
      r1 = BigInt(ctxAt);
    } else this.vm.setRunCount(0);
    const t0 = performance.now();
    try {
      this.repeatRuns(r1, repeat, len);
      if (xdp) packet = this.xdpOutput();
      else if (ctxLen > 0) ctx = this.u8(ctxAt, ctxLen).slice();
    } finally {
      this.xdpOn = false;
    }
    const duration = Math.round(((performance.now() - t0) * 1e6) / repeat);
    return { r0: this.vm.lastR0, data: packet, ctx, duration };
  }

  /**
   * `n` runs inside one program section on every map (as BPF_PROG_TEST_RUN
   * repeats inside one RCU read-side section): values a run was given stay
   * put until the section ends.
   */
  private batch(r1: bigint, n: number, len: number): void {
    const maps = this.obj.sectioned;
    let entered = 0;
    this.keyTop = 0;
    try {
      for (; entered < maps.length; entered++) maps[entered].enter();
      // References die with their run (the loop's clock), and a lookup in wasm hands out one
      // core/held-refs.ts never sees: an element whose value a run was given is not reused under it.
      const at = this.vm.runClockWord;
      const rm = this.runMaps;
      for (let i = 0; i < rm.length; i++) rm[i].m.programRuns(this.clock, at, rm[i].given);
      this.vm.runLoop(r1, n, len);
      if (this.vm.held !== 0)
        throw new BpfRunError(
          Errno.EINVAL,
          this.def.insns.length - 1,
          "exit",
          "the program exited holding a bpf_spin_lock",
        );
    } finally {
      const h = this.vm.held;
      if (h !== 0) {
        this.vm.held = 0;
        lockRelease(this.vm.i32, h >>> 2);
      }
      for (let i = entered - 1; i >= 0; i--) maps[i].exit();
    }
  }

  // ---- XDP: the frame in this slot's area; xdp_md's data and data_end words (32-bit addresses) say where the packet is

  private get xdpData(): number {
    return this.md[0] - (this.area + CPU_FRAME);
  }
  private get xdpEnd(): number {
    return this.md[1] - (this.area + CPU_FRAME);
  }

  /** Point xdp_md at [data, end) of the frame and make that the packet region. */
  private xdpMap(data: number, end: number): void {
    const frame = this.area + CPU_FRAME;
    const w = this.md;
    w[0] = frame + data;
    w[1] = frame + end;
    w[2] = frame + data;
    this.vm.setRunRegion(1, frame + data, end - data, true);
  }

  private xdpOutput(): Uint8Array {
    const data = this.xdpData;
    const end = this.xdpEnd;
    const out = new Uint8Array(end - data + this.frags.length);
    out.set(this.u8(this.area + CPU_FRAME + data, end - data));
    out.set(this.frags, end - data);
    return out;
  }

  private xdpCheck(ctx: bigint, op: string): void {
    if (!this.xdpOn || ctx !== BigInt(this.area + CPU_CTX))
      throw new BpfError(op, Errno.EFAULT, "r1 is not this XDP program's context");
  }

  private adjustHead: CompiledHelperFn = (_vm, ctx, delta) => {
    this.xdpCheck(ctx, "xdp_adjust_head");
    const end = this.xdpEnd;
    const data = this.xdpData + Number(BigInt.asIntN(32, delta));
    if (data < FRAME_RESERVED || data > end - ETH_HLEN) return errnoRet(Errno.EINVAL);
    this.xdpMap(data, end);
    return 0n;
  };

  private adjustTail: CompiledHelperFn = (_vm, ctx, d) => {
    this.xdpCheck(ctx, "xdp_adjust_tail");
    const delta = Number(BigInt.asIntN(32, d));
    if (delta === 0) return 0n;
    if (this.frags.length > 0)
      throw new BpfError(
        "xdp_adjust_tail",
        Errno.EOPNOTSUPP,
        "multi-buffer packets (over 3520 bytes) are not supported here",
      );
    const data = this.xdpData;
    const old = this.xdpEnd;
    const end = old + delta;
    if (end > FRAME_BYTES || end < data + ETH_HLEN) return errnoRet(Errno.EINVAL);
    if (end > old) this.u8(this.area + CPU_FRAME + old, end - old).fill(0);
    this.xdpMap(data, end);
    return 0n;
  };

  // ---- map helpers

  private mapArg(vm: CompiledVm, ptr: bigint, op: string): number {
    const m = vm.mapAt(ptr);
    if (m === undefined)
      throw new BpfError(op, Errno.EFAULT, `r1 0x${ptr.toString(16)} is not a map of this object`);
    return this.obj.mapList.indexOf(m as Htab | GlobalLike);
  }

  /** Map a value a helper found for the rest of the run; its address. */
  private give(vm: CompiledVm, m: Htab, ref: ValueRef): number {
    const bytes = ref._bytes();
    vm.addRegion(bytes.byteOffset, bytes.length, ref._progWritable, valueTag(this.obj.spinLockOffset(m)));
    return bytes.byteOffset;
  }

  /** The lock word at `a`: the bpf_spin_lock of a writable map value this run was given. */
  private lockAt(vm: CompiledVm, a: number, op: string): number {
    const r = vm.resolve(BigInt(a), 4, true);
    const e = r === null || r.entry < 0 ? null : vm.tableEntry(r.entry);
    if (e === null || e.tag === 0)
      throw new BpfError(op, Errno.EFAULT, `0x${a.toString(16)} is not in a map value`);
    if (e.tag === VALUE_NO_LOCK || a !== e.lo + e.tag - 1)
      throw new BpfError(op, Errno.EINVAL, `0x${a.toString(16)} is not the value's struct bpf_spin_lock`);
    return a;
  }

  /**
   * The helpers compiled code calls with numbers (compile.ts mapShims: map
   * index, 32-bit addresses), and the update behind shim 2 with flags of up
   * to 64 bits (for the generic helper). Made once per program.
   */
  private mapCalls(): {
    shims: Record<number, MapShim>;
    updateWide: (vm: CompiledVm, i: number, kp: number, vp: number, flags: number) => number;
  } {
    const obj = this.obj;
    // Keys and values copied out of the program's memory, one pair per map (the map copies them again).
    const keys = obj.mapList.map((m) => new Uint8Array(obj.isHtab(m) ? m.info.keySize : 4));
    const values = obj.mapList.map((m) => new Uint8Array(obj.isHtab(m) ? m.info.valueSize : 0));
    const lookup: MapShim = (vm, i, kp) => {
      const m = obj.mapList[i];
      if (!obj.isHtab(m)) {
        const k = vm.bytesAt("map_lookup_elem", kp, 4, false, keys[i]);
        if (k[0] | k[1] | k[2] | k[3]) return 0;
        return m.bytes.byteOffset;
      }
      const ref = m.lookupRef(vm.bytesAt("map_lookup_elem", kp, m.info.keySize, false, keys[i]));
      return ref === null ? 0 : this.give(vm, m, ref);
    };
    const update: MapShim = (vm, i, kp, vp, flags) => updateWide(vm, i, kp, vp, flags >>> 0);
    // `flags` as a number of up to 64 bits (the generic helper passes those the i32 shim cannot).
    const updateWide = (vm: CompiledVm, i: number, kp: number, vp: number, flags: number): number => {
      const m = obj.mapList[i];
      if (!obj.isHtab(m)) return -Errno.EOPNOTSUPP;
      const key = vm.bytesAt("map_update_elem", kp, m.info.keySize, false, keys[i]);
      const value = vm.bytesAt("map_update_elem", vp, m.info.valueSize, false, values[i]);
      return m.updateElemFromProgram(key, value, flags);
    };
    const del: MapShim = (vm, i, kp) => {
      const m = obj.mapList[i];
      if (!obj.isHtab(m)) return -Errno.EINVAL;
      return m.deleteElemFromProgram(vm.bytesAt("map_delete_elem", kp, m.info.keySize, false, keys[i]));
    };
    const owner = this.obj.cpu;
    const lock: MapShim = (vm, p) => {
      const a = this.lockAt(vm, p >>> 0, "spin_lock");
      if (vm.held !== 0)
        throw new BpfError("spin_lock", Errno.EINVAL, "a second bpf_spin_lock while one is held");
      if (!lockAcquire(vm.i32, a >>> 2, owner))
        throw new BpfError(
          "spin_lock",
          Errno.ETIMEDOUT,
          lockTimeoutText("the value's bpf_spin_lock", `held by CPU slot ${lastTimeoutOwner()}`),
        );
      vm.held = a;
      return 0;
    };
    const unlock: MapShim = (vm, p) => {
      const a = this.lockAt(vm, p >>> 0, "spin_unlock");
      if (vm.held !== a) throw new BpfError("spin_unlock", Errno.EINVAL, "this bpf_spin_lock is not held");
      vm.held = 0;
      lockRelease(vm.i32, a >>> 2);
      return 0;
    };
    return { shims: { 1: lookup, 2: update, 3: del, 93: lock, 94: unlock }, updateWide };
  }

  private mapHelpers({
    shims: sh,
    updateWide,
  }: ReturnType<CompiledProgram["mapCalls"]>): [number, CompiledHelperFn][] {
    const obj = this.obj;
    /** A pointer as the shims take it: one at or above 2^32 becomes NULL (it faults all the same). */
    const p32 = (p: bigint) => (p < 0x1_0000_0000n ? Number(p) : 0);
    const errno = (r: number) => BigInt.asUintN(64, BigInt(r));
    const lookup: CompiledHelperFn = (vm, mp, kp) =>
      BigInt(sh[1](vm, this.mapArg(vm, mp, "map_lookup_elem"), p32(kp), 0, 0) >>> 0);
    // Flags of 64 bits (updateFlagsArg()): what the i32 shim cannot take comes here.
    const update: CompiledHelperFn = (vm, mp, kp, vp, flags) =>
      errno(updateWide(vm, this.mapArg(vm, mp, "map_update_elem"), p32(kp), p32(vp), updateFlagsArg(flags)));
    const del: CompiledHelperFn = (vm, mp, kp) =>
      errno(sh[3](vm, this.mapArg(vm, mp, "map_delete_elem"), p32(kp), 0, 0));
    const lock: CompiledHelperFn = (vm, p) => BigInt(sh[93](vm, p32(p), 0, 0, 0));
    const unlock: CompiledHelperFn = (vm, p) => BigInt(sh[94](vm, p32(p), 0, 0, 0));
    const percpuLookup: CompiledHelperFn = (vm, mp, kp, cpu) => {
      const m = obj.mapList[this.mapArg(vm, mp, "map_lookup_percpu_elem")];
      if (!obj.isHtab(m))
        throw new BpfError("map_lookup_percpu_elem", Errno.EINVAL, "a global is not a per-CPU map");
      const key = vm.bytes("map_lookup_percpu_elem", kp, m.info.keySize, false);
      const ref = m.lookupPercpuRef(key.slice(), Number(BigInt.asUintN(32, cpu)));
      return ref === null ? 0n : BigInt(this.give(vm, m, ref));
    };
    const forEach: CompiledHelperFn = (vm, mp, fn, ctx, flags) => {
      const m = obj.mapList[this.mapArg(vm, mp, "for_each_map_elem")];
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
                ? BigInt(this.give(vm, m, own))
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
