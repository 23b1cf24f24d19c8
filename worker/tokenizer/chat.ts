/**
 * Mistral v1 chat template (Mixtral-8x7B-Instruct), built from ids so that text a user types can never
 * become a control token:
 *
 *   [BOS] enc("[INST] " + S + "\n\n" + U1 + " [/INST]") enc(A1) [EOS] enc("[INST] " + U2 + " [/INST]") ...
 *
 * `enc` has the dummy prefix. Rules follow chat_template_v1.jinja (Hugging Face) and mistral-common:
 *  - system messages (anywhere) are joined with "\n\n" into S, which goes in front of the FIRST user turn
 *    (nothing if S is empty);
 *  - consecutive messages of the same role are merged, joined with "\n\n";
 *  - content is used verbatim (no strip);
 *  - after system messages the conversation starts with a user turn and alternates user/assistant;
 *  - each assistant turn ends with EOS; an empty one is legal and renders as just EOS after the previous
 *    [/INST] (OpenAI-style clients resend an earlier empty answer as content ""), where the Jinja
 *    template would refuse it;
 *  - the last message is a user turn, or an assistant turn with `prefix: true` (Mistral's API field): its
 *    text is encoded without EOS so the model continues it;
 *  - role "tool" (and tool calls) do not exist in the v1 template: rejected.
 * A refusal is a TokenizerError (errors.ts); the API turns it into a 400.
 */
import { encodeText } from "./encode.js";
import { TokenizerError } from "./errors.js";
import { BOS_ID, EOS_ID } from "./vocab-layout.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** Assistant only, last message only: continue this text instead of closing the turn. */
  prefix?: boolean;
}

interface Turn {
  role: "user" | "assistant";
  content: string;
  prefix: boolean;
}

/**
 * `salt` partitions the tokenized-turn cache (below): pass the account's cache salt, so a request can
 * never be sped up by another tenant's turns (a timing oracle on what they sent).
 */
export function applyChatTemplate(messages: readonly ChatMessage[], salt = ""): number[] {
  const systemParts: string[] = [];
  const turns: Turn[] = [];
  messages.forEach((m, i) => {
    if (typeof m.content !== "string")
      throw new TokenizerError("content_not_string", `messages[${i}].content must be a string.`);
    if (m.role === "system") {
      systemParts.push(m.content);
      return;
    }
    if (m.role !== "user" && m.role !== "assistant") {
      throw new TokenizerError(
        "unsupported_role",
        `messages[${i}]: role '${String(m.role)}' is not supported by this model (roles: system, user, assistant).`,
      );
    }
    if (m.prefix && (m.role !== "assistant" || i !== messages.length - 1)) {
      throw new TokenizerError(
        "misplaced_prefix",
        `messages[${i}]: prefix is only allowed on the last message, which must be an assistant message.`,
      );
    }
    const last = turns[turns.length - 1];
    if (last && last.role === m.role) {
      last.content += "\n\n" + m.content;
      last.prefix = m.prefix === true;
    } else {
      turns.push({ role: m.role, content: m.content, prefix: m.prefix === true });
    }
  });

  if (turns.length === 0)
    throw new TokenizerError("no_user_message", "messages must contain at least one user message.");
  if (turns[0].role !== "user")
    throw new TokenizerError(
      "first_turn_not_user",
      "After system messages, the conversation must start with a user message.",
    );
  const final = turns[turns.length - 1];
  if (final.role === "assistant" && !final.prefix) {
    throw new TokenizerError(
      "last_turn_not_user",
      "The last message must be a user message, or an assistant message with prefix: true.",
    );
  }

  const ids = [BOS_ID];
  const system = systemParts.join("\n\n");
  turns.forEach((t, i) => {
    if (t.role === "user") {
      const content = i === 0 && system !== "" ? system + "\n\n" + t.content : t.content;
      append(ids, encodeTurn(salt, "[INST] " + content + " [/INST]"));
    } else {
      // enc("") is []: an empty turn adds only its EOS (nothing at all when it is a prefix).
      append(ids, encodeTurn(salt, t.content));
      if (!t.prefix) ids.push(EOS_ID);
    }
  });
  return ids;
}

// Clients resend the whole conversation on every request, so long turns are memoized whole (two
// generations, bounded by total characters: a few MB at most). Short turns hit the chunk cache anyway.
// Entries are keyed by the caller's salt too: one tenant's turns are never a hit for another.
const MIN_CACHED_TURN = 256;
const TURN_CACHE_CHARS = 1 << 19;
let recentTurns = new Map<string, number[]>();
let olderTurns = new Map<string, number[]>();
let recentChars = 0;

let turnHits = 0;

/** Test hook: how many turns were served from the cache so far. */
export function turnCacheHits(): number {
  return turnHits;
}

function encodeTurn(salt: string, text: string): number[] {
  if (text.length < MIN_CACHED_TURN || text.length > TURN_CACHE_CHARS) return encodeText(text);
  const key = salt + "\u0000" + text;
  let ids = recentTurns.get(key);
  if (ids !== undefined) {
    turnHits++;
    return ids;
  }
  ids = olderTurns.get(key);
  if (ids !== undefined) turnHits++;
  else ids = encodeText(text);
  if (recentChars + text.length > TURN_CACHE_CHARS) {
    olderTurns = recentTurns;
    recentTurns = new Map();
    recentChars = 0;
  }
  recentTurns.set(key, ids);
  recentChars += text.length;
  return ids;
}

function append(target: number[], src: readonly number[]): void {
  for (let i = 0; i < src.length; i++) target.push(src[i]);
}
