/**
 * Limits before work, on the routes that tokenize (chat, embeddings, tokenize/detokenize): the request is
 * counted against its key's RPM for the body's model before the route parses, validates or tokenizes
 * anything, so a key over its RPM costs one Durable Object call, not a 1 MiB tokenization; and a request
 * the route then refuses (too long for the context, a bad field) has still counted.
 *
 * The body is read once, at most MAX_BODY_BYTES (413 first), and handed to the route as a fresh Request. Only
 * a JSON body naming one of the key's tiers is counted here: anything else is the route's 400/404, which
 * counts nothing, as before. A metered request's admit then skips the RPM it already took
 * (billing/meter.ts countRequestFirst); its 429 writes the zero-cost `rejected` row every metered 429 has.
 */
import { readCapped } from "../api/body";
import { countRequestFirst, forgetCountedFirst, recordRejected } from "../billing/meter";
import { factory } from "../factory";
import { getTiers } from "../config/tiers";

/** The body's `model` when it is a tier this key may use; null otherwise (the route answers). */
function modelOf(text: string, allowed: readonly string[], known: ReadonlySet<string>): string | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  const model = typeof body === "object" && body !== null ? (body as { model?: unknown }).model : undefined;
  return typeof model === "string" && allowed.includes(model) && known.has(model) ? model : null;
}

export const rpmFirst = (o: { metered: boolean }) =>
  factory.createMiddleware(async (c, next) => {
    const account = c.get("account");
    if (c.req.method !== "POST" || !account) return next();
    const raw = c.req.raw;
    const text = await readCapped(raw);
    // The route reads the same bytes from a fresh Request (a clone's tee left workerd errors behind when
    // one branch was never read); headers and the client's signal carry over.
    c.req.raw = new Request(raw, { body: text, signal: raw.signal });
    const model = modelOf(text, account.tiers, new Set(getTiers(c.env.TIERS).keys()));
    if (model === null) return next();
    const requestId = c.get("requestId");
    let headers: Record<string, string>;
    try {
      headers = await countRequestFirst(c.env, account, model, requestId);
    } catch (err) {
      if (o.metered && (err as { status?: unknown }).status === 429)
        c.executionCtx.waitUntil(recordRejected(c.env, account, { requestId, model }));
      throw err;
    }
    try {
      await next();
    } finally {
      forgetCountedFirst(requestId);
    }
    // Unmetered routes have no admit to give them x-ratelimit-*: these are theirs.
    if (!o.metered) for (const [k, v] of Object.entries(headers)) if (!c.res.headers.has(k)) c.res.headers.set(k, v);
  });
