/**
 * Loading a BPF object for the CLI (`htab replay`'s "load", `htab prog`):
 * on the SAB backend as a LoadedObject (htab maps, the reference
 * interpreter), on the kernel backend as a KernelObject (real maps, the
 * verifier, BPF_PROG_TEST_RUN). Either way: the object, and per map of its
 * spec (`.maps`, then globals) a RawMap replay's map ops work on.
 */

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { GlobalSection, LoadedObject } from "../bpf/object.js";
import { ProgArray } from "../bpf/prog-array.js";
import { RingBuf } from "../bpf/ringbuf.js";
import { BpfError, Errno } from "../errors.js";
import { pinThreadToCpu } from "../kernel/bpf-syscall.js";
import { KernelObject } from "../kernel/object.js";
import { type BackendName, machineCpus } from "./backends.js";
import type { LoadedForReplay, ObjectLoader } from "./replay.js";
import { opaqueMapOf } from "./replay-opaque.js";

/** Loads an object's bytes on a backend; `name` is libbpf's object name. */
export type BytesLoader = (bytes: Uint8Array, name: string) => LoadedForReplay;

/** libbpf's object name for a file: its base name up to the first '.'. */
export function objectName(path: string): string {
  return basename(path).split(".")[0] || "obj";
}

/** The object file's bytes. @throws BpfError ENOENT/EACCES… naming the path */
export function readObject(op: string, path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const code = (e as { code?: string }).code ?? "EIO";
    const n = (Errno as Record<string, number>)[code] ?? Errno.EINVAL;
    throw new BpfError(op, n, `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Replay's "load": the file at `path`, named as libbpf names it, on `backend`. */
export function objectLoaderFor(backend: BackendName): ObjectLoader {
  const load = bytesLoaderFor(backend);
  return (path) => load(readObject("load", path), objectName(path));
}

/**
 * An object loader for `backend`, as replay runs it (CPU 0 of the machine's
 * possible CPUs; on SAB, `nrCpus` CPU slots: the machine's by default).
 */
export function bytesLoaderFor(backend: BackendName, nrCpus = machineCpus()): BytesLoader {
  if (backend === "kernel")
    return (bytes, name) => {
      const obj = KernelObject.load(bytes, { name });
      // Runs without a `cpu` run on CPU 0, as on the SAB side (its object's own slot): per-CPU
      // values and the per-CPU LRU lists are then CPU 0's, whatever CPU the scheduler picked.
      pinThreadToCpu(0);
      return { obj, maps: obj.mapList };
    };
  return (bytes, name) => {
    const obj = LoadedObject.load(bytes, { name, nrCpus, cpu: 0 });
    // A global's map is its section's single-element ARRAY map, as in the kernel.
    // A PROG_ARRAY or RINGBUF has no RawMap calls on this backend: listed, every map op on it EOPNOTSUPP.
    const maps = obj.mapList.map((m, i) =>
      m instanceof ProgArray || m instanceof RingBuf
        ? opaqueMapOf(obj.spec.maps[i], nrCpus)
        : m instanceof GlobalSection
          ? m.map
          : m,
    );
    return { obj, maps };
  };
}
