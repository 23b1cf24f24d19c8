/** Spawns the real backend process for the node tests and watches its output (events, never sleeps). */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseGenerateEvent, type GenerateEvent } from "../../../contract/wire";
import { repoRoot } from "../engine-helpers";

export const TOKEN = "test-backend-token-123";
export const auth = { authorization: `Bearer ${TOKEN}` };

export interface Backend {
  proc: ChildProcess;
  url: string;
  stderr: () => string;
  stdout: () => string;
  /** Resolves on the "backend ready" line. */
  ready: Promise<void>;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** Resolves once stdout+stderr match `re` (already matched: at once). */
  waitFor: (re: RegExp) => Promise<void>;
}

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  /** Defaults to --port 0 --threads 1. */
  base?: string[];
}

/** Starts `gpu-backend/main.ts`; resolves once its URL is known (before models are ready). */
export function spawnBackend(args: string[], o: SpawnOptions = {}): Promise<Backend> {
  const b = startBackend(args, o);
  return new Promise((resolve, reject) => {
    void b
      .waitFor(/listening on http:\/\/\S+/)
      .then(() => resolve({ ...b, url: /listening on (http:\/\/\S+)/.exec(b.stderr())![1]! }));
    void b.exited.then((code) => reject(new Error(`backend exited ${code}: ${b.stderr()}`)));
  });
}

/** Like spawnBackend but resolves at once: for processes expected to refuse to start. */
export function startBackend(args: string[], o: SpawnOptions = {}): Omit<Backend, "url"> {
  // node --import tsx (not the tsx CLI): the child IS the server, so kill() reaches it and leaves no orphan.
  // A fresh usage journal per process unless the test names one (never the repo's .dev/journal).
  const journal = args.includes("--journal-dir")
    ? []
    : ["--journal-dir", mkdtempSync(path.join(tmpdir(), "backend-journal-"))];
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", "gpu-backend/main.ts", ...(o.base ?? ["--port", "0", "--threads", "1"]), ...journal, ...args],
    {
      cwd: repoRoot,
      env: { ...process.env, BACKEND_TOKEN: TOKEN, ...o.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let err = "";
  let out = "";
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.re.test(out) || w.re.test(err)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  proc.stderr!.on("data", (d: Buffer) => ((err += d.toString()), check()));
  proc.stdout!.on("data", (d: Buffer) => ((out += d.toString()), check()));
  const exited = new Promise<number | string>((r) =>
    proc.on("exit", (code, sig) => {
      if (journal[1]) rmSync(journal[1], { recursive: true, force: true });
      r(code ?? sig ?? -1);
    }),
  );
  const waitFor = (re: RegExp) =>
    new Promise<void>((resolve) => {
      waiters.push({ re, resolve });
      check();
    });
  return { proc, stderr: () => err, stdout: () => out, ready: waitFor(/backend ready on http/), exited, waitFor };
}

export const post = (url: string, body: unknown, headers: Record<string, string> = auth, signal?: AbortSignal) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });

export async function metric(b: Pick<Backend, "url">, name: string): Promise<number> {
  const text = await (await fetch(`${b.url}/metrics`, { headers: auth })).text();
  const line = text.split("\n").find((l) => l.startsWith(name));
  return line ? Number(line.split(" ").pop()) : NaN;
}

/** Reads a generate stream to its end. */
export async function readEvents(res: Response): Promise<GenerateEvent[]> {
  return (await res.text()).trim().split("\n").map(parseGenerateEvent);
}

export const ids = (n: number, seed = 1) =>
  Array.from({ length: n }, (_, i) => (((i + 3) * 7919 + seed * 31) % 31000) + 500);
