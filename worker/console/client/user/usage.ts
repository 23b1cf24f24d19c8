/** Usage: cost and tokens per day stacked by model, for a range, plus the same rows as a table and CSV. */
import type { Chart } from "chart.js";
import type { Api } from "../api";
import { chartBox, stackedBars } from "../charts";
import { download, toCsv } from "../csv";
import { button, h, replace } from "../dom";
import { daysBetween, eur, eurDecimal, eurExact, int } from "../format";
import { notice } from "../notice";
import { pivot, rangeForm } from "../range";
import { heading, type Section } from "../shell";
import { dataTable } from "../table";
import type { UsageDay, UsageDays } from "../types";

export function usageSection(api: Api, onAuthError: (e: unknown) => void): Section {
  const body = h("div", { class: "stack" });
  const n = notice(body);
  let charts: Chart[] = [];
  let rows: UsageDay[] = [];
  let range = { from: "", to: "" };

  const csv = button("Download CSV", () => {
    const header = [
      "date",
      "tier",
      "requests",
      "prompt_tokens",
      "cached_tokens",
      "completion_tokens",
      "cost_eur",
      "batch_requests",
      "batch_cost_eur",
    ];
    const lines = rows.map((r) => [
      r.date,
      r.tier,
      r.requests,
      r.prompt_tokens,
      r.cached_tokens,
      r.completion_tokens,
      eurDecimal(r.cost_micros),
      r.batch_requests,
      eurDecimal(r.batch_cost_micros),
    ]);
    download(`usage-${range.from}-to-${range.to}.csv`, toCsv(header, lines));
  });

  const render = () => {
    for (const c of charts) c.destroy();
    const days = daysBetween(range.from, range.to);
    const cost = chartBox("Cost per day, stacked by model. The Usage table below has the same numbers.");
    const tokens = chartBox("Tokens per day, stacked by model. The Usage table below has the same numbers.");
    const table = dataTable(
      "Usage",
      [
        { label: "Date", value: (r) => r.date },
        { label: "Model", value: (r) => r.tier },
        { label: "Requests", value: (r) => int(r.requests), numeric: true },
        { label: "Prompt", value: (r) => int(r.prompt_tokens), numeric: true },
        { label: "Cached", value: (r) => int(r.cached_tokens), numeric: true },
        { label: "Completion", value: (r) => int(r.completion_tokens), numeric: true },
        { label: "Cost", value: (r) => eurExact(r.cost_micros), numeric: true },
        // Batch lines (half price) are part of the totals; interactive spend is the rest.
        {
          label: "Interactive cost",
          value: (r) => eurExact(r.cost_micros - r.batch_cost_micros),
          numeric: true,
        },
        { label: "Batch requests", value: (r) => int(r.batch_requests), numeric: true },
        { label: "Batch cost", value: (r) => eurExact(r.batch_cost_micros), numeric: true },
      ],
      rows,
      "No usage in this range.",
    );
    csv.disabled = rows.length === 0;
    replace(
      body,
      h(
        "div",
        { class: "charts" },
        h("figure", {}, h("figcaption", {}, "Cost per day"), cost.box),
        h("figure", {}, h("figcaption", {}, "Tokens per day"), tokens.box),
      ),
      h("p", { class: "toolbar" }, csv),
      table,
    );
    const label = (r: UsageDay) => r.date;
    const tier = (r: UsageDay) => r.tier;
    charts = [
      stackedBars(
        cost.canvas,
        days,
        pivot(rows, days, label, tier, (r) => r.cost_micros),
        "cost (€)",
        eur,
      ),
      stackedBars(
        tokens.canvas,
        days,
        pivot(rows, days, label, tier, (r) => r.prompt_tokens + r.completion_tokens),
        "tokens",
        int,
      ),
    ];
  };

  const load = (from: string, to: string) => {
    range = { from, to };
    n.loading();
    api.get<UsageDays>(`/v1/usage?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`).then(
      (list) => {
        rows = list.data;
        render();
        n.clear();
      },
      (err: unknown) => {
        n.error(err);
        onAuthError(err);
      },
    );
  };
  const form = rangeForm(load);
  const el = h("section", {}, heading("Usage"), form.el, n.el, body);
  return {
    id: "usage",
    label: "Usage",
    el,
    show() {
      const v = form.value();
      load(v.from, v.to);
    },
  };
}
