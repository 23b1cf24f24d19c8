/**
 * Moving KV rows between a sequence's slot in the pool and the prefix cache: a new sequence starts from
 * the cached blocks of its prompt, and a prefilled prompt's full blocks go into the cache (their rows are
 * final once prefilled).
 */
import type { ModelManifest } from "../../contract/model-manifest";
import type { KvPool } from "./kv-cache";
import type { PrefixCache } from "./prefix-cache";
import type { Sequence } from "./sequence";

/** Writes the cached blocks of the prompt into the sequence's slot; returns the rows they cover. */
export function loadPrefix(pool: KvPool, prefix: PrefixCache, seq: Sequence): number {
  const hit = prefix.lookup(seq.params.input_ids, seq.params.cache_salt);
  if (hit.length === 0) return 0;
  const bs = prefix.blockSize;
  pool.ensureCapacity(Math.max(pool.slotCapacity, hit.length * bs + 1));
  hit.forEach((b, i) => {
    pool.writeRows(seq.id, i * bs, bs, b.kv);
  });
  pool.setLength(seq.id, hit.length * bs);
  return hit.length * bs;
}

/** Puts the prompt's full blocks into the prefix cache. */
export function storePrefix(pool: KvPool, prefix: PrefixCache, m: ModelManifest, seq: Sequence): void {
  if (prefix.budgetBytes <= 0) return;
  const bs = prefix.blockSize;
  const ids = seq.params.input_ids;
  const hashes = prefix.chain(ids, seq.params.cache_salt);
  const floats = m.num_layers * 2 * m.num_kv_heads * bs * m.head_dim;
  let parent = "root";
  hashes.forEach((h, i) => {
    if (!prefix.has(h)) {
      const kv = new Float32Array(floats);
      pool.readRows(seq.id, i * bs, bs, kv);
      prefix.insert({ hash: h, parent, tokens: Int32Array.from(ids.slice(i * bs, (i + 1) * bs)), kv });
    }
    parent = h;
  });
}
