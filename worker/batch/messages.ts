/**
 * The batch queue's messages (BATCH_QUEUE): one to validate a new batch, then one per valid input line,
 * carrying the line's body (a line is at most FILE_LIMITS.maxLineBytes, under the queue's 128 KB).
 * Parsed with zod on the way out of the queue: the consumer trusts nothing it did not check.
 * `gen` is the batch's generation when the message was sent: a message older than its batch's generation
 * was superseded by a re-queue (revive.ts) and is dropped.
 */
import { z } from "zod";
import type { ValidLine } from "./input";

const Gen = z.number().int().nonnegative().default(0);

export const BatchMessageSchema = z.discriminatedUnion("kind", [
  z.object({ v: z.literal(1), kind: z.literal("validate"), batchId: z.string(), gen: Gen }),
  z.object({
    v: z.literal(1),
    kind: z.literal("line"),
    batchId: z.string(),
    gen: Gen,
    line: z.number().int().positive(),
    customId: z.string(),
    body: z.record(z.string(), z.unknown()),
  }),
]);
export type BatchMessage = z.output<typeof BatchMessageSchema>;
export type LineMessage = Extract<BatchMessage, { kind: "line" }>;

/** Queues.sendBatch takes at most 100 messages and 256 KB per call. */
const SEND_MAX_MESSAGES = 100;
const SEND_MAX_BYTES = 200 * 1024;

export async function sendLines(
  queue: Queue,
  batchId: string,
  gen: number,
  lines: readonly ValidLine[],
): Promise<void> {
  let chunk: { body: LineMessage }[] = [];
  let bytes = 0;
  for (const l of lines) {
    const body: LineMessage = { v: 1, kind: "line", batchId, gen, line: l.line, customId: l.customId, body: l.body };
    const size = new TextEncoder().encode(JSON.stringify(body)).byteLength;
    if (chunk.length === SEND_MAX_MESSAGES || (chunk.length > 0 && bytes + size > SEND_MAX_BYTES)) {
      await queue.sendBatch(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push({ body });
    bytes += size;
  }
  if (chunk.length) await queue.sendBatch(chunk);
}

export const validateMessage = (batchId: string, gen = 0): BatchMessage => ({ v: 1, kind: "validate", batchId, gen });
