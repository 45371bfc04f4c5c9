/**
 * Transparent huge pages for a map's memory. At a million entries a lookup
 * misses the TLB as well as the cache on 4 KiB pages; on 2 MiB pages the
 * page walk mostly hits. The map core stays dependency-free: it takes a
 * caller-made shared `WebAssembly.Memory` (`createMap(spec, { memory })`),
 * and this helper makes one whose pages the kernel backs with huge pages:
 * madvise(MADV_HUGEPAGE) through koffi on the 2 MiB-aligned part of the
 * memory, before anything touches it.
 */
import { existsSync, readFileSync } from "node:fs";
import { WASM_PAGE_BYTES } from "../layout/layout.js";
import type { WasmMemory } from "../wasm/fast-path.js";
import { bpfFfi } from "./bpf-syscall.js";

const MADV_HUGEPAGE = 14;
const HUGE_PAGE_BYTES = 2 << 20;
const THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled";

/** A memory for createMap(spec, { memory }), and whether huge pages were asked for. */
export interface HugePageMemory {
  memory: WasmMemory;
  /** madvise(MADV_HUGEPAGE) succeeded: the kernel backs the memory with huge pages as it faults it in. */
  hugePages: boolean;
  /** Why not, when hugePages is false ("THP is never on this machine", "koffi is not installed", …). */
  reason: string;
}

/** The system's THP mode ("always", "madvise" or "never"), or null where there is no THP. */
export function thpMode(): string | null {
  if (!existsSync(THP_MODE)) return null;
  return /\[(\w+)\]/.exec(readFileSync(THP_MODE, "utf8"))?.[1] ?? null;
}

/** This process's anonymous memory in huge pages, in KiB (AnonHugePages of /proc/self/smaps_rollup), or null. */
export function anonHugePagesKiB(): number | null {
  try {
    const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync("/proc/self/smaps_rollup", "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * A fixed-size shared WebAssembly.Memory of at least `bytes`, advised to be
 * backed by transparent huge pages. Where THP is `never`, there is no THP,
 * or koffi is missing, it quietly returns a plain memory (hugePages false,
 * with the reason). Pass it to createMap(spec, { memory }) before anything
 * else touches it: pages already faulted in stay 4 KiB.
 * @throws BpfError ENOMEM when no memory of that size can be made
 */
export function hugePageMemory(bytes: number): HugePageMemory {
  const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE_BYTES));
  const Memory = (globalThis as unknown as { WebAssembly: { Memory: new (d: object) => WasmMemory } })
    .WebAssembly.Memory;
  const memory = new Memory({ initial: pages, maximum: pages, shared: true });
  const mode = thpMode();
  if (mode === null) return { memory, hugePages: false, reason: "no transparent huge pages on this system" };
  if (mode === "never") return { memory, hugePages: false, reason: "THP is never on this machine" };
  let ffi: ReturnType<typeof bpfFfi>;
  try {
    ffi = bpfFfi();
  } catch (e) {
    return { memory, hugePages: false, reason: (e as Error).message };
  }
  const u8 = new Uint8Array(memory.buffer);
  const addr = ffi.addressOf(u8);
  const align = BigInt(HUGE_PAGE_BYTES);
  const skip = Number((align - (addr % align)) % align);
  const len = Math.floor((u8.length - skip) / HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES;
  if (len === 0)
    return { memory, hugePages: false, reason: "the memory is smaller than one 2 MiB huge page" };
  if (ffi.madvise(u8.subarray(skip), len, MADV_HUGEPAGE) !== 0)
    return { memory, hugePages: false, reason: `madvise(MADV_HUGEPAGE) failed: errno ${ffi.errno()}` };
  return {
    memory,
    hugePages: true,
    reason: mode === "always" ? "THP is always on" : "madvise(MADV_HUGEPAGE)",
  };
}
