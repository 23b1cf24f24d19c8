/** `after` and `limit` of the list endpoints (files, batches), checked once: a bad value is a 400. */
import { badRequest } from "../errors";

export function listQuery(
  q: Record<string, string>,
  maxLimit: number,
  defaultLimit = 20,
): { after?: string; limit: number } {
  const raw = q.limit;
  const limit = raw === undefined || raw === "" ? Math.min(defaultLimit, maxLimit) : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit)
    throw badRequest(`'limit' must be an integer from 1 to ${maxLimit}.`, "limit");
  const after = q.after || undefined;
  if (after !== undefined && !/^[A-Za-z0-9_-]{1,128}$/.test(after))
    throw badRequest("'after' is not a valid id.", "after");
  return { after, limit };
}
