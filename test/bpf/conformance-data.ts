/**
 * The BPF conformance suite's test files (Alan-Jowett/bpf_conformance,
 * tests/*.data), read as its runner reads them: the `asm` section assembled
 * in the suite's assembly syntax (`mov %r0, 1`, `ldxw %r1, [%r2+4]`,
 * `lock fetch add [%r10-8], %r1`, `call local f`, labels, `exit` as a label
 * of the first exit), or the `raw` section's 64-bit instruction words; `mem`
 * as hex bytes; `result` as the expected r0; `error` as the expected error.
 * Our own assembler of that syntax, written from the suite's documented
 * behaviour, for the tests only.
 */

import type { Insn } from "../../src/bpf/isa.js";

export interface ConformanceTest {
  memory: Uint8Array;
  result: bigint;
  error: string;
  code: Uint8Array;
  insns: Insn[];
}

const REGS = new Map(Array.from({ length: 16 }, (_, i) => [`%r${i}`, i]));
const ALU: Record<string, number> = {
  add: 0x0,
  sub: 0x1,
  mul: 0x2,
  div: 0x3,
  sdiv: 0x3,
  or: 0x4,
  and: 0x5,
  lsh: 0x6,
  rsh: 0x7,
  neg: 0x8,
  mod: 0x9,
  smod: 0x9,
  xor: 0xa,
  mov: 0xb,
  movsx: 0xb,
  arsh: 0xc,
};
const JMP: Record<string, number> = {
  jeq: 0x1,
  jgt: 0x2,
  jge: 0x3,
  jset: 0x4,
  jne: 0x5,
  jsgt: 0x6,
  jsge: 0x7,
  jlt: 0xa,
  jle: 0xb,
  jslt: 0xc,
  jsle: 0xd,
};
const LDX: Record<string, number> = {
  ldxw: 0x61,
  ldxh: 0x69,
  ldxb: 0x71,
  ldxdw: 0x79,
  ldxsw: 0x81,
  ldxsh: 0x89,
  ldxsb: 0x91,
};
const ST: Record<string, number> = { stw: 0x62, sth: 0x6a, stb: 0x72, stdw: 0x7a };
const STX: Record<string, number> = { stxw: 0x63, stxh: 0x6b, stxb: 0x73, stxdw: 0x7b };
const ATOMIC: Record<string, number> = {
  add: 0x00,
  or: 0x40,
  and: 0x50,
  xor: 0xa0,
  xchg: 0xe1,
  cmpxchg: 0xf1,
};

function reg(s: string): number {
  const r = REGS.get(s);
  if (r === undefined) throw new Error(`Invalid register: ${s}`);
  return r;
}
function imm32(s: string): number {
  if (s.includes("0x")) {
    const v = BigInt(s);
    if (v > 0xffffffffn) throw new Error(`Immediate out of 32-bit range: ${s}`);
    return Number(v) | 0;
  }
  const v = BigInt(s);
  if (v < -(2n ** 31n) || v >= 2n ** 31n) throw new Error(`Immediate out of 32-bit range: ${s}`);
  return Number(v);
}
function imm64(s: string): bigint {
  return BigInt.asUintN(64, BigInt(s));
}
function offset(s: string): number {
  if (s.includes("0x")) {
    const v = Number(BigInt(s.startsWith("+") ? s.slice(1) : s));
    if (v > 0xffff) throw new Error(`Offset out of 16-bit range: ${s}`);
    return (v << 16) >> 16;
  }
  const v = Number(s);
  if (!Number.isInteger(v) || v < -32768 || v > 32767) throw new Error(`Offset out of 16-bit range: ${s}`);
  return v;
}
/** "[%r1+12]", "[%r10-8]", "[%r1]". */
function memOperand(s: string): { r: number; off: number } {
  const m = /^\[(%r\d+)([+-][^\]]+)?\]$/.exec(s);
  if (!m) throw new Error(`Failed to decode register and offset: ${s}`);
  return { r: reg(m[1]), off: m[2] ? offset(m[2]) : 0 };
}

/** Assemble the suite's syntax into instructions. */
export function assemble(text: string): Insn[] {
  const out: Insn[] = [];
  const labels = new Map<string, number>();
  const fixups: { at: number; label: string; inImm: boolean }[] = [];
  let sawExit = false;
  const target = (s: string, inImm: boolean): number => {
    if (s.startsWith("+") || s.startsWith("-")) return offset(s);
    fixups.push({ at: out.length, label: s, inImm });
    return 0;
  };
  const push = (code: number, dst: number, src: number, off: number, imm: number) =>
    out.push({ code, dst, src, off, imm });
  for (const line of text.split("\n")) {
    const words = line
      .trim()
      .split(/\s+/)
      .filter((w) => w !== "");
    if (words.length === 0) continue;
    let mn = words[0];
    const ops = words.slice(1).map((w) => (w.endsWith(",") ? w.slice(0, -1) : w));
    if (mn.endsWith(":")) {
      const l = mn.slice(0, -1);
      if (labels.has(l)) throw new Error(`Duplicate label ${l}`);
      labels.set(l, out.length);
      continue;
    }
    if (mn === "exit" && !sawExit) {
      labels.set("exit", out.length);
      sawExit = true;
    }
    const need = (k: number) => {
      if (ops.length !== k) throw new Error(`Invalid number of operands for mnemonic: ${mn}`);
    };
    if (mn === "lock") {
      // lock [fetch] op [dst+off], src
      const fetch = ops[0] === "fetch";
      const rest = fetch ? ops.slice(1) : ops;
      if (rest.length !== 3) throw new Error("Invalid number of operands for lock");
      let op = rest[0];
      const is32 = op.endsWith("32");
      if (is32) op = op.slice(0, -2);
      const a = ATOMIC[op];
      if (a === undefined) throw new Error(`Invalid mnemonic: ${rest[0]}`);
      const m = memOperand(rest[1]);
      push(is32 ? 0xc3 : 0xdb, m.r, reg(rest[2]), m.off, a | (fetch ? 1 : 0));
      continue;
    }
    if (mn === "exit") {
      push(0x95, 0, 0, 0, 0);
      continue;
    }
    if (mn === "ja") {
      need(1);
      push(0x05, 0, 0, target(ops[0], false), 0);
      continue;
    }
    if (mn === "ja32") {
      need(1);
      push(0x06, 0, 0, 0, target(ops[0], true));
      continue;
    }
    if (mn === "call") {
      const args = ops.length === 1 ? ["helper", ops[0]] : ops;
      if (args.length !== 2) throw new Error("Invalid number of operands for mnemonic: call");
      const [mode, t] = args;
      if (mode === "helper") {
        if (t.startsWith("%")) push(0x8d, reg(t), 0, 0, 0);
        else push(0x85, 0, 0, 0, imm32(t));
      } else if (mode === "local") push(0x85, 0, 1, 0, target(t, true));
      else if (mode === "runtime") push(0x85, 0, 2, 0, imm32(t));
      else throw new Error("Invalid call mode");
      continue;
    }
    if (mn === "lddw") {
      need(2);
      const v = imm64(ops[1]);
      push(0x18, reg(ops[0]), 0, 0, Number(v & 0xffffffffn) | 0);
      push(0, 0, 0, 0, Number(v >> 32n) | 0);
      continue;
    }
    if (LDX[mn] !== undefined) {
      need(2);
      const m = memOperand(ops[1]);
      push(LDX[mn], reg(ops[0]), m.r, m.off, 0);
      continue;
    }
    if (ST[mn] !== undefined) {
      need(2);
      const m = memOperand(ops[0]);
      push(ST[mn], m.r, 0, m.off, imm32(ops[1]));
      continue;
    }
    if (STX[mn] !== undefined) {
      need(2);
      const m = memOperand(ops[0]);
      push(STX[mn], m.r, reg(ops[1]), m.off, 0);
      continue;
    }
    const end = /^(be|le|swap|bswap)(16|32|64)$/.exec(mn);
    if (end) {
      need(1);
      const code = end[1] === "le" ? 0xd4 : end[1] === "be" ? 0xdc : 0xd7;
      push(code, reg(ops[0]), 0, 0, Number(end[2]));
      continue;
    }
    const jm = /^(j[a-z]+?)(32)?$/.exec(mn);
    if (jm && JMP[jm[1]] !== undefined) {
      need(3);
      const cls = jm[2] ? 0x06 : 0x05;
      const isReg = ops[1].startsWith("%");
      const code = cls | (JMP[jm[1]] << 4) | (isReg ? 0x08 : 0);
      const off = target(ops[2], false);
      push(code, reg(ops[0]), isReg ? reg(ops[1]) : 0, off, isReg ? 0 : imm32(ops[1]));
      continue;
    }
    // ALU: name, name32, name64; movsxNN32/64; sdiv/smod set offset 1.
    let cls = 0x07;
    if (mn.endsWith("32")) {
      cls = 0x04;
      mn = mn.slice(0, -2);
    } else if (mn.endsWith("64")) mn = mn.slice(0, -2);
    let off = mn === "sdiv" || mn === "smod" ? 1 : 0;
    if (mn.startsWith("movsx")) {
      off = Number(mn.slice(5));
      mn = "movsx";
    }
    const a = ALU[mn];
    if (a === undefined) throw new Error(`Invalid mnemonic: ${words[0]}`);
    if (mn === "neg") {
      need(1);
      push(cls | (a << 4), reg(ops[0]), 0, 0, 0);
      continue;
    }
    need(2);
    const isReg = ops[1].startsWith("%");
    push(
      cls | (a << 4) | (isReg ? 0x08 : 0),
      reg(ops[0]),
      isReg ? reg(ops[1]) : 0,
      off,
      isReg ? 0 : imm32(ops[1]),
    );
  }
  for (const f of fixups) {
    const at = labels.get(f.label);
    if (at === undefined) throw new Error(`Invalid label: ${f.label}`);
    const rel = at - f.at - 1;
    if (f.inImm) out[f.at].imm = rel;
    else out[f.at].off = (rel << 16) >> 16;
  }
  return out;
}

/** One .data file, parsed as the suite's runner parses it. */
export function parseDataFile(text: string): ConformanceTest | undefined {
  type State = "ignore" | "asm" | "raw" | "result" | "mem" | "error";
  let state: State = "ignore";
  let asmText = "";
  let raw = "";
  let mem = "";
  let result = "";
  let error = "";
  for (let line of text.split("\n")) {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    const hash = line.indexOf("#");
    if (hash >= 0) line = line.slice(0, hash);
    if (line.includes("--")) {
      if (line.includes("asm")) state = "asm";
      else if (line.includes("result")) state = "result";
      else if (line.includes("mem")) state = "mem";
      else if (line.includes("raw")) state = "raw";
      else if (line.includes("no register offset")) state = "ignore";
      else if (line.includes(" c")) state = "ignore";
      else if (line.includes("error")) state = "error";
      else return undefined;
      continue;
    }
    if (line === "") continue;
    if (state === "asm") asmText += `${line}\n`;
    else if (state === "result") result = line;
    else if (state === "mem") mem += ` ${line}`;
    else if (state === "error") error = line;
    else if (state === "raw") raw += ` ${line}`;
  }
  if (error === "" && result === "") return undefined;
  const value = result === "" ? 0n : BigInt.asUintN(64, BigInt(result.trim()));
  let insns: Insn[];
  if (raw.trim() !== "") {
    insns = raw
      .trim()
      .split(/\s+/)
      .map((w) => {
        const v = BigInt(w);
        return {
          code: Number(v & 0xffn),
          dst: Number((v >> 8n) & 0xfn),
          src: Number((v >> 12n) & 0xfn),
          off: Number(BigInt.asIntN(16, v >> 16n)),
          imm: Number(BigInt.asIntN(32, v >> 32n)),
        };
      });
  } else insns = assemble(asmText);
  if (insns.length === 0) return undefined;
  const memory = Uint8Array.from(
    mem
      .trim()
      .split(/\s+/)
      .filter((t) => t !== "")
      .map((t) => Number.parseInt(t, 16)),
  );
  const code = new Uint8Array(insns.length * 8);
  const dv = new DataView(code.buffer);
  insns.forEach((x, i) => {
    code[i * 8] = x.code;
    code[i * 8 + 1] = (x.dst & 0xf) | ((x.src & 0xf) << 4);
    dv.setInt16(i * 8 + 2, x.off, true);
    dv.setInt32(i * 8 + 4, x.imm, true);
  });
  return { memory, result: value, error, code, insns };
}

/** Opcodes of the groups the runner leaves out by default (callx, packet): tests using them are skipped. */
const NOT_DEFAULT = new Set([0x8d, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50]);

/** Whether the runner at --cpu_version v4 with the default groups runs this test. */
export function inDefaultGroups(t: ConformanceTest): boolean {
  for (let i = 0; i < t.insns.length; i++) {
    if (NOT_DEFAULT.has(t.insns[i].code)) return false;
    if (t.insns[i].code === 0x18) i++;
  }
  return true;
}

/** base16 as the runner writes it to the plugin: "xx  " per byte. */
export function base16(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `${b.toString(16).padStart(2, "0")}  `).join("");
}

/**
 * The ELF object the suite's runner sends with `--elf` (its
 * bpf_writer_classic): a relocatable EM_BPF file whose `.text` holds the
 * program as one global function `main`, the symbol names in the section
 * name table. Written here from the ELF64 layout, for the test.
 */
export function elfOf(code: Uint8Array, section = ".text"): Uint8Array {
  const shstr = ["", ".shstrtab", ".symtab", section, "main"];
  const strOff: number[] = [];
  let strBytes = "";
  for (const n of shstr) {
    strOff.push(strBytes.length);
    strBytes += `${n}\0`;
  }
  const strtab = new TextEncoder().encode(strBytes);
  const sym = new Uint8Array(48);
  const sdv = new DataView(sym.buffer);
  sdv.setUint32(24, strOff[4], true); // main
  sym[24 + 4] = (1 << 4) | 2; // STB_GLOBAL, STT_FUNC
  sdv.setUint16(24 + 6, 3, true); // in section 3
  sdv.setBigUint64(24 + 16, BigInt(code.length), true);
  const parts = [strtab, sym, code];
  let off = 64;
  const offsets: number[] = [];
  for (const p of parts) {
    off = Math.ceil(off / 8) * 8;
    offsets.push(off);
    off += p.length;
  }
  const shoff = Math.ceil(off / 8) * 8;
  const out = new Uint8Array(shoff + 4 * 64);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 1, true); // ET_REL
  dv.setUint16(18, 247, true); // EM_BPF
  dv.setUint32(20, 1, true);
  dv.setBigUint64(40, BigInt(shoff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(58, 64, true);
  dv.setUint16(60, 4, true);
  dv.setUint16(62, 1, true);
  parts.forEach((p, i) => {
    out.set(p, offsets[i]);
  });
  const sh = (
    i: number,
    name: number,
    type: number,
    flags: number,
    o: number,
    size: number,
    link: number,
    info: number,
    entsize: number,
  ) => {
    const h = shoff + i * 64;
    dv.setUint32(h, name, true);
    dv.setUint32(h + 4, type, true);
    dv.setBigUint64(h + 8, BigInt(flags), true);
    dv.setBigUint64(h + 24, BigInt(o), true);
    dv.setBigUint64(h + 32, BigInt(size), true);
    dv.setUint32(h + 40, link, true);
    dv.setUint32(h + 44, info, true);
    dv.setBigUint64(h + 48, 8n, true);
    dv.setBigUint64(h + 56, BigInt(entsize), true);
  };
  sh(1, strOff[1], 3, 0, offsets[0], strtab.length, 0, 0, 0);
  sh(2, strOff[2], 2, 0, offsets[1], sym.length, 1, 1, 24);
  sh(3, strOff[3], 1, 0x6, offsets[2], code.length, 0, 0, 0);
  return out;
}
