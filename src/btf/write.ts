/**
 * Writing BTF: the key and value types of a kernel map htab creates, from
 * declarations or from htab's codecs (btfDeclOf()), so that the kernel
 * knows the types (bpftool formats them, and `bpf_spin_lock` values need them).
 */

import { invalid } from "../errors.js";
import * as codecs from "../map/codecs.js";
import { BTF_INT_SIGNED, BTF_MAGIC, BtfKind } from "./btf.js";

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
