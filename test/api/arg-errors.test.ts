/**
 * Wrong-typed arguments at the public entry points (issue 25): every one is
 * BpfError EINVAL whose message starts with the user's call and shows the
 * value with its type (`got "1024" (string)`), so that a string that looks
 * like a number is not shown as one. Each value is rendered here by hand,
 * not by the function under test.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BpfMap } from "../../src/api/bpf-map.js";
import { attach, createMap } from "../../src/api/create.js";
import { TypedMap } from "../../src/api/typed-map.js";
import type { Htab } from "../../src/core/htab.js";
import { MapDomain } from "../../src/domain/map-domain.js";
import { BpfError } from "../../src/errors.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import * as codecs from "../../src/map/codecs.js";
import { MapType } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";

/** Wrong values and how a message must show them. */
const BAD: [unknown, string][] = [
  ["1024", '"1024" (string)'],
  ["1", '"1" (string)'],
  [Number.NaN, "NaN (number)"],
  [-5, "-5 (number)"],
  [1.5, "1.5 (number)"],
  [null, "null (null)"],
  [{ a: 1 }, '{"a":1} (object)'],
  [[2], "[2] (array)"],
  [true, "true (boolean)"],
  [3n, "3n (bigint)"],
];

const spec = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 };
const key = new Uint8Array(4);
const value = new Uint8Array(8);

/** [the user's call as the message names it, a call with the bad value `v`]. */
const CALLS: [string, (v: never) => unknown][] = [
  ...(["type", "keySize", "valueSize", "maxEntries", "flags"] as const).map(
    (f): [string, (v: never) => unknown] => ["create", (v) => createMap({ ...spec, [f]: v }, { nrCpus: 2 })],
  ),
  ["create", (v) => createMap(spec, { nrCpus: v })],
  ["create", (v) => createMap(spec, { nrCpus: 2, cpu: v })],
  ["attach", (v) => withMap((m) => attach(m.handle, { cpu: v }))],
  ["lookup", (v) => withMap((m) => m.lookupElem(key, value, v))],
  ["lookup", (v) => withMap((m) => m.lookupElem(v, value))],
  ["lookup", (v) => withMap((m) => m.lookupElem(key, v))],
  ["update", (v) => withMap((m) => m.updateElem(key, value, v))],
  ["update", (v) => withMap((m) => m.updateElem(v, value))],
  ["update", (v) => withMap((m) => m.updateElem(key, v))],
  ["delete", (v) => withMap((m) => m.deleteElem(v))],
  ["lookupBatch", (v) => withMap((m) => m.lookupBatch({ count: v }))],
  ["lookupBatch", (v) => withMap((m) => m.lookupBatch({ count: 4, inBatch: v }))],
  ["reap", (v) => withMap((m) => m.reap(v))],
  ["slotState", (v) => withMap((m) => m.slotState(v))],
  ["keys", (v) => withMap((m) => [...new BpfMap(m).keys(v)])],
  ["codecs.bytes", (v) => codecs.bytes(v)],
  ["codecs.string", (v) => codecs.string(v)],
  ["codecs.perCpu", (v) => codecs.perCpu(codecs.u32, v)],
  ["TypedMap", (v) => withMap((m) => new TypedMap(m, v, codecs.u64))],
  ["TypedMap", (v) => withMap((m) => new TypedMap(m, codecs.u32, v))],
  ["TypedMap", (v) => new TypedMap(v, codecs.u32, codecs.u64)],
  ["BpfMap", (v) => new BpfMap(v)],
  ["create", (v) => MapDomain.create({ nrCpus: v })],
  ["create", (v) => MapDomain.create({ nrCpus: 2, cpu: v })],
  [
    "attach",
    (v) => {
      const d = MapDomain.create({ nrCpus: 2, cpu: 0 });
      try {
        return MapDomain.attach(d.handle, { cpu: v });
      } finally {
        d.close();
      }
    },
  ],
  ["set", (v) => withMap((m) => new TypedMap(m, codecs.u32, codecs.u64).set(v, 1n))],
  ["set", (v) => withMap((m) => new TypedMap(m, codecs.u32, codecs.u64).set(1, v))],
  ["get", (v) => withMap((m) => new TypedMap(m, codecs.u32, codecs.u64).get(v))],
];

function withMap<T>(fn: (m: Htab) => T): T {
  const m = createMap(spec, { nrCpus: 3, cpu: 0 });
  try {
    return fn(m);
  } finally {
    m.close();
  }
}

test("every wrong-typed argument is EINVAL naming the user's call and showing the value with its type", () => {
  let checked = 0;
  for (const [op, call] of CALLS)
    for (const [v, shown] of BAD) {
      // A value of the right type that happens to be valid is no error: skip it.
      let err: unknown;
      try {
        call(v as never);
        continue;
      } catch (e) {
        err = e;
      }
      const where = `${op} with ${shown}`;
      assert.ok(err instanceof BpfError, `${where}: threw ${String(err)}`);
      assert.equal(err.code, "EINVAL", `${where}: ${err.message}`);
      assert.equal(err.op, op, `${where}: ${err.message}`);
      assert.ok(err.message.startsWith(`${op}: `), `${where}: ${err.message}`);
      // A Uint8Array-typed argument's message shows what came instead; so do all others.
      assert.ok(err.message.includes(shown), `${where}: "${err.message}" does not show ${shown}`);
      checked++;
    }
  // Every call refuses every value but the few of the right type (a bigint value, an integer flag...).
  assert.ok(checked >= CALLS.length * BAD.length - 40, `only ${checked} refusals`);
});

test("the cpu option of createMap is refused as createMap's own error, not attach's", () => {
  assert.throws(() => createMap(spec, { nrCpus: 2, cpu: 2 }), {
    code: "EINVAL",
    message: /^create: cpu must be one of the 2 CPU slots, an integer in \[0, 2\), got 2 \(number\)/,
  });
});

test("a compared region's wrong-typed offset is -EINVAL with the value and type in lastError", () => {
  withMap((m) => {
    assert.equal(m.compareAndDeleteElem(key, value, "0" as unknown as number, 8), -22);
    assert.match(m.lastError, /got "0" \(string\) and 8 \(number\)/);
  });
});

test("passing a map's handle where a map is wanted says so", () => {
  withMap((m) => {
    assert.throws(() => new TypedMap(m.handle as never, codecs.u32, codecs.u64), {
      code: "EINVAL",
      message: /that is a map's handle; attach\(handle\) gives the map/,
    });
  });
});

const kernelSkip = kernelSkipReason();
test("a kernel map refuses wrong-typed spec fields and arguments the same way", {
  skip: kernelSkip ?? false,
}, () => {
  for (const [v, shown] of BAD) {
    if (typeof v === "number" && Number.isInteger(v) && v >= 0) continue;
    assert.throws(
      () => KernelMap.create({ ...spec, maxEntries: v as number }),
      (e: BpfError) => {
        assert.equal(e.code, "EINVAL");
        assert.ok(e.message.startsWith("create: maxEntries must be an integer"), e.message);
        assert.ok(e.message.includes(shown), `${e.message} does not show ${shown}`);
        return true;
      },
    );
  }
  const k = KernelMap.create(spec);
  try {
    assert.throws(() => k.updateElem(key, value, "1" as unknown as number), {
      message: /got "1" \(string\)/,
    });
    assert.throws(() => k.updateElem("abcd" as unknown as Uint8Array, value), {
      message: /got "abcd" \(string\)/,
    });
  } finally {
    k.close();
  }
});

test("a closed kernel map says its file descriptor is closed, not a CPU slot", {
  skip: kernelSkip ?? false,
}, () => {
  const k = KernelMap.create(spec);
  k.close();
  assert.throws(
    () => k.lookupElem(key, value),
    (e: BpfError) => e.code === "EINVAL" && /file descriptor/.test(e.message) && !/CPU slot/.test(e.message),
  );
});
