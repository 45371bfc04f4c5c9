/**
 * Kernel-backed tests run when bpf() works here. Where it is refused they
 * print one line saying why and skip, unless HTAB_REQUIRE_KERNEL=1 (CI), in
 * which case a missing kernel is a failure.
 */
import { kernelAvailable } from "../../src/kernel/kernel-map.js";

let probed: { ok: boolean; reason: string } | undefined;

/** undefined when the kernel is usable; otherwise the skip reason. Throws under HTAB_REQUIRE_KERNEL=1. */
export function kernelSkipReason(): string | undefined {
  probed ??= kernelAvailable();
  if (probed.ok) return undefined;
  if (process.env.HTAB_REQUIRE_KERNEL === "1")
    throw new Error(`HTAB_REQUIRE_KERNEL=1 but bpf() is unusable: ${probed.reason}`);
  console.log(`# kernel tests skipped: ${probed.reason}`);
  return probed.reason;
}
