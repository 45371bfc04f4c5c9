/**
 * BTF, the BPF Type Format (include/uapi/linux/btf.h): reading a map's key
 * and value types from the kernel, turning them into htab codecs, and
 * writing the BTF of a struct codec so that kernel maps can be created with
 * types (which `bpf_spin_lock` values need).
 *
 * A BTF blob is a header, a type section (type ids count from 1; 0 is
 * void) and a string section. Every type is `name_off`, `info` (vlen in bits
 * 0-15, kind in bits 24-28, kind_flag in bit 31) and `size`-or-`type`, then
 * data that depends on its kind.
 */

import * as codecs from "../api/codecs.js";
import { BpfError, Errno, invalid } from "../errors.js";

export const BTF_MAGIC = 0xeb9f;

/** BTF_KIND_*. */
export const BtfKind = {
  Unknown: 0,
  Int: 1,
  Ptr: 2,
  Array: 3,
  Struct: 4,
  Union: 5,
  Enum: 6,
  Fwd: 7,
  Typedef: 8,
  Volatile: 9,
  Const: 10,
  Restrict: 11,
  Func: 12,
  FuncProto: 13,
  Var: 14,
  Datasec: 15,
  Float: 16,
  DeclTag: 17,
  TypeTag: 18,
  Enum64: 19,
} as const;

/** BTF_INT_* encoding bits. */
export const BTF_INT_SIGNED = 1;
export const BTF_INT_CHAR = 2;
export const BTF_INT_BOOL = 4;

export interface BtfMember {
  name: string;
  type: number;
  /** Offset in bits from the start of the struct. */
  bitOffset: number;
  /** Bitfield width in bits, or 0 for a whole member. */
  bitSize: number;
}

/** One parsed BTF type. Fields not used by a kind are left at their defaults. */
export interface BtfType {
  id: number;
  kind: number;
  name: string;
  /** Bytes (int, struct, union, enum, float, datasec). */
  size: number;
  /** The referenced type (ptr, typedef, modifiers, func, var, decl_tag, type_tag). */
  type: number;
  kindFlag: boolean;
  /** INT: encoding (BTF_INT_*), bit offset and bits. */
  encoding: number;
  intOffset: number;
  bits: number;
  /** ARRAY. */
  elemType: number;
  indexType: number;
  nelems: number;
  /** STRUCT, UNION. */
  members: BtfMember[];
  /** ENUM, ENUM64 (values as bigint, signed per kindFlag). */
  enumValues: { name: string; value: bigint }[];
  /** FUNC_PROTO parameters. */
  params: { name: string; type: number }[];
  /** VAR linkage, FUNC linkage (vlen). */
  linkage: number;
  /** DATASEC entries. */
  secinfo: { type: number; offset: number; size: number }[];
  /** DECL_TAG component index (-1 for the type itself). */
  componentIdx: number;
}

/** A parsed BTF blob: types by id (index 0 is void). */
export interface Btf {
  types: BtfType[];
}

function blank(id: number, kind: number, name: string): BtfType {
  return {
    id,
    kind,
    name,
    size: 0,
    type: 0,
    kindFlag: false,
    encoding: 0,
    intOffset: 0,
    bits: 0,
    elemType: 0,
    indexType: 0,
    nelems: 0,
    members: [],
    enumValues: [],
    params: [],
    linkage: 0,
    secinfo: [],
    componentIdx: -1,
  };
}

/**
 * Parse a BTF blob (kernel: btf_parse()). Every kind of the 6.18 uapi is
 * read; an unknown kind or a section out of bounds is EINVAL.
 */
export function parseBtf(blob: Uint8Array): Btf {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < 24 || dv.getUint16(0, true) !== BTF_MAGIC)
    invalid("btf", "not a BTF blob (no 0xeb9f magic)");
  const hdrLen = dv.getUint32(4, true);
  const typeOff = dv.getUint32(8, true);
  const typeLen = dv.getUint32(12, true);
  const strOff = dv.getUint32(16, true);
  const strLen = dv.getUint32(20, true);
  const tStart = hdrLen + typeOff;
  const sStart = hdrLen + strOff;
  if (tStart + typeLen > blob.length || sStart + strLen > blob.length)
    invalid("btf", "BTF sections run past the blob");
  const str = (off: number): string => {
    if (off >= strLen) invalid("btf", `string offset ${off} is past the string section`);
    let end = sStart + off;
    while (end < sStart + strLen && blob[end] !== 0) end++;
    return new TextDecoder().decode(blob.subarray(sStart + off, end));
  };
  const types: BtfType[] = [blank(0, BtfKind.Unknown, "void")];
  let p = tStart;
  const u32 = () => {
    if (p + 4 > tStart + typeLen) invalid("btf", "type section ends inside a type");
    const v = dv.getUint32(p, true);
    p += 4;
    return v;
  };
  while (p < tStart + typeLen) {
    const nameOff = u32();
    const info = u32();
    const sizeOrType = u32();
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const t = blank(types.length, kind, str(nameOff));
    t.kindFlag = info >>> 31 === 1;
    switch (kind) {
      case BtfKind.Int: {
        t.size = sizeOrType;
        const e = u32();
        t.encoding = (e >>> 24) & 0x0f;
        t.intOffset = (e >>> 16) & 0xff;
        t.bits = e & 0xff;
        break;
      }
      case BtfKind.Ptr:
      case BtfKind.Typedef:
      case BtfKind.Volatile:
      case BtfKind.Const:
      case BtfKind.Restrict:
      case BtfKind.TypeTag:
        t.type = sizeOrType;
        break;
      case BtfKind.Func:
        t.type = sizeOrType;
        t.linkage = vlen;
        break;
      case BtfKind.Fwd:
        break;
      case BtfKind.Float:
        t.size = sizeOrType;
        break;
      case BtfKind.Array:
        t.elemType = u32();
        t.indexType = u32();
        t.nelems = u32();
        break;
      case BtfKind.Struct:
      case BtfKind.Union:
        t.size = sizeOrType;
        for (let i = 0; i < vlen; i++) {
          const name = str(u32());
          const type = u32();
          const off = u32();
          t.members.push(
            t.kindFlag
              ? { name, type, bitOffset: off & 0xffffff, bitSize: off >>> 24 }
              : { name, type, bitOffset: off, bitSize: 0 },
          );
        }
        break;
      case BtfKind.Enum:
        t.size = sizeOrType;
        for (let i = 0; i < vlen; i++) {
          const name = str(u32());
          const raw = u32();
          t.enumValues.push({ name, value: t.kindFlag ? BigInt(raw | 0) : BigInt(raw) });
        }
        break;
      case BtfKind.Enum64:
        t.size = sizeOrType;
        for (let i = 0; i < vlen; i++) {
          const name = str(u32());
          const lo = BigInt(u32());
          const hi = BigInt(u32());
          const v = (hi << 32n) | lo;
          t.enumValues.push({ name, value: t.kindFlag ? BigInt.asIntN(64, v) : v });
        }
        break;
      case BtfKind.FuncProto:
        t.type = sizeOrType;
        for (let i = 0; i < vlen; i++) t.params.push({ name: str(u32()), type: u32() });
        break;
      case BtfKind.Var:
        t.type = sizeOrType;
        t.linkage = u32();
        break;
      case BtfKind.Datasec:
        t.size = sizeOrType;
        for (let i = 0; i < vlen; i++) t.secinfo.push({ type: u32(), offset: u32(), size: u32() });
        break;
      case BtfKind.DeclTag:
        t.type = sizeOrType;
        t.componentIdx = u32() | 0;
        break;
      default:
        invalid("btf", `unknown BTF kind ${kind} (type id ${types.length})`);
    }
    types.push(t);
  }
  return { types };
}

/** Follow typedefs, modifiers and type tags to the type that has a layout. */
export function resolveType(btf: Btf, id: number): BtfType {
  for (let n = 0; n < 64; n++) {
    const t = btf.types[id];
    if (t === undefined) invalid("btf", `no BTF type ${id}`);
    if (
      t.kind === BtfKind.Typedef ||
      t.kind === BtfKind.Volatile ||
      t.kind === BtfKind.Const ||
      t.kind === BtfKind.Restrict ||
      t.kind === BtfKind.TypeTag
    )
      id = t.type;
    else return t;
  }
  return invalid("btf", `type ${id}: a chain of more than 64 typedefs and modifiers`);
}

/** Bytes a type occupies (kernel: btf_type_size() over resolved types). */
export function typeSize(btf: Btf, id: number): number {
  const t = resolveType(btf, id);
  switch (t.kind) {
    case BtfKind.Int:
    case BtfKind.Struct:
    case BtfKind.Union:
    case BtfKind.Enum:
    case BtfKind.Enum64:
    case BtfKind.Float:
    case BtfKind.Datasec:
      return t.size;
    case BtfKind.Ptr:
      return 8;
    case BtfKind.Array:
      return t.nelems * typeSize(btf, t.elemType);
    default:
      return 0;
  }
}

/** A bitfield of `bits` bits at bit `bitOffset` (little-endian), as a number (or bigint over 32 bits). */
function bitfieldCodec(bitOffset: number, bits: number, signed: boolean): codecs.Codec<number | bigint> {
  const byte = bitOffset >>> 3;
  const shift = bitOffset & 7;
  const span = Math.ceil((shift + bits) / 8);
  const big = bits > 32;
  return {
    size: span,
    encode(v, buf, off) {
      let x = typeof v === "bigint" ? v : BigInt(v as number);
      const mask = (1n << BigInt(bits)) - 1n;
      x = BigInt.asUintN(bits, x);
      let word = 0n;
      for (let i = span - 1; i >= 0; i--) word = (word << 8n) | BigInt(buf[off + byte + i]);
      word = (word & ~(mask << BigInt(shift))) | (x << BigInt(shift));
      for (let i = 0; i < span; i++) {
        buf[off + byte + i] = Number(word & 0xffn);
        word >>= 8n;
      }
    },
    decode(buf, off) {
      let word = 0n;
      for (let i = span - 1; i >= 0; i--) word = (word << 8n) | BigInt(buf[off + byte + i]);
      let x = (word >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n);
      if (signed) x = BigInt.asIntN(bits, x);
      return big ? x : Number(x);
    },
  };
}

function intCodec(t: BtfType): codecs.Codec<unknown> {
  const signed = (t.encoding & BTF_INT_SIGNED) !== 0;
  if (t.bits !== t.size * 8 || t.intOffset !== 0)
    return bitfieldCodec(t.intOffset, t.bits, signed) as codecs.Codec<unknown>;
  switch (t.size) {
    case 1:
      return (signed ? codecs.s8 : codecs.u8) as codecs.Codec<unknown>;
    case 2:
      return (signed ? codecs.s16 : codecs.u16) as codecs.Codec<unknown>;
    case 4:
      return (signed ? codecs.s32 : codecs.u32) as codecs.Codec<unknown>;
    case 8:
      return (signed ? codecs.s64 : codecs.u64) as codecs.Codec<unknown>;
    default:
      return codecs.bytes(t.size) as codecs.Codec<unknown>;
  }
}

/**
 * The htab codec for BTF type `id`: numbers for integers up to 32 bits and
 * enums, bigint for 64-bit integers and pointers, objects for structs and
 * unions (bitfields included), arrays for arrays, numbers for floats, and
 * bytes for what has no JS shape.
 */
export function btfCodec(btf: Btf, id: number): codecs.Codec<unknown> {
  const t = resolveType(btf, id);
  switch (t.kind) {
    case BtfKind.Int:
      return intCodec(t);
    case BtfKind.Ptr:
      return codecs.u64 as codecs.Codec<unknown>;
    case BtfKind.Enum:
      return intCodec({ ...t, encoding: t.kindFlag ? BTF_INT_SIGNED : 0, bits: t.size * 8 });
    case BtfKind.Enum64:
      return (t.kindFlag ? codecs.s64 : codecs.u64) as codecs.Codec<unknown>;
    case BtfKind.Float:
      return floatCodec(t.size);
    case BtfKind.Array: {
      const elem = btfCodec(btf, t.elemType);
      const step = typeSize(btf, t.elemType);
      return arrayCodec(elem, step, t.nelems);
    }
    case BtfKind.Struct:
    case BtfKind.Union:
      return structCodec(btf, t);
    default:
      return codecs.bytes(Math.max(1, typeSize(btf, id))) as codecs.Codec<unknown>;
  }
}

function floatCodec(size: number): codecs.Codec<unknown> {
  if (size !== 4 && size !== 8) return codecs.bytes(size) as codecs.Codec<unknown>;
  return {
    size,
    encode(v, buf, off) {
      if (typeof v !== "number") invalid("encode", `got ${codecs.showInput(v)}, expected a float number`);
      const dv = new DataView(buf.buffer, buf.byteOffset + off, size);
      if (size === 4) dv.setFloat32(0, v, true);
      else dv.setFloat64(0, v, true);
    },
    decode(buf, off) {
      const dv = new DataView(buf.buffer, buf.byteOffset + off, size);
      return size === 4 ? dv.getFloat32(0, true) : dv.getFloat64(0, true);
    },
  };
}

function arrayCodec(elem: codecs.Codec<unknown>, step: number, n: number): codecs.Codec<unknown> {
  return {
    size: step * n,
    encode(v, buf, off) {
      if (!Array.isArray(v) || v.length !== n)
        invalid("encode", `got ${codecs.showInput(v)}, expected an array of ${n}`);
      for (let i = 0; i < n; i++) elem.encode(v[i], buf, off + i * step);
    },
    decode(buf, off) {
      const out: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = elem.decode(buf, off + i * step);
      return out;
    },
  };
}

function structCodec(btf: Btf, t: BtfType): codecs.Codec<unknown> {
  const fields = t.members.map((m, i) => {
    const name = m.name || `__anon${i}`;
    if (m.bitSize > 0) {
      const base = resolveType(btf, m.type);
      const signed = base.kind === BtfKind.Int ? (base.encoding & BTF_INT_SIGNED) !== 0 : base.kindFlag;
      return { name, at: 0, codec: bitfieldCodec(m.bitOffset, m.bitSize, signed) as codecs.Codec<unknown> };
    }
    return { name, at: m.bitOffset >>> 3, codec: btfCodec(btf, m.type) };
  });
  const size = t.size;
  const union = t.kind === BtfKind.Union;
  return {
    size,
    encode(v, buf, off) {
      if (v === null || typeof v !== "object")
        invalid("encode", `got ${codecs.showInput(v)}, expected an object (${t.name || "struct"})`);
      const o = v as Record<string, unknown>;
      if (!union) buf.fill(0, off, off + size);
      for (const f of fields) {
        if (!(f.name in o)) {
          if (union) continue;
          invalid("encode", `${f.name}: missing (the ${t.name || "struct"} value has no field '${f.name}')`);
        }
        try {
          f.codec.encode(o[f.name], buf, off + f.at);
        } catch (e) {
          if (e instanceof BpfError) throw new BpfError("encode", e.errno, `${f.name}: ${e.detail}`);
          throw e;
        }
      }
    },
    decode(buf, off) {
      const out: Record<string, unknown> = {};
      for (const f of fields) out[f.name] = f.codec.decode(buf, off + f.at);
      return out;
    },
  };
}

/** A map's key and value codecs from its BTF. @throws BpfError ENOENT when the map has no BTF */
export function mapCodecs(
  btf: Btf,
  keyTypeId: number,
  valueTypeId: number,
): { key: codecs.Codec<unknown>; value: codecs.Codec<unknown> } {
  if (keyTypeId === 0 && valueTypeId === 0)
    throw new BpfError("btfCodecs", Errno.ENOENT, "the map has BTF but no key or value type ids");
  return { key: btfCodec(btf, keyTypeId), value: btfCodec(btf, valueTypeId) };
}

// ---------------------------------------------------------------- writing

/** A type to write: what htab's codecs can be declared as. */
export type BtfDecl =
  | { kind: "int"; name: string; size: 1 | 2 | 4 | 8; signed?: boolean }
  | {
      kind: "struct";
      name: string;
      size: number;
      /** `offset` in bytes; a member with `bitSize` is a bitfield at bit `bitOffset` instead. */
      members: { name: string; type: BtfDecl; offset: number; bitOffset?: number; bitSize?: number }[];
    }
  | { kind: "array"; elem: BtfDecl; nelems: number }
  | { kind: "enum"; name: string; size: 1 | 2 | 4; values: { name: string; value: number }[] };

/** A BTF blob holding `decls` (and what they refer to); returns the blob and each decl's type id. */
export function writeBtf(decls: BtfDecl[]): { blob: Uint8Array; ids: number[] } {
  const strings: number[] = [0];
  const strIndex = new Map<string, number>([["", 0]]);
  const str = (s: string): number => {
    let at = strIndex.get(s);
    if (at === undefined) {
      at = strings.length;
      for (const b of new TextEncoder().encode(s)) strings.push(b);
      strings.push(0);
      strIndex.set(s, at);
    }
    return at;
  };
  const words: number[] = [];
  const memo = new Map<BtfDecl, number>();
  let next = 1;
  let intId = 0;
  const emit = (d: BtfDecl): number => {
    const have = memo.get(d);
    if (have !== undefined) return have;
    // Members and elements first: their ids must exist when this type names them.
    if (d.kind === "struct") for (const m of d.members) emit(m.type);
    if (d.kind === "array") {
      emit(d.elem);
      if (intId === 0) intId = emit({ kind: "int", name: "__ARRAY_SIZE_TYPE__", size: 4 });
    }
    const id = next++;
    memo.set(d, id);
    if (d.kind === "int") {
      words.push(
        str(d.name),
        BtfKind.Int << 24,
        d.size,
        ((d.signed ? BTF_INT_SIGNED : 0) << 24) | (d.size * 8),
      );
    } else if (d.kind === "struct") {
      const bitfields = d.members.some((m) => (m.bitSize ?? 0) > 0);
      // kind_flag: member offsets carry a bitfield size in their top byte.
      words.push(
        str(d.name),
        ((bitfields ? 1 : 0) << 31) | (BtfKind.Struct << 24) | d.members.length,
        d.size,
      );
      for (const m of d.members) {
        const bits = m.bitSize ?? 0;
        const at = bits > 0 ? (m.bitOffset ?? m.offset * 8) : m.offset * 8;
        words.push(str(m.name), memo.get(m.type) as number, bitfields ? (bits << 24) | at : at);
      }
    } else if (d.kind === "enum") {
      words.push(str(d.name), (BtfKind.Enum << 24) | d.values.length, d.size);
      for (const v of d.values) words.push(str(v.name), v.value >>> 0);
    } else {
      words.push(0, BtfKind.Array << 24, 0, memo.get(d.elem) as number, intId, d.nelems);
    }
    return id;
  };
  const ids = decls.map(emit);
  const typeLen = words.length * 4;
  const strLen = strings.length;
  const blob = new Uint8Array(24 + typeLen + strLen);
  const dv = new DataView(blob.buffer);
  dv.setUint16(0, BTF_MAGIC, true);
  blob[2] = 1; // version
  dv.setUint32(4, 24, true); // hdr_len
  dv.setUint32(8, 0, true); // type_off
  dv.setUint32(12, typeLen, true);
  dv.setUint32(16, typeLen, true); // str_off
  dv.setUint32(20, strLen, true);
  for (let i = 0; i < words.length; i++) dv.setUint32(24 + i * 4, words[i] >>> 0, true);
  blob.set(strings, 24 + typeLen);
  return { blob, ids };
}

const INT_DECLS = new Map<unknown, BtfDecl>([
  [codecs.u8, { kind: "int", name: "__u8", size: 1 }],
  [codecs.u16, { kind: "int", name: "__u16", size: 2 }],
  [codecs.u32, { kind: "int", name: "__u32", size: 4 }],
  [codecs.u64, { kind: "int", name: "__u64", size: 8 }],
  [codecs.s8, { kind: "int", name: "__s8", size: 1, signed: true }],
  [codecs.s16, { kind: "int", name: "__s16", size: 2, signed: true }],
  [codecs.s32, { kind: "int", name: "__s32", size: 4, signed: true }],
  [codecs.s64, { kind: "int", name: "__s64", size: 8, signed: true }],
]);
const SPIN_LOCK_DECL: BtfDecl = {
  kind: "struct",
  name: "bpf_spin_lock",
  size: 4,
  members: [{ name: "val", type: { kind: "int", name: "__u32", size: 4 }, offset: 0 }],
};
const U8_DECL = INT_DECLS.get(codecs.u8) as BtfDecl;

/**
 * The BTF declaration of an htab codec, for KernelMap.create({ btf }): the
 * integer codecs, bytes(n) (an array of __u8), codecs.bpfSpinLock, and
 * struct codecs of those (`name` names the struct).
 * @throws BpfError EINVAL for a codec with no BTF shape (a custom codec)
 */
export function btfDeclOf(codec: codecs.Codec<unknown>, name = "htab_value"): BtfDecl {
  const int = INT_DECLS.get(codec);
  if (int !== undefined) return int;
  if (codec === (codecs.bpfSpinLock as unknown)) return SPIN_LOCK_DECL;
  const s = codec as { fields?: readonly codecs.Field<string, unknown>[]; offsets?: Record<string, number> };
  if (Array.isArray(s.fields) && s.offsets !== undefined) {
    const offsets = s.offsets;
    return {
      kind: "struct",
      name,
      size: codec.size,
      members: s.fields.map((f) => ({
        name: f.name,
        type: btfDeclOf(f.codec, `${name}_${f.name}`),
        offset: offsets[f.name],
      })),
    };
  }
  // bytes(n) and anything else of a fixed size: an array of bytes.
  if ((codec as { raw?: boolean }).raw === true) return { kind: "array", elem: U8_DECL, nelems: codec.size };
  return invalid(
    "btf",
    `a codec of ${codec.size} bytes with no BTF shape (use the integer, bytes, bpfSpinLock or struct codecs)`,
  );
}

// ------------------------------------------------------ bpftool's formatting

/** A scalar as bpftool prints it: its JSON text (numbers in decimal, u64 exact). */
export class BtfLeaf {
  constructor(readonly text: string) {}
}

/** A value as bpftool's btf_dumper prints it. */
export type BtfFormatted = BtfLeaf | BtfFormatted[] | { [field: string]: BtfFormatted };

function readUint(b: Uint8Array, off: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[off + i]);
  return v;
}

/**
 * The value of type `id` at `off` of `b`, as bpftool's btf_dumper shows it
 * (tools/bpf/bpftool/btf_dumper.c): integers in decimal (signed where the
 * type is), bools as true/false, enums by enumerator name, structs and
 * unions as objects, arrays as arrays.
 */
export function btfFormat(
  btf: Btf,
  id: number,
  b: Uint8Array,
  off = 0,
  bitOffset = 0,
  bitSize = 0,
  plain = true,
): BtfFormatted {
  const t = resolveType(btf, id);
  switch (t.kind) {
    case BtfKind.Int: {
      const bits = bitSize || t.bits;
      const start = bitOffset + t.intOffset;
      const span = Math.ceil(((start & 7) + bits) / 8);
      let v = (readUint(b, off + (start >>> 3), span) >> BigInt(start & 7)) & ((1n << BigInt(bits)) - 1n);
      // bpftool's btf_dumper_bitfield() prints bitfields in hex: 0x5 in plain text, "0x5" in JSON.
      if (bitSize > 0 || t.bits !== t.size * 8 || t.intOffset !== 0)
        return new BtfLeaf(plain ? `0x${v.toString(16)}` : `"0x${v.toString(16)}"`);
      if ((t.encoding & BTF_INT_BOOL) !== 0) return new BtfLeaf(v !== 0n ? "true" : "false");
      if ((t.encoding & BTF_INT_SIGNED) !== 0) v = BigInt.asIntN(bits, v);
      return new BtfLeaf(v.toString());
    }
    case BtfKind.Enum:
    case BtfKind.Enum64: {
      let v = readUint(b, off, t.size);
      if (t.kindFlag) v = BigInt.asIntN(t.size * 8, v);
      const e = t.enumValues.find(
        (x) => BigInt.asUintN(t.size * 8, x.value) === BigInt.asUintN(t.size * 8, v),
      );
      return new BtfLeaf(e ? JSON.stringify(e.name) : v.toString());
    }
    case BtfKind.Ptr:
      return new BtfLeaf(readUint(b, off, 8).toString());
    case BtfKind.Array: {
      const step = typeSize(btf, t.elemType);
      return Array.from({ length: t.nelems }, (_, i) =>
        btfFormat(btf, t.elemType, b, off + i * step, 0, 0, plain),
      );
    }
    case BtfKind.Struct:
    case BtfKind.Union: {
      const o: { [field: string]: BtfFormatted } = {};
      for (const m of t.members)
        o[m.name] =
          m.bitSize > 0
            ? btfFormat(btf, m.type, b, off, m.bitOffset, m.bitSize, plain)
            : btfFormat(btf, m.type, b, off + (m.bitOffset >>> 3), 0, 0, plain);
      return o;
    }
    default: {
      const n = typeSize(btf, id);
      return Array.from(
        { length: n },
        (_, i) => new BtfLeaf(JSON.stringify(`0x${b[off + i].toString(16).padStart(2, "0")}`)),
      );
    }
  }
}

/**
 * bpftool's json_writer (tools/bpf/bpftool/json_writer.c), pretty or not:
 * in pretty mode an object's members start on new lines indented four
 * spaces per level, array elements follow each other on one line, and a
 * container closes on a new line when it held anything.
 */
export class JsonW {
  private out = "";
  private depth = 0;
  private sep = "";

  constructor(private readonly pretty: boolean) {}

  private eol(): void {
    if (this.pretty) this.out += `\n${"    ".repeat(this.depth)}`;
  }
  private eor(): void {
    this.out += this.sep;
    this.sep = ",";
  }
  begin(c: "[" | "{"): void {
    this.eor();
    this.out += c;
    this.depth++;
    this.sep = "";
  }
  end(c: "]" | "}"): void {
    this.depth--;
    if (this.sep !== "") this.eol();
    this.out += c;
    this.sep = ",";
  }
  name(n: string): void {
    this.eor();
    this.eol();
    this.sep = "";
    this.out += `${JSON.stringify(n)}:${this.pretty ? " " : ""}`;
  }
  raw(text: string): void {
    this.eor();
    this.out += text;
  }
  value(v: BtfFormatted): void {
    if (Array.isArray(v)) {
      this.begin("[");
      for (const x of v) this.value(x);
      this.end("]");
    } else if (v instanceof BtfLeaf) this.raw(v.text);
    else {
      this.begin("{");
      for (const [k, x] of Object.entries(v)) {
        this.name(k);
        this.value(x as BtfFormatted);
      }
      this.end("}");
    }
  }
  toString(): string {
    return this.out;
  }
}
