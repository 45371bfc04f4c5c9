/** 5-tuple-like keys: 16-byte key, 64-byte value, htab against a Map keyed by a latin1 string. */
import { Htab } from "../../src/core/htab.js";
import { MapType } from "../../src/uapi.js";
import { ORDER_LEN, ORDER_MASK, order } from "../keys.js";
import type { BenchOptions } from "../options.js";
import { OPS, type Task } from "./task.js";

export function wideTasks(entries: number, o: BenchOptions, cleanup: (() => unknown)[]): Task[] {
  const h = Htab.create(
    { type: MapType.Hash, keySize: 16, valueSize: 64, maxEntries: entries },
    { nrCpus: 2, fastPath: !o.jsPath },
  );
  cleanup.push(() => h.close());
  const vm = new Map<string, Uint8Array>();
  const keys: Uint8Array[] = [];
  let x = 12345;
  for (let i = 0; i < entries; i++) {
    const kk = new Uint8Array(16);
    for (let j = 0; j < 16; j++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      kk[j] = x & 0xff;
    }
    keys.push(kk);
    const val = new Uint8Array(64).fill(i & 0xff);
    h.updateElem(kk, val, 0);
    vm.set(Buffer.from(kk).toString("latin1"), val);
  }
  const ord = order(entries, ORDER_LEN, 11);
  let pos = 0;
  const out = new Uint8Array(64);
  let sink = 0;
  cleanup.push(() => void sink);
  const workload = "lookup hit, 16 B key / 64 B value";
  return [
    {
      workload,
      entries,
      peer: "htab",
      perCall: OPS,
      fn: () => {
        for (let i = 0; i < OPS; i++) {
          if (h.lookupElem(keys[ord[pos]], out, 0) === 0) sink++;
          pos = (pos + 1) & ORDER_MASK;
        }
      },
    },
    {
      workload,
      entries,
      peer: "V8 Map",
      perCall: OPS,
      fn: () => {
        for (let i = 0; i < OPS; i++) {
          const v = vm.get(Buffer.from(keys[ord[pos]].buffer, 0, 16).toString("latin1"));
          if (v !== undefined) {
            out.set(v);
            sink++;
          }
          pos = (pos + 1) & ORDER_MASK;
        }
      },
    },
  ];
}
