/** Shapes of the API responses the console reads (see README: API reference). */
export interface List<T> {
  object: "list";
  data: T[];
}

/** GET /v1/key */
export interface KeyInfo {
  object: "key";
  id: string;
  name: string;
  tiers: string[];
  rpm: number;
  tpm: number;
  monthly_budget_micros: number;
  spent_micros: number;
  reserved_micros: number;
  remaining_micros: number;
  /** "spent": nothing remains this month; "low": a request reserving a first completion slice is refused. */
  budget_state: "ok" | "low" | "spent";
  period_start: string;
  period_end: string;
}

/** GET /v1/usage (and /v1/admin/usage, which adds key_id and cost_units). */
export interface UsageRow {
  key_id?: string;
  date: string;
  tier: string;
  requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_micros: number;
  /** The exact sum in units of 1e-12 EUR (admin rows only). */
  cost_units?: string;
  /** The batch lines' part of requests and cost_micros (absent on an admin row from an older worker). */
  batch_requests?: number;
  batch_cost_micros?: number;
}

/** GET /v1/usage/requests and /v1/admin/usage/requests */
export interface RequestRow {
  request_id: string;
  key_id: string;
  tier: string;
  status: string;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_micros: number;
  started_at: number;
  ended_at: number;
}

/** GET /v1/models */
export interface ModelCard {
  id: string;
  capabilities?: { completion_chat?: boolean };
}

/** GET /v1/admin/keys */
export interface AdminKey {
  id: string;
  name: string;
  tiers: string[];
  rpm: number;
  tpm: number;
  monthly_budget_micros: number;
  created_at: number;
  updated_at: number;
  revoked_at: number | null;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

/** One SSE chunk of /v1/chat/completions (or the error event that ends a failed stream). */
export interface ChatChunk {
  choices?: {
    delta?: {
      content?: string | null;
      tool_calls?: { index: number; id?: string; function?: { name?: string; arguments?: string } }[];
    };
    finish_reason?: string | null;
  }[];
  usage?: Usage | null;
  error?: { message?: string; type?: string; code?: string };
}

/** GET /v1/admin/replicas (contract/registry.ts ReplicaView). */
export interface ReplicaRow {
  id: string;
  url: string;
  models: string[];
  tiers: string[];
  state: "ready" | "draining";
  in_flight: number;
  queue_depth: number;
  kv_free_blocks: number;
  slots: number;
  served: number;
  last_seen: string;
  version: string;
}
