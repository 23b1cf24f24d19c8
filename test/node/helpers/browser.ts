/**
 * Debian's Chromium driven by playwright-core (no browser download). Each launch gets a fresh
 * profile dir. `chromiumMissing` is the one-line reason the browser tests skip where there is none.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { repoRoot } from "./paths";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export const chromiumMissing: string | null = existsSync(CHROMIUM)
  ? null
  : `no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`;

/** Git-ignored; the README's copies live in docs/screenshots/. */
export const SCREENSHOTS = resolve(repoRoot, "screenshots");

export interface Browser {
  context: BrowserContext;
  /** A new tab (its own sessionStorage) that records console errors, CSP violations and any request off this machine. */
  page(viewport?: { width: number; height: number }): Promise<Page & { problems: string[] }>;
  shot(page: Page, name: string, fullPage?: boolean): Promise<void>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "moe-edge-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--headless",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1200, height: 860 },
    acceptDownloads: true,
  });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    context,
    async page(viewport) {
      const page = (await context.newPage()) as Page & { problems: string[] };
      page.problems = [];
      if (viewport) await page.setViewportSize(viewport);
      page.on("console", (m) => {
        // A 4xx the console asked for on purpose (wrong key) is logged by Chromium as a failed resource: not a problem.
        if (
          m.type() === "error" &&
          !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())
        )
          page.problems.push(m.text());
      });
      page.on("pageerror", (e) => page.problems.push(`pageerror: ${e.message}`));
      // Everything is bundled: a CDN, a font or any other origin would be a bug.
      page.on("request", (r) => {
        if (!/^(http:\/\/127\.0\.0\.1[:/]|data:|blob:)/.test(r.url()))
          page.problems.push(`off-machine request: ${r.url()}`);
      });
      return page;
    },
    async shot(page, name, fullPage = true) {
      await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage, animations: "disabled" });
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** For state the page cannot signal (the console tests import it from here). */
export { until } from "./poll";

/** Opens /console and signs in with the keyboard only (type, Enter), then waits for the overview. */
export async function signIn(page: Page, base: string, key: string): Promise<void> {
  await page.goto(`${base}/console`);
  const field = page.getByLabel("API key");
  await field.focus();
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
}

/** The text of a stat of the playground's last reply (dd[data-stat]). */
export const stat = (page: Page, name: string) => page.locator(`dl.stats dd[data-stat="${name}"]`);
