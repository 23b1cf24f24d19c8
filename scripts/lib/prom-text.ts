/** Reading a Prometheus histogram out of /metrics text, summed over scrapes (several replicas). */

/** Cumulative bucket counts by upper bound, summed over every series of `name` in every text. */
export function histogramBuckets(texts: readonly string[], name: string): Array<[number, number]> {
  const byLe = new Map<number, number>();
  const re = new RegExp(`^${name}_bucket\\{(?:[^}]*,)?le="([^"]+)"[^}]*\\} (\\S+)$`);
  for (const text of texts) {
    for (const line of text.split("\n")) {
      const m = re.exec(line);
      if (!m) continue;
      const le = m[1] === "+Inf" ? Infinity : Number(m[1]);
      byLe.set(le, (byLe.get(le) ?? 0) + Number(m[2]));
    }
  }
  return [...byLe].sort((a, b) => a[0] - b[0]);
}

/** Prometheus's histogram_quantile: linear inside the bucket where the rank falls; NaN when empty. */
export function histogramQuantile(buckets: ReadonlyArray<[number, number]>, q: number): number {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe; // above the last finite bound: the bound is all we know
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}
