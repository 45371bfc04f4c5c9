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
 * - 44/65 `bpf_xdp_adjust_head`/`bpf_xdp_adjust_tail(ctx, delta)`: xdp.ts.
 * - and the map-free helpers of helpers.ts (5, 6, 7, 8, 181).
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
 * Other program types (socket filter, tc, tracepoint) are refused with
 * EOPNOTSUPP for now.
 *
 * ARRAY maps are not yet in htab's core: the globals are plain byte regions
 * here (`.rodata` read-only to programs), read and written from TypeScript
 * through `global()`; an ARRAY (or any non-hash) map in `.maps` is refused.
 */

import { Htab, type MapHandle } from "../core/htab.js";
import type { ValueRef } from "../core/value-ref.js";
import { type DomainHandle, MapDomain } from "../domain/map-domain.js";
import { BpfError, Errno } from "../errors.js";
import { roundUp, WASM_PAGE_BYTES } from "../layout/layout.js";
import { MapType } from "../uapi.js";
import { baseHelpers, errnoRet } from "./helpers.js";
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
import { addressOf, CTX_SLOT, FUNC_SLOT, GLOBAL_SLOT, Region } from "./memory.js";
import { type CompiledObject, CompiledProgram, CPU_AREA_BYTES } from "./wasm/program.js";
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

/** A global section (`.data`, `.bss`, `.rodata`, …) of a loaded object. */
export class GlobalSection {
  constructor(
    readonly name: string,
    readonly section: string,
    /** The section's bytes, as programs see them. */
    readonly bytes: Uint8Array,
    readonly readonly: boolean,
    readonly vars: readonly GlobalVar[],
  ) {}
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
   * How programs run: "compiled" to WebAssembly over one shared memory
   * holding every map, global and run area of the object (a MapDomain; needs
   * wasm threads), or in the reference "interpreter". @default "interpreter"
   */
  engine?: "compiled" | "interpreter";
}

/**
 * What a worker needs to run a loaded object's programs on the same maps and
 * globals (structured-cloneable: post it). `LoadedObject.attach(handle, { cpu })`.
 */
export interface ObjectHandle {
  readonly spec: BpfObjectSpec;
  /** Per map of `spec.maps`: the htab map's handle, or a global's shared buffer. */
  readonly maps: readonly (MapHandle | { global: SharedArrayBuffer })[];
  /** A compiled object's memory instead (`maps` is then empty): its domain, map ids and raw region id. */
  readonly compiled?: {
    readonly domain: DomainHandle;
    readonly ids: readonly number[];
    readonly raw: number;
  };
}

export interface RunOptions {
  /** The context for a syscall program. */
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
  /** The packet after the run (XDP), or empty. */
  data: Uint8Array;
  /** The context after the run (syscall), or empty. */
  ctx: Uint8Array;
  /** Nanoseconds per run, averaged over `repeat`. */
  duration: number;
}

const HASH_LIST = [MapType.Hash, MapType.PercpuHash, MapType.LruHash, MapType.LruPercpuHash] as const;
const HASH_TYPES = new Set<number>(HASH_LIST);
/**
 * A compiled object's memory may grow to this (wasm32 addresses 4 GiB; an
 * object whose maps do not fit is refused at load, ENOMEM).
 */
const COMPILED_MAX_BYTES = 4 * 1024 * 1024 * 1024 - WASM_PAGE_BYTES;

/** One program of a loaded object. */
export class LoadedProgram {
  private readonly vm: Vm;
  /** This run's XDP packet, while an XDP run is on. */
  private xdp: XdpPacket | null = null;
  /** Spin locks this run holds. */
  private held: ValueRegion | null = null;
  /** The compiled program, when the object runs compiled. */
  private readonly compiled: CompiledProgram | null;

  constructor(
    private readonly obj: LoadedObject,
    readonly def: ProgramDef,
    budget: number,
  ) {
    const helpers = new Map<number, HelperFn>(baseHelpers());
    for (const [id, fn] of this.mapHelpers()) helpers.set(id, fn);
    const prog = decodeProgram(def.insns, {
      op: "load",
      helpers: (id) => helpers.has(id),
      pseudo: [PseudoLd.mapFd, PseudoLd.mapValue],
    });
    this.vm = new Vm(prog, {
      helpers,
      budget,
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
    obj.globals.forEach((g, i) => {
      this.vm.mem.mapFixed(GLOBAL_SLOT + i, new Region(g.name, g.bytes, !g.readonly));
    });
    this.compiled = obj.compiledView === null ? null : new CompiledProgram(obj.compiledView, def, budget);
  }

  /** "compiled" (WebAssembly) or "interpreter". */
  get engine(): "compiled" | "interpreter" {
    return this.compiled === null ? "interpreter" : "compiled";
  }

  get name(): string {
    return this.def.name;
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
    const type = this.def.type;
    if (type !== ProgType.Xdp && type !== ProgType.Syscall)
      throw new BpfError(
        "run",
        Errno.EOPNOTSUPP,
        `program '${this.name}' (type ${type}): only xdp and syscall programs run on this backend yet`,
      );
    if (type === ProgType.Xdp && data.length < 14)
      throw new BpfError(
        "run",
        Errno.EINVAL,
        `an XDP packet needs at least 14 bytes (an Ethernet header), got ${data.length}`,
      );
    if (this.compiled !== null) {
      const c = this.withSource(() => (this.compiled as CompiledProgram).run(data, opts.ctx, repeat));
      return { retval: Number(c.r0 & 0xffffffffn), ...c };
    }
    this.vm.cpu = this.obj.cpu;
    const mem = this.vm.mem;
    let packet: Uint8Array = new Uint8Array(0);
    let ctx: Uint8Array = new Uint8Array(0);
    let r0 = 0n;
    const t0 = performance.now();
    for (let i = 0; i < repeat; i++) {
      let r1 = 0n;
      if (type === ProgType.Xdp) {
        this.xdp = new XdpPacket(mem, data);
        r1 = this.xdp.ctx;
      } else if (opts.ctx !== undefined && opts.ctx.length > 0) {
        ctx = opts.ctx.slice();
        r1 = mem.mapFixed(CTX_SLOT, new Region("ctx", ctx, true));
      }
      r0 = this.runOnce(r1);
      if (this.xdp !== null) {
        packet = this.xdp.output();
        this.xdp = null;
      }
    }
    const duration = Math.round(((performance.now() - t0) * 1e6) / repeat);
    return { retval: Number(r0 & 0xffffffffn), r0, data: packet, ctx, duration };
  }

  /** Run `fn`; a BpfRunError it throws gets the C source line of its instruction, when the object carried line info. */
  private withSource<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      // Name the C source line of the instruction, when the object carried line info.
      const src = e instanceof BpfRunError && e.source === undefined ? this.def.lines[e.insn] : undefined;
      if (src === undefined || !(e instanceof BpfRunError)) throw e;
      throw new BpfRunError(
        e.errno,
        e.insn,
        e.text,
        e.reason,
        `${src.file.split("/").pop()}:${src.line}: ${src.text}`,
      );
    }
  }

  private runOnce(r1: bigint): bigint {
    return this.withSource(() => this.runLocked(r1));
  }

  private runLocked(r1: bigint): bigint {
    const maps = this.obj.htabs;
    let entered = 0;
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
      for (let i = entered - 1; i >= 0; i--) maps[i].exit();
    }
  }

  private mapArg(vm: Vm, ptr: bigint, op: string): Htab | GlobalSection {
    const m = vm.mapAt(ptr);
    if (m instanceof Htab || m instanceof GlobalSection) return m;
    throw new BpfError(op, Errno.EFAULT, `r1 0x${ptr.toString(16)} is not a map of this object`);
  }

  private mapHelpers(): [number, HelperFn][] {
    const lookup: HelperFn = (vm, mp, kp) => {
      const m = this.mapArg(vm, mp, "map_lookup_elem");
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
      const m = this.mapArg(vm, mp, "map_update_elem");
      if (m instanceof GlobalSection) return errnoRet(Errno.EOPNOTSUPP);
      const key = vm.mem.bytes("map_update_elem", kp, m.info.keySize, false).slice();
      const value = vm.mem.bytes("map_update_elem", vp, m.info.valueSize, false).slice();
      return errnoRet(-m.updateElemFromProgram(key, value, Number(BigInt.asUintN(32, flags))));
    };
    const del: HelperFn = (vm, mp, kp) => {
      const m = this.mapArg(vm, mp, "map_delete_elem");
      if (m instanceof GlobalSection) return errnoRet(Errno.EINVAL);
      const key = vm.mem.bytes("map_delete_elem", kp, m.info.keySize, false).slice();
      return errnoRet(-m.deleteElem(key));
    };
    const lockOf = (vm: Vm, p: bigint, op: string): ValueRegion => {
      const r = vm.mem.resolve(p, 4, true);
      if (!(r instanceof ValueRegion))
        throw new BpfError(op, Errno.EFAULT, `0x${p.toString(16)} is not in a map value`);
      if (r.lockOffset < 0 || vm.mem.off !== r.lockOffset)
        throw new BpfError(op, Errno.EINVAL, `0x${p.toString(16)} is not the value's struct bpf_spin_lock`);
      return r;
    };
    const lock: HelperFn = (vm, p) => {
      const r = lockOf(vm, p, "spin_lock");
      if (this.held !== null)
        throw new BpfError("spin_lock", Errno.EINVAL, "a second bpf_spin_lock while one is held");
      r.ref.lock();
      this.held = r;
      return 0n;
    };
    const unlock: HelperFn = (vm, p) => {
      const r = lockOf(vm, p, "spin_unlock");
      if (this.held === null || this.held.ref !== r.ref)
        throw new BpfError("spin_unlock", Errno.EINVAL, "this bpf_spin_lock is not held");
      this.held = null;
      r.ref.unlock();
      return 0n;
    };
    const percpuLookup: HelperFn = (vm, mp, kp, cpu) => {
      const m = this.mapArg(vm, mp, "map_lookup_percpu_elem");
      if (m instanceof GlobalSection)
        throw new BpfError("map_lookup_percpu_elem", Errno.EINVAL, "a global is not a per-CPU map");
      const key = vm.mem.bytes("map_lookup_percpu_elem", kp, m.info.keySize, false);
      const ref = m.lookupPercpuRef(key.slice(), Number(BigInt.asUintN(32, cpu)));
      if (ref === null) return 0n;
      const def = this.obj.defOf(m);
      return vm.mem.mapDynamic(
        new ValueRegion(`a value of map '${def.name}'`, ref, def.spinLockOffset ?? -1),
      );
    };
    const forEach: HelperFn = (vm, mp, fn, ctx, flags) => {
      const m = this.mapArg(vm, mp, "for_each_map_elem");
      if (m instanceof GlobalSection) return errnoRet(Errno.EOPNOTSUPP);
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
      ...xdpHelpers(() => this.xdp),
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

/** An object loaded on the shared-memory backend. */
export class LoadedObject {
  readonly spec: BpfObjectSpec;
  /** The maps by index (as the linked programs number them): an htab map or a global section. */
  readonly mapList: (Htab | GlobalSection)[] = [];
  readonly htabs: Htab[] = [];
  readonly globals: GlobalSection[] = [];
  /** This object's CPU slot in its maps (bpf_get_smp_processor_id). */
  readonly cpu: number;
  private readonly programs = new Map<string, LoadedProgram>();
  private readonly defs = new Map<Htab, MapDef>();
  private readonly opts: LoadOptions;
  /** The same object attached on other CPU slots in this thread, shared by all of them. */
  private others = new Map<number, LoadedObject>();

  /** @internal What compiled programs see of this object, or null when it runs interpreted. */
  readonly compiledView: CompiledObject | null = null;
  /** The domain holding a compiled object's maps, globals and run areas. */
  private domain: MapDomain | null = null;
  private rawId = 0;

  private constructor(spec: BpfObjectSpec, opts: LoadOptions, shared?: ObjectHandle) {
    this.spec = spec;
    this.opts = opts;
    if (shared?.compiled !== undefined || opts.engine === "compiled") {
      this.compiledView = this.loadCompiled(spec, opts, shared?.compiled);
      this.cpu = (this.domain as MapDomain).cpu;
      const budget = opts.budget ?? DEFAULT_BUDGET;
      for (const p of spec.programs) this.programs.set(p.name, new LoadedProgram(this, p, budget));
      return;
    }
    spec.maps.forEach((def, i) => {
      const from = shared?.maps[i];
      if (def.global) {
        const g = def.global;
        let bytes: Uint8Array;
        if (from !== undefined) {
          if (!("global" in from))
            throw new BpfError("attach", Errno.EINVAL, `map ${i} of the handle is not a global`);
          bytes = new Uint8Array(from.global, 0, g.data.length);
        } else {
          bytes = new Uint8Array(
            new SharedArrayBuffer(Math.max(8, Math.ceil(g.data.length / 8) * 8)),
            0,
            g.data.length,
          );
          bytes.set(g.data);
        }
        const s = new GlobalSection(def.name, g.section, bytes, g.readonly, g.vars);
        this.globals.push(s);
        this.mapList.push(s);
        return;
      }
      if (def.pinning !== 0)
        throw new BpfError(
          "load",
          Errno.EOPNOTSUPP,
          `map '${def.name}': pinning (LIBBPF_PIN_BY_NAME) needs the kernel backend`,
        );
      if (!HASH_TYPES.has(def.type))
        throw new BpfError(
          "load",
          Errno.EOPNOTSUPP,
          `map '${def.name}': map type ${def.type} is not on the shared-memory backend yet (hash, percpu_hash, lru_hash, lru_percpu_hash)`,
        );
      const m =
        from !== undefined
          ? Htab.attach(from as MapHandle, { cpu: opts.cpu })
          : Htab.create(
              {
                type: def.type as MapType,
                keySize: def.keySize,
                valueSize: def.valueSize,
                maxEntries: def.maxEntries,
                flags: def.flags,
                name: def.name.slice(0, 15),
                spinLockOffset: def.spinLockOffset,
              },
              { nrCpus: opts.nrCpus, cpu: opts.cpu },
            );
      this.htabs.push(m);
      this.mapList.push(m);
      this.defs.set(m, def);
    });
    this.cpu = this.htabs.length > 0 ? this.htabs[0].cpu : (opts.cpu ?? 0);
    if (this.globals.length > FUNC_SLOT - GLOBAL_SLOT)
      throw new BpfError(
        "load",
        Errno.E2BIG,
        `${this.globals.length} global sections, at most ${FUNC_SLOT - GLOBAL_SLOT}`,
      );
    const budget = opts.budget ?? DEFAULT_BUDGET;
    for (const p of spec.programs) this.programs.set(p.name, new LoadedProgram(this, p, budget));
  }

  /**
   * Compiled mode: every map in one MapDomain (a shared wasm memory), the
   * globals and each CPU slot's run area in one raw region of it.
   */
  private loadCompiled(
    spec: BpfObjectSpec,
    opts: LoadOptions,
    from?: ObjectHandle["compiled"],
  ): CompiledObject {
    if (!compiledAvailable())
      throw new BpfError(
        "load",
        Errno.EOPNOTSUPP,
        "compiled programs need WebAssembly threads (a shared memory)",
      );
    const domain =
      from !== undefined
        ? MapDomain.attach(from.domain, { cpu: opts.cpu })
        : MapDomain.create({
            nrCpus: opts.nrCpus,
            cpu: opts.cpu,
            maxMaps: spec.maps.length + 1,
            maxBytes: COMPILED_MAX_BYTES,
          });
    this.domain = domain;
    const memory = domain.handle.memory;
    if (memory === undefined)
      throw new BpfError("load", Errno.EOPNOTSUPP, "compiled programs need the domain in a wasm memory");
    // The raw region: the globals (8-aligned), then one area per CPU slot (1024-aligned: wasm/runtime.ts).
    const at: number[] = [];
    let used = 0;
    for (const def of spec.maps)
      if (def.global) {
        at.push(used);
        used = roundUp(used + Math.max(def.global.data.length, 1), 8);
      }
    const areas = roundUp(used, 1024);
    let raw: number;
    if (from !== undefined) {
      this.rawId = from.raw;
      const at0 = domain.rawOffset(from.raw);
      if (at0 < 0) throw new BpfError("attach", Errno.EINVAL, `domain region ${from.raw} is not an object's`);
      raw = roundUp(at0, 1024);
    } else {
      const r = domain.allocRaw(areas + domain.nrCpus * CPU_AREA_BYTES + 1024);
      this.rawId = r.id;
      raw = roundUp(r.offset, 1024);
    }
    let g = 0;
    spec.maps.forEach((def, i) => {
      if (def.global) {
        const bytes = new Uint8Array(memory.buffer, raw + at[g++], def.global.data.length);
        if (from === undefined) bytes.set(def.global.data);
        const s = new GlobalSection(
          def.name,
          def.global.section,
          bytes,
          def.global.readonly,
          def.global.vars,
        );
        this.globals.push(s);
        this.mapList.push(s);
        return;
      }
      this.checkMapDef(def);
      const m =
        from !== undefined
          ? (domain.mapById(from.ids[i]) as Htab)
          : domain.createMap({
              type: def.type as (typeof HASH_LIST)[number],
              keySize: def.keySize,
              valueSize: def.valueSize,
              maxEntries: def.maxEntries,
              flags: def.flags,
              name: def.name.slice(0, 15),
              spinLockOffset: def.spinLockOffset,
            });
      if (!(m instanceof Htab))
        throw new BpfError("attach", Errno.EINVAL, `map ${i} of the handle is not a hash map`);
      this.htabs.push(m);
      this.mapList.push(m);
      this.defs.set(m, def);
    });
    const defs = this.defs;
    return {
      mapList: this.mapList,
      htabs: this.htabs,
      cpu: domain.cpu,
      memory,
      areaOf: (cpu) => raw + areas + cpu * CPU_AREA_BYTES,
      isHtab: (m): m is Htab => m instanceof Htab,
      spinLockOffset: (m) => defs.get(m)?.spinLockOffset ?? -1,
      mapName: (m) => defs.get(m)?.name ?? "",
    };
  }

  private checkMapDef(def: MapDef): void {
    if (def.pinning !== 0)
      throw new BpfError(
        "load",
        Errno.EOPNOTSUPP,
        `map '${def.name}': pinning (LIBBPF_PIN_BY_NAME) needs the kernel backend`,
      );
    if (!HASH_TYPES.has(def.type))
      throw new BpfError(
        "load",
        Errno.EOPNOTSUPP,
        `map '${def.name}': map type ${def.type} is not on the shared-memory backend yet (hash, percpu_hash, lru_hash, lru_percpu_hash)`,
      );
  }

  /**
   * Open and load an object's bytes: maps created, programs linked and decoded.
   * @throws BpfError EINVAL for a malformed object or program, EOPNOTSUPP for what is not supported (named)
   */
  static load(bytes: Uint8Array, opts: LoadOptions = {}): LoadedObject {
    return new LoadedObject(openObject(bytes, opts), opts);
  }

  /** What a worker posts to `LoadedObject.attach()` to run these programs on these maps. */
  handle(): ObjectHandle {
    if (this.domain !== null)
      return {
        spec: this.spec,
        maps: [],
        compiled: {
          domain: this.domain.handle,
          ids: this.mapList.map((m) => (m instanceof Htab ? m.info.id : 0)),
          raw: this.rawId,
        },
      };
    return {
      spec: this.spec,
      maps: this.mapList.map((m) =>
        m instanceof Htab ? m.handle : { global: m.bytes.buffer as SharedArrayBuffer },
      ),
    };
  }

  /**
   * The same object's maps and globals, attached in this thread on CPU slot `opts.cpu`.
   * @throws BpfError EINVAL for a handle that does not match its spec
   */
  static attach(handle: ObjectHandle, opts: { cpu?: number; budget?: number } = {}): LoadedObject {
    if (handle.compiled === undefined && handle.maps.length !== handle.spec.maps.length)
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

  /** The `.maps` map named after its C variable. */
  map(name: string): Htab {
    const i = this.spec.maps.findIndex((d) => d.name === name && !d.global);
    if (i < 0) throw new BpfError("map", Errno.ENOENT, `no map '${name}'`);
    return this.mapList[i] as Htab;
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

  /** @internal */
  defOf(m: Htab): MapDef {
    return this.defs.get(m) as MapDef;
  }
}
