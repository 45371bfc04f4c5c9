/**
 * .BTF.ext's func_info and line_info, as BPF_PROG_LOAD takes them for one
 * linked program: each record of a code section is carried to every linked
 * instruction that came from that instruction (ProgramDef.origin), its
 * offset counted in instructions of the linked program, as libbpf's
 * adjust_prog_btf_ext_info() does for a program and its appended
 * subprograms. The kernel needs func_info for any program with bpf-to-bpf
 * calls or callbacks (bpf_loop, bpf_for_each_map_elem).
 */

import type { ProgramDef } from "../bpf/loader.js";
import { BpfError, Errno } from "../errors.js";

/** One code section's records: instruction index → the record's bytes after insn_off. */
type SectionRecords = Map<number, Uint8Array>;

export interface ExtInfo {
  func: Map<string, SectionRecords>;
  line: Map<string, SectionRecords>;
}

function bad(what: string): never {
  throw new BpfError("load", Errno.EINVAL, `.BTF.ext: ${what}`);
}

/** The string at `off` of a .BTF blob's string section. */
function btfString(btf: Uint8Array, off: number): string {
  const b = new DataView(btf.buffer, btf.byteOffset, btf.byteLength);
  if (btf.length < 24) bad("the .BTF it refers to is too short");
  const start = b.getUint32(4, true) + b.getUint32(16, true);
  const len = b.getUint32(20, true);
  if (off >= len || start + len > btf.length) bad(`string offset ${off} is past the .BTF strings`);
  let end = start + off;
  while (end < start + len && btf[end] !== 0) end++;
  return new TextDecoder().decode(btf.subarray(start + off, end));
}

/** One info block (func_info or line_info): records by section name. */
function block(
  ext: Uint8Array,
  btf: Uint8Array,
  at: number,
  len: number,
  minRec: number,
  what: string,
): Map<string, SectionRecords> {
  const out = new Map<string, SectionRecords>();
  if (len === 0) return out;
  const e = new DataView(ext.buffer, ext.byteOffset, ext.byteLength);
  if (at + len > ext.length || len < 4) bad(`${what} runs past the section`);
  const rec = e.getUint32(at, true);
  if (rec < minRec) bad(`${what} record size ${rec}, less than ${minRec}`);
  for (let p = at + 4; p < at + len; ) {
    if (p + 8 > at + len) bad(`a section header runs past the ${what}`);
    const sec = btfString(btf, e.getUint32(p, true));
    const n = e.getUint32(p + 4, true);
    p += 8;
    if (p + n * rec > at + len) bad(`section '${sec}': ${n} records run past the ${what}`);
    const m = out.get(sec) ?? new Map<number, Uint8Array>();
    for (let i = 0; i < n; i++, p += rec) {
      const off = e.getUint32(p, true);
      if (off % 8 !== 0) bad(`section '${sec}': ${what} at byte ${off}, not an instruction boundary`);
      m.set(off / 8, ext.slice(p + 4, p + minRec));
    }
    out.set(sec, m);
  }
  return out;
}

/** Parse .BTF.ext's func_info (8-byte records) and line_info (16-byte records). */
export function parseExtInfo(ext: Uint8Array, btf: Uint8Array): ExtInfo {
  const e = new DataView(ext.buffer, ext.byteOffset, ext.byteLength);
  if (ext.length < 24 || e.getUint16(0, true) !== 0xeb9f) bad("no 0xeb9f magic");
  const hdr = e.getUint32(4, true);
  if (hdr < 24 || hdr > ext.length) bad(`header length ${hdr}`);
  return {
    func: block(ext, btf, hdr + e.getUint32(8, true), e.getUint32(12, true), 8, "func info"),
    line: block(ext, btf, hdr + e.getUint32(16, true), e.getUint32(20, true), 16, "line info"),
  };
}

/** The kernel's func_info and line_info arrays for one linked program. */
export function programExtInfo(p: ProgramDef, info: ExtInfo): { funcInfo: Uint8Array; lineInfo: Uint8Array } {
  const funcs: Uint8Array[] = [];
  const lines: Uint8Array[] = [];
  p.origin.forEach((o, k) => {
    const f = info.func.get(o.section)?.get(o.insn);
    if (f !== undefined) funcs.push(record(k, f));
    const l = info.line.get(o.section)?.get(o.insn);
    if (l !== undefined) lines.push(record(k, l));
  });
  return { funcInfo: concat(funcs), lineInfo: concat(lines) };
}

function record(insn: number, rest: Uint8Array): Uint8Array {
  const r = new Uint8Array(4 + rest.length);
  new DataView(r.buffer).setUint32(0, insn, true);
  r.set(rest, 4);
  return r;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
