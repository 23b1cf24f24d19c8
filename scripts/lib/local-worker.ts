/**
 * Running the worker locally, offline: wrangler.toml's tiers pointed at a local backend, the D1
 * migrations applied to a local state dir, and (for tests and benchmarks) the worker itself started
 * through wrangler's unstable_startWorker without an inspector session. `npm start` uses the first two
 * and runs `wrangler dev`.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

export const OFFLINE_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  NO_UPDATE_NOTIFIER: "1",
};

export interface TomlTier {
  backends: string[];
  backend_model: string;
}

/**
 * The TIERS var of wrangler.toml with every tier's backends set to `backendUrl` (one or several replicas); with `models`, only the tiers
 * whose backend_model is one of them (a tier whose model is not loaded would only fail at request time).
 */
export function wranglerTiers(
  root: string,
  backendUrl: string | string[],
  models?: string[],
): Record<string, TomlTier> {
  const toml = readFileSync(resolve(root, "wrangler.toml"), "utf8");
  const match = /TIERS\s*=\s*'''([\s\S]*?)'''/.exec(toml);
  if (!match) throw new Error("wrangler.toml has no TIERS var");
  const all = JSON.parse(match[1]) as Record<string, TomlTier>;
  const kept = Object.entries(all).filter(([, t]) => !models || models.includes(t.backend_model));
  for (const [, t] of kept) t.backends = Array.isArray(backendUrl) ? [...backendUrl] : [backendUrl];
  return Object.fromEntries(kept);
}

/** `wrangler d1 migrations apply DB --local` into `persistDir`; throws with wrangler's output on failure. */
export function applyLocalMigrations(root: string, persistDir: string): Promise<void> {
  // Asynchronous, so a launcher can load the backend meanwhile (wrangler's CLI takes seconds to boot).
  const child = spawn(
    resolve(root, "node_modules/.bin/wrangler"),
    ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir],
    { cwd: root, env: { ...OFFLINE_ENV, CI: "1" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((ok, fail) => {
    child.on("error", fail);
    child.on("close", (code) =>
      code === 0 ? ok() : fail(new Error(`applying D1 migrations failed (exit ${code}):\n${out}`)),
    );
  });
}

export interface LocalWorker {
  url: string;
  dispose(): Promise<void>;
}

/** The worker in workerd via unstable_startWorker (no inspector, no watch), on a free port. */
export async function startLocalWorker(o: {
  root: string;
  persistDir: string;
  tiers: Record<string, unknown>;
  backendToken: string;
  adminToken: string;
}): Promise<LocalWorker> {
  Object.assign(process.env, { WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" });
  const { unstable_startWorker } = await import("wrangler");
  const worker = await unstable_startWorker({
    config: resolve(o.root, "wrangler.toml"),
    bindings: {
      TIERS: { type: "plain_text", value: JSON.stringify(o.tiers) },
      BACKEND_TOKEN: { type: "secret_text", value: o.backendToken },
      ADMIN_TOKEN: { type: "secret_text", value: o.adminToken },
      // In-process bindings, never argv; a fresh response-cache HMAC key per run.
      CACHE_KEY_SECRET: { type: "secret_text", value: crypto.randomUUID() + crypto.randomUUID() },
    },
    dev: {
      persist: o.persistDir,
      server: { hostname: "127.0.0.1", port: 0 },
      inspector: false,
      watch: false,
      remote: false,
      logLevel: "warn",
    },
  });
  await worker.ready;
  return { url: (await worker.url).origin, dispose: () => worker.dispose() };
}
