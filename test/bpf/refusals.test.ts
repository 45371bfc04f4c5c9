/**
 * What the shared-memory backend does not run is refused at load with a
 * BpfError naming the section, program and instruction (or the map): kfunc
 * calls and ksyms, arena casts, may_goto, load-acquire/store-release, indirect
 * jumps and jump tables, CO-RE relocations against types the object only
 * declares, the legacy `maps` section, unknown helper ids and helpers the
 * program type may not call, map types not here yet (QUEUE here). CO-RE relocations
 * against the object's own types resolve (the compiled offsets stand).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseElf } from "../../src/bpf/elf.js";
import { encodeInsns, type Insn, insn } from "../../src/bpf/isa.js";
import { LoadedObject } from "../../src/bpf/object.js";
import { BpfError } from "../../src/errors.js";
import { clangSkipReason } from "./kernel-object.js";

const noClang = clangSkipReason();

function compile(text: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "htab-refuse-"));
  writeFileSync(
    join(dir, "r.c"),
    `#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n${text}\nchar LICENSE[] SEC("license") = "GPL";\n`,
  );
  execFileSync("clang-19", [
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-mcpu=v4",
    "-I/usr/include/x86_64-linux-gnu",
    "-c",
    join(dir, "r.c"),
    "-o",
    join(dir, "r.o"),
  ]);
  return new Uint8Array(readFileSync(join(dir, "r.o")));
}

function refused(bytes: Uint8Array, code: string, re: RegExp): void {
  assert.throws(
    () => LoadedObject.load(bytes, { name: "r" }),
    (e: unknown) => e instanceof BpfError && e.code === code && re.test(e.message),
  );
}

/** `xdp` program `x` returning 2 (w0 = 2; exit), with its first instruction replaced by `first`. */
function patched(first: Insn): Uint8Array {
  const bytes = compile(`SEC("xdp") int x(struct xdp_md *c) { return 2; }`);
  const sec = parseElf(bytes).sections.find((s) => s.name === "xdp");
  assert.ok(sec && sec.size === 16, "x is two instructions");
  bytes.set(encodeInsns([first]), sec.data.byteOffset - bytes.byteOffset);
  return bytes;
}

test("instructions this backend does not run: refused at load, naming the program, section and instruction", {
  skip: noClang,
}, () => {
  const at = (what: string) => new RegExp(`program 'x' \\(section 'xdp'\\), insn 0: ${what}`);
  refused(patched(insn(0xbf, 1, 1, 1, 1)), "EINVAL", at("addr_space_cast \\(arena\\)"));
  refused(patched(insn(0xe5, 0, 0, 0, 0)), "EINVAL", at("may_goto"));
  refused(patched(insn(0xdb, 10, 1, -8, 0x100)), "EINVAL", at("load-acquire and store-release"));
  refused(patched(insn(0xdb, 10, 1, -8, 0x110)), "EINVAL", at("load-acquire and store-release"));
  refused(patched(insn(0x0d, 1, 0, 0, 0)), "EINVAL", at("indirect jump \\(gotox, jump tables\\)"));
  refused(
    patched(insn(0x85, 0, 2, 0, 1234)),
    "EOPNOTSUPP",
    /program 'x', insn 0 \('xdp' insn 0\): kfunc calls are not supported/,
  );
  refused(patched(insn(0x85, 0, 0, 0, 9999)), "EINVAL", at("invalid func unknown#9999"));
  // The unpatched program loads and runs.
  const ok = compile(`SEC("xdp") int x(struct xdp_md *c) { return 2; }`);
  assert.equal(LoadedObject.load(ok).program("x").run(new Uint8Array(14)).retval, 2);
});

test("objects this backend does not load: refused, naming the symbol, section or map", {
  skip: noClang,
}, () => {
  refused(
    compile(`extern void bpf_rcu_read_lock(void) __ksym;
SEC("xdp") int x(struct xdp_md *c) { bpf_rcu_read_lock(); return 2; }`),
    "EOPNOTSUPP",
    /program 'x', insn \d+ \('xdp' insn \d+\): extern 'bpf_rcu_read_lock' \(ksym, kconfig or kfunc\)/,
  );
  refused(
    compile(`struct { unsigned type, key_size, value_size, max_entries, map_flags; } legacy SEC("maps") = { 1, 4, 4, 8, 0 };
SEC("xdp") int x(struct xdp_md *c) { return 2; }`),
    "EOPNOTSUPP",
    /section 'maps': legacy map definitions/,
  );
  refused(
    compile(`const int table[4] __attribute__((section(".jumptables"))) = { 1, 2, 3, 4 };
SEC("xdp") int x(struct xdp_md *c) { return 2; }`),
    "EOPNOTSUPP",
    /section '\.jumptables': jump tables/,
  );
  refused(
    compile(`struct { __uint(type, BPF_MAP_TYPE_QUEUE); __type(value, int); __uint(max_entries, 4); } q SEC(".maps");
SEC("xdp") int x(struct xdp_md *c) { return 2; }`),
    "EOPNOTSUPP",
    /map 'q': map type 22 is not on the shared-memory backend/,
  );
  refused(
    compile(
      `SEC("socket") int s(struct __sk_buff *k) { __u32 a = 1; return bpf_csum_diff(0, 0, &a, 4, 0); }`,
    ),
    "EINVAL",
    /program 's', insn \d+: program type 1 \(section 'socket'\) cannot use helper #28/,
  );
});

test("CO-RE: relocations against the object's own types resolve (compiled offsets stand); against a type it only declares, refused", {
  skip: noClang,
}, () => {
  const own = compile(`#include <bpf/bpf_core_read.h>
struct own { int a; int b; long c; } __attribute__((preserve_access_index));
SEC("syscall") int x(struct own *o) { return o->b + (int)o->c + bpf_core_field_exists(o->a); }`);
  const ctx = new Uint8Array(16);
  const dv = new DataView(ctx.buffer);
  dv.setInt32(4, 30, true);
  dv.setBigInt64(8, 12n, true);
  assert.equal(LoadedObject.load(own).program("x").run(new Uint8Array(0), { ctx }).retval, 43);
  refused(
    compile(`#include <bpf/bpf_core_read.h>
struct kernel_only;
SEC("syscall") int x(void *c) { return bpf_core_type_exists(struct kernel_only); }`),
    "EOPNOTSUPP",
    /section 'syscall', insn \d+: CO-RE relocation \(type_exists, access "0"\) against 'kernel_only', which the object only declares/,
  );
});

test("a global section too big for a map value (E2BIG, as the kernel) or for this backend (ENOMEM) is refused before any allocation", {
  skip: noClang,
}, () => {
  const bytes = compile(`__u64 counter; SEC("xdp") int x(struct xdp_md *c) { return counter++; }`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const shoff = Number(dv.getBigUint64(0x28, true));
  const bss = parseElf(bytes).sections.find((s) => s.name === ".bss");
  assert.ok(bss);
  const setSize = (n: number) => dv.setBigUint64(shoff + bss.index * 64 + 32, BigInt(n), true);
  // Found by the fuzzer: a NOBITS size of ~3 GB (no file bytes behind it) was allocated, and the worker hung.
  setSize(3_060_909_494);
  refused(bytes, "E2BIG", /section '\.bss': 3060909494 bytes, over the kernel's map value limit/);
  setSize(80 * 1024 * 1024);
  refused(bytes, "ENOMEM", /section '\.bss': 83886080 bytes, over this backend's 67108864-byte bound/);
  setSize(8);
  assert.equal(LoadedObject.load(bytes).program("x").run(new Uint8Array(14)).retval, 0);
});
