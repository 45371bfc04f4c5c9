/**
 * BTF types as htab codecs: a kernel map's key and value types, read with
 * parseBtf(), become codecs that decode its bytes (ints, bitfields, floats,
 * arrays, structs and unions, enums).
 */

import { BpfError, Errno, invalid } from "../errors.js";
import * as codecs from "../map/codecs.js";
import {
  BTF_INT_SIGNED,
  type Btf,
  BtfKind,
  type BtfType,
  checkLayout,
  resolveType,
  typeSize,
} from "./btf.js";

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
  // Every type is checked first (nesting, members inside their struct, sizes, values): the
  // codec then decodes and encodes any buffer of its size, and refuses others with EINVAL.
  checkLayout(btf, id, "btfCodec");
  return bounded(codecOf(btf, id));
}

/** `c`, refusing buffers and offsets it does not fit in (EINVAL) instead of reading past them. */
function bounded(c: codecs.Codec<unknown>): codecs.Codec<unknown> {
  const check = (op: string, buf: Uint8Array, off: number) => {
    if (!(buf instanceof Uint8Array)) invalid(op, "buffer must be a Uint8Array");
    if (!Number.isInteger(off) || off < 0 || off + c.size > buf.length)
      invalid(op, `${c.size} bytes at offset ${off} do not fit the ${buf.length}-byte buffer`);
  };
  return {
    size: c.size,
    encode(v, buf, off) {
      check("encode", buf, off);
      c.encode(v, buf, off);
    },
    decode(buf, off) {
      check("decode", buf, off);
      return c.decode(buf, off);
    },
  };
}

function codecOf(btf: Btf, id: number): codecs.Codec<unknown> {
  const t = resolveType(btf, id);
  switch (t.kind) {
    case BtfKind.Int:
      return intCodec(t);
    case BtfKind.Ptr:
      return codecs.u64 as codecs.Codec<unknown>;
    case BtfKind.Enum:
    case BtfKind.Enum64:
      // An ENUM64 of size 4 (libbpf makes them) reads 4 bytes, as its size says.
      return intCodec({ ...t, encoding: t.kindFlag ? BTF_INT_SIGNED : 0, bits: t.size * 8, intOffset: 0 });
    case BtfKind.Float:
      return floatCodec(t.size);
    case BtfKind.Array: {
      const elem = codecOf(btf, t.elemType);
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
    return { name, at: Math.floor(m.bitOffset / 8), codec: codecOf(btf, m.type) };
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
