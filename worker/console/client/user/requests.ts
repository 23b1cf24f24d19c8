/** Recent requests: the caller's own last 100 ledger records (GET /v1/usage/requests). */
import type { Api } from "../api";
import { button, h, replace } from "../dom";
import { notice } from "../notice";
import { heading, type Section } from "../shell";
import { requestColumns } from "../ledger-columns";
import { dataTable } from "../table";
import type { UsageRequests } from "../types";

export function requestsSection(api: Api, onAuthError: (e: unknown) => void): Section {
  const body = h("div");
  const n = notice(body);
  const load = () => {
    n.loading();
    api.get<UsageRequests>("/v1/usage/requests?limit=100").then(
      (list) => {
        replace(body, dataTable("Recent requests", requestColumns, list.data, "No requests yet."));
        n.clear();
      },
      (err: unknown) => {
        n.error(err);
        onAuthError(err);
      },
    );
  };
  const el = h(
    "section",
    {},
    heading("Recent requests"),
    h("p", { class: "toolbar" }, "Your last 100 requests, newest first. ", button("Refresh", load)),
    n.el,
    body,
  );
  return { id: "requests", label: "Requests", el, show: load };
}
