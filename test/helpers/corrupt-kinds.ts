/** The corruption fuzzer's damage kinds and calls (test/core/htab.corrupt.test.ts, test/fixtures/corrupt-worker.ts). */
export const KINDS = [
  "chain-next",
  "bucket-head",
  "freelist-head",
  "freelist-next",
  "freelist-prev",
  "extra",
  "inflight",
  "bucket-lock",
  "freelist-lock",
  "count",
  "home-state",
] as const;
export type Kind = (typeof KINDS)[number];
export const CALLS = [
  "lookup",
  "update",
  "insert",
  "delete",
  "getNextKey",
  "compute",
  "lookupBatch",
] as const;
