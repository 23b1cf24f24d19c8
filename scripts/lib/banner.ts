/**
 * What `npm start` prints once the stack is up: the secrets, and a first request two ways, each runnable
 * where it is pasted. The curl needs curl; the Node one-liner uses the built-in fetch (Node 18+) and
 * imports nothing, so it runs from any directory, not only inside this repository.
 */
export interface BannerInput {
  base: string;
  apiKey: string;
  adminToken: string;
  metricsToken: string;
  model: string;
  backendPorts: number[];
}

/** The request both snippets send. */
export const firstRequest = (model: string) => ({
  model,
  messages: [{ role: "user", content: "Hello!" }],
  max_tokens: 64,
});

/** A Node one-liner (built-in fetch, no packages, any directory) that sends the first request. */
export function nodeSnippet(base: string, apiKey: string, model: string): string {
  return `node --input-type=module -e '
const res = await fetch("${base}/v1/chat/completions", {
  method: "POST",
  headers: { authorization: "Bearer ${apiKey}", "content-type": "application/json" },
  body: JSON.stringify(${JSON.stringify(firstRequest(model))}),
});
const r = await res.json();
console.log(res.ok ? r.choices[0].message.content : r.error, res.ok ? r.usage : "");'`;
}

export function bannerText(o: BannerInput): string {
  return `
Dev API key: ${o.apiKey}
Admin token: ${o.adminToken}
Console:     ${o.base}/console (sign in with the dev API key); operators: ${o.base}/console/admin (admin token)
Metrics:     curl -H "Authorization: Bearer ${o.metricsToken}" http://127.0.0.1:${o.backendPorts[0]}/metrics

First request with curl (streams the answer):
curl ${o.base}/v1/chat/completions \\
  -H "Authorization: Bearer ${o.apiKey}" -H "Content-Type: application/json" \\
  -d '${JSON.stringify({ ...firstRequest(o.model), stream: true })}'

The same with Node 18+ from any directory (built-in fetch: nothing to install):
${nodeSnippet(o.base, o.apiKey, o.model)}

With the openai SDK (npm install openai first, or run inside this repository, which has it):
  new OpenAI({ baseURL: "${o.base}/v1", apiKey: "${o.apiKey}" })
`;
}
