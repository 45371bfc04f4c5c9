import { invalid } from "../errors.js";

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
