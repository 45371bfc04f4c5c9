#!/usr/bin/env node
/** The `htab` command line. */

import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { Command, Option } from "commander";
import { type BackendName, factoryFor } from "./backends.js";
import { Replayer } from "./replay.js";

const program = new Command();
program.name("htab").description("BPF hash maps in a SharedArrayBuffer, with a real-kernel backend");

program
  .command("replay")
  .description("run a JSON-lines script of map operations and print one JSON result per line")
  .argument("[file]", "script file (default: standard input)")
  .addOption(new Option("--backend <name>", "where the maps live").choices(["sab", "kernel"]).default("sab"))
  .action(async (file: string | undefined, opts: { backend: BackendName }) => {
    const replayer = new Replayer(factoryFor(opts.backend));
    const input = file && file !== "-" ? createReadStream(file) : process.stdin;
    const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of rl) {
      if (line.trim() === "") continue;
      process.stdout.write(`${JSON.stringify(replayer.run(line))}\n`);
    }
    replayer.close();
  });

program
  .command("demo")
  .description("several workers hammer one map with a conntrack-like mix; prints ops/s and the history check")
  .option("--workers <n>", "worker threads", "2")
  .option("--seconds <s>", "how long the run lasts", "3")
  .option("--keys <n>", "key space (flows)", "4096")
  .action(async (opts: { workers: string; seconds: string; keys: string }) => {
    const { runDemo } = await import("./demo.js");
    const ok = await runDemo({
      workers: Number(opts.workers),
      seconds: Number(opts.seconds),
      keys: Number(opts.keys),
    });
    process.exitCode = ok ? 0 : 1;
  });

program
  .command("snapshot")
  .description("map-in-map snapshots: a plain walk of a live map versus swap + synchronize, under writers")
  .option("--seconds <s>", "seconds per mode", "2")
  .option("--writers <n>", "writer workers", "2")
  .option("--interval-ms <ms>", "time between snapshots", "2")
  .action(async (opts: { seconds: string; writers: string; intervalMs: string }) => {
    const { runSnapshot } = await import("./snapshot.js");
    const res = await runSnapshot({
      seconds: Number(opts.seconds),
      writers: Number(opts.writers),
      intervalMs: Number(opts.intervalMs),
    });
    const swap = res.find((r) => r.mode !== "plain walk");
    process.exitCode = swap && swap.inconsistent === 0 && swap.counted === swap.written ? 0 : 1;
  });

program
  .command("conntrack")
  .description("the conntrack GC race: delete-by-key versus compareAndDelete on the same traffic")
  .option("--seconds <s>", "seconds per GC mode", "3")
  .option("--workers <n>", "datapath workers (plus one GC worker)", "2")
  .option("--flows <n>", "distinct flows in the traffic", "20000")
  .option("--map-size <n>", "map max_entries", "32768")
  .option("--timeout-ms <ms>", "idle time after which a flow expires", "20")
  .option("--kernel", "put the map in the kernel (control plane through bpf())", false)
  .option("--lru", "make the CT map an LRU_HASH, as Cilium's CT maps are (a full map evicts)", false)
  .action(async (opts: Record<string, string | boolean>) => {
    const { runConntrack } = await import("./conntrack.js");
    await runConntrack({
      seconds: Number(opts.seconds),
      workers: Number(opts.workers),
      flows: Number(opts.flows),
      mapSize: Number(opts.mapSize),
      timeoutMs: Number(opts.timeoutMs),
      kernel: opts.kernel === true,
      lru: opts.lru === true,
    });
  });

program
  .command("bench")
  .description("benchmark htab against V8 Map, the kernel, lmdb-js, message passing and a global-lock map")
  .option("--quick", "a short run (under a minute)", false)
  .option("--js-path", "run every htab map on the JS path (no wasm fast path): the before/after", false)
  .option("--out <dir>", "where to write the JSON and the charts")
  .option("--no-chart", "skip the SVG/PNG chart")
  .action(async (opts: { quick: boolean; jsPath: boolean; out?: string; chart: boolean }) => {
    // The bench tree sits beside src/ (it holds the peers); load it by URL.
    const mod = (await import(new URL("../../bench/run.js", import.meta.url).href)) as {
      runBench(argv: string[]): Promise<unknown>;
    };
    const argv = [
      ...(opts.quick ? ["--quick"] : []),
      ...(opts.jsPath ? ["--js-path"] : []),
      ...(opts.out ? ["--out", opts.out] : []),
      ...(opts.chart ? [] : ["--no-chart"]),
    ];
    await mod.runBench(argv);
  });

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`htab: ${e.message}\n`);
  process.exitCode = 2;
});
