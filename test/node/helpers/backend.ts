/** Spawns the real backend process for the node tests and watches its output (events, never sleeps). */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import { parseGenerateEvent, type GenerateEvent } from "../../../contract/wire";
import { repoRoot } from "./paths";

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

/**
 * One backend for the enclosing describe: spawned before its tests (and, unless `ready: false`, with its
 * models loaded), SIGKILLed after them. The object is filled in by the beforeAll.
 */
export function useBackend(args: string[], o: SpawnOptions & { ready?: boolean } = {}): Backend {
  const b = {} as Backend;
  beforeAll(async () => {
    Object.assign(b, await spawnBackend(args, o));
    if (o.ready !== false) await b.ready;
  });
  afterAll(() => {
    b.proc?.kill("SIGKILL");
  });
  return b;
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

/** A streamed response body read as text, a piece at a time. */
export interface StreamText {
  /** Reads on until `pred` holds of what arrived (or the stream ends); returns what arrived. */
  until(pred: (text: string) => boolean): Promise<string>;
  /** Reads to the end; returns the whole text. */
  rest(): Promise<string>;
}

export function streamText(res: Response): StreamText {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const until = async (pred: (text: string) => boolean) => {
    while (!pred(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    return text;
  };
  return { until, rest: () => until(() => false) };
}

/** Reads a generate stream until `n` token events arrived; returns it to go on with. */
export async function readTokens(res: Response, n: number): Promise<StreamText> {
  const s = streamText(res);
  await s.until((text) => (text.match(/"tokens"/g) ?? []).length >= n);
  return s;
}

/** Reads a generate stream to its end. */
export async function readEvents(res: Response): Promise<GenerateEvent[]> {
  return (await res.text()).trim().split("\n").map(parseGenerateEvent);
}

export const ids = (n: number, seed = 1) =>
  Array.from({ length: n }, (_, i) => (((i + 3) * 7919 + seed * 31) % 31000) + 500);
