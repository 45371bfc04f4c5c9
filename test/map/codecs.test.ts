/** The integer codecs write exactly what a little-endian C struct holds, and reject what does not fit. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import * as codecs from "../../src/map/codecs.js";

test("u64 and s64 round-trip and match DataView's little-endian bytes at any offset", () => {
  fc.assert(
    fc.property(
      fc.bigInt(0n, 2n ** 64n - 1n),
      fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n),
      fc.nat(8),
      (u, s, off) => {
        const buf = new Uint8Array(24).fill(0xaa);
        const ref = new DataView(new ArrayBuffer(24));
        codecs.u64.encode(u, buf, off);
        ref.setBigUint64(off, u, true);
        assert.deepEqual(buf.subarray(off, off + 8), new Uint8Array(ref.buffer, off, 8));
        assert.equal(codecs.u64.decode(buf, off), u);
        assert.equal(buf[off + 8], 0xaa, "nothing past the 8 bytes is written");
        codecs.s64.encode(s, buf, off);
        ref.setBigInt64(off, s, true);
        assert.deepEqual(buf.subarray(off, off + 8), new Uint8Array(ref.buffer, off, 8));
        assert.equal(codecs.s64.decode(buf, off), s);
      },
    ),
    { numRuns: 2000 },
  );
});

test("64-bit codecs reject values out of range or of the wrong type, and write nothing", () => {
  const buf = new Uint8Array(8).fill(7);
  for (const v of [-1n, 2n ** 64n, 2n ** 70n])
    assert.throws(() => codecs.u64.encode(v, buf, 0), { code: "EINVAL" });
  for (const v of [2n ** 63n, -(2n ** 63n) - 1n])
    assert.throws(() => codecs.s64.encode(v, buf, 0), { code: "EINVAL" });
  assert.throws(() => codecs.u64.encode(5 as unknown as bigint, buf, 0), { code: "EINVAL" });
  assert.deepEqual(buf, new Uint8Array(8).fill(7));
});

test("string(n): UTF-8, NUL-padded, exactly n bytes with no NUL, decoded up to the first NUL", () => {
  const c = codecs.string(8);
  assert.equal(c.size, 8);
  assert.equal(c.writesAll, true);
  const buf = new Uint8Array(10).fill(0xaa);
  c.encode("héllo", buf, 1); // é is 2 bytes: 6 bytes of UTF-8
  assert.deepEqual([...buf], [0xaa, 0x68, 0xc3, 0xa9, 0x6c, 0x6c, 0x6f, 0, 0, 0xaa]);
  assert.equal(c.decode(buf, 1), "héllo");
  c.encode("12345678", buf, 1); // exactly n bytes: no NUL, as a C char[8] may hold it
  assert.deepEqual([...buf], [0xaa, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0xaa]);
  assert.equal(c.decode(buf, 1), "12345678");
  c.encode("", buf, 1);
  assert.deepEqual([...buf.subarray(1, 9)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(c.decode(buf, 1), "");
  // A C writer's bytes after the first NUL are not part of the string.
  const fromC = new Uint8Array([0x61, 0x62, 0, 0x7a, 0x7a, 0, 0, 0]);
  assert.equal(c.decode(fromC, 0), "ab");
  // Decoding works on a view of shared memory (TextDecoder alone refuses it).
  const shared = new Uint8Array(new SharedArrayBuffer(8));
  c.encode("shared", shared, 0);
  assert.equal(c.decode(shared, 0), "shared");
});

test("string(n) refuses what does not fit or would not read back, writes nothing, and names a struct field", () => {
  const c = codecs.string(4);
  const buf = new Uint8Array(4).fill(7);
  assert.throws(() => c.encode("abcde", buf, 0), {
    code: "EINVAL",
    message: /got "abcde" \(string\), 5 bytes of UTF-8: longer than the field's 4 bytes/,
  });
  assert.throws(() => c.encode("aéé", buf, 0), { code: "EINVAL", message: /5 bytes of UTF-8/ });
  assert.throws(() => c.encode("a\0b", buf, 0), { code: "EINVAL", message: /NUL/ });
  assert.throws(() => c.encode(42 as unknown as string, buf, 0), {
    code: "EINVAL",
    message: /got 42 \(number\), expected a string of at most 4 bytes/,
  });
  assert.deepEqual(buf, new Uint8Array(4).fill(7));
  for (const n of [0, -1, 1.5, "8"])
    assert.throws(() => codecs.string(n as number), {
      code: "EINVAL",
      message: /size must be a positive integer/,
    });

  const flow = codecs.struct([
    { name: "comm", codec: codecs.string(16) },
    { name: "pid", codec: codecs.u32 },
  ]);
  assert.equal(flow.size, 20);
  assert.equal(flow.offsets.pid, 16);
  const b = new Uint8Array(flow.size);
  flow.encode({ comm: "nginx", pid: 42 }, b, 0);
  assert.deepEqual(flow.decode(b, 0), { comm: "nginx", pid: 42 });
  assert.throws(() => flow.encode({ comm: "a-process-name-too-long", pid: 1 }, b, 0), {
    code: "EINVAL",
    message:
      /^encode: comm: got "a-process-name-too-long" \(string\), 23 bytes of UTF-8: longer than the field's 16 bytes/,
  });
});

test("every built-in codec declares that it writes all its bytes, and does", () => {
  const samples: [codecs.Codec<unknown>, unknown][] = [
    [codecs.u8, 1],
    [codecs.s8, -1],
    [codecs.u16, 2],
    [codecs.s16, -2],
    [codecs.u32, 3],
    [codecs.s32, -3],
    [codecs.u64 as codecs.Codec<unknown>, 4n],
    [codecs.s64 as codecs.Codec<unknown>, -4n],
    [codecs.bytes(3) as codecs.Codec<unknown>, new Uint8Array([1, 2, 3])],
    [codecs.string(5) as codecs.Codec<unknown>, "ab"],
    [codecs.bpfSpinLock, 0],
    [codecs.perCpu(codecs.u32, 2) as codecs.Codec<unknown>, [1, 2]],
    [
      codecs.struct([
        { name: "a", codec: codecs.u8 },
        { name: "b", codec: codecs.u64 },
      ]) as codecs.Codec<unknown>,
      { a: 1, b: 2n },
    ],
  ];
  for (const [c, v] of samples) {
    assert.equal(c.writesAll, true);
    // Encoded over 0x00 and over 0xff, the bytes are the same: nothing is left as it was.
    const zero = new Uint8Array(c.size);
    const ones = new Uint8Array(c.size).fill(0xff);
    c.encode(v, zero, 0);
    c.encode(v, ones, 0);
    assert.deepEqual(ones, zero);
  }
});
