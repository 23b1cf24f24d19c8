/** Spend per key and model over a range (chart + table), and the top keys this month. */
import type { Chart } from "chart.js";
import type { Api } from "../api";
import { chartBox, stackedBars } from "../charts";
import { h, replace } from "../dom";
import { eur, eurExact, int, monthStart } from "../format";
import { notice } from "../notice";
import { pivot, rangeForm } from "../range";
import { heading, type Section } from "../shell";
import { dataTable } from "../table";
import type { AdminUsageDay, AdminUsageDays, ApiKeyList } from "../types";

interface Agg {
  key_id: string;
  tier: string;
  requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_micros: number;
}

/** Sums day rows per (key, tier); cost_micros are per-day roundings, so sums can drift by a micro-euro per row. */
function aggregate(rows: AdminUsageDay[], byTier: boolean): Agg[] {
  const m = new Map<string, Agg>();
  for (const r of rows) {
    const key = `${r.key_id}\u0000${byTier ? r.tier : ""}`;
    const a = m.get(key) ?? {
      key_id: r.key_id,
      tier: byTier ? r.tier : "",
      requests: 0,
      prompt_tokens: 0,
      cached_tokens: 0,
      completion_tokens: 0,
      cost_micros: 0,
    };
    a.requests += r.requests;
    a.prompt_tokens += r.prompt_tokens;
    a.cached_tokens += r.cached_tokens;
    a.completion_tokens += r.completion_tokens;
    a.cost_micros += r.cost_micros;
    m.set(key, a);
  }
  return [...m.values()];
}

export function spendSection(api: Api): Section {
  const body = h("div", { class: "stack" });
  const n = notice(body);
  let chart: Chart | null = null;

  const load = (from: string, to: string) => {
    n.loading();
    const q = (f: string, t?: string) =>
      `/v1/admin/usage?from=${encodeURIComponent(f)}${t ? `&to=${encodeURIComponent(t)}` : ""}`;
    Promise.all([
      api.get<ApiKeyList>("/v1/admin/keys"),
      api.get<AdminUsageDays>(q(from, to)),
      api.get<AdminUsageDays>(q(monthStart())),
    ]).then(
      ([keys, range, month]) => {
        const names = new Map(keys.data.map((k) => [k.id, k.name]));
        const who = (id: string) => `${names.get(id) ?? "?"} (${id})`;
        const perKeyTier = aggregate(range.data, true).sort((a, b) => b.cost_micros - a.cost_micros);
        const top = aggregate(month.data, false)
          .sort((a, b) => b.cost_micros - a.cost_micros)
          .slice(0, 10);
        chart?.destroy();
        const box = chartBox("Cost per key over the range, stacked by model. The table below has the same numbers.");
        const keyLabels = [...new Set(perKeyTier.map((a) => a.key_id))];
        replace(
          body,
          h("figure", {}, h("figcaption", {}, `Cost per key, ${from} to ${to}`), box.box),
          dataTable(
            "Spend per key and model",
            [
              { label: "Key", value: (a) => who(a.key_id) },
              { label: "Model", value: (a) => a.tier },
              { label: "Requests", value: (a) => int(a.requests), numeric: true },
              { label: "Prompt", value: (a) => int(a.prompt_tokens), numeric: true },
              { label: "Cached", value: (a) => int(a.cached_tokens), numeric: true },
              { label: "Completion", value: (a) => int(a.completion_tokens), numeric: true },
              { label: "Cost", value: (a) => eurExact(a.cost_micros), numeric: true },
            ],
            perKeyTier,
            "No spend in this range.",
          ),
          dataTable(
            "Top keys this month",
            [
              { label: "Key", value: (a) => who(a.key_id) },
              { label: "Requests", value: (a) => int(a.requests), numeric: true },
              { label: "Tokens", value: (a) => int(a.prompt_tokens + a.completion_tokens), numeric: true },
              { label: "Cost", value: (a) => eurExact(a.cost_micros), numeric: true },
            ],
            top,
            "No spend this month.",
          ),
        );
        // Names need not be unique: the end of the id tells two "acme" keys apart on the axis.
        const labels = keyLabels.map((id) => `${names.get(id) ?? "?"} …${id.slice(-4)}`);
        const byId = new Map(keyLabels.map((id, i) => [id, labels[i]]));
        chart = stackedBars(
          box.canvas,
          labels,
          pivot(
            perKeyTier,
            labels,
            (a) => byId.get(a.key_id) ?? a.key_id,
            (a) => a.tier,
            (a) => a.cost_micros,
          ),
          "cost (€)",
          eur,
        );
        n.clear();
      },
      (err: unknown) => n.error(err),
    );
  };
  const form = rangeForm(load);
  const el = h("section", {}, heading("Spend"), form.el, n.el, body);
  return {
    id: "spend",
    label: "Spend",
    el,
    show() {
      const v = form.value();
      load(v.from, v.to);
    },
  };
}
