/**
 * Generated text -> tool-call events, incrementally (pure: no I/O, unit-tested).
 *
 * Forced choices (required/any/named) start in the call list: the prompt already ends with the marker.
 * Under "auto" the text is content until the marker appears (a suffix that could be the start of the
 * marker is held back), then the call list. The list is a JSON array of `{"name": ..., "arguments": ...}`
 * objects; for each call the parser emits one `call` event (index, a fresh id, name) once its name is
 * known, then the raw text of its arguments in `arguments` fragments as it arrives.
 *
 * Whether the list became calls is decided at the end (`result`): only a closed, well-formed list with
 * at least one call is; anything else (cut by max_tokens or a stop string) is text, returned whole as
 * content by the caller.
 */
import { TOOL_CALLS_MARKER } from "../tokenizer";
import { isWs, ValueScanner } from "./json-scan";

export type ToolEvent =
  | { type: "content"; text: string }
  | { type: "call"; index: number; id: string; name: string }
  | { type: "arguments"; index: number; text: string };

export interface ParsedCall {
  id: string;
  name: string;
  /** The arguments' JSON text, as generated. */
  arguments: string;
}

export interface ParseResult {
  /** Text before the call list (all the text when there is none). */
  content: string;
  /** The calls, when the list closed well-formed; null otherwise. */
  calls: ParsedCall[] | null;
  /** Everything pushed, verbatim. */
  raw: string;
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** A 9-character alphanumeric id: what Mistral's API requires of tool_call_id, and any id suits OpenAI's SDKs. */
export function newCallId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  let id = "";
  for (const b of bytes) id += ALNUM[b % ALNUM.length];
  return id;
}

type Phase =
  | "text"
  | "open" // before '['
  | "list" // between calls: '{', ',' or ']'
  | "key" // inside a call object, before a key or '}'
  | "keyString"
  | "colon"
  | "value"
  | "afterValue"
  | "done"
  | "invalid";

interface Call extends ParsedCall {
  announced: boolean;
  /** Arguments text that came before the name (held until the call can be announced). */
  pending: string;
}

export class ToolCallParser {
  private phase: Phase;
  private raw = "";
  private content = "";
  private held = "";
  private readonly calls: Call[] = [];
  private key = "";
  private keyEscape = false;
  private valueText = "";
  private scanner: ValueScanner | null = null;
  /** In the list: a ',' was read, so the next thing must be a call. */
  private afterComma = false;

  constructor(
    forced: boolean,
    private readonly newId: () => string = newCallId,
  ) {
    this.phase = forced ? "open" : "text";
  }

  push(text: string): ToolEvent[] {
    this.raw += text;
    const events: ToolEvent[] = [];
    if (this.phase === "text") {
      const buf = this.held + text;
      const at = buf.indexOf(TOOL_CALLS_MARKER);
      if (at < 0) {
        const keep = heldSuffix(buf);
        this.emitContent(events, buf.slice(0, buf.length - keep));
        this.held = buf.slice(buf.length - keep);
        return events;
      }
      this.emitContent(events, buf.slice(0, at));
      this.held = "";
      this.phase = "open";
      text = buf.slice(at + TOOL_CALLS_MARKER.length);
    }
    for (const ch of text) this.step(ch, events);
    return coalesce(events);
  }

  /** Flushes held-back text (a partial marker at the very end is content). */
  end(): ToolEvent[] {
    const events: ToolEvent[] = [];
    if (this.phase === "text" && this.held) this.emitContent(events, this.held);
    this.held = "";
    return events;
  }

  result(): ParseResult {
    const done = this.phase === "done" && this.calls.length > 0;
    return {
      content: done ? this.content : this.raw,
      calls: done ? this.calls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args })) : null,
      raw: this.raw,
    };
  }

  private emitContent(events: ToolEvent[], text: string): void {
    if (!text) return;
    this.content += text;
    events.push({ type: "content", text });
  }

  private step(ch: string, events: ToolEvent[]): void {
    switch (this.phase) {
      case "open":
        if (ch === "[") this.phase = "list";
        else if (!isWs(ch)) this.phase = "invalid";
        return;
      case "list":
        if (ch === "{" && (this.calls.length === 0 || this.afterComma)) {
          this.afterComma = false;
          this.calls.push({ id: this.newId(), name: "", arguments: "", announced: false, pending: "" });
          this.phase = "key";
        } else if (ch === "," && this.calls.length > 0 && !this.afterComma) this.afterComma = true;
        else if (ch === "]" && !this.afterComma) this.phase = "done";
        else if (!isWs(ch)) this.phase = "invalid";
        return;
      case "key":
        if (ch === '"') {
          this.key = "";
          this.phase = "keyString";
        } else if (ch === "}") this.closeCall();
        else if (!isWs(ch) && ch !== ",") this.phase = "invalid";
        return;
      case "keyString":
        if (this.keyEscape) {
          this.key += ch;
          this.keyEscape = false;
        } else if (ch === "\\") this.keyEscape = true;
        else if (ch === '"') this.phase = "colon";
        else this.key += ch;
        return;
      case "colon":
        if (ch === ":") {
          this.phase = "value";
          this.scanner = new ValueScanner();
          this.valueText = "";
        } else if (!isWs(ch)) this.phase = "invalid";
        return;
      case "value":
        this.valueStep(ch, events);
        return;
      case "afterValue":
        if (ch === ",") this.phase = "key";
        else if (ch === "}") this.closeCall();
        else if (!isWs(ch)) this.phase = "invalid";
        return;
      default:
        // "done": the constraint allows nothing after the list; "invalid": the rest stays raw text.
        return;
    }
  }

  private valueStep(ch: string, events: ToolEvent[]): void {
    const call = this.calls[this.calls.length - 1]!;
    const r = this.scanner!.step(ch);
    if (r === "invalid") {
      this.phase = "invalid";
      return;
    }
    if (r === "after") {
      this.finishValue(call, events);
      this.phase = "afterValue";
      this.step(ch, events);
      return;
    }
    // Leading whitespace before the value is not part of it.
    if (this.valueText === "" && isWs(ch)) return;
    this.valueText += ch;
    if (this.key === "arguments") this.argumentsText(call, ch, events);
    if (r === "end") {
      this.finishValue(call, events);
      this.phase = "afterValue";
    }
  }

  private argumentsText(call: Call, text: string, events: ToolEvent[]): void {
    call.arguments += text;
    if (call.announced) events.push({ type: "arguments", index: this.calls.length - 1, text });
    else call.pending += text;
  }

  private finishValue(call: Call, events: ToolEvent[]): void {
    if (this.key !== "name" || call.announced) return;
    let name: unknown;
    try {
      name = JSON.parse(this.valueText);
    } catch {
      name = null;
    }
    if (typeof name !== "string") {
      this.phase = "invalid";
      return;
    }
    call.name = name;
    call.announced = true;
    const index = this.calls.length - 1;
    events.push({ type: "call", index, id: call.id, name });
    if (call.pending) events.push({ type: "arguments", index, text: call.pending });
    call.pending = "";
  }

  private closeCall(): void {
    const call = this.calls[this.calls.length - 1]!;
    this.phase = call.announced && call.arguments !== "" ? "list" : "invalid";
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of the marker. */
function heldSuffix(text: string): number {
  for (let n = Math.min(TOOL_CALLS_MARKER.length - 1, text.length); n > 0; n--) {
    if (TOOL_CALLS_MARKER.startsWith(text.slice(text.length - n))) return n;
  }
  return 0;
}

/** Adjacent fragments of one kind (and one call) merged: one delta per push, not one per character. */
function coalesce(events: ToolEvent[]): ToolEvent[] {
  const out: ToolEvent[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (last && last.type === "content" && e.type === "content") last.text += e.text;
    else if (last && last.type === "arguments" && e.type === "arguments" && last.index === e.index) last.text += e.text;
    else out.push({ ...e });
  }
  return out;
}
