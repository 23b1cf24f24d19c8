/**
 * Opt-in response cache for deterministic chat requests (temperature 0 or a fixed seed), on the
 * Cache API (caches.default). The caller opts in per request with `x-cache-ttl: <seconds>`.
 *
 * Key: HMAC-SHA-256 under CACHE_KEY_SECRET of (key id, model, the tier's backend_model, prompt ids,
 * every sampling parameter, stop, max_tokens, response_format, the tool choice): another key never hits, any parameter change or a model
 * swap behind the tier misses, and since caches.default is shared zone-wide, nobody without the secret
 * can compute (or probe for) an entry's URL. Without CACHE_KEY_SECRET the cache is off (BYPASS). The non-streaming result is stored; a streaming
 * request replays it as SSE. Only finish_reason stop/length results are stored.
 *
 * Billing of a hit (see routes/chat.ts): usage reports exactly what is charged, N cached prompt
 * tokens only (prompt_tokens = cached_tokens = N, completion_tokens = 0; ledger status "cache_hit").
 */
import { badRequest } from "../errors";

export const CACHE_TTL_HEADER = "x-cache-ttl";
export const MAX_CACHE_TTL_S = 7 * 24 * 3600;
const CACHE_ORIGIN = "https://response-cache.moe-edge.internal/v1/";

export interface CachedCompletion {
  text: string;
  finishReason: "stop" | "length";
  completionTokens: number;
}

export interface CacheKeyInput {
  keyId: string;
  model: string;
  /** The tier's backend_model: answers of a swapped model are never served. */
  backendModel: string;
  promptIds: readonly number[];
  temperature: number;
  topP: number;
  seed: number | undefined;
  stop: readonly string[];
  maxTokens: number;
  /** A structured answer is its own entry (contract/wire.ts ResponseFormat, or null for text). */
  responseFormat?: unknown;
  /** Tool choice and parallel_tool_calls (tools/plan.ts planKey; the definitions are in promptIds); null without tools. */
  tools?: unknown;
}

/** The TTL the caller asked for, or null when the header is absent. 400 when malformed. */
export function requestedTtl(header: string | undefined): number | null {
  if (header === undefined) return null;
  const v = header.trim();
  if (!/^\d{1,7}$/.test(v) || Number(v) < 1 || Number(v) > MAX_CACHE_TTL_S) {
    throw badRequest(
      `${CACHE_TTL_HEADER} must be an integer number of seconds from 1 to ${MAX_CACHE_TTL_S}.`,
      CACHE_TTL_HEADER,
    );
  }
  return Number(v);
}

export function isDeterministic(temperature: number, seed: number | undefined): boolean {
  return temperature === 0 || seed !== undefined;
}

/** Shortest CACHE_KEY_SECRET taken (a guessable one counts as unset: no caching). */
export const MIN_CACHE_KEY_SECRET_LENGTH = 32;

export const cacheEnabled = (secret: string | undefined): secret is string =>
  (secret?.length ?? 0) >= MIN_CACHE_KEY_SECRET_LENGTH;

const hmacKeys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let k = hmacKeys.get(secret);
  if (!k) {
    k = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
    hmacKeys.clear(); // one secret in force; a rotated one replaces it
    hmacKeys.set(secret, k);
  }
  return k;
}

export async function cacheKey(input: CacheKeyInput, secret: string): Promise<Request> {
  const canonical = JSON.stringify([
    2,
    input.keyId,
    input.model,
    input.backendModel,
    input.temperature,
    input.topP,
    input.seed ?? null,
    input.stop,
    input.maxTokens,
    input.promptIds,
    // Absent for plain text, so existing keys stay valid.
    ...(input.responseFormat ? [input.responseFormat] : []),
    ...(input.tools ? [{ tools: input.tools }] : []),
  ]);
  const digest = await crypto.subtle.sign("HMAC", await hmacKey(secret), new TextEncoder().encode(canonical));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return new Request(CACHE_ORIGIN + hex);
}

export async function lookup(key: Request): Promise<CachedCompletion | null> {
  try {
    const hit = await caches.default.match(key);
    if (!hit) return null;
    const v = (await hit.json()) as CachedCompletion;
    return typeof v.text === "string" &&
      (v.finishReason === "stop" || v.finishReason === "length") &&
      Number.isInteger(v.completionTokens)
      ? v
      : null;
  } catch {
    return null; // a cache failure is a miss, never an error
  }
}

export async function store(key: Request, value: CachedCompletion, ttlS: number): Promise<void> {
  try {
    await caches.default.put(
      key,
      new Response(JSON.stringify(value), {
        headers: { "content-type": "application/json", "cache-control": `max-age=${ttlS}` },
      }),
    );
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "response cache put failed", error: String(err) }));
  }
}
