/**
 * A loaded BPF object on the shared-memory backend: its `.maps` as htab
 * maps (`Htab`), its globals as byte regions, its programs runnable by name
 * in the reference interpreter, with the map helpers on htab's program face.
 *
 * Helpers, with the kernel's ids and return conventions:
 * - 1 `bpf_map_lookup_elem(map, key)`: a program-face lookup (`lookupRef`,
 *   which sets the LRU reference bit) inside the program's section; the
 *   value is mapped for the rest of the run, exactly value_size bytes
 *   (read-only under BPF_F_RDONLY_PROG); NULL (0) when absent. On a global's
 *   ARRAY map, key 0 gives the global.
 * - 2 `bpf_map_update_elem(map, key, value, flags)`: `updateElemFromProgram`
 *   (a per-CPU map writes this CPU's slot); 0 or a negative errno.
 * - 3 `bpf_map_delete_elem(map, key)`: 0 or a negative errno.
 * - 93/94 `bpf_spin_lock`/`bpf_spin_unlock(lock)`: the `bpf_spin_lock` word
 *   of a value a lookup returned (ValueRef.lock/unlock, bounded at 250 ms:
 *   ETIMEDOUT stops the run). A second lock while one is held, an unlock of
 *   a lock not held, or an exit still holding one stops the run (EINVAL),
 *   where the kernel's verifier would have refused the program; a lock held
 *   when a run stops is released.
 * - 164 `bpf_for_each_map_elem(map, callback, ctx, flags)`: htab's walk
 *   (forEachElem); the callback gets the map, the key (read-only) and the
 *   value, returns 0 to go on or 1 to stop (anything else stops the run,
 *   EINVAL); returns the elements visited; flags must be 0 (-EINVAL).
 * - 195 `bpf_map_lookup_percpu_elem(map, key, cpu)`: CPU `cpu`'s value of a
 *   per-CPU map, or NULL (a CPU out of range included).
 * - 44/65/189 `bpf_xdp_adjust_head`/`bpf_xdp_adjust_tail(ctx, delta)`,
 *   `bpf_xdp_load_bytes`: xdp.ts; 26 `bpf_skb_load_bytes`: skb.ts.
 * - 12 `bpf_tail_call(ctx, prog_array, index)`: a PROG_ARRAY of this object
 *   (prog-array.ts); the target runs in the caller's frame and its r0 is the
 *   caller's (the rest of the caller never runs). It falls through (r0 = 0;
 *   the verifier makes r0 unreadable there) for an index at or past
 *   max_entries, after 33 tail calls in the run (MAX_TAIL_CALL_CNT; the
 *   count goes up before the slot is read, as in the kernel), or for an
 *   empty slot.
 * - A lookup in an ARRAY_OF_MAPS / HASH_OF_MAPS gives the inner map (a map
 *   pointer for the map helpers; NULL for an empty slot), entered into the
 *   run's section until it ends; programs cannot update or delete in outer
 *   maps (the verifier refuses it; here the run stops, EINVAL).
 * - and the map-free helpers of helpers.ts (5, 6, 7, 8, 28, 181).
 *
 * Every run is one program section on every map of the object (enter()
 * before, exit() after): an element a lookup returned is not reused under
 * the program while it runs, even if another worker deletes it.
 *
 * Contexts, as BPF_PROG_TEST_RUN builds them:
 * - XDP: `struct xdp_md` and the packet (a copy of `data`, at least 14
 *   bytes, else EINVAL) in test_run's frame: xdp.ts (checked against the
 *   kernel in test/bpf/object.test.ts). The packet after the run comes back
 *   as `data`.
 * - syscall: the caller's `ctx` bytes, writable, returned as `ctx`.
 * - socket filter and tc (SCHED_CLS): `struct __sk_buff` and the packet as
 *   test_run's skb: skb.ts (the fields filled, the verifier's access rules).
 * - tracepoint (`tracepoint/…`, `tp/…`): the caller's `ctx` bytes, read-only
 *   (a raw tracepoint record). This backend only: the kernel's
 *   BPF_PROG_TEST_RUN has no test run for tracepoint programs (ENOTSUPP).
 *
 * All of an object's maps live in one MapDomain (`domain`), so inner maps
 * of a map-in-map are reached by id from any thread; the initial slots of
 * `.values = { … }` are filled at load.
 *
 * Globals (`.data`, `.bss`, `.rodata`, `.data.*`, `.rodata.*`) are
 * single-element ARRAY maps named as libbpf names them (`<obj>.bss`), with
 * the section's initial bytes; `.rodata*` is BPF_F_RDONLY_PROG and frozen at
 * load, as libbpf freezes it. From TypeScript, `global(name)` gives the
 * section (its bytes and variables, live views of the map's element) and
 * `global(name).map` the ArrayMap; programs reach the bytes by address
 * (ld_imm64 of the map value) and through the map helpers.
 *
 * Engines (`engine`, LoadOptions): "compiled" runs programs as WebAssembly
 * (wasm/program.ts) over the domain's shared wasm memory, where the maps and
 * the globals' ArrayMap elements already live (a global's address is its
 * element's byte offset), plus one raw region of the domain (DOM_RAW_TYPE)
 * holding each CPU slot's run area (stack, region table, context, XDP
 * frame). "interpreter" runs them in the reference interpreter (interp.ts).
 * The interpreter always decodes and checks each program at load (its
 * refusals are the load's); the compiler then takes the programs it handles:
 * XDP and syscall programs whose maps are hash maps or globals (by address),
 * calling only the map-free helpers, the hash-map helpers, the spin locks
 * and the XDP adjust helpers. Any other program (socket filter, tc,
 * tracepoint, a tail call, a ringbuf helper, an ARRAY, PROG_ARRAY, RINGBUF
 * or map-in-map reference, a global passed as a map, bpf_xdp_load_bytes,
 * or one the compiler refuses) runs in the interpreter: chosen once per
 * program at load (`LoadedProgram.engine` says which), on the same maps, with
 * the same results. A compiled syscall program given a context over
 * CTX_BYTES (4 KiB) runs that call in the interpreter. @default "compiled"
 * where shared WebAssembly memories exist, else "interpreter"
 */

import { ArrayMap } from "../array/array-map.js";
import { validateArraySpec } from "../array/spec.js";
import { Htab } from "../core/htab.js";
import { defaultNrCpus, validateSpec } from "../core/spec.js";
import type { ValueRef } from "../core/value-ref.js";
import type { OuterMap } from "../domain/inner.js";
import { type DomainHandle, MapDomain } from "../domain/map-domain.js";
import { BpfError, Errno } from "../errors.js";
import { aomBytes, domDataBytes, roundUp } from "../layout/layout.js";
import type { RawMap } from "../map/raw-map.js";
import { MapType } from "../uapi.js";
import { baseHelpers, errnoRet, updateFlagsArg } from "./helpers.js";
import { BpfRunError, DEFAULT_BUDGET, type HelperFn, Vm } from "./interp.js";
import { decodeProgram, Helper, PseudoLd } from "./isa.js";
import {
  type BpfObjectSpec,
  type GlobalVar,
  type MapDef,
  type OpenOptions,
  openObject,
  type ProgramDef,
  ProgType,
} from "./loader.js";
import {
  addressOf,
  CTX_SLOT,
  FUNC_SLOT,
  GLOBAL_SLOT,
  MAP_SLOT,
  Memory,
  PACKET_SLOT,
  Region,
} from "./memory.js";
import { ProgArray } from "./prog-array.js";
import { RB_FORCE_WAKEUP, RB_NO_WAKEUP, RingBuf } from "./ringbuf.js";
import { checkSkbInput, SkbPacket, skbHelpers } from "./skb.js";
import { type CompiledObject, CompiledProgram, CPU_AREA_BYTES, CTX_BYTES } from "./wasm/program.js";
import { compiledAvailable } from "./wasm/runtime.js";
import { XdpPacket, xdpHelpers } from "./xdp.js";

/** A value a helper returned: the region and the element reference behind it. */
class ValueRegion extends Region {
  constructor(
    name: string,
    readonly ref: ValueRef,
    readonly lockOffset: number,
  ) {
    super(name, ref._bytes(), ref._progWritable);
  }
}

/** The key of a global section's only element. */
const GLOBAL_KEY = new Uint8Array(4);

/**
 * A global section's bytes now, from its single-element ARRAY map (either
 * backend's). @throws BpfError with the map's errno
 */
export function readGlobal(map: RawMap, section: string): Uint8Array {
  const out = new Uint8Array(map.info.valueSize);
  const r = map.lookupElem(GLOBAL_KEY, out);
  if (r !== 0) throw new BpfError("global", -r, `${section}: ${map.lastError}`);
  return out;
}

/**
 * Write `bytes` at byte `offset` of a global section, as one update of its
 * map's element. @throws BpfError EINVAL for bytes past the section, the map's errno (EPERM: a frozen `.rodata`)
 */
export function writeGlobal(map: RawMap, section: string, bytes: Uint8Array, offset: number): void {
  const cur = readGlobal(map, section);
  if (!Number.isInteger(offset) || offset < 0 || offset + bytes.length > cur.length)
    throw new BpfError(
      "global",
      Errno.EINVAL,
      `${bytes.length} bytes at ${offset} do not fit ${section} (${cur.length} bytes)`,
    );
  cur.set(bytes, offset);
  const r = map.updateElem(GLOBAL_KEY, cur, 0);
  if (r !== 0) throw new BpfError("global", -r, `${section}: ${map.lastError}`);
}

/** A global section (`.data`, `.bss`, `.rodata`, …) of a loaded object: a one-element ARRAY map. */
export class GlobalSection {
  /** The section's bytes, as programs see them: a live view of the map's only element. */
  readonly bytes: Uint8Array;
  constructor(
    readonly name: string,
    readonly section: string,
    /** The single-element ARRAY map holding the section (`.rodata*`: BPF_F_RDONLY_PROG, frozen). */
    readonly map: ArrayMap,
    readonly readonly: boolean,
    readonly vars: readonly GlobalVar[],
  ) {
    this.bytes = map._valueView(0);
  }
  /** A copy of the section's bytes now (an untorn lookup of the map's element). */
  read(): Uint8Array {
    return readGlobal(this.map, this.section);
  }
  /**
   * Write `bytes` at byte `offset` of the section (what the next run sees), as
   * one update of the map's element.
   * @throws BpfError EPERM for a frozen `.rodata` (as the kernel answers)
   */
  write(bytes: Uint8Array, offset = 0): void {
    writeGlobal(this.map, this.section, bytes, offset);
  }
  /** The bytes of variable `name` (a view: writes show in the next run). */
  variable(name: string): Uint8Array {
    const v = this.vars.find((x) => x.name === name);
    if (!v) throw new BpfError("global", Errno.ENOENT, `no variable '${name}' in ${this.section}`);
    return this.bytes.subarray(v.offset, v.offset + v.size);
  }
}

export interface LoadOptions extends OpenOptions {
  /** Executed-instruction budget per run (default DEFAULT_BUDGET). */
  budget?: number;
  /** Number of CPU slots of the object's maps (default: htab's default). */
  nrCpus?: number;
  /** This thread's CPU slot in the object's maps. @default the first free slot (0) */
  cpu?: number;
  /**
   * The object's MapDomain: room for maps made later (inner maps to swap in)
   * beyond the object's own. @default 64 more maps, and twice the object's maps' bytes plus 1 MiB
   */
  domain?: { maxMaps?: number; maxBytes?: number };
  /**
   * How programs run: "compiled" to WebAssembly over the domain's shared
   * memory (needs wasm threads; programs the compiler does not handle run
   * interpreted, see the module doc), or all in the reference "interpreter".
   * @default "compiled" where shared WebAssembly memories exist, else "interpreter"
   */
  engine?: "compiled" | "interpreter";
}

/** The kernel's MAX_TAIL_CALL_CNT. */
export const MAX_TAIL_CALLS = 33;

/**
 * What a worker needs to run a loaded object's programs on the same maps and
 * globals (structured-cloneable: post it). `LoadedObject.attach(handle, { cpu })`.
 */
export interface ObjectHandle {
  readonly spec: BpfObjectSpec;
  /** The MapDomain holding the object's maps. */
  readonly domain: DomainHandle;
  /** Per map of `spec.maps`: its id in the domain (a global's is its ARRAY map's), a PROG_ARRAY's slots or a RINGBUF's ring. */
  readonly maps: readonly (
    | { id: number }
    | { progArray: SharedArrayBuffer }
    | { ringbuf: SharedArrayBuffer }
  )[];
  /** A compiled object's raw region of per-CPU run areas (absent: the object runs interpreted). */
  readonly raw?: number;
}

/** An object's map as programs see it. */
export type ObjMap = Htab | ArrayMap | GlobalSection | OuterMap | ProgArray | RingBuf;

/** What one run (and the programs it tail-calls) shares. */
interface RunState {
  xdp: XdpPacket | null;
  skb: SkbPacket | null;
  /** The spin lock this run holds. */
  held: ValueRegion | null;
  tailCalls: number;
  /** Ringbuf records reserved and not yet submitted or discarded, by the address the program got. */
  records: Map<bigint, { rb: RingBuf; at: number }>;
}

export interface RunOptions {
  /** The context for a syscall program (writable) or a tracepoint program (read-only). */
  ctx?: Uint8Array;
  /** Runs (the result is the last one's; duration is averaged). @default 1 */
  repeat?: number;
  /**
   * Run on this CPU slot: bpf_get_smp_processor_id() answers it and per-CPU
   * maps use its slot (the object's maps are attached for it once, on first
   * use). @default the object's own slot
   */
  cpu?: number;
}

export interface RunResult {
  /** r0's low 32 bits, unsigned, as BPF_PROG_TEST_RUN reports it. */
  retval: number;
  /** r0, all 64 bits. */
  r0: bigint;
  /** The packet after the run (XDP, socket filter, tc), or empty. */
  data: Uint8Array;
  /** The context after the run (syscall), or empty. */
  ctx: Uint8Array;
  /** Nanoseconds per run, averaged over `repeat`. */
  duration: number;
}

const HASH_TYPES = new Set<number>([
  MapType.Hash,
  MapType.PercpuHash,
  MapType.LruHash,
  MapType.LruPercpuHash,
]);
const ARRAY_TYPES = new Set<number>([MapType.Array, MapType.PercpuArray]);
const OUTER_TYPES = new Set<number>([MapType.ArrayOfMaps, MapType.HashOfMaps]);
/** Helpers only some program types may call (the kernel's func_proto per type), by id. */
const TYPED_HELPERS = new Map<number, number[]>([
  [Helper.xdpAdjustHead, [ProgType.Xdp]],
  [Helper.xdpAdjustTail, [ProgType.Xdp]],
  [Helper.xdpLoadBytes, [ProgType.Xdp]],
  [Helper.skbLoadBytes, [ProgType.SocketFilter, ProgType.SchedCls]],
  [Helper.csumDiff, [ProgType.Xdp, ProgType.SchedCls]],
]);
const PROG_ARRAY = 3;
const RINGBUF = 27;
const isOuter = (m: unknown): m is OuterMap =>
  m !== null && typeof m === "object" && typeof (m as OuterMap).lookupInner === "function";
/** The helpers compiled programs call (wasm/program.ts): the map-free ones, hash maps, spin locks, XDP adjust. */
const COMPILED_HELPERS = new Set<number>([
  ...baseHelpers().keys(),
  Helper.mapLookupElem,
  Helper.mapUpdateElem,
  Helper.mapDeleteElem,
  Helper.mapLookupPercpuElem,
  Helper.forEachMapElem,
  Helper.spinLock,
  Helper.spinUnlock,
  Helper.xdpAdjustHead,
  Helper.xdpAdjustTail,
]);
const LD_IMM64 = 0x18;
const CALL = 0x85;

/**
 * Whether the compiler handles `def` (module doc, Engines): an XDP or
 * syscall program calling only COMPILED_HELPERS, whose map references are
 * hash maps, and globals only by address (a global's map pointer, which
 * the map helpers would take as an ARRAY map, stays interpreted).
 */
function compilable(def: ProgramDef, maps: readonly ObjMap[]): boolean {
  if (def.type !== ProgType.Xdp && def.type !== ProgType.Syscall) return false;
  for (const x of def.insns) {
    if (x.code === CALL && x.src === 0 && !COMPILED_HELPERS.has(x.imm >>> 0)) return false;
    if (x.code !== LD_IMM64) continue;
    const m = x.src === PseudoLd.mapFd || x.src === PseudoLd.mapValue ? maps[x.imm] : undefined;
    if (m === undefined) continue;
    if (m instanceof GlobalSection ? x.src !== PseudoLd.mapValue : !(m instanceof Htab)) return false;
  }
  return true;
}

/** One program of a loaded object. */
export class LoadedProgram {
  /** @internal */
  readonly vm: Vm;
  /** The compiled program, when this program runs compiled. */
  private readonly compiled: CompiledProgram | null = null;

  constructor(
    private readonly obj: LoadedObject,
    readonly def: ProgramDef,
    budget: number,
  ) {
    const helpers = new Map<number, HelperFn>(baseHelpers());
    for (const [id, fn] of this.mapHelpers()) helpers.set(id, fn);
    for (const [id, types] of TYPED_HELPERS) if (!types.includes(def.type)) helpers.delete(id);
    for (let i = 0; i < def.insns.length; i++) {
      const x = def.insns[i];
      const id = x.imm >>> 0;
      if (x.code === 0x85 && x.src === 0 && TYPED_HELPERS.has(id) && !helpers.has(id))
        throw new BpfError(
          "load",
          Errno.EINVAL,
          `program '${def.name}', insn ${i}: program type ${def.type} (section '${def.section}') cannot use helper #${id}, as the kernel's verifier says`,
        );
    }
    let prog: ReturnType<typeof decodeProgram>;
    try {
      prog = decodeProgram(def.insns, {
        op: "load",
        helpers: (id) => helpers.has(id),
        pseudo: [PseudoLd.mapFd, PseudoLd.mapValue],
      });
    } catch (e) {
      if (!(e instanceof BpfError)) throw e;
      throw new BpfError("load", e.errno, `program '${def.name}' (section '${def.section}'), ${e.detail}`);
    }
    this.vm = new Vm(prog, {
      helpers,
      budget,
      mem: obj.mem,
      maps: obj.mapList,
      mapValue: (m, off) => {
        const g = obj.mapList[m];
        if (!(g instanceof GlobalSection))
          throw new BpfError("load", Errno.EINVAL, `map ${m} is not a global section`);
        if (off < 0 || off > g.bytes.length)
          throw new BpfError("load", Errno.EINVAL, `offset ${off} is outside ${g.name}`);
        return addressOf(GLOBAL_SLOT + obj.globalSlot(g), off);
      },
    });
    const view = obj.compiledView;
    if (view !== null && compilable(def, obj.mapList))
      try {
        this.compiled = new CompiledProgram(view, def, budget);
      } catch (e) {
        // A program the compiler refuses (the interpreter took it): it runs interpreted.
        if (!(e instanceof BpfError)) throw e;
      }
  }

  get name(): string {
    return this.def.name;
  }

  /** How this program runs: "compiled" (WebAssembly) or "interpreter" (chosen at load). */
  get engine(): "compiled" | "interpreter" {
    return this.compiled === null ? "interpreter" : "compiled";
  }

  /** Lines bpf_trace_printk wrote. */
  get log(): readonly string[] {
    return this.compiled?.log ?? this.vm.log;
  }

  /**
   * Run the program on `data` (the packet, for XDP), as BPF_PROG_TEST_RUN does.
   * @throws BpfError EINVAL for data the kernel's test run refuses (an XDP packet under 14 bytes),
   * EOPNOTSUPP for a program type without a context here, BpfRunError when the run stops
   */
  run(data: Uint8Array, opts: RunOptions = {}): RunResult {
    const repeat = opts.repeat ?? 1;
    if (!Number.isInteger(repeat) || repeat < 1 || repeat > 0xffffffff)
      throw new BpfError("run", Errno.EINVAL, `repeat must be a u32 >= 1, got ${repeat}`);
    if (opts.cpu !== undefined && opts.cpu !== this.obj.cpu)
      return this.obj
        .atCpu(opts.cpu)
        .program(this.name)
        .run(data, { ...opts, cpu: undefined });
    this.checkInput(data, opts);
    if (this.compiled !== null && (opts.ctx?.length ?? 0) <= CTX_BYTES) {
      const c = this.runCompiled(this.compiled, data, opts.ctx, repeat);
      return { retval: Number(c.r0 & 0xffffffffn), ...c };
    }
    this.vm.cpu = this.obj.cpu;
    const state = this.obj.state;
    let packet: Uint8Array = new Uint8Array(0);
    let ctx: Uint8Array = new Uint8Array(0);
    let r0 = 0n;
    // As bpf_test_run(): an XDP or skb context and its packet are built once and
    // every repeat runs on what the previous one left (a changed byte, a moved head).
    const t0 = performance.now();
    const type = this.def.type;
    const persistent = type === ProgType.Xdp || type === ProgType.SocketFilter || type === ProgType.SchedCls;
    let c = this.enterContext(data, opts);
    try {
      for (let i = 0; i < repeat; i++) {
        // A caller's context (syscall, tracepoint) starts every repeat from ctx_in, as in the kernel.
        if (i > 0 && !persistent) c = this.enterContext(data, opts);
        r0 = this.runOnce(c.r1);
      }
      ctx = c.ctx;
      if (state.xdp !== null) packet = state.xdp.output();
      if (state.skb !== null) packet = state.skb.output();
    } finally {
      state.xdp = null;
      state.skb = null;
    }
    const duration = Math.round(((performance.now() - t0) * 1e6) / repeat);
    return { retval: Number(r0 & 0xffffffffn), r0, data: packet, ctx, duration };
  }

  private runCompiled(c: CompiledProgram, data: Uint8Array, ctx: Uint8Array | undefined, repeat: number) {
    try {
      return c.run(data, ctx, repeat);
    } catch (e) {
      throw this.withSource(e);
    }
  }

  /** Map this run's context (and packet) as test_run builds it for the program's type: r1, and a caller's ctx copy. */
  private enterContext(data: Uint8Array, opts: RunOptions): { r1: bigint; ctx: Uint8Array } {
    const type = this.def.type;
    const mem = this.vm.mem;
    const state = this.obj.state;
    if (type === ProgType.Xdp) {
      state.xdp = new XdpPacket(mem, data);
      return { r1: state.xdp.ctx, ctx: new Uint8Array(0) };
    }
    if (type === ProgType.SocketFilter || type === ProgType.SchedCls) {
      state.skb = new SkbPacket(mem, data, type === ProgType.SocketFilter ? "socket" : "tc");
      return { r1: state.skb.ctx, ctx: new Uint8Array(0) };
    }
    // No packet in this run: an earlier run's is no longer reachable.
    mem.unmapFixed(PACKET_SLOT);
    if (opts.ctx === undefined || opts.ctx.length === 0) {
      mem.unmapFixed(CTX_SLOT);
      return { r1: 0n, ctx: new Uint8Array(0) };
    }
    const ctx = opts.ctx.slice();
    return { r1: mem.mapFixed(CTX_SLOT, new Region("ctx", ctx, type !== ProgType.Tracepoint)), ctx };
  }

  /** Refuse the input BPF_PROG_TEST_RUN refuses for this program type (or this backend does not model). */
  private checkInput(data: Uint8Array, opts: RunOptions): void {
    const type = this.def.type;
    if (type === ProgType.Xdp && data.length < 14)
      throw new BpfError(
        "run",
        Errno.EINVAL,
        `an XDP packet needs at least 14 bytes (an Ethernet header), got ${data.length}`,
      );
    if (type === ProgType.Syscall && data.length > 0)
      throw new BpfError("run", Errno.EINVAL, "a syscall program takes a context (ctx), no data");
    if (type !== ProgType.SocketFilter && type !== ProgType.SchedCls) return;
    checkSkbInput(data);
    if (opts.ctx !== undefined && opts.ctx.length > 0)
      throw new BpfError(
        "run",
        Errno.EOPNOTSUPP,
        `program '${this.name}': a caller's __sk_buff (ctx_in) is not supported on this backend`,
      );
  }

  private runOnce(r1: bigint): bigint {
    const maps = this.obj.sectioned;
    const state = this.obj.state;
    state.tailCalls = 0;
    let entered = 0;
    try {
      for (const m of maps) {
        m.enter();
        entered++;
      }
      const r0 = this.vm.run([r1]);
      if (state.records.size > 0)
        throw new BpfRunError(
          Errno.EINVAL,
          this.def.insns.length - 1,
          "exit",
          `the program exited with ${state.records.size} ringbuf record(s) neither submitted nor discarded`,
        );
      if (state.held !== null)
        throw new BpfRunError(
          Errno.EINVAL,
          this.def.insns.length - 1,
          "exit",
          "the program exited holding a bpf_spin_lock",
        );
      return r0;
    } catch (e) {
      throw this.withSource(e);
    } finally {
      for (const r of state.records.values()) r.rb.commit(r.at, true, RB_NO_WAKEUP);
      state.records.clear();
      if (state.held !== null) {
        const h = state.held;
        state.held = null;
        h.ref.unlock();
      }
      for (let i = entered - 1; i >= 0; i--) maps[i].exit();
    }
  }

  /** Name the C source line of the instruction a run stopped at, when the object carried line info. */
  private withSource(e: unknown): unknown {
    const src = e instanceof BpfRunError && e.source === undefined ? this.def.lines[e.insn] : undefined;
    if (src === undefined || !(e instanceof BpfRunError)) return e;
    return new BpfRunError(
      e.errno,
      e.insn,
      e.text,
      e.reason,
      `${src.file.split("/").pop()}:${src.line}: ${src.text}`,
    );
  }

  private mapArg(vm: Vm, ptr: bigint, op: string): ObjMap {
    const m = vm.mapAt(ptr);
    if (
      m instanceof Htab ||
      m instanceof ArrayMap ||
      m instanceof GlobalSection ||
      m instanceof ProgArray ||
      m instanceof RingBuf ||
      isOuter(m)
    )
      return m;
    throw new BpfError(op, Errno.EFAULT, `r1 0x${ptr.toString(16)} is not a map of this object`);
  }

  /** A map a helper may use as a data map (a global: its section, for lookups). */
  private dataMap(vm: Vm, ptr: bigint, op: string): Htab | ArrayMap | GlobalSection | OuterMap {
    const m = this.mapArg(vm, ptr, op);
    if (m instanceof ProgArray)
      throw new BpfError(op, Errno.EINVAL, `PROG_ARRAY '${m.name}' is for bpf_tail_call only`);
    if (m instanceof RingBuf)
      throw new BpfError(op, Errno.EINVAL, `RINGBUF '${m.name}' is for the bpf_ringbuf_* helpers only`);
    return m;
  }

  /** A map a helper may write or walk: a global as its ARRAY map; a map-in-map is refused. */
  private noOuter(m: Htab | ArrayMap | GlobalSection | OuterMap, op: string): Htab | ArrayMap {
    if (m instanceof GlobalSection) return m.map;
    if (isOuter(m))
      throw new BpfError(
        op,
        Errno.EINVAL,
        `map '${this.obj.nameOf(m)}' is a map-in-map: programs only look up in it (the verifier refuses ${op})`,
      );
    return m;
  }

  private ringOf(vm: Vm, ptr: bigint, op: string): RingBuf {
    const m = this.mapArg(vm, ptr, op);
    if (!(m instanceof RingBuf))
      throw new BpfError(op, Errno.EINVAL, `r1 is map '${this.obj.nameOf(m)}', not a RINGBUF`);
    return m;
  }

  /** bpf_ringbuf_output/reserve/submit/discard/query (ringbuf.ts). */
  private ringbufHelpers(): [number, HelperFn][] {
    const state = this.obj.state;
    const reserve = (rb: RingBuf, size: bigint): bigint => {
      const at = size > 0x3fff_ffffn ? -1 : rb.reserve(Number(size), this.obj.cpu);
      if (at < 0) return 0n;
      const addr = this.vm.mem.mapDynamic(
        new Region(`a record of ringbuf '${rb.name}'`, rb.data.subarray(at, at + Number(size)), true),
      );
      state.records.set(addr, { rb, at });
      return addr;
    };
    const commit = (op: string, p: bigint, flags: bigint, discard: boolean): bigint => {
      const r = state.records.get(p);
      if (r === undefined)
        throw new BpfError(op, Errno.EINVAL, `0x${p.toString(16)} is not a ringbuf record this run reserved`);
      state.records.delete(p);
      r.rb.commit(r.at, discard, Number(flags & 3n));
      return 0n;
    };
    return [
      [
        Helper.ringbufOutput,
        (vm, mp, dp, size, flags) => {
          const rb = this.ringOf(vm, mp, "ringbuf_output");
          if ((flags & ~BigInt(RB_NO_WAKEUP | RB_FORCE_WAKEUP)) !== 0n) return errnoRet(Errno.EINVAL);
          const src = vm.mem.bytes("ringbuf_output", dp, Number(size & 0xffffffffn), false);
          const at = size > 0x3fff_ffffn ? -1 : rb.reserve(src.length, this.obj.cpu);
          if (at < 0) return errnoRet(Errno.EAGAIN);
          rb.data.set(src, at);
          rb.commit(at, false, Number(flags));
          return 0n;
        },
      ],
      [
        Helper.ringbufReserve,
        (vm, mp, size, flags) => {
          const rb = this.ringOf(vm, mp, "ringbuf_reserve");
          return flags !== 0n ? 0n : reserve(rb, size);
        },
      ],
      [Helper.ringbufSubmit, (_vm, p, flags) => commit("ringbuf_submit", p, flags, false)],
      [Helper.ringbufDiscard, (_vm, p, flags) => commit("ringbuf_discard", p, flags, true)],
      [
        Helper.ringbufQuery,
        (vm, mp, flags) => (flags > 3n ? 0n : this.ringOf(vm, mp, "ringbuf_query").query(Number(flags))),
      ],
    ];
  }

  /** bpf_tail_call(ctx, map, index). */
  private tailCall(vm: Vm, ctx: bigint, mp: bigint, index: bigint): bigint {
    const m = this.mapArg(vm, mp, "tail_call");
    if (!(m instanceof ProgArray))
      throw new BpfError("tail_call", Errno.EINVAL, `r2 is map '${this.obj.nameOf(m)}', not a PROG_ARRAY`);
    const i = Number(index & 0xffffffffn);
    const state = this.obj.state;
    if (i >= m.maxEntries || state.tailCalls >= MAX_TAIL_CALLS) return 0n;
    state.tailCalls++;
    const target = m.get(i);
    if (target < 0) return 0n;
    const p = this.obj.programAt(target);
    try {
      return vm.tailCall(p.vm, ctx);
    } catch (e) {
      if (!(e instanceof BpfRunError) || e.text.startsWith("in ")) throw e;
      const src = p.withSource(e) as BpfRunError;
      throw new BpfRunError(e.errno, e.insn, `in '${p.name}' (tail call): ${e.text}`, e.reason, src.source);
    }
  }

  private mapHelpers(): [number, HelperFn][] {
    const lookup: HelperFn = (vm, mp, kp) => {
      const m = this.dataMap(vm, mp, "map_lookup_elem");
      if (isOuter(m)) {
        const key = vm.mem.bytes("map_lookup_elem", kp, m.info.keySize, false);
        const inner = m.lookupInner(key.slice());
        return inner === null ? 0n : addressOf(MAP_SLOT + this.obj.mapIndex(inner));
      }
      if (m instanceof GlobalSection) {
        const k = vm.mem.bytes("map_lookup_elem", kp, 4, false);
        if (k[0] | k[1] | k[2] | k[3]) return 0n;
        return addressOf(GLOBAL_SLOT + this.obj.globalSlot(m));
      }
      const key = vm.mem.bytes("map_lookup_elem", kp, m.info.keySize, false);
      const ref = m.lookupRef(key.slice());
      if (ref === null) return 0n;
      const def = this.obj.defOf(m);
      return vm.mem.mapDynamic(
        new ValueRegion(`a value of map '${def.name}'`, ref, def.spinLockOffset ?? -1),
      );
    };
    const update: HelperFn = (vm, mp, kp, vp, flags) => {
      const m = this.noOuter(this.dataMap(vm, mp, "map_update_elem"), "map_update_elem");
      const key = vm.mem.bytes("map_update_elem", kp, m.info.keySize, false).slice();
      const value = vm.mem.bytes("map_update_elem", vp, m.info.valueSize, false).slice();
      return errnoRet(-m.updateElemFromProgram(key, value, updateFlagsArg(flags)));
    };
    const del: HelperFn = (vm, mp, kp) => {
      const m = this.noOuter(this.dataMap(vm, mp, "map_delete_elem"), "map_delete_elem");
      const key = vm.mem.bytes("map_delete_elem", kp, m.info.keySize, false).slice();
      return errnoRet(-m.deleteElemFromProgram(key));
    };
    const lockOf = (vm: Vm, p: bigint, op: string): ValueRegion => {
      const r = vm.mem.resolve(p, 4, true);
      if (!(r instanceof ValueRegion))
        throw new BpfError(op, Errno.EFAULT, `0x${p.toString(16)} is not in a map value`);
      if (r.lockOffset < 0 || vm.mem.off !== r.lockOffset)
        throw new BpfError(op, Errno.EINVAL, `0x${p.toString(16)} is not the value's struct bpf_spin_lock`);
      return r;
    };
    const state = this.obj.state;
    const lock: HelperFn = (vm, p) => {
      const r = lockOf(vm, p, "spin_lock");
      if (state.held !== null)
        throw new BpfError("spin_lock", Errno.EINVAL, "a second bpf_spin_lock while one is held");
      r.ref.lock();
      state.held = r;
      return 0n;
    };
    const unlock: HelperFn = (vm, p) => {
      const r = lockOf(vm, p, "spin_unlock");
      if (state.held === null || state.held.ref !== r.ref)
        throw new BpfError("spin_unlock", Errno.EINVAL, "this bpf_spin_lock is not held");
      state.held = null;
      r.ref.unlock();
      return 0n;
    };
    const percpuLookup: HelperFn = (vm, mp, kp, cpu) => {
      const m = this.noOuter(this.dataMap(vm, mp, "map_lookup_percpu_elem"), "map_lookup_percpu_elem");
      const key = vm.mem.bytes("map_lookup_percpu_elem", kp, m.info.keySize, false);
      const ref = m.lookupPercpuRef(key.slice(), Number(BigInt.asUintN(32, cpu)));
      if (ref === null) return 0n;
      const def = this.obj.defOf(m);
      return vm.mem.mapDynamic(
        new ValueRegion(`a value of map '${def.name}'`, ref, def.spinLockOffset ?? -1),
      );
    };
    const forEach: HelperFn = (vm, mp, fn, ctx, flags) => {
      const m = this.noOuter(this.dataMap(vm, mp, "for_each_map_elem"), "for_each_map_elem");
      if (flags !== 0n) return errnoRet(Errno.EINVAL);
      const pc = vm.functionAt(fn);
      if (pc < 0)
        throw new BpfError(
          "for_each_map_elem",
          Errno.EFAULT,
          `callback 0x${fn.toString(16)} is not a function of this program`,
        );
      const def = this.obj.defOf(m);
      return BigInt(
        m.forEachElem((_m, key, ref) => {
          // The walk reuses `ref` for the next element: a value the callback may lock gets its own reference.
          const own = m.lookupRef(key.slice());
          const value = own ?? ref;
          const k = vm.mem.mapDynamic(new Region(`a key of map '${def.name}'`, key.slice(), false));
          const v = vm.mem.mapDynamic(
            new ValueRegion(`a value of map '${def.name}'`, value, own ? (def.spinLockOffset ?? -1) : -1),
          );
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
    };
    return [
      ...this.ringbufHelpers(),
      ...xdpHelpers(() => state.xdp),
      ...skbHelpers(() => state.skb),
      [Helper.tailCall, (vm, ctx, mp, index) => this.tailCall(vm, ctx, mp, index)],
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

/** Bytes of the domain maps an object's definitions make (their inner templates included). */
function domainBytes(spec: BpfObjectSpec, nrCpus: number): { maps: number; bytes: number } {
  let maps = 0;
  let bytes = 0;
  const add = (d: MapDef) => {
    maps++;
    const ms = mapSpecOf(d);
    bytes += roundUp(
      d.type === MapType.ArrayOfMaps
        ? aomBytes(nrCpus, d.maxEntries)
        : ARRAY_TYPES.has(d.type)
          ? validateArraySpec(ms, nrCpus).totalBytes
          : validateSpec(ms, nrCpus, false).totalBytes,
      64,
    );
  };
  for (const d of spec.maps) {
    if (d.global) {
      add({ ...d, type: MapType.Array, keySize: 4, maxEntries: 1 });
      continue;
    }
    if (!(HASH_TYPES.has(d.type) || ARRAY_TYPES.has(d.type) || OUTER_TYPES.has(d.type))) continue;
    if (d.inner) add(d.inner);
    add(d);
  }
  return { maps, bytes };
}

function mapSpecOf(def: MapDef) {
  return {
    type: def.type as MapType,
    keySize: def.keySize,
    valueSize: def.valueSize,
    maxEntries: def.maxEntries,
    flags: def.flags,
    name: def.name.slice(0, 15),
    spinLockOffset: def.spinLockOffset,
  };
}

/** A map outside the domain (a RINGBUF or a PROG_ARRAY), made or attached; null for the domain's maps. */
function otherMap(
  def: MapDef,
  i: number,
  from: ObjectHandle["maps"][number] | undefined,
): RingBuf | ProgArray | null {
  if (def.type === RINGBUF) {
    if (from === undefined) return RingBuf.create(def.name, def.maxEntries, def.keySize, def.valueSize);
    if (!("ringbuf" in from))
      throw new BpfError("attach", Errno.EINVAL, `map ${i} of the handle is not a RINGBUF`);
    return RingBuf.attach({ name: def.name, sab: from.ringbuf });
  }
  if (def.type !== PROG_ARRAY) return null;
  if (def.keySize !== 4 || def.valueSize !== 4)
    throw new BpfError("load", Errno.EINVAL, `PROG_ARRAY '${def.name}': key and value are 4 bytes`);
  if (from !== undefined && !("progArray" in from))
    throw new BpfError("attach", Errno.EINVAL, `map ${i} of the handle is not a PROG_ARRAY`);
  return new ProgArray(def.name, def.maxEntries, from?.progArray);
}

/**
 * Whether an object runs compiled (module doc, Engines): as its handle says
 * when attached, else as asked, by default where wasm threads exist.
 * @throws BpfError EOPNOTSUPP when asked for "compiled" without wasm threads
 */
function wantsCompiled(opts: LoadOptions, shared: ObjectHandle | undefined): boolean {
  const compiled =
    shared !== undefined
      ? shared.raw !== undefined
      : (opts.engine ?? (compiledAvailable() ? "compiled" : "interpreter")) === "compiled";
  if (compiled && !compiledAvailable())
    throw new BpfError(
      "load",
      Errno.EOPNOTSUPP,
      "compiled programs need WebAssembly threads (a shared memory)",
    );
  return compiled;
}

/** A new object's MapDomain: room for its maps, `opts.domain`'s extra, and (compiled) its run areas. */
function newDomain(spec: BpfObjectSpec, opts: LoadOptions, compiled: boolean): MapDomain {
  const nrCpus = opts.nrCpus ?? defaultNrCpus();
  const need = domainBytes(spec, nrCpus);
  const areas = compiled ? nrCpus * CPU_AREA_BYTES + 1024 : 0;
  const maxMaps = need.maps + (compiled ? 1 : 0) + (opts.domain?.maxMaps ?? 64);
  return MapDomain.create({
    nrCpus,
    cpu: opts.cpu,
    maxMaps,
    maxBytes: opts.domain?.maxBytes ?? domDataBytes(nrCpus, maxMaps) + 2 * need.bytes + areas + (1 << 20),
  });
}

/** An object loaded on the shared-memory backend. */
export class LoadedObject {
  readonly spec: BpfObjectSpec;
  /** The maps by index (as the linked programs number them), then inner maps programs have looked up. */
  readonly mapList: ObjMap[] = [];
  /** The object's hash maps (inner maps looked up at run time not included). */
  readonly htabs: Htab[] = [];
  /** The ARRAY / PERCPU_ARRAY maps: those of `.maps`, and the globals'. */
  readonly arrays: ArrayMap[] = [];
  readonly globals: GlobalSection[] = [];
  /** The MapDomain holding the object's maps (make inner maps to swap in here). */
  readonly domain: MapDomain;
  /** This object's CPU slot in its maps (bpf_get_smp_processor_id). */
  readonly cpu: number;
  /** @internal The memory every program of the object runs in, in this thread. */
  readonly mem = new Memory();
  /** @internal The run in progress (a tail call continues it). */
  readonly state: RunState = { xdp: null, skb: null, held: null, tailCalls: 0, records: new Map() };
  /** @internal The maps each run enters a section of: hash maps and outer maps. */
  readonly sectioned: { enter(): void; exit(): void }[] = [];
  private readonly programs = new Map<string, LoadedProgram>();
  /** The programs, in the order of the object's program symbols. */
  readonly programList: LoadedProgram[] = [];
  private readonly defs = new Map<RawMap, MapDef>();
  private readonly opts: LoadOptions;
  /** The same object attached on other CPU slots in this thread, shared by all of them. */
  private others = new Map<number, LoadedObject>();
  /** @internal What compiled programs see of this object, or null when it runs interpreted. */
  readonly compiledView: CompiledObject | null = null;
  /** The raw region of the per-CPU run areas (compiled), or 0. */
  private rawId = 0;

  private constructor(spec: BpfObjectSpec, opts: LoadOptions, shared?: ObjectHandle) {
    this.spec = spec;
    this.opts = opts;
    const compiled = wantsCompiled(opts, shared);
    this.domain =
      shared !== undefined
        ? MapDomain.attach(shared.domain, { cpu: opts.cpu })
        : newDomain(spec, opts, compiled);
    try {
      spec.maps.forEach((def, i) => {
        this.addMap(def, i, shared?.maps[i]);
      });
      if (shared === undefined) this.fillSlots();
      if (compiled) this.compiledView = this.compiledMemory(shared?.raw, opts.engine === "compiled");
    } catch (e) {
      this.domain.close();
      throw e;
    }
    this.cpu = this.domain.cpu;
    if (this.globals.length > FUNC_SLOT - GLOBAL_SLOT)
      throw new BpfError(
        "load",
        Errno.E2BIG,
        `${this.globals.length} global sections, at most ${FUNC_SLOT - GLOBAL_SLOT}`,
      );
    this.globals.forEach((g, i) => {
      this.mem.mapFixed(GLOBAL_SLOT + i, new Region(g.name, g.bytes, !g.readonly));
    });
    const budget = opts.budget ?? DEFAULT_BUDGET;
    for (const p of spec.programs) {
      const lp = new LoadedProgram(this, p, budget);
      this.programs.set(p.name, lp);
      this.programList.push(lp);
    }
  }

  /**
   * Compiled mode: the per-CPU run areas in one raw region of the domain
   * (made, or attached by id), 1024-aligned (wasm/runtime.ts), and what
   * compiled programs see of the object.
   */
  private compiledMemory(rawId: number | undefined, asked: boolean): CompiledObject | null {
    const domain = this.domain;
    const memory = domain.handle.memory;
    if (memory === undefined && !asked) return null;
    if (memory === undefined)
      throw new BpfError("load", Errno.EOPNOTSUPP, "compiled programs need the domain in a wasm memory");
    let at: number;
    if (rawId !== undefined) {
      at = domain.rawOffset(rawId);
      if (at < 0)
        throw new BpfError("attach", Errno.EINVAL, `domain region ${rawId} is not an object's run areas`);
      this.rawId = rawId;
    } else {
      const r = domain.allocRaw(domain.nrCpus * CPU_AREA_BYTES + 1024);
      at = r.offset;
      this.rawId = r.id;
    }
    const base = roundUp(at, 1024);
    const defs = this.defs;
    return {
      mapList: this.mapList as (Htab | GlobalSection)[],
      sectioned: this.sectioned,
      cpu: domain.cpu,
      memory,
      areaOf: (cpu) => base + cpu * CPU_AREA_BYTES,
      isHtab: (m): m is Htab => m instanceof Htab,
      isGlobal: (m) => m instanceof GlobalSection,
      spinLockOffset: (m) => defs.get(m)?.spinLockOffset ?? -1,
      mapName: (m) => defs.get(m)?.name ?? "",
    };
  }

  /**
   * A global section as a single-element ARRAY map in the domain (attached by
   * id, or made with the section's initial bytes; `.rodata*` frozen, as
   * libbpf freezes it).
   */
  private addGlobal(def: MapDef, i: number, from: ObjectHandle["maps"][number] | undefined): void {
    const g = def.global as NonNullable<MapDef["global"]>;
    let map: ArrayMap;
    if (from !== undefined) {
      const m = "id" in from ? this.domain.mapById(from.id) : null;
      if (!(m instanceof ArrayMap) || m.info.maxEntries !== 1)
        throw new BpfError("attach", Errno.EINVAL, `map ${i} of the handle is not a global's ARRAY map`);
      map = m;
    } else {
      map = this.domain.createMap({ ...mapSpecOf(def), type: MapType.Array, keySize: 4, maxEntries: 1 });
      const err = map.updateElem(new Uint8Array(4), g.data, 0);
      if (err === 0 && g.readonly) map.freeze();
      if (err !== 0) throw new BpfError("load", -err, `${def.name}: ${map.lastError}`);
    }
    const s = new GlobalSection(def.name, g.section, map, g.readonly, g.vars);
    this.globals.push(s);
    this.arrays.push(map);
    this.sectioned.push(map);
    this.defs.set(map, def);
    this.mapList.push(s);
  }

  private addMap(def: MapDef, i: number, from: ObjectHandle["maps"][number] | undefined): void {
    if (def.global) {
      this.addGlobal(def, i, from);
      return;
    }
    if (def.pinning !== 0)
      throw new BpfError(
        "load",
        Errno.EOPNOTSUPP,
        `map '${def.name}': pinning (LIBBPF_PIN_BY_NAME) needs the kernel backend`,
      );
    const other = otherMap(def, i, from);
    if (other !== null) {
      this.mapList.push(other);
      return;
    }
    if (!HASH_TYPES.has(def.type) && !ARRAY_TYPES.has(def.type) && !OUTER_TYPES.has(def.type))
      throw new BpfError(
        "load",
        Errno.EOPNOTSUPP,
        `map '${def.name}': map type ${def.type} is not on the shared-memory backend yet (hash, percpu_hash, lru_hash, lru_percpu_hash, array_of_maps, hash_of_maps, prog_array, ringbuf)`,
      );
    let m: RawMap | null;
    if (from !== undefined) {
      if (!("id" in from))
        throw new BpfError("attach", Errno.EINVAL, `map ${i} of the handle is not a map id`);
      m = this.domain.mapById(from.id);
      if (m === null) throw new BpfError("attach", Errno.EINVAL, `map ${i}: no map ${from.id} in the domain`);
    } else if (def.inner) {
      const template = this.domain.createMap(mapSpecOf(def.inner));
      m = this.domain.createMap({ ...mapSpecOf(def), innerMap: template });
    } else m = this.domain.createMap(mapSpecOf(def));
    if (m instanceof Htab) this.htabs.push(m);
    if (m instanceof ArrayMap) this.arrays.push(m);
    this.sectioned.push(m as unknown as { enter(): void; exit(): void });
    this.mapList.push(m as Htab | ArrayMap | OuterMap);
    this.defs.set(m, def);
  }

  /** The initial slots of map-in-maps and PROG_ARRAYs (`.values = { … }`). */
  private fillSlots(): void {
    this.spec.maps.forEach((def, i) => {
      for (const s of def.slots ?? []) {
        const m = this.mapList[i];
        const key = new Uint8Array(def.keySize);
        new DataView(key.buffer).setUint32(0, s.index, true);
        if (m instanceof ProgArray) {
          const p = this.spec.programs.findIndex((x) => x.name === s.program);
          if (p < 0)
            throw new BpfError(
              "load",
              Errno.EINVAL,
              `PROG_ARRAY '${def.name}': slot ${s.index} names no program '${s.program}'`,
            );
          this.checkOwner(def.name, p);
          m.set(s.index, p);
        } else if (isOuter(m)) {
          const inner = this.mapList[s.map as number] as RawMap;
          const value = new Uint8Array(4);
          new DataView(value.buffer).setUint32(0, inner.info.id, true);
          const err = m.updateElem(key, value, 0);
          if (err !== 0)
            throw new BpfError(
              "load",
              -err,
              `map '${def.name}': slot ${s.index} (map '${this.spec.maps[s.map as number].name}'): ${m.lastError}`,
            );
        }
      }
    });
  }

  /**
   * Open and load an object's bytes: maps created, programs linked and decoded.
   * @throws BpfError EINVAL for a malformed object or program, EOPNOTSUPP for what is not supported (named)
   */
  static load(bytes: Uint8Array, opts: LoadOptions = {}): LoadedObject {
    return new LoadedObject(openObject(bytes, opts), opts);
  }

  /**
   * Load an object built in code rather than read from an ELF file: maps
   * as `spec.maps`, programs as linked instructions whose map loads
   * (BPF_LD_MAP_FD) name a map by its index in `spec.maps`, as an opened
   * object's do. One instruction list can then be loaded here and, with
   * the maps' fds in place of the indices, in the kernel.
   * @throws BpfError as load() does after the ELF stage
   */
  static fromSpec(spec: BpfObjectSpec, opts: LoadOptions = {}): LoadedObject {
    return new LoadedObject(spec, opts);
  }

  /** What a worker posts to `LoadedObject.attach()` to run these programs on these maps. */
  handle(): ObjectHandle {
    return {
      spec: this.spec,
      domain: this.domain.handle,
      maps: this.spec.maps.map((_d, i) => {
        const m = this.mapList[i];
        if (m instanceof GlobalSection) return { id: m.map.info.id };
        if (m instanceof ProgArray) return { progArray: m.sab };
        if (m instanceof RingBuf) return { ringbuf: m.sab };
        return { id: m.info.id };
      }),
      ...(this.compiledView !== null ? { raw: this.rawId } : {}),
    };
  }

  /**
   * The same object's maps and globals, attached in this thread on CPU slot `opts.cpu`.
   * @throws BpfError EINVAL for a handle that does not match its spec
   */
  static attach(handle: ObjectHandle, opts: { cpu?: number; budget?: number } = {}): LoadedObject {
    if (handle.maps.length !== handle.spec.maps.length)
      throw new BpfError(
        "attach",
        Errno.EINVAL,
        `the handle has ${handle.maps.length} maps for ${handle.spec.maps.length} definitions`,
      );
    return new LoadedObject(handle.spec, { name: handle.spec.name, ...opts }, handle);
  }

  /** @internal This object attached on CPU slot `cpu` in this thread (made once). */
  atCpu(cpu: number): LoadedObject {
    let o = this.others.get(cpu);
    if (o === undefined) {
      o = LoadedObject.attach(this.handle(), { cpu, budget: this.opts.budget });
      this.others.set(this.cpu, this);
      this.others.set(cpu, o);
      o.others = this.others;
    }
    return o;
  }

  /**
   * Give back this thread's CPU slot in the object's domain and maps (the
   * maps live on while other threads are attached). The object is unusable after.
   */
  close(): void {
    for (const o of this.others.values()) if (o !== this) o.domain.close();
    this.domain.close();
  }

  /** The program named after its C function. */
  program(name: string): LoadedProgram {
    const p = this.programs.get(name);
    if (!p)
      throw new BpfError(
        "program",
        Errno.ENOENT,
        `no program '${name}' (have: ${[...this.programs.keys()].join(", ")})`,
      );
    return p;
  }

  /** @internal The program with index `i` in spec.programs. */
  programAt(i: number): LoadedProgram {
    return this.programList[i];
  }

  private mapIndexNamed(name: string): number {
    const i = this.spec.maps.findIndex((d) => d.name === name);
    if (i < 0) throw new BpfError("map", Errno.ENOENT, `no map '${name}'`);
    return i;
  }

  /**
   * The `.maps` map named after its C variable (an ArrayMap for ARRAY and
   * PERCPU_ARRAY), or a global's ARRAY map by its libbpf name (`obj.bss`).
   * @throws BpfError ENOENT for no such map, EINVAL for a map-in-map (`mapInMap()`) or a PROG_ARRAY
   */
  map(name: string): Htab | ArrayMap {
    const m = this.mapList[this.mapIndexNamed(name)];
    if (m instanceof GlobalSection) return m.map;
    if (!(m instanceof Htab || m instanceof ArrayMap))
      throw new BpfError(
        "map",
        Errno.EINVAL,
        `map '${name}' is a map-in-map or a PROG_ARRAY, not a data map`,
      );
    return m;
  }

  /** The `.maps` ARRAY_OF_MAPS or HASH_OF_MAPS named after its C variable. */
  mapInMap(name: string): OuterMap {
    const m = this.mapList[this.mapIndexNamed(name)];
    if (!isOuter(m)) throw new BpfError("map", Errno.EINVAL, `map '${name}' is not a map-in-map`);
    return m;
  }

  /**
   * Put program `program` in slot `index` of PROG_ARRAY `map` (null: empty
   * the slot), as user space updates a prog array with a program fd.
   * @throws BpfError ENOENT for an unknown map or program, EINVAL for a map that is no PROG_ARRAY, E2BIG for an index past max_entries
   */
  setTailCall(map: string, index: number, program: string | null): void {
    const m = this.mapList[this.mapIndexNamed(map)];
    if (!(m instanceof ProgArray))
      throw new BpfError("update", Errno.EINVAL, `map '${map}' is not a PROG_ARRAY`);
    const p = program === null ? -1 : this.spec.programs.findIndex((x) => x.name === program);
    if (p < 0 && program !== null) throw new BpfError("update", Errno.ENOENT, `no program '${program}'`);
    if (p >= 0) this.checkOwner(map, p);
    m.set(index, p);
  }

  /**
   * bpf_prog_map_compatible(): a PROG_ARRAY holds programs of one type, the
   * type of the programs that use it (the kernel's map owner).
   * @throws BpfError EINVAL for a program of another type
   */
  private checkOwner(map: string, p: number): void {
    const i = this.mapIndexNamed(map);
    const users = this.spec.programs.filter((x) =>
      x.insns.some((n) => n.code === 0x18 && n.src === PseudoLd.mapFd && n.imm === i),
    );
    const owner = users[0]?.type;
    const type = this.spec.programs[p].type;
    if (owner !== undefined && type !== owner)
      throw new BpfError(
        "update",
        Errno.EINVAL,
        `PROG_ARRAY '${map}': program '${this.spec.programs[p].name}' is of type ${type}, the programs using the map of type ${owner}`,
      );
  }

  /** The `.maps` RINGBUF named after its C variable: consume its records from TypeScript (`consume()`, `poll()`). */
  ringbuf(name: string): RingBuf {
    const m = this.mapList[this.mapIndexNamed(name)];
    if (!(m instanceof RingBuf)) throw new BpfError("map", Errno.EINVAL, `map '${name}' is not a RINGBUF`);
    return m;
  }

  /** A global section by libbpf name (`obj.bss`) or section name (`.bss`). */
  global(name: string): GlobalSection {
    const g = this.globals.find((x) => x.name === name || x.section === name);
    if (!g) throw new BpfError("global", Errno.ENOENT, `no global section '${name}'`);
    return g;
  }

  /** @internal */
  globalSlot(g: GlobalSection): number {
    return this.globals.indexOf(g);
  }

  /** @internal The definition of a map (an inner map looked up at run time: one made from its info). */
  defOf(m: RawMap): MapDef {
    return this.defs.get(m) as MapDef;
  }

  /** @internal A map's name, for errors. */
  nameOf(m: ObjMap): string {
    if (m instanceof GlobalSection || m instanceof ProgArray || m instanceof RingBuf) return m.name;
    return this.defs.get(m)?.name ?? `#${m.info.id}`;
  }

  /** @internal The index programs know map `m` by (an inner map not seen yet is added). */
  mapIndex(m: Htab | ArrayMap): number {
    const i = this.mapList.indexOf(m);
    if (i >= 0) return i;
    if (this.mapList.length >= 1024 - MAP_SLOT)
      throw new BpfError("map_lookup_elem", Errno.E2BIG, "too many inner maps looked up by this object");
    const info = m.info;
    this.defs.set(m, {
      name: info.name || `map#${info.id}`,
      type: info.type,
      keySize: info.keySize,
      valueSize: info.valueSize,
      maxEntries: info.maxEntries,
      flags: info.flags,
      pinning: 0,
      keyType: 0,
      valueType: 0,
    });
    this.mapList.push(m);
    return this.mapList.length - 1;
  }
}
