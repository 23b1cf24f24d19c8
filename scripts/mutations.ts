/** The mutation list for scripts/mutate.ts: each is one exact text replacement and the tests that must catch it. */
export interface Mutation {
  id: string;
  area: string;
  why: string;
  file: string;
  /** Each `find` must occur exactly once in the file. */
  edits: { find: string; replace: string }[];
  tests: string[];
}

export const MUTATIONS: Mutation[] = [
  {
    id: "bpe-rightmost-ties",
    area: "tokenizer",
    why: "equal-rank BPE merges taken rightmost-first",
    file: "worker/tokenizer/encode.ts",
    edits: [
      { find: "const key = v.rank[merged] * RANK_SHIFT + left;", replace: "const key = v.rank[merged] * RANK_SHIFT + (RANK_SHIFT - 1 - left);" },
      { find: "const left = top - topRank * RANK_SHIFT;", replace: "const left = RANK_SHIFT - 1 - (top - topRank * RANK_SHIFT);" },
    ],
    tests: ["test/node/tokenizer-pinned.test.ts", "test/node/tokenizer-unit.test.ts"],
  },
  {
    id: "money-cached-at-input",
    area: "billing",
    why: "cached prompt tokens billed at the full input price",
    file: "worker/billing/money.ts",
    edits: [{ find: "BigInt(cached) * BigInt(price.cached_input) +", replace: "BigInt(cached) * BigInt(price.input) +" }],
    tests: ["test/workers/billing.test.ts", "test/workers/ledger.test.ts"],
  },
  {
    id: "money-round-down",
    area: "billing",
    why: "micro-euro conversion truncates instead of rounding half up",
    file: "worker/billing/money.ts",
    edits: [{ find: "return Number((units + UNITS_PER_MICRO / 2n) / UNITS_PER_MICRO);", replace: "return Number(units / UNITS_PER_MICRO);" }],
    tests: ["test/workers/billing.test.ts"],
  },
  {
    id: "moe-tie-rule",
    area: "graph",
    why: "fused graph keeps QMoE's own tie rule (higher expert wins)",
    file: "scripts/model-builder/moe-graph.ts",
    edits: [{ find: "export const expertSlot = (e: number, E: number): number => E - 1 - e;", replace: "export const expertSlot = (e: number, _E: number): number => e;" }],
    tests: ["test/node/graph-correctness.test.ts"],
  },
  {
    id: "moe-softmax-all-experts",
    area: "graph",
    why: "sliced routing weights not renormalised over the top-k",
    file: "scripts/model-builder/moe-graph.ts",
    edits: [{ find: 'n("Softmax", [v("top_logits")], [v("top_weights")], { axis: -1 });', replace: 'n("Sigmoid", [v("top_logits")], [v("top_weights")]);' }],
    tests: ["test/node/graph-correctness.test.ts"],
  },
  {
    id: "engine-kv-length-order",
    area: "engine",
    why: "a finishing sequence's slot release copies a batch-mate's KV before its new row counts",
    file: "gpu-backend/engine/engine.ts",
    edits: [{ find: "    for (const s of ordered) this.pool.setLength(s.id, ++s.pos);\n    ordered.forEach((s, i) => this.accept(s, logits.subarray(i * V, (i + 1) * V)));", replace: "    ordered.forEach((s, i) => {\n      this.pool.setLength(s.id, ++s.pos);\n      this.accept(s, logits.subarray(i * V, (i + 1) * V));\n    });" }],
    tests: ["test/node/engine-batch-invariance.test.ts"],
  },
  {
    id: "engine-cancel-ignored",
    area: "cancellation",
    why: "cancelled sequences are never reaped",
    file: "gpu-backend/engine/engine.ts",
    edits: [{ find: "for (const s of all) if (s.cancelled) this.finish(s, \"cancelled\");", replace: "for (const s of all) if (s.cancelled && s.pos < 0) this.finish(s, \"cancelled\");" }],
    tests: ["test/node/engine.test.ts"],
  },
  {
    id: "sampler-nucleus-boundary",
    area: "sampler",
    why: "nucleus cut compares against the wrong target (drops the token that reaches top_p)",
    file: "gpu-backend/engine/sampler.ts",
    edits: [{ find: "const target = p.top_p * sum;", replace: "const target = p.top_p * sum * 0.98;" }],
    tests: ["test/node/sampler.test.ts"],
  },
];
