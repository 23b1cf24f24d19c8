/**
 * The usage journal: append-only JSONL segments, fsync'd before append() resolves, rotated by size.
 *
 *   <dir>/seg-00000001.jsonl   one UsageRecord per line
 *   <dir>/seg-00000001.acks    one acknowledged record id per line
 *
 * A record is pending until its id is in its segment's .acks file. A process always writes to a fresh
 * segment (a crash can leave a torn last line in the old one, and appending after it would glue two
 * records together); on open, the pending records of every older segment are loaded, oldest first, for
 * replay. A segment that is closed and fully acknowledged is deleted with its .acks file.
 *
 * Writes are group-committed: records appended while an fsync runs share the next write and fsync.
 * A LOCK file (the owner's pid) keeps two live processes off one directory; a dead owner's lock is taken over.
 */
import { EventEmitter } from "node:events";
import { mkdir, open, readdir, readFile, unlink, writeFile, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { UsageRecordSchema, type UsageRecord } from "../../contract/usage";

export interface JournalOptions {
  dir: string;
  /** Rotate once the active segment reaches this size. */
  segmentBytes: number;
  /**
   * Only when nothing delivers the records (no usage URL): keep at most this many segments and drop the
   * oldest, so a journal nobody reads cannot fill the disk. With delivery on, nothing pending is dropped.
   */
  keepSegments?: number;
}

interface Segment {
  n: number;
  /** Ids written to this segment and not yet acknowledged. */
  unacked: Set<string>;
  closed: boolean;
  /** Its .acks file may exist (so creating it needs no directory fsync). */
  hasAcks: boolean;
}

interface AppendOp {
  rec: UsageRecord;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface AckOp {
  ids: string[];
  resolve: () => void;
  reject: (e: Error) => void;
}

async function lock(dir: string): Promise<void> {
  const file = path.join(dir, "LOCK");
  for (;;) {
    try {
      await writeFile(file, String(process.pid), { flag: "wx" });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const owner = Number(await readFile(file, "utf8").catch(() => ""));
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
      throw new Error(`usage journal ${dir} is in use by process ${owner} (give each backend its own --journal-dir)`);
    }
    await unlink(file).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const segName = (n: number, ext: "jsonl" | "acks") => `seg-${String(n).padStart(8, "0")}.${ext}`;

export class Journal extends EventEmitter<{ append: [UsageRecord]; ack: [string[]] }> {
  private readonly pendingById = new Map<string, { rec: UsageRecord; seg: Segment }>();
  private readonly segments = new Map<number, Segment>();
  private active: { seg: Segment; fh: FileHandle; bytes: number } | null = null;
  private nextSeg: number;
  private appends: AppendOp[] = [];
  private acks: AckOp[] = [];
  /** The writer turn in progress, if any. */
  private running: Promise<void> | null = null;
  private closed = false;

  private constructor(
    readonly opts: JournalOptions,
    nextSeg: number,
  ) {
    super();
    this.nextSeg = nextSeg;
  }

  /** Opens (creating) the directory and loads every pending record of earlier runs. */
  static async open(opts: JournalOptions): Promise<Journal> {
    await mkdir(opts.dir, { recursive: true });
    await lock(opts.dir);
    const nums = (await readdir(opts.dir))
      .map((f) => /^seg-(\d{8})\.jsonl$/.exec(f)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const j = new Journal(opts, (nums.at(-1) ?? 0) + 1);
    for (const n of nums) await j.load(n);
    await j.prune();
    return j;
  }

  private async load(n: number): Promise<void> {
    const dir = this.opts.dir;
    const text = await readFile(path.join(dir, segName(n, "jsonl")), "utf8");
    const acked = new Set((await readFile(path.join(dir, segName(n, "acks")), "utf8").catch(() => "")).split("\n"));
    const seg: Segment = { n, unacked: new Set(), closed: true, hasAcks: true };
    for (const line of text.split("\n")) {
      if (line === "") continue;
      let rec: UsageRecord;
      try {
        rec = UsageRecordSchema.parse(JSON.parse(line));
      } catch {
        // A torn tail from a crash mid-write: that record's stream never got its done line.
        console.error(`usage journal: ${segName(n, "jsonl")}: skipping an unreadable line`);
        continue;
      }
      if (acked.has(rec.id) || this.pendingById.has(rec.id)) continue;
      seg.unacked.add(rec.id);
      this.pendingById.set(rec.id, { rec, seg });
    }
    this.segments.set(n, seg);
    if (seg.unacked.size === 0) await this.remove(seg);
  }

  /** Records not yet acknowledged, oldest first. */
  pending(limit = Infinity): UsageRecord[] {
    const out: UsageRecord[] = [];
    for (const { rec } of this.pendingById.values()) {
      if (out.length >= limit) break;
      out.push(rec);
    }
    return out;
  }

  get pendingCount(): number {
    return this.pendingById.size;
  }

  /** Resolves once the record is on disk (written and fsync'd). */
  append(rec: UsageRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error("usage journal is closed"));
      this.appends.push({ rec, resolve, reject });
      this.pump();
    });
  }

  /** Marks records delivered; unknown or already acknowledged ids are ignored. */
  ack(ids: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.acks.push({ ids, resolve, reject });
      this.pump();
    });
  }

  /** Finishes queued writes and closes the active segment. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.running) await this.running;
    if (this.active) {
      await this.active.fh.close();
      this.active.seg.closed = true;
      this.active = null;
    }
    await unlink(path.join(this.opts.dir, "LOCK")).catch(() => undefined);
  }

  /** One writer at a time; each turn takes everything queued so far. */
  private pump(): void {
    if (this.running) return;
    this.running = (async () => {
      while (this.appends.length > 0 || this.acks.length > 0) {
        const appends = this.appends.splice(0);
        if (appends.length > 0) {
          try {
            await this.write(appends.map((a) => a.rec));
            for (const a of appends) a.resolve();
            for (const a of appends) this.emit("append", a.rec);
          } catch (e) {
            for (const a of appends) a.reject(e as Error);
          }
        }
        const acks = this.acks.splice(0);
        if (acks.length > 0) {
          try {
            const done = await this.writeAcks(acks.flatMap((a) => a.ids));
            for (const a of acks) a.resolve();
            if (done.length > 0) this.emit("ack", done);
          } catch (e) {
            for (const a of acks) a.reject(e as Error);
          }
        }
      }
      this.running = null;
    })();
  }

  private async write(recs: UsageRecord[]): Promise<void> {
    if (this.active && this.active.bytes >= this.opts.segmentBytes) await this.rotate();
    if (!this.active) {
      const seg: Segment = { n: this.nextSeg++, unacked: new Set(), closed: false, hasAcks: false };
      const fh = await open(path.join(this.opts.dir, segName(seg.n, "jsonl")), "a");
      await this.syncDir(); // the new file's directory entry must survive a crash too
      this.segments.set(seg.n, seg);
      this.active = { seg, fh, bytes: 0 };
    }
    const { seg, fh } = this.active;
    const data = Buffer.from(recs.map((r) => JSON.stringify(r) + "\n").join(""));
    try {
      await fh.write(data);
      await fh.sync();
    } catch (e) {
      // A failed write may have left a partial line: never append after it (the next record would be
      // glued to it and unreadable on replay). The next write opens a fresh segment.
      this.active = null;
      seg.closed = true;
      if (seg.unacked.size === 0) this.segments.delete(seg.n); // nothing in it to deliver
      await fh.close().catch(() => undefined);
      throw e;
    }
    this.active.bytes += data.length;
    for (const rec of recs) {
      seg.unacked.add(rec.id);
      this.pendingById.set(rec.id, { rec, seg });
    }
  }

  private async rotate(): Promise<void> {
    const { seg, fh } = this.active!;
    this.active = null;
    await fh.close();
    seg.closed = true;
    if (seg.unacked.size === 0) await this.remove(seg);
    await this.prune();
  }

  private async prune(): Promise<void> {
    const keep = this.opts.keepSegments;
    if (keep === undefined) return;
    const closed = [...this.segments.values()].filter((s) => s.closed).sort((a, b) => a.n - b.n);
    for (const seg of closed.slice(0, Math.max(0, closed.length - keep))) {
      console.error(
        `usage journal: dropping ${segName(seg.n, "jsonl")} (${seg.unacked.size} undelivered records; no usage URL to deliver them)`,
      );
      for (const id of seg.unacked) this.pendingById.delete(id);
      await this.remove(seg);
    }
  }

  /** Appends ids to their segments' .acks files (fsync'd); returns the ids that were pending. */
  private async writeAcks(ids: string[]): Promise<string[]> {
    const bySeg = new Map<Segment, string[]>();
    for (const id of new Set(ids)) {
      const p = this.pendingById.get(id);
      if (!p) continue;
      const list = bySeg.get(p.seg) ?? [];
      list.push(id);
      bySeg.set(p.seg, list);
    }
    const done: string[] = [];
    for (const [seg, list] of bySeg) {
      const file = path.join(this.opts.dir, segName(seg.n, "acks"));
      const fresh = !seg.hasAcks;
      const fh = await open(file, "a");
      try {
        await fh.write(list.join("\n") + "\n");
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (fresh) await this.syncDir();
      seg.hasAcks = true;
      for (const id of list) {
        seg.unacked.delete(id);
        this.pendingById.delete(id);
        done.push(id);
      }
      if (seg.closed && seg.unacked.size === 0) await this.remove(seg);
    }
    return done;
  }

  private async syncDir(): Promise<void> {
    const dh = await open(this.opts.dir, "r");
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  private async remove(seg: Segment): Promise<void> {
    this.segments.delete(seg.n);
    for (const ext of ["jsonl", "acks"] as const) {
      await unlink(path.join(this.opts.dir, segName(seg.n, ext))).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e;
      });
    }
  }

  /** Segment numbers on disk right now (tests and metrics). */
  segmentNumbers(): number[] {
    return [...this.segments.keys()].sort((a, b) => a - b);
  }
}
