/**
 * REGISTRY_ALLOWED_URLS: the origins a replica may register, set by the operator (comma-separated).
 * Each entry is an origin pattern, `scheme://host[:port]`, where `*` stands for any run of characters
 * except `/` `:` `.`, so `https://gpu-*.example.com` admits `https://gpu-7.example.com` but not
 * `https://gpu-7.evil.example` or `https://gpu.example.com.evil`; a port of `*` admits any port.
 * Unset or empty: nothing may register (the registry is closed), so a leaked REGISTRY_TOKEN alone
 * cannot point traffic at an attacker's host.
 */

export type Allowlist = readonly RegExp[];

const escapeRe = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&");

function patternToRegExp(pattern: string): RegExp | null {
  const m = /^(https?):\/\/([^/:]+)(?::(\d{1,5}|\*))?\/?$/.exec(pattern.trim());
  if (!m) return null;
  const [, scheme, host, port] = m;
  const hostRe = host.toLowerCase().split("*").map(escapeRe).join("[^/:.]+");
  const portRe = port === undefined ? "" : port === "*" ? "(?::\\d{1,5})?" : `:${port}`;
  return new RegExp(`^${scheme}://${hostRe}${portRe}$`);
}

/** Parses the var; malformed entries are dropped (and reported), never widened. */
export function parseAllowlist(raw: string | undefined): Allowlist {
  const out: RegExp[] = [];
  for (const entry of (raw ?? "").split(",")) {
    if (!entry.trim()) continue;
    const re = patternToRegExp(entry);
    if (re) out.push(re);
    else
      console.error(
        JSON.stringify({ level: "error", msg: "invalid REGISTRY_ALLOWED_URLS entry", entry: entry.slice(0, 100) }),
      );
  }
  return out;
}

/** True when `url`'s origin matches an entry and it names nothing beyond an origin (no path). */
export function urlAllowed(url: string, allow: Allowlist): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.pathname !== "/" || u.search || u.hash || u.username || u.password) return false;
  return allow.some((re) => re.test(u.origin));
}
