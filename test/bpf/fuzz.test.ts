/**
 * Bad programs and bad objects: mutated instruction streams (the
 * conformance suite's programs with random bytes changed) through
 * `htab prog exec`, and mutated clang-built objects through the loader and
 * a run: random bytes; structured mutations of the ELF (section headers,
 * symbols, relocations, .BTF, .BTF.ext, .maps); and mutated instructions
 * (opcodes, registers, offsets, immediates, jumps) of valid programs of
 * every type (xdp, socket, tc, syscall; maps, map-in-map, tail calls,
 * callbacks). Every outcome is a result or a typed BpfError (a load error
 * or a run error with an errno); nothing else is thrown, the maps stay
 * fsck-clean, and nothing hangs: the instruction budget bounds every run,
 * and a watchdog fails the test naming the round a worker is stuck in.
 * HTAB_BPF_FUZZ sets the rounds (default 4000 programs; objects: an eighth
 * of it for random bytes, a sixteenth per structured kind); `npm run soak` runs more.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { execRaw } from "../../src/bpf/exec.js";
import { LoadedObject } from "../../src/bpf/object.js";
import { xorshift32 } from "../../src/check/xorshift.js";
import { BpfError } from "../../src/errors.js";
import { parseDataFile } from "./conformance-data.js";
import { clangSkipReason, compileFixture } from "./kernel-object.js";

const ROUNDS = Number(process.env.HTAB_BPF_FUZZ ?? 4000);
const dir = fileURLToPath(new URL("../../../test/fixtures/bpf/conformance/", import.meta.url));

function mutate(rnd: () => number, src: Uint8Array, edits: number): Uint8Array {
  const b = src.slice();
  for (let i = 0; i < edits; i++) {
    const at = rnd() % b.length;
    switch (rnd() % 4) {
      case 0:
        b[at] = rnd() & 0xff;
        break;
      case 1:
        b[at] ^= 1 << (rnd() % 8);
        break;
      case 2:
        b[at] = [0, 0xff, 0x7f, 0x80, 0x95, 0x85, 0x18][rnd() % 7];
        break;
      default:
        b[at] = b[rnd() % b.length];
    }
  }
  return b;
}

test("mutated programs through prog exec: a result or a typed error, never anything else", () => {
  const programs = readdirSync(dir)
    .filter((f) => f.endsWith(".data"))
    .map((f) => parseDataFile(readFileSync(dir + f, "utf8")))
    .filter((t) => t !== undefined);
  const rnd = xorshift32(0xb9f);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < ROUNDS; i++) {
    const t = programs[rnd() % programs.length];
    const code = mutate(rnd, t.code, 1 + (rnd() % 4));
    const mem = t.memory.length > 0 && rnd() % 2 === 0 ? mutate(rnd, t.memory, 1) : t.memory;
    let key: string;
    try {
      execRaw(code, mem, { budget: 100_000 });
      key = "ok";
    } catch (e) {
      if (!(e instanceof BpfError))
        throw new Error(`round ${i}: ${e} is not a BpfError (program ${Buffer.from(code).toString("hex")})`);
      assert.match(e.message, /^(exec|run): /);
      key = `${e.op} ${e.code}`;
    }
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  process.stdout.write(
    `# ${ROUNDS} mutated programs: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(", ")}\n`,
  );
  assert.ok(
    (outcomes.get("ok") ?? 0) > 0 &&
      (outcomes.get("exec EINVAL") ?? 0) > 0 &&
      (outcomes.get("run EFAULT") ?? 0) > 0,
  );
});

const noClang = clangSkipReason();

test("mutated objects through the loader and a run: a result or a typed error, maps fsck-clean", {
  skip: noClang,
}, () => {
  const objects = ["seed003", "globals_calls", "map_flags", "xdp_ctx"].map((n) => compileFixture(n));
  const rnd = xorshift32(0x0e1f);
  const outcomes = new Map<string, number>();
  const rounds = Math.ceil(ROUNDS / 8);
  const pkt = new Uint8Array(64).fill(7);
  for (let i = 0; i < rounds; i++) {
    const src = objects[rnd() % objects.length];
    const bytes = mutate(rnd, src, 1 + (rnd() % 8));
    let key: string;
    try {
      const obj = LoadedObject.load(bytes, { name: "fuzz", budget: 100_000 });
      key = "loaded";
      for (const p of obj.spec.programs) {
        try {
          obj.program(p.name).run(pkt);
          key = "ran";
        } catch (e) {
          if (!(e instanceof BpfError)) throw e;
          key = `run ${e.code}`;
        }
      }
      for (const m of obj.htabs) assert.equal(m.fsck().ok, true, `round ${i}: fsck`);
    } catch (e) {
      if (!(e instanceof BpfError)) throw new Error(`round ${i}: ${(e as Error).stack} is not a BpfError`);
      key = `${e.op} ${e.code}`;
    }
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  process.stdout.write(
    `# ${rounds} mutated objects: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(", ")}\n`,
  );
  assert.ok((outcomes.get("ran") ?? 0) > 0, "some mutants still load and run");
});

const FIXTURES = [
  "seed003",
  "globals_calls",
  "map_flags",
  "xdp_ctx",
  "skb",
  "mim",
  "tailcall",
  "foreach",
  "loop",
  "percpu",
  "ringbuf",
  "lru",
  "xdp_load",
];
/** A round that reports no progress for this long is stuck. */
const WATCHDOG_MS = 30_000;

/** Run the fuzz worker in `mode`; resolve with its outcome counts, or fail naming the crash or the stuck round. */
function fuzzInWorker(mode: "elf" | "insn", rounds: number, seed: number): Promise<Record<string, number>> {
  const objects = FIXTURES.map((name) => ({ name, bytes: compileFixture(name) }));
  const w = new Worker(new URL("../fixtures/bpf/fuzz-worker.js", import.meta.url), {
    workerData: { mode, objects, rounds, seed },
  });
  return new Promise((resolve, reject) => {
    let last = "before the first round";
    let timer: NodeJS.Timeout;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        void w.terminate();
        reject(new Error(`watchdog: no progress for ${WATCHDOG_MS} ms, stuck in ${last}`));
      }, WATCHDOG_MS);
    };
    arm();
    w.on(
      "message",
      (m: {
        progress?: number;
        object?: string;
        crash?: string;
        bytes?: string;
        done?: Record<string, number>;
      }) => {
        if (m.progress !== undefined) {
          last = `round ${m.progress} (${m.object})`;
          arm();
        } else if (m.crash !== undefined) {
          clearTimeout(timer);
          void w.terminate();
          reject(new Error(`${m.crash}\nobject (base64): ${m.bytes}`));
        } else if (m.done !== undefined) {
          clearTimeout(timer);
          resolve(m.done);
        }
      },
    );
    w.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    w.on("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`the fuzz worker exited with ${code} in ${last}`));
    });
  });
}

for (const [mode, what, seed] of [
  ["elf", "structured ELF mutations (section headers, symbols, relocations, .BTF, .BTF.ext, .maps)", 0x5e1f],
  [
    "insn",
    "mutated instructions (opcodes, registers, offsets, immediates, jumps) of valid programs of every type",
    0x1a5,
  ],
] as const)
  test(`${what}: a result or a typed error, maps fsck-clean, no hang`, { skip: noClang }, async () => {
    const rounds = Math.ceil(ROUNDS / 16);
    const outcomes = await fuzzInWorker(mode, rounds, seed);
    process.stdout.write(
      `# ${rounds} ${mode} mutants: ${Object.entries(outcomes)
        .map(([k, n]) => `${k} ${n}`)
        .join(", ")}\n`,
    );
    assert.ok((outcomes.ran ?? 0) > 0, "some mutants still load and run");
    assert.ok(
      Object.keys(outcomes).some((k) => k.startsWith("load ")),
      "some mutants are refused at load",
    );
  });
