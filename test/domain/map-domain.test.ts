/**
 * MapDomain and map-in-map on the SAB backend: the ARRAY_OF_MAPS rules of
 * docs/kernel-facts.md (t_aom.txt), HASH_OF_MAPS, program-side inner lookups
 * and swapping with synchronize().
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Htab } from "../../src/core/htab.js";
import type { OuterMap } from "../../src/domain/inner.js";
import { MapDomain } from "../../src/domain/map-domain.js";
import { MapFlags, MapType, UpdateFlags } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const inner = { type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 };

function code(fn: () => unknown): string {
  try {
    fn();
    return "OK";
  } catch (e) {
    return (e as { code: string }).code;
  }
}

test("ARRAY_OF_MAPS creation rules (t_aom.txt)", () => {
  const d = MapDomain.create({ nrCpus: 2 });
  const t = d.createMap(inner);
  const aom = (over: object) =>
    code(() =>
      d.createMap({
        type: MapType.ArrayOfMaps,
        keySize: 4,
        valueSize: 4,
        maxEntries: 3,
        innerMap: t,
        ...over,
      }),
    );
  assert.equal(aom({ keySize: 8 }), "EINVAL");
  assert.equal(aom({ valueSize: 8 }), "EINVAL");
  assert.equal(aom({ flags: MapFlags.NoPrealloc }), "EINVAL");
  assert.equal(aom({ flags: MapFlags.InnerMap }), "EINVAL");
  assert.equal(aom({ flags: MapFlags.NumaNode, numaNode: 5 }), "EINVAL", "offline NUMA node (map_create())");
  assert.equal(aom({ flags: MapFlags.NumaNode, numaNode: 0 }), "OK");
  assert.equal(aom({ innerMap: undefined }), "EINVAL");
  assert.equal(aom({}), "OK");
  assert.equal(
    code(() =>
      d.createMap({ type: MapType.HashOfMaps, keySize: 4, valueSize: 8, maxEntries: 3, innerMap: t }),
    ),
    "EINVAL",
  );
  for (const type of [MapType.ArrayOfMaps, MapType.HashOfMaps])
    assert.equal(
      code(() => Htab.create({ type, keySize: 4, valueSize: 4, maxEntries: 3 })),
      "EINVAL",
      "outside a domain",
    );
  d.close();
});

test("ARRAY_OF_MAPS element rules (t_aom.txt)", () => {
  const d = MapDomain.create({ nrCpus: 2 });
  const t = d.createMap(inner);
  const a = d.createMap(inner);
  const big = d.createMap({ ...inner, maxEntries: 8 });
  const per = d.createMap({ ...inner, type: MapType.PercpuHash });
  const m = d.createMap({ type: MapType.ArrayOfMaps, keySize: 4, valueSize: 4, maxEntries: 3, innerMap: t });
  const v = new Uint8Array(4);
  assert.equal(m.lookupElem(u32(0), v), -2, "lookup empty slot ENOENT");
  assert.equal(m.lookupElem(u32(7), v), -2, "lookup out of range ENOENT");
  assert.equal(m.updateElem(u32(0), u32(a.info.id), 0), 0, "update slot0");
  assert.equal(m.updateElem(u32(0), u32(a.info.id), UpdateFlags.NoExist), -22);
  assert.equal(m.updateElem(u32(0), u32(a.info.id), UpdateFlags.Exist), -22);
  // t_aom.txt's EINVAL for a different max_entries is about array inner maps; the
  // kernel takes hash inner maps of any size (the differential suite checks it).
  assert.equal(
    m.updateElem(u32(2), u32(big.info.id), 0),
    0,
    "different max_entries is fine for hash inner maps",
  );
  assert.equal(m.updateElem(u32(3), u32(a.info.id), 0), -7, "out of range E2BIG");
  assert.equal(m.updateElem(u32(1), u32(per.info.id), 0), -22, "type mismatch");
  assert.match(m.lastError, /does not match the template/);
  assert.equal(m.updateElem(u32(1), u32(999), 0), -9, "no such map: EBADF");
  assert.equal(m.lookupElem(u32(0), v), 0);
  assert.equal(new Uint32Array(v.buffer)[0], a.info.id, "lookup returns the inner map id");
  assert.equal(m.deleteElem(u32(0)), 0);
  assert.equal(m.deleteElem(u32(0)), -2);
  assert.equal(m.deleteElem(u32(5)), -7);
  const k = new Uint8Array(4);
  assert.equal(m.getNextKey(null, k), 0);
  assert.equal(new Uint32Array(k.buffer)[0], 0, "gnk NULL gives 0");
  assert.equal(m.lookupAndDeleteElem(u32(0), v), -524, "ENOTSUPP");
  assert.equal(m.freeze(), 0);
  assert.equal(m.updateElem(u32(1), u32(a.info.id), 0), -1, "frozen: EPERM");
  assert.equal(m.lookupAndDeleteElem(u32(0), v), -1, "permission is checked before ENOTSUPP");
  assert.equal(m.freeze(), -1, "a second freeze is EPERM, as in the kernel");
  // BPF_F_INNER_MAP (max_entries may differ) exists only for array inner maps; hash types refuse it.
  assert.equal(
    code(() => d.createMap({ ...inner, flags: MapFlags.InnerMap })),
    "EINVAL",
  );
  d.close();
});

test("HASH_OF_MAPS: hash flags and order, ids as values, template checks", () => {
  const d = MapDomain.create({ nrCpus: 2, privileged: true });
  const t = d.createMap(inner);
  const a = d.createMap(inner);
  const m = d.createMap({
    type: MapType.HashOfMaps,
    keySize: 4,
    valueSize: 4,
    maxEntries: 2,
    innerMap: t,
    flags: MapFlags.ZeroSeed,
  });
  assert.equal(m.updateElem(u32(1), u32(a.info.id), UpdateFlags.NoExist), 0);
  assert.equal(m.updateElem(u32(1), u32(a.info.id), UpdateFlags.NoExist), -17);
  assert.equal(m.updateElem(u32(2), u32(77), 0), -9);
  assert.equal(m.updateElem(u32(2), u32(m.info.id), 0), -22, "an outer map is no inner map");
  const v = new Uint8Array(4);
  assert.equal(m.lookupElem(u32(1), v), 0);
  assert.equal(new Uint32Array(v.buffer)[0], a.info.id);
  assert.equal(m.lookupAndDeleteElem(u32(1), v), -524);
  assert.equal(m.deleteElem(u32(1)), 0);
  d.close();
});

test("a program in another thread's slot follows the outer map to the inner map; a swap plus synchronize() quiets the old one", () => {
  const d = MapDomain.create({ nrCpus: 2, cpu: 0 });
  const t = d.createMap(inner);
  const a = d.createMap(inner) as Htab;
  const b = d.createMap(inner) as Htab;
  const outer = d.createMap({
    type: MapType.ArrayOfMaps,
    keySize: 4,
    valueSize: 4,
    maxEntries: 1,
    innerMap: t,
  }) as OuterMap;
  outer.updateElem(u32(0), u32(a.info.id), 0);
  // Another "CPU": a second attachment in slot 1 (workers do the same with the handle).
  const d1 = MapDomain.attach(d.handle, { cpu: 1 });
  const o1 = d1.mapById(outer.info.id) as OuterMap;
  o1.run(() => {
    const m = o1.lookupInner(u32(0)) as Htab;
    assert.ok(m);
    assert.equal(m.info.id, a.info.id);
    assert.equal(m.updateElemFromProgram(u32(5), new Uint8Array(8).fill(1), 0), 0);
    // The outer section covers the inner map: references work without a separate enter().
    assert.equal(m.lookupRef(u32(5))?.load32(0), 0x01010101);
  });
  outer.updateElem(u32(0), u32(b.info.id), 0); // swap
  outer.synchronize();
  const out = new Uint8Array(8);
  assert.equal(a.lookupElem(u32(5), out), 0, "written through the old map");
  o1.run(() => assert.equal(o1.lookupInner(u32(0))?.info.id, b.info.id));
  assert.throws(() => o1.lookupInner(u32(0)), { code: "EINVAL" }, "outside a section");
  d1.close();
  d.close();
});

test("a worker terminated mid-update in a domain is reaped through the domain: the map stays usable and sound", async () => {
  const { Worker } = await import("node:worker_threads");
  const { watchWorker } = await import("../../src/api/create.js");
  for (const type of [MapType.Hash, MapType.LruHash]) {
    for (let round = 0; round < 5; round++) {
      const d = MapDomain.create({ nrCpus: 2, cpu: 0 });
      const m = d.createMap({ type, keySize: 4, valueSize: 8, maxEntries: 16 }) as Htab;
      const progress = new SharedArrayBuffer(4);
      const w = new Worker(new URL("../fixtures/domain-worker.js", import.meta.url), {
        workerData: { handle: d.handle, cpu: 1, id: m.info.id, progress },
      });
      const exited = new Promise((r) => w.once("exit", r));
      watchWorker(d, w, 1);
      while (Atomics.load(new Int32Array(progress), 0) < 1000 + round * 997)
        await new Promise((r) => setTimeout(r, 1));
      await w.terminate();
      await exited;
      // The slot is free again and every lock the worker held is released.
      for (let i = 0; i < 64; i++) {
        assert.equal(m.updateElem(u32(i & 15), new Uint8Array(8), 0), 0);
        assert.equal(m.deleteElem(u32(i & 15)), 0);
      }
      const f = m.fsck();
      assert.ok(f.ok, f.errors.join("; "));
      const again = MapDomain.attach(d.handle, { cpu: 1 });
      again.close();
      d.close();
    }
  }
});

test("a domain in a wasm memory grows while another thread creates maps; every thread sees every map on the fast path", async () => {
  const { Worker } = await import("node:worker_threads");
  const domain = MapDomain.create({ nrCpus: 3, cpu: 0, maxMaps: 64, maxBytes: 64 << 20 });
  assert.ok(domain.handle.memory !== undefined, "the domain lives in a wasm memory");
  const before = domain.handle.sab.byteLength;
  const w = new Worker(new URL("../fixtures/domain-grow-worker.js", import.meta.url), {
    workerData: { handle: domain.handle, cpu: 1, maps: 6, entries: 20_000 },
  });
  const r = await new Promise<{ ids: number[]; fastPath: boolean }>((resolve, reject) => {
    w.once("message", resolve);
    w.once("error", reject);
  });
  await w.terminate();
  assert.ok(r.fastPath, "the worker's maps run the fast path");
  assert.ok(domain.memoryUsage() > before + 6 * 20_000 * 32, "the domain grew past its first buffer");
  // This thread's buffer object predates the growth: maps are viewed through the grown memory.
  const out = new Uint8Array(8);
  for (const id of r.ids) {
    const m = domain.mapById(id) as Htab;
    assert.ok(m.fastPath);
    assert.equal(m.lookupElem(u32(1), out, 0), 0);
    assert.equal(new DataView(out.buffer).getUint32(0, true), id);
    assert.ok(m.fsck().ok);
  }
  // And this thread can grow it further itself.
  const more = domain.createMap({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 50_000 });
  assert.equal(more.updateElem(u32(7), new Uint8Array(8), 0), 0);
  assert.ok(more.fastPath);
  const plain = MapDomain.create({ nrCpus: 2, fastPath: false });
  assert.ok(plain.handle.memory === undefined);
  assert.ok(
    !(plain.createMap({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 8 }) as Htab).fastPath,
  );
  plain.close();
  domain.close();
});

test("allocRaw: a zeroed region that is no map, found again by id from another attachment", () => {
  const d = MapDomain.create({ nrCpus: 2, maxMaps: 4 });
  const m = d.createMap({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  const r = d.allocRaw(1000);
  assert.equal(r.offset % 64, 0);
  assert.equal(d.rawOffset(r.id), r.offset);
  assert.equal(d.rawOffset(m.info.id), -1, "a map's id is no raw region");
  assert.equal(d.mapById(r.id), null, "a raw region's id is no map");
  const bytes = new Uint8Array(d.handle.sab, r.offset, 1000);
  assert.ok(bytes.every((b) => b === 0));
  bytes.fill(7);
  const other = MapDomain.attach(d.handle, { cpu: 1 });
  assert.equal(other.rawOffset(r.id), r.offset);
  assert.equal(other.mapById(r.id), null);
  assert.equal(new Uint8Array(other.handle.sab, r.offset, 1)[0], 7);
  assert.throws(() => d.allocRaw(0), { code: "EINVAL" });
  other.close();
  d.close();
});
