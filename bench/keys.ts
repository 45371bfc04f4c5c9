/** Keys and visiting orders shared by every workload, and the optional peers' loaders. */

/** Store `x` as a little-endian u32 key, without a DataView per call. */
export function putU32(b: Uint8Array, x: number): void {
  b[0] = x;
  b[1] = x >>> 8;
  b[2] = x >>> 16;
  b[3] = x >>> 24;
}

/** `n` distinct random u31 keys (xorshift from `seed`). */
export function randomKeys(n: number, seed: number): Uint32Array {
  const keys = new Uint32Array(n);
  const seen = new Set<number>();
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; ) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const k = (x >>> 0) & 0x7fffffff;
    if (!seen.has(k)) {
      seen.add(k);
      keys[i++] = k;
    }
  }
  return keys;
}

/** Length of every visiting order: a power of two, long enough to defeat caching at 1M. */
export const ORDER_LEN = 1 << 16;
export const ORDER_MASK = ORDER_LEN - 1;

/** A random visiting order over `n` indices. */
export function order(n: number, len: number, seed: number): Uint32Array {
  const o = new Uint32Array(len);
  let x = seed >>> 0 || 3;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    o[i] = (x >>> 0) % n;
  }
  return o;
}

/** htab/kernel when bpf() works here, else null. */
export async function loadKernel(): Promise<typeof import("../src/kernel/kernel-map.js") | null> {
  try {
    const k = await import("../src/kernel/kernel-map.js");
    return k.kernelAvailable().ok ? k : null;
  } catch {
    return null;
  }
}
