#!/usr/bin/env node
/** The `htab` command line. */

import { createReadStream, existsSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { type BackendName, factoryFor } from "./backends.js";
import { CONNTRACK_LEGEND } from "./conntrack-legend.js";
import { Replayer } from "./replay.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

const program = new Command();
program
  .name("htab")
  .description("BPF hash maps in a SharedArrayBuffer, with a real-kernel backend")
  .version(pkg.version, "-V, --version", "print the htab version")
  .option("-j, --json", "JSON output for `htab map` (as bpftool -j, before the command)")
  .option("-p, --pretty", "pretty JSON output for `htab map` (as bpftool -p; implies -j)")
  // Options before a subcommand are the program's (htab -j map ...), after it the subcommand's.
  .enablePositionalOptions();

/** One example per subcommand, shown under its --help. */
function examples(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText("after", `\nExamples:\n${lines.map((l) => `  ${l}`).join("\n")}\n`);
}

/** --chart <base> (default `base`), --no-chart and --json, as conntrack and snapshot take them. */
function chartAndJson(cmd: Command, base: string, json: string): Command {
  return cmd
    .option("--chart <base>", "write the chart to <base>.svg and <base>.png", base)
    .option("--no-chart", "draw no chart")
    .option("--json", json, false);
}

/** Render a chart if the optional renderers are installed; say where it went (or why not) on stderr. */
async function chartTo(spec: object, base: string): Promise<void> {
  const { renderChart } = await import("./chart.js");
  const r = await renderChart(spec, base);
  process.stderr.write(r.skipped ? `chart skipped: ${r.skipped}\n` : `chart: ${r.files.join(", ")}\n`);
}

examples(
  program
    .command("replay")
    .description("run a JSON-lines script of map operations and print one JSON result per line")
    .argument("[file]", "script file (default: standard input)")
    .addOption(
      new Option("--backend <name>", "where the maps live").choices(["sab", "kernel"]).default("sab"),
    )
    .action(async (file: string | undefined, opts: { backend: BackendName }) => {
      const { objectLoaderFor } = await import("./objects.js");
      const replayer = new Replayer(factoryFor(opts.backend), objectLoaderFor(opts.backend));
      const input = file && file !== "-" ? createReadStream(file) : process.stdin;
      const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
      for await (const line of rl) {
        if (line.trim() === "") continue;
        process.stdout.write(`${JSON.stringify(replayer.run(line))}\n`);
      }
      replayer.close();
    }),
  `echo '{"op":"create","type":"hash","key_size":4,"value_size":8,"max_entries":16}' | htab replay`,
  `htab replay script.jsonl --backend kernel     # the same lines on real kernel maps (root)`,
  `input line:  {"op":"update","map":0,"key":"01000000","value":"0a00000000000000","flags":0}`,
  `output line: {"ok":true}   or   {"ok":false,"errno":"EEXIST"}`,
  `BPF objects: {"op":"load","object":"prog.o"} then {"op":"run","prog":0,"data_in":"HEX","repeat":1}`,
);

examples(
  program
    .command("demo")
    .description(
      "several workers hammer one map with a conntrack-like mix; prints ops/s and the history check",
    )
    .option("--workers <n>", "worker threads", "2")
    .option("--seconds <s>", "how long the run lasts", "3")
    .option("--keys <n>", "key space (flows)", "4096")
    .option("--json", "print the result as JSON on stdout (no table, no progress line)", false)
    .action(async (opts: { workers: string; seconds: string; keys: string; json: boolean }) => {
      const { runDemo } = await import("./demo.js");
      const r = await runDemo({
        workers: Number(opts.workers),
        seconds: Number(opts.seconds),
        keys: Number(opts.keys),
        quiet: opts.json,
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exitCode = r.ok ? 0 : 1;
    }),
  "htab demo --workers 2 --seconds 3",
);

examples(
  chartAndJson(
    program
      .command("snapshot")
      .description(
        "map-in-map snapshots: a plain walk of a live map versus swap + synchronize, under writers",
      )
      .option("--seconds <s>", "seconds per mode", "2")
      .option("--writers <n>", "writer workers", "2")
      .option("--interval-ms <ms>", "time between snapshots", "2"),
    "htab-snapshot",
    "print the results as JSON on stdout (no table)",
  ).action(
    async (opts: {
      seconds: string;
      writers: string;
      intervalMs: string;
      chart: string | false;
      json: boolean;
    }) => {
      const { runSnapshot, snapshotChartSpec } = await import("./snapshot.js");
      const res = await runSnapshot({
        seconds: Number(opts.seconds),
        writers: Number(opts.writers),
        intervalMs: Number(opts.intervalMs),
        quiet: opts.json,
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(res)}\n`);
      if (opts.chart !== false) await chartTo(snapshotChartSpec(res), opts.chart);
      const swap = res.find((r) => r.mode !== "plain walk");
      process.exitCode = swap && swap.inconsistent === 0 && swap.counted === swap.written ? 0 : 1;
    },
  ),
  "htab snapshot --seconds 2 --writers 2 --chart snap   # writes snap.svg and snap.png",
);

const conntrack = program
  .command("conntrack")
  .description("the conntrack GC race: delete-by-key versus compareAndDelete on the same traffic")
  .option("--seconds <s>", "seconds per GC mode", "3")
  .option("--workers <n>", "datapath workers (plus one GC worker)", "2")
  .option("--flows <n>", "distinct flows in the traffic", "20000")
  .option("--map-size <n>", "map max_entries", "32768")
  .option("--timeout-ms <ms>", "idle time after which a flow expires", "20")
  .option("--kernel", "put the map in the kernel (control plane through bpf())", false)
  .option("--lru", "make the CT map an LRU_HASH, as Cilium's CT maps are (a full map evicts)", false);
examples(
  chartAndJson(
    conntrack,
    "htab-conntrack",
    "print the results as JSON on stdout (no table, no progress line)",
  ).action(async (opts: Record<string, string | boolean>) => {
    const { conntrackChartSpec, runConntrack } = await import("./conntrack.js");
    const res = await runConntrack({
      seconds: Number(opts.seconds),
      workers: Number(opts.workers),
      flows: Number(opts.flows),
      mapSize: Number(opts.mapSize),
      timeoutMs: Number(opts.timeoutMs),
      kernel: opts.kernel === true,
      lru: opts.lru === true,
      quiet: opts.json === true,
    });
    if (opts.json === true) process.stdout.write(`${JSON.stringify(res)}\n`);
    if (typeof opts.chart === "string") await chartTo(conntrackChartSpec(res), opts.chart);
  }),
  "htab conntrack --seconds 3 --workers 2          # table, plus htab-conntrack.svg/.png",
  "htab conntrack --kernel --json > ct.json       # the same race on a real kernel map (root)",
);
conntrack.addHelpText("after", `\n${CONNTRACK_LEGEND}`);

examples(
  program
    .command("bench")
    .description("benchmark htab against V8 Map, the kernel, lmdb-js, message passing and a global-lock map")
    .option("--quick", "a short run (under a minute)", false)
    .option("--js-path", "run every htab map on the JS path (no wasm fast path): the before/after", false)
    .option("--out <dir>", "where to write the JSON and the charts (default: bench/results of the clone)")
    .option("--no-chart", "skip the SVG/PNG chart")
    .option("--json", "print the report as JSON on stdout", false)
    .action(
      async (opts: { quick: boolean; jsPath: boolean; out?: string; chart: boolean; json: boolean }) => {
        // The bench and its peers are development tools: they live in the repository, not in the package.
        const runUrl = new URL("../../bench/run.js", import.meta.url);
        if (!existsSync(fileURLToPath(runUrl))) {
          process.stderr.write(
            "htab bench: the benchmarks are not part of the installed package. Clone the repository to run them:\n" +
              "in a clone of this package's source repository, run `npm install && npm run bench`\n" +
              "(its README's Set-up section; `npm run bench -- --quick` takes under a minute).\n",
          );
          process.exitCode = 1;
          return;
        }
        const mod = (await import(runUrl.href)) as { runBench(argv: string[]): Promise<unknown> };
        const argv = [
          ...(opts.quick ? ["--quick"] : []),
          ...(opts.jsPath ? ["--js-path"] : []),
          ...(opts.out ? ["--out", opts.out] : []),
          ...(opts.chart ? [] : ["--no-chart"]),
          ...(opts.json ? ["--json"] : []),
        ];
        await mod.runBench(argv);
      },
    ),
  "npm run bench -- --quick --out /tmp/bench      # from a clone of the repository",
);

const prog = program.command("prog").description("BPF programs on htab (the userspace BPF runtime)");
examples(
  prog
    .command("exec")
    .description(
      "the BPF conformance suite's plugin: program as base16 bytes on stdin, MEMORY at r1 (length in r2); prints r0 in hex",
    )
    .argument("[memory]", "base16 bytes, whitespace-separated, copied into the region r1 points to")
    .option("--elf", "standard input is an ELF object, not raw instructions", false)
    .action(async (memory: string | undefined, opts: { elf: boolean }) => {
      const { progExec } = await import("./prog-cmd.js");
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      const r = progExec(memory, opts, Buffer.concat(chunks).toString("utf8"));
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.code;
    }),
  "echo 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00' | htab prog exec         # prints 2a",
  "bpf_conformance_runner --test_file_directory tests --cpu_version v4 --plugin_path htab --plugin_options 'prog exec'",
);

/** -j/-p given before the command (`htab -j prog run …`) or after it. */
function jsonWanted(opts: { json?: boolean; pretty?: boolean }): { json: boolean; pretty: boolean } {
  const top = program.opts();
  const pretty = opts.pretty === true || top.pretty === true;
  return { json: opts.json === true || top.json === true || pretty, pretty };
}

const readArgFile = (path: string) => new Uint8Array(readFileSync(path === "-" ? 0 : path));

examples(
  prog
    .command("run")
    .description(
      "bpftool prog run on a clang-built BPF object, loaded on htab's maps (sab) or in the kernel; bpftool's output (plain or -j)",
    )
    .argument(
      "<args...>",
      "OBJECT [program NAME] data_in FILE [data_out FILE] [ctx_in FILE] [ctx_out FILE] [repeat N]; FILE - is stdin/stdout; keywords by any prefix, as bpftool",
    )
    .addOption(
      new Option("--backend <name>", "where the object runs").choices(["sab", "kernel"]).default("sab"),
    )
    .option("-j, --json", "JSON output, as bpftool -j", false)
    .option("-p, --pretty", "pretty JSON output, as bpftool -p (implies -j)", false)
    .action(async (args: string[], opts: { backend: BackendName; json: boolean; pretty: boolean }) => {
      const { progRun } = await import("./prog-cmd.js");
      const { writeFileSync } = await import("node:fs");
      const { prettyJson } = await import("./map-cmd.js");
      const j = jsonWanted(opts);
      const r = progRun(
        args,
        { json: j.json, backend: opts.backend },
        { read: readArgFile, write: (path, bytes) => writeFileSync(path, bytes) },
      );
      process.stdout.write(j.pretty ? `${prettyJson(r.stdout.trimEnd())}\n` : r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.code;
    }),
  "htab prog run xdp_prog.o data_in packet.bin repeat 1000                # Return value: 2, duration (average): 148ns",
  "htab -j prog run xdp_prog.o program ct data_in packet.bin --backend kernel",
);

examples(
  prog
    .command("show")
    .description("the programs and maps of a clang-built BPF object, numbered as `htab replay` loads them")
    .argument("<object>", "the object file (clang -O2 -g -target bpf -c)")
    .option("-j, --json", "JSON output", false)
    .option("-p, --pretty", "pretty JSON output (implies -j)", false)
    .action(async (object: string, opts: { json: boolean; pretty: boolean }) => {
      const { progShow } = await import("./prog-cmd.js");
      const { prettyJson } = await import("./map-cmd.js");
      const j = jsonWanted(opts);
      const r = progShow([object], { json: j.json }, readArgFile);
      process.stdout.write(j.pretty && r.stdout !== "" ? `${prettyJson(r.stdout.trimEnd())}\n` : r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.code;
    }),
  "htab prog show xdp_prog.o",
  "htab prog show xdp_prog.o -j",
);

examples(
  program
    .command("map")
    .description("bpftool's map commands on kernel maps, with bpftool's output (plain or -j JSON)")
    .argument(
      "[args...]",
      "show [MAP] | dump MAP | lookup MAP key BYTES | getnext MAP [key BYTES] | update MAP key BYTES value BYTES [any|exist|noexist] | delete MAP key BYTES | pin MAP PATH | freeze MAP; MAP := id N | pinned PATH | name NAME; keywords by any prefix, as bpftool",
    )
    .option("-j, --json", "JSON output, as bpftool -j", false)
    .option("-p, --pretty", "pretty JSON output, as bpftool -p (implies -j)", false)
    .action(async (args: string[] | undefined, opts: { json: boolean; pretty: boolean }) => {
      const { mapCommand } = await import("./map-cmd.js");
      const top = program.opts();
      const pretty = opts.pretty || top.pretty === true;
      const r = mapCommand(args ?? [], opts.json || top.json === true || pretty, pretty);
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.code;
    }),
  "htab map show pinned /sys/fs/bpf/test_map",
  "htab map dump id 42 -j",
  "htab map getnext pinned /sys/fs/bpf/test_map key 1 0 0 0",
  "htab map update pinned /sys/fs/bpf/test_map key 1 0 0 0 value hex 2a 00 00 00 00 00 00 00 noexist",
);

/**
 * The conformance suite's runner puts MEMORY before its plugin options:
 * `--plugin_options "prog exec"` calls `htab MEMORY prog exec [--elf]`.
 * Move MEMORY after `prog exec`, where the command takes it.
 */
function conformanceArgv(argv: string[]): string[] {
  const [node, script, first, a, b, ...rest] = argv;
  if (first !== undefined && !first.startsWith("-") && a === "prog" && b === "exec")
    return [node, script, a, b, first, ...rest];
  return argv;
}

program.parseAsync(conformanceArgv(process.argv)).catch((e: Error) => {
  process.stderr.write(`htab: ${e.message}\n`);
  process.exitCode = 2;
});
