/**
 * Incremental scanning of one JSON value, a character at a time, for text the constraint has already
 * shaped (tool calls): it tracks only what is needed to know where the value ends (strings, escapes,
 * nesting). It does not validate; malformed input is reported as such where it is noticed.
 */
const WS = new Set([" ", "\t", "\n", "\r"]);
export const isWs = (ch: string): boolean => WS.has(ch);

export type ScanStep =
  /** The character belongs to the value; the value continues. */
  | "more"
  /** The character completed the value (a closing quote or bracket). */
  | "end"
  /** The value had already ended (a scalar): this character is not part of it. */
  | "after"
  | "invalid";

export class ValueScanner {
  private depth = 0;
  private inString = false;
  private escape = false;
  private started = false;
  private scalar = false;

  step(ch: string): ScanStep {
    if (!this.started) {
      if (isWs(ch)) return "more";
      this.started = true;
      if (ch === '"') this.inString = true;
      else if (ch === "{" || ch === "[") this.depth = 1;
      else if (/[-0-9tfn]/.test(ch)) this.scalar = true;
      else return "invalid";
      return "more";
    }
    if (this.inString) {
      if (this.escape) this.escape = false;
      else if (ch === "\\") this.escape = true;
      else if (ch === '"') {
        this.inString = false;
        if (this.depth === 0) return "end";
      }
      return "more";
    }
    if (this.scalar) return /[-+.0-9a-zA-Z]/.test(ch) ? "more" : "after";
    if (ch === '"') this.inString = true;
    else if (ch === "{" || ch === "[") this.depth++;
    else if (ch === "}" || ch === "]") {
      this.depth--;
      if (this.depth === 0) return "end";
    }
    return "more";
  }
}
