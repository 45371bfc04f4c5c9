/**
 * The conntrack datapath program, one instruction list on both backends (a
 * kernel map through BPF_PROG_TEST_RUN, an htab map in a loaded object,
 * compiled): creates, refreshes, refuses when full; the control plane sees
 * every step.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CT_PROG_CREATED,
  CT_PROG_NAME,
  CT_PROG_NOT_CREATED,
  CT_PROG_REFRESHED,
  loadConntrackObject,
  loadConntrackProgram,
} from "../../src/cli/conntrack-prog.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import type { RawMap } from "../../src/map/raw-map.js";
import { MapType } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";

interface Datapath {
  map: RawMap;
  /** Run the program on a packet of `bytes` bytes whose first bytes are `data`; its return value. */
  run(data: Uint8Array, bytes: number): number;
  engine: string;
  close(): void;
}

function kernelDatapath(): Datapath {
  const map = KernelMap.create({
    type: MapType.Hash,
    keySize: 16,
    valueSize: 32,
    maxEntries: 2,
    name: "ct_test",
  });
  const prog = loadConntrackProgram(map);
  return {
    map,
    run: (data, bytes) => prog.testRun(data.subarray(0, bytes)).retval,
    engine: "kernel",
    close: () => {
      prog.close();
      map.close();
    },
  };
}

function htabDatapath(): Datapath {
  const obj = loadConntrackObject({ maxEntries: 2, lru: false, nrCpus: 2 });
  const prog = obj.program(CT_PROG_NAME);
  return {
    map: obj.map("ct"),
    run: (data, bytes) => prog.run(data.subarray(0, bytes)).retval,
    engine: prog.engine,
    close: () => obj.close(),
  };
}

const backends = [
  { name: "kernel", make: kernelDatapath, skip: kernelSkipReason() },
  { name: "htab, compiled", make: htabDatapath, skip: undefined },
];

for (const b of backends)
  test(`conntrack program (${b.name}): a new flow is created, a tracked one refreshed, a full map refuses`, {
    skip: b.skip,
  }, () => {
    const dp = b.make();
    const data = new Uint8Array(64);
    const pkt = new DataView(data.buffer);
    const send = (flow: number, us: bigint) => {
      data.fill(0);
      data[0] = flow;
      pkt.setBigUint64(16, us, true);
      return dp.run(data, 64);
    };
    try {
      if (b.name !== "kernel") assert.equal(dp.engine, "compiled");
      assert.equal(send(1, 100n), CT_PROG_CREATED);
      assert.equal(send(1, 250n), CT_PROG_REFRESHED);
      assert.equal(send(2, 300n), CT_PROG_CREATED);
      assert.equal(send(3, 400n), CT_PROG_NOT_CREATED, "map full");
      const key = new Uint8Array(16);
      key[0] = 1;
      const v = new Uint8Array(32);
      assert.equal(dp.map.lookupElem(key, v, 0), 0);
      // last_seen, packets, bytes, created
      assert.deepEqual([...new BigUint64Array(v.buffer)], [250n, 2n, 1564n, 100n]);
      // A control-plane delete is seen by the next packet, which creates the flow again.
      assert.equal(dp.map.deleteElem(key), 0);
      assert.equal(send(1, 500n), CT_PROG_CREATED);
      assert.equal(dp.run(data, 14), 0, "a packet too short for a key and a time");
    } finally {
      dp.close();
    }
  });
