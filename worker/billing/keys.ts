/**
 * API keys: generation, hashing, the D1 key store and the isolate-local lookup cache.
 * Keys are "sk-" + 64 hex chars (256 random bits). D1 holds only SHA-256(key); a lookup goes by
 * hash, so no comparison ever runs over the secret itself.
 *
 * Cache: lookups (hits and misses) are cached in isolate memory for CACHE_TTL_MS = 3 s, so a key
 * revoked or re-planned in another isolate is refused / re-read within 3 s (< the 5 s promise).
 * KV is not used for keys: its ~60 s global propagation could not honour that promise.
 * Admin writes also drop the entry from this isolate's cache at once.
 */
import type { ApiKey } from "../../contract/api-accounts";
import type { Account } from "./types";

export const CACHE_TTL_MS = 3_000;
export const CACHE_MAX = 5_000;
/** Misses live in their own, smaller map: a flood of unknown keys can never push a valid key out. */
export const MISS_CACHE_MAX = 1_000;

/** A key as the admin API shows it, less its `object` (contract/api-accounts.ts ApiKey). */
export type KeyRow = Omit<ApiKey, "object">;

export interface Plan {
  name: string;
  tiers: string[];
  rpm: number;
  tpm: number;
  monthly_budget_micros: number;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

export function generateKey(): string {
  return `sk-${hex(crypto.getRandomValues(new Uint8Array(32)))}`;
}

const randomId = (prefix: string, bytes: number) => `${prefix}${hex(crypto.getRandomValues(new Uint8Array(bytes)))}`;

export async function hashKey(key: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key))));
}

/** Caller-chosen keys (dev stack: same key across restarts) must still look strong. */
export const CUSTOM_KEY_RE = /^[A-Za-z0-9_-]{32,200}$/;

interface DbKeyRow {
  id: string;
  name: string;
  tiers: string;
  rpm: number;
  tpm: number;
  monthly_budget_micros: number;
  cache_salt: string;
  created_at: number;
  updated_at: number;
  revoked_at: number | null;
}

const PUBLIC_COLS = "id, name, tiers, rpm, tpm, monthly_budget_micros, created_at, updated_at, revoked_at";

function toKeyRow(r: DbKeyRow): KeyRow {
  return {
    id: r.id,
    name: r.name,
    tiers: JSON.parse(r.tiers) as string[],
    rpm: r.rpm,
    tpm: r.tpm,
    monthly_budget_micros: r.monthly_budget_micros,
    created_at: r.created_at,
    updated_at: r.updated_at,
    revoked_at: r.revoked_at,
  };
}

export class KeyExistsError extends Error {
  constructor(readonly existingId: string) {
    super("key exists");
  }
}

/** Inserts a key; returns its public row. Throws KeyExistsError if that key value is already stored. */
export async function createKey(db: D1Database, key: string, plan: Plan, now = Date.now()): Promise<KeyRow> {
  const keyHash = await hashKey(key);
  const existing = await db.prepare("SELECT id FROM api_keys WHERE key_hash = ?").bind(keyHash).first<{ id: string }>();
  if (existing) throw new KeyExistsError(existing.id);
  const id = randomId("key_", 12);
  await db
    .prepare(
      `INSERT INTO api_keys (id, key_hash, name, tiers, rpm, tpm, monthly_budget_micros, cache_salt, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .bind(
      id,
      keyHash,
      plan.name,
      JSON.stringify(plan.tiers),
      plan.rpm,
      plan.tpm,
      plan.monthly_budget_micros,
      randomId("", 16),
      now,
      now,
    )
    .run();
  misses.delete(keyHash); // a cached miss for this key must not outlive its creation
  return { id, ...plan, created_at: now, updated_at: now, revoked_at: null };
}

export async function listKeys(db: D1Database): Promise<KeyRow[]> {
  const { results } = await db.prepare(`SELECT ${PUBLIC_COLS} FROM api_keys ORDER BY created_at, id`).all<DbKeyRow>();
  return results.map(toKeyRow);
}

export async function getKey(db: D1Database, id: string): Promise<KeyRow | null> {
  const r = await db.prepare(`SELECT ${PUBLIC_COLS} FROM api_keys WHERE id = ?`).bind(id).first<DbKeyRow>();
  return r ? toKeyRow(r) : null;
}

/**
 * Per-field atomic update: only the patched columns are written, in one statement that returns the
 * row as stored, so parallel PATCHes of different fields all land (no read-modify-write of the row).
 */
export async function updateKey(
  db: D1Database,
  id: string,
  patch: Partial<Plan>,
  now = Date.now(),
): Promise<KeyRow | null> {
  const sets: string[] = [];
  const values: (string | number)[] = [];
  const set = (col: string, v: string | number | undefined) => {
    if (v === undefined) return;
    sets.push(`${col} = ?`);
    values.push(v);
  };
  set("name", patch.name);
  set("tiers", patch.tiers && JSON.stringify(patch.tiers));
  set("rpm", patch.rpm);
  set("tpm", patch.tpm);
  set("monthly_budget_micros", patch.monthly_budget_micros);
  // updated_at never goes backwards when two writers race.
  sets.push("updated_at = MAX(updated_at, ?)");
  values.push(now);
  const r = await db
    .prepare(`UPDATE api_keys SET ${sets.join(", ")} WHERE id = ? RETURNING ${PUBLIC_COLS}`)
    .bind(...values, id)
    .first<DbKeyRow>();
  invalidateKeyId(id);
  return r ? toKeyRow(r) : null;
}

/** Revokes (idempotent; the first revocation time is kept). */
export async function revokeKey(db: D1Database, id: string, now = Date.now()): Promise<KeyRow | null> {
  await db
    .prepare("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?), updated_at = ? WHERE id = ?")
    .bind(now, now, id)
    .run();
  invalidateKeyId(id);
  return getKey(db, id);
}

/**
 * Whether the key is revoked now, read from D1 past the isolate cache (a running stream's check).
 * A key that no longer exists counts as revoked.
 */
export async function isRevokedNow(db: D1Database, id: string): Promise<boolean> {
  const r = await db
    .prepare("SELECT revoked_at FROM api_keys WHERE id = ?")
    .bind(id)
    .first<{ revoked_at: number | null }>();
  return !r || r.revoked_at !== null;
}

// --- lookup with a short-lived isolate cache ---

const cache = new Map<string, { account: Account; expires: number }>();
const misses = new Map<string, number>();

function remember<V>(map: Map<string, V>, max: number, k: string, v: V): void {
  map.delete(k);
  if (map.size >= max) map.delete(map.keys().next().value as string);
  map.set(k, v);
}

/** Test hook: whether a valid key's entry is still cached (its hash). */
export function isCached(keyHash: string): boolean {
  return cache.has(keyHash);
}

export function invalidateKeyId(id: string): void {
  for (const [h, e] of cache) if (e.account?.keyId === id) cache.delete(h);
}

/**
 * The account of a key id, read from D1 now (no cache), or null when unknown or revoked: a batch line runs
 * on its batch's key long after the upload, and must stop once the key is revoked or see a changed plan.
 */
export async function accountById(db: D1Database, id: string): Promise<Account | null> {
  const r = await db
    .prepare(`SELECT ${PUBLIC_COLS}, cache_salt FROM api_keys WHERE id = ? AND revoked_at IS NULL`)
    .bind(id)
    .first<DbKeyRow>();
  return r ? toAccount(r) : null;
}

function toAccount(r: DbKeyRow): Account {
  return {
    keyId: r.id,
    name: r.name,
    tiers: JSON.parse(r.tiers) as string[],
    rpm: r.rpm,
    tpm: r.tpm,
    monthlyBudgetMicros: r.monthly_budget_micros,
    cacheSalt: r.cache_salt,
  };
}

/** The account for a presented key, or null when unknown or revoked. */
export async function lookupAccount(db: D1Database, key: string, now = Date.now()): Promise<Account | null> {
  const keyHash = await hashKey(key);
  const hit = cache.get(keyHash);
  if (hit && hit.expires > now) return hit.account;
  const missExpires = misses.get(keyHash);
  if (missExpires !== undefined && missExpires > now) return null;
  const r = await db
    .prepare(`SELECT ${PUBLIC_COLS}, cache_salt FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL`)
    .bind(keyHash)
    .first<DbKeyRow>();
  const account: Account | null = r ? toAccount(r) : null;
  if (account) {
    misses.delete(keyHash);
    remember(cache, CACHE_MAX, keyHash, { account, expires: now + CACHE_TTL_MS });
  } else {
    cache.delete(keyHash);
    remember(misses, MISS_CACHE_MAX, keyHash, now + CACHE_TTL_MS);
  }
  return account;
}
