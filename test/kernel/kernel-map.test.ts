/** The kernel backend against facts probed from this kernel (docs/kernel-facts.md, t_elem.txt). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BpfMap } from "../../src/api/bpf-map.js";
import { TypedMap } from "../../src/api/typed-map.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import * as codecs from "../../src/map/codecs.js";
import { MapFlags, MapType } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const skip = kernelSkipReason();
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const val = (n: number) => new Uint8Array(new BigUint64Array([BigInt(n)]).buffer);

test("kernel: element ops give the errno this kernel gave the probe", { skip }, () => {
  const m = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  try {
    const v = new Uint8Array(8);
    assert.equal(m.lookupElem(u32(1), v), -2);
    assert.equal(m.updateElem(u32(1), val(444), 0), 0);
    assert.equal(m.updateElem(u32(1), val(1), 3), -22);
    assert.equal(m.updateElem(u32(1), val(1), 4), -22);
    assert.equal(m.updateElem(u32(1), val(1), 8), -22);
    assert.equal(m.updateElem(u32(1), val(1), 2 ** 32), -22);
    assert.equal(m.updateElem(u32(1), val(444), 1), -17);
    assert.equal(m.updateElem(u32(9), val(1), 2), -2);
    for (const k of [2, 3, 4]) assert.equal(m.updateElem(u32(k), val(k), 0), 0);
    assert.equal(m.updateElem(u32(5), val(5), 0), -7);
    assert.equal(m.updateElem(u32(5), val(5), 2), -2);
    assert.equal(m.updateElem(u32(1), val(444), 0), 0);
    assert.equal(m.lookupElem(u32(1), v, 1), -22);
    assert.equal(m.lookupElem(u32(1), v, 0), 0);
    assert.deepEqual(v, val(444));
    assert.equal(m.lookupAndDeleteElem(u32(1), v, 0), 0);
    assert.equal(m.lookupAndDeleteElem(u32(1), v, 0), -2);
    assert.equal(m.deleteElem(u32(1)), -2);
    assert.equal(m.count(), 3);
    assert.ok(m.memoryUsage() > 0);
    assert.ok(m.info.id > 0);
  } finally {
    m.close();
  }
});

test("kernel: BpfMap throws typed errors with the op and the errno name", { skip }, () => {
  const m = new BpfMap(KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 1 }));
  try {
    m.update(u32(1), val(1));
    assert.throws(() => m.update(u32(2), val(2)), {
      name: "BpfError",
      code: "E2BIG",
      errno: 7,
      op: "update",
    });
    assert.throws(() => m.update(u32(1), val(2), 1), { code: "EEXIST" });
    assert.equal(m.lookup(u32(3)), undefined);
    assert.deepEqual([...m.keys()], [u32(1)]);
  } finally {
    m.close();
  }
});

test("kernel: create errors come back as BpfError with the kernel's code", { skip }, () => {
  assert.throws(() => KernelMap.create({ type: MapType.Hash, keySize: 0, valueSize: 8, maxEntries: 4 }), {
    code: "EINVAL",
  });
  assert.throws(
    () =>
      KernelMap.create({
        type: MapType.LruHash,
        keySize: 4,
        valueSize: 8,
        maxEntries: 4,
        flags: MapFlags.NoPrealloc,
      }),
    { code: "ENOTSUPP" },
  );
});

test("kernel: RDONLY and WRONLY maps as in t_elem.txt", { skip }, () => {
  const ro = KernelMap.create({
    type: MapType.Hash,
    keySize: 4,
    valueSize: 8,
    maxEntries: 4,
    flags: MapFlags.Rdonly,
  });
  const wo = KernelMap.create({
    type: MapType.Hash,
    keySize: 4,
    valueSize: 8,
    maxEntries: 4,
    flags: MapFlags.Wronly,
  });
  try {
    assert.equal(ro.updateElem(u32(1), val(1), 0), -1);
    assert.equal(ro.lookupElem(u32(1), new Uint8Array(8)), -2);
    assert.equal(ro.lookupBatch({ count: 4 }).err, -2);
    assert.equal(wo.updateElem(u32(1), val(1), 0), 0);
    assert.equal(wo.lookupElem(u32(1), new Uint8Array(8)), -1);
    assert.equal(wo.getNextKey(null, new Uint8Array(4)), -1);
    assert.equal(wo.freeze(), 0);
    assert.equal(wo.freeze(), -1);
  } finally {
    ro.close();
    wo.close();
  }
});

test("kernel: without privilege, create says which capability is missing", { skip }, async () => {
  const { spawnSync } = await import("node:child_process");
  const mod = new URL("../../src/kernel/kernel-map.js", import.meta.url).href;
  const code = `import(${JSON.stringify(mod)}).then(({ KernelMap }) => {
    try { KernelMap.create({ type: 1, keySize: 4, valueSize: 4, maxEntries: 1 }); console.log("created"); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
  });`;
  const r = spawnSync(
    "setpriv",
    ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", process.execPath, "-e", code],
    {
      encoding: "utf8",
    },
  );
  if (r.error) return; // no setpriv here: nothing to drop privileges with
  const out = JSON.parse(r.stdout.trim());
  assert.equal(out.code, "EPERM");
  assert.match(out.message, /CAP_BPF/);
});

test("kernel: fromHandle() checks the handle against the kernel; a lying handle cannot make the kernel write past a buffer", {
  skip,
}, () => {
  const m = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 1024, maxEntries: 4 });
  try {
    assert.equal(m.updateElem(u32(1), new Uint8Array(1024).fill(9), 0), 0);
    const h = m.handle;
    for (const [field, lie] of [
      ["valueSize", 8],
      ["keySize", 8],
      ["type", MapType.PercpuHash],
      ["maxEntries", 5],
      ["flags", MapFlags.NoPrealloc],
      ["nrCpus", h.info.nrCpus + 1],
    ] as const)
      assert.throws(
        () => KernelMap.fromHandle({ fd: h.fd, info: { ...h.info, [field]: lie } }),
        (e: unknown) => (e as { code?: string }).code === "EINVAL" && new RegExp(field).test(String(e)),
        field,
      );
    assert.throws(
      () => KernelMap.fromHandle({ fd: 987654, info: h.info }),
      (e: unknown) => (e as { code?: string }).code === "EBADFD",
    ); // this kernel's answer for a closed fd
    const view = KernelMap.fromHandle(h);
    const v = new Uint8Array(1024);
    assert.equal(view.lookupElem(u32(1), v), 0);
    assert.equal(v[1023], 9);
    assert.equal(view.info.valueBytes, 1024);
    view.close();
    // The view's close leaves the fd open for its owner.
    assert.equal(m.lookupElem(u32(1), v), 0);
  } finally {
    m.close();
  }
});

test("kernel: every method of a closed KernelMap throws EINVAL (its fd number may be reused)", {
  skip,
}, () => {
  const m = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  m.close();
  m.close();
  for (const call of [
    () => m.lookupElem(u32(1), new Uint8Array(8)),
    () => m.updateElem(u32(1), val(1), 0),
    () => m.memoryUsage(),
    () => m.count(),
    () => m.handle,
    () => new BpfMap(m).lookup(u32(1)),
  ])
    assert.throws(
      call,
      (e: unknown) => (e as { code?: string }).code === "EINVAL" && /closed/.test(String(e)),
    );
});

test("kernel: TypedMap.perCpu and BpfMap.lookupPerCpu on PERCPU_HASH and LRU_PERCPU_HASH round-trip one value per possible CPU", {
  skip,
}, () => {
  for (const type of [MapType.PercpuHash, MapType.LruPercpuHash]) {
    const m = KernelMap.create({ type, keySize: 4, valueSize: 4, maxEntries: 8 });
    try {
      const n = m.info.nrCpus;
      assert.equal(m.info.valueBytes, 8 * n);
      const t = TypedMap.perCpu(m, codecs.u32, codecs.u32);
      const vals = Array.from({ length: n }, (_, c) => 100 + c);
      t.set(1, vals);
      assert.deepEqual(t.get(1), vals);
      assert.throws(
        () => t.set(2, vals.slice(1)),
        (e: unknown) => (e as { code?: string }).code === "EINVAL",
      );
      assert.deepEqual([...t.entries()], [[1, vals]]);
      const b = new BpfMap(m);
      assert.deepEqual(b.lookupPerCpu(u32(1)), vals.map(u32));
    } finally {
      m.close();
    }
  }
});
