/**
 * Snapshot demo writer: a "program" that, per event, adds 1 to PACKETS and
 * 100 to BYTES of the inner map the outer map points at, both in one section.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { Htab } from "../core/htab.js";
import type { OuterMap } from "../domain/inner.js";
import { MapDomain } from "../domain/map-domain.js";
import { BYTES, PACKETS, SLOT, STOP_I32 } from "./snapshot-layout.js";

const d = workerData as {
  domain: { sab: SharedArrayBuffer };
  outerId: number;
  cpu: number;
  control: SharedArrayBuffer;
};
const control = new Int32Array(d.control);
const domain = MapDomain.attach(d.domain, { cpu: d.cpu });
const outer = domain.mapById(d.outerId) as OuterMap;
let events = 0;
while (Atomics.load(control, STOP_I32) === 0) {
  for (let i = 0; i < 64; i++) {
    outer.enter();
    const m = outer.lookupInner(SLOT) as Htab;
    m.lookupRef(PACKETS)?.fetchAdd64(0, 1n);
    m.lookupRef(BYTES)?.fetchAdd64(0, 100n);
    outer.exit();
    events++;
  }
}
domain.close();
parentPort?.postMessage(events);
