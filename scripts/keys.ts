/**
 * Key admin CLI over the worker's admin API.
 *   npm run keys -- create --name N --tiers mistral-tiny,mistral-small [--rpm 60] [--tpm 100000] [--budget-micros 10000000] [--key K]
 *   npm run keys -- list | get <id> | update <id> [--name --tiers --rpm --tpm --budget-micros] | revoke <id>
 *   npm run keys -- usage [--key-id ID] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
 * Add --json for raw JSON. Env: EDGE_URL (default http://127.0.0.1:$PORT, the port `npm start` uses:
 * 8787 unless PORT is set), ADMIN_TOKEN (default: the launcher's .dev/secrets.json, or
 * $DEV_STATE_DIR/secrets.json).
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

const USAGE = `usage: npm run keys -- <command> [options]
  create --name N --tiers a,b [--rpm N] [--tpm N] [--budget-micros N] [--key K]
  list
  get <id>
  update <id> [--name N] [--tiers a,b] [--rpm N] [--tpm N] [--budget-micros N]
  revoke <id>
  usage [--key-id ID] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
options: --json (raw output)   env: EDGE_URL (default http://127.0.0.1:$PORT, PORT default 8787), ADMIN_TOKEN`;

/** The worker's base URL: EDGE_URL, else the local worker on PORT, as `npm start` runs it. */
function edgeUrl(env: NodeJS.ProcessEnv = process.env): string {
  return (env.EDGE_URL || `http://127.0.0.1:${env.PORT || "8787"}`).replace(/\/+$/, "");
}

class CliError extends Error {}

function adminToken(): string {
  if (process.env.ADMIN_TOKEN) return process.env.ADMIN_TOKEN;
  const file = resolve(process.cwd(), process.env.DEV_STATE_DIR ?? ".dev", "secrets.json");
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, "utf8")) as { adminToken?: unknown };
    if (typeof saved.adminToken === "string") return saved.adminToken;
  }
  throw new CliError("ADMIN_TOKEN is not set (and no .dev/secrets.json from `npm start` was found).");
}

async function call(method: string, path: string, body?: unknown): Promise<unknown> {
  const base = edgeUrl();
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken()}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new CliError(
      `cannot reach ${base} (${(err as Error).cause ?? (err as Error).message}). Is the worker running (npm start)? Set EDGE_URL otherwise.`,
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(`${method} ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const e = (json as { error?: { message?: string; code?: string } }).error;
    const hint =
      res.status === 401
        ? " (check ADMIN_TOKEN)"
        : res.status === 404 && path.startsWith("/v1/admin/keys") && !path.includes("/keys/")
          ? " (admin API disabled: ADMIN_TOKEN unset on the worker?)"
          : "";
    throw new CliError(`HTTP ${res.status}${e?.code ? ` ${e.code}` : ""}: ${e?.message ?? text}${hint}`);
  }
  return json;
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CliError(`--${name} must be a non-negative integer, got "${v}"`);
  return Number(v);
}

const tiersOf = (v: string | undefined) =>
  v
    ?.split(",")
    .map((t) => t.trim())
    .filter(Boolean);

function plan(values: Record<string, string | boolean | undefined>) {
  const s = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const p = {
    name: s("name"),
    tiers: tiersOf(s("tiers")),
    rpm: int("rpm", s("rpm")),
    tpm: int("tpm", s("tpm")),
    monthly_budget_micros: int("budget-micros", s("budget-micros")),
  };
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
}

function table(rows: Record<string, unknown>[], cols: string[]): string {
  if (!rows.length) return "(none)";
  const cell = (v: unknown) => (Array.isArray(v) ? v.join(",") : v === null || v === undefined ? "-" : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(cols), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join("\n");
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      tiers: { type: "string" },
      rpm: { type: "string" },
      tpm: { type: "string" },
      "budget-micros": { type: "string" },
      key: { type: "string" },
      "key-id": { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [cmd, id] = positionals;
  const print = (v: unknown, human: () => string) => console.log(values.json ? JSON.stringify(v, null, 2) : human());
  const needId = () => {
    if (!id) throw new CliError(`${cmd} needs a key id (see \`npm run keys -- list\`)`);
    return encodeURIComponent(id);
  };

  switch (cmd) {
    case "create": {
      const p = plan(values);
      if (!p.name || !p.tiers) throw new CliError("create needs --name and --tiers (comma-separated model names)");
      const r = (await call("POST", "/v1/admin/keys", { ...p, ...(values.key ? { key: values.key } : {}) })) as Record<
        string,
        unknown
      >;
      print(
        r,
        () =>
          `created ${r.id} (${r.name}): tiers ${(r.tiers as string[]).join(",")}, ${r.rpm} rpm, ${r.tpm} tpm, budget ${r.monthly_budget_micros} µ€/month\nkey: ${r.key}\nStore it now: it is not shown again.`,
      );
      return;
    }
    case "list": {
      const r = (await call("GET", "/v1/admin/keys")) as { data: Record<string, unknown>[] };
      const rows = r.data.map((k) => ({
        ...k,
        status: k.revoked_at ? "revoked" : "active",
        created: new Date(k.created_at as number).toISOString().slice(0, 19),
      }));
      print(r, () => table(rows, ["id", "name", "status", "tiers", "rpm", "tpm", "monthly_budget_micros", "created"]));
      return;
    }
    case "get": {
      const r = await call("GET", `/v1/admin/keys/${needId()}`);
      print(r, () => JSON.stringify(r, null, 2));
      return;
    }
    case "update": {
      const path = `/v1/admin/keys/${needId()}`;
      const p = plan(values);
      if (!Object.keys(p).length)
        throw new CliError("update needs at least one of --name --tiers --rpm --tpm --budget-micros");
      const r = await call("PATCH", path, p);
      print(r, () => `updated ${id}: ${JSON.stringify(p)}`);
      return;
    }
    case "revoke": {
      const r = (await call("DELETE", `/v1/admin/keys/${needId()}`)) as { revoked_at: number };
      print(r, () => `revoked ${id} at ${new Date(r.revoked_at).toISOString()}`);
      return;
    }
    case "usage": {
      const q = new URLSearchParams();
      if (values["key-id"]) q.set("key_id", values["key-id"]);
      if (values.from) q.set("from", values.from);
      if (values.to) q.set("to", values.to);
      const r = (await call("GET", `/v1/admin/usage${q.size ? `?${q}` : ""}`)) as { data: Record<string, unknown>[] };
      print(r, () =>
        table(r.data, [
          "date",
          "key_id",
          "tier",
          "requests",
          "rejected",
          "prompt_tokens",
          "cached_tokens",
          "completion_tokens",
          "cost_micros",
        ]),
      );
      return;
    }
    default:
      if (cmd && !values.help) throw new CliError(`unknown command "${cmd}"\n${USAGE}`);
      console.log(USAGE);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (
    err instanceof CliError ||
    (err instanceof Error && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))
  ) {
    console.error(`keys: ${err.message}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
});
