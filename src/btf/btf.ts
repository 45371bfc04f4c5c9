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

/** A type with every field at the value parseBtf() leaves when the kind has no such field. */
export function blankType(id: number, kind: number, name: string): BtfType {
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

/** Kernel BTF_MAX_TYPE: type ids are 20 bits. */
const BTF_MAX_TYPE = 0xfffff;
/** Kernel BTF_MAX_NAME_OFFSET. */
const BTF_MAX_NAME_OFFSET = 0xffffff;
/** Kernel KSYM_NAME_LEN: the longest identifier or section name, its NUL included. */
const KSYM_NAME_LEN = 512;
/** Kernel MAX_RESOLVE_DEPTH: types nest (members, elements, typedefs, modifiers) at most this deep. */
export const BTF_MAX_RESOLVE_DEPTH = 32;
/** Kernel btf_type_info bits that may be set: vlen (16), kind (5) and kind_flag. */
const BTF_INFO_MASK = 0x9f00ffff;

const fail = (msg: string): never => invalid("btf", msg);

/**
 * Parse a BTF blob (kernel: btf_parse()). Every kind of the 6.18 uapi is
 * read, and every input gives a Btf or BpfError EINVAL: the header, the
 * sections and the string section are checked as the kernel's
 * btf_parse_hdr() / btf_parse_str_sec() do, every type as btf_check_meta()
 * does (kind, info bits, vlen, name offsets, type ids), and every type with
 * a layout is resolved as btf_resolve() does: no loop, no chain or nesting
 * deeper than MAX_RESOLVE_DEPTH, no void or function member or element, no
 * array over U32_MAX bytes, no member or bitfield past its struct. Work and
 * memory are linear in the blob's size.
 */
export function parseBtf(blob: Uint8Array): Btf {
  if (!(blob instanceof Uint8Array)) fail("BTF must be a Uint8Array");
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < 24 || dv.getUint16(0, true) !== BTF_MAGIC) fail("not a BTF blob (no 0xeb9f magic)");
  if (blob[2] !== 1) fail(`BTF version ${blob[2]} is not 1`);
  if (blob[3] !== 0) fail(`BTF header flags 0x${blob[3].toString(16)} are not 0`);
  const hdrLen = dv.getUint32(4, true);
  const typeOff = dv.getUint32(8, true);
  const typeLen = dv.getUint32(12, true);
  const strOff = dv.getUint32(16, true);
  const strLen = dv.getUint32(20, true);
  if (hdrLen < 24 || hdrLen > blob.length) fail(`BTF header length ${hdrLen} is not in [24, ${blob.length}]`);
  for (let i = 24; i < hdrLen; i++) if (blob[i] !== 0) fail("BTF header has unknown non-zero fields");
  if (typeOff % 4 !== 0) fail(`type section offset ${typeOff} is not 4-byte aligned`);
  if (typeLen % 4 !== 0) fail(`type section length ${typeLen} is not a multiple of 4`);
  const tStart = hdrLen + typeOff;
  const sStart = hdrLen + strOff;
  if (tStart + typeLen > blob.length || sStart + strLen > blob.length) fail("BTF sections run past the blob");
  if (typeOff < strOff ? typeOff + typeLen > strOff : strOff + strLen > typeOff)
    fail("BTF type and string sections overlap");
  // btf_parse_str_sec(): the section starts with the empty string and ends with a NUL.
  if (
    strLen === 0 ||
    strLen - 1 > BTF_MAX_NAME_OFFSET ||
    blob[sStart] !== 0 ||
    blob[sStart + strLen - 1] !== 0
  )
    fail("string section must start with an empty string, end with a NUL and hold at most 16 MiB");
  const strings = new BtfStrings(blob, sStart, strLen);
  const types: BtfType[] = [blankType(0, BtfKind.Unknown, "void")];
  let p = tStart;
  const end = tStart + typeLen;
  const u32 = () => {
    if (p + 4 > end) fail(`type section ends inside type ${types.length}`);
    const v = dv.getUint32(p, true);
    p += 4;
    return v;
  };
  while (p < end) {
    if (types.length > BTF_MAX_TYPE) fail(`more than ${BTF_MAX_TYPE} types`);
    const id = types.length;
    const nameOff = u32();
    const info = u32();
    const sizeOrType = u32();
    if ((info & ~BTF_INFO_MASK) !== 0)
      fail(`type ${id}: info 0x${(info >>> 0).toString(16)} has unknown bits`);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    if (kind === BtfKind.Unknown || kind > BtfKind.Enum64) fail(`unknown BTF kind ${kind} (type id ${id})`);
    if (vlen !== 0 && !HAS_VLEN.has(kind)) fail(`type ${id}: kind ${kind} takes no vlen, has ${vlen}`);
    if (vlen * VLEN_BYTES[kind] > end - p) fail(`type ${id}: ${vlen} entries run past the type section`);
    const t = blankType(
      id,
      kind,
      strings.at(nameOff, kind === BtfKind.DeclTag || kind === BtfKind.TypeTag ? 0 : KSYM_NAME_LEN, id),
    );
    t.kindFlag = info >>> 31 === 1;
    const name = () => strings.at(u32(), KSYM_NAME_LEN, id);
    switch (kind) {
      case BtfKind.Int: {
        t.size = sizeOrType;
        const e = u32();
        t.encoding = (e >>> 24) & 0x0f;
        t.intOffset = (e >>> 16) & 0xff;
        t.bits = e & 0xff;
        // btf_int_check_meta().
        if ((e & 0xf0000000) !== 0) fail(`type ${id}: int has unknown bits in 0x${(e >>> 0).toString(16)}`);
        if (t.bits > 128 || t.intOffset + t.bits > t.size * 8)
          fail(`type ${id}: int of ${t.bits} bits at bit ${t.intOffset} does not fit its ${t.size} bytes`);
        if (t.encoding !== 0 && (t.encoding & (t.encoding - 1)) !== 0)
          fail(`type ${id}: int encoding ${t.encoding}`);
        if (t.kindFlag) fail(`type ${id}: int with kind_flag`);
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
        if (![2, 4, 8, 12, 16].includes(t.size)) fail(`type ${id}: float size ${t.size}`);
        break;
      case BtfKind.Array:
        t.elemType = u32();
        t.indexType = u32();
        t.nelems = u32();
        if (sizeOrType !== 0) fail(`type ${id}: array with size ${sizeOrType}`);
        break;
      case BtfKind.Struct:
      case BtfKind.Union:
        t.size = sizeOrType;
        for (let i = 0; i < vlen; i++) {
          const mName = name();
          const type = u32();
          const off = u32();
          t.members.push(
            t.kindFlag
              ? { name: mName, type, bitOffset: off & 0xffffff, bitSize: off >>> 24 }
              : { name: mName, type, bitOffset: off, bitSize: 0 },
          );
        }
        break;
      case BtfKind.Enum:
        t.size = sizeOrType;
        if (![1, 2, 4, 8].includes(t.size)) fail(`type ${id}: enum size ${t.size}`);
        for (let i = 0; i < vlen; i++) {
          const eName = name();
          const raw = u32();
          t.enumValues.push({ name: eName, value: t.kindFlag ? BigInt(raw | 0) : BigInt(raw) });
        }
        break;
      case BtfKind.Enum64:
        t.size = sizeOrType;
        if (![1, 2, 4, 8].includes(t.size)) fail(`type ${id}: enum64 size ${t.size}`);
        for (let i = 0; i < vlen; i++) {
          const eName = name();
          const lo = BigInt(u32());
          const hi = BigInt(u32());
          const v = (hi << 32n) | lo;
          t.enumValues.push({ name: eName, value: t.kindFlag ? BigInt.asIntN(64, v) : v });
        }
        break;
      case BtfKind.FuncProto:
        t.type = sizeOrType;
        for (let i = 0; i < vlen; i++) t.params.push({ name: name(), type: u32() });
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
    }
    types.push(t);
  }
  const btf = { types };
  checkIds(btf);
  resolveAll(btf);
  return btf;
}

/** Kinds whose vlen counts entries (or, for FUNC, is the linkage). */
const HAS_VLEN = new Set<number>([
  BtfKind.Struct,
  BtfKind.Union,
  BtfKind.Enum,
  BtfKind.Enum64,
  BtfKind.FuncProto,
  BtfKind.Datasec,
  BtfKind.Func,
]);
/** Bytes of one vlen entry per kind (0: vlen is no count). */
const VLEN_BYTES: Record<number, number> = {
  [BtfKind.Struct]: 12,
  [BtfKind.Union]: 12,
  [BtfKind.Enum]: 8,
  [BtfKind.Enum64]: 12,
  [BtfKind.FuncProto]: 8,
  [BtfKind.Datasec]: 12,
};
for (let k = 0; k <= BtfKind.Enum64; k++) VLEN_BYTES[k] ??= 0;

/**
 * The string section, decoded once per offset and within a budget: a blob
 * whose names would decode to more than a few times its own size (offsets
 * into one long string, say) is refused instead of exhausting memory.
 */
class BtfStrings {
  private readonly cache = new Map<number, string>();
  private budget: number;
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly blob: Uint8Array,
    private readonly start: number,
    private readonly len: number,
  ) {
    this.budget = 4 * blob.length + 65536;
  }

  /** The string at `off`, at most `max` bytes before its NUL (0: no limit but the section's). */
  at(off: number, max: number, id: number): string {
    const hit = this.cache.get(off);
    if (hit !== undefined) return hit;
    if (off >= this.len) fail(`type ${id}: string offset ${off} is past the ${this.len}-byte string section`);
    const from = this.start + off;
    const stop = max === 0 ? this.start + this.len : Math.min(this.start + this.len, from + max);
    let end = from;
    while (end < stop && this.blob[end] !== 0) end++;
    if (end === stop) fail(`type ${id}: the name at string offset ${off} is longer than ${max} bytes`);
    this.budget -= end - from;
    if (this.budget < 0) fail("BTF names decode to more than 4 times the blob's size");
    const s = this.decoder.decode(this.blob.subarray(from, end));
    this.cache.set(off, s);
    return s;
  }
}

/** Every type id a type names exists (kernel: btf_check_meta() and the resolvers' id checks). */
function checkIds(btf: Btf): void {
  const n = btf.types.length;
  const ok = (id: number, from: BtfType, what: string | BtfMember | { name: string }) => {
    if (id >= n)
      fail(
        `type ${from.id}: ${typeof what === "string" ? what : what.name} type id ${id} is past the last type ${n - 1}`,
      );
  };
  for (const t of btf.types) {
    switch (t.kind) {
      case BtfKind.Array:
        ok(t.elemType, t, "element");
        ok(t.indexType, t, "index");
        break;
      case BtfKind.Struct:
      case BtfKind.Union:
        for (const m of t.members) ok(m.type, t, m);
        break;
      case BtfKind.FuncProto:
        ok(t.type, t, "return");
        for (const q of t.params) ok(q.type, t, q);
        break;
      case BtfKind.Datasec:
        for (const v of t.secinfo) ok(v.type, t, "variable");
        break;
      case BtfKind.Int:
      case BtfKind.Enum:
      case BtfKind.Enum64:
      case BtfKind.Fwd:
      case BtfKind.Float:
      case BtfKind.Unknown:
        break;
      default:
        ok(t.type, t, "referenced");
    }
  }
}

/** Kinds with a size a member or an element can have. */
const LAYOUT_KINDS = new Set<number>([
  BtfKind.Int,
  BtfKind.Ptr,
  BtfKind.Array,
  BtfKind.Struct,
  BtfKind.Union,
  BtfKind.Enum,
  BtfKind.Enum64,
  BtfKind.Float,
]);

/** Kinds a modifier chain passes through. */
function isModifier(kind: number): boolean {
  return (
    kind === BtfKind.Typedef ||
    kind === BtfKind.Volatile ||
    kind === BtfKind.Const ||
    kind === BtfKind.Restrict ||
    kind === BtfKind.TypeTag
  );
}

/**
 * btf_resolve() for every type with a layout: sizes (stored in `size` for
 * arrays), loops, depth, void or function members and elements, members
 * and bitfields inside their struct, arrays within U32_MAX bytes.
 */
function resolveAll(btf: Btf): void {
  const types = btf.types;
  // 0: not visited, 1: resolving (on the stack), 2: resolved; sizes[id] once resolved.
  const state = new Uint8Array(types.length);
  const sizes = new Float64Array(types.length);
  state[0] = 2; // void: resolved, no size
  const sized = (id: number, from: BtfType, what: string | BtfMember, depth: number): number => {
    const size = resolve(id, depth + 1);
    const base = resolveType(btf, id);
    if (!LAYOUT_KINDS.has(base.kind))
      fail(
        `type ${from.id}: ${typeof what === "string" ? what : `member ${what.name || "(anon)"}`} has no size (type ${id}, kind ${base.kind})`,
      );
    return size;
  };
  const resolve = (id: number, depth: number): number => {
    if (state[id] === 2) return sizes[id];
    if (state[id] === 1) fail(`type ${id}: loop detected`);
    if (depth > BTF_MAX_RESOLVE_DEPTH) fail(`type ${id}: types nest deeper than ${BTF_MAX_RESOLVE_DEPTH}`);
    state[id] = 1;
    const t = types[id];
    let size = 0;
    switch (t.kind) {
      case BtfKind.Int:
      case BtfKind.Enum:
      case BtfKind.Enum64:
      case BtfKind.Float:
        size = t.size;
        break;
      case BtfKind.Ptr:
        size = 8;
        break;
      case BtfKind.Typedef:
      case BtfKind.Volatile:
      case BtfKind.Const:
      case BtfKind.Restrict:
      case BtfKind.TypeTag:
        size = resolve(t.type, depth + 1);
        break;
      case BtfKind.Array: {
        const idx = resolveType(btf, t.indexType);
        resolve(t.indexType, depth + 1);
        if (idx.kind !== BtfKind.Int) fail(`type ${id}: array index type ${t.indexType} is not an int`);
        const elem = sized(t.elemType, t, "array element", depth);
        if (t.nelems !== 0 && elem > 0xffffffff / t.nelems)
          fail(`type ${id}: array of ${t.nelems} x ${elem} bytes overflows U32_MAX`);
        size = t.nelems * elem;
        break;
      }
      case BtfKind.Struct:
      case BtfKind.Union: {
        size = t.size;
        for (const m of t.members) {
          const msize = sized(m.type, t, m, depth);
          const base = resolveType(btf, m.type);
          if (m.bitSize > 0) {
            if (base.kind !== BtfKind.Int && base.kind !== BtfKind.Enum && base.kind !== BtfKind.Enum64)
              fail(`type ${id}: bitfield ${m.name} is not an int or enum`);
            if (m.bitSize > 128)
              fail(`type ${id}: bitfield ${m.name} of ${m.bitSize} bits is wider than 128 bits`);
            if (m.bitOffset + m.bitSize > t.size * 8)
              fail(`type ${id}: bitfield ${m.name} exceeds struct_size`);
          } else {
            if (m.bitOffset % 8 !== 0 && base.kind !== BtfKind.Int)
              fail(`type ${id}: member ${m.name} is not byte aligned`);
            // btf_int_check_member(): an int member needs the bytes its bits touch; others their size.
            const need = base.kind === BtfKind.Int ? Math.ceil((base.bits + (m.bitOffset % 8)) / 8) : msize;
            if (base.kind === BtfKind.Int && base.bits + (m.bitOffset % 8) > 128)
              fail(`type ${id}: member ${m.name} spans more than 128 bits`);
            if (Math.floor(m.bitOffset / 8) + need > t.size)
              fail(`type ${id}: member ${m.name} exceeds struct_size`);
          }
        }
        break;
      }
      default:
        size = 0; // functions, variables, sections, tags, forward declarations: no layout htab reads
    }
    state[id] = 2;
    sizes[id] = size;
    return size;
  };
  for (let id = 1; id < types.length; id++) {
    const k = types[id].kind;
    if (k === BtfKind.Struct || k === BtfKind.Union || k === BtfKind.Array || isModifier(k)) resolve(id, 0);
  }
}

/** Follow typedefs, modifiers and type tags to the type that has a layout. */
export function resolveType(btf: Btf, id: number): BtfType {
  for (let n = 0; n < 64; n++) {
    const t = Number.isInteger(id) && id >= 0 ? btf.types[id] : undefined;
    if (t === undefined || t === null) return invalid("btf", `no BTF type ${id}`);
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
export function typeSize(btf: Btf, id: number, depth = 0): number {
  if (depth > BTF_MAX_RESOLVE_DEPTH) fail(`type ${id}: types nest deeper than ${BTF_MAX_RESOLVE_DEPTH}`);
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
      return t.nelems * typeSize(btf, t.elemType, depth + 1);
    default:
      return 0;
  }
}

/** The most values (integers, bytes, elements) one decode or format of a type makes: 2^24. */
export const BTF_MAX_LEAVES = 1 << 24;

const leafCache = new WeakMap<Btf, Map<number, number>>();

/**
 * Check that type `id` has a layout htab can decode and format, whatever
 * made `btf` (parseBtf() or a hand-built Btf): nesting within
 * MAX_RESOLVE_DEPTH, every member and bitfield inside its struct, sizes
 * within U32_MAX, at most BTF_MAX_LEAVES values.
 * @returns the number of values a decode makes
 * @throws BpfError EINVAL (`op` starts the message)
 */
export function checkLayout(btf: Btf, id: number, op: string): number {
  let cache = leafCache.get(btf);
  if (cache === undefined) {
    cache = new Map();
    leafCache.set(btf, cache);
  }
  const hit = cache.get(id);
  if (hit !== undefined) return hit;
  const bad = (msg: string): never => invalid(op, `BTF type ${id}: ${msg}`);
  if (btf === null || typeof btf !== "object" || !Array.isArray(btf.types)) bad("not a parsed BTF");
  const walk = (tid: number, depth: number): number => {
    if (depth > BTF_MAX_RESOLVE_DEPTH) bad(`types nest deeper than ${BTF_MAX_RESOLVE_DEPTH}`);
    if (!Number.isInteger(tid) || tid < 0 || tid >= btf.types.length) bad(`no type ${tid}`);
    const t = resolveType(btf, tid);
    const size = typeSize(btf, tid);
    if (!Number.isInteger(size) || size < 0 || size > 0xffffffff) bad(`type ${t.id} has size ${size}`);
    switch (t.kind) {
      case BtfKind.Int:
        if (t.bits > 128 || t.intOffset + t.bits > t.size * 8)
          bad(`int ${t.id} does not fit its ${t.size} bytes`);
        return 1;
      case BtfKind.Ptr:
      case BtfKind.Enum:
      case BtfKind.Enum64:
      case BtfKind.Float:
        return 1;
      case BtfKind.Array: {
        if (!LAYOUT_KINDS.has(resolveType(btf, t.elemType).kind))
          bad(`array ${t.id} has elements of no size`);
        const per = Math.max(1, walk(t.elemType, depth + 1));
        if (t.nelems * per > BTF_MAX_LEAVES)
          bad(`array ${t.id} of ${t.nelems} elements holds more than ${BTF_MAX_LEAVES} values`);
        return t.nelems * per;
      }
      case BtfKind.Struct:
      case BtfKind.Union: {
        if (t.members.length > BTF_MAX_LEAVES) bad(`struct ${t.id} has ${t.members.length} members`);
        let n = 0;
        for (const m of t.members) {
          if (m.bitSize > 0) {
            if (m.bitSize > 128 || m.bitOffset + m.bitSize > t.size * 8)
              bad(`bitfield ${m.name} of struct ${t.id} lies past its ${t.size} bytes`);
            n += 1;
          } else {
            if (!LAYOUT_KINDS.has(resolveType(btf, m.type).kind))
              bad(`member ${m.name} of struct ${t.id} has no size`);
            n += walk(m.type, depth + 1);
            if (Math.floor(m.bitOffset / 8) + typeSize(btf, m.type) > t.size)
              bad(`member ${m.name} of struct ${t.id} lies past its ${t.size} bytes`);
          }
          if (n > BTF_MAX_LEAVES) bad(`struct ${t.id} holds more than ${BTF_MAX_LEAVES} values`);
        }
        return n;
      }
      default:
        if (size > BTF_MAX_LEAVES) bad(`type ${t.id} is ${size} bytes of no known shape`);
        return size;
    }
  };
  const n = walk(id, 0);
  cache.set(id, n);
  return n;
}
