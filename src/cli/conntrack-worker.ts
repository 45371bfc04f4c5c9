/**
 * `htab conntrack` worker: a datapath that inserts and refreshes flows, or
 * the garbage collector that sweeps expired ones in batches, on a SAB map
 * or (control plane only) a real kernel map.
 */
import { parentPort, workerData } from "node:worker_threads";
import { xorshift32 } from "../check/xorshift.js";
import { Htab, type MapHandle } from "../core/htab.js";
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
  CT_PROG_REFRESHED,
  loadConntrackProgram,
} from "./conntrack-prog.js";

interface Data {
  role: "datapath" | "gc";
  handle?: MapHandle;
  kernel?: { fd: number; info: MapInfo };
  stats: SharedArrayBuffer;
  /** Per-flow time of the last successful refresh, ms since `epoch` (datapath writes, datapath reads). */
  lastRefresh: SharedArrayBuffer;
  stop: SharedArrayBuffer;
  slot: number;
  flows: number;
  timeoutMs: number;
  epoch: number;
  mode: GcMode;
  seed: number;
  batch: number;
}

const d = workerData as Data;
const map: RawMap = d.handle ? Htab.attach(d.handle) : KernelMap.fromHandle(d.kernel!);
const htab = map instanceof Htab ? map : null;
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
  const val = new Uint8Array(CT_VALUE_SIZE);
  const vv = new DataView(val.buffer);
  const cur = new Uint8Array(CT_VALUE_SIZE);
  const cv = new DataView(cur.buffer);
  const next = xorshift32(d.seed);
  let existed = false;
  let now = 0n;
  let flow = 0;
  let lastBefore = 0;
  // A packet: refresh the flow if it is tracked, start tracking it otherwise.
  let seen: Uint8Array | undefined;
  let w: DataView<ArrayBufferLike> = cv;
  const onPacket = (c: Uint8Array | undefined): Uint8Array => {
    existed = c !== undefined;
    // The packet time is read under the bucket lock, so last_seen never goes backwards.
    now = nowUs();
    // So is the previous incarnation's last packet time: no refresh of the flow we are
    // about to create can be recorded before we read it.
    if (!existed) lastBefore = Atomics.load(lastRefresh, flow);
    if (c) {
      if (c !== seen) {
        // compute() hands the same buffer every time: make its view once.
        seen = c;
        w = new DataView(c.buffer, c.byteOffset, c.byteLength);
      }
      vv.setBigUint64(0, now, true);
      vv.setBigUint64(8, w.getBigUint64(8, true) + 1n, true);
      vv.setBigUint64(16, w.getBigUint64(16, true) + 1500n, true);
      vv.setBigUint64(24, w.getBigUint64(24, true), true);
    } else {
      vv.setBigUint64(0, now, true);
      vv.setBigUint64(8, 1n, true);
      vv.setBigUint64(16, 64n, true);
      vv.setBigUint64(24, now, true);
    }
    return val;
  };
  // On a kernel map the datapath is a real BPF program (conntrack-prog.ts), run on
  // each packet through BPF_PROG_TEST_RUN: it refreshes a flow in place, as Cilium's does.
  const prog = htab ? null : loadConntrackProgram(map as KernelMap);
  const run = prog?.runner(CT_PACKET_BYTES) ?? null;
  const packet = run ? new DataView(run.data.buffer, run.data.byteOffset, CT_PACKET_BYTES) : null;
  while (Atomics.load(stop, 0) === 0) {
    for (let burst = 0; burst < 128; burst++) {
      const f = next() % d.flows;
      flow = f;
      setKey(key, kv, f);
      let r: number;
      if (htab) r = htab.compute(key, onPacket);
      else {
        const pkt = run as { data: Uint8Array; run(): number };
        pkt.data.set(key, 0);
        now = nowUs();
        (packet as DataView).setBigUint64(16, now, true);
        const ret = pkt.run();
        existed = ret === CT_PROG_REFRESHED;
        r = ret === CT_PROG_REFRESHED || ret === CT_PROG_CREATED ? 0 : -7;
      }
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
        const last = htab ? lastBefore : Atomics.load(lastRefresh, f);
        if (last > 0 && after - last < d.timeoutMs - 1) Atomics.add(stats, CT_BROKEN, 1);
      }
      // Record the packet time written into last_seen; keep the latest (workers race here).
      const ms = Number(now / 1000n);
      for (let old = Atomics.load(lastRefresh, f); old < ms; old = Atomics.load(lastRefresh, f))
        if (Atomics.compareExchange(lastRefresh, f, old, ms) === old) break;
    }
  }
  run?.free();
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
map.close();
parentPort?.postMessage("done");
