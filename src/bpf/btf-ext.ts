/**
 * The line info of `.BTF.ext` (what `clang -g` records for each
 * instruction that starts a source line): per code section, records of
 * (instruction byte offset, file name, line text, line and column), the
 * strings in the `.BTF` string section. The loader attaches it to linked
 * instructions so that a run error can name the C source line.
 */

import { BpfError, Errno } from "../errors.js";

/** One source line. */
export interface SourceLine {
  file: string;
  line: number;
  col: number;
  /** The source line's text, as clang recorded it. */
  text: string;
}

function bad(what: string): never {
  throw new BpfError("load", Errno.EINVAL, `.BTF.ext: ${what}`);
}

/**
 * Line info by code section name: records sorted by instruction index.
 * @throws BpfError EINVAL for a malformed .BTF.ext or .BTF
 */
export function lineInfo(ext: Uint8Array, btf: Uint8Array): Map<string, { insn: number; src: SourceLine }[]> {
  const out = new Map<string, { insn: number; src: SourceLine }[]>();
  const e = new DataView(ext.buffer, ext.byteOffset, ext.byteLength);
  const b = new DataView(btf.buffer, btf.byteOffset, btf.byteLength);
  if (ext.length < 32 || e.getUint16(0, true) !== 0xeb9f) bad("no 0xeb9f magic");
  if (btf.length < 24) bad("the .BTF it refers to is too short");
  const strStart = b.getUint32(4, true) + b.getUint32(16, true);
  const strLen = b.getUint32(20, true);
  if (strStart + strLen > btf.length) bad("the .BTF string section runs past its blob");
  const str = (off: number): string => {
    if (off >= strLen) bad(`string offset ${off} is past the .BTF strings`);
    let end = strStart + off;
    while (end < strStart + strLen && btf[end] !== 0) end++;
    return new TextDecoder().decode(btf.subarray(strStart + off, end));
  };
  const hdr = e.getUint32(4, true);
  const start = hdr + e.getUint32(16, true);
  const len = e.getUint32(20, true);
  if (len === 0) return out;
  if (start + len > ext.length || len < 4) bad("line info runs past the section");
  const rec = e.getUint32(start, true);
  if (rec < 16) bad(`line info record size ${rec}, less than 16`);
  for (let p = start + 4; p < start + len; ) {
    if (p + 8 > start + len) bad("a section header runs past the line info");
    const sec = str(e.getUint32(p, true));
    const n = e.getUint32(p + 4, true);
    p += 8;
    if (p + n * rec > start + len) bad(`section '${sec}': ${n} records run past the line info`);
    const list = out.get(sec) ?? [];
    for (let i = 0; i < n; i++, p += rec) {
      const insnOff = e.getUint32(p, true);
      const lineCol = e.getUint32(p + 12, true);
      list.push({
        insn: Math.floor(insnOff / 8),
        src: {
          file: str(e.getUint32(p + 4, true)),
          text: str(e.getUint32(p + 8, true)).trim(),
          line: lineCol >>> 10,
          col: lineCol & 0x3ff,
        },
      });
    }
    list.sort((x, y) => x.insn - y.insn);
    out.set(sec, list);
  }
  return out;
}

/** The line of instruction `insn` of a section: the last record at or before it. */
export function lineOf(
  list: readonly { insn: number; src: SourceLine }[] | undefined,
  insn: number,
): SourceLine | undefined {
  if (!list) return undefined;
  let lo = 0;
  let hi = list.length - 1;
  let found: SourceLine | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].insn <= insn) {
      found = list[mid].src;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** One CO-RE relocation record of `.BTF.ext` (struct bpf_core_relo). */
export interface CoreRelo {
  /** The code section's name. */
  section: string;
  /** Instruction index in the section. */
  insn: number;
  /** The local BTF type id the access starts from. */
  typeId: number;
  /** The access string ("0:1:2"). */
  access: string;
  /** enum bpf_core_relo_kind. */
  kind: number;
}

/** The names of enum bpf_core_relo_kind, for errors. */
export const CORE_RELO_KINDS = [
  "field_byte_offset",
  "field_byte_size",
  "field_exists",
  "field_signed",
  "field_lshift_u64",
  "field_rshift_u64",
  "type_id_local",
  "type_id_target",
  "type_exists",
  "type_size",
  "enumval_exists",
  "enumval_value",
  "type_matches",
];

/**
 * The CO-RE relocations of `.BTF.ext` (after func and line info, when its
 * header is long enough to have them).
 * @throws BpfError EINVAL for a malformed section
 */
export function coreRelos(ext: Uint8Array, btf: Uint8Array): CoreRelo[] {
  const e = new DataView(ext.buffer, ext.byteOffset, ext.byteLength);
  const b = new DataView(btf.buffer, btf.byteOffset, btf.byteLength);
  if (ext.length < 8 || e.getUint16(0, true) !== 0xeb9f) bad("no 0xeb9f magic");
  const hdr = e.getUint32(4, true);
  if (hdr < 32 || ext.length < 32) return [];
  const start = hdr + e.getUint32(24, true);
  const len = e.getUint32(28, true);
  if (len === 0) return [];
  if (start + len > ext.length || len < 4) bad("CO-RE relocations run past the section");
  if (btf.length < 24) bad("the .BTF it refers to is too short");
  const strStart = b.getUint32(4, true) + b.getUint32(16, true);
  const strLen = b.getUint32(20, true);
  if (strStart + strLen > btf.length) bad("the .BTF string section runs past its blob");
  const str = (off: number): string => {
    if (off >= strLen) bad(`string offset ${off} is past the .BTF strings`);
    let end = strStart + off;
    while (end < strStart + strLen && btf[end] !== 0) end++;
    return new TextDecoder().decode(btf.subarray(strStart + off, end));
  };
  const rec = e.getUint32(start, true);
  if (rec < 16) bad(`CO-RE relocation record size ${rec}, less than 16`);
  const out: CoreRelo[] = [];
  for (let p = start + 4; p < start + len; ) {
    if (p + 8 > start + len) bad("a section header runs past the CO-RE relocations");
    const section = str(e.getUint32(p, true));
    const n = e.getUint32(p + 4, true);
    p += 8;
    if (p + n * rec > start + len) bad(`section '${section}': ${n} CO-RE records run past the section`);
    for (let i = 0; i < n; i++, p += rec)
      out.push({
        section,
        insn: Math.floor(e.getUint32(p, true) / 8),
        typeId: e.getUint32(p + 4, true),
        access: str(e.getUint32(p + 8, true)),
        kind: e.getUint32(p + 12, true),
      });
  }
  return out;
}
