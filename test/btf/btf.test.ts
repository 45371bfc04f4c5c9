/** BTF: the parser on the kernel's own vmlinux BTF, writing and reading back a map's types, codecs from BTF. */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { TypedMap } from "../../src/api/typed-map.js";
import { BtfKind, parseBtf, resolveType, typeSize } from "../../src/btf/btf.js";
import { btfCodec } from "../../src/btf/codec.js";
import { btfDeclOf, writeBtf } from "../../src/btf/write.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import * as codecs from "../../src/map/codecs.js";
import { MapType } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const skip = kernelSkipReason();
const VMLINUX = "/sys/kernel/btf/vmlinux";

test("parseBtf reads the running kernel's vmlinux BTF: every kind it uses, struct layouts the kernel facts name", {
  skip: existsSync(VMLINUX) ? undefined : "no /sys/kernel/btf/vmlinux",
}, () => {
  const btf = parseBtf(readFileSync(VMLINUX));
  const kinds = new Map<number, number>();
  for (const t of btf.types) kinds.set(t.kind, (kinds.get(t.kind) ?? 0) + 1);
  console.log(
    `# vmlinux BTF: ${btf.types.length - 1} types; ${[...kinds].map(([k, n]) => `${Object.keys(BtfKind)[k]} ${n}`).join(", ")}`,
  );
  for (const k of [
    BtfKind.Int,
    BtfKind.Ptr,
    BtfKind.Array,
    BtfKind.Struct,
    BtfKind.Union,
    BtfKind.Enum,
    BtfKind.Fwd,
    BtfKind.Typedef,
    BtfKind.Volatile,
    BtfKind.Const,
    BtfKind.Func,
    BtfKind.FuncProto,
    BtfKind.Var,
    BtfKind.Datasec,
    BtfKind.Enum64,
  ])
    assert.ok((kinds.get(k) ?? 0) > 0, `vmlinux has no ${Object.keys(BtfKind)[k]}`);
  // struct bucket of kernel/bpf/hashtab.c: 16 bytes on 6.18 (an rqspinlock and the list head).
  const bucket = btf.types.find((t) => t.kind === BtfKind.Struct && t.name === "bucket");
  assert.ok(bucket !== undefined);
  assert.equal(bucket.size, 16);
  const htabElem = btf.types.find((t) => t.kind === BtfKind.Struct && t.name === "htab_elem");
  assert.equal(htabElem?.size, 48, "sizeof(struct htab_elem), as KERNEL_HTAB_ELEM_SIZE");
  // A typedef chain resolves to its int.
  const u64 = btf.types.find((t) => t.kind === BtfKind.Typedef && t.name === "__u64");
  assert.ok(u64 !== undefined);
  assert.equal(resolveType(btf, u64.id).kind, BtfKind.Int);
  assert.equal(typeSize(btf, u64.id), 8);
});

test("writeBtf + parseBtf round-trip a struct with nested structs and arrays; btfCodec decodes what codecs.struct wrote", () => {
  const inner = codecs.struct([
    { name: "a", codec: codecs.u16 },
    { name: "b", codec: codecs.s8 },
  ]);
  const outer = codecs.struct([
    { name: "id", codec: codecs.u64 },
    { name: "in", codec: inner },
    { name: "raw", codec: codecs.bytes(3) },
    { name: "n", codec: codecs.s32 },
  ]);
  const { blob, ids } = writeBtf([btfDeclOf(outer, "outer")]);
  const btf = parseBtf(blob);
  const t = resolveType(btf, ids[0]);
  assert.equal(t.kind, BtfKind.Struct);
  assert.deepEqual(
    t.members.map((m) => [m.name, m.bitOffset / 8]),
    [
      ["id", 0],
      ["in", 8],
      ["raw", 12],
      ["n", 16],
    ],
  );
  assert.equal(typeSize(btf, ids[0]), outer.size);
  const buf = new Uint8Array(outer.size);
  outer.encode({ id: 2n ** 60n, in: { a: 513, b: -3 }, raw: new Uint8Array([7, 8, 9]), n: -5 }, buf, 0);
  assert.deepEqual(btfCodec(btf, ids[0]).decode(buf, 0), {
    id: 2n ** 60n,
    in: { a: 513, b: -3 },
    raw: [7, 8, 9],
    n: -5,
  });
});

test("kernel maps with BTF: create from codecs, read the types back, TypedMap through btfCodecs(); a map without BTF is ENOENT", {
  skip,
}, () => {
  const flow = codecs.struct([
    { name: "packets", codec: codecs.u64 },
    { name: "port", codec: codecs.u16 },
    { name: "proto", codec: codecs.u8 },
  ]);
  const m = KernelMap.create(
    { type: MapType.Hash, keySize: 4, valueSize: flow.size, maxEntries: 8, name: "flows" },
    { btf: { key: btfDeclOf(codecs.u32), value: btfDeclOf(flow, "flow") } },
  );
  try {
    assert.ok((m.info.btfId ?? 0) > 0 && (m.info.btfValueTypeId ?? 0) > 0);
    const { key, value } = m.btfCodecs();
    const t = new TypedMap(m, key, value);
    t.set(9, { packets: 2n ** 63n, port: 8080, proto: 17 });
    assert.deepEqual([...t.entries()], [[9, { packets: 2n ** 63n, port: 8080, proto: 17 }]]);
    assert.equal(resolveType(m.btf(), m.info.btfValueTypeId as number).name, "flow");
  } finally {
    m.close();
  }
  const plain = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 4 });
  assert.throws(
    () => plain.btfCodecs(),
    (e: unknown) => (e as { code?: string }).code === "ENOENT" && /no BTF/.test(String(e)),
  );
  plain.close();
});

test("kernel bpf_spin_lock maps, declared with codecs.bpfSpinLock: BPF_F_LOCK updates and lookups work, the lock reads as 0", {
  skip,
}, () => {
  const val = codecs.struct([
    { name: "lock", codec: codecs.bpfSpinLock },
    { name: "n", codec: codecs.u32 },
  ]);
  const m = KernelMap.create(
    { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 },
    { btf: { key: btfDeclOf(codecs.u32), value: btfDeclOf(val, "counter") } },
  );
  try {
    const v = new Uint8Array(8);
    v[4] = 41;
    assert.equal(m.updateElem(new Uint8Array(4), v, 0), 0);
    v[4] = 42;
    assert.equal(m.updateElem(new Uint8Array(4), v, 4), 0, "BPF_F_LOCK update");
    const out = new Uint8Array(8);
    assert.equal(m.lookupElem(new Uint8Array(4), out, 4), 0, "BPF_F_LOCK lookup");
    assert.deepEqual([...out], [0, 0, 0, 0, 42, 0, 0, 0]);
    assert.equal(m.freeze(), -524, "a spin-lock map cannot be frozen (ENOTSUPP), as in t_lock.txt");
  } finally {
    m.close();
  }
});
