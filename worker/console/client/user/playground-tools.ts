/**
 * The playground's tools: define functions (a name and JSON-schema parameters), pick the tool choice,
 * watch calls stream into the transcript, and answer a call with a tool result. The requests are the
 * API's own shapes (tools, tool_choice, assistant tool_calls, role "tool" messages).
 */
import { button, field, h, replace } from "../dom";
import type { ToolCall, ToolCallPiece } from "../types";

export interface ToolDef {
  type: "function";
  function: { name: string; parameters: Record<string, unknown> };
}

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const DEFAULT_PARAMETERS = '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}';

/** The Tools settings: a list of definitions and the choice. */
export function toolSettings() {
  const name = h("input", { name: "tool_name", placeholder: "get_weather", autocomplete: "off" });
  const parameters = h("textarea", { name: "tool_parameters", rows: 3, spellcheck: "false" });
  parameters.value = DEFAULT_PARAMETERS;
  const choice = h(
    "select",
    { name: "tool_choice" },
    ...["auto", "required", "none"].map((c) => h("option", { value: c }, c)),
  );
  const list = h("ul", { class: "tools", "aria-label": "Tools" });
  const note = h("p", { class: "hint", role: "status" });
  const tools: ToolDef[] = [];

  const render = () =>
    replace(
      list,
      ...tools.map((t, i) =>
        h(
          "li",
          {},
          h("code", {}, t.function.name),
          " ",
          button(
            `Remove ${t.function.name}`,
            () => {
              tools.splice(i, 1);
              render();
            },
            { class: "secondary" },
          ),
        ),
      ),
    );

  const add = button("Add tool", () => {
    const n = name.value.trim();
    if (!NAME.test(n)) return void (note.textContent = "A tool name is 1 to 64 letters, digits, _ or -.");
    if (tools.some((t) => t.function.name === n)) return void (note.textContent = `${n} is already a tool.`);
    let schema: unknown;
    try {
      schema = JSON.parse(parameters.value || "{}");
    } catch {
      return void (note.textContent = "The parameters are not valid JSON.");
    }
    if (typeof schema !== "object" || schema === null || Array.isArray(schema))
      return void (note.textContent = "The parameters must be a JSON Schema object.");
    tools.push({ type: "function", function: { name: n, parameters: schema as Record<string, unknown> } });
    note.textContent = `Added ${n}. The API checks its schema when you send.`;
    name.value = "";
    render();
  });

  const el = h(
    "fieldset",
    { class: "tool-settings" },
    h("legend", {}, "Tools"),
    field("Tool name", name),
    field("Tool parameters", parameters, "a JSON Schema"),
    h("div", { class: "actions" }, add),
    list,
    field("Tool choice", choice),
    note,
  );
  /** The request fields for the tools defined now (none without tools). */
  const request = () => (tools.length ? { tools: [...tools], tool_choice: choice.value } : {});
  return { el, request };
}

/** Streamed call pieces -> whole calls, and their place in the transcript (updated as they arrive). */
export function callView() {
  const calls: ToolCall[] = [];
  const el = h("ol", { class: "tool-calls", "aria-label": "Tool calls" });
  const items: HTMLElement[] = [];
  const piece = (p: ToolCallPiece) => {
    const call = (calls[p.index] ??= { id: "", type: "function", function: { name: "", arguments: "" } });
    if (p.id) call.id = p.id;
    if (p.function?.name) call.function.name = p.function.name;
    call.function.arguments += p.function?.arguments ?? "";
    const item = (items[p.index] ??= el.appendChild(h("li", { class: "tool-call" })));
    // Text nodes only: arguments are model output.
    replace(item, h("code", {}, `${call.function.name}(${call.function.arguments})`));
  };
  return { el, calls, piece };
}

/** A form under a call that sends its result as a role "tool" message. */
export function resultForm(call: ToolCall, onSend: (content: string) => void): HTMLElement {
  const content = h("textarea", { name: "tool_result", rows: 2, placeholder: '{"temperature": 21}' });
  const send = button(`Send result of ${call.function.name}`, () => {
    send.disabled = true;
    onSend(content.value);
  });
  return h("div", { class: "tool-result" }, field(`Result of ${call.function.name}`, content), send);
}
