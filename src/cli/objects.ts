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
import { BpfError, Errno } from "../errors.js";
import { pinThreadToCpu } from "../kernel/bpf-syscall.js";
import { KernelObject } from "../kernel/object.js";
import { MapType } from "../uapi.js";
import { type BackendName, machineCpus } from "./backends.js";
import type { LoadedForReplay, ObjectLoader } from "./replay.js";
import { GlobalMap } from "./replay-global.js";

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

/** An object loader for `backend`, as replay runs it (CPU 0 of the machine's possible CPUs). */
export function bytesLoaderFor(backend: BackendName): BytesLoader {
  if (backend === "kernel")
    return (bytes, name) => {
      const obj = KernelObject.load(bytes, { name });
      // As for replay's created LRU maps: the kernel's per-CPU LRU lists are CPU 0's, as on the SAB side.
      if (obj.spec.maps.some((d) => d.type === MapType.LruHash || d.type === MapType.LruPercpuHash))
        pinThreadToCpu(0);
      return { obj, maps: obj.mapList };
    };
  const nrCpus = machineCpus();
  return (bytes, name) => {
    const obj = LoadedObject.load(bytes, { name, nrCpus, cpu: 0 });
    const maps = obj.mapList.map((m, i) =>
      m instanceof GlobalSection ? new GlobalMap(m, obj.spec.maps[i].flags, nrCpus) : m,
    );
    return { obj, maps };
  };
}
