/**
 * Layers (npm run check:layers): each package's folders form a stack and imports only point down it.
 * A folder may import its own layer and any layer below; never one above, and no two folders may import
 * each other round a cycle (checked per folder, not only per file). docs/development.md explains the stack.
 */

/** Top to bottom. Folders in one entry are siblings: they may import each other, but never in a cycle. */
const WORKER = [
  ["worker/(index|app)\\.ts$"],
  ["worker/routes/", "worker/console/", "worker/dev/"],
  ["worker/middleware/"],
  ["worker/api/", "worker/batch/", "worker/factory\\.ts$"],
  ["worker/completion/"],
  ["worker/serving/"],
  ["worker/registry/"],
  ["worker/billing/"],
  ["worker/config/", "worker/tools/"],
  ["worker/tokenizer/"],
  ["worker/(errors|env)\\.ts$"],
];

const BACKEND = [
  ["gpu-backend/main\\.ts$"],
  ["gpu-backend/server/", "gpu-backend/config\\.ts$"],
  ["gpu-backend/engine/", "gpu-backend/usage/"],
];

const SCRIPTS = [
  ["scripts/[^/]+\\.ts$"],
  ["scripts/bench/", "scripts/soak/"],
  ["scripts/reference/"],
  ["scripts/model-builder/"],
  ["scripts/lib/"],
];

const anyOf = (paths) => `^(${paths.join("|")})`;

/** One rule per layer: nothing in it imports a layer above it. */
function downwardOnly(pkg, layers) {
  return layers.slice(1).map((layer, i) => ({
    name: `${pkg}-layers`,
    comment: `${layer.join(", ")} may not import a layer above it (${layers
      .slice(0, i + 1)
      .flat()
      .join(", ")})`,
    severity: "error",
    from: { path: anyOf(layer) },
    to: { path: anyOf(layers.slice(0, i + 1).flat()) },
  }));
}

module.exports = {
  forbidden: [
    {
      name: "no-folder-cycles",
      comment: "Two folders import each other, directly or round a cycle: move the code to where it belongs.",
      severity: "error",
      scope: "folder",
      from: { path: "^(worker|gpu-backend|scripts|contract)/" },
      to: { circular: true },
    },
    {
      name: "no-module-cycles",
      severity: "error",
      from: { path: "^(worker|gpu-backend|scripts|contract)/" },
      to: { circular: true },
    },
    {
      name: "contract-is-a-leaf",
      comment: "The wire contract is shared by both sides and imports neither.",
      severity: "error",
      from: { path: "^contract/" },
      to: { path: "^(worker|gpu-backend|scripts)/" },
    },
    {
      name: "worker-imports-no-backend",
      severity: "error",
      from: { path: "^worker/" },
      to: { path: "^(gpu-backend|scripts)/" },
    },
    {
      name: "backend-imports-no-worker",
      severity: "error",
      from: { path: "^gpu-backend/" },
      to: { path: "^(worker|scripts)/" },
    },
    ...downwardOnly("worker", WORKER),
    ...downwardOnly("backend", BACKEND),
    ...downwardOnly("scripts", SCRIPTS),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)node_modules/|\\.generated\\.ts$|worker-configuration\\.d\\.ts$" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
