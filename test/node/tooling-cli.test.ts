/**
 * The command-line tools behave alike: `--help` is usage and exit 0, an unknown flag is one
 * line and exit 2; `logits` prints top-k tokens with their text; `tokenize` takes text, ids and stdin, and
 * never waits on a terminal; npm reads the project config without warnings.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { devModel } from "./engine-helpers";
import { repoRoot as root } from "./helpers/paths";
import { runScript as run } from "./helpers/process";

/** The npm scripts and what they run. */
const SCRIPTS: Array<[string, string]> = [
  ["start", "scripts/start.ts"],
  ["backend", "gpu-backend/main.ts"],
  ["models", "scripts/dev-models.ts"],
  ["build-model", "scripts/build-model.ts"],
  ["logits", "scripts/logits.ts"],
  ["tokenize", "scripts/tokenize.ts"],
  ["keys", "scripts/keys.ts"],
  ["bench", "scripts/bench/all.ts"],
  ["bench:build", "scripts/bench/build.ts"],
  ["bench:engine", "scripts/bench/engine.ts"],
  ["bench:profile", "scripts/bench/profile.ts"],
  ["bench:bandwidth", "scripts/bench/bandwidth.ts"],
  ["bench:tokenizer", "scripts/bench/tokenizer.ts"],
  ["bench:edge", "scripts/bench/edge.ts"],
  ["bench:llama", "scripts/bench/llama-reference.ts"],
  ["bench:structured", "scripts/bench/structured.ts"],
  ["bench:xgrammar", "scripts/bench/constraint-xgrammar.ts"],
  ["bench:batch", "scripts/bench/batch.ts"],
  ["bench:sampler", "scripts/bench/sampler.ts"],
  ["soak", "scripts/soak.ts"],
  ["build:console", "scripts/build-console.ts"],
  ["build:wasm", "scripts/build-wasm.ts"],
  ["mutate", "scripts/mutate.ts"],
];

describe("every script", () => {
  it("is the one package.json runs", () => {
    const scripts = (
      JSON.parse(readFileSync(resolve(root, "package.json"), "utf8")) as { scripts: Record<string, string> }
    ).scripts;
    for (const [name, file] of SCRIPTS) expect(scripts[name], name).toContain(file);
  });

  // Two at a time: each is a Node start with tsx on a shared 2-core machine.
  const pairs = Array.from({ length: Math.ceil(SCRIPTS.length / 2) }, (_, i) => SCRIPTS.slice(2 * i, 2 * i + 2));
  it.each(pairs.map((p) => [p.map(([n]) => n).join(", "), p] as const))(
    "%s: --help is usage and exit 0; an unknown flag is one line and exit 2",
    async (_, pair) => {
      await Promise.all(
        pair.map(async ([name, file]) => {
          const help = await run(file, ["--help"]);
          expect(help.status, `${name} --help: ${help.stderr}`).toBe(0);
          expect(help.stdout, name).toMatch(/^usage: /);
          const bad = await run(file, ["--no-such-flag"]);
          expect(bad.status, `${name} --no-such-flag`).toBe(2);
          expect(bad.stdout, name).toBe("");
          const lines = bad.stderr.trim().split("\n");
          expect(lines, name).toHaveLength(1);
          expect(lines[0], name).toMatch(/Unknown option '--no-such-flag'/);
        }),
      );
    },
  );
});

describe("npm run logits", () => {
  it("prints the top-k next tokens with their text, or the same as JSON", async () => {
    const model = devModel("tiny");
    const table = await run("scripts/logits.ts", [
      "--model",
      model,
      "--text",
      "The quick brown",
      "--top-k",
      "3",
      "--threads",
      "1",
    ]);
    expect(table.status, table.stderr).toBe(0);
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^after position 3 \(id \d+ "▁brown"\):$/);
    expect(lines.slice(1)).toHaveLength(3);
    for (const l of lines.slice(1)) expect(l).toMatch(/^\s+\d\.\s+\d+\s+".*"\s+logit\s+-?\d+\.\d{4}\s+p \d\.\d{4}$/);
    const json = await run("scripts/logits.ts", [
      "--model",
      model,
      "--ids",
      "1,415,2936",
      "--top-k",
      "2",
      "--all",
      "--json",
      "--threads",
      "1",
    ]);
    expect(json.status, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout) as {
      positions: Array<{
        position: number;
        id: number;
        top: Array<{ id: number; piece: string; logit: number; p: number }>;
      }>;
    };
    expect(out.positions.map((p) => p.id)).toEqual([1, 415, 2936]);
    for (const p of out.positions) {
      expect(p.top).toHaveLength(2);
      expect(p.top[0]!.logit).toBeGreaterThanOrEqual(p.top[1]!.logit);
      expect(p.top[0]!.p).toBeGreaterThan(0);
      expect(typeof p.top[0]!.piece).toBe("string");
    }
  });
});

describe("npm run tokenize", () => {
  it("tokenizes arguments, detokenizes ids, and answers JSON lines on stdin", async () => {
    const text = await run("scripts/tokenize.ts", ["Hello world", "--pieces"]);
    expect(text.status, text.stderr).toBe(0);
    expect(JSON.parse(text.stdout)).toEqual({ ids: [22557, 1526], pieces: ["▁Hello", "▁world"] });
    const back = await run("scripts/tokenize.ts", ["--detokenize", "22557,1526"]);
    expect(JSON.parse(back.stdout)).toEqual({ text: "Hello world" });
    const lines = await run(
      "scripts/tokenize.ts",
      [],
      `${JSON.stringify({ text: "Hello world" })}\n${JSON.stringify({ ids: [22557, 1526] })}\n`,
    );
    expect(
      lines.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([{ ids: [22557, 1526] }, { text: "Hello world" }]);
    const bad = await run("scripts/tokenize.ts", ["--detokenize", "1,x"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe('tokenize: --detokenize takes comma-separated ids, got "1,x"');
  });

  // util-linux's `script` gives the child a pseudo-terminal on stdin, as a user's shell would.
  it.skipIf(!existsSync("/usr/bin/script"))(
    "with no argument on a terminal, says what it expects instead of waiting",
    () => {
      const cmd = `${JSON.stringify(process.execPath)} --import tsx scripts/tokenize.ts`;
      const r = spawnSync("/usr/bin/script", ["-qec", cmd, "/dev/null"], {
        cwd: root,
        encoding: "utf8",
        input: "",
        timeout: 60_000,
      });
      expect(r.status).toBe(2);
      expect(r.stdout).toMatch(
        /tokenize: nothing to tokenize: give "text" as an argument, or pipe JSON lines on stdin/,
      );
    },
  );
});

describe("npm configuration", () => {
  it("npm reads the project's config without warnings, and onnxruntime-node's download stays off", () => {
    const r = spawnSync("npm", ["pkg", "get", "name"], { cwd: root, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(/Unknown project config|npm warn/);
    expect(readFileSync(resolve(root, ".npmrc"), "utf8")).not.toMatch(/^onnxruntime-node-install/m);
    const pkg = JSON.parse(readFileSync(resolve(root, "package.json"), "utf8")) as {
      allowScripts?: Record<string, boolean>;
    };
    expect(pkg.allowScripts?.["onnxruntime-node"]).toBe(false);
  });
});
