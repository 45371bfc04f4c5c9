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

/** `MAP := { id MAP_ID | pinned FILE }`: opens it (any type, as bpftool does) and returns the rest of argv. */
function openMap(argv: string[]): [KernelMap, string[]] {
  const [how, what, ...rest] = argv;
  if (how === "id") {
    const id = Number(what);
    if (what === undefined || !/^\d+$/.test(what))
      throw new CmdError(`can't parse ${what ?? "(nothing)"} as ID`);
    try {
      return [KernelMap.fromAnyType(() => KernelMap.fromId(id)), rest];
    } catch (e) {
      throw new CmdError(`get map by id (${id}): ${strerror((e as { errno?: number }).errno ?? 22)}`);
    }
  }
  if (how === "pinned") {
    if (what === undefined) throw new CmdError("expected a path after pinned");
    try {
      return [KernelMap.fromAnyType(() => KernelMap.fromPinned(what)), rest];
    } catch (e) {
      const errno = (e as { errno?: number }).errno ?? 22;
      // bpftool's open_obj_pinned(): EACCES outside bpffs names the directory.
      const dir = dirname(what);
      if (errno === 13 && !onBpffs(dir))
        throw new CmdError(`bpf obj get (${dir}): directory not in bpf file system (bpffs)`);
      throw new CmdError(`bpf obj get (${what}): ${strerror(errno)}`);
    }
  }
  throw new CmdError(`expected 'id' or 'pinned', got: '${how ?? ""}'?`);
}

/**
 * `[hex] BYTES` for `n` bytes: bpftool's parse_bytes(). Each byte is read as
 * strtoul() with base 0 (0x.. hex, 0.. octal, else decimal), or base 16
 * after `hex`, and keeps its low 8 bits.
 */
function parseBytes(argv: string[], name: string, n: number): [Uint8Array, string[]] {
  let i = 0;
  let hex = false;
  if (argv[0] === "hex") {
    hex = true;
    i = 1;
  }
  const out = new Uint8Array(n);
  for (let j = 0; j < n; j++, i++) {
    const s = argv[i];
    if (s === undefined) throw new CmdError(`${name} expected ${n} bytes got ${j}`);
    const v = parseByte(s, hex);
    if (v === null) throw new CmdError(`error parsing byte: ${s}`);
    out[j] = v;
  }
  return [out, argv.slice(i)];
}

function parseByte(s: string, hex: boolean): number | null {
  let m: RegExpExecArray | null;
  if (hex) m = /^(?:0[xX])?([0-9a-fA-F]+)$/.exec(s);
  else m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (m === null) return null;
  const t = hex ? m[1] : m[1];
  const v = hex
    ? Number.parseInt(t, 16)
    : t.startsWith("0x") || t.startsWith("0X")
      ? Number.parseInt(t, 16)
      : t.startsWith("0") && t.length > 1
        ? Number.parseInt(t, 8)
        : Number(t);
  return v & 0xff;
}

/** `key BYTES` where `word` is the keyword. */
function keyword(argv: string[], word: string, n: number): [Uint8Array, string[]] {
  if (argv[0] !== word) throw new CmdError(`did not find ${word}`);
  return parseBytes(argv.slice(1), word, n);
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

/** bpftool's exit code for a failed element call: -errno as a byte. */
function exitCode(r: number): number {
  return (256 + r) & 0xff;
}

/** A write's result: nothing on success, else bpftool's "update failed: File exists" with -errno. */
function checked(what: string, r: number): void {
  if (r !== 0) throw new CmdError(`${what} failed: ${strerror(-r)}`, exitCode(r));
}

function run(argv: string[], json: boolean): CmdOutput {
  const out: string[] = [];
  const cmd = argv[0];
  const rest = argv.slice(1);
  const done = (code = 0): CmdOutput => ({ stdout: out.join(""), stderr: "", code });
  switch (cmd) {
    case "show":
    case "list": {
      if (rest.length === 0) {
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
        return done();
      }
      withMap(rest, (m, extra) => {
        if (extra.length) throw new CmdError(`too many arguments: ${extra.join(" ")}`);
        const s = showOne(m, json);
        out.push(json ? `${JSON.stringify(s)}\n` : (s as string));
      });
      return done();
    }
    case "dump": {
      withMap(rest, (m) => {
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
      return withMap(rest, (m, after) => {
        const [key] = keyword(after, "key", m.info.keySize);
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
      return withMap(rest, (m, after) => {
        const [key, a2] = keyword(after, "key", m.info.keySize);
        const [value, a3] = keyword(a2, "value", m.info.valueBytes);
        const flag = a3[0];
        const flags =
          flag === undefined || flag === "any" ? 0 : flag === "noexist" ? 1 : flag === "exist" ? 2 : -1;
        if (flags < 0) throw new CmdError(`update flags not recognized: ${flag}`);
        checked("update", m.updateElem(key, value, flags));
        if (json) out.push("null\n");
        return done();
      });
    case "delete":
      return withMap(rest, (m, after) => {
        const [key] = keyword(after, "key", m.info.keySize);
        checked("delete", m.deleteElem(key));
        if (json) out.push("null\n");
        return done();
      });
    case "pin":
      return withMap(rest, (m, after) => {
        if (after.length !== 1) throw new CmdError("bad number of arguments");
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
      return withMap(rest, (m, after) => {
        const n = m.info.keySize;
        let key: Uint8Array | null = null;
        if (after.length > 0) {
          const [k, extra] = keyword(after, "key", n);
          if (extra.length) throw new CmdError(`expected key or value, got: ${extra[0]}`);
          key = k;
        }
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
      return withMap(rest, (m, after) => {
        if (after.length) throw new CmdError(`what is '${after[0]}'?`);
        const r = m.freeze();
        if (r !== 0) throw new CmdError(`failed to freeze map: ${strerror(-r)}`);
        if (json) out.push("null\n");
        return done();
      });
    default:
      throw new CmdError(
        `'${cmd ?? ""}' needs one of show, dump, lookup, getnext, update, delete, pin, freeze`,
      );
  }
}

/**
 * Run `htab map ARGS`: what it prints and its exit code. Errors go to stderr
 * as "Error: ..." (plain) or to stdout as {"error":"..."} (JSON), as bpftool does.
 */
export function mapCommand(argv: string[], json: boolean): CmdOutput {
  try {
    return run(argv, json);
  } catch (e) {
    const msg = e instanceof CmdError ? e.message : (e as Error).message;
    const code = e instanceof CmdError ? e.code : 255;
    return json
      ? { stdout: `${JSON.stringify({ error: msg })}\n`, stderr: "", code }
      : { stdout: "", stderr: `Error: ${msg}\n`, code };
  }
}
