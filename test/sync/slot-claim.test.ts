/**
 * CPU slot owner words (sync/slot-claim.ts; layout.ts's row "pcpu OWNER"):
 * generation << 2 | state. A claim is one CAS FREE -> ALIVE that bumps the
 * generation; the owner releases to FREE keeping it; a reaper marks ALIVE ->
 * DEAD only for the generation it names; a refused claim changes nothing.
 * The words are a real map's per-CPU OWNER words.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { BpfError } from "../../src/errors.js";
import { computeGeometry, writeHeader } from "../../src/layout/geometry.js";
import {
  LRU_NONE,
  PCPU_CLAIM_I32,
  PCPU_OWNER_I32,
  pcpuBase,
  SLOT_ALIVE,
  SLOT_DEAD,
  SLOT_FREE,
  SLOT_STATE_MASK,
} from "../../src/layout/layout.js";
import {
  claimSlot,
  markSlotDead,
  releaseSlot,
  slotGenerationOf,
  slotStateOf,
} from "../../src/sync/slot-claim.js";
import { MapType } from "../../src/uapi.js";

const NR_CPUS = 3;
const owner = (c: number) => pcpuBase(c) + PCPU_OWNER_I32;
const claim = (c: number) => pcpuBase(c) + PCPU_CLAIM_I32;
const word = (generation: number, state: number) => (generation << 2) | state;

function slots() {
  const g = computeGeometry(4, 8, 8, NR_CPUS, false, true, LRU_NONE);
  const i32 = new Int32Array(new SharedArrayBuffer(g.totalBytes));
  writeHeader(i32, g, MapType.Hash, 0, 0);
  return i32;
}

const owners = (i32: Int32Array) => Array.from({ length: NR_CPUS }, (_, c) => i32[owner(c)]);

test("the states fit the low two bits; a word splits into generation and state", () => {
  assert.deepEqual([SLOT_FREE, SLOT_ALIVE, SLOT_DEAD, SLOT_STATE_MASK], [0, 1, 2, 3]);
  const w = word(12345, SLOT_DEAD);
  assert.equal(slotStateOf(w), SLOT_DEAD);
  assert.equal(slotGenerationOf(w), 12345);
  assert.equal(slotGenerationOf(word(0x3fff_ffff, SLOT_ALIVE)), 0x3fff_ffff, "30 bits, read unsigned");
});

test("claiming any slot takes the first free one, generation 1, ALIVE; when all are taken, EBUSY and nothing changes", () => {
  const i32 = slots();
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, -1, "this map"), 0);
  assert.deepEqual(owners(i32), [word(1, SLOT_ALIVE), 0, 0]);
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, -1, "this map"), 1);
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, -1, "this map"), 2);
  assert.deepEqual(owners(i32), [word(1, SLOT_ALIVE), word(1, SLOT_ALIVE), word(1, SLOT_ALIVE)]);
  const before = Array.from(i32);
  assert.throws(
    () => claimSlot(i32, NR_CPUS, owner, claim, -1, "this map"),
    (e: unknown) =>
      e instanceof BpfError &&
      e.code === "EBUSY" &&
      e.op === "attach" &&
      e.message.startsWith("attach: all 3 CPU slots of this map are taken"),
  );
  assert.deepEqual(Array.from(i32), before);
});

test("claiming a given slot: that one only; refused with EBUSY when taken, EINVAL when it does not exist", () => {
  const i32 = slots();
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, 2, "this map"), 2);
  assert.deepEqual(owners(i32), [0, 0, word(1, SLOT_ALIVE)], "slots 0 and 1 stay free");
  const before = Array.from(i32);
  assert.throws(
    () => claimSlot(i32, NR_CPUS, owner, claim, 2, "the domain"),
    (e: unknown) =>
      e instanceof BpfError &&
      e.code === "EBUSY" &&
      e.message.includes("CPU slot 2 of the domain is already taken"),
  );
  for (const bad of [NR_CPUS, 7, 1.5])
    assert.throws(
      () => claimSlot(i32, NR_CPUS, owner, claim, bad, "this map"),
      (e: unknown) => e instanceof BpfError && e.code === "EINVAL" && e.message.startsWith("attach: cpu"),
    );
  assert.deepEqual(Array.from(i32), before, "refused claims change nothing");
  // Claiming any slot now skips the taken one.
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, -1, "this map"), 0);
});

test("release keeps the generation; the next claim bumps it; a reap names the generation it means", () => {
  const i32 = slots();
  const w = owner(1);
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, 1, "this map"), 1);
  releaseSlot(i32, w);
  assert.equal(i32[w], word(1, SLOT_FREE), "free, generation kept");
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, 1, "this map"), 1);
  assert.equal(i32[w], word(2, SLOT_ALIVE), "the second claim is generation 2");
  // A reap meant for the first claim must not hit the second.
  assert.equal(markSlotDead(i32, w, 1), false);
  assert.equal(i32[w], word(2, SLOT_ALIVE));
  assert.equal(markSlotDead(i32, w, 2), true);
  assert.equal(i32[w], word(2, SLOT_DEAD), "dead, same generation");
  assert.equal(markSlotDead(i32, w, 2), false, "already dead: this call did not mark it");
  assert.equal(markSlotDead(i32, w), false);
  // A dead slot is not free: it cannot be claimed until recovered.
  assert.throws(
    () => claimSlot(i32, NR_CPUS, owner, claim, 1, "this map"),
    (e: unknown) => (e as BpfError).code === "EBUSY",
  );
  assert.equal(i32[w], word(2, SLOT_DEAD));
  // The recoverer frees it (DEAD -> FREE), and the next claim is generation 3.
  releaseSlot(i32, w);
  assert.equal(i32[w], word(2, SLOT_FREE));
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, -1, "this map"), 0, "the first free slot is still 0");
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, -1, "this map"), 1);
  assert.equal(i32[w], word(3, SLOT_ALIVE));
  // Without a generation, a reap marks whatever claim is alive.
  assert.equal(markSlotDead(i32, w), true);
  assert.equal(i32[w], word(3, SLOT_DEAD));
});

test("a free or dead slot cannot be marked dead", () => {
  const i32 = slots();
  assert.equal(markSlotDead(i32, owner(0)), false);
  assert.equal(markSlotDead(i32, owner(0), 0), false);
  assert.equal(i32[owner(0)], 0);
});

test("the generation wraps in 30 bits: the claim after 0x3fffffff is generation 0, ALIVE", () => {
  const i32 = slots();
  i32[owner(0)] = word(0x3fff_ffff, SLOT_FREE);
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, 0, "this map"), 0);
  assert.equal(i32[owner(0)], word(0, SLOT_ALIVE));
  assert.equal(slotGenerationOf(i32[owner(0)]), 0);
});

type SlotOp =
  | { kind: "claim"; want: number }
  | { kind: "release"; slot: number }
  | { kind: "reap"; slot: number; gen: number | undefined };
type SlotModel = { gen: number; state: number }[];

/** A claim against the model: the slot it must get, or EBUSY when the model has none free. */
function claimStep(i32: Int32Array, model: SlotModel, want: number): void {
  const free =
    want >= 0 ? (model[want].state === SLOT_FREE ? want : -1) : model.findIndex((m) => m.state === SLOT_FREE);
  if (free < 0) {
    assert.throws(
      () => claimSlot(i32, NR_CPUS, owner, claim, want, "m"),
      (e: unknown) => (e as BpfError).code === "EBUSY",
    );
    return;
  }
  assert.equal(claimSlot(i32, NR_CPUS, owner, claim, want, "m"), free);
  model[free] = { gen: model[free].gen + 1, state: SLOT_ALIVE };
}

/** Apply `o` to the words and to the model, checking the function's answer against the model's. */
function step(i32: Int32Array, model: SlotModel, o: SlotOp): void {
  if (o.kind === "claim") claimStep(i32, model, o.want);
  else if (o.kind === "release") {
    // Only an owner (ALIVE) or a recoverer (DEAD) releases.
    if (model[o.slot].state === SLOT_FREE) return;
    releaseSlot(i32, owner(o.slot));
    model[o.slot].state = SLOT_FREE;
  } else {
    const m = model[o.slot];
    const hits = m.state === SLOT_ALIVE && (o.gen === undefined || o.gen === m.gen);
    assert.equal(markSlotDead(i32, owner(o.slot), o.gen), hits);
    if (hits) m.state = SLOT_DEAD;
  }
}

test("model: any run of claims, releases and reaps keeps each word equal to a per-slot (generation, state) model", () => {
  const op: fc.Arbitrary<SlotOp> = fc.oneof(
    fc.record({ kind: fc.constant("claim" as const), want: fc.integer({ min: -1, max: NR_CPUS - 1 }) }),
    fc.record({ kind: fc.constant("release" as const), slot: fc.nat(NR_CPUS - 1) }),
    fc.record({
      kind: fc.constant("reap" as const),
      slot: fc.nat(NR_CPUS - 1),
      gen: fc.option(fc.nat(4), { nil: undefined }),
    }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const i32 = slots();
      const model: SlotModel = Array.from({ length: NR_CPUS }, () => ({ gen: 0, state: SLOT_FREE }));
      for (const o of ops) {
        step(i32, model, o);
        assert.deepEqual(
          owners(i32),
          model.map((m) => word(m.gen, m.state)),
        );
      }
    }),
  );
});
