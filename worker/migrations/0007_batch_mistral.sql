-- Mistral's batch jobs (/v1/batch/jobs, worker/routes/batch-jobs.ts) over the same batches: the job's
-- model (set on every line; NULL for a batch made in OpenAI's shape) and the shape of its input lines
-- ('openai': {custom_id, method, url, body}; 'mistral': {custom_id, body}).
ALTER TABLE batches ADD COLUMN model TEXT;
ALTER TABLE batches ADD COLUMN line_format TEXT NOT NULL DEFAULT 'openai' CHECK (line_format IN ('openai', 'mistral'));
