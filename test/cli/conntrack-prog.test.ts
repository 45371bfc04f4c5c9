/** The conntrack datapath program: creates, refreshes in place, refuses when full; the control plane sees every step. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CT_PROG_CREATED,
  CT_PROG_NOT_CREATED,
  CT_PROG_REFRESHED,
  loadConntrackProgram,
} from "../../src/cli/conntrack-prog.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import { MapType } from "../../src/uapi.js";
import { kernelSkipReason } from "../helpers/kernel.js";

test("conntrack program: a new flow is created, a tracked one refreshed in place, a full map refuses", {
  skip: kernelSkipReason(),
}, () => {
  const m = KernelMap.create({
    type: MapType.Hash,
    keySize: 16,
    valueSize: 32,
    maxEntries: 2,
    name: "ct_test",
  });
  const prog = loadConntrackProgram(m);
  const run = prog.runner(64);
  const pkt = new DataView(run.data.buffer, run.data.byteOffset, 64);
  const send = (flow: number, us: bigint) => {
    run.data.fill(0);
    run.data[0] = flow;
    pkt.setBigUint64(16, us, true);
    return run.run();
  };
  try {
    assert.equal(send(1, 100n), CT_PROG_CREATED);
    assert.equal(send(1, 250n), CT_PROG_REFRESHED);
    assert.equal(send(2, 300n), CT_PROG_CREATED);
    assert.equal(send(3, 400n), CT_PROG_NOT_CREATED, "map full");
    const key = new Uint8Array(16);
    key[0] = 1;
    const v = new Uint8Array(32);
    assert.equal(m.lookupElem(key, v, 0), 0);
    // last_seen, packets, bytes, created
    assert.deepEqual([...new BigUint64Array(v.buffer)], [250n, 2n, 1564n, 100n]);
    // A control-plane delete is seen by the next packet, which creates the flow again.
    assert.equal(m.deleteElem(key), 0);
    assert.equal(send(1, 500n), CT_PROG_CREATED);
    const short = prog.testRun(new Uint8Array(14));
    assert.equal(short.retval, 0, "a packet too short for a key and a time");
  } finally {
    run.free();
    prog.close();
    m.close();
  }
});
