/** The kernel backend against facts probed from this kernel (../shared/kernel-facts/t_elem.txt). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BpfMap } from "../../src/api/bpf-map.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
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
