/**
 * Prefix cache over FULL blocks of prompt tokens (vLLM-style chained hashes).
 * hash(block i) = H(hash(block i-1), tokens of block i); the first block mixes in the tenant's cache_salt,
 * so two tenants never share (or time-probe) each other's entries. A hit verifies the stored tokens and
 * the parent link: the hash is never trusted alone. LRU eviction under a byte budget.
 */
import { createHash } from "node:crypto";

export interface PrefixBlock {
  hash: string;
  parent: string;
  tokens: Int32Array;
  /** Packed KV rows of this block: [layer][k|v][kvH][blockSize][D]. */
  kv: Float32Array;
}

export interface PrefixCacheStats {
  entries: number;
  bytes: number;
  budgetBytes: number;
  lookups: number;
  hitTokens: number;
  queriedTokens: number;
  evictions: number;
}

const ROOT = "root";

export function blockHash(parent: string, tokens: ArrayLike<number>, salt: string): string {
  const h = createHash("sha256");
  h.update(parent);
  if (parent === ROOT) h.update(`\u0000salt:${salt}\u0000`);
  h.update(new Uint8Array(Int32Array.from(tokens as ArrayLike<number>).buffer));
  return h.digest("base64url");
}

export class PrefixCache {
  /** Map iteration order = LRU order (oldest first); touching re-inserts. */
  private readonly blocks = new Map<string, PrefixBlock>();
  private bytesUsed = 0;
  private stats = { lookups: 0, hitTokens: 0, queriedTokens: 0, evictions: 0 };

  constructor(
    readonly blockSize: number,
    readonly budgetBytes: number,
  ) {}

  /** Hash chain of the prompt's full blocks. */
  chain(tokens: ArrayLike<number>, salt: string): string[] {
    const out: string[] = [];
    let parent = ROOT;
    for (let i = 0; i + this.blockSize <= tokens.length; i += this.blockSize) {
      parent = blockHash(parent, Array.prototype.slice.call(tokens, i, i + this.blockSize) as number[], salt);
      out.push(parent);
    }
    return out;
  }

  /**
   * Longest cached prefix of `tokens`, in whole blocks, never covering the last token (a prefill needs
   * at least one position to produce logits). Touches the hit blocks (LRU).
   */
  lookup(tokens: ArrayLike<number>, salt: string): PrefixBlock[] {
    if (this.budgetBytes <= 0) return [];
    this.stats.lookups++;
    this.stats.queriedTokens += tokens.length;
    const usable = Math.floor((tokens.length - 1) / this.blockSize);
    const hashes = this.chain(tokens, salt).slice(0, usable);
    const hit: PrefixBlock[] = [];
    let parent = ROOT;
    for (let i = 0; i < hashes.length; i++) {
      const b = this.blocks.get(hashes[i]!);
      if (!b || b.parent !== parent || !sameTokens(b.tokens, tokens, i * this.blockSize)) break;
      hit.push(b);
      parent = b.hash;
    }
    for (const b of hit) this.touch(b);
    this.stats.hitTokens += hit.length * this.blockSize;
    return hit;
  }

  has(hash: string): boolean {
    return this.blocks.has(hash);
  }

  /** Inserts one block (callers insert in chain order). Evicts LRU blocks to stay within budget. */
  insert(block: PrefixBlock): void {
    if (this.budgetBytes <= 0) return;
    const size = blockBytes(block);
    if (size > this.budgetBytes) return;
    const existing = this.blocks.get(block.hash);
    if (existing) {
      this.touch(existing);
      return;
    }
    while (this.bytesUsed + size > this.budgetBytes) this.evictOldest();
    this.blocks.set(block.hash, block);
    this.bytesUsed += size;
  }

  private touch(b: PrefixBlock): void {
    this.blocks.delete(b.hash);
    this.blocks.set(b.hash, b);
  }

  private evictOldest(): void {
    const first = this.blocks.keys().next();
    if (first.done) return;
    const b = this.blocks.get(first.value)!;
    this.blocks.delete(first.value);
    this.bytesUsed -= blockBytes(b);
    this.stats.evictions++;
  }

  snapshot(): PrefixCacheStats {
    return { entries: this.blocks.size, bytes: this.bytesUsed, budgetBytes: this.budgetBytes, ...this.stats };
  }
}

function blockBytes(b: PrefixBlock): number {
  return b.kv.byteLength + b.tokens.byteLength + 128;
}

function sameTokens(stored: Int32Array, tokens: ArrayLike<number>, start: number): boolean {
  for (let i = 0; i < stored.length; i++) if (stored[i] !== tokens[start + i]) return false;
  return true;
}
