/**
 * The operator's console (/console/admin) in Debian's Chromium against the real local stack: a wrong
 * admin token is refused with the API's message; keys are created (shown once, with a hostile name
 * that must render as text), edited and revoked, after which the API refuses the key; spend per key and
 * tier, the top keys this month, one key's requests, and the live replicas. Screenshots go to screenshots/ (git-ignored).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { chromiumMissing, launchBrowser, signIn, until, type Browser } from "./helpers/browser";
import { type Stack, useSharedStack } from "./helpers/stack";

const NAME = `<img src=x onerror="window.__xss=1">acme`;

// Never a silent skip: say why, on one line.
if (chromiumMissing) console.warn(`skipping the operator console browser tests: ${chromiumMissing}`);

describe.skipIf(chromiumMissing !== null)(
  `operator console in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ""}`,
  () => {
    let stack: Stack;
    let browser: Browser;
    let page: Page & { problems: string[] };
    let created: { key: string; id: string };
    let requestId: string;

    const models = (key: string) => fetch(`${stack.base}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    const keyRow = () => page.getByRole("table", { name: "Keys" }).locator("tbody tr", { hasText: created.id });

    beforeAll(async () => {
      [stack, browser] = await Promise.all([useSharedStack(), launchBrowser()]);
      page = await browser.page();
    });
    afterAll(async () => {
      await browser?.close();
      await stack?.stop();
    });

    it("refuses a wrong admin token with the API's message", async () => {
      await page.goto(`${stack.base}/console/admin`);
      await page.getByLabel("Admin token").fill("not-the-admin-token");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").filter({ hasText: "Invalid or missing admin token." }).waitFor();
      await browser.shot(page, "admin-sign-in");
    });

    it("signs in and creates a key: shown once, working, its hostile name rendered as text", async () => {
      await page.getByLabel("Admin token").fill(stack.adminToken);
      await page.getByLabel("Admin token").press("Enter");
      await page.getByRole("heading", { name: "Keys" }).waitFor();
      const form = page.getByRole("form", { name: "Create a key" });
      await form.getByLabel("Name").fill(NAME);
      await form.getByLabel("mistral-small").uncheck();
      await form.getByLabel("Requests per minute").fill("30");
      await form.getByLabel("Monthly budget (€)").fill("2.5");
      await form.getByRole("button", { name: "Create key" }).click();
      const shown = page.getByLabel("New API key");
      await shown.waitFor();
      const key = (await shown.textContent()) ?? "";
      expect(key).toMatch(/^sk-[0-9a-f]{64}$/);
      await page.getByRole("table", { name: "Keys" }).getByRole("cell", { name: NAME, exact: true }).waitFor();
      const list = (await (await stack.admin("/v1/admin/keys")).json()) as {
        data: { id: string; name: string; tiers: string[]; rpm: number; monthly_budget_micros: number }[];
      };
      const row = list.data.find((k) => k.name === NAME)!;
      created = { key, id: row.id };
      expect(row).toMatchObject({ tiers: ["mistral-tiny"], rpm: 30, monthly_budget_micros: 2_500_000 });
      expect(((await (await models(key)).json()) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual([
        "mistral-tiny",
      ]);

      // The name is text, in the table and everywhere else; nothing ran.
      await keyRow().getByRole("cell", { name: NAME, exact: true }).waitFor();
      expect(await page.locator("main img, main script").count()).toBe(0);
      expect(await page.evaluate<number | undefined>("window.__xss")).toBeUndefined();
      await browser.shot(page, "admin-keys");

      // Shown once: gone after Done and never in a reload, the URL or the page's storage.
      await page.getByRole("button", { name: "Done" }).click();
      expect(await page.content()).not.toContain(key);
      await page.reload();
      await keyRow().waitFor();
      expect(await page.content()).not.toContain(key);
      expect(page.url()).not.toContain(key);
      expect(await page.evaluate<string>("JSON.stringify(sessionStorage)")).not.toContain(key);
    });

    it("edits a key's plan in a dialog", async () => {
      await keyRow().getByRole("button", { name: "Edit" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByLabel("Requests per minute").fill("7");
      await dialog.getByLabel("mistral-small").check();
      await dialog.getByRole("button", { name: "Save" }).click();
      await dialog.waitFor({ state: "detached" });
      await keyRow().getByRole("cell", { name: "7", exact: true }).waitFor();
      const k = (await (await stack.admin(`/v1/admin/keys/${created.id}`)).json()) as { rpm: number; tiers: string[] };
      expect(k).toMatchObject({ rpm: 7, tiers: ["mistral-tiny", "mistral-small"] });
    });

    it("shows spend per key and tier over a range, and the top keys this month", async () => {
      const res = await fetch(`${stack.base}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${created.key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "mistral-tiny", messages: [{ role: "user", content: "Hello" }], max_tokens: 8 }),
      });
      expect(res.status).toBe(200);
      requestId = res.headers.get("x-request-id")!;
      await until(
        async () => {
          const r = (await (await stack.admin(`/v1/admin/usage/requests?request_id=${requestId}`)).json()) as {
            data: unknown[];
          };
          return r.data.length ? true : undefined;
        },
        10_000,
        "the ledger record",
      );

      await page.getByRole("button", { name: "Spend", exact: true }).click();
      const spend = page.getByRole("table", { name: "Spend per key and model" });
      const row = spend.locator("tbody tr", { hasText: created.id });
      await row.waitFor();
      expect(await row.innerText()).toMatch(/mistral-tiny\s+1\s/);
      await page
        .getByRole("table", { name: "Top keys this month" })
        .locator("tbody tr", { hasText: created.id })
        .waitFor();
      expect(await page.locator("canvas").count()).toBe(1);
      await browser.shot(page, "admin-spend");
    });

    it("shows one key's recent requests", async () => {
      await page.getByRole("button", { name: "Keys", exact: true }).click();
      await keyRow().getByRole("button", { name: "Requests" }).click();
      const table = page.getByRole("table", { name: /^Recent requests of / });
      await table.locator("tbody tr", { hasText: requestId }).waitFor();
      expect(await table.locator("caption").innerText()).toContain(NAME);
      await browser.shot(page, "admin-requests");
    });

    it("marks a key whose budget is spent; the key holder's GET /v1/key agrees", async () => {
      const res = await stack.admin("/v1/admin/keys", {
        method: "POST",
        body: JSON.stringify({ name: "spent key", tiers: ["mistral-tiny"], monthly_budget_micros: 0 }),
      });
      const spentKey = (await res.json()) as { id: string; key: string };
      await page.getByRole("button", { name: "Keys", exact: true }).click();
      await page.getByRole("button", { name: "Refresh" }).click();
      const row = page.getByRole("table", { name: "Keys" }).locator("tbody tr", { hasText: spentKey.id });
      await row.locator(".badge.s-spent", { hasText: "budget spent" }).waitFor();
      expect(await keyRow().locator(".badge").innerText()).toBe("active");
      const info = (await (
        await fetch(`${stack.base}/v1/key`, { headers: { authorization: `Bearer ${spentKey.key}` } })
      ).json()) as { budget_state: string };
      expect(info.budget_state).toBe("spent");
      await browser.shot(page, "admin-keys-spent");
    });

    it("fits phone-width screens (390 × 844 and 375 × 780) on every page: wide tables scroll inside their own region", async () => {
      for (const [width, height] of [
        [390, 844],
        [375, 780],
      ] as const) {
        const phone = await browser.page({ width, height });
        const overflow = () =>
          phone.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
        await phone.goto(`${stack.base}/console/admin`);
        await phone.getByLabel("Admin token").waitFor();
        expect(await overflow(), `sign-in at ${width}`).toBe(0);
        await phone.getByLabel("Admin token").fill(stack.adminToken);
        await phone.getByRole("button", { name: "Sign in" }).click();
        for (const section of ["Keys", "Spend", "Requests"]) {
          await phone.getByRole("button", { name: section, exact: true }).click();
          await phone.getByRole("table").first().waitFor();
          expect(await overflow(), `${section} at ${width}`).toBe(0);
          if (width === 390) await browser.shot(phone, `admin-phone-${section.toLowerCase()}`);
        }
        // Key ids are short, whole on one line, with a copy button (the full id in data-id and for screen readers).
        await phone.getByRole("button", { name: "Keys", exact: true }).click();
        // The click reloads the list (aria-busy until the new table replaces the old one): measure the new one.
        const keys = phone.getByRole("table", { name: "Keys" });
        await phone.locator('main [aria-busy="false"]').filter({ has: keys }).waitFor();
        const id = keys.locator("tbody tr .id").first();
        const full = (await id.getAttribute("data-id"))!;
        expect(await id.locator("code").innerText()).toBe(`${full.slice(0, 10)}…${full.slice(-4)}`);
        const lines = await id
          .locator("code")
          .evaluate(
            (e) =>
              e.getBoundingClientRect().height /
              Number.parseFloat(
                (globalThis as unknown as { getComputedStyle(el: unknown): { fontSize: string } }).getComputedStyle(e)
                  .fontSize,
              ),
          );
        expect(lines).toBeLessThan(2); // one line: under two font sizes tall
        await id.getByRole("button", { name: /^Copy key_/ }).waitFor();
        expect(phone.problems).toEqual([]);
        await phone.close();
      }
    });

    it("revokes a key; the API then refuses it, and so does the key holder's console", async () => {
      await page.getByRole("button", { name: "Keys", exact: true }).click();
      page.once("dialog", (d) => void d.accept());
      await keyRow().getByRole("button", { name: "Revoke" }).click();
      await keyRow().getByText("revoked").waitFor();
      // Refused at once in this isolate, within 3 s anywhere (the key cache's TTL).
      await until(
        async () => ((await models(created.key)).status === 401 ? true : undefined),
        5_000,
        "the revoked key to be refused",
      );
      const user = await browser.page();
      await user.goto(`${stack.base}/console`);
      await user.getByLabel("API key").fill(created.key);
      await user.getByRole("button", { name: "Sign in" }).click();
      await user.getByRole("alert").filter({ hasText: "Invalid or missing API key." }).waitFor();
      await user.close();
      expect(page.problems).toEqual([]);
    });

    it("npm start prints the console's URLs; the key holder's console works for its dev key", async () => {
      expect(
        stack.logs.some((l) => l.includes(`${stack.base}/console`) && l.includes(`${stack.base}/console/admin`)),
      ).toBe(true);
      const user = await browser.page();
      await signIn(user, stack.base, stack.apiKey);
      await user.getByText("Budget resets on").waitFor();
      await user.close();
    });

    it("Replicas: npm start's backend is listed ready, and its served count moves live", async () => {
      await page.getByRole("button", { name: "Replicas" }).click();
      const table = page.getByRole("region", { name: /^Live replicas/ });
      const row = table.locator("tbody tr", { hasText: stack.backendUrl });
      await row.waitFor({ timeout: 15_000 });
      await row.locator('[data-state="ready"]').waitFor();
      const served = async () => Number(((await row.locator("td").nth(6).textContent()) ?? "").replace(/\D/g, ""));
      const before = await served();
      const res = await fetch(`${stack.base}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "mistral-tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
      });
      expect(res.status).toBe(200);
      // No reload: the section polls (the backend's heartbeat and the table's refresh are both 2 s).
      await until(async () => ((await served()) > before ? true : undefined), 15_000, "the served count to move");
      await browser.shot(page, "admin-replicas");
      expect(page.problems).toEqual([]);
    });

    it("no key material in the worker's or the backend's logs", () => {
      const lines = stack.logs.filter((l) => /^\[(worker|backend)\]/.test(l));
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line).not.toContain(created.key);
        expect(line).not.toContain(stack.adminToken);
      }
    });
  },
);
