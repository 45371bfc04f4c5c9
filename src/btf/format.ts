/**
 * bpftool's formatting of BTF-typed values (btf_dumper.c): the plain
 * `key:`/`value:` tree and the JSON of `-j`, byte for byte.
 */

import { invalid } from "../errors.js";
import {
  BTF_INT_BOOL,
  BTF_INT_SIGNED,
  type Btf,
  BtfKind,
  checkLayout,
  resolveType,
  typeSize,
} from "./btf.js";

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
  // The type is checked (nesting, members inside their struct, values) and the bytes must hold it.
  checkLayout(btf, id, "btfFormat");
  if (!(b instanceof Uint8Array)) invalid("btfFormat", "bytes must be a Uint8Array");
  if (
    !Number.isInteger(bitOffset) ||
    bitOffset < 0 ||
    !Number.isInteger(bitSize) ||
    bitSize < 0 ||
    bitSize > 128
  )
    invalid("btfFormat", `bit offset ${bitOffset} and size ${bitSize} are not a bitfield`);
  const bytes =
    bitSize > 0 ? Math.ceil((bitOffset + bitSize) / 8) : typeSize(btf, id) + Math.ceil(bitOffset / 8);
  if (!Number.isInteger(off) || off < 0 || off + bytes > b.length)
    invalid("btfFormat", `${bytes} bytes at offset ${off} do not fit the ${b.length}-byte value`);
  return fmt(btf, id, b, off, bitOffset, bitSize, plain);
}

function fmt(
  btf: Btf,
  id: number,
  b: Uint8Array,
  off: number,
  bitOffset: number,
  bitSize: number,
  plain: boolean,
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
      return Array.from({ length: t.nelems }, (_, i) => fmt(btf, t.elemType, b, off + i * step, 0, 0, plain));
    }
    case BtfKind.Struct:
    case BtfKind.Union: {
      const o: { [field: string]: BtfFormatted } = {};
      for (const m of t.members)
        o[m.name] =
          m.bitSize > 0
            ? fmt(btf, m.type, b, off, m.bitOffset, m.bitSize, plain)
            : fmt(btf, m.type, b, off + Math.floor(m.bitOffset / 8), 0, 0, plain);
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
