/**
 * The message-passing alternatives: one owner worker holds a V8 Map<number,
 * bigint>; others reach it through postMessage (async round trips) or through
 * an Atomics-signalled request slot in a SharedArrayBuffer (synchronous: the
 * best a careful user could hand-write).
 */
import { Worker } from "node:worker_threads";
import { ORDER_MASK } from "../keys.js";
import type { PointPeer } from "../peer.js";

const OWNER = `
const { parentPort, workerData } = require("node:worker_threads");
const m = new Map();
for (let i = 0; i < workerData.fill; i++) m.set(workerData.keys[i], BigInt(i));
const slot = new Int32Array(workerData.slot);
const big = new BigInt64Array(workerData.slot, 16, 1);
parentPort.on("message", (r) => {
  if (r.op === "get") parentPort.postMessage(m.get(r.key));
  else if (r.op === "set") { m.set(r.key, r.value); parentPort.postMessage(true); }
  else if (r.op === "serve") serve();
});
// Slot protocol: [0] state 0 idle / 1 request / 2 reply / 3 stop, [1] op, [2] key, [3] found; [16..24) value.
function serve() {
  for (;;) {
    Atomics.wait(slot, 0, 0);
    const st = Atomics.load(slot, 0);
    if (st === 3) break;
    if (st !== 1) continue;
    const key = slot[2];
    if (slot[1] === 0) { const v = m.get(key); slot[3] = v === undefined ? 0 : 1; if (v !== undefined) big[0] = v; }
    else m.set(key, big[0]);
    Atomics.store(slot, 0, 2);
    Atomics.notify(slot, 0);
  }
  parentPort.postMessage("stopped");
}
parentPort.postMessage("ready");
`;

export class OwnerMap {
  private readonly s32: Int32Array;
  private readonly big: BigInt64Array;
  private serving = false;

  private constructor(
    private readonly worker: Worker,
    slot: SharedArrayBuffer,
  ) {
    this.s32 = new Int32Array(slot);
    this.big = new BigInt64Array(slot, 16, 1);
  }

  /** Start an owner worker whose Map holds keys[0..fill) -> index. */
  static async start(keys: Uint32Array, fill: number): Promise<OwnerMap> {
    const slot = new SharedArrayBuffer(32);
    const w = new Worker(OWNER, { eval: true, workerData: { keys, fill, slot } });
    await new Promise((r) => w.once("message", r));
    return new OwnerMap(w, slot);
  }

  /** One postMessage round trip. */
  get(key: number): Promise<bigint | undefined> {
    return new Promise((resolve) => {
      this.worker.once("message", resolve);
      this.worker.postMessage({ op: "get", key });
    });
  }

  /** Switch the owner to serving the Atomics request slot. */
  serveSlot(): void {
    if (!this.serving) this.worker.postMessage({ op: "serve" });
    this.serving = true;
  }

  /** One synchronous request through the slot. */
  slotGet(key: number): boolean {
    const s = this.s32;
    s[1] = 0;
    s[2] = key;
    Atomics.store(s, 0, 1);
    Atomics.notify(s, 0);
    while (Atomics.load(s, 0) !== 2) Atomics.wait(s, 0, 1);
    Atomics.store(s, 0, 0);
    return s[3] === 1 && this.big[0] >= 0n;
  }

  async stop(): Promise<void> {
    if (this.serving) {
      Atomics.store(this.s32, 0, 3);
      Atomics.notify(this.s32, 0);
    }
    await this.worker.terminate();
  }
}

/** The owner worker's Atomics request slot as a bench peer (lookups only). */
export async function ownerSlotPeer(present: Uint32Array): Promise<PointPeer> {
  const owner = await OwnerMap.start(present, present.length);
  owner.serveSlot();
  return {
    name: "Atomics request slot",
    lookup(keys, ord, pos, n) {
      let hits = 0;
      for (let i = 0; i < n; i++) if (owner.slotGet(keys[ord[(pos + i) & ORDER_MASK]])) hits++;
      return hits;
    },
    close: () => owner.stop(),
  };
}
