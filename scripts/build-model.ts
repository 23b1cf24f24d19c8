/**
 * npm run build-model -- --in <hf_dir> --out <model_dir> [--name N] [--block-size 32] [--accuracy-level 4] [--context-length N]
 * Errors are one line on stderr, exit code 1 (set DEBUG=1 for a stack trace); a bad flag exits 2.
 */
import { parseCli } from "./lib/cli";
import { buildModel, formatSummary } from "./model-builder/build";

const USAGE =
  "usage: npm run build-model -- --in <hf_dir> --out <model_dir> [--name <serving name>] [--block-size 32] [--accuracy-level 4] [--context-length N] [--threads N] [--quiet] [--json]";

function intOpt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`${flag} must be a non-negative integer, got "${v}"`);
  return Number(v);
}

async function main(): Promise<void> {
  const { values } = parseCli("build-model", process.argv.slice(2), {
    usage: USAGE,
    options: {
      in: { type: "string" },
      out: { type: "string" },
      name: { type: "string" },
      "block-size": { type: "string" },
      "accuracy-level": { type: "string" },
      "context-length": { type: "string" },
      threads: { type: "string" },
      quiet: { type: "boolean" },
      json: { type: "boolean" },
    },
  });
  if (!values.in) throw new Error(`--in is required (${USAGE})`);
  if (!values.out) throw new Error(`--out is required (${USAGE})`);
  const summary = await buildModel({
    inDir: values.in,
    outDir: values.out,
    name: values.name,
    blockSize: intOpt(values["block-size"], "--block-size"),
    accuracyLevel: intOpt(values["accuracy-level"], "--accuracy-level"),
    contextLength: intOpt(values["context-length"], "--context-length"),
    threads: intOpt(values.threads, "--threads"),
    quiet: values.quiet || values.json,
  });
  if (values.json) {
    const { manifest, ...figures } = summary;
    console.log(
      JSON.stringify({ name: manifest.name, ...figures, mb_per_s: summary.inputBytes / 1e6 / summary.seconds }),
    );
  } else {
    console.log(formatSummary(summary));
  }
}

main().catch((e: unknown) => {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`build-model: error: ${msg.split("\n")[0]}\n`);
  if (process.env.DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
