/**
 * Socket filters and tc classifiers on the shared-memory backend against the
 * kernel's BPF_PROG_TEST_RUN: the verifier's __sk_buff access rules field by
 * field, the fields test_run fills, bpf_skb_load_bytes and bpf_csum_diff
 * (test/fixtures/bpf/skb.c), data_out, and the input test_run refuses.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { asm, Class, type Insn, insn, Mode, Size } from "../../src/bpf/isa.js";
import { openObject, ProgType } from "../../src/bpf/loader.js";
import { LoadedObject } from "../../src/bpf/object.js";
import { SK_BUFF_BYTES, skbAccess } from "../../src/bpf/skb.js";
import { BpfError } from "../../src/errors.js";
import { KernelObject } from "../../src/kernel/object.js";
import { loadProgram } from "../../src/kernel/program.js";
import { kernelSkipReason } from "../helpers/kernel.js";
import { clangSkipReason, compileFixture } from "./kernel-object.js";

const noClang = clangSkipReason();
const noKernel = kernelSkipReason();
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const SIZES: [number, number][] = [
  [1, Size.B],
  [2, Size.H],
  [4, Size.W],
  [8, Size.DW],
];

/** Whether the kernel's verifier accepts one access to the context of a program of `type`. */
function kernelAccepts(type: number, off: number, sizeCode: number, write: boolean): boolean {
  const body: Insn[] = write
    ? [asm.movImm(2, 0), insn(Class.STX | sizeCode | Mode.MEM, 1, 2, off, 0)]
    : [insn(Class.LDX | sizeCode | Mode.MEM, 0, 1, off, 0)];
  try {
    loadProgram([...body, asm.movImm(0, 0), asm.exit()], { type, license: "GPL" }).close();
    return true;
  } catch (e) {
    if (e instanceof BpfError && (e.code === "EACCES" || e.code === "EINVAL")) return false;
    throw e;
  }
}

/** One access compared: undefined when htab and the verifier agree, else the difference. */
function compareAccess(kind: "socket" | "tc", type: number, off: number, size: number, write: boolean) {
  const mine = skbAccess(kind, off, size, write);
  const theirs = kernelAccepts(type, off, SIZES.find(([n]) => n === size)?.[1] as number, write);
  // The one known difference: reading the sk pointer (a kernel socket), not modelled here.
  if (off === 168 && size === 8 && !write)
    return {
      theirs,
      wrong: theirs && mine !== undefined && /not modelled/.test(mine) ? undefined : `sk: ${mine}`,
    };
  if ((mine === undefined) === theirs) return { theirs, wrong: undefined };
  const what = `${kind} ${write ? "write" : "read"} of ${size} at ${off}`;
  return { theirs, wrong: `${what}: kernel ${theirs ? "accepts" : "refuses"}, htab ${mine ?? "accepts"}` };
}

/** Every aligned access of each size to __sk_buff (and just past it) for one program type: the mismatches. */
function compareAccesses(
  kind: "socket" | "tc",
  type: number,
): { checked: number; allowed: number; wrong: string[] } {
  let checked = 0;
  let allowed = 0;
  const wrong: string[] = [];
  for (const [size] of SIZES)
    for (let off = 0; off < SK_BUFF_BYTES + 8; off += size)
      for (const write of [false, true]) {
        const r = compareAccess(kind, type, off, size, write);
        checked++;
        if (r.theirs) allowed++;
        if (r.wrong !== undefined) wrong.push(r.wrong);
      }
  return { checked, allowed, wrong };
}

test("__sk_buff access rules: every aligned field access, read and write, as the kernel's verifier answers", {
  skip: noKernel,
}, () => {
  const sock = compareAccesses("socket", ProgType.SocketFilter);
  const tc = compareAccesses("tc", ProgType.SchedCls);
  assert.deepEqual([...sock.wrong, ...tc.wrong], []);
  // Misaligned accesses are refused by both.
  for (const off of [1, 2, 3, 5, 6, 7])
    assert.equal(
      skbAccess("tc", off, 4, false) === undefined,
      kernelAccepts(ProgType.SchedCls, off, Size.W, false),
    );
  process.stdout.write(
    `# ${sock.checked + tc.checked} accesses compared with the verifier, ${sock.allowed + tc.allowed} allowed\n`,
  );
});

function packet(seed: number, len: number): Uint8Array {
  const p = new Uint8Array(len);
  let x = seed * 2654435761 + 7;
  for (let i = 0; i < len; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    p[i] = x & 0xff;
  }
  return p;
}

/** Packets of many kinds: IPv4, IPv6, 802.3/802.2, broadcast/multicast/other-host/host destinations, all lengths. */
function packets(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const protos = [0x0800, 0x86dd, 0x0806, 0x0028, 0x05ff, 0x88cc];
  const dests = [
    [0, 0, 0, 0, 0, 0],
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    [0x01, 0x00, 0x5e, 0, 0, 1],
    [0x02, 0, 0, 0, 0, 1],
  ];
  let seed = 1;
  for (const len of [14, 15, 16, 34, 54, 60, 64, 100, 1500, 3712])
    for (const proto of protos)
      for (const dest of dests) {
        const p = packet(seed++, len);
        p.set(dest, 0);
        p[12] = proto >> 8;
        p[13] = proto & 0xff;
        if (len > 16 && seed % 3 === 0) p.fill(0xff, 14, 16); // 802.3 raw
        if (len >= 18) {
          p[14 + 0] = seed % 80; // load_bytes offset
          p[14 + 1] = (seed * 7) % 90; // the 32-byte load's offset
        }
        // The kernel refuses short IPv4/IPv6 packets; keep those as refusals to compare too.
        out.push(p);
      }
  return out;
}

for (const [program, kind] of [
  ["sock", "socket filter"],
  ["cls", "tc classifier"],
] as const)
  test(`a ${kind} (skb.c): return values, data_out and every recorded field identical on htab and in the kernel`, {
    skip: noClang ?? noKernel,
  }, () => {
    const bytes = compileFixture("skb");
    const spec = openObject(bytes, { name: "skb" });
    const obj = LoadedObject.load(bytes, { name: "skb" });
    const k = KernelObject.fromSpec(spec);
    let ran = 0;
    let refused = 0;
    try {
      for (const [i, pkt] of packets().entries()) {
        let theirs: { retval: number; data: Uint8Array } | undefined;
        try {
          theirs = k.program(program).run(pkt);
        } catch (e) {
          assert.ok(e instanceof BpfError && e.code === "EINVAL", `packet ${i}: ${e}`);
        }
        if (theirs === undefined) {
          assert.throws(
            () => obj.program(program).run(pkt),
            (e: unknown) => e instanceof BpfError && e.code === "EINVAL",
            `packet ${i} (${pkt.length} bytes): the kernel refused it`,
          );
          refused++;
          continue;
        }
        const mine = obj.program(program).run(pkt);
        assert.equal(mine.retval, theirs.retval, `packet ${i}`);
        assert.equal(hex(mine.data), hex(theirs.data), `packet ${i}: data_out`);
        assert.equal(hex(obj.global(".bss").bytes), hex(k.global(".bss").read()), `packet ${i}: out[]`);
        ran++;
      }
    } finally {
      k.close();
    }
    assert.ok(ran > 100 && refused > 10, `${ran} packets ran, ${refused} refused`);
    process.stdout.write(`# ${program}: ${ran} packets identical, ${refused} refused by both\n`);
  });

test("skb test runs refuse what BPF_PROG_TEST_RUN refuses and what is not modelled, naming it", {
  skip: noClang,
}, () => {
  const obj = LoadedObject.load(compileFixture("skb"), { name: "skb" });
  for (const n of [13, 3713])
    assert.throws(
      () => obj.program("cls").run(new Uint8Array(n)),
      (e: unknown) => e instanceof BpfError && e.code === "EINVAL" && /14 to 3712 bytes/.test(e.message),
    );
  assert.throws(
    () => obj.program("sock").run(packet(1, 64), { ctx: new Uint8Array(SK_BUFF_BYTES) }),
    (e: unknown) => e instanceof BpfError && e.code === "EOPNOTSUPP" && /ctx_in/.test(e.message),
  );
});
