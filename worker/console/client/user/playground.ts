/**
 * Playground: a conversation with one of the key's models, streamed through the real
 * /v1/chat/completions SSE. Stop closes the connection (the worker then cancels at the backend and
 * bills what was generated); after each reply the exact usage, cost and time to first token show.
 */
import { ApiFailure, errorText, type Api } from "../api";
import { button, field, h, replace } from "../dom";
import { eurExact, int } from "../format";
import { idChip } from "../ids";
import { heading, type Section } from "../shell";
import type { KeyStatus, ModelList, ToolCall } from "../types";
import { ledgerRecord, streamChat, type ChatMessage, type ChatOutcome, type ChatParams } from "./chat-stream";
import { callView, resultForm, toolSettings } from "./playground-tools";
import { snippet, type SnippetKind } from "./snippets";

export function playgroundSection(api: Api, info: KeyStatus, onAuthError: (e: unknown) => void): Section {
  const model = h("select", { name: "model" });
  const system = h("textarea", { name: "system", rows: 2, placeholder: "Optional instructions for the model" });
  const temperature = h("input", { type: "number", name: "temperature", min: 0, max: 2, step: 0.1, value: 0.7 });
  const topP = h("input", { type: "number", name: "top_p", min: 0, max: 1, step: 0.05, value: 1 });
  const maxTokens = h("input", { type: "number", name: "max_tokens", min: 1, step: 1, value: 256 });
  const seed = h("input", { type: "number", name: "seed", min: 0, step: 1, placeholder: "random" });
  const message = h("textarea", { name: "message", rows: 3, required: true, placeholder: "Ask something…" });
  const send = h("button", { type: "submit" }, "Send");
  const stop = button("Stop", () => controller?.abort(), { disabled: true, class: "danger" });
  const reset = button(
    "New conversation",
    () => {
      // A fresh start: no history, default settings, and no code left from the old conversation.
      history = [];
      lastSent = null;
      transcript.replaceChildren();
      replace(stats);
      replace(status);
      system.value = "";
      temperature.value = "0.7";
      topP.value = "1";
      maxTokens.value = "256";
      seed.value = "";
      code.textContent = "";
      copyNote.textContent = "";
    },
    { class: "secondary" },
  );
  const transcript = h("ol", { class: "transcript", "aria-label": "Conversation" });
  const status = h("p", { class: "status", role: "status" });
  const stats = h("dl", { class: "pairs stats", "aria-label": "Last reply" });
  const code = h("pre", { class: "code", tabindex: 0, "aria-label": "Code for the current request" });
  const copyNote = h("span", { class: "hint", role: "status" });

  let history: ChatMessage[] = [];
  /** The last request Send made, exactly as sent (what the code shows when nothing new is typed). */
  let lastSent: ChatParams | null = null;
  let controller: AbortController | null = null;

  const tools = toolSettings();

  /** The request for the conversation so far plus `next` (a user message, or tool results). */
  const params = (next: ChatMessage[]): ChatParams => {
    const num = (el: HTMLInputElement) => (el.value.trim() === "" ? undefined : el.valueAsNumber);
    const msgs: ChatMessage[] = system.value.trim() ? [{ role: "system", content: system.value }] : [];
    return {
      model: model.value,
      messages: [...msgs, ...history, ...next],
      ...tools.request(),
      temperature: num(temperature) ?? 0.7,
      top_p: num(topP) ?? 1,
      ...(num(maxTokens) !== undefined ? { max_tokens: num(maxTokens) } : {}),
      ...(num(seed) !== undefined ? { seed: num(seed) } : {}),
    };
  };

  // The code is exactly what Send would send now (the conversation, the typed message, the settings), or,
  // with nothing typed, the request last sent; never a message nobody typed.
  const copy = (kind: SnippetKind) => {
    const request = message.value.trim() ? params([{ role: "user", content: message.value }]) : lastSent;
    if (!request) {
      code.textContent = "";
      copyNote.textContent = "Type a message first: the code is the request Send would make.";
      return;
    }
    const text = snippet(kind, location.origin, request);
    code.textContent = text;
    navigator.clipboard?.writeText(text).then(
      () => (copyNote.textContent = `Copied as ${kind}. The key is $MOE_API_KEY: set it in your environment.`),
      () => (copyNote.textContent = "Copying was blocked: select the code below."),
    );
  };

  const form = h(
    "form",
    { class: "playground", "aria-label": "Playground" },
    field("Model", model),
    h(
      "details",
      { class: "settings" },
      h("summary", {}, "Settings"),
      field("System prompt", system),
      h(
        "div",
        { class: "row" },
        field("Temperature", temperature, "0 to 2"),
        field("top_p", topP, "0 to 1"),
        field("Max tokens", maxTokens),
        field("Seed", seed, "same seed, same reply"),
      ),
      tools.el,
    ),
    transcript,
    field("Message", message, "Ctrl+Enter sends."),
    h("div", { class: "actions" }, send, stop, reset),
    status,
    stats,
  );

  /** Sends the conversation plus `next`; `shown` is how the new turn reads in the transcript. */
  const run = async (next: ChatMessage[], who: string, shown: string) => {
    const p = params(next);
    lastSent = p;
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    replace(stats);
    const reply = h("div", { class: "text" });
    const calls = callView();
    const turn = h("li", { class: "turn assistant", "aria-busy": "true" }, h("span", { class: "who" }, p.model), reply);
    transcript.append(
      h("li", { class: "turn user" }, h("span", { class: "who" }, who), h("div", { class: "text" }, shown)),
      turn,
    );
    status.textContent = "Sending…";
    let text = "";
    let out: ChatOutcome | null = null;
    try {
      out = await streamChat(
        api,
        p,
        controller.signal,
        (t) => {
          text += t;
          reply.append(t); // a text node: model output is never parsed as HTML
          transcript.scrollTop = transcript.scrollHeight;
        },
        () => (status.textContent = "Generating…"),
        (piece) => {
          if (!calls.el.isConnected) turn.append(calls.el);
          calls.piece(piece);
        },
      );
    } catch (err) {
      turn.remove();
      transcript.lastElementChild?.remove();
      if (next[0]?.role === "user") message.value = next[0].content; // let them fix and resend
      replace(status, h("span", { class: "error", role: "alert" }, errorText(err)));
      onAuthError(err);
    } finally {
      turn.setAttribute("aria-busy", "false");
      controller = null;
      send.disabled = false;
      stop.disabled = true;
    }
    if (!out) return;
    const made = calls.calls.filter((c) => c.id);
    history = [
      ...history,
      ...next,
      made.length
        ? { role: "assistant", content: text || null, tool_calls: made }
        : { role: "assistant", content: text },
    ];
    if (out.finishReason === "tool_calls") answerCalls(turn, made);
    status.textContent = out.stopped ? "Stopped." : out.error ? "" : "Done.";
    if (out.error) replace(status, h("span", { class: "error", role: "alert" }, errorText(out.error)));
    showStats(out);
  };

  /** A result form under each call; once every call has its result, they go out in one request. */
  const answerCalls = (turn: HTMLElement, made: ToolCall[]) => {
    const results = new Map<string, string>();
    for (const call of made) {
      turn.append(
        resultForm(call, (content) => {
          results.set(call.id, content);
          if (results.size < made.length || controller) return;
          const msgs: ChatMessage[] = made.map((c) => ({
            role: "tool",
            tool_call_id: c.id,
            content: results.get(c.id)!,
          }));
          void run(msgs, "Tool results", msgs.map((m) => m.content).join("\n"));
        }),
      );
    }
  };

  const showStats = (out: ChatOutcome) => {
    const pair = (t: string, v: string | Node, key: string) => [h("dt", {}, t), h("dd", { "data-stat": key }, v)];
    const u = out.usage;
    replace(
      stats,
      ...pair("Prompt tokens", u ? int(u.prompt_tokens) : "…", "prompt"),
      ...pair("Cached tokens", u ? int(u.prompt_tokens_details.cached_tokens) : "…", "cached"),
      ...pair("Completion tokens", u ? int(u.completion_tokens) : "…", "completion"),
      ...pair("Cost", "…", "cost"),
      ...pair("Time to first token", out.ttftMs !== null ? `${out.ttftMs} ms` : "none", "ttft"),
      ...pair("Finish", out.finishReason ?? (out.stopped ? "stopped" : "none"), "finish"),
      ...pair("Ledger status", "…", "status"),
      ...pair("Request id", out.requestId ? idChip(out.requestId) : "unknown", "request-id"),
    );
    if (!out.requestId) return;
    // The ledger is the bill: take cost, status and (for a stopped reply) the tokens from it.
    ledgerRecord(api, out.requestId).then(
      (r) => {
        const set = (key: string, v: string) => {
          const dd = stats.querySelector(`[data-stat="${key}"]`);
          if (dd) dd.textContent = v;
        };
        if (!r) return set("status", "not recorded yet: see Requests");
        set("cost", eurExact(r.cost_micros));
        set("status", r.status);
        set("prompt", int(r.prompt_tokens));
        set("cached", int(r.cached_tokens));
        set("completion", int(r.completion_tokens));
      },
      (err: unknown) => onAuthError(err),
    );
  };

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = message.value;
    if (!text.trim() || controller) return;
    if (!model.value)
      return replace(status, h("span", { class: "error", role: "alert" }, "This key has no chat model."));
    message.value = "";
    void run([{ role: "user", content: text }], "You", text);
  });
  message.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit();
  });

  const el = h(
    "section",
    {},
    heading("Playground"),
    form,
    h(
      "div",
      { class: "card snippets" },
      h("h3", {}, "Use it from code"),
      h(
        "div",
        { class: "actions" },
        button("Copy as curl", () => copy("curl")),
        button("Copy as Python", () => copy("python")),
        button("Copy as TypeScript", () => copy("typescript")),
      ),
      copyNote,
      code,
    ),
  );

  const fill = (ids: string[]) => {
    const current = model.value; // keep a choice made before the model list arrived
    replace(model, ...ids.map((id) => h("option", { value: id }, id)));
    if (ids.includes(current)) model.value = current;
  };
  fill(info.tiers.filter((t) => !t.includes("embed")));
  let loaded = false;
  return {
    id: "playground",
    label: "Playground",
    el,
    show() {
      if (loaded) return;
      // The chat-capable models this key may use (embedding tiers cannot chat).
      api.get<ModelList>("/v1/models").then(
        (list) => {
          loaded = true;
          const chat = list.data.filter((m) => m.capabilities.completion_chat).map((m) => m.id);
          if (chat.length) fill(chat);
        },
        (err: unknown) => {
          if (err instanceof ApiFailure) onAuthError(err);
        },
      );
    },
  };
}
