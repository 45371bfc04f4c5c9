/**
 * Crash safety: workers doing mixed updates, one terminated at a random
 * moment, in a loop. The survivors must finish, the structure must pass
 * fsck (chains, counts, freelists), and every key a survivor wrote must hold
 * what it wrote.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { Htab } from "../../src/core/htab.js";
import { MapFlags, MapType } from "../../src/uapi.js";

const ITERATIONS = Number(process.env.HTAB_KILL_ITERATIONS ?? 100);

/** A kill-test worker's model of its keys (null for the victim), after `onExit` ran at its exit (the reap). */
function survivorModel(w: Worker, onExit: () => unknown): Promise<[number, number][] | null> {
  return new Promise((resolve, reject) => {
    let result: [number, number][] | null = null;
    w.once("message", (m) => {
      result = m;
    });
    w.once("error", reject);
    w.once("exit", () => {
      onExit();
      resolve(result);
    });
  });
}
const script = new URL("../fixtures/kill-worker.js", import.meta.url);

// LRU_HASH is sized so that the survivors' keys are never evicted: at most 24 keys are
// linked, each CPU's local free list holds up to target_free (512) elements, and
// while a worker is preempted inside a program section every element freed
// meanwhile waits in limbo (a few hundred here); 4096 leaves the common free
// list above target_free, so a refill never has to evict.
// Plain HASH runs its updates and deletes on the wasm fast path (workers with the whole
// handle); a map with a bpf_spin_lock keeps them on the JS path.
// NO_PREALLOC workers use 200 keys each, so the victim is often carving new
// elements and growing the buffer when it dies; the batch config mixes in
// update_batch and delete_batch.
for (const [name, iterations, lru, spinLock, noPrealloc, batch] of [
  ["HASH with bpf_spin_lock", ITERATIONS, false, true, false, false],
  ["HASH (wasm write path)", Math.ceil(ITERATIONS / 2), false, false, false, false],
  ["LRU_HASH", Math.ceil(ITERATIONS / 2), true, false, false, false],
  ["HASH NO_PREALLOC (growth)", Math.ceil(ITERATIONS / 4), false, false, true, false],
  ["HASH with batch operations", Math.ceil(ITERATIONS / 4), false, false, false, true],
  ["LRU_HASH with batch operations", Math.ceil(ITERATIONS / 5), true, false, false, true],
] as const)
  test(`kill a worker mid-operation on ${name}, ${iterations} times: no corruption, no deadlock, survivors' data intact`, {
    timeout: 600_000,
  }, async () => {
    const ITERATIONS = iterations;
    let recovered = 0;
    let iterationsWithRecovery = 0;
    let checkedKeys = 0;
    let seed = 1;
    for (let it = 0; it < ITERATIONS; it++) {
      const keys = noPrealloc ? 200 : 8;
      const map = Htab.create(
        lru
          ? { type: MapType.LruHash, keySize: 4, valueSize: 16, maxEntries: 4096 }
          : {
              type: MapType.Hash,
              keySize: 4,
              valueSize: 16,
              maxEntries: 3 * keys,
              ...(noPrealloc ? { flags: MapFlags.NoPrealloc } : {}),
              ...(spinLock ? { spinLockOffset: 0 } : {}),
            },
        { nrCpus: 4, cpu: 0, homeElements: true },
      );
      const before = map.stats().recovered;
      const victim = 1 + (it % 3);
      const progress = new SharedArrayBuffer(16);
      const p32 = new Int32Array(progress);
      const workers = [1, 2, 3].map((cpu) => {
        const w = new Worker(script, {
          workerData: {
            handle: cpu % 2 === 1 ? map.handle : { sab: map.handle.sab }, // wasm and JS paths
            progress,
            cpu,
            id: cpu,
            keys,
            ops: cpu === victim ? 1e9 : 6000,
            seed: seed++,
            spinLock,
            batch,
          },
        });
        return { w, cpu, done: survivorModel(w, () => cpu === victim && map.reap(cpu)) };
      });
      // Kill the victim at a random point of its run, once it is running.
      // NO_PREALLOC: while its 200 keys are still being carved (the first few hundred operations).
      const at = noPrealloc ? 50 + Math.floor(Math.random() * 500) : 100 + Math.floor(Math.random() * 3000);
      while (Atomics.load(p32, victim) < at) await new Promise((r) => setTimeout(r, 1));
      await workers[victim - 1].w.terminate();
      let timer: NodeJS.Timeout | undefined;
      const results = await Promise.race([
        Promise.all(workers.map((x) => x.done)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`iteration ${it}: survivors deadlocked`)), 60_000);
        }),
      ]).finally(() => clearTimeout(timer));
      const f = map.fsck();
      assert.ok(f.ok, `iteration ${it}: ${f.errors.join("; ")}`);
      const out = new Uint8Array(16);
      const dv = new DataView(out.buffer);
      for (const x of workers) {
        if (x.cpu === victim) continue;
        const model = new Map(results[x.cpu - 1]!);
        for (let k = 0; k < keys; k++) {
          const key = new Uint8Array(new Uint32Array([x.cpu * 1000 + k]).buffer);
          const want = model.get(x.cpu * 1000 + k);
          const err = map.lookupElem(key, out, spinLock ? 4 : 0);
          if (want === undefined)
            assert.equal(err, -2, `iteration ${it}: key ${x.cpu * 1000 + k} should be absent`);
          else {
            assert.equal(err, 0, `iteration ${it}: key ${x.cpu * 1000 + k} lost`);
            assert.equal(dv.getUint32(4, true), want);
            assert.equal(dv.getBigUint64(8, true), BigInt(want) * 2n);
          }
          checkedKeys++;
        }
      }
      const r = map.stats().recovered - before;
      recovered += r;
      if (r > 0) iterationsWithRecovery++;
      map.close();
    }
    console.log(
      `# kill ${name}: ${ITERATIONS} iterations, ${checkedKeys} survivor keys checked, ` +
        `${recovered} locks/operations recovered in ${iterationsWithRecovery} iterations`,
    );
  });

test(`kill a worker mid-swap of a HASH_OF_MAPS in a MapDomain, ${Math.ceil(ITERATIONS / 4)} times: survivors' outer entries intact, inner maps sound`, {
  timeout: 600_000,
}, async () => {
  const { MapDomain } = await import("../../src/domain/map-domain.js");
  const outerScript = new URL("../fixtures/outer-kill-worker.js", import.meta.url);
  const iterations = Math.ceil(ITERATIONS / 4);
  let checked = 0;
  let recovered = 0;
  for (let it = 0; it < iterations; it++) {
    const domain = MapDomain.create({ nrCpus: 4, cpu: 0, maxMaps: 16, maxBytes: 8 << 20 });
    const inner = [0, 1, 2].map(
      () => domain.createMap({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 64 }) as Htab,
    );
    const outer = domain.createMap({
      type: MapType.HashOfMaps,
      keySize: 4,
      valueSize: 4,
      maxEntries: 24,
      innerMap: inner[0].info.id,
    });
    const victim = 1 + (it % 3);
    const progress = new SharedArrayBuffer(16);
    const p32 = new Int32Array(progress);
    const workers = [1, 2, 3].map((cpu) => {
      const w = new Worker(outerScript, {
        workerData: {
          handle: domain.handle,
          progress,
          cpu,
          outer: outer.info.id,
          inner: inner.map((m) => m.info.id),
          keys: 8,
          ops: cpu === victim ? 1e9 : 4000,
          seed: 77 + it * 3 + cpu,
        },
      });
      return { w, cpu, done: survivorModel(w, () => cpu === victim && domain.reap(cpu)) };
    });
    const at = 100 + Math.floor(Math.random() * 2000);
    while (Atomics.load(p32, victim) < at) await new Promise((r) => setTimeout(r, 1));
    await workers[victim - 1].w.terminate();
    const results = await Promise.all(workers.map((x) => x.done));
    const out = new Uint8Array(4);
    for (const x of workers) {
      if (x.cpu === victim) continue;
      const model = new Map(results[x.cpu - 1]!);
      for (let k = 0; k < 8; k++) {
        const key = new Uint8Array(new Uint32Array([x.cpu * 1000 + k]).buffer);
        const want = model.get(x.cpu * 1000 + k);
        const err = outer.lookupElem(key, out, 0);
        if (want === undefined)
          assert.equal(err, -2, `iteration ${it}: outer key ${x.cpu * 1000 + k} should be absent`);
        else {
          assert.equal(err, 0, `iteration ${it}: outer key ${x.cpu * 1000 + k} lost`);
          assert.equal(
            new DataView(out.buffer).getUint32(0, true),
            want,
            `iteration ${it}: outer key points elsewhere`,
          );
        }
        checked++;
      }
    }
    for (const m of inner) {
      const f = m.fsck();
      assert.ok(f.ok, `iteration ${it}: ${f.errors.join("; ")}`);
      recovered += m.stats().recovered;
    }
    // The outer map still takes swaps, into the victim's keys too (their locks and counts
    // were recovered): one of them is deleted if present, so a full map has room for it.
    const vkey = new Uint8Array(new Uint32Array([victim * 1000]).buffer);
    outer.deleteElem(vkey);
    assert.equal(outer.updateElem(vkey, new Uint8Array(new Uint32Array([inner[1].info.id]).buffer), 0), 0);
    domain.close();
  }
  console.log(
    `# kill HASH_OF_MAPS swaps: ${iterations} iterations, ${checked} survivor outer keys checked, ${recovered} inner-map recoveries`,
  );
});
