/**
 * deploy/ checked offline: every manifest parses, and what it says about the backend matches the backend's
 * own configuration: its args parse with gpu-backend/config.ts, the container port and probes are the ones
 * the backend serves, the grace period covers the drain, the HPA's metric comes from a series the backend
 * exports, and the Tunnel routes every replica the HPA can create to that replica's pod and port.
 *
 * The manifests are JSON-compatible YAML (YAML 1.2 reads JSON as is; no YAML parser is a dependency here):
 * `#` comment lines, then one JSON document.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../gpu-backend/config";
import { BackendMetrics } from "../../gpu-backend/server/metrics";
import { parseAllowlist, urlAllowed } from "../../worker/registry/allowlist";
import { repoRoot } from "./helpers/paths";

type Json = Record<string, any>;
const dir = join(repoRoot, "deploy");

function load(rel: string): Json {
  const text = readFileSync(join(dir, rel), "utf8");
  return JSON.parse(
    text
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n"),
  ) as Json;
}

const sts = load("kubernetes/backend-statefulset.yaml");
const svc = load("kubernetes/backend-service.yaml");
const hpa = load("kubernetes/backend-hpa.yaml");
const adapter = load("kubernetes/prometheus-adapter-rules.yaml");
const tunnel = load("cloudflare-tunnel/config.yaml");
const backend = sts.spec.template.spec.containers[0] as Json;
const flag = (name: string): string => {
  const args = backend.args as string[];
  const i = args.indexOf(name);
  if (i < 0) throw new Error(`no ${name} in the StatefulSet's args`);
  return args[i + 1]!;
};
/** The container's env as the backend would see it (secrets filled in with stand-ins). */
const podEnv = (pod: string): NodeJS.ProcessEnv =>
  Object.fromEntries(
    (backend.env as Json[]).map((e) => [
      e.name,
      e.value ?? (e.valueFrom.fieldRef ? pod : `stand-in-for-${e.valueFrom.secretKeyRef.key}-0123456789abcdef`),
    ]),
  );
/** Kubernetes' $(VAR) expansion in args. */
const expand = (args: string[], env: NodeJS.ProcessEnv) =>
  args.map((a) => a.replace(/\$\((\w+)\)/g, (_, k) => env[k] ?? ""));

describe("deploy/ manifests", () => {
  it("every file under deploy/ parses", () => {
    const files = ["kubernetes", "cloudflare-tunnel"].flatMap((d) => readdirSync(join(dir, d)).map((f) => `${d}/${f}`));
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) expect(() => load(f), f).not.toThrow();
  });

  it("the backend's args parse with its own config, and port, probes and grace match it", () => {
    expect(backend.command.slice(-1)).toEqual(["gpu-backend/main.ts"]);
    const env = podEnv("moe-backend-0");
    const cfg = parseConfig(expand(backend.args, env), env);
    expect(cfg.host).toBe("0.0.0.0");
    const port = backend.ports.find((p: Json) => p.name === "http");
    expect(port.containerPort).toBe(cfg.port);
    for (const probe of [backend.readinessProbe, backend.startupProbe]) {
      // /health is 200 only when loaded and not draining (gpu-backend/server/app.ts).
      expect(probe.httpGet.path).toBe("/health");
      expect(probe.httpGet.port).toBe("http");
    }
    expect(backend.livenessProbe.tcpSocket.port).toBe("http");
    // The drain fits the grace period: announce, running work, usage flush and socket drain (main.ts), plus slack.
    expect(cfg.registry).toBeDefined();
    const drainMs = cfg.registry!.announceMs + cfg.graceMs + 5_000 + 1_000;
    expect(sts.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(drainMs + 5_000);
    // Secrets come from the environment, never argv.
    for (const secret of ["BACKEND_TOKEN", "USAGE_TOKEN", "REGISTRY_TOKEN"])
      expect(backend.env.find((e: Json) => e.name === secret)?.valueFrom?.secretKeyRef).toBeDefined();
    expect((backend.args as string[]).some((a) => /token/i.test(a))).toBe(false);
    expect(cfg.usage.url).toBe(`${cfg.registry!.workerUrl}/internal/usage`);
    // Prometheus scrapes the port the backend serves /metrics on.
    expect(Number(sts.spec.template.metadata.annotations["prometheus.io/port"])).toBe(cfg.port);
  });

  it("the headless Service selects the pods and names the backend's port", () => {
    expect(svc.spec.clusterIP).toBe("None");
    expect(svc.spec.selector).toEqual(sts.spec.selector.matchLabels);
    expect(svc.spec.ports[0].port).toBe(Number(flag("--port")));
    expect(sts.spec.serviceName).toBe(svc.metadata.name);
  });

  it("the HPA scales the StatefulSet on a pods metric the adapter derives from a gauge the backend exports", async () => {
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: sts.kind, name: sts.metadata.name });
    const metric = hpa.spec.metrics[0].pods.metric.name as string;
    const rules = JSON.parse(adapter.data["config.yaml"]).rules as Json[];
    const rule = rules.find((r) => r.name.as === metric);
    expect(rule, `an adapter rule producing ${metric}`).toBeDefined();
    const series = /^(\w+)\{/.exec(rule!.seriesQuery)![1]!;
    const exposition = await new BackendMetrics({
      engines: () => [],
      inFlight: () => 0,
      usage: () => undefined,
    }).render();
    expect(exposition).toContain(`# TYPE ${series} gauge`);
    expect(new RegExp(rule!.name.matches).test(series)).toBe(true);
  });

  it("the Tunnel routes every replica the HPA can create to its own pod, and the worker's allowlist admits exactly those", () => {
    const port = Number(flag("--port"));
    const rules = tunnel.ingress as Json[];
    expect(rules.at(-1)).toEqual({ service: "http_status:404" });
    const allow = parseAllowlist("https://moe-backend-*.gpu.example.com");
    for (let i = 0; i < hpa.spec.maxReplicas; i++) {
      const pod = `${sts.metadata.name}-${i}`;
      const advertised = expand([flag("--advertise-url")], podEnv(pod))[0]!;
      const host = new URL(advertised).hostname;
      const rule = rules.find((r) => r.hostname === host);
      expect(rule, `an ingress rule for ${host}`).toBeDefined();
      expect(rule!.service).toBe(
        `http://${pod}.${svc.metadata.name}.${sts.metadata.namespace}.svc.cluster.local:${port}`,
      );
      // Only the API and the probe path reach a backend from outside.
      expect(new RegExp(rule!.path).test("/v1/generate")).toBe(true);
      expect(new RegExp(rule!.path).test("/health")).toBe(true);
      expect(new RegExp(rule!.path).test("/metrics")).toBe(false);
      expect(urlAllowed(advertised, allow)).toBe(true);
    }
    expect(urlAllowed("https://moe-backend-0.gpu.example.com.evil.example", allow)).toBe(false);
    // docs/deploy.md tells the operator to set that allowlist.
    expect(readFileSync(join(repoRoot, "docs/deploy.md"), "utf8")).toContain("https://moe-backend-*.gpu.example.com");
  });
});
