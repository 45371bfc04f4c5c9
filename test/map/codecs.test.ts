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
