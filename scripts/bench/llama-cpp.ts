/**
 * llama.cpp as a measuring stick, through node-llama-cpp's prebuilt CPU binaries. It is not a project
 * dependency (CI never downloads it): the reference bench installs one pinned version on demand into a
 * git-ignored cache folder, with only this platform's binary package (no CUDA/Vulkan builds), and loads it
 * from there: in-process for the export check's logits and for llama.cpp's CPU feature line, and as the
 * libraries and source of llama.cpp's benchmark tools (llama-tools.ts). The types below are the small part
 * of its API the bench uses.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";

/** Newer releases have broken `npm ci` here; bump deliberately. */
export const NODE_LLAMA_CPP_VERSION = "3.21.1";

export interface NlcSequence {
  evaluate(tokens: number[], options?: { temperature?: number }): AsyncGenerator<number, void, void>;
  controlledEvaluate(
    input: Array<number | [number, { generateNext: { probabilities: true } }]>,
  ): Promise<Array<undefined | { next?: { probabilities?: Map<number, number> } }>>;
  clearHistory(): Promise<void>;
  dispose(): void;
}
export interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
  readonly flashAttention: boolean;
  readonly currentThreads: number;
}
export interface NlcModel {
  createContext(options: {
    contextSize: number;
    sequences?: number;
    batchSize?: number;
    threads?: { ideal: number; min: number };
  }): Promise<NlcContext>;
  dispose(): Promise<void>;
}
export interface NlcLlama {
  readonly systemInfo: string;
  loadModel(options: { modelPath: string; gpuLayers?: number }): Promise<NlcModel>;
  dispose(): Promise<void>;
}
type LogLevel = "disabled" | "fatal" | "error" | "warn" | "info" | "log" | "debug";
interface NlcModule {
  getLlama(options: {
    gpu: false;
    build: "never";
    maxThreads: number;
    logLevel: LogLevel;
    logger: (level: LogLevel, message: string) => void;
  }): Promise<NlcLlama>;
}

/** node-llama-cpp's binary package for this machine. */
function platformPackage(): string {
  const p = process.platform;
  const a = process.arch;
  if (p === "linux" && (a === "x64" || a === "arm64")) return `@node-llama-cpp/linux-${a}`;
  if (p === "darwin" && a === "arm64") return "@node-llama-cpp/mac-arm64-metal";
  if (p === "darwin" && a === "x64") return "@node-llama-cpp/mac-x64";
  if (p === "win32" && a === "x64") return "@node-llama-cpp/win-x64";
  throw new Error(`no node-llama-cpp prebuilt binary for ${p}-${a}`);
}

function installedVersion(dir: string): string | null {
  const pj = path.join(dir, "node_modules/node-llama-cpp/package.json");
  if (!existsSync(pj)) return null;
  return (JSON.parse(readFileSync(pj, "utf8")) as { version: string }).version;
}

/**
 * Installs node-llama-cpp (pinned) into `dir` unless it is there already; returns its entry module path.
 * Optional dependencies are omitted (they are the other platforms' and the GPU builds, ~650 MB), and its
 * postinstall does not run (it would try to build llama.cpp from source when no prebuilt binary fits).
 */
export async function ensureNodeLlamaCpp(dir: string, log: (s: string) => void): Promise<string> {
  const entry = path.join(dir, "node_modules/node-llama-cpp/dist/index.js");
  if (
    installedVersion(dir) !== NODE_LLAMA_CPP_VERSION ||
    !existsSync(path.join(dir, "node_modules", platformPackage()))
  ) {
    await mkdir(dir, { recursive: true });
    const deps = { "node-llama-cpp": NODE_LLAMA_CPP_VERSION, [platformPackage()]: NODE_LLAMA_CPP_VERSION };
    writeFileSync(
      path.join(dir, "package.json"),
      `${JSON.stringify({ name: "llama-ref-cache", private: true, dependencies: deps }, null, 2)}\n`,
    );
    log(`installing node-llama-cpp ${NODE_LLAMA_CPP_VERSION} into ${dir} (once)`);
    const r = spawnSync(
      "npm",
      ["install", "--no-audit", "--no-fund", "--omit=optional", "--ignore-scripts", "--loglevel=error"],
      { cwd: dir, stdio: ["ignore", "inherit", "inherit"] },
    );
    if (r.status !== 0) throw new Error(`npm install of node-llama-cpp ${NODE_LLAMA_CPP_VERSION} failed in ${dir}`);
  }
  return entry;
}

export interface LlamaRuntime {
  llama: NlcLlama;
  /** llama.cpp's system info line: the CPU features its build uses. */
  systemInfo: string;
  /** The llama.cpp release node-llama-cpp bundles. */
  llamaCppRelease: string;
}

/** Loads llama.cpp on the CPU with `threads` threads; its warnings and errors go to `log`. */
export async function loadLlamaRuntime(dir: string, threads: number, log: (s: string) => void): Promise<LlamaRuntime> {
  const entry = await ensureNodeLlamaCpp(dir, log);
  const mod = (await import(pathToFileURL(entry).href)) as NlcModule;
  const llama = await mod.getLlama({
    gpu: false,
    build: "never",
    maxThreads: threads,
    logLevel: "warn",
    logger: (level, message) => log(`llama.cpp ${level}: ${message.trim()}`),
  });
  const info = path.join(dir, "node_modules/node-llama-cpp/llama/llama.cpp.info.json");
  const release = existsSync(info) ? (JSON.parse(readFileSync(info, "utf8")) as { tag?: string }).tag : undefined;
  return { llama, systemInfo: llama.systemInfo.trim(), llamaCppRelease: release ?? "unknown" };
}
