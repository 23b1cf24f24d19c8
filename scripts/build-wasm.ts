/**
 * `npm run build:wasm [-- --check]`: reassembles gpu-backend/engine/sampler-wasm/weigh.generated.ts from
 * weigh.wat (offline). With --check it only reports whether the committed file is up to date (exit 1 if not).
 */
import { parseCli } from "./lib/cli";
import { GENERATED, samplerWasmModule } from "./lib/sampler-wasm";
import { writeOrCheck } from "./lib/generated-file";

const { values } = parseCli("build:wasm", process.argv.slice(2), {
  usage: `usage: npm run build:wasm [-- --check]
Reassembles the sampler's WebAssembly from weigh.wat; --check only reports whether it is up to date (exit 1 if not).`,
  options: { check: { type: "boolean" } },
});
writeOrCheck(GENERATED, await samplerWasmModule(), values.check === true, "npm run build:wasm");
