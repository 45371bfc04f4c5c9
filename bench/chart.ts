/** The report's chart (vega-lite, rendered by src/cli/chart.ts when the optional peers are installed). */
import { renderChart } from "../src/cli/chart.js";
import { type BenchReport, RATIO_WORKLOADS, TIGHT } from "./report.js";

export async function chart(rep: BenchReport, base: string): Promise<string[]> {
  // Each peer's tight-loop figure where it has one, else its harnessed one.
  const shown = RATIO_WORKLOADS;
  const data = rep.points
    .filter((p) => shown.includes(p.workload))
    .map((p) => {
      const tight = rep.points.find(
        (q) => q.workload === `${p.workload}${TIGHT}` && q.entries === p.entries && q.peer === p.peer,
      );
      return {
        workload: p.workload,
        size: `${p.entries} entries`,
        peer: p.peer,
        ns: (tight ?? p).stat.median,
      };
    });
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `htab vs alternatives: median ns per operation (tight loop where measured; log scale), ${rep.machine.model}, Node ${rep.node}`,
    data: { values: data },
    facet: {
      row: { field: "size", type: "nominal", title: null },
      column: { field: "workload", type: "nominal", title: null },
    },
    spec: {
      width: 180,
      height: 160,
      mark: "bar",
      encoding: {
        y: { field: "peer", type: "nominal", title: null, sort: "x" },
        // Log bars need an explicit base: they grow from 1 ns.
        x: {
          field: "ns",
          type: "quantitative",
          scale: { type: "log", domain: [1, 100000] },
          title: "ns/op (log)",
        },
        x2: { datum: 1 },
        color: { field: "peer", type: "nominal", legend: null },
      },
    },
  };
  try {
    const r = await renderChart(spec, base);
    if (r.skipped) rep.skipped.push(`chart: ${r.skipped}`);
    return r.files;
  } catch (e) {
    rep.skipped.push(`chart: ${(e as Error).message}`);
    return [];
  }
}
