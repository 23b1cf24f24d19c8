/**
 * `npm run bench:structured [-- --rounds 5] [--model mistral-medium] [--tokens 128] [--threads N] [--json]`:
 * structured output against free text through the real local stack (npm start: wrangler dev, one backend
 * replica serving the tier's dev model), over HTTP with the openai SDK, as a client would.
 *
 * Each round sends one prompt twice, streamed at temperature 0 with the same max_tokens: (a) free text and
 * (b) a `json_schema` response_format whose schema has many fixed keys (the grammar forces the keys,
 * quotes, braces and enum tails, which jump-forward appends without a decode step). The order flips every
 * round. Compared is the decode rate, tokens after the first chunk over the time from the first content
 * chunk to the last, because the dev models have random weights: free text runs to max_tokens, the
 * document may end earlier. Total wall time is printed beside it.
 *
 * What keeps the runs honest: each arm has its own API key (a prefix-cache salt of its own, so one arm
 * never reuses the other's prompt KV), the prompt changes every round (no earlier round's prefix), and the
 * response cache is opt-in (`x-cache-ttl`), which this never sends: every request is decoded. One unmeasured
 * warm-up request per arm first (ONNX Runtime's first runs, the schema's compile and masks: a client that
 * uses one schema repeatedly pays those once).
 */
import Ajv2020 from "ajv/dist/2020";
import OpenAI from "openai";
import { resolve } from "node:path";
import { encode } from "../../worker/tokenizer/index";
import { parseCli, runCli, UsageError } from "../lib/cli";
import { startLocalStack, type LocalStack } from "../lib/local-stack";
import { wranglerTiers } from "../lib/local-worker";

const USAGE = `usage: npm run bench:structured -- [--rounds 5] [--model mistral-medium] [--tokens 128] [--threads N] [--json]

Starts the local stack (npm start; one backend replica with the tier's dev model) and alternates, --rounds
times, the same prompt as free text and as a json_schema response with many fixed keys (temperature 0,
max_tokens --tokens, streamed; the order flips each round). Prints each request's decode rate (tokens
after the first content chunk / time from the first content chunk to the last) and wall time, and the
median of the paired json/free decode-rate ratios. --threads: the backend's ONNX Runtime threads
(default: npm start's, all cores). --json: one JSON object last, on stdout.`;

interface Args {
  rounds: number;
  model: string;
  tokens: number;
  threads: string | undefined;
  json: boolean;
}

function parse(argv: string[]): Args {
  const { values } = parseCli("bench:structured", argv, {
    usage: USAGE,
    options: {
      rounds: { type: "string" },
      model: { type: "string" },
      tokens: { type: "string" },
      threads: { type: "string" },
      json: { type: "boolean" },
    },
  });
  const int = (flag: string, v: string | undefined, def: number, max: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${flag} must be an integer from 1 to ${max}`);
    return n;
  };
  if (values.threads !== undefined) int("threads", values.threads, 0, 256);
  return {
    rounds: int("rounds", values.rounds, 5, 100),
    model: values.model ?? "mistral-medium",
    tokens: int("tokens", values.tokens, 128, 2048),
    threads: values.threads,
    json: values.json ?? false,
  };
}

/**
 * An order record: 12 required properties with descriptive (multi-token) names, one nested object, enums,
 * booleans, bounded integers and short strings. The keys and the enum tails are what the grammar forces.
 */
const SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    order_reference_code: { type: "string", maxLength: 10 },
    customer_full_name: { type: "string", maxLength: 16 },
    customer_loyalty_tier: { type: "string", enum: ["bronze_member", "silver_member", "gold_member"] },
    is_priority_shipment: { type: "boolean" },
    requires_signature_on_delivery: { type: "boolean" },
    number_of_items_in_order: { type: "integer", minimum: 1, maximum: 20 },
    preferred_delivery_window: { type: "string", enum: ["early_morning", "late_afternoon", "evening"] },
    shipping_destination: {
      type: "object",
      additionalProperties: false,
      properties: {
        street_address_line: { type: "string", maxLength: 16 },
        city_name: { type: "string", maxLength: 12 },
        country_iso_code: { type: "string", enum: ["FR", "DE", "IT", "ES", "NL"] },
        is_residential_address: { type: "boolean" },
      },
      required: ["street_address_line", "city_name", "country_iso_code", "is_residential_address"],
    },
    gift_wrapping_requested: { type: "boolean" },
    payment_method_used: { type: "string", enum: ["credit_card", "bank_transfer", "paypal_wallet"] },
    customer_satisfaction_score: { type: "integer", minimum: 0, maximum: 10 },
    order_status_summary: { type: "string", maxLength: 12 },
  },
  required: [
    "order_reference_code",
    "customer_full_name",
    "customer_loyalty_tier",
    "is_priority_shipment",
    "requires_signature_on_delivery",
    "number_of_items_in_order",
    "preferred_delivery_window",
    "shipping_destination",
    "gift_wrapping_requested",
    "payment_method_used",
    "customer_satisfaction_score",
    "order_status_summary",
  ],
} as const;

/** Round `i`'s prompt: the number comes first, so no 16-token prefix block repeats across rounds. */
const prompt = (i: number) =>
  `Order ${i}: Marie Dupont, a gold member, ordered ${3 + (i % 5)} items to be delivered to her home in Lyon, ` +
  `France, in the evening, paid by credit card, with gift wrapping. Summarise this order as a record.`;

type Kind = "free" | "json";

interface Sample {
  kind: Kind;
  completion_tokens: number;
  finish_reason: string;
  /** Tokens after the first content chunk / seconds from the first content chunk to the last. */
  decode_tok_s: number;
  /** completion_tokens / seconds from sending to the end of the stream. */
  wall_tok_s: number;
  wall_ms: number;
  ttft_ms: number;
  /** Tokens the grammar forced (the backend's moe_edge_forced_tokens_total, read around the request). */
  forced_tokens: number;
}

async function measure(client: OpenAI, model: string, kind: Kind, text: string, maxTokens: number): Promise<Sample> {
  const t0 = performance.now();
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: text }],
    temperature: 0,
    max_tokens: maxTokens,
    stream: true,
    stream_options: { include_usage: true },
    ...(kind === "json"
      ? {
          response_format: { type: "json_schema", json_schema: { name: "order_record", schema: SCHEMA, strict: true } },
        }
      : {}),
  });
  let first = 0;
  let last = 0;
  let firstText = "";
  let content = "";
  let finish = "";
  let completion = -1;
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.delta?.content ?? "";
    if (piece) {
      last = performance.now();
      if (!first) (first = last), (firstText = piece);
      content += piece;
    }
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) completion = chunk.usage.completion_tokens;
  }
  const end = performance.now();
  if (completion < 0) throw new Error(`${kind}: the stream carried no usage`);
  if (kind === "json" && finish === "stop" && !validate(JSON.parse(content)))
    throw new Error(`json: a finished document fails the schema: ${content.slice(0, 200)}`);
  // The first chunk can hold more than one token (the sampled one and the run the grammar forces after
  // it): those were produced before the decode window opened. Re-encoding its text counts them.
  const before = Math.max(1, encode(firstText).length);
  const decodeS = (last - first) / 1000;
  return {
    kind,
    completion_tokens: completion,
    finish_reason: finish,
    decode_tok_s: decodeS > 0 ? Math.max(0, completion - before) / decodeS : 0,
    wall_tok_s: completion / ((end - t0) / 1000),
    wall_ms: end - t0,
    ttft_ms: first ? first - t0 : end - t0,
    forced_tokens: 0,
  };
}

const validate = new Ajv2020({ strict: false }).compile(SCHEMA);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function createKey(stack: LocalStack, name: string, tier: string): Promise<string> {
  const res = await fetch(`${stack.base}/v1/admin/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      name,
      tiers: [tier],
      rpm: 1_000_000,
      tpm: 1_000_000_000,
      monthly_budget_micros: 1_000_000_000_000,
    }),
  });
  if (!res.ok) throw new Error(`creating a key: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { key: string }).key;
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const say = (s: string) => (a.json ? process.stderr : process.stdout).write(s + "\n");
  const tier = wranglerTiers(resolve(import.meta.dirname, "../.."), "")[a.model];
  if (!tier) throw new UsageError(`--model ${a.model} is not a tier in wrangler.toml`);
  say(`bench:structured: starting the stack (${a.model}: dev model ${tier.backend_model}, one replica)`);
  const stack = await startLocalStack({
    replicas: 1,
    models: tier.backend_model,
    // Empty: npm start's default (all cores).
    threads: a.threads ?? "",
    timeoutMs: 300_000,
    env: { QUIET_LOGS: "1" },
  });
  try {
    const clients = {
      free: new OpenAI({
        baseURL: `${stack.base}/v1`,
        apiKey: await createKey(stack, "bench-free", a.model),
        maxRetries: 0,
      }),
      json: new OpenAI({
        baseURL: `${stack.base}/v1`,
        apiKey: await createKey(stack, "bench-json", a.model),
        maxRetries: 0,
      }),
    };
    // One replica and one request at a time: the counter's change around a request is that request's.
    const forcedTotal = async () => {
      const res = await fetch(`http://127.0.0.1:${stack.backendPorts[0]}/metrics`, {
        headers: { authorization: `Bearer ${stack.metricsToken}` },
      });
      const line = (await res.text()).split("\n").find((l) => l.startsWith("moe_edge_forced_tokens_total{"));
      return Number(line?.slice(line.lastIndexOf(" ") + 1) ?? 0);
    };
    const run = async (kind: Kind, text: string) => {
      const f0 = await forcedTotal();
      const sample = await measure(clients[kind], a.model, kind, text, a.tokens);
      return { ...sample, forced_tokens: (await forcedTotal()) - f0 };
    };
    await run("free", prompt(0));
    await run("json", prompt(0));
    const rounds: Array<{ order: string; free: Sample; json: Sample; ratio: number }> = [];
    const fmt = (s: Sample) =>
      `${s.decode_tok_s.toFixed(1)} tok/s decode, ${s.completion_tokens} tok (${s.finish_reason}), ${Math.round(s.wall_ms)} ms wall`;
    for (let i = 1; i <= a.rounds; i++) {
      const order: Kind[] = i % 2 ? ["free", "json"] : ["json", "free"];
      const got: Partial<Record<Kind, Sample>> = {};
      for (const kind of order) got[kind] = await run(kind, prompt(i));
      const free = got.free!;
      const json = got.json!;
      const ratio = json.decode_tok_s / free.decode_tok_s;
      rounds.push({ order: order.join(","), free, json, ratio });
      say(`round ${i} (${order.join(" then ")}): free ${fmt(free)}; json ${fmt(json)}; json/free ${ratio.toFixed(2)}`);
    }
    const ratios = rounds.map((r) => r.ratio);
    const summary = {
      model: a.model,
      max_tokens: a.tokens,
      rounds: rounds.length,
      threads: a.threads ?? "all cores",
      median_json_over_free_decode: median(ratios),
      min_json_over_free_decode: Math.min(...ratios),
      max_json_over_free_decode: Math.max(...ratios),
      // Tokens over whole-request time (TTFT included): comparable when both arms ran to max_tokens.
      median_json_over_free_wall: median(rounds.map((r) => r.json.wall_tok_s / r.free.wall_tok_s)),
      median_free_decode_tok_s: median(rounds.map((r) => r.free.decode_tok_s)),
      median_json_decode_tok_s: median(rounds.map((r) => r.json.decode_tok_s)),
      median_json_completion_tokens: median(rounds.map((r) => r.json.completion_tokens)),
      json_forced_token_fraction:
        rounds.reduce((n, r) => n + r.json.forced_tokens, 0) /
        Math.max(
          1,
          rounds.reduce((n, r) => n + r.json.completion_tokens, 0),
        ),
      per_round: rounds,
    };
    say(
      `json/free decode rate: median ${summary.median_json_over_free_decode.toFixed(2)} ` +
        `(${summary.min_json_over_free_decode.toFixed(2)}-${summary.max_json_over_free_decode.toFixed(2)}, ${rounds.length} rounds); ` +
        `median decode free ${summary.median_free_decode_tok_s.toFixed(1)} tok/s, json ${summary.median_json_decode_tok_s.toFixed(1)} tok/s ` +
        `(json ${summary.median_json_completion_tokens} tokens, ${Math.round(100 * summary.json_forced_token_fraction)}% forced); json/free tokens per wall second: median ${summary.median_json_over_free_wall.toFixed(2)}`,
    );
    if (a.json) console.log(JSON.stringify(summary));
  } finally {
    await stack.stop();
  }
}

runCli("bench:structured", main);
