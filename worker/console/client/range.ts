/** A From/To date range form (YYYY-MM-DD, UTC days), this month by default. */
import { field, h } from "./dom";
import { monthStart, today } from "./format";

export interface RangeForm {
  el: HTMLFormElement;
  value(): { from: string; to: string };
}

export function rangeForm(onSubmit: (from: string, to: string) => void, submitLabel = "Show"): RangeForm {
  const from = h("input", { type: "date", value: monthStart(), required: true });
  const to = h("input", { type: "date", value: today(), required: true });
  const el = h(
    "form",
    { class: "range" },
    field("From", from),
    field("To", to),
    h("button", { type: "submit" }, submitLabel),
  );
  const value = () => ({ from: from.value, to: to.value });
  el.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = value();
    onSubmit(v.from, v.to);
  });
  return { el, value };
}

/** Sums `value` per (label, series) cell: the matrix a stacked bar chart needs. */
export function pivot<R>(
  rows: R[],
  labels: string[],
  labelOf: (r: R) => string,
  seriesOf: (r: R) => string,
  value: (r: R) => number,
) {
  const names = [...new Set(rows.map(seriesOf))].sort();
  const index = new Map(labels.map((l, i) => [l, i]));
  const series = names.map((label) => ({ label, data: labels.map(() => 0) }));
  for (const r of rows) {
    const i = index.get(labelOf(r));
    const s = series[names.indexOf(seriesOf(r))];
    if (i !== undefined && s) s.data[i] += value(r);
  }
  return series;
}
