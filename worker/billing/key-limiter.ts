/** Per-key Durable Object: rate limits, budget reservations. (Placeholder; see issue 5.) */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";

export class KeyLimiter extends DurableObject<Env> {}
