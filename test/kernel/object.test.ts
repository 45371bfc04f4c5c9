/**
 * The kernel backend's object loader (src/kernel/object.ts) on what the
 * differential replay test does not reach: LIBBPF_PIN_BY_NAME (a pin made,
 * reused when it matches, refused naming the field when it does not; the
 * SAB backend refusing pinning), a verifier refusal (VerifierError with
 * the log, the errno, the program named, nothing left open), the
 * `.rodata` frozen, and workers attaching the loader's object.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Worker } from "node:worker_threads";
import { LoadedObject } from "../../src/bpf/object.js";
import { BpfError } from "../../src/errors.js";
import { possibleCpus } from "../../src/kernel/bpf-syscall.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import { KernelObject } from "../../src/kernel/object.js";
import { VerifierError } from "../../src/kernel/program.js";
import { MapType } from "../../src/uapi.js";
import { clangSkipReason, compileFixture } from "../bpf/kernel-object.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const skip = kernelSkipReason() ?? clangSkipReason() ?? false;
let dir = "";
let fs = "";

before(() => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "htab-kobj-"));
  fs = mkdtempSync(join(tmpdir(), "htab-kobj-bpffs-"));
  execFileSync("mount", ["-t", "bpf", "bpf", fs]);
});

after(() => {
  if (fs !== "") {
    spawnSync("umount", [fs]);
    rmSync(fs, { recursive: true, force: true });
  }
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** Compile C source held by the test (not a shared fixture: the SAB backend refuses some on purpose). */
function compile(name: string, source: string): Uint8Array {
  const c = join(dir, `${name}.c`);
  writeFileSync(c, source);
  const multiarch =
    spawnSync("gcc", ["-print-multiarch"], { encoding: "utf8" }).stdout?.trim() || "x86_64-linux-gnu";
  execFileSync("clang-19", [
    "-O2",
    "-g",
    "-target",
    "bpf",
    `-I/usr/include/${multiarch}`,
    "-c",
    c,
    "-o",
    `${c}.o`,
  ]);
  return new Uint8Array(readFileSync(`${c}.o`));
}

const PINNED = `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seen SEC(".maps");
SEC("xdp")
int count(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 one = 1, *v = bpf_map_lookup_elem(&seen, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&seen, &k, &one, BPF_NOEXIST);
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
`;

function counted(m: KernelMap): bigint {
  const v = new Uint8Array(8);
  assert.equal(m.lookupElem(new Uint8Array(4), v), 0);
  return new DataView(v.buffer).getBigUint64(0, true);
}

test("LIBBPF_PIN_BY_NAME: pinned at load, reused by the next load (same map, counts go on); an incompatible pin is EINVAL naming the field; SAB refuses pinning", {
  skip,
}, () => {
  const bytes = compile("pinned", PINNED);
  const a = KernelObject.load(bytes, { name: "pinned", pinRoot: fs });
  a.program("count").run(new Uint8Array(64), { repeat: 3 });
  const id = a.map("seen").info.id;
  a.close();
  assert.ok(readdirSync(fs).includes("seen"), "pinned under pinRoot by its name");
  const b = KernelObject.load(bytes, { name: "pinned", pinRoot: fs });
  try {
    assert.equal(b.map("seen").info.id, id, "the pinned map is reused");
    b.program("count").run(new Uint8Array(64), { repeat: 2 });
    assert.equal(counted(b.map("seen")), 5n);
  } finally {
    b.close();
  }
  KernelMap.unpin(join(fs, "seen"));
  const other = KernelMap.create({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 32 });
  other.pin(join(fs, "seen"));
  other.close();
  assert.throws(
    () => KernelObject.load(bytes, { name: "pinned", pinRoot: fs }),
    (e: unknown) =>
      e instanceof BpfError &&
      e.code === "EINVAL" &&
      /map 'seen': the map pinned at .*seen cannot be reused/.test(e.message) &&
      /maxEntries/.test(e.message),
  );
  KernelMap.unpin(join(fs, "seen"));
  assert.throws(
    () => LoadedObject.load(bytes, { name: "pinned" }),
    (e: unknown) => e instanceof BpfError && e.code === "EOPNOTSUPP" && /pinning/.test(e.message),
  );
});

test("a verifier refusal is a VerifierError: the kernel's errno, the program named, the verifier's log; the maps made are closed", {
  skip,
}, () => {
  const bytes = compile(
    "refused",
    `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
} m SEC(".maps");
SEC("xdp")
int no_null_check(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&m, &k);
	return *v; /* the verifier wants the NULL check */
}
char LICENSE[] SEC("license") = "GPL";
`,
  );
  const fds = () => readdirSync("/proc/self/fd").length;
  const before = fds();
  assert.throws(
    () => KernelObject.load(bytes, { name: "refused" }),
    (e: unknown) =>
      e instanceof VerifierError &&
      e.code === "EACCES" &&
      /program 'no_null_check' \(xdp\)/.test(e.message) &&
      /invalid mem access 'map_value_or_null'/.test(e.log),
  );
  assert.equal(fds(), before, "no fd left open");
});

test(".rodata is frozen and read-only to programs, .data writable from TypeScript: the next run sees it", {
  skip,
}, () => {
  const k = KernelObject.load(compileFixture("globals_calls"), { name: "globals_calls" });
  try {
    const ro = k.global(".rodata");
    assert.equal(ro.name, "globals_.rodata");
    assert.deepEqual([...ro.read()], [7, 0, 0, 0]);
    assert.throws(
      () => ro.write(new Uint8Array([9, 0, 0, 0])),
      (e: unknown) => e instanceof BpfError && e.code === "EPERM",
    );
    const data = k.global(".data");
    data.write(new Uint8Array([100]), 0);
    assert.equal(data.variable("runs")[0], 100);
    k.program("globals_calls").run(new Uint8Array(64));
    assert.equal(data.variable("runs")[0], 101, "the program counted on from what TypeScript wrote");
  } finally {
    k.close();
  }
});

test("workers attach the loader's kernel object (its fds) and run on their own CPUs: the locked count adds up", {
  skip,
}, async () => {
  const k = KernelObject.load(compileFixture("seed003"), { name: "seed003" });
  try {
    const handle = k.handle();
    const cpus = Math.min(2, possibleCpus());
    const R = 50;
    const results = await Promise.all(
      Array.from(
        { length: cpus },
        (_, cpu) =>
          new Promise<{ retval: number }>((resolve, reject) => {
            const w = new Worker(new URL("../fixtures/bpf/kernel-object-worker.js", import.meta.url), {
              workerData: { handle, cpu, program: "sys_enter_count", repeat: R },
            });
            w.once("message", resolve);
            w.once("error", reject);
          }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.retval),
      Array(cpus).fill(2),
    );
    const v = new Uint8Array(8);
    assert.equal(k.map("concurrent_map").lookupElem(new Uint8Array(4), v), 0);
    assert.equal(new DataView(v.buffer).getInt32(4, true), cpus * R);
    assert.equal(new DataView(k.global(".bss").read().buffer).getBigUint64(0, true), BigInt(cpus * R));
  } finally {
    k.close();
  }
});
