/**
 * The tiers this deployment sells: the TIERS var (JSON) parsed and validated once per isolate (a bad
 * config is an operator error: requests get a generic 500, the details go to the log). Read by serving
 * (replicas, context), billing (prices) and the routes (which models exist).
 */
import { z } from "zod";
import { ApiError, internalError } from "../errors";

export interface Pricing {
  /** Integer micro-euros per million tokens. */
  input: number;
  cached_input: number;
  output: number;
}

const microEuros = z.number().int().nonnegative();

const TierSchema = z.object({
  backends: z.array(z.string().url()).min(1),
  backend_model: z.string().min(1),
  context_window: z.number().int().positive(),
  kind: z.enum(["chat", "embedding"]).default("chat"),
  price: z.object({ input: microEuros, cached_input: microEuros, output: microEuros }),
});

const TiersSchema = z.record(z.string().min(1), TierSchema).refine((t) => Object.keys(t).length > 0, "no tiers");

export interface Tier {
  /** Public model name, e.g. "mistral-small". */
  name: string;
  kind: "chat" | "embedding";
  /** Replica base URLs without a trailing slash. */
  backends: string[];
  backendModel: string;
  contextWindow: number;
  pricing: Pricing;
}

export type Tiers = ReadonlyMap<string, Tier>;

let cached: { raw: string; tiers: Tiers | null } | undefined;

/** Parses TIERS; throws an Error with the reason (never reaches a user). */
export function parseTiers(raw: string): Tiers {
  const parsed = TiersSchema.parse(JSON.parse(raw));
  const tiers = new Map<string, Tier>();
  for (const [name, t] of Object.entries(parsed)) {
    tiers.set(name, {
      name,
      kind: t.kind,
      backends: t.backends.map((b) => b.replace(/\/+$/, "")),
      backendModel: t.backend_model,
      contextWindow: t.context_window,
      pricing: { ...t.price },
    });
  }
  return tiers;
}

/** The isolate's tiers; re-parsed only when the raw var changes (tests swap it). */
export function getTiers(raw: string | undefined): Tiers {
  if (cached?.raw !== (raw ?? "")) {
    let tiers: Tiers | null = null;
    try {
      tiers = parseTiers(raw ?? "");
    } catch (err) {
      console.error(
        JSON.stringify({
          level: "error",
          msg: "invalid TIERS config",
          error: err instanceof Error ? err.message : String(err),
        }),
      );
    }
    cached = { raw: raw ?? "", tiers };
  }
  if (!cached.tiers) throw internalError();
  return cached.tiers;
}

/** 404 in the OpenAI shape, identical for unknown and not-permitted models (no probing of tier names). */
export function modelNotFound(model: string): ApiError {
  return new ApiError(
    404,
    `The model '${model.slice(0, 100)}' does not exist or you do not have access to it.`,
    "not_found_error",
    "model_not_found",
    "model",
  );
}
