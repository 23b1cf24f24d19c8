/** /console/admin: the operator's console. Sign in with ADMIN_TOKEN, then Keys, Spend, Requests, Replicas. */
import { apiClient, ApiFailure } from "../api";
import { session } from "../session";
import { renderShell, renderSignIn } from "../shell";
import { keyRequestsSection } from "./requests";
import { keysSection } from "./keys";
import { replicasSection } from "./replicas";
import { spendSection } from "./spend";

export function startAdmin(root: HTMLElement): void {
  const saved = session.get("admin-token");
  if (saved) void enter(root, saved).catch((err: unknown) => signIn(root, err));
  else signIn(root);
}

function signIn(root: HTMLElement, initialError?: unknown): void {
  renderSignIn(root, {
    heading: "moe-edge operator console",
    intro: "Sign in with the worker's ADMIN_TOKEN to manage keys and see spend. The token stays in this tab only.",
    label: "Admin token",
    hint: "The ADMIN_TOKEN secret of this worker.",
    verify: (token) => enter(root, token),
    initialError,
  });
}

async function enter(root: HTMLElement, token: string): Promise<void> {
  const api = apiClient(token);
  try {
    await api.get("/v1/admin/keys");
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) session.clear("admin-token");
    throw err;
  }
  session.set("admin-token", token);
  const tiers = (document.body.dataset.tiers ?? "").split(",").filter(Boolean);
  const requests = keyRequestsSection(api);
  const shell = renderShell(root, {
    title: "moe-edge operator console",
    who: "Operator",
    sections: [
      keysSection(api, tiers, (keyId) => {
        requests.pick(keyId);
        shell.select("requests");
      }),
      spendSection(api),
      requests,
      replicasSection(api),
    ],
    onSignOut: () => {
      session.clear("admin-token");
      history.replaceState(null, "", location.pathname);
      signIn(root);
    },
  });
}
