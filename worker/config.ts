/**
 * The worker's secrets, checked once per isolate before anything is served. A secret that is set must
 * be long enough to be one: a short ADMIN_TOKEN, BACKEND_TOKEN or USAGE_TOKEN would let a guesser in
 * (the failed-auth throttle slows guessing, it does not make a 6-character token safe). Unset stays
 * allowed: each one unset turns its feature off (env.ts). `npm start` generates 48-character ones.
 */
import type { Env } from "./env";

export const MIN_SECRET_LENGTH = 32;
export const CHECKED_SECRETS = ["ADMIN_TOKEN", "BACKEND_TOKEN", "USAGE_TOKEN"] as const;

/** One line per secret that is set but shorter than MIN_SECRET_LENGTH (empty: the configuration is sound). */
export function configProblems(env: Env): string[] {
  const problems: string[] = [];
  for (const name of CHECKED_SECRETS) {
    const value = env[name];
    if (value !== undefined && value.length < MIN_SECRET_LENGTH)
      problems.push(
        `${name} is set but shorter than ${MIN_SECRET_LENGTH} characters; set a random one (e.g. \`openssl rand -hex 24\`) or unset it`,
      );
  }
  return problems;
}
