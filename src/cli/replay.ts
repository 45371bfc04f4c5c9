/**
 * The `htab replay` engine: one JSON object per line in, one JSON result per
 * line out, on either backend. The format is a contract (see README):
 * hex strings are the little-endian bytes as stored; errors carry the
 * kernel's errno name; a malformed line gives {"ok":false,"error":…} and
 * changes nothing.
 */

import type { BpfObject, ObjectProgram } from "../bpf/index.js";
import { Errno, errnoName } from "../errors.js";
import { KernelMap } from "../kernel/kernel-map.js";
import { walkKeys } from "../map/key-walk.js";
import type { BatchResult, RawMap } from "../map/raw-map.js";
import type { MapSpec } from "../map/spec.js";
import { isOuter as isOuterType } from "../map/traits.js";
import { MAP_TYPE_NAMES } from "../uapi.js";
import { runInWorkers } from "./replay-workers.js";

/** A BPF object loaded for "load": the object, and per map of its spec (`.maps`, then globals) a RawMap. */
export interface LoadedForReplay {
  obj: BpfObject;
  maps: RawMap[];
}

/** Loads the BPF object file at `path` on the session's backend. @throws BpfError */
export type ObjectLoader = (path: string) => LoadedForReplay;

/** Makes a map for `create`; `inner` is the template map of a map-in-map. */
export type MapFactory = (spec: MapSpec, inner: RawMap | undefined) => RawMap;

type Json = Record<string, unknown>;

class LineError extends Error {}

export function toHex(b: Uint8Array, off = 0, len = b.length - off): string {
  let s = "";
  for (let i = off; i < off + len; i++) s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  return s;
}

export function fromHex(s: unknown, what: string, size?: number): Uint8Array {
  if (typeof s !== "string" || s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s))
    throw new LineError(`${what} must be a hex string of whole bytes`);
  // The size first: a string of the wrong length is refused before anything is decoded.
  if (size !== undefined && s.length !== size * 2)
    throw new LineError(`${what} is ${s.length / 2} bytes, expected ${size}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The u32 at byte `off` of `b`, little-endian (the byte order replay's hex uses). */
function u32At(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

/** `n` as 4 little-endian bytes. */
function u32Bytes(n: number): Uint8Array {
  return new Uint8Array([n, n >>> 8, n >>> 16, n >>> 24]);
}

function u32Field(o: Json, name: string, dflt?: number): number {
  const v = o[name];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
    throw new LineError(`"${name}" must be an integer in [0, 2^32)`);
  return v;
}

/** Prefix of the string parseLine() puts in place of an integer literal too long for a double. */
const BIG_INT = "\u0000int:";
const U64_MAX = (1n << 64n) - 1n;
const SAFE_BITS = 0x1f_ffff; // bits 32..52 of a safe integer

/** Deepest nesting a replay line has: an object holding arrays ("keys", "values"). */
const MAX_DEPTH = 4;
/** Digits of the longest integer literal kept exactly: u64's 20, and room for leading signs and zeros. */
const MAX_BIG_DIGITS = 24;

/**
 * JSON.parse(), except that integer literals of 16 digits or more arrive
 * exactly (as BIG_INT strings): a u64 field such as flags 2^64 - 1 (the
 * kernel's own selftests pass it) must not be rounded into another number.
 * Bounded: one linear scan refuses lines nested deeper than MAX_DEPTH before
 * JSON.parse() sees them, and a literal too long for any u64 arrives as
 * BIG_INT with its first digits only (every field then refuses it), so no
 * line costs more than linear time, whatever its size.
 * @throws SyntaxError on a malformed or too deeply nested line
 */
export function parseLine(line: string): unknown {
  let out = "";
  let last = 0;
  let inString = false;
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character.
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DEPTH) throw new SyntaxError(`line nests deeper than ${MAX_DEPTH} levels`);
      continue;
    }
    if (c === 0x5d || c === 0x7d) {
      depth--;
      continue;
    }
    if ((c >= 0x30 && c <= 0x39) || c === 0x2d) {
      let j = i + 1;
      while (j < line.length && line.charCodeAt(j) >= 0x30 && line.charCodeAt(j) <= 0x39) j++;
      const next = line[j];
      const digits = j - i - (c === 0x2d ? 1 : 0);
      if (digits >= 16 && next !== "." && next !== "e" && next !== "E") {
        // Parses to BIG_INT + the digits (cut past MAX_BIG_DIGITS: out of every range anyway).
        out += `${line.slice(last, i)}"\\u0000int:${line.slice(i, Math.min(j, i + MAX_BIG_DIGITS + 1))}"`;
        last = j;
      }
      i = j - 1;
    }
  }
  return JSON.parse(last === 0 ? line : out + line.slice(last));
}

/**
 * A field the kernel reads as a u64 (the flags of element and batch calls):
 * any JSON integer in [0, 2^64) is taken, and the backend gives the kernel's
 * answer (EINVAL for unknown bits). Bits 53..63, which a JS number cannot
 * carry, are folded into bit 52: every flag check asks only whether unknown
 * bits are set. Non-integers and negatives are malformed.
 */
function flagsField(o: Json, name: string): number {
  const v = o[name];
  if (v === undefined) return 0;
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  let big: bigint | null = null;
  if (typeof v === "string" && v.startsWith(BIG_INT) && v.length <= BIG_INT.length + MAX_BIG_DIGITS)
    big = BigInt(v.slice(BIG_INT.length));
  else if (typeof v === "number" && Number.isInteger(v)) big = BigInt(v); // a long literal with an exponent
  if (big === null || big < 0n || big > U64_MAX)
    throw new LineError(`"${name}" must be an integer in [0, 2^64)`);
  const high = Number((big >> 32n) & BigInt(SAFE_BITS)) | (big >> 53n !== 0n ? 1 << 20 : 0);
  return Number(big & 0xffff_ffffn) + high * 0x1_0000_0000;
}

/** ARRAY_OF_MAPS / HASH_OF_MAPS: values are inner maps, written in replay as map numbers. */
function isOuter(m: RawMap): boolean {
  return isOuterType(m.info.type);
}

/** What the backend moves per value (MapInfo.valueBytes: per-CPU maps move every CPU's slot). */
function valueBytes(m: RawMap): number {
  return m.info.valueBytes;
}

/** Runs replay lines against maps made by `factory`. */
export class Replayer {
  private readonly maps: RawMap[] = [];
  private readonly programs: ObjectProgram[] = [];
  /** The object of each program of `programs`. */
  private readonly owners: BpfObject[] = [];
  private readonly objects: BpfObject[] = [];

  /** `loader`: how "load" puts a BPF object on this backend (without it, "load" is EOPNOTSUPP). */
  constructor(
    private readonly factory: MapFactory,
    private readonly loader?: ObjectLoader,
  ) {}

  /** Run one line; never throws. */
  run(line: string): Json {
    let o: Json;
    try {
      o = parseLine(line) as Json;
    } catch {
      return { ok: false, error: "line is not valid JSON" };
    }
    if (o === null || typeof o !== "object" || Array.isArray(o))
      return { ok: false, error: "line must be a JSON object" };
    try {
      return this.exec(o);
    } catch (e) {
      if (e instanceof LineError) return { ok: false, error: e.message };
      const err = e as { code?: string; message?: string };
      if (typeof err.code === "string" && err.code.startsWith("E")) return { ok: false, errno: err.code };
      return { ok: false, error: String(err.message ?? e) };
    }
  }

  close(): void {
    for (const m of this.maps) m.close();
    this.maps.length = 0;
    for (const o of this.objects) o.close();
    this.objects.length = 0;
    this.programs.length = 0;
  }

  private map(o: Json): RawMap {
    const n = o.map;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n >= this.maps.length)
      throw new LineError(`"map" must name a created map (0..${this.maps.length - 1})`);
    return this.maps[n];
  }

  private key(m: RawMap, v: unknown, what = "key"): Uint8Array {
    return fromHex(v, what, m.info.keySize);
  }

  /**
   * A value as the backend takes it. For an outer map the script names an
   * inner map by its number; the backend gets what it stores (kernel: an fd,
   * SAB: the map's id); an unknown number becomes 0xffffffff (EBADF).
   */
  private valueIn(m: RawMap, v: unknown, what = "value"): Uint8Array {
    const b = fromHex(v, what, valueBytes(m));
    if (!isOuter(m)) return b;
    const n = u32At(b, 0);
    const ref = n < this.maps.length ? (this.maps[n].mapRef?.() ?? 0xffffffff) : 0xffffffff;
    return u32Bytes(ref);
  }

  /** The hex a script sees for value bytes: an outer map's inner map id becomes that map's number. */
  private valueOut(m: RawMap, b: Uint8Array, off = 0, len = b.length - off): string {
    if (!isOuter(m) || len !== 4) return toHex(b, off, len);
    const id = u32At(b, off);
    const n = this.maps.findIndex((x) => x.info.id === id);
    return toHex(u32Bytes(n < 0 ? 0xffffffff : n));
  }

  private exec(o: Json): Json {
    switch (o.op) {
      case "create":
        return this.create(o);
      case "open":
        return this.open(o);
      case "load":
        return this.load(o);
      case "run":
        return this.runProgram(o);
      case "update": {
        const m = this.map(o);
        const r = m.updateElem(this.key(m, o.key), this.valueIn(m, o.value), flagsField(o, "flags"));
        return r === 0 ? { ok: true } : errOut(r);
      }
      case "lookup":
      case "lookup_and_delete": {
        const m = this.map(o);
        const k = this.key(m, o.key);
        const v = new Uint8Array(valueBytes(m));
        const flags = flagsField(o, "flags");
        const r = o.op === "lookup" ? m.lookupElem(k, v, flags) : m.lookupAndDeleteElem(k, v, flags);
        return r === 0 ? { ok: true, value: this.valueOut(m, v) } : errOut(r);
      }
      case "delete": {
        const m = this.map(o);
        const r = m.deleteElem(this.key(m, o.key));
        return r === 0 ? { ok: true } : errOut(r);
      }
      case "get_next_key": {
        const m = this.map(o);
        const k = o.key === null || o.key === undefined ? null : this.key(m, o.key);
        const next = new Uint8Array(m.info.keySize);
        const r = m.getNextKey(k, next);
        return r === 0 ? { ok: true, key: toHex(next) } : errOut(r);
      }
      case "lookup_batch":
      case "lookup_and_delete_batch":
        return this.lookupBatch(o);
      case "update_batch":
      case "delete_batch":
        return this.writeBatch(o);
      case "count": {
        const m = this.map(o);
        return { ok: true, count: this.walk(m).keys.length };
      }
      case "dump": {
        const m = this.map(o);
        const { keys, values } = this.walk(m);
        return { ok: true, keys, values };
      }
      case "compare_and_delete":
      case "compare_and_swap": {
        const m = this.map(o);
        const k = this.key(m, o.key);
        const expected = fromHex(o.expected, "expected");
        const offset = u32Field(o, "offset", 0);
        const size = u32Field(o, "size", expected.length);
        if (o.op === "compare_and_delete") {
          if (!m.compareAndDeleteElem) return { ok: false, errno: "EOPNOTSUPP" };
          const r = m.compareAndDeleteElem(k, expected, offset, size);
          return r === 0 ? { ok: true } : errOut(r);
        }
        if (!m.compareAndSwapElem) return { ok: false, errno: "EOPNOTSUPP" };
        const r = m.compareAndSwapElem(k, expected, fromHex(o.value, "value", valueBytes(m)), offset, size);
        return r === 0 ? { ok: true } : errOut(r);
      }
      case "freeze": {
        const r = this.map(o).freeze();
        return r === 0 ? { ok: true } : errOut(r);
      }
      default:
        throw new LineError(`unknown op ${JSON.stringify(o.op)}`);
    }
  }

  /**
   * {"op":"open","pinned":PATH} or {"op":"open","id":N}: a kernel map made
   * by another tool gets the next map number, as "create" gives one.
   */
  private open(o: Json): Json {
    let m: RawMap;
    if (typeof o.pinned === "string") m = KernelMap.fromPinned(o.pinned);
    else if (o.id !== undefined) m = KernelMap.fromId(u32Field(o, "id"));
    else throw new LineError('"open" needs "pinned": a bpffs path, or "id": a kernel map id');
    this.maps.push(m);
    return { ok: true, map: this.maps.length - 1 };
  }

  /**
   * {"op":"load","object":PATH}: a clang-built BPF object, its maps (`.maps`,
   * then globals as ARRAY maps) numbered on from the session's maps, its
   * programs from the session's programs. A failed load takes no numbers.
   */
  private load(o: Json): Json {
    if (typeof o.object !== "string" || o.object === "")
      throw new LineError('"object" must be the path of a BPF object file');
    if (this.loader === undefined) return { ok: false, errno: "EOPNOTSUPP" };
    const { obj, maps } = this.loader(o.object);
    this.objects.push(obj);
    const out = obj.spec.maps.map((d, i) => {
      this.maps.push(maps[i]);
      return { map: this.maps.length - 1, name: d.name };
    });
    const progs = obj.programList.map((p) => {
      this.programs.push(p);
      this.owners.push(obj);
      return { prog: this.programs.length - 1, name: p.name, section: p.def.section };
    });
    return { ok: true, maps: out, programs: progs };
  }

  /**
   * {"op":"run","prog":P,"data_in":HEX,"repeat":R,"cpu":C,"ctx_in":HEX}: one
   * BPF_PROG_TEST_RUN. `retval` is r0's low 32 bits; `data_out` the packet
   * after the run; `ctx_out` the context after it, when `ctx_in` was given.
   * With `"workers":N`: N worker threads at once, each on a CPU slot (SAB) or
   * a CPU (kernel) of its own running the program once with `repeat`;
   * `retvals` in worker order (replay-workers.ts).
   */
  private runProgram(o: Json): Json {
    const n = o.prog;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n >= this.programs.length)
      throw new LineError(
        this.programs.length === 0
          ? `"prog" must name a loaded program (none is loaded)`
          : `"prog" must name a loaded program (0..${this.programs.length - 1})`,
      );
    const data = o.data_in === undefined ? new Uint8Array(0) : fromHex(o.data_in, "data_in");
    const ctx = o.ctx_in === undefined ? undefined : fromHex(o.ctx_in, "ctx_in");
    const repeat = o.repeat === undefined ? 1 : u32Field(o, "repeat");
    const cpu = o.cpu === undefined ? undefined : u32Field(o, "cpu");
    if (o.workers !== undefined) {
      if (cpu !== undefined)
        throw new LineError(`"cpu" and "workers" do not go together (each worker has its own)`);
      const retvals = runInWorkers(this.owners[n], this.programs[n].name, u32Field(o, "workers"), {
        data,
        ctx,
        repeat: Math.max(1, repeat),
      });
      return { ok: true, retvals };
    }
    const r = this.programs[n].run(data, { repeat: Math.max(1, repeat), cpu, ctx });
    const out: Json = { ok: true, retval: r.retval, data_out: toHex(r.data) };
    if (ctx !== undefined) out.ctx_out = toHex(r.ctx);
    return out;
  }

  private create(o: Json): Json {
    const typeName = o.type;
    if (typeof typeName !== "string" || !(typeName in MAP_TYPE_NAMES))
      throw new LineError(`"type" must be one of ${Object.keys(MAP_TYPE_NAMES).join(", ")}`);
    const spec: MapSpec = {
      type: MAP_TYPE_NAMES[typeName],
      keySize: u32Field(o, "key_size"),
      valueSize: u32Field(o, "value_size"),
      maxEntries: u32Field(o, "max_entries"),
      flags: flagsField(o, "flags"),
    };
    if (o.numa_node !== undefined) spec.numaNode = u32Field(o, "numa_node");
    // A struct bpf_spin_lock at this byte offset of the value (the kernel side gets it through BTF).
    if (o.spin_lock_offset !== undefined) spec.spinLockOffset = u32Field(o, "spin_lock_offset");
    const inner = o.inner_map === undefined ? undefined : this.map({ map: o.inner_map });
    const m = this.factory(spec, inner);
    this.maps.push(m);
    return { ok: true, map: this.maps.length - 1 };
  }

  private cursor(v: unknown): number | null {
    if (v === null || v === undefined) return null;
    if (typeof v === "number") return u32Field({ in_batch: v }, "in_batch");
    return u32At(fromHex(v, "in_batch", 4), 0);
  }

  private lookupBatch(o: Json): Json {
    const m = this.map(o);
    const args = {
      inBatch: this.cursor(o.in_batch),
      count: u32Field(o, "count"),
      elemFlags: flagsField(o, "elem_flags"),
      flags: flagsField(o, "flags"),
    };
    if (args.count > 1 << 20) throw new LineError(`"count" over ${1 << 20} is not supported by replay`);
    const r = o.op === "lookup_batch" ? m.lookupBatch(args) : m.lookupAndDeleteBatch(args);
    return this.batchOut(m, r, true);
  }

  private writeBatch(o: Json): Json {
    const m = this.map(o);
    const ks = m.info.keySize;
    const vs = valueBytes(m);
    if (!Array.isArray(o.keys)) throw new LineError(`"keys" must be an array of hex strings`);
    const count = u32Field(o, "count", o.keys.length);
    if (count > o.keys.length)
      throw new LineError(`"count" ${count} is more than the ${o.keys.length} keys given`);
    const keys = new Uint8Array(count * ks);
    for (let i = 0; i < count; i++) keys.set(this.key(m, o.keys[i], `keys[${i}]`), i * ks);
    let values = new Uint8Array(0);
    if (o.op === "update_batch") {
      if (!Array.isArray(o.values) || o.values.length < count)
        throw new LineError(`"values" must be an array of at least ${count} hex strings`);
      values = new Uint8Array(count * vs);
      for (let i = 0; i < count; i++) values.set(this.valueIn(m, o.values[i], `values[${i}]`), i * vs);
    }
    const args = {
      count,
      keys,
      values,
      elemFlags: flagsField(o, "elem_flags"),
      flags: flagsField(o, "flags"),
    };
    const r = o.op === "update_batch" ? m.updateBatch(args) : m.deleteBatch(args);
    return this.batchOut(m, r, false);
  }

  private batchOut(m: RawMap, r: BatchResult, lookup: boolean): Json {
    const out: Json = r.err === 0 ? { ok: true } : { ok: false, errno: errnoName(-r.err) };
    out.count = r.count;
    if (lookup) {
      const ks = m.info.keySize;
      const vs = valueBytes(m);
      const n = r.err === 0 || r.err === -Errno.ENOENT ? r.count : 0;
      out.keys = Array.from({ length: n }, (_, i) => toHex(r.keys, i * ks, ks));
      out.values = Array.from({ length: n }, (_, i) => this.valueOut(m, r.values, i * vs, vs));
      out.out_batch = r.outBatch === null ? null : toHex(u32Bytes(r.outBatch));
    }
    return out;
  }

  /** All pairs in get_next_key order, bounded so a changing map cannot loop forever. */
  private walk(m: RawMap): { keys: string[]; values: string[] } {
    const keys: string[] = [];
    const values: string[] = [];
    const v = new Uint8Array(valueBytes(m));
    for (const k of walkKeys(m, { op: "dump", limit: m.info.maxEntries * 2 + 2, atLimit: "stop" })) {
      keys.push(toHex(k));
      values.push(m.lookupElem(k, v, 0) === 0 ? this.valueOut(m, v) : "");
    }
    return { keys, values };
  }
}

function errOut(r: number): Json {
  return { ok: false, errno: errnoName(-r) };
}
