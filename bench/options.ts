/** `npm run bench` options: parsed once, passed to every workload as one object. */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface BenchOptions {
  /** Run htab on its JS path (no wasm): the before/after of the fast path. */
  jsPath: boolean;
  /** 1k entries only, short samples: the test suite's run. */
  quick: boolean;
  /** Directory for the report (JSON, Markdown, chart). */
  out: string;
  chart: boolean;
  /** The report as JSON on stdout; everything else goes to stderr. */
  json: boolean;
  /**
   * A subset of the bench (`--only lookup`: the point lookup rows; `--only lru`:
   * the LRU rows; `--only mix`: the 1- and 2-worker read-heavy mix), at the usual sizes, for a short measurement; null: everything.
   * Such a run never writes latest.*.
   */
  only: BenchSubset | null;
}

/** The subsets `--only` accepts. */
export const BENCH_SUBSETS = ["lookup", "lru", "mix"] as const;
export type BenchSubset = (typeof BENCH_SUBSETS)[number];

export function defaultOptions(): BenchOptions {
  const here = dirname(fileURLToPath(import.meta.url));
  return {
    jsPath: false,
    quick: false,
    out: join(here, "..", "..", "bench", "results"),
    chart: true,
    json: false,
    only: null,
  };
}

export function parseBenchArgs(argv: string[]): BenchOptions {
  const o = defaultOptions();
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--quick") o.quick = true;
    else if (argv[i] === "--js-path") o.jsPath = true;
    else if (argv[i] === "--out") o.out = argv[++i];
    else if (argv[i] === "--no-chart") o.chart = false;
    else if (argv[i] === "--json") o.json = true;
    else if (argv[i] === "--only") o.only = parseSubset(argv[++i]);
    else
      throw new Error(
        `bench: unknown argument ${argv[i]} (use --quick, --js-path, --out DIR, --no-chart, --json, --only lookup|lru|mix)`,
      );
  }
  return o;
}

/** The word after `--only`. */
function parseSubset(w: string | undefined): BenchSubset {
  if (w === undefined || !(BENCH_SUBSETS as readonly string[]).includes(w))
    throw new Error(`bench: --only ${w ?? "(nothing)"}: use one of ${BENCH_SUBSETS.join(", ")}`);
  return w as BenchSubset;
}
