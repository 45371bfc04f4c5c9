/**
 * The snapshot demo on real workers: a plain walk of the live map sees
 * inconsistent counters, swap + synchronize() never does and loses no event.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runSnapshot } from "../../src/cli/snapshot.js";

test("map-in-map swap gives consistent, complete snapshots; a plain walk does not", {
  timeout: 120_000,
}, async () => {
  let plainBad = 0;
  for (let attempt = 0; attempt < 3 && plainBad === 0; attempt++) {
    const [plain, swap] = await runSnapshot({ seconds: 1, writers: 2, intervalMs: 2, quiet: true });
    console.log(
      `# snapshot: plain walk ${plain.inconsistent}/${plain.snapshots} inconsistent; swap ${swap.inconsistent}/${swap.snapshots}, ${swap.counted} of ${swap.written} events`,
    );
    assert.equal(swap.inconsistent, 0, "a swapped-out map is quiet after synchronize()");
    assert.equal(swap.counted, swap.written, "every event is in exactly one snapshot");
    assert.ok(swap.snapshots > 20 && swap.written > 1000);
    plainBad = plain.inconsistent;
  }
  assert.ok(plainBad > 0, "a plain walk under writers saw an inconsistent pair in three runs");
});
