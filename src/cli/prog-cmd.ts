/**
 * `htab prog`: BPF programs on htab.
 *
 *   htab prog run OBJECT [program NAME] data_in FILE [data_out FILE] [ctx_in FILE] [ctx_out FILE] [repeat N]
 *   htab prog show OBJECT
 *   htab prog exec [MEMORY] [--elf]
 *
 * `run` and `show` take a clang-built object (see progRun, progShow); `exec`
 * is the plugin protocol of the BPF conformance suite (Alan-Jowett/bpf_conformance),
 * which ubpf, rbpf, eBPF for Windows and bpftime report against: the program
 * as base16 bytes on standard input (whitespace-separated; an ELF object with
 * `--elf`), MEMORY as base16 bytes copied into a region whose address is in r1
 * and length in r2. It prints only r0 (all 64 bits, hex, no 0x) and exits 0,
 * or prints the error on standard error and exits 1. Programs run unverified,
 * under the interpreter's run-time checks alone.
 */

import { execElf, execRaw, parseBase16 } from "../bpf/exec.js";
import type { BpfObject, ObjectRunResult } from "../bpf/index.js";
import { type BpfObjectSpec, openObject } from "../bpf/loader.js";
import { BpfError } from "../errors.js";
import { strerror } from "../kernel/errno-text.js";
import { kernelMapTypeName } from "../kernel/map-types.js";
import type { BackendName } from "./backends.js";
import { isPrefix, strtoul } from "./map-cmd.js";
import { bytesLoaderFor, objectName } from "./objects.js";

/** What a command printed and how it ended, for the CLI and the tests. */
export interface ProgOutput {
  stdout: string;
  stderr: string;
  code: number;
}

/** `htab prog exec`: `stdin` is the program's text as read from standard input. */
export function progExec(memory: string | undefined, opts: { elf?: boolean }, stdin: string): ProgOutput {
  try {
    const mem = memory === undefined ? new Uint8Array(0) : parseBase16(memory, "MEMORY");
    const code = parseBase16(stdin, "program");
    const r0 = opts.elf ? execElf(code, mem) : execRaw(code, mem);
    return { stdout: `${r0.toString(16)}\n`, stderr: "", code: 0 };
  } catch (e) {
    if (e instanceof BpfError) return { stdout: "", stderr: `${e.message}\n`, code: 1 };
    throw e;
  }
}

/** bpftool's names of the program types the loader knows. */
const PROG_TYPE_NAMES: Record<number, string> = {
  1: "socket_filter",
  3: "sched_cls",
  5: "tracepoint",
  6: "xdp",
  31: "syscall",
};

class ProgCmdError extends Error {
  constructor(
    message: string,
    readonly code = 255,
  ) {
    super(message);
  }
}

/** Reads a FILE argument ("-": standard input). */
export type FileReader = (path: string) => Uint8Array;
/** Writes a FILE argument's bytes (never called with "-": those are printed). */
export type FileWriter = (path: string, bytes: Uint8Array) => void;

/** One line of hex_print(): `n` bytes at `off`. */
function hexLine(b: Uint8Array, off: number, n: number): string {
  let hex = "";
  let chars = "";
  for (let i = 0; i < 16; i++) {
    hex += i < n ? b[off + i].toString(16).padStart(2, "0") : "  ";
    if (i % 2 === 1) hex += " ";
  }
  for (let i = 0; i < n; i++) {
    const c = b[off + i];
    chars += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ".";
    if (i === 7 && n > 8) chars += " ";
  }
  return `${off.toString(16).padStart(7, "0")}\t${hex}| ${chars}\n`;
}

/** bpftool's hex_print(): offset, 16 bytes in pairs, then their characters (a space after 8). */
export function hexDump(b: Uint8Array): string {
  let out = "";
  for (let off = 0; off < b.length; off += 16) out += hexLine(b, off, Math.min(16, b.length - off));
  return out;
}

interface RunArgs {
  object: string;
  program?: string;
  dataIn?: string;
  dataOut?: string;
  ctxIn?: string;
  ctxOut?: string;
  repeat: number;
}

const FILE_WORDS: [string, "program" | "dataIn" | "dataOut" | "ctxIn" | "ctxOut"][] = [
  ["program", "program"],
  ["data_in", "dataIn"],
  ["data_out", "dataOut"],
  ["ctx_in", "ctxIn"],
  ["ctx_out", "ctxOut"],
];

/** One `KEYWORD VALUE` pair of `prog run` into `a`. */
function runWord(a: RunArgs, w: string, v: string): void {
  const f = FILE_WORDS.find(([k]) => isPrefix(w, k));
  if (f !== undefined) {
    if (a[f[1]] !== undefined) throw new ProgCmdError(`${f[0]} given twice`);
    a[f[1]] = v;
    return;
  }
  if (!isPrefix(w, "repeat"))
    throw new ProgCmdError(
      `expected no more arguments, 'program', 'data_in', 'data_out', 'ctx_in', 'ctx_out' or 'repeat', got: '${w}'?`,
    );
  const n = strtoul(v, 0);
  if (n === null || n > 0xffffffffn) throw new ProgCmdError(`can't parse ${v} as repeat number`);
  a.repeat = Math.max(1, Number(n));
}

function parseRunArgs(argv: string[]): RunArgs {
  if (argv.length < 3) throw new ProgCmdError(`'run' needs at least 3 arguments, ${argv.length} found`);
  const a: RunArgs = { object: argv[0], repeat: 1 };
  for (let i = 1; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (v === undefined) throw new ProgCmdError(`${argv[i]} needs an argument`);
    runWord(a, argv[i], v);
  }
  if (a.dataIn === undefined && a.ctxIn === undefined)
    throw new ProgCmdError("run needs data_in FILE or ctx_in FILE");
  return a;
}

function loadFor(op: string, path: string, backend: BackendName, read: FileReader): BpfObject {
  let bytes: Uint8Array;
  try {
    bytes = read(path);
  } catch (e) {
    throw new ProgCmdError(`failed to open ${path}: ${(e as Error).message}`);
  }
  try {
    return bytesLoaderFor(backend)(bytes, objectName(path)).obj;
  } catch (e) {
    throw new ProgCmdError(`${op}: failed to load ${path}: ${(e as Error).message}`);
  }
}

/**
 * `htab prog run OBJECT [program NAME] data_in FILE [data_out FILE] [ctx_in FILE]
 * [ctx_out FILE] [repeat N]`: bpftool's `prog run` on a clang-built object
 * loaded on `backend`, printing what bpftool prints: `Return value: 2,
 * duration (average): 148ns` (plain; " (average)" when repeat > 1), or
 * `{"retval":2,"duration":148}` with -j, data_out/ctx_out "-" printed
 * (hex_print plain, a byte array in JSON). `program` defaults to the
 * object's first program. A failed run is "failed to run program: …" with
 * the errno's byte as the exit code, as bpftool.
 */
export function progRun(
  argv: string[],
  opts: { json: boolean; backend: BackendName },
  io: { read: FileReader; write: FileWriter },
): ProgOutput {
  let obj: BpfObject | undefined;
  try {
    const a = parseRunArgs(argv);
    const data = a.dataIn === undefined ? new Uint8Array(0) : readArg(io.read, a.dataIn, "data_in");
    const ctx = a.ctxIn === undefined ? undefined : readArg(io.read, a.ctxIn, "ctx_in");
    obj = loadFor("run", a.object, opts.backend, io.read);
    const prog =
      a.program === undefined ? obj.programList[0] : obj.programList.find((p) => p.name === a.program);
    if (prog === undefined)
      throw new ProgCmdError(
        a.program === undefined
          ? `${a.object} has no program`
          : `no program '${a.program}' in ${a.object} (have: ${obj.programList.map((p) => p.name).join(", ")})`,
      );
    let r: ObjectRunResult;
    try {
      r = prog.run(data, { repeat: a.repeat, ctx });
    } catch (e) {
      if (!(e instanceof BpfError)) throw e;
      throw new ProgCmdError(`failed to run program: ${strerror(e.errno)}`, (256 - e.errno) & 0xff);
    }
    return { stdout: runOutput(a, r, opts.json, io.write), stderr: "", code: 0 };
  } catch (e) {
    if (!(e instanceof ProgCmdError)) throw e;
    return opts.json
      ? { stdout: `${JSON.stringify({ error: e.message })}\n`, stderr: "", code: e.code }
      : { stdout: "", stderr: `Error: ${e.message}\n`, code: e.code };
  } finally {
    obj?.close();
  }
}

function readArg(read: FileReader, path: string, what: string): Uint8Array {
  try {
    return read(path);
  } catch (e) {
    throw new ProgCmdError(`failed to open ${what} file ${path}: ${(e as Error).message}`);
  }
}

function runOutput(a: RunArgs, r: ObjectRunResult, json: boolean, write: FileWriter): string {
  const outs: [string, string | undefined, Uint8Array][] = [
    ["data_out", a.dataOut, r.data],
    ["ctx_out", a.ctxOut, r.ctx],
  ];
  for (const [, path, bytes] of outs) if (path !== undefined && path !== "-") write(path, bytes);
  if (json) {
    const o: Record<string, unknown> = {};
    for (const [name, path, bytes] of outs) if (path === "-") o[name] = [...bytes];
    o.retval = r.retval;
    o.duration = r.duration;
    return `${JSON.stringify(o)}\n`;
  }
  let s = "";
  for (const [, path, bytes] of outs) if (path === "-") s += hexDump(bytes);
  return `${s}Return value: ${r.retval}, duration${a.repeat > 1 ? " (average)" : ""}: ${r.duration}ns\n`;
}

/**
 * `htab prog show OBJECT`: the object's programs and maps (globals
 * included), numbered as `htab replay`'s "load" numbers them. Plain:
 *
 *   0: xdp  name sys_enter_count  section xdp  insns 33
 *   map 0: hash  name concurrent_map  flags 0x0
 *   	key 4B  value 8B  max_entries 100
 *
 * JSON: {"programs":[{"prog":0,"name":…,"section":…,"type":"xdp","insns":33}],
 * "maps":[{"map":0,"name":…,"type":"hash","key":4,"value":8,"max_entries":100,"flags":0}]}
 * (a global's map also has "section").
 */
export function progShow(argv: string[], opts: { json: boolean }, read: FileReader): ProgOutput {
  try {
    if (argv.length !== 1) throw new ProgCmdError(`'show' needs an OBJECT, ${argv.length} arguments found`);
    let spec: BpfObjectSpec;
    try {
      spec = openObject(readArg(read, argv[0], "object"), { name: objectName(argv[0]) });
    } catch (e) {
      if (e instanceof ProgCmdError) throw e;
      throw new ProgCmdError(`failed to open ${argv[0]}: ${(e as Error).message}`);
    }
    const programs = spec.programs.map((p, i) => ({
      prog: i,
      name: p.name,
      section: p.section,
      type: PROG_TYPE_NAMES[p.type] ?? String(p.type),
      insns: p.insns.length,
    }));
    const maps = spec.maps.map((d, i) => ({
      map: i,
      name: d.name,
      type: kernelMapTypeName(d.type),
      key: d.keySize,
      value: d.valueSize,
      max_entries: d.maxEntries,
      flags: d.flags,
      ...(d.global ? { section: d.global.section } : {}),
    }));
    if (opts.json) return { stdout: `${JSON.stringify({ programs, maps })}\n`, stderr: "", code: 0 };
    let s = "";
    for (const p of programs)
      s += `${p.prog}: ${p.type}  name ${p.name}  section ${p.section}  insns ${p.insns}\n`;
    for (const m of maps)
      s +=
        `map ${m.map}: ${m.type}  name ${m.name}  flags 0x${m.flags.toString(16)}\n` +
        `\tkey ${m.key}B  value ${m.value}B  max_entries ${m.max_entries}${m.section ? `  section ${m.section}` : ""}\n`;
    return { stdout: s, stderr: "", code: 0 };
  } catch (e) {
    if (!(e instanceof ProgCmdError)) throw e;
    return opts.json
      ? { stdout: `${JSON.stringify({ error: e.message })}\n`, stderr: "", code: e.code }
      : { stdout: "", stderr: `Error: ${e.message}\n`, code: e.code };
  }
}
