/**
 * ELF64 little-endian relocatable objects for the BPF target (e_machine
 * EM_BPF), as clang writes them: section headers, the symbol table and the
 * REL relocation sections. Nothing BPF-specific beyond the machine check:
 * the loader (loader.ts) gives the sections their meaning.
 */

import { BpfError, Errno } from "../errors.js";

/** sh_type values the loader looks at. */
export const ShType = { NULL: 0, PROGBITS: 1, SYMTAB: 2, STRTAB: 3, RELA: 4, NOBITS: 8, REL: 9 } as const;
/** sh_flags bits. */
export const ShFlag = { WRITE: 0x1, ALLOC: 0x2, EXECINSTR: 0x4 } as const;
/** Symbol types (st_info & 0xf). */
export const SymType = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3, FILE: 4 } as const;
/** Symbol bindings (st_info >> 4). */
export const SymBind = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const;
/** BPF relocation types (llvm's BPF backend). */
export const RelType = {
  NONE: 0,
  R_BPF_64_64: 1,
  R_BPF_64_ABS64: 2,
  R_BPF_64_ABS32: 3,
  R_BPF_64_NODYLD32: 4,
  R_BPF_64_32: 10,
} as const;

const EM_BPF = 247;
const ET_REL = 1;
/** Section index of an undefined (extern) symbol. */
export const SHN_UNDEF = 0;

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: number;
  size: number;
  link: number;
  info: number;
  /** The section's bytes (empty for NOBITS: the loader zero-fills `size` bytes). */
  data: Uint8Array;
}

export interface ElfSymbol {
  index: number;
  name: string;
  value: number;
  size: number;
  type: number;
  bind: number;
  /** Section index (SHN_UNDEF for an extern). */
  shndx: number;
}

export interface ElfRel {
  /** Byte offset in the section the relocation applies to. */
  offset: number;
  sym: number;
  type: number;
}

export interface ElfFile {
  sections: ElfSection[];
  symbols: ElfSymbol[];
  /** Relocations by the index of the section they apply to. */
  rels: Map<number, ElfRel[]>;
}

function bad(what: string): never {
  throw new BpfError("load", Errno.EINVAL, `not a valid BPF ELF object: ${what}`);
}

/**
 * Parse a relocatable BPF object.
 * @throws BpfError EINVAL naming what is malformed (not ELF, not 64-bit
 * little-endian, not relocatable, not EM_BPF, a section or table out of bounds)
 */
export function parseElf(bytes: Uint8Array): ElfFile {
  if (bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46)
    bad("no ELF magic");
  if (bytes[4] !== 2) bad("not ELFCLASS64");
  if (bytes[5] !== 1) bad("not little-endian (ELFDATA2LSB)");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => {
    const v = dv.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`a 64-bit field at ${o} is too large`);
    return Number(v);
  };
  if (u16(16) !== ET_REL) bad(`e_type ${u16(16)} is not ET_REL (a relocatable object, clang -c)`);
  if (u16(18) !== EM_BPF) bad(`e_machine ${u16(18)} is not EM_BPF (247)`);
  const shoff = u64(40);
  const shentsize = u16(58);
  let shnum = u16(60);
  let shstrndx = u16(62);
  if (shoff === 0) bad("no section header table");
  if (shentsize !== 64) bad(`section header size ${shentsize}, expected 64`);
  if (shoff + 64 > bytes.length) bad("the section header table is past the end of the file");
  if (shnum === 0) shnum = u64(shoff + 32); // extended numbering: sh_size of section 0
  if (shstrndx === 0xffff) shstrndx = u32(shoff + 40);
  if (shoff + shnum * 64 > bytes.length) bad("the section header table is past the end of the file");
  if (shnum > 65535) bad(`${shnum} sections`);
  const raw: {
    nameOff: number;
    type: number;
    flags: number;
    offset: number;
    size: number;
    link: number;
    info: number;
    entsize: number;
  }[] = [];
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * 64;
    const type = u32(h + 4);
    const offset = u64(h + 24);
    const size = u64(h + 32);
    if (type !== ShType.NOBITS && type !== ShType.NULL && offset + size > bytes.length)
      bad(`section ${i} (offset ${offset}, ${size} bytes) runs past the end of the file`);
    raw.push({
      nameOff: u32(h),
      type,
      flags: u64(h + 8),
      offset,
      size,
      link: u32(h + 40),
      info: u32(h + 44),
      entsize: u64(h + 56),
    });
  }
  const strAt = (sec: number, off: number): string => {
    const s = raw[sec];
    if (s === undefined || s.type !== ShType.STRTAB) bad(`section ${sec} is not a string table`);
    if (off >= s.size) bad(`string offset ${off} is past string table ${sec}`);
    const start = s.offset + off;
    let end = start;
    while (end < s.offset + s.size && bytes[end] !== 0) end++;
    return new TextDecoder().decode(bytes.subarray(start, end));
  };
  const sections: ElfSection[] = raw.map((s, index) => ({
    index,
    name: index === 0 ? "" : strAt(shstrndx, s.nameOff),
    type: s.type,
    flags: s.flags,
    size: s.size,
    link: s.link,
    info: s.info,
    data:
      s.type === ShType.NOBITS || s.type === ShType.NULL
        ? new Uint8Array(0)
        : bytes.subarray(s.offset, s.offset + s.size),
  }));
  const symtabs = sections.filter((s) => s.type === ShType.SYMTAB);
  if (symtabs.length > 1) bad("more than one symbol table");
  const symbols: ElfSymbol[] = [];
  if (symtabs.length === 1) {
    const st = symtabs[0];
    const r = raw[st.index];
    if (r.entsize !== 24) bad(`symbol entry size ${r.entsize}, expected 24`);
    for (let i = 0; i * 24 < st.size; i++) {
      const o = r.offset + i * 24;
      const info = bytes[o + 4];
      symbols.push({
        index: i,
        name: strAt(st.link, u32(o)),
        value: u64(o + 8),
        size: u64(o + 16),
        type: info & 0xf,
        bind: info >> 4,
        shndx: u16(o + 6),
      });
    }
  }
  const rels = new Map<number, ElfRel[]>();
  for (const s of sections) {
    if (s.type === ShType.RELA) bad(`section ${s.name}: RELA relocations (BPF objects use REL)`);
    if (s.type !== ShType.REL) continue;
    if (raw[s.index].entsize !== 16)
      bad(`section ${s.name}: relocation entry size ${raw[s.index].entsize}, expected 16`);
    if (s.info >= sections.length) bad(`section ${s.name} relocates section ${s.info}, which does not exist`);
    const list: ElfRel[] = [];
    for (let i = 0; i * 16 < s.size; i++) {
      const o = raw[s.index].offset + i * 16;
      const sym = u32(o + 12);
      if (sym >= symbols.length)
        bad(`section ${s.name}: relocation ${i} names symbol ${sym}, which does not exist`);
      list.push({ offset: u64(o), sym, type: u32(o + 8) });
    }
    rels.set(s.info, (rels.get(s.info) ?? []).concat(list));
  }
  return { sections, symbols, rels };
}
