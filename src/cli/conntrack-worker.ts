/**
 * `htab conntrack` worker: a datapath that inserts and refreshes flows, or
 * the garbage collector that sweeps expired ones in batches, on a SAB map
 * or a real kernel map. The datapath is one BPF program on both
 * (conntrack-prog.ts): compiled on the SAB map, in a loaded object this
 * worker attaches on its own CPU slot; run with BPF_PROG_TEST_RUN on the
 * kernel map.
 */
import { parentPort, workerData } from "node:worker_threads";
import { LoadedObject, type ObjectHandle } from "../bpf/object.js";
import { xorshift32 } from "../check/xorshift.js";
import type { Htab } from "../core/htab.js";
import { KernelMap } from "../kernel/kernel-map.js";
import type { MapInfo, RawMap } from "../map/raw-map.js";
import {
  CT_AVOIDED,
  CT_BROKEN,
  CT_COMPARE_OFFSET,
  CT_COMPARE_SIZE,
  CT_EXPIRED,
  CT_FULL,
  CT_KEY_SIZE,
  CT_LIVE_DELETED,
  CT_NEW,
  CT_PACKETS,
  CT_REFRESH,
  CT_SWEEPS,
  CT_VALUE_SIZE,
  CT_WORDS,
  type GcMode,
} from "./conntrack-layout.js";
import {
  CT_PACKET_BYTES,
  CT_PROG_CREATED,
  CT_PROG_NAME,
  CT_PROG_REFRESHED,
  loadConntrackProgram,
} from "./conntrack-prog.js";

interface Data {
  role: "datapath" | "gc";
  /** The SAB backend: the loaded object holding the map and the program. */
  object?: ObjectHandle;
  kernel?: { fd: number; info: MapInfo };
  stats: SharedArrayBuffer;
  /** Per-flow time of the last successful refresh, ms since `epoch` (datapath writes, datapath reads). */
  lastRefresh: SharedArrayBuffer;
  stop: SharedArrayBuffer;
  slot: number;
  /** Datapath workers: worker `slot` sends the packets of flows slot, slot + workers, … */
  workers: number;
  flows: number;
  timeoutMs: number;
  epoch: number;
  mode: GcMode;
  seed: number;
  batch: number;
}

const d = workerData as Data;
// Slot 0 is the main thread's; datapaths 1..workers, the GC the next.
const obj = d.object ? LoadedObject.attach(d.object, { cpu: d.slot + 1 }) : null;
const map: RawMap = obj ? (obj.map("ct") as Htab) : KernelMap.fromHandle(d.kernel!);
const stats = new Int32Array(d.stats, d.slot * CT_WORDS * 4, CT_WORDS);
const stop = new Int32Array(d.stop);
const lastRefresh = new Int32Array(d.lastRefresh);
const nowUs = () => BigInt(Date.now() - d.epoch) * 1000n;
const nowMs = () => Date.now() - d.epoch;

function setKey(key: Uint8Array, dv: DataView, f: number): void {
  dv.setUint32(0, 0x0a000000 | (f >>> 8), false);
  dv.setUint32(4, 0xc0a80001, false);
  dv.setUint16(8, 1024 + (f & 0xff) * 200, false);
  dv.setUint16(10, 443, false);
  dv.setUint32(12, 6, true);
  key[15] = f & 0xff;
}

if (d.role === "datapath") {
  const key = new Uint8Array(CT_KEY_SIZE);
  const kv = new DataView(key.buffer);
  const next = xorshift32(d.seed);
  // Each flow's packets come to one worker (one CPU, as RSS steers a flow's packets to one
  // queue): its refreshes never race each other, so last_seen never goes backwards, and
  // the only race left is the GC's.
  const mine = Math.ceil((d.flows - d.slot) / d.workers);
  let now = 0n;
  // The datapath program on each packet: compiled on the SAB map, BPF_PROG_TEST_RUN on the kernel's.
  const prog = obj ? null : loadConntrackProgram(map as KernelMap);
  const compiled = obj?.program(CT_PROG_NAME) ?? null;
  const testRun = prog?.runner(CT_PACKET_BYTES) ?? null;
  const data = testRun?.data ?? new Uint8Array(CT_PACKET_BYTES);
  const packet = new DataView(data.buffer, data.byteOffset, CT_PACKET_BYTES);
  const run = (): number => (compiled ? compiled.run(data).retval : (testRun as { run(): number }).run());
  while (Atomics.load(stop, 0) === 0) {
    for (let burst = 0; burst < 128; burst++) {
      const f = d.slot + d.workers * (next() % mine);
      setKey(key, kv, f);
      data.set(key, 0);
      now = nowUs();
      packet.setBigUint64(16, now, true);
      const ret = run();
      const existed = ret === CT_PROG_REFRESHED;
      const r = ret === CT_PROG_REFRESHED || ret === CT_PROG_CREATED ? 0 : -7;
      Atomics.add(stats, CT_PACKETS, 1);
      if (r !== 0) {
        Atomics.add(stats, CT_FULL, 1);
        continue;
      }
      if (existed) Atomics.add(stats, CT_REFRESH, 1);
      else {
        Atomics.add(stats, CT_NEW, 1);
        // Read the clock after the update: the GC's delete came before it, so a flow
        // deleted legitimately (idle > timeout at the GC's clock) always shows a gap > timeout.
        const after = nowMs();
        const last = Atomics.load(lastRefresh, f);
        if (last > 0 && after - last < d.timeoutMs - 1) Atomics.add(stats, CT_BROKEN, 1);
      }
      // Record the packet time written into last_seen; keep the latest (workers race here).
      const ms = Number(now / 1000n);
      for (let old = Atomics.load(lastRefresh, f); old < ms; old = Atomics.load(lastRefresh, f))
        if (Atomics.compareExchange(lastRefresh, f, old, ms) === old) break;
    }
  }
  testRun?.free();
  prog?.close();
} else {
  const cap = d.batch;
  const keys = new Uint8Array(cap * 4 * CT_KEY_SIZE);
  const values = new Uint8Array(cap * 4 * CT_VALUE_SIZE);
  const out = new Uint8Array(CT_VALUE_SIZE);
  const expected = new Uint8Array(CT_COMPARE_SIZE);
  while (Atomics.load(stop, 0) === 0) {
    let cursor: number | null = null;
    let count = cap;
    for (;;) {
      const r = map.lookupBatch({ inBatch: cursor, count, keys, values });
      if (r.err === -28) {
        count = Math.min(count * 2, cap * 4);
        continue;
      }
      const cutoff = nowUs() - BigInt(d.timeoutMs * 1000);
      const vdv = new DataView(values.buffer);
      for (let i = 0; i < r.count; i++) {
        if (vdv.getBigUint64(i * CT_VALUE_SIZE, true) >= cutoff) continue;
        const key = keys.subarray(i * CT_KEY_SIZE, (i + 1) * CT_KEY_SIZE);
        const snap = values.subarray(i * CT_VALUE_SIZE, (i + 1) * CT_VALUE_SIZE);
        if (d.mode === "delete") {
          // Cilium today: decide from the snapshot, delete by key. lookupAndDelete deletes
          // exactly as delete does, and tells us what was deleted.
          if (map.lookupAndDeleteElem(key, out) !== 0) continue;
          Atomics.add(stats, CT_EXPIRED, 1);
          let same = true;
          for (let j = 0; j < CT_COMPARE_SIZE; j++)
            same &&= out[CT_COMPARE_OFFSET + j] === snap[CT_COMPARE_OFFSET + j];
          if (!same) Atomics.add(stats, CT_LIVE_DELETED, 1);
        } else {
          expected.set(snap.subarray(CT_COMPARE_OFFSET, CT_COMPARE_OFFSET + CT_COMPARE_SIZE));
          const e = map.compareAndDeleteElem!(key, expected, CT_COMPARE_OFFSET, CT_COMPARE_SIZE);
          if (e === 0) Atomics.add(stats, CT_EXPIRED, 1);
          else if (e === -16) Atomics.add(stats, CT_AVOIDED, 1);
        }
      }
      if (r.err !== 0 || r.outBatch === null) break;
      cursor = r.outBatch;
      count = cap;
    }
    Atomics.add(stats, CT_SWEEPS, 1);
  }
}
if (obj) obj.close();
else map.close();
parentPort?.postMessage("done");
