;; htab's fast path: the hot loops of src/core/htab.ts over the map's own
;; memory, compiled where the engine inlines atomics (V8 11 calls a builtin
;; for every JS Atomics.load; a wasm i32.atomic.load is one instruction).
;;
;; Same protocol as the JS path, word for word (see sync/bucket-seqlock.ts and
;; layout/layout.ts): a bucket is HEAD (+0) SEQLOCK (+4); an element is
;; NEXT (+0) HASH (+4) ... key (+16). Links are word indices relative to the
;; map's base; 0 is "none". Both paths run on one map at once: wasm's
;; i32.atomic.* are sequentially consistent like JS Atomics, and its plain
;; loads and stores are the JS path's plain typed-array accesses, so every
;; rule of the memory-ordering table in layout.ts holds for both.
;;
;; Regenerate src/wasm/fast-path-bytes.ts with `npm run build:wasm`.
(module
  (import "env" "memory" (memory 1 65536 shared))
  ;; The two waits the LRU's eviction may need, in JS (wasm/fast-path.ts):
  ;; bucketWait(base, idx) takes the bucket seqlock at word idx of the map at
  ;; byte address base the way sync/bucket-seqlock.ts bucketLock() does
  ;; (spin, sleep, recover dead holders, give up after LOCK_TIMEOUT_MS: 0);
  ;; limboPush(base, cpu, e) is alloc/epoch.ts limboPush() (a program section
  ;; may still hold the evicted element).
  (import "env" "bucketWait" (func $bucketWait (param i32) (param i32) (result i32)))
  (import "env" "limboPush" (func $limboPush (param i32) (param i32) (param i32)))

  ;; The call from JS takes a descriptor instead of ten arguments (V8 11's
  ;; JS-to-wasm wrapper converts every argument on every call). A slot's
  ;; descriptor sits at the start of its scratch buffer (layout.ts SCRATCH_*),
  ;; written once when the slot is attached:
  ;;   +0 BASE (byte address of the map)  +4 BUCKETS (word index)  +8 MASK
  ;;   +12 HASHRND  +16 KEY (byte address)  +20 KEY_WORDS  +24 VALUE_OFF
  ;;   +28 VALUE_U64S  +32 OUT (byte address)  +36 BOUND  +40 PCPU0 (byte
  ;;   address of CPU 0's per-CPU record)  +44 CPU  +48 NR_CPUS  +52 ACTIVE
  ;;   (byte address of the header's ACTIVE word)  +56 MY_PCPU (this slot's record)
  ;;   +60 FROZEN (byte address of the header's FROZEN word)  +64 STRIDE
  ;;   (words per bucket record). LRU_HASH maps on the common LRU add:
  ;;   +68 LRU_NODES (byte address of node 0; 0 for every other map) +72
  ;;   LRU_NUM (num_elems: the first sentinel node) +76 LRU_LIST (byte address
  ;;   of list 0's record) +80 LRU_LOCALS (byte address of CPU 0's local
  ;;   record) +84 LRU_TARGET (target_free) +88 ELEMS (word index of element 0)
  ;;   +92 ELEM_STRIDE (words per element) +96 EVICT_TIMEDOUT (written here:
  ;;   the bucket whose lock an eviction gave up on, else 0) +100 LINK_LO +104
;;   LINK_SPAN (see lockAndFind) +108 LRU_NODE_COUNT (nodes in the LRU: every
;;   LRU link followed must be below it). A bucket record is HEAD SEQLOCK OWNER
  ;;   HOME_STATE, then (homed maps) its home element at +16; the header's
  ;;   word 31 (HOME_END) is the word index where home elements end.

  ;; Lock-free lookup of the slot's scratch key (kernel: lookup_nulls_elem_raw()
  ;; with the bucket seq in place of the nulls check). $mode bit 0: copy the
  ;; value to OUT (while the seq holds still); bit 1: hash the key here with
  ;; jhash2 (htab_map_hash() for keys of whole words), else use $hash.
  ;; Returns the element, 0 when absent, -1 when a holder is writing the
  ;; bucket (WRITING, bit 2: the caller spins, bounded). A holder that only
  ;; holds the lock (LOCKED, bit 0) does not stop the walk.
  (func (export "lookup") (param $d i32) (param $hash i32) (param $mode i32) (result i32)
    (local $key i32)
    (local.set $key (i32.load offset=16 (local.get $d)))
    (if (i32.and (local.get $mode) (i32.const 2))
      (then (local.set $hash (call $jhash2 (local.get $key) (i32.load offset=20 (local.get $d)) (i32.load offset=12 (local.get $d))))))
    (call $find (local.get $d) (local.get $key) (local.get $hash) (i32.load offset=32 (local.get $d))
      (select (i32.load offset=28 (local.get $d)) (i32.const 0) (i32.and (local.get $mode) (i32.const 1)))))

  ;; The bucket of $hash: its byte address.
  (func $bucketAddr (param $d i32) (param $hash i32) (result i32)
    (i32.add (i32.load (local.get $d))
      (i32.shl
        (i32.add (i32.load offset=4 (local.get $d)) (i32.mul (i32.and (local.get $hash) (i32.load offset=8 (local.get $d))) (i32.load offset=64 (local.get $d))))
        (i32.const 2))))

  ;; The lookup itself, of the key at byte address $key with hash $hash;
  ;; copies $vw u64 words of the value to $out when found (0: no copy).
  (func $find (param $d i32) (param $key i32) (param $hash i32) (param $out i32) (param $vw i32) (result i32)
    (local $base i32) (local $kw i32) (local $bound i32)
    (local $ba i32) (local $s i32) (local $s2 i32) (local $e i32) (local $a i32)
    (local $j i32) (local $found i32) (local $steps i32) (local $head i32) (local $homeFirst i32)
    (local $lo i32) (local $span i32)
    (local.set $base (i32.load (local.get $d)))
    (local.set $lo (i32.load offset=100 (local.get $d)))
    (local.set $span (i32.load offset=104 (local.get $d)))
    (local.set $kw (i32.load offset=20 (local.get $d)))
    (local.set $bound (i32.load offset=36 (local.get $d)))
    (local.set $ba (call $bucketAddr (local.get $d) (local.get $hash)))
    (loop $retry
      (local.set $s (i32.atomic.load offset=4 (local.get $ba)))
      (if (i32.and (local.get $s) (i32.const 4)) (then (return (i32.const -1))))
      (local.set $e (i32.load (local.get $ba)))
      (local.set $found (i32.const 0))
      (local.set $steps (i32.const 0))
      ;; The home element first, in the bucket's own cache line: linked in this
      ;; chain (HOME_LINKED) with the key's hash, the walk starts there; if its
      ;; key differs, the walk goes back to the head ($head, $homeFirst).
      (local.set $homeFirst (i32.const 0))
      (if (i32.eq (i32.atomic.load offset=12 (local.get $ba)) (i32.const -1))
        (then
          (if (i32.eq (i32.load offset=20 (local.get $ba)) (local.get $hash))
            (then
              (local.set $homeFirst (i32.const 1))
              (local.set $head (local.get $e))
              (local.set $e (i32.add (i32.shr_u (i32.sub (local.get $ba) (local.get $base)) (i32.const 2)) (i32.const 4)))))))
      (block $done
        (loop $walk
          (br_if $done (i32.eqz (local.get $e)))
          (br_if $done (i32.ge_u (local.get $steps) (local.get $bound)))
          ;; A link outside the map (LINK_LO/LINK_SPAN): never followed; the JS twin answers it.
          (if (i32.gt_u (i32.sub (local.get $e) (local.get $lo)) (local.get $span)) (then (return (i32.const -1))))
          (local.set $a (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
          (if (i32.eq (i32.load offset=4 (local.get $a)) (local.get $hash))
            (then
              (block $nomatch
                (local.set $j (i32.const 0))
                (block $eq
                  (loop $cmp
                    (br_if $eq (i32.ge_u (local.get $j) (local.get $kw)))
                    (br_if $nomatch
                      (i32.ne
                        (i32.load offset=16 (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
                        (i32.load (i32.add (local.get $key) (i32.shl (local.get $j) (i32.const 2))))))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br $cmp)))
                (local.set $j (i32.const 0))
                (local.set $a (i32.add (local.get $a) (i32.load offset=24 (local.get $d))))
                (block $copied
                  (loop $copy
                    (br_if $copied (i32.ge_u (local.get $j) (local.get $vw)))
                    (i64.store
                      (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 3)))
                      (i64.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 3)))))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br $copy)))
                (local.set $found (local.get $e))
                (br $done))))
          (local.set $e (select (local.get $head) (i32.load (local.get $a)) (local.get $homeFirst)))
          (local.set $homeFirst (i32.const 0))
          (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
          (br $walk)))
      ;; Validate: nothing read was relinked or reused meanwhile (seqUnchanged():
      ;; WRITING clear in both samples, equal apart from LOCKED and WAITERS).
      (local.set $s2 (i32.atomic.load offset=4 (local.get $ba)))
      (if (i32.eqz
            (i32.or
              (i32.and (i32.or (local.get $s) (local.get $s2)) (i32.const 4))
              (i32.and (i32.xor (local.get $s) (local.get $s2)) (i32.const -4))))
        (then (return (local.get $found))))
      (br $retry))
    (i32.const 0))

  ;; Many lookups at once: $n (<= MANY_CHUNK) keys of KEY_WORDS words each,
  ;; packed in the slot's many area (layout.ts: right after the scratch
  ;; value). Each key is looked up as lookup() does, seq-validated on its own;
  ;; their values land in the many area's value slots (VALUE_U64S words each)
  ;; and each result word is the element, 0 (absent) or -1 (a writer holds
  ;; the bucket: the caller looks that key up alone). Before any lookup
  ;; depends on a load, every key is hashed and its bucket head and first
  ;; element are touched, so the cache misses of all $n keys overlap
  ;; ($touchAhead 1; 0 skips the touches, for a map that lives in the caches).
  ;; Returns the number found.
  (func (export "lookupMany") (param $d i32) (param $n i32) (param $touchAhead i32) (result i32)
    (local $base i32) (local $kw i32) (local $vw i32) (local $keys i32) (local $outs i32) (local $res i32)
    (local $i i32) (local $h i32) (local $e i32) (local $touch i32) (local $found i32) (local $r i32)
    (local.set $base (i32.load (local.get $d)))
    (local.set $kw (i32.load offset=20 (local.get $d)))
    (local.set $vw (i32.load offset=28 (local.get $d)))
    (local.set $keys (i32.add (i32.load offset=32 (local.get $d)) (i32.shl (local.get $vw) (i32.const 3))))
    (local.set $outs (i32.add (local.get $keys) (i32.shl (i32.mul (local.get $kw) (i32.const 16)) (i32.const 2))))
    (local.set $res (i32.add (local.get $outs) (i32.shl (i32.mul (local.get $vw) (i32.const 16)) (i32.const 3))))
    ;; 1. Hash every key (kept in its result word). No loads of the map yet: a
    ;;    hash is dozens of instructions, and the loads below must sit close
    ;;    together in the CPU's window for their misses to overlap.
    (local.set $i (i32.const 0))
    (block $hashed
      (loop $hash
        (br_if $hashed (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store (i32.add (local.get $res) (i32.shl (local.get $i) (i32.const 2)))
          (call $jhash2 (i32.add (local.get $keys) (i32.shl (i32.mul (local.get $i) (local.get $kw)) (i32.const 2)))
            (local.get $kw) (i32.load offset=12 (local.get $d))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $hash)))
    ;; 1b. Load every key's bucket head: independent loads, a few instructions apart.
    ;;     (Skipped with $touchAhead 0: a map in the caches has no misses to overlap.)
    (local.set $i (select (i32.const 0) (local.get $n) (local.get $touchAhead)))
    (block $heads
      (loop $head
        (br_if $heads (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $h (i32.load (i32.add (local.get $res) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $touch (i32.xor (local.get $touch) (i32.load (call $bucketAddr (local.get $d) (local.get $h)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $head)))
    ;; 2. Touch each chain's first element (its HASH word): the second round of misses, overlapped too.
    (local.set $i (select (i32.const 0) (local.get $n) (local.get $touchAhead)))
    (block $touched
      (loop $first
        (br_if $touched (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $e
          (i32.load (call $bucketAddr (local.get $d) (i32.load (i32.add (local.get $res) (i32.shl (local.get $i) (i32.const 2)))))))
        (if (local.get $e)
          (then (local.set $touch (i32.xor (local.get $touch)
            (i32.load offset=4 (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $first)))
    ;; 3. The lookups, now mostly on cached lines.
    (local.set $i (i32.const 0))
    (block $looked
      (loop $look
        (br_if $looked (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $r
          (call $find (local.get $d)
            (i32.add (local.get $keys) (i32.shl (i32.mul (local.get $i) (local.get $kw)) (i32.const 2)))
            (i32.load (i32.add (local.get $res) (i32.shl (local.get $i) (i32.const 2))))
            (i32.add (local.get $outs) (i32.shl (i32.mul (local.get $i) (local.get $vw)) (i32.const 3)))
            (local.get $vw)))
        (i32.store (i32.add (local.get $res) (i32.shl (local.get $i) (i32.const 2))) (local.get $r))
        (if (i32.gt_s (local.get $r) (i32.const 0)) (then (local.set $found (i32.add (local.get $found) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $look)))
    ;; (The touches' sum is never used; a load cannot be dropped, it may trap.)
    (drop (local.get $touch))
    (local.get $found))

  ;; jhash2() over $words u32 words at $k (kernel: include/linux/jhash.h; same
  ;; result as src/hash/jhash.ts jhash2Int(), checked by a test).
  (func $jhash2 (param $k i32) (param $words i32) (param $initval i32) (result i32)
    (local $x i32) (local $y i32) (local $z i32)
    (local.set $x (i32.add (i32.add (i32.const 0xdeadbeef) (i32.shl (local.get $words) (i32.const 2))) (local.get $initval)))
    (local.set $y (local.get $x))
    (local.set $z (local.get $x))
    (block $tail
      (loop $body
        (br_if $tail (i32.le_u (local.get $words) (i32.const 3)))
        (local.set $x (i32.add (local.get $x) (i32.load (local.get $k))))
        (local.set $y (i32.add (local.get $y) (i32.load offset=4 (local.get $k))))
        (local.set $z (i32.add (local.get $z) (i32.load offset=8 (local.get $k))))
        ;; __jhash_mix(x, y, z)
        (local.set $x (i32.xor (i32.sub (local.get $x) (local.get $z)) (i32.rotl (local.get $z) (i32.const 4))))
        (local.set $z (i32.add (local.get $z) (local.get $y)))
        (local.set $y (i32.xor (i32.sub (local.get $y) (local.get $x)) (i32.rotl (local.get $x) (i32.const 6))))
        (local.set $x (i32.add (local.get $x) (local.get $z)))
        (local.set $z (i32.xor (i32.sub (local.get $z) (local.get $y)) (i32.rotl (local.get $y) (i32.const 8))))
        (local.set $y (i32.add (local.get $y) (local.get $x)))
        (local.set $x (i32.xor (i32.sub (local.get $x) (local.get $z)) (i32.rotl (local.get $z) (i32.const 16))))
        (local.set $z (i32.add (local.get $z) (local.get $y)))
        (local.set $y (i32.xor (i32.sub (local.get $y) (local.get $x)) (i32.rotl (local.get $x) (i32.const 19))))
        (local.set $x (i32.add (local.get $x) (local.get $z)))
        (local.set $z (i32.xor (i32.sub (local.get $z) (local.get $y)) (i32.rotl (local.get $y) (i32.const 4))))
        (local.set $y (i32.add (local.get $y) (local.get $x)))
        (local.set $words (i32.sub (local.get $words) (i32.const 3)))
        (local.set $k (i32.add (local.get $k) (i32.const 12)))
        (br $body)))
    (if (i32.eqz (local.get $words)) (then (return (local.get $z))))
    (if (i32.eq (local.get $words) (i32.const 3))
      (then (local.set $z (i32.add (local.get $z) (i32.load offset=8 (local.get $k))))))
    (if (i32.ge_u (local.get $words) (i32.const 2))
      (then (local.set $y (i32.add (local.get $y) (i32.load offset=4 (local.get $k))))))
    (local.set $x (i32.add (local.get $x) (i32.load (local.get $k))))
    ;; __jhash_final(x, y, z)
    (local.set $z (i32.sub (i32.xor (local.get $z) (local.get $y)) (i32.rotl (local.get $y) (i32.const 14))))
    (local.set $x (i32.sub (i32.xor (local.get $x) (local.get $z)) (i32.rotl (local.get $z) (i32.const 11))))
    (local.set $y (i32.sub (i32.xor (local.get $y) (local.get $x)) (i32.rotl (local.get $x) (i32.const 25))))
    (local.set $z (i32.sub (i32.xor (local.get $z) (local.get $y)) (i32.rotl (local.get $y) (i32.const 16))))
    (local.set $x (i32.sub (i32.xor (local.get $x) (local.get $z)) (i32.rotl (local.get $z) (i32.const 4))))
    (local.set $y (i32.sub (i32.xor (local.get $y) (local.get $x)) (i32.rotl (local.get $x) (i32.const 14))))
    (i32.sub (i32.xor (local.get $z) (local.get $y)) (i32.rotl (local.get $y) (i32.const 24))))
  (export "jhash2" (func $jhash2))

  ;; The per-CPU freelists (alloc/pcpu-freelist.ts), uncontended case only.
  ;; A per-CPU record (layout.ts PCPU_*) has FL_LOCK at +4, FL_HEAD at +8 and
  ;; INFLIGHT at +48; an element's FNEXT is at +8. Lock words are owner-tagged
  ;; (sync/owner-lock.ts): 0 free, (cpu + 1) << 1 held, bit 0 = waiters.

  ;; pcpuFreelistPop(): own list first, then the others in CPU order; the
  ;; element is recorded in our INFLIGHT before it leaves the list.
  ;; $pcpu: byte address of CPU 0's record; $stride: record bytes.
  ;; Returns the element, 0 when every list is empty, or -1 - c when list
  ;; c's lock is held or its head or the head's next link lies outside the
  ;; map (the caller takes the JS path, which can wait and stays inside the
  ;; map). $lo, $span: the links the map's elements may have (descriptor
  ;; LINK_LO, LINK_SPAN: link - lo <= span, unsigned).
  (func $freelistPop (export "freelistPop")
    (param $base i32) (param $pcpu i32) (param $stride i32) (param $cpu i32) (param $nr i32)
    (param $lo i32) (param $span i32)
    (result i32)
    (local $c i32) (local $n i32) (local $rec i32) (local $e i32) (local $me i32) (local $mine i32) (local $next i32)
    (local.set $me (i32.shl (i32.add (local.get $cpu) (i32.const 1)) (i32.const 1)))
    (local.set $mine (i32.add (local.get $pcpu) (i32.mul (local.get $cpu) (local.get $stride))))
    (local.set $c (local.get $cpu))
    (block $empty
      (loop $next
        (br_if $empty (i32.ge_u (local.get $n) (local.get $nr)))
        (local.set $rec (i32.add (local.get $pcpu) (i32.mul (local.get $c) (local.get $stride))))
        ;; Unlocked peek, as the kernel's READ_ONCE(head->first).
        (if (i32.atomic.load offset=8 (local.get $rec))
          (then
            (if (i32.atomic.rmw.cmpxchg offset=4 (local.get $rec) (i32.const 0) (local.get $me))
              (then (return (i32.sub (i32.const -1) (local.get $c)))))
            (local.set $e (i32.load offset=8 (local.get $rec)))
            (if (local.get $e)
              (then
                (if (i32.gt_u (i32.sub (local.get $e) (local.get $lo)) (local.get $span))
                  (then (call $ownerUnlock (i32.add (local.get $rec) (i32.const 4)))
                    (return (i32.sub (i32.const -1) (local.get $c)))))
                (local.set $next (i32.load offset=8 (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2)))))
                ;; FPREV too: a head's is 0, anything else would be written through.
                (if (i32.load offset=12 (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
                  (then (local.set $next (i32.const -1))))
                (if (i32.and (i32.ne (local.get $next) (i32.const 0)) (i32.gt_u (i32.sub (local.get $next) (local.get $lo)) (local.get $span)))
                  (then (call $ownerUnlock (i32.add (local.get $rec) (i32.const 4)))
                    (return (i32.sub (i32.const -1) (local.get $c)))))
                (i32.store offset=48 (local.get $mine) (local.get $e))
                (call $listUnlink (local.get $base) (local.get $rec) (local.get $e))))
            (call $ownerUnlock (i32.add (local.get $rec) (i32.const 4)))
            (if (local.get $e) (then (return (local.get $e))))))
        (local.set $c (select (i32.const 0) (i32.add (local.get $c) (i32.const 1))
          (i32.eq (i32.add (local.get $c) (i32.const 1)) (local.get $nr))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; pcpuFreelistPush() onto $cpu's own list. Returns 1, or 0 when its lock is
  ;; held or its head lies outside the map (the caller takes the JS path).
  (func $freelistPush (export "freelistPush")
    (param $base i32) (param $pcpu i32) (param $stride i32) (param $cpu i32) (param $e i32)
    (param $lo i32) (param $span i32)
    (result i32)
    (local $rec i32) (local $ea i32)
    (local $head i32)
    (local.set $rec (i32.add (local.get $pcpu) (i32.mul (local.get $cpu) (local.get $stride))))
    (if (i32.atomic.rmw.cmpxchg offset=4 (local.get $rec) (i32.const 0)
          (i32.shl (i32.add (local.get $cpu) (i32.const 1)) (i32.const 1)))
      (then (return (i32.const 0))))
    (local.set $ea (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
    (local.set $head (i32.load offset=8 (local.get $rec)))
    (if (i32.and (i32.ne (local.get $head) (i32.const 0)) (i32.gt_u (i32.sub (local.get $head) (local.get $lo)) (local.get $span)))
      (then (call $ownerUnlock (i32.add (local.get $rec) (i32.const 4))) (return (i32.const 0))))
    (i32.store offset=8 (local.get $ea) (local.get $head))
    (i32.store offset=12 (local.get $ea) (i32.const 0))
    (if (local.get $head)
      (then (i32.store offset=12 (i32.add (local.get $base) (i32.shl (local.get $head) (i32.const 2))) (local.get $e))))
    (i32.store offset=8 (local.get $rec) (local.get $e))
    (if (i32.lt_u (local.get $e) (i32.load offset=124 (local.get $base)))
      (then (i32.atomic.store offset=0 (i32.sub (local.get $ea) (i32.const 4)) (i32.add (local.get $cpu) (i32.const 1)))))
    (if (i32.eq (i32.load offset=48 (local.get $rec)) (local.get $e))
      (then (i32.store offset=48 (local.get $rec) (i32.const 0))))
    (call $ownerUnlock (i32.add (local.get $rec) (i32.const 4)))
    (i32.const 1))

;; Take element $e off the list of record $rec wherever it is (FPREV at +12
  ;; in an element), and mark a home element HOME_TAKEN. Lock held.
  (func $listUnlink (param $base i32) (param $rec i32) (param $e i32)
    (local $ea i32) (local $prev i32) (local $next i32)
    (local.set $ea (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
    (local.set $prev (i32.load offset=12 (local.get $ea)))
    (local.set $next (i32.load offset=8 (local.get $ea)))
    (if (local.get $prev)
      (then (i32.store offset=8 (i32.add (local.get $base) (i32.shl (local.get $prev) (i32.const 2))) (local.get $next)))
      (else (i32.store offset=8 (local.get $rec) (local.get $next))))
    (if (local.get $next)
      (then (i32.store offset=12 (i32.add (local.get $base) (i32.shl (local.get $next) (i32.const 2))) (local.get $prev))))
    (i32.store offset=8 (local.get $ea) (i32.const 0))
    (i32.store offset=12 (local.get $ea) (i32.const 0))
    (if (i32.lt_u (local.get $e) (i32.load offset=124 (local.get $base)))
      (then (i32.atomic.store offset=0 (i32.sub (local.get $ea) (i32.const 4)) (i32.const 0)))))

  ;; pcpuFreelistClaim(): take home element $h off the list its HOME_STATE
  ;; names, recorded in our INFLIGHT first. Never waits: 0 when $h is not on a
  ;; list or that list's lock is held (the caller pops instead).
  (func $freelistClaim (export "freelistClaim")
    (param $base i32) (param $pcpu i32) (param $stride i32) (param $cpu i32) (param $h i32)
    (param $lo i32) (param $span i32)
    (result i32)
    (local $st i32) (local $rec i32) (local $sa i32) (local $ok i32) (local $ha i32) (local $l i32)
    (local.set $sa (i32.add (local.get $base) (i32.sub (i32.shl (local.get $h) (i32.const 2)) (i32.const 4))))
    (local.set $st (i32.atomic.load (local.get $sa)))
    (if (i32.le_s (local.get $st) (i32.const 0)) (then (return (i32.const 0))))
    (local.set $rec (i32.add (local.get $pcpu) (i32.mul (i32.sub (local.get $st) (i32.const 1)) (local.get $stride))))
    (if (i32.atomic.rmw.cmpxchg offset=4 (local.get $rec) (i32.const 0)
          (i32.shl (i32.add (local.get $cpu) (i32.const 1)) (i32.const 1)))
      (then (return (i32.const 0))))
    (local.set $ok (i32.eq (i32.atomic.load (local.get $sa)) (local.get $st)))
    ;; Its list links (FNEXT, FPREV) outside the map: not claimed (the caller pops instead).
    (local.set $ha (i32.add (local.get $base) (i32.shl (local.get $h) (i32.const 2))))
    (local.set $l (i32.load offset=8 (local.get $ha)))
    (if (i32.and (i32.ne (local.get $l) (i32.const 0)) (i32.gt_u (i32.sub (local.get $l) (local.get $lo)) (local.get $span))) (then (local.set $ok (i32.const 0))))
    (local.set $l (i32.load offset=12 (local.get $ha)))
    (if (i32.and (i32.ne (local.get $l) (i32.const 0)) (i32.gt_u (i32.sub (local.get $l) (local.get $lo)) (local.get $span))) (then (local.set $ok (i32.const 0))))
    (if (local.get $ok)
      (then
        (i32.store offset=48 (i32.add (local.get $pcpu) (i32.mul (local.get $cpu) (local.get $stride))) (local.get $h))
        (call $listUnlink (local.get $base) (local.get $rec) (local.get $h))))
    (call $ownerUnlock (i32.add (local.get $rec) (i32.const 4)))
    (select (local.get $h) (i32.const 0) (local.get $ok)))

  ;; lockRelease(): drop an owner-tagged lock, waking one waiter if any sleeps.
  (func $ownerUnlock (param $lock i32)
    (if (i32.and (i32.atomic.rmw.xchg (local.get $lock) (i32.const 0)) (i32.const 1))
      (then (drop (memory.atomic.notify (local.get $lock) (i32.const 1))))))

;; ---- the write path (htab.ts updateRaw() / deleteRaw() for a preallocated
  ;; HASH map without a spin lock). Same stores in the same order as the JS
  ;; path, so crash recovery reads the same intent records (layout.ts PCPU_*:
  ;; EXTRA +12, COUNT +16, INTENT_BUCKET +28, INTENT_OP +32, INTENT_ELEM +36,
  ;; INTENT_OLD +40, INTENT_COUNT +44, INFLIGHT +48, LRU_SPARE +52; a bucket's
  ;; OWNER is at +8; an element's HASH at +4, key at +16). Anything the fast
  ;; path does not handle comes back as WASM_RETRY (-65536, sentinels.ts) before any change, and
  ;; the JS path redoes the operation.

  ;; Whether element $a's key equals the slot's scratch key.
  (func $keyEq (param $a i32) (param $key i32) (param $kw i32) (result i32)
    (local $j i32)
    (block $eq
      (loop $cmp
        (br_if $eq (i32.ge_u (local.get $j) (local.get $kw)))
        (if (i32.ne
              (i32.load offset=16 (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
              (i32.load (i32.add (local.get $key) (i32.shl (local.get $j) (i32.const 2)))))
          (then (return (i32.const 0))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $cmp)))
    (i32.const 1))

  (func $hashOf (param $d i32) (param $hash i32) (param $mode i32) (result i32)
    (if (result i32) (i32.and (local.get $mode) (i32.const 2))
      (then (call $jhash2 (i32.load offset=16 (local.get $d)) (i32.load offset=20 (local.get $d)) (i32.load offset=12 (local.get $d))))
      (else (local.get $hash))))

  ;; lockBucket() for the wasm write path: INTENT_BUCKET before the CAS. 0 when the
  ;; lock is held by another. The CAS sets LOCKED and WRITING (bits 0 and 2) at once:
  ;; the write path stores right after it, so one atomic does for bucketLock() and
  ;; bucketBeginWrite(); readers retry only for the few instructions until the unlock.
  (func $tryLockBucket (param $d i32) (param $b i32) (param $ba i32) (result i32)
    (local $v i32)
    (i32.store offset=28 (i32.load offset=56 (local.get $d)) (local.get $b))
    (local.set $v (i32.atomic.load offset=4 (local.get $ba)))
    (if (i32.and (local.get $v) (i32.const 1)) (then (return (i32.const 0))))
    (if (i32.ne
          (i32.atomic.rmw.cmpxchg offset=4 (local.get $ba) (local.get $v) (i32.or (local.get $v) (i32.const 5)))
          (local.get $v))
      (then (return (i32.const 0))))
    (i32.store offset=8 (local.get $ba) (i32.add (i32.load offset=44 (local.get $d)) (i32.const 1)))
    (i32.const 1))

  ;; unlockBucket(): OWNER cleared, then one exchange drops the lock and
  ;; WRITING (and bumps the seq, bits 3.., when the chain changed); then the
  ;; intent is over.
  (func $unlockBucket (param $d i32) (param $ba i32) (param $dirty i32)
    (local $rec i32)
    (i32.store offset=8 (local.get $ba) (i32.const 0))
    (if (i32.and
          (i32.atomic.rmw.xchg offset=4 (local.get $ba)
            (i32.add (i32.and (i32.load offset=4 (local.get $ba)) (i32.const -8))
              (select (i32.const 8) (i32.const 0) (local.get $dirty))))
          (i32.const 2))
      (then (drop (memory.atomic.notify offset=4 (local.get $ba) (i32.const 1)))))
    (local.set $rec (i32.load offset=56 (local.get $d)))
    (i32.store offset=32 (local.get $rec) (i32.const 0))
    (i32.store offset=28 (local.get $rec) (i32.const 0)))

  ;; intent(): what the next chain change is, OP last.
  (func $intent (param $rec i32) (param $op i32) (param $e i32) (param $old i32)
    (i32.store offset=36 (local.get $rec) (local.get $e))
    (i32.store offset=40 (local.get $rec) (local.get $old))
    (i32.store offset=44 (local.get $rec) (i32.load offset=16 (local.get $rec)))
    (i32.store offset=32 (local.get $rec) (local.get $op)))

  ;; fillElem(): hash, the scratch key, the scratch value.
  (func $fill (param $d i32) (param $ea i32) (param $hash i32)
    (local $j i32) (local $n i32) (local $src i32) (local $dst i32)
    (i32.store offset=4 (local.get $ea) (local.get $hash))
    (local.set $n (i32.load offset=20 (local.get $d)))
    (local.set $src (i32.load offset=16 (local.get $d)))
    (block $k
      (loop $kl
        (br_if $k (i32.ge_u (local.get $j) (local.get $n)))
        (i32.store offset=16 (i32.add (local.get $ea) (i32.shl (local.get $j) (i32.const 2)))
          (i32.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $kl)))
    (local.set $j (i32.const 0))
    (local.set $n (i32.load offset=28 (local.get $d)))
    (local.set $src (i32.load offset=32 (local.get $d)))
    (local.set $dst (i32.add (local.get $ea) (i32.load offset=24 (local.get $d))))
    (block $v
      (loop $vl
        (br_if $v (i32.ge_u (local.get $j) (local.get $n)))
        (i64.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 3)))
          (i64.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 3)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $vl))))

  ;; What lockAndFind() found besides the element: the locked bucket's byte
  ;; address and the element's predecessor (0 = the bucket head). This
  ;; thread's own, as the instance is (kernel: lookup_elem_raw()'s walk state).
  (global $ba (mut i32) (i32.const 0))
  (global $prev (mut i32) (i32.const 0))

  ;; lockBucket() of the bucket `hash` falls in, then lookup_elem_raw() of the
  ;; slot's scratch key there. Returns the element or 0 (bucket locked, $ba
  ;; and $prev set), or -1 when another holds the bucket or the chain is
  ;; damaged (longer than BOUND, or a link outside the map): nothing changed,
  ;; the bucket unlocked, and the JS path redoes it (and answers EUCLEAN).
  (func $lockAndFind (param $d i32) (param $hash i32) (result i32)
    (local $base i32) (local $b i32) (local $ba i32) (local $key i32) (local $kw i32)
    (local $e i32) (local $ea i32) (local $prev i32) (local $steps i32)
    (local $lo i32) (local $span i32) (local $bound i32)
    (local.set $base (i32.load (local.get $d)))
    (local.set $b (i32.add (i32.load offset=4 (local.get $d))
      (i32.mul (i32.and (local.get $hash) (i32.load offset=8 (local.get $d))) (i32.load offset=64 (local.get $d)))))
    (local.set $ba (i32.add (local.get $base) (i32.shl (local.get $b) (i32.const 2))))
    (if (i32.eqz (call $tryLockBucket (local.get $d) (local.get $b) (local.get $ba)))
      (then (return (i32.const -1))))
    (local.set $key (i32.load offset=16 (local.get $d)))
    (local.set $kw (i32.load offset=20 (local.get $d)))
    ;; The walk's bounds, in locals: one compare each per step.
    (local.set $lo (i32.load offset=100 (local.get $d)))
    (local.set $span (i32.load offset=104 (local.get $d)))
    (local.set $bound (i32.load offset=36 (local.get $d)))
    (local.set $e (i32.load (local.get $ba)))
    (block $found
      (loop $walk
        (br_if $found (i32.eqz (local.get $e)))
        (if (i32.or (i32.ge_u (local.get $steps) (local.get $bound))
              (i32.gt_u (i32.sub (local.get $e) (local.get $lo)) (local.get $span)))
          (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const -1))))
        (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
        (local.set $ea (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
        (if (i32.eq (i32.load offset=4 (local.get $ea)) (local.get $hash))
          (then (br_if $found (call $keyEq (local.get $ea) (local.get $key) (local.get $kw)))))
        (local.set $prev (local.get $e))
        (local.set $e (i32.load (local.get $ea)))
        (br $walk)))
    (global.set $ba (local.get $ba))
    (global.set $prev (local.get $prev))
    (local.get $e))

  ;; htab_map_update_elem() for the slot's scratch key and value; $mode as
  ;; lookup()'s bit 1; $flags is BPF_ANY, BPF_NOEXIST or BPF_EXIST.
  ;; Returns 0, -17 (EEXIST), -2 (ENOENT), -65536 (WASM_RETRY: nothing changed),
  ;; -65538 (WASM_FROZEN), or
  ;; -65537 (WASM_REPLACED_IN_SECTION): replaced while program sections are active; the old element is
  ;; this slot's INFLIGHT and the bucket is still locked (the JS path puts
  ;; the old element in limbo, refills EXTRA and unlocks).
  (func (export "update") (param $d i32) (param $hash i32) (param $mode i32) (param $flags i32) (result i32)
    (local $base i32) (local $ba i32) (local $rec i32)
    (local $e i32) (local $prev i32) (local $old i32) (local $ea i32) (local $oa i32) (local $home i32)
    ;; bpf_map_freeze(): a frozen map takes no writes from the control plane.
    (if (i32.atomic.load (i32.load offset=60 (local.get $d))) (then (return (i32.const -65538))))
    (if (i32.load offset=68 (local.get $d))
      (then (return (call $lruUpdate (local.get $d) (local.get $hash) (local.get $mode) (local.get $flags)))))
    ;; This thread's own program section open: whether a replaced element may
    ;; be reused at once depends on the references it took (core/held-refs.ts,
    ;; JS state), and with it where the key ends (home element or not): in JS.
    (if (i32.atomic.load (i32.load offset=52 (local.get $d)))
      (then (if (call $ownSection (local.get $d)) (then (return (i32.const -65536))))))
    (local.set $base (i32.load (local.get $d)))
    (local.set $rec (i32.load offset=56 (local.get $d)))
    (local.set $hash (call $hashOf (local.get $d) (local.get $hash) (local.get $mode)))
    (local.set $old (call $lockAndFind (local.get $d) (local.get $hash)))
    (if (i32.lt_s (local.get $old) (i32.const 0)) (then (return (i32.const -65536))))
    (local.set $ba (global.get $ba))
    ;; The bucket's home element (its word index; an element only if below HOME_END).
    (local.set $home (i32.add (i32.shr_u (i32.sub (local.get $ba) (local.get $base)) (i32.const 2)) (i32.const 4)))
    (local.set $prev (global.get $prev))
    ;; check_flags()
    (if (i32.and (i32.ne (local.get $old) (i32.const 0)) (i32.eq (local.get $flags) (i32.const 1)))
      (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const -17))))
    (if (i32.and (i32.eqz (local.get $old)) (i32.eq (local.get $flags) (i32.const 2)))
      (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const -2))))
    (if (local.get $old)
      (then
        ;; Replace: this CPU's extra element goes in at the head, old comes out.
        ;; When old was the bucket's home element (now EXTRA, free), a second
        ;; replace puts the key back in it, so that updates keep keys at home.
        (loop $again
        (local.set $e (i32.load offset=12 (local.get $rec)))
        ;; No extra element, or one outside the map: the JS path (which stays inside it).
        (if (i32.or (i32.eqz (local.get $e))
              (i32.gt_u (i32.sub (local.get $e) (i32.load offset=100 (local.get $d))) (i32.load offset=104 (local.get $d))))
          (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const -65536))))
        (local.set $ea (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
        (local.set $oa (i32.add (local.get $base) (i32.shl (local.get $old) (i32.const 2))))
        (call $intent (local.get $rec) (i32.const 2) (local.get $e) (local.get $old))
        (call $fill (local.get $d) (local.get $ea) (local.get $hash))
        (i32.store (local.get $ea) (i32.load (local.get $ba)))
        (i32.store (local.get $ba) (local.get $e))
        (if (i32.eq (local.get $e) (local.get $home)) (then (i32.atomic.store offset=12 (local.get $ba) (i32.const -1))))
        (i32.store offset=48 (local.get $rec) (local.get $old))
        (i32.store
          (select (local.get $ea) (i32.add (local.get $base) (i32.shl (local.get $prev) (i32.const 2))) (i32.eqz (local.get $prev)))
          (i32.load (local.get $oa)))
        (if (i32.eq (local.get $old) (local.get $home)) (then (i32.atomic.store offset=12 (local.get $ba) (i32.const 0))))
        ;; Read after the unlink: a section that could hold old is counted in ACTIVE.
        (if (i32.atomic.load (i32.load offset=52 (local.get $d)))
          (then (return (i32.const -65537))))
        (i32.store offset=12 (local.get $rec) (local.get $old))
        (i32.store offset=48 (local.get $rec) (i32.const 0))
        (if (i32.eq (local.get $old) (local.get $home))
          (then (local.set $old (local.get $e)) (local.set $prev (i32.const 0)) (br $again))))
        (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 1))
        (return (i32.const 0))))
    ;; Insert: the bucket's home element when it is free, else a free element
    ;; from the per-CPU freelists (lock order bucket -> freelist). An empty
    ;; EXTRA (a replace in a section left it so) is refilled first, in JS.
    (if (i32.eqz (i32.load offset=12 (local.get $rec)))
      (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const -65536))))
    (if (i32.lt_u (local.get $home) (i32.load offset=124 (local.get $base)))
      (then (local.set $e (call $freelistClaim (local.get $base) (i32.load offset=40 (local.get $d)) (i32.const 64)
        (i32.load offset=44 (local.get $d)) (local.get $home) (i32.load offset=100 (local.get $d)) (i32.load offset=104 (local.get $d))))))
    (if (i32.eqz (local.get $e))
      (then (local.set $e (call $freelistPop (local.get $base) (i32.load offset=40 (local.get $d)) (i32.const 64)
        (i32.load offset=44 (local.get $d)) (i32.load offset=48 (local.get $d)) (i32.load offset=100 (local.get $d)) (i32.load offset=104 (local.get $d))))))
    (if (i32.le_s (local.get $e) (i32.const 0))
      (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const -65536))))
    (call $linkNew (local.get $d) (local.get $rec) (local.get $ba) (local.get $e) (local.get $hash) (local.get $home))
    (i32.const 0))

  ;; insertLocked() of element $e (this slot's INFLIGHT, or its LRU spare)
  ;; at the head of the locked bucket at $ba, then the unlock.
  (func $linkNew (param $d i32) (param $rec i32) (param $ba i32) (param $e i32) (param $hash i32) (param $home i32)
    (local $ea i32)
    (local.set $ea (i32.add (i32.load (local.get $d)) (i32.shl (local.get $e) (i32.const 2))))
    (call $intent (local.get $rec) (i32.const 1) (local.get $e) (i32.const 0))
    (call $fill (local.get $d) (local.get $ea) (local.get $hash))
    (i32.store (local.get $ea) (i32.load (local.get $ba)))
    (i32.store (local.get $ba) (local.get $e))
    (if (i32.eq (local.get $e) (local.get $home)) (then (i32.atomic.store offset=12 (local.get $ba) (i32.const -1))))
    (i32.store offset=16 (local.get $rec) (i32.add (i32.load offset=16 (local.get $rec)) (i32.const 1)))
    (i32.store offset=48 (local.get $rec) (i32.const 0))
    (i32.store offset=52 (local.get $rec) (i32.const 0))
    (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 1)))

  ;; htab_map_delete_elem() of the slot's scratch key. Returns 0, -2 (ENOENT),
  ;; -65536 (WASM_RETRY: nothing changed), -65538 (WASM_FROZEN), or the unlinked element when the JS path
  ;; must free it (program sections active, or its list lock held): the
  ;; bucket is unlocked and the element is this slot's INFLIGHT.
  (func (export "delete") (param $d i32) (param $hash i32) (param $mode i32) (result i32)
    (local $base i32) (local $ba i32) (local $rec i32) (local $e i32) (local $prev i32) (local $ea i32) (local $home i32)
    (if (i32.atomic.load (i32.load offset=60 (local.get $d))) (then (return (i32.const -65538))))
    (local.set $base (i32.load (local.get $d)))
    (local.set $rec (i32.load offset=56 (local.get $d)))
    (local.set $hash (call $hashOf (local.get $d) (local.get $hash) (local.get $mode)))
    (local.set $e (call $lockAndFind (local.get $d) (local.get $hash)))
    (if (i32.lt_s (local.get $e) (i32.const 0)) (then (return (i32.const -65536))))
    (local.set $ba (global.get $ba))
    (local.set $prev (global.get $prev))
    (local.set $ea (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
    (if (i32.eqz (local.get $e))
      (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const -2))))
    (local.set $home (i32.add (i32.shr_u (i32.sub (local.get $ba) (local.get $base)) (i32.const 2)) (i32.const 4)))
    ;; unlinkLocked(): intent first, then INFLIGHT, then the unlink (e keeps its NEXT).
    (call $intent (local.get $rec) (i32.const 3) (local.get $e) (i32.const 0))
    (i32.store offset=8 (local.get $ea) (i32.const 0))
    (i32.store offset=48 (local.get $rec) (local.get $e))
    (i32.store
      (select (local.get $ba) (i32.add (local.get $base) (i32.shl (local.get $prev) (i32.const 2))) (i32.eqz (local.get $prev)))
      (i32.load (local.get $ea)))
    (if (i32.eq (local.get $e) (local.get $home)) (then (i32.atomic.store offset=12 (local.get $ba) (i32.const 0))))
    (i32.store offset=16 (local.get $rec) (i32.sub (i32.load offset=16 (local.get $rec)) (i32.const 1)))
    (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 1))
    ;; freeElem(): straight back to our list when no section can hold it.
    (if (i32.atomic.load (i32.load offset=52 (local.get $d))) (then (return (local.get $e))))
    ;; An LRU map's element goes back to the LRU (htab_lru_push_free()).
    (if (i32.load offset=68 (local.get $d))
      (then (return (select (i32.const 0) (local.get $e) (call $lruPushFree (local.get $d) (local.get $e))))))
    (if (i32.eqz (call $freelistPush (local.get $base) (i32.load offset=40 (local.get $d)) (i32.const 64)
          (i32.load offset=44 (local.get $d)) (local.get $e) (i32.load offset=100 (local.get $d)) (i32.load offset=104 (local.get $d))))
      (then (return (local.get $e))))
    (i32.const 0))

  ;; ---- LRU_HASH on the common LRU (alloc/bpf-lru.ts, alloc/lru-nodes.ts,
  ;; core/elems/lru.ts), uncontended case. Same stores in the same order as
  ;; the JS path, under the same locks (lock order: local list -> LRU list ->
  ;; bucket). A node is 16 bytes at LRU_NODES + 16 n: PREV +0, NEXT +4,
  ;; META +8 (type | cpu << 8), REF +12; node num_elems + t is list 0's
  ;; sentinel of type t (ACTIVE 0, INACTIVE 1, FREE 2), num_elems + 3 + c is
  ;; CPU c's PENDING sentinel. List 0's record: LOCK +0, COUNT_ACTIVE +4,
  ;; COUNT_INACTIVE +8, NEXT_INACTIVE_ROT +12. CPU c's local record, at
  ;; LRU_LOCALS + 64 c: LOCK +0, FREE_HEAD +4 (a stack linked by NEXT, -1
  ;; ends it). Types 3 LOCAL_FREE, 4 LOCAL_PENDING, 5 LIMBO. A lock the
  ;; fast path cannot take at once, or a pending repair (header word 23),
  ;; sends the operation back to JS before it changes anything.
  ;;
  ;; Damaged memory: every LRU link is checked before it is followed ($lk: a
  ;; node below LRU_NODE_COUNT; $walked: a node a walk reached is an element's
  ;; node of the walked list's type), each list primitive checks all it reads
  ;; before its first write, and every walk is bounded. Damage traps
  ;; (unreachable) with no bucket lock held; the caller (core/fast-plan.ts)
  ;; releases this slot's LRU locks and redoes the call in JS, which answers
  ;; EUCLEAN. The push ($lruPushFree) checks first and answers 0 instead.

  ;; What a refill harvested so far: the last node on the local FREE stack, and how many.
  (global $lruTail (mut i32) (i32.const -1))
  (global $lruGot (mut i32) (i32.const 0))

  ;; Node n is at LRU_NODES + 16 n: the entry points set $lruN from the
  ;; descriptor, and node accesses are written out inline (V8 does not
  ;; inline small wasm calls).
  (global $lruN (mut i32) (i32.const 0))
  ;; LRU_NODE_COUNT of the map $lruN is in (set with it).
  (global $lruCnt (mut i32) (i32.const 0))

  ;; A link about to be followed: a node of this map's LRU, else damage (trap).
  (func $lk (param $x i32) (result i32)
    (if (i32.ge_u (local.get $x) (global.get $lruCnt)) (then (unreachable)))
    (local.get $x))
  ;; A node a walk of a list of type $t reached (not its sentinel): an element's node of that type.
  (func $walked (param $d i32) (param $n i32) (param $t i32)
    (if (i32.ge_u (local.get $n) (i32.load offset=72 (local.get $d))) (then (unreachable)))
    (if (i32.ne (i32.and (i32.load offset=8 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4)))) (i32.const 255)) (local.get $t))
      (then (unreachable))))
  ;; The links a move of $n after sentinel $h follows, checked before anything about $n is written.
  (func $movable (param $n i32) (param $h i32)
    (local $a i32)
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (drop (call $lk (i32.load (local.get $a))))
    (drop (call $lk (i32.load offset=4 (local.get $a))))
    (drop (call $lk (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4)))))))

  (func $setType (param $d i32) (param $n i32) (param $t i32)
    (local $a i32)
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (i32.store offset=8 (local.get $a) (i32.or (i32.and (i32.load offset=8 (local.get $a)) (i32.const -256)) (local.get $t))))
  ;; list 0's sentinel of type $t, and CPU $c's PENDING sentinel
  (func $lHead (param $d i32) (param $t i32) (result i32)
    (i32.add (i32.load offset=72 (local.get $d)) (local.get $t)))
  (func $pendHead (param $d i32) (param $c i32) (result i32)
    (i32.add (i32.add (i32.load offset=72 (local.get $d)) (i32.const 3)) (local.get $c)))
  (func $localRec (param $d i32) (param $c i32) (result i32)
    (i32.add (i32.load offset=80 (local.get $d)) (i32.shl (local.get $c) (i32.const 6))))
  ;; element $e's node number
  (func $nodeOfElem (param $d i32) (param $e i32) (result i32)
    (i32.div_u (i32.sub (local.get $e) (i32.load offset=88 (local.get $d))) (i32.load offset=92 (local.get $d))))

  ;; list_del() leaving $n on its own
  (func $lDel (param $d i32) (param $n i32)
    (local $a i32) (local $p i32) (local $x i32)
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (local.set $p (call $lk (i32.load (local.get $a))))
    (local.set $x (call $lk (i32.load offset=4 (local.get $a))))
    (i32.store offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $p) (i32.const 4))) (local.get $x))
    (i32.store (i32.add (global.get $lruN) (i32.shl (local.get $x) (i32.const 4))) (local.get $p))
    (i32.store (local.get $a) (local.get $n))
    (i32.store offset=4 (local.get $a) (local.get $n)))
  ;; list_move(): list_del() of $n, then list_add() of it after sentinel $h,
  ;; written out in one function (the refill's hottest call)
  (func $lMove (param $d i32) (param $n i32) (param $h i32)
    (local $a i32) (local $p i32) (local $x i32) (local $ha i32) (local $cnt i32)
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (local.set $ha (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4))))
    ;; $lk() of the three links, written out (the pop's hottest call)
    (local.set $cnt (global.get $lruCnt))
    (local.set $p (i32.load (local.get $a)))
    (local.set $x (i32.load offset=4 (local.get $a)))
    (if (i32.or (i32.ge_u (i32.load offset=4 (local.get $ha)) (local.get $cnt))
          (i32.or (i32.ge_u (local.get $p) (local.get $cnt)) (i32.ge_u (local.get $x) (local.get $cnt))))
      (then (unreachable)))
    (i32.store offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $p) (i32.const 4))) (local.get $x))
    (i32.store (i32.add (global.get $lruN) (i32.shl (local.get $x) (i32.const 4))) (local.get $p))
    (local.set $ha (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4))))
    (local.set $x (i32.load offset=4 (local.get $ha)))
    (i32.store (local.get $a) (local.get $h))
    (i32.store offset=4 (local.get $a) (local.get $x))
    (i32.store (i32.add (global.get $lruN) (i32.shl (local.get $x) (i32.const 4))) (local.get $n))
    (i32.store offset=4 (local.get $ha) (local.get $n)))

  ;; LruNodes.countAdd(), skipCursor(), moveTo(), moveIn() on list 0
  (func $countAdd (param $d i32) (param $t i32) (param $delta i32)
    (local $a i32)
    (if (i32.ge_u (local.get $t) (i32.const 2)) (then (return)))
    (local.set $a (i32.add (i32.load offset=76 (local.get $d)) (i32.shl (i32.add (local.get $t) (i32.const 1)) (i32.const 2))))
    (i32.store (local.get $a) (i32.add (i32.load (local.get $a)) (local.get $delta))))
  (func $skipCursor (param $d i32) (param $n i32)
    (local $l i32)
    (local.set $l (i32.load offset=76 (local.get $d)))
    (if (i32.eq (i32.load offset=12 (local.get $l)) (local.get $n))
      (then (i32.store offset=12 (local.get $l) (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))))))
  (func $moveTo (param $d i32) (param $n i32) (param $tgt i32)
    (local $t i32)
    (call $movable (local.get $n) (call $lHead (local.get $d) (local.get $tgt)))
    (local.set $t (i32.and (i32.load offset=8 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4)))) (i32.const 255)))
    (if (i32.ne (local.get $t) (local.get $tgt))
      (then
        (call $countAdd (local.get $d) (local.get $t) (i32.const -1))
        (call $countAdd (local.get $d) (local.get $tgt) (i32.const 1))
        (call $setType (local.get $d) (local.get $n) (local.get $tgt))))
    (i32.store offset=12 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))) (i32.const 0))
    (call $skipCursor (local.get $d) (local.get $n))
    (call $lMove (local.get $d) (local.get $n) (call $lHead (local.get $d) (local.get $tgt))))
  (func $moveIn (param $d i32) (param $n i32) (param $tgt i32)
    (call $movable (local.get $n) (call $lHead (local.get $d) (local.get $tgt)))
    (call $countAdd (local.get $d) (local.get $tgt) (i32.const 1))
    (call $setType (local.get $d) (local.get $n) (local.get $tgt))
    (i32.store offset=12 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))) (i32.const 0))
    (call $lMove (local.get $d) (local.get $n) (call $lHead (local.get $d) (local.get $tgt))))

  ;; A refill's moveToFree() to LOCAL_FREE followed by its localPush(): the
  ;; JS path collects nodes in a buffer and pushes them in reverse; appending
  ;; each at the tail of the (empty) local FREE stack leaves the same words.
  (func $harvest (param $d i32) (param $n i32)
    (local $a i32)
    (call $movable (local.get $n) (local.get $n))
    (call $skipCursor (local.get $d) (local.get $n))
    (call $countAdd (local.get $d) (i32.and (i32.load offset=8 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4)))) (i32.const 255)) (i32.const -1))
    (call $lDel (local.get $d) (local.get $n))
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (i32.store offset=8 (local.get $a) (i32.or (i32.const 3) (i32.shl (i32.load offset=44 (local.get $d)) (i32.const 8))))
    (i32.store offset=4 (local.get $a) (i32.const -1))
    (if (i32.lt_s (global.get $lruTail) (i32.const 0))
      (then (i32.store offset=4 (call $localRec (local.get $d) (i32.load offset=44 (local.get $d))) (local.get $n)))
      (else (i32.store offset=4 (i32.add (global.get $lruN) (i32.shl (global.get $lruTail) (i32.const 4))) (local.get $n))))
    (global.set $lruTail (local.get $n))
    (global.set $lruGot (i32.add (global.get $lruGot) (i32.const 1))))

  ;; Kernel __bpf_lru_list_rotate_active() / _inactive() (LOCAL_NR_SCANS 128)
  (func $rotateActive (param $d i32)
    (local $h i32) (local $first i32) (local $n i32) (local $p i32) (local $i i32)
    (local.set $h (call $lHead (local.get $d) (i32.const 0)))
    (local.set $first (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4)))))
    (local.set $n (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4))))))
    (block $out
      (loop $scan
        (br_if $out (i32.eq (local.get $n) (local.get $h)))
        (call $walked (local.get $d) (local.get $n) (i32.const 0))
        (local.set $p (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))))
        (call $moveTo (local.get $d) (local.get $n)
          (select (i32.const 0) (i32.const 1) (i32.load offset=12 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $out (i32.eq (local.get $i) (i32.const 128)))
        (br_if $out (i32.eq (local.get $n) (local.get $first)))
        (local.set $n (local.get $p))
        (br $scan))))
  (func $rotateInactive (param $d i32)
    (local $h i32) (local $l i32) (local $last i32) (local $cur i32) (local $next i32) (local $i i32) (local $k i32)
    (local.set $h (call $lHead (local.get $d) (i32.const 1)))
    (if (i32.eq (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4)))) (local.get $h)) (then (return)))
    (local.set $l (i32.load offset=76 (local.get $d)))
    (local.set $last (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (call $lk (i32.load offset=12 (local.get $l))) (i32.const 4)))))
    (if (i32.eq (local.get $last) (local.get $h)) (then (local.set $last (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $last) (i32.const 4)))))))
    (local.set $cur (i32.load offset=12 (local.get $l)))
    (local.set $next (local.get $h))
    (block $out
      (loop $scan
        (br_if $out (i32.ge_u (local.get $i) (i32.const 128)))
        ;; at most once round the list: more is a cycle
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (if (i32.gt_u (local.get $k) (global.get $lruCnt)) (then (unreachable)))
        (if (i32.eq (local.get $cur) (local.get $h))
          (then (local.set $cur (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $cur) (i32.const 4)))))) (br $scan)))
        (call $walked (local.get $d) (local.get $cur) (i32.const 1))
        (local.set $next (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $cur) (i32.const 4))))))
        (if (i32.load offset=12 (i32.add (global.get $lruN) (i32.shl (local.get $cur) (i32.const 4)))) (then (call $moveTo (local.get $d) (local.get $cur) (i32.const 0))))
        (br_if $out (i32.eq (local.get $cur) (local.get $last)))
        (local.set $cur (local.get $next))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.store offset=12 (local.get $l) (local.get $next)))
  (func $rotate (param $d i32)
    (local $l i32)
    (local.set $l (i32.load offset=76 (local.get $d)))
    (if (i32.lt_s (i32.load offset=8 (local.get $l)) (i32.load offset=4 (local.get $l)))
      (then (call $rotateActive (local.get $d))))
    (call $rotateInactive (local.get $d)))

  ;; htab_lru_map_delete_node() (elems/lru.ts lruDelFromHtab()): unlink node
  ;; $n's element if it is still linked, under its bucket lock. Returns 0 (not
  ;; linked, or its bucket stayed locked past the timeout: EVICT_TIMEDOUT
  ;; says which), 1 (freed) or 2 (in limbo: program sections are active).
  (func $lruDelNode (param $d i32) (param $n i32) (result i32)
    (local $base i32) (local $rec i32) (local $e i32) (local $ea i32) (local $b i32) (local $ba i32)
    (local $saved i32) (local $prev i32) (local $x i32) (local $k i32) (local $bound i32)
    (local.set $base (i32.load (local.get $d)))
    (local.set $rec (i32.load offset=56 (local.get $d)))
    (local.set $e (i32.add (i32.load offset=88 (local.get $d)) (i32.mul (local.get $n) (i32.load offset=92 (local.get $d)))))
    (local.set $ea (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
    (local.set $b (i32.add (i32.load offset=4 (local.get $d))
      (i32.mul (i32.and (i32.load offset=4 (local.get $ea)) (i32.load offset=8 (local.get $d))) (i32.load offset=64 (local.get $d)))))
    (local.set $ba (i32.add (local.get $base) (i32.shl (local.get $b) (i32.const 2))))
    (local.set $saved (i32.load offset=48 (local.get $rec)))
    ;; Sections active and one of them this thread's own: $lruUpdate leaves
    ;; such an update to JS (elems/lru.ts decides per element from the
    ;; section's references); should one get here, the element stays linked
    ;; (in limbo it would wait for a section that cannot end meanwhile).
    (if (i32.atomic.load (i32.load offset=52 (local.get $d)))
      (then (if (call $ownSection (local.get $d)) (then (return (i32.const 0))))))
    ;; lockBucket(): a held lock is waited for in JS (which takes it with LOCKED only).
    (if (i32.eqz (call $tryLockBucket (local.get $d) (local.get $b) (local.get $ba)))
      (then
        (if (i32.eqz (call $bucketWait (local.get $base) (i32.add (local.get $b) (i32.const 1))))
          (then
            (i32.store offset=28 (local.get $rec) (i32.const 0))
            (i32.store offset=96 (local.get $d) (local.get $b))
            (return (i32.const 0))))
        (i32.store offset=8 (local.get $ba) (i32.add (i32.load offset=44 (local.get $d)) (i32.const 1)))))
    ;; chainPrev()
    (local.set $bound (i32.load offset=36 (local.get $d)))
    (local.set $x (i32.load (local.get $ba)))
    (block $found
      (loop $walk
        ;; the end, a cycle, or a link outside the map (LINK_LO, LINK_SPAN): not found, nothing changed
        (if (i32.or (i32.or (i32.eqz (local.get $x)) (i32.ge_u (local.get $k) (local.get $bound)))
              (i32.gt_u (i32.sub (local.get $x) (i32.load offset=100 (local.get $d))) (i32.load offset=104 (local.get $d))))
          (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const 0))))
        (br_if $found (i32.eq (local.get $x) (local.get $e)))
        (local.set $prev (local.get $x))
        (local.set $x (i32.load (i32.add (local.get $base) (i32.shl (local.get $x) (i32.const 2)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $walk)))
    ;; unlinkLocked(): intent, FNEXT, INFLIGHT, WRITING (already set when the
    ;; first CAS took the lock, not when the JS wait did), the unlink, the count.
    (call $intent (local.get $rec) (i32.const 3) (local.get $e) (i32.const 0))
    (i32.store offset=8 (local.get $ea) (i32.const 0))
    (i32.store offset=48 (local.get $rec) (local.get $e))
    (drop (i32.atomic.rmw.or offset=4 (local.get $ba) (i32.const 4)))
    (i32.store
      (select (local.get $ba) (i32.add (local.get $base) (i32.shl (local.get $prev) (i32.const 2))) (i32.eqz (local.get $prev)))
      (i32.load (local.get $ea)))
    (i32.store offset=16 (local.get $rec) (i32.sub (i32.load offset=16 (local.get $rec)) (i32.const 1)))
    (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 1))
    ;; The LRU files e under the lock it holds: INFLIGHT goes back to what it was.
    (if (i32.eqz (i32.atomic.load (i32.load offset=52 (local.get $d))))
      (then (i32.store offset=48 (local.get $rec) (local.get $saved)) (return (i32.const 1))))
    (call $limboPush (local.get $base) (i32.load offset=44 (local.get $d)) (local.get $e))
    (i32.store offset=48 (local.get $rec) (local.get $saved))
    (i32.const 2))

  ;; grace.ts ownSection() >= 0: a slot whose claim word is this slot's (this
  ;; thread's token: PCPU CLAIM +56) has its section open (PCPU SECTION +20).
  (func $ownSection (param $d i32) (result i32)
    (local $rec i32) (local $end i32) (local $me i32)
    (local.set $me (i32.atomic.load offset=56 (i32.load offset=56 (local.get $d))))
    (local.set $rec (i32.load offset=40 (local.get $d)))
    (local.set $end (i32.add (local.get $rec) (i32.shl (i32.load offset=48 (local.get $d)) (i32.const 6))))
    (block $none
      (loop $slots
        (br_if $none (i32.ge_u (local.get $rec) (local.get $end)))
        (if (i32.and (i32.ne (i32.atomic.load offset=20 (local.get $rec)) (i32.const 0))
              (i32.eq (i32.atomic.load offset=56 (local.get $rec)) (local.get $me)))
          (then (return (i32.const 1))))
        (local.set $rec (i32.add (local.get $rec) (i32.const 64)))
        (br $slots)))
    (i32.const 0))

  ;; BpfLru.evict(): true when freed; an element left in limbo leaves the lists.
  (func $evict (param $d i32) (param $n i32) (result i32)
    (local $r i32)
    (call $movable (local.get $n) (local.get $n)) ;; checked before the element leaves its bucket
    (local.set $r (call $lruDelNode (local.get $d) (local.get $n)))
    (if (i32.eq (local.get $r) (i32.const 2))
      (then
        (call $skipCursor (local.get $d) (local.get $n))
        (call $countAdd (local.get $d) (i32.and (i32.load offset=8 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4)))) (i32.const 255)) (i32.const -1))
        (call $setType (local.get $d) (local.get $n) (i32.const 5))
        (call $lDel (local.get $d) (local.get $n))))
    (i32.eq (local.get $r) (i32.const 1)))

  ;; Kernel __bpf_lru_list_shrink_inactive() / __bpf_lru_list_shrink(), into the refill
  (func $shrinkInactive (param $d i32) (param $want i32) (result i32)
    (local $h i32) (local $n i32) (local $p i32) (local $got i32) (local $i i32)
    (local.set $h (call $lHead (local.get $d) (i32.const 1)))
    (local.set $n (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4))))))
    (block $out
      (loop $scan
        (br_if $out (i32.eq (local.get $n) (local.get $h)))
        (call $walked (local.get $d) (local.get $n) (i32.const 1))
        (local.set $p (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))))
        (if (i32.load offset=12 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
          (then (call $moveTo (local.get $d) (local.get $n) (i32.const 0)))
          (else
            (if (call $evict (local.get $d) (local.get $n))
              (then
                (call $harvest (local.get $d) (local.get $n))
                (local.set $got (i32.add (local.get $got) (i32.const 1)))
                (br_if $out (i32.eq (local.get $got) (local.get $want)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $out (i32.eq (local.get $i) (i32.const 128)))
        (local.set $n (local.get $p))
        (br $scan)))
    (local.get $got))
  (func $shrink (param $d i32) (param $want i32)
    (local $h i32) (local $n i32) (local $p i32) (local $t i32) (local $k i32)
    (if (call $shrinkInactive (local.get $d) (local.get $want)) (then (return)))
    (local.set $t (i32.const 1))
    (local.set $h (call $lHead (local.get $d) (i32.const 1)))
    (if (i32.eq (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4)))) (local.get $h))
      (then (local.set $t (i32.const 0)) (local.set $h (call $lHead (local.get $d) (i32.const 0)))))
    (local.set $n (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4))))))
    (block $out
      (loop $scan
        (br_if $out (i32.eq (local.get $n) (local.get $h)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (if (i32.gt_u (local.get $k) (i32.load offset=72 (local.get $d))) (then (unreachable)))
        (call $walked (local.get $d) (local.get $n) (local.get $t))
        (local.set $p (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))))
        (if (call $evict (local.get $d) (local.get $n))
          (then (call $harvest (local.get $d) (local.get $n)) (return)))
        (local.set $n (local.get $p))
        (br $scan))))

  ;; An LRU lock: 1 when taken with no repair pending, else 0 (nothing held).
  (func $lruLock (param $d i32) (param $lock i32) (result i32)
    (if (i32.atomic.rmw.cmpxchg (local.get $lock) (i32.const 0)
          (i32.shl (i32.add (i32.load offset=44 (local.get $d)) (i32.const 1)) (i32.const 1)))
      (then (return (i32.const 0))))
    (if (i32.atomic.load offset=92 (i32.load (local.get $d)))
      (then (call $ownerUnlock (local.get $lock)) (return (i32.const 0))))
    (i32.const 1))

  ;; BpfLru.refillLocal() (kernel bpf_lru_list_pop_free_to_local()): our
  ;; pending nodes join list 0, list 0 rotates, then up to target_free nodes
  ;; move to our local FREE stack, evicting if the FREE list runs short.
  ;; Requires: our local lock held, our FREE stack empty. 0: list 0 busy (nothing changed).
  (func $refill (param $d i32) (result i32)
    (local $l i32) (local $h i32) (local $n i32) (local $p i32) (local $free i32) (local $target i32) (local $k i32)
    (local.set $l (i32.load offset=76 (local.get $d)))
    (if (i32.eqz (call $lruLock (local.get $d) (local.get $l))) (then (return (i32.const 0))))
    ;; __local_list_flush()
    (local.set $h (call $pendHead (local.get $d) (i32.load offset=44 (local.get $d))))
    (local.set $n (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4))))))
    (block $flushed
      (loop $flush
        (br_if $flushed (i32.eq (local.get $n) (local.get $h)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (if (i32.gt_u (local.get $k) (i32.load offset=72 (local.get $d))) (then (unreachable)))
        (call $walked (local.get $d) (local.get $n) (i32.const 4))
        (local.set $p (call $lk (i32.load (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))))
        (call $moveIn (local.get $d) (local.get $n)
          (select (i32.const 0) (i32.const 1) (i32.load offset=12 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))))
        (local.set $n (local.get $p))
        (br $flush)))
    (call $rotate (local.get $d))
    (global.set $lruTail (i32.const -1))
    (global.set $lruGot (i32.const 0))
    (local.set $target (i32.load offset=84 (local.get $d)))
    (local.set $free (call $lHead (local.get $d) (i32.const 2)))
    (local.set $n (call $lk (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $free) (i32.const 4))))))
    (block $took
      (loop $take
        (br_if $took (i32.eq (local.get $n) (local.get $free)))
        (br_if $took (i32.ge_u (global.get $lruGot) (local.get $target)))
        (call $walked (local.get $d) (local.get $n) (i32.const 2))
        (local.set $p (call $lk (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))))
        (call $harvest (local.get $d) (local.get $n))
        (local.set $n (local.get $p))
        (br $take)))
    (if (i32.lt_u (global.get $lruGot) (local.get $target))
      (then (call $shrink (local.get $d) (i32.sub (local.get $target) (global.get $lruGot)))))
    (call $ownerUnlock (local.get $l))
    (i32.const 1))

  ;; BpfLru.commonPopFree() up to the steal: a node for a new element,
  ;; pending on this CPU and recorded as its spare (onClaim). Returns the
  ;; node, -65536 (WASM_RETRY: a lock was busy or a repair is pending, nothing
  ;; changed) or -65539 (WASM_LRU_STEAL: the refill found nothing; the JS path steals
  ;; from the other CPUs).
  (func $lruPop (param $d i32) (result i32)
    (local $cpu i32) (local $loc i32) (local $n i32) (local $e i32) (local $rec i32) (local $a i32)
    (local.set $cpu (i32.load offset=44 (local.get $d)))
    (local.set $loc (call $localRec (local.get $d) (local.get $cpu)))
    (i32.store offset=96 (local.get $d) (i32.const 0))
    (if (i32.eqz (call $lruLock (local.get $d) (local.get $loc))) (then (return (i32.const -65536))))
    (if (i32.eq (i32.load offset=4 (local.get $loc)) (i32.const -1))
      (then
        (if (i32.eqz (call $refill (local.get $d)))
          (then (call $ownerUnlock (local.get $loc)) (return (i32.const -65536))))))
    (local.set $n (i32.load offset=4 (local.get $loc)))
    (if (i32.eq (local.get $n) (i32.const -1))
      (then (call $ownerUnlock (local.get $loc)) (return (i32.const -65539))))
    ;; localPop(), then __local_list_add_pending(): the stack's head, its next
    ;; and our PENDING head checked before anything moves
    ;; (written out: $walked() of type 3, the next link, $lk() of the PENDING head's next)
    (if (i32.ge_u (local.get $n) (i32.load offset=72 (local.get $d))) (then (unreachable)))
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (if (i32.or
          (i32.ne (i32.and (i32.load offset=8 (local.get $a)) (i32.const 255)) (i32.const 3))
          (i32.or
            (i32.and (i32.ne (i32.load offset=4 (local.get $a)) (i32.const -1))
                     (i32.ge_u (i32.load offset=4 (local.get $a)) (i32.load offset=72 (local.get $d))))
            (i32.ge_u (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (call $pendHead (local.get $d) (local.get $cpu)) (i32.const 4))))
                      (global.get $lruCnt))))
      (then (unreachable)))
    (i32.store offset=4 (local.get $loc) (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4)))))
    (i32.store (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))) (local.get $n))
    (i32.store offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))) (local.get $n))
    (i32.store offset=8 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))) (i32.or (i32.const 4) (i32.shl (local.get $cpu) (i32.const 8))))
    (i32.store offset=12 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))) (i32.const 0))
    (call $lMove (local.get $d) (local.get $n) (call $pendHead (local.get $d) (local.get $cpu)))
    ;; onClaim(): ours, and about to be linked.
    (local.set $rec (i32.load offset=56 (local.get $d)))
    (local.set $e (i32.add (i32.load offset=88 (local.get $d)) (i32.mul (local.get $n) (i32.load offset=92 (local.get $d)))))
    (i32.store offset=8 (i32.add (i32.load (local.get $d)) (i32.shl (local.get $e) (i32.const 2))) (i32.const 0))
    (i32.store offset=48 (local.get $rec) (local.get $e))
    (i32.store offset=52 (local.get $rec) (local.get $e))
    (call $ownerUnlock (local.get $loc))
    (local.get $n))

  ;; htab_lru_map_update_elem() of the slot's scratch key and value: pop,
  ;; then insert or replace under the bucket lock. Returns 0, -65536 (WASM_RETRY:
  ;; nothing changed), -65539 (WASM_LRU_STEAL, as lruPop()), -65540 (WASM_LRU_POPPED: this
  ;; slot's LRU_SPARE holds the popped element and the JS path does the bucket
  ;; part: the flags refuse, or the bucket is busy), or -65541 (WASM_LRU_REPLACED, replaced: the
  ;; old element, this slot's INFLIGHT, is for the JS path to free).
  (func $lruUpdate (param $d i32) (param $hash i32) (param $mode i32) (param $flags i32) (result i32)
    (local $base i32) (local $rec i32) (local $n i32) (local $old i32)
    (local $ba i32) (local $e i32) (local $ea i32) (local $oa i32) (local $a i32)
    (local.set $base (i32.load (local.get $d)))
    (local.set $rec (i32.load offset=56 (local.get $d)))
    (global.set $lruN (i32.load offset=68 (local.get $d)))
    (global.set $lruCnt (i32.load offset=108 (local.get $d)))
    ;; Elements waiting in limbo go back first (limboReclaimAll()), and a node
    ;; held over from a backed-out pop is used first: both in JS.
    (if (i32.atomic.load offset=116 (local.get $base)) (then (return (i32.const -65536))))
    (if (i32.load offset=52 (local.get $rec)) (then (return (i32.const -65536))))
    ;; This thread's own program section open: what an eviction may reuse at
    ;; once depends on the references that section took (core/held-refs.ts,
    ;; JS state): the whole update in JS, before anything moved.
    (if (i32.atomic.load (i32.load offset=52 (local.get $d)))
      (then (if (call $ownSection (local.get $d)) (then (return (i32.const -65536))))))
    (local.set $hash (call $hashOf (local.get $d) (local.get $hash) (local.get $mode)))
    (local.set $n (call $lruPop (local.get $d)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
    (local.set $old (call $lockAndFind (local.get $d) (local.get $hash)))
    (if (i32.lt_s (local.get $old) (i32.const 0)) (then (return (i32.const -65540))))
    (local.set $ba (global.get $ba))
    (local.set $e (i32.add (i32.load offset=88 (local.get $d)) (i32.mul (local.get $n) (i32.load offset=92 (local.get $d)))))
    ;; check_flags() refusing: the bucket part (and giving the element back) in JS.
    (if (i32.or
          (i32.and (i32.ne (local.get $old) (i32.const 0)) (i32.eq (local.get $flags) (i32.const 1)))
          (i32.and (i32.eqz (local.get $old)) (i32.eq (local.get $flags) (i32.const 2))))
      (then (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 0)) (return (i32.const -65540))))
    (if (i32.eqz (local.get $old))
      (then
        (call $linkNew (local.get $d) (local.get $rec) (local.get $ba) (local.get $e) (local.get $hash) (i32.const 0))
        (return (i32.const 0))))
    ;; LruElems.replaceLocked(): the popped element in at the head, referenced;
    ;; old out (it heads our INFLIGHT chain alone), filed after the unlock.
    (local.set $ea (i32.add (local.get $base) (i32.shl (local.get $e) (i32.const 2))))
    (local.set $oa (i32.add (local.get $base) (i32.shl (local.get $old) (i32.const 2))))
    (i32.store offset=8 (local.get $oa) (i32.const 0))
    (call $intent (local.get $rec) (i32.const 2) (local.get $e) (local.get $old))
    (call $fill (local.get $d) (local.get $ea) (local.get $hash))
    (i32.store (local.get $ea) (i32.load (local.get $ba)))
    (i32.store (local.get $ba) (local.get $e))
    (i32.store offset=48 (local.get $rec) (local.get $old))
    (i32.store
      (select (local.get $ea) (i32.add (local.get $base) (i32.shl (global.get $prev) (i32.const 2))) (i32.eqz (global.get $prev)))
      (i32.load (local.get $oa)))
    (i32.store offset=52 (local.get $rec) (i32.const 0))
    ;; bpf_lru_node_set_ref(): written only if clear
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (if (i32.eqz (i32.load offset=12 (local.get $a))) (then (i32.store offset=12 (local.get $a) (i32.const 1))))
    (call $unlockBucket (local.get $d) (local.get $ba) (i32.const 1))
    ;; htab_lru_push_free() of old; program sections (limbo) or a busy lock: in JS.
    (if (i32.atomic.load (i32.load offset=52 (local.get $d))) (then (return (i32.const -65541))))
    (if (i32.eqz (call $lruPushFree (local.get $d) (local.get $old))) (then (return (i32.const -65541))))
    (i32.const 0))

  ;; BpfLru.pushFree() of unlinked element $e (htab_lru_push_free()), then
  ;; onFiled(). Returns 1, or 0 when a lock was busy or a repair is pending
  ;; (nothing changed; the JS path files it).
  (func $lruPushFree (param $d i32) (param $e i32) (result i32)
    (local $n i32) (local $a i32) (local $c i32) (local $loc i32) (local $l i32) (local $rec i32)
    (global.set $lruN (i32.load offset=68 (local.get $d)))
    (global.set $lruCnt (i32.load offset=108 (local.get $d)))
    (local.set $n (call $nodeOfElem (local.get $d) (local.get $e)))
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (local.set $rec (i32.load offset=56 (local.get $d)))
    (block $common
      (br_if $common (i32.ne (i32.and (i32.load offset=8 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4)))) (i32.const 255)) (i32.const 4)))
      (local.set $c (i32.shr_u (i32.load offset=8 (local.get $a)) (i32.const 8)))
      ;; a damaged CPU: the JS push finds it
      (if (i32.ge_u (local.get $c) (i32.load offset=48 (local.get $d))) (then (return (i32.const 0))))
      (local.set $loc (call $localRec (local.get $d) (local.get $c)))
      (if (i32.eqz (call $lruLock (local.get $d) (local.get $loc))) (then (return (i32.const 0))))
      ;; Re-checked under the lock: a refill may have flushed it meanwhile.
      (if (i32.ne (i32.and (i32.load offset=8 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4)))) (i32.const 255)) (i32.const 4))
        (then (call $ownerUnlock (local.get $loc)) (br $common)))
      (if (call $damagedAt (local.get $n) (local.get $n))
        (then (call $ownerUnlock (local.get $loc)) (return (i32.const 0))))
      (i32.store offset=12 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))) (i32.const 0))
      (call $lDel (local.get $d) (local.get $n))
      ;; localPush()
      (i32.store offset=8 (local.get $a) (i32.or (i32.const 3) (i32.shl (local.get $c) (i32.const 8))))
      (i32.store offset=4 (local.get $a) (i32.load offset=4 (local.get $loc)))
      (i32.store (local.get $a) (local.get $n))
      (i32.store offset=4 (local.get $loc) (local.get $n))
      (call $onFiled (local.get $d) (local.get $rec) (local.get $e))
      (call $ownerUnlock (local.get $loc))
      (return (i32.const 1)))
    (local.set $l (i32.load offset=76 (local.get $d)))
    (if (i32.eqz (call $lruLock (local.get $d) (local.get $l))) (then (return (i32.const 0))))
    (if (call $damagedAt (local.get $n) (call $lHead (local.get $d) (i32.const 2)))
      (then (call $ownerUnlock (local.get $l)) (return (i32.const 0))))
    (if (i32.eq (i32.and (i32.load offset=8 (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4)))) (i32.const 255)) (i32.const 5))
      (then (call $setType (local.get $d) (local.get $n) (i32.const 2))))
    (call $moveTo (local.get $d) (local.get $n) (i32.const 2))
    (call $onFiled (local.get $d) (local.get $rec) (local.get $e))
    (call $ownerUnlock (local.get $l))
    (i32.const 1))

  ;; $movable() as a test: 1 when a link a move of $n after $h follows is damaged (the push answers 0).
  (func $damagedAt (param $n i32) (param $h i32) (result i32)
    (local $a i32)
    (local.set $a (i32.add (global.get $lruN) (i32.shl (local.get $n) (i32.const 4))))
    (i32.or
      (i32.or (i32.ge_u (i32.load (local.get $a)) (global.get $lruCnt))
              (i32.ge_u (i32.load offset=4 (local.get $a)) (global.get $lruCnt)))
      (i32.ge_u (i32.load offset=4 (i32.add (global.get $lruN) (i32.shl (local.get $h) (i32.const 4)))) (global.get $lruCnt))))

  ;; onFiled(): filed, so no longer this slot's INFLIGHT (the next of its chain, or 0).
  (func $onFiled (param $d i32) (param $rec i32) (param $e i32)
    (if (i32.eq (i32.load offset=48 (local.get $rec)) (local.get $e))
      (then (i32.store offset=48 (local.get $rec)
        (i32.load offset=8 (i32.add (i32.load (local.get $d)) (i32.shl (local.get $e) (i32.const 2))))))))

  ;; Bucket lock fast path (bucketLock()): 1 when taken, 0 when the caller must take the slow path.
  (func (export "seqTryLock") (param $addr i32) (result i32)
    (local $v i32)
    (local.set $v (i32.atomic.load (local.get $addr)))
    (if (i32.and (local.get $v) (i32.const 1)) (then (return (i32.const 0))))
    (i32.eq
      (i32.atomic.rmw.cmpxchg (local.get $addr) (local.get $v) (i32.or (local.get $v) (i32.const 1)))
      (local.get $v)))

  (func (export "load") (param $addr i32) (result i32)
    (i32.atomic.load (local.get $addr)))
  (func (export "store") (param $addr i32) (param $v i32)
    (i32.atomic.store (local.get $addr) (local.get $v)))
  (func (export "exchange") (param $addr i32) (param $v i32) (result i32)
    (i32.atomic.rmw.xchg (local.get $addr) (local.get $v)))
  (func (export "compareExchange") (param $addr i32) (param $expected i32) (param $v i32) (result i32)
    (i32.atomic.rmw.cmpxchg (local.get $addr) (local.get $expected) (local.get $v)))
)
