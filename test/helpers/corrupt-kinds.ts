/** The corruption fuzzer's damage kinds and calls (test/core/htab.corrupt.test.ts, test/fixtures/corrupt-worker.ts). */
export const KINDS = [
  // chains and freelists
  "chain-next",
  "bucket-head",
  "freelist-head",
  "freelist-next",
  "freelist-prev",
  "extra",
  "inflight",
  // element headers: the hash, a key word, the TAG (FPREV / limbo epoch) word
  "elem-hash",
  "elem-key",
  "elem-tag",
  // lock words: random, or held by a slot that does not exist / is not attached
  "bucket-lock",
  "freelist-lock",
  "bucket-lock-orphan",
  "freelist-lock-orphan",
  // counts
  "count",
  "limbo-count",
  "home-state",
  // the epoch and the limbo lists
  "epoch",
  "active",
  "section",
  "limbo-head",
  // LRU maps only: node words, list heads (sentinels), counts, the cursor, local stacks, locks
  "lru-node-next",
  "lru-node-prev",
  "lru-node-type",
  "lru-node-cpu",
  "lru-node-ref",
  "lru-list-head",
  "lru-list-count",
  "lru-cursor",
  "lru-local-free",
  "lru-lock-orphan",
] as const;
export type Kind = (typeof KINDS)[number];
/** Whether damage `kind` applies to a map (the LRU kinds need an LRU map). */
export function kindApplies(kind: Kind, lru: boolean): boolean {
  return lru || !kind.startsWith("lru-");
}
export const CALLS = [
  "lookup",
  "update",
  "insert",
  "delete",
  "getNextKey",
  "compute",
  "lookupBatch",
] as const;
