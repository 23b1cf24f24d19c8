/**
 * What every script does with its command line: `--help`/`-h` prints the usage and exits 0, an unknown
 * or malformed flag is a one-line error and exit 2, and any other failure is one line and exit 1.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** A mistake on the command line (exit 2), as opposed to a failure while running (exit 1). */
export class UsageError extends Error {}

export function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/** parseArgs in strict mode; prints `usage` and exits 0 on --help (before any other check). */
export function parseCli<const O extends Options, const P extends boolean = false>(
  argv: string[],
  spec: { usage: string; options: O; positionals?: P },
) {
  if (wantsHelp(argv)) {
    process.stdout.write(spec.usage.trimEnd() + "\n");
    process.exit(0);
  }
  try {
    return parseArgs({ args: argv, options: spec.options, strict: true, allowPositionals: (spec.positionals ?? false) as P });
  } catch (e) {
    // Node's messages are one line plus advice; keep the line and point at --help.
    throw new UsageError(`${(e as Error).message.split("\n")[0]!.replace(/\. To specify.*$/, "")} (see --help)`);
  }
}

/** Runs a script's main: errors become `prog: message` on one line (no stack), exit 2 or 1. */
export function runCli(prog: string, main: () => Promise<void> | void): void {
  Promise.resolve()
    .then(main)
    .catch((e: unknown) => {
      const msg = e instanceof Error ? e.message : String(e);
      process.stderr.write(`${prog}: ${msg.split("\n")[0]}\n`);
      process.exit(e instanceof UsageError ? 2 : 1);
    });
}
