/** The checker must accept linearizable histories and reject the ones that are not. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkHistory, checkKey, type Op, OpKind } from "../../src/check/linearizability.js";

const op = (kind: number, call: number, ret: number, result: number, arg = 0, flags = 0): Op => ({
  kind,
  key: 1,
  flags,
  arg,
  result,
  call,
  ret,
});

test("checker: sequential history that is correct passes", () => {
  assert.equal(
    checkKey([
      op(OpKind.Update, 0, 1, 0, 5),
      op(OpKind.Lookup, 2, 3, 5),
      op(OpKind.Delete, 4, 5, 0),
      op(OpKind.Lookup, 6, 7, -1),
    ]),
    true,
  );
});

test("checker: a stale read after a completed write fails", () => {
  assert.equal(
    checkKey([op(OpKind.Update, 0, 1, 0, 5), op(OpKind.Update, 2, 3, 0, 6), op(OpKind.Lookup, 4, 5, 5)]),
    false,
  );
});

test("checker: a read overlapping a write may see either value", () => {
  assert.equal(
    checkKey([op(OpKind.Update, 0, 1, 0, 5), op(OpKind.Update, 2, 5, 0, 6), op(OpKind.Lookup, 3, 4, 5)]),
    true,
  );
  assert.equal(
    checkKey([op(OpKind.Update, 0, 1, 0, 5), op(OpKind.Update, 2, 5, 0, 6), op(OpKind.Lookup, 3, 4, 6)]),
    true,
  );
});

test("checker: a value never written fails; two NOEXIST inserts cannot both succeed", () => {
  assert.equal(checkKey([op(OpKind.Lookup, 0, 1, 9)]), false);
  assert.equal(checkKey([op(OpKind.Update, 0, 3, 0, 1, 1), op(OpKind.Update, 1, 2, 0, 2, 1)]), false);
  assert.equal(checkKey([op(OpKind.Update, 0, 3, 0, 1, 1), op(OpKind.Update, 1, 2, -17, 2, 1)]), true);
});

test("checker: read goes back in time (new then old) fails even when both overlap the write", () => {
  const h = [
    op(OpKind.Update, 0, 1, 0, 5),
    op(OpKind.Update, 2, 9, 0, 6),
    op(OpKind.Lookup, 3, 4, 6),
    op(OpKind.Lookup, 5, 6, 5),
  ];
  assert.equal(checkKey(h), false);
  assert.equal(checkHistory(h).ok, false);
});

test("checker: E2BIG is accepted only where the key is absent, and changes nothing", () => {
  assert.equal(checkKey([op(OpKind.Update, 0, 1, -7, 5), op(OpKind.Lookup, 2, 3, -1)]), true);
  assert.equal(checkKey([op(OpKind.Update, 0, 1, 0, 5), op(OpKind.Update, 2, 3, -7, 6)]), false);
});

test("checker: compare-and-delete and compare-and-swap follow the register", () => {
  const cad = (call: number, ret: number, result: number, expected: number) =>
    op(OpKind.CompareAndDelete, call, ret, result, expected);
  const cas = (call: number, ret: number, result: number, expected: number, next: number) =>
    op(OpKind.CompareAndSwap, call, ret, result, next, expected);
  assert.equal(checkKey([op(OpKind.Update, 0, 1, 0, 5), cad(2, 3, 0, 5), op(OpKind.Lookup, 4, 5, -1)]), true);
  assert.equal(checkKey([op(OpKind.Update, 0, 1, 0, 5), cad(2, 3, -16, 5)]), false);
  assert.equal(
    checkKey([op(OpKind.Update, 0, 1, 0, 5), op(OpKind.Update, 2, 3, 0, 6), cad(4, 5, 0, 5)]),
    false,
  );
  assert.equal(
    checkKey([op(OpKind.Update, 0, 1, 0, 5), cas(2, 3, 0, 5, 7), op(OpKind.Lookup, 4, 5, 7)]),
    true,
  );
  assert.equal(checkKey([op(OpKind.Update, 0, 1, 0, 5), cas(2, 3, 0, 6, 7)]), false);
  assert.equal(checkKey([cas(0, 1, -2, 6, 7), cad(2, 3, -2, 1)]), true);
});

test("checker: compute toggles are atomic read-modify-writes", () => {
  const toggle = (call: number, ret: number, result: number, arg: number) =>
    op(OpKind.ComputeToggle, call, ret, result, arg);
  // Absent -> inserted 5 (saw -1); present 5 -> deleted (saw 5).
  assert.equal(checkKey([toggle(0, 1, -1, 5), toggle(2, 3, 5, 6), op(OpKind.Lookup, 4, 5, -1)]), true);
  // Two overlapping toggles cannot both see the key absent (that would be a lost update).
  assert.equal(checkKey([toggle(0, 3, -1, 5), toggle(1, 2, -1, 6)]), false);
  // A toggle cannot see a value no one wrote.
  assert.equal(checkKey([op(OpKind.Update, 0, 1, 0, 5), toggle(2, 3, 9, 1)]), false);
});
