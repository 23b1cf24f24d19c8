/**
 * The prefix cache's eviction order (gpu-backend/engine/prefix-cache.ts): least recently USED, not least
 * recently inserted. A hit refreshes its blocks, so a hot system prompt keeps its cache (and its
 * cached-token price) while one-off prompts come and go. Unit test, then the same through the backend's HTTP.
 */
import { describe, expect, it } from "vitest";
import type { GenerateEvent } from "../../contract/wire";
import { PrefixCache } from "../../gpu-backend/engine/prefix-cache";
import { devModel } from "./engine-helpers";
import { ids, post, readEvents, useBackend } from "./helpers/backend";

/** One-block prompts plus the token a prefill needs after the cached blocks. */
function put(pc: PrefixCache, tokens: number[], salt = ""): void {
  const [hash] = pc.chain(tokens, salt);
  pc.insert({ hash: hash!, parent: "root", tokens: Int32Array.from(tokens.slice(0, 4)), kv: new Float32Array(8) });
}

describe("PrefixCache eviction", () => {
  it("evicts the least recently used block: a lookup hit refreshes it", () => {
    const blockBytes = 8 * 4 + 4 * 4 + 128;
    const pc = new PrefixCache(4, blockBytes * 2);
    const a = [1, 2, 3, 4, 99];
    const b = [5, 6, 7, 8, 99];
    const c = [9, 10, 11, 12, 99];
    put(pc, a);
    put(pc, b);
    expect(pc.lookup(a, "")).toHaveLength(1); // a is now the most recently used
    put(pc, c); // full: one block must go, and it is b
    expect(pc.snapshot()).toMatchObject({ entries: 2, evictions: 1 });
    expect(pc.lookup(a, "")).toHaveLength(1);
    expect(pc.lookup(b, "")).toHaveLength(0);
    expect(pc.lookup(c, "")).toHaveLength(1);
  });

  it("a miss or a salted lookup refreshes nothing", () => {
    const pc = new PrefixCache(4, (8 * 4 + 4 * 4 + 128) * 2);
    const a = [1, 2, 3, 4, 99];
    const b = [5, 6, 7, 8, 99];
    put(pc, a);
    put(pc, b);
    expect(pc.lookup(a, "other tenant")).toHaveLength(0);
    put(pc, [9, 10, 11, 12, 99]);
    expect(pc.lookup(a, "")).toHaveLength(0);
    expect(pc.lookup(b, "")).toHaveLength(1);
  });
});

/**
 * The tiny dev model's block: 2 layers × K,V × 2 kv heads × 16 rows × 32 dims of float32, plus its tokens
 * and 128 bytes of overhead = 16,576 bytes, so --prefix-cache-mb 1 holds 63 blocks: two 30-block prompts.
 */
describe("the backend's prefix cache over HTTP (--prefix-cache-mb 1)", () => {
  const b = useBackend(["--model", devModel("tiny"), "--prefix-cache-mb", "1"]);
  let n = 0;
  const cached = async (prompt: number[]) => {
    const body = { model: "tiny", input_ids: prompt, max_tokens: 1, request_id: `pc-${++n}` };
    const events = await readEvents(await post(`${b.url}/v1/generate`, body));
    return (events.at(-1) as Extract<GenerateEvent, { type: "done" }>).usage.cached_tokens;
  };

  it("a prompt used again keeps its cached tokens after two others pass through", async () => {
    const hot = ids(481, 1); // 30 full blocks before the last token
    expect(await cached(hot)).toBe(0);
    expect(await cached(ids(481, 2))).toBe(0);
    expect(await cached(hot)).toBe(480); // hit: now the most recently used
    expect(await cached(ids(481, 3))).toBe(0); // evicts the other prompt's blocks, not the hot one's
    expect(await cached(hot)).toBe(480);
  });
});
