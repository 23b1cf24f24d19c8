/**
 * `npm run bench:tokenizer [-- --json] [--compare]`: throughput and linearity of the edge tokenizer.
 *
 * Corpus: ../shared/data/tokenizer/golden.jsonl where present (read in place), else a built-in synthetic
 * multilingual corpus. Times are process CPU time (this machine is shared; wall time is noisier) and
 * are printed, never asserted. `--compare` also times mistral-tokenizer-js on the same documents.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { clearEncodeCache, encodeText } from "../../worker/tokenizer/encode.js";
import { applyChatTemplate, type ChatMessage } from "../../worker/tokenizer/index.js";
import { getVocab } from "../../worker/tokenizer/vocab.js";
import { parseCli } from "../lib/cli";

const root = resolve(import.meta.dirname, "../..");
const goldenPath = resolve(root, "../shared/data/tokenizer/golden.jsonl");
const { values: args } = parseCli("bench:tokenizer", process.argv.slice(2), {
  usage: `usage: npm run bench:tokenizer [-- --json] [--compare]
Throughput and linearity of the edge tokenizer on the golden documents (or a synthetic corpus);
--compare also times mistral-tokenizer-js. One JSON object with --json.`,
  options: { json: { type: "boolean" }, compare: { type: "boolean" } },
});
const asJson = args.json ?? false;
const compare = args.compare ?? false;

interface Doc {
  cat: string;
  text: string;
}

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function time(fn: () => void): number {
  const t0 = cpuMs();
  fn();
  return cpuMs() - t0;
}

function loadCorpus(): { source: string; docs: Doc[] } {
  if (existsSync(goldenPath)) {
    const docs = readFileSync(goldenPath, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Doc);
    return { source: "golden.jsonl", docs };
  }
  return { source: "synthetic (../shared absent)", docs: syntheticCorpus() };
}

/** Deterministic multilingual text: words drawn from small per-language lists, plus code and emoji. */
function syntheticCorpus(): Doc[] {
  const langs: Record<string, string> = {
    en: "the model serves tokens at the edge with exact billing and streaming responses for every request",
    fr: "le modèle répond très vite à chaque requête grâce au cache des préfixes et à la facturation exacte",
    de: "das Modell beantwortet jede Anfrage schnell dank Präfix-Cache und genauer Abrechnung für Größen",
    zh: "模型 在 边缘 提供 令牌 精确 计费 流式 响应 每个 请求 缓存 前缀 速度 很快",
    ru: "модель быстро отвечает на каждый запрос благодаря кэшу префиксов и точному учёту",
    code: "function f(x) { return x * 2; } const y = await fetch(url); if (!y.ok) throw new Error(y.status);",
    emoji: "ok 👍🏽 done ✅ café 🦙 naïve ½ ∑ 🚀 ñ",
  };
  let seed = 42;
  const rand = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const docs: Doc[] = [];
  for (const [cat, text] of Object.entries(langs)) {
    const words = text.split(" ");
    for (let d = 0; d < 30; d++) {
      const parts: string[] = [];
      for (let i = 0; i < 800; i++) parts.push(words[Math.floor(rand() * words.length)] + (rand() < 0.08 ? "\n" : " "));
      docs.push({ cat, text: parts.join("") });
    }
  }
  return docs;
}

const utf8Bytes = (s: string): number => Buffer.byteLength(s, "utf8");
const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);
const round = (x: number, d = 2): number => Number(x.toFixed(d));

const vocabInitMs = time(() => getVocab());
const { source, docs } = loadCorpus();
const totalBytes = docs.reduce((a, d) => a + utf8Bytes(d.text), 0);

// First pass: fresh isolate (JIT not warmed up, empty cache). Cold: JIT warm, empty chunk cache (every
// distinct word runs BPE once): the headline figure. Warm: the cache filled by the previous pass.
const encodeAll = (): void => docs.forEach((d) => void encodeText(d.text));
const firstPassMs = time(encodeAll);
let coldMs = Infinity;
let warmMs = Infinity;
for (let r = 0; r < 3; r++) {
  clearEncodeCache();
  coldMs = Math.min(coldMs, time(encodeAll));
  warmMs = Math.min(warmMs, time(encodeAll));
}

const perCategory: Record<string, { docs: number; bytes: number; mb_per_s: number }> = {};
for (const cat of [...new Set(docs.map((d) => d.cat))]) {
  const sel = docs.filter((d) => d.cat === cat);
  const bytes = sel.reduce((a, d) => a + utf8Bytes(d.text), 0);
  let ms = Infinity;
  for (let r = 0; r < 2; r++) {
    clearEncodeCache();
    ms = Math.min(
      ms,
      time(() => {
        for (const d of sel) encodeText(d.text);
      }),
    );
  }
  perCategory[cat] = { docs: sel.length, bytes, mb_per_s: round(mbps(bytes, ms)) };
}

// Linearity: one prompt of 100k vs 1M characters, cold cache each time.
const allText = docs.map((d) => d.text).join("\n");
const repeatTo = (s: string, n: number): string => s.repeat(Math.ceil(n / s.length)).slice(0, n);
function linearity(name: string, base: string): { name: string; ms_100k: number; ms_1m: number; ratio: number } {
  const run = (n: number): number => {
    const text = repeatTo(base, n);
    let best = Infinity;
    for (let r = 0; r < 2; r++) {
      clearEncodeCache();
      best = Math.min(
        best,
        time(() => encodeText(text)),
      );
    }
    return best;
  };
  const ms100k = run(100_000);
  const ms1m = run(1_000_000);
  return { name, ms_100k: round(ms100k, 1), ms_1m: round(ms1m, 1), ratio: round(ms1m / ms100k, 1) };
}
let lcg = 7;
const randomLetters = Array.from({ length: 200_000 }, () =>
  String.fromCharCode(97 + ((lcg = (Math.imul(lcg, 1103515245) + 12345) >>> 0) % 26)),
).join("");
const lin = [
  linearity("corpus text", allText),
  linearity("letters, no spaces (one BPE chunk)", randomLetters),
  linearity("CJK, no spaces", "鸡兔同笼，共有三十五个头，九十四只脚，问鸡兔各几只？模型在边缘提供令牌。"),
  linearity("spaces only", " "),
  linearity("emoji (byte fallback)", "🦙👍🏽"),
];

// A conversation resent on every turn (as clients do): the whole prompt, cold then repeated.
const conversation: ChatMessage[] = [];
for (let i = 0, used = 0; used < 100_000 && i < docs.length; i++) {
  const content = docs[i].text.slice(0, 5_000);
  conversation.push({ role: i % 2 === 0 ? "user" : "assistant", content });
  used += content.length;
}
if (conversation[conversation.length - 1].role === "assistant")
  conversation.push({ role: "user", content: "Summarize." });
const chatChars = conversation.reduce((a, m) => a + m.content.length, 0);
clearEncodeCache();
const chatColdMs = time(() => applyChatTemplate(conversation));
const chatRepeatMs = time(() => applyChatTemplate(conversation));

const vocabFile = resolve(root, "worker/tokenizer/vocab.generated.ts");
const vocabBytes = statSync(vocabFile).size;
const vocabGzip = gzipSync(readFileSync(vocabFile)).length;

let reference: { mb_per_s: number } | undefined;
if (compare) {
  const { default: mistral } = await import("mistral-tokenizer-js");
  const ms = time(() => {
    for (const d of docs) mistral.encode(d.text, false, true);
  });
  reference = { mb_per_s: round(mbps(totalBytes, ms)) };
}

const result = {
  corpus: source,
  docs: docs.length,
  bytes: totalBytes,
  mb_per_s: round(mbps(totalBytes, coldMs)),
  mb_per_s_warm_cache: round(mbps(totalBytes, warmMs)),
  mb_per_s_first_pass: round(mbps(totalBytes, firstPassMs)),
  per_category_cold: perCategory,
  one_million_chars_ms: lin[0].ms_1m,
  chat_prompt: {
    chars: chatChars,
    turns: conversation.length,
    cold_ms: round(chatColdMs, 1),
    repeated_ms: round(chatRepeatMs, 1),
  },
  linearity: lin,
  vocab_init_ms: round(vocabInitMs, 1),
  vocab_module_bytes: vocabBytes,
  vocab_module_gzip_bytes: vocabGzip,
  ...(reference ? { mistral_tokenizer_js: reference } : {}),
};

if (asJson) {
  console.log(JSON.stringify(result));
} else {
  console.log(`corpus: ${source}, ${docs.length} docs, ${(totalBytes / 1e6).toFixed(2)} MB (CPU time)`);
  console.log(
    `throughput: ${result.mb_per_s} MB/s cold cache, ${result.mb_per_s_warm_cache} MB/s warm cache, ` +
      `${result.mb_per_s_first_pass} MB/s first pass of a fresh process (JIT warm-up)`,
  );
  for (const [cat, c] of Object.entries(perCategory))
    console.log(`  ${cat.padEnd(14)} ${String(c.mb_per_s).padStart(6)} MB/s  (${c.docs} docs)`);
  console.log("linearity (cold cache):");
  for (const l of lin)
    console.log(`  ${l.name.padEnd(36)} 100k: ${l.ms_100k} ms   1M: ${l.ms_1m} ms   ratio ${l.ratio}`);
  const c = result.chat_prompt;
  console.log(
    `chat prompt (${c.turns} turns, ${c.chars} chars): ${c.cold_ms} ms cold, ${c.repeated_ms} ms when resent`,
  );
  console.log(`vocab init: ${result.vocab_init_ms} ms; vocab module: ${vocabBytes} bytes (${vocabGzip} gzipped)`);
  if (reference) console.log(`mistral-tokenizer-js: ${reference.mb_per_s} MB/s`);
}
