/** Child processes in the node tests: run a script to its end, or wait for one to exit. */
import { spawn, type ChildProcess } from "node:child_process";
import { repoRoot } from "./paths";

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `node --import tsx <script> ...args` (the child is the script itself), to its end; `input` is its stdin. */
export function runScript(script: string, args: string[], input?: string): Promise<Run> {
  return new Promise((res) => {
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      cwd: repoRoot,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (status) => res({ status, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** Resolves with the child's exit code (null when a signal ended it). Call it before the signal is sent. */
export function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => child.once("exit", (code) => r(code)));
}
