/**
 * Damaged LRU lists (a node's PREV or NEXT link, a list head, the local FREE
 * stack, the rotation cursor, a node's CPU) on both paths: the update that
 * meets the damage answers EUCLEAN ("corrupt map: LRU: …"), holds no LRU or
 * bucket lock afterwards, leaves the map's keys and values as they were,
 * never writes into the neighbour map of its MapDomain, and fsck() reports
 * the damage. Before the LRU links were checked, the wasm refill followed a
 * link into the neighbour map (and wrote there) and the JS path wrote into
 * its own elements instead of answering.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Htab } from "../../src/core/htab.js";
import type { HtabView } from "../../src/core/htab-view.js";
import { MapDomain } from "../../src/domain/map-domain.js";
import { BpfError, Errno } from "../../src/errors.js";
import { lruPlace } from "../../src/layout/geometry.js";
import {
  BUCKET_OWNER_I32,
  LRU_LIST_LOCK_I32,
  LRU_LIST_NEXT_INACTIVE_ROT_I32,
  LRU_LOCAL_BYTES,
  LRU_LOCAL_FREE_HEAD_I32,
  LRU_LOCAL_LOCK_I32,
  LRU_NODE_BYTES,
  LRU_NODE_META_I32,
  LRU_NODE_NEXT_I32,
  LRU_NODE_PREV_I32,
  LRU_SENTINELS_PER_LIST,
} from "../../src/layout/layout.js";
import { MapType } from "../../src/uapi.js";

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const viewOf = (m: Htab) => (m as unknown as { v: HtabView }).v;
const MAX = 64;

/** Word index of node `n`'s word `w`. */
function nodeWord(v: HtabView, n: number, w: number): number {
  return lruPlace(v.geometry).nodes + n * (LRU_NODE_BYTES >> 2) + w;
}

/** A node number whose 16 bytes lie inside map B (relative to A's nodes). */
function nodeInB(a: HtabView, b: HtabView): number {
  const aNodesByte = a.i32.byteOffset + lruPlace(a.geometry).nodes * 4;
  const bElemsByte = b.i32.byteOffset + b.elemsBase * 4;
  return Math.ceil((bElemsByte - aNodesByte) / LRU_NODE_BYTES) + 2;
}

interface Damage {
  name: string;
  /** Writes the damage; `bad` is a node number inside B. */
  write(a: HtabView, bad: number): void;
}

const num = (v: HtabView) => v.numElems;
const inactive = (v: HtabView) => num(v) + 1;
const pending = (v: HtabView, c: number) => num(v) + LRU_SENTINELS_PER_LIST + c;

const DAMAGES: Damage[] = [
  {
    name: "PENDING sentinel's PREV into B",
    write: (a, bad) => (a.i32[nodeWord(a, pending(a, a.cpu), LRU_NODE_PREV_I32)] = bad),
  },
  {
    name: "a pending node's PREV past the nodes",
    write: (a) => {
      const n = a.i32[nodeWord(a, pending(a, a.cpu), LRU_NODE_PREV_I32)];
      a.i32[nodeWord(a, n, LRU_NODE_PREV_I32)] = 1 << 24;
    },
  },
  {
    name: "a pending node's PREV onto itself (a cycle)",
    write: (a) => {
      const h = pending(a, a.cpu);
      const n = a.i32[nodeWord(a, a.i32[nodeWord(a, h, LRU_NODE_PREV_I32)], LRU_NODE_PREV_I32)];
      a.i32[nodeWord(a, n, LRU_NODE_PREV_I32)] = n;
    },
  },
  {
    name: "a pending node's PREV onto a sentinel of another list",
    write: (a) => {
      const n = a.i32[nodeWord(a, pending(a, a.cpu), LRU_NODE_PREV_I32)];
      a.i32[nodeWord(a, n, LRU_NODE_PREV_I32)] = inactive(a) + 1; // the FREE sentinel
    },
  },
  {
    name: "INACTIVE sentinel's PREV into B",
    write: (a, bad) => (a.i32[nodeWord(a, inactive(a), LRU_NODE_PREV_I32)] = bad),
  },
  {
    name: "rotation cursor into B",
    write: (a, bad) => (a.i32[lruPlace(a.geometry).lists + LRU_LIST_NEXT_INACTIVE_ROT_I32] = bad),
  },
  {
    name: "local FREE stack head into B",
    write: (a, bad) => {
      const loc = lruPlace(a.geometry).locals + a.cpu * (LRU_LOCAL_BYTES >> 2);
      a.i32[loc + LRU_LOCAL_FREE_HEAD_I32] = bad;
    },
  },
  {
    name: "local FREE stack head onto a sentinel",
    write: (a) => {
      const loc = lruPlace(a.geometry).locals + a.cpu * (LRU_LOCAL_BYTES >> 2);
      a.i32[loc + LRU_LOCAL_FREE_HEAD_I32] = inactive(a);
    },
  },
  {
    name: "a pending node's type",
    write: (a) => {
      const n = a.i32[nodeWord(a, pending(a, a.cpu), LRU_NODE_PREV_I32)];
      a.i32[nodeWord(a, n, LRU_NODE_META_I32)] = 2 | (a.cpu << 8);
    },
  },
  {
    name: "a pending node's NEXT into B",
    write: (a, bad) => {
      const n = a.i32[nodeWord(a, pending(a, a.cpu), LRU_NODE_PREV_I32)];
      a.i32[nodeWord(a, n, LRU_NODE_NEXT_I32)] = bad;
    },
  },
];

function lruLocksHeld(v: HtabView): number[] {
  const at = lruPlace(v.geometry);
  const held: number[] = [];
  for (let c = 0; c < v.nrCpus; c++) {
    const w = v.i32[at.locals + c * (LRU_LOCAL_BYTES >> 2) + LRU_LOCAL_LOCK_I32];
    if (w !== 0) held.push(w);
  }
  if (v.i32[at.lists + LRU_LIST_LOCK_I32] !== 0) held.push(v.i32[at.lists + LRU_LIST_LOCK_I32]);
  return held;
}

function bucketsHeld(v: HtabView): number {
  let n = 0;
  for (let b = 0; b <= v.mask; b++)
    if (v.i32[v.bucketsBase + b * v.bucketStrideI32 + BUCKET_OWNER_I32] !== 0) n++;
  return n;
}

function contents(m: Htab): string {
  const rows: string[] = [];
  const out = new Uint8Array(8);
  for (let k = 0; k < 400; k++) if (m.lookupElem(u32(k), out) === 0) rows.push(`${k}=${out.join(",")}`);
  return rows.join(" ");
}

for (const fastPath of [true, false]) {
  for (const dmg of DAMAGES) {
    test(`damaged LRU (${fastPath ? "wasm" : "JS"} path): ${dmg.name}: EUCLEAN, locks released, map and neighbour unchanged, fsck reports`, {
      timeout: 30_000,
    }, () => {
      const d = MapDomain.create({ nrCpus: 2, fastPath });
      try {
        const spec = { type: MapType.LruHash, keySize: 4, valueSize: 8, maxEntries: MAX };
        const A = d.createMap(spec) as Htab;
        const B = d.createMap(spec) as Htab;
        for (let k = 0; k < 40; k++) B.updateElem(u32(k), new Uint8Array(8).fill(9), 0);
        // Full, so the next inserts refill, rotate and evict.
        for (let k = 0; k < MAX; k++) A.updateElem(u32(k), new Uint8Array(8).fill(k & 0xff), 0);
        const a = viewOf(A);
        const bBefore = B.stateBytes();
        dmg.write(a, nodeInB(a, viewOf(B)));
        let code = "";
        let message = "";
        for (let k = 100; k < 100 + 3 * MAX && code === ""; k++) {
          const before = contents(A);
          let r = 0;
          try {
            r = A.updateElem(u32(k), new Uint8Array(8).fill(1), 0);
            if (r === 0) r = A.deleteElem(u32(k));
          } catch (e) {
            assert.ok(e instanceof BpfError, `not a BpfError: ${(e as Error).stack}`);
            code = e.code;
            message = e.message;
          }
          if (r === -Errno.EUCLEAN) {
            code = "EUCLEAN";
            message = A.lastError;
          } else if (r !== 0) assert.fail(`errno ${-r}: ${A.lastError}`);
          if (code !== "")
            assert.equal(contents(A), before, "the failed call changed the map's keys or values");
        }
        assert.equal(code, "EUCLEAN", "no call answered EUCLEAN");
        assert.match(message, /corrupt map: LRU/);
        assert.deepEqual(lruLocksHeld(a), [], "an LRU lock is still held");
        assert.equal(bucketsHeld(a), 0, "a bucket lock is still held");
        assert.ok(
          B.stateBytes().every((x, i) => x === bBefore[i]),
          "map B changed",
        );
        assert.ok(A.fsck().errors.length > 0, "fsck() saw nothing");
        // Lookups of the rest of the map still answer.
        assert.equal(B.lookupElem(u32(3), new Uint8Array(8)), 0);
      } finally {
        d.close();
      }
    });
  }
}
