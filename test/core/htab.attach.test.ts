/**
 * attach() with a bad handle or slot (issue 24 finding 10): every mistake is
 * a BpfError EINVAL that names the value, and no failed attach keeps a slot.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab, type MapHandle } from "../../src/core/htab.js";
import { MapDomain } from "../../src/domain/map-domain.js";
import { BpfError } from "../../src/errors.js";
import { MapType } from "../../src/uapi.js";

const spec = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 } as const;

function throwsEinval(fn: () => unknown, ...words: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(
      e instanceof BpfError,
      `a BpfError, not ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`,
    );
    assert.equal(e.code, "EINVAL");
    for (const w of words) assert.ok(e.message.includes(w), `"${e.message}" names ${w}`);
    return true;
  });
}

/** Every slot but the creator's is free: a failed attach kept none. */
function noSlotKept(m: { slotState(c: number): string; cpu: number }, nrCpus: number): void {
  for (let c = 0; c < nrCpus; c++) if (c !== m.cpu) assert.equal(m.slotState(c), "free", `slot ${c} leaked`);
}

test("attach with a fake memory: BpfError EINVAL, and the slot is not kept", () => {
  const m = Htab.create(spec, { nrCpus: 2, cpu: 0 });
  const fake = { buffer: m.handle.sab } as unknown as MapHandle["memory"];
  throwsEinval(() => Htab.attach({ sab: m.handle.sab, memory: fake }), "memory");
  noSlotKept(m, 2);
  // The one free slot is still there to take.
  const w = Htab.attach(m.handle, { cpu: 1 });
  w.close();
  m.close();
  const d = MapDomain.create({ nrCpus: 2, cpu: 0, maxMaps: 2, maxBytes: 1 << 20 });
  throwsEinval(() => MapDomain.attach({ sab: d.handle.sab, memory: fake as never }), "memory");
  noSlotKept(d, 2);
  d.close();
});

test("attach with a memory that is not the map's, or not shared: EINVAL, no slot kept", () => {
  const m = Htab.create(spec, { nrCpus: 2, cpu: 0 });
  const other = new (
    globalThis as unknown as { WebAssembly: { Memory: new (d: object) => unknown } }
  ).WebAssembly.Memory({ initial: 1, maximum: 1 });
  throwsEinval(() => Htab.attach({ sab: m.handle.sab, memory: other as MapHandle["memory"] }), "memory");
  noSlotKept(m, 2);
  m.close();
});

test("attach with memory: null is BpfError EINVAL, not TypeError", () => {
  const m = Htab.create(spec, { nrCpus: 2, cpu: 0 });
  throwsEinval(
    () => Htab.attach({ sab: m.handle.sab, memory: null as unknown as MapHandle["memory"] }),
    "memory",
    "null",
  );
  noSlotKept(m, 2);
  m.close();
});

for (const [what, cpu, shown] of [
  ["NaN", Number.NaN, "NaN (number)"],
  ["-5", -5, "-5 (number)"],
  ['"1"', "1", '"1" (string)'],
  ["1.5", 1.5, "1.5 (number)"],
  ["null", null, "null"],
  ["Infinity", Number.POSITIVE_INFINITY, "Infinity (number)"],
] as const) {
  test(`attach with cpu ${what}: EINVAL showing the value and its type, not "any free slot"`, () => {
    const m = Htab.create(spec, { nrCpus: 3, cpu: 0 });
    throwsEinval(() => Htab.attach(m.handle, { cpu: cpu as unknown as number }), shown);
    noSlotKept(m, 3);
    m.close();
  });
  test(`create and MapDomain attach with cpu ${what}: EINVAL too`, () => {
    throwsEinval(() => Htab.create(spec, { nrCpus: 3, cpu: cpu as unknown as number }), shown);
    const d = MapDomain.create({ nrCpus: 3, cpu: 0, maxMaps: 2, maxBytes: 1 << 20 });
    throwsEinval(() => MapDomain.attach(d.handle, { cpu: cpu as unknown as number }), shown);
    noSlotKept(d, 3);
    d.close();
  });
}
