/** `htab replay` end to end: the real bin, both backends, the exact line format. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { kernelSkipReason } from "../helpers/kernel.js";

const bin = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const script = [
  '{"op":"create","type":"hash","key_size":4,"value_size":8,"max_entries":8,"flags":64}',
  '{"op":"update","map":0,"key":"01000000","value":"0a00000000000000","flags":0}',
  '{"op":"update","map":0,"key":"01000000","value":"0b00000000000000","flags":1}',
  '{"op":"lookup","map":0,"key":"01000000","flags":0}',
  '{"op":"get_next_key","map":0,"key":null}',
  '{"op":"lookup_batch","map":0,"in_batch":null,"count":4,"elem_flags":0,"flags":0}',
  "this is not json",
  '{"op":"lookup","map":7,"key":"01000000"}',
  '{"op":"count","map":0}',
  '{"op":"dump","map":0}',
  '{"op":"delete","map":0,"key":"01000000"}',
  '{"op":"delete","map":0,"key":"01000000"}',
].join("\n");

const want = [
  { ok: true, map: 0 },
  { ok: true },
  { ok: false, errno: "EEXIST" },
  { ok: true, value: "0a00000000000000" },
  { ok: true, key: "01000000" },
  {
    ok: false,
    errno: "ENOENT",
    count: 1,
    keys: ["01000000"],
    values: ["0a00000000000000"],
    out_batch: "08000000",
  },
  { ok: false, error: "line is not valid JSON" },
  { ok: false, error: '"map" must name a created map (0..0)' },
  { ok: true, count: 1 },
  { ok: true, keys: ["01000000"], values: ["0a00000000000000"] },
  { ok: true },
  { ok: false, errno: "ENOENT" },
];

function run(backend: string): unknown[] {
  const r = spawnSync(process.execPath, [bin, "replay", "--backend", backend], {
    input: script,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

test("replay --backend sab prints one exact JSON line per input line", () => {
  assert.deepEqual(run("sab"), want);
});

test("replay --backend kernel prints the same lines", { skip: kernelSkipReason() }, () => {
  assert.deepEqual(run("kernel"), want);
});

test("replay rejects an unknown backend with a usage error", () => {
  const r = spawnSync(process.execPath, [bin, "replay", "--backend", "nope"], {
    input: "",
    encoding: "utf8",
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /nope/);
});

test("replay compare_and_delete: EBUSY on mismatch, ok on match; EOPNOTSUPP on the kernel", () => {
  const lines = [
    '{"op":"create","type":"hash","key_size":4,"value_size":8,"max_entries":8,"flags":0}',
    '{"op":"update","map":0,"key":"01000000","value":"0a0000000b000000","flags":0}',
    '{"op":"compare_and_delete","map":0,"key":"01000000","expected":"0c000000","offset":4,"size":4}',
    '{"op":"compare_and_delete","map":0,"key":"01000000","expected":"0b000000","offset":4,"size":4}',
    '{"op":"compare_and_delete","map":0,"key":"01000000","expected":"0b000000","offset":4,"size":4}',
    '{"op":"compare_and_delete","map":0,"key":"01000000","expected":"0b000000","offset":6,"size":4}',
  ].join("\n");
  const sab = spawnSync(process.execPath, [bin, "replay"], { input: lines, encoding: "utf8" });
  assert.deepEqual(
    sab.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l)),
    [
      { ok: true, map: 0 },
      { ok: true },
      { ok: false, errno: "EBUSY" },
      { ok: true },
      { ok: false, errno: "ENOENT" },
      { ok: false, errno: "EINVAL" },
    ],
  );
});

test("replay u64 fields take the whole u64 range (2^64 - 1 as the kernel's selftests pass it) and give the kernel's answer", () => {
  const lines = [
    '{"op":"create","type":"hash","key_size":4,"value_size":4,"max_entries":4,"flags":0}',
    '{"op":"update","map":0,"key":"01000000","value":"02000000","flags":18446744073709551615}',
    '{"op":"update","map":0,"key":"01000000","value":"02000000","flags":9223372036854775808}',
    '{"op":"update","map":0,"key":"01000000","value":"02000000","flags":4294967296}',
    '{"op":"update","map":0,"key":"01000000","value":"02000000","flags":0}',
    '{"op":"lookup","map":0,"key":"01000000","flags":18446744073709551615}',
    '{"op":"lookup_and_delete","map":0,"key":"01000000","flags":18446744073709551612}',
    '{"op":"lookup_batch","map":0,"count":4,"elem_flags":18446744073709551615}',
    '{"op":"delete_batch","map":0,"keys":["01000000"],"flags":18446744073709551615}',
    '{"op":"update","map":0,"key":"01000000","value":"02000000","flags":18446744073709551616}',
    '{"op":"update","map":0,"key":"01000000","value":"02000000","flags":-1}',
    '{"op":"update","map":0,"key":"01000000","value":"02000000","flags":1.5}',
    '{"op":"lookup","map":0,"key":"01000000","flags":0}',
  ].join("\n");
  const want = [
    { ok: true, map: 0 },
    { ok: false, errno: "EINVAL" },
    { ok: false, errno: "EINVAL" },
    { ok: false, errno: "EINVAL" },
    { ok: true },
    { ok: false, errno: "EINVAL" },
    { ok: false, errno: "EINVAL" },
    { ok: false, errno: "EINVAL", count: 4, keys: [], values: [], out_batch: null },
    { ok: true, count: 1 }, // the kernel does not check batch.flags of a delete batch
    { ok: false, error: '"flags" must be an integer in [0, 2^64)' },
    { ok: false, error: '"flags" must be an integer in [0, 2^64)' },
    { ok: false, error: '"flags" must be an integer in [0, 2^64)' },
    { ok: false, errno: "ENOENT" },
  ];
  const backends = kernelSkipReason() === undefined ? ["sab", "kernel"] : ["sab"];
  for (const backend of backends) {
    const r = spawnSync(process.execPath, [bin, "replay", "--backend", backend], {
      input: lines,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
      want,
      backend,
    );
  }
});

test("replay refuses malformed lines of 100 MB (numbers, hex, nesting) in linear time and changes nothing", {
  // A watchdog, not a measurement: the 100 MB number took about 50 s before parsing was bounded.
  timeout: 60_000,
}, async () => {
  const { Replayer } = await import("../../src/cli/replay.js");
  const { factoryFor } = await import("../../src/cli/backends.js");
  const r = new Replayer(factoryFor("sab"));
  assert.deepEqual(r.run('{"op":"create","type":"hash","key_size":4,"value_size":8,"max_entries":4}'), {
    ok: true,
    map: 0,
  });
  assert.deepEqual(r.run('{"op":"update","map":0,"key":"01000000","value":"0a00000000000000"}'), {
    ok: true,
  });
  const MB100 = 100_000_000;
  const digits = "9".repeat(MB100);
  const update = (rest: string) =>
    `{"op":"update","map":0,"key":"01000000","value":"0000000000000000",${rest}}`;
  const flagsError = { ok: false, error: '"flags" must be an integer in [0, 2^64)' };
  const cases: [string, unknown][] = [
    [update(`"flags":${digits}`), flagsError],
    [update(`"flags":-${digits}`), flagsError],
    [update(`"flags":1${digits}e5`), flagsError],
    [
      `{"op":"lookup_batch","map":0,"count":${digits}}`,
      { ok: false, error: '"count" must be an integer in [0, 2^32)' },
    ],
    [
      `{"op":"update","map":0,"key":"${"0".repeat(MB100)}","value":"0000000000000000"}`,
      {
        ok: false,
        error: "key is 50000000 bytes, expected 4",
      },
    ],
    ["[".repeat(MB100), { ok: false, error: "line is not valid JSON" }],
    [
      `{"op":"update_batch","map":0,"keys":[[[[["01000000"]]]]]}`,
      { ok: false, error: "line is not valid JSON" },
    ],
  ];
  for (const [line, want] of cases) assert.deepEqual(r.run(line), want, line.slice(0, 60));
  // The map is as it was, and the 2^64 - 1 literal of the kernel's selftests is still read exactly.
  assert.deepEqual(r.run('{"op":"lookup","map":0,"key":"01000000"}'), {
    ok: true,
    value: "0a00000000000000",
  });
  assert.deepEqual(r.run(update('"flags":18446744073709551615')), { ok: false, errno: "EINVAL" });
  r.close();
});
