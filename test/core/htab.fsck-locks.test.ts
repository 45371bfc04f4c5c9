/** fsck() reports a freelist lock or NO_PREALLOC grow lock left held (issue 24, finding 12). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import {
  HDR_GROW_LOCK_I32,
  HDR_RECOVERY_LOCK_I32,
  PCPU_FL_LOCK_I32,
  PCPU_OWNER_I32,
  pcpuBase,
} from "../../src/layout/layout.js";
import { markSlotDead } from "../../src/sync/slot-claim.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
/** An owner-lock word held by `slot` (sync/owner-lock.ts). */
const heldBy = (slot: number) => (slot + 1) << 1;

for (const type of [MapType.Hash, MapType.LruHash, MapType.PercpuHash]) {
  test(`fsck names a freelist lock held by a dead slot, and by a live one (type ${type})`, () => {
    const m = Htab.create({ type, keySize: 4, valueSize: 8, maxEntries: 64 }, { nrCpus: 3, cpu: 0 });
    for (let i = 0; i < 10; i++) assert.equal(m.updateElem(u32(i), new Uint8Array(m.info.valueBytes), 0), 0);
    assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
    const i32 = new Int32Array(m.handle.sab);
    // A worker in slot 1 that was terminated holding its freelist lock, not yet reaped.
    const other = Htab.attach(m.handle, { cpu: 1 });
    i32[pcpuBase(1) + PCPU_FL_LOCK_I32] = heldBy(1);
    assert.ok(markSlotDead(i32, pcpuBase(1) + PCPU_OWNER_I32));
    let r = m.fsck();
    assert.equal(r.ok, false);
    assert.deepEqual(r.errors, ["freelist lock of CPU 1 held by slot 1 (a dead slot: reap() it)"]);
    // Held by the live slot that runs the fsck: stuck all the same on a quiet map.
    i32[pcpuBase(1) + PCPU_FL_LOCK_I32] = 0;
    i32[pcpuBase(2) + PCPU_FL_LOCK_I32] = heldBy(0) | 1;
    r = m.fsck();
    assert.deepEqual(r.errors, ["freelist lock of CPU 2 held by slot 0 (this thread's slot)"]);
    i32[pcpuBase(2) + PCPU_FL_LOCK_I32] = 0;
    i32[HDR_RECOVERY_LOCK_I32] = 2 + 1;
    assert.deepEqual(m.fsck().errors, ["the recovery lock held by slot 2 (a free slot: its thread is gone)"]);
    i32[HDR_RECOVERY_LOCK_I32] = 0;
    assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
    void other;
    m.close();
  });
}

test("fsck names the NO_PREALLOC grow lock held during a quiet fsck", () => {
  const m = Htab.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 64, flags: MapFlags.NoPrealloc },
    { nrCpus: 2, cpu: 0 },
  );
  for (let i = 0; i < 10; i++) assert.equal(m.updateElem(u32(i), new Uint8Array(8), 0), 0);
  const i32 = new Int32Array(m.handle.sab);
  i32[HDR_GROW_LOCK_I32] = heldBy(1);
  const r = m.fsck();
  assert.equal(r.ok, false);
  assert.deepEqual(r.errors, ["the NO_PREALLOC grow lock held by slot 1 (a free slot: its thread is gone)"]);
  i32[HDR_GROW_LOCK_I32] = 0;
  assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
  m.close();
});
