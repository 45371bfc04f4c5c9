/**
 * A real browser: headless Chromium (Debian's `chromium`) loads a page from a
 * static server on 127.0.0.1 that sends Cross-Origin-Opener-Policy and
 * Cross-Origin-Embedder-Policy, so the page is cross-origin isolated and may
 * share memory. Two Web Workers attach to one map on the wasm fast path with
 * the posted handle and count into it; the page reports results and a
 * checksum back to the server. Where Chromium is absent the test says so in
 * one line and skips, unless HTAB_REQUIRE_BROWSER=1 (CI installs it).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) =>
  existsSync(p),
);
function skipReason(): string | undefined {
  if (CHROMIUM !== undefined) return undefined;
  if (process.env.HTAB_REQUIRE_BROWSER === "1")
    throw new Error("HTAB_REQUIRE_BROWSER=1 but no Chromium is installed");
  console.log("# browser test skipped: no Chromium (apt-get install chromium)");
  return "no Chromium";
}

/** dist/: the compiled tree the page imports from (dist/src, dist/test/fixtures/browser). */
const root = fileURLToPath(new URL("../..", import.meta.url));
const TYPES: Record<string, string> = {
  ".js": "text/javascript",
  ".html": "text/html",
  ".wasm": "application/wasm",
};
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
  skip: skipReason(),
  timeout: 120_000,
}, async () => {
  let resolveResult: (r: PageResult) => void = () => {};
  const result = new Promise<PageResult>((r) => {
    resolveResult = r;
  });
  const server = createServer((req, res) => {
    const headers = {
      "Cross-Origin-Opener-Policy": "same-origin",
      "Cross-Origin-Embedder-Policy": "require-corp",
      "Cache-Control": "no-store",
    };
    if (req.method === "POST" && req.url === "/result") {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        res.writeHead(204, headers).end();
        resolveResult(JSON.parse(body));
      });
      return;
    }
    const url = (req.url ?? "/").split("?")[0];
    if (url === "/" || url === "/index.html") {
      res.writeHead(200, { ...headers, "Content-Type": "text/html" }).end(PAGE);
      return;
    }
    const file = normalize(join(root, url));
    if (!file.startsWith(root) || !existsSync(file)) {
      res.writeHead(404, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  const profile = mkdtempSync(join(tmpdir(), "htab-chromium-"));
  const chrome = spawn(
    CHROMIUM as string,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      `http://127.0.0.1:${port}/`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  chrome.stderr?.on("data", (c) => {
    stderr += c;
  });
  try {
    let handle: NodeJS.Timeout | undefined;
    const timer = new Promise<never>((_, reject) => {
      handle = setTimeout(
        () => reject(new Error(`no result from the page in 90 s; chromium said:\n${stderr.slice(-2000)}`)),
        90_000,
      );
    });
    const r = await Promise.race([result, timer]).finally(() => clearTimeout(handle));
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
  } finally {
    const exited = new Promise((r) => chrome.once("exit", r));
    chrome.kill("SIGKILL");
    await exited;
    server.close();
    // Chromium's helper processes may still be finishing writes into the profile: best effort.
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch {}
  }
});
