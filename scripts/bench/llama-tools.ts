/**
 * llama.cpp's own benchmark tools, `llama-bench` and `llama-batched-bench`, compiled on first use from the
 * llama.cpp source node-llama-cpp ships (llama/gitRelease.bundle, the commit its binaries were built from)
 * and linked against node-llama-cpp's prebuilt libraries: two source files each, seconds with a C++
 * compiler, no network, and the very ggml CPU kernels node-llama-cpp picks for this CPU at run time.
 * Why not time node-llama-cpp in-process: its contexts attach no ggml threadpool, so every graph spawns a
 * fresh worker thread, and single-token decode with 2 threads ran 30x slower than llama-bench here (tiny
 * preset: 68-90 against ~2400 tok/s, same libraries, same minute). The tools attach a persistent pool, as
 * llama-server does. Linux only (rpath, .so names).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { NODE_LLAMA_CPP_VERSION, ensureNodeLlamaCpp } from "./llama-cpp";

export interface LlamaTools {
  bench: string;
  batched: string;
  /** node-llama-cpp's binaries folder: the tools run there, so ggml finds its CPU backend variants. */
  libDir: string;
}

/** The prebuilt binaries folder of this platform's node-llama-cpp package (the one with llama-addon.node). */
function prebuiltDir(nlcDir: string): string {
  const scope = path.join(nlcDir, "node_modules/@node-llama-cpp");
  for (const pkg of existsSync(scope) ? readdirSync(scope) : []) {
    const bins = path.join(scope, pkg, "bins");
    for (const d of existsSync(bins) ? readdirSync(bins) : []) {
      if (existsSync(path.join(bins, d, "llama-addon.node"))) return path.join(bins, d);
    }
  }
  throw new Error(`no prebuilt node-llama-cpp binaries under ${scope}`);
}

function run(cmd: string, args: string[], cwd?: string): void {
  const r = spawnSync(cmd, args, { cwd, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(
      `${cmd} ${args.slice(0, 3).join(" ")} failed: ${(r.stderr || String(r.error)).trim().split("\n").at(-1)}`,
    );
  }
}

/** Builds (once) and returns the two tools, in `dir`/bin; `dir` also holds node-llama-cpp. */
export async function ensureLlamaTools(dir: string, log: (s: string) => void): Promise<LlamaTools> {
  if (process.platform !== "linux") throw new Error("bench:llama builds llama.cpp's tools on Linux only");
  await ensureNodeLlamaCpp(dir, log);
  const libDir = prebuiltDir(dir);
  const lib = (re: RegExp) => {
    const f = readdirSync(libDir).find((n) => re.test(n));
    if (!f) throw new Error(`${libDir} has no library matching ${re}`);
    return `-l:${f}`;
  };
  const libs = [
    lib(/^libllama-common(\.v[\d.]+)?\.so$/),
    lib(/^libllama(\.v[\d.]+)?\.so$/),
    lib(/^libggml(\.v[\d.]+)?\.so$/),
    lib(/^libggml-base(\.v[\d.]+)?\.so$/),
  ];
  const src = path.join(dir, "llama.cpp-src");
  const bin = path.join(dir, "bin");
  const cxx = process.env.CXX ?? "c++";
  const tools = { bench: "llama-bench", batched: "batched-bench" };
  const compile = (tool: string, out: string) => [
    "-O2",
    "-DNDEBUG",
    "-std=c++17",
    ...["include", "ggml/include", "common", "vendor", `tools/${tool}`].map((d) => `-I${path.join(src, d)}`),
    path.join(src, `tools/${tool}/${tool}.cpp`),
    path.join(src, `tools/${tool}/main.cpp`),
    "-o",
    out,
    `-L${libDir}`,
    ...libs,
    `-Wl,-rpath,${libDir}`,
    "-lpthread",
  ];
  const stamp = createHash("sha256")
    .update(JSON.stringify([NODE_LLAMA_CPP_VERSION, cxx, compile("x", "y")]))
    .digest("hex");
  const stampFile = path.join(bin, ".stamp");
  const out = { bench: path.join(bin, "llama-bench"), batched: path.join(bin, "llama-batched-bench"), libDir };
  if (
    existsSync(stampFile) &&
    readFileSync(stampFile, "utf8") === stamp &&
    existsSync(out.bench) &&
    existsSync(out.batched)
  ) {
    return out;
  }
  log(
    `building llama-bench and llama-batched-bench (llama.cpp from node-llama-cpp ${NODE_LLAMA_CPP_VERSION}) in ${bin}`,
  );
  if (!existsSync(path.join(src, "tools/llama-bench"))) {
    const bundle = path.join(dir, "node_modules/node-llama-cpp/llama/gitRelease.bundle");
    run("git", ["clone", "--quiet", "--no-checkout", bundle, src]);
    run(
      "git",
      [
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "--quiet",
        "HEAD",
        "--",
        "include",
        "ggml/include",
        "common",
        "vendor",
        "tools/llama-bench",
        "tools/batched-bench",
      ],
      src,
    );
  }
  await mkdir(bin, { recursive: true });
  run(cxx, compile(tools.bench, out.bench));
  run(cxx, compile(tools.batched, out.batched));
  writeFileSync(stampFile, stamp);
  return out;
}

/** Runs a tool to completion (awaited, so nothing else of the bench runs meanwhile). */
function exec(t: LlamaTools, file: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(file, args, { cwd: t.libDir, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${path.basename(file)} exited ${code}: ${stderr.trim().split("\n").at(-1)}`));
    });
  });
}

export interface LlamaBenchResult {
  /** pp<N>: prompt tok/s. */
  ppTps: number;
  /** tg<N>: generation tok/s (single-token decode from an empty context). */
  tgTps: number;
  /** The ggml CPU backend variant loaded, e.g. "zen4". */
  backend: string | null;
  /** llama-bench's settings as it reports them. */
  cpuInfo: string;
  poll: number;
  flashAttn: number;
}

/** `llama-bench -t threads -p pp -n tg -r 1` (with its own warm-up run). */
export async function llamaBench(
  t: LlamaTools,
  gguf: string,
  threads: number,
  pp: number,
  tg: number,
): Promise<LlamaBenchResult> {
  const { stdout, stderr } = await exec(t, t.bench, [
    "-m",
    gguf,
    "-t",
    `${threads}`,
    "-p",
    `${pp}`,
    "-n",
    `${tg}`,
    "-r",
    "1",
    "-o",
    "json",
  ]);
  const rows = JSON.parse(stdout) as Array<{
    n_prompt: number;
    n_gen: number;
    avg_ts: number;
    cpu_info: string;
    poll: number;
    flash_attn: number;
  }>;
  const ppRow = rows.find((r) => r.n_prompt === pp && r.n_gen === 0);
  const tgRow = rows.find((r) => r.n_gen === tg && r.n_prompt === 0);
  if (!ppRow || !tgRow) throw new Error(`llama-bench printed no pp${pp}/tg${tg} rows`);
  return {
    ppTps: ppRow.avg_ts,
    tgTps: tgRow.avg_ts,
    backend: /libggml-cpu-([\w-]+)\.so/.exec(stderr)?.[1] ?? null,
    cpuInfo: tgRow.cpu_info,
    poll: tgRow.poll,
    flashAttn: tgRow.flash_attn,
  };
}

/** Decode tok/s of `pl` sequences decoded together after `npp`-token prompts, for each `pl`. */
export async function batchedBench(
  t: LlamaTools,
  gguf: string,
  threads: number,
  npp: number,
  ntg: number,
  pls: number[],
): Promise<Map<number, number>> {
  const ctx = Math.ceil((Math.max(...pls) * (npp + ntg) + 16) / 256) * 256;
  const { stdout } = await exec(t, t.batched, [
    ...["-m", gguf, "-c", `${ctx}`, "-b", "512", "-ub", "512", "-t", `${threads}`, "-tb", `${threads}`],
    ...["-npp", `${npp}`, "-ntg", `${ntg}`, "-npl", pls.join(","), "--output-format", "jsonl"],
  ]);
  const out = new Map<number, number>();
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const r = JSON.parse(line) as { pl: number; speed_tg: number };
    out.set(r.pl, r.speed_tg);
  }
  for (const pl of pls) if (!out.has(pl)) throw new Error(`llama-batched-bench printed no row for ${pl} sequences`);
  return out;
}
