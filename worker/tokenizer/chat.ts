/**
 * Mistral v1 chat template (Mixtral-8x7B-Instruct), built from ids so that text a user types can never
 * become a control token:
 *
 *   [BOS] enc("[INST] " + S + "\n\n" + U1 + " [/INST]") enc(A1) [EOS] enc("[INST] " + U2 + " [/INST]") ...
 *
 * `enc` has the dummy prefix. Rules follow chat_template_v1.jinja (Hugging Face) and mistral-common:
 *  - system messages (anywhere) are joined with "\n\n" into S, which goes in front of the FIRST user turn
 *    (nothing if S is empty);
 *  - consecutive messages of the same role are merged, joined with "\n\n" (tool messages are not: each
 *    result is its own block);
 *  - content is used verbatim (no strip);
 *  - after system messages the conversation starts with a user turn and alternates user/assistant;
 *  - each assistant turn ends with EOS; an empty one is legal and renders as just EOS after the previous
 *    [/INST] (OpenAI-style clients resend an earlier empty answer as content ""), where the Jinja
 *    template would refuse it;
 *  - the last message is a user turn, a tool result, or an assistant turn with `prefix: true` (Mistral's
 *    API field): its text is encoded without EOS so the model continues it.
 *
 * Tools: the v1 vocabulary has no tool control tokens, so Mistral's later (v3) instruct format is written
 * as plain text, each piece its own `enc` (docs/tools.md):
 *  - definitions, before the LAST user turn: enc("[AVAILABLE_TOOLS] " + json(tools) + "[/AVAILABLE_TOOLS]");
 *  - an assistant turn's calls, after its content: enc(A + "[TOOL_CALLS] " + json([{name, arguments, id}])) [EOS];
 *  - a tool result: enc("[TOOL_RESULTS] " + json({content, call_id}) + "[/TOOL_RESULTS]");
 *  - `openCall` ends the prompt with enc("[TOOL_CALLS]"): the model's output starts with the calls' JSON.
 * json() is Python's json.dumps layout (template-json.ts). The markers are ordinary text, like "[INST]".
 * A refusal is a TokenizerError (errors.ts); the API turns it into a 400.
 */
import { encodeText } from "./encode.js";
import { TokenizerError } from "./errors.js";
import { pyJson } from "./template-json.js";
import { BOS_ID, EOS_ID } from "./vocab-layout.js";

/** The text that opens a list of tool calls (in the prompt, and in the model's output under tool_choice auto). */
export const TOOL_CALLS_MARKER = "[TOOL_CALLS]";

/** One call an assistant made, as the template renders it. */
export interface TemplateToolCall {
  id: string;
  name: string;
  /** The parsed arguments (a JSON value). */
  arguments: unknown;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** Assistant only, last message only: continue this text instead of closing the turn. */
  prefix?: boolean;
  /** Assistant only: the calls it made, rendered after its content. */
  toolCalls?: readonly TemplateToolCall[];
  /** Tool only: the id of the call this message answers. */
  toolCallId?: string;
}

export interface TemplateOptions {
  /** Tool definitions, rendered as given (normalised by the caller) before the last user turn. */
  tools?: readonly unknown[];
  /** End the prompt with the call marker (a forced tool choice). */
  openCall?: boolean;
}

type Turn =
  | { role: "user"; content: string }
  | { role: "assistant"; content: string; prefix: boolean; calls: TemplateToolCall[] }
  | { role: "tool"; results: Array<{ content: string; callId: string }> };

/**
 * `salt` partitions the tokenized-turn cache (below): pass the account's cache salt, so a request can
 * never be sped up by another tenant's turns (a timing oracle on what they sent).
 */
export function applyChatTemplate(messages: readonly ChatMessage[], salt = "", opts: TemplateOptions = {}): number[] {
  const systemParts: string[] = [];
  const turns: Turn[] = [];
  messages.forEach((m, i) => {
    if (typeof m.content !== "string")
      throw new TokenizerError("content_not_string", `messages[${i}].content must be a string.`);
    if (m.role === "system") {
      systemParts.push(m.content);
      return;
    }
    if (m.role !== "user" && m.role !== "assistant" && m.role !== "tool") {
      throw new TokenizerError(
        "unsupported_role",
        `messages[${i}]: role '${String(m.role)}' is not supported by this model (roles: system, user, assistant, tool).`,
      );
    }
    if (m.prefix && (m.role !== "assistant" || i !== messages.length - 1 || m.toolCalls?.length)) {
      throw new TokenizerError(
        "misplaced_prefix",
        `messages[${i}]: prefix is only allowed on the last message, which must be an assistant message without tool_calls.`,
      );
    }
    const last = turns[turns.length - 1];
    if (m.role === "tool") {
      if (last?.role === "tool") last.results.push({ content: m.content, callId: m.toolCallId ?? "" });
      else if (last?.role === "assistant" && last.calls.length > 0)
        turns.push({ role: "tool", results: [{ content: m.content, callId: m.toolCallId ?? "" }] });
      else
        throw new TokenizerError(
          "misplaced_tool_message",
          `messages[${i}]: a tool message must follow an assistant message with tool_calls (or another tool message).`,
        );
      return;
    }
    if (last && last.role === m.role) {
      last.content += "\n\n" + m.content;
      if (last.role === "assistant") {
        last.prefix = m.prefix === true;
        last.calls.push(...(m.toolCalls ?? []));
      }
    } else if (m.role === "user") turns.push({ role: "user", content: m.content });
    else
      turns.push({ role: "assistant", content: m.content, prefix: m.prefix === true, calls: [...(m.toolCalls ?? [])] });
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
      "The last message must be a user or tool message, or an assistant message with prefix: true.",
    );
  }
  if (opts.openCall && final.role === "assistant")
    throw new TokenizerError("misplaced_prefix", "A forced tool call cannot continue an assistant prefix.");

  const ids = [BOS_ID];
  const system = systemParts.join("\n\n");
  let lastUser = 0;
  turns.forEach((t, i) => {
    if (t.role === "user") lastUser = i;
  });
  turns.forEach((t, i) => {
    if (i === lastUser && opts.tools && opts.tools.length > 0)
      append(ids, encodeTurn(salt, `[AVAILABLE_TOOLS] ${pyJson(opts.tools)}[/AVAILABLE_TOOLS]`));
    if (t.role === "user") {
      const content = i === 0 && system !== "" ? system + "\n\n" + t.content : t.content;
      append(ids, encodeTurn(salt, "[INST] " + content + " [/INST]"));
    } else if (t.role === "assistant") {
      const calls = t.calls.map((c) => ({ name: c.name, arguments: c.arguments, id: c.id }));
      const text = calls.length > 0 ? `${t.content}${TOOL_CALLS_MARKER} ${pyJson(calls)}` : t.content;
      // enc("") is []: an empty turn adds only its EOS (nothing at all when it is a prefix).
      append(ids, encodeTurn(salt, text));
      if (!t.prefix) ids.push(EOS_ID);
    } else {
      for (const r of t.results)
        append(
          ids,
          encodeTurn(salt, `[TOOL_RESULTS] ${pyJson({ content: r.content, call_id: r.callId })}[/TOOL_RESULTS]`),
        );
    }
  });
  if (opts.openCall) append(ids, encodeTurn(salt, TOOL_CALLS_MARKER));
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
