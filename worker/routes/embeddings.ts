/**
 * POST /v1/embeddings (tiers of kind "embedding", e.g. mistral-embed) via the backend's /v1/embed.
 * input: a string, a list of strings, a list of token ids, or a list of such lists. Strings are
 * tokenized at the edge with BOS prepended (as the model saw text in training); token arrays are sent
 * as given. encoding_format "base64" (the openai SDK's default) is float32 little-endian, base64.
 *
 * Bounded work: at most MAX_EMBED_TOKENS tokens per request (a 400 naming the limit), so an
 * embed takes a few seconds on a replica, well inside EMBED_DEADLINE.ms. The replica answers only when
 * done, so there is no header timer: at the deadline the replica is asked to stop (POST /v1/cancel) and
 * its 409's computed tokens are billed (status error, 504 embedding_timeout). An embed goes to another
 * replica only when the first refused it (connection refused, 429, 5xx), never after it took the work.
 */
import type { Context } from "hono";
import { z } from "zod";
import type { Embeddings } from "../../contract/api-chat";
import { factory, type AppEnv } from "../factory";
import { assertTierAllowed } from "../billing/meter";
import { ApiError, badRequest } from "../errors";
import { BOS_ID, VOCAB_SIZE, encode } from "../tokenizer";
import { EmbedStopped, cancelGenerate, embed } from "../serving/backend";
import { readBody } from "../api/body";
import { ClientGone, dispatch, type AttemptLog, type Dispatched } from "../serving/dispatch";
import { requestScope } from "../api/scope";
import { CLIENT_CLOSED, MeteredRequest } from "../completion/metered";
import { replicaRouter, routingKey } from "../serving/router";
import { replicasOf } from "../serving/live-replicas";
import { getTiers, modelNotFound, type Tier } from "../config/tiers";

export const embeddingsRoutes = factory.createApp();

export const MAX_INPUTS = 256;
/** Tokens per embeddings request, all inputs together (two full 4096-token contexts). */
export const MAX_EMBED_TOKENS = 8192;
/** How long an accepted embed may run before it is cancelled; `graceMs` more for the replica's 409. Tests shorten it. */
export const EMBED_DEADLINE = { ms: 30_000, graceMs: 5_000 };

const embedTimeout = () =>
  new ApiError(
    504,
    "The embedding request took too long and was stopped; send fewer tokens per request.",
    "api_error",
    "embedding_timeout",
  );

const tokenIds = z.array(
  z
    .number()
    .int()
    .min(0)
    .max(VOCAB_SIZE - 1),
);
export const EmbedBodySchema = z.object({
  model: z.string().min(1).max(256),
  input: z.union([z.string(), z.array(z.string()), tokenIds, z.array(tokenIds)]),
  encoding_format: z.enum(["float", "base64"]).nullish(),
});

function embeddingTier(c: Context<AppEnv>, model: string): Tier {
  const tier = getTiers(c.env.TIERS).get(model);
  if (!tier) throw modelNotFound(model);
  assertTierAllowed(c.get("account"), model);
  if (tier.kind !== "embedding")
    throw badRequest(`The model '${model}' is not an embedding model.`, "model", "invalid_model");
  return tier;
}

/** The inputs as token id lists, validated against the tier's context window. */
function toInputs(input: z.infer<typeof EmbedBodySchema>["input"], contextWindow: number): number[][] {
  const list: (string | number[])[] =
    typeof input === "string"
      ? [input]
      : input.length > 0 && typeof input[0] === "number"
        ? [input as number[]]
        : (input as (string | number[])[]);
  if (list.length === 0) throw badRequest("'input' must not be empty.", "input");
  if (list.length > MAX_INPUTS) throw badRequest(`At most ${MAX_INPUTS} inputs per request.`, "input");
  return list.map((item, i) => {
    const param = typeof input === "string" ? "input" : `input[${i}]`;
    const ids = typeof item === "string" ? (item.length ? [BOS_ID, ...encode(item)] : []) : item;
    if (ids.length === 0) throw badRequest("Inputs must not be empty.", param);
    if (ids.length > contextWindow) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${contextWindow} tokens; input ${i} has ${ids.length}.`,
        "invalid_request_error",
        "context_length_exceeded",
        param,
      );
    }
    return ids;
  });
}

function base64Float32(vec: number[]): string {
  const bytes = new Uint8Array(vec.length * 4);
  const view = new DataView(bytes.buffer);
  vec.forEach((v, i) => {
    view.setFloat32(i * 4, v, true);
  });
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

embeddingsRoutes.post("/embeddings", async (c) => {
  const life = new MeteredRequest(requestScope(c, "embeddings"));
  try {
    const body = await readBody(c.req.raw, EmbedBodySchema);
    const model = body.model;
    life.setModel(model);
    const tier = embeddingTier(c, model);
    const inputs = toInputs(body.input, tier.contextWindow);
    const promptTokens = inputs.reduce((n, ids) => n + ids.length, 0);
    if (promptTokens > MAX_EMBED_TOKENS) {
      throw new ApiError(
        400,
        `At most ${MAX_EMBED_TOKENS} tokens per embeddings request (all inputs together); this one has ${promptTokens}.`,
        "invalid_request_error",
        "too_many_tokens",
        "input",
      );
    }

    const admitted = await life.admit(tier.pricing, promptTokens, 0);
    // A client that leaves is a cancellation, as for chat: the replica is asked to stop (POST /v1/cancel)
    // and its answer, a 409 with the tokens it computed, is awaited and billed. The fetch itself is not
    // aborted on a disconnect, or that count would be lost.
    let replica = "";
    const cancel = () => void (replica && cancelGenerate(replica, c.env.BACKEND_TOKEN, life.requestId));
    life.signal.addEventListener("abort", cancel, { once: true });
    const failures: AttemptLog[] = [];
    let done: Dispatched<{ res: Awaited<ReturnType<typeof embed>> | null; computed: number; timedOut: boolean }>;
    try {
      const order = replicaRouter.rank(replicasOf(tier), routingKey(inputs[0], life.account.cacheSalt));
      const work = dispatch(
        replicaRouter,
        order,
        life.signal,
        async (r) => {
          replica = r;
          const ac = new AbortController();
          let timedOut = false;
          let hard: ReturnType<typeof setTimeout> | undefined;
          const deadline = setTimeout(() => {
            timedOut = true;
            void cancelGenerate(r, c.env.BACKEND_TOKEN, life.requestId);
            hard = setTimeout(() => ac.abort(), EMBED_DEADLINE.graceMs); // a replica that ignores the cancel
          }, EMBED_DEADLINE.ms);
          try {
            const res = await embed(
              r,
              c.env.BACKEND_TOKEN,
              { model: tier.backendModel, inputs, request_id: life.requestId, key_id: life.account.keyId, tier: model },
              ac.signal,
            );
            if (!Array.isArray(res.data) || res.data.length !== inputs.length)
              throw new Error("embed response does not match the inputs");
            return { res, computed: promptTokens, timedOut: false };
          } catch (err) {
            if (err instanceof EmbedStopped) return { res: null, computed: err.computedTokens, timedOut };
            // Past the deadline and its grace: not retried elsewhere (this replica took the work).
            if (timedOut) throw embedTimeout();
            throw err;
          } finally {
            clearTimeout(deadline);
            if (hard !== undefined) clearTimeout(hard);
          }
        },
        failures,
      );
      // Keeps the request's I/O alive through a disconnect, so the stopped replica's count is settled.
      c.executionCtx.waitUntil(work.catch(() => {}));
      done = await work;
    } catch (err) {
      life.log.failures = failures;
      life.settleEmpty(err instanceof ClientGone ? "cancelled" : "error");
      throw err;
    } finally {
      life.signal.removeEventListener("abort", cancel);
    }
    done.release();
    replicaRouter.recordSuccess(done.replica);
    // One settlement, whatever the ending: a deadline stop bills what the replica computed as an error
    // (the route's catch logs the 504); a client gone bills it (all of it, if it finished first) as cancelled.
    const status = done.value.timedOut ? "error" : done.value.res === null || life.signal.aborted ? "cancelled" : "ok";
    const billed = { promptTokens: done.value.computed, cachedTokens: 0, completionTokens: 0 };
    life.settle({ ...billed, status });
    if (status === "error") throw embedTimeout();
    const result = done.value.res;
    if (status === "cancelled" || result === null) {
      life.finish(CLIENT_CLOSED, { replica: done.replica, attempts: done.attempts });
      return new Response(null, { status: CLIENT_CLOSED });
    }
    life.finish(200, { replica: done.replica, attempts: done.attempts });
    const b64 = body.encoding_format === "base64";
    return c.json(
      {
        // Mistral's SDK requires an id on embedding responses.
        id: `embd-${life.requestId.replace(/^req_/, "")}`,
        object: "list",
        data: result.data.map((v, index): Embeddings["data"][number] => ({
          object: "embedding",
          embedding: b64 ? base64Float32(v) : v,
          index,
        })),
        model,
        usage: { prompt_tokens: promptTokens, total_tokens: promptTokens, cost_micros: life.costMicros(billed) },
      } satisfies Embeddings,
      200,
      admitted.headers,
    );
  } catch (err) {
    throw life.fail(err);
  }
});
