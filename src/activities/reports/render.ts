/**
 * Fan-in of partial aggregates into report rows, and the three renderings: CSV, JSON and a
 * self-contained HTML page (inline CSS and SVG chart, nothing fetched).
 */
import type { GroupBy, Measure, MissingPartition, PartialGroup, ReportRow } from '../../shared/report';
import { columnGroups } from '../../data/queries';

/** Partials of one month (or one shard of it). */
export interface MonthPartials {
  month: string;
  groups: PartialGroup[];
}

/** Merges partials into rows: groups keyed by the group-by columns, measures computed from exact cents. */
export function mergePartials(
  parts: readonly MonthPartials[],
  groupBy: readonly GroupBy[],
  measures: readonly Measure[],
): ReportRow[] {
  const cols = columnGroups(groupBy);
  const acc = new Map<
    string,
    { values: Record<string, string>; count: number; sum: number; min: number; max: number }
  >();
  for (const part of parts) {
    for (const g of part.groups) {
      const values: Record<string, string> = {};
      for (const name of groupBy) values[name] = name === 'month' ? part.month : (g.key[cols.indexOf(name)] ?? '');
      const id = JSON.stringify(groupBy.map((n) => values[n]));
      const cur = acc.get(id);
      if (!cur) acc.set(id, { values, count: g.count, sum: g.sumCents, min: g.minCents, max: g.maxCents });
      else {
        cur.count += g.count;
        cur.sum += g.sumCents;
        cur.min = Math.min(cur.min, g.minCents);
        cur.max = Math.max(cur.max, g.maxCents);
      }
    }
  }
  const cents = (c: number) => Math.round(c) / 100;
  const rows = [...acc.values()].map((a) => {
    const row: ReportRow = { ...a.values };
    for (const m of measures) {
      row[m] =
        m === 'orders'
          ? a.count
          : m === 'revenue'
            ? cents(a.sum)
            : m === 'avg_amount'
              ? cents(a.sum / a.count)
              : m === 'min_amount'
                ? cents(a.min)
                : cents(a.max);
    }
    return row;
  });
  rows.sort((x, y) => {
    for (const g of groupBy) {
      const c = String(x[g]).localeCompare(String(y[g]), 'en');
      if (c !== 0) return c;
    }
    return 0;
  });
  return rows;
}

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV with a header row: group-by columns, then measures. */
export function renderCsv(rows: readonly ReportRow[], columns: readonly string[]): string {
  return [columns.join(','), ...rows.map((r) => columns.map((c) => csvCell(r[c] ?? '')).join(','))].join('\n') + '\n';
}

const esc = (s: string | number) =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

/** A self-contained HTML page: summary, an inline SVG bar chart of the first measure, and the table. */
export function renderHtml(opts: {
  title: string;
  rows: readonly ReportRow[];
  groupBy: readonly GroupBy[];
  measures: readonly Measure[];
  used: readonly string[];
  missing: readonly MissingPartition[];
}): string {
  const { rows, groupBy, measures } = opts;
  const measure = measures[0] as Measure;
  const chartRows = rows.slice(0, 40);
  const label = (r: ReportRow) => (groupBy.length ? groupBy.map((g) => r[g]).join(' · ') : 'all');
  const max = Math.max(1, ...chartRows.map((r) => Number(r[measure]) || 0));
  const barH = 18;
  const width = 760;
  const labelW = 220;
  const height = chartRows.length * (barH + 6) + 30;
  const bars = chartRows
    .map((r, i) => {
      const v = Number(r[measure]) || 0;
      const w = Math.max(1, Math.round(((width - labelW - 90) * v) / max));
      const y = 20 + i * (barH + 6);
      return (
        `<text x="${labelW - 8}" y="${y + 13}" text-anchor="end">${esc(label(r))}</text>` +
        `<rect x="${labelW}" y="${y}" width="${w}" height="${barH}" fill="#3b6fd8"><title>${esc(label(r))}: ${esc(v)}</title></rect>` +
        `<text x="${labelW + w + 6}" y="${y + 13}">${esc(v)}</text>`
      );
    })
    .join('\n');
  const columns = [...groupBy, ...measures];
  const table =
    `<table><thead><tr>${columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${columns.map((c) => `<td>${esc(r[c] ?? '')}</td>`).join('')}</tr>`).join('\n') +
    '</tbody></table>';
  const missing = opts.missing.length
    ? `<p class="missing">Missing partitions: ${opts.missing.map((m) => `${esc(m.month)} (${esc(m.reason)})`).join(', ')}</p>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(opts.title)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#1d2330}
table{border-collapse:collapse;margin-top:16px}th,td{border:1px solid #ccd;padding:4px 8px;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}svg text{font:12px system-ui,sans-serif}
.missing{color:#a33}
</style></head><body>
<h1>${esc(opts.title)}</h1>
<p>Partitions used: ${esc(opts.used.join(', ') || 'none')}</p>
${missing}
<svg width="${width}" height="${height}" role="img" aria-label="${esc(measure)} by ${esc(groupBy.join(', ') || 'all')}">
<text x="0" y="12" font-weight="bold">${esc(measure)}${chartRows.length < rows.length ? ` (first ${chartRows.length} of ${rows.length})` : ''}</text>
${bars}
</svg>
${table}
</body></html>
`;
}
