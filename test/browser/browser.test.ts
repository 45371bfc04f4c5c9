/**
 * A real browser (test/helpers/browser.ts: headless Chromium and a COOP/COEP
 * server, so the page is cross-origin isolated and may share memory). Two
 * Web Workers attach to one map on the wasm fast path with the posted
 * handle and count into it; the page reports results and a checksum back to
 * the server.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { browserSkipReason, runPage } from "../helpers/browser.js";

const PAGE = `<!doctype html><meta charset="utf-8"><title>htab browser test</title>
<script type="module" src="/test/fixtures/browser/page.js"></script>`;

interface PageResult {
  error?: string;
  crossOriginIsolated: boolean;
  userAgent: string;
  pageFastPath: boolean;
  workers: { cpu: number; fastPath: boolean; ops: number }[];
  keys: number;
  total: string;
  expected: string;
  checksum: string;
  fsck: boolean;
}

test("headless Chromium: two Web Workers share one map on the wasm fast path (COOP/COEP)", {
  skip: browserSkipReason(),
  timeout: 120_000,
}, async () => {
  const r = await runPage<PageResult>({ html: PAGE });
  assert.equal(r.error, undefined, r.error);
  console.log(
    `# browser: ${r.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? r.userAgent}, crossOriginIsolated ${r.crossOriginIsolated}, ` +
      `workers on the fast path ${r.workers.map((w) => w.fastPath).join("/")}, total ${r.total} of ${r.expected}, checksum ${r.checksum}`,
  );
  assert.equal(r.crossOriginIsolated, true);
  assert.equal(r.pageFastPath, true);
  assert.deepEqual(
    r.workers.map((w) => w.fastPath),
    [true, true],
  );
  assert.equal(r.total, r.expected, "every increment of both workers landed");
  assert.equal(r.keys, 64);
  // Each worker counted key i % 64 for i < 20 000: key k got ceil or floor of 20 000 / 64 from each.
  let want = 0n;
  for (let k = 0; k < 64; k++)
    want += BigInt(k + 1) * BigInt(2 * (Math.floor(20_000 / 64) + (k < 20_000 % 64 ? 1 : 0)));
  assert.equal(r.checksum, want.toString(), "checksum of every key's count");
  assert.ok(r.fsck);
});
