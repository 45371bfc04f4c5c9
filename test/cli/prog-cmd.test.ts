/**
 * `htab prog run` and `htab prog show` on clang-built objects, end to end
 * through the real bin. `prog run` must print what `bpftool prog run`
 * prints for the same program on the same input (checked against bpftool
 * itself, the object loaded and pinned by `bpftool prog load` in a private
 * bpffs mount): the same text and exit code, plain, -j and -p, data_out
 * hex dumps and errors included, with only the duration's digits differing.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { clangSkipReason, compileFixture } from "../bpf/kernel-object.js";
import { kernelSkipReason } from "../helpers/kernel.js";

const bin = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const BPFTOOL = ["/usr/sbin/bpftool", "/usr/bin/bpftool", "/usr/local/sbin/bpftool"].find((p) =>
  existsSync(p),
);
if (BPFTOOL === undefined && process.env.HTAB_REQUIRE_BPFTOOL === "1")
  throw new Error("HTAB_REQUIRE_BPFTOOL=1 but bpftool is not installed");
const clangSkip = clangSkipReason() ?? false;
const kernelSkip = kernelSkipReason() ?? false;

let dir = "";
let fs = "";

before(() => {
  dir = mkdtempSync(join(tmpdir(), "htab-prog-cmd-"));
  if (clangSkip === false)
    for (const f of ["seed003", "xdp_adjust", "xdp_ctx", "globals_calls", "loop"])
      writeFileSync(join(dir, `${f}.o`), compileFixture(f));
  // A packet: 14..63 bytes of every kind (printable, not), and xdp_adjust's deltas 0.
  writeFileSync(
    join(dir, "pkt"),
    Uint8Array.from({ length: 49 }, (_, i) => (i < 8 ? 0 : (i * 37) & 0xff)),
  );
  writeFileSync(join(dir, "short"), new Uint8Array(5));
  writeFileSync(join(dir, "ctx"), new Uint8Array(40).fill(3, 0, 1));
  if (kernelSkip === false && BPFTOOL !== undefined) {
    fs = mkdtempSync(join(tmpdir(), "htab-prog-cmd-bpffs-"));
    execFileSync("mount", ["-t", "bpf", "bpf", fs]);
  }
});

after(() => {
  if (fs !== "") {
    spawnSync("umount", [fs]);
    rmSync(fs, { recursive: true, force: true });
  }
  rmSync(dir, { recursive: true, force: true });
});

function htab(...args: string[]): { stdout: string; stderr: string; code: number } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: "utf8" });
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 };
}

function bpftool(...args: string[]): { stdout: string; stderr: string; code: number } {
  const r = spawnSync(BPFTOOL as string, args, { cwd: dir, encoding: "utf8" });
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 };
}

/** The data_out file a run wrote (removed), or undefined. */
function takeOut(): Buffer | undefined {
  const p = join(dir, "out.bin");
  const b = existsSync(p) ? readFileSync(p) : undefined;
  rmSync(p, { force: true });
  return b;
}

/** The duration's digits are the one thing that differs from run to run. */
const noTime = (s: string) =>
  s
    .replace(/duration( \(average\))?: \d+ns/g, "duration$1: Tns")
    .replace(/"duration": ?\d+/g, '"duration":T');

test("prog run: the same retval and output shape on sab and kernel, repeat averaged", {
  skip: clangSkip || kernelSkip,
}, () => {
  for (const backend of ["sab", "kernel"]) {
    const r = htab("prog", "run", "seed003.o", "data_in", "pkt", "repeat", "4", "--backend", backend);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Return value: 2, duration \(average\): \d+ns\n$/, backend);
    const j = htab(
      "-j",
      "prog",
      "run",
      "seed003.o",
      "program",
      "sys_enter_count",
      "data_in",
      "pkt",
      "--backend",
      backend,
    );
    assert.match(j.stdout, /^\{"retval":2,"duration":\d+\}\n$/, backend);
    const after = htab("prog", "run", "seed003.o", "d", "short", "--backend", backend, "-j");
    assert.deepEqual(
      [after.stdout, after.code],
      ['{"error":"failed to run program: Invalid argument"}\n', 234],
      backend,
    );
  }
});

test("prog run against bpftool prog run: identical text and exit codes (plain, -j, -p, data_out to stdout and to a file, errors)", {
  skip: clangSkip || kernelSkip || (BPFTOOL === undefined ? "bpftool is not installed" : false),
}, () => {
  // Programs whose return value does not depend on earlier runs (bpftool's pinned program keeps its
  // maps from run to run; each `htab prog run` loads the object afresh). Not loop.c: bpftool always
  // passes an output buffer, which the kernel refuses for a syscall program (EINVAL).
  for (const f of ["seed003", "xdp_adjust", "xdp_ctx"]) {
    const pin = join(fs, f);
    execFileSync(BPFTOOL as string, ["prog", "load", join(dir, `${f}.o`), pin]);
    const input = ["data_in", "pkt", "data_out", "-"];
    const cases: string[][] = [
      input,
      [...input, "repeat", "3"],
      [input[0], input[1], "rep", "2"],
      ...(f === "loop"
        ? []
        : [
            ["data_in", "short"],
            ["data_in", "pkt", "data_out", "out.bin"],
          ]),
    ];
    for (const c of cases)
      for (const opt of [[], ["-j"], ["-p"]]) {
        const theirs = bpftool(...opt, "prog", "run", "pinned", pin, ...c);
        const theirOut = takeOut();
        const mine = htab(...opt, "prog", "run", `${f}.o`, ...c, "--backend", "kernel");
        const myOut = takeOut();
        const what = `${f}: ${[...opt, ...c].join(" ")}`;
        assert.equal(noTime(mine.stdout), noTime(theirs.stdout), what);
        assert.equal(
          mine.stderr.replace(/^libbpf.*\n/gm, ""),
          theirs.stderr.replace(/^libbpf.*\n/gm, ""),
          what,
        );
        assert.equal(mine.code, theirs.code, what);
        assert.deepEqual(myOut, theirOut, `${what}: the data_out file`);
      }
  }
});

test("prog run: the sab backend prints what the kernel backend prints for the same runs", {
  skip: clangSkip || kernelSkip,
}, () => {
  for (const [f, ...c] of [
    ["xdp_adjust.o", "data_in", "pkt", "data_out", "-"],
    ["globals_calls.o", "data_in", "pkt", "data_out", "-"],
    ["loop.o", "ctx_in", "ctx", "ctx_out", "-"],
    ["seed003.o", "data_in", "short"],
  ])
    for (const opt of [[], ["-j"]]) {
      const k = htab(...opt, "prog", "run", f, ...c, "--backend", "kernel");
      const s = htab(...opt, "prog", "run", f, ...c, "--backend", "sab");
      assert.deepEqual(
        [noTime(s.stdout), s.stderr, s.code],
        [noTime(k.stdout), k.stderr, k.code],
        `${f} ${opt}`,
      );
    }
});

test("prog run: usage errors name the problem and exit 255", { skip: clangSkip }, () => {
  assert.deepEqual(htab("prog", "run", "seed003.o"), {
    stdout: "",
    stderr: "Error: 'run' needs at least 3 arguments, 1 found\n",
    code: 255,
  });
  const r = htab("prog", "run", "seed003.o", "data_in", "pkt", "repeat", "x1");
  assert.deepEqual([r.stderr, r.code], ["Error: can't parse x1 as repeat number\n", 255]);
  const n = htab("prog", "run", "seed003.o", "program", "nope", "data_in", "pkt");
  assert.deepEqual(
    [n.stderr, n.code],
    ["Error: no program 'nope' in seed003.o (have: sys_enter_count)\n", 255],
  );
  const m = htab("-j", "prog", "run", "missing.o", "data_in", "pkt");
  assert.equal(m.code, 255);
  assert.match(m.stdout, /^\{"error":"failed to open missing\.o: /);
});

test("prog show: the object's programs and maps, plain and -j, numbered as replay's load", {
  skip: clangSkip,
}, () => {
  assert.deepEqual(htab("prog", "show", "seed003.o"), {
    stdout:
      "0: xdp  name sys_enter_count  section xdp  insns 31\n" +
      "map 0: hash  name concurrent_map  flags 0x0\n\tkey 4B  value 8B  max_entries 100\n" +
      "map 1: array  name seed003.bss  flags 0x400\n\tkey 4B  value 8B  max_entries 1  section .bss\n",
    stderr: "",
    code: 0,
  });
  const j = htab("prog", "show", "seed003.o", "-j");
  assert.deepEqual(JSON.parse(j.stdout), {
    programs: [{ prog: 0, name: "sys_enter_count", section: "xdp", type: "xdp", insns: 31 }],
    maps: [
      { map: 0, name: "concurrent_map", type: "hash", key: 4, value: 8, max_entries: 100, flags: 0 },
      {
        map: 1,
        name: "seed003.bss",
        type: "array",
        key: 4,
        value: 8,
        max_entries: 1,
        flags: 1024,
        section: ".bss",
      },
    ],
  });
});
