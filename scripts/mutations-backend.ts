/** The backend's entries of the mutation list (scripts/mutations.ts): the engine, its caches and the usage journal. */
import type { Mutation } from "./lib/mutation";

export const BACKEND_MUTATIONS: Mutation[] = [
  {
    id: "engine-kv-length-order",
    area: "engine",
    why: "a finishing sequence's slot release copies a batch-mate's KV before its new row counts",
    file: "gpu-backend/engine/engine.ts",
    edits: [
      {
        find: "    for (const s of active) this.pool.setLength(s.id, ++s.pos);\n    ordered.forEach((s, i) => {\n",
        replace: "    ordered.forEach((s, i) => {\n      if (active.includes(s)) this.pool.setLength(s.id, ++s.pos);\n",
      },
    ],
    tests: ["test/node/engine-batch-invariance.test.ts"],
  },
  {
    id: "engine-cancel-ignored",
    area: "cancellation",
    why: "cancelled sequences are never reaped",
    file: "gpu-backend/engine/engine.ts",
    edits: [
      {
        find: 'for (const s of all) if (s.cancelled) this.finish(s, "cancelled");',
        replace: 'for (const s of all) if (s.cancelled && s.pos < 0) this.finish(s, "cancelled");',
      },
    ],
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
  {
    id: "sampler-bucket-draw",
    area: "sampler",
    why: "a top_p draw picks the bucket after the one its mass fell in",
    file: "gpu-backend/engine/sampler.ts",
    edits: [
      {
        find: "  const id = kernels.drawBucket(c, r);",
        replace: "  const id = kernels.drawBucket(c + 1, r);",
      },
    ],
    tests: ["test/node/sampler.test.ts"],
  },
  {
    id: "allowed-ids-stop-early",
    area: "constraint",
    why: "a stop id whose bytes the grammar allows is listed before the document is complete (the draw can end the JSON early)",
    file: "gpu-backend/engine/constraint/token-mask.ts",
    edits: [{ find: "        if (!this.ends.includes(id)) out[n++] = id;", replace: "        out[n++] = id;" }],
    tests: ["test/node/sampler-among.test.ts"],
  },
  {
    id: "sampler-among-unmapped",
    area: "sampler",
    why: "a draw among the allowed ids returns its position in the list instead of the token id",
    file: "gpu-backend/engine/sampler.ts",
    edits: [
      {
        find: "  return among[sampleToken(compact.subarray(0, n), p, rng)]!;",
        replace: "  return sampleToken(compact.subarray(0, n), p, rng);",
      },
    ],
    tests: ["test/node/sampler-among.test.ts"],
  },
  {
    id: "sampler-weight-polynomial",
    area: "sampler",
    why: "the exp polynomial loses its cubic term (weights off by up to 2e-12)",
    file: "gpu-backend/engine/sampler-weights.ts",
    edits: [{ find: "(1 - x * (1 - x * (1 / 2 - x * (1 / 6))))", replace: "(1 - x * (1 - x * (1 / 2)))" }],
    tests: ["test/node/sampler.test.ts", "test/node/sampler-wasm.test.ts"],
  },
  {
    id: "journal-deletes-open-segment",
    area: "usage journal",
    why: "a fully acknowledged segment is deleted while still open (later records go to a deleted file)",
    file: "gpu-backend/usage/journal.ts",
    edits: [
      {
        find: "      if (seg.closed && seg.unacked.size === 0) await this.remove(seg);",
        replace: "      if (seg.unacked.size === 0) await this.remove(seg);",
      },
    ],
    tests: ["test/node/usage-witness.test.ts", "test/node/backend-usage.test.ts"],
  },
  {
    id: "prefix-lookup-no-refresh",
    area: "cache",
    why: "a prefix-cache hit does not refresh its blocks (eviction becomes FIFO; a hot prompt loses its cache)",
    file: "gpu-backend/engine/prefix-cache.ts",
    edits: [{ find: "    for (const b of hit) this.touch(b);", replace: "    void hit;" }],
    tests: ["test/node/prefix-cache.test.ts"],
  },
  {
    id: "delivery-any-ack-acks-batch",
    area: "usage journal",
    why: "any non-empty `acked` acknowledges the whole batch (ids left out are never re-sent)",
    file: "gpu-backend/usage/delivery.ts",
    edits: [
      {
        find: "        const ours = acked.filter((id) => want.has(id));",
        replace: "        const ours = acked.length > 0 ? [...want] : [];",
      },
    ],
    tests: ["test/node/usage-witness.test.ts"],
  },
  {
    id: "journal-duplicate-replayed",
    area: "usage journal",
    why: "a record in two segments is acked in one only and replayed from the other after a restart",
    file: "gpu-backend/usage/journal.ts",
    edits: [
      {
        find: "if (acked.has(rec.id) || this.pendingById.has(rec.id)) continue;",
        replace: "if (acked.has(rec.id)) continue;",
      },
    ],
    tests: ["test/node/usage-witness.test.ts"],
  },
  {
    id: "delivery-jitter-full-range",
    area: "usage journal",
    why: "retry jitter draws from [0, d] (a retry can come at once: no backoff floor)",
    file: "gpu-backend/usage/delivery.ts",
    edits: [{ find: "return Math.round(d / 2 + (random() * d) / 2);", replace: "return Math.round(random() * d);" }],
    tests: ["test/node/usage-witness.test.ts"],
  },
  {
    id: "prefix-hit-covers-last-token",
    area: "cache",
    why: "a prefix hit may cover the prompt's last token (nothing left to prefill for the first logits)",
    file: "gpu-backend/engine/prefix-cache.ts",
    edits: [
      {
        find: "const usable = Math.floor((tokens.length - 1) / this.blockSize);",
        replace: "const usable = Math.floor(tokens.length / this.blockSize);",
      },
    ],
    tests: ["test/node/prefix-cache.test.ts", "test/node/engine.test.ts"],
  },
];
