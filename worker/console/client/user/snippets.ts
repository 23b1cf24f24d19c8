/**
 * "Copy as curl / Python / TypeScript" for the playground's current request. The key is always a
 * placeholder read from the environment ($MOE_API_KEY): a snippet pasted into a ticket leaks nothing.
 */
import { chatBody, type ChatParams } from "./chat-stream";

export type SnippetKind = "curl" | "python" | "typescript";

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const indent = (s: string, pad: string) => s.split("\n").join(`\n${pad}`);

export function snippet(kind: SnippetKind, base: string, p: ChatParams): string {
  const body = chatBody(p);
  switch (kind) {
    case "curl":
      return [
        `curl ${base}/v1/chat/completions \\`,
        `  -H "Authorization: Bearer $MOE_API_KEY" \\`,
        `  -H "Content-Type: application/json" \\`,
        `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
      ].join("\n");
    case "python": {
      // JSON string/number literals are valid Python literals; the booleans are written by hand.
      const args = [
        `model=${JSON.stringify(p.model)}`,
        `messages=${indent(JSON.stringify(p.messages, null, 4), "    ")}`,
        `temperature=${p.temperature}`,
        `top_p=${p.top_p}`,
        p.max_tokens !== undefined ? `max_tokens=${p.max_tokens}` : null,
        p.seed !== undefined ? `seed=${p.seed}` : null,
        "stream=True",
        `stream_options={"include_usage": True}`,
      ].filter((a): a is string => a !== null);
      return [
        "import os",
        "from openai import OpenAI",
        "",
        `client = OpenAI(base_url=${JSON.stringify(`${base}/v1`)}, api_key=os.environ["MOE_API_KEY"])`,
        "stream = client.chat.completions.create(",
        ...args.map((a) => `    ${a},`),
        ")",
        "for chunk in stream:",
        "    if chunk.choices and chunk.choices[0].delta.content:",
        '        print(chunk.choices[0].delta.content, end="", flush=True)',
        "    if chunk.usage:",
        "        print()",
        "        print(chunk.usage)",
      ].join("\n");
    }
    case "typescript":
      return [
        'import OpenAI from "openai";',
        "",
        `const client = new OpenAI({ baseURL: ${JSON.stringify(`${base}/v1`)}, apiKey: process.env.MOE_API_KEY });`,
        `const stream = await client.chat.completions.create(${indent(JSON.stringify(body, null, 2), "")});`,
        "for await (const chunk of stream) {",
        '  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");',
        '  if (chunk.usage) console.log("\\n", chunk.usage);',
        "}",
      ].join("\n");
  }
}
