import { describe, expect, it } from "vitest";
import { BLOCK_SIZE, ReplicaRouter, routingKey } from "../../worker/serving/router";

const replicas = ["http://a.test", "http://b.test", "http://c.test", "http://d.test"];
const prompt = (seed: number, len = 100) => [
  1,
  ...Array.from({ length: len - 1 }, (_, i) => 259 + ((seed * 7919 + i * 31) % 31000)),
];

describe("prefix-aware routing", () => {
  it("requests sharing a prefix go to the same replica (the continuation does not matter)", () => {
    const r = new ReplicaRouter();
    const base = prompt(1, 64);
    const first = r.rank(replicas, routingKey([...base, 5, 6, 7], "salt-A"))[0];
    for (let i = 0; i < 20; i++) {
      expect(r.rank(replicas, routingKey([...base, ...prompt(100 + i, 10 + i)], "salt-A"))[0]).toBe(first);
    }
  });

  it("different prompts spread over replicas", () => {
    const r = new ReplicaRouter();
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const pick = r.rank(replicas, routingKey(prompt(i), "salt"))[0];
      counts.set(pick, (counts.get(pick) ?? 0) + 1);
    }
    expect(counts.size).toBe(4);
    for (const c of counts.values()) expect(c).toBeGreaterThan(60);
  });

  it("the same prompt under different account salts spreads (accounts never share a key)", () => {
    const r = new ReplicaRouter();
    const p = prompt(7);
    expect(routingKey(p, "s1")).not.toBe(routingKey(p, "s2"));
    const picks = new Set(Array.from({ length: 40 }, (_, i) => r.rank(replicas, routingKey(p, `salt-${i}`))[0]));
    expect(picks.size).toBeGreaterThanOrEqual(3);
  });

  it("only the leading full blocks decide; a short prompt is hashed whole", () => {
    const p = prompt(3, 4 * BLOCK_SIZE);
    expect(routingKey([...p, 1, 2, 3], "s")).toBe(routingKey([...p, 9], "s"));
    expect(routingKey([1, 2, 3], "s")).not.toBe(routingKey([1, 2, 4], "s"));
  });

  it("ranking is a permutation and removing a replica moves only its keys (rendezvous)", () => {
    const r = new ReplicaRouter();
    let moved = 0;
    for (let i = 0; i < 200; i++) {
      const key = routingKey(prompt(i), "s");
      const all = r.rank(replicas, key);
      expect([...all].sort()).toEqual([...replicas].sort());
      const without = r.rank(
        replicas.filter((u) => u !== "http://d.test"),
        key,
      );
      if (all[0] !== "http://d.test") expect(without[0]).toBe(all[0]);
      else moved++;
    }
    expect(moved).toBeGreaterThan(0);
  });

  it("an unhealthy replica (open circuit) goes last, and comes back after the cooldown", () => {
    let now = 1_000;
    const r = new ReplicaRouter({ failureThreshold: 2, cooldownMs: 5_000, cooldownJitter: 0, now: () => now });
    const key = routingKey(prompt(11), "s");
    const preferred = r.rank(replicas, key)[0];
    r.recordFailure(preferred);
    expect(r.rank(replicas, key)[0]).toBe(preferred); // one failure is not enough
    r.recordFailure(preferred);
    const ranked = r.rank(replicas, key);
    expect(ranked[0]).not.toBe(preferred);
    expect(ranked[ranked.length - 1]).toBe(preferred);
    now += 5_001;
    expect(r.rank(replicas, key)[0]).toBe(preferred);
    r.recordSuccess(preferred);
    r.recordFailure(preferred);
    expect(r.rank(replicas, key)[0]).toBe(preferred); // success reset the count
  });

  it("an overloaded replica is avoided: bounded load, hot above max(abs, rel × mean)", () => {
    const r = new ReplicaRouter({ balanceAbsThreshold: 4, balanceRelThreshold: 1.5 });
    const key = routingKey(prompt(12), "s");
    const preferred = r.rank(replicas, key)[0];
    const releases = Array.from({ length: 4 }, () => r.acquire(preferred));
    expect(r.rank(replicas, key)[0]).toBe(preferred); // 4 - 0 is not > 4: stay on the cache
    releases.push(r.acquire(preferred));
    const other = r.rank(replicas, key)[0];
    expect(other).not.toBe(preferred);
    expect(r.inFlight(other)).toBe(0);
    for (const rel of releases) rel();
    releases[0](); // releasing twice is harmless
    expect(r.inFlight(preferred)).toBe(0);
    expect(r.rank(replicas, key)[0]).toBe(preferred);
  });
});
