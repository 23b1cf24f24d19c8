-- Re-driving a batch whose queue messages were lost (worker/batch/revive.ts).
-- active_at: when the batch last showed queue activity, or, for a line waiting out a rate limit, when it
-- will; a batch silent long past it is re-queued. gen: bumped by each re-queue; a message of an older
-- generation is dropped when delivered, so a re-queued line runs from one copy only.
ALTER TABLE batches ADD COLUMN active_at INTEGER;
ALTER TABLE batches ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
