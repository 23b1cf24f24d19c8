/**
 * Refuses to serve on an unsound configuration (config.ts): every request, /health included, gets a 503
 * naming the secret to fix, so a deploy with a short token fails its first health check instead of
 * serving with a guessable one. The check runs once per env object (once per isolate) and logs once.
 */
import { ApiError } from "../errors";
import { configProblems } from "../config";
import { factory } from "../factory";

const checked = new WeakMap<object, string[]>();

export const misconfigured = (problems: string[]) =>
  new ApiError(
    503,
    `The server is misconfigured and refuses to serve: ${problems.join("; ")}.`,
    "service_unavailable",
    "server_misconfigured",
  );

export const requireSoundConfig = factory.createMiddleware(async (c, next) => {
  let problems = checked.get(c.env);
  if (!problems) {
    problems = configProblems(c.env);
    checked.set(c.env, problems);
    if (problems.length) console.error(JSON.stringify({ level: "error", where: "config", problems }));
  }
  if (problems.length) throw misconfigured(problems);
  return next();
});
