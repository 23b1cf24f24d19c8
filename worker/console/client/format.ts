/** Display formatting. Money arrives as integer micro-euros and is formatted with integer math. */
const groups = new Intl.NumberFormat("en-US");

export const int = (n: number): string => groups.format(n);

/** €, exact to the micro-euro: 1234567 -> "€1.234567". */
export function eurExact(micros: number): string {
  const whole = Math.floor(micros / 1e6);
  return `€${groups.format(whole)}.${String(micros % 1e6).padStart(6, "0")}`;
}

/** Euros as a plain decimal for CSV (no symbol, no grouping): 1234567 -> "1.234567". */
export const eurDecimal = (micros: number): string =>
  `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, "0")}`;

/**
 * € for people: the API's integer exactly, trailing zeros trimmed down to cents (50000000 -> "€50.00",
 * 12345678 -> "€12.345678", 296 -> "€0.000296"). Never rounded: the console shows the API's figures
 * (docs/billing.md "Rounding") and does no rounding of its own.
 */
export function eur(micros: number): string {
  const exact = eurExact(micros);
  return exact.replace(/(\.\d\d\d*?)0+$/, "$1");
}

/** "2026-11-30 14:03:07" (UTC). */
export const dateTime = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace("T", " ");

/** "1 Dec 2026". */
export const longDate = (iso: string): string =>
  new Date(iso).toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });

/** YYYY-MM-DD of today (UTC) and of the first of this month: the default range everywhere. */
export const today = (): string => new Date().toISOString().slice(0, 10);
export const monthStart = (): string => `${new Date().toISOString().slice(0, 7)}-01`;

/** Each day from `from` to `to` inclusive (YYYY-MM-DD), for chart axes with no gaps. */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (
    let t = Date.parse(`${from}T00:00:00Z`), end = Date.parse(`${to}T00:00:00Z`);
    t <= end && out.length < 400;
    t += 86_400_000
  )
    out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}
