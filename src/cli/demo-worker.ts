/**
 * `htab demo` worker. Phase "traffic": a conntrack-like mix on one shared map
 * of 5-tuple flows until told to stop, publishing its counters. Phase
 * "history": random logged operations for the linearizability check.
 */
import { parentPort, workerData } from "node:worker_threads";
import { recordRandomOps } from "../check/history.js";
import { xorshift32 } from "../check/xorshift.js";
import { Htab, type MapHandle } from "../core/htab.js";
import {
  STAT_EXPIRE,
  STAT_FULL,
  STAT_HIT,
  STAT_INSERT,
  STAT_LOOKUP,
  STAT_REFRESH,
  STAT_WORDS,
} from "./demo-stats.js";

interface Data {
  phase: "traffic" | "history";
  handle: MapHandle;
  stats: SharedArrayBuffer;
  stop: SharedArrayBuffer;
  clock: SharedArrayBuffer;
  slot: number;
  flows: number;
  ops: number;
  keys: number;
  seed: number;
}

const d = workerData as Data;
const map = Htab.attach(d.handle);

if (d.phase === "history") {
  const log = recordRandomOps(map, {
    ops: d.ops,
    keys: d.keys,
    id: d.slot + 1,
    seed: d.seed,
    clock: new Int32Array(d.clock),
  });
  map.close();
  parentPort!.postMessage(log, [log.buffer as ArrayBuffer]);
} else {
  const stats = new Int32Array(d.stats, d.slot * STAT_WORDS * 4, STAT_WORDS);
  const stop = new Int32Array(d.stop);
  // 5-tuple key: saddr, daddr, sport|dport, proto (16 bytes); value: last_seen u64, packets u32, bytes u32.
  const key = new Uint8Array(16);
  const kw = new Int32Array(key.buffer);
  const val = new Uint8Array(16);
  const vv = new DataView(val.buffer);
  const out = new Uint8Array(16);
  const ov = new DataView(out.buffer);
  const next = xorshift32(d.seed);
  let now = 0;
  while (Atomics.load(stop, 0) === 0) {
    for (let burst = 0; burst < 256; burst++) {
      const f = next() % d.flows;
      kw[0] = 0x0a000000 | f;
      kw[1] = 0xc0a80001;
      kw[2] = ((f * 7) & 0xffff) | (443 << 16);
      kw[3] = 6;
      const r = next() % 100;
      now++;
      if (r < 70) {
        // a packet of a known flow: look it up, refresh it if present
        Atomics.add(stats, STAT_LOOKUP, 1);
        if (map.lookupElem(key, out) === 0) {
          Atomics.add(stats, STAT_HIT, 1);
          vv.setBigUint64(0, BigInt(now), true);
          vv.setUint32(8, ov.getUint32(8, true) + 1, true);
          vv.setUint32(12, ov.getUint32(12, true) + 1500, true);
          if (map.updateElem(key, val, 2) === 0) Atomics.add(stats, STAT_REFRESH, 1);
        }
      } else if (r < 95) {
        // a new connection
        vv.setBigUint64(0, BigInt(now), true);
        vv.setUint32(8, 1, true);
        vv.setUint32(12, 64, true);
        const e = map.updateElem(key, val, 1);
        if (e === 0) Atomics.add(stats, STAT_INSERT, 1);
        else if (e === -7) Atomics.add(stats, STAT_FULL, 1);
      } else if (map.deleteElem(key) === 0) Atomics.add(stats, STAT_EXPIRE, 1);
    }
  }
  map.close();
  parentPort!.postMessage("done");
}
