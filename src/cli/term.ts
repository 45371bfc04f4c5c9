/**
 * Terminal output for the CLI: compact tables and a live progress line.
 *
 * Tables: no index column, no quotes, numbers right-aligned with thousands
 * separators, headers wrapped onto two lines where that saves width, and the
 * whole table kept within `width` columns (100 by default).
 *
 * Progress: on a TTY one line redrawn in place; its fields are shortened
 * (labels dropped, then whole fields) to fit the terminal rather than cut
 * mid-number. Off a TTY (a pipe, a CI log) it prints a plain line every few
 * seconds and never a control character.
 */

/** A table cell: numbers are right-aligned and formatted; strings are left-aligned. */
export type Cell = string | number;

/** A column: its header (split on "\n" into header lines) and how to read a row. */
export interface Column<R> {
  header: string;
  value: (row: R) => Cell;
  /** Digits after the decimal point for numbers. @default 0 */
  digits?: number;
}

const fmtCache = new Map<number, Intl.NumberFormat>();
/** `n` with thousands separators and `digits` decimals (en-US, so output is the same everywhere). */
export function fmtNumber(n: number, digits = 0): string {
  let f = fmtCache.get(digits);
  if (f === undefined) {
    f = new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    fmtCache.set(digits, f);
  }
  return Number.isFinite(n) ? f.format(n) : String(n);
}

/** Render `rows` as a table no wider than `width` columns (the last string column is cut if it must be). */
export function renderTable<R>(rows: R[], columns: Column<R>[], width = 100): string {
  const cells = rows.map((r) =>
    columns.map((c) => {
      const v = c.value(r);
      return typeof v === "number" ? fmtNumber(v, c.digits ?? 0) : v;
    }),
  );
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => typeof c.value(r) === "number"));
  const heads = columns.map((c) => c.header.split("\n"));
  const headLines = Math.max(...heads.map((h) => h.length));
  const w = columns.map((_, i) =>
    Math.max(...heads[i].map((h) => h.length), ...cells.map((row) => row[i].length)),
  );
  // Over the limit: shrink the widest left-aligned (text) column, cutting its cells with an ellipsis.
  const gap = 2;
  const total = () => w.reduce((a, b) => a + b, 0) + gap * (w.length - 1);
  while (total() > width) {
    let widest = -1;
    for (let i = 0; i < w.length; i++) if (!numeric[i] && (widest < 0 || w[i] > w[widest])) widest = i;
    if (widest < 0 || w[widest] <= 8) break;
    w[widest] -= total() - width;
    w[widest] = Math.max(8, w[widest]);
  }
  const fit = (s: string, i: number) => {
    const t = s.length > w[i] ? `${s.slice(0, w[i] - 1)}…` : s;
    return numeric[i] ? t.padStart(w[i]) : t.padEnd(w[i]);
  };
  const line = (parts: string[]) => parts.join(" ".repeat(gap)).trimEnd();
  const out: string[] = [];
  for (let l = 0; l < headLines; l++)
    out.push(line(heads.map((h, i) => fit(h[l - (headLines - h.length)] ?? "", i))));
  out.push(line(w.map((n) => "─".repeat(n))));
  for (const row of cells) out.push(line(row.map((c, i) => fit(c, i))));
  return out.join("\n");
}

/** One field of the progress line: `label value`, where the label may be dropped to save room. */
export interface Field {
  label: string;
  value: string;
}

/**
 * A progress line. `update()` as often as you like: a TTY redraws at most
 * every 100 ms; elsewhere a plain line is printed every `plainEveryMs`
 * (never, when 0).
 */
export class Progress {
  private lastDraw = 0;
  private drawn = false;
  private readonly tty: boolean;

  constructor(
    private readonly title: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly plainEveryMs = 5000,
  ) {
    this.tty = out.isTTY === true;
  }

  /** Fit `fields` into `columns` (title, a percentage, then the fields). Exported for tests. */
  static layout(title: string, fraction: number, fields: Field[], columns: number): string {
    const pct = `${Math.floor(Math.min(1, Math.max(0, fraction)) * 100)}%`.padStart(4);
    const withLabels = (fs: Field[], labels: boolean) =>
      [title, pct, ...fs.map((f) => (labels && f.label ? `${f.label} ${f.value}` : f.value))].join("  ");
    let fs = fields;
    for (;;) {
      const full = withLabels(fs, true);
      if (full.length <= columns) return full;
      const bare = withLabels(fs, false);
      if (bare.length <= columns || fs.length === 0)
        return bare.length <= columns ? bare : bare.slice(0, columns);
      fs = fs.slice(0, -1); // drop the last whole field, never part of a number
    }
  }

  update(fraction: number, fields: Field[]): void {
    const now = performance.now();
    if (this.tty) {
      if (now - this.lastDraw < 100 && fraction < 1) return;
      const cols = Math.max(20, (this.out.columns ?? 100) - 1);
      this.out.write(`\r${Progress.layout(this.title, fraction, fields, cols)}\x1b[K`);
      this.drawn = true;
    } else {
      if (this.plainEveryMs === 0 || (this.lastDraw !== 0 && now - this.lastDraw < this.plainEveryMs)) return;
      // A file or a pipe has no width: every field keeps its label.
      this.out.write(`${Progress.layout(this.title, fraction, fields, Number.POSITIVE_INFINITY)}\n`);
    }
    this.lastDraw = now;
  }

  /** End the line (a TTY keeps the last state visible). */
  stop(): void {
    if (this.tty && this.drawn) this.out.write("\n");
  }
}
