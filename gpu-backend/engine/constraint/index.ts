/**
 * Structured output for the engine: a request's `response_format` (contract/wire.ts) -> a per-sequence
 * logits processor. Schemas compile once and are cached by the hash of the request's cache_salt and the
 * schema's JSON text (property order is part of the grammar, so the text is hashed as sent); the compiled
 * grammar carries its mask cache, so one tenant's requests with the same schema share masks.
 *
 * The salt is the one that keeps tenants out of each other's prefix-cache entries: with it, a tenant cannot
 * time whether another tenant used a schema recently (a cold compile and cold masks are measurably slower).
 * The price is one compile and one set of masks per tenant and schema, bounded by the caches' sizes.
 */
import { createHash } from "node:crypto";
import type { ModelManifest } from "../../../contract/model-manifest";
import type { ResponseFormat } from "../../../contract/wire";
import { compileSchema, JSON_OBJECT_GRAMMAR, SchemaError } from "../../../contract/json-schema";
import { guardSchema } from "../../../contract/schema-guard";
import { MASK_HORIZON } from "./state-keys";
import { CompiledConstraint, Constraint, type Mask } from "./token-mask";
import { VocabIndex } from "./vocab-index";
import { TriggerWatch } from "./trigger";
import { mistralEncode, mistralTokenBytes } from "./vocab";

export { CompiledConstraint, Constraint, type Mask, SchemaError };

/** The request cannot be constrained as asked; `param` is the request field to blame. */
export class ConstraintError extends Error {
  constructor(
    message: string,
    readonly param: string,
  ) {
    super(message);
  }
}

const MAX_GRAMMARS = 64;
const compiled = new Map<string, CompiledConstraint>();
const vocabs = new Map<number, VocabIndex>();

/** The Mistral v1 vocabulary index (built once, ~0.5 s; main.ts may warm it at start). */
export function mistralVocab(eos: number): VocabIndex {
  let v = vocabs.get(eos);
  if (!v) {
    const bytes = mistralTokenBytes();
    // Mask keys clamp counts at MASK_HORIZON on the promise that no token is longer (automaton.maskKey).
    if (bytes.some((b) => b.length > MASK_HORIZON)) throw new Error(`a token is longer than ${MASK_HORIZON} bytes`);
    vocabs.set(eos, (v = new VocabIndex({ bytes, eos }, mistralEncode)));
  }
  return v;
}

/** Compiles (or finds) the constraint for a response_format; throws ConstraintError for what is not supported. */
export function compileResponseFormat(rf: ResponseFormat, manifest: ModelManifest, salt = ""): CompiledConstraint {
  if (manifest.tokenizer.kind !== "mistral-v1-sentencepiece" || manifest.vocab_size !== 32000) {
    throw new ConstraintError(
      `response_format is not supported for model ${manifest.name}'s tokenizer`,
      "response_format",
    );
  }
  try {
    // Size and depth first, iteratively: JSON.stringify of a deeply nested schema would overflow the stack.
    if (rf.type === "json_schema") guardSchema(rf.schema);
  } catch (e) {
    if (e instanceof SchemaError) throw new ConstraintError(e.message, "response_format.schema");
    throw e;
  }
  const text = JSON.stringify(rf);
  const hash = createHash("sha256").update(salt).update("\0").update(text).digest("hex");
  const key = `${manifest.eos_token_id}:${hash}`;
  const hit = compiled.get(key);
  if (hit) {
    // Refresh its place: the map's order is the eviction order.
    compiled.delete(key);
    compiled.set(key, hit);
    return hit;
  }
  let grammar: ReturnType<typeof compileSchema>;
  try {
    grammar = rf.type === "json_object" ? JSON_OBJECT_GRAMMAR : compileSchema(rf.schema);
  } catch (e) {
    if (e instanceof SchemaError) throw new ConstraintError(e.message, "response_format.schema");
    throw e;
  }
  const c = new CompiledConstraint(grammar, mistralVocab(manifest.eos_token_id));
  if (compiled.size >= MAX_GRAMMARS) compiled.delete(compiled.keys().next().value!);
  compiled.set(key, c);
  return c;
}

/**
 * The logits processor for one sequence, or null when the request is unconstrained (it then pays nothing).
 * A format that cannot be enforced throws `refuse(message, param)` (the engine's 400).
 */
export function constraintFor(
  p: { response_format?: ResponseFormat; stop_token_ids: readonly number[]; cache_salt?: string },
  manifest: ModelManifest,
  refuse: (message: string, param: string) => Error,
): Constraint | null {
  if (!p.response_format) return null;
  try {
    return new Constraint(compileResponseFormat(p.response_format, manifest, p.cache_salt), p.stop_token_ids);
  } catch (e) {
    throw e instanceof ConstraintError ? refuse(e.message, e.param) : e;
  }
}

/** A sequence's structured-output parts: a constraint from the first token, or a trigger and its format. */
export interface SequenceFormat {
  constraint: Constraint | null;
  trigger: TriggerWatch | null;
  format: CompiledConstraint | null;
}

/**
 * constraintFor, plus format_trigger: with a trigger the format is compiled (and refused) now, but the
 * constraint starts only once the free text contains the trigger.
 */
export function formatFor(
  p: { response_format?: ResponseFormat; stop_token_ids: readonly number[]; format_trigger?: string },
  manifest: ModelManifest,
  refuse: (message: string, param: string) => Error,
): SequenceFormat {
  if (!p.response_format || p.format_trigger === undefined)
    return { constraint: constraintFor(p, manifest, refuse), trigger: null, format: null };
  let format: CompiledConstraint;
  try {
    format = compileResponseFormat(p.response_format, manifest);
  } catch (e) {
    throw e instanceof ConstraintError ? refuse(e.message, e.param) : e;
  }
  return { constraint: null, trigger: new TriggerWatch(p.format_trigger, format.vocab.full), format };
}
