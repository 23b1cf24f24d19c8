/**
 * format_trigger: the output is free text until it contains the trigger (a tool-call marker), and
 * response_format constrains everything after it. So that the constrained part starts on a token
 * boundary, a token that would complete the trigger and run on past it is refused while the text ends
 * with a partial trigger (the model can always emit the rest of the trigger alone: every byte is a token).
 * A token that holds the whole trigger after other text and runs on past it is not refused (checking every
 * token each step would cost a vocabulary scan); its bytes after the trigger go to the constraint.
 */
import type { TokenTrie } from "./vocab-index";

export class TriggerWatch {
  private readonly trigger: Uint8Array;
  /** The output's last bytes (at most the trigger's length). */
  private tail = new Uint8Array(0);
  private readonly banned = new Map<number, Int32Array>();
  fired = false;

  constructor(
    trigger: string,
    private readonly trie: TokenTrie,
  ) {
    this.trigger = new TextEncoder().encode(trigger);
  }

  /** Sets -Infinity on tokens that would complete the trigger with bytes after it. */
  refuseOverruns(row: Float32Array): void {
    const t = this.trigger;
    for (let k = Math.min(this.tail.length, t.length - 1); k >= 0; k--) {
      if (!endsWith(this.tail, t.subarray(0, k))) continue;
      for (const id of this.overruns(k)) row[id] = -Infinity;
    }
  }

  /**
   * Follows one token's bytes. Returns null while the trigger has not appeared, else the bytes of this
   * token after the trigger's end (usually none).
   */
  observe(bytes: Uint8Array): Uint8Array | null {
    if (this.fired) return null;
    const t = this.trigger;
    const all = new Uint8Array(this.tail.length + bytes.length);
    all.set(this.tail);
    all.set(bytes, this.tail.length);
    const at = indexOf(all, t);
    if (at >= 0) {
      this.fired = true;
      return all.subarray(at + t.length);
    }
    this.tail = all.subarray(Math.max(0, all.length - (t.length - 1)));
    return null;
  }

  /** Tokens that start with the trigger's bytes from `k` on and continue past its end (cached per k). */
  private overruns(k: number): Int32Array {
    let ids = this.banned.get(k);
    if (ids) return ids;
    const trie = this.trie;
    let node = 0;
    for (const b of this.trigger.subarray(k)) {
      let child = -1;
      for (let e = trie.edgeStart[node]!; e < trie.edgeStart[node + 1]!; e++)
        if (trie.edgeByte[e] === b) child = trie.edgeNode[e]!;
      if (child < 0) {
        node = -1;
        break;
      }
      node = child;
    }
    const out: number[] = [];
    const below = (n: number) => {
      for (let e = trie.edgeStart[n]!; e < trie.edgeStart[n + 1]!; e++) {
        const c = trie.edgeNode[e]!;
        for (let i = trie.tokStart[c]!; i < trie.tokStart[c + 1]!; i++) out.push(trie.tokIds[i]!);
        below(c);
      }
    };
    if (node >= 0) below(node);
    ids = Int32Array.from(out);
    this.banned.set(k, ids);
    return ids;
  }
}

function endsWith(a: Uint8Array, suffix: Uint8Array): boolean {
  if (suffix.length > a.length) return false;
  const off = a.length - suffix.length;
  for (let i = 0; i < suffix.length; i++) if (a[off + i] !== suffix[i]) return false;
  return true;
}

function indexOf(a: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= a.length; i++) {
    for (let j = 0; j < needle.length; j++) if (a[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
