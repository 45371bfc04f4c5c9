/**
 * A real BPF program in the loop: programs built with the instruction
 * builder, loaded with BPF_PROG_LOAD and run with BPF_PROG_TEST_RUN, share
 * kernel maps with TypeScript.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { TypedMap } from "../../src/api/typed-map.js";
import { btfDeclOf } from "../../src/btf/write.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import {
  asm,
  Helper,
  loadProgram,
  ProgType,
  program,
  R0,
  R1,
  R2,
  R6,
  R10,
} from "../../src/kernel/program.js";
import * as codecs from "../../src/map/codecs.js";
import { MapType } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const skip = kernelSkipReason();
const PACKET = new Uint8Array(64);

/** r0 = bpf_map_lookup_elem(map, &(u32)key), leaving the key on the stack at r10 - 4. */
function lookup(map: KernelMap, key: number) {
  return [
    asm.storeImm("w", R10, -4, key),
    asm.mov(R2, R10),
    asm.aluImm("add", R2, -4),
    ...asm.ldMapFd(R1, map),
    asm.call(Helper.mapLookupElem),
  ];
}

test("a program increments a value in place (an atomic add through the returned pointer) and TypeScript sees it", {
  skip,
}, () => {
  const m = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  const t = new TypedMap(m, codecs.u32, codecs.u64);
  t.set(1, 41n);
  const prog = loadProgram(
    program(
      lookup(m, 1),
      asm.jmpImm("jne", R0, 0, 2), // found: skip the "return 0"
      asm.movImm(R0, 0),
      asm.exit(),
      asm.movImm(R1, 1),
      asm.atomicAdd("dw", R0, 0, R1),
      asm.movImm(R0, 1),
      asm.exit(),
    ),
  );
  try {
    assert.equal(prog.testRun(PACKET).retval, 1);
    assert.equal(t.get(1), 42n);
    prog.testRun(PACKET, { repeat: 1000 });
    assert.equal(t.get(1), 1042n);
    t.delete(1);
    assert.equal(prog.testRun(PACKET).retval, 0, "the program sees the delete too");
  } finally {
    prog.close();
    m.close();
  }
});

test("TypeScript writes, and the program's return value shows what it read", { skip }, () => {
  const m = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  const t = new TypedMap(m, codecs.u32, codecs.u64);
  const prog = loadProgram(
    program(
      lookup(m, 2),
      asm.jmpImm("jne", R0, 0, 2),
      asm.movImm(R0, -1),
      asm.exit(),
      asm.load("dw", R0, R0, 0),
      asm.exit(),
    ),
  );
  try {
    assert.equal(prog.testRun(PACKET).retval, 0xffffffff, "absent");
    for (const v of [12345n, 7n, 0xdeadbeefn]) {
      t.set(2, v);
      assert.equal(prog.testRun(PACKET).retval, Number(v));
    }
  } finally {
    prog.close();
    m.close();
  }
});

test("per-CPU slots: a run pinned to a CPU writes that CPU's slot only", { skip }, () => {
  const m = KernelMap.create({ type: MapType.PercpuHash, keySize: 4, valueSize: 8, maxEntries: 4 });
  const n = m.info.nrCpus;
  const t = TypedMap.perCpu(m, codecs.u32, codecs.u64);
  t.set(
    3,
    Array.from({ length: n }, () => 100n),
  );
  const prog = loadProgram(
    program(
      lookup(m, 3),
      asm.jmpImm("jeq", R0, 0, 3),
      asm.load("dw", R1, R0, 0),
      asm.aluImm("add", R1, 1),
      asm.store("dw", R0, 0, R1),
      asm.movImm(R0, 0),
      asm.exit(),
    ),
  );
  try {
    const cpu = n - 1;
    prog.testRun(PACKET, { repeat: 10, cpu });
    const want = Array.from({ length: n }, (_, c) => (c === cpu ? 110n : 100n));
    assert.deepEqual(t.get(3), want);
  } finally {
    prog.close();
    m.close();
  }
});

test("bpf_spin_lock maps from both sides: the program counts under the lock, TypeScript reads and writes with BPF_F_LOCK", {
  skip,
}, () => {
  const value = codecs.struct([
    { name: "lock", codec: codecs.bpfSpinLock },
    { name: "n", codec: codecs.u32 },
  ]);
  const m = KernelMap.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 },
    { btf: { key: btfDeclOf(codecs.u32), value: btfDeclOf(value, "counter") } },
  );
  const v = new Uint8Array(8);
  v[4] = 5;
  assert.equal(m.updateElem(new Uint8Array([4, 0, 0, 0]), v, 0), 0);
  const prog = loadProgram(
    program(
      lookup(m, 4),
      asm.jmpImm("jeq", R0, 0, 8),
      asm.mov(R6, R0), // r0 is clobbered by the helper calls
      asm.mov(R1, R6),
      asm.call(Helper.spinLock),
      asm.load("w", R2, R6, 4),
      asm.aluImm("add", R2, 1),
      asm.store("w", R6, 4, R2),
      asm.mov(R1, R6),
      asm.call(Helper.spinUnlock),
      asm.movImm(R0, 2), // XDP_PASS
      asm.exit(),
    ),
    { type: ProgType.Xdp }, // socket filters may not take spin locks; XDP programs may
  );
  try {
    prog.testRun(PACKET, { repeat: 500 });
    const out = new Uint8Array(8);
    assert.equal(m.lookupElem(new Uint8Array([4, 0, 0, 0]), out, 4), 0);
    assert.equal(new DataView(out.buffer).getUint32(4, true), 505);
    v[4] = 0;
    v[5] = 1; // n = 256, written under the lock
    assert.equal(m.updateElem(new Uint8Array([4, 0, 0, 0]), v, 4), 0);
    prog.testRun(PACKET, { repeat: 10 });
    assert.equal(m.lookupElem(new Uint8Array([4, 0, 0, 0]), out, 4), 0);
    assert.equal(new DataView(out.buffer).getUint32(4, true), 266);
  } finally {
    prog.close();
    m.close();
  }
});

test("the verifier's log comes back in the error of a refused program", { skip }, () => {
  const m = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  try {
    // Dereferencing the lookup result without a NULL check: the verifier says why it refuses.
    assert.throws(
      () => loadProgram(program(lookup(m, 1), asm.load("dw", R0, R0, 0), asm.exit())),
      (e: unknown) =>
        (e as { code?: string }).code === "EACCES" &&
        /verifier refused/.test(String(e)) &&
        /R0/.test(String(e)),
    );
  } finally {
    m.close();
  }
  assert.throws(() => asm.mov(11, 0), /register r11/);
});
