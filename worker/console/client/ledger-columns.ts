/** Columns of a per-request ledger table, shared by the key holder's and the operator's views. */
import { h } from "./dom";
import { idChip } from "./ids";
import { dateTime, eurExact, int } from "./format";
import type { Column } from "./table";
import type { UsageRequest } from "./types";

export const requestColumns: Column<UsageRequest>[] = [
  { label: "Time (UTC)", value: (r) => dateTime(r.started_at) },
  { label: "Model", value: (r) => h("span", { class: "nowrap" }, r.tier) },
  { label: "Prompt", value: (r) => int(r.prompt_tokens), numeric: true },
  { label: "Cached", value: (r) => int(r.cached_tokens), numeric: true },
  { label: "Completion", value: (r) => int(r.completion_tokens), numeric: true },
  { label: "Cost", value: (r) => eurExact(r.cost_micros), numeric: true },
  { label: "Status", value: (r) => h("span", { class: `badge s-${r.status}` }, r.status) },
  { label: "Request id", value: (r) => idChip(r.request_id) },
];
