/**
 * LRU eviction driven from a program (test/fixtures/bpf/lru.c): 64 keys
 * through 16-entry LRU_HASH maps, with the common list and with
 * BPF_F_NO_COMMON_LRU, on htab and in the kernel on the same CPU: identical
 * map contents (which keys were evicted) and counters after every packet.
 *
 * A todo: htab keeps fewer keys than the kernel here. With 2 possible CPUs,
 * after the second packet the kernel's NO_COMMON_LRU map holds 4,7,28,29,54
 * and htab's none; after the third the kernel's common map holds 13 keys and
 * htab's none. The cause is in the core, not this runtime, and shows on a
 * bare Htab: an LRU_HASH of 16 entries (nrCpus 2) full of 16 keys, a 17th
 * key inserted by updateElemFromProgram() inside run() returns -ENOMEM and
 * leaves the map EMPTY (all 16 keys evicted, their elements waiting in limbo
 * for the section, so none is reused), where the kernel evicts a batch and
 * inserts (its LRU nodes are reused at once). With updateElem() outside a
 * section the same keys keep 13-14 entries.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { openObject } from "../../src/bpf/loader.js";
import { LoadedObject } from "../../src/bpf/object.js";
import { possibleCpus } from "../../src/kernel/bpf-syscall.js";
import { walkKeys } from "../../src/map/key-walk.js";
import type { RawMap } from "../../src/map/raw-map.js";
import { kernelSkipReason } from "../helpers/kernel.js";
import { clangSkipReason, compileFixture, KernelObject } from "./kernel-object.js";

const noKernel = clangSkipReason() ?? kernelSkipReason();
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function keys(m: RawMap): string[] {
  const v = new Uint8Array(m.info.valueSize);
  const out: string[] = [];
  for (const k of walkKeys(m)) if (m.lookupElem(k, v) === 0) out.push(`${hex(k)}=${hex(v)}`);
  return out.sort();
}

test("LRU eviction from a program (common list, BPF_F_NO_COMMON_LRU): identical contents on htab and in the kernel, packet by packet", {
  skip: noKernel,
  todo: "htab's LRU evicts more keys than the kernel inside program sections (see the header)",
}, () => {
  const bytes = compileFixture("lru");
  const spec = openObject(bytes, { name: "lru" });
  const obj = LoadedObject.load(bytes, { name: "lru", nrCpus: possibleCpus(), cpu: 0 });
  const k = new KernelObject(spec, "lru");
  let x = 12345;
  const next = () => {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    return x;
  };
  try {
    for (let i = 0; i < 60; i++) {
      const p = new Uint8Array(32);
      for (let j = 0; j < 32; j++) p[j] = next() & 0xff;
      const mine = obj.program("lru").run(p, { cpu: 0 });
      const theirs = k.prog.testRun(p, { cpu: 0 });
      assert.equal(mine.retval, theirs.retval);
      assert.deepEqual(keys(obj.map("common")), keys(k.maps[0]), `packet ${i}: common`);
      assert.deepEqual(keys(obj.map("percpu_lists")), keys(k.maps[1]), `packet ${i}: percpu_lists`);
      assert.equal(hex(obj.global(".bss").bytes), hex(k.global(spec, ".bss")), `packet ${i}: counters`);
    }
    assert.equal(obj.map("common").fsck().ok, true);
    assert.equal(obj.map("percpu_lists").fsck().ok, true);
    assert.equal(keys(obj.map("common")).length, 16, "the map filled and evicted");
  } finally {
    k.close();
    obj.close();
  }
});
