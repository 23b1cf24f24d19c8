/** Overview: the plan, this month's spend against the budget, what remains and when it resets. */
import type { Api } from "../api";
import { h, replace } from "../dom";
import { eur, int, longDate } from "../format";
import { idChip } from "../ids";
import { notice } from "../notice";
import { heading, type Section } from "../shell";
import type { KeyStatus } from "../types";

export function overviewSection(api: Api, first: KeyStatus, onAuthError: (e: unknown) => void): Section {
  const body = h("div", { class: "overview" });
  const n = notice(body);
  const el = h("section", { "aria-labelledby": "overview-h" }, heading("Overview"), n.el, body);
  el.querySelector("h2")!.id = "overview-h";
  let info = first;
  const render = () => replace(body, planCard(info), budgetCard(info));
  render();
  let fresh = true; // `first` was read just now, at sign-in
  return {
    id: "overview",
    label: "Overview",
    el,
    show() {
      if (fresh) return void (fresh = false);
      n.loading("Refreshing…");
      api.get<KeyStatus>("/v1/key").then(
        (k) => {
          info = k;
          render();
          n.clear();
        },
        (err: unknown) => {
          n.error(err);
          onAuthError(err);
        },
      );
    },
  };
}

const pair = (term: string, value: string | Node) => [h("dt", {}, term), h("dd", {}, value)];

function planCard(k: KeyStatus): HTMLElement {
  return h(
    "div",
    { class: "card" },
    h("h3", {}, "Plan"),
    h(
      "dl",
      { class: "pairs" },
      ...pair("Key", h("span", {}, `${k.name} `, idChip(k.id))),
      ...pair("Models", k.tiers.join(", ")),
      ...pair("Requests per minute", int(k.rpm)),
      ...pair("Tokens per minute", int(k.tpm)),
      ...pair("Monthly budget", eur(k.monthly_budget_micros)),
    ),
  );
}

function budgetCard(k: KeyStatus): HTMLElement {
  const budget = k.monthly_budget_micros;
  const used = k.spent_micros;
  const pct = budget > 0 ? Math.min(100, (used / budget) * 100) : 100;
  const bar = h("progress", {
    max: Math.max(budget, 1),
    value: Math.min(used, Math.max(budget, 1)),
    "aria-label": "Budget used this month",
  });
  bar.classList.toggle("warn", pct >= 80 || k.budget_state === "low");
  bar.classList.toggle("spent", k.budget_state === "spent");
  return h(
    "div",
    { class: "card" },
    h("h3", {}, "This month"),
    stateLine(k),
    bar,
    h(
      "p",
      { class: "big" },
      `${eur(k.spent_micros)} spent of ${eur(budget)} (${pct > 0 && pct < 0.01 ? "under 0.01" : pct.toFixed(pct < 1 ? 2 : 0)}%)`,
    ),
    h(
      "dl",
      { class: "pairs" },
      ...pair("Remaining", eur(k.remaining_micros)),
      ...pair("Held by requests in flight", eur(k.reserved_micros)),
      ...pair("Period", `${longDate(k.period_start)} to ${longDate(k.period_end)} (UTC)`),
      ...pair("Budget resets on", longDate(k.period_end)),
    ),
    advice(k),
  );
}

/** The budget's state as the API decides it (GET /v1/key budget_state: the same rule as its refusals). */
function stateLine(k: KeyStatus): HTMLElement {
  const label = { ok: "Within budget", low: "Budget almost spent", spent: "Budget spent" }[k.budget_state];
  return h("p", { class: `budget-state ${k.budget_state}`, "data-state": k.budget_state }, label);
}

/** What the state means and what to do about it. */
function advice(k: KeyStatus): HTMLElement | null {
  const resets = longDate(k.period_end);
  if (k.budget_state === "spent")
    return h(
      "p",
      { class: "error", role: "alert" },
      `The budget is spent: every metered request is refused (insufficient_quota) until it resets on ${resets} (UTC). ` +
        "To continue before then, ask your operator to raise this key's monthly budget.",
    );
  if (k.budget_state === "low")
    return h(
      "p",
      { class: "warning", role: "status" },
      `Only ${eur(k.remaining_micros)} remains: a request reserves its prompt and up to its first 64 completion tokens before it starts, ` +
        "so requests without a small max_tokens are refused (the error says what fits). " +
        `Lower max_tokens, or ask your operator to raise the budget; it resets on ${resets} (UTC).`,
    );
  return null;
}
