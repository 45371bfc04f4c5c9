/**
 * clang-built BPF objects (test/fixtures/bpf/*.c, compiled here with
 * clang-19 -O2 -g -target bpf -mcpu=v4) opened by the ELF loader and run on
 * htab maps by the interpreter; where the kernel is usable, the same linked
 * program also runs in the kernel (BPF_PROG_TEST_RUN) and the return
 * values, globals and map contents must be identical.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { BpfMap } from "../../src/api/bpf-map.js";
import { execElf } from "../../src/bpf/exec.js";
import { BpfRunError } from "../../src/bpf/interp.js";
import { asm, Helper } from "../../src/bpf/isa.js";
import { openObject, ProgType } from "../../src/bpf/loader.js";
import { LoadedObject } from "../../src/bpf/object.js";
import type { Htab } from "../../src/core/htab.js";
import { BpfError } from "../../src/errors.js";
import { possibleCpus } from "../../src/kernel/bpf-syscall.js";
import { KernelObject } from "../../src/kernel/object.js";
import { walkKeys } from "../../src/map/key-walk.js";
import type { RawMap } from "../../src/map/raw-map.js";
import { MapFlags } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";
import { HASH_U32_U64, ldMap, xdpSpec } from "./asm-spec.js";
import { clangSkipReason, compileFixture } from "./kernel-object.js";

const noClang = clangSkipReason();
const noKernel = noClang ?? kernelSkipReason();
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Every entry of a map, sorted by key, as "key=value" hex. */
function dump(m: RawMap): string[] {
  const out: string[] = [];
  const v = new Uint8Array(m.info.valueSize);
  for (const k of walkKeys(m)) {
    if (m.lookupElem(k, v) === 0) out.push(`${hex(k)}=${hex(v)}`);
  }
  return out.sort();
}

function packet(seed: number, len = 64): Uint8Array {
  const p = new Uint8Array(len);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < len; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    p[i] = x & 0xff;
  }
  return p;
}

/** Compile a C source given here (for the loader's refusals) and return the object. */
function compileSource(name: string, text: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "htab-bpf-src-"));
  writeFileSync(join(dir, `${name}.c`), text);
  execFileSync("clang-19", [
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-mcpu=v4",
    "-I/usr/include/x86_64-linux-gnu",
    "-c",
    join(dir, `${name}.c`),
    "-o",
    join(dir, `${name}.o`),
  ]);
  return new Uint8Array(readFileSync(join(dir, `${name}.o`)));
}

test("the loader reads maps, globals and programs as libbpf names them", { skip: noClang }, () => {
  const spec = openObject(compileFixture("seed003"), { name: "seed003" });
  assert.equal(spec.license, "GPL");
  assert.deepEqual(
    spec.maps.map((m) => [
      m.name,
      m.type,
      m.keySize,
      m.valueSize,
      m.maxEntries,
      m.flags,
      m.spinLockOffset,
      m.global?.section,
    ]),
    [
      ["concurrent_map", 1, 4, 8, 100, 0, 0, undefined],
      ["seed003.bss", 2, 4, 8, 1, 1 << 10, undefined, ".bss"],
    ],
  );
  assert.deepEqual(
    spec.programs.map((p) => [p.name, p.section, p.type]),
    [["sys_enter_count", "xdp", ProgType.Xdp]],
  );
  const g = openObject(compileFixture("globals_calls"), { name: "globals_calls" });
  assert.deepEqual(
    g.maps.map((m) => [
      m.name,
      m.valueSize,
      m.flags,
      m.global?.readonly,
      m.global?.vars.map((v) => `${v.name}@${v.offset}:${v.size}`),
    ]),
    [
      ["globals_.rodata", 4, (1 << 7) | (1 << 10), true, ["scale@0:4"]],
      ["globals_.data", 8, 1 << 10, false, ["runs@0:8"]],
      ["globals_.bss", 24, 1 << 10, false, ["last_loop@0:4", "sum_bytes@8:8", "mixed@16:8"]],
    ],
  );
  // The three .text subprograms are appended once each after the program's own code.
  const p = g.programs[0];
  const calls = p.insns.filter((x) => x.code === 0x85 && x.src === 1).length;
  assert.ok(calls >= 4, `expected the calls to mix/fold3/signed_ops, saw ${calls}`);
});

test("seed 003 (global atomic counter, spin-locked count in a hash value) on htab: N runs count N", {
  skip: noClang,
}, () => {
  const obj = LoadedObject.load(compileFixture("seed003"), { name: "seed003" });
  const prog = obj.program("sys_enter_count");
  const r = prog.run(packet(1), { repeat: 25 });
  assert.equal(r.retval, 2); // XDP_PASS
  const counter = obj.global(".bss").variable("counter");
  assert.equal(new DataView(counter.buffer, counter.byteOffset, 8).getBigUint64(0, true), 25n);
  assert.deepEqual(dump(obj.map("concurrent_map")), ["00000000=0000000019000000"]);
  assert.equal(obj.map("concurrent_map").fsck().ok, true);
});

test("seed 003 on htab and in the kernel: identical return value, counter and map", {
  skip: noKernel,
}, () => {
  const bytes = compileFixture("seed003");
  const spec = openObject(bytes, { name: "seed003" });
  const obj = LoadedObject.load(bytes, { name: "seed003" });
  const k = KernelObject.fromSpec(spec);
  const kprog = k.programList[0];
  try {
    for (let i = 0; i < 3; i++) {
      const mine = obj.program("sys_enter_count").run(packet(i), { repeat: 7 });
      const theirs = kprog.run(packet(i), { repeat: 7 });
      assert.equal(mine.retval, theirs.retval);
    }
    assert.equal(hex(obj.global(".bss").bytes), hex(k.global(".bss").read()));
    assert.deepEqual(dump(obj.map("concurrent_map")), dump(k.mapList[0]));
    assert.deepEqual(dump(obj.map("concurrent_map")), ["00000000=0000000015000000"]);
  } finally {
    k.close();
  }
});

test("globals and bpf-to-bpf calls on htab and in the kernel: identical return values and globals, packet by packet", {
  skip: noKernel,
}, () => {
  const bytes = compileFixture("globals_calls");
  const spec = openObject(bytes, { name: "globals_calls" });
  const obj = LoadedObject.load(bytes, { name: "globals_calls" });
  const k = KernelObject.fromSpec(spec);
  const kprog = k.programList[0];
  try {
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const pkt = packet(100 + i, 14 + (i % 60));
      const mine = obj.program("globals_calls").run(pkt);
      const theirs = kprog.run(pkt);
      assert.equal(mine.retval, theirs.retval, `packet ${i}`);
      seen.add(mine.retval);
      for (const s of [".data", ".bss", ".rodata"])
        assert.equal(hex(obj.global(s).bytes), hex(k.global(s).read()), `packet ${i}, ${s}`);
    }
    assert.deepEqual([...seen].sort(), [2, 3], "both return values occur");
    // .rodata is configuration from TypeScript before the run; the program cannot write it.
    assert.equal(hex(obj.global(".rodata").variable("scale")), "07000000");
  } finally {
    k.close();
  }
});

/** map_flags.c on both backends, packet by packet: return values, the helpers' results (.bss) and both maps. */
function mapFlagsDifferential(keys: number, packets: number): bigint[] {
  const bytes = compileFixture("map_flags");
  const spec = openObject(bytes, { name: "map_flags" });
  const obj = LoadedObject.load(bytes, { name: "map_flags" });
  const k = KernelObject.fromSpec(spec);
  const kprog = k.programList[0];
  const seen: bigint[] = [];
  try {
    for (let i = 0; i < packets; i++) {
      const pkt = packet(7 + i, 20);
      pkt[0] %= keys;
      const mine = obj.program("map_flags").run(pkt);
      const theirs = kprog.run(pkt);
      assert.equal(mine.retval, theirs.retval, `packet ${i}`);
      assert.equal(
        hex(obj.global(".bss").bytes),
        hex(k.global(".bss").read()),
        `packet ${i}: helper results`,
      );
      assert.deepEqual(dump(obj.map("small")), dump(k.mapList[0]), `packet ${i}: small`);
      assert.deepEqual(dump(obj.map("lru")), dump(k.mapList[1]), `packet ${i}: lru`);
      seen.push(...new BigInt64Array(obj.global(".bss").bytes.slice().buffer));
    }
    assert.equal(obj.map("small").fsck().ok, true);
    assert.equal(obj.map("lru").fsck().ok, true);
  } finally {
    k.close();
  }
  return seen;
}

test("the update flags' errors (EEXIST, ENOENT, EINVAL) and deletes from a program, HASH and LRU_HASH: identical on htab and in the kernel", {
  skip: noKernel,
}, () => {
  const seen = mapFlagsDifferential(4, 30); // keys 0..3 in a 4-entry map: never full
  for (const e of [0n, -17n, -2n, -22n]) assert.ok(seen.includes(e), `result ${e} occurred`);
});

// A full map: replaces inside the program's section never fail and no fifth key gets in
// (test/core/htab.section-replace.test.ts holds the core's side of it).
test("a full map too (E2BIG): identical on htab and in the kernel", {
  skip: noKernel,
}, () => {
  const seen = mapFlagsDifferential(7, 30); // keys 0..6 in a 4-entry map
  assert.ok(seen.includes(-7n), "E2BIG occurred");
});

test("XDP context: the xdp_md fields BPF_PROG_TEST_RUN fills, identical on htab and in the kernel", {
  skip: noKernel,
}, () => {
  const bytes = compileFixture("xdp_ctx");
  const spec = openObject(bytes, { name: "xdp_ctx" });
  const obj = LoadedObject.load(bytes, { name: "xdp_ctx" });
  const k = KernelObject.fromSpec(spec);
  const kprog = k.programList[0];
  try {
    for (const n of [14, 64, 1500]) {
      const mine = obj.program("xdp_ctx").run(packet(n, n));
      assert.equal(mine.retval, kprog.run(packet(n, n)).retval);
      assert.equal(mine.retval, 1_000_000 + n + 500);
    }
  } finally {
    k.close();
  }
});

test("per-CPU runs: run({ cpu }) uses that CPU's slot of a PERCPU_HASH and answers get_smp_processor_id; identical in the kernel", {
  skip: noKernel,
}, () => {
  const nrCpus = possibleCpus();
  if (nrCpus < 2) return;
  const bytes = compileFixture("percpu");
  const spec = openObject(bytes, { name: "percpu" });
  const obj = LoadedObject.load(bytes, { name: "percpu", nrCpus });
  const k = KernelObject.fromSpec(spec);
  const kprog = k.programList[0];
  try {
    for (const [cpu, repeat] of [
      [0, 3],
      [1, 2],
      [0, 1],
    ]) {
      const mine = obj.program("percpu").run(packet(cpu), { cpu, repeat });
      const theirs = kprog.run(packet(cpu), { cpu, repeat });
      assert.equal(mine.retval, theirs.retval);
      assert.equal(hex(obj.global(".data").bytes), hex(k.global(".data").read()), `after cpu ${cpu}`);
      assert.equal(obj.global(".data").bytes[0], cpu);
    }
    // A per-CPU value as the syscall interface moves it: nrCpus slots of round_up(8, 8) bytes.
    const mineV = new Uint8Array(8 * nrCpus);
    const theirsV = new Uint8Array(8 * nrCpus);
    assert.equal(obj.map("hits").lookupElem(new Uint8Array(4), mineV), 0);
    assert.equal(k.mapList[0].lookupElem(new Uint8Array(4), theirsV), 0);
    assert.equal(hex(mineV), hex(theirsV));
    assert.equal(new DataView(mineV.buffer).getBigUint64(0, true), 4n);
    assert.equal(new DataView(mineV.buffer).getBigUint64(8, true), 2n);
  } finally {
    k.close();
  }
});

test("two workers run seed 003 at once on CPU slots 0 and 1 of the same maps: the counter and the locked count are both 2R", {
  skip: noClang,
}, async () => {
  const R = 400;
  const obj = LoadedObject.load(compileFixture("seed003"), { name: "seed003", nrCpus: 4 });
  const worker = new URL("../fixtures/bpf/object-worker.js", import.meta.url);
  const runs = [1, 2].map(
    (cpu) =>
      new Promise<{ retval: number; cpu: number }>((resolve, reject) => {
        const w = new Worker(worker, {
          workerData: { handle: obj.handle(), cpu, program: "sys_enter_count", repeat: R },
        });
        w.once("message", resolve);
        w.once("error", reject);
      }),
  );
  const done = await Promise.all(runs);
  assert.deepEqual(
    done.map((d) => [d.retval, d.cpu]),
    [
      [2, 1],
      [2, 2],
    ],
  );
  assert.equal(
    new DataView(obj.global(".bss").variable("counter").slice().buffer).getBigUint64(0, true),
    BigInt(2 * R),
  );
  const count = new Uint8Array(4);
  new DataView(count.buffer).setInt32(0, 2 * R, true);
  assert.deepEqual(dump(obj.map("concurrent_map")), [`00000000=00000000${hex(count)}`]);
  assert.equal(obj.map("concurrent_map").fsck().ok, true);
});

test("for_each_map_elem walks a HASH map with a callback (stop included), map_lookup_percpu_elem reads another CPU's slot", {
  skip: noClang,
}, () => {
  const obj = LoadedObject.load(compileFixture("foreach"), { name: "foreach", nrCpus: 4 });
  const table = obj.map("table");
  const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
  const u64 = (n: bigint) => new Uint8Array(new BigUint64Array([n]).buffer);
  for (let k = 1; k <= 10; k++) assert.equal(table.updateElem(u32(k), u64(BigInt(k * 100)), 0), 0);
  // CPU 2's slot of pcpu[0] = 77, the others 0.
  const pv = new Uint8Array(8 * 4);
  new DataView(pv.buffer).setBigUint64(16, 77n, true);
  assert.equal(obj.map("pcpu").updateElem(u32(0), pv, 0), 0);
  const args = (stop: number, cpu: number) => {
    const b = new Uint8Array(40);
    new DataView(b.buffer).setUint32(0, stop, true);
    new DataView(b.buffer).setUint32(4, cpu, true);
    return b;
  };
  const read = (ctx: Uint8Array) => {
    const dv = new DataView(ctx.buffer);
    return {
      keys: dv.getBigUint64(8, true),
      values: dv.getBigUint64(16, true),
      visited: dv.getBigInt64(24, true),
      other: dv.getBigUint64(32, true),
    };
  };
  const r = read(obj.program("walk").run(new Uint8Array(0), { ctx: args(1000, 2) }).ctx);
  assert.deepEqual(r, { keys: 55n, values: 5500n, visited: 10n, other: 77n });
  // The callback wrote through the value pointers: every value is one more.
  const v = new Uint8Array(8);
  for (let k = 1; k <= 10; k++) {
    assert.equal(table.lookupElem(u32(k), v), 0);
    assert.equal(new DataView(v.buffer).getBigUint64(0, true), BigInt(k * 100 + 1));
  }
  // Stop at one key: the visit count includes it; a CPU out of range gives NULL.
  const s = read(obj.program("walk").run(new Uint8Array(0), { ctx: args(4, 9) }).ctx);
  const order = [...walkKeys(table)].map((k) => new DataView(k.buffer, k.byteOffset).getUint32(0, true));
  const upTo = order.slice(0, order.indexOf(4) + 1);
  assert.equal(s.visited, BigInt(upTo.length), `walk order ${order}`);
  assert.equal(s.keys, BigInt(upTo.reduce((a, b) => a + b, 0)));
  assert.equal(s.other, 12345n);
  assert.equal(table.fsck().ok, true);
});

test("bpf_xdp_adjust_head/tail: identical return values and data_out on htab and in the kernel, limits included", {
  skip: noKernel,
}, () => {
  const bytes = compileFixture("xdp_adjust");
  const spec = openObject(bytes, { name: "xdp_adjust" });
  const obj = LoadedObject.load(bytes, { name: "xdp_adjust" });
  const k = KernelObject.fromSpec(spec);
  const kprog = k.programList[0];
  try {
    const cases: [number, number, number][] = [];
    for (const len of [16, 64, 1500, 3520, 4000])
      for (const dh of [0, -1, -14, -216, -217, 2, 8, len - 14, len - 13])
        for (const dt of [0, 1, 100, -2, -(len - 14), -(len - 13), 3520 - len, 3521 - len])
          cases.push([len, dh, dt]);
    let accepted = 0;
    for (const [len, dh, dt] of cases) {
      const pkt = packet(len + dh + dt, len);
      const dv = new DataView(pkt.buffer);
      dv.setInt32(0, dh, true);
      dv.setInt32(4, dt, true);
      const theirs = kprog.run(pkt);
      let mine: { retval: number; data: Uint8Array };
      try {
        mine = obj.program("xdp_adjust").run(pkt);
      } catch (e) {
        // A multi-buffer packet's tail is not adjusted here: refused, not answered differently.
        assert.ok(
          len > 3520 && dt !== 0 && e instanceof BpfError && e.code === "EOPNOTSUPP",
          `${len} ${dh} ${dt}: ${e}`,
        );
        continue;
      }
      assert.equal(mine.retval, theirs.retval, `len ${len}, head ${dh}, tail ${dt}`);
      assert.equal(hex(mine.data), hex(theirs.data), `len ${len}, head ${dh}, tail ${dt}: data_out`);
      if ((mine.retval & 3) === 3) accepted++;
    }
    assert.ok(accepted > 50, `both adjustments accepted in ${accepted} cases`);
  } finally {
    k.close();
  }
});

test("bpf_xdp_load_bytes (linear part, across into the fragments, past the end, over 0xffff): identical results and bytes on htab and in the kernel", {
  skip: noKernel,
}, () => {
  const bytes = compileFixture("xdp_load");
  const spec = openObject(bytes, { name: "xdp_load" });
  const obj = LoadedObject.load(bytes, { name: "xdp_load" });
  const k = KernelObject.fromSpec(spec);
  const seen = new Set<string>();
  try {
    for (const len of [14, 64, 1500, 3520, 4000, 7000])
      for (const off of [0, 1, 7, len - 8, len - 1, len, 3500, 3519, 3520, 6900, 0xffff, 0x10000])
        for (const sel of [0, 1, 2, 3]) {
          if (len < 8) continue;
          const pkt = packet(len + off + sel, len);
          const dv = new DataView(pkt.buffer);
          dv.setUint32(0, off >>> 0, true);
          dv.setUint32(4, sel, true);
          const theirs = k.program("xdp_load").run(pkt);
          const mine = obj.program("xdp_load").run(pkt);
          assert.equal(mine.retval, theirs.retval, `len ${len}, off ${off}, sel ${sel}`);
          assert.equal(
            hex(obj.global(".bss").bytes),
            hex(k.global(".bss").read()),
            `len ${len}, off ${off}, sel ${sel}`,
          );
          seen.add(String(new BigInt64Array(obj.global(".bss").bytes.slice(0, 8).buffer)[0]));
        }
  } finally {
    k.close();
  }
  assert.deepEqual([...seen].sort(), ["-14", "-22", "0"]);
});

test("bpf_loop with a callback in a syscall program: the context comes back written", {
  skip: noClang,
}, () => {
  const obj = LoadedObject.load(compileFixture("loop"), { name: "loop" });
  const prog = obj.program("loop_sum");
  const args = (n: number, stop: number, mult: bigint) => {
    const b = new Uint8Array(32);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, n, true);
    dv.setUint32(4, stop, true);
    dv.setBigUint64(8, mult, true);
    return b;
  };
  const out = (ctx: Uint8Array) => {
    const dv = new DataView(ctx.buffer);
    return { sum: dv.getBigUint64(16, true), iterations: dv.getBigInt64(24, true) };
  };
  let r = prog.run(new Uint8Array(0), { ctx: args(100, 1000, 3n) });
  assert.deepEqual(out(r.ctx), { sum: 3n * 4950n, iterations: 100n });
  assert.equal(r.retval, 0);
  r = prog.run(new Uint8Array(0), { ctx: args(100, 10, 2n) });
  assert.deepEqual(out(r.ctx), { sum: 2n * 45n, iterations: 11n });
  r = prog.run(new Uint8Array(0), { ctx: args((1 << 23) + 1, 0, 1n) });
  // -E2BIG as the kernel's inlined bpf_loop leaves it in r0: zero-extended from 32 bits,
  // so the program's `< 0` test does not see it (the 6.18 kernel gives the same ctx and retval).
  assert.deepEqual(out(r.ctx), { sum: 0n, iterations: 0xfffffff9n });
  assert.equal(r.retval, 0);
});

test("runs that break the rules stop with a typed error naming the instruction; locks are released, maps stay fsck-clean", {
  skip: noClang,
}, () => {
  const obj = LoadedObject.load(
    compileSource(
      "bad",
      `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct v { struct bpf_spin_lock l; int n; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, int); __type(value, struct v); __uint(max_entries, 4); } m SEC(".maps");
SEC("xdp") int past_end(struct xdp_md *ctx) { unsigned char *d = (void *)(long)ctx->data; return d[200]; }
SEC("xdp") int keeps_lock(struct xdp_md *ctx) {
  int k = 0; struct v z = {}, *p;
  bpf_map_update_elem(&m, &k, &z, 0);
  p = bpf_map_lookup_elem(&m, &k);
  if (!p) return 0;
  bpf_spin_lock(&p->l);
  p->n++;
  return 1;
}
SEC("xdp") int past_value(struct xdp_md *ctx) {
  int k = 0; struct v *p = bpf_map_lookup_elem(&m, &k);
  if (!p) return 0;
  return ((volatile int *)p)[2];
}
char LICENSE[] SEC("license") = "GPL";`,
    ),
    { name: "bad" },
  );
  assert.throws(
    () => obj.program("past_end").run(packet(1)),
    (e: unknown) =>
      e instanceof BpfRunError &&
      e.code === "EFAULT" &&
      /packet \(64 bytes\): out of bounds/.test(e.message) &&
      e.source ===
        'bad.c:5: SEC("xdp") int past_end(struct xdp_md *ctx) { unsigned char *d = (void *)(long)ctx->data; return d[200]; }',
  );
  assert.throws(
    () => obj.program("keeps_lock").run(packet(1)),
    (e: unknown) =>
      e instanceof BpfRunError && e.code === "EINVAL" && /holding a bpf_spin_lock/.test(e.message),
  );
  // The lock was released: the next run takes it again (it would time out otherwise).
  assert.throws(() => obj.program("keeps_lock").run(packet(1)), /holding a bpf_spin_lock/);
  assert.throws(
    () => obj.program("past_value").run(packet(1)),
    (e: unknown) =>
      e instanceof BpfRunError &&
      e.code === "EFAULT" &&
      /a value of map 'm' \(8 bytes\): out of bounds/.test(e.message),
  );
  assert.equal(obj.map("m").fsck().ok, true);
  assert.throws(
    () => obj.program("past_end").run(new Uint8Array(13)),
    (e: unknown) => e instanceof BpfError && e.code === "EINVAL",
  );
});

test("the loader refuses what it does not support, naming it", { skip: noClang }, () => {
  const refuse = (src: string, code: string, re: RegExp) =>
    assert.throws(
      () =>
        openObject(
          compileSource(
            "refuse",
            `#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n${src}\nchar LICENSE[] SEC("license") = "GPL";`,
          ),
        ),
      (e: unknown) => e instanceof BpfError && e.code === code && re.test(e.message),
    );
  refuse(
    `SEC("kprobe/do_sys_open") int k(void *ctx) { return 0; }`,
    "EOPNOTSUPP",
    /section 'kprobe\/do_sys_open': program type not supported/,
  );
  refuse(
    `extern int bpf_prog_active __ksym; SEC("xdp") int x(struct xdp_md *c) { return bpf_prog_active; }`,
    "EOPNOTSUPP",
    /extern 'bpf_prog_active'/,
  );
  refuse(
    `struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __type(key, int); __type(value, int); __uint(max_entries, 1); } out SEC(".maps");
SEC("xdp") int x(struct xdp_md *c) { return 0; }`,
    "EINVAL",
    /map 'out': a map-in-map needs its inner map's definition/,
  );
  assert.throws(
    () => openObject(new Uint8Array(64)),
    (e: unknown) => e instanceof BpfError && e.code === "EINVAL" && /no ELF magic/.test(e.message),
  );
  const arr = compileSource(
    "arr",
    `#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nstruct { __uint(type, BPF_MAP_TYPE_DEVMAP); __type(key, int); __type(value, int); __uint(max_entries, 1); } a SEC(".maps");\nSEC("xdp") int x(struct xdp_md *c) { return 0; }\nchar LICENSE[] SEC("license") = "GPL";`,
  );
  assert.throws(
    () => LoadedObject.load(arr),
    (e: unknown) =>
      e instanceof BpfError && e.code === "EOPNOTSUPP" && /map 'a': map type 14/.test(e.message),
  );
});

/** Every index of an array map as "index=value" hex (a per-CPU value: its CPUs' u64 slots summed). */
function dumpArray(m: RawMap): string[] {
  const out: string[] = [];
  const v = new Uint8Array(m.info.valueBytes);
  for (const k of walkKeys(m)) {
    assert.equal(m.lookupElem(k, v), 0);
    if (m.info.valueBytes === m.info.valueSize) out.push(`${hex(k)}=${hex(v)}`);
    else {
      let sum = 0n;
      const dv = new DataView(v.buffer);
      for (let c = 0; c < m.info.nrCpus; c++) sum += dv.getBigUint64(c * 8, true);
      out.push(`${hex(k)}=${sum}`);
    }
  }
  return out;
}

test("ARRAY and PERCPU_ARRAY maps in .maps and globals as ARRAY maps: identical return values, maps and globals on htab and in the kernel", {
  skip: noKernel,
}, () => {
  const bytes = compileFixture("array_maps");
  const spec = openObject(bytes, { name: "array_maps" });
  const obj = LoadedObject.load(bytes, { name: "array_maps", nrCpus: possibleCpus() });
  const k = KernelObject.fromSpec(spec);
  try {
    const names = spec.maps.map((d) => d.name);
    assert.deepEqual(names, [
      "by_byte",
      "pcpu",
      "locked",
      "array_ma.rodata",
      "array_ma.data",
      "array_ma.bss",
    ]);
    for (let i = 0; i < 40; i++) {
      const pkt = packet(i, 20 + (i % 30));
      const mine = obj.program("array_maps").run(pkt);
      const theirs = k.program("array_maps").run(pkt);
      assert.equal(mine.retval, theirs.retval, `packet ${i}`);
    }
    for (const [i, name] of ["by_byte", "pcpu", "locked"].entries())
      assert.deepEqual(dumpArray(obj.map(name)), dumpArray(k.mapList[i]), name);
    for (const s of [".bss", ".data", ".rodata"])
      assert.equal(hex(obj.global(s).bytes), hex(k.global(s).read()), s);
    const data = obj.global(".data");
    assert.deepEqual(
      ["last_any_err", "last_e2big_err", "last_eexist_err"].map((v) =>
        new DataView(data.variable(v).slice().buffer).getInt32(0, true),
      ),
      [0, -7, -17],
    );
    assert.notEqual(dumpArray(obj.map("by_byte")).join(), dumpArray(obj.map("locked")).join());
    // The globals are ARRAY maps: named as libbpf names them, .rodata frozen and read-only to programs.
    const ro = obj.global(".rodata");
    assert.equal(obj.map("array_ma.rodata"), ro.map);
    assert.equal(ro.map.info.type, 2);
    assert.equal(ro.map.info.maxEntries, 1);
    assert.equal(ro.map.updateElem(new Uint8Array(4), new Uint8Array(4), 0), -1, "frozen: EPERM");
    assert.equal(k.mapList[3].updateElem(new Uint8Array(4), new Uint8Array(4), 0), -1, "the kernel's too");
    assert.equal(hex(ro.variable("limit")), "0c000000");
    // .data is writable from TypeScript through the map, and the program sees it.
    const bss = obj.global(".bss");
    const before = new DataView(bss.variable("seen").slice().buffer).getBigUint64(0, true);
    assert.equal(before, 40n);
    const v = bss.bytes.slice();
    new DataView(v.buffer).setBigUint64(bss.vars.find((x) => x.name === "seen")?.offset ?? -1, 1000n, true);
    assert.equal(bss.map.updateElem(new Uint8Array(4), v, 0), 0);
    obj.program("array_maps").run(packet(99, 40));
    assert.equal(new DataView(bss.variable("seen").slice().buffer).getBigUint64(0, true), 1001n);
    // run({ cpu }): a PERCPU_ARRAY lookup gives that CPU's slot.
    if (obj.map("pcpu").info.nrCpus > 1) {
      const pkt = packet(123, 32);
      const key = new Uint8Array([pkt[2] & 3, 0, 0, 0]);
      const pc = new BpfMap(obj.map("pcpu"));
      const slot = (c: number) =>
        new DataView((pc.lookupPerCpu(key) as Uint8Array[])[c].slice().buffer).getBigUint64(0, true);
      const [c0, c1] = [slot(0), slot(1)];
      obj.program("array_maps").run(pkt, { cpu: 1 });
      assert.deepEqual([slot(0), slot(1)], [c0, c1 + BigInt(pkt[3])]);
    }
    for (const m of obj.arrays) assert.ok(m.fsck().ok, m.fsck().errors.join("; "));
  } finally {
    k.close();
  }
});

test("htab prog exec --elf runs a clang-built object's only program (a .text function with a subprogram), read from a Node Buffer", {
  skip: noClang,
}, () => {
  const bytes = compileSource(
    "exec_main",
    `static __attribute__((noinline)) unsigned long weigh(unsigned char b, unsigned long i) { return b * (i + 1); }
unsigned long entry(unsigned char *m, unsigned long n) {
  unsigned long s = 0;
  for (unsigned long i = 0; i < n && i < 64; i++) s += weigh(m[i], i);
  return s;
}`,
  );
  const mem = Uint8Array.from([5, 6, 7, 8]);
  assert.equal(execElf(Buffer.from(bytes), mem), 5n * 1n + 6n * 2n + 7n * 3n + 8n * 4n);
  assert.throws(
    () => execElf(compileFixture("seed003"), mem),
    (e: unknown) => e instanceof BpfError && e.code === "EOPNOTSUPP" && /concurrent_map/.test(e.message),
  );
});

test("a frozen map (and a BPF_F_RDONLY one) takes a program's updates and deletes, as the kernel's does; the syscall side is refused", {
  skip: noKernel,
}, () => {
  // key 3 <- 1 (BPF_ANY), then delete key 4 (present): r0 = update's answer << 8 | delete's, as u8s.
  const insns = [
    asm.storeImm("w", 10, -4, 3),
    asm.storeImm("dw", 10, -16, 1),
    asm.mov(2, 10),
    asm.aluImm("add", 2, -4),
    asm.mov(3, 10),
    asm.aluImm("add", 3, -16),
    asm.movImm(4, 0),
    ...ldMap(1, 0),
    asm.call(Helper.mapUpdateElem),
    asm.mov(6, 0),
    asm.aluImm("and", 6, 0xff),
    asm.aluImm("lsh", 6, 8),
    asm.storeImm("w", 10, -4, 4),
    asm.mov(2, 10),
    asm.aluImm("add", 2, -4),
    ...ldMap(1, 0),
    asm.call(Helper.mapDeleteElem),
    asm.aluImm("and", 0, 0xff),
    asm.alu("or", 0, 6),
    asm.exit(),
  ];
  const four = new Uint8Array([4, 0, 0, 0]);
  const eight = new Uint8Array(8);
  // Frozen: key 4 put there first (so the delete finds it); BPF_F_RDONLY: no syscall write ever (the delete answers ENOENT).
  for (const flags of [0, MapFlags.Rdonly]) {
    const spec = xdpSpec(insns, [{ ...HASH_U32_U64, flags }]);
    const k = KernelObject.fromSpec(spec);
    try {
      const km = k.mapList[0];
      if (flags === 0) {
        assert.equal(km.updateElem(four, eight, 0), 0);
        assert.equal(km.freeze(), 0);
      }
      const theirs = k.programList[0].run(new Uint8Array(14)).retval;
      assert.equal(theirs >> 8, 0, "the kernel took the program's update");
      for (const engine of ["interpreter", "compiled"] as const) {
        const o = LoadedObject.fromSpec(spec, { engine });
        try {
          const m = o.map("h") as Htab;
          if (flags === 0) {
            assert.equal(m.updateElem(four, eight, 0), 0);
            assert.equal(m.freeze(), 0);
          }
          assert.equal(o.program("p").run(new Uint8Array(14)).retval, theirs, `flags ${flags}, ${engine}`);
          assert.equal(m.updateElem(four, eight, 0), -1, "the syscall side stays refused (EPERM)");
          assert.equal(m.deleteElem(new Uint8Array([3, 0, 0, 0])), -1);
        } finally {
          o.close();
        }
      }
    } finally {
      k.close();
    }
  }
});
