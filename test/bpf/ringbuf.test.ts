/**
 * BPF_MAP_TYPE_RINGBUF (src/bpf/ringbuf.ts): a clang-built program fills a
 * ring on htab and in the kernel with the same packets; return values,
 * helper results and the positions bpf_ringbuf_query reports (record sizes,
 * headers, rounding, discards, a full ring) are identical. The records are
 * then consumed from TypeScript, in order, discarded ones skipped, and a
 * worker thread produces while this one polls.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { openObject } from "../../src/bpf/loader.js";
import { LoadedObject } from "../../src/bpf/object.js";
import { RB_BUSY, RB_DISCARD, RingBuf } from "../../src/bpf/ringbuf.js";
import { BpfError } from "../../src/errors.js";
import { kernelSkipReason } from "../helpers/kernel.js";
import { clangSkipReason, compileFixture, KernelObject } from "./kernel-object.js";

const noClang = clangSkipReason();
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function pkt(seed: number): Uint8Array {
  const p = new Uint8Array(64);
  let x = seed * 2654435761 + 11;
  for (let i = 0; i < p.length; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    p[i] = x & 0xff;
  }
  return p;
}

test("a program filling a RINGBUF: helper results and positions identical on htab and in the kernel, until it is full", {
  skip: noClang ?? kernelSkipReason(),
}, () => {
  const bytes = compileFixture("ringbuf");
  const spec = openObject(bytes, { name: "ringbuf" });
  const obj = LoadedObject.load(bytes, { name: "ringbuf" });
  const k = new KernelObject(spec, "ringbuf");
  const seen = new Set<string>();
  try {
    for (let i = 0; i < 40; i++) {
      const p = pkt(i);
      if (i === 0) p.set([0, 255], 0); // an output with an invalid flag (4)
      assert.equal(obj.program("ringbuf").run(p).retval, k.prog.testRun(p).retval);
      const mine = new BigInt64Array(obj.global(".bss").bytes.slice().buffer);
      const theirs = new BigInt64Array(k.global(spec, ".bss").buffer);
      assert.deepEqual([...mine], [...theirs], `packet ${i}`);
      for (const r of mine.slice(0, 8)) seen.add(String(r));
    }
  } finally {
    k.close();
  }
  // Outputs that fit (0), that did not (-EAGAIN), invalid flags (-EINVAL), reserves that failed (-1).
  for (const r of ["0", "-11", "-22", "-1", "1"]) assert.ok(seen.has(r), `result ${r} seen: ${[...seen]}`);
  const rb = obj.ringbuf("rb");
  assert.ok(rb.query(0) > 4000n, "the ring is nearly full");
  // Consume: every submitted record in order; the discarded ones skipped; positions advance.
  const records: Uint8Array[] = [];
  const n = rb.consume((d) => records.push(d));
  assert.equal(n, records.length);
  assert.ok(n > 5);
  for (const r of records)
    if (r.length >= 16 && r[15] === 0x5a) assert.equal(r[1], 0, "a discarded record was passed");
  assert.equal(rb.query(0), 0n);
  assert.equal(rb.query(2), rb.query(3));
  // Room again: the program's outputs succeed.
  const p = new Uint8Array(64);
  assert.equal(obj.program("ringbuf").run(p).retval, 2);
  assert.equal(new BigInt64Array(obj.global(".bss").bytes.slice().buffer)[0], 0n);
  obj.close();
});

test("RingBuf: the kernel's size rules, record headers, wrap-around, a full ring", async () => {
  assert.throws(
    () => RingBuf.create("x", 1000),
    (e: unknown) => e instanceof BpfError && e.code === "EINVAL",
  );
  assert.throws(
    () => RingBuf.create("x", 3 * 4096),
    (e: unknown) => e instanceof BpfError && e.code === "EINVAL",
  );
  assert.throws(
    () => RingBuf.create("x", 4096, 4),
    (e: unknown) => e instanceof BpfError && e.code === "EINVAL",
  );
  const rb = RingBuf.create("r", 4096);
  // A record reserved and not committed stops the consumer (BUSY); a discarded one is skipped.
  const a = rb.reserve(10, 0);
  assert.equal(a, 8);
  assert.equal(new DataView(rb.sab, 32).getUint32(0, true), (10 | RB_BUSY) >>> 0);
  const b = rb.reserve(3, 0);
  assert.equal(b, 8 + 24, "records are 8-byte aligned, header included");
  rb.data.set([1, 2, 3], b);
  rb.commit(b, false, 0);
  assert.equal(
    rb.consume(() => {}),
    0,
    "the first record is still reserved",
  );
  rb.commit(a, true, 0);
  assert.equal(new DataView(rb.sab, 32).getUint32(0, true), (10 | RB_DISCARD) >>> 0);
  const got: string[] = [];
  assert.equal(
    rb.consume((d) => got.push(hex(d))),
    1,
  );
  assert.deepEqual(got, ["010203"]);
  // Wrap-around: records cross the end of the ring and come back whole.
  const sent: string[] = [];
  const recv: string[] = [];
  for (let i = 0; i < 200; i++) {
    const size = 1 + ((i * 37) % 300);
    const at = rb.reserve(size, 0);
    assert.ok(at >= 0, `reserve ${i}`);
    const data = Uint8Array.from({ length: size }, (_, j) => (i + j) & 0xff);
    rb.data.set(data, at);
    rb.commit(at, false, 0);
    sent.push(hex(data));
    rb.consume((d) => recv.push(hex(d)));
  }
  assert.deepEqual(recv, sent);
  // A full ring refuses (size - 1 bytes ahead of the consumer at most).
  let filled = 0;
  while (rb.reserve(100, 0) >= 0) filled++;
  assert.equal(filled, Math.floor(4095 / 112));
});

test("a worker's program produces into a RINGBUF while this thread polls it: every committed record consumed once, in order of position", {
  skip: noClang,
}, async () => {
  const obj = LoadedObject.load(compileFixture("ringbuf"), { name: "ringbuf", nrCpus: 4 });
  const rb = obj.ringbuf("rb");
  const R = 500; // 8 one-byte outputs per run: 4000 records of 16 bytes through a 4096-byte ring
  const w = new Worker(new URL("../fixtures/bpf/object-worker.js", import.meta.url), {
    workerData: { handle: obj.handle(), cpu: 1, program: "ringbuf", repeat: R },
  });
  let done = false;
  const finished = new Promise<void>((resolve, reject) => {
    w.once("message", () => {
      done = true;
      resolve();
    });
    w.once("error", reject);
  });
  let consumed = 0;
  let bad = 0;
  const take = (d: Uint8Array) => {
    consumed++;
    if (d.length !== 1 || d[0] !== 0) bad++;
  };
  while (!done) {
    rb.poll(take, 2);
    await new Promise((r) => setImmediate(r));
  }
  await finished;
  rb.consume(take);
  assert.equal(bad, 0);
  process.stdout.write(`# ${consumed} of ${8 * R} outputs fit and were consumed\n`);
  assert.ok(consumed > 255, `more than one ring's worth consumed while producing: ${consumed}`);
  // Every successful output is one 16-byte record, and each was consumed once.
  assert.equal(rb.query(3), BigInt(consumed * 16));
  assert.equal(rb.query(2), rb.query(3));
  assert.equal(rb.query(0), 0n);
  obj.close();
});
