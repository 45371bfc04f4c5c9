/**
 * htab, the kernel-shaped API with caller buffers (no allocation per call),
 * on any map type; and its two other faces: the program face (a live
 * reference instead of a copy) and the typed Map-like layer.
 */

import { TypedMap } from "../../src/api/typed-map.js";
import { Htab } from "../../src/core/htab.js";
import * as codecs from "../../src/map/codecs.js";
import type { MapSpec } from "../../src/map/spec.js";
import type { WasmMemory } from "../../src/wasm/fast-path.js";
import { ORDER_MASK, putU32 } from "../keys.js";
import type { PointPeer } from "../peer.js";

/** An htab map of `spec` holding `present` (u32 keys, 8-byte values). */
export function htabMap(
  spec: MapSpec,
  present: Uint32Array,
  fastPath: boolean,
  nrCpus = 4,
  memory?: WasmMemory,
): Htab {
  const h = Htab.create(spec, { nrCpus, fastPath, memory });
  const k = new Uint8Array(4);
  const v = new Uint8Array(h.info.valueBytes);
  for (let i = 0; i < present.length; i++) {
    putU32(k, present[i]);
    h.updateElem(k, v, 0);
  }
  return h;
}

export function htabPeer(h: Htab, name = "htab"): PointPeer {
  const k = new Uint8Array(4);
  const v = new Uint8Array(h.info.valueBytes);
  return {
    name,
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        if (h.lookupElem(k, v, 0) === 0) hits++;
      }
      return hits;
    },
    update(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        h.updateElem(k, v, 0);
      }
    },
    insertDelete(keys, ord, pos, n) {
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        h.updateElem(k, v, 0);
        h.deleteElem(k);
      }
    },
    insertStream(keys, pos, n) {
      for (let i = 0, p = pos % keys.length; i < n; i++, p = p + 1 === keys.length ? 0 : p + 1) {
        putU32(k, keys[p]);
        h.updateElem(k, v, 0);
      }
    },
    close: () => h.close(),
  };
}

/** The program face: lookupRef() inside one open section, a reference object reused. */
export function htabRefPeer(h: Htab): PointPeer {
  const k = new Uint8Array(4);
  const ref = h.run(() => h.lookupRef(k)) ?? undefined;
  return {
    name: "htab lookupRef (program face)",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      h.enter();
      for (let i = 0; i < n; i++) {
        putU32(k, keys[ord[(pos + i) & ORDER_MASK]]);
        const r = h.lookupRef(k, ref);
        if (r !== null && r.load32(0) >= 0) hits++;
      }
      h.exit();
      return hits;
    },
    close() {},
  };
}

/** The typed Map-like layer: numbers in, bigint out (a bigint per hit, like Map's values). */
export function typedMapPeer(h: Htab): PointPeer {
  const tm = new TypedMap(h, codecs.u32, codecs.u64);
  return {
    name: "htab TypedMap",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) if (tm.get(keys[ord[(pos + i) & ORDER_MASK]]) !== undefined) hits++;
      return hits;
    },
    close() {},
  };
}

/** lookupMany(): the keys of a call gathered into one buffer, looked up at once (their misses overlap). */
export function htabManyPeer(h: Htab): PointPeer {
  const CHUNK = 256;
  const ks = new Uint8Array(CHUNK * 4);
  const vs = new Uint8Array(CHUNK * h.info.valueBytes);
  const res = new Int32Array(CHUNK);
  return {
    name: "htab lookupMany",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let done = 0; done < n; done += CHUNK) {
        const m = Math.min(CHUNK, n - done);
        for (let i = 0, o = 0; i < m; i++, o += 4) {
          const x = keys[ord[(pos + done + i) & ORDER_MASK]];
          ks[o] = x;
          ks[o + 1] = x >>> 8;
          ks[o + 2] = x >>> 16;
          ks[o + 3] = x >>> 24;
        }
        hits += h.lookupMany(ks, vs, m === CHUNK ? res : res.subarray(0, m));
      }
      return hits;
    },
    close() {},
  };
}
