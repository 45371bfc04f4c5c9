/**
 * What the compiler leaves out of the checks and the zeroing it emits, held
 * against the interpreter: a frame is zeroed only as deep as its function
 * can reach (frameReach()), and the inline check of the region chk() found
 * last forgets that region when the table changes under it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { execRaw } from "../../../src/bpf/exec.js";
import {
  asm,
  decodeProgram,
  encodeInsns,
  Helper,
  type Insn,
  program,
  STACK_BYTES,
} from "../../../src/bpf/isa.js";
import type { BpfObjectSpec } from "../../../src/bpf/loader.js";
import { LoadedObject } from "../../../src/bpf/object.js";
import { frameReach } from "../../../src/bpf/wasm/compile.js";
import { compileExec } from "../../../src/bpf/wasm/exec.js";
import { KernelObject } from "../../../src/kernel/object.js";
import { MapType } from "../../../src/uapi.js";
import { kernelSkipReason } from "../../helpers/kernel.js";
import { HASH_U32_U64, ldMap, mapDef, xdpSpec } from "../asm-spec.js";
import { outcome } from "./gen.js";

const { callLocal, exit, load, mov, movImm, storeImm, alu, call, aluImm } = asm;

function both(insns: Insn[], input = new Uint8Array(0)): { interp: string; compiled: string } {
  const interp = outcome(() => execRaw(encodeInsns(insns), input.slice()));
  const { vm, args } = compileExec(insns, input);
  return { interp, compiled: outcome(() => vm.run(args)) };
}

// Sibling calls at one depth share one frame's memory: what f1 wrote must not show through in f2 or f3.
const siblings = program(
  callLocal(7), // 0: f1 at 8
  callLocal(10), // 1: f2 at 12
  mov(6, 0), // 2
  callLocal(4), // 3: f1
  callLocal(9), // 4: f3 at 14
  alu("add", 0, 6), // 5
  exit(), // 6
  exit(), // 7 (unreached)
  storeImm("dw", 10, -8, 0x1234), // 8 f1: writes two slots
  storeImm("dw", 10, -16, 0x99), // 9
  movImm(0, 0), // 10
  exit(), // 11
  load("dw", 0, 10, -8), // 12 f2: reads -8 straight through r10, writes nothing
  exit(), // 13
  mov(1, 10), // 14 f3: reads -16 through a copy of r10
  load("dw", 0, 1, -16), // 15
  exit(), // 16
);

test("a frame is zeroed as deep as its function reaches: unwritten stack reads 0 after a sibling call wrote it", () => {
  const prog = decodeProgram(siblings, { op: "exec", helpers: () => false });
  assert.deepEqual(prog.functions, [0, 8, 12, 14]);
  assert.equal(frameReach(prog, 0, 8), 0, "main touches no stack");
  assert.equal(frameReach(prog, 8, 12), 16, "f1 writes down to r10 - 16");
  assert.equal(frameReach(prog, 12, 14), 8, "f2 reads r10 - 8");
  assert.equal(frameReach(prog, 14, 17), STACK_BYTES, "f3 copies r10: its whole frame");
  assert.deepEqual(both(siblings), { interp: "r0=0x0", compiled: "r0=0x0" });
});

test("frameReach: a stored r10, an ALU on it or an access outside the frame means the whole frame", () => {
  const reach = (insns: Insn[]) =>
    frameReach(decodeProgram(insns, { op: "exec", helpers: () => false }), 0, insns.length);
  assert.equal(reach([asm.store("dw", 10, -8, 10), exit()]), STACK_BYTES);
  assert.equal(reach([aluImm("add", 1, 0), alu("add", 1, 10), exit()]), STACK_BYTES);
  assert.equal(reach([load("dw", 0, 10, 0), exit()]), STACK_BYTES);
  assert.equal(reach([load("b", 0, 10, -3), exit()]), 8);
  assert.equal(reach([load("w", 0, 10, -512), exit()]), STACK_BYTES - 0);
});

/** Run an XDP program of `insns` on `packet` in both engines (each asserted to be the one asked for): their outcomes. */
function xdpBoth(insns: Insn[], packet: Uint8Array, repeat = 1): string[] {
  const spec = xdpSpec(insns);
  return (["interpreter", "compiled"] as const).map((engine) => {
    const o = LoadedObject.fromSpec(spec, { engine });
    try {
      assert.equal(o.program("p").engine, engine);
      return outcome(() => BigInt(o.program("p").run(packet, { repeat }).retval));
    } finally {
      o.close();
    }
  });
}

/**
 * r2 = data, r3 = data_end (from xdp_md at r1); `if (data + n > data_end)`
 * jump `skip` instructions past the check (its last instruction).
 */
function dataEndCheck(n: number, skip: number): Insn[] {
  return [load("w", 2, 1, 0), load("w", 3, 1, 4), mov(4, 2), aluImm("add", 4, n), asm.jmp("jgt", 4, 3, skip)];
}

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);

test("the inline region check forgets the packet when bpf_xdp_adjust_tail shrinks it: the old pointer faults in both engines", () => {
  // r7 = data; read data[40] (the packet becomes the region chk() found last); shrink the
  // tail by 30 (60 bytes left: 34); read data[40] again: outside the packet now.
  const insns = program(
    mov(6, 1),
    load("w", 7, 6, 0),
    load("b", 8, 7, 40),
    mov(1, 6),
    movImm(2, -30),
    call(Helper.xdpAdjustTail),
    load("b", 0, 7, 40),
    exit(),
  );
  const results = xdpBoth(insns, bytes(64), 3);
  assert.match(results[0], /^EFAULT at insn 6$/);
  assert.equal(results[1], results[0]);
});

test("packet accesses after a data_end comparison: proven ones plain, one byte past them checked, all forgotten after a helper", () => {
  // if (data + 20 > data_end) return 99; r0 = *(u32 *)(data + 16) (proven); *(u8 *)(data + 20) (not).
  const parse = program(
    dataEndCheck(20, 3),
    load("w", 0, 2, 16),
    load("b", 5, 2, 20),
    exit(),
    movImm(0, 99),
    exit(),
  );
  for (const [len, want] of [
    [16, /^r0=0x63$/],
    [20, /^EFAULT at insn 6$/],
    [24, /^r0=0x13121110$/],
  ] as const) {
    const [interp, compiled] = xdpBoth(parse, bytes(len));
    assert.match(interp, want, `${len} bytes: interpreter`);
    assert.equal(compiled, interp, `${len} bytes: compiled`);
  }
  // The same proof, then bpf_xdp_adjust_tail(ctx, -4): data + 16 is past the 16 bytes left.
  const shrunk = program(
    mov(6, 1),
    dataEndCheck(20, 6),
    mov(7, 2),
    mov(1, 6),
    movImm(2, -4),
    call(Helper.xdpAdjustTail),
    load("w", 0, 7, 16),
    exit(),
    movImm(0, 99),
    exit(),
  );
  const [interp, compiled] = xdpBoth(shrunk, bytes(20));
  assert.match(interp, /^EFAULT at insn 10$/);
  assert.equal(compiled, interp);
});

/** A one-program XDP object's spec over one HASH map (u32 -> u64). */
function hashSpec(insns: Insn[]): BpfObjectSpec {
  return xdpSpec(insns, [HASH_U32_U64]);
}

/** hashSpec() loaded on `engine`, with key 7 -> 1000 present. */
function hashObject(insns: Insn[], engine: "compiled" | "interpreter"): LoadedObject {
  const o = LoadedObject.fromSpec(hashSpec(insns), { engine });
  const v = new Uint8Array(8);
  new DataView(v.buffer).setBigUint64(0, 1000n, true);
  assert.equal(o.map("h").updateElem(Uint8Array.of(7, 0, 0, 0), v, 0), 0);
  return o;
}

/** key on the stack, bpf_map_lookup_elem(h, &key), `checked`: a null result returns 99; then `use`. */
function lookupThen(key: number, checked: boolean, use: Insn[]): Insn[] {
  return program(
    storeImm("w", 10, -4, key),
    mov(2, 10),
    aluImm("add", 2, -4),
    ldMap(1, 0),
    call(Helper.mapLookupElem),
    checked ? [asm.jmpImm("jne", 0, 0, 2), movImm(0, 99), exit()] : [],
    use,
    exit(),
  );
}

test("a lookup's value after its null test: inside value_size plain, past it or unchecked-null a fault, in both engines", () => {
  const cases: [string, Insn[], RegExp][] = [
    ["present, unchecked, read", lookupThen(7, false, [load("dw", 0, 0, 0)]), /^r0=0x3e8 value 1000$/],
    ["absent, unchecked, read", lookupThen(8, false, [load("dw", 0, 0, 0)]), /^EFAULT at insn 6 value 1000$/],
    ["absent, checked", lookupThen(8, true, [load("dw", 0, 0, 0)]), /^r0=0x63 value 1000$/],
    [
      "present, checked, read past value_size",
      lookupThen(7, true, [load("w", 0, 0, 6)]),
      /^EFAULT at insn 9 value 1000$/,
    ],
    [
      "present, checked, fetch-add then read",
      lookupThen(7, true, [movImm(1, 5), asm.atomic("dw", 0, 0, 1, 0x01), load("dw", 0, 0, 0)]),
      /^r0=0x3ed value 1005$/,
    ],
    [
      "present, checked, misaligned atomic",
      lookupThen(7, true, [movImm(1, 5), asm.atomic("w", 0, 2, 1, 0)]),
      /^EFAULT at insn 10 value 1000$/,
    ],
  ];
  for (const [what, insns, want] of cases) {
    const got = (["interpreter", "compiled"] as const).map((engine) => {
      const o = hashObject(insns, engine);
      try {
        const r = outcome(() => o.program("p").run(new Uint8Array(64)).r0);
        const v = new Uint8Array(8);
        o.map("h").lookupElem(Uint8Array.of(7, 0, 0, 0), v);
        return `${r} value ${new DataView(v.buffer).getBigUint64(0, true)}`;
      } finally {
        o.close();
      }
    });
    assert.match(got[0], want, `${what}: interpreter`);
    assert.equal(got[1], got[0], `${what}: compiled`);
  }
});

test("the run's budget is one across calls: loops in a callee charge it as the caller's do", () => {
  // main calls f 100 times; f loops 100 times: ~20,000 charged in f, ~400 in main.
  const prog = program(
    movImm(6, 0), // 0
    callLocal(4), // 1: f at 6
    aluImm("add", 6, 1), // 2
    asm.jmpImm("jlt", 6, 100, -3), // 3: back to 1
    mov(0, 6), // 4
    exit(), // 5
    movImm(1, 0), // 6: f
    aluImm("add", 1, 1), // 7
    asm.jmpImm("jlt", 1, 100, -2), // 8: back to 7
    movImm(0, 0), // 9
    exit(), // 10
  );
  const run = (budget: number) => {
    const interp = outcome(() => execRaw(encodeInsns(prog), new Uint8Array(0), { budget }));
    const { vm, args } = compileExec(prog, new Uint8Array(0), { budget });
    const compiled = outcome(() => vm.run(args));
    return [interp.split(" at ")[0], compiled.split(" at ")[0]];
  };
  assert.deepEqual(run(100_000), ["r0=0x64", "r0=0x64"]);
  const [interp, compiled] = run(15_000);
  assert.notEqual(interp, "r0=0x64", "the interpreter runs out");
  assert.equal(compiled, interp, "the compiled run runs out too, with the same errno");
});

test("an LRU update that fails its flags has still taken its element, as the kernel's does: the same keys evicted in both engines", () => {
  // bpf_map_update_elem(lru, &key, &value, BPF_NOEXIST) of a key that is there, on a full map.
  const insns = program(
    movImm(0, 0),
    storeImm("w", 10, -4, 0),
    dataEndCheck(4, 11),
    load("w", 5, 2, 0),
    asm.store("w", 10, -4, 5),
    storeImm("dw", 10, -16, 1),
    mov(2, 10),
    aluImm("add", 2, -4),
    mov(3, 10),
    aluImm("add", 3, -16),
    movImm(4, 1),
    ldMap(1, 0),
    call(Helper.mapUpdateElem),
    exit(),
  );
  const spec = xdpSpec(insns, [mapDef("l", MapType.LruHash, 4, 8, 300)]);

  const keysOf = (o: LoadedObject): string => {
    const m = o.map("l");
    const out: number[] = [];
    let key: Uint8Array | null = null;
    const next = new Uint8Array(4);
    while (m.getNextKey(key, next) === 0) {
      out.push(new DataView(next.buffer).getUint32(0, true));
      key = next.slice();
    }
    return out.sort((a, b) => a - b).join(",");
  };
  const got = (["interpreter", "compiled"] as const).map((engine) => {
    const o = LoadedObject.fromSpec(spec, { engine, nrCpus: 2 });
    try {
      const v = new Uint8Array(8);
      const k = new Uint8Array(4);
      for (let i = 1; i <= 1000; i++) {
        new DataView(k.buffer).setUint32(0, i, true);
        assert.equal(o.map("l").updateElem(k, v, 0), 0);
      }
      // Then, 300 times: a new key from the control plane, and a present key updated with BPF_NOEXIST by
      // the program (-EEXIST). When the CPU's local free list is empty, that failed update's pop refills it,
      // evicting, before the next insert would: the keys held after each failed update show when.
      const rets: string[] = [];
      const held: string[] = [];
      for (let i = 1001; i <= 1300; i++) {
        new DataView(k.buffer).setUint32(0, i, true);
        assert.equal(o.map("l").updateElem(k, v, 0), 0);
        const pkt = new Uint8Array(14);
        new DataView(pkt.buffer).setUint32(0, i, true);
        rets.push(String(o.program("p").run(pkt).r0));
        held.push(keysOf(o));
      }
      return { rets: [...new Set(rets)].join(","), held };
    } finally {
      o.close();
    }
  });
  assert.equal(got[0].rets, String(2n ** 64n - 17n), "-EEXIST every time");
  assert.equal(got[1].rets, got[0].rets);
  const counts = got[0].held.map((h) => h.split(",").length);
  assert.ok(Math.min(...counts) < Math.max(...counts), "some failed update evicted");
  got[0].held.forEach((h, i) => {
    assert.equal(got[1].held[i], h, `the keys held after failed update ${i}`);
  });
});

test("bpf_map_update_elem's flags are 64 bits: a bit above 31 is EINVAL, not its low bits' meaning; as in the kernel", {
  skip: kernelSkipReason(),
}, () => {
  // key 9 (absent) <- 1 with flags `f` from a 64-bit immediate; r0 the helper's answer.
  const prog = (f: bigint) =>
    program(
      storeImm("w", 10, -4, 9),
      storeImm("dw", 10, -16, 1),
      mov(2, 10),
      aluImm("add", 2, -4),
      mov(3, 10),
      aluImm("add", 3, -16),
      asm.ldImm64(4, f),
      ldMap(1, 0),
      call(Helper.mapUpdateElem),
      exit(),
    );
  for (const f of [0n, 1n, 2n, 1n << 32n, (1n << 32n) + 1n, (1n << 63n) + 1n, 0x80000001n]) {
    const insns = prog(f);
    const mine = (["interpreter", "compiled"] as const).map((engine) => {
      const o = hashObject(insns, engine);
      try {
        return String(o.program("p").run(new Uint8Array(14)).r0);
      } finally {
        o.close();
      }
    });
    const spec = hashSpec(insns);
    const k = KernelObject.fromSpec(spec);
    try {
      const theirs = BigInt.asUintN(64, BigInt(k.programList[0].run(new Uint8Array(14)).retval | 0));
      // retval is r0's low 32 bits: compare those.
      assert.equal(mine[0], mine[1], `flags 0x${f.toString(16)}: the engines`);
      assert.equal(
        BigInt.asUintN(32, BigInt(mine[0])),
        BigInt.asUintN(32, theirs),
        `flags 0x${f.toString(16)}: the kernel`,
      );
    } finally {
      k.close();
    }
  }
});
