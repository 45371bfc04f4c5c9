/**
 * From a relocatable BPF object (clang -O2 -g -target bpf -c) to programs
 * ready to run: what libbpf's open does and what a map-centric program
 * needs, as a pipeline like cilium/ebpf's (ELF reader, then linker).
 *
 * - Maps: BTF-defined `.maps` (`__uint(type, …)`, `__uint(max_entries, …)`,
 *   `__uint(map_flags, …)`, `__type(key, …)`/`__type(value, …)` or
 *   `__uint(key_size/value_size, …)`, `__uint(pinning, …)`), in section order.
 * - Globals: `.data`, `.bss`, `.rodata` and `.data.*`/`.rodata.*` become
 *   single-element ARRAY maps named as libbpf names them (the object name's
 *   first 8 characters, then the section name, at most 15 characters), with
 *   their initial bytes and their variables (from the BTF DATASEC and the
 *   ELF symbols). `.rodata*` is read-only to programs (BPF_F_RDONLY_PROG).
 * - Programs: every global function of a section named `xdp`, `socket`,
 *   `tc`/`classifier`/`tcx`, `syscall`, `tracepoint`/`tp` (with or without a
 *   `/suffix`), named after the C function. Functions in `.text` are
 *   subprograms, appended once to each program that calls them (bpf-to-bpf
 *   calls and BPF_PSEUDO_FUNC callback addresses), as libbpf appends them.
 * - Relocations: ld_imm64 of a map (BPF_PSEUDO_MAP_FD, imm = the map's
 *   index in `maps`), of a global (BPF_PSEUDO_MAP_VALUE, imm = index, second
 *   imm = offset), of a function (BPF_PSEUDO_FUNC, pc-relative), and calls.
 *
 * Refused with a BpfError naming the section, symbol or instruction:
 * malformed objects (EINVAL); externs (ksyms, kconfig), kfuncs, the legacy
 * `maps` section, other program sections, static functions in program
 * sections, relocations of an unknown kind (EOPNOTSUPP).
 *
 * Map-in-map (`__array(values, struct inner)`) and PROG_ARRAY
 * (`__array(values, int (void *))`) definitions carry their inner template
 * and their initial slots (`.values = { … }`) for the object to create.
 */

import { type Btf, BtfKind, parseBtf, resolveType, typeSize } from "../btf/btf.js";
import { BpfError, Errno } from "../errors.js";
import { CORE_RELO_KINDS, coreRelos, lineInfo, lineOf, type SourceLine } from "./btf-ext.js";
import {
  type ElfFile,
  type ElfSection,
  type ElfSymbol,
  parseElf,
  RelType,
  SHN_UNDEF,
  ShFlag,
  ShType,
  SymBind,
  SymType,
} from "./elf.js";
import { Class, decodeInsns, type Insn, JmpOp, Mode, PseudoCall, PseudoLd, Size } from "./isa.js";

/** BPF_PROG_TYPE_* of the sections the loader knows. */
export const ProgType = { SocketFilter: 1, SchedCls: 3, Tracepoint: 5, Xdp: 6, Syscall: 31 } as const;

const SECTIONS: [string, number][] = [
  ["xdp", ProgType.Xdp],
  ["socket", ProgType.SocketFilter],
  ["tc", ProgType.SchedCls],
  ["tcx", ProgType.SchedCls],
  ["classifier", ProgType.SchedCls],
  ["syscall", ProgType.Syscall],
  ["tracepoint", ProgType.Tracepoint],
  ["tp", ProgType.Tracepoint],
];

/** The program type of a section name, or undefined. */
export function sectionProgType(name: string): number | undefined {
  for (const [prefix, type] of SECTIONS)
    if (name === prefix || name.startsWith(`${prefix}/`) || name.startsWith(`${prefix}.`)) return type;
  return undefined;
}

/** One variable of a global section. */
export interface GlobalVar {
  name: string;
  offset: number;
  size: number;
  /** BTF type id of the variable's type (0 without BTF). */
  type: number;
}

/** A map of the object: a `.maps` definition or a global section. */
export interface MapDef {
  /** The C variable's name, or for a global libbpf's `<obj>.<section>` name. */
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** LIBBPF_PIN_* (0: none, 1: by name). */
  pinning: number;
  /** BTF type ids of key and value (0 when given as sizes). */
  keyType: number;
  valueType: number;
  /** Byte offset of a `struct bpf_spin_lock` in the value, when it has one. */
  spinLockOffset?: number;
  /** For a global section: its name, initial bytes, whether programs may write it, its variables. */
  global?: { section: string; data: Uint8Array; readonly: boolean; vars: GlobalVar[] };
  /** ARRAY_OF_MAPS / HASH_OF_MAPS: the inner map template (`__array(values, struct inner)`). */
  inner?: MapDef;
  /**
   * Initial slots of a map-in-map or a PROG_ARRAY (`.values = { [i] = &x }`,
   * from the relocations of `.maps`): slot index and the map (its index in
   * `maps`) or the program (its name) it holds.
   */
  slots?: { index: number; map?: number; program?: string }[];
  /** Byte offset of the `values` member in the definition (where the slot relocations point). */
  valuesOffset?: number;
}

/** A linked program: its instructions with calls and callbacks appended and relocations applied. */
export interface ProgramDef {
  name: string;
  section: string;
  type: number;
  insns: Insn[];
  /** Per linked instruction, its C source line (from .BTF.ext line info), where the object has it. */
  lines: (SourceLine | undefined)[];
  /** Per linked instruction, where it came from: its code section and index there (a kernel load maps .BTF.ext's func and line info through it). */
  origin: { section: string; insn: number }[];
}

/** An opened object: maps, programs, license, the raw BTF for a kernel load. */
export interface BpfObjectSpec {
  name: string;
  license: string;
  maps: MapDef[];
  programs: ProgramDef[];
  btf?: Btf;
  btfBytes?: Uint8Array;
  btfExtBytes?: Uint8Array;
}

export interface OpenOptions {
  /** The object's name (libbpf: the file's base name up to its first '.'). @default "obj" */
  name?: string;
  /** Treat the global functions of `.text` as programs too (the conformance suite's ELF has its `main` there). */
  textPrograms?: boolean;
}

const MapType = { Array: 2, ProgArray: 3, ArrayOfMaps: 12, HashOfMaps: 13 } as const;
const F_RDONLY_PROG = 1 << 7;
const F_MMAPABLE = 1 << 10;

function unsupported(what: string): never {
  throw new BpfError("load", Errno.EOPNOTSUPP, what);
}
function malformed(what: string): never {
  throw new BpfError("load", Errno.EINVAL, what);
}

/** libbpf's internal map name: the object name's first 8 characters and the section name, at most 15 characters. */
export function globalMapName(object: string, section: string): string {
  return `${object.slice(0, 8)}${section}`.slice(0, 15);
}

function isGlobalSection(s: ElfSection): boolean {
  const n = s.name;
  return (
    (s.type === ShType.PROGBITS || s.type === ShType.NOBITS) &&
    (n === ".data" || n === ".bss" || n === ".rodata" || n.startsWith(".data.") || n.startsWith(".rodata."))
  );
}

/** A BTF map definition's members (libbpf: parse_btf_map_def). */
function mapDefOf(btf: Btf, varName: string, typeId: number): MapDef {
  const where = `map '${varName}'`;
  const st = resolveType(btf, typeId);
  if (st.kind !== BtfKind.Struct) malformed(`${where}: its BTF type is not a struct`);
  const def: MapDef = {
    name: varName,
    type: 0,
    keySize: 0,
    valueSize: 0,
    maxEntries: 0,
    flags: 0,
    pinning: 0,
    keyType: 0,
    valueType: 0,
  };
  /** `int (*name)[N]`: N. */
  const uintOf = (member: string, t: number): number => {
    const p = resolveType(btf, t);
    if (p.kind !== BtfKind.Ptr) malformed(`${where}: '${member}' is not a __uint() (pointer to an array)`);
    const arr = resolveType(btf, p.type);
    if (arr.kind !== BtfKind.Array)
      malformed(`${where}: '${member}' is not a __uint() (pointer to an array)`);
    return arr.nelems;
  };
  /** `T *name`: T. */
  const typeOf = (member: string, t: number): number => {
    const p = resolveType(btf, t);
    if (p.kind !== BtfKind.Ptr) malformed(`${where}: '${member}' is not a __type() (a pointer)`);
    return p.type;
  };
  for (const m of st.members) {
    switch (m.name) {
      case "type":
        def.type = uintOf(m.name, m.type);
        break;
      case "max_entries":
        def.maxEntries = uintOf(m.name, m.type);
        break;
      case "map_flags":
        def.flags = uintOf(m.name, m.type);
        break;
      case "key_size":
        def.keySize = uintOf(m.name, m.type);
        break;
      case "value_size":
        def.valueSize = uintOf(m.name, m.type);
        break;
      case "pinning":
        def.pinning = uintOf(m.name, m.type);
        if (def.pinning > 1)
          malformed(`${where}: pinning ${def.pinning} is not LIBBPF_PIN_NONE or LIBBPF_PIN_BY_NAME`);
        break;
      case "numa_node":
        uintOf(m.name, m.type);
        break;
      case "key": {
        def.keyType = typeOf(m.name, m.type);
        const size = typeSize(btf, def.keyType);
        if (def.keySize !== 0 && def.keySize !== size)
          malformed(`${where}: key_size ${def.keySize} and key type size ${size} differ`);
        def.keySize = size;
        break;
      }
      case "value": {
        def.valueType = typeOf(m.name, m.type);
        const size = typeSize(btf, def.valueType);
        if (def.valueSize !== 0 && def.valueSize !== size)
          malformed(`${where}: value_size ${def.valueSize} and value type size ${size} differ`);
        def.valueSize = size;
        const vt = resolveType(btf, def.valueType);
        if (vt.kind === BtfKind.Struct)
          for (const f of vt.members) {
            const ft = resolveType(btf, f.type);
            if (ft.kind === BtfKind.Struct && ft.name === "bpf_spin_lock")
              def.spinLockOffset = f.bitOffset / 8;
          }
        break;
      }
      case "values": {
        // `__array(values, T)`: an array of pointers to T, a map definition (map-in-map) or a function (PROG_ARRAY).
        const arr = resolveType(btf, m.type);
        if (arr.kind !== BtfKind.Array) malformed(`${where}: 'values' is not an __array()`);
        const p = resolveType(btf, arr.elemType);
        if (p.kind !== BtfKind.Ptr) malformed(`${where}: 'values' is not an array of pointers`);
        const t = resolveType(btf, p.type);
        if (t.kind === BtfKind.Struct) def.inner = mapDefOf(btf, `${varName}.inner`, p.type);
        else if (t.kind !== BtfKind.FuncProto)
          malformed(`${where}: 'values' holds neither map definitions nor functions`);
        if (def.valueSize !== 0 && def.valueSize !== 4)
          malformed(`${where}: value_size ${def.valueSize} with __array(values, …) (must be 4)`);
        def.valueSize = 4;
        def.valuesOffset = m.bitOffset / 8;
        break;
      }
      default:
        malformed(`${where}: unknown map definition field '${m.name}'`);
    }
  }
  if (def.type === 0) malformed(`${where}: no map type (__uint(type, …))`);
  if (def.valuesOffset !== undefined) {
    const outer = def.type === MapType.ArrayOfMaps || def.type === MapType.HashOfMaps;
    if (outer !== (def.inner !== undefined) || (!outer && def.type !== MapType.ProgArray))
      malformed(
        `${where}: __array(values, …) of ${def.inner ? "maps" : "functions"} in a map of type ${def.type}`,
      );
    if (def.inner?.inner !== undefined) malformed(`${where}: an inner map cannot itself be a map-in-map`);
    def.slots = [];
  } else if (def.type === MapType.ArrayOfMaps || def.type === MapType.HashOfMaps)
    malformed(`${where}: a map-in-map needs its inner map's definition (__array(values, …))`);
  return def;
}

interface Fn {
  sec: number;
  start: number;
  end: number;
  name: string;
}

/**
 * Open an object: read its ELF and BTF, collect its maps, globals and
 * programs, and link each program.
 * @throws BpfError EINVAL for a malformed object, EOPNOTSUPP for what the loader does not support (named)
 */
export function openObject(bytes: Uint8Array, opts: OpenOptions = {}): BpfObjectSpec {
  const elf: ElfFile = parseElf(bytes);
  const objName = opts.name ?? "obj";
  const byName = new Map(elf.sections.map((s) => [s.name, s]));
  const licSec = byName.get("license");
  const license = licSec ? new TextDecoder().decode(licSec.data).replace(/\0[\s\S]*$/, "") : "";
  refuseSections(byName);
  const btfSec = byName.get(".BTF");
  if (btfSec) parseBtf(btfSec.data); // refuses a malformed blob before the fixup walks it
  const btfBytes = btfSec ? fixupDatasecs(btfSec.data, elf) : undefined;
  const btf = btfBytes ? parseBtf(btfBytes) : undefined;

  // Maps: .maps variables, in the order of their ELF symbols' offsets.
  const maps: MapDef[] = [];
  const symOf: ElfSymbol[] = [];
  /** Map index by section index and byte offset of its symbol. */
  const mapAt = new Map<string, number>();
  const mapsSec = byName.get(".maps");
  if (mapsSec) {
    if (!btf) malformed("section '.maps' needs the object's BTF (compile with -g)");
    const ds = btf.types.find((t) => t.kind === BtfKind.Datasec && t.name === ".maps");
    if (!ds) malformed("section '.maps' has no BTF DATASEC");
    const syms = elf.symbols.filter((s) => s.shndx === mapsSec.index && s.type === SymType.OBJECT);
    for (const vi of ds.secinfo) {
      const v = btf.types[vi.type];
      if (!v || v.kind !== BtfKind.Var) malformed("DATASEC '.maps' holds a type that is not a variable");
      const sym = syms.find((s) => s.name === v.name);
      if (!sym) malformed(`map '${v.name}' has no ELF symbol in '.maps'`);
      mapAt.set(`${mapsSec.index}:${sym.value}`, maps.length);
      maps.push(mapDefOf(btf, v.name, v.type));
      symOf.push(sym);
    }
    initialSlots(elf, mapsSec, maps, symOf, mapAt);
  }
  // Globals.
  for (const s of elf.sections) {
    if (!isGlobalSection(s)) continue;
    if (s.size === 0) continue;
    checkGlobalSize(s);
    const readonly = s.name.startsWith(".rodata");
    const data = new Uint8Array(s.size);
    if (s.type === ShType.PROGBITS) data.set(s.data);
    const vars: GlobalVar[] = [];
    const ds = btf?.types.find((t) => t.kind === BtfKind.Datasec && t.name === s.name);
    if (btf && ds)
      for (const vi of ds.secinfo) {
        const v = btf.types[vi.type];
        if (!v || v.kind !== BtfKind.Var) continue;
        const sym = elf.symbols.find(
          (x) => x.shndx === s.index && x.name === v.name && x.type === SymType.OBJECT,
        );
        vars.push({
          name: v.name,
          offset: sym ? sym.value : vi.offset,
          size: typeSize(btf, v.type),
          type: v.type,
        });
      }
    else
      for (const x of elf.symbols)
        if (x.shndx === s.index && x.type === SymType.OBJECT)
          vars.push({ name: x.name, offset: x.value, size: x.size, type: 0 });
    mapAt.set(`${s.index}:global`, maps.length);
    maps.push({
      name: globalMapName(objName, s.name),
      type: MapType.Array,
      keySize: 4,
      valueSize: s.size,
      maxEntries: 1,
      flags: readonly ? F_RDONLY_PROG | F_MMAPABLE : F_MMAPABLE,
      pinning: 0,
      keyType: 0,
      valueType: ds?.id ?? 0,
      global: { section: s.name, data, readonly, vars },
    });
  }

  // Functions of executable sections.
  const code = new Map<number, Insn[]>();
  const fns: Fn[] = [];
  const entries: (Fn & { type: number })[] = [];
  for (const s of elf.sections) {
    if (s.type !== ShType.PROGBITS || (s.flags & ShFlag.EXECINSTR) === 0) continue;
    if (s.size % 8 !== 0) malformed(`section '${s.name}': ${s.size} bytes are not whole instructions`);
    code.set(s.index, decodeInsns(s.data, "load"));
    const isText = s.name === ".text";
    const type = isText ? ProgType.Xdp : sectionProgType(s.name);
    if (type === undefined && s.size > 0)
      unsupported(
        `section '${s.name}': program type not supported (xdp, socket, tc, classifier, tcx, syscall, tracepoint, tp)`,
      );
    const funcs = elf.symbols.filter((x) => x.shndx === s.index && x.type === SymType.FUNC);
    if (funcs.length === 0 && !isText && s.size > 0)
      funcs.push({
        index: -1,
        name: s.name,
        value: 0,
        size: s.size,
        type: SymType.FUNC,
        bind: SymBind.GLOBAL,
        shndx: s.index,
      });
    for (const f of funcs) {
      if (f.value % 8 !== 0 || f.size % 8 !== 0 || f.value + f.size > s.size)
        malformed(`function '${f.name}' in '${s.name}' is not whole instructions inside its section`);
      const fn = { sec: s.index, start: f.value / 8, end: (f.value + f.size) / 8, name: f.name };
      fns.push(fn);
      if (!isText || (opts.textPrograms && f.bind !== SymBind.LOCAL)) {
        if (f.bind === SymBind.LOCAL)
          unsupported(
            `section '${s.name}': program '${f.name}' is static, which libbpf does not support either`,
          );
        entries.push({ ...fn, type: type as number });
      }
    }
  }
  const secName = (i: number) => elf.sections[i]?.name ?? `#${i}`;
  const ext = byName.get(".BTF.ext");
  const lines = ext && btfBytes ? lineInfo(ext.data, btfBytes) : new Map();
  checkCoreRelos(ext, btfBytes, btf, code, byName);
  const programs = entries.map((e) => {
    const { insns, origin } = link(e, elf, code, fns, mapAt);
    return {
      name: e.name,
      section: secName(e.sec),
      type: e.type,
      insns,
      lines: origin.map((o) => lineOf(lines.get(secName(o.sec)), o.idx)),
      origin: origin.map((o) => ({ section: secName(o.sec), insn: o.idx })),
    };
  });
  return {
    name: objName,
    license,
    maps,
    programs,
    btf,
    btfBytes,
    btfExtBytes: ext ? new Uint8Array(ext.data) : undefined,
  };
}

/**
 * The initial slots of map-in-maps and PROG_ARRAYs: `.values = { [i] = &x }`
 * leaves a relocation against x at the slot's pointer in `.maps`
 * (libbpf: bpf_object__collect_map_relos).
 */
function initialSlots(
  elf: ElfFile,
  mapsSec: ElfSection,
  maps: MapDef[],
  syms: ElfSymbol[],
  mapAt: Map<string, number>,
): void {
  for (const r of elf.rels.get(mapsSec.index) ?? []) {
    const i = syms.findIndex((s) => r.offset >= s.value && r.offset < s.value + Math.max(s.size, 1));
    if (i < 0) malformed(`'.maps': a relocation at byte ${r.offset} is in no map`);
    const def = maps[i];
    const sym = elf.symbols[r.sym];
    if (!sym) malformed(`'.maps': a relocation names symbol ${r.sym}, which does not exist`);
    const at = r.offset - syms[i].value - (def.valuesOffset ?? 0);
    if (def.slots === undefined || at < 0 || at % 8 !== 0)
      malformed(`map '${def.name}': a relocation at byte ${r.offset} is not a slot of __array(values, …)`);
    const index = at / 8;
    if (index >= def.maxEntries && def.type !== MapType.HashOfMaps)
      malformed(`map '${def.name}': initial slot ${index} is past max_entries ${def.maxEntries}`);
    if (def.inner !== undefined) {
      const m = sym.shndx === mapsSec.index ? mapAt.get(`${mapsSec.index}:${sym.value}`) : undefined;
      if (m === undefined)
        malformed(`map '${def.name}': slot ${index} holds '${sym.name}', which is not a map`);
      def.slots.push({ index, map: m });
    } else {
      const sec = elf.sections[sym.shndx];
      if (sym.type !== SymType.FUNC || !sec || (sec.flags & ShFlag.EXECINSTR) === 0)
        malformed(`map '${def.name}': slot ${index} holds '${sym.name}', which is not a program`);
      def.slots.push({ index, program: sym.name });
    }
  }
}

/** A global's bytes are one map value: the kernel refuses a value_size of 2^31 or more (E2BIG). */
const MAX_VALUE_SIZE = 2 ** 31 - 1;
/** This backend's bound on one global section (a NOBITS section's size costs no file bytes). */
export const MAX_GLOBAL_BYTES = 64 * 1024 * 1024;

function checkGlobalSize(s: ElfSection): void {
  if (s.size > MAX_VALUE_SIZE)
    throw new BpfError(
      "load",
      Errno.E2BIG,
      `section '${s.name}': ${s.size} bytes, over the kernel's map value limit`,
    );
  if (s.size > MAX_GLOBAL_BYTES)
    throw new BpfError(
      "load",
      Errno.ENOMEM,
      `section '${s.name}': ${s.size} bytes, over this backend's ${MAX_GLOBAL_BYTES}-byte bound for a global section`,
    );
}

/** Sections this loader refuses whole. */
function refuseSections(byName: Map<string, ElfSection>): void {
  if (byName.has("maps"))
    unsupported(
      "section 'maps': legacy map definitions (struct bpf_map_def) are not supported; use BTF-defined maps in '.maps'",
    );
  if (byName.has(".jumptables"))
    unsupported("section '.jumptables': jump tables (indirect jumps, gotox) are not supported");
}

/**
 * CO-RE relocations resolve against the object's own BTF, which is the only
 * BTF here: the offsets and sizes clang compiled in stand (what libbpf
 * computes when the target type is the local one). Nothing here reads kernel
 * memory, and the contexts the kernel rewrites (__sk_buff, xdp_md) are UAPI
 * with a fixed layout, so that is exact for what runs. A relocation whose
 * type the object only declares (a forward declaration, a kernel type it
 * never defines) needs the kernel's BTF: refused, naming it.
 */
function checkCoreRelos(
  ext: ElfSection | undefined,
  btfBytes: Uint8Array | undefined,
  btf: Btf | undefined,
  code: Map<number, Insn[]>,
  byName: Map<string, ElfSection>,
): void {
  if (!ext || !btfBytes || !btf) return;
  for (const r of coreRelos(ext.data, btfBytes)) {
    const sec = byName.get(r.section);
    const kind = CORE_RELO_KINDS[r.kind] ?? `kind ${r.kind}`;
    const where = `section '${r.section}', insn ${r.insn}: CO-RE relocation (${kind}, access "${r.access}")`;
    if (!sec || !code.has(sec.index) || r.insn >= (code.get(sec.index) as Insn[]).length)
      malformed(`${where} is not on an instruction of a code section`);
    if (r.kind >= CORE_RELO_KINDS.length) malformed(`${where}: unknown relocation kind`);
    const t = btf.types[r.typeId];
    if (t === undefined || r.typeId === 0) malformed(`${where}: no BTF type ${r.typeId}`);
    const root = resolveType(btf, r.typeId);
    if (root.kind === BtfKind.Fwd)
      unsupported(
        `${where} against '${root.name}', which the object only declares: kernel BTF is not resolved here, only the object's own`,
      );
  }
}

/** Bytes of each BTF kind's record after the 12-byte common header (vlen: its entry count). */
function btfRecordBytes(kind: number, vlen: number): number {
  switch (kind) {
    case BtfKind.Int:
    case BtfKind.Var:
    case BtfKind.DeclTag:
      return 4;
    case BtfKind.Array:
      return 12;
    case BtfKind.Struct:
    case BtfKind.Union:
    case BtfKind.Datasec:
    case BtfKind.Enum64:
      return 12 * vlen;
    case BtfKind.Enum:
    case BtfKind.FuncProto:
      return 8 * vlen;
    default:
      return 0;
  }
}

/**
 * What libbpf does before BPF_BTF_LOAD (btf_fixup_datasec): clang leaves
 * each DATASEC's size and its variables' offsets at 0 in the object; the
 * kernel refuses that. A copy of the BTF with the sizes of the ELF sections
 * and the offsets of the variables' symbols.
 */
function fixupDatasecs(blob: Uint8Array, elf: ElfFile): Uint8Array {
  const out = new Uint8Array(blob); // a copy, also when `blob` is a view into a Node Buffer's pool
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (out.length < 24) malformed(".BTF: shorter than its header");
  const hdr = dv.getUint32(4, true);
  const tStart = hdr + dv.getUint32(8, true);
  const tEnd = tStart + dv.getUint32(12, true);
  const sStart = hdr + dv.getUint32(16, true);
  const sLen = dv.getUint32(20, true);
  if (tEnd > out.length || sStart + sLen > out.length) malformed(".BTF: sections run past the blob");
  const str = (off: number) => {
    let e = sStart + off;
    while (e < sStart + sLen && out[e] !== 0) e++;
    return new TextDecoder().decode(out.subarray(sStart + off, e));
  };
  const nameOfVar: string[] = [""];
  const datasecs: number[] = [];
  for (let p = tStart; p + 12 <= tEnd; ) {
    const info = dv.getUint32(p + 4, true);
    const kind = (info >>> 24) & 0x1f;
    if (kind === BtfKind.Datasec) datasecs.push(p);
    nameOfVar.push(kind === BtfKind.Var ? str(dv.getUint32(p, true)) : "");
    p += 12 + btfRecordBytes(kind, info & 0xffff);
    if (p > tEnd) malformed(".BTF: a type runs past the type section");
  }
  for (const p of datasecs) {
    const name = str(dv.getUint32(p, true));
    const sec = elf.sections.find((x) => x.name === name);
    if (!sec) continue;
    dv.setUint32(p + 8, sec.size, true);
    const vlen = dv.getUint32(p + 4, true) & 0xffff;
    for (let i = 0; i < vlen; i++) {
      const e = p + 12 + i * 12;
      const varName = nameOfVar[dv.getUint32(e, true)] ?? "";
      const sym = elf.symbols.find(
        (x) => x.shndx === sec.index && x.name === varName && x.type === SymType.OBJECT,
      );
      if (sym) dv.setUint32(e + 4, sym.value, true);
    }
  }
  return out;
}

/** One program with its subprograms appended, relocations applied (libbpf: bpf_object__relocate). */
function link(
  entry: Fn,
  elf: ElfFile,
  code: Map<number, Insn[]>,
  fns: Fn[],
  mapAt: Map<string, number>,
): { insns: Insn[]; origin: { sec: number; idx: number }[] } {
  const out: Insn[] = [];
  const origin: { sec: number; idx: number }[] = [];
  const placed = new Map<Fn, number>();
  const relsBy = new Map<number, Map<number, { sym: ElfSymbol; type: number }>>();
  for (const [sec, list] of elf.rels) {
    const m = new Map<number, { sym: ElfSymbol; type: number }>();
    for (const r of list) m.set(r.offset, { sym: elf.symbols[r.sym], type: r.type });
    relsBy.set(sec, m);
  }
  const secName = (i: number) => elf.sections[i]?.name ?? `#${i}`;
  const place = (fn: Fn): number => {
    const known = placed.get(fn);
    if (known !== undefined) return known;
    const at = out.length;
    placed.set(fn, at);
    const src = code.get(fn.sec) as Insn[];
    for (let i = fn.start; i < fn.end; i++) {
      out.push({ ...src[i] });
      origin.push({ sec: fn.sec, idx: i });
    }
    return at;
  };
  /** The linked index of instruction `idx` of section `sec`, appending its function if needed. */
  const target = (sec: number, idx: number, from: string): number => {
    if (sec === entry.sec && idx >= entry.start && idx < entry.end)
      return (placed.get(entry) as number) + idx - entry.start;
    const fn = fns.find((f) => f.sec === sec && idx >= f.start && idx < f.end);
    if (!fn) malformed(`${from}: target instruction ${idx} of '${secName(sec)}' is in no function`);
    if (secName(sec) !== ".text")
      unsupported(`${from}: calls into another program's section '${secName(sec)}' are not supported`);
    return place(fn) + idx - fn.start;
  };
  place(entry);
  for (let k = 0; k < out.length; k++) {
    const { sec, idx } = origin[k];
    const x = out[k];
    const where = `program '${entry.name}', insn ${k} ('${secName(sec)}' insn ${idx})`;
    const rel = relsBy.get(sec)?.get(idx * 8);
    const isLd64 = x.code === (Class.LD | Size.DW | Mode.IMM);
    const isCall = x.code === (Class.JMP | JmpOp.call);
    if (rel) {
      const sym = rel.sym;
      if (sym.shndx === SHN_UNDEF)
        unsupported(`${where}: extern '${sym.name}' (ksym, kconfig or kfunc) is not supported`);
      const symSec = elf.sections[sym.shndx];
      if (!symSec)
        malformed(`${where}: symbol '${sym.name}' is in section ${sym.shndx}, which does not exist`);
      if (isLd64 && rel.type === RelType.R_BPF_64_64) {
        if (k + 1 >= out.length) malformed(`${where}: ld_imm64 without its second half`);
        if (symSec.name === ".maps") {
          const m = mapAt.get(`${symSec.index}:${sym.value + x.imm}`);
          if (m === undefined) malformed(`${where}: '${sym.name}' is not a map of '.maps'`);
          x.src = PseudoLd.mapFd;
          x.imm = m;
        } else if (isGlobalSection(symSec)) {
          const m = mapAt.get(`${symSec.index}:global`) as number;
          const off = sym.value + x.imm;
          if (off < 0 || off > symSec.size) malformed(`${where}: offset ${off} is outside '${symSec.name}'`);
          x.src = PseudoLd.mapValue;
          x.imm = m;
          out[k + 1].imm = off;
        } else if ((symSec.flags & ShFlag.EXECINSTR) !== 0) {
          const byte = sym.value + x.imm;
          if (byte % 8 !== 0) malformed(`${where}: function address ${byte} is not an instruction boundary`);
          x.src = PseudoLd.func;
          x.imm = target(sym.shndx, byte / 8, where) - (k + 1);
          out[k + 1].imm = 0;
        } else
          unsupported(`${where}: ld_imm64 of '${sym.name}' in section '${symSec.name}' is not supported`);
        k++;
        continue;
      }
      if (isCall && x.src === PseudoCall.local && rel.type === RelType.R_BPF_64_32) {
        if ((symSec.flags & ShFlag.EXECINSTR) === 0)
          malformed(`${where}: call to '${sym.name}', which is not code`);
        x.imm = target(sym.shndx, sym.value / 8 + x.imm + 1, where) - (k + 1);
        continue;
      }
      unsupported(
        `${where}: relocation type ${rel.type} against '${sym.name}' on this instruction is not supported`,
      );
    }
    if (isLd64) {
      if (x.src === PseudoLd.func) x.imm = target(sec, idx + 1 + x.imm, where) - (k + 1);
      else if (x.src !== PseudoLd.none) malformed(`${where}: ld_imm64 with src ${x.src} and no relocation`);
      k++;
    } else if (isCall && x.src === PseudoCall.local) {
      x.imm = target(sec, idx + 1 + x.imm, where) - (k + 1);
    } else if (isCall && x.src === PseudoCall.kfunc) unsupported(`${where}: kfunc calls are not supported`);
  }
  if (out.length === 0) malformed(`program '${entry.name}' has no instructions`);
  return { insns: out, origin };
}
