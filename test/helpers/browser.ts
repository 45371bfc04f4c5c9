/**
 * A real browser for the browser tests: headless Chromium (Debian's
 * `chromium`) loads a page from a static server on 127.0.0.1 that sends
 * Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy, so the page
 * is cross-origin isolated and may share memory. The server serves dist/
 * (the page imports dist/src and dist/test/fixtures/browser), the page's
 * HTML at `/`, any extra `files`, and takes the page's result as a POST to
 * `/result`. Where Chromium is absent the tests say so in one line and skip,
 * unless HTAB_REQUIRE_BROWSER=1 (CI installs it).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) =>
  existsSync(p),
);

/** Why no browser test can run here, or undefined. Throws under HTAB_REQUIRE_BROWSER=1. */
export function browserSkipReason(): string | undefined {
  if (CHROMIUM !== undefined) return undefined;
  if (process.env.HTAB_REQUIRE_BROWSER === "1")
    throw new Error("HTAB_REQUIRE_BROWSER=1 but no Chromium is installed");
  console.log("# browser test skipped: no Chromium (apt-get install chromium)");
  return "no Chromium";
}

/** dist/: the compiled tree the pages import from. */
const root = fileURLToPath(new URL("../..", import.meta.url));
const TYPES: Record<string, string> = {
  ".js": "text/javascript",
  ".html": "text/html",
  ".wasm": "application/wasm",
};

export interface PageOptions {
  /** The HTML served at `/`. */
  html: string;
  /** More paths to serve (e.g. a BPF object's bytes), beside dist/. */
  files?: Record<string, Uint8Array>;
  /**
   * Save a screenshot of the page here (PNG), taken when the page's load
   * event fires. A page that wants its final state in the picture holds
   * the load event with `<img src="/wait">`: the server answers it once
   * the result has arrived.
   */
  screenshot?: { path: string; width: number; height: number };
  /** How long the page may take to post its result. @default 90 000 */
  timeoutMs?: number;
}

/** GET `url`: the page at `/`, one of `opts.files`, or a file of dist/. */
function serveFile(
  url: string,
  opts: PageOptions,
  headers: Record<string, string>,
  res: ServerResponse,
): void {
  if (url === "/" || url === "/index.html") {
    res.writeHead(200, { ...headers, "Content-Type": "text/html" }).end(opts.html);
    return;
  }
  const extra = opts.files?.[url];
  if (extra !== undefined) {
    res.writeHead(200, { ...headers, "Content-Type": "application/octet-stream" }).end(extra);
    return;
  }
  const file = normalize(join(root, url));
  if (!file.startsWith(root) || !existsSync(file)) {
    res.writeHead(404, headers).end();
    return;
  }
  res.writeHead(200, { ...headers, "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
  res.end(readFileSync(file));
}

/** Open the page in headless Chromium and resolve with what it POSTs to /result (parsed JSON). */
export async function runPage<T>(opts: PageOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 90_000;
  let resolveResult: (r: T) => void = () => {};
  const result = new Promise<T>((r) => {
    resolveResult = r;
  });
  const headers = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cache-Control": "no-store",
  };
  let arrived = false;
  const waiting: ServerResponse[] = [];
  const release = () => {
    for (const w of waiting.splice(0)) w.writeHead(204, headers).end();
  };
  const server = createServer((req, res) => {
    if (req.method === "POST" && req.url === "/result") {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        res.writeHead(204, headers).end();
        arrived = true;
        release();
        resolveResult(JSON.parse(body));
      });
      return;
    }
    const url = (req.url ?? "/").split("?")[0];
    if (url === "/wait") {
      waiting.push(res);
      if (arrived) release();
      return;
    }
    serveFile(url, opts, headers, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  const profile = mkdtempSync(join(tmpdir(), "htab-chromium-"));
  const shot = opts.screenshot;
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
      ...(shot
        ? [`--screenshot=${shot.path}`, `--window-size=${shot.width},${shot.height}`, "--hide-scrollbars"]
        : []),
      `--user-data-dir=${profile}`,
      `http://127.0.0.1:${port}/`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  chrome.stderr?.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise((r) => chrome.once("exit", r));
  try {
    let handle: NodeJS.Timeout | undefined;
    const timer = new Promise<never>((_, reject) => {
      handle = setTimeout(
        () =>
          reject(
            new Error(
              `no result from the page in ${timeoutMs / 1000} s; chromium said:\n${stderr.slice(-2000)}`,
            ),
          ),
        timeoutMs,
      );
    });
    const r = await Promise.race([result, timer]).finally(() => clearTimeout(handle));
    // With --screenshot Chromium exits by itself once the picture is written.
    if (shot) await Promise.race([exited, new Promise((t) => setTimeout(t, 20_000))]);
    return r;
  } finally {
    chrome.kill("SIGKILL");
    await exited;
    server.close();
    // Chromium's helper processes may still be finishing writes into the profile: best effort.
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch {}
  }
}
