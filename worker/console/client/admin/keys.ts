/**
 * Keys: list with this month's spend, create (the key is shown once), edit the plan, revoke.
 * Names are operator input and may contain anything: they are rendered as text like all else.
 */
import type { Api } from "../api";
import { button, h, replace } from "../dom";
import { dateTime, eur, monthStart } from "../format";
import { notice } from "../notice";
import { heading, type Section } from "../shell";
import { idChip } from "../ids";
import { dataTable } from "../table";
import type { AdminUsageDays, ApiKey, ApiKeyList, CreatedApiKey } from "../types";
import { planFields } from "./plan-form";

export function keysSection(api: Api, tiers: string[], openRequests: (keyId: string) => void): Section {
  const list = h("div");
  const n = notice(list);
  const created = h("div");
  const create = planFields(tiers);
  const createNotice = notice();
  const createForm = h(
    "form",
    { class: "card", "aria-label": "Create a key" },
    h("h3", {}, "Create a key"),
    create.el,
    h("button", { type: "submit" }, "Create key"),
    createNotice.el,
  );
  createForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const plan = create.read();
    if (typeof plan === "string") return createNotice.error(new Error(plan));
    createNotice.loading("Creating…");
    api.send<CreatedApiKey>("POST", "/v1/admin/keys", plan).then(
      (k) => {
        createNotice.clear();
        createForm.reset();
        showCreated(k);
        load();
      },
      (err: unknown) => createNotice.error(err),
    );
  });

  const showCreated = (k: CreatedApiKey) => {
    const out = h("output", { class: "secret", "aria-label": "New API key" }, k.key);
    const note = h("span", { class: "hint", role: "status" });
    replace(
      created,
      h(
        "div",
        { class: "card created" },
        h("h3", {}, `New key for ${k.name}`),
        h("p", {}, "Copy it now: only its hash is stored, so it cannot be shown again."),
        out,
        h(
          "div",
          { class: "actions" },
          button(
            "Copy key",
            () =>
              void navigator.clipboard?.writeText(k.key).then(
                () => (note.textContent = "Copied."),
                () => (note.textContent = "Select the key above to copy it."),
              ),
          ),
          button("Done", () => created.replaceChildren(), { class: "secondary" }),
        ),
        note,
      ),
    );
  };

  const edit = (k: ApiKey) => {
    const fields = planFields(tiers, k);
    const dn = notice();
    const dialog = h("dialog", { "aria-label": `Edit key ${k.name}` });
    const form = h(
      "form",
      {},
      h("h3", {}, `Edit ${k.name} (${k.id})`),
      fields.el,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit" }, "Save"),
        button("Cancel", () => dialog.close(), { class: "secondary" }),
      ),
      dn.el,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const plan = fields.read();
      if (typeof plan === "string") return dn.error(new Error(plan));
      dn.loading("Saving…");
      api.send<ApiKey>("PATCH", `/v1/admin/keys/${encodeURIComponent(k.id)}`, plan).then(
        () => {
          dialog.close();
          load();
        },
        (err: unknown) => dn.error(err),
      );
    });
    dialog.append(form);
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  };

  const revoke = (k: ApiKey) => {
    if (
      !confirm(
        `Revoke the key "${k.name}" (${k.id})? Requests with it are refused within seconds. This cannot be undone.`,
      )
    )
      return;
    n.loading("Revoking…");
    api.send("DELETE", `/v1/admin/keys/${encodeURIComponent(k.id)}`).then(load, (err: unknown) => n.error(err));
  };

  const load = () => {
    n.loading();
    Promise.all([
      api.get<ApiKeyList>("/v1/admin/keys"),
      api.get<AdminUsageDays>(`/v1/admin/usage?from=${monthStart()}`),
    ]).then(
      ([keys, usage]) => {
        // The month's exact spend per key (the day rows' cost_units), shown by the one rounding rule (up,
        // once, from the exact sum: docs/billing.md) and compared with the budget exactly, as the API does.
        const spentUnits = new Map<string, bigint>();
        for (const r of usage.data) spentUnits.set(r.key_id, (spentUnits.get(r.key_id) ?? 0n) + BigInt(r.cost_units));
        const spentMicros = (id: string) => {
          const u = spentUnits.get(id) ?? 0n;
          return Number((u + 999_999n) / 1_000_000n);
        };
        const budgetSpent = (k: ApiKey) => (spentUnits.get(k.id) ?? 0n) >= BigInt(k.monthly_budget_micros) * 1_000_000n;
        const rows = [...keys.data].sort(
          (a, b) => Number(a.revoked_at !== null) - Number(b.revoked_at !== null) || b.created_at - a.created_at,
        );
        replace(
          list,
          dataTable(
            "Keys",
            [
              { label: "Name", value: (k) => k.name },
              { label: "Id", value: (k) => idChip(k.id) },
              { label: "Models", value: (k) => k.tiers.join(", ") },
              { label: "RPM", value: (k) => k.rpm, numeric: true },
              { label: "TPM", value: (k) => k.tpm, numeric: true },
              { label: "Budget", value: (k) => eur(k.monthly_budget_micros), numeric: true },
              { label: "Spent this month", value: (k) => eur(spentMicros(k.id)), numeric: true },
              { label: "Created (UTC)", value: (k) => dateTime(k.created_at) },
              {
                label: "Status",
                value: (k) =>
                  k.revoked_at
                    ? h("span", { class: "badge s-revoked" }, "revoked")
                    : budgetSpent(k)
                      ? h(
                          "span",
                          {
                            class: "badge s-spent",
                            title: "Every metered request is refused until the budget resets or is raised.",
                          },
                          "budget spent",
                        )
                      : h("span", { class: "badge s-ok" }, "active"),
              },
              {
                label: "Actions",
                value: (k) =>
                  h(
                    "div",
                    { class: "row-actions" },
                    k.revoked_at ? null : button("Edit", () => edit(k), { "aria-label": `Edit key ${k.name}` }),
                    k.revoked_at
                      ? null
                      : button("Revoke", () => revoke(k), { class: "danger", "aria-label": `Revoke key ${k.name}` }),
                    button("Requests", () => openRequests(k.id), {
                      class: "secondary",
                      "aria-label": `Requests of key ${k.name}`,
                    }),
                  ),
              },
            ],
            rows,
            "No keys yet.",
          ),
        );
        n.clear();
      },
      (err: unknown) => n.error(err),
    );
  };

  const el = h(
    "section",
    {},
    heading("Keys"),
    created,
    createForm,
    h("p", { class: "toolbar" }, button("Refresh", load)),
    n.el,
    list,
  );
  return { id: "keys", label: "Keys", el, show: load };
}
