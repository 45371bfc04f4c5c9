/**
 * Every C fixture of test/fixtures/bpf, compiled by clang-19, through
 * `htab replay` on both backends: {"op":"load"}, a few elements written into
 * its hash maps, then its programs run on seeded inputs (XDP packets of
 * several lengths, one too short; syscall contexts), with `repeat` and
 * `cpu`, every map dumped after every run. The two backends' outputs must
 * be the same, line for line: return values, data_out, ctx_out, errnos and
 * the dumps of the maps and globals (each dump's pairs in key order).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { openObject, ProgType } from "../../src/bpf/loader.js";
import { factoryFor, machineCpus } from "../../src/cli/backends.js";
import { objectLoaderFor } from "../../src/cli/objects.js";
import { Replayer, toHex } from "../../src/cli/replay.js";
import { MapType } from "../../src/uapi.js";
import { clangSkipReason, compileFixture } from "../bpf/kernel-object.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const fixtureDir = fileURLToPath(new URL("../../../test/fixtures/bpf/", import.meta.url));
const fixtures = readdirSync(fixtureDir)
  .filter((f) => f.endsWith(".c"))
  .map((f) => f.slice(0, -2))
  .sort();
const skip = kernelSkipReason() ?? clangSkipReason() ?? false;
const HASHES = new Set<number>([MapType.Hash, MapType.PercpuHash, MapType.LruHash, MapType.LruPercpuHash]);
const PERCPU = new Set<number>([MapType.PercpuHash, MapType.LruPercpuHash]);

/** xorshift32: the same inputs on both backends and on every run of the test. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function bytes(next: () => number, n: number, max = 256): Uint8Array {
  return Uint8Array.from({ length: n }, () => next() % max);
}

/** Run number `r` of program `prog`: a syscall context or a packet (the first one too short), with repeat and cpu now and then. */
function runLine(
  name: string,
  type: number,
  prog: number,
  r: number,
  next: () => number,
  nrCpus: number,
): string {
  const run: Record<string, unknown> = { op: "run", prog };
  if (type === ProgType.Syscall) {
    // u32 fields kept small: loop counts and CPU numbers stay in range.
    const ctx = bytes(next, 64, 1).map((_, i) => (i % 4 === 0 ? next() % 24 : 0));
    // foreach.c stops its walk at key ctx[0]: a key in the map would make the count depend
    // on the walk order, which the kernel's random hash seed makes differ from load to load.
    if (name === "foreach") ctx[0] = 3 + (ctx[0] % 20);
    run.ctx_in = toHex(ctx);
  } else {
    const len = r === 0 ? 13 : [14, 20, 60, 64, 128, 1500][next() % 6];
    const pkt = bytes(next, len);
    if (name === "xdp_adjust") pkt.fill(0, 0, 8); // its deltas: 0, the run keeps the packet
    run.data_in = toHex(pkt);
  }
  // Repeats run on what the previous one left (packet writes, head and tail moves), on both backends.
  if (r % 3 === 1) run.repeat = 1 + (next() % 3);
  if (r % 4 === 2 && nrCpus > 1) run.cpu = 1;
  return JSON.stringify(run);
}

/** The script for one fixture: load, seed its hash maps, run each program, dump every map after each run. */
function scriptFor(name: string, path: string, objBytes: Uint8Array): string[] {
  const spec = openObject(objBytes, { name });
  const next = rng(0x5eed + name.length * 7919 + name.charCodeAt(0));
  const nrCpus = machineCpus();
  const lines: string[] = [JSON.stringify({ op: "load", object: path })];
  // A PROG_ARRAY's values are program ids in the kernel (none on SAB): not compared; its effect is, through the runs.
  const dumps = spec.maps.flatMap((d, i) => (d.type === 3 ? [] : [JSON.stringify({ op: "dump", map: i })]));
  spec.maps.forEach((d, i) => {
    if (!HASHES.has(d.type) || d.global) return;
    const vb = PERCPU.has(d.type) ? Math.ceil(d.valueSize / 8) * 8 * nrCpus : d.valueSize;
    for (let k = 0; k < Math.min(3, d.maxEntries); k++) {
      const key = new Uint8Array(d.keySize);
      key[0] = k;
      const value = bytes(next, vb, 16);
      lines.push(JSON.stringify({ op: "update", map: i, key: toHex(key), value: toHex(value), flags: 0 }));
    }
  });
  lines.push(...dumps);
  spec.programs.forEach((p, prog) => {
    for (let r = 0; r < 10; r++) lines.push(runLine(name, p.type, prog, r, next, nrCpus), ...dumps);
  });
  return lines;
}

/**
 * A dump's pairs in key order: the kernel seeds each hash map's hash at
 * random (an object's maps have no BPF_F_ZERO_SEED), so its walk order is
 * not the SAB map's, nor the same from one load to the next.
 */
function sorted(out: Record<string, unknown>): Record<string, unknown> {
  if (!Array.isArray(out.keys) || !Array.isArray(out.values) || "count" in out) return out;
  const values = out.values as string[];
  const pairs = (out.keys as string[]).map((k, i) => [k, values[i]]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return { ...out, keys: pairs.map((p) => p[0]), values: pairs.map((p) => p[1]) };
}

function replay(backend: "sab" | "kernel", lines: string[]): string[] {
  const r = new Replayer(factoryFor(backend), objectLoaderFor(backend));
  try {
    return lines.map((l) => JSON.stringify(sorted(r.run(l))));
  } finally {
    r.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), "htab-replay-obj-"));

/**
 * Known divergences, each a finding for the SAB core, not a test to weaken:
 * the test runs and reports them as TODO until fixed. (None now: lru.c and
 * lru_pcpu.c, a full LRU map written from a program, match since an element
 * that only the run's own section holds up is reused at once when the run
 * never referenced it, and a replaced one it referenced keeps the key.)
 */
const KNOWN: Record<string, string> = {};
/** Fixtures whose programs draw bpf_get_prandom_u32(): their maps differ between two runs by design. */
const RANDOM: Record<string, string> = {
  seed000: "its programs pick flows with bpf_get_prandom_u32() (test/bpf/wasm/seed000.test.ts runs it)",
};

for (const name of fixtures)
  test(`${name}.c through replay: identical results, data_out and map dumps on sab and kernel`, {
    skip: skip || RANDOM[name] || false,
    todo: KNOWN[name],
  }, () => {
    const objBytes = compileFixture(name);
    const path = join(dir, `${name}.o`);
    writeFileSync(path, objBytes);
    const lines = scriptFor(name, path, objBytes);
    const sab = replay("sab", lines);
    const kernel = replay("kernel", lines);
    const load = JSON.parse(sab[0]) as { ok: boolean; programs?: unknown[] };
    assert.equal(load.ok, true, `load on sab: ${sab[0]}`);
    assert.equal(kernel[0], sab[0], "the load line");
    for (let i = 1; i < lines.length; i++) assert.equal(kernel[i], sab[i], `line ${i + 1}: ${lines[i]}`);
    // The runs did run: at least one ok on each program.
    const runs = sab.filter((_, i) => lines[i].startsWith('{"op":"run"'));
    assert.ok(
      runs.some((r) => r.startsWith('{"ok":true,"retval"')),
      `some run succeeded: ${runs.slice(0, 3).join(" ")}`,
    );
  });
