/** Throwaway directories for a test file. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll } from "vitest";

/**
 * Returns a maker of fresh directories named `prefix…` under the OS temp dir; all of them are removed
 * after the file's (or the enclosing describe's) tests. Call it where an afterAll may be registered.
 */
export function tmpDirs(prefix: string): () => Promise<string> {
  const made: string[] = [];
  afterAll(async () => {
    for (const d of made) await rm(d, { recursive: true, force: true });
  });
  return async () => {
    const d = await mkdtemp(path.join(tmpdir(), prefix));
    made.push(d);
    return d;
  };
}
