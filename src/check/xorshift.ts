/**
 * xorshift32 (Marsaglia): the small seeded generator the stress workers,
 * demos and benchmarks share, so runs are reproducible from their seeds.
 */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}
