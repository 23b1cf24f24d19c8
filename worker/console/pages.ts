/**
 * The console's HTML shells. No inline script or style: the page only loads the bundled script and
 * stylesheet (same origin, with SRI) and says which console it is; everything else is rendered by the
 * client as DOM text. The only server data on a page is the admin page's tier names, escaped.
 */
import { CONSOLE_CSS_SRI, CONSOLE_JS_SRI, CONSOLE_VERSION } from "./assets.generated";

export const JS_PATH = `/console/assets/console.${CONSOLE_VERSION}.js`;
export const CSS_PATH = `/console/assets/console.${CONSOLE_VERSION}.css`;

const escapeAttr = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function consolePage(page: "user" | "admin", tiers: string[] = []): string {
  const title = page === "admin" ? "moe-edge operator console" : "moe-edge console";
  const data = page === "admin" ? ` data-tiers="${escapeAttr(tiers.join(","))}"` : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${CSS_PATH}" integrity="${CONSOLE_CSS_SRI}">
<script src="${JS_PATH}" integrity="${CONSOLE_JS_SRI}" defer></script>
</head>
<body data-page="${page}"${data}>
<div id="app"><p class="status">Loading the console…</p></div>
<noscript><p>The console needs JavaScript. The API itself works without it: see the README.</p></noscript>
</body>
</html>
`;
}
