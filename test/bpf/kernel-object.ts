/**
 * Test helpers for the BPF object tests: compile the C fixtures with
 * clang-19. The kernel side of an object is the kernel backend's own
 * loader (src/kernel/object.ts: KernelObject); the class of the same name
 * here keeps the earlier test loader's shape over it.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BpfObjectSpec } from "../../src/bpf/loader.js";
import { BpfError } from "../../src/errors.js";
import { bpfFfi } from "../../src/kernel/bpf-syscall.js";
import type { KernelMap } from "../../src/kernel/kernel-map.js";
import { KernelObject as RealKernelObject } from "../../src/kernel/object.js";
import type { BpfProgram } from "../../src/kernel/program.js";
import { BpfCmd } from "../../src/uapi.js";

const fixtures = fileURLToPath(new URL("../../../test/fixtures/bpf/", import.meta.url));

/** Why the C fixtures cannot be compiled here, or undefined. Throws under HTAB_REQUIRE_KERNEL=1. */
export function clangSkipReason(): string | undefined {
  const r = spawnSync("clang-19", ["--version"], { encoding: "utf8" });
  if (r.status === 0) return undefined;
  const why = "clang-19 is not installed (Debian: apt-get install clang-19 libbpf-dev)";
  if (process.env.HTAB_REQUIRE_KERNEL === "1") throw new Error(`HTAB_REQUIRE_KERNEL=1 but ${why}`);
  console.log(`# BPF C fixture tests skipped: ${why}`);
  return why;
}

let outDir: string | undefined;

/** Compile test/fixtures/bpf/<name>.c as `clang-19 -O2 -g -target bpf -mcpu=v4 -c` and return the object's bytes. */
export function compileFixture(name: string): Uint8Array {
  outDir ??= mkdtempSync(join(tmpdir(), "htab-bpf-"));
  const out = join(outDir, `${name}.o`);
  const multiarch =
    spawnSync("gcc", ["-print-multiarch"], { encoding: "utf8" }).stdout?.trim() || "x86_64-linux-gnu";
  execFileSync("clang-19", [
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-mcpu=v4",
    `-I/usr/include/${multiarch}`,
    "-c",
    join(fixtures, `${name}.c`),
    "-o",
    out,
  ]);
  return new Uint8Array(readFileSync(out));
}

const ATTR = 128;

/** BPF_MAP_UPDATE_ELEM / LOOKUP_ELEM on any map fd, raw (for tests that poke a map the way a loader does). */
export function rawElem(cmd: "update" | "lookup", fd: number, key: Uint8Array, value: Uint8Array): void {
  const ffi = bpfFfi();
  const attr = ffi.alloc(ATTR);
  const k = ffi.alloc(Math.max(8, key.length));
  const v = ffi.alloc(Math.max(8, value.length));
  try {
    k.u8.set(key);
    v.u8.set(value);
    attr.dv.setUint32(0, fd, true);
    attr.dv.setBigUint64(8, ffi.addressOf(k.u8), true);
    attr.dv.setBigUint64(16, ffi.addressOf(v.u8), true);
    if (ffi.call(cmd === "update" ? BpfCmd.MapUpdateElem : BpfCmd.MapLookupElem, attr.ptr, ATTR) < 0)
      throw new Error(`raw ${cmd} on fd ${fd}: errno ${ffi.errno()}`);
    if (cmd === "lookup") value.set(v.u8.subarray(0, value.length));
  } finally {
    v.free();
    k.free();
    attr.free();
  }
}

/**
 * The shape of the earlier test-only kernel loader (one program, `maps` by
 * index, `global(spec, section)`), now over the kernel backend's own loader
 * (src/kernel/object.ts), for tests written against that shape.
 */
export class KernelObject {
  readonly obj: RealKernelObject;
  readonly maps: KernelMap[];
  readonly prog: BpfProgram;

  constructor(spec: BpfObjectSpec, program: string) {
    this.obj = RealKernelObject.fromSpec(spec);
    this.maps = this.obj.mapList;
    try {
      this.prog = this.obj.program(program).prog;
    } catch (e) {
      this.obj.close();
      throw e;
    }
  }

  /** BPF_PROG_TEST_RUN with data_out: the return value and the packet after the run. @throws Error "test run: errno N", as before */
  runWithOut(data: Uint8Array): { retval: number; out: Uint8Array } {
    try {
      const r = this.prog.run(data);
      return { retval: r.retval, out: r.data };
    } catch (e) {
      if (e instanceof BpfError) throw new Error(`test run: errno ${e.errno}`);
      throw e;
    }
  }

  /** A global section's bytes now, read back from its ARRAY map. */
  global(spec: BpfObjectSpec, section: string): Uint8Array {
    const i = spec.maps.findIndex((d) => d.global?.section === section);
    const out = new Uint8Array(spec.maps[i].valueSize);
    rawElem("lookup", this.maps[i].fd, new Uint8Array(4), out);
    return out;
  }

  close(): void {
    this.obj.close();
  }
}
