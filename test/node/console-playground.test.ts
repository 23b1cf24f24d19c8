/**
 * The key holder's console playground in Debian's Chromium against the real local stack: a reply streamed
 * through the real SSE with its usage, cost and TTFT; a tool call and its result; Stop cancelling (the
 * ledger says `cancelled`); hostile strings rendered inert. Screenshots go to screenshots/ (git-ignored).
 */
import { describe, expect, it } from "vitest";
import { chromiumMissing, signIn, stat } from "./helpers/browser";
import { useUserConsole } from "./helpers/user-console";

const XSS = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;

describe.skipIf(chromiumMissing !== null)(
  `key holder's console playground in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ""}`,
  () => {
    const ctx = useUserConsole("console playground");

    it("the playground streams a reply through the real SSE and shows its usage, cost and TTFT; snippets hide the key", async () => {
      const { stack, browser, key } = ctx;
      const page = await browser.page();
      await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: stack.base });
      await signIn(page, stack.base, key);
      await page.getByRole("button", { name: "Playground" }).click();
      await page.getByLabel("Model").selectOption("mistral-tiny");
      await page.getByText("Settings").click();
      await page.getByLabel("System prompt").fill("Be brief.");
      await page.getByLabel("Temperature").fill("0");
      await page.getByLabel("Max tokens").fill("600");
      await page.getByLabel("Seed").fill("7");
      await page.getByLabel("Message").fill("Tell me about the sea");
      await page.getByRole("button", { name: "Send" }).click();
      // Streaming: text is on screen while Stop is still live (the reply is not finished).
      await page
        .locator("form.playground", { has: page.locator(".turn.assistant .text:not(:empty)") })
        .filter({ has: page.getByRole("button", { name: "Stop", disabled: false }) })
        .waitFor();
      await page.getByRole("status").filter({ hasText: "Done." }).waitFor({ timeout: 60_000 });
      await stat(page, "status").filter({ hasText: "ok" }).waitFor();
      expect(await stat(page, "completion").innerText()).toBe("600");
      expect(Number(await stat(page, "prompt").innerText())).toBeGreaterThan(5);
      expect(await stat(page, "ttft").innerText()).toMatch(/^\d+ ms$/);
      const requestId = (await stat(page, "request-id").locator("[data-id]").getAttribute("data-id"))!;
      const ledger = (await (
        await fetch(`${stack.base}/v1/usage/requests?request_id=${requestId}`, {
          headers: { authorization: `Bearer ${key}` },
        })
      ).json()) as { data: { cost_micros: number }[] };
      const micros = ledger.data[0].cost_micros;
      expect(await stat(page, "cost").innerText()).toBe(`€0.${String(micros).padStart(6, "0")}`);

      for (const [name, marker] of [
        ["curl", "Bearer $MOE_API_KEY"],
        ["Python", 'os.environ["MOE_API_KEY"]'],
        ["TypeScript", "process.env.MOE_API_KEY"],
      ]) {
        await page.getByRole("button", { name: `Copy as ${name}` }).click();
        const code = await page.getByLabel("Code for the current request").innerText();
        expect(code).toContain(marker);
        expect(code).toContain("Tell me about the sea"); // nothing typed: the request last sent, exactly
        expect(code).not.toContain("Hello!"); // never a message nobody typed
        expect(code).toContain("600");
        expect(code).toContain("Be brief.");
        expect(code).not.toContain(key);
        expect(await page.evaluate<string>("navigator.clipboard.readText()")).toBe(code);
      }
      // The next message typed: the conversation so far (with the reply) plus it.
      await page.getByLabel("Message").fill("And the mountains?");
      await page.getByRole("button", { name: "Copy as TypeScript" }).click();
      const next = await page.getByLabel("Code for the current request").innerText();
      expect(next).toContain("Tell me about the sea");
      expect(next).toContain('"role": "assistant"');
      expect(next).toContain("And the mountains?");
      // New conversation: no history, default settings, no code left over.
      await page.getByRole("button", { name: "New conversation" }).click();
      expect(await page.getByLabel("Code for the current request").innerText()).toBe("");
      await page.getByLabel("Message").fill("");
      await page.getByRole("button", { name: "Copy as curl" }).click();
      await page.getByText("Type a message first").waitFor();
      expect(await page.getByLabel("Code for the current request").innerText()).toBe("");
      await page.getByLabel("Message").fill("Fresh start");
      await page.getByRole("button", { name: "Copy as curl" }).click();
      const fresh = await page.getByLabel("Code for the current request").innerText();
      expect(fresh).toContain("Fresh start");
      expect(fresh).not.toContain("Tell me about the sea");
      expect(fresh).not.toContain("Be brief.");
      expect(fresh).toContain('"max_tokens": 256');
      await page.getByLabel("Message").fill("");
      await page.getByRole("button", { name: "Copy as curl" }).click();
      await browser.shot(page, "console-playground");
      expect(page.problems).toEqual([]);
      await page.close();
    });

    it("the playground calls a tool: the call streams into the transcript and a tool result is answered", async () => {
      const { stack, browser, key } = ctx;
      const page = await browser.page();
      await signIn(page, stack.base, key);
      await page.getByRole("button", { name: "Playground" }).click();
      await page.getByLabel("Model").selectOption("mistral-tiny");
      await page.getByText("Settings").click();
      await page.getByLabel("Max tokens").fill("200");
      await page.getByLabel("Tool name").fill("get_weather");
      await page
        .getByLabel("Tool parameters")
        .fill('{"type": "object", "properties": {"unit": {"enum": ["c", "f"]}}, "required": ["unit"]}');
      await page.getByRole("button", { name: "Add tool" }).click();
      await page.getByRole("list", { name: "Tools" }).getByText("get_weather", { exact: true }).waitFor();
      await page.getByLabel("Tool choice").selectOption("required");
      await page.getByLabel("Message").fill("Weather?");
      await page.getByRole("button", { name: "Send" }).click();
      await page.getByRole("status").filter({ hasText: "Done." }).waitFor({ timeout: 60_000 });
      expect(await stat(page, "finish").innerText()).toBe("tool_calls");
      const call = page.locator(".tool-call").first();
      expect(await call.innerText()).toMatch(/^get_weather\(\{"unit": ?"[cf]"\}\)$/);
      const forms = page.locator(".tool-result");
      const n = await forms.count();
      expect(n).toBeGreaterThanOrEqual(1);
      for (let i = 0; i < n; i++) {
        await forms.nth(i).getByRole("textbox").fill('{"temperature": 21}');
        await forms.nth(i).getByRole("button").click();
      }
      // The results go out as role "tool" messages and the model answers them.
      await page.locator('.turn.assistant[aria-busy="false"]').nth(1).waitFor({ timeout: 60_000 });
      await page.getByRole("status").filter({ hasText: "Done." }).waitFor({ timeout: 60_000 });
      expect(await page.locator(".turn.user .text").last().innerText()).toContain('{"temperature": 21}');
      expect(page.problems).toEqual([]);
      await page.close();
    });

    it("Stop cancels the stream; the ledger records the request as cancelled", async () => {
      const { stack, browser, key } = ctx;
      const page = await browser.page();
      await signIn(page, stack.base, key);
      await page.getByRole("button", { name: "Playground" }).click();
      await page.getByLabel("Model").selectOption("mistral-small");
      await page.getByText("Settings").click();
      await page.getByLabel("Max tokens").fill("2000");
      // wrangler dev now and then drops a browser's disconnect without telling the worker (README, "Findings
      // about the Workers runtime, locally"); the worker then sees the client stop reading, and cancels once
      // 128 KiB are unread (worker/api/sse.ts) — well inside 2000 tokens. So one Stop must end in
      // `cancelled` every time: no retries.
      await page.getByLabel("Message").fill("Write a very long story");
      await page.getByRole("button", { name: "Send" }).click();
      // Stop must not move while the reply streams (it sits below the transcript): a moving button is hard
      // to hit, and a fast model's reply (2000 tokens in ~1.5 s here) could end before a click lands.
      const stop = page.getByRole("button", { name: "Stop" });
      await expect.poll(() => stop.isEnabled()).toBe(true);
      const before = await stop.boundingBox();
      await page.locator(".turn.assistant .text").last().filter({ hasText: /\S/ }).waitFor();
      expect(await stop.boundingBox()).toEqual(before);
      await stop.click();
      await page.getByRole("status").filter({ hasText: "Stopped." }).waitFor();
      await stat(page, "status").filter({ hasNotText: "…" }).waitFor({ timeout: 60_000 });
      expect(await stat(page, "status").innerText()).toBe("cancelled");
      expect(Number((await stat(page, "completion").innerText()).replace(/,/g, ""))).toBeLessThan(2000);
      const requestId = (await stat(page, "request-id").locator("[data-id]").getAttribute("data-id"))!;

      await page.getByRole("button", { name: "Requests" }).click();
      const row = page.getByRole("table", { name: "Recent requests" }).locator("tr", { hasText: requestId });
      await row.waitFor();
      expect(await row.innerText()).toMatch(/mistral-small[\s\S]*cancelled/);
      await browser.shot(page, "console-requests");
      expect(page.problems).toEqual([]);
      await page.close();
    });

    it("model output and user input are rendered as text: hostile HTML stays inert, and Trusted Types block HTML sinks", async () => {
      const { stack, browser, key } = ctx;
      const page = await browser.page();
      await signIn(page, stack.base, key);
      // The dev models' output is random: this one reply is served by the test so that it carries markup.
      await page.route("**/v1/chat/completions", (route) => {
        const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
        const body =
          chunk({ choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] }) +
          chunk({ choices: [{ index: 0, delta: { content: XSS.slice(0, 20) }, finish_reason: null }] }) +
          chunk({
            choices: [{ index: 0, delta: { content: XSS.slice(20) }, finish_reason: "stop" }],
            usage: { prompt_tokens: 3, completion_tokens: 9, total_tokens: 12 },
          }) +
          "data: [DONE]\n\n";
        return route.fulfill({
          status: 200,
          headers: { "content-type": "text/event-stream", "x-request-id": "req_test_xss" },
          body,
        });
      });
      await page.getByRole("button", { name: "Playground" }).click();
      await page.getByLabel("Message").fill(XSS);
      await page.getByRole("button", { name: "Send" }).click();
      await page.getByRole("status").filter({ hasText: "Done." }).waitFor();
      const texts = await page.locator(".transcript .text").allTextContents();
      expect(texts).toEqual([XSS, XSS]);
      expect(await page.locator(".transcript img, .transcript script").count()).toBe(0);
      expect(await page.evaluate<number | undefined>("window.__xss")).toBeUndefined();
      const sink = await page.evaluate<string>(`(() => {
      try { document.body.insertAdjacentHTML("beforeend", "<b>x</b>"); return "assigned"; } catch (err) { return String(err); }
    })()`);
      expect(sink).toMatch(/TrustedHTML/);
      await page.close();
    });
  },
);
