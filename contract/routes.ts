/**
 * HTTP paths that both sides of the wire use, declared once: the backend mounts them and the worker calls
 * them (BACKEND_PATHS); the worker mounts WORKER_PATHS and the backend's usage delivery and the launcher
 * call them. A rename here moves both sides together.
 */
export const BACKEND_PATHS = {
  /** NDJSON generation stream (contract/wire.ts GenerateRequest → GenerateEvent lines). */
  generate: "/v1/generate",
  cancel: "/v1/cancel",
  embed: "/v1/embed",
  /** What the backend knows of some request ids (contract/usage.ts). */
  usageStatus: "/v1/usage/status",
  models: "/v1/models",
  health: "/health",
  metrics: "/metrics",
} as const;

export const WORKER_PATHS = {
  /** The backend's usage reports (contract/usage.ts UsageBatch → UsageAck). */
  usage: "/internal/usage",
  health: "/health",
} as const;
