/**
 * Test helpers for the BPF object tests: compile the C fixtures with
 * clang-19, and load an opened object's program into the kernel (maps
 * created with the object's BTF for their key and value, globals as
 * single-element ARRAY maps holding their initial bytes, map fds patched
 * into the linked instructions), so one object runs on both backends.
 * This is the test's own minimal kernel side, not the kernel backend's
 * object loader (no func/line info: programs with callbacks are not
 * loaded here).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Insn } from "../../src/bpf/isa.js";
import { type BpfObjectSpec, ProgType } from "../../src/bpf/loader.js";
import { bpfFfi } from "../../src/kernel/bpf-syscall.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import { type BpfProgram, loadProgram } from "../../src/kernel/program.js";
import { BpfCmd, type MapType } from "../../src/uapi.js";

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

/** BPF_MAP_UPDATE_ELEM / LOOKUP_ELEM on any map fd (KernelMap drives element calls on the hash family only). */
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

/** One map of an object in the kernel: with the object's BTF; a global with its bytes (.rodata frozen, as libbpf does). */
function kernelMapOf(spec: BpfObjectSpec, def: BpfObjectSpec["maps"][number]): KernelMap {
  const m = KernelMap.create(
    {
      type: def.type as MapType,
      keySize: def.keySize,
      valueSize: def.valueSize,
      maxEntries: def.maxEntries,
      flags: def.flags,
      name: def.name.replace(/[^A-Za-z0-9_.]/g, "_").slice(0, 15),
    },
    def.global || def.keyType === 0 || spec.btfBytes === undefined
      ? {}
      : { btf: { blob: spec.btfBytes, keyTypeId: def.keyType, valueTypeId: def.valueType } },
  );
  if (def.global) rawElem("update", m.fd, new Uint8Array(4), def.global.data);
  // libbpf freezes .rodata after writing it (bpf_object__populate_internal_map()).
  if (def.global?.readonly && m.freeze() !== 0) {
    m.close();
    throw new Error(`freeze ${def.name}: ${m.lastError}`);
  }
  return m;
}

/** One object's maps and one program in the kernel. */
export class KernelObject {
  readonly maps: KernelMap[] = [];
  readonly prog: BpfProgram;

  constructor(spec: BpfObjectSpec, program: string) {
    try {
      for (const def of spec.maps) this.maps.push(kernelMapOf(spec, def));
      const p = spec.programs.find((x) => x.name === program);
      if (!p) throw new Error(`no program ${program}`);
      const insns: Insn[] = p.insns.map((x) => ({ ...x }));
      for (const x of insns) if (x.code === 0x18 && (x.src === 1 || x.src === 2)) x.imm = this.maps[x.imm].fd;
      this.prog = loadProgram(insns, {
        type: p.type === ProgType.Xdp ? 6 : p.type,
        license: spec.license,
        name: program,
      });
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** BPF_PROG_TEST_RUN with data_out: the return value and the packet after the run. */
  runWithOut(data: Uint8Array): { retval: number; out: Uint8Array } {
    const ffi = bpfFfi();
    const attr = ffi.alloc(ATTR);
    const inBuf = ffi.alloc(data.length);
    const outBuf = ffi.alloc(8192);
    try {
      inBuf.u8.set(data);
      attr.dv.setUint32(0, this.prog.fd, true);
      attr.dv.setUint32(8, data.length, true);
      attr.dv.setUint32(12, 8192, true);
      attr.dv.setBigUint64(16, ffi.addressOf(inBuf.u8), true);
      attr.dv.setBigUint64(24, ffi.addressOf(outBuf.u8), true);
      attr.dv.setUint32(32, 1, true);
      if (ffi.call(BpfCmd.ProgTestRun, attr.ptr, ATTR) < 0) throw new Error(`test run: errno ${ffi.errno()}`);
      const n = attr.dv.getUint32(12, true);
      return { retval: attr.dv.getUint32(4, true), out: outBuf.u8.slice(0, n) };
    } finally {
      outBuf.free();
      inBuf.free();
      attr.free();
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
    this.prog?.close();
    for (const m of this.maps) m.close();
  }
}
