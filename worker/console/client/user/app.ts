/** /console: the key holder's console. Sign in with an API key, then Overview, Usage, Requests, Batches, Playground. */
import { apiClient, ApiFailure } from "../api";
import { h } from "../dom";
import { session } from "../session";
import { renderShell, renderSignIn } from "../shell";
import type { KeyStatus } from "../types";
import { batchesSection } from "./batches";
import { overviewSection } from "./overview";
import { playgroundSection } from "./playground";
import { requestsSection } from "./requests";
import { usageSection } from "./usage";

export function startUser(root: HTMLElement): void {
  const saved = session.get("api-key");
  if (saved) void enter(root, saved).catch((err: unknown) => signIn(root, err));
  else signIn(root);
}

function signIn(root: HTMLElement, initialError?: unknown): void {
  renderSignIn(root, {
    heading: "moe-edge console",
    intro:
      "Sign in with your API key to see your plan, spend and usage, and to try the models. The key stays in this tab only.",
    label: "API key",
    hint: "Starts with sk-. It is sent as a Bearer header, never in a URL.",
    verify: (key) => enter(root, key),
    initialError,
  });
}

async function enter(root: HTMLElement, key: string): Promise<void> {
  const api = apiClient(key);
  let info: KeyStatus;
  try {
    info = await api.get<KeyStatus>("/v1/key");
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) session.clear("api-key");
    throw err;
  }
  session.set("api-key", key);
  const signOut = () => {
    session.clear("api-key");
    history.replaceState(null, "", location.pathname);
    signIn(root);
  };
  // A key revoked (401) while signed in: back to the sign-in form, with the API's message.
  const onAuthError = (err: unknown) => {
    if (err instanceof ApiFailure && err.status === 401) {
      session.clear("api-key");
      signIn(root, err);
    }
  };
  renderShell(root, {
    title: "moe-edge console",
    who: h("span", {}, "Signed in as ", h("strong", {}, info.name), ` (${info.id})`),
    sections: [
      overviewSection(api, info, onAuthError),
      usageSection(api, onAuthError),
      requestsSection(api, onAuthError),
      batchesSection(api, onAuthError),
      playgroundSection(api, info, onAuthError),
    ],
    onSignOut: signOut,
  });
}
