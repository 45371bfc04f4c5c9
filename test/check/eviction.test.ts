/** The over-capacity LRU checker accepts evictions and catches foreign and resurrected values. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkEvictionHistory } from "../../src/check/eviction.js";
import { type Op, OpKind } from "../../src/check/linearizability.js";

const op = (kind: number, key: number, arg: number, result: number, call: number, ret: number): Op => ({
  kind,
  key,
  flags: 0,
  arg,
  result,
  call,
  ret,
});

test("a key that vanishes (eviction) and reads of the latest value are fine", () => {
  const r = checkEvictionHistory([
    op(OpKind.Update, 1, 10, 0, 0, 1),
    op(OpKind.Lookup, 1, 0, 10, 2, 3),
    op(OpKind.Lookup, 1, 0, -1, 4, 5), // evicted
    op(OpKind.Update, 1, 11, 0, 6, 9),
    op(OpKind.Lookup, 1, 0, 10, 7, 8), // concurrent with the overwrite: still legal
  ]);
  assert.deepEqual(r, { reads: 2, foreign: 0, stale: 0 });
});

test("another key's value is foreign; a value from the future is foreign", () => {
  const r = checkEvictionHistory([
    op(OpKind.Update, 1, 10, 0, 0, 1),
    op(OpKind.Lookup, 2, 0, 10, 2, 3),
    op(OpKind.Lookup, 1, 0, 12, 4, 5),
    op(OpKind.Update, 1, 12, 0, 6, 7),
  ]);
  assert.equal(r.foreign, 2);
});

test("a value read after it was overwritten or deleted is stale", () => {
  const r = checkEvictionHistory([
    op(OpKind.Update, 1, 10, 0, 0, 1),
    op(OpKind.Update, 1, 11, 0, 2, 3),
    op(OpKind.Lookup, 1, 0, 10, 4, 5),
    op(OpKind.Update, 2, 20, 0, 6, 7),
    op(OpKind.Delete, 2, 0, 0, 8, 9),
    op(OpKind.Lookup, 2, 0, 20, 10, 11),
  ]);
  assert.deepEqual(r, { reads: 2, foreign: 0, stale: 2 });
});

test("compute toggles count as a write (inserted) or a removal (deleted)", () => {
  const r = checkEvictionHistory([
    op(OpKind.ComputeToggle, 1, 10, -1, 0, 1),
    op(OpKind.Lookup, 1, 0, 10, 2, 3),
    op(OpKind.ComputeToggle, 1, 11, 10, 4, 5),
    op(OpKind.Lookup, 1, 0, 10, 6, 7),
  ]);
  assert.deepEqual(r, { reads: 2, foreign: 0, stale: 1 });
});
