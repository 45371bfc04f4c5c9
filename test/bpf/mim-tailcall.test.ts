/**
 * Map-in-map and tail calls in clang-built objects (test/fixtures/bpf/mim.c,
 * tailcall.c), on htab and in the kernel: identical return values, globals
 * and map contents, before and after user space swaps inner maps and
 * rewrites PROG_ARRAY slots.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openObject } from "../../src/bpf/loader.js";
import { LoadedObject, MAX_TAIL_CALLS } from "../../src/bpf/object.js";
import { BpfError } from "../../src/errors.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import { KernelObject } from "../../src/kernel/object.js";
import { walkKeys } from "../../src/map/key-walk.js";
import type { RawMap } from "../../src/map/raw-map.js";
import { MapType } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";
import { clangSkipReason, compileFixture } from "./kernel-object.js";

const noClang = clangSkipReason();
const noKernel = noClang ?? kernelSkipReason();
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);

function dump(m: RawMap): string[] {
  const out: string[] = [];
  const v = new Uint8Array(m.info.valueSize);
  for (const k of walkKeys(m)) if (m.lookupElem(k, v) === 0) out.push(`${hex(k)}=${hex(v)}`);
  return out.sort();
}

function pkt(seed: number): Uint8Array {
  const p = new Uint8Array(16);
  let x = seed * 2654435761 + 3;
  for (let i = 0; i < p.length; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    p[i] = x & 0xff;
  }
  return p;
}

test("the loader reads map-in-map templates and initial slots, and PROG_ARRAY slots naming programs", {
  skip: noClang,
}, () => {
  const mim = openObject(compileFixture("mim"), { name: "mim" });
  const byName = new Map(mim.maps.map((m, i) => [m.name, { ...m, i }]));
  const arr = byName.get("outer_arr");
  assert.deepEqual(
    [arr?.type, arr?.keySize, arr?.valueSize, arr?.maxEntries, arr?.inner?.type, arr?.inner?.valueSize],
    [MapType.ArrayOfMaps, 4, 4, 3, MapType.Hash, 8],
  );
  assert.deepEqual(arr?.slots, [
    { index: 0, map: byName.get("inner_a")?.i },
    { index: 2, map: byName.get("inner_b")?.i },
  ]);
  assert.deepEqual(byName.get("outer_hash")?.slots, [{ index: 5, map: byName.get("inner_c")?.i }]);
  const tc = openObject(compileFixture("tailcall"), { name: "tailcall" });
  assert.deepEqual(tc.maps.find((m) => m.name === "jumps")?.slots, [
    { index: 0, program: "leaf" },
    { index: 1, program: "again" },
  ]);
});

test("map-in-map (ARRAY_OF_MAPS, HASH_OF_MAPS, initial slots, swapped and removed inner maps): identical on htab and in the kernel", {
  skip: noKernel,
}, () => {
  const bytes = compileFixture("mim");
  const spec = openObject(bytes, { name: "mim" });
  const obj = LoadedObject.load(bytes, { name: "mim" });
  const k = KernelObject.fromSpec(spec);
  const extraK = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  const extra = obj.domain.createMap({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  const inners = ["inner_a", "inner_b", "inner_c"];
  const outcomes = new Map<number, number>();
  const compare = (round: string) => {
    for (const n of inners) assert.deepEqual(dump(obj.map(n)), dump(k.map(n)), `${round}: ${n}`);
    assert.deepEqual(dump(extra), dump(extraK), `${round}: the swapped-in map`);
    assert.equal(hex(obj.global(".bss").bytes), hex(k.global(".bss").read()), `${round}: seen[]`);
  };
  try {
    const runs = (from: number, n: number) => {
      for (let i = from; i < from + n; i++) {
        const p = pkt(i);
        const mine = obj.program("mim").run(p);
        const theirs = k.program("mim").prog.testRun(p);
        assert.equal(mine.retval, theirs?.retval, `packet ${i}`);
        outcomes.set(mine.retval, (outcomes.get(mine.retval) ?? 0) + 1);
      }
    };
    runs(0, 150);
    compare("initial slots");
    // Swap: array slot 0 now holds inner_c, slot 1 the new map; the hash of maps gains key 2 and loses key 5.
    const idOf = (m: RawMap) => u32(m.info.id);
    assert.equal(obj.mapInMap("outer_arr").updateElem(u32(0), idOf(obj.map("inner_c")), 0), 0);
    assert.equal(obj.mapInMap("outer_arr").updateElem(u32(1), idOf(extra), 0), 0);
    assert.equal(obj.mapInMap("outer_hash").updateElem(u32(2), idOf(extra), 0), 0);
    assert.equal(obj.mapInMap("outer_hash").deleteElem(u32(5)), 0);
    assert.equal(k.map("outer_arr").updateElem(u32(0), u32(k.map("inner_c").fd), 0), 0);
    assert.equal(k.map("outer_arr").updateElem(u32(1), u32(extraK.fd), 0), 0);
    assert.equal(k.map("outer_hash").updateElem(u32(2), u32(extraK.fd), 0), 0);
    assert.equal(k.map("outer_hash").deleteElem(u32(5)), 0);
    runs(150, 150);
    compare("after the swap");
    for (const m of [...inners.map((n) => obj.map(n)), extra])
      assert.equal((m as ReturnType<typeof obj.map>).fsck().ok, true);
  } finally {
    extraK.close();
    k.close();
  }
  // Every path of the program was taken: no inner map (1), an update in place (2), an insert (103) and E2BIG on a full inner map (96).
  for (const r of [1, 2, 103, 96]) assert.ok(outcomes.has(r), `outcome ${r} seen: ${[...outcomes]}`);
});

test("tail calls (initial PROG_ARRAY slots, empty and out-of-range slots, the 33-call limit, slots rewritten): identical on htab and in the kernel", {
  skip: noKernel,
}, () => {
  const bytes = compileFixture("tailcall");
  const spec = openObject(bytes, { name: "tailcall" });
  const obj = LoadedObject.load(bytes, { name: "tailcall" });
  const k = KernelObject.fromSpec(spec);
  const seen = new Set<number>();
  try {
    const round = (label: string) => {
      for (const slot of [0, 1, 2, 3, 4, 200]) {
        const p = new Uint8Array(16);
        p[0] = slot;
        const mine = obj.program("entry").run(p);
        const theirs = k.program("entry").prog.testRun(p);
        assert.equal(mine.retval, theirs?.retval, `${label}: slot ${slot}`);
        assert.equal(hex(obj.global(".bss").bytes), hex(k.global(".bss").read()), `${label}: slot ${slot}`);
        seen.add(mine.retval);
      }
    };
    round("initial slots");
    obj.setTailCall("jumps", 2, "leaf");
    obj.setTailCall("jumps", 0, "again");
    k.setTailCall("jumps", 2, "leaf");
    k.setTailCall("jumps", 0, "again");
    round("rewritten slots");
  } finally {
    k.close();
  }
  // leaf (40), again until the limit (50), fall-through (60).
  for (const r of [40, 50, 60]) assert.ok(seen.has(r), `return value ${r} seen: ${[...seen]}`);
  // Each run reaching `again` runs it MAX_TAIL_CALLS times (entry's jump is the first of the 33 calls, the 34th falls through).
  const agains = new DataView(obj.global(".bss").variable("agains").slice().buffer).getBigUint64(0, true);
  assert.ok(agains > 0n && agains % BigInt(MAX_TAIL_CALLS) === 0n, `agains ${agains}`);
});

test("a tail call from a subprogram returns the callee's r0 to the subprogram's caller (htab only: the kernel needs func info to load it)", {
  skip: noClang,
}, () => {
  const obj = LoadedObject.load(compileFixture("tailcall"), { name: "tailcall" });
  const run = (slot: number) =>
    obj.program("entry_sub").run(Uint8Array.from([slot, 0, ...new Uint8Array(14)])).retval;
  assert.deepEqual([0, 1, 2, 9].map(run), [140, 150, 109, 116]);
  obj.setTailCall("jumps", 2, "leaf");
  assert.equal(run(2), 140);
  assert.throws(() => obj.setTailCall("jumps", 4, "leaf"), /E2BIG|max_entries/);
  assert.throws(() => obj.setTailCall("jumps", 0, "nope"), /no program 'nope'/);
});

test("a PROG_ARRAY holds programs of the type of its users: another type is refused (EINVAL), as bpf_prog_map_compatible() does", {
  skip: noClang,
}, () => {
  const src = `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, __u32); } jt SEC(".maps");
SEC("xdp") int x(struct xdp_md *c) { bpf_tail_call(c, &jt, 0); return 1; }
SEC("socket") int s(struct __sk_buff *k) { return 0; }
SEC("xdp") int y(struct xdp_md *c) { return 7; }
char LICENSE[] SEC("license") = "GPL";`;
  const dir = mkdtempSync(join(tmpdir(), "htab-owner-"));
  writeFileSync(join(dir, "o.c"), src);
  execFileSync("clang-19", [
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-mcpu=v4",
    "-I/usr/include/x86_64-linux-gnu",
    "-c",
    join(dir, "o.c"),
    "-o",
    join(dir, "o.o"),
  ]);
  const bytes = new Uint8Array(readFileSync(join(dir, "o.o")));
  const obj = LoadedObject.load(bytes, { name: "o" });
  if (noKernel === undefined) {
    const k = KernelObject.fromSpec(openObject(bytes, { name: "o" }));
    try {
      assert.throws(
        () => k.setTailCall("jt", 0, "s"),
        (e: unknown) => e instanceof BpfError && e.code === "EINVAL",
        "the kernel refuses it too",
      );
      k.setTailCall("jt", 0, "y");
      assert.equal(k.program("x").prog.testRun(new Uint8Array(14)).retval, 7);
    } finally {
      k.close();
    }
  }
  assert.throws(
    () => obj.setTailCall("jt", 0, "s"),
    (e: unknown) =>
      e instanceof BpfError && e.code === "EINVAL" && /program 's' is of type 1/.test(e.message),
  );
  obj.setTailCall("jt", 0, "y");
  assert.equal(obj.program("x").run(new Uint8Array(14)).retval, 7);
});
