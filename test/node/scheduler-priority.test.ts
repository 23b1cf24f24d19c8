/** The scheduler's priority classes (pure policy, no model): batch lines use only what interactive work leaves idle. */
import { describe, expect, it } from "vitest";
import { Scheduler, type Priority, type SchedSeq } from "../../gpu-backend/engine/scheduler";

let n = 0;
const seq = (priority: Priority, promptLen = 5): SchedSeq => ({
  id: ++n,
  promptLen,
  pos: 0,
  state: "waiting",
  priority,
});

/** Admits everything the policy lets in (KV always fits), finishing each prefill at once. */
function admitAll(s: Scheduler<SchedSeq>): SchedSeq[] {
  const started: SchedSeq[] = [];
  for (;;) {
    const next = s.nextAdmission(() => true);
    if (!next) return started;
    s.startPrefill(next);
    next.pos = next.promptLen;
    s.promote(next);
    started.push(next);
  }
}

describe("scheduler priority classes", () => {
  it("admits waiting interactive sequences before older batch ones", () => {
    const s = new Scheduler<SchedSeq>({ maxBatch: 8, prefillChunk: 16, maxQueue: 64, batchSlots: 4 });
    const b1 = seq("batch");
    const b2 = seq("batch");
    const i1 = seq("interactive");
    for (const q of [b1, b2, i1]) s.enqueue(q);
    expect(admitAll(s).map((q) => q.id)).toEqual([i1.id, b1.id, b2.id]);
  });

  it("batch sequences hold at most batchSlots slots, so an arriving interactive one starts at once", () => {
    const s = new Scheduler<SchedSeq>({ maxBatch: 4, prefillChunk: 16, maxQueue: 64, batchSlots: 2 });
    for (let i = 0; i < 6; i++) s.enqueue(seq("batch"));
    expect(admitAll(s)).toHaveLength(2);
    expect(new Scheduler<SchedSeq>({ maxBatch: 8, prefillChunk: 16, maxQueue: 8 }).batchSlots).toBe(1); // the default
    expect(s.waiting).toHaveLength(4);
    const i1 = seq("interactive");
    s.enqueue(i1);
    expect(s.nextAdmission(() => true)).toBe(i1);
    // Sequences without a class are interactive (wire requests that name none).
    const plain: SchedSeq = { id: ++n, promptLen: 3, pos: 0, state: "waiting" };
    const t = new Scheduler<SchedSeq>({ maxBatch: 2, prefillChunk: 16, maxQueue: 8, batchSlots: 1 });
    t.enqueue(seq("batch"));
    t.enqueue(seq("batch"));
    t.enqueue(plain);
    expect(admitAll(t).map((q) => q.priority ?? "interactive")).toEqual(["interactive", "batch"]);
  });

  it("an interactive prefill is not interleaved with batch-only decode steps; batch resumes after it", () => {
    const s = new Scheduler<SchedSeq>({ maxBatch: 8, prefillChunk: 4, maxQueue: 64 });
    s.enqueue(seq("batch"));
    admitAll(s);
    const i1 = seq("interactive", 12);
    s.enqueue(i1);
    s.startPrefill(s.nextAdmission(() => true)!);
    const kinds: string[] = [];
    for (let k = 0; k < 3; k++) {
      const p = s.plan();
      kinds.push(p.kind);
      if (p.kind === "prefill") p.seq.pos += p.len;
    }
    expect(kinds).toEqual(["prefill", "prefill", "prefill"]);
    s.promote(i1);
    const after = s.plan();
    expect(after.kind === "decode" && after.seqs.length).toBe(2); // the held batch sequence resumes with it
  });

  it("a batch prefill still alternates with decode steps (nothing is held for it)", () => {
    const s = new Scheduler<SchedSeq>({ maxBatch: 8, prefillChunk: 4, maxQueue: 64 });
    s.enqueue(seq("interactive"));
    admitAll(s);
    const b = seq("batch", 12);
    s.enqueue(b);
    s.startPrefill(s.nextAdmission(() => true)!);
    const kinds: string[] = [];
    for (let k = 0; k < 4; k++) {
      const p = s.plan();
      kinds.push(p.kind);
      if (p.kind === "prefill") p.seq.pos += p.len;
    }
    expect(kinds).toEqual(["prefill", "decode", "prefill", "decode"]);
  });
});
