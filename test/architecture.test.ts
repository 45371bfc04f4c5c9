// The folders are the architecture: each one lists what it may import, and
// any other edge, or any circle between files, fails here. The graph is a
// diamond, not a line: kernel/ and core/ both stand on map/ (the contracts
// both backends share) and btf/, and neither sees the other.
//
//                         cli
//                          |
//          +-------+-------+--------+
//          |       |                |
//         api    domain   bpf    kernel ----+
//          |       |       |        |       |
//          +----> core <---+        |       |
//                  |  \             |       |
//   core/elems, core/crash           |       |
//                  |                 |       |
//         alloc -> sync, wasm, hash  |       |
//                  |                 |       |
//                layout              |       |
//                  +------> map <----+--> btf
//                            |
//                      errors, uapi

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const src = fileURLToPath(new URL("../../src", import.meta.url));

/**
 * What each node may import. A node is a folder (its files and subfolders
 * that are not nodes of their own) or a top-level file. An entry is a node,
 * or "node:file.ts" for one file of a node (a folder that may use only part
 * of another).
 */
const ALLOWED: Record<string, string[]> = {
  "errors.ts": [],
  // Internal return codes that are not errnos, in a range no errno takes.
  "sentinels.ts": [],
  "uapi.ts": [],
  // wasm: only the WasmMemory type that map handles and options name.
  // alloc and sync: types only (SyncOptions, SyncReport, Reservation), for the API reference.
  "index.ts": [
    "errors.ts",
    "uapi.ts",
    "map",
    "layout",
    "hash",
    "core",
    "domain",
    "api",
    "array",
    "wasm",
    "alloc",
    "sync",
  ],
  // What both backends share: RawMap, LastError, closed-object poisoning, the key walk, MapSpec, traits, codecs.
  map: ["errors.ts", "uapi.ts"],
  // The BTF parser, writer, codecs and formatter: below the kernel backend and the BPF loader, never koffi.
  btf: ["errors.ts", "map"],
  // The shared-memory layout: every offset, the sizes.
  layout: ["errors.ts", "uapi.ts", "map"],
  hash: [],
  sync: ["errors.ts", "layout"],
  wasm: ["layout"],
  // errors.ts: synchronize()'s bounded wait throws its ETIMEDOUT (naming the open section's slot) from here.
  alloc: ["errors.ts", "layout", "sync", "wasm", "sentinels.ts"],
  // The shared-memory hashtab.c: facade, view, bucket, element, lookup, write, walk, compare, program face.
  core: [
    "errors.ts",
    "sentinels.ts",
    "uapi.ts",
    "map",
    "layout",
    "hash",
    "sync",
    "wasm",
    "alloc",
    "core/elems",
    "core/crash",
  ],
  // The element policies, standing on the view and the bucket (the facade picks one at construction).
  "core/elems": [
    "errors.ts",
    "sentinels.ts",
    "layout",
    "sync",
    "alloc",
    "core:htab-view.ts",
    "core:bucket.ts",
    "core:waits.ts",
    "core:fast.ts",
    "core:fast-plan.ts",
    "core:elem.ts",
  ],
  // ARRAY and PERCPU_ARRAY (arraymap.c): its own layout section and element protocol; from core only
  // what every SAB map shares (the handle and create options, the ValueRef programs get, cpuOption()).
  array: [
    "errors.ts",
    "uapi.ts",
    "map",
    "layout",
    "sync",
    "alloc",
    "core:map-handle.ts",
    "core:spec.ts",
    "core:value-ref.ts",
  ],
  // Crash recovery and fsck.
  "core/crash": ["errors.ts", "layout", "sync", "alloc", "core:htab-view.ts", "core:bucket.ts"],
  // MapDomain, ARRAY_OF_MAPS, HASH_OF_MAPS: built on the facade.
  // array: a domain holds arrays too (and arrays as inner maps).
  domain: [
    "errors.ts",
    "uapi.ts",
    "map",
    "layout",
    "sync",
    "alloc",
    "wasm",
    "array",
    "core:htab.ts",
    "core:spec.ts",
  ],
  // array: createMap() and attach() make an ArrayMap for ARRAY / PERCPU_ARRAY.
  api: ["errors.ts", "uapi.ts", "map", "layout", "array", "core:htab.ts", "core:spec.ts"],
  check: ["layout", "map"],
  // The userspace BPF runtime: runs in a browser, so never kernel/ (whose FFI needs koffi).
  // array: `.maps` arrays and the globals (.data, .bss, .rodata) are ArrayMaps.
  bpf: [
    "errors.ts",
    "uapi.ts",
    "map",
    "btf",
    "layout",
    "hash",
    "sync",
    "alloc",
    "wasm",
    "core",
    "domain",
    "array",
  ],
  // The bpf() backend: the contracts and BTF, never the shared-memory map; it may load bpf/'s linked objects.
  kernel: ["errors.ts", "uapi.ts", "map", "btf", "layout", "wasm", "bpf"],
  cli: [
    "errors.ts",
    "uapi.ts",
    "map",
    "btf",
    "layout",
    "core",
    "domain",
    "api",
    "array",
    "check",
    "kernel",
    "bpf",
    "index.ts",
  ],
};
/** Folders whose own files may reach outside the package (koffi, node:*): the rest runs in browsers. */
const MAY_IMPORT_PACKAGES = new Set(["kernel", "cli"]);
/** Size follows the concept: longer files are reported, not refused. */
const LONG_FILE_LINES = 600;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const NODES = Object.keys(ALLOWED).sort((a, b) => b.length - a.length);

/** The node a source file belongs to: the longest node path that holds it. */
function nodeOf(file: string): string {
  const rel = relative(src, file);
  const hit = NODES.find((n) => rel === n || rel.startsWith(`${n}/`));
  assert.ok(hit !== undefined, `${rel} belongs to no node of the architecture graph`);
  return hit;
}

function importsOf(file: string): { spec: string; target: string }[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => ({
    spec: m[1],
    target: m[1].startsWith(".") ? resolve(dirname(file), m[1]).replace(/\.js$/, ".ts") : "",
  }));
}

const all = files(src);

test("every import is an edge the graph allows", () => {
  const bad: string[] = [];
  for (const f of all) {
    const me = nodeOf(f);
    for (const { spec, target } of importsOf(f)) {
      if (target === "") continue;
      const them = nodeOf(target);
      if (them === me) continue;
      const file = relative(join(src, them), target);
      const ok = ALLOWED[me].some((a) => a === them || a === `${them}:${file}`);
      if (!ok) bad.push(`${relative(src, f)} (${me}) -> ${spec} (${them})`);
    }
  }
  assert.deepEqual(bad, []);
});

test("no circle between files (type imports included)", () => {
  const edges = new Map(
    all.map((f) => [f, importsOf(f).flatMap((i) => (i.target === "" ? [] : [i.target]))]),
  );
  const state = new Map<string, 1 | 2>(); // 1: on the current path, 2: done
  const circles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    state.set(f, 1);
    for (const t of edges.get(f) ?? []) {
      if (state.get(t) === 1)
        circles.push([...path.slice(path.indexOf(t)), t].map((p) => relative(src, p)).join(" -> "));
      else if (state.get(t) === undefined) visit(t, [...path, t]);
    }
    state.set(f, 2);
  };
  for (const f of all) if (state.get(f) === undefined) visit(f, [f]);
  assert.deepEqual(circles, []);
});

test("only kernel/ and cli/ import anything outside the package (the core runs in browsers)", () => {
  const bad: string[] = [];
  for (const f of all) {
    if (MAY_IMPORT_PACKAGES.has(nodeOf(f))) continue;
    for (const { spec } of importsOf(f))
      if (!spec.startsWith(".")) bad.push(`${relative(src, f)} imports ${spec}`);
  }
  assert.deepEqual(bad, []);
});

test("the graph itself is acyclic at the folder level", () => {
  // A file-level entry ("core:htab.ts") counts as an edge to its folder, except
  // inside core/, where core/elems and core/crash stand on named files of core/
  // and the facade stands on them: the file-level test above keeps that acyclic.
  const sub = (a: string, b: string) => a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
  const edge = (a: string) =>
    ALLOWED[a].map((t) => t.split(":")[0]).filter((t) => !sub(a, t) && ALLOWED[t] !== undefined);
  const seen = new Map<string, 1 | 2>();
  const visit = (n: string, path: string[]): void => {
    seen.set(n, 1);
    for (const t of edge(n)) {
      assert.notEqual(seen.get(t), 1, `circle in ALLOWED: ${[...path, t].join(" -> ")}`);
      if (seen.get(t) === undefined) visit(t, [...path, t]);
    }
    seen.set(n, 2);
  };
  for (const n of Object.keys(ALLOWED)) if (seen.get(n) === undefined) visit(n, [n]);
});

test("long files are reported (a warning, not a failure: size follows the concept)", (t) => {
  for (const f of all.filter((p) => !p.endsWith("-bytes.ts"))) {
    const n = readFileSync(f, "utf8").split("\n").length;
    if (n > LONG_FILE_LINES) t.diagnostic(`warning: ${relative(src, f)} has ${n} lines`);
  }
});
