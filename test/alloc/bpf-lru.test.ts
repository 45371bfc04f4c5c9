/**
 * The LRU lists on their own (no hash map): a fake "map" records which nodes
 * are linked, so eviction order, the ref bit and the list invariants can be
 * checked directly against bpf_lru_list.c's rules.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BpfLru } from "../../src/alloc/bpf-lru.js";
import { DEL_FREED, DEL_NOT_FOUND, LRU_T_ACTIVE, LRU_T_INACTIVE } from "../../src/alloc/lru-nodes.js";
import { computeGeometry } from "../../src/layout/geometry.js";
import { HDR_LRU_REPAIR_I32, LRU_COMMON, LRU_PERCPU } from "../../src/layout/layout.js";
import { LRU_RETRY } from "../../src/sentinels.js";

function setup(n: number, kind: number, nrCpus = 1) {
  const g = computeGeometry(4, 8, n, nrCpus, false, true, kind);
  const i32 = new Int32Array(new SharedArrayBuffer(g.totalBytes));
  const linked = new Set<number>();
  const evicted: number[] = [];
  const lru = new BpfLru(
    i32,
    g,
    HDR_LRU_REPAIR_I32,
    0,
    (node) => {
      if (!linked.has(node)) return DEL_NOT_FOUND;
      linked.delete(node);
      evicted.push(node);
      return DEL_FREED;
    },
    () => {},
    () => {},
  );
  lru.populate();
  /** Pop a node and "link" it, as an insert does. */
  const insert = () => {
    const node = lru.popFree();
    assert.ok(node >= 0, "popFree gave a node");
    linked.add(node);
    return node;
  };
  return { lru, i32, linked, evicted, insert };
}

test("a fresh LRU hands out every element before it evicts, then evicts the oldest first", () => {
  const { lru, evicted, insert } = setup(8, LRU_PERCPU);
  const order = Array.from({ length: 8 }, insert);
  assert.equal(new Set(order).size, 8);
  assert.deepEqual(evicted, []);
  insert(); // the ninth: shrink takes PERCPU_FREE_TARGET (4) of the oldest
  assert.deepEqual(evicted, order.slice(0, 4));
  assert.deepEqual(lru.check(), []);
});

test("the ref bit moves a node to ACTIVE and spares it from the next shrink", () => {
  const { lru, evicted, insert } = setup(8, LRU_PERCPU);
  const order = Array.from({ length: 8 }, insert);
  lru.setRef(order[0]);
  lru.setRef(order[1]);
  insert();
  assert.ok(!evicted.includes(order[0]) && !evicted.includes(order[1]), "referenced nodes survive");
  assert.deepEqual(evicted, order.slice(2, 6));
  assert.equal(lru.type(order[0]), LRU_T_ACTIVE, "promoted with its ref bit cleared");
  assert.deepEqual(lru.check(), []);
});

test("when every node is referenced, a force shrink still frees one (kernel: __bpf_lru_list_shrink)", () => {
  const { lru, evicted, insert } = setup(4, LRU_PERCPU);
  const order = Array.from({ length: 4 }, insert);
  for (const n of order) lru.setRef(n);
  insert();
  assert.equal(evicted.length, 1);
  assert.deepEqual(lru.check(), []);
});

test("common LRU: refills target_free at a time and flushes PENDING into INACTIVE", () => {
  const { lru, linked, insert } = setup(16, LRU_COMMON, 2);
  assert.equal(lru.targetFree, 4, "clamp(16 / 2 / 2, 1, 128)");
  const first = Array.from({ length: 5 }, insert); // the fifth needs a second refill
  assert.equal(lru.type(first[0]), LRU_T_INACTIVE, "flushed by the second refill");
  assert.equal(linked.size, 5);
  assert.deepEqual(lru.check(), []);
  for (const n of first) {
    linked.delete(n);
    lru.pushFree(n);
  }
  assert.deepEqual(lru.check(), []);
});

test("a raised repair flag makes every LRU operation back out (LRU_RETRY / false)", () => {
  const { lru, i32, insert } = setup(8, LRU_COMMON);
  const n = insert();
  Atomics.store(i32, HDR_LRU_REPAIR_I32, 1);
  assert.equal(lru.popFree(), LRU_RETRY);
  assert.equal(lru.pushFree(n), false);
  assert.equal(lru.holdsAny(0), false, "nothing is left locked");
});
