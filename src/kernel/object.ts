/**
 * The kernel backend's object loader: one clang-built object
 * (`clang -O2 -g -target bpf -c`), opened and linked by bpf/loader.ts as for
 * the shared-memory backend, loaded into the kernel as libbpf loads it:
 *
 * - the object's BTF (its DATASECs fixed up) loaded once (BPF_BTF_LOAD);
 * - each `.maps` map created with its key and value BTF type ids (a value
 *   with a `struct bpf_spin_lock` needs them); `pinning` LIBBPF_PIN_BY_NAME
 *   reuses the map pinned at `<pinRoot>/<name>` when its type, sizes,
 *   max_entries and flags match (else EINVAL naming the field), or pins the
 *   new map there;
 * - each global section a single-element ARRAY map named as libbpf names it
 *   (`<object>.<section>`, 15 characters), its value type the section's
 *   DATASEC, holding its initial bytes; `.rodata*` frozen and
 *   BPF_F_RDONLY_PROG;
 * - each program's map references patched with the maps' fds
 *   (BPF_PSEUDO_MAP_FD; BPF_PSEUDO_MAP_VALUE keeps its offset), loaded with
 *   the object's BTF and the func_info and line_info of .BTF.ext carried
 *   through the linker (subprograms and callbacks need them).
 *
 * Runs are BPF_PROG_TEST_RUN (program.ts). Errors are BpfError with the
 * kernel's errno, naming the map or program; a verifier refusal carries the
 * verifier's log (VerifierError). A failed load closes what it made.
 */

import type { BpfObject, ObjectGlobal, ObjectProgram, ObjectRunResult } from "../bpf/index.js";
import {
  type BpfObjectSpec,
  type GlobalVar,
  type MapDef,
  type OpenOptions,
  openObject,
  type ProgramDef,
} from "../bpf/loader.js";
import type { RunOptions } from "../bpf/object.js";
import { BpfError, Errno } from "../errors.js";
import type { MapInfo } from "../map/raw-map.js";
import { MapType } from "../uapi.js";
import { bpfFfi } from "./bpf-syscall.js";
import { loadBtf } from "./btf-load.js";
import { KernelMap } from "./kernel-map.js";
import { type ExtInfo, parseExtInfo, programExtInfo } from "./object-btf.js";
import { type BpfProgram, loadProgram, openProgramFd, VerifierError } from "./program.js";

const LD_IMM64 = 0x18;
const BPF_MAP_TYPE_PROG_ARRAY = 3;
const PSEUDO_MAP_FD = 1;
const PSEUDO_MAP_VALUE = 2;
const LIBBPF_PIN_BY_NAME = 1;
const PROG_TYPE_SYSCALL = 31;
const BPF_F_SLEEPABLE = 1 << 4;

export interface KernelLoadOptions extends OpenOptions {
  /** Where LIBBPF_PIN_BY_NAME maps are pinned (libbpf's pin_root_path). @default "/sys/fs/bpf" */
  pinRoot?: string;
  /** Load only these programs (libbpf's bpf_program__set_autoload(false) for the others). @default all */
  programs?: readonly string[];
}

/** What a worker thread posts to `KernelObject.attach()`: file descriptors are per process, shared by its threads. */
export interface KernelObjectHandle {
  readonly spec: BpfObjectSpec;
  readonly maps: readonly { fd: number; info: MapInfo }[];
  readonly programs: readonly { fd: number; type: number }[];
}

/** The kernel's name for an object: [A-Za-z0-9_.], at most 15 characters (libbpf sanitizes the same way). */
function kernelName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.]/g, "_").slice(0, 15);
}

function named(op: string, what: string, e: unknown): never {
  if (e instanceof VerifierError) throw new VerifierError(op, e.errno, `${what}: ${e.detail}`, e.log);
  if (e instanceof BpfError) throw new BpfError(op, e.errno, `${what}: ${e.detail}`);
  throw e;
}

function specOf(def: MapDef) {
  return {
    type: def.type as MapType,
    keySize: def.keySize,
    valueSize: def.valueSize,
    maxEntries: def.maxEntries,
    flags: def.flags,
  };
}

/** The map pinned at `path` if there is one and it matches `def` (libbpf: map_is_reuse_compat), else undefined. */
function reusePinned(def: MapDef, where: string, path: string): KernelMap | undefined {
  try {
    return KernelMap.fromAnyType(() => KernelMap.fromPinned(path, specOf(def)));
  } catch (e) {
    if (e instanceof BpfError && e.errno === Errno.ENOENT) return undefined;
    named("load", `${where}: the map pinned at ${path} cannot be reused`, e);
  }
}

/**
 * What the loader records of a map-in-map or PROG_ARRAY definition
 * (`__array(values, …)`): the inner map's template and the initial slots
 * (`.values = { [i] = &x }`: a map index of the spec or a program name).
 */
type SlotDef = MapDef & {
  inner?: MapDef;
  slots?: { index: number; map?: number; program?: string }[];
};

function createMap(def: MapDef, where: string, btfFd: number): KernelMap {
  // libbpf gives a global's ARRAY map no key type and its DATASEC as the value type.
  const typed = btfFd >= 0 && def.valueType !== 0 && (def.keyType !== 0 || def.global !== undefined);
  const innerDef = (def as SlotDef).inner;
  const outer = def.type === MapType.ArrayOfMaps || def.type === MapType.HashOfMaps;
  if (outer && innerDef === undefined)
    throw new BpfError(
      "load",
      Errno.EINVAL,
      `${where}: a map-in-map needs its inner map (__array(values, …))`,
    );
  // The inner map's template: the kernel keeps its shape (inner_map_meta), so it is closed once the outer map exists.
  const inner = outer ? createMap(innerDef as MapDef, `${where}: its inner map`, btfFd) : undefined;
  try {
    return KernelMap.fromAnyType(() =>
      KernelMap.create(specOf(def), {
        name: kernelName(def.name),
        innerMap: inner,
        btf: typed && !outer ? { fd: btfFd, keyTypeId: def.keyType, valueTypeId: def.valueType } : undefined,
      }),
    );
  } catch (e) {
    return named("load", where, e);
  } finally {
    inner?.close();
  }
}

/** A global's initial bytes, then BPF_MAP_FREEZE for `.rodata`. */
function initGlobal(m: KernelMap, g: NonNullable<MapDef["global"]>, where: string): void {
  const r = m.updateElem(new Uint8Array(4), g.data, 0);
  if (r !== 0) throw new BpfError("load", -r, `${where}: writing its initial bytes: ${m.lastError}`);
  if (g.readonly) {
    const f = m.freeze();
    if (f !== 0) throw new BpfError("load", -f, `${where}: freeze: ${m.lastError}`);
  }
}

/** A global section of a kernel object: its single-element ARRAY map. */
export class KernelGlobal implements ObjectGlobal {
  readonly name: string;
  readonly section: string;
  readonly readonly: boolean;
  readonly vars: readonly GlobalVar[];
  private readonly key = new Uint8Array(4);

  constructor(
    def: MapDef,
    /** The ARRAY map holding the section. */
    readonly map: KernelMap,
  ) {
    const g = def.global as NonNullable<MapDef["global"]>;
    this.name = def.name;
    this.section = g.section;
    this.readonly = g.readonly;
    this.vars = g.vars;
  }

  read(): Uint8Array {
    const out = new Uint8Array(this.map.info.valueSize);
    const r = this.map.lookupElem(this.key, out, 0);
    if (r !== 0) throw new BpfError("global", -r, `${this.section}: ${this.map.lastError}`);
    return out;
  }

  /** @throws BpfError EPERM for a frozen `.rodata` (as the kernel answers) */
  write(bytes: Uint8Array, offset = 0): void {
    const cur = this.read();
    if (offset < 0 || offset + bytes.length > cur.length)
      throw new BpfError(
        "global",
        Errno.EINVAL,
        `${bytes.length} bytes at ${offset} do not fit ${this.section} (${cur.length} bytes)`,
      );
    cur.set(bytes, offset);
    const r = this.map.updateElem(this.key, cur, 0);
    if (r !== 0) throw new BpfError("global", -r, `${this.section}: ${this.map.lastError}`);
  }

  /** A copy of variable `name`'s bytes now. */
  variable(name: string): Uint8Array {
    const v = this.vars.find((x) => x.name === name);
    if (!v) throw new BpfError("global", Errno.ENOENT, `no variable '${name}' in ${this.section}`);
    return this.read().subarray(v.offset, v.offset + v.size);
  }
}

/** A program of a kernel object. */
export class KernelProgram implements ObjectProgram {
  constructor(
    readonly def: ProgramDef,
    /** The loaded program (BPF_PROG_LOAD's fd). */
    readonly prog: BpfProgram,
  ) {}

  get name(): string {
    return this.def.name;
  }

  /**
   * BPF_PROG_TEST_RUN: `data` is the packet (XDP, socket filter, tc);
   * `ctx` the context (a syscall program's); `cpu` this run only.
   * @throws BpfError with the kernel's errno (EINVAL for data the program type refuses)
   */
  run(data: Uint8Array, opts: RunOptions = {}): ObjectRunResult {
    return this.prog.run(data, opts);
  }
}

/** An object loaded into the kernel. */
export class KernelObject implements BpfObject {
  readonly spec: BpfObjectSpec;
  /** The maps by index, as the linked programs number them (globals included). */
  readonly mapList: KernelMap[] = [];
  readonly globals: KernelGlobal[] = [];
  readonly programList: KernelProgram[] = [];
  /** False for a view made by attach(): closing it closes nothing. */
  private owned = true;
  private closed = false;

  private constructor(spec: BpfObjectSpec) {
    this.spec = spec;
  }

  /**
   * Open, link and load an object's bytes into the kernel.
   * @throws BpfError EINVAL/EOPNOTSUPP from the loader; the kernel's errno (named map or program) from the load
   */
  static load(bytes: Uint8Array, opts: KernelLoadOptions = {}): KernelObject {
    return KernelObject.fromSpec(openObject(bytes, opts), opts);
  }

  /** Load an opened object (openObject()'s spec). */
  static fromSpec(spec: BpfObjectSpec, opts: KernelLoadOptions = {}): KernelObject {
    const o = new KernelObject(spec);
    let btfFd = -1;
    try {
      if (spec.btfBytes !== undefined) btfFd = loadBtf(spec.btfBytes);
      for (const def of spec.maps) o.addMap(def, btfFd, opts.pinRoot ?? "/sys/fs/bpf");
      const ext =
        spec.btfExtBytes !== undefined && spec.btfBytes !== undefined
          ? parseExtInfo(spec.btfExtBytes, spec.btfBytes)
          : undefined;
      for (const p of spec.programs)
        if (opts.programs === undefined || opts.programs.includes(p.name))
          o.programList.push(new KernelProgram(p, o.loadOne(p, btfFd, ext)));
      for (const [i, def] of spec.maps.entries()) o.fillSlots(def as SlotDef, o.mapList[i]);
      return o;
    } catch (e) {
      o.close();
      throw e;
    } finally {
      if (btfFd >= 0) bpfFfi().close(btfFd); // maps and programs hold their own references
    }
  }

  private addMap(def: MapDef, btfFd: number, pinRoot: string): void {
    const where = def.global ? `global '${def.name}' (${def.global.section})` : `map '${def.name}'`;
    const pinPath = def.pinning === LIBBPF_PIN_BY_NAME ? `${pinRoot}/${def.name}` : undefined;
    const reused = pinPath === undefined ? undefined : reusePinned(def, where, pinPath);
    if (reused !== undefined) {
      this.mapList.push(reused);
      return;
    }
    const m = createMap(def, where, btfFd);
    this.mapList.push(m);
    if (def.global) {
      this.globals.push(new KernelGlobal(def, m));
      initGlobal(m, def.global, where);
    }
    if (pinPath !== undefined)
      try {
        m.pin(pinPath);
      } catch (e) {
        named("load", `${where}: pinning at ${pinPath}`, e);
      }
  }

  /** A map-in-map's or PROG_ARRAY's initial slots: the fd of the map or program each one names. */
  /**
   * Put program `program` in slot `index` of PROG_ARRAY `map` (null: empty
   * the slot), as on the shared-memory backend's LoadedObject.
   * @throws BpfError ENOENT for an unknown map or program, EINVAL for a map that is no PROG_ARRAY, the kernel's errno from the update
   */
  setTailCall(map: string, index: number, program: string | null): void {
    const i = this.spec.maps.findIndex((d) => d.name === map);
    if (i < 0) throw new BpfError("update", Errno.ENOENT, `no map '${map}'`);
    if (this.spec.maps[i].type !== BPF_MAP_TYPE_PROG_ARRAY)
      throw new BpfError("update", Errno.EINVAL, `map '${map}' is not a PROG_ARRAY`);
    const m = this.mapList[i];
    const key = new Uint8Array(new Uint32Array([index]).buffer);
    let r: number;
    if (program === null) {
      r = m.deleteElem(key);
      if (r === -Errno.ENOENT) r = 0;
    } else {
      const p = this.programList.find((x) => x.name === program);
      if (p === undefined) throw new BpfError("update", Errno.ENOENT, `no program '${program}'`);
      r = m.updateElem(key, new Uint8Array(new Uint32Array([p.prog.fd]).buffer), 0);
    }
    if (r !== 0) throw new BpfError("update", -r, `${map}[${index}]: ${m.lastError}`);
  }

  private fillSlots(def: SlotDef, m: KernelMap): void {
    for (const slot of def.slots ?? []) {
      const what = `map '${def.name}' slot ${slot.index}`;
      let fd: number | undefined;
      if (slot.map !== undefined) fd = this.mapList[slot.map]?.fd;
      else if (slot.program !== undefined)
        fd = this.programList.find((p) => p.name === slot.program)?.prog.fd;
      if (fd === undefined)
        throw new BpfError("load", Errno.EINVAL, `${what}: names no map or program of the object`);
      const key = new Uint8Array(4);
      new DataView(key.buffer).setUint32(0, slot.index, true);
      const value = new Uint8Array(4);
      new DataView(value.buffer).setUint32(0, fd, true);
      const r = m.updateElem(key, value, 0);
      if (r !== 0) throw new BpfError("load", -r, `${what}: ${m.lastError}`);
    }
  }

  private loadOne(p: ProgramDef, btfFd: number, ext: ExtInfo | undefined): BpfProgram {
    const insns = p.insns.map((x) => ({ ...x }));
    for (const x of insns)
      if (x.code === LD_IMM64 && (x.src === PSEUDO_MAP_FD || x.src === PSEUDO_MAP_VALUE)) {
        const m = this.mapList[x.imm];
        if (m === undefined)
          throw new BpfError(
            "load",
            Errno.EINVAL,
            `program '${p.name}': map index ${x.imm} is not a map of the object`,
          );
        x.imm = m.fd;
      }
    try {
      return loadProgram(insns, {
        type: p.type,
        license: this.spec.license,
        name: kernelName(p.name),
        // libbpf loads "syscall" programs sleepable; the kernel takes them no other way.
        flags: p.type === PROG_TYPE_SYSCALL ? BPF_F_SLEEPABLE : 0,
        btf: btfFd >= 0 && ext !== undefined ? { fd: btfFd, ...programExtInfo(p, ext) } : undefined,
      });
    } catch (e) {
      named("load", `program '${p.name}' (${p.section})`, e);
    }
  }

  /** What a worker thread posts to `KernelObject.attach()`. */
  handle(): KernelObjectHandle {
    return {
      spec: this.spec,
      maps: this.mapList.map((m) => m.handle),
      programs: this.programList.map((p) => ({ fd: p.prog.fd, type: p.prog.type })),
    };
  }

  /**
   * The same loaded object in another thread of this process (its fds, not
   * duplicated: the loading thread keeps it open while workers use it). A
   * run there takes `cpu` per run, as here.
   * @throws BpfError EINVAL for a handle that does not match its spec or its fds
   */
  static attach(handle: KernelObjectHandle): KernelObject {
    const { spec } = handle;
    if (handle.maps.length !== spec.maps.length || handle.programs.length !== spec.programs.length)
      throw new BpfError("attach", Errno.EINVAL, "the handle's maps or programs do not match its spec");
    const o = new KernelObject(spec);
    o.owned = false;
    spec.maps.forEach((def, i) => {
      const m = KernelMap.fromAnyType(() => KernelMap.fromHandle(handle.maps[i]));
      o.mapList.push(m);
      if (def.global) o.globals.push(new KernelGlobal(def, m));
    });
    spec.programs.forEach((p, i) => {
      o.programList.push(new KernelProgram(p, openProgramFd(handle.programs[i].fd, handle.programs[i].type)));
    });
    return o;
  }

  map(name: string): KernelMap {
    const i = this.spec.maps.findIndex((d) => d.name === name && !d.global);
    if (i < 0) throw new BpfError("map", Errno.ENOENT, `no map '${name}'`);
    return this.mapList[i];
  }

  global(name: string): KernelGlobal {
    const g = this.globals.find((x) => x.name === name || x.section === name);
    if (!g) throw new BpfError("global", Errno.ENOENT, `no global section '${name}'`);
    return g;
  }

  program(name: string): KernelProgram {
    const p = this.programList.find((x) => x.name === name);
    if (!p)
      throw new BpfError(
        "program",
        Errno.ENOENT,
        `no program '${name}' (have: ${this.programList.map((x) => x.name).join(", ")})`,
      );
    return p;
  }

  /** Close the programs and maps (pinned maps live on in bpffs). A view from attach() closes nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.owned) return;
    for (const p of this.programList) p.prog.close();
    for (const m of this.mapList) m.close();
  }
}
