/** The mutation list for scripts/mutate.ts: each is one exact text replacement and the tests that must catch it. */
import type { Mutation } from "./lib/mutation";
import { BACKEND_MUTATIONS } from "./mutations-backend";

export type { Mutation };

export const MUTATIONS: Mutation[] = [
  {
    id: "bpe-rightmost-ties",
    area: "tokenizer",
    why: "equal-rank BPE merges taken rightmost-first",
    file: "worker/tokenizer/encode.ts",
    edits: [
      {
        find: "const key = v.rank[merged] * RANK_SHIFT + left;",
        replace: "const key = v.rank[merged] * RANK_SHIFT + (RANK_SHIFT - 1 - left);",
      },
      {
        find: "const left = top - topRank * RANK_SHIFT;",
        replace: "const left = RANK_SHIFT - 1 - (top - topRank * RANK_SHIFT);",
      },
    ],
    tests: ["test/node/tokenizer-pinned.test.ts", "test/node/tokenizer-unit.test.ts"],
  },
  {
    id: "money-cached-at-input",
    area: "billing",
    why: "cached prompt tokens billed at the full input price",
    file: "worker/billing/money.ts",
    edits: [
      { find: "BigInt(cached) * BigInt(price.cached_input) +", replace: "BigInt(cached) * BigInt(price.input) +" },
    ],
    tests: ["test/workers/billing.test.ts", "test/workers/ledger.test.ts"],
  },
  {
    id: "money-round-down",
    area: "billing",
    why: "micro-euro conversion truncates instead of rounding up",
    file: "worker/billing/money.ts",
    edits: [
      {
        find: "return units <= 0n ? 0 : Number((units + UNITS_PER_MICRO - 1n) / UNITS_PER_MICRO);",
        replace: "return units <= 0n ? 0 : Number(units / UNITS_PER_MICRO);",
      },
    ],
    tests: ["test/workers/billing.test.ts"],
  },
  {
    id: "moe-tie-rule",
    area: "graph",
    why: "fused graph keeps QMoE's own tie rule (higher expert wins)",
    file: "scripts/model-builder/moe-graph.ts",
    edits: [
      {
        find: "export const expertSlot = (e: number, E: number): number => E - 1 - e;",
        replace: "export const expertSlot = (e: number, _E: number): number => e;",
      },
    ],
    tests: ["test/node/graph-correctness.test.ts"],
  },
  {
    id: "moe-softmax-all-experts",
    area: "graph",
    why: "sliced routing weights not renormalised over the top-k",
    file: "scripts/model-builder/moe-graph.ts",
    edits: [
      {
        find: 'n("Softmax", [v("top_logits")], [v("top_weights")], { axis: -1 });',
        replace: 'n("Sigmoid", [v("top_logits")], [v("top_weights")]);',
      },
    ],
    tests: ["test/node/graph-correctness.test.ts"],
  },
  {
    id: "stream-settle-no-cached-discount",
    area: "billing",
    why: "the completion's settle bills cached prompt tokens at the full input price (the client still sees the discount)",
    file: "worker/completion/chat.ts",
    edits: [
      {
        find: "      if (admitted) req.settle(settlement);",
        replace: "      if (admitted) req.settle({ ...settlement, cachedTokens: 0 });",
      },
    ],
    tests: ["test/workers/race-and-stream-billing.test.ts", "test/node/e2e-ledger.test.ts"],
  },
  {
    id: "limiter-await-between-read-and-write",
    area: "limiter",
    why: "an await between reading and writing the RPM/TPM buckets lets parallel admits overspend them",
    file: "worker/billing/key-limiter.ts",
    edits: [
      {
        find: "  private admitNow(input: LimiterAdmitInput): LimiterAdmitResult {",
        replace: "  private async admitNow(input: LimiterAdmitInput): Promise<LimiterAdmitResult> {",
      },
      {
        find: "    if (!input.requestCounted) requests.level -= 1;",
        replace: "    await new Promise((r) => setTimeout(r, 1));\n    if (!input.requestCounted) requests.level -= 1;",
      },
    ],
    tests: ["test/workers/race-and-stream-billing.test.ts"],
  },
  {
    id: "auth-malformed-key-looked-up",
    area: "auth",
    why: "keys of the wrong shape are hashed and looked up in D1",
    file: "worker/middleware/auth.ts",
    edits: [
      { find: "  if (!CUSTOM_KEY_RE.test(key)) return false;", replace: "  if (key.length > 256) return false;" },
    ],
    tests: ["test/workers/auth-hardening.test.ts"],
  },
  {
    id: "auth-throttle-off",
    area: "auth",
    why: "failed authentication is never throttled",
    file: "worker/middleware/auth-throttle.ts",
    edits: [
      { find: "  if (wait > 0) throw tooManyFailures(wait);", replace: "  if (wait < 0) throw tooManyFailures(wait);" },
    ],
    tests: ["test/workers/auth-hardening.test.ts"],
  },
  {
    id: "admin-token-any-length",
    area: "auth",
    why: "a 1-character ADMIN_TOKEN (or backend or usage token) is accepted",
    file: "worker/config.ts",
    edits: [{ find: "value.length < MIN_SECRET_LENGTH", replace: "value.length < 1" }],
    tests: ["test/workers/auth-hardening.test.ts"],
  },
  {
    id: "key-misses-evict-hits",
    area: "auth",
    why: "unknown keys share the valid keys' cache and push them out",
    file: "worker/billing/keys.ts",
    edits: [
      {
        find: "    remember(misses, MISS_CACHE_MAX, keyHash, now + CACHE_TTL_MS);",
        replace: "    remember(cache, CACHE_MAX, keyHash, { account: null as never, expires: now + CACHE_TTL_MS });",
      },
    ],
    tests: ["test/workers/auth-hardening.test.ts"],
  },
  {
    id: "admin-patch-whole-row",
    area: "admin",
    why: "PATCH writes every column from a stale read (lost updates under parallel PATCHes)",
    file: "worker/billing/keys.ts",
    edits: [
      {
        find: '  set("name", patch.name);',
        replace:
          '  const cur = await getKey(db, id);\n  await new Promise((r) => setTimeout(r, 5));\n  if (cur) patch = { name: cur.name, tiers: cur.tiers, rpm: cur.rpm, tpm: cur.tpm, monthly_budget_micros: cur.monthly_budget_micros, ...patch };\n  set("name", patch.name);',
      },
    ],
    tests: ["test/workers/auth-hardening.test.ts"],
  },
  {
    id: "body-cap-ignored",
    area: "limits",
    why: "request bodies are read whole, whatever their size",
    file: "worker/api/body.ts",
    edits: [
      {
        find: "  if (declared !== null && !(Number(declared) <= MAX_BODY_BYTES)) throw bodyTooLarge();",
        replace: "  void declared;",
      },
      { find: "    if (size > MAX_BODY_BYTES) {", replace: "    if (size > 1e12) {" },
    ],
    tests: ["test/workers/limits-before-parsing.test.ts"],
  },
  {
    id: "rpm-counted-after-tokenizing",
    area: "limits",
    why: "RPM is counted only at admission, after the body is tokenized: a key over its RPM costs a 1 MiB tokenization, and a prompt refused for length never counts",
    file: "worker/middleware/rpm-first.ts",
    edits: [
      {
        find: "    if (model === null) return next();",
        replace: "    if (model === null || model !== null) return next();",
      },
    ],
    tests: ["test/workers/limits-before-parsing.test.ts"],
  },
  {
    id: "ledger-row-before-admission",
    area: "limits",
    why: "requests refused before admission write a ledger row (with the client's raw model string)",
    file: "worker/completion/metered.ts",
    edits: [
      { find: "    if (!this.settled && (this.admitted || rateRefusal)) {", replace: "    if (!this.settled) {" },
    ],
    tests: ["test/workers/limits-before-parsing.test.ts"],
  },
  {
    id: "tier-probe-403",
    area: "limits",
    why: "a real tier outside the plan answers 403 while an unknown one answers 404",
    file: "worker/billing/meter.ts",
    edits: [
      {
        find: "  if (!account.tiers.includes(model)) throw modelNotFound(model);",
        replace:
          '  if (!account.tiers.includes(model)) throw new ApiError(403, "not allowed", "permission_error", "model_not_allowed", "model");',
      },
    ],
    tests: ["test/workers/validation.test.ts", "test/workers/tokenize.test.ts"],
  },
  {
    id: "turn-cache-shared-across-tenants",
    area: "tokenizer",
    why: "the tokenized-turn cache ignores the account salt (a cross-tenant timing oracle)",
    file: "worker/tokenizer/chat.ts",
    edits: [{ find: '  const key = salt + "\\u0000" + text;', replace: "  const key = text;" }],
    tests: ["test/workers/cache-isolation.test.ts"],
  },
  {
    id: "response-cache-key-no-backend-model",
    area: "cache",
    why: "the response-cache key leaves out the tier's backend_model (old answers survive a model swap)",
    file: "worker/completion/response-cache.ts",
    edits: [{ find: "    input.backendModel,\n", replace: "" }],
    tests: ["test/workers/cache-isolation.test.ts"],
  },
  {
    id: "embed-token-cap-missing",
    area: "embeddings",
    why: "no cap on tokens per embeddings request",
    file: "worker/routes/embeddings.ts",
    edits: [
      {
        find: "    if (promptTokens > MAX_EMBED_TOKENS) {",
        replace: "    if (promptTokens > MAX_EMBED_TOKENS * 100) {",
      },
    ],
    tests: ["test/workers/embeddings-bounds.test.ts"],
  },
  {
    id: "embed-header-timer-retried",
    area: "embeddings",
    why: "a slow embed times out on the header timer, is billed nothing and is retried on other replicas",
    file: "worker/serving/backend.ts",
    edits: [
      {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: source text to find, not a template
        find: "  const res = await post(`${base}${BACKEND_PATHS.embed}`, token, req, signal, null);",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: source text, not a template
        replace: "  const res = await post(`${base}${BACKEND_PATHS.embed}`, token, req, signal, 10);",
      },
    ],
    tests: ["test/workers/embeddings-bounds.test.ts"],
  },
  {
    id: "backend-failure-report-raises-bill",
    area: "billing",
    why: "a stream ended by a backend failure is re-billed at the replica's later, larger count",
    file: "worker/completion/chat.ts",
    edits: [{ find: '...(r.finishReason === "error" ? { deliveredFinal: true } : {}),', replace: "" }],
    tests: ["test/workers/stall.test.ts"],
  },
  {
    id: "final-charge-raised-by-report",
    area: "billing",
    why: "the limiter lets a later report raise a final (delivered) charge",
    file: "worker/billing/key-limiter.ts",
    edits: [{ find: "const fixed = row?.final_charge === 1;", replace: "const fixed = false;" }],
    tests: ["test/workers/usage-witness.test.ts", "test/workers/usage-witness-merge.test.ts"],
  },
  {
    id: "revocation-ignored-by-streams",
    area: "cancellation",
    why: "a revoked key's streams in flight run on to their end",
    file: "worker/completion/chat.ts",
    edits: [{ find: "      unwatch = watchRevocation();", replace: "      unwatch = () => {};" }],
    tests: ["test/workers/revocation.test.ts"],
  },
  {
    id: "rate-refill-uncapped",
    area: "limits",
    why: "a bucket refills past its capacity (an rpm-3 key idle for an hour sends 183 requests at once)",
    file: "worker/billing/rate.ts",
    edits: [
      {
        find: "  return { level: Math.min(capacity, b.level + (elapsed * capacity) / WINDOW_MS), updatedMs: now };",
        replace: "  return { level: b.level + (elapsed * capacity) / WINDOW_MS, updatedMs: now };",
      },
    ],
    tests: ["test/workers/rate.test.ts"],
  },
  {
    id: "money-ceil-one-too-many",
    area: "billing",
    why: "usage.cost_micros rounds a whole number of µ€ up by one",
    file: "worker/billing/money.ts",
    edits: [
      {
        find: "Number((units + UNITS_PER_MICRO - 1n) / UNITS_PER_MICRO)",
        replace: "Number((units + UNITS_PER_MICRO) / UNITS_PER_MICRO)",
      },
    ],
    tests: ["test/workers/money.test.ts"],
  },
  {
    id: "slices-topup-whole-slice",
    area: "billing",
    why: "the last top-up asks for a whole slice, not what is left of max_tokens (a request the budget covers is cut)",
    file: "worker/billing/slices.ts",
    edits: [
      {
        find: "    const want = Math.min(this.slice, this.o.maxTokens - this.reserved);",
        replace: "    const want = this.slice;",
      },
    ],
    tests: ["test/workers/slices.test.ts"],
  },
  {
    id: "money-cached-not-clamped",
    area: "billing",
    why: "cached tokens above the prompt count are not clamped (the input charge goes negative)",
    file: "worker/billing/money.ts",
    edits: [
      {
        find: "const cached = Math.min(tokenCount(t.cachedTokens), prompt);",
        replace: "const cached = tokenCount(t.cachedTokens);",
      },
    ],
    tests: ["test/workers/billing.test.ts"],
  },
  {
    id: "rate-whole-capacity-never",
    area: "limits",
    why: "a request needing exactly the bucket's capacity (tokens = TPM) is refused as never satisfiable",
    file: "worker/billing/rate.ts",
    edits: [
      {
        find: "if (need > capacity || capacity <= 0) return Infinity;",
        replace: "if (need >= capacity || capacity <= 0) return Infinity;",
      },
    ],
    tests: ["test/workers/rate.test.ts", "test/workers/limits.test.ts"],
  },
  {
    id: "slices-refused-drops-last-token",
    area: "billing",
    why: "after a refused top-up the last reserved (paid-for) token is not delivered",
    file: "worker/billing/slices.ts",
    edits: [
      {
        find: "if (this.refused) return generated <= this.reserved;",
        replace: "if (this.refused) return generated < this.reserved;",
      },
    ],
    tests: ["test/workers/slices.test.ts"],
  },
  {
    id: "limiter-ignores-in-flight",
    area: "limits",
    why: "admission checks the budget against spend only, not the reservations in flight",
    file: "worker/billing/key-limiter.ts",
    edits: [{ find: "    const reserved = this.reservedUnits();", replace: "    const reserved = 0n;" }],
    tests: ["test/workers/billing.test.ts"],
  },
  {
    id: "response-cache-key-no-max-tokens",
    area: "cache",
    why: "the response-cache key leaves out max_tokens (a short request replays a longer cached answer)",
    file: "worker/completion/response-cache.ts",
    edits: [{ find: "    input.maxTokens,\n", replace: "" }],
    tests: ["test/workers/cache.test.ts", "test/workers/cache-isolation.test.ts"],
  },
  ...BACKEND_MUTATIONS,
];
