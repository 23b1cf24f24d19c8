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

/**
 * parseArgs in strict mode, for a script's own argv: `--help` prints `usage` and exits 0 (before any
 * other check); an unknown or malformed flag prints `prog: <what> (see --help)` and exits 2.
 */
export function parseCli<const O extends Options, const P extends boolean = false>(
  prog: string,
  argv: string[],
  spec: { usage: string; options: O; positionals?: P },
) {
  // `npm run logits -- --raw | head`: a closed pipe ends the script quietly, not with a stack trace.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    process.exit(0);
  });
  if (wantsHelp(argv)) {
    process.stdout.write(spec.usage.trimEnd() + "\n");
    process.exit(0);
  }
  try {
    return parseArgs({
      args: argv,
      options: spec.options,
      strict: true,
      allowPositionals: (spec.positionals ?? false) as P,
    });
  } catch (e) {
    // Node's message is one line plus advice ("To specify a positional argument..."); keep the line.
    process.stderr.write(
      `${prog}: ${(e as Error).message.split("\n")[0]!.replace(/\. To specify.*$/, "")} (see --help)\n`,
    );
    process.exit(2);
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
