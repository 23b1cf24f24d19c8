/**
 * The key holder's console (/console) in Debian's Chromium against the real local stack (`npm start`:
 * backend + wrangler dev + D1): sign-in, the API's own errors (401, 429 with its retry time, budget),
 * usage after real requests (chart, table, CSV), batches, one cost everywhere, phone width. The playground:
 * console-playground.test.ts.
 * Screenshots go to screenshots/ (git-ignored).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { chromiumMissing, signIn, until } from "./helpers/browser";
import { useUserConsole } from "./helpers/user-console";

// Never a silent skip: say why, on one line.
if (chromiumMissing) console.warn(`skipping the key holder's console browser tests: ${chromiumMissing}`);

describe.skipIf(chromiumMissing !== null)(
  `key holder's console in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ""}`,
  () => {
    const ctx = useUserConsole("console user");
    const { newKey, chat } = ctx;

    it("a wrong key shows the API's 401 message, and nothing is kept", async () => {
      const { stack, browser } = ctx;
      const page = await browser.page();
      await page.goto(`${stack.base}/console`);
      await browser.shot(page, "console-sign-in");
      await page.getByLabel("API key").fill("sk-not-a-real-key-0000000000000000");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").filter({ hasText: "Invalid or missing API key." }).waitFor();
      expect(await page.evaluate<number>("sessionStorage.length")).toBe(0);
      expect(page.url()).toBe(`${stack.base}/console`);
      await page.close();
    });

    it("signs in with the keyboard; the overview shows the plan and this month's budget; the key is in sessionStorage only", async () => {
      const { stack, browser, key } = ctx;
      const page = await browser.page();
      await signIn(page, stack.base, key);
      await page.getByText("Budget resets on").waitFor();
      const text = await page.locator("main").innerText();
      expect(text).toContain("console user");
      expect(text).toContain("mistral-tiny, mistral-small");
      expect(text).toMatch(/Requests per minute\s+600/);
      expect(text).toMatch(/spent of €50\.00/);
      expect(page.url()).not.toContain(key);
      expect(await page.evaluate<[number, string]>("[localStorage.length, document.cookie]")).toEqual([0, ""]);
      expect(await page.evaluate<string[]>("Object.values(sessionStorage)")).toEqual([key]);
      await browser.shot(page, "console-overview");

      // Keyboard only: focus starts on the section heading; the nav is one Shift+Tab away.
      const focused = () => page.evaluate<string>("document.activeElement?.textContent ?? ''");
      expect(await focused()).toBe("Overview");
      await page.keyboard.press("Shift+Tab");
      expect(await focused()).toBe("Playground");
      await page.keyboard.press("Enter");
      expect(await focused()).toBe("Playground"); // the heading of the section it opened
      await page.keyboard.press("Tab");
      expect(await page.evaluate<string>("document.activeElement?.getAttribute('name') ?? ''")).toBe("model");
      expect(page.problems).toEqual([]);
      await page.close();
    });

    it("usage appears after requests: a stacked chart per day, a table captioned Usage, and a CSV", async () => {
      const { stack, browser, key } = ctx;
      for (const model of ["mistral-tiny", "mistral-tiny", "mistral-tiny", "mistral-small"])
        expect((await chat(key, model)).status).toBe(200);
      // The ledger row is written just after each response: wait until the API has all four.
      await until(
        async () => {
          const res = await fetch(`${stack.base}/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
          const rows = ((await res.json()) as { data: { requests: number }[] }).data;
          return rows.reduce((n, r) => n + r.requests, 0) >= 4 ? true : undefined;
        },
        10_000,
        "four ledger rows",
      );
      const page = await browser.page();
      await signIn(page, stack.base, key);
      await page.getByRole("button", { name: "Usage" }).click();
      const table = page.getByRole("table", { name: "Usage" });
      await table.getByRole("cell", { name: "mistral-small" }).waitFor();
      const rows = await table.locator("tbody tr").allInnerTexts();
      expect(rows.find((r) => r.includes("mistral-tiny"))).toMatch(/mistral-tiny\s+3\s/);
      expect(rows.find((r) => r.includes("mistral-small"))).toMatch(/mistral-small\s+1\s/);
      expect(await page.locator("canvas").count()).toBe(2);
      expect(
        await page
          .locator("canvas")
          .first()
          .evaluate((c) => (c as unknown as { width: number }).width),
      ).toBeGreaterThan(100);
      await browser.shot(page, "console-usage");

      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("button", { name: "Download CSV" }).click(),
      ]);
      const csv = readFileSync((await download.path())!, "utf8");
      expect(csv.split("\r\n")[0]).toBe(
        "date,tier,requests,prompt_tokens,cached_tokens,completion_tokens,cost_eur,batch_requests,batch_cost_eur",
      );
      expect(csv).toMatch(/\d{4}-\d\d-\d\d,mistral-tiny,3,\d+,\d+,\d+,0\.\d{6}/);
      expect(page.problems).toEqual([]);
      await page.close();
    });

    it("batches: status, counts, the output file downloaded with the key, and Cancel on a running batch", async () => {
      const { stack, browser } = ctx;
      // RPM 3: the first batch's two lines run at once; the second batch's lines then wait on the rate limit
      // (requeued with its Retry-After), so it is still running when Cancel is clicked.
      const k = await newKey({ name: "console batches", rpm: 3 });
      const auth = { authorization: `Bearer ${k}` };
      const line = (id: string, maxTokens: number) =>
        JSON.stringify({
          custom_id: id,
          method: "POST",
          url: "/v1/chat/completions",
          body: { model: "mistral-tiny", messages: [{ role: "user", content: `Line ${id}` }], max_tokens: maxTokens },
        });
      const create = async (lines: string[]) => {
        const form = new FormData();
        form.append("purpose", "batch");
        form.append("file", new Blob([`${lines.join("\n")}\n`]), "in.jsonl");
        const file = (await (
          await fetch(`${stack.base}/v1/files`, { method: "POST", headers: auth, body: form })
        ).json()) as {
          id: string;
        };
        const res = await fetch(`${stack.base}/v1/batches`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
        });
        return ((await res.json()) as { id: string }).id;
      };
      const status = async (id: string) =>
        ((await (await fetch(`${stack.base}/v1/batches/${id}`, { headers: auth })).json()) as { status: string })
          .status;
      const done = await create([line("a", 3), line("b", 3)]);
      await until(async () => ((await status(done)) === "completed" ? true : undefined), 60_000, "batch completed");
      const running = await create(Array.from({ length: 6 }, (_, i) => line(`r${i}`, 3)));
      await until(async () => ((await status(running)) === "in_progress" ? true : undefined), 60_000, "batch running");

      const page = await browser.page();
      await signIn(page, stack.base, k);
      await page.getByRole("button", { name: "Batches" }).click();
      const table = page.getByRole("table", { name: "Batches" });
      const doneRow = table.locator("tbody tr", { hasText: done });
      await doneRow.waitFor();
      expect(await doneRow.innerText()).toMatch(/completed\s+2\s+2\s+0/);
      await browser.shot(page, "console-batches");
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("button", { name: `Download the output file of ${done}` }).click(),
      ]);
      const out = readFileSync((await download.path())!, "utf8")
        .trim()
        .split("\n");
      expect(out.map((l) => (JSON.parse(l) as { custom_id: string }).custom_id)).toEqual(["a", "b"]);

      await page.getByRole("button", { name: `Cancel ${running}` }).click();
      await table
        .locator("tbody tr", { hasText: running })
        .filter({ hasText: /cancell/ })
        .waitFor();
      await until(async () => ((await status(running)) === "cancelled" ? true : undefined), 60_000, "batch cancelled");
      expect(page.problems).toEqual([]);
      await page.close();
    });

    it("a rate-limited send shows the API's 429 message with its retry time; an exhausted budget says so", async () => {
      const { stack, browser } = ctx;
      const limited = await newKey({ name: "one per minute", rpm: 1 });
      const page = await browser.page();
      await signIn(page, stack.base, limited);
      await page.getByRole("button", { name: "Playground" }).click();
      await page.getByLabel("Model").selectOption("mistral-tiny");
      await page.getByText("Settings").click();
      await page.getByLabel("Max tokens").fill("3");
      for (const m of ["first", "second"]) {
        await page.getByLabel("Message").fill(m);
        await page.getByRole("button", { name: "Send" }).click();
        if (m === "first") await page.getByRole("status").filter({ hasText: "Done." }).waitFor();
      }
      await page
        .getByRole("alert")
        .filter({ hasText: /Rate limit reached for requests per minute on model 'mistral-tiny'\. Retry in \d+ s\./ })
        .waitFor();
      expect(await page.getByLabel("Message").inputValue()).toBe("second"); // kept for a retry
      await page.close();

      // A spent budget shows as spent: its state, the reset date, what to do; and requests say so too.
      const broke = await newKey({ name: "no budget", monthly_budget_micros: 0 });
      const page2 = await browser.page();
      await signIn(page2, stack.base, broke);
      await page2.locator('.budget-state[data-state="spent"]').filter({ hasText: "Budget spent" }).waitFor();
      const alert = page2.getByRole("alert").filter({ hasText: "The budget is spent" });
      await alert.waitFor();
      expect(await alert.innerText()).toMatch(/until it resets on \d+ \w+ \d{4} \(UTC\)/);
      expect(await alert.innerText()).toContain("raise this key's monthly budget");
      expect(await page2.locator("progress.spent").count()).toBe(1);
      await browser.shot(page2, "console-budget-spent");
      await page2.getByRole("button", { name: "Playground" }).click();
      await page2.getByLabel("Message").fill("hello");
      await page2.getByRole("button", { name: "Send" }).click();
      await page2.getByRole("alert").filter({ hasText: "This key's monthly budget is spent" }).waitFor();
      await page2.close();

      // A budget too small for a default request is "low", not spent, and says what to change.
      const low = await newKey({ name: "low budget", monthly_budget_micros: 20 });
      const page3 = await browser.page();
      await signIn(page3, stack.base, low);
      await page3.locator('.budget-state[data-state="low"]').filter({ hasText: "Budget almost spent" }).waitFor();
      await page3.getByText("Lower max_tokens").waitFor();
      await page3.close();
    });

    it("fits phone-width screens (390 × 844 and 375 × 780) on every page without sideways scrolling", async () => {
      const { stack, browser, key } = ctx;
      for (const [width, height] of [
        [390, 844],
        [375, 780],
      ] as const) {
        const page = await browser.page({ width, height });
        const overflow = () =>
          page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
        await page.goto(`${stack.base}/console`);
        await page.getByLabel("API key").waitFor();
        expect(await overflow(), `sign-in at ${width}`).toBe(0);
        await signIn(page, stack.base, key);
        for (const section of ["Overview", "Usage", "Requests", "Playground"]) {
          await page.getByRole("button", { name: section, exact: true }).click();
          await page.getByRole("heading", { level: 2 }).first().waitFor();
          if (section === "Usage") await page.getByRole("table", { name: "Usage" }).waitFor();
          if (section === "Requests") {
            const table = page.getByRole("table", { name: "Recent requests" });
            await table.locator("tbody tr .id").first().waitFor();
            // Model names stay whole (no mid-word break); ids are short, on one line, with a copy button.
            const model = table.locator("tbody tr td").nth(1);
            expect((await model.innerText()).includes("\n"), "model name broken").toBe(false);
            const id = table.locator("tbody tr .id").first();
            expect(await id.locator("code").innerText()).toMatch(/^req_[0-9a-f]{6}…[0-9a-f]{4}$/);
            await id.getByRole("button", { name: /^Copy req_/ }).waitFor();
          }
          expect(await overflow(), `${section} at ${width}`).toBe(0);
          if (width === 390 && (section === "Overview" || section === "Playground" || section === "Requests"))
            await browser.shot(page, `console-phone-${section.toLowerCase()}`);
        }
        await page.close();
      }
    });

    it("one request, one cost: the same integer in its response, its ledger row, /v1/usage and the console", async () => {
      const { stack, browser } = ctx;
      const k = await newKey({ name: "rounding" });
      const res = await fetch(`${stack.base}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${k}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "mistral-small",
          messages: [{ role: "user", content: "Count the stars, please, one by one." }],
          max_tokens: 7,
          temperature: 0,
        }),
      });
      expect(res.status).toBe(200);
      const requestId = res.headers.get("x-request-id")!;
      const inResponse = ((await res.json()) as { usage: { cost_micros: number } }).usage.cost_micros;
      const auth = { headers: { authorization: `Bearer ${k}` } };
      const row = await until(async () => {
        const r = (await (await fetch(`${stack.base}/v1/usage/requests?request_id=${requestId}`, auth)).json()) as {
          data: { cost_micros: number; cost_units: string }[];
        };
        return r.data[0];
      });
      const usage = (await (await fetch(`${stack.base}/v1/usage`, auth)).json()) as {
        data: { cost_micros: number }[];
      };
      expect(usage.data).toHaveLength(1); // this key's only request
      expect([row.cost_micros, usage.data[0].cost_micros]).toEqual([inResponse, inResponse]);
      // The rule: the exact units rounded up, once.
      expect(inResponse).toBe(Number((BigInt(row.cost_units) + 999_999n) / 1_000_000n));

      const page = await browser.page();
      await signIn(page, stack.base, k);
      const shown = `€0.${String(inResponse).padStart(6, "0")}`;
      await page.getByRole("button", { name: "Requests", exact: true }).click();
      const reqRow = page.getByRole("table", { name: "Recent requests" }).locator("tbody tr", { hasText: requestId });
      await reqRow.waitFor();
      expect(await reqRow.locator("td").nth(5).innerText()).toBe(shown);
      await page.getByRole("button", { name: "Usage", exact: true }).click();
      const usageRow = page.getByRole("table", { name: "Usage" }).locator("tbody tr", { hasText: "mistral-small" });
      await usageRow.waitFor();
      const headers = await page.getByRole("table", { name: "Usage" }).locator("thead th").allInnerTexts();
      expect(await usageRow.locator("td").nth(headers.indexOf("Cost")).innerText()).toBe(shown);
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("button", { name: "Download CSV" }).click(),
      ]);
      expect(readFileSync((await download.path())!, "utf8")).toMatch(
        new RegExp(`,mistral-small,1,\\d+,\\d+,\\d+,0\\.${String(inResponse).padStart(6, "0")},0,0\\.000000\r\n`),
      );
      await page.getByRole("button", { name: "Overview", exact: true }).click();
      expect(await page.locator("main").innerText()).toContain(`${shown} spent of`);
      await page.close();
    });

    it("no key material in the worker's or the backend's logs", () => {
      const { stack, key } = ctx;
      const childLines = stack.logs.filter((l) => /^\[(worker|backend)\]/.test(l));
      expect(childLines.length).toBeGreaterThan(0);
      for (const line of childLines) expect(line).not.toContain(key);
    });
  },
);
