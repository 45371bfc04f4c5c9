// Sentinels and errnos never collide, and the .wat returns only the codes sentinels.ts names.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Errno } from "../src/errors.js";
import * as S from "../src/sentinels.js";

const wat = readFileSync(new URL("../../src/wasm/fast-path.wat", import.meta.url), "utf8");

test("every sentinel lies below every errno, and no two are equal", () => {
  const codes = Object.entries(S).filter(
    ([k, v]) => typeof v === "number" && k !== "MAX_ERRNO" && k !== "SENTINEL_BASE",
  );
  assert.ok(codes.length >= 10);
  for (const [name, v] of codes)
    assert.ok((v as number) <= S.SENTINEL_BASE, `${name} = ${v} is in the errno range`);
  assert.equal(new Set(codes.map(([, v]) => v)).size, codes.length);
  for (const e of Object.values(Errno) as number[])
    assert.ok(e > 0 && e <= S.MAX_ERRNO && -e > S.SENTINEL_BASE, `errno ${e}`);
});

test("fast-path.wat returns, besides errnos and its exports' own -1 encodings, exactly sentinels.ts's WASM_* codes", () => {
  const returned = new Set<number>();
  for (const m of wat.matchAll(/\(return \(i32\.const (-\d+)\)\)/g)) returned.add(Number(m[1]));
  const errnos = new Set((Object.values(Errno) as number[]).map((e) => -e));
  const sentinels = [...returned].filter((r) => r <= S.SENTINEL_BASE).sort((a, b) => b - a);
  assert.deepEqual(
    sentinels,
    [...S.WASM_CODES].sort((a, b) => b - a),
  );
  for (const r of returned) {
    if (r <= S.SENTINEL_BASE) continue;
    // -1 is lookup()'s "a writer holds the bucket" (an export-local encoding, documented in fast-path.ts).
    assert.ok(r === -1 || errnos.has(r), `the .wat returns ${r}, neither an errno nor a named sentinel`);
  }
});
