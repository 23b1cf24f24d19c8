/**
 * Unhealthy replicas are skipped for a short, jittered period: the breaker's cooldown is
 * cooldownMs ± cooldownJitter, drawn from an injected (here seeded) random source, so isolates that saw
 * the same outage do not all return to the replica at one instant; after it, one failure reopens it.
 */
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../gpu-backend/engine/rng";
import { ReplicaRouter } from "../../worker/serving/router";

const replicas = ["http://a.test", "http://b.test"];

/** How long `url` stays ranked last after `failures` failures at `now`, probed at 1 ms resolution. */
function skippedFor(r: ReplicaRouter, clock: { now: number }, url: string, failures: number): number {
  const start = clock.now;
  for (let i = 0; i < failures; i++) r.recordFailure(url);
  let lo = 0;
  let hi = 60_000;
  // Binary search for the first instant the replica is healthy again.
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    clock.now = start + mid;
    if (r.isHealthy(url)) hi = mid;
    else lo = mid + 1;
  }
  clock.now = start + lo;
  return lo;
}

describe("circuit breaker cooldown", () => {
  it("is jittered within cooldownMs ± cooldownJitter, reproducibly for a seed", () => {
    const run = (seed: number) => {
      const clock = { now: 1_000_000 };
      const r = new ReplicaRouter({
        failureThreshold: 3,
        cooldownMs: 5_000,
        cooldownJitter: 0.5,
        now: () => clock.now,
        random: mulberry32(seed),
      });
      const periods: number[] = [];
      for (let i = 0; i < 40; i++) {
        // Three failures open it; past the cooldown one more (the half-open probe failing) reopens it.
        periods.push(skippedFor(r, clock, replicas[0], i === 0 ? 3 : 1));
        expect(r.isHealthy(replicas[0])).toBe(true);
      }
      return periods;
    };
    const periods = run(42);
    for (const p of periods) {
      expect(p).toBeGreaterThanOrEqual(2_500);
      expect(p).toBeLessThanOrEqual(7_500);
    }
    // Spread, not one instant: the draws cover most of the window.
    expect(Math.max(...periods) - Math.min(...periods)).toBeGreaterThan(3_000);
    expect(new Set(periods).size).toBeGreaterThan(30);
    expect(run(42)).toEqual(periods);
    expect(run(43)).not.toEqual(periods);
  });

  it("an open replica is ranked last until its own jittered instant, then first again by its key", () => {
    const clock = { now: 0 };
    const r = new ReplicaRouter({ failureThreshold: 1, cooldownMs: 1_000, now: () => clock.now, random: () => 0.9 });
    const preferred = r.rank(replicas, 7)[0];
    r.recordFailure(preferred);
    // 1000 × (1 + 0.5 × (2 × 0.9 − 1)) = 1400 ms.
    clock.now = 1_399;
    expect(r.rank(replicas, 7)).toEqual([replicas.find((u) => u !== preferred), preferred]);
    clock.now = 1_400;
    expect(r.rank(replicas, 7)[0]).toBe(preferred);
    // Still one failure from the threshold (1 here): the half-open probe failing reopens it at once.
    r.recordFailure(preferred);
    expect(r.isHealthy(preferred)).toBe(false);
  });
});
