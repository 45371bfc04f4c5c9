/** Map factories for the CLI: the SAB backend as root sees it, or the real kernel. */

import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Htab } from "../core/htab.js";
import type { RawMap } from "../core/raw-map.js";
import type { MapSpec } from "../core/spec.js";
import { KernelMap } from "../kernel/kernel-map.js";
import type { MapFactory } from "./replay.js";

/** Possible CPUs as the kernel counts them, so per-CPU shapes agree across backends. */
export function machineCpus(): number {
  try {
    const s = readFileSync("/sys/devices/system/cpu/possible", "utf8").trim();
    let n = 0;
    for (const part of s.split(",")) {
      const [a, b] = part.split("-").map(Number);
      n += b === undefined ? 1 : b - a + 1;
    }
    return n;
  } catch {
    return availableParallelism();
  }
}

export type BackendName = "sab" | "kernel";

/** Replay acts as root: SAB maps are privileged and this process is CPU 0. */
export function factoryFor(backend: BackendName): MapFactory {
  if (backend === "kernel")
    return (spec: MapSpec, inner: RawMap | undefined) =>
      KernelMap.create(spec, { innerMap: inner instanceof KernelMap ? inner : undefined });
  const nrCpus = machineCpus();
  return (spec: MapSpec) => Htab.create(spec, { privileged: true, nrCpus, cpu: 0 });
}
