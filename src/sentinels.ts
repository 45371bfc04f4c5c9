/**
 * Every internal return code that is not an errno, in one place.
 *
 * The element and write functions return 0, an element's word index (> 0),
 * a negative errno (-1 … -MAX_ERRNO, as the kernel's functions do), or one
 * of the codes below. They all lie at or below SENTINEL_BASE, a range no
 * errno can take, so that no errno is ever read as a sentinel or the other
 * way round. fast-path.wat returns the WASM_* codes as literals (wat has no
 * named constants); test/sentinels.test.ts reads every negative code the
 * .wat returns and checks it against this module.
 *
 * Not listed here: codes private to one wasm export's result encoding
 * (lookup()'s -1 "a writer holds the bucket", freelistPop()'s -1 - c "list
 * c's lock is held"), which never mix with errnos and never leave the
 * function that called the export (fast-path.ts documents them), and LRU
 * node numbers' -1 "none" (a node number, not a result).
 */

/** The largest errno (kernel: MAX_ERRNO): errno results are -1 … -MAX_ERRNO. */
export const MAX_ERRNO = 4095;
/** Sentinels are SENTINEL_BASE and below: no errno is. */
export const SENTINEL_BASE = -0x10000;

// ---- fast-path.wat update()/delete() results (the values are literals in the .wat)
/** update()/delete(): the fast path did nothing; take the JS path. */
export const WASM_RETRY = SENTINEL_BASE;
/** update(): replaced while program sections are active; the caller finishes (limbo) and unlocks. */
export const WASM_REPLACED_IN_SECTION = SENTINEL_BASE - 1;
/** update()/delete(): the map is frozen (nothing changed). */
export const WASM_FROZEN = SENTINEL_BASE - 2;
/** update() of an LRU map: the refill found nothing free; the JS path steals from the other CPUs. */
export const WASM_LRU_STEAL = SENTINEL_BASE - 3;
/**
 * update() of an LRU map: popped (this slot's LRU_SPARE holds the element),
 * bucket untouched; the JS path does the bucket part (a replace, refused
 * flags, or a busy bucket).
 */
export const WASM_LRU_POPPED = SENTINEL_BASE - 4;
/** update() of an LRU map: replaced; the old element (this slot's INFLIGHT) is for the caller to free. */
export const WASM_LRU_REPLACED = SENTINEL_BASE - 5;
/** Every code fast-path.wat returns that is neither an errno nor an element. */
export const WASM_CODES: readonly number[] = [
  WASM_RETRY,
  WASM_REPLACED_IN_SECTION,
  WASM_FROZEN,
  WASM_LRU_STEAL,
  WASM_LRU_POPPED,
  WASM_LRU_REPLACED,
];

// ---- the JS paths
/** A lock-free read: the bucket stayed in a write past LOCK_TIMEOUT_MS (lastError says why). */
export const READ_TIMEDOUT = SENTINEL_BASE - 16;
/** An element allocation: the lists with elements stayed locked past LOCK_TIMEOUT_MS. */
export const ALLOC_TIMEDOUT = SENTINEL_BASE - 17;
/** pcpuFreelistPop(): the only lists with elements stayed locked past LOCK_TIMEOUT_MS. */
export const FREELIST_TIMEDOUT = SENTINEL_BASE - 18;
/** pcpuFreelistPop(): the only lists with elements are damaged (a link outside the map). */
export const FREELIST_CORRUPT = SENTINEL_BASE - 20;
/** An element allocation: the only lists with elements are damaged (lastError says which). */
export const ALLOC_CORRUPT = SENTINEL_BASE - 21;
/** An element allocation: a NO_PREALLOC buffer could not grow (lastError says why). */
export const ALLOC_NOMEM = SENTINEL_BASE - 22;
/** An element allocation: only elements held by open program sections are left, past the grace bound (lastError names the slot). */
export const ALLOC_HELD = SENTINEL_BASE - 23;
/** BpfLru.popFree(): back out, repair, call again. */
export const LRU_RETRY = SENTINEL_BASE - 19;
/**
 * BpfLru.popFree() / steal(): an LRU list, list head or node is damaged (a
 * link outside the map's LRU, a cycle): every LRU lock this slot held is
 * released, nothing was claimed, and BpfLru.damage says where.
 */
export const LRU_CORRUPT = SENTINEL_BASE - 24;
