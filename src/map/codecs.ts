/**
 * Typed codecs between JavaScript values and the fixed-size little-endian
 * bytes a BPF map stores (the layout a C struct has on x86-64): integers,
 * bytes, strings, structs, per-CPU values. Use them with TypedMap; see
 * {@link Codec} for the contract a codec of your own keeps.
 * @module
 */

import { BpfError, invalid, showInput } from "../errors.js";

export { showInput };

/**
 * Converts a JavaScript value to and from exactly `size` bytes at an offset:
 * a key or a value as the map stores it (a C struct's bytes on x86-64).
 *
 * The contract, which every built-in codec keeps and a codec of your own
 * must keep too:
 *
 * - `encode(value, buf, off)` writes only `buf[off .. off + size)`. It must
 *   not depend on what those bytes held before, unless it declares
 *   `writesAll: false` (or leaves `writesAll` out): then TypedMap zero-fills
 *   the `size` bytes before each encode, because its key and value buffers
 *   are reused, and bytes a codec leaves alone would keep the previous key's
 *   tail (two keys that differ only there would be one key to the map).
 *   Declare `writesAll: true` only when every one of the `size` bytes is
 *   written on every call (padding included): the built-ins do, so their hot
 *   path pays nothing.
 * - A value that cannot be encoded throws `BpfError` EINVAL (see
 *   `showInput()` for how the built-ins show the input), preferably before
 *   writing anything.
 * - `decode(buf, off)` reads only `buf[off .. off + size)` and returns a new
 *   value (it must not keep a view of `buf`: TypedMap reuses it).
 * - Equal values must encode to equal bytes: the map hashes and compares keys
 *   as bytes.
 *
 * @example A 4-byte IPv4 address as a dotted string:
 * ```ts
 * const ipv4: Codec<string> = {
 *   size: 4,
 *   writesAll: true,
 *   encode(v, buf, off) { buf.set(v.split(".").map(Number), off); },
 *   decode(buf, off) { return [...buf.subarray(off, off + 4)].join("."); },
 * };
 * ```
 */
export interface Codec<T> {
  /** Bytes of one encoded value (the map's key_size or value bytes). */
  readonly size: number;
  /**
   * True when encode() writes every one of the `size` bytes on every call.
   * When false or absent, TypedMap zero-fills the bytes before each encode.
   */
  readonly writesAll?: boolean;
  /**
   * Alignment in a codecs.struct (C's `_Alignof`). Default: the largest power
   * of two dividing `size`, at most 8 (right for integers and structs of them).
   */
  readonly align?: number;
  /** Write `value` as `size` bytes at `buf[off]`. @throws BpfError EINVAL for a value it cannot encode */
  encode(value: T, buf: Uint8Array, off: number): void;
  /** Read the value at `buf[off]` (a new value, not a view of `buf`). */
  decode(buf: Uint8Array, off: number): T;
}

/** The value type a codec converts. */
export type CodecValue<C> = C extends Codec<infer T> ? T : never;

/** EINVAL for a value a codec cannot encode: what came, and what was expected. */
function badInput(v: unknown, expected: string): never {
  invalid("encode", `got ${showInput(v)}, expected ${expected}`);
}

function intCodec(size: 1 | 2 | 4, signed: boolean): Codec<number> {
  const min = signed ? -(2 ** (size * 8 - 1)) : 0;
  const max = signed ? 2 ** (size * 8 - 1) - 1 : 2 ** (size * 8) - 1;
  return {
    size,
    writesAll: true,
    encode(v, buf, off) {
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
        badInput(v, `${signed ? "s" : "u"}${size * 8} number in [${min}, ${max}]`);
      for (let i = 0; i < size; i++) buf[off + i] = (v >>> (8 * i)) & 0xff;
    },
    decode(buf, off) {
      let v = 0;
      for (let i = 0; i < size; i++) v |= buf[off + i] << (8 * i);
      if (signed) return size === 4 ? v | 0 : (v << (32 - size * 8)) >> (32 - size * 8);
      return size === 4 ? v >>> 0 : v;
    },
  };
}

export const u8: Codec<number> = intCodec(1, false);
export const u16: Codec<number> = intCodec(2, false);
export const u32: Codec<number> = intCodec(4, false);
export const s32: Codec<number> = intCodec(4, true);
export const s8: Codec<number> = intCodec(1, true);
export const s16: Codec<number> = intCodec(2, true);

// 64-bit codecs go through one 8-byte scratch word instead of a DataView per
// call (a DataView is an allocation; getBigUint64 and two range comparisons
// are builtin calls). The typed arrays are host-endian: on a big-endian host
// the bytes are swapped through the scratch word.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const scratchU64 = new BigUint64Array(1);
const scratchS64 = new BigInt64Array(scratchU64.buffer);
const scratchBytes = new Uint8Array(scratchU64.buffer);

function toScratch(buf: Uint8Array, off: number): void {
  if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) scratchBytes[i] = buf[off + i];
  else for (let i = 0; i < 8; i++) scratchBytes[7 - i] = buf[off + i];
}

function fromScratch(buf: Uint8Array, off: number): void {
  if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) buf[off + i] = scratchBytes[i];
  else for (let i = 0; i < 8; i++) buf[off + i] = scratchBytes[7 - i];
}

/** u64 as bigint. */
export const u64: Codec<bigint> = {
  size: 8,
  writesAll: true,
  encode(v, buf, off) {
    if (typeof v !== "bigint") badInput(v, "u64 bigint");
    scratchU64[0] = v; // wraps modulo 2^64: a value out of range reads back different
    if (scratchU64[0] !== v) badInput(v, "u64 bigint in [0n, 2n ** 64n - 1n]");
    fromScratch(buf, off);
  },
  decode(buf, off) {
    toScratch(buf, off);
    return scratchU64[0];
  },
};

/** s64 as bigint. */
export const s64: Codec<bigint> = {
  size: 8,
  writesAll: true,
  encode(v, buf, off) {
    if (typeof v !== "bigint") badInput(v, "s64 bigint");
    scratchS64[0] = v;
    if (scratchS64[0] !== v) badInput(v, "s64 bigint in [-(2n ** 63n), 2n ** 63n - 1n]");
    fromScratch(buf, off);
  },
  decode(buf, off) {
    toScratch(buf, off);
    return scratchS64[0];
  },
};

/** Fixed-size raw bytes. Decoding copies. */
export function bytes(size: number): Codec<Uint8Array> & { readonly raw: true } {
  if (!Number.isInteger(size) || size <= 0)
    invalid("codecs.bytes", `size must be a positive integer, got ${showInput(size)}`);
  return {
    size,
    raw: true,
    writesAll: true,
    encode(v, buf, off) {
      if (!(v instanceof Uint8Array) || v.length !== size) badInput(v, `a Uint8Array of ${size} bytes`);
      buf.set(v, off);
    },
    decode(buf, off) {
      return buf.slice(off, off + size);
    },
  };
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * A string in `size` bytes, as a BPF program's `char name[size]` holds it:
 * UTF-8, padded with NUL bytes. A string of exactly `size` bytes is stored
 * with no NUL at all (a C reader must bound it by the array size, as
 * `bpf_probe_read_str` users do); decoding reads up to the first NUL (or all
 * `size` bytes). A string longer than `size` bytes of UTF-8 is EINVAL (it is
 * never cut: two long keys would become one), as is a string with a NUL in
 * it (it would not read back). In a struct, the error names the field.
 *
 * Encoding a string allocates its UTF-8 bytes (TextEncoder); decoding
 * allocates the string.
 * @throws BpfError EINVAL for a size that is not a positive integer
 */
export function string(size: number): Codec<string> {
  if (!Number.isInteger(size) || size <= 0)
    invalid("codecs.string", `size must be a positive integer, got ${showInput(size)}`);
  return {
    size,
    writesAll: true,
    align: 1, // a char array
    encode(v, buf, off) {
      if (typeof v !== "string") badInput(v, `a string of at most ${size} bytes of UTF-8`);
      const b = utf8Encoder.encode(v);
      if (b.length > size)
        invalid(
          "encode",
          `got ${showInput(v)}, ${b.length} bytes of UTF-8: longer than the field's ${size} bytes`,
        );
      if (b.indexOf(0) >= 0)
        invalid("encode", `got ${showInput(v)}: a NUL character would end the string early`);
      buf.set(b, off);
      buf.fill(0, off + b.length, off + size);
    },
    decode(buf, off) {
      let end = off;
      const stop = off + size;
      while (end < stop && buf[end] !== 0) end++;
      // TextDecoder cannot read a view of shared memory: copy first.
      return utf8Decoder.decode(buf.slice(off, end));
    },
  };
}

/** A struct field: its name, codec, and optional explicit offset. */
export interface Field<N extends string = string, T = unknown> {
  name: N;
  codec: Codec<T>;
  /** Byte offset; default: the next offset aligned to the codec's `align`, as C lays it out. */
  offset?: number;
}

/** The object a field list describes: `{ packets: bigint, port: number }` for u64 and u16 fields. */
export type StructValue<F extends readonly Field<string, unknown>[]> = {
  [E in F[number] as E["name"]]: E["codec"] extends Codec<infer T> ? T : never;
};

/**
 * A C-like struct from a field list. Fields are aligned as on x86-64 (each
 * codec's `align`) unless an offset is given; the size is padded to the largest alignment. Padding
 * bytes are written as zero, so equal structs hash equally. The value type
 * is inferred from the fields; an encode error names the field
 * (`packets: got "16" (string), expected u64 bigint`).
 */
export function struct<const F extends readonly Field<string, unknown>[]>(
  fields: F,
  opts: { size?: number } = {},
): Codec<StructValue<F>> & { offsets: Record<F[number]["name"], number>; fields: F } {
  const offsets: Record<string, number> = {};
  let off = 0;
  let align = 1;
  for (const f of fields) {
    const a = f.codec.align ?? Math.min(f.codec.size & -f.codec.size, 8);
    align = Math.max(align, a);
    const at = f.offset ?? Math.ceil(off / a) * a;
    offsets[f.name] = at;
    off = Math.max(off, at + f.codec.size);
  }
  const size = opts.size ?? Math.ceil(off / align) * align;
  if (size < off) invalid("codecs.struct", `struct size ${size} is smaller than its fields (${off} bytes)`);
  return {
    size,
    writesAll: true,
    align,
    fields,
    offsets: offsets as Record<F[number]["name"], number>,
    encode(v, buf, o) {
      if (v === null || typeof v !== "object")
        badInput(v, `an object with fields ${fields.map((f) => f.name).join(", ")}`);
      buf.fill(0, o, o + size);
      const obj = v as Record<string, unknown>;
      for (const f of fields) {
        if (!(f.name in obj))
          invalid("encode", `${f.name}: missing (the struct value has no field '${f.name}')`);
        try {
          f.codec.encode(obj[f.name], buf, o + offsets[f.name]);
        } catch (e) {
          // Name the field: "packets: got ..." (nested structs give "outer.inner: ...").
          if (e instanceof BpfError)
            throw new BpfError(
              "encode",
              e.errno,
              `${f.name}${/^[\w.]+: /.test(e.detail) ? "." : ": "}${e.detail}`,
            );
          throw e;
        }
      }
    },
    decode(buf, o) {
      const out: Record<string, unknown> = {};
      for (const f of fields) out[f.name] = f.codec.decode(buf, o + offsets[f.name]);
      return out as StructValue<F>;
    },
  };
}

/**
 * The value of a per-CPU map (PERCPU_HASH, LRU_PERCPU_HASH) as the control
 * plane moves it: one `codec` value per possible CPU, each in its own
 * round_up(size, 8) slot (kernel: bpf_long_memcpy per CPU). Decodes to an
 * array of `nrCpus` values; encodes from an array of exactly `nrCpus` (any
 * other length is EINVAL), zeroing the slots' padding. This is cilium/ebpf's
 * `[]T` and aya's `PerCpuValues<T>`.
 */
export function perCpu<T>(codec: Codec<T>, nrCpus: number): Codec<T[]> {
  if (!Number.isInteger(nrCpus) || nrCpus <= 0)
    invalid(
      "codecs.perCpu",
      `nrCpus must be the number of possible CPUs (a positive integer), got ${showInput(nrCpus)}`,
    );
  const slot = Math.ceil(codec.size / 8) * 8;
  const size = slot * nrCpus;
  return {
    size,
    writesAll: true,
    encode(v, buf, off) {
      if (!Array.isArray(v))
        invalid(
          "encode",
          `a per-CPU value is an array of ${nrCpus} values (one per possible CPU), got ${showInput(v)}`,
        );
      if (v.length !== nrCpus)
        invalid("encode", `a per-CPU value needs ${nrCpus} values (one per possible CPU), got ${v.length}`);
      buf.fill(0, off, off + size);
      for (let c = 0; c < nrCpus; c++) codec.encode(v[c], buf, off + c * slot);
    },
    decode(buf, off) {
      const out: T[] = new Array(nrCpus);
      for (let c = 0; c < nrCpus; c++) out[c] = codec.decode(buf, off + c * slot);
      return out;
    },
  };
}

/**
 * A `struct bpf_spin_lock` field (4 bytes). The kernel never copies it to or
 * from user space: it reads as 0 and whatever is written is ignored. In a
 * value declared to the kernel (btfDeclOf()), it makes a spin-lock map.
 */
export const bpfSpinLock: Codec<number> = {
  size: 4,
  writesAll: true,
  encode(_v, buf, off) {
    buf.fill(0, off, off + 4);
  },
  decode() {
    return 0;
  },
};
