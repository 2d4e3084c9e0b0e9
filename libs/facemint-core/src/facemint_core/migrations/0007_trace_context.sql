-- The W3C traceparent of the request that created a task, and of the event a webhook delivery comes from, so that
-- work resumed from these rows (a job re-enqueued or an event republished by the orchestrator's outbox sweep, a
-- delivery attempted by whichever dispatcher claims it) continues the task's trace (ADR 0018). NULL when the
-- creating request was not traced.

ALTER TABLE tasks ADD COLUMN traceparent text;
ALTER TABLE webhook_deliveries ADD COLUMN traceparent text;
