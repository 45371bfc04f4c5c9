/**
 * The one module that knows where every byte of a map lives (geometry.ts
 * computes the sizes these offsets depend on).
 *
 * A map is one SharedArrayBuffer viewed as an Int32Array (`i32`) and a
 * Uint8Array (`u8`). Names ending in `_I32` are Int32Array indices; names
 * ending in `_BYTES` are byte offsets or sizes. Element links are the
 * element's *word index* (so a link is directly usable as an `i32` index);
 * 0 means "none", which is safe because word 0 is the header magic.
 *
 * ```
 *  byte 0      +------------------------------------------------------+
 *              | header: 32 words (128 B)                             |
 *              |  MAGIC VERSION MAP_TYPE KEY_SIZE VALUE_SIZE          |
 *              |  MAX_ENTRIES MAP_FLAGS N_BUCKETS HASHRND ELEM_SIZE   |
 *              |  NUM_ELEMS NR_CPUS BUCKETS_I32 ELEMS_I32 TOTAL_BYTES |
 *              |  FROZEN SPIN_LOCK_OFF EPOCH ACTIVE RECOVERY_LOCK     |
 *              |  RECOVERED CARVED GROW_LOCK LRU_REPAIR INNER_* (5)   |
 *              |  LIMBO_COUNT NONCE HOME_END                          |
 *  byte 128    +------------------------------------------------------+
 *              | per-CPU area: NR_CPUS x 64 B, one cache line each    |
 *              |  OWNER FL_LOCK FL_HEAD EXTRA COUNT SECTION LIMBO_HEAD|
 *              |  INTENT_BUCKET INTENT_OP INTENT_ELEM INTENT_OLD      |
 *              |  INTENT_COUNT INFLIGHT LRU_SPARE (pad)               |
 *              |  (the pcpu_freelist head, extra_elems[cpu] and the   |
 *              |   per-CPU element counter of one worker slot)        |
 *  SCRATCH     +------------------------------------------------------+
 *              | NR_CPUS x scratch_stride, the slot owner's own:      |
 *              |  fast-path descriptor (64 B: BASE BUCKETS MASK       |
 *              |  HASHRND KEY KEY_WORDS VALUE_OFF VALUE_U64S OUT      |
 *              |  BOUND PCPU0 CPU NR_CPUS ACTIVE MY_PCPU FROZEN),     |
 *              |  key[round_up(key, 8)], value[round_up(              |
 *              |  value bytes, 8)] (none for per-CPU values or values |
 *              |  over 1 KiB); then the many area (keys of whole      |
 *              |  words, values up to 64 B): MANY_CHUNK keys, values  |
 *              |  and result words for lookupMany(); padded to a      |
 *              |  cache line. The wasm fast path reads the key there  |
 *              |  and copies the value                                |
 *  BUCKETS     +------------------------------------------------------+
 *              | n_buckets bucket records, bucket_stride B each:      |
 *              |  +0 HEAD (first element) +4 SEQLOCK +8 OWNER         |
 *              |  +12 HOME_STATE (of the home element; 0 without one) |
 *              |  SEQLOCK = seq << 3 | WRITING | WAITERS | LOCKED     |
 *              | homed maps (preallocated HASH, PERCPU_HASH): record  |
 *              |  i also holds element i, its home, at +16, so a key  |
 *              |  in its home element costs one cache line; records   |
 *              |  are padded to a cache line where the map stays      |
 *              |  under the kernel's memlock. Other maps: 16 B each,  |
 *              |  no home elements (homes = 0)                        |
 *  LRU         +------------------------------------------------------+
 *   (LRU maps  | lists: 1 (common) or NR_CPUS (NO_COMMON_LRU) x 64 B: |
 *    only)     |  LOCK COUNT_ACTIVE COUNT_INACTIVE NEXT_INACTIVE_ROT  |
 *              | locals (common only): NR_CPUS x 64 B:                |
 *              |  LOCK FREE_HEAD NEXT_STEAL                           |
 *              | nodes: (num_elems + sentinels) x 16 B:               |
 *              |  PREV NEXT META(type | cpu << 8) REF                 |
 *              |  node i < num_elems is element i; then each list's   |
 *              |  ACTIVE INACTIVE FREE sentinels, then (common) each  |
 *              |  CPU's PENDING sentinel (kernel: struct bpf_lru_node)|
 *  ELEMS       +------------------------------------------------------+
 *              | elements homes..num_elems-1 (all of them when the    |
 *              | map has no homes), struct htab_elem, elem_size B:    |
 *              |  +0 NEXT  +4 HASH  +8 FNEXT  +12 TAG (FPREV)         |
 *              |  +16 key[round_up(key_size, 8)]                      |
 *              |  +16+round_up(key_size, 8) value[round_up(vs, 8)]    |
 *              +------------------------------------------------------+
 * ```
 *
 * Lock order (written here once; every other mention points here). A
 * thread takes locks only in this order, and gives each up after
 * LOCK_TIMEOUT_MS (ETIMEDOUT, nothing changed):
 *
 * | rank | lock | note |
 * |------|------|------|
 * | 1 | HDR_RECOVERY_LOCK | crash recovery only, taken holding nothing else |
 * | 2 | LRU local list lock (one) | LRU maps: a CPU's local lists |
 * | 3 | LRU common list lock (one) | LRU maps; an eviction holds it while it takes the victim's bucket |
 * | 4 | bucket SEQLOCK (one) | no operation holds two bucket locks |
 * | 5 | freelist FL_LOCK (one; limbo lists share it) | never held while taking any other lock |
 *
 * Exceptions: the LRU rebuild (repair after a crash) takes every LRU lock in
 * index order, then every freelist lock, then one bucket at a time (on an
 * LRU map nobody takes a freelist lock while holding a bucket); on LRU maps
 * nothing pops or pushes an element while a bucket lock is held (elements
 * wait in the policy until after the unlock), because ranks 2-3 come first.
 * An LRU swap of two nodes' places (alloc/bpf-lru.ts swapPlaces(), after a
 * replace whose old element this thread's own section references) holds two
 * LRU locks at once, in lockWords() order (locals by CPU, then lists), and
 * no bucket lock.
 *
 * Reuse while sections are open (alloc/epoch.ts, core/elems/grace.ts,
 * core/held-refs.ts): an element unlinked while ACTIVE > 0 waits in limbo
 * until every section that began before its unlink has ended, except what
 * no open section can reach: when the only open section is the unlinking
 * view's own (ACTIVE, read after the unlink, is 1 and that view is inside a
 * section) and that section never got a reference to the element (lookupRef,
 * lookupPercpuRef, a program's map_lookup_elem, forEachElem: recorded,
 * bounded, in the view's JS state), it is freed at once; and a limbo element
 * whose grace only the reclaiming view's own section holds up (every other
 * open section entered after its TAG) and that the section never referenced
 * is reclaimed. Elements another thread's open section may reach are never
 * reused under it; lock-free readers need no limbo (bucket seqlock).
 *
 * Memory-ordering table (one row per shared word):
 *
 * | word            | written by                      | read by                  | access / protocol |
 * |-----------------|---------------------------------|--------------------------|-------------------|
 * | header fields   | creator, before the SAB is shared | everyone                | plain; immutable after create (FROZEN: Atomics) |
 * | pcpu FL_LOCK    | any worker                      | any worker               | Atomics; owner-tagged lock guarding FL_HEAD and FNEXT of listed elements; a waiter gives up after 250 ms (pop: next list, or ETIMEDOUT; push: next CPU's list) |
 * | pcpu FL_HEAD    | holder of FL_LOCK               | holder of FL_LOCK, fsck  | plain under FL_LOCK |
 * | pcpu EXTRA      | the slot owner only             | slot owner, fsck         | plain; one thread per slot |
 * | pcpu COUNT      | the slot owner only             | count() from anyone      | plain store by the owner, Atomics.load by readers; sum can be late |
 * | bucket SEQLOCK  | writers of that bucket          | writers, lock-free readers | Atomics; seq << 3 / WRITING / WAITERS / LOCKED (sync/bucket-seqlock.ts). LOCKED: CAS by the taker. WRITING: atomic OR by the holder before its first store a reader could see (a link, a value in place), or set by the locking CAS on the wasm write path; readers retry while it is set and ignore LOCKED, so a holder that is not writing (a compute() callback, a stalled or dead holder) blocks no reader. The unlock's one exchange clears LOCKED, WAITERS and WRITING and adds a seq step if it wrote. Waiters give up after 250 ms (ETIMEDOUT) |
 * | bucket OWNER    | holder of SEQLOCK               | fsck, crash recovery     | plain; cpu + 1 of the holder, 0 when free |
 * | bucket HEAD     | holder of SEQLOCK               | readers inside a seq window | plain; readers validate with SEQLOCK |
 * | elem NEXT/HASH/key/value | holder of the lock of the bucket it is being linked into (or the element's sole owner while it is off every chain) | readers inside a seq window | plain; a stale reader is caught by the SEQLOCK of the bucket it started from |
 * | elem FNEXT, TAG | holder of the FL_LOCK of the list it is on | same             | plain under FL_LOCK. On a freelist TAG is FPREV (the list is doubly linked so that a home claim can take an element out of its middle); in limbo it is the epoch |
 * | record HOME_STATE | the holder of the lock that owns the home element's state: FL_LOCK of list c for HOME_LISTED(c) <-> HOME_TAKEN (push, pop, claim), the home bucket's lock for HOME_TAKEN <-> HOME_LINKED (link into, unlink from its home chain, inside the WRITING window) | claimers (unlocked peek, then rechecked under FL_LOCK); lock-free readers of the home bucket; fsck, recovery | Atomics.store / Atomics.load. States: HOME_LISTED(c) = c + 1 (on freelist c), HOME_TAKEN = 0 (off every freelist: popped, claimed, EXTRA, limbo, in limbo-to-list, or linked in another bucket), HOME_LINKED = -1 (linked in its home bucket's chain). A reader of bucket b that sees HOME_LINKED and the key in the home element under an unchanged seq has found it |
 * | hdr CARVED      | holder of GROW_LOCK (NO_PREALLOC) | allocators, fsck       | Atomics; elements below it exist, the buffer has grown past them first. The holder records the element in its INFLIGHT, then stores CARVED: a recoverer decides whether a dead holder's INFLIGHT is carved before it frees GROW_LOCK (a live carver then takes that element and CARVED counts it) |
 * | hdr EPOCH       | any thread that frees while sections are active | section entry, reclaim | Atomics.add / Atomics.load |
 * | hdr ACTIVE      | section entry and exit           | writers freeing elements | Atomics; read after the unlink, so a section either sees the unlink or is counted. 1 with the writer's own view in a section: no other section can hold the element (a section entering later cannot find it), so an element that section never referenced is freed at once |
 * | pcpu SECTION    | the slot owner                  | reclaimers                | Atomics.store / Atomics.load |
 * | pcpu OWNER      | attach (CAS free -> alive), reap (alive -> dead), recovery (dead -> free) | everyone | Atomics |
 * | pcpu INTENT_*, INFLIGHT | the slot owner, before the stores they describe | a recoverer, after the owner died | plain writes; read after the owner is marked dead (the exit event orders them) |
 * | scratch (per CPU) | the slot owner only           | the slot owner (JS and wasm) | plain; never read by another thread |
 * | pcpu LRU_SPARE  | the slot owner, under the LRU lock that hands the element out | an LRU repair, holding every LRU lock | plain |
 * | pcpu LIMBO_HEAD | holder of FL_LOCK               | same                      | plain under FL_LOCK |
 * | lru LOCK words  | any worker                      | any worker               | Atomics; owner-tagged (sync/owner-lock.ts); a waiter backs out after 250 ms (ETIMEDOUT before any change) |
 * | lru node PREV/NEXT/META, list counts, NEXT_INACTIVE_ROT, local FREE_HEAD/NEXT_STEAL | holder of the lock of the list the node is on | same | plain under that lock |
 * | lru node REF    | program-side lookups (set), list-lock holders (clear) | list-lock holders | plain; a lost set or clear only ages an element differently, as in the kernel |
 * | hdr LRU_REPAIR  | a recoverer (set, before freeing a dead slot's LRU locks), the repairer (clear, holding every LRU lock) | every LRU lock taker, after acquiring | Atomics |
 * | hdr LIMBO_COUNT | limboPush (add, before listing), limboReclaim (sub, under the list lock) | limboReclaimAll() (HASH and LRU allocators) | Atomics; a hint that may run high, never low |
 * | hdr INNER_*     | the creator of a map-in-map      | outer-map updates        | plain; immutable after create |
 * | domain COUNT    | the creator of a map, holding ALLOC_LOCK, after the map's region and directory entry are written | mapById() in any thread | Atomics: publishes the entry |
 * | domain owners   | attach (CAS free -> alive), reap, close | attach | Atomics |
 *
 * Why a reader's plain loads are not torn (the lock-free lookups: core/lookup.ts
 * lookupJs() and InlineReader, fast-path.wat $find). In the JS memory model's
 * terms (ECMA-262 "Memory Model"; wasm's threads model is the same): the bucket
 * word is only ever accessed with SeqCst events, and every write to it is a
 * read-modify-write (the locking CAS, the WRITING OR, the unlocking exchange;
 * crash recovery's too), so its writes form one chain in which each reads the
 * one before. A writer sets WRITING (RMW `L`) before its first plain store `w`
 * a reader could see and clears it with the unlocking exchange `U` after its
 * last. A reader makes SeqCst load `s1`, plain (Unordered) loads `d` of HEAD,
 * HOME_STATE, links, hashes, keys and the value, then SeqCst load `s2`, and
 * keeps what it read only if both samples have WRITING clear and the same seq.
 * - No stale read. `s1` reads from `U` of the last section that wrote (or a
 *   non-writing lock/unlock RMW chained after it), so `U` synchronizes-with
 *   `s1`: that section's stores happen-before every `d`, and coherent reads
 *   forbid a `d` from returning a value they overwrote. This holds in the
 *   model, for plain and atomic loads alike.
 * - No read of a section that began after `s1`. `s2` saw the word without that
 *   section's WRITING, so `s2` precedes its `L` in memory-order; `L` precedes
 *   `w` and `d` precedes `s2` (agent-order). But the model only keeps a plain
 *   `d` from reading `w` when `d` happens-before `w`, and nothing synchronizes
 *   from the reader to the writer: `s2` is a load, which no RMW reads from. So
 *   the model does NOT guarantee this half with a SeqCst load as the closing
 *   sample. It would with a SeqCst RMW there that leaves the word as it is
 *   (`Atomics.or(i32, seq, 0)`, wasm `i32.atomic.rmw.or`): `L` then reads from
 *   it (directly or through the chain), so `s2` synchronizes-with `L`, `d`
 *   happens-before `w`, and `d` cannot read `w`. Not taken: every lookup
 *   would write its bucket's line, which two readers of the same buckets then
 *   pass back and forth (the lookups' 2-worker scaling), and it is a locked
 *   instruction per lookup (not measured here yet).
 * - What holds on hardware, under the mappings the engines use. x86-64 (V8,
 *   SpiderMonkey, JSC; the machines this project is tested on): SeqCst and
 *   plain loads are both MOV, RMWs are LOCK-prefixed (full fences); TSO keeps
 *   loads in order with loads and stores with stores, so each `d` is performed
 *   before `s2` and no `w` becomes visible before `L`: the torn outcome needs
 *   one of the two. The compiler must keep the order too: V8 treats an
 *   `Atomics` call (a builtin call in V8 11) and a wasm atomic as touching
 *   any memory, so it neither moves nor merges a typed-array load across
 *   one. ARMv8 (V8's mapping: SeqCst load LDAR,
 *   plain LDR, RMW LDAXR/STLXR or CASAL): LDAR `s1` orders the later `d`
 *   after it, so the first half holds; but an earlier LDR may be satisfied
 *   after a later LDAR, so a `d` may read `w` after `s2` read the old word,
 *   and a plain store after a store-release RMW may become visible before it
 *   (Linux puts smp_wmb() after write_seqcount_begin() for this). So on ARM
 *   the lookups are correct only with the closing RMW above; in wasm the
 *   data loads as atomic loads (LDAR, in order with `s2`; on x86 a plain MOV)
 *   cover the reader's side, and the writer's side needs a fence after the
 *   WRITING mark, which only another SeqCst RMW expresses. The reuse and
 *   stress tests (test/core/htab.reuse.test.ts, htab.stress.test.ts) check
 *   x86 only.
 * HOME_STATE is written with Atomics.store; a reader may load it plainly inside
 *   its window (InlineReader does): its changes to or from HOME_LINKED happen
 *   only inside the home bucket's WRITING window, which the samples check.
 */

import { isLru, isPercpu } from "../map/traits.js";
import { MapFlags } from "../uapi.js";

/** "HTAB" in ASCII, first word of every map. */
export const HTAB_MAGIC = 0x48544142;
/**
 * Bumped whenever any offset or word protocol below changes (7: the bucket
 * word gained WRITING; 8: the scratch gained the many area; 9: owner words
 * carry a claim generation; 10: bucket records hold home elements,
 * freelists are doubly linked); attach refuses other versions.
 */
export const LAYOUT_VERSION = 10;

/** A wasm memory page: a map in a shared WebAssembly.Memory is sized in these. */
export const WASM_PAGE_BYTES = 65536;

/** A cache line; per-CPU records are padded to this to avoid false sharing. */
export const CACHE_LINE_BYTES = 64;

// ---- header (word indices) ----
export const HDR_MAGIC_I32 = 0;
export const HDR_VERSION_I32 = 1;
export const HDR_MAP_TYPE_I32 = 2;
export const HDR_KEY_SIZE_I32 = 3;
export const HDR_VALUE_SIZE_I32 = 4;
export const HDR_MAX_ENTRIES_I32 = 5;
export const HDR_MAP_FLAGS_I32 = 6;
export const HDR_N_BUCKETS_I32 = 7;
export const HDR_HASHRND_I32 = 8;
export const HDR_ELEM_SIZE_I32 = 9;
export const HDR_NUM_ELEMS_I32 = 10;
export const HDR_NR_CPUS_I32 = 11;
export const HDR_BUCKETS_I32 = 12;
export const HDR_ELEMS_I32 = 13;
export const HDR_TOTAL_BYTES_I32 = 14;
export const HDR_FROZEN_I32 = 15;
/** Value byte offset of the bpf_spin_lock field, or -1 (the BTF record, reduced to what htab needs). */
export const HDR_SPIN_LOCK_OFF_I32 = 16;
/** Global reclamation epoch (second cache line of the header: written on frees under sections). */
export const HDR_EPOCH_I32 = 17;
/** Number of threads inside a program section right now. */
export const HDR_ACTIVE_I32 = 18;
/** Held while a thread recovers a dead slot (one recovery at a time). */
export const HDR_RECOVERY_LOCK_I32 = 19;
/** Locks and half-done operations recovered from dead slots (stats). */
export const HDR_RECOVERED_I32 = 20;
/** BPF_F_NO_PREALLOC: elements carved from the growable buffer so far (bump pointer). */
export const HDR_CARVED_I32 = 21;
/** BPF_F_NO_PREALLOC: lock around carving and growing (owner-tagged). */
export const HDR_GROW_LOCK_I32 = 22;
/** LRU maps: 1 when a dead slot may have left the LRU lists half-linked; the next allocation rebuilds them. */
export const HDR_LRU_REPAIR_I32 = 23;
/**
 * ARRAY_OF_MAPS / HASH_OF_MAPS: the inner-map template (kernel: inner_map_meta),
 * which every inner map stored must match.
 */
export const HDR_INNER_TYPE_I32 = 24;
export const HDR_INNER_KEY_SIZE_I32 = 25;
export const HDR_INNER_VALUE_SIZE_I32 = 26;
export const HDR_INNER_MAX_ENTRIES_I32 = 27;
export const HDR_INNER_FLAGS_I32 = 28;
/** Elements in all limbo lists (a hint: non-zero means a reclaim may find some). */
export const HDR_LIMBO_COUNT_I32 = 29;
/** A random word written at create: attach() checks that handle.memory and handle.sab hold the same map. */
export const HDR_NONCE_I32 = 30;
/**
 * Word index where the home elements end (0: the map has none). An element
 * e < HOME_END is a home: its HOME_STATE word is e + ELEM_HOME_STATE_I32.
 */
export const HDR_HOME_END_I32 = 31;
export const HEADER_BYTES = 128;

// ---- per-CPU record (word offsets within one record) ----
export const PCPU_BASE_BYTES = HEADER_BYTES;
export const PCPU_RECORD_BYTES = CACHE_LINE_BYTES;
export const PCPU_OWNER_I32 = 0;
export const PCPU_FL_LOCK_I32 = 1;
export const PCPU_FL_HEAD_I32 = 2;
export const PCPU_EXTRA_I32 = 3;
export const PCPU_COUNT_I32 = 4;
/** Epoch + 1 at which this slot's thread entered its program section; 0 when outside. */
export const PCPU_SECTION_I32 = 5;
/** Freed elements waiting for a grace period (guarded by FL_LOCK, linked by FNEXT). */
export const PCPU_LIMBO_HEAD_I32 = 6;
/**
 * Crash intent record, written by the slot owner before each chain change so
 * that a survivor can finish or undo it if the owner dies (worker.terminate()).
 * INTENT_BUCKET: bucket word index being locked or held (0 = none).
 */
export const PCPU_INTENT_BUCKET_I32 = 7;
/** INTENT_OP: OP_NONE, OP_INSERT, OP_REPLACE or OP_UNLINK. */
export const PCPU_INTENT_OP_I32 = 8;
/** The element inserted, the new element of a replace, or the element unlinked. */
export const PCPU_INTENT_ELEM_I32 = 9;
/** The element a replace takes out. */
export const PCPU_INTENT_OLD_I32 = 10;
/** COUNT before the operation, so recovery can set it to before or before + delta. */
export const PCPU_INTENT_COUNT_I32 = 11;
/** An element this slot owns off every list and chain (popped, or unlinked and not yet freed). */
export const PCPU_INFLIGHT_I32 = 12;
/** LRU maps: the element this slot popped for its current update and has not linked or given back (0 = none). */
export const PCPU_LRU_SPARE_I32 = 13;
/**
 * Who claimed the slot (sync/slot-claim.ts): the claiming thread's random
 * token (> 0) while the slot is taken, kept after it is given back; while
 * the slot is free, a negative value reserves it for a thread that will
 * claim it by number (watchWorker(map, worker, cpu)).
 */
export const PCPU_CLAIM_I32 = 14;

/**
 * A CPU slot's owner word (PCPU_OWNER, a domain's owner words): generation
 * << 2 | state. Every claim bumps the generation, so a reap that names the
 * generation it means (reap(cpu, generation)) cannot hit a later owner of
 * the same slot. sync/slot-claim.ts is the only writer's code.
 */
export const SLOT_FREE = 0;
export const SLOT_ALIVE = 1;
export const SLOT_DEAD = 2;
export const SLOT_STATE_MASK = 3;

export const OP_NONE = 0;
export const OP_INSERT = 1;
export const OP_REPLACE = 2;
export const OP_UNLINK = 3;

// ---- ARRAY_OF_MAPS region: the header and per-CPU records above, then the slots ----
/** "HAOM": first word of an ARRAY_OF_MAPS region. */
export const AOM_MAGIC = 0x48414f4d;
/** Word index of slot 0: one i32 per index, the inner map's id or 0 (empty). */
export function aomSlotsI32(nrCpus: number): number {
  return roundUp(PCPU_BASE_BYTES + nrCpus * PCPU_RECORD_BYTES, CACHE_LINE_BYTES) >> 2;
}
export function aomBytes(nrCpus: number, maxEntries: number): number {
  return roundUp(aomSlotsI32(nrCpus) * 4 + maxEntries * 4, CACHE_LINE_BYTES);
}

// ---- ARRAY / PERCPU_ARRAY region (kernel: struct bpf_array) ----
//
//  byte 0     header: the hash header's words where they mean the same (MAGIC = ARRAY_MAGIC,
//             VERSION MAP_TYPE KEY_SIZE(4) VALUE_SIZE MAX_ENTRIES MAP_FLAGS ELEM_SIZE (the
//             element stride) NR_CPUS ELEMS_I32 TOTAL_BYTES FROZEN SPIN_LOCK_OFF EPOCH ACTIVE
//             RECOVERED NONCE), 128 B
//  byte 128   per-CPU records: NR_CPUS x 64 B (OWNER SECTION CLAIM as a hash map's, and
//             ARR_PCPU_WRITING: index + 1 of the element whose writer lock the slot holds)
//  ELEMS      max_entries elements, elem stride B each (a multiple of 8), index i at
//             ELEMS + i x stride, all of them there from create on (never freed):
//
//    +0 LOCK  writer lock (sync/owner-lock.ts: (cpu + 1) << 1 | waiters): every control-plane
//             write of the element holds it
//    +4 SEQ   even: stable; odd: a writer is copying a value in
//    +8 value ARRAY: round_up(value_size, 8) bytes (kernel: elem_size)
//             PERCPU_ARRAY: NR_CPUS x round_up(value_size, 8), CPU c's at +8 + c x
//             round_up(value_size, 8): the syscall layout, so a lookup is one copy
//
// Untorn lookups: the kernel's array lookup is a plain memcpy that a concurrent update can
// tear; here a control-plane write takes LOCK, makes SEQ odd, copies, makes SEQ even and
// releases, and a lookup copies between two equal even SEQ reads; after SPIN_LIMIT tries
// (writers that keep the element busy would starve it) it copies holding LOCK instead,
// which waits at most LOCK_TIMEOUT_MS (then ETIMEDOUT). BPF_F_LOCK copies take the value's bpf_spin_lock as
// the kernel does (copy_map_value_locked()); a BPF_F_LOCK update takes LOCK first, then the
// spin lock. Programs write values in place through ValueRef (no SEQ step), as the kernel's
// programs do: a lookup can see a program's multi-field write half-done, unless both use the
// value's bpf_spin_lock.
//
// Lock order (arrays): element LOCK (one), then the value's bpf_spin_lock (one).
//
// | word        | written by                          | read by                  | access / protocol |
// |-------------|-------------------------------------|--------------------------|-------------------|
// | elem LOCK   | control-plane writers of the element, and a lookup after SPIN_LIMIT failed tries | writers, recovery, fsck | Atomics; owner-tagged, 250 ms bound (ETIMEDOUT) |
// | elem SEQ    | the holder of LOCK (odd before its first value store, even after its last) | lookups, fsck | Atomics.add / Atomics.load |
// | elem value  | the holder of LOCK; programs (ValueRef, in place) | lookups inside an even, unchanged SEQ | plain |
// | pcpu ARR_PCPU_WRITING | the slot owner, before taking an element's LOCK and after releasing it | a recoverer after the owner died | plain; the reaper makes SEQ even and frees LOCK |

/** "HARR": first word of an ARRAY or PERCPU_ARRAY region. */
export const ARRAY_MAGIC = 0x48415252;
/** Per-CPU record word (arrays): index + 1 of the element this slot is writing, 0 when none. */
export const ARR_PCPU_WRITING_I32 = PCPU_INTENT_ELEM_I32;
export const ARR_ELEM_LOCK_I32 = 0;
export const ARR_ELEM_SEQ_I32 = 1;
export const ARR_ELEM_HEADER_BYTES = 8;

/** An array's sizes (array/array-map.ts), computed once from its parameters. */
export interface ArrayGeometry {
  /** PERCPU_ARRAY: one value slot per CPU. */
  percpu: boolean;
  nrCpus: number;
  maxEntries: number;
  valueSize: number;
  /** round_up(value_size, 8): one CPU's value slot (kernel: array->elem_size). */
  slotBytes: number;
  /** Value bytes stored per element: slotBytes, or nrCpus x slotBytes for PERCPU_ARRAY. */
  valueBytesStored: number;
  /** Bytes per element: ARR_ELEM_HEADER_BYTES + valueBytesStored. */
  stride: number;
  /** Byte offset of element 0. */
  elemsBytes: number;
  totalBytes: number;
}

export function arrayGeometry(
  percpu: boolean,
  valueSize: number,
  maxEntries: number,
  nrCpus: number,
): ArrayGeometry {
  const slotBytes = roundUp(valueSize, 8);
  const valueBytesStored = percpu ? slotBytes * nrCpus : slotBytes;
  const stride = ARR_ELEM_HEADER_BYTES + valueBytesStored;
  const elemsBytes = roundUp(PCPU_BASE_BYTES + nrCpus * PCPU_RECORD_BYTES, CACHE_LINE_BYTES);
  return {
    percpu,
    nrCpus,
    maxEntries,
    valueSize,
    slotBytes,
    valueBytesStored,
    stride,
    elemsBytes,
    totalBytes: roundUp(elemsBytes + maxEntries * stride, CACHE_LINE_BYTES),
  };
}

/** Word index of array element `index`'s LOCK word. */
export function arrayElemI32(g: ArrayGeometry, index: number): number {
  return (g.elemsBytes + index * g.stride) >>> 2;
}

/** Byte offset of array element `index`'s value (CPU `cpu`'s slot of a per-CPU value). */
export function arrayValueOff(g: ArrayGeometry, index: number, cpu = 0): number {
  return g.elemsBytes + index * g.stride + ARR_ELEM_HEADER_BYTES + (g.percpu ? cpu * g.slotBytes : 0);
}

// ---- MapDomain: many maps in one growable SharedArrayBuffer (kernel: the map IDR) ----
//
//  byte 0     header: MAGIC VERSION NR_CPUS MAX_MAPS COUNT USED8 ALLOC_LOCK MAX8 (64 B)
//  byte 64    slot owners: NR_CPUS words (FREE / ALIVE / DEAD), then NR_CPUS claim words, cache-line padded
//  DIR        directory: MAX_MAPS x 16 B: OFFSET8 LENGTH8 TYPE (map id = index + 1)
//  DATA       maps, each at a 64-byte-aligned offset, laid out as a standalone map
/** "HDOM". */
export const DOM_MAGIC = 0x48444f4d;
export const DOM_MAGIC_I32 = 0;
export const DOM_VERSION_I32 = 1;
export const DOM_NR_CPUS_I32 = 2;
export const DOM_MAX_MAPS_I32 = 3;
/** Maps created so far; a directory entry is complete before COUNT covers it. */
export const DOM_COUNT_I32 = 4;
/** Bytes in use / 8 (bump allocator; maps live as long as the domain). */
export const DOM_USED8_I32 = 5;
export const DOM_ALLOC_LOCK_I32 = 6;
/** Bytes the domain may grow to / 8 (a wasm memory's maximum; a growable SAB's maxByteLength). */
export const DOM_MAX8_I32 = 7;
export const DOM_HEADER_BYTES = 64;
export const DOM_OWNERS_I32 = DOM_HEADER_BYTES >> 2;
export const DOM_DIR_ENTRY_BYTES = 16;
export const DOM_DIR_OFFSET8_I32 = 0;
export const DOM_DIR_LENGTH8_I32 = 1;
export const DOM_DIR_TYPE_I32 = 2;
/**
 * Directory TYPE of a raw region (MapDomain.allocRaw): bytes that are no
 * map (a loaded BPF object's globals, its programs' stacks, contexts and
 * packets); its id names no map.
 */
export const DOM_RAW_TYPE = -1;
/** Domain slot `cpu`'s claim word (as PCPU_CLAIM: who claimed it), after the NR_CPUS owner words. */
export function domClaimI32(nrCpus: number, cpu: number): number {
  return DOM_OWNERS_I32 + nrCpus + cpu;
}
export function domDirI32(nrCpus: number): number {
  return roundUp(DOM_HEADER_BYTES + nrCpus * 8, CACHE_LINE_BYTES) >> 2;
}
export function domDataBytes(nrCpus: number, maxMaps: number): number {
  return roundUp(domDirI32(nrCpus) * 4 + maxMaps * DOM_DIR_ENTRY_BYTES, CACHE_LINE_BYTES);
}

// ---- per-CPU scratch (word offsets of the fast-path descriptor; see fast-path.wat) ----
export const SCRATCH_DESC_BYTES = 2 * CACHE_LINE_BYTES;
/** Largest value the wasm fast path copies through a slot's scratch buffer (see Geometry.scratchValueBytes). */
export const FAST_VALUE_MAX_BYTES = 1024;
/** Keys per wasm lookupMany() call: enough misses in flight to fill a core's line-fill buffers. */
export const MANY_CHUNK = 16;
/** Largest scratch value with a many area (MANY_CHUNK of them per CPU slot). */
export const MANY_VALUE_MAX_BYTES = 64;
export const SCRATCH_BASE_I32 = 0;
export const SCRATCH_BUCKETS_I32 = 1;
export const SCRATCH_MASK_I32 = 2;
export const SCRATCH_HASHRND_I32 = 3;
export const SCRATCH_KEY_I32 = 4;
export const SCRATCH_KEY_WORDS_I32 = 5;
export const SCRATCH_VALUE_OFF_I32 = 6;
export const SCRATCH_VALUE_U64S_I32 = 7;
export const SCRATCH_OUT_I32 = 8;
export const SCRATCH_BOUND_I32 = 9;
/** Byte addresses of CPU 0's per-CPU record, of the header's ACTIVE word and of this slot's record. */
export const SCRATCH_PCPU0_I32 = 10;
export const SCRATCH_CPU_I32 = 11;
export const SCRATCH_NR_CPUS_I32 = 12;
export const SCRATCH_ACTIVE_I32 = 13;
export const SCRATCH_MY_PCPU_I32 = 14;
/** Byte address of the header's FROZEN word (the wasm write path refuses a frozen map). */
export const SCRATCH_FROZEN_I32 = 15;
/** Words per bucket record (layout.ts Geometry.bucketStride / 4). */
export const SCRATCH_STRIDE_I32 = 16;
/**
 * LRU_HASH maps on the common LRU (the wasm LRU update; 0 in LRU_NODES for
 * every other map): byte addresses of node 0, of list 0's record and of CPU
 * 0's local record; num_elems (the first sentinel node); target_free; the
 * word index of element 0 and words per element. Written at attach.
 */
export const SCRATCH_LRU_NODES_I32 = 17;
export const SCRATCH_LRU_NUM_I32 = 18;
export const SCRATCH_LRU_LIST_I32 = 19;
export const SCRATCH_LRU_LOCALS_I32 = 20;
export const SCRATCH_LRU_TARGET_I32 = 21;
export const SCRATCH_ELEMS_I32 = 22;
export const SCRATCH_ELEM_STRIDE_I32 = 23;
/** Written by the wasm LRU update: the bucket whose lock an eviction gave up on (LOCK_TIMEOUT_MS), else 0. */
export const SCRATCH_EVICT_TIMEDOUT_I32 = 24;
/**
 * The links a chain or list of this map may hold: a link `e` is followed only
 * when `(e - LINK_LO) >>> 0 <= LINK_SPAN` (an element wholly inside the map,
 * at or past its first bucket record), so that damaged memory never makes
 * the wasm path read or write outside its own map (a domain's other maps).
 */
export const SCRATCH_LINK_LO_I32 = 25;
export const SCRATCH_LINK_SPAN_I32 = 26;
/**
 * LRU_HASH maps on the common LRU: nodes in the LRU (num_elems, then every
 * list's sentinels and each CPU's PENDING sentinel). An LRU link is followed
 * only when below it, so that a damaged node link never sends the wasm LRU
 * outside its map's nodes (alloc/lru-nodes.ts nodeCount on the JS path).
 */
export const SCRATCH_LRU_NODE_COUNT_I32 = 27;

// ---- struct bucket (word offsets within one bucket) ----
export const BUCKET_BYTES = 16;
export const BUCKET_HEAD_I32 = 0;
export const BUCKET_SEQLOCK_I32 = 1;
export const BUCKET_OWNER_I32 = 2;
/** The home element's state (homed maps; HOME_* below). */
export const BUCKET_HOME_STATE_I32 = 3;
/** A homed record's element starts here, right after the bucket. */
export const BUCKET_HOME_I32 = BUCKET_BYTES >> 2;
/** Home element states (record HOME_STATE): on freelist c is c + 1. */
export const HOME_TAKEN = 0;
export const HOME_LINKED = -1;
/** From a home element to its HOME_STATE word. */
export const ELEM_HOME_STATE_I32 = BUCKET_HOME_STATE_I32 - BUCKET_HOME_I32;

// ---- LRU region (kernel: struct bpf_lru, bpf_lru_list, bpf_lru_locallist, bpf_lru_node) ----
/** No LRU, one common LRU with per-CPU local lists, or BPF_F_NO_COMMON_LRU (a list per CPU). */
export const LRU_NONE = 0;
export const LRU_COMMON = 1;
export const LRU_PERCPU = 2;
/** struct bpf_lru_list, one cache line each. */
export const LRU_LIST_BYTES = CACHE_LINE_BYTES;
export const LRU_LIST_LOCK_I32 = 0;
/** counts[BPF_LRU_LIST_T_ACTIVE], counts[BPF_LRU_LIST_T_INACTIVE] (the kernel counts only these two). */
export const LRU_LIST_COUNT_ACTIVE_I32 = 1;
export const LRU_LIST_COUNT_INACTIVE_I32 = 2;
/** Node where the next inactive rotation starts (the INACTIVE sentinel when none). */
export const LRU_LIST_NEXT_INACTIVE_ROT_I32 = 3;
/** struct bpf_lru_locallist (common LRU only), one cache line each. */
export const LRU_LOCAL_BYTES = CACHE_LINE_BYTES;
export const LRU_LOCAL_LOCK_I32 = 0;
/** First node of the CPU's local free stack (linked by node NEXT), or -1. */
export const LRU_LOCAL_FREE_HEAD_I32 = 1;
export const LRU_LOCAL_NEXT_STEAL_I32 = 2;
/** struct bpf_lru_node: 16 B per node. */
export const LRU_NODE_BYTES = 16;
export const LRU_NODE_PREV_I32 = 0;
export const LRU_NODE_NEXT_I32 = 1;
/** type (low 8 bits) | cpu << 8. */
export const LRU_NODE_META_I32 = 2;
export const LRU_NODE_REF_I32 = 3;
/** Sentinels per list: ACTIVE, INACTIVE, FREE (kernel: enum bpf_lru_list_type order). */
export const LRU_SENTINELS_PER_LIST = 3;
/** Kernel LOCAL_FREE_TARGET: the most nodes a CPU takes from the common lists at once (also its LOCAL_NR_SCANS). */
export const LRU_LOCAL_FREE_TARGET = 128;

// ---- struct htab_elem (word offsets within one element) ----
export const ELEM_NEXT_I32 = 0;
export const ELEM_HASH_I32 = 1;
export const ELEM_FNEXT_I32 = 2;
/** While in limbo: the epoch after which the element may be reused. */
export const ELEM_TAG_I32 = 3;
/** While on a freelist: the element before it (0: it is the head). The same word as TAG. */
export const ELEM_FPREV_I32 = ELEM_TAG_I32;
export const ELEM_HEADER_BYTES = 16;
export const ELEM_KEY_I32 = ELEM_HEADER_BYTES >> 2;

/** Largest map htab addresses: element links are int32 word indices. */
export const MAX_TOTAL_BYTES = 0x7fff_fff0 * 4;

export function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** roundup_pow_of_two() for 1 <= n <= 2^31. */
export function roundupPowOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** LRU_COMMON or LRU_PERCPU for the LRU types (map/traits.ts isLru()), else LRU_NONE. */
export function lruKind(type: number, mapFlags: number): number {
  if (!isLru(type)) return LRU_NONE;
  return (mapFlags & MapFlags.NoCommonLru) !== 0 ? LRU_PERCPU : LRU_COMMON;
}

/** The per-CPU value types (map/traits.ts isPercpu()). */
export const isPercpuType = isPercpu;

/**
 * Bytes of one value as the syscall interface moves it: value_size, or for
 * per-CPU maps every possible CPU's round_up(value_size, 8) slot.
 */
export function syscallValueBytes(type: number, valueSize: number, nrCpus: number): number {
  return isPercpuType(type) ? roundUp(valueSize, 8) * nrCpus : valueSize;
}

/** A map's number of CPU slots, from its header (for code that has only the map's words). */
export function headerNrCpus(i32: Int32Array): number {
  return i32[HDR_NR_CPUS_I32];
}

/** Word index of per-CPU record `cpu`. */
export function pcpuBase(cpu: number): number {
  return (PCPU_BASE_BYTES + cpu * PCPU_RECORD_BYTES) >> 2;
}

/** BUILD_BUG_ON in spirit: layout assumptions checked at load time and by a test. */
export function assertLayout(): void {
  const fail = (what: string) => {
    throw new Error(`htab layout assertion failed: ${what}`);
  };
  if (SCRATCH_LRU_NODE_COUNT_I32 * 4 >= SCRATCH_DESC_BYTES)
    fail("fast-path descriptor overflows its cache line");
  if (PCPU_CLAIM_I32 * 4 >= PCPU_RECORD_BYTES) fail("per-CPU record overflows its cache line");
  if (HDR_HOME_END_I32 * 4 >= HEADER_BYTES) fail("header fields overflow the header");
  if (BUCKET_HOME_STATE_I32 * 4 >= BUCKET_BYTES) fail("bucket fields overflow struct bucket");
  if (BUCKET_OWNER_I32 * 4 >= BUCKET_BYTES) fail("bucket fields overflow struct bucket");
  if (ELEM_TAG_I32 * 4 >= ELEM_HEADER_BYTES) fail("element header fields overflow");
  if (ELEM_HEADER_BYTES % 8 !== 0) fail("key must start 8-byte aligned");
  if (HDR_FROZEN_I32 * 4 >= HEADER_BYTES) fail("header fields overflow the header");
  if (PCPU_BASE_BYTES % CACHE_LINE_BYTES !== 0) fail("per-CPU area not cache-line aligned");
  if (LRU_LIST_NEXT_INACTIVE_ROT_I32 * 4 >= LRU_LIST_BYTES) fail("LRU list record overflows its cache line");
  if (LRU_NODE_REF_I32 * 4 >= LRU_NODE_BYTES) fail("LRU node fields overflow struct bpf_lru_node");
}
assertLayout();
