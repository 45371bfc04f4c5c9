/**
 * Charts for the CLI and the bench: a Vega-Lite spec rendered to SVG (vega)
 * and PNG (resvg). The three renderers are optional peer dependencies, loaded
 * only when a chart is drawn: without them the caller is told what to
 * install, and the rest of the command's output is unaffected.
 */
import { writeFileSync } from "node:fs";

/** The packages a chart needs, for the message when they are missing. */
export const CHART_PACKAGES = "vega vega-lite @resvg/resvg-js";

/**
 * Render `spec` (Vega-Lite) to `${base}.svg` and `${base}.png`.
 * @returns the files written, or `skipped` saying why none were
 */
export async function renderChart(
  spec: object,
  base: string,
): Promise<{ files: string[]; skipped?: string }> {
  let vl: typeof import("vega-lite");
  let vega: typeof import("vega");
  let Resvg: typeof import("@resvg/resvg-js").Resvg;
  try {
    vl = await import("vega-lite");
    vega = await import("vega");
    ({ Resvg } = await import("@resvg/resvg-js"));
  } catch {
    return { files: [], skipped: `charts need ${CHART_PACKAGES} (npm install ${CHART_PACKAGES})` };
  }
  const compiled = vl.compile({ config: { font: "DejaVu Sans" }, ...spec } as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  writeFileSync(`${base}.svg`, svg);
  const png = new Resvg(svg, { background: "white", font: { loadSystemFonts: true } }).render().asPng();
  writeFileSync(`${base}.png`, png);
  return { files: [`${base}.svg`, `${base}.png`] };
}
