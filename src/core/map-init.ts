/**
 * A new map's memory and contents (kernel: htab_map_alloc() and
 * prealloc_init()): the buffer, the header, and every element filed on the
 * LRU's lists or the per-CPU freelists, plus one extra element per CPU.
 */
import { BpfLru } from "../alloc/bpf-lru.js";
import { pcpuFreelistPop, pcpuFreelistPopulate } from "../alloc/pcpu-freelist.js";
import { BpfError, Errno, invalid } from "../errors.js";
import { elemIndexToWord, type Geometry, writeHeader } from "../layout/geometry.js";
import {
  HDR_LRU_REPAIR_I32,
  HDR_NONCE_I32,
  HDR_SPIN_LOCK_OFF_I32,
  HTAB_MAGIC,
  LRU_NONE,
  PCPU_EXTRA_I32,
  PCPU_INFLIGHT_I32,
  pcpuBase,
  WASM_PAGE_BYTES,
} from "../layout/layout.js";
import { MapFlags } from "../uapi.js";
import { allocSharedMemory, type WasmMemory } from "../wasm/fast-path.js";
import type { MapSpec } from "./spec.js";

function randomSeed(): number {
  const c = (globalThis as { crypto?: { getRandomValues(a: Uint32Array): Uint32Array } }).crypto;
  if (c) return c.getRandomValues(new Uint32Array(1))[0] | 0;
  return (Math.random() * 0x1_0000_0000) | 0;
}

/**
 * Allocate a map of geometry `g`: a shared wasm memory when the fast path
 * is wanted (preallocated maps), a growable SharedArrayBuffer under
 * BPF_F_NO_PREALLOC (header and buckets committed, elements grown on demand).
 * @throws BpfError ENOMEM
 */
export function allocMapMemory(
  g: Geometry,
  fastPath: boolean,
  given?: WasmMemory,
): { sab: SharedArrayBuffer; memory: WasmMemory | null } {
  if (given !== undefined) return callerMemory(g, fastPath, given);
  let sab: SharedArrayBuffer;
  let memory: WasmMemory | null = null;
  try {
    if (g.prealloc && fastPath) memory = allocSharedMemory(g.totalBytes);
    // BPF_F_NO_PREALLOC: reserve the whole map, commit only header and buckets; grow on demand.
    sab =
      memory !== null
        ? (memory.buffer as SharedArrayBuffer)
        : g.prealloc
          ? new SharedArrayBuffer(g.totalBytes)
          : new SharedArrayBuffer(g.elemsBytes, { maxByteLength: g.totalBytes });
    // The map's byte view must cover it: an engine's typed arrays may hold less than
    // htab's MAX_TOTAL_BYTES (V8 11, Node 20: 2^32 elements, so 4 GiB of bytes).
    void new Uint8Array(sab);
  } catch (e) {
    throw new BpfError(
      "create",
      Errno.ENOMEM,
      `cannot allocate ${g.totalBytes} bytes: ${(e as Error).message}`,
    );
  }
  return { sab, memory };
}

/** createMap(spec, { memory }): the caller's shared wasm memory, checked, grown to fit and zeroed. */
function callerMemory(
  g: Geometry,
  fastPath: boolean,
  memory: WasmMemory,
): { sab: SharedArrayBuffer; memory: WasmMemory | null } {
  const buf = (memory as { buffer?: unknown } | null)?.buffer;
  if (!(buf instanceof SharedArrayBuffer))
    return invalid(
      "create",
      "memory must be a shared WebAssembly.Memory (new WebAssembly.Memory({ ..., shared: true }))",
    );
  if (!g.prealloc)
    invalid("create", "a BPF_F_NO_PREALLOC map grows a SharedArrayBuffer of its own: pass no memory");
  if (buf.byteLength >= 4 && new Int32Array(buf, 0, 1)[0] === HTAB_MAGIC)
    throw new BpfError(
      "create",
      Errno.EBUSY,
      "memory already holds a map: give each map a memory of its own",
    );
  if (buf.byteLength < g.totalBytes) {
    try {
      memory.grow(Math.ceil((g.totalBytes - buf.byteLength) / WASM_PAGE_BYTES));
    } catch (e) {
      throw new BpfError(
        "create",
        Errno.ENOMEM,
        `memory holds ${buf.byteLength} bytes, the map needs ${g.totalBytes}, and it cannot grow: ${(e as Error).message}`,
      );
    }
  }
  const sab = memory.buffer as SharedArrayBuffer;
  new Uint8Array(sab, 0, g.totalBytes).fill(0);
  return { sab, memory: fastPath ? memory : null };
}

/** Write the header and file every element (kernel: htab_map_alloc() + prealloc_init()). Returns hashrnd. */
export function initMap(i32: Int32Array, g: Geometry, spec: MapSpec): number {
  const flags = spec.flags ?? 0;
  const nrCpus = g.nrCpus;
  const hashrnd = (flags & MapFlags.ZeroSeed) !== 0 ? 0 : randomSeed();
  writeHeader(i32, g, spec.type, flags, hashrnd);
  i32[HDR_NONCE_I32] = randomSeed() | 1;
  if (spec.spinLockOffset !== undefined) i32[HDR_SPIN_LOCK_OFF_I32] = spec.spinLockOffset;
  // prealloc_init(): every element onto the LRU's free lists, or the per-CPU freelists ...
  const noop = () => 0;
  if (g.lru !== LRU_NONE) new BpfLru(i32, g, HDR_LRU_REPAIR_I32, 0, noop, noop, noop).populate();
  else if (g.prealloc) pcpuFreelistPopulate(i32, (n) => elemIndexToWord(g, n), g.num_elems, nrCpus);
  // ... then alloc_extra_elems(): one element per CPU for replacing existing keys.
  for (let cpu = 0; cpu < g.extra_elems; cpu++) {
    const e = pcpuFreelistPop(i32, cpu, nrCpus, g.bucketsBytes >> 2);
    i32[pcpuBase(cpu) + PCPU_INFLIGHT_I32] = 0;
    i32[pcpuBase(cpu) + PCPU_EXTRA_I32] = e;
  }
  return hashrnd;
}
