/**
 * Replay's `{"op":"run",…,"workers":N}` on the SAB backend: seed003 (a
 * global counter bumped with an atomic add, and a map value's count under
 * its bpf_spin_lock) run by N worker threads at once, each on its own CPU
 * slot with `repeat` R: every worker answers XDP_PASS and both counters end
 * at exactly N x R. The same on the kernel backend (2 workers pinned to
 * CPUs 0 and 1). Also the op's refusals.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { factoryFor, machineCpus } from "../../src/cli/backends.js";
import { bytesLoaderFor, objectName, readObject } from "../../src/cli/objects.js";
import { Replayer } from "../../src/cli/replay.js";
import { clangSkipReason, compileFixture } from "../bpf/kernel-object.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const skip = clangSkipReason() ?? false;
const XDP_PASS = 2;

/** A SAB replay session whose objects get `nrCpus` CPU slots (the machine may have fewer). */
function session(nrCpus: number): Replayer {
  const load = bytesLoaderFor("sab", nrCpus);
  return new Replayer(factoryFor("sab"), (path) => load(readObject("load", path), objectName(path)));
}

function u64(hex: string, at: number): bigint {
  return Buffer.from(hex, "hex").readBigUInt64LE(at);
}

test("seed003 in 3 workers x 200 repeats through replay: retvals in worker order, counters 600 exactly", {
  skip,
}, () => {
  const path = join(tmpdir(), `htab-replay-workers-${process.pid}.o`);
  writeFileSync(path, compileFixture("seed003"));
  const r = session(4);
  try {
    const loaded = r.run(JSON.stringify({ op: "load", object: path })) as {
      ok: boolean;
      maps: { map: number; name: string }[];
      programs: { prog: number; name: string }[];
    };
    assert.equal(loaded.ok, true);
    const mapOf = (name: string) => loaded.maps.find((m) => m.name.endsWith(name))?.map;
    const N = 3;
    const R = 200;
    const packet = "00".repeat(64);
    const out = r.run(JSON.stringify({ op: "run", prog: 0, data_in: packet, repeat: R, workers: N }));
    assert.deepEqual(out, { ok: true, retvals: [XDP_PASS, XDP_PASS, XDP_PASS] });
    const bss = r.run(JSON.stringify({ op: "lookup", map: mapOf(".bss"), key: "00000000" })) as {
      value: string;
    };
    assert.equal(u64(bss.value, 0), BigInt(N * R), "the global counter");
    const v = r.run(JSON.stringify({ op: "lookup", map: mapOf("concurrent_map"), key: "00000000" })) as {
      value: string;
    };
    assert.equal(Buffer.from(v.value, "hex").readInt32LE(4), N * R, "the locked count");
    // The workers gave their CPU slots back: the same again adds N x R more.
    r.run(JSON.stringify({ op: "run", prog: 0, data_in: packet, repeat: R, workers: N }));
    const bss2 = r.run(JSON.stringify({ op: "lookup", map: mapOf(".bss"), key: "00000000" })) as {
      value: string;
    };
    assert.equal(u64(bss2.value, 0), BigInt(2 * N * R));
    // More workers than free CPU slots (4 slots, replay holds one), or with "cpu": refused, nothing run.
    const tooMany = r.run(JSON.stringify({ op: "run", prog: 0, data_in: packet, workers: 4 })) as {
      ok: boolean;
      errno?: string;
    };
    assert.equal(tooMany.ok, false);
    assert.equal(tooMany.errno, "EINVAL");
    const withCpu = r.run(JSON.stringify({ op: "run", prog: 0, data_in: packet, workers: 1, cpu: 1 })) as {
      ok: boolean;
    };
    assert.equal(withCpu.ok, false);
    // A worker's run error comes back as the run's (a 13-byte XDP packet: EINVAL), naming the worker.
    const short = r.run(JSON.stringify({ op: "run", prog: 0, data_in: "00".repeat(13), workers: 2 })) as {
      ok: boolean;
      errno?: string;
    };
    assert.deepEqual([short.ok, short.errno], [false, "EINVAL"]);
    const bss3 = r.run(JSON.stringify({ op: "lookup", map: mapOf(".bss"), key: "00000000" })) as {
      value: string;
    };
    assert.equal(u64(bss3.value, 0), BigInt(2 * N * R), "the refused runs ran nothing");
  } finally {
    r.close();
  }
});

test("seed003 in 2 workers x 500 repeats through replay on the kernel backend (CPUs 0 and 1): counters 1000 exactly, as on sab", {
  skip: skip || kernelSkipReason() || (machineCpus() < 2 ? "needs 2 online CPUs" : false),
}, () => {
  const path = join(tmpdir(), `htab-replay-workers-k-${process.pid}.o`);
  writeFileSync(path, compileFixture("seed003"));
  const load = bytesLoaderFor("kernel", machineCpus());
  const r = new Replayer(factoryFor("kernel"), (p) => load(readObject("load", p), objectName(p)));
  try {
    const loaded = r.run(JSON.stringify({ op: "load", object: path })) as {
      ok: boolean;
      maps: { map: number; name: string }[];
    };
    assert.equal(loaded.ok, true);
    const mapOf = (name: string) => loaded.maps.find((m) => m.name.endsWith(name))?.map;
    const packet = "00".repeat(64);
    const out = r.run(JSON.stringify({ op: "run", prog: 0, data_in: packet, repeat: 500, workers: 2 }));
    assert.deepEqual(out, { ok: true, retvals: [XDP_PASS, XDP_PASS] });
    const bss = r.run(JSON.stringify({ op: "lookup", map: mapOf(".bss"), key: "00000000" })) as {
      value: string;
    };
    assert.equal(u64(bss.value, 0), 1000n, "the global counter");
    const v = r.run(JSON.stringify({ op: "lookup", map: mapOf("concurrent_map"), key: "00000000" })) as {
      value: string;
    };
    assert.equal(Buffer.from(v.value, "hex").readInt32LE(4), 1000, "the locked count");
    const tooMany = r.run(
      JSON.stringify({ op: "run", prog: 0, data_in: packet, workers: machineCpus() + 1 }),
    ) as {
      ok: boolean;
      errno?: string;
    };
    assert.deepEqual([tooMany.ok, tooMany.errno], [false, "EINVAL"]);
  } finally {
    r.close();
  }
});
