/**
 * The conntrack GC race with real workers and real timing: delete-by-key
 * deletes live flows; compareAndDelete on the same traffic deletes none, and
 * the datapath (an independent witness) sees no broken connection.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type ModeResult, runConntrack } from "../../src/cli/conntrack.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const base = { seconds: 1.5, workers: 2, flows: 20000, mapSize: 32768, timeoutMs: 20, quiet: true };

function show(r: ModeResult): string {
  return `${r.backend}/${r.mode}: ${r.packets} packets, ${r.expiredDeleted} expired deleted, ${r.liveDeleted} live deleted, ${r.brokenSeen} broken seen, ${r.racesAvoided} races caught`;
}

test("conntrack: delete-by-key breaks live flows, compareAndDelete breaks none", {
  timeout: 120_000,
}, async () => {
  let race: ModeResult | undefined;
  let safe: ModeResult | undefined;
  for (let seed = 1; seed <= 3 && !(race && race.liveDeleted > 0); seed++) {
    [race, safe] = await runConntrack({ ...base, kernel: false, seed });
    console.log(`# ${show(race)}\n# ${show(safe)}`);
    assert.equal(safe.liveDeleted, 0, "compareAndDelete deleted a live flow");
    assert.equal(safe.brokenSeen, 0, "the datapath saw a connection broken under compareAndDelete");
    assert.ok(safe.expiredDeleted > 0 && safe.racesAvoided > 0, "the GC ran and met the race");
  }
  assert.ok(race && race.liveDeleted > 0, "delete-by-key never hit the race in 3 runs");
  assert.ok(race.brokenSeen > 0, "the datapath witnessed broken connections");
});

test("conntrack --kernel: the same race on a real kernel map", {
  skip: kernelSkipReason(),
  timeout: 120_000,
}, async () => {
  let race: ModeResult | undefined;
  for (let seed = 1; seed <= 3 && !(race && race.liveDeleted > 0); seed++) {
    const [r, c] = await runConntrack({ ...base, kernel: true, seed });
    race = r;
    console.log(`# ${show(r)}`);
    assert.match(c.skipped ?? "", /no atomic compare-and-delete/);
  }
  assert.ok(race && race.liveDeleted > 0, "the kernel map never showed the race in 3 runs");
});

test("conntrack --lru: on an LRU_HASH CT map (as Cilium's), compareAndDelete still deletes no live flow", {
  timeout: 120_000,
}, async () => {
  // A map smaller than the flow set: the LRU evicts all the time, the GC still must not race.
  const [race, safe] = await runConntrack({ ...base, seconds: 1, mapSize: 8192, kernel: false, lru: true });
  console.log(`# lru ${show(race)}\n# lru ${show(safe)}`);
  assert.equal(safe.liveDeleted, 0, "compareAndDelete deleted a live flow");
  assert.ok(safe.expiredDeleted > 0 && safe.racesAvoided > 0, "the GC ran and met the race");
  assert.equal(safe.mapFull, 0, "an LRU map never answers E2BIG");
  assert.ok(race.packets > 0);
});
