/** One key's recent requests (GET /v1/admin/usage/requests?key_id=). */
import type { Api } from "../api";
import { field, h, replace } from "../dom";
import { requestColumns } from "../ledger-columns";
import { notice } from "../notice";
import { heading, type Section } from "../shell";
import { dataTable } from "../table";
import type { ApiKeyList, UsageRequests } from "../types";

export function keyRequestsSection(api: Api): Section & { pick(keyId: string): void } {
  const select = h("select", { name: "key" });
  const body = h("div");
  const n = notice(body);
  let wanted: string | null = null;

  const loadRecords = () => {
    const id = select.value;
    if (!id) return replace(body, h("p", {}, "No keys yet."));
    n.loading();
    api.get<UsageRequests>(`/v1/admin/usage/requests?key_id=${encodeURIComponent(id)}&limit=100`).then(
      (list) => {
        const name = select.selectedOptions[0]?.textContent ?? id;
        replace(body, dataTable(`Recent requests of ${name}`, requestColumns, list.data, "No requests for this key."));
        n.clear();
      },
      (err: unknown) => n.error(err),
    );
  };

  const form = h("form", { class: "range" }, field("Key", select), h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadRecords();
  });
  const el = h("section", {}, heading("Key requests"), form, n.el, body);
  return {
    id: "requests",
    label: "Requests",
    el,
    pick(keyId) {
      wanted = keyId;
    },
    show() {
      n.loading();
      api.get<ApiKeyList>("/v1/admin/keys").then(
        (keys) => {
          const current = wanted ?? select.value;
          replace(
            select,
            ...keys.data.map((k) =>
              h(
                "option",
                { value: k.id, selected: k.id === current },
                `${k.name} (${k.id})${k.revoked_at ? " · revoked" : ""}`,
              ),
            ),
          );
          wanted = null;
          loadRecords();
        },
        (err: unknown) => n.error(err),
      );
    },
  };
}
