-- The W3C traceparent of the request that created a task, so that work resumed from the row (a job re-enqueued or
-- an event republished by the outbox sweep) continues the task's trace (ADR 0018). NULL when the creating request
-- was not traced.

ALTER TABLE tasks ADD COLUMN traceparent text;
