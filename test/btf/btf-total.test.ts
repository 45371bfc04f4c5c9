/**
 * BTF parsing is total (issue 24, finding 9): every input to parseBtf(),
 * btfCodec() and its decode, and btfFormat() gives a result or BpfError
 * EINVAL, in time and memory linear in the input; the kernel's checks
 * (btf_parse_hdr, btf_parse_str_sec, btf_check_meta, btf_resolve) decide
 * what is refused. The cases first, then a fast-check fuzzer over mutated
 * valid blobs and random bytes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type Btf, BtfKind, type BtfType, blankType, parseBtf } from "../../src/btf/btf.js";
import { btfCodec } from "../../src/btf/codec.js";
import { btfFormat } from "../../src/btf/format.js";
import { btfDeclOf, writeBtf } from "../../src/btf/write.js";
import { BpfError } from "../../src/errors.js";
import { bpfFfi } from "../../src/kernel/bpf-syscall.js";
import { loadBtf } from "../../src/kernel/btf-load.js";
import * as codecs from "../../src/map/codecs.js";
import { kernelSkipReason } from "../helpers/kernel.js";

/** A BTF blob from type words and a string section (header fields overridable). */
function blob(
  words: number[],
  strings = "\0int\0s\0a\0b\0",
  hdr: Partial<Record<string, number>> = {},
): Uint8Array {
  const str = new TextEncoder().encode(strings);
  const typeLen = hdr.typeLen ?? words.length * 4;
  const out = new Uint8Array(24 + words.length * 4 + str.length);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, hdr.magic ?? 0xeb9f, true);
  out[2] = hdr.version ?? 1;
  out[3] = hdr.flags ?? 0;
  dv.setUint32(4, hdr.hdrLen ?? 24, true);
  dv.setUint32(8, hdr.typeOff ?? 0, true);
  dv.setUint32(12, typeLen, true);
  dv.setUint32(16, hdr.strOff ?? words.length * 4, true);
  dv.setUint32(20, hdr.strLen ?? str.length, true);
  words.forEach((w, i) => {
    dv.setUint32(24 + i * 4, w >>> 0, true);
  });
  out.set(str, 24 + words.length * 4);
  return out;
}

const info = (kind: number, vlen = 0, kflag = false) => ((kflag ? 1 << 31 : 0) | (kind << 24) | vlen) >>> 0;
/** [1] int "int": 4 bytes, signed, 32 bits. */
const INT = [1, info(BtfKind.Int), 4, (1 << 24) | 32];

function refused(f: () => unknown, pattern: RegExp, what: string): void {
  assert.throws(
    f,
    (e: unknown) => e instanceof BpfError && e.code === "EINVAL" && pattern.test(e.message),
    what,
  );
}

test("parseBtf refuses malformed headers and string sections with EINVAL", () => {
  assert.equal(parseBtf(blob(INT)).types.length, 2);
  const cases: [Uint8Array, RegExp, string][] = [
    [blob(INT, "\0int\0s"), /string section/, "a string section with no final NUL"],
    [blob(INT, "x\0int\0"), /string section/, "a string section not starting with the empty string"],
    [blob(INT, "\0int\0", { strLen: 0 }), /string section/, "an empty string section"],
    [blob(INT, undefined, { version: 2 }), /version/, "version 2"],
    [blob(INT, undefined, { flags: 1 }), /flags/, "header flags"],
    [blob(INT, undefined, { hdrLen: 20 }), /header length/, "a short header"],
    [blob(INT, undefined, { typeOff: 2 }), /aligned/, "an unaligned type section"],
    [blob(INT, undefined, { typeLen: 0xffff_fff0 }), /past the blob/, "a type section past the blob"],
    [blob(INT, undefined, { strLen: 0xffff_ffff }), /past the blob/, "a string section past the blob"],
    [blob(INT, undefined, { strOff: 4 }), /overlap/, "overlapping sections"],
    [blob([...INT, 99, info(BtfKind.Int), 4, 32]), /string offset 99/, "a name offset past the strings"],
    [
      blob([1, info(BtfKind.Int), 4, 32], `\0${"n".repeat(600)}\0`),
      /longer than 512/,
      "a name past KSYM_NAME_LEN",
    ],
  ];
  for (const [b, re, what] of cases) refused(() => parseBtf(b), re, what);
  // A name with no NUL in a string section that ends in one: the name runs to the end, and is refused if long.
  const noNul = blob([1, info(BtfKind.Int), 4, 32], `\0${"x".repeat(100_000)}\0`);
  refused(() => parseBtf(noNul), /longer than 512/, "one long name");
});

test("parseBtf refuses bad types: kinds, info bits, vlen, ids out of range, loops, deep chains, void elements, overflows, members past their struct", () => {
  const cases: [number[], RegExp, string][] = [
    [[0, info(0), 0], /unknown BTF kind 0/, "kind UNKN"],
    [[0, info(20), 0], /unknown BTF kind 20/, "kind 20"],
    [[0, info(BtfKind.Int) | (1 << 16), 4, 32], /unknown bits/, "info bits 16..23"],
    [[0, info(BtfKind.Ptr, 3), 0], /takes no vlen/, "vlen on a pointer"],
    [[1, info(BtfKind.Struct, 0xffff), 4], /run past the type section/, "65535 members in 0 bytes"],
    [[...INT, 0, info(BtfKind.Ptr), 7], /type id 7 is past/, "a pointer to type 7 of 2"],
    [[...INT, 0, info(BtfKind.Array), 0, 1, 9, 4], /index type id 9/, "an index type out of range"],
    [[1, info(BtfKind.Int), 3, 32], /does not fit/, "32 bits in 3 bytes"],
    [[1, info(BtfKind.Int), 4, 0x1000_0020], /unknown bits/, "int data bits 28..31"],
    // struct s { struct s a; }: a loop through a member.
    [[3, info(BtfKind.Struct, 1), 4, 7, 1, 0], /loop detected/, "a self-referential struct"],
    // typedef a -> typedef b -> typedef a.
    [[7, info(BtfKind.Typedef), 2, 9, info(BtfKind.Typedef), 1], /loop detected/, "a typedef loop"],
    // int[0xffffffff] of void elements.
    [[...INT, 0, info(BtfKind.Array), 0, 0, 1, 0xffff_ffff], /no size/, "an array of 2^32-1 voids"],
    // int[0x40000000]: 4 GiB, over U32_MAX.
    [
      [...INT, 0, info(BtfKind.Array), 0, 1, 1, 0x4000_0000],
      /overflows U32_MAX/,
      "an array over U32_MAX bytes",
    ],
    // struct s { int a at byte 4; } of 4 bytes.
    [[...INT, 3, info(BtfKind.Struct, 1), 4, 7, 1, 32], /exceeds struct_size/, "a member past its struct"],
    // struct s { int a:8 at bit 28; } of 4 bytes, kind_flag bitfields.
    [
      [...INT, 3, info(BtfKind.Struct, 1, true), 4, 7, 1, (8 << 24) | 28],
      /exceeds struct_size/,
      "a bitfield past its struct",
    ],
    [
      [...INT, 3, info(BtfKind.Struct, 1, true), 4, 7, 0, 8 << 24],
      /not an int or enum|no size/,
      "a void bitfield",
    ],
    [[...INT, 3, info(BtfKind.Struct, 1), 4, 7, 0, 0], /no size/, "a void member"],
  ];
  for (const [words, re, what] of cases) refused(() => parseBtf(blob(words)), re, what);
  // 40 typedefs in a chain, and 40 structs each holding the next, each naming a later id (the
  // resolver's stack grows, as the kernel's): deeper than MAX_RESOLVE_DEPTH (32). 30 are fine.
  const chain = (n: number) => {
    const w: number[] = [];
    for (let i = 1; i <= n; i++) w.push(5, info(BtfKind.Typedef), i + 1);
    return [...w, ...INT];
  };
  const nest = (n: number) => {
    const w: number[] = [];
    for (let i = 1; i <= n; i++) w.push(3, info(BtfKind.Struct, 1), 4, 7, i + 1, 0);
    return [...w, ...INT];
  };
  refused(() => parseBtf(blob(chain(40))), /deeper than 32/, "a chain of 40 typedefs");
  refused(() => parseBtf(blob(nest(40))), /deeper than 32/, "40 nested structs");
  assert.equal(parseBtf(blob(chain(30))).types.length, 32);
  const nested = parseBtf(blob(nest(30)));
  assert.deepEqual(
    btfCodec(nested, 1).decode(new Uint8Array([1, 0, 0, 0]), 0),
    JSON.parse(`${'{"a":'.repeat(30)}1${"}".repeat(30)}`),
  );
});

/** A hand-built type with the defaults parseBtf() leaves. */
function ty(id: number, kind: number, over: Partial<BtfType>): BtfType {
  return { ...blankType(id, kind, ""), ...over };
}

test("btfCodec, decode and btfFormat on hand-built types: self-references, 2^32-1 voids, members past the struct, short buffers are EINVAL", () => {
  const int = ty(1, BtfKind.Int, { name: "int", size: 4, bits: 32, encoding: 1 });
  const bad: [Btf, number, RegExp, string][] = [
    [
      {
        types: [
          ty(0, 0, {}),
          int,
          ty(2, BtfKind.Struct, { size: 4, members: [{ name: "s", type: 2, bitOffset: 0, bitSize: 0 }] }),
        ],
      },
      2,
      /deeper than 32/,
      "struct s { struct s s; }",
    ],
    [
      {
        types: [ty(0, 0, {}), int, ty(2, BtfKind.Array, { elemType: 0, indexType: 1, nelems: 0xffff_ffff })],
      },
      2,
      /no size/,
      "void[2^32-1]",
    ],
    [
      {
        types: [ty(0, 0, {}), int, ty(2, BtfKind.Array, { elemType: 1, indexType: 1, nelems: 0x3fff_ffff })],
      },
      2,
      /more than 16777216/,
      "int[2^30-1]",
    ],
    [
      {
        types: [
          ty(0, 0, {}),
          int,
          ty(2, BtfKind.Struct, { size: 4, members: [{ name: "a", type: 1, bitOffset: 8, bitSize: 0 }] }),
        ],
      },
      2,
      /past its 4 bytes/,
      "a member past the struct",
    ],
    [
      {
        types: [
          ty(0, 0, {}),
          int,
          ty(2, BtfKind.Struct, { size: 4, members: [{ name: "a", type: 1, bitOffset: 30, bitSize: 5 }] }),
        ],
      },
      2,
      /past its 4 bytes/,
      "a bitfield past the struct",
    ],
    [{ types: [ty(0, 0, {}), int] }, 9, /no type 9|no BTF type 9/, "type id 9 of 2"],
    [
      { types: [ty(0, 0, {}), ty(1, BtfKind.Typedef, { type: 1 })] },
      1,
      /chain of more than 64|deeper than 32/,
      "typedef t t",
    ],
  ];
  for (const [btf, id, re, what] of bad) {
    refused(() => btfCodec(btf, id), re, `btfCodec: ${what}`);
    refused(() => btfFormat(btf, id, new Uint8Array(64)), re, `btfFormat: ${what}`);
  }
  const btf: Btf = { types: [ty(0, 0, {}), int] };
  const c = btfCodec(btf, 1);
  assert.equal(c.decode(new Uint8Array([5, 0, 0, 0]), 0), 5);
  refused(() => c.decode(new Uint8Array(3), 0), /do not fit/, "decode from 3 bytes");
  refused(() => c.decode(new Uint8Array(8), 6), /do not fit/, "decode at offset 6 of 8");
  refused(() => c.encode(1, new Uint8Array(2), 0), /do not fit/, "encode into 2 bytes");
  refused(() => btfFormat(btf, 1, new Uint8Array(2)), /do not fit/, "format 2 bytes");
});

/** Blobs a writer made: the fuzzer's seeds. */
function seeds(): Uint8Array[] {
  const inner = codecs.struct([
    { name: "a", codec: codecs.u16 },
    { name: "b", codec: codecs.s8 },
  ]);
  const outer = codecs.struct([
    { name: "id", codec: codecs.u64 },
    { name: "in", codec: inner },
    { name: "raw", codec: codecs.bytes(3) },
    { name: "f", codec: codecs.bpfSpinLock },
    { name: "n", codec: codecs.s32 },
  ]);
  return [
    writeBtf([btfDeclOf(outer, "outer")]).blob,
    writeBtf([btfDeclOf(codecs.u32, "k"), btfDeclOf(inner, "v")]).blob,
    blob([
      ...INT,
      3,
      info(BtfKind.Struct, 2, true),
      8,
      5,
      1,
      3 << 24,
      7,
      1,
      (5 << 24) | 32,
      0,
      info(BtfKind.Array),
      0,
      1,
      1,
      4,
    ]),
  ];
}

/** Everything the BTF code offers on `b`: a result or BpfError EINVAL, never another exception. */
function exercise(b: Uint8Array): "parsed" | "refused" {
  let btf: Btf;
  try {
    btf = parseBtf(b);
  } catch (e) {
    if (e instanceof BpfError && e.code === "EINVAL") return "refused";
    throw e;
  }
  const bytes = new Uint8Array(256).map((_, i) => (i * 37) & 0xff);
  for (let id = 0; id < Math.min(btf.types.length, 64); id++) {
    for (const f of [
      () => btfCodec(btf, id).decode(bytes, 0),
      () => btfFormat(btf, id, bytes, 0, 0, 0, true),
      () => btfFormat(btf, id, bytes, 0, 0, 0, false),
    ]) {
      try {
        f();
      } catch (e) {
        if (!(e instanceof BpfError && e.code === "EINVAL")) throw e;
      }
    }
  }
  return "parsed";
}

/** Edge values for overwritten words: counts, ids, offsets, sizes, info words. */
const edge = fc.constantFrom(
  0,
  1,
  2,
  3,
  4,
  7,
  8,
  31,
  32,
  64,
  127,
  128,
  0xff,
  0xffff,
  0x7fff_ffff,
  0xffff_ffff,
  0x8000_0000,
  0x0100_0000,
  0x0400_0001,
  0x8400_0002,
);

/** Mutations of valid blobs: words of the type section (now and then the header) overwritten, bytes flipped, one in eight cut short. */
function mutatedBlobs(base: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(
      fc.nat(base.length - 1),
      fc.array(fc.tuple(fc.nat(), fc.oneof(edge, fc.nat({ max: 0xffff_ffff })), fc.boolean()), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.nat(),
    )
    .map(([which, writes, cutAt]) => {
      const src = base[which];
      const cut = cutAt % 8 === 0 ? 24 + (cutAt % Math.max(1, src.length - 24)) : src.length;
      const b = src.slice(0, cut);
      const dv = new DataView(b.buffer);
      for (const [at, value, word] of writes) {
        const words = (b.length - 24) >> 2;
        if (word && words > 0)
          dv.setUint32(at % 16 === 0 ? (at % 6) * 4 : 24 + (at % words) * 4, value >>> 0, true);
        else b[at % b.length] = value & 0xff;
      }
      return b;
    });
}

/**
 * Type sections made of plausible types (ints, pointers, arrays, structs
 * with bitfields, typedefs, enums) with random sizes, ids, counts and
 * offsets: many parse, so their codecs and formats run.
 */
function structuredBlobs(): fc.Arbitrary<Uint8Array> {
  const word = fc.oneof(
    fc.constantFrom(0, 1, 2, 3, 4, 5, 8, 16, 31, 32, 33, 64, 0xffff_ffff),
    fc.nat({ max: 0xffff_ffff }),
  );
  const small = fc.nat({ max: 6 });
  const typeWords = fc.oneof(
    fc
      .tuple(
        fc.constantFrom(1, 2, 4, 8, 16, 3),
        fc.constantFrom(8, 16, 32, 64, 7, 0),
        fc.constantFrom(0, 1, 2, 4),
      )
      .map(([size, bits, enc]) => [1, info(BtfKind.Int), size, (enc << 24) | bits]),
    small.map((t) => [0, info(BtfKind.Ptr), t]),
    small.map((t) => [5, info(BtfKind.Typedef), t]),
    fc
      .tuple(small, small, fc.oneof(fc.nat({ max: 8 }), word))
      .map(([e, i, n]) => [0, info(BtfKind.Array), 0, e, i, n]),
    fc
      .tuple(fc.constantFrom(1, 2, 4, 8, 3), fc.nat({ max: 3 }))
      .map(([size, n]) => [
        3,
        info(BtfKind.Enum, n),
        size,
        ...Array.from({ length: n }, (_, i) => [9, i * 7]).flat(),
      ]),
    fc
      .tuple(
        fc.boolean(),
        fc.constantFrom(0, 1, 4, 8, 12, 16, 64),
        fc.array(fc.tuple(small, fc.nat({ max: 128 }), fc.nat({ max: 40 })), { maxLength: 4 }),
      )
      .map(([kflag, size, ms]) => [
        3,
        info(BtfKind.Struct, ms.length, kflag),
        size,
        ...ms.flatMap(([t, off, bits]) => [7, t, kflag ? ((bits & 0xff) << 24) | off : off]),
      ]),
  );
  return fc.array(typeWords, { minLength: 1, maxLength: 6 }).map((ts) => blob(ts.flat()));
}

/** Random bytes, with and without a valid header and string section around them. */
function randomBlobs(): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.uint8Array({ maxLength: 512 }), fc.boolean())
    .map(([bytes, header]) =>
      header ? blob(Array.from(new Uint32Array(bytes.slice(0, bytes.length & ~3).buffer))) : bytes,
    );
}

test("fuzz: mutated valid BTF blobs and random bytes give a result or EINVAL, never another exception", () => {
  const base = seeds();
  for (const b of base) assert.equal(exercise(b), "parsed");
  const counts = { parsed: 0, refused: 0 };
  for (const [arb, numRuns, seed] of [
    [mutatedBlobs(base), 3000, 24],
    [structuredBlobs(), 3000, 12],
    [randomBlobs(), 2000, 9],
  ] as const)
    fc.assert(
      fc.property(arb, (b) => {
        counts[exercise(b)]++;
      }),
      { numRuns, seed },
    );
  console.log(
    `# BTF fuzz: ${counts.parsed} inputs parsed, ${counts.refused} refused with EINVAL, no other exception`,
  );
  assert.ok(counts.parsed > 100 && counts.refused > 100, JSON.stringify(counts));
});

test("every blob the kernel's BPF_BTF_LOAD accepts, parseBtf accepts too (the fuzz corpus, on this kernel)", {
  skip: kernelSkipReason(),
}, () => {
  let kernelOk = 0;
  let tried = 0;
  let onlyHtab = 0;
  for (const [arb, numRuns, seed] of [
    [mutatedBlobs(seeds()), 4000, 31],
    [structuredBlobs(), 6000, 32],
  ] as const)
    for (const b of fc.sample(arb, { numRuns, seed })) {
      tried++;
      let fd: number;
      try {
        fd = loadBtf(b);
      } catch {
        // The kernel refuses it: parseBtf may accept it (it checks what htab reads, not names or functions).
        try {
          parseBtf(b);
          onlyHtab++;
        } catch {}
        continue;
      }
      bpfFfi().close(fd);
      kernelOk++;
      assert.doesNotThrow(() => parseBtf(b), `the kernel loads this blob: ${Buffer.from(b).toString("hex")}`);
    }
  console.log(
    `# BTF vs kernel: ${kernelOk} of ${tried} fuzzed blobs loaded by the kernel, all parsed by parseBtf; ${onlyHtab} more parsed by parseBtf only`,
  );
  assert.ok(kernelOk > 50, `only ${kernelOk} blobs loaded`);
});
