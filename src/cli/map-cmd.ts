/**
 * `htab map`: bpftool's map commands, in bpftool's grammar and with its
 * output byte for byte (plain and JSON), so that scripts written for
 * `bpftool map` keep working:
 *
 *   htab map show [id N | pinned PATH]
 *   htab map dump (id N | pinned PATH)
 *   htab map lookup MAP key [hex] BYTES
 *   htab map update MAP key [hex] BYTES value [hex] BYTES [any | exist | noexist]
 *   htab map delete MAP key [hex] BYTES
 *   htab map pin MAP PATH
 *
 * with `-j`/`--json` on each. Exit codes are bpftool's too: 255 for a usage
 * or open error, the errno's two's complement byte for a failed element call.
 * BTF-formatted output is not written yet: maps are dumped as hex.
 */

import { statfsSync } from "node:fs";
import { dirname } from "node:path";
import type { Btf } from "../btf/btf.js";
import { type BtfFormatted, BtfLeaf, btfFormat, JsonW } from "../btf/format.js";
import { strerror } from "../kernel/errno-text.js";
import { KernelMap } from "../kernel/kernel-map.js";
import { kernelTypeIsPercpu } from "../kernel/map-types.js";
import { walkKeys } from "../map/key-walk.js";

/** What a command printed and how it ended, for the CLI and the tests. */
export interface CmdOutput {
  stdout: string;
  stderr: string;
  code: number;
}

class CmdError extends Error {
  constructor(
    message: string,
    readonly code = 255,
  ) {
    super(message);
  }
}

/** bpftool's fprint_hex(): bytes in hex, a double space every 8, a newline every 16. */
export function hexBytes(b: Uint8Array, off = 0, n = b.length - off): string {
  let s = "";
  for (let i = 0; i < n; i++) {
    if (i > 0) s += i % 16 === 0 ? "\n" : i % 8 === 0 ? "  " : " ";
    s += b[off + i].toString(16).padStart(2, "0");
  }
  return s;
}

function jsonBytes(b: Uint8Array, off: number, n: number): string[] {
  const out: string[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = `0x${b[off + i].toString(16).padStart(2, "0")}`;
  return out;
}

/** bpftool's print_entry_plain(): one entry, the per-CPU shape for per-CPU maps. */
function entryPlain(m: KernelMap, key: Uint8Array, value: Uint8Array): string {
  const { keySize, valueSize, type, nrCpus } = m.info;
  if (!kernelTypeIsPercpu(type)) {
    const breakNames = keySize > 16 || valueSize > 16;
    const singleLine = keySize + valueSize <= 24 && !breakNames;
    return (
      `key:${breakNames ? "\n" : " "}${hexBytes(key, 0, keySize)}` +
      `${singleLine ? "  " : "\n"}value:${breakNames ? "\n" : " "}${hexBytes(value, 0, valueSize)}\n`
    );
  }
  const step = Math.ceil(valueSize / 8) * 8;
  let s = `key:\n${hexBytes(key, 0, keySize)}\n`;
  for (let c = 0; c < nrCpus; c++)
    s += `value (CPU ${String(c).padStart(2, "0")}):${valueSize > 16 ? "\n" : " "}${hexBytes(value, c * step, valueSize)}\n`;
  return s;
}

/** bpftool's print_entry_json(). */
/** A map's BTF for formatting, when it has key and value types (else null: hex only). */
function formatBtf(m: KernelMap): Btf | null {
  const { btfId, btfKeyTypeId, btfValueTypeId } = m.info;
  if (!btfId || !btfKeyTypeId || !btfValueTypeId) return null;
  return m.btf();
}

/** Hex bytes as json_writer leaves. */
function hexLeaves(b: Uint8Array, off: number, n: number): BtfLeaf[] {
  return jsonBytes(b, off, n).map((h) => new BtfLeaf(JSON.stringify(h)));
}

/**
 * The value member(s) of an entry: "value": …, or for a per-CPU map
 * "values": [{"cpu": 0, "value": …}, …]; `at(off)` writes one CPU's value at byte `off`.
 */
function valueMembers(w: JsonW, m: KernelMap, at: (off: number) => BtfFormatted): void {
  const { type, valueSize, nrCpus } = m.info;
  if (!kernelTypeIsPercpu(type)) {
    w.name("value");
    w.value(at(0));
    return;
  }
  const step = Math.ceil(valueSize / 8) * 8;
  w.name("values");
  w.begin("[");
  for (let c = 0; c < nrCpus; c++) {
    w.begin("{");
    w.name("cpu");
    w.raw(String(c));
    w.name("value");
    w.value(at(c * step));
    w.end("}");
  }
  w.end("]");
}

/** bpftool's do_dump_btf(): {"key": …, "value": …} (or "values" per CPU) through its json_writer. */
function btfEntry(w: JsonW, m: KernelMap, btf: Btf, key: Uint8Array, value: Uint8Array, plain = true): void {
  const { btfKeyTypeId, btfValueTypeId } = m.info;
  w.begin("{");
  w.name("key");
  w.value(btfFormat(btf, btfKeyTypeId as number, key, 0, 0, 0, plain));
  valueMembers(w, m, (off) => btfFormat(btf, btfValueTypeId as number, value, off, 0, 0, plain));
  w.end("}");
}

/** print_entry_json() with BTF: the hex arrays, then "formatted". */
function btfEntryJson(m: KernelMap, btf: Btf, key: Uint8Array, value: Uint8Array): string {
  const w = new JsonW(false);
  w.begin("{");
  w.name("key");
  w.value(hexLeaves(key, 0, m.info.keySize));
  valueMembers(w, m, (off) => hexLeaves(value, off, m.info.valueSize));
  w.name("formatted");
  btfEntry(w, m, btf, key, value, false);
  w.end("}");
  return w.toString();
}

function entryJson(m: KernelMap, key: Uint8Array, value: Uint8Array): Record<string, unknown> {
  const { keySize, valueSize, type, nrCpus } = m.info;
  if (!kernelTypeIsPercpu(type))
    return { key: jsonBytes(key, 0, keySize), value: jsonBytes(value, 0, valueSize) };
  const step = Math.ceil(valueSize / 8) * 8;
  return {
    key: jsonBytes(key, 0, keySize),
    values: Array.from({ length: nrCpus }, (_, c) => ({
      cpu: c,
      value: jsonBytes(value, c * step, valueSize),
    })),
  };
}

/** BPF_FS_MAGIC (include/uapi/linux/magic.h). */
const BPF_FS_MAGIC = 0xcafe4a11;

function onBpffs(dir: string): boolean {
  try {
    return statfsSync(dir).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** bpftool's is_prefix(): `pfx` (which may be empty) starts `str`. */
export function isPrefix(pfx: string | undefined, str: string): boolean {
  return pfx !== undefined && str.startsWith(pfx);
}

/** bpftool's usage(): the usage on stderr (null with -j), exit 255 (0 for `help`). */
class UsageError extends Error {
  constructor(readonly code = 255) {
    super("usage");
  }
}

/** A failure bpftool reports with no message (a `name` that matches no map): exit 255. */
class SilentError extends Error {}

const USAGE = `Usage: htab map { show | list }   [MAP]
       htab map dump       MAP
       htab map update     MAP [key DATA] [value VALUE] [UPDATE_FLAGS]
       htab map lookup     MAP [key DATA]
       htab map getnext    MAP [key DATA]
       htab map delete     MAP  key DATA
       htab map pin        MAP  FILE
       htab map freeze     MAP
       htab map help

       MAP := { id MAP_ID | pinned FILE | name MAP_NAME }
       DATA := { [hex] BYTES }
       VALUE := DATA
       UPDATE_FLAGS := { any | exist | noexist }
       OPTIONS := { {-j|--json} [{-p|--pretty}] }
`;

/**
 * strtoul(s, &end, base) with bpftool's `*end` check: the value modulo
 * 2^64 (ULONG_MAX on overflow, negated for a leading '-'), or null when
 * characters are left after the number. An empty string is 0 (strtoul
 * converts nothing and leaves `end` at the terminator). Linear in `s`.
 */
export function strtoul(s: string, base: 0 | 16): bigint | null {
  let i = 0;
  while (i < s.length && " \t\n\v\f\r".includes(s[i])) i++;
  let neg = false;
  if (s[i] === "+" || s[i] === "-") {
    neg = s[i] === "-";
    i++;
  }
  const isHex = (c: string | undefined) => c !== undefined && /^[0-9a-fA-F]$/.test(c);
  let b: number = base;
  if ((b === 0 || b === 16) && s[i] === "0" && (s[i + 1] === "x" || s[i + 1] === "X") && isHex(s[i + 2])) {
    i += 2;
    b = 16;
  } else if (b === 0) b = s[i] === "0" ? 8 : 10;
  const start = i;
  const max = (1n << 64n) - 1n;
  let acc = 0n;
  let over = false;
  for (; i < s.length; i++) {
    const d = Number.parseInt(s[i], 16);
    if (Number.isNaN(d) || d >= b) break;
    if (!over) {
      acc = acc * BigInt(b) + BigInt(d);
      if (acc > max) over = true;
    }
  }
  if (i === start) return s.length === 0 ? 0n : null; // nothing converted: end = s
  if (i !== s.length) return null;
  if (over) return max;
  return neg && acc !== 0n ? (1n << 64n) - acc : acc;
}

/**
 * `MAP := { id MAP_ID | name MAP_NAME | pinned FILE }` (bpftool's
 * map_parse_fds(), keyword prefixes included): opens it (any type, as
 * bpftool does) and returns the rest of argv. `argv` holds at least 2 words.
 */
function openMap(argv: string[]): [KernelMap, string[]] {
  const [maps, rest] = openMaps(argv);
  if (maps.length > 1) {
    for (const m of maps) m.close();
    throw new CmdError("several maps match this handle");
  }
  return [maps[0], rest];
}

/** openMap() for show and dump, which take every map a `name` matches (bpftool's map_parse_fds()). */
function openMaps(argv: string[]): [KernelMap[], string[]] {
  const [how, what, ...rest] = argv;
  if (isPrefix(how, "id")) {
    const n = strtoul(what, 0);
    if (n === null) throw new CmdError(`can't parse ${what} as ID`);
    const id = Number(n & 0xffffffffn);
    try {
      if (id === 0) throw Object.assign(new Error("no map 0"), { errno: 2 });
      return [[KernelMap.fromAnyType(() => KernelMap.fromId(id))], rest];
    } catch (e) {
      throw new CmdError(`get map by id (${id}): ${strerror((e as { errno?: number }).errno ?? 22)}`);
    }
  }
  if (isPrefix(how, "name")) {
    if (Buffer.byteLength(what) > 15) throw new CmdError("can't parse name");
    const ids = KernelMap.list()
      .filter((l) => l.name === what)
      .map((l) => l.id);
    if (ids.length === 0) throw new SilentError();
    const maps: KernelMap[] = [];
    for (const id of ids) {
      try {
        maps.push(KernelMap.fromAnyType(() => KernelMap.fromId(id)));
      } catch (e) {
        for (const m of maps) m.close();
        throw new CmdError(`can't get map by id (${id}): ${strerror((e as { errno?: number }).errno ?? 22)}`);
      }
    }
    return [maps, rest];
  }
  if (isPrefix(how, "pinned")) {
    try {
      return [[KernelMap.fromAnyType(() => KernelMap.fromPinned(what))], rest];
    } catch (e) {
      const errno = (e as { errno?: number }).errno ?? 22;
      // bpftool's open_obj_pinned(): EACCES outside bpffs names the directory.
      const dir = dirname(what);
      if (errno === 13 && !onBpffs(dir))
        throw new CmdError(`bpf obj get (${dir}): directory not in bpf file system (bpffs)`);
      throw new CmdError(`bpf obj get (${what}): ${strerror(errno)}`);
    }
  }
  throw new CmdError(`expected 'id', 'name' or 'pinned', got: '${how}'?`);
}

/**
 * `[hex] BYTES` for exactly `n` bytes from argv[at]: bpftool's
 * parse_bytes(). Each byte is strtoul() with base 0 (0x.. hex, 0.. octal,
 * else decimal), or base 16 after `hex` (or a prefix of it), and keeps its
 * low 8 bits. @returns the bytes and the index after them
 */
function parseBytes(argv: string[], at: number, name: string, n: number): [Uint8Array, number] {
  let i = at;
  let base: 0 | 16 = 0;
  if (isPrefix(argv[i], "hex")) {
    base = 16;
    i++;
  }
  const out = new Uint8Array(n);
  let j = 0;
  for (; j < n && i + j < argv.length; j++) {
    const v = strtoul(argv[i + j], base);
    if (v === null) throw new CmdError(`error parsing byte: ${argv[i + j]}`);
    out[j] = Number(v & 0xffn);
  }
  if (j !== n) throw new CmdError(`${name} expected ${n} bytes got ${j}`);
  return [out, i + n];
}

/** What parseElem() read: the key, the value (value_size bytes) and the update flags, as asked. */
interface Elem {
  key: Uint8Array;
  value: Uint8Array;
  flags: number;
}

/**
 * bpftool's parse_elem(): `key DATA`, `value DATA` and one of `any`,
 * `exist`, `noexist`, each where the command takes it, in any order, each
 * keyword by any prefix; every word must be used (a trailing word is
 * refused before anything is done). `value` and `flags` false: the
 * command takes none.
 */
function parseElem(argv: string[], keySize: number, valueSize: number | false, flags: boolean): Elem {
  const e: Elem = { key: new Uint8Array(keySize), value: new Uint8Array(valueSize || 0), flags: 0 };
  let needKey = true;
  let needValue = valueSize !== false;
  let needFlags = flags;
  let i = 0;
  for (;;) {
    const w = argv[i];
    if (w === undefined) {
      if (needKey) throw new CmdError("did not find key");
      if (needValue) throw new CmdError("did not find value");
      return e;
    }
    if (isPrefix(w, "key")) {
      if (!needKey) throw new CmdError("duplicate key");
      [e.key, i] = parseBytes(argv, i + 1, "key", keySize);
      needKey = false;
    } else if (isPrefix(w, "value")) {
      if (!needValue) throw new CmdError(valueSize === false ? "unnecessary value" : "duplicate value");
      [e.value, i] = parseBytes(argv, i + 1, "value", valueSize as number);
      needValue = false;
    } else if (isPrefix(w, "any") || isPrefix(w, "noexist") || isPrefix(w, "exist")) {
      if (!needFlags) throw new CmdError(`flags specified multiple times: ${w}`);
      e.flags = isPrefix(w, "any") ? 0 : isPrefix(w, "noexist") ? 1 : 2;
      needFlags = false;
      i++;
    } else throw new CmdError(`expected key or value, got: ${w}`);
  }
}

/** bpftool's fill_per_cpu_value(): one value, copied to every CPU's slot. */
function perCpuValue(m: KernelMap, value: Uint8Array): Uint8Array {
  const { type, valueSize, valueBytes } = m.info;
  if (!kernelTypeIsPercpu(type)) return value;
  const out = new Uint8Array(valueBytes);
  const step = Math.ceil(valueSize / 8) * 8;
  for (let off = 0; off + valueSize <= valueBytes; off += step) out.set(value, off);
  return out;
}

/** The show lines of one map (bpftool's show_map_close_plain / _json). */
function showOne(m: KernelMap, json: boolean): string | Record<string, unknown> {
  const d = m.describe();
  if (json) {
    const o: Record<string, unknown> = { id: d.id, type: d.typeName };
    if (d.name) o.name = d.name;
    Object.assign(o, {
      flags: d.flags,
      bytes_key: d.keySize,
      bytes_value: d.valueSize,
      max_entries: d.maxEntries,
      bytes_memlock: d.memlock,
      frozen: d.frozen,
    });
    if (d.btfId) o.btf_id = d.btfId;
    return o;
  }
  let s = `${d.id}: ${d.typeName}  ${d.name ? `name ${d.name}  ` : ""}flags 0x${d.flags.toString(16)}\n`;
  s += `\tkey ${d.keySize}B  value ${d.valueSize}B  max_entries ${d.maxEntries}  memlock ${d.memlock}B\n`;
  if (d.btfId || d.frozen)
    s += `\t${d.btfId ? `btf_id ${d.btfId}` : ""}${d.frozen ? `${d.btfId ? "  " : ""}frozen` : ""}\n`;
  return s;
}

/**
 * Every entry of `m`: BPF_MAP_LOOKUP_BATCH where the kernel has it (each
 * bucket read whole, so a dump under concurrent deletes neither skips nor
 * repeats a key of a bucket), else a get_next_key walk as bpftool's (a key
 * deleted between get_next_key and its lookup is skipped; the walk is
 * bounded). On a quiet map both give bpftool's order: bucket by bucket,
 * each chain from its head.
 */
function* entries(m: KernelMap): Generator<[Uint8Array, Uint8Array]> {
  const ks = m.info.keySize;
  const vb = m.info.valueBytes;
  let count = 64;
  let cursor: number | null = null;
  let batched = 0;
  for (;;) {
    const r = m.lookupBatch({ inBatch: cursor, count });
    if (r.err === -28 && count < 1 << 16) {
      count *= 2; // one bucket holds more than count: grow and read it again
      continue;
    }
    if (r.err !== 0 && r.err !== -2) {
      if (batched === 0) break; // no batch ops for this type (EINVAL, EOPNOTSUPP): walk instead
      throw new CmdError(`dump failed: ${strerror(-r.err)}`);
    }
    for (let i = 0; i < r.count; i++)
      yield [r.keys.slice(i * ks, (i + 1) * ks), r.values.slice(i * vb, (i + 1) * vb)];
    batched++;
    if (r.err === -2 || r.outBatch === null) return;
    cursor = r.outBatch;
  }
  const value = new Uint8Array(vb);
  for (const key of walkKeys(m, { op: "dump", atLimit: "stop" }))
    if (m.lookupElem(key, value, 0) === 0) yield [key, value.slice()];
}

/** Open MAP from `argv`, run `fn` with it and the arguments after it, and close it whatever happens. */
function withMap<T>(argv: string[], fn: (m: KernelMap, rest: string[]) => T): T {
  const [m, rest] = openMap(argv);
  try {
    return fn(m, rest);
  } finally {
    m.close();
  }
}

/** withMap() over every map MAP names (show and dump). */
function withMaps<T>(argv: string[], fn: (maps: KernelMap[]) => T): T {
  const [maps] = openMaps(argv);
  try {
    return fn(maps);
  } finally {
    for (const m of maps) m.close();
  }
}

/** bpftool's exit code for a failed element call: -errno as a byte. */
function exitCode(r: number): number {
  return (256 + r) & 0xff;
}

/** A write's result: nothing on success, else bpftool's "update failed: File exists" with -errno. */
function checked(what: string, r: number): void {
  if (r !== 0) throw new CmdError(`${what} failed: ${strerror(-r)}`, exitCode(r));
}

/**
 * bpftool's do_dump() of several maps (a `name` several maps have): each
 * map's header line then its entries, a blank line between maps; JSON, an
 * array of {id, type, name, flags, elements}. bpftool formats maps with BTF
 * here too; htab refuses those rather than print something else.
 */
function dumpSeveral(maps: KernelMap[], json: boolean, out: string[]): void {
  if (maps.some((m) => formatBtf(m) !== null))
    throw new CmdError("htab map dumps several maps of one name only when none has BTF");
  const parts: string[] = [];
  const objs: Record<string, unknown>[] = [];
  for (const m of maps) {
    const d = m.describe();
    if (json) {
      const o: Record<string, unknown> = { id: d.id, type: d.typeName };
      if (d.name) o.name = d.name;
      o.flags = d.flags;
      o.elements = [...entries(m)].map(([k, v]) => entryJson(m, k, v));
      objs.push(o);
      continue;
    }
    let s = `${d.id}: ${d.typeName}  ${d.name ? `name ${d.name}  ` : ""}flags 0x${d.flags.toString(16)}\n`;
    let n = 0;
    for (const [k, v] of entries(m)) {
      s += entryPlain(m, k, v);
      n++;
    }
    parts.push(`${s}Found ${n} element${n === 1 ? "" : "s"}\n`);
  }
  out.push(json ? `${JSON.stringify(objs)}\n` : parts.join("\n"));
}

/** bpftool's map commands in its order: a prefix selects the first it starts. */
const COMMANDS = [
  "show",
  "list",
  "help",
  "dump",
  "update",
  "lookup",
  "getnext",
  "delete",
  "pin",
  "event_pipe",
  "create",
  "peek",
  "push",
  "enqueue",
  "pop",
  "dequeue",
  "freeze",
] as const;

/** bpftool's REQ_ARGS(): `typed` (the command as typed) needs `n` words after it. */
function reqArgs(typed: string, rest: string[], n: number, code = 255): void {
  if (rest.length < n)
    throw new CmdError(`'${typed}' needs at least ${n} arguments, ${rest.length} found`, code);
}

function showAll(json: boolean, out: string[]): void {
  const all: unknown[] = [];
  for (const l of KernelMap.list()) {
    let m: KernelMap;
    try {
      m = KernelMap.fromAnyType(() => KernelMap.fromId(l.id));
    } catch {
      continue;
    }
    try {
      const s = showOne(m, json);
      if (json) all.push(s);
      else out.push(s as string);
    } finally {
      m.close();
    }
  }
  if (json) out.push(`${JSON.stringify(all)}\n`);
}

function run(argv: string[], json: boolean): CmdOutput {
  const out: string[] = [];
  const typed = argv[0];
  const rest = argv.slice(1);
  const done = (code = 0): CmdOutput => ({ stdout: out.join(""), stderr: "", code });
  // bpftool's cmd_select(): no command is the first (show); else the first the word is a prefix of.
  const cmd = typed === undefined ? "show" : COMMANDS.find((c) => isPrefix(typed, c));
  switch (cmd) {
    case undefined:
      throw new UsageError();
    case "help":
      throw new UsageError(0);
    case "show":
    case "list": {
      if (rest.length === 0) {
        showAll(json, out);
        return done();
      }
      if (rest.length !== 2) throw new CmdError(`what is '${rest[0]}'?`);
      withMaps(rest, (maps) => {
        const all = maps.map((m) => showOne(m, json));
        // Several maps of one name: plain, one after the other; JSON, an array.
        if (!json) out.push(...(all as string[]));
        else out.push(`${JSON.stringify(all.length === 1 ? all[0] : all)}\n`);
      });
      return done();
    }
    case "dump": {
      if (rest.length !== 2) throw new UsageError();
      withMaps(rest, (maps) => {
        if (maps.length > 1) {
          dumpSeveral(maps, json, out);
          return;
        }
        const m = maps[0];
        const btf = formatBtf(m);
        if (btf !== null) {
          // With BTF, bpftool prints the formatted entries (pretty json_writer), or with -j
          // the hex and a "formatted" member; no element count.
          if (json) out.push(`[${[...entries(m)].map(([k, v]) => btfEntryJson(m, btf, k, v)).join(",")}]\n`);
          else {
            const w = new JsonW(true);
            w.begin("[");
            for (const [k, v] of entries(m)) btfEntry(w, m, btf, k, v);
            w.end("]");
            out.push(`${w.toString()}\n`);
          }
        } else if (json) {
          out.push(`${JSON.stringify([...entries(m)].map(([k, v]) => entryJson(m, k, v)))}\n`);
        } else {
          let n = 0;
          for (const [k, v] of entries(m)) {
            out.push(entryPlain(m, k, v));
            n++;
          }
          out.push(`Found ${n} element${n === 1 ? "" : "s"}\n`);
        }
      });
      return done();
    }
    case "lookup":
      if (rest.length < 2) throw new UsageError();
      return withMap(rest, (m, after) => {
        const { key } = parseElem(after, m.info.keySize, false, false);
        const value = new Uint8Array(m.info.valueBytes);
        const r = m.lookupElem(key, value, 0);
        if (r === 0) {
          const btf = formatBtf(m);
          if (btf !== null && json) out.push(`${btfEntryJson(m, btf, key, value)}\n`);
          else if (btf !== null) {
            const w = new JsonW(true);
            btfEntry(w, m, btf, key, value);
            out.push(`${w.toString()}\n`);
          } else out.push(json ? `${JSON.stringify(entryJson(m, key, value))}\n` : entryPlain(m, key, value));
          return done();
        }
        // bpftool's print_entry_error(): the key, then the error (stdout), exit -errno.
        if (json) out.push("null\n");
        else
          out.push(`key:\n${hexBytes(key, 0, m.info.keySize)}\n\n${r === -2 ? "Not found" : strerror(-r)}\n`);
        return done(exitCode(r));
      });
    case "update":
      if (rest.length < 2) throw new UsageError();
      return withMap(rest, (m, after) => {
        // Every word is parsed before the map is written.
        const { key, value, flags } = parseElem(after, m.info.keySize, m.info.valueSize, true);
        checked("update", m.updateElem(key, perCpuValue(m, value), flags));
        if (json) out.push("null\n");
        return done();
      });
    case "delete":
      if (rest.length < 2) throw new UsageError();
      return withMap(rest, (m, after) => {
        const { key } = parseElem(after, m.info.keySize, false, false);
        checked("delete", m.deleteElem(key));
        if (json) out.push("null\n");
        return done();
      });
    case "pin":
      // bpftool's do_pin_any(): REQ_ARGS(3) failing is -EINVAL (exit 234); words after FILE are ignored.
      reqArgs(typed as string, rest, 3, 234);
      return withMap(rest, (m, after) => {
        try {
          m.pin(after[0]);
        } catch (e) {
          throw new CmdError(
            `can't pin the object (${after[0]}): ${strerror((e as { errno?: number }).errno ?? 22)}`,
          );
        }
        if (json) out.push("null\n");
        return done();
      });
    case "getnext":
      // bpftool's do_getnext(): the key (or None) and the next key; at the end "can't get next key".
      if (rest.length < 2) throw new UsageError();
      return withMap(rest, (m, after) => {
        const n = m.info.keySize;
        const key = after.length > 0 ? parseElem(after, n, false, false).key : null;
        const next = new Uint8Array(n);
        const r = m.getNextKey(key, next);
        if (r !== 0) throw new CmdError(`can't get next key: ${strerror(-r)}`, exitCode(r));
        if (json)
          out.push(
            `${JSON.stringify({ key: key === null ? null : jsonBytes(key, 0, n), next_key: jsonBytes(next, 0, n) })}\n`,
          );
        else
          out.push(
            `${key === null ? "key: None\n" : `key:\n${hexBytes(key, 0, n)}\n`}next key:\n${hexBytes(next, 0, n)}\n`,
          );
        return done();
      });
    case "freeze":
      // bpftool's do_freeze(): BPF_MAP_FREEZE; nothing printed (null with -j).
      reqArgs(typed as string, rest, 2);
      return withMap(rest, (m, after) => {
        if (after.length) throw new CmdError(`what is '${after[0]}'?`);
        const r = m.freeze();
        if (r !== 0) throw new CmdError(`failed to freeze map: ${strerror(-r)}`);
        if (json) out.push("null\n");
        return done();
      });
    default:
      throw new CmdError(`htab map does not implement '${cmd}' (bpftool's ${cmd} is for other map types)`);
  }
}

/**
 * Compact JSON text as bpftool's json_writer prints it with -p: a member per
 * line, four spaces a level, array items run on (the text of numbers and
 * strings kept as they are, so a u64 keeps every digit).
 */
export function prettyJson(text: string): string {
  const w = new JsonW(true);
  const tokens = text.match(/"(?:[^"\\]|\\.)*"|[{}[\]:,]|[^\s{}[\]:,"]+/g) ?? [];
  let name: string | null = null;
  const inObject: boolean[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === ",") continue;
    if (t === ":") continue;
    if (inObject[inObject.length - 1] && name === null && t !== "}") {
      name = JSON.parse(t) as string;
      w.name(name);
      continue;
    }
    name = null;
    if (t === "{" || t === "[") {
      w.begin(t);
      inObject.push(t === "{");
    } else if (t === "}" || t === "]") {
      w.end(t);
      inObject.pop();
    } else w.raw(t);
  }
  return w.toString();
}

/**
 * Run `htab map ARGS`: what it prints and its exit code. Errors go to stderr
 * as "Error: ..." (plain) or to stdout as {"error":"..."} (JSON), as bpftool
 * does; a malformed command line prints the usage (null with JSON) and
 * changes nothing. `pretty` (-p/--pretty) implies JSON.
 */
export function mapCommand(argv: string[], json: boolean, pretty = false): CmdOutput {
  const r = runCaught(argv, json || pretty);
  if (!pretty) return r;
  const lines = r.stdout.split("\n");
  return { ...r, stdout: lines.map((l) => (l === "" ? l : prettyJson(l))).join("\n") };
}

function runCaught(argv: string[], json: boolean): CmdOutput {
  try {
    return run(argv, json);
  } catch (e) {
    if (e instanceof UsageError)
      return json
        ? { stdout: "null\n", stderr: "", code: e.code }
        : { stdout: "", stderr: USAGE, code: e.code };
    if (e instanceof SilentError) return { stdout: json ? "\n" : "", stderr: "", code: 255 };
    const msg = e instanceof CmdError ? e.message : (e as Error).message;
    const code = e instanceof CmdError ? e.code : 255;
    return json
      ? { stdout: `${JSON.stringify({ error: msg })}\n`, stderr: "", code }
      : { stdout: "", stderr: `Error: ${msg}\n`, code };
  }
}
