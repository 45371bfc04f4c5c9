/** BPF_MAP_TYPE_PERCPU_HASH: value shape, in-place updates, program-side slots (t_batch.txt, t_prog.txt). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);

function map(nrCpus = 2, cpu = 0): Htab {
  return Htab.create(
    { type: MapType.PercpuHash, keySize: 4, valueSize: 4, maxEntries: 4, flags: MapFlags.ZeroSeed },
    { privileged: true, nrCpus, cpu },
  );
}

test("per-CPU values are nrCpus x round_up(value_size, 8), padding included, as the syscall moves them", () => {
  const m = map();
  const v = new Uint8Array(new Uint32Array([1000, 1001, 1002, 1003]).buffer);
  assert.equal(m.updateElem(u32(1), v, 0), 0);
  const out = new Uint8Array(16);
  assert.equal(m.lookupElem(u32(1), out), 0);
  assert.deepEqual([...new Uint32Array(out.buffer)], [1000, 1001, 1002, 1003]);
  assert.throws(
    () => m.updateElem(u32(1), new Uint8Array(4), 0),
    { code: "EINVAL" },
    "a short buffer is refused",
  );
  assert.equal(m.updateElem(u32(1), v, 4), -22, "BPF_F_LOCK");
  assert.equal(m.updateElem(u32(1), v, 8), -22, "BPF_F_CPU is not in 6.18");
});

test("re-updating a key is in place: the iteration order does not change (t_batch.txt 're-update')", () => {
  const m = map();
  const v = new Uint8Array(16);
  // 0 and 2 share a bucket at n_buckets 4 under seed 0 (t_batch.txt uses the same pair).
  m.updateElem(u32(0), v, 0);
  m.updateElem(u32(2), v, 0);
  const first = () => {
    const k = new Uint8Array(4);
    m.getNextKey(null, k);
    return k[0];
  };
  const before = first();
  m.updateElem(u32(0), new Uint8Array(16).fill(7), 0);
  assert.equal(first(), before);
  assert.ok(m.fsck().ok);
});

test("program side: own slot by reference, other CPUs by lookupPercpuRef, new keys zero-fill other slots", () => {
  const m0 = map(2, 0);
  const m1 = Htab.attach(m0.handle, { cpu: 1 });
  assert.equal(m1.updateElemFromProgram(u32(5), u32(55), 0), 0);
  const out = new Uint8Array(16);
  m0.lookupElem(u32(5), out);
  assert.deepEqual([...new Uint32Array(out.buffer)], [0, 0, 55, 0], "cpu0 zero-filled, cpu1 = 55");
  assert.equal(m0.updateElemFromProgram(u32(5), u32(66), 0), 0);
  m0.lookupElem(u32(5), out);
  assert.deepEqual([...new Uint32Array(out.buffer)], [66, 0, 55, 0], "only this CPU's slot written");
  m0.run(() => {
    assert.equal(m0.lookupRef(u32(5))!.load32(0), 66);
    assert.equal(m0.lookupPercpuRef(u32(5), 1)!.load32(0), 55);
    assert.equal(m0.lookupPercpuRef(u32(5), 5), null, "cpu >= nr_cpu_ids gives NULL");
  });
  assert.equal(m0.updateElemFromProgram(u32(5), u32(1), 1), -17);
  assert.equal(m0.updateElemFromProgram(u32(9), u32(1), 2), -2);
  m1.close();
});
