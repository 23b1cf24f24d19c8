/** The plan fields of a key (create and edit): name, models, rpm, tpm and the monthly budget in €. */
import { field, h, uid } from "../dom";
import type { ApiKey } from "../types";

export interface PlanInput {
  name: string;
  tiers: string[];
  rpm: number;
  tpm: number;
  monthly_budget_micros: number;
}

export interface PlanFields {
  el: HTMLDivElement;
  /** The plan, or a sentence saying what is wrong. */
  read(): PlanInput | string;
}

export function planFields(tiers: string[], initial?: ApiKey): PlanFields {
  const name = h("input", { type: "text", maxlength: 200, required: true, value: initial?.name ?? "" });
  const boxes = tiers.map((t) =>
    h("input", {
      type: "checkbox",
      value: t,
      id: uid("tier"),
      checked: initial ? initial.tiers.includes(t) : !t.includes("embed"),
    }),
  );
  const models = h(
    "fieldset",
    { class: "tiers" },
    h("legend", {}, "Models"),
    ...boxes.map((b) => h("label", { for: b.id, class: "check" }, b, ` ${b.value}`)),
  );
  const rpm = h("input", { type: "number", min: 1, step: 1, required: true, value: initial?.rpm ?? 60 });
  const tpm = h("input", { type: "number", min: 1, step: 1, required: true, value: initial?.tpm ?? 100_000 });
  const budget = h("input", {
    type: "number",
    min: 0,
    step: 0.01,
    required: true,
    value: (initial?.monthly_budget_micros ?? 10_000_000) / 1e6,
  });
  const el = h(
    "div",
    { class: "plan-fields" },
    field("Name", name),
    models,
    h(
      "div",
      { class: "row" },
      field("Requests per minute", rpm),
      field("Tokens per minute", tpm),
      field("Monthly budget (€)", budget),
    ),
  );
  return {
    el,
    read() {
      const picked = boxes.filter((b) => b.checked).map((b) => b.value);
      const whole = (v: number) => Number.isInteger(v) && v >= 1;
      if (!name.value.trim()) return "Give the key a name.";
      if (!picked.length) return "Pick at least one model.";
      if (!whole(rpm.valueAsNumber) || !whole(tpm.valueAsNumber))
        return "Requests and tokens per minute must be whole numbers from 1.";
      if (!Number.isFinite(budget.valueAsNumber) || budget.valueAsNumber < 0)
        return "The monthly budget must be 0 or more.";
      return {
        name: name.value.trim(),
        tiers: picked,
        rpm: rpm.valueAsNumber,
        tpm: tpm.valueAsNumber,
        monthly_budget_micros: Math.round(budget.valueAsNumber * 1e6),
      };
    },
  };
}
