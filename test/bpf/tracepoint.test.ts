/**
 * Tracepoint programs (`tracepoint/…`, `tp/…`) on the shared-memory backend:
 * the caller's raw record is the context, read-only, as the verifier keeps
 * it (tp_prog_is_valid_access). The kernel's BPF_PROG_TEST_RUN has no test
 * run for them (checked here), so this backend is the only place to run one.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { BpfRunError } from "../../src/bpf/interp.js";
import { openObject, ProgType } from "../../src/bpf/loader.js";
import { LoadedObject } from "../../src/bpf/object.js";
import { BpfError } from "../../src/errors.js";
import { KernelObject } from "../../src/kernel/object.js";
import { kernelSkipReason } from "../helpers/kernel.js";
import { clangSkipReason } from "./kernel-object.js";

const noClang = clangSkipReason();

const SOURCE = `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
/* The layout of syscalls:sys_enter_openat's record (its format file). */
struct openat_args { unsigned long long common; long nr; long dfd; const char *filename; long flags; long mode; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, long); __type(value, __u64); __uint(max_entries, 16); } by_flags SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_openat")
int on_openat(struct openat_args *a)
{
	long flags = a->flags;
	__u64 one = 1, *n = bpf_map_lookup_elem(&by_flags, &flags);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&by_flags, &flags, &one, BPF_ANY);
	return a->nr == 257 ? 0 : 1;
}
SEC("tp/syscalls/sys_enter_openat")
int writes_ctx(struct openat_args *a)
{
	a->flags = 0;
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
`;

function compile(): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "htab-tp-"));
  writeFileSync(join(dir, "tp.c"), SOURCE);
  execFileSync("clang-19", [
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-mcpu=v4",
    "-I/usr/include/x86_64-linux-gnu",
    "-c",
    join(dir, "tp.c"),
    "-o",
    join(dir, "tp.o"),
  ]);
  return new Uint8Array(readFileSync(join(dir, "tp.o")));
}

function record(nr: number, flags: number): Uint8Array {
  const b = new Uint8Array(48);
  const dv = new DataView(b.buffer);
  dv.setBigInt64(8, BigInt(nr), true);
  dv.setBigInt64(32, BigInt(flags), true);
  return b;
}

test("a tracepoint program runs on a raw record the caller gives, which it may not write", {
  skip: noClang,
}, () => {
  const obj = LoadedObject.load(compile(), { name: "tp" });
  assert.equal(obj.spec.programs[0].type, ProgType.Tracepoint);
  const p = obj.program("on_openat");
  for (const [nr, flags] of [
    [257, 0],
    [257, 0o2],
    [257, 0],
    [2, 0o101],
  ])
    assert.equal(p.run(new Uint8Array(0), { ctx: record(nr, flags) }).retval, nr === 257 ? 0 : 1);
  const k = (n: number) => new Uint8Array(new BigInt64Array([BigInt(n)]).buffer);
  const v = new Uint8Array(8);
  const count = (flags: number) =>
    obj.map("by_flags").lookupElem(k(flags), v) === 0 ? new DataView(v.buffer).getBigUint64(0, true) : 0n;
  assert.deepEqual([count(0), count(0o2), count(0o101)], [2n, 1n, 1n]);
  assert.throws(
    () => obj.program("writes_ctx").run(new Uint8Array(0), { ctx: record(257, 1) }),
    (e: unknown) => e instanceof BpfRunError && e.code === "EFAULT" && /ctx.*read-only/.test(e.message),
  );
  // Reading past the record the caller gave faults too.
  assert.throws(
    () => p.run(new Uint8Array(0), { ctx: new Uint8Array(16) }),
    (e: unknown) => e instanceof BpfRunError && e.code === "EFAULT" && /out of bounds/.test(e.message),
  );
  assert.equal(obj.map("by_flags").fsck().ok, true);
  obj.close();
});

test("the kernel has no test run for tracepoint programs: it loads one and refuses BPF_PROG_TEST_RUN", {
  skip: noClang ?? kernelSkipReason(),
}, () => {
  const k = KernelObject.fromSpec(openObject(compile(), { name: "tp" }), { programs: ["on_openat"] });
  try {
    assert.throws(
      () => k.program("on_openat").prog.testRun(record(257, 0).subarray(0, 48)),
      (e: unknown) => e instanceof BpfError && /BPF_PROG_TEST_RUN failed/.test(e.message),
    );
  } finally {
    k.close();
  }
});
