/**
 * A BPF object in a real browser (test/helpers/browser.ts): the page
 * (test/fixtures/browser/bpf-page.ts) loads seed003.o, compiled here by
 * clang-19 and served to it, runs its XDP program on several Web Workers,
 * each attached on its own CPU slot through the object's handle, and shows
 * the global counter and the spin-locked map value filling. Both end at
 * exactly workers x runs. HTAB_BPF_PAGE_SCREENSHOT=<path> saves a picture
 * of the finished page (docs/img/bpf-page.png was made so).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { clangSkipReason, compileFixture } from "../bpf/kernel-object.js";
import { browserSkipReason, runPage } from "../helpers/browser.js";

const WORKERS = 4;
const RUNS = 4000;

const PAGE = `<!doctype html><meta charset="utf-8"><title>htab: a BPF object on Web Workers</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 18px; margin: 0 0 4px; }
  p { margin: 4px 0; color: #555; }
  table { border-collapse: collapse; margin-top: 12px; }
  th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
  th { background: #f3f3f3; }
  td:first-child, th:first-child { text-align: left; }
  #state { font-weight: bold; }
</style>
<h1>seed003.o: <code>sys_enter_count</code> on ${WORKERS} Web Workers</h1>
<p>engine: <span id="engine">loading</span></p>
<p id="setup"></p>
<table>
  <tr><th>what</th><th>now</th><th>expected</th></tr>
  <tr><td><code>counter</code> (.bss, __sync_fetch_and_add)</td><td id="counter">0</td><td id="want"></td></tr>
  <tr><td><code>concurrent_map[0].count</code> (under bpf_spin_lock)</td><td id="count">0</td><td id="want-count"></td></tr>
  <tr><td><code>concurrent_map</code> elements</td><td id="elems">0</td><td>1</td></tr>
</table>
<table>
  <tr><th>CPU slot</th><th>runs</th><th>XDP_PASS</th><th>packet bytes</th><th>engine</th><th>state</th></tr>
  <tbody id="workers"></tbody>
</table>
<p>totals: <span id="state">running</span></p>
<img src="/wait" alt="" width="1" height="1">
<script type="module" src="/test/fixtures/browser/bpf-page.js?workers=${WORKERS}&runs=${RUNS}"></script>`;

interface PageResult {
  error?: string;
  crossOriginIsolated: boolean;
  userAgent: string;
  engine: string;
  workers: { cpu: number; runs: number; passed: number; engine: string; done: boolean }[];
  runs: number;
  counter: string;
  count: number;
  lockWord: number;
  fsck: boolean;
}

test(`headless Chromium: seed003's XDP program compiled on ${WORKERS} Web Workers x ${RUNS} runs, counters exact`, {
  skip: browserSkipReason() ?? clangSkipReason(),
  timeout: 120_000,
}, async () => {
  const shot = process.env.HTAB_BPF_PAGE_SCREENSHOT;
  const r = await runPage<PageResult>({
    html: PAGE,
    files: { "/seed003.o": compileFixture("seed003") },
    screenshot: shot ? { path: shot, width: 720, height: 430 } : undefined,
  });
  assert.equal(r.error, undefined, r.error);
  console.log(
    `# bpf page: ${r.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? r.userAgent}, engine ${r.engine} (workers ${r.workers.map((w) => w.engine).join("/")}), ` +
      `counter ${r.counter}, count ${r.count} of ${WORKERS * RUNS}`,
  );
  assert.equal(r.crossOriginIsolated, true);
  assert.equal(r.engine, "compiled", "a cross-origin isolated page has wasm threads: the compiled engine");
  assert.deepEqual(
    r.workers.map((w) => [w.cpu, w.runs, w.passed, w.engine, w.done]),
    Array.from({ length: WORKERS }, (_, i) => [i + 1, RUNS, RUNS, "compiled", true]),
  );
  assert.equal(r.counter, String(WORKERS * RUNS), "the global counter");
  assert.equal(r.count, WORKERS * RUNS, "the spin-locked count");
  assert.equal(r.lockWord, 0, "the spin lock is free");
  assert.ok(r.fsck);
});
